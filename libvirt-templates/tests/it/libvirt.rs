//! Feature `libvirt`: lifecycle against libvirt's in-process `test:///default` driver, and
//! (root only) against a real libvirtd + QEMU started inside a private network and mount
//! namespace that the test creates and removes.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use libvirt_templates::{
    BootDev, ClusterSpec, Defined, DomainType, Error, IgnitionVia, Libvirt, Network,
};

use crate::util::skip;

const TEST_URI: &str = "test:///default";

/// A cluster spec with names unique to this process and call (the test driver's state is shared
/// by every connection in the process).
fn unique_spec(tag: &str) -> ClusterSpec {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let mut spec = ClusterSpec::new(format!("t{}{tag}{n}", std::process::id()), "example.test")
        .with_counts(3, 1);
    spec.vm.image = "/var/lib/libvirt/images/none.qcow2".into();
    spec.vm.ignition = Some("/var/lib/libvirt/images/bootstrap.ign".into());
    spec.vm.memory_mib = 256;
    spec.vm.vcpus = 1;
    spec
}

#[test]
fn test_driver_lifecycle_is_idempotent() {
    let lv = Libvirt::open(TEST_URI).unwrap();
    let cluster = unique_spec("a").build().unwrap();
    let (net, dom) = (&cluster.network.name, &cluster.bootstrap.name);
    assert_eq!(lv.network_active(net).unwrap(), None);
    assert_eq!(lv.domain_active(dom).unwrap(), None);

    assert_eq!(
        lv.apply(&cluster, true, false).unwrap(),
        (Defined::Created, Defined::Created)
    );
    assert_eq!(lv.network_active(net).unwrap(), Some(true));
    assert_eq!(lv.domain_active(dom).unwrap(), Some(true));
    assert!(!lv.start_network(net).unwrap());
    assert!(!lv.start_domain(dom).unwrap());

    // The running domain is not clobbered unless asked.
    let err = lv.apply(&cluster, true, false).unwrap_err();
    assert!(
        matches!(&err, Error::DomainRunning { name } if name == dom),
        "{err:?}"
    );
    assert_eq!(
        lv.define_domain(&cluster.bootstrap, true).unwrap(),
        Defined::Replaced
    );
    assert_eq!(lv.domain_active(dom).unwrap(), Some(true));

    // libvirt keeps what we defined: DNS records, reservations and boot file.
    let back = lv.network_xml(net).unwrap().value;
    let want = &cluster.network;
    assert_eq!(back.uuid, want.uuid);
    assert_eq!(
        back.dns.as_ref().unwrap().host,
        want.dns.as_ref().unwrap().host
    );
    assert_eq!(back.ip[0].dhcp, want.ip[0].dhcp);
    let back = lv.domain_xml(dom).unwrap().value;
    assert_eq!(back.uuid, cluster.bootstrap.uuid);
    assert_eq!(
        back.devices.interface[0].mac,
        cluster.bootstrap.devices.interface[0].mac
    );

    // Stop and undefine, twice each.
    assert!(lv.stop_domain(dom).unwrap());
    assert!(!lv.stop_domain(dom).unwrap());
    // A stopped domain is simply updated.
    assert_eq!(
        lv.define_domain(&cluster.bootstrap, false).unwrap(),
        Defined::Updated
    );
    assert!(lv.stop_network(net).unwrap());
    assert!(!lv.stop_network(net).unwrap());
    assert_eq!(
        lv.define_network(&cluster.network).unwrap(),
        Defined::Updated
    );
    lv.remove(&cluster).unwrap();
    lv.remove(&cluster).unwrap();
    assert!(!lv.undefine_domain(dom).unwrap());
    assert!(!lv.undefine_network(net).unwrap());
    assert_eq!(lv.domain_active(dom).unwrap(), None);
    assert_eq!(lv.network_active(net).unwrap(), None);
}

#[test]
fn test_driver_rejects_a_second_uuid_for_a_name() {
    let lv = Libvirt::open(TEST_URI).unwrap();
    let spec = unique_spec("b");
    let cluster = spec.build().unwrap();
    lv.define_domain(&cluster.bootstrap, false).unwrap();
    let mut other = spec.clone();
    other.vm.uuid = Some("00000000-0000-4000-8000-000000000001".into());
    let other = other.build().unwrap();
    let err = lv.define_domain(&other.bootstrap, false).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Libvirt {
                op: "define domain",
                ..
            }
        ),
        "{err:?}"
    );
    // Starting something undefined is an error, not a silent no-op.
    let err = lv.start_network(&cluster.network.name).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Libvirt {
                op: "look up network",
                ..
            }
        ),
        "{err:?}"
    );
    lv.remove(&cluster).unwrap();
}

