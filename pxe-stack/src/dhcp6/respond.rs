//! The decision: a request, the lease table and the time in; a [`Verdict6`] out.

use std::net::{IpAddr, Ipv6Addr, SocketAddrV6};
use std::time::SystemTime;

use dhcproto::v6::{
    DhcpOption, IAAddr, IANA, Message, MessageType, OptionCode, Status, StatusCode,
};

use super::config::{Mode, Policy};
use super::leases::{Lease6, LeaseTable6, State6, unix_secs};
use super::packet::{Reply6, Request, bootfile_url, vendor_class};
use crate::{DhcpStep, Event, EventKind, Mac};

/// How long an advertised address is held for the client that was offered it.
const OFFER_SECS: u64 = 60;

/// What [`respond`] decided.
#[derive(Debug, Clone, Default)]
pub struct Verdict6 {
    /// The answer, if any.
    pub reply: Option<Reply6>,
    /// What happened, per host.
    pub events: Vec<Event>,
    /// Whether the lease table must be on disk before the reply leaves.
    pub persist: bool,
}

/// The client architectures (option 61) this server boots: x86-64 UEFI PXE (7, 9), ARM64
/// UEFI PXE (11), and UEFI HTTP boot (16 x86-64, 19 ARM64).
fn boot_file(policy: &Policy, req: &Request, mac: Mac) -> Option<String> {
    let opts = req.message.opts();
    let boot = &policy.config().boot;
    let ipxe = matches!(opts.get(OptionCode::UserClass),
        Some(DhcpOption::UserClass(u)) if u.data.iter().any(|c| c == b"iPXE"));
    if ipxe {
        return boot
            .ipxe_script_url
            .as_ref()
            .map(|u| u.replace("{mac}", &mac.hexhyp()));
    }
    let archs: Vec<u16> = match opts.get(OptionCode::ClientArchType) {
        Some(DhcpOption::ClientArchType(a)) => a.iter().map(|a| a.0).collect(),
        _ => Vec::new(),
    };
    let host = boot.hosts.iter().find(|h| h.mac == mac);
    if http_client(req) || archs.iter().any(|a| matches!(a, 16 | 19)) {
        return host
            .and_then(|h| h.http_boot_url.clone())
            .or_else(|| boot.http_boot_url.clone());
    }
    let server = policy.config().server_addr;
    let tftp = |path: &Option<String>| {
        path.as_ref()
            .map(|p| format!("tftp://[{server}]/{}", p.trim_start_matches('/')))
    };
    match archs.first()? {
        7 | 9 => tftp(
            host.and_then(|h| h.efi_x64.as_ref().map(|_| &h.efi_x64))
                .unwrap_or(&boot.efi_x64),
        ),
        11 => tftp(&boot.efi_arm64),
        _ => None,
    }
}

fn http_client(req: &Request) -> bool {
    matches!(req.message.opts().get(OptionCode::VendorClass),
        Some(DhcpOption::VendorClass(v)) if v.data.iter().any(|c| c.starts_with(b"HTTPClient")))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn name(kind: MessageType) -> &'static str {
    match kind {
        MessageType::Solicit => "SOLICIT",
        MessageType::Request => "REQUEST",
        MessageType::Confirm => "CONFIRM",
        MessageType::Renew => "RENEW",
        MessageType::Rebind => "REBIND",
        MessageType::Release => "RELEASE",
        MessageType::Decline => "DECLINE",
        MessageType::InformationRequest => "INFORMATION-REQUEST",
        MessageType::Advertise => "ADVERTISE",
        _ => "REPLY",
    }
}

