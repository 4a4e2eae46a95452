//! The zone on the wire: hickory-server's UDP and TCP loops with our request handler.

use std::collections::HashMap;
use std::future::Future;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Edns, Header, HeaderCounts, Message, Metadata, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, PTR, SOA, SRV, TXT};
use hickory_proto::rr::{DNSClass, Name, RData, Record};
use hickory_proto::serialize::binary::BinEncoder;
use hickory_server::net::NetError;
use hickory_server::net::runtime::Time;
use hickory_server::net::xfer::Protocol;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::{MessageResponse, MessageResponseBuilder};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::Semaphore;

use super::{Config, Decision, Error, Qtype, Rcode, Rdata, Resolved, Zone};
use crate::{DnsOutcome, Event, EventKind, EventSink, HostLookup, NoLookup};

/// How long a TCP client may stay silent before its connection is closed.
const TCP_IDLE: Duration = Duration::from_secs(10);
/// UDP receive loops at most, whatever the runtime's worker count.
const MAX_UDP_LOOPS: usize = 4;
/// The largest UDP answer we send, whatever the client's EDNS buffer says (the DNS flag day
/// 2020 size, which avoids fragmentation).
const MAX_UDP: u16 = 1232;
/// Distinct (client, name, type, outcome) events remembered; when full, forgotten at most
/// once a second, so events stay bounded under a flood of distinct names.
const SEEN_MAX: usize = 1024;

/// The cluster DNS server: authoritative for the zone, forwarding for its subnets.
///
/// TCP is hickory-server's loop; UDP is our own (one receive loop per runtime worker, up to
/// four, on the one socket), calling the same request handler inline
/// (an authoritative answer never waits), so a query costs no task spawn and no channel hop on
/// its way out; forwarded queries run in tasks of their own, at most
/// [`Config::max_forwards`](super::Config::max_forwards) at once.
pub struct Server {
    handler: Arc<Handler>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("origin", &self.handler.zone.origin())
            .field("upstream", &self.handler.upstream)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Checks `config` (see [`Zone::new`]); hosts resolve to their reservations only until
    /// [`Server::with_lookup`] gives the lease table.
    pub fn new(config: Config) -> Result<Server, Error> {
        let zone = Zone::new(&config)?;
        Ok(Server {
            handler: Arc::new(Handler {
                names: Arc::new(
                    zone.names()
                        .into_iter()
                        .filter_map(|n| Some((n.clone(), Name::from_ascii(format!("{n}.")).ok()?)))
                        .collect(),
                ),
                zone: Arc::new(zone),
                lookup: Arc::new(NoLookup),
                upstream: Arc::new(config.upstream),
                forwards: Arc::new(Semaphore::new(config.max_forwards)),
                timeout: Duration::from_millis(config.forward_timeout_ms),
                events: None,
            }),
        })
    }

    /// Reads host addresses (and reverse names) from `lookup` at answer time: records follow
    /// the leases without being rebuilt.
    pub fn with_lookup(self, lookup: Arc<dyn HostLookup>) -> Self {
        let h = &self.handler;
        Server {
            handler: Arc::new(Handler {
                zone: h.zone.clone(),
                names: h.names.clone(),
                lookup,
                upstream: h.upstream.clone(),
                forwards: h.forwards.clone(),
                timeout: h.timeout,
                events: h.events.clone(),
            }),
        }
    }

    /// Sends [`EventKind::Dns`] events to `sink`: one per client, name, type and outcome (a
    /// host repeating a query is not news), at most about a thousand a second under a flood
    /// of distinct names. Every query is also logged at `info` level (target
    /// `pxe_stack::dns`), as dnsmasq's `log-queries` does.
    pub fn with_events(self, sink: Arc<dyn EventSink>) -> Self {
        let h = &self.handler;
        Server {
            handler: Arc::new(Handler {
                zone: h.zone.clone(),
                names: h.names.clone(),
                lookup: h.lookup.clone(),
                upstream: h.upstream.clone(),
                forwards: h.forwards.clone(),
                timeout: h.timeout,
                events: Some(Arc::new(Events {
                    sink,
                    seen: std::sync::Mutex::new(Seen::default()),
                })),
            }),
        }
    }

