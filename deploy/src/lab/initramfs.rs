//! The lab's fake RHCOS installer: Debian's kernel plus a busybox initramfs built here.

use std::io::Write;
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::GzEncoder;

use super::Error;
use super::sys::run;

/// The installer's /init: parses `coreos.inst.*`, installs, reports, powers off.
pub const INIT_SCRIPT: &str = include_str!("init.sh");
const UDHCPC_SCRIPT: &str = include_str!("udhcpc.script");

/// Kernel modules the installer loads (their dependencies are resolved with modprobe).
/// Debian builds virtio, e1000 and the ATA drivers as modules.
pub(crate) const MODULES: &[&str] = &[
    "virtio_net",
    "virtio_pci",
    "virtio_blk",
    "e1000",
    "ata_piix",
    "sd_mod",
];

/// The kernel and initramfs of the fake installer, as files.
#[derive(Debug, Clone)]
pub struct Installer {
    /// The kernel image (Debian's vmlinuz).
    pub kernel: PathBuf,
    /// The gzip'd newc initramfs.
    pub initramfs: PathBuf,
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

/// Builds the installer into `dir` (kernel copied as `vmlinuz`, initramfs as `initrd.img`).
pub(crate) fn build(dir: &Path) -> Result<Installer, Error> {
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
    for d in [
        "bin",
        "dev",
        "etc",
        "proc",
        "sys",
        "tmp",
        "run",
        "lib",
        "lib/modules",
    ] {
        cpio.dir(d);
    }
    cpio.node("dev/console", 0o020600, (5, 1));
    cpio.node("dev/null", 0o020666, (1, 3));
    cpio.file("bin/busybox", 0o100755, &read(busybox)?);
    cpio.file("init", 0o100755, INIT_SCRIPT.as_bytes());
    cpio.file("etc/udhcpc.script", 0o100755, UDHCPC_SCRIPT.as_bytes());
    let mut order = String::new();
    for ko in &modules {
        let name = ko
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        cpio.file(&format!("lib/modules/{name}.ko"), 0o100644, &read(ko)?);
        order.push_str(&name);
        order.push('\n');
    }
    cpio.file("etc/modules.order", 0o100644, order.as_bytes());

    let initramfs = dir.join("initrd.img");
    let mut gz = GzEncoder::new(Vec::new(), Compression::new(6));
    gz.write_all(&cpio.finish())
        .and_then(|_| gz.finish())
        .and_then(|bytes| std::fs::write(&initramfs, bytes))
        .map_err(|source| Error::Io {
            path: initramfs.clone(),
            source,
        })?;
    Ok(Installer { kernel, initramfs })
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
}

impl Cpio {
    fn dir(&mut self, name: &str) {
        self.entry(name, 0o040755, 2, (0, 0), &[]);
    }

    fn node(&mut self, name: &str, mode: u32, rdev: (u32, u32)) {
        self.entry(name, mode, 1, rdev, &[]);
    }

    fn file(&mut self, name: &str, mode: u32, data: &[u8]) {
        self.entry(name, mode, 1, (0, 0), data);
    }

    fn entry(&mut self, name: &str, mode: u32, nlink: u32, rdev: (u32, u32), data: &[u8]) {
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
