//! The DNS server against dig, inside a network namespace this module creates (root): the
//! server's sockets are bound in the namespace by a thread that entered it, and dig runs there
//! through `ip netns exec`, from an address inside the served subnet (172.22.0.1) or outside
//! it (10.9.9.9).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use pxe_stack::dns::{Config, Entry, HostAddr, Server, Value};
use pxe_stack::{HostLookup, Mac};
use tokio::sync::oneshot;

use crate::common::have;

const INSIDE: &str = "172.22.0.1";
const OUTSIDE: &str = "10.9.9.9";

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A namespace whose loopback holds both client addresses; removed on drop.
struct Netns(String);

impl Netns {
    fn new() -> Netns {
        let name = format!(
            "dns-{}-{}",
            std::process::id() % 100_000,
            SEQ.fetch_add(1, Ordering::SeqCst)
        );
        run(&["ip", "netns", "add", &name]);
        let ns = Netns(name);
        ns.exec(&["ip", "link", "set", "lo", "up"]);
        ns.exec(&["ip", "addr", "add", &format!("{INSIDE}/24"), "dev", "lo"]);
        ns.exec(&["ip", "addr", "add", &format!("{OUTSIDE}/24"), "dev", "lo"]);
        ns
    }

    fn exec(&self, cmd: &[&str]) -> String {
        let mut v = vec!["ip", "netns", "exec", &self.0];
        v.extend_from_slice(cmd);
        run(&v)
    }

    /// A UDP socket and a TCP listener on `addr` (port 0: any), bound inside the namespace.
    fn bind(&self, addr: &str) -> (tokio::net::UdpSocket, tokio::net::TcpListener, u16) {
        bind(Some(format!("/run/netns/{}", self.0)), addr)
    }

    /// `dig` from `src` at our server: the status and the answer lines as `name type data`.
    fn dig(&self, port: u16, src: &str, args: &[&str]) -> (String, Vec<String>) {
        self.dig_at(INSIDE, port, src, args)
    }

    /// [`dig`](Self::dig) at the server on `server`.
    fn dig_at(&self, server: &str, port: u16, src: &str, args: &[&str]) -> (String, Vec<String>) {
        let port = port.to_string();
        let mut v = vec![
            "dig",
            "+time=2",
            "+tries=1",
            "+noall",
            "+answer",
            "+comments",
            "-p",
            &port,
            "-b",
            src,
        ];
        let server = format!("@{server}");
        v.push(&server);
        v.extend_from_slice(args);
        let out = self.exec(&v);
        let status = out
            .lines()
            .find_map(|l| l.split("status: ").nth(1))
            .and_then(|s| s.split(',').next())
            .unwrap_or("no answer")
            .to_owned();
        let answers = out
            .lines()
            .filter(|l| !l.starts_with(';') && !l.trim().is_empty())
            .map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                // name ttl class type data...
                format!("{} {} {}", f[0], f[3], f[4..].join(" "))
            })
            .collect();
        (status, answers)
    }
}

