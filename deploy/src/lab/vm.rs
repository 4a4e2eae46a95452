//! One lab VM: a QEMU guest on the lab bridge, powered by its own ipmi_sim BMC.

use std::fs::File;
use std::net::{SocketAddr, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use pxe_stack::Mac;

use super::Error;
use super::image::{BLS_ENTRY, Image, read_gpt};
use super::sys::{have, run};

const CHASSIS_SCRIPT: &str = include_str!("chassis.sh");
const BMC_EMU: &str = "mc_setbmc 0x20\n\
mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr\n\
sel_enable 0x20 1000 0x0a\n\
mc_enable 0x20\n";

/// The firmware a lab VM boots with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Firmware {
    /// SeaBIOS with QEMU's iPXE option ROM (which chains our script directly).
    Bios,
    /// OVMF with no NIC option ROM: the firmware's own PXE fetches snponly.efi over TFTP.
    Uefi,
    /// OVMF with its PXE switched off, so its UEFI HTTP boot runs: DHCP (v4, then v6) with
    /// the `HTTPClient` vendor class, then the boot file over HTTP (the URL the DHCP server
    /// gives it), as a rack's servers set to HTTP boot do.
    #[serde(rename = "uefi-http")]
    UefiHttp,
    /// OVMF's Secure Boot build with Microsoft's keys enrolled (q35, SMM, secure pflash):
    /// the firmware runs only signed binaries, so the host boots shim → GRUB → signed kernel.
    #[serde(rename = "uefi-secure-boot")]
    UefiSecureBoot,
}

/// Debian's `ovmf` files for each UEFI firmware: code, variables template, extra QEMU options.
pub(crate) fn ovmf(firmware: Firmware) -> Option<(&'static str, &'static str, &'static str)> {
    match firmware {
        Firmware::Bios => None,
        Firmware::Uefi | Firmware::UefiHttp => Some((
            "/usr/share/OVMF/OVMF_CODE_4M.fd",
            "/usr/share/OVMF/OVMF_VARS_4M.fd",
            "-M q35",
        )),
        Firmware::UefiSecureBoot => Some((
            "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd",
            "/usr/share/OVMF/OVMF_VARS_4M.ms.fd",
            "-M q35,smm=on -global driver=cfi.pflash01,property=secure,value=on",
        )),
    }
}

/// The QEMU accelerator. TCG is the default: under nested KVM the iPXE ROM hits an emulation
/// failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Accel {
    /// Software emulation.
    #[default]
    Tcg,
    /// KVM.
    Kvm,
}

/// What the lab needs to know to create one VM.
#[derive(Debug, Clone)]
pub struct VmSpec {
    /// A short name (`node0`), used for files and the tap device.
    pub name: String,
    /// The NIC's MAC.
    pub mac: Mac,
    /// BIOS or UEFI.
    pub firmware: Firmware,
    /// Guest memory in MiB.
    pub memory_mib: u32,
    /// Disk size in MiB.
    pub disk_mib: u32,
    /// The disk's logical (and physical) sector size: 512, or 4096 for a 4Kn disk, which gets
    /// the `4k` metal image.
    pub sector_size: u32,
}

/// A VM and its BMC. Dropping it powers the VM off and stops the BMC.
#[derive(Debug)]
pub struct Vm {
    /// The spec it was made from.
    pub spec: VmSpec,
    /// Where the BMC listens (IPMI over LAN, UDP), on the loopback of the provisioning
    /// server's namespace (the lab's management network).
    pub bmc: SocketAddr,
    /// The VM's directory: disk, serial log, BMC state.
    pub dir: PathBuf,
    bmc_netns: String,
    bmc_process: Child,
}

/// The BMC's credentials (administrator).
pub const BMC_USER: &str = "admin";
/// The BMC's password; a throwaway lab secret.
pub const BMC_PASSWORD: &str = "password";

