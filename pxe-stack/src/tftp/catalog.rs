//! The server's catalog: what a request gets (generator, memory, root, in that order), after
//! confinement and the concurrency limits, and the transfer event it leaves.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::{self, Read};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Buf, Bytes};

use super::Config;
use super::packet::code;
use crate::events::{Event, EventKind, EventSink, Protocol, TransferStatus};
use crate::files::{FileIo, FileStream, Unservable, confine, open_beneath};
use crate::host::{HostLookup, Mac};
use crate::lock;

/// The largest disk read for a file too big to share; blocks are carved out of these chunks.
const MAX_CHUNK: usize = 64 * 1024;

/// Reader threads for files too big to share. TFTP carries small boot loaders, which come from
/// the shared copies; big files are the exception, and a page-cache hit needs no thread at all.
const FILE_THREADS: usize = 2;

/// The memory all transfers of big files together may hold in chunks read ahead.
const FILE_BUDGET: usize = 4 << 20;

/// Files up to this size are read once and shared by every transfer of them: boot loaders
/// (`undionly.kpxe` is 70 KiB, `snponly.efi` 200 KiB, `ipxe.efi` 1 MiB) are what a storm of
/// firmware asks for at once, and a copy per transfer is what would make memory grow with N.
const SHARE_MAX_FILE: u64 = 4 << 20;

/// Total bytes of shared files kept.
const SHARE_MAX_TOTAL: u64 = 32 << 20;

#[derive(Default)]
struct Counts {
    total: usize,
    per_client: HashMap<IpAddr, usize>,
}

/// What every request of one server consults: the configuration, the shared copies of small
/// files, the reader for big ones, the concurrency counts and the event sink.
pub(super) struct Catalog {
    root: Option<PathBuf>,
    /// Reads files too big to share; present when there is a root.
    files: Option<Arc<FileIo>>,
    config: Config,
    lookup: Arc<dyn HostLookup>,
    events: Arc<dyn EventSink>,
    counts: Arc<Mutex<Counts>>,
    shared: Mutex<SmallFiles>,
}

/// Small files read once and shared, each with the identity of the version it holds.
#[derive(Default)]
struct SmallFiles {
    files: HashMap<PathBuf, (FileId, Bytes)>,
    /// Paths in the order they were added, oldest first, for eviction.
    order: std::collections::VecDeque<PathBuf>,
    total: u64,
}

/// What must be unchanged for a shared copy to stand for the file on disk: a file replaced by
/// rename gets another inode; one rewritten in place another length or modification time.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct FileId {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: Option<std::time::SystemTime>,
}

impl FileId {
    fn of(meta: &std::fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt;
        FileId {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            mtime: meta.modified().ok(),
        }
    }
}

impl SmallFiles {
    fn get(&self, path: &Path, id: FileId) -> Option<Bytes> {
        match self.files.get(path) {
            Some((have, bytes)) if *have == id => Some(bytes.clone()),
            _ => None,
        }
    }

    /// Keeps `bytes` as the shared copy of `path`, evicting the oldest copies to make room.
    fn insert(&mut self, path: PathBuf, id: FileId, bytes: Bytes) {
        let len = bytes.len() as u64;
        if let Some((_, old)) = self.files.remove(&path) {
            self.total -= old.len() as u64;
            self.order.retain(|p| *p != path);
        }
        while self.total + len > SHARE_MAX_TOTAL {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            if let Some((_, old)) = self.files.remove(&oldest) {
                self.total -= old.len() as u64;
            }
        }
        self.total += len;
        self.order.push_back(path.clone());
        self.files.insert(path, (id, bytes));
    }
}

/// A request that will be served.
pub(super) struct Opened {
    pub(super) content: Content,
    pub(super) len: u64,
    /// The normalized path, for the event.
    pub(super) path: String,
    pub(super) mac: Option<Mac>,
    pub(super) _slot: Slot,
}

/// A request that is refused with a TFTP error packet.
#[derive(Debug)]
pub(super) struct Refused {
    pub(super) code: u16,
    pub(super) message: &'static str,
    /// The event status.
    pub(super) status: TransferStatus,
    pub(super) mac: Option<Mac>,
}

impl Catalog {
    /// Starts the reader threads when there is a `root` to read from.
    pub(super) fn new(
        root: Option<PathBuf>,
        config: Config,
        lookup: Arc<dyn HostLookup>,
        events: Arc<dyn EventSink>,
    ) -> io::Result<Self> {
        let files = match root {
            Some(_) => Some(FileIo::start(
                "tftp-file",
                FILE_THREADS,
                FILE_BUDGET,
                MAX_CHUNK,
            )?),
            None => None,
        };
        Ok(Catalog {
            root,
            files,
            config,
            lookup,
            events,
            counts: Arc::default(),
            shared: Mutex::default(),
        })
    }

