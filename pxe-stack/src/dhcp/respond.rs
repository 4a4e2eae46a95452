//! The decision core: one request, the lease table and the time in; a reply, events and
//! whether the table must be persisted out. No sockets, no clock.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddrV4};
use std::time::SystemTime;

use dhcproto::v4::{DhcpOption, Message, MessageType, Opcode, OptionCode, UnknownOption};
use dhcproto::{Encodable, Encoder};

use super::config::{Mode, Policy};
use super::leases::{Key, Lease, LeaseTable, State, unix_secs};
use super::packet::Request;
use crate::ChainMode;
use crate::LeaseIdentity;
use crate::{DhcpStep, Event, EventKind, Mac};

/// The DHCP server port.
pub const SERVER_PORT: u16 = 67;
/// The DHCP client port.
pub const CLIENT_PORT: u16 = 68;
/// The PXE boot server port used by ProxyDHCP.
pub const PROXY_PORT: u16 = 4011;

/// iPXE's encapsulated options with `no-pxedhcp` (175.176) set to 1.
const IPXE_NO_PXEDHCP: [u8; 3] = [176, 1, 1];
/// PXE vendor options: discovery control (43.6) = 8, "use the boot file in this reply".
const PXE_DISCOVERY_CONTROL: [u8; 4] = [6, 1, 8, 255];

/// A reply and where to send it.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The message.
    pub message: Message,
    /// The destination: a broadcast, the client's address, or a relay agent.
    pub to: SocketAddrV4,
}

impl Reply {
    /// The wire bytes, or `None` if the message cannot be encoded (an option too large).
    pub fn encode(&self) -> Option<Vec<u8>> {
        let mut buf = Vec::with_capacity(576);
        self.message.encode(&mut Encoder::new(&mut buf)).ok()?;
        Some(buf)
    }

    /// The message type.
    pub fn kind(&self) -> Option<MessageType> {
        self.message.opts().msg_type()
    }
}

/// What [`respond`] decided.
#[derive(Debug, Clone, Default)]
pub struct Verdict {
    /// The reply to send, if any.
    pub reply: Option<Reply>,
    /// Timeline events for the client's MAC, stamped with the `now` given.
    pub events: Vec<Event>,
    /// The lease table changed in a way that must reach disk before the reply is sent.
    pub persist: bool,
    /// Ping this address before offering it ([`Config::ping_probe_ms`] is set and the address
    /// is a new one from a dynamic pool). The address is held for the client meanwhile and
    /// `reply` is `None`; pass what the probe found to [`probed`] for the offer (or the next
    /// address to probe).
    ///
    /// [`Config::ping_probe_ms`]: super::Config::ping_probe_ms
    pub probe: Option<Ipv4Addr>,
    /// Why a request got no reply, when it was deliberately left unanswered (for the
    /// per-exchange log: `no address available`, `no reservation`, `for another server`, ...).
    pub ignored: Option<&'static str>,
}

/// Decide what to answer to `req` at `now`, updating `leases`.
///
/// With [`Config::ping_probe_ms`](super::Config::ping_probe_ms) set, a DISCOVER whose
/// address is new from a dynamic pool gets no reply yet but an [`Verdict::probe`].
pub fn respond(
    policy: &Policy,
    leases: &mut LeaseTable,
    req: &Request,
    now: SystemTime,
) -> Verdict {
    let mut cx = Cx::new(policy, req, now);
    match policy.config().mode {
        Mode::Off => {}
        Mode::Proxy => cx.proxy(leases),
        Mode::Authoritative | Mode::ReservationsOnly => {
            if req.local_port != PROXY_PORT {
                match req.kind {
                    MessageType::Discover => {
                        cx.event(DhcpStep::Discover, None, None);
                        cx.offer(leases);
                    }
                    MessageType::Request => cx.request(leases),
                    MessageType::Decline => cx.decline(leases),
                    MessageType::Release => cx.release(leases),
                    MessageType::Inform => cx.inform(leases),
                    _ => {}
                }
            }
        }
    }
    cx.out
}

/// Continue a DISCOVER after the ping probe that [`respond`] asked for in
/// [`Verdict::probe`]: `addr` is the address probed and `in_use` whether an echo reply came.
///
/// A silent address is offered (and a repeated DISCOVER from the client gets it without a new
/// probe). An address that answered is quarantined like a declined one, for
/// [`Config::decline_quarantine_secs`](super::Config::decline_quarantine_secs), and the next
/// address is chosen: the outcome offers it or asks for its probe in turn. The quarantine is
/// not worth a lease-file write of its own (`persist` stays false): after a restart the address
/// would only be probed again. No event marks the quarantine; the DISCOVER event came from
/// [`respond`] and the OFFER event comes with the offer.
pub fn probed(
    policy: &Policy,
    leases: &mut LeaseTable,
    req: &Request,
    addr: Ipv4Addr,
    in_use: bool,
    now: SystemTime,
) -> Verdict {
    let mut cx = Cx::new(policy, req, now);
    let asked = policy.config().mode == Mode::Authoritative
        && req.kind == MessageType::Discover
        && req.local_port != PROXY_PORT;
    if !asked {
        return cx.out;
    }
    // Only an address still held for this client changes state: the hold may have lapsed, or
    // the client may have taken another server's offer, while the probe waited.
    let held = leases
        .get(addr)
        .is_some_and(|l| l.held_by(&cx.key) && l.state == State::Offered && l.active(cx.now_s));
    if held && in_use {
        tracing::debug!(mac = %req.mac, %addr, "address answers ping; quarantined, offering another");
        cx.quarantine(leases, addr);
    } else if held {
        leases.mark_probed(addr, req.mac);
    }
    cx.offer(leases);
    cx.out
}

/// The boot answer chosen for a client.
#[derive(Debug, Clone, PartialEq, Eq)]
enum BootFile {
    /// A file on the TFTP server (firmware PXE).
    Tftp(String),
    /// A URL for UEFI HTTP boot (option 60 `HTTPClient` echoed).
    Http(String),
    /// The URL of the iPXE script.
    Ipxe(String),
}

impl BootFile {
    fn name(&self) -> &str {
        match self {
            BootFile::Tftp(s) | BootFile::Http(s) | BootFile::Ipxe(s) => s,
        }
    }
}

struct Cx<'a> {
    policy: &'a Policy,
    req: &'a Request,
    now: SystemTime,
    now_s: u64,
    /// Who the client is for the lease table (see [`LeaseIdentity`]).
    key: Key,
    out: Verdict,
}

impl<'a> Cx<'a> {
    fn new(policy: &'a Policy, req: &'a Request, now: SystemTime) -> Self {
        Cx {
            policy,
            req,
            now,
            now_s: unix_secs(now),
            key: client_key(policy, req),
            out: Verdict::default(),
        }
    }

    /// The client identifier a new lease is keyed by, if any.
    fn client_id(&self) -> Option<String> {
        match &self.key {
            Key::ClientId(id) => Some(id.clone()),
            Key::Mac(_) => None,
        }
    }

    fn event(&mut self, step: DhcpStep, yiaddr: Option<Ipv4Addr>, boot: Option<&BootFile>) {
        self.out.events.push(Event {
            at: self.now,
            mac: Some(self.req.mac),
            addr: yiaddr.map(IpAddr::V4),
            kind: EventKind::Dhcp {
                step,
                yiaddr,
                boot_file: boot.map(|b| b.name().to_owned()),
            },
        });
    }

    fn mac(&self) -> Mac {
        self.req.mac
    }

    /// Holds `addr` out of the pool for the client, as declined or found in use, for
    /// [`Config::decline_quarantine_secs`](super::Config::decline_quarantine_secs).
    fn quarantine(&self, leases: &mut LeaseTable, addr: Ipv4Addr) {
        leases.insert(Lease {
            addr,
            mac: self.mac(),
            expires: self.now_s + u64::from(self.policy.config().decline_quarantine_secs),
            hostname: None,
            state: State::Declined,
            client_id: None,
        });
    }

    /// A reservation always wins over another client's dynamic lease or offer on its address
    /// (left from before a plan change, or a reservation inside a pool): that lease is evicted,
    /// with a warning naming both MACs, and the reserved host is answered. An address declined
    /// or found in use stays quarantined.
    fn evict_for_reservation(&mut self, leases: &mut LeaseTable) {
        let Some(r) = self.policy.reservation(self.mac()) else {
            return;
        };
        let Some(l) = leases.get(r.addr) else {
            return;
        };
        if l.held_by(&self.key) || !l.active(self.now_s) {
            return;
        }
        if l.state == State::Declined {
            tracing::warn!(
                mac = %self.mac(), addr = %r.addr, declined_by = %l.mac,
                "reserved address is quarantined (declined or answering ping) until {}", l.expires
            );
            return;
        }
        tracing::warn!(
            mac = %self.mac(), addr = %r.addr, holder = %l.mac, state = ?l.state,
            "reserved address held by another MAC's dynamic lease: evicted for the reserved host"
        );
        self.out.persist |= l.state == State::Bound;
        leases.remove(r.addr);
    }

