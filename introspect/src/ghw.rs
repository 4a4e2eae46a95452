//! The typed ghw model: what `ghwc -f json` (2019 and modern) writes.
//!
//! Every field is optional and tolerant: `"unknown"`, `""`, `null` and ghw's `-1` become `None`
//! (or an empty list), numbers may be written as strings, and unknown fields are ignored. The
//! generated structs below are plain data with public fields.

use serde::{Deserialize, Serialize};

use crate::lenient;

/// The hardware description a host POSTs: ghw's `HostInfo`, 2019 or modern.
///
/// The 2019 client sends `memory`, `block`, `cpu`, `topology`, `network` and `gpu`; modern ghw
/// adds `chassis`, `bios`, `baseboard`, `product` and `pci`. Any key may be missing.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Hardware {
    /// Memory.
    #[serde(default)]
    pub memory: Option<Memory>,
    /// Block storage.
    #[serde(default)]
    pub block: Option<Block>,
    /// Processors.
    #[serde(default)]
    pub cpu: Option<Cpu>,
    /// NUMA topology.
    #[serde(default)]
    pub topology: Option<Topology>,
    /// Network interfaces (`ghwc net` writes this key as `network`; `net` is accepted too).
    #[serde(default, alias = "net")]
    pub network: Option<Network>,
    /// Graphics cards.
    #[serde(default)]
    pub gpu: Option<Gpu>,
    /// Chassis (modern ghw).
    #[serde(default)]
    pub chassis: Option<Chassis>,
    /// Firmware (modern ghw).
    #[serde(default)]
    pub bios: Option<Bios>,
    /// Mainboard (modern ghw).
    #[serde(default)]
    pub baseboard: Option<Baseboard>,
    /// System product (modern ghw).
    #[serde(default)]
    pub product: Option<Product>,
    /// PCI devices (modern ghw).
    #[serde(default)]
    pub pci: Option<Pci>,
}

/// Memory as ghw reports it (host-wide, or one NUMA node's share in `topology`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Memory {
    /// Installed physical memory in bytes.
    #[serde(default, deserialize_with = "lenient::opt_u64")]
    pub total_physical_bytes: Option<u64>,
    /// Memory usable by the OS in bytes.
    #[serde(default, deserialize_with = "lenient::opt_u64")]
    pub total_usable_bytes: Option<u64>,
    /// Supported page sizes in bytes.
    #[serde(default, deserialize_with = "lenient::u64_list")]
    pub supported_page_sizes: Vec<u64>,
    /// The default huge page size in bytes (modern ghw).
    #[serde(default, deserialize_with = "lenient::opt_u64")]
    pub default_huge_page_size: Option<u64>,
    /// Memory modules (modern ghw, needs root).
    #[serde(default, deserialize_with = "lenient::vec_or_null")]
    pub modules: Vec<MemoryModule>,
}

/// One memory module (DIMM).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct MemoryModule {
    /// The module's label.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub label: Option<String>,
    /// Slot location.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub location: Option<String>,
    /// Serial number.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub serial_number: Option<String>,
    /// Size in bytes.
    #[serde(default, deserialize_with = "lenient::opt_u64")]
    pub size_bytes: Option<u64>,
    /// Vendor.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub vendor: Option<String>,
}

/// Block storage: every disk the kernel sees.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Block {
    /// Sum of all disk sizes in bytes.
    #[serde(default, deserialize_with = "lenient::opt_u64")]
    pub total_size_bytes: Option<u64>,
    /// The disks, including device-mapper, zram and optical devices.
    #[serde(default, deserialize_with = "lenient::vec_or_null")]
    pub disks: Vec<Disk>,
}

