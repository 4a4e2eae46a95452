//! IPv6 provisioning through `start_servers`, inside a server and a client namespace this
//! module creates (root): the plan's DHCPv6 component against ISC `dhclient -6` (a reservation
//! by MAC, the boot-file URL for UEFI PXE, UEFI HTTP boot and iPXE), its router advertisements
//! read by `rdisc6`, the per-host iPXE script, the lease-bound Ignition rule and `/report` over
//! IPv6 with `curl -g`, the UEFI binary over TFTP with tftp-hpa's `tftp -6`; and a dual-stack
//! plan where busybox `udhcpc` and `dhclient -6` on one NIC both get the host's reservations,
//! and both addresses name the host.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pxe_stack::{EventKind, HostLookup, InstallStage, Mac};
use rhcos_deploy::{Artifacts, Generation, Plan, start_servers};

use super::dns::{have, run};

const MASTER_MAC: &str = "52:54:00:12:60:01";
const WORKER_MAC: &str = "52:54:00:12:60:02";
const SERVER6: &str = "fd00:22::1";
const MASTER6: &str = "fd00:22::10";
const EFI: &[u8] = b"MZ snponly.efi, as iPXE builds it";
/// How long a wait may take before the test calls it a hang (not a speed check).
const HANG: Duration = Duration::from_secs(60);

/// A server and a client namespace joined by a veth pair (EUI-64 link-local addresses, no
/// DAD), the client's end with the master's MAC; removed on drop.
struct Net {
    server: String,
    client: String,
    s_if: String,
    c_if: String,
    dir: tempfile::TempDir,
}

impl Net {
    fn new(tag: &str) -> Net {
        let id = std::process::id() % 100_000;
        let net = Net {
            server: format!("v6d{tag}s-{id}"),
            client: format!("v6d{tag}c-{id}"),
            s_if: format!("v6{tag}s{id}"),
            c_if: format!("v6{tag}c{id}"),
            dir: tempfile::tempdir().unwrap(),
        };
        run(&["ip", "netns", "add", &net.server]);
        run(&["ip", "netns", "add", &net.client]);
        run(&[
            "ip",
            "link",
            "add",
            &net.s_if,
            "netns",
            &net.server,
            "type",
            "veth",
            "peer",
            "name",
            &net.c_if,
            "netns",
            &net.client,
        ]);
        for (ns, i) in [(&net.server, &net.s_if), (&net.client, &net.c_if)] {
            let dad = format!("net.ipv6.conf.{i}.accept_dad=0");
            net.exec(ns, &["sysctl", "-q", "-w", &dad]);
            net.exec(ns, &["ip", "link", "set", i, "addrgenmode", "eui64"]);
            net.exec(ns, &["ip", "link", "set", "lo", "up"]);
        }
        net.exec(
            &net.client,
            &["ip", "link", "set", &net.c_if, "address", MASTER_MAC],
        );
        net.exec(
            &net.server,
            &[
                "ip",
                "-6",
                "addr",
                "add",
                &format!("{SERVER6}/64"),
                "dev",
                &net.s_if,
                "nodad",
            ],
        );
        for (ns, i) in [(&net.server, &net.s_if), (&net.client, &net.c_if)] {
            net.exec(ns, &["ip", "link", "set", i, "up"]);
        }
        // dhclient -6 gives up at once without a link-local address, which the kernel adds
        // once both ends have carrier.
        for (ns, i) in [(&net.server, &net.s_if), (&net.client, &net.c_if)] {
            wait_for("a link-local address", || {
                net.exec(
                    ns,
                    &["ip", "-6", "-o", "addr", "show", "dev", i, "scope", "link"],
                )
                .contains("fe80::")
            });
        }
        std::fs::write(net.dir.path().join("snponly.efi"), EFI).unwrap();
        for role in ["master", "worker"] {
            std::fs::write(
                net.dir.path().join(format!("{role}.ign")),
                br#"{"ignition":{"version":"3.2.0"}}"#,
            )
            .unwrap();
        }
        net
    }

