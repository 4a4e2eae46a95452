//! A PXE-aware DHCPv4 server that replaces dnsmasq for network boots.
//!
//! The decision core is [`respond`]: a request, the [`LeaseTable`] and the time in; an
//! [`Verdict`] (reply, events, whether to persist) out. [`Server`] wraps it on tokio: it binds one
//! interface, batches datagrams, commits the batch's leases to its [`LeaseStore`] (the
//! [`LeaseFile`] by default; `PgLeaseStore`, feature `postgres`, for several servers on one
//! PostgreSQL database) before any ACK leaves, and emits
//! [`EventKind::Dhcp`](crate::EventKind::Dhcp) events per MAC.
//!
//! Boot selection: BIOS PXE (arch 0) gets [`BootFiles::bios`], x86-64 UEFI (7, 9) [`BootFiles::efi_x64`],
//! ARM64 UEFI (11) [`BootFiles::efi_arm64`], UEFI HTTP boot (class `HTTPClient`) the
//! [`BootFiles::http_boot_url`] with option 60 echoed, and iPXE (user class `iPXE` or option 175) the
//! [`BootFiles::ipxe_script_url`] plus option 175.176 (`no-pxedhcp`). A host listed in
//! [`BootFiles::hosts`] gets its own x86-64 UEFI file or HTTP boot URL (the signed shim of a
//! Secure Boot host). Plain OS clients get an address and no boot file.
//!
//! Modes ([`Mode`]): authoritative (pools plus [`Reservation`]s), reservations only, ProxyDHCP
//! (boot information beside another server, ports 67 and 4011) and off. Relayed requests
//! (giaddr) get an address from the relay's [`Subnet`] and are answered to the relay with
//! option 82 echoed. [`ChainMode::Stateful`](crate::ChainMode::Stateful) with [`Leases::mark_chained`] supports the BIOS
//! chainload path (PXE ROM, then `undionly.kpxe`, whose DISCOVERs are byte-identical); wrap the
//! TFTP server's event sink in [`MarkChained`] to set the mark when the file was sent.
//!
//! Ping probe: off by default, because booting firmware waits for it. With
//! [`Config::ping_probe_ms`] set, [`respond`] holds a new dynamic-pool address for the client
//! and returns [`Verdict::probe`] instead of an offer; the server sends one ICMP echo request
//! to it (raw ICMP socket on the server's interface, `CAP_NET_RAW`) in a task of its own, so
//! other clients are answered meanwhile, and hands the result to [`probed`]. An address that
//! answers within the wait is quarantined like a declined one and the next is probed; the
//! first silent one is offered. Reservations and a client's own bound address are never probed.
//!
//! # Example
//! The decision core, without sockets: a BIOS PXE DISCOVER gets `undionly.kpxe`.
//! ```
//! use std::net::{Ipv4Addr, SocketAddrV4};
//! use std::time::SystemTime;
//! use pxe_stack::dhcp::{Config, LeaseTable, Policy, Range, Request, Subnet, respond};
//!
//! let mut subnet = Subnet::new(Ipv4Addr::new(192, 168, 126, 0), 24);
//! subnet.pool = Some(Range {
//!     start: Ipv4Addr::new(192, 168, 126, 100),
//!     end: Ipv4Addr::new(192, 168, 126, 199),
//! });
//! let policy = Policy::new(Config {
//!     server_ip: Ipv4Addr::new(192, 168, 126, 1),
//!     subnets: vec![subnet],
//!     ..Config::default()
//! })?;
//!
//! // A DISCOVER as a BIOS PXE ROM sends it (option 53 = 1, option 93 = 0, option 60).
//! let mut bytes = vec![0u8; 240];
//! bytes[..3].copy_from_slice(&[1, 1, 6]);
//! bytes[28..34].copy_from_slice(&[0x52, 0x54, 0, 0x12, 0x60, 1]);
//! bytes[236..240].copy_from_slice(&[99, 130, 83, 99]);
//! bytes.extend([53, 1, 1, 93, 2, 0, 0]);
//! bytes.extend([60, 9]);
//! bytes.extend(b"PXEClient");
//! bytes.push(255);
//!
//! let src = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68);
//! let request = Request::decode(&bytes, src, 67).expect("a valid DISCOVER");
//! let mut leases = LeaseTable::new();
//! let outcome = respond(&policy, &mut leases, &request, SystemTime::now());
//! let offer = outcome.reply.expect("an offer");
//! assert_eq!(offer.message.yiaddr(), Ipv4Addr::new(192, 168, 126, 100));
//! assert_eq!(offer.message.fname_str().and_then(Result::ok), Some("undionly.kpxe"));
//! assert!(!outcome.persist); // offers are not persisted; ACKs are
//! # Ok::<(), pxe_stack::dhcp::Error>(())
//! ```
//!
//! To serve: `let socket = dhcp::bind(Some("br0"), 67)?;` then
//! `Server::new(config)?.with_lease_file(LeaseFile::new(path))?.serve(socket, shutdown).await`.
//! [`Server::leases`] hands out the lease table (a [`HostLookup`](crate::HostLookup) for the
//! TFTP and HTTP servers) before serving starts. Router advertisements for the same interface
//! are [`ra`](crate::ra) (feature `ipv6-ra`).
//!
//! # What it does not do
//! No DHCPv6 (that is the `dhcp6` module, feature `dhcp6`), no DNS, no ping probe before an offer unless [`Config::ping_probe_ms`] asks for
//! one (firmware waits for it; declines are handled instead), no ARP injection (replies to
//! clients without an address are broadcast), no failover protocol between servers (several
//! servers share a PostgreSQL lease store instead), no plain BOOTP
//! (requests without the DHCP magic cookie).

mod chain;
mod config;
mod error;
mod leases;
mod packet;
#[cfg(feature = "postgres")]
mod pg;
mod probe;
mod respond;
mod server;
mod store;

pub use crate::store::{Change, Commit, RefusedBinding, StoreFuture, StoredLease};
pub use chain::MarkChained;
pub use config::{
    BootFiles, Config, HostBootFiles, MAX_POOL, Mode, Policy, Range, RawOption, Reservation, Subnet,
};
pub use error::Error;
pub use leases::{Lease, LeaseTable, Leases, State, unix_secs};
pub use packet::{Client, MAX_PACKET, Malformed, Request};
#[cfg(feature = "postgres")]
pub use pg::{PgLeaseStore, PgOptions};
pub use respond::{CLIENT_PORT, PROXY_PORT, Reply, SERVER_PORT, Verdict, probed, respond};
pub use server::{Server, bind};
pub use store::{LeaseFile, LeaseStore};
