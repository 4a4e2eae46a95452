//! The deployment as an operator sees it: one row per host (phase, time in each phase, last
//! event, errors, BMC state) and Prometheus metrics, both folded from the servers' events.
//!
//! [`Status`] is an [`EventSink`]: the servers' component for it (`servers/status.rs`) feeds it
//! every event and serves it as `/status`, `/status/<mac>`, `/status.html` and `/metrics`. It
//! never holds a secret: no BMC password reaches an event, Ignition events carry only the role,
//! and transfer paths are shown without their query (which may hold a per-host token).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use pxe_stack::{
    DhcpStep, Event, EventKind, EventSink, InstallStage, Mac, PowerOutcome, PowerStep, Protocol,
    TransferStatus,
};
use serde::Serialize;

use crate::artifacts::Artifacts;
use crate::layout::Layout;
use crate::plan::Plan;
use crate::timeline::{HostTimeline, Phase, Timeline};

/// The errors kept per host on the status page (the oldest are dropped).
const MAX_ERRORS: usize = 5;
/// Installer report details are cut to this many characters.
const MAX_DETAIL: usize = 200;

/// The live status of a deployment and its metrics. Cheap to clone (shared).
///
/// ```
/// # use rhcos_deploy::{Artifacts, Plan, Status};
/// # use pxe_stack::{Event, EventKind, EventSink, InstallStage, Mac};
/// # let plan = Plan::parse(r#"
/// #     [cluster]
/// #     name = "ocp"
/// #     base_domain = "example.com"
/// #     assets = "/srv/ocp"
/// #     [images]
/// #     stream = "stream.json"
/// #     [provisioning]
/// #     interface = "eno2"
/// #     address = "172.22.0.1"
/// #     [[hosts]]
/// #     name = "master-0"
/// #     mac = "52:54:00:12:60:01"
/// #     role = "master"
/// # "#, "plan.toml")?;
/// # let artifacts = Artifacts {
/// #     root: "/var/cache/rhcos-metal".into(),
/// #     generation: rhcos_deploy::Generation::Live, kernel: "/aa".into(),
/// #     initramfs: "/bb".into(), rootfs: None, image: Some("/cc".into()), image_4k: None, boot_chain: None,
/// # };
/// let status = Status::new(&plan, &artifacts);
/// let mac: Mac = "52:54:00:12:60:01".parse()?;
/// status.emit(Event::now(Some(mac), None, EventKind::Report {
///     stage: InstallStage::Installed,
///     detail: String::new(),
/// }));
/// let host = status.host(mac).unwrap();
/// assert_eq!(host.phase, Some("installed"));
/// assert!(status.metrics_text().contains("rhcos_install_reports_total{stage=\"installed\"} 1"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Status(Arc<Inner>);

impl std::fmt::Debug for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Status").finish_non_exhaustive()
    }
}

struct Inner {
    board: Mutex<Board>,
    metrics: Metrics,
    registry: Registry,
    routes: HashMap<String, &'static str>,
}

struct Board {
    timeline: Timeline,
    index: HashMap<Mac, usize>,
    extra: Vec<Extra>,
    seq: u64,
}

#[derive(Default, Clone)]
struct Extra {
    /// The plan's role for a fixed host (introspected hosts learn theirs).
    planned_role: Option<String>,
    last: Option<LastEvent>,
    errors: Vec<String>,
    bmc: Option<BmcState>,
    changed: u64,
    finished: bool,
}

/// Where a host is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HostState {
    /// Nothing seen yet.
    Waiting,
    /// On its way.
    Installing,
    /// The installer reported completion.
    Installed,
    /// It failed (the errors say why).
    Failed,
}

/// One phase a host went through and how long it took (so far).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PhaseTime {
    /// The phase's label (`dhcp`, `kernel`, ...; see [`Phase::label`]).
    pub phase: &'static str,
    /// When it started, in milliseconds since the Unix epoch.
    pub start_unix_ms: u64,
    /// How long it took, in seconds.
    pub seconds: f64,
}

/// The last thing that happened to a host.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LastEvent {
    /// When, in milliseconds since the Unix epoch.
    pub at_unix_ms: u64,
    /// What, in a few words (paths without their query, no config contents).
    pub what: String,
}

/// The last action on a host's BMC and what the BMC did with it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BmcState {
    /// The action.
    pub step: PowerStep,
    /// Its outcome.
    pub outcome: PowerOutcome,
    /// When, in milliseconds since the Unix epoch.
    pub at_unix_ms: u64,
}

