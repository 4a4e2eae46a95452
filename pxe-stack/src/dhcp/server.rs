//! The tokio server: moves datagrams between the socket and [`respond`], persisting leases
//! before any ACK leaves, and runs the ping probes [`respond`] asks for in tasks of their own.

use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use socket2::{Domain, Protocol, SockRef, Socket, Type};
use tokio::net::UdpSocket;
use tokio::task::JoinSet;

use super::config::{Config, Policy};
use super::error::Error;
use super::leases::Lease;
use super::leases::{LeaseTable, Leases, unix_secs};
use super::packet::{MAX_PACKET, Request};
use super::probe::Prober;
use super::respond::{PROXY_PORT, Reply, SERVER_PORT, probed, respond};
use super::store::{LeaseFile, LeaseStore};
use crate::store::{Committed, Keeper, RefusedBinding};
use crate::{Discard, EventSink};

/// Datagrams handled per batch before the lease file is written and the replies sent.
const BATCH: usize = 256;
/// How often expired leases are swept out.
const SWEEP: Duration = Duration::from_secs(30);
/// How often a server sharing its lease store takes in what the other servers bound.
const REFRESH: Duration = Duration::from_secs(5);
/// Ping probes per DISCOVER before the server gives up on it (the client retries). Addresses
/// that answer cost one round trip each; the first silent one ends the search.
const MAX_PROBES: usize = 8;

/// Bind a DHCP server socket: UDP on `0.0.0.0:port`, tied to `interface` (SO_BINDTODEVICE) when
/// given, with SO_BROADCAST and SO_REUSEADDR. Must be called inside a tokio runtime.
///
/// Port 67 needs `CAP_NET_BIND_SERVICE`, and SO_BINDTODEVICE needs `CAP_NET_RAW` on kernels
/// before 5.7; a permission error names the missing one in [`Error::Bind`].
pub fn bind(interface: Option<&str>, port: u16) -> Result<UdpSocket, Error> {
    let fail = |hint: Option<&'static str>| {
        move |source: io::Error| {
            let perm = matches!(source.kind(), io::ErrorKind::PermissionDenied)
                || source.raw_os_error() == Some(1);
            Error::Bind {
                interface: interface.unwrap_or("*").to_owned(),
                port,
                hint: if perm { hint } else { None },
                source,
            }
        }
    };
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).map_err(fail(None))?;
    s.set_reuse_address(true).map_err(fail(None))?;
    s.set_broadcast(true).map_err(fail(None))?;
    // Boot storms arrive in bursts; a larger buffer rides them out while a batch is on disk.
    let _ = s.set_recv_buffer_size(4 << 20);
    if let Some(ifname) = interface {
        s.bind_device(Some(ifname.as_bytes()))
            .map_err(fail(Some("CAP_NET_RAW")))?;
    }
    s.set_nonblocking(true).map_err(fail(None))?;
    s.bind(&SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port).into())
        .map_err(fail(Some("CAP_NET_BIND_SERVICE")))?;
    UdpSocket::from_std(s.into()).map_err(fail(None))
}

/// The DHCP server: one socket (port 67), optionally a ProxyDHCP socket (port 4011), a lease
/// table, a lease file and an event sink; with
/// [`Config::ping_probe_ms`](super::Config::ping_probe_ms) set, also an ICMP socket on the same
/// interface. Build with [`Server::new`], then [`serve`](Server::serve).
pub struct Server {
    policy: Arc<Policy>,
    proxy_socket: Option<UdpSocket>,
    leases: Leases,
    store: Option<Keeper<Lease, Error>>,
    events: Arc<dyn EventSink>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("policy", &self.policy)
            .field("proxy_socket", &self.proxy_socket)
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

/// A server while it serves: what [`Server`] was built with, plus its sockets.
struct Running {
    policy: Arc<Policy>,
    socket: Arc<UdpSocket>,
    proxy_socket: Option<UdpSocket>,
    leases: Leases,
    store: Option<Keeper<Lease, Error>>,
    events: Arc<dyn EventSink>,
    prober: Option<Arc<Prober>>,
    /// The interface the socket is bound to (`*` for none), for the per-exchange log.
    iface: String,
}

impl Server {
    /// A server for `config`, with no lease file and no event sink. Fails when the
    /// configuration does not hold together (see [`Policy::new`]).
    pub fn new(config: Config) -> Result<Server, Error> {
        Ok(Server {
            policy: Arc::new(Policy::new(config)?),
            proxy_socket: None,
            leases: Leases::default(),
            store: None,
            events: Arc::new(Discard),
        })
    }

