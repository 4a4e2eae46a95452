//! A DHCPv6 server for network boots (RFC 8415, PXE over IPv6 per RFC 5970).
//!
//! Same shape as the DHCPv4 server (module `dhcp`): the decision core is [`respond`] (a [`Request`],
//! the [`LeaseTable6`] and the time in, a [`Verdict6`] out); [`Server`] wraps it on tokio, writes
//! the [`LeaseFile6`] before any Reply that binds an address leaves, emits
//! [`EventKind::Dhcp`](crate::EventKind::Dhcp) events (the v6 address in [`Event::addr`](crate::Event::addr))
//! and logs each exchange at info level in dnsmasq's style (`DHCPSOLICIT`, `DHCPADVERTISE`, …).
//! The event steps are the v4 ones: Solicit is `Discover`, Advertise `Offer`, Request, Renew,
//! Rebind and Confirm `Request`, a Reply `Ack`, Information-request `Inform`.
//!
//! Stateful IA_NA from a pool per link, Solicit/Advertise/Request/Reply, Rapid Commit,
//! Renew/Rebind, Release/Decline, Confirm, Information-request, and Relay-Forward/Relay-Reply
//! (the reply goes back through every relay, each hop's Interface-ID echoed; the link is the
//! innermost relay's link address).
//!
//! Hosts are keyed by **MAC**, not DUID, so firmware, iPXE and the installer (three DUIDs) get
//! one address and one reservation. The MAC comes from, in order: the innermost relay's Client
//! Link-Layer Address (option 79); the modified EUI-64 of the client's link-local address (the
//! datagram's source, or the innermost relay's peer address); a DUID-LL or DUID-LLT.
//! A client with none of these (a DUID-UUID or DUID-EN from a stable-privacy address, not
//! relayed by a relay that adds option 79) is not answered.
//!
//! Boot (option 59, OPT_BOOTFILE_URL): iPXE (user class `iPXE`) gets
//! [`BootFiles6::ipxe_script_url`]; UEFI HTTP boot (vendor class `HTTPClient`, or
//! architecture 16/19) gets [`BootFiles6::http_boot_url`] with its vendor class echoed; UEFI PXE
//! (architecture 7, 9 or 11) gets `tftp://[server_addr]/<efi binary>`. A host listed in
//! [`BootFiles6::hosts`] (a Secure Boot host: the signed shim) gets its own x86-64 UEFI file
//! and HTTP boot URL first.
//!
//! # Example
//! ```
//! use std::net::SocketAddrV6;
//! use std::time::SystemTime;
//! use pxe_stack::dhcp6::{Config, LeaseTable6, Policy, Range6, Request, Subnet6, respond};
//!
//! let mut subnet = Subnet6::new("fd00:77::".parse()?, 64);
//! subnet.pool = Some(Range6 { start: "fd00:77::100".parse()?, end: "fd00:77::1ff".parse()? });
//! let policy = Policy::new(Config {
//!     server_addr: "fd00:77::1".parse()?,
//!     subnets: vec![subnet],
//!     ..Config::default()
//! })?;
//! // A Solicit from UEFI PXE firmware: client id (DUID-LL), IA_NA 1, architecture 7.
//! let mut bytes = vec![1, 0xab, 0xcd, 0xef];
//! bytes.extend([0, 1, 0, 10, 0, 3, 0, 1, 0x52, 0x54, 0, 0x77, 0, 1]);
//! bytes.extend([0, 3, 0, 12, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
//! bytes.extend([0, 61, 0, 2, 0, 7]);
//! let src: SocketAddrV6 = "[fe80::5054:ff:fe77:1]:546".parse()?;
//! let request = Request::decode(&bytes, src)?;
//! let out = respond(&policy, &mut LeaseTable6::new(), &request, SystemTime::now());
//! let bytes = out.reply.expect("an advertise").encode().expect("encodes");
//! assert_eq!(bytes[0], 2); // Advertise
//! let url = b"tftp://[fd00:77::1]/ipxe.efi";
//! assert!(bytes.windows(url.len()).any(|w| w == url));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! To serve: `let socket = dhcp6::bind(Some("br0"), 547)?;` then
//! `Server::new(config)?.with_lease_file(LeaseFile6::new(path))?.serve(socket, shutdown).await`.
//! [`Server::leases`] is a [`HostLookup`](crate::HostLookup) for the HTTP server on v6.
//!
//! # What it does not do
//! No IA_TA or IA_PD, no Reconfigure, no authentication, no stateless-only mode flagging in
//! router advertisements (that is the `ra` module's), no DNS search list.

mod config;
mod error;
mod leases;
mod packet;
mod respond;
mod server;

pub use config::{
    BootFiles6, Config, HostBootFiles6, MAX_POOL, Mode, Policy, Range6, Reservation6, Subnet6,
};
pub use error::Error;
pub use leases::{Change6, Lease6, LeaseFile6, LeaseTable6, Leases6, State6, unix_secs};
pub use packet::{
    CLIENT_PORT, Hop, MAX_HOPS, MAX_PACKET, MacSource, Malformed6, Reply6, Request, SERVER_PORT,
    bootfile_params, bootfile_url, check_options, duid_mac, eui64_mac, user_class, vendor_class,
};
pub use respond::{Verdict6, respond};
pub use server::{ALL_SERVERS, Server, bind};
