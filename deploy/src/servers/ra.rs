//! IPv6 router advertisements (SLAAC only), so iPXE does not wait for IPv6 on every boot.

use std::time::Duration;

use pxe_stack::dhcp;

use super::{Component, Context, Service};
use crate::error::Error;

/// Router advertisements on the provisioning interface, when the plan gives a prefix.
pub(crate) struct RouterAdvertisements {
    advertiser: dhcp::RouterAdvertiser,
}

impl RouterAdvertisements {
    /// `Ok(None)` when the plan has no `ipv6_ra_prefix`.
    pub(crate) fn new(cx: &Context<'_>) -> Result<Option<Self>, Error> {
        let p = &cx.plan.provisioning;
        let Some(prefix) = p.ipv6_ra_prefix else {
            return Ok(None);
        };
        let advertiser = dhcp::RouterAdvertiser::new(
            &p.interface,
            dhcp::Advertisement::new(prefix),
            Duration::from_secs(10),
        )?;
        Ok(Some(RouterAdvertisements { advertiser }))
    }
}

impl Component for RouterAdvertisements {
    fn service(self: Box<Self>) -> Option<Service> {
        let advertiser = self.advertiser;
        Some(Service::new("router advertisements", move |stop| {
            Box::pin(async move { Ok(advertiser.run(stop.wait()).await?) })
        }))
    }
}
