//! HTTP: the verified artifacts under their sha256, and every component's routes, on each
//! provisioning address (IPv4, IPv6 or both).

use std::net::SocketAddr;

use pxe_stack::http::{self, Routes};

use super::{Component, Context, Service};
use crate::error::Error;

/// The HTTP server on the provisioning addresses: one listener per address family.
pub(crate) struct Http {
    servers: Vec<(http::Server, tokio::net::TcpListener)>,
}

impl Http {
    pub(crate) fn new(cx: &Context<'_>, routes: Routes) -> Result<Self, Error> {
        let p = &cx.plan.provisioning;
        let servers = super::addresses(cx.plan)
            .into_iter()
            .map(|ip| {
                let listener = bind_tcp("http", SocketAddr::new(ip, p.http_port))?;
                let mut config = http::Config::default();
                config.root = Some(cx.layout.http_root().to_owned());
                let server = http::Server::new(config)
                    .with_routes(routes.clone())
                    .with_lookup(cx.lookup())
                    .with_events(cx.events.clone());
                Ok((server, listener))
            })
            .collect::<Result<_, Error>>()?;
        Ok(Http { servers })
    }
}

/// A TCP listener on `addr`, for the runtime.
pub(crate) fn bind_tcp(
    what: &'static str,
    addr: SocketAddr,
) -> Result<tokio::net::TcpListener, Error> {
    let bind_err = |source| Error::Bind {
        what,
        addr: addr.to_string(),
        source,
    };
    let listener = std::net::TcpListener::bind(addr).map_err(bind_err)?;
    listener.set_nonblocking(true).map_err(bind_err)?;
    tokio::net::TcpListener::from_std(listener).map_err(bind_err)
}

impl Component for Http {
    fn service(self: Box<Self>) -> Option<Service> {
        let Http { servers } = *self;
        Some(Service::new("http", move |stop| {
            Box::pin(async move {
                let serving = servers
                    .into_iter()
                    .map(|(server, listener)| server.serve(listener, stop.clone().wait()));
                futures_util::future::try_join_all(serving).await?;
                Ok(())
            })
        }))
    }
}
