//! A Redfish BMC that misbehaves on purpose (our own fake, `mock.rs`): session logins refused
//! with 401, truncated JSON, resets ignored or answered late. Every request it receives is
//! logged, so the tests can say what was (not) sent.

use super::mock::{self, Fake, SYSTEM, Sessions};
use super::*;
use bmc_power::{Redfish, RedfishAuth, RedfishConfig, Tls};

fn policy() -> Policy {
    Policy {
        timeout: Duration::from_millis(400),
        retries: 2,
        backoff: Duration::from_millis(50),
        settle: Duration::from_millis(800),
        poll_interval: Duration::from_millis(100),
    }
}

fn client(url: &str, auth: RedfishAuth) -> Redfish {
    Redfish::new(RedfishConfig {
        endpoint: url.into(),
        username: "admin".into(),
        password: "password".into(),
        tls: Tls::System,
        auth,
        policy: policy(),
        ..RedfishConfig::default()
    })
    .unwrap()
}

const RESET: &str = "/Actions/ComputerSystem.Reset";

#[tokio::test]
async fn session_login_401_falls_back_to_basic_in_auto_mode() {
    for status in [401, 403, 404, 405] {
        let fake = mock::start(
            Fake {
                sessions: Sessions::Refuse(status),
                ..Fake::default()
            },
            None,
        )
        .await;
        let bmc = client(&fake.url, RedfishAuth::Auto);
        assert_eq!(bmc.power_status().await.unwrap(), PowerState::On);
        assert_eq!(bmc.auth_in_use().await, Some(RedfishAuth::Basic));
        let reqs = fake.requests();
        assert_eq!(reqs[1].method, "POST", "{reqs:?}");
        assert!(
            reqs[2..]
                .iter()
                .all(|r| r.headers.contains_key("authorization"))
        );

        // Session only: the refusal is the answer.
        let e = client(&fake.url, RedfishAuth::Session)
            .power_status()
            .await
            .unwrap_err();
        match status {
            401 | 403 => assert!(matches!(e, Error::Authentication { .. }), "{e:?}"),
            _ => assert!(matches!(e, Error::Unsupported { .. }), "{e:?}"),
        }
    }
    // A working session service is used, in auto and session mode, and basic never.
    let fake = mock::start(
        Fake {
            sessions: Sessions::Works,
            ..Fake::default()
        },
        None,
    )
    .await;
    for auth in [RedfishAuth::Auto, RedfishAuth::Session] {
        let bmc = client(&fake.url, auth);
        assert_eq!(bmc.power_status().await.unwrap(), PowerState::On);
        assert_eq!(bmc.auth_in_use().await, Some(RedfishAuth::Session));
    }
    assert!(
        fake.requests()
            .iter()
            .all(|r| !r.headers.contains_key("authorization")),
        "{:?}",
        fake.requests()
    );
    // Basic mode never posts a login.
    let bmc = client(&fake.url, RedfishAuth::Basic);
    let before = fake.count("POST", "/Sessions");
    bmc.power_status().await.unwrap();
    assert_eq!(fake.count("POST", "/Sessions"), before);
}

#[tokio::test]
async fn truncated_json_is_a_protocol_error_and_no_action_follows() {
    // The system record cut short: power on and bootdev both stop before acting.
    let fake = mock::start(
        Fake {
            power: "Off",
            truncate: Some(SYSTEM.into()),
            ..Fake::default()
        },
        None,
    )
    .await;
    let bmc = client(&fake.url, RedfishAuth::Basic);
    let e = bmc.power(PowerAction::On).await.unwrap_err();
    match &e {
        Error::Protocol {
            url, status, head, ..
        } => {
            assert!(url.ends_with(SYSTEM), "{e}");
            assert_eq!(*status, Some(200));
            assert!(head.starts_with("{\""), "{e}");
        }
        _ => panic!("{e:?}"),
    }
    let e = bmc
        .set_boot(BootOverride::once(BootDevice::Pxe))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Protocol { .. }), "{e:?}");
    assert_eq!(fake.count("POST", RESET), 0);
    assert_eq!(fake.count("PATCH", SYSTEM), 0);
    assert_eq!(fake.fake.lock().unwrap().power, "Off");

    // The Systems collection cut short: a protocol error, not "no system at all".
    let fake = mock::start(
        Fake {
            truncate: Some("/redfish/v1/Systems".into()),
            ..Fake::default()
        },
        None,
    )
    .await;
    let e = client(&fake.url, RedfishAuth::Basic)
        .power(PowerAction::Off)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Protocol { .. }), "{e:?}");
    assert_eq!(fake.count("POST", RESET), 0);

    // A complete record without Boot: bootdev is refused before the PATCH.
    let fake = mock::start(
        Fake {
            no_boot: true,
            ..Fake::default()
        },
        None,
    )
    .await;
    let e = client(&fake.url, RedfishAuth::Basic)
        .set_boot(BootOverride::once(BootDevice::Pxe))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::Protocol { message, .. } if message.contains("Boot")),
        "{e:?}"
    );
    assert_eq!(fake.count("PATCH", SYSTEM), 0);

    // The read-back cut short: a protocol error, not a false "the bmc lied".
    let fake = mock::start(
        Fake {
            truncate_after_patch: true,
            ..Fake::default()
        },
        None,
    )
    .await;
    let e = client(&fake.url, RedfishAuth::Basic)
        .set_boot(BootOverride::once(BootDevice::Pxe))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Protocol { .. }), "{e:?}");
    assert_eq!(fake.count("PATCH", SYSTEM), 1);
}

