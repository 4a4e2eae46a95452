//! IPv6 router advertisements: on an IPv6 network, the managed and other flags for DHCPv6 (so
//! firmware waiting for an advertisement goes straight to DHCPv6); on an IPv4 one with
//! `ipv6_ra_prefix`, SLAAC only, so iPXE does not wait for IPv6 on every boot.

use pxe_stack::ra;

use super::{Component, Context, Service};
use crate::error::Error;
use crate::plan::Plan;

/// Router advertisements on the provisioning interface, when the plan gives a prefix.
pub(crate) struct RouterAdvertisements {
    server: ra::Server,
    socket: ra::Icmpv6Socket,
}

impl RouterAdvertisements {
    /// `Ok(None)` when the network has no IPv6 and the plan no `ipv6_ra_prefix`.
    pub(crate) fn new(cx: &Context<'_>) -> Result<Option<Self>, Error> {
        let Some(advertisement) = advertisement(cx.plan) else {
            return Ok(None);
        };
        let socket = ra::bind(&cx.plan.provisioning.interface)?;
        let server = ra::Server::new(advertisement);
        Ok(Some(RouterAdvertisements { server, socket }))
    }
}

/// What the plan advertises: the IPv6 network's prefix with the flags of its DHCPv6 server
/// (managed, other, not autonomous: addresses come from DHCPv6 only), else the SLAAC prefix.
pub(crate) fn advertisement(plan: &Plan) -> Option<ra::Advertisement> {
    let p = &plan.provisioning;
    match (
        p.ipv6.as_ref().filter(|_| p.family.has_ipv6()),
        p.ipv6_ra_prefix,
    ) {
        (Some(v6), _) => Some(ra::Advertisement::for_dhcp6(v6.network())),
        (None, Some(prefix)) => Some(ra::Advertisement::new(prefix)),
        (None, None) => None,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(provisioning: &str) -> Plan {
        Plan::parse(
            &format!(
                "[cluster]\nname = \"ocp\"\nbase_domain = \"example.com\"\nassets = \"/srv/ocp\"\n\
                 [images]\nstream = \"stream.json\"\n\
                 [provisioning]\ninterface = \"eno2\"\n{provisioning}"
            ),
            "plan.toml",
        )
        .unwrap()
    }

    /// The flags match the DHCPv6 mode: managed and other for an IPv6 network (addresses from
    /// DHCPv6 only), SLAAC only for `ipv6_ra_prefix`, nothing otherwise.
    #[test]
    fn flags_follow_the_plan() {
        for family in ["ipv6", "dual-stack"] {
            let v4 = if family == "ipv6" {
                ""
            } else {
                "address = \"172.22.0.1\"\n"
            };
            let a = advertisement(&plan(&format!(
                "family = \"{family}\"\n{v4}[provisioning.ipv6]\naddress = \"fd00:22::1\"\n"
            )))
            .unwrap();
            assert!(a.managed && a.other && !a.autonomous, "{family}: {a:?}");
            assert_eq!(a.prefix, "fd00:22::".parse::<std::net::Ipv6Addr>().unwrap());
        }
        let slaac = advertisement(&plan(
            "address = \"172.22.0.1\"\nipv6_ra_prefix = \"fd00:126::\"\n",
        ))
        .unwrap();
        assert!(!slaac.managed && !slaac.other && slaac.autonomous);
        assert!(advertisement(&plan("address = \"172.22.0.1\"\n")).is_none());
    }
}