    fn exec(&self, ns: &str, cmd: &[&str]) -> String {
        let mut v = vec!["ip", "netns", "exec", ns];
        v.extend_from_slice(cmd);
        run(&v)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// An address on the client's interface (what dhclient's script would have done).
    fn add_client_addr(&self, cidr: &str) {
        let family = if cidr.contains(':') { "-6" } else { "-4" };
        self.exec(
            &self.client,
            &[
                "ip", family, "addr", "add", cidr, "dev", &self.c_if, "nodad",
            ],
        );
    }

    /// `curl -g` from the client, from source address `from`: the status and the body.
    fn curl(&self, from: &str, url: &str, post: bool) -> (u16, String) {
        let out = self.path("curl.out");
        let mut cmd = vec![
            "curl",
            "-sS",
            "-g",
            "--max-time",
            "30",
            "--interface",
            from,
            "-o",
        ];
        let out_s = out.to_str().unwrap().to_owned();
        cmd.push(&out_s);
        cmd.extend(["-w", "%{http_code}"]);
        if post {
            cmd.extend(["--data-binary", "written"]);
        }
        cmd.push(url);
        let code = self.exec(&self.client, &cmd);
        let body = std::fs::read_to_string(&out).unwrap_or_default();
        let _ = std::fs::remove_file(&out);
        (code.trim().parse().unwrap(), body)
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for ns in [&self.server, &self.client] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < HANG, "waited too long for {what}");
        std::thread::sleep(Duration::from_millis(50));
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

/// dhclient.conf lines that make dhclient -6 look like one of the three boot clients, and ask
/// for the boot-file URL (option 59), which its script then sees.
const ASK_BOOTFILE: &str = "option dhcp6.bootfile-url code 59 = string;\n\
                            option dhcp6.arch code 61 = unsigned integer 16;\n\
                            option dhcp6.uclass code 15 = string;\n\
                            option dhcp6.vclass code 16 = string;\n\
                            also request dhcp6.bootfile-url;\n";

/// One `dhclient -6` run on the client (DUID-LL, `conf` appended to [`ASK_BOOTFILE`]) until
/// it binds: the address, the boot-file URL and the DNS servers (option 23) it got.
fn dhclient6(net: &Net, name: &str, conf: &str) -> (String, String, String) {
    let cf = net.path(&format!("{name}.conf"));
    std::fs::write(&cf, format!("{ASK_BOOTFILE}{conf}")).unwrap();
    let log = net.path(&format!("{name}.log"));
    let script = net.path(&format!("{name}.sh"));
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"$reason $new_ip6_address $new_dhcp6_bootfile_url $new_dhcp6_name_servers\" >> {}\nexit 0\n",
            log.display()
        ),
    )
    .unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let err = net.path(&format!("{name}.err"));
    let mut child = Proc(
        Command::new("ip")
            .args(["netns", "exec", &net.client, "dhclient", "-6", "-1", "-d"])
            .args(["-D", "LL", "-cf"])
            .arg(&cf)
            .arg("-sf")
            .arg(&script)
            .arg("-lf")
            .arg(net.path(&format!("{name}.leases")))
            .arg("-pf")
            .arg(net.path(&format!("{name}.pid")))
            .arg(&net.c_if)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .unwrap(),
    );
    let mut bound = None;
    wait_for("dhclient -6 to bind", || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        bound = text
            .lines()
            .find(|l| l.starts_with("BOUND6 "))
            .map(|l| l.split(' ').map(str::to_owned).collect::<Vec<_>>());
        if bound.is_none()
            && let Some(status) = child.0.try_wait().unwrap()
        {
            let err = std::fs::read_to_string(&err).unwrap_or_default();
            panic!("dhclient -6 exited ({status}) before binding:\n{text}\n{err}");
        }
        bound.is_some()
    });
    drop(child);
    let fields = bound.unwrap();
    let field = |i: usize| fields.get(i).cloned().unwrap_or_default();
    (field(1), field(2), field(3))
}

/// dig from the client at `server`: the answer's data, one line per record.
fn dig(net: &Net, server: &str, args: &[&str]) -> Vec<String> {
    let at = format!("@{server}");
    let mut v = vec!["dig", "+time=2", "+tries=3", "+short", &at];
    v.extend_from_slice(args);
    net.exec(&net.client, &v)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// A lease for the client from busybox udhcpc, its address added to the interface.
fn udhcpc(net: &Net) -> String {
    let script = net.path("udhcpc.sh");
    let out = net.path("udhcpc.ip");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nif [ \"$1\" = bound ]; then echo $ip > {}; ip addr add $ip/$mask dev $interface; fi\nexit 0\n",
            out.display()
        ),
    )
    .unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let status = Command::new("ip")
        .args([
            "netns",
            "exec",
            &net.client,
            "busybox",
            "udhcpc",
            "-i",
            &net.c_if,
        ])
        .args(["-n", "-q", "-f", "-t", "5", "-T", "1", "-s"])
        .arg(&script)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "udhcpc: {status}");
    std::fs::read_to_string(&out).unwrap().trim().to_owned()
}

