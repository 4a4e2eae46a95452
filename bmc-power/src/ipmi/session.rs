//! Sans-IO session logic: the RMCP+ handshake (Open Session, RAKP 1 to 4), the IPMI 1.5
//! activation, and the established sessions that wrap and unwrap messages. No sockets, no
//! clock; randomness (Rm, session ids, IVs) is passed in.

use super::crypto::{self, Hash, Rakp};
use super::wire::{self, AuthType, Reply, Request, payload};
use crate::error::{Error, Refusal, Result};

/// Administrator, the privilege chassis control needs.
pub(crate) const ADMIN: u8 = 0x04;

/// An RMCP+ cipher suite this crate speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CipherSuite {
    /// Suite 3: RAKP-HMAC-SHA1, HMAC-SHA1-96, AES-CBC-128.
    Suite3,
    /// Suite 17: RAKP-HMAC-SHA256, HMAC-SHA256-128, AES-CBC-128.
    Suite17,
}

impl CipherSuite {
    /// The suite number as IPMI names it.
    pub fn id(self) -> u8 {
        match self {
            CipherSuite::Suite3 => 3,
            CipherSuite::Suite17 => 17,
        }
    }

    pub(crate) fn hash(self) -> Hash {
        match self {
            CipherSuite::Suite3 => Hash::Sha1,
            CipherSuite::Suite17 => Hash::Sha256,
        }
    }

    /// (authentication, integrity, confidentiality) algorithm numbers.
    pub(crate) fn algorithms(self) -> (u8, u8, u8) {
        match self {
            CipherSuite::Suite3 => (0x01, 0x01, 0x01),
            CipherSuite::Suite17 => (0x03, 0x04, 0x01),
        }
    }
}

/// User name, password and optional BMC key (K_G).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    /// The user name (at most 16 bytes).
    pub username: String,
    /// The password (at most 20 bytes for IPMI 2.0, 16 for IPMI 1.5).
    pub password: String,
    /// The BMC key K_G, for BMCs that have one set; `None` uses the password.
    pub kg: Option<Vec<u8>>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl Credentials {
    pub(crate) fn check(&self) -> Result<()> {
        if self.username.len() > 16 || self.password.len() > 20 {
            return Err(Error::Config {
                message: "ipmi user names are at most 16 bytes and passwords at most 20".into(),
            });
        }
        Ok(())
    }
}

/// What the handshake wants next.
#[derive(Debug)]
pub(crate) enum Step {
    /// Send this datagram (and retransmit it until an answer comes).
    Send(Vec<u8>),
    /// The session is up.
    Done(SessionV2),
}

#[derive(Debug)]
enum HsState {
    Open,
    Rakp1 {
        bmc_sid: u32,
    },
    Rakp3 {
        bmc_sid: u32,
        rc: [u8; 16],
        guid: [u8; 16],
        sik: Vec<u8>,
    },
}

/// The RMCP+ handshake: Open Session, RAKP1/2, RAKP3/4.
#[derive(Debug)]
pub(crate) struct Handshake {
    suite: CipherSuite,
    creds: Credentials,
    role: u8,
    console_sid: u32,
    rm: [u8; 16],
    state: HsState,
}

fn auth_err(message: impl Into<String>) -> Error {
    Error::Authentication {
        address: String::new(),
        message: message.into(),
    }
}

/// Map an RMCP+ status code (IPMI 2.0 table 13-15) from Open Session or RAKP to an error.
fn rmcp_status(operation: &'static str, code: u8) -> Error {
    match code {
        0x04 | 0x05 | 0x06 | 0x07 | 0x10 | 0x11 => Error::Unsupported {
            operation,
            message: format!("cipher suite rejected (rmcp+ status {code:#04x})"),
        },
        0x09 | 0x0A | 0x0C | 0x0D | 0x0E | 0x0F | 0x12 => {
            auth_err(format!("{operation}: rmcp+ status {code:#04x}"))
        }
        _ => Error::Refused {
            operation,
            refusal: Refusal::RmcpStatus(code),
            message: String::new(),
        },
    }
}

