//! The pure range and conditional-request decision for static files (RFC 9110 sections 13 and 14).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, Method, header};

/// What a static file's response can be validated against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validators {
    /// The file's length in bytes.
    pub len: u64,
    /// Its modification time (compared at one-second resolution, as HTTP dates are).
    pub modified: SystemTime,
    /// Its strong entity tag, quotes included: `"1a2b-3c4d"`.
    pub etag: String,
}

impl Validators {
    /// Validators for a file of `len` bytes modified at `modified`, with an entity tag derived
    /// from the length, the modification time to the nanosecond and the inode number.
    pub fn new(len: u64, modified: SystemTime, inode: u64) -> Self {
        let since = modified.duration_since(UNIX_EPOCH).unwrap_or_default();
        Validators {
            len,
            modified,
            etag: format!(
                "\"{len:x}-{:x}.{:x}-{inode:x}\"",
                since.as_secs(),
                since.subsec_nanos()
            ),
        }
    }

    /// `Last-Modified` as an HTTP date.
    pub fn last_modified(&self) -> String {
        httpdate::fmt_http_date(self.modified)
    }

    fn modified_secs(&self) -> u64 {
        self.modified
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs()
    }
}

/// The response a static file request gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// `200` with the whole file.
    Full,
    /// `206` with bytes `start..=end`.
    Partial {
        /// First byte.
        start: u64,
        /// Last byte, inclusive.
        end: u64,
    },
    /// `304 Not Modified`.
    NotModified,
    /// `412 Precondition Failed` (`If-Match` or `If-Unmodified-Since` failed).
    PreconditionFailed,
    /// `416 Range Not Satisfiable`, sent with `Content-Range: bytes */len`.
    RangeNotSatisfiable,
}

/// Decides a static file response from the request's method and headers (RFC 9110 section
/// 13.2.2 order: `If-Match`, `If-Unmodified-Since`, `If-None-Match`, `If-Modified-Since`, then
/// `Range` guarded by `If-Range`).
///
/// Only a single byte range is honoured; a multi-range or malformed `Range` is ignored (a full
/// `200`, which RFC 9110 allows). `Range` applies to `GET` only.
pub fn check(method: &Method, headers: &HeaderMap, v: &Validators) -> Decision {
    let get_or_head = method == Method::GET || method == Method::HEAD;
    if let Some(im) = header_str(headers, &header::IF_MATCH) {
        if !etag_list_matches(im, &v.etag, true) {
            return Decision::PreconditionFailed;
        }
    } else if let Some(date) = header_date(headers, &header::IF_UNMODIFIED_SINCE)
        && v.modified_secs() > date
    {
        return Decision::PreconditionFailed;
    }
    if let Some(inm) = header_str(headers, &header::IF_NONE_MATCH) {
        if etag_list_matches(inm, &v.etag, false) {
            return if get_or_head {
                Decision::NotModified
            } else {
                Decision::PreconditionFailed
            };
        }
    } else if get_or_head
        && let Some(date) = header_date(headers, &header::IF_MODIFIED_SINCE)
        && v.modified_secs() <= date
    {
        return Decision::NotModified;
    }
    if method != Method::GET {
        return Decision::Full;
    }
    let Some(range) = header_str(headers, &header::RANGE) else {
        return Decision::Full;
    };
    if let Some(if_range) = headers.get(header::IF_RANGE) {
        let Ok(if_range) = if_range.to_str() else {
            return Decision::Full;
        };
        let if_range = if_range.trim();
        let fresh = if if_range.starts_with('"') {
            if_range == v.etag
        } else if if_range.starts_with("W/") {
            false
        } else {
            httpdate::parse_http_date(if_range)
                .ok()
                .and_then(|d| d.duration_since(UNIX_EPOCH).ok())
                .is_some_and(|d| d.as_secs() == v.modified_secs())
        };
        if !fresh {
            return Decision::Full;
        }
    }
    match parse_range(range, v.len) {
        RangeSpec::Ignore => Decision::Full,
        RangeSpec::Unsatisfiable => Decision::RangeNotSatisfiable,
        RangeSpec::Bytes(start, end) => Decision::Partial { start, end },
    }
}

#[derive(Debug, PartialEq, Eq)]
enum RangeSpec {
    Ignore,
    Unsatisfiable,
    Bytes(u64, u64),
}

