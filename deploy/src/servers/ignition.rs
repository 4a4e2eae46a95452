//! Ignition for hosts with a fixed role (`/ignition`), and introspection for the others
//! (`/introspection`, `/inventory`): both answer with the role's config from one store. An
//! introspected host then fetches its coreos-installer config (`/install-config`): the disk
//! introspection chose and the metal image for its sector size.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use ignition_serve::{Group, Profile, Selector};
use pxe_stack::Mac;
use pxe_stack::http::Routes;
use pxe_stack::route::{Handler, HandlerFuture, Params, RouteRequest, reply};
use rhcos_introspect::Introspector;

use super::{Component, Context, requested_mac};
use crate::error::Error;
use crate::layout::Layout;
use crate::plan::Role;

/// The Ignition store, its route and the introspection service built on it.
pub(crate) struct Ignition {
    route: ignition_serve::Route,
    introspector: Introspector,
    install: Arc<InstallConfigs>,
    admin: Arc<[IpAddr]>,
}

/// `/inventory` (every host's hardware) for administrators only: loopback and the plan's
/// [`admin_allow`](crate::plan::Provisioning::admin_allow) addresses read everything; a host
/// reads its own record, `/inventory/<its mac>`, from the address holding its lease; anyone
/// else gets 403.
struct AdminOnly {
    inner: Introspector,
    admin: Arc<[IpAddr]>,
}

/// Whether `peer` may see `path` under `/inventory` (see [`AdminOnly`]); `holder` is the MAC
/// whose lease `peer` holds.
fn inventory_allowed(admin: &[IpAddr], peer: IpAddr, holder: Option<Mac>, path: &str) -> bool {
    let own = path
        .strip_prefix(Layout::INVENTORY)
        .and_then(|rest| rest.strip_prefix('/'))
        .and_then(|m| m.parse::<Mac>().ok());
    host_or_admin(admin, peer, holder, own)
}

/// Whether `peer` may read what belongs to host `asked`: loopback and the plan's admin
/// addresses may read any host's, the address holding `asked`'s lease (`holder`) its own.
fn host_or_admin(admin: &[IpAddr], peer: IpAddr, holder: Option<Mac>, asked: Option<Mac>) -> bool {
    let peer = peer.to_canonical();
    if peer.is_loopback() || admin.iter().any(|a| a.to_canonical() == peer) {
        return true;
    }
    asked.is_some() && asked == holder
}

impl Handler for AdminOnly {
    fn handle(&self, req: RouteRequest) -> HandlerFuture<'_> {
        if inventory_allowed(
            &self.admin,
            req.peer.ip(),
            req.mac,
            req.request.uri().path(),
        ) {
            return self.inner.handle(req);
        }
        tracing::warn!(peer = %req.peer, path = %req.request.uri().path(), "inventory refused: not an admin address (provisioning.admin_allow)");
        Box::pin(async { reply::error(StatusCode::FORBIDDEN, "admin addresses only") })
    }
}

/// What an introspected host's install config is made of, besides the introspection answer.
struct InstallConfigs {
    /// The plan's sector size for each introspected host (`None`: introspection decides).
    hosts: HashMap<Mac, Option<u32>>,
    /// The 512-byte and 4k image URLs, unless live installs copy the live system.
    image: Option<String>,
    image_4k: Option<String>,
}

impl InstallConfigs {
    /// The YAML for coreos-installer's `/etc/coreos/installer.d/`, or why there is none yet.
    fn render(
        &self,
        introspector: &Introspector,
        mac: Mac,
    ) -> Result<String, (StatusCode, &'static str)> {
        let planned = self.hosts.get(&mac).ok_or((
            StatusCode::NOT_FOUND,
            "not an introspected host of this plan",
        ))?;
        let device = introspector
            .install_dev(mac)
            .ok_or((StatusCode::SERVICE_UNAVAILABLE, "not introspected yet"))?;
        let sector_size = planned.or(introspector.sector_size(mac)).unwrap_or(512);
        let mut yaml = format!(
            "# rhcos-metal: the disk and image introspection chose for {}\n",
            mac.hexhyp()
        );
        let _ = writeln!(yaml, "dest-device: {device}");
        if self.image.is_some() {
            let image = match sector_size {
                4096 => self.image_4k.as_ref(),
                _ => self.image.as_ref(),
            }
            .ok_or((
                StatusCode::CONFLICT,
                "the disk has 4096-byte sectors and the metadata has no 4k image",
            ))?;
            let _ = writeln!(yaml, "image-url: {image}");
        }
        Ok(yaml)
    }
}

