//! Reading a file range in chunks without blocking the runtime: in place from the page cache
//! with `preadv2(RWF_NOWAIT)`, on a fixed set of reader threads when the disk would be waited
//! for.
//!
//! Boot files that a rack fetches over and over are in the page cache, so the common case is a
//! copy on the caller's task with no thread hop. Anything else goes to a few threads shared by
//! every download of the server, fed by a `crossbeam-channel` queue: neither the threads nor the
//! buffers grow with the number of downloads (one blocking thread per download, or a
//! `spawn_blocking` per chunk, cost far more memory or CPU under a storm).

use std::fs::File;
use std::future::Future;
use std::io;
use std::os::unix::fs::FileExt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use tokio::sync::oneshot;

use super::budget::{ChunkBudget, Share};
use super::pool::{BufPool, PooledBuf};

/// Everything a server's file downloads share: the reader threads, the buffer pool and the
/// memory budget.
pub(crate) struct FileIo {
    pub(crate) readers: Readers,
    buffers: Arc<BufPool>,
    budget: ChunkBudget,
    /// Try `RWF_NOWAIT` reads on the caller's task first (off in tests of the threads).
    nowait: bool,
}

impl FileIo {
    /// `threads` reader threads named `{name}-{i}`; chunks of up to `max_chunk` bytes, and of
    /// all downloads together near `budget` bytes.
    pub(crate) fn start(
        name: &str,
        threads: usize,
        budget: usize,
        max_chunk: usize,
    ) -> io::Result<Arc<Self>> {
        Ok(Arc::new(FileIo {
            readers: Readers::start(name, threads)?,
            // Idle buffers kept for reuse: at most a quarter of the budget again.
            buffers: Arc::new(BufPool::new(budget / 4)),
            budget: ChunkBudget::new(budget, max_chunk),
            nowait: true,
        }))
    }
}

/// A file range being read: `pos..end` is still to be delivered, and the chunk starting at
/// `pos` is being read by a reader thread when `reading` is set. It holds a share of the
/// budget while it lives.
pub(crate) struct FileStream {
    file: Arc<File>,
    pos: u64,
    end: u64,
    reading: Option<oneshot::Receiver<io::Result<Bytes>>>,
    /// The file system takes `RWF_NOWAIT` reads (most do; the first refusal turns it off).
    nowait: bool,
    share: Share,
    files: Arc<FileIo>,
}

impl FileStream {
    /// Reads `len` bytes of `file` from `start`, in chunks that shrink while many downloads
    /// share the budget of `files`.
    pub(crate) fn new(file: File, start: u64, len: u64, files: &Arc<FileIo>) -> Self {
        FileStream {
            file: Arc::new(file),
            pos: start,
            end: start + len,
            reading: None,
            nowait: files.nowait,
            share: files.budget.join(),
            files: Arc::clone(files),
        }
    }

    /// Bytes still to be delivered.
    pub(crate) fn remaining(&self) -> u64 {
        self.end - self.pos
    }

    /// The next chunk, `None` at the end of the range. After an error the range ends; a file
    /// that shrank while being read ends with [`io::ErrorKind::UnexpectedEof`].
    pub(crate) fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<Bytes>>> {
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
        let mut slices = [io::IoSliceMut::new(buf.space())];
        match rustix::io::preadv2(
            &*self.file,
            &mut slices,
            self.pos,
            rustix::io::ReadWriteFlags::NOWAIT,
        ) {
            Ok(0) => Ok(Err(shrank())),
            Ok(n) => Ok(Ok(buf.into_bytes(n))),
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
    let space = buf.space();
    let want = space.len();
    let mut got = 0;
    while got < want {
        match file.read_at(&mut space[got..], pos + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    if got == 0 {
        return Err(shrank());
    }
    Ok(buf.into_bytes(got))
}

/// A fixed set of threads for the server's blocking file work (opening files, reading chunks).
/// They stop when the server and every download using them are gone.
pub(crate) struct Readers {
    jobs: crossbeam_channel::Sender<Job>,
}

type Job = Box<dyn FnOnce() + Send>;

impl Readers {
    fn start(name: &str, threads: usize) -> io::Result<Self> {
        let (jobs, queue) = crossbeam_channel::unbounded::<Job>();
        for i in 0..threads.max(1) {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("{name}-{i}"))
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Both read paths, with chunks of up to `max_chunk`: in place from the page cache, and on
    /// the reader threads.
    fn file_ios(max_chunk: usize) -> [Arc<FileIo>; 2] {
        let in_place = FileIo::start("test-file", 1, 64 << 10, max_chunk).unwrap();
        let mut threads = FileIo::start("test-file", 2, 64 << 10, max_chunk).unwrap();
        Arc::get_mut(&mut threads).unwrap().nowait = false;
        [in_place, threads]
    }

    async fn collect(mut stream: FileStream) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(chunk) = std::future::poll_fn(|cx| stream.poll_chunk(cx)).await {
            out.extend_from_slice(&chunk?);
        }
        Ok(out)
    }

    #[tokio::test]
    async fn a_file_range_streams_in_chunks() {
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        for files in file_ios(32 << 10) {
            let mut tmp = tempfile::tempfile().unwrap();
            std::io::Write::write_all(&mut tmp, &data).unwrap();
            let stream = FileStream::new(tmp, 1000, 250_000, &files);
            assert_eq!(stream.remaining(), 250_000);
            let got = collect(stream).await.unwrap();
            assert_eq!(&got[..], &data[1000..251_000], "nowait: {}", files.nowait);
        }
    }

    #[tokio::test]
    async fn a_file_that_shrinks_ends_with_unexpected_eof() {
        for files in file_ios(4096) {
            let mut tmp = tempfile::tempfile().unwrap();
            std::io::Write::write_all(&mut tmp, &[7u8; 10_000]).unwrap();
            let err = collect(FileStream::new(tmp, 0, 20_000, &files))
                .await
                .unwrap_err();
            assert_eq!(
                err.kind(),
                io::ErrorKind::UnexpectedEof,
                "nowait: {}",
                files.nowait
            );
        }
    }
}
