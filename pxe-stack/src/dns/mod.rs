//! The cluster's DNS: the names OpenShift needs, served beside DHCP.
//!
//! The pure core is [`Zone`]: [`Config`] entries checked once (names inside the zone, no
//! collisions), then [`Zone::answer`] decides each query from the name, the type, the client's
//! address and a [`HostLookup`](crate::HostLookup) (the DHCP lease table), so host records follow leases without
//! being rebuilt. Host records answer A from the host's IPv4 reservation or lease and AAAA
//! from its IPv6 reservation or DHCPv6 lease ([`HostLookup::addr6_for`](crate::HostLookup::addr6_for)). Names outside the zone and its reverse zones are [`Decision::Forward`]ed for
//! clients inside [`Config::subnets`] (or [`Config::subnets6`]) when there are upstream
//! resolvers, and refused otherwise:
//! the server is never an open resolver.
//!
//! `Server` (feature `dns`) puts the zone on the wire with hickory-server: UDP and TCP on
//! sockets the caller bound, forwarding as a relay of the client's own query bytes, at most
//! [`Config::max_forwards`] in flight (more get SERVFAIL at once, so a flood cannot grow memory).
//! Each query is an `info` log line (target `pxe_stack::dns`); `Server::with_events` also sends
//! [`EventKind::Dns`](crate::EventKind::Dns) once per client, name, type and outcome.
//!
//! # Example
//! ```
//! use std::net::{IpAddr, Ipv4Addr};
//! use pxe_stack::NoLookup;
//! use pxe_stack::dns::{Config, Decision, Entry, Qtype, Rdata, Value, Zone};
//!
//! let zone = Zone::new(&Config {
//!     origin: "ocp.example.com".into(),
//!     subnets: vec![(Ipv4Addr::new(172, 22, 0, 0), 24)],
//!     entries: vec![Entry::new("*.apps", Value::A(Ipv4Addr::new(172, 22, 0, 20)))],
//!     ..Config::default()
//! })?;
//! let client = IpAddr::from([172, 22, 0, 50]);
//! let Decision::Answer { records, .. } =
//!     zone.answer("console.apps.OCP.example.com.", Qtype::A, client, &NoLookup)
//! else {
//!     panic!("ours")
//! };
//! assert_eq!(records[0].data, Rdata::A(Ipv4Addr::new(172, 22, 0, 20)));
//! assert_eq!(zone.answer("example.org", Qtype::A, client, &NoLookup), Decision::Refuse);
//! # Ok::<(), pxe_stack::dns::Error>(())
//! ```
//!
//! # What it does not do
//! No DNSSEC, zone transfers or dynamic updates; AAAA only for host records (no fixed AAAA
//! entries), and `ip6.arpa` PTR only for hosts (no fixed PTR entries there); no NS records (the SOA names
//! the zone apex); forwarding caches nothing. It asks upstream over UDP, and over TCP again
//! when the UDP answer is truncated (TC), so a TCP client gets every record.

mod name;
#[cfg(feature = "dns")]
mod server;
mod zone;

pub use name::{absolute, in_zone, reverse_name, reverse_name6};
#[cfg(feature = "dns")]
pub use server::Server;
pub use zone::{Config, Decision, Entry, HostAddr, Qtype, Rcode, Rdata, Resolved, Value, Zone};

use std::net::Ipv4Addr;

/// What the DNS zone or server refuses.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Not a domain name we serve.
    #[error("{name:?} {reason}")]
    Name {
        /// The name as given.
        name: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// Record data that does not read as its type.
    #[error("{kind} value {value:?} {reason}")]
    Value {
        /// The record type as given.
        kind: String,
        /// The value as given.
        value: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// The zone's own name is unusable.
    #[error("zone origin {reason}")]
    Origin {
        /// What is wrong.
        reason: String,
    },
    /// A subnet whose prefix length is not 1 to 32.
    #[error("subnet {network}/{prefix} is not a usable subnet")]
    Subnet {
        /// The network.
        network: Ipv4Addr,
        /// The prefix length.
        prefix: u8,
    },
    /// An IPv6 subnet whose prefix length is not 1 to 128.
    #[error("subnet {network}/{prefix} is not a usable IPv6 subnet")]
    Subnet6 {
        /// The network.
        network: std::net::Ipv6Addr,
        /// The prefix length.
        prefix: u8,
    },
    /// An entry that is malformed, outside the zones, or collides with another.
    #[error("entry {index} ({name}): {field}: {reason}")]
    Entry {
        /// Its index in [`Config::entries`].
        index: usize,
        /// `name` or `value`.
        field: &'static str,
        /// Its name as given.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// A socket failed for good.
    #[error("dns socket")]
    Io(#[from] std::io::Error),
}
