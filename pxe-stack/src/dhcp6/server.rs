//! The tokio server: datagrams between the socket and [`respond`], the lease file written
//! before any Reply that binds leaves.

use std::future::Future;
use std::io;
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;

use super::config::{Config, Policy};
use super::error::Error;
use super::leases::{Lease6, LeaseFile6, LeaseTable6, Leases6, State6, unix_secs};
use super::packet::{MAX_PACKET, Reply6, Request};
use super::respond::respond;
use crate::store::{Committed, Keeper, LeaseStore};
use crate::{Discard, Event, EventSink};

/// Datagrams handled per batch before the lease file is written and the replies sent.
const BATCH: usize = 256;
/// How often expired leases are swept out.
const SWEEP: Duration = Duration::from_secs(30);
/// How often a server sharing its lease store takes in what the other servers bound.
const REFRESH: Duration = Duration::from_secs(5);
/// All_DHCP_Relay_Agents_and_Servers.
pub const ALL_SERVERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 1, 2);

/// Bind a DHCPv6 server socket: UDP on `[::]:port` (IPv6 only), tied to `interface`
/// (SO_BINDTODEVICE) and joined to `ff02::1:2` there when given. Must be called inside a
/// tokio runtime. Port 547 needs `CAP_NET_BIND_SERVICE`.
pub fn bind(interface: Option<&str>, port: u16) -> Result<UdpSocket, Error> {
    let fail = |source: io::Error| Error::Bind {
        interface: interface.unwrap_or("*").to_owned(),
        port,
        source,
    };
    let s = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP)).map_err(fail)?;
    s.set_only_v6(true).map_err(fail)?;
    s.set_reuse_address(true).map_err(fail)?;
    let _ = s.set_recv_buffer_size(4 << 20);
    if let Some(ifname) = interface {
        s.bind_device(Some(ifname.as_bytes())).map_err(fail)?;
        let index = nix::net::if_::if_nametoindex(ifname).map_err(|e| fail(e.into()))?;
        s.join_multicast_v6(&ALL_SERVERS, index).map_err(fail)?;
    }
    s.set_nonblocking(true).map_err(fail)?;
    s.bind(&SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, port, 0, 0).into())
        .map_err(fail)?;
    UdpSocket::from_std(s.into()).map_err(fail)
}

/// The DHCPv6 server: a socket, a lease table, a lease file and an event sink. Build with
/// [`Server::new`], then [`serve`](Server::serve).
pub struct Server {
    policy: Arc<Policy>,
    leases: Leases6,
    store: Option<Keeper<Lease6, Error>>,
    events: Arc<dyn EventSink>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("policy", &self.policy)
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// A server for `config`, with no lease file and no event sink. Fails when the
    /// configuration does not hold together (see [`Policy::new`]).
    pub fn new(config: Config) -> Result<Server, Error> {
        Ok(Server {
            policy: Arc::new(Policy::new(config)?),
            leases: Leases6::default(),
            store: None,
            events: Arc::new(Discard),
        })
    }

    /// Persist leases in `file`, loading what it holds now.
    pub fn with_lease_file(self, file: LeaseFile6) -> Result<Server, Error> {
        let loaded = LeaseTable6::from_leases(file.load()?);
        {
            let mut table = self.leases.write();
            for lease in loaded.leases() {
                table.insert(lease);
            }
            table.take_changes();
            // Rewritten at once: the journal starts empty, and a file that cannot be written
            // fails here, at startup.
            file.save(&table.persistent())?;
        }
        Ok(Server {
            store: Some(Keeper::new(Arc::new(file), "bindings of new leases")),
            ..self
        })
    }

    /// Keep leases in `store`, loading what it holds now; for a shared store, pool searches
    /// start at an address hashed from the MAC from then on.
    ///
    /// # Errors
    /// What [`LeaseStore::load`] returns.
    pub async fn with_lease_store(
        self,
        store: Arc<dyn LeaseStore<Lease6, Error = Error>>,
    ) -> Result<Server, Error> {
        let loaded = store.load().await?;
        {
            let mut table = self.leases.write();
            for lease in loaded {
                if lease.state != State6::Offered {
                    table.absorb(lease);
                }
            }
            table.set_hashed_start(store.shared());
        }
        Ok(Server {
            store: Some(Keeper::new(store, "bindings of new leases")),
            ..self
        })
    }