impl Handshake {
    /// `console_sid` must be non-zero; `rm` is 16 random bytes.
    pub(crate) fn new(
        suite: CipherSuite,
        creds: Credentials,
        console_sid: u32,
        rm: [u8; 16],
    ) -> Self {
        Handshake {
            suite,
            creds,
            // Administrator, name-only lookup (as ipmitool does by default).
            role: 0x10 | ADMIN,
            console_sid: console_sid.max(1),
            rm,
            state: HsState::Open,
        }
    }

    /// The first datagram: Open Session Request.
    pub(crate) fn start(&self) -> Vec<u8> {
        let (a, i, c) = self.suite.algorithms();
        let mut p = vec![0x00, ADMIN, 0, 0];
        p.extend_from_slice(&self.console_sid.to_le_bytes());
        p.extend_from_slice(&[0x00, 0, 0, 0x08, a, 0, 0, 0]);
        p.extend_from_slice(&[0x01, 0, 0, 0x08, i, 0, 0, 0]);
        p.extend_from_slice(&[0x02, 0, 0, 0x08, c, 0, 0, 0]);
        wire::encode_v2(payload::OPEN_SESSION_REQUEST, false, 0, 0, &p, None)
    }

    /// Feed a received datagram. `Ok(None)` means "not for this step, keep waiting".
    pub(crate) fn handle(&mut self, d: &[u8]) -> Result<Option<Step>> {
        let Ok(v) = wire::decode_v2(d, 0) else {
            return Ok(None);
        };
        let p = v.payload;
        match (&self.state, v.payload_type) {
            (HsState::Open, payload::OPEN_SESSION_RESPONSE) => {
                // A reply to an earlier attempt (another console session id) is not ours.
                if p.len() >= 8 && p[4..8] != self.console_sid.to_le_bytes() {
                    return Ok(None);
                }
                if p.len() < 2 {
                    return Err(Error::protocol("open session response truncated"));
                }
                if p[1] != 0 {
                    return Err(rmcp_status("open session", p[1]));
                }
                if p.len() < 36 {
                    return Err(Error::protocol("open session response truncated"));
                }
                let bmc_sid = u32::from_le_bytes(p[8..12].try_into().expect("4 bytes"));
                let (a, i, c) = self.suite.algorithms();
                if (p[16], p[24], p[32]) != (a, i, c) {
                    return Err(Error::Unsupported {
                        operation: "open session",
                        message: format!(
                            "bmc chose algorithms {:#04x}/{:#04x}/{:#04x} instead of suite {}",
                            p[16],
                            p[24],
                            p[32],
                            self.suite.id()
                        ),
                    });
                }
                let user = self.creds.username.as_bytes();
                let mut r = vec![0x00, 0, 0, 0];
                r.extend_from_slice(&bmc_sid.to_le_bytes());
                r.extend_from_slice(&self.rm);
                r.extend_from_slice(&[self.role, 0, 0, user.len() as u8]);
                r.extend_from_slice(user);
                self.state = HsState::Rakp1 { bmc_sid };
                Ok(Some(Step::Send(wire::encode_v2(
                    payload::RAKP1,
                    false,
                    0,
                    0,
                    &r,
                    None,
                ))))
            }
            (HsState::Rakp1 { bmc_sid }, payload::RAKP2) => {
                let bmc_sid = *bmc_sid;
                if p.len() >= 8 && p[4..8] != self.console_sid.to_le_bytes() {
                    return Ok(None);
                }
                if p.len() < 2 {
                    return Err(Error::protocol("rakp2 truncated"));
                }
                if p[1] != 0 {
                    return Err(rmcp_status("rakp2", p[1]));
                }
                let hl = self.suite.hash().len();
                if p.len() < 40 + hl {
                    return Err(Error::protocol("rakp2 truncated"));
                }
                let rc: [u8; 16] = p[8..24].try_into().expect("16 bytes");
                let guid: [u8; 16] = p[24..40].try_into().expect("16 bytes");
                let rakp = self.rakp(bmc_sid, rc, guid);
                if !crypto::ct_eq(&rakp.rakp2_auth(), &p[40..40 + hl]) {
                    return Err(auth_err(
                        "rakp2 key exchange code does not match: wrong user name or password",
                    ));
                }
                let sik = rakp.sik();
                let mut r = vec![0x00, 0x00, 0, 0];
                r.extend_from_slice(&bmc_sid.to_le_bytes());
                r.extend_from_slice(&rakp.rakp3_auth());
                self.state = HsState::Rakp3 {
                    bmc_sid,
                    rc,
                    guid,
                    sik,
                };
                Ok(Some(Step::Send(wire::encode_v2(
                    payload::RAKP3,
                    false,
                    0,
                    0,
                    &r,
                    None,
                ))))
            }
            (
                HsState::Rakp3 {
                    bmc_sid,
                    rc,
                    guid,
                    sik,
                },
                payload::RAKP4,
            ) => {
                if p.len() < 2 {
                    return Err(Error::protocol("rakp4 truncated"));
                }
                if p[1] != 0 {
                    return Err(rmcp_status("rakp4", p[1]));
                }
                let il = self.suite.hash().icv_len();
                if p.len() < 8 + il {
                    return Err(Error::protocol("rakp4 truncated"));
                }
                let rakp = self.rakp(*bmc_sid, *rc, *guid);
                if !crypto::ct_eq(&rakp.rakp4_icv(sik), &p[8..8 + il]) {
                    return Err(auth_err("rakp4 integrity check value does not match"));
                }
                Ok(Some(Step::Done(SessionV2::new(
                    self.suite,
                    sik,
                    *bmc_sid,
                    self.console_sid,
                ))))
            }
            _ => Ok(None),
        }
    }