    /// Choose an address for a DISCOVER and offer it, or ask for a probe of it first.
    fn offer(&mut self, leases: &mut LeaseTable) {
        let Some(idx) = self.policy.subnet_for(self.req.message.giaddr()) else {
            self.out.ignored = Some("no subnet for this network");
            return;
        };
        if self.policy.config().mode == Mode::ReservationsOnly
            && self.policy.reservation(self.mac()).is_none()
        {
            self.out.ignored = Some("no reservation");
            return;
        }
        self.evict_for_reservation(leases);
        let Some(addr) = allocate(
            self.policy,
            leases,
            idx,
            &self.key,
            self.req.requested_addr(),
            self.now_s,
            true,
        ) else {
            self.out.ignored = Some("no address available");
            return;
        };
        let bound = leases.get(addr).is_some_and(|l| {
            l.held_by(&self.key) && l.state == State::Bound && l.active(self.now_s)
        });
        if !bound {
            let hold = self.now_s + u64::from(self.policy.config().offer_hold_secs);
            leases.insert(Lease {
                addr,
                mac: self.mac(),
                expires: hold,
                hostname: None,
                state: State::Offered,
                client_id: self.client_id(),
            });
        }
        // Reservations are trusted, and a client's own bound address may well answer: it is
        // the client's. Anything else from the pool is probed once while held for the client.
        let probe = self.policy.config().ping_probe_ms.is_some()
            && !bound
            && self.policy.reservation(self.mac()).map(|r| r.addr) != Some(addr)
            && !leases.is_probed(addr, self.mac());
        if probe {
            self.out.probe = Some(addr);
            return;
        }
        let boot = boot_for(self.policy, leases, self.req);
        let mut m = self.base(MessageType::Offer, addr);
        self.lease_options(&mut m, idx, true);
        self.boot_options(&mut m, boot.as_ref());
        self.out.reply = Some(Reply {
            message: m,
            to: self.destination(false),
        });
        self.event(DhcpStep::Offer, Some(addr), boot.as_ref());
    }

    fn request(&mut self, leases: &mut LeaseTable) {
        let cfg = self.policy.config();
        let sid = self.req.server_id();
        if sid.is_some_and(|s| s != cfg.server_ip) {
            // The client took another server's offer: free what we held for it.
            if let Some(l) = leases.for_key(&self.key)
                && l.state == State::Offered
            {
                let a = l.addr;
                leases.remove(a);
            }
            self.out.ignored = Some("for another server");
            return;
        }
        let ciaddr = self.req.message.ciaddr();
        let wanted = self
            .req
            .requested_addr()
            .or((!ciaddr.is_unspecified()).then_some(ciaddr));
        self.event(DhcpStep::Request, wanted, None);
        let Some(wanted) = wanted else {
            self.out.ignored = Some("no requested address");
            return;
        };
        if cfg.mode == Mode::ReservationsOnly && self.policy.reservation(self.mac()).is_none() {
            self.out.ignored = Some("no reservation");
            return;
        }
        let Some(idx) = self.policy.subnet_for(self.req.message.giaddr()) else {
            self.out.ignored = Some("no subnet for this network");
            return;
        };
        self.evict_for_reservation(leases);
        let ok = cfg.subnets[idx].contains(wanted)
            && allocate(
                self.policy,
                leases,
                idx,
                &self.key,
                Some(wanted),
                self.now_s,
                false,
            ) == Some(wanted);
        if !ok {
            self.nak(wanted);
            return;
        }
        let hostname = self
            .policy
            .reservation(self.mac())
            .and_then(|r| r.hostname.clone())
            .or_else(|| self.req.hostname().map(str::to_owned));
        leases.insert(Lease {
            addr: wanted,
            mac: self.mac(),
            expires: self.now_s + u64::from(cfg.lease_secs),
            hostname,
            state: State::Bound,
            client_id: self.client_id(),
        });
        self.out.persist = true;
        let boot = boot_for(self.policy, leases, self.req);
        let mut m = self.base(MessageType::Ack, wanted);
        m.set_ciaddr(ciaddr);
        self.lease_options(&mut m, idx, true);
        self.boot_options(&mut m, boot.as_ref());
        self.out.reply = Some(Reply {
            message: m,
            to: self.destination(false),
        });
        self.event(DhcpStep::Ack, Some(wanted), boot.as_ref());
    }

    fn nak(&mut self, wanted: Ipv4Addr) {
        let mut m = self.base(MessageType::Nak, Ipv4Addr::UNSPECIFIED);
        if !self.req.message.giaddr().is_unspecified() {
            m.set_flags(m.flags().set_broadcast());
        }
        m.opts_mut()
            .insert(DhcpOption::Message("address not available".into()));
        self.out.reply = Some(Reply {
            message: m,
            to: self.destination(true),
        });
        self.event(DhcpStep::Nak, Some(wanted), None);
    }

    fn decline(&mut self, leases: &mut LeaseTable) {
        if self
            .req
            .server_id()
            .is_some_and(|s| s != self.policy.config().server_ip)
        {
            return;
        }
        let Some(addr) = self.req.requested_addr() else {
            self.out.ignored = Some("no requested address");
            return;
        };
        self.event(DhcpStep::Decline, Some(addr), None);
        if leases.get(addr).is_some_and(|l| l.held_by(&self.key)) {
            self.quarantine(leases, addr);
            self.out.persist = true;
        }
    }

    fn release(&mut self, leases: &mut LeaseTable) {
        let addr = self.req.message.ciaddr();
        self.event(DhcpStep::Release, Some(addr), None);
        let Some(l) = leases.get(addr) else {
            return;
        };
        if l.held_by(&self.key) && l.state == State::Bound {
            let mut l = l.clone();
            l.state = State::Released;
            l.expires = self.now_s;
            leases.insert(l);
            self.out.persist = true;
        }
    }

    fn inform(&mut self, leases: &mut LeaseTable) {
        let ciaddr = self.req.message.ciaddr();
        self.event(DhcpStep::Inform, Some(ciaddr), None);
        if ciaddr.is_unspecified() {
            return;
        }
        let Some(idx) = self.policy.subnet_for(self.req.message.giaddr()) else {
            return;
        };
        let boot = boot_for(self.policy, leases, self.req);
        let mut m = self.base(MessageType::Ack, Ipv4Addr::UNSPECIFIED);
        m.set_ciaddr(ciaddr);
        self.lease_options(&mut m, idx, false);
        self.boot_options(&mut m, boot.as_ref());
        self.out.reply = Some(Reply {
            message: m,
            to: self.destination(false),
        });
        self.event(DhcpStep::Ack, None, boot.as_ref());
    }

    /// ProxyDHCP: boot information to PXE clients only, never an address.
    fn proxy(&mut self, leases: &mut LeaseTable) {
        let (kind, step) = match (self.req.kind, self.req.local_port) {
            (MessageType::Discover, SERVER_PORT) => (MessageType::Offer, DhcpStep::Offer),
            (MessageType::Request, PROXY_PORT) => (MessageType::Ack, DhcpStep::Ack),
            _ => return,
        };
        if !self.req.client.pxe {
            self.out.ignored = Some("not a PXE client");
            return;
        }
        self.event(
            if kind == MessageType::Offer {
                DhcpStep::Discover
            } else {
                DhcpStep::Request
            },
            None,
            None,
        );
        let Some(boot) = boot_for(self.policy, leases, self.req) else {
            self.out.ignored = Some("no boot file for this client");
            return;
        };
        let mut m = self.base(kind, Ipv4Addr::UNSPECIFIED);
        m.set_ciaddr(self.req.message.ciaddr());
        self.boot_options(&mut m, Some(&boot));
        m.opts_mut()
            .insert(DhcpOption::ClassIdentifier(b"PXEClient".to_vec()));
        m.opts_mut()
            .insert(DhcpOption::VendorExtensions(PXE_DISCOVERY_CONTROL.to_vec()));
        self.out.reply = Some(Reply {
            message: m,
            to: self.destination(false),
        });
        self.event(step, None, Some(&boot));
    }

    /// The reply header: BOOTREPLY, the client's xid, flags, giaddr and chaddr.
    fn base(&self, kind: MessageType, yiaddr: Ipv4Addr) -> Message {
        let rq = &self.req.message;
        let mut m = Message::new_with_id(
            rq.xid(),
            Ipv4Addr::UNSPECIFIED,
            yiaddr,
            Ipv4Addr::UNSPECIFIED,
            rq.giaddr(),
            &rq.chaddr()[..6],
        );
        m.set_opcode(Opcode::BootReply);
        m.set_flags(rq.flags());
        let opts = m.opts_mut();
        opts.insert(DhcpOption::MessageType(kind));
        opts.insert(DhcpOption::ServerIdentifier(self.policy.config().server_ip));
        // RFC 6842: echo the client identifier; RFC 3046: echo the relay agent information.
        for code in [
            OptionCode::ClientIdentifier,
            OptionCode::RelayAgentInformation,
        ] {
            if let Some(o) = rq.opts().get(code) {
                opts.insert(o.clone());
            }
        }
        m
    }

