//! The tokio UDP driver: retransmission with backoff, late and duplicate reply filtering,
//! session setup with suite and version fallback, and the [`Bmc`] implementation.

use std::net::SocketAddr;

use tokio::net::UdpSocket;
use tokio::time::Instant;

use super::commands::{self, cmd};
use super::session::{self, CipherSuite, Credentials, Handshake, SessionV2, SessionV15, Step};
use super::wire::{AuthType, Request};
use crate::bmc::{Bmc, BmcFuture, check_boot};
use crate::error::{Error, Refusal, Result};
use crate::types::{BootOverride, Persistence, Policy, PowerAction, PowerState};

/// Which IPMI LAN protocol to speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Version {
    /// RMCP+ (IPMI 2.0). Never falls back to IPMI 1.5: the capability bit that would decide it
    /// arrives in an unauthenticated reply, so anyone on the path could force the downgrade.
    /// A BMC that says it has no RMCP+ is refused with [`Error::Insecure`] naming its offer;
    /// choose [`Version::Lan`] to speak IPMI 1.5 to it.
    #[default]
    Auto,
    /// RMCP+ only (`ipmitool -I lanplus`).
    Lanplus,
    /// IPMI 1.5 only (`ipmitool -I lan`).
    Lan,
}

/// Everything the IPMI driver needs to reach one BMC.
#[derive(Debug, Clone)]
pub struct Config {
    /// `host` or `host:port` (default port 623).
    pub address: String,
    /// User, password and optional BMC key.
    pub credentials: Credentials,
    /// Protocol version choice.
    pub version: Version,
    /// RMCP+ suites to try, in order, when the BMC does not list its suites (Get Channel
    /// Cipher Suites). Listed suites are tried in this order too.
    pub suites: Vec<CipherSuite>,
    /// Ask the BMC for its suites (Get Channel Cipher Suites) before opening a session. When
    /// off, or when the BMC does not answer, each suite in `suites` is tried with Open Session.
    pub query_suites: bool,
    /// Allow IPMI 1.5 authtype NONE and STRAIGHT (the password in clear) when the BMC offers
    /// nothing better. Off by default: with NONE a wrong password "works", with STRAIGHT
    /// anyone on the path reads it. (RMCP+ suites without integrity or confidentiality are
    /// never used: this crate speaks only suites 3 and 17.)
    pub allow_insecure_auth: bool,
    /// Timeouts, retries and settle times.
    pub policy: Policy,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            address: String::new(),
            credentials: Credentials::default(),
            version: Version::Auto,
            suites: vec![CipherSuite::Suite17, CipherSuite::Suite3],
            query_suites: true,
            allow_insecure_auth: false,
            policy: Policy::default(),
        }
    }
}

/// An IPMI-over-LAN BMC. Each call opens a session, runs its commands and closes it.
#[derive(Debug)]
pub struct Ipmi {
    config: Config,
    /// The suite that worked last time, tried first (and without asking) next time.
    last_suite: std::sync::Mutex<Option<CipherSuite>>,
    /// What the last session used.
    negotiated: std::sync::Mutex<Option<Negotiated>>,
}

/// What an established connection ended up using (for logs and tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Negotiated {
    /// RMCP+ with this suite.
    Lanplus(CipherSuite),
    /// IPMI 1.5 with MD5 auth codes.
    LanMd5,
    /// IPMI 1.5 with the password in clear (only with [`Config::allow_insecure_auth`]).
    LanStraight,
    /// IPMI 1.5 without authentication (only with [`Config::allow_insecure_auth`]).
    LanNone,
}

impl std::fmt::Display for Negotiated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Negotiated::Lanplus(s) => write!(f, "rmcp+ cipher suite {}", s.id()),
            Negotiated::LanMd5 => f.write_str("ipmi 1.5 authtype md5"),
            Negotiated::LanStraight => {
                f.write_str("ipmi 1.5 authtype straight (password in clear)")
            }
            Negotiated::LanNone => f.write_str("ipmi 1.5 authtype none (no authentication)"),
        }
    }
}