/// Decides what to answer to `req`, changing `leases` as the answer promises.
///
/// Clients are identified by MAC (see [`Request::mac`], or [`Request::mac_duid_first`] with
/// [`Config::duid_first`](super::Config::duid_first)); one without a MAC is not answered.
/// A host gets, in order: its reservation, the address it already holds (bound, offered or
/// released, whatever DUID it used then), the next free pool address of its link.
/// Solicit gets an Advertise (the address held for a minute), or with Rapid Commit
/// (when [`Config::rapid_commit`](super::Config::rapid_commit)) a Reply that binds it;
/// Request, Renew and Rebind bind it (an address the client asks for that is not its own
/// comes back with lifetimes 0); Release and Decline give up or quarantine the addresses the
/// host holds; Confirm says whether the client's addresses are on its link;
/// Information-request gets the configuration without an address.
pub fn respond(
    policy: &Policy,
    leases: &mut LeaseTable6,
    req: &Request,
    now: SystemTime,
) -> Verdict6 {
    let mut out = Verdict6::default();
    let config = policy.config();
    if config.mode == Mode::Off {
        return out;
    }
    let kind = req.kind();
    let found = if config.duid_first {
        req.mac_duid_first()
    } else {
        req.mac
    };
    let Some((mac, source)) = found else {
        tracing::debug!(src = %req.src, kind = name(kind), "no MAC in option 79, link-local or DUID; not answered");
        return out;
    };
    let client_id = req.client_id();
    let duid = client_id.map(hex).unwrap_or_default();
    let via = match req.relays.first() {
        Some(_) => format!(" via {}", req.src.ip()),
        None => String::new(),
    };
    tracing::info!("DHCP{}{via} {mac} ({source}) duid {duid}", name(kind));
    // Server-id rules (RFC 8415 16): Solicit, Confirm and Rebind carry none; Request, Renew,
    // Release and Decline carry ours; Information-request may carry ours.
    let server_id_ok = match (kind, req.server_id()) {
        (MessageType::Solicit | MessageType::Confirm | MessageType::Rebind, Some(_)) => false,
        (
            MessageType::Request | MessageType::Renew | MessageType::Release | MessageType::Decline,
            None,
        ) => false,
        (_, Some(id)) => id == policy.duid(),
        (_, None) => true,
    };
    let needs_client = kind != MessageType::InformationRequest;
    if !server_id_ok || (needs_client && client_id.is_none()) {
        tracing::debug!(%mac, kind = name(kind), "server or client id does not fit; not answered");
        return out;
    }
    let Some((subnet_idx, subnet)) = policy.subnet_for(req.link()) else {
        tracing::debug!(%mac, link = ?req.link(), "no subnet for this link; not answered");
        return out;
    };
    let now_s = unix_secs(now);
    let reservation = policy.reservation(mac);
    if config.mode == Mode::ReservationsOnly && reservation.is_none() {
        return out;
    }
    let step = match kind {
        MessageType::Solicit => DhcpStep::Discover,
        MessageType::Release => DhcpStep::Release,
        MessageType::Decline => DhcpStep::Decline,
        MessageType::InformationRequest => DhcpStep::Inform,
        _ => DhcpStep::Request,
    };
    out.events.push(event(mac, None, step, None, now));

    let mut reply = Message::new_with_id(MessageType::Reply, req.message.xid());
    reply
        .opts_mut()
        .insert(DhcpOption::ServerId(policy.duid().to_vec()));
    if let Some(id) = client_id {
        reply.opts_mut().insert(DhcpOption::ClientId(id.to_vec()));
    }
    let boot = boot_file(policy, req, mac);
    let ias: Vec<&IANA> = req
        .message
        .opts()
        .iter()
        .filter_map(|o| match o {
            DhcpOption::IANA(ia) => Some(ia),
            _ => None,
        })
        .collect();
    let requested = |ia: &IANA| -> Vec<Ipv6Addr> {
        ia.opts
            .iter()
            .filter_map(|o| match o {
                DhcpOption::IAAddr(a) => Some(a.addr),
                _ => None,
            })
            .collect()
    };
    let mut given = None;
    let mut reply_step = DhcpStep::Ack;
    match kind {
        MessageType::Solicit | MessageType::Request | MessageType::Renew | MessageType::Rebind => {
            let rapid = kind == MessageType::Solicit
                && config.rapid_commit
                && req.message.opts().get(OptionCode::RapidCommit).is_some();
            let commit = kind != MessageType::Solicit || rapid;
            if kind == MessageType::Solicit && !rapid {
                reply.set_msg_type(MessageType::Advertise);
                reply_step = DhcpStep::Offer;
            }
            if rapid {
                reply.opts_mut().insert(DhcpOption::RapidCommit);
            }
            let addr = choose(policy, leases, subnet_idx, mac, now_s);
            let valid = config.lease_secs;
            for (i, ia) in ias.iter().enumerate() {
                let mut opts = dhcproto::v6::DhcpOptions::new();
                // One address per host: the first IA_NA gets it, the others none.
                let mine = if i == 0 { addr } else { None };
                match mine {
                    Some(a) => opts.insert(DhcpOption::IAAddr(IAAddr {
                        addr: a,
                        preferred_life: valid,
                        valid_life: valid,
                        opts: Default::default(),
                    })),
                    None if kind == MessageType::Solicit || kind == MessageType::Request => {
                        opts.insert(status(Status::NoAddrsAvail, "no address for this host"))
                    }
                    None => {}
                }
                for old in requested(ia) {
                    if Some(old) != mine {
                        opts.insert(DhcpOption::IAAddr(IAAddr {
                            addr: old,
                            preferred_life: 0,
                            valid_life: 0,
                            opts: Default::default(),
                        }));
                    }
                }
                let (t1, t2) = if mine.is_some() {
                    (
                        valid / 2,
                        u32::try_from(u64::from(valid) * 4 / 5).unwrap_or(valid),
                    )
                } else {
                    (0, 0)
                };
                reply.opts_mut().insert(DhcpOption::IANA(IANA {
                    id: ia.id,
                    t1,
                    t2,
                    opts,
                }));
                if let Some(a) = mine {
                    let (state, expires) = if commit {
                        (State6::Bound, now_s + u64::from(valid))
                    } else {
                        (State6::Offered, now_s + OFFER_SECS)
                    };
                    leases.insert(Lease6 {
                        addr: a,
                        mac,
                        duid: duid.clone(),
                        iaid: ia.id,
                        expires,
                        state,
                    });
                    out.persist |= commit;
                    given = Some(a);
                }
            }
            if ias.is_empty() && kind == MessageType::Solicit {
                reply
                    .opts_mut()
                    .insert(status(Status::NoAddrsAvail, "no IA_NA asked for"));
            }
        }
        MessageType::Release | MessageType::Decline => {
            for ia in &ias {
                for a in requested(ia) {
                    let Some(l) = leases.get(a).filter(|l| l.mac == mac).cloned() else {
                        continue;
                    };
                    let state = if kind == MessageType::Release {
                        State6::Released
                    } else {
                        tracing::info!("DHCPDECLINE {a} {mac}: quarantined");
                        State6::Declined
                    };
                    leases.insert(Lease6 {
                        state,
                        expires: if state == State6::Declined {
                            now_s + u64::from(config.lease_secs)
                        } else {
                            l.expires
                        },
                        ..l
                    });
                    out.persist = true;
                    given = Some(a);
                }
            }
            reply.opts_mut().insert(status(Status::Success, "done"));
        }
        MessageType::Confirm => {
            let all: Vec<Ipv6Addr> = ias.iter().flat_map(|ia| requested(ia)).collect();
            if all.is_empty() {
                return out;
            }
            if all.iter().all(|a| subnet.contains(*a)) {
                reply.opts_mut().insert(status(Status::Success, "on link"));
            } else {
                reply
                    .opts_mut()
                    .insert(status(Status::NotOnLink, "not on this link"));
            }
        }
        MessageType::InformationRequest => {}
        _ => return Verdict6::default(),
    }
    if !config.dns.is_empty() {
        reply
            .opts_mut()
            .insert(DhcpOption::DomainNameServers(config.dns.clone()));
    }
    if !policy.search().is_empty() {
        reply
            .opts_mut()
            .insert(DhcpOption::DomainSearchList(policy.search().to_vec()));
    }
    let sends_boot = !matches!(kind, MessageType::Release | MessageType::Decline);
    if sends_boot && let Some(url) = &boot {
        reply.opts_mut().insert(bootfile_url(url));
        if http_client(req)
            && let Some(DhcpOption::VendorClass(v)) =
                req.message.opts().get(OptionCode::VendorClass)
            && let Some(echo) = vendor_class(v.num, &v.data)
        {
            // UEFI HTTP boot ignores an offer without `HTTPClient` echoed.
            reply.opts_mut().insert(echo);
        }
    }
    let what = match given {
        Some(a) if reply_step == DhcpStep::Offer || commit_kind(kind) => a.to_string(),
        _ => String::new(),
    };
    tracing::info!(
        "DHCP{}{via} {what} {mac}{}",
        name(reply.msg_type()),
        boot.as_deref()
            .filter(|_| sends_boot)
            .map(|b| format!(" boot {b}"))
            .unwrap_or_default()
    );
    if matches!(kind, MessageType::Release | MessageType::Decline) {
        reply_step = DhcpStep::Ack;
    }
    out.events.push(event(
        mac,
        given.filter(|_| commit_kind(kind) || reply_step == DhcpStep::Offer),
        reply_step,
        boot.filter(|_| sends_boot),
        now,
    ));
    let to = match req.relays.first() {
        Some(_) => req.src,
        None => SocketAddrV6::new(*req.src.ip(), req.src.port(), 0, req.src.scope_id()),
    };
    out.reply = Some(Reply6 {
        message: reply,
        relays: req.relays.clone(),
        to,
    });
    out
}

