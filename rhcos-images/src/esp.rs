//! The Secure Boot chain a release ships: the signed shim and GRUB read from the `EFI-SYSTEM`
//! partition of its metal image, without mounting anything (feature `esp`).
//!
//! [`extract_boot_chain`] reads a raw (already decompressed) image as a stream: the GPT at
//! either sector size (512, or 4096 for the `4k` images), the first partition of the EFI
//! system type, and that partition's FAT filesystem with the `fatfs` crate, in memory. It
//! looks for `EFI/<vendor>/shimx64.efi` and `EFI/<vendor>/grubx64.efi` (RHCOS ships
//! `EFI/redhat`, Fedora CoreOS `EFI/fedora`), taking `EFI/BOOT/BOOTX64.EFI` as the shim when
//! the vendor directory has GRUB but no shim. Exactly one vendor directory must qualify.
//!
//! Every size read from the image is bounded ([`MAX_ESP_BYTES`], [`MAX_FILE_BYTES`],
//! [`MAX_DIR_ENTRIES`]), and memory grows only as bytes actually arrive, so malformed or
//! hostile input ends in an [`EspError`], never a panic, a loop or a huge allocation.
//!
//! [`cache_boot_chain`] does this once per verified image and keeps the result in the
//! content-addressed [`Cache`]: each binary under its own sha256, and a provenance record
//! `<image sha256>.boot-chain.json` naming them, so a second run reads nothing.
//!
//! ```no_run
//! use rhcos_images::esp::extract_boot_chain;
//!
//! let image = std::fs::File::open("rhcos-metal.x86_64.raw")?;
//! let chain = extract_boot_chain(std::io::BufReader::new(image))?;
//! println!("{}: shim {} bytes, grub {} bytes", chain.vendor, chain.shim.len(), chain.grub.len());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::io::{self, Cursor, Read};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::cache::Cache;
use crate::select::Compression;

/// The largest EFI system partition read into memory (RHCOS's is 127 MiB).
pub const MAX_ESP_BYTES: u64 = 512 << 20;
/// The largest shim or GRUB binary accepted (they are a few MiB).
pub const MAX_FILE_BYTES: u64 = 64 << 20;
/// The most entries looked at in one directory of the ESP.
pub const MAX_DIR_ENTRIES: usize = 4096;
/// The largest GPT partition array accepted.
const MAX_TABLE_BYTES: u64 = 1 << 20;

/// The EFI system partition type, C12A7328-F81F-11D2-BA4B-00A0C93EC93B, as GPT stores it.
const ESP_TYPE: [u8; 16] = [
    0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11, 0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e, 0xc9, 0x3b,
];

/// Why a boot chain could not be read from an image.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EspError {
    /// Reading the image failed.
    #[error("reading the image: {0}")]
    Io(#[from] io::Error),
    /// No GPT header at either sector size.
    #[error("no GPT header at LBA 1 for 512- or 4096-byte sectors")]
    NoGpt,
    /// The GPT header is there but describes something unreadable.
    #[error("bad GPT: {0}")]
    BadGpt(String),
    /// No partition has the EFI system type.
    #[error("no EFI system partition (type C12A7328-F81F-11D2-BA4B-00A0C93EC93B) in the GPT")]
    NoEsp,
    /// The ESP is larger than [`MAX_ESP_BYTES`].
    #[error("the EFI system partition is {len} bytes, more than the {max} read into memory")]
    EspTooLarge {
        /// Its size per the GPT.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// The image ends inside the partition table or the ESP.
    #[error("the image ends at byte {at}, before the end of the {what}")]
    Truncated {
        /// Where it ends.
        at: u64,
        /// What it ends inside.
        what: &'static str,
    },
    /// The ESP holds no FAT filesystem `fatfs` can read.
    #[error("the EFI system partition is not a readable FAT filesystem: {0}")]
    NotFat(String),
    /// A file or directory the chain needs is not there.
    #[error("the EFI system partition has no {0}")]
    Missing(String),
    /// More than one vendor directory has a shim and GRUB: which one boots is not ours to guess.
    #[error("two vendor directories have a shim and GRUB: EFI/{0} and EFI/{1}")]
    TwoVendors(String, String),
    /// A binary is larger than [`MAX_FILE_BYTES`].
    #[error("{path} is larger than {max} bytes")]
    FileTooLarge {
        /// Its path in the ESP.
        path: String,
        /// The limit.
        max: u64,
    },
}

/// The signed shim and GRUB of a release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootChain {
    /// The vendor directory they came from (`redhat`, `fedora`, ...), as spelled in the ESP.
    pub vendor: String,
    /// The shim's path in the ESP (`EFI/redhat/shimx64.efi`, or `EFI/BOOT/BOOTX64.EFI`).
    pub shim_path: String,
    /// The shim's bytes.
    pub shim: Vec<u8>,
    /// GRUB's path in the ESP.
    pub grub_path: String,
    /// GRUB's bytes.
    pub grub: Vec<u8>,
}