/// What a read after an unanswered chassis control shows.
enum Applied {
    Yes,
    No,
    CannotTell,
}

enum Sess {
    None,
    V2(SessionV2),
    V15(SessionV15),
}

struct Conn<'a> {
    sock: UdpSocket,
    cfg: &'a Config,
    sess: Sess,
    rq_seq: u8,
    negotiated: Option<Negotiated>,
}

/// `host` -> `host:623`, `::1` -> `[::1]:623`; addresses with a port stay as they are.
fn with_default_port(a: &str) -> String {
    let has_port = a.parse::<SocketAddr>().is_ok()
        || a.rsplit_once(':')
            .is_some_and(|(h, p)| !h.contains(':') && p.parse::<u16>().is_ok());
    if has_port {
        a.to_string()
    } else if a.contains(':') && !a.starts_with('[') {
        format!("[{a}]:623")
    } else {
        format!("{a}:623")
    }
}

fn with_address(e: Error, address: &str) -> Error {
    match e {
        Error::Authentication { message, .. } => Error::Authentication {
            address: address.to_string(),
            message,
        },
        other => other,
    }
}

/// Send what `make` builds, retransmit on silence with backoff, and hand every datagram to
/// `accept` until it returns a value. Late and duplicate datagrams are for `accept` to drop.
async fn exchange<S, T>(
    sock: &UdpSocket,
    address: &str,
    policy: &Policy,
    state: &mut S,
    make: impl Fn(&mut S) -> Vec<u8>,
    accept: impl Fn(&mut S, &[u8]) -> Result<Option<T>>,
) -> Result<T> {
    let start = Instant::now();
    let mut buf = vec![0u8; 1024];
    let mut symptom = "no reply";
    for attempt in 0..=policy.retries {
        if attempt > 0 {
            tokio::time::sleep(policy.backoff_for(attempt - 1)).await;
        }
        let packet = make(state);
        let deadline = Instant::now() + policy.timeout;
        if let Err(e) = sock.send(&packet).await
            && e.kind() != std::io::ErrorKind::ConnectionRefused
        {
            return Err(Error::Transport {
                address: address.to_string(),
                message: e.to_string(),
            });
        }
        loop {
            match tokio::time::timeout_at(deadline, sock.recv(&mut buf)).await {
                Err(_) => break,
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    // ICMP port unreachable: treat like silence (the BMC may be booting), so the
                    // error and its timing are the same as for a BMC that drops packets.
                    symptom = "connection refused";
                    tokio::time::sleep_until(deadline).await;
                    break;
                }
                Ok(Err(e)) => {
                    return Err(Error::Transport {
                        address: address.to_string(),
                        message: e.to_string(),
                    });
                }
                Ok(Ok(n)) => {
                    if let Some(v) = accept(state, &buf[..n])? {
                        return Ok(v);
                    }
                }
            }
        }
    }
    Err(Error::Timeout {
        address: address.to_string(),
        after: start.elapsed(),
        message: symptom.to_string(),
    })
}

