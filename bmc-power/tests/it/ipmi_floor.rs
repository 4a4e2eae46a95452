//! The IPMI security floor and honest outcomes: a BMC offering only authtype NONE/STRAIGHT is
//! refused unless allowed by name, `auto` never downgrades on an unauthenticated capability
//! reply, a reset nothing can show is "not verifiable", a late-answered chassis control is
//! sent once (reset), and a wrong IPMI 1.5 password is reported within two timeouts.

use std::sync::{Arc, Mutex};

use super::ipmi::{client_pub, ipmi_sim_auths, ipmi_sim_pub, wait_up_pub};
use super::*;
use bmc_power::{Ipmi, IpmiConfig, IpmiVersion, Negotiated};
use tokio::net::UdpSocket;

fn with(bmc: &Ipmi, f: impl FnOnce(&mut IpmiConfig)) -> Ipmi {
    let mut c = bmc.config().clone();
    f(&mut c);
    Ipmi::new(c).unwrap()
}

#[tokio::test]
async fn netns_ipmi_sim_offering_only_none_and_straight_is_refused() {
    let Some((peer, port)) = ipmi_sim_auths(true, "none straight") else {
        return;
    };
    // RMCP+ still works (ipmi_sim always has it): wait for it to come up that way.
    wait_up_pub(&client_pub(port, IpmiVersion::Auto, "password", true)).await;
    let lan = client_pub(port, IpmiVersion::Lan, "password", true);
    let e = lan.power_status().await.unwrap_err();
    match &e {
        Error::Insecure { offered, .. } => {
            assert!(offered.contains("none, straight"), "{e}");
            assert!(e.to_string().contains("allow_insecure_auth"), "{e}");
        }
        _ => panic!("{e:?}"),
    }
    // Allowed by name: the password goes in clear, and the result says so.
    let allowed = with(&lan, |c| c.allow_insecure_auth = true);
    assert_eq!(allowed.probe().await.unwrap(), Negotiated::LanStraight);
    assert_eq!(allowed.power_status().await.unwrap(), PowerState::Off);
    assert_eq!(allowed.negotiated(), Some(Negotiated::LanStraight));
    drop(peer);
}

/// A BMC (or someone on the path) answering Get Channel Authentication Capabilities with
/// "IPMI 1.5 only, authtypes none/md5/straight"; it logs every command it receives.
async fn v15_only_responder() -> (u16, Arc<Mutex<Vec<u8>>>, tokio::task::JoinHandle<()>) {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let port = sock.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let task = tokio::spawn(async move {
        let mut buf = [0u8; 512];
        loop {
            let Ok((n, from)) = sock.recv_from(&mut buf).await else {
                return;
            };
            let d = &buf[..n];
            // RMCP, then an IPMI 1.5 header without auth code: type, seq, sid, length.
            if n < 14 + 7 || d[4] != 0 {
                s.lock().unwrap().push(0xFF);
                continue;
            }
            let msg = &d[14..];
            let (netfn, seq, cmd) = (msg[1] >> 2, msg[4], msg[5]);
            s.lock().unwrap().push(cmd);
            if cmd != 0x38 {
                continue;
            }
            let mut m = vec![0x81, (netfn + 1) << 2];
            m.push(0u8.wrapping_sub(m[0].wrapping_add(m[1])));
            m.extend_from_slice(&[0x20, seq, cmd, 0x00, 0x01, 0x15, 0x04, 0x00, 0, 0, 0, 0]);
            let sum = m[3..].iter().fold(0u8, |a, b| a.wrapping_add(*b));
            m.push(0u8.wrapping_sub(sum));
            let mut p = vec![0x06, 0x00, 0xFF, 0x07, 0x00, 0, 0, 0, 0, 0, 0, 0, 0];
            p.push(m.len() as u8);
            p.extend_from_slice(&m);
            let _ = sock.send_to(&p, from).await;
        }
    });
    (port, seen, task)
}

#[tokio::test]
async fn auto_never_downgrades_on_an_unauthenticated_capability_reply() {
    let (port, seen, task) = v15_only_responder().await;
    let auto = client_pub(port, IpmiVersion::Auto, "password", true);
    let e = auto.power_status().await.unwrap_err();
    match &e {
        Error::Insecure { offered, .. } => {
            assert!(offered.contains("no ipmi 2.0"), "{e}");
        }
        _ => panic!("{e:?}"),
    }
    // Nothing but the capability question went out: no challenge, no password hash.
    assert!(seen.lock().unwrap().iter().all(|c| *c == 0x38), "{seen:?}");
    // IPMI 1.5 chosen by name would go on (with md5).
    task.abort();
}

