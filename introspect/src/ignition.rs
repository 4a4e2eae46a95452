//! A [`ConfigSource`] backed by ignition-serve (feature `ignition`).

use std::sync::Arc;

use ignition_serve::{Mode, Query, RoleState, Route, Store};

use crate::config::{ConfigAnswer, ConfigSource, HostFacts};
use crate::error::Error;

enum Snapshot {
    Fixed(Arc<Store>),
    Live(Route),
}

/// Renders the decided role's config from an `ignition_serve::Store` for each host.
///
/// For a host the adapter looks up the store's most specific group for the host's MAC, SMBIOS
/// UUID and serial, hostname and decided role. That group's customization is applied when its
/// profile names the decided role (a group for another role is ignored: the decision wins).
/// Unless the customization sets a hostname, the decided `<role>-<n>` name is written to
/// `/etc/hostname` ([`IgnitionConfigs::hostnames`] turns that off). A store that is not ready,
/// or a role declared but not loaded yet, gives [`Error::NotReady`] (a 503 the installer
/// retries); an unknown role gives [`Error::UnknownRole`].
pub struct IgnitionConfigs {
    store: Snapshot,
    mode: Mode,
    hostnames: bool,
}

impl std::fmt::Debug for IgnitionConfigs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IgnitionConfigs")
            .field("mode", &self.mode)
            .field("hostnames", &self.hostnames)
            .finish_non_exhaustive()
    }
}

impl IgnitionConfigs {
    /// Serves from a fixed store, merged configs, hostnames on.
    pub fn new(store: Store) -> Self {
        IgnitionConfigs {
            store: Snapshot::Fixed(Arc::new(store)),
            mode: Mode::Merged,
            hostnames: true,
        }
    }

    /// Serves from the store of an ignition-serve [`Route`], seeing its updates (a role config
    /// loaded later, the store marked ready).
    pub fn from_route(route: Route) -> Self {
        IgnitionConfigs {
            store: Snapshot::Live(route),
            mode: Mode::Merged,
            hostnames: true,
        }
    }

    /// Merged configs (the default) or pointer configs.
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// Whether to write the decided hostname when the customization sets none.
    pub fn hostnames(mut self, on: bool) -> Self {
        self.hostnames = on;
        self
    }

    fn store(&self) -> Arc<Store> {
        match &self.store {
            Snapshot::Fixed(s) => s.clone(),
            Snapshot::Live(r) => r.store(),
        }
    }
}

impl ConfigSource for IgnitionConfigs {
    fn config_for(&self, host: &HostFacts) -> Result<ConfigAnswer, Error> {
        let store = self.store();
        let role = host.role.clone();
        if !store.is_ready() {
            return Err(Error::NotReady { role });
        }
        let config = match store.roles().find(|(name, _)| *name == role) {
            Some((_, RoleState::Ready(c))) => c.clone(),
            Some((_, _)) => return Err(Error::NotReady { role }),
            None => return Err(Error::UnknownRole { role }),
        };
        let query = Query {
            mac: Some(host.mac),
            uuid: host.uuid.clone(),
            serial: host.serial.clone(),
            hostname: Some(host.hostname.clone()),
            role: Some(role.clone()),
            ..Query::default()
        };
        let mut custom = store
            .select(&query)
            .filter(|g| g.profile.role == role)
            .map(|g| g.profile.customization.clone())
            .unwrap_or_default();
        if self.hostnames && custom.hostname.is_none() {
            custom.hostname = Some(host.hostname.clone());
        }
        let rendered =
            ignition_serve::render_for_host(&config, &custom, &self.mode).map_err(|e| {
                Error::Config {
                    role: role.clone(),
                    message: e.to_string(),
                }
            })?;
        Ok(ConfigAnswer {
            body: rendered.bytes,
            sha512: Some(rendered.sha512),
        })
    }
}
