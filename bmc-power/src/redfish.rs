//! Redfish over HTTP(S): discovery, `ComputerSystem.Reset` with the advertised reset types,
//! boot source override, basic auth or a session, and TLS trust from [`crate::tls`].
//!
//! Replies are parsed strictly: a body that is not complete JSON, or a record without the
//! fields an operation needs, is [`Error::Protocol`] and nothing is sent after it. Reads are
//! retried on silence; actions (reset, boot override) are sent once, and sent again only after
//! a read shows they were not applied.

use std::sync::Arc;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::bmc::{Bmc, BmcFuture, check_boot};
use crate::error::{Error, Refusal, Result};
use crate::tls::{self, Tls, Verifier};
use crate::types::{
    BootDevice, BootMode, BootOverride, Persistence, Policy, PowerAction, PowerState,
};

/// How to authenticate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Auth {
    /// A session first; basic auth when the session service answers the login with 401, 403,
    /// 404 or 405 (some services refuse an unauthenticated login POST; sushy-tools has no
    /// SessionService). Which one is used is logged at debug level and returned by
    /// [`Redfish::auth_in_use`].
    #[default]
    Auto,
    /// HTTP basic auth on every request.
    Basic,
    /// A session token (`X-Auth-Token`) only: a refused login is an error.
    Session,
}

/// Everything the Redfish driver needs to reach one BMC.
#[derive(Debug, Clone)]
pub struct Config {
    /// Base URL, e.g. `https://10.0.0.5` or `http://127.0.0.1:8000`.
    pub endpoint: String,
    /// User name.
    pub username: String,
    /// Password.
    pub password: String,
    /// The system to control: its id (last path segment) or full `@odata.id`. `None` takes the
    /// first member of the Systems collection.
    pub system: Option<String>,
    /// Certificate checking.
    pub tls: Tls,
    /// Basic auth or session.
    pub auth: Auth,
    /// Timeouts, retries and settle times.
    pub policy: Policy,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            endpoint: String::new(),
            username: String::new(),
            password: String::new(),
            system: None,
            tls: Tls::System,
            auth: Auth::Auto,
            policy: Policy::default(),
        }
    }
}

#[derive(Debug, Default)]
struct State {
    /// `@odata.id` of the system, once discovered.
    system: Option<String>,
    /// Session token and session URI, when logged in.
    session: Option<(String, Option<String>)>,
    /// The Sessions collection (linked from the service root, or the standard path).
    sessions_uri: Option<String>,
    /// The authentication settled on by discovery.
    auth: Option<Auth>,
    discovered: bool,
}

/// A Redfish BMC.
#[derive(Debug)]
pub struct Redfish {
    config: Config,
    http: reqwest::Client,
    state: Mutex<State>,
    /// Our certificate verifier, for the trust modes that use one.
    verifier: Option<Arc<Verifier>>,
}

/// The standard Sessions collection, for services whose root does not link one.
const SESSIONS: &str = "/redfish/v1/SessionService/Sessions";

/// One HTTP reply: status, headers, and the body parsed as JSON (`Null` when empty; for an
/// error status whose body is not JSON, its text as a string).
struct Reply {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

/// The parts of a ComputerSystem this driver reads.
#[derive(Debug, Clone)]
struct System {
    power: Option<PowerState>,
    boot: Option<BootOverride>,
    targets: Option<Vec<String>>,
    reset_target: Option<String>,
    reset_types: Option<Vec<String>>,
    last_reset: Option<String>,
    etag: Option<String>,
}

/// An optional field that must have a given shape when present.
fn opt_str<'a>(v: &'a Value, key: &str) -> std::result::Result<Option<&'a str>, String> {
    match &v[key] {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s)),
        other => Err(format!("{key} is {other}, not a string")),
    }
}

fn opt_strings(v: &Value, key: &str) -> std::result::Result<Option<Vec<String>>, String> {
    match &v[key] {
        Value::Null => Ok(None),
        Value::Array(a) => a
            .iter()
            .map(|s| {
                s.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| format!("{key} holds {s}, not a string"))
            })
            .collect::<std::result::Result<_, _>>()
            .map(Some),
        other => Err(format!("{key} is {other}, not a list")),
    }
}

