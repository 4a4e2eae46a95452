//! The deployment file: what to deploy, where, and with which credentials.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use pxe_stack::{ChainMode, Ipv4Net, LeaseIdentity, Mac};
use serde::{Deserialize, Serialize};

mod bootstrap;
mod ipv6;
mod state;

pub use bootstrap::{bootstrap_cluster, bootstrap_ignition};
pub use ipv6::{Ipv6Network, NetworkFamily};
pub use state::{StateBackend, StateConfig};

/// A whole deployment, as read from its TOML file.
///
/// ```toml
/// [cluster]
/// name = "ocp"
/// base_domain = "example.com"
/// assets = "/srv/ocp/install-dir"     # openshift-install create ignition-configs output
///
/// [images]
/// stream = "https://example.com/streams/rhcos-4.16.json"   # or a file:// URL or a path
/// arch = "x86_64"
///
/// [provisioning]
/// interface = "eno2"
/// address = "172.22.0.1"
/// prefix = 24
/// dhcp_range = ["172.22.0.100", "172.22.0.199"]
///
/// [[hosts]]
/// name = "master-0"
/// mac = "52:54:00:12:60:01"
/// role = "master"                     # or "worker", or "introspect"
/// bmc = { driver = "ipmi", address = "10.0.0.10:623", user = "admin", password_env = "BMC_PW" }
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// The cluster and its Ignition assets.
    pub cluster: Cluster,
    /// Where the RHCOS images come from.
    pub images: Images,
    /// The provisioning network the servers listen on.
    pub provisioning: Provisioning,
    /// The bootstrap VM, when the plan creates one.
    #[serde(default)]
    pub bootstrap: Option<Bootstrap>,
    /// The bare-metal hosts.
    #[serde(default)]
    pub hosts: Vec<Host>,
    /// How introspected hosts get their role and install disk (`[introspection]`, with
    /// `[[introspection.rules]]`); by default they become workers on the smallest disk of at
    /// least 8 GiB.
    #[serde(default)]
    pub introspection: rhcos_introspect::Rules,
    /// How long each stage may take.
    #[serde(default)]
    pub timeouts: Timeouts,
    /// The cluster's DNS server (`[dns]`).
    #[serde(default)]
    pub dns: ClusterDns,
    /// The live status page and Prometheus metrics (`[status]`); off by default.
    #[serde(default)]
    pub status: StatusConfig,
    /// Where the deciding state lives (`[state]`): this server's files (the default) or one
    /// PostgreSQL database shared by several servers.
    #[serde(default)]
    pub state: StateConfig,
}

/// The cluster DNS server: authoritative for `<cluster.name>.<cluster.base_domain>` and the
/// reverse zones of the provisioning (and bootstrap) subnets, forwarding other names for
/// clients inside them.
///
/// ```toml
/// [dns]
/// # enabled = true                # default: true unless provisioning.dns names other servers
/// api_vip = "172.22.0.5"          # api and api-int; default: the bootstrap VM and the masters
/// ingress_vip = "172.22.0.6"      # *.apps; default: the workers (the masters when none)
/// upstream = ["192.0.2.53"]       # default none: names outside the zones are refused
/// etcd_records = true             # etcd-N and _etcd-server-ssl._tcp (OpenShift 4.1 to 4.3)
/// records = [{ name = "registry", type = "CNAME", value = "master-0" }]
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterDns {
    /// Run it; by default yes, unless `provisioning.dns` names other servers.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// The port on the provisioning address (UDP and TCP).
    #[serde(default = "default_dns_port")]
    pub port: u16,
    /// The address of `api` and `api-int`: a VIP or load balancer. Without it, both name the
    /// bootstrap VM and every master.
    #[serde(default)]
    pub api_vip: Option<Ipv4Addr>,
    /// The address of `*.apps`. Without it, the workers (and introspected hosts), or the
    /// masters in a cluster without workers.
    #[serde(default)]
    pub ingress_vip: Option<Ipv4Addr>,
    /// Resolvers (port 53) for names outside the zones; none: such names are refused.
    #[serde(default)]
    pub upstream: Vec<IpAddr>,
    /// Add `etcd-N` for the masters in plan order and their `_etcd-server-ssl._tcp` SRV
    /// records, which OpenShift 4.1 to 4.3 need.
    #[serde(default)]
    pub etcd_records: bool,
    /// The answers' TTL in seconds; short, because host records follow leases.
    #[serde(default = "default_dns_ttl")]
    pub ttl: u32,
    /// Further records, inside the zone (or, for PTR, the reverse zones).
    #[serde(default)]
    pub records: Vec<DnsRecord>,
}

impl Default for ClusterDns {
    fn default() -> Self {
        ClusterDns {
            enabled: None,
            port: default_dns_port(),
            api_vip: None,
            ingress_vip: None,
            upstream: Vec::new(),
            etcd_records: false,
            ttl: default_dns_ttl(),
            records: Vec::new(),
        }
    }
}

fn default_dns_port() -> u16 {
    53
}

fn default_dns_ttl() -> u32 {
    30
}

/// One further record of the cluster zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsRecord {
    /// Relative to the zone (`registry`, `*.apps`), or absolute with a final `.`.
    pub name: String,
    /// `A`, `CNAME`, `SRV`, `TXT` or `PTR`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The data: an address, a name, `priority weight port target` or text.
    pub value: String,
}

/// The live status page (`/status.html`, `/status`, `/status/<mac>`) and Prometheus metrics
/// (`/metrics`). They show no secrets (no BMC passwords, no Ignition contents), but they do show
/// every host's name, MAC and progress: bind them where operators, not hosts, can reach them.
///
/// ```toml
/// [status]
/// enabled = true
/// bind = "10.0.0.5:9100"     # optional: a separate address; by default the provisioning HTTP server
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusConfig {
    /// Serve the page, the JSON API and the metrics.
    #[serde(default)]
    pub enabled: bool,
    /// Serve them on this address (their own HTTP server) instead of on the provisioning HTTP
    /// server.
    #[serde(default)]
    pub bind: Option<SocketAddr>,
}

/// The cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cluster {
    /// The cluster name (`ocp` in `api.ocp.example.com`).
    pub name: String,
    /// The base domain.
    pub base_domain: String,
    /// The `openshift-install create ignition-configs` output directory.
    pub assets: PathBuf,
}

/// The image source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Images {
    /// A stream.json URL (`https://`, `file://`) or path.
    #[serde(default)]
    pub stream: Option<String>,
    /// A local mirror directory (air-gapped sites), used instead of the artifact URLs.
    #[serde(default)]
    pub mirror: Option<PathBuf>,
    /// The architecture to deploy.
    #[serde(default = "default_arch")]
    pub arch: String,
    /// Where verified artifacts are cached.
    #[serde(default = "default_cache")]
    pub cache: PathBuf,
    /// The OpenPGP public keys (armored or binary) whose detached signatures every artifact
    /// must carry; by default the Fedora and Red Hat release keys that coreos-installer also
    /// trusts, and then the installer checks the image's signature again. coreos-installer
    /// knows only those keys, so with a keyring of your own it is told not to check
    /// (`coreos.inst.insecure`) and the image's `.sig` is not offered to it (it would check a
    /// signature it finds, and fail): it installs what we verified.
    #[serde(default)]
    pub keyring: Option<PathBuf>,
    /// The images carry no signature anyone can check (a lab, or a mirror that says so): skip
    /// the checks, and pass `coreos.inst.insecure` to the installer. Never the default.
    #[serde(default)]
    pub unsigned: bool,
    /// Where live installs (RHCOS 4.6+, FCOS) get the metal image: `download` (default:
    /// `coreos.inst.image_url` points at our copy) or `live` (the live system installs itself
    /// and no image is fetched). The legacy installer always downloads.
    #[serde(default)]
    pub install_from: InstallFrom,
}

/// See [`Images::install_from`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InstallFrom {
    /// The installer downloads the metal image from our HTTP server.
    #[default]
    Download,
    /// The live system copies itself to the disk.
    Live,
}

impl Images {
    /// Whether the installer must be told not to check signatures itself.
    pub fn installer_insecure(&self) -> bool {
        self.unsigned || self.keyring.is_some()
    }
}

fn default_arch() -> String {
    "x86_64".into()
}

fn default_cache() -> PathBuf {
    PathBuf::from("/var/cache/rhcos-metal")
}

