//! The deployment's servers, assembled from components.
//!
//! Each component is built from the plan and the shared [`Context`], adds its HTTP routes and
//! may run one server until the one shutdown signal. Adding a server is adding a file here and
//! one line in the assembly.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};

use pxe_stack::http::Routes;
use pxe_stack::{Event, EventSink, HostLookup, Mac};
use tokio::sync::watch;

use crate::artifacts::Artifacts;
use crate::error::Error;
use crate::layout::Layout;
use crate::plan::Plan;
use crate::state::StateStore;
use crate::status::Status;

mod dhcp;
mod dhcp6;
mod dns;
mod grub;
mod http;
mod http_boot;
mod ignition;
mod leases;
mod ra;
mod report;
mod scripts;
mod signatures;
mod status;
mod tftp;

pub use scripts::ipxe_scripts;
pub use status::serve_status;

/// What every component is built from.
pub(crate) struct Context<'a> {
    /// The deployment.
    pub(crate) plan: &'a Plan,
    /// Its URLs and paths.
    pub(crate) layout: &'a Layout,
    /// Where every server's events go.
    pub(crate) events: Arc<dyn EventSink>,
    /// The DHCP lease table: the host behind an IPv4 address (empty on an IPv6-only network).
    pub(crate) leases: pxe_stack::dhcp::Leases,
    /// The deciding state (`[state]`): the inventory and the shared event log.
    pub(crate) state: Arc<dyn StateStore>,
    /// The DHCPv6 lease table, when the network has IPv6.
    pub(crate) leases6: Option<pxe_stack::dhcp6::Leases6>,
}

impl Context<'_> {
    /// The lease tables as the servers' host lookup: an IPv4 client's MAC from the DHCPv4
    /// leases, an IPv6 client's from the DHCPv6 ones, so per-host routes and the lease-bound
    /// Ignition rule work the same over both.
    pub(crate) fn lookup(&self) -> Arc<dyn HostLookup> {
        match &self.leases6 {
            Some(v6) => Arc::new((self.leases.clone(), v6.clone())),
            None => Arc::new(self.leases.clone()),
        }
    }
}

/// One part of the running deployment: a server, content for the HTTP server, a consumer of
/// events, or several of these.
pub(crate) trait Component: Send {
    /// Adds this component's HTTP routes.
    fn routes(&self, routes: Routes) -> Routes {
        routes
    }

    /// A sink that sees every server's events (after the embedder's own), for components that
    /// follow hosts (metrics, a status page, records that follow leases).
    fn consumer(&self) -> Option<Arc<dyn EventSink>> {
        None
    }

    /// Content this component adds to the TFTP server (consulted before its directory).
    fn tftp(&self) -> Option<Arc<dyn pxe_stack::tftp::Generate>> {
        None
    }

    /// The server this component runs, if any.
    fn service(self: Box<Self>) -> Option<Service> {
        None
    }
}

/// The future a server runs until the shutdown signal.
pub(crate) type Serve = Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send>>;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A server, bound and configured, waiting for its shutdown signal to start.
pub(crate) struct Service {
    name: &'static str,
    start: Box<dyn FnOnce(Shutdown) -> Serve + Send>,
}

impl Service {
    /// A server called `name` that `start` runs until the signal it is given.
    pub(crate) fn new(
        name: &'static str,
        start: impl FnOnce(Shutdown) -> Serve + Send + 'static,
    ) -> Self {
        Service {
            name,
            start: Box::new(start),
        }
    }
}

/// The one shutdown signal, as a future for each server.
#[derive(Clone)]
pub(crate) struct Shutdown(watch::Receiver<bool>);

impl Shutdown {
    /// Resolves when the deployment stops (or is dropped).
    pub(crate) fn wait(self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.0;
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    }
}

/// Starts every server of the plan: DHCP, TFTP, HTTP with the script, Ignition, introspection
/// and report routes, router advertisements when the plan asks for them, and the cluster DNS
/// unless the plan turns it off.
///
/// # Errors
/// A socket that cannot be bound, a DHCP configuration the server refuses, Ignition assets that
/// cannot be loaded, or a script that cannot be generated.
pub async fn start_servers(
    plan: &Plan,
    artifacts: &Artifacts,
    events: Arc<dyn EventSink>,
) -> Result<Servers, Error> {
    // Off by default: without `[status] enabled` nothing follows the events for it.
    let status = plan.status.enabled.then(|| Status::new(plan, artifacts));
    assemble(plan, artifacts, events, status).await
}

