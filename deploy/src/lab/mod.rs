//! A throwaway lab on this machine: bare-metal servers as QEMU VMs behind ipmi_sim BMCs, on a
//! bridge inside a network namespace of their own, installed by the real `coreos-installer`.
//!
//! The lab is wired as a rack is, in two network namespaces ([`Lab::hosts_netns`],
//! [`Lab::server_netns`]):
//! - the hosts' namespace is the provisioning segment: the bridge (the switch), a tap per VM
//!   (the hosts' NICs) and the QEMU processes. It has no address of its own, not even
//!   loopback's `127.0.0.1`, so an IPv6-only lab is IPv6-only there with nothing excepted.
//! - the provisioning server's namespace holds what runs on the provisioning server: the
//!   deployment's servers (DHCP, DHCPv6, RA, TFTP, HTTP, DNS, the status page) and, on its
//!   management side, the hosts' ipmi_sim BMCs. Its end of a veth pair whose other end is a
//!   port of the bridge ([`Lab::interface`], `prov0`) carries the provisioning addresses and
//!   is the plan's `provisioning.interface`; the BMCs listen on its loopback, the stand-in for
//!   the rack's management network. ipmi_sim only binds IPv4 (and ipmitool does not reach it
//!   on `::1`), so the management side stays IPv4 whatever the provisioning segment's family,
//!   as a real rack's BMC network often is. The operator's link from this machine (the
//!   status page, [`LabConfig::status_port`]) attaches here too.
//!
//! [`Lab::build`] creates everything; dropping the [`Lab`] removes it all again (VMs, BMCs,
//! both namespaces, files), on success, on error and on Ctrl-C alike. The lab knows nothing about the
//! deployment: it hands out a [`crate::Plan`]-shaped description of its hosts and checks their disks
//! afterwards, and the same deployment code as on real hardware runs in between.
//!
//! The installer is not ours: the live initramfs ([`Installer`]) carries the crates.io
//! `coreos-installer` ([`COREOS_INSTALLER_VERSION`], built once by [`coreos_installer`] into
//! [`LabConfig::cache_dir`]) and runs it through the crate's own `coreos-installer-service`
//! script ([`SERVICE_SCRIPT`], unmodified), which reads the `coreos.inst.*` arguments that
//! rhcos-deploy wrote. The metal images ([`Image`]) have the layout coreos-installer expects
//! (GPT, `EFI-SYSTEM`, `boot` with a BLS entry, `root`), for 512-byte and 4Kn disks, in gzip
//! and xz. After the install every disk is read from the host ([`inspect_disk`]): the partition
//! table, every byte outside `boot` against the image, and in `boot` (with debugfs) the Ignition
//! config coreos-installer wrote and the first-boot kernel arguments, which must pass
//! `ignition-validate`. Before installing, each live installer resolves `api-int.<zone>`, its
//! own address and the name that comes back through the cluster DNS that DHCP option 6 named
//! (busybox nslookup); the check holds the answers ([`DiskCheck::dns`]) to the plan: the API
//! VIP ([`Lab::api_vip`]), the host's own name and address.

mod flow;
mod image;
mod initramfs;
mod netns;
mod sys;
mod vm;

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

pub use flow::{DiskCheck, LabReport, REFUSALS};
pub use image::{
    BLS_OPTIONS, ESP_VENDOR_DIR, GptPartition, Image, MIN_IMAGE_MIB, generate as generate_image,
    layout, read_gpt, sha256_file,
};
pub use initramfs::{
    COREOS_INSTALLER_VERSION, INIT_SCRIPT, Installer, SERVICE_SCRIPT, SERVICE_SCRIPT_SHA256,
    coreos_installer,
};
pub use netns::Netns;
pub use vm::{Accel, BMC_PASSWORD, BMC_USER, DiskReport, Firmware, Vm, VmSpec, inspect_disk};

