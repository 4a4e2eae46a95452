//! Metadata detection and artifact selection: the part of "get images" that is pure data.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};
use crate::legacy::LegacyMeta;
use crate::stream::{Stream, StreamArtifact};

/// What to download. Names match the stream format names where there is one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Kind {
    /// PXE live kernel (`metal` / `pxe` / `kernel`).
    Kernel,
    /// PXE live initramfs (`metal` / `pxe` / `initramfs`).
    Initramfs,
    /// PXE live root filesystem (`metal` / `pxe` / `rootfs`).
    Rootfs,
    /// Metal disk image, gzip (`metal` / `raw.gz`): what `coreos.inst.image_url` points at on RHCOS.
    RawGz,
    /// Metal disk image for 4Kn disks, gzip (`metal` / `4k.raw.gz`).
    Raw4kGz,
    /// Metal disk image, xz (`metal` / `raw.xz`): the FCOS spelling.
    RawXz,
    /// Metal disk image for 4Kn disks, xz (`metal` / `4k.raw.xz`).
    Raw4kXz,
    /// QEMU qcow2, gzip (`qemu` / `qcow2.gz`): the bootstrap VM's disk on RHCOS.
    QemuGz,
    /// QEMU qcow2, xz (`qemu` / `qcow2.xz`): the FCOS spelling.
    QemuXz,
    /// Live ISO (`metal` / `iso`).
    Iso,
}

impl Kind {
    /// Every kind, in display order.
    pub const ALL: [Kind; 10] = [
        Kind::Kernel,
        Kind::Initramfs,
        Kind::Rootfs,
        Kind::RawGz,
        Kind::Raw4kGz,
        Kind::RawXz,
        Kind::Raw4kXz,
        Kind::QemuGz,
        Kind::QemuXz,
        Kind::Iso,
    ];

    /// The short name used on command lines and in errors.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Kernel => "kernel",
            Kind::Initramfs => "initramfs",
            Kind::Rootfs => "rootfs",
            Kind::RawGz => "raw.gz",
            Kind::Raw4kGz => "4k.raw.gz",
            Kind::RawXz => "raw.xz",
            Kind::Raw4kXz => "4k.raw.xz",
            Kind::QemuGz => "qcow2.gz",
            Kind::QemuXz => "qcow2.xz",
            Kind::Iso => "iso",
        }
    }

    /// Where this kind lives in stream metadata: (platform, format, file slot).
    pub fn stream_path(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Kind::Kernel => ("metal", "pxe", "kernel"),
            Kind::Initramfs => ("metal", "pxe", "initramfs"),
            Kind::Rootfs => ("metal", "pxe", "rootfs"),
            Kind::QemuGz => ("qemu", "qcow2.gz", "disk"),
            Kind::QemuXz => ("qemu", "qcow2.xz", "disk"),
            other => ("metal", other.name(), "disk"),
        }
    }

    /// Legacy `images.<key>` names for this kind, newest spelling first.
    ///
    /// 4.1-4.2 split the metal image into `metal-bios` and `metal-uefi`; this picks `metal-bios`
    /// the way public UPI scripts do (`.images["metal-bios"].path // .images["metal"].path`).
    /// Use [`LegacyMeta`] directly for `metal-uefi`.
    pub fn legacy_keys(self) -> &'static [&'static str] {
        match self {
            Kind::Kernel => &["live-kernel", "kernel"],
            Kind::Initramfs => &["live-initramfs", "initramfs"],
            Kind::Rootfs => &["live-rootfs"],
            Kind::RawGz => &["metal", "metal-bios"],
            Kind::Raw4kGz => &["metal4k"],
            Kind::QemuGz => &["qemu"],
            Kind::Iso => &["live-iso", "iso"],
            Kind::RawXz | Kind::Raw4kXz | Kind::QemuXz => &[],
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Kind {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim();
        let alias = match s {
            "pxe-kernel" | "live-kernel" => Some(Kind::Kernel),
            "pxe-initramfs" | "live-initramfs" => Some(Kind::Initramfs),
            "pxe-rootfs" | "live-rootfs" => Some(Kind::Rootfs),
            "metal" => Some(Kind::RawGz),
            "qemu" => Some(Kind::QemuGz),
            _ => None,
        };
        alias
            .or_else(|| Kind::ALL.into_iter().find(|k| k.name() == s))
            .ok_or_else(|| Error::UnknownKind {
                name: s.to_owned(),
                expected: Kind::ALL.iter().map(|k| k.name().to_owned()).collect(),
            })
    }
}

/// Compression of an artifact as downloaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Compression {
    /// Stored as is.
    #[default]
    None,
    /// gzip, possibly multi-member.
    Gzip,
    /// xz, possibly multi-stream.
    Xz,
}

impl Compression {
    /// Guesses from a file name suffix (`.gz`, `.xz`).
    pub fn from_name(name: &str) -> Self {
        if name.ends_with(".gz") {
            Compression::Gzip
        } else if name.ends_with(".xz") {
            Compression::Xz
        } else {
            Compression::None
        }
    }

