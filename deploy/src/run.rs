//! The deployment itself: servers up, every host powered on and followed to "installed".

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bmc_power::{Bmc, BootDevice, BootOverride, PowerAction};
use pxe_stack::{Event, EventKind, EventSink, Mac, PowerStep};
use tokio::sync::mpsc;

use crate::artifacts::Artifacts;
use crate::bmc::{open_bmc, power_outcome};
use crate::error::Error;
use crate::layout::Layout;
use crate::plan::Plan;
use crate::servers::{Servers, start_servers, start_servers_with_status};
use crate::status::Status;
use crate::timeline::Timeline;

/// Events from every server, forwarded to the deployment's loop without blocking.
#[derive(Debug, Clone)]
struct Hub(mpsc::UnboundedSender<Event>);

impl EventSink for Hub {
    fn emit(&self, event: Event) {
        let _ = self.0.send(event);
    }
}

/// The bootstrap VM (when the plan has one), then the servers.
async fn start(
    plan: &Plan,
    artifacts: &Artifacts,
    events: Arc<dyn EventSink>,
    status: Option<&Status>,
) -> Result<Servers, Error> {
    // The bootstrap VM first: the hosts' Ignition configs point at its Machine Config Server.
    // It is meant to outlive this call (and an interrupt); `remove_bootstrap` takes it down.
    #[cfg(feature = "libvirt")]
    if plan.bootstrap.is_some() {
        let p = plan.clone();
        let applied = tokio::task::spawn_blocking(move || crate::apply_bootstrap(&p))
            .await
            .map_err(|_| Error::Task {
                what: "bootstrap vm",
            })??;
        if let Some(a) = applied {
            tracing::info!(domain = %a.domain, network = %a.network, "bootstrap vm running");
        }
    }
    #[cfg(not(feature = "libvirt"))]
    if plan.bootstrap.is_some() {
        return Err(Error::MissingFeature {
            what: "[bootstrap]".into(),
            feature: "libvirt",
        });
    }
    match status {
        Some(s) => start_servers_with_status(plan, artifacts, events, s.clone()).await,
        None => start_servers(plan, artifacts, events).await,
    }
}

/// What [`run`] reports back.
#[derive(Debug)]
pub struct RunReport {
    /// Every host's timeline.
    pub timeline: Timeline,
    /// Whether every host installed.
    pub success: bool,
    /// Where the timeline was written as JSON ([`Timeline::to_json`], in the state
    /// directory), unless writing it failed.
    pub timeline_file: Option<std::path::PathBuf>,
}

/// Runs a deployment with already-fetched artifacts: applies the bootstrap VM (feature
/// `libvirt`), starts the servers, sets PXE boot and powers on every host through its BMC, and
/// follows each host until it reports installed, fails or runs out of time; installed hosts are
/// then set to boot from disk. `observe` sees the timeline after every change.
///
/// `shutdown` (Ctrl-C) ends it at any point: hosts that had not finished are marked
/// interrupted and powered off, so none keeps retrying against servers that are gone. The
/// servers always stop before this returns; the bootstrap VM is left running
/// ([`remove_bootstrap`](crate::remove_bootstrap) takes it down).
pub async fn run(
    plan: &Plan,
    artifacts: &Artifacts,
    observe: impl FnMut(&Timeline),
    shutdown: impl Future<Output = ()>,
) -> Result<RunReport, Error> {
    run_inner(plan, artifacts, None, observe, shutdown).await
}

/// [`run`] feeding a [`Status`] the embedder holds: it can count the artifact downloads
/// before ([`Status::progress`]) and read the final metrics after. The plan's `[status]`
/// decides whether the status page and `/metrics` are served while it runs.
pub async fn run_with_status(
    plan: &Plan,
    artifacts: &Artifacts,
    status: &Status,
    observe: impl FnMut(&Timeline),
    shutdown: impl Future<Output = ()>,
) -> Result<RunReport, Error> {
    run_inner(plan, artifacts, Some(status), observe, shutdown).await
}