    fn lease_options(&self, m: &mut Message, idx: usize, with_lease: bool) {
        let cfg = self.policy.config();
        let s = &cfg.subnets[idx];
        let opts = m.opts_mut();
        if with_lease {
            let (t1, t2) = self.policy.timers();
            opts.insert(DhcpOption::AddressLeaseTime(cfg.lease_secs));
            opts.insert(DhcpOption::Renewal(t1));
            opts.insert(DhcpOption::Rebinding(t2));
        }
        opts.insert(DhcpOption::SubnetMask(s.mask()));
        opts.insert(DhcpOption::BroadcastAddr(s.broadcast()));
        if let Some(r) = s.router {
            opts.insert(DhcpOption::Router(vec![r]));
        }
        if !s.dns.is_empty() {
            opts.insert(DhcpOption::DomainNameServer(s.dns.clone()));
        }
        if let Some(d) = &s.domain {
            opts.insert(DhcpOption::DomainName(d.clone()));
        }
        if let Some(mtu) = s.mtu {
            opts.insert(DhcpOption::InterfaceMtu(mtu));
        }
        if let Some(h) = self
            .policy
            .reservation(self.mac())
            .and_then(|r| r.hostname.as_ref())
        {
            opts.insert(DhcpOption::Hostname(h.clone()));
        }
        for o in &s.options {
            opts.insert(DhcpOption::Unknown(UnknownOption::new(
                OptionCode::from(o.code),
                o.data.clone(),
            )));
        }
    }

    fn boot_options(&self, m: &mut Message, boot: Option<&BootFile>) {
        let Some(boot) = boot else {
            return;
        };
        let name = boot.name();
        // The BOOTP file field holds 127 bytes plus the terminator; longer names go in
        // option 67 only.
        if name.len() < 128 {
            m.set_fname_str(name);
        }
        m.opts_mut()
            .insert(DhcpOption::BootfileName(name.as_bytes().to_vec()));
        let cfg = self.policy.config();
        match boot {
            BootFile::Tftp(_) => {
                let next = self.policy.next_server();
                m.set_siaddr(next);
                m.opts_mut()
                    .insert(DhcpOption::TFTPServerName(next.to_string().into_bytes()));
                if cfg.boot.pxe_vendor_options && self.req.client.pxe {
                    m.opts_mut()
                        .insert(DhcpOption::ClassIdentifier(b"PXEClient".to_vec()));
                    m.opts_mut()
                        .insert(DhcpOption::VendorExtensions(PXE_DISCOVERY_CONTROL.to_vec()));
                }
            }
            BootFile::Http(_) => {
                m.opts_mut()
                    .insert(DhcpOption::ClassIdentifier(b"HTTPClient".to_vec()));
            }
            BootFile::Ipxe(_) => {
                m.set_siaddr(self.policy.next_server());
                // iPXE ignores a ProxyDHCP offer that carries no-pxedhcp, so only the
                // address-giving server may send it.
                if cfg.boot.ipxe_no_pxedhcp && cfg.mode != Mode::Proxy {
                    m.opts_mut().insert(DhcpOption::Unknown(UnknownOption::new(
                        OptionCode::from(175),
                        IPXE_NO_PXEDHCP.to_vec(),
                    )));
                }
            }
        }
    }

    /// Where the reply goes (RFC 2131 4.1). Without ARP injection a client with no address
    /// cannot receive unicast, so replies to it are broadcast whatever its flag says.
    fn destination(&self, nak: bool) -> SocketAddrV4 {
        let rq = &self.req.message;
        if !rq.giaddr().is_unspecified() {
            return SocketAddrV4::new(rq.giaddr(), SERVER_PORT);
        }
        if self.req.local_port == PROXY_PORT {
            let ip = if self.req.src.ip().is_unspecified() {
                rq.ciaddr()
            } else {
                *self.req.src.ip()
            };
            if !ip.is_unspecified() {
                return SocketAddrV4::new(ip, self.req.src.port());
            }
        }
        if !nak && !rq.ciaddr().is_unspecified() {
            return SocketAddrV4::new(rq.ciaddr(), CLIENT_PORT);
        }
        SocketAddrV4::new(Ipv4Addr::BROADCAST, CLIENT_PORT)
    }
}

/// The boot file for a client, by class and architecture; `None` for a plain OS client.
fn boot_for(policy: &Policy, leases: &LeaseTable, req: &Request) -> Option<BootFile> {
    let b = &policy.config().boot;
    let c = &req.client;
    let bios = matches!(c.arch, None | Some(0));
    let unchained_rom = b.chain == ChainMode::Stateful && bios && !leases.is_chained(req.mac);
    if c.ipxe && !unchained_rom {
        // Handing an iPXE binary to iPXE would loop, so no script means no boot answer.
        return b
            .ipxe_script_url
            .as_ref()
            .map(|u| BootFile::Ipxe(u.replace("{mac}", &req.mac.hexhyp())));
    }
    let host = b.hosts.iter().find(|h| h.mac == req.mac);
    if c.http {
        let url = host.and_then(|h| h.http_boot_url.as_ref());
        return url
            .or(b.http_boot_url.as_ref())
            .cloned()
            .map(BootFile::Http);
    }
    if !(c.pxe || c.arch.is_some() || c.ipxe) {
        return None;
    }
    let file = match c.arch.unwrap_or(0) {
        0 => &b.bios,
        7 | 9 => host
            .and_then(|h| h.efi_x64.as_ref().map(|_| &h.efi_x64))
            .unwrap_or(&b.efi_x64),
        11 => &b.efi_arm64,
        _ => &None,
    };
    file.clone().map(BootFile::Tftp)
}

/// Who `req` is for the lease table: its MAC, or under [`LeaseIdentity::ClientId`] its client
/// identifier (option 61, colon-separated hex) when it sends one and has no reservation
/// (reservations are per MAC, so a reserved host keeps its address whatever it sends).
fn client_key(policy: &Policy, req: &Request) -> Key {
    if policy.config().lease_identity == LeaseIdentity::ClientId
        && let Some(id) = req.client_id().filter(|id| !id.is_empty())
        && policy.reservation(req.mac).is_none()
    {
        let mut hex = String::with_capacity(id.len() * 3);
        for (i, b) in id.iter().enumerate() {
            if i > 0 {
                hex.push(':');
            }
            let _ = write!(hex, "{b:02x}");
        }
        return Key::ClientId(hex);
    }
    Key::Mac(req.mac)
}

/// The hash a shared store's pool search starts from (see [`crate::store::client_hash`]).
fn client_hash(key: &Key) -> u32 {
    crate::store::client_hash(match key {
        Key::Mac(mac) => &mac.0,
        Key::ClientId(id) => id.as_bytes(),
    })
}