    fn rakp(&self, bmc_sid: u32, rc: [u8; 16], guid: [u8; 16]) -> Rakp<'_> {
        Rakp {
            hash: self.suite.hash(),
            kuid: self.creds.password.as_bytes(),
            kg: self.creds.kg.as_deref(),
            console_sid: self.console_sid,
            bmc_sid,
            rm: self.rm,
            rc,
            guid,
            role: self.role,
            user: self.creds.username.as_bytes(),
        }
    }
}

/// An established RMCP+ session.
#[derive(Debug, Clone)]
pub(crate) struct SessionV2 {
    pub(crate) suite: CipherSuite,
    k1: Vec<u8>,
    k2: Vec<u8>,
    pub(crate) bmc_sid: u32,
    console_sid: u32,
    out_seq: u32,
}

impl SessionV2 {
    pub(crate) fn new(suite: CipherSuite, sik: &[u8], bmc_sid: u32, console_sid: u32) -> Self {
        let h = suite.hash();
        SessionV2 {
            suite,
            k1: crypto::additional_key(h, sik, 0x01),
            k2: crypto::additional_key(h, sik, 0x02),
            bmc_sid,
            console_sid,
            out_seq: 0,
        }
    }

    /// Wrap a request: encrypted with a fresh IV, integrity-protected, next session sequence.
    pub(crate) fn encode(&mut self, req: &Request, iv: [u8; 16]) -> Vec<u8> {
        self.out_seq = self.out_seq.wrapping_add(1).max(1);
        let body = crypto::encrypt(&self.k2, iv, &req.encode());
        wire::encode_v2(
            payload::IPMI,
            true,
            self.bmc_sid,
            self.out_seq,
            &body,
            Some((self.suite.hash(), &self.k1)),
        )
    }

