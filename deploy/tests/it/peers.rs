//! `open_bmc` and the bootstrap VM against real peers: OpenIPMI `ipmi_sim`, sushy-emulator's
//! fake driver (Redfish over HTTPS with a test CA) and libvirt's in-process `test:///default`.
//!
//! ipmi_sim and sushy-emulator run on free 127.0.0.1 ports with fresh state directories and are
//! killed by a Drop guard; `test:///default` keeps its state in this process. A missing peer
//! skips its test with a message, except under `CI=true`, where it fails.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use bmc_power::{BootDevice, BootOverride, Error, PowerAction, PowerState};
use rhcos_deploy::{BmcDriver, BmcSpec, Host, Role, open_bmc};

fn peers_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers")
}

/// True when `program` exists; otherwise explain, and fail under CI.
fn have(program: &Path) -> bool {
    let found = if program.is_absolute() {
        program.exists()
    } else {
        std::env::var_os("PATH")
            .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(program).exists()))
    };
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{} is required under CI=true",
            program.display()
        );
        eprintln!("skipping: {} not found", program.display());
    }
    found
}

/// A child process killed (and reaped) on drop, with its state directory.
struct Peer {
    child: Child,
    dir: tempfile::TempDir,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port(udp: bool) -> u16 {
    if udp {
        std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    } else {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }
}

fn host(bmc: BmcSpec) -> Host {
    Host {
        name: "master-0".into(),
        mac: "52:54:00:12:60:01".parse().unwrap(),
        role: Role::Master,
        address: None,
        ipv6: None,
        install_dev: "/dev/sda".into(),
        sector_size: None,
        bmc: Some(bmc),
        secure_boot: false,
    }
}

mod ipmi {
    use super::*;

    fn ipmi_sim() -> Option<(Peer, u16)> {
        if !have(Path::new("ipmi_sim")) {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let port = free_port(true);
        let conf = std::fs::read_to_string(peers_dir().join("ipmi/lan.conf.in"))
            .unwrap()
            .replace("@PORT@", &port.to_string())
            .replace("@STATE@", dir.path().join("chassis").to_str().unwrap())
            .replace(
                "@CHASSISCTL@",
                peers_dir().join("ipmi/chassisctl.sh").to_str().unwrap(),
            );
        std::fs::write(dir.path().join("lan.conf"), conf).unwrap();
        std::fs::create_dir_all(dir.path().join("sim")).unwrap();
        let child = Command::new("ipmi_sim")
            .arg("-c")
            .arg(dir.path().join("lan.conf"))
            .arg("-f")
            .arg(peers_dir().join("ipmi/bmc.emu"))
            .arg("-s")
            .arg(dir.path().join("sim"))
            .arg("-n")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Some((Peer { child, dir }, port))
    }

    fn chassis(peer: &Peer, file: &str) -> String {
        std::fs::read_to_string(peer.dir.path().join("chassis").join(file))
            .unwrap_or_default()
            .trim()
            .to_owned()
    }

    #[tokio::test]
    async fn ipmi_sim_through_open_bmc() {
        let Some((peer, port)) = ipmi_sim() else {
            return;
        };
        let bmc = open_bmc(&host(BmcSpec {
            driver: BmcDriver::Ipmi,
            address: format!("127.0.0.1:{port}"),
            user: "admin".into(),
            password: Some("password".into()),
            ..BmcSpec::default()
        }))
        .unwrap()
        .expect("a host with a bmc gets a driver");
        // ipmi_sim binds its socket a moment after it starts: ask until it answers.
        let mut status = bmc.power_status().await;
        for _ in 0..20 {
            if status.is_ok() {
                break;
            }
            status = bmc.power_status().await;
        }
        assert_eq!(status.unwrap(), PowerState::Off);

        // What `run` does with every host: PXE next, then on, both read back.
        let boot = bmc
            .set_boot(BootOverride::once(BootDevice::Pxe))
            .await
            .unwrap();
        assert_eq!(boot.device, BootDevice::Pxe);
        assert_eq!(bmc.power(PowerAction::On).await.unwrap(), PowerState::On);
        assert_eq!(chassis(&peer, "boot"), "pxe");
        assert_eq!(chassis(&peer, "power"), "1");
        assert_eq!(bmc.power(PowerAction::Off).await.unwrap(), PowerState::Off);
        assert_eq!(chassis(&peer, "power"), "0");

        let wrong = open_bmc(&host(BmcSpec {
            driver: BmcDriver::Ipmi,
            address: format!("127.0.0.1:{port}"),
            user: "admin".into(),
            password: Some("wrong".into()),
            ..BmcSpec::default()
        }))
        .unwrap()
        .unwrap();
        let e = wrong.power_status().await.unwrap_err();
        assert!(matches!(e, Error::Authentication { .. }), "{e:?}");

        // IPMI 1.5 only when the plan names it (`auto` never falls back to it).
        let lan = open_bmc(&host(BmcSpec {
            driver: BmcDriver::Ipmi,
            address: format!("127.0.0.1:{port}"),
            user: "admin".into(),
            password: Some("password".into()),
            ipmi_interface: Some("lan".into()),
            ..BmcSpec::default()
        }))
        .unwrap()
        .unwrap();
        assert_eq!(lan.power_status().await.unwrap(), PowerState::Off);
    }

    #[test]
    fn no_bmc_is_none() {
        let mut h = host(BmcSpec::default());
        h.bmc = None;
        assert!(open_bmc(&h).unwrap().is_none());
    }
}

#[cfg(feature = "redfish")]
mod redfish {
    use super::*;
    use std::time::Duration;

