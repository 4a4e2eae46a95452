//! Ignition for hosts with a fixed role (`/ignition`), and introspection for the others
//! (`/introspection`, `/inventory`): both answer with the role's config from one store.

use std::sync::Arc;

use ignition_serve::{Group, Profile, Selector};
use pxe_stack::http::Routes;
use rhcos_introspect::Introspector;

use super::{Component, Context};
use crate::error::Error;
use crate::layout::Layout;

/// The Ignition store, its route and the introspection service built on it.
pub(crate) struct Ignition {
    route: ignition_serve::Route,
    introspector: Introspector,
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
        Ok(Ignition {
            route,
            introspector,
        })
    }

    /// The introspection service, for the install disks it chose.
    pub(crate) fn introspector(&self) -> Introspector {
        self.introspector.clone()
    }
}

impl Component for Ignition {
    fn routes(&self, routes: Routes) -> Routes {
        routes
            .prefix(Layout::IGNITION, self.route.clone())
            .exact_with_limit(
                Layout::INTROSPECTION,
                self.introspector.body_limit(),
                Arc::new(self.introspector.clone()),
            )
            .prefix(Layout::INVENTORY, self.introspector.clone())
    }
}