/// [`start_servers`] feeding a [`Status`] the embedder holds (it may have counted the
/// artifact downloads already, and outlives the servers). The plan's `[status]` decides
/// whether it is served; it is fed either way.
///
/// # Errors
/// As [`start_servers`], and a status address that cannot be bound.
pub async fn start_servers_with_status(
    plan: &Plan,
    artifacts: &Artifacts,
    events: Arc<dyn EventSink>,
    status: Status,
) -> Result<Servers, Error> {
    assemble(plan, artifacts, events, Some(status)).await
}

async fn assemble(
    plan: &Plan,
    artifacts: &Artifacts,
    events: Arc<dyn EventSink>,
    status: Option<Status>,
) -> Result<Servers, Error> {
    let layout = Layout::new(plan, artifacts);
    let state = crate::state::open_state(plan, layout.inventory_dir()).await?;
    let fanout = Fanout::new(events);
    // DHCP first: its lease tables are every other server's idea of who a host is.
    let stores = leases::LeaseStores::open(plan, &layout).await?;
    let dhcp = dhcp::Dhcp::new(plan, &layout, &stores, Arc::new(fanout.clone())).await?;
    let dhcp6 = dhcp6::Dhcp6::new(plan, &layout, &stores, Arc::new(fanout.clone())).await?;
    let cx = Context {
        plan,
        layout: &layout,
        events: Arc::new(fanout.clone()),
        state: state.clone(),
        leases: dhcp.as_ref().map_or_else(
            || pxe_stack::dhcp::Leases::new(pxe_stack::dhcp::LeaseTable::new()),
            dhcp::Dhcp::leases,
        ),
        leases6: dhcp6.as_ref().map(dhcp6::Dhcp6::leases),
    };
    let ignition = ignition::Ignition::new(&cx)?;
    let introspector = ignition.introspector();

    let mut components: Vec<Box<dyn Component>> = vec![
        Box::new(http_boot::HttpBoot::new(&cx)),
        Box::new(scripts::Scripts::new(&cx)?),
        Box::new(signatures::Signatures::new(&cx)),
        Box::new(report::Report::new(&cx)),
        Box::new(ignition),
    ];
    components.extend(dhcp.map(boxed));
    components.extend(dhcp6.map(boxed));
    if let Some(status) = &status {
        components.push(Box::new(status::StatusPage::new(&cx, status.clone())?));
    }
    components.extend(ra::RouterAdvertisements::new(&cx)?.map(boxed));
    components.extend(dns::Dns::new(&cx)?.map(boxed));
    components.extend(grub::Grub::new(&cx)?.map(boxed));
    // TFTP after the components that add files to it.
    let generators = components.iter().filter_map(|c| c.tftp()).collect();
    components.push(Box::new(tftp::Tftp::new(&cx, generators)?));
    // HTTP last: it serves the routes every other component adds.
    let routes = components.iter().fold(Routes::new(), |r, c| c.routes(r));
    components.push(Box::new(http::Http::new(&cx, routes)?));
    // Nothing has run yet, so every consumer sees every event.
    for c in &components {
        fanout.extend(c.consumer());
    }
    // Last: the state's event log (the shared timeline with `postgres`).
    fanout.extend(Some(state.clone() as Arc<dyn EventSink>));

    let mut servers = Servers::spawn(
        components,
        (cx.leases, cx.leases6),
        layout,
        introspector,
        status,
    );
    servers.events = Arc::new(fanout);
    servers.state = Some(state);
    Ok(servers)
}

/// The host a request is about: its `?mac=` when that parses, else the MAC holding the
/// requester's lease.
pub(crate) fn requested_mac(
    params: &pxe_stack::route::Params,
    req: &pxe_stack::route::RouteRequest,
) -> Option<Mac> {
    params
        .get("mac")
        .and_then(|m| m.parse::<Mac>().ok())
        .or(req.mac)
}

