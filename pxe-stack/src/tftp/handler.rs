//! The async-tftp handler: lookup order, confinement, limits, and the counting reader that emits
//! the transfer event when the engine drops it.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use async_tftp::packet;
use bytes::Bytes;
use futures_lite::AsyncRead;

use super::path::{confine, resolve};
use super::{Config, STATUS_BUSY, STATUS_INCOMPLETE};
use crate::events::{Event, EventKind, EventSink, Protocol};
use crate::host::{HostLookup, Mac};

/// Bytes read from disk per system call; blocks are carved out of this buffer.
const READ_BUF: usize = 256 * 1024;

#[derive(Default)]
struct Counts {
    total: usize,
    per_client: HashMap<IpAddr, usize>,
}

pub(super) struct Handler {
    root: Option<PathBuf>,
    config: Config,
    lookup: Arc<dyn HostLookup>,
    events: Arc<dyn EventSink>,
    counts: Arc<Mutex<Counts>>,
}

impl Handler {
    pub(super) fn new(
        root: Option<PathBuf>,
        config: Config,
        lookup: Arc<dyn HostLookup>,
        events: Arc<dyn EventSink>,
    ) -> Self {
        Handler {
            root,
            config,
            lookup,
            events,
            counts: Arc::default(),
        }
    }

    fn refuse(
        &self,
        peer: &SocketAddr,
        mac: Option<Mac>,
        path: &str,
        err: packet::Error,
        status: u16,
    ) -> packet::Error {
        tracing::info!(%peer, path, ?err, "tftp request refused");
        self.events.emit(Event::now(
            mac,
            Some(peer.ip()),
            EventKind::Transfer {
                protocol: Protocol::Tftp,
                path: path.to_owned(),
                bytes: 0,
                duration: std::time::Duration::ZERO,
                status,
            },
        ));
        err
    }

    /// Takes a transfer slot for `ip`, or `None` when a limit is reached.
    fn acquire(&self, ip: IpAddr) -> Option<Slot> {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let mine = counts.per_client.get(&ip).copied().unwrap_or(0);
        if counts.total >= self.config.max_total || mine >= self.config.max_per_client {
            return None;
        }
        counts.total += 1;
        *counts.per_client.entry(ip).or_insert(0) += 1;
        Some(Slot {
            ip,
            counts: Arc::clone(&self.counts),
        })
    }

    fn open(
        &self,
        rel: &str,
        peer: SocketAddr,
        mac: Option<Mac>,
    ) -> Result<Content, packet::Error> {
        if let Some(generator) = &self.config.generator {
            if let Some(bytes) = generator.generate(rel, peer, mac) {
                return Ok(Content::Memory { bytes, pos: 0 });
            }
        }
        if let Some(bytes) = self.config.files.get(rel) {
            return Ok(Content::Memory {
                bytes: bytes.clone(),
                pos: 0,
            });
        }
        let Some(root) = &self.root else {
            return Err(packet::Error::FileNotFound);
        };
        match resolve(root, rel) {
            Ok(Some(path)) => open_file(&path).map_err(|e| match e.kind() {
                io::ErrorKind::PermissionDenied => packet::Error::PermissionDenied,
                _ => packet::Error::FileNotFound,
            }),
            Ok(None) => Err(packet::Error::FileNotFound),
            Err(()) => Err(packet::Error::PermissionDenied),
        }
    }
}

fn open_file(path: &Path) -> io::Result<Content> {
    let file = File::open(path)?;
    let len = file.metadata()?.len();
    Ok(Content::File {
        file,
        len,
        buf: Vec::new(),
        start: 0,
    })
}

fn code(err: &packet::Error) -> u16 {
    match err {
        packet::Error::FileNotFound => 1,
        packet::Error::PermissionDenied => 2,
        packet::Error::DiskFull => 3,
        packet::Error::IllegalOperation => 4,
        packet::Error::UnknownTransferId => 5,
        packet::Error::FileAlreadyExists => 6,
        packet::Error::NoSuchUser => 7,
        _ => 0,
    }
}

impl async_tftp::server::Handler for Handler {
    type Reader = Reader;
    type Writer = futures_lite::io::Sink;