/// Pick the address for the client `key` in subnet `idx`: its reservation, else (dynamic modes) its
/// current address, the requested one, the next free one in the pool, or (with `reclaim`, for
/// DISCOVERs) the oldest offer held for another client when the pool is exhausted.
fn allocate(
    policy: &Policy,
    leases: &mut LeaseTable,
    idx: usize,
    key: &Key,
    requested: Option<Ipv4Addr>,
    now: u64,
    reclaim: bool,
) -> Option<Ipv4Addr> {
    let cfg = policy.config();
    let subnet = &cfg.subnets[idx];
    // Reserved hosts are always keyed by MAC (see `client_key`).
    if let Key::Mac(mac) = key
        && let Some(r) = policy.reservation(*mac)
    {
        return (subnet.contains(r.addr) && leases.free_for_key(r.addr, key, now))
            .then_some(r.addr);
    }
    if cfg.mode != Mode::Authoritative {
        return None;
    }
    let pool = subnet.pool?;
    let (start, end) = (u32::from(pool.start), u32::from(pool.end));
    let net = subnet.net();
    let (network, broadcast) = (net.network(), net.broadcast());
    let excluded = |a: Ipv4Addr| {
        a == cfg.server_ip
            || a == network
            || a == broadcast
            || Some(a) == subnet.router
            || policy.reserved_for(a).is_some()
    };
    let in_pool = |a: Ipv4Addr| (start..=end).contains(&u32::from(a));
    let usable = |leases: &LeaseTable, a: Ipv4Addr| {
        in_pool(a) && !excluded(a) && leases.free_for_key(a, key, now)
    };
    if let Some(l) = leases.for_key(key)
        && usable(leases, l.addr)
    {
        return Some(l.addr);
    }
    if let Some(a) = requested
        && usable(leases, a)
    {
        return Some(a);
    }
    let size = end - start + 1;
    let cursor = if leases.hashed_start {
        client_hash(key) % size
    } else {
        leases.cursors.get(&idx).copied().unwrap_or(0) % size
    };
    // First addresses nobody ever held, then ones whose holder let them lapse.
    for fresh_only in [true, false] {
        for i in 0..size {
            let off = (cursor + i) % size;
            let a = Ipv4Addr::from(start + off);
            let fresh = leases.get(a).is_none();
            if (fresh || !fresh_only) && usable(leases, a) {
                leases.cursors.insert(idx, (off + 1) % size);
                return Some(a);
            }
        }
    }
    // The pool is exhausted. An offer promises nothing until the client REQUESTs it, so the
    // oldest offer still held for another client gives way (a flood of DISCOVERs from strangers
    // that never REQUEST cannot starve a real client); bound leases and reserved addresses
    // never do.
    if !reclaim {
        return None;
    }
    let oldest = (0..size)
        .map(|off| Ipv4Addr::from(start + off))
        .filter(|&a| !excluded(a))
        .filter_map(|a| leases.get(a))
        .filter(|l| l.state == State::Offered && !l.held_by(key))
        .min_by_key(|l| (l.expires, l.addr))
        .map(|l| (l.addr, l.mac))?;
    tracing::debug!(client = ?key, addr = %oldest.0, from = %oldest.1, "pool exhausted: reclaiming the oldest unrequested offer");
    Some(oldest.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dhcp::config::{BootFiles, Config, Range, RawOption, Reservation, Subnet};
    use crate::dhcp::packet::MAX_PACKET;
    use crate::dhcp::packet::tests::packet;
    use dhcproto::Decodable;
    use dhcproto::v4::Architecture;
    use dhcproto::v4::relay::{RelayAgentInformation, RelayInfo};
    use std::time::Duration;

    const SERVER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const T0: u64 = 1_800_000_000;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(T0 + secs)
    }

    fn mac(n: u8) -> [u8; 6] {
        [0x52, 0x54, 0, 0x12, 0x60, n]
    }

    fn config() -> Config {
        let mut local = Subnet::new(Ipv4Addr::new(10, 0, 0, 0), 24);
        local.pool = Some(Range {
            start: Ipv4Addr::new(10, 0, 0, 100),
            end: Ipv4Addr::new(10, 0, 0, 103),
        });
        local.router = Some(Ipv4Addr::new(10, 0, 0, 254));
        local.dns = vec![Ipv4Addr::new(10, 0, 0, 53)];
        local.domain = Some("cluster.test".into());
        local.mtu = Some(1500);
        local.options = vec![RawOption {
            code: 42,
            data: vec![10, 0, 0, 123],
        }];
        let mut remote = Subnet::new(Ipv4Addr::new(10, 1, 0, 0), 24);
        remote.pool = Some(Range {
            start: Ipv4Addr::new(10, 1, 0, 10),
            end: Ipv4Addr::new(10, 1, 0, 20),
        });
        Config {
            server_ip: SERVER,
            subnets: vec![local, remote],
            reservations: vec![Reservation {
                mac: Mac(mac(9)),
                addr: Ipv4Addr::new(10, 0, 0, 10),
                hostname: Some("master-0".into()),
            }],
            boot: BootFiles {
                ipxe_script_url: Some("http://10.0.0.1:8080/ipxe?mac={mac}".into()),
                http_boot_url: Some("http://10.0.0.1:8080/snponly.efi".into()),
                ..BootFiles::default()
            },
            ..Config::default()
        }
    }

    /// A test bench: a policy, a table and a clock.
    struct Bench {
        policy: Policy,
        leases: LeaseTable,
    }

    impl Bench {
        fn new(c: Config) -> Self {
            Bench {
                policy: Policy::new(c).unwrap(),
                leases: LeaseTable::new(),
            }
        }

        fn send(&mut self, bytes: &[u8], port: u16, t: u64) -> Verdict {
            let src = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, CLIENT_PORT);
            let req = Request::decode(bytes, src, port).unwrap();
            respond(&self.policy, &mut self.leases, &req, at(t))
        }

        fn dhcp(&mut self, n: u8, kind: MessageType, extra: Vec<DhcpOption>, t: u64) -> Verdict {
            self.send(&packet(mac(n), kind, extra), SERVER_PORT, t)
        }

        /// What a ping probe of `addr` for client `n`'s DISCOVER found.
        fn probed(&mut self, n: u8, addr: Ipv4Addr, in_use: bool, t: u64) -> Verdict {
            let bytes = packet(mac(n), MessageType::Discover, vec![]);
            let src = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, CLIENT_PORT);
            let req = Request::decode(&bytes, src, SERVER_PORT).unwrap();
            probed(&self.policy, &mut self.leases, &req, addr, in_use, at(t))
        }

        /// Full DISCOVER/REQUEST; returns the address acknowledged.
        fn dora(&mut self, n: u8, t: u64) -> Option<Ipv4Addr> {
            let offer = self.dhcp(n, MessageType::Discover, vec![], t).reply?;
            let addr = offer.message.yiaddr();
            let ack = self.dhcp(
                n,
                MessageType::Request,
                vec![
                    DhcpOption::RequestedIpAddress(addr),
                    DhcpOption::ServerIdentifier(SERVER),
                ],
                t,
            );
            let reply = ack.reply?;
            assert_eq!(reply.kind(), Some(MessageType::Ack));
            assert!(ack.persist);
            Some(reply.message.yiaddr())
        }
    }

    /// What a reply says, flattened for comparison.
    #[derive(Debug, PartialEq, Eq)]
    struct Seen {
        kind: MessageType,
        yiaddr: Ipv4Addr,
        to: SocketAddrV4,
        file: Option<String>,
        siaddr: Ipv4Addr,
        class: Option<Vec<u8>>,
        opt175: Option<Vec<u8>>,
    }

    fn seen(r: &Reply) -> Seen {
        let o = r.message.opts();
        Seen {
            kind: r.kind().unwrap(),
            yiaddr: r.message.yiaddr(),
            to: r.to,
            file: match o.get(OptionCode::BootfileName) {
                Some(DhcpOption::BootfileName(f)) => Some(String::from_utf8(f.clone()).unwrap()),
                _ => None,
            },
            siaddr: r.message.siaddr(),
            class: match o.get(OptionCode::ClassIdentifier) {
                Some(DhcpOption::ClassIdentifier(c)) => Some(c.clone()),
                _ => None,
            },
            opt175: match o.get(OptionCode::from(175)) {
                Some(DhcpOption::Unknown(u)) => Some(u.data().to_vec()),
                _ => None,
            },
        }
    }

    const BCAST: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::BROADCAST, CLIENT_PORT);

    fn offer(
        file: Option<&str>,
        siaddr: Ipv4Addr,
        class: Option<&[u8]>,
        opt175: Option<&[u8]>,
    ) -> Seen {
        Seen {
            kind: MessageType::Offer,
            yiaddr: Ipv4Addr::new(10, 0, 0, 100),
            to: BCAST,
            file: file.map(str::to_owned),
            siaddr,
            class: class.map(<[u8]>::to_vec),
            opt175: opt175.map(<[u8]>::to_vec),
        }
    }

    /// Boot selection: one DISCOVER with `extra` options, one expected OFFER.
    fn check_boot(c: Config, extra: Vec<DhcpOption>, expected: Seen) {
        let mut b = Bench::new(c);
        let out = b.dhcp(1, MessageType::Discover, extra.clone(), 0);
        let got = seen(out.reply.as_ref().expect("an offer"));
        assert_eq!(got, expected, "for {extra:?}");
        let boot_file = match &out.events[1].kind {
            EventKind::Dhcp { boot_file, .. } => boot_file.clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!(boot_file, expected.file);
    }

    fn arch(a: Architecture) -> DhcpOption {
        DhcpOption::ClientSystemArchitecture(a)
    }

    fn class(c: &str) -> DhcpOption {
        DhcpOption::ClassIdentifier(c.as_bytes().to_vec())
    }

    fn ipxe() -> DhcpOption {
        DhcpOption::UserClass(b"iPXE".to_vec())
    }

    #[test]
    fn boot_selection_by_architecture_and_class() {
        let pxe = |n: u16| class(&format!("PXEClient:Arch:{n:05}:UNDI:002001"));
        check_boot(
            config(),
            vec![],
            offer(None, Ipv4Addr::UNSPECIFIED, None, None),
        );
        check_boot(
            config(),
            vec![arch(Architecture::X86_Bios), pxe(0)],
            offer(Some("undionly.kpxe"), SERVER, None, None),
        );
        check_boot(
            config(),
            vec![arch(Architecture::X64), pxe(7)],
            offer(Some("ipxe.efi"), SERVER, None, None),
        );
        let mut snp = config();
        snp.boot.efi_x64 = Some("snponly.efi".into());
        snp.boot.next_server = Some(Ipv4Addr::new(10, 0, 0, 2));
        check_boot(
            snp,
            vec![arch(Architecture::BC), pxe(9)],
            offer(Some("snponly.efi"), Ipv4Addr::new(10, 0, 0, 2), None, None),
        );
        check_boot(
            config(),
            vec![arch(Architecture::Arm64), pxe(11)],
            offer(Some("ipxe-arm64.efi"), SERVER, None, None),
        );
        check_boot(
            config(),
            vec![
                arch(Architecture::X64_Http),
                class("HTTPClient:Arch:00016:UNDI:003001"),
            ],
            offer(
                Some("http://10.0.0.1:8080/snponly.efi"),
                Ipv4Addr::UNSPECIFIED,
                Some(b"HTTPClient"),
                None,
            ),
        );
        let script = "http://10.0.0.1:8080/ipxe?mac=52-54-00-12-60-01";
        check_boot(
            config(),
            vec![arch(Architecture::X86_Bios), pxe(0), ipxe()],
            offer(Some(script), SERVER, None, Some(&[176, 1, 1])),
        );
        check_boot(
            config(),
            vec![DhcpOption::Unknown(UnknownOption::new(
                OptionCode::from(175),
                vec![0x13, 1, 1],
            ))],
            offer(Some(script), SERVER, None, Some(&[176, 1, 1])),
        );
        let mut slow = config();
        slow.boot.ipxe_no_pxedhcp = false;
        check_boot(slow, vec![ipxe()], offer(Some(script), SERVER, None, None));
        let mut vendor = config();
        vendor.boot.pxe_vendor_options = true;
        check_boot(
            vendor,
            vec![arch(Architecture::X86_Bios), pxe(0)],
            offer(Some("undionly.kpxe"), SERVER, Some(b"PXEClient"), None),
        );
        // A Secure Boot host gets its shim over TFTP and HTTP boot; iPXE still gets the script.
        let mut secure = config();
        secure.boot.hosts.push(crate::dhcp::HostBootFiles {
            mac: "52:54:00:12:60:01".parse().unwrap(),
            efi_x64: Some("shimx64.efi".into()),
            http_boot_url: Some("http://10.0.0.1:8080/shimx64.efi".into()),
        });
        check_boot(
            secure.clone(),
            vec![arch(Architecture::X64), pxe(7)],
            offer(Some("shimx64.efi"), SERVER, None, None),
        );
        check_boot(
            secure.clone(),
            vec![arch(Architecture::X86_Bios), pxe(0)],
            offer(Some("undionly.kpxe"), SERVER, None, None),
        );
        check_boot(
            secure.clone(),
            vec![
                arch(Architecture::X64_Http),
                class("HTTPClient:Arch:00016:UNDI:003001"),
            ],
            offer(
                Some("http://10.0.0.1:8080/shimx64.efi"),
                Ipv4Addr::UNSPECIFIED,
                Some(b"HTTPClient"),
                None,
            ),
        );
        check_boot(
            secure,
            vec![arch(Architecture::X86_Bios), pxe(0), ipxe()],
            offer(Some(script), SERVER, None, Some(&[176, 1, 1])),
        );
        // No script configured: iPXE gets nothing rather than a binary that would loop.
        let mut none = config();
        none.boot.ipxe_script_url = None;
        check_boot(
            none,
            vec![ipxe()],
            offer(None, Ipv4Addr::UNSPECIFIED, None, None),
        );
        // An unknown architecture gets an address and no file.
        check_boot(
            config(),
            vec![arch(Architecture::PowerPC_EPAPR), pxe(13)],
            offer(None, Ipv4Addr::UNSPECIFIED, None, None),
        );
    }

    #[test]
    fn stateful_chain_tells_rom_from_undionly() {
        let mut c = config();
        c.boot.chain = ChainMode::Stateful;
        let mut b = Bench::new(c);
        let rom = vec![arch(Architecture::X86_Bios), ipxe()];
        let file = |o: Verdict| seen(&o.reply.unwrap()).file;
        assert_eq!(
            file(b.dhcp(1, MessageType::Discover, rom.clone(), 0)).as_deref(),
            Some("undionly.kpxe")
        );
        b.leases.mark_chained(Mac(mac(1)));
        assert_eq!(
            file(b.dhcp(1, MessageType::Discover, rom.clone(), 1)).as_deref(),
            Some("http://10.0.0.1:8080/ipxe?mac=52-54-00-12-60-01")
        );
        // UEFI iPXE is never a PXE ROM in disguise.
        assert_eq!(
            file(b.dhcp(
                2,
                MessageType::Discover,
                vec![arch(Architecture::X64), ipxe()],
                0
            ))
            .as_deref(),
            Some("http://10.0.0.1:8080/ipxe?mac=52-54-00-12-60-02")
        );
    }

    #[test]
    fn options_in_the_ack() {
        let mut b = Bench::new(config());
        assert_eq!(b.dora(9, 0), Some(Ipv4Addr::new(10, 0, 0, 10)));
        let out = b.dhcp(
            9,
            MessageType::Request,
            vec![DhcpOption::RequestedIpAddress(Ipv4Addr::new(10, 0, 0, 10))],
            5,
        );
        let r = out.reply.unwrap();
        let o = r.message.opts();
        let get = |c: u8| o.get(OptionCode::from(c)).cloned();
        assert_eq!(
            get(1),
            Some(DhcpOption::SubnetMask(Ipv4Addr::new(255, 255, 255, 0)))
        );
        assert_eq!(
            get(3),
            Some(DhcpOption::Router(vec![Ipv4Addr::new(10, 0, 0, 254)]))
        );
        assert_eq!(
            get(6),
            Some(DhcpOption::DomainNameServer(vec![Ipv4Addr::new(
                10, 0, 0, 53
            )]))
        );
        assert_eq!(get(15), Some(DhcpOption::DomainName("cluster.test".into())));
        assert_eq!(get(12), Some(DhcpOption::Hostname("master-0".into())));
        assert_eq!(get(26), Some(DhcpOption::InterfaceMtu(1500)));
        assert_eq!(get(51), Some(DhcpOption::AddressLeaseTime(3600)));
        assert_eq!(get(58), Some(DhcpOption::Renewal(1800)));
        assert_eq!(get(59), Some(DhcpOption::Rebinding(3150)));
        assert_eq!(get(54), Some(DhcpOption::ServerIdentifier(SERVER)));
        assert_eq!(
            get(42),
            Some(DhcpOption::Unknown(UnknownOption::new(
                OptionCode::from(42),
                vec![10, 0, 0, 123]
            )))
        );
        assert_eq!(r.message.xid(), 0x1234_5678);
        assert_eq!(r.message.opcode(), Opcode::BootReply);
        // The encoded reply decodes again.
        let bytes = r.encode().unwrap();
        assert!(Message::decode(&mut dhcproto::Decoder::new(&bytes)).is_ok());
        let lease = b.leases.for_mac(Mac(mac(9))).unwrap();
        assert_eq!(lease.expires, T0 + 5 + 3600);
        assert_eq!(lease.hostname.as_deref(), Some("master-0"));
    }

    #[test]
    fn dora_events_and_persistence() {
        let mut b = Bench::new(config());
        let out = b.dhcp(1, MessageType::Discover, vec![], 0);
        assert!(!out.persist);
        assert_eq!(b.leases.persistent(), vec![]);
        let steps = |o: &Verdict| -> Vec<DhcpStep> {
            o.events
                .iter()
                .map(|e| match e.kind {
                    EventKind::Dhcp { step, .. } => step,
                    _ => unreachable!(),
                })
                .collect()
        };
        assert_eq!(steps(&out), [DhcpStep::Discover, DhcpStep::Offer]);
        let a = out.reply.unwrap().message.yiaddr();
        let out = b.dhcp(
            1,
            MessageType::Request,
            vec![
                DhcpOption::RequestedIpAddress(a),
                DhcpOption::ServerIdentifier(SERVER),
            ],
            1,
        );
        assert_eq!(steps(&out), [DhcpStep::Request, DhcpStep::Ack]);
        assert!(out.persist);
        assert_eq!(out.events[1].mac, Some(Mac(mac(1))));
        assert_eq!(b.leases.persistent().len(), 1);
        // The same client discovering again keeps its address.
        assert_eq!(b.dora(1, 2), Some(a));
    }

    #[test]
    fn requests_for_other_servers_and_wrong_addresses() {
        let mut b = Bench::new(config());
        let a = b
            .dhcp(1, MessageType::Discover, vec![], 0)
            .reply
            .unwrap()
            .message
            .yiaddr();
        // The client chose another server: silence, and our offer is freed.
        let out = b.dhcp(
            1,
            MessageType::Request,
            vec![
                DhcpOption::RequestedIpAddress(Ipv4Addr::new(10, 0, 0, 77)),
                DhcpOption::ServerIdentifier(Ipv4Addr::new(10, 0, 0, 2)),
            ],
            1,
        );
        assert!(out.reply.is_none());
        assert!(b.leases.get(a).is_none());
        // A request for an address outside the subnet, or held by someone else: NAK, broadcast.
        let taken = b.dora(2, 2).unwrap();
        for wanted in [Ipv4Addr::new(192, 168, 1, 5), taken] {
            let out = b.dhcp(
                1,
                MessageType::Request,
                vec![DhcpOption::RequestedIpAddress(wanted)],
                3,
            );
            let r = out.reply.unwrap();
            assert_eq!(r.kind(), Some(MessageType::Nak), "{wanted}");
            assert_eq!(r.to, BCAST);
            assert_eq!(r.message.yiaddr(), Ipv4Addr::UNSPECIFIED);
        }
        // INIT-REBOOT for a free pool address with no record (the server lost it): ACK.
        let out = b.dhcp(
            3,
            MessageType::Request,
            vec![DhcpOption::RequestedIpAddress(Ipv4Addr::new(10, 0, 0, 102))],
            4,
        );
        assert_eq!(out.reply.unwrap().kind(), Some(MessageType::Ack));
        // A reserved address is never handed to another MAC.
        let out = b.dhcp(
            4,
            MessageType::Request,
            vec![DhcpOption::RequestedIpAddress(Ipv4Addr::new(10, 0, 0, 10))],
            4,
        );
        assert_eq!(out.reply.unwrap().kind(), Some(MessageType::Nak));
    }

    #[test]
    fn renewal_is_unicast_to_the_client() {
        let mut b = Bench::new(config());
        let a = b.dora(1, 0).unwrap();
        let mut p = packet(mac(1), MessageType::Request, vec![]);
        p[12..16].copy_from_slice(&a.octets());
        let out = b.send(&p, SERVER_PORT, 1000);
        let r = out.reply.unwrap();
        assert_eq!(r.kind(), Some(MessageType::Ack));
        assert_eq!(r.to, SocketAddrV4::new(a, CLIENT_PORT));
        assert_eq!(r.message.ciaddr(), a);
        assert_eq!(b.leases.get(a).unwrap().expires, T0 + 1000 + 3600);
    }

    #[test]
    fn pool_exhaustion_expiry_and_affinity() {
        let mut b = Bench::new(config());
        let got: Vec<_> = (1..=4).map(|n| b.dora(n, 0)).collect();
        assert_eq!(
            got,
            (100..=103)
                .map(|i| Some(Ipv4Addr::new(10, 0, 0, i)))
                .collect::<Vec<_>>()
        );
        assert!(b.dhcp(5, MessageType::Discover, vec![], 10).reply.is_none());
        // After the leases expire, a new client gets one; old clients keep theirs while free.
        assert_eq!(b.dora(5, 3600), Some(Ipv4Addr::new(10, 0, 0, 100)));
        assert_eq!(b.dora(2, 3600), Some(Ipv4Addr::new(10, 0, 0, 101)));
        assert!(b.leases.expire(unix_secs(at(3600))));
        // Never two MACs on one address.
        let leases = b.leases.leases();
        let mut addrs: Vec<_> = leases.iter().map(|l| l.addr).collect();
        addrs.dedup();
        assert_eq!(addrs.len(), leases.len());
    }

    /// Strangers DISCOVER the whole pool and never REQUEST: a real client still gets an
    /// address (the oldest offer gives way), reservations are never handed to strangers, and
    /// a bound lease is never reclaimed.
    #[test]
    fn a_discover_flood_never_starves_a_real_client() {
        let mut b = Bench::new(config());
        // Client 1 holds a bound lease; strangers 100..=150 flood the other three addresses.
        let bound = b.dora(1, 0).unwrap();
        let mut offered = Vec::new();
        for n in 100..=150 {
            let out = b.dhcp(n, MessageType::Discover, vec![], 1);
            let a = out
                .reply
                .expect("an offer, reclaimed if need be")
                .message
                .yiaddr();
            assert_ne!(a, bound, "a bound lease was reclaimed");
            assert_ne!(
                a,
                Ipv4Addr::new(10, 0, 0, 10),
                "a reservation went to a stranger"
            );
            offered.push(a);
        }
        // The real client's DISCOVER and REQUEST, while the strangers' offers still hold.
        let got = b.dora(7, 2).expect("the real client is served");
        assert_ne!(got, bound);
        assert_eq!(b.leases.get(got).unwrap().mac, Mac(mac(7)));
        assert_eq!(b.leases.get(bound).unwrap().mac, Mac(mac(1)));
        // The reserved host is answered too.
        assert_eq!(b.dora(9, 2), Some(Ipv4Addr::new(10, 0, 0, 10)));
        // A REQUEST never takes an address offered to someone else.
        let other = offered.last().copied().unwrap();
        let holder = b.leases.get(other).unwrap().mac;
        if holder != Mac(mac(7)) {
            let out = b.dhcp(
                8,
                MessageType::Request,
                vec![DhcpOption::RequestedIpAddress(other)],
                3,
            );
            assert_eq!(out.reply.unwrap().kind(), Some(MessageType::Nak));
        }
    }

    /// A stale dynamic lease of another MAC on a reserved address (a plan change, or a
    /// reservation inside the pool) is evicted and the reserved host answered.
    #[test]
    fn a_reservation_wins_over_a_stale_dynamic_lease() {
        let mut c = config();
        // A reservation inside the pool.
        c.reservations.push(Reservation {
            mac: Mac(mac(8)),
            addr: Ipv4Addr::new(10, 0, 0, 101),
            hostname: Some("worker-0".into()),
        });
        let mut b = Bench::new(c);
        let stale = |addr: Ipv4Addr, n: u8| Lease {
            addr,
            mac: Mac(mac(n)),
            expires: unix_secs(at(3000)),
            hostname: None,
            state: State::Bound,
            client_id: None,
        };
        // As if loaded from the lease file of an older plan.
        b.leases = LeaseTable::from_leases([
            stale(Ipv4Addr::new(10, 0, 0, 10), 1),
            stale(Ipv4Addr::new(10, 0, 0, 101), 2),
        ]);
        let out = b.dhcp(9, MessageType::Discover, vec![], 0);
        assert!(out.persist, "the eviction of a bound lease reaches disk");
        assert_eq!(
            out.reply.unwrap().message.yiaddr(),
            Ipv4Addr::new(10, 0, 0, 10)
        );
        assert_eq!(b.dora(9, 1), Some(Ipv4Addr::new(10, 0, 0, 10)));
        assert_eq!(b.dora(8, 1), Some(Ipv4Addr::new(10, 0, 0, 101)));
        // The evicted clients are NAKed on renewal and DISCOVER a pool address.
        let out = b.dhcp(
            1,
            MessageType::Request,
            vec![DhcpOption::RequestedIpAddress(Ipv4Addr::new(10, 0, 0, 10))],
            2,
        );
        assert_eq!(out.reply.unwrap().kind(), Some(MessageType::Nak));
        let a = b.dora(1, 2).unwrap();
        assert!((100..=103).contains(&a.octets()[3]) && a.octets()[3] != 101);
        // A reserved address declined (in use on the wire) stays quarantined.
        b.leases.insert(Lease {
            state: State::Declined,
            ..stale(Ipv4Addr::new(10, 0, 0, 101), 3)
        });
        assert!(b.dhcp(8, MessageType::Discover, vec![], 3).reply.is_none());
    }

    /// DORA for client `n` sending client identifier `id`; the address acknowledged.
    fn dora_with_id(b: &mut Bench, n: u8, id: &[u8], t: u64) -> Ipv4Addr {
        let cid = DhcpOption::ClientIdentifier(id.to_vec());
        let offer = b.dhcp(n, MessageType::Discover, vec![cid.clone()], t);
        let addr = offer.reply.unwrap().message.yiaddr();
        let ack = b.dhcp(
            n,
            MessageType::Request,
            vec![
                cid,
                DhcpOption::RequestedIpAddress(addr),
                DhcpOption::ServerIdentifier(SERVER),
            ],
            t,
        );
        let reply = ack.reply.unwrap();
        assert_eq!(reply.kind(), Some(MessageType::Ack));
        reply.message.yiaddr()
    }

    /// The default rule keys leases by MAC: one MAC with two client identifiers (firmware,
    /// then the installed OS) keeps one address.
    #[test]
    fn lease_identity_mac_ignores_option_61() {
        let mut b = Bench::new(config());
        let a = dora_with_id(&mut b, 1, &[1, 0x52, 0x54, 0, 0x12, 0x60, 1], 0);
        assert_eq!(dora_with_id(&mut b, 1, b"\xffinstalled-os", 1), a);
        assert_eq!(b.dora(1, 2), Some(a));
        assert_eq!(b.leases.get(a).unwrap().client_id, None);
        assert_eq!(b.leases.persistent().len(), 1);
    }

    /// `LeaseIdentity::ClientId`: two client identifiers behind one MAC get two addresses,
    /// each keeps its own, a client without option 61 is keyed by MAC, and a reserved host
    /// keeps its reservation whatever it sends.
    #[test]
    fn lease_identity_client_id_keys_by_option_61() {
        let mut c = config();
        c.lease_identity = LeaseIdentity::ClientId;
        let mut b = Bench::new(c);
        let first = dora_with_id(&mut b, 1, b"\x00vm-a", 0);
        let second = dora_with_id(&mut b, 1, b"\x00vm-b", 0);
        assert_ne!(first, second);
        assert_eq!(dora_with_id(&mut b, 1, b"\x00vm-a", 1), first);
        assert_eq!(dora_with_id(&mut b, 1, b"\x00vm-b", 1), second);
        assert_eq!(
            b.leases.get(first).unwrap().client_id.as_deref(),
            Some("00:76:6d:2d:61")
        );
        let plain = b.dora(1, 2).unwrap();
        assert!(plain != first && plain != second);
        // The MAC's lookup (what HTTP servers ask) finds one of its bound leases.
        assert!(b.leases.for_mac(Mac(mac(1))).is_some());
        assert_eq!(
            dora_with_id(&mut b, 9, b"\x00anything", 3),
            Ipv4Addr::new(10, 0, 0, 10)
        );
    }

    #[test]
    fn unanswered_requests_say_why() {
        let mut b = Bench::new(config());
        for n in 1..=4 {
            b.dora(n, 0).unwrap();
        }
        let out = b.dhcp(5, MessageType::Discover, vec![], 1);
        assert_eq!(out.ignored, Some("no address available"));
        let mut c = config();
        c.mode = Mode::ReservationsOnly;
        let mut b = Bench::new(c);
        assert_eq!(
            b.dhcp(5, MessageType::Discover, vec![], 1).ignored,
            Some("no reservation")
        );
        assert_eq!(b.dhcp(9, MessageType::Discover, vec![], 1).ignored, None);
    }

    /// The steps of the DHCP events in an outcome.
    fn steps(out: &Verdict) -> Vec<DhcpStep> {
        out.events
            .iter()
            .map(|e| match &e.kind {
                EventKind::Dhcp { step, .. } => *step,
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn no_probe_unless_configured() {
        let mut b = Bench::new(config());
        let out = b.dhcp(1, MessageType::Discover, vec![], 0);
        assert_eq!(out.probe, None);
        assert_eq!(
            out.reply.as_ref().unwrap().message.yiaddr(),
            Ipv4Addr::new(10, 0, 0, 100)
        );
        assert_eq!(steps(&out), [DhcpStep::Discover, DhcpStep::Offer]);
    }

    #[test]
    fn ping_probe_before_offering_a_pool_address() {
        let mut c = config();
        c.ping_probe_ms = Some(200);
        let mut b = Bench::new(c);
        let a = |i| Ipv4Addr::new(10, 0, 0, i);
        // The first candidate is held for the client while it is probed; no offer yet.
        let out = b.dhcp(1, MessageType::Discover, vec![], 0);
        assert_eq!(out.probe, Some(a(100)));
        assert!(out.reply.is_none() && !out.persist);
        assert_eq!(steps(&out), [DhcpStep::Discover]);
        assert_eq!(b.leases.get(a(100)).unwrap().state, State::Offered);
        // Another client meanwhile gets another candidate.
        assert_eq!(
            b.dhcp(2, MessageType::Discover, vec![], 0).probe,
            Some(a(101))
        );
        // Someone answers on the first: quarantined like a decline, the next one is probed,
        // and nothing is said about it on the timeline.
        let out = b.probed(1, a(100), true, 0);
        assert_eq!(out.probe, Some(a(102)));
        assert!(out.reply.is_none() && out.events.is_empty() && !out.persist);
        let q = b.leases.get(a(100)).unwrap();
        assert_eq!((q.state, q.expires), (State::Declined, T0 + 600));
        // Silence: the offer, with its event.
        let out = b.probed(1, a(102), false, 0);
        assert_eq!(out.probe, None);
        assert_eq!(out.reply.as_ref().unwrap().message.yiaddr(), a(102));
        assert_eq!(steps(&out), [DhcpStep::Offer]);
        // A repeated DISCOVER is answered at once: the address was probed for this client.
        let out = b.dhcp(1, MessageType::Discover, vec![], 1);
        assert_eq!(out.probe, None);
        assert_eq!(out.reply.unwrap().message.yiaddr(), a(102));
        assert_eq!(b.dora(1, 2), Some(a(102)));
        // A bound client coming back, and a reservation, are never probed.
        let out = b.dhcp(1, MessageType::Discover, vec![], 3);
        assert_eq!(
            (out.probe, out.reply.map(|r| r.message.yiaddr())),
            (None, Some(a(102)))
        );
        let out = b.dhcp(9, MessageType::Discover, vec![], 3);
        assert_eq!(
            (out.probe, out.reply.map(|r| r.message.yiaddr())),
            (None, Some(a(10)))
        );
        // The quarantined address stays out of the pool until the quarantine ends.
        assert!(!b.leases.free_for(a(100), Mac(mac(5)), unix_secs(at(599))));
        assert!(b.leases.free_for(a(100), Mac(mac(5)), unix_secs(at(600))));
    }

    #[test]
    fn probe_results_only_touch_the_hold_they_were_for() {
        let mut c = config();
        c.ping_probe_ms = Some(200);
        let mut b = Bench::new(c);
        let a = |i| Ipv4Addr::new(10, 0, 0, i);
        assert_eq!(
            b.dhcp(2, MessageType::Discover, vec![], 0).probe,
            Some(a(100))
        );
        // A stale or foreign result (client 3 never held .100) leaves client 2's hold alone;
        // client 3 is simply given a candidate of its own to probe.
        let out = b.probed(3, a(100), true, 0);
        assert_eq!(out.probe, Some(a(101)));
        let l = b.leases.get(a(100)).unwrap();
        assert_eq!((l.mac, l.state), (Mac(mac(2)), State::Offered));
        // A silent result after the hold lapsed probes again rather than offering blind.
        let out = b.probed(2, a(100), false, 61);
        assert_eq!(out.probe, Some(a(100)));
        assert!(out.reply.is_none());
        // The address changing hands forgets that it was probed.
        b.probed(2, a(100), false, 61);
        assert!(b.leases.is_probed(a(100), Mac(mac(2))));
        b.leases.remove(a(100));
        assert!(!b.leases.is_probed(a(100), Mac(mac(2))));
        // With every candidate in use, nothing is offered.
        let mut out = b.dhcp(4, MessageType::Discover, vec![], 62);
        let mut probes = 0;
        while let Some(p) = out.probe {
            probes += 1;
            out = b.probed(4, p, true, 62);
        }
        assert!(out.reply.is_none());
        assert!(probes <= 4, "{probes}");
    }

    #[test]
    fn decline_quarantines_and_release_frees() {
        let mut b = Bench::new(config());
        let a = b.dora(1, 0).unwrap();
        let out = b.dhcp(
            1,
            MessageType::Decline,
            vec![
                DhcpOption::RequestedIpAddress(a),
                DhcpOption::ServerIdentifier(SERVER),
            ],
            1,
        );
        assert!(out.reply.is_none());
        assert!(out.persist);
        assert_eq!(b.leases.get(a).unwrap().state, State::Declined);
        let other = b.dora(1, 2).unwrap();
        assert_ne!(other, a);
        // Quarantine over: the address is usable again.
        assert!(b.leases.free_for(a, Mac(mac(7)), unix_secs(at(601))));
        // RELEASE: the entry stays for affinity, the client gets the same address back.
        let mut p = packet(
            mac(1),
            MessageType::Release,
            vec![DhcpOption::ServerIdentifier(SERVER)],
        );
        p[12..16].copy_from_slice(&other.octets());
        let out = b.send(&p, SERVER_PORT, 3);
        assert!(out.reply.is_none() && out.persist);
        assert_eq!(b.leases.get(other).unwrap().state, State::Released);
        assert_eq!(b.dora(1, 4), Some(other));
    }

    #[test]
    fn reservations_only_ignores_strangers() {
        let mut c = config();
        c.mode = Mode::ReservationsOnly;
        let mut b = Bench::new(c);
        assert!(b.dhcp(1, MessageType::Discover, vec![], 0).reply.is_none());
        assert!(
            b.dhcp(
                1,
                MessageType::Request,
                vec![DhcpOption::RequestedIpAddress(Ipv4Addr::new(10, 0, 0, 100))],
                0
            )
            .reply
            .is_none()
        );
        assert_eq!(b.dora(9, 0), Some(Ipv4Addr::new(10, 0, 0, 10)));
    }

    #[test]
    fn relayed_requests_use_the_relay_subnet() {
        let mut b = Bench::new(config());
        let relay = Ipv4Addr::new(10, 1, 0, 1);
        let mut info = RelayAgentInformation::default();
        info.insert(RelayInfo::AgentCircuitId(b"port7".to_vec()));
        let mut p = packet(
            mac(1),
            MessageType::Discover,
            vec![DhcpOption::RelayAgentInformation(info.clone())],
        );
        p[24..28].copy_from_slice(&relay.octets());
        let r = b.send(&p, SERVER_PORT, 0).reply.unwrap();
        assert_eq!(r.to, SocketAddrV4::new(relay, SERVER_PORT));
        assert_eq!(r.message.yiaddr(), Ipv4Addr::new(10, 1, 0, 10));
        assert_eq!(r.message.giaddr(), relay);
        assert_eq!(
            r.message.opts().get(OptionCode::RelayAgentInformation),
            Some(&DhcpOption::RelayAgentInformation(info))
        );
        // A relay from an unknown subnet gets nothing.
        p[24..28].copy_from_slice(&[172, 16, 0, 1]);
        assert!(b.send(&p, SERVER_PORT, 0).reply.is_none());
    }

    #[test]
    fn proxy_mode_gives_boot_information_only() {
        let mut c = config();
        c.mode = Mode::Proxy;
        let mut b = Bench::new(c);
        let pxe = vec![
            arch(Architecture::X86_Bios),
            class("PXEClient:Arch:00000:UNDI:002001"),
        ];
        let out = b.dhcp(1, MessageType::Discover, pxe.clone(), 0);
        let r = out.reply.unwrap();
        assert_eq!(
            seen(&r),
            Seen {
                kind: MessageType::Offer,
                yiaddr: Ipv4Addr::UNSPECIFIED,
                to: BCAST,
                file: Some("undionly.kpxe".into()),
                siaddr: SERVER,
                class: Some(b"PXEClient".to_vec()),
                opt175: None,
            }
        );
        assert_eq!(
            r.message.opts().get(OptionCode::VendorExtensions),
            Some(&DhcpOption::VendorExtensions(vec![6, 1, 8, 255]))
        );
        assert!(r.message.opts().get(OptionCode::AddressLeaseTime).is_none());
        assert!(b.leases.is_empty());
        // iPXE gets its script from the proxy, without no-pxedhcp (iPXE would drop the offer).
        let ipxe_pxe = vec![
            arch(Architecture::X86_Bios),
            class("PXEClient:Arch:00000:UNDI:002001"),
            ipxe(),
        ];
        let r = b.dhcp(3, MessageType::Discover, ipxe_pxe, 0).reply.unwrap();
        assert_eq!(
            seen(&r).file.as_deref(),
            Some("http://10.0.0.1:8080/ipxe?mac=52-54-00-12-60-03")
        );
        assert_eq!(seen(&r).opt175, None);
        // Non-PXE clients and REQUESTs on port 67 are the other server's business.
        assert!(b.dhcp(2, MessageType::Discover, vec![], 0).reply.is_none());
        assert!(
            b.dhcp(1, MessageType::Request, pxe.clone(), 0)
                .reply
                .is_none()
        );
        // The boot request on port 4011 is answered to its source.
        let mut p = packet(mac(1), MessageType::Request, pxe);
        p[12..16].copy_from_slice(&[10, 0, 0, 150]);
        let req = Request::decode(
            &p,
            SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 150), 68),
            PROXY_PORT,
        )
        .unwrap();
        let r = respond(&b.policy, &mut b.leases, &req, at(1))
            .reply
            .unwrap();
        assert_eq!(r.kind(), Some(MessageType::Ack));
        assert_eq!(r.to, SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 150), 68));
        assert_eq!(seen(&r).file.as_deref(), Some("undionly.kpxe"));
    }

    #[test]
    fn off_mode_and_inform() {
        let mut c = config();
        c.mode = Mode::Off;
        let mut b = Bench::new(c);
        let out = b.dhcp(1, MessageType::Discover, vec![], 0);
        assert!(out.reply.is_none() && out.events.is_empty());

        let mut b = Bench::new(config());
        let mut p = packet(mac(1), MessageType::Inform, vec![]);
        p[12..16].copy_from_slice(&[10, 0, 0, 200]);
        let r = b.send(&p, SERVER_PORT, 0).reply.unwrap();
        assert_eq!(r.kind(), Some(MessageType::Ack));
        assert_eq!(
            r.to,
            SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 200), CLIENT_PORT)
        );
        assert!(r.message.opts().get(OptionCode::AddressLeaseTime).is_none());
        assert!(b.leases.is_empty());
    }

    #[test]
    fn many_clients_never_share_an_address() {
        let mut c = config();
        c.subnets[0].pool = Some(Range {
            start: Ipv4Addr::new(10, 0, 0, 20),
            end: Ipv4Addr::new(10, 0, 0, 60),
        });
        let mut b = Bench::new(c);
        // Interleaved DISCOVERs then REQUESTs, with some clients coming back, for 60 MACs
        // competing for 40 addresses.
        let mut offers = Vec::new();
        for n in 0..60u8 {
            if let Some(r) = b.dhcp(n, MessageType::Discover, vec![], u64::from(n)).reply {
                offers.push((n, r.message.yiaddr()));
            }
        }
        for (n, a) in offers {
            b.dhcp(
                n,
                MessageType::Request,
                vec![
                    DhcpOption::RequestedIpAddress(a),
                    DhcpOption::ServerIdentifier(SERVER),
                ],
                100,
            );
        }
        let bound: Vec<_> = b
            .leases
            .leases()
            .into_iter()
            .filter(|l| l.state == State::Bound)
            .collect();
        let mut addrs: Vec<_> = bound.iter().map(|l| l.addr).collect();
        addrs.sort();
        addrs.dedup();
        assert_eq!(addrs.len(), bound.len());
        assert!(bound.len() >= 39, "{}", bound.len());
        // The reserved address went to its owner only.
        assert!(
            bound
                .iter()
                .all(|l| (l.addr == Ipv4Addr::new(10, 0, 0, 10)) == (l.mac == Mac(mac(9))))
        );
    }

    /// Hostile bytes: random datagrams and mutations of valid ones must never panic.
    #[test]
    fn hostile_bytes_never_panic() {
        let mut b = Bench::new(config());
        let mut rng = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let seeds = [
            packet(
                mac(1),
                MessageType::Discover,
                vec![arch(Architecture::X64), ipxe()],
            ),
            packet(
                mac(2),
                MessageType::Request,
                vec![
                    DhcpOption::RequestedIpAddress(Ipv4Addr::new(10, 0, 0, 100)),
                    DhcpOption::ServerIdentifier(SERVER),
                ],
            ),
            packet(
                mac(3),
                MessageType::Decline,
                vec![DhcpOption::RequestedIpAddress(Ipv4Addr::new(10, 0, 0, 100))],
            ),
        ];
        let src = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 9), 68);
        let mut decoded = 0;
        for i in 0..30_000u64 {
            let bytes: Vec<u8> = if i % 3 == 0 {
                let len = (next() % 700) as usize;
                let mut v: Vec<u8> = (0..len).map(|_| next() as u8).collect();
                if v.len() >= 240 {
                    v[0] = 1;
                    v[1] = 1;
                    v[2] = 6;
                    v[236..240].copy_from_slice(&[99, 130, 83, 99]);
                }
                v
            } else {
                let mut v = seeds[(i % 3) as usize].clone();
                for _ in 0..(next() % 8) {
                    let pos = 236 + (next() as usize % (v.len() - 236));
                    v[pos] = next() as u8;
                }
                if next() % 4 == 0 {
                    v.truncate(240 + (next() as usize % (v.len() - 240)));
                }
                if next() % 4 == 0 {
                    // Huge option lists: many repeated options up to the size limit.
                    v.pop();
                    while v.len() < MAX_PACKET - 8 {
                        v.extend([(next() % 254 + 1) as u8, 2, next() as u8, next() as u8]);
                    }
                    v.push(255);
                }
                v
            };
            let port = if i % 5 == 0 { PROXY_PORT } else { SERVER_PORT };
            if let Ok(req) = Request::decode(&bytes, src, port) {
                decoded += 1;
                let out = respond(&b.policy, &mut b.leases, &req, at(i / 100));
                if let Some(r) = out.reply {
                    let _ = r.encode();
                }
            }
        }
        assert!(decoded > 1000, "{decoded}");
    }

    proptest::proptest! {
        /// Any sequence of DISCOVER / REQUEST / DECLINE / RELEASE from 12 clients competing for
        /// a pool of 4 (plus one reservation) keeps the table's invariants: no address held by
        /// two MACs, every ACK matches the table, a reserved address only for its owner.
        #[test]
        fn random_sequences_keep_the_invariants(
            ops in proptest::collection::vec((0u8..12, 0u8..5, 0u8..6, 0u64..400), 1..200)
        ) {
            let mut b = Bench::new(config());
            let mut t = 0;
            for (n, kind, a, dt) in ops {
                t += dt;
                let addr = Ipv4Addr::new(10, 0, 0, if a == 5 { 10 } else { 100 + a });
                let out = match kind {
                    0 => b.dhcp(n, MessageType::Discover, vec![], t),
                    1 => b.dhcp(n, MessageType::Request, vec![
                        DhcpOption::RequestedIpAddress(addr),
                        DhcpOption::ServerIdentifier(SERVER),
                    ], t),
                    2 => b.dhcp(n, MessageType::Request, vec![DhcpOption::RequestedIpAddress(addr)], t),
                    3 => b.dhcp(n, MessageType::Decline, vec![DhcpOption::RequestedIpAddress(addr)], t),
                    _ => {
                        let mut p = packet(mac(n), MessageType::Release, vec![]);
                        p[12..16].copy_from_slice(&addr.octets());
                        b.send(&p, SERVER_PORT, t)
                    }
                };
                let now = unix_secs(at(t));
                if let Some(r) = out.reply.filter(|r| r.kind() == Some(MessageType::Ack)) {
                    let l = b.leases.get(r.message.yiaddr()).unwrap();
                    proptest::prop_assert_eq!(l.mac, Mac(mac(n)));
                    proptest::prop_assert_eq!(l.state, State::Bound);
                }
                let mut held = std::collections::HashMap::new();
                for l in b.leases.leases() {
                    if l.state == State::Bound && l.active(now) {
                        proptest::prop_assert!(held.insert(l.mac, l.addr).is_none(), "{} holds two", l.mac);
                        if l.addr == Ipv4Addr::new(10, 0, 0, 10) {
                            proptest::prop_assert_eq!(l.mac, Mac(mac(9)));
                        }
                    }
                    // The table is keyed by address, so one entry per address holds by
                    // construction; the MAC index must agree with it.
                    if l.state != State::Declined {
                        proptest::prop_assert_eq!(b.leases.for_mac(l.mac).map(|x| x.addr), Some(l.addr));
                    }
                }
            }
        }
    }
}
