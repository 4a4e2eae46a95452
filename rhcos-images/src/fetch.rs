//! The download pipeline (feature `fetch`): reqwest streaming on the async side, hashing and
//! decompression on a blocking thread, resume with `Range` + `If-Range`, bounded retries, and
//! the content-addressed cache.

use std::io::{BufWriter, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, ETAG, IF_RANGE, LAST_MODIFIED, RANGE};
use tokio::sync::mpsc;
use url::Url;

use crate::cache::Cache;
use crate::error::{Error, Result};
use crate::progress::{NoProgress, Progress, ProgressEvent};
use crate::resume::{self, Decision, Validator};
use crate::select::{Artifact, Compression, Metadata};
use crate::signature::Keyring;
use crate::source::{Location, Source};
use crate::verify::{Decode, Digests, Sink, Verifier};

/// Bytes handed to the hashing thread at a time. Larger batches mean fewer wake-ups; together
/// with [`CHANNEL_DEPTH`] they bound the memory a transfer holds in flight.
const BATCH: usize = 256 * 1024;
/// Batches that may wait for the hashing thread (4 x 256 KiB = 1 MiB in flight per transfer).
const CHANNEL_DEPTH: usize = 4;
/// Output buffer in front of files.
const WRITE_BUFFER: usize = 1024 * 1024;
/// New bytes an attempt must add beyond every earlier attempt to not count against
/// [`Options::retries`].
const PROGRESS_CREDIT: u64 = 256 * 1024;
/// Read size for local files.
const FILE_CHUNK: usize = 1024 * 1024;

/// Largest detached signature accepted (real ones are a few hundred bytes).
const MAX_SIGNATURE: u64 = 1024 * 1024;

/// Whether fetched artifacts must carry a valid detached OpenPGP signature.
///
/// The default checks against [`Keyring::release_keys`]; skipping the check is an explicit
/// choice ([`SignaturePolicy::Insecure`]), for metadata whose files are not signed (a lab's
/// generated image, mirrors without `.sig` files) and whose SHA-256 values come from a trusted
/// channel.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignaturePolicy {
    /// Fetch `<artifact>.sig` and refuse the artifact unless a key of this keyring signed the
    /// bytes as downloaded.
    Require(Keyring),
    /// Do not fetch or check signatures; integrity rests on the metadata's SHA-256 alone.
    Insecure,
}

impl Default for SignaturePolicy {
    fn default() -> Self {
        SignaturePolicy::Require(Keyring::release_keys())
    }
}

/// Transfer settings. `Default` suits real mirrors; tests shorten the timeouts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Time allowed to establish a TCP (and TLS) connection.
    pub connect_timeout: Duration,
    /// Time allowed between two reads of a body before the transfer counts as stalled.
    pub read_timeout: Duration,
    /// Consecutive failed attempts allowed after the first one, per artifact. An attempt that
    /// got at least 256 KiB further than any before it resets the count, so a long download over
    /// a link that drops now and then still completes; a restart from zero never does.
    pub retries: u32,
    /// Wait before the first retry; doubled for each further retry.
    pub backoff: Duration,
    /// Upper bound for the wait between retries.
    pub max_backoff: Duration,
    /// Artifacts transferred at the same time by [`Fetcher::fetch_all`].
    pub concurrency: usize,
    /// Honour `HTTP(S)_PROXY` / `NO_PROXY` from the environment.
    pub env_proxy: bool,
    /// Largest metadata document accepted by [`Fetcher::metadata`].
    pub max_metadata_bytes: u64,
    /// Signature checking; the default requires the release keys.
    pub signatures: SignaturePolicy,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            connect_timeout: Duration::from_secs(15),
            read_timeout: Duration::from_secs(60),
            retries: 5,
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
            concurrency: 4,
            env_proxy: true,
            max_metadata_bytes: 64 * 1024 * 1024,
            signatures: SignaturePolicy::default(),
        }
    }
}

