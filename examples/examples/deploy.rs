//! Deploys RHCOS on bare metal from a plan file.
//!
//! `cargo run --release --example deploy -- --plan deploy.toml` fetches and verifies the
//! images, brings up the bootstrap VM (with `--features libvirt`), serves DHCP, TFTP and HTTP on
//! the provisioning network, powers every host on through its BMC and follows each one to
//! "installed", then prints the timeline. It exits non-zero if any host failed, timed out or
//! was interrupted (Ctrl-C). `--dry-run` only shows what it would do. `examples/deploy.toml.example`
//! is a documented plan.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Parser;
use examples::DownloadBars;
use rhcos_deploy::Plan;

#[derive(Parser)]
#[command(about = "Deploy RHCOS on bare metal from a plan file")]
struct Args {
    /// The deployment plan (TOML; see examples/deploy.toml.example).
    #[arg(long)]
    plan: PathBuf,
    /// Check the plan, read the image metadata, and print what would be done: every artifact
    /// (name, size, sha256, signature), the libvirt XML and every host's iPXE script, without
    /// fetching an image, binding or powering anything.
    #[arg(long)]
    dry_run: bool,
    /// Stop and remove the bootstrap VM and its network (once the cluster has bootstrapped),
    /// then exit.
    #[arg(long, conflicts_with = "dry_run")]
    remove_bootstrap: bool,
    /// Do not serve the status page and metrics (on by default here, on the plan's
    /// `[status] bind` or the provisioning HTTP server).
    #[arg(long)]
    no_status: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    match deploy(Args::parse()).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn deploy(args: Args) -> Result<bool> {
    // Plan errors carry the file, the line and column of syntax errors and the key path:
    // "deploy.toml: at `hosts[1].mac`: ...", "deploy.toml:12:9: at `provisioning.address`: ...".
    // Removing the bootstrap VM needs no Ignition assets; everything else does.
    let mut plan = if args.remove_bootstrap {
        Plan::load(&args.plan)?
    } else {
        Plan::load_checked(&args.plan)?
    };
    plan.status.enabled |= !args.no_status;
    if args.dry_run {
        dry_run(&plan).await?;
        return Ok(true);
    }
    if args.remove_bootstrap {
        return remove_bootstrap(&plan).await;
    }

    let start = Instant::now();
    println!("fetching images into {}", plan.images.cache.display());
    // The status counts the downloads, so it knows the artifacts before they are fetched.
    let chosen = rhcos_deploy::select_artifacts(&plan)
        .await?
        .served(plan.images.cache.clone());
    let status = rhcos_deploy::Status::new(&plan, &chosen);
    let artifacts = tokio::select! {
        fetched = rhcos_deploy::fetch_artifacts(&plan, status.progress(DownloadBars::default())) => {
            fetched.inspect_err(|e| status.fetch_failed(e))?
        }
        () = examples::interrupted() => {
            // The cache only ever holds verified files under their final names.
            println!("interrupted while fetching images");
            return Ok(false);
        }
    };
    println!(
        "serving {} host(s) on {} ({}); Ctrl-C stops",
        plan.hosts.len(),
        plan.provisioning.interface,
        rhcos_deploy::Layout::new(&plan, &artifacts).base_url(),
    );
    if plan.status.enabled {
        let layout = rhcos_deploy::Layout::new(&plan, &artifacts);
        println!("status page: {}", layout.status_url(&plan));
    }
    let printer = examples::phase_printer(start);
    let outcome = rhcos_deploy::run_with_status(&plan, &artifacts, &status, printer, async {
        examples::interrupted().await;
        println!("interrupted: stopping the servers");
    })
    .await?;
    println!("\n{}", outcome.timeline.render_table());
    if let Some(file) = &outcome.timeline_file {
        println!("timeline: {}", file.display());
    }
    Ok(outcome.success)
}

#[cfg(feature = "libvirt")]
async fn remove_bootstrap(plan: &Plan) -> Result<bool> {
    let p = plan.clone();
    let removed = tokio::task::spawn_blocking(move || rhcos_deploy::remove_bootstrap(&p))
        .await?
        .context("bootstrap vm")?;
    println!(
        "{}",
        if removed {
            "removed the bootstrap vm and its network"
        } else {
            "no bootstrap vm or network to remove"
        }
    );
    Ok(true)
}

#[cfg(not(feature = "libvirt"))]
async fn remove_bootstrap(_: &Plan) -> Result<bool> {
    anyhow::bail!("this build has no libvirt support: build with `--features libvirt`")
}

/// Prints what a deployment would do, without doing any of it.
async fn dry_run(plan: &Plan) -> Result<()> {
    // Everything is written at the end, once, so `--dry-run | head` ends quietly.
    let mut out = String::new();
    macro_rules! println {
        () => { out.push('\n') };
        ($($t:tt)*) => {{ let _ = writeln!(out, $($t)*); }};
    }
    macro_rules! print {
        ($($t:tt)*) => {{ let _ = write!(out, $($t)*); }};
    }
    let c = &plan.cluster;
    let p = &plan.provisioning;
    println!("cluster {}.{}", c.name, c.base_domain);
    println!("  ignition assets  {}", c.assets.display());
    println!("images ({})", plan.images.arch);
    if let Some(stream) = &plan.images.stream {
        println!("  stream           {stream}");
    }
    if let Some(mirror) = &plan.images.mirror {
        println!("  mirror           {}", mirror.display());
    }
    println!("  verified into    {}", plan.images.cache.display());
    let signatures = if plan.images.unsigned {
        "none: the images are unsigned (coreos.inst.insecure)".to_owned()
    } else if let Some(keyring) = &plan.images.keyring {
        format!("keys in {} (coreos.inst.insecure)", keyring.display())
    } else {
        "Fedora and Red Hat release keys".to_owned()
    };
    println!("  signatures       {signatures}");
    // Only the metadata is read: artifacts are served under the sha256 it names.
    let selection = rhcos_deploy::select_artifacts(plan)
        .await
        .context("reading the image metadata")?;
    println!(
        "  metadata         {} ({} {})",
        selection.metadata, selection.set.era, selection.set.release
    );
    let base = match (p.address, &p.ipv6) {
        (Some(v4), _) => format!("http://{v4}:{}", p.http_port),
        (None, Some(v6)) => format!("http://[{}]:{}", v6.address, p.http_port),
        (None, None) => format!("http://?:{}", p.http_port),
    };
    for a in selection.artifacts() {
        let size = a
            .size
            .map_or("size unknown".to_owned(), |s| format!("{s} bytes"));
        println!("  {:<40} {size}", a.name);
        println!("      sha256     {}", a.sha256);
        println!("      from       {}", a.location);
        println!("      served at  {base}/{}", a.sha256);
        if !plan.images.unsigned {
            println!("      signature  {}", a.signature_url());
        }
    }
    println!("provisioning on {} ({})", p.interface, p.family.name());
    if let Some(address) = p.address {
        println!("  ipv4             {address}/{}", p.prefix);
        let pool = p
            .dhcp_range
            .map_or("reservations only".to_owned(), |(a, b)| {
                format!("pool {a}..{b}")
            });
        let chain = match p.chain {
            rhcos_deploy::ChainMode::Trust => "iPXE clients get the script URL at once",
            rhcos_deploy::ChainMode::Stateful => "BIOS clients chainload undionly.kpxe first",
        };
        println!("  dhcp             :67 on {}, {pool}; {chain}", p.interface);
        println!(
            "  tftp             {address}:69 (iPXE binaries from {})",
            p.ipxe_dir.display()
        );
        println!("  http             http://{address}:{}", p.http_port);
        if let Some(prefix) = p.ipv6_ra_prefix {
            println!("  router adverts   {prefix}/64");
        }
    }
    if let Some(v6) = &p.ipv6 {
        println!("  ipv6             {}/{}", v6.address, v6.prefix);
        let pool = v6
            .dhcp_range
            .map_or("reservations only".to_owned(), |(a, b)| {
                format!("pool {a}..{b}")
            });
        println!("  dhcpv6           :547 on {}, {pool}", p.interface);
        println!(
            "  router adverts   {}/{} managed, other",
            v6.network(),
            v6.prefix
        );
        println!("  tftp             [{}]:69", v6.address);
        println!("  http             http://[{}]:{}", v6.address, p.http_port);
    }
    println!("hosts (install limit {}s)", plan.timeouts.install_secs);
    for h in &plan.hosts {
        let role = h.role.asset().unwrap_or("introspect");
        let address = match (h.address, h.ipv6) {
            (Some(a), Some(b)) => format!("{a} {b}"),
            (Some(a), None) => a.to_string(),
            (None, Some(b)) => b.to_string(),
            (None, None) => "pool".to_owned(),
        };
        let bmc = h
            .bmc
            .as_ref()
            .map_or("no bmc: power on by hand".to_owned(), |b| {
                format!("{} {}", b.driver.name(), b.address)
            });
        println!(
            "  {:<12} {} {:<10} {:<15} {:<12} {bmc}",
            h.name, h.mac, role, address, h.install_dev
        );
    }

    match rhcos_deploy::bootstrap_cluster(plan)? {
        Some(cluster) => {
            let b = plan.bootstrap.as_ref().context("bootstrap")?;
            println!(
                "bootstrap vm {} on network {} through {}",
                cluster.bootstrap.name, cluster.network.name, b.libvirt_uri
            );
            if let Some(ignition) = rhcos_deploy::bootstrap_ignition(plan) {
                println!("  ignition         {} (fw_cfg)", ignition.display());
            }
            println!("\n--- network {} ---", cluster.network.name);
            println!("{}", cluster.network.to_xml()?);
            println!("\n--- domain {} ---", cluster.bootstrap.name);
            println!("{}", cluster.bootstrap.to_xml()?);
        }
        None => println!("no bootstrap vm"),
    }

    let artifacts = selection.served(plan.images.cache.clone());
    let layout = rhcos_deploy::Layout::new(plan, &artifacts);
    let scripts = rhcos_deploy::ipxe_scripts(plan, &layout)?;
    for h in &plan.hosts {
        if let Some(script) = scripts.get(&h.mac) {
            println!("\n--- {base}/ipxe?mac={} ({}) ---", h.mac.hexhyp(), h.name);
            print!("{}", String::from_utf8_lossy(script));
        }
    }
    examples::print_quietly(&out)
}
