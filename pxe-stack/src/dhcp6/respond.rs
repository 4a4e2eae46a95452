//! The decision: a request, the lease table and the time in; a [`Verdict`] out.

use std::net::{IpAddr, Ipv6Addr, SocketAddrV6};
use std::time::SystemTime;

use dhcproto::v6::{
    DhcpOption, IAAddr, IANA, Message, MessageType, OptionCode, Status, StatusCode,
};

use super::config::{Mode, Policy};
use super::leases::{Lease, LeaseTable, State, unix_secs};
use super::packet::{Reply, Request, bootfile_url};
use crate::{DhcpStep, Event, EventKind, Mac};

/// How long an advertised address is held for the client that was offered it.
const OFFER_SECS: u64 = 60;

/// What [`respond`] decided.
#[derive(Debug, Clone, Default)]
pub struct Verdict {
    /// The answer, if any.
    pub reply: Option<Reply>,
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
    if http_client(req) || archs.iter().any(|a| matches!(a, 16 | 19)) {
        return boot.http_boot_url.clone();
    }
    let server = policy.config().server_addr;
    let tftp = |path: &Option<String>| {
        path.as_ref()
            .map(|p| format!("tftp://[{server}]/{}", p.trim_start_matches('/')))
    };
    match archs.first()? {
        7 | 9 => tftp(&boot.efi_x64),
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
/// Clients are identified by MAC (see [`Request::mac`]); one without a MAC is not answered.
/// A host gets, in order: its reservation, the address it already holds (bound, offered or
/// released, whatever DUID it used then), the next free pool address of its link.
/// Solicit gets an Advertise (the address held for [`OFFER_SECS`]), or with Rapid Commit
/// (when [`Config::rapid_commit`](super::Config::rapid_commit)) a Reply that binds it;
/// Request, Renew and Rebind bind it (an address the client asks for that is not its own
/// comes back with lifetimes 0); Release and Decline give up or quarantine the addresses the
/// host holds; Confirm says whether the client's addresses are on its link;
/// Information-request gets the configuration without an address.
pub fn respond(policy: &Policy, leases: &mut LeaseTable, req: &Request, now: SystemTime) -> Verdict {
    let mut out = Verdict::default();
    let config = policy.config();
    if config.mode == Mode::Off {
        return out;
    }
    let kind = req.kind();
    let Some((mac, source)) = req.mac else {
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
        MessageType::Solicit
        | MessageType::Request
        | MessageType::Renew
        | MessageType::Rebind => {
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
                    (valid / 2, valid / 5 * 4)
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
                        (State::Bound, now_s + u64::from(valid))
                    } else {
                        (State::Offered, now_s + OFFER_SECS)
                    };
                    leases.insert(Lease {
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
                        State::Released
                    } else {
                        tracing::info!("DHCPDECLINE {a} {mac}: quarantined");
                        State::Declined
                    };
                    leases.insert(Lease {
                        state,
                        expires: if state == State::Declined {
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
        _ => return Verdict::default(),
    }
    if !config.dns.is_empty() {
        reply
            .opts_mut()
            .insert(DhcpOption::DomainNameServers(config.dns.clone()));
    }
    let sends_boot = !matches!(kind, MessageType::Release | MessageType::Decline);
    if sends_boot && let Some(url) = &boot {
        reply.opts_mut().insert(bootfile_url(url));
        if http_client(req)
            && let Some(v) = req.message.opts().get(OptionCode::VendorClass)
        {
            // UEFI HTTP boot ignores an offer without `HTTPClient` echoed.
            reply.opts_mut().insert(v.clone());
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
    out.reply = Some(Reply {
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
    leases: &mut LeaseTable,
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
    let cursor = leases.cursors.get(&idx).copied().unwrap_or(0) % size;
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
