//! The crate's error type.

use std::net::IpAddr;
use std::path::PathBuf;

use http::StatusCode;
use pxe_stack::Mac;

/// A disk that was not chosen as the install disk, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Rejected {
    /// The disk's kernel name (or `?` when ghw reported none).
    pub disk: String,
    /// Why it was skipped.
    pub reason: RejectReason,
}

/// Why a disk cannot be the install disk.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum RejectReason {
    /// ghw reported no kernel name.
    NoName,
    /// The name (or bus path) has characters unsafe on a kernel command line.
    UnsafeName,
    /// A device-mapper, zram, loop, ram, md, nbd, optical or floppy device.
    Virtual,
    /// Marked removable.
    Removable,
    /// An optical or floppy drive by type.
    OpticalOrFloppy,
    /// ghw reported no size.
    SizeUnknown,
    /// Smaller than the floor or the `min_size_bytes` hint.
    TooSmall {
        /// The disk's size.
        size_bytes: u64,
        /// The minimum that applied.
        min_bytes: u64,
    },
    /// The `rotational` hint does not match (or the drive type is unknown).
    Rotational {
        /// What the drive type says, if anything.
        actual: Option<bool>,
        /// The hint.
        wanted: bool,
    },
    /// A string hint does not match.
    Mismatch {
        /// The hint's name: `name`, `model`, `vendor`, `serial`, `wwn` or `by_path`.
        hint: &'static str,
        /// The disk's value, if ghw reported one.
        actual: Option<String>,
        /// The hint's value.
        wanted: String,
    },
}

impl std::fmt::Display for RejectReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RejectReason::NoName => f.write_str("no name"),
            RejectReason::UnsafeName => f.write_str("unsafe name"),
            RejectReason::Virtual => f.write_str("virtual or removable-media device"),
            RejectReason::Removable => f.write_str("removable"),
            RejectReason::OpticalOrFloppy => f.write_str("optical or floppy drive"),
            RejectReason::SizeUnknown => f.write_str("size unknown"),
            RejectReason::TooSmall {
                size_bytes,
                min_bytes,
            } => write!(f, "too small: {size_bytes} < {min_bytes} bytes"),
            RejectReason::Rotational {
                actual: Some(a),
                wanted,
            } => write!(f, "rotational {a} != {wanted}"),
            RejectReason::Rotational {
                actual: None,
                wanted,
            } => write!(f, "rotational unknown, hint {wanted}"),
            RejectReason::Mismatch {
                hint,
                actual: Some(a),
                wanted,
            } => write!(f, "{hint} {a:?} != {wanted:?}"),
            RejectReason::Mismatch {
                hint,
                actual: None,
                wanted,
            } => write!(f, "{hint} unknown, hint {wanted:?}"),
        }
    }
}

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The request body is larger than the configured limit.
    #[error("body of {len} bytes is over the limit of {limit} bytes")]
    TooLarge {
        /// The body's length.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// The body is empty or only whitespace.
    #[error("empty body: expected ghw JSON")]
    Empty,
    /// The body is not well-formed JSON.
    #[error("malformed JSON at {path} (line {line}, column {column}): {message}")]
    Syntax {
        /// Where in the document it broke, such as `block.disks[2]` (`.` for the top level).
        path: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// serde_json's description.
        message: String,
    },
    /// One of the concatenated top-level JSON values is not an object.
    #[error("top-level value {index} is not a JSON object")]
    NotAnObject {
        /// The 0-based position of the value in the body.
        index: usize,
    },
    /// A field has a value of the wrong shape.
    #[error("invalid field {path}: {message}")]
    Field {
        /// The offending field, such as `block.disks[0].size_bytes`.
        path: String,
        /// What was wrong with it.
        message: String,
    },
    /// The body names no network interface with a usable MAC address.
    #[error("no usable NIC MAC address in the inventory ({skipped} interfaces skipped)")]
    NoUsableMac {
        /// How many interfaces were present but skipped (virtual, loopback, empty or bad MAC).
        skipped: usize,
    },
    /// The DHCP lease of the sender's address belongs to a MAC that is not in the body.
    #[error("lease mismatch: {addr} is leased to {lease}, which the inventory does not list")]
    LeaseMismatch {
        /// The sender's address.
        addr: IpAddr,
        /// The MAC holding that address's lease.
        lease: Mac,
    },
    /// The policy requires a DHCP lease for the sender and there is none.
    #[error("no DHCP lease for {addr}")]
    NoLease {
        /// The sender's address.
        addr: IpAddr,
    },
    /// No rule assigned a role and there is no default role.
    #[error("no rule assigns a role to host {mac}")]
    NoRole {
        /// The host's primary MAC.
        mac: Mac,
    },
    /// No disk satisfies the root-device hints.
    #[error("no disk satisfies the root device hints for host {mac} ({} disks rejected)", rejected.len())]
    NoDisk {
        /// The host's primary MAC.
        mac: Mac,
        /// Every disk seen, with why it was rejected.
        rejected: Vec<Rejected>,
    },
    /// The role's Ignition config is not available yet; the client should retry.
    #[error("config for role {role} is not ready")]
    NotReady {
        /// The role.
        role: String,
    },
    /// The config source has no config for the role.
    #[error("no config for role {role}")]
    UnknownRole {
        /// The role.
        role: String,
    },
    /// The config source failed.
    #[error("config source failed for role {role}: {message}")]
    Config {
        /// The role.
        role: String,
        /// The source's description.
        message: String,
    },
    /// Reading or writing the inventory store failed.
    #[error("inventory store i/o failed at {path}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A shared inventory store (a database several servers use) cannot be reached or refused
    /// the write: nothing was decided or stored, the host should retry.
    #[error("the shared inventory store is unavailable, nothing was decided: {message}")]
    Unavailable {
        /// The store's description (never a password).
        message: String,
    },
    /// A stored record could not be decoded.
    #[error("corrupt inventory record {path}: {message}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The decoder's description.
        message: String,
    },
}

impl Error {
    /// The HTTP status that reports this error to the posting host.
    ///
    /// 4xx for what the host sent (Ignition and the installer give up), 503 for "not yet" (they
    /// retry), 500 for our own failures.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Error::Empty
            | Error::Syntax { .. }
            | Error::NotAnObject { .. }
            | Error::Field { .. } => StatusCode::BAD_REQUEST,
            Error::NoUsableMac { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Error::LeaseMismatch { .. } | Error::NoLease { .. } => StatusCode::FORBIDDEN,
            Error::NoRole { .. } | Error::NoDisk { .. } => StatusCode::CONFLICT,
            Error::NotReady { .. } | Error::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Error::UnknownRole { .. }
            | Error::Config { .. }
            | Error::Io { .. }
            | Error::Corrupt { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}