/// A ComputerSystem record, strictly: every field this driver uses must have its documented
/// shape when present. `PowerState` and `Boot` may be absent (the operations that need them
/// say so); a `Boot` without `BootSourceOverrideEnabled` is cut short.
fn parse_system(v: &Value, etag: Option<String>) -> std::result::Result<System, String> {
    if !v.is_object() {
        return Err("the system record is not a json object".into());
    }
    let power = match opt_str(v, "PowerState")? {
        None => None,
        Some("On" | "PoweringOff" | "Paused") => Some(PowerState::On),
        Some("Off" | "PoweringOn") => Some(PowerState::Off),
        Some(other) => return Err(format!("unknown PowerState {other:?}")),
    };
    let b = &v["Boot"];
    let boot = match b {
        Value::Null => None,
        Value::Object(_) => {
            let enabled = opt_str(b, "BootSourceOverrideEnabled")?
                .ok_or("Boot has no BootSourceOverrideEnabled")?;
            let persistence = match enabled {
                "Disabled" | "Once" => Persistence::Once,
                "Continuous" => Persistence::Persistent,
                other => return Err(format!("unknown BootSourceOverrideEnabled {other:?}")),
            };
            let target = opt_str(b, "BootSourceOverrideTarget")?;
            let device = if enabled == "Disabled" {
                BootDevice::None
            } else {
                match target.ok_or("Boot has no BootSourceOverrideTarget")? {
                    "Pxe" => BootDevice::Pxe,
                    "UefiHttp" => BootDevice::UefiHttp,
                    "Hdd" => BootDevice::Disk,
                    "Cd" => BootDevice::Cdrom,
                    "BiosSetup" => BootDevice::BiosSetup,
                    // Floppy, Usb, UefiShell...: no name here; reads as "no override of ours".
                    _ => BootDevice::None,
                }
            };
            let mode = match opt_str(b, "BootSourceOverrideMode")? {
                Some("UEFI") => Some(BootMode::Uefi),
                Some("Legacy") => Some(BootMode::Legacy),
                _ => None,
            };
            Some(BootOverride {
                device,
                persistence,
                mode,
            })
        }
        other => return Err(format!("Boot is {other}, not an object")),
    };
    let reset = &v["Actions"]["#ComputerSystem.Reset"];
    Ok(System {
        power,
        boot,
        targets: if b.is_object() {
            opt_strings(b, "BootSourceOverrideTarget@Redfish.AllowableValues")?
        } else {
            None
        },
        reset_target: opt_str(reset, "target")?.map(str::to_string),
        reset_types: opt_strings(reset, "ResetType@Redfish.AllowableValues")?,
        last_reset: opt_str(v, "LastResetTime")?.map(str::to_string),
        etag,
    })
}

/// Redfish names for a boot device.
fn target_name(d: BootDevice) -> &'static str {
    match d {
        BootDevice::None => "None",
        BootDevice::Pxe => "Pxe",
        BootDevice::UefiHttp => "UefiHttp",
        BootDevice::Disk => "Hdd",
        BootDevice::Cdrom => "Cd",
        BootDevice::BiosSetup => "BiosSetup",
    }
}

/// Reset types to try for an action, best first.
fn reset_candidates(action: PowerAction) -> &'static [&'static str] {
    match action {
        PowerAction::On => &["On", "ForceOn"],
        PowerAction::Off => &["ForceOff"],
        PowerAction::SoftOff => &["GracefulShutdown"],
        PowerAction::Reset => &["ForceRestart", "GracefulRestart"],
        PowerAction::Cycle => &["PowerCycle"],
    }
}

/// The first candidate the BMC advertises (all are allowed when it advertises nothing).
fn pick_reset(action: PowerAction, allowed: Option<&[String]>) -> Option<&'static str> {
    reset_candidates(action)
        .iter()
        .copied()
        .find(|c| allowed.is_none_or(|a| a.iter().any(|x| x == c)))
}

/// The messages a Redfish error body carries: every `@Message.ExtendedInfo` message (inside
/// `error` or at the top level, as PATCH answers often have it), else `error.message`; a body
/// that is not JSON contributes its first line.
fn error_message(body: &Value) -> String {
    if let Value::String(text) = body {
        return text
            .lines()
            .next()
            .unwrap_or("")
            .chars()
            .take(200)
            .collect();
    }
    let e = &body["error"];
    let mut parts: Vec<String> = Vec::new();
    for info in [&e["@Message.ExtendedInfo"], &body["@Message.ExtendedInfo"]] {
        for m in info.as_array().into_iter().flatten() {
            if let Some(t) = m["Message"].as_str().filter(|t| !t.is_empty()) {
                parts.push(t.to_string());
            }
        }
    }
    if parts.is_empty()
        && let Some(t) = e["message"].as_str()
    {
        parts.push(t.to_string());
    }
    parts.join("; ")
}

/// The first bytes of a reply, for error messages.
fn head(bytes: &[u8]) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(64)]).into_owned()
}

