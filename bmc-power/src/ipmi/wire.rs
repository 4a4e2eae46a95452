//! Byte layouts: RMCP header, IPMI 1.5 and 2.0 session wrappers, and the IPMB-style LAN
//! message inside them (IPMI 2.0 sections 13.6 to 13.8).

use crate::error::{Error, Result};

/// RMCP header for IPMI class messages, no RMCP ACK (version 6, reserved, seq 0xFF, class 7).
pub(crate) const RMCP_HEADER: [u8; 4] = [0x06, 0x00, 0xFF, 0x07];
/// The BMC's slave address.
pub(crate) const BMC_ADDR: u8 = 0x20;
/// The remote console's software id.
pub(crate) const CONSOLE_ADDR: u8 = 0x81;

/// RMCP+ payload types (IPMI 2.0 table 13-16).
pub(crate) mod payload {
    pub(crate) const IPMI: u8 = 0x00;
    pub(crate) const OPEN_SESSION_REQUEST: u8 = 0x10;
    pub(crate) const OPEN_SESSION_RESPONSE: u8 = 0x11;
    pub(crate) const RAKP1: u8 = 0x12;
    pub(crate) const RAKP2: u8 = 0x13;
    pub(crate) const RAKP3: u8 = 0x14;
    pub(crate) const RAKP4: u8 = 0x15;
}

/// IPMI 1.5 / 2.0 authentication type byte in the session header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AuthType {
    /// No auth code.
    None = 0x00,
    /// MD5 auth code.
    Md5 = 0x02,
    /// The password in clear as the auth code.
    Straight = 0x04,
    /// RMCP+ (IPMI 2.0) format.
    RmcpPlus = 0x06,
}

fn checksum(bytes: &[u8]) -> u8 {
    bytes
        .iter()
        .fold(0u8, |a, b| a.wrapping_add(*b))
        .wrapping_neg()
}

/// One IPMI request as it goes inside any session wrapper.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Request {
    pub(crate) netfn: u8,
    pub(crate) cmd: u8,
    /// The 6-bit request sequence number; replies carry it back.
    pub(crate) rq_seq: u8,
    pub(crate) data: Vec<u8>,
}

impl Request {
    /// The LAN message: rsAddr, netFn/LUN, chk, rqAddr, rqSeq/LUN, cmd, data, chk.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut m = vec![BMC_ADDR, self.netfn << 2];
        m.push(checksum(&m));
        m.extend_from_slice(&[CONSOLE_ADDR, (self.rq_seq & 0x3F) << 2, self.cmd]);
        m.extend_from_slice(&self.data);
        m.push(checksum(&m[3..]));
        m
    }
}

/// One IPMI reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reply {
    /// The response netFn (request netFn + 1).
    pub(crate) netfn: u8,
    pub(crate) cmd: u8,
    pub(crate) rq_seq: u8,
    /// The completion code.
    pub(crate) cc: u8,
    pub(crate) data: Vec<u8>,
}

impl Reply {
    /// Parse a LAN reply message, checking both checksums.
    pub(crate) fn decode(m: &[u8]) -> Result<Reply> {
        if m.len() < 8 {
            return Err(Error::protocol("ipmi reply shorter than 8 bytes"));
        }
        if checksum(&m[..2]) != m[2] || checksum(&m[3..m.len() - 1]) != m[m.len() - 1] {
            return Err(Error::protocol("ipmi reply checksum mismatch"));
        }
        Ok(Reply {
            netfn: m[1] >> 2,
            cmd: m[5],
            rq_seq: m[4] >> 2,
            cc: m[6],
            data: m[7..m.len() - 1].to_vec(),
        })
    }

    /// Does this reply answer `req`?
    pub(crate) fn answers(&self, req: &Request) -> bool {
        self.netfn == req.netfn + 1 && self.cmd == req.cmd && self.rq_seq == req.rq_seq & 0x3F
    }
}

/// An IPMI 1.5 session wrapper: RMCP | authType | seq | sid | [authcode] | len | msg.
pub(crate) fn encode_v15(
    auth: AuthType,
    seq: u32,
    sid: u32,
    auth_code: Option<[u8; 16]>,
    msg: &[u8],
) -> Vec<u8> {
    let mut p = RMCP_HEADER.to_vec();
    p.push(auth as u8);
    p.extend_from_slice(&seq.to_le_bytes());
    p.extend_from_slice(&sid.to_le_bytes());
    if let Some(code) = auth_code {
        p.extend_from_slice(&code);
    }
    p.push(msg.len() as u8);
    p.extend_from_slice(msg);
    p
}

