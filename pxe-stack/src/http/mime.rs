//! Content types by file extension, for what a provisioning server hands out.

/// The `Content-Type` for a file name, by its extension (case-insensitive);
/// `application/octet-stream` when unknown.
pub fn content_type(name: &str) -> &'static str {
    let ext = match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() && !ext.contains('/') => ext.to_ascii_lowercase(),
        _ => return "application/octet-stream",
    };
    match ext.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "txt" | "ipxe" | "cfg" | "conf" | "sha256" | "sha512" | "sum" | "asc" => {
            "text/plain; charset=utf-8"
        }
        "json" | "ign" => "application/json",
        "xml" => "application/xml",
        "yaml" | "yml" => "application/yaml",
        "gz" | "tgz" => "application/gzip",
        "xz" => "application/x-xz",
        "zst" => "application/zstd",
        "tar" => "application/x-tar",
        "iso" => "application/x-iso9660-image",
        "sig" => "application/pgp-signature",
        "css" => "text/css",
        "js" => "text/javascript",
        "png" => "image/png",
        "svg" => "image/svg+xml",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(name: &str, expected: &str) {
        assert_eq!(content_type(name), expected, "{name}");
    }

    #[test]
    fn by_extension() {
        check("boot.ipxe", "text/plain; charset=utf-8");
        check("master.IGN", "application/json");
        check("rhcos-metal.x86_64.raw.gz", "application/gzip");
        check("rhcos-live.x86_64.iso", "application/x-iso9660-image");
        check("vmlinuz", "application/octet-stream");
        check("undionly.kpxe", "application/octet-stream");
        check("snponly.efi", "application/octet-stream");
        check(".hidden", "application/octet-stream");
        check("dir.d/file", "application/octet-stream");
        check("index.html", "text/html; charset=utf-8");
    }
}
