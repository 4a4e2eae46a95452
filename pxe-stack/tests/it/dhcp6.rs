//! The DHCPv6 server against ISC dhclient -6, directly and through ISC dhcrelay -6, inside
//! network namespaces the tests create. Every client message type is sent by dhclient -6, on
//! the server's link and through the relay (Relay-Forward/Relay-Reply): Solicit, Request,
//! Renew, Release (`-r`), Rebind (its server replaced by one with another DUID, so its Renews
//! go unanswered past T2), Decline (its script exits 3 for BOUND6, dhclient's sign of a failed
//! duplicate address detection), Confirm (dhclient started again on the lease file of a killed
//! run), Information-request (`-S`) and Solicit with Rapid Commit. The server's own log is
//! captured per server (a subscriber scoped to its thread), so tests read which message it saw.
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

/// Where a test server keeps its leases.
enum Store {
    File(PathBuf),
    /// A PostgreSQL database several servers share (`PgLeaseStore`), and this server's name.
    #[cfg(feature = "postgres")]
    Pg {
        url: String,
        name: String,
    },
}

/// The server, serving in a thread that entered the server namespace; stopped on drop.
struct Running {
    leases: Leases6,
    events: Recorder,
    /// The server's own log (info lines in dnsmasq's words, `DHCPREBIND ...`), captured by a
    /// subscriber scoped to its thread.
    log: LogBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Running {
    fn start(ns: &str, iface: &str, config: Config, lease_file: &Path) -> Running {
        Self::start_with(ns, iface, config, lease_file, false)
    }

    /// The usual server of a flow test: on `net`'s server link, ten-minute leases, the lease
    /// file in `lab`.
    fn on(net: &Net, lab: &Lab) -> Running {
        let leases = lab.path("leases6.json");
        Self::start(&net.server_ns, &net.server_if, config(600), &leases)
    }

    /// As [`Running::start`]; with `ra`, router advertisements for DHCPv6 (managed and other
    /// set) beside it, once a second.
    fn start_with(ns: &str, iface: &str, config: Config, lease_file: &Path, ra: bool) -> Running {
        Self::start_store(ns, iface, config, Store::File(lease_file.to_owned()), ra)
    }

    /// As [`Running::start_with`], with leases in `store`.
    fn start_store(ns: &str, iface: &str, config: Config, store: Store, ra: bool) -> Running {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready) = std::sync::mpsc::channel();
        let (ns, iface) = (ns.to_owned(), iface.to_owned());
        let events = Recorder::new();
        let sink = events.clone();
        let log = LogBuf::default();
        let writer = log.clone();
        let thread = std::thread::spawn(move || {
            let subscriber = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new("pxe_stack=info"))
                .with_ansi(false)
                .with_writer(move || writer.clone())
                .finish();
            let _log = tracing::subscriber::set_default(subscriber);
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
                let server = Server::new(config).unwrap();
                let server = match store {
                    Store::File(path) => server.with_lease_file(LeaseFile6::new(path)).unwrap(),
                    #[cfg(feature = "postgres")]
                    Store::Pg { url, name } => {
                        let store =
                            pxe_stack::dhcp::PgLeaseStore::connect(pxe_stack::dhcp::PgOptions {
                                url,
                                password: None,
                                ca_file: None,
                                server: name,
                            })
                            .await
                            .unwrap();
                        server
                            .with_lease_store(std::sync::Arc::new(store))
                            .await
                            .unwrap()
                    }
                };
                let server = server.with_events(std::sync::Arc::new(sink));
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
            log,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// The server's log so far.
    /// Waits for the event of `step` for `mac` (events go out after the replies).
    fn wait_for_step(&self, step: pxe_stack::DhcpStep, mac: Mac) {
        wait_for(&format!("the {step:?} event"), || {
            self.events.events().iter().any(|e| {
                matches!(e.kind, pxe_stack::EventKind::Dhcp { step: s, .. } if s == step)
                    && e.mac == Some(mac)
            })
        });
    }

    fn log(&self) -> String {
        String::from_utf8_lossy(&self.log.0.lock().unwrap()).into_owned()
    }

    /// Waits for a line of the server's log holding every one of `words`, after the first
    /// line holding `after` (when given); returns that line.
    fn wait_log(&self, after: Option<&str>, words: &[&str]) -> String {
        let mut found = None;
        wait_for(&format!("{words:?} in the server log"), || {
            let log = self.log();
            let mut lines = log.lines();
            if let Some(a) = after
                && !lines.any(|l| l.contains(a))
            {
                return false;
            }
            found = lines
                .find(|l| words.iter().all(|w| l.contains(w)))
                .map(str::to_owned);
            found.is_some()
        });
        found.unwrap()
    }
}

/// A log sink shared between the server's thread and the test.
#[derive(Clone, Default)]
struct LogBuf(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("the server's log:\n{}", self.log());
        }
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
        Self::start_script(lab, ns, iface, name, duid_type, conf, "")
    }