    pub(super) fn config(&self) -> &Config {
        &self.config
    }

    pub(super) fn mac_for(&self, peer: SocketAddr) -> Option<Mac> {
        self.lookup.mac_for(peer.ip().to_canonical())
    }

    /// Decides a read request: confinement first, then the limits, then the lookup. Files
    /// under the root are opened (and small ones read) on the reader threads, so a slow disk
    /// or a stalled open never holds up the runtime's threads and the other servers on them.
    pub(super) async fn open(
        self: &Arc<Self>,
        peer: SocketAddr,
        filename: &str,
    ) -> Result<Opened, Refused> {
        let mac = self.mac_for(peer);
        let refuse = |code, message, status| Refused {
            code,
            message,
            status,
            mac,
        };
        // TFTP has no working directory: a leading `/` names the served root, as with
        // tftpd-hpa's `--secure` (GRUB asks for `/grub/grub.cfg`). Only one is taken off, so
        // `//x` is still refused.
        let Ok(rel) = confine(filename.strip_prefix('/').unwrap_or(filename)) else {
            return Err(refuse(
                code::ACCESS,
                "Access violation",
                TransferStatus::TftpRefused(code::ACCESS),
            ));
        };
        let Some(slot) = self.acquire(peer.ip().to_canonical()) else {
            return Err(refuse(
                code::UNDEFINED,
                "Too many concurrent transfers, retry later",
                TransferStatus::TftpBusy,
            ));
        };
        let content = match self.in_memory(&rel, peer, mac) {
            Some(content) => Ok(content),
            None => match &self.files {
                Some(files) => {
                    let me = Arc::clone(self);
                    let path = rel.clone();
                    files
                        .readers
                        .run(move || me.on_disk(&path))
                        .await
                        .unwrap_or(Err(code::NOT_FOUND))
                }
                None => Err(code::NOT_FOUND),
            },
        };
        let content = content.map_err(|code| {
            let message = if code == code::ACCESS {
                "Access violation"
            } else {
                "File not found"
            };
            refuse(code, message, TransferStatus::TftpRefused(code))
        })?;
        Ok(Opened {
            len: content.len(),
            content,
            path: rel,
            mac,
            _slot: slot,
        })
    }

    /// Emits the transfer event.
    pub(super) fn report(
        &self,
        peer: SocketAddr,
        mac: Option<Mac>,
        path: &str,
        bytes: u64,
        duration: Duration,
        status: TransferStatus,
    ) {
        tracing::info!(%peer, path, bytes, ?duration, ?status, "tftp transfer");
        self.events.emit(Event::now(
            mac,
            Some(peer.ip().to_canonical()),
            EventKind::Transfer {
                protocol: Protocol::Tftp,
                path: path.to_owned(),
                bytes,
                duration,
                status,
            },
        ));
    }

    /// Takes a transfer slot for `ip`, or `None` when a limit is reached.
    fn acquire(&self, ip: IpAddr) -> Option<Slot> {
        let mut counts = lock(&self.counts);
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

    /// Generated or in-memory content for a confined path.
    fn in_memory(&self, rel: &str, peer: SocketAddr, mac: Option<Mac>) -> Option<Content> {
        if let Some(generator) = &self.config.generator
            && let Some(bytes) = generator.generate(rel, peer, mac)
        {
            return Some(Content::Memory { bytes, pos: 0 });
        }
        self.config.files.get(rel).map(|bytes| Content::Memory {
            bytes: bytes.clone(),
            pos: 0,
        })
    }

    /// A confined path opened beneath the root (blocking: runs on a reader thread), or the TFTP
    /// error code.
    fn on_disk(&self, rel: &str) -> Result<Content, u16> {
        let Some(root) = &self.root else {
            return Err(code::NOT_FOUND);
        };
        let (file, meta) = open_beneath(root, rel).map_err(|e| match e {
            Unservable::NotFound => code::NOT_FOUND,
            Unservable::Forbidden => code::ACCESS,
        })?;
        self.open_file(root.join(rel), file, &meta)
            .map_err(|e| match e.kind() {
                io::ErrorKind::PermissionDenied => code::ACCESS,
                _ => code::NOT_FOUND,
            })
    }

    /// Opens a file under the root: the shared copy when it is current, a new shared copy when
    /// the file is small, otherwise a stream from disk.
    fn open_file(
        &self,
        path: PathBuf,
        mut file: File,
        meta: &std::fs::Metadata,
    ) -> io::Result<Content> {
        let id = FileId::of(meta);
        if id.len > SHARE_MAX_FILE
            && let Some(files) = &self.files
        {
            return Ok(Content::File {
                stream: FileStream::new(file, 0, id.len, files),
                ahead: VecDeque::new(),
                buffered: 0,
                failed: None,
            });
        }
        if let Some(bytes) = lock(&self.shared).get(&path, id) {
            return Ok(Content::Memory { bytes, pos: 0 });
        }
        let mut buf = Vec::with_capacity(id.len as usize);
        file.read_to_end(&mut buf)?;
        let bytes = Bytes::from(buf);
        // A file that changed while it was read is served as read but not shared.
        if bytes.len() as u64 == id.len && FileId::of(&file.metadata()?) == id {
            lock(&self.shared).insert(path, id, bytes.clone());
        }
        Ok(Content::Memory { bytes, pos: 0 })
    }
}

/// A held transfer slot, released on drop.
pub(super) struct Slot {
    ip: IpAddr,
    counts: Arc<Mutex<Counts>>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = lock(&self.counts);
        counts.total = counts.total.saturating_sub(1);
        if let Some(n) = counts.per_client.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.per_client.remove(&self.ip);
            }
        }
    }
}

