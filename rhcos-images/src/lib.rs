//! CoreOS / RHCOS image metadata, verified streaming downloads with one-pass decompression, and a
//! content-addressed cache: step 1 of a bare-metal OpenShift install ("get images") as a library.
//!
//! # Key types
//!
//! - [`Metadata`]: a parsed `stream.json` ([`Stream`]) or legacy `rhcos.json` / `meta.json`
//!   ([`LegacyMeta`]). [`Metadata::select`] turns an architecture and a list of [`Kind`]s into
//!   [`Artifact`]s (URL + expected hashes); an unknown choice is an error listing what exists.
//! - [`Source`] / [`Location`]: upstream URLs, an HTTP mirror, or a local mirror directory.
//! - [`Verifier`]: the synchronous core. One pass hashes the bytes as downloaded, optionally
//!   decompresses them (gzip; xz with the `xz` feature), hashes the output and writes it to a
//!   [`Sink`] (file, block device, memory; [`WriteOnly`] wraps any other `Write`).
//! - [`resume::decide`]: the sans-IO rules for `Range` + `If-Range` resume, which never splice two
//!   versions of a file: a server that ignores the range, a changed validator, or a server that
//!   sent no validator at all means starting again from byte zero.
//! - [`Cache`]: `<root>/<sha256>` for verified files only, `<root>/by-name/` as a readable index.
//! - `Fetcher` (feature `fetch`): reqwest streaming, hashing and decompression on a blocking
//!   thread, bounded memory (about 1 MiB in flight per transfer; the example binary peaks at
//!   13 MiB RSS on a 1 GiB image), resume, bounded retries with exponential backoff (an attempt
//!   that gets further than all before it earns the budget back), connect and stall timeouts,
//!   several artifacts at once, [`Progress`] callbacks.
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
//! With the `fetch` feature, downloading into the cache is:
//!
//! ```no_run
//! # #[cfg(feature = "fetch")]
//! # async fn demo(meta: rhcos_images::Metadata) -> Result<(), rhcos_images::Error> {
//! use rhcos_images::{Cache, Fetcher, Kind, Options, Request, Source};
//!
//! let cache = Cache::open("/var/cache/rhcos")?;
//! let fetcher = Fetcher::new(Options::default())?;
//! let reqs = meta
//!     .select("x86_64", &[Kind::Kernel, Kind::Initramfs, Kind::Rootfs, Kind::RawGz])?
//!     .into_iter()
//!     .map(|a| Request::new(a, &Source::Upstream, false))
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
//!   fetcher installs ring as the process-wide rustls provider if none is installed.
//! - `xz`: `.xz` decompression (FCOS `raw.xz`) through liblzma, which builds a C library.
//!
//! Without features the crate is runtime-free: metadata, selection, the verifier and the cache.
//!
//! # What it does not do
//!
//! - It does not check GPG signatures (`signature` URLs are exposed, not verified); integrity
//!   comes from the SHA-256 values in the metadata, which must come from a trusted channel.
//! - It does not resume across process restarts: a resume happens within one fetch call; a new
//!   call starts again from zero (the temporary file of an aborted run is discarded).
//! - It does not write images to disks itself beyond accepting any [`Sink`], nor guess mirror
//!   file names: prefer stream or legacy metadata to hand-made URLs.
//! - It does not follow cloud image tables (`images`, AMIs); those are kept as raw JSON.
#![warn(missing_docs)]

mod cache;
mod error;
#[cfg(feature = "fetch")]
mod fetch;
mod legacy;
mod progress;
pub mod resume;
mod select;
mod source;
mod stream;
mod verify;

pub use cache::Cache;
pub use error::{Error, Result};
#[cfg(feature = "fetch")]
pub use fetch::{Fetched, Fetcher, Options, Request};
pub use legacy::{LegacyImage, LegacyMeta};
pub use progress::{NoProgress, Progress, ProgressEvent};
pub use select::{Artifact, Compression, Kind, Metadata};
pub use source::{Location, Source};
pub use stream::{Arch, ImageFormat, PlatformArtifacts, Stream, StreamArtifact, StreamMetadata};
pub use verify::{Decode, Digests, Sink, Verifier, WriteOnly};
