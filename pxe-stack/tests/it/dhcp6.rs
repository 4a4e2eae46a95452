//! The DHCPv6 server against ISC dhclient -6, directly and through ISC dhcrelay -6, inside
//! network namespaces the tests create.
//!
//! Topology: `client` — veth — `server` for direct exchanges; `client` — veth — `relay` —
//! veth — `server` for relayed ones (the client's link is `fd00:78::/64`, the server's
//! `fd00:77::/64`). The server runs in a thread of the test that entered the server namespace
//! (`setns` affects only that thread), so the test reads its lease table directly. Namespaces,
//! processes and the server are removed by Drop guards, also on failure. Without root or the
//! programs the tests print why and return, except under `CI=true`, where they fail.

use std::fs;
use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use pxe_stack::dhcp6::{
    Config, LeaseFile6, Leases6, Range6, Reservation6, Server, State6, Subnet6, bind,
};
use pxe_stack::{HostLookup, Mac, Recorder};

use crate::common::have;

/// A guard against a hung peer, not a timing claim: the exchanges take well under a second.
const HANG: Duration = Duration::from_secs(120);

static NEXT: AtomicU32 = AtomicU32::new(0);

fn ip(args: &[&str]) {
    let st = Command::new("ip").args(args).status().unwrap();
    assert!(st.success(), "ip {args:?}");
}

fn in_ns(ns: &str, args: &[&str]) {
    let st = Command::new("ip")
        .args(["netns", "exec", ns])
        .args(args)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success(), "in {ns}: {args:?}");
}

/// Namespaces and a scratch directory, deleted on drop.
struct Lab {
    tag: String,
    names: Vec<String>,
    dir: tempfile::TempDir,
}