#[test]
fn test_driver_accepts_fwcfg_ignition() {
    let lv = Libvirt::open(TEST_URI).unwrap();
    let mut spec = unique_spec("c");
    spec.vm.ignition_via = IgnitionVia::Fwcfg;
    let cluster = spec.build().unwrap();
    lv.apply(&cluster, true, false).unwrap();
    let back = lv.domain_xml(&cluster.bootstrap.name).unwrap().value;
    assert_eq!(back.sysinfo, cluster.bootstrap.sysinfo);
    lv.remove(&cluster).unwrap();
}

#[test]
fn open_failure_is_typed() {
    let err = Libvirt::open("bogus:///nowhere").unwrap_err();
    assert!(matches!(err, Error::Libvirt { op: "open", .. }), "{err:?}");
}

// ---------------------------------------------------------------------------------------------
// Real libvirtd in a namespace.

/// Everything the root test starts; dropping it tears all of it down, even after a panic.
struct Daemon {
    netns: String,
    dir: PathBuf,
    libvirtd: Option<Child>,
}

impl Daemon {
    fn uri(&self) -> String {
        format!(
            "qemu+unix:///system?socket={}",
            self.dir.join("run/libvirt-sock").display()
        )
    }

    /// Starts virtlogd and libvirtd inside a new network namespace and a private mount
    /// namespace whose /run, /run/libvirt, /etc/libvirt, /var/lib/libvirt, /var/log/libvirt and
    /// /var/cache/libvirt are fresh copies under `dir`, so nothing touches the host's libvirt
    /// state or network and parallel runs do not collide.
    fn start(dir: &Path) -> Daemon {
        let netns = format!("lvt{}", std::process::id());
        let mut daemon = Daemon {
            netns: netns.clone(),
            dir: dir.to_owned(),
            libvirtd: None,
        };
        run("ip", &["netns", "add", &netns]);
        run(
            "ip",
            &["netns", "exec", &netns, "ip", "link", "set", "lo", "up"],
        );
        for sub in ["run", "etc", "lib", "log/qemu", "cache"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        for (from, to) in [
            ("/etc/libvirt/.", "etc"),
            ("/var/lib/libvirt/.", "lib"),
            ("/var/cache/libvirt/.", "cache"),
        ] {
            if Path::new(from).parent().unwrap().exists() {
                run("cp", &["-a", from, &dir.join(to).display().to_string()]);
            }
        }
        // No inherited definitions: only what this test defines exists.
        let _ = std::fs::remove_dir_all(dir.join("etc/qemu"));
        let d = dir.display();
        let script = format!(
            "set -e
             mount -t tmpfs tmpfs /run
             mkdir -p /run/libvirt
             mount --bind {d}/run /run/libvirt
             mount --bind {d}/etc /etc/libvirt
             mount --bind {d}/lib /var/lib/libvirt
             mkdir -p /var/log/libvirt /var/cache/libvirt
             mount --bind {d}/log /var/log/libvirt
             mount --bind {d}/cache /var/cache/libvirt
             /usr/sbin/virtlogd >{d}/virtlogd.out 2>&1 &
             exec /usr/sbin/libvirtd >{d}/libvirtd.out 2>&1"
        );
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &netns,
                "unshare",
                "--mount",
                "--propagation",
                "private",
            ])
            .args(["sh", "-c", &script])
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn libvirtd");
        daemon.libvirtd = Some(child);
        daemon
    }

    fn connect(&mut self) -> Libvirt {
        let uri = self.uri();
        // libvirtd's first start probes QEMU's capabilities (several seconds); poll until it
        // answers or exits.
        loop {
            if let Ok(lv) = Libvirt::open(&uri) {
                return lv;
            }
            if let Some(status) = self.libvirtd.as_mut().unwrap().try_wait().unwrap() {
                let log =
                    std::fs::read_to_string(self.dir.join("libvirtd.out")).unwrap_or_default();
                panic!("libvirtd exited with {status}:\n{log}");
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // Domains and networks must go before the daemon: QEMU and dnsmasq outlive libvirtd.
        if let Ok(lv) = Libvirt::open(&self.uri()) {
            if let Ok(doms) = lv.connection().list_all_domains(0) {
                for d in doms {
                    let _ = d.destroy();
                    let _ = d.undefine();
                }
            }
            if let Ok(nets) = lv.connection().list_all_networks(0) {
                for n in nets {
                    let _ = n.destroy();
                    let _ = n.undefine();
                }
            }
        }
        if let Some(mut child) = self.libvirtd.take() {
            let _ = Command::new("kill").arg(child.id().to_string()).status();
            let _ = child.wait();
        }
        // Whatever is left in our namespace (virtlogd, a stray dnsmasq or QEMU) was started by
        // this test; end it by pid.
        if let Ok(out) = Command::new("ip")
            .args(["netns", "pids", &self.netns])
            .output()
        {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("kill").args(["-9", pid]).status();
            }
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.netns])
            .status();
    }
}

