//! The one-pass verifier: hashes bytes as downloaded, optionally decompresses them, hashes the
//! result, and writes it to a [`Sink`]. Synchronous and runtime-free; the fetcher runs it on a
//! blocking thread.

use std::fs::File;
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::path::PathBuf;

use flate2::write::MultiGzDecoder;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::select::{Artifact, Compression};
#[cfg(feature = "signatures")]
use crate::signature::SignatureCheck;
use crate::signer::SignerInfo;

/// Where verified bytes go: a file, a block device, memory, or nowhere.
///
/// A download that must restart from zero (the server ignored `Range`, or the file changed)
/// calls [`Sink::rewind`] so two versions are never spliced together.
pub trait Sink: Write + Send {
    /// Discards everything written so far.
    fn rewind(&mut self) -> io::Result<()>;
}

impl Sink for File {
    fn rewind(&mut self) -> io::Result<()> {
        self.seek(SeekFrom::Start(0))?;
        // Block devices cannot be truncated; regular files must be, or a stale tail survives.
        if self.metadata()?.is_file() {
            self.set_len(0)?;
        }
        Ok(())
    }
}

impl Sink for Vec<u8> {
    fn rewind(&mut self) -> io::Result<()> {
        self.clear();
        Ok(())
    }
}

impl Sink for io::Sink {
    fn rewind(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<S: Sink> Sink for BufWriter<S> {
    fn rewind(&mut self) -> io::Result<()> {
        self.flush()?;
        self.get_mut().rewind()
    }
}

impl<S: Sink + ?Sized> Sink for Box<S> {
    fn rewind(&mut self) -> io::Result<()> {
        (**self).rewind()
    }
}

/// Adapts any [`Write`] (a pipe, a socket, a `qemu-img` stdin) that cannot be rewound.
///
/// A transfer into it cannot restart from zero: if the server ignores `Range` or the file changes
/// mid-transfer, the fetch fails with [`Error::CannotRewind`] instead of splicing.
#[derive(Debug, Default)]
pub struct WriteOnly<W>(pub W);

impl<W: Write> Write for WriteOnly<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl<W: Write + Send> Sink for WriteOnly<W> {
    fn rewind(&mut self) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "this output cannot be rewound",
        ))
    }
}

/// What the verifier writes to its sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Decode {
    /// The bytes as downloaded.
    #[default]
    Keep,
    /// Decompress with this format ([`Compression::None`] behaves like `Keep`).
    With(Compression),
    /// Decompress whatever the magic bytes say (gzip, xz, or nothing).
    Detect,
}

/// Hashes and sizes of one pass.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Digests {
    /// Lowercase hex SHA-256 of the bytes as downloaded.
    pub sha256: String,
    /// Number of bytes as downloaded.
    pub size: u64,
    /// The compression that was decoded ([`Compression::None`] when none was).
    pub decoded: Compression,
    /// Lowercase hex SHA-256 of the decompressed bytes, when a decoder ran.
    pub uncompressed_sha256: Option<String>,
    /// Number of decompressed bytes, when a decoder ran.
    pub uncompressed_size: Option<u64>,
    /// Who signed the bytes as downloaded, when a detached signature was checked in this pass.
    pub signer: Option<SignerInfo>,
}

impl Digests {
    /// Compares against the artifact's metadata. `url` only goes into the error.
    ///
    /// The uncompressed hash is checked only when a decoder ran and the metadata has one.
    pub fn check(&self, artifact: &Artifact, url: &str) -> Result<()> {
        let mismatch = |field, expected: &str, actual: &str| Error::HashMismatch {
            url: url.to_owned(),
            field,
            expected: expected.to_owned(),
            actual: actual.to_owned(),
        };
        if !artifact.sha256.eq_ignore_ascii_case(&self.sha256) {
            return Err(mismatch("sha256", &artifact.sha256, &self.sha256));
        }
        if let (Some(expected), Some(actual)) = (
            artifact.uncompressed_sha256.as_deref(),
            self.uncompressed_sha256.as_deref(),
        ) && !expected.eq_ignore_ascii_case(actual)
        {
            return Err(mismatch("uncompressed-sha256", expected, actual));
        }
        Ok(())
    }
}

/// A writer that hashes what its inner sink accepted and remembers whether the sink failed,
/// so a decoder error can be told apart from a disk error.
struct Hashed<W> {
    inner: Option<W>,
    hasher: Sha256,
    len: u64,
    sink_failed: bool,
}

impl<W: Write> Hashed<W> {
    fn new(inner: W) -> Self {
        Hashed {
            inner: Some(inner),
            hasher: Sha256::new(),
            len: 0,
            sink_failed: false,
        }
    }
}

