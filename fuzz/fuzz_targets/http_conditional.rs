//! The static file server decides `200`/`206`/`304`/`412`/`416` from request headers: `Range`,
//! `If-Range`, `If-Match`, `If-None-Match` and the date conditions.
//!
//! Run with `cargo +nightly fuzz run http_conditional` (libFuzzer) or `scripts/fuzz.sh
//! http_conditional` (AFL++, stable). The first byte picks the method; the rest is split into
//! `name: value` lines, and the lines that make a valid header are sent.
#![cfg_attr(not(feature = "afl"), no_main)]

use std::time::{Duration, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, HeaderValue, Method};
use pxe_stack::http::{Decision, Validators, check};
use rhcos_metal_fuzz::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let method = match selector % 4 {
        0 => Method::GET,
        1 => Method::HEAD,
        2 => Method::POST,
        _ => Method::PUT,
    };
    let mut headers = HeaderMap::new();
    for line in rest.split(|&b| b == b'\n') {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(line[..colon].trim_ascii()),
            HeaderValue::from_bytes(line[colon + 1..].trim_ascii()),
        ) else {
            continue;
        };
        headers.append(name, value);
    }
    let v = Validators {
        len: 1000,
        modified: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        etag: "\"3e8-6553f100.0-2a\"".into(),
    };
    // A partial response must stay inside the file.
    if let Decision::Partial { start, end } = check(&method, &headers, &v) {
        assert!(start <= end && end < v.len, "{start}..={end} of {}", v.len);
    }
});
