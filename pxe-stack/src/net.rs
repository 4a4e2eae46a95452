//! IPv4 subnet arithmetic, the one place the workspace computes masks, network and broadcast
//! addresses (the DHCP server's [`Subnet`](crate::dhcp::Subnet) and `rhcos-deploy`'s plan checks
//! both use it).

use std::fmt;
use std::net::Ipv4Addr;

/// An IPv4 network given by any address inside it and a prefix length, such as
/// `172.22.0.1/24`.
///
/// ```
/// use std::net::Ipv4Addr;
/// use pxe_stack::Ipv4Net;
///
/// let net = Ipv4Net::new(Ipv4Addr::new(172, 22, 0, 1), 24);
/// assert_eq!(net.network(), Ipv4Addr::new(172, 22, 0, 0));
/// assert_eq!(net.broadcast(), Ipv4Addr::new(172, 22, 0, 255));
/// assert!(net.contains(Ipv4Addr::new(172, 22, 0, 200)));
/// assert_eq!(net.special(Ipv4Addr::new(172, 22, 0, 0)), Some("network"));
/// assert_eq!(net.to_string(), "172.22.0.0/24");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Net {
    addr: Ipv4Addr,
    prefix_len: u8,
}

impl Ipv4Net {
    /// The network holding `addr` with `prefix_len` leading bits (clamped to 32).
    pub fn new(addr: Ipv4Addr, prefix_len: u8) -> Self {
        Ipv4Net {
            addr,
            prefix_len: prefix_len.min(32),
        }
    }

    /// The prefix length.
    pub fn prefix_len(&self) -> u8 {
        self.prefix_len
    }

    /// The netmask, such as `255.255.255.0`.
    pub fn mask(&self) -> Ipv4Addr {
        let bits = u32::MAX
            .checked_shl(32 - u32::from(self.prefix_len))
            .unwrap_or(0);
        Ipv4Addr::from(bits)
    }

    /// The network address (host bits zero).
    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) & u32::from(self.mask()))
    }

    /// The broadcast address (host bits one).
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network()) | !u32::from(self.mask()))
    }

    /// Whether `addr` lies inside this network.
    pub fn contains(&self, addr: Ipv4Addr) -> bool {
        let mask = u32::from(self.mask());
        u32::from(addr) & mask == u32::from(self.addr) & mask
    }

    /// `Some("network")` or `Some("broadcast")` when `addr` is one of the two addresses no host
    /// may have (for prefixes up to /30; /31 and /32 have none), else `None`.
    pub fn special(&self, addr: Ipv4Addr) -> Option<&'static str> {
        if self.prefix_len > 30 {
            return None;
        }
        if addr == self.network() {
            Some("network")
        } else if addr == self.broadcast() {
            Some("broadcast")
        } else {
            None
        }
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network(), self.prefix_len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edges() {
        let all = Ipv4Net::new(Ipv4Addr::new(10, 1, 2, 3), 0);
        assert_eq!(all.mask(), Ipv4Addr::UNSPECIFIED);
        assert!(all.contains(Ipv4Addr::BROADCAST));
        let one = Ipv4Net::new(Ipv4Addr::new(10, 1, 2, 3), 40);
        assert_eq!(one.prefix_len(), 32);
        assert_eq!(one.mask(), Ipv4Addr::BROADCAST);
        assert_eq!(one.special(Ipv4Addr::new(10, 1, 2, 3)), None);
        let n = Ipv4Net::new(Ipv4Addr::new(10, 1, 2, 3), 24);
        assert_eq!(n.special(Ipv4Addr::new(10, 1, 2, 255)), Some("broadcast"));
        assert_eq!(n.special(Ipv4Addr::new(10, 1, 2, 7)), None);
        assert!(!n.contains(Ipv4Addr::new(10, 1, 3, 7)));
    }
}
