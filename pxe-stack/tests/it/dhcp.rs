//! DHCP server against real clients (busybox udhcpc, ISC dhclient) inside network namespaces
//! the tests create: `ns-server` and `ns-client`, joined by a veth pair.
//!
//! The server runs in a child process entered into the server namespace with `ip netns exec`:
//! the test binary re-executes itself with `DHCP_TEST_CHILD` set, which turns the
//! `dhcp::child_server` test into the server (test names carry their module: `--exact` needs
//! the `dhcp::` prefix). Everything (namespaces, processes, files) is removed by Drop guards,
//! also on failure. Without root or the client programs the tests print why and return, except
//! under `CI=true`, where they fail.

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pxe_stack::dhcp::{
    BootFiles, Config, LeaseFile, Range, Reservation, Server, State, Subnet, bind,
};
use pxe_stack::{Event, EventSink, Mac};

use crate::common::have;

const CHILD_ENV: &str = "DHCP_TEST_CHILD";
const SERVER_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);

// ---------------------------------------------------------------------------------------------
// The server child.

/// Appends every event as one JSON line to a file.
struct JsonLines(Mutex<fs::File>);

impl EventSink for JsonLines {
    fn emit(&self, event: Event) {
        if let (Ok(mut f), Ok(line)) = (self.0.lock(), serde_json::to_string(&event)) {
            let _ = writeln!(f, "{line}");
        }
    }
}

/// Not a test on its own: the body of the server process (see the module docs).
#[test]
fn child_server() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let dir = PathBuf::from(dir);
    // The server's own log (per-exchange info lines, warnings), as an operator would read it.
    let log = fs::File::create(dir.join("server.log")).unwrap();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("pxe_stack=info"))
        .with_ansi(false)
        .with_writer(Mutex::new(log))
        .try_init();
    let config: Config =
        serde_json::from_slice(&fs::read(dir.join("config.json")).unwrap()).unwrap();
    let iface = fs::read_to_string(dir.join("iface")).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // A ProxyDHCP service beside a DHCP server on the same address listens on port 4011 only:
    // `dhcp_port` then names another port (0: any) for the socket `Server` needs.
    let port = fs::read_to_string(dir.join("dhcp_port"))
        .map(|p| p.trim().parse().unwrap())
        .unwrap_or(67);
    rt.block_on(async {
        let socket = bind(Some(iface.trim()), port).unwrap();
        let events = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("events.jsonl"))
            .unwrap();
        let proxy = config.mode == pxe_stack::dhcp::Mode::Proxy;
        let mut server = Server::new(config).unwrap();
        if proxy {
            server = server.with_proxy_socket(bind(Some(iface.trim()), 4011).unwrap());
        }
        let server = server
            .with_lease_file(LeaseFile::new(dir.join("leases.json")))
            .unwrap()
            .with_events(Arc::new(JsonLines(Mutex::new(events))));
        #[cfg(feature = "ipv6-ra")]
        if let Ok(prefix) = fs::read_to_string(dir.join("ra_prefix")) {
            use pxe_stack::ra;
            let ad = ra::Advertisement::new(prefix.trim().parse().unwrap());
            let socket = ra::bind(iface.trim()).unwrap();
            let server = ra::Server::new(ad).with_interval(Duration::from_secs(1));
            tokio::spawn(server.serve(socket, std::future::pending()));
        }
        println!("dhcp-server-ready");
        // Runs until the parent kills the process: a crash, as far as the lease file can tell.
        server.serve(socket, std::future::pending()).await.unwrap();
    });
}

