//! IPv6 router advertisements (SLAAC only), so iPXE does not wait for IPv6 on every boot.

use pxe_stack::ra;

use super::{Component, Context, Service};
use crate::error::Error;

/// Router advertisements on the provisioning interface, when the plan gives a prefix.
pub(crate) struct RouterAdvertisements {
    server: ra::Server,
    socket: ra::Icmpv6Socket,
}

impl RouterAdvertisements {
    /// `Ok(None)` when the plan has no `ipv6_ra_prefix`.
    pub(crate) fn new(cx: &Context<'_>) -> Result<Option<Self>, Error> {
        let p = &cx.plan.provisioning;
        let Some(prefix) = p.ipv6_ra_prefix else {
            return Ok(None);
        };
        let socket = ra::bind(&p.interface)?;
        let server = ra::Server::new(ra::Advertisement::new(prefix));
        Ok(Some(RouterAdvertisements { server, socket }))
    }
}

impl Component for RouterAdvertisements {
    fn service(self: Box<Self>) -> Option<Service> {
        let RouterAdvertisements { server, socket } = *self;
        Some(Service::new("router advertisements", move |stop| {
            Box::pin(async move { Ok(server.serve(socket, stop.wait()).await?) })
        }))
    }
}