/// A parsed IPMI 1.5 session wrapper.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct V15<'a> {
    pub(crate) auth: u8,
    pub(crate) seq: u32,
    pub(crate) sid: u32,
    pub(crate) msg: &'a [u8],
}

fn rmcp_body(d: &[u8]) -> Result<&[u8]> {
    if d.len() < 5 || d[0] != 0x06 || d[3] & 0x1F != 0x07 {
        return Err(Error::protocol("not an rmcp ipmi-class datagram"));
    }
    Ok(&d[4..])
}

/// The session format of a datagram: `true` for RMCP+ (IPMI 2.0).
pub(crate) fn is_v2(d: &[u8]) -> Result<bool> {
    Ok(rmcp_body(d)?[0] == AuthType::RmcpPlus as u8)
}

/// Parse an IPMI 1.5 datagram.
pub(crate) fn decode_v15(d: &[u8]) -> Result<V15<'_>> {
    let b = rmcp_body(d)?;
    if b.len() < 10 {
        return Err(Error::protocol("ipmi 1.5 session header truncated"));
    }
    let auth = b[0];
    let seq = u32::from_le_bytes(b[1..5].try_into().expect("4 bytes"));
    let sid = u32::from_le_bytes(b[5..9].try_into().expect("4 bytes"));
    let rest = if auth == 0 {
        &b[9..]
    } else {
        b.get(25..).unwrap_or(&[])
    };
    let Some((&len, msg)) = rest.split_first() else {
        return Err(Error::protocol("ipmi 1.5 session header truncated"));
    };
    let msg = msg
        .get(..len as usize)
        .ok_or_else(|| Error::protocol("ipmi 1.5 payload shorter than its length"))?;
    Ok(V15 {
        auth,
        seq,
        sid,
        msg,
    })
}

/// A parsed RMCP+ session wrapper (before integrity check and decryption).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct V2<'a> {
    pub(crate) encrypted: bool,
    pub(crate) authenticated: bool,
    pub(crate) payload_type: u8,
    pub(crate) sid: u32,
    pub(crate) seq: u32,
    pub(crate) payload: &'a [u8],
    /// The bytes the integrity code covers (auth type .. next header), if authenticated.
    pub(crate) signed: &'a [u8],
    /// The auth code, if authenticated.
    pub(crate) auth_code: &'a [u8],
}

/// Encode an RMCP+ datagram. With `k1`, an integrity trailer is appended.
pub(crate) fn encode_v2(
    payload_type: u8,
    encrypted: bool,
    sid: u32,
    seq: u32,
    payload: &[u8],
    integrity: Option<(super::crypto::Hash, &[u8])>,
) -> Vec<u8> {
    let mut p = RMCP_HEADER.to_vec();
    p.push(AuthType::RmcpPlus as u8);
    let mut t = payload_type & 0x3F;
    if encrypted {
        t |= 0x80;
    }
    if integrity.is_some() {
        t |= 0x40;
    }
    p.push(t);
    p.extend_from_slice(&sid.to_le_bytes());
    p.extend_from_slice(&seq.to_le_bytes());
    p.extend_from_slice(&(payload.len() as u16).to_le_bytes());
    p.extend_from_slice(payload);
    if let Some((hash, k1)) = integrity {
        // Pad so that auth type .. next header is a multiple of 4 bytes.
        let covered = p.len() - 4 + 2;
        let pad = (4 - covered % 4) % 4;
        p.extend(std::iter::repeat_n(0xFF, pad));
        p.push(pad as u8);
        p.push(0x07);
        let code = super::crypto::integrity(hash, k1, &p[4..]);
        p.extend_from_slice(&code);
    }
    p
}

