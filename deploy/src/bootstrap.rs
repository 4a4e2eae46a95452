//! The bootstrap VM: the plan's `[bootstrap]` laid out as the libvirt cluster network and the
//! bootstrap domain, and (feature `libvirt`) defined, started and removed through libvirt.

use std::path::PathBuf;

use libvirt_templates::{Cluster, ClusterSpec, Error as Layout, Node};

use crate::plan::{IgnitionVia, Plan, PlanError};

/// The Ignition config the bootstrap VM gets: `bootstrap.ignition`, or `bootstrap.ign` in the
/// asset directory made absolute (libvirt needs absolute paths). `None` without `[bootstrap]`.
pub fn bootstrap_ignition(plan: &Plan) -> Option<PathBuf> {
    let b = plan.bootstrap.as_ref()?;
    let path = b
        .ignition
        .clone()
        .unwrap_or_else(|| plan.cluster.assets.join("bootstrap.ign"));
    Some(std::path::absolute(&path).unwrap_or(path))
}

/// Lays out the cluster network (NAT, the cluster's DNS domain with `api` and `api-int` on the
/// bootstrap VM, a DHCP reservation for it) and the bootstrap domain, whose Ignition config
/// reaches QEMU through fw_cfg. Pure: nothing is read or touched. `Ok(None)` without
/// `[bootstrap]`.
///
/// # Errors
/// [`PlanError::Invalid`] with the key path of the offending value (`bootstrap.address` outside
/// the cluster network, `bootstrap.image` not absolute, ...). [`Plan::load`] already checks this.
pub fn bootstrap_cluster(plan: &Plan) -> Result<Option<Cluster>, PlanError> {
    layout(plan, "<plan>")
}

pub(crate) fn layout(plan: &Plan, file: &str) -> Result<Option<Cluster>, PlanError> {
    let Some(b) = &plan.bootstrap else {
        return Ok(None);
    };
    let mut spec =
        ClusterSpec::new(&plan.cluster.name, &plan.cluster.base_domain).with_counts(0, 0);
    spec.network_name = b.network_name.clone();
    spec.bridge = b.bridge.clone();
    spec.address = b.network_address;
    spec.prefix = b.network_prefix;
    spec.dhcp_range = b.dhcp_range;
    spec.bootstrap = Node {
        name: None,
        mac: Some(b.mac),
        ip: Some(b.address),
    };
    spec.vm.name = b.name.clone();
    spec.vm.kind = b.domain_type;
    spec.vm.memory_mib = b.memory_mib;
    spec.vm.vcpus = b.vcpus;
    spec.vm.image = b.image.display().to_string();
    spec.vm.ignition = bootstrap_ignition(plan).map(|p| p.display().to_string());
    spec.vm.ignition_via = match b.ignition_via {
        IgnitionVia::Fwcfg => libvirt_templates::IgnitionVia::Fwcfg,
        IgnitionVia::QemuCommandline => libvirt_templates::IgnitionVia::QemuCommandline,
    };
    spec.build().map(Some).map_err(|e| PlanError::Invalid {
        file: file.to_owned(),
        path: key_path(&e).to_owned(),
        message: e.to_string(),
    })
}

/// The plan key a layout error is about.
fn key_path(e: &Layout) -> &'static str {
    match e {
        Layout::InvalidName { field, .. } => match *field {
            "cluster name" => "cluster.name",
            "base domain" | "cluster domain" => "cluster.base_domain",
            "network name" => "bootstrap.network_name",
            "domain name" => "bootstrap.name",
            f if f.contains("bridge") => "bootstrap.bridge",
            _ => "bootstrap",
        },
        Layout::InvalidMac { .. } | Layout::DuplicateMac { .. } => "bootstrap.mac",
        Layout::InvalidSubnet { .. } => "bootstrap.network_address",
        Layout::InvalidDhcpRange { .. } => "bootstrap.dhcp_range",
        Layout::AddressOutsideNetwork { .. } | Layout::AddressInDhcpRange { .. } => {
            "bootstrap.address"
        }
        Layout::ZeroMemory { .. } => "bootstrap.memory_mib",
        Layout::ZeroVcpus { .. } => "bootstrap.vcpus",
        Layout::InvalidPath { field, .. } if *field == "image" => "bootstrap.image",
        Layout::InvalidPath { .. } => "bootstrap.ignition",
        _ => "bootstrap",
    }
}

