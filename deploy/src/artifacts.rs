//! The files a deployment serves: chosen from the image metadata for its era, then fetched,
//! verified (hashes and OpenPGP signatures) and cached by `rhcos-images`.

use std::path::PathBuf;

use ipxe_script::Generation;
use rhcos_images::{
    Artifact, Cache, Fetcher, InstallOptions, InstallSet, InstallerEra, Keyring, Location,
    Metadata, Options, Request, SignaturePolicy, Source,
};

use crate::error::Error;
use crate::plan::{InstallFrom, Plan, Role, SecureBoot};

/// Where the deployment gets the files it serves: URL paths under the HTTP root, which is the
/// image cache. Each artifact is served under its sha256, its signature beside it (`.sig`).
#[derive(Debug, Clone)]
pub struct Artifacts {
    /// The HTTP root (the image cache).
    pub root: PathBuf,
    /// Which installer the kernel and initramfs are: decides the kernel arguments.
    pub generation: Generation,
    /// URL path of the kernel, under the root.
    pub kernel: String,
    /// URL path of the initramfs.
    pub initramfs: String,
    /// URL path of the live rootfs, when the stream has one.
    pub rootfs: Option<String>,
    /// URL path of the metal image for 512-byte-sector disks, unless live installs copy the
    /// live system instead.
    pub image: Option<String>,
    /// URL path of the metal image for 4Kn disks, when a host needs it.
    pub image_4k: Option<String>,
    /// The release's signed shim and GRUB, read from its verified metal image, when the plan
    /// says `provisioning.secure_boot.from = "image"`.
    pub boot_chain: Option<ReleaseBootChain>,
}

/// The release's signed shim and GRUB in the cache, and the image they were read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseBootChain {
    /// The shim (a file in the cache, named by its sha256).
    pub shim: PathBuf,
    /// GRUB (likewise).
    pub grub: PathBuf,
    /// Where they came from: the image's sha256, the vendor directory and the ESP paths.
    pub provenance: rhcos_images::esp::CachedBootChain,
}

impl Artifacts {
    /// A live-era release under `root` with only a kernel (`/k`) and an initramfs (`/i`): the
    /// unit tests' artifacts, which they extend with struct update syntax.
    #[cfg(test)]
    pub(crate) fn for_tests(root: impl Into<PathBuf>) -> Artifacts {
        Artifacts {
            root: root.into(),
            generation: Generation::Live,
            kernel: "/k".into(),
            initramfs: "/i".into(),
            rootfs: None,
            image: None,
            image_4k: None,
            boot_chain: None,
        }
    }

    /// The metal image for a disk with this logical sector size.
    pub fn image_for(&self, sector_size: u32) -> Option<&str> {
        match sector_size {
            4096 => self.image_4k.as_deref(),
            _ => self.image.as_deref(),
        }
    }
}

/// What the metadata offers for the plan: the install set and, when a host has a 4Kn disk, its
/// 4k image. Reading it costs one metadata download and nothing else.
#[derive(Debug, Clone)]
pub struct Selection {
    /// Where the metadata came from.
    pub metadata: String,
    /// The kernel, initramfs, rootfs and 512-byte image.
    pub set: InstallSet,
    /// The 4k metal image, when a host of the plan needs it.
    pub image_4k: Option<Artifact>,
    /// Where the artifacts are read from (upstream or the plan's mirror).
    source: Source,
}

impl Selection {
    /// Every artifact to fetch, kernel first.
    pub fn artifacts(&self) -> Vec<&Artifact> {
        let mut all = self.set.artifacts();
        all.extend(self.image_4k.as_ref());
        all
    }

    /// The URL paths they are served under once fetched into the cache at `root`: their
    /// sha256 as downloaded, which the metadata already names.
    pub fn served(&self, root: PathBuf) -> Artifacts {
        let path = |a: &Artifact| format!("/{}", a.sha256);
        Artifacts {
            root,
            generation: match self.set.era {
                InstallerEra::Legacy => Generation::Legacy,
                _ => Generation::Live,
            },
            kernel: path(&self.set.kernel),
            initramfs: path(&self.set.initramfs),
            rootfs: self.set.rootfs.as_ref().map(path),
            image: self.set.image.as_ref().map(path),
            image_4k: self.image_4k.as_ref().map(path),
            boot_chain: None,
        }
    }
}

/// Reads the plan's image metadata (a stream, a legacy `rhcos.json`, or the mirror's
/// `stream.json`) and chooses what to install: the installer generation follows from the
/// metadata, the image from the hosts' disks.
///
/// # Errors
/// [`Error::NoStream`] without metadata, [`Error::Images`] when it cannot be read or lacks an
/// artifact the plan needs (a 4k image for a 4Kn host, say).
pub async fn select_artifacts(plan: &Plan) -> Result<Selection, Error> {
    let fetcher = Fetcher::new(fetch_options(plan)?)?;
    select_with(plan, &fetcher).await
}

