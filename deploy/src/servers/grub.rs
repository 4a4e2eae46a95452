//! The Secure Boot path: the signed shim and GRUB over TFTP (and UEFI HTTP boot), and each
//! Secure Boot host's GRUB configuration under GRUB's prefix.
//!
//! The firmware verifies shim (signed by Microsoft's UEFI CA), shim verifies GRUB and GRUB has
//! shim verify the kernel, so the chain holds only signed code; the configuration and the
//! initramfs are data. GRUB asks for `<prefix>/grub.cfg` (Debian's network GRUB; GRUB's own
//! net search asks for `grub.cfg-01-<mac>`, then `grub.cfg-<IPv4 in hex>` and its shortenings,
//! then `grub.cfg`): the MAC and full-address names name the host, and `grub.cfg` is answered
//! for the host holding the requester's lease.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use http::StatusCode;
use ipxe_script::grub::{self, ConfigName};
use pxe_stack::http::Routes;
use pxe_stack::route::{RouteRequest, reply};
use pxe_stack::{HostLookup, Mac};

use super::scripts::host_args;
use super::{Component, Context};
use crate::error::Error;
use crate::layout::Layout;

/// The shim, GRUB and the per-host configurations, read and rendered once at start.
pub(crate) struct Grub {
    inner: Arc<Inner>,
}

struct Inner {
    shim: Bytes,
    grub: Bytes,
    configs: HashMap<Mac, Bytes>,
    lookup: Arc<dyn HostLookup>,
}

fn read(path: &Path) -> Result<Bytes, Error> {
    std::fs::read(path)
        .map(Bytes::from)
        .map_err(|source| Error::Read {
            path: path.to_owned(),
            source,
        })
}

impl Grub {
    /// `None` when the plan has no `provisioning.secure_boot`.
    ///
    /// # Errors
    /// [`Error::Read`] when the shim or GRUB cannot be read, [`Error::Script`] when a URL or
    /// argument cannot be written into a GRUB configuration.
    pub(crate) fn new(cx: &Context<'_>) -> Result<Option<Self>, Error> {
        let Some(files) = &cx.plan.provisioning.secure_boot else {
            return Ok(None);
        };
        let layout = cx.layout;
        let a = layout.artifacts();
        let mut configs = HashMap::new();
        for host in cx.plan.hosts.iter().filter(|h| h.secure_boot) {
            let config = grub::Config::new(
                grub::File::from_url(&layout.url(&a.kernel))?,
                vec![grub::File::from_url(&layout.url(&a.initramfs))?],
                host_args(cx.plan, layout, host)?,
            );
            configs.insert(host.mac, Bytes::from(config.render()));
        }
        Ok(Some(Grub {
            inner: Arc::new(Inner {
                shim: read(&files.shim)?,
                grub: read(&files.grub)?,
                configs,
                lookup: cx.lookup(),
            }),
        }))
    }
}

impl Inner {
    /// What `path` (relative, `a/b`) is for the host `mac` (from its lease), if ours.
    fn content(&self, path: &str, mac: Option<Mac>) -> Option<Bytes> {
        match path {
            Layout::SHIM_FILE => Some(self.shim.clone()),
            Layout::GRUB_FILE => Some(self.grub.clone()),
            _ => {
                let name = path.strip_prefix(Layout::GRUB_DIR)?.strip_prefix('/')?;
                let host = match ConfigName::parse(name)? {
                    ConfigName::Mac(m) => Mac(m),
                    ConfigName::IpPrefix(hex) if hex.len() == 8 => {
                        let ip = u32::from_str_radix(&hex, 16).ok()?;
                        self.lookup.mac_for(IpAddr::V4(Ipv4Addr::from(ip)))?
                    }
                    // A shortened address names a subnet, not a host.
                    ConfigName::IpPrefix(_) => return None,
                    ConfigName::Generic => mac?,
                };
                self.configs.get(&host).cloned()
            }
        }
    }
}

impl Component for Grub {
    fn routes(&self, routes: Routes) -> Routes {
        let file = |inner: Arc<Inner>| {
            move |req: RouteRequest| {
                let inner = inner.clone();
                async move {
                    let path = req.request.uri().path().trim_start_matches('/');
                    match inner.content(path, req.mac) {
                        Some(b) if path.ends_with(".efi") => reply::ok("application/efi", b),
                        Some(b) => reply::ok("text/plain; charset=utf-8", b),
                        None => reply::error(StatusCode::NOT_FOUND, "no such file for this host"),
                    }
                }
            }
        };
        routes
            .exact(format!("/{}", Layout::SHIM_FILE), file(self.inner.clone()))
            .exact(format!("/{}", Layout::GRUB_FILE), file(self.inner.clone()))
            .prefix(format!("/{}/", Layout::GRUB_DIR), file(self.inner.clone()))
    }

    fn tftp(&self) -> Option<Arc<dyn pxe_stack::tftp::Generate>> {
        let inner = self.inner.clone();
        Some(Arc::new(
            move |path: &str, _peer: SocketAddr, mac: Option<Mac>| inner.content(path, mac),
        ))
    }
}