fn commit_kind(kind: MessageType) -> bool {
    matches!(
        kind,
        MessageType::Solicit | MessageType::Request | MessageType::Renew | MessageType::Rebind
    )
}

fn status(status: Status, msg: &str) -> DhcpOption {
    DhcpOption::StatusCode(StatusCode {
        status,
        msg: msg.into(),
    })
}

fn event(
    mac: Mac,
    addr: Option<Ipv6Addr>,
    step: DhcpStep,
    boot_file: Option<String>,
    at: SystemTime,
) -> Event {
    Event {
        at,
        mac: Some(mac),
        addr: addr.map(IpAddr::V6),
        kind: EventKind::Dhcp {
            step,
            yiaddr: None,
            boot_file,
        },
    }
}

/// The address for `mac` on subnet `idx`: its reservation, what it holds, or the next free
/// pool address (not reserved for another host).
fn choose(
    policy: &Policy,
    leases: &mut LeaseTable6,
    idx: usize,
    mac: Mac,
    now: u64,
) -> Option<Ipv6Addr> {
    let subnet = &policy.config().subnets[idx];
    if let Some(r) = policy.reservation(mac) {
        return (subnet.contains(r.addr) && leases.free_for(r.addr, mac, now)).then_some(r.addr);
    }
    if let Some(l) = leases.for_mac(mac)
        && subnet.contains(l.addr)
        && policy.reserved(l.addr).is_none()
        && leases.free_for(l.addr, mac, now)
    {
        return Some(l.addr);
    }
    let pool = subnet.pool?;
    let (start, end) = (u128::from(pool.start), u128::from(pool.end));
    let size = end - start + 1;
    let cursor = if leases.hashed_start {
        u128::from(crate::store::client_hash(&mac.0)) % size
    } else {
        leases.cursors.get(&idx).copied().unwrap_or(0) % size
    };
    for i in 0..size {
        let off = (cursor + i) % size;
        let a = Ipv6Addr::from(start + off);
        if policy.reserved(a).is_none() && leases.free_for(a, mac, now) {
            leases.cursors.insert(idx, off + 1);
            return Some(a);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dhcp6::config::{BootFiles6, Config, HostBootFiles6, Range6, Reservation6, Subnet6};
    use crate::dhcp6::packet::user_class;
    use dhcproto::v6::{Architecture, VendorClass};
    use dhcproto::{Decodable, Decoder, Encodable, Encoder};

    const MAC1: Mac = Mac([0x52, 0x54, 0, 0x77, 0, 1]);
    const RESERVED: Mac = Mac([0x52, 0x54, 0, 0x77, 0, 9]);

    fn policy(rapid: bool) -> Policy {
        let mut local = Subnet6::new("fd00:77::".parse().unwrap(), 64);
        local.pool = Some(Range6 {
            start: "fd00:77::100".parse().unwrap(),
            end: "fd00:77::101".parse().unwrap(),
        });
        let mut relayed = Subnet6::new("fd00:78::".parse().unwrap(), 64);
        relayed.pool = Some(Range6 {
            start: "fd00:78::100".parse().unwrap(),
            end: "fd00:78::1ff".parse().unwrap(),
        });
        Policy::new(Config {
            server_addr: "fd00:77::1".parse().unwrap(),
            subnets: vec![local, relayed],
            reservations: vec![Reservation6 {
                mac: RESERVED,
                addr: "fd00:77::9".parse().unwrap(),
                hostname: Some("master-0".into()),
            }],
            dns: vec!["fd00:77::53".parse().unwrap()],
            domain_search: vec!["ocp.example.com".into()],
            lease_secs: 600,
            rapid_commit: rapid,
            boot: BootFiles6 {
                efi_x64: Some("ipxe.efi".into()),
                efi_arm64: Some("ipxe-arm64.efi".into()),
                http_boot_url: Some("http://[fd00:77::1]/ipxe.efi".into()),
                ipxe_script_url: Some("http://[fd00:77::1]/ipxe/{mac}".into()),
                hosts: Vec::new(),
            },
            ..Config::default()
        })
        .unwrap()
    }

    fn duid_ll(mac: Mac) -> Vec<u8> {
        let mut d = vec![0, 3, 0, 1];
        d.extend(mac.0);
        d
    }

    fn duid_llt(mac: Mac) -> Vec<u8> {
        let mut d = vec![0, 1, 0, 1, 0x2e, 0, 0, 1];
        d.extend(mac.0);
        d
    }

    fn msg(
        kind: MessageType,
        duid: &[u8],
        server: Option<&[u8]>,
        addr: Option<Ipv6Addr>,
    ) -> Message {
        let mut m = Message::new_with_id(kind, [7, 7, 7]);
        m.opts_mut().insert(DhcpOption::ClientId(duid.to_vec()));
        if let Some(s) = server {
            m.opts_mut().insert(DhcpOption::ServerId(s.to_vec()));
        }
        let mut ia = IANA {
            id: 1,
            t1: 0,
            t2: 0,
            opts: Default::default(),
        };
        if let Some(a) = addr {
            ia.opts.insert(DhcpOption::IAAddr(IAAddr {
                addr: a,
                preferred_life: 0,
                valid_life: 0,
                opts: Default::default(),
            }));
        }
        m.opts_mut().insert(DhcpOption::IANA(ia));
        m
    }

    /// Encodes `m`, decodes it as the server would (from `src`, optionally relayed).
    fn request(m: &Message, src: &str) -> Request {
        let mut b = Vec::new();
        m.encode(&mut Encoder::new(&mut b)).unwrap();
        Request::decode(&b, format!("[{src}]:546").parse().unwrap()).unwrap()
    }

    fn src(mac: Mac) -> String {
        let m = mac.0;
        format!(
            "fe80::{:02x}{:02x}:{:02x}ff:fe{:02x}:{:02x}{:02x}",
            m[0] ^ 2,
            m[1],
            m[2],
            m[3],
            m[4],
            m[5]
        )
    }

    fn decode_reply(v: &Verdict6) -> Message {
        let bytes = v.reply.as_ref().expect("a reply").encode().unwrap();
        Message::decode(&mut Decoder::new(&bytes)).unwrap()
    }

    fn ia_addrs(m: &Message) -> Vec<(Ipv6Addr, u32)> {
        m.opts()
            .iter()
            .filter_map(|o| match o {
                DhcpOption::IANA(ia) => Some(ia),
                _ => None,
            })
            .flat_map(|ia| ia.opts.iter())
            .filter_map(|o| match o {
                DhcpOption::IAAddr(a) => Some((a.addr, a.valid_life)),
                _ => None,
            })
            .collect()
    }

    fn url(m: &Message) -> Option<String> {
        match m.opts().get(OptionCode::OptBootfileUrl) {
            Some(DhcpOption::Unknown(u)) => Some(String::from_utf8(u.data().to_vec()).unwrap()),
            _ => None,
        }
    }

    fn t(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000 + secs)
    }

    #[test]
    fn solicit_request_renew_rebind_release_decline() {
        let p = policy(false);
        let sid = p.duid().to_vec();
        let mut leases = LeaseTable6::new();
        let duid = duid_llt(MAC1);
        let s = src(MAC1);
        // Solicit: an Advertise, held, not persisted.
        let v = respond(
            &p,
            &mut leases,
            &request(&msg(MessageType::Solicit, &duid, None, None), &s),
            t(0),
        );
        let adv = decode_reply(&v);
        assert_eq!(adv.msg_type(), MessageType::Advertise);
        assert_eq!(adv.xid(), [7, 7, 7]);
        let a = ia_addrs(&adv)[0].0;
        assert_eq!(a, "fd00:77::100".parse::<Ipv6Addr>().unwrap());
        assert!(!v.persist);
        assert_eq!(leases.get(a).unwrap().state, State6::Offered);
        assert!(
            matches!(adv.opts().get(OptionCode::DomainNameServers), Some(DhcpOption::DomainNameServers(d)) if d.len() == 1)
                && matches!(adv.opts().get(OptionCode::DomainSearchList), Some(DhcpOption::DomainSearchList(d)) if d.len() == 1 && d[0].to_utf8() == "ocp.example.com.")
        );
        // A Solicit carrying a server id is not answered.
        let bad = msg(MessageType::Solicit, &duid, Some(&sid), None);
        assert!(
            respond(&p, &mut leases, &request(&bad, &s), t(0))
                .reply
                .is_none()
        );
        // Request without our server id: silence; with it: a Reply that binds, persisted.
        let req = msg(MessageType::Request, &duid, None, Some(a));
        assert!(
            respond(&p, &mut leases, &request(&req, &s), t(1))
                .reply
                .is_none()
        );
        let req = msg(MessageType::Request, &duid, Some(&[0, 4, 1, 2, 3]), Some(a));
        assert!(
            respond(&p, &mut leases, &request(&req, &s), t(1))
                .reply
                .is_none()
        );
        let req = msg(MessageType::Request, &duid, Some(&sid), Some(a));
        let v = respond(&p, &mut leases, &request(&req, &s), t(1));
        let reply = decode_reply(&v);
        assert_eq!(reply.msg_type(), MessageType::Reply);
        assert_eq!(ia_addrs(&reply), vec![(a, 600)]);
        assert!(v.persist);
        assert_eq!(leases.get(a).unwrap().state, State6::Bound);
        assert_eq!(leases.get(a).unwrap().expires, 1_800_000_601);
        let events: Vec<_> = v.events.iter().map(|e| (&e.kind, e.addr)).collect();
        assert!(
            matches!(events[1], (EventKind::Dhcp { step: DhcpStep::Ack, .. }, Some(IpAddr::V6(x))) if x == a)
        );
        // Renew extends; Rebind (no server id) too.
        let v = respond(
            &p,
            &mut leases,
            &request(&msg(MessageType::Renew, &duid, Some(&sid), Some(a)), &s),
            t(300),
        );
        assert_eq!(ia_addrs(&decode_reply(&v)), vec![(a, 600)]);
        assert_eq!(leases.get(a).unwrap().expires, 1_800_000_900);
        let v = respond(
            &p,
            &mut leases,
            &request(&msg(MessageType::Rebind, &duid, None, Some(a)), &s),
            t(480),
        );
        assert_eq!(ia_addrs(&decode_reply(&v)), vec![(a, 600)]);
        // Rebind for an address that is not the host's: it comes back with lifetime 0.
        let foreign: Ipv6Addr = "fd00:77::dead".parse().unwrap();
        let v = respond(
            &p,
            &mut leases,
            &request(&msg(MessageType::Rebind, &duid, None, Some(foreign)), &s),
            t(481),
        );
        let mut got = ia_addrs(&decode_reply(&v));
        got.sort();
        assert_eq!(got, vec![(a, 600), (foreign, 0)]);
        // Release: Success, kept as released (affinity), persisted.
        let v = respond(
            &p,
            &mut leases,
            &request(&msg(MessageType::Release, &duid, Some(&sid), Some(a)), &s),
            t(500),
        );
        let reply = decode_reply(&v);
        assert!(
            matches!(reply.opts().get(OptionCode::StatusCode), Some(DhcpOption::StatusCode(c)) if c.status == Status::Success)
        );
        assert!(v.persist);
        assert_eq!(leases.get(a).unwrap().state, State6::Released);
        // The same host comes back with another DUID: the same address.
        let v = respond(
            &p,
            &mut leases,
            &request(&msg(MessageType::Solicit, &duid_ll(MAC1), None, None), &s),
            t(501),
        );
        assert_eq!(ia_addrs(&decode_reply(&v))[0].0, a);
        // Decline: quarantined, the next Solicit gets another address.
        let v = respond(
            &p,
            &mut leases,
            &request(&msg(MessageType::Decline, &duid, Some(&sid), Some(a)), &s),
            t(502),
        );
        assert!(v.persist && v.reply.is_some());
        assert_eq!(leases.get(a).unwrap().state, State6::Declined);
        let v = respond(
            &p,
            &mut leases,
            &request(&msg(MessageType::Solicit, &duid, None, None), &s),
            t(503),
        );
        assert_eq!(
            ia_addrs(&decode_reply(&v))[0].0,
            "fd00:77::101".parse::<Ipv6Addr>().unwrap()
        );
        // Another host: the pool (two addresses, one declined, one offered) is dry.
        let other = Mac([0x52, 0x54, 0, 0x77, 0, 2]);
        let v = respond(
            &p,
            &mut leases,
            &request(
                &msg(MessageType::Solicit, &duid_ll(other), None, None),
                &src(other),
            ),
            t(504),
        );
        let adv = decode_reply(&v);
        assert!(ia_addrs(&adv).is_empty());
        let text = format!("{adv:?}");
        assert!(text.contains("NoAddrsAvail"), "{text}");
    }

    #[test]
    fn rapid_commit_confirm_and_information_request() {
        let mut leases = LeaseTable6::new();
        let duid = duid_ll(MAC1);
        let s = src(MAC1);
        let mut m = msg(MessageType::Solicit, &duid, None, None);
        m.opts_mut().insert(DhcpOption::RapidCommit);
        // Rapid commit off: an Advertise.
        let v = respond(&policy(false), &mut leases, &request(&m, &s), t(0));
        assert_eq!(decode_reply(&v).msg_type(), MessageType::Advertise);
        let p = policy(true);
        let v = respond(&p, &mut leases, &request(&m, &s), t(0));
        let reply = decode_reply(&v);
        assert_eq!(reply.msg_type(), MessageType::Reply);
        assert!(reply.opts().get(OptionCode::RapidCommit).is_some());
        assert!(v.persist);
        let a = ia_addrs(&reply)[0].0;
        assert_eq!(leases.get(a).unwrap().state, State6::Bound);
        // Confirm: on link / not on link / nothing to confirm.
        let c = respond(
            &p,
            &mut leases,
            &request(&msg(MessageType::Confirm, &duid, None, Some(a)), &s),
            t(1),
        );
        assert!(format!("{:?}", decode_reply(&c)).contains("Success"));
        let c = respond(
            &p,
            &mut leases,
            &request(
                &msg(
                    MessageType::Confirm,
                    &duid,
                    None,
                    Some("fd99::1".parse().unwrap()),
                ),
                &s,
            ),
            t(1),
        );
        assert!(format!("{:?}", decode_reply(&c)).contains("NotOnLink"));
        assert!(
            respond(
                &p,
                &mut leases,
                &request(&msg(MessageType::Confirm, &duid, None, None), &s),
                t(1)
            )
            .reply
            .is_none()
        );
        // Information-request: configuration, no address, no binding.
        let mut info = Message::new_with_id(MessageType::InformationRequest, [1, 1, 1]);
        info.opts_mut().insert(DhcpOption::ClientId(duid.clone()));
        let v = respond(&p, &mut leases, &request(&info, &s), t(2));
        let reply = decode_reply(&v);
        assert_eq!(reply.msg_type(), MessageType::Reply);
        assert!(ia_addrs(&reply).is_empty());
        assert!(reply.opts().get(OptionCode::DomainNameServers).is_some());
        assert!(!v.persist);
    }

    #[test]
    fn boot_file_by_architecture_and_class() {
        let p = policy(false);
        let s = src(MAC1);
        let boot = |extra: Vec<DhcpOption>| {
            let mut m = msg(MessageType::Solicit, &duid_ll(MAC1), None, None);
            for o in extra {
                m.opts_mut().insert(o);
            }
            let v = respond(&p, &mut LeaseTable6::new(), &request(&m, &s), t(0));
            let reply = decode_reply(&v);
            (
                url(&reply),
                reply.opts().get(OptionCode::VendorClass).cloned(),
            )
        };
        let arch = |a: u16| DhcpOption::ClientArchType(vec![Architecture(a)]);
        assert_eq!(
            boot(vec![arch(7)]).0.as_deref(),
            Some("tftp://[fd00:77::1]/ipxe.efi")
        );
        assert_eq!(
            boot(vec![arch(9)]).0.as_deref(),
            Some("tftp://[fd00:77::1]/ipxe.efi")
        );
        assert_eq!(
            boot(vec![arch(11)]).0.as_deref(),
            Some("tftp://[fd00:77::1]/ipxe-arm64.efi")
        );
        assert_eq!(boot(vec![arch(0)]).0, None);
        assert_eq!(boot(vec![]).0, None);
        let http_id = b"HTTPClient:Arch:00016:UNDI:003001".to_vec();
        let http = vendor_class(343, std::slice::from_ref(&http_id)).unwrap();
        let (u, vc) = boot(vec![arch(16), http]);
        assert_eq!(u.as_deref(), Some("http://[fd00:77::1]/ipxe.efi"));
        assert_eq!(
            vc,
            Some(DhcpOption::VendorClass(VendorClass {
                num: 343,
                data: vec![http_id]
            }))
        );
        let pxe = vendor_class(343, &[b"PXEClient:Arch:00007:UNDI:003001".to_vec()]).unwrap();
        let (u, vc) = boot(vec![arch(7), pxe]);
        assert_eq!(u.as_deref(), Some("tftp://[fd00:77::1]/ipxe.efi"));
        assert_eq!(vc, None);
        let ipxe = user_class(&[b"iPXE".to_vec()]).unwrap();
        assert_eq!(
            boot(vec![arch(7), ipxe]).0.as_deref(),
            Some("http://[fd00:77::1]/ipxe/52-54-00-77-00-01")
        );
    }

    /// A host with its own x86-64 UEFI files (a Secure Boot host: the signed shim) gets them
    /// over TFTP and HTTP boot; its iPXE and every other host keep the shared ones.
    #[test]
    fn per_host_boot_files_come_first() {
        let mut config = policy(false).config().clone();
        config.boot.hosts.push(HostBootFiles6 {
            mac: MAC1,
            efi_x64: Some("shimx64.efi".into()),
            http_boot_url: Some("http://[fd00:77::1]/shimx64.efi".into()),
        });
        let p = Policy::new(config).unwrap();
        let boot = |mac: Mac, extra: Vec<DhcpOption>| {
            let mut m = msg(MessageType::Solicit, &duid_ll(mac), None, None);
            for o in extra {
                m.opts_mut().insert(o);
            }
            let v = respond(&p, &mut LeaseTable6::new(), &request(&m, &src(mac)), t(0));
            url(&decode_reply(&v))
        };
        let arch = |a: u16| DhcpOption::ClientArchType(vec![Architecture(a)]);
        assert_eq!(
            boot(MAC1, vec![arch(7)]).as_deref(),
            Some("tftp://[fd00:77::1]/shimx64.efi")
        );
        assert_eq!(
            boot(MAC1, vec![arch(16)]).as_deref(),
            Some("http://[fd00:77::1]/shimx64.efi")
        );
        let ipxe = user_class(&[b"iPXE".to_vec()]).unwrap();
        assert_eq!(
            boot(MAC1, vec![arch(7), ipxe]).as_deref(),
            Some("http://[fd00:77::1]/ipxe/52-54-00-77-00-01")
        );
        assert_eq!(
            boot(RESERVED, vec![arch(7)]).as_deref(),
            Some("tftp://[fd00:77::1]/ipxe.efi")
        );
    }

    #[test]
    fn reservation_holds_across_duids_and_relays() {
        let p = policy(true);
        let mut leases = LeaseTable6::new();
        let want: Ipv6Addr = "fd00:77::9".parse().unwrap();
        let sid = p.duid().to_vec();
        // Firmware (DUID-LL), iPXE (DUID-LLT), the installer (DUID-UUID) from the host's EUI-64.
        for duid in [
            duid_ll(RESERVED),
            duid_llt(RESERVED),
            vec![0, 4, 1, 2, 3, 4],
        ] {
            let mut m = msg(MessageType::Solicit, &duid, None, None);
            m.opts_mut().insert(DhcpOption::RapidCommit);
            let v = respond(&p, &mut leases, &request(&m, &src(RESERVED)), t(0));
            assert_eq!(ia_addrs(&decode_reply(&v)), vec![(want, 600)]);
            assert_eq!(leases.for_mac(RESERVED).unwrap().duid, hex(&duid));
        }
        assert_eq!(leases.len(), 1);
        // A DUID-UUID from a non-EUI-64 address: no MAC, no answer.
        let m = msg(MessageType::Request, &[0, 4, 1, 2, 3, 4], Some(&sid), None);
        assert!(
            respond(&p, &mut leases, &request(&m, "fe80::1"), t(1))
                .reply
                .is_none()
        );

        // Relayed: the reservation MAC in option 79, the interface id echoed, the reply to the
        // relay, wrapped in a Relay-Reply.
        let mut inner = Vec::new();
        msg(MessageType::Solicit, &[0, 4, 9, 9], None, None)
            .encode(&mut Encoder::new(&mut inner))
            .unwrap();
        let mut relay = vec![12, 0];
        relay.extend("fd00:77::2".parse::<Ipv6Addr>().unwrap().octets());
        relay.extend("fe80::1".parse::<Ipv6Addr>().unwrap().octets());
        relay.extend([0, 18, 0, 4]);
        relay.extend(b"eth7");
        relay.extend([0, 79, 0, 8, 0, 1]);
        relay.extend(RESERVED.0);
        relay.extend([0, 9]);
        relay.extend((inner.len() as u16).to_be_bytes());
        relay.extend(&inner);
        let from: SocketAddrV6 = "[fd00:77::2]:547".parse().unwrap();
        let req = Request::decode(&relay, from).unwrap();
        let v = respond(&p, &mut leases, &req, t(2));
        let reply = v.reply.unwrap();
        assert_eq!(reply.to, from);
        let bytes = reply.encode().unwrap();
        assert_eq!(bytes[0], 13);
        assert_eq!(&bytes[2..34], &relay[2..34]);
        assert_eq!(&bytes[34..42], b"\0\x12\0\x04eth7");
        let inner = Message::decode(&mut Decoder::new(&bytes[46..])).unwrap();
        assert_eq!(inner.msg_type(), MessageType::Advertise);
        assert_eq!(ia_addrs(&inner), vec![(want, 600)]);

        // Relayed from another link: that link's pool.
        relay[2..18].copy_from_slice(&"fd00:78::1".parse::<Ipv6Addr>().unwrap().octets());
        let other = Mac([0x52, 0x54, 0, 0x78, 0, 1]);
        relay[48..54].copy_from_slice(&other.0);
        let v = respond(
            &p,
            &mut leases,
            &Request::decode(&relay, from).unwrap(),
            t(3),
        );
        let bytes = v.reply.unwrap().encode().unwrap();
        let inner = Message::decode(&mut Decoder::new(&bytes[46..])).unwrap();
        assert_eq!(
            ia_addrs(&inner)[0].0,
            "fd00:78::100".parse::<Ipv6Addr>().unwrap()
        );
        // Reservations only: the unreserved host gets nothing, the reserved one its address.
        let mut cfg = p.config().clone();
        cfg.mode = Mode::ReservationsOnly;
        let ro = Policy::new(cfg).unwrap();
        assert!(
            respond(
                &ro,
                &mut leases,
                &Request::decode(&relay, from).unwrap(),
                t(4)
            )
            .reply
            .is_none()
        );
        let mut cfg = p.config().clone();
        cfg.mode = Mode::Off;
        let off = Policy::new(cfg).unwrap();
        let m = msg(MessageType::Solicit, &duid_ll(RESERVED), None, None);
        assert!(
            respond(&off, &mut leases, &request(&m, &src(RESERVED)), t(4))
                .reply
                .is_none()
        );
    }

    #[test]
    fn duid_first_tells_clients_on_one_link_local_apart() {
        // Two simulated clients (perfdhcp -6) from one EUI-64 link-local, two DUID-LLTs.
        let a = Mac([0x52, 0x54, 0, 0x55, 0, 1]);
        let b = Mac([0x52, 0x54, 0, 0x55, 0, 2]);
        let s = src(MAC1);
        let mut cfg = policy(true).config().clone();
        for (duid_first, distinct) in [(false, 1), (true, 2)] {
            cfg.duid_first = duid_first;
            let p = Policy::new(cfg.clone()).unwrap();
            let mut leases = LeaseTable6::new();
            for mac in [a, b] {
                let mut m = msg(MessageType::Solicit, &duid_llt(mac), None, None);
                m.opts_mut().insert(DhcpOption::RapidCommit);
                respond(&p, &mut leases, &request(&m, &s), t(0));
            }
            assert_eq!(leases.len(), distinct, "duid_first {duid_first}");
        }
    }

    #[test]
    fn config_is_checked() {
        let base = policy(true).config().clone();
        let mut c = base.clone();
        c.reservations.push(Reservation6 {
            mac: MAC1,
            addr: "fd99::1".parse().unwrap(),
            hostname: None,
        });
        assert!(matches!(
            Policy::new(c),
            Err(crate::dhcp6::Error::ReservationOutsideSubnets { .. })
        ));
        let mut c = base.clone();
        c.reservations.push(Reservation6 {
            mac: RESERVED,
            addr: "fd00:77::10".parse().unwrap(),
            hostname: None,
        });
        assert!(matches!(
            Policy::new(c),
            Err(crate::dhcp6::Error::DuplicateReservation { .. })
        ));
        let mut c = base.clone();
        c.subnets[0].pool = Some(Range6 {
            start: "fd00:77::".parse().unwrap(),
            end: "fd00:77::1:0".parse().unwrap(),
        });
        assert!(matches!(
            Policy::new(c),
            Err(crate::dhcp6::Error::Config { .. })
        ));
        let mut c = base.clone();
        c.subnets[0].pool = Some(Range6 {
            start: "fd00:77::5".parse().unwrap(),
            end: "fd00:77::4".parse().unwrap(),
        });
        assert!(Policy::new(c).is_err());
        let mut c = base.clone();
        c.subnets[0].pool = Some(Range6 {
            start: "fd00:77::5".parse().unwrap(),
            end: "fd00:79::4".parse().unwrap(),
        });
        assert!(Policy::new(c).is_err());
        let mut c = base.clone();
        c.lease_secs = 0;
        assert!(Policy::new(c).is_err());
        let mut c = base;
        c.server_duid = Some(vec![1]);
        assert!(Policy::new(c).is_err());
    }
}

#[cfg(test)]
mod prop {
    use super::*;
    use crate::dhcp6::config::{Config, Range6, Subnet6};
    use crate::dhcp6::packet::Request;

    proptest::proptest! {
        /// Sequences of client messages (a valid header and client id, then arbitrary option
        /// bytes), direct or relayed, never panic and every reply encodes.
        #[test]
        fn respond_never_panics(
            msgs in proptest::collection::vec(
                (proptest::sample::select(vec![1u8, 3, 4, 5, 6, 8, 9, 11]),
                 proptest::collection::vec(proptest::num::u8::ANY, 0..80),
                 proptest::bool::ANY),
                1..12,
            )
        ) {
            let mut subnet = Subnet6::new("fd00:77::".parse().unwrap(), 64);
            subnet.pool = Some(Range6 { start: "fd00:77::100".parse().unwrap(), end: "fd00:77::102".parse().unwrap() });
            let p = Policy::new(Config {
                server_addr: "fd00:77::1".parse().unwrap(),
                server_duid: Some(vec![0, 4, 1, 2, 3]),
                subnets: vec![subnet],
                ..Config::default()
            }).unwrap();
            let mut leases = LeaseTable6::new();
            let src: SocketAddrV6 = "[fe80::5054:ff:fe77:1]:546".parse().unwrap();
            for (kind, tail, relayed) in msgs {
                let mut b = vec![kind, 1, 2, 3, 0, 1, 0, 10, 0, 3, 0, 1, 0x52, 0x54, 0, 0x77, 0, 1];
                b.extend(tail);
                if relayed {
                    let mut r = vec![12, 0];
                    r.extend([0u8; 16]);
                    r.extend(src.ip().octets());
                    r.extend([0, 9]);
                    r.extend((b.len() as u16).to_be_bytes());
                    r.extend(b);
                    b = r;
                }
                if let Ok(req) = Request::decode(&b, src) {
                    let out = respond(&p, &mut leases, &req, SystemTime::now());
                    if let Some(reply) = out.reply {
                        proptest::prop_assert!(reply.encode().is_some());
                    }
                }
            }
        }
    }
}