/// One artifact to fetch: what the metadata says, where to read it, and whether to decompress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The selected artifact (name and expected hashes).
    pub artifact: Artifact,
    /// Where to read it.
    pub location: Location,
    /// Keep the bytes as downloaded or decompress them.
    pub decode: Decode,
    /// Where its detached signature is (see [`Source::locate_signature`]); `None` when the
    /// source cannot name one, which fails the fetch under [`SignaturePolicy::Require`].
    pub signature: Option<Location>,
}

impl Request {
    /// A request for `artifact` through `source`; `decompress` asks for the uncompressed image
    /// (the compression is taken from the name, or detected from the data when the name has no
    /// `.gz`/`.xz` suffix, as with legacy `qemu.qcow2` files).
    pub fn new(artifact: Artifact, source: &Source, decompress: bool) -> Result<Self> {
        let location = source.locate(&artifact)?;
        let signature = source.locate_signature(&artifact).ok();
        let decode = match (decompress, artifact.compression()) {
            (false, _) => Decode::Keep,
            (true, Compression::None) => Decode::Detect,
            (true, c) => Decode::With(c),
        };
        Ok(Request {
            artifact,
            location,
            decode,
            signature,
        })
    }

    /// The file name the result goes under: the artifact name without `.gz`/`.xz` when
    /// decompressing.
    pub fn output_name(&self) -> &str {
        match self.decode {
            Decode::With(c) => c.strip_suffix(&self.artifact.name),
            _ => &self.artifact.name,
        }
    }

    /// The SHA-256 the output must have, when known before the transfer.
    fn output_sha256(&self) -> Option<&str> {
        match self.decode {
            Decode::Keep | Decode::With(Compression::None) => Some(&self.artifact.sha256),
            _ => self.artifact.uncompressed_sha256.as_deref(),
        }
    }
}

/// A fetched, verified artifact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// The output's file name (see [`Request::output_name`]).
    pub name: String,
    /// Where the verified file is (`<cache>/<sha256>`).
    pub path: PathBuf,
    /// Hashes and sizes. For a cache hit, taken from the metadata and the file's size.
    pub digests: Digests,
    /// True when nothing was transferred because the cache had it.
    pub from_cache: bool,
    /// Where the verified detached signature is kept (`<cache>/<sha256>.sig`), when signatures
    /// were required.
    pub signature_path: Option<PathBuf>,
}

/// Downloads artifacts. Cheap to clone.
#[derive(Clone)]
pub struct Fetcher {
    client: reqwest::Client,
    options: Options,
    progress: Arc<dyn Progress>,
    /// Bytes received (HTTP bodies, local files read), by this fetcher and its clones.
    received: Arc<AtomicU64>,
}

impl std::fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetcher")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

enum Msg {
    Data(Vec<u8>),
    Restart,
    /// Asks for the SHA-256 of the bytes so far.
    Check(tokio::sync::oneshot::Sender<String>),
}

/// Why one attempt ended early.
enum Step {
    /// Retry (after a backoff), resuming where we are.
    Retry(Error),
    /// Throw away what we have and go again from zero.
    Restart(&'static str),
    /// Give up.
    Fatal(Error),
    /// The hashing thread stopped; its own result says why.
    WorkerGone,
}

impl Fetcher {
    /// A fetcher with these options.
    ///
    /// Installs rustls' ring crypto provider as the process default if none is installed yet.
    pub fn new(options: Options) -> Result<Self> {
        // Ignoring the result is right: an Err only means another provider is already installed.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::Client::builder()
            .connect_timeout(options.connect_timeout)
            .read_timeout(options.read_timeout)
            .user_agent(concat!("rhcos-images/", env!("CARGO_PKG_VERSION")));
        if !options.env_proxy {
            builder = builder.no_proxy();
        }
        let client = builder.build().map_err(|e| Error::Transfer {
            url: String::new(),
            reason: error_chain(&e),
        })?;
        Ok(Fetcher {
            client,
            options,
            progress: Arc::new(NoProgress),
            received: Arc::default(),
        })
    }

