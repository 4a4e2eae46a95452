//! The lab: throwaway VMs PXE-booted and installed through rhcos-metal's own stack.
//!
//! `cargo run --release --example lab` (as root) installs the Debian packages it needs, builds
//! coreos-installer once (cached), builds two network namespaces (the hosts' provisioning
//! segment and the provisioning server's side) with QEMU VMs behind ipmi_sim BMCs (one BIOS with a fixed role, one UEFI with a 4Kn disk that is introspected), deploys
//! them with the same code as a real deployment, where the real coreos-installer writes every
//! disk, checks every disk from the host, prints the timeline and removes everything again,
//! also on failure or Ctrl-C. `--secure-boot` runs one UEFI VM with Secure Boot enforced
//! instead, installed through shim → GRUB → the signed kernel. `--ipv6` runs one UEFI VM on an
//! IPv6-only network (OVMF's PXE over IPv6, DHCPv6, TFTP and HTTP on IPv6, the installer on
//! `dhclient -6`; no IPv4 address in the hosts' namespace, the status page on the server's
//! management side); `--dual-stack` the `--vms` hosts
//! on a dual-stack network.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Parser;
use rhcos_deploy::lab::{Accel, Firmware, Lab, LabConfig, LabHost, VmSpec};

#[derive(Parser)]
#[command(about = "PXE-boot throwaway VMs through rhcos-metal and check their disks")]
struct Args {
    /// Number of VMs; they alternate BIOS (fixed role) and UEFI (introspected).
    #[arg(long, default_value_t = 2)]
    vms: u8,
    /// Size of the generated metal images in MiB (at least 40).
    #[arg(long, default_value_t = rhcos_deploy::lab::MIN_IMAGE_MIB)]
    image_mib: u32,
    /// Keep the lab's files (disks, serial logs) after the run.
    #[arg(long)]
    keep: bool,
    /// Use KVM instead of TCG (iPXE fails under nested KVM).
    #[arg(long)]
    kvm: bool,
    /// BIOS VMs chainload undionly.kpxe over TFTP first, as with a non-iPXE PXE ROM.
    #[arg(long)]
    undionly: bool,
    /// The status page's port, on a private link from this machine into the lab (0: none).
    #[arg(long, default_value_t = 9100)]
    status_port: u16,
    /// Secure Boot: one UEFI VM with OVMF's Secure Boot firmware and Microsoft's keys, booted
    /// through Debian's signed shim, signed network GRUB and signed kernel (`--vms` ignored).
    #[arg(long)]
    secure_boot: bool,
    /// IPv6 only: one UEFI VM, no IPv4 address in the hosts' namespace (`--vms` ignored).
    #[arg(long, conflicts_with_all = ["secure_boot", "dual_stack"])]
    ipv6: bool,
    /// With `--ipv6`: the VM's firmware uses UEFI HTTP boot (over IPv6) instead of PXE.
    #[arg(long, requires = "ipv6")]
    http_boot: bool,
    /// Dual-stack: DHCPv4 and DHCPv6 for every host, UEFI hosts booting over IPv6.
    #[arg(long, conflicts_with = "secure_boot")]
    dual_stack: bool,
    /// Where the lab's files go.
    #[arg(long, default_value = "/var/tmp/rhcos-metal-lab")]
    work_dir: PathBuf,
}