#[cfg(feature = "libvirt")]
pub use apply::{Applied, apply_bootstrap, remove_bootstrap};

#[cfg(feature = "libvirt")]
mod apply {
    use libvirt_templates::{Defined, Libvirt};

    use super::{bootstrap_cluster, bootstrap_ignition};
    use crate::plan::Plan;
    use crate::run::Error;

    /// What [`apply_bootstrap`] did.
    #[derive(Debug, Clone, PartialEq, Eq)]
    #[non_exhaustive]
    pub struct Applied {
        /// The libvirt network's name.
        pub network: String,
        /// The bootstrap domain's name.
        pub domain: String,
        /// Whether the network was created or updated (a running network keeps its old
        /// configuration until restarted).
        pub network_change: Defined,
        /// Whether the domain was created or updated; `None` when it was already running and
        /// was left alone.
        pub domain_change: Option<Defined>,
    }

    /// Defines and starts the cluster network and the bootstrap VM from `[bootstrap]`, through
    /// `bootstrap.libvirt_uri`. `Ok(None)` without `[bootstrap]`.
    ///
    /// Idempotent: running it again updates the definitions and starts what is stopped; a
    /// bootstrap VM that is already running is left alone. When `bootstrap.ignition` is not
    /// set, `<cluster.assets>/bootstrap.ign` must exist (it is checked here, since QEMU would
    /// only fail at start); QEMU must be able to read it.
    ///
    /// Blocking (libvirt RPC; starting a domain can take seconds): from async code, call it
    /// inside `tokio::task::spawn_blocking`.
    ///
    /// # Errors
    /// [`Error::Plan`] for a layout the plan cannot give, [`Error::Read`] when the
    /// default Ignition file is missing, [`Error::Bootstrap`] when libvirt fails.
    pub fn apply_bootstrap(plan: &Plan) -> Result<Option<Applied>, Error> {
        let (Some(b), Some(cluster)) = (&plan.bootstrap, layout(plan)?) else {
            return Ok(None);
        };
        if b.ignition.is_none()
            && let Some(path) = bootstrap_ignition(plan)
            && let Err(source) = std::fs::metadata(&path)
        {
            return Err(Error::Read { path, source });
        }
        let lv = Libvirt::open(&b.libvirt_uri)?;
        let network = cluster.network.name.clone();
        let domain = cluster.bootstrap.name.clone();
        let network_change = lv.define_network(&cluster.network)?;
        lv.start_network(&network)?;
        let domain_change = if lv.domain_active(&domain)? == Some(true) {
            None
        } else {
            let defined = lv.define_domain(&cluster.bootstrap, false)?;
            lv.start_domain(&domain)?;
            Some(defined)
        };
        tracing::info!(%network, %domain, ?network_change, ?domain_change, "bootstrap vm up");
        Ok(Some(Applied {
            network,
            domain,
            network_change,
            domain_change,
        }))
    }

    /// Stops and undefines the bootstrap VM, then the cluster network; anything already gone
    /// is fine. Returns whether either existed. Blocking, as [`apply_bootstrap`].
    ///
    /// # Errors
    /// [`Error::Plan`] for a layout the plan cannot give, [`Error::Bootstrap`] when
    /// libvirt fails.
    pub fn remove_bootstrap(plan: &Plan) -> Result<bool, Error> {
        let (Some(b), Some(cluster)) = (&plan.bootstrap, layout(plan)?) else {
            return Ok(false);
        };
        let lv = Libvirt::open(&b.libvirt_uri)?;
        let existed = lv.domain_active(&cluster.bootstrap.name)?.is_some()
            || lv.network_active(&cluster.network.name)?.is_some();
        lv.remove(&cluster)?;
        Ok(existed)
    }

    fn layout(plan: &Plan) -> Result<Option<libvirt_templates::Cluster>, Error> {
        Ok(bootstrap_cluster(plan)?)
    }
}