/// Everything that can go wrong building or checking the lab.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A prerequisite (program, package, file, privilege) is missing.
    #[error("missing prerequisite: {what}")]
    Missing {
        /// What is missing and how to get it.
        what: String,
    },
    /// A program could not be started.
    #[error("cannot run {program}")]
    Spawn {
        /// The program.
        program: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A program exited with an error.
    #[error("`{command}` failed ({status:?}): {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// Its exit code.
        status: Option<i32>,
        /// What it printed on stderr.
        stderr: String,
    },
    /// A file operation failed.
    #[error("i/o error on {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Entering the namespace failed.
    #[error("cannot enter network namespace {name} (errno {errno})")]
    Setns {
        /// The namespace.
        name: String,
        /// The OS error number.
        errno: i32,
    },
    /// The deployment itself failed.
    #[error("deployment")]
    Deploy(#[from] crate::Error),
    /// Fetching the lab's images failed.
    #[error("images")]
    Images(#[from] rhcos_images::Error),
}

/// Where the lab caches what outlives a run (the coreos-installer build, generated images):
/// `$RHCOS_METAL_LAB_CACHE`, else `/var/cache/rhcos-metal-lab`.
pub fn default_cache_dir() -> PathBuf {
    std::env::var_os("RHCOS_METAL_LAB_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/rhcos-metal-lab"))
}

/// One lab host: a VM and the role it should get.
#[derive(Debug, Clone)]
pub struct LabHost {
    /// The VM.
    pub vm: VmSpec,
    /// A fixed role (`master`, `worker`), or `None` to have the host introspected.
    pub role: Option<String>,
}

/// The lab's shape.
#[derive(Debug, Clone)]
pub struct LabConfig {
    /// The hosts.
    pub hosts: Vec<LabHost>,
    /// The generated metal images' size in MiB (at least [`MIN_IMAGE_MIB`]).
    pub image_mib: u32,
    /// Where the lab's files go; a fresh directory is created inside.
    pub work_dir: PathBuf,
    /// What outlives a run: the coreos-installer build and the generated images.
    pub cache_dir: PathBuf,
    /// The namespaces' name prefix (unique per run): the hosts' namespace is `<netns>-hosts`,
    /// the provisioning server's `<netns>-server`.
    pub netns: String,
    /// The provisioning server's address on the lab's segment.
    pub server_ip: Ipv4Addr,
    /// The bridge's prefix length.
    pub prefix: u8,
    /// The lab network's address family: IPv4 (the default), IPv6 only (the provisioning
    /// segment without an IPv4 address, UEFI hosts booting through OVMF's PXE over IPv6, the
    /// installer on DHCPv6) or dual-stack.
    pub family: crate::plan::NetworkFamily,
    /// The provisioning server's IPv6 address on the lab's segment (a /64), when the family
    /// has IPv6.
    pub server_ip6: Ipv6Addr,
    /// QEMU's accelerator.
    pub accel: Accel,
    /// Keep the files after teardown (for debugging).
    pub keep_files: bool,
    /// How BIOS hosts chain into iPXE: [`crate::ChainMode::Stateful`] makes QEMU's iPXE ROM fetch
    /// `undionly.kpxe` over TFTP first, as a non-iPXE PXE ROM would.
    pub chain: crate::ChainMode,
    /// What UEFI hosts chainload: `snponly.efi` or `ipxe.efi`.
    pub efi_boot_file: String,
    /// Sign every artifact with a throwaway key and give the plan that key as its keyring
    /// (`images.keyring`, `unsigned = false`), so rhcos-deploy's own signature checks run.
    /// Off by default: see [`Lab::plan`].
    pub signed: bool,
    /// List only the `raw.xz` and `4k.raw.xz` images, as Fedora CoreOS streams do, so the
    /// installer gets xz; otherwise the gzip images are listed too and preferred, as on RHCOS.
    pub xz_only: bool,
    /// Serve the status page and metrics on this port, on a private link from this machine into
    /// the provisioning server's namespace ([`Lab::status_url`]); off by default.
    pub status_port: Option<u16>,
    /// The provisioning HTTP port (8080).
    pub http_port: u16,
    /// What [`Firmware::UefiSecureBoot`] hosts are served in place of iPXE: Debian's
    /// Microsoft-signed shim and signed network GRUB ([`SECURE_BOOT_FILES`]) named as files
    /// (the default), or [`SecureBoot::FromImage`](crate::plan::SecureBoot::FromImage): the
    /// same two read from the lab image's ESP, where the image generator puts them
    /// (`EFI/debian/shimx64.efi`, `EFI/debian/grubx64.efi`) as a CoreOS release carries its own.
    pub secure_boot_chain: crate::plan::SecureBoot,
}

