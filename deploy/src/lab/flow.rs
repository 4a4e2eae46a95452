//! The lab's whole job: deploy its VMs with the real deployment code, then check their disks.

use std::future::Future;
use std::net::Ipv4Addr;

use crate::artifacts::fetch_artifacts;
use crate::plan::{
    BmcDriver, BmcSpec, Cluster, Host, Images, Plan, Provisioning, Role, StatusConfig, Timeouts,
};
use crate::run::{RunReport, run_with_status};
use crate::status::Status;
use crate::timeline::Timeline;

use super::{BMC_PASSWORD, BMC_USER, Error, Firmware, Lab, Vm};

/// What OVMF prints when Secure Boot refuses an image (`Access Denied` from the boot
/// manager, `Security Violation` from the image loader).
pub const REFUSALS: [&str; 2] = ["Access Denied", "Security Violation"];

/// One VM's disk, checked after the deployment.
#[derive(Debug)]
pub struct DiskCheck {
    /// The VM's name.
    pub name: String,
    /// The role the host should have (fixed, or what introspection decided).
    pub role: Option<String>,
    /// The installer that ran, as the live system announced it (`coreos-installer 0.27.0`).
    pub installer: Option<String>,
    /// The console lines that show it ran: the service script's `coreos-installer install …`
    /// command line and coreos-installer's own `Install complete.`.
    pub evidence: Vec<String>,
    /// The image format the disk was checked against (`raw.gz`, `4k.raw.gz`).
    pub image: String,
    /// The first-boot kernel arguments as coreos-installer left them (the BLS `options` line).
    pub kernel_args: Option<String>,
    /// What the installer's environment resolved through the cluster DNS (its resolver from
    /// DHCP option 6), as `query -> answers` lines: `api-int.<zone>`, its own address (PTR)
    /// and the name that came back (A).
    pub dns: Vec<String>,
    /// `Ok` when the installer resolved the names in [`DiskCheck::dns`] as the plan says, the
    /// disk holds the image, the right role's config where coreos-installer writes it, and
    /// that config passes `ignition-validate`; else why not.
    pub result: Result<(), String>,
}

/// What the lab run found.
#[derive(Debug)]
pub struct LabReport {
    /// The deployment's outcome and timeline.
    pub summary: RunReport,
    /// One disk check per VM.
    pub disks: Vec<DiskCheck>,
    /// The deployment's status and metrics as they ended.
    pub status: Status,
}

impl LabReport {
    /// Whether every host installed and every disk checked out.
    pub fn success(&self) -> bool {
        self.summary.success && self.disks.iter().all(|d| d.result.is_ok())
    }
}

