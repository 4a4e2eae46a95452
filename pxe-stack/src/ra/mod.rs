//! SLAAC-only IPv6 router advertisements for the provisioning interface (feature `ipv6-ra`),
//! served beside DHCP.
//!
//! iPXE configures IPv6 alongside DHCPv4 and, when nothing answers its router solicitations,
//! waits about 13 s before it gives up (the reference rig measured it). One RA carrying a
//! ULA prefix with the autonomous flag, router lifetime 0 (not a default router) and no
//! managed/other flags lets it finish at once, without DHCPv6 and without routing anything.
//! Where the `dhcp6` server hands out addresses, [`Advertisement::for_dhcp6`] sets the
//! managed and other flags and clears the prefix's autonomous flag instead.
//!
//! The message is the pure [`Advertisement::encode`]; [`bind`] opens the raw ICMPv6 socket
//! (`CAP_NET_RAW`) and [`Server`] sends on it, like every other server of this crate:
//!
//! ```no_run
//! # async fn example() -> Result<(), pxe_stack::ra::Error> {
//! use pxe_stack::ra::{self, Advertisement, Server};
//!
//! let socket = ra::bind("br0")?;
//! let ad = Advertisement::new("fd00:126::".parse().unwrap());
//! Server::new(ad).serve(socket, std::future::pending()).await
//! # }
//! ```
//!
//! # What it does not do
//! No default route (router lifetime 0), no DNS options, and no prefix other than the
//! one given.

mod advertisement;
mod server;

pub use advertisement::{Advertisement, is_router_solicitation};
pub use server::{Icmpv6Socket, Server, bind};

/// Errors opening the socket or advertising.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The socket could not be created or configured on the interface.
    #[error("cannot open icmpv6 socket on {interface:?}: {source}{}", hint.map(|h| format!(" (needs {h})")).unwrap_or_default())]
    Bind {
        /// The interface asked for.
        interface: String,
        /// The capability that is missing, when the error is a permission error.
        hint: Option<&'static str>,
        /// The system error.
        #[source]
        source: std::io::Error,
    },
    /// Receiving on the socket failed.
    #[error("icmpv6 socket i/o: {0}")]
    Io(#[from] std::io::Error),
}