    /// Reports progress to `progress`.
    pub fn with_progress(mut self, progress: impl Progress + 'static) -> Self {
        self.progress = Arc::new(progress);
        self
    }

    /// The options in use.
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// Bytes received so far by this fetcher and its clones (HTTP bodies and local files read):
    /// every attempt,
    /// including data thrown away by a restart and transfers that failed in the end. What a
    /// summary of a run reports as downloaded (the sizes of [`Fetched`] count only successes).
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// Reads and parses a metadata document (stream or legacy) from a URL or file.
    pub async fn metadata(&self, location: &Location) -> Result<Metadata> {
        let origin = location.display();
        let name = crate::select::file_name(&origin).unwrap_or_else(|| "metadata".into());
        let verifier = Verifier::new(Vec::new(), Decode::Keep).with_url(&origin);
        let (bytes, _) = self
            .transfer(
                location,
                &name,
                verifier,
                Some(self.options.max_metadata_bytes),
                None,
            )
            .await?;
        Metadata::from_slice(&bytes, &origin)
    }

    /// Fetches one artifact into any [`Sink`] (a file, a block device, memory) and verifies it.
    ///
    /// Under [`SignaturePolicy::Require`] the detached signature is fetched first and checked in
    /// the same pass ([`Digests::signer`] names the key).
    ///
    /// On a hash or signature mismatch the sink has received unverified bytes; use
    /// [`fetch_cached`](Self::fetch_cached) when that must never be visible.
    pub async fn fetch_to<S: Sink + 'static>(
        &self,
        req: &Request,
        sink: S,
    ) -> Result<(S, Digests)> {
        let (sink, digests, _sig) = self.fetch_to_path(req, sink, PathBuf::new()).await?;
        Ok((sink, digests))
    }

