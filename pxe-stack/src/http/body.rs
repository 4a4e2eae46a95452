//! The response body: empty, in memory, or streamed from a file; it reports the request (access
//! log and event) when the connection is done with it.
//!
//! A file chunk is read when the connection asks for it, into a buffer recycled through a pool
//! ([`BufPool`]). Data in the page cache (boot files that a rack fetches over and over) is read
//! right there, on the connection's task, with `preadv2(RWF_NOWAIT)`, which copies what is cached
//! and never waits for the disk; anything else is read by a few threads shared by every download
//! of the server ([`Readers`]). Neither the threads nor the buffers grow with the number of
//! downloads: a thousand hosts fetching kernels at once cost what the [`ChunkBudget`] allows, not
//! a thread and a few fresh buffers each.

use std::fs::File;
use std::future::Future;
use std::io;
use std::os::unix::fs::FileExt;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use tokio::sync::oneshot;

use super::access::{AccessEntry, Reporters};
use crate::lock;

/// The body of every response the server sends.
pub(crate) struct Body {
    kind: Kind,
    sent: u64,
    report: Option<Report>,
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Body")
            .field("sent", &self.sent)
            .finish_non_exhaustive()
    }
}

enum Kind {
    Empty,
    Full(Option<Bytes>),
    Stream(Box<Stream>),
}

/// A file range being sent: `pos..end` is still to be delivered, and the chunk starting at
/// `pos` is being read by a reader thread when `reading` is set.
struct Stream {
    file: Arc<File>,
    pos: u64,
    end: u64,
    reading: Option<oneshot::Receiver<io::Result<Bytes>>>,
    /// The file system takes `RWF_NOWAIT` reads (most do; the first refusal turns it off).
    nowait: bool,
    share: Share,
    files: Arc<FileIo>,
}

/// What to report when the body is dropped.
pub(crate) struct Report {
    pub(crate) reporters: Arc<Reporters>,
    pub(crate) entry: AccessEntry,
    pub(crate) path: String,
    pub(crate) started: Instant,
}

impl Body {
    pub(crate) fn empty() -> Self {
        Body {
            kind: Kind::Empty,
            sent: 0,
            report: None,
        }
    }

    pub(crate) fn full(bytes: Bytes) -> Self {
        Body {
            kind: Kind::Full(Some(bytes)),
            sent: 0,
            report: None,
        }
    }

    /// Streams `len` bytes of `file` from `start`, in chunks that shrink while many downloads
    /// share the budget of `files`.
    pub(crate) fn file(file: File, start: u64, len: u64, files: &Arc<FileIo>) -> Self {
        let stream = Stream {
            file: Arc::new(file),
            pos: start,
            end: start + len,
            reading: None,
            nowait: files.nowait,
            share: files.budget.join(),
            files: Arc::clone(files),
        };
        Body {
            kind: Kind::Stream(Box::new(stream)),
            sent: 0,
            report: None,
        }
    }

    pub(crate) fn with_report(mut self, report: Report) -> Self {
        self.report = Some(report);
        self
    }
}

impl Stream {
    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<Bytes>>> {
        let reading = match &mut self.reading {
            Some(reading) => reading,
            None => {
                let left = self.end - self.pos;
                if left == 0 {
                    return Poll::Ready(None);
                }
                let want = left.min(self.share.chunk() as u64) as usize;
                let buf = match self.read_cached(self.files.buffers.take(want)) {
                    Ok(read) => return Poll::Ready(Some(self.advance(read))),
                    Err(buf) => buf,
                };
                let (file, pos) = (Arc::clone(&self.file), self.pos);
                let job = self.files.readers.run(move || read_chunk(&file, pos, buf));
                self.reading.insert(job)
            }
        };
        let read = ready!(Pin::new(reading).poll(cx))
            .unwrap_or_else(|_| Err(io::Error::other("file reader stopped")));
        self.reading = None;
        Poll::Ready(Some(self.advance(read)))
    }

    /// Moves past a chunk read, or ends the range after an error.
    fn advance(&mut self, read: io::Result<Bytes>) -> io::Result<Bytes> {
        match &read {
            Ok(bytes) => self.pos += bytes.len() as u64,
            Err(_) => self.end = self.pos,
        }
        read
    }