    /// The checked zone.
    pub fn zone(&self) -> &Zone {
        &self.handler.zone
    }

    /// Answers on `udp` and `tcp` until `shutdown` resolves.
    ///
    /// # Errors
    /// A socket that stops working for good.
    pub async fn serve(
        self,
        udp: UdpSocket,
        tcp: TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), Error> {
        let mut server = hickory_server::Server::new(Shared(self.handler.clone()));
        server.register_listener(tcp, TCP_IDLE, 64);
        // One receive loop per runtime worker on the one socket, so a multi-threaded runtime
        // answers in parallel; a current-thread runtime gets one loop (two would both be woken
        // for every datagram). Each loop holds one datagram.
        let udp = Arc::new(udp);
        let loops = tokio::runtime::Handle::current()
            .metrics()
            .num_workers()
            .clamp(1, MAX_UDP_LOOPS);
        let mut receivers = tokio::task::JoinSet::new();
        for _ in 0..loops {
            receivers.spawn(serve_udp(self.handler.clone(), udp.clone()));
        }
        let done = tokio::select! {
            r = server.block_until_done() => r.map_err(|e| Error::Io(std::io::Error::other(e.to_string()))),
            Some(r) = receivers.join_next() => match r {
                Ok(r) => r.map_err(Error::Io),
                Err(e) => Err(Error::Io(std::io::Error::other(e.to_string()))),
            },
            () = shutdown => server
                .shutdown_gracefully()
                .await
                .map_err(|e| Error::Io(std::io::Error::other(e.to_string()))),
        };
        done
    }
}

/// Receives, answers inline, sends: one datagram at a time, so memory stays flat however fast
/// queries come (the kernel's receive buffer drops what we cannot take).
async fn serve_udp(handler: Arc<Handler>, socket: Arc<UdpSocket>) -> std::io::Result<()> {
    let mut buf = vec![0u8; 4096];
    loop {
        let (n, src) = match socket.recv_from(&mut buf).await {
            Ok(got) => got,
            // ICMP errors for earlier answers (port unreachable) and the like: not ours to die of.
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::ConnectionRefused
                        | ErrorKind::ConnectionReset
                        | ErrorKind::Interrupted
                        | ErrorKind::WouldBlock
                        | ErrorKind::OutOfMemory
                ) =>
            {
                tracing::debug!(error = %e, "dns udp receive");
                continue;
            }
            Err(e) => return Err(e),
        };
        let bytes = &buf[..n];
        // Shorter than a header, or a response (reflection): no answer at all.
        if n < 12 || bytes[2] & 0x80 != 0 || src.port() == 0 {
            continue;
        }
        let responder = UdpResponder {
            socket: socket.clone(),
            dst: src,
        };
        match Request::from_bytes(bytes.to_vec(), src, Protocol::Udp) {
            Ok(request) => {
                handler.handle_request(&request, responder).await;
            }
            Err(_) => {
                // The header was readable: FORMERR with its ID and opcode, nothing else.
                let reply = [
                    bytes[0],
                    bytes[1],
                    0x80 | (bytes[2] & 0x78),
                    ResponseCode::FormErr.low(),
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                ];
                let _ = socket.send_to(&reply, src).await;
            }
        }
    }
}

/// Sends an answer straight from the UDP loop.
#[derive(Clone)]
struct UdpResponder {
    socket: Arc<UdpSocket>,
    dst: SocketAddr,
}

#[async_trait::async_trait]
impl ResponseHandler for UdpResponder {
    async fn send_response<'a>(
        &mut self,
        response: MessageResponse<
            '_,
            'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
        >,
    ) -> Result<ResponseInfo, NetError> {
        let max = response.edns().map_or(512, |e| e.max_payload().max(512));
        let mut bytes = Vec::with_capacity(512);
        let mut encoder = BinEncoder::new(&mut bytes);
        encoder.set_max_size(max);
        // Records that do not fit are left out and the TC flag set (the client retries on TCP).
        let info = response.destructive_emit(&mut encoder)?;
        self.socket.send_to(&bytes, self.dst).await?;
        Ok(info)
    }
}

