//! The TFTP server: read-only boot files from a directory, from memory, or generated per host.
//!
//! TFTP only carries the first small boot file (an iPXE binary); everything after it goes over
//! HTTP. It speaks RFC 1350 with options (RFC 2347): `blksize` (2348), `timeout` and `tsize`
//! (2349) and `windowsize` (7440), and wraps block numbers past 65535 for files over 32 MiB at
//! 512-byte blocks. Paths are confined to the root, symlinks included (a leading `/` names the
//! root, as with tftpd-hpa's `--secure`: GRUB asks for `/grub/grub.cfg`); writes are refused;
//! concurrent transfers are limited per client and in total; every request yields one
//! [`Transfer`](crate::EventKind::Transfer) event with the bytes the client acknowledged.
//!
//! Each transfer is a sans-IO state machine driven by its own task on the caller's runtime, so
//! transfers spread over the runtime's threads. Small files (up to 4 MiB, 32 MiB in all) are
//! read once and shared by every transfer of them; bigger ones are read ahead of each window the
//! way the HTTP server reads files: in place from the page cache, on a few reader threads
//! otherwise, never with a blocking read on the runtime's threads.
//!
//! Serve an in-memory iPXE script and fetch it with a bare RRQ:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use pxe_stack::tftp::{Config, Server};
//!
//! let socket = std::net::UdpSocket::bind("127.0.0.1:0")?; // the provisioning address
//! let addr = socket.local_addr()?;
//! let mut config = Config::default();
//! config.root = None; // or Some("/srv/tftp".into())
//! config.files.insert("boot.ipxe".into(), "#!ipxe\nshell\n".into());
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! let server = tokio::spawn(Server::new(config).serve(socket, async {
//!     let _ = stopped.await;
//! }));
//!
//! let client = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
//! client.send_to(b"\0\x01boot.ipxe\0octet\0", addr).await?;
//! let mut buf = [0u8; 600];
//! let (n, _) = client.recv_from(&mut buf).await?;
//! assert_eq!(&buf[..n], b"\0\x03\0\x01#!ipxe\nshell\n"); // DATA block 1, the last one
//! stop.send(()).ok();
//! server.await??;
//! # Ok(())
//! # }
//! ```
//!
//! # What it does not do
//! No write requests, no multicast (RFC 2090), no `tsize` for `netascii` transfers (they are
//! translated, LF to CR LF and CR to CR NUL, as tftp-hpa and dnsmasq do, so their size is not
//! known up front; tftp-hpa leaves it out too), and no per-transfer rate limiting. It is meant for
//! the first boot file only: kernels and images belong on the HTTP server.

mod catalog;
mod packet;
mod transfer;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::events::{Discard, EventSink, TransferStatus};
use crate::files;
use crate::host::{HostLookup, Mac, NoLookup};
use crate::lock;
use transfer::{Outcome, Transfer};

/// Content generated per request, such as an iPXE script that embeds the host's MAC.
pub trait Generate: Send + Sync + 'static {
    /// The content for `path` (already confined and normalized to `a/b`), or `None` to fall
    /// through to the in-memory files and the root directory.
    fn generate(&self, path: &str, peer: SocketAddr, mac: Option<Mac>) -> Option<Bytes>;
}

impl<F> Generate for F
where
    F: Fn(&str, SocketAddr, Option<Mac>) -> Option<Bytes> + Send + Sync + 'static,
{
    fn generate(&self, path: &str, peer: SocketAddr, mac: Option<Mac>) -> Option<Bytes> {
        self(path, peer, mac)
    }
}

/// What the server serves and its limits.
#[derive(Clone)]
#[non_exhaustive]
pub struct Config {
    /// Directory served read-only; `None` serves only in-memory and generated files.
    pub root: Option<PathBuf>,
    /// In-memory files by relative path (`undionly.kpxe`, `efi/boot.ipxe`).
    pub files: HashMap<String, Bytes>,
    /// Per-request content, consulted first.
    pub generator: Option<Arc<dyn Generate>>,
    /// Concurrent transfers allowed from one client address.
    pub max_per_client: usize,
    /// Concurrent transfers allowed in total.
    pub max_total: usize,
    /// Largest `blksize` granted (RFC 2348); 1468 fits a 1500-byte Ethernet MTU.
    pub block_size_limit: u16,
    /// Largest `windowsize` granted (RFC 7440).
    pub window_size_limit: u16,
    /// Retransmission timeout unless the client asks for another (RFC 2349).
    pub timeout: Duration,
    /// Retransmissions of one window before the transfer is abandoned.
    pub max_send_retries: u32,
    /// Receive buffer asked for on the listening socket (`SO_RCVBUF`), so bursts of requests
    /// are queued rather than dropped. The kernel caps it at `net.core.rmem_max` (a warning is
    /// logged when it does) unless the server has `CAP_NET_ADMIN` (root); raise that sysctl
    /// otherwise. 4 MiB holds several thousand requests.
    pub receive_buffer: usize,
    /// Allow a socket bound to `0.0.0.0`/`::`. Off by default: transfer sockets are bound to the
    /// listening address, and a wildcard one may answer from the wrong source address.
    pub allow_unspecified: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            root: None,
            files: HashMap::new(),
            generator: None,
            max_per_client: 4,
            // A rack of a thousand hosts powering on within seconds must not be turned away
            // while the machine is busy serving kernels; each transfer is small.
            max_total: 1024,
            block_size_limit: 1468,
            window_size_limit: 64,
            timeout: Duration::from_secs(3),
            max_send_retries: 10,
            receive_buffer: 4 << 20,
            allow_unspecified: false,
        }
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("root", &self.root)
            .field("files", &self.files.keys().collect::<Vec<_>>())
            .field("generator", &self.generator.is_some())
            .field("max_per_client", &self.max_per_client)
            .field("max_total", &self.max_total)
            .field("block_size_limit", &self.block_size_limit)
            .field("window_size_limit", &self.window_size_limit)
            .field("timeout", &self.timeout)
            .field("max_send_retries", &self.max_send_retries)
            .field("receive_buffer", &self.receive_buffer)
            .field("allow_unspecified", &self.allow_unspecified)
            .finish()
    }
}