impl Conn<'_> {
    fn next_seq(&mut self) -> u8 {
        self.rq_seq = (self.rq_seq + 1) & 0x3F;
        self.rq_seq
    }

    /// Send one request inside the current session (or none) and return the reply.
    async fn raw(&mut self, c: (u8, u8), data: &[u8]) -> Result<super::wire::Reply> {
        let policy = self.cfg.policy.clone();
        self.raw_with(c, data, &policy).await
    }

    async fn raw_with(
        &mut self,
        (netfn, cmd): (u8, u8),
        data: &[u8],
        policy: &Policy,
    ) -> Result<super::wire::Reply> {
        let req = Request {
            netfn,
            cmd,
            rq_seq: self.next_seq(),
            data: data.to_vec(),
        };
        let addr = self.cfg.address.as_str();
        let mut st = (&mut self.sess, &req);
        exchange(
            &self.sock,
            addr,
            policy,
            &mut st,
            |(sess, req)| match sess {
                Sess::None => session::encode_sessionless(req),
                Sess::V2(s) => s.encode(req, rand::random()),
                Sess::V15(s) => s.encode(req),
            },
            |(sess, req), d| {
                let reply = match sess {
                    Sess::None => session::decode_sessionless(d),
                    Sess::V2(s) => s.decode(d),
                    Sess::V15(s) => s.decode(d),
                };
                // A datagram that does not parse may be a stray from an earlier session.
                match reply {
                    Ok(Some(r)) if r.answers(req) => Ok(Some(r)),
                    Ok(_) | Err(Error::Protocol { .. }) => Ok(None),
                    Err(e) => Err(e),
                }
            },
        )
        .await
    }

    /// Send a request and insist on completion code 0; returns the reply data.
    async fn command(
        &mut self,
        operation: &'static str,
        c: (u8, u8),
        data: &[u8],
    ) -> Result<Vec<u8>> {
        let policy = self.cfg.policy.clone();
        self.command_with(operation, c, data, &policy).await
    }

    async fn command_with(
        &mut self,
        operation: &'static str,
        c: (u8, u8),
        data: &[u8],
        policy: &Policy,
    ) -> Result<Vec<u8>> {
        let r = self.raw_with(c, data, policy).await?;
        match r.cc {
            0x00 => Ok(r.data),
            0xC1 => Err(Error::Unsupported {
                operation,
                message: "the bmc does not implement this command (completion code 0xc1)".into(),
            }),
            cc => Err(Error::Refused {
                operation,
                refusal: Refusal::CompletionCode(cc),
                message: String::new(),
            }),
        }
    }

    async fn status(&mut self) -> Result<PowerState> {
        let d = self
            .command("get chassis status", cmd::GET_CHASSIS_STATUS, &[])
            .await?;
        commands::chassis_status(&d)
    }

    /// Chassis Control. Power on and off are idempotent (a second "on" changes nothing) and
    /// are retransmitted like reads. Reset, cycle and soft off are sent once: a retransmission
    /// inside an RMCP+ session carries a new session sequence number, so the BMC would act on
    /// it again. When one goes unanswered, read the power state, and send it again only when
    /// that shows it was not applied.
    async fn control(
        &mut self,
        action: PowerAction,
        applied: impl Fn(PowerState) -> Applied,
    ) -> Result<()> {
        let once = Policy {
            retries: match action {
                PowerAction::On | PowerAction::Off => self.cfg.policy.retries,
                PowerAction::Reset | PowerAction::Cycle | PowerAction::SoftOff => 0,
            },
            ..self.cfg.policy.clone()
        };
        let mut resent = 0;
        loop {
            match self
                .command_with(
                    "chassis control",
                    cmd::CHASSIS_CONTROL,
                    &[commands::chassis_control(action)],
                    &once,
                )
                .await
            {
                Ok(_) => return Ok(()),
                Err(e @ Error::Timeout { .. }) => match applied(self.status().await?) {
                    Applied::Yes => {
                        tracing::debug!(%action, "chassis control unanswered, but applied");
                        return Ok(());
                    }
                    Applied::CannotTell => {
                        tracing::debug!(%action, "chassis control unanswered; nothing shows whether it applied: not resent");
                        return Ok(());
                    }
                    Applied::No if resent < self.cfg.policy.retries => {
                        tracing::debug!(%action, "chassis control unanswered and not applied: sending again");
                        resent += 1;
                    }
                    Applied::No => return Err(e),
                },
                Err(e) => return Err(e),
            }
        }
    }

    /// After a reset or cycle: the host must be seen off (or have been off) and then on.
    /// IPMI has no reset time or counter, so a host that stays on shows nothing.
    async fn verify_restart(
        &mut self,
        operation: &'static str,
        before: PowerState,
    ) -> Result<PowerState> {
        let policy = self.cfg.policy.clone();
        let deadline = Instant::now() + policy.settle;
        let mut seen_off = before == PowerState::Off;
        loop {
            let now = self.status().await?;
            seen_off |= now == PowerState::Off;
            if seen_off && now == PowerState::On {
                return Ok(now);
            }
            if Instant::now() >= deadline {
                return Err(if seen_off {
                    Error::NotApplied {
                        operation,
                        expected: PowerState::On.to_string(),
                        actual: now.to_string(),
                    }
                } else {
                    Error::NotVerifiable {
                        operation,
                        message: format!(
                            "the host stayed on for {:?}; ipmi reports no reset time or counter, so nothing shows whether it restarted",
                            policy.settle
                        ),
                    }
                });
            }
            tokio::time::sleep(policy.poll_interval).await;
        }
    }

    async fn read_boot(&mut self) -> Result<(BootOverride, bool)> {
        let d = self
            .command(
                "get system boot options",
                cmd::GET_BOOT_OPTIONS,
                &commands::GET_BOOT_FLAGS,
            )
            .await?;
        commands::boot_flags(&d)
    }

    async fn settle(&mut self, operation: &'static str, target: PowerState) -> Result<PowerState> {
        let policy = &self.cfg.policy;
        let deadline = Instant::now() + policy.settle;
        let interval = policy.poll_interval;
        loop {
            let now = self.status().await?;
            if now == target {
                return Ok(now);
            }
            if Instant::now() >= deadline {
                return Err(Error::NotApplied {
                    operation,
                    expected: target.to_string(),
                    actual: now.to_string(),
                });
            }
            tokio::time::sleep(interval).await;
        }
    }

    /// Close Session: best effort, one attempt, errors ignored (the BMC times it out anyway).
    async fn close(mut self) {
        let sid = match &self.sess {
            Sess::V2(s) => s.bmc_sid,
            Sess::V15(s) => s.sid,
            Sess::None => return,
        };
        let mut policy = self.cfg.policy.clone();
        policy.retries = 0;
        let cfg = Config {
            policy,
            ..self.cfg.clone()
        };
        self.cfg = &cfg;
        let _ = self.raw(cmd::CLOSE_SESSION, &sid.to_le_bytes()).await;
    }

    /// Raise the session to Administrator (without it, chassis commands fail with 0xD4).
    async fn set_admin(&mut self) -> Result<()> {
        self.command(
            "set session privilege level",
            cmd::SET_SESSION_PRIVILEGE,
            &[session::ADMIN],
        )
        .await
        .map(drop)
    }
}

