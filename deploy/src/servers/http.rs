//! HTTP: the verified artifacts under their sha256, and every component's routes.

use std::net::SocketAddr;

use pxe_stack::http::{self, Routes};

use super::{Component, Context, Service};
use crate::error::Error;

/// The HTTP server on the provisioning address.
pub(crate) struct Http {
    server: http::Server,
    listener: tokio::net::TcpListener,
}

impl Http {
    pub(crate) fn new(cx: &Context<'_>, routes: Routes) -> Result<Self, Error> {
        let p = &cx.plan.provisioning;
        let addr = SocketAddr::from((p.address, p.http_port));
        let bind_err = |source| Error::Bind {
            what: "http",
            addr: addr.to_string(),
            source,
        };
        let listener = std::net::TcpListener::bind(addr).map_err(bind_err)?;
        listener.set_nonblocking(true).map_err(bind_err)?;
        let listener = tokio::net::TcpListener::from_std(listener).map_err(bind_err)?;
        let mut config = http::Config::default();
        config.root = Some(cx.layout.http_root().to_owned());
        let server = http::Server::new(config)
            .with_routes(routes)
            .with_lookup(cx.lookup())
            .with_events(cx.events.clone());
        Ok(Http { server, listener })
    }
}

impl Component for Http {
    fn service(self: Box<Self>) -> Option<Service> {
        let Http { server, listener } = *self;
        Some(Service::new("http", move |stop| {
            Box::pin(async move { Ok(server.serve(listener, stop.wait()).await?) })
        }))
    }
}
