//! Every URL and path of a deployment, written once: script generation, the HTTP routes, the
//! DHCP boot files and the timeline all read them from here.

use std::path::{Path, PathBuf};

use pxe_stack::Mac;

use crate::artifacts::Artifacts;
use crate::plan::Plan;
use crate::timeline::{Phase, Timeline};

/// Where everything of one deployment lives: the URLs hosts fetch, the files servers read and
/// the state they write.
///
/// ```
/// # use rhcos_deploy::{Artifacts, Layout, Plan};
/// # let plan = Plan::parse(r#"
/// #     [cluster]
/// #     name = "ocp"
/// #     base_domain = "example.com"
/// #     assets = "/srv/ocp"
/// #     [images]
/// #     stream = "stream.json"
/// #     cache = "/var/cache/rhcos-metal"
/// #     [provisioning]
/// #     interface = "eno2"
/// #     address = "172.22.0.1"
/// # "#, "plan.toml")?;
/// # let artifacts = Artifacts {
/// #     root: "/var/cache/rhcos-metal".into(),
/// #     generation: rhcos_deploy::Generation::Live, kernel: "/aa".into(),
/// #     initramfs: "/bb".into(), rootfs: None, image: Some("/cc".into()), image_4k: None, boot_chain: None,
/// # };
/// let layout = Layout::new(&plan, &artifacts);
/// assert_eq!(layout.url(Layout::REPORT), "http://172.22.0.1:8080/report");
/// assert_eq!(layout.lease_file(), std::path::Path::new("/var/cache/rhcos-metal/state/leases.json"));
/// # Ok::<(), rhcos_deploy::PlanError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Layout {
    base: String,
    base_v6: Option<String>,
    artifacts: Artifacts,
    ipxe_dir: PathBuf,
    state_dir: PathBuf,
    efi_boot_file: String,
}

impl Layout {
    /// The script every iPXE client gets from DHCP: it chains to [`Layout::HOST_SCRIPT`] with
    /// the host's identity.
    pub const BOOT_SCRIPT: &'static str = "/boot.ipxe";
    /// The per-host iPXE script (`?mac=52-54-00-..`).
    pub const HOST_SCRIPT: &'static str = "/ipxe";
    /// Ignition configs for hosts with a fixed role (`?mac=..`).
    pub const IGNITION: &'static str = "/ignition";
    /// Where introspected hosts POST their ghw inventory and get their Ignition config.
    pub const INTROSPECTION: &'static str = "/introspection";
    /// The introspection inventory (`/inventory`, `/inventory/<mac>`).
    pub const INVENTORY: &'static str = "/inventory";
    /// The coreos-installer config file for an introspected host (`?mac=..`): the disk and image
    /// introspection chose, for the installer's `/etc/coreos/installer.d/`.
    pub const INSTALL_CONFIG: &'static str = "/install-config";
    /// Where the installer reports its progress (`?mac=..&stage=..`).
    pub const REPORT: &'static str = "/report";
    /// The status of every host as JSON (`?since=<seq>`: only rows changed after it); one
    /// host's at `/status/<mac>`. Served when the plan's `[status]` is enabled.
    pub const STATUS: &'static str = "/status";
    /// The live status page.
    pub const STATUS_PAGE: &'static str = "/status.html";
    /// The status page's script (served by us: provisioning networks have no internet).
    pub const STATUS_SCRIPT: &'static str = "/status.js";
    /// Prometheus metrics.
    pub const METRICS: &'static str = "/metrics";
    /// The iPXE binary BIOS firmware gets over TFTP.
    pub const BIOS_BOOT_FILE: &'static str = "undionly.kpxe";
    /// The signed shim a Secure Boot host gets from DHCP (TFTP file name; `/shimx64.efi` for
    /// UEFI HTTP boot).
    pub const SHIM_FILE: &'static str = "shimx64.efi";
    /// The signed GRUB, beside the shim under the name shim loads by default.
    pub const GRUB_FILE: &'static str = "grubx64.efi";
    /// GRUB's configuration directory: the prefix built into Debian's network GRUB
    /// (`grubnetx64.efi`), which reads `<prefix>/grub.cfg` from the server it was loaded from.
    /// The per-host configurations are served here as `grub.cfg`, `grub.cfg-01-<mac>` and
    /// `grub.cfg-<IPv4 in hex>`.
    pub const GRUB_DIR: &'static str = "grub";

    /// The layout of `plan`, serving `artifacts`.
    pub fn new(plan: &Plan, artifacts: &Artifacts) -> Self {
        let p = &plan.provisioning;
        // URLs name the IPv4 address when the network has one, else the IPv6 one.
        let base_v6 = p
            .ipv6
            .as_ref()
            .filter(|_| p.family.has_ipv6())
            .map(|v6| format!("http://[{}]:{}", v6.address, p.http_port));
        let base = match (p.address.filter(|_| p.family.has_ipv4()), &base_v6) {
            (Some(v4), _) => format!("http://{v4}:{}", p.http_port),
            (None, Some(v6)) => v6.clone(),
            // Unreachable for a checked plan: the family check needs one of the two.
            (None, None) => format!("http://0.0.0.0:{}", p.http_port),
        };
        Layout {
            base,
            base_v6,
            artifacts: artifacts.clone(),
            ipxe_dir: p.ipxe_dir.clone(),
            state_dir: plan.images.cache.join("state"),
            efi_boot_file: p.efi_boot_file.clone(),
        }
    }

