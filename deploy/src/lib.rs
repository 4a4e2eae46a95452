//! The whole bare-metal RHCOS deployment as a library.
//!
//! The runbook this replaces: fetch RHCOS images, define a libvirt network and bootstrap VM, run
//! dnsmasq and nginx, write iPXE scripts, copy Ignition files, power servers on over IPMI, and
//! watch. Here a [`Plan`] (a TOML file) says what to deploy; the deployment composes the
//! workspace's crates and follows every host on a timeline.
//!
//! # Feature flags
//! - `run`: the deployment itself ([`run`], [`fetch_artifacts`], [`start_servers`],
//!   [`open_bmc`] with IPMI BMCs).
//! - `redfish`: Redfish BMCs in [`open_bmc`] (reqwest with rustls).
//! - `libvirt`: libvirt domains as BMCs in [`open_bmc`], and [`apply_bootstrap`] /
//!   [`remove_bootstrap`] for the bootstrap VM (needs libvirt-dev to build).
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

// The crate docs link the feature-gated items; without every feature those links dangle.
#![cfg_attr(
    not(all(feature = "lab", feature = "redfish", feature = "libvirt")),
    allow(rustdoc::broken_intra_doc_links)
)]

#[cfg(feature = "run")]
mod bmc;
mod bootstrap;
#[cfg(feature = "lab")]
pub mod lab;
mod plan;
#[cfg(feature = "run")]
mod run;
mod timeline;

#[cfg(feature = "run")]
pub use bmc::open_bmc;
#[cfg(feature = "libvirt")]
pub use bootstrap::{Applied, apply_bootstrap, remove_bootstrap};
pub use bootstrap::{bootstrap_cluster, bootstrap_ignition};
pub use plan::{
    Bmc, BmcDriver, Bootstrap, Chain, Cluster, Host, IgnitionVia, Images, Plan, PlanError,
    Provisioning, Role, Timeouts,
};
#[cfg(feature = "run")]
pub use run::{
    Artifacts, DeployError, Outcome, Servers, fetch_artifacts, ipxe_scripts, run, start_servers,
};
pub use timeline::{HostTimeline, Phase, Span, Timeline};

/// Whether this build includes the [`lab`] module.
pub fn lab_feature_enabled() -> bool {
    cfg!(feature = "lab")
}
