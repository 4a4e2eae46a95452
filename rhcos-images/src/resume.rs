//! The sans-IO resume rules: given what we asked for and what the server answered, decide
//! whether to keep the body, restart from zero, retry, or give up.
//!
//! The rule that matters: never splice two versions of a file. A resumed request carries
//! `If-Range` with the validator of the first response; a `206` is only accepted when its
//! `Content-Range` starts exactly where we stopped and it carries the same validator: the same
//! strong `ETag`, or, when the first response had none, the same `Last-Modified`. A `206`
//! without a validator, or with another kind than the one recorded (an `ETag` first, then only
//! a `Last-Modified`), proves nothing (a server may ignore `If-Range`) and means starting over.

/// What identifies one version of a remote file, for `If-Range`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Validator {
    /// A strong `ETag` (weak ones, `W/"…"`, are not allowed in `If-Range`).
    ETag(String),
    /// A `Last-Modified` date, as sent.
    LastModified(String),
}

impl Validator {
    /// Picks the validator to use from a response's headers: a strong ETag, else Last-Modified.
    pub fn from_headers(etag: Option<&str>, last_modified: Option<&str>) -> Option<Self> {
        match (etag, last_modified) {
            (Some(e), _) if !e.starts_with("W/") && !e.is_empty() => {
                Some(Validator::ETag(e.to_owned()))
            }
            (_, Some(lm)) if !lm.is_empty() => Some(Validator::LastModified(lm.to_owned())),
            _ => None,
        }
    }

    /// The `If-Range` header value.
    pub fn header_value(&self) -> &str {
        match self {
            Validator::ETag(v) | Validator::LastModified(v) => v,
        }
    }
}

/// The parts of a response the decision needs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Response<'a> {
    /// HTTP status code.
    pub status: u16,
    /// `Content-Range` header.
    pub content_range: Option<&'a str>,
    /// `Content-Length` header.
    pub content_length: Option<u64>,
    /// `ETag` header.
    pub etag: Option<&'a str>,
    /// `Last-Modified` header.
    pub last_modified: Option<&'a str>,
}

/// What to do with a response.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Decision {
    /// The body is the whole file from byte zero. Discard anything received before.
    FromStart {
        /// Total length, when known.
        total: Option<u64>,
        /// Validator to send with the next resume.
        validator: Option<Validator>,
    },
    /// The body continues exactly at the requested offset.
    Continue {
        /// Total length of the file.
        total: u64,
    },
    /// Drop this response, forget the partial data and ask again from zero.
    Restart {
        /// Why, for progress reporting.
        reason: &'static str,
    },
    /// A transient server error (5xx, 408, 429): retry after a backoff.
    Retry,
    /// A permanent error status.
    Fail,
}

/// Decides what to do with `resp` to a request for bytes from `offset` on (`0` = a plain GET),
/// where `known` is the validator remembered from the earlier response, if any.
pub fn decide(offset: u64, known: Option<&Validator>, resp: &Response<'_>) -> Decision {
    let validator = Validator::from_headers(resp.etag, resp.last_modified);
    match resp.status {
        200 => Decision::FromStart {
            total: resp.content_length,
            validator,
        },
        206 if offset == 0 => Decision::Restart {
            reason: "partial content to a request without range",
        },
        206 => {
            let Some((start, _end, total)) = resp.content_range.and_then(parse_content_range)
            else {
                return Decision::Restart {
                    reason: "missing or malformed content-range",
                };
            };
            if start != offset {
                return Decision::Restart {
                    reason: "content-range does not start at the resume offset",
                };
            }
            match (known, validator.as_ref()) {
                (Some(k), Some(v)) if k == v => {}
                (_, None) => {
                    return Decision::Restart {
                        reason: "partial content without a validator",
                    };
                }
                _ => {
                    return Decision::Restart {
                        reason: "validator changed",
                    };
                }
            }
            match total {
                Some(total) => Decision::Continue { total },
                None => Decision::Restart {
                    reason: "content-range without a total length",
                },
            }
        }
        416 => Decision::Restart {
            reason: "range not satisfiable",
        },
        408 | 429 | 500..=599 => Decision::Retry,
        _ => Decision::Fail,
    }
}