/// Debian's signed boot chain: `shim-signed` and `grub-efi-amd64-signed` (the lab's kernel,
/// the installed `linux-image-amd64`, is signed by Debian, whose key shim carries).
pub const SECURE_BOOT_FILES: (&str, &str) = (
    "/usr/lib/shim/shimx64.efi.signed",
    "/usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed",
);

/// [`SECURE_BOOT_FILES`] as plan keys.
pub fn debian_secure_boot_files() -> crate::plan::SecureBootFiles {
    crate::plan::SecureBootFiles {
        shim: SECURE_BOOT_FILES.0.into(),
        grub: SECURE_BOOT_FILES.1.into(),
    }
}

impl LabConfig {
    /// The default lab: one BIOS host with a fixed role and a 512-byte-sector disk, and one
    /// UEFI host with a 4Kn disk (so it gets the `4k` image) that is introspected.
    pub fn two_hosts(work_dir: PathBuf) -> Self {
        let pid = std::process::id();
        let host = |i: u8, firmware, sector_size, role: Option<&str>| LabHost {
            vm: VmSpec {
                name: format!("node{i}"),
                mac: pxe_stack::Mac([0x52, 0x54, 0x00, 0x7e, 0x60, i + 1]),
                firmware,
                memory_mib: 768,
                disk_mib: 0,
                sector_size,
            },
            role: role.map(str::to_owned),
        };
        LabConfig {
            hosts: vec![
                host(0, Firmware::Bios, 512, Some("master")),
                host(1, Firmware::Uefi, 4096, None),
            ],
            image_mib: MIN_IMAGE_MIB,
            work_dir,
            cache_dir: default_cache_dir(),
            netns: format!("rmlab{pid}"),
            server_ip: Ipv4Addr::new(192, 168, 126, 1),
            prefix: 24,
            family: crate::plan::NetworkFamily::Ipv4,
            server_ip6: Ipv6Addr::new(0xfd00, 0x126, 0, 0, 0, 0, 0, 1),
            accel: Accel::Tcg,
            keep_files: false,
            chain: crate::ChainMode::Trust,
            efi_boot_file: "snponly.efi".into(),
            signed: false,
            xz_only: false,
            status_port: None,
            http_port: 8080,
            secure_boot_chain: crate::plan::SecureBoot::Files(debian_secure_boot_files()),
        }
    }

    /// One UEFI host with Secure Boot enforced (OVMF's Secure Boot build, Microsoft's keys),
    /// a fixed master role: it installs through shim → GRUB → Debian's signed kernel, the
    /// shim and GRUB read from the verified release image's ESP (`from = "image"`).
    pub fn secure_boot(work_dir: PathBuf) -> Self {
        let mut config = LabConfig::two_hosts(work_dir);
        config.secure_boot_chain = crate::plan::SecureBoot::FromImage;
        config.hosts.truncate(1);
        config.hosts[0].vm.firmware = Firmware::UefiSecureBoot;
        config.hosts[0].vm.sector_size = 512;
        config.hosts[0].role = Some("master".into());
        config
    }

    /// One UEFI host with a fixed master role on an IPv6-only network: OVMF's own PXE over
    /// IPv6 (its IPv4 PXE switched off) fetches iPXE over TFTP, iPXE takes DHCPv6 and its
    /// per-host script over HTTP, and the installer configures its NIC with `dhclient -6`.
    pub fn ipv6_only(work_dir: PathBuf) -> Self {
        let mut config = LabConfig::two_hosts(work_dir);
        config.family = crate::plan::NetworkFamily::Ipv6;
        config.hosts.remove(0);
        config.hosts[0].vm.sector_size = 512;
        config.hosts[0].role = Some("master".into());
        config
    }

    /// [`ipv6_only`](Self::ipv6_only) with the host set to UEFI HTTP boot
    /// ([`Firmware::UefiHttp`]): OVMF's HTTP boot over IPv4 finds no DHCPv4 server, then over
    /// IPv6 it takes DHCPv6 (vendor class `HTTPClient`) and fetches iPXE from
    /// `http://[addr]/snponly.efi`; from there on as with PXE.
    pub fn ipv6_only_http_boot(work_dir: PathBuf) -> Self {
        let mut config = LabConfig::ipv6_only(work_dir);
        config.hosts[0].vm.firmware = Firmware::UefiHttp;
        config
    }