fn config(args: &Args) -> LabConfig {
    if args.secure_boot {
        let mut config = LabConfig::secure_boot(args.work_dir.clone());
        config.image_mib = args.image_mib;
        config.keep_files = args.keep;
        config.status_port = (args.status_port != 0).then_some(args.status_port);
        return config;
    }
    if args.ipv6 {
        let mut config = if args.http_boot {
            LabConfig::ipv6_only_http_boot(args.work_dir.clone())
        } else {
            LabConfig::ipv6_only(args.work_dir.clone())
        };
        config.image_mib = args.image_mib;
        config.keep_files = args.keep;
        config.status_port = (args.status_port != 0).then_some(args.status_port);
        config.accel = if args.kvm { Accel::Kvm } else { Accel::Tcg };
        return config;
    }
    let mut config = LabConfig::two_hosts(args.work_dir.clone());
    if args.dual_stack {
        config.family = rhcos_deploy::NetworkFamily::DualStack;
    }
    let template = config.hosts.clone();
    config.hosts = (0..args.vms)
        .map(|i| {
            let mut host: LabHost = template[usize::from(i % 2)].clone();
            host.vm = VmSpec {
                name: format!("node{i}"),
                mac: pxe_stack::Mac([0x52, 0x54, 0x00, 0x7e, 0x60, i + 1]),
                ..host.vm
            };
            if host.vm.firmware == Firmware::Bios {
                host.role = Some(if i == 0 { "master" } else { "worker" }.into());
            }
            host
        })
        .collect();
    config.image_mib = args.image_mib;
    config.keep_files = args.keep;
    config.status_port = (args.status_port != 0).then_some(args.status_port);
    config.accel = if args.kvm { Accel::Kvm } else { Accel::Tcg };
    if args.undionly {
        config.chain = rhcos_deploy::ChainMode::Stateful;
    }
    config
}

/// Installs the system packages through the project's script (idempotent: about a second when
/// everything is there).
fn ensure_packages() -> Result<()> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/install-deps.sh");
    let status = std::process::Command::new("bash")
        .arg(script)
        .status()
        .context("running scripts/install-deps.sh")?;
    anyhow::ensure!(status.success(), "scripts/install-deps.sh failed");
    Ok(())
}

fn main() -> Result<ExitCode> {
    let args = Args::parse();
    ensure_packages()?;
    let config = config(&args);
    println!(
        "building the lab: {} VM(s), {} MiB image, namespaces {}-hosts and {}-server",
        config.hosts.len(),
        config.image_mib,
        config.netns,
        config.netns
    );
    // Ctrl-C or SIGTERM while the lab is being built waits for the build, then removes it.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let lab = runtime.block_on(async {
        let build = tokio::task::spawn_blocking(move || Lab::build(&config));
        tokio::pin!(build);
        tokio::select! {
            built = &mut build => Ok(Some(built??)),
            () = examples::interrupted() => {
                println!("interrupted: removing the lab");
                drop(build.await??);
                Ok::<_, anyhow::Error>(None)
            }
        }
    })?;
    let Some(lab) = lab else {
        return Ok(ExitCode::FAILURE);
    };
    if let Some(url) = lab.status_url() {
        println!("status page: {url} (metrics: {url}metrics)");
    }
    let start = Instant::now();
    let report = lab.deploy(examples::phase_printer(start), async {
        examples::interrupted().await;
        println!("interrupted: stopping and removing the lab");
    })?;
    println!("\n{}", report.summary.timeline.render_table());
    if let Some(file) = &report.summary.timeline_file {
        println!("timeline: {}", file.display());
    }
    for d in &report.disks {
        let installer = d.installer.as_deref().unwrap_or("no installer seen");
        match &d.result {
            Ok(()) => println!(
                "disk {:<8} ok: {installer} wrote {} (verified outside /boot), {} Ignition config \
                 in /boot/ignition/config.ign passes ignition-validate",
                d.name,
                d.image,
                d.role.as_deref().unwrap_or("-")
            ),
            Err(e) => println!("disk {:<8} FAILED ({installer}): {e}", d.name),
        }
        for line in &d.evidence {
            println!("    console: {line}");
        }
        for line in &d.dns {
            println!("    resolved through the cluster DNS: {line}");
        }
        if let Some(kargs) = &d.kernel_args {
            println!("    first-boot kernel arguments: {kargs}");
        }
    }
    let ok = report.success();
    let passed = report.disks.iter().filter(|d| d.result.is_ok()).count();
    println!("{passed} passed, {} failed", report.disks.len() - passed);
    drop(lab);
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