async fn select_with(plan: &Plan, fetcher: &Fetcher) -> Result<Selection, Error> {
    // An air-gapped mirror carries its own stream.json.
    let metadata = match (&plan.images.stream, &plan.images.mirror) {
        (Some(s), _) => s.clone(),
        (None, Some(dir)) if dir.join("stream.json").is_file() => {
            dir.join("stream.json").display().to_string()
        }
        _ => return Err(Error::NoStream),
    };
    let meta: Metadata = fetcher.metadata(&Location::parse(&metadata)?).await?;
    let source = match &plan.images.mirror {
        Some(dir) => Source::mirror(&dir.display().to_string())?,
        None => Source::Upstream,
    };
    let options = InstallOptions {
        // The release's shim and GRUB are read from the metal image: then it is fetched (and
        // verified) even when installs copy the live system.
        want_image: plan.images.install_from == InstallFrom::Download
            || plan.provisioning.secure_boot == Some(SecureBoot::FromImage),
        ..InstallOptions::default()
    };
    let arch = &plan.images.arch;
    let set = meta.install_set(arch, options)?;
    // A host the plan says has a 4Kn disk needs the 4k image; an introspected host may turn
    // out to have one, so it is fetched for them too when the metadata has it.
    let needs_4k = plan.hosts.iter().any(|h| h.sector_size == Some(4096));
    let may_need_4k = plan.hosts.iter().any(|h| h.role == Role::Introspect);
    let options_4k = InstallOptions {
        sector_size: 4096,
        ..options
    };
    let image_4k = match (set.image.is_some(), needs_4k, may_need_4k) {
        (false, _, _) | (true, false, false) => None,
        (true, true, _) => meta.install_set(arch, options_4k)?.image,
        (true, false, true) => meta
            .install_set(arch, options_4k)
            .ok()
            .and_then(|s| s.image),
    };
    Ok(Selection {
        metadata,
        set,
        image_4k,
        source,
    })
}

/// Fetches and verifies what [`select_artifacts`] chooses into the plan's cache (hashes always,
/// detached signatures unless the plan says the images are unsigned); every file is then
/// served from the cache under its sha256, with its signature at `<path>.sig`.
///
/// # Errors
/// As [`select_artifacts`], and [`Error::Images`] for a failed download, a hash mismatch or a
/// missing or bad signature (naming the artifact); nothing unverified reaches the cache.
pub async fn fetch_artifacts(
    plan: &Plan,
    progress: impl rhcos_images::Progress + 'static,
) -> Result<Artifacts, Error> {
    let cache = Cache::open(&plan.images.cache)?;
    let fetcher = Fetcher::new(fetch_options(plan)?)?.with_progress(progress);
    let selection = select_with(plan, &fetcher).await?;
    let requests = selection
        .artifacts()
        .into_iter()
        .map(|a| Request::new(a.clone(), &selection.source, false))
        .collect::<Result<Vec<_>, _>>()?;
    for fetched in fetcher.fetch_all(&cache, &requests).await {
        fetched?;
    }
    let mut artifacts = selection.served(cache.root().to_owned());
    if plan.provisioning.secure_boot == Some(SecureBoot::FromImage) {
        artifacts.boot_chain = Some(release_boot_chain(&cache, &selection)?);
    }
    Ok(artifacts)
}

/// The shim and GRUB of the release's metal image (the 512-byte one, else the 4k one; their
/// ESPs hold the same files), which [`fetch_artifacts`] verified into the cache: read once,
/// then kept in the cache by sha256 with a record of the image they came from.
fn release_boot_chain(cache: &Cache, selection: &Selection) -> Result<ReleaseBootChain, Error> {
    let image = selection
        .set
        .image
        .as_ref()
        .or(selection.image_4k.as_ref())
        .ok_or_else(|| Error::BootChain {
            reason: format!(
                "`provisioning.secure_boot.from = \"image\"`, but {} has no metal image",
                selection.metadata
            ),
        })?;
    let provenance = rhcos_images::esp::cache_boot_chain(cache, &image.sha256, image.compression())
        .map_err(|e| Error::BootChain {
            reason: format!("{}: {e}", image.name),
        })?;
    let missing = || Error::BootChain {
        reason: "the cache lost the extracted shim or GRUB".into(),
    };
    Ok(ReleaseBootChain {
        shim: provenance.shim(cache).ok_or_else(missing)?,
        grub: provenance.grub(cache).ok_or_else(missing)?,
        provenance,
    })
}

/// Fetch options for the plan: its keyring, or none at all for unsigned images.
fn fetch_options(plan: &Plan) -> Result<Options, Error> {
    let signatures = match (&plan.images.keyring, plan.images.unsigned) {
        (_, true) => SignaturePolicy::Insecure,
        (Some(path), false) => {
            let bytes = std::fs::read(path).map_err(|source| Error::Read {
                path: path.clone(),
                source,
            })?;
            SignaturePolicy::Require(Keyring::from_bytes(&bytes, &path.display().to_string())?)
        }
        (None, false) => SignaturePolicy::Require(Keyring::release_keys()),
    };
    Ok(Options {
        signatures,
        ..Options::default()
    })
}