/// The TLS failure behind a request error, if that is what it was. rustls' error is wrapped in
/// an `io::Error` whose `source()` skips it, so the type cannot be downcast reliably; the
/// messages rustls writes ("invalid peer certificate: ...") are stable enough to match.
fn tls_error(e: &reqwest::Error) -> Option<String> {
    let mut src: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = src {
        if let Some(t) = s.downcast_ref::<rustls::Error>() {
            return Some(t.to_string());
        }
        let text = s.to_string();
        if text.contains("certificate") || text.contains("tls handshake") {
            return Some(text);
        }
        src = s.source();
    }
    None
}

/// The request error and all its sources, joined.
fn chain(e: &reqwest::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        parts.push(s.to_string());
        src = s.source();
    }
    parts.join(": ")
}

/// What a read after an unanswered action shows.
enum Applied {
    Yes,
    No,
    CannotTell,
}

impl Redfish {
    /// Build the HTTP client (TLS policy, timeouts). No traffic yet.
    ///
    /// Installs rustls' ring crypto provider as the process default if none is installed.
    pub fn new(config: Config) -> Result<Self> {
        // reqwest is built without a default provider (to avoid aws-lc's C build); any
        // provider already installed by the embedding program wins.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let url = reqwest::Url::parse(&config.endpoint).map_err(|e| Error::Config {
            message: format!("bad redfish endpoint {}: {e}", config.endpoint),
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Error::Config {
                message: format!(
                    "redfish endpoint must be http or https: {}",
                    config.endpoint
                ),
            });
        }
        let mut b = Self::builder(&config.policy);
        let mut verifier = None;
        match &config.tls {
            Tls::InsecureSkipVerify => b = b.tls_danger_accept_invalid_certs(true),
            other => {
                if let Some((tls, v)) = tls::client_config(other)? {
                    b = b.tls_backend_preconfigured(tls);
                    verifier = Some(v);
                }
            }
        }
        let http = b.build().map_err(|e| Error::Config {
            message: format!("cannot build http client: {e}"),
        })?;
        Ok(Redfish {
            config,
            http,
            state: Mutex::new(State::default()),
            verifier,
        })
    }

    fn builder(policy: &Policy) -> reqwest::ClientBuilder {
        reqwest::Client::builder()
            .timeout(policy.timeout)
            .connect_timeout(policy.timeout)
            .redirect(reqwest::redirect::Policy::limited(5))
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The SHA-256 fingerprint of the BMC's certificate: the pinned one for
    /// [`Tls::Fingerprint`], the one trusted on first use for [`Tls::TrustOnFirstUse`] (store
    /// it, and pin it next time), else the one the last handshake presented. `None` before the
    /// first connection, and for [`Tls::System`] and [`Tls::InsecureSkipVerify`].
    pub fn fingerprint(&self) -> Option<crate::Fingerprint> {
        let v = self.verifier.as_ref()?;
        v.pinned().or(v.seen().fingerprint)
    }

    /// The authentication discovery settled on (`Session` or `Basic`); `None` before the
    /// first operation.
    pub async fn auth_in_use(&self) -> Option<Auth> {
        self.state.lock().await.auth
    }

    fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            path.to_string()
        } else {
            format!("{}{}", self.config.endpoint.trim_end_matches('/'), path)
        }
    }

    /// A refused certificate, described: which one was presented and why it was refused.
    async fn tls_refused(&self, url: &str, message: String) -> Error {
        let seen = match &self.verifier {
            Some(v) => v.seen(),
            // The system store refused it: look at the certificate with a verifier that
            // records and refuses (the handshake stops there; nothing is sent).
            None => match tls::recorder() {
                Ok((tls, v)) => {
                    if let Ok(c) = Self::builder(&self.config.policy)
                        .tls_backend_preconfigured(tls)
                        .build()
                    {
                        let _ = c.get(url).send().await;
                    }
                    let mut s = v.seen();
                    s.refusal = None;
                    s
                }
                Err(_) => tls::Seen::default(),
            },
        };
        Error::Tls {
            address: self.config.endpoint.clone(),
            certificate: seen.fingerprint.map(|fingerprint| {
                Box::new(crate::PresentedCertificate {
                    subject: seen.subject,
                    fingerprint,
                })
            }),
            reason: seen.refusal.unwrap_or(message),
        }
    }

    /// One HTTP exchange. Connection failures (nothing sent) and 503 are retried with backoff;
    /// a timeout is retried only when `idempotent`, otherwise it ends the exchange with
    /// [`Error::Timeout`] and the caller reads to find out whether it was applied.
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        etag: Option<&str>,
        authenticate: bool,
        idempotent: bool,
    ) -> Result<Reply> {
        let policy = &self.config.policy;
        let start = tokio::time::Instant::now();
        let url = self.url(path);
        let mut symptom = String::from("no reply");
        for attempt in 0..=policy.retries {
            if attempt > 0 {
                tokio::time::sleep(policy.backoff_for(attempt - 1)).await;
            }
            let mut rq = self
                .http
                .request(method.clone(), &url)
                .header("Accept", "application/json")
                .header("OData-Version", "4.0");
            if authenticate {
                let token = self.state.lock().await.session.clone();
                rq = match token {
                    Some((t, _)) => rq.header("X-Auth-Token", t),
                    None => rq.basic_auth(&self.config.username, Some(&self.config.password)),
                };
            }
            if let Some(e) = etag {
                rq = rq.header("If-Match", e);
            }
            if let Some(b) = body {
                rq = rq.json(b);
            }
            let err = match rq.send().await {
                Ok(resp) => {
                    let status = resp.status();
                    let headers = resp.headers().clone();
                    match resp.bytes().await {
                        Ok(bytes) => {
                            if status == StatusCode::SERVICE_UNAVAILABLE {
                                symptom = "503 service unavailable".into();
                                continue;
                            }
                            let body = if bytes.iter().all(u8::is_ascii_whitespace) {
                                Value::Null
                            } else {
                                match serde_json::from_slice(&bytes) {
                                    Ok(v) => v,
                                    Err(e) if status.is_success() => {
                                        return Err(Error::Protocol {
                                            url,
                                            status: Some(status.as_u16()),
                                            head: head(&bytes),
                                            message: format!("the body is not complete json: {e}"),
                                        });
                                    }
                                    // An error page that is not JSON: keep its text for the message.
                                    Err(_) => Value::String(String::from_utf8_lossy(&bytes).into()),
                                }
                            };
                            return Ok(Reply {
                                status,
                                headers,
                                body,
                            });
                        }
                        Err(e) => e,
                    }
                }
                Err(e) => e,
            };
            if let Some(t) = tls_error(&err) {
                return Err(self.tls_refused(&url, t).await);
            }
            if err.is_connect() {
                // Nothing was sent: safe to try again, action or not.
                symptom = chain(&err);
                continue;
            }
            if err.is_timeout() {
                symptom = "no reply".into();
                if idempotent {
                    continue;
                }
                return Err(Error::Timeout {
                    address: self.config.endpoint.clone(),
                    after: start.elapsed(),
                    message: format!("no reply to {method} {path} (an action: not resent blindly)"),
                });
            }
            return Err(Error::Transport {
                address: self.config.endpoint.clone(),
                message: chain(&err),
            });
        }
        Err(Error::Timeout {
            address: self.config.endpoint.clone(),
            after: start.elapsed(),
            message: symptom,
        })
    }

    /// Like [`send`](Self::send), mapping HTTP errors to typed errors; logs in again once on a
    /// 401 with an expired session.
    async fn call(
        &self,
        operation: &'static str,
        method: Method,
        path: &str,
        body: Option<&Value>,
        etag: Option<&str>,
    ) -> Result<Reply> {
        self.discover().await?;
        let idempotent = matches!(method, Method::GET | Method::HEAD | Method::DELETE);
        let mut relogged = false;
        loop {
            let r = self
                .send(method.clone(), path, body, etag, true, idempotent)
                .await?;
            if r.status.is_success() {
                return Ok(r);
            }
            if r.status == StatusCode::UNAUTHORIZED && !relogged {
                let had_session = self.state.lock().await.session.take().is_some();
                if had_session {
                    relogged = true;
                    let uri = self.state.lock().await.sessions_uri.clone();
                    if let Some(uri) = uri {
                        self.login(&uri)
                            .await?
                            .map_err(|(s, v)| self.http_error("session login", s, &v))?;
                    }
                    continue;
                }
            }
            return Err(self.http_error(operation, r.status, &r.body));
        }
    }

    fn http_error(&self, operation: &'static str, status: StatusCode, body: &Value) -> Error {
        let message = error_message(body);
        match status.as_u16() {
            401 | 403 => Error::Authentication {
                address: self.config.endpoint.clone(),
                message: format!(
                    "{operation}: http {status}{}",
                    if message.is_empty() {
                        String::new()
                    } else {
                        format!(": {message}")
                    }
                ),
            },
            501 => Error::Unsupported {
                operation,
                message: format!("http 501: {message}"),
            },
            s => Error::Refused {
                operation,
                refusal: Refusal::HttpStatus(s),
                message,
            },
        }
    }

    /// A reply whose JSON does not have the shape the operation needs.
    fn malformed(&self, path: &str, r: &Reply, message: impl Into<String>) -> Error {
        let text = r.body.to_string();
        Error::Protocol {
            url: self.url(path),
            status: Some(r.status.as_u16()),
            head: head(text.as_bytes()),
            message: message.into(),
        }
    }

    /// Service root, authentication, Systems collection.
    async fn discover(&self) -> Result<()> {
        if self.state.lock().await.discovered {
            return Ok(());
        }
        let root_path = "/redfish/v1/";
        let r = self
            .send(Method::GET, root_path, None, None, false, true)
            .await?;
        if !r.status.is_success() {
            return Err(self.http_error("read service root", r.status, &r.body));
        }
        if !r.body.is_object() {
            return Err(self.malformed(root_path, &r, "the service root is not a json object"));
        }
        let root = &r.body;
        let sessions = match &root["Links"]["Sessions"]["@odata.id"] {
            Value::String(s) => s.clone(),
            Value::Null => SESSIONS.to_string(),
            _ => return Err(self.malformed(root_path, &r, "Links.Sessions is not a link")),
        };
        self.state.lock().await.sessions_uri = Some(sessions.clone());
        let used = match self.config.auth {
            Auth::Basic => Auth::Basic,
            mode @ (Auth::Session | Auth::Auto) => match self.login(&sessions).await? {
                Ok(()) => Auth::Session,
                Err((status, body)) => match (mode, status.as_u16()) {
                    (Auth::Auto, 401 | 403 | 404 | 405) => {
                        tracing::debug!(
                            endpoint = %self.config.endpoint,
                            %status,
                            "session login refused, falling back to basic auth"
                        );
                        Auth::Basic
                    }
                    (_, 404 | 405) => {
                        return Err(Error::Unsupported {
                            operation: "session login",
                            message: format!(
                                "{sessions} answered http {status}: the service has no session service"
                            ),
                        });
                    }
                    _ => return Err(self.http_error("session login", status, &body)),
                },
            },
        };
        tracing::debug!(endpoint = %self.config.endpoint, auth = ?used, "redfish authentication");
        self.state.lock().await.auth = Some(used);
        let system = self.find_system(root).await?;
        let mut st = self.state.lock().await;
        st.system = Some(system);
        st.discovered = true;
        Ok(())
    }

    /// POST the credentials to the Sessions collection; `Ok(Err(..))` is the refusal.
    async fn login(&self, uri: &str) -> Result<std::result::Result<(), (StatusCode, Value)>> {
        let body = json!({"UserName": self.config.username, "Password": self.config.password});
        let r = self
            .send(Method::POST, uri, Some(&body), None, false, true)
            .await?;
        if !r.status.is_success() {
            return Ok(Err((r.status, r.body)));
        }
        let token = r
            .headers
            .get("X-Auth-Token")
            .and_then(|t| t.to_str().ok())
            .ok_or_else(|| self.malformed(uri, &r, "session login answered without X-Auth-Token"))?
            .to_string();
        let location = r
            .headers
            .get("Location")
            .and_then(|t| t.to_str().ok())
            .map(str::to_string)
            .or_else(|| r.body["@odata.id"].as_str().map(str::to_string));
        self.state.lock().await.session = Some((token, location));
        Ok(Ok(()))
    }

    async fn find_system(&self, root: &Value) -> Result<String> {
        let coll = root["Systems"]["@odata.id"]
            .as_str()
            .unwrap_or("/redfish/v1/Systems");
        let r = self.send(Method::GET, coll, None, None, true, true).await?;
        if !r.status.is_success() {
            return Err(self.http_error("list systems", r.status, &r.body));
        }
        let members: Vec<String> = r.body["Members"]
            .as_array()
            .ok_or_else(|| self.malformed(coll, &r, "the Systems collection has no Members list"))?
            .iter()
            .map(|m| m["@odata.id"].as_str().map(str::to_string))
            .collect::<Option<_>>()
            .ok_or_else(|| self.malformed(coll, &r, "a Systems member has no @odata.id"))?;
        let found = match &self.config.system {
            None => members.first().cloned(),
            Some(want) => members
                .iter()
                .find(|m| {
                    m.as_str() == want || m.trim_end_matches('/').rsplit('/').next() == Some(want)
                })
                .cloned(),
        };
        found.ok_or_else(|| Error::Config {
            message: format!(
                "no system {} among {members:?}",
                self.config.system.as_deref().unwrap_or("at all")
            ),
        })
    }

    async fn system_path(&self) -> Result<String> {
        self.discover().await?;
        Ok(self
            .state
            .lock()
            .await
            .system
            .clone()
            .expect("discover sets the system"))
    }

    async fn read(&self) -> Result<System> {
        let path = self.system_path().await?;
        let r = self
            .call("read system", Method::GET, &path, None, None)
            .await?;
        let etag = r
            .headers
            .get("ETag")
            .and_then(|e| e.to_str().ok())
            .map(str::to_string);
        parse_system(&r.body, etag).map_err(|m| self.malformed(&path, &r, m))
    }

    /// The system with the fields an operation needs, or a protocol error naming the missing one.
    async fn read_power(&self) -> Result<(System, PowerState)> {
        let sys = self.read().await?;
        match sys.power {
            Some(p) => Ok((sys, p)),
            None => Err(Error::Protocol {
                url: self.url(&self.system_path().await?),
                status: None,
                head: String::new(),
                message: "the system record has no PowerState".into(),
            }),
        }
    }

    async fn read_boot(&self) -> Result<(System, BootOverride)> {
        let sys = self.read().await?;
        match sys.boot {
            Some(b) => Ok((sys, b)),
            None => Err(Error::Protocol {
                url: self.url(&self.system_path().await?),
                status: None,
                head: String::new(),
                message: "the system record has no Boot".into(),
            }),
        }
    }

    /// Send an action once; when it goes unanswered, read, and send it again only when the
    /// read shows it was not applied (at most `policy.retries` times).
    async fn act(
        &self,
        operation: &'static str,
        method: Method,
        path: &str,
        body: &Value,
        etag: Option<&str>,
        applied: impl Fn(&System) -> Applied,
    ) -> Result<()> {
        let mut resent = 0;
        loop {
            match self
                .call(operation, method.clone(), path, Some(body), etag)
                .await
            {
                Ok(_) => return Ok(()),
                Err(e @ Error::Timeout { .. }) => {
                    let now = self.read().await?;
                    match applied(&now) {
                        Applied::Yes => {
                            tracing::debug!(operation, "unanswered, but the read shows it applied");
                            return Ok(());
                        }
                        Applied::CannotTell => {
                            tracing::debug!(
                                operation,
                                "unanswered, and nothing shows whether it applied: not resent"
                            );
                            return Ok(());
                        }
                        Applied::No if resent < self.config.policy.retries => {
                            tracing::debug!(
                                operation,
                                "unanswered, and the read shows it not applied: sending again"
                            );
                            resent += 1;
                        }
                        Applied::No => return Err(e),
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn reset(
        &self,
        sys: &System,
        reset_type: &str,
        applied: impl Fn(&System) -> Applied,
    ) -> Result<()> {
        let path = self.system_path().await?;
        let target = sys
            .reset_target
            .clone()
            .unwrap_or_else(|| format!("{path}/Actions/ComputerSystem.Reset"));
        self.act(
            "computer system reset",
            Method::POST,
            &target,
            &json!({"ResetType": reset_type}),
            None,
            applied,
        )
        .await
    }

    async fn settle(&self, operation: &'static str, target: PowerState) -> Result<PowerState> {
        crate::bmc::settle(&self.config.policy, operation, target, || async {
            Ok(self.read_power().await?.1)
        })
        .await
    }

    /// Wait for the evidence of a restart: the host seen off (or off before), or a changed
    /// `LastResetTime`, and then on.
    async fn verify_restart(
        &self,
        operation: &'static str,
        before: PowerState,
        last_before: Option<String>,
    ) -> Result<PowerState> {
        let deadline = tokio::time::Instant::now() + self.config.policy.settle;
        let mut evidence = before == PowerState::Off;
        loop {
            let (sys, now) = self.read_power().await?;
            evidence |=
                now == PowerState::Off || (last_before.is_some() && sys.last_reset != last_before);
            if evidence && now == PowerState::On {
                return Ok(now);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(match (evidence, last_before) {
                    (true, _) => Error::NotApplied {
                        operation,
                        expected: PowerState::On.to_string(),
                        actual: now.to_string(),
                    },
                    (false, Some(t)) => Error::NotApplied {
                        operation,
                        expected: format!("a LastResetTime later than {t}"),
                        actual: format!("LastResetTime {t}, power {now}"),
                    },
                    (false, None) => Error::NotVerifiable {
                        operation,
                        message: format!(
                            "the host stayed {now} for {:?} and the bmc reports no LastResetTime: \
                             nothing shows whether it restarted",
                            self.config.policy.settle
                        ),
                    },
                });
            }
            tokio::time::sleep(self.config.policy.poll_interval).await;
        }
    }

    async fn do_power(&self, action: PowerAction) -> Result<PowerState> {
        let (sys, before) = self.read_power().await?;
        let allowed = sys.reset_types.as_deref();
        let target_is = |want: PowerState| {
            move |s: &System| match s.power {
                Some(p) if p == want => Applied::Yes,
                _ => Applied::No,
            }
        };
        let last_before = sys.last_reset.clone();
        let restarted = |s: &System| match (s.power, &last_before) {
            (Some(PowerState::Off), _) => Applied::Yes,
            (_, Some(t)) if s.last_reset.as_ref() != Some(t) => Applied::Yes,
            (Some(PowerState::On), _) if before == PowerState::Off => Applied::Yes,
            (_, Some(_)) => Applied::No,
            (_, None) => Applied::CannotTell,
        };
        match (action, pick_reset(action, allowed)) {
            // Already there: many BMCs answer 409 to On-when-on; nothing to do.
            (PowerAction::On | PowerAction::Off | PowerAction::SoftOff, _)
                if before == action.expected_state() =>
            {
                Ok(before)
            }
            (PowerAction::On | PowerAction::Off, Some(t)) => {
                self.reset(&sys, t, target_is(action.expected_state()))
                    .await?;
                self.settle("power", action.expected_state()).await
            }
            (PowerAction::SoftOff, Some(t)) => {
                // A graceful shutdown takes its time: a host still on proves nothing.
                self.reset(&sys, t, |s| match s.power {
                    Some(PowerState::Off) => Applied::Yes,
                    _ => Applied::CannotTell,
                })
                .await?;
                self.settle("power", PowerState::Off).await
            }
            (PowerAction::Reset | PowerAction::Cycle, Some(t)) => {
                self.reset(&sys, t, restarted).await?;
                let operation = if action == PowerAction::Reset {
                    "reset"
                } else {
                    "power cycle"
                };
                self.verify_restart(operation, before, sys.last_reset.clone())
                    .await
            }
            (PowerAction::Cycle, None) => {
                // No PowerCycle advertised (sushy-tools): off, wait, on; verified by both states.
                if before == PowerState::On {
                    let off =
                        pick_reset(PowerAction::Off, allowed).ok_or_else(|| unsupported(action))?;
                    self.reset(&sys, off, target_is(PowerState::Off)).await?;
                    self.settle("power cycle", PowerState::Off).await?;
                }
                let on = pick_reset(PowerAction::On, allowed).ok_or_else(|| unsupported(action))?;
                self.reset(&sys, on, target_is(PowerState::On)).await?;
                self.settle("power cycle", PowerState::On).await
            }
            (_, None) => Err(unsupported(action)),
        }
    }

    async fn do_set_boot(&self, boot: BootOverride) -> Result<BootOverride> {
        let (sys, _) = self.read_boot().await?;
        let name = target_name(boot.device);
        if let Some(t) = &sys.targets
            && boot.device != BootDevice::None
            && !t.iter().any(|x| x == name)
        {
            return Err(Error::Unsupported {
                operation: "set boot device",
                message: format!("target {name} is not among {t:?}"),
            });
        }
        let mut b = json!({
            "BootSourceOverrideTarget": name,
            "BootSourceOverrideEnabled": match (boot.device, boot.persistence) {
                (BootDevice::None, _) => "Disabled",
                (_, Persistence::Once) => "Once",
                (_, Persistence::Persistent) => "Continuous",
            },
        });
        if let Some(m) = boot.mode {
            b["BootSourceOverrideMode"] = json!(match m {
                BootMode::Uefi => "UEFI",
                BootMode::Legacy => "Legacy",
            });
        }
        let path = self.system_path().await?;
        self.act(
            "set boot override",
            Method::PATCH,
            &path,
            &json!({ "Boot": b }),
            sys.etag.as_deref(),
            |s| match &s.boot {
                Some(actual) if check_boot(&boot, actual).is_ok() => Applied::Yes,
                _ => Applied::No,
            },
        )
        .await?;
        let (_, actual) = self.read_boot().await?;
        check_boot(&boot, &actual)?;
        Ok(actual)
    }

    /// Delete the session, if one was created. Basic auth needs no logout.
    pub async fn logout(&self) -> Result<()> {
        let session = self.state.lock().await.session.clone();
        if let Some((_, Some(uri))) = session {
            self.call("session logout", Method::DELETE, &uri, None, None)
                .await?;
            self.state.lock().await.session = None;
        }
        Ok(())
    }
}

fn unsupported(action: PowerAction) -> Error {
    Error::Unsupported {
        operation: "computer system reset",
        message: format!("the bmc advertises no reset type for {action}"),
    }
}

impl Bmc for Redfish {
    fn power_status(&self) -> BmcFuture<'_, PowerState> {
        Box::pin(async move { Ok(self.read_power().await?.1) })
    }

    fn power(&self, action: PowerAction) -> BmcFuture<'_, PowerState> {
        Box::pin(self.do_power(action))
    }

    fn set_boot(&self, boot: BootOverride) -> BmcFuture<'_, BootOverride> {
        Box::pin(self.do_set_boot(boot))
    }

    fn boot(&self) -> BmcFuture<'_, BootOverride> {
        Box::pin(async move { Ok(self.read_boot().await?.1) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sushy_system_parses() {
        let v = json!({
            "PowerState": "PoweringOn",
            "Boot": {
                "BootSourceOverrideEnabled": "Continuous",
                "BootSourceOverrideTarget": "Pxe",
                "BootSourceOverrideTarget@Redfish.AllowableValues": ["Pxe", "Cd", "Hdd", "UefiHttp"],
                "BootSourceOverrideMode": "UEFI"
            },
            "Actions": {"#ComputerSystem.Reset": {
                "target": "/redfish/v1/Systems/1/Actions/ComputerSystem.Reset",
                "ResetType@Redfish.AllowableValues": ["On", "ForceOff", "GracefulShutdown", "ForceRestart"]
            }}
        });
        let s = parse_system(&v, None).unwrap();
        assert_eq!(s.power, Some(PowerState::Off));
        assert_eq!(
            s.boot.unwrap(),
            BootOverride {
                device: BootDevice::Pxe,
                persistence: Persistence::Persistent,
                mode: Some(BootMode::Uefi)
            }
        );
        let allowed = s.reset_types.unwrap();
        assert_eq!(pick_reset(PowerAction::Cycle, Some(&allowed)), None);
        assert_eq!(
            pick_reset(PowerAction::Reset, Some(&allowed)),
            Some("ForceRestart")
        );
        assert_eq!(pick_reset(PowerAction::On, None), Some("On"));
        let disabled = json!({"Boot": {"BootSourceOverrideEnabled": "Disabled", "BootSourceOverrideTarget": "Pxe"}});
        assert_eq!(
            parse_system(&disabled, None).unwrap().boot.unwrap().device,
            BootDevice::None
        );
        // Cut short or misshapen: errors, never defaults.
        for bad in [
            json!(null),
            json!({"PowerState": 1}),
            json!({"PowerState": "Sideways"}),
            json!({"PowerState": "On", "Boot": {"BootSourceOverrideTarget": "Pxe"}}),
            json!({"PowerState": "On", "Boot": {"BootSourceOverrideEnabled": "Once"}}),
            json!({"PowerState": "On", "Boot": "Pxe"}),
            json!({"PowerState": "On", "Actions": {"#ComputerSystem.Reset": {"ResetType@Redfish.AllowableValues": "On"}}}),
        ] {
            assert!(parse_system(&bad, None).is_err(), "{bad}");
        }
        let power_only = parse_system(&json!({"PowerState": "On"}), None).unwrap();
        assert!(power_only.boot.is_none());
    }

    #[test]
    fn error_bodies() {
        let v = json!({"error": {"code": "Base.1.0.GeneralError", "message": "Power state Bogus is not supported"}});
        assert_eq!(error_message(&v), "Power state Bogus is not supported");
        let v = json!({"error": {"@Message.ExtendedInfo": [{"Message": "busy"}], "message": "x"}});
        assert_eq!(error_message(&v), "busy");
        assert_eq!(error_message(&Value::Null), "");
        let v = json!({"error": {"code": "Base.1.0.GeneralError", "message": "x",
            "@Message.ExtendedInfo": [{"Message": "The request body is invalid."},
                                      {"MessageId": "Base.1.0.X"},
                                      {"Message": "ResetType is unsupported."}]}});
        assert_eq!(
            error_message(&v),
            "The request body is invalid.; ResetType is unsupported."
        );
        let v = json!({"@Message.ExtendedInfo": [{"Message": "Boot is read-only"}]});
        assert_eq!(error_message(&v), "Boot is read-only");
        assert_eq!(
            error_message(&Value::String("<html>Bad Gateway\n<body>".into())),
            "<html>Bad Gateway"
        );
    }
}