/// One block device.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Disk {
    /// Kernel name, such as `sda` or `nvme0n1`.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub name: Option<String>,
    /// Size in bytes.
    #[serde(default, deserialize_with = "lenient::opt_u64")]
    pub size_bytes: Option<u64>,
    /// Physical block size in bytes.
    #[serde(default, deserialize_with = "lenient::opt_u64")]
    pub physical_block_size_bytes: Option<u64>,
    /// Logical block (sector) size in bytes: what decides between the 512-byte and the 4k
    /// metal image. ghw does not report it (a 512e disk has 4096-byte physical blocks but
    /// 512-byte sectors); rhcos-metal's introspection hook adds it from
    /// `/sys/block/<name>/queue/logical_block_size`.
    #[serde(
        default,
        deserialize_with = "lenient::opt_u64",
        skip_serializing_if = "Option::is_none"
    )]
    pub logical_block_size_bytes: Option<u64>,
    /// `hdd`, `ssd`, `odd`, `fdd` or unknown.
    #[serde(default)]
    pub drive_type: DriveType,
    /// Whether the device is removable (modern ghw only).
    #[serde(default, deserialize_with = "lenient::opt_bool")]
    pub removable: Option<bool>,
    /// `ide`, `scsi`, `nvme`, `virtio`, `mmc`, `loop` or unknown.
    #[serde(default)]
    pub storage_controller: StorageController,
    /// udev's `ID_PATH`: the name of the device's `/dev/disk/by-path/` link.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub bus_path: Option<String>,
    /// Vendor string (ghw replaces spaces with `_`).
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub vendor: Option<String>,
    /// Model string (ghw replaces spaces with `_`).
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub model: Option<String>,
    /// Serial number.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub serial_number: Option<String>,
    /// World Wide Name.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub wwn: Option<String>,
    /// World Wide Name without the vendor extension (modern ghw).
    #[serde(default, deserialize_with = "lenient::opt_string")]
    #[serde(rename = "wwnNoExtension")]
    pub wwn_no_extension: Option<String>,
    /// Partitions on the disk.
    #[serde(default, deserialize_with = "lenient::vec_or_null")]
    pub partitions: Vec<Partition>,
}

/// One partition of a disk.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Partition {
    /// Kernel name, such as `sda1`.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub name: Option<String>,
    /// Partition label.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub label: Option<String>,
    /// Where it is mounted.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub mount_point: Option<String>,
    /// Size in bytes.
    #[serde(default, deserialize_with = "lenient::opt_u64")]
    pub size_bytes: Option<u64>,
    /// Filesystem type.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    #[serde(rename = "type")]
    pub fs_type: Option<String>,
    /// Whether it is read-only.
    #[serde(default, deserialize_with = "lenient::opt_bool")]
    pub read_only: Option<bool>,
    /// Partition UUID (modern ghw).
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub uuid: Option<String>,
    /// Filesystem label (modern ghw).
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub filesystem_label: Option<String>,
}

/// Processors.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Cpu {
    /// Physical cores over all processors.
    #[serde(default, deserialize_with = "lenient::opt_u64")]
    pub total_cores: Option<u64>,
    /// Hardware threads over all processors (2019 ghw).
    #[serde(default, deserialize_with = "lenient::opt_u64")]
    pub total_threads: Option<u64>,
    /// Hardware threads over all processors (modern ghw).
    #[serde(default, deserialize_with = "lenient::opt_u64")]
    pub total_hardware_threads: Option<u64>,
    /// Physical packages.
    #[serde(default, deserialize_with = "lenient::vec_or_null")]
    pub processors: Vec<Processor>,
}

/// One physical processor package.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Processor {
    /// Package id.
    #[serde(default, deserialize_with = "lenient::opt_u64")]
    pub id: Option<u64>,
    /// Cores in this package.
    #[serde(default, deserialize_with = "lenient::opt_u64")]
    pub total_cores: Option<u64>,
    /// Threads in this package (2019 ghw).
    #[serde(default, deserialize_with = "lenient::opt_u64")]
    pub total_threads: Option<u64>,
    /// Threads in this package (modern ghw).
    #[serde(default, deserialize_with = "lenient::opt_u64")]
    pub total_hardware_threads: Option<u64>,
    /// Vendor, such as `GenuineIntel`.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub vendor: Option<String>,
    /// Model name.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub model: Option<String>,
    /// CPU flags.
    #[serde(default, deserialize_with = "lenient::string_list")]
    pub capabilities: Vec<String>,
    /// Cores.
    #[serde(default, deserialize_with = "lenient::vec_or_null")]
    pub cores: Vec<Core>,
}

