//! Tests against real peers: OpenIPMI `ipmi_sim` (RMCP+ suite 3 and IPMI 1.5), `ipmitool` as a
//! cross-check, sushy-emulator (Redfish, HTTP and HTTPS) and libvirt `test:///default`.
//!
//! Each peer runs on a free 127.0.0.1 port with a fresh state dir and is killed by a Drop guard.
//! A missing peer binary skips the test with a message, except with `CI=true`, where it fails.

#![allow(unreachable_pub, reason = "integration test helpers")]
#![cfg_attr(
    not(all(feature = "ipmi", feature = "redfish", feature = "libvirt")),
    allow(
        dead_code,
        unused_imports,
        reason = "helpers shared by the per-driver modules"
    )
)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bmc_power::{
    Bmc, BootDevice, BootMode, BootOverride, Error, Persistence, Policy, PowerAction, PowerState,
};

fn peers_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers")
}

/// True when `program` can run; otherwise explain, and fail under CI.
fn have(program: &str) -> bool {
    let ok = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {program}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{program} is required under CI=true"
        );
        eprintln!("skipping: {program} not found");
    }
    ok
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process killed (and reaped) on drop.
struct Peer {
    child: Child,
    _dir: tempfile::TempDir,
    state: PathBuf,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn fast_policy() -> Policy {
    Policy {
        timeout: Duration::from_millis(500),
        retries: 2,
        backoff: Duration::from_millis(100),
        settle: Duration::from_secs(20),
        poll_interval: Duration::from_millis(100),
    }
}

#[cfg(feature = "ipmi")]
mod ipmi_floor;
#[cfg(feature = "redfish")]
mod mock;
#[cfg(feature = "redfish")]
mod redfish_faults;
#[cfg(feature = "redfish")]
mod tls;

#[cfg(feature = "ipmi")]
mod ipmi {
    use super::*;
    use bmc_power::{Credentials, Ipmi, IpmiConfig, IpmiVersion, Negotiated};

    pub(super) fn ipmi_sim_pub() -> Option<(Peer, u16)> {
        ipmi_sim()
    }
    pub(super) fn client_pub(port: u16, v: IpmiVersion, p: &str, q: bool) -> Ipmi {
        client_with(port, v, p, q)
    }
    pub(super) async fn wait_up_pub(bmc: &Ipmi) -> Negotiated {
        wait_up(bmc).await
    }

    fn ipmi_sim() -> Option<(Peer, u16)> {
        ipmi_sim_with(true)
    }

    /// `chassis_control = false` leaves the chassis without power control: ipmi_sim then
    /// refuses power and boot commands with completion code 0xCC (invalid data field).
    pub(super) fn ipmi_sim_with(chassis_control: bool) -> Option<(Peer, u16)> {
        ipmi_sim_auths(chassis_control, "none md2 md5 straight")
    }