    /// Send per-MAC events to `sink`.
    pub fn with_events(self, sink: Arc<dyn EventSink>) -> Server {
        Server {
            events: sink,
            ..self
        }
    }

    /// The lease table handle: a [`HostLookup`](crate::HostLookup) for the HTTP server.
    pub fn leases(&self) -> Leases6 {
        self.leases.clone()
    }

    /// Serves requests arriving on `socket` (see [`bind`]) until `shutdown` completes, then
    /// writes the lease file.
    pub async fn serve(
        self,
        socket: UdpSocket,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), Error> {
        tokio::pin!(shutdown);
        let mut buf = vec![0u8; MAX_PACKET + 1];
        let mut sweep = tokio::time::interval(SWEEP);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let shared = self.store.as_ref().is_some_and(|k| k.store.shared());
        let mut refresh = tokio::time::interval(REFRESH);
        refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let mut batch = Batch::default();
            tokio::select! {
                _ = &mut shutdown => break,
                r = socket.recv_from(&mut buf) => self.take(r, &buf, &mut batch),
                _ = sweep.tick() => {
                    batch.persist = self.leases.write().expire(unix_secs(SystemTime::now()));
                }
                _ = refresh.tick(), if shared => {
                    if let Some(store) = &self.store {
                        store.refresh(&self.leases).await;
                    }
                }
            }
            while batch.seen < BATCH {
                match socket.try_recv_from(&mut buf) {
                    Ok(r) => self.take(Ok(r), &buf, &mut batch),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => {
                        tracing::debug!(error = %e, "dhcpv6 receive failed");
                        break;
                    }
                }
            }
            self.finish(&socket, batch).await;
        }
        if let Some(store) = &self.store {
            store
                .flush(&self.leases, self.subnets(), unix_secs(SystemTime::now()))
                .await?;
        }
        Ok(())
    }

    /// The server's links, for the store to keep addresses unique per link.
    fn subnets(&self) -> Vec<(std::net::IpAddr, u8)> {
        let subnets = &self.policy.config().subnets;
        subnets
            .iter()
            .map(|s| (std::net::IpAddr::V6(s.prefix), s.prefix_len))
            .collect()
    }

    fn take(&self, r: io::Result<(usize, SocketAddr)>, buf: &[u8], batch: &mut Batch) {
        batch.seen += 1;
        let (n, src) = match r {
            Ok(x) => x,
            Err(e) => {
                tracing::debug!(error = %e, "dhcpv6 receive failed");
                return;
            }
        };
        let SocketAddr::V6(src) = src else { return };
        if n > MAX_PACKET {
            tracing::debug!(%src, len = n, "dropping oversized datagram");
            return;
        }
        let req = match Request::decode(&buf[..n], src) {
            Ok(r) => r,
            Err(why) => {
                tracing::debug!(%src, reason = %why, "dropping datagram");
                return;
            }
        };
        let out = {
            let mut table = self.leases.write();
            respond(&self.policy, &mut table, &req, SystemTime::now())
        };
        batch.persist |= out.persist;
        batch.events.extend(out.events);
        if let Some(reply) = out.reply {
            let req = out.persist.then(|| req.clone());
            batch.replies.push((reply, req));
        }
    }

    async fn finish(&self, socket: &UdpSocket, batch: Batch) {
        let Batch {
            persist,
            mut replies,
            events,
            ..
        } = batch;
        // Advertisements and answers that bind nothing promise nothing: send them first.
        for (reply, _) in replies.iter().filter(|r| r.1.is_none()) {
            send(socket, reply).await;
        }
        replies.retain(|r| r.1.is_some());
        if persist && let Some(store) = &self.store {
            let now = unix_secs(SystemTime::now());
            match store
                .commit_changes(&self.leases, self.subnets(), now)
                .await
            {
                Committed::Stored { refused, changes } => {
                    if !refused.is_empty() {
                        self.decide_again(refused, &changes, &mut replies);
                    }
                }
                Committed::Down { changes, renewals } => {
                    // A Reply for a lease that is not stored could be handed out twice: send
                    // none, the clients retry; only renewals of leases the store confirmed go
                    // out, when it allows that.
                    // A renewal is a Renew or Rebind: the host uses the address, so no server
                    // can have moved it meanwhile. A Request is not one, even for an address
                    // this server once bound: the host may have been bound elsewhere since.
                    let renewal = |req: &Option<Request>| {
                        let Some(r) = req.as_ref() else {
                            return false;
                        };
                        if !matches!(
                            r.message.msg_type(),
                            dhcproto::v6::MessageType::Renew | dhcproto::v6::MessageType::Rebind
                        ) {
                            return false;
                        }
                        let Some((mac, _)) = r.mac else {
                            return false;
                        };
                        let mine: Vec<_> = changes
                            .iter()
                            .filter(|c| c.after.as_ref().is_some_and(|l| l.mac == mac))
                            .collect();
                        !mine.is_empty()
                            && mine.iter().all(|c| {
                                c.before.as_ref().is_some_and(|b| {
                                    b.state == State6::Bound && b.mac == mac && b.expires > now
                                })
                            })
                    };
                    replies.retain(|(_, req)| renewals && renewal(req));
                    for (reply, _) in &replies {
                        send(socket, reply).await;
                    }
                    // The batch's events describe replies that were not sent: dropped.
                    return;
                }
            }
        }
        for (reply, _) in &replies {
            send(socket, reply).await;
        }
        for e in events {
            self.events.emit(e);
        }
    }

    /// The store refused some bindings: another server's host holds those addresses. Take its
    /// entries in and decide again the requests of the hosts whose bindings were refused; an
    /// answer that would bind something again waits for the client's retry.
    fn decide_again(
        &self,
        refused: Vec<crate::store::RefusedBinding<Lease6>>,
        changes: &[crate::store::Change<Lease6>],
        replies: &mut Vec<(Reply6, Option<Request>)>,
    ) {
        let losers: std::collections::HashSet<crate::Mac> = refused
            .iter()
            .filter_map(|r| {
                changes
                    .iter()
                    .find(|c| c.addr == r.addr)
                    .and_then(|c| c.after.as_ref())
                    .map(|l| l.mac)
            })
            .collect();
        let mut table = self.leases.write();
        for r in refused {
            // What this server put at the address is not stored: it goes, and the store's
            // row in the way comes in.
            table.discard(r.addr);
            if let Some(holder) = r.holder {
                tracing::info!(addr = %r.addr, holder = %holder.mac, at = %holder.addr, "dhcpv6 lease store: address already bound by another server");
                table.absorb(holder);
            }
        }
        let now = SystemTime::now();
        replies.retain_mut(|(reply, req)| {
            let Some(request) = req.as_ref() else {
                return true;
            };
            if !request.mac.is_some_and(|(m, _)| losers.contains(&m)) {
                return true;
            }
            let out = respond(&self.policy, &mut table, request, now);
            match out.reply {
                Some(again) if !out.persist => {
                    *reply = again;
                    *req = None;
                    true
                }
                _ => false,
            }
        });
    }
}

async fn send(sock: &UdpSocket, reply: &Reply6) {
    let Some(bytes) = reply.encode() else {
        tracing::debug!(to = %reply.to, "reply does not encode");
        return;
    };
    if let Err(e) = sock.send_to(&bytes, reply.to).await {
        tracing::debug!(to = %reply.to, error = %e, "dhcpv6 send failed");
    }
}

#[derive(Default)]
struct Batch {
    seen: usize,
    persist: bool,
    /// Replies and, for those that wait for the lease store, their request (to decide again
    /// if the store refuses the binding).
    replies: Vec<(Reply6, Option<Request>)>,
    events: Vec<Event>,
}