/// One processor core.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Core {
    /// Core id.
    #[serde(default, deserialize_with = "lenient::opt_u64")]
    pub id: Option<u64>,
    /// Index within the package (2019 ghw).
    #[serde(default, deserialize_with = "lenient::opt_u64")]
    pub index: Option<u64>,
    /// Threads on this core (2019 ghw).
    #[serde(default, deserialize_with = "lenient::opt_u64")]
    pub total_threads: Option<u64>,
    /// Threads on this core (modern ghw).
    #[serde(default, deserialize_with = "lenient::opt_u64")]
    pub total_hardware_threads: Option<u64>,
    /// Logical processor ids.
    #[serde(default, deserialize_with = "lenient::u64_list")]
    pub logical_processors: Vec<u64>,
}

/// NUMA topology.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Topology {
    /// `smp` or `numa`.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub architecture: Option<String>,
    /// NUMA nodes.
    #[serde(default, deserialize_with = "lenient::vec_or_null")]
    pub nodes: Vec<Node>,
}

/// One NUMA node.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Node {
    /// Node id.
    #[serde(default, deserialize_with = "lenient::opt_u64")]
    pub id: Option<u64>,
    /// Cores in the node.
    #[serde(default, deserialize_with = "lenient::vec_or_null")]
    pub cores: Vec<Core>,
    /// Caches.
    #[serde(default, deserialize_with = "lenient::vec_or_null")]
    pub caches: Vec<Cache>,
    /// Distances to the other nodes (modern ghw).
    #[serde(default, deserialize_with = "lenient::u64_list")]
    pub distances: Vec<u64>,
    /// The node's memory (modern ghw).
    #[serde(default)]
    pub memory: Option<Memory>,
}

/// One CPU cache.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Cache {
    /// Cache level.
    #[serde(default, deserialize_with = "lenient::opt_u64")]
    pub level: Option<u64>,
    /// `instruction`, `data` or `unified`.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    #[serde(rename = "type")]
    pub cache_type: Option<String>,
    /// Size in bytes.
    #[serde(default, deserialize_with = "lenient::opt_u64")]
    pub size_bytes: Option<u64>,
    /// Logical processors sharing it.
    #[serde(default, deserialize_with = "lenient::u64_list")]
    pub logical_processors: Vec<u64>,
}

/// Network interfaces.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Network {
    /// The interfaces, including virtual ones.
    #[serde(default, deserialize_with = "lenient::vec_or_null")]
    pub nics: Vec<Nic>,
}

/// One network interface.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Nic {
    /// Interface name.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub name: Option<String>,
    /// MAC address as written by ghw (may be empty).
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub mac_address: Option<String>,
    /// Whether the interface is virtual (bridge, veth, bond, loopback...).
    #[serde(default, deserialize_with = "lenient::opt_bool")]
    pub is_virtual: Option<bool>,
    /// ethtool features.
    #[serde(default, deserialize_with = "lenient::vec_or_null")]
    pub capabilities: Vec<NicCapability>,
    /// PCI address (modern ghw).
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub pci_address: Option<String>,
    /// Link speed (modern ghw).
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub speed: Option<String>,
    /// Duplex (modern ghw).
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub duplex: Option<String>,
}

/// One ethtool feature of an interface.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct NicCapability {
    /// Feature name.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub name: Option<String>,
    /// Whether it is on.
    #[serde(default, deserialize_with = "lenient::opt_bool")]
    pub is_enabled: Option<bool>,
    /// Whether it can be turned on.
    #[serde(default, deserialize_with = "lenient::opt_bool")]
    pub can_enable: Option<bool>,
}

/// Graphics cards.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Gpu {
    /// The cards.
    #[serde(default, deserialize_with = "lenient::vec_or_null")]
    pub cards: Vec<GpuCard>,
}

/// One graphics card.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct GpuCard {
    /// PCI address.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub address: Option<String>,
    /// Card index.
    #[serde(default, deserialize_with = "lenient::opt_u64")]
    pub index: Option<u64>,
    /// The card's PCI device.
    #[serde(default)]
    pub pci: Option<PciDevice>,
}

/// PCI devices (modern ghw; the list is under a capitalised `Devices` key).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Pci {
    /// The devices.
    #[serde(default, deserialize_with = "lenient::vec_or_null")]
    #[serde(rename = "Devices")]
    pub devices: Vec<PciDevice>,
}