    /// ipmi_sim whose channel and users allow only these IPMI 1.5 auth types.
    pub(super) fn ipmi_sim_auths(chassis_control: bool, auths: &str) -> Option<(Peer, u16)> {
        if !have("ipmi_sim") {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let port = free_udp_port();
        let state = dir.path().join("state");
        std::fs::create_dir_all(&state).unwrap();
        let conf = std::fs::read_to_string(peers_dir().join("ipmi/lan.conf.in"))
            .unwrap()
            .replace("@PORT@", &port.to_string())
            .replace("@STATE@", dir.path().to_str().unwrap())
            .replace(
                "@CHASSISCTL@",
                peers_dir().join("ipmi/chassisctl.sh").to_str().unwrap(),
            )
            .replace("none md2 md5 straight", auths)
            .lines()
            .filter(|l| chassis_control || !l.trim_start().starts_with("chassis_control"))
            .collect::<Vec<_>>()
            .join("\n");
        let conf_path = dir.path().join("lan.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let child = Command::new("ipmi_sim")
            .arg("-c")
            .arg(&conf_path)
            .arg("-f")
            .arg(peers_dir().join("ipmi/bmc.emu"))
            .arg("-s")
            .arg(&state)
            .arg("-n")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let chassis = dir.path().join("chassis");
        Some((
            Peer {
                child,
                _dir: dir,
                state: chassis,
            },
            port,
        ))
    }

    fn client(port: u16, version: IpmiVersion, password: &str) -> Ipmi {
        client_with(port, version, password, true)
    }

    fn client_with(port: u16, version: IpmiVersion, password: &str, query_suites: bool) -> Ipmi {
        Ipmi::new(IpmiConfig {
            address: format!("127.0.0.1:{port}"),
            credentials: Credentials {
                username: "admin".into(),
                password: password.into(),
                kg: None,
            },
            version,
            query_suites,
            policy: fast_policy(),
            ..IpmiConfig::default()
        })
        .unwrap()
    }

    /// ipmi_sim binds its socket a few ms after start: probe until it answers.
    async fn wait_up(bmc: &Ipmi) -> Negotiated {
        let mut last = None;
        for _ in 0..50 {
            match bmc.probe().await {
                Ok(n) => return n,
                Err(e) => last = Some(e),
            }
        }
        panic!("ipmi_sim did not come up: {last:?}");
    }

    async fn power_and_boot(version: IpmiVersion, expect: fn(Negotiated) -> bool) {
        let Some((peer, port)) = ipmi_sim() else {
            return;
        };
        let bmc = client(port, version, "password");
        let n = wait_up(&bmc).await;
        assert!(expect(n), "negotiated {n:?}");

        assert_eq!(bmc.power_status().await.unwrap(), PowerState::Off);
        assert_eq!(bmc.power(PowerAction::On).await.unwrap(), PowerState::On);
        assert_eq!(bmc.power_status().await.unwrap(), PowerState::On);
        // ipmi_sim's cycle turns the power off and on again: seen, so verified. (Its reset
        // changes nothing visible: "not verifiable", see ipmi_floor.)
        assert_eq!(bmc.power(PowerAction::Cycle).await.unwrap(), PowerState::On);
        assert_eq!(bmc.power(PowerAction::Off).await.unwrap(), PowerState::Off);
        // Cycle from off: refused by the BMC, so the driver falls back to on.
        assert_eq!(bmc.power(PowerAction::Cycle).await.unwrap(), PowerState::On);
        assert_eq!(
            bmc.power(PowerAction::SoftOff).await.unwrap(),
            PowerState::Off
        );
        let log = std::fs::read_to_string(peer.state.join("power.log")).unwrap();
        assert!(log.contains("power 1") && log.contains("power 0"), "{log}");

        // No mode: ipmi_sim cannot report one (see ipmi_floor for the unverified UEFI bit).
        let read = bmc
            .set_boot(BootOverride::once(BootDevice::Pxe))
            .await
            .unwrap();
        assert_eq!(read.device, BootDevice::Pxe);
        assert_eq!(bmc.boot().await.unwrap().device, BootDevice::Pxe);
        assert_eq!(
            std::fs::read_to_string(peer.state.join("boot"))
                .unwrap()
                .trim(),
            "pxe"
        );
        let disk = BootOverride::once(BootDevice::Disk);
        assert_eq!(bmc.set_boot(disk).await.unwrap().device, BootDevice::Disk);
        drop(peer);
    }

    #[tokio::test]
    async fn netns_ipmi_sim_lanplus_suite3_power_and_bootdev() {
        power_and_boot(IpmiVersion::Auto, |n| {
            n == Negotiated::Lanplus(bmc_power::CipherSuite::Suite3)
        })
        .await;
    }

    #[tokio::test]
    async fn netns_ipmi_sim_lan15_power_and_bootdev() {
        power_and_boot(IpmiVersion::Lan, |n| n == Negotiated::LanMd5).await;
    }
}

#[cfg(feature = "ipmi")]
mod ipmi_more {
    use super::*;
    use bmc_power::{CipherSuite, Ipmi, IpmiVersion, Negotiated};

    /// Without Get Channel Cipher Suites the driver opens with suite 17, which ipmi_sim rejects
    /// ("invalid authentication algorithm"), and falls back to suite 3 on the same socket.
    ///
    /// ipmi_sim (OpenIPMI 2.0.33) has no RAKP-HMAC-SHA256: its `auths[]` table holds only
    /// RAKP-HMAC-SHA1 and -MD5 and its `valid_cipher_suites` end at suite 14. ipmitool is
    /// refused the same way, so the refusal is the peer's, not our encoding's; should a later
    /// ipmi_sim accept suite 17, this fails and suite 17 gets its live test here. Until then
    /// suite 17 is checked against `ipmitool -C 17` in `src/ipmi/interop.rs`.
    #[tokio::test]
    async fn netns_ipmi_sim_suite17_rejected_falls_back_to_3() {
        let Some((peer, port)) = super::ipmi::ipmi_sim_pub() else {
            return;
        };
        let bmc = super::ipmi::client_pub(port, IpmiVersion::Lanplus, "password", false);
        assert_eq!(
            super::ipmi::wait_up_pub(&bmc).await,
            Negotiated::Lanplus(CipherSuite::Suite3)
        );
        let only17 = Ipmi::new(bmc_power::IpmiConfig {
            suites: vec![CipherSuite::Suite17],
            query_suites: false,
            ..bmc.config().clone()
        })
        .unwrap();
        let e = only17.power_status().await.unwrap_err();
        assert!(matches!(e, Error::Unsupported { .. }), "{e:?}");
        if have("ipmitool") {
            let out = Command::new("ipmitool")
                .args(["-I", "lanplus", "-H", "127.0.0.1", "-p", &port.to_string()])
                .args([
                    "-U", "admin", "-P", "password", "-C", "17", "-R", "1", "-N", "1",
                ])
                .args(["chassis", "power", "status"])
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stderr);
            assert!(
                !out.status.success() && text.contains("invalid authentication algorithm"),
                "{text}"
            );
        }
        drop(peer);
    }

    #[tokio::test]
    async fn netns_ipmi_sim_wrong_password_is_authentication_error() {
        let Some((peer, port)) = super::ipmi::ipmi_sim_pub() else {
            return;
        };
        super::ipmi::wait_up_pub(&super::ipmi::client_pub(
            port,
            IpmiVersion::Auto,
            "password",
            true,
        ))
        .await;
        for version in [IpmiVersion::Lanplus, IpmiVersion::Lan] {
            let bad = super::ipmi::client_pub(port, version, "wrong", true);
            let e = bad.power_status().await.unwrap_err();
            assert!(
                matches!(e, Error::Authentication { .. }),
                "{version:?}: {e:?}"
            );
        }
        drop(peer);
    }

    #[tokio::test]
    async fn netns_ipmi_sim_refusal_carries_completion_code() {
        let Some((peer, port)) = super::ipmi::ipmi_sim_with(false) else {
            return;
        };
        let bmc = super::ipmi::client_pub(port, IpmiVersion::Auto, "password", true);
        super::ipmi::wait_up_pub(&bmc).await;
        let e = bmc.power(PowerAction::On).await.unwrap_err();
        assert!(
            matches!(
                e,
                Error::Refused {
                    refusal: bmc_power::Refusal::CompletionCode(0xCC),
                    ..
                }
            ),
            "{e:?}"
        );
        let e = bmc
            .set_boot(BootOverride::once(BootDevice::Pxe))
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Refused { .. }), "{e:?}");
        drop(peer);
    }