    const SYSTEM: &str = "22222222-3333-4444-5555-000000000001";

    /// sushy-emulator with the fake driver over HTTPS on a free port, with the test CA's
    /// certificate.
    fn sushy() -> Option<(Peer, String)> {
        let sushy = peers_dir().join("sushy");
        sushy_with(&sushy.join("tls.crt"), &sushy.join("tls.key"))
    }

    /// The same with this certificate and key.
    fn sushy_with(cert: &Path, key: &Path) -> Option<(Peer, String)> {
        let venv =
            std::env::var("RHCOS_METAL_VENV").unwrap_or_else(|_| "/opt/rhcos-metal-venv".into());
        let bin = Path::new(&venv).join("bin/sushy-emulator");
        if !have(&bin) {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let port = free_port(false);
        let sushy = peers_dir().join("sushy");
        let child = Command::new(bin)
            .arg("--config")
            .arg(sushy.join("fake.conf"))
            .args(["-i", "127.0.0.1", "-p", &port.to_string()])
            .arg("--ssl-certificate")
            .arg(cert)
            .arg("--ssl-key")
            .arg(key)
            .env("SUSHY_STATE_DIR", dir.path())
            .env("TMPDIR", dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let peer = Peer { child, dir };
        // Flask takes about half a second to listen.
        for _ in 0..400 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some((peer, format!("https://127.0.0.1:{port}")));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("sushy-emulator did not start");
    }

    fn redfish(url: &str) -> BmcSpec {
        BmcSpec {
            driver: BmcDriver::Redfish,
            address: url.to_owned(),
            user: "admin".into(),
            password: Some("password".into()),
            system: Some(SYSTEM.into()),
            ca_file: Some(peers_dir().join("sushy/ca.crt")),
            ..BmcSpec::default()
        }
    }

    #[tokio::test]
    async fn sushy_https_through_open_bmc() {
        let Some((peer, url)) = sushy() else {
            return;
        };
        let bmc = open_bmc(&host(redfish(&url))).unwrap().unwrap();
        assert_eq!(bmc.power_status().await.unwrap(), PowerState::Off);
        let boot = bmc
            .set_boot(BootOverride::once(BootDevice::Pxe))
            .await
            .unwrap();
        assert_eq!(boot.device, BootDevice::Pxe);
        // The fake driver lands a power change seconds later; power() polls until it has.
        assert_eq!(bmc.power(PowerAction::On).await.unwrap(), PowerState::On);
        assert_eq!(bmc.boot().await.unwrap().device, BootDevice::Pxe);

        // `insecure` skips the certificate check; without it or a CA the system store refuses
        // the test CA.
        let insecure = BmcSpec {
            ca_file: None,
            insecure: true,
            ..redfish(&url)
        };
        let bmc = open_bmc(&host(insecure)).unwrap().unwrap();
        assert_eq!(bmc.power_status().await.unwrap(), PowerState::On);
        let system_store = BmcSpec {
            ca_file: None,
            ..redfish(&url)
        };
        let e = open_bmc(&host(system_store))
            .unwrap()
            .unwrap()
            .power_status()
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Tls { .. }), "{e:?}");

        let wrong = BmcSpec {
            password: Some("wrong".into()),
            ..redfish(&url)
        };
        let e = open_bmc(&host(wrong))
            .unwrap()
            .unwrap()
            .power_status()
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Authentication { .. }), "{e:?}");
        drop(peer);
    }