/// The provisioning network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provisioning {
    /// The interface DHCP binds to.
    pub interface: String,
    /// Which IP versions the network runs: `ipv4` (default), `ipv6` or `dual-stack`.
    #[serde(default)]
    pub family: NetworkFamily,
    /// The servers' IPv4 address on that interface; needed unless `family = "ipv6"`, which
    /// takes none.
    #[serde(default)]
    pub address: Option<Ipv4Addr>,
    /// The IPv6 network (`[provisioning.ipv6]`): needed for `family = "ipv6"` and
    /// `"dual-stack"`.
    #[serde(default)]
    pub ipv6: Option<Ipv6Network>,
    /// The IPv4 subnet's prefix length.
    #[serde(default = "default_prefix")]
    pub prefix: u8,
    /// The dynamic pool (first, last); reservations for the hosts are added on top.
    #[serde(default)]
    pub dhcp_range: Option<(Ipv4Addr, Ipv4Addr)>,
    /// The default gateway handed out, if any.
    #[serde(default)]
    pub router: Option<Ipv4Addr>,
    /// DNS servers handed out.
    #[serde(default)]
    pub dns: Vec<Ipv4Addr>,
    /// The HTTP port.
    #[serde(default = "default_http_port")]
    pub http_port: u16,
    /// Send SLAAC-only IPv6 router advertisements for this ULA /64 prefix (`fd00:126::`) on the
    /// interface. iPXE otherwise waits about 13 s for IPv6 autoconfiguration on every boot.
    /// IPv4 networks only: an IPv6 network's advertisements announce `provisioning.ipv6`.
    #[serde(default)]
    pub ipv6_ra_prefix: Option<std::net::Ipv6Addr>,
    /// How BIOS clients that look like iPXE are treated: `trust` (default) hands them the
    /// script URL at once; `stateful` first sends `undionly.kpxe` over TFTP and the script only
    /// after that transfer (for NIC ROMs that are not iPXE but cannot be told apart).
    #[serde(default)]
    pub chain: ChainMode,
    /// The iPXE binary x86-64 UEFI firmware gets over TFTP (or HTTP boot): `snponly.efi`
    /// (default: uses the firmware's NIC driver) or `ipxe.efi` (iPXE's own drivers).
    #[serde(default = "default_efi_boot_file")]
    pub efi_boot_file: String,
    /// The directory of iPXE binaries (`undionly.kpxe`, `snponly.efi`, `ipxe.efi`) served over
    /// TFTP; Debian's and Fedora's `ipxe` packages install them in `/usr/lib/ipxe`.
    #[serde(default = "default_ipxe_dir")]
    pub ipxe_dir: PathBuf,
    /// The signed boot chain for hosts with `secure_boot = true`: shim and GRUB, served in
    /// place of iPXE; files the plan names, or the release's own, read from its metal image.
    #[serde(default)]
    pub secure_boot: Option<SecureBoot>,
    /// Who may read every host's data (`/inventory`, the hardware introspection recorded):
    /// loopback always, plus these addresses (an admin workstation, a monitoring host). A host
    /// may read its own record (`/inventory/<its mac>`) from the address holding its lease.
    #[serde(default)]
    pub admin_allow: Vec<IpAddr>,
    /// What a DHCP lease belongs to: `mac` (default: one address per machine through firmware,
    /// iPXE, installer and installed OS, whatever client identifier each sends) or
    /// `client-id` (one per client identifier, option 61, as RFC 2131 has it). Hosts with an
    /// `address` are always keyed by MAC.
    #[serde(default)]
    pub lease_identity: LeaseIdentity,
}

/// Where the signed binaries of the Secure Boot path (shim → GRUB → the release's signed
/// kernel) come from: files the plan names,
///
/// ```toml
/// [provisioning.secure_boot]
/// shim = "/usr/lib/shim/shimx64.efi.signed"                              # Microsoft-signed
/// grub = "/usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed"         # network GRUB
/// ```
///
/// or the ones the release ships, read from the `EFI-SYSTEM` partition of its verified metal
/// image (`EFI/<vendor>/shimx64.efi` and `grubx64.efi`: `redhat` for RHCOS, `fedora` for FCOS):
///
/// ```toml
/// [provisioning.secure_boot]
/// from = "image"
/// ```
///
/// GRUB's configuration is looked up under its built-in prefix (`/grub` for Debian's network
/// GRUB), which is where the deployment serves the per-host configurations. GRUB loads the
/// kernel and initramfs over TFTP: Debian's signed network GRUB has no `http` module.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "SecureBootKeys", into = "SecureBootKeys")]
pub enum SecureBoot {
    /// The files the plan names.
    Files(SecureBootFiles),
    /// The release's shim and GRUB, from its metal image (fetched and verified like every
    /// other artifact, then read without mounting; see `rhcos_images::esp`).
    FromImage,
}

/// The signed shim and GRUB, as files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecureBootFiles {
    /// The shim the firmware verifies with Microsoft's UEFI CA (served as `shimx64.efi`).
    pub shim: PathBuf,
    /// The signed network GRUB the shim loads (served beside it as `grubx64.efi`, the name
    /// shim asks for).
    pub grub: PathBuf,
}

/// The keys of `[provisioning.secure_boot]` as written: `shim` + `grub`, or `from`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SecureBootKeys {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    shim: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    grub: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    from: Option<BootChainFrom>,
}

/// `from = "image"`: the only source besides named files, for now (the live ISO would be
/// another).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum BootChainFrom {
    Image,
}

impl TryFrom<SecureBootKeys> for SecureBoot {
    type Error = String;

    fn try_from(k: SecureBootKeys) -> Result<Self, String> {
        match (k.shim, k.grub, k.from) {
            (Some(shim), Some(grub), None) => Ok(SecureBoot::Files(SecureBootFiles { shim, grub })),
            (None, None, Some(BootChainFrom::Image)) => Ok(SecureBoot::FromImage),
            (_, _, Some(_)) => Err(
                "`from = \"image\"` reads shim and GRUB from the release: drop `shim` and `grub`"
                    .into(),
            ),
            _ => Err(
                "needs both `shim` and `grub` (files), or `from = \"image\"` (the release's own)"
                    .into(),
            ),
        }
    }
}

impl From<SecureBoot> for SecureBootKeys {
    fn from(s: SecureBoot) -> Self {
        match s {
            SecureBoot::Files(f) => SecureBootKeys {
                shim: Some(f.shim),
                grub: Some(f.grub),
                from: None,
            },
            SecureBoot::FromImage => SecureBootKeys {
                shim: None,
                grub: None,
                from: Some(BootChainFrom::Image),
            },
        }
    }
}

fn default_ipxe_dir() -> PathBuf {
    PathBuf::from("/usr/lib/ipxe")
}

fn default_efi_boot_file() -> String {
    "snponly.efi".into()
}

fn default_prefix() -> u8 {
    24
}

fn default_http_port() -> u16 {
    8080
}

/// The bootstrap VM and the libvirt cluster network it sits on.
///
/// ```toml
/// [bootstrap]
/// libvirt_uri = "qemu:///system"
/// image = "/var/lib/libvirt/images/ocp-bootstrap.qcow2"  # an RHCOS qcow2 on the libvirt host
/// mac = "52:54:00:7e:00:0a"
/// address = "192.168.126.10"                          # inside network_address/network_prefix
/// # ignition = "/var/lib/libvirt/images/bootstrap.ign" # default: <cluster.assets>/bootstrap.ign
/// # ignition_via = "fwcfg"                            # or "qemu-commandline"
/// # domain_type = "kvm"                               # or "qemu" (TCG)
/// # network_address = "192.168.126.1"
/// # network_prefix = 24
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bootstrap {
    /// The libvirt connection URI.
    #[serde(default = "default_libvirt_uri")]
    pub libvirt_uri: String,
    /// Memory in MiB.
    #[serde(default = "default_bootstrap_memory")]
    pub memory_mib: u64,
    /// Virtual CPUs.
    #[serde(default = "default_bootstrap_vcpus")]
    pub vcpus: u32,
    /// The bootstrap VM's MAC on the cluster network.
    pub mac: Mac,
    /// The bootstrap VM's address.
    pub address: Ipv4Addr,
    /// The boot disk (an RHCOS qcow2 image), an absolute path on the libvirt host.
    pub image: PathBuf,
    /// The Ignition config QEMU hands the VM through fw_cfg, a path QEMU can read on the libvirt
    /// host; by default `bootstrap.ign` in [`Cluster::assets`].
    #[serde(default)]
    pub ignition: Option<PathBuf>,
    /// How the Ignition config reaches QEMU's fw_cfg.
    #[serde(default)]
    pub ignition_via: IgnitionVia,
    /// `kvm`, or `qemu` (TCG) where KVM is missing or unreliable.
    #[serde(default = "default_domain_type")]
    pub domain_type: libvirt_templates::DomainType,
    /// The domain name; by default `<cluster>-bootstrap`.
    #[serde(default)]
    pub name: Option<String>,
    /// The libvirt network name; by default the cluster name.
    #[serde(default)]
    pub network_name: Option<String>,
    /// The network's bridge (at most 15 bytes); by default `br-<cluster>`.
    #[serde(default)]
    pub bridge: Option<String>,
    /// The host's address on the cluster network (the VM's gateway and DNS server).
    #[serde(default = "default_network_address")]
    pub network_address: Ipv4Addr,
    /// The cluster network's prefix length.
    #[serde(default = "default_prefix")]
    pub network_prefix: u8,
    /// The cluster network's dynamic DHCP pool (first, last); by default its upper half.
    #[serde(default)]
    pub dhcp_range: Option<(Ipv4Addr, Ipv4Addr)>,
}

