//! Request-path confinement for every file server: a client's path is normalized to `a/b/c` or
//! refused, then resolved under the canonical root without escaping it through symlinks.

use std::path::{Path, PathBuf};

/// Why a requested path was refused before touching the file system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Empty, or only separators and `.`.
    Empty,
    /// Starts at the file-system root (`/x`, `\x`, `C:`).
    Absolute,
    /// Has a `..` component.
    Parent,
    /// Has a NUL byte or another control character.
    BadByte,
}

/// The served root as an absolute path without symlinks, which [`resolve`] compares against;
/// it must be a directory.
pub(crate) fn canonical_root(root: &Path) -> std::io::Result<PathBuf> {
    let root = std::fs::canonicalize(root)?;
    if root.is_dir() {
        Ok(root)
    } else {
        Err(std::io::Error::new(
            std::io::ErrorKind::NotADirectory,
            "not a directory",
        ))
    }
}

/// Normalizes a client's path to `a/b/c` relative to the root, or refuses it.
///
/// `.` and empty components are dropped. Backslashes count as separators (some PXE ROMs send
/// DOS-style names), so `..\x` is refused too.
pub(crate) fn confine(request: &str) -> Result<String, Refusal> {
    if request.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Err(Refusal::BadByte);
    }
    if request.starts_with('/') || request.starts_with('\\') {
        return Err(Refusal::Absolute);
    }
    if request.as_bytes().get(1) == Some(&b':') {
        return Err(Refusal::Absolute);
    }
    let mut parts = Vec::new();
    for part in request.split(['/', '\\']) {
        match part {
            "" | "." => {}
            ".." => return Err(Refusal::Parent),
            p => parts.push(p),
        }
    }
    if parts.is_empty() {
        return Err(Refusal::Empty);
    }
    Ok(parts.join("/"))
}

/// Resolves a confined relative path under `root` (already canonical) following symlinks, and
/// checks that the result is a regular file still inside `root`.
///
/// Returns `Ok(None)` when the file does not exist (or is not a regular file) and `Err(())` when
/// it resolves outside the root.
pub(crate) fn resolve(root: &Path, relative: &str) -> Result<Option<PathBuf>, ()> {
    let joined = root.join(relative);
    let real = match std::fs::canonicalize(&joined) {
        Ok(p) => p,
        Err(_) => return Ok(None),
    };
    if !real.starts_with(root) {
        return Err(());
    }
    match std::fs::metadata(&real) {
        Ok(m) if m.is_file() => Ok(Some(real)),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: Result<&str, Refusal>) {
        assert_eq!(
            confine(input).as_deref().map_err(|e| *e),
            expected,
            "input {input:?}"
        );
    }

    #[test]
    fn confine_cases() {
        check("undionly.kpxe", Ok("undionly.kpxe"));
        check("./efi//snponly.efi", Ok("efi/snponly.efi"));
        check("efi\\grubx64.efi", Ok("efi/grubx64.efi"));
        check("a/./b/", Ok("a/b"));
        check("/etc/passwd", Err(Refusal::Absolute));
        check("\\boot.ini", Err(Refusal::Absolute));
        check("C:boot", Err(Refusal::Absolute));
        check("../etc/passwd", Err(Refusal::Parent));
        check("a/../../x", Err(Refusal::Parent));
        check("a\\..\\x", Err(Refusal::Parent));
        check("..", Err(Refusal::Parent));
        check("", Err(Refusal::Empty));
        check("./", Err(Refusal::Empty));
        check("a\0b", Err(Refusal::BadByte));
        check("a\nb", Err(Refusal::BadByte));
        check("...", Ok("..."));
        check("..a", Ok("..a"));
    }

    #[test]
    fn resolve_refuses_symlinks_out() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir(&root).unwrap();
        std::fs::write(dir.path().join("secret"), b"s").unwrap();
        std::fs::write(root.join("ok"), b"o").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret"), root.join("out")).unwrap();
        std::os::unix::fs::symlink(root.join("ok"), root.join("in")).unwrap();
        std::fs::create_dir(root.join("sub")).unwrap();
        let root = std::fs::canonicalize(&root).unwrap();
        assert_eq!(resolve(&root, "ok"), Ok(Some(root.join("ok"))));
        assert_eq!(resolve(&root, "in"), Ok(Some(root.join("ok"))));
        assert_eq!(resolve(&root, "out"), Err(()));
        assert_eq!(resolve(&root, "missing"), Ok(None));
        assert_eq!(resolve(&root, "sub"), Ok(None));
    }
}