    /// The HTTP base URL hosts use (`http://addr:port`, or `http://[addr]:port` on an IPv6-only
    /// network).
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// The same layout with every URL on the IPv6 address (`http://[addr]:port`), for hosts
    /// that reach the servers over IPv6; `None` when the network has no IPv6.
    ///
    /// ```
    /// # use rhcos_deploy::{Artifacts, Layout, Plan};
    /// # let plan = Plan::parse(r#"
    /// #     [cluster]
    /// #     name = "ocp"
    /// #     base_domain = "example.com"
    /// #     assets = "/srv/ocp"
    /// #     [images]
    /// #     stream = "stream.json"
    /// #     [provisioning]
    /// #     interface = "eno2"
    /// #     family = "dual-stack"
    /// #     address = "172.22.0.1"
    /// #     [provisioning.ipv6]
    /// #     address = "fd00:22::1"
    /// # "#, "plan.toml")?;
    /// # let artifacts = Artifacts {
    /// #     root: "/var/cache/rhcos-metal".into(),
    /// #     generation: rhcos_deploy::Generation::Live, kernel: "/aa".into(),
    /// #     initramfs: "/bb".into(), rootfs: None, image: Some("/cc".into()), image_4k: None, boot_chain: None,
    /// # };
    /// let layout = Layout::new(&plan, &artifacts);
    /// assert_eq!(layout.url(Layout::REPORT), "http://172.22.0.1:8080/report");
    /// let v6 = layout.ipv6().unwrap();
    /// assert_eq!(v6.url(Layout::REPORT), "http://[fd00:22::1]:8080/report");
    /// # Ok::<(), rhcos_deploy::PlanError>(())
    /// ```
    pub fn ipv6(&self) -> Option<Layout> {
        let base = self.base_v6.clone()?;
        Some(Layout {
            base,
            ..self.clone()
        })
    }

    /// The full URL of a path on the HTTP server.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The Ignition config URL of a host with a fixed role.
    pub fn ignition_url(&self, mac: Mac) -> String {
        format!("{}{}?mac={}", self.base, Self::IGNITION, mac.hexhyp())
    }

    /// The install config URL of an introspected host.
    pub fn install_config_url(&self, mac: Mac) -> String {
        format!("{}{}?mac={}", self.base, Self::INSTALL_CONFIG, mac.hexhyp())
    }

    /// The artifacts served, as URL paths under the HTTP root.
    pub fn artifacts(&self) -> &Artifacts {
        &self.artifacts
    }

    /// The directory the HTTP server serves files from (the image cache).
    pub fn http_root(&self) -> &Path {
        &self.artifacts.root
    }

    /// The directory of iPXE binaries, served over TFTP (and to UEFI HTTP boot).
    pub fn ipxe_dir(&self) -> &Path {
        &self.ipxe_dir
    }

    /// The iPXE binary x86-64 UEFI firmware gets.
    pub fn efi_boot_file(&self) -> &str {
        &self.efi_boot_file
    }

    /// The URL path UEFI HTTP boot clients fetch the EFI boot file from.
    pub fn efi_boot_path(&self) -> String {
        format!("/{}", self.efi_boot_file)
    }

    /// The directory of the deployment's own state.
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// The DHCP lease file.
    pub fn lease_file(&self) -> PathBuf {
        self.state_dir.join("leases.json")
    }

    /// The DHCPv6 lease file.
    pub fn lease_file_v6(&self) -> PathBuf {
        self.state_dir.join("leases6.json")
    }

    /// Where the timeline of the last run is written as JSON when it ends.
    pub fn timeline_file(&self) -> PathBuf {
        self.state_dir.join("timeline.json")
    }

    /// The status page's URL: on its own address when the plan binds one, else on the
    /// provisioning HTTP server.
    pub fn status_url(&self, plan: &Plan) -> String {
        match plan.status.bind {
            Some(addr) => format!("http://{addr}{}", Self::STATUS_PAGE),
            None => self.url(Self::STATUS_PAGE),
        }
    }

    /// The introspection inventory directory.
    pub fn inventory_dir(&self) -> PathBuf {
        self.state_dir.join("inventory")
    }

    /// Which HTTP paths mark which phase of a host's install.
    pub fn phases(&self) -> Vec<(&str, Phase)> {
        let a = &self.artifacts;
        let mut phases = vec![
            (Self::HOST_SCRIPT, Phase::Script),
            // Secure Boot hosts: TFTP paths have no leading `/`, HTTP boot paths do.
            (Self::SHIM_FILE, Phase::BootFile),
            (Self::GRUB_FILE, Phase::Loader),
            ("/shimx64.efi", Phase::BootFile),
            ("/grubx64.efi", Phase::Loader),
            // ... and their GRUB loads the kernel and initramfs over TFTP.
            (a.kernel.trim_start_matches('/'), Phase::Kernel),
            (a.initramfs.trim_start_matches('/'), Phase::Initramfs),
            (a.kernel.as_str(), Phase::Kernel),
            (a.initramfs.as_str(), Phase::Initramfs),
        ];
        phases.extend(
            a.image
                .iter()
                .chain(&a.image_4k)
                .map(|i| (i.as_str(), Phase::Image)),
        );
        phases
    }

    /// A timeline for the plan's hosts that knows which transfers mark which phase.
    pub fn timeline(&self, plan: &Plan) -> Timeline {
        let mut timeline = Timeline::new(plan.hosts.iter().map(|h| (h.name.clone(), h.mac)));
        for (path, phase) in self.phases() {
            timeline.classify(path, phase);
        }
        // GRUB's configurations, whatever name GRUB asked for (TFTP paths have no `/`).
        timeline.classify_prefix(format!("{}/grub.cfg", Self::GRUB_DIR), Phase::Script);
        timeline.classify_prefix(format!("/{}/grub.cfg", Self::GRUB_DIR), Phase::Script);
        timeline
    }
}