fn plan(net: &Net, family: &str) -> Plan {
    let v4 = match family {
        "ipv6" => "",
        _ => "address = \"172.22.0.1\"\ndhcp_range = [\"172.22.0.100\", \"172.22.0.199\"]\n",
    };
    let master_v4 = match family {
        "ipv6" => "",
        _ => "address = \"172.22.0.10\"\n",
    };
    let text = format!(
        r#"
[cluster]
name = "ocp"
base_domain = "example.com"
assets = "{dir}"

[images]
stream = "file:///nonexistent/stream.json"
cache = "{dir}/cache"

[provisioning]
interface = "{s_if}"
family = "{family}"
{v4}ipxe_dir = "{dir}"
http_port = 18080

[provisioning.ipv6]
address = "{SERVER6}"
dhcp_range = ["fd00:22::100", "fd00:22::1ff"]

[[hosts]]
name = "master-0"
mac = "{MASTER_MAC}"
role = "master"
{master_v4}ipv6 = "{MASTER6}"

[[hosts]]
name = "worker-0"
mac = "{WORKER_MAC}"
role = "worker"
"#,
        dir = net.dir.path().display(),
        s_if = net.s_if,
    );
    Plan::parse(&text, "ipv6-test.toml").unwrap()
}

fn artifacts(dir: &Path) -> Artifacts {
    for f in ["kernel", "initramfs", "rootfs", "image"] {
        std::fs::write(dir.join(f), f).unwrap();
    }
    Artifacts {
        root: dir.to_owned(),
        generation: Generation::Live,
        kernel: "/kernel".into(),
        initramfs: "/initramfs".into(),
        rootfs: Some("/rootfs".into()),
        image: Some("/image".into()),
        image_4k: None,
        boot_chain: None,
    }
}

/// The deployment's servers on a thread inside the server namespace (every socket is
/// there), until dropped.
struct Running {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    lookup: Arc<dyn HostLookup>,
    events: pxe_stack::Recorder,
}