impl Lab {
    /// The deployment plan for this lab: its hosts behind their ipmi_sim BMCs, its generated
    /// image source, its assets, and servers bound to [`Lab::interface`] in the provisioning
    /// server's namespace.
    pub fn plan(&self) -> Plan {
        let net = u32::from(self.server_ip) & 0xffff_ff00;
        let net6 = u128::from(self.server_ip6) & !0xffff_ffff_ffff_ffff;
        let (v4, v6) = (self.family.has_ipv4(), self.family.has_ipv6());
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
                keyring: self.keyring.clone(),
                unsigned: self.keyring.is_none(),
                install_from: crate::plan::InstallFrom::Download,
            },
            provisioning: Provisioning {
                interface: self.interface.clone(),
                family: self.family,
                address: v4.then_some(self.server_ip),
                ipv6: v6.then(|| crate::plan::Ipv6Network {
                    address: self.server_ip6,
                    prefix: 64,
                    dhcp_range: Some((
                        std::net::Ipv6Addr::from(net6 | 0x100),
                        std::net::Ipv6Addr::from(net6 | 0x1ff),
                    )),
                    dns: Vec::new(),
                    lease_secs: 3600,
                }),
                prefix: 24,
                dhcp_range: v4.then(|| (Ipv4Addr::from(net | 100), Ipv4Addr::from(net | 199))),
                router: None,
                dns: Vec::new(),
                http_port: self.http_port,
                // An IPv6 network's advertisements announce its own prefix.
                ipv6_ra_prefix: (!v6)
                    .then(|| std::net::Ipv6Addr::new(0xfd00, 0x126, 0, 0, 0, 0, 0, 0)),
                chain: self.chain,
                efi_boot_file: self.efi_boot_file.clone(),
                ipxe_dir: self.ipxe_dir.clone(),
                secure_boot: self.secure_boot.clone(),
                admin_allow: Vec::new(),
                lease_identity: pxe_stack::LeaseIdentity::Mac,
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
                    address: role
                        .as_ref()
                        .filter(|_| v4)
                        .map(|_| Ipv4Addr::from(net | (10 + i as u32))),
                    ipv6: role
                        .as_ref()
                        .filter(|_| v6)
                        .map(|_| std::net::Ipv6Addr::from(net6 | (0x10 + i as u128))),
                    install_dev: "/dev/vda".into(),
                    // A fixed host's 4Kn disk is in the plan; an introspected host's sector
                    // size comes from its inventory, as on real hardware.
                    sector_size: (role.is_some() && vm.spec.sector_size == 4096).then_some(4096),
                    bmc: Some(BmcSpec {
                        driver: BmcDriver::Ipmi,
                        address: vm.bmc.to_string(),
                        user: BMC_USER.into(),
                        password: Some(BMC_PASSWORD.into()),
                        password_env: None,
                        ..BmcSpec::default()
                    }),
                    secure_boot: vm.spec.firmware == Firmware::UefiSecureBoot,
                })
                .collect(),
            timeouts: Timeouts { install_secs: 600 },
            // The cluster DNS on the server address, port 53, handed out by DHCP: api and
            // api-int name the API VIP (the lab's installers resolve api-int through it).
            dns: crate::plan::ClusterDns {
                api_vip: Some(self.api_vip()),
                ..Default::default()
            },
            status: StatusConfig {
                enabled: self.status_addr.is_some(),
                bind: self.status_addr,
            },
            // One server, its own files.
            state: crate::plan::StateConfig::default(),
        }
    }

    /// The lab's API VIP (`.5` of its subnet): what `api` and `api-int` resolve to. Nothing
    /// answers there; the installers only resolve the name.
    pub fn api_vip(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.server_ip) & 0xffff_ff00 | 5)
    }

    /// The zone the lab's DNS serves: `<cluster>.<base_domain>`.
    pub fn zone(&self) -> String {
        let plan = self.plan();
        format!("{}.{}", plan.cluster.name, plan.cluster.base_domain)
    }

    /// Deploys the lab's hosts and checks every disk. `observe` sees the timeline as it changes;
    /// `shutdown` (Ctrl-C) stops the deployment early.
    ///
    /// The deployment runs on its own tokio runtime whose threads all live in the provisioning
    /// server's namespace, as the provisioning server of an isolated network would: every
    /// socket the servers open, including the TFTP server's per-transfer sockets, is on its
    /// end of the link to the hosts' bridge ([`Lab::interface`]), and the BMCs are reached on
    /// that namespace's loopback, its management side.
    pub fn deploy(
        &self,
        observe: impl FnMut(&Timeline) + Send,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<LabReport, Error> {
        self.server_netns().enter(|| {
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

    /// The Secure Boot lab's negative control: the lab's servers with Secure Boot off in the
    /// plan, so DHCP hands VM `index` our unsigned iPXE, and the VM powered on until its
    /// firmware's refusal shows on the serial console (or `wait` passes). Returns the console
    /// and whether a refusal (`Access Denied`, `Security Violation`) was seen; the VM is off
    /// again afterwards.
    pub fn offer_unsigned_ipxe(
        &self,
        index: usize,
        wait: std::time::Duration,
    ) -> Result<(String, bool), Error> {
        let vm = &self.vms[index];
        self.server_netns().enter(|| {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .map_err(|source| Error::Io {
                    path: "tokio runtime".into(),
                    source,
                })?;
            runtime.block_on(async {
                let mut plan = self.plan();
                for h in &mut plan.hosts {
                    h.secure_boot = false;
                }
                let artifacts = fetch_artifacts(&plan, rhcos_images::NoProgress).await?;
                let servers = crate::servers::start_servers(
                    &plan,
                    &artifacts,
                    std::sync::Arc::new(pxe_stack::Discard),
                )
                .await?;
                vm.power_on_pxe()?;
                let deadline = std::time::Instant::now() + wait;
                let refused = loop {
                    let console = vm.serial_log();
                    if REFUSALS.iter().any(|r| console.contains(r)) {
                        break true;
                    }
                    if std::time::Instant::now() >= deadline || !vm.running() {
                        break false;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                };
                let off = vm.power_off();
                servers.shutdown().await;
                off?;
                Ok((vm.serial_log(), refused))
            })
        })?
    }

    async fn deploy_here(
        &self,
        observe: impl FnMut(&Timeline),
        shutdown: impl Future<Output = ()>,
    ) -> Result<LabReport, Error> {
        let plan = self.plan();
        // The downloads are counted before the status knows the artifacts it will serve.
        let chosen = crate::artifacts::select_artifacts(&plan)
            .await?
            .served(plan.images.cache.clone());
        let status = Status::new(&plan, &chosen);
        let artifacts =
            match fetch_artifacts(&plan, status.progress(rhcos_images::NoProgress)).await {
                Ok(a) => a,
                Err(e) => {
                    status.fetch_failed(&e);
                    return Err(e.into());
                }
            };
        let summary = run_with_status(&plan, &artifacts, &status, observe, shutdown).await?;
        let mut disks = Vec::new();
        for (vm, fixed) in self.vms.iter().zip(&self.roles) {
            let decided = summary
                .timeline
                .host(vm.spec.mac)
                .and_then(|h| h.role.clone());
            let role = fixed.clone().or(decided);
            disks.push(self.check_disk(vm, fixed.as_deref(), role));
        }
        Ok(LabReport {
            summary,
            disks,
            status,
        })
    }

    /// Reads one VM's disk from the host after its install and checks it against the image and
    /// the role's Ignition config; the console log tells which installer ran.
    fn check_disk(&self, vm: &Vm, fixed: Option<&str>, role: Option<String>) -> DiskCheck {
        let console = vm.serial_log();
        let lines: Vec<&str> = console.lines().map(|l| l.trim_end_matches('\r')).collect();
        let installer = lines.iter().find_map(|l| {
            l.strip_prefix("LIVE: nic ")
                .and_then(|rest| rest.rsplit_once("; "))
                .map(|(_, v)| v.to_owned())
        });
        let evidence: Vec<String> = lines
            .iter()
            .filter(|l| {
                l.starts_with("coreos-installer install ")
                    || l.starts_with("LIVE: install config: ")
                    || **l == "Install complete."
            })
            .map(|l| l.to_string())
            .collect();
        let dns: Vec<String> = lines
            .iter()
            .filter_map(|l| l.strip_prefix("LIVE: dns "))
            .filter(|l| l.contains(" -> "))
            .map(|l| l.to_string())
            .collect();
        let image = self.image_for(vm);
        let mut check = DiskCheck {
            name: vm.spec.name.clone(),
            role,
            installer,
            evidence,
            image: image.format(self.xz_only).to_owned(),
            kernel_args: None,
            dns,
            result: Ok(()),
        };
        let ip = lines
            .iter()
            .find_map(|l| l.strip_prefix("LIVE: dhcp bound ip="))
            .map(str::to_owned);
        let ip6 = lines
            .iter()
            .find_map(|l| l.strip_prefix("LIVE: dhcp6 bound ip6="))
            .and_then(|rest| rest.split_whitespace().next())
            .map(str::to_owned);
        check.result = self
            .check_dhcp6(vm, ip6.as_deref())
            .and_then(|()| self.check_dns(vm, ip.as_deref(), ip6.as_deref(), &check.dns))
            .and_then(|()| self.check_disk_contents(vm, fixed, image, &mut check));
        check
    }

    /// On a network with IPv6, the installer took an address from DHCPv6 (with `dhclient -6`)
    /// inside the plan's prefix: the host's reservation when it has one (the reservation is
    /// keyed by MAC, while firmware, iPXE and dhclient each send a DUID of their own).
    fn check_dhcp6(&self, vm: &Vm, ip6: Option<&str>) -> Result<(), String> {
        if !self.family.has_ipv6() {
            return Ok(());
        }
        let ip6: std::net::Ipv6Addr = ip6
            .ok_or("the installer never reported a DHCPv6 address")?
            .parse()
            .map_err(|e| format!("the installer's DHCPv6 address: {e}"))?;
        let plan = self.plan();
        let net = plan.provisioning.ipv6.as_ref().ok_or("no IPv6 network")?;
        if !net.contains(ip6) {
            return Err(format!("DHCPv6 address {ip6} outside {}/64", net.network()));
        }
        let host = plan.hosts.iter().find(|h| h.mac == vm.spec.mac);
        if let Some(want) = host.and_then(|h| h.ipv6)
            && want != ip6
        {
            return Err(format!(
                "the installer got {ip6} over DHCPv6, not its reservation {want}"
            ));
        }
        Ok(())
    }

    /// The installer resolved `api-int` to the API VIP, its own address to its own name and
    /// that name back to its address, through the resolver DHCP (or DHCPv6, option 23) handed
    /// it: the DHCPv4 address with PTR and A on a network with IPv4, the DHCPv6 address with
    /// PTR (`ip6.arpa`) and AAAA on a network with IPv6, both on a dual-stack one.
    fn check_dns(
        &self,
        vm: &Vm,
        ip: Option<&str>,
        ip6: Option<&str>,
        dns: &[String],
    ) -> Result<(), String> {
        let zone = self.zone();
        let own = format!("{}.{zone}", vm.spec.name);
        let mut want = vec![format!("api-int.{zone} -> {}", self.api_vip())];
        if self.family.has_ipv4() {
            let ip = ip.ok_or("the installer never reported its DHCP address")?;
            want.extend([format!("{ip} -> {own}"), format!("{own} -> {ip}")]);
        }
        if self.family.has_ipv6() {
            let ip6 = ip6.ok_or("the installer never reported its DHCPv6 address")?;
            want.extend([format!("{ip6} -> {own}"), format!("{own} -> {ip6}")]);
        }
        for w in &want {
            if !dns.iter().any(|d| d == w) {
                return Err(format!(
                    "the installer did not resolve `{w}` through the cluster DNS: {dns:?}"
                ));
            }
        }
        Ok(())
    }

    fn check_disk_contents(
        &self,
        vm: &Vm,
        fixed_role: Option<&str>,
        image: &super::Image,
        check: &mut DiskCheck,
    ) -> Result<(), String> {
        if !check.evidence.iter().any(|l| l == "Install complete.") {
            return Err("coreos-installer never printed `Install complete.`".into());
        }
        // The image URL handed to coreos-installer (by the service script from the command
        // line, or in the install config introspection chose) names the file served.
        let served = if self.xz_only {
            &image.xz.1
        } else {
            &image.gz.1
        };
        let url = check
            .evidence
            .iter()
            .find_map(|l| {
                l.split(" --image-url ")
                    .nth(1)
                    .or_else(|| l.split("image-url: ").nth(1))
            })
            .and_then(|rest| rest.split_whitespace().next())
            .ok_or("coreos-installer got no image URL (command line or install config)")?;
        if !url.ends_with(&format!("/{served}")) {
            return Err(format!(
                "coreos-installer fetched {url}, not the {} image ({served})",
                check.image
            ));
        }
        let report = vm.inspect_disk(image).map_err(|e| e.to_string())?;
        check.kernel_args = report.bls_options.clone();
        let want: Vec<_> = image
            .partitions
            .iter()
            .map(|p| (p.name.to_owned(), p.offset, p.len))
            .collect();
        if report.partitions != want {
            return Err(format!(
                "partition table {:?}, expected the image's {want:?}",
                report.partitions
            ));
        }
        if !report.outside_boot_identical {
            return Err(format!(
                "the disk differs from {} outside the boot partition",
                check.image
            ));
        }
        if !report.boot_files_changed.is_empty() {
            return Err(format!(
                "boot files the installer must not change differ: {:?}",
                report.boot_files_changed
            ));
        }
        if report.bls_options.as_deref() != Some(super::BLS_OPTIONS) {
            return Err(format!(
                "BLS options {:?}, expected the image's own (no kernel argument changes asked)",
                report.bls_options
            ));
        }
        let role = check.role.as_deref().ok_or("no role was decided")?;
        let ignition = report
            .ignition
            .ok_or("no /ignition/config.ign in the boot partition")?;
        let wanted = self.role_config(role).map_err(|e| e.to_string())?;
        let parse = |b: &[u8]| serde_json::from_slice::<serde_json::Value>(b).ok();
        // An introspected host's config names the host it decided on: the role's config plus
        // one `/etc/hostname` file. Anything else must be the role's config as it is.
        let mut on_disk = parse(&ignition);
        if fixed_role.is_none()
            && let Some(files) = on_disk
                .as_mut()
                .and_then(|c| c.pointer_mut("/storage/files"))
                .and_then(|f| f.as_array_mut())
        {
            files.retain(|f| f["path"] != "/etc/hostname");
        }
        if on_disk.is_none() || on_disk != parse(&wanted) {
            return Err(format!(
                "the Ignition config on disk is not the {role} config: {}",
                String::from_utf8_lossy(&ignition)
            ));
        }
        if report.ignition_mode.as_deref() != Some("0600") {
            return Err(format!(
                "config.ign has mode {:?}, coreos-installer writes 0600",
                report.ignition_mode
            ));
        }
        let file = vm.dir.join("config-from-disk.ign");
        std::fs::write(&file, &ignition).map_err(|e| e.to_string())?;
        let out = std::process::Command::new("ignition-validate")
            .arg(&file)
            .output()
            .map_err(|e| format!("ignition-validate (apt-get install ignition): {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "ignition-validate rejects the config on disk: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(())
    }
}
