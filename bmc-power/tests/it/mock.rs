//! Small misbehaving services of our own: an HTTP(S) Redfish BMC whose faults are switches
//! (truncated JSON, ignored or late-answered resets, a session service that answers 401), a
//! 1.5-only IPMI capability responder, and test certificates made with the openssl CLI.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

/// One request as the fake saw it.
#[derive(Debug, Clone)]
pub struct Req {
    pub method: String,
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: String,
}

/// How the fake BMC's session service answers the login POST.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sessions {
    /// Not linked from the root; the standard path answers 404.
    Absent,
    /// Linked, and the login answers with this status (401: "authenticate first").
    Refuse(u16),
    /// Linked, and the login works (token `t0k3n`).
    Works,
}

/// The fake Redfish BMC's switches and state.
#[derive(Debug, Clone)]
pub struct Fake {
    pub power: &'static str,
    pub boot_enabled: &'static str,
    pub boot_target: &'static str,
    /// `Some` adds `LastResetTime` to the system; a restart applied moves it on.
    pub last_reset: Option<u32>,
    pub sessions: Sessions,
    /// Cut the body of GETs to this path short (after 40 bytes).
    pub truncate: Option<String>,
    /// Cut the system GETs short once a PATCH was received.
    pub truncate_after_patch: bool,
    /// Leave `Boot` out of the system record.
    pub no_boot: bool,
    /// Accept resets (204) but do nothing.
    pub ignore_reset: bool,
    /// Answer resets this late (applied at once).
    pub reset_delay: Duration,
    /// Refuse resets with this status and `@Message.ExtendedInfo` message.
    pub reset_error: Option<(u16, &'static str)>,
    /// Set by the fake once it received a PATCH.
    pub patched: bool,
}

impl Default for Fake {
    fn default() -> Self {
        Fake {
            power: "On",
            boot_enabled: "Disabled",
            boot_target: "None",
            last_reset: None,
            sessions: Sessions::Absent,
            truncate: None,
            truncate_after_patch: false,
            no_boot: false,
            ignore_reset: false,
            reset_delay: Duration::ZERO,
            reset_error: None,
            patched: false,
        }
    }
}

pub const SYSTEM: &str = "/redfish/v1/Systems/1";

struct Resp {
    status: u16,
    body: String,
    delay: Duration,
    headers: Vec<(&'static str, String)>,
}

fn json(status: u16, v: serde_json::Value) -> Resp {
    Resp {
        status,
        body: v.to_string(),
        delay: Duration::ZERO,
        headers: vec![],
    }
}

impl Fake {
    fn system(&self) -> serde_json::Value {
        let mut v = serde_json::json!({
            "@odata.id": SYSTEM,
            "Id": "1",
            "PowerState": self.power,
            "Boot": {
                "BootSourceOverrideEnabled": self.boot_enabled,
                "BootSourceOverrideTarget": self.boot_target,
                "BootSourceOverrideTarget@Redfish.AllowableValues": ["Pxe", "Hdd", "Cd"],
            },
            "Actions": {"#ComputerSystem.Reset": {
                "target": format!("{SYSTEM}/Actions/ComputerSystem.Reset"),
                "ResetType@Redfish.AllowableValues": ["On", "ForceOff", "ForceRestart"],
            }},
        });
        if self.no_boot {
            v.as_object_mut().unwrap().remove("Boot");
        }
        if let Some(n) = self.last_reset {
            v["LastResetTime"] = format!("2026-01-01T00:00:{n:02}+00:00").into();
        }
        v
    }