    #[tokio::test]
    async fn ipmi_closed_port_is_timeout() {
        // A bound-then-closed UDP port on 127.0.0.1: ICMP port unreachable, then silence.
        let port = free_udp_port();
        let bmc = super::ipmi::client_pub(port, IpmiVersion::Auto, "password", true);
        let e = bmc.power_status().await.unwrap_err();
        assert!(matches!(e, Error::Timeout { .. }), "{e:?}");
    }

    /// Cross-check with ipmitool that the boot device we set really landed in the BMC.
    #[tokio::test]
    async fn netns_ipmi_sim_bootdev_cross_checked_with_ipmitool() {
        if !have("ipmitool") {
            return;
        }
        let Some((peer, port)) = super::ipmi::ipmi_sim_pub() else {
            return;
        };
        let bmc = super::ipmi::client_pub(port, IpmiVersion::Auto, "password", true);
        super::ipmi::wait_up_pub(&bmc).await;
        bmc.set_boot(BootOverride::once(BootDevice::Pxe))
            .await
            .unwrap();
        let out = Command::new("ipmitool")
            .args(["-I", "lanplus", "-H", "127.0.0.1", "-p", &port.to_string()])
            .args([
                "-U",
                "admin",
                "-P",
                "password",
                "-C",
                "3",
                "chassis",
                "bootparam",
                "get",
                "5",
            ])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("Force PXE"), "{text}");
        bmc.set_boot(BootOverride::once(BootDevice::Cdrom))
            .await
            .unwrap();
        let out = Command::new("ipmitool")
            .args(["-I", "lanplus", "-H", "127.0.0.1", "-p", &port.to_string()])
            .args([
                "-U",
                "admin",
                "-P",
                "password",
                "-C",
                "3",
                "chassis",
                "bootparam",
                "get",
                "5",
            ])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("CD/DVD"), "{text}");
        drop(peer);
    }
}

