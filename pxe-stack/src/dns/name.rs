//! Domain names as the zone keeps them: lowercase, absolute, without the trailing dot.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::Error;

/// The longest name in presentation form (RFC 1035: 255 octets on the wire).
const MAX_NAME: usize = 253;
/// The longest label.
const MAX_LABEL: usize = 63;

/// `name` made absolute: a name ending in `.` is already absolute, `@` is `origin`, and any
/// other name is relative to `origin`. The result is lowercase, without the trailing dot.
///
/// Labels are letters, digits, `-` (not first or last) and `_` (service labels such as
/// `_tcp`); a `*` label is allowed only as the leftmost label (a wildcard).
pub fn absolute(name: &str, origin: &str) -> Result<String, Error> {
    let bad = |reason: &'static str| Error::Name {
        name: name.to_owned(),
        reason,
    };
    let full = if name == "@" {
        origin.to_owned()
    } else if let Some(abs) = name.strip_suffix('.') {
        abs.to_owned()
    } else if origin.is_empty() {
        name.to_owned()
    } else {
        format!("{name}.{origin}")
    };
    if full.is_empty() {
        return Err(bad("the root is not a name here"));
    }
    if full.len() > MAX_NAME {
        return Err(bad("longer than 253 characters"));
    }
    for (i, label) in full.split('.').enumerate() {
        if label.is_empty() {
            return Err(bad("has an empty label"));
        }
        if label.len() > MAX_LABEL {
            return Err(bad("has a label longer than 63 characters"));
        }
        if label == "*" {
            if i > 0 {
                return Err(bad("has `*` as a label other than the first"));
            }
            continue;
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(bad(
                "has a character other than letters, digits, `-` and `_`",
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(bad("has a label that starts or ends with `-`"));
        }
    }
    Ok(full.to_ascii_lowercase())
}

/// Whether `name` is `zone` or below it (both lowercase, without trailing dots).
pub fn in_zone(name: &str, zone: &str) -> bool {
    name == zone
        || (name.len() > zone.len()
            && name.ends_with(zone)
            && name.as_bytes()[name.len() - zone.len() - 1] == b'.')
}

/// The parent of `name` (`b.c` for `a.b.c`), `None` for a single label.
pub(super) fn parent(name: &str) -> Option<&str> {
    name.split_once('.').map(|(_, rest)| rest)
}

/// The reverse name of `addr`: `10.0.22.172.in-addr.arpa`.
pub fn reverse_name(addr: Ipv4Addr) -> String {
    let [a, b, c, d] = addr.octets();
    format!("{d}.{c}.{b}.{a}.in-addr.arpa")
}

/// The leading octets a name under `in-addr.arpa` stands for (`22.172.in-addr.arpa` is
/// `[172, 22]`); `None` for a name outside it or with a label that is not an octet. The
/// apex `in-addr.arpa` itself is an empty list.
pub(super) fn reverse_octets(name: &str) -> Option<Vec<u8>> {
    let labels = name.strip_suffix("in-addr.arpa")?;
    if labels.is_empty() {
        return Some(Vec::new());
    }
    let labels = labels.strip_suffix('.')?;
    let mut octets = Vec::with_capacity(4);
    for label in labels.rsplit('.') {
        // "010" is not how anyone writes an octet in a reverse name; refuse it rather than
        // answer for an alias of a real address.
        if label.is_empty() || label.len() > 3 || (label.len() > 1 && label.starts_with('0')) {
            return None;
        }
        octets.push(label.parse::<u8>().ok()?);
        if octets.len() > 4 {
            return None;
        }
    }
    Some(octets)
}

/// The reverse name of an IPv6 address: its 32 nibbles, lowest first, under `ip6.arpa`.
pub fn reverse_name6(addr: Ipv6Addr) -> String {
    let mut name = String::with_capacity(72);
    for nibble in nibbles(addr).iter().rev() {
        name.push(char::from_digit(u32::from(*nibble), 16).expect("a nibble"));
        name.push('.');
    }
    name.push_str("ip6.arpa");
    name
}

/// The 32 nibbles of `addr`, highest first.
fn nibbles(addr: Ipv6Addr) -> [u8; 32] {
    let bits = u128::from(addr);
    std::array::from_fn(|i| ((bits >> (124 - 4 * i)) & 0xf) as u8)
}

/// The leading nibbles a name under `ip6.arpa` stands for (`2.2.0.0.0.0.d.f.ip6.arpa` is
/// `[0xf, 0xd, 0, 0, 0, 0, 2, 2]`); `None` for a name outside it or with a label that is not
/// one lowercase hex digit. The apex `ip6.arpa` itself is an empty list.
pub(super) fn reverse_nibbles(name: &str) -> Option<Vec<u8>> {
    let labels = name.strip_suffix("ip6.arpa")?;
    if labels.is_empty() {
        return Some(Vec::new());
    }
    let labels = labels.strip_suffix('.')?;
    let mut nibbles = Vec::with_capacity(32);
    for label in labels.rsplit('.') {
        let &[digit] = label.as_bytes() else {
            return None;
        };
        nibbles.push(char::from(digit).to_digit(16)? as u8);
        if nibbles.len() > 32 {
            return None;
        }
    }
    Some(nibbles)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_reverse_names_round_trip() {
        let addr: Ipv6Addr = "fd00:126::10".parse().unwrap();
        let name = reverse_name6(addr);
        assert_eq!(
            name,
            "0.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.6.2.1.0.0.0.d.f.ip6.arpa"
        );
        let n = reverse_nibbles(&name).unwrap();
        assert_eq!(n.len(), 32);
        let back = n.iter().fold(0u128, |a, &d| (a << 4) | u128::from(d));
        assert_eq!(Ipv6Addr::from(back), addr);
        assert_eq!(reverse_nibbles("ip6.arpa"), Some(vec![]));
        assert_eq!(
            reverse_nibbles("6.2.1.0.0.0.d.f.ip6.arpa").unwrap().len(),
            8
        );
        for bad in [
            "10.ip6.arpa",
            "g.ip6.arpa",
            ".ip6.arpa",
            "xip6.arpa",
            "0..ip6.arpa",
        ] {
            assert_eq!(reverse_nibbles(bad), None, "{bad}");
        }
        let too_long = format!("0.{name}");
        assert_eq!(reverse_nibbles(&too_long), None);
    }

    fn check(name: &str, expected: Result<&str, &str>) {
        let got = absolute(name, "ocp.example.com");
        match (got, expected) {
            (Ok(got), Ok(want)) => assert_eq!(got, want, "{name}"),
            (Err(Error::Name { reason, .. }), Err(want)) => {
                assert!(reason.contains(want), "{name}: {reason}")
            }
            (got, want) => panic!("{name}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn names_are_made_absolute_and_checked() {
        check("api", Ok("api.ocp.example.com"));
        check("API-Int", Ok("api-int.ocp.example.com"));
        check("*.apps", Ok("*.apps.ocp.example.com"));
        check(
            "_etcd-server-ssl._tcp",
            Ok("_etcd-server-ssl._tcp.ocp.example.com"),
        );
        check("@", Ok("ocp.example.com"));
        check("www.example.org.", Ok("www.example.org"));
        check("a..b", Err("empty label"));
        check(".", Err("root"));
        check("apps.*", Err("`*`"));
        check("-bad", Err("`-`"));
        check("sp ace", Err("character"));
        check("bad\\.dot", Err("character"));
        check(&"a".repeat(64), Err("63"));
        check(&"a.".repeat(130), Err("253"));
    }

    #[test]
    fn zones_and_reverse_names() {
        assert!(in_zone("api.ocp.example.com", "ocp.example.com"));
        assert!(in_zone("ocp.example.com", "ocp.example.com"));
        assert!(!in_zone("xocp.example.com", "ocp.example.com"));
        assert!(!in_zone("example.com", "ocp.example.com"));
        assert_eq!(
            reverse_name(Ipv4Addr::new(172, 22, 0, 10)),
            "10.0.22.172.in-addr.arpa"
        );
        assert_eq!(
            reverse_octets("10.0.22.172.in-addr.arpa"),
            Some(vec![172, 22, 0, 10])
        );
        assert_eq!(reverse_octets("22.172.in-addr.arpa"), Some(vec![172, 22]));
        assert_eq!(reverse_octets("in-addr.arpa"), Some(vec![]));
        assert_eq!(reverse_octets("010.0.22.172.in-addr.arpa"), None);
        assert_eq!(reverse_octets("1.10.0.22.172.in-addr.arpa"), None);
        assert_eq!(reverse_octets("x.22.172.in-addr.arpa"), None);
        assert_eq!(reverse_octets("xin-addr.arpa"), None);
        assert_eq!(parent("a.b.c"), Some("b.c"));
        assert_eq!(parent("c"), None);
    }
}
