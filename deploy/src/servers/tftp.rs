//! TFTP: the iPXE binaries (and what components add, such as the Secure Boot files), for
//! firmware that cannot speak HTTP, on each provisioning address (IPv4, IPv6 or both).

use std::net::SocketAddr;
use std::sync::Arc;

use pxe_stack::{dhcp, tftp};

use super::{Component, Context, Service};
use crate::error::Error;
use crate::layout::Layout;

/// The TFTP server on the provisioning addresses, serving the iPXE directory: one socket per
/// address family.
pub(crate) struct Tftp {
    servers: Vec<(tftp::Server, std::net::UdpSocket)>,
}

impl Tftp {
    /// `generators` are asked first, in order (the Secure Boot files and GRUB configurations).
    pub(crate) fn new(
        cx: &Context<'_>,
        generators: Vec<Arc<dyn tftp::Generate>>,
    ) -> Result<Self, Error> {
        let mut config = tftp::Config::default();
        config.root = Some(cx.layout.ipxe_dir().to_owned());
        if !generators.is_empty() {
            config.generator = Some(Arc::new(
                move |path: &str, peer: SocketAddr, mac: Option<pxe_stack::Mac>| {
                    generators.iter().find_map(|g| g.generate(path, peer, mac))
                },
            ));
        }
        let servers = super::addresses(cx.plan)
            .into_iter()
            .map(|ip| {
                let addr = SocketAddr::new(ip, 69);
                let socket = std::net::UdpSocket::bind(addr).map_err(|source| Error::Bind {
                    what: "tftp",
                    addr: addr.to_string(),
                    source,
                })?;
                // A finished undionly.kpxe transfer tells DHCP that the host's next DISCOVER
                // comes from iPXE (the stateful chain; BIOS, so IPv4 only).
                let server = tftp::Server::new(config.clone())
                    .with_lookup(cx.lookup())
                    .with_events(Arc::new(dhcp::MarkChained::new(
                        cx.leases.clone(),
                        Layout::BIOS_BOOT_FILE,
                        cx.events.clone(),
                    )));
                Ok((server, socket))
            })
            .collect::<Result<_, Error>>()?;
        Ok(Tftp { servers })
    }
}

impl Component for Tftp {
    fn service(self: Box<Self>) -> Option<Service> {
        let Tftp { servers } = *self;
        Some(Service::new("tftp", move |stop| {
            Box::pin(async move {
                let serving = servers
                    .into_iter()
                    .map(|(server, socket)| server.serve(socket, stop.clone().wait()));
                futures_util::future::try_join_all(serving).await?;
                Ok(())
            })
        }))
    }
}