impl Ignition {
    pub(crate) fn new(cx: &Context<'_>) -> Result<Self, Error> {
        // One group per host with a fixed role.
        let mut store = ignition_serve::Store::load_dir(&cx.plan.cluster.assets)?;
        for h in &cx.plan.hosts {
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
        let route = ignition_serve::Route::new(
            store,
            cx.lookup(),
            cx.events.clone(),
            ignition_serve::Options::default(),
        );
        // The plan's rules decide introspected hosts' roles and disks.
        let settings = rhcos_introspect::Settings {
            rules: cx.plan.introspection.clone(),
            ..Default::default()
        };
        let introspector = Introspector::builder(settings)
            .lookup(cx.lookup())
            .events(cx.events.clone())
            .build(
                rhcos_introspect::IgnitionConfigs::from_route(route.clone()),
                crate::state::Inventory(cx.state.clone()),
            )?;
        let a = cx.layout.artifacts();
        let install = Arc::new(InstallConfigs {
            hosts: cx
                .plan
                .hosts
                .iter()
                .filter(|h| h.role == Role::Introspect)
                .map(|h| (h.mac, h.sector_size))
                .collect(),
            image: a.image.as_ref().map(|i| cx.layout.url(i)),
            image_4k: a.image_4k.as_ref().map(|i| cx.layout.url(i)),
        });
        Ok(Ignition {
            route,
            introspector,
            install,
            admin: cx.plan.provisioning.admin_allow.clone().into(),
        })
    }

    /// The introspection service, for the install disks it chose.
    pub(crate) fn introspector(&self) -> Introspector {
        self.introspector.clone()
    }
}

impl Component for Ignition {
    fn routes(&self, routes: Routes) -> Routes {
        let (install, introspector) = (self.install.clone(), self.introspector.clone());
        let admin = self.admin.clone();
        routes
            .exact(Layout::INSTALL_CONFIG, move |req: RouteRequest| {
                let (install, introspector) = (install.clone(), introspector.clone());
                let admin = admin.clone();
                async move {
                    let mac = match Params::of(&req.request) {
                        Ok(params) => requested_mac(&params, &req),
                        Err(_) => req.mac,
                    };
                    let Some(mac) = mac else {
                        return reply::error(StatusCode::BAD_REQUEST, "need mac");
                    };
                    // The chosen disk is the host's own business, as its inventory is.
                    if !host_or_admin(&admin, req.peer.ip(), req.mac, Some(mac)) {
                        tracing::warn!(peer = %req.peer, mac = %mac, "install config refused: not the host's lease nor an admin address");
                        return reply::error(StatusCode::FORBIDDEN, "the host itself or admin addresses only");
                    }
                    match install.render(&introspector, mac) {
                        Ok(yaml) => reply::ok("application/yaml", yaml),
                        Err((StatusCode::SERVICE_UNAVAILABLE, why)) => {
                            reply::not_ready(Duration::from_secs(2), why)
                        }
                        Err((status, why)) => reply::error(status, why),
                    }
                }
            })
            .prefix(Layout::IGNITION, self.route.clone())
            .exact_with_limit(
                Layout::INTROSPECTION,
                self.introspector.body_limit(),
                Arc::new(self.introspector.clone()),
            )
            .prefix(
                Layout::INVENTORY,
                AdminOnly {
                    inner: self.introspector.clone(),
                    admin: self.admin.clone(),
                },
            )
    }
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use pxe_stack::dhcp::{Lease, LeaseTable, Leases, State, unix_secs};

    use super::*;
    use crate::servers::Component;
    use crate::{Artifacts, Plan};

    #[test]
    fn inventory_is_for_admins_and_the_host_itself() {
        let admin: Vec<IpAddr> = vec!["10.0.0.5".parse().unwrap()];
        let m: Mac = "52:54:00:12:60:01".parse().unwrap();
        let other: Mac = "52:54:00:12:60:02".parse().unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        for (peer, holder, path, ok) in [
            ("127.0.0.1", None, "/inventory", true),
            ("::1", None, "/inventory", true),
            ("10.0.0.5", None, "/inventory", true),
            ("::ffff:10.0.0.5", None, "/inventory", true),
            ("10.0.0.6", None, "/inventory", false),
            ("10.0.0.6", Some(m), "/inventory", false),
            ("10.0.0.6", Some(m), "/inventory/52-54-00-12-60-01", true),
            (
                "10.0.0.6",
                Some(other),
                "/inventory/52-54-00-12-60-01",
                false,
            ),
            ("10.0.0.6", None, "/inventory/52-54-00-12-60-01", false),
        ] {
            assert_eq!(
                inventory_allowed(&admin, ip(peer), holder, path),
                ok,
                "{peer} {holder:?} {path}"
            );
        }
    }