/// One host's row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostStatus {
    /// The host's name.
    pub name: String,
    /// Its MAC.
    pub mac: Mac,
    /// Its role, once known.
    pub role: Option<String>,
    /// Where it is.
    pub state: HostState,
    /// The last phase reached ([`Phase::label`]).
    pub phase: Option<&'static str>,
    /// Every phase seen, in order.
    pub phases: Vec<PhaseTime>,
    /// The last event.
    pub last_event: Option<LastEvent>,
    /// The latest errors (failed transfers, BMC failures, installer failures).
    pub errors: Vec<String>,
    /// The BMC's state.
    pub bmc: Option<BmcState>,
    /// The [`StatusSnapshot::seq`] at which this row last changed.
    pub changed: u64,
}

/// Every host's row (or the rows changed since a sequence number).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatusSnapshot {
    /// Grows with every change; ask for `?since=<seq>` to get only the rows changed after it.
    pub seq: u64,
    /// When the snapshot was taken, in milliseconds since the Unix epoch.
    pub now_unix_ms: u64,
    /// Hosts in the plan.
    pub total: usize,
    /// Hosts installed.
    pub installed: usize,
    /// Hosts failed.
    pub failed: usize,
    /// The rows, in plan order.
    pub hosts: Vec<HostStatus>,
}