fn parse_range(value: &str, len: u64) -> RangeSpec {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return RangeSpec::Ignore;
    };
    let spec = spec.trim();
    if spec.contains(',') {
        return RangeSpec::Ignore;
    }
    let Some((first, last)) = spec.split_once('-') else {
        return RangeSpec::Ignore;
    };
    let (first, last) = (first.trim(), last.trim());
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if first.is_empty() {
        // Suffix range: the last N bytes.
        if !digits(last) {
            return RangeSpec::Ignore;
        }
        let Ok(n) = last.parse::<u64>() else {
            // More digits than u64 holds: the whole file.
            return if len == 0 {
                RangeSpec::Unsatisfiable
            } else {
                RangeSpec::Bytes(0, len - 1)
            };
        };
        if n == 0 || len == 0 {
            return RangeSpec::Unsatisfiable;
        }
        return RangeSpec::Bytes(len.saturating_sub(n), len - 1);
    }
    if !digits(first) || !(last.is_empty() || digits(last)) {
        return RangeSpec::Ignore;
    }
    let Ok(start) = first.parse::<u64>() else {
        return RangeSpec::Unsatisfiable;
    };
    let end = if last.is_empty() {
        u64::MAX
    } else {
        last.parse::<u64>().unwrap_or(u64::MAX)
    };
    if end < start {
        return RangeSpec::Ignore;
    }
    if start >= len {
        return RangeSpec::Unsatisfiable;
    }
    RangeSpec::Bytes(start, end.min(len - 1))
}

fn header_str<'a>(headers: &'a HeaderMap, name: &header::HeaderName) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

fn header_date(headers: &HeaderMap, name: &header::HeaderName) -> Option<u64> {
    let s = header_str(headers, name)?;
    let t = httpdate::parse_http_date(s).ok()?;
    Some(t.duration_since(UNIX_EPOCH).ok()?.as_secs())
}

