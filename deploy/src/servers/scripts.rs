//! The iPXE scripts: `/boot.ipxe` for every iPXE client, `/ipxe?mac=..` per host.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use http::StatusCode;
use ipxe_script::{ChainScript, CoreosArgs, Generation, HostScript, Ip, KernelArgs, Word};
use pxe_stack::Mac;
use pxe_stack::http::Routes;
use pxe_stack::route::{Params, RouteRequest, reply};

use super::{Component, Context, requested_mac};
use crate::error::Error;
use crate::layout::Layout;
use crate::plan::{Host, NetworkFamily, Plan, Role};

/// The per-host iPXE scripts: `/ipxe?mac=..` answers with the kernel, initramfs and arguments
/// for that host; unknown hosts get a 404 (iPXE's retry loop reports it on the console).
///
/// The arguments follow the installer generation of the artifacts (legacy `coreos.inst=yes`
/// or live), the metal image matches the host's sector size, and `coreos.inst.insecure` is
/// passed only when the plan says the installer cannot check the images' signatures.
///
/// # Errors
/// [`Error::Script`] when a URL or argument would break the script.
pub fn ipxe_scripts(plan: &Plan, layout: &Layout) -> Result<HashMap<Mac, Bytes>, Error> {
    let a = layout.artifacts();
    let mut out = HashMap::new();
    for host in &plan.hosts {
        let script = HostScript::new(
            Word::new(layout.url(&a.kernel))?,
            Word::new(layout.url(&a.initramfs))?,
            host_args(plan, layout, host)?,
        );
        out.insert(host.mac, Bytes::from(script.script()?.render()));
    }
    Ok(out)
}

/// A host's kernel command line, the same for iPXE and GRUB: the installer generation's
/// arguments, the metal image for its sector size, `coreos.inst.insecure` only when the plan
/// says the installer cannot check signatures, and the report URL.
pub(crate) fn host_args(plan: &Plan, layout: &Layout, host: &Host) -> Result<KernelArgs, Error> {
    let a = layout.artifacts();
    let sector_size = host.sector_size.unwrap_or(512);
    let mut args = CoreosArgs {
        generation: a.generation,
        install_dev: Some(host.install_dev.clone()),
        image_url: a.image_for(sector_size).map(|i| layout.url(i)),
        rootfs_url: a.rootfs.as_ref().map(|r| layout.url(r)),
        insecure: plan.images.installer_insecure(),
        consoles: vec!["ttyS0,115200".into()],
        extra: vec![format!("rhcos_metal.report={}", layout.url(Layout::REPORT))],
        network: installer_network(plan),
        ..Default::default()
    };
    match host.role {
        // The live installer takes the disk and image introspection chose from a config
        // file the hook fetches after posting the inventory; the legacy one only reads
        // its command line.
        Role::Introspect if a.generation == Generation::Live => {
            args.introspection_endpoint = Some(layout.url(Layout::INTROSPECTION));
            args.install_dev = None;
            args.image_url = None;
            args.extra.push(format!(
                "rhcos_metal.install_config={}",
                layout.install_config_url(host.mac)
            ));
        }
        Role::Introspect => {
            args.introspection_endpoint = Some(layout.url(Layout::INTROSPECTION));
        }
        _ => args.ignition_url = Some(layout.ignition_url(host.mac)),
    }
    Ok(args.build()?)
}

/// How the installer's initramfs brings the network up (dracut's `ip=`, read by
/// NetworkManager's initrd generator): nothing on an IPv4 network (the default, DHCPv4),
/// `ip=dhcp6` on an IPv6-only one, `ip=dhcp,dhcp6` on a dual-stack one (both, as OpenShift's
/// assisted installer and CoreOS's initramfs teardown expect).
pub(crate) fn installer_network(plan: &Plan) -> Option<Ip> {
    match plan.provisioning.family {
        NetworkFamily::Ipv4 => None,
        NetworkFamily::Ipv6 => Some(Ip::Dhcp6),
        NetworkFamily::DualStack => Some(Ip::DhcpAndDhcp6),
    }
}

/// One address family's boot script and per-host scripts.
struct FamilyScripts {
    chain: Bytes,
    hosts: HashMap<Mac, Bytes>,
}

impl FamilyScripts {
    fn new(plan: &Plan, layout: &Layout) -> Result<Self, Error> {
        let chain = ChainScript::per_host(&layout.url(Layout::HOST_SCRIPT))?
            .script()?
            .render();
        Ok(FamilyScripts {
            chain: Bytes::from(chain),
            hosts: ipxe_scripts(plan, layout)?,
        })
    }
}

/// The boot script and the per-host scripts, rendered once at start. On a dual-stack network
/// a client asking over IPv6 gets URLs on the IPv6 address, one asking over IPv4 the IPv4 ones:
/// each stays on the family it booted on.
pub(crate) struct Scripts {
    main: Arc<FamilyScripts>,
    v6: Option<Arc<FamilyScripts>>,
}