type Labels<const N: usize> = [(&'static str, String); N];
type HistogramFamily = Family<Labels<1>, Histogram, fn() -> Histogram>;

/// The metric families, registered once.
struct Metrics {
    dhcp: Family<Labels<2>, Counter>,
    tftp_transfers: Family<Labels<1>, Counter>,
    tftp_bytes: Counter,
    http_requests: Family<Labels<2>, Counter>,
    http_bytes: Family<Labels<1>, Counter>,
    phases: HistogramFamily,
    bmc: Family<Labels<2>, Counter>,
    reports: Family<Labels<1>, Counter>,
    ignition: Family<Labels<1>, Counter>,
    introspections: Family<Labels<1>, Counter>,
    downloads: Family<Labels<1>, Counter>,
    download_retries: Family<Labels<1>, Counter>,
    verification_failures: Family<Labels<1>, Counter>,
    hosts: Family<Labels<1>, Gauge>,
    dns: Family<Labels<1>, Counter>,
}

fn phase_histogram() -> Histogram {
    // 0.25 s to about 70 min.
    Histogram::new(exponential_buckets(0.25, 2.0, 15))
}

impl Metrics {
    fn register(r: &mut Registry) -> Self {
        Metrics {
            dhcp: registered(
                r,
                "dhcp_messages",
                "DHCP messages by type (discover, offer, request, ack, ...) and decision (received, address-only, boot-file, ipxe-script, refused)",
                Default::default(),
            ),
            tftp_transfers: registered(
                r,
                "tftp_transfers",
                "TFTP transfers by how they ended",
                Default::default(),
            ),
            tftp_bytes: registered(r, "tftp_bytes", "Bytes sent over TFTP", Default::default()),
            http_requests: registered(
                r,
                "http_requests",
                "HTTP requests by route and status",
                Default::default(),
            ),
            http_bytes: registered(
                r,
                "http_bytes",
                "HTTP response bytes served, by route",
                Default::default(),
            ),
            phases: registered(
                r,
                "phase_duration_seconds",
                "How long each phase of a host's install took, observed when the host installs or fails",
                Family::new_with_constructor(phase_histogram),
            ),
            bmc: registered(
                r,
                "bmc_calls",
                "BMC actions by step and outcome (verified, not-verifiable, lied, refused, unreachable, failed)",
                Default::default(),
            ),
            reports: registered(
                r,
                "install_reports",
                "Installer reports by stage",
                Default::default(),
            ),
            ignition: registered(
                r,
                "ignition_configs",
                "Ignition configs served, by role",
                Default::default(),
            ),
            introspections: registered(
                r,
                "introspections",
                "Hardware inventories posted, by the role decided",
                Default::default(),
            ),
            downloads: registered(
                r,
                "downloads",
                "Artifacts fetched into the cache, by outcome (downloaded, cached, failed)",
                Default::default(),
            ),
            download_retries: registered(
                r,
                "download_retries",
                "Artifact download attempts retried or restarted, by reason",
                Default::default(),
            ),
            verification_failures: registered(
                r,
                "verification_failures",
                "Artifacts refused by verification, by kind (hash, signature, size)",
                Default::default(),
            ),
            hosts: registered(r, "hosts", "Hosts by state", Default::default()),
            dns: registered(
                r,
                "dns_questions",
                "Distinct DNS questions (client, name, type) by outcome (answered, nx-domain, refused, forwarded, busy); the DNS server reports a repeated question once",
                Default::default(),
            ),
        }
    }
}

/// `metric`, registered under `name` (the registry keeps a handle to the same series).
fn registered<M: prometheus_client::registry::Metric + Clone>(
    r: &mut Registry,
    name: &str,
    help: &str,
    metric: M,
) -> M {
    r.register(name, help, metric.clone());
    metric
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn label<const N: usize>(pairs: [(&'static str, &str); N]) -> Labels<N> {
    pairs.map(|(k, v)| (k, v.to_owned()))
}

impl Status {
    /// The status of `plan`'s hosts, serving `artifacts` (which tell transfers apart).
    pub fn new(plan: &Plan, artifacts: &Artifacts) -> Self {
        let layout = Layout::new(plan, artifacts);
        let timeline = layout.timeline(plan);
        let index = timeline
            .hosts()
            .iter()
            .enumerate()
            .map(|(i, h)| (h.mac, i))
            .collect();
        let extra = plan
            .hosts
            .iter()
            .map(|h| Extra {
                planned_role: h.role.asset().map(str::to_owned),
                ..Extra::default()
            })
            .collect();
        let mut registry = Registry::with_prefix("rhcos");
        let metrics = Metrics::register(&mut registry);
        metrics
            .hosts
            .get_or_create(&label([("state", "waiting")]))
            .set(i64::try_from(plan.hosts.len()).unwrap_or(i64::MAX));
        Status(Arc::new(Inner {
            board: Mutex::new(Board {
                timeline,
                index,
                extra,
                seq: 0,
            }),
            metrics,
            registry,
            routes: routes(&layout),
        }))
    }

    fn board(&self) -> MutexGuard<'_, Board> {
        self.0
            .board
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Every host's row.
    pub fn snapshot(&self) -> StatusSnapshot {
        self.changed_since(0)
    }

    /// The rows changed after `seq` (every row for 0), with the counts of every host.
    pub fn changed_since(&self, seq: u64) -> StatusSnapshot {
        let board = self.board();
        let hosts = board.timeline.hosts();
        let mut snapshot = StatusSnapshot {
            seq: board.seq,
            now_unix_ms: unix_ms(SystemTime::now()),
            total: hosts.len(),
            installed: 0,
            failed: 0,
            hosts: Vec::new(),
        };
        for (h, x) in hosts.iter().zip(&board.extra) {
            match state(h) {
                HostState::Installed => snapshot.installed += 1,
                HostState::Failed => snapshot.failed += 1,
                _ => {}
            }
            if seq == 0 || x.changed > seq {
                snapshot.hosts.push(row(h, x));
            }
        }
        snapshot
    }

    /// One host's row.
    pub fn host(&self, mac: Mac) -> Option<HostStatus> {
        let board = self.board();
        let i = *board.index.get(&mac)?;
        Some(row(&board.timeline.hosts()[i], &board.extra[i]))
    }

    /// The timeline as it stands.
    pub fn timeline(&self) -> Timeline {
        self.board().timeline.clone()
    }

    /// Marks a host failed (a timeout, an interrupt) and counts it.
    pub fn fail(&self, mac: Mac, why: &str) {
        let mut board = self.board();
        let Some(&i) = board.index.get(&mac) else {
            return;
        };
        board.timeline.fail(mac, why);
        board.seq += 1;
        let seq = board.seq;
        let x = &mut board.extra[i];
        x.changed = seq;
        push_error(&mut x.errors, why.to_owned());
        self.finish(&mut board, i);
    }

    /// The metrics in the Prometheus/OpenMetrics text format (what `/metrics` serves).
    pub fn metrics_text(&self) -> String {
        self.refresh_host_gauge();
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.0.registry);
        out
    }

    /// A download progress sink that counts downloads, cached artifacts and retries, then
    /// passes every event on to `inner`.
    pub fn progress<P: rhcos_images::Progress + 'static>(
        &self,
        inner: P,
    ) -> impl rhcos_images::Progress + use<P> {
        DownloadMetrics {
            status: self.clone(),
            inner,
        }
    }

    /// Counts a failed [`fetch_artifacts`](crate::fetch_artifacts): a verification failure
    /// (hash, signature, size) by its kind, anything else as a failed download.
    pub fn fetch_failed(&self, error: &crate::Error) {
        use rhcos_images::Error as I;
        let m = &self.0.metrics;
        let kind = match error {
            crate::Error::Images(I::HashMismatch { .. }) => Some("hash"),
            crate::Error::Images(I::BadSignature { .. } | I::SignatureMissing { .. }) => {
                Some("signature")
            }
            crate::Error::Images(I::Truncated { .. }) => Some("size"),
            _ => None,
        };
        if let Some(kind) = kind {
            m.verification_failures
                .get_or_create(&label([("kind", kind)]))
                .inc();
        }
        m.downloads
            .get_or_create(&label([("outcome", "failed")]))
            .inc();
    }

    fn refresh_host_gauge(&self) {
        let board = self.board();
        let mut counts: HashMap<&'static str, i64> = [
            ("waiting", 0),
            ("installing", 0),
            ("installed", 0),
            ("failed", 0),
        ]
        .into();
        for h in board.timeline.hosts() {
            let s = match state(h) {
                HostState::Waiting => "waiting",
                HostState::Installing => "installing",
                HostState::Installed => "installed",
                HostState::Failed => "failed",
            };
            *counts.entry(s).or_default() += 1;
        }
        for (s, n) in counts {
            self.0
                .metrics
                .hosts
                .get_or_create(&label([("state", s)]))
                .set(n);
        }
    }

    /// The route label of an HTTP path: a bounded set, so metrics stay small.
    fn route(&self, path: &str) -> &'static str {
        let path = path.split('?').next().unwrap_or(path);
        if let Some(r) = self.0.routes.get(path) {
            return r;
        }
        if let Some(base) = path.strip_suffix(".sig")
            && self.0.routes.contains_key(base)
        {
            return "signature";
        }
        if path.starts_with("/status/") {
            "status"
        } else if path.starts_with(Layout::INVENTORY) {
            "inventory"
        } else {
            "other"
        }
    }

    /// Counts what every event says about the servers.
    fn count(&self, event: &Event) {
        let m = &self.0.metrics;
        match &event.kind {
            EventKind::Dhcp {
                step, boot_file, ..
            } => {
                let decision = match (step, boot_file) {
                    (DhcpStep::Offer | DhcpStep::Ack, None) => "address-only",
                    (DhcpStep::Offer | DhcpStep::Ack, Some(f)) if f.contains("://") => {
                        "ipxe-script"
                    }
                    (DhcpStep::Offer | DhcpStep::Ack, Some(_)) => "boot-file",
                    (DhcpStep::Nak, _) => "refused",
                    _ => "received",
                };
                m.dhcp
                    .get_or_create(&label([("type", dhcp_name(*step)), ("decision", decision)]))
                    .inc();
            }
            EventKind::Transfer {
                protocol: Protocol::Tftp,
                bytes,
                status,
                ..
            } => {
                let s = match status {
                    TransferStatus::TftpComplete => "complete",
                    TransferStatus::TftpRefused(_) => "refused",
                    TransferStatus::TftpBusy => "busy",
                    TransferStatus::TftpClientError(_) => "client-error",
                    _ => "incomplete",
                };
                m.tftp_transfers
                    .get_or_create(&label([("status", s)]))
                    .inc();
                m.tftp_bytes.inc_by(*bytes);
            }
            EventKind::Transfer {
                protocol: Protocol::Http,
                path,
                bytes,
                status,
                ..
            } => {
                let route = self.route(path);
                let code = match status {
                    TransferStatus::Http(code) => code.to_string(),
                    _ => "other".to_owned(),
                };
                m.http_requests
                    .get_or_create(&[("route", route.to_owned()), ("status", code)])
                    .inc();
                m.http_bytes
                    .get_or_create(&label([("route", route)]))
                    .inc_by(*bytes);
            }
            EventKind::Power { step, outcome } => {
                m.bmc
                    .get_or_create(&label([
                        ("step", step.as_str()),
                        ("outcome", outcome.as_str()),
                    ]))
                    .inc();
            }
            EventKind::Report { stage, .. } => {
                m.reports
                    .get_or_create(&label([("stage", stage.as_str())]))
                    .inc();
            }
            EventKind::Ignition { role, .. } => {
                m.ignition.get_or_create(&[("role", role.clone())]).inc();
            }
            EventKind::Introspected { role, .. } => {
                m.introspections
                    .get_or_create(&[("role", role.clone())])
                    .inc();
            }
            EventKind::Dns { outcome, .. } => {
                m.dns
                    .get_or_create(&label([("outcome", outcome.as_str())]))
                    .inc();
            }
            _ => {}
        }
    }

    /// Observes a host's phase durations once, when it installs or fails.
    fn finish(&self, board: &mut Board, i: usize) {
        let h = &board.timeline.hosts()[i];
        if board.extra[i].finished || state(h) == HostState::Installing {
            return;
        }
        if state(h) == HostState::Waiting && h.failure.is_none() {
            return;
        }
        board.extra[i].finished = true;
        for (phase, span) in &h.phases {
            self.0
                .metrics
                .phases
                .get_or_create(&label([("phase", phase.label())]))
                .observe(span.duration().as_secs_f64());
        }
    }
}

impl EventSink for Status {
    fn emit(&self, event: Event) {
        self.count(&event);
        let Some(mac) = event.mac else { return };
        let mut board = self.board();
        let Some(&i) = board.index.get(&mac) else {
            return;
        };
        board.timeline.record(&event);
        board.seq += 1;
        let seq = board.seq;
        let route = match &event.kind {
            EventKind::Transfer {
                protocol: Protocol::Http,
                path,
                ..
            } => self.route(path),
            _ => "other",
        };
        let what = match route {
            "other" => describe(&event.kind),
            route => format!("{route}: {}", describe(&event.kind)),
        };
        let x = &mut board.extra[i];
        x.changed = seq;
        x.last = Some(LastEvent {
            at_unix_ms: unix_ms(event.at),
            what,
        });
        match &event.kind {
            EventKind::Power { step, outcome } => {
                x.bmc = Some(BmcState {
                    step: *step,
                    outcome: *outcome,
                    at_unix_ms: unix_ms(event.at),
                });
                if !outcome.is_ok() {
                    push_error(
                        &mut x.errors,
                        format!("bmc {}: {}", step.as_str(), outcome.as_str()),
                    );
                }
            }
            EventKind::Transfer { status, .. }
                if !status.is_success() && !expected_refusal(*status, route) =>
            {
                push_error(&mut x.errors, describe(&event.kind));
            }
            EventKind::Report {
                stage: InstallStage::Failed,
                ..
            } => push_error(&mut x.errors, describe(&event.kind)),
            _ => {}
        }
        self.finish(&mut board, i);
    }
}

/// Refusals that are part of a normal boot, not errors: a signature withheld from the
/// installer on purpose (404), and firmware refusing our TFTP options (error 8) before it asks
/// again without them.
fn expected_refusal(status: TransferStatus, route: &str) -> bool {
    matches!(
        (status, route),
        (TransferStatus::Http(404), "signature") | (TransferStatus::TftpClientError(8), _)
    )
}

fn push_error(errors: &mut Vec<String>, error: String) {
    if errors.len() == MAX_ERRORS {
        errors.remove(0);
    }
    errors.push(error);
}

fn state(h: &HostTimeline) -> HostState {
    if h.failure.is_some() {
        HostState::Failed
    } else if h.installed() {
        HostState::Installed
    } else if h.phases.is_empty() {
        HostState::Waiting
    } else {
        HostState::Installing
    }
}

fn row(h: &HostTimeline, x: &Extra) -> HostStatus {
    HostStatus {
        name: h.name.clone(),
        mac: h.mac,
        role: h.role.clone().or_else(|| x.planned_role.clone()),
        state: state(h),
        phase: h.last_phase().map(Phase::label),
        phases: h
            .phases
            .iter()
            .map(|(p, s)| PhaseTime {
                phase: p.label(),
                start_unix_ms: unix_ms(s.start),
                seconds: s.duration().as_secs_f64(),
            })
            .collect(),
        last_event: x.last.clone(),
        errors: x.errors.clone(),
        bmc: x.bmc,
        changed: x.changed,
    }
}

fn dhcp_name(step: DhcpStep) -> &'static str {
    match step {
        DhcpStep::Discover => "discover",
        DhcpStep::Offer => "offer",
        DhcpStep::Request => "request",
        DhcpStep::Ack => "ack",
        DhcpStep::Nak => "nak",
        DhcpStep::Decline => "decline",
        DhcpStep::Release => "release",
        DhcpStep::Inform => "inform",
        _ => "other",
    }
}

