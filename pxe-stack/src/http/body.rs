//! The response body: empty, in memory, or streamed from a file; it reports the request (access
//! log and event) when the connection is done with it.
//!
//! A file is read chunk by chunk when the connection asks for the next one, through
//! [`FileStream`]: in place from the page cache, on the server's reader threads otherwise, into
//! pooled buffers whose size follows the server's memory budget.

use std::fs::File;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http_body::{Frame, SizeHint};

use super::access::{AccessEntry, Reporters};
use crate::files::{FileIo, FileStream};

/// The body of every response the server sends.
pub(crate) struct Body {
    kind: Kind,
    sent: u64,
    report: Option<AccessReport>,
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
    Stream(Box<FileStream>),
}

/// What to report when the body is dropped.
pub(crate) struct AccessReport {
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
        Body {
            kind: Kind::Stream(Box::new(FileStream::new(file, start, len, files))),
            sent: 0,
            report: None,
        }
    }

    pub(crate) fn with_report(mut self, report: AccessReport) -> Self {
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
            Kind::Stream(stream) => stream.remaining() == 0,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Empty => SizeHint::with_exact(0),
            Kind::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::Stream(stream) => SizeHint::with_exact(stream.remaining()),
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

    #[tokio::test]
    async fn a_file_range_streams_with_its_exact_size() {
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let files = FileIo::start("test-file", 1, 64 << 10, 32 << 10).unwrap();
        let mut tmp = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut tmp, &data).unwrap();
        let body = Body::file(tmp, 1000, 250_000, &files);
        assert_eq!(http_body::Body::size_hint(&body).exact(), Some(250_000));
        let got = http_body_util::BodyExt::collect(body)
            .await
            .unwrap()
            .to_bytes();
        assert_eq!(&got[..], &data[1000..251_000]);
    }

    #[tokio::test]
    async fn a_file_that_shrinks_ends_the_body_with_an_error() {
        let files = FileIo::start("test-file", 1, 64 << 10, 4096).unwrap();
        let mut tmp = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut tmp, &[7u8; 10_000]).unwrap();
        let body = Body::file(tmp, 0, 20_000, &files);
        let err = http_body_util::BodyExt::collect(body).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }
}
