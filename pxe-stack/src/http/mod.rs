//! The HTTP server: static artifacts (kernels, initramfs, multi-GB metal images) and dynamic
//! routes (iPXE scripts, Ignition configs, introspection) on hyper 1.
//!
//! Static files stream from disk in chunks that shrink as more downloads share the memory
//! budget: read in place when the page cache holds them, by a few threads shared by all
//! downloads otherwise, into recycled buffers. A 4 GiB image never sits in memory, and a
//! thousand concurrent downloads hold about [`Config::buffer_budget`] in file data, not a
//! thousand chunks each. Range (single range), `If-Range`, strong `ETag`, `Last-Modified`,
//! conditional GET and HEAD follow RFC 9110; the decision is the pure function [`check`].
//! Request paths are percent-decoded and confined to the root: `..` gives 404 and a symlink
//! that resolves outside the root gives 403.
//!
//! Dynamic routes ([`Routes`]) are consulted first. Every request, static or dynamic, yields
//! one access-log line (nginx-like, with the client's MAC from the [`HostLookup`]) and one
//! [`Transfer`](crate::EventKind::Transfer) event when its response body is done.
//!
//! A dynamic route next to static files, and a request to it:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use pxe_stack::http::{Config, Routes, Server};
//! use pxe_stack::route::{RouteRequest, reply};
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let addr = listener.local_addr()?;
//! let routes = Routes::new().exact("/boot.ipxe", |req: RouteRequest| async move {
//!     let mac = req.mac.map(|m| m.hexhyp()).unwrap_or_default();
//!     reply::ok("text/plain", format!("#!ipxe\necho {mac}\n"))
//! });
//! let mut config = Config::default();
//! config.root = None; // or Some("/srv/www".into()) for kernels and images
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! let server = tokio::spawn(Server::new(config).with_routes(routes).serve(listener, async {
//!     let _ = stopped.await;
//! }));
//!
//! let mut conn = tokio::net::TcpStream::connect(addr).await?;
//! conn.write_all(b"GET /boot.ipxe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await?;
//! let mut response = String::new();
//! conn.read_to_string(&mut response).await?;
//! assert!(response.starts_with("HTTP/1.1 200 OK"));
//! assert!(response.ends_with("#!ipxe\necho \n"));
//! stop.send(()).ok();
//! server.await??;
//! # Ok(())
//! # }
//! ```
//!
//! # What it does not do
//! No HTTP/2 (iPXE, firmware and coreos-installer speak HTTP/1.1), no multi-range responses (a
//! multi-range request gets the whole file), no directory listings or index files, no
//! compression, and no `sendfile`: it copies through user space in large chunks, which measured
//! faster than nginx with `sendfile on` on loopback (see `benches/http-tftp`).

mod access;
mod body;
mod cond;
mod mime;
mod routes;
mod send_timeout;
#[cfg(feature = "tls")]
mod tls;

use std::convert::Infallible;
use std::fs::File;
use std::future::Future;
use std::net::SocketAddr;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use access::{AccessEntry, AccessLog};
pub use cond::{Decision, Validators, check};
pub use mime::content_type;
pub use routes::{DEFAULT_BODY_LIMIT, Routes};
#[cfg(feature = "tls")]
pub use tls::Tls;

use crate::events::{Discard, EventSink};
use crate::files::{self, FileIo};
use crate::host::{HostLookup, Mac, NoLookup};
use crate::route::{RouteRequest, reply};
use access::Reporters;
use body::{AccessReport, Body};
use routes::Route;
use send_timeout::SendTimeout;

/// What the server serves and how.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// Directory of static files; `None` serves dynamic routes only.
    pub root: Option<PathBuf>,
    /// Bytes per disk read when streaming a file. Larger is faster; each download holds up to
    /// two chunks in memory.
    pub chunk_size: usize,
    /// The memory all downloads together may hold in file chunks. When many downloads run at
    /// once (a rack booting), each one's chunks shrink (down to 4 KiB) so the total stays near
    /// this budget and memory stays flat as the number of clients grows.
    pub buffer_budget: usize,
    /// Threads doing the server's blocking file work (opening files, reading chunks), whatever
    /// the number of downloads. Files in the page cache need few; raise it for slow disks.
    pub file_threads: usize,
    /// How long a client may take to send its request headers.
    pub header_timeout: Duration,
    /// How long a response may make no write progress (the client reads nothing) before its
    /// connection is closed, like nginx's `send_timeout`: a client that stops reading does not
    /// hold its connection and buffers forever. Counted between two successful writes, not
    /// for the whole response.
    pub send_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            root: None,
            chunk_size: 512 * 1024,
            buffer_budget: 8 * 1024 * 1024,
            file_threads: 4,
            header_timeout: Duration::from_secs(30),
            send_timeout: Duration::from_secs(60),
        }
    }
}

