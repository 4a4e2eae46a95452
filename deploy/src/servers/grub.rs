//! The Secure Boot path: the signed shim and GRUB over TFTP (and UEFI HTTP boot), and each
//! Secure Boot host's GRUB configuration under GRUB's prefix.
//!
//! The firmware verifies shim (signed by Microsoft's UEFI CA), shim verifies GRUB and GRUB has
//! shim verify the kernel, so the chain holds only signed code; the configuration and the
//! initramfs are data. GRUB loads the kernel and initramfs over TFTP from here too: Debian's
//! signed network GRUB has no `http` module built in, and Secure Boot forbids loading one.
//! They are read into memory at start (only when a host boots with Secure Boot). GRUB asks for `<prefix>/grub.cfg` (Debian's network GRUB; GRUB's own
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
use crate::plan::SecureBoot;

/// The shim, GRUB and the per-host configurations, read and rendered once at start.
pub(crate) struct Grub {
    inner: Arc<Inner>,
}

struct Inner {
    shim: Bytes,
    grub: Bytes,
    /// The kernel and initramfs by TFTP path: Debian's signed network GRUB has `tftp` but no
    /// `http` module, and Secure Boot forbids loading one.
    artifacts: HashMap<String, Bytes>,
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
        let Some(source) = &cx.plan.provisioning.secure_boot else {
            return Ok(None);
        };
        let layout = cx.layout;
        let a = layout.artifacts();
        let (shim, grub_efi) = match (source, &a.boot_chain) {
            (SecureBoot::Files(f), _) => (f.shim.as_path(), f.grub.as_path()),
            (SecureBoot::FromImage, Some(chain)) => (chain.shim.as_path(), chain.grub.as_path()),
            (SecureBoot::FromImage, None) => {
                return Err(Error::BootChain {
                    reason: "the plan takes them from the image, but the artifacts were not \
                             read from one (fetch them with fetch_artifacts)"
                        .into(),
                });
            }
        };
        // Secure Boot hosts boot over IPv4 (the plan refuses them on a v6-only network).
        let p = &cx.plan.provisioning;
        let server = match (p.address, &p.ipv6) {
            (Some(v4), _) => v4.to_string(),
            (None, Some(v6)) => format!("[{}]", v6.address),
            (None, None) => String::new(),
        };
        let tftp = |path: &str| grub::NetFile::new(grub::NetProtocol::Tftp, &server, path);
        let mut configs = HashMap::new();
        for host in cx.plan.hosts.iter().filter(|h| h.secure_boot) {
            let config = grub::Config::new(
                tftp(&a.kernel)?,
                vec![tftp(&a.initramfs)?],
                host_args(cx.plan, layout, host)?,
            );
            configs.insert(host.mac, Bytes::from(config.render()));
        }
        let mut artifacts = HashMap::new();
        if !configs.is_empty() {
            for path in [&a.kernel, &a.initramfs] {
                let rel = path.trim_start_matches('/');
                artifacts.insert(rel.to_owned(), read(&layout.http_root().join(rel))?);
            }
        }
        Ok(Some(Grub {
            inner: Arc::new(Inner {
                shim: read(shim)?,
                grub: read(grub_efi)?,
                artifacts,
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
            _ if self.artifacts.contains_key(path) => self.artifacts.get(path).cloned(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Artifacts, Generation, Plan};

    fn plan(dir: &Path, http_port: u16) -> Plan {
        std::fs::write(dir.join("shim.efi"), b"MZ shim").unwrap();
        std::fs::write(dir.join("grub.efi"), b"MZ grub").unwrap();
        Plan::parse(
            &format!(
                "[cluster]\nname = \"ocp\"\nbase_domain = \"example.com\"\nassets = \"/srv/ocp\"\n\
                 [images]\nstream = \"stream.json\"\n\
                 [provisioning]\ninterface = \"lo\"\naddress = \"172.22.0.1\"\nhttp_port = {http_port}\n\
                 [provisioning.secure_boot]\nshim = \"{d}/shim.efi\"\ngrub = \"{d}/grub.efi\"\n\
                 [[hosts]]\nname = \"m0\"\nmac = \"52:54:00:00:00:01\"\nrole = \"master\"\n\
                 address = \"172.22.0.10\"\nsecure_boot = true\n\
                 [[hosts]]\nname = \"m1\"\nmac = \"52:54:00:00:00:02\"\nrole = \"master\"\n",
                d = dir.display()
            ),
            "plan.toml",
        )
        .unwrap()
    }

    fn component(plan: &Plan, root: &Path, lookup: pxe_stack::dhcp::Leases) -> Grub {
        let artifacts = Artifacts {
            root: root.to_owned(),
            generation: Generation::Live,
            kernel: "/kernel".into(),
            initramfs: "/initramfs".into(),
            rootfs: Some("/rootfs".into()),
            image: Some("/image".into()),
            image_4k: None,
            boot_chain: None,
        };
        let layout = Layout::new(plan, &artifacts);
        let cx = Context {
            plan,
            layout: &layout,
            events: Arc::new(pxe_stack::Discard),
            leases: lookup,
            state: crate::state::for_tests(&layout),
            leases6: None,
        };
        Grub::new(&cx).unwrap().expect("the plan has secure_boot")
    }

    #[test]
    fn configs_by_mac_address_and_lease_only_for_secure_boot_hosts() {
        let dir = tempfile::tempdir().unwrap();
        let plan = plan(dir.path(), 80);
        std::fs::write(dir.path().join("kernel"), b"signed kernel").unwrap();
        std::fs::write(dir.path().join("initramfs"), b"initramfs").unwrap();
        let grub = component(
            &plan,
            dir.path(),
            pxe_stack::dhcp::Leases::new(Default::default()),
        );
        let inner = &grub.inner;
        let m0 = plan.hosts[0].mac;
        let by_mac = inner
            .content("grub/grub.cfg-01-52-54-00-00-00-01", None)
            .expect("m0's config");
        let text = std::str::from_utf8(&by_mac).unwrap();
        // The kernel comes over TFTP (Debian's signed GRUB has no http module).
        assert!(text.contains("linux '(tftp,172.22.0.1)/kernel'"), "{text}");
        assert!(
            text.contains(
                "'coreos.inst.ignition_url=http://172.22.0.1:80/ignition?mac=52-54-00-00-00-01'"
            ),
            "{text}"
        );
        assert_eq!(grub::parse(text).unwrap().initrds.len(), 1);
        // grub.cfg is the lease holder's; m1 is not a Secure Boot host.
        assert_eq!(
            inner.content("grub/grub.cfg", Some(m0)),
            Some(by_mac.clone())
        );
        assert_eq!(
            inner.content("grub/grub.cfg", Some(plan.hosts[1].mac)),
            None
        );
        assert_eq!(inner.content("grub/grub.cfg", None), None);
        assert_eq!(
            inner.content("grub/grub.cfg-01-52-54-00-00-00-02", None),
            None
        );
        // Shortened addresses name subnets, not hosts; other directories fall through.
        assert_eq!(inner.content("grub/grub.cfg-AC16", None), None);
        assert_eq!(inner.content("grub/x86_64-efi/grub.cfg", Some(m0)), None);
        assert_eq!(
            inner.content("shimx64.efi", None).as_deref(),
            Some(&b"MZ shim"[..])
        );
        assert_eq!(
            inner.content("grubx64.efi", None).as_deref(),
            Some(&b"MZ grub"[..])
        );
    }

    #[test]
    fn a_missing_shim_is_a_read_error() {
        let dir = tempfile::tempdir().unwrap();
        let plan = plan(dir.path(), 8080);
        std::fs::remove_file(dir.path().join("shim.efi")).unwrap();
        let artifacts = Artifacts {
            root: "/srv".into(),
            generation: Generation::Live,
            kernel: "/kernel".into(),
            initramfs: "/initramfs".into(),
            rootfs: Some("/rootfs".into()),
            image: Some("/image".into()),
            image_4k: None,
            boot_chain: None,
        };
        let layout = Layout::new(&plan, &artifacts);
        let cx = Context {
            plan: &plan,
            layout: &layout,
            events: Arc::new(pxe_stack::Discard),
            leases: pxe_stack::dhcp::Leases::new(Default::default()),
            state: crate::state::for_tests(&layout),
            leases6: None,
        };
        assert!(matches!(Grub::new(&cx), Err(Error::Read { .. })));
    }
}
