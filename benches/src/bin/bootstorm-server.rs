//! The server side of the boot storm: the real deployment's DHCP, TFTP and HTTP servers
//! (`rhcos_deploy::start_servers`) for N hosts, until SIGTERM or SIGINT.
//!
//! ```text
//! bootstorm-server --clients N --iface IF --address 10.99.0.1 --prefix 16 --dir WORK
//!                  [--kernel-mib 8] [--initrd-mib 32] [--ipxe-dir /usr/lib/ipxe] [--threads 2]
//!                  [--status 0|1]
//! ```
//!
//! Host i has MAC `02:bb` + i as 4 bytes big-endian (as benches/src/bin/bootstorm.rs sends),
//! a reserved address ([`host_addr`]), no BMC, and a fixed role (every 50th a master, the rest
//! workers). WORK receives the assets (small fake `bootstrap`/`master`/`worker.ign`), the HTTP
//! root with a kernel-sized and an initramfs-sized file, and the lease file. Prints
//! `bootstorm-server ready pid=PID` on stdout once every socket is bound; events are counted,
//! not kept, so memory reflects the servers alone. `--status 1` turns the plan's `[status]` on:
//! every event also feeds the status page and the Prometheus metrics (`/metrics` on the HTTP
//! server), to measure what they cost.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result, bail};
use pxe_stack::{Event, EventKind, EventSink, TransferStatus};

struct Args {
    clients: u32,
    iface: String,
    address: Ipv4Addr,
    prefix: u8,
    dir: PathBuf,
    kernel_mib: u64,
    initrd_mib: u64,
    ipxe_dir: PathBuf,
    threads: usize,
    status: bool,
}

fn args() -> Result<Args> {
    let mut a = Args {
        clients: 10,
        iface: "eth0".into(),
        address: Ipv4Addr::new(10, 99, 0, 1),
        prefix: 16,
        dir: std::env::temp_dir().join("bootstorm-server"),
        kernel_mib: 8,
        initrd_mib: 32,
        ipxe_dir: "/usr/lib/ipxe".into(),
        threads: 2,
        status: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--clients" => a.clients = value.parse()?,
            "--iface" => a.iface = value,
            "--address" => a.address = value.parse()?,
            "--prefix" => a.prefix = value.parse()?,
            "--dir" => a.dir = value.into(),
            "--kernel-mib" => a.kernel_mib = value.parse()?,
            "--initrd-mib" => a.initrd_mib = value.parse()?,
            "--ipxe-dir" => a.ipxe_dir = value.into(),
            "--threads" => a.threads = value.parse()?,
            "--status" => a.status = value == "1" || value == "on",
            other => bail!("unknown flag {other}"),
        }
    }
    Ok(a)
}

/// Client i's reserved address: the server's /16 from x.y.1.0 on, 250 hosts per /24 so no
/// address ends in .0 or .255 (run.sh adds the same list to the client's interface).
fn host_addr(server: Ipv4Addr, i: u32) -> Ipv4Addr {
    let [a, b, _, _] = server.octets();
    Ipv4Addr::new(a, b, (1 + i / 250) as u8, (1 + i % 250) as u8)
}

fn mac(i: u32) -> String {
    let b = i.to_be_bytes();
    format!("02:bb:{:02x}:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2], b[3])
}

/// A file of `mib` MiB of non-repeating bytes, written once.
fn sized_file(path: &Path, mib: u64) -> Result<()> {
    if std::fs::metadata(path).is_ok_and(|m| m.len() == mib << 20) {
        return Ok(());
    }
    let mut data = vec![0u8; 1 << 20];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    for _ in 0..mib {
        for chunk in data.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
        }
        std::io::Write::write_all(&mut out, &data)?;
    }
    Ok(())
}

fn plan_toml(a: &Args, assets: &Path, cache: &Path) -> String {
    let mut t = format!(
        "[cluster]\nname = \"storm\"\nbase_domain = \"bench.test\"\nassets = \"{}\"\n\n\
         [images]\nmirror = \"{}\"\ncache = \"{}\"\n\n\
         [provisioning]\ninterface = \"{}\"\naddress = \"{}\"\nprefix = {}\nipxe_dir = \"{}\"\n",
        assets.display(),
        cache.display(),
        cache.display(),
        a.iface,
        a.address,
        a.prefix,
        a.ipxe_dir.display(),
    );
    if a.status {
        t += "\n[status]\nenabled = true\n";
    }
    for i in 0..a.clients {
        let role = if i % 50 == 0 { "master" } else { "worker" };
        t += &format!(
            "\n[[hosts]]\nname = \"storm-{i}\"\nmac = \"{}\"\nrole = \"{role}\"\naddress = \"{}\"\n",
            mac(i),
            host_addr(a.address, i)
        );
    }
    t
}

/// Counts events by kind instead of keeping them, so a long storm does not grow the heap.
#[derive(Default)]
struct Counter {
    total: AtomicU64,
    failures: AtomicU64,
}

impl EventSink for Counter {
    fn emit(&self, event: Event) {
        self.total.fetch_add(1, Ordering::Relaxed);
        // A redirect or "not modified" is not a failure.
        if let EventKind::Transfer { status, .. } = &event.kind
            && !(status.is_success() || matches!(status, TransferStatus::Http(300..=399)))
        {
            self.failures.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn main() -> Result<()> {
    let a = args()?;
    let assets = a.dir.join("assets");
    let www = a.dir.join("www");
    let cache = a.dir.join("cache");
    for d in [&assets, &www, &cache] {
        std::fs::create_dir_all(d)?;
    }
    // A fresh lease file each run: leases from an earlier storm would be renewals, not DORAs.
    let _ = std::fs::remove_dir_all(cache.join("state"));
    for role in ["bootstrap", "master", "worker"] {
        std::fs::write(
            assets.join(format!("{role}.ign")),
            format!(
                r#"{{"ignition":{{"version":"3.2.0"}},"storage":{{"files":[{{"path":"/etc/bench-role","contents":{{"source":"data:,{role}"}},"mode":420}}]}}}}"#
            ),
        )?;
    }
    sized_file(&www.join("kernel"), a.kernel_mib)?;
    sized_file(&www.join("initramfs.img"), a.initrd_mib)?;
    sized_file(&www.join("metal.raw.gz"), 1)?;
    sized_file(&www.join("rootfs.img"), 1)?;

    let plan = rhcos_deploy::Plan::parse(&plan_toml(&a, &assets, &cache), "<bootstorm>")?;
    let artifacts = rhcos_deploy::Artifacts {
        root: www,
        kernel: "/kernel".into(),
        initramfs: "/initramfs.img".into(),
        rootfs: Some("/rootfs.img".into()),
        image: Some("/metal.raw.gz".into()),
        image_4k: None,
        boot_chain: None,
        generation: rhcos_deploy::Generation::Live,
    };
    let events = Arc::new(Counter::default());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(a.threads)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let servers = rhcos_deploy::start_servers(&plan, &artifacts, events.clone()).await?;
        println!(
            "bootstorm-server ready pid={} hosts={} base={}",
            std::process::id(),
            a.clients,
            servers.base_url
        );
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        servers.shutdown().await;
        eprintln!(
            "bootstorm-server: {} events, {} failed transfers",
            events.total.load(Ordering::Relaxed),
            events.failures.load(Ordering::Relaxed)
        );
        Ok(())
    })
}
