//! A SLAAC-only IPv6 router advertisement for the provisioning interface (feature `ipv6-ra`).
//!
//! iPXE configures IPv6 alongside DHCPv4 and, when nothing answers its router solicitations,
//! waits about 13 s before it gives up (the reference rig measured it). One RA carrying a
//! ULA prefix with the autonomous flag, router lifetime 0 (not a default router) and no
//! managed/other flags lets it finish at once, without DHCPv6 and without routing anything.

use std::future::Future;
use std::io::{self, Read};
use std::net::{Ipv6Addr, SocketAddrV6};
use std::time::Duration;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tokio::io::unix::AsyncFd;

use super::error::Error;
use crate::Mac;

const ROUTER_SOLICITATION: u8 = 133;
const ROUTER_ADVERTISEMENT: u8 = 134;
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
const ALL_ROUTERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 2);

/// What to advertise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advertisement {
    /// The /64 prefix hosts autoconfigure from, such as `fd00:126::`.
    pub prefix: Ipv6Addr,
    /// Valid lifetime of the prefix, seconds.
    pub valid_secs: u32,
    /// Preferred lifetime of the prefix, seconds.
    pub preferred_secs: u32,
    /// The interface's MAC, sent as the source link-layer address option when known.
    pub source_mac: Option<Mac>,
}

impl Advertisement {
    /// An advertisement of `prefix`/64 with one-hour lifetimes.
    pub fn new(prefix: Ipv6Addr) -> Self {
        Advertisement {
            prefix,
            valid_secs: 3600,
            preferred_secs: 3600,
            source_mac: None,
        }
    }

    /// The ICMPv6 message (the kernel fills in the checksum on a raw ICMPv6 socket).
    pub fn encode(&self) -> Vec<u8> {
        let mut p = vec![
            ROUTER_ADVERTISEMENT,
            0, // code
            0,
            0,  // checksum
            64, // current hop limit
            0,  // flags: neither managed nor other configuration
            0,
            0, // router lifetime 0: not a default router
            0,
            0,
            0,
            0, // reachable time
            0,
            0,
            0,
            0, // retransmission timer
        ];
        if let Some(mac) = self.source_mac {
            p.extend([1, 1]);
            p.extend(mac.0);
        }
        // Prefix information: /64, on-link and autonomous.
        p.extend([3, 4, 64, 0xc0]);
        p.extend(self.valid_secs.to_be_bytes());
        p.extend(self.preferred_secs.to_be_bytes());
        p.extend([0; 4]);
        p.extend(self.prefix.octets());
        p
    }
}

/// Whether an ICMPv6 message is a router solicitation.
pub fn is_router_solicitation(icmp: &[u8]) -> bool {
    icmp.len() >= 8 && icmp[0] == ROUTER_SOLICITATION && icmp[1] == 0
}

/// Sends [`Advertisement`]s on one interface: at start, every `interval`, and in answer to each
/// router solicitation. Needs `CAP_NET_RAW`.
#[derive(Debug)]
pub struct RouterAdvertiser {
    socket: AsyncFd<Socket>,
    ifindex: u32,
    message: Vec<u8>,
    interval: Duration,
}

impl RouterAdvertiser {
    /// Open a raw ICMPv6 socket on `interface`. Must be called inside a tokio runtime.
    pub fn new(interface: &str, mut ad: Advertisement, interval: Duration) -> Result<Self, Error> {
        let fail = |hint: Option<&'static str>| {
            move |source: io::Error| Error::Bind {
                interface: interface.to_owned(),
                port: 0,
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
        if ad.source_mac.is_none() {
            ad.source_mac = nix::ifaddrs::getifaddrs().ok().and_then(|addrs| {
                addrs
                    .filter(|a| a.interface_name == interface)
                    .find_map(|a| a.address?.as_link_addr()?.addr())
                    .map(Mac)
            });
        }
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
        // The replacement (`AsyncFd::register`) is `unsafe`, which this workspace denies; the
        // deprecation concerns borrowed descriptors and this socket is owned.
        #[allow(deprecated, reason = "owned socket; the replacement needs unsafe")]
        let socket = AsyncFd::new(s).map_err(fail(None))?;
        Ok(RouterAdvertiser {
            socket,
            ifindex,
            message: ad.encode(),
            interval,
        })
    }

    fn send(&self) {
        let to = SockAddr::from(SocketAddrV6::new(ALL_NODES, 0, 0, self.ifindex));
        // Right after the interface comes up its link-local address is still tentative and
        // sends fail; the next tick or solicitation tries again.
        if let Err(e) = self.socket.get_ref().send_to(&self.message, &to) {
            tracing::debug!(error = %e, "router advertisement not sent");
        }
    }

    /// Advertise until `shutdown` completes.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
        tokio::pin!(shutdown);
        let mut tick = tokio::time::interval(self.interval);
        let mut buf = [0u8; 1500];
        loop {
            tokio::select! {
                _ = &mut shutdown => return Ok(()),
                _ = tick.tick() => self.send(),
                ready = self.socket.readable() => {
                    let mut guard = ready?;
                    match guard.try_io(|s| s.get_ref().read(&mut buf)) {
                        Ok(Ok(n)) if is_router_solicitation(&buf[..n]) => self.send(),
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => tracing::debug!(error = %e, "icmpv6 receive failed"),
                        Err(_would_block) => {}
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_a_slaac_only_advertisement() {
        let mut ad = Advertisement::new("fd00:126::".parse().unwrap());
        ad.source_mac = Some(Mac([0x52, 0x54, 0, 1, 2, 3]));
        let p = ad.encode();
        assert_eq!(p.len(), 16 + 8 + 32);
        assert_eq!(&p[..8], &[134, 0, 0, 0, 64, 0, 0, 0]);
        assert_eq!(&p[16..24], &[1, 1, 0x52, 0x54, 0, 1, 2, 3]);
        assert_eq!(&p[24..28], &[3, 4, 64, 0xc0]);
        assert_eq!(&p[28..32], &3600u32.to_be_bytes());
        assert_eq!(
            &p[40..56],
            &"fd00:126::".parse::<Ipv6Addr>().unwrap().octets()
        );
        assert!(is_router_solicitation(&[133, 0, 0, 0, 0, 0, 0, 0]));
        assert!(!is_router_solicitation(&[133, 0, 0]));
        assert!(!is_router_solicitation(&[134, 0, 0, 0, 0, 0, 0, 0]));
    }
}