struct Handler {
    zone: Arc<Zone>,
    /// The wire form of every name the zone's answers carry, parsed once.
    names: Arc<HashMap<String, Name>>,
    lookup: Arc<dyn HostLookup>,
    upstream: Arc<Vec<SocketAddr>>,
    forwards: Arc<Semaphore>,
    timeout: Duration,
    events: Option<Arc<Events>>,
}

/// Where query events go, and which were sent lately.
struct Events {
    sink: Arc<dyn EventSink>,
    seen: std::sync::Mutex<Seen>,
}

#[derive(Default)]
struct Seen {
    keys: std::collections::HashSet<(std::net::IpAddr, String, u16, DnsOutcome)>,
    cleared: Option<std::time::Instant>,
}

impl Events {
    fn query(
        &self,
        lookup: &dyn HostLookup,
        client: std::net::IpAddr,
        name: &str,
        qtype: u16,
        outcome: DnsOutcome,
    ) {
        {
            let Ok(mut seen) = self.seen.lock() else {
                return;
            };
            let key = (client, name.to_owned(), qtype, outcome);
            if seen.keys.contains(&key) {
                return;
            }
            if seen.keys.len() >= SEEN_MAX {
                let now = std::time::Instant::now();
                if seen
                    .cleared
                    .is_some_and(|t| now.duration_since(t) < Duration::from_secs(1))
                {
                    return;
                }
                seen.keys.clear();
                seen.cleared = Some(now);
            }
            seen.keys.insert(key);
        }
        self.sink.emit(Event::now(
            lookup.mac_for(client),
            Some(client),
            EventKind::Dns {
                name: name.to_owned(),
                qtype,
                outcome,
            },
        ));
    }
}

/// The handler as hickory-server's TCP loop holds it.
struct Shared(Arc<Handler>);

#[async_trait::async_trait]
impl RequestHandler for Shared {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        response: R,
    ) -> ResponseInfo {
        self.0.handle_request(request, response).await
    }
}

