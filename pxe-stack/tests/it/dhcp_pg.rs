//! Several DHCP servers sharing one PostgreSQL database (`PgLeaseStore`), against a real
//! PostgreSQL (Debian's, started here in a temporary directory, reached over its Unix socket)
//! and checked on the wire with tcpdump.
//!
//! Namespaces: `pgs-a-*` and `pgs-b-*` each hold one server (a child process: the test binary
//! re-executed with `DHCP_PG_CHILD` set, so SIGKILL is a real crash); `pgs-c-*` holds a bridge
//! joining them and a relay agent with two helper addresses that runs the storm: 600 simulated
//! clients, each retrying (DISCOVER again after a NAK or a silent second) until it is ACKed.
//! Everything is removed by Drop guards, also on failure.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::Ipv4Addr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dhcproto::v4::{DhcpOption, Message, MessageType, Opcode, OptionCode};
use dhcproto::{Decodable, Decoder, Encodable, Encoder};
use pxe_stack::Mac;
use pxe_stack::dhcp::{Config, PgLeaseStore, PgOptions, Range, Server, Subnet, bind};

use crate::common::have;

const CHILD_ENV: &str = "DHCP_PG_CHILD";
const STORM_ENV: &str = "DHCP_PG_STORM";
const SERVER_A: Ipv4Addr = Ipv4Addr::new(10, 78, 0, 1);
const SERVER_B: Ipv4Addr = Ipv4Addr::new(10, 78, 0, 3);
const RELAY: Ipv4Addr = Ipv4Addr::new(10, 78, 0, 2);
const CLIENTS: u32 = 600;

// ---------------------------------------------------------------------------------------------
// The children: a server, and the storm.

/// Not a test on its own: one server of the pair (see the module docs).
#[test]
fn child_pg_server() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let dir = PathBuf::from(dir);
    let name = std::env::var("DHCP_PG_NAME").unwrap();
    let log = fs::File::create(dir.join(format!("{name}.log"))).unwrap();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("pxe_stack=info"))
        .with_ansi(false)
        .with_writer(std::sync::Mutex::new(log))
        .try_init();
    let config: Config =
        serde_json::from_slice(&fs::read(dir.join(format!("{name}.json"))).unwrap()).unwrap();
    let url = fs::read_to_string(dir.join("db-url")).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let socket = bind(Some(&std::env::var("DHCP_PG_IFACE").unwrap()), 67).unwrap();
        let store = PgLeaseStore::connect(PgOptions {
            url,
            password: None,
            ca_file: None,
            server: name.clone(),
        })
        .await
        .unwrap();
        let server = Server::new(config)
            .unwrap()
            .with_lease_store(Arc::new(store))
            .await
            .unwrap();
        if std::env::var_os("DHCP_PG_SEQUENTIAL").is_some() {
            // The worst case for collisions: both servers offer their next free address to
            // whoever asks, so they offer one address to two clients all the time.
            server.leases().write().set_hashed_start(false);
        }
        println!("dhcp-server-ready");
        server.serve(socket, std::future::pending()).await.unwrap();
    });
}

#[derive(Clone, Copy)]
enum Client {
    Discovering(Instant),
    Requesting(Instant, Ipv4Addr, Ipv4Addr),
    Done,
}

