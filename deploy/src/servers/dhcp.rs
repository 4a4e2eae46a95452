//! DHCP: reservations for the plan's hosts, the pool for the rest, boot files by firmware.

use std::sync::Arc;

use pxe_stack::EventSink;
use pxe_stack::dhcp::{self, Leases};

use super::leases::LeaseStores;
use super::{Component, Service};
use crate::error::Error;
use crate::layout::Layout;
use crate::plan::Plan;

/// The DHCP server, bound to the provisioning interface.
pub(crate) struct Dhcp {
    server: dhcp::Server,
    socket: tokio::net::UdpSocket,
    leases: Leases,
}

impl Dhcp {
    /// `Ok(None)` when the network has no IPv4 (`provisioning.family = "ipv6"`).
    ///
    /// Leases live in `stores`, as the plan's `[state]` says (see [`LeaseStores`]).
    pub(crate) async fn new(
        plan: &Plan,
        layout: &Layout,
        stores: &LeaseStores,
        events: Arc<dyn EventSink>,
    ) -> Result<Option<Self>, Error> {
        let p = &plan.provisioning;
        let Some(config) = config(plan, layout) else {
            return Ok(None);
        };
        let socket = dhcp::bind(Some(&p.interface), 67)?;
        let server = stores.attach_v4(dhcp::Server::new(config)?).await?;
        let server = server.with_events(events);
        let leases = server.leases();
        Ok(Some(Dhcp {
            server,
            socket,
            leases,
        }))
    }

    /// The lease table, shared with every other server.
    pub(crate) fn leases(&self) -> Leases {
        self.leases.clone()
    }
}

/// The plan as a DHCP configuration; `None` without IPv4.
fn config(plan: &Plan, layout: &Layout) -> Option<dhcp::Config> {
    let p = &plan.provisioning;
    let address = p.address.filter(|_| p.family.has_ipv4())?;
    // The network address, not ours: the shared lease table keys rows by subnet, and every
    // server of the site must name it alike.
    let network = pxe_stack::Ipv4Net::new(address, p.prefix).network();
    let mut subnet = dhcp::Subnet::new(network, p.prefix);
    subnet.router = p.router;
    // Option 6: the plan's own servers, else ours when it runs.
    subnet.dns = plan.dns_servers();
    subnet.domain = Some(format!(
        "{}.{}",
        plan.cluster.name, plan.cluster.base_domain
    ));
    subnet.pool = p.dhcp_range.map(|(start, end)| dhcp::Range { start, end });
    let mut config = dhcp::Config {
        server_ip: address,
        subnets: vec![subnet],
        lease_identity: p.lease_identity,
        ..Default::default()
    };
    config.boot.next_server = Some(address);
    config.boot.bios = Some(Layout::BIOS_BOOT_FILE.into());
    config.boot.efi_x64 = Some(layout.efi_boot_file().into());
    config.boot.http_boot_url = Some(layout.url(&layout.efi_boot_path()));
    config.boot.ipxe_script_url = Some(layout.url(Layout::BOOT_SCRIPT));
    config.boot.chain = p.chain;
    // Secure Boot hosts get the signed shim instead of iPXE.
    config.boot.hosts = plan
        .hosts
        .iter()
        .filter(|h| h.secure_boot)
        .map(|h| dhcp::HostBootFiles {
            mac: h.mac,
            efi_x64: Some(Layout::SHIM_FILE.into()),
            http_boot_url: Some(layout.url(&format!("/{}", Layout::SHIM_FILE))),
        })
        .collect();
    config.reservations = plan
        .hosts
        .iter()
        .filter_map(|h| {
            Some(dhcp::Reservation {
                mac: h.mac,
                addr: h.address?,
                hostname: Some(h.name.clone()),
            })
        })
        .collect();
    Some(config)
}

impl Component for Dhcp {
    fn service(self: Box<Self>) -> Option<Service> {
        let Dhcp { server, socket, .. } = *self;
        Some(Service::new("dhcp", move |stop| {
            Box::pin(async move { Ok(server.serve(socket, stop.wait()).await?) })
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Artifacts;

    #[test]
    fn the_subnet_is_named_by_its_network_address_on_every_server() {
        let subnets = ["172.22.0.1", "172.22.0.2"].map(|address| {
            let plan = Plan::parse(
                &format!(
                    "[cluster]\nname = \"ocp\"\nbase_domain = \"example.com\"\nassets = \"/srv/ocp\"\n\
                     [images]\nstream = \"stream.json\"\n\
                     [provisioning]\ninterface = \"eno2\"\naddress = \"{address}\"\n\
                     dhcp_range = [\"172.22.0.100\", \"172.22.0.199\"]\n"
                ),
                "plan.toml",
            )
            .unwrap();
            let artifacts = Artifacts::for_tests("/var/cache/rhcos-metal");
            let c = config(&plan, &Layout::new(&plan, &artifacts)).unwrap();
            assert_eq!(c.server_ip.to_string(), address);
            let subnet = (c.subnets[0].network, c.subnets[0].prefix_len);
            // The pxe-stack server accepts it as it stands.
            dhcp::Policy::new(c).unwrap();
            subnet
        });
        // Two servers of one site: one subnet, the key of the shared lease table.
        assert_eq!(subnets, [("172.22.0.0".parse().unwrap(), 24); 2]);
    }
}