impl Lab {
    fn new() -> Lab {
        let tag = format!(
            "{}{}",
            std::process::id() % 100_000,
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        Lab {
            tag,
            names: Vec::new(),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn ns(&mut self, role: &str) -> String {
        let name = format!("d6{role}-{}", self.tag);
        ip(&["netns", "add", &name]);
        in_ns(&name, &["ip", "link", "set", "lo", "up"]);
        self.names.push(name.clone());
        name
    }

    /// A veth pair between two namespaces: returns the two interface names. No DAD, EUI-64
    /// link-local addresses, `mac_b` on the `b` end when given.
    fn link(&self, a: &str, b: &str, n: u8, mac_b: Option<&str>) -> (String, String) {
        let (ia, ib) = (format!("v6a{}{n}", self.tag), format!("v6b{}{n}", self.tag));
        ip(&[
            "link", "add", &ia, "netns", a, "type", "veth", "peer", "name", &ib, "netns", b,
        ]);
        for (ns, i) in [(a, &ia), (b, &ib)] {
            in_ns(
                ns,
                &[
                    "sysctl",
                    "-q",
                    "-w",
                    &format!("net.ipv6.conf.{i}.accept_dad=0"),
                ],
            );
            in_ns(ns, &["ip", "link", "set", i, "addrgenmode", "eui64"]);
        }
        if let Some(mac) = mac_b {
            in_ns(b, &["ip", "link", "set", &ib, "address", mac]);
        }
        in_ns(a, &["ip", "link", "set", &ia, "up"]);
        in_ns(b, &["ip", "link", "set", &ib, "up"]);
        // The kernel adds the link-local addresses once both ends have carrier; dhclient -6
        // gives up at once without one.
        for (ns, i) in [(a, &ia), (b, &ib)] {
            wait_for("a link-local address", || {
                let out = Command::new("ip")
                    .args([
                        "netns", "exec", ns, "ip", "-6", "-o", "addr", "show", "dev", i,
                    ])
                    .args(["scope", "link", "-tentative"])
                    .output()
                    .unwrap();
                String::from_utf8_lossy(&out.stdout).contains("fe80::")
            });
        }
        (ia, ib)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in &self.names {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// A child process killed and reaped on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The server, serving in a thread that entered the server namespace; stopped on drop.
struct Running {
    leases: Leases6,
    events: Recorder,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Running {
    fn start(ns: &str, iface: &str, config: Config, lease_file: &Path) -> Running {
        Self::start_with(ns, iface, config, lease_file, false)
    }

    /// As [`Running::start`]; with `ra`, router advertisements for DHCPv6 (managed and other
    /// set) beside it, once a second.
    fn start_with(ns: &str, iface: &str, config: Config, lease_file: &Path, ra: bool) -> Running {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready) = std::sync::mpsc::channel();
        let (ns, iface, lease_file) = (ns.to_owned(), iface.to_owned(), lease_file.to_owned());
        let events = Recorder::new();
        let sink = events.clone();
        let thread = std::thread::spawn(move || {
            let f = fs::File::open(format!("/var/run/netns/{ns}")).unwrap();
            nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let socket = bind(Some(&iface), 547).unwrap();
                #[cfg(feature = "ipv6-ra")]
                if ra {
                    use pxe_stack::ra;
                    let ad = ra::Advertisement::for_dhcp6(config.subnets[0].prefix);
                    let socket = ra::bind(&iface).unwrap();
                    let server = ra::Server::new(ad).with_interval(Duration::from_secs(1));
                    tokio::spawn(server.serve(socket, std::future::pending()));
                }
                #[cfg(not(feature = "ipv6-ra"))]
                assert!(!ra, "router advertisements need the ipv6-ra feature");
                let server = Server::new(config)
                    .unwrap()
                    .with_lease_file(LeaseFile6::new(lease_file))
                    .unwrap()
                    .with_events(std::sync::Arc::new(sink));
                ready_tx.send(server.leases()).unwrap();
                server
                    .serve(socket, async move {
                        let _ = stopped.await;
                    })
                    .await
                    .unwrap();
            });
        });
        let leases = ready.recv().expect("the server thread started");
        Running {
            leases,
            events,
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

const CLIENT_MAC: &str = "52:54:00:77:00:09";
const RESERVED: &str = "fd00:77::9";

fn config(lease_secs: u32) -> Config {
    let mut local = Subnet6::new("fd00:77::".parse().unwrap(), 64);
    local.pool = Some(Range6 {
        start: "fd00:77::100".parse().unwrap(),
        end: "fd00:77::1ff".parse().unwrap(),
    });
    let mut relayed = Subnet6::new("fd00:78::".parse().unwrap(), 64);
    relayed.pool = Some(Range6 {
        start: "fd00:78::100".parse().unwrap(),
        end: "fd00:78::1ff".parse().unwrap(),
    });
    Config {
        server_addr: "fd00:77::1".parse().unwrap(),
        subnets: vec![local, relayed],
        reservations: vec![Reservation6 {
            mac: CLIENT_MAC.parse().unwrap(),
            addr: RESERVED.parse().unwrap(),
            hostname: Some("master-0".into()),
        }],
        dns: vec!["fd00:77::53".parse().unwrap()],
        lease_secs,
        ..Config::default()
    }
}

/// dhclient -6 in `ns` on `iface`, its script appending "reason address" lines to `log`.
struct Dhclient {
    proc: Proc,
    err: PathBuf,
    log: PathBuf,
}

impl Dhclient {
    fn start(lab: &Lab, ns: &str, iface: &str, name: &str, duid_type: &str) -> Dhclient {
        Self::start_with(lab, ns, iface, name, duid_type, "")
    }

    /// As [`Dhclient::start`], with `conf` as its dhclient.conf.
    fn start_with(
        lab: &Lab,
        ns: &str,
        iface: &str,
        name: &str,
        duid_type: &str,
        conf: &str,
    ) -> Dhclient {
        let cf = lab.path(&format!("{name}.conf"));
        fs::write(&cf, conf).unwrap();
        let log = lab.path(&format!("{name}.log"));
        let script = lab.path(&format!("{name}.sh"));
        fs::write(
            &script,
            format!(
                "#!/bin/sh\necho \"$reason $new_ip6_address $new_dhcp6_name_servers\" >> {}\nexit 0\n",
                log.display()
            ),
        )
        .unwrap();
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
        }
        let child = Command::new("ip")
            .args([
                "netns", "exec", ns, "dhclient", "-6", "-1", "-d", "-D", duid_type,
            ])
            .arg("-cf")
            .arg(&cf)
            .arg("-sf")
            .arg(&script)
            .arg("-lf")
            .arg(lab.path(&format!("{name}.leases")))
            .arg("-pf")
            .arg(lab.path(&format!("{name}.pid")))
            .arg(iface)
            .stdout(Stdio::null())
            .stderr(fs::File::create(lab.path(&format!("{name}.err"))).unwrap())
            .spawn()
            .unwrap();
        Dhclient {
            err: lab.path(&format!("{name}.err")),
            proc: Proc(child),
            log,
        }
    }

    /// Waits for a script line with `reason`; returns its fields.
    fn wait(&mut self, reason: &str) -> Vec<String> {
        let start = Instant::now();
        loop {
            let text = fs::read_to_string(&self.log).unwrap_or_default();
            if let Some(line) = text.lines().find(|l| l.split(' ').next() == Some(reason)) {
                return line.split(' ').map(str::to_owned).collect();
            }
            if let Some(status) = self.proc.0.try_wait().unwrap() {
                let err = fs::read_to_string(&self.err).unwrap_or_default();
                panic!("dhclient exited ({status}) before {reason}; script saw:\n{text}\n{err}");
            }
            assert!(
                start.elapsed() < HANG,
                "no {reason} from dhclient; script saw:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `dhclient -6 -r`: stops the running client (pid file) and sends a Release.
    fn release(self, lab: &Lab, ns: &str, iface: &str, name: &str) {
        let st = Command::new("ip")
            .args([
                "netns",
                "exec",
                ns,
                "dhclient",
                "-6",
                "-r",
                "-sf",
                "/bin/true",
                "-lf",
            ])
            .arg(lab.path(&format!("{name}.leases")))
            .arg("-pf")
            .arg(lab.path(&format!("{name}.pid")))
            .arg(iface)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(st.success(), "dhclient -6 -r: {st}");
        drop(self);
    }
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < HANG, "waited too long for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn netns_dhclient6_binds_renews_and_releases() {
    if !have(&["root", "ip", "dhclient"]) {
        return;
    }
    let mut lab = Lab::new();
    let (server_ns, client_ns) = (lab.ns("s"), lab.ns("c"));
    let (s_if, c_if) = lab.link(&server_ns, &client_ns, 0, Some("52:54:00:77:00:21"));
    in_ns(
        &server_ns,
        &[
            "ip",
            "-6",
            "addr",
            "add",
            "fd00:77::1/64",
            "dev",
            &s_if,
            "nodad",
        ],
    );
    // Six seconds: T1 three, so dhclient renews during the test.
    let server = Running::start(&server_ns, &s_if, config(6), &lab.path("leases6.json"));
    let mac: Mac = "52:54:00:77:00:21".parse().unwrap();

    let mut client = Dhclient::start(&lab, &client_ns, &c_if, "c", "LL");
    let bound = client.wait("BOUND6");
    assert_eq!(bound[1], "fd00:77::100", "{bound:?}");
    assert_eq!(bound[2], "fd00:77::53", "{bound:?}");
    let addr: Ipv6Addr = bound[1].parse().unwrap();
    // On disk before the Reply left; and a host lookup for the HTTP routes.
    let on_disk = LeaseFile6::new(lab.path("leases6.json")).load().unwrap();
    assert_eq!(on_disk.len(), 1);
    assert_eq!((on_disk[0].addr, on_disk[0].mac), (addr, mac));
    assert_eq!(server.leases.mac_for(addr.into()), Some(mac));
    assert_eq!(server.leases.addr_for(mac), Some(addr.into()));

    let renewed = client.wait("RENEW6");
    assert_eq!(renewed[1], "fd00:77::100", "{renewed:?}");
    client.release(&lab, &client_ns, &c_if, "c");
    // The table changes before the lease file is written (and then the Reply sent): wait for
    // the file.
    wait_for("the release on disk", || {
        let on_disk = LeaseFile6::new(lab.path("leases6.json")).load().unwrap();
        on_disk.first().map(|l| l.state) == Some(State6::Released)
    });
    assert_eq!(
        server.leases.read().get(addr).unwrap().state,
        State6::Released
    );
    assert_eq!(server.leases.mac_for(addr.into()), None);
    // Events go out after the replies.
    wait_for("the release event", || {
        server.events.events().iter().any(|e| {
            matches!(
                e.kind,
                pxe_stack::EventKind::Dhcp {
                    step: pxe_stack::DhcpStep::Release,
                    ..
                }
            ) && e.mac == Some(mac)
        })
    });
}

#[test]
fn netns_reservation_holds_across_dhclient_duid_types() {
    if !have(&["root", "ip", "dhclient"]) {
        return;
    }
    let mut lab = Lab::new();
    let (server_ns, client_ns) = (lab.ns("s"), lab.ns("c"));
    let (s_if, c_if) = lab.link(&server_ns, &client_ns, 0, Some(CLIENT_MAC));
    in_ns(
        &server_ns,
        &[
            "ip",
            "-6",
            "addr",
            "add",
            "fd00:77::1/64",
            "dev",
            &s_if,
            "nodad",
        ],
    );
    let server = Running::start(&server_ns, &s_if, config(600), &lab.path("leases6.json"));
    let mac: Mac = CLIENT_MAC.parse().unwrap();
    let mut duids = Vec::new();
    for (name, kind) in [("ll", "LL"), ("llt", "LLT")] {
        let mut client = Dhclient::start(&lab, &client_ns, &c_if, name, kind);
        let bound = client.wait("BOUND6");
        assert_eq!(bound[1], RESERVED, "{kind}: {bound:?}");
        drop(client);
        duids.push(server.leases.read().for_mac(mac).unwrap().duid.clone());
    }
    // Two DUIDs (type 3, then type 1), one host, one address, one lease.
    assert!(duids[0].starts_with("0003"), "{duids:?}");
    assert!(duids[1].starts_with("0001"), "{duids:?}");
    assert_eq!(server.leases.snapshot().len(), 1);
}

#[test]
fn netns_dhclient6_through_dhcrelay() {
    if !have(&["root", "ip", "dhclient", "dhcrelay"]) {
        return;
    }
    let mut lab = Lab::new();
    let (server_ns, relay_ns, client_ns) = (lab.ns("s"), lab.ns("r"), lab.ns("c"));
    let (s_if, up_if) = lab.link(&server_ns, &relay_ns, 0, None);
    let (down_if, c_if) = lab.link(&relay_ns, &client_ns, 1, Some("52:54:00:78:00:05"));
    in_ns(
        &server_ns,
        &[
            "ip",
            "-6",
            "addr",
            "add",
            "fd00:77::1/64",
            "dev",
            &s_if,
            "nodad",
        ],
    );
    in_ns(
        &relay_ns,
        &[
            "ip",
            "-6",
            "addr",
            "add",
            "fd00:77::2/64",
            "dev",
            &up_if,
            "nodad",
        ],
    );
    in_ns(
        &relay_ns,
        &[
            "ip",
            "-6",
            "addr",
            "add",
            "fd00:78::1/64",
            "dev",
            &down_if,
            "nodad",
        ],
    );
    let server = Running::start(&server_ns, &s_if, config(600), &lab.path("leases6.json"));
    // -I: the relay adds an Interface-ID, which the Relay-Reply must echo for it to deliver.
    let relay = Command::new("ip")
        .args([
            "netns", "exec", &relay_ns, "dhcrelay", "-6", "-d", "-I", "-pf",
        ])
        .arg(lab.path("dhcrelay.pid"))
        .arg("-l")
        .arg(&down_if)
        .arg("-u")
        .arg(format!("fd00:77::1%{up_if}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _relay = Proc(relay);
    let mut client = Dhclient::start(&lab, &client_ns, &c_if, "c", "LLT");
    let bound = client.wait("BOUND6");
    // The relayed link's pool, the host named by its EUI-64 link-local (the relay's peer).
    assert_eq!(bound[1], "fd00:78::100", "{bound:?}");
    let mac: Mac = "52:54:00:78:00:05".parse().unwrap();
    assert_eq!(
        server.leases.addr_for(mac),
        Some("fd00:78::100".parse::<Ipv6Addr>().unwrap().into())
    );
}

#[test]
fn netns_dhclient6_information_request() {
    if !have(&["root", "ip", "dhclient"]) {
        return;
    }
    let mut lab = Lab::new();
    let (server_ns, client_ns) = (lab.ns("s"), lab.ns("c"));
    let (s_if, c_if) = lab.link(&server_ns, &client_ns, 0, Some("52:54:00:77:00:31"));
    in_ns(
        &server_ns,
        &[
            "ip",
            "-6",
            "addr",
            "add",
            "fd00:77::1/64",
            "dev",
            &s_if,
            "nodad",
        ],
    );
    let server = Running::start(&server_ns, &s_if, config(600), &lab.path("leases6.json"));
    // -S: stateless, an Information-request: the DNS servers, no address, no lease.
    let log = lab.path("info.log");
    let script = lab.path("info.sh");
    fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"$reason $new_ip6_address $new_dhcp6_name_servers\" >> {}\nexit 0\n",
            log.display()
        ),
    )
    .unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    }
    let child = Command::new("ip")
        .args([
            "netns", "exec", &client_ns, "dhclient", "-6", "-S", "-1", "-d", "-sf",
        ])
        .arg(&script)
        .arg("-lf")
        .arg(lab.path("info.leases"))
        .arg("-pf")
        .arg(lab.path("info.pid"))
        .arg(&c_if)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _client = Proc(child);
    wait_for("the stateless configuration", || {
        fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .any(|l| l.ends_with(" fd00:77::53"))
    });
    let text = fs::read_to_string(&log).unwrap();
    assert!(!text.contains("fd00:77::1"), "an address in {text}");
    assert!(server.leases.snapshot().is_empty());
    wait_for("the inform event", || {
        server.events.events().iter().any(|e| {
            matches!(
                e.kind,
                pxe_stack::EventKind::Dhcp {
                    step: pxe_stack::DhcpStep::Inform,
                    ..
                }
            )
        })
    });
}

#[test]
fn netns_dhclient6_rapid_commit() {
    if !have(&["root", "ip", "dhclient"]) {
        return;
    }
    let mut lab = Lab::new();
    let (server_ns, client_ns) = (lab.ns("s"), lab.ns("c"));
    let (s_if, c_if) = lab.link(&server_ns, &client_ns, 0, Some("52:54:00:77:00:41"));
    in_ns(
        &server_ns,
        &[
            "ip",
            "-6",
            "addr",
            "add",
            "fd00:77::1/64",
            "dev",
            &s_if,
            "nodad",
        ],
    );
    let server = Running::start(&server_ns, &s_if, config(600), &lab.path("leases6.json"));
    let conf = "send dhcp6.rapid-commit;\n";
    let mut client = Dhclient::start_with(&lab, &client_ns, &c_if, "rc", "LL", conf);
    let bound = client.wait("BOUND6");
    assert_eq!(bound[1], "fd00:77::100", "{bound:?}");
    // Two messages: Solicit with Rapid Commit, Reply. No Advertise, no Request. (Events go
    // out after the reply: wait for the second.)
    wait_for("the events", || server.events.events().len() >= 2);
    let steps: Vec<pxe_stack::DhcpStep> = server
        .events
        .events()
        .iter()
        .filter_map(|e| match e.kind {
            pxe_stack::EventKind::Dhcp { step, .. } => Some(step),
            _ => None,
        })
        .collect();
    assert_eq!(
        steps,
        [pxe_stack::DhcpStep::Discover, pxe_stack::DhcpStep::Ack],
        "{steps:?}"
    );
}

/// The router advertisement for a DHCPv6 link, as a host reads it (rdisc6): managed and other
/// set, the prefix on-link and not autonomous.
#[cfg(feature = "ipv6-ra")]
#[test]
fn netns_ra_for_dhcp6_read_by_rdisc6() {
    if !have(&["root", "ip", "rdisc6"]) {
        return;
    }
    let mut lab = Lab::new();
    let (server_ns, client_ns) = (lab.ns("s"), lab.ns("c"));
    let (s_if, c_if) = lab.link(&server_ns, &client_ns, 0, None);
    in_ns(
        &server_ns,
        &[
            "ip",
            "-6",
            "addr",
            "add",
            "fd00:77::1/64",
            "dev",
            &s_if,
            "nodad",
        ],
    );
    let _server = Running::start_with(&server_ns, &s_if, config(600), &lab.path("l.json"), true);
    // rdisc6 solicits and prints the first advertisement it gets (it retries on its own).
    let out = Command::new("ip")
        .args([
            "netns", "exec", &client_ns, "rdisc6", "-1", "-r", "30", &c_if,
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let field = |name: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(name))
            .and_then(|l| l.split(':').nth(1))
            .map(|v| v.trim().to_owned())
            .unwrap_or_else(|| panic!("no {name} in {text}"))
    };
    assert_eq!(field("Stateful address conf."), "Yes", "{text}");
    assert_eq!(field("Stateful other conf."), "Yes", "{text}");
    assert_eq!(field("Autonomous address conf."), "No", "{text}");
    assert!(text.contains("fd00:77::/64"), "{text}");
}

/// The per-host HTTP routes on v6: a client holding a lease from dhclient -6 fetches a route
/// with curl over IPv6, and the HTTP server names it by MAC through the v6 lease table.
#[cfg(feature = "http")]
#[test]
fn netns_http_route_names_a_dhcp6_client() {
    use pxe_stack::http::{Config as HttpConfig, Routes, Server as HttpServer};
    use pxe_stack::route::{RouteRequest, reply};
    if !have(&["root", "ip", "dhclient", "curl"]) {
        return;
    }
    let mut lab = Lab::new();
    let (server_ns, client_ns) = (lab.ns("s"), lab.ns("c"));
    let (s_if, c_if) = lab.link(&server_ns, &client_ns, 0, Some("52:54:00:77:00:51"));
    in_ns(
        &server_ns,
        &[
            "ip",
            "-6",
            "addr",
            "add",
            "fd00:77::1/64",
            "dev",
            &s_if,
            "nodad",
        ],
    );
    let server = Running::start(&server_ns, &s_if, config(600), &lab.path("leases6.json"));
    let mut client = Dhclient::start(&lab, &client_ns, &c_if, "h", "LLT");
    let addr = client.wait("BOUND6")[1].clone();
    in_ns(
        &client_ns,
        &[
            "ip",
            "-6",
            "addr",
            "add",
            &format!("{addr}/64"),
            "dev",
            &c_if,
            "nodad",
        ],
    );

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (ready_tx, ready) = std::sync::mpsc::channel();
    let ns = server_ns.clone();
    let lookup = server.leases.clone();
    let http = std::thread::spawn(move || {
        let f = fs::File::open(format!("/var/run/netns/{ns}")).unwrap();
        nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("[fd00:77::1]:0")
                .await
                .unwrap();
            ready_tx.send(listener.local_addr().unwrap()).unwrap();
            let routes = Routes::new().exact("/boot.ipxe", |req: RouteRequest| async move {
                let mac = req
                    .mac
                    .map(|m| m.hexhyp())
                    .unwrap_or_else(|| "unknown".into());
                reply::ok("text/plain", format!("#!ipxe\necho {mac}\n"))
            });
            HttpServer::new(HttpConfig::default())
                .with_routes(routes)
                .with_lookup(std::sync::Arc::new(lookup))
                .serve(listener, async move {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
    });
    struct Stop(
        Option<tokio::sync::oneshot::Sender<()>>,
        Option<JoinHandle<()>>,
    );
    impl Drop for Stop {
        fn drop(&mut self) {
            if let Some(s) = self.0.take() {
                let _ = s.send(());
            }
            if let Some(t) = self.1.take() {
                let _ = t.join();
            }
        }
    }
    let _http = Stop(Some(stop), Some(http));
    let at = ready.recv().expect("the http server started");
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            &client_ns,
            "curl",
            "-sS",
            "-g",
            "--interface",
            &addr,
        ])
        .arg(format!("http://{at}/boot.ipxe"))
        .output()
        .unwrap();
    let body = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(body, "#!ipxe\necho 52-54-00-77-00-51\n");
}

/// A pool address (no reservation) stays the host's across a server restart and a new DUID:
/// the lease file holds it, keyed by MAC.
#[test]
fn netns_pool_address_survives_restart_and_new_duid() {
    if !have(&["root", "ip", "dhclient"]) {
        return;
    }
    let mut lab = Lab::new();
    let (server_ns, client_ns) = (lab.ns("s"), lab.ns("c"));
    let (s_if, c_if) = lab.link(&server_ns, &client_ns, 0, Some("52:54:00:77:00:61"));
    in_ns(
        &server_ns,
        &[
            "ip",
            "-6",
            "addr",
            "add",
            "fd00:77::1/64",
            "dev",
            &s_if,
            "nodad",
        ],
    );
    let leases = lab.path("leases6.json");
    // Another host's lease first, so the pool's first address is taken and "the same address"
    // is not just "the first address".
    let other = pxe_stack::dhcp6::Lease6 {
        addr: "fd00:77::100".parse().unwrap(),
        mac: "52:54:00:77:00:99".parse().unwrap(),
        duid: "00030001525400770099".into(),
        iaid: 1,
        expires: pxe_stack::dhcp6::unix_secs(std::time::SystemTime::now()) + 600,
        state: State6::Bound,
    };
    LeaseFile6::new(&leases).save(&[other]).unwrap();
    let server = Running::start(&server_ns, &s_if, config(600), &leases);
    let mut first = Dhclient::start(&lab, &client_ns, &c_if, "fw", "LL");
    let addr = first.wait("BOUND6")[1].clone();
    assert_eq!(addr, "fd00:77::101");
    drop(first);
    drop(server);
    let server = Running::start(&server_ns, &s_if, config(600), &leases);
    let mut second = Dhclient::start(&lab, &client_ns, &c_if, "os", "LLT");
    assert_eq!(second.wait("BOUND6")[1], addr);
    assert_eq!(server.leases.snapshot().len(), 2);
}