    /// Assets, plan and layout for the route tests: master-0 (`52:54:00:12:60:01`) on a plan
    /// whose provisioning address is `address`/`prefix`, with `extra` provisioning lines.
    fn fixture(dir: &std::path::Path, address: &str, prefix: u8, extra: &str) -> (Plan, Layout) {
        let assets = dir.join("assets");
        std::fs::create_dir_all(&assets).unwrap();
        for role in ["master", "worker"] {
            std::fs::write(
                assets.join(format!("{role}.ign")),
                br#"{"ignition":{"version":"3.2.0"}}"#,
            )
            .unwrap();
        }
        let plan = Plan::parse(
            &format!(
                "[cluster]\nname = \"ocp\"\nbase_domain = \"example.com\"\nassets = \"{}\"\n\
                 [images]\nstream = \"stream.json\"\n\
                 [provisioning]\ninterface = \"lo\"\naddress = \"{address}\"\nprefix = {prefix}\n{extra}\n\
                 [[hosts]]\nname = \"master-0\"\nmac = \"52:54:00:12:60:01\"\nrole = \"master\"\n",
                assets.display()
            ),
            "plan.toml",
        )
        .unwrap();
        let artifacts = Artifacts::for_tests(dir.to_owned());
        let layout = Layout::new(&plan, &artifacts);
        (plan, layout)
    }

    /// The HTTP server with the Ignition component's routes on `listener`, until `stop`.
    fn serve(
        plan: &Plan,
        layout: &Layout,
        leases: &Leases,
        listener: tokio::net::TcpListener,
        stop: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> tokio::task::JoinHandle<Result<(), pxe_stack::http::Error>> {
        let cx = crate::servers::Context {
            plan,
            layout,
            events: Arc::new(pxe_stack::Discard),
            leases: leases.clone(),
            state: crate::state::for_tests(layout),
            leases6: None,
        };
        let routes = Ignition::new(&cx)
            .unwrap()
            .routes(pxe_stack::http::Routes::new());
        tokio::spawn(
            pxe_stack::http::Server::new(pxe_stack::http::Config::default())
                .with_routes(routes)
                .with_lookup(Arc::new(leases.clone()))
                .serve(listener, stop),
        )
    }

    fn bound(addr: [u8; 4], mac: &str) -> Lease {
        Lease {
            addr: std::net::Ipv4Addr::from(addr),
            mac: mac.parse().unwrap(),
            expires: unix_secs(std::time::SystemTime::now()) + 600,
            hostname: None,
            state: State::Bound,
            client_id: None,
        }
    }

    /// `Some(())` when `tools` are here (and root, for namespaces), else skip; under
    /// `CI=true` a missing one fails.
    fn have(tools: &[&str], root: bool) -> Option<()> {
        let missing = tools
            .iter()
            .find(|t| Command::new(t).arg("-V").output().is_err())
            .map(|t| t.to_string())
            .or_else(|| (root && !nix_root()).then(|| "root".to_string()));
        let Some(what) = missing else {
            return Some(());
        };
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{what} is missing (scripts/install-deps.sh installs the tools; CI runs as root)"
        );
        eprintln!("skipping: {what} is missing");
        None
    }

    fn nix_root() -> bool {
        Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
    }

    /// curl as the peer on loopback: `/ignition` for a host of the plan without a lease is
    /// 503 with Retry-After, 403 from an address that is not the host's lease, 200 from it;
    /// `/inventory` answers loopback, and refuses an address `admin_allow` does not name when
    /// loopback is not the peer (checked by the pure rule above).
    #[tokio::test]
    async fn ignition_waits_for_the_lease_and_inventory_answers_loopback() {
        if have(&["curl"], false).is_none() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let (plan, layout) = fixture(dir.path(), "127.0.0.1", 8, "");
        let leases = Leases::new(LeaseTable::new());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = serve(&plan, &layout, &leases, listener, async {
            let _ = stopped.await;
        });
        // curl from `from` (a loopback address): status line and headers.
        let curl = move |path: &str, from: &str| {
            let out = Command::new("curl")
                .args(["-s", "-D", "-", "-o", "/dev/null", "--interface", from])
                .arg(format!("{base}{path}"))
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).to_lowercase()
        };
        let ign = "/ignition?mac=52:54:00:12:60:01";
        let (early, inventory) = {
            let curl = curl.clone();
            tokio::task::spawn_blocking(move || {
                (curl(ign, "127.0.0.2"), curl("/inventory", "127.0.0.1"))
            })
            .await
            .unwrap()
        };
        assert!(early.starts_with("http/1.1 503"), "{early}");
        assert!(early.contains("retry-after: 5"), "{early}");
        assert!(inventory.starts_with("http/1.1 200"), "{inventory}");
        // The host's lease is at 127.0.0.2: 127.0.0.3 is refused, 127.0.0.2 served.
        leases
            .write()
            .insert(bound([127, 0, 0, 2], "52:54:00:12:60:01"));
        let (wrong, right) =
            tokio::task::spawn_blocking(move || (curl(ign, "127.0.0.3"), curl(ign, "127.0.0.2")))
                .await
                .unwrap();
        assert!(wrong.starts_with("http/1.1 403"), "{wrong}");
        assert!(right.starts_with("http/1.1 200"), "{right}");
        let _ = stop.send(());
        let _ = server.await;
    }

