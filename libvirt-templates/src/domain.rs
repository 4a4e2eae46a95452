//! The `<domain>` document: a libvirt virtual machine, limited to what a bootstrap VM uses.

use serde::{Deserialize, Serialize};

use crate::network::MacAddress;
use crate::xml::YesNo;

/// The namespace URI bound to the `qemu:` prefix for `<qemu:commandline>`.
pub const QEMU_NS: &str = "http://libvirt.org/schemas/domain/qemu/1.0";

/// The fw_cfg key CoreOS/RHCOS Ignition reads its config from on QEMU.
pub const IGNITION_FW_CFG_KEY: &str = "opt/com.coreos/config";

/// A libvirt `<domain>` definition (formatdomain.rst).
///
/// Fields follow libvirt's own element order, so a rendered document reads like `virsh dumpxml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Domain {
    /// `type`: the hypervisor, `kvm` or plain `qemu` (TCG).
    #[serde(rename = "@type")]
    pub kind: DomainType,
    /// `xmlns:qemu`: [`to_xml`](Self::to_xml) sets it to [`QEMU_NS`] whenever
    /// [`qemu_commandline`](Self::qemu_commandline) is present.
    #[serde(
        rename = "@xmlns:qemu",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub xmlns_qemu: Option<String>,
    /// `<name>`.
    pub name: String,
    /// `<uuid>`: a fixed UUID lets a second define update the domain instead of failing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    /// `<memory unit>`: the maximum memory at boot.
    pub memory: Memory,
    /// `<currentMemory unit>`: the balloon target.
    #[serde(
        rename = "currentMemory",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub current_memory: Option<Memory>,
    /// `<vcpu placement>`.
    pub vcpu: Vcpu,
    /// `<resource><partition>`: the cgroup partition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<Resource>,
    /// `<sysinfo>` blocks; `type='fwcfg'` carries Ignition natively (libvirt >= 6.5).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sysinfo: Vec<Sysinfo>,
    /// `<os>`: guest type and boot order.
    pub os: Os,
    /// `<features>`: acpi, apic, pae.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features: Option<Features>,
    /// `<clock offset>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock: Option<Clock>,
    /// `<on_poweroff>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_poweroff: Option<LifecycleAction>,
    /// `<on_reboot>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_reboot: Option<LifecycleAction>,
    /// `<on_crash>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_crash: Option<LifecycleAction>,
    /// `<devices>`.
    #[serde(default)]
    pub devices: Devices,
    /// `<qemu:commandline>`: extra QEMU arguments (needs [`xmlns_qemu`](Self::xmlns_qemu)).
    #[serde(
        rename(serialize = "qemu:commandline", deserialize = "commandline"),
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub qemu_commandline: Option<QemuCommandline>,
}

/// The `type` of a domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum DomainType {
    /// Hardware acceleration through KVM.
    Kvm,
    /// QEMU's software emulation (TCG): slow, but works where nested KVM does not.
    Qemu,
}

/// `<memory unit>N</memory>` and `<currentMemory>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Memory {
    /// The unit; absent means KiB.
    #[serde(rename = "@unit", default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<MemoryUnit>,
    /// The amount in `unit`s.
    #[serde(rename = "$text")]
    pub amount: u64,
}

impl Memory {
    /// An amount in MiB.
    pub fn mib(amount: u64) -> Self {
        Memory {
            unit: Some(MemoryUnit::MiB),
            amount,
        }
    }
}

/// The `unit` of a memory size (the binary units libvirt accepts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum MemoryUnit {
    /// Bytes.
    #[serde(rename = "b", alias = "bytes")]
    B,
    /// 1024 bytes.
    KiB,
    /// 1024 KiB.
    MiB,
    /// 1024 MiB.
    GiB,
    /// 1024 GiB.
    TiB,
}

/// `<vcpu placement>N</vcpu>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vcpu {
    /// `static` or `auto`.
    #[serde(
        rename = "@placement",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub placement: Option<Placement>,
    /// The number of virtual CPUs.
    #[serde(rename = "$text")]
    pub count: u32,
}

/// The `placement` of `<vcpu>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Placement {
    /// Pinned as configured.
    Static,
    /// Placed by numad.
    Auto,
}

/// `<resource><partition>/machine</partition></resource>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resource {
    /// The cgroup partition, e.g. `/machine`.
    pub partition: String,
}

/// `<sysinfo type>`; this model carries only fw_cfg entries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sysinfo {
    /// `fwcfg` or `smbios`.
    #[serde(rename = "@type")]
    pub kind: SysinfoType,
    /// `<entry name file>` (fwcfg).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entry: Vec<FwCfgEntry>,
}

/// The `type` of `<sysinfo>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SysinfoType {
    /// QEMU fw_cfg entries.
    Fwcfg,
    /// SMBIOS tables (their content is not modelled).
    Smbios,
}

