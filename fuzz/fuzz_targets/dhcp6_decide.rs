//! The DHCPv6 server's decode + decide path sees every datagram on the provisioning network.
//!
//! Run with `cargo +nightly fuzz run dhcp6_decide` (libFuzzer) or `scripts/fuzz.sh dhcp6_decide`
//! (AFL++, stable). Each input is split into datagrams (a
//! two-byte length prefix each) fed in order to one lease table, so sequences such as
//! Solicit, Request, Decline on shared state get explored, not only single packets. The
//! source address alternates between an EUI-64 link-local (a MAC from the address) and one
//! without (a MAC from the DUID or a relay's option 79, or none).
#![cfg_attr(not(feature = "afl"), no_main)]

use std::net::SocketAddrV6;
use std::time::{Duration, SystemTime};

use pxe_stack::dhcp6::{
    BootFiles6, Config, LeaseTable6, Mode, Policy, Range6, Request, Reservation6, Subnet6, respond,
    unix_secs,
};
use rhcos_metal_fuzz::fuzz_target;

fn policy(mode: Mode, rapid_commit: bool, duid_first: bool) -> Policy {
    let mut local = Subnet6::new("fd00:77::".parse().unwrap(), 64);
    local.pool = Some(Range6 {
        start: "fd00:77::100".parse().unwrap(),
        end: "fd00:77::10a".parse().unwrap(),
    });
    let mut relayed = Subnet6::new("fd00:78::".parse().unwrap(), 64);
    relayed.pool = Some(Range6 {
        start: "fd00:78::10".parse().unwrap(),
        end: "fd00:78::12".parse().unwrap(),
    });
    Policy::new(Config {
        mode,
        server_addr: "fd00:77::1".parse().unwrap(),
        server_duid: Some(vec![0, 4, 1, 2, 3, 4]),
        subnets: vec![local, relayed],
        reservations: vec![Reservation6 {
            mac: "52:54:00:77:00:09".parse().unwrap(),
            addr: "fd00:77::9".parse().unwrap(),
            hostname: None,
        }],
        dns: vec!["fd00:77::53".parse().unwrap()],
        domain_search: vec!["ocp.example.com".into()],
        lease_secs: 600,
        rapid_commit,
        boot: BootFiles6 {
            efi_x64: Some("ipxe.efi".into()),
            efi_arm64: Some("ipxe-arm64.efi".into()),
            http_boot_url: Some("http://[fd00:77::1]/ipxe.efi".into()),
            ipxe_script_url: Some("http://[fd00:77::1]/ipxe?mac={mac}".into()),
            hosts: Vec::new(),
        },
        duid_first,
    })
    .expect("a valid policy")
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, mut rest)) = data.split_first() else {
        return;
    };
    let mode = match selector % 3 {
        0 => Mode::Authoritative,
        1 => Mode::ReservationsOnly,
        _ => Mode::Off,
    };
    let policy = policy(mode, selector & 4 != 0, selector & 8 != 0);
    let mut leases = LeaseTable6::new();
    let eui64: SocketAddrV6 = "[fe80::5054:ff:fe77:9]:546".parse().unwrap();
    let plain: SocketAddrV6 = "[fe80::1]:546".parse().unwrap();
    let mut now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    while rest.len() >= 2 {
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
        let take = len.min(rest.len() - 2);
        let datagram = &rest[2..2 + take];
        rest = &rest[2 + take..];
        let src = if len % 2 == 0 { eui64 } else { plain };
        if let Ok(req) = Request::decode(datagram, src) {
            let out = respond(&policy, &mut leases, &req, now);
            if let Some(reply) = out.reply {
                let _ = reply.encode().expect("every reply respond builds encodes");
            }
        }
        now += Duration::from_secs(u64::from(selector));
        leases.expire(unix_secs(now));
    }
});
