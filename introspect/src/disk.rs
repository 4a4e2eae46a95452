//! Install-disk choice with Ironic-style root device hints.

use serde::{Deserialize, Serialize};

use crate::error::{RejectReason, Rejected};
use crate::ghw::{Disk, DriveType};

/// The smallest disk considered by default: 8 GiB (the RHCOS metal image needs more than 4).
pub const DEFAULT_MIN_DISK_BYTES: u64 = 8 << 30;

/// Ironic-style root device hints: every hint that is set must match.
///
/// Strings compare case-insensitively after trimming; `model` and `vendor` also treat `_` as a
/// space, because ghw replaces spaces with underscores. `name` matches `sda` or `/dev/sda`;
/// `by_path` matches the by-path link name with or without `/dev/disk/by-path/`; `wwn` matches
/// either ghw WWN field. Unlike Ironic, there are no operators (`<in>`, `s==`, `>=`): sizes are a
/// minimum, strings are equality.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DiskHints {
    /// Minimum size in bytes (on top of the global floor).
    pub min_size_bytes: Option<u64>,
    /// Spinning (`true`) or solid-state (`false`).
    pub rotational: Option<bool>,
    /// Kernel name, such as `sda` or `/dev/nvme0n1`.
    pub name: Option<String>,
    /// Model string.
    pub model: Option<String>,
    /// Vendor string.
    pub vendor: Option<String>,
    /// Serial number.
    pub serial: Option<String>,
    /// World Wide Name.
    pub wwn: Option<String>,
    /// The `/dev/disk/by-path/` link.
    pub by_path: Option<String>,
}

/// The chosen install disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chosen {
    /// Kernel name, such as `sda`.
    pub name: String,
    /// The path to hand to `coreos.inst.install_dev`: `/dev/disk/by-path/...` when the bus path
    /// is known (stable across reboots), else `/dev/<name>`.
    pub device: String,
    /// Size in bytes.
    pub size_bytes: u64,
    /// Logical sector size in bytes, when the inventory reports it.
    pub sector_size: Option<u32>,
}

/// Chooses the install disk: the smallest disk that is at least `floor` bytes, not removable,
/// not virtual (device-mapper, zram, loop, ram, md, nbd, optical, floppy) and matches every
/// hint; ties go to the first listed. Without hints this is Ironic's default (the smallest disk
/// above a minimum size).
///
/// # Errors
/// Every disk with the reason it was rejected, when none qualifies.
pub fn choose(disks: &[Disk], hints: &DiskHints, floor: u64) -> Result<Chosen, Vec<Rejected>> {
    let mut best: Option<Chosen> = None;
    let mut rejected = Vec::new();
    for disk in disks {
        match qualify(disk, hints, floor) {
            Ok(c) => {
                if best.as_ref().is_none_or(|b| c.size_bytes < b.size_bytes) {
                    best = Some(c);
                }
            }
            Err(reason) => rejected.push(Rejected {
                disk: disk.name.clone().unwrap_or_else(|| "?".into()),
                reason,
            }),
        }
    }
    best.ok_or(rejected)
}

/// Whether a name is safe to put on a kernel command line and in a path.
fn safe_name(s: &str) -> bool {
    !s.is_empty()
        && s != "."
        && s != ".."
        && s.len() <= 255
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:+-@".contains(&b))
}

fn norm(s: &str, underscores: bool) -> String {
    let s = s.trim().to_lowercase();
    if underscores { s.replace('_', " ") } else { s }
}

fn same(
    hint: &Option<String>,
    value: Option<&str>,
    what: &'static str,
    underscores: bool,
) -> Result<(), RejectReason> {
    let Some(h) = hint else { return Ok(()) };
    match value {
        Some(v) if norm(v, underscores) == norm(h, underscores) => Ok(()),
        _ => Err(RejectReason::Mismatch {
            hint: what,
            actual: value.map(str::to_owned),
            wanted: h.clone(),
        }),
    }
}

