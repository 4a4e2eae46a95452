//! TFTP packets (RFC 1350, RFC 2347 options) and option negotiation (RFC 2348, 2349, 7440).

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};

/// RFC 1350 error codes this server sends.
pub(crate) mod code {
    /// Not defined, see the message.
    pub(crate) const UNDEFINED: u16 = 0;
    /// File not found.
    pub(crate) const NOT_FOUND: u16 = 1;
    /// Access violation.
    pub(crate) const ACCESS: u16 = 2;
    /// Illegal TFTP operation.
    pub(crate) const ILLEGAL: u16 = 4;
}

/// A decoded packet, borrowing from the datagram.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Packet<'a> {
    /// Read request.
    Rrq(Request<'a>),
    /// Write request.
    Wrq(Request<'a>),
    /// A data block.
    Data { block: u16, data: &'a [u8] },
    /// An acknowledgement.
    Ack(u16),
    /// An error.
    Error { code: u16, message: &'a str },
    /// An option acknowledgement.
    OAck(Vec<(&'a str, &'a str)>),
}

/// A read or write request.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Request<'a> {
    pub(crate) filename: &'a str,
    pub(crate) mode: &'a str,
    pub(crate) options: Vec<(&'a str, &'a str)>,
}

/// Why a datagram is not a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Malformed;

fn strings(mut b: &[u8]) -> Result<Vec<&str>, Malformed> {
    let mut out = Vec::new();
    while !b.is_empty() {
        let end = b.iter().position(|&c| c == 0).ok_or(Malformed)?;
        out.push(std::str::from_utf8(&b[..end]).map_err(|_| Malformed)?);
        b = &b[end + 1..];
    }
    Ok(out)
}

impl<'a> Packet<'a> {
    pub(crate) fn decode(b: &'a [u8]) -> Result<Self, Malformed> {
        if b.len() < 2 {
            return Err(Malformed);
        }
        let op = u16::from_be_bytes([b[0], b[1]]);
        let rest = &b[2..];
        let u16_at = |r: &[u8]| -> Result<u16, Malformed> {
            if r.len() < 2 {
                return Err(Malformed);
            }
            Ok(u16::from_be_bytes([r[0], r[1]]))
        };
        match op {
            1 | 2 => {
                let s = strings(rest)?;
                if s.len() < 2 || s.len() % 2 != 0 {
                    return Err(Malformed);
                }
                let req = Request {
                    filename: s[0],
                    mode: s[1],
                    options: s[2..].chunks(2).map(|kv| (kv[0], kv[1])).collect(),
                };
                Ok(if op == 1 {
                    Packet::Rrq(req)
                } else {
                    Packet::Wrq(req)
                })
            }
            3 => Ok(Packet::Data {
                block: u16_at(rest)?,
                data: &rest[2..],
            }),
            4 if rest.len() == 2 => Ok(Packet::Ack(u16_at(rest)?)),
            5 => {
                let code = u16_at(rest)?;
                let msg = &rest[2..];
                let msg = msg.strip_suffix(&[0]).unwrap_or(msg);
                Ok(Packet::Error {
                    code,
                    message: std::str::from_utf8(msg).map_err(|_| Malformed)?,
                })
            }
            6 => {
                let s = strings(rest)?;
                if s.len() % 2 != 0 {
                    return Err(Malformed);
                }
                Ok(Packet::OAck(s.chunks(2).map(|kv| (kv[0], kv[1])).collect()))
            }
            _ => Err(Malformed),
        }
    }
}

pub(crate) fn error(code: u16, message: &str) -> Bytes {
    let mut b = BytesMut::with_capacity(5 + message.len());
    b.put_u16(5);
    b.put_u16(code);
    b.put_slice(message.as_bytes());
    b.put_u8(0);
    b.freeze()
}

pub(crate) fn oack(options: &[(&'static str, String)]) -> Bytes {
    let mut b = BytesMut::with_capacity(64);
    b.put_u16(6);
    for (k, v) in options {
        b.put_slice(k.as_bytes());
        b.put_u8(0);
        b.put_slice(v.as_bytes());
        b.put_u8(0);
    }
    b.freeze()
}

/// The server's limits on what clients may ask for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) block_size: u16,
    pub(crate) window_size: u16,
    pub(crate) timeout: Duration,
}

/// The transfer parameters agreed with a client, and the OACK options that say so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Negotiated {
    pub(crate) block_size: u16,
    pub(crate) window_size: u16,
    pub(crate) timeout: Duration,
    /// Empty when the client asked for nothing we grant: no OACK, data starts at once.
    pub(crate) oack: Vec<(&'static str, String)>,
}

/// RFC 2347 negotiation: unknown or invalid options are left out of the OACK; values above our
/// limits are lowered to them; `tsize` is answered only to `tsize=0` and when the size is known.
pub(crate) fn negotiate(options: &[(&str, &str)], limits: Limits, size: Option<u64>) -> Negotiated {
    let mut n = Negotiated {
        block_size: 512,
        window_size: 1,
        timeout: limits.timeout,
        oack: Vec::new(),
    };
    for (k, v) in options {
        let Ok(value) = v.trim().parse::<u64>() else {
            continue;
        };
        match k.to_ascii_lowercase().as_str() {
            "blksize" if (8..=65464).contains(&value) => {
                n.block_size = (value as u16).min(limits.block_size.max(8));
                n.oack.push(("blksize", n.block_size.to_string()));
            }
            "windowsize" if (1..=65535).contains(&value) => {
                n.window_size = (value as u16).min(limits.window_size.max(1));
                n.oack.push(("windowsize", n.window_size.to_string()));
            }
            "timeout" if (1..=255).contains(&value) => {
                n.timeout = Duration::from_secs(value);
                n.oack.push(("timeout", value.to_string()));
            }
            "tsize" if value == 0 => {
                if let Some(size) = size {
                    n.oack.push(("tsize", size.to_string()));
                }
            }
            _ => {}
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        block_size: 1468,
        window_size: 64,
        timeout: Duration::from_secs(3),
    };

    #[test]
    fn decodes() {
        let rrq = b"\x00\x01boot.ipxe\x00octet\x00blksize\x001468\x00tsize\x000\x00";
        assert_eq!(
            Packet::decode(rrq),
            Ok(Packet::Rrq(Request {
                filename: "boot.ipxe",
                mode: "octet",
                options: vec![("blksize", "1468"), ("tsize", "0")],
            }))
        );
        assert!(matches!(
            Packet::decode(b"\x00\x02f\x00octet\x00"),
            Ok(Packet::Wrq(_))
        ));
        assert_eq!(Packet::decode(b"\x00\x04\x01\x02"), Ok(Packet::Ack(0x0102)));
        assert_eq!(
            Packet::decode(b"\x00\x03\x00\x01abc"),
            Ok(Packet::Data {
                block: 1,
                data: b"abc"
            })
        );
        assert_eq!(
            Packet::decode(b"\x00\x05\x00\x08no\x00"),
            Ok(Packet::Error {
                code: 8,
                message: "no"
            })
        );
        assert_eq!(
            Packet::decode(b"\x00\x06tsize\x005\x00"),
            Ok(Packet::OAck(vec![("tsize", "5")]))
        );
        for bad in [
            &b""[..],
            b"\x00",
            b"\x00\x01noterminator",
            b"\x00\x01f\x00",
            b"\x00\x01f\x00octet\x00blksize\x00",
            b"\x00\x04\x00",
            b"\x00\x04\x00\x01\x02",
            b"\x00\x09",
            b"\x00\x01\xff\x00octet\x00",
        ] {
            assert_eq!(Packet::decode(bad), Err(Malformed), "{bad:?}");
        }
    }

    #[test]
    fn encodes() {
        assert_eq!(
            &error(1, "File not found")[..],
            b"\x00\x05\x00\x01File not found\x00"
        );
        assert_eq!(
            &oack(&[("blksize", "1468".into())])[..],
            b"\x00\x06blksize\x001468\x00"
        );
    }

    fn check(
        options: &[(&str, &str)],
        size: Option<u64>,
        expected: (u16, u16, u64, &[(&str, &str)]),
    ) {
        let n = negotiate(options, LIMITS, size);
        let oack: Vec<(&str, &str)> = n.oack.iter().map(|(k, v)| (*k, v.as_str())).collect();
        assert_eq!(
            (
                n.block_size,
                n.window_size,
                n.timeout.as_secs(),
                oack.as_slice()
            ),
            expected,
            "{options:?}"
        );
    }

    #[test]
    fn negotiation() {
        check(&[], Some(10), (512, 1, 3, &[]));
        check(
            &[("blksize", "1468"), ("tsize", "0")],
            Some(10),
            (1468, 1, 3, &[("blksize", "1468"), ("tsize", "10")]),
        );
        check(
            &[("BLKSIZE", "65464")],
            None,
            (1468, 1, 3, &[("blksize", "1468")]),
        );
        check(&[("blksize", "7")], None, (512, 1, 3, &[]));
        check(&[("blksize", "65465")], None, (512, 1, 3, &[]));
        check(&[("blksize", "x")], None, (512, 1, 3, &[]));
        check(
            &[("windowsize", "16")],
            None,
            (512, 16, 3, &[("windowsize", "16")]),
        );
        check(
            &[("windowsize", "1000")],
            None,
            (512, 64, 3, &[("windowsize", "64")]),
        );
        check(&[("windowsize", "0")], None, (512, 1, 3, &[]));
        check(&[("timeout", "1")], None, (512, 1, 1, &[("timeout", "1")]));
        check(&[("timeout", "0")], None, (512, 1, 3, &[]));
        check(&[("timeout", "256")], None, (512, 1, 3, &[]));
        check(&[("tsize", "0")], None, (512, 1, 3, &[]));
        check(&[("tsize", "5")], Some(10), (512, 1, 3, &[]));
        check(&[("multicast", "")], Some(10), (512, 1, 3, &[]));
    }

    proptest::proptest! {
        #[test]
        fn decode_never_panics(b in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
            let _ = Packet::decode(&b);
        }

        #[test]
        fn error_round_trip(code: u16, message in "[ -~]{0,40}") {
            let bytes = error(code, &message);
            proptest::prop_assert_eq!(Packet::decode(&bytes), Ok(Packet::Error { code, message: &message }));
        }
    }
}
