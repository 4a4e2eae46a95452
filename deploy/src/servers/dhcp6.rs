//! DHCPv6: reservations by MAC for the plan's hosts (`hosts[].ipv6`), the pool for the rest,
//! and the boot-file URL (option 59) by client, as DHCPv4 chooses its boot files: UEFI PXE gets
//! `tftp://[addr]/<efi binary>`, UEFI HTTP boot `http://[addr]:port/<efi binary>` (its vendor
//! class echoed), iPXE its per-host script URL.

use std::sync::Arc;

use pxe_stack::EventSink;
use pxe_stack::dhcp6::{self, Leases6};

use super::leases::LeaseStores;

use super::{Component, Service};
use crate::error::Error;
use crate::layout::Layout;
use crate::plan::Plan;

/// The DHCPv6 server, bound to the provisioning interface.
pub(crate) struct Dhcp6 {
    server: dhcp6::Server,
    socket: tokio::net::UdpSocket,
    leases: Leases6,
}

impl Dhcp6 {
    /// `Ok(None)` when the network has no IPv6 (`provisioning.family = "ipv4"`).
    ///
    /// Leases live in `stores`, as the plan's `[state]` says (see [`LeaseStores`]); a Reply
    /// that binds one leaves only once it is stored.
    pub(crate) async fn new(
        plan: &Plan,
        layout: &Layout,
        stores: &LeaseStores,
        events: Arc<dyn EventSink>,
    ) -> Result<Option<Self>, Error> {
        let Some(config) = config(plan, layout) else {
            return Ok(None);
        };
        let socket = dhcp6::bind(Some(&plan.provisioning.interface), 547)?;
        let server = stores
            .attach_v6(dhcp6::Server::new(config)?)
            .await?
            .with_events(events);
        let leases = server.leases();
        Ok(Some(Dhcp6 {
            server,
            socket,
            leases,
        }))
    }

    /// The v6 lease table, every other server's host lookup for IPv6 clients.
    pub(crate) fn leases(&self) -> Leases6 {
        self.leases.clone()
    }
}

/// The plan as a DHCPv6 configuration; `None` without IPv6.
pub(crate) fn config(plan: &Plan, layout: &Layout) -> Option<dhcp6::Config> {
    let p = &plan.provisioning;
    let v6 = p.ipv6.as_ref().filter(|_| p.family.has_ipv6())?;
    // Every URL a v6 client gets names the v6 address.
    let layout = layout.ipv6()?;
    let mut subnet = dhcp6::Subnet6::new(v6.network(), v6.prefix);
    subnet.pool = v6
        .dhcp_range
        .map(|(start, end)| dhcp6::Range6 { start, end });
    let boot = dhcp6::BootFiles6 {
        efi_x64: Some(layout.efi_boot_file().to_owned()),
        efi_arm64: None,
        http_boot_url: Some(layout.url(&layout.efi_boot_path())),
        // iPXE goes straight to its own script: the server knows the MAC already.
        ipxe_script_url: Some(format!("{}?mac={{mac}}", layout.url(Layout::HOST_SCRIPT))),
        // Secure Boot hosts (dual-stack plans only) get the signed shim instead of iPXE, as
        // over DHCPv4.
        hosts: plan
            .hosts
            .iter()
            .filter(|h| h.secure_boot)
            .map(|h| dhcp6::HostBootFiles6 {
                mac: h.mac,
                efi_x64: Some(Layout::SHIM_FILE.into()),
                http_boot_url: Some(layout.url(&format!("/{}", Layout::SHIM_FILE))),
            })
            .collect(),
    };
    Some(dhcp6::Config {
        server_addr: v6.address,
        subnets: vec![subnet],
        reservations: plan
            .hosts
            .iter()
            .filter_map(|h| {
                Some(dhcp6::Reservation6 {
                    mac: h.mac,
                    addr: h.ipv6?,
                    hostname: Some(h.name.clone()),
                })
            })
            .collect(),
        // Option 23: the plan's servers, else ours on the IPv6 address when it runs.
        dns: plan.dns_servers6(),
        // Option 24: the cluster's zone, as DHCPv4's option 15 names it.
        domain_search: vec![format!(
            "{}.{}",
            plan.cluster.name, plan.cluster.base_domain
        )],
        lease_secs: v6.lease_secs,
        boot,
        ..dhcp6::Config::default()
    })
}