    /// The default two hosts (a BIOS host with a fixed role, an introspected UEFI host whose
    /// OVMF PXE-boots over IPv6) and a third, a worker set to UEFI HTTP boot (which OVMF tries
    /// over IPv4 first), on a dual-stack network: DHCPv4 and DHCPv6 for all three.
    pub fn dual_stack(work_dir: PathBuf) -> Self {
        let mut config = LabConfig::two_hosts(work_dir);
        config.family = crate::plan::NetworkFamily::DualStack;
        let mut http = config.hosts[1].clone();
        http.vm.name = "node2".into();
        http.vm.mac = pxe_stack::Mac([0x52, 0x54, 0x00, 0x7e, 0x60, 3]);
        http.vm.firmware = Firmware::UefiHttp;
        http.vm.sector_size = 512;
        http.role = Some("worker".into());
        config.hosts.push(http);
        config
    }
}

/// The built lab. Drop tears it down.
#[derive(Debug)]
pub struct Lab {
    /// The VMs, in the order of [`LabConfig::hosts`].
    pub vms: Vec<Vm>,
    /// The roles asked for, in the same order (`None` = introspect).
    pub roles: Vec<Option<String>>,
    /// The live installer (kernel, initramfs with coreos-installer).
    pub installer: Installer,
    /// The generated metal images: 512-byte sectors, then 4096.
    pub images: [Image; 2],
    /// The `stream.json` that names the installer and the images.
    pub stream: PathBuf,
    /// The throwaway key's public half, when the lab's artifacts are signed.
    pub keyring: Option<PathBuf>,
    /// Whether the stream lists only the xz images.
    pub xz_only: bool,
    /// A fake `openshift-install create ignition-configs` output directory.
    pub assets: PathBuf,
    /// A directory with the iPXE binaries (undionly.kpxe, snponly.efi, ipxe.efi).
    pub ipxe_dir: PathBuf,
    /// The provisioning address on [`Lab::interface`] (unused on an IPv6-only lab).
    pub server_ip: Ipv4Addr,
    /// The provisioning IPv6 address on [`Lab::interface`] (unused on an IPv4 lab).
    pub server_ip6: Ipv6Addr,
    /// The lab network's address family.
    pub family: crate::plan::NetworkFamily,
    /// The bridge's name inside the hosts' namespace.
    pub bridge: String,
    /// The provisioning server's interface on the segment (its end of the veth pair whose
    /// other end is a port of [`Lab::bridge`]), inside the server's namespace: the plan's
    /// `provisioning.interface`.
    pub interface: String,
    /// How BIOS hosts chain into iPXE.
    pub chain: crate::ChainMode,
    /// What UEFI hosts chainload.
    pub efi_boot_file: String,
    /// The signed shim and GRUB, when a host boots with Secure Boot.
    pub secure_boot: Option<crate::plan::SecureBoot>,
    /// The provisioning HTTP port.
    pub http_port: u16,
    /// The lab's own directory.
    pub dir: PathBuf,
    /// Where the status page is served (the server namespace's end of the link from this
    /// machine), when [`LabConfig::status_port`] asks for it.
    pub status_addr: Option<std::net::SocketAddr>,
    keep_files: bool,
    // Declared last: dropped after the VMs, so no QEMU outlives its tap and no BMC its
    // namespace.
    hosts_netns: Netns,
    server_netns: Netns,
}