    /// A self-signed CA:TRUE certificate (openssl's default, and most BMCs'), made at test
    /// time: (cert, key, openssl's SHA-256 fingerprint line).
    fn self_signed(dir: &Path) -> Option<(PathBuf, PathBuf, String)> {
        if !have(Path::new("openssl")) {
            return None;
        }
        let (cert, key) = (dir.join("bmc.crt"), dir.join("bmc.key"));
        let ok = Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
            .args([
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=bmc",
            ])
            .args(["-addext", "basicConstraints=critical,CA:TRUE", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(ok.success());
        let fp = Command::new("openssl")
            .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
            .arg(&cert)
            .output()
            .unwrap();
        let fp = String::from_utf8_lossy(&fp.stdout).trim().to_string();
        Some((cert, key, fp))
    }

    /// The plan's trust keys reach the driver: a self-signed CA:TRUE certificate pinned by
    /// `ca_file` and by `tls_fingerprint`, with each `auth` mode (sushy has no session service
    /// and answers the login with 401: `auto` falls back to basic, `session` is refused).
    #[tokio::test]
    async fn sushy_self_signed_pinned_through_the_plan() {
        let dir = tempfile::tempdir().unwrap();
        let Some((cert, key, fp)) = self_signed(dir.path()) else {
            return;
        };
        let Some((peer, url)) = sushy_with(&cert, &key) else {
            return;
        };
        let pinned = |auth: Option<&str>| BmcSpec {
            ca_file: None,
            tls_fingerprint: Some(fp.clone()),
            auth: auth.map(str::to_owned),
            ..redfish(&url)
        };
        for auth in [None, Some("auto"), Some("basic")] {
            let bmc = open_bmc(&host(pinned(auth))).unwrap().unwrap();
            assert_eq!(
                bmc.power_status().await.unwrap(),
                PowerState::Off,
                "{auth:?}"
            );
        }
        let e = open_bmc(&host(pinned(Some("session"))))
            .unwrap()
            .unwrap()
            .power_status()
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Authentication { .. }), "{e:?}");
        let by_file = BmcSpec {
            ca_file: Some(cert.clone()),
            ..redfish(&url)
        };
        let bmc = open_bmc(&host(by_file)).unwrap().unwrap();
        assert_eq!(bmc.power_status().await.unwrap(), PowerState::Off);
        // Another pin: refused, naming the certificate presented.
        let wrong = BmcSpec {
            tls_fingerprint: Some(format!("sha256:{}", "00".repeat(32))),
            ..pinned(None)
        };
        let e = open_bmc(&host(wrong))
            .unwrap()
            .unwrap()
            .power_status()
            .await
            .unwrap_err();
        match &e {
            Error::Tls {
                certificate: Some(c),
                ..
            } => {
                assert_eq!(c.fingerprint, fp.parse::<bmc_power::Fingerprint>().unwrap());
            }
            _ => panic!("{e:?}"),
        }
        drop(peer);
    }

    /// The new plan keys are checked with their key path (on the documented sample plan).
    #[test]
    fn plan_trust_keys_are_checked() {
        let sample = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/deploy.toml.example"),
        )
        .unwrap();
        let ca = "ca_file = \"/etc/pki/bmc-ca.pem\"";
        assert!(sample.contains(ca));
        let fp = format!("sha256:{}", "ab".repeat(32));
        let cases = [
            (
                format!("tls_fingerprint = \"{fp}\", auth = \"basic\""),
                None,
            ),
            (
                "tls_fingerprint = \"sha256:12\"".to_string(),
                Some("hosts[1].bmc.tls_fingerprint"),
            ),
            (
                format!("{ca}, tls_fingerprint = \"{fp}\""),
                Some("give one of `ca_file`, `tls_fingerprint` and `insecure`"),
            ),
            ("auth = \"digest\"".to_string(), Some("hosts[1].bmc.auth")),
            (
                "allow_insecure_auth = true".to_string(),
                Some("only the ipmi driver takes `allow_insecure_auth`"),
            ),
            (
                "ipmi_interface = \"lan\"".to_string(),
                Some("only the ipmi driver takes `ipmi_interface`"),
            ),
        ];
        for (keys, want) in cases {
            let text = sample.replace(ca, &keys);
            match (rhcos_deploy::Plan::parse(&text, "deploy.toml"), want) {
                (Ok(plan), None) => {
                    let b = plan.hosts[1].bmc.as_ref().unwrap();
                    assert_eq!(b.tls_fingerprint.as_deref(), Some(fp.as_str()));
                    assert_eq!(b.auth.as_deref(), Some("basic"));
                }
                (Err(e), Some(w)) => assert!(e.to_string().contains(w), "{keys}: {e}"),
                (r, w) => panic!("{keys}: {r:?}, wanted {w:?}"),
            }
        }
    }

    #[test]
    fn missing_ca_file_is_a_read_error() {
        let bmc = BmcSpec {
            ca_file: Some(peers_dir().join("sushy/no-such-ca.crt")),
            ..redfish("https://127.0.0.1:1")
        };
        let e = open_bmc(&host(bmc))
            .err()
            .expect("no driver without its CA");
        assert!(matches!(e, rhcos_deploy::Error::Read { .. }), "{e:?}");
    }
}

#[cfg(feature = "libvirt")]
mod libvirt {
    use super::*;
    use libvirt_templates::{Defined, Libvirt};
    use rhcos_deploy::{Plan, apply_bootstrap, remove_bootstrap};