impl<W: Write> Write for Hashed<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let inner = self
            .inner
            .as_mut()
            .ok_or_else(|| io::Error::other("sink already taken"))?;
        match inner.write(buf) {
            Ok(n) => {
                self.hasher.update(&buf[..n]);
                self.len += n as u64;
                Ok(n)
            }
            Err(e) => {
                self.sink_failed = true;
                Err(e)
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.inner.as_mut().map(Write::flush) {
            Some(Err(e)) => {
                self.sink_failed = true;
                Err(e)
            }
            _ => Ok(()),
        }
    }
}

enum Stage<W: Write> {
    /// Waiting for enough bytes to read the magic ([`Decode::Detect`]).
    Sniff(Hashed<W>, Vec<u8>),
    Plain(Hashed<W>),
    // Boxed: the decoder state is large next to the other variants.
    Gzip(Box<MultiGzDecoder<Hashed<W>>>),
    #[cfg(feature = "xz")]
    Xz(Box<liblzma::write::XzDecoder<Hashed<W>>>),
}

impl<W: Write> Stage<W> {
    fn hashed(&mut self) -> &mut Hashed<W> {
        match self {
            Stage::Sniff(h, _) | Stage::Plain(h) => h,
            Stage::Gzip(d) => d.get_mut(),
            #[cfg(feature = "xz")]
            Stage::Xz(d) => d.get_mut(),
        }
    }

    fn compression(&self) -> Compression {
        match self {
            Stage::Sniff(..) | Stage::Plain(_) => Compression::None,
            Stage::Gzip(_) => Compression::Gzip,
            #[cfg(feature = "xz")]
            Stage::Xz(_) => Compression::Xz,
        }
    }
}

const MAGIC_LEN: usize = 6;

/// One pass over a download: SHA-256 of the input, optional decompression, SHA-256 of the
/// output, and the write to a [`Sink`].
///
/// ```
/// use std::io::Write;
/// use rhcos_images::{Compression, Decode, Verifier};
///
/// let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
/// gz.write_all(b"hello").unwrap();
/// let gz = gz.finish().unwrap();
///
/// let mut v = Verifier::new(Vec::new(), Decode::With(Compression::Gzip));
/// v.update(&gz).unwrap();
/// let (out, digests) = v.finish().unwrap();
/// assert_eq!(out, b"hello");
/// assert_eq!(digests.uncompressed_size, Some(5));
/// ```
pub struct Verifier<W: Sink> {
    hasher: Sha256,
    len: u64,
    decode: Decode,
    stage: Stage<W>,
    url: String,
    path: PathBuf,
    #[cfg(feature = "signatures")]
    signature: Option<SignatureCheck>,
}

