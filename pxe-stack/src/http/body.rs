//! The response body: empty, in memory, or streamed from a file by a reader thread; it reports
//! the request (access log and event) when the connection is done with it.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::pin::Pin;
use std::sync::Arc;
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

    /// Streams `len` bytes of `file` from `start` in `chunk`-sized reads on a blocking thread,
    /// one chunk ahead of the connection.
    pub(crate) fn file(mut file: File, start: u64, len: u64, chunk: usize) -> Self {
        let (tx, rx) = mpsc::channel(1);
        tokio::task::spawn_blocking(move || {
            if let Err(e) = file.seek(SeekFrom::Start(start)) {
                let _ = tx.blocking_send(Err(e));
                return;
            }
            let mut left = len;
            while left > 0 {
                let want = left.min(chunk as u64);
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
