//! Era-aware install selection: which kernel, initramfs, rootfs and metal image a bare-metal
//! install needs, for the metadata at hand. Pure: it reads parsed metadata and returns a plan.
//!
//! Two installer eras exist:
//!
//! - [`InstallerEra::Legacy`], the shell installer of RHCOS 4.1-4.5 (`rhcos.json` with `kernel`
//!   and `initramfs` images, whose files are `…-installer-kernel` and
//!   `…-installer-initramfs.img`): an installer kernel and initramfs that need `coreos.inst=yes`
//!   and always download the metal image from `coreos.inst.image_url`. There is no rootfs.
//! - [`InstallerEra::Live`], RHCOS 4.6+ and Fedora CoreOS (stream metadata, or a 4.6-4.7
//!   `meta.json` with `live-*` images): the live kernel, initramfs and rootfs, with the Rust
//!   coreos-installer, which can also install from the image embedded in the live system, so the
//!   metal image is optional.
//!
//! The era corresponds to `ipxe_script::Generation` (same two cases); this crate stands alone,
//! so the caller maps one onto the other.

use std::fmt;

use crate::error::{Error, Result};
use crate::legacy::LegacyMeta;
use crate::select::{Artifact, Kind, Metadata, legacy_arch, legacy_lookup, stream_lookup};
use crate::stream::Stream;

/// Which installer a kernel and initramfs belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum InstallerEra {
    /// RHCOS 4.1-4.5: the installer kernel and initramfs of the shell installer
    /// (`coreos.inst=yes`, `coreos.inst.image_url` required, no rootfs).
    Legacy,
    /// RHCOS 4.6+ and Fedora CoreOS: the live kernel, initramfs and rootfs, with the Rust
    /// coreos-installer (`coreos.live.rootfs_url`, image URL optional).
    Live,
}

impl fmt::Display for InstallerEra {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            InstallerEra::Legacy => "legacy installer (RHCOS 4.1-4.5)",
            InstallerEra::Live => "live installer (RHCOS 4.6+, Fedora CoreOS)",
        })
    }
}

/// What the install targets. Plain data; `Default` is a 512-byte-sector BIOS disk with the metal
/// image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct InstallOptions {
    /// Logical sector size of the target disk: `512` or `4096` (4Kn disks need the `4k` image).
    pub sector_size: u32,
    /// Include the metal image. The legacy installer always needs it, so it is included for
    /// [`InstallerEra::Legacy`] whatever this says; the live installer can install without it
    /// (from the image in the live system, or the network copy the caller names).
    pub want_image: bool,
    /// The host boots with UEFI. Only RHCOS 4.1-4.2 care: they ship `metal-bios` and
    /// `metal-uefi` images instead of one `metal` image.
    pub uefi: bool,
}

impl Default for InstallOptions {
    fn default() -> Self {
        InstallOptions {
            sector_size: 512,
            want_image: true,
            uefi: false,
        }
    }
}

/// The artifacts of one bare-metal install, chosen for the metadata's era.
///
/// Every [`Artifact`] carries its file name, URL, SHA-256, size when the metadata has it, and
/// its signature URL ([`Artifact::signature_url`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallSet {
    /// Which installer boots: decides the kernel arguments.
    pub era: InstallerEra,
    /// The release (build) of the kernel; for streams, of the `metal` platform.
    pub release: String,
    /// The installer kernel (legacy) or live kernel.
    pub kernel: Artifact,
    /// The installer initramfs (legacy) or live initramfs.
    pub initramfs: Artifact,
    /// The live root filesystem ([`InstallerEra::Live`] only).
    pub rootfs: Option<Artifact>,
    /// The metal disk image for the requested sector size, when wanted (always for legacy).
    pub image: Option<Artifact>,
    /// The sector size the image was chosen for.
    pub sector_size: u32,
}

impl InstallSet {
    /// Every artifact to fetch, in boot order: kernel, initramfs, rootfs, image.
    pub fn artifacts(&self) -> Vec<&Artifact> {
        [Some(&self.kernel), Some(&self.initramfs)]
            .into_iter()
            .chain([self.rootfs.as_ref(), self.image.as_ref()])
            .flatten()
            .collect()
    }
}