/// `<entry name file>` in `<sysinfo type='fwcfg'>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FwCfgEntry {
    /// The fw_cfg key, e.g. [`IGNITION_FW_CFG_KEY`].
    #[serde(rename = "@name")]
    pub name: String,
    /// A host file whose content becomes the entry.
    #[serde(rename = "@file", default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
}

/// `<os>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Os {
    /// `<type arch machine>hvm</type>`.
    #[serde(rename = "type")]
    pub kind: OsType,
    /// `<boot dev>` in order of preference.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub boot: Vec<Boot>,
}

/// `<type arch machine>hvm</type>` inside `<os>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OsType {
    /// Guest architecture, e.g. `x86_64`.
    #[serde(rename = "@arch", default, skip_serializing_if = "Option::is_none")]
    pub arch: Option<String>,
    /// Machine type, e.g. `q35` or `pc`.
    #[serde(rename = "@machine", default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<String>,
    /// `hvm` for full virtualisation.
    #[serde(rename = "$text")]
    pub kind: String,
}

/// `<boot dev>` inside `<os>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Boot {
    /// The device class.
    #[serde(rename = "@dev")]
    pub dev: BootDev,
}

/// The `dev` of `<boot>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BootDev {
    /// The first hard disk.
    Hd,
    /// Network (PXE).
    Network,
    /// The first CD-ROM.
    Cdrom,
    /// The first floppy.
    Fd,
}

/// `<features>`; each flag renders as an empty element.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Features {
    /// `<acpi/>`: needed for a clean `virsh shutdown`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acpi: Option<Flag>,
    /// `<apic/>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apic: Option<Flag>,
    /// `<pae/>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pae: Option<Flag>,
}

/// An empty marker element such as `<acpi/>`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flag {}

/// `<clock offset>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Clock {
    /// `utc`, `localtime`, `timezone` or `variable`.
    #[serde(rename = "@offset")]
    pub offset: String,
}

/// The content of `<on_poweroff>`, `<on_reboot>` and `<on_crash>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum LifecycleAction {
    /// Stop the domain.
    Destroy,
    /// Restart it.
    Restart,
    /// Keep it paused.
    Preserve,
    /// Rename and keep it, start a new one.
    RenameRestart,
    /// Dump core, then stop.
    CoredumpDestroy,
    /// Dump core, then restart.
    CoredumpRestart,
}

/// `<devices>`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Devices {
    /// `<emulator>`: the QEMU binary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emulator: Option<String>,
    /// `<disk>`s.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub disk: Vec<Disk>,
    /// `<interface>`s.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interface: Vec<Interface>,
    /// `<serial>` ports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub serial: Vec<CharDevice>,
    /// `<console>`s.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub console: Vec<CharDevice>,
    /// `<graphics>` frame buffers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub graphics: Vec<Graphics>,
}

/// `<disk type device>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Disk {
    /// `file` or `block`.
    #[serde(rename = "@type")]
    pub kind: DiskType,
    /// `disk` or `cdrom`.
    #[serde(rename = "@device", default, skip_serializing_if = "Option::is_none")]
    pub device: Option<DiskDevice>,
    /// `<driver name type>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<DiskDriver>,
    /// `<source file|dev>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<DiskSource>,
    /// `<target dev bus>`.
    pub target: DiskTarget,
}

/// The `type` of `<disk>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum DiskType {
    /// A host file.
    File,
    /// A host block device.
    Block,
}

/// The `device` of `<disk>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum DiskDevice {
    /// A hard disk.
    Disk,
    /// A CD-ROM.
    Cdrom,
}

/// `<driver name type>` inside `<disk>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskDriver {
    /// Always `qemu` for the QEMU driver.
    #[serde(rename = "@name")]
    pub name: String,
    /// The image format.
    #[serde(rename = "@type", default, skip_serializing_if = "Option::is_none")]
    pub format: Option<DiskFormat>,
}

/// The image format in `<driver type>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum DiskFormat {
    /// QEMU copy-on-write v2 (the RHCOS `qemu` artifact).
    Qcow2,
    /// A raw image (the RHCOS `metal` artifact, decompressed).
    Raw,
}

/// `<source file dev>` inside `<disk>`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskSource {
    /// Image path for `type='file'`.
    #[serde(rename = "@file", default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Device path for `type='block'`.
    #[serde(rename = "@dev", default, skip_serializing_if = "Option::is_none")]
    pub dev: Option<String>,
}

/// `<target dev bus>` inside `<disk>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskTarget {
    /// Guest device name, e.g. `vda`.
    #[serde(rename = "@dev")]
    pub dev: String,
    /// `virtio`, `sata`, `ide`, `scsi`, ...
    #[serde(rename = "@bus", default, skip_serializing_if = "Option::is_none")]
    pub bus: Option<String>,
}

