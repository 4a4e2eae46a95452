//! Fetch RHCOS / FCOS images named by stream or legacy metadata into a verified cache.
//!
//! ```text
//! cargo run -p examples --example fetch-images -- \
//!     --stream https://builds.coreos.fedoraproject.org/streams/stable.json \
//!     --arch x86_64 --artifacts kernel,initramfs,rootfs,raw.xz --dest ./images --decompress
//! ```
//!
//! Prints one line per artifact (name, sizes, hashes, path) and exits non-zero if any failed.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use rhcos_images::{Cache, Fetcher, Kind, Location, Metadata, Options, Request, Source};

/// Fetch and verify RHCOS/FCOS artifacts into a content-addressed cache.
#[derive(Parser, Debug)]
#[command(name = "fetch-images")]
struct Args {
    /// Stream metadata (stream.json): URL, file:// URL or path.
    #[arg(
        long,
        conflicts_with = "legacy_meta",
        required_unless_present = "legacy_meta"
    )]
    stream: Option<String>,
    /// Legacy rhcos.json / meta.json (OpenShift 4.1-4.7): URL, file:// URL or path.
    #[arg(long)]
    legacy_meta: Option<String>,
    /// Architecture.
    #[arg(long, default_value = "x86_64")]
    arch: String,
    /// Comma-separated artifact kinds: kernel, initramfs, rootfs, raw.gz, 4k.raw.gz, raw.xz,
    /// 4k.raw.xz, qcow2.gz, qcow2.xz, iso.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "kernel,initramfs,rootfs,raw.gz"
    )]
    artifacts: Vec<String>,
    /// Cache directory: files land in <dest>/<sha256> with names in <dest>/by-name/.
    #[arg(long, default_value = "images")]
    dest: std::path::PathBuf,
    /// Store disk images decompressed (verifying the uncompressed sha256 as well).
    #[arg(long)]
    decompress: bool,
    /// Stream a single artifact straight into this file or block device instead of the cache
    /// (no temporary file: on failure the output holds unverified bytes and is reported).
    #[arg(long)]
    output: Option<std::path::PathBuf>,
    /// Read artifacts from a mirror (HTTP base URL or local directory) instead of upstream.
    #[arg(long)]
    mirror: Option<String>,
    /// Artifacts downloaded at the same time.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Retries per artifact.
    #[arg(long, default_value_t = 5)]
    retries: u32,
    /// Seconds without body data before an attempt counts as stalled.
    #[arg(long, default_value_t = 60)]
    stall_timeout: u64,
    /// Do not draw progress bars.
    #[arg(long)]
    quiet: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<bool> {
    let kinds = args
        .artifacts
        .iter()
        .map(|a| a.parse::<Kind>())
        .collect::<Result<Vec<_>, _>>()?;
    let options = Options {
        retries: args.retries,
        concurrency: args.concurrency,
        read_timeout: Duration::from_secs(args.stall_timeout),
        ..Options::default()
    };
    let bars = if args.quiet {
        examples::DownloadBars::hidden()
    } else {
        examples::DownloadBars::default()
    };
    let fetcher = Fetcher::new(options)?.with_progress(bars);

    let meta_arg = args
        .stream
        .as_deref()
        .or(args.legacy_meta.as_deref())
        .context("no metadata given")?;
    let meta = fetcher.metadata(&Location::parse(meta_arg)?).await?;
    match (&meta, args.legacy_meta.is_some()) {
        (Metadata::Stream(_), true) => bail!("{meta_arg} is stream metadata; use --stream"),
        (Metadata::Legacy(_), false) => bail!("{meta_arg} is legacy metadata; use --legacy-meta"),
        _ => {}
    }
    let source = match &args.mirror {
        Some(m) => Source::mirror(m)?,
        None => Source::Upstream,
    };
    let reqs = meta
        .select(&args.arch, &kinds)?
        .into_iter()
        .map(|a| Request::new(a, &source, args.decompress))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(path) = &args.output {
        return write_one(&fetcher, &reqs, path).await;
    }
    let cache = Cache::open(&args.dest)?;

    let started = Instant::now();
    let results = fetcher.fetch_all(&cache, &reqs).await;
    let elapsed = started.elapsed();

    let mut ok = true;
    // What arrived over the network, failed and restarted transfers included.
    let bytes = fetcher.received();
    for (req, result) in reqs.iter().zip(results) {
        match result {
            Ok(f) => {
                let d = &f.digests;
                let raw = match (&d.uncompressed_sha256, d.uncompressed_size) {
                    (Some(h), Some(n)) => format!(" uncompressed {n} bytes sha256 {h}"),
                    _ => String::new(),
                };
                println!(
                    "{name}: {size} bytes sha256 {sha}{raw} -> {path}{cached}",
                    name = f.name,
                    size = d.size,
                    sha = d.sha256,
                    path = f.path.display(),
                    cached = if f.from_cache { " (cached)" } else { "" },
                );
            }
            Err(e) => {
                ok = false;
                let mut msg = e.to_string();
                let mut src = std::error::Error::source(&e);
                while let Some(s) = src {
                    msg.push_str(&format!(": {s}"));
                    src = s.source();
                }
                eprintln!("{}: FAILED: {msg}", req.artifact.name);
            }
        }
    }
    report_rate(bytes, elapsed);
    Ok(ok)
}

fn report_rate(bytes: u64, elapsed: Duration) {
    let secs = elapsed.as_secs_f64();
    eprintln!(
        "downloaded {bytes} bytes in {secs:.2}s ({:.1} MB/s)",
        bytes as f64 / secs.max(1e-9) / 1e6
    );
}

/// `--output`: one artifact into one file or device, verified on the way.
async fn write_one(
    fetcher: &Fetcher,
    reqs: &[Request],
    path: &std::path::Path,
) -> anyhow::Result<bool> {
    let [req] = reqs else {
        bail!("--output takes exactly one artifact, got {}", reqs.len());
    };
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    let started = Instant::now();
    let sink = std::io::BufWriter::with_capacity(1 << 20, file);
    match fetcher.fetch_to(req, sink).await {
        Ok((_, d)) => {
            let raw = match (&d.uncompressed_sha256, d.uncompressed_size) {
                (Some(h), Some(n)) => format!(" uncompressed {n} bytes sha256 {h}"),
                _ => String::new(),
            };
            println!(
                "{}: {} bytes sha256 {}{raw} -> {}",
                req.output_name(),
                d.size,
                d.sha256,
                path.display()
            );
            report_rate(fetcher.received(), started.elapsed());
            Ok(true)
        }
        Err(e) => {
            eprintln!(
                "{}: FAILED: {e}; {} holds unverified data",
                req.artifact.name,
                path.display()
            );
            report_rate(fetcher.received(), started.elapsed());
            Ok(false)
        }
    }
}