/// Errors starting the TFTP server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The socket is bound to a wildcard address and [`Config::allow_unspecified`] is off.
    #[error("tftp socket is bound to the unspecified address {addr}")]
    Unspecified {
        /// The socket's address.
        addr: SocketAddr,
    },
    /// The root directory cannot be used.
    #[error("tftp root {path:?} is not a readable directory")]
    Root {
        /// The configured root.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A socket operation failed.
    #[error("tftp socket error")]
    Io(#[from] std::io::Error),
}

/// The TFTP server. Build with [`Server::new`], then [`serve`](Server::serve).
pub struct Server {
    config: Config,
    lookup: Arc<dyn HostLookup>,
    events: Arc<dyn EventSink>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// A server with no host lookup and no event sink.
    pub fn new(config: Config) -> Self {
        Server {
            config,
            lookup: Arc::new(NoLookup),
            events: Arc::new(Discard),
        }
    }

    /// Name hosts in events through this lookup (usually the DHCP lease table).
    pub fn with_lookup(mut self, lookup: Arc<dyn HostLookup>) -> Self {
        self.lookup = lookup;
        self
    }

    /// Send one [`Transfer`](crate::EventKind::Transfer) event per request here.
    pub fn with_events(mut self, events: Arc<dyn EventSink>) -> Self {
        self.events = events;
        self
    }

    /// Serves requests arriving on `socket` until `shutdown` completes.
    ///
    /// Each transfer runs as its own task on the caller's runtime, from its own socket bound to
    /// the listening address (a new transfer ID, as RFC 1350 asks). Transfers in flight when
    /// `shutdown` completes are abandoned: TFTP has no graceful close, and clients retry.
    pub async fn serve(
        self,
        socket: UdpSocket,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), Error> {
        let addr = socket.local_addr()?;
        if addr.ip().is_unspecified() && !self.config.allow_unspecified {
            return Err(Error::Unspecified { addr });
        }
        let root = match &self.config.root {
            Some(dir) => Some(files::canonical_root(dir).map_err(|source| Error::Root {
                path: dir.clone(),
                source,
            })?),
            None => None,
        };
        socket.set_nonblocking(true)?;
        size_receive_buffer(&socket, self.config.receive_buffer);
        let socket = tokio::net::UdpSocket::from_std(socket)?;
        let catalog = Arc::new(catalog::Catalog::new(
            root,
            self.config,
            self.lookup,
            self.events,
        )?);
        let in_progress: Arc<Mutex<HashSet<SocketAddr>>> = Arc::default();
        let mut tasks = tokio::task::JoinSet::new();
        let mut buf = vec![0u8; 4096];
        tracing::info!(%addr, "tftp server listening");
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                received = socket.recv_from(&mut buf) => {
                    let (n, peer) = match received {
                        Ok(x) => x,
                        Err(e) => {
                            tracing::debug!(error = %e, "tftp receive failed");
                            continue;
                        }
                    };
                    let Some(request) = Request::from_datagram(&buf[..n]) else {
                        continue;
                    };
                    // A retransmitted request for a transfer in progress is not a new transfer.
                    if !lock(&in_progress).insert(peer) {
                        continue;
                    }
                    let guard = InProgress { peer, set: Arc::clone(&in_progress) };
                    tasks.spawn(serve_request(Arc::clone(&catalog), addr.ip(), peer, request, guard));
                }
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            }
        }
        tasks.abort_all();
        Ok(())
    }
}