/// A few words about an event, without secrets: paths lose their query (a per-host token may be
/// in it), Ignition events name only the role, installer details are cut short.
fn describe(kind: &EventKind) -> String {
    match kind {
        EventKind::Dhcp {
            step,
            yiaddr,
            boot_file,
        } => {
            let mut s = format!("dhcp {}", dhcp_name(*step));
            if let Some(a) = yiaddr {
                s.push_str(&format!(" {a}"));
            }
            if let Some(f) = boot_file {
                let f = f.split('?').next().unwrap_or(f);
                s.push_str(&format!(" ({f})"));
            }
            s
        }
        EventKind::Transfer {
            protocol,
            path,
            bytes,
            status,
            ..
        } => {
            let path = path.split('?').next().unwrap_or(path);
            let proto = match protocol {
                Protocol::Tftp => "tftp",
                Protocol::Http => "http",
            };
            let status = match status {
                TransferStatus::Http(code) => code.to_string(),
                TransferStatus::TftpComplete => "complete".into(),
                TransferStatus::TftpRefused(code) => format!("refused ({code})"),
                TransferStatus::TftpBusy => "busy".into(),
                TransferStatus::TftpClientError(code) => format!("client error {code}"),
                _ => "incomplete".into(),
            };
            format!("{proto} {path} {status}, {bytes} bytes")
        }
        EventKind::Ignition { role, .. } => format!("ignition config ({role})"),
        EventKind::Introspected { role, install_dev } => match install_dev {
            Some(dev) => format!("introspected: {role} on {dev}"),
            None => format!("introspected: {role}"),
        },
        EventKind::Report { stage, detail } => {
            let detail: String = detail.chars().take(MAX_DETAIL).collect();
            let detail = detail.trim();
            if detail.is_empty() {
                format!("installer: {}", stage.as_str())
            } else {
                format!("installer: {}: {detail}", stage.as_str())
            }
        }
        EventKind::Power { step, outcome } => {
            format!("bmc {}: {}", step.as_str(), outcome.as_str())
        }
        _ => "event".into(),
    }
}

