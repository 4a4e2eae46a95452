//! The crate's one error type.

use std::path::PathBuf;

use crate::select::Compression;
use crate::signer::SignatureProblem;

/// Everything that can go wrong while reading metadata, selecting artifacts, downloading,
/// decompressing, verifying or caching.
///
/// Context (URL, field, path) lives in fields so callers can act on it without parsing messages.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The metadata document is not JSON, or does not match the stream or legacy schema.
    #[error("malformed metadata from {origin}")]
    Metadata {
        /// Where the document came from (URL or path).
        origin: String,
        /// The JSON error, with line and column.
        #[source]
        source: serde_json::Error,
    },
    /// The metadata document is JSON but is neither stream metadata nor a legacy `rhcos.json`.
    #[error(
        "unrecognised metadata from {origin}: expected `architectures` (stream) or `baseURI` and `images` (legacy)"
    )]
    UnknownMetadataFormat {
        /// Where the document came from (URL or path).
        origin: String,
    },
    /// A metadata field has a value we cannot use (for example a sha256 that is not 64 hex digits).
    #[error("invalid metadata field {field}: {reason}")]
    InvalidField {
        /// Dotted path of the field, for example `architectures.x86_64.artifacts.metal.formats.raw.gz.disk.sha256`.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The requested architecture is not in the metadata.
    #[error("unknown architecture {arch} (available: {})", available.join(", "))]
    UnknownArch {
        /// The requested architecture.
        arch: String,
        /// The architectures the metadata has.
        available: Vec<String>,
    },
    /// The requested artifact is not in the metadata for that architecture.
    #[error("no {artifact} artifact for {arch} (available: {})", available.join(", "))]
    UnknownArtifact {
        /// The architecture that was searched.
        arch: String,
        /// The requested artifact kind.
        artifact: String,
        /// The artifact kinds that do exist for this architecture.
        available: Vec<String>,
    },
    /// An artifact kind name that this crate does not know.
    #[error("unknown artifact kind {name} (expected one of: {})", expected.join(", "))]
    UnknownKind {
        /// The name given.
        name: String,
        /// The names this crate understands.
        expected: Vec<String>,
    },
    /// An install was asked for a sector size other than 512 or 4096 bytes.
    #[error("unsupported sector size {sector_size} (expected 512 or 4096)")]
    UnsupportedSectorSize {
        /// The sector size asked for.
        sector_size: u32,
    },
    /// A 4Kn (4096-byte sector) install was asked of metadata that has no 4k metal image
    /// (RHCOS before 4.6 has none).
    #[error("no 4k metal image for {arch} in release {release}")]
    No4kImage {
        /// The architecture that was searched.
        arch: String,
        /// The release (build) that lacks it.
        release: String,
    },
    /// A location is not a valid URL or uses a scheme we cannot fetch.
    #[error("unsupported or invalid location {location}")]
    InvalidLocation {
        /// The location as given.
        location: String,
    },
    /// The server answered with a status that is an error (after any retries for 5xx).
    #[error("http status {status} from {url}")]
    HttpStatus {
        /// The URL requested.
        url: String,
        /// The HTTP status code.
        status: u16,
    },
    /// A transport error: connect, TLS, reset, or malformed response (after retries).
    #[error("transfer of {url} failed: {reason}")]
    Transfer {
        /// The URL requested.
        url: String,
        /// The underlying error's description.
        reason: String,
    },
    /// No bytes arrived within the read timeout (after retries).
    #[error("transfer of {url} stalled after {bytes} bytes")]
    Stalled {
        /// The URL requested.
        url: String,
        /// How many bytes had arrived in the last attempt when it stalled.
        bytes: u64,
    },
    /// The body ended before the advertised length (after retries).
    #[error("transfer of {url} truncated: got {got} of {expected} bytes")]
    Truncated {
        /// The URL requested.
        url: String,
        /// The advertised length.
        expected: u64,
        /// What arrived.
        got: u64,
    },
    /// The downloaded or decompressed bytes do not hash to the value in the metadata.
    /// The temporary file has been removed.
    #[error("{field} mismatch for {url}: expected {expected}, got {actual}")]
    HashMismatch {
        /// The URL or path the bytes came from.
        url: String,
        /// `sha256` (downloaded bytes) or `uncompressed-sha256`.
        field: &'static str,
        /// The value from the metadata.
        expected: String,
        /// What the bytes hash to.
        actual: String,
    },
    /// The compressed stream is truncated or corrupt.
    #[error("corrupt or truncated {format} data from {url}")]
    Decompress {
        /// The URL or path the bytes came from.
        url: String,
        /// The compression format.
        format: Compression,
        /// The decoder's error.
        #[source]
        source: std::io::Error,
    },
    /// The artifact is compressed in a format whose decoder is behind a disabled cargo feature.
    #[error("decompressing {url} needs the `{feature}` feature")]
    FeatureDisabled {
        /// The URL or path of the artifact.
        url: String,
        /// The cargo feature to enable.
        feature: &'static str,
    },
    /// A local file operation failed (disk full, permission denied, missing mirror file).
    #[error("i/o error on {path}")]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The operating system error.
        #[source]
        source: std::io::Error,
    },
    /// The output cannot be rewound, so a download that must restart from zero cannot continue.
    #[error("cannot restart {url} from zero: the output cannot be rewound")]
    CannotRewind {
        /// The URL requested.
        url: String,
    },
    /// OpenPGP key material cannot be read as public keys.
    #[error("invalid openpgp keys from {origin}: {reason}")]
    Keys {
        /// Where the keys came from (path, URL, or `keys/release-keys.asc`).
        origin: String,
        /// The parser's description.
        reason: String,
    },
    /// The detached signature of an artifact could not be fetched, so with a keyring the artifact
    /// is refused. Nothing was stored under the final name.
    #[error("no signature for {artifact} at {url}")]
    SignatureMissing {
        /// The artifact's file name.
        artifact: String,
        /// Where the signature was looked for.
        url: String,
        /// Why it could not be read (HTTP status, missing file, transfer error).
        #[source]
        source: Box<Error>,
    },
    /// The detached signature of an artifact does not verify against the keyring. Nothing was
    /// stored under the final name.
    #[error("bad signature for {artifact}: {problem}")]
    BadSignature {
        /// The artifact's file name (`data` for [`Keyring::verify`](crate::Keyring::verify)).
        artifact: String,
        /// What is wrong.
        problem: SignatureProblem,
    },
    /// A background worker died unexpectedly (a bug; the message says where).
    #[error("internal worker failure: {0}")]
    Worker(String),
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wraps an I/O error with the path it happened on.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
