//! The response body: empty, in memory, or streamed from a file by a reader thread; it reports
//! the request (access log and event) when the connection is done with it.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use tokio::sync::mpsc;

use super::access::{AccessEntry, Reporters};

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
    Stream {
        rx: mpsc::Receiver<io::Result<Bytes>>,
        remaining: u64,
    },
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

    /// Streams `len` bytes of `file` from `start` in reads of up to `chunk` bytes on a blocking
    /// thread, one chunk ahead of the connection; `budget` shrinks the reads while many
    /// downloads run at once.
    pub(crate) fn file(
        mut file: File,
        start: u64,
        len: u64,
        chunk: usize,
        budget: &ChunkBudget,
    ) -> Self {
        let (tx, rx) = mpsc::channel(1);
        let active = budget.join();
        tokio::task::spawn_blocking(move || {
            if let Err(e) = file.seek(SeekFrom::Start(start)) {
                let _ = tx.blocking_send(Err(e));
                return;
            }
            let mut left = len;
            while left > 0 {
                let want = left.min(active.chunk(chunk) as u64);
                // read_to_end fills spare capacity without zeroing it first.
                let mut buf = Vec::with_capacity(want as usize);
                let res = (&mut file).take(want).read_to_end(&mut buf);
                let msg = match res {
                    Ok(0) => Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "file shrank while being served",
                    )),
                    Ok(n) => {
                        left -= n as u64;
                        Ok(Bytes::from(buf))
                    }
                    Err(e) => Err(e),
                };
                let failed = msg.is_err();
                if tx.blocking_send(msg).is_err() || failed {
                    return;
                }
            }
        });
        Body {
            kind: Kind::Stream { rx, remaining: len },
            sent: 0,
            report: None,
        }
    }

    pub(crate) fn with_report(mut self, report: Report) -> Self {
        self.report = Some(report);
        self
    }
}

/// The memory budget shared by every file download of one server.
#[derive(Debug, Clone)]
pub(crate) struct ChunkBudget {
    bytes: usize,
    active: Arc<AtomicUsize>,
}

/// One download's share of the budget; leaving it (drop) frees the share.
pub(crate) struct Share {
    bytes: usize,
    active: Arc<AtomicUsize>,
}

/// The smallest read, so that even a thousand downloads make progress in sensible steps.
const MIN_CHUNK: usize = 4 * 1024;

impl ChunkBudget {
    pub(crate) fn new(bytes: usize) -> Self {
        ChunkBudget {
            bytes,
            active: Arc::new(AtomicUsize::new(0)),
        }
    }

    fn join(&self) -> Share {
        self.active.fetch_add(1, Ordering::Relaxed);
        Share {
            bytes: self.bytes,
            active: self.active.clone(),
        }
    }
}

impl Share {
    /// This download's next read size: at most `max`, and about a third of its share of the
    /// budget (a download holds up to three chunks: being read, queued, being written).
    fn chunk(&self, max: usize) -> usize {
        let active = self.active.load(Ordering::Relaxed).max(1);
        (self.bytes / (3 * active)).clamp(MIN_CHUNK, max.max(MIN_CHUNK))
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
            Kind::Stream { rx, remaining } => match rx.poll_recv(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(b))) => {
                    *remaining = remaining.saturating_sub(b.len() as u64);
                    Some(Ok(b))
                }
                Poll::Ready(Some(Err(e))) => Some(Err(e)),
                Poll::Ready(None) => None,
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
            Kind::Stream { remaining, .. } => *remaining == 0,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Empty => SizeHint::with_exact(0),
            Kind::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::Stream { remaining, .. } => SizeHint::with_exact(*remaining),
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
        let budget = ChunkBudget::new(64 << 20);
        let first = budget.join();
        assert_eq!(first.chunk(512 << 10), 512 << 10, "alone: the full chunk");
        let many: Vec<_> = (0..999).map(|_| budget.join()).collect();
        let c = first.chunk(512 << 10);
        assert!((MIN_CHUNK..512 << 10).contains(&c), "{c}");
        assert!(3 * c * 1000 <= (64 << 20) + 3 * MIN_CHUNK * 1000);
        drop(many);
        assert_eq!(first.chunk(512 << 10), 512 << 10, "shares come back");
    }
}