    /// Persist leases in `file`, loading what it holds now.
    ///
    /// The table is written back at once, so a lease file that cannot be written (a missing
    /// directory, no permission, a read-only file system) fails here with
    /// [`Error::LeaseFile`], at startup, instead of withholding every ACK later.
    pub fn with_lease_file(mut self, file: LeaseFile) -> Result<Server, Error> {
        let loaded = LeaseTable::from_leases(file.load()?);
        let mut table = self.leases.write();
        for lease in loaded.leases() {
            table.insert(lease);
        }
        let snapshot = table.persistent();
        table.take_changes();
        drop(table);
        file.save(&snapshot)?;
        self.store = Some(Keeper::new(Arc::new(file), "ACKs of new leases"));
        Ok(self)
    }

    /// Keep leases in `store`, loading what it holds now; for a [shared](LeaseStore::shared)
    /// store, pool searches start at an address hashed from the client from then on.
    ///
    /// # Errors
    /// What [`LeaseStore::load`] returns: a store that cannot be read at startup is an error
    /// here, not a server that ACKs nothing.
    pub async fn with_lease_store(
        mut self,
        store: Arc<dyn LeaseStore<Lease, Error = Error>>,
    ) -> Result<Server, Error> {
        let loaded = store.load().await?;
        let mut table = self.leases.write();
        for lease in loaded {
            if lease.state != super::leases::State::Offered {
                table.absorb(lease);
            }
        }
        table.set_hashed_start(store.shared());
        drop(table);
        self.store = Some(Keeper::new(store, "ACKs of new leases"));
        Ok(self)
    }

    /// Use (and share) an existing lease table handle, for example one the HTTP server already
    /// holds. Call before [`with_lease_file`](Server::with_lease_file).
    pub fn with_leases(mut self, leases: Leases) -> Server {
        self.leases = leases;
        self
    }

    /// Send per-MAC events to `sink`.
    pub fn with_events(mut self, sink: Arc<dyn EventSink>) -> Server {
        self.events = sink;
        self
    }

    /// Serve ProxyDHCP boot requests on this socket (bound to port 4011).
    pub fn with_proxy_socket(mut self, socket: UdpSocket) -> Server {
        self.proxy_socket = Some(socket);
        self
    }

    /// The lease table handle: a [`HostLookup`](crate::HostLookup), and where
    /// [`Leases::mark_chained`] is called.
    pub fn leases(&self) -> Leases {
        self.leases.clone()
    }

