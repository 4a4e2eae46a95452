//! The DHCP module's error type.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use crate::Mac;

/// Everything that can go wrong configuring or running the DHCP server.
///
/// Bad packets from the network are not errors: they are dropped with a debug log.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is inconsistent.
    #[error("invalid dhcp configuration: {reason}")]
    Config {
        /// What is wrong, in words.
        reason: String,
    },
    /// A reservation's address lies outside every configured subnet.
    #[error("reservation for {mac} at {addr} is outside every configured subnet")]
    ReservationOutsideSubnets {
        /// The reserved host.
        mac: Mac,
        /// The reserved address.
        addr: Ipv4Addr,
    },
    /// Two reservations name the same address or the same MAC.
    #[error("duplicate reservation for {mac} at {addr}")]
    DuplicateReservation {
        /// The second reservation's MAC.
        mac: Mac,
        /// The second reservation's address.
        addr: Ipv4Addr,
    },
    /// The socket could not be created, configured or bound.
    #[error("cannot bind dhcp socket on {interface:?} port {port}: {source}{}", hint.map(|h| format!(" (needs {h})")).unwrap_or_default())]
    Bind {
        /// The interface asked for.
        interface: String,
        /// The UDP port asked for.
        port: u16,
        /// The capability that is missing, when the error is a permission error.
        hint: Option<&'static str>,
        /// The system error.
        #[source]
        source: std::io::Error,
    },
    /// Reading or writing the lease file failed.
    #[error("lease file {path}: {source}")]
    LeaseFile {
        /// The lease file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The lease file exists but is not a lease file we wrote.
    #[error("lease file {path} is not valid: {reason}")]
    LeaseFileFormat {
        /// The lease file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Receiving or sending on the socket failed.
    #[error("dhcp socket i/o: {0}")]
    Io(#[from] std::io::Error),
}
