//! The crate's one error type.

use std::time::Duration;

/// Why a BMC said no: the protocol's own status, kept as data.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// An IPMI completion code (for example 0xC1 invalid command, 0xCC invalid data field,
    /// 0xD4 insufficient privilege).
    CompletionCode(u8),
    /// An RMCP+ session status code from Open Session or RAKP.
    RmcpStatus(u8),
    /// An HTTP status code from a Redfish service.
    HttpStatus(u16),
    /// A libvirt error code (the `virErrorNumber` name, e.g. `OperationInvalid`).
    Libvirt(String),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::CompletionCode(c) => write!(f, "completion code {c:#04x}"),
            Refusal::RmcpStatus(c) => write!(f, "rmcp+ status {c:#04x}"),
            Refusal::HttpStatus(s) => write!(f, "http status {s}"),
            Refusal::Libvirt(c) => write!(f, "libvirt error {c}"),
        }
    }
}

/// Everything that can go wrong talking to a BMC.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The BMC is unreachable: no answer (or a refused connection) on every attempt within
    /// the configured bound.
    #[error("no answer from {address} within {after:?}: {message}")]
    Timeout {
        /// The BMC address as configured.
        address: String,
        /// The total time spent, over all attempts.
        after: Duration,
        /// The last transport symptom ("no reply", "connection refused").
        message: String,
    },
    /// The transport failed in a way that retrying will not fix (TLS certificate rejected,
    /// an HTTP exchange that broke off).
    #[error("transport to {address} failed: {message}")]
    Transport {
        /// The BMC address as configured.
        address: String,
        /// The transport's description of the failure.
        message: String,
    },
    /// The BMC rejected the credentials (bad user, bad password, HTTP 401/403, RAKP mismatch).
    #[error("authentication failed at {address}: {message}")]
    Authentication {
        /// The BMC address as configured.
        address: String,
        /// What exactly was rejected.
        message: String,
    },
    /// The BMC does not support the requested operation, value or protocol version.
    #[error("{operation} is not supported: {message}")]
    Unsupported {
        /// The operation that was attempted.
        operation: &'static str,
        /// What is missing.
        message: String,
    },
    /// The BMC understood the request and refused it.
    #[error("{operation} refused: {refusal}")]
    Refused {
        /// The operation that was attempted.
        operation: &'static str,
        /// The protocol status the BMC answered with.
        refusal: Refusal,
        /// Any text the BMC sent along (may be empty).
        message: String,
    },
    /// The BMC accepted a change but reading it back shows it was not applied.
    #[error("{operation} was accepted but not applied: expected {expected}, read back {actual}")]
    NotApplied {
        /// The operation that was attempted.
        operation: &'static str,
        /// What we asked for.
        expected: String,
        /// What the BMC reports now.
        actual: String,
    },
    /// The BMC sent something that does not parse as the protocol says it should.
    #[error("malformed reply from bmc: {message}")]
    Protocol {
        /// What was wrong with it.
        message: String,
    },
    /// The configuration handed to a driver is invalid (user name too long, bad CA file, bad URL).
    #[error("invalid configuration: {message}")]
    Config {
        /// What is wrong with it.
        message: String,
    },
}

impl Error {
    /// True when the BMC did not answer at all (worth trying again later).
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Timeout { .. })
    }

    #[cfg(any(feature = "ipmi", feature = "redfish", feature = "libvirt"))]
    pub(crate) fn protocol(message: impl Into<String>) -> Self {
        Error::Protocol {
            message: message.into(),
        }
    }
}

/// Shorthand for results in this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
