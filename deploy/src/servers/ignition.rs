//! Ignition for hosts with a fixed role (`/ignition`), and introspection for the others
//! (`/introspection`, `/inventory`): both answer with the role's config from one store. An
//! introspected host then fetches its coreos-installer config (`/install-config`): the disk
//! introspection chose and the metal image for its sector size.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use ignition_serve::{Group, Profile, Selector};
use pxe_stack::Mac;
use pxe_stack::http::Routes;
use pxe_stack::route::{Params, RouteRequest, reply};
use rhcos_introspect::Introspector;

use super::{Component, Context, requested_mac};
use crate::error::Error;
use crate::layout::Layout;
use crate::plan::Role;

/// The Ignition store, its route and the introspection service built on it.
pub(crate) struct Ignition {
    route: ignition_serve::Route,
    introspector: Introspector,
    install: Arc<InstallConfigs>,
}

/// What an introspected host's install config is made of, besides the introspection answer.
struct InstallConfigs {
    /// The plan's sector size for each introspected host (`None`: introspection decides).
    hosts: HashMap<Mac, Option<u32>>,
    /// The 512-byte and 4k image URLs, unless live installs copy the live system.
    image: Option<String>,
    image_4k: Option<String>,
}

impl InstallConfigs {
    /// The YAML for coreos-installer's `/etc/coreos/installer.d/`, or why there is none yet.
    fn render(
        &self,
        introspector: &Introspector,
        mac: Mac,
    ) -> Result<String, (StatusCode, &'static str)> {
        let planned = self.hosts.get(&mac).ok_or((
            StatusCode::NOT_FOUND,
            "not an introspected host of this plan",
        ))?;
        let device = introspector
            .install_dev(mac)
            .ok_or((StatusCode::SERVICE_UNAVAILABLE, "not introspected yet"))?;
        let sector_size = planned.or(introspector.sector_size(mac)).unwrap_or(512);
        let mut yaml = format!(
            "# rhcos-metal: the disk and image introspection chose for {}\n",
            mac.hexhyp()
        );
        let _ = writeln!(yaml, "dest-device: {device}");
        if self.image.is_some() {
            let image = match sector_size {
                4096 => self.image_4k.as_ref(),
                _ => self.image.as_ref(),
            }
            .ok_or((
                StatusCode::CONFLICT,
                "the disk has 4096-byte sectors and the metadata has no 4k image",
            ))?;
            let _ = writeln!(yaml, "image-url: {image}");
        }
        Ok(yaml)
    }
}

impl Ignition {
    pub(crate) fn new(cx: &Context<'_>) -> Result<Self, Error> {
        // One group per host with a fixed role.
        let mut store = ignition_serve::Store::load_dir(&cx.plan.cluster.assets)?;
        for h in &cx.plan.hosts {
            if let Some(role) = h.role.asset() {
                store.add_group(Group {
                    id: h.name.clone(),
                    selector: Selector {
                        mac: Some(h.mac),
                        ..Default::default()
                    },
                    profile: Profile {
                        role: role.into(),
                        ..Default::default()
                    },
                })?;
            }
        }
        let route = ignition_serve::Route::new(
            store,
            cx.lookup(),
            cx.events.clone(),
            ignition_serve::Options::default(),
        );
        // The plan's rules decide introspected hosts' roles and disks.
        let settings = rhcos_introspect::Settings {
            rules: cx.plan.introspection.clone(),
            ..Default::default()
        };
        let introspector = Introspector::builder(settings)
            .lookup(cx.lookup())
            .events(cx.events.clone())
            .build(
                rhcos_introspect::IgnitionConfigs::from_route(route.clone()),
                rhcos_introspect::FileStore::new(cx.layout.inventory_dir())?,
            )?;
        let a = cx.layout.artifacts();
        let install = Arc::new(InstallConfigs {
            hosts: cx
                .plan
                .hosts
                .iter()
                .filter(|h| h.role == Role::Introspect)
                .map(|h| (h.mac, h.sector_size))
                .collect(),
            image: a.image.as_ref().map(|i| cx.layout.url(i)),
            image_4k: a.image_4k.as_ref().map(|i| cx.layout.url(i)),
        });
        Ok(Ignition {
            route,
            introspector,
            install,
        })
    }

    /// The introspection service, for the install disks it chose.
    pub(crate) fn introspector(&self) -> Introspector {
        self.introspector.clone()
    }
}

impl Component for Ignition {
    fn routes(&self, routes: Routes) -> Routes {
        let (install, introspector) = (self.install.clone(), self.introspector.clone());
        routes
            .exact(Layout::INSTALL_CONFIG, move |req: RouteRequest| {
                let (install, introspector) = (install.clone(), introspector.clone());
                async move {
                    let mac = match Params::of(&req.request) {
                        Ok(params) => requested_mac(&params, &req),
                        Err(_) => req.mac,
                    };
                    let Some(mac) = mac else {
                        return reply::error(StatusCode::BAD_REQUEST, "need mac");
                    };
                    match install.render(&introspector, mac) {
                        Ok(yaml) => reply::ok("application/yaml", yaml),
                        Err((StatusCode::SERVICE_UNAVAILABLE, why)) => {
                            reply::not_ready(Duration::from_secs(2), why)
                        }
                        Err((status, why)) => reply::error(status, why),
                    }
                }
            })
            .prefix(Layout::IGNITION, self.route.clone())
            .exact_with_limit(
                Layout::INTROSPECTION,
                self.introspector.body_limit(),
                Arc::new(self.introspector.clone()),
            )
            .prefix(Layout::INVENTORY, self.introspector.clone())
    }
}
