//! Host identity shared by every server: the MAC address and the lease lookup.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// An Ethernet MAC address, the identity of a booting host.
///
/// Parses `52:54:00:12:34:56`, `52-54-00-12-34-56` (iPXE's `${mac:hexhyp}`) and
/// `525400123456` (`${mac:hexraw}`), in either case. Displays as lowercase colon-separated hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    /// The address in iPXE's `${mac:hexhyp}` form: `52-54-00-12-34-56`.
    pub fn hexhyp(&self) -> String {
        self.join('-')
    }

    /// Whether the locally-administered bit is set (true for most virtual NICs' random MACs).
    pub fn is_local(&self) -> bool {
        self.0[0] & 0x02 != 0
    }

    /// Whether this is a multicast (group) address, never a host's identity.
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 != 0
    }

    /// Why this cannot be one NIC's address (all zero, or a broadcast or multicast group
    /// address), or `None` when it can. DHCP reservations and deployment plans refuse such MACs.
    ///
    /// ```
    /// use pxe_stack::Mac;
    /// assert_eq!(Mac([0; 6]).not_unicast(), Some("is all zero"));
    /// assert!(Mac([1, 0, 0x5e, 0, 0, 1]).not_unicast().is_some());
    /// assert_eq!(Mac([0x52, 0x54, 0, 0, 0, 1]).not_unicast(), None);
    /// ```
    pub fn not_unicast(&self) -> Option<&'static str> {
        if self.0 == [0; 6] {
            Some("is all zero")
        } else if self.is_multicast() {
            Some("is a broadcast or multicast address")
        } else {
            None
        }
    }

    fn join(&self, sep: char) -> String {
        let mut s = String::with_capacity(17);
        for (i, b) in self.0.iter().enumerate() {
            if i > 0 {
                s.push(sep);
            }
            s.push_str(&format!("{b:02x}"));
        }
        s
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.join(':'))
    }
}

impl fmt::Debug for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Mac({self})")
    }
}

/// What a lease belongs to: which requests count as the same client.
///
/// PXE wants one address per machine through every stage (firmware, iPXE, the installer, the
/// installed OS), and those stages send different client identifiers (option 61) or none, so
/// the default keys leases by MAC and ignores option 61. RFC 2131 keys by the client
/// identifier when one is sent: choose [`ClientId`](LeaseIdentity::ClientId) for networks
/// where one NIC carries several clients (containers, VMs sharing a MAC, dual boot) that must
/// get addresses of their own. Reserved hosts are always keyed by MAC. The DHCP server's `Config::lease_identity`
/// (feature `dhcp`) takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LeaseIdentity {
    /// One lease per MAC; option 61 is ignored (echoed in replies, as RFC 6842 asks).
    #[default]
    Mac,
    /// One lease per client identifier (option 61) when the client sends one, per MAC when
    /// it does not. A MAC with two client identifiers gets two addresses. Leases written under
    /// the other rule keep their key until they end.
    ClientId,
}

/// The error for a string that is not a MAC address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid MAC address {input:?}: expected six hex octets such as 52:54:00:12:34:56")]
pub struct ParseMacError {
    /// The rejected input.
    pub input: String,
}

impl FromStr for Mac {
    type Err = ParseMacError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseMacError {
            input: s.to_owned(),
        };
        let hex: Vec<u8> = if s.len() == 12 {
            s.bytes().collect()
        } else if s.len() == 17 {
            let sep = s.as_bytes()[2];
            if sep != b':' && sep != b'-' {
                return Err(err());
            }
            let mut out = Vec::with_capacity(12);
            for (i, b) in s.bytes().enumerate() {
                if i % 3 == 2 {
                    if b != sep {
                        return Err(err());
                    }
                } else {
                    out.push(b);
                }
            }
            out
        } else {
            return Err(err());
        };
        let mut mac = [0u8; 6];
        for (i, pair) in hex.chunks(2).enumerate() {
            // from_str_radix accepts a leading sign ("+5"); a MAC octet is two hex digits.
            if !pair.iter().all(u8::is_ascii_hexdigit) {
                return Err(err());
            }
            let pair = std::str::from_utf8(pair).map_err(|_| err())?;
            mac[i] = u8::from_str_radix(pair, 16).map_err(|_| err())?;
        }
        Ok(Mac(mac))
    }
}

