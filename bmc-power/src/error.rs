//! The crate's one error type.

use std::time::Duration;

use crate::types::Fingerprint;

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
    /// The transport failed in a way that retrying will not fix (an HTTP exchange that broke
    /// off, a socket error).
    #[error("transport to {address} failed: {message}")]
    Transport {
        /// The BMC address as configured.
        address: String,
        /// The transport's description of the failure.
        message: String,
    },
    /// The BMC's TLS certificate was refused; nothing (no credential) was sent.
    #[error("{}", tls_text(address, certificate.as_deref(), reason))]
    Tls {
        /// The BMC address as configured.
        address: String,
        /// The certificate the BMC presented, when the handshake got that far.
        certificate: Option<Box<PresentedCertificate>>,
        /// Why it was refused.
        reason: String,
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
    #[error("{operation} refused: {refusal}{}", if message.is_empty() { String::new() } else { format!(": {message}") })]
    Refused {
        /// The operation that was attempted.
        operation: &'static str,
        /// The protocol status the BMC answered with.
        refusal: Refusal,
        /// Any text the BMC sent along (may be empty).
        message: String,
    },
    /// The BMC lied: it accepted a change, but reading it back shows it was not applied.
    #[error("{operation} was accepted but not applied: expected {expected}, read back {actual}")]
    NotApplied {
        /// The operation that was attempted.
        operation: &'static str,
        /// What we asked for.
        expected: String,
        /// What the BMC reports now.
        actual: String,
    },
    /// The BMC accepted the request, but nothing it reports can show whether it was applied
    /// (a reset on a BMC without a reset time or counter that never showed the host off, a
    /// boot mode the BMC does not report). Never reported as verified.
    #[error("{operation} was accepted but is not verifiable: {message}")]
    NotVerifiable {
        /// The operation that was attempted.
        operation: &'static str,
        /// Why it cannot be verified, and what was observed.
        message: String,
    },
    /// The BMC offers only authentication that this crate refuses without an explicit opt-in
    /// (IPMI authtype NONE or STRAIGHT, no RMCP+ in `auto` mode).
    #[error("refusing insecure ipmi at {address}: the bmc offers {offered}; {message}")]
    Insecure {
        /// The BMC address as configured.
        address: String,
        /// What the BMC offered (auth types, cipher suites).
        offered: String,
        /// What to do about it.
        message: String,
    },
    /// The BMC sent something that does not parse fully as the protocol says it should. No
    /// action is sent after such a reply in the same operation.
    #[error("{}", protocol_text(url, *status, head, message))]
    Protocol {
        /// The request URL (Redfish) or the BMC address (IPMI); empty inside the codec.
        url: String,
        /// The HTTP status of the reply, for Redfish.
        status: Option<u16>,
        /// The first bytes of the reply, escaped (Redfish).
        head: String,
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
    /// True when the BMC did not answer at all (worth trying again later): unreachable.
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Timeout { .. })
    }

    #[cfg(any(feature = "ipmi", feature = "libvirt"))]
    pub(crate) fn protocol(message: impl Into<String>) -> Self {
        Error::Protocol {
            url: String::new(),
            status: None,
            head: String::new(),
            message: message.into(),
        }
    }
}

/// A certificate a BMC presented (in [`Error::Tls`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresentedCertificate {
    /// Its subject (`CN=bmc, O=...`, the common attributes), when it parses.
    pub subject: Option<String>,
    /// The SHA-256 fingerprint of its DER encoding: pin it with `Tls::Fingerprint` once you
    /// have checked it out of band.
    pub fingerprint: Fingerprint,
}

fn tls_text(address: &str, certificate: Option<&PresentedCertificate>, reason: &str) -> String {
    match certificate {
        None => format!("tls to {address} refused: {reason}"),
        Some(c) => format!(
            "tls to {address} refused the certificate it presented ({}{}): {reason}",
            c.subject
                .as_deref()
                .map(|s| format!("subject {s}, "))
                .unwrap_or_default(),
            c.fingerprint
        ),
    }
}

fn protocol_text(url: &str, status: Option<u16>, head: &str, message: &str) -> String {
    let mut t = String::from("malformed reply");
    if !url.is_empty() {
        t += &format!(" from {url}");
    }
    if let Some(s) = status {
        t += &format!(" (http {s})");
    }
    t += &format!(": {message}");
    if !head.is_empty() {
        t += &format!("; it starts {head:?}");
    }
    t
}

/// Shorthand for results in this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