/// `<interface type>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interface {
    /// `network` or `bridge`.
    #[serde(rename = "@type")]
    pub kind: InterfaceType,
    /// `<mac address>`: libvirt invents one when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<MacAddress>,
    /// `<source network|bridge>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<InterfaceSource>,
    /// `<model type>`, e.g. `virtio`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<InterfaceModel>,
}

/// The `type` of `<interface>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum InterfaceType {
    /// A libvirt virtual network.
    Network,
    /// An existing host bridge.
    Bridge,
}

/// `<source network bridge>` inside `<interface>`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceSource {
    /// The libvirt network name (`type='network'`).
    #[serde(rename = "@network", default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// The host bridge (`type='bridge'`).
    #[serde(rename = "@bridge", default, skip_serializing_if = "Option::is_none")]
    pub bridge: Option<String>,
}

/// `<model type>` inside `<interface>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceModel {
    /// `virtio`, `e1000`, `rtl8139`, ...
    #[serde(rename = "@type")]
    pub kind: String,
}

/// `<serial type>` or `<console type>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CharDevice {
    /// The host side, e.g. `pty`.
    #[serde(rename = "@type")]
    pub kind: String,
    /// `<target type port>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<CharTarget>,
}

impl CharDevice {
    /// A pty-backed device.
    pub fn pty(target: Option<CharTarget>) -> Self {
        CharDevice {
            kind: "pty".to_owned(),
            target,
        }
    }
}

/// `<target type port>` inside `<serial>` and `<console>`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CharTarget {
    /// `serial`, `virtio`, ... (consoles), or `isa-serial`, ... (serial ports).
    #[serde(rename = "@type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The port number.
    #[serde(rename = "@port", default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u32>,
}

/// `<graphics type port autoport listen>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Graphics {
    /// `vnc` or `spice`.
    #[serde(rename = "@type")]
    pub kind: String,
    /// The port; `-1` lets libvirt pick one.
    #[serde(rename = "@port", default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
    /// `yes`: allocate the port automatically.
    #[serde(rename = "@autoport", default, skip_serializing_if = "Option::is_none")]
    pub autoport: Option<YesNo>,
    /// The listen address.
    #[serde(rename = "@listen", default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
}

/// `<qemu:commandline>`: arguments and environment passed straight to QEMU.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QemuCommandline {
    /// `<qemu:arg value>`.
    #[serde(
        rename(serialize = "qemu:arg", deserialize = "arg"),
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub arg: Vec<QemuArg>,
    /// `<qemu:env name value>`.
    #[serde(
        rename(serialize = "qemu:env", deserialize = "env"),
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub env: Vec<QemuEnv>,
}

impl QemuCommandline {
    /// The seed's Ignition hand-off: `-fw_cfg name=opt/com.coreos/config,file=<path>`.
    pub fn ignition(path: &str) -> Self {
        QemuCommandline {
            arg: vec![
                QemuArg {
                    value: "-fw_cfg".to_owned(),
                },
                QemuArg {
                    value: format!("name={IGNITION_FW_CFG_KEY},file={path}"),
                },
            ],
            env: Vec::new(),
        }
    }
}

/// `<qemu:arg value>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QemuArg {
    /// One argv element.
    #[serde(rename = "@value")]
    pub value: String,
}

/// `<qemu:env name value>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QemuEnv {
    /// Variable name.
    #[serde(rename = "@name")]
    pub name: String,
    /// Value; absent sets it empty.
    #[serde(rename = "@value", default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

impl Domain {
    /// Renders the domain as an indented XML document.
    ///
    /// A [`qemu_commandline`](Self::qemu_commandline) always comes with its namespace
    /// declaration, whatever [`xmlns_qemu`](Self::xmlns_qemu) holds.
    ///
    /// # Errors
    /// [`Error::Render`](crate::Error::Render) if serde rejects a value (in practice: never for
    /// this model).
    pub fn to_xml(&self) -> Result<String, crate::Error> {
        // Without the namespace declaration libvirt ignores <qemu:commandline> silently (or the
        // XML is not even namespace-well-formed), so a document carrying one always gets it.
        if self.qemu_commandline.is_some() && self.xmlns_qemu.as_deref() != Some(QEMU_NS) {
            let mut fixed = self.clone();
            fixed.xmlns_qemu = Some(QEMU_NS.to_owned());
            return crate::xml::render("domain", &fixed);
        }
        crate::xml::render("domain", self)
    }

    /// Parses a `<domain>` document; elements and attributes the model does not cover are
    /// listed in [`Parsed::ignored`](crate::Parsed::ignored) rather than failing the parse.
    ///
    /// # Errors
    /// [`Error::Parse`](crate::Error::Parse) for malformed XML or a value of the wrong type.
    pub fn from_xml(xml: &str) -> Result<crate::Parsed<Domain>, crate::Error> {
        crate::xml::parse("domain", xml)
    }
}