    const NS_ENV: &str = "INVENTORY_TEST_CHILD";

    /// Not a test on its own: the server of `netns_inventory_refuses_other_addresses`, run
    /// inside its namespace. master-0 holds a lease at 10.99.0.2; 10.99.0.3 is an admin.
    #[test]
    fn child_inventory_server() {
        let Ok(dir) = std::env::var(NS_ENV) else {
            return;
        };
        let dir = std::path::PathBuf::from(dir);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (plan, layout) = fixture(&dir, "10.99.0.1", 24, "admin_allow = [\"10.99.0.3\"]");
            let leases = Leases::new(LeaseTable::new());
            leases
                .write()
                .insert(bound([10, 99, 0, 2], "52:54:00:12:60:01"));
            let listener = tokio::net::TcpListener::bind("10.99.0.1:0").await.unwrap();
            // libtest writes "test <name> ... " before this on the same line.
            println!("inventory-port={}", listener.local_addr().unwrap().port());
            let server = serve(&plan, &layout, &leases, listener, std::future::pending());
            let _ = server.await;
        });
    }

    /// `/inventory` from real peers on a provisioning network (a namespace the test creates,
    /// curl as the client): an address that is neither loopback nor in `admin_allow` gets 403,
    /// also for another host's record; the admin address and loopback get the listing; the
    /// host holding a lease reads its own record. `/install-config?mac=` likewise.
    #[test]
    fn netns_inventory_refuses_other_addresses() {
        use std::io::BufRead;
        if have(&["curl", "ip"], true).is_none() {
            return;
        }
        struct Guard(String, Option<std::process::Child>);
        impl Drop for Guard {
            fn drop(&mut self) {
                if let Some(c) = &mut self.1 {
                    let _ = c.kill();
                    let _ = c.wait();
                }
                let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
            }
        }
        let ns = format!("inv-{}", std::process::id());
        let mut guard = Guard(ns.clone(), None);
        let run = |args: &[&str]| {
            let ok = Command::new("ip")
                .args(["netns", "exec", &ns])
                .args(args)
                .status()
                .unwrap()
                .success();
            assert!(ok, "{args:?}");
        };
        assert!(
            Command::new("ip")
                .args(["netns", "add", &ns])
                .status()
                .unwrap()
                .success()
        );
        run(&["ip", "link", "set", "lo", "up"]);
        run(&[
            "ip", "link", "add", "prov0", "type", "veth", "peer", "name", "prov1",
        ]);
        run(&["ip", "link", "set", "prov1", "up"]);
        for a in [
            "10.99.0.1/24",
            "10.99.0.2/24",
            "10.99.0.3/24",
            "10.99.0.4/24",
        ] {
            run(&["ip", "addr", "add", a, "dev", "prov0"]);
        }
        run(&["ip", "link", "set", "prov0", "up"]);
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new("ip")
            .args(["netns", "exec", &ns])
            .arg(std::env::current_exe().unwrap())
            .args([
                "servers::ignition::tests::child_inventory_server",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(NS_ENV, dir.path())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        guard.1 = Some(child);
        let port = std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find_map(|l| {
                l.split_once("inventory-port=")
                    .map(|(_, p)| p.trim().to_owned())
            })
            .expect("the server child is ready");
        let status = |from: &str, path: &str| {
            let out = Command::new("ip")
                .args(["netns", "exec", &ns, "curl", "-s", "-o", "/dev/null"])
                .args(["-m", "60", "-w", "%{http_code}", "--interface", from])
                .arg(format!("http://10.99.0.1:{port}{path}"))
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        let own = "/inventory/52-54-00-12-60-01";
        let other = "/inventory/52-54-00-12-60-02";
        assert_eq!(status("10.99.0.4", "/inventory"), "403");
        assert_eq!(status("10.99.0.4", own), "403");
        assert_eq!(status("10.99.0.2", "/inventory"), "403");
        assert_eq!(status("10.99.0.2", other), "403");
        assert_ne!(status("10.99.0.2", own), "403");
        assert_eq!(status("10.99.0.3", "/inventory"), "200");
        assert_eq!(status("127.0.0.1", "/inventory"), "200");
        // The install config (the disk introspection chose) follows the same rule.
        let own = "/install-config?mac=52-54-00-12-60-01";
        let other = "/install-config?mac=52-54-00-12-60-02";
        assert_eq!(status("10.99.0.4", own), "403");
        assert_eq!(status("10.99.0.2", other), "403");
        assert_ne!(status("10.99.0.2", own), "403");
        assert_ne!(status("10.99.0.3", other), "403");
    }
}
