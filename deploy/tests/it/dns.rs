//! The deployment's DNS, started by `start_servers` with the plan's `[dns]` section inside a
//! network namespace pair this module creates (root): a host gets its lease and option 6 from
//! our DHCP (busybox udhcpc), then asks our DNS with dig for every record kind, both ways.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::sync::Arc;

use pxe_stack::{DnsOutcome, EventKind, Mac};
use rhcos_deploy::{Artifacts, Generation, Plan, Timeline, start_servers};

const MASTER_MAC: &str = "52:54:00:12:60:01";
const WORKER_MAC: &str = "52:54:00:12:60:02";

pub(crate) fn have(needs: &[&str]) -> bool {
    let root = std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
    });
    let on_path = |p: &str| {
        std::env::var_os("PATH")
            .is_some_and(|path| std::env::split_paths(&path).any(|d| d.join(p).is_file()))
    };
    let missing: Vec<&str> = needs
        .iter()
        .copied()
        .filter(|n| if *n == "root" { !root } else { !on_path(n) })
        .collect();
    if missing.is_empty() {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "missing {missing:?} (required in CI; scripts/install-deps.sh installs the programs)"
    );
    eprintln!("skipping: missing {missing:?}");
    false
}

pub(crate) fn run(cmd: &[&str]) -> String {
    let out = Command::new(cmd[0]).args(&cmd[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A server and a client namespace joined by a veth pair; removed on drop.
struct Pair {
    server: String,
    client: String,
    dir: tempfile::TempDir,
}

impl Pair {
    fn new() -> Pair {
        let id = std::process::id() % 100_000;
        let p = Pair {
            server: format!("dnsd-s-{id}"),
            client: format!("dnsd-c-{id}"),
            dir: tempfile::tempdir().unwrap(),
        };
        run(&["ip", "netns", "add", &p.server]);
        run(&["ip", "netns", "add", &p.client]);
        let (s_if, c_if) = (format!("zs{id}"), format!("zc{id}"));
        run(&[
            "ip", "link", "add", &s_if, "netns", &p.server, "type", "veth", "peer", "name", &c_if,
            "netns", &p.client,
        ]);
        p.exec(
            &p.server,
            &["ip", "addr", "add", "172.22.0.1/24", "dev", &s_if],
        );
        p.exec(&p.server, &["ip", "link", "set", &s_if, "up"]);
        p.exec(&p.server, &["ip", "link", "set", "lo", "up"]);
        p.exec(
            &p.client,
            &["ip", "link", "set", &c_if, "address", WORKER_MAC],
        );
        p.exec(&p.client, &["ip", "link", "set", &c_if, "up"]);
        p.exec(&p.client, &["ip", "link", "set", "lo", "up"]);
        p
    }

    fn exec(&self, ns: &str, cmd: &[&str]) -> String {
        let mut v = vec!["ip", "netns", "exec", ns];
        v.extend_from_slice(cmd);
        run(&v)
    }

    /// A lease for the client, as busybox's udhcpc reports it (`ip`, `dns`, `domain`, ...).
    fn udhcpc(&self) -> HashMap<String, String> {
        let script = self.dir.path().join("udhcpc.sh");
        let out = self.dir.path().join("udhcpc.env");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\nif [ \"$1\" = bound ]; then env > {out}; ip addr add $ip/$mask dev $interface; fi\nexit 0\n",
                out = out.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let c_if = format!("zc{}", std::process::id() % 100_000);
        let status = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.client,
                "busybox",
                "udhcpc",
                "-i",
                &c_if,
                "-n",
                "-q",
                "-f",
            ])
            .args(["-t", "5", "-T", "1", "-s", script.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "udhcpc: {status}");
        std::fs::read_to_string(&out)
            .unwrap()
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    /// dig from the client at `server`: the answer lines as `name type data`.
    fn dig(&self, server: &str, args: &[&str]) -> Vec<String> {
        let at = format!("@{server}");
        let mut v = vec!["dig", "+time=2", "+tries=1", "+short", "+noshort", &at];
        v.extend_from_slice(args);
        self.exec(&self.client, &v)
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                format!("{} {} {}", f[0], f[3], f[4..].join(" "))
            })
            .collect()
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        for ns in [&self.server, &self.client] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

fn plan(dir: &std::path::Path, interface: &str) -> Plan {
    let text = format!(
        r#"
[cluster]
name = "ocp"
base_domain = "example.com"
assets = "{dir}"

[images]
stream = "file:///nonexistent/stream.json"

[provisioning]
interface = "{interface}"
address = "172.22.0.1"
dhcp_range = ["172.22.0.100", "172.22.0.199"]
ipxe_dir = "{dir}"
http_port = 18080

[dns]
etcd_records = true
records = [{{ name = "registry", type = "CNAME", value = "master-0" }}]

[[hosts]]
name = "master-0"
mac = "{MASTER_MAC}"
role = "master"
address = "172.22.0.10"

[[hosts]]
name = "worker-0"
mac = "{WORKER_MAC}"
role = "worker"
"#,
        dir = dir.display()
    );
    Plan::parse(&text, "dns-test.toml").unwrap()
}

#[test]
fn netns_host_gets_our_dns_by_dhcp_and_dig_sees_every_record_both_ways() {
    if !have(&["root", "ip", "dig", "busybox"]) {
        return;
    }
    let pair = Pair::new();
    let plan = plan(
        pair.dir.path(),
        &format!("zs{}", std::process::id() % 100_000),
    );
    let artifacts = Artifacts {
        root: pair.dir.path().to_owned(),
        generation: Generation::Live,
        kernel: "/kernel".into(),
        initramfs: "/initramfs".into(),
        rootfs: Some("/rootfs".into()),
        image: Some("/image".into()),
        image_4k: None,
        boot_chain: None,
    };
    // The servers run on a thread inside the server namespace, so every socket they open
    // (DHCP's raw options, DNS, HTTP) is there.
    let netns = format!("/run/netns/{}", pair.server);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let recorder = pxe_stack::Recorder::new();
    let sink = Arc::new(recorder.clone());
    let servers = std::thread::spawn(move || {
        let f = std::fs::File::open(netns).unwrap();
        nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let servers = start_servers(&plan, &artifacts, sink).await.unwrap();
            ready_tx.send(()).unwrap();
            let _ = stop_rx.await;
            servers.shutdown().await;
        });
    });
    ready_rx.recv().unwrap();

    let lease = pair.udhcpc();
    assert_eq!(lease["ip"], "172.22.0.100");
    assert_eq!(lease["dns"].trim(), "172.22.0.1", "option 6 is our DNS");
    assert_eq!(lease["domain"], "ocp.example.com");

    let dig = |args: &[&str]| pair.dig("172.22.0.1", args);
    let want = |lines: &[&str]| lines.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        dig(&["api.ocp.example.com"]),
        want(&["api.ocp.example.com. A 172.22.0.10"])
    );
    assert_eq!(
        dig(&["+tcp", "api-int.ocp.example.com"]),
        want(&["api-int.ocp.example.com. A 172.22.0.10"])
    );
    assert_eq!(
        dig(&["console-openshift-console.apps.ocp.example.com"]),
        want(&["console-openshift-console.apps.ocp.example.com. A 172.22.0.100"])
    );
    assert_eq!(
        dig(&["master-0.ocp.example.com"]),
        want(&["master-0.ocp.example.com. A 172.22.0.10"])
    );
    assert_eq!(
        dig(&["worker-0.ocp.example.com"]),
        want(&["worker-0.ocp.example.com. A 172.22.0.100"])
    );
    assert_eq!(
        dig(&["-x", "172.22.0.10"]),
        want(&["10.0.22.172.in-addr.arpa. PTR master-0.ocp.example.com."])
    );
    assert_eq!(
        dig(&["-x", "172.22.0.100"]),
        want(&["100.0.22.172.in-addr.arpa. PTR worker-0.ocp.example.com."])
    );
    assert_eq!(
        dig(&["etcd-0.ocp.example.com"]),
        want(&["etcd-0.ocp.example.com. A 172.22.0.10"])
    );
    assert_eq!(
        dig(&["_etcd-server-ssl._tcp.ocp.example.com", "SRV"]),
        want(&["_etcd-server-ssl._tcp.ocp.example.com. SRV 0 10 2380 etcd-0.ocp.example.com."])
    );
    assert_eq!(
        dig(&["registry.ocp.example.com"]),
        want(&[
            "registry.ocp.example.com. CNAME master-0.ocp.example.com.",
            "master-0.ocp.example.com. A 172.22.0.10"
        ])
    );
    // No upstream in the plan: other names are refused, not resolved.
    let refused = pair.exec(
        &pair.client,
        &[
            "dig",
            "+time=2",
            "+tries=1",
            "@172.22.0.1",
            "www.example.org",
        ],
    );
    assert!(refused.contains("status: REFUSED"), "{refused}");
    // Asked again: still one event per name, type and outcome.
    assert_eq!(
        dig(&["api.ocp.example.com"]),
        want(&["api.ocp.example.com. A 172.22.0.10"])
    );

    // The queries reached the event sink as the worker's (it holds the client's lease), and
    // its timeline shows what it asked and how that went.
    let worker: Mac = WORKER_MAC.parse().unwrap();
    let dns: Vec<(String, u16, DnsOutcome)> = recorder
        .events()
        .into_iter()
        .filter(|e| e.mac == Some(worker))
        .filter_map(|e| match e.kind {
            EventKind::Dns {
                name,
                qtype,
                outcome,
            } => Some((name, qtype, outcome)),
            _ => None,
        })
        .collect();
    let api = ("api.ocp.example.com".to_owned(), 1, DnsOutcome::Answered);
    assert_eq!(dns.iter().filter(|d| **d == api).count(), 1, "{dns:?}");
    assert!(
        dns.contains(&("100.0.22.172.in-addr.arpa".into(), 12, DnsOutcome::Answered)),
        "{dns:?}"
    );
    assert!(
        dns.contains(&("www.example.org".into(), 1, DnsOutcome::Refused)),
        "{dns:?}"
    );
    let mut timeline = Timeline::new([("worker-0".to_owned(), worker)]);
    for e in recorder.events() {
        timeline.record(&e);
    }
    let host = timeline.host(worker).unwrap();
    assert_eq!(
        host.dns.get("api-int.ocp.example.com"),
        Some(&DnsOutcome::Answered)
    );
    assert_eq!(host.dns.get("www.example.org"), Some(&DnsOutcome::Refused));

    stop_tx.send(()).unwrap();
    servers.join().unwrap();
}