    /// Detects from the first bytes of the data; `None` when the magic is neither gzip nor xz.
    pub fn from_magic(head: &[u8]) -> Self {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
            Compression::Xz
        } else {
            Compression::None
        }
    }

    /// The file name with this compression's suffix removed.
    pub fn strip_suffix(self, name: &str) -> &str {
        let suffix = match self {
            Compression::Gzip => ".gz",
            Compression::Xz => ".xz",
            Compression::None => "",
        };
        name.strip_suffix(suffix).unwrap_or(name)
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Compression::None => "uncompressed",
            Compression::Gzip => "gzip",
            Compression::Xz => "xz",
        })
    }
}

/// One selected artifact, resolved to a URL and the hashes that must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Artifact {
    /// The kind it was selected as, if it came from [`Metadata::select`].
    pub kind: Option<Kind>,
    /// File name: the last path segment of `location`. Used for the cache's name index.
    pub name: String,
    /// Download URL from the metadata.
    pub location: String,
    /// Lowercase hex SHA-256 of the file as downloaded.
    pub sha256: String,
    /// Lowercase hex SHA-256 after decompression, when the metadata has it.
    pub uncompressed_sha256: Option<String>,
    /// Size as downloaded, when the metadata has it (legacy only).
    pub size: Option<u64>,
    /// Detached signature URL, when the metadata has it.
    pub signature: Option<String>,
    /// Release (build) the artifact belongs to.
    pub release: String,
}

impl Artifact {
    /// Compression guessed from the file name.
    pub fn compression(&self) -> Compression {
        Compression::from_name(&self.name)
    }

    /// Where the detached OpenPGP signature is: the metadata's `signature` field, or else the
    /// stream convention `<location>.sig` (RHCOS stream files and legacy `rhcos.json` name none,
    /// but the mirrors publish signatures beside the files the same way).
    pub fn signature_url(&self) -> String {
        self.signature
            .clone()
            .unwrap_or_else(|| format!("{}.sig", self.location))
    }
}

/// A parsed metadata document of either format.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Metadata {
    /// `stream.json` (FCOS, RHCOS 4.8+).
    Stream(Stream),
    /// Legacy `rhcos.json` / `meta.json` (RHCOS 4.1-4.7).
    Legacy(LegacyMeta),
}

impl Metadata {
    /// Parses either format, telling them apart by their top-level keys. `origin` (a URL or path)
    /// only goes into errors.
    pub fn from_slice(bytes: &[u8], origin: &str) -> Result<Self> {
        let malformed = |source| Error::Metadata {
            origin: origin.to_owned(),
            source,
        };
        let value: serde_json::Value = serde_json::from_slice(bytes).map_err(malformed)?;
        let is_obj_with = |key: &str| value.get(key).is_some();
        if is_obj_with("architectures") {
            serde_json::from_value(value)
                .map(Metadata::Stream)
                .map_err(malformed)
        } else if is_obj_with("baseURI") && is_obj_with("images") {
            serde_json::from_value(value)
                .map(Metadata::Legacy)
                .map_err(malformed)
        } else {
            Err(Error::UnknownMetadataFormat {
                origin: origin.to_owned(),
            })
        }
    }

    /// Architectures present, sorted.
    pub fn architectures(&self) -> Vec<String> {
        match self {
            Metadata::Stream(s) => s.architectures.keys().cloned().collect(),
            Metadata::Legacy(l) => vec![legacy_arch(l).to_owned()],
        }
    }

    /// Every artifact of a known [`Kind`] for `arch`, in [`Kind::ALL`] order.
    pub fn available(&self, arch: &str) -> Result<Vec<Artifact>> {
        self.check_arch(arch)?;
        let mut out = Vec::new();
        for kind in Kind::ALL {
            if let Some(a) = self.lookup(arch, kind)? {
                out.push(a);
            }
        }
        Ok(out)
    }

    /// Selects one artifact per kind. An unknown arch or a kind the metadata lacks is an error
    /// that lists what exists.
    pub fn select(&self, arch: &str, kinds: &[Kind]) -> Result<Vec<Artifact>> {
        self.check_arch(arch)?;
        kinds
            .iter()
            .map(|&kind| {
                self.lookup(arch, kind)?
                    .ok_or_else(|| Error::UnknownArtifact {
                        arch: arch.to_owned(),
                        artifact: kind.name().to_owned(),
                        available: self.available_names(arch),
                    })
            })
            .collect()
    }