async fn run_inner(
    plan: &Plan,
    artifacts: &Artifacts,
    given: Option<&Status>,
    mut observe: impl FnMut(&Timeline),
    shutdown: impl Future<Output = ()>,
) -> Result<RunReport, Error> {
    let layout = Layout::new(plan, artifacts);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let hub: Arc<dyn EventSink> = Arc::new(Hub(tx));
    let mut timeline: Timeline = layout.timeline(plan);
    let bmcs: Vec<(Mac, String, Box<dyn Bmc>)> = plan
        .hosts
        .iter()
        .map(|h| Ok(open_bmc(h)?.map(|b| (h.mac, h.name.clone(), b))))
        .collect::<Result<Vec<_>, Error>>()?
        .into_iter()
        .flatten()
        .collect();
    let mut shutdown = std::pin::pin!(shutdown);

    // Start-up can be interrupted too; nothing has been powered on before the servers run.
    let servers = tokio::select! {
        started = start(plan, artifacts, hub, given) => started?,
        () = &mut shutdown => {
            for h in &plan.hosts {
                timeline.fail(h.mac, "interrupted");
                if let Some(s) = given {
                    s.fail(h.mac, "interrupted");
                }
            }
            observe(&timeline);
            let timeline_file = export(&layout, &timeline);
            return Ok(RunReport { timeline, success: false, timeline_file });
        }
    };
    // BMC actions go where the servers' events go: the loop below, the status, the metrics.
    let hub = servers.events();
    let status = servers.status().cloned();
    let fail = |mac: Mac, why: &str| {
        if let Some(s) = &status {
            s.fail(mac, why);
        }
    };

    // Power every host on at once: boot from the network next, then on, each read back.
    let power_on = futures_util::future::join_all(bmcs.iter().map(|(mac, name, bmc)| {
        let hub = hub.clone();
        async move {
            let result = async {
                bmc.set_boot(BootOverride::once(BootDevice::Pxe)).await?;
                bmc.power(PowerAction::On).await
            }
            .await;
            hub.emit(power_event(*mac, PowerStep::On, &result));
            (*mac, name.clone(), result)
        }
    }));
    for (mac, name, result) in power_on.await {
        if let Err(e) = result {
            tracing::error!(host = %name, error = %e, "power on failed");
            timeline.fail(mac, format!("power on: {e}"));
            fail(mac, &format!("power on: {e}"));
        }
    }
    observe(&timeline);

    let deadline = Instant::now() + plan.timeouts.install();
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    let interrupted = loop {
        let all_done = timeline
            .hosts()
            .iter()
            .all(|h| h.installed() || h.failure.is_some());
        if all_done {
            break false;
        }
        if Instant::now() >= deadline {
            for h in plan.hosts.iter() {
                let done = timeline
                    .host(h.mac)
                    .is_some_and(|t| t.installed() || t.failure.is_some());
                if !done {
                    timeline.fail(h.mac, "timed out");
                    fail(h.mac, "timed out");
                }
            }
            break false;
        }
        tokio::select! {
            Some(event) = rx.recv() => {
                timeline.record(&event);
                observe(&timeline);
            }
            _ = ticker.tick() => observe(&timeline),
            _ = &mut shutdown => break true,
        }
    };
    if interrupted {
        for h in &plan.hosts {
            if !timeline.host(h.mac).is_some_and(|t| t.installed()) {
                timeline.fail(h.mac, "interrupted");
                fail(h.mac, "interrupted");
            }
        }
        // A host stopped mid-install would otherwise keep retrying against servers that are
        // gone: power it off.
        let unfinished = bmcs
            .iter()
            .filter(|(mac, _, _)| !timeline.host(*mac).is_some_and(|t| t.installed()));
        for (mac, name, bmc) in unfinished {
            let result = bmc.power(PowerAction::Off).await;
            if let Err(e) = &result {
                tracing::warn!(host = %name, error = %e, "could not power off");
            }
            hub.emit(power_event(*mac, PowerStep::Off, &result));
        }
    }
    // Installed hosts boot from disk from now on.
    for (mac, name, bmc) in &bmcs {
        if timeline.host(*mac).is_some_and(|t| t.installed()) {
            let disk = BootOverride {
                persistence: bmc_power::Persistence::Persistent,
                ..BootOverride::once(BootDevice::Disk)
            };
            let result = bmc.set_boot(disk).await;
            if let Err(e) = &result {
                tracing::warn!(host = %name, error = %e, "could not set boot from disk");
            }
            hub.emit(power_event(*mac, PowerStep::BootDisk, &result));
        }
    }
    servers.shutdown().await;
    while let Ok(event) = rx.try_recv() {
        timeline.record(&event);
    }
    observe(&timeline);
    let success = !interrupted
        && timeline
            .hosts()
            .iter()
            .all(|h| h.installed() && h.failure.is_none());
    let timeline_file = export(&layout, &timeline);
    Ok(RunReport {
        timeline,
        success,
        timeline_file,
    })
}

fn power_event<T>(mac: Mac, step: PowerStep, result: &Result<T, bmc_power::Error>) -> Event {
    let outcome = power_outcome(result);
    Event::now(Some(mac), None, EventKind::Power { step, outcome })
}

/// Writes the timeline as JSON into the state directory (temporary file, fsync, rename), so a
/// finished deployment leaves its record; a failure is logged, not fatal.
fn export(layout: &Layout, timeline: &Timeline) -> Option<std::path::PathBuf> {
    let path = layout.timeline_file();
    let write = || -> std::io::Result<()> {
        use std::io::Write as _;
        std::fs::create_dir_all(layout.state_dir())?;
        let tmp = path.with_extension("json.tmp");
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&serde_json::to_vec_pretty(&timeline.to_json())?)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)
    };
    match write() {
        Ok(()) => Some(path),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "could not write the timeline");
            None
        }
    }
}