/// Parse an RMCP+ datagram; `icv_len` is the auth code length of the session (0 before one).
pub(crate) fn decode_v2(d: &[u8], icv_len: usize) -> Result<V2<'_>> {
    let b = rmcp_body(d)?;
    if b.len() < 12 || b[0] != AuthType::RmcpPlus as u8 {
        return Err(Error::protocol("rmcp+ session header truncated"));
    }
    let t = b[1];
    let sid = u32::from_le_bytes(b[2..6].try_into().expect("4 bytes"));
    let seq = u32::from_le_bytes(b[6..10].try_into().expect("4 bytes"));
    let len = u16::from_le_bytes([b[10], b[11]]) as usize;
    let payload = b
        .get(12..12 + len)
        .ok_or_else(|| Error::protocol("rmcp+ payload shorter than its length"))?;
    let authenticated = t & 0x40 != 0;
    let (signed, auth_code): (&[u8], &[u8]) = if authenticated {
        if icv_len == 0 || b.len() < 12 + len + 2 + icv_len {
            return Err(Error::protocol("rmcp+ integrity trailer truncated"));
        }
        let end = b.len() - icv_len;
        (&b[..end], &b[end..])
    } else {
        (&[], &[])
    };
    Ok(V2 {
        encrypted: t & 0x80 != 0,
        authenticated,
        payload_type: t & 0x3F,
        sid,
        seq,
        payload,
        signed,
        auth_code,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A reply built the way a BMC builds it, from a request.
    fn reply_for(req: &Request, cc: u8, data: &[u8]) -> Vec<u8> {
        let mut m = vec![CONSOLE_ADDR, (req.netfn + 1) << 2];
        m.push(checksum(&m));
        m.extend_from_slice(&[BMC_ADDR, req.rq_seq << 2, req.cmd, cc]);
        m.extend_from_slice(data);
        m.push(checksum(&m[3..]));
        m
    }

    #[test]
    fn get_chassis_status_request_bytes() {
        // ipmitool -v -v -v shows this message for "chassis power status": 20 00 e0 81 04 01 7a
        let r = Request {
            netfn: 0x00,
            cmd: 0x01,
            rq_seq: 1,
            data: vec![],
        };
        assert_eq!(r.encode(), [0x20, 0x00, 0xE0, 0x81, 0x04, 0x01, 0x7A]);
    }

    #[test]
    fn truncated_inputs_are_errors() {
        for n in 0..12 {
            let d = vec![0x06, 0, 0xFF, 0x07, 0x06, 0, 0, 0, 0, 0, 0, 0][..n].to_vec();
            assert!(decode_v2(&d, 12).is_err());
            assert!(decode_v15(&d).is_err());
        }
        assert!(Reply::decode(&[0; 7]).is_err());
    }

    proptest! {
        #[test]
        fn reply_round_trip(netfn in 0u8..0x3E, cmd: u8, seq in 0u8..64, cc: u8,
                            data in proptest::collection::vec(any::<u8>(), 0..40)) {
            let req = Request { netfn: netfn & 0x3E, cmd, rq_seq: seq, data: vec![] };
            let r = Reply::decode(&reply_for(&req, cc, &data)).unwrap();
            prop_assert!(r.answers(&req));
            prop_assert_eq!(r.cc, cc);
            prop_assert_eq!(r.data, data);
        }

        #[test]
        fn v15_round_trip(seq: u32, sid: u32, md5: bool,
                          msg in proptest::collection::vec(any::<u8>(), 0..60)) {
            let (auth, code) = if md5 { (AuthType::Md5, Some([7u8; 16])) } else { (AuthType::None, None) };
            let d = encode_v15(auth, seq, sid, code, &msg);
            let v = decode_v15(&d).unwrap();
            prop_assert_eq!((v.seq, v.sid, v.msg), (seq, sid, &msg[..]));
        }

        #[test]
        fn v2_round_trip(sid: u32, seq: u32, enc: bool, sha256: bool,
                         payload in proptest::collection::vec(any::<u8>(), 0..80)) {
            let hash = if sha256 { super::super::crypto::Hash::Sha256 } else { super::super::crypto::Hash::Sha1 };
            let k1 = [9u8; 32];
            let d = encode_v2(payload::IPMI, enc, sid, seq, &payload, Some((hash, &k1)));
            prop_assert_eq!((d.len() - 4 - hash.icv_len()) % 4, 0);
            let v = decode_v2(&d, hash.icv_len()).unwrap();
            prop_assert_eq!((v.sid, v.seq, v.encrypted, v.payload), (sid, seq, enc, &payload[..]));
            prop_assert_eq!(super::super::crypto::integrity(hash, &k1, v.signed), v.auth_code.to_vec());
        }

        #[test]
        fn decoders_never_panic(d in proptest::collection::vec(any::<u8>(), 0..100)) {
            let _ = decode_v2(&d, 12);
            let _ = decode_v2(&d, 16);
            let _ = decode_v15(&d);
            let _ = Reply::decode(&d);
        }
    }
}
