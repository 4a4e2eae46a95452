//! The lab's live installer: Debian's kernel plus an initramfs built here that runs the real
//! `coreos-installer`, driven by its own unmodified `coreos-installer-service` script.
//!
//! What comes from where, in the initramfs:
//! - `/init` ([`INIT_SCRIPT`], busybox sh) plays the part of the live system's own initrd
//!   units: loads modules, starts Debian's real `systemd-udevd`, brings the NIC up with busybox
//!   udhcpc, fetches `coreos.live.rootfs_url` as coreos-livepxe-rootfs does, runs our
//!   introspection hook, then runs the service script as `coreos-installer.service` would
//!   (output to the console), reports the stages and powers off (no systemd here to do the
//!   `coreos-installer-reboot.service` part).
//! - `coreos-installer` is the crates.io crate, built once with `cargo install` into the lab's
//!   cache ([`coreos_installer`]).
//! - `/usr/libexec/coreos-installer-service` is [`SERVICE_SCRIPT`], byte for byte the crate's
//!   `scripts/coreos-installer-service` (see `coreos-installer-service.NOTICE`).
//! - bash, lsblk, blkid, udevadm (also as systemd-udevd), gpg, ISC dhclient (the DHCPv6
//!   client for `ip=dhcp6`, with a `-sf` hook writing the address and resolvers) and every
//!   shared library they load (found with `ldd`, plus the dynamic loader) are copied from this Debian machine.
//! - busybox provides everything else (`sh`, `wget`, `udhcpc`, `nslookup`, `insmod`,
//!   `poweroff`, `rm`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use flate2::Compression;
use flate2::write::GzEncoder;

use super::Error;
use super::sys::{find_program, run};

/// The coreos-installer release the lab builds and runs.
pub const COREOS_INSTALLER_VERSION: &str = "0.27.0";
/// coreos-installer's `scripts/coreos-installer-service` from that release, unmodified.
pub const SERVICE_SCRIPT: &str = include_str!("coreos-installer-service");
/// The sha256 of [`SERVICE_SCRIPT`] as shipped in the crate package.
pub const SERVICE_SCRIPT_SHA256: &str =
    "f00074fa854d1c5b0e7a690f2ea618aa32f564e9ab38b395aaac1dcad942d2eb";
/// The live initramfs's /init (see the module docs).
pub const INIT_SCRIPT: &str = include_str!("live-init.sh");
const UDHCPC_SCRIPT: &str = include_str!("udhcpc.script");
const DHCLIENT6_SCRIPT: &str = include_str!("dhclient6.script");
/// dhclient's configuration: the DHCPv6 resolvers and search domains (options 23 and 24).
const DHCLIENT_CONF: &str = "also request dhcp6.name-servers, dhcp6.domain-search;\n";

/// Kernel modules the installer loads (their dependencies are resolved with modprobe).
/// Debian builds virtio, e1000, the ATA drivers and ext4 (which coreos-installer mounts to
/// write the Ignition config) as modules.
pub(crate) const MODULES: &[&str] = &[
    "virtio_net",
    "virtio_pci",
    "virtio_blk",
    "e1000",
    "ata_piix",
    "sd_mod",
    "ext4",
];

/// Programs copied from this machine into the initramfs's /usr/bin, with their libraries.
/// coreos-installer calls lsblk, blkid, udevadm and gpg; the service script is bash; gpg 2.2
/// starts gpg-agent even to import the public keys it verifies with.
/// ISC dhclient is the DHCPv6 client (`ip=dhcp6`): busybox here has no udhcpc6.
const PROGRAMS: &[&str] = &[
    "bash",
    "lsblk",
    "blkid",
    "udevadm",
    "gpg",
    "gpg-agent",
    "dhclient",
];

/// The udev rules the installer needs: device nodes, and the by-label/by-partlabel links and
/// filesystem properties that lsblk reads from udev's database.
const UDEV_RULES: &[&str] = &[
    "50-udev-default.rules",
    "60-block.rules",
    "60-persistent-storage.rules",
];

/// The live installer's kernel and initramfs, as files, and the coreos-installer inside.
#[derive(Debug, Clone)]
pub struct Installer {
    /// The kernel image (Debian's vmlinuz).
    pub kernel: PathBuf,
    /// The gzip'd newc initramfs.
    pub initramfs: PathBuf,
    /// The coreos-installer binary the initramfs carries (in the lab's cache).
    pub coreos_installer: PathBuf,
    /// What that binary says with `--version` (`coreos-installer 0.27.0`).
    pub version: String,
}