    async fn read_req_open(
        &mut self,
        client: &SocketAddr,
        path: &Path,
    ) -> Result<(Self::Reader, Option<u64>), packet::Error> {
        let mac = self.lookup.mac_for(client.ip().to_canonical());
        let requested = path.to_string_lossy().into_owned();
        let rel = match confine(&requested) {
            Ok(rel) => rel,
            Err(_) => {
                let err = packet::Error::PermissionDenied;
                let status = code(&err);
                return Err(self.refuse(client, mac, &requested, err, status));
            }
        };
        let Some(slot) = self.acquire(client.ip().to_canonical()) else {
            let err = packet::Error::Msg("too many concurrent transfers, retry later".into());
            return Err(self.refuse(client, mac, &requested, err, STATUS_BUSY));
        };
        let content = match self.open(&rel, *client, mac) {
            Ok(c) => c,
            Err(err) => {
                let status = code(&err);
                return Err(self.refuse(client, mac, &requested, err, status));
            }
        };
        let len = content.len();
        tracing::debug!(peer = %client, path = rel, len, "tftp transfer starts");
        Ok((
            Reader {
                content,
                sent: 0,
                len,
                started: Instant::now(),
                path: rel,
                peer: *client,
                mac,
                events: Arc::clone(&self.events),
                _slot: slot,
            },
            Some(len),
        ))
    }

    async fn write_req_open(
        &mut self,
        client: &SocketAddr,
        path: &Path,
        _size: Option<u64>,
    ) -> Result<Self::Writer, packet::Error> {
        let mac = self.lookup.mac_for(client.ip().to_canonical());
        let requested = path.to_string_lossy().into_owned();
        Err(self.refuse(client, mac, &requested, packet::Error::IllegalOperation, 4))
    }
}

/// A held transfer slot, released on drop.
struct Slot {
    ip: IpAddr,
    counts: Arc<Mutex<Counts>>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        counts.total = counts.total.saturating_sub(1);
        if let Some(n) = counts.per_client.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.per_client.remove(&self.ip);
            }
        }
    }
}

enum Content {
    Memory {
        bytes: Bytes,
        pos: usize,
    },
    File {
        file: File,
        len: u64,
        buf: Vec<u8>,
        start: usize,
    },
}

impl Content {
    fn len(&self) -> u64 {
        match self {
            Content::Memory { bytes, .. } => bytes.len() as u64,
            Content::File { len, .. } => *len,
        }
    }

    /// Reads synchronously. Boot files are small and in the page cache, and the engine reads a
    /// block at a time, so a large buffer turns thousands of tiny reads into a few big ones; a
    /// thread hop per block would cost more than the read.
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        match self {
            Content::Memory { bytes, pos } => {
                let n = out.len().min(bytes.len() - *pos);
                out[..n].copy_from_slice(&bytes[*pos..*pos + n]);
                *pos += n;
                Ok(n)
            }
            Content::File {
                file, buf, start, ..
            } => {
                if *start == buf.len() {
                    buf.resize(READ_BUF, 0);
                    let n = file.read(buf)?;
                    buf.truncate(n);
                    *start = 0;
                    if n == 0 {
                        return Ok(0);
                    }
                }
                let n = out.len().min(buf.len() - *start);
                out[..n].copy_from_slice(&buf[*start..*start + n]);
                *start += n;
                Ok(n)
            }
        }
    }
}

/// The engine's reader: counts bytes and reports the transfer when the engine drops it, which it
/// does when the transfer ends for any reason.
pub(super) struct Reader {
    content: Content,
    sent: u64,
    len: u64,
    started: Instant,
    path: String,
    peer: SocketAddr,
    mac: Option<Mac>,
    events: Arc<dyn EventSink>,
    _slot: Slot,
}

impl AsyncRead for Reader {
    fn poll_read(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        out: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let n = this.content.read(out)?;
        this.sent += n as u64;
        Poll::Ready(Ok(n))
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        let duration = self.started.elapsed();
        let status = if self.sent == self.len {
            0
        } else {
            STATUS_INCOMPLETE
        };
        tracing::info!(peer = %self.peer, path = self.path, bytes = self.sent, ?duration, status, "tftp transfer");
        self.events.emit(Event::now(
            self.mac,
            Some(self.peer.ip()),
            EventKind::Transfer {
                protocol: Protocol::Tftp,
                path: std::mem::take(&mut self.path),
                bytes: self.sent,
                duration,
                status,
            },
        ));
    }
}
