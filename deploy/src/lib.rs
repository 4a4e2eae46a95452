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
//! - `postgres`: `[state] backend = "postgres"`: the inventory, the introspection decisions,
//!   every server's events (`PgState`, tokio-postgres with rustls) and the DHCPv4 and DHCPv6
//!   leases (pxe-stack's `PgLeaseStore`) in one PostgreSQL database several servers share.
//! - `lab`: [`lab`], a throwaway lab of QEMU VMs behind ipmi_sim BMCs on this machine (root only).
//!
//! # Key types
//! - [`Plan`]: the deployment file. Mistakes are reported with the key path that holds them.
//!   Its provisioning network is IPv4 (the default), IPv6-only or dual-stack ([`NetworkFamily`],
//!   [`Ipv6Network`]): DHCPv6 with reservations by MAC and managed router advertisements, TFTP
//!   and HTTP on each address, `ip=dhcp6` for the installer.
//! - [`Timeline`]: one row per host, built from the DHCP, TFTP, HTTP, Ignition, introspection
//!   and BMC events, with a plain-text summary table.
//! - [`run`] (feature `run`): the deployment, given [`Artifacts`] from [`fetch_artifacts`].
//! - [`lab::Lab`] (feature `lab`): throwaway VMs to deploy instead of hardware.
//!
//! # Example
//! ```
//! use rhcos_deploy::{Plan, Role};
//!
//! let plan = Plan::parse(r#"
//!     [cluster]
//!     name = "ocp"
//!     base_domain = "example.com"
//!     assets = "/srv/ocp"
//!     [images]
//!     stream = "file:///srv/rhcos/stream.json"
//!     [provisioning]
//!     interface = "eno2"
//!     address = "172.22.0.1"
//!     dhcp_range = ["172.22.0.100", "172.22.0.199"]
//!     [[hosts]]
//!     name = "master-0"
//!     mac = "52:54:00:12:60:01"
//!     role = "master"
//! "#, "plan.toml")?;
//! assert_eq!(plan.hosts[0].role, Role::Master);
//!
//! // A mistake names the key that holds it.
//! let bad = Plan::parse(r#"
//!     [cluster]
//!     name = "ocp"
//!     base_domain = "example.com"
//!     assets = "/srv/ocp"
//!     [images]
//!     stream = "stream.json"
//!     [provisioning]
//!     interface = "eno2"
//!     address = "172.22.0.1"
//!     [[hosts]]
//!     name = "master-0"
//!     mac = "52:54:00:12:60:zz"
//!     role = "master"
//! "#, "plan.toml").unwrap_err();
//! assert!(bad.to_string().contains("hosts[0].mac"), "{bad}");
//!
//! // IPv6 only: no IPv4 address anywhere; hosts are reserved by MAC.
//! let v6 = Plan::parse(r#"
//!     [cluster]
//!     name = "ocp"
//!     base_domain = "example.com"
//!     assets = "/srv/ocp"
//!     [images]
//!     stream = "stream.json"
//!     [provisioning]
//!     interface = "eno2"
//!     family = "ipv6"
//!     [provisioning.ipv6]
//!     address = "fd00:22::1"
//!     dhcp_range = ["fd00:22::100", "fd00:22::1ff"]
//!     [[hosts]]
//!     name = "master-0"
//!     mac = "52:54:00:12:60:01"
//!     role = "master"
//!     ipv6 = "fd00:22::10"
//! "#, "plan.toml")?;
//! assert_eq!(v6.provisioning.family, rhcos_deploy::NetworkFamily::Ipv6);
//! assert_eq!(v6.provisioning.address, None);
//! # Ok::<(), rhcos_deploy::PlanError>(())
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
mod artifacts;
#[cfg(feature = "run")]
mod bmc;
#[cfg(feature = "libvirt")]
mod bootstrap;
mod error;
#[cfg(feature = "lab")]
pub mod lab;
#[cfg(feature = "run")]
mod layout;
mod plan;
#[cfg(feature = "run")]
mod run;
#[cfg(feature = "run")]
mod servers;
#[cfg(feature = "run")]
mod state;
#[cfg(feature = "run")]
mod status;
mod timeline;

#[cfg(feature = "run")]
pub use artifacts::{Artifacts, ReleaseBootChain, Selection, fetch_artifacts, select_artifacts};
#[cfg(feature = "run")]
pub use bmc::{open_bmc, power_outcome};
#[cfg(feature = "libvirt")]
pub use bootstrap::{Applied, apply_bootstrap, remove_bootstrap};
pub use error::Error;
/// The installer generation of [`Artifacts`], from `ipxe-script`.
#[cfg(feature = "run")]
pub use ipxe_script::Generation;
#[cfg(feature = "run")]
pub use layout::Layout;
pub use plan::{
    BmcDriver, BmcSpec, Bootstrap, Cluster, ClusterDns, DnsRecord, Host, IgnitionVia, Images,
    InstallFrom, Ipv6Network, NetworkFamily, Plan, PlanError, Provisioning, Role, SecureBoot,
    SecureBootFiles, StateBackend, StateConfig, StatusConfig, Timeouts, bootstrap_cluster,
    bootstrap_ignition,
};
/// The MAC type of [`Host::mac`] and the plan's other MACs, from pxe-stack, so a consumer need
/// not depend on pxe-stack to name it.
///
/// ```
/// let mac: rhcos_deploy::Mac = "52-54-00-00-00-10".parse()?;
/// assert_eq!(mac.to_string(), "52:54:00:00:00:10");
/// # Ok::<(), rhcos_deploy::ParseMacError>(())
/// ```
pub use pxe_stack::Mac;
/// Why a string is not a [`Mac`], from pxe-stack.
pub use pxe_stack::ParseMacError;
/// How BIOS hosts chain into iPXE ([`Provisioning::chain`]) and what a DHCP lease belongs to
/// ([`Provisioning::lease_identity`]), from `pxe-stack`.
pub use pxe_stack::{ChainMode, LeaseIdentity};
#[cfg(feature = "run")]
pub use run::{RunReport, run, run_with_status};
#[cfg(feature = "run")]
pub use servers::{Servers, ipxe_scripts, serve_status, start_servers, start_servers_with_status};
#[cfg(feature = "postgres")]
pub use state::PgState;
#[cfg(feature = "run")]
pub use state::{FilesState, SharedEvent, StateError, StateStore, open_state};
#[cfg(feature = "run")]
pub use status::{BmcState, HostState, HostStatus, LastEvent, PhaseTime, Status, StatusSnapshot};
pub use timeline::{HostTimeline, Phase, Span, Timeline};