/// See [`Bootstrap::ignition_via`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IgnitionVia {
    /// libvirt's native `<sysinfo type='fwcfg'>` (libvirt 6.5 and later).
    #[default]
    Fwcfg,
    /// `<qemu:commandline>` with `-fw_cfg` (older libvirt; taints the domain "custom-argv").
    QemuCommandline,
}

fn default_domain_type() -> libvirt_templates::DomainType {
    libvirt_templates::DomainType::Kvm
}

fn default_network_address() -> Ipv4Addr {
    Ipv4Addr::new(192, 168, 126, 1)
}

fn default_libvirt_uri() -> String {
    "qemu:///system".into()
}

fn default_bootstrap_memory() -> u64 {
    16384
}

fn default_bootstrap_vcpus() -> u32 {
    4
}

/// One bare-metal host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Host {
    /// The host name.
    pub name: String,
    /// The provisioning NIC's MAC.
    pub mac: Mac,
    /// Its role, or introspection.
    pub role: Role,
    /// A reserved IPv4 address; otherwise one comes from the pool.
    #[serde(default)]
    pub address: Option<Ipv4Addr>,
    /// A reserved IPv6 address (DHCPv6, by MAC); otherwise one comes from
    /// `provisioning.ipv6.dhcp_range`.
    #[serde(default)]
    pub ipv6: Option<std::net::Ipv6Addr>,
    /// The install disk.
    #[serde(default = "default_install_dev")]
    pub install_dev: String,
    /// The install disk's logical sector size: `512`, or `4096` for 4Kn disks, which get the
    /// 4k metal image. Unset: 512, or what introspection reports.
    #[serde(default)]
    pub sector_size: Option<u32>,
    /// The host's BMC.
    #[serde(default)]
    pub bmc: Option<BmcSpec>,
    /// The host boots with UEFI Secure Boot on: DHCP gives it the signed shim, which loads
    /// the signed GRUB and its per-host configuration, instead of iPXE. Needs
    /// `provisioning.secure_boot`.
    #[serde(default)]
    pub secure_boot: bool,
}

fn default_install_dev() -> String {
    "/dev/sda".into()
}

/// A host's role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A control-plane node.
    Master,
    /// A compute node.
    Worker,
    /// Decided by the introspection rules from the host's hardware.
    Introspect,
}

impl Role {
    /// The Ignition asset name (`master`, `worker`), or `None` for introspection.
    pub fn asset(&self) -> Option<&'static str> {
        match self {
            Role::Master => Some("master"),
            Role::Worker => Some("worker"),
            Role::Introspect => None,
        }
    }
}

/// A BMC and how to reach it.
///
/// ```toml
/// bmc = { driver = "ipmi", address = "10.0.0.10:623", user = "admin", password_env = "BMC_PW" }
/// bmc = { driver = "redfish", address = "https://10.0.0.11", user = "root", password_env = "BMC_PW", ca_file = "/etc/pki/bmc-ca.pem" }
/// bmc = { driver = "redfish", address = "https://10.0.0.12", user = "root", password_env = "BMC_PW", tls_fingerprint = "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", auth = "basic" }
/// bmc = { driver = "ipmi", address = "10.0.0.13:623", user = "admin", password_env = "BMC_PW", ipmi_interface = "lan", allow_insecure_auth = true }
/// bmc = { driver = "libvirt", address = "ocp-master-0", uri = "qemu:///system" }
/// ```
///
/// Redfish trust: the system store; or `ca_file`, a PEM file that may hold the BMC's own
/// self-signed certificate (CA:TRUE or not; it is then trusted as that BMC's, whatever names
/// it carries) or the CA that issued it (hostname checked); or `tls_fingerprint`, the SHA-256
/// of exactly one certificate (`openssl x509 -noout -fingerprint -sha256` prints it), checked
/// before any credential is sent; or `insecure`. At most one of the three.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BmcSpec {
    /// The driver.
    pub driver: BmcDriver,
    /// `host:port` for IPMI, an `http(s)://` URL for Redfish, a domain name for libvirt.
    pub address: String,
    /// The user name.
    #[serde(default)]
    pub user: String,
    /// The password, inline (prefer `password_env`).
    #[serde(default)]
    pub password: Option<String>,
    /// The environment variable that holds the password.
    #[serde(default)]
    pub password_env: Option<String>,
    /// Redfish: trust the certificates in this PEM file instead of the system's: the BMC's
    /// own self-signed certificate, or the CA that issued it.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Redfish: pin exactly the certificate with this SHA-256 fingerprint (`sha256:` and 64 hex
    /// digits, or openssl's `AB:CD:...` form).
    #[serde(default)]
    pub tls_fingerprint: Option<String>,
    /// Redfish: accept any certificate. Anyone on the path can then read the password.
    #[serde(default)]
    pub insecure: bool,
    /// Redfish: `"auto"` (the default: a session, and basic auth when the session service
    /// answers 401/403/404/405), `"session"` or `"basic"`.
    #[serde(default)]
    pub auth: Option<String>,
    /// IPMI: `"auto"` (the default: RMCP+, never a fallback to IPMI 1.5 on the word of an
    /// unauthenticated reply), `"lanplus"` (RMCP+) or `"lan"` (IPMI 1.5, for BMCs without
    /// RMCP+).
    #[serde(default)]
    pub ipmi_interface: Option<String>,
    /// IPMI: allow IPMI 1.5 authtype NONE or STRAIGHT (the password in clear) when the BMC
    /// offers nothing better. Refused by default.
    #[serde(default)]
    pub allow_insecure_auth: bool,
    /// Redfish: the system's id (or `@odata.id`); by default the first of the Systems.
    #[serde(default)]
    pub system: Option<String>,
    /// libvirt: the connection URI; by default `qemu:///system`.
    #[serde(default)]
    pub uri: Option<String>,
}

/// The BMC protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BmcDriver {
    /// IPMI over LAN.
    #[default]
    Ipmi,
    /// Redfish over HTTPS.
    Redfish,
    /// A libvirt domain.
    Libvirt,
}

impl BmcDriver {
    /// The name used in plan files (`ipmi`, `redfish`, `libvirt`).
    pub fn name(self) -> &'static str {
        match self {
            BmcDriver::Ipmi => "ipmi",
            BmcDriver::Redfish => "redfish",
            BmcDriver::Libvirt => "libvirt",
        }
    }
}

/// Stage time limits, in seconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timeouts {
    /// Power-on to installed, per host.
    #[serde(default = "default_install_secs")]
    pub install_secs: u64,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            install_secs: default_install_secs(),
        }
    }
}

fn default_install_secs() -> u64 {
    1800
}

impl Timeouts {
    /// The install limit.
    pub fn install(&self) -> Duration {
        Duration::from_secs(self.install_secs)
    }
}

