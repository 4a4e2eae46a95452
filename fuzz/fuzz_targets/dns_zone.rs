//! The DNS zone is built from the plan's `[dns] records` (names, types and values written by
//! hand) and then answers names that arrive from the network: both are input this crate does
//! not control.
//!
//! Run with `cargo +nightly fuzz run dns_zone` (libFuzzer) or `scripts/fuzz.sh dns_zone` (AFL++,
//! stable). The input is read as lines of
//! `name type value`; every line becomes an entry (when its value parses), the zone is built,
//! and every name in the input is then asked as a query, in every query type, from inside and
//! outside the served subnet.
#![cfg_attr(not(feature = "afl"), no_main)]

use std::net::{IpAddr, Ipv4Addr};

use pxe_stack::NoLookup;
use pxe_stack::dns::{Config, Decision, Entry, Qtype, Rcode, Value, Zone, absolute};
use rhcos_metal_fuzz::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut entries = Vec::new();
    let mut names = Vec::new();
    for line in text.lines().take(64) {
        let mut fields = line.splitn(3, ' ');
        let (Some(name), Some(kind), Some(value)) = (fields.next(), fields.next(), fields.next())
        else {
            names.push(line.to_owned());
            continue;
        };
        // A name that is accepted is lowercase, inside 253 bytes, and accepted again as is.
        if let Ok(abs) = absolute(name, "ocp.example.com") {
            assert!(abs.len() <= 253 && !abs.bytes().any(|b| b.is_ascii_uppercase()));
            assert_eq!(absolute(&format!("{abs}."), "").ok(), Some(abs));
        }
        names.push(name.to_owned());
        if let Ok(v) = Value::parse(kind, value) {
            entries.push(Entry::new(name, v));
        }
    }
    let Ok(zone) = Zone::new(&Config {
        origin: "ocp.example.com".into(),
        subnets: vec![(Ipv4Addr::new(172, 22, 0, 0), 24)],
        subnets6: vec![("fd00:126::".parse().unwrap(), 64)],
        entries,
        upstream: vec!["192.0.2.53:53".parse().unwrap()],
        ..Config::default()
    }) else {
        return;
    };
    let inside = IpAddr::from([172, 22, 0, 9]);
    let outside = IpAddr::from([10, 0, 0, 9]);
    let inside6: IpAddr = "fd00:126::9".parse().unwrap();
    let outside6: IpAddr = "2001:db8::9".parse().unwrap();
    for name in &names {
        for code in [1u16, 2, 5, 6, 12, 16, 28, 33, 255, 99] {
            for client in [inside, outside, inside6, outside6] {
                match zone.answer(name, Qtype::from(code), client, &NoLookup) {
                    Decision::Answer { rcode, records, soa } => {
                        // A negative answer carries the SOA; a positive one does not.
                        assert_eq!(soa.is_some(), records.is_empty());
                        assert!(rcode == Rcode::NoError || records.is_empty());
                    }
                    // Never an open resolver.
                    Decision::Forward => assert!(client == inside || client == inside6),
                    Decision::Refuse => {}
                }
            }
        }
    }
});