impl Running {
    fn start(net: &Net, plan: Plan) -> Running {
        let netns = format!("/run/netns/{}", net.server);
        let artifacts = artifacts(net.dir.path());
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let events = pxe_stack::Recorder::new();
        let sink = Arc::new(events.clone());
        let thread = std::thread::spawn(move || {
            let f = std::fs::File::open(netns).unwrap();
            nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let servers = match start_servers(&plan, &artifacts, sink).await {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = ready_tx.send(Err(format!("{e:?}")));
                        return;
                    }
                };
                ready_tx.send(Ok(servers.lookup())).unwrap();
                let _ = stop_rx.await;
                servers.shutdown().await;
            });
        });
        let lookup = ready_rx.recv().unwrap().expect("the servers start");
        Running {
            stop: Some(stop),
            thread: Some(thread),
            lookup,
            events,
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The router advertisement as rdisc6 reads it: (managed, other, autonomous, text).
fn rdisc6(net: &Net) -> (String, String, String, String) {
    let out = net.exec(&net.client, &["rdisc6", "-1", "-r", "30", &net.c_if]);
    let field = |name: &str| {
        out.lines()
            .find(|l| l.trim_start().starts_with(name))
            .and_then(|l| l.split(':').nth(1))
            .map(|v| v.trim().to_owned())
            .unwrap_or_else(|| panic!("no {name} in {out}"))
    };
    (
        field("Stateful address conf."),
        field("Stateful other conf."),
        field("Autonomous address conf."),
        out.clone(),
    )
}

#[test]
fn netns_v6_only_deployment_boots_a_dhclient6_host_by_mac() {
    if !have(&["root", "ip", "dhclient", "rdisc6", "curl", "tftp", "dig"]) {
        return;
    }
    let net = Net::new("o");
    let plan = plan(&net, "ipv6");
    assert_eq!(plan.provisioning.address, None, "no IPv4 address anywhere");
    let state = plan.images.cache.join("state");
    let servers = Running::start(&net, plan);
    let master: Mac = MASTER_MAC.parse().unwrap();
    let base = format!("http://[{SERVER6}]:18080");

    // Router advertisements: addresses and the rest from DHCPv6, no SLAAC.
    let (managed, other, autonomous, text) = rdisc6(&net);
    assert_eq!((managed.as_str(), other.as_str()), ("Yes", "Yes"), "{text}");
    assert_eq!(autonomous, "No", "{text}");
    assert!(text.contains("fd00:22::/64"), "{text}");

    // The reservation by MAC, and the boot-file URL for each kind of boot client.
    let (addr, url, dns) = dhclient6(&net, "pxe", "send dhcp6.arch 7;\n");
    assert_eq!(addr, MASTER6);
    assert_eq!(url, format!("tftp://[{SERVER6}]/snponly.efi"));
    assert_eq!(dns, SERVER6, "option 23 names our DNS");
    let http_boot = "send dhcp6.vclass 00:00:01:57:00:21:48:54:54:50:43:6c:69:65:6e:74:3a:41:72:63:68:3a:30:30:30:31:36:3a:55:4e:44:49:3a:30:30:33:30:30:31;\n\
                     send dhcp6.arch 16;\n";
    let (addr, url, _) = dhclient6(&net, "httpboot", http_boot);
    assert_eq!(addr, MASTER6);
    assert_eq!(url, format!("{base}/snponly.efi"));
    let (addr, url, _) = dhclient6(&net, "ipxe", "send dhcp6.uclass 00:04:69:50:58:45;\n");
    assert_eq!(
        addr, MASTER6,
        "iPXE's DUID differs; the MAC keeps the address"
    );
    assert_eq!(url, format!("{base}/ipxe?mac=52-54-00-12-60-01"));

    // The lease is on disk and names the host for every server.
    let on_disk = pxe_stack::dhcp6::LeaseFile6::new(state.join("leases6.json"))
        .load()
        .unwrap();
    assert!(
        on_disk
            .iter()
            .any(|l| l.mac == master && l.addr.to_string() == MASTER6),
        "{on_disk:?}"
    );
    assert!(!state.join("leases.json").exists(), "no DHCPv4 ran");
    let ip6: IpAddr = MASTER6.parse().unwrap();
    assert_eq!(servers.lookup.mac_for(ip6), Some(master));
    assert_eq!(servers.lookup.addr_for(master), Some(ip6));

    // The host's own iPXE script over IPv6, found by its lease: v6 URLs, DHCPv6 in the
    // installer's initramfs.
    net.add_client_addr(&format!("{MASTER6}/64"));
    let (status, script) = net.curl(MASTER6, &format!("{base}/ipxe"), false);
    assert_eq!(status, 200, "{script}");
    assert!(
        script.contains(&format!("kernel {base}/kernel")),
        "{script}"
    );
    assert!(script.contains("ip=dhcp6 rd.neednet=1"), "{script}");
    assert!(
        script.contains(&format!(
            "coreos.inst.ignition_url={base}/ignition?mac=52-54-00-12-60-01"
        )),
        "{script}"
    );
    assert!(
        script.contains(&format!("rhcos_metal.report={base}/report")),
        "{script}"
    );

    // Ignition only to the address holding the lease; a host with no lease yet: retry.
    let ignition = format!("{base}/ignition?mac=52-54-00-12-60-01");
    let (status, body) = net.curl(MASTER6, &ignition, false);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"ignition\""), "{body}");
    net.add_client_addr("fd00:22::77/64");
    let (status, _) = net.curl("fd00:22::77", &ignition, false);
    assert_eq!(status, 403, "another address gets nothing");
    let (status, _) = net.curl(
        MASTER6,
        &format!("{base}/ignition?mac=52-54-00-12-60-02"),
        false,
    );
    assert_eq!(status, 503, "the worker holds no lease yet");

    // The installer's report over IPv6 is the host's.
    let (status, _) = net.curl(MASTER6, &format!("{base}/report?stage=image-written"), true);
    assert_eq!(status, 200);
    wait_for("the report event", || {
        servers.events.events().iter().any(|e| {
            e.mac == Some(master)
                && e.addr == Some(ip6)
                && matches!(
                    &e.kind,
                    EventKind::Report {
                        stage: InstallStage::ImageWritten,
                        ..
                    }
                )
        })
    });

    // The cluster DNS over IPv6: AAAA records from the reservation, none for the worker
    // that holds no lease, no A records at all.
    assert_eq!(
        dig(&net, SERVER6, &["AAAA", "master-0.ocp.example.com"]),
        [MASTER6]
    );
    assert_eq!(
        dig(&net, SERVER6, &["AAAA", "api-int.ocp.example.com"]),
        [MASTER6]
    );
    assert!(dig(&net, SERVER6, &["AAAA", "worker-0.ocp.example.com"]).is_empty());
    assert!(dig(&net, SERVER6, &["A", "master-0.ocp.example.com"]).is_empty());

    // The UEFI binary over TFTP on the IPv6 address.
    let got = net.path("got.efi");
    net.exec(
        &net.client,
        &[
            "tftp",
            "-6",
            "-m",
            "binary",
            SERVER6,
            "-c",
            "get",
            "snponly.efi",
            got.to_str().unwrap(),
        ],
    );
    assert_eq!(std::fs::read(&got).unwrap(), EFI);
}