#[tokio::test]
async fn reset_on_an_ignoring_bmc_is_not_applied_or_not_verifiable() {
    // With a LastResetTime that never moves: the bmc lied, expected and actual in fields.
    let fake = mock::start(
        Fake {
            ignore_reset: true,
            last_reset: Some(1),
            ..Fake::default()
        },
        None,
    )
    .await;
    let e = client(&fake.url, RedfishAuth::Basic)
        .power(PowerAction::Reset)
        .await
        .unwrap_err();
    match &e {
        Error::NotApplied {
            expected, actual, ..
        } => {
            assert!(expected.contains("LastResetTime later than"), "{e}");
            assert!(actual.contains("power on"), "{e}");
        }
        _ => panic!("{e:?}"),
    }
    assert_eq!(fake.count("POST", RESET), 1);

    // Without one, and the host never seen off: not verifiable, never "now on".
    let fake = mock::start(
        Fake {
            ignore_reset: true,
            ..Fake::default()
        },
        None,
    )
    .await;
    let e = client(&fake.url, RedfishAuth::Basic)
        .power(PowerAction::Reset)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::NotVerifiable { .. }), "{e:?}");

    // A BMC that does restart and moves LastResetTime: verified.
    let fake = mock::start(
        Fake {
            last_reset: Some(1),
            ..Fake::default()
        },
        None,
    )
    .await;
    assert_eq!(
        client(&fake.url, RedfishAuth::Basic)
            .power(PowerAction::Reset)
            .await
            .unwrap(),
        PowerState::On
    );
}

#[tokio::test]
async fn late_answered_reset_is_sent_once() {
    // Applied at once, answered after three client timeouts.
    for last_reset in [Some(1), None] {
        let fake = mock::start(
            Fake {
                last_reset,
                reset_delay: Duration::from_millis(1200),
                ..Fake::default()
            },
            None,
        )
        .await;
        let r = client(&fake.url, RedfishAuth::Basic)
            .power(PowerAction::Reset)
            .await;
        assert_eq!(fake.count("POST", RESET), 1, "{last_reset:?}: {r:?}");
        match last_reset {
            // The moved LastResetTime shows it applied.
            Some(_) => assert_eq!(r.unwrap(), PowerState::On),
            // Nothing shows it either way: not resent, and not claimed.
            None => assert!(matches!(r, Err(Error::NotVerifiable { .. })), "{r:?}"),
        }
    }
    // Power on answered late: the read shows it on, so it is not sent again.
    let fake = mock::start(
        Fake {
            power: "Off",
            reset_delay: Duration::from_millis(1200),
            ..Fake::default()
        },
        None,
    )
    .await;
    assert_eq!(
        client(&fake.url, RedfishAuth::Basic)
            .power(PowerAction::On)
            .await
            .unwrap(),
        PowerState::On
    );
    assert_eq!(fake.count("POST", RESET), 1);
}

#[tokio::test]
async fn redfish_error_text_reaches_the_message() {
    let fake = mock::start(
        Fake {
            power: "Off",
            reset_error: Some((400, "The action ComputerSystem.Reset is not supported.")),
            ..Fake::default()
        },
        None,
    )
    .await;
    let e = client(&fake.url, RedfishAuth::Basic)
        .power(PowerAction::On)
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::Refused {
                refusal: bmc_power::Refusal::HttpStatus(400),
                ..
            }
        ),
        "{e:?}"
    );
    assert!(
        e.to_string()
            .contains("The action ComputerSystem.Reset is not supported."),
        "{e}"
    );
}