#[cfg(feature = "redfish")]
mod redfish {
    use super::*;
    use bmc_power::{Redfish, RedfishConfig, Tls};

    pub(super) const SYSTEM: &str = "11111111-2222-3333-4444-000000000001";

    fn venv_bin() -> PathBuf {
        let venv =
            std::env::var("RHCOS_METAL_VENV").unwrap_or_else(|_| "/opt/rhcos-metal-venv".into());
        Path::new(&venv).join("bin/sushy-emulator")
    }

    /// Start sushy-emulator with the fake driver on a free port; `tls` adds the test certificate.
    fn sushy(tls: bool) -> Option<(Peer, String)> {
        let sushy = peers_dir().join("sushy");
        sushy_with(tls.then(|| (sushy.join("tls.crt"), sushy.join("tls.key"))))
    }

    /// sushy-emulator over HTTPS with this certificate and key (PEM), or over HTTP.
    pub(super) fn sushy_with(cert: Option<(PathBuf, PathBuf)>) -> Option<(Peer, String)> {
        let tls = cert.is_some();
        let bin = venv_bin();
        if !bin.exists() {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "sushy-emulator is required under CI=true ({})",
                bin.display()
            );
            eprintln!("skipping: {} not found", bin.display());
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let port = free_tcp_port();
        let sushy = peers_dir().join("sushy");
        let mut cmd = Command::new(bin);
        cmd.arg("--config")
            .arg(sushy.join("fake.conf"))
            .args(["-i", "127.0.0.1", "-p", &port.to_string()])
            .env("SUSHY_STATE_DIR", dir.path())
            .env("SUSHY_EMULATOR_STATE_DIR", dir.path())
            .env("TMPDIR", dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some((c, k)) = &cert {
            cmd.arg("--ssl-certificate").arg(c).arg("--ssl-key").arg(k);
        }
        let child = cmd.spawn().unwrap();
        let scheme = if tls { "https" } else { "http" };
        let state = dir.path().to_path_buf();
        let peer = Peer {
            child,
            _dir: dir,
            state,
        };
        // Wait until the TCP port accepts (Flask takes ~0.5 s to start).
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some((peer, format!("{scheme}://127.0.0.1:{port}")));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("sushy-emulator did not start");
    }

    pub(super) fn config(endpoint: &str, password: &str, tls: Tls) -> RedfishConfig {
        RedfishConfig {
            endpoint: endpoint.to_string(),
            username: "admin".into(),
            password: password.into(),
            system: Some(SYSTEM.into()),
            tls,
            policy: Policy {
                settle: Duration::from_secs(60),
                poll_interval: Duration::from_millis(250),
                ..fast_policy()
            },
            ..RedfishConfig::default()
        }
    }

    fn ca() -> Tls {
        Tls::CustomCa(std::fs::read(peers_dir().join("sushy/ca.crt")).unwrap())
    }

    async fn power_and_boot(bmc: &Redfish) {
        assert_eq!(bmc.power_status().await.unwrap(), PowerState::Off);
        // The fake driver lands a power change 1-11 s later: power() polls until it settles.
        assert_eq!(bmc.power(PowerAction::On).await.unwrap(), PowerState::On);
        assert_eq!(bmc.power_status().await.unwrap(), PowerState::On);
        assert_eq!(bmc.power(PowerAction::Off).await.unwrap(), PowerState::Off);

        for device in [BootDevice::Pxe, BootDevice::Cdrom, BootDevice::Disk] {
            let read = bmc
                .set_boot(BootOverride {
                    device,
                    persistence: Persistence::Once,
                    mode: Some(BootMode::Uefi),
                })
                .await
                .unwrap();
            assert_eq!(read.device, device);
        }
        let p = BootOverride {
            device: BootDevice::Pxe,
            persistence: Persistence::Persistent,
            mode: None,
        };
        assert_eq!(
            bmc.set_boot(p).await.unwrap().persistence,
            Persistence::Persistent
        );
        assert_eq!(bmc.boot().await.unwrap().device, BootDevice::Pxe);
        // sushy's fake driver answers 204 to UefiHttp (it is advertised) but keeps the old
        // target: exactly the "accepted but not applied" case the read-back exists for.
        let e = bmc
            .set_boot(BootOverride::once(BootDevice::UefiHttp))
            .await
            .unwrap_err();
        assert!(matches!(e, Error::NotApplied { .. }), "{e:?}");
        // BIOS setup is not among sushy's allowable targets.
        let e = bmc
            .set_boot(BootOverride::once(BootDevice::BiosSetup))
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Unsupported { .. }), "{e:?}");
    }

    #[tokio::test]
    async fn netns_sushy_http_basic_power_and_boot() {
        let Some((peer, url)) = sushy(false) else {
            return;
        };
        let bmc = Redfish::new(config(&url, "password", Tls::System)).unwrap();
        power_and_boot(&bmc).await;
        // sushy-tools has no SessionService, and answers the login POST at the standard path
        // with 401: Auto fell back to basic auth above; insisting on a session is an
        // authentication error.
        assert_eq!(bmc.auth_in_use().await, Some(bmc_power::RedfishAuth::Basic));
        let session_only = Redfish::new(bmc_power::RedfishConfig {
            auth: bmc_power::RedfishAuth::Session,
            ..config(&url, "password", Tls::System)
        })
        .unwrap();
        let e = session_only.power_status().await.unwrap_err();
        assert!(matches!(e, Error::Authentication { .. }), "{e:?}");
        drop(peer);
    }

    #[tokio::test]
    async fn netns_sushy_https_custom_ca_power_and_boot() {
        let Some((peer, url)) = sushy(true) else {
            return;
        };
        let bmc = Redfish::new(config(&url, "password", ca())).unwrap();
        power_and_boot(&bmc).await;
        // Cycle: sushy advertises no PowerCycle, so the driver does off + on.
        assert_eq!(bmc.power(PowerAction::Reset).await.unwrap(), PowerState::On);
        assert_eq!(bmc.power(PowerAction::Cycle).await.unwrap(), PowerState::On);
        drop(peer);
    }

    #[tokio::test]
    async fn netns_sushy_https_certificate_checks() {
        let Some((peer, url)) = sushy(true) else {
            return;
        };
        // The system trust store does not know the test CA: refused, and the error names the
        // certificate that was presented.
        let e = Redfish::new(config(&url, "password", Tls::System))
            .unwrap()
            .power_status()
            .await
            .unwrap_err();
        let Error::Tls {
            certificate: Some(c),
            ..
        } = &e
        else {
            panic!("{e:?}")
        };
        assert_eq!(c.subject.as_deref(), Some("CN=127.0.0.1"), "{e}");
        // Skipping checks works, but only because it was asked for.
        let insecure = Redfish::new(config(&url, "password", Tls::InsecureSkipVerify)).unwrap();
        assert_eq!(insecure.power_status().await.unwrap(), PowerState::Off);
        drop(peer);
    }

    #[tokio::test]
    async fn netns_sushy_wrong_password_is_authentication_error() {
        let Some((peer, url)) = sushy(true) else {
            return;
        };
        let bmc = Redfish::new(config(&url, "wrong", ca())).unwrap();
        let e = bmc.power_status().await.unwrap_err();
        assert!(matches!(e, Error::Authentication { .. }), "{e:?}");
        drop(peer);
    }

    #[tokio::test]
    async fn redfish_closed_port_is_timeout() {
        let port = free_tcp_port();
        let bmc = Redfish::new(config(
            &format!("http://127.0.0.1:{port}"),
            "password",
            Tls::System,
        ))
        .unwrap();
        let e = bmc.power_status().await.unwrap_err();
        assert!(matches!(e, Error::Timeout { .. }), "{e:?}");
    }
}