/// Parses `bytes START-END/TOTAL` (TOTAL may be `*`).
pub fn parse_content_range(v: &str) -> Option<(u64, u64, Option<u64>)> {
    let rest = v.trim().strip_prefix("bytes")?.trim_start();
    let (range, total) = rest.split_once('/')?;
    let (start, end) = range.split_once('-')?;
    let start: u64 = start.trim().parse().ok()?;
    let end: u64 = end.trim().parse().ok()?;
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse().ok()?),
    };
    (start <= end && total.is_none_or(|t| end < t)).then_some((start, end, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(offset: u64, known: Option<&str>, resp: Response<'_>, expected: &str) {
        let known = known.map(|e| Validator::ETag(e.to_owned()));
        let got = format!("{:?}", decide(offset, known.as_ref(), &resp));
        assert!(
            got.starts_with(expected),
            "offset {offset}, {resp:?}: got {got}, expected {expected}…"
        );
    }

    #[test]
    fn decisions() {
        let ok = |status| Response {
            status,
            content_length: Some(10),
            etag: Some("\"a\""),
            ..Response::default()
        };
        check(
            0,
            None,
            ok(200),
            "FromStart { total: Some(10), validator: Some(ETag(\"\\\"a\\\"\"))",
        );
        // Server ignored our Range: the body is the whole file again.
        check(5, Some("\"a\""), ok(200), "FromStart");
        let partial = |range, etag| Response {
            status: 206,
            content_range: Some(range),
            etag,
            ..Response::default()
        };
        check(
            5,
            Some("\"a\""),
            partial("bytes 5-9/10", Some("\"a\"")),
            "Continue { total: 10 }",
        );
        // A 206 must prove it is the same version: no validator, no resume.
        check(
            5,
            Some("\"a\""),
            partial("bytes 5-9/10", None),
            "Restart { reason: \"partial content without a validator\"",
        );
        check(
            5,
            Some("\"a\""),
            partial("bytes 5-9/10", Some("\"b\"")),
            "Restart { reason: \"validator changed\"",
        );
        check(5, None, partial("bytes 0-9/10", None), "Restart");
        check(5, None, partial("bytes 5-9/*", None), "Restart");
        check(5, None, partial("garbage", None), "Restart");
        check(0, None, partial("bytes 0-9/10", None), "Restart");
        check(5, None, ok(416), "Restart");
        check(0, None, ok(503), "Retry");
        check(0, None, ok(429), "Retry");
        check(0, None, ok(404), "Fail");
        check(0, None, ok(403), "Fail");
    }

    #[test]
    fn the_validator_kind_recorded_first_must_come_back() {
        let lm = "Tue, 24 Nov 2026 07:00:00 GMT";
        let partial = |etag, last_modified| Response {
            status: 206,
            content_range: Some("bytes 5-9/10"),
            etag,
            last_modified,
            ..Response::default()
        };
        let etag = Validator::ETag("\"a\"".into());
        let date = Validator::LastModified(lm.into());
        let decide = |known: &Validator, resp| format!("{:?}", decide(5, Some(known), &resp));
        // An ETag first, then only a Last-Modified: not proof of the same version.
        assert!(decide(&etag, partial(None, Some(lm))).starts_with("Restart"));
        assert!(decide(&etag, partial(Some("\"a\""), Some(lm))).starts_with("Continue"));
        // No ETag first: the same Last-Modified is.
        assert!(decide(&date, partial(None, Some(lm))).starts_with("Continue"));
        let other = "Wed, 25 Nov 2026 07:00:00 GMT";
        assert!(decide(&date, partial(None, Some(other))).starts_with("Restart"));
        // A weak ETag is no validator: the Last-Modified beside it counts.
        assert!(decide(&date, partial(Some("W/\"x\""), Some(lm))).starts_with("Continue"));
        assert!(decide(&date, partial(Some("W/\"x\""), None)).starts_with("Restart"));
    }

    #[test]
    fn content_range() {
        assert_eq!(parse_content_range("bytes 0-9/10"), Some((0, 9, Some(10))));
        assert_eq!(parse_content_range("bytes 3-4/*"), Some((3, 4, None)));
        assert_eq!(parse_content_range("bytes 5-4/10"), None);
        assert_eq!(parse_content_range("bytes 5-10/10"), None);
        assert_eq!(parse_content_range("items 0-1/2"), None);
    }

    #[test]
    fn weak_etag_falls_back_to_last_modified() {
        assert_eq!(
            Validator::from_headers(Some("W/\"x\""), Some("Tue, 24 Nov 2026 07:00:00 GMT")),
            Some(Validator::LastModified(
                "Tue, 24 Nov 2026 07:00:00 GMT".into()
            ))
        );
        assert_eq!(Validator::from_headers(Some("W/\"x\""), None), None);
    }
}
