//! The lab's stand-in for an RHCOS metal image and its stream metadata.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::GzEncoder;
use sha2::{Digest, Sha256};

use super::Error;

/// A generated metal image, compressed, with its digests.
#[derive(Debug, Clone)]
pub struct Image {
    /// The `.raw.gz` file.
    pub path: PathBuf,
    /// Size of the uncompressed image in bytes.
    pub raw_bytes: u64,
    /// sha256 of the uncompressed image, hex.
    pub raw_sha256: String,
    /// sha256 of the `.raw.gz` file, hex.
    pub gz_sha256: String,
}

/// Writes a deterministic `mib` MiB image to `dir/rhcos-lab-metal.x86_64.raw.gz`.
///
/// The content mixes incompressible blocks with zero runs, like a real disk image, so the
/// gzip stage does real work without making the file as large as the image.
pub(crate) fn generate(dir: &Path, mib: u32) -> Result<Image, Error> {
    let path = dir.join("rhcos-lab-metal.x86_64.raw.gz");
    let io = |source| Error::Io {
        path: path.clone(),
        source,
    };
    let file = File::create(&path).map_err(io)?;
    let mut gz = GzEncoder::new(BufWriter::new(file), Compression::fast());
    let mut raw = Sha256::new();
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut block = vec![0u8; 1 << 20];
    for i in 0..u64::from(mib) {
        if i % 4 == 3 {
            block.fill(0);
        } else {
            for chunk in block.chunks_mut(8) {
                // xorshift64*: cheap, deterministic, incompressible enough.
                state ^= state >> 12;
                state ^= state << 25;
                state ^= state >> 27;
                let v = state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes();
                chunk.copy_from_slice(&v[..chunk.len()]);
            }
        }
        if i == 0 {
            let label = b"RHCOS-METAL LAB IMAGE\n";
            block[..label.len()].copy_from_slice(label);
        }
        raw.update(&block);
        gz.write_all(&block).map_err(io)?;
    }
    let mut out = gz.finish().map_err(io)?;
    out.flush().map_err(io)?;
    drop(out);
    let gz_sha256 = sha256_file(&path)?;
    Ok(Image {
        path,
        raw_bytes: u64::from(mib) << 20,
        raw_sha256: hex::encode(raw.finalize()),
        gz_sha256,
    })
}

/// The sha256 of a file, hex.
pub fn sha256_file(path: &Path) -> Result<String, Error> {
    let mut f = File::open(path).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })?;
    Ok(hex::encode(h.finalize()))
}

/// Writes a CoreOS `stream.json` that names the lab's kernel, initramfs and metal image by
/// `file://` URL, as a mirror would.
pub(crate) fn write_stream(
    dir: &Path,
    image: &Image,
    kernel: &Path,
    initramfs: &Path,
) -> Result<PathBuf, Error> {
    // A live PXE boot names a rootfs too; the fake installer fetches it as dracut would, but
    // needs nothing from it.
    let rootfs = dir.join("rhcos-lab-live-rootfs.x86_64.img");
    std::fs::write(&rootfs, vec![0u8; 1 << 20]).map_err(|source| Error::Io {
        path: rootfs.clone(),
        source,
    })?;
    let url = |p: &Path| format!("file://{}", p.display());
    let stream = serde_json::json!({
        "stream": "rhcos-metal-lab",
        "metadata": { "last-modified": "2026-11-24T00:00:00Z", "generator": "rhcos-metal lab" },
        "architectures": { "x86_64": { "artifacts": { "metal": {
            "release": "lab.0",
            "formats": {
                "raw.gz": { "disk": {
                    "location": url(&image.path),
                    "sha256": image.gz_sha256,
                    "uncompressed-sha256": image.raw_sha256,
                } },
                "pxe": {
                    "kernel": { "location": url(kernel), "sha256": sha256_file(kernel)? },
                    "initramfs": { "location": url(initramfs), "sha256": sha256_file(initramfs)? },
                    "rootfs": { "location": url(&rootfs), "sha256": sha256_file(&rootfs)? },
                },
            },
        } } } },
    });
    let path = dir.join("stream.json");
    let body = serde_json::to_vec_pretty(&stream).map_err(|e| Error::Io {
        path: path.clone(),
        source: std::io::Error::other(e),
    })?;
    std::fs::write(&path, body).map_err(|source| Error::Io {
        path: path.clone(),
        source,
    })?;
    Ok(path)
}