fn qualify(disk: &Disk, hints: &DiskHints, floor: u64) -> Result<Chosen, RejectReason> {
    let name = disk.name.as_deref().ok_or(RejectReason::NoName)?;
    if !safe_name(name) {
        return Err(RejectReason::UnsafeName);
    }
    const VIRTUAL: &[&str] = &["dm-", "zram", "loop", "ram", "md", "nbd", "sr", "fd"];
    if VIRTUAL.iter().any(|p| name.starts_with(p)) {
        return Err(RejectReason::Virtual);
    }
    if disk.removable == Some(true) {
        return Err(RejectReason::Removable);
    }
    if matches!(disk.drive_type, DriveType::Odd | DriveType::Fdd) {
        return Err(RejectReason::OpticalOrFloppy);
    }
    let size = disk.size_bytes.ok_or(RejectReason::SizeUnknown)?;
    let min = hints.min_size_bytes.unwrap_or(0).max(floor);
    if size < min {
        return Err(RejectReason::TooSmall {
            size_bytes: size,
            min_bytes: min,
        });
    }
    if let Some(r) = hints.rotational {
        let actual = disk.drive_type.rotational();
        if actual != Some(r) {
            return Err(RejectReason::Rotational { actual, wanted: r });
        }
    }
    let bare_name = hints
        .name
        .as_ref()
        .map(|n| n.trim_start_matches("/dev/").to_owned());
    same(&bare_name, Some(name), "name", false)?;
    same(&hints.model, disk.model.as_deref(), "model", true)?;
    same(&hints.vendor, disk.vendor.as_deref(), "vendor", true)?;
    same(
        &hints.serial,
        disk.serial_number.as_deref(),
        "serial",
        false,
    )?;
    if let Some(w) = &hints.wwn {
        let hit = [disk.wwn.as_deref(), disk.wwn_no_extension.as_deref()]
            .into_iter()
            .flatten()
            .any(|v| norm(v, false) == norm(w, false));
        if !hit {
            return Err(RejectReason::Mismatch {
                hint: "wwn",
                actual: disk.wwn.clone(),
                wanted: w.clone(),
            });
        }
    }
    let bus_path = disk.bus_path.as_deref().filter(|p| safe_name(p));
    let bare_path = hints
        .by_path
        .as_ref()
        .map(|p| p.trim_start_matches("/dev/disk/by-path/").to_owned());
    same(&bare_path, bus_path, "by_path", false)?;
    let device = match bus_path {
        Some(p) => format!("/dev/disk/by-path/{p}"),
        None => format!("/dev/{name}"),
    };
    Ok(Chosen {
        name: name.to_owned(),
        device,
        size_bytes: size,
        sector_size: disk
            .logical_block_size_bytes
            .and_then(|b| u32::try_from(b).ok()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    fn disk(
        name: &str,
        gib: u64,
        kind: DriveType,
        removable: bool,
        model: &str,
        bus: &str,
    ) -> Disk {
        Disk {
            name: Some(name.into()),
            size_bytes: Some(gib * GIB),
            drive_type: kind,
            removable: Some(removable),
            model: Some(model.into()),
            vendor: Some("ATA".into()),
            serial_number: Some(format!("SN-{name}")),
            wwn: Some(format!("0x5000{name}")),
            bus_path: (!bus.is_empty()).then(|| bus.into()),
            ..Disk::default()
        }
    }

    fn rack() -> Vec<Disk> {
        vec![
            disk("dm-0", 100, DriveType::Ssd, false, "unknown", ""),
            disk("sr0", 1, DriveType::Odd, true, "DVD", ""),
            disk(
                "sda",
                500,
                DriveType::Hdd,
                false,
                "ST500",
                "pci-0000:00:1f.2-ata-1",
            ),
            disk(
                "sdb",
                240,
                DriveType::Ssd,
                false,
                "Samsung_SSD_860",
                "pci-0000:00:1f.2-ata-2",
            ),
            disk("sdc", 4, DriveType::Ssd, false, "tiny", ""),
            disk("sdd", 64, DriveType::Ssd, true, "USB_stick", ""),
            disk("nvme0n1", 960, DriveType::Ssd, false, "PM983", ""),
        ]
    }

    /// The device chosen for `hints`, or the rejection reasons.
    fn check(hints: DiskHints, expected: &str) {
        let got = match choose(&rack(), &hints, DEFAULT_MIN_DISK_BYTES) {
            Ok(c) => c.device,
            Err(r) => r
                .iter()
                .map(|r| format!("{}: {}", r.disk, r.reason))
                .collect::<Vec<_>>()
                .join("; "),
        };
        assert_eq!(got, expected, "hints {hints:?}");
    }

    #[test]
    fn hints() {
        let h = DiskHints::default;
        check(h(), "/dev/disk/by-path/pci-0000:00:1f.2-ata-2");
        check(
            DiskHints {
                rotational: Some(true),
                ..h()
            },
            "/dev/disk/by-path/pci-0000:00:1f.2-ata-1",
        );
        check(
            DiskHints {
                name: Some("/dev/nvme0n1".into()),
                ..h()
            },
            "/dev/nvme0n1",
        );
        check(
            DiskHints {
                name: Some("nvme0n1".into()),
                ..h()
            },
            "/dev/nvme0n1",
        );
        check(
            DiskHints {
                model: Some("samsung ssd 860".into()),
                ..h()
            },
            "/dev/disk/by-path/pci-0000:00:1f.2-ata-2",
        );
        check(
            DiskHints {
                min_size_bytes: Some(300 * GIB),
                ..h()
            },
            "/dev/disk/by-path/pci-0000:00:1f.2-ata-1",
        );
        check(
            DiskHints {
                serial: Some("SN-nvme0n1".into()),
                ..h()
            },
            "/dev/nvme0n1",
        );
        check(
            DiskHints {
                wwn: Some("0x5000SDA".into()),
                ..h()
            },
            "/dev/disk/by-path/pci-0000:00:1f.2-ata-1",
        );
        check(
            DiskHints {
                by_path: Some("/dev/disk/by-path/pci-0000:00:1f.2-ata-1".into()),
                ..h()
            },
            "/dev/disk/by-path/pci-0000:00:1f.2-ata-1",
        );
        check(
            DiskHints {
                vendor: Some("ATA".into()),
                rotational: Some(false),
                min_size_bytes: Some(500 * GIB),
                ..h()
            },
            "/dev/nvme0n1",
        );
        check(
            DiskHints {
                model: Some("PERC".into()),
                ..h()
            },
            "dm-0: virtual or removable-media device; sr0: virtual or removable-media device; \
             sda: model \"ST500\" != \"PERC\"; sdb: model \"Samsung_SSD_860\" != \"PERC\"; \
             sdc: too small: 4294967296 < 8589934592 bytes; sdd: removable; \
             nvme0n1: model \"PM983\" != \"PERC\"",
        );
    }

    #[test]
    fn unsafe_and_unknown_values() {
        let mut evil = disk(
            "sda coreos.inst.ignition_url=x",
            100,
            DriveType::Ssd,
            false,
            "m",
            "",
        );
        let mut odd_path = disk("sdb", 100, DriveType::Unknown, false, "m", "../../etc");
        odd_path.removable = None;
        let mut nosize = disk("sdc", 0, DriveType::Ssd, false, "m", "");
        nosize.size_bytes = None;
        evil.bus_path = None;
        let disks = [evil, odd_path, nosize];
        let c = choose(&disks, &DiskHints::default(), DEFAULT_MIN_DISK_BYTES).unwrap();
        assert_eq!(c.device, "/dev/sdb");
        let r = choose(
            &disks,
            &DiskHints {
                rotational: Some(false),
                ..DiskHints::default()
            },
            0,
        )
        .unwrap_err();
        let reasons: Vec<String> = r.iter().map(|r| r.reason.to_string()).collect();
        assert_eq!(
            reasons,
            [
                "unsafe name",
                "rotational unknown, hint false",
                "size unknown"
            ]
        );
    }
}