/// A deployment file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlanError {
    /// Not valid TOML, or a value of the wrong type or shape, at `path`.
    #[error("{file}:{line}:{column}: at `{path}`: {message}")]
    Syntax {
        /// The file, or `<string>`.
        file: String,
        /// The line, from 1 (0 when the parser gave no position).
        line: usize,
        /// The column, from 1 (0 when the parser gave no position).
        column: usize,
        /// The key path (`hosts[1].mac`); for TOML syntax errors, the table and key being
        /// written where the error is.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// Values that are fine alone but not together.
    #[error("{file}: at `{path}`: {message}")]
    Invalid {
        /// The file, or `<string>`.
        file: String,
        /// The key path.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The file could not be read.
    #[error("cannot read {file}")]
    Read {
        /// The file.
        file: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

impl Plan {
    /// Reads and checks a deployment file.
    pub fn load(path: &std::path::Path) -> Result<Plan, PlanError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| PlanError::Read {
            file: file.clone(),
            source,
        })?;
        Self::parse(&text, &file)
    }

    /// Reads and checks a deployment file, and checks the files it names that must be here
    /// before anything starts: the asset directory with `master.ign` and `worker.ign`.
    /// `deploy --dry-run` uses this.
    pub fn load_checked(path: &std::path::Path) -> Result<Plan, PlanError> {
        let plan = Self::load(path)?;
        plan.check_assets(&path.display().to_string())?;
        Ok(plan)
    }

    /// Checks that [`Cluster::assets`] is a directory holding `master.ign` and `worker.ign`
    /// (what `openshift-install create ignition-configs` writes); `file` names the plan.
    pub fn check_assets(&self, file: &str) -> Result<(), PlanError> {
        let dir = &self.cluster.assets;
        let invalid = |message: String| PlanError::Invalid {
            file: file.to_owned(),
            path: "cluster.assets".into(),
            message,
        };
        if !dir.is_dir() {
            return Err(invalid(format!("{} is not a directory", dir.display())));
        }
        for name in ["master.ign", "worker.ign"] {
            if !dir.join(name).is_file() {
                return Err(invalid(format!(
                    "{} has no {name} (run `openshift-install create ignition-configs` there)",
                    dir.display()
                )));
            }
        }
        Ok(())
    }

    /// Parses and checks a deployment from TOML text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Plan, PlanError> {
        let syntax = |span: Option<std::ops::Range<usize>>, path: String, message: &str| {
            let at = span.map_or(usize::MAX, |s| s.start);
            let (line, column) = line_column(text, at);
            PlanError::Syntax {
                file: file.to_owned(),
                line,
                column,
                path,
                message: message.trim_end().to_owned(),
            }
        };
        let de = toml::Deserializer::parse(text).map_err(|e| {
            let path = e
                .span()
                .map(|s| key_path_at(text, s.start))
                .unwrap_or_default();
            syntax(e.span(), path, e.message())
        })?;
        let plan: Plan = serde_path_to_error::deserialize(de)
            .map_err(|e| syntax(e.inner().span(), e.path().to_string(), e.inner().message()))?;
        plan.check(file)?;
        Ok(plan)
    }

    fn check(&self, file: &str) -> Result<(), PlanError> {
        let invalid = |path: String, message: String| PlanError::Invalid {
            file: file.to_owned(),
            path,
            message,
        };
        if let Err((key, message)) = self.state.check() {
            return Err(invalid(format!("state.{key}"), message));
        }
        if self.images.stream.is_none() && self.images.mirror.is_none() {
            return Err(invalid(
                "images".into(),
                "give `stream` (a stream.json URL or path) or `mirror` (a directory)".into(),
            ));
        }
        if self.images.unsigned && self.images.keyring.is_some() {
            return Err(invalid(
                "images.unsigned".into(),
                "`unsigned` skips signature checks, so `keyring` would never be used".into(),
            ));
        }
        for (i, h) in self.hosts.iter().enumerate() {
            if let Some(size) = h.sector_size
                && !matches!(size, 512 | 4096)
            {
                return Err(invalid(
                    format!("hosts[{i}].sector_size"),
                    format!(
                        "{size} is not a logical sector size coreos images exist for (512, 4096)"
                    ),
                ));
            }
        }
        ipv6::check(self).map_err(|(path, message)| invalid(path, message))?;
        if self.provisioning.address.is_some()
            && (self.provisioning.prefix == 0 || self.provisioning.prefix > 30)
        {
            return Err(invalid(
                "provisioning.prefix".into(),
                format!(
                    "{} is not a usable IPv4 prefix length",
                    self.provisioning.prefix
                ),
            ));
        }
        let (mut names, mut macs, mut addrs) = (HashSet::new(), HashSet::new(), HashSet::new());
        for (i, h) in self.hosts.iter().enumerate() {
            if !names.insert(h.name.as_str()) {
                return Err(invalid(
                    format!("hosts[{i}].name"),
                    format!("{} is used twice", h.name),
                ));
            }
            if !macs.insert(h.mac) {
                return Err(invalid(
                    format!("hosts[{i}].mac"),
                    format!("{} is used twice", h.mac),
                ));
            }
            if let (Some(a), Some(own)) = (h.address, self.provisioning.address) {
                if a == own {
                    return Err(invalid(
                        format!("hosts[{i}].address"),
                        format!("{a} is the servers' own address (provisioning.address)"),
                    ));
                }
                if !addrs.insert(a) {
                    return Err(invalid(
                        format!("hosts[{i}].address"),
                        format!("{a} is used twice"),
                    ));
                }
                if !self.in_subnet(a) {
                    return Err(invalid(
                        format!("hosts[{i}].address"),
                        format!("{a} is outside {own}/{}", self.provisioning.prefix),
                    ));
                }
            }
            if h.secure_boot && self.provisioning.secure_boot.is_none() {
                return Err(invalid(
                    format!("hosts[{i}].secure_boot"),
                    "needs `provisioning.secure_boot` (the signed shim and GRUB to serve)".into(),
                ));
            }
            if let Some(bmc) = &h.bmc {
                bmc.check()
                    .map_err(|(key, message)| invalid(format!("hosts[{i}].bmc{key}"), message))?;
            }
        }
        if let Some((first, last)) = self.provisioning.dhcp_range
            && (!self.in_subnet(first) || !self.in_subnet(last) || first > last)
        {
            return Err(invalid(
                "provisioning.dhcp_range".into(),
                format!("{first}..{last} is not a range inside the provisioning subnet"),
            ));
        }
        self.check_identities()
            .map_err(|(path, message)| invalid(path, message))?;
        bootstrap::layout(self, file)?;
        self.dns_zone_in(file)?;
        Ok(())
    }

    /// What DHCP and DNS will hand out must be valid there: host names, MACs, reserved
    /// addresses, ports and disks. `Err((key path, message))`.
    fn check_identities(&self) -> Result<(), (String, String)> {
        let p = &self.provisioning;
        let plain =
            |name: &str| !name.is_empty() && !name.contains('/') && name != "." && name != "..";
        if !plain(&p.efi_boot_file) {
            return Err((
                "provisioning.efi_boot_file".into(),
                format!("{:?} is not a file name in ipxe_dir", p.efi_boot_file),
            ));
        }
        if p.http_port == 0 {
            return Err(("provisioning.http_port".into(), "0 is not a port".into()));
        }
        // None for v6-only plans, whose IPv4 keys the family check refused.
        let net = self.subnet();
        if let (Some(net), Some(own)) = (net, p.address)
            && let Some(which) = net.special(own)
        {
            return Err((
                "provisioning.address".into(),
                format!("{own} is the {which} address of {net}"),
            ));
        }
        if let (Some(net), Some(r)) = (net, p.router)
            && (!net.contains(r) || net.special(r).is_some() || r.is_unspecified())
        {
            return Err((
                "provisioning.router".into(),
                format!("{r} is not a host address inside {net}"),
            ));
        }
        for (i, h) in self.hosts.iter().enumerate() {
            if let Err(why) = hostname_label(&h.name) {
                return Err((format!("hosts[{i}].name"), format!("{:?} {why}", h.name)));
            }
            if let Some(why) = h.mac.not_unicast() {
                return Err((format!("hosts[{i}].mac"), format!("{} {why}", h.mac)));
            }
            if h.install_dev
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
            {
                return Err((
                    format!("hosts[{i}].install_dev"),
                    format!(
                        "{:?} holds whitespace, which would split the kernel command line",
                        h.install_dev
                    ),
                ));
            }
            if !h.install_dev.starts_with("/dev/") || h.install_dev.len() <= "/dev/".len() {
                return Err((
                    format!("hosts[{i}].install_dev"),
                    format!("{:?} is not a device path under /dev/", h.install_dev),
                ));
            }
            if let (Some(net), Some(a)) = (net, h.address) {
                if let Some(which) = net.special(a) {
                    return Err((
                        format!("hosts[{i}].address"),
                        format!("{a} is the subnet's {which} address"),
                    ));
                }
                if let Some((first, last)) = p.dhcp_range
                    && (first..=last).contains(&a)
                {
                    return Err((
                        format!("hosts[{i}].address"),
                        format!(
                            "{a} is inside dhcp_range {first}..{last}, where another host may \
                             hold a dynamic lease on it"
                        ),
                    ));
                }
            }
            if let Some(b) = &self.bootstrap
                && b.mac == h.mac
            {
                return Err((
                    format!("hosts[{i}].mac"),
                    format!("{} is the bootstrap VM's MAC", h.mac),
                ));
            }
        }
        if let (Some(net), Some(own), Some((first, last))) = (net, p.address, p.dhcp_range) {
            for a in [first, last] {
                if let Some(which) = net.special(a) {
                    return Err((
                        "provisioning.dhcp_range".into(),
                        format!("{a} is the subnet's {which} address"),
                    ));
                }
            }
            if (first..=last).contains(&own) {
                return Err((
                    "provisioning.dhcp_range".into(),
                    format!("{first}..{last} holds the server's own address {own}"),
                ));
            }
        }
        Ok(())
    }

    /// Whether the plan runs its DNS server.
    pub fn dns_enabled(&self) -> bool {
        let p = &self.provisioning;
        let others = !p.dns.is_empty() || p.ipv6.as_ref().is_some_and(|v6| !v6.dns.is_empty());
        self.dns.enabled.unwrap_or(!others)
    }

    /// The DNS servers DHCPv6 hands out (option 23): `provisioning.ipv6.dns`, else ours on the
    /// IPv6 address.
    pub fn dns_servers6(&self) -> Vec<std::net::Ipv6Addr> {
        match &self.provisioning.ipv6 {
            Some(v6) if v6.dns.is_empty() && self.dns_enabled() => vec![v6.address],
            Some(v6) => v6.dns.clone(),
            None => Vec::new(),
        }
    }

    /// The DNS servers DHCP hands out (option 6): `provisioning.dns`, else ours.
    pub fn dns_servers(&self) -> Vec<Ipv4Addr> {
        if let Some(own) = self.provisioning.address
            && self.provisioning.dns.is_empty()
            && self.dns_enabled()
        {
            vec![own]
        } else {
            self.provisioning.dns.clone()
        }
    }

    /// The cluster zone as the DNS server's configuration (`None` when it is not enabled),
    /// checked: a name outside the zone or colliding with another is refused with its key path.
    pub fn dns_zone(&self) -> Result<Option<pxe_stack::dns::Config>, PlanError> {
        self.dns_zone_in("<plan>")
    }

    fn dns_zone_in(&self, file: &str) -> Result<Option<pxe_stack::dns::Config>, PlanError> {
        use pxe_stack::dns::{self, Entry, HostAddr, Value};
        if !self.dns_enabled() {
            return Ok(None);
        }
        let p = &self.provisioning;
        let own: Vec<IpAddr> = p
            .address
            .map(IpAddr::V4)
            .into_iter()
            .chain(p.ipv6.as_ref().map(|v6| IpAddr::V6(v6.address)))
            .collect();
        let invalid = |path: String, message: String| PlanError::Invalid {
            file: file.to_owned(),
            path,
            message,
        };
        let d = &self.dns;
        // The zone's own name: the cluster name is one label of it.
        if let Err(why) = hostname_label(&self.cluster.name) {
            return Err(invalid(
                "cluster.name".into(),
                format!(
                    "{:?} {why} (it is a label of the DNS zone)",
                    self.cluster.name
                ),
            ));
        }
        // Forwarding to ourselves would loop every query until the forward limit.
        for (i, u) in d.upstream.iter().enumerate() {
            if own.contains(u) || u.is_unspecified() {
                return Err(invalid(
                    format!("dns.upstream[{i}]"),
                    format!("{u} is this DNS server itself; name another resolver"),
                ));
            }
        }
        // Each entry with the key path its errors name; `true` when the entry's own field
        // (`.name`, `.value`) is to be appended.
        let mut entries: Vec<(Entry, String, bool)> = Vec::new();
        let host_a = |h: &Host| {
            Value::HostA(HostAddr {
                mac: h.mac,
                reserved: h.address,
                reserved6: h.ipv6,
            })
        };
        let masters: Vec<(usize, &Host)> = self
            .hosts
            .iter()
            .enumerate()
            .filter(|(_, h)| h.role == Role::Master)
            .collect();
        for name in ["api", "api-int"] {
            if let Some(vip) = d.api_vip {
                entries.push((Entry::new(name, Value::A(vip)), "dns.api_vip".into(), false));
                continue;
            }
            if let Some(b) = &self.bootstrap {
                entries.push((
                    Entry::new(name, Value::A(b.address)),
                    "bootstrap".into(),
                    false,
                ));
            }
            for (i, h) in &masters {
                entries.push((Entry::new(name, host_a(h)), format!("hosts[{i}]"), false));
            }
        }
        if let Some(vip) = d.ingress_vip {
            entries.push((
                Entry::new("*.apps", Value::A(vip)),
                "dns.ingress_vip".into(),
                false,
            ));
        } else {
            let workers: Vec<(usize, &Host)> = self
                .hosts
                .iter()
                .enumerate()
                .filter(|(_, h)| matches!(h.role, Role::Worker | Role::Introspect))
                .collect();
            let apps = if workers.is_empty() {
                &masters
            } else {
                &workers
            };
            for (i, h) in apps {
                entries.push((
                    Entry::new("*.apps", host_a(h)),
                    format!("hosts[{i}]"),
                    false,
                ));
            }
        }
        if d.etcd_records {
            for (n, (i, h)) in masters.iter().enumerate() {
                let path = format!("hosts[{i}]");
                entries.push((
                    Entry::new(format!("etcd-{n}"), host_a(h)),
                    path.clone(),
                    false,
                ));
                let srv = Value::Srv {
                    priority: 0,
                    weight: 10,
                    port: 2380,
                    target: format!("etcd-{n}"),
                };
                entries.push((Entry::new("_etcd-server-ssl._tcp", srv), path, false));
            }
        }
        if let Some(b) = &self.bootstrap {
            let name = b.name.clone().unwrap_or_else(|| "bootstrap".into());
            let value = Value::Host(HostAddr {
                mac: b.mac,
                reserved: Some(b.address),
                reserved6: None,
            });
            entries.push((Entry::new(name, value), "bootstrap".into(), false));
        }
        for (i, h) in self.hosts.iter().enumerate() {
            let value = Value::Host(HostAddr {
                mac: h.mac,
                reserved: h.address,
                reserved6: h.ipv6,
            });
            entries.push((
                Entry::new(h.name.clone(), value),
                format!("hosts[{i}]"),
                true,
            ));
        }
        for (i, r) in d.records.iter().enumerate() {
            let value = Value::parse(&r.kind, &r.value).map_err(|e| {
                let known = ["A", "CNAME", "SRV", "TXT", "PTR"];
                let field = if known.contains(&r.kind.to_ascii_uppercase().as_str()) {
                    "value"
                } else {
                    "type"
                };
                invalid(format!("dns.records[{i}].{field}"), e.to_string())
            })?;
            entries.push((
                Entry::new(r.name.clone(), value),
                format!("dns.records[{i}]"),
                true,
            ));
        }
        // The reverse zones the server answers, and the clients it forwards for.
        let mut subnets: Vec<(Ipv4Addr, u8)> =
            p.address.map(|a| (a, p.prefix)).into_iter().collect();
        if let Some(b) = &self.bootstrap {
            subnets.push((b.network_address, b.network_prefix));
        }
        let subnets6 = p.ipv6.iter().map(|v6| (v6.address, v6.prefix)).collect();
        let config = dns::Config {
            origin: format!("{}.{}", self.cluster.name, self.cluster.base_domain),
            subnets,
            subnets6,
            upstream: d.upstream.iter().map(|a| SocketAddr::new(*a, 53)).collect(),
            ttl: d.ttl,
            entries: entries.iter().map(|(e, _, _)| e.clone()).collect(),
            ..dns::Config::default()
        };
        match dns::Zone::new(&config) {
            Ok(_) => Ok(Some(config)),
            Err(dns::Error::Entry {
                index,
                field,
                reason,
                ..
            }) => {
                let (_, path, own) = &entries[index];
                let path = if *own {
                    format!("{path}.{field}")
                } else {
                    path.clone()
                };
                Err(invalid(path, reason))
            }
            // The cluster name was checked above: what is left is the base domain.
            Err(dns::Error::Origin { reason }) => Err(invalid(
                "cluster.base_domain".into(),
                format!("{:?}: the zone {reason}", self.cluster.base_domain),
            )),
            Err(e) => Err(invalid("cluster".into(), e.to_string())),
        }
    }

    /// The IPv4 provisioning subnet; `None` when the network is IPv6 only.
    pub fn subnet(&self) -> Option<Ipv4Net> {
        self.provisioning
            .address
            .map(|a| Ipv4Net::new(a, self.provisioning.prefix))
    }

    /// Whether `addr` is inside the IPv4 provisioning subnet.
    pub fn in_subnet(&self, addr: Ipv4Addr) -> bool {
        self.subnet().is_some_and(|n| n.contains(addr))
    }
}

