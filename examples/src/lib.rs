//! Shared helpers for the example binaries (argument parsing and terminal output only).

use std::collections::HashMap;
use std::sync::Mutex;

use std::time::Instant;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use rhcos_deploy::{Phase, Timeline};
use rhcos_images::{Progress, ProgressEvent};

/// Prints a line whenever a host reaches a new phase or fails: the live view of a deployment.
pub fn phase_printer(start: Instant) -> impl FnMut(&Timeline) {
    let mut seen: HashMap<String, (Option<Phase>, bool)> = HashMap::new();
    move |t: &Timeline| {
        for h in t.hosts() {
            let now = (h.last_phase(), h.failure.is_some());
            if seen.get(&h.name) == Some(&now) {
                continue;
            }
            seen.insert(h.name.clone(), now);
            let what = match (&h.failure, h.last_phase()) {
                (Some(why), _) => format!("failed: {why}"),
                (None, Some(p)) => p.label().to_owned(),
                (None, None) => continue,
            };
            println!(
                "[{:>7.1}s] {:<12} {} {}",
                start.elapsed().as_secs_f64(),
                h.name,
                h.mac,
                what
            );
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM; never, if no handler can be installed.
pub async fn interrupted() {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// Renders image download progress as one indicatif bar per artifact.
#[derive(Debug, Default)]
pub struct DownloadBars {
    multi: MultiProgress,
    bars: Mutex<HashMap<String, ProgressBar>>,
}

impl DownloadBars {
    /// Bars that draw nothing (`--quiet`); retries and restarts are not printed either.
    pub fn hidden() -> Self {
        DownloadBars {
            multi: MultiProgress::with_draw_target(indicatif::ProgressDrawTarget::hidden()),
            bars: Mutex::default(),
        }
    }

    fn bar(&self, name: &str) -> ProgressBar {
        let mut bars = self.bars.lock().unwrap_or_else(|p| p.into_inner());
        bars.entry(name.to_owned())
            .or_insert_with(|| {
                let style = ProgressStyle::with_template(
                    "{msg:40!} {bar:30} {bytes:>10}/{total_bytes:<10} {bytes_per_sec:>12} {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar());
                let pb = self.multi.add(ProgressBar::new(0).with_style(style));
                pb.set_message(name.to_owned());
                pb
            })
            .clone()
    }
}

impl Progress for DownloadBars {
    fn event(&self, event: &ProgressEvent<'_>) {
        match event {
            ProgressEvent::Started { name, total } => {
                let pb = self.bar(name);
                pb.set_length(total.unwrap_or(0));
                pb.set_position(0);
            }
            ProgressEvent::Advanced { name, done, total } => {
                let pb = self.bar(name);
                if let Some(t) = total {
                    pb.set_length(*t);
                }
                pb.set_position(*done);
            }
            ProgressEvent::Retrying {
                name,
                attempt,
                error,
            } => {
                let _ = self
                    .multi
                    .println(format!("{name}: attempt {attempt} after: {error}"));
            }
            ProgressEvent::Restarted { name, reason } => {
                let _ = self
                    .multi
                    .println(format!("{name}: restarting from zero: {reason}"));
            }
            ProgressEvent::Cached { name } => {
                self.bar(name)
                    .finish_with_message(format!("{name} (cached)"));
            }
            ProgressEvent::Finished { name } => self.bar(name).finish(),
            _ => {}
        }
    }
}

/// Writes `text` to stdout; a reader that went away (`| head`) ends the output quietly instead
/// of a panic.
pub fn print_quietly(text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}