    /// Reads the chunk at `pos` here if the page cache holds (the start of) it; gives the
    /// buffer back when the disk would have to be waited for.
    fn read_cached(&mut self, mut buf: PooledBuf) -> Result<io::Result<Bytes>, PooledBuf> {
        if !self.nowait {
            return Err(buf);
        }
        let want = buf.filled;
        let mut slices = [io::IoSliceMut::new(&mut buf.buf[..want])];
        match rustix::io::preadv2(
            &*self.file,
            &mut slices,
            self.pos,
            rustix::io::ReadWriteFlags::NOWAIT,
        ) {
            Ok(0) => Ok(Err(shrank())),
            Ok(n) => {
                buf.filled = n;
                Ok(Ok(Bytes::from_owner(buf)))
            }
            Err(rustix::io::Errno::AGAIN | rustix::io::Errno::INTR) => Err(buf),
            Err(_) => {
                // Not supported here (EOPNOTSUPP, or an old kernel): the reader threads read
                // this file from now on, and report any real error.
                self.nowait = false;
                Err(buf)
            }
        }
    }
}

fn shrank() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "file shrank while being served",
    )
}

/// Fills `buf` from `file` at `pos` (a short read only at the end of the file).
fn read_chunk(file: &File, pos: u64, mut buf: PooledBuf) -> io::Result<Bytes> {
    let want = buf.filled;
    let mut got = 0;
    while got < want {
        match file.read_at(&mut buf.buf[got..want], pos + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    if got == 0 {
        return Err(shrank());
    }
    buf.filled = got;
    Ok(Bytes::from_owner(buf))
}

/// Everything a server's file downloads share: the reader threads, the buffer pool and the
/// memory budget.
pub(crate) struct FileIo {
    pub(crate) readers: Readers,
    buffers: Arc<BufPool>,
    budget: ChunkBudget,
    /// Try `RWF_NOWAIT` reads on the connection's task first (off in tests of the threads).
    nowait: bool,
}

impl FileIo {
    /// `threads` reader threads; chunks of up to `max_chunk` bytes, and of all downloads
    /// together near `budget` bytes.
    pub(crate) fn start(threads: usize, budget: usize, max_chunk: usize) -> io::Result<Arc<Self>> {
        Ok(Arc::new(FileIo {
            readers: Readers::start(threads)?,
            // Idle buffers kept for reuse: at most a quarter of the budget again.
            buffers: Arc::new(BufPool::new(budget / 4)),
            budget: ChunkBudget::new(budget, max_chunk),
            nowait: true,
        }))
    }
}

/// A fixed set of threads for the server's blocking file work (opening files, reading chunks).
/// They stop when the server and every body using them are gone.
pub(crate) struct Readers {
    jobs: crossbeam_channel::Sender<Job>,
}

type Job = Box<dyn FnOnce() + Send>;

impl Readers {
    fn start(threads: usize) -> io::Result<Self> {
        let (jobs, queue) = crossbeam_channel::unbounded::<Job>();
        for i in 0..threads.max(1) {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("http-file-{i}"))
                .spawn(move || {
                    for job in queue {
                        job();
                    }
                })?;
        }
        Ok(Readers { jobs })
    }

    /// Runs `f` on a reader thread; the receiver gets its result. Nothing runs for a receiver
    /// dropped before its turn.
    pub(crate) fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> oneshot::Receiver<T> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move || {
            if !tx.is_closed() {
                let _ = tx.send(f());
            }
        });
        // The threads live as long as this sender: the queue cannot be disconnected here.
        let _ = self.jobs.send(job);
        rx
    }
}

/// Chunk buffers by power-of-two size, returned here when hyper is done with them, so a storm
/// of downloads reuses the same memory instead of asking the allocator for fresh chunks on
/// many threads (which fragments and keeps freed memory resident).
pub(crate) struct BufPool {
    free: Mutex<PoolFree>,
    keep: usize,
}

#[derive(Default)]
struct PoolFree {
    /// `classes[k]` holds idle buffers of `MIN_CHUNK << k` bytes.
    classes: Vec<Vec<Vec<u8>>>,
    bytes: usize,
}

/// A pooled buffer and how much of it holds data; back to the pool on drop.
struct PooledBuf {
    buf: Vec<u8>,
    filled: usize,
    pool: Arc<BufPool>,
}