/// Asks for a receive buffer of `bytes` on the listening socket, so a burst of requests (a rack
/// powering on) waits in the kernel instead of being dropped. The kernel caps the request at
/// `net.core.rmem_max` (often 208 KiB: a few hundred small requests) unless the process has
/// `CAP_NET_ADMIN`; a capped size is logged as a warning.
fn size_receive_buffer(socket: &UdpSocket, bytes: usize) {
    let sock = socket2::SockRef::from(socket);
    if let Err(e) = sock.set_recv_buffer_size(bytes) {
        tracing::warn!(error = %e, "tftp cannot size its receive buffer");
    }
    let mut granted = sock.recv_buffer_size().unwrap_or(0);
    if granted < bytes {
        // Capped by net.core.rmem_max: with CAP_NET_ADMIN (a server run as root) the cap can be
        // passed (SO_RCVBUFFORCE); without it this fails and the capped size stays.
        let _ = rustix::net::sockopt::set_socket_recv_buffer_size_force(socket, bytes);
        granted = sock.recv_buffer_size().unwrap_or(granted);
    }
    // Linux reports twice the size asked for (the rest is its bookkeeping).
    if granted < bytes {
        tracing::warn!(
            asked = bytes,
            granted,
            "tftp receive buffer capped by net.core.rmem_max: raise it for large bursts of requests"
        );
    } else {
        tracing::debug!(granted, "tftp receive buffer");
    }
}

/// Removes a peer from the in-progress set when its request task ends.
struct InProgress {
    peer: SocketAddr,
    set: Arc<Mutex<HashSet<SocketAddr>>>,
}

impl Drop for InProgress {
    fn drop(&mut self) {
        lock(&self.set).remove(&self.peer);
    }
}

/// An owned copy of a request, to move into its task.
struct Request {
    write: bool,
    /// An RRQ or WRQ that does not parse (no mode string, odd options): answered with an
    /// ERROR, as tftp-hpa does, rather than dropped.
    malformed: bool,
    filename: String,
    mode: String,
    options: Vec<(String, String)>,
}

impl Request {
    fn from_datagram(datagram: &[u8]) -> Option<Self> {
        let (write, req) = match packet::Packet::decode(datagram) {
            Ok(packet::Packet::Rrq(r)) => (false, r),
            Ok(packet::Packet::Wrq(r)) => (true, r),
            Err(packet::Malformed) if matches!(datagram, [0, 1 | 2, ..]) => {
                // The file name as far as it goes, for the event.
                let name = datagram[2..].split(|&b| b == 0).next().unwrap_or_default();
                return Some(Request {
                    write: datagram[1] == 2,
                    malformed: true,
                    filename: String::from_utf8_lossy(name).into_owned(),
                    mode: String::new(),
                    options: Vec::new(),
                });
            }
            // Anything else on the listening port is noise.
            _ => return None,
        };
        Some(Request {
            write,
            malformed: false,
            filename: req.filename.to_owned(),
            mode: req.mode.to_ascii_lowercase(),
            options: req
                .options
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        })
    }
}