    const TEST_URI: &str = "test:///default";

    /// libvirt's test driver and its built-in running domain `test`.
    #[tokio::test]
    async fn libvirt_test_driver_through_open_bmc() {
        let bmc = open_bmc(&host(BmcSpec {
            driver: BmcDriver::Libvirt,
            address: "test".into(),
            uri: Some(TEST_URI.into()),
            ..BmcSpec::default()
        }))
        .unwrap()
        .unwrap();
        assert_eq!(bmc.power(PowerAction::Off).await.unwrap(), PowerState::Off);
        let boot = bmc
            .set_boot(BootOverride::once(BootDevice::Pxe))
            .await
            .unwrap();
        assert_eq!(boot.device, BootDevice::Pxe);
        assert_eq!(bmc.power(PowerAction::On).await.unwrap(), PowerState::On);
        assert_eq!(bmc.boot().await.unwrap().device, BootDevice::Pxe);
        let disk = bmc
            .set_boot(BootOverride::once(BootDevice::Disk))
            .await
            .unwrap();
        assert_eq!(disk.device, BootDevice::Disk);

        // The connection opens on first use, so a wrong domain shows up there.
        let missing = open_bmc(&host(BmcSpec {
            driver: BmcDriver::Libvirt,
            address: format!("no-such-domain-{}", std::process::id()),
            uri: Some(TEST_URI.into()),
            ..BmcSpec::default()
        }))
        .unwrap()
        .unwrap();
        let e = missing.power_status().await.unwrap_err();
        assert!(matches!(e, Error::Config { .. }), "{e:?}");
    }

    fn plan(assets: &Path, name: &str) -> Plan {
        let text = format!(
            r#"
[cluster]
name = "{name}"
base_domain = "example.test"
assets = "{}"

[images]
stream = "file:///nonexistent/stream.json"

[provisioning]
interface = "lo"
address = "172.22.0.1"

[bootstrap]
libvirt_uri = "{TEST_URI}"
image = "/var/lib/libvirt/images/{name}-bootstrap.qcow2"
mac = "52:54:00:7e:00:0a"
address = "192.168.126.10"
memory_mib = 256
vcpus = 1
"#,
            assets.display()
        );
        Plan::parse(&text, "test.toml").unwrap()
    }

    #[test]
    fn libvirt_test_driver_bootstrap_apply_is_idempotent_and_removed() {
        let assets = tempfile::tempdir().unwrap();
        std::fs::write(assets.path().join("bootstrap.ign"), "{}").unwrap();
        let name = format!("t{}b", std::process::id());
        let plan = plan(assets.path(), &name);
        // The test driver's state lives while a connection is open: keep one for the checks.
        let lv = Libvirt::open(TEST_URI).unwrap();
        let domain = format!("{name}-bootstrap");

        let first = apply_bootstrap(&plan).unwrap().unwrap();
        assert_eq!(
            (first.network.as_str(), first.domain.as_str()),
            (name.as_str(), domain.as_str())
        );
        assert_eq!(first.network_change, Defined::Created);
        assert_eq!(first.domain_change, Some(Defined::Created));
        assert_eq!(lv.network_active(&name).unwrap(), Some(true));
        assert_eq!(lv.domain_active(&domain).unwrap(), Some(true));
        let xml = lv.domain_xml(&domain).unwrap().value.to_xml().unwrap();
        let ignition = assets.path().join("bootstrap.ign");
        assert!(
            xml.contains(&format!(
                r#"<entry name="opt/com.coreos/config" file="{}"/>"#,
                ignition.display()
            )),
            "{xml}"
        );

        // Again: the running VM is left alone.
        let again = apply_bootstrap(&plan).unwrap().unwrap();
        assert_eq!(again.network_change, Defined::Updated);
        assert_eq!(again.domain_change, None);
        // A stopped VM is redefined and started.
        assert!(lv.stop_domain(&domain).unwrap());
        let restarted = apply_bootstrap(&plan).unwrap().unwrap();
        assert_eq!(restarted.domain_change, Some(Defined::Updated));
        assert_eq!(lv.domain_active(&domain).unwrap(), Some(true));

        assert!(remove_bootstrap(&plan).unwrap());
        assert_eq!(lv.network_active(&name).unwrap(), None);
        assert_eq!(lv.domain_active(&domain).unwrap(), None);
        assert!(!remove_bootstrap(&plan).unwrap());

        // Without its Ignition config nothing is defined.
        std::fs::remove_file(&ignition).unwrap();
        let e = apply_bootstrap(&plan).unwrap_err();
        assert!(matches!(e, rhcos_deploy::Error::Read { .. }), "{e:?}");
        assert_eq!(lv.network_active(&name).unwrap(), None);
    }
}