/// The route labels of the deployment's own paths.
fn routes(layout: &Layout) -> HashMap<String, &'static str> {
    let a = layout.artifacts();
    let mut r: HashMap<String, &'static str> = [
        (Layout::BOOT_SCRIPT.to_owned(), "boot-script"),
        (Layout::HOST_SCRIPT.to_owned(), "host-script"),
        (Layout::IGNITION.to_owned(), "ignition"),
        (Layout::INTROSPECTION.to_owned(), "introspection"),
        (Layout::INVENTORY.to_owned(), "inventory"),
        (Layout::INSTALL_CONFIG.to_owned(), "install-config"),
        (Layout::REPORT.to_owned(), "report"),
        (layout.efi_boot_path(), "efi-boot-file"),
        (Layout::STATUS.to_owned(), "status"),
        (Layout::STATUS_PAGE.to_owned(), "status"),
        (Layout::STATUS_SCRIPT.to_owned(), "status"),
        (Layout::METRICS.to_owned(), "metrics"),
        (a.kernel.clone(), "kernel"),
        (a.initramfs.clone(), "initramfs"),
    ]
    .into();
    for (path, name) in [
        (&a.rootfs, "rootfs"),
        (&a.image, "image"),
        (&a.image_4k, "image-4k"),
    ] {
        if let Some(p) = path {
            r.insert(p.clone(), name);
        }
    }
    r
}

