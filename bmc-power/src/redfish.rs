//! Redfish over HTTP(S): discovery, `ComputerSystem.Reset` with the advertised reset types,
//! boot source override, basic auth or a session, and TLS with a custom CA.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::bmc::{Bmc, BmcFuture, check_boot};
use crate::error::{Error, Refusal, Result};
use crate::types::{
    BootDevice, BootMode, BootOverride, Persistence, Policy, PowerAction, PowerState,
};

/// How to check the BMC's certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Tls {
    /// The operating system's trust store.
    #[default]
    System,
    /// Trust only the CA certificates in this PEM bundle (typical for BMCs with a site CA
    /// or a self-signed certificate you have pinned).
    CustomCa(Vec<u8>),
    /// Accept any certificate. Only on explicit request: anyone on the path can read the
    /// BMC password.
    InsecureSkipVerify,
}

/// How to authenticate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Auth {
    /// A session (SessionService) when the service root links one, else basic auth.
    #[default]
    Auto,
    /// HTTP basic auth on every request.
    Basic,
    /// A session token (`X-Auth-Token`); fails when the service has no SessionService.
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
    /// The service root links a Sessions collection.
    sessions_uri: Option<String>,
    discovered: bool,
}

/// A Redfish BMC.
#[derive(Debug)]
pub struct Redfish {
    config: Config,
    http: reqwest::Client,
    state: Mutex<State>,
}

/// The parts of a ComputerSystem this driver reads.
#[derive(Debug, Clone)]
struct System {
    power: Option<PowerState>,
    boot: BootOverride,
    targets: Option<Vec<String>>,
    reset_target: Option<String>,
    reset_types: Option<Vec<String>>,
    etag: Option<String>,
}

fn strings(v: &Value) -> Option<Vec<String>> {
    v.as_array().map(|a| {
        a.iter()
            .filter_map(|s| s.as_str().map(str::to_string))
            .collect()
    })
}

