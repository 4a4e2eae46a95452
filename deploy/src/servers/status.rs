//! The live status page, its JSON API and Prometheus metrics, on the provisioning HTTP server
//! or on an address of their own (`[status] bind`).

use std::net::SocketAddr;
use std::sync::Arc;

use http::StatusCode;
use pxe_stack::http::{Config as HttpConfig, Routes, Server as HttpServer};
use pxe_stack::route::{Params, RouteRequest, reply};
use pxe_stack::{EventSink, Mac};

use super::{Component, Context, Service};
use crate::error::Error;
use crate::layout::Layout;
use crate::status::Status;

const PAGE: &str = include_str!("status/status.html");
const SCRIPT: &str = include_str!("status/status.js");
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Feeds the [`Status`] every event; serves it when the plan enables it.
pub(crate) struct StatusPage {
    status: Status,
    enabled: bool,
    /// Its own server, when the plan binds a separate address.
    own: Option<(HttpServer, tokio::net::TcpListener)>,
}

impl StatusPage {
    pub(crate) fn new(cx: &Context<'_>, status: Status) -> Result<Self, Error> {
        let enabled = cx.plan.status.enabled;
        let own = match cx.plan.status.bind {
            Some(addr) if enabled => Some(own_server(addr, &status)?),
            _ => None,
        };
        Ok(StatusPage {
            status,
            enabled,
            own,
        })
    }
}

fn own_server(
    addr: SocketAddr,
    status: &Status,
) -> Result<(HttpServer, tokio::net::TcpListener), Error> {
    let bind_err = |source| Error::Bind {
        what: "status",
        addr: addr.to_string(),
        source,
    };
    let listener = std::net::TcpListener::bind(addr).map_err(bind_err)?;
    listener.set_nonblocking(true).map_err(bind_err)?;
    let listener = tokio::net::TcpListener::from_std(listener).map_err(bind_err)?;
    Ok((status_server(status), listener))
}

/// The status page's own server: its routes and `/` for the page. Its requests are counted
/// too (routes `status` and `metrics`), without a lease lookup.
fn status_server(status: &Status) -> HttpServer {
    let routes = routes(Routes::new(), status).exact("/", |_req: RouteRequest| async {
        reply::ok("text/html; charset=utf-8", PAGE)
    });
    HttpServer::new(HttpConfig::default())
        .with_routes(routes)
        .with_events(Arc::new(status.clone()))
}

/// Serves a [`Status`] on its own (the page at `/`, `/status`, `/status/<mac>`, `/metrics`)
/// until `shutdown`: for an embedder that keeps the page of a finished deployment up after its
/// servers stopped.
///
/// # Errors
/// The HTTP server's, when the listener fails.
pub async fn serve_status(
    status: Status,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), pxe_stack::http::Error> {
    status_server(&status).serve(listener, shutdown).await
}

/// `/status`, `/status/<mac>`, `/status.html`, `/status.js`, `/metrics`.
fn routes(routes: Routes, status: &Status) -> Routes {
    let s = status.clone();
    let routes = routes.exact(Layout::STATUS, move |req: RouteRequest| {
        let s = s.clone();
        async move {
            let since = Params::of(&req.request)
                .ok()
                .and_then(|p| p.get("since").and_then(|v| v.parse().ok()))
                .unwrap_or(0);
            json(&s.changed_since(since))
        }
    });
    let s = status.clone();
    let routes = routes.prefix(format!("{}/", Layout::STATUS), move |req: RouteRequest| {
        let s = s.clone();
        async move {
            let path = req.request.uri().path();
            let mac = path[Layout::STATUS.len() + 1..].parse::<Mac>();
            match mac.ok().and_then(|m| s.host(m)) {
                Some(host) => json(&host),
                None => reply::error(StatusCode::NOT_FOUND, "no such host"),
            }
        }
    });
    let s = status.clone();
    routes
        .exact(Layout::STATUS_PAGE, |_req: RouteRequest| async {
            reply::ok("text/html; charset=utf-8", PAGE)
        })
        .exact(Layout::STATUS_SCRIPT, |_req: RouteRequest| async {
            reply::ok("text/javascript; charset=utf-8", SCRIPT)
        })
        .exact(Layout::METRICS, move |_req: RouteRequest| {
            let s = s.clone();
            async move { reply::ok(OPENMETRICS, s.metrics_text()) }
        })
}

fn json(value: &impl serde::Serialize) -> ::http::Response<bytes::Bytes> {
    match serde_json::to_vec(value) {
        Ok(body) => reply::ok("application/json", body),
        Err(_) => reply::error(StatusCode::INTERNAL_SERVER_ERROR, "cannot encode status"),
    }
}

impl Component for StatusPage {
    fn routes(&self, r: Routes) -> Routes {
        if self.enabled && self.own.is_none() {
            routes(r, &self.status)
        } else {
            r
        }
    }

    fn consumer(&self) -> Option<Arc<dyn EventSink>> {
        Some(Arc::new(self.status.clone()))
    }

