//! The advertisement itself: a pure ICMPv6 encoder and the solicitation check.

use std::net::Ipv6Addr;

use crate::Mac;

const ROUTER_SOLICITATION: u8 = 133;
const ROUTER_ADVERTISEMENT: u8 = 134;

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
    /// The managed flag (M): addresses come from DHCPv6 (stateful, the `dhcp6` server).
    pub managed: bool,
    /// The other-configuration flag (O): DNS and boot information come from DHCPv6.
    pub other: bool,
    /// The prefix's autonomous flag (A): hosts make their own SLAAC address in it.
    pub autonomous: bool,
}

impl Advertisement {
    /// A SLAAC-only advertisement of `prefix`/64 with one-hour lifetimes: autonomous, neither
    /// managed nor other.
    pub fn new(prefix: Ipv6Addr) -> Self {
        Advertisement {
            prefix,
            valid_secs: 3600,
            preferred_secs: 3600,
            source_mac: None,
            managed: false,
            other: false,
            autonomous: true,
        }
    }

    /// An advertisement for a link where the DHCPv6 server hands out addresses: managed and
    /// other set, the prefix on-link but not autonomous, so firmware waiting for an RA goes
    /// straight to DHCPv6 and hosts hold only their leased (reservable) address.
    pub fn for_dhcp6(prefix: Ipv6Addr) -> Self {
        Advertisement {
            managed: true,
            other: true,
            autonomous: false,
            ..Self::new(prefix)
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
            u8::from(self.managed) << 7 | u8::from(self.other) << 6,
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
        // Prefix information: /64, on-link, autonomous unless DHCPv6 hands out the addresses.
        p.extend([3, 4, 64, 0x80 | u8::from(self.autonomous) << 6]);
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
        let managed = Advertisement::for_dhcp6("fd00:126::".parse().unwrap()).encode();
        assert_eq!(managed[5], 0xc0);
        assert_eq!(&managed[16..20], &[3, 4, 64, 0x80]);
        let other_only = Advertisement {
            other: true,
            ..Advertisement::new("fd00:126::".parse().unwrap())
        };
        assert_eq!(other_only.encode()[5], 0x40);
        assert!(is_router_solicitation(&[133, 0, 0, 0, 0, 0, 0, 0]));
        assert!(!is_router_solicitation(&[133, 0, 0]));
        assert!(!is_router_solicitation(&[134, 0, 0, 0, 0, 0, 0, 0]));
    }
}