    fn handle(&mut self, r: &Req) -> Resp {
        let authorized = r.headers.get("authorization").map(String::as_str)
            == Some("Basic YWRtaW46cGFzc3dvcmQ=")
            || r.headers.get("x-auth-token").map(String::as_str) == Some("t0k3n");
        let sessions = "/redfish/v1/SessionService/Sessions";
        let mut resp = match (r.method.as_str(), r.path.as_str()) {
            ("GET", "/redfish/v1/") => {
                let mut root = serde_json::json!({
                    "@odata.id": "/redfish/v1/",
                    "Systems": {"@odata.id": "/redfish/v1/Systems"},
                });
                if self.sessions != Sessions::Absent {
                    root["Links"] = serde_json::json!({"Sessions": {"@odata.id": sessions}});
                }
                json(200, root)
            }
            ("POST", p) if p == sessions => match self.sessions {
                Sessions::Absent => json(404, serde_json::json!({})),
                Sessions::Refuse(s) => json(
                    s,
                    serde_json::json!({"error": {"message": "Authorization required"}}),
                ),
                Sessions::Works if r.body.contains("\"password\"") => {
                    let mut x = json(
                        201,
                        serde_json::json!({"@odata.id": format!("{sessions}/1")}),
                    );
                    x.headers.push(("X-Auth-Token", "t0k3n".into()));
                    x
                }
                Sessions::Works => json(401, serde_json::json!({})),
            },
            _ if !authorized => json(
                401,
                serde_json::json!({"error": {"message": "Authorization required"}}),
            ),
            ("GET", "/redfish/v1/Systems") => json(
                200,
                serde_json::json!({"Members": [{"@odata.id": SYSTEM}], "Members@odata.count": 1}),
            ),
            ("GET", SYSTEM) => json(200, self.system()),
            ("PATCH", SYSTEM) => {
                self.patched = true;
                let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
                let b = &v["Boot"];
                self.boot_enabled = match b["BootSourceOverrideEnabled"].as_str() {
                    Some("Once") => "Once",
                    Some("Continuous") => "Continuous",
                    _ => "Disabled",
                };
                self.boot_target = match b["BootSourceOverrideTarget"].as_str() {
                    Some("Pxe") => "Pxe",
                    Some("Hdd") => "Hdd",
                    Some("Cd") => "Cd",
                    _ => "None",
                };
                json(204, serde_json::Value::Null)
            }
            ("POST", p) if p == format!("{SYSTEM}/Actions/ComputerSystem.Reset") => {
                if let Some((status, message)) = self.reset_error {
                    return Resp {
                        status,
                        body: serde_json::json!({"error": {
                            "code": "Base.1.0.GeneralError",
                            "message": "A general error has occurred.",
                            "@Message.ExtendedInfo": [{"MessageId": "Base.1.0.ActionNotSupported", "Message": message}],
                        }})
                        .to_string(),
                        delay: Duration::ZERO,
                        headers: vec![],
                    };
                }
                let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
                if !self.ignore_reset {
                    match v["ResetType"].as_str() {
                        Some("On") => self.power = "On",
                        Some("ForceOff") => self.power = "Off",
                        // The restart is instant: the host never reads as off.
                        Some("ForceRestart") => {
                            self.power = "On";
                            if let Some(n) = &mut self.last_reset {
                                *n += 1;
                            }
                        }
                        _ => {}
                    }
                }
                let mut x = json(204, serde_json::Value::Null);
                x.body.clear();
                x.delay = self.reset_delay;
                x
            }
            _ => json(
                404,
                serde_json::json!({"error": {"message": "no such resource"}}),
            ),
        };
        let cut = r.method == "GET"
            && (self.truncate.as_deref() == Some(r.path.as_str())
                || (self.truncate_after_patch && self.patched && r.path == SYSTEM));
        if cut {
            resp.body.truncate(40);
        }
        if resp.status == 204 {
            resp.body.clear();
        }
        resp
    }
}

/// A running fake: its base URL, every request it received, and its state.
pub struct Running {
    pub url: String,
    pub log: Arc<Mutex<Vec<Req>>>,
    pub fake: Arc<Mutex<Fake>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Running {
    pub fn requests(&self) -> Vec<Req> {
        self.log.lock().unwrap().clone()
    }
    pub fn count(&self, method: &str, path_suffix: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.method == method && r.path.ends_with(path_suffix))
            .count()
    }
}

async fn read_request<S: AsyncRead + Unpin>(s: &mut S) -> Option<Req> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..end]).to_string();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let (method, path) = (first.next()?.to_string(), first.next()?.to_string());
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .get("content-length")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    let mut body = buf[end..].to_vec();
    while body.len() < len {
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some(Req {
        method,
        path,
        headers,
        body: String::from_utf8_lossy(&body).into(),
    })
}

