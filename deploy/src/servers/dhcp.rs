//! DHCP: reservations for the plan's hosts, the pool for the rest, boot files by firmware.

use std::sync::Arc;

use pxe_stack::EventSink;
use pxe_stack::dhcp::{self, Leases};

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
    pub(crate) fn new(
        plan: &Plan,
        layout: &Layout,
        events: Arc<dyn EventSink>,
    ) -> Result<Self, Error> {
        let p = &plan.provisioning;
        let socket = dhcp::bind(Some(&p.interface), 67)?;
        std::fs::create_dir_all(layout.state_dir()).map_err(|source| Error::StateDir {
            path: layout.state_dir().to_owned(),
            source,
        })?;
        let server = dhcp::Server::new(config(plan, layout))?
            .with_lease_file(dhcp::LeaseFile::new(layout.lease_file()))?
            .with_events(events);
        let leases = server.leases();
        Ok(Dhcp {
            server,
            socket,
            leases,
        })
    }

    /// The lease table, shared with every other server.
    pub(crate) fn leases(&self) -> Leases {
        self.leases.clone()
    }
}

/// The plan as a DHCP configuration.
fn config(plan: &Plan, layout: &Layout) -> dhcp::Config {
    let p = &plan.provisioning;
    let mut subnet = dhcp::Subnet::new(p.address, p.prefix);
    subnet.router = p.router;
    // Option 6: the plan's own servers, else ours when it runs.
    subnet.dns = plan.dns_servers();
    subnet.domain = Some(format!(
        "{}.{}",
        plan.cluster.name, plan.cluster.base_domain
    ));
    subnet.pool = p.dhcp_range.map(|(start, end)| dhcp::Range { start, end });
    let mut config = dhcp::Config {
        server_ip: p.address,
        subnets: vec![subnet],
        lease_identity: p.lease_identity,
        ..Default::default()
    };
    config.boot.next_server = Some(p.address);
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
    config
}

impl Component for Dhcp {
    fn service(self: Box<Self>) -> Option<Service> {
        let Dhcp { server, socket, .. } = *self;
        Some(Service::new("dhcp", move |stop| {
            Box::pin(async move { Ok(server.serve(socket, stop.wait()).await?) })
        }))
    }
}
