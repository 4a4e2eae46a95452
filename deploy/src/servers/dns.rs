//! The cluster DNS: api, api-int, *.apps, every host both ways, on the provisioning address.

use std::net::SocketAddr;

use pxe_stack::dns;

use super::{Component, Context, Service};
use crate::error::Error;

/// The DNS server on the provisioning address, UDP and TCP, when the plan runs it.
pub(crate) struct Dns {
    server: dns::Server,
    udp: tokio::net::UdpSocket,
    tcp: tokio::net::TcpListener,
}

impl Dns {
    /// `Ok(None)` when the plan turns DNS off (or leaves it to `provisioning.dns`).
    pub(crate) fn new(cx: &Context<'_>) -> Result<Option<Self>, Error> {
        let Some(config) = cx.plan.dns_zone()? else {
            return Ok(None);
        };
        let addr = SocketAddr::from((cx.plan.provisioning.address, cx.plan.dns.port));
        let bind_err = |source| Error::Bind {
            what: "dns",
            addr: addr.to_string(),
            source,
        };
        let udp = std::net::UdpSocket::bind(addr).map_err(bind_err)?;
        // Port 0 (tests): TCP on the port UDP was given.
        let addr = udp.local_addr().map_err(bind_err)?;
        let tcp = std::net::TcpListener::bind(addr).map_err(bind_err)?;
        udp.set_nonblocking(true).map_err(bind_err)?;
        tcp.set_nonblocking(true).map_err(bind_err)?;
        let udp = tokio::net::UdpSocket::from_std(udp).map_err(bind_err)?;
        let tcp = tokio::net::TcpListener::from_std(tcp).map_err(bind_err)?;
        // Host records read the lease table at answer time, so they follow every ACK.
        // Queries reach the timeline: once per host, name, type and outcome.
        let server = dns::Server::new(config)?
            .with_lookup(cx.lookup())
            .with_events(cx.events.clone());
        Ok(Some(Dns { server, udp, tcp }))
    }
}

impl Component for Dns {
    fn service(self: Box<Self>) -> Option<Service> {
        let Dns { server, udp, tcp } = *self;
        Some(Service::new("dns", move |stop| {
            Box::pin(async move { Ok(server.serve(udp, tcp, stop.wait()).await?) })
        }))
    }
}
