//! The plan's `[bootstrap]` laid out as the libvirt cluster network and the bootstrap domain.
//! Pure: [`Plan::load`](super::Plan::load) checks it, and the `libvirt` feature applies it.

use std::path::PathBuf;

use libvirt_templates::{Cluster, ClusterSpec, Error as LayoutError, Node};

use super::{IgnitionVia, Plan, PlanError};

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
fn key_path(e: &LayoutError) -> &'static str {
    match e {
        LayoutError::InvalidName { field, .. } => match *field {
            "cluster name" => "cluster.name",
            "base domain" | "cluster domain" => "cluster.base_domain",
            "network name" => "bootstrap.network_name",
            "domain name" => "bootstrap.name",
            f if f.contains("bridge") => "bootstrap.bridge",
            _ => "bootstrap",
        },
        LayoutError::InvalidMac { .. } | LayoutError::DuplicateMac { .. } => "bootstrap.mac",
        LayoutError::InvalidSubnet { .. } => "bootstrap.network_address",
        LayoutError::InvalidDhcpRange { .. } => "bootstrap.dhcp_range",
        LayoutError::AddressOutsideNetwork { .. } | LayoutError::AddressInDhcpRange { .. } => {
            "bootstrap.address"
        }
        LayoutError::ZeroMemory { .. } => "bootstrap.memory_mib",
        LayoutError::ZeroVcpus { .. } => "bootstrap.vcpus",
        LayoutError::InvalidPath { field, .. } if *field == "image" => "bootstrap.image",
        LayoutError::InvalidPath { .. } => "bootstrap.ignition",
        _ => "bootstrap",
    }
}