impl Lab {
    /// Builds the lab. Needs root (namespaces, taps) and the packages of scripts/install-deps.sh.
    pub fn build(config: &LabConfig) -> Result<Lab, Error> {
        if !nix::unistd::geteuid().is_root() {
            return Err(Error::Missing {
                what: "root privileges (network namespaces and tap devices)".into(),
            });
        }
        let dir = config.work_dir.join(&config.netns);
        let _ = std::fs::remove_dir_all(&dir);
        mkdir(&dir)?;
        let artifacts = dir.join("artifacts");
        mkdir(&artifacts)?;
        let installer = initramfs::build(&artifacts, &config.cache_dir)?;
        let images = image::generate_all(&config.cache_dir, config.image_mib)?;
        let signer = match config.signed {
            true => Some(image::Signer::new(&dir)?),
            false => None,
        };
        let stream = image::write_stream(
            &artifacts,
            &images,
            &installer.kernel,
            &installer.initramfs,
            signer.as_ref(),
            config.xz_only,
        )?;
        let keyring = signer.as_ref().map(|s| s.keyring.clone());
        drop(signer);
        let assets = dir.join("assets");
        write_assets(&assets)?;
        let ipxe_dir = dir.join("ipxe");
        mkdir(&ipxe_dir)?;
        for f in ["undionly.kpxe", "snponly.efi", "ipxe.efi"] {
            let src = Path::new("/usr/lib/ipxe").join(f);
            std::fs::copy(&src, ipxe_dir.join(f)).map_err(|source| Error::Io {
                path: src.clone(),
                source,
            })?;
        }

        let secure_boot = config
            .hosts
            .iter()
            .any(|h| h.vm.firmware == Firmware::UefiSecureBoot)
            .then(|| config.secure_boot_chain.clone());
        // Named files are served as they are; from the image, the image generator needs
        // Debian's to put into its ESP.
        let debian = debian_secure_boot_files();
        let needed: Vec<&Path> = match &secure_boot {
            None => Vec::new(),
            Some(crate::plan::SecureBoot::Files(f)) => vec![&f.shim, &f.grub],
            Some(crate::plan::SecureBoot::FromImage) => vec![&debian.shim, &debian.grub],
        };
        for f in needed {
            if !f.is_file() {
                return Err(Error::Missing {
                    what: format!(
                        "{} (shim-signed, grub-efi-amd64-signed; run scripts/install-deps.sh)",
                        f.display()
                    ),
                });
            }
        }

        // Both are dropped (deleted, with whatever runs inside) if anything below fails.
        let server_netns = Netns::create(&format!("{}-server", config.netns))?;
        let hosts_netns = Netns::create(&format!("{}-hosts", config.netns))?;
        hosts_netns.remove_ipv4_loopback()?;
        let (bridge, interface) = ("br0".to_owned(), "prov0".to_owned());
        let family = config.family;
        hosts_netns.add_bridge(&bridge)?;
        hosts_netns.add_bridge_link(
            &bridge,
            "server0",
            &server_netns,
            &interface,
            family
                .has_ipv4()
                .then_some((config.server_ip, config.prefix)),
            family.has_ipv6().then_some((config.server_ip6, 64)),
        )?;
        let status_addr = match config.status_port {
            Some(port) => Some(host_link(&server_netns, port)?),
            None => None,
        };
        let mut vms = Vec::new();
        for (i, host) in config.hosts.iter().enumerate() {
            let tap = format!("tap{i}");
            hosts_netns.add_tap(&tap, &bridge)?;
            let mut spec = host.vm.clone();
            if spec.disk_mib == 0 {
                spec.disk_mib = config.image_mib + 16;
            }
            let vm_dir = dir.join(&spec.name);
            vms.push(Vm::create(
                spec,
                vm_dir,
                hosts_netns.name(),
                server_netns.name(),
                &tap,
                config.accel,
                family,
            )?);
        }
        Ok(Lab {
            vms,
            roles: config.hosts.iter().map(|h| h.role.clone()).collect(),
            installer,
            images,
            stream,
            keyring,
            xz_only: config.xz_only,
            assets,
            ipxe_dir,
            server_ip: config.server_ip,
            server_ip6: config.server_ip6,
            family,
            bridge,
            interface,
            chain: config.chain,
            efi_boot_file: config.efi_boot_file.clone(),
            secure_boot,
            http_port: config.http_port,
            dir,
            status_addr,
            keep_files: config.keep_files,
            hosts_netns,
            server_netns,
        })
    }

    /// The status page's URL, reachable from this machine, when the lab serves it.
    pub fn status_url(&self) -> Option<String> {
        self.status_addr.map(|a| format!("http://{a}/"))
    }

