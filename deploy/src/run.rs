//! The deployment itself: images, servers, power, and following every host to "installed".

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bmc_power::{Bmc, Boot, BootDevice, PowerAction};
use bytes::Bytes;
use http::StatusCode;
use ignition_serve::{Group, Profile, Selector};
use ipxe_script::{CoreosArgs, Generation, Word};
use pxe_stack::route::{RouteRequest, reply};
use pxe_stack::{Event, EventKind, EventSink, HostLookup, Mac};
use tokio::sync::{mpsc, watch};

use crate::bmc::open_bmc;
use crate::plan::{Plan, Role};
use crate::timeline::{Phase, Timeline};

/// Everything that can stop a deployment.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Fetching or verifying images failed.
    #[error("images")]
    Images(#[from] rhcos_images::Error),
    /// The Ignition assets could not be loaded.
    #[error("ignition assets")]
    Ignition(#[from] ignition_serve::Error),
    /// The introspection service could not be set up.
    #[error("introspection")]
    Introspect(#[from] rhcos_introspect::Error),
    /// A script could not be generated.
    #[error("ipxe script")]
    Script(#[from] ipxe_script::Error),
    /// The DHCP server could not start.
    #[error("dhcp server")]
    Dhcp(#[from] pxe_stack::dhcp::Error),
    /// Binding a server socket failed.
    #[error("cannot bind {what} on {addr}")]
    Bind {
        /// Which server.
        what: &'static str,
        /// The address.
        addr: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A host's BMC refused or failed.
    #[error("bmc of {host}")]
    Bmc {
        /// The host.
        host: String,
        /// What went wrong.
        #[source]
        source: bmc_power::Error,
    },
    /// The plan is not usable as it stands (checked again at run time).
    #[error("invalid plan")]
    Plan(#[from] crate::PlanError),
    /// The plan names neither a stream nor a mirror directory with a `stream.json`.
    #[error("no image metadata: set images.stream, or put stream.json in images.mirror")]
    NoStream,
    /// The plan needs a feature this build of rhcos-deploy lacks.
    #[error("{what} needs rhcos-deploy's `{feature}` feature")]
    MissingFeature {
        /// What needs it (`host master-0's redfish bmc`, `[bootstrap]`).
        what: String,
        /// The cargo feature.
        feature: &'static str,
    },
    /// A blocking task (libvirt calls) panicked or was cancelled.
    #[error("{what} did not finish")]
    Task {
        /// The task.
        what: &'static str,
    },
    /// A file the plan names could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The bootstrap VM or its network could not be laid out, defined, started or removed.
    #[error("bootstrap vm")]
    Bootstrap(#[from] libvirt_templates::Error),
}

/// Where the deployment gets the files it serves.
#[derive(Debug, Clone)]
pub struct Artifacts {
    /// The HTTP root (the image cache).
    pub root: PathBuf,
    /// URL path of the kernel, under the root.
    pub kernel: String,
    /// URL path of the initramfs.
    pub initramfs: String,
    /// URL path of the live rootfs, when the stream has one.
    pub rootfs: Option<String>,
    /// URL path of the metal image (`raw.gz`).
    pub image: String,
    /// The directory with the iPXE binaries served over TFTP.
    pub ipxe_dir: PathBuf,
}

/// Fetches and verifies the kernel, initramfs, rootfs (when present) and metal image into the
/// plan's cache; every file is then served from the cache under its sha256.
pub async fn fetch_artifacts(
    plan: &Plan,
    progress: impl rhcos_images::Progress + 'static,
) -> Result<Artifacts, Error> {
    use rhcos_images::{Cache, Fetcher, Kind, Location, Options, Request, Source};
    let cache = Cache::open(&plan.images.cache)?;
    let fetcher = Fetcher::new(Options::default())?.with_progress(progress);
    // An air-gapped mirror carries its own stream.json.
    let stream = match (&plan.images.stream, &plan.images.mirror) {
        (Some(s), _) => s.clone(),
        (None, Some(dir)) if dir.join("stream.json").is_file() => {
            dir.join("stream.json").display().to_string()
        }
        _ => return Err(Error::NoStream),
    };
    let meta = fetcher.metadata(&Location::parse(&stream)?).await?;
    let source = match &plan.images.mirror {
        Some(dir) => Source::mirror(&dir.display().to_string())?,
        None => Source::Upstream,
    };
    let available: Vec<Kind> = meta
        .available(&plan.images.arch)?
        .iter()
        .filter_map(|a| a.kind)
        .collect();
    let mut kinds = vec![Kind::Kernel, Kind::Initramfs, Kind::RawGz];
    if available.contains(&Kind::Rootfs) {
        kinds.push(Kind::Rootfs);
    }
    let requests = meta
        .select(&plan.images.arch, &kinds)?
        .into_iter()
        .map(|a| Request::new(a, &source, false))
        .collect::<Result<Vec<_>, _>>()?;
    let mut paths = HashMap::new();
    for (req, fetched) in requests
        .iter()
        .zip(fetcher.fetch_all(&cache, &requests).await)
    {
        let fetched = fetched?;
        if let Some(kind) = req.artifact.kind {
            paths.insert(kind, format!("/{}", fetched.digests.sha256));
        }
    }
    let take = |k: Kind| paths.get(&k).cloned().unwrap_or_default();
    Ok(Artifacts {
        root: cache.root().to_owned(),
        kernel: take(Kind::Kernel),
        initramfs: take(Kind::Initramfs),
        rootfs: paths.get(&Kind::Rootfs).cloned(),
        image: take(Kind::RawGz),
        ipxe_dir: PathBuf::from("/usr/lib/ipxe"),
    })
}

/// Events from every server, forwarded to the deployment's loop without blocking.
#[derive(Debug, Clone)]
struct Hub(mpsc::UnboundedSender<Event>);

impl EventSink for Hub {
    fn emit(&self, event: Event) {
        let _ = self.0.send(event);
    }
}

/// The running DHCP, TFTP and HTTP servers. Dropping it (or [`Servers::shutdown`]) stops them.
#[derive(Debug)]
pub struct Servers {
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// The DHCP lease table.
    pub leases: pxe_stack::dhcp::Leases,
    /// The HTTP base URL hosts use (`http://addr:port`).
    pub base_url: String,
    introspector: rhcos_introspect::Introspector,
}

impl Servers {
    /// Stops every server and waits for them.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
    }

    /// The install disk introspection chose for a host.
    pub fn introspected_disk(&self, mac: Mac) -> Option<String> {
        self.introspector.install_dev(mac)
    }
}

impl Drop for Servers {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Binds the server sockets.
fn bind_sockets(
    plan: &Plan,
) -> Result<
    (
        tokio::net::UdpSocket,
        std::net::UdpSocket,
        std::net::TcpListener,
    ),
    Error,
> {
    let p = &plan.provisioning;
    {
        let dhcp = pxe_stack::dhcp::bind(Some(&p.interface), 67)?;
        let tftp_addr = SocketAddr::from((p.address, 69));
        let tftp = std::net::UdpSocket::bind(tftp_addr).map_err(|source| Error::Bind {
            what: "tftp",
            addr: tftp_addr.to_string(),
            source,
        })?;
        let http_addr = SocketAddr::from((p.address, p.http_port));
        let http = std::net::TcpListener::bind(http_addr).map_err(|source| Error::Bind {
            what: "http",
            addr: http_addr.to_string(),
            source,
        })?;
        http.set_nonblocking(true).map_err(|source| Error::Bind {
            what: "http",
            addr: http_addr.to_string(),
            source,
        })?;
        Ok((dhcp, tftp, http))
    }
}

/// The per-host iPXE scripts, for hosts that fetch everything from `base` (`http://addr:port`):
/// `/ipxe?mac=..` answers with the kernel, initramfs and arguments for that host; unknown hosts
/// get a 404 (iPXE's retry loop reports it on the console).
pub fn ipxe_scripts(
    plan: &Plan,
    artifacts: &Artifacts,
    base: &str,
) -> Result<HashMap<Mac, Bytes>, Error> {
    let mut out = HashMap::new();
    for host in &plan.hosts {
        let mut args = CoreosArgs {
            generation: Generation::Live,
            install_dev: Some(host.install_dev.clone()),
            image_url: Some(format!("{base}{}", artifacts.image)),
            rootfs_url: artifacts.rootfs.as_ref().map(|r| format!("{base}{r}")),
            consoles: vec!["ttyS0,115200".into()],
            extra: vec![format!("rhcos_metal.report={base}/report")],
            ..Default::default()
        };
        match host.role {
            Role::Introspect => {
                args.introspection_endpoint = Some(format!("{base}/introspection"));
            }
            _ => {
                args.ignition_url = Some(format!("{base}/ignition?mac={}", host.mac.hexhyp()));
            }
        }
        let boot = ipxe_script::Boot::new(
            Word::new(format!("{base}{}", artifacts.kernel))?,
            Word::new(format!("{base}{}", artifacts.initramfs))?,
            args.build()?,
        );
        out.insert(host.mac, Bytes::from(boot.script()?.render()));
    }
    Ok(out)
}

/// Starts DHCP, TFTP and HTTP for the plan's hosts.
pub async fn start_servers(
    plan: &Plan,
    artifacts: &Artifacts,
    events: Arc<dyn EventSink>,
) -> Result<Servers, Error> {
    use pxe_stack::dhcp;
    use pxe_stack::http::Routes;

    let p = &plan.provisioning;
    let base = format!("http://{}:{}", p.address, p.http_port);
    let (dhcp_sock, tftp_sock, http_sock) = bind_sockets(plan)?;

    // DHCP: reservations for every host with an address, the pool for the rest.
    let mut subnet = dhcp::Subnet::new(p.address, p.prefix);
    subnet.router = p.router;
    subnet.dns = p.dns.clone();
    subnet.domain = Some(format!(
        "{}.{}",
        plan.cluster.name, plan.cluster.base_domain
    ));
    subnet.pool = p.dhcp_range.map(|(start, end)| dhcp::Range { start, end });
    let mut config = dhcp::Config {
        server_ip: p.address,
        subnets: vec![subnet],
        ..Default::default()
    };
    config.boot.next_server = Some(p.address);
    config.boot.bios = Some("undionly.kpxe".into());
    config.boot.efi_x64 = Some(p.efi_boot_file.clone());
    config.boot.http_boot_url = Some(format!("{base}/{}", p.efi_boot_file));
    config.boot.ipxe_script_url = Some(format!("{base}/boot.ipxe"));
    config.boot.chain = match p.chain {
        crate::plan::Chain::Trust => dhcp::Chain::Trust,
        crate::plan::Chain::Stateful => dhcp::Chain::Stateful,
    };
    for h in &plan.hosts {
        if let Some(addr) = h.address {
            config.reservations.push(dhcp::Reservation {
                mac: h.mac,
                addr,
                hostname: Some(h.name.clone()),
            });
        }
    }
    let lease_dir = plan.images.cache.join("state");
    std::fs::create_dir_all(&lease_dir).map_err(|source| Error::Bind {
        what: "lease file",
        addr: lease_dir.display().to_string(),
        source,
    })?;
    let dhcp_server = dhcp::Server::new(config, dhcp_sock)?
        .with_lease_file(dhcp::LeaseFile::new(lease_dir.join("leases.json")))?
        .with_events(events.clone());
    let leases = dhcp_server.leases();
    let lookup: Arc<dyn HostLookup> = Arc::new(leases.clone());

    // Ignition: one group per host with a fixed role.
    let mut store = ignition_serve::Store::load_dir(&plan.cluster.assets)?;
    for h in &plan.hosts {
        if let Some(role) = h.role.asset() {
            store.add_group(Group {
                id: h.name.clone(),
                selector: Selector {
                    mac: Some(h.mac),
                    ..Default::default()
                },
                profile: Profile {
                    role: role.into(),
                    ..Default::default()
                },
            })?;
        }
    }
    let ignition = ignition_serve::Route::new(
        store,
        lookup.clone(),
        events.clone(),
        ignition_serve::Options::default(),
    );

    // Introspection: the plan's rules decide roles and disks.
    let settings = rhcos_introspect::Settings {
        rules: plan.introspection.clone(),
        ..Default::default()
    };
    let inventory = plan.images.cache.join("state").join("inventory");
    let introspector = rhcos_introspect::Introspector::builder(settings)
        .lookup(lookup.clone())
        .events(events.clone())
        .build(
            rhcos_introspect::IgnitionConfigs::from_route(ignition.clone()),
            rhcos_introspect::FileStore::new(&inventory)?,
        )?;

    let scripts = Arc::new(ipxe_scripts(plan, artifacts, &base)?);
    let chain = Bytes::from(
        ipxe_script::Chain::per_host(&format!("{base}/ipxe"))?
            .script()?
            .render(),
    );
    let report_events = events.clone();
    let routes = Routes::new()
        .exact("/boot.ipxe", move |_req: RouteRequest| {
            let chain = chain.clone();
            async move { reply::ok("text/plain; charset=utf-8", chain) }
        })
        .exact("/ipxe", move |req: RouteRequest| {
            let scripts = scripts.clone();
            async move {
                let mac = query(&req, "mac")
                    .and_then(|m| m.parse::<Mac>().ok())
                    .or(req.mac);
                match mac.and_then(|m| scripts.get(&m).cloned()) {
                    Some(s) => reply::ok("text/plain; charset=utf-8", s),
                    None => reply::error(StatusCode::NOT_FOUND, "no script for this host"),
                }
            }
        })
        .exact("/report", move |req: RouteRequest| {
            let events = report_events.clone();
            async move {
                let mac = query(&req, "mac")
                    .and_then(|m| m.parse::<Mac>().ok())
                    .or(req.mac);
                let stage = query(&req, "stage").unwrap_or_default();
                if mac.is_none() || stage.is_empty() {
                    return reply::error(StatusCode::BAD_REQUEST, "need mac and stage");
                }
                let detail = String::from_utf8_lossy(req.request.body()).into_owned();
                events.emit(Event::now(
                    mac,
                    Some(req.peer.ip()),
                    EventKind::Report { stage, detail },
                ));
                reply::ok("text/plain", "ok\n")
            }
        })
        .prefix("/ignition", ignition.clone())
        .exact_with_limit(
            "/introspection",
            introspector.body_limit(),
            Arc::new(introspector.clone()),
        )
        .prefix("/inventory", introspector.clone());

    let mut tftp_config = pxe_stack::tftp::Config::default();
    tftp_config.root = Some(artifacts.ipxe_dir.clone());
    let tftp = pxe_stack::tftp::Server::new(tftp_config)
        .with_lookup(lookup.clone())
        .with_events(Arc::new(dhcp::MarkChained::new(
            leases.clone(),
            "undionly.kpxe",
            events.clone(),
        )));
    let mut http_config = pxe_stack::http::Config::default();
    http_config.root = Some(artifacts.root.clone());
    let http = pxe_stack::http::Server::new(http_config)
        .with_routes(routes)
        .with_lookup(lookup.clone())
        .with_events(events.clone());
    let http_listener =
        tokio::net::TcpListener::from_std(http_sock).map_err(|source| Error::Bind {
            what: "http",
            addr: base.clone(),
            source,
        })?;

    let (stop, stopped) = watch::channel(false);
    let mut tasks = Vec::new();
    if let Some(prefix) = p.ipv6_ra_prefix {
        let advertiser = dhcp::RouterAdvertiser::new(
            &p.interface,
            dhcp::Advertisement::new(prefix),
            Duration::from_secs(10),
        )?;
        let mut rx = stopped.clone();
        tasks.push(tokio::spawn(async move {
            let until = async move {
                let _ = rx.wait_for(|s| *s).await;
            };
            if let Err(e) = advertiser.run(until).await {
                tracing::error!(error = %e, "router advertisements stopped");
            }
        }));
    }
    let until = move || {
        let mut rx = stopped.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    tasks.extend([
        tokio::spawn({
            let until = until();
            async move {
                if let Err(e) = dhcp_server.run(until).await {
                    tracing::error!(error = %e, "dhcp server stopped");
                }
            }
        }),
        tokio::spawn({
            let until = until();
            async move {
                if let Err(e) = tftp.serve(tftp_sock, until).await {
                    tracing::error!(error = %e, "tftp server stopped");
                }
            }
        }),
        tokio::spawn({
            let until = until();
            async move {
                if let Err(e) = http.serve(http_listener, until).await {
                    tracing::error!(error = %e, "http server stopped");
                }
            }
        }),
    ]);
    Ok(Servers {
        stop,
        tasks,
        leases,
        base_url: base,
        introspector,
    })
}

/// The value of query parameter `key`, percent-decoding not needed for MACs and stage names.
fn query(req: &RouteRequest, key: &str) -> Option<String> {
    req.request.uri().query()?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then(|| v.to_owned())
    })
}

/// The bootstrap VM (when the plan has one), then the servers.
async fn start(
    plan: &Plan,
    artifacts: &Artifacts,
    events: Arc<dyn EventSink>,
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
    start_servers(plan, artifacts, events).await
}

/// What [`run`] reports back.
#[derive(Debug)]
pub struct Outcome {
    /// Every host's timeline.
    pub timeline: Timeline,
    /// Whether every host installed.
    pub success: bool,
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
    mut observe: impl FnMut(&Timeline),
    shutdown: impl Future<Output = ()>,
) -> Result<Outcome, Error> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let hub: Arc<dyn EventSink> = Arc::new(Hub(tx));
    let mut timeline = Timeline::new(plan.hosts.iter().map(|h| (h.name.clone(), h.mac)));
    timeline.classify(artifacts.kernel.clone(), Phase::Kernel);
    timeline.classify(artifacts.initramfs.clone(), Phase::Initramfs);
    timeline.classify(artifacts.image.clone(), Phase::Image);
    timeline.classify("/ipxe", Phase::Script);
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
        started = start(plan, artifacts, hub.clone()) => started?,
        () = &mut shutdown => {
            for h in &plan.hosts {
                timeline.fail(h.mac, "interrupted");
            }
            observe(&timeline);
            return Ok(Outcome { timeline, success: false });
        }
    };

    // Power every host on at once: boot from the network next, then on, each read back.
    let power_on = futures_util::future::join_all(bmcs.iter().map(|(mac, name, bmc)| {
        let hub = hub.clone();
        async move {
            let result = async {
                bmc.set_boot(Boot::once(BootDevice::Pxe)).await?;
                bmc.power(PowerAction::On).await
            }
            .await;
            hub.emit(Event::now(
                Some(*mac),
                None,
                EventKind::Power {
                    action: "on".into(),
                    ok: result.is_ok(),
                },
            ));
            (*mac, name.clone(), result)
        }
    }));
    for (mac, name, result) in power_on.await {
        if let Err(e) = result {
            tracing::error!(host = %name, error = %e, "power on failed");
            timeline.fail(mac, format!("power on: {e}"));
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
            }
        }
        // A host stopped mid-install would otherwise keep retrying against servers that are
        // gone: power it off.
        let unfinished = bmcs
            .iter()
            .filter(|(mac, _, _)| !timeline.host(*mac).is_some_and(|t| t.installed()));
        for (_, name, bmc) in unfinished {
            if let Err(e) = bmc.power(PowerAction::Off).await {
                tracing::warn!(host = %name, error = %e, "could not power off");
            }
        }
    }
    // Installed hosts boot from disk from now on.
    for (mac, name, bmc) in &bmcs {
        if timeline.host(*mac).is_some_and(|t| t.installed()) {
            let disk = Boot {
                persistence: bmc_power::Persistence::Persistent,
                ..Boot::once(BootDevice::Disk)
            };
            if let Err(e) = bmc.set_boot(disk).await {
                tracing::warn!(host = %name, error = %e, "could not set boot from disk");
            }
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
    Ok(Outcome { timeline, success })
}