    /// Unwrap a reply; `Ok(None)` for datagrams of other sessions or payload types.
    pub(crate) fn decode(&self, d: &[u8]) -> Result<Option<Reply>> {
        let h = self.suite.hash();
        let v = wire::decode_v2(d, h.icv_len())?;
        if v.payload_type != payload::IPMI || v.sid != self.console_sid {
            return Ok(None);
        }
        if !v.authenticated {
            return Err(Error::protocol(
                "unauthenticated reply inside an rmcp+ session",
            ));
        }
        if !crypto::ct_eq(&crypto::integrity(h, &self.k1, v.signed), v.auth_code) {
            return Err(Error::protocol("rmcp+ integrity check failed"));
        }
        let msg = if v.encrypted {
            crypto::decrypt(&self.k2, v.payload)?
        } else {
            v.payload.to_vec()
        };
        Reply::decode(&msg).map(Some)
    }
}

/// An established IPMI 1.5 session.
#[derive(Debug, Clone)]
pub(crate) struct SessionV15 {
    pub(crate) auth: AuthType,
    password: [u8; 16],
    pub(crate) sid: u32,
    out_seq: u32,
}

impl SessionV15 {
    pub(crate) fn new(auth: AuthType, password: &str, sid: u32, initial_seq: u32) -> Self {
        SessionV15 {
            auth,
            password: crypto::password16(password.as_bytes()),
            sid,
            out_seq: initial_seq,
        }
    }

    fn code(&self, sid: u32, seq: u32, msg: &[u8]) -> Option<[u8; 16]> {
        match self.auth {
            AuthType::Md5 => Some(crypto::md5_auth(&self.password, sid, msg, seq)),
            AuthType::Straight => Some(self.password),
            AuthType::None | AuthType::RmcpPlus => None,
        }
    }

    pub(crate) fn encode(&mut self, req: &Request) -> Vec<u8> {
        let seq = self.out_seq;
        self.out_seq = self.out_seq.wrapping_add(1).max(1);
        let msg = req.encode();
        wire::encode_v15(
            self.auth,
            seq,
            self.sid,
            self.code(self.sid, seq, &msg),
            &msg,
        )
    }

    pub(crate) fn decode(&self, d: &[u8]) -> Result<Option<Reply>> {
        if wire::is_v2(d)? {
            return Ok(None);
        }
        let v = wire::decode_v15(d)?;
        if v.sid != self.sid && v.sid != 0 {
            return Ok(None);
        }
        Reply::decode(v.msg).map(Some)
    }
}

/// Activate Session request (IPMI 1.5): sent with the temporary session id and sequence 0,
/// authenticated with the chosen auth type.
pub(crate) fn activate_v15(
    auth: AuthType,
    password: &str,
    temp_sid: u32,
    challenge: &[u8; 16],
    initial_outbound: u32,
    rq_seq: u8,
) -> Vec<u8> {
    let mut data = vec![auth as u8, ADMIN];
    data.extend_from_slice(challenge);
    data.extend_from_slice(&initial_outbound.to_le_bytes());
    let req = Request {
        netfn: 0x06,
        cmd: 0x3A,
        rq_seq,
        data,
    };
    let s = SessionV15::new(auth, password, temp_sid, 0);
    let msg = req.encode();
    wire::encode_v15(auth, 0, temp_sid, s.code(temp_sid, 0, &msg), &msg)
}

/// Unwrap a pre-session reply in either format.
pub(crate) fn decode_sessionless(d: &[u8]) -> Result<Option<Reply>> {
    if wire::is_v2(d)? {
        let v = wire::decode_v2(d, 0)?;
        if v.payload_type != payload::IPMI || v.authenticated || v.encrypted {
            return Ok(None);
        }
        return Reply::decode(v.payload).map(Some);
    }
    Reply::decode(wire::decode_v15(d)?.msg).map(Some)
}

/// Wrap a pre-session request in IPMI 1.5 format with no authentication.
pub(crate) fn encode_sessionless(req: &Request) -> Vec<u8> {
    wire::encode_v15(AuthType::None, 0, 0, None, &req.encode())
}
