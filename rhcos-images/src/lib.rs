//! CoreOS / RHCOS image metadata, verified streaming downloads with one-pass decompression, and a
//! content-addressed cache: step 1 of a bare-metal OpenShift install ("get images") as a library.
//!
//! # Key types
//!
//! - [`Metadata`]: a parsed `stream.json` ([`Stream`]) or legacy `rhcos.json` / `meta.json`
//!   ([`LegacyMeta`]). [`Metadata::select`] turns an architecture and a list of [`Kind`]s into
//!   [`Artifact`]s (URL + expected hashes); an unknown choice is an error listing what exists.
//! - [`Metadata::install_set`]: the era-aware choice for a bare-metal install, an [`InstallSet`]
//!   of the [`InstallerEra`] (legacy RHCOS 4.1-4.5 installer kernel + initramfs + metal image,
//!   or the live kernel + initramfs + rootfs of RHCOS 4.6+ and Fedora CoreOS) and the metal image
//!   for the disk's sector size (`raw.gz`/`raw.xz`, `4k.raw.gz`/`4k.raw.xz`).
//! - `Keyring` and `SignatureCheck` (feature `signatures`): detached OpenPGP signatures checked
//!   incrementally with rPGP, against the Fedora and Red Hat release keys coreos-installer
//!   embeds (`Keyring::release_keys`) or keys you load.
//! - [`Source`] / [`Location`]: upstream URLs, an HTTP mirror, or a local mirror directory.
//! - [`Verifier`]: the synchronous core. One pass hashes the bytes as downloaded, optionally
//!   decompresses them (gzip; xz with the `xz` feature), hashes the output and writes it to a
//!   [`Sink`] (file, block device, memory; [`WriteOnly`] wraps any other `Write`).
//! - [`resume::decide`]: the sans-IO rules for `Range` + `If-Range` resume, which never splice two
//!   versions of a file: a `206` is kept only when it carries the validator recorded when the
//!   version started (the same strong `ETag`, or the same `Last-Modified` when there was no
//!   `ETag`); a server that ignores the range, a changed or missing validator, or one of another
//!   kind means starting again from byte zero. A SHA-256 mismatch after a resumed transfer
//!   starts over from zero once before failing.
//! - [`Cache`]: `<root>/<sha256>` for verified files only, `<root>/by-name/` as a readable index;
//!   temporary files are locked while written, and [`Cache::open`] removes those of killed
//!   downloads.
//! - `Fetcher` (feature `fetch`): reqwest streaming, hashing and decompression on a blocking
//!   thread, bounded memory (about 1 MiB in flight per transfer; the example binary peaks at
//!   13 MiB RSS on a 1 GiB image), resume, bounded retries with exponential backoff (an attempt
//!   that gets further than all before it earns the budget back), connect and stall timeouts,
//!   several artifacts at once, [`Progress`] callbacks. By default (`SignaturePolicy`) each
//!   artifact's `.sig` is fetched first and checked over the bytes as downloaded in the same
//!   pass; the cache keeps it as `<sha256>.sig`. Skipping it is an explicit
//!   `SignaturePolicy::Insecure`.
//! - `esp::extract_boot_chain` (feature `esp`): the signed shim and GRUB a release ships, read
//!   from its metal image's `EFI-SYSTEM` partition (GPT + FAT, no mount), and
//!   `esp::cache_boot_chain` to keep them in the cache under their sha256 with a provenance
//!   record per image.
//!
//! # Example
//!
//! Select the metal image and PXE files from stream metadata, then verify and decompress a
//! gzip'd image in one pass:
//!
//! ```
//! use std::io::Write;
//! use rhcos_images::{Artifact, Decode, Kind, Metadata, Verifier};
//!
//! let json = br#"{"stream": "rhcos-4.11", "architectures": {"x86_64": {"artifacts": {"metal": {
//!     "release": "411.86.202205051017-0", "formats": {"raw.gz": {"disk": {
//!         "location": "https://example.com/rhcos-metal.x86_64.raw.gz",
//!         "sha256": "8b6ac7e4b4d2d0a1f7bd6a3c0c3dd7f7a8e3d3bb8c2b0b0e58a4ee9e7e5de1a4",
//!         "uncompressed-sha256": "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
//!     }}}}}}}}"#;
//! let meta = Metadata::from_slice(json, "stream.json")?;
//! let [image]: [Artifact; 1] = meta.select("x86_64", &[Kind::RawGz])?.try_into().unwrap();
//! assert_eq!(image.name, "rhcos-metal.x86_64.raw.gz");
//!
//! // Asking for something the stream lacks lists what it has.
//! let err = meta.select("x86_64", &[Kind::Iso]).unwrap_err();
//! assert_eq!(err.to_string(), "no iso artifact for x86_64 (available: raw.gz)");
//!
//! // Verify + gunzip in one pass (the fetcher does this on a blocking thread while downloading).
//! let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
//! gz.write_all(b"hello")?;
//! let gz = gz.finish()?;
//! let mut verifier = Verifier::new(Vec::new(), Decode::With(image.compression()));
//! verifier.update(&gz)?;
//! let (raw, digests) = verifier.finish()?;
//! assert_eq!(raw, b"hello");
//! assert_eq!(digests.uncompressed_sha256, image.uncompressed_sha256);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! For an install, let the metadata's era decide what to fetch:
//!
//! ```
//! # use rhcos_images::{InstallOptions, InstallerEra, Metadata};
//! # let json = std::fs::read("tests/fixtures/fcos-stream-stable-34.20211016.3.0.json")?;
//! let meta = Metadata::from_slice(&json, "stream.json")?;
//! let set = meta.install_set("x86_64", InstallOptions { sector_size: 4096, ..Default::default() })?;
//! assert_eq!(set.era, InstallerEra::Live);
//! assert!(set.image.unwrap().name.ends_with("metal4k.x86_64.raw.xz"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! With the `fetch` feature, downloading into the cache (signatures checked against the
//! release keys) is:
//!
//! ```no_run
//! # #[cfg(feature = "fetch")]
//! # async fn demo(meta: rhcos_images::Metadata) -> Result<(), rhcos_images::Error> {
//! use rhcos_images::{Cache, Fetcher, InstallOptions, Options, Request, Source};
//!
//! let cache = Cache::open("/var/cache/rhcos")?;
//! let fetcher = Fetcher::new(Options::default())?;
//! let reqs = meta
//!     .install_set("x86_64", InstallOptions::default())?
//!     .artifacts()
//!     .into_iter()
//!     .map(|a| Request::new(a.clone(), &Source::Upstream, false))
//!     .collect::<Result<Vec<_>, _>>()?;
//! for fetched in fetcher.fetch_all(&cache, &reqs).await {
//!     let f = fetched?;
//!     println!("{} {} {}", f.name, f.digests.sha256, f.path.display());
//! }
//! # Ok(()) }
//! ```
//!
//! # Feature flags
//!
//! - `fetch`: the HTTP(S) `Fetcher` (reqwest with rustls and the ring provider, tokio). The
//!   fetcher installs ring as the process-wide rustls provider if none is installed. Implies
//!   `signatures`.
//! - `signatures`: `Keyring`, `SignatureCheck` and `Verifier::with_signature` (rPGP, pure Rust,
//!   no C library; a sizeable build, hence a feature).
//! - `xz`: `.xz` decompression (FCOS `raw.xz`) through liblzma, which builds a C library.
//!
//! Without features the crate is runtime-free: metadata, selection, install sets, the verifier
//! and the cache.
//!
//! # What it does not do
//!
//! - It does not check the metadata document's own signature: the SHA-256 values and signature
//!   URLs in it must come from a trusted channel. Signatures are checked against the keyring
//!   alone, without key expiry, revocation or a web of trust (like coreos-installer).
//! - It does not re-check a cached file's signature on a cache hit: a `<sha256>.sig` beside it
//!   means it was verified when stored.
//! - It does not resume across process restarts: a resume happens within one fetch call; a new
//!   call starts again from zero (the temporary file of an aborted run is discarded, and one
//!   left by a killed process is removed by the next [`Cache::open`]).
//! - It does not write images to disks itself beyond accepting any [`Sink`], nor guess mirror
//!   file names: prefer stream or legacy metadata to hand-made URLs.
//! - It does not follow cloud image tables (`images`, AMIs); those are kept as raw JSON.
#![warn(missing_docs)]

mod cache;
mod error;
#[cfg(feature = "esp")]
pub mod esp;
#[cfg(feature = "fetch")]
mod fetch;
mod install;
mod legacy;
mod progress;
pub mod resume;
mod select;
#[cfg(feature = "signatures")]
mod signature;
mod signer;
mod source;
mod stream;
mod verify;

pub use cache::Cache;
pub use error::{Error, Result};
#[cfg(feature = "fetch")]
pub use fetch::{Fetched, Fetcher, Options, Request, SignaturePolicy};
pub use install::{InstallOptions, InstallSet, InstallerEra};
pub use legacy::{LegacyImage, LegacyMeta};
pub use progress::{NoProgress, Progress, ProgressEvent};
pub use select::{Artifact, Compression, Kind, Metadata};
#[cfg(feature = "signatures")]
pub use signature::{Keyring, SignatureCheck};
pub use signer::{SignatureProblem, SignerInfo};
pub use source::{Location, Source};
pub use stream::{Arch, ImageFormat, PlatformArtifacts, Stream, StreamArtifact, StreamMetadata};
pub use verify::{Decode, Digests, Sink, Verifier, WriteOnly};