/// The servers' addresses on the provisioning network: IPv4, IPv6 or both, as the plan's
/// family says. TFTP and HTTP listen on each.
pub(crate) fn addresses(plan: &Plan) -> Vec<std::net::IpAddr> {
    let p = &plan.provisioning;
    let v4 = p.address.filter(|_| p.family.has_ipv4()).map(Into::into);
    let v6 = p
        .ipv6
        .as_ref()
        .filter(|_| p.family.has_ipv6())
        .map(|v6| v6.address.into());
    v4.into_iter().chain(v6).collect()
}

fn boxed(c: impl Component + 'static) -> Box<dyn Component> {
    Box::new(c)
}

/// The embedder's event sink, then every component's consumer.
#[derive(Clone)]
struct Fanout(Arc<RwLock<Vec<Arc<dyn EventSink>>>>);

impl Fanout {
    fn new(first: Arc<dyn EventSink>) -> Self {
        Fanout(Arc::new(RwLock::new(vec![first])))
    }

    fn extend(&self, sink: Option<Arc<dyn EventSink>>) {
        if let Some(sink) = sink {
            self.0
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(sink);
        }
    }
}

impl EventSink for Fanout {
    fn emit(&self, event: Event) {
        let sinks = self
            .0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((last, rest)) = sinks.split_last() {
            for sink in rest {
                sink.emit(event.clone());
            }
            last.emit(event);
        }
    }
}

/// The running servers. Dropping it (or [`Servers::shutdown`]) stops them.
pub struct Servers {
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// The DHCP lease table (empty on an IPv6-only network).
    pub leases: pxe_stack::dhcp::Leases,
    /// The DHCPv6 lease table, when the network has IPv6.
    pub leases6: Option<pxe_stack::dhcp6::Leases6>,
    /// The HTTP base URL hosts use (`http://addr:port`).
    pub base_url: String,
    layout: Layout,
    introspector: rhcos_introspect::Introspector,
    events: Arc<dyn EventSink>,
    status: Option<Status>,
    state: Option<Arc<dyn StateStore>>,
}

impl std::fmt::Debug for Servers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Servers")
            .field("base_url", &self.base_url)
            .field("layout", &self.layout)
            .finish_non_exhaustive()
    }
}

impl Servers {
    fn spawn(
        components: Vec<Box<dyn Component>>,
        (leases, leases6): (pxe_stack::dhcp::Leases, Option<pxe_stack::dhcp6::Leases6>),
        layout: Layout,
        introspector: rhcos_introspect::Introspector,
        status: Option<Status>,
    ) -> Self {
        let (stop, stopped) = watch::channel(false);
        let tasks = components
            .into_iter()
            .filter_map(|c| c.service())
            .map(|service| {
                let serve = (service.start)(Shutdown(stopped.clone()));
                let name = service.name;
                tokio::spawn(async move {
                    if let Err(e) = serve.await {
                        tracing::error!(server = name, error = %e, "server stopped");
                    }
                })
            })
            .collect();
        Servers {
            stop,
            tasks,
            leases,
            leases6,
            base_url: layout.base_url().to_owned(),
            layout,
            introspector,
            events: Arc::new(pxe_stack::Discard),
            status,
            state: None,
        }
    }

    /// The lease tables as one host lookup: DHCPv4's, then DHCPv6's (what every server names
    /// hosts by).
    pub fn lookup(&self) -> Arc<dyn HostLookup> {
        match &self.leases6 {
            Some(v6) => Arc::new((self.leases.clone(), v6.clone())),
            None => Arc::new(self.leases.clone()),
        }
    }

    /// Stops every server and waits for them.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
    }

    /// The deployment's URLs and paths.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Where events about the deployment's hosts go (the BMC actions of [`run`](crate::run)):
    /// the embedder's sink, then every component's, as for the servers' own events.
    pub fn events(&self) -> Arc<dyn EventSink> {
        self.events.clone()
    }

    /// The deployment's live status and metrics, when the plan enables them or the embedder
    /// gave one ([`start_servers_with_status`]).
    pub fn status(&self) -> Option<&Status> {
        self.status.as_ref()
    }

    /// The deciding state the plan's `[state]` names: the inventory and the event log (with
    /// `postgres`, every server's events: the shared timeline).
    pub fn state(&self) -> Option<Arc<dyn StateStore>> {
        self.state.clone()
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