impl Handler {
    async fn handle_request<R: ResponseHandler>(
        &self,
        request: &Request,
        mut response: R,
    ) -> ResponseInfo {
        let base = {
            let mut m = Metadata::response_from_request(&request.metadata);
            m.recursion_available = !self.upstream.is_empty();
            m
        };
        let mut metadata = base;
        let edns = request.edns.as_ref().map(|e| {
            let mut ours = Edns::new();
            ours.set_max_payload(e.max_payload().clamp(512, MAX_UDP));
            ours
        });
        let mut builder = MessageResponseBuilder::from_message_request(request);
        if let Some(e) = &edns {
            builder.edns(e);
        }
        let queries = request.queries.queries();
        let fail = |code| {
            let mut m = base;
            m.response_code = code;
            m
        };
        let sent = match queries {
            _ if request.metadata.op_code != OpCode::Query => {
                response
                    .send_response(builder.build_no_records(fail(ResponseCode::NotImp)))
                    .await
            }
            [query] if query.query_class() == DNSClass::IN => {
                let qname = key(query.original().name());
                let code = u16::from(query.query_type());
                let qtype = Qtype::from(code);
                let client = request.src().ip();
                let decision = self.zone.answer(&qname, qtype, client, &*self.lookup);
                let outcome = match &decision {
                    Decision::Answer {
                        rcode: Rcode::NxDomain,
                        ..
                    } => DnsOutcome::NxDomain,
                    Decision::Answer { .. } => DnsOutcome::Answered,
                    Decision::Refuse => DnsOutcome::Refused,
                    Decision::Forward if self.forwards.available_permits() == 0 => DnsOutcome::Busy,
                    Decision::Forward => DnsOutcome::Forwarded,
                };
                // One line per exchange, as dnsmasq's log-queries.
                tracing::info!(
                    target: "pxe_stack::dns",
                    %client,
                    name = %qname,
                    qtype = %query.query_type(),
                    ?outcome,
                    "dns query"
                );
                if let Some(events) = &self.events {
                    events.query(&*self.lookup, client, &qname, code, outcome);
                }
                match decision {
                    Decision::Answer {
                        rcode,
                        records,
                        soa,
                    } => {
                        metadata.authoritative = true;
                        metadata.response_code = match rcode {
                            Rcode::NoError => ResponseCode::NoError,
                            Rcode::NxDomain => ResponseCode::NXDomain,
                        };
                        let original = query.original().name().clone();
                        let records: Vec<Record> = records
                            .into_iter()
                            .map(|r| self.record(r, &qname, &original))
                            .collect();
                        let soa: Vec<Record> = soa
                            .into_iter()
                            .map(|r| self.record(r, &qname, &original))
                            .collect();
                        let answer = builder.build(metadata, records.iter(), [], soa.iter(), []);
                        response.send_response(answer).await
                    }
                    Decision::Refuse => {
                        response
                            .send_response(builder.build_no_records(fail(ResponseCode::Refused)))
                            .await
                    }
                    Decision::Forward => {
                        // In a task of its own: the UDP loop answers the next query meanwhile.
                        let Ok(permit) = self.forwards.clone().try_acquire_owned() else {
                            let answer = builder.build_no_records(fail(ResponseCode::ServFail));
                            return sent_or_failed(response.send_response(answer).await, fail);
                        };
                        let raw = request.as_slice().to_vec();
                        let (src, protocol) = (request.src(), request.protocol());
                        let (upstream, timeout) = (self.upstream.clone(), self.timeout);
                        tokio::spawn(async move {
                            let _permit = permit;
                            let Ok(request) = Request::from_bytes(raw, src, protocol) else {
                                return;
                            };
                            let got = forward(&upstream, timeout, &request).await;
                            let mut builder =
                                MessageResponseBuilder::from_message_request(&request);
                            if let Some(e) = &edns {
                                builder.edns(e);
                            }
                            let mut metadata = base;
                            let _ = match got {
                                Some(up) => {
                                    metadata.response_code = up.metadata.response_code;
                                    metadata.truncation = up.metadata.truncation;
                                    let answer = builder.build(
                                        metadata,
                                        up.answers.iter(),
                                        up.authorities.iter(),
                                        [],
                                        up.additionals.iter(),
                                    );
                                    response.send_response(answer).await
                                }
                                None => {
                                    metadata.response_code = ResponseCode::ServFail;
                                    response
                                        .send_response(builder.build_no_records(metadata))
                                        .await
                                }
                            };
                        });
                        Ok(ResponseInfo::from(Header {
                            metadata: base,
                            counts: HeaderCounts::default(),
                        }))
                    }
                }
            }
            [_] => {
                response
                    .send_response(builder.build_no_records(fail(ResponseCode::Refused)))
                    .await
            }
            _ => {
                response
                    .send_response(builder.build_no_records(fail(ResponseCode::FormErr)))
                    .await
            }
        };
        sent_or_failed(sent, fail)
    }
}

fn sent_or_failed(
    sent: Result<ResponseInfo, NetError>,
    fail: impl Fn(ResponseCode) -> Metadata,
) -> ResponseInfo {
    sent.unwrap_or_else(|e| {
        tracing::debug!(error = %e, "dns answer not sent");
        ResponseInfo::from(Header {
            metadata: fail(ResponseCode::ServFail),
            counts: HeaderCounts::default(),
        })
    })
}

/// The first upstream answer to the client's own query bytes; `None` when every upstream
/// failed. A truncated UDP answer (TC) is asked again of the same upstream over TCP, so the
/// client gets every record; if TCP fails, the truncated answer stands.
async fn forward(
    upstreams: &[SocketAddr],
    timeout: Duration,
    request: &Request,
) -> Option<Message> {
    for upstream in upstreams {
        let Some(answer) = forward_udp(*upstream, timeout, request).await else {
            continue;
        };
        if !answer.metadata.truncation {
            return Some(answer);
        }
        tracing::debug!(%upstream, "dns upstream answer truncated, asking again over tcp");
        match tokio::time::timeout(timeout, forward_tcp(*upstream, request)).await {
            Ok(Ok(full)) => return Some(full),
            Ok(Err(e)) => tracing::debug!(%upstream, error = %e, "dns upstream over tcp"),
            Err(_) => tracing::debug!(%upstream, "dns upstream over tcp timed out"),
        }
        return Some(answer);
    }
    None
}

