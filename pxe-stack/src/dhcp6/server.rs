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
use super::leases::{LeaseFile6, LeaseTable6, Leases6, unix_secs};
use super::packet::{MAX_PACKET, Reply6, Request};
use super::respond::respond;
use crate::{Discard, Event, EventSink};

/// Datagrams handled per batch before the lease file is written and the replies sent.
const BATCH: usize = 256;
/// How often expired leases are swept out.
const SWEEP: Duration = Duration::from_secs(30);
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
    store: Option<LeaseFile6>,
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
        }
        Ok(Server {
            store: Some(file),
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
        loop {
            let mut batch = Batch::default();
            tokio::select! {
                _ = &mut shutdown => break,
                r = socket.recv_from(&mut buf) => self.take(r, &buf, &mut batch),
                _ = sweep.tick() => {
                    batch.persist = self.leases.write().expire(unix_secs(SystemTime::now()));
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
            store.save(&self.leases.read().persistent())?;
        }
        Ok(())
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
            batch.replies.push((reply, out.persist));
        }
    }

    async fn finish(&self, socket: &UdpSocket, batch: Batch) {
        // Advertisements and answers that bind nothing promise nothing: send them first.
        for (reply, _) in batch.replies.iter().filter(|r| !r.1) {
            send(socket, reply).await;
        }
        if batch.persist
            && let Some(store) = &self.store
        {
            let snapshot = self.leases.read().persistent();
            let store = store.clone();
            let saved = tokio::task::spawn_blocking(move || store.save(&snapshot)).await;
            if !matches!(saved, Ok(Ok(()))) {
                // A Reply for a lease that is not on disk could be handed out twice after a
                // restart: send nothing; the clients retry.
                tracing::error!(result = ?saved, "cannot persist dhcpv6 leases; replies withheld");
                return;
            }
        }
        for (reply, _) in batch.replies.iter().filter(|r| r.1) {
            send(socket, reply).await;
        }
        for e in batch.events {
            self.events.emit(e);
        }
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
    /// Replies with whether they wait for the lease file.
    replies: Vec<(Reply6, bool)>,
    events: Vec<Event>,
}