impl Component for Dhcp6 {
    fn service(self: Box<Self>) -> Option<Service> {
        let Dhcp6 { server, socket, .. } = *self;
        Some(Service::new("dhcp6", move |stop| {
            Box::pin(async move { Ok(server.serve(socket, stop.wait()).await?) })
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Artifacts;

    fn plan(family: &str) -> Plan {
        let v4 = if family == "ipv6" {
            ""
        } else {
            "address = \"172.22.0.1\"\n"
        };
        Plan::parse(
            &format!(
                "[cluster]\nname = \"ocp\"\nbase_domain = \"example.com\"\nassets = \"/srv/ocp\"\n\
                 [images]\nstream = \"stream.json\"\n\
                 [provisioning]\ninterface = \"eno2\"\nfamily = \"{family}\"\n{v4}\
                 [provisioning.ipv6]\naddress = \"fd00:22::1\"\n\
                 dhcp_range = [\"fd00:22::100\", \"fd00:22::1ff\"]\n\
                 [[hosts]]\nname = \"master-0\"\nmac = \"52:54:00:12:60:01\"\nrole = \"master\"\n\
                 ipv6 = \"fd00:22::10\"\n"
            ),
            "plan.toml",
        )
        .unwrap()
    }

    fn artifacts() -> Artifacts {
        Artifacts::for_tests("/var/cache/rhcos-metal")
    }

    #[test]
    fn boot_urls_and_reservations_name_the_v6_address() {
        for family in ["ipv6", "dual-stack"] {
            let plan = plan(family);
            let layout = Layout::new(&plan, &artifacts());
            let c = config(&plan, &layout).unwrap();
            assert_eq!(
                c.server_addr,
                "fd00:22::1".parse::<std::net::Ipv6Addr>().unwrap()
            );
            assert_eq!(c.subnets[0].prefix_len, 64);
            assert_eq!(c.boot.efi_x64.as_deref(), Some("snponly.efi"));
            assert_eq!(
                c.boot.http_boot_url.as_deref(),
                Some("http://[fd00:22::1]:8080/snponly.efi")
            );
            assert_eq!(
                c.boot.ipxe_script_url.as_deref(),
                Some("http://[fd00:22::1]:8080/ipxe?mac={mac}")
            );
            assert_eq!(c.reservations.len(), 1);
            assert_eq!(c.reservations[0].hostname.as_deref(), Some("master-0"));
            // The pxe-stack server accepts it as it stands.
            dhcp6::Policy::new(c).unwrap();
        }
    }

    #[test]
    fn secure_boot_hosts_get_the_shim_over_dhcp6_too() {
        let text = "[cluster]\nname = \"ocp\"\nbase_domain = \"example.com\"\nassets = \"/srv/ocp\"\n\
             [images]\nstream = \"stream.json\"\n\
             [provisioning]\ninterface = \"eno2\"\nfamily = \"dual-stack\"\n\
             address = \"172.22.0.1\"\nsecure_boot = { from = \"image\" }\n\
             [provisioning.ipv6]\naddress = \"fd00:22::1\"\n\
             [[hosts]]\nname = \"master-0\"\nmac = \"52:54:00:12:60:01\"\nrole = \"master\"\n\
             secure_boot = true\n\
             [[hosts]]\nname = \"worker-0\"\nmac = \"52:54:00:12:60:02\"\nrole = \"worker\"\n";
        let plan = Plan::parse(text, "plan.toml").unwrap();
        let layout = Layout::new(&plan, &artifacts());
        let c = config(&plan, &layout).unwrap();
        assert_eq!(
            c.boot.hosts,
            vec![dhcp6::HostBootFiles6 {
                mac: plan.hosts[0].mac,
                efi_x64: Some("shimx64.efi".into()),
                http_boot_url: Some("http://[fd00:22::1]:8080/shimx64.efi".into()),
            }]
        );
    }

    #[test]
    fn an_ipv4_plan_runs_no_dhcp6() {
        let plan = Plan::parse(
            "[cluster]\nname = \"ocp\"\nbase_domain = \"example.com\"\nassets = \"/srv/ocp\"\n\
             [images]\nstream = \"stream.json\"\n\
             [provisioning]\ninterface = \"eno2\"\naddress = \"172.22.0.1\"\n",
            "plan.toml",
        )
        .unwrap();
        let layout = Layout::new(&plan, &artifacts());
        assert!(config(&plan, &layout).is_none());
        assert!(layout.ipv6().is_none());
    }
}