    fn service(self: Box<Self>) -> Option<Service> {
        let (server, listener) = self.own?;
        Some(Service::new("status", move |stop| {
            Box::pin(async move { Ok(server.serve(listener, stop.wait()).await?) })
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pxe_stack::{Event, EventKind, InstallStage};
    use std::process::Command;

    fn status() -> Status {
        let plan = crate::plan::Plan::parse(
            r#"
            [cluster]
            name = "ocp"
            base_domain = "example.com"
            assets = "/srv/ocp"
            [images]
            stream = "stream.json"
            [provisioning]
            interface = "eno2"
            address = "172.22.0.1"
            [[hosts]]
            name = "node0"
            mac = "52:54:00:12:60:01"
            role = "master"
            bmc = { driver = "ipmi", address = "10.0.0.10:623", user = "admin", password = "hunter2" }
            "#,
            "plan.toml",
        )
        .unwrap();
        let artifacts = crate::artifacts::Artifacts {
            image: Some("/img".into()),
            ..crate::artifacts::Artifacts::for_tests("/nonexistent")
        };
        Status::new(&plan, &artifacts)
    }

    /// `(status code, content type, body)` of a GET, by curl.
    fn curl(url: &str) -> (String, String, String) {
        let out = Command::new("curl")
            .args(["-s", "-w", "\n%{http_code} %{content_type}", url])
            .output()
            .expect("curl (apt-get install curl)");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, meta) = text.rsplit_once('\n').unwrap();
        let (code, ctype) = meta.split_once(' ').unwrap_or((meta, ""));
        (code.to_owned(), ctype.to_owned(), body.to_owned())
    }

    /// The routes as the provisioning HTTP server carries them, against curl on loopback.
    #[test]
    fn routes_serve_json_page_and_metrics_to_curl() {
        let status = status();
        let mac: Mac = "52:54:00:12:60:01".parse().unwrap();
        status.emit(Event::now(
            Some(mac),
            None,
            EventKind::Report {
                stage: InstallStage::ImageWritten,
                detail: String::new(),
            },
        ));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let server = HttpServer::new(HttpConfig::default())
            .with_routes(routes(Routes::new(), &status))
            .with_events(Arc::new(status.clone()));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = std::thread::spawn(move || {
            rt.block_on(server.serve(listener, async {
                let _ = stopped.await;
            }))
        });

        let (code, ctype, body) = curl(&format!("{base}/status"));
        assert_eq!((code.as_str(), ctype.as_str()), ("200", "application/json"));
        let all: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(all["hosts"][0]["name"], "node0");
        assert_eq!(all["hosts"][0]["phase"], "image");
        assert_eq!(all["hosts"][0]["role"], "master");
        assert!(!body.contains("hunter2"), "{body}");
        let seq = all["seq"].as_u64().unwrap();
        let (_, _, since) = curl(&format!("{base}/status?since={seq}"));
        let since: serde_json::Value = serde_json::from_str(&since).unwrap();
        assert_eq!(since["hosts"].as_array().unwrap().len(), 0);
        assert_eq!(since["total"], 1);

        let (code, _, one) = curl(&format!("{base}/status/52:54:00:12:60:01"));
        assert_eq!(code, "200");
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&one).unwrap()["mac"],
            "52:54:00:12:60:01"
        );
        assert_eq!(curl(&format!("{base}/status/52:54:00:12:60:99")).0, "404");
        assert_eq!(curl(&format!("{base}/status/not-a-mac")).0, "404");

        let (code, ctype, page) = curl(&format!("{base}/status.html"));
        assert_eq!(code, "200");
        assert!(ctype.starts_with("text/html"), "{ctype}");
        assert!(page.contains(r#"<script src="status.js">"#));
        let (code, ctype, script) = curl(&format!("{base}/status.js"));
        assert_eq!(code, "200");
        assert!(ctype.starts_with("text/javascript"), "{ctype}");
        assert!(script.contains("status?since="));

        let (code, ctype, metrics) = curl(&format!("{base}/metrics"));
        assert_eq!(code, "200");
        assert!(ctype.starts_with("application/openmetrics-text"), "{ctype}");
        let scrape =
            prometheus_parse::Scrape::parse(metrics.lines().map(|l| Ok(l.to_owned()))).unwrap();
        // The requests above were counted under their route, by the server's own events.
        let count = |code: &str| -> f64 {
            scrape
                .samples
                .iter()
                .filter(|s| s.metric == "rhcos_http_requests_total")
                .filter(|s| s.labels.get("route") == Some("status"))
                .filter(|s| s.labels.get("status") == Some(code))
                .map(|s| match s.value {
                    prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
                    _ => 0.0,
                })
                .sum()
        };
        assert_eq!(count("404"), 2.0, "{metrics}");
        // Five answered 200 before; the last may still be finishing as /metrics is asked.
        assert!(count("200") >= 4.0, "{metrics}");
        assert!(metrics.contains("rhcos_install_reports_total{stage=\"image-written\"} 1"));
        assert!(!metrics.contains("hunter2"));

        let _ = stop.send(());
        task.join().unwrap().unwrap();
    }
}