#[cfg(feature = "libvirt")]
mod libvirt {
    use super::*;
    use bmc_power::{Libvirt, LibvirtConfig};

    /// libvirt's in-process test driver and its built-in domain `test` (running at start).
    /// The driver's state lives in this process, so no daemon and nothing to clean up.
    #[tokio::test]
    async fn libvirt_test_driver_power_and_boot() {
        let bmc = Libvirt::connect(LibvirtConfig {
            uri: "test:///default".into(),
            domain: "test".into(),
            policy: fast_policy(),
        })
        .await
        .unwrap();
        assert_eq!(bmc.power_status().await.unwrap(), PowerState::On);
        assert_eq!(bmc.power(PowerAction::Off).await.unwrap(), PowerState::Off);
        assert_eq!(bmc.power(PowerAction::Off).await.unwrap(), PowerState::Off);
        assert_eq!(bmc.power(PowerAction::On).await.unwrap(), PowerState::On);
        assert_eq!(bmc.power(PowerAction::Reset).await.unwrap(), PowerState::On);
        assert_eq!(bmc.power(PowerAction::Cycle).await.unwrap(), PowerState::On);
        assert_eq!(
            bmc.power(PowerAction::SoftOff).await.unwrap(),
            PowerState::Off
        );

        for device in [
            BootDevice::Pxe,
            BootDevice::Cdrom,
            BootDevice::Disk,
            BootDevice::Pxe,
        ] {
            let read = bmc.set_boot(BootOverride::once(device)).await.unwrap();
            assert_eq!(read.device, device);
            assert_eq!(bmc.boot().await.unwrap().device, device);
        }
        let e = bmc
            .set_boot(BootOverride::once(BootDevice::BiosSetup))
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Unsupported { .. }), "{e:?}");
        let e = bmc
            .set_boot(BootOverride {
                device: BootDevice::Pxe,
                persistence: Persistence::Once,
                mode: Some(BootMode::Uefi),
            })
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Unsupported { .. }), "{e:?}");
        bmc.power(PowerAction::On).await.unwrap();

        let e = Libvirt::connect(LibvirtConfig {
            uri: "test:///default".into(),
            domain: format!("no-such-domain-{}", std::process::id()),
            policy: fast_policy(),
        })
        .await
        .unwrap_err();
        assert!(matches!(e, Error::Config { .. }), "{e:?}");
    }
}