/// Not a test on its own: binds port 67 and prints the error (run without the capability).
#[test]
fn child_bind() {
    if std::env::var_os("DHCP_TEST_BIND").is_none() {
        return;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    match rt.block_on(async { bind(None, 67) }) {
        Ok(_) => println!("bind-ok"),
        Err(e) => println!("bind-error: {e}"),
    }
}

/// Not a test on its own: a relay-agent load client for the restart test. Sends DISCOVERs for
/// `count` MACs as a relay (giaddr) and REQUESTs for every OFFER, and appends each ACK as
/// "mac addr" to `acks`, until everything is acknowledged or the server goes quiet.
#[test]
fn child_storm() {
    use dhcproto::v4::{DhcpOption, Message, MessageType, Opcode};
    use dhcproto::{Decodable, Decoder, Encodable, Encoder};
    let Ok(dir) = std::env::var("DHCP_TEST_STORM") else {
        return;
    };
    let dir = PathBuf::from(dir);
    let count: u32 = fs::read_to_string(dir.join("storm-count"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let relay = Ipv4Addr::new(10, 77, 0, 2);
    let sock = std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 67)).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut acks = fs::File::create(dir.join("acks")).unwrap();
    let mac_of = |i: u32| {
        let b = i.to_be_bytes();
        [0x52, 0x54, 0x01, b[1], b[2], b[3]]
    };
    let send = |i: u32, kind: MessageType, addr: Option<Ipv4Addr>| {
        let mut m = Message::new_with_id(
            i,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            relay,
            &mac_of(i),
        );
        m.opts_mut().insert(DhcpOption::MessageType(kind));
        if let Some(a) = addr {
            m.opts_mut().insert(DhcpOption::RequestedIpAddress(a));
            m.opts_mut().insert(DhcpOption::ServerIdentifier(SERVER_IP));
        }
        let mut buf = Vec::new();
        m.encode(&mut Encoder::new(&mut buf)).unwrap();
        let _ = sock.send_to(&buf, (SERVER_IP, 67));
    };
    // A flood: DISCOVERs only, never a REQUEST; count the OFFERs until the server goes quiet.
    let discover_only = dir.join("storm-discover-only").exists();
    for i in 0..count {
        send(i, MessageType::Discover, None);
    }
    let mut offers = 0;
    let mut done = 0;
    let mut buf = [0u8; 1500];
    while done < count {
        let Ok((n, _)) = sock.recv_from(&mut buf) else {
            break; // the server went away
        };
        let Ok(m) = Message::decode(&mut Decoder::new(&buf[..n])) else {
            continue;
        };
        if m.opcode() != Opcode::BootReply {
            continue;
        }
        match m.opts().msg_type() {
            Some(MessageType::Offer) if discover_only => {
                offers += 1;
                fs::write(dir.join("offers"), offers.to_string()).unwrap();
                if offers == count {
                    break;
                }
            }
            Some(MessageType::Offer) => send(m.xid(), MessageType::Request, Some(m.yiaddr())),
            Some(MessageType::Ack) => {
                let c = m.chaddr();
                let mac = Mac([c[0], c[1], c[2], c[3], c[4], c[5]]);
                writeln!(acks, "{mac} {}", m.yiaddr()).unwrap();
                acks.flush().unwrap();
                done += 1;
            }
            _ => {}
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Guards.

fn run(cmd: &[&str]) {
    let out = Command::new(cmd[0]).args(&cmd[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// Two namespaces joined by a veth pair; removed on drop.
struct Netns {
    server: String,
    client: String,
    server_if: String,
    client_if: String,
    dir: tempfile::TempDir,
}

impl Netns {
    fn new() -> Netns {
        let id = format!(
            "{}{}",
            std::process::id() % 100_000,
            SEQ.fetch_add(1, Ordering::SeqCst)
        );
        let n = Netns {
            server: format!("dhcp-s-{id}"),
            client: format!("dhcp-c-{id}"),
            server_if: format!("ds{id}"),
            client_if: format!("dc{id}"),
            dir: tempfile::tempdir().unwrap(),
        };
        run(&["ip", "netns", "add", &n.server]);
        run(&["ip", "netns", "add", &n.client]);
        run(&[
            "ip",
            "link",
            "add",
            &n.server_if,
            "netns",
            &n.server,
            "type",
            "veth",
            "peer",
            "name",
            &n.client_if,
            "netns",
            &n.client,
        ]);
        n.exec_s(&[
            "ip",
            "addr",
            "add",
            &format!("{SERVER_IP}/24"),
            "dev",
            &n.server_if,
        ]);
        n.exec_s(&["ip", "link", "set", &n.server_if, "up"]);
        n.exec_s(&["ip", "link", "set", "lo", "up"]);
        n.exec_c(&["ip", "link", "set", &n.client_if, "up"]);
        n.exec_c(&["ip", "link", "set", "lo", "up"]);
        n
    }

    fn exec_s(&self, cmd: &[&str]) {
        let mut v = vec!["ip", "netns", "exec", &self.server];
        v.extend(cmd);
        run(&v);
    }

    fn exec_c(&self, cmd: &[&str]) {
        let mut v = vec!["ip", "netns", "exec", &self.client];
        v.extend(cmd);
        run(&v);
    }

    fn set_client_mac(&self, mac: &str) {
        self.exec_c(&["ip", "link", "set", &self.client_if, "down"]);
        self.exec_c(&["ip", "link", "set", &self.client_if, "address", mac]);
        self.exec_c(&["ip", "link", "set", &self.client_if, "up"]);
    }

    fn flush_client(&self) {
        self.exec_c(&["ip", "addr", "flush", "dev", &self.client_if]);
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Start the server with `config`; it is killed when the guard drops.
    fn start_server(&self, config: &Config) -> Proc {
        fs::write(
            self.path("config.json"),
            serde_json::to_vec(config).unwrap(),
        )
        .unwrap();
        fs::write(self.path("iface"), &self.server_if).unwrap();
        let exe = std::env::current_exe().unwrap();
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.server])
            .arg(exe)
            .args([
                "dhcp::child_server",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, self.dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let proc = Proc(child);
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            if line.contains("dhcp-server-ready") {
                return proc;
            }
        }
        panic!("the server child exited before it was ready");
    }

    /// The server child's log so far.
    fn log(&self) -> String {
        fs::read_to_string(self.path("server.log")).unwrap_or_default()
    }

    fn events(&self) -> Vec<serde_json::Value> {
        fs::read_to_string(self.path("events.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Run busybox udhcpc once with `extra` arguments; the variables its script saw on `bound`.
    fn udhcpc(&self, extra: &[&str]) -> HashMap<String, String> {
        let script = self.path("udhcpc.sh");
        let out = self.path("udhcpc.env");
        let _ = fs::remove_file(&out);
        fs::write(
            &script,
            format!(
                "#!/bin/sh\nif [ \"$1\" = bound ]; then env > {out}.tmp; mv {out}.tmp {out}; \
                 ip addr add $ip/$mask dev $interface; fi\nexit 0\n",
                out = out.display()
            ),
        )
        .unwrap();
        make_executable(&script);
        let script = script.to_str().unwrap().to_owned();
        let mut cmd = vec![
            "busybox",
            "udhcpc",
            "-i",
            &self.client_if,
            "-n",
            "-q",
            "-f",
            "-t",
            "5",
            "-T",
            "1",
            "-s",
            &script,
        ];
        cmd.extend(extra);
        let mut v = vec!["ip", "netns", "exec", &self.client];
        v.extend(cmd);
        let status = Command::new(v[0])
            .args(&v[1..])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "udhcpc failed: {status}");
        parse_env(&fs::read_to_string(&out).unwrap(), '=')
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting a namespace deletes the veth end inside it (and with it the peer).
        for ns in [&self.server, &self.client] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
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

fn make_executable(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(p, fs::Permissions::from_mode(0o755)).unwrap();
}

fn parse_env(text: &str, sep: char) -> HashMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once(sep))
        .map(|(k, v)| (k.to_owned(), v.trim_matches('\'').to_owned()))
        .collect()
}

fn config() -> Config {
    let mut subnet = Subnet::new(Ipv4Addr::new(10, 77, 0, 0), 24);
    subnet.pool = Some(Range {
        start: Ipv4Addr::new(10, 77, 0, 100),
        end: Ipv4Addr::new(10, 77, 0, 150),
    });
    subnet.router = Some(SERVER_IP);
    subnet.dns = vec![Ipv4Addr::new(10, 77, 0, 53), Ipv4Addr::new(10, 77, 0, 54)];
    subnet.domain = Some("cluster.test".into());
    subnet.mtu = Some(1400);
    Config {
        server_ip: SERVER_IP,
        subnets: vec![subnet],
        reservations: vec![Reservation {
            mac: "52:54:00:77:00:09".parse().unwrap(),
            addr: Ipv4Addr::new(10, 77, 0, 9),
            hostname: Some("master-0".into()),
        }],
        boot: BootFiles {
            ipxe_script_url: Some("http://10.77.0.1:8080/ipxe?mac={mac}".into()),
            ..BootFiles::default()
        },
        lease_secs: 600,
        ..Config::default()
    }
}

const PXE_BIOS: [&str; 4] = ["-V", "PXEClient:Arch:00000:UNDI:002001", "-x", "0x5d:0000"];

// ---------------------------------------------------------------------------------------------
// Tests.

#[test]
fn netns_udhcpc_gets_address_options_and_boot_file() {
    if !have(&["root", "ip", "busybox"]) {
        return;
    }
    let ns = Netns::new();
    let _server = ns.start_server(&config());

    // A plain OS client: address and options, no boot file.
    ns.set_client_mac("52:54:00:77:00:01");
    let env = ns.udhcpc(&[]);
    assert_eq!(env["ip"], "10.77.0.100");
    assert_eq!(env["subnet"], "255.255.255.0");
    assert_eq!(env["router"], "10.77.0.1");
    assert_eq!(
        env["dns"].split_whitespace().collect::<Vec<_>>(),
        ["10.77.0.53", "10.77.0.54"]
    );
    assert_eq!(env["domain"], "cluster.test");
    assert_eq!(env["mtu"], "1400");
    assert_eq!(env["lease"], "600");
    assert_eq!(env["serverid"], "10.77.0.1");
    assert!(!env.contains_key("boot_file"), "{env:?}");

    // BIOS PXE firmware: the first-stage iPXE binary over TFTP.
    ns.flush_client();
    ns.set_client_mac("52:54:00:77:00:02");
    let env = ns.udhcpc(&PXE_BIOS);
    assert_eq!(env["boot_file"], "undionly.kpxe");
    assert_eq!(env["siaddr"], "10.77.0.1");
    assert_eq!(env["tftp"], "10.77.0.1");

    // iPXE (user class "iPXE"): the script URL, per MAC.
    ns.flush_client();
    let env = ns.udhcpc(&["-x", "0x4d:69505845", "-x", "0x5d:0000"]);
    assert_eq!(
        env["boot_file"],
        "http://10.77.0.1:8080/ipxe?mac=52-54-00-77-00-02"
    );
    assert_eq!(env["ip"], "10.77.0.101");

    // Events per MAC reached the sink.
    let events = ns.events();
    let steps: Vec<String> = events
        .iter()
        .filter(|e| e["mac"] == "52:54:00:77:00:01")
        .map(|e| e["kind"]["Dhcp"]["step"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(steps, ["Discover", "Offer", "Request", "Ack"]);

    // And one info line per step in the server's log, in dnsmasq's words, without any sink.
    let log = ns.log();
    let iface = &ns.server_if;
    for line in [
        format!("DHCPDISCOVER({iface}) 52:54:00:77:00:01"),
        format!("DHCPOFFER({iface}) 10.77.0.100 52:54:00:77:00:01"),
        format!("DHCPREQUEST({iface}) 10.77.0.100 52:54:00:77:00:01"),
        format!("DHCPACK({iface}) 10.77.0.100 52:54:00:77:00:01"),
    ] {
        assert!(log.contains(&line), "{line:?} not in\n{log}");
    }
}

#[test]
fn netns_reservation_honoured() {
    if !have(&["root", "ip", "busybox"]) {
        return;
    }
    let ns = Netns::new();
    let _server = ns.start_server(&config());
    ns.set_client_mac("52:54:00:77:00:09");
    let env = ns.udhcpc(&[]);
    assert_eq!(env["ip"], "10.77.0.9");
    assert_eq!(env["hostname"], "master-0");
    // The ACK's log line names the host, as dnsmasq's does.
    let line = format!(
        "DHCPACK({}) 10.77.0.9 52:54:00:77:00:09 master-0",
        ns.server_if
    );
    assert!(ns.log().contains(&line), "{line:?} not in\n{}", ns.log());
}

#[test]
fn netns_dhclient_gets_lease() {
    if !have(&["root", "ip", "dhclient"]) {
        return;
    }
    let ns = Netns::new();
    let _server = ns.start_server(&config());
    ns.set_client_mac("52:54:00:77:00:09");
    let out = ns.path("dhclient.env");
    let script = ns.path("dhclient.sh");
    fs::write(
        &script,
        format!(
            "#!/bin/sh\ncase \"$reason\" in BOUND|RENEW|REBOOT) env > {o}.tmp; mv {o}.tmp {o};; esac\nexit 0\n",
            o = out.display()
        ),
    )
    .unwrap();
    make_executable(&script);
    let lease_file = ns.path("dhclient.leases");
    let pid_file = ns.path("dhclient.pid");
    let child = Command::new("ip")
        .args([
            "netns", "exec", &ns.client, "dhclient", "-4", "-1", "-d", "-sf",
        ])
        .arg(&script)
        .arg("-lf")
        .arg(&lease_file)
        .arg("-pf")
        .arg(&pid_file)
        .arg(&ns.client_if)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut client = Proc(child);
    // dhclient stays in the foreground after binding; wait for its script, or for it to give up.
    let env = loop {
        if let Ok(text) = fs::read_to_string(&out) {
            break parse_env(&text, '=');
        }
        if let Some(status) = client.0.try_wait().unwrap() {
            panic!("dhclient exited without a lease: {status}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // dhclient writes its lease file after the script returns: wait for it before the kill.
    let lease_file_text = || fs::read_to_string(&lease_file).unwrap_or_default();
    for _ in 0..100 {
        if lease_file_text().contains("fixed-address") {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(client);
    assert_eq!(env["new_ip_address"], "10.77.0.9");
    assert_eq!(env["new_host_name"], "master-0");
    assert_eq!(env["new_routers"], "10.77.0.1");
    assert_eq!(env["new_domain_name"], "cluster.test");
    assert_eq!(env["new_domain_name_servers"], "10.77.0.53 10.77.0.54");
    assert_eq!(env["new_dhcp_lease_time"], "600");
    assert_eq!(env["new_subnet_mask"], "255.255.255.0");
    assert_eq!(env["new_interface_mtu"], "1400");
    let lease = lease_file_text();
    assert!(lease.contains("fixed-address 10.77.0.9;"), "{lease}");
}

#[test]
fn netns_leases_survive_restart() {
    if !have(&["root", "ip", "busybox"]) {
        return;
    }
    let ns = Netns::new();
    let server = ns.start_server(&config());
    ns.set_client_mac("52:54:00:77:00:21");
    let first = ns.udhcpc(&[])["ip"].clone();
    // SIGKILL: no graceful shutdown; the lease must already be on disk.
    drop(server);
    let on_disk = LeaseFile::new(ns.path("leases.json")).load().unwrap();
    assert_eq!(on_disk.len(), 1);
    assert_eq!(on_disk[0].mac, "52:54:00:77:00:21".parse::<Mac>().unwrap());
    assert_eq!(on_disk[0].addr.to_string(), first);
    assert_eq!(on_disk[0].state, State::Bound);

    let _server = ns.start_server(&config());
    // Another host asks for the first host's address: it is not handed out twice.
    ns.flush_client();
    ns.set_client_mac("52:54:00:77:00:22");
    let second = ns.udhcpc(&["-r", &first])["ip"].clone();
    assert_ne!(second, first);
    // The first host comes back and gets its address again.
    ns.flush_client();
    ns.set_client_mac("52:54:00:77:00:21");
    assert_eq!(ns.udhcpc(&[])["ip"], first);
}

/// The pool's first address is already used by a host that answers ping: the client
/// namespace's veth carries it besides the DHCP client. Without `ping_probe_ms` (the default)
/// the server offers it at once; with it, the server pings it, finds it in use, quarantines it
/// and offers the next address after that one's probe stays silent.
#[test]
fn netns_ping_probe_skips_an_address_in_use() {
    if !have(&["root", "ip", "busybox"]) {
        return;
    }
    const SQUATTER: &str = "10.77.0.100";
    const MAC: &str = "52:54:00:77:00:31";
    let setup = || {
        let ns = Netns::new();
        ns.set_client_mac(MAC);
        ns.exec_c(&[
            "ip",
            "addr",
            "add",
            &format!("{SQUATTER}/24"),
            "dev",
            &ns.client_if,
        ]);
        ns
    };
    // The client's DHCP events, and the time from its DISCOVER to its OFFER.
    let events = |ns: &Netns| -> (Vec<serde_json::Value>, f64) {
        let mine: Vec<_> = ns
            .events()
            .into_iter()
            .filter(|e| e["mac"] == MAC)
            .collect();
        let at = |step: &str| {
            event_secs(
                mine.iter()
                    .find(|e| e["kind"]["Dhcp"]["step"] == step)
                    .unwrap_or_else(|| panic!("no {step} in {mine:?}")),
            )
        };
        let delay = at("Offer") - at("Discover");
        (mine, delay)
    };

    // Default: no probe, the first address is offered in the same breath as the DISCOVER.
    let ns = setup();
    let server = ns.start_server(&config());
    assert_eq!(ns.udhcpc(&[])["ip"], SQUATTER);
    let (_, delay) = events(&ns);
    assert!(delay < 0.05, "offer {delay} s after the discover");
    drop(server);
    drop(ns);

    // Probing: the squatter answers, so the next address is probed (silence for the whole
    // wait) and offered; the squatter's address never goes out.
    let ns = setup();
    let mut probing = config();
    probing.ping_probe_ms = Some(500);
    let _server = ns.start_server(&probing);
    let env = ns.udhcpc(&[]);
    assert_eq!(env["ip"], "10.77.0.101");
    let (mine, delay) = events(&ns);
    // The upper bound is a deadline for a broken setup, not a performance threshold.
    assert!(
        (0.5..3.0).contains(&delay),
        "offer {delay} s after the discover"
    );
    for e in &mine {
        let d = &e["kind"]["Dhcp"];
        assert_ne!(d["step"], "Decline", "{mine:?}");
        if d["step"] == "Offer" {
            assert_eq!(d["yiaddr"], "10.77.0.101", "{mine:?}");
        }
    }
    // Quarantined like a declined address; on disk with the ACK's write.
    let on_disk = LeaseFile::new(ns.path("leases.json")).load().unwrap();
    let q = on_disk
        .iter()
        .find(|l| l.addr.to_string() == SQUATTER)
        .unwrap_or_else(|| panic!("{on_disk:?}"));
    assert_eq!(q.state, State::Declined);
}

#[cfg(feature = "ipv6-ra")]
#[test]
fn netns_ipv6_ra_gives_slaac_address() {
    if !have(&["root", "ip"]) {
        return;
    }
    let ns = Netns::new();
    fs::write(ns.path("ra_prefix"), "fd00:77::").unwrap();
    let _server = ns.start_server(&config());
    // The client kernel autoconfigures from the advertisement. Poll (this is a deadline for a
    // broken setup, not a performance threshold).
    for _ in 0..600 {
        let out = Command::new("ip")
            .args([
                "-n",
                &ns.client,
                "-6",
                "addr",
                "show",
                "dev",
                &ns.client_if,
                "scope",
                "global",
            ])
            .output()
            .unwrap();
        if String::from_utf8_lossy(&out.stdout).contains("inet6 fd00:77::") {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("no SLAAC address from the router advertisement");
}

#[test]
fn netns_bind_error_names_the_missing_capability() {
    if !have(&["root", "ip", "setpriv"]) {
        return;
    }
    let ns = Netns::new();
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns.server,
            "setpriv",
            "--bounding-set",
            "-net_bind_service",
        ])
        .arg(std::env::current_exe().unwrap())
        .args([
            "dhcp::child_bind",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("DHCP_TEST_BIND", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| l.contains("bind-"))
        .unwrap_or_default();
    assert!(line.contains("needs CAP_NET_BIND_SERVICE"), "{stdout}");
    assert!(line.contains("port 67"), "{line}");
}

/// Seconds (as f64) of a serialized `SystemTime`.
fn event_secs(e: &serde_json::Value) -> f64 {
    e["at"]["secs_since_epoch"].as_f64().unwrap_or(0.0)
        + e["at"]["nanos_since_epoch"].as_f64().unwrap_or(0.0) / 1e9
}

/// Polls of 50 ms before a QEMU test gives up (`DHCP_TEST_WAIT_STEPS` overrides it).
const WAIT_STEPS: u32 = 2400;

/// Bridge a tap device to the client end of the veth pair, for QEMU; returns the tap's name.
fn add_tap(ns: &Netns) -> String {
    let (br, tap) = (format!("b{}", ns.client_if), format!("t{}", ns.client_if));
    ns.exec_c(&["ip", "link", "add", &br, "type", "bridge"]);
    ns.exec_c(&["ip", "link", "set", &ns.client_if, "master", &br]);
    ns.exec_c(&["ip", "tuntap", "add", "dev", &tap, "mode", "tap"]);
    ns.exec_c(&["ip", "link", "set", &tap, "master", &br]);
    ns.exec_c(&["ip", "link", "set", &tap, "up"]);
    ns.exec_c(&["ip", "link", "set", &br, "up"]);
    tap
}

/// Power on a diskless BIOS VM (TCG) whose NIC ROM is QEMU's iPXE, in the client namespace.
fn boot_qemu(ns: &Netns, tap: &str, mac: &str) -> Proc {
    boot_qemu_with(ns, tap, &format!("virtio-net-pci,netdev=n0,mac={mac}"), &[])
}

const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";

/// Power on a diskless UEFI VM (OVMF, TCG) that netboots with OVMF's own network stack (no
/// iPXE ROM), with extra `-fw_cfg` knobs.
fn boot_ovmf(ns: &Netns, tap: &str, mac: &str, fw_cfg: &[&str]) -> Proc {
    let vars = ns.path("OVMF_VARS.fd");
    fs::copy(OVMF_VARS, &vars).unwrap();
    let mut extra = vec![
        "-drive".to_owned(),
        format!("if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE}"),
        "-drive".to_owned(),
        format!("if=pflash,format=raw,unit=1,file={}", vars.display()),
    ];
    for f in fw_cfg {
        extra.push("-fw_cfg".to_owned());
        extra.push((*f).to_owned());
    }
    boot_qemu_with(
        ns,
        tap,
        &format!("virtio-net-pci,netdev=n0,mac={mac},romfile="),
        &extra,
    )
}

fn boot_qemu_with(ns: &Netns, tap: &str, nic: &str, extra: &[String]) -> Proc {
    let serial = ns.path("serial.log");
    let child = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns.client,
            "qemu-system-x86_64",
            "-machine",
            "pc",
            "-accel",
            "tcg",
            "-m",
            "256",
        ])
        .args([
            "-nodefaults",
            "-display",
            "none",
            "-monitor",
            "none",
            "-no-reboot",
            "-boot",
            "n",
        ])
        .arg("-serial")
        .arg(format!("file:{}", serial.display()))
        .args([
            "-netdev",
            &format!("tap,id=n0,ifname={tap},script=no,downscript=no"),
        ])
        .args(["-device", nic])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Proc(child)
}

/// Wait for the server's event `step` for `mac`. The deadline is for a broken setup (TCG boots
/// to the ROM in a few seconds), not a performance threshold.
fn wait_event(ns: &Netns, vm: &mut Proc, mac: &str, step: &str) -> serde_json::Value {
    let steps = std::env::var("DHCP_TEST_WAIT_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(WAIT_STEPS);
    for _ in 0..steps {
        if let Some(e) = ns
            .events()
            .into_iter()
            .find(|e| e["mac"] == mac && e["kind"]["Dhcp"]["step"] == step)
        {
            return e;
        }
        if let Some(status) = vm.0.try_wait().unwrap() {
            panic!("qemu exited: {status}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let seen: Vec<_> = ns
        .events()
        .into_iter()
        .filter(|e| e["mac"] == mac)
        .map(|e| e["kind"].clone())
        .collect();
    let serial = fs::read(ns.path("serial.log")).unwrap_or_default();
    panic!(
        "no {step} event for {mac}; events {seen:?}; serial: {}",
        String::from_utf8_lossy(&serial[serial.len().saturating_sub(2000)..])
    );
}

/// A one-shot TCP listener on the server's port 8080 (busybox nc) that records what iPXE sends.
fn http_listener(ns: &Netns) -> (Proc, PathBuf) {
    let out = ns.path("http-request.txt");
    let child = Command::new("ip")
        .args([
            "netns", "exec", &ns.server, "busybox", "nc", "-l", "-p", "8080",
        ])
        .stdout(fs::File::create(&out).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    (Proc(child), out)
}

/// Wait until the listener saw the firmware's request line; returns it.
fn wait_request(vm: &mut Proc, file: &Path) -> String {
    let steps = std::env::var("DHCP_TEST_WAIT_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(WAIT_STEPS);
    for _ in 0..steps {
        let text = fs::read_to_string(file).unwrap_or_default();
        if let Some(line) = text
            .lines()
            .find(|l| l.starts_with("GET ") || l.starts_with("HEAD "))
        {
            return line.trim().to_owned();
        }
        if let Some(status) = vm.0.try_wait().unwrap() {
            panic!("qemu exited: {status}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("iPXE never fetched its script");
}

/// QEMU's own NIC ROM (iPXE, BIOS mode, TCG) does DHCP against the server: it is recognised as
/// iPXE and gets the per-MAC script URL, with no ProxyDHCP wait.
#[test]
fn netns_qemu_ipxe_gets_script_url() {
    if !have(&["root", "ip", "qemu-system-x86_64"]) {
        return;
    }
    let ns = Netns::new();
    let tap = add_tap(&ns);
    // With the `ipv6-ra` feature the server also advertises a ULA prefix, so iPXE's IPv6
    // autoconfiguration ends at once instead of timing out before the script is fetched.
    #[cfg(feature = "ipv6-ra")]
    fs::write(ns.path("ra_prefix"), "fd00:77::").unwrap();
    let _server = ns.start_server(&config());
    let (_http, requests) = http_listener(&ns);
    let mac = "52:54:00:77:00:31";
    let started = std::time::SystemTime::now();
    let mut vm = boot_qemu(&ns, &tap, mac);
    let ack = wait_event(&ns, &mut vm, mac, "Ack");
    // iPXE took the boot file from our ACK: it fetches the script from the URL given.
    assert_eq!(
        wait_request(&mut vm, &requests),
        "GET /ipxe?mac=52-54-00-77-00-31 HTTP/1.1"
    );
    let fetched = std::time::SystemTime::now();
    drop(vm);
    assert_eq!(
        ack["kind"]["Dhcp"]["boot_file"],
        "http://10.77.0.1:8080/ipxe?mac=52-54-00-77-00-31"
    );
    assert_eq!(ack["kind"]["Dhcp"]["yiaddr"], "10.77.0.100");
    let events = ns.events();
    let discover = events
        .iter()
        .find(|e| e["mac"] == mac && e["kind"]["Dhcp"]["step"] == "Discover")
        .unwrap();
    let start = started
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let fetched = fetched
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    eprintln!(
        "qemu iPXE (ipv6-ra {}): power-on to DISCOVER {:.2} s, DISCOVER to ACK {:.3} s, ACK to script GET seen {:.2} s",
        cfg!(feature = "ipv6-ra"),
        event_secs(discover) - start,
        event_secs(&ack) - event_secs(discover),
        fetched - event_secs(&ack)
    );
}

/// dnsmasq in the server namespace as the address-giving DHCP server (pool 10.77.0.200-210, no
/// boot options, no DNS), with `extra` arguments; killed when the guard drops.
fn dnsmasq(ns: &Netns, extra: &[&str]) -> Proc {
    let child = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns.server,
            "dnsmasq",
            "--keep-in-foreground",
            "--conf-file=/dev/null",
        ])
        .args(["--port=0", "--bind-interfaces", "--no-ping", "--pid-file="])
        .arg(format!("--interface={}", ns.server_if))
        .arg("--dhcp-range=10.77.0.200,10.77.0.210,255.255.255.0,1h")
        .arg(format!(
            "--dhcp-leasefile={}",
            ns.path("dnsmasq.leases").display()
        ))
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Proc(child)
}

/// ProxyDHCP beside dnsmasq (which hands out the address): QEMU's iPXE takes the script URL
/// from our proxy offer and fetches it. (iPXE uses the ProxyDHCP offer directly, since it holds
/// next-server and boot file, and sends no port 4011 request; the next test covers that
/// exchange.)
#[test]
fn netns_qemu_ipxe_through_proxydhcp_beside_dnsmasq() {
    if !have(&["root", "ip", "qemu-system-x86_64", "dnsmasq", "busybox"]) {
        return;
    }
    let ns = Netns::new();
    let tap = add_tap(&ns);
    let _dnsmasq = dnsmasq(&ns, &[]);
    let mut c = config();
    c.mode = pxe_stack::dhcp::Mode::Proxy;
    c.subnets.clear();
    c.reservations.clear();
    #[cfg(feature = "ipv6-ra")]
    fs::write(ns.path("ra_prefix"), "fd00:77::").unwrap();
    let _server = ns.start_server(&c);
    let (_http, requests) = http_listener(&ns);
    let mac = "52:54:00:77:00:32";
    let mut vm = boot_qemu(&ns, &tap, mac);
    assert_eq!(
        wait_request(&mut vm, &requests),
        "GET /ipxe?mac=52-54-00-77-00-32 HTTP/1.1"
    );
    drop(vm);
    let offer = ns
        .events()
        .into_iter()
        .find(|e| e["mac"] == mac && e["kind"]["Dhcp"]["step"] == "Offer")
        .unwrap();
    assert_eq!(
        offer["kind"]["Dhcp"]["boot_file"],
        "http://10.77.0.1:8080/ipxe?mac=52-54-00-77-00-32"
    );
    assert_eq!(offer["kind"]["Dhcp"]["yiaddr"], serde_json::Value::Null);
    // The address came from dnsmasq.
    let leases = fs::read_to_string(ns.path("dnsmasq.leases")).unwrap_or_default();
    assert!(
        leases.contains(mac) && leases.contains("10.77.0.2"),
        "{leases}"
    );
}

/// The port 4011 exchange, with ProxyDHCP on the DHCP server's own address (PXE 2.1: the DHCP
/// server's offer carries option 60 `PXEClient` and no boot file, and the ProxyDHCP service
/// listens on port 4011 only). dnsmasq hands out the address; QEMU's iPXE, finding no boot file
/// in that offer, sends a ProxyDHCPREQUEST to port 4011 of the same address after its DHCPACK.
/// Our server answers it with the script URL, and iPXE fetches the script.
///
/// A proxy on an address of its own is never asked on port 4011 by iPXE or by EDK2's PXE:
/// both take the boot file straight from our port 67 offer (iPXE's `dhcp_has_pxeopts`, EDK2's
/// discovery control bit 3 in `PxeBcSelectBootPrompt`; see the test above).
#[test]
fn netns_qemu_ipxe_proxydhcp_request_on_port_4011() {
    if !have(&["root", "ip", "qemu-system-x86_64", "dnsmasq", "busybox"]) {
        return;
    }
    let ns = Netns::new();
    let tap = add_tap(&ns);
    let _dnsmasq = dnsmasq(&ns, &["--dhcp-option-force=60,PXEClient"]);
    let mut c = config();
    c.mode = pxe_stack::dhcp::Mode::Proxy;
    c.subnets.clear();
    c.reservations.clear();
    // dnsmasq owns port 67 on this address: our server listens on port 4011 (and on a port
    // nobody sends to for the socket it needs besides).
    fs::write(ns.path("dhcp_port"), "0").unwrap();
    #[cfg(feature = "ipv6-ra")]
    fs::write(ns.path("ra_prefix"), "fd00:77::").unwrap();
    let _server = ns.start_server(&c);
    let (_http, requests) = http_listener(&ns);
    let mac = "52:54:00:77:00:35";
    let mut vm = boot_qemu(&ns, &tap, mac);
    assert_eq!(
        wait_request(&mut vm, &requests),
        "GET /ipxe?mac=52-54-00-77-00-35 HTTP/1.1"
    );
    drop(vm);
    // Only the port 4011 exchange reached our server: a REQUEST and our ACK with the URL.
    let mine: Vec<_> = ns
        .events()
        .into_iter()
        .filter(|e| e["mac"] == mac)
        .map(|e| e["kind"]["Dhcp"].clone())
        .collect();
    let steps: Vec<_> = mine.iter().map(|d| d["step"].as_str().unwrap()).collect();
    assert_eq!(steps.get(..2), Some(&["Request", "Ack"][..]), "{mine:?}");
    assert!(
        steps.iter().all(|s| ["Request", "Ack"].contains(s)),
        "{mine:?}"
    );
    assert_eq!(
        mine[1]["boot_file"],
        "http://10.77.0.1:8080/ipxe?mac=52-54-00-77-00-35"
    );
    assert_eq!(mine[1]["yiaddr"], serde_json::Value::Null);
    // The address came from dnsmasq.
    let leases = fs::read_to_string(ns.path("dnsmasq.leases")).unwrap_or_default();
    assert!(
        leases.contains(mac) && leases.contains("10.77.0.2"),
        "{leases}"
    );
}

/// UEFI PXE firmware (OVMF, arch 7 or 9, class PXEClient) gets the configured x86-64 EFI binary
/// over TFTP from the server.
#[test]
fn netns_qemu_ovmf_pxe_gets_efi_binary() {
    if !have(&["root", "ip", "qemu-system-x86_64", OVMF_CODE]) {
        return;
    }
    let ns = Netns::new();
    let tap = add_tap(&ns);
    let mut c = config();
    c.boot.efi_x64 = Some("snponly.efi".into());
    let _server = ns.start_server(&c);
    let mac = "52:54:00:77:00:33";
    let mut vm = boot_ovmf(
        &ns,
        &tap,
        mac,
        &["name=opt/org.tianocore/IPv6PXESupport,string=n"],
    );
    let ack = wait_event(&ns, &mut vm, mac, "Ack");
    drop(vm);
    assert_eq!(ack["kind"]["Dhcp"]["boot_file"], "snponly.efi");
    assert_eq!(ack["kind"]["Dhcp"]["yiaddr"], "10.77.0.100");
}

/// UEFI HTTP boot (OVMF, class HTTPClient): the offer carries the URL and option 60
/// `HTTPClient`, and the firmware fetches the URL.
#[test]
fn netns_qemu_ovmf_http_boot_fetches_url() {
    if !have(&["root", "ip", "qemu-system-x86_64", "busybox", OVMF_CODE]) {
        return;
    }
    let ns = Netns::new();
    let tap = add_tap(&ns);
    let mut c = config();
    c.boot.http_boot_url = Some("http://10.77.0.1:8080/snponly.efi".into());
    let _server = ns.start_server(&c);
    let (_http, requests) = http_listener(&ns);
    let mac = "52:54:00:77:00:34";
    // Without PXE entries OVMF goes straight to HTTP boot.
    let mut vm = boot_ovmf(
        &ns,
        &tap,
        mac,
        &[
            "name=opt/org.tianocore/IPv4PXESupport,string=n",
            "name=opt/org.tianocore/IPv6PXESupport,string=n",
        ],
    );
    let line = wait_request(&mut vm, &requests);
    drop(vm);
    assert!(line.ends_with(" /snponly.efi HTTP/1.1"), "{line}");
    let ack = ns
        .events()
        .into_iter()
        .find(|e| e["mac"] == mac && e["kind"]["Dhcp"]["step"] == "Ack")
        .unwrap();
    assert_eq!(
        ack["kind"]["Dhcp"]["boot_file"],
        "http://10.77.0.1:8080/snponly.efi"
    );
}

/// A server killed (SIGKILL) in the middle of a storm of 3000 relayed clients has every lease
/// it acknowledged on disk: ACKs leave only after the lease file is written.
#[test]
fn netns_restart_mid_storm_loses_no_acknowledged_lease() {
    if !have(&["root", "ip"]) {
        return;
    }
    let ns = Netns::new();
    ns.exec_c(&["ip", "addr", "add", "10.77.0.2/16", "dev", &ns.client_if]);
    let mut c = config();
    c.subnets[0].prefix_len = 16;
    c.subnets[0].pool = Some(Range {
        start: Ipv4Addr::new(10, 77, 1, 0),
        end: Ipv4Addr::new(10, 77, 20, 255),
    });
    let server = ns.start_server(&c);
    fs::write(ns.path("storm-count"), "3000").unwrap();
    let child = Command::new("ip")
        .args(["netns", "exec", &ns.client])
        .arg(std::env::current_exe().unwrap())
        .args([
            "dhcp::child_storm",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("DHCP_TEST_STORM", ns.dir.path())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut storm = Proc(child);
    let acked = || fs::read_to_string(ns.path("acks")).unwrap_or_default();
    // Kill the server once a first part of the storm is acknowledged.
    for _ in 0..2400 {
        if acked().lines().count() >= 300 || storm.0.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    drop(server);
    let status = storm.0.wait().unwrap();
    assert!(status.success(), "storm client failed: {status}");
    let acks = acked();
    let n_acks = acks.lines().count();
    assert!(n_acks >= 300, "only {n_acks} acks before the kill");
    let on_disk: HashMap<Mac, (Ipv4Addr, State)> = LeaseFile::new(ns.path("leases.json"))
        .load()
        .unwrap()
        .into_iter()
        .map(|l| (l.mac, (l.addr, l.state)))
        .collect();
    for line in acks.lines() {
        let (mac, addr) = line.split_once(' ').unwrap();
        let mac: Mac = mac.parse().unwrap();
        let addr: Ipv4Addr = addr.parse().unwrap();
        assert_eq!(
            on_disk.get(&mac),
            Some(&(addr, State::Bound)),
            "acknowledged {mac} {addr} is not on disk"
        );
    }
    eprintln!(
        "{n_acks} acknowledged before the kill, {} leases on disk",
        on_disk.len()
    );
    // The restarted server loads them all.
    let _server = ns.start_server(&c);
}

/// 151 strangers DISCOVER a 51-address pool and never REQUEST (issue 19): each still gets an
/// offer (the oldest gives way), and then busybox udhcpc gets an address and the reserved host
/// its reservation.
#[test]
fn netns_discover_flood_does_not_starve_a_real_client() {
    if !have(&["root", "ip", "busybox"]) {
        return;
    }
    let ns = Netns::new();
    ns.exec_c(&["ip", "addr", "add", "10.77.0.2/24", "dev", &ns.client_if]);
    let _server = ns.start_server(&config());
    fs::write(ns.path("storm-count"), "151").unwrap();
    fs::write(ns.path("storm-discover-only"), "").unwrap();
    let status = Command::new("ip")
        .args(["netns", "exec", &ns.client])
        .arg(std::env::current_exe().unwrap())
        .args([
            "dhcp::child_storm",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("DHCP_TEST_STORM", ns.dir.path())
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "flood client failed: {status}");
    let offers = fs::read_to_string(ns.path("offers")).unwrap_or_default();
    assert_eq!(offers, "151", "every stranger got an offer");
    ns.exec_c(&["ip", "addr", "flush", "dev", &ns.client_if]);

    ns.set_client_mac("52:54:00:77:00:41");
    let ip: Ipv4Addr = ns.udhcpc(&[])["ip"].parse().unwrap();
    assert!((100..=150).contains(&ip.octets()[3]), "{ip}");
    ns.flush_client();
    ns.set_client_mac("52:54:00:77:00:09");
    assert_eq!(ns.udhcpc(&[])["ip"], "10.77.0.9");
    let on_disk = LeaseFile::new(ns.path("leases.json")).load().unwrap();
    assert_eq!(on_disk.len(), 2, "{on_disk:?}");
}

/// A reservation wins over a stale dynamic lease of another MAC (issue 19): the lease file of
/// an older plan gives the reserved address, and a reserved address inside the pool, to other
/// MACs; busybox udhcpc with the reserved MACs gets those addresses at once.
#[test]
fn netns_reservation_evicts_a_stale_dynamic_lease() {
    if !have(&["root", "ip", "busybox"]) {
        return;
    }
    let ns = Netns::new();
    let mut c = config();
    c.reservations.push(Reservation {
        mac: "52:54:00:77:00:0a".parse().unwrap(),
        addr: Ipv4Addr::new(10, 77, 0, 120),
        hostname: Some("worker-0".into()),
    });
    let expires = pxe_stack::dhcp::unix_secs(std::time::SystemTime::now()) + 3000;
    let stale = |addr: Ipv4Addr, mac: &str| pxe_stack::dhcp::Lease {
        addr,
        mac: mac.parse().unwrap(),
        expires,
        hostname: None,
        state: State::Bound,
        client_id: None,
    };
    LeaseFile::new(ns.path("leases.json"))
        .save(&[
            stale(Ipv4Addr::new(10, 77, 0, 9), "52:54:00:77:00:51"),
            stale(Ipv4Addr::new(10, 77, 0, 120), "52:54:00:77:00:52"),
        ])
        .unwrap();
    let _server = ns.start_server(&c);
    ns.set_client_mac("52:54:00:77:00:09");
    let env = ns.udhcpc(&[]);
    assert_eq!(env["ip"], "10.77.0.9");
    assert_eq!(env["hostname"], "master-0");
    ns.flush_client();
    ns.set_client_mac("52:54:00:77:00:0a");
    assert_eq!(ns.udhcpc(&[])["ip"], "10.77.0.120");
    let log = ns.log();
    assert!(
        log.lines().any(|l| l.contains("WARN")
            && l.contains("52:54:00:77:00:09")
            && l.contains("52:54:00:77:00:51")
            && l.contains("evicted")),
        "no eviction warning naming both MACs in\n{log}"
    );
    let on_disk: HashMap<Ipv4Addr, Mac> = LeaseFile::new(ns.path("leases.json"))
        .load()
        .unwrap()
        .into_iter()
        .map(|l| (l.addr, l.mac))
        .collect();
    assert_eq!(
        on_disk[&Ipv4Addr::new(10, 77, 0, 9)].to_string(),
        "52:54:00:77:00:09"
    );
    assert_eq!(
        on_disk[&Ipv4Addr::new(10, 77, 0, 120)].to_string(),
        "52:54:00:77:00:0a"
    );
}

/// A lease file in a missing directory fails at startup (issue 19), not with one ERROR per
/// withheld ACK.
#[test]
fn lease_file_in_a_missing_directory_fails_at_startup() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing/leases.json");
    let err = Server::new(config())
        .unwrap()
        .with_lease_file(LeaseFile::new(&path))
        .unwrap_err();
    assert!(
        matches!(err, pxe_stack::dhcp::Error::LeaseFile { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("missing/leases.json"), "{err}");
}

/// The lease-identity rule against busybox udhcpc sending two client identifiers (option 61)
/// from one MAC: by default (MAC) both get the same address; with
/// `LeaseIdentity::ClientId` each gets its own, and each keeps it.
#[test]
fn netns_lease_identity_mac_and_client_id() {
    if !have(&["root", "ip", "busybox"]) {
        return;
    }
    for (identity, same) in [
        (pxe_stack::LeaseIdentity::Mac, true),
        (pxe_stack::LeaseIdentity::ClientId, false),
    ] {
        let ns = Netns::new();
        let mut c = config();
        c.lease_identity = identity;
        let _server = ns.start_server(&c);
        ns.set_client_mac("52:54:00:77:00:61");
        let get = |id: &str| {
            ns.flush_client();
            ns.udhcpc(&["-x", &format!("0x3d:{id}")])["ip"].clone()
        };
        let a = get("00aa01");
        let b = get("00bb02");
        assert_eq!(a == b, same, "{identity:?}: {a} {b}");
        assert_eq!(get("00aa01"), a, "{identity:?}");
        let on_disk = LeaseFile::new(ns.path("leases.json")).load().unwrap();
        assert_eq!(on_disk.len(), if same { 1 } else { 2 }, "{on_disk:?}");
    }
}