    /// The hosts' namespace: the provisioning segment's bridge, the VMs' taps and their QEMU
    /// processes; no address of its own (no IPv4 at all).
    pub fn hosts_netns(&self) -> &Netns {
        &self.hosts_netns
    }

    /// The provisioning server's namespace: the deployment's servers on [`Lab::interface`],
    /// the BMCs on its loopback (the management side) and the operator's link.
    pub fn server_netns(&self) -> &Netns {
        &self.server_netns
    }

    /// The image a VM gets: the one formatted for its disk's sector size.
    pub fn image_for(&self, vm: &Vm) -> &Image {
        let [native, four_k] = &self.images;
        if vm.spec.sector_size == 4096 {
            four_k
        } else {
            native
        }
    }

    /// The Ignition config the fake assets hold for `role`.
    pub fn role_config(&self, role: &str) -> Result<Vec<u8>, Error> {
        let path = self.assets.join(format!("{role}.ign"));
        std::fs::read(&path).map_err(|source| Error::Io { path, source })
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.vms.clear();
        if !self.keep_files {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A /30 in 198.18.0.0/15 (the benchmarking range, unused on real networks), different for each
/// lab of this machine: the process id and a counter pick it.
fn host_link(netns: &Netns, port: u16) -> Result<std::net::SocketAddr, Error> {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = (std::process::id().wrapping_mul(8)
        + NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
        % 16384;
    let base = u32::from(Ipv4Addr::new(198, 18, 0, 0)) + n * 4;
    let (host, ns) = (Ipv4Addr::from(base + 1), Ipv4Addr::from(base + 2));
    netns.add_host_link(&format!("rmv{n}h"), &format!("rmv{n}n"), host, ns)?;
    Ok(std::net::SocketAddr::from((ns, port)))
}

fn mkdir(path: &Path) -> Result<(), Error> {
    std::fs::create_dir_all(path).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })
}

/// Writes a stand-in for `openshift-install create ignition-configs` output: small Ignition 3.2
/// configs that differ per role, so the disk check can tell which one a host received.
fn write_assets(dir: &Path) -> Result<(), Error> {
    mkdir(dir)?;
    for role in ["bootstrap", "master", "worker"] {
        let config = serde_json::json!({
            "ignition": { "version": "3.2.0" },
            "passwd": { "users": [ { "name": "core", "sshAuthorizedKeys": [
                format!("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILabLabLabLabLabLabLabLabLabLabLabLabLab {role}@rhcos-metal-lab")
            ] } ] },
            "storage": { "files": [ {
                "path": "/etc/rhcos-metal-role",
                "mode": 420,
                "contents": { "source": format!("data:,{role}") },
            } ] },
        });
        let path = dir.join(format!("{role}.ign"));
        std::fs::write(&path, config.to_string()).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
    }
    let meta = serde_json::json!({ "clusterName": "lab", "clusterID": "00000000-0000-4000-8000-000000000000", "infraID": "lab-0000" });
    let path = dir.join("metadata.json");
    std::fs::write(&path, meta.to_string()).map_err(|source| Error::Io { path, source })
}

#[cfg(test)]
mod tests {
    /// The lab's role configs pass ignition-serve's strictness (no error, no warning) and the
    /// real `ignition-validate`, so the lab keeps testing what a real install serves.
    #[test]
    fn lab_role_configs_pass_ignition_serve_and_ignition_validate() {
        let dir = tempfile::tempdir().unwrap();
        super::write_assets(dir.path()).unwrap();
        let store = ignition_serve::Store::load_dir(dir.path()).unwrap();
        for role in ["bootstrap", "master", "worker"] {
            let config = store.role(role).expect("role loaded");
            assert!(
                config.warnings().is_empty(),
                "{role}: {:?}",
                config.warnings()
            );
        }
        let validate = std::path::Path::new("/usr/bin/ignition-validate");
        if !validate.exists() {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "ignition-validate missing: run scripts/install-deps.sh"
            );
            eprintln!("skipping ignition-validate: not installed (package `ignition`)");
            return;
        }
        for role in ["bootstrap", "master", "worker"] {
            let out = std::process::Command::new(validate)
                .arg(dir.path().join(format!("{role}.ign")))
                .output()
                .unwrap();
            assert!(
                out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
                "{role}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}