/// The 1-based line and column of byte `at` in `text` (`(0, 0)` past its end).
fn line_column(text: &str, at: usize) -> (usize, usize) {
    if at > text.len() {
        return (0, 0);
    }
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[start..].chars().count() + 1)
}

/// The key path being written at byte `at` of a TOML document that does not parse: the last
/// table header before it (`hosts[1]` for the second `[[hosts]]`) and the key on its line.
fn key_path_at(text: &str, at: usize) -> String {
    let mut table = String::new();
    let mut arrays: std::collections::HashMap<String, usize> = Default::default();
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let here = offset..offset + line.len();
        offset += line.len();
        let t = line.trim();
        let key = || {
            t.split_once('=')
                .map(|(k, _)| k.trim().trim_matches('"').to_owned())
                .filter(|k| !k.is_empty() && !k.starts_with('['))
        };
        if here.contains(&at) || (here.end == at && offset == text.len()) {
            return match (table.is_empty(), key()) {
                (_, None) => table,
                (true, Some(k)) => k,
                (false, Some(k)) => format!("{table}.{k}"),
            };
        }
        if let Some(name) = t.strip_prefix("[[").and_then(|r| r.split("]]").next()) {
            let name = name.trim().to_owned();
            let n = arrays.entry(name.clone()).or_insert(0);
            table = format!("{name}[{n}]");
            *n += 1;
        } else if let Some(name) = t.strip_prefix('[').and_then(|r| r.split(']').next()) {
            table = name.trim().to_owned();
        }
    }
    table
}