#[test]
fn netns_dual_stack_one_nic_gets_both_reservations_and_both_name_the_host() {
    if !have(&["root", "ip", "dhclient", "busybox", "rdisc6", "curl", "dig"]) {
        return;
    }
    let net = Net::new("d");
    net.exec(
        &net.server,
        &["ip", "addr", "add", "172.22.0.1/24", "dev", &net.s_if],
    );
    let plan = plan(&net, "dual-stack");
    let servers = Running::start(&net, plan);
    let master: Mac = MASTER_MAC.parse().unwrap();

    let (managed, other, _, text) = rdisc6(&net);
    assert_eq!((managed.as_str(), other.as_str()), ("Yes", "Yes"), "{text}");
    let v4 = udhcpc(&net);
    assert_eq!(v4, "172.22.0.10");
    let (v6, url, dns) = dhclient6(&net, "ipxe", "send dhcp6.uclass 00:04:69:50:58:45;\n");
    assert_eq!(v6, MASTER6);
    assert_eq!(dns, SERVER6);
    assert_eq!(
        url,
        format!("http://[{SERVER6}]:18080/ipxe?mac=52-54-00-12-60-01")
    );
    net.add_client_addr(&format!("{MASTER6}/64"));
    for a in [&v4, &v6] {
        let ip: IpAddr = a.parse().unwrap();
        assert_eq!(servers.lookup.mac_for(ip), Some(master), "{a}");
    }

    // Each family's script keeps to that family; the installer brings both up.
    let (status, over_v4) = net.curl(&v4, "http://172.22.0.1:18080/ipxe", false);
    assert_eq!(status, 200, "{over_v4}");
    assert!(
        over_v4.contains("kernel http://172.22.0.1:18080/kernel"),
        "{over_v4}"
    );
    assert!(over_v4.contains("ip=dhcp,dhcp6 rd.neednet=1"), "{over_v4}");
    let (status, over_v6) = net.curl(&v6, &format!("http://[{SERVER6}]:18080/ipxe"), false);
    assert_eq!(status, 200, "{over_v6}");
    assert!(
        over_v6.contains(&format!("kernel http://[{SERVER6}]:18080/kernel")),
        "{over_v6}"
    );
    assert!(over_v6.contains("ip=dhcp,dhcp6 rd.neednet=1"), "{over_v6}");

    // The lease-bound Ignition rule holds over either address of the host.
    for (from, url) in [
        (
            v4.as_str(),
            "http://172.22.0.1:18080/ignition?mac=52-54-00-12-60-01".to_owned(),
        ),
        (
            v6.as_str(),
            format!("http://[{SERVER6}]:18080/ignition?mac=52-54-00-12-60-01"),
        ),
    ] {
        let (status, body) = net.curl(from, &url, false);
        assert_eq!(status, 200, "{from}: {body}");
    }
    net.add_client_addr("fd00:22::77/64");
    let (status, _) = net.curl(
        "fd00:22::77",
        &format!("http://[{SERVER6}]:18080/ignition?mac=52-54-00-12-60-01"),
        false,
    );
    assert_eq!(status, 403);

    // The cluster DNS on both addresses, A from DHCPv4 and AAAA from DHCPv6 for one name.
    for server in ["172.22.0.1", SERVER6] {
        assert_eq!(
            dig(&net, server, &["A", "master-0.ocp.example.com"]),
            ["172.22.0.10"]
        );
        assert_eq!(
            dig(&net, server, &["AAAA", "master-0.ocp.example.com"]),
            [MASTER6]
        );
    }

    // DHCP events of both families for the one host.
    let events = servers.events.events();
    let dhcp_addrs: Vec<IpAddr> = events
        .iter()
        .filter(|e| e.mac == Some(master) && matches!(e.kind, EventKind::Dhcp { .. }))
        .filter_map(|e| e.addr)
        .collect();
    assert!(dhcp_addrs.iter().any(IpAddr::is_ipv4), "{dhcp_addrs:?}");
    assert!(dhcp_addrs.iter().any(IpAddr::is_ipv6), "{dhcp_addrs:?}");
}
