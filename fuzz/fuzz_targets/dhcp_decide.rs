//! The DHCP server's decode + decide path sees every datagram on the provisioning network.
//!
//! Run with `cargo +nightly fuzz run dhcp_decide` (libFuzzer) or `scripts/fuzz.sh dhcp_decide`
//! (AFL++, stable). Each input is split into datagrams (a two-byte length prefix each) fed in order
//! to one lease table, so sequences such as DISCOVER, REQUEST, DECLINE on shared state get
//! explored, not only single packets.
#![cfg_attr(not(feature = "afl"), no_main)]

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, SystemTime};

use pxe_stack::dhcp::{
    BootFiles, Config, LeaseTable, Mode, Policy, Range, Request, Subnet, respond,
};
use rhcos_metal_fuzz::fuzz_target;

fn policy(mode: Mode) -> Policy {
    let mut subnet = Subnet::new(Ipv4Addr::new(10, 0, 0, 0), 24);
    subnet.pool = Some(Range {
        start: Ipv4Addr::new(10, 0, 0, 100),
        end: Ipv4Addr::new(10, 0, 0, 110),
    });
    let mut relayed = Subnet::new(Ipv4Addr::new(10, 1, 0, 0), 24);
    relayed.pool = subnet.pool.map(|_| Range {
        start: Ipv4Addr::new(10, 1, 0, 10),
        end: Ipv4Addr::new(10, 1, 0, 12),
    });
    Policy::new(Config {
        mode,
        server_ip: Ipv4Addr::new(10, 0, 0, 1),
        subnets: vec![subnet, relayed],
        boot: BootFiles {
            ipxe_script_url: Some("http://10.0.0.1/ipxe?mac={mac}".into()),
            http_boot_url: Some("http://10.0.0.1/snponly.efi".into()),
            ..BootFiles::default()
        },
        ..Config::default()
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
        _ => Mode::Proxy,
    };
    let policy = policy(mode);
    let mut leases = LeaseTable::new();
    let src = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 50), 68);
    let mut now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    while rest.len() >= 2 {
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
        let take = len.min(rest.len() - 2);
        let datagram = &rest[2..2 + take];
        rest = &rest[2 + take..];
        let port = if len % 2 == 0 { 67 } else { 4011 };
        if let Ok(req) = Request::decode(datagram, src, port) {
            let out = respond(&policy, &mut leases, &req, now);
            if let Some(reply) = out.reply {
                let _ = reply.encode();
            }
        }
        now += Duration::from_secs(u64::from(selector));
        leases.expire(pxe_stack::dhcp::unix_secs(now));
    }
});