/// A host name as DHCP (option 12) and DNS carry it: one RFC 1123 label.
fn hostname_label(name: &str) -> Result<(), &'static str> {
    if name.is_empty() || name.len() > 63 {
        return Err("is not 1 to 63 characters long");
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err("may hold only letters, digits and hyphens");
    }
    if name.starts_with('-') || name.ends_with('-') {
        return Err("may not start or end with a hyphen");
    }
    Ok(())
}

impl BmcSpec {
    /// Checks the fields against the driver: `Err((".key", message))`.
    fn check(&self) -> Result<(), (&'static str, String)> {
        let only = |key: &'static str, set: bool, driver: BmcDriver| {
            if set && self.driver != driver {
                Err((
                    key,
                    format!("only the {} driver takes `{}`", driver.name(), &key[1..]),
                ))
            } else {
                Ok(())
            }
        };
        only(".ca_file", self.ca_file.is_some(), BmcDriver::Redfish)?;
        only(
            ".tls_fingerprint",
            self.tls_fingerprint.is_some(),
            BmcDriver::Redfish,
        )?;
        only(".insecure", self.insecure, BmcDriver::Redfish)?;
        only(".auth", self.auth.is_some(), BmcDriver::Redfish)?;
        only(
            ".allow_insecure_auth",
            self.allow_insecure_auth,
            BmcDriver::Ipmi,
        )?;
        only(
            ".ipmi_interface",
            self.ipmi_interface.is_some(),
            BmcDriver::Ipmi,
        )?;
        if let Some(i) = &self.ipmi_interface
            && !matches!(i.as_str(), "auto" | "lanplus" | "lan")
        {
            return Err((
                ".ipmi_interface",
                format!("{i:?} is not one of \"auto\", \"lanplus\", \"lan\""),
            ));
        }
        if let Some(f) = &self.tls_fingerprint {
            f.parse::<bmc_power::Fingerprint>()
                .map_err(|e| (".tls_fingerprint", e.to_string()))?;
        }
        if let Some(a) = &self.auth
            && !matches!(a.as_str(), "auto" | "session" | "basic")
        {
            return Err((
                ".auth",
                format!("{a:?} is not one of \"auto\", \"session\", \"basic\""),
            ));
        }
        only(".system", self.system.is_some(), BmcDriver::Redfish)?;
        only(".uri", self.uri.is_some(), BmcDriver::Libvirt)?;
        match self.driver {
            BmcDriver::Ipmi if self.address.parse::<SocketAddr>().is_err() => {
                return Err((".address", format!("{:?} is not host:port", self.address)));
            }
            BmcDriver::Redfish
                if !(self.address.starts_with("https://")
                    || self.address.starts_with("http://")) =>
            {
                return Err((
                    ".address",
                    format!("{:?} is not an http(s):// URL", self.address),
                ));
            }
            BmcDriver::Libvirt if self.address.is_empty() || self.address.contains('/') => {
                return Err((
                    ".address",
                    format!("{:?} is not a domain name", self.address),
                ));
            }
            _ => {}
        }
        if self.ca_file.is_some() && self.insecure {
            return Err(("", "give `ca_file` or `insecure`, not both".into()));
        }
        if self.tls_fingerprint.is_some() && (self.ca_file.is_some() || self.insecure) {
            return Err((
                "",
                "give one of `ca_file`, `tls_fingerprint` and `insecure`".into(),
            ));
        }
        if self.password.is_some() && self.password_env.is_some() {
            return Err(("", "give `password` or `password_env`, not both".into()));
        }
        Ok(())
    }

    /// The password, from the file or the named environment variable.
    pub fn password(&self) -> Option<String> {
        self.password.clone().or_else(|| {
            self.password_env
                .as_deref()
                .and_then(|v| std::env::var(v).ok())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[cluster]
name = "ocp"
base_domain = "example.com"
assets = "/srv/ocp"

[images]
stream = "file:///srv/stream.json"

[provisioning]
interface = "eno2"
address = "172.22.0.1"
dhcp_range = ["172.22.0.100", "172.22.0.199"]

[[hosts]]
name = "master-0"
mac = "52:54:00:12:60:01"
role = "master"
address = "172.22.0.10"
bmc = { driver = "ipmi", address = "127.0.0.1:623", user = "admin", password_env = "PW" }

[[hosts]]
name = "worker-0"
mac = "52:54:00:12:60:02"
role = "introspect"
"#;

    fn check(edit: impl Fn(&str) -> String, expected: &str) {
        let text = edit(GOOD);
        let got = match Plan::parse(&text, "plan.toml") {
            Ok(_) => "ok".to_owned(),
            Err(e) => e.to_string(),
        };
        assert!(
            got.contains(expected),
            "expected {expected:?} in {got:?} for\n{text}"
        );
    }

    #[test]
    fn secure_boot_hosts_need_the_signed_files() {
        let secure = |s: &str| {
            s.replacen(
                "role = \"master\"",
                "role = \"master\"\nsecure_boot = true",
                1,
            )
        };
        check(
            secure,
            "at `hosts[0].secure_boot`: needs `provisioning.secure_boot`",
        );
        check(
            |s| {
                secure(s).replace(
                    "dhcp_range = [\"172.22.0.100\", \"172.22.0.199\"]",
                    "dhcp_range = [\"172.22.0.100\", \"172.22.0.199\"]\n\
                     secure_boot = { shim = \"/usr/lib/shim/shimx64.efi.signed\", \
                     grub = \"/usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed\" }",
                )
            },
            "ok",
        );
        check(
            |s| {
                s.replace(
                    "dhcp_range = [\"172.22.0.100\", \"172.22.0.199\"]",
                    "dhcp_range = [\"172.22.0.100\", \"172.22.0.199\"]\nsecure_boot = { shim = \"/a\" }",
                )
            },
            "provisioning.secure_boot",
        );
        let sb = |table: &'static str| {
            move |s: &str| {
                secure(s).replace(
                    "dhcp_range = [\"172.22.0.100\", \"172.22.0.199\"]",
                    &format!(
                        "dhcp_range = [\"172.22.0.100\", \"172.22.0.199\"]\nsecure_boot = {table}"
                    ),
                )
            }
        };
        check(sb("{ from = \"image\" }"), "ok");
        check(
            sb("{ from = \"image\", shim = \"/a\" }"),
            "at `provisioning.secure_boot`: `from = \"image\"` reads shim and GRUB from the release",
        );
        check(sb("{ from = \"iso\" }"), "provisioning.secure_boot");
        check(
            sb("{}"),
            "at `provisioning.secure_boot`: needs both `shim` and `grub` (files), or `from = \"image\"`",
        );
    }

    #[test]
    fn secure_boot_keys_round_trip() {
        for s in [
            SecureBoot::FromImage,
            SecureBoot::Files(SecureBootFiles {
                shim: "/s".into(),
                grub: "/g".into(),
            }),
        ] {
            let text = toml::to_string(&Holder { sb: s.clone() }).unwrap();
            let back: Holder = toml::from_str(&text).unwrap();
            assert_eq!(back.sb, s, "{text}");
        }
        #[derive(Serialize, Deserialize)]
        struct Holder {
            sb: SecureBoot,
        }
    }

    #[test]
    fn identities_dhcp_and_dns_carry_are_checked() {
        let host = |line: &str| {
            let line = line.to_owned();
            move |s: &str| s.replacen("address = \"172.22.0.10\"", &line, 1)
        };
        check(
            host("address = \"172.22.0.0\""),
            "at `hosts[0].address`: 172.22.0.0 is the subnet's network",
        );
        check(
            host("address = \"172.22.0.255\""),
            "at `hosts[0].address`: 172.22.0.255 is the subnet's broadcast address",
        );
        check(
            host("address = \"172.22.0.150\""),
            "at `hosts[0].address`: 172.22.0.150 is inside dhcp_range",
        );
        check(host("address = \"172.22.0.1\""), "at `hosts[0].address`");
        check(
            host("address = \"172.22.0.10\"\ninstall_dev = \"sda\""),
            "at `hosts[0].install_dev`",
        );
        check(
            |s| s.replace("name = \"master-0\"", "name = \"\""),
            "at `hosts[0].name`",
        );
        check(
            |s| s.replace("name = \"master-0\"", "name = \"worker_0; rm -rf /\""),
            "at `hosts[0].name`: \"worker_0; rm -rf /\" may hold only letters, digits and hyphens",
        );
        check(
            |s| s.replace("name = \"master-0\"", "name = \"-a\""),
            "at `hosts[0].name`",
        );
        for mac in [
            "ff:ff:ff:ff:ff:ff",
            "01:00:5e:00:00:01",
            "00:00:00:00:00:00",
        ] {
            check(|s| s.replace("52:54:00:12:60:01", mac), "at `hosts[0].mac`");
        }
        check(
            |s| {
                s.replace(
                    "interface = \"eno2\"",
                    "interface = \"eno2\"\nhttp_port = 0",
                )
            },
            "at `provisioning.http_port`",
        );
        check(
            |s| {
                s.replace(
                    "interface = \"eno2\"",
                    "interface = \"eno2\"\nefi_boot_file = \"../../etc/shadow\"",
                )
            },
            "at `provisioning.efi_boot_file`",
        );
        check(
            |s| {
                s.replace(
                    "[\"172.22.0.100\", \"172.22.0.199\"]",
                    "[\"172.22.0.1\", \"172.22.0.9\"]",
                )
            },
            "at `provisioning.dhcp_range`",
        );
        check(
            |s| {
                s.replace(
                    "[\"172.22.0.100\", \"172.22.0.199\"]",
                    "[\"172.22.0.100\", \"172.22.0.255\"]",
                )
            },
            "at `provisioning.dhcp_range`",
        );
        check(
            |s| with_bootstrap("")(s).replace("52:54:00:7e:00:0a", "52:54:00:12:60:01"),
            "at `hosts[0].mac`: 52:54:00:12:60:01 is the bootstrap VM's MAC",
        );
    }

    /// Issue 19's plan trials: each ends in an error with the key path (and, for TOML
    /// syntax, the line and column).
    #[test]
    fn trials_end_in_errors_with_the_key_path() {
        let host = |line: &str| {
            let line = line.to_owned();
            move |s: &str| s.replacen("address = \"172.22.0.10\"", &line, 1)
        };
        check(
            host("address = = \"172.22.0.10\""),
            "plan.toml:19:11: at `hosts[0].address`:",
        );
        check(
            |s| {
                s.replace(
                    "[[hosts]]\nname = \"worker-0\"",
                    "[[hosts]]\nname = \"worker-0",
                )
            },
            "at `hosts[1].name`",
        );
        check(
            |s| s.replace("[cluster]", "[cluster"),
            "plan.toml:2:9: at ``:",
        );
        // A value of the wrong type: the key path and where it is.
        check(
            |s| s.replace("role = \"introspect\"", "role = 7"),
            "plan.toml:25:8: at `hosts[1].role`",
        );
        check(
            host("address = \"172.22.0.10\"\ninstall_dev = \"/dev/sd a\""),
            "at `hosts[0].install_dev`: \"/dev/sd a\" holds whitespace",
        );
        check(
            host("address = \"172.22.0.1\""),
            "at `hosts[0].address`: 172.22.0.1 is the servers' own address",
        );
        for router in ["10.0.0.1", "172.22.0.0", "172.22.0.255"] {
            check(
                |s| {
                    s.replace(
                        "interface = \"eno2\"",
                        &format!("interface = \"eno2\"\nrouter = \"{router}\""),
                    )
                },
                &format!(
                    "at `provisioning.router`: {router} is not a host address inside 172.22.0.0/24"
                ),
            );
        }
        check(
            |s| {
                s.replace(
                    "interface = \"eno2\"",
                    "interface = \"eno2\"\nrouter = \"172.22.0.254\"\nadmin_allow = [\"10.1.2.3\", \"::1\"]",
                )
            },
            "ok",
        );
    }

    #[test]
    fn lease_identity_is_a_plan_key() {
        let plan = Plan::parse(GOOD, "plan.toml").unwrap();
        assert_eq!(plan.provisioning.lease_identity, LeaseIdentity::Mac);
        assert!(plan.provisioning.admin_allow.is_empty());
        let with = |v: &str| {
            GOOD.replace(
                "interface = \"eno2\"",
                &format!("interface = \"eno2\"\nlease_identity = {v}"),
            )
        };
        let plan = Plan::parse(&with("\"client-id\""), "plan.toml").unwrap();
        assert_eq!(plan.provisioning.lease_identity, LeaseIdentity::ClientId);
        check(|_| with("\"duid\""), "at `provisioning.lease_identity`");
    }

    #[test]
    fn the_asset_directory_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        let assets = dir.path().join("install-dir");
        let plan_file = dir.path().join("deploy.toml");
        std::fs::write(
            &plan_file,
            GOOD.replace("/srv/ocp", assets.to_str().unwrap()),
        )
        .unwrap();
        let err = |want: &str| {
            let e = Plan::load_checked(&plan_file).unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
            assert!(e.contains("at `cluster.assets`"), "{e}");
        };
        err("is not a directory");
        std::fs::create_dir(&assets).unwrap();
        err("has no master.ign");
        std::fs::write(assets.join("master.ign"), "{}").unwrap();
        err("has no worker.ign");
        std::fs::write(assets.join("worker.ign"), "{}").unwrap();
        Plan::load_checked(&plan_file).unwrap();
        // Parsing alone does not look at the disk.
        Plan::load(&plan_file).unwrap();
    }

    #[test]
    fn a_good_plan_parses() {
        let plan = Plan::parse(GOOD, "plan.toml").unwrap();
        assert_eq!(plan.hosts.len(), 2);
        assert_eq!(plan.hosts[1].role, Role::Introspect);
        assert_eq!(plan.provisioning.http_port, 8080);
        assert_eq!(plan.images.arch, "x86_64");
    }

    #[test]
    fn errors_name_the_key_path() {
        check(|s| s.to_owned(), "ok");
        check(
            |s| s.replace("52:54:00:12:60:02", "52:54:00:zz:60:02"),
            "at `hosts[1].mac`",
        );
        check(|s| s.replace("\"introspect\"", "\"boss\""), "hosts[1].role");
        check(
            |s| s.replace("52:54:00:12:60:02", "52:54:00:12:60:01"),
            "at `hosts[1].mac`: 52:54:00:12:60:01 is used twice",
        );
        check(
            |s| s.replace("172.22.0.10", "10.0.0.10"),
            "hosts[0].address`: 10.0.0.10 is outside",
        );
        check(
            |s| s.replace("127.0.0.1:623", "bmc0"),
            "hosts[0].bmc.address",
        );
        check(|s| s.replace("base_domain", "basedomain"), "basedomain");
        check(
            |s| s.replace("stream = \"file:///srv/stream.json\"", ""),
            "at `images`",
        );
        check(|s| s.replace("[cluster]", "[cluster"), "plan.toml");
        check(
            |s| s.replace("\"172.22.0.199\"", "\"172.23.0.199\""),
            "provisioning.dhcp_range",
        );
    }

    /// `GOOD` with host 1's BMC set to `bmc`.
    fn with_bmc(bmc: &str) -> impl Fn(&str) -> String {
        let bmc = bmc.to_owned();
        move |s| {
            s.replace(
                "role = \"introspect\"",
                &format!("role = \"introspect\"\nbmc = {bmc}"),
            )
        }
    }

    #[test]
    fn bmc_drivers_take_their_own_fields() {
        let redfish = r#"{ driver = "redfish", address = "https://10.0.0.11", user = "root", password = "pw", ca_file = "/etc/ca.pem", system = "1" }"#;
        check(with_bmc(redfish), "ok");
        let plan = Plan::parse(&with_bmc(redfish)(GOOD), "plan.toml").unwrap();
        let bmc = plan.hosts[1].bmc.as_ref().unwrap();
        assert_eq!(bmc.driver, BmcDriver::Redfish);
        assert_eq!(
            bmc.ca_file.as_deref(),
            Some(std::path::Path::new("/etc/ca.pem"))
        );
        assert_eq!(bmc.system.as_deref(), Some("1"));
        assert!(!bmc.insecure);
        check(
            with_bmc(
                r#"{ driver = "redfish", address = "http://127.0.0.1:8000", insecure = true }"#,
            ),
            "ok",
        );
        check(
            with_bmc(
                r#"{ driver = "libvirt", address = "ocp-master-0", uri = "qemu+ssh://kvm1/system" }"#,
            ),
            "ok",
        );
        check(
            with_bmc(r#"{ driver = "libvirt", address = "ocp-master-0" }"#),
            "ok",
        );

        check(
            with_bmc(r#"{ driver = "redfish", address = "10.0.0.11" }"#),
            "at `hosts[1].bmc.address`: \"10.0.0.11\" is not an http(s):// URL",
        );
        check(
            with_bmc(
                r#"{ driver = "redfish", address = "https://b", ca_file = "/c", insecure = true }"#,
            ),
            "at `hosts[1].bmc`: give `ca_file` or `insecure`, not both",
        );
        check(
            with_bmc(r#"{ driver = "ipmi", address = "127.0.0.1:623", ca_file = "/c" }"#),
            "at `hosts[1].bmc.ca_file`: only the redfish driver takes `ca_file`",
        );
        check(
            with_bmc(r#"{ driver = "ipmi", address = "127.0.0.1:623", insecure = true }"#),
            "hosts[1].bmc.insecure",
        );
        check(
            with_bmc(r#"{ driver = "redfish", address = "https://b", uri = "test:///default" }"#),
            "at `hosts[1].bmc.uri`: only the libvirt driver takes `uri`",
        );
        check(
            with_bmc(r#"{ driver = "libvirt", address = "qemu:///system" }"#),
            "hosts[1].bmc.address",
        );
        check(
            with_bmc(r#"{ driver = "redfish", address = "https://b", insecure = "yes" }"#),
            "hosts[1].bmc.insecure",
        );
        check(
            with_bmc(r#"{ driver = "redfish", address = "https://b", cafile = "/c" }"#),
            "cafile",
        );
        check(
            with_bmc(r#"{ driver = "amt", address = "x" }"#),
            "hosts[1].bmc.driver",
        );
    }

    /// `GOOD` with a `[dns]` section.
    fn with_dns(section: &str) -> impl Fn(&str) -> String {
        let section = format!("[dns]\n{section}\n\n[[hosts]]");
        move |s| s.replacen("[[hosts]]", &section, 1)
    }

    #[test]
    fn dns_records_are_checked_with_key_paths() {
        let plan = Plan::parse(GOOD, "plan.toml").unwrap();
        assert!(plan.dns_enabled());
        assert_eq!(plan.dns_servers(), vec![Ipv4Addr::new(172, 22, 0, 1)]);
        let zone = plan.dns_zone().unwrap().unwrap();
        assert_eq!(zone.origin, "ocp.example.com");
        // api and api-int to the master, *.apps to the (introspected) worker, two hosts.
        assert_eq!(zone.entries.len(), 5);
        check(
            with_dns("etcd_records = true\napi_vip = \"172.22.0.5\"\nupstream = [\"192.0.2.53\"]"),
            "ok",
        );
        check(
            with_dns(
                r#"records = [{ name = "registry", type = "CNAME", value = "master-0" }, { name = "txt", type = "TXT", value = "x" }]"#,
            ),
            "ok",
        );
        check(
            with_dns(
                r#"records = [{ name = "ok", type = "A", value = "172.22.0.9" }, { name = "master-0", type = "A", value = "172.22.0.9" }]"#,
            ),
            "at `dns.records[1].name`: master-0.ocp.example.com has a host record already",
        );
        check(
            with_dns(
                r#"records = [{ name = "www.example.org.", type = "A", value = "172.22.0.9" }]"#,
            ),
            "at `dns.records[0].name`: www.example.org is outside the zone ocp.example.com",
        );
        check(
            with_dns(r#"records = [{ name = "x", type = "MX", value = "10 mail" }]"#),
            "at `dns.records[0].type`",
        );
        check(
            with_dns(r#"records = [{ name = "x", type = "A", value = "mail" }]"#),
            "at `dns.records[0].value`",
        );
        check(
            with_dns(
                r#"records = [{ name = "10.0.22.172.in-addr.arpa.", type = "PTR", value = "other" }]"#,
            ),
            "at `dns.records[0].name`: 172.22.0.10 has a reverse name already",
        );
        check(
            |s| s.replace("name = \"worker-0\"", "name = \"api\""),
            "at `hosts[1].name`: api.ocp.example.com has a A record already",
        );
        check(
            |s| s.replace("name = \"worker-0\"", "name = \"worker 0\""),
            "at `hosts[1].name`",
        );
        check(
            with_dns(r#"records = [{ name = "api", type = "CNAME", value = "master-0" }]"#),
            "at `dns.records[0].name`",
        );
        check(
            with_dns(
                r#"records = [{ name = "1.2.0.192.in-addr.arpa.", type = "PTR", value = "master-0" }]"#,
            ),
            "at `dns.records[0].name`",
        );
        check(
            with_dns("upstream = [\"192.0.2.53\", \"172.22.0.1\"]"),
            "at `dns.upstream[1]`: 172.22.0.1 is this DNS server itself",
        );
        check(
            |s| s.replace("name = \"ocp\"", "name = \"ocp.x\""),
            "at `cluster.name`",
        );
        check(
            |s| {
                s.replace(
                    "base_domain = \"example.com\"",
                    "base_domain = \"exa mple.com\"",
                )
            },
            "at `cluster.base_domain`",
        );
        check(with_dns("record = []"), "record");
        check(with_dns("upstream = [\"dns.google\"]"), "dns.upstream");

        // Other servers named: DHCP hands those out and ours stays off unless asked for.
        let other = |s: &str| s.replace("dhcp_range", "dns = [\"192.0.2.1\"]\ndhcp_range");
        let plan = Plan::parse(&other(GOOD), "plan.toml").unwrap();
        assert!(!plan.dns_enabled());
        assert_eq!(plan.dns_servers(), vec![Ipv4Addr::new(192, 0, 2, 1)]);
        assert!(plan.dns_zone().unwrap().is_none());
        let plan = Plan::parse(&with_dns("enabled = true")(&other(GOOD)), "plan.toml").unwrap();
        assert!(plan.dns_enabled());
        assert_eq!(plan.dns_servers(), vec![Ipv4Addr::new(192, 0, 2, 1)]);
    }

    const BOOTSTRAP: &str = r#"
[bootstrap]
libvirt_uri = "test:///default"
image = "/var/lib/libvirt/images/ocp-bootstrap.qcow2"
mac = "52:54:00:7e:00:0a"
address = "192.168.126.10"
"#;

    /// `GOOD` with `BOOTSTRAP` plus `extra` lines before the hosts.
    fn with_bootstrap(extra: &str) -> impl Fn(&str) -> String {
        let bootstrap = format!("{BOOTSTRAP}{extra}\n\n[[hosts]]");
        move |s| s.replacen("[[hosts]]", &bootstrap, 1)
    }

    #[test]
    fn bootstrap_is_laid_out_at_load() {
        check(with_bootstrap(""), "ok");
        let plan = Plan::parse(&with_bootstrap("")(GOOD), "plan.toml").unwrap();
        let b = plan.bootstrap.as_ref().unwrap();
        assert_eq!(b.ignition_via, IgnitionVia::Fwcfg);
        assert_eq!(b.network_address, Ipv4Addr::new(192, 168, 126, 1));
        let cluster = crate::bootstrap_cluster(&plan).unwrap().unwrap();
        assert_eq!(cluster.network.name, "ocp");
        assert_eq!(cluster.bootstrap.name, "ocp-bootstrap");
        assert_eq!(
            crate::bootstrap_ignition(&plan).unwrap(),
            std::path::Path::new("/srv/ocp/bootstrap.ign")
        );
        let xml = cluster.bootstrap.to_xml().unwrap();
        assert!(
            xml.contains(r#"<entry name="opt/com.coreos/config" file="/srv/ocp/bootstrap.ign"/>"#),
            "{xml}"
        );
        check(
            with_bootstrap("ignition_via = \"qemu-commandline\"\ndomain_type = \"qemu\""),
            "ok",
        );

        check(
            |s| with_bootstrap("")(s).replace("192.168.126.10", "192.168.127.10"),
            "at `bootstrap.address`",
        );
        check(
            |s| with_bootstrap("")(s).replace("192.168.126.10", "192.168.126.200"),
            "at `bootstrap.address`",
        );
        check(
            |s| with_bootstrap("")(s).replace("/var/lib/libvirt/images/", ""),
            "at `bootstrap.image`",
        );
        check(
            with_bootstrap("memory_mib = 0"),
            "at `bootstrap.memory_mib`",
        );
        check(
            with_bootstrap("bridge = \"a-very-long-bridge-name\""),
            "at `bootstrap.bridge`",
        );
        check(
            with_bootstrap("network_prefix = 31"),
            "at `bootstrap.network_address`",
        );
        check(
            with_bootstrap("ignition_via = \"cdrom\""),
            "bootstrap.ignition_via",
        );
        check(with_bootstrap("disk = \"/x\""), "disk");
        check(
            |s| with_bootstrap("")(s).replace("image = ", "# image = "),
            "bootstrap",
        );
        check(
            |s| with_bootstrap("")(s).replace("name = \"ocp\"", "name = \"ocp_1\""),
            "at `cluster.name`",
        );
    }
}
