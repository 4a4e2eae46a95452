//! PXE boot servers for bare metal, replacing the runbook's dnsmasq and nginx.
//!
//! A booting host meets three servers in turn: DHCP hands it an address and a first boot file
//! chosen by its firmware architecture; TFTP carries that small file (an iPXE binary); HTTP
//! carries everything after it: the per-host iPXE script, kernel, initramfs, the metal image and
//! the Ignition config. This crate provides the three servers (and IPv6 router advertisements
//! beside DHCP) and the vocabulary they share:
//!
//! - [`Mac`] and [`HostLookup`]: a host's identity and the lease table that maps addresses to it.
//! - [`Event`] and [`EventSink`]: one per-host timeline fed by every server.
//! - [`route::Handler`]: how other crates (`ipxe-script`, `ignition-serve`, `introspect`) plug
//!   dynamic content into the HTTP server without this crate depending on them.
//!
//! The core (this module's types) has no runtime; each server is a cargo feature. Every server
//! has the same shape: `Server::new(config)` (fallible for DHCP, which validates its
//! configuration), `with_*` builders, then `server.serve(socket, shutdown).await` on a socket the
//! caller bound (`dhcp::bind` and `ra::bind` open the ones that need special options), so tests
//! bind port 0 and embedders choose interfaces, namespaces and privileges. TFTP and HTTP share
//! their path confinement and their large-file reader (in place from the page cache, a few
//! reader threads otherwise, pooled buffers within a memory budget).
//!
//! # Feature flags
//! - `dhcp`: the PXE-aware DHCPv4 server (`dhcp::Server`).
//! - `dhcp6`: the DHCPv6 server (`dhcp6::Server`): IA_NA, relays, PXE and HTTP boot over IPv6,
//!   hosts keyed by MAC across DUIDs.
//! - `ipv6-ra`: a SLAAC-only IPv6 router advertisement server (`ra::Server`) for the DHCP
//!   server's interface, so iPXE does not wait for IPv6 autoconfiguration.
//! - `tftp`: the TFTP server (`tftp::Server`): read-only files from a root, from memory or
//!   generated per host; `blksize`, `tsize`, `timeout` and `windowsize`; concurrency limits.
//! - `http`: the HTTP server for artifacts and dynamic routes (`http::Server`, `http::Routes`):
//!   ranges, conditional requests, an nginx-like access log with the host's MAC.
//! - `tls`: HTTPS for the HTTP server.
//! - `dns`: the cluster DNS server (`dns::Server`, hickory-server): authoritative for the
//!   cluster zone and its reverse zones, host records from the lease table, forwarding for
//!   the provisioning subnets only. The zone itself (`dns::Zone`) needs no feature.
//!
//! # Example
//! ```
//! use pxe_stack::{Event, EventKind, EventSink, InstallStage, Mac, Recorder};
//!
//! let mac: Mac = "52-54-00-12-60-01".parse()?;
//! let events = Recorder::new();
//! events.emit(Event::now(
//!     Some(mac),
//!     None,
//!     EventKind::Report { stage: InstallStage::Installed, detail: String::new() },
//! ));
//! assert_eq!(events.events()[0].mac, Some(mac));
//! assert_eq!(mac.hexhyp(), "52-54-00-12-60-01");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # What it does not do
//! It does not resolve recursively (the DNS server forwards), or decide what a host should boot: that is the
//! job of the route handlers the caller plugs in.

mod chain;
pub mod dns;
#[cfg(any(feature = "dhcp", feature = "dhcp6"))]
mod durable;
mod events;
mod host;
mod net;
pub mod route;
#[cfg(any(feature = "dhcp", feature = "dhcp6"))]
pub mod store;

pub use chain::ChainMode;
pub use events::{
    DhcpStep, Discard, DnsOutcome, Event, EventKind, EventSink, InstallStage, PowerOutcome,
    PowerStep, Protocol, Recorder, TransferStatus, UnknownStage,
};
pub use host::{HostLookup, LeaseIdentity, Mac, NoLookup, ParseMacError};
pub use net::Ipv4Net;

#[cfg(feature = "dhcp")]
pub mod dhcp;
#[cfg(feature = "dhcp6")]
pub mod dhcp6;
#[cfg(any(feature = "tftp", feature = "http"))]
mod files;
#[cfg(feature = "http")]
pub mod http;
#[cfg(feature = "postgres")]
pub mod pg;
#[cfg(feature = "ipv6-ra")]
pub mod ra;
#[cfg(feature = "tftp")]
pub mod tftp;

/// Locks `m`, also when a thread panicked while holding it: every critical section in this
/// crate leaves its data consistent after each statement (counters, maps, buffer lists), so the
/// data is still good and one panic must not take the servers down with it.
#[cfg(any(feature = "dhcp", feature = "http", feature = "tftp"))]
fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