impl Metadata {
    /// The kernel, initramfs, rootfs and metal image for installing `arch` on bare metal.
    ///
    /// The era follows from the metadata: stream metadata and legacy documents with `live-*`
    /// images are [`InstallerEra::Live`]; a legacy `rhcos.json` with only the installer
    /// `kernel` and `initramfs` is [`InstallerEra::Legacy`].
    ///
    /// The metal image is `raw.gz` (RHCOS) or `raw.xz` (Fedora CoreOS), `4k.raw.gz` or
    /// `4k.raw.xz` for 4096-byte sectors. When a stream offers both compressions the gzip one is
    /// chosen: coreos-installer streams either straight to disk, and on a provisioning LAN the
    /// installer's decompression speed limits the install, where gzip decodes several times
    /// faster than xz (xz only saves bytes on the wire). Legacy 4.1-4.2 `metal-bios` /
    /// `metal-uefi` follow [`InstallOptions::uefi`].
    ///
    /// Errors: [`Error::UnknownArch`], [`Error::UnsupportedSectorSize`], [`Error::No4kImage`]
    /// when a 4096-byte-sector install is asked of metadata without a 4k image, and
    /// [`Error::UnknownArtifact`] when a kernel, initramfs, rootfs or image is missing.
    pub fn install_set(&self, arch: &str, options: InstallOptions) -> Result<InstallSet> {
        self.check_arch(arch)?;
        if !matches!(options.sector_size, 512 | 4096) {
            return Err(Error::UnsupportedSectorSize {
                sector_size: options.sector_size,
            });
        }
        let missing = |what: &str| Error::UnknownArtifact {
            arch: arch.to_owned(),
            artifact: what.to_owned(),
            available: self.available_names(arch),
        };
        match self {
            Metadata::Stream(s) => stream_set(s, arch, options, missing),
            Metadata::Legacy(l) => legacy_set(l, options, missing),
        }
    }
}

fn stream_set(
    s: &Stream,
    arch: &str,
    options: InstallOptions,
    missing: impl Fn(&str) -> Error,
) -> Result<InstallSet> {
    let pxe = |slot: &str, kind| {
        stream_lookup(s, arch, "metal", "pxe", slot, Some(kind))?.ok_or_else(|| missing(slot))
    };
    let kernel = pxe("kernel", Kind::Kernel)?;
    let initramfs = pxe("initramfs", Kind::Initramfs)?;
    let rootfs = pxe("rootfs", Kind::Rootfs)?;
    let image = if options.want_image {
        let kinds: [Kind; 2] = if options.sector_size == 4096 {
            [Kind::Raw4kGz, Kind::Raw4kXz]
        } else {
            [Kind::RawGz, Kind::RawXz]
        };
        let mut found = None;
        for kind in kinds {
            let (platform, format, slot) = kind.stream_path();
            if let Some(a) = stream_lookup(s, arch, platform, format, slot, Some(kind))? {
                found = Some(a);
                break;
            }
        }
        Some(found.ok_or_else(|| {
            if options.sector_size == 4096 {
                Error::No4kImage {
                    arch: arch.to_owned(),
                    release: kernel.release.clone(),
                }
            } else {
                missing("raw.gz or raw.xz")
            }
        })?)
    } else {
        None
    };
    Ok(InstallSet {
        era: InstallerEra::Live,
        release: kernel.release.clone(),
        kernel,
        initramfs,
        rootfs: Some(rootfs),
        image,
        sector_size: options.sector_size,
    })
}

fn legacy_set(
    l: &LegacyMeta,
    options: InstallOptions,
    missing: impl Fn(&str) -> Error,
) -> Result<InstallSet> {
    let first = |keys: &[&str], kind| -> Result<Option<Artifact>> {
        for key in keys {
            if let Some(a) = legacy_lookup(l, key, Some(kind))? {
                return Ok(Some(a));
            }
        }
        Ok(None)
    };
    let era = if l.images.contains_key("live-kernel") {
        InstallerEra::Live
    } else {
        InstallerEra::Legacy
    };
    let (kernel, initramfs, rootfs) = match era {
        InstallerEra::Live => (
            first(&["live-kernel"], Kind::Kernel)?.ok_or_else(|| missing("live-kernel"))?,
            first(&["live-initramfs"], Kind::Initramfs)?
                .ok_or_else(|| missing("live-initramfs"))?,
            Some(first(&["live-rootfs"], Kind::Rootfs)?.ok_or_else(|| missing("live-rootfs"))?),
        ),
        InstallerEra::Legacy => (
            first(&["kernel", "installer-kernel"], Kind::Kernel)?
                .ok_or_else(|| missing("kernel"))?,
            first(&["initramfs", "installer-initramfs"], Kind::Initramfs)?
                .ok_or_else(|| missing("initramfs"))?,
            None,
        ),
    };
    let image = if options.want_image || era == InstallerEra::Legacy {
        let found = if options.sector_size == 4096 {
            first(&["metal4k"], Kind::Raw4kGz)?
        } else if options.uefi {
            first(&["metal", "metal-uefi"], Kind::RawGz)?
        } else {
            first(&["metal", "metal-bios"], Kind::RawGz)?
        };
        Some(found.ok_or_else(|| {
            if options.sector_size == 4096 {
                Error::No4kImage {
                    arch: legacy_arch(l).to_owned(),
                    release: l.buildid.clone(),
                }
            } else {
                missing("metal")
            }
        })?)
    } else {
        None
    };
    Ok(InstallSet {
        era,
        release: l.buildid.clone(),
        kernel,
        initramfs,
        rootfs,
        image,
        sector_size: options.sector_size,
    })
}
