//! The iPXE scripts: `/boot.ipxe` for every iPXE client, `/ipxe?mac=..` per host.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use http::StatusCode;
use ipxe_script::{ChainScript, CoreosArgs, Generation, HostScript, KernelArgs, Word};
use pxe_stack::Mac;
use pxe_stack::http::Routes;
use pxe_stack::route::{Params, RouteRequest, reply};

use super::{Component, Context, requested_mac};
use crate::error::Error;
use crate::layout::Layout;
use crate::plan::{Host, Plan, Role};

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

/// The boot script and the per-host scripts, rendered once at start.
pub(crate) struct Scripts {
    chain: Bytes,
    hosts: Arc<HashMap<Mac, Bytes>>,
}

impl Scripts {
    pub(crate) fn new(cx: &Context<'_>) -> Result<Self, Error> {
        let chain = ChainScript::per_host(&cx.layout.url(Layout::HOST_SCRIPT))?
            .script()?
            .render();
        Ok(Scripts {
            chain: Bytes::from(chain),
            hosts: Arc::new(ipxe_scripts(cx.plan, cx.layout)?),
        })
    }
}

impl Component for Scripts {
    fn routes(&self, routes: Routes) -> Routes {
        let chain = self.chain.clone();
        let hosts = self.hosts.clone();
        routes
            .exact(Layout::BOOT_SCRIPT, move |_req: RouteRequest| {
                let chain = chain.clone();
                async move { reply::ok("text/plain; charset=utf-8", chain) }
            })
            .exact(Layout::HOST_SCRIPT, move |req: RouteRequest| {
                let hosts = hosts.clone();
                async move {
                    let Ok(params) = Params::of(&req.request) else {
                        return reply::error(StatusCode::BAD_REQUEST, "unreadable query");
                    };
                    match requested_mac(&params, &req).and_then(|m| hosts.get(&m).cloned()) {
                        Some(s) => reply::ok("text/plain; charset=utf-8", s),
                        None => reply::error(StatusCode::NOT_FOUND, "no script for this host"),
                    }
                }
            })
    }
}
