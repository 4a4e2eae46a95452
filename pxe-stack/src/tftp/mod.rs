//! The TFTP server: read-only boot files from a directory, from memory, or generated per host.
//!
//! TFTP only carries the first small boot file (an iPXE binary); everything after it goes over
//! HTTP. The protocol engine is [`async_tftp`] (RFC 1350, 2347, 2348 `blksize`, 2349 `timeout`
//! and `tsize`, 7440 `windowsize`, block-number wraparound). This module adds what it lacks:
//! path confinement that also resolves symlinks, refusal of writes, per-client and total
//! concurrency limits, and a [`Transfer`](crate::EventKind::Transfer) event per request.
//!
//! ```no_run
//! # async fn run() -> Result<(), pxe_stack::tftp::Error> {
//! use pxe_stack::tftp::{Config, Server};
//!
//! let socket = std::net::UdpSocket::bind("192.168.126.1:69")?;
//! let mut config = Config::default();
//! config.root = Some("/srv/tftp".into());
//! config.files.insert("boot.ipxe".into(), "#!ipxe\nchain http://192.168.126.1/boot\n".into());
//! Server::new(config).serve(socket, std::future::pending()).await
//! # }
//! ```

mod handler;
pub(crate) mod path;

use std::collections::HashMap;
use std::future::Future;
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::events::{Discard, EventSink};
use crate::host::{HostLookup, Mac, NoLookup};

/// [`EventKind::Transfer`](crate::EventKind::Transfer) status of a request refused because a
/// concurrency limit was reached (the client gets TFTP error 0 with a message).
pub const STATUS_BUSY: u16 = 1000;
/// [`EventKind::Transfer`](crate::EventKind::Transfer) status of a transfer that ended before
/// the whole file was read (the client went away or stopped acknowledging).
pub const STATUS_INCOMPLETE: u16 = 1001;

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
            max_total: 128,
            block_size_limit: 1468,
            window_size_limit: 64,
            timeout: Duration::from_secs(3),
            max_send_retries: 10,
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
    /// The protocol engine failed.
    #[error("tftp engine error")]
    Engine(#[source] async_tftp::Error),
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
    /// Transfers in flight when `shutdown` completes are abandoned (TFTP has no graceful close;
    /// the client retries).
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
            Some(path) => Some(
                std::fs::canonicalize(path)
                    .and_then(|p| {
                        if p.is_dir() {
                            Ok(p)
                        } else {
                            Err(std::io::Error::new(
                                std::io::ErrorKind::NotADirectory,
                                "not a directory",
                            ))
                        }
                    })
                    .map_err(|source| Error::Root {
                        path: path.clone(),
                        source,
                    })?,
            ),
            None => None,
        };
        let handler = handler::Handler::new(root, self.config.clone(), self.lookup, self.events);
        let server = async_tftp::server::TftpServerBuilder::with_handler(handler)
            .std_socket(socket)
            .map_err(Error::Engine)?
            .timeout(self.config.timeout)
            .block_size_limit(self.config.block_size_limit)
            .window_size_limit(self.config.window_size_limit)
            .max_send_retries(self.config.max_send_retries)
            .build()
            .await
            .map_err(Error::Engine)?;
        tracing::info!(%addr, "tftp server listening");
        let serve = server.serve();
        tokio::select! {
            res = serve => res.map_err(Error::Engine),
            () = shutdown => Ok(()),
        }
    }
}