#[cfg(feature = "ipmi")]
mod ipmi_lossy {
    use super::*;
    use bmc_power::{IpmiVersion, Negotiated};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::net::UdpSocket;

    /// A UDP relay between the client and ipmi_sim that drops every other client datagram and
    /// sends every BMC reply twice: each request needs a retransmission, and every reply has a
    /// duplicate that arrives while the client waits for the next one (a late reply).
    async fn lossy_relay(bmc_port: u16) -> (u16, Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
        let front = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let back = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        back.connect(("127.0.0.1", bmc_port)).await.unwrap();
        let port = front.local_addr().unwrap().port();
        let dropped = Arc::new(AtomicUsize::new(0));
        let d = dropped.clone();
        let task = tokio::spawn(async move {
            let mut client = None;
            let mut n = 0usize;
            let (mut a, mut b) = (vec![0u8; 2048], vec![0u8; 2048]);
            loop {
                tokio::select! {
                    r = front.recv_from(&mut a) => {
                        let Ok((len, from)) = r else { return };
                        client = Some(from);
                        n += 1;
                        if n % 2 == 1 {
                            d.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                        let _ = back.send(&a[..len]).await;
                    }
                    r = back.recv(&mut b) => {
                        let Ok(len) = r else { continue };
                        if let Some(c) = client {
                            let _ = front.send_to(&b[..len], c).await;
                            let _ = front.send_to(&b[..len], c).await;
                        }
                    }
                }
            }
        });
        (port, dropped, task)
    }

    #[tokio::test]
    async fn netns_ipmi_sim_lossy_link_retransmits_and_skips_duplicates() {
        let Some((peer, port)) = super::ipmi::ipmi_sim_pub() else {
            return;
        };
        super::ipmi::wait_up_pub(&super::ipmi::client_pub(
            port,
            IpmiVersion::Auto,
            "password",
            true,
        ))
        .await;
        let (relay_port, dropped, task) = lossy_relay(port).await;
        for version in [IpmiVersion::Lanplus, IpmiVersion::Lan] {
            let bmc = super::ipmi::client_pub(relay_port, version, "password", true);
            let n = bmc.probe().await.unwrap();
            assert!(
                matches!(n, Negotiated::Lanplus(_) | Negotiated::LanMd5),
                "{n:?}"
            );
            assert_eq!(bmc.power(PowerAction::On).await.unwrap(), PowerState::On);
            assert_eq!(
                bmc.set_boot(BootOverride::once(BootDevice::Pxe))
                    .await
                    .unwrap()
                    .device,
                BootDevice::Pxe
            );
            assert_eq!(bmc.power(PowerAction::Off).await.unwrap(), PowerState::Off);
        }
        assert!(dropped.load(Ordering::Relaxed) > 10);
        task.abort();
        drop(peer);
    }
}

#[cfg(feature = "ipmi")]
mod ipmi_many {
    use super::*;
    use bmc_power::IpmiVersion;

    /// Several BMCs at once through `for_each_host`, with a concurrency bound below the count.
    #[tokio::test]
    async fn netns_ipmi_sim_many_bmcs_concurrently() {
        let mut sims = Vec::new();
        for _ in 0..6 {
            let Some(s) = super::ipmi::ipmi_sim_pub() else {
                return;
            };
            sims.push(s);
        }
        let bmcs: Vec<_> = sims
            .iter()
            .map(|(_, port)| super::ipmi::client_pub(*port, IpmiVersion::Auto, "password", true))
            .collect();
        for b in &bmcs {
            super::ipmi::wait_up_pub(b).await;
        }
        let results = bmc_power::for_each_host(0..bmcs.len(), 4, |i| {
            let bmc = &bmcs[i];
            async move {
                bmc.set_boot(BootOverride::once(BootDevice::Pxe)).await?;
                bmc.power(PowerAction::On).await
            }
        })
        .await;
        for (i, r) in &results {
            assert_eq!(r.as_ref().unwrap(), &PowerState::On, "host {i}");
        }
        for (peer, _) in &sims {
            assert_eq!(
                std::fs::read_to_string(peer.state.join("power"))
                    .unwrap()
                    .trim(),
                "1"
            );
        }
    }
}