impl AsRef<[u8]> for PooledBuf {
    fn as_ref(&self) -> &[u8] {
        &self.buf[..self.filled]
    }
}

impl Drop for PooledBuf {
    fn drop(&mut self) {
        self.pool.give(std::mem::take(&mut self.buf));
    }
}

impl BufPool {
    /// A pool keeping at most `keep` bytes of idle buffers.
    fn new(keep: usize) -> Self {
        BufPool {
            free: Mutex::default(),
            keep,
        }
    }

    /// The size class for a read of `want` bytes: the largest power of two not above it, at
    /// least [`MIN_CHUNK`].
    fn class(want: usize) -> usize {
        let size = want.max(MIN_CHUNK);
        (usize::BITS - 1 - size.leading_zeros()) as usize - MIN_CHUNK.trailing_zeros() as usize
    }

    /// A buffer for a read of up to `want` bytes (its `filled` is the read size).
    fn take(self: &Arc<Self>, want: usize) -> PooledBuf {
        let class = Self::class(want);
        let size = MIN_CHUNK << class;
        let reused = {
            let mut free = lock(&self.free);
            let buf = free.classes.get_mut(class).and_then(Vec::pop);
            if buf.is_some() {
                free.bytes -= size;
            }
            buf
        };
        PooledBuf {
            buf: reused.unwrap_or_else(|| vec![0; size]),
            filled: size.min(want),
            pool: Arc::clone(self),
        }
    }

    fn give(&self, buf: Vec<u8>) {
        let size = buf.len();
        if !size.is_power_of_two() || size < MIN_CHUNK {
            return;
        }
        let class = Self::class(size);
        let mut free = lock(&self.free);
        if free.bytes + size > self.keep {
            return;
        }
        if free.classes.len() <= class {
            free.classes.resize_with(class + 1, Vec::new);
        }
        free.classes[class].push(buf);
        free.bytes += size;
    }
}

/// The memory budget shared by every file download of one server.
#[derive(Debug, Clone)]
pub(crate) struct ChunkBudget {
    bytes: usize,
    max_chunk: usize,
    active: Arc<AtomicUsize>,
}

/// One download's share of the budget; leaving it (drop) frees the share.
pub(crate) struct Share {
    bytes: usize,
    max_chunk: usize,
    active: Arc<AtomicUsize>,
}

/// The smallest read, so that even a thousand downloads make progress in sensible steps.
const MIN_CHUNK: usize = 4 * 1024;

impl ChunkBudget {
    /// `bytes` for all downloads together, chunks of at most `max_chunk` (and at least
    /// [`MIN_CHUNK`]) bytes.
    pub(crate) fn new(bytes: usize, max_chunk: usize) -> Self {
        ChunkBudget {
            bytes,
            max_chunk: max_chunk.max(MIN_CHUNK),
            active: Arc::new(AtomicUsize::new(0)),
        }
    }

    fn join(&self) -> Share {
        self.active.fetch_add(1, Ordering::Relaxed);
        Share {
            bytes: self.bytes,
            max_chunk: self.max_chunk,
            active: self.active.clone(),
        }
    }
}

impl Share {
    /// This download's next read size: at most the largest chunk, and about half its share of
    /// the budget (a download holds up to two chunks: the one the connection is writing and the
    /// one being read).
    fn chunk(&self) -> usize {
        let active = self.active.load(Ordering::Relaxed).max(1);
        (self.bytes / (2 * active)).clamp(MIN_CHUNK, self.max_chunk)
    }
}

impl Drop for Share {
    fn drop(&mut self) {
        self.active.fetch_sub(1, Ordering::Relaxed);
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        let out = match &mut this.kind {
            Kind::Empty => None,
            Kind::Full(b) => b.take().map(Ok),
            Kind::Stream(stream) => match stream.poll_chunk(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(out) => out,
            },
        };
        if let Some(Ok(b)) = &out {
            this.sent += b.len() as u64;
        }
        Poll::Ready(out.map(|r| r.map(Frame::data)))
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Empty => true,
            Kind::Full(b) => b.is_none(),
            Kind::Stream(stream) => stream.pos == stream.end,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Empty => SizeHint::with_exact(0),
            Kind::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::Stream(stream) => SizeHint::with_exact(stream.end - stream.pos),
        }
    }
}

