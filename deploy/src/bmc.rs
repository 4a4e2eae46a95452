//! The BMC drivers a plan can name (`ipmi`, `redfish`, `libvirt`), behind one `dyn Bmc`.

use bmc_power::Bmc;

use crate::error::Error;
use crate::plan::{BmcDriver, Host};

/// What a BMC did with an action, for the timeline, the status page and the metrics: a
/// verified success, an unverifiable one, or which kind of failure (`Lied` for a reply that
/// could not be read strictly or a read-back showing the action was not applied).
pub fn power_outcome<T>(result: &Result<T, bmc_power::Error>) -> pxe_stack::PowerOutcome {
    use bmc_power::Error as E;
    use pxe_stack::PowerOutcome as O;
    match result {
        Ok(_) => O::Verified,
        Err(E::NotVerifiable { .. }) => O::NotVerifiable,
        Err(E::Protocol { .. } | E::NotApplied { .. }) => O::Lied,
        Err(
            E::Authentication { .. }
            | E::Tls { .. }
            | E::Insecure { .. }
            | E::Refused { .. }
            | E::Unsupported { .. },
        ) => O::Refused,
        Err(E::Timeout { .. } | E::Transport { .. }) => O::Unreachable,
        Err(_) => O::Failed,
    }
}

/// Opens the BMC driver a host's plan entry names; `Ok(None)` when the host has no BMC.
///
/// IPMI and Redfish need no network traffic to open. A libvirt domain connects on first use
/// (connecting blocks, and this function is called from async code), so a wrong URI or domain
/// name shows up as the first operation's error.
///
/// # Errors
/// [`Error::Bmc`] when the driver rejects its configuration (a bad URL, CA bundle,
/// fingerprint or auth mode),
/// [`Error::Read`] when the Redfish CA file cannot be read, and [`Error::MissingFeature`] when
/// the driver is not built in (features `redfish` and `libvirt`).
pub fn open_bmc(host: &Host) -> Result<Option<Box<dyn Bmc>>, Error> {
    let Some(b) = &host.bmc else { return Ok(None) };
    let bmc_err = |source| Error::Bmc {
        host: host.name.clone(),
        source,
    };
    match b.driver {
        BmcDriver::Ipmi => {
            let config = bmc_power::IpmiConfig {
                address: b.address.clone(),
                credentials: bmc_power::Credentials {
                    username: b.user.clone(),
                    password: b.password().unwrap_or_default(),
                    kg: None,
                },
                version: match b.ipmi_interface.as_deref() {
                    None | Some("auto") => bmc_power::IpmiVersion::Auto,
                    Some("lanplus") => bmc_power::IpmiVersion::Lanplus,
                    Some("lan") => bmc_power::IpmiVersion::Lan,
                    Some(other) => {
                        return Err(bmc_err(bmc_power::Error::Config {
                            message: format!("unknown ipmi interface {other:?}"),
                        }));
                    }
                },
                allow_insecure_auth: b.allow_insecure_auth,
                ..Default::default()
            };
            Ok(Some(Box::new(
                bmc_power::Ipmi::new(config).map_err(bmc_err)?,
            )))
        }
        #[cfg(feature = "redfish")]
        BmcDriver::Redfish => {
            // The plan check allows at most one of fingerprint, CA file and insecure.
            let tls = match (&b.tls_fingerprint, &b.ca_file, b.insecure) {
                (Some(f), _, _) => bmc_power::Tls::Fingerprint(f.parse().map_err(
                    |e: bmc_power::BadFingerprint| {
                        bmc_err(bmc_power::Error::Config {
                            message: e.to_string(),
                        })
                    },
                )?),
                (None, Some(path), _) => {
                    bmc_power::Tls::CustomCa(std::fs::read(path).map_err(|source| Error::Read {
                        path: path.clone(),
                        source,
                    })?)
                }
                (None, None, true) => bmc_power::Tls::InsecureSkipVerify,
                (None, None, false) => bmc_power::Tls::System,
            };
            let auth = match b.auth.as_deref() {
                None | Some("auto") => bmc_power::RedfishAuth::Auto,
                Some("session") => bmc_power::RedfishAuth::Session,
                Some("basic") => bmc_power::RedfishAuth::Basic,
                Some(other) => {
                    return Err(bmc_err(bmc_power::Error::Config {
                        message: format!("unknown redfish auth {other:?}"),
                    }));
                }
            };
            let config = bmc_power::RedfishConfig {
                endpoint: b.address.clone(),
                username: b.user.clone(),
                password: b.password().unwrap_or_default(),
                system: b.system.clone(),
                tls,
                auth,
                ..Default::default()
            };
            Ok(Some(Box::new(
                bmc_power::Redfish::new(config).map_err(bmc_err)?,
            )))
        }
        #[cfg(feature = "libvirt")]
        BmcDriver::Libvirt => Ok(Some(Box::new(lazy::Libvirt::new(
            bmc_power::LibvirtConfig {
                uri: b.uri.clone().unwrap_or_else(|| "qemu:///system".into()),
                domain: b.address.clone(),
                ..Default::default()
            },
        )))),
        #[allow(
            unreachable_patterns,
            reason = "reachable unless every driver is built in"
        )]
        other => Err(Error::MissingFeature {
            what: format!("host {}'s {} bmc", host.name, other.name()),
            feature: other.name(),
        }),
    }
}

#[cfg(feature = "libvirt")]
mod lazy {
    use bmc_power::{Bmc, BmcFuture, BootOverride, LibvirtConfig, PowerAction, PowerState};
    use tokio::sync::OnceCell;

    /// A libvirt domain that connects on first use.
    pub(super) struct Libvirt {
        config: LibvirtConfig,
        conn: OnceCell<bmc_power::Libvirt>,
    }

    impl Libvirt {
        pub(super) fn new(config: LibvirtConfig) -> Self {
            Libvirt {
                config,
                conn: OnceCell::new(),
            }
        }

        async fn get(&self) -> bmc_power::Result<&bmc_power::Libvirt> {
            self.conn
                .get_or_try_init(|| bmc_power::Libvirt::connect(self.config.clone()))
                .await
        }
    }

    impl Bmc for Libvirt {
        fn power_status(&self) -> BmcFuture<'_, PowerState> {
            Box::pin(async move { self.get().await?.power_status().await })
        }
        fn power(&self, action: PowerAction) -> BmcFuture<'_, PowerState> {
            Box::pin(async move { self.get().await?.power(action).await })
        }
        fn set_boot(&self, boot: BootOverride) -> BmcFuture<'_, BootOverride> {
            Box::pin(async move { self.get().await?.set_boot(boot).await })
        }
        fn boot(&self) -> BmcFuture<'_, BootOverride> {
            Box::pin(async move { self.get().await?.boot().await })
        }
    }
}