    /// Serves requests arriving on `socket` (see [`bind`]) until `shutdown` completes, then
    /// writes the lease file. Returns an error when the lease file cannot be written at
    /// shutdown or a socket fails for good.
    ///
    /// With [`Config::ping_probe_ms`](super::Config::ping_probe_ms) set this first opens the
    /// ICMP socket for the probes, tied to the interface `socket` is bound to; without
    /// `CAP_NET_RAW` (and without a `net.ipv4.ping_group_range` that admits the server) that
    /// fails with [`Error::Bind`] naming the capability.
    pub async fn serve(
        self,
        socket: UdpSocket,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), Error> {
        socket.set_broadcast(true)?;
        let iface = SockRef::from(&socket).device().ok().flatten().map_or_else(
            || "*".to_owned(),
            |d| String::from_utf8_lossy(&d).into_owned(),
        );
        let prober = match self.policy.config().ping_probe_ms {
            Some(_) => {
                let device = SockRef::from(&socket).device()?;
                let prober = Prober::new(device.as_deref()).map_err(|source| {
                    let perm = source.kind() == io::ErrorKind::PermissionDenied
                        || source.raw_os_error() == Some(1);
                    Error::Bind {
                        interface: device
                            .as_deref()
                            .map_or("*".into(), |d| String::from_utf8_lossy(d).into_owned()),
                        port: 0,
                        hint: perm.then_some("CAP_NET_RAW"),
                        source,
                    }
                })?;
                Some(Arc::new(prober))
            }
            None => None,
        };
        Running {
            policy: self.policy,
            socket: Arc::new(socket),
            proxy_socket: self.proxy_socket,
            leases: self.leases,
            store: self.store,
            events: self.events,
            prober,
            iface,
        }
        .run(shutdown)
        .await
    }
}

impl Running {
    async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
        tokio::pin!(shutdown);
        let mut buf = vec![0u8; MAX_PACKET + 1];
        let mut pbuf = vec![0u8; MAX_PACKET + 1];
        let mut sweep = tokio::time::interval(SWEEP);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let shared = self.store.as_ref().is_some_and(|k| k.store.shared());
        let mut refresh = tokio::time::interval(REFRESH);
        refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Probes run as tasks of their own, so a DISCOVER waiting for its echo reply holds up
        // nobody else; dropping the set at shutdown aborts them, with the receive task.
        let mut probes = JoinSet::new();
        if let Some(prober) = &self.prober {
            let prober = prober.clone();
            probes.spawn(async move { prober.receive().await });
        }
        loop {
            let mut batch = Batch::default();
            tokio::select! {
                _ = &mut shutdown => break,
                r = self.socket.recv_from(&mut buf) => {
                    self.take(r, &buf, SERVER_PORT, &mut batch);
                }
                r = recv_opt(self.proxy_socket.as_ref(), &mut pbuf) => {
                    self.take(r, &pbuf, PROXY_PORT, &mut batch);
                }
                _ = sweep.tick() => {
                    batch.persist = self.leases.write().expire(unix_secs(SystemTime::now()));
                }
                _ = refresh.tick(), if shared => {
                    if let Some(store) = &self.store {
                        store.refresh(&self.leases).await;
                    }
                }
            }
            // Whatever queued up meanwhile joins this batch: one lease-file write covers it.
            for sock_port in [SERVER_PORT, PROXY_PORT] {
                let sock = if sock_port == SERVER_PORT {
                    Some(&*self.socket)
                } else {
                    self.proxy_socket.as_ref()
                };
                let Some(sock) = sock else { continue };
                while batch.seen < BATCH {
                    match sock.try_recv_from(&mut buf) {
                        Ok(r) => self.take(Ok(r), &buf, sock_port, &mut batch),
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => {
                            tracing::debug!(error = %e, "dhcp receive failed");
                            break;
                        }
                    }
                }
            }
            let waiting = std::mem::take(&mut batch.probes);
            self.finish(batch).await;
            // After finish, so each DISCOVER event is out before its OFFER event can be.
            for (req, addr) in waiting {
                match self.probe_job() {
                    Some(job) => {
                        probes.spawn(job.run(req, addr));
                    }
                    None => tracing::debug!(mac = %req.mac, "probe asked for without a prober"),
                }
            }
            while probes.try_join_next().is_some() {}
        }
        if let Some(store) = &self.store {
            store
                .flush(&self.leases, self.subnets(), unix_secs(SystemTime::now()))
                .await?;
        }
        Ok(())
    }

    /// The server's subnets, for the store to keep addresses unique per subnet.
    fn subnets(&self) -> Vec<(std::net::IpAddr, u8)> {
        let subnets = &self.policy.config().subnets;
        subnets
            .iter()
            .map(|s| (std::net::IpAddr::V4(s.network), s.prefix_len))
            .collect()
    }

    fn take(&self, r: io::Result<(usize, SocketAddr)>, buf: &[u8], port: u16, batch: &mut Batch) {
        batch.seen += 1;
        let (n, src) = match r {
            Ok(x) => x,
            Err(e) => {
                tracing::debug!(error = %e, "dhcp receive failed");
                return;
            }
        };
        let SocketAddr::V4(src) = src else { return };
        if n > MAX_PACKET {
            tracing::debug!(%src, len = n, "dropping oversized datagram");
            return;
        }
        let req = match Request::decode(&buf[..n], src, port) {
            Ok(r) => r,
            Err(why) => {
                tracing::debug!(%src, reason = %why, "dropping datagram");
                return;
            }
        };
        let now = SystemTime::now();
        let out = {
            let mut table = self.leases.write();
            respond(&self.policy, &mut table, &req, now)
        };
        log_exchange(&self.iface, &req, &out);
        batch.persist |= out.persist;
        batch.events.extend(out.events);
        if let Some(reply) = out.reply {
            let req = out.persist.then(|| req.clone());
            batch.replies.push((port, reply, req));
        }
        if let Some(addr) = out.probe {
            batch.probes.push((req, addr));
        }
    }

    fn probe_job(&self) -> Option<ProbeJob> {
        Some(ProbeJob {
            policy: self.policy.clone(),
            leases: self.leases.clone(),
            socket: self.socket.clone(),
            events: self.events.clone(),
            prober: self.prober.clone()?,
            wait: Duration::from_millis(u64::from(self.policy.config().ping_probe_ms?)),
            iface: self.iface.clone(),
        })
    }

