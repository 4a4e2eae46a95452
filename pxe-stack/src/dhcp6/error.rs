//! The DHCPv6 module's error type.

use std::net::Ipv6Addr;
use std::path::PathBuf;

use crate::Mac;

/// Everything that can go wrong configuring or running the DHCPv6 server.
///
/// Bad packets from the network are not errors: they are dropped with a debug log (see
/// [`Malformed6`](super::Malformed6)).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is inconsistent.
    #[error("invalid dhcpv6 configuration: {reason}")]
    Config {
        /// What is wrong, in words.
        reason: String,
    },
    /// A reservation's address lies outside every configured subnet.
    #[error("dhcpv6 reservation for {mac} at {addr} is outside every configured subnet")]
    ReservationOutsideSubnets {
        /// The reserved host.
        mac: Mac,
        /// The reserved address.
        addr: Ipv6Addr,
    },
    /// Two reservations name the same address or the same MAC.
    #[error("duplicate dhcpv6 reservation for {mac} at {addr}")]
    DuplicateReservation {
        /// The second reservation's MAC.
        mac: Mac,
        /// The second reservation's address.
        addr: Ipv6Addr,
    },
    /// The socket could not be created, configured or bound.
    #[error("cannot bind dhcpv6 socket on {interface:?} port {port}: {source}")]
    Bind {
        /// The interface asked for.
        interface: String,
        /// The UDP port asked for.
        port: u16,
        /// The system error.
        #[source]
        source: std::io::Error,
    },
    /// Reading or writing the lease file failed.
    #[error("dhcpv6 lease file {path}: {source}")]
    LeaseFile {
        /// The lease file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The lease file exists but is not a lease file we wrote.
    #[error("dhcpv6 lease file {path} is not valid: {reason}")]
    LeaseFileFormat {
        /// The lease file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A lease store (such as the shared PostgreSQL one) cannot be reached or failed a
    /// statement. No new lease is confirmed until it is back.
    #[error("lease store {store}: {message}")]
    LeaseStore {
        /// The store (never with a password).
        store: String,
        /// What failed, with its causes.
        message: String,
    },
    /// Receiving or sending on the socket failed.
    #[error("dhcpv6 socket i/o: {0}")]
    Io(#[from] std::io::Error),
}