impl Drop for Body {
    fn drop(&mut self) {
        if let Some(mut r) = self.report.take() {
            r.entry.end = SystemTime::now();
            r.entry.duration = r.started.elapsed();
            r.entry.bytes = self.sent;
            r.reporters.report(&r.entry, r.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_shrink_as_downloads_share_the_budget() {
        let budget = ChunkBudget::new(64 << 20, 512 << 10);
        let first = budget.join();
        assert_eq!(first.chunk(), 512 << 10, "alone: the full chunk");
        let many: Vec<_> = (0..999).map(|_| budget.join()).collect();
        let c = first.chunk();
        assert!((MIN_CHUNK..512 << 10).contains(&c), "{c}");
        assert!(2 * c * 1000 <= (64 << 20) + 2 * MIN_CHUNK * 1000);
        drop(many);
        assert_eq!(first.chunk(), 512 << 10, "shares come back");
    }

    #[test]
    fn buffers_come_in_power_of_two_classes() {
        assert_eq!(BufPool::class(1), 0);
        assert_eq!(BufPool::class(MIN_CHUNK), 0);
        assert_eq!(BufPool::class(MIN_CHUNK * 2 - 1), 0);
        assert_eq!(BufPool::class(MIN_CHUNK * 2), 1);
        assert_eq!(BufPool::class(512 << 10), 7);
        assert_eq!(BufPool::class((512 << 10) + 1), 7);
    }

    #[test]
    fn buffers_are_reused_up_to_the_kept_bytes() {
        let pool = Arc::new(BufPool::new(3 * MIN_CHUNK));
        let a = pool.take(100);
        assert_eq!((a.buf.len(), a.filled), (MIN_CHUNK, 100));
        let a_ptr = a.buf.as_ptr();
        drop(a);
        let again = pool.take(MIN_CHUNK + 5);
        assert_eq!(again.buf.as_ptr(), a_ptr, "the idle buffer is reused");
        assert_eq!(again.filled, MIN_CHUNK, "a read never exceeds its class");
        let big: Vec<_> = (0..2).map(|_| pool.take(2 * MIN_CHUNK)).collect();
        drop(big);
        drop(again);
        let free = lock(&pool.free);
        // One 8 KiB buffer and the 4 KiB one are kept; the second 8 KiB one would exceed 12 KiB.
        assert_eq!(free.bytes, 3 * MIN_CHUNK);
        assert_eq!(free.classes[1].len(), 1);
    }

    /// Both read paths, with chunks of up to `max_chunk`: in place from the page cache, and on
    /// the reader threads.
    fn file_ios(max_chunk: usize) -> [Arc<FileIo>; 2] {
        let in_place = FileIo::start(1, 64 << 10, max_chunk).unwrap();
        let mut threads = FileIo::start(2, 64 << 10, max_chunk).unwrap();
        Arc::get_mut(&mut threads).unwrap().nowait = false;
        [in_place, threads]
    }

    #[tokio::test]
    async fn a_file_range_streams_in_chunks() {
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        for files in file_ios(32 << 10) {
            let mut tmp = tempfile::tempfile().unwrap();
            std::io::Write::write_all(&mut tmp, &data).unwrap();
            let body = Body::file(tmp, 1000, 250_000, &files);
            assert_eq!(http_body::Body::size_hint(&body).exact(), Some(250_000));
            let got = http_body_util::BodyExt::collect(body)
                .await
                .unwrap()
                .to_bytes();
            assert_eq!(&got[..], &data[1000..251_000], "nowait: {}", files.nowait);
        }
    }

    #[tokio::test]
    async fn a_file_that_shrinks_ends_the_body_with_an_error() {
        for files in file_ios(4096) {
            let mut tmp = tempfile::tempfile().unwrap();
            std::io::Write::write_all(&mut tmp, &[7u8; 10_000]).unwrap();
            let body = Body::file(tmp, 0, 20_000, &files);
            let err = http_body_util::BodyExt::collect(body).await.unwrap_err();
            assert_eq!(
                err.kind(),
                io::ErrorKind::UnexpectedEof,
                "nowait: {}",
                files.nowait
            );
        }
    }
}
