//! The provisioning network's address family (`provisioning.family`) and its IPv6 side
//! (`[provisioning.ipv6]`, `hosts[].ipv6`), with their checks.

use std::collections::HashSet;
use std::net::Ipv6Addr;

use serde::{Deserialize, Serialize};

use super::Plan;

/// Which IP versions the provisioning network runs.
///
/// ```toml
/// [provisioning]
/// interface = "eno2"
/// family = "ipv6"                 # or "ipv4" (default), "dual-stack"
///
/// [provisioning.ipv6]
/// address = "fd00:22::1"
/// dhcp_range = ["fd00:22::100", "fd00:22::1ff"]
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NetworkFamily {
    /// DHCPv4, TFTP, HTTP and DNS on `provisioning.address` (plans written before IPv6 existed).
    #[default]
    Ipv4,
    /// DHCPv6 and router advertisements, TFTP and HTTP on `provisioning.ipv6.address`; no IPv4
    /// address anywhere.
    Ipv6,
    /// Both: DHCPv4 and DHCPv6 for the same hosts (one MAC, an address of each), TFTP and HTTP
    /// on both addresses.
    DualStack,
}

impl NetworkFamily {
    /// Whether the network runs IPv4 (DHCPv4 and the servers on `provisioning.address`).
    pub fn has_ipv4(self) -> bool {
        matches!(self, NetworkFamily::Ipv4 | NetworkFamily::DualStack)
    }

    /// Whether the network runs IPv6 (DHCPv6, router advertisements, the servers on
    /// `provisioning.ipv6.address`).
    pub fn has_ipv6(self) -> bool {
        matches!(self, NetworkFamily::Ipv6 | NetworkFamily::DualStack)
    }

    /// The name plan files use.
    pub fn name(self) -> &'static str {
        match self {
            NetworkFamily::Ipv4 => "ipv4",
            NetworkFamily::Ipv6 => "ipv6",
            NetworkFamily::DualStack => "dual-stack",
        }
    }
}

/// The IPv6 provisioning network (`[provisioning.ipv6]`): the servers' address, the on-link
/// prefix the router advertisements announce (managed and other flags set, not autonomous:
/// hosts take their address from DHCPv6), and the DHCPv6 pool. Hosts get reservations with
/// `hosts[].ipv6`, by MAC (whatever DUID their firmware, iPXE and installer send).
///
/// ```toml
/// [provisioning.ipv6]
/// address = "fd00:22::1"                          # TFTP and HTTP bind here; DHCPv6 on the interface
/// prefix = 64                                     # the only length router advertisements carry
/// dhcp_range = ["fd00:22::100", "fd00:22::1ff"]   # for hosts without a reserved address
/// # dns = ["fd00:22::53"]                         # DHCPv6 option 23
/// # lease_secs = 3600
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ipv6Network {
    /// The servers' address on the provisioning interface (a global or unique-local one).
    pub address: Ipv6Addr,
    /// The on-link prefix length: 64, what router advertisements announce.
    #[serde(default = "default_prefix6")]
    pub prefix: u8,
    /// The dynamic DHCPv6 pool (first, last); reservations for the hosts are added on top.
    #[serde(default)]
    pub dhcp_range: Option<(Ipv6Addr, Ipv6Addr)>,
    /// DNS servers handed out (DHCPv6 option 23).
    #[serde(default)]
    pub dns: Vec<Ipv6Addr>,
    /// The lifetime of a DHCPv6 address, in seconds.
    #[serde(default = "default_lease_secs")]
    pub lease_secs: u32,
}

fn default_prefix6() -> u8 {
    64
}

fn default_lease_secs() -> u32 {
    3600
}

impl Ipv6Network {
    /// Whether `addr` lies inside `address/prefix`.
    pub fn contains(&self, addr: Ipv6Addr) -> bool {
        let mask = u128::MAX
            .checked_shl(128 - u32::from(self.prefix.min(128)))
            .unwrap_or(0);
        u128::from(addr) & mask == u128::from(self.address) & mask
    }

    /// The network prefix (`address` with the host bits cleared).
    pub fn network(&self) -> Ipv6Addr {
        let mask = u128::MAX
            .checked_shl(128 - u32::from(self.prefix.min(128)))
            .unwrap_or(0);
        Ipv6Addr::from(u128::from(self.address) & mask)
    }
}