impl Ipmi {
    /// Check the configuration and make a driver. No traffic yet.
    pub fn new(config: Config) -> Result<Self> {
        config.credentials.check()?;
        if config.suites.is_empty() {
            return Err(Error::Config {
                message: "no rmcp+ cipher suite to try".into(),
            });
        }
        Ok(Ipmi {
            config,
            last_suite: std::sync::Mutex::new(None),
            negotiated: std::sync::Mutex::new(None),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// What the last session used (cipher suite or IPMI 1.5 authtype); `None` before the first.
    pub fn negotiated(&self) -> Option<Negotiated> {
        *self.negotiated.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn resolve(&self) -> Result<SocketAddr> {
        let a = &self.config.address;
        let target = with_default_port(a);
        tokio::net::lookup_host(&target)
            .await
            .map_err(|e| Error::Config {
                message: format!("cannot resolve {a}: {e}"),
            })?
            .next()
            .ok_or_else(|| Error::Config {
                message: format!("{a} resolves to no address"),
            })
    }

    async fn socket(&self) -> Result<UdpSocket> {
        let peer = self.resolve().await?;
        let local: SocketAddr = if peer.is_ipv4() {
            (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let transport = |e: std::io::Error| Error::Transport {
            address: self.config.address.clone(),
            message: e.to_string(),
        };
        let sock = UdpSocket::bind(local).await.map_err(transport)?;
        sock.connect(peer).await.map_err(transport)?;
        Ok(sock)
    }

    /// Open an authenticated Administrator session.
    async fn connect(&self) -> Result<Conn<'_>> {
        let cfg = &self.config;
        let mut c = Conn {
            sock: self.socket().await?,
            cfg,
            sess: Sess::None,
            rq_seq: 0,
            negotiated: None,
        };
        // Get Channel Authentication Capabilities, asking for IPMI 2.0 data (bit 7); a
        // 1.5-only BMC rejects that, so ask again without it.
        let caps = match c
            .raw(cmd::GET_CHANNEL_AUTH_CAPS, &[0x8E, session::ADMIN])
            .await?
        {
            r if r.cc == 0 => commands::auth_caps(&r.data)?,
            _ => commands::auth_caps(
                &c.command(
                    "get channel auth capabilities",
                    cmd::GET_CHANNEL_AUTH_CAPS,
                    &[0x0E, session::ADMIN],
                )
                .await?,
            )?,
        };
        let use_v2 = match cfg.version {
            Version::Lanplus => true,
            Version::Lan => false,
            // Never a downgrade on the word of an unauthenticated reply.
            Version::Auto if !caps.v2 => {
                return Err(Error::Insecure {
                    address: cfg.address.clone(),
                    offered: caps.describe(),
                    message: "auto mode speaks only rmcp+, and does not fall back to ipmi 1.5 on an unauthenticated capability reply; choose version lan to allow ipmi 1.5".into(),
                });
            }
            Version::Auto => true,
        };
        if use_v2 {
            let known = *self.last_suite.lock().unwrap_or_else(|e| e.into_inner());
            let offered = match known {
                Some(s) => Some(vec![s.id()]),
                None if cfg.query_suites => self.offered_suites(&mut c).await,
                None => None,
            };
            let mut last = None;
            for suite in cfg.suites.iter().copied() {
                if offered.as_ref().is_some_and(|o| !o.contains(&suite.id())) {
                    continue;
                }
                match self.handshake(&c.sock, suite).await {
                    Ok(s) => {
                        c.sess = Sess::V2(s);
                        c.negotiated = Some(Negotiated::Lanplus(suite));
                        *self.last_suite.lock().unwrap_or_else(|e| e.into_inner()) = Some(suite);
                        last = None;
                        break;
                    }
                    Err(e @ Error::Unsupported { .. }) => {
                        tracing::debug!(suite = suite.id(), error = %e, "cipher suite rejected");
                        last = Some(e);
                    }
                    Err(e) => return Err(with_address(e, &cfg.address)),
                }
            }
            if let Some(e) = last {
                // Forget a suite that stopped working (BMC reconfigured); renegotiate next time.
                *self.last_suite.lock().unwrap_or_else(|e| e.into_inner()) = None;
                return Err(e);
            }
            if c.negotiated.is_none() {
                let ours: Vec<u8> = cfg.suites.iter().map(|s| s.id()).collect();
                return Err(Error::Unsupported {
                    operation: "open session",
                    message: format!(
                        "the bmc lists cipher suites {:?}, none of ours {ours:?} (suites without integrity and confidentiality are never used)",
                        offered.unwrap_or_default()
                    ),
                });
            }
        } else {
            self.activate_v15(&mut c, caps).await?;
        }
        c.set_admin().await?;
        let n = c.negotiated.expect("a session was set up");
        tracing::debug!(address = %cfg.address, negotiated = %n, "ipmi session");
        *self.negotiated.lock().unwrap_or_else(|e| e.into_inner()) = Some(n);
        Ok(c)
    }

    /// Get Channel Cipher Suites, sent pre-session in IPMI 1.5 format (ipmi_sim answers that
    /// format only); `None` when the BMC does not answer it, which means "probe with Open Session".
    async fn offered_suites(&self, c: &mut Conn<'_>) -> Option<Vec<u8>> {
        let mut records = Vec::new();
        // One retry only: a BMC that does not implement the command (ipmi_sim in RMCP+ format,
        // some older BMCs) would otherwise cost the full retry budget on every connection.
        let mut policy = self.config.policy.clone();
        policy.retries = policy.retries.min(1);
        for index in 0..0x40u8 {
            let req = Request {
                netfn: cmd::GET_CHANNEL_CIPHER_SUITES.0,
                cmd: cmd::GET_CHANNEL_CIPHER_SUITES.1,
                rq_seq: c.next_seq(),
                data: vec![0x0E, 0x00, 0x80 | index],
            };
            let r = exchange(
                &c.sock,
                &self.config.address,
                &policy,
                &mut (),
                |_| session::encode_sessionless(&req),
                |_, d| {
                    Ok(session::decode_sessionless(d)
                        .ok()
                        .flatten()
                        .filter(|r| r.answers(&req)))
                },
            )
            .await
            .ok()?;
            if r.cc != 0 || r.data.is_empty() {
                return None;
            }
            records.extend_from_slice(&r.data[1..]);
            if r.data.len() < 17 {
                break;
            }
        }
        let ids = commands::cipher_suites(&records);
        tracing::debug!(?ids, "bmc lists cipher suites");
        Some(ids)
    }

    async fn handshake(&self, sock: &UdpSocket, suite: CipherSuite) -> Result<SessionV2> {
        let mut hs = Handshake::new(
            suite,
            self.config.credentials.clone(),
            rand::random::<u32>() | 1,
            rand::random(),
        );
        let mut packet = hs.start();
        loop {
            let step = exchange(
                sock,
                &self.config.address,
                &self.config.policy,
                &mut hs,
                |_| packet.clone(),
                |hs, d| hs.handle(d),
            )
            .await?;
            match step {
                Step::Send(p) => packet = p,
                Step::Done(s) => return Ok(s),
            }
        }
    }

    async fn activate_v15(&self, c: &mut Conn<'_>, caps: commands::AuthCaps) -> Result<()> {
        let cfg = &self.config;
        let insecure_ok = cfg.allow_insecure_auth;
        let (auth, negotiated) = if caps.md5 {
            (AuthType::Md5, Negotiated::LanMd5)
        } else if caps.straight && insecure_ok {
            (AuthType::Straight, Negotiated::LanStraight)
        } else if caps.none && insecure_ok {
            (AuthType::None, Negotiated::LanNone)
        } else if caps.straight || caps.none {
            return Err(Error::Insecure {
                address: cfg.address.clone(),
                offered: caps.describe(),
                message: "authtype none accepts any password and straight sends it in clear; allow them with allow_insecure_auth".into(),
            });
        } else {
            return Err(Error::Unsupported {
                operation: "activate session",
                message: format!(
                    "the bmc offers {}, and this crate speaks md5 (none and straight only when allowed)",
                    caps.describe()
                ),
            });
        };
        let auth_fail = |e: Error| match e {
            Error::Refused {
                refusal: Refusal::CompletionCode(cc @ 0x81..=0x86),
                operation,
                ..
            } => Error::Authentication {
                address: cfg.address.clone(),
                message: format!("{operation}: completion code {cc:#04x}"),
            },
            other => other,
        };
        let mut data = vec![auth as u8];
        let mut user = [0u8; 16];
        let u = cfg.credentials.username.as_bytes();
        user[..u.len().min(16)].copy_from_slice(&u[..u.len().min(16)]);
        data.extend_from_slice(&user);
        // ipmi_sim (and others) silently drop an Activate Session with a bad auth code. So it is
        // sent twice (one lost datagram is not a wrong password), then the BMC is asked whether
        // it answers at all: a BMC that answers but ignored both activations refused the
        // password. Two timeouts instead of the whole retry budget, and not a guess from silence.
        let twice = Policy {
            retries: cfg.policy.retries.min(1),
            ..cfg.policy.clone()
        };
        let r = {
            let ch = c
                .command("get session challenge", cmd::GET_SESSION_CHALLENGE, &data)
                .await
                .map_err(auth_fail)?;
            if ch.len() < 20 {
                return Err(Error::protocol("get session challenge reply truncated"));
            }
            let temp_sid = u32::from_le_bytes(ch[0..4].try_into().expect("4 bytes"));
            let challenge: [u8; 16] = ch[4..20].try_into().expect("16 bytes");
            let rq_seq = c.next_seq();
            let initial_outbound = rand::random::<u32>() | 1;
            let packet = session::activate_v15(
                auth,
                &cfg.credentials.password,
                temp_sid,
                &challenge,
                initial_outbound,
                rq_seq,
            );
            let answer = exchange(
                &c.sock,
                &cfg.address,
                &twice,
                &mut (),
                |_| packet.clone(),
                |_, d| {
                    Ok(session::decode_sessionless(d)
                        .ok()
                        .flatten()
                        .filter(|r| r.cmd == 0x3A && r.rq_seq == rq_seq))
                },
            )
            .await;
            match answer {
                Ok(r) => r,
                Err(Error::Timeout { .. }) => {
                    // Alive? (An unreachable BMC ends here in Error::Timeout.)
                    c.command(
                        "get channel auth capabilities",
                        cmd::GET_CHANNEL_AUTH_CAPS,
                        &[0x0E, session::ADMIN],
                    )
                    .await?;
                    return Err(Error::Authentication {
                        address: cfg.address.clone(),
                        message: "the bmc answers, but dropped every activate session: wrong password (ipmi 1.5 bmcs do not say so)".into(),
                    });
                }
                Err(e) => return Err(e),
            }
        };
        if r.cc != 0 {
            return Err(auth_fail(Error::Refused {
                operation: "activate session",
                refusal: Refusal::CompletionCode(r.cc),
                message: String::new(),
            }));
        }
        if r.data.len() < 10 {
            return Err(Error::protocol("activate session reply truncated"));
        }
        let sid = u32::from_le_bytes(r.data[1..5].try_into().expect("4 bytes"));
        let seq = u32::from_le_bytes(r.data[5..9].try_into().expect("4 bytes"));
        c.sess = Sess::V15(SessionV15::new(auth, &cfg.credentials.password, sid, seq));
        c.negotiated = Some(negotiated);
        Ok(())
    }

    /// Open a session, report what was negotiated, and close it again.
    pub async fn probe(&self) -> Result<Negotiated> {
        let c = self.connect().await?;
        let n = c.negotiated.expect("connect sets negotiated");
        c.close().await;
        Ok(n)
    }

    async fn run<T>(
        &self,
        f: impl for<'c> AsyncFnOnce(&'c mut Conn<'_>) -> Result<T>,
    ) -> Result<T> {
        let mut c = self.connect().await?;
        let r = f(&mut c).await;
        c.close().await;
        r
    }

    async fn do_power(&self, action: PowerAction) -> Result<PowerState> {
        self.run(async |c| {
            let before = c.status().await?;
            let target = action.expected_state();
            let reached = move |now: PowerState| {
                if now == target {
                    Applied::Yes
                } else {
                    Applied::No
                }
            };
            let restarted = move |now: PowerState| match (before, now) {
                (_, PowerState::Off) | (PowerState::Off, PowerState::On) => Applied::Yes,
                _ => Applied::CannotTell,
            };
            match action {
                // Already there: nothing to send.
                PowerAction::On | PowerAction::Off | PowerAction::SoftOff if before == target => {
                    Ok(before)
                }
                PowerAction::On | PowerAction::Off => {
                    c.control(action, reached).await?;
                    c.settle("power", target).await
                }
                PowerAction::SoftOff => {
                    // A graceful shutdown takes its time: a host still on proves nothing.
                    c.control(action, |now| match now {
                        PowerState::Off => Applied::Yes,
                        PowerState::On => Applied::CannotTell,
                    })
                    .await?;
                    c.settle("power", target).await
                }
                PowerAction::Reset => {
                    c.control(action, restarted).await?;
                    c.verify_restart("reset", before).await
                }
                PowerAction::Cycle => match c.control(action, restarted).await {
                    Ok(()) => c.verify_restart("power cycle", before).await,
                    // Some BMCs (virtualbmc, or any BMC while the host is off) refuse a cycle.
                    Err(Error::Refused { .. } | Error::Unsupported { .. }) => {
                        tracing::debug!("power cycle refused, falling back to off + on");
                        if before == PowerState::On {
                            c.control(PowerAction::Off, |now| {
                                if now == PowerState::Off {
                                    Applied::Yes
                                } else {
                                    Applied::No
                                }
                            })
                            .await?;
                            c.settle("power cycle", PowerState::Off).await?;
                        }
                        c.control(PowerAction::On, |now| {
                            if now == PowerState::On {
                                Applied::Yes
                            } else {
                                Applied::No
                            }
                        })
                        .await?;
                        c.settle("power cycle", PowerState::On).await
                    }
                    Err(e) => Err(e),
                },
            }
        })
        .await
    }

    async fn do_set_boot(&self, boot: BootOverride) -> Result<BootOverride> {
        let flags = commands::set_boot_flags(&boot)?;
        self.run(async |c| {
            // Setting boot flags is idempotent: a retransmission sets the same bits again.
            c.command("set system boot options", cmd::SET_BOOT_OPTIONS, &flags)
                .await?;
            let (actual, valid) = c.read_boot().await?;
            if valid {
                check_boot(&boot, &actual)?;
            } else {
                // Only the device selector is meaningful (see commands::boot_flags): the mode
                // and persistence bits asked for cannot be read back, so they are unverified.
                check_boot(&BootOverride::once(boot.device), &actual)?;
                if boot.mode.is_some() || boot.persistence == Persistence::Persistent {
                    return Err(Error::NotVerifiable {
                        operation: "set boot mode",
                        message: format!(
                            "{} reads back, but the bmc reports the boot flags as not valid: {boot} is unverified beyond the device",
                            actual.device
                        ),
                    });
                }
            }
            Ok(actual)
        })
        .await
    }
}

impl Bmc for Ipmi {
    fn power_status(&self) -> BmcFuture<'_, PowerState> {
        Box::pin(self.run(async |c| c.status().await))
    }

    fn power(&self, action: PowerAction) -> BmcFuture<'_, PowerState> {
        Box::pin(self.do_power(action))
    }

    fn set_boot(&self, boot: BootOverride) -> BmcFuture<'_, BootOverride> {
        Box::pin(self.do_set_boot(boot))
    }

    fn boot(&self) -> BmcFuture<'_, BootOverride> {
        Box::pin(self.run(async |c| c.read_boot().await.map(|(b, _)| b)))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn default_port() {
        let cases = [
            ("10.0.0.5", "10.0.0.5:623"),
            ("10.0.0.5:9623", "10.0.0.5:9623"),
            ("bmc.example", "bmc.example:623"),
            ("bmc.example:1623", "bmc.example:1623"),
            ("::1", "[::1]:623"),
            ("[::1]", "[::1]:623"),
            ("[::1]:9623", "[::1]:9623"),
        ];
        for (input, want) in cases {
            assert_eq!(super::with_default_port(input), want, "{input}");
        }
    }
}