    /// As [`Dhclient::start_with`], the script running `tail` (shell) after logging its line
    /// and before it exits 0.
    fn start_script(
        lab: &Lab,
        ns: &str,
        iface: &str,
        name: &str,
        duid_type: &str,
        conf: &str,
        tail: &str,
    ) -> Dhclient {
        let cf = lab.path(&format!("{name}.conf"));
        fs::write(&cf, conf).unwrap();
        let log = lab.path(&format!("{name}.log"));
        let script = lab.path(&format!("{name}.sh"));
        fs::write(
            &script,
            format!(
                "#!/bin/sh\necho \"$reason $new_ip6_address $new_dhcp6_name_servers\" >> {}\n{tail}\nexit 0\n",
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
        self.wait_nth(reason, 0)
    }

    /// Waits for the script line with `reason` after `n` others with it; returns its fields.
    fn wait_nth(&mut self, reason: &str, n: usize) -> Vec<String> {
        let start = Instant::now();
        loop {
            let text = fs::read_to_string(&self.log).unwrap_or_default();
            if let Some(line) = text
                .lines()
                .filter(|l| l.split(' ').next() == Some(reason))
                .nth(n)
            {
                return line.split(' ').map(str::to_owned).collect();
            }
            if let Some(status) = self.proc.0.try_wait().unwrap() {
                let err = fs::read_to_string(&self.err).unwrap_or_default();
                panic!(
                    "dhclient exited ({status}) before {reason} #{n}; script saw:\n{text}\n{err}"
                );
            }
            if start.elapsed() > HANG {
                let err = fs::read_to_string(&self.err).unwrap_or_default();
                panic!("no {reason} #{n} from dhclient; script saw:\n{text}\n{err}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Every line its script wrote so far.
    fn script(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
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
    server.wait_for_step(pxe_stack::DhcpStep::Release, mac);
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

/// The two links a client can be on: the server's own (`fd00:77::/64`), or its own
/// (`fd00:78::/64`) behind ISC dhcrelay -6, which is stopped on drop.
struct Net {
    server_ns: String,
    server_if: String,
    client_ns: String,
    client_if: String,
    /// The client's MAC (its link-local address is the EUI-64 of it).
    mac: Mac,
    /// The client link's first pool address.
    first: Ipv6Addr,
    /// The second.
    second: Ipv6Addr,
    /// What the server's log lines about this client hold: `via <relay>` when relayed.
    via: &'static str,
    _relay: Option<Proc>,
}

impl Net {
    /// `client` — veth — `server`, the client with `mac`.
    fn direct(lab: &mut Lab, mac: &str) -> Net {
        let (server_ns, client_ns) = (lab.ns("s"), lab.ns("c"));
        let (server_if, client_if) = lab.link(&server_ns, &client_ns, 0, Some(mac));
        addr(&server_ns, "fd00:77::1/64", &server_if);
        Net {
            server_ns,
            server_if,
            client_ns,
            client_if,
            mac: mac.parse().unwrap(),
            first: "fd00:77::100".parse().unwrap(),
            second: "fd00:77::101".parse().unwrap(),
            via: "",
            _relay: None,
        }
    }

    /// `client` — veth — `relay` — veth — `server`, dhcrelay -6 running in `relay`.
    fn relayed(lab: &mut Lab, mac: &str) -> Net {
        let (server_ns, relay_ns, client_ns) = (lab.ns("s"), lab.ns("r"), lab.ns("c"));
        let (server_if, up_if) = lab.link(&server_ns, &relay_ns, 0, None);
        let (down_if, client_if) = lab.link(&relay_ns, &client_ns, 1, Some(mac));
        addr(&server_ns, "fd00:77::1/64", &server_if);
        addr(&relay_ns, "fd00:77::2/64", &up_if);
        addr(&relay_ns, "fd00:78::1/64", &down_if);
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
        Net {
            server_ns,
            server_if,
            client_ns,
            client_if,
            mac: mac.parse().unwrap(),
            first: "fd00:78::100".parse().unwrap(),
            second: "fd00:78::101".parse().unwrap(),
            via: "via fd00:77::2",
            _relay: Some(Proc(relay)),
        }
    }

    /// `direct` or `relayed`.
    fn new(lab: &mut Lab, relayed: bool, mac: &str) -> Net {
        if relayed {
            Net::relayed(lab, mac)
        } else {
            Net::direct(lab, mac)
        }
    }
}

/// Adds `cidr` to `iface` in `ns`, without DAD.
fn addr(ns: &str, cidr: &str, iface: &str) {
    in_ns(
        ns,
        &["ip", "-6", "addr", "add", cidr, "dev", iface, "nodad"],
    );
}

#[test]
fn netns_dhclient6_through_dhcrelay() {
    if !have(&["root", "ip", "dhclient", "dhcrelay"]) {
        return;
    }
    let mut lab = Lab::new();
    let net = Net::relayed(&mut lab, "52:54:00:78:00:05");
    let server = Running::on(&net, &lab);
    let mut client = Dhclient::start(&lab, &net.client_ns, &net.client_if, "c", "LLT");
    let bound = client.wait("BOUND6");
    // The relayed link's pool, the host named by its EUI-64 link-local (the relay's peer).
    assert_eq!(bound[1], "fd00:78::100", "{bound:?}");
    assert_eq!(server.leases.addr_for(net.mac), Some(net.first.into()));
}

/// Renew and Release through dhcrelay -6 (`netns_dhclient6_binds_renews_and_releases` does
/// them on the server's link).
#[test]
fn netns_dhclient6_renews_and_releases_through_dhcrelay() {
    if !have(&["root", "ip", "dhclient", "dhcrelay"]) {
        return;
    }
    let mut lab = Lab::new();
    let net = Net::relayed(&mut lab, "52:54:00:78:00:15");
    let leases = lab.path("leases6.json");
    // Six seconds: T1 three, so dhclient renews during the test.
    let server = Running::start(&net.server_ns, &net.server_if, config(6), &leases);
    let mut client = Dhclient::start(&lab, &net.client_ns, &net.client_if, "c", "LL");
    let (addr, mac) = (net.first.to_string(), net.mac.to_string());
    assert_eq!(client.wait("BOUND6")[1], addr);
    assert_eq!(client.wait("RENEW6")[1], addr);
    server.wait_log(None, &["DHCPRENEW", net.via, &mac]);
    server.wait_log(Some("DHCPRENEW"), &["DHCPREPLY", net.via, &addr, &mac]);
    client.release(&lab, &net.client_ns, &net.client_if, "c");
    server.wait_log(None, &["DHCPRELEASE", net.via, &mac]);
    wait_for("the release on disk", || {
        let on_disk = LeaseFile6::new(&leases).load().unwrap();
        on_disk.first().map(|l| (l.addr, l.state)) == Some((net.first, State6::Released))
    });
    assert_eq!(server.leases.mac_for(net.first.into()), None);
}

/// Two tests of one flow: `$direct` on the server's link, `$relayed` through dhcrelay -6; the
/// host's MAC ends in `$n` (52:54:00:77:00:$n direct, 52:54:00:78:00:$n relayed).
macro_rules! direct_and_relayed {
    ($flow:ident, $direct:ident, $relayed:ident, $n:literal) => {
        #[test]
        fn $direct() {
            if !have(&["root", "ip", "dhclient"]) {
                return;
            }
            $flow(false, concat!("52:54:00:77:00:", $n));
        }

        #[test]
        fn $relayed() {
            if !have(&["root", "ip", "dhclient", "dhcrelay"]) {
                return;
            }
            $flow(true, concat!("52:54:00:78:00:", $n));
        }
    };
}

/// Rebind: dhclient -6 bound by one server; a server with another DUID takes over its lease
/// file. dhclient's Renews (from T1) name the first server, so the new one ignores them (RFC
/// 8415 16.6); at T2 dhclient sends a Rebind, which names no server, and the new server
/// answers it with the same address.
fn rebinds(relayed: bool, mac: &str) {
    let mut lab = Lab::new();
    let net = Net::new(&mut lab, relayed, mac);
    let leases = lab.path("leases6.json");
    // Forty seconds: T1 20, T2 32, and the servers change places long before T1. dhclient
    // 4.4 waits for its first Renew's retransmission timeout (IRT 10 s, RFC 8415 7.6) before it
    // rebinds even past T2, so the lease must outlast T1 + 11 s (with T1 5 s and a 10 s lease
    // the address expires as the Rebind leaves, and the Reply comes too late).
    let first = Running::start(&net.server_ns, &net.server_if, config(40), &leases);
    let mut client = Dhclient::start(&lab, &net.client_ns, &net.client_if, "c", "LL");
    let (addr, mac) = (net.first.to_string(), net.mac.to_string());
    assert_eq!(client.wait("BOUND6")[1], addr);
    drop(first);
    let mut config = config(40);
    // A DUID-UUID (type 4) other than the one made of the server's address.
    let mut duid = vec![0, 4];
    duid.extend(b"another server!!");
    config.server_duid = Some(duid);
    let second = Running::start(&net.server_ns, &net.server_if, config, &leases);

    let rebound = client.wait("REBIND6");
    assert_eq!(rebound[1], addr, "{rebound:?}");
    let script = client.script();
    assert!(
        !script
            .lines()
            .take_while(|l| !l.starts_with("REBIND6"))
            .any(|l| l.starts_with("RENEW6")),
        "a Renew was answered:\n{script}"
    );
    // The new server saw the Renew and did not answer it, then answered the Rebind.
    second.wait_log(None, &["DHCPRENEW", net.via, &mac]);
    second.wait_log(None, &["DHCPREBIND", net.via, &mac]);
    second.wait_log(Some("DHCPREBIND"), &["DHCPREPLY", net.via, &addr, &mac]);
    let log = second.log();
    assert!(
        !log.lines()
            .skip_while(|l| !l.contains("DHCPRENEW"))
            .take_while(|l| !l.contains("DHCPREBIND"))
            .any(|l| l.contains("DHCPREPLY")),
        "the new server answered a Renew naming the old one:\n{log}"
    );
    let lease = second.leases.read().get(net.first).cloned().unwrap();
    assert_eq!((lease.mac, lease.state), (net.mac, State6::Bound));
    assert_eq!(second.leases.snapshot().len(), 1);
}

direct_and_relayed!(
    rebinds,
    netns_dhclient6_rebinds_with_another_server,
    netns_dhclient6_rebinds_with_another_server_through_dhcrelay,
    "71"
);

/// Decline: the client's script exits 3 for the first BOUND6, which ISC dhclient 4.4 takes as
/// a failed duplicate address detection (`start_bound` in dhc6.c): it sends a Decline for the
/// address, then solicits again. The server quarantines the address, on disk too, and gives
/// the host the next one.
fn declines(relayed: bool, mac: &str) {
    let mut lab = Lab::new();
    let net = Net::new(&mut lab, relayed, mac);
    let leases = lab.path("leases6.json");
    let server = Running::start(&net.server_ns, &net.server_if, config(600), &leases);
    let once = lab.path("declined-once");
    let tail = format!(
        "if [ \"$reason\" = BOUND6 ] && [ ! -e {0} ]; then touch {0}; exit 3; fi",
        once.display()
    );
    let mut client =
        Dhclient::start_script(&lab, &net.client_ns, &net.client_if, "c", "LL", "", &tail);
    let (first, mac) = (net.first.to_string(), net.mac.to_string());
    assert_eq!(client.wait("BOUND6")[1], first);
    let again = client.wait_nth("BOUND6", 1);
    assert_eq!(again[1], net.second.to_string(), "{again:?}");

    server.wait_log(None, &["DHCPDECLINE", net.via, &mac]);
    server.wait_log(None, &["DHCPDECLINE", &first, &mac, "quarantined"]);
    {
        let table = server.leases.read();
        let declined = table.get(net.first).cloned().unwrap();
        assert_eq!((declined.mac, declined.state), (net.mac, State6::Declined));
        let bound = table.for_mac(net.mac).cloned().unwrap();
        assert_eq!((bound.addr, bound.state), (net.second, State6::Bound));
    }
    // The Reply binding the second address left after the file held both.
    let on_disk = LeaseFile6::new(&leases).load().unwrap();
    let states: Vec<_> = on_disk.iter().map(|l| (l.addr, l.state)).collect();
    assert_eq!(
        states,
        [(net.first, State6::Declined), (net.second, State6::Bound)]
    );
    server.wait_for_step(pxe_stack::DhcpStep::Decline, net.mac);
}

direct_and_relayed!(
    declines,
    netns_dhclient6_declines_an_address,
    netns_dhclient6_declines_an_address_through_dhcrelay,
    "81"
);

/// Information-request (`dhclient -6 -S`): the DNS servers, no address, no lease.
fn information_request(relayed: bool, mac: &str) {
    let mut lab = Lab::new();
    let net = Net::new(&mut lab, relayed, mac);
    let server = Running::on(&net, &lab);
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
            "netns",
            "exec",
            &net.client_ns,
            "dhclient",
            "-6",
            "-S",
            "-1",
            "-d",
            "-sf",
        ])
        .arg(&script)
        .arg("-lf")
        .arg(lab.path("info.leases"))
        .arg("-pf")
        .arg(lab.path("info.pid"))
        .arg(&net.client_if)
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
    assert!(!text.contains("fd00:78::1"), "an address in {text}");
    assert!(server.leases.snapshot().is_empty());
    server.wait_log(
        None,
        &["DHCPINFORMATION-REQUEST", net.via, &net.mac.to_string()],
    );
    server.wait_for_step(pxe_stack::DhcpStep::Inform, net.mac);
}

direct_and_relayed!(
    information_request,
    netns_dhclient6_information_request,
    netns_dhclient6_information_request_through_dhcrelay,
    "31"
);

/// Rapid Commit: two messages, Solicit with Rapid Commit and a Reply; no Advertise, no
/// Request.
fn rapid_commit(relayed: bool, mac: &str) {
    let mut lab = Lab::new();
    let net = Net::new(&mut lab, relayed, mac);
    let server = Running::on(&net, &lab);
    let conf = "send dhcp6.rapid-commit;\n";
    let mut client = Dhclient::start_with(&lab, &net.client_ns, &net.client_if, "rc", "LL", conf);
    let bound = client.wait("BOUND6");
    assert_eq!(bound[1], net.first.to_string(), "{bound:?}");
    // Events go out after the reply: wait for the second.
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
    let mac = net.mac.to_string();
    server.wait_log(None, &["DHCPSOLICIT", net.via, &mac]);
    server.wait_log(
        Some("DHCPSOLICIT"),
        &["DHCPREPLY", net.via, &net.first.to_string(), &mac],
    );
}

direct_and_relayed!(
    rapid_commit,
    netns_dhclient6_rapid_commit,
    netns_dhclient6_rapid_commit_through_dhcrelay,
    "41"
);

/// Confirm: dhclient -6 started again with the lease file of a run that was killed (no
/// Release) confirms its address (RFC 8415 18.2.3) instead of soliciting; the server says
/// the address is on the client's link and dhclient keeps it.
fn confirms(relayed: bool, mac: &str) {
    let mut lab = Lab::new();
    let net = Net::new(&mut lab, relayed, mac);
    let server = Running::on(&net, &lab);
    let addr = net.first.to_string();
    let mut first = Dhclient::start(&lab, &net.client_ns, &net.client_if, "c", "LL");
    assert_eq!(first.wait("BOUND6")[1], addr);
    drop(first);
    // The same name: the same lease file, and the script log goes on.
    let mut again = Dhclient::start(&lab, &net.client_ns, &net.client_if, "c", "LL");
    assert_eq!(again.wait_nth("BOUND6", 1)[1], addr);
    let mac = net.mac.to_string();
    server.wait_log(None, &["DHCPCONFIRM", net.via, &mac]);
    server.wait_log(Some("DHCPCONFIRM"), &["DHCPREPLY", net.via, &mac]);
    let log = server.log();
    assert!(
        !log.lines()
            .skip_while(|l| !l.contains("DHCPCONFIRM"))
            .any(|l| l.contains("DHCPSOLICIT") || l.contains("DHCPREQUEST")),
        "dhclient solicited again:\n{log}"
    );
    assert_eq!(server.leases.addr_for(net.mac), Some(net.first.into()));
}

direct_and_relayed!(
    confirms,
    netns_dhclient6_confirms_its_address,
    netns_dhclient6_confirms_its_address_through_dhcrelay,
    "91"
);

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

/// Two DHCPv6 servers on one link share a real PostgreSQL (`PgLeaseStore`): dhclient -6 is
/// bound through them, its lease is in the database, and after server A is gone, dhclient -6
/// with another DUID type gets the same address from server B.
#[cfg(feature = "postgres")]
#[test]
fn netns_dhclient6_two_servers_share_one_database() {
    if !have(&["root", "ip", "dhclient", "psql"]) || !crate::dhcp_pg::have_postgres() {
        return;
    }
    let pg = crate::dhcp_pg::Postgres::start();
    let mut lab = Lab::new();
    let (a_ns, b_ns, hub, client_ns) = (lab.ns("a"), lab.ns("b"), lab.ns("h"), lab.ns("c"));
    in_ns(
        &hub,
        &["ip", "link", "add", "name", "br0", "type", "bridge"],
    );
    in_ns(&hub, &["ip", "link", "set", "br0", "up"]);
    let mac = "52:54:00:77:00:42";
    let (a_if, ha) = lab.link(&a_ns, &hub, 1, None);
    let (b_if, hb) = lab.link(&b_ns, &hub, 2, None);
    let (hc, c_if) = lab.link(&hub, &client_ns, 3, Some(mac));
    for port in [&ha, &hb, &hc] {
        in_ns(&hub, &["ip", "link", "set", port, "master", "br0"]);
    }
    let mut servers = Vec::new();
    for (ns, iface, addr, name) in [
        (&a_ns, &a_if, "fd00:77::1", "a"),
        (&b_ns, &b_if, "fd00:77::3", "b"),
    ] {
        in_ns(
            ns,
            &[
                "ip",
                "-6",
                "addr",
                "add",
                &format!("{addr}/64"),
                "dev",
                iface,
                "nodad",
            ],
        );
        let mut c = config(600);
        c.server_addr = addr.parse().unwrap();
        let store = Store::Pg {
            url: pg.url(),
            name: name.into(),
        };
        servers.push(Running::start_store(ns, iface, c, store, false));
    }
    let mut first = Dhclient::start(&lab, &client_ns, &c_if, "first", "LL");
    let bound = first.wait("BOUND6");
    drop(first);
    let addr = bound[1].clone();
    assert!(addr.starts_with("fd00:77::1"), "a pool address: {bound:?}");
    assert_eq!(
        pg.psql("SELECT mac || ' ' || host(address) || ' ' || state FROM dhcp6_lease")
            .trim(),
        format!("{mac} {addr} bound")
    );
    // A goes away; B answers a new DUID of the same host with the same address.
    drop(servers.remove(0));
    let mut second = Dhclient::start(&lab, &client_ns, &c_if, "second", "LLT");
    let again = second.wait("BOUND6");
    drop(second);
    assert_eq!(again[1], addr, "{again:?}");
    let b = &servers[0];
    let lease = b
        .leases
        .read()
        .for_mac(mac.parse().unwrap())
        .cloned()
        .unwrap();
    assert_eq!(lease.addr.to_string(), addr);
    assert!(
        lease.duid.starts_with("0001"),
        "B bound the LLT DUID: {lease:?}"
    );
    assert_eq!(
        pg.psql("SELECT mac || ' ' || host(address) || ' ' || server FROM dhcp6_lease")
            .trim(),
        format!("{mac} {addr} b")
    );
}
