//! The socket and the sender: [`bind`] opens the raw ICMPv6 socket, [`Server`] advertises on it.

use std::future::Future;
use std::io::{self, Read};
use std::net::{Ipv6Addr, SocketAddrV6};
use std::time::Duration;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tokio::io::unix::AsyncFd;

use super::Error;
use super::advertisement::{Advertisement, is_router_solicitation};
use crate::Mac;

const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
const ALL_ROUTERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 2);

/// A raw ICMPv6 socket tied to one interface, from [`bind`].
#[derive(Debug)]
pub struct Icmpv6Socket {
    socket: Socket,
    interface: String,
    ifindex: u32,
    mac: Option<Mac>,
}

impl Icmpv6Socket {
    /// The interface the socket is tied to.
    pub fn interface(&self) -> &str {
        &self.interface
    }

    /// The interface's MAC, when the kernel reported one.
    pub fn mac(&self) -> Option<Mac> {
        self.mac
    }
}

/// Opens a raw ICMPv6 socket on `interface` for [`Server::serve`]: tied to the interface
/// (SO_BINDTODEVICE), hop limit 255 as neighbor discovery requires, and a member of the
/// all-routers group so router solicitations arrive. Needs `CAP_NET_RAW`; a permission error
/// names it in [`Error::Bind`].
///
/// The interface index and MAC are looked up here, in the calling thread's network namespace.
pub fn bind(interface: &str) -> Result<Icmpv6Socket, Error> {
    let fail = |hint: Option<&'static str>| {
        move |source: io::Error| Error::Bind {
            interface: interface.to_owned(),
            hint: if source.kind() == io::ErrorKind::PermissionDenied
                || source.raw_os_error() == Some(1)
            {
                hint
            } else {
                None
            },
            source,
        }
    };
    // Ask the kernel, not /sys: sysfs shows the namespace it was mounted in, while these
    // calls answer for the calling thread's network namespace.
    let ifindex = nix::net::if_::if_nametoindex(interface)
        .map_err(|e| fail(None)(io::Error::from_raw_os_error(e as i32)))?;
    let mac = nix::ifaddrs::getifaddrs().ok().and_then(|addrs| {
        addrs
            .filter(|a| a.interface_name == interface)
            .find_map(|a| a.address?.as_link_addr()?.addr())
            .map(Mac)
    });
    let s = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6))
        .map_err(fail(Some("CAP_NET_RAW")))?;
    s.bind_device(Some(interface.as_bytes()))
        .map_err(fail(Some("CAP_NET_RAW")))?;
    // RFC 4861: neighbor discovery messages carry hop limit 255, or receivers drop them.
    s.set_multicast_hops_v6(255).map_err(fail(None))?;
    s.set_unicast_hops_v6(255).map_err(fail(None))?;
    s.set_multicast_if_v6(ifindex).map_err(fail(None))?;
    // Solicitations go to all-routers, which a non-forwarding host does not listen to.
    s.join_multicast_v6(&ALL_ROUTERS, ifindex)
        .map_err(fail(None))?;
    s.set_nonblocking(true).map_err(fail(None))?;
    Ok(Icmpv6Socket {
        socket: s,
        interface: interface.to_owned(),
        ifindex,
        mac,
    })
}

/// Sends an [`Advertisement`] on one interface: at start, every interval, and in answer to each
/// router solicitation. Build with [`Server::new`], then [`serve`](Server::serve).
#[derive(Debug, Clone)]
pub struct Server {
    advertisement: Advertisement,
    interval: Duration,
}

impl Server {
    /// A server sending `advertisement` every 10 seconds. Without
    /// [`source_mac`](Advertisement::source_mac), it carries the MAC of the socket's interface.
    pub fn new(advertisement: Advertisement) -> Self {
        Server {
            advertisement,
            interval: Duration::from_secs(10),
        }
    }

    /// Advertise unsolicited every `interval` (solicitations are always answered at once).
    pub fn with_interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// Advertises on `socket` (see [`bind`]) until `shutdown` completes. Must be called inside
    /// a tokio runtime.
    pub async fn serve(
        self,
        socket: Icmpv6Socket,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), Error> {
        let mut ad = self.advertisement;
        if ad.source_mac.is_none() {
            ad.source_mac = socket.mac;
        }
        let message = ad.encode();
        let to = SockAddr::from(SocketAddrV6::new(ALL_NODES, 0, 0, socket.ifindex));
        // The replacement (`AsyncFd::register`) is `unsafe`, which this workspace denies; the
        // deprecation concerns borrowed descriptors and this socket is owned.
        #[allow(deprecated, reason = "owned socket; the replacement needs unsafe")]
        let fd = AsyncFd::new(socket.socket)?;
        let send = || {
            // Right after the interface comes up its link-local address is still tentative and
            // sends fail; the next tick or solicitation tries again.
            if let Err(e) = fd.get_ref().send_to(&message, &to) {
                tracing::debug!(error = %e, "router advertisement not sent");
            }
        };
        tracing::info!(interface = socket.interface, "router advertisements");
        tokio::pin!(shutdown);
        let mut tick = tokio::time::interval(self.interval);
        let mut buf = [0u8; 1500];
        loop {
            tokio::select! {
                _ = &mut shutdown => return Ok(()),
                _ = tick.tick() => send(),
                ready = fd.readable() => {
                    let mut guard = ready?;
                    match guard.try_io(|s| s.get_ref().read(&mut buf)) {
                        Ok(Ok(n)) if is_router_solicitation(&buf[..n]) => send(),
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => tracing::debug!(error = %e, "icmpv6 receive failed"),
                        Err(_would_block) => {}
                    }
                }
            }
        }
    }
}