    pub(crate) fn available_names(&self, arch: &str) -> Vec<String> {
        let mut names: Vec<String> = Kind::ALL
            .into_iter()
            .filter(|&k| matches!(self.lookup(arch, k), Ok(Some(_))))
            .map(|k| k.name().to_owned())
            .collect();
        // Formats we have no Kind for are still worth naming (cloud platforms, for example).
        if let Metadata::Stream(s) = self
            && let Some(a) = s.architectures.get(arch)
        {
            for (platform, p) in &a.artifacts {
                for format in p.formats.keys() {
                    let known = Kind::ALL.iter().any(|k| {
                        let (kp, kf, _) = k.stream_path();
                        kp == platform && kf == format
                    });
                    if !known {
                        names.push(format!("{platform}/{format}"));
                    }
                }
            }
        }
        names
    }

    pub(crate) fn check_arch(&self, arch: &str) -> Result<()> {
        let archs = self.architectures();
        if archs.iter().any(|a| a == arch) {
            Ok(())
        } else {
            Err(Error::UnknownArch {
                arch: arch.to_owned(),
                available: archs,
            })
        }
    }

    fn lookup(&self, arch: &str, kind: Kind) -> Result<Option<Artifact>> {
        match self {
            Metadata::Stream(s) => {
                let (platform, format, slot) = kind.stream_path();
                stream_lookup(s, arch, platform, format, slot, Some(kind))
            }
            Metadata::Legacy(l) => {
                let Some(key) = kind
                    .legacy_keys()
                    .iter()
                    .find(|k| l.images.contains_key(**k))
                else {
                    return Ok(None);
                };
                legacy_lookup(l, key, Some(kind))
            }
        }
    }
}

/// The file in `slot` (`disk`, `kernel`, `initramfs`, `rootfs`) of one stream format.
pub(crate) fn stream_lookup(
    s: &Stream,
    arch: &str,
    platform: &str,
    format: &str,
    slot: &str,
    kind: Option<Kind>,
) -> Result<Option<Artifact>> {
    let Some(p) = s
        .architectures
        .get(arch)
        .and_then(|a| a.artifacts.get(platform))
    else {
        return Ok(None);
    };
    let Some(f) = p.formats.get(format) else {
        return Ok(None);
    };
    let file: Option<&StreamArtifact> = match slot {
        "kernel" => f.kernel.as_ref(),
        "initramfs" => f.initramfs.as_ref(),
        "rootfs" => f.rootfs.as_ref(),
        _ => f.disk.as_ref(),
    };
    let Some(file) = file else { return Ok(None) };
    let field = format!("architectures.{arch}.artifacts.{platform}.formats.{format}.{slot}");
    artifact(
        &field,
        kind,
        file.location.clone(),
        &file.sha256,
        file.uncompressed_sha256.as_deref(),
        None,
        file.signature.clone(),
        &p.release,
    )
    .map(Some)
}

/// `images.<key>` of a legacy document.
pub(crate) fn legacy_lookup(
    l: &LegacyMeta,
    key: &str,
    kind: Option<Kind>,
) -> Result<Option<Artifact>> {
    let Some(image) = l.images.get(key) else {
        return Ok(None);
    };
    let field = format!("images.{key}");
    let location = format!("{}{}", l.base_uri, image.path);
    artifact(
        &field,
        kind,
        location,
        &image.sha256,
        image.uncompressed_sha256.as_deref(),
        image.size,
        None,
        &l.buildid,
    )
    .map(Some)
}

pub(crate) fn legacy_arch(l: &LegacyMeta) -> &str {
    l.basearch.as_deref().unwrap_or("x86_64")
}

#[allow(clippy::too_many_arguments)] // reason: private constructor mirroring the struct's fields
fn artifact(
    field: &str,
    kind: Option<Kind>,
    location: String,
    sha256: &str,
    uncompressed: Option<&str>,
    size: Option<u64>,
    signature: Option<String>,
    release: &str,
) -> Result<Artifact> {
    let sha256 = check_sha256(&format!("{field}.sha256"), sha256)?;
    let uncompressed_sha256 = uncompressed
        .map(|u| check_sha256(&format!("{field}.uncompressed-sha256"), u))
        .transpose()?;
    let name = file_name(&location).ok_or_else(|| Error::InvalidField {
        field: format!("{field}.location"),
        reason: format!("{location:?} has no file name"),
    })?;
    Ok(Artifact {
        kind,
        name,
        location,
        sha256,
        uncompressed_sha256,
        size,
        signature,
        release: release.to_owned(),
    })
}

/// Checks a hex SHA-256 and returns it in lowercase.
pub(crate) fn check_sha256(field: &str, value: &str) -> Result<String> {
    if value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(value.to_ascii_lowercase())
    } else {
        Err(Error::InvalidField {
            field: field.to_owned(),
            reason: format!("{value:?} is not 64 hex digits"),
        })
    }
}

/// Last path segment of a URL or path, without query or fragment. `None` when empty or unsafe.
pub(crate) fn file_name(location: &str) -> Option<String> {
    let no_query = location.split(['?', '#']).next().unwrap_or_default();
    let last = no_query.rsplit('/').next().unwrap_or_default();
    (!last.is_empty() && last != "." && last != ".." && !last.contains('\\'))
        .then(|| last.to_owned())
}
