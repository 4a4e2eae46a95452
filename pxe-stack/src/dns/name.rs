//! Domain names as the zone keeps them: lowercase, absolute, without the trailing dot.

use std::net::Ipv4Addr;

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

#[cfg(test)]
mod tests {
    use super::*;

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