fn run(cmd: &str, args: &[&str]) {
    let status = Command::new(cmd)
        .args(args)
        .status()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(status.success(), "{cmd} {args:?}: {status}");
}

/// `busybox nslookup ARGS 192.168.126.1` inside the namespace: stdout and stderr.
fn nslookup(netns: &str, args: &[&str]) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", netns, "busybox", "nslookup"])
        .args(args)
        .arg("192.168.126.1")
        .output()
        .expect("busybox nslookup");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn have(path: &str) -> bool {
    Path::new(path).exists()
}

fn qemu_cmdline(dir: &Path, domain: &str) -> String {
    let pid =
        std::fs::read_to_string(dir.join(format!("run/qemu/{domain}.pid"))).expect("qemu pid file");
    let raw = std::fs::read(format!("/proc/{}/cmdline", pid.trim())).expect("qemu cmdline");
    String::from_utf8_lossy(&raw).replace('\0', " ")
}

#[test]
fn root_netns_real_libvirtd_defines_starts_and_removes_a_cluster() {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let root = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .is_some_and(|l| l.split_whitespace().nth(1) == Some("0"));
    if !root {
        return skip("needs root (network and mount namespaces, libvirtd)");
    }
    for bin in [
        "/usr/sbin/libvirtd",
        "/usr/sbin/virtlogd",
        "/usr/bin/qemu-system-x86_64",
        "/usr/sbin/dnsmasq",
        "/usr/bin/unshare",
        "/bin/busybox",
    ] {
        if !have(bin) {
            return skip(&format!("{bin} is not installed (scripts/install-deps.sh)"));
        }
    }

    let tmp = tempfile::Builder::new()
        .prefix("lvt-")
        .tempdir_in("/tmp")
        .unwrap();
    let dir = tmp.path().to_owned();
    // QEMU runs as libvirt-qemu and must reach the image and the Ignition file.
    run("chmod", &["0755", &dir.display().to_string()]);
    let image = dir.join("bootstrap.raw");
    std::fs::File::create(&image)
        .unwrap()
        .set_len(64 << 20)
        .unwrap();
    let ign = dir.join("bootstrap.ign");
    std::fs::write(&ign, r#"{"ignition":{"version":"3.2.0"}}"#).unwrap();
    run("chmod", &["0644", &ign.display().to_string()]);

    let t0 = std::time::Instant::now();
    let mut daemon = Daemon::start(&dir);
    let lv = daemon.connect();
    eprintln!("libvirtd answered after {:?}", t0.elapsed());

    let mut spec =
        ClusterSpec::new(format!("lvt{}", std::process::id()), "example.test").with_counts(3, 1);
    spec.etcd_srv = true;
    spec.bootp = Some(libvirt_templates::Bootp {
        file: "pxelinux.0".into(),
        server: None,
    });
    spec.vm.kind = DomainType::Qemu; // TCG: nested KVM is unreliable here
    spec.vm.memory_mib = 128;
    spec.vm.vcpus = 1;
    spec.vm.vnc = false;
    // The disk is blank, so the firmware falls through to the NIC's iPXE, which asks
    // libvirt's dnsmasq for the bootstrap node's reservation.
    spec.vm.boot = vec![BootDev::Hd, BootDev::Network];
    spec.vm.image = image.display().to_string();
    spec.vm.image_format = libvirt_templates::DiskFormat::Raw;
    spec.vm.ignition = Some(ign.display().to_string());
    let cluster = spec.build().unwrap();
    let (net, dom) = (&cluster.network.name, &cluster.bootstrap.name);

    assert_eq!(
        lv.apply(&cluster, true, false).unwrap(),
        (Defined::Created, Defined::Created)
    );
    assert_eq!(lv.network_active(net).unwrap(), Some(true));
    assert_eq!(lv.domain_active(dom).unwrap(), Some(true));

    // The bridge exists inside our namespace, with the network's address.
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            &daemon.netns,
            "ip",
            "-o",
            "addr",
            "show",
            "dev",
        ])
        .arg(format!("br-{}", spec.name))
        .output()
        .unwrap();
    let addrs = String::from_utf8_lossy(&out.stdout);
    assert!(addrs.contains("192.168.126.1/24"), "{addrs}");

    // libvirt's dnsmasq got the records and the boot file.
    let conf = std::fs::read_to_string(dir.join(format!("lib/dnsmasq/{net}.conf"))).unwrap();
    assert!(conf.contains("dhcp-boot=pxelinux.0"), "{conf}");
    assert!(
        conf.contains(&format!(
            "srv-host=_etcd-server-ssl._tcp.{0}.example.test,etcd-0.{0}.example.test,2380,0,10",
            spec.name
        )),
        "{conf}"
    );
    let hosts = std::fs::read_to_string(dir.join(format!("lib/dnsmasq/{net}.hostsfile"))).unwrap();
    assert!(
        hosts.contains("52:54:00:7e:00:0b,192.168.126.11,master-0"),
        "{hosts}"
    );

    // dnsmasq answers the records, queried from inside the namespace with busybox nslookup.
    let cluster_domain = format!("{}.example.test", spec.name);
    let api = nslookup(&daemon.netns, &[&format!("api-int.{cluster_domain}")]);
    assert!(
        api.contains("192.168.126.10") && api.contains("192.168.126.13"),
        "{api}"
    );
    let srv = nslookup(
        &daemon.netns,
        &[
            "-type=srv",
            &format!("_etcd-server-ssl._tcp.{cluster_domain}"),
        ],
    );
    assert!(
        srv.contains(&format!("2380 etcd-2.{cluster_domain}")),
        "{srv}"
    );

    // The guest's firmware got the bootstrap reservation (libvirt's lease helper records it).
    let status = dir.join(format!("lib/dnsmasq/br-{}.status", spec.name));
    let t0 = std::time::Instant::now();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    loop {
        let leases = std::fs::read_to_string(&status).unwrap_or_default();
        if leases.contains("52:54:00:7e:00:0a") {
            assert!(leases.contains("\"192.168.126.10\""), "{leases}");
            eprintln!("bootstrap lease seen after {:?}", t0.elapsed());
            break;
        }
        // A bound on waiting so a broken guest fails the test instead of hanging it.
        assert!(
            std::time::Instant::now() < deadline,
            "no DHCP lease for the bootstrap node in {}",
            status.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }

    // The seed's Ignition hand-off reached QEMU's argv.
    let argv = qemu_cmdline(&dir, dom);
    let fw_cfg = format!("-fw_cfg name=opt/com.coreos/config,file={}", ign.display());
    assert!(argv.contains(&fw_cfg), "{argv}");

    // Re-applying does not touch the running VM; replacing it with the native fw_cfg form does.
    assert!(matches!(
        lv.apply(&cluster, true, false),
        Err(Error::DomainRunning { .. })
    ));
    let mut native = spec.clone();
    native.vm.ignition_via = IgnitionVia::Fwcfg;
    let native = native.build().unwrap();
    assert_eq!(native.bootstrap.uuid, cluster.bootstrap.uuid);
    assert_eq!(
        lv.define_domain(&native.bootstrap, true).unwrap(),
        Defined::Replaced
    );
    let argv = qemu_cmdline(&dir, dom);
    assert!(argv.contains("name=opt/com.coreos/config,file="), "{argv}");
    let back = lv.domain_xml(dom).unwrap().value;
    assert_eq!(back.sysinfo, native.bootstrap.sysinfo);
    let back: Network = lv.network_xml(net).unwrap().value;
    // libvirt drops priority='0', its default; everything else comes back as written.
    let mut want = cluster.network.dns.clone().unwrap();
    for srv in &mut want.srv {
        srv.priority = srv.priority.filter(|&p| p != 0);
    }
    assert_eq!(back.dns.unwrap(), want);
    assert_eq!(
        back.ip[0].address,
        "192.168.126.1".parse::<IpAddr>().unwrap()
    );

    lv.remove(&cluster).unwrap();
    assert_eq!(lv.domain_active(dom).unwrap(), None);
    assert_eq!(lv.network_active(net).unwrap(), None);
    assert!(!lv.undefine_domain(dom).unwrap());
    drop(lv);
    drop(daemon);
}