impl Scripts {
    pub(crate) fn new(cx: &Context<'_>) -> Result<Self, Error> {
        let v6 = match cx.layout.ipv6() {
            Some(v6) if v6.base_url() != cx.layout.base_url() => {
                Some(Arc::new(FamilyScripts::new(cx.plan, &v6)?))
            }
            _ => None,
        };
        Ok(Scripts {
            main: Arc::new(FamilyScripts::new(cx.plan, cx.layout)?),
            v6,
        })
    }
}

/// The scripts for a client at `req.peer`.
fn for_peer(scripts: &Scripts, req: &RouteRequest) -> Arc<FamilyScripts> {
    match (&scripts.v6, req.peer.ip().to_canonical()) {
        (Some(v6), std::net::IpAddr::V6(_)) => v6.clone(),
        _ => scripts.main.clone(),
    }
}

impl Component for Scripts {
    fn routes(&self, routes: Routes) -> Routes {
        let scripts = Arc::new(Scripts {
            main: self.main.clone(),
            v6: self.v6.clone(),
        });
        let chain = scripts.clone();
        routes
            .exact(Layout::BOOT_SCRIPT, move |req: RouteRequest| {
                let chain = for_peer(&chain, &req).chain.clone();
                async move { reply::ok("text/plain; charset=utf-8", chain) }
            })
            .exact(Layout::HOST_SCRIPT, move |req: RouteRequest| {
                let family = for_peer(&scripts, &req);
                async move {
                    let Ok(params) = Params::of(&req.request) else {
                        return reply::error(StatusCode::BAD_REQUEST, "unreadable query");
                    };
                    match requested_mac(&params, &req).and_then(|m| family.hosts.get(&m).cloned()) {
                        Some(s) => reply::ok("text/plain; charset=utf-8", s),
                        None => reply::error(StatusCode::NOT_FOUND, "no script for this host"),
                    }
                }
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Artifacts;

    fn plan(family: &str) -> Plan {
        let (v4, host_v4) = match family {
            "ipv6" => ("", ""),
            _ => ("address = \"172.22.0.1\"\n", "address = \"172.22.0.10\"\n"),
        };
        let v6 = match family {
            "ipv4" => "",
            _ => "[provisioning.ipv6]\naddress = \"fd00:22::1\"\n",
        };
        let v6_host = match family {
            "ipv4" => "",
            _ => "ipv6 = \"fd00:22::10\"\n",
        };
        Plan::parse(
            &format!(
                "[cluster]\nname = \"ocp\"\nbase_domain = \"example.com\"\nassets = \"/srv/ocp\"\n\
                 [images]\nstream = \"stream.json\"\n\
                 [provisioning]\ninterface = \"eno2\"\nfamily = \"{family}\"\n{v4}{v6}\
                 [[hosts]]\nname = \"master-0\"\nmac = \"52:54:00:12:60:01\"\nrole = \"master\"\n\
                 {host_v4}{v6_host}"
            ),
            "plan.toml",
        )
        .unwrap()
    }

    fn layout(plan: &Plan) -> Layout {
        Layout::new(
            plan,
            &Artifacts {
                rootfs: Some("/r".into()),
                image: Some("/m".into()),
                ..Artifacts::for_tests("/var/cache/rhcos-metal")
            },
        )
    }

    /// The installer's `ip=` follows the family, and every URL brackets an IPv6 address.
    #[test]
    fn kernel_arguments_by_address_family() {
        let p = plan("ipv4");
        let args = host_args(&p, &layout(&p), &p.hosts[0]).unwrap();
        assert_eq!(
            args.get("ip"),
            None,
            "IPv4 plans are unchanged: DHCPv4 by default"
        );
        assert_eq!(args.get("rd.neednet"), None);

        let p = plan("ipv6");
        let args = host_args(&p, &layout(&p), &p.hosts[0]).unwrap();
        assert_eq!(args.get("ip"), Some(Some("dhcp6")));
        assert_eq!(args.get("rd.neednet"), Some(Some("1")));
        assert_eq!(
            args.get("coreos.inst.ignition_url"),
            Some(Some(
                "http://[fd00:22::1]:8080/ignition?mac=52-54-00-12-60-01"
            ))
        );
        assert_eq!(
            args.get("coreos.live.rootfs_url"),
            Some(Some("http://[fd00:22::1]:8080/r"))
        );

        let p = plan("dual-stack");
        let l = layout(&p);
        let over_v4 = host_args(&p, &l, &p.hosts[0]).unwrap();
        let over_v6 = host_args(&p, &l.ipv6().unwrap(), &p.hosts[0]).unwrap();
        for args in [&over_v4, &over_v6] {
            assert_eq!(args.get("ip"), Some(Some("dhcp,dhcp6")));
        }
        assert_eq!(
            over_v4.get("coreos.inst.image_url"),
            Some(Some("http://172.22.0.1:8080/m"))
        );
        assert_eq!(
            over_v6.get("coreos.inst.image_url"),
            Some(Some("http://[fd00:22::1]:8080/m"))
        );
    }
}