/// Errors starting or running the HTTP server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The static root cannot be used.
    #[error("http root {path:?} is not a readable directory")]
    Root {
        /// The configured root.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A socket operation failed.
    #[error("http socket error")]
    Io(#[from] std::io::Error),
    /// A PEM input could not be read.
    #[cfg(feature = "tls")]
    #[error("cannot read the tls {what} pem")]
    Pem {
        /// `certificate` or `private key`.
        what: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// rustls refused the certificate or key.
    #[cfg(feature = "tls")]
    #[error("tls configuration rejected")]
    Tls(#[source] rustls::Error),
}

/// The HTTP server. Build with [`Server::new`], then [`serve`](Server::serve).
pub struct Server {
    config: Config,
    routes: Routes,
    lookup: Arc<dyn HostLookup>,
    events: Arc<dyn EventSink>,
    access_log: Option<Arc<dyn AccessLog>>,
    #[cfg(feature = "tls")]
    tls: Option<Tls>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("config", &self.config)
            .field("routes", &self.routes)
            .finish_non_exhaustive()
    }
}

struct Inner {
    root: Option<PathBuf>,
    files: Arc<FileIo>,
    routes: Routes,
    lookup: Arc<dyn HostLookup>,
    reporters: Arc<Reporters>,
}

impl Server {
    /// A server with no routes, no host lookup and no event sink.
    pub fn new(config: Config) -> Self {
        Server {
            config,
            routes: Routes::new(),
            lookup: Arc::new(NoLookup),
            events: Arc::new(Discard),
            access_log: None,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }

    /// Serve these dynamic routes (before static files).
    pub fn with_routes(mut self, routes: Routes) -> Self {
        self.routes = routes;
        self
    }

    /// Name hosts through this lookup (usually the DHCP lease table) in routes, logs and events.
    pub fn with_lookup(mut self, lookup: Arc<dyn HostLookup>) -> Self {
        self.lookup = lookup;
        self
    }

    /// Send one [`Transfer`](crate::EventKind::Transfer) event per request here.
    pub fn with_events(mut self, events: Arc<dyn EventSink>) -> Self {
        self.events = events;
        self
    }

    /// Also hand every access entry to `log` (entries always go to `tracing` at info level,
    /// target `pxe_stack::http::access`).
    pub fn with_access_log(mut self, log: Arc<dyn AccessLog>) -> Self {
        self.access_log = Some(log);
        self
    }

    /// Speak HTTPS instead of plain HTTP.
    #[cfg(feature = "tls")]
    pub fn with_tls(mut self, tls: Tls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Serves connections from `listener` until `shutdown` completes, then stops accepting,
    /// lets every connection finish its current response, and returns.
    ///
    /// To bound the drain (a client in the middle of a 4 GiB download), wrap the returned future
    /// in a timeout.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), Error> {
        let root = match &self.config.root {
            Some(dir) => Some(files::canonical_root(dir).map_err(|source| Error::Root {
                path: dir.clone(),
                source,
            })?),
            None => None,
        };
        let inner = Arc::new(Inner {
            root,
            files: FileIo::start(
                "http-file",
                self.config.file_threads,
                self.config.buffer_budget,
                self.config.chunk_size,
            )?,
            routes: self.routes,
            lookup: self.lookup,
            reporters: Arc::new(Reporters {
                events: self.events,
                access_log: self.access_log,
            }),
        });
        #[cfg(feature = "tls")]
        let tls = self.tls;
        let header_timeout = self.config.header_timeout;
        let send_timeout = self.config.send_timeout;
        tracing::info!(addr = ?listener.local_addr().ok(), "http server listening");

        let (stop_tx, stop_rx) = watch::channel(false);
        let mut conns = tokio::task::JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let _ = stream.set_nodelay(true);
                        let stream = SendTimeout::new(stream, send_timeout);
                        let inner = Arc::clone(&inner);
                        let stop = stop_rx.clone();
                        #[cfg(feature = "tls")]
                        if let Some(tls) = &tls {
                            let acceptor = tls.acceptor.clone();
                            conns.spawn(async move {
                                // A client that stalls mid-handshake must not hold up shutdown.
                                let mut stopping = stop.clone();
                                let handshake = tokio::time::timeout(header_timeout, acceptor.accept(stream));
                                let accepted = tokio::select! {
                                    res = handshake => res,
                                    _ = stopping.changed() => return,
                                };
                                match accepted {
                                    Ok(Ok(s)) => connection(inner, s, peer, header_timeout, stop).await,
                                    Ok(Err(e)) => tracing::debug!(%peer, error = %e, "tls handshake failed"),
                                    Err(_) => tracing::debug!(%peer, "tls handshake timed out"),
                                }
                            });
                            continue;
                        }
                        conns.spawn(connection(inner, stream, peer, header_timeout, stop));
                    }
                    Err(e) => {
                        // Usually out of file descriptors: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
            }
        }
        drop(listener);
        let _ = stop_tx.send(true);
        while conns.join_next().await.is_some() {}
        Ok(())
    }
}

/// hyper's per-connection buffer limit: the largest request head, and how much response data a
/// connection queues before it waits for the socket (hyper's default is about 400 KiB).
const MAX_CONN_BUF: usize = 16 * 1024;

async fn connection<I>(
    inner: Arc<Inner>,
    io: I,
    peer: SocketAddr,
    header_timeout: Duration,
    mut stop: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
        let inner = Arc::clone(&inner);
        async move { Ok::<_, Infallible>(inner.handle(req, peer).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        // Request heads are small, and a connection then queues little beyond the chunk it is
        // writing: the file chunks are what the buffer budget accounts for.
        .max_buf_size(MAX_CONN_BUF)
        .serve_connection(TokioIo::new(io), svc);
    tokio::pin!(conn);
    let res = tokio::select! {
        res = conn.as_mut() => res,
        _ = stop.changed() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = res {
        tracing::debug!(%peer, error = %e, "http connection ended with an error");
    }
}

impl Inner {
    async fn handle(&self, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
        let started = Instant::now();
        let mac = self.lookup.mac_for(peer.ip().to_canonical());
        let entry = AccessEntry {
            end: SystemTime::now(),
            duration: Duration::ZERO,
            peer,
            mac,
            method: req.method().to_string(),
            target: req
                .uri()
                .path_and_query()
                .map_or_else(|| req.uri().to_string(), |p| p.to_string()),
            version: format!("{:?}", req.version()),
            status: 0,
            bytes: 0,
            request_length: content_length(req.headers()).unwrap_or(0),
            user_agent: req
                .headers()
                .get(header::USER_AGENT)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .unwrap_or_default(),
        };
        let path = req.uri().path().to_owned();
        let resp = if !host_ok(&req) {
            error(
                StatusCode::BAD_REQUEST,
                "exactly one Host header is required",
            )
        } else {
            match self.routes.find(&path) {
                Some(route) => dynamic(route, req, peer, mac).await,
                None => self.static_file(req).await,
            }
        };
        let mut entry = entry;
        entry.status = resp.status().as_u16();
        let report = AccessReport {
            reporters: Arc::clone(&self.reporters),
            entry,
            path,
            started,
        };
        resp.map(|b| b.with_report(report))
    }

    async fn static_file(&self, req: Request<Incoming>) -> Response<Body> {
        let method = req.method().clone();
        if method != Method::GET && method != Method::HEAD {
            let mut resp = error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
            resp.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return resp;
        }
        let Some(root) = self.root.clone() else {
            return error(StatusCode::NOT_FOUND, "not found");
        };
        let Some(rel) = decode_path(req.uri().path()) else {
            return error(StatusCode::NOT_FOUND, "not found");
        };
        let opened = {
            let rel = rel.clone();
            self.files.readers.run(move || open(&root, &rel)).await
        };
        let (file, v) = match opened {
            Ok(Ok(x)) => x,
            Ok(Err(status)) => return error(status, status.canonical_reason().unwrap_or("error")),
            Err(_) => return error(StatusCode::INTERNAL_SERVER_ERROR, "internal error"),
        };
        let decision = check(&method, req.headers(), &v);
        let mut resp = Response::new(Body::empty());
        let h = resp.headers_mut();
        h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        if let Ok(etag) = HeaderValue::from_str(&v.etag) {
            h.insert(header::ETAG, etag);
        }
        if let Ok(lm) = HeaderValue::from_str(&v.last_modified()) {
            h.insert(header::LAST_MODIFIED, lm);
        }
        let (status, range) = match decision {
            Decision::Full => (StatusCode::OK, Some((0, v.len))),
            Decision::Partial { start, end } => {
                let cr = format!("bytes {start}-{end}/{}", v.len);
                if let Ok(cr) = HeaderValue::from_str(&cr) {
                    h.insert(header::CONTENT_RANGE, cr);
                }
                (StatusCode::PARTIAL_CONTENT, Some((start, end - start + 1)))
            }
            Decision::NotModified => (StatusCode::NOT_MODIFIED, None),
            Decision::PreconditionFailed => (StatusCode::PRECONDITION_FAILED, None),
            Decision::RangeNotSatisfiable => {
                if let Ok(cr) = HeaderValue::from_str(&format!("bytes */{}", v.len)) {
                    h.insert(header::CONTENT_RANGE, cr);
                }
                (StatusCode::RANGE_NOT_SATISFIABLE, None)
            }
        };
        *resp.status_mut() = status;
        if let Some((start, len)) = range {
            let h = resp.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(content_type(&rel)),
            );
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
            if method == Method::GET && len > 0 {
                *resp.body_mut() = Body::file(file, start, len, &self.files);
            }
        }
        resp
    }
}

/// RFC 9112 §3.2: an HTTP/1.1 request must carry exactly one `Host` header, and no request may
/// carry two (HTTP/1.0 clients may leave it out).
fn host_ok<B>(req: &Request<B>) -> bool {
    let mut hosts = req.headers().get_all(header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (Some(_), Some(_)) => false,
        (Some(_), None) => true,
        (None, _) => req.version() < http::Version::HTTP_11,
    }
}

/// Percent-decodes an absolute request path and confines it: `None` for anything that is not a
/// plain relative file path under the root.
fn decode_path(raw: &str) -> Option<String> {
    let raw = raw.strip_prefix('/')?;
    let decoded = percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .ok()?;
    files::confine(&decoded).ok()
}

/// Opens a confined path beneath `root`: 404 when missing or not a file, 403 when a symlink
/// leads out of the root or the file is unreadable.
fn open(root: &std::path::Path, rel: &str) -> Result<(File, Validators), StatusCode> {
    let (file, meta) = files::open_beneath(root, rel).map_err(|e| match e {
        files::Unservable::NotFound => StatusCode::NOT_FOUND,
        files::Unservable::Forbidden => StatusCode::FORBIDDEN,
    })?;
    let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
    Ok((file, Validators::new(meta.len(), modified, meta.ino())))
}

async fn dynamic(
    route: &Route,
    req: Request<Incoming>,
    peer: SocketAddr,
    mac: Option<Mac>,
) -> Response<Body> {
    let (parts, body) = req.into_parts();
    if content_length(&parts.headers).is_some_and(|n| n > route.body_limit as u64) {
        return error(StatusCode::PAYLOAD_TOO_LARGE, "request body too large");
    }
    let bytes: Bytes = match Limited::new(body, route.body_limit).collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return error(StatusCode::PAYLOAD_TOO_LARGE, "request body too large");
        }
        Err(_) => return error(StatusCode::BAD_REQUEST, "cannot read request body"),
    };
    let request = Request::from_parts(parts, bytes);
    route
        .handler
        .handle(RouteRequest { request, peer, mac })
        .await
        .map(Body::full)
}

fn content_length(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn error(status: StatusCode, message: &str) -> Response<Body> {
    reply::error(status, message).map(Body::full)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_path(raw: &str, expected: Option<&str>) {
        assert_eq!(decode_path(raw).as_deref(), expected, "{raw}");
    }

    #[test]
    fn decode_and_confine() {
        check_path("/rhcos/vmlinuz", Some("rhcos/vmlinuz"));
        check_path("/a%20b.img", Some("a b.img"));
        check_path("/%2e%2e/etc/passwd", None);
        check_path("/%2E%2E%2Fetc%2Fpasswd", None);
        check_path("/../etc/passwd", None);
        check_path("/a/..%5c..%5csecret", None);
        check_path("//etc/passwd", None);
        check_path("/%00", None);
        check_path("/%ff", None);
        check_path("/", None);
        check_path("relative", None);
    }
}