impl Serialize for Mac {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Mac {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Maps between a host's network address and its MAC, usually through the DHCP lease table.
///
/// The HTTP server uses it to name the host behind a request; Ignition serving uses it to check
/// that a config goes only to the address holding that host's lease.
pub trait HostLookup: Send + Sync {
    /// The MAC address that currently holds `addr`, if any.
    fn mac_for(&self, addr: IpAddr) -> Option<Mac>;
    /// The address currently leased to `mac`, if any.
    fn addr_for(&self, mac: Mac) -> Option<IpAddr>;

    /// The IPv6 address currently leased to `mac`, if any: for a lookup that knows both
    /// families (a dual-stack pair), the one [`addr_for`](HostLookup::addr_for) may not
    /// return. By default, `addr_for` when it is an IPv6 address.
    fn addr6_for(&self, mac: Mac) -> Option<Ipv6Addr> {
        match self.addr_for(mac) {
            Some(IpAddr::V6(a)) => Some(a),
            _ => None,
        }
    }
}

/// A lookup that knows no host: for setups without a DHCP server of ours.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoLookup;

impl HostLookup for NoLookup {
    fn mac_for(&self, _addr: IpAddr) -> Option<Mac> {
        None
    }
    fn addr_for(&self, _mac: Mac) -> Option<IpAddr> {
        None
    }
}

/// Two lookups as one, such as the DHCPv4 and DHCPv6 lease tables of a dual-stack network: an
/// address is asked of both, a MAC's address comes from the first that knows one.
impl<A: HostLookup, B: HostLookup> HostLookup for (A, B) {
    fn mac_for(&self, addr: IpAddr) -> Option<Mac> {
        self.0.mac_for(addr).or_else(|| self.1.mac_for(addr))
    }
    fn addr_for(&self, mac: Mac) -> Option<IpAddr> {
        self.0.addr_for(mac).or_else(|| self.1.addr_for(mac))
    }
    fn addr6_for(&self, mac: Mac) -> Option<Ipv6Addr> {
        self.0.addr6_for(mac).or_else(|| self.1.addr6_for(mac))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct One(IpAddr, Mac);

    impl HostLookup for One {
        fn mac_for(&self, addr: IpAddr) -> Option<Mac> {
            (addr == self.0).then_some(self.1)
        }
        fn addr_for(&self, mac: Mac) -> Option<IpAddr> {
            (mac == self.1).then_some(self.0)
        }
    }

    #[test]
    fn a_pair_of_lookups_asks_both() {
        let mac = Mac([0x52, 0x54, 0, 0, 0, 1]);
        let v4 = One("10.0.0.5".parse().unwrap(), mac);
        let v6 = One("fd00::5".parse().unwrap(), mac);
        let both = (v4, v6);
        assert_eq!(both.mac_for("10.0.0.5".parse().unwrap()), Some(mac));
        assert_eq!(both.mac_for("fd00::5".parse().unwrap()), Some(mac));
        assert_eq!(both.mac_for("fd00::6".parse().unwrap()), None);
        assert_eq!(both.addr_for(mac), Some("10.0.0.5".parse().unwrap()));
        // The IPv6 address of a dual-stack host, though addr_for gives the IPv4 one.
        assert_eq!(both.addr6_for(mac), Some("fd00::5".parse().unwrap()));
        assert_eq!(both.0.addr6_for(mac), None);
        assert_eq!(
            (NoLookup, both.1).addr_for(mac),
            Some("fd00::5".parse().unwrap())
        );
    }

    fn check(input: &str, expected: Option<&str>) {
        let got = input.parse::<Mac>().ok().map(|m| m.to_string());
        assert_eq!(got.as_deref(), expected, "input {input:?}");
    }

    #[test]
    fn parses_the_three_forms() {
        check("52:54:00:12:34:56", Some("52:54:00:12:34:56"));
        check("52-54-00-AB-cd-EF", Some("52:54:00:ab:cd:ef"));
        check("525400123456", Some("52:54:00:12:34:56"));
        check("52:54-00:12:34:56", None);
        check("52:54:00:12:34", None);
        check("52:54:00:12:34:5g", None);
        check("", None);
        check("+5:54:00:12:34:56", None);
        check("ééé", None);
    }

    #[test]
    fn hexhyp_and_serde() {
        let mac: Mac = "52:54:00:12:34:56".parse().unwrap();
        assert_eq!(mac.hexhyp(), "52-54-00-12-34-56");
        let json = serde_json_like(&mac);
        assert_eq!(json, "52:54:00:12:34:56");
    }

    fn serde_json_like(mac: &Mac) -> String {
        // Display is what Serialize writes.
        mac.to_string()
    }
}