/// The newest kernel release installed under /lib/modules that has a /boot/vmlinuz.
pub(crate) fn installed_kernel() -> Result<(String, PathBuf), Error> {
    let mut releases: Vec<String> = std::fs::read_dir("/lib/modules")
        .map_err(|source| Error::Io {
            path: "/lib/modules".into(),
            source,
        })?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|r| Path::new(&format!("/boot/vmlinuz-{r}")).exists())
        .collect();
    releases.sort();
    let release = releases.pop().ok_or(Error::Missing {
        what: "a kernel in /boot with modules in /lib/modules (apt-get install linux-image-amd64)"
            .into(),
    })?;
    let kernel = PathBuf::from(format!("/boot/vmlinuz-{release}"));
    Ok((release, kernel))
}

/// One build at a time in this process; across processes the rename below keeps it whole.
static BUILD: Mutex<()> = Mutex::new(());

/// The coreos-installer binary of [`COREOS_INSTALLER_VERSION`] under `cache`, built with
/// `cargo install --locked` (at low priority) the first time: about 6.5 minutes on 2 cores.
/// It is installed into a temporary root that is renamed into place when complete.
pub fn coreos_installer(cache: &Path) -> Result<PathBuf, Error> {
    let root = cache.join(format!("coreos-installer-{COREOS_INSTALLER_VERSION}"));
    let bin = root.join("bin/coreos-installer");
    let _one = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    if bin.is_file() {
        return Ok(bin);
    }
    std::fs::create_dir_all(cache).map_err(|source| Error::Io {
        path: cache.to_owned(),
        source,
    })?;
    let tmp = cache.join(format!(
        ".coreos-installer-{COREOS_INSTALLER_VERSION}.tmp{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&tmp);
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let version = format!("={COREOS_INSTALLER_VERSION}");
    tracing::info!(%version, "building coreos-installer (once; cached)");
    let out = Command::new("nice")
        .args(["-n", "15"])
        .arg(&cargo)
        .args([
            "install",
            "--locked",
            "--quiet",
            "coreos-installer",
            "--version",
        ])
        .arg(&version)
        .arg("--root")
        .arg(&tmp)
        .arg("--target-dir")
        .arg(cache.join("coreos-installer-build"))
        // Outside any workspace, so no project's cargo config applies.
        .current_dir(cache)
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTFLAGS")
        .output()
        .map_err(|source| Error::Spawn {
            program: "cargo install coreos-installer".into(),
            source,
        })?;
    if !out.status.success() {
        let _ = std::fs::remove_dir_all(&tmp);
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(Error::Command {
            command: format!("cargo install --locked coreos-installer --version {version}"),
            status: out.status.code(),
            // The end of cargo's output says what failed (a missing -dev package, usually).
            stderr: stderr
                .lines()
                .rev()
                .take(30)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n"),
        });
    }
    std::fs::rename(&tmp, &root).map_err(|source| Error::Io {
        path: root.clone(),
        source,
    })?;
    let _ = std::fs::remove_dir_all(cache.join("coreos-installer-build"));
    Ok(bin)
}

/// Builds the live installer into `dir` (kernel copied as `vmlinuz`, initramfs as
/// `initrd.img`), with coreos-installer from `cache`.
pub(crate) fn build(dir: &Path, cache: &Path) -> Result<Installer, Error> {
    let (release, kernel_src) = installed_kernel()?;
    let kernel = dir.join("vmlinuz");
    copy(&kernel_src, &kernel)?;

    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.exists())
        .ok_or(Error::Missing {
            what: "busybox (apt-get install busybox-static)".into(),
        })?;
    let coreos_installer = coreos_installer(cache)?;
    let version = run(&coreos_installer.display().to_string(), ["--version"])?
        .trim()
        .to_owned();

    let mut modules = Vec::new();
    for m in MODULES {
        let deps = run("modprobe", ["--show-depends", "-S", &release, m])?;
        for line in deps.lines() {
            let mut words = line.split_whitespace();
            if words.next() == Some("insmod")
                && let Some(ko) = words.next()
            {
                let ko = PathBuf::from(ko);
                if ko.extension().and_then(|e| e.to_str()) != Some("ko") {
                    // busybox insmod cannot read compressed modules.
                    return Err(Error::Missing {
                        what: format!("an uncompressed module, found {}", ko.display()),
                    });
                }
                if !modules.contains(&ko) {
                    modules.push(ko);
                }
            }
        }
    }

    let mut cpio = Cpio::default();
    // Merged /usr as on Debian 12: /lib and /lib64 point into /usr. /bin stays busybox's own,
    // so its applets never shadow the real programs in /usr/bin.
    for d in [
        "bin",
        "dev",
        "etc",
        "etc/coreos",
        "proc",
        "sys",
        "tmp",
        "run",
        "usr",
        "usr/bin",
        "usr/libexec",
        "usr/lib",
        "usr/lib64",
        "usr/lib/modules",
        "usr/lib/udev",
        "usr/lib/udev/rules.d",
        "usr/lib/systemd",
    ] {
        cpio.dir(d);
    }
    cpio.symlink("lib", "usr/lib");
    cpio.symlink("lib64", "usr/lib64");
    cpio.node("dev/console", 0o020600, (5, 1));
    cpio.node("dev/null", 0o020666, (1, 3));
    cpio.file("bin/busybox", 0o100755, &read(busybox)?);
    cpio.file("init", 0o100755, INIT_SCRIPT.as_bytes());
    cpio.file("etc/udhcpc.script", 0o100755, UDHCPC_SCRIPT.as_bytes());
    cpio.file(
        "etc/dhclient6.script",
        0o100755,
        DHCLIENT6_SCRIPT.as_bytes(),
    );
    cpio.dir("etc/dhcp");
    cpio.file("etc/dhcp/dhclient.conf", 0o100644, DHCLIENT_CONF.as_bytes());
    // udev resolves the groups its rules name; the rest of the system has only root.
    cpio.file("etc/passwd", 0o100644, b"root:x:0:0:root:/root:/bin/sh\n");
    cpio.file(
        "etc/group",
        0o100644,
        b"root:x:0:\ndisk:x:6:\ntty:x:5:\nkmem:x:15:\ncdrom:x:24:\ndialout:x:20:\naudio:x:29:\nvideo:x:44:\ninput:x:105:\nkvm:x:106:\nrender:x:107:\nsgx:x:108:\ntape:x:26:\n",
    );
    cpio.file(
        "usr/libexec/coreos-installer-service",
        0o100755,
        SERVICE_SCRIPT.as_bytes(),
    );
    cpio.file(
        "usr/bin/coreos-installer",
        0o100755,
        &read(&coreos_installer)?,
    );
    let mut libraries: Vec<PathBuf> = Vec::new();
    for name in PROGRAMS {
        let path = find_program(name).ok_or_else(|| Error::Missing {
            what: format!("{name} (run scripts/install-deps.sh)"),
        })?;
        cpio.file(&format!("usr/bin/{name}"), 0o100755, &read(&path)?);
        libraries.extend(shared_libraries(&path)?);
    }
    libraries.extend(shared_libraries(&coreos_installer)?);
    libraries.sort();
    libraries.dedup();
    for lib in &libraries {
        // Written under the name the loader asks for, with the content it resolves to.
        let inside = usr_path(lib);
        for parent in Path::new(&inside).ancestors().skip(1) {
            let p = parent.to_string_lossy();
            if !p.is_empty() && !cpio.has(&p) {
                cpio.dir(&p);
            }
        }
        cpio.file(&inside, 0o100755, &read(lib)?);
    }
    cpio.symlink("bin/bash", "/usr/bin/bash");
    cpio.symlink("usr/lib/systemd/systemd-udevd", "/usr/bin/udevadm");
    for rule in UDEV_RULES {
        let src = Path::new("/usr/lib/udev/rules.d").join(rule);
        cpio.file(
            &format!("usr/lib/udev/rules.d/{rule}"),
            0o100644,
            &read(&src)?,
        );
    }
    let mut order = String::new();
    for ko in &modules {
        let name = ko
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        cpio.file(&format!("usr/lib/modules/{name}.ko"), 0o100644, &read(ko)?);
        order.push_str(&name);
        order.push('\n');
    }
    cpio.file("etc/modules.order", 0o100644, order.as_bytes());
    cpio.file(
        "etc/coreos-installer-version",
        0o100644,
        format!("{version}\n").as_bytes(),
    );

    let initramfs = dir.join("initrd.img");
    let tmp = dir.join(".initrd.img.tmp");
    let mut gz = GzEncoder::new(Vec::new(), Compression::new(6));
    gz.write_all(&cpio.finish())
        .and_then(|_| gz.finish())
        .and_then(|bytes| std::fs::write(&tmp, bytes))
        .and_then(|_| std::fs::rename(&tmp, &initramfs))
        .map_err(|source| Error::Io {
            path: initramfs.clone(),
            source,
        })?;
    Ok(Installer {
        kernel,
        initramfs,
        coreos_installer,
        version,
    })
}

/// The libraries `ldd` says a program loads, the dynamic loader included.
fn shared_libraries(program: &Path) -> Result<Vec<PathBuf>, Error> {
    let out = run("ldd", [program])?;
    let mut libs = Vec::new();
    for line in out.lines() {
        let line = line.trim();
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(p) = path.filter(|p| p.starts_with('/')) {
            libs.push(PathBuf::from(p));
        }
    }
    Ok(libs)
}

/// A host path as it sits in the initramfs, where /lib and /lib64 live under /usr.
fn usr_path(path: &Path) -> String {
    let p = path.to_string_lossy();
    let p = p.trim_start_matches('/');
    if p.starts_with("lib/") || p.starts_with("lib64/") {
        format!("usr/{p}")
    } else {
        p.to_owned()
    }
}

fn read(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })
}