/// Not a test on its own: the storm, as a relay agent (giaddr) forwarding to both servers.
/// Appends each ACK it accepts as "mac addr server" to `acks`; exits 0 once every client is
/// bound.
#[test]
fn child_pg_storm() {
    let Ok(dir) = std::env::var(STORM_ENV) else {
        return;
    };
    let dir = PathBuf::from(dir);
    let sock = std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 67)).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let mut acks = fs::File::create(dir.join("acks")).unwrap();
    let mac_of = |i: u32| {
        let b = i.to_be_bytes();
        [0x52, 0x54, 0x02, b[1], b[2], b[3]]
    };
    // With `split`, each client's first DISCOVER reaches one server only (even clients A, odd
    // ones B), as if the other had lost it: the servers' views differ from the start, and
    // they offer one address to two clients.
    let split = dir.join("split").exists();
    let send_to =
        |i: u32, kind: MessageType, chosen: Option<(Ipv4Addr, Ipv4Addr)>, servers: &[Ipv4Addr]| {
            let mut m = Message::new_with_id(
                i,
                Ipv4Addr::UNSPECIFIED,
                Ipv4Addr::UNSPECIFIED,
                Ipv4Addr::UNSPECIFIED,
                RELAY,
                &mac_of(i),
            );
            m.opts_mut().insert(DhcpOption::MessageType(kind));
            if let Some((server, addr)) = chosen {
                m.opts_mut().insert(DhcpOption::RequestedIpAddress(addr));
                m.opts_mut().insert(DhcpOption::ServerIdentifier(server));
            }
            let mut buf = Vec::new();
            m.encode(&mut Encoder::new(&mut buf)).unwrap();
            for s in servers {
                let _ = sock.send_to(&buf, (*s, 67));
            }
        };
    // A relay agent forwards every client message to each of its helper addresses.
    let send = |i: u32, kind: MessageType, chosen: Option<(Ipv4Addr, Ipv4Addr)>| {
        send_to(i, kind, chosen, &[SERVER_A, SERVER_B]);
    };
    let mut clients = vec![Client::Discovering(Instant::now()); CLIENTS as usize];
    for i in 0..CLIENTS {
        match (split, i % 2) {
            (false, _) => send(i, MessageType::Discover, None),
            (true, 0) => send_to(i, MessageType::Discover, None, &[SERVER_A]),
            (true, _) => send_to(i, MessageType::Discover, None, &[SERVER_B]),
        }
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut left = CLIENTS;
    let mut buf = [0u8; 1500];
    let mut last_scan = Instant::now();
    while left > 0 && Instant::now() < deadline {
        if let Ok((n, _)) = sock.recv_from(&mut buf)
            && let Ok(m) = Message::decode(&mut Decoder::new(&buf[..n]))
            && m.opcode() == Opcode::BootReply
            && m.xid() < CLIENTS
        {
            let i = m.xid();
            let server = match m.opts().get(OptionCode::ServerIdentifier) {
                Some(DhcpOption::ServerIdentifier(s)) => *s,
                _ => Ipv4Addr::UNSPECIFIED,
            };
            let c = &mut clients[i as usize];
            match (m.opts().msg_type(), *c) {
                (Some(MessageType::Offer), Client::Discovering(_)) => {
                    *c = Client::Requesting(Instant::now(), server, m.yiaddr());
                    send(i, MessageType::Request, Some((server, m.yiaddr())));
                }
                (Some(MessageType::Ack), Client::Requesting(_, s, a))
                    if s == server && a == m.yiaddr() =>
                {
                    *c = Client::Done;
                    left -= 1;
                    writeln!(acks, "{} {a} {s}", Mac(mac_of(i))).unwrap();
                    acks.flush().unwrap();
                }
                (Some(MessageType::Nak), Client::Requesting(_, s, _)) if s == server => {
                    *c = Client::Discovering(Instant::now());
                    send(i, MessageType::Discover, None);
                }
                _ => {}
            }
        }
        // Clients that heard nothing for a second start over, as dhclient and firmware do.
        if last_scan.elapsed() > Duration::from_millis(200) {
            last_scan = Instant::now();
            for i in 0..CLIENTS {
                let c = &mut clients[i as usize];
                let since = match *c {
                    Client::Discovering(t) | Client::Requesting(t, ..) => t,
                    Client::Done => continue,
                };
                if since.elapsed() > Duration::from_secs(1) {
                    *c = Client::Discovering(Instant::now());
                    send(i, MessageType::Discover, None);
                }
            }
        }
    }
    if left > 0 {
        eprintln!("{left} clients not bound by the deadline");
        std::process::exit(1);
    }
}

// ---------------------------------------------------------------------------------------------
// Guards: PostgreSQL, namespaces, processes.

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn ip(args: &[&str]) {
    run(Command::new("ip").args(args));
}

fn pg_bin() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|d| d.join("initdb").is_file())
        .collect();
    dirs.sort();
    dirs.pop()
}

/// A throwaway PostgreSQL: listens on a Unix socket in its temporary directory only, runs as
/// `nobody` when we are root (postgres refuses root), stopped and removed on drop.
pub(crate) struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    uid: Option<u32>,
}

impl Postgres {
    pub(crate) fn start() -> Postgres {
        let dir = tempfile::Builder::new()
            .prefix("pxe-pg-")
            .tempdir()
            .unwrap();
        let root = fs::read_to_string("/proc/self/status")
            .unwrap()
            .lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"));
        let pg = Postgres {
            dir,
            bin: pg_bin().expect("checked by have()"),
            uid: root.then_some(65534),
        };
        fs::create_dir(pg.dir.path().join("data")).unwrap();
        if let Some(u) = pg.uid {
            run(Command::new("chown")
                .arg("-R")
                .arg(format!("{u}:{u}"))
                .arg(pg.dir.path()));
            run(Command::new("chmod").arg("0755").arg(pg.dir.path()));
        }
        run(pg
            .as_pg("initdb")
            .args(["-D", "data", "-U", "postgres", "--auth=trust", "--no-sync"]));
        fs::OpenOptions::new()
            .append(true)
            .open(pg.dir.path().join("data/postgresql.conf"))
            .unwrap()
            .write_all(
                format!(
                    "listen_addresses = ''\nunix_socket_directories = '{}'\nfsync = off\n",
                    pg.dir.path().display()
                )
                .as_bytes(),
            )
            .unwrap();
        pg.ctl("start");
        pg
    }