    /// The transfer, hash check and (by policy) signature check of one artifact. Returns the
    /// signature's bytes when one was verified.
    async fn fetch_to_path<S: Sink + 'static>(
        &self,
        req: &Request,
        sink: S,
        sink_path: PathBuf,
    ) -> Result<(S, Digests, Option<Vec<u8>>)> {
        let url = req.location.display();
        let mut verifier = Verifier::new(sink, req.decode)
            .with_url(&url)
            .with_sink_path(sink_path);
        let mut signature = None;
        if let SignaturePolicy::Require(keyring) = &self.options.signatures {
            let bytes = self.fetch_signature(req).await?;
            let check = keyring
                .check(&bytes)
                .map_err(|e| name_artifact(e, &req.artifact.name))?
                .for_artifact(&req.artifact.name);
            verifier = verifier.with_signature(check);
            signature = Some(bytes);
        }
        let (sink, digests) = self
            .transfer(
                &req.location,
                &req.artifact.name,
                verifier,
                None,
                Some(&req.artifact.sha256),
            )
            .await?;
        digests.check(&req.artifact, &url)?;
        Ok((sink, digests, signature))
    }

    /// Reads the request's detached signature into memory.
    async fn fetch_signature(&self, req: &Request) -> Result<Vec<u8>> {
        let missing = |url: String, source: Error| Error::SignatureMissing {
            artifact: req.artifact.name.clone(),
            url,
            source: Box::new(source),
        };
        let Some(location) = &req.signature else {
            let location = req.artifact.signature_url();
            return Err(missing(
                location.clone(),
                Error::InvalidLocation { location },
            ));
        };
        let url = location.display();
        let name = format!("{}.sig", req.artifact.name);
        let verifier = Verifier::new(Vec::new(), Decode::Keep).with_url(&url);
        self.transfer(location, &name, verifier, Some(MAX_SIGNATURE), None)
            .await
            .map(|(bytes, _)| bytes)
            .map_err(|e| missing(url, e))
    }

    /// Fetches one artifact into `cache`, unless a verified copy is already there.
    ///
    /// The bytes go to a temporary file in the cache; only after both hashes (and, under
    /// [`SignaturePolicy::Require`], the signature) match is it fsynced and renamed to
    /// `<cache>/<sha256>`, after its signature was stored as `<cache>/<sha256>.sig`. On any
    /// error the temporary file is removed. Under a keyring, a cached file without a stored
    /// signature (fetched with [`SignaturePolicy::Insecure`]) does not count as a hit.
    ///
    /// The cache is looked up by the output's SHA-256, so a decompressed artifact whose metadata
    /// has no `uncompressed-sha256` is fetched again each time (it is still stored by its
    /// computed hash).
    pub async fn fetch_cached(&self, cache: &Cache, req: &Request) -> Result<Fetched> {
        let name = req.output_name().to_owned();
        let signed = matches!(self.options.signatures, SignaturePolicy::Require(_));
        // Under a keyring, a cached file counts only if its signature was verified when it was
        // stored (an insecure fetch stores none): otherwise fetch and verify it again.
        if let Some(sha) = req.output_sha256()
            && let Some(path) = cache.get(sha)
            && (!signed || cache.get_signature(sha).is_some())
        {
            let size = std::fs::metadata(&path)
                .map_err(|e| Error::io(&path, e))?
                .len();
            cache.link_name(&name, &path)?;
            self.progress.event(&ProgressEvent::Cached {
                name: &req.artifact.name,
            });
            let signature_path = if signed {
                cache.get_signature(sha)
            } else {
                None
            };
            return Ok(Fetched {
                name,
                path,
                digests: cached_digests(req, size),
                from_cache: true,
                signature_path,
            });
        }
        let tmp = cache.temp_file()?;
        let tmp_path = tmp.path().to_owned();
        let file = tmp
            .as_file()
            .try_clone()
            .map_err(|e| Error::io(&tmp_path, e))?;
        let sink = BufWriter::with_capacity(WRITE_BUFFER, file);
        // `tmp` is dropped (and the file deleted) on every early return below.
        let (_sink, digests, signature) = self.fetch_to_path(req, sink, tmp_path).await?;
        let key = match req.decode {
            Decode::Keep => digests.sha256.clone(),
            _ => digests
                .uncompressed_sha256
                .clone()
                .unwrap_or_else(|| digests.sha256.clone()),
        };
        let signature_path = match signature {
            Some(_) => Some(cache.signature_path_for(&key)?),
            None => None,
        };
        let cache = cache.clone();
        let link_name = name.clone();
        let path = tokio::task::spawn_blocking(move || {
            cache.commit_signed(tmp, &key, &link_name, signature.as_deref())
        })
        .await
        .map_err(|e| Error::Worker(e.to_string()))??;
        self.progress.event(&ProgressEvent::Finished {
            name: &req.artifact.name,
        });
        Ok(Fetched {
            name,
            path,
            digests,
            from_cache: false,
            signature_path,
        })
    }

    /// Fetches several artifacts into `cache`, [`Options::concurrency`] at a time. Results come
    /// back in request order; one failure does not stop the others.
    pub async fn fetch_all(&self, cache: &Cache, reqs: &[Request]) -> Vec<Result<Fetched>> {
        futures_util::stream::iter(reqs.iter().map(|r| self.fetch_cached(cache, r)))
            .buffered(self.options.concurrency.max(1))
            .collect()
            .await
    }

    /// Moves the bytes of `location` through `verifier` and returns its result.
    async fn transfer<S: Sink + 'static>(
        &self,
        location: &Location,
        name: &str,
        verifier: Verifier<S>,
        limit: Option<u64>,
        expected_sha256: Option<&str>,
    ) -> Result<(S, Digests)> {
        match location {
            Location::File(path) => {
                let path = path.clone();
                let progress = self.progress.clone();
                let name = name.to_owned();
                let received = Arc::clone(&self.received);
                tokio::task::spawn_blocking(move || {
                    read_file(&path, &name, verifier, limit, progress.as_ref(), &received)
                })
                .await
                .map_err(|e| Error::Worker(e.to_string()))?
            }
            Location::Http(url) => {
                self.http_transfer(url, name, verifier, limit, expected_sha256)
                    .await
            }
        }
    }

    async fn http_transfer<S: Sink + 'static>(
        &self,
        url: &Url,
        name: &str,
        mut verifier: Verifier<S>,
        limit: Option<u64>,
        expected_sha256: Option<&str>,
    ) -> Result<(S, Digests)> {
        let (tx, mut rx) = mpsc::channel::<Msg>(CHANNEL_DEPTH);
        let worker = tokio::task::spawn_blocking(move || {
            while let Some(msg) = rx.blocking_recv() {
                match msg {
                    Msg::Data(b) => verifier.update(&b)?,
                    Msg::Restart => verifier.restart()?,
                    Msg::Check(reply) => {
                        let _ = reply.send(verifier.sha256_so_far());
                    }
                }
            }
            verifier.finish()
        });
        let mut outcome = self.http_loop(url, name, &tx, limit).await;
        // Parts of two versions that passed the resume rules (a server that lies about its
        // validators) show up as a wrong hash: start over from zero, once, rather than fail.
        if let (Ok(true), Some(expected)) = (&outcome, expected_sha256) {
            let (reply, answer) = tokio::sync::oneshot::channel();
            let actual = match tx.send(Msg::Check(reply)).await {
                Ok(()) => answer.await.ok(),
                Err(_) => None,
            };
            if actual.is_some_and(|a| !a.eq_ignore_ascii_case(expected)) {
                self.progress.event(&ProgressEvent::Restarted {
                    name,
                    reason: "sha256 mismatch after a resume",
                });
                outcome = match tx.send(Msg::Restart).await {
                    Ok(()) => self.http_loop(url, name, &tx, limit).await,
                    Err(_) => Err(None),
                };
            }
        }
        drop(tx);
        let worked = worker.await.map_err(|e| Error::Worker(e.to_string()))?;
        match outcome {
            Ok(_) => worked,
            // The worker's error (decompression, disk) is the real cause.
            Err(None) => Err(worked.err().unwrap_or_else(|| {
                Error::Worker("hashing thread stopped without an error".into())
            })),
            Err(Some(e)) => Err(e),
        }
    }

    /// Runs attempts until the body is complete; `Ok(true)` when the body that completed was
    /// resumed at least once. `Err(None)` means the worker stopped.
    async fn http_loop(
        &self,
        url: &Url,
        name: &str,
        tx: &mpsc::Sender<Msg>,
        limit: Option<u64>,
    ) -> Result<bool, Option<Error>> {
        let mut state = State::default();
        let mut failures = 0u32;
        let mut attempts = 1u32;
        // Furthest offset any attempt reached; progress beyond it earns the retry budget back.
        let mut high_water = 0u64;
        loop {
            let step = match self.attempt(url, name, tx, &mut state, limit).await {
                Ok(()) => return Ok(state.resumed),
                Err(step) => step,
            };
            let error = match step {
                Step::Fatal(e) => return Err(Some(e)),
                Step::WorkerGone => return Err(None),
                Step::Retry(e) => e,
                Step::Restart(reason) => {
                    self.progress
                        .event(&ProgressEvent::Restarted { name, reason });
                    if state.offset > 0 && tx.send(Msg::Restart).await.is_err() {
                        return Err(None);
                    }
                    state = State::default();
                    Error::Transfer {
                        url: url.to_string(),
                        reason: reason.to_owned(),
                    }
                }
            };
            // A flaky link that drops every few hundred megabytes still finishes: an attempt
            // that pushed the furthest offset on by PROGRESS_CREDIT does not count as a failure.
            // Termination: each such reset needs new bytes beyond every earlier attempt, and a
            // restart from zero (or a server ignoring Range) cannot earn one.
            if state.offset >= high_water.saturating_add(PROGRESS_CREDIT) {
                failures = 0;
            } else {
                failures += 1;
            }
            high_water = high_water.max(state.offset);
            if failures > self.options.retries {
                return Err(Some(error));
            }
            attempts += 1;
            self.progress.event(&ProgressEvent::Retrying {
                name,
                attempt: attempts,
                error: &error,
            });
            tokio::time::sleep(self.backoff(failures.max(1))).await;
        }
    }

    fn backoff(&self, failures: u32) -> Duration {
        let factor = 1u32 << failures.saturating_sub(1).min(16);
        self.options
            .backoff
            .saturating_mul(factor)
            .min(self.options.max_backoff)
    }

    /// One request. Updates `state` with every byte handed to the worker.
    async fn attempt(
        &self,
        url: &Url,
        name: &str,
        tx: &mpsc::Sender<Msg>,
        state: &mut State,
        limit: Option<u64>,
    ) -> Result<(), Step> {
        let url_s = url.as_str();
        if state.offset > 0 && state.validator.is_none() {
            // Without an ETag or Last-Modified nothing proves the rest belongs to the same
            // version, so resuming could splice two files: start over instead.
            self.progress.event(&ProgressEvent::Restarted {
                name,
                reason: "no validator to resume with",
            });
            tx.send(Msg::Restart).await.map_err(|_| Step::WorkerGone)?;
            state.offset = 0;
        }
        let mut request = self.client.get(url.clone());
        if let (true, Some(v)) = (state.offset > 0, &state.validator) {
            request = request
                .header(RANGE, format!("bytes={}-", state.offset))
                .header(IF_RANGE, v.header_value());
        }
        let mut resp = request
            .send()
            .await
            .map_err(|e| Step::Retry(transfer_error(url_s, &e, 0)))?;
        let header = |h| resp.headers().get(h).and_then(|v| v.to_str().ok());
        let info = resume::Response {
            status: resp.status().as_u16(),
            content_range: header(CONTENT_RANGE),
            content_length: header(CONTENT_LENGTH).and_then(|v| v.trim().parse().ok()),
            etag: header(ETAG),
            last_modified: header(LAST_MODIFIED),
        };
        let status_error = || Error::HttpStatus {
            url: url_s.to_owned(),
            status: info.status,
        };
        match resume::decide(state.offset, state.validator.as_ref(), &info) {
            Decision::FromStart { total, validator } => {
                if state.offset > 0 {
                    self.progress.event(&ProgressEvent::Restarted {
                        name,
                        reason: "server sent the whole file",
                    });
                    tx.send(Msg::Restart).await.map_err(|_| Step::WorkerGone)?;
                    state.offset = 0;
                }
                state.resumed = false;
                state.total = total;
                state.validator = validator;
                self.progress.event(&ProgressEvent::Started { name, total });
            }
            Decision::Continue { total } => {
                if state.total.is_some_and(|t| t != total) {
                    return Err(Step::Restart("length changed"));
                }
                state.total = Some(total);
                state.resumed = true;
            }
            Decision::Restart { reason } => return Err(Step::Restart(reason)),
            Decision::Retry => return Err(Step::Retry(status_error())),
            _ => return Err(Step::Fatal(status_error())),
        }
        if let (Some(limit), Some(total)) = (limit, state.total)
            && total > limit
        {
            return Err(Step::Fatal(too_large(url_s, limit)));
        }

        let mut got = 0u64;
        let mut batch = Vec::with_capacity(BATCH);
        let end = loop {
            match resp.chunk().await {
                Ok(Some(bytes)) => {
                    got += bytes.len() as u64;
                    self.received
                        .fetch_add(bytes.len() as u64, Ordering::Relaxed);
                    state.offset += bytes.len() as u64;
                    if limit.is_some_and(|l| state.offset > l) {
                        break Err(Step::Fatal(too_large(url_s, limit.unwrap_or_default())));
                    }
                    batch.extend_from_slice(&bytes);
                    if batch.len() >= BATCH {
                        let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
                        tx.send(Msg::Data(full))
                            .await
                            .map_err(|_| Step::WorkerGone)?;
                        self.progress.event(&ProgressEvent::Advanced {
                            name,
                            done: state.offset,
                            total: state.total,
                        });
                    }
                }
                Ok(None) => break Ok(()),
                Err(e) => {
                    let error = match state.total {
                        Some(expected) if !e.is_timeout() && state.offset < expected => {
                            Error::Truncated {
                                url: url_s.to_owned(),
                                expected,
                                got: state.offset,
                            }
                        }
                        _ => transfer_error(url_s, &e, got),
                    };
                    break Err(Step::Retry(error));
                }
            }
        };
        // Bytes that arrived before a failure are good: the resume starts after them.
        if !batch.is_empty() {
            tx.send(Msg::Data(batch))
                .await
                .map_err(|_| Step::WorkerGone)?;
        }
        self.progress.event(&ProgressEvent::Advanced {
            name,
            done: state.offset,
            total: state.total,
        });
        end?;
        match state.total {
            Some(t) if state.offset < t => Err(Step::Retry(Error::Truncated {
                url: url_s.to_owned(),
                expected: t,
                got: state.offset,
            })),
            Some(t) if state.offset > t => Err(Step::Restart("body longer than its length")),
            _ => Ok(()),
        }
    }
}