/// Reads the shim and GRUB from the ESP of a raw metal image (see the [module docs](self)).
///
/// # Errors
/// An [`EspError`] saying what is missing or malformed: no GPT, no ESP, not FAT, the files
/// missing, two vendor directories, or a read error.
pub fn extract_boot_chain(mut image: impl Read) -> Result<BootChain, EspError> {
    let esp = read_esp(&mut image)?;
    // fatfs 0.3.6 panics on some malformed FAT structures (a cluster number below 2 in a
    // directory entry or a FAT chain underflows): its panic is this function's typed error.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| read_chain(esp))).unwrap_or_else(
        |_| {
            Err(EspError::NotFat(
                "its structures are malformed (the FAT reader gave up on them)".into(),
            ))
        },
    )
}

fn le64(b: &[u8], at: usize) -> u64 {
    let mut a = [0; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

fn le32(b: &[u8], at: usize) -> u32 {
    let mut a = [0; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

/// Reads exactly `len` bytes into a buffer that grows only as they arrive.
fn read_bounded(
    r: &mut impl Read,
    len: u64,
    pos: u64,
    what: &'static str,
) -> Result<Vec<u8>, EspError> {
    let mut buf = Vec::new();
    r.take(len).read_to_end(&mut buf)?;
    if (buf.len() as u64) < len {
        return Err(EspError::Truncated {
            at: pos + buf.len() as u64,
            what,
        });
    }
    Ok(buf)
}

/// Skips from `pos` to `to` (forward only).
fn skip(r: &mut impl Read, pos: u64, to: u64, what: &'static str) -> Result<(), EspError> {
    let n = io::copy(&mut r.take(to - pos), &mut io::sink())?;
    if n < to - pos {
        return Err(EspError::Truncated { at: pos + n, what });
    }
    Ok(())
}

/// The ESP's bytes, read from the stream.
fn read_esp(r: &mut impl Read) -> Result<Vec<u8>, EspError> {
    // LBA 0 and 1 at the larger sector size hold the header at either.
    let head = {
        let mut buf = Vec::new();
        r.take(8192).read_to_end(&mut buf)?;
        buf
    };
    let sector = [512u64, 4096]
        .into_iter()
        .find(|&s| head.get(s as usize..s as usize + 8) == Some(b"EFI PART"))
        .ok_or(EspError::NoGpt)?;
    let h = &head[sector as usize..];
    if h.len() < 92 {
        return Err(EspError::NoGpt);
    }
    let table_lba = le64(h, 72);
    let count = u64::from(le32(h, 80));
    let entry_size = u64::from(le32(h, 84));
    if entry_size < 128 || entry_size % 8 != 0 || entry_size > 4096 {
        return Err(EspError::BadGpt(format!(
            "partition entry size {entry_size}"
        )));
    }
    let table_len = count * entry_size;
    if table_len > MAX_TABLE_BYTES {
        return Err(EspError::BadGpt(format!(
            "{count} entries of {entry_size} bytes"
        )));
    }
    let table_at = table_lba
        .checked_mul(sector)
        .ok_or_else(|| EspError::BadGpt(format!("partition array at LBA {table_lba}")))?;
    // The array follows the header (LBA 2 in every image we know).
    if table_at < 2 * sector {
        return Err(EspError::BadGpt(format!(
            "partition array at LBA {table_lba}"
        )));
    }
    let mut pos = head.len() as u64;
    let table = if table_at + table_len <= pos {
        head[table_at as usize..(table_at + table_len) as usize].to_vec()
    } else {
        let mut table = Vec::new();
        if table_at < pos {
            table.extend_from_slice(&head[table_at as usize..]);
        } else {
            skip(r, pos, table_at, "partition table")?;
            pos = table_at;
        }
        let rest = table_len - table.len() as u64;
        table.extend(read_bounded(r, rest, pos, "partition table")?);
        pos += rest;
        table
    };
    let entry = table
        .chunks_exact(entry_size as usize)
        .find(|e| e[..16] == ESP_TYPE)
        .ok_or(EspError::NoEsp)?;
    let (first, last) = (le64(entry, 32), le64(entry, 40));
    if last < first {
        return Err(EspError::BadGpt(format!("ESP from LBA {first} to {last}")));
    }
    let bad = || EspError::BadGpt(format!("ESP from LBA {first} to {last}"));
    let start = first.checked_mul(sector).ok_or_else(bad)?;
    let len = (last - first)
        .checked_add(1)
        .and_then(|n| n.checked_mul(sector))
        .ok_or_else(bad)?;
    if len > MAX_ESP_BYTES {
        return Err(EspError::EspTooLarge {
            len,
            max: MAX_ESP_BYTES,
        });
    }
    if start < pos {
        // Overlapping the header or the table: not a layout any image has.
        if start + len > pos || start < table_at + table_len {
            return Err(EspError::BadGpt(format!(
                "ESP at byte {start} overlaps the partition table"
            )));
        }
        // Inside the first 8 KiB already read (a tiny test image, say).
        if start + len <= head.len() as u64 {
            return Ok(head[start as usize..(start + len) as usize].to_vec());
        }
        return Err(bad());
    }
    skip(r, pos, start, "EFI system partition")?;
    read_bounded(r, len, start, "EFI system partition")
}

/// The names in a directory (bounded), as `(name, is_dir)`.
fn listing<T: fatfs::ReadWriteSeek>(
    dir: &fatfs::Dir<'_, T>,
) -> Result<Vec<(String, bool)>, EspError> {
    let mut out = Vec::new();
    for e in dir.iter().take(MAX_DIR_ENTRIES) {
        let e = e.map_err(|e| EspError::NotFat(e.to_string()))?;
        let name = e.file_name();
        if name != "." && name != ".." {
            out.push((name, e.is_dir()));
        }
    }
    Ok(out)
}

/// The entry named `name` (ASCII case-insensitively, as FAT compares) in `dir`.
fn find<'a, T: fatfs::ReadWriteSeek>(
    dir: &fatfs::Dir<'a, T>,
    name: &str,
    want_dir: bool,
) -> Result<Option<fatfs::DirEntry<'a, T>>, EspError> {
    for e in dir.iter().take(MAX_DIR_ENTRIES) {
        let e = e.map_err(|e| EspError::NotFat(e.to_string()))?;
        if e.is_dir() == want_dir && e.file_name().eq_ignore_ascii_case(name) {
            return Ok(Some(e));
        }
    }
    Ok(None)
}

/// A file's bytes. A file cannot be larger than its file system: one that claims to be has a
/// cluster chain that loops back on itself, and reading it would repeat the same clusters up to
/// its claimed size (a few bytes of image turned into up to [`MAX_FILE_BYTES`] of output).
fn read_file<T: fatfs::ReadWriteSeek>(
    e: &fatfs::DirEntry<'_, T>,
    path: &str,
    fs_bytes: u64,
) -> Result<Vec<u8>, EspError> {
    if e.len() > MAX_FILE_BYTES {
        return Err(EspError::FileTooLarge {
            path: path.into(),
            max: MAX_FILE_BYTES,
        });
    }
    if e.len() > fs_bytes {
        return Err(EspError::NotFat(format!(
            "{path} claims {} bytes in a {fs_bytes}-byte file system",
            e.len()
        )));
    }
    let mut buf = Vec::new();
    e.to_file()
        .take(e.len())
        .read_to_end(&mut buf)
        .map_err(|e| EspError::NotFat(format!("reading {path}: {e}")))?;
    Ok(buf)
}

fn read_chain(esp: Vec<u8>) -> Result<BootChain, EspError> {
    let fs_bytes = esp.len() as u64;
    let fs = fatfs::FileSystem::new(Cursor::new(esp), fatfs::FsOptions::new())
        .map_err(|e| EspError::NotFat(e.to_string()))?;
    let root = fs.root_dir();
    let efi = match find(&root, "EFI", true)? {
        Some(e) => e.to_dir(),
        None => return Err(EspError::Missing("EFI directory".into())),
    };
    let fallback_shim = match find(&efi, "BOOT", true)? {
        Some(boot) => find(&boot.to_dir(), "BOOTX64.EFI", false)?
            .map(|e| {
                read_file(&e, "EFI/BOOT/BOOTX64.EFI", fs_bytes)
                    .map(|b| ("BOOT/BOOTX64.EFI".to_owned(), b))
            })
            .transpose()?,
        None => None,
    };
    let mut found: Option<BootChain> = None;
    for (vendor, is_dir) in listing(&efi)? {
        if !is_dir || vendor.eq_ignore_ascii_case("BOOT") {
            continue;
        }
        let Some(dir) = find(&efi, &vendor, true)? else {
            continue;
        };
        let dir = dir.to_dir();
        let Some(grub) = find(&dir, "grubx64.efi", false)? else {
            continue;
        };
        let shim = find(&dir, "shimx64.efi", false)?;
        let (shim_path, shim) = match (shim, &fallback_shim) {
            (Some(s), _) => {
                let path = format!("EFI/{vendor}/{}", s.file_name());
                let bytes = read_file(&s, &path, fs_bytes)?;
                (path, bytes)
            }
            (None, Some((path, bytes))) => (format!("EFI/{path}"), bytes.clone()),
            (None, None) => continue,
        };
        if let Some(first) = &found {
            return Err(EspError::TwoVendors(first.vendor.clone(), vendor));
        }
        let grub_path = format!("EFI/{vendor}/{}", grub.file_name());
        let grub = read_file(&grub, &grub_path, fs_bytes)?;
        found = Some(BootChain {
            vendor,
            shim_path,
            shim,
            grub_path,
            grub,
        });
    }
    found.ok_or_else(|| {
        EspError::Missing(
            "EFI/<vendor>/ directory with grubx64.efi and shimx64.efi (or EFI/BOOT/BOOTX64.EFI)"
                .into(),
        )
    })
}

/// Where a cached boot chain's binaries are, and what they were read from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedBootChain {
    /// sha256 of the image file they were read from (as downloaded and verified).
    pub image_sha256: String,
    /// The vendor directory.
    pub vendor: String,
    /// The shim's path in the ESP.
    pub shim_path: String,
    /// sha256 of the shim; the cache holds it under this name.
    pub shim_sha256: String,
    /// GRUB's path in the ESP.
    pub grub_path: String,
    /// sha256 of GRUB.
    pub grub_sha256: String,
}

impl CachedBootChain {
    /// The shim's file in `cache`.
    pub fn shim(&self, cache: &Cache) -> Option<PathBuf> {
        cache.get(&self.shim_sha256)
    }

    /// GRUB's file in `cache`.
    pub fn grub(&self, cache: &Cache) -> Option<PathBuf> {
        cache.get(&self.grub_sha256)
    }
}

/// Why [`cache_boot_chain`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CacheChainError {
    /// The cache has no verified image with this sha256.
    #[error("the cache has no verified image {0}")]
    NoImage(String),
    /// The image's ESP did not yield a chain.
    #[error("image {image}: {source}")]
    Esp {
        /// sha256 of the image.
        image: String,
        /// Why.
        source: EspError,
    },
    /// Writing to the cache failed.
    #[error(transparent)]
    Cache(#[from] crate::Error),
}

/// The boot chain of the verified image `image_sha256` in `cache` (compressed as
/// `compression`, as downloaded), extracted once: the binaries are committed to the cache under
/// their sha256 (temporary file, fsync, rename) and `<image sha256>.boot-chain.json` records
/// which they are, so later calls only read that record.
///
/// # Errors
/// [`CacheChainError::NoImage`] when the cache lacks the image (only verified files reach
/// it), [`CacheChainError::Esp`] when its ESP has no chain, [`CacheChainError::Cache`] on I/O.
pub fn cache_boot_chain(
    cache: &Cache,
    image_sha256: &str,
    compression: Compression,
) -> Result<CachedBootChain, CacheChainError> {
    let record = record_path(cache, image_sha256)?;
    let known = std::fs::read(&record)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<CachedBootChain>(&bytes).ok())
        .filter(|k| {
            k.image_sha256 == image_sha256 && k.shim(cache).is_some() && k.grub(cache).is_some()
        });
    if let Some(known) = known {
        return Ok(known);
    }
    let image = cache
        .get(image_sha256)
        .ok_or_else(|| CacheChainError::NoImage(image_sha256.into()))?;
    let file = std::fs::File::open(&image).map_err(|e| crate::Error::io(&image, e))?;
    let esp = |source| CacheChainError::Esp {
        image: image_sha256.into(),
        source,
    };
    let reader = io::BufReader::new(file);
    let chain = match compression {
        Compression::None => extract_boot_chain(reader),
        Compression::Gzip => extract_boot_chain(flate2::read::MultiGzDecoder::new(reader)),
        #[cfg(feature = "xz")]
        Compression::Xz => extract_boot_chain(liblzma::read::XzDecoder::new_multi_decoder(reader)),
        #[cfg(not(feature = "xz"))]
        Compression::Xz => Err(EspError::Io(io::Error::new(
            io::ErrorKind::Unsupported,
            "xz images need rhcos-images' `xz` feature",
        ))),
    }
    .map_err(esp)?;
    let short = &image_sha256[..12.min(image_sha256.len())];
    let shim_sha256 = store(cache, &chain.shim, &format!("{short}-shimx64.efi"))?;
    let grub_sha256 = store(cache, &chain.grub, &format!("{short}-grubx64.efi"))?;
    let known = CachedBootChain {
        image_sha256: image_sha256.into(),
        vendor: chain.vendor,
        shim_path: chain.shim_path,
        shim_sha256,
        grub_path: chain.grub_path,
        grub_sha256,
    };
    let mut tmp = cache.temp_file()?;
    let json = serde_json::to_vec_pretty(&known).expect("plain struct serializes");
    std::io::Write::write_all(&mut tmp, &json)
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(|e| crate::Error::io(tmp.path(), e))?;
    let tmp_path = tmp.path().to_owned();
    tmp.persist(&record)
        .map_err(|e| crate::Error::io(tmp_path, e.error))?;
    Ok(known)
}

fn record_path(cache: &Cache, image_sha256: &str) -> Result<PathBuf, crate::Error> {
    let p = cache.path_for(image_sha256)?;
    Ok(p.with_file_name(format!("{image_sha256}.boot-chain.json")))
}

/// Commits `bytes` to the cache under their sha256 (unless already there); returns it.
fn store(cache: &Cache, bytes: &[u8], name: &str) -> Result<String, crate::Error> {
    let sha = hex::encode(Sha256::digest(bytes));
    if cache.get(&sha).is_none() {
        let mut tmp = cache.temp_file()?;
        std::io::Write::write_all(&mut tmp, bytes).map_err(|e| crate::Error::io(tmp.path(), e))?;
        cache.commit(tmp, &sha, name)?;
    }
    Ok(sha)
}
