//! The whole bare-metal RHCOS deployment as a library.
//!
//! The runbook this replaces: fetch RHCOS images, define a libvirt network and bootstrap VM, run
//! dnsmasq and nginx, write iPXE scripts, copy Ignition files, power servers on over IPMI, and
//! watch. Here a [`Plan`] (a TOML file) says what to deploy; the deployment composes the
//! workspace's crates and follows every host on a timeline.
//!
//! # Feature flags
//! - `lab`: [`lab`], a throwaway lab of QEMU VMs behind ipmi_sim BMCs on this machine (root only).
//!
//! # Example
//! ```
//! assert_eq!(rhcos_deploy::lab_feature_enabled(), cfg!(feature = "lab"));
//! ```
//!
//! # What it does not do
//! It does not run `openshift-install`, wait for the cluster to finish bootstrapping, or manage
//! DNS outside the libvirt network.

#[cfg(feature = "lab")]
pub mod lab;
mod plan;
#[cfg(feature = "run")]
mod run;
mod timeline;

pub use plan::{
    Bmc, BmcDriver, Bootstrap, Chain, Cluster, Host, Images, Plan, PlanError, Provisioning, Role,
    Timeouts,
};
#[cfg(feature = "run")]
pub use run::{
    Artifacts, DeployError, Outcome, Servers, fetch_artifacts, open_bmc, run, start_servers,
};
pub use timeline::{HostTimeline, Phase, Span, Timeline};

/// Whether this build includes the [`lab`] module.
pub fn lab_feature_enabled() -> bool {
    cfg!(feature = "lab")
}