/// A file's bytes, from memory or disk.
pub(super) enum Content {
    Memory {
        bytes: Bytes,
        pos: usize,
    },
    /// A file too big to share, read ahead of the transfer by [`fill`](Content::fill).
    File {
        stream: FileStream,
        /// Chunks read and not yet sent, oldest first.
        ahead: VecDeque<Bytes>,
        /// Bytes in `ahead`.
        buffered: usize,
        /// A read error, for the read after the bytes before it.
        failed: Option<io::Error>,
    },
}

impl Content {
    fn len(&self) -> u64 {
        match self {
            Content::Memory { bytes, .. } => bytes.len() as u64,
            Content::File {
                stream, buffered, ..
            } => stream.remaining() + *buffered as u64,
        }
    }

    /// Reads ahead until `need` bytes (or the rest of the file) wait in memory, so the
    /// transfer's synchronous reads never touch the disk on the runtime's threads: the chunks
    /// come from the page cache in place, or from the reader threads while this task waits.
    pub(super) async fn fill(&mut self, need: usize) {
        let Content::File {
            stream,
            ahead,
            buffered,
            failed,
        } = self
        else {
            return;
        };
        while *buffered < need && failed.is_none() {
            match std::future::poll_fn(|cx| stream.poll_chunk(cx)).await {
                None => break,
                Some(Ok(chunk)) => {
                    *buffered += chunk.len();
                    ahead.push_back(chunk);
                }
                // A file that shrank ends the transfer short, as reading it to its end would;
                // the client sees fewer bytes than `tsize` promised.
                Some(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => break,
                Some(Err(e)) => *failed = Some(e),
            }
        }
    }
}

/// Reads from memory: the shared copy, or the chunks [`Content::fill`] read ahead.
impl Read for Content {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        match self {
            Content::Memory { bytes, pos } => {
                let n = out.len().min(bytes.len() - *pos);
                out[..n].copy_from_slice(&bytes[*pos..*pos + n]);
                *pos += n;
                Ok(n)
            }
            Content::File {
                stream,
                ahead,
                buffered,
                failed,
            } => {
                if let Some(front) = ahead.front_mut() {
                    let n = out.len().min(front.len());
                    out[..n].copy_from_slice(&front[..n]);
                    front.advance(n);
                    if front.is_empty() {
                        ahead.pop_front();
                    }
                    *buffered -= n;
                    return Ok(n);
                }
                if let Some(e) = failed.take() {
                    return Err(e);
                }
                if stream.remaining() > 0 {
                    // `fill` was not awaited for this window: a bug, reported as a read error
                    // rather than a blocking read on the runtime's thread.
                    return Err(io::Error::new(
                        io::ErrorKind::WouldBlock,
                        "tftp read ahead of the filled bytes",
                    ));
                }
                Ok(0)
            }
        }
    }
}

/// What a transfer reads: the content, translated to netascii when the client asked for it.
pub(super) struct Source {
    content: Content,
    /// `Some` in netascii mode: the second byte of a translation that did not fit the last read.
    netascii: Option<Option<u8>>,
}

impl Source {
    /// `content` as stored (`octet`), or translated as tftp-hpa and dnsmasq do (`netascii`): LF
    /// becomes CR LF and CR becomes CR NUL. A translated transfer is longer than the file, by
    /// an amount known only after reading it all, which is why `tsize` is not offered for it.
    pub(super) fn new(content: Content, netascii: bool) -> Self {
        Source {
            content,
            netascii: netascii.then_some(None),
        }
    }

