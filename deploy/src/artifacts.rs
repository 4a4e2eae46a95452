//! The files a deployment serves: fetched, verified and cached by `rhcos-images`.

use std::collections::HashMap;
use std::path::PathBuf;

use crate::error::Error;
use crate::plan::Plan;

/// Where the deployment gets the files it serves.
#[derive(Debug, Clone)]
pub struct Artifacts {
    /// The HTTP root (the image cache).
    pub root: PathBuf,
    /// URL path of the kernel, under the root.
    pub kernel: String,
    /// URL path of the initramfs.
    pub initramfs: String,
    /// URL path of the live rootfs, when the stream has one.
    pub rootfs: Option<String>,
    /// URL path of the metal image (`raw.gz`).
    pub image: String,
}

/// Fetches and verifies the kernel, initramfs, rootfs (when present) and metal image into the
/// plan's cache; every file is then served from the cache under its sha256.
pub async fn fetch_artifacts(
    plan: &Plan,
    progress: impl rhcos_images::Progress + 'static,
) -> Result<Artifacts, Error> {
    use rhcos_images::{Cache, Fetcher, Kind, Location, Options, Request, Source};
    let cache = Cache::open(&plan.images.cache)?;
    let fetcher = Fetcher::new(Options::default())?.with_progress(progress);
    // An air-gapped mirror carries its own stream.json.
    let stream = match (&plan.images.stream, &plan.images.mirror) {
        (Some(s), _) => s.clone(),
        (None, Some(dir)) if dir.join("stream.json").is_file() => {
            dir.join("stream.json").display().to_string()
        }
        _ => return Err(Error::NoStream),
    };
    let meta = fetcher.metadata(&Location::parse(&stream)?).await?;
    let source = match &plan.images.mirror {
        Some(dir) => Source::mirror(&dir.display().to_string())?,
        None => Source::Upstream,
    };
    let available: Vec<Kind> = meta
        .available(&plan.images.arch)?
        .iter()
        .filter_map(|a| a.kind)
        .collect();
    let mut kinds = vec![Kind::Kernel, Kind::Initramfs, Kind::RawGz];
    if available.contains(&Kind::Rootfs) {
        kinds.push(Kind::Rootfs);
    }
    let requests = meta
        .select(&plan.images.arch, &kinds)?
        .into_iter()
        .map(|a| Request::new(a, &source, false))
        .collect::<Result<Vec<_>, _>>()?;
    let mut paths = HashMap::new();
    for (req, fetched) in requests
        .iter()
        .zip(fetcher.fetch_all(&cache, &requests).await)
    {
        let fetched = fetched?;
        if let Some(kind) = req.artifact.kind {
            paths.insert(kind, format!("/{}", fetched.digests.sha256));
        }
    }
    let take = |k: Kind| paths.get(&k).cloned().unwrap_or_default();
    Ok(Artifacts {
        root: cache.root().to_owned(),
        kernel: take(Kind::Kernel),
        initramfs: take(Kind::Initramfs),
        rootfs: paths.get(&Kind::Rootfs).cloned(),
        image: take(Kind::RawGz),
    })
}
