//! TLS trust: a self-signed CA:TRUE certificate (openssl's default, and most BMCs') pinned by
//! file and by fingerprint against sushy-emulator, a wrong pin refused before any credential
//! leaves (against our own HTTPS fake, which logs every request), and trust on first use.

use super::mock::{self, Fake};
use super::redfish::{SYSTEM, config, sushy_with};
use super::*;
use bmc_power::{Fingerprint, Redfish, RedfishConfig, Tls};

fn cfg(url: &str, tls: Tls) -> RedfishConfig {
    RedfishConfig {
        system: None,
        ..config(url, "password", tls)
    }
}

#[tokio::test]
async fn netns_sushy_self_signed_ca_true_pinned_by_file_and_by_fingerprint() {
    let dir = tempfile::tempdir().unwrap();
    let Some((cert, key, openssl_fp)) = mock::self_signed(dir.path(), "bmc", "bmc") else {
        return;
    };
    let Some((peer, url)) = sushy_with(Some((cert.clone(), key))) else {
        return;
    };
    // The certificate names "bmc", the URL says 127.0.0.1: a pin does not care.
    let by_file = Redfish::new(RedfishConfig {
        system: Some(SYSTEM.into()),
        ..cfg(&url, Tls::CustomCa(std::fs::read(&cert).unwrap()))
    })
    .unwrap();
    assert_eq!(by_file.power_status().await.unwrap(), PowerState::Off);
    // openssl's own fingerprint line parses, and is the one we computed.
    let pin: Fingerprint = openssl_fp.parse().unwrap();
    assert_eq!(by_file.fingerprint(), Some(pin));

    let by_pin = Redfish::new(RedfishConfig {
        system: Some(SYSTEM.into()),
        ..cfg(&url, Tls::Fingerprint(pin))
    })
    .unwrap();
    assert_eq!(by_pin.power_status().await.unwrap(), PowerState::Off);
    assert_eq!(
        by_pin
            .set_boot(BootOverride::once(BootDevice::Pxe))
            .await
            .unwrap()
            .device,
        BootDevice::Pxe
    );

    // Another self-signed certificate in the file: refused, and the error says which one
    // was presented.
    let (other, _, _) = mock::self_signed(dir.path(), "other", "other").unwrap();
    let e = Redfish::new(cfg(&url, Tls::CustomCa(std::fs::read(&other).unwrap())))
        .unwrap()
        .power_status()
        .await
        .unwrap_err();
    match &e {
        Error::Tls {
            certificate: Some(c),
            reason,
            ..
        } => {
            assert_eq!(c.subject.as_deref(), Some("CN=bmc, O=Test BMC"), "{e}");
            assert_eq!(c.fingerprint, pin, "{e}");
            assert!(reason.contains("not in the ca file"), "{e}");
        }
        _ => panic!("{e:?}"),
    }
    assert!(e.to_string().contains(&pin.to_string()), "{e}");
    drop(peer);
}

#[tokio::test]
async fn wrong_fingerprint_is_refused_before_any_credential_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let Some((cert, key, fp)) = mock::self_signed(dir.path(), "bmc", "bmc") else {
        return;
    };
    let fake = mock::start(Fake::default(), Some((&cert, &key))).await;
    let right: Fingerprint = fp.parse().unwrap();
    let mut wrong = right;
    wrong.0[0] ^= 1;
    for auth in [bmc_power::RedfishAuth::Auto, bmc_power::RedfishAuth::Basic] {
        let bmc = Redfish::new(RedfishConfig {
            auth,
            ..cfg(&fake.url, Tls::Fingerprint(wrong))
        })
        .unwrap();
        let e = bmc.power(PowerAction::On).await.unwrap_err();
        match &e {
            Error::Tls {
                certificate: Some(c),
                reason,
                ..
            } => {
                assert_eq!(c.fingerprint, right, "{e}");
                assert!(reason.contains(&wrong.to_string()), "{e}");
            }
            _ => panic!("{e:?}"),
        }
    }
    // Not one request (let alone a password) reached the server.
    assert!(fake.requests().is_empty(), "{:?}", fake.requests());

    // The right pin works against the same server.
    let bmc = Redfish::new(cfg(&fake.url, Tls::Fingerprint(right))).unwrap();
    assert_eq!(bmc.power_status().await.unwrap(), PowerState::On);
    assert!(!fake.requests().is_empty());
}

#[tokio::test]
async fn trust_on_first_use_pins_the_first_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let Some((cert, key, fp)) = mock::self_signed(dir.path(), "bmc", "bmc") else {
        return;
    };
    let (cert2, key2, _) = mock::self_signed(dir.path(), "impostor", "bmc").unwrap();
    let fake = mock::start(Fake::default(), Some((&cert, &key))).await;
    let bmc = Redfish::new(cfg(&fake.url, Tls::TrustOnFirstUse)).unwrap();
    assert_eq!(bmc.fingerprint(), None);
    assert_eq!(bmc.power_status().await.unwrap(), PowerState::On);
    assert_eq!(bmc.fingerprint(), Some(fp.parse().unwrap()));
    // The caller stores the fingerprint and pins it next time: another server is refused.
    let impostor = mock::start(Fake::default(), Some((&cert2, &key2))).await;
    let pinned = Redfish::new(cfg(
        &impostor.url,
        Tls::Fingerprint(bmc.fingerprint().unwrap()),
    ))
    .unwrap();
    let e = pinned.power_status().await.unwrap_err();
    assert!(matches!(e, Error::Tls { .. }), "{e:?}");
}

/// A certificate issued by a CA in the file still has its name checked: the test server
/// certificate names 127.0.0.1 and localhost, so the same server on 127.0.0.2 is refused.
#[tokio::test]
async fn ca_issued_certificate_keeps_its_hostname_check() {
    let sushy = peers_dir().join("sushy");
    let (cert, key) = (sushy.join("tls.crt"), sushy.join("tls.key"));
    let ca = || Tls::CustomCa(std::fs::read(sushy.join("ca.crt")).unwrap());
    let good = mock::start(Fake::default(), Some((&cert, &key))).await;
    let bmc = Redfish::new(cfg(&good.url, ca())).unwrap();
    assert_eq!(bmc.power_status().await.unwrap(), PowerState::On);
    let other = mock::start_on("127.0.0.2", Fake::default(), Some((&cert, &key))).await;
    let e = Redfish::new(cfg(&other.url, ca()))
        .unwrap()
        .power_status()
        .await
        .unwrap_err();
    match &e {
        Error::Tls {
            certificate: Some(c),
            reason,
            ..
        } => {
            assert_eq!(c.subject.as_deref(), Some("CN=127.0.0.1"), "{e}");
            assert!(reason.to_lowercase().contains("name"), "{e}");
        }
        _ => panic!("{e:?}"),
    }
    assert!(other.requests().is_empty());
}