    /// See [`Content::fill`]: translation only grows the data, so `need` bytes of content
    /// always cover a read of `need` translated bytes.
    pub(super) async fn fill(&mut self, need: usize) {
        self.content.fill(need).await;
    }
}

impl Read for Source {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let Some(pending) = &mut self.netascii else {
            return self.content.read(out);
        };
        if out.is_empty() {
            return Ok(0);
        }
        let mut n = 0;
        if let Some(b) = pending.take() {
            out[0] = b;
            n = 1;
        }
        // Read at most half the room left (at least one byte): each byte becomes at most two,
        // so at most one byte is left over for the next read.
        let mut raw = [0u8; 1024];
        let want = ((out.len() - n) / 2).clamp(1, raw.len());
        if n == out.len() {
            return Ok(n);
        }
        let got = self.content.read(&mut raw[..want])?;
        for &b in &raw[..got] {
            let (first, second) = match b {
                b'\n' => (b'\r', Some(b'\n')),
                b'\r' => (b'\r', Some(0)),
                b => (b, None),
            };
            out[n] = first;
            n += 1;
            if let Some(second) = second {
                if n < out.len() {
                    out[n] = second;
                    n += 1;
                } else {
                    *pending = Some(second);
                }
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn big_file(len: usize) -> (File, Vec<u8>) {
        let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let mut tmp = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut tmp, &data).unwrap();
        (tmp, data)
    }

    fn content(file: File, len: u64) -> Content {
        let files = FileIo::start("test-tftp", 1, FILE_BUDGET, MAX_CHUNK).unwrap();
        Content::File {
            stream: FileStream::new(file, 0, len, &files),
            ahead: VecDeque::new(),
            buffered: 0,
            failed: None,
        }
    }

    #[tokio::test]
    async fn big_files_are_read_from_what_fill_read_ahead() {
        let (file, data) = big_file(300_000);
        let mut c = content(file, data.len() as u64);
        assert_eq!(c.len(), 300_000);
        let mut out = vec![0u8; 1468 * 64];
        let mut got = Vec::new();
        loop {
            c.fill(out.len()).await;
            let mut n = 0;
            while n < out.len() {
                match c.read(&mut out[n..]).unwrap() {
                    0 => break,
                    k => n += k,
                }
            }
            got.extend_from_slice(&out[..n]);
            if n < out.len() {
                break;
            }
        }
        assert_eq!(got, data);
    }

    #[tokio::test]
    async fn reading_past_the_filled_bytes_is_an_error_not_a_blocking_read() {
        let (file, _) = big_file(200_000);
        let mut c = content(file, 200_000);
        c.fill(1000).await;
        let mut out = vec![0u8; 200_000];
        let mut n = 0;
        let err = loop {
            match c.read(&mut out[n..]) {
                Ok(k) => n += k,
                Err(e) => break e,
            }
        };
        assert!(n >= 1000, "{n}");
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
    }

    #[test]
    fn netascii_translates_line_ends_across_reads_of_any_size() {
        let text = b"a\nb\r\nc\rd\n\n".repeat(300);
        let mut expected = Vec::new();
        for &b in &text {
            match b {
                b'\n' => expected.extend_from_slice(b"\r\n"),
                b'\r' => expected.extend_from_slice(b"\r\0"),
                b => expected.push(b),
            }
        }
        for step in [1, 2, 3, 7, 512, 1468, 8192] {
            let content = Content::Memory {
                bytes: Bytes::from(text.clone()),
                pos: 0,
            };
            let mut source = Source::new(content, true);
            let mut got = Vec::new();
            let mut buf = vec![0u8; step];
            loop {
                match source.read(&mut buf).unwrap() {
                    0 => break,
                    n => got.extend_from_slice(&buf[..n]),
                }
            }
            assert_eq!(got, expected, "reads of {step}");
        }
        let mut octet = Source::new(
            Content::Memory {
                bytes: Bytes::from_static(b"a\nb"),
                pos: 0,
            },
            false,
        );
        let mut got = Vec::new();
        octet.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"a\nb");
    }

    #[tokio::test]
    async fn a_big_file_that_shrinks_ends_short() {
        let (file, data) = big_file(100_000);
        let mut c = content(file, 150_000);
        c.fill(200_000).await;
        let mut got = Vec::new();
        c.read_to_end(&mut got).unwrap();
        assert_eq!(got, data);
    }
}