async fn serve_one<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    log: Arc<Mutex<Vec<Req>>>,
    fake: Arc<Mutex<Fake>>,
) {
    while let Some(req) = read_request(&mut s).await {
        log.lock().unwrap().push(req.clone());
        let resp = fake.lock().unwrap().handle(&req);
        tokio::time::sleep(resp.delay).await;
        let mut out = format!(
            "HTTP/1.1 {} X\r\nContent-Length: {}\r\nContent-Type: application/json\r\n",
            resp.status,
            resp.body.len()
        );
        for (k, v) in &resp.headers {
            out += &format!("{k}: {v}\r\n");
        }
        out += "\r\n";
        out += &resp.body;
        if s.write_all(out.as_bytes()).await.is_err() {
            return;
        }
        let _ = s.flush().await;
    }
}

/// Start a fake Redfish BMC on 127.0.0.1, over TLS with `cert` (PEM cert and key) if given.
pub async fn start(fake: Fake, cert: Option<(&Path, &Path)>) -> Running {
    start_on("127.0.0.1", fake, cert).await
}

/// The same on another loopback address (Linux answers on all of 127/8).
pub async fn start_on(ip: &str, fake: Fake, cert: Option<(&Path, &Path)>) -> Running {
    let listener = TcpListener::bind((ip, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let acceptor = cert.map(|(c, k)| {
        let certs = rustls_pemfile::certs(&mut &std::fs::read(c).unwrap()[..])
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = rustls_pemfile::private_key(&mut &std::fs::read(k).unwrap()[..])
            .unwrap()
            .unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
        tokio_rustls::TlsAcceptor::from(Arc::new(config))
    });
    let log = Arc::new(Mutex::new(Vec::new()));
    let fake = Arc::new(Mutex::new(fake));
    let (l, f) = (log.clone(), fake.clone());
    let task = tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                return;
            };
            let (l, f, acceptor) = (l.clone(), f.clone(), acceptor.clone());
            tokio::spawn(async move {
                match acceptor {
                    Some(a) => {
                        if let Ok(tls) = a.accept(sock).await {
                            serve_one(tls, l, f).await;
                        }
                    }
                    None => serve_one(sock, l, f).await,
                }
            });
        }
    });
    let scheme = if cert.is_some() { "https" } else { "http" };
    Running {
        url: format!("{scheme}://{ip}:{port}"),
        log,
        fake,
        task,
    }
}

/// A self-signed P-256 certificate made by the openssl CLI in `dir`, with basic constraints
/// CA:TRUE (openssl's default, and most BMCs'); returns (cert, key, openssl's SHA-256
/// fingerprint line). `None` when openssl is missing (a failure under CI).
pub fn self_signed(dir: &Path, name: &str, cn: &str) -> Option<(PathBuf, PathBuf, String)> {
    if !super::have("openssl") {
        return None;
    }
    let cert = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:P-256", "-nodes", "-days", "1"])
        .args(["-subj", &format!("/CN={cn}/O=Test BMC")])
        .args(["-addext", "basicConstraints=critical,CA:TRUE"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fp = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(&cert)
        .output()
        .unwrap();
    assert!(fp.status.success());
    let text = Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in"])
        .arg(&cert)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&text.stdout).contains("CA:TRUE"),
        "the test certificate must be a CA:TRUE one"
    );
    Some((
        cert,
        key,
        String::from_utf8_lossy(&fp.stdout).trim().to_string(),
    ))
}