    fn as_pg(&self, program: &str) -> Command {
        let mut c = Command::new(self.bin.join(program));
        c.current_dir(self.dir.path());
        if let Some(u) = self.uid {
            c.uid(u).gid(u);
        }
        c
    }

    fn ctl(&self, action: &str) {
        run(self
            .as_pg("pg_ctl")
            .args(["-D", "data", "-l", "log", "-w", "-m", "immediate", action])
            .stdout(Stdio::null()));
    }

    pub(crate) fn url(&self) -> String {
        format!(
            "host={} user=postgres dbname=postgres",
            self.dir.path().display()
        )
    }

    /// SQL over the socket; rows unaligned, `|`-separated.
    pub(crate) fn psql(&self, sql: &str) -> String {
        run(Command::new(self.bin.join("psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(self.dir.path())
            .args(["-U", "postgres", "-d", "postgres", "-c", sql]))
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self
            .as_pg("pg_ctl")
            .args(["-D", "data", "-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// A child process killed (SIGKILL) and reaped on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Three namespaces: two servers and the relay's, whose bridge joins them. Removed on drop.
struct Site {
    id: String,
    dir: tempfile::TempDir,
}

impl Site {
    fn new() -> Site {
        static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let id = format!(
            "{}{}",
            std::process::id() % 100_000,
            SEQ.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        );
        let site = Site {
            id,
            dir: tempfile::tempdir().unwrap(),
        };
        for ns in ["a", "b", "c"] {
            ip(&["netns", "add", &site.ns(ns)]);
            site.exec(ns, &["ip", "link", "set", "lo", "up"]);
        }
        let c = site.ns("c");
        site.exec("c", &["ip", "link", "add", "name", "br0", "type", "bridge"]);
        site.exec(
            "c",
            &["ip", "addr", "add", &format!("{RELAY}/16"), "dev", "br0"],
        );
        site.exec("c", &["ip", "link", "set", "br0", "up"]);
        for (ns, addr) in [("a", SERVER_A), ("b", SERVER_B)] {
            let (inner, outer) = (site.iface(ns), format!("p{ns}{}", site.id));
            ip(&[
                "link",
                "add",
                &inner,
                "netns",
                &site.ns(ns),
                "type",
                "veth",
                "peer",
                "name",
                &outer,
                "netns",
                &c,
            ]);
            site.exec(
                ns,
                &["ip", "addr", "add", &format!("{addr}/16"), "dev", &inner],
            );
            site.exec(ns, &["ip", "link", "set", &inner, "up"]);
            site.exec("c", &["ip", "link", "set", &outer, "master", "br0"]);
            site.exec("c", &["ip", "link", "set", &outer, "up"]);
        }
        site
    }

    fn ns(&self, which: &str) -> String {
        format!("pgs-{which}-{}", self.id)
    }

    fn iface(&self, which: &str) -> String {
        format!("s{which}{}", self.id)
    }

    fn exec(&self, which: &str, cmd: &[&str]) {
        run(Command::new("ip")
            .args(["netns", "exec", &self.ns(which)])
            .args(cmd));
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Starts server `which` ("a" or "b") against the database at `url`; `sequential` turns
    /// the hashed pool start off.
    fn server(&self, which: &str, url: &str, sequential: bool) -> Proc {
        let own = if which == "a" { SERVER_A } else { SERVER_B };
        fs::write(
            self.path(&format!("{which}.json")),
            serde_json::to_vec(&config(own)).unwrap(),
        )
        .unwrap();
        fs::write(self.path("db-url"), url).unwrap();
        let mut child = Command::new("ip");
        child
            .args(["netns", "exec", &self.ns(which)])
            .arg(std::env::current_exe().unwrap())
            .args([
                "dhcp_pg::child_pg_server",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, self.dir.path())
            .env("DHCP_PG_NAME", which)
            .env("DHCP_PG_IFACE", self.iface(which))
            .stdout(Stdio::piped());
        if sequential {
            child.env("DHCP_PG_SEQUENTIAL", "1");
        }
        let mut child = child.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let proc = Proc(child);
        for line in BufReader::new(stdout).lines() {
            if line.unwrap().contains("dhcp-server-ready") {
                return proc;
            }
        }
        panic!(
            "server {which} exited before it was ready: {}",
            self.log(which)
        );
    }

    fn log(&self, which: &str) -> String {
        fs::read_to_string(self.path(&format!("{which}.log"))).unwrap_or_default()
    }

    /// tcpdump on the bridge, writing every DHCP datagram to `wire.pcap` as it arrives.
    fn capture(&self) -> Proc {
        let pcap = self.path("wire.pcap");
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns("c")])
            // A large capture buffer: a storm must not overflow it (checked below).
            .args([
                "tcpdump",
                "-i",
                "br0",
                "-U",
                "--immediate-mode",
                "-B",
                "65536",
                // A frame's worth, not tcpdump's default 256 KiB: in immediate mode the ring
                // holds buffer / snaplen packets, and 256 of them overflow in a storm.
                "-s",
                "1600",
                "-w",
            ])
            .arg(&pcap)
            .args(["udp", "port", "67"])
            .stdout(Stdio::null())
            .stderr(fs::File::create(self.path("tcpdump.log")).unwrap())
            .spawn()
            .unwrap();
        let proc = Proc(child);
        // tcpdump writes the file header once it listens.
        for _ in 0..500 {
            if fs::metadata(&pcap).is_ok_and(|m| m.len() >= 24) {
                return proc;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("tcpdump did not start");
    }

    /// Runs the storm to its end, calling `progress` with the ACKs taken so far as it goes, and
    /// fails unless every client was bound; `split` sends each client's first DISCOVER to one
    /// server only.
    fn storm(&self, split: bool, mut progress: impl FnMut(&[(Mac, Ipv4Addr, Ipv4Addr)])) {
        if split {
            fs::write(self.path("split"), "").unwrap();
        }
        let mut storm = Proc(
            Command::new("ip")
                .args(["netns", "exec", &self.ns("c")])
                .arg(std::env::current_exe().unwrap())
                .args([
                    "dhcp_pg::child_pg_storm",
                    "--exact",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(STORM_ENV, self.dir.path())
                .stdout(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let started = Instant::now();
        let status = loop {
            if let Some(status) = storm.0.try_wait().unwrap() {
                break status;
            }
            progress(&self.acks());
            assert!(started.elapsed() < Duration::from_secs(180), "storm hung");
            std::thread::sleep(Duration::from_millis(5));
        };
        assert!(
            status.success(),
            "storm: {status}\nA: {}\nB: {}",
            self.log("a"),
            self.log("b")
        );
    }

    /// The ACKs the storm accepted so far: (client, address, server).
    fn acks(&self) -> Vec<(Mac, Ipv4Addr, Ipv4Addr)> {
        fs::read_to_string(self.path("acks"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let mut w = l.split(' ');
                Some((
                    w.next()?.parse().ok()?,
                    w.next()?.parse().ok()?,
                    w.next()?.parse().ok()?,
                ))
            })
            .collect()
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        for ns in ["a", "b", "c"] {
            let _ = Command::new("ip")
                .args(["netns", "del", &self.ns(ns)])
                .status();
        }
    }
}

fn config(server_ip: Ipv4Addr) -> Config {
    let mut subnet = Subnet::new(Ipv4Addr::new(10, 78, 0, 0), 16);
    subnet.pool = Some(Range {
        start: Ipv4Addr::new(10, 78, 1, 0),
        end: Ipv4Addr::new(10, 78, 4, 255),
    });
    Config {
        server_ip,
        subnets: vec![subnet],
        lease_secs: 600,
        ..Config::default()
    }
}

/// Every DHCPACK in a pcap file (Ethernet, IPv4, UDP): (address, client MAC, server).
fn acks_on_the_wire(pcap: &Path) -> Vec<(Ipv4Addr, Mac, Ipv4Addr)> {
    let bytes = fs::read(pcap).unwrap();
    assert!(bytes.len() >= 24, "no pcap header");
    let le = bytes[..4] == [0xd4, 0xc3, 0xb2, 0xa1];
    let u32_at = |b: &[u8]| {
        let a = [b[0], b[1], b[2], b[3]];
        if le {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        }
    };
    let mut out = Vec::new();
    let mut at = 24;
    while at + 16 <= bytes.len() {
        let len = u32_at(&bytes[at + 8..]) as usize;
        let frame = &bytes[at + 16..(at + 16 + len).min(bytes.len())];
        at += 16 + len;
        // Ethernet II carrying IPv4, then the IP header's own length, then UDP's 8 bytes.
        if frame.len() < 14 + 20 + 8 || frame[12..14] != [0x08, 0x00] {
            continue;
        }
        let ihl = usize::from(frame[14] & 0x0f) * 4;
        let src = Ipv4Addr::new(frame[26], frame[27], frame[28], frame[29]);
        let Some(dhcp) = frame.get(14 + ihl + 8..) else {
            continue;
        };
        let Ok(m) = Message::decode(&mut Decoder::new(dhcp)) else {
            continue;
        };
        if m.opcode() == Opcode::BootReply && m.opts().msg_type() == Some(MessageType::Ack) {
            let c = m.chaddr();
            out.push((m.yiaddr(), Mac([c[0], c[1], c[2], c[3], c[4], c[5]]), src));
        }
    }
    out
}

/// The checks both storms end with: every client bound, no address ACKed to two MACs on the
/// wire, and every client's last ACKed lease in the database as its own.
fn check(
    site: &Site,
    pg: &Postgres,
    servers: Vec<Proc>,
    mut capture: Proc,
) -> Vec<(Ipv4Addr, Mac, Ipv4Addr)> {
    let acks = site.acks();
    assert_eq!(acks.len(), CLIENTS as usize, "every client is bound");
    // Nothing may be on its way when the capture stops: the servers go first.
    drop(servers);
    // Let tcpdump write everything it received (the file stops growing), then stop it.
    let size = || fs::metadata(site.path("wire.pcap")).map_or(0, |m| m.len());
    let mut last = size();
    // (Two quiet seconds: tcpdump may be starved of CPU on a busy machine.)
    let mut quiet = 0;
    for _ in 0..120 {
        std::thread::sleep(Duration::from_millis(500));
        let now = size();
        quiet = if now == last { quiet + 1 } else { 0 };
        if quiet == 4 {
            break;
        }
        last = now;
    }
    let _ = Command::new("kill")
        .args(["-INT", &capture.0.id().to_string()])
        .status();
    let _ = capture.0.wait();
    let stats = fs::read_to_string(site.path("tcpdump.log")).unwrap_or_default();
    assert!(
        stats.lines().any(|l| l == "0 packets dropped by kernel"),
        "the kernel dropped none of the capture: {stats}"
    );
    let wire = acks_on_the_wire(&site.path("wire.pcap"));
    // On the wire, no address was ACKed to two MACs that took it. (A server may still send a
    // late ACK to a client that has since asked another server for another address and moved
    // there: the client ignores it, as it answers a request it gave up, and the store has
    // moved the client's row; that address may then go to someone else.)
    let took: HashSet<(Mac, Ipv4Addr, Ipv4Addr)> = acks.iter().copied().collect();
    let mut holder: HashMap<Ipv4Addr, (Mac, Ipv4Addr)> = HashMap::new();
    for (addr, mac, server) in &wire {
        if !took.contains(&(*mac, *addr, *server)) {
            continue;
        }
        if let Some((other, by)) = holder.insert(*addr, (*mac, *server))
            && other != *mac
        {
            panic!(
                "{addr} was ACKed to {other} (by {by}) and to {mac} (by {server}), and both took it"
            );
        }
    }
    // And the clients agree: no two took one address.
    let mut taken: HashMap<Ipv4Addr, Mac> = HashMap::new();
    for (mac, addr, _) in &acks {
        if let Some(other) = taken.insert(*addr, *mac) {
            panic!("{addr} was taken by {other} and by {mac}");
        }
    }
    // Every ACK a client took is in the capture (libpcap's "received by filter" counter is
    // not a completeness check: it also counts what was still in flight when tcpdump stopped).
    let captured: HashSet<(Ipv4Addr, Mac, Ipv4Addr)> = wire.iter().copied().collect();
    for (mac, addr, server) in &acks {
        assert!(
            captured.contains(&(*addr, *mac, *server)),
            "the ACK of {addr} to {mac} by {server} is on the wire ({stats})"
        );
    }
    let rows: HashMap<String, String> = pg
        .psql("SELECT mac, host(address) FROM dhcp4_lease WHERE state = 'bound'")
        .lines()
        .filter_map(|l| l.split_once('|'))
        .map(|(m, a)| (m.to_owned(), a.to_owned()))
        .collect();
    for (mac, addr, _) in &acks {
        assert_eq!(
            rows.get(&mac.to_string()),
            Some(&addr.to_string()),
            "the ACKed lease {mac} {addr} is in the database"
        );
    }
    wire
}

fn prerequisites() -> bool {
    have(&["root", "ip", "tcpdump", "psql"]) && have_postgres()
}

/// Whether PostgreSQL's server programs are installed (as `common::have`: a skip outside CI, a
/// failure in it).
pub(crate) fn have_postgres() -> bool {
    if pg_bin().is_none() {
        // Same rule as `have`: a skip outside CI, a failure in it.
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "missing postgresql (initdb under /usr/lib/postgresql; scripts/install-deps.sh installs it)"
        );
        eprintln!("skipping: missing postgresql (initdb)");
        return false;
    }
    true
}

// ---------------------------------------------------------------------------------------------
// Tests.

/// Two servers share one database; a storm of 600 clients through a relay that forwards to
/// both; server A is killed with SIGKILL mid-storm. Every client is bound (B takes over),
/// no address is ACKed to two MACs on the wire, and every ACKed lease is in the database.
/// Adversarial: the servers allocate sequentially (no hashed start) and each client's first
/// DISCOVER reaches one server only, so the two offer one address to two clients constantly
/// and only the database keeps their ACKs apart: it must refuse some.
#[test]
fn netns_two_servers_one_database_survive_a_sigkill_mid_storm() {
    if !prerequisites() {
        return;
    }
    let pg = Postgres::start();
    let site = Site::new();
    let mut a = Some(site.server("a", &pg.url(), true));
    let b = site.server("b", &pg.url(), true);
    let capture = site.capture();
    let mut killed_at = None;
    site.storm(true, |acks| {
        // Mid-storm, once A has bound clients of its own (or two thirds are bound): SIGKILL.
        if killed_at.is_none()
            && acks.len() >= CLIENTS as usize / 3
            && (acks.iter().any(|a| a.2 == SERVER_A) || acks.len() >= 2 * CLIENTS as usize / 3)
        {
            killed_at = Some(acks.len());
            drop(a.take());
        }
    });
    let killed_at = killed_at.expect("the storm outlived a third of its ACKs");
    let wire = check(&site, &pg, vec![b], capture);
    let by_a = wire.iter().filter(|w| w.2 == SERVER_A).count();
    let by_b = wire.iter().filter(|w| w.2 == SERVER_B).count();
    assert!(by_b > 0, "B took over: A {by_a}, B {by_b}");
    let refused = (site.log("a") + &site.log("b"))
        .matches("address already bound by another server")
        .count();
    assert!(
        refused > 0,
        "the servers raced for addresses and the database refused some"
    );
    eprintln!(
        "A killed after {killed_at} ACKs; on the wire A {by_a}, B {by_b}, {} distinct \
         addresses; {refused} bindings refused by the database",
        wire.iter().map(|w| w.0).collect::<HashSet<_>>().len()
    );
}

/// The database is restarted (immediate shutdown) mid-storm: the servers ACK nothing new while
/// it is away, say so in their logs, and afterwards every client is bound, nothing is ACKed
/// twice, and every ACKed lease is in the database.
#[test]
fn netns_database_restart_mid_storm_corrupts_nothing() {
    if !prerequisites() {
        return;
    }
    let pg = Postgres::start();
    let site = Site::new();
    let a = site.server("a", &pg.url(), false);
    let b = site.server("b", &pg.url(), false);
    let capture = site.capture();
    let mut restarted = false;
    site.storm(false, |acks| {
        if !restarted && acks.len() >= CLIENTS as usize / 3 {
            restarted = true;
            pg.ctl("stop");
            std::thread::sleep(Duration::from_secs(2));
            pg.ctl("start");
        }
    });
    assert!(restarted, "the storm outlived a third of its ACKs");
    check(&site, &pg, vec![a, b], capture);
    let logs = site.log("a") + &site.log("b");
    assert!(
        logs.contains("LEASE STORE UNAVAILABLE") && logs.contains("lease store is back"),
        "the outage is logged loudly, and its end:\n{logs}"
    );
}

/// One relayed client message from inside the relay's namespace, and the first reply for its
/// `xid` within `wait` (`None`: silence).
fn relayed(
    sock: &std::net::UdpSocket,
    xid: u32,
    kind: MessageType,
    ciaddr: Ipv4Addr,
    chosen: Option<Ipv4Addr>,
    wait: Duration,
) -> Option<Message> {
    let mac = [0x52, 0x54, 0x03, 0, 0, xid as u8];
    let mut m = Message::new_with_id(
        xid,
        ciaddr,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        RELAY,
        &mac,
    );
    m.opts_mut().insert(DhcpOption::MessageType(kind));
    if let Some(addr) = chosen {
        m.opts_mut().insert(DhcpOption::RequestedIpAddress(addr));
        m.opts_mut().insert(DhcpOption::ServerIdentifier(SERVER_A));
    }
    let mut buf = Vec::new();
    m.encode(&mut Encoder::new(&mut buf)).unwrap();
    sock.send_to(&buf, (SERVER_A, 67)).unwrap();
    let end = Instant::now() + wait;
    let mut buf = [0u8; 1500];
    while Instant::now() < end {
        if let Ok((n, _)) = sock.recv_from(&mut buf)
            && let Ok(r) = Message::decode(&mut Decoder::new(&buf[..n]))
            && r.xid() == xid
            && r.opcode() == Opcode::BootReply
        {
            return Some(r);
        }
    }
    None
}

/// While the database is away, a lease it confirmed is still renewed, a new client gets an
/// offer but no ACK (and no NAK), and once it is back the new client is bound.
#[test]
fn netns_without_the_database_renewals_go_on_and_new_leases_wait() {
    if !prerequisites() {
        return;
    }
    let pg = Postgres::start();
    let site = Site::new();
    let _a = site.server("a", &pg.url(), false);
    // The relay's socket, opened inside its namespace by a thread that entered it.
    let ns = fs::File::open(format!("/var/run/netns/{}", site.ns("c"))).unwrap();
    let sock = std::thread::spawn(move || {
        nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 67)).unwrap()
    })
    .join()
    .unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let wait = Duration::from_secs(3);
    let kind = |r: &Option<Message>| r.as_ref().and_then(|m| m.opts().msg_type());
    let zero = Ipv4Addr::UNSPECIFIED;

    // Client 1 is bound while the database is there.
    let offer = relayed(&sock, 1, MessageType::Discover, zero, None, wait).expect("an offer");
    let first = offer.yiaddr();
    let ack = relayed(&sock, 1, MessageType::Request, zero, Some(first), wait);
    assert_eq!(kind(&ack), Some(MessageType::Ack));

    pg.ctl("stop");
    // Its renewal (ciaddr set, no server identifier) is still ACKed.
    let renew = relayed(&sock, 1, MessageType::Request, first, None, wait);
    assert_eq!(kind(&renew), Some(MessageType::Ack), "{}", site.log("a"));
    assert_eq!(renew.unwrap().yiaddr(), first);
    // Client 2 gets an offer, and neither an ACK nor a NAK for it.
    let offer = relayed(&sock, 2, MessageType::Discover, zero, None, wait).expect("an offer");
    let second = offer.yiaddr();
    let none = relayed(&sock, 2, MessageType::Request, zero, Some(second), wait);
    assert_eq!(kind(&none), None, "no reply without the database");
    assert!(site.log("a").contains("LEASE STORE UNAVAILABLE"));

    pg.ctl("start");
    let mut bound = None;
    for _ in 0..10 {
        let r = relayed(&sock, 2, MessageType::Request, zero, Some(second), wait);
        if kind(&r) == Some(MessageType::Ack) {
            bound = r;
            break;
        }
    }
    assert_eq!(
        bound.expect("bound once the database is back").yiaddr(),
        second
    );
    let rows = pg.psql("SELECT mac, host(address) FROM dhcp4_lease ORDER BY mac");
    assert_eq!(
        rows.trim(),
        format!("52:54:03:00:00:01|{first}\n52:54:03:00:00:02|{second}")
    );
}

/// The store alone, two connections standing for two servers: a second binding of an address
/// is refused with the holder's row, a client that moves leaves no row behind, a released
/// address can be taken, refresh hands each server the other's rows, and a URL with a
/// password is refused. DHCPv6 follows the same rules.
#[test]
fn pg_store_refuses_a_second_binding_in_both_families() {
    use pxe_stack::dhcp::{Change, Commit, Lease, LeaseStore, State};
    use pxe_stack::store::RefusedBinding;
    if !have(&["root", "psql"]) || !have_postgres() {
        return;
    }
    let pg = Postgres::start();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let open = |name: &str| {
            PgLeaseStore::connect(PgOptions {
                url: pg.url(),
                password: None,
                ca_file: None,
                server: name.into(),
            })
        };
        let (a, b) = (open("a").await.unwrap(), open("b").await.unwrap());
        let now = 1_900_000_000;
        let lease = |mac: u8, addr: u8, state| Lease {
            addr: Ipv4Addr::new(10, 78, 1, addr),
            mac: Mac([0x52, 0x54, 0, 0, 0, mac]),
            expires: now + 600,
            hostname: None,
            state,
            client_id: None,
        };
        let put = |l: Lease, before: Option<Lease>| Commit {
            changes: vec![Change {
                addr: l.addr,
                before,
                after: Some(l),
            }],
            snapshot: None,
            subnets: vec![(Ipv4Addr::new(10, 78, 0, 0).into(), 16)],
            now,
        };
        assert_eq!(
            a.commit(put(lease(1, 5, State::Bound), None))
                .await
                .unwrap(),
            vec![]
        );
        // B binds .5 to another MAC: refused, with A's row.
        let refused = b
            .commit(put(lease(2, 5, State::Bound), None))
            .await
            .unwrap();
        assert_eq!(
            refused,
            vec![RefusedBinding {
                addr: Ipv4Addr::new(10, 78, 1, 5),
                holder: Some(lease(1, 5, State::Bound))
            }]
        );
        // B learns A's row by refreshing (and A nothing of its own).
        assert_eq!(
            LeaseStore::<Lease>::refresh(&b).await.unwrap(),
            vec![lease(1, 5, State::Bound)]
        );
        assert_eq!(LeaseStore::<Lease>::refresh(&a).await.unwrap(), vec![]);
        // MAC 1 holds .5: B may not move it to .6 (a late request, or one B got before it knew
        // the lease), and is handed the lease it holds.
        assert_eq!(
            b.commit(put(lease(1, 6, State::Bound), None))
                .await
                .unwrap(),
            vec![RefusedBinding {
                addr: Ipv4Addr::new(10, 78, 1, 6),
                holder: Some(lease(1, 5, State::Bound))
            }]
        );
        // Once it gave .5 back, it may: its released row at .5 goes.
        assert_eq!(
            a.commit(put(lease(1, 5, State::Released), None))
                .await
                .unwrap(),
            vec![]
        );
        assert_eq!(
            b.commit(put(lease(1, 6, State::Bound), None))
                .await
                .unwrap(),
            vec![]
        );
        let rows = pg.psql("SELECT mac || ' ' || host(address) || ' ' || server FROM dhcp4_lease");
        assert_eq!(rows.trim(), "52:54:00:00:00:01 10.78.1.6 b");
        // Released: another client may take it.
        let released = lease(1, 6, State::Released);
        assert_eq!(a.commit(put(released, None)).await.unwrap(), vec![]);
        assert_eq!(
            a.commit(put(lease(3, 6, State::Bound), None))
                .await
                .unwrap(),
            vec![]
        );
        assert_eq!(
            LeaseStore::<Lease>::load(&b).await.unwrap(),
            vec![lease(3, 6, State::Bound)]
        );

        #[cfg(feature = "dhcp6")]
        {
            use pxe_stack::dhcp6::{Lease6, State6};
            let lease6 = |mac: u8, duid: &str| Lease6 {
                addr: "fd00:78::10".parse().unwrap(),
                mac: Mac([0x52, 0x54, 0, 0, 0, mac]),
                duid: duid.into(),
                iaid: 1,
                expires: now + 600,
                state: State6::Bound,
            };
            let put6 = |l: Lease6| pxe_stack::store::Commit {
                changes: vec![pxe_stack::store::Change {
                    addr: l.addr,
                    before: None,
                    after: Some(l),
                }],
                snapshot: None,
                subnets: vec![(
                    "fd00:78::".parse::<std::net::Ipv6Addr>().unwrap().into(),
                    64,
                )],
                now,
            };
            assert_eq!(a.commit(put6(lease6(1, "0003"))).await.unwrap(), vec![]);
            // The same host with another DUID keeps it; another host is refused.
            assert_eq!(b.commit(put6(lease6(1, "0001"))).await.unwrap(), vec![]);
            let refused = b.commit(put6(lease6(2, "0004"))).await.unwrap();
            assert_eq!(
                refused,
                vec![pxe_stack::store::RefusedBinding {
                    addr: "fd00:78::10".parse().unwrap(),
                    holder: Some(lease6(1, "0001"))
                }]
            );
            let rows = pg.psql("SELECT link || ' ' || mac || ' ' || duid FROM dhcp6_lease");
            assert_eq!(rows.trim(), "fd00:78::/64 52:54:00:00:00:01 0001");
        }

        // A stale request: MAC 7 holds .30 (bound through A) when B's late binding of .31
        // arrives (a request the client gave up on): refused, the client keeps .30.
        assert_eq!(
            a.commit(put(lease(7, 30, State::Bound), None))
                .await
                .unwrap(),
            vec![]
        );
        assert_eq!(
            b.commit(put(lease(7, 31, State::Bound), None))
                .await
                .unwrap(),
            vec![RefusedBinding {
                addr: Ipv4Addr::new(10, 78, 1, 31),
                holder: Some(lease(7, 30, State::Bound))
            }]
        );

        // Two servers bind one client to two addresses at once: A's transaction (here psql's,
        // held open) puts MAC 9 at .20 while B puts it at .21. B waits for A, then is refused
        // at .21 with the client's row at .20: the ACK for .21 must not go out.
        let mut psql = Command::new(pg.bin.join("psql"))
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(pg.dir.path())
            .args(["-U", "postgres", "-d", "postgres"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let mut sql = psql.stdin.take().unwrap();
        writeln!(
            sql,
            "BEGIN; INSERT INTO dhcp4_lease VALUES ('10.78.0.0/16', '10.78.1.20', \
             '52:54:00:00:00:09', 'mac:52:54:00:00:00:09', NULL, NULL, 'bound', {}, 'a', \
             nextval('dhcp4_lease_version'));",
            now + 600
        )
        .unwrap();
        sql.flush().unwrap();
        // Until psql's INSERT holds its row lock (the table shows the waiting insert).
        for _ in 0..100 {
            if pg
                .psql("SELECT count(*) FROM pg_locks WHERE locktype = 'transactionid'")
                .trim()
                != "0"
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let racing = b.commit(put(lease(9, 21, State::Bound), None));
        let commit_a = async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            writeln!(sql, "COMMIT;").unwrap();
            drop(sql);
        };
        let (refused, ()) = tokio::join!(racing, commit_a);
        assert!(psql.wait().unwrap().success());
        assert_eq!(
            refused.unwrap(),
            vec![RefusedBinding {
                addr: Ipv4Addr::new(10, 78, 1, 21),
                holder: Some(lease(9, 20, State::Bound))
            }]
        );

        let with_password = PgLeaseStore::connect(PgOptions {
            url: format!("{} password=secret", pg.url()),
            password: None,
            ca_file: None,
            server: "c".into(),
        })
        .await
        .unwrap_err()
        .to_string();
        assert!(
            with_password.contains("holds a password"),
            "{with_password}"
        );
        assert!(!with_password.contains("secret"), "{with_password}");
    });
}
