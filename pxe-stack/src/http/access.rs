//! The access log entry, written when a response body is finished or dropped.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::events::{Event, EventKind, EventSink, Protocol, TransferStatus};
use crate::host::Mac;

/// One finished request, as the access log and the event stream see it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AccessEntry {
    /// When the response ended (last byte sent, or the client went away).
    pub end: SystemTime,
    /// From request to end of response.
    pub duration: Duration,
    /// The client's socket address.
    pub peer: SocketAddr,
    /// The client's MAC address, from the host lookup.
    pub mac: Option<Mac>,
    /// The request method.
    pub method: String,
    /// The request target as sent (path and query).
    pub target: String,
    /// `HTTP/1.1` or `HTTP/1.0`.
    pub version: String,
    /// The response status.
    pub status: u16,
    /// Response body bytes handed to the connection.
    pub bytes: u64,
    /// The request body's length in bytes.
    pub request_length: u64,
    /// The `User-Agent` header, or empty.
    pub user_agent: String,
}

impl AccessEntry {
    /// The entry as one nginx-style line:
    /// `$msec $request_time $remote_addr "$request" $status $body_bytes_sent $request_length
    /// "$http_user_agent" $mac` (the reference rig's `log_format` plus the MAC, `-` when unknown).
    pub fn line(&self) -> String {
        let end = self.end.duration_since(UNIX_EPOCH).unwrap_or_default();
        let mut s = String::with_capacity(160);
        let _ = write!(
            s,
            "{}.{:03} {}.{:03} {} \"{} {} {}\" {} {} {} \"",
            end.as_secs(),
            end.subsec_millis(),
            self.duration.as_secs(),
            self.duration.subsec_millis(),
            self.peer.ip().to_canonical(),
            escape(&self.method),
            escape(&self.target),
            self.version,
            self.status,
            self.bytes,
            self.request_length,
        );
        s.push_str(&escape(&self.user_agent));
        s.push_str("\" ");
        match self.mac {
            Some(mac) => {
                let _ = write!(s, "{mac}");
            }
            None => s.push('-'),
        }
        s
    }
}

/// nginx's escaping of `"`, `\` and non-printable bytes as `\xHH`, so one entry stays one line.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b == b'"' || b == b'\\' || !(0x20..0x7f).contains(&b) {
            let _ = write!(out, "\\x{b:02X}");
        } else {
            out.push(b as char);
        }
    }
    out
}

/// Where access entries go, in addition to a `tracing` event at info level.
pub trait AccessLog: Send + Sync {
    /// Record one finished request. Called inline on the connection's task: must not block.
    fn log(&self, entry: &AccessEntry);
}

impl<F: Fn(&AccessEntry) + Send + Sync> AccessLog for F {
    fn log(&self, entry: &AccessEntry) {
        self(entry)
    }
}

/// What a finished response reports to.
pub(crate) struct Reporters {
    pub(crate) events: Arc<dyn EventSink>,
    pub(crate) access_log: Option<Arc<dyn AccessLog>>,
}

impl Reporters {
    pub(crate) fn report(&self, entry: &AccessEntry, path: String) {
        tracing::info!(target: "pxe_stack::http::access", "{}", entry.line());
        if let Some(log) = &self.access_log {
            log.log(entry);
        }
        self.events.emit(Event {
            at: entry.end,
            mac: entry.mac,
            addr: Some(entry.peer.ip().to_canonical()),
            kind: EventKind::Transfer {
                protocol: Protocol::Http,
                path,
                bytes: entry.bytes,
                duration: entry.duration,
                status: TransferStatus::Http(entry.status),
            },
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nginx_like_line() {
        let entry = AccessEntry {
            end: UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
            duration: Duration::from_millis(2_045),
            peer: "[::ffff:192.168.126.100]:40000".parse().unwrap(),
            mac: Some("52:54:00:12:60:01".parse().unwrap()),
            method: "GET".into(),
            target: "/rhcos/vmlinuz?x=\"1\"".into(),
            version: "HTTP/1.1".into(),
            status: 206,
            bytes: 1024,
            request_length: 0,
            user_agent: "iPXE/1.21.1".into(),
        };
        assert_eq!(
            entry.line(),
            "1700000000.123 2.045 192.168.126.100 \"GET /rhcos/vmlinuz?x=\\x221\\x22 HTTP/1.1\" 206 1024 0 \"iPXE/1.21.1\" 52:54:00:12:60:01"
        );
        let anonymous = AccessEntry {
            mac: None,
            user_agent: String::new(),
            ..entry
        };
        assert!(anonymous.line().ends_with("\"\" -"));
    }
}
