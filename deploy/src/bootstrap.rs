//! The bootstrap VM and its network, defined, started and removed through libvirt (feature
//! `libvirt`). The layout itself is pure and lives with the plan ([`crate::bootstrap_cluster`]).

use libvirt_templates::{Defined, Libvirt};

use crate::error::Error;
use crate::plan::{Plan, bootstrap_cluster, bootstrap_ignition};

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