/// Why `addr` cannot be a host or server address on the provisioning link, if it cannot.
fn not_a_host_address(addr: Ipv6Addr) -> Option<&'static str> {
    if addr.is_unspecified() {
        Some("is the unspecified address")
    } else if addr.is_loopback() {
        Some("is the loopback address")
    } else if addr.is_multicast() {
        Some("is a multicast address")
    } else if addr.segments()[0] & 0xffc0 == 0xfe80 {
        Some("is link-local (DHCPv6 hands out global or unique-local addresses)")
    } else if addr.to_ipv4_mapped().is_some() {
        Some("is an IPv4-mapped address")
    } else {
        None
    }
}

/// The largest DHCPv6 pool (what `pxe_stack::dhcp6` accepts).
const MAX_POOL: u128 = 1 << 16;

/// Checks the family against the keys that are set, and the IPv6 network against itself and
/// the hosts: `Err((key path, message))`.
pub(super) fn check(plan: &Plan) -> Result<(), (String, String)> {
    let p = &plan.provisioning;
    let family = p.family;
    let fam = family.name();
    if family.has_ipv4() && p.address.is_none() {
        return Err((
            "provisioning.address".into(),
            format!("family \"{fam}\" needs the servers' IPv4 address (or set family = \"ipv6\")"),
        ));
    }
    if !family.has_ipv4() {
        // v6-only: nothing of IPv4 may be asked for, so nothing of it runs.
        let v4_keys = [
            ("provisioning.address", p.address.is_some()),
            ("provisioning.dhcp_range", p.dhcp_range.is_some()),
            ("provisioning.router", p.router.is_some()),
            ("provisioning.dns", !p.dns.is_empty()),
        ];
        if let Some((key, _)) = v4_keys.iter().find(|(_, set)| *set) {
            return Err((
                (*key).into(),
                "family = \"ipv6\" runs no IPv4 server: drop it, or use family = \"dual-stack\""
                    .into(),
            ));
        }
        for (i, h) in plan.hosts.iter().enumerate() {
            if h.address.is_some() {
                return Err((
                    format!("hosts[{i}].address"),
                    "family = \"ipv6\" has no IPv4 addresses: reserve one with `ipv6` instead"
                        .into(),
                ));
            }
            if h.secure_boot {
                return Err((
                    format!("hosts[{i}].secure_boot"),
                    "the Secure Boot path (shim, GRUB, kernel over TFTP) is served over IPv4 \
                     only: use family = \"dual-stack\""
                        .into(),
                ));
            }
        }
    }
    let Some(v6) = &p.ipv6 else {
        if family.has_ipv6() {
            return Err((
                "provisioning.ipv6".into(),
                format!("family \"{fam}\" needs the IPv6 network ([provisioning.ipv6] address)"),
            ));
        }
        if let Some(i) = plan.hosts.iter().position(|h| h.ipv6.is_some()) {
            return Err((
                format!("hosts[{i}].ipv6"),
                "an IPv6 reservation needs family = \"ipv6\" or \"dual-stack\"".into(),
            ));
        }
        return Ok(());
    };
    if !family.has_ipv6() {
        return Err((
            "provisioning.ipv6".into(),
            "family is \"ipv4\" (the default): set family = \"ipv6\" or \"dual-stack\" to run \
             DHCPv6"
                .into(),
        ));
    }
    if p.ipv6_ra_prefix.is_some() {
        return Err((
            "provisioning.ipv6_ra_prefix".into(),
            "the IPv6 network's router advertisements announce provisioning.ipv6's prefix (with \
             DHCPv6's managed flag): drop ipv6_ra_prefix"
                .into(),
        ));
    }
    if let Some(why) = not_a_host_address(v6.address) {
        return Err((
            "provisioning.ipv6.address".into(),
            format!("{} {why}", v6.address),
        ));
    }
    if v6.prefix != 64 {
        return Err((
            "provisioning.ipv6.prefix".into(),
            format!(
                "{} is not 64, the on-link prefix length router advertisements announce",
                v6.prefix
            ),
        ));
    }
    if v6.address == v6.network() {
        return Err((
            "provisioning.ipv6.address".into(),
            format!(
                "{} is the subnet-router anycast address of {}/{}",
                v6.address,
                v6.network(),
                v6.prefix
            ),
        ));
    }
    if v6.lease_secs == 0 {
        return Err((
            "provisioning.ipv6.lease_secs".into(),
            "0 is not a lease time".into(),
        ));
    }
    let net = format!("{}/{}", v6.network(), v6.prefix);
    if let Some((first, last)) = v6.dhcp_range {
        let key = "provisioning.ipv6.dhcp_range";
        if !v6.contains(first) || !v6.contains(last) || u128::from(first) > u128::from(last) {
            return Err((
                key.into(),
                format!("{first}..{last} is not a range inside {net}"),
            ));
        }
        if u128::from(last) - u128::from(first) >= MAX_POOL {
            return Err((
                key.into(),
                format!("{first}..{last} holds more than {MAX_POOL} addresses"),
            ));
        }
        if first == v6.network() {
            return Err((
                key.into(),
                format!("{first} is the subnet-router anycast address"),
            ));
        }
        if (first..=last).contains(&v6.address) {
            return Err((
                key.into(),
                format!(
                    "{first}..{last} holds the server's own address {}",
                    v6.address
                ),
            ));
        }
    }
    let mut seen = HashSet::new();
    for (i, h) in plan.hosts.iter().enumerate() {
        let Some(a) = h.ipv6 else { continue };
        let key = format!("hosts[{i}].ipv6");
        if let Some(why) = not_a_host_address(a) {
            return Err((key, format!("{a} {why}")));
        }
        if !v6.contains(a) {
            return Err((key, format!("{a} is outside {net}")));
        }
        if a == v6.address {
            return Err((
                key,
                format!("{a} is the servers' own address (provisioning.ipv6.address)"),
            ));
        }
        if a == v6.network() {
            return Err((key, format!("{a} is the subnet-router anycast address")));
        }
        if let Some((first, last)) = v6.dhcp_range
            && (first..=last).contains(&a)
        {
            return Err((
                key,
                format!(
                    "{a} is inside dhcp_range {first}..{last}, where another host may hold a \
                     dynamic lease on it"
                ),
            ));
        }
        if !seen.insert(a) {
            return Err((key, format!("{a} is used twice")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::net::Ipv6Addr;

    use super::*;

    /// A v6-only plan: no IPv4 address anywhere.
    const V6: &str = r#"
[cluster]
name = "ocp"
base_domain = "example.com"
assets = "/srv/ocp"

[images]
stream = "file:///srv/stream.json"

[provisioning]
interface = "eno2"
family = "ipv6"

[provisioning.ipv6]
address = "fd00:22::1"
dhcp_range = ["fd00:22::100", "fd00:22::1ff"]

[[hosts]]
name = "master-0"
mac = "52:54:00:12:60:01"
role = "master"
ipv6 = "fd00:22::10"

[[hosts]]
name = "worker-0"
mac = "52:54:00:12:60:02"
role = "worker"
"#;

    fn check(text: &str, expected: &str) {
        let got = match Plan::parse(text, "plan.toml") {
            Ok(_) => "ok".to_owned(),
            Err(e) => e.to_string(),
        };
        assert!(
            got.contains(expected),
            "expected {expected:?} in {got:?} for\n{text}"
        );
    }

    /// `V6` as a dual-stack plan, the IPv4 keys added.
    fn dual(text: &str) -> String {
        text.replace(
            "family = \"ipv6\"",
            "family = \"dual-stack\"\naddress = \"172.22.0.1\"\ndhcp_range = [\"172.22.0.100\", \"172.22.0.199\"]",
        )
    }

    #[test]
    fn a_v6_only_plan_needs_no_ipv4_address() {
        let plan = Plan::parse(V6, "plan.toml").unwrap();
        let p = &plan.provisioning;
        assert_eq!(p.family, NetworkFamily::Ipv6);
        assert_eq!(p.address, None);
        let v6 = p.ipv6.as_ref().unwrap();
        assert_eq!(v6.prefix, 64);
        assert_eq!(v6.network(), "fd00:22::".parse::<Ipv6Addr>().unwrap());
        assert_eq!(v6.lease_secs, 3600);
        assert_eq!(plan.hosts[0].ipv6, Some("fd00:22::10".parse().unwrap()));
        // The cluster DNS runs on the IPv6 address (AAAA records), named by option 23.
        assert!(plan.dns_enabled());
        let zone = plan.dns_zone().unwrap().unwrap();
        assert!(zone.subnets.is_empty(), "no IPv4 subnet to forward for");
        assert_eq!(plan.dns_servers6(), vec![v6.address]);
        assert!(plan.dns_servers().is_empty());
        assert!(plan.subnet().is_none());
        // Other servers named: those are handed out, and ours stays off unless asked for.
        let other = V6.replace(
            "dhcp_range = [\"fd00:22::100\"",
            "dns = [\"fd00:22::53\"]\ndhcp_range = [\"fd00:22::100\"",
        );
        let plan = Plan::parse(&other, "plan.toml").unwrap();
        assert!(!plan.dns_enabled());
        assert_eq!(
            plan.dns_servers6(),
            vec!["fd00:22::53".parse::<Ipv6Addr>().unwrap()]
        );
        // Forwarding to ourselves is refused over IPv6 too.
        check(
            &format!("{V6}\n[dns]\nupstream = [\"fd00:22::1\"]\n"),
            "at `dns.upstream[0]`: fd00:22::1 is this DNS server itself",
        );
    }

    #[test]
    fn today_s_plans_are_ipv4_and_unchanged() {
        let v4 = V6
            .replace("family = \"ipv6\"", "address = \"172.22.0.1\"")
            .replace("ipv6 = \"fd00:22::10\"", "address = \"172.22.0.10\"");
        let v4 = v4[..v4.find("[provisioning.ipv6]").unwrap()].to_owned()
            + &v4[v4.find("[[hosts]]").unwrap()..];
        let plan = Plan::parse(&v4, "plan.toml").unwrap();
        assert_eq!(plan.provisioning.family, NetworkFamily::Ipv4);
        assert!(plan.provisioning.ipv6.is_none());
        assert!(plan.dns_enabled());
        // A v4 plan without its address says which key is missing.
        check(
            &v4.replace("address = \"172.22.0.1\"\n", ""),
            "at `provisioning.address`: family \"ipv4\" needs the servers' IPv4 address",
        );
        // An IPv6 section or reservation on an IPv4 network is a mistake, not ignored.
        check(
            &v4.replacen(
                "[[hosts]]",
                "[provisioning.ipv6]\naddress = \"fd00:22::1\"\n\n[[hosts]]",
                1,
            ),
            "at `provisioning.ipv6`: family is \"ipv4\"",
        );
        check(
            &v4.replace(
                "address = \"172.22.0.10\"",
                "address = \"172.22.0.10\"\nipv6 = \"fd00:22::10\"",
            ),
            "at `hosts[0].ipv6`: an IPv6 reservation needs family",
        );
    }

    #[test]
    fn a_dual_stack_plan_has_both() {
        let plan = Plan::parse(&dual(V6), "plan.toml").unwrap();
        assert_eq!(plan.provisioning.family, NetworkFamily::DualStack);
        assert!(plan.provisioning.family.has_ipv4() && plan.provisioning.family.has_ipv6());
        assert!(plan.dns_enabled());
        check(
            &dual(V6).replace("address = \"172.22.0.1\"\n", ""),
            "at `provisioning.address`: family \"dual-stack\" needs the servers' IPv4 address",
        );
        let no_v6 = dual(V6);
        let no_v6 = no_v6[..no_v6.find("[provisioning.ipv6]").unwrap()].to_owned()
            + &no_v6[no_v6.find("[[hosts]]").unwrap()..];
        check(
            &no_v6.replace("ipv6 = \"fd00:22::10\"", ""),
            "at `provisioning.ipv6`: family \"dual-stack\" needs the IPv6 network",
        );
        check(
            &dual(V6).replace(
                "family = \"dual-stack\"",
                "family = \"dual-stack\"\nipv6_ra_prefix = \"fd00:126::\"",
            ),
            "at `provisioning.ipv6_ra_prefix`",
        );
    }

    #[test]
    fn v6_only_refuses_every_ipv4_key() {
        let with =
            |line: &str| V6.replace("family = \"ipv6\"", &format!("family = \"ipv6\"\n{line}"));
        for (line, key) in [
            ("address = \"172.22.0.1\"", "provisioning.address"),
            (
                "dhcp_range = [\"172.22.0.100\", \"172.22.0.199\"]",
                "provisioning.dhcp_range",
            ),
            ("router = \"172.22.0.254\"", "provisioning.router"),
            ("dns = [\"192.0.2.53\"]", "provisioning.dns"),
        ] {
            check(
                &with(line),
                &format!("at `{key}`: family = \"ipv6\" runs no IPv4 server"),
            );
        }
        check(
            &V6.replace(
                "role = \"worker\"",
                "role = \"worker\"\naddress = \"172.22.0.20\"",
            ),
            "at `hosts[1].address`: family = \"ipv6\" has no IPv4 addresses",
        );
        check(
            &V6.replace("role = \"worker\"", "role = \"worker\"\nsecure_boot = true"),
            "at `hosts[1].secure_boot`",
        );
        check(
            &V6.replace("family = \"ipv6\"", "family = \"ipv5\""),
            "plan.toml:12:10: at `provisioning.family`",
        );
    }

    #[test]
    fn the_v6_network_is_checked_with_key_paths() {
        let set = |from: &str, to: &str| V6.replace(from, to);
        for (addr, why) in [
            ("::", "is the unspecified address"),
            ("fe80::1", "is link-local"),
            ("ff02::2", "is a multicast address"),
            ("fd00:22::", "is the subnet-router anycast address"),
        ] {
            check(
                &set("address = \"fd00:22::1\"", &format!("address = \"{addr}\"")),
                &format!("at `provisioning.ipv6.address`: {addr} {why}"),
            );
        }
        // (what the plan says, what it says instead, the error)
        for (from, to, error) in [
            (
                "address = \"fd00:22::1\"",
                "address = \"fd00:22::1\"\nprefix = 80",
                "at `provisioning.ipv6.prefix`: 80 is not 64",
            ),
            (
                "address = \"fd00:22::1\"",
                "address = \"172.22.0.1\"",
                "at `provisioning.ipv6.address`",
            ),
            (
                "\"fd00:22::1ff\"",
                "\"fd00:23::1ff\"",
                "at `provisioning.ipv6.dhcp_range`: fd00:22::100..fd00:23::1ff is not a range inside fd00:22::/64",
            ),
            (
                "\"fd00:22::1ff\"",
                "\"fd00:22::2:0\"",
                "at `provisioning.ipv6.dhcp_range`: fd00:22::100..fd00:22::2:0 holds more than 65536",
            ),
            (
                "\"fd00:22::100\"",
                "\"fd00:22::0:1\"",
                "at `provisioning.ipv6.dhcp_range`: fd00:22::1..fd00:22::1ff holds the server's own address",
            ),
            (
                "ipv6 = \"fd00:22::10\"",
                "ipv6 = \"fd00:99::10\"",
                "at `hosts[0].ipv6`: fd00:99::10 is outside fd00:22::/64",
            ),
            (
                "ipv6 = \"fd00:22::10\"",
                "ipv6 = \"fd00:22::1\"",
                "at `hosts[0].ipv6`: fd00:22::1 is the servers' own address",
            ),
            (
                "ipv6 = \"fd00:22::10\"",
                "ipv6 = \"fd00:22::150\"",
                "at `hosts[0].ipv6`: fd00:22::150 is inside dhcp_range",
            ),
            (
                "role = \"worker\"",
                "role = \"worker\"\nipv6 = \"fd00:22::10\"",
                "at `hosts[1].ipv6`: fd00:22::10 is used twice",
            ),
            (
                "ipv6 = \"fd00:22::10\"",
                "ipv6 = \"fd00:22:x::10\"",
                "at `hosts[0].ipv6`",
            ),
            (
                "address = \"fd00:22::1\"",
                "address = \"fd00:22::1\"\nlease_secs = 0",
                "at `provisioning.ipv6.lease_secs`",
            ),
            (
                "address = \"fd00:22::1\"",
                "address = \"fd00:22::1\"\npool = []",
                "pool",
            ),
        ] {
            check(&set(from, to), error);
        }
    }
}