/// Binds UDP and TCP on `addr`, port 0, inside the namespace at `netns` (or this process's).
/// The server's forwarding sockets are opened by the runtime's threads, which stay in the
/// test's own namespace: the upstream in these tests listens there, on 127.0.0.1.
fn bind(
    netns: Option<String>,
    addr: &str,
) -> (tokio::net::UdpSocket, tokio::net::TcpListener, u16) {
    let addr: IpAddr = addr.parse().unwrap();
    let (udp, tcp) = std::thread::spawn(move || {
        if let Some(path) = netns {
            let f = std::fs::File::open(path).unwrap();
            nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        }
        let udp = std::net::UdpSocket::bind((addr, 0)).unwrap();
        let port = udp.local_addr().unwrap().port();
        let tcp = std::net::TcpListener::bind((addr, port)).unwrap();
        (udp, tcp)
    })
    .join()
    .unwrap();
    let port = udp.local_addr().unwrap().port();
    udp.set_nonblocking(true).unwrap();
    tcp.set_nonblocking(true).unwrap();
    (
        tokio::net::UdpSocket::from_std(udp).unwrap(),
        tokio::net::TcpListener::from_std(tcp).unwrap(),
        port,
    )
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn run(cmd: &[&str]) -> String {
    let out = Command::new(cmd[0]).args(&cmd[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A lease table the test moves hosts in.
#[derive(Default)]
struct Leases(Mutex<Vec<(Mac, Ipv4Addr)>>);

impl HostLookup for Leases {
    fn mac_for(&self, addr: IpAddr) -> Option<Mac> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .find(|(_, a)| IpAddr::V4(*a) == addr)
            .map(|(m, _)| *m)
    }
    fn addr_for(&self, mac: Mac) -> Option<IpAddr> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .find(|(m, _)| *m == mac)
            .map(|(_, a)| IpAddr::V4(*a))
    }
}

fn mac(n: u8) -> Mac {
    Mac([0x52, 0x54, 0, 0x12, 0x60, n])
}

fn cluster(upstream: Vec<SocketAddr>) -> Config {
    let host = |n, last: Option<u8>| HostAddr {
        mac: mac(n),
        reserved: last.map(|l| Ipv4Addr::new(172, 22, 0, l)),
        reserved6: None,
    };
    Config {
        origin: "ocp.example.com".into(),
        subnets: vec![(Ipv4Addr::new(172, 22, 0, 0), 24)],
        entries: vec![
            Entry::new("master-0", Value::Host(host(1, Some(10)))),
            Entry::new("worker-0", Value::Host(host(2, None))),
            Entry::new("api", Value::A(Ipv4Addr::new(172, 22, 0, 5))),
            Entry::new("api-int", Value::A(Ipv4Addr::new(172, 22, 0, 5))),
            Entry::new("*.apps", Value::HostA(host(2, None))),
            Entry::new("etcd-0", Value::HostA(host(1, Some(10)))),
            Entry::new(
                "_etcd-server-ssl._tcp",
                Value::Srv {
                    priority: 0,
                    weight: 10,
                    port: 2380,
                    target: "etcd-0".into(),
                },
            ),
            Entry::new("registry", Value::Cname("master-0".into())),
            Entry::new("note", Value::Txt("hello".into())),
        ],
        upstream,
        ..Config::default()
    }
}

/// Serves `server` on a fresh runtime thread until the returned sender is dropped.
fn spawn(
    server: Server,
    udp: tokio::net::UdpSocket,
    tcp: tokio::net::TcpListener,
    rt: &tokio::runtime::Runtime,
) -> oneshot::Sender<()> {
    let (stop, stopped) = oneshot::channel::<()>();
    rt.spawn(async move {
        server
            .serve(udp, tcp, async move {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    stop
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn netns_dig_sees_every_record_kind_both_ways_following_leases() {
    if !have(&["root", "ip", "dig"]) {
        return;
    }
    let ns = Netns::new();
    let rt = runtime();
    let leases = Arc::new(Leases::default());
    let (udp, tcp, port) = rt.block_on(async { ns.bind(INSIDE) });
    let server = Server::new(cluster(vec![]))
        .unwrap()
        .with_lookup(leases.clone());
    let _stop = spawn(server, udp, tcp, &rt);

    let dig = |args: &[&str]| ns.dig(port, INSIDE, args);
    let ok = |answers: &[&str]| {
        (
            "NOERROR".to_owned(),
            answers.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        )
    };
    assert_eq!(
        dig(&["master-0.ocp.example.com", "A"]),
        ok(&["master-0.ocp.example.com. A 172.22.0.10"])
    );
    assert_eq!(
        dig(&["+tcp", "MASTER-0.ocp.example.com", "A"]),
        ok(&["MASTER-0.ocp.example.com. A 172.22.0.10"])
    );
    assert_eq!(
        dig(&["api.ocp.example.com", "A"]),
        ok(&["api.ocp.example.com. A 172.22.0.5"])
    );
    assert_eq!(
        dig(&["api-int.ocp.example.com", "A"]),
        ok(&["api-int.ocp.example.com. A 172.22.0.5"])
    );
    assert_eq!(
        dig(&["etcd-0.ocp.example.com", "A"]),
        ok(&["etcd-0.ocp.example.com. A 172.22.0.10"])
    );
    assert_eq!(
        dig(&["_etcd-server-ssl._tcp.ocp.example.com", "SRV"]),
        ok(&["_etcd-server-ssl._tcp.ocp.example.com. SRV 0 10 2380 etcd-0.ocp.example.com."])
    );
    assert_eq!(
        dig(&["registry.ocp.example.com", "A"]),
        ok(&[
            "registry.ocp.example.com. CNAME master-0.ocp.example.com.",
            "master-0.ocp.example.com. A 172.22.0.10"
        ])
    );
    assert_eq!(
        dig(&["note.ocp.example.com", "TXT"]),
        ok(&["note.ocp.example.com. TXT \"hello\""])
    );
    assert_eq!(
        dig(&["-x", "172.22.0.10"]),
        ok(&["10.0.22.172.in-addr.arpa. PTR master-0.ocp.example.com."])
    );
    assert_eq!(dig(&["master-0.ocp.example.com", "AAAA"]), ok(&[]));
    assert_eq!(dig(&["nothing.ocp.example.com", "A"]).0, "NXDOMAIN");
    assert_eq!(dig(&["ocp.example.com", "SOA"]).1.len(), 1);

    // Before its lease the worker has a name without an address; after it, both directions.
    assert_eq!(dig(&["worker-0.ocp.example.com", "A"]), ok(&[]));
    assert_eq!(dig(&["console.apps.ocp.example.com", "A"]), ok(&[]));
    assert_eq!(dig(&["-x", "172.22.0.120"]).0, "NXDOMAIN");
    leases
        .0
        .lock()
        .unwrap()
        .push((mac(2), Ipv4Addr::new(172, 22, 0, 120)));
    assert_eq!(
        dig(&["worker-0.ocp.example.com", "A"]),
        ok(&["worker-0.ocp.example.com. A 172.22.0.120"])
    );
    assert_eq!(
        dig(&["console-openshift-console.apps.ocp.example.com", "A"]),
        ok(&["console-openshift-console.apps.ocp.example.com. A 172.22.0.120"])
    );
    assert_eq!(
        dig(&["-x", "172.22.0.120"]),
        ok(&["120.0.22.172.in-addr.arpa. PTR worker-0.ocp.example.com."])
    );
    assert_eq!(
        dig(&["+tcp", "-x", "172.22.0.120"]),
        ok(&["120.0.22.172.in-addr.arpa. PTR worker-0.ocp.example.com."])
    );
    // A new lease moves both records.
    leases.0.lock().unwrap()[0].1 = Ipv4Addr::new(172, 22, 0, 121);
    assert_eq!(
        dig(&["worker-0.ocp.example.com", "A"]),
        ok(&["worker-0.ocp.example.com. A 172.22.0.121"])
    );
    assert_eq!(dig(&["-x", "172.22.0.120"]).0, "NXDOMAIN");
    assert_eq!(
        dig(&["-x", "172.22.0.121"]),
        ok(&["121.0.22.172.in-addr.arpa. PTR worker-0.ocp.example.com."])
    );
}

/// One host's DHCPv6 lease, as `Leases6` would answer for it.
struct OneLease6(Mutex<Option<(Mac, Ipv6Addr)>>);

impl HostLookup for OneLease6 {
    fn mac_for(&self, addr: IpAddr) -> Option<Mac> {
        let l = *self.0.lock().unwrap();
        l.filter(|(_, a)| IpAddr::V6(*a) == addr).map(|(m, _)| m)
    }
    fn addr_for(&self, _: Mac) -> Option<IpAddr> {
        None
    }
    fn addr6_for(&self, mac: Mac) -> Option<Ipv6Addr> {
        let l = *self.0.lock().unwrap();
        l.filter(|(m, _)| *m == mac).map(|(_, a)| a)
    }
}

/// IPv6: `dig -x` over IPv6 reads the `ip6.arpa` zone of the server's IPv6 subnet (a host's v6
/// reservation, then the holder of a DHCPv6 lease), AAAA the same addresses, over UDP and TCP.
#[test]
fn netns_dig_reverse_names_over_ipv6() {
    if !have(&["root", "ip", "dig"]) {
        return;
    }
    let ns = Netns::new();
    for a in ["fd00:22::1/64", "fd00:22::9/64", "2001:db8::9/64"] {
        ns.exec(&["ip", "-6", "addr", "add", a, "dev", "lo", "nodad"]);
    }
    let rt = runtime();
    let lease = Arc::new(OneLease6(Mutex::new(None)));
    let (udp, tcp, port) = rt.block_on(async { ns.bind("fd00:22::1") });
    let mut config = cluster(vec![]);
    config.subnets6 = vec![("fd00:22::".parse().unwrap(), 64)];
    config.entries.push(Entry::new(
        "bootstrap",
        Value::Host(HostAddr {
            mac: mac(7),
            reserved: None,
            reserved6: Some("fd00:22::10".parse().unwrap()),
        }),
    ));
    let server = Server::new(config).unwrap().with_lookup(lease.clone());
    let _stop = spawn(server, udp, tcp, &rt);
    let dig = |args: &[&str]| ns.dig_at("fd00:22::1", port, "fd00:22::9", args);
    let ok = |answers: &[&str]| {
        (
            "NOERROR".to_owned(),
            answers.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        )
    };
    let rev10 = "0.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.2.2.0.0.0.0.d.f.ip6.arpa.";
    assert_eq!(
        dig(&["-x", "fd00:22::10"]),
        ok(&[&format!("{rev10} PTR bootstrap.ocp.example.com.")])
    );
    assert_eq!(
        dig(&["bootstrap.ocp.example.com", "AAAA"]),
        ok(&["bootstrap.ocp.example.com. AAAA fd00:22::10"])
    );
    // The worker: no lease, no reverse name; its DHCPv6 lease gives it one both ways.
    assert_eq!(dig(&["-x", "fd00:22::1:20"]).0, "NXDOMAIN");
    *lease.0.lock().unwrap() = Some((mac(2), "fd00:22::1:20".parse().unwrap()));
    let rev = "0.2.0.0.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.2.2.0.0.0.0.d.f.ip6.arpa.";
    for tcp in [false, true] {
        let mut args = vec!["-x", "fd00:22::1:20"];
        if tcp {
            args.insert(0, "+tcp");
        }
        assert_eq!(
            dig(&args),
            ok(&[&format!("{rev} PTR worker-0.ocp.example.com.")])
        );
    }
    assert_eq!(
        dig(&["worker-0.ocp.example.com", "AAAA"]),
        ok(&["worker-0.ocp.example.com. AAAA fd00:22::1:20"])
    );
    // The zone's apex answers its SOA; another prefix is not ours, and with no upstream
    // nothing is forwarded, for a client of the subnet or not.
    assert_eq!(
        dig(&["0.0.0.0.0.0.0.0.2.2.0.0.0.0.d.f.ip6.arpa", "SOA"])
            .1
            .len(),
        1
    );
    assert_eq!(dig(&["-x", "fd00:23::10"]).0, "REFUSED");
    let outside = ns.dig_at("fd00:22::1", port, "2001:db8::9", &["-x", "fd00:23::10"]);
    assert_eq!(outside.0, "REFUSED");
}

#[test]
fn netns_dig_forwards_only_for_the_subnets() {
    if !have(&["root", "ip", "dig"]) {
        return;
    }
    let ns = Netns::new();
    let rt = runtime();
    // The upstream: another instance, authoritative for example.org, on 127.0.0.1 of the
    // test's own namespace (where the forwarding sockets are opened).
    let (udp, tcp, up_port) = rt.block_on(async { bind(None, "127.0.0.1") });
    let upstream = Server::new(Config {
        origin: "example.org".into(),
        entries: vec![Entry::new("www", Value::A(Ipv4Addr::new(192, 0, 2, 80)))],
        ..Config::default()
    })
    .unwrap();
    let _stop_up = spawn(upstream, udp, tcp, &rt);
    let (udp, tcp, port) = rt.block_on(async { ns.bind(INSIDE) });
    let server = Server::new(cluster(vec![SocketAddr::from(([127, 0, 0, 1], up_port))])).unwrap();
    let _stop = spawn(server, udp, tcp, &rt);

    let www = (
        "NOERROR".to_owned(),
        vec!["www.example.org. A 192.0.2.80".to_owned()],
    );
    assert_eq!(ns.dig(port, INSIDE, &["www.example.org", "A"]), www);
    assert_eq!(ns.dig(port, INSIDE, &["+tcp", "www.example.org", "A"]), www);
    assert_eq!(
        ns.dig(port, INSIDE, &["nothing.example.org", "A"]).0,
        "NXDOMAIN"
    );
    // Outside the subnet: our own names yes, anything else refused.
    assert_eq!(
        ns.dig(port, OUTSIDE, &["www.example.org", "A"]).0,
        "REFUSED"
    );
    assert_eq!(ns.dig(port, OUTSIDE, &["-x", "8.8.8.8"]).0, "REFUSED");
    assert_eq!(
        ns.dig(port, OUTSIDE, &["api.ocp.example.com", "A"]).1,
        vec!["api.ocp.example.com. A 172.22.0.5"]
    );

    // Without upstream resolvers nobody gets forwarding.
    let (udp, tcp, port) = rt.block_on(async { ns.bind(INSIDE) });
    let _stop2 = spawn(Server::new(cluster(vec![])).unwrap(), udp, tcp, &rt);
    assert_eq!(ns.dig(port, INSIDE, &["www.example.org", "A"]).0, "REFUSED");
}

#[test]
fn netns_dns_survives_malformed_queries_and_a_flood() {
    if !have(&["root", "ip", "dig"]) {
        return;
    }
    let ns = Netns::new();
    let rt = runtime();
    let (udp, tcp, port) = rt.block_on(async { ns.bind(INSIDE) });
    let recorder = pxe_stack::Recorder::new();
    let server = Server::new(cluster(vec![]))
        .unwrap()
        .with_events(Arc::new(recorder.clone()));
    let _stop = spawn(server, udp, tcp, &rt);
    let path = format!("/run/netns/{}", ns.0);
    std::thread::spawn(move || {
        let f = std::fs::File::open(path).unwrap();
        nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let target = (INSIDE, port);
        let s = std::net::UdpSocket::bind((INSIDE, 0)).unwrap();
        let mut query = vec![0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        query.extend(b"\x03api\x03ocp\x07example\x03com\x00\x00\x01\x00\x01");
        let mut bad: Vec<Vec<u8>> = vec![
            vec![],
            vec![0; 5],
            vec![0xff; 12],
            query[..20].to_vec(),
            // A response, which must not be answered (reflection).
            {
                let mut r = query.clone();
                r[2] |= 0x80;
                r
            },
            // Two questions.
            {
                let mut r = query.clone();
                r[5] = 2;
                r.extend_from_slice(&query[12..]);
                r
            },
            // A compression pointer loop.
            {
                let mut r = query[..12].to_vec();
                r.extend([0xc0, 12, 0, 1, 0, 1]);
                r
            },
            // A label longer than the packet.
            {
                let mut r = query[..12].to_vec();
                r.extend([63, b'a']);
                r
            },
        ];
        let mut x: u32 = 0x9e37_79b9;
        for _ in 0..2000 {
            let len = (x % 600) as usize;
            let mut r = Vec::with_capacity(len);
            for _ in 0..len {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                r.push(x as u8);
            }
            bad.push(r);
        }
        for b in &bad {
            let _ = s.send_to(b, target);
        }
        // A flood that never reads its answers.
        for _ in 0..50_000 {
            let _ = s.send_to(&query, target);
        }
        // Garbage over TCP: a length prefix promising more than comes, then a close.
        if let Ok(mut t) = std::net::TcpStream::connect(target) {
            use std::io::Write;
            let _ = t.write_all(&[0xff, 0xff, 1, 2, 3]);
        }
    })
    .join()
    .unwrap();
    assert_eq!(
        ns.dig(port, INSIDE, &["api.ocp.example.com", "A"]),
        (
            "NOERROR".to_owned(),
            vec!["api.ocp.example.com. A 172.22.0.5".to_owned()]
        )
    );
    assert_eq!(
        ns.dig(port, INSIDE, &["+tcp", "api.ocp.example.com", "A"])
            .1,
        vec!["api.ocp.example.com. A 172.22.0.5"]
    );
    // 50,000 identical queries and the digs: one event for that client, name, type and
    // outcome.
    let api = recorder
        .events()
        .into_iter()
        .filter(|e| {
            e.addr == Some(IpAddr::from([172, 22, 0, 1]))
                && matches!(
                    &e.kind,
                    pxe_stack::EventKind::Dns { name, qtype: 1, outcome: pxe_stack::DnsOutcome::Answered }
                        if name == "api.ocp.example.com"
                )
        })
        .count();
    assert_eq!(api, 1);
}

/// dnsmasq on 127.0.0.1 of the test's own namespace (where forwarding sockets are opened),
/// answering `big.example.org TXT` with more than a 512-byte UDP answer holds; killed on drop.
struct Dnsmasq(std::process::Child, u16);

impl Dnsmasq {
    fn start() -> Dnsmasq {
        // A port the kernel just handed out, for both UDP and TCP.
        let port = std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut cmd = Command::new("dnsmasq");
        cmd.args([
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            "--bind-interfaces",
            "--listen-address=127.0.0.1",
            "--pid-file=",
        ])
        .arg(format!("--port={port}"));
        for i in 0..12 {
            cmd.arg(format!(
                "--txt-record=big.example.org,record {i:02} {}",
                "x".repeat(50)
            ));
        }
        let child = cmd
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let d = Dnsmasq(child, port);
        // Ready once it answers over TCP.
        for _ in 0..100 {
            let out = Command::new("dig")
                .args(["+tcp", "+time=1", "+tries=1", "+short", "-p"])
                .arg(port.to_string())
                .args(["@127.0.0.1", "big.example.org", "TXT"])
                .output()
                .unwrap();
            if String::from_utf8_lossy(&out.stdout).lines().count() == 12 {
                return d;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("dnsmasq on 127.0.0.1:{port} never answered");
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn netns_dig_tcp_gets_a_truncated_upstream_answer_whole() {
    if !have(&["root", "ip", "dig", "dnsmasq"]) {
        return;
    }
    let upstream = Dnsmasq::start();
    let ns = Netns::new();
    let rt = runtime();
    let (udp, tcp, port) = rt.block_on(async { ns.bind(INSIDE) });
    let server = Server::new(cluster(vec![SocketAddr::from((
        [127, 0, 0, 1],
        upstream.1,
    ))]))
    .unwrap();
    let _stop = spawn(server, udp, tcp, &rt);

    // Without EDNS the 12 records do not fit a 512-byte UDP answer: dnsmasq truncates it, we
    // ask it again over TCP, and the TCP client gets all of them, without TC.
    let tcp = ns.exec(&[
        "dig",
        "+tcp",
        "+noedns",
        "+time=2",
        "+tries=1",
        "-p",
        &port.to_string(),
        "-b",
        INSIDE,
        &format!("@{INSIDE}"),
        "big.example.org",
        "TXT",
    ]);
    let flags = tcp
        .lines()
        .find_map(|l| l.split(";; flags: ").nth(1))
        .unwrap_or_default()
        .to_owned();
    assert!(tcp.contains("status: NOERROR"), "{tcp}");
    assert!(!flags.split(';').next().unwrap().contains("tc"), "{tcp}");
    assert_eq!(
        tcp.lines()
            .filter(|l| l.starts_with("big.example.org.") && l.contains("TXT"))
            .count(),
        12,
        "{tcp}"
    );
    // Over UDP the client gets the TC flag from us (the answer does not fit its 512 bytes) and
    // dig, left to itself, retries over TCP and gets them all too.
    let (status, answers) = ns.dig(port, INSIDE, &["+noedns", "big.example.org", "TXT"]);
    assert_eq!((status.as_str(), answers.len()), ("NOERROR", 12));
    let udp = ns.exec(&[
        "dig",
        "+noedns",
        "+ignore",
        "+time=2",
        "+tries=1",
        "-p",
        &port.to_string(),
        "-b",
        INSIDE,
        &format!("@{INSIDE}"),
        "big.example.org",
        "TXT",
    ]);
    let flags = udp
        .lines()
        .find_map(|l| l.split(";; flags: ").nth(1))
        .unwrap_or_default();
    assert!(flags.split(';').next().unwrap().contains("tc"), "{udp}");
}
