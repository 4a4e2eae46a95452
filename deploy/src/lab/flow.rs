//! The lab's whole job: deploy its VMs with the real deployment code, then check their disks.

use std::future::Future;
use std::net::Ipv4Addr;

use crate::artifacts::fetch_artifacts;
use crate::plan::{BmcDriver, BmcSpec, Cluster, Host, Images, Plan, Provisioning, Role, Timeouts};
use crate::run::{RunReport, run};
use crate::timeline::Timeline;

use super::{BMC_PASSWORD, BMC_USER, Error, Lab};

/// One VM's disk, checked after the deployment.
#[derive(Debug)]
pub struct DiskCheck {
    /// The VM's name.
    pub name: String,
    /// The role the host should have (fixed, or what introspection decided).
    pub role: Option<String>,
    /// `Ok` when the disk holds the image and the right role's config, else why not.
    pub result: Result<(), String>,
}

/// What the lab run found.
#[derive(Debug)]
pub struct LabReport {
    /// The deployment's outcome and timeline.
    pub summary: RunReport,
    /// One disk check per VM.
    pub disks: Vec<DiskCheck>,
}

impl LabReport {
    /// Whether every host installed and every disk checked out.
    pub fn success(&self) -> bool {
        self.summary.success && self.disks.iter().all(|d| d.result.is_ok())
    }
}

impl Lab {
    /// The deployment plan for this lab: its hosts behind their ipmi_sim BMCs, its generated
    /// image source, its assets, and servers bound inside its namespace.
    pub fn plan(&self) -> Plan {
        let net = u32::from(self.server_ip) & 0xffff_ff00;
        Plan {
            cluster: Cluster {
                name: "lab".into(),
                base_domain: "rhcos-metal.test".into(),
                assets: self.assets.clone(),
            },
            images: Images {
                stream: Some(format!("file://{}", self.stream.display())),
                mirror: None,
                arch: "x86_64".into(),
                cache: self.dir.join("cache"),
                keyring: None,
                unsigned: true,
                install_from: crate::plan::InstallFrom::Download,
            },
            provisioning: Provisioning {
                interface: self.bridge.clone(),
                address: self.server_ip,
                prefix: 24,
                dhcp_range: Some((Ipv4Addr::from(net | 100), Ipv4Addr::from(net | 199))),
                router: None,
                dns: Vec::new(),
                http_port: 8080,
                ipv6_ra_prefix: Some(std::net::Ipv6Addr::new(0xfd00, 0x126, 0, 0, 0, 0, 0, 0)),
                chain: self.chain,
                efi_boot_file: self.efi_boot_file.clone(),
                ipxe_dir: self.ipxe_dir.clone(),
            },
            bootstrap: None,
            // The first introspected host becomes a master when no fixed host is one; the
            // lab's disks are small.
            introspection: rhcos_introspect::Rules {
                min_disk_bytes: 8 << 20,
                ..rhcos_introspect::Rules::masters_then_workers(usize::from(
                    !self.roles.iter().any(|r| r.as_deref() == Some("master")),
                ))
            },
            hosts: self
                .vms
                .iter()
                .zip(&self.roles)
                .enumerate()
                .map(|(i, (vm, role))| Host {
                    name: vm.spec.name.clone(),
                    mac: vm.spec.mac,
                    role: match role.as_deref() {
                        Some("master") => Role::Master,
                        Some(_) => Role::Worker,
                        None => Role::Introspect,
                    },
                    // Fixed hosts get reservations; introspected ones come from the pool.
                    address: role.as_ref().map(|_| Ipv4Addr::from(net | (10 + i as u32))),
                    install_dev: "/dev/vda".into(),
                    sector_size: None,
                    bmc: Some(BmcSpec {
                        driver: BmcDriver::Ipmi,
                        address: vm.bmc.to_string(),
                        user: BMC_USER.into(),
                        password: Some(BMC_PASSWORD.into()),
                        password_env: None,
                        ..BmcSpec::default()
                    }),
                })
                .collect(),
            timeouts: Timeouts { install_secs: 600 },
        }
    }

    /// Deploys the lab's hosts and checks every disk. `observe` sees the timeline as it changes;
    /// `shutdown` (Ctrl-C) stops the deployment early.
    ///
    /// The deployment runs on its own tokio runtime whose threads all live in the lab's
    /// namespace, as the provisioning server of an isolated network would: every socket the
    /// servers open, including the TFTP server's per-transfer sockets, is on the lab bridge,
    /// and the BMCs are reached on the namespace's loopback.
    pub fn deploy(
        &self,
        observe: impl FnMut(&Timeline) + Send,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<LabReport, Error> {
        self.netns().enter(|| {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .map_err(|source| Error::Io {
                    path: "tokio runtime".into(),
                    source,
                })?;
            runtime.block_on(self.deploy_here(observe, shutdown))
        })?
    }

    async fn deploy_here(
        &self,
        observe: impl FnMut(&Timeline),
        shutdown: impl Future<Output = ()>,
    ) -> Result<LabReport, Error> {
        let plan = self.plan();
        let artifacts = fetch_artifacts(&plan, rhcos_images::NoProgress).await?;
        let summary = run(&plan, &artifacts, observe, shutdown).await?;
        let mut disks = Vec::new();
        for (vm, fixed) in self.vms.iter().zip(&self.roles) {
            let decided = summary
                .timeline
                .host(vm.spec.mac)
                .and_then(|h| h.role.clone());
            let role = fixed.clone().or(decided);
            let result = self.check_disk(vm, role.as_deref());
            disks.push(DiskCheck {
                name: vm.spec.name.clone(),
                role,
                result,
            });
        }
        Ok(LabReport { summary, disks })
    }

    fn check_disk(&self, vm: &super::Vm, role: Option<&str>) -> Result<(), String> {
        let report = vm
            .inspect_disk(self.image.raw_bytes)
            .map_err(|e| e.to_string())?;
        if report.image_sha256 != self.image.raw_sha256 {
            return Err(format!(
                "image sha256 {} on disk, expected {}",
                report.image_sha256, self.image.raw_sha256
            ));
        }
        if report.field("mac") != Some(vm.spec.mac.to_string().as_str()) {
            return Err(format!(
                "marker written by {:?}, expected {}",
                report.field("mac"),
                vm.spec.mac
            ));
        }
        let role = role.ok_or("no role was decided")?;
        let ignition = String::from_utf8_lossy(&report.ignition);
        let wanted = format!("data:,{role}");
        if !ignition.contains(&wanted) {
            return Err(format!(
                "the Ignition config on disk is not the {role} config"
            ));
        }
        Ok(())
    }
}