async fn serve_request(
    catalog: Arc<catalog::Catalog>,
    local: IpAddr,
    peer: SocketAddr,
    request: Request,
    _guard: InProgress,
) {
    let socket = match transfer_socket(local, peer) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(%peer, error = %e, "tftp cannot open a transfer socket");
            return;
        }
    };
    let refuse = |code: u16, message: &str, status: TransferStatus, mac: Option<Mac>| {
        let socket = &socket;
        let catalog = &catalog;
        let path = request.filename.clone();
        let pkt = packet::error(code, message);
        async move {
            // Recorded before the client can see the error, so the timeline never lags the wire.
            catalog.report(peer, mac, &path, 0, Duration::ZERO, status);
            let _ = socket.send(&pkt).await;
        }
    };
    if request.malformed {
        let mac = catalog.mac_for(peer);
        return refuse(
            packet::code::ILLEGAL,
            "Malformed request: a file name and a mode are required",
            TransferStatus::TftpRefused(packet::code::ILLEGAL),
            mac,
        )
        .await;
    }
    if request.write {
        let mac = catalog.mac_for(peer);
        return refuse(
            packet::code::ILLEGAL,
            "Server is read-only",
            TransferStatus::TftpRefused(packet::code::ILLEGAL),
            mac,
        )
        .await;
    }
    if request.mode != "octet" && request.mode != "netascii" {
        let mac = catalog.mac_for(peer);
        return refuse(
            packet::code::ILLEGAL,
            "Unsupported mode",
            TransferStatus::TftpRefused(packet::code::ILLEGAL),
            mac,
        )
        .await;
    }
    let opened = match catalog.open(peer, &request.filename).await {
        Ok(o) => o,
        Err(r) => return refuse(r.code, r.message, r.status, r.mac).await,
    };
    let config = catalog.config();
    let options: Vec<(&str, &str)> = request
        .options
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let limits = packet::Limits {
        block_size: config.block_size_limit,
        window_size: config.window_size_limit,
        timeout: config.timeout,
    };
    // tftp-hpa's rule: the size of a netascii transfer is not known before it is translated,
    // so `tsize` is left out of the OACK (the client then does without it).
    let netascii = request.mode == "netascii";
    let size = (!netascii).then_some(opened.len);
    let negotiated = packet::negotiate(&options, limits, size);
    // The most one window reads from the source: filled before every step of the transfer.
    let need = usize::from(negotiated.window_size) * usize::from(negotiated.block_size);
    let mut source = catalog::Source::new(opened.content, netascii);
    source.fill(need).await;
    let started = Instant::now();
    let mut transfer = Transfer::new(source, negotiated, config.max_send_retries, started);
    let outcome = drive(&socket, &mut transfer, need).await;
    let status = match outcome {
        Outcome::Done => TransferStatus::TftpComplete,
        Outcome::ClientError(code) if code != 0 => TransferStatus::TftpClientError(code),
        _ => TransferStatus::TftpIncomplete,
    };
    catalog.report(
        peer,
        opened.mac,
        &opened.path,
        transfer.acked(),
        started.elapsed(),
        status,
    );
}

/// A socket for one transfer: a fresh port on the listening address, connected to the client so
/// the kernel drops datagrams from anyone else.
fn transfer_socket(local: IpAddr, peer: SocketAddr) -> std::io::Result<tokio::net::UdpSocket> {
    let socket = UdpSocket::bind(SocketAddr::new(local, 0))?;
    socket.connect(peer)?;
    socket.set_nonblocking(true)?;
    tokio::net::UdpSocket::from_std(socket)
}

/// Runs the state machine against the socket until it ends, reading ahead up to `need` bytes of
/// the source before each step (each step reads at most one window).
async fn drive(
    socket: &tokio::net::UdpSocket,
    t: &mut Transfer<catalog::Source>,
    need: usize,
) -> Outcome {
    let mut buf = [0u8; 1500];
    let sleep = tokio::time::sleep(Duration::from_secs(3600));
    tokio::pin!(sleep);
    let mut armed: Option<Instant> = None;
    loop {
        while let Some(pkt) = t.poll_transmit() {
            if socket.send(&pkt).await.is_err() {
                // ICMP port unreachable from an earlier datagram: the client is gone.
                return Outcome::TimedOut;
            }
        }
        if let Some(outcome) = t.outcome() {
            return outcome.clone();
        }
        let Some(deadline) = t.poll_timeout() else {
            return Outcome::TimedOut;
        };
        // Every ACK pushes the deadline forward; moving the timer each time would cost a timer
        // update per block. It is re-armed only when it must fire earlier: firing early is
        // harmless (the machine ignores a timeout that is not due) and re-arms it.
        if armed.is_none_or(|a| deadline < a) {
            sleep
                .as_mut()
                .reset(tokio::time::Instant::from_std(deadline));
            armed = Some(deadline);
        }
        let received = tokio::select! {
            biased;
            received = socket.recv(&mut buf) => match received {
                Ok(n) => Some(n),
                Err(_) => return Outcome::TimedOut,
            },
            () = &mut sleep => {
                armed = None;
                None
            }
        };
        t.source_mut().fill(need).await;
        match received {
            Some(n) => t.handle_datagram(Instant::now(), &buf[..n]),
            None => t.handle_timeout(Instant::now()),
        }
    }
}
