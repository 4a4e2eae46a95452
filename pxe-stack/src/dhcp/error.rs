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
    /// A reservation no client can use: its address is the server's own or its subnet's
    /// network or broadcast address, or its MAC is not one NIC's (all zero, multicast).
    #[error("reservation for {mac} at {addr}: {reason}")]
    BadReservation {
        /// The reserved host.
        mac: Mac,
        /// The reserved address.
        addr: Ipv4Addr,
        /// What is wrong, in words.
        reason: String,
    },
    /// The server's own address lies outside every configured subnet, so no local client
    /// would ever be answered.
    #[error(
        "server address {server_ip} is outside every configured subnet (list the server's own \
         subnet, without a pool if it hands out nothing locally)"
    )]
    ServerOutsideSubnets {
        /// The server's address.
        server_ip: Ipv4Addr,
    },
    /// A subnet's router (option 3) is not inside that subnet, so clients could not reach it.
    #[error("router {router} is outside its subnet {subnet}")]
    RouterOutsideSubnet {
        /// The router.
        router: Ipv4Addr,
        /// The subnet it was given for.
        subnet: crate::Ipv4Net,
    },
    /// A boot file or URL is set but empty (unset it to send none).
    #[error("boot.{field} is empty; leave it unset to send no boot file")]
    EmptyBootFile {
        /// The field of [`BootFiles`](super::BootFiles), such as `bios`.
        field: &'static str,
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
    /// A lease store (such as the shared PostgreSQL one) cannot be reached, refused the
    /// credentials or TLS, or failed a statement. New leases are not ACKed until it is back.
    #[error("lease store {store}: {message}")]
    LeaseStore {
        /// The store (`postgres at postgresql://...`, never with a password).
        store: String,
        /// What failed, with its causes.
        message: String,
    },
    /// Receiving or sending on the socket failed.
    #[error("dhcp socket i/o: {0}")]
    Io(#[from] std::io::Error),
}