/// One PCI device.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PciDevice {
    /// PCI address.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub address: Option<String>,
    /// Vendor.
    #[serde(default)]
    pub vendor: Option<PciName>,
    /// Product.
    #[serde(default)]
    pub product: Option<PciName>,
    /// Subsystem.
    #[serde(default)]
    pub subsystem: Option<PciName>,
    /// Class.
    #[serde(default)]
    pub class: Option<PciName>,
    /// Subclass.
    #[serde(default)]
    pub subclass: Option<PciName>,
    /// Programming interface.
    #[serde(default)]
    pub programming_interface: Option<PciName>,
    /// Revision.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub revision: Option<String>,
    /// Bound driver.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub driver: Option<String>,
}

/// A PCI id with its name from the PCI database.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PciName {
    /// Hex id.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub id: Option<String>,
    /// Name.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub name: Option<String>,
}

/// The chassis, from DMI (modern ghw).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Chassis {
    /// Asset tag.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub asset_tag: Option<String>,
    /// Serial number.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub serial_number: Option<String>,
    /// DMI chassis type number.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    #[serde(rename = "type")]
    pub chassis_type: Option<String>,
    /// Chassis type in words.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub type_description: Option<String>,
    /// Vendor.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub vendor: Option<String>,
    /// Version.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub version: Option<String>,
}

/// The firmware, from DMI (modern ghw).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Bios {
    /// Vendor.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub vendor: Option<String>,
    /// Version.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub version: Option<String>,
    /// Release date.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub date: Option<String>,
}

/// The mainboard, from DMI (modern ghw).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Baseboard {
    /// Asset tag.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub asset_tag: Option<String>,
    /// Serial number.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub serial_number: Option<String>,
    /// Vendor.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub vendor: Option<String>,
    /// Version.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub version: Option<String>,
    /// Product.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub product: Option<String>,
}

/// The system product, from DMI (modern ghw).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Product {
    /// Family.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub family: Option<String>,
    /// Product name.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub name: Option<String>,
    /// Vendor.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub vendor: Option<String>,
    /// System serial number.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub serial_number: Option<String>,
    /// SMBIOS system UUID.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub uuid: Option<String>,
    /// SKU.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub sku: Option<String>,
    /// Version.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub version: Option<String>,
}
/// The kind of a block device, as ghw classifies it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum DriveType {
    /// A rotational hard disk.
    Hdd,
    /// A solid-state disk (including NVMe).
    Ssd,
    /// An optical disc drive.
    Odd,
    /// A floppy disk drive.
    Fdd,
    /// A virtual device (modern ghw).
    Virtual,
    /// Anything else, or not reported.
    #[default]
    Unknown,
}

impl DriveType {
    /// Whether the drive spins: `Some(true)` for hdd, `Some(false)` for ssd, else unknown.
    pub fn rotational(self) -> Option<bool> {
        match self {
            DriveType::Hdd => Some(true),
            DriveType::Ssd => Some(false),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for DriveType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = lenient::opt_string(d)?
            .unwrap_or_default()
            .to_ascii_lowercase();
        Ok(match s.as_str() {
            "hdd" => DriveType::Hdd,
            "ssd" => DriveType::Ssd,
            "odd" => DriveType::Odd,
            "fdd" => DriveType::Fdd,
            "virtual" => DriveType::Virtual,
            _ => DriveType::Unknown,
        })
    }
}

/// The controller a block device hangs off, as ghw classifies it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum StorageController {
    /// IDE/ATA.
    Ide,
    /// SCSI (including SATA and SAS behind libata/SCSI).
    Scsi,
    /// NVMe.
    Nvme,
    /// virtio-blk.
    Virtio,
    /// MMC/SD.
    Mmc,
    /// A loop device (modern ghw).
    Loop,
    /// Anything else, or not reported.
    #[default]
    Unknown,
}

impl<'de> Deserialize<'de> for StorageController {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = lenient::opt_string(d)?
            .unwrap_or_default()
            .to_ascii_lowercase();
        Ok(match s.as_str() {
            "ide" => StorageController::Ide,
            "scsi" => StorageController::Scsi,
            "nvme" => StorageController::Nvme,
            "virtio" => StorageController::Virtio,
            "mmc" => StorageController::Mmc,
            "loop" => StorageController::Loop,
            _ => StorageController::Unknown,
        })
    }
}
