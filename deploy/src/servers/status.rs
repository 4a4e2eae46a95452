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
    let routes = routes(Routes::new(), status).exact("/", |_req: RouteRequest| async {
        reply::ok("text/html; charset=utf-8", PAGE)
    });
    // Its requests are counted too (route `status`/`metrics`), without a lease lookup.
    let server = HttpServer::new(HttpConfig::default())
        .with_routes(routes)
        .with_events(Arc::new(status.clone()));
    Ok((server, listener))
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
