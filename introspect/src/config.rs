//! Where the answer comes from: the role's Ignition config, customised for the host.

use std::collections::BTreeMap;
use std::net::IpAddr;

use bytes::Bytes;
use pxe_stack::Mac;

use crate::error::Error;

/// What a config source knows about the host it renders for.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HostFacts {
    /// The host's primary MAC.
    pub mac: Mac,
    /// Every usable MAC of the host.
    pub macs: Vec<Mac>,
    /// The SMBIOS system UUID, when reported.
    pub uuid: Option<String>,
    /// The system serial number, when reported.
    pub serial: Option<String>,
    /// The sender's address.
    pub addr: IpAddr,
    /// The decided role.
    pub role: String,
    /// The host's name (`<role>-<n>`).
    pub hostname: String,
    /// The chosen install device.
    pub install_dev: String,
}

/// A rendered config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigAnswer {
    /// The Ignition JSON.
    pub body: Bytes,
    /// Its sha512 in hex, when the source computed one.
    pub sha512: Option<String>,
}

/// A source of per-host Ignition configs.
///
/// Implementations return [`Error::NotReady`] while a config is still being produced (the
/// installer retries on 503) and [`Error::UnknownRole`] for a role they do not serve.
pub trait ConfigSource: Send + Sync {
    /// The config for `host`.
    ///
    /// # Errors
    /// [`Error::NotReady`], [`Error::UnknownRole`] or [`Error::Config`].
    fn config_for(&self, host: &HostFacts) -> Result<ConfigAnswer, Error>;
}

/// A fixed config per role, served as is: for tests, and for pointer configs that need no
/// per-host change.
#[derive(Debug, Clone, Default)]
pub struct StaticConfigs(pub BTreeMap<String, Bytes>);

impl StaticConfigs {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) the config for `role`.
    pub fn with(mut self, role: &str, config: impl Into<Bytes>) -> Self {
        self.0.insert(role.to_owned(), config.into());
        self
    }
}

impl ConfigSource for StaticConfigs {
    fn config_for(&self, host: &HostFacts) -> Result<ConfigAnswer, Error> {
        self.0
            .get(&host.role)
            .map(|body| ConfigAnswer {
                body: body.clone(),
                sha512: None,
            })
            .ok_or_else(|| Error::UnknownRole {
                role: host.role.clone(),
            })
    }
}

impl<T: ConfigSource + ?Sized> ConfigSource for std::sync::Arc<T> {
    fn config_for(&self, host: &HostFacts) -> Result<ConfigAnswer, Error> {
        (**self).config_for(host)
    }
}
