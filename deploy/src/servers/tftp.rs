//! TFTP: the iPXE binaries (and what components add, such as the Secure Boot files), for
//! firmware that cannot speak HTTP.

use std::net::SocketAddr;
use std::sync::Arc;

use pxe_stack::{dhcp, tftp};

use super::{Component, Context, Service};
use crate::error::Error;
use crate::layout::Layout;

/// The TFTP server on the provisioning address, serving the iPXE directory.
pub(crate) struct Tftp {
    server: tftp::Server,
    socket: std::net::UdpSocket,
}

impl Tftp {
    /// `generators` are asked first, in order (the Secure Boot files and GRUB configurations).
    pub(crate) fn new(
        cx: &Context<'_>,
        generators: Vec<Arc<dyn tftp::Generate>>,
    ) -> Result<Self, Error> {
        let addr = SocketAddr::from((cx.plan.provisioning.address, 69));
        let socket = std::net::UdpSocket::bind(addr).map_err(|source| Error::Bind {
            what: "tftp",
            addr: addr.to_string(),
            source,
        })?;
        let mut config = tftp::Config::default();
        config.root = Some(cx.layout.ipxe_dir().to_owned());
        if !generators.is_empty() {
            config.generator = Some(Arc::new(
                move |path: &str, peer: SocketAddr, mac: Option<pxe_stack::Mac>| {
                    generators.iter().find_map(|g| g.generate(path, peer, mac))
                },
            ));
        }
        // A finished undionly.kpxe transfer tells DHCP that the host's next DISCOVER comes
        // from iPXE (the stateful chain).
        let server = tftp::Server::new(config)
            .with_lookup(cx.lookup())
            .with_events(Arc::new(dhcp::MarkChained::new(
                cx.leases.clone(),
                Layout::BIOS_BOOT_FILE,
                cx.events.clone(),
            )));
        Ok(Tftp { server, socket })
    }
}

impl Component for Tftp {
    fn service(self: Box<Self>) -> Option<Service> {
        let Tftp { server, socket } = *self;
        Some(Service::new("tftp", move |stop| {
            Box::pin(async move { Ok(server.serve(socket, stop.wait()).await?) })
        }))
    }
}
