//! Typed libvirt XML for an OpenShift/RHCOS cluster: the cluster network and the bootstrap VM.
//!
//! The seed runbook's step 4 hand-edited two libvirt templates: a NAT network carrying the
//! cluster's DNS names, SRV records, DHCP reservations and PXE boot file, and the bootstrap VM that
//! receives its Ignition config through QEMU's fw_cfg. This crate replaces both with
//!
//! - a serde model of the parts of libvirt's `<network>` ([`Network`]) and `<domain>`
//!   ([`Domain`]) documents those templates use, rendered and parsed with quick-xml;
//! - a checked builder, [`ClusterSpec`], whose [`build`](ClusterSpec::build) turns a cluster name,
//!   base domain, bootstrap node, masters and workers (MACs and addresses given or derived from a
//!   prefix) into both documents, rejecting bad input with a typed [`Error`] before any XML exists;
//! - with the `libvirt` feature, `Libvirt`: idempotent define/start/stop/undefine through
//!   libvirt itself.
//!
//! Ignition reaches the bootstrap VM either through `<qemu:commandline>` with
//! `-fw_cfg name=opt/com.coreos/config,file=...` (the seed's way) or through libvirt's native
//! `<sysinfo type='fwcfg'>` ([`IgnitionVia`]).
//!
//! # Example
//!
//! ```
//! use libvirt_templates::{ClusterSpec, Domain, IgnitionVia, Network};
//!
//! let mut spec = ClusterSpec::new("ocp4", "example.com").with_counts(3, 2);
//! spec.vm.image = "/var/lib/libvirt/images/ocp4-bootstrap.qcow2".into();
//! spec.vm.ignition = Some("/var/lib/libvirt/images/bootstrap.ign".into());
//! spec.vm.ignition_via = IgnitionVia::Fwcfg;
//! let cluster = spec.build()?;
//!
//! let network_xml = cluster.network.to_xml()?;
//! assert!(network_xml.contains("<hostname>api-int.ocp4.example.com</hostname>"));
//! let bootstrap_xml = cluster.bootstrap.to_xml()?;
//! assert!(bootstrap_xml.contains(r#"<entry name="opt/com.coreos/config""#));
//!
//! // Parsing gives the same model back.
//! assert_eq!(Network::from_xml(&network_xml)?.value, cluster.network);
//! assert_eq!(Domain::from_xml(&bootstrap_xml)?.value, cluster.bootstrap);
//!
//! // Bad input fails before any XML is produced.
//! let mut bad = spec.clone();
//! bad.masters[0].ip = Some("10.0.0.5".parse()?);
//! assert!(matches!(bad.build(), Err(libvirt_templates::Error::AddressOutsideNetwork { .. })));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Feature flags
//!
//! - `libvirt` (off by default): `Libvirt`, a blocking client over the `virt` crate. Building
//!   it needs `pkg-config` and `libvirt-dev` (>= 6.0); running it needs `libvirt0`. Its calls
//!   block on libvirt's RPC, so async callers run them on `spawn_blocking`.
//!
//! # What this crate does not do
//!
//! - It models only what cluster networks and bootstrap VMs use; parsing a richer document keeps
//!   what it can and lists the rest in [`Parsed::ignored`]. Re-rendering such a document would
//!   drop those parts, so check `ignored` first.
//! - It does not create disk images, copy Ignition files or set SELinux labels on them
//!   (`svirt_home_t`); the paths must already be valid on the libvirt host.
//! - The builder lays out IPv4 networks only, and no `*.apps` wildcard record: libvirt's `<dns>`
//!   cannot express wildcards.
//! - Domains for the masters and workers are not produced: on metal they PXE-boot, and the lab
//!   builds its own VMs.
#![warn(missing_docs)]

mod cluster;
mod domain;
mod error;
#[cfg(feature = "libvirt")]
mod libvirt;
mod network;
mod xml;

pub use cluster::{BootstrapVm, Cluster, ClusterSpec, Host, IgnitionVia, Node, Role};
pub use domain::{
    Boot, BootDev, CharDevice, CharTarget, Clock, Devices, Disk, DiskDevice, DiskDriver,
    DiskFormat, DiskSource, DiskTarget, DiskType, Domain, DomainType, Features, Flag, FwCfgEntry,
    Graphics, IGNITION_FW_CFG_KEY, Interface, InterfaceModel, InterfaceSource, InterfaceType,
    LifecycleAction, Memory, MemoryUnit, Os, OsType, Placement, QEMU_NS, QemuArg, QemuCommandline,
    QemuEnv, Resource, Sysinfo, SysinfoType, Vcpu,
};
pub use error::Error;
#[cfg(feature = "libvirt")]
pub use libvirt::{Defined, Libvirt};
pub use network::{
    AddressRange, Bootp, Bridge, Dhcp, DhcpHost, DhcpRange, Dns, DnsDomain, DnsHost, Family,
    Forward, ForwardInterface, ForwardMode, Forwarder, Ip, MacAddress, Nat, Network, PortRange,
    Srv, Tftp, Txt,
};
pub use xml::{OnOff, Parsed, YesNo};

/// The MAC type of [`DhcpHost::mac`] and [`Node::mac`], from pxe-stack, so a consumer need not
/// depend on pxe-stack to name it.
///
/// ```
/// let mac: libvirt_templates::Mac = "52:54:00:00:00:10".parse()?;
/// let host = libvirt_templates::DhcpHost { mac: Some(mac), ..Default::default() };
/// assert_eq!(host.mac.map(|m| m.to_string()).as_deref(), Some("52:54:00:00:00:10"));
/// # Ok::<(), libvirt_templates::ParseMacError>(())
/// ```
pub use pxe_stack::Mac;
/// Why a string is not a [`Mac`], from pxe-stack.
pub use pxe_stack::ParseMacError;