/// One upstream's UDP answer to the query, `None` on any failure or timeout.
async fn forward_udp(
    upstream: SocketAddr,
    timeout: Duration,
    request: &Request,
) -> Option<Message> {
    let local: SocketAddr = if upstream.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(local).await.ok()?;
    socket.connect(upstream).await.ok()?;
    socket.send(request.as_slice()).await.ok()?;
    let mut buf = vec![0u8; 4096];
    let deadline = tokio::time::Instant::now() + timeout;
    // A connected socket only sees the upstream's datagrams; skip any that are not the
    // answer to this query.
    while let Ok(Ok(n)) = tokio::time::timeout_at(deadline, socket.recv(&mut buf)).await {
        if let Ok(m) = Message::from_vec(&buf[..n])
            && m.metadata.id == request.metadata.id
        {
            return Some(m);
        }
    }
    None
}

/// The query over TCP (RFC 1035 4.2.2: a two-byte length, then the message), one exchange.
async fn forward_tcp(upstream: SocketAddr, request: &Request) -> std::io::Result<Message> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let query = request.as_slice();
    let len = u16::try_from(query.len())
        .map_err(|_| std::io::Error::new(ErrorKind::InvalidInput, "query longer than 64 KiB"))?;
    let mut stream = tokio::net::TcpStream::connect(upstream).await?;
    let mut out = Vec::with_capacity(2 + query.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(query);
    stream.write_all(&out).await?;
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).await?;
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut buf).await?;
    let m = Message::from_vec(&buf)
        .map_err(|e| std::io::Error::new(ErrorKind::InvalidData, e.to_string()))?;
    if m.metadata.id != request.metadata.id {
        return Err(std::io::Error::new(
            ErrorKind::InvalidData,
            "answer to another query",
        ));
    }
    Ok(m)
}

/// The query name as the zone keys names: lowercase, without the trailing dot. Names with
/// bytes no zone name has keep their escaped presentation form, which matches nothing.
fn key(name: &Name) -> String {
    let mut s = String::with_capacity(name.len());
    for label in name.iter() {
        if !s.is_empty() {
            s.push('.');
        }
        for &b in label {
            if !(b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'*') {
                return name.to_string();
            }
            s.push(char::from(b.to_ascii_lowercase()));
        }
    }
    s
}

impl Handler {
    /// One of our answer records as hickory's, with the client's own spelling of the query
    /// name and the zone's other names in their prepared wire form.
    fn record(&self, r: Resolved, qname: &str, original: &Name) -> Record {
        record(r, |s: &str| {
            if s == qname {
                original.clone()
            } else if let Some(n) = self.names.get(s) {
                n.clone()
            } else {
                // Zone names were checked when the zone was built: letters, digits, `-`, `_`.
                Name::from_ascii(format!("{s}.")).unwrap_or_else(|_| Name::root())
            }
        })
    }
}

fn record(r: Resolved, name: impl Fn(&str) -> Name) -> Record {
    let owner = name(&r.name);
    let data = match r.data {
        Rdata::A(a) => RData::A(A(a)),
        Rdata::Aaaa(a) => RData::AAAA(AAAA(a)),
        Rdata::Cname(t) => RData::CNAME(CNAME(name(&t))),
        Rdata::Ptr(t) => RData::PTR(PTR(name(&t))),
        Rdata::Txt(t) => RData::TXT(TXT::new(vec![t])),
        Rdata::Srv {
            priority,
            weight,
            port,
            target,
        } => RData::SRV(SRV::new(priority, weight, port, name(&target))),
        Rdata::Soa {
            mname,
            rname,
            serial,
            minimum,
        } => RData::SOA(SOA::new(
            name(&mname),
            name(&rname),
            serial,
            3600,
            600,
            86400,
            minimum,
        )),
    };
    Record::from_rdata(owner, r.ttl, data)
}