fn parse_system(v: &Value, etag: Option<String>) -> System {
    let power = match v["PowerState"].as_str() {
        Some("On") | Some("PoweringOff") => Some(PowerState::On),
        Some("Off") | Some("PoweringOn") => Some(PowerState::Off),
        _ => None,
    };
    let b = &v["Boot"];
    let enabled = b["BootSourceOverrideEnabled"]
        .as_str()
        .unwrap_or("Disabled");
    let device = if enabled == "Disabled" {
        BootDevice::None
    } else {
        match b["BootSourceOverrideTarget"].as_str().unwrap_or("None") {
            "Pxe" => BootDevice::Pxe,
            "UefiHttp" => BootDevice::UefiHttp,
            "Hdd" => BootDevice::Disk,
            "Cd" => BootDevice::Cdrom,
            "BiosSetup" => BootDevice::BiosSetup,
            _ => BootDevice::None,
        }
    };
    let mode = match b["BootSourceOverrideMode"].as_str() {
        Some("UEFI") => Some(BootMode::Uefi),
        Some("Legacy") => Some(BootMode::Legacy),
        _ => None,
    };
    let reset = &v["Actions"]["#ComputerSystem.Reset"];
    System {
        power,
        boot: BootOverride {
            device,
            persistence: if enabled == "Continuous" {
                Persistence::Persistent
            } else {
                Persistence::Once
            },
            mode,
        },
        targets: strings(&b["BootSourceOverrideTarget@Redfish.AllowableValues"]),
        reset_target: reset["target"].as_str().map(str::to_string),
        reset_types: strings(&reset["ResetType@Redfish.AllowableValues"]),
        etag,
    }
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

/// The message a Redfish error body carries, if any.
fn error_message(body: &Value) -> String {
    let e = &body["error"];
    e["@Message.ExtendedInfo"][0]["Message"]
        .as_str()
        .or(e["message"].as_str())
        .unwrap_or("")
        .to_string()
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
        let mut b = reqwest::Client::builder()
            .timeout(config.policy.timeout)
            .connect_timeout(config.policy.timeout)
            .redirect(reqwest::redirect::Policy::limited(5));
        match &config.tls {
            Tls::System => {}
            Tls::CustomCa(pem) => {
                let certs =
                    reqwest::Certificate::from_pem_bundle(pem).map_err(|e| Error::Config {
                        message: format!("bad ca bundle: {e}"),
                    })?;
                if certs.is_empty() {
                    return Err(Error::Config {
                        message: "ca bundle holds no certificate".into(),
                    });
                }
                b = b.tls_certs_only(certs);
            }
            Tls::InsecureSkipVerify => b = b.danger_accept_invalid_certs(true),
        }
        let http = b.build().map_err(|e| Error::Config {
            message: format!("cannot build http client: {e}"),
        })?;
        Ok(Redfish {
            config,
            http,
            state: Mutex::new(State::default()),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            path.to_string()
        } else {
            format!("{}{}", self.config.endpoint.trim_end_matches('/'), path)
        }
    }

    /// One HTTP exchange with retries on silence (timeouts, refused connections, 503).
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        etag: Option<&str>,
        authenticate: bool,
    ) -> Result<(StatusCode, reqwest::header::HeaderMap, Value)> {
        let policy = &self.config.policy;
        let start = tokio::time::Instant::now();
        let mut symptom = String::from("no reply");
        for attempt in 0..=policy.retries {
            if attempt > 0 {
                tokio::time::sleep(policy.backoff_for(attempt - 1)).await;
            }
            let mut rq = self
                .http
                .request(method.clone(), self.url(path))
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
            match rq.send().await {
                Ok(resp) => {
                    let status = resp.status();
                    let headers = resp.headers().clone();
                    let bytes = resp.bytes().await.unwrap_or_default();
                    if status == StatusCode::SERVICE_UNAVAILABLE {
                        symptom = "503 service unavailable".into();
                        continue;
                    }
                    let v = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                    return Ok((status, headers, v));
                }
                Err(e) => {
                    if let Some(t) = tls_error(&e) {
                        return Err(Error::Transport {
                            address: self.config.endpoint.clone(),
                            message: format!("tls: {t}"),
                        });
                    }
                    if e.is_timeout() || e.is_connect() {
                        symptom = if e.is_timeout() {
                            "no reply".into()
                        } else {
                            chain(&e)
                        };
                        continue;
                    }
                    return Err(Error::Transport {
                        address: self.config.endpoint.clone(),
                        message: chain(&e),
                    });
                }
            }
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
    ) -> Result<(reqwest::header::HeaderMap, Value)> {
        self.discover().await?;
        let mut relogged = false;
        loop {
            let (status, headers, v) = self.send(method.clone(), path, body, etag, true).await?;
            if status.is_success() {
                return Ok((headers, v));
            }
            if status == StatusCode::UNAUTHORIZED && !relogged {
                let had_session = self.state.lock().await.session.take().is_some();
                if had_session {
                    relogged = true;
                    self.login().await?;
                    continue;
                }
            }
            return Err(self.http_error(operation, status, &v));
        }
    }

    fn http_error(&self, operation: &'static str, status: StatusCode, body: &Value) -> Error {
        let message = error_message(body);
        match status.as_u16() {
            401 | 403 => Error::Authentication {
                address: self.config.endpoint.clone(),
                message: format!(
                    "http {status}{}",
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

    /// Service root, session login, Systems collection.
    async fn discover(&self) -> Result<()> {
        if self.state.lock().await.discovered {
            return Ok(());
        }
        let (status, _, root) = self
            .send(Method::GET, "/redfish/v1/", None, None, false)
            .await?;
        if !status.is_success() {
            return Err(self.http_error("read service root", status, &root));
        }
        let sessions = root["Links"]["Sessions"]["@odata.id"]
            .as_str()
            .map(str::to_string);
        self.state.lock().await.sessions_uri = sessions.clone();
        match (self.config.auth, &sessions) {
            (Auth::Basic, _) | (Auth::Auto, None) => {}
            (Auth::Session, None) => {
                return Err(Error::Unsupported {
                    operation: "session login",
                    message: "the service root links no Sessions collection".into(),
                });
            }
            (Auth::Session | Auth::Auto, Some(_)) => match self.login().await {
                Ok(()) => {}
                Err(Error::Refused { .. } | Error::Unsupported { .. })
                    if self.config.auth == Auth::Auto =>
                {
                    tracing::debug!("session login refused, using basic auth");
                }
                Err(e) => return Err(e),
            },
        }
        let system = self.find_system(&root).await?;
        let mut st = self.state.lock().await;
        st.system = Some(system);
        st.discovered = true;
        Ok(())
    }

    async fn login(&self) -> Result<()> {
        let Some(uri) = self.state.lock().await.sessions_uri.clone() else {
            return Ok(());
        };
        let body = json!({"UserName": self.config.username, "Password": self.config.password});
        let (status, headers, v) = self
            .send(Method::POST, &uri, Some(&body), None, false)
            .await?;
        if !status.is_success() {
            return Err(self.http_error("session login", status, &v));
        }
        let token = headers
            .get("X-Auth-Token")
            .and_then(|t| t.to_str().ok())
            .ok_or_else(|| Error::protocol("session login answered without X-Auth-Token"))?
            .to_string();
        let location = headers
            .get("Location")
            .and_then(|t| t.to_str().ok())
            .map(str::to_string)
            .or_else(|| v["@odata.id"].as_str().map(str::to_string));
        self.state.lock().await.session = Some((token, location));
        Ok(())
    }

    async fn find_system(&self, root: &Value) -> Result<String> {
        let coll = root["Systems"]["@odata.id"]
            .as_str()
            .unwrap_or("/redfish/v1/Systems");
        let (status, _, v) = self.send(Method::GET, coll, None, None, true).await?;
        if !status.is_success() {
            return Err(self.http_error("list systems", status, &v));
        }
        let members: Vec<String> = v["Members"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|m| m["@odata.id"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
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
        let (headers, v) = self
            .call("read system", Method::GET, &path, None, None)
            .await?;
        let etag = headers
            .get("ETag")
            .and_then(|e| e.to_str().ok())
            .map(str::to_string);
        Ok(parse_system(&v, etag))
    }

    async fn status(&self) -> Result<PowerState> {
        self.read()
            .await?
            .power
            .ok_or_else(|| Error::protocol("system has no PowerState"))
    }

    async fn reset(&self, sys: &System, reset_type: &str) -> Result<()> {
        let path = self.system_path().await?;
        let target = sys
            .reset_target
            .clone()
            .unwrap_or_else(|| format!("{path}/Actions/ComputerSystem.Reset"));
        self.call(
            "computer system reset",
            Method::POST,
            &target,
            Some(&json!({"ResetType": reset_type})),
            None,
        )
        .await
        .map(drop)
    }

    async fn settle(&self, operation: &'static str, target: PowerState) -> Result<PowerState> {
        crate::bmc::settle(&self.config.policy, operation, target, || self.status()).await
    }

    async fn do_power(&self, action: PowerAction) -> Result<PowerState> {
        let sys = self.read().await?;
        let allowed = sys.reset_types.as_deref();
        match (action, pick_reset(action, allowed)) {
            // Already there: many BMCs answer 409 to On-when-on; nothing to do.
            (PowerAction::On | PowerAction::Off | PowerAction::SoftOff, _)
                if sys.power == Some(action.expected_state()) =>
            {
                return Ok(action.expected_state());
            }
            (_, Some(t)) => self.reset(&sys, t).await?,
            (PowerAction::Cycle, None) => {
                // No PowerCycle advertised (sushy-tools): off, wait, on.
                if sys.power == Some(PowerState::On) {
                    let off =
                        pick_reset(PowerAction::Off, allowed).ok_or_else(|| unsupported(action))?;
                    self.reset(&sys, off).await?;
                    self.settle("power cycle", PowerState::Off).await?;
                }
                let on = pick_reset(PowerAction::On, allowed).ok_or_else(|| unsupported(action))?;
                self.reset(&sys, on).await?;
            }
            (_, None) => return Err(unsupported(action)),
        }
        self.settle("power", action.expected_state()).await
    }

    async fn do_set_boot(&self, boot: BootOverride) -> Result<BootOverride> {
        let sys = self.read().await?;
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
        self.call(
            "set boot override",
            Method::PATCH,
            &path,
            Some(&json!({ "Boot": b })),
            sys.etag.as_deref(),
        )
        .await?;
        let actual = self.read().await?.boot;
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
        Box::pin(self.status())
    }

    fn power(&self, action: PowerAction) -> BmcFuture<'_, PowerState> {
        Box::pin(self.do_power(action))
    }

    fn set_boot(&self, boot: BootOverride) -> BmcFuture<'_, BootOverride> {
        Box::pin(self.do_set_boot(boot))
    }

    fn boot(&self) -> BmcFuture<'_, BootOverride> {
        Box::pin(async move { Ok(self.read().await?.boot) })
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
        let s = parse_system(&v, None);
        assert_eq!(s.power, Some(PowerState::Off));
        assert_eq!(
            s.boot,
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
        assert_eq!(parse_system(&disabled, None).boot.device, BootDevice::None);
    }

    #[test]
    fn error_bodies() {
        let v = json!({"error": {"code": "Base.1.0.GeneralError", "message": "Power state Bogus is not supported"}});
        assert_eq!(error_message(&v), "Power state Bogus is not supported");
        let v = json!({"error": {"@Message.ExtendedInfo": [{"Message": "busy"}], "message": "x"}});
        assert_eq!(error_message(&v), "busy");
        assert_eq!(error_message(&Value::Null), "");
    }
}