    async fn finish(&self, batch: Batch) {
        let Batch {
            persist,
            mut replies,
            events,
            ..
        } = batch;
        // OFFERs and NAKs promise nothing that must survive a restart: send them first.
        for (port, reply, _) in replies.iter().filter(|r| r.2.is_none()) {
            self.send(*port, reply).await;
        }
        replies.retain(|r| r.2.is_some());
        if persist && let Some(store) = &self.store {
            let now = unix_secs(SystemTime::now());
            match store
                .commit_changes(&self.leases, self.subnets(), now)
                .await
            {
                Committed::Stored { refused, .. } => {
                    if !refused.is_empty() {
                        self.decide_again(refused, &mut replies);
                    }
                }
                Committed::Down { changes, renewals } => {
                    // An ACK for a lease that is not stored could be handed out twice (after a
                    // restart, or by another server): send none, the clients retry; only
                    // renewals of leases the store confirmed go out, when it allows that.
                    // A renewal is a client in RENEWING or REBINDING state: it uses the address
                    // (ciaddr), so no server can have moved it meanwhile. A REQUEST for an
                    // address this server once bound is not one: the client may have been
                    // bound elsewhere since, and the store may have given the address away.
                    let confirmed = |reply: &Reply, req: &Option<Request>| {
                        let addr = reply.message.yiaddr();
                        let Some(req) = req.as_ref() else {
                            return false;
                        };
                        let mac = req.mac;
                        req.message.ciaddr() == addr
                            && changes.iter().any(|c| {
                                c.addr == addr
                                    && c.before.as_ref().is_some_and(|l| {
                                        l.state == super::leases::State::Bound
                                            && l.mac == mac
                                            && l.expires > now
                                    })
                            })
                    };
                    replies.retain(|(_, reply, req)| renewals && confirmed(reply, req));
                    tracing::debug!(
                        sent = replies.len(),
                        "renewals ACKed without the lease store"
                    );
                    for (port, reply, _) in &replies {
                        self.send(*port, reply).await;
                    }
                    // The batch's events describe ACKs that were not sent: they are dropped.
                    return;
                }
            }
        }
        for (port, reply, _) in &replies {
            self.send(*port, reply).await;
        }
        for e in events {
            self.events.emit(e);
        }
    }

    /// The store refused some bindings: another server's client holds those addresses. Take
    /// its entries in and decide those requests again (a NAK now, or nothing); an answer that
    /// would bind something new again waits for the client's retry.
    fn decide_again(
        &self,
        refused: Vec<RefusedBinding<Lease>>,
        replies: &mut Vec<(u16, Reply, Option<Request>)>,
    ) {
        let taken: std::collections::HashSet<Ipv4Addr> = refused.iter().map(|r| r.addr).collect();
        let mut table = self.leases.write();
        for r in refused {
            // What this server put at the address is not stored: it goes, and the store's
            // row in the way comes in.
            table.discard(r.addr);
            if let Some(holder) = r.holder {
                tracing::info!(addr = %r.addr, holder = %holder.mac, at = %holder.addr, "lease store: address already bound by another server");
                table.absorb(holder);
            }
        }
        let now = SystemTime::now();
        replies.retain_mut(|(_, reply, req)| {
            if !taken.contains(&reply.message.yiaddr()) {
                return true;
            }
            let Some(request) = req.take() else {
                return true;
            };
            let out = respond(&self.policy, &mut table, &request, now);
            log_exchange(&self.iface, &request, &out);
            match out.reply {
                Some(again) if !out.persist => {
                    *reply = again;
                    true
                }
                // Nothing to say, or another binding: the client retries.
                _ => false,
            }
        });
    }

    async fn send(&self, port: u16, reply: &Reply) {
        let sock = match (port, &self.proxy_socket) {
            (PROXY_PORT, Some(p)) => p,
            _ => &self.socket,
        };
        send(sock, reply).await;
    }
}

async fn send(sock: &UdpSocket, reply: &Reply) {
    let Some(bytes) = reply.encode() else {
        tracing::debug!(to = %reply.to, "reply does not encode");
        return;
    };
    if let Err(e) = sock.send_to(&bytes, reply.to).await {
        tracing::debug!(to = %reply.to, error = %e, "dhcp send failed");
    }
}