fn copy(from: &Path, to: &Path) -> Result<(), Error> {
    std::fs::copy(from, to)
        .map(|_| ())
        .map_err(|source| Error::Io {
            path: from.to_owned(),
            source,
        })
}

/// A minimal writer of the `newc` cpio format the kernel unpacks.
#[derive(Default)]
struct Cpio {
    out: Vec<u8>,
    ino: u32,
    names: std::collections::HashSet<String>,
}

impl Cpio {
    fn has(&self, name: &str) -> bool {
        self.names.contains(name)
    }

    fn dir(&mut self, name: &str) {
        self.entry(name, 0o040755, 2, (0, 0), &[]);
    }

    fn node(&mut self, name: &str, mode: u32, rdev: (u32, u32)) {
        self.entry(name, mode, 1, rdev, &[]);
    }

    fn file(&mut self, name: &str, mode: u32, data: &[u8]) {
        self.entry(name, mode, 1, (0, 0), data);
    }

    fn symlink(&mut self, name: &str, target: &str) {
        self.entry(name, 0o120777, 1, (0, 0), target.as_bytes());
    }

    fn entry(&mut self, name: &str, mode: u32, nlink: u32, rdev: (u32, u32), data: &[u8]) {
        self.names.insert(name.to_owned());
        self.ino += 1;
        let fields = [
            self.ino,
            mode,
            0,
            0,
            nlink,
            0,
            data.len() as u32,
            0,
            0,
            rdev.0,
            rdev.1,
            name.len() as u32 + 1,
            0,
        ];
        self.out.extend_from_slice(b"070701");
        for f in fields {
            self.out.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        self.pad();
        self.out.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.out.len().is_multiple_of(4) {
            self.out.push(0);
        }
    }

    fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, 1, (0, 0), &[]);
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    #[test]
    fn the_service_script_is_the_crates_own() {
        assert_eq!(
            hex::encode(Sha256::digest(SERVICE_SCRIPT.as_bytes())),
            SERVICE_SCRIPT_SHA256,
            "coreos-installer-service must stay byte for byte the crate's (see its NOTICE)"
        );
    }

