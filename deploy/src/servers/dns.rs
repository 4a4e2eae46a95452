//! The cluster DNS: api, api-int, *.apps, every host both ways (A and, from DHCPv6, AAAA), on
//! each provisioning address.

use std::net::SocketAddr;

use pxe_stack::dns;

use super::{Component, Context, Service};
use crate::error::Error;

/// The DNS server on the provisioning addresses (IPv4, IPv6 or both), UDP and TCP, when the
/// plan runs it: one server per address on one zone.
pub(crate) struct Dns {
    servers: Vec<(dns::Server, tokio::net::UdpSocket, tokio::net::TcpListener)>,
}

impl Dns {
    /// `Ok(None)` when the plan turns DNS off (or leaves it to `provisioning.dns`).
    pub(crate) fn new(cx: &Context<'_>) -> Result<Option<Self>, Error> {
        let Some(config) = cx.plan.dns_zone()? else {
            return Ok(None);
        };
        let servers = super::addresses(cx.plan)
            .into_iter()
            .map(|ip| {
                let addr = SocketAddr::new(ip, cx.plan.dns.port);
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
                // Host records read the lease tables at answer time, so they follow every
                // ACK and Reply (A from DHCPv4, AAAA from DHCPv6). Queries reach the timeline:
                // once per host, name, type and outcome.
                let server = dns::Server::new(config.clone())?
                    .with_lookup(cx.lookup())
                    .with_events(cx.events.clone());
                Ok((server, udp, tcp))
            })
            .collect::<Result<_, Error>>()?;
        Ok(Some(Dns { servers }))
    }
}

impl Component for Dns {
    fn service(self: Box<Self>) -> Option<Service> {
        let Dns { servers } = *self;
        Some(Service::new("dns", move |stop| {
            Box::pin(async move {
                let serving = servers
                    .into_iter()
                    .map(|(server, udp, tcp)| server.serve(udp, tcp, stop.clone().wait()));
                futures_util::future::try_join_all(serving).await?;
                Ok(())
            })
        }))
    }
}
