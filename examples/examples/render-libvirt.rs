//! Renders a cluster's libvirt network and bootstrap VM, and optionally applies them.
//!
//! ```text
//! cargo run -p examples --example render-libvirt -- --name ocp4 --base-domain example.com \
//!     --masters 3 --workers 2 --image /var/lib/libvirt/images/rhcos.qcow2 \
//!     --ignition /var/lib/libvirt/images/bootstrap.ign --out-dir /tmp/ocp4
//! cargo run -p examples --features libvirt --example render-libvirt -- ... --define qemu:///system --start
//! ```

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, ValueEnum};
use libvirt_templates::{Bootp, ClusterSpec, DiskFormat, DomainType, IgnitionVia};

#[derive(Parser)]
#[command(about = "Render (and optionally define) a cluster's libvirt network and bootstrap VM")]
struct Args {
    /// Cluster name (a DNS label).
    #[arg(long, default_value = "ocp4")]
    name: String,
    /// Base DNS domain.
    #[arg(long, default_value = "example.com")]
    base_domain: String,
    /// Number of masters.
    #[arg(long, default_value_t = 3)]
    masters: usize,
    /// Number of workers.
    #[arg(long, default_value_t = 0)]
    workers: usize,
    /// Leading MAC octets; node MACs append their offset in the subnet.
    #[arg(long, default_value = "52:54:00:7e")]
    mac_prefix: String,
    /// Host address of the network (the guests' gateway).
    #[arg(long, default_value = "192.168.126.1")]
    address: std::net::Ipv4Addr,
    /// Prefix length of the network.
    #[arg(long, default_value_t = 24)]
    prefix: u8,
    /// Bootstrap disk image (absolute path on the libvirt host).
    #[arg(long)]
    image: String,
    /// Image format.
    #[arg(long, value_enum, default_value_t = Format::Qcow2)]
    image_format: Format,
    /// Bootstrap Ignition config (absolute path on the libvirt host).
    #[arg(long)]
    ignition: Option<String>,
    /// Pass Ignition with libvirt's <sysinfo type='fwcfg'> instead of <qemu:commandline>.
    #[arg(long)]
    fwcfg: bool,
    /// Add etcd SRV records (OpenShift before 4.4).
    #[arg(long)]
    etcd_srv: bool,
    /// DHCP boot file handed out by the network.
    #[arg(long)]
    bootp_file: Option<String>,
    /// Use QEMU's software emulation (TCG) instead of KVM.
    #[arg(long)]
    tcg: bool,
    /// Bootstrap memory in MiB.
    #[arg(long, default_value_t = 16384)]
    memory_mib: u64,
    /// Bootstrap vCPUs.
    #[arg(long, default_value_t = 4)]
    vcpus: u32,
    /// Where network.xml and bootstrap.xml go.
    #[arg(long, default_value = ".")]
    out_dir: PathBuf,
    /// Define both documents through libvirt at this URI (needs `--features libvirt`).
    #[arg(long, value_name = "URI")]
    define: Option<String>,
    /// With --define: also start the network and the VM.
    #[arg(long)]
    start: bool,
    /// With --define: replace a running bootstrap VM (hard power-off, redefine, start).
    #[arg(long)]
    replace_running: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Qcow2,
    Raw,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut spec =
        ClusterSpec::new(&args.name, &args.base_domain).with_counts(args.masters, args.workers);
    spec.mac_prefix = args.mac_prefix.clone();
    spec.address = args.address;
    spec.prefix = args.prefix;
    spec.etcd_srv = args.etcd_srv;
    spec.bootp = args
        .bootp_file
        .clone()
        .map(|file| Bootp { file, server: None });
    spec.vm.image = args.image.clone();
    spec.vm.image_format = match args.image_format {
        Format::Qcow2 => DiskFormat::Qcow2,
        Format::Raw => DiskFormat::Raw,
    };
    spec.vm.ignition = args.ignition.clone();
    spec.vm.ignition_via = if args.fwcfg {
        IgnitionVia::Fwcfg
    } else {
        IgnitionVia::QemuCommandline
    };
    spec.vm.kind = if args.tcg {
        DomainType::Qemu
    } else {
        DomainType::Kvm
    };
    spec.vm.memory_mib = args.memory_mib;
    spec.vm.vcpus = args.vcpus;
    let cluster = spec.build().context("invalid cluster description")?;

    std::fs::create_dir_all(&args.out_dir)
        .with_context(|| format!("creating {}", args.out_dir.display()))?;
    for (file, xml) in [
        ("network.xml", cluster.network.to_xml()?),
        ("bootstrap.xml", cluster.bootstrap.to_xml()?),
    ] {
        let path = args.out_dir.join(file);
        std::fs::write(&path, xml).with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    for host in &cluster.hosts {
        println!(
            "{:<12} {} {:<15} {}",
            host.name, host.mac, host.ip, host.fqdn
        );
    }

    if let Some(uri) = &args.define {
        define(uri, &cluster, &args)?;
    }
    Ok(())
}

#[cfg(feature = "libvirt")]
fn define(uri: &str, cluster: &libvirt_templates::Cluster, args: &Args) -> anyhow::Result<()> {
    let lv = libvirt_templates::Libvirt::open(uri)?;
    let (net, dom) = lv.apply(cluster, args.start, args.replace_running)?;
    println!(
        "network {}: {net:?}; domain {}: {dom:?}{}",
        cluster.network.name,
        cluster.bootstrap.name,
        if args.start { "; started" } else { "" }
    );
    Ok(())
}

#[cfg(not(feature = "libvirt"))]
fn define(_uri: &str, _cluster: &libvirt_templates::Cluster, _args: &Args) -> anyhow::Result<()> {
    anyhow::bail!("--define needs the example built with `--features libvirt`")
}