impl<W: Sink> std::fmt::Debug for Verifier<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("len", &self.len)
            .field("decode", &self.decode)
            .field("url", &self.url)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl<W: Sink> Verifier<W> {
    /// A verifier writing to `sink`.
    pub fn new(sink: W, decode: Decode) -> Self {
        Verifier {
            hasher: Sha256::new(),
            len: 0,
            decode,
            stage: Self::stage_for(Hashed::new(sink), decode),
            url: String::new(),
            path: PathBuf::new(),
            #[cfg(feature = "signatures")]
            signature: None,
        }
    }

    /// Also checks a detached OpenPGP signature over the bytes as downloaded (before any
    /// decompression), in the same pass; [`finish`](Self::finish) fails with
    /// [`Error::BadSignature`] when it does not verify.
    #[cfg(feature = "signatures")]
    pub fn with_signature(mut self, check: SignatureCheck) -> Self {
        self.signature = Some(check);
        self
    }

    /// Names the source in errors (URL or path).
    pub fn with_url(mut self, url: impl Into<String>) -> Self {
        self.url = url.into();
        self
    }

    /// Names the sink in I/O errors (for example the temporary file's path).
    pub fn with_sink_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.path = path.into();
        self
    }

    fn stage_for(h: Hashed<W>, decode: Decode) -> Stage<W> {
        match decode {
            Decode::Keep | Decode::With(Compression::None) => Stage::Plain(h),
            Decode::With(Compression::Gzip) => Stage::Gzip(Box::new(MultiGzDecoder::new(h))),
            #[cfg(feature = "xz")]
            Decode::With(Compression::Xz) => {
                Stage::Xz(Box::new(liblzma::write::XzDecoder::new_multi_decoder(h)))
            }
            #[cfg(not(feature = "xz"))]
            Decode::With(Compression::Xz) => Stage::Plain(h),
            Decode::Detect => Stage::Sniff(h, Vec::with_capacity(MAGIC_LEN)),
        }
    }

    /// Bytes fed so far (as downloaded).
    pub fn position(&self) -> u64 {
        self.len
    }

    /// Lowercase hex SHA-256 of the bytes fed so far (as downloaded), without finishing: the
    /// fetcher compares it with the metadata after a resumed transfer, to start over once
    /// instead of failing when the parts do not belong together.
    pub fn sha256_so_far(&self) -> String {
        hex::encode(self.hasher.clone().finalize())
    }

    /// Feeds the next downloaded bytes.
    pub fn update(&mut self, buf: &[u8]) -> Result<()> {
        if let Decode::With(c) = self.decode {
            check_features(&self.url, c)?;
        }
        self.hasher.update(buf);
        self.len += buf.len() as u64;
        #[cfg(feature = "signatures")]
        if let Some(check) = &mut self.signature {
            check.update(buf);
        }
        if let Stage::Sniff(_, head) = &mut self.stage {
            head.extend_from_slice(buf);
            if head.len() < MAGIC_LEN {
                return Ok(());
            }
            return self.resolve_sniff();
        }
        let r = match &mut self.stage {
            Stage::Sniff(..) => Ok(()),
            Stage::Plain(h) => h.write_all(buf),
            Stage::Gzip(d) => d.write_all(buf),
            #[cfg(feature = "xz")]
            Stage::Xz(d) => d.write_all(buf),
        };
        r.map_err(|e| self.classify(e))
    }

    /// Leaves the sniffing stage: picks a decoder from the magic and replays the head.
    fn resolve_sniff(&mut self) -> Result<()> {
        let Stage::Sniff(h, head) = &mut self.stage else {
            return Ok(());
        };
        let head = std::mem::take(head);
        let c = Compression::from_magic(&head);
        check_features(&self.url, c)?;
        let sink = h.inner.take().ok_or_else(taken)?;
        self.stage = Self::stage_for(Hashed::new(sink), Decode::With(c));
        let r = match &mut self.stage {
            Stage::Sniff(..) => Ok(()),
            Stage::Plain(h) => h.write_all(&head),
            Stage::Gzip(d) => d.write_all(&head),
            #[cfg(feature = "xz")]
            Stage::Xz(d) => d.write_all(&head),
        };
        r.map_err(|e| self.classify(e))
    }

    fn classify(&mut self, e: io::Error) -> Error {
        let compression = self.stage.compression();
        if self.stage.hashed().sink_failed || compression == Compression::None {
            Error::io(self.path.clone(), e)
        } else {
            Error::Decompress {
                url: self.url.clone(),
                format: compression,
                source: e,
            }
        }
    }

    /// Throws away everything so far and rewinds the sink, for a restart from byte zero.
    pub fn restart(&mut self) -> Result<()> {
        let path = self.path.clone();
        let mut sink = self.stage.hashed().inner.take().ok_or_else(taken)?;
        if self.len == 0 {
            // Nothing written yet: nothing to discard, so even a `WriteOnly` sink can go on.
            self.stage = Self::stage_for(Hashed::new(sink), self.decode);
            return Ok(());
        }
        sink.rewind().map_err(|e| match e.kind() {
            io::ErrorKind::Unsupported => Error::CannotRewind {
                url: self.url.clone(),
            },
            _ => Error::io(path, e),
        })?;
        self.hasher = Sha256::new();
        self.len = 0;
        #[cfg(feature = "signatures")]
        if let Some(check) = &mut self.signature {
            check.restart();
        }
        self.stage = Self::stage_for(Hashed::new(sink), self.decode);
        Ok(())
    }

    /// Ends the pass: checks the compressed stream is complete, flushes the sink, and returns it
    /// with the digests.
    pub fn finish(mut self) -> Result<(W, Digests)> {
        if matches!(self.stage, Stage::Sniff(..)) {
            self.resolve_sniff()?;
        }
        let r = match &mut self.stage {
            Stage::Sniff(..) | Stage::Plain(_) => Ok(()),
            Stage::Gzip(d) => d.try_finish(),
            #[cfg(feature = "xz")]
            Stage::Xz(d) => d.try_finish(),
        };
        if let Err(e) = r {
            return Err(self.classify(e));
        }
        let decoded = self.stage.compression();
        let path = self.path.clone();
        let h = self.stage.hashed();
        let mut sink = h.inner.take().ok_or_else(taken)?;
        sink.flush().map_err(|e| Error::io(path, e))?;
        let out_hash = hex::encode(std::mem::take(&mut h.hasher).finalize());
        let (uncompressed_sha256, uncompressed_size) = if decoded == Compression::None {
            (None, None)
        } else {
            (Some(out_hash), Some(h.len))
        };
        #[cfg(feature = "signatures")]
        let signer = self
            .signature
            .take()
            .map(SignatureCheck::finish)
            .transpose()?;
        #[cfg(not(feature = "signatures"))]
        let signer = None;
        let digests = Digests {
            sha256: hex::encode(self.hasher.finalize()),
            size: self.len,
            decoded,
            uncompressed_sha256,
            uncompressed_size,
            signer,
        };
        Ok((sink, digests))
    }
}

/// Fails early when the chosen decoder is behind a disabled feature.
fn check_features(url: &str, c: Compression) -> Result<()> {
    if c == Compression::Xz && !cfg!(feature = "xz") {
        return Err(Error::FeatureDisabled {
            url: url.to_owned(),
            feature: "xz",
        });
    }
    Ok(())
}

fn taken() -> Error {
    Error::Worker("verifier sink already taken".to_owned())
}