    #[test]
    fn library_paths_land_under_usr() {
        assert_eq!(
            usr_path(Path::new("/lib/x86_64-linux-gnu/libc.so.6")),
            "usr/lib/x86_64-linux-gnu/libc.so.6"
        );
        assert_eq!(
            usr_path(Path::new("/lib64/ld-linux-x86-64.so.2")),
            "usr/lib64/ld-linux-x86-64.so.2"
        );
        assert_eq!(
            usr_path(Path::new("/usr/lib/x86_64-linux-gnu/libz.so.1")),
            "usr/lib/x86_64-linux-gnu/libz.so.1"
        );
    }

    #[test]
    fn cpio_entries_are_aligned_and_terminated() {
        let mut c = Cpio::default();
        c.dir("bin");
        c.file("init", 0o100755, b"#!/bin/sh\n");
        let out = c.finish();
        assert_eq!(out.len() % 4, 0);
        assert!(out.starts_with(b"070701"));
        let trailer = out
            .windows(10)
            .position(|w| w == b"TRAILER!!!")
            .expect("trailer");
        assert!(trailer > 0);
        // The file's data follows its 4-aligned name.
        let init = out.windows(4).position(|w| w == b"init").expect("name");
        let data = out
            .windows(9)
            .position(|w| w == b"#!/bin/sh")
            .expect("data");
        assert_eq!(data % 4, 0);
        assert!(data > init);
    }
}