/// Whether a comma-separated entity-tag list (or `*`) matches `ours`, by strong or weak
/// comparison.
fn etag_list_matches(list: &str, ours: &str, strong: bool) -> bool {
    if list.trim() == "*" {
        return true;
    }
    list.split(',').map(str::trim).any(|tag| {
        if strong {
            tag == ours
        } else {
            tag.strip_prefix("W/").unwrap_or(tag) == ours
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEN: u64 = 1000;

    fn v() -> Validators {
        Validators {
            len: LEN,
            modified: UNIX_EPOCH + Duration::from_millis(1_700_000_000_500),
            etag: "\"tag\"".into(),
        }
    }

    fn check_case(method: Method, headers: &[(&str, &str)], expected: Decision) {
        let mut map = HeaderMap::new();
        for (k, val) in headers {
            map.append(
                header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                val.parse().unwrap(),
            );
        }
        assert_eq!(check(&method, &map, &v()), expected, "{method} {headers:?}");
    }

    fn get(headers: &[(&str, &str)], expected: Decision) {
        check_case(Method::GET, headers, expected)
    }

    const DATE: &str = "Tue, 14 Nov 2023 22:13:20 GMT"; // == modified, truncated to seconds
    const EARLIER: &str = "Tue, 14 Nov 2023 22:13:19 GMT";
    const LATER: &str = "Tue, 14 Nov 2023 22:13:21 GMT";

    #[test]
    fn date_matches_fixture() {
        assert_eq!(v().last_modified(), DATE);
    }

    #[test]
    fn plain_and_ranges() {
        use Decision::*;
        get(&[], Full);
        get(&[("range", "bytes=0-99")], Partial { start: 0, end: 99 });
        get(
            &[("range", "bytes=100-")],
            Partial {
                start: 100,
                end: 999,
            },
        );
        get(
            &[("range", "bytes=-10")],
            Partial {
                start: 990,
                end: 999,
            },
        );
        get(&[("range", "bytes=-5000")], Partial { start: 0, end: 999 });
        get(
            &[("range", "bytes=990-5000")],
            Partial {
                start: 990,
                end: 999,
            },
        );
        get(
            &[("range", "bytes=999-999")],
            Partial {
                start: 999,
                end: 999,
            },
        );
        get(&[("range", "bytes = 1-2")], Full);
        get(&[("range", "bytes=1000-")], RangeNotSatisfiable);
        get(&[("range", "bytes=5000-6000")], RangeNotSatisfiable);
        get(&[("range", "bytes=-0")], RangeNotSatisfiable);
        get(
            &[("range", "bytes=99999999999999999999999-")],
            RangeNotSatisfiable,
        );
        get(
            &[("range", "bytes=0-99999999999999999999999")],
            Partial { start: 0, end: 999 },
        );
        get(&[("range", "bytes=0-1,5-6")], Full);
        get(&[("range", "bytes=5-1")], Full);
        get(&[("range", "bytes=a-b")], Full);
        get(&[("range", "bytes=-")], Full);
        get(&[("range", "items=0-1")], Full);
        get(&[("range", "bytes=+1-2")], Full);
        check_case(Method::HEAD, &[("range", "bytes=0-1")], Full);
        check_case(Method::POST, &[("range", "bytes=0-1")], Full);
    }

    #[test]
    fn if_range() {
        use Decision::*;
        let r = ("range", "bytes=10-19");
        get(
            &[r, ("if-range", "\"tag\"")],
            Partial { start: 10, end: 19 },
        );
        get(&[r, ("if-range", "\"old\"")], Full);
        get(&[r, ("if-range", "W/\"tag\"")], Full);
        get(&[r, ("if-range", DATE)], Partial { start: 10, end: 19 });
        get(&[r, ("if-range", EARLIER)], Full);
        get(&[r, ("if-range", LATER)], Full);
        get(&[r, ("if-range", "garbage")], Full);
        get(&[("if-range", "\"tag\"")], Full);
        get(&[("range", "bytes=5000-"), ("if-range", "\"old\"")], Full);
    }

    #[test]
    fn conditional_get() {
        use Decision::*;
        get(&[("if-none-match", "\"tag\"")], NotModified);
        get(&[("if-none-match", "W/\"tag\"")], NotModified);
        get(&[("if-none-match", "\"a\", \"tag\"")], NotModified);
        get(&[("if-none-match", "*")], NotModified);
        get(&[("if-none-match", "\"other\"")], Full);
        get(&[("if-modified-since", DATE)], NotModified);
        get(&[("if-modified-since", LATER)], NotModified);
        get(&[("if-modified-since", EARLIER)], Full);
        get(&[("if-modified-since", "not a date")], Full);
        // If-None-Match wins over If-Modified-Since.
        get(
            &[("if-none-match", "\"other\""), ("if-modified-since", LATER)],
            Full,
        );
        check_case(Method::HEAD, &[("if-none-match", "\"tag\"")], NotModified);
        check_case(
            Method::POST,
            &[("if-none-match", "\"tag\"")],
            PreconditionFailed,
        );
        check_case(Method::POST, &[("if-modified-since", DATE)], Full);
        // A 304 beats a range.
        get(
            &[("if-none-match", "\"tag\""), ("range", "bytes=0-1")],
            NotModified,
        );
    }

    #[test]
    fn preconditions() {
        use Decision::*;
        get(&[("if-match", "\"tag\"")], Full);
        get(&[("if-match", "*")], Full);
        get(&[("if-match", "\"other\"")], PreconditionFailed);
        get(&[("if-match", "W/\"tag\"")], PreconditionFailed);
        get(&[("if-unmodified-since", DATE)], Full);
        get(&[("if-unmodified-since", EARLIER)], PreconditionFailed);
        get(&[("if-unmodified-since", "bogus")], Full);
        get(
            &[("if-match", "\"tag\""), ("if-unmodified-since", EARLIER)],
            Full,
        );
        get(
            &[("if-match", "\"tag\""), ("range", "bytes=0-0")],
            Partial { start: 0, end: 0 },
        );
    }

    #[test]
    fn empty_file() {
        let mut map = HeaderMap::new();
        map.insert(header::RANGE, "bytes=0-".parse().unwrap());
        let empty = Validators { len: 0, ..v() };
        assert_eq!(
            check(&Method::GET, &map, &empty),
            Decision::RangeNotSatisfiable
        );
        map.insert(header::RANGE, "bytes=-1".parse().unwrap());
        assert_eq!(
            check(&Method::GET, &map, &empty),
            Decision::RangeNotSatisfiable
        );
    }

    proptest::proptest! {
        #[test]
        fn partial_is_always_inside_the_file(len in 0u64..10_000, a in 0u64..20_000, b in 0u64..20_000, suffix: bool) {
            let spec = if suffix { format!("bytes=-{a}") } else { format!("bytes={a}-{b}") };
            match parse_range(&spec, len) {
                RangeSpec::Bytes(s, e) => proptest::prop_assert!(s <= e && e < len),
                RangeSpec::Unsatisfiable => proptest::prop_assert!(suffix && (a == 0 || len == 0) || !suffix && a >= len),
                RangeSpec::Ignore => proptest::prop_assert!(!suffix && b < a),
            }
        }
    }
}