#[tokio::test]
async fn netns_ipmi_sim_reset_is_not_verifiable_and_uefi_bit_unverified() {
    let Some((peer, port)) = ipmi_sim_pub() else {
        return;
    };
    let bmc = client_pub(port, IpmiVersion::Auto, "password", true);
    wait_up_pub(&bmc).await;
    let bmc = with(&bmc, |c| c.policy.settle = Duration::from_secs(1));
    assert_eq!(bmc.power(PowerAction::On).await.unwrap(), PowerState::On);
    // ipmi_sim's chassis script logs the reset and leaves the power on: nothing can show it.
    let e = bmc.power(PowerAction::Reset).await.unwrap_err();
    assert!(matches!(e, Error::NotVerifiable { .. }), "{e:?}");
    let log = std::fs::read_to_string(peer.state.join("power.log")).unwrap();
    assert_eq!(log.matches("reset").count(), 1, "{log}");
    // The boot flags read back with the valid bit clear: the device is checked, the UEFI bit
    // asked for is reported as unverified, not as set.
    let e = bmc
        .set_boot(BootOverride {
            device: BootDevice::Pxe,
            persistence: Persistence::Once,
            mode: Some(BootMode::Uefi),
        })
        .await
        .unwrap_err();
    assert!(matches!(e, Error::NotVerifiable { .. }), "{e:?}");
    assert_eq!(bmc.boot().await.unwrap().mode, None);
    drop(peer);
}

/// A relay that holds back ipmi_sim's answer to Chassis Control (IPMI 1.5: the payload is in
/// clear) for `delay`: the BMC applies it at once and answers late.
async fn late_control_relay(bmc_port: u16, delay: Duration) -> (u16, tokio::task::JoinHandle<()>) {
    let front = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let back = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    back.connect(("127.0.0.1", bmc_port)).await.unwrap();
    let port = front.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let mut client = None;
        let (mut a, mut b) = (vec![0u8; 2048], vec![0u8; 2048]);
        loop {
            tokio::select! {
                r = front.recv_from(&mut a) => {
                    let Ok((len, from)) = r else { return };
                    client = Some(from);
                    let _ = back.send(&a[..len]).await;
                }
                r = back.recv(&mut b) => {
                    let Ok(len) = r else { continue };
                    let Some(c) = client else { continue };
                    let d = b[..len].to_vec();
                    // 1.5 header: auth type at 4; a 16-byte auth code unless type 0.
                    let msg = if d.len() > 14 && d[4] != 0x06 {
                        let off = if d[4] == 0 { 14 } else { 30 };
                        d.get(off..).map(<[u8]>::to_vec)
                    } else {
                        None
                    };
                    let late = msg.is_some_and(|m| m.len() > 6 && m[1] >> 2 == 0x01 && m[5] == 0x02);
                    let f = front.clone();
                    tokio::spawn(async move {
                        if late {
                            tokio::time::sleep(delay).await;
                        }
                        let _ = f.send_to(&d, c).await;
                    });
                }
            }
        }
    });
    (port, task)
}

#[tokio::test]
async fn netns_ipmi_sim_late_answered_chassis_control_is_sent_once() {
    let Some((peer, port)) = ipmi_sim_pub() else {
        return;
    };
    wait_up_pub(&client_pub(port, IpmiVersion::Auto, "password", true)).await;
    let (relay, task) = late_control_relay(port, Duration::from_millis(1800)).await;
    let bmc = client_pub(relay, IpmiVersion::Lan, "password", true);
    let bmc = with(&bmc, |c| c.policy.settle = Duration::from_secs(1));
    assert_eq!(bmc.power(PowerAction::On).await.unwrap(), PowerState::On);
    let e = bmc.power(PowerAction::Reset).await.unwrap_err();
    assert!(matches!(e, Error::NotVerifiable { .. }), "{e:?}");
    // (Power on is idempotent and retransmitted; the reset is not.)
    let log = std::fs::read_to_string(peer.state.join("power.log")).unwrap();
    assert_eq!(log.matches("reset").count(), 1, "{log}");
    task.abort();
    drop(peer);
}

#[tokio::test]
async fn netns_ipmi_sim_wrong_lan_password_is_reported_within_two_timeouts() {
    let Some((peer, port)) = ipmi_sim_pub() else {
        return;
    };
    wait_up_pub(&client_pub(port, IpmiVersion::Auto, "password", true)).await;
    let bad = client_pub(port, IpmiVersion::Lan, "wrong", true);
    let start = std::time::Instant::now();
    let e = bad.power_status().await.unwrap_err();
    let took = start.elapsed();
    assert!(
        matches!(&e, Error::Authentication { message, .. } if message.contains("dropped")),
        "{e:?}"
    );
    // fast_policy: 500 ms per answer; the old guess from silence took every retry.
    assert!(took < Duration::from_millis(1500), "{took:?}");
    drop(peer);
}