/// One info line per step of an exchange, in dnsmasq's words (`DHCPDISCOVER(br0) 52:54:..`,
/// `DHCPOFFER(br0) 10.0.0.5 52:54:..`, `DHCPACK(br0) 10.0.0.5 52:54:.. master-0`), and why a
/// request was left unanswered. Written whether or not an event sink is wired; nothing is
/// formatted unless the `pxe_stack::dhcp` target is enabled at info.
fn log_exchange(iface: &str, req: &Request, out: &super::respond::Verdict) {
    if !tracing::enabled!(tracing::Level::INFO) {
        return;
    }
    let mac = req.mac;
    for e in &out.events {
        let crate::EventKind::Dhcp { step, yiaddr, .. } = &e.kind else {
            continue;
        };
        let ip = yiaddr.map(|a| a.to_string()).unwrap_or_default();
        let sep = if ip.is_empty() { "" } else { " " };
        match step {
            crate::DhcpStep::Discover => tracing::info!("DHCPDISCOVER({iface}) {mac}"),
            crate::DhcpStep::Offer => tracing::info!("DHCPOFFER({iface}) {ip}{sep}{mac}"),
            crate::DhcpStep::Request => tracing::info!("DHCPREQUEST({iface}) {ip}{sep}{mac}"),
            crate::DhcpStep::Ack => {
                let name = out
                    .reply
                    .as_ref()
                    .and_then(
                        |r| match r.message.opts().get(dhcproto::v4::OptionCode::Hostname) {
                            Some(dhcproto::v4::DhcpOption::Hostname(h)) => Some(h.as_str()),
                            _ => None,
                        },
                    )
                    .or(req.hostname())
                    .unwrap_or("");
                let gap = if name.is_empty() { "" } else { " " };
                tracing::info!("DHCPACK({iface}) {ip}{sep}{mac}{gap}{name}");
            }
            crate::DhcpStep::Nak => {
                tracing::info!("DHCPNAK({iface}) {ip}{sep}{mac} address not available")
            }
            crate::DhcpStep::Decline => tracing::info!("DHCPDECLINE({iface}) {ip}{sep}{mac}"),
            crate::DhcpStep::Release => tracing::info!("DHCPRELEASE({iface}) {ip}{sep}{mac}"),
            crate::DhcpStep::Inform => tracing::info!("DHCPINFORM({iface}) {ip}{sep}{mac}"),
        }
    }
    if let Some(why) = out.ignored {
        let kind = match req.kind {
            dhcproto::v4::MessageType::Discover => "DHCPDISCOVER",
            dhcproto::v4::MessageType::Request => "DHCPREQUEST",
            dhcproto::v4::MessageType::Decline => "DHCPDECLINE",
            dhcproto::v4::MessageType::Release => "DHCPRELEASE",
            dhcproto::v4::MessageType::Inform => "DHCPINFORM",
            _ => "DHCP",
        };
        tracing::info!("{kind}({iface}) {mac} ignored: {why}");
    }
}

/// One DISCOVER waiting for ping probes, with what it needs of the server.
struct ProbeJob {
    policy: Arc<Policy>,
    leases: Leases,
    socket: Arc<UdpSocket>,
    events: Arc<dyn EventSink>,
    prober: Arc<Prober>,
    wait: Duration,
    iface: String,
}

impl ProbeJob {
    /// Probe `addr`, then whatever [`probed`] picks next, until an offer goes out (or the
    /// pool runs dry, or [`MAX_PROBES`] addresses answered).
    async fn run(self, req: Request, mut addr: Ipv4Addr) {
        for _ in 0..MAX_PROBES {
            let in_use = self.prober.ping(addr, self.wait).await;
            let out = {
                let mut table = self.leases.write();
                probed(
                    &self.policy,
                    &mut table,
                    &req,
                    addr,
                    in_use,
                    SystemTime::now(),
                )
            };
            log_exchange(&self.iface, &req, &out);
            // Offers promise nothing that must survive a restart: no lease-file write first.
            if let Some(reply) = &out.reply {
                send(&self.socket, reply).await;
            }
            for e in out.events {
                self.events.emit(e);
            }
            match out.probe {
                Some(next) => addr = next,
                None => return,
            }
        }
        tracing::debug!(mac = %req.mac, "every probed address answered; no offer");
    }
}

#[derive(Default)]
struct Batch {
    seen: usize,
    persist: bool,
    /// Replies with the port they answer and, for those that wait for the lease store (ACKs),
    /// the request, to decide again if the store refuses the binding.
    replies: Vec<(u16, Reply, Option<Request>)>,
    events: Vec<crate::Event>,
    /// DISCOVERs whose offer waits for a ping probe of this address.
    probes: Vec<(Request, Ipv4Addr)>,
}

async fn recv_opt(sock: Option<&UdpSocket>, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
    match sock {
        Some(s) => s.recv_from(buf).await,
        None => std::future::pending().await,
    }
}