/// Counts downloads, then passes progress on.
struct DownloadMetrics<P> {
    status: Status,
    inner: P,
}

impl<P: rhcos_images::Progress> rhcos_images::Progress for DownloadMetrics<P> {
    fn event(&self, event: &rhcos_images::ProgressEvent<'_>) {
        use rhcos_images::ProgressEvent as E;
        let m = &self.status.0.metrics;
        match event {
            E::Cached { .. } => m
                .downloads
                .get_or_create(&label([("outcome", "cached")]))
                .inc(),
            E::Finished { .. } => m
                .downloads
                .get_or_create(&label([("outcome", "downloaded")]))
                .inc(),
            E::Retrying { .. } => m
                .download_retries
                .get_or_create(&label([("reason", "failed-attempt")]))
                .inc(),
            E::Restarted { .. } => m
                .download_retries
                .get_or_create(&label([("reason", "restarted")]))
                .inc(),
            _ => 0,
        };
        self.inner.event(event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn plan(hosts: usize) -> Plan {
        let mut text = String::from(
            r#"
            [cluster]
            name = "ocp"
            base_domain = "example.com"
            assets = "/srv/ocp"
            [images]
            stream = "stream.json"
            [provisioning]
            interface = "eno2"
            address = "172.22.0.1"
            dhcp_range = ["172.22.0.100", "172.22.0.199"]
            "#,
        );
        for i in 0..hosts {
            text.push_str(&format!(
                "[[hosts]]\nname = \"node{i}\"\nmac = \"52:54:00:00:{:02x}:{:02x}\"\nrole = \"worker\"\n",
                i / 256,
                i % 256
            ));
        }
        Plan::parse(&text, "plan.toml").unwrap()
    }

    fn artifacts() -> Artifacts {
        Artifacts {
            image: Some("/img".into()),
            ..Artifacts::for_tests("/var/cache/rhcos-metal")
        }
    }

    fn mac(i: usize) -> Mac {
        Mac([0x52, 0x54, 0, 0, (i / 256) as u8, (i % 256) as u8])
    }

    fn at(secs: u64, mac: Mac, kind: EventKind) -> Event {
        Event {
            at: UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs),
            mac: Some(mac),
            addr: None,
            kind,
        }
    }

    fn http(path: &str, code: u16, bytes: u64) -> EventKind {
        EventKind::Transfer {
            protocol: Protocol::Http,
            path: path.into(),
            bytes,
            duration: Duration::from_secs(2),
            status: TransferStatus::Http(code),
        }
    }

    fn install(status: &Status, m: Mac) {
        let dhcp = |step, boot_file: Option<&str>| EventKind::Dhcp {
            step,
            yiaddr: None,
            boot_file: boot_file.map(str::to_owned),
        };
        status.emit(at(
            0,
            m,
            EventKind::Power {
                step: PowerStep::On,
                outcome: PowerOutcome::Verified,
            },
        ));
        status.emit(at(1, m, dhcp(DhcpStep::Discover, None)));
        status.emit(at(2, m, dhcp(DhcpStep::Offer, Some("undionly.kpxe"))));
        status.emit(at(3, m, dhcp(DhcpStep::Ack, Some("undionly.kpxe"))));
        status.emit(at(
            5,
            m,
            dhcp(DhcpStep::Ack, Some("http://172.22.0.1:8080/boot.ipxe")),
        ));
        status.emit(at(6, m, http("/ipxe?mac=x&token=secret", 200, 500)));
        status.emit(at(10, m, http("/k", 200, 1000)));
        status.emit(at(20, m, http("/i", 200, 2000)));
        status.emit(at(21, m, http("/img.sig", 404, 0)));
        status.emit(at(40, m, http("/img", 200, 4000)));
        status.emit(at(
            41,
            m,
            EventKind::Ignition {
                role: "worker".into(),
                sha512: "ab".into(),
            },
        ));
        status.emit(at(
            50,
            m,
            EventKind::Report {
                stage: InstallStage::Installed,
                detail: String::new(),
            },
        ));
    }

    fn sample(samples: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
        samples
            .samples
            .iter()
            .filter(|s| s.metric == name)
            .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => 0.0,
            })
            .sum()
    }

    #[test]
    fn rows_follow_events_and_hold_no_secrets() {
        let status = Status::new(&plan(2), &artifacts());
        install(&status, mac(0));
        status.emit(at(
            3,
            mac(1),
            EventKind::Power {
                step: PowerStep::On,
                outcome: PowerOutcome::Lied,
            },
        ));
        let s = status.snapshot();
        assert_eq!((s.total, s.installed, s.failed), (2, 1, 0));
        let h0 = &s.hosts[0];
        assert_eq!(h0.state, HostState::Installed);
        assert_eq!(h0.phase, Some("installed"));
        assert_eq!(h0.role.as_deref(), Some("worker"));
        let kernel = h0.phases.iter().find(|p| p.phase == "kernel").unwrap();
        assert_eq!(kernel.seconds, 2.0);
        // The withheld signature's 404 is part of a normal install, not an error.
        assert!(h0.errors.is_empty(), "{:?}", h0.errors);
        let last = h0.last_event.as_ref().unwrap();
        assert_eq!(last.what, "installer: installed");
        // A fixed host's role is the plan's before any config is served.
        assert_eq!(s.hosts[1].role.as_deref(), Some("worker"));
        let h1 = status.host(mac(1)).unwrap();
        assert_eq!(h1.bmc.unwrap().outcome, PowerOutcome::Lied);
        assert_eq!(h1.errors, ["bmc on: lied"]);
        let json = serde_json::to_string(&s).unwrap();
        assert!(!json.contains("secret"), "{json}");
        assert!(json.contains(r#""mac":"52:54:00:00:00:00""#), "{json}");
        // Only changed rows after a sequence number.
        let seq = s.seq;
        assert!(status.changed_since(seq).hosts.is_empty());
        status.fail(mac(1), "timed out");
        let changed = status.changed_since(seq);
        assert_eq!(changed.hosts.len(), 1);
        assert_eq!(changed.hosts[0].state, HostState::Failed);
        assert_eq!(changed.failed, 1);
    }

    #[test]
    fn metrics_parse_and_count_what_happened() {
        let status = Status::new(&plan(2), &artifacts());
        install(&status, mac(0));
        install(&status, mac(1));
        let text = status.metrics_text();
        let lines = text.lines().map(|l| Ok(l.to_owned()));
        let scrape = prometheus_parse::Scrape::parse(lines).unwrap();
        let c = |name, labels: &[(&str, &str)]| sample(&scrape, name, labels);
        assert_eq!(
            c(
                "rhcos_dhcp_messages_total",
                &[("type", "ack"), ("decision", "boot-file")]
            ),
            2.0,
            "{text}"
        );
        assert_eq!(
            c(
                "rhcos_dhcp_messages_total",
                &[("type", "ack"), ("decision", "ipxe-script")]
            ),
            2.0
        );
        assert_eq!(
            c(
                "rhcos_http_requests_total",
                &[("route", "kernel"), ("status", "200")]
            ),
            2.0
        );
        assert_eq!(
            c(
                "rhcos_http_requests_total",
                &[("route", "signature"), ("status", "404")]
            ),
            2.0
        );
        assert_eq!(
            c("rhcos_http_requests_total", &[("route", "host-script")]),
            2.0
        );
        assert_eq!(c("rhcos_http_bytes_total", &[("route", "image")]), 8000.0);
        assert_eq!(
            c(
                "rhcos_bmc_calls_total",
                &[("step", "on"), ("outcome", "verified")]
            ),
            2.0
        );
        assert_eq!(
            c("rhcos_install_reports_total", &[("stage", "installed")]),
            2.0
        );
        assert_eq!(c("rhcos_hosts", &[("state", "installed")]), 2.0);
        // Phase histograms: one observation per host and phase, when it installed.
        assert!(
            text.contains("rhcos_phase_duration_seconds_count{phase=\"kernel\"} 2"),
            "{text}"
        );
        assert!(!text.contains("secret"));
    }

    #[test]
    fn the_plan_turns_it_on_and_binds_it() {
        let base = plan(0);
        assert_eq!(base.status, crate::plan::StatusConfig::default());
        let text = r#"
            [cluster]
            name = "ocp"
            base_domain = "example.com"
            assets = "/srv/ocp"
            [images]
            stream = "stream.json"
            [provisioning]
            interface = "eno2"
            address = "172.22.0.1"
            [status]
            enabled = true
            bind = "10.0.0.5:9100"
            "#;
        let p = Plan::parse(text, "plan.toml").unwrap();
        assert!(p.status.enabled);
        assert_eq!(p.status.bind, Some("10.0.0.5:9100".parse().unwrap()));
        let layout = Layout::new(&p, &artifacts());
        assert_eq!(layout.status_url(&p), "http://10.0.0.5:9100/status.html");
        let typo = text.replace("bind =", "bnd =");
        let e = Plan::parse(&typo, "plan.toml").unwrap_err().to_string();
        assert!(e.contains("status"), "{e}");
    }

    #[test]
    fn a_thousand_hosts_in_one_small_document() {
        let status = Status::new(&plan(1000), &artifacts());
        for i in 0..1000 {
            install(&status, mac(i));
        }
        let s = status.snapshot();
        assert_eq!((s.total, s.installed), (1000, 1000));
        let json = serde_json::to_vec(&s).unwrap();
        let back: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(back["hosts"].as_array().unwrap().len(), 1000);
        assert_eq!(back["hosts"][999]["name"], "node999");
        assert_eq!(back["hosts"][999]["state"], "installed");
        // About a kilobyte per host: a poll of every row stays well under what a page fetches.
        assert!(json.len() < 2_000 * 1000, "{} bytes", json.len());
        // A poll after the last change carries no row at all.
        assert!(status.changed_since(s.seq).hosts.is_empty());
        let text = status.metrics_text();
        assert!(
            text.contains("rhcos_hosts{state=\"installed\"} 1000"),
            "{text}"
        );
    }
}