/// Resume state of one transfer.
#[derive(Default)]
struct State {
    /// Bytes of the current version handed to the worker.
    offset: u64,
    /// The validator of the response that started the current version; a resume must bring
    /// the same one back.
    validator: Option<Validator>,
    total: Option<u64>,
    /// The current version's bytes came in more than one response.
    resumed: bool,
}

fn read_file<S: Sink>(
    path: &Path,
    name: &str,
    mut verifier: Verifier<S>,
    limit: Option<u64>,
    progress: &dyn Progress,
    received: &AtomicU64,
) -> Result<(S, Digests)> {
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let total = file.metadata().map_err(|e| Error::io(path, e))?.len();
    if let Some(limit) = limit
        && total > limit
    {
        return Err(too_large(&path.display().to_string(), limit));
    }
    progress.event(&ProgressEvent::Started {
        name,
        total: Some(total),
    });
    let mut buf = vec![0u8; FILE_CHUNK];
    let mut done = 0u64;
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io(path, e)),
        };
        received.fetch_add(n as u64, Ordering::Relaxed);
        verifier.update(&buf[..n])?;
        done += n as u64;
        progress.event(&ProgressEvent::Advanced {
            name,
            done,
            total: Some(total),
        });
    }
    verifier.finish()
}

fn cached_digests(req: &Request, size: u64) -> Digests {
    match req.decode {
        Decode::Keep | Decode::With(Compression::None) => Digests {
            sha256: req.artifact.sha256.clone(),
            size,
            ..Digests::default()
        },
        Decode::With(c) => Digests {
            sha256: req.artifact.sha256.clone(),
            size: req.artifact.size.unwrap_or_default(),
            decoded: c,
            uncompressed_sha256: req.artifact.uncompressed_sha256.clone(),
            uncompressed_size: Some(size),
            signer: None,
        },
        Decode::Detect => Digests {
            sha256: req.artifact.sha256.clone(),
            size: req.artifact.size.unwrap_or_default(),
            decoded: Compression::None,
            uncompressed_sha256: req.artifact.uncompressed_sha256.clone(),
            uncompressed_size: Some(size),
            signer: None,
        },
    }
}

/// A signature that does not parse is reported for the artifact, not for anonymous `data`.
fn name_artifact(e: Error, artifact: &str) -> Error {
    match e {
        Error::BadSignature { problem, .. } => Error::BadSignature {
            artifact: artifact.to_owned(),
            problem,
        },
        other => other,
    }
}

fn too_large(url: &str, limit: u64) -> Error {
    Error::Transfer {
        url: url.to_owned(),
        reason: format!("larger than the {limit} byte limit"),
    }
}

fn transfer_error(url: &str, e: &reqwest::Error, bytes: u64) -> Error {
    if e.is_timeout() && e.is_body() || e.is_timeout() && bytes > 0 {
        Error::Stalled {
            url: url.to_owned(),
            bytes,
        }
    } else {
        Error::Transfer {
            url: url.to_owned(),
            reason: error_chain(e),
        }
    }
}

/// The error and its sources, joined: reqwest's own message rarely says what went wrong.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