impl Vm {
    /// Creates the VM's disk and start script and starts its BMC. The VM is powered off.
    /// QEMU runs in `hosts_netns` (where `tap` is), the BMC in `bmc_netns` (its management
    /// network).
    pub fn create(
        spec: VmSpec,
        dir: PathBuf,
        hosts_netns: &str,
        bmc_netns: &str,
        tap: &str,
        accel: Accel,
        family: crate::plan::NetworkFamily,
    ) -> Result<Self, Error> {
        for p in ["qemu-system-x86_64", "ipmi_sim", "ipmitool"] {
            if !have(p) {
                return Err(Error::Missing {
                    what: format!("{p} (run scripts/install-deps.sh)"),
                });
            }
        }
        std::fs::create_dir_all(dir.join("state")).map_err(|source| Error::Io {
            path: dir.clone(),
            source,
        })?;
        let disk = dir.join("disk.raw");
        File::create(&disk)
            .and_then(|f| f.set_len(u64::from(spec.disk_mib) << 20))
            .map_err(|source| Error::Io {
                path: disk.clone(),
                source,
            })?;
        write(&dir.join("sercon"), &0x3f8u64.to_le_bytes(), 0o644)?;
        let mut firmware_args = String::new();
        let mut nic_extra = "";
        if let Some((code, vars_template, machine)) = ovmf(spec.firmware) {
            for f in [code, vars_template] {
                if !Path::new(f).is_file() {
                    return Err(Error::Missing {
                        what: format!("{f} (package ovmf; run scripts/install-deps.sh)"),
                    });
                }
            }
            let vars = dir.join("OVMF_VARS.fd");
            std::fs::copy(vars_template, &vars).map_err(|source| Error::Io {
                path: vars_template.into(),
                source,
            })?;
            // OVMF's PXE runs over one family: IPv4 on an IPv4 lab, else IPv6 only, so a host
            // never waits out the other family's DHCP timeout first. An HTTP boot host has no
            // PXE at all (OVMF tries HTTP over IPv4, then over IPv6).
            let (v4, v6) = match (spec.firmware, family.has_ipv6()) {
                (Firmware::UefiHttp, _) => ("n", "n"),
                (_, false) => ("y", "n"),
                (_, true) => ("n", "y"),
            };
            firmware_args = format!(
                "{machine} -drive if=pflash,format=raw,readonly=on,file={code} \
                 -drive if=pflash,format=raw,file={vars} \
                 -fw_cfg name=opt/org.tianocore/IPv4PXESupport,string={v4} \
                 -fw_cfg name=opt/org.tianocore/IPv6PXESupport,string={v6}",
                vars = vars.display()
            );
            // No option ROM: OVMF's own PXE client runs, as on a real UEFI server.
            nic_extra = ",romfile=";
        }
        let accel = match accel {
            Accel::Tcg => "tcg",
            Accel::Kvm => "kvm",
        };
        let d = dir.display();
        let start = format!(
            "#!/bin/sh\n\
             # Starts this VM; $1 is the BMC's boot device (pxe boots the NIC first).\n\
             if [ \"$1\" = pxe ]; then net=1; disk=2; else net=2; disk=1; fi\n\
             exec ip netns exec {hosts_netns} qemu-system-x86_64 -name {name} -accel {accel} \
             -m {mem} -smp 1 -display none -vga none -nodefaults {firmware_args} \
             -fw_cfg name=etc/sercon-port,file={d}/sercon \
             -serial file:{d}/serial.log -pidfile {d}/qemu.pid -daemonize \
             -drive file={d}/disk.raw,if=none,id=d0,format=raw \
             -device virtio-blk-pci,drive=d0,bootindex=$disk,logical_block_size={ss},physical_block_size={ss} \
             -netdev tap,id=n0,ifname={tap},script=no,downscript=no \
             -device virtio-net-pci,netdev=n0,mac={mac},bootindex=$net{nic_extra}\n",
            name = spec.name,
            mem = spec.memory_mib,
            mac = spec.mac,
            ss = spec.sector_size,
        );
        write(&dir.join("start-vm.sh"), start.as_bytes(), 0o755)?;
        let chassis = dir.join("chassis.sh");
        write(&chassis, CHASSIS_SCRIPT.as_bytes(), 0o755)?;
        write(&dir.join("bmc.emu"), BMC_EMU.as_bytes(), 0o644)?;

        let port = free_udp_port()?;
        let conf = format!(
            "name \"{name}\"\n\
             set_working_mc 0x20\n\
             \x20 startlan 1\n\
             \x20   addr 127.0.0.1 {port}\n\
             \x20   priv_limit admin\n\
             \x20   allowed_auths_callback none md2 md5 straight\n\
             \x20   allowed_auths_user none md2 md5 straight\n\
             \x20   allowed_auths_operator none md2 md5 straight\n\
             \x20   allowed_auths_admin none md2 md5 straight\n\
             \x20   guid a123456789abcdefa123456789abcdef\n\
             \x20 endlan\n\
             \x20 chassis_control \"{chassis} {d}\"\n\
             \x20 user 1 false \"\" \"\" user 10 none md2 md5 straight\n\
             \x20 user 2 true \"{BMC_USER}\" \"{BMC_PASSWORD}\" admin 10 none md2 md5 straight\n",
            name = spec.name,
            chassis = chassis.display(),
        );
        write(&dir.join("lan.conf"), conf.as_bytes(), 0o644)?;
        let log = File::create(dir.join("bmc.log")).map_err(|source| Error::Io {
            path: dir.join("bmc.log"),
            source,
        })?;
        // The BMC listens on the server namespace's loopback: the lab's management network.
        let bmc_process = Command::new("ip")
            .args(["netns", "exec", bmc_netns, "ipmi_sim", "-c"])
            .arg(dir.join("lan.conf"))
            .arg("-f")
            .arg(dir.join("bmc.emu"))
            .arg("-s")
            .arg(dir.join("state"))
            .arg("-n")
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|source| Error::Io {
                path: dir.join("bmc.log"),
                source,
            })?)
            .stderr(log)
            .spawn()
            .map_err(|source| Error::Spawn {
                program: "ipmi_sim".into(),
                source,
            })?;
        let vm = Vm {
            spec,
            bmc: SocketAddr::from(([127, 0, 0, 1], port)),
            dir,
            bmc_netns: bmc_netns.to_owned(),
            bmc_process,
        };
        vm.wait_for_bmc()?;
        Ok(vm)
    }

    fn wait_for_bmc(&self) -> Result<(), Error> {
        let port = self.bmc.port().to_string();
        for _ in 0..50 {
            let ok = run(
                "ip",
                [
                    "netns",
                    "exec",
                    &self.bmc_netns,
                    "ipmitool",
                    "-I",
                    "lanplus",
                    "-C",
                    "3",
                    "-H",
                    "127.0.0.1",
                    "-p",
                    &port,
                    "-U",
                    BMC_USER,
                    "-P",
                    BMC_PASSWORD,
                    "-N",
                    "1",
                    "-R",
                    "1",
                    "chassis",
                    "power",
                    "status",
                ],
            );
            if ok.is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(Error::Missing {
            what: format!("an answering ipmi_sim on {} (see bmc.log)", self.bmc),
        })
    }

    /// Whether the VM's QEMU process is running.
    pub fn running(&self) -> bool {
        std::fs::read_to_string(self.dir.join("qemu.pid"))
            .ok()
            .and_then(|p| p.trim().parse::<i32>().ok())
            .is_some_and(|pid| {
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
            })
    }

    /// Powers the VM on to boot from the network, as its BMC would (`chassis.sh set boot pxe
    /// power 1`).
    pub fn power_on_pxe(&self) -> Result<(), Error> {
        self.chassis(&["set", "boot", "pxe", "power", "1"])
    }

    /// Powers the VM off, as its BMC would.
    pub fn power_off(&self) -> Result<(), Error> {
        self.chassis(&["set", "power", "0"])
    }

    fn chassis(&self, args: &[&str]) -> Result<(), Error> {
        let chassis = self.dir.join("chassis.sh");
        let dir = self.dir.to_string_lossy();
        let all = std::iter::once(dir.as_ref()).chain(args.iter().copied());
        run(&chassis.to_string_lossy(), all).map(|_| ())
    }

    /// The serial console output so far.
    pub fn serial_log(&self) -> String {
        std::fs::read(self.dir.join("serial.log"))
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// Reads back what the installer wrote to this VM's disk, against the image it installed.
    pub fn inspect_disk(&self, image: &Image) -> Result<DiskReport, Error> {
        inspect_disk(&self.dir.join("disk.raw"), image, &self.dir)
    }

    fn kill_qemu(&self) {
        if let Some(pid) = std::fs::read_to_string(self.dir.join("qemu.pid"))
            .ok()
            .and_then(|p| p.trim().parse::<i32>().ok())
        {
            // Only a process that is this VM's QEMU is killed.
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains(&self.dir.display().to_string()) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        self.kill_qemu();
        let _ = self.bmc_process.kill();
        let _ = self.bmc_process.wait();
    }
}

/// What coreos-installer left on a disk, read from the host: the partition table, the bytes
/// outside the `boot` partition, and the files coreos-installer writes or edits inside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskReport {
    /// The GPT's partitions (name, first byte, length), read at the image's sector size.
    pub partitions: Vec<(String, u64, u64)>,
    /// Whether the disk's first image-length bytes equal the image outside `boot`.
    pub outside_boot_identical: bool,
    /// The `boot` files the installer does not touch, whose content differs from the image's.
    pub boot_files_changed: Vec<String>,
    /// `/ignition/config.ign` in the `boot` filesystem, where coreos-installer writes it.
    pub ignition: Option<Vec<u8>>,
    /// Its mode as debugfs shows it (coreos-installer makes it 0600).
    pub ignition_mode: Option<String>,
    /// The `options` line of the BLS entry: the first-boot kernel arguments.
    pub bls_options: Option<String>,
    /// `ignition.firstboot`, to which coreos-installer appends `--firstboot-args`.
    pub firstboot: Option<String>,
}

/// Reads a disk as [`DiskReport`] says, comparing it with `image`; `scratch` holds the
/// extracted `boot` filesystem while debugfs reads it.
pub fn inspect_disk(path: &Path, image: &Image, scratch: &Path) -> Result<DiskReport, Error> {
    let partitions = read_gpt(path, image.sector_size)?;
    let boot = image.partition("boot").ok_or(Error::Missing {
        what: "a boot partition in the lab image".into(),
    })?;
    let io = |p: &Path| {
        let p = p.to_owned();
        move |source| Error::Io { path: p, source }
    };
    let disk_bytes = std::fs::read(path).map_err(io(path))?;
    let image_bytes = std::fs::read(&image.raw).map_err(io(&image.raw))?;
    let len = image_bytes.len();
    let (b0, b1) = (boot.offset as usize, (boot.offset + boot.len) as usize);
    let outside_boot_identical = disk_bytes.len() >= len
        && disk_bytes[..b0] == image_bytes[..b0]
        && disk_bytes[b1..len] == image_bytes[b1..len];

    let fs = |bytes: &[u8], name: &str| -> Result<PathBuf, Error> {
        let p = scratch.join(name);
        std::fs::write(&p, &bytes[b0..b1]).map_err(io(&p))?;
        Ok(p)
    };
    let disk_boot = fs(&disk_bytes, "boot-on-disk.ext4")?;
    let image_boot = fs(&image_bytes, "boot-in-image.ext4")?;
    let mut boot_files_changed = Vec::new();
    for file in [
        BLS_ENTRY,
        "ignition.firstboot",
        "coreos/platforms.json",
        "grub2/grub.cfg",
    ] {
        // The installer only appends to ignition.firstboot (with --firstboot-args).
        let was = debugfs_cat(&image_boot, file)?;
        let is = debugfs_cat(&disk_boot, file)?;
        let same = match file {
            "ignition.firstboot" => match (&was, &is) {
                (Some(w), Some(i)) => i.starts_with(w.as_slice()),
                _ => false,
            },
            _ => was == is,
        };
        if !same {
            boot_files_changed.push(file.to_owned());
        }
    }
    let text = |b: Option<Vec<u8>>| b.map(|b| String::from_utf8_lossy(&b).into_owned());
    let ignition = debugfs_cat(&disk_boot, "ignition/config.ign")?;
    let ignition_mode = match ignition {
        Some(_) => {
            let stat = run(
                "debugfs",
                [
                    "-R".as_ref(),
                    "stat /ignition/config.ign".as_ref(),
                    disk_boot.as_os_str(),
                ],
            )?;
            stat.split_whitespace()
                .skip_while(|w| *w != "Mode:")
                .nth(1)
                .map(str::to_owned)
        }
        None => None,
    };
    let bls_options = text(debugfs_cat(&disk_boot, BLS_ENTRY)?).and_then(|entry| {
        entry
            .lines()
            .find_map(|l| l.strip_prefix("options "))
            .map(str::to_owned)
    });
    let firstboot = text(debugfs_cat(&disk_boot, "ignition.firstboot")?);
    let _ = std::fs::remove_file(&disk_boot);
    let _ = std::fs::remove_file(&image_boot);
    Ok(DiskReport {
        partitions,
        outside_boot_identical,
        boot_files_changed,
        ignition,
        ignition_mode,
        bls_options,
        firstboot,
    })
}

/// A file of an ext4 image, read with e2fsprogs' debugfs (no mount needed); `None` when the
/// file is not there.
fn debugfs_cat(fs: &Path, file: &str) -> Result<Option<Vec<u8>>, Error> {
    let out = Command::new("debugfs")
        .arg("-R")
        .arg(format!("cat /{file}"))
        .arg(fs)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| Error::Spawn {
            program: "debugfs (apt-get install e2fsprogs)".into(),
            source,
        })?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() || stderr.contains("not found") || stderr.contains("Bad magic") {
        if stderr.contains("File not found") {
            return Ok(None);
        }
        if !out.status.success() || stderr.contains("Bad magic") {
            return Err(Error::Command {
                command: format!("debugfs -R 'cat /{file}' {}", fs.display()),
                status: out.status.code(),
                stderr: stderr.trim().to_owned(),
            });
        }
        return Ok(None);
    }
    Ok(Some(out.stdout))
}

fn write(path: &Path, data: &[u8], mode: u32) -> Result<(), Error> {
    std::fs::write(path, data)
        .and_then(|_| std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)))
        .map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })
}

fn free_udp_port() -> Result<u16, Error> {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .map_err(|source| Error::Io {
            path: "udp 127.0.0.1:0".into(),
            source,
        })
}
