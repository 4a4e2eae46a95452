//! The zone on the wire: hickory-server's UDP and TCP loops with our request handler.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Edns, Header, HeaderCounts, Message, Metadata, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, CNAME, PTR, SOA, SRV, TXT};
use hickory_proto::rr::{DNSClass, Name, RData, Record};
use hickory_server::net::runtime::Time;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::Semaphore;

use super::{Config, Decision, Error, Qtype, Rcode, Rdata, Resolved, Zone};
use crate::{HostLookup, NoLookup};

/// How long a TCP client may stay silent before its connection is closed.
const TCP_IDLE: Duration = Duration::from_secs(10);
/// The largest UDP answer we send, whatever the client's EDNS buffer says (the DNS flag day
/// 2020 size, which avoids fragmentation).
const MAX_UDP: u16 = 1232;

/// The cluster DNS server: authoritative for the zone, forwarding for its subnets.
pub struct Server {
    handler: Handler,
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
            handler: Handler {
                zone: Arc::new(zone),
                lookup: Arc::new(NoLookup),
                upstream: config.upstream,
                forwards: Arc::new(Semaphore::new(config.max_forwards)),
                timeout: Duration::from_millis(config.forward_timeout_ms),
            },
        })
    }

    /// Reads host addresses (and reverse names) from `lookup` at answer time: records follow
    /// the leases without being rebuilt.
    pub fn with_lookup(mut self, lookup: Arc<dyn HostLookup>) -> Self {
        self.handler.lookup = lookup;
        self
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
        let mut server = hickory_server::Server::new(self.handler);
        server.register_socket(udp);
        server.register_listener(tcp, TCP_IDLE, 64);
        let done = tokio::select! {
            r = server.block_until_done() => r,
            () = shutdown => server.shutdown_gracefully().await,
        };
        done.map_err(|e| Error::Io(std::io::Error::other(e.to_string())))
    }
}

struct Handler {
    zone: Arc<Zone>,
    lookup: Arc<dyn HostLookup>,
    upstream: Vec<SocketAddr>,
    forwards: Arc<Semaphore>,
    timeout: Duration,
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
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
                let qname = query.name().to_string();
                let qtype = Qtype::from(u16::from(query.query_type()));
                match self
                    .zone
                    .answer(&qname, qtype, request.src().ip(), &*self.lookup)
                {
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
                            .map(|r| record(r, &qname, &original))
                            .collect();
                        let soa: Vec<Record> = soa
                            .into_iter()
                            .map(|r| record(r, &qname, &original))
                            .collect();
                        let answer = builder.build(metadata, records.iter(), [], soa.iter(), []);
                        response.send_response(answer).await
                    }
                    Decision::Refuse => {
                        response
                            .send_response(builder.build_no_records(fail(ResponseCode::Refused)))
                            .await
                    }
                    Decision::Forward => match self.forward(request).await {
                        Some(upstream) => {
                            metadata.response_code = upstream.metadata.response_code;
                            metadata.truncation = upstream.metadata.truncation;
                            let answer = builder.build(
                                metadata,
                                upstream.answers.iter(),
                                upstream.authorities.iter(),
                                [],
                                upstream.additionals.iter(),
                            );
                            response.send_response(answer).await
                        }
                        None => {
                            response
                                .send_response(
                                    builder.build_no_records(fail(ResponseCode::ServFail)),
                                )
                                .await
                        }
                    },
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
        sent.unwrap_or_else(|e| {
            tracing::debug!(error = %e, "dns answer not sent");
            ResponseInfo::from(Header {
                metadata: fail(ResponseCode::ServFail),
                counts: HeaderCounts::default(),
            })
        })
    }
}

impl Handler {
    /// The first upstream answer to the client's own query bytes; `None` when every upstream
    /// failed or too many forwards are in flight already.
    async fn forward(&self, request: &Request) -> Option<Message> {
        let _permit = self.forwards.clone().try_acquire_owned().ok()?;
        for upstream in &self.upstream {
            let local: SocketAddr = if upstream.is_ipv4() {
                ([0, 0, 0, 0], 0).into()
            } else {
                (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
            };
            let Ok(socket) = UdpSocket::bind(local).await else {
                continue;
            };
            if socket.connect(upstream).await.is_err()
                || socket.send(request.as_slice()).await.is_err()
            {
                continue;
            }
            let mut buf = vec![0u8; 4096];
            let deadline = tokio::time::Instant::now() + self.timeout;
            // A connected socket only sees the upstream's datagrams; skip any that are not
            // the answer to this query.
            while let Ok(Ok(n)) = tokio::time::timeout_at(deadline, socket.recv(&mut buf)).await {
                if let Ok(m) = Message::from_vec(&buf[..n])
                    && m.metadata.id == request.metadata.id
                {
                    return Some(m);
                }
            }
        }
        None
    }
}

/// One of our answer records as hickory's, with the client's own spelling of the query name.
fn record(r: Resolved, qname: &str, original: &Name) -> Record {
    let name = |s: &str| {
        if qname
            .strip_suffix('.')
            .unwrap_or(qname)
            .eq_ignore_ascii_case(s)
        {
            original.clone()
        } else {
            // Zone names were checked when the zone was built: letters, digits, `-`, `_`.
            Name::from_ascii(format!("{s}.")).unwrap_or_else(|_| Name::root())
        }
    };
    let owner = name(&r.name);
    let data = match r.data {
        Rdata::A(a) => RData::A(A(a)),
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
