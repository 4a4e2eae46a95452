//! Loading, customization and serving of Ignition configs, checked against the upstream JSON
//! schemas (`tests/fixtures/schemas`, see PROVENANCE.md).

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use http::{Request, StatusCode, header};
use ignition_serve::{
    Access, Config, Customization, Delivery, Dropin, Error, File, Group, Keyfile, Mode, Options,
    Profile, Query, Route, Selector, Spec, StaticIpv4, Store, TokenKey, Unit, render_for_host,
};
use pxe_stack::route::{Handler, RouteRequest};
use pxe_stack::{EventKind, HostLookup, Mac, Recorder};
use serde_json::Value;

mod strictness;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn ign_files(dir: &str) -> Vec<PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(fixtures().join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "ign"))
        .collect();
    v.sort();
    assert!(!v.is_empty(), "no fixtures in {dir}");
    v
}

fn all_fixture_configs() -> Vec<PathBuf> {
    [
        "examples-spec2.2",
        "examples-spec3",
        "openshift-pointer",
        "installer-4.10-spec3.2",
        "installer-4.5-spec2.2",
    ]
    .into_iter()
    .flat_map(ign_files)
    .collect()
}

/// Compiled upstream schemas, one per spec version.
fn validators() -> &'static HashMap<&'static str, jsonschema::Validator> {
    static V: OnceLock<HashMap<&'static str, jsonschema::Validator>> = OnceLock::new();
    V.get_or_init(|| {
        Spec::ALL
            .iter()
            .map(|spec| {
                let path = fixtures().join(format!("schemas/ignition-spec-{spec}.schema.json"));
                let schema: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
                (spec.as_str(), jsonschema::validator_for(&schema).unwrap())
            })
            .collect()
    })
}

/// Panics unless `bytes` is a config valid under the schema of the version it declares.
fn assert_schema_valid(bytes: &[u8]) {
    let value: Value = serde_json::from_slice(bytes).expect("emitted config is json");
    let version = value["ignition"]["version"]
        .as_str()
        .expect("has a version");
    let validator = &validators()[version];
    let errors: Vec<String> = validator
        .iter_errors(&value)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "schema {version} errors: {errors:?}");
}

fn pretty(bytes: &[u8]) -> String {
    let v: Value = serde_json::from_slice(bytes).unwrap();
    serde_json::to_string_pretty(&v).unwrap()
}

fn full_customization() -> Customization {
    Customization {
        hostname: Some("master-0.ostest.example.com".into()),
        files: vec![
            File::new("/etc/coreos/installer.d/50-disk.yaml", "dest-device: /dev/sda\n"),
            File {
                path: "/usr/local/bin/hello".into(),
                contents: b"#!/bin/sh\necho hi\n".to_vec(),
                mode: Some(0o755),
            },
            File::new("/etc/binary", vec![0u8, 0xff, 0x10]),
        ],
        units: vec![
            Unit {
                name: "hello.service".into(),
                contents: Some(
                    "[Service]\nType=oneshot\nExecStart=/usr/local/bin/hello\n[Install]\nWantedBy=multi-user.target\n"
                        .into(),
                ),
                enabled: Some(true),
                ..Default::default()
            },
            Unit {
                name: "kubelet.service".into(),
                dropins: vec![Dropin {
                    name: "20-node-ip.conf".into(),
                    contents: "[Service]\nEnvironment=NODE_IP=192.168.111.20\n".into(),
                }],
                ..Default::default()
            },
        ],
        network: vec![
            Keyfile::static_ipv4(&StaticIpv4 {
                interface: "eno1".into(),
                address: Ipv4Addr::new(192, 168, 111, 20),
                prefix: 24,
                gateway: Some(Ipv4Addr::new(192, 168, 111, 1)),
                dns: vec![IpAddr::V4(Ipv4Addr::new(192, 168, 111, 1))],
            })
            .unwrap(),
        ],
        ssh_authorized_keys: vec!["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHOST host@example".into()],
    }
}

// ---------------------------------------------------------------- loading and validation

#[test]
fn every_fixture_loads_and_keeps_its_bytes() {
    for path in all_fixture_configs() {
        let bytes = std::fs::read(&path).unwrap();
        let cfg =
            Config::parse(bytes.clone()).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(cfg.bytes().as_ref(), &bytes[..], "{}", path.display());
        assert!(
            cfg.warnings().is_empty(),
            "{}: {:?}",
            path.display(),
            cfg.warnings()
        );
        let version: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(cfg.spec().as_str(), version["ignition"]["version"]);
        // The fixtures themselves pass the schema, so the validator is not vacuous.
        assert_schema_valid(&bytes);
        // An empty merged customization is the role config, byte for byte.
        let r = render_for_host(&cfg, &Customization::default(), &Mode::Merged).unwrap();
        assert_eq!(r.bytes, cfg.bytes());
        assert_eq!(r.sha512, cfg.sha512());
    }
}

#[test]
fn openshift_pointer_configs_expose_their_refs() {
    let cfg = Config::parse(
        std::fs::read(fixtures().join("openshift-pointer/mco-worker-pointer-spec3.2.0.ign"))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(cfg.spec(), Spec::V3_2);
    let refs = cfg.config_refs();
    assert_eq!(refs.len(), 1);
    assert_eq!(
        refs[0].source,
        "https://test-cluster-api:22623/config/worker"
    );
    assert_eq!(refs[0].hash, None);
    let v2 = Config::parse(
        std::fs::read(fixtures().join("openshift-pointer/mco-worker-pointer-spec2.2.0.ign"))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(v2.spec(), Spec::V2_2);
    assert_eq!(v2.config_refs()[0].source, refs[0].source);
}

#[test]
fn load_dir_reads_the_installer_output() {
    for (dir, spec) in [
        ("installer-4.10-spec3.2", Spec::V3_2),
        ("installer-4.5-spec2.2", Spec::V2_2),
    ] {
        let store = Store::load_dir(fixtures().join(dir)).unwrap();
        let roles: Vec<&str> = store.roles().map(|(r, _)| r).collect();
        assert_eq!(roles, ["bootstrap", "master", "worker"], "{dir}");
        for role in roles {
            assert_eq!(store.role(role).unwrap().spec(), spec);
        }
        let meta = store.metadata().unwrap();
        assert_eq!(meta.cluster_name.as_deref(), Some("ostest"));
        assert!(meta.infra_id.as_deref().unwrap().starts_with("ostest-"));
        let boot = store.role("bootstrap").unwrap();
        assert!(
            boot.file_paths()
                .contains(&"/opt/openshift/auth/kubeconfig")
        );
        assert!(boot.unit_names().contains(&"bootkube.service"));
        assert_eq!(boot.user_names(), ["core"]);
        // Debug never shows content.
        assert!(!format!("{boot:?}").contains("FAKE"));
        let debug = format!("{:?}", full_customization());
        for secret in [
            "dest-device",
            "echo hi",
            "ExecStart",
            "NODE_IP",
            "192.168.111.20/24",
        ] {
            assert!(!debug.contains(secret), "Debug shows {secret}: {debug}");
        }
    }
}

fn check_invalid(json: &str, expect: impl Fn(&Error) -> bool) {
    match Config::parse(json.to_owned()) {
        Ok(_) => panic!("accepted {json}"),
        Err(e) => assert!(expect(&e), "{json}: unexpected error {e:?}"),
    }
}

#[test]
fn invalid_configs_are_refused_at_load_time() {
    let invalid = |e: &Error| matches!(e, Error::Invalid { .. });
    check_invalid("{", |e| matches!(e, Error::Json { .. }));
    check_invalid("", |e| matches!(e, Error::Json { .. }));
    check_invalid("[]", |e| {
        matches!(e, Error::MissingVersion { .. } | Error::Invalid { .. })
    });
    check_invalid("{}", |e| matches!(e, Error::MissingVersion { .. }));
    check_invalid(r#"{"ignition":{"version":3}}"#, |e| {
        matches!(e, Error::MissingVersion { .. })
    });
    for v in ["2.1.0", "2.3.0", "3.6.0", "3.7.0-experimental", "1.0.0", ""] {
        check_invalid(
            &format!(r#"{{"ignition":{{"version":"{v}"}}}}"#),
            |e| matches!(e, Error::UnsupportedVersion { version, .. } if version == v),
        );
    }
    check_invalid(
        r#"{"ignition":{"version":"3.2.0","config":{"append":[{"source":"http://x"}]}}}"#,
        invalid,
    );
    check_invalid(
        r#"{"ignition":{"version":"2.2.0","config":{"merge":[{"source":"http://x"}]}}}"#,
        invalid,
    );
    check_invalid(
        r#"{"ignition":{"version":"3.2.0","config":{"merge":[{"verification":{}}]}}}"#,
        invalid,
    );
    // 2.2 files need a filesystem; 3.x paths must be absolute and unique.
    check_invalid(
        r#"{"ignition":{"version":"2.2.0"},"storage":{"files":[{"path":"/a"}]}}"#,
        invalid,
    );
    check_invalid(
        r#"{"ignition":{"version":"3.0.0"},"storage":{"files":[{"path":"a"}]}}"#,
        invalid,
    );
    check_invalid(
        r#"{"ignition":{"version":"3.0.0"},"storage":{"files":[{"path":"/a"}],"links":[{"path":"/a","target":"/b"}]}}"#,
        |e| matches!(e, Error::Duplicate { key, .. } if key == "/a"),
    );
    check_invalid(
        r#"{"ignition":{"version":"3.1.0"},"systemd":{"units":[{"name":"a.service"},{"name":"a.service"}]}}"#,
        |e| matches!(e, Error::Duplicate { .. }),
    );
    check_invalid(
        r#"{"ignition":{"version":"3.1.0"},"systemd":{"units":[{"enabled":true}]}}"#,
        invalid,
    );
    check_invalid(
        r#"{"ignition":{"version":"3.1.0"},"storage":{"files":[{"path":"/a","mode":-1}]}}"#,
        invalid,
    );
    check_invalid(
        r#"{"ignition":{"version":"3.1.0"},"storage":{"files":"nope"}}"#,
        invalid,
    );
    check_invalid(
        r#"{"ignition":{"version":"3.1.0"},"passwd":{"users":[{"name":"core","sshAuthorizedKeys":[1]}]}}"#,
        invalid,
    );
    // Hash algorithms: sha256 only from 3.1; hex length checked.
    let sha256 = format!("sha256-{}", "a".repeat(64));
    check_invalid(
        &format!(
            r#"{{"ignition":{{"version":"2.2.0","config":{{"append":[{{"source":"http://x","verification":{{"hash":"{sha256}"}}}}]}}}}}}"#
        ),
        invalid,
    );
    check_invalid(
        r#"{"ignition":{"version":"3.2.0","config":{"merge":[{"source":"http://x","verification":{"hash":"sha512-abc"}}]}}}"#,
        invalid,
    );
    Config::parse(format!(
        r#"{{"ignition":{{"version":"3.1.0","config":{{"merge":[{{"source":"http://x","verification":{{"hash":"{sha256}"}}}}]}}}}}}"#
    ))
    .unwrap();
}

#[test]
fn go_empty_objects_and_nulls_are_tolerated_and_unknown_keys_warned() {
    let cfg = Config::parse(
        r#"{"ignition":{"version":"3.1.0","config":{"merge":null,"replace":{"verification":{}}},"proxy":{},"timeouts":{},"security":{"tls":{"certificateAuthorities":null}}},
            "storage":{"files":null,"directories":[]},"systemd":{},"passwd":{"users":null},"networkd":{}}"#,
    )
    .unwrap();
    assert_eq!(cfg.warnings().len(), 1, "{:?}", cfg.warnings());
    assert_eq!(cfg.warnings()[0].to_string(), "unknown key at /networkd");
}

#[test]
fn load_dir_refuses_an_invalid_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("master.ign"),
        r#"{"ignition":{"version":"3.2.0"}}"#,
    )
    .unwrap();
    std::fs::write(
        dir.path().join("worker.ign"),
        r#"{"ignition":{"version":"9.9.9"}}"#,
    )
    .unwrap();
    let err = Store::load_dir(dir.path()).unwrap_err();
    assert!(matches!(err, Error::UnsupportedVersion { .. }), "{err:?}");
    assert!(err.to_string().contains("worker.ign"), "{err}");
    assert!(matches!(
        Store::load_dir(dir.path().join("missing")),
        Err(Error::Io { .. })
    ));
}

// ---------------------------------------------------------------- rendering

#[test]
fn every_rendering_of_every_fixture_validates() {
    let custom = full_customization();
    for path in all_fixture_configs() {
        let cfg = Config::parse(std::fs::read(&path).unwrap()).unwrap();
        let name = path.display();
        if cfg
            .value()
            .pointer("/ignition/config/replace/source")
            .is_some()
        {
            // A merged customization would be dropped by the replacement: refused.
            let e = render_for_host(&cfg, &custom, &Mode::Merged).unwrap_err();
            assert!(
                matches!(e, Error::Customization { ref field, .. } if field == "mode"),
                "{name}"
            );
        } else {
            check_merged(&cfg, &custom);
        }
        let pointer = render_for_host(
            &cfg,
            &custom,
            &Mode::Pointer {
                url: "http://192.168.111.1:8080/ignition/master?mac=52:54:00:00:00:20".into(),
            },
        )
        .unwrap();
        assert_schema_valid(&pointer.bytes);
        let p = Config::parse(pointer.bytes.clone()).unwrap();
        assert_eq!(p.spec(), cfg.spec());
        let refs = p.config_refs();
        assert_eq!(refs.len(), 1);
        assert_eq!(
            refs[0].hash.as_deref(),
            Some(cfg.verification_hash().as_str())
        );
        // Bare pointer.
        let bare = render_for_host(
            &cfg,
            &Customization::default(),
            &Mode::Pointer {
                url: "http://h/ignition/x".into(),
            },
        )
        .unwrap();
        assert_schema_valid(&bare.bytes);
    }
}

fn check_merged(cfg: &Config, custom: &Customization) {
    let merged = render_for_host(cfg, custom, &Mode::Merged).unwrap();
    assert_eq!(merged.spec, cfg.spec());
    assert_schema_valid(&merged.bytes);
    // What we emit, we also load.
    let again = Config::parse(merged.bytes.clone()).unwrap();
    assert_eq!(again.sha512(), merged.sha512);
    assert!(again.file_paths().contains(&"/etc/hostname"));
    assert!(
        again
            .file_paths()
            .contains(&"/etc/NetworkManager/system-connections/eno1.nmconnection")
    );
    for p in cfg.file_paths() {
        assert!(again.file_paths().contains(&p), "lost {p}");
    }
}

#[test]
fn merged_replaces_same_path_and_same_unit() {
    let cfg = Config::parse(
        std::fs::read(fixtures().join("installer-4.5-spec2.2/bootstrap.ign")).unwrap(),
    )
    .unwrap();
    let custom = Customization {
        hostname: Some("bootstrap-0".into()),
        units: vec![Unit {
            name: "bootkube.service".into(),
            enabled: Some(false),
            ..Default::default()
        }],
        ..Default::default()
    };
    let r = render_for_host(&cfg, &custom, &Mode::Merged).unwrap();
    let out = Config::parse(r.bytes).unwrap();
    assert_eq!(
        out.file_paths()
            .iter()
            .filter(|p| **p == "/etc/hostname")
            .count(),
        1
    );
    assert_eq!(
        out.unit_names()
            .iter()
            .filter(|n| **n == "bootkube.service")
            .count(),
        1
    );
    let v = out.value();
    let host = v["storage"]["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "/etc/hostname")
        .unwrap();
    assert_eq!(host["contents"]["source"], "data:,bootstrap-0%0A");
    assert_eq!(host["filesystem"], "root");
    // SSH key added to the existing core user, not a second user.
    let custom = Customization {
        ssh_authorized_keys: vec!["ssh-ed25519 NEW".into()],
        ..Default::default()
    };
    let out = Config::parse(render_for_host(&cfg, &custom, &Mode::Merged).unwrap().bytes).unwrap();
    assert_eq!(out.user_names(), ["core"]);
    assert_eq!(
        out.value()["passwd"]["users"][0]["sshAuthorizedKeys"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn bad_customizations_are_typed_errors() {
    let cfg = Config::parse(
        r#"{"ignition":{"version":"3.2.0"},"storage":{"directories":[{"path":"/etc/x"}]}}"#,
    )
    .unwrap();
    let check = |c: Customization| render_for_host(&cfg, &c, &Mode::Merged).unwrap_err();
    let e = check(Customization {
        hostname: Some("bad_name".into()),
        ..Default::default()
    });
    assert!(
        matches!(e, Error::Customization { ref field, .. } if field == "hostname"),
        "{e:?}"
    );
    let e = check(Customization {
        files: vec![File::new("relative", "")],
        ..Default::default()
    });
    assert!(matches!(e, Error::Customization { .. }), "{e:?}");
    let e = check(Customization {
        files: vec![File::new("/etc/x", "")],
        ..Default::default()
    });
    assert!(matches!(e, Error::PathConflict { .. }), "{e:?}");
    let e = check(Customization {
        files: vec![File::new("/etc/hostname", "")],
        hostname: Some("a".into()),
        ..Default::default()
    });
    assert!(matches!(e, Error::Customization { .. }), "{e:?}");
    let e = check(Customization {
        units: vec![Unit {
            name: "noext".into(),
            ..Default::default()
        }],
        ..Default::default()
    });
    assert!(matches!(e, Error::Customization { .. }), "{e:?}");
    let e = check(Customization {
        network: vec![Keyfile {
            name: "../x".into(),
            contents: String::new(),
        }],
        ..Default::default()
    });
    assert!(matches!(e, Error::Customization { .. }), "{e:?}");
    let e = check(Customization {
        files: vec![File {
            mode: Some(0o4755),
            ..File::new("/usr/local/bin/suid", "")
        }],
        ..Default::default()
    });
    assert!(matches!(e, Error::Customization { .. }), "{e:?}");
    let e = render_for_host(
        &cfg,
        &Customization::default(),
        &Mode::Pointer {
            url: "not a url".into(),
        },
    )
    .unwrap_err();
    assert!(matches!(e, Error::InvalidUrl { .. }), "{e:?}");
}

#[test]
fn a_big_bootstrap_config_loads_and_renders() {
    // bootstrap.ign is several hundred KiB to MiB of embedded files.
    let files: Vec<Value> = (0..3000)
        .map(|i| {
            serde_json::json!({
                "path": format!("/opt/openshift/manifests/m{i}.yaml"),
                "mode": 420,
                "overwrite": true,
                "contents": { "source": format!("data:text/plain;charset=utf-8;base64,{}", "QUJD".repeat(300)), "verification": {} }
            })
        })
        .collect();
    let big =
        serde_json::json!({ "ignition": { "version": "3.2.0" }, "storage": { "files": files } });
    let bytes = serde_json::to_vec(&big).unwrap();
    assert!(bytes.len() > 3_000_000);
    let cfg = Config::parse(bytes).unwrap();
    let r = render_for_host(&cfg, &full_customization(), &Mode::Merged).unwrap();
    assert_eq!(Config::parse(r.bytes).unwrap().file_paths().len(), 3000 + 5);
}

// ---------------------------------------------------------------- snapshots

fn snapshot_role(path: &str) -> Config {
    Config::parse(std::fs::read(fixtures().join(path)).unwrap()).unwrap()
}

fn small_customization() -> Customization {
    Customization {
        hostname: Some("worker-0".into()),
        files: vec![File::new("/etc/motd.d/10-host", "worker-0 in rack a\n")],
        units: vec![Unit {
            name: "hello.service".into(),
            contents: Some("[Service]\nExecStart=/bin/true\n".into()),
            enabled: Some(true),
            ..Default::default()
        }],
        network: vec![
            Keyfile::static_ipv4(&StaticIpv4 {
                interface: "eno1".into(),
                address: Ipv4Addr::new(192, 168, 111, 21),
                prefix: 24,
                gateway: Some(Ipv4Addr::new(192, 168, 111, 1)),
                dns: vec![],
            })
            .unwrap(),
        ],
        ssh_authorized_keys: vec![],
    }
}

#[test]
fn snapshot_static_keyfile() {
    let k = Keyfile::static_ipv4(&StaticIpv4 {
        interface: "eno1".into(),
        address: Ipv4Addr::new(192, 168, 111, 21),
        prefix: 24,
        gateway: Some(Ipv4Addr::new(192, 168, 111, 1)),
        dns: vec![
            IpAddr::V4(Ipv4Addr::new(192, 168, 111, 1)),
            IpAddr::V4(Ipv4Addr::new(9, 9, 9, 9)),
        ],
    })
    .unwrap();
    assert_eq!(
        k.path(),
        "/etc/NetworkManager/system-connections/eno1.nmconnection"
    );
    insta::assert_snapshot!("static_keyfile", k.contents);
}

#[test]
fn snapshot_merged_spec3() {
    let r = render_for_host(
        &snapshot_role("openshift-pointer/mco-worker-pointer-spec3.2.0.ign"),
        &small_customization(),
        &Mode::Merged,
    )
    .unwrap();
    insta::assert_snapshot!("merged_spec3_2", pretty(&r.bytes));
}

#[test]
fn snapshot_merged_spec2() {
    let r = render_for_host(
        &snapshot_role("openshift-pointer/mco-worker-pointer-spec2.2.0.ign"),
        &small_customization(),
        &Mode::Merged,
    )
    .unwrap();
    insta::assert_snapshot!("merged_spec2_2", pretty(&r.bytes));
}

#[test]
fn snapshot_pointer_spec3() {
    let r = render_for_host(
        &snapshot_role("installer-4.10-spec3.2/worker.ign"),
        &small_customization(),
        &Mode::Pointer {
            url: "http://192.168.111.1:8080/ignition/worker?mac=52:54:00:00:00:21".into(),
        },
    )
    .unwrap();
    insta::assert_snapshot!("pointer_spec3_2", pretty(&r.bytes));
}

#[test]
fn snapshot_pointer_spec2() {
    let r = render_for_host(
        &snapshot_role("installer-4.5-spec2.2/worker.ign"),
        &small_customization(),
        &Mode::Pointer {
            url: "http://192.168.111.1:8080/ignition/worker?mac=52:54:00:00:00:21".into(),
        },
    )
    .unwrap();
    insta::assert_snapshot!("pointer_spec2_2", pretty(&r.bytes));
}

// ---------------------------------------------------------------- serving

/// A lease table: the state our DHCP server would hold.
#[derive(Default)]
struct Leases(Mutex<Vec<(Mac, IpAddr)>>);

impl Leases {
    fn with(pairs: &[(&str, [u8; 4])]) -> Arc<Self> {
        Arc::new(Leases(Mutex::new(
            pairs
                .iter()
                .map(|(m, a)| (m.parse().unwrap(), IpAddr::V4(Ipv4Addr::from(*a))))
                .collect(),
        )))
    }
}

impl HostLookup for Leases {
    fn mac_for(&self, addr: IpAddr) -> Option<Mac> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .find(|(_, a)| *a == addr)
            .map(|(m, _)| *m)
    }
    fn addr_for(&self, mac: Mac) -> Option<IpAddr> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .find(|(m, _)| *m == mac)
            .map(|(_, a)| *a)
    }
}

const M0: &str = "52:54:00:00:00:10";
const W0: &str = "52:54:00:00:00:20";
const OTHER: &str = "52:54:00:00:00:99";

fn cluster_store() -> Store {
    let mut store = Store::load_dir(fixtures().join("installer-4.10-spec3.2")).unwrap();
    store
        .add_groups_json(
            br#"{"groups": [
            {"id": "bootstrap", "selector": {"mac": "52:54:00:00:00:01"}, "profile": {"role": "bootstrap"}},
            {"id": "master-0", "selector": {"mac": "52:54:00:00:00:10"},
             "profile": {"role": "master", "customization": {"hostname": "master-0"}, "kernel_args": ["console=ttyS0"]}},
            {"id": "worker-0", "selector": {"mac": "52:54:00:00:00:20"},
             "profile": {"role": "worker", "customization": {"hostname": "worker-0"}}}
        ]}"#,
        )
        .unwrap();
    store
}

fn request(uri: &str, peer: [u8; 4]) -> RouteRequest {
    RouteRequest {
        request: Request::get(uri).body(Bytes::new()).unwrap(),
        peer: SocketAddr::new(IpAddr::V4(Ipv4Addr::from(peer)), 40000),
        mac: None,
    }
}

fn call(route: &Route, req: RouteRequest) -> http::Response<Bytes> {
    futures_lite::future::block_on(route.handle(req))
}

fn leases() -> Arc<Leases> {
    Leases::with(&[
        (M0, [192, 168, 111, 20]),
        (W0, [192, 168, 111, 21]),
        (OTHER, [192, 168, 111, 99]),
        ("52:54:00:00:00:01", [192, 168, 111, 10]),
    ])
}

fn route_with(options: Options) -> (Route, Recorder) {
    let events = Recorder::new();
    let route = Route::new(cluster_store(), leases(), Arc::new(events.clone()), options);
    (route, events)
}

#[test]
fn serves_the_hosts_config_only_to_its_lease() {
    let (route, events) = route_with(Options::default());
    let resp = call(
        &route,
        request("/ignition?mac=52-54-00-00-00-10", [192, 168, 111, 20]),
    );
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/json");
    assert_eq!(resp.headers()[header::CACHE_CONTROL], "no-store");
    assert_schema_valid(resp.body());
    let cfg = Config::parse(resp.body().clone()).unwrap();
    assert!(cfg.file_paths().contains(&"/etc/hostname"));
    let ev = events.events();
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].mac, Some(M0.parse().unwrap()));
    assert_eq!(
        ev[0].addr,
        Some(IpAddr::V4(Ipv4Addr::new(192, 168, 111, 20)))
    );
    assert_eq!(
        ev[0].kind,
        EventKind::Ignition {
            role: "master".into(),
            sha512: cfg.sha512().to_owned()
        }
    );

    // Another host's address: refused, no event.
    let resp = call(
        &route,
        request("/ignition?mac=52:54:00:00:00:10", [192, 168, 111, 21]),
    );
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    // An address holding no lease.
    let resp = call(
        &route,
        request("/ignition?mac=52:54:00:00:00:10", [10, 0, 0, 1]),
    );
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    // No MAC in the URL: the lease holder of the source address is the host.
    let resp = call(&route, request("/ignition", [192, 168, 111, 20]));
    assert_eq!(resp.status(), StatusCode::OK);
    // No MAC and no lease: unidentified.
    let resp = call(&route, request("/ignition", [10, 0, 0, 1]));
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    // A known, leased host that no group matches: 404 (there is no default group).
    let resp = call(
        &route,
        request("/ignition?mac=52:54:00:00:00:99", [192, 168, 111, 99]),
    );
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert_eq!(events.events().len(), 2);
    // IPv4-mapped IPv6 peers (a dual-stack listener) are the same address.
    let mut req = request("/ignition?mac=52:54:00:00:00:10", [0, 0, 0, 0]);
    req.peer = "[::ffff:192.168.111.20]:4000".parse().unwrap();
    assert_eq!(call(&route, req).status(), StatusCode::OK);
}

/// A dual-stack host holds a lease of each family (the DHCPv4 and DHCPv6 tables as one
/// lookup): its config goes to either of its addresses, and to no other.
#[test]
fn a_dual_stack_host_is_served_over_either_of_its_leases() {
    let v6 = Arc::new(Leases(Mutex::new(vec![(
        M0.parse().unwrap(),
        "fd00:22::10".parse().unwrap(),
    )])));
    let both: Arc<dyn HostLookup> = Arc::new((LeasesRef(leases()), LeasesRef(v6)));
    let route = Route::new(
        cluster_store(),
        both,
        Arc::new(Recorder::new()),
        Options::default(),
    );
    let mut over_v6 = request("/ignition?mac=52-54-00-00-00-10", [0, 0, 0, 0]);
    over_v6.peer = "[fd00:22::10]:4000".parse().unwrap();
    assert_eq!(call(&route, over_v6).status(), StatusCode::OK);
    let over_v4 = request("/ignition?mac=52-54-00-00-00-10", [192, 168, 111, 20]);
    assert_eq!(call(&route, over_v4).status(), StatusCode::OK);
    let mut stranger = request("/ignition?mac=52-54-00-00-00-10", [0, 0, 0, 0]);
    stranger.peer = "[fd00:22::77]:4000".parse().unwrap();
    assert_eq!(call(&route, stranger).status(), StatusCode::FORBIDDEN);
}

/// An `Arc<Leases>` as a lookup of its own (a pair takes lookups by value).
struct LeasesRef(Arc<Leases>);

impl HostLookup for LeasesRef {
    fn mac_for(&self, addr: IpAddr) -> Option<Mac> {
        self.0.mac_for(addr)
    }
    fn addr_for(&self, mac: Mac) -> Option<IpAddr> {
        self.0.addr_for(mac)
    }
}

/// A host of the plan that asks before it holds a lease gets 503 with `Retry-After` (Ignition
/// and coreos-installer retry 5xx; a 4xx is final); an address that is not the host's, while
/// someone holds its lease, still gets 403; an unknown MAC with no lease too.
#[test]
fn a_known_host_without_a_lease_is_told_to_retry() {
    let events = Recorder::new();
    let leases = Leases::with(&[(W0, [192, 168, 111, 21])]);
    let route = Route::new(
        cluster_store(),
        leases.clone(),
        Arc::new(events.clone()),
        Options::default(),
    );
    let resp = call(
        &route,
        request("/ignition?mac=52:54:00:00:00:10", [192, 168, 111, 20]),
    );
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(resp.headers()[header::RETRY_AFTER], "5");
    // Someone else's address for a host that holds a lease: 403 as before.
    let resp = call(
        &route,
        request("/ignition?mac=52:54:00:00:00:20", [192, 168, 111, 22]),
    );
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    // A MAC no group selects, with no lease: 403.
    let resp = call(
        &route,
        request("/ignition?mac=52:54:00:00:00:77", [192, 168, 111, 77]),
    );
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    // Once the lease is there, the host is served.
    leases.0.lock().unwrap().push((
        M0.parse().unwrap(),
        IpAddr::V4(Ipv4Addr::new(192, 168, 111, 20)),
    ));
    let resp = call(
        &route,
        request("/ignition?mac=52:54:00:00:00:10", [192, 168, 111, 20]),
    );
    assert_eq!(resp.status(), StatusCode::OK);
}

#[test]
fn most_specific_group_and_default() {
    let mut store = Store::load_dir(fixtures().join("installer-4.10-spec3.2")).unwrap();
    store
        .add_groups_json(
            br#"[
            {"id": "worker-0", "selector": {"mac": "52:54:00:00:00:20", "labels": {"rack": "a"}},
             "profile": {"role": "worker", "customization": {"hostname": "worker-0"}}},
            {"id": "rack-a", "selector": {"labels": {"rack": "a"}}, "profile": {"role": "worker"}}
        ]"#,
        )
        .unwrap();
    // A per-MAC group would tie with rack-a for a host in rack a: refused when added.
    let tie = store.add_groups_json(
        br#"[{"id": "m", "selector": {"mac": "52:54:00:00:00:10"}, "profile": {"role": "master"}}]"#,
    );
    assert!(matches!(tie, Err(Error::AmbiguousGroups { .. })), "{tie:?}");
    let route = Route::new(
        store,
        leases(),
        Arc::new(Recorder::new()),
        Options::default(),
    );
    // worker-0 has {mac, rack}: more specific than rack-a.
    let resp = call(
        &route,
        request(
            "/ignition?mac=52:54:00:00:00:20&rack=a",
            [192, 168, 111, 21],
        ),
    );
    assert_eq!(resp.status(), StatusCode::OK);
    let cfg = Config::parse(resp.body().clone()).unwrap();
    assert!(cfg.file_paths().contains(&"/etc/hostname"));
    // The other host in rack a gets rack-a (plain worker role config, exact bytes).
    let resp = call(
        &route,
        request(
            "/ignition?mac=52:54:00:00:00:99&rack=a",
            [192, 168, 111, 99],
        ),
    );
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.body(), route.store().role("worker").unwrap().bytes());
    // A default group catches the rest.
    route
        .update(|s| {
            s.add_group(Group {
                id: "default".into(),
                selector: Selector::default(),
                profile: Profile {
                    role: "worker".into(),
                    ..Default::default()
                },
            })
        })
        .unwrap();
    let resp = call(
        &route,
        request("/ignition?mac=52:54:00:00:00:99", [192, 168, 111, 99]),
    );
    assert_eq!(resp.status(), StatusCode::OK);
}

#[test]
fn not_ready_is_503_with_retry_after() {
    let (route, events) = route_with(Options::default());
    route.update(|s| s.set_ready(false));
    let resp = call(
        &route,
        request("/ignition?mac=52:54:00:00:00:10", [192, 168, 111, 20]),
    );
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(resp.headers()[header::RETRY_AFTER], "5");
    route.update(|s| s.set_ready(true));

    // A group whose role is declared but not loaded yet.
    let mut store = Store::new();
    store.expect_role("master").unwrap();
    store
        .add_group(Group {
            id: "m".into(),
            selector: Selector {
                mac: Some(M0.parse().unwrap()),
                ..Default::default()
            },
            profile: Profile {
                role: "master".into(),
                ..Default::default()
            },
        })
        .unwrap();
    route.replace_store(store);
    let resp = call(
        &route,
        request("/ignition?mac=52:54:00:00:00:10", [192, 168, 111, 20]),
    );
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(resp.headers().contains_key(header::RETRY_AFTER));
    // Once loaded, it is served.
    route
        .update(|s| {
            s.load_role_file(
                "master",
                fixtures().join("installer-4.10-spec3.2/master.ign"),
            )
            .map(|_| ())
        })
        .unwrap();
    let resp = call(
        &route,
        request("/ignition?mac=52:54:00:00:00:10", [192, 168, 111, 20]),
    );
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(events.events().len(), 1);
}

#[test]
fn bad_requests() {
    let (route, events) = route_with(Options::default());
    let resp = call(&route, request("/ignition?mac=nope", [192, 168, 111, 20]));
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let resp = call(
        &route,
        request(
            "/ignition?mac=52:54:00:00:00:10&mac=52:54:00:00:00:10",
            [192, 168, 111, 20],
        ),
    );
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let resp = call(&route, request("/other", [192, 168, 111, 20]));
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let mut req = request("/ignition?mac=52:54:00:00:00:10", [192, 168, 111, 20]);
    *req.request.method_mut() = http::Method::POST;
    let resp = call(&route, req);
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert!(events.events().is_empty());
}

#[test]
fn token_access_for_routed_setups() {
    let key = TokenKey::new(b"0123456789abcdef0123456789abcdef".to_vec());
    let (route, events) = route_with(Options {
        access: Access::Token(key.clone()),
        ..Default::default()
    });
    let q = Query {
        mac: Some(M0.parse().unwrap()),
        ..Default::default()
    };
    let url = format!("/ignition?{}", key.query_string(&q));
    // From a router's address, not the lease.
    let resp = call(&route, request(&url, [10, 1, 2, 3]));
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(events.events().len(), 1);
    // A token for another host, a tampered token, a missing one, or changed claims: refused.
    let other = key.token_for(&Query {
        mac: Some(W0.parse().unwrap()),
        ..Default::default()
    });
    for bad in [
        format!("/ignition?mac={M0}&token={other}"),
        format!("/ignition?mac={M0}&token={}", &key.token_for(&q)[..63]),
        format!("/ignition?mac={M0}&token=zz"),
        format!("/ignition?mac={M0}"),
        format!("/ignition?{}&rack=a", key.query_string(&q)),
    ] {
        assert_eq!(
            call(&route, request(&bad, [10, 1, 2, 3])).status(),
            StatusCode::FORBIDDEN,
            "{bad}"
        );
    }
    // Lease alone is not enough in token mode.
    let resp = call(
        &route,
        request(&format!("/ignition?mac={M0}"), [192, 168, 111, 20]),
    );
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    // LeaseOrToken accepts either.
    let (route, _) = route_with(Options {
        access: Access::LeaseOrToken(key.clone()),
        ..Default::default()
    });
    assert_eq!(
        call(
            &route,
            request(&format!("/ignition?mac={M0}"), [192, 168, 111, 20])
        )
        .status(),
        StatusCode::OK
    );
    assert_eq!(
        call(&route, request(&url, [10, 1, 2, 3])).status(),
        StatusCode::OK
    );
    assert!(!format!("{key:?}").contains("0123"));
}

#[test]
fn pointer_delivery_pins_the_role_config() {
    let (route, events) = route_with(Options {
        delivery: Delivery::Pointer {
            base_url: "http://192.168.111.1:8080/".into(),
        },
        ..Default::default()
    });
    let resp = call(
        &route,
        request("/ignition?mac=52:54:00:00:00:10", [192, 168, 111, 20]),
    );
    assert_eq!(resp.status(), StatusCode::OK);
    assert_schema_valid(resp.body());
    let pointer = Config::parse(resp.body().clone()).unwrap();
    let refs = pointer.config_refs();
    assert_eq!(
        refs[0].source,
        "http://192.168.111.1:8080/ignition/master?mac=52:54:00:00:00:10"
    );
    // Follow it as Ignition would: same host, then check the pinned hash.
    let path = refs[0]
        .source
        .strip_prefix("http://192.168.111.1:8080")
        .unwrap();
    let role = call(&route, request(path, [192, 168, 111, 20]));
    assert_eq!(role.status(), StatusCode::OK);
    let served = Config::parse(role.body().clone()).unwrap();
    assert_eq!(Some(served.verification_hash()), refs[0].hash);
    assert_eq!(role.body(), route.store().role("master").unwrap().bytes());
    // Another host may not fetch the master role, nor may master-0 fetch bootstrap.
    assert_eq!(
        call(&route, request(path, [192, 168, 111, 21])).status(),
        StatusCode::FORBIDDEN
    );
    let boot = "/ignition/bootstrap?mac=52:54:00:00:00:10";
    assert_eq!(
        call(&route, request(boot, [192, 168, 111, 20])).status(),
        StatusCode::FORBIDDEN
    );
    let kinds: Vec<_> = events.events().into_iter().map(|e| e.kind).collect();
    assert_eq!(kinds.len(), 2);
    assert_eq!(
        kinds[1],
        EventKind::Ignition {
            role: "master".into(),
            sha512: served.sha512().to_owned()
        }
    );
}

#[test]
fn pointer_delivery_carries_the_token() {
    let key = TokenKey::new(b"k".repeat(32));
    let (route, _) = route_with(Options {
        access: Access::Token(key.clone()),
        delivery: Delivery::Pointer {
            base_url: "http://10.0.0.1".into(),
        },
        ..Default::default()
    });
    let q = Query {
        mac: Some(W0.parse().unwrap()),
        labels: BTreeMap::from([("rack".into(), "a".into())]),
        ..Default::default()
    };
    let resp = call(
        &route,
        request(
            &format!("/ignition?{}", key.query_string(&q)),
            [10, 9, 9, 9],
        ),
    );
    assert_eq!(resp.status(), StatusCode::OK);
    let src = Config::parse(resp.body().clone()).unwrap().config_refs()[0]
        .source
        .clone();
    let path = src.strip_prefix("http://10.0.0.1").unwrap();
    assert!(path.starts_with("/ignition/worker?mac="), "{path}");
    assert_eq!(
        call(&route, request(path, [10, 9, 9, 9])).status(),
        StatusCode::OK
    );
}

#[test]
fn public_roles_are_served_to_anyone() {
    let (route, _) = route_with(Options {
        public_roles: vec!["worker".into()],
        ..Default::default()
    });
    let resp = call(&route, request("/ignition/worker", [10, 0, 0, 1]));
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        call(&route, request("/ignition/bootstrap", [10, 0, 0, 1])).status(),
        StatusCode::FORBIDDEN
    );
}

/// Collects everything logged, at every level.
#[derive(Clone, Default)]
struct LogBuf(Arc<Mutex<Vec<u8>>>);

impl Write for LogBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn logs_name_role_mac_and_hash_but_never_content() {
    let logs = LogBuf::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        let (route, _) = route_with(Options::default());
        let resp = call(
            &route,
            request("/ignition?mac=52:54:00:00:00:01", [192, 168, 111, 10]),
        );
        assert_eq!(resp.status(), StatusCode::OK);
        assert!(
            std::str::from_utf8(resp.body())
                .unwrap()
                .contains("ssh-ed25519")
        );
        call(
            &route,
            request("/ignition?mac=52:54:00:00:00:01", [192, 168, 111, 11]),
        );
    });
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        text.contains("bootstrap") && text.contains("52:54:00:00:00:01"),
        "{text}"
    );
    let sha = Store::load_dir(fixtures().join("installer-4.10-spec3.2")).unwrap();
    assert!(
        text.contains(sha.role("bootstrap").unwrap().sha512()),
        "{text}"
    );
    for secret in ["FAKE", "ssh-ed25519", "data:", "kubeconfig", "ExecStart"] {
        assert!(!text.contains(secret), "log leaks {secret}: {text}");
    }
}

// ---------------------------------------------------------------- properties

mod props {
    use super::*;
    use proptest::prelude::*;

    fn label_key() -> impl Strategy<Value = String> {
        "[a-z][a-z0-9_.-]{0,8}".prop_filter("reserved", |k| {
            !ignition_serve::RESERVED_PARAMS.contains(&k.as_str())
        })
    }

    fn query() -> impl Strategy<Value = Query> {
        (
            proptest::option::of(any::<[u8; 6]>()),
            proptest::option::of("\\PC{0,12}"),
            proptest::option::of("\\PC{0,12}"),
            proptest::option::of("[a-z0-9.-]{0,12}"),
            proptest::option::of("\\PC{0,12}"),
            proptest::collection::btree_map(label_key(), "\\PC{0,8}", 0..4),
        )
            .prop_map(|(mac, uuid, serial, hostname, role, labels)| Query {
                mac: mac.map(Mac),
                uuid,
                serial,
                hostname,
                role,
                labels,
            })
    }

    fn selector() -> impl Strategy<Value = Selector> {
        let small = || proptest::option::of(proptest::sample::select(vec!["a", "B", "b"]));
        (
            proptest::option::of(proptest::sample::select(vec![
                [2u8, 0, 0, 0, 0, 1],
                [2, 0, 0, 0, 0, 2],
            ])),
            small(),
            small(),
            small(),
            small(),
            proptest::collection::btree_map(
                proptest::sample::select(vec!["rack", "pool"]).prop_map(str::to_owned),
                proptest::sample::select(vec!["1", "2"]).prop_map(str::to_owned),
                0..3,
            ),
        )
            .prop_map(|(mac, uuid, serial, hostname, role, labels)| Selector {
                mac: mac.map(Mac),
                uuid: uuid.map(str::to_owned),
                serial: serial.map(str::to_owned),
                hostname: hostname.map(str::to_owned),
                role: role.map(str::to_owned),
                labels,
            })
    }

    /// The least query a selector matches.
    fn witness(a: &Selector, b: &Selector) -> Query {
        let mut labels = a.labels.clone();
        labels.extend(b.labels.clone());
        Query {
            mac: a.mac.or(b.mac),
            uuid: a.uuid.clone().or(b.uuid.clone()),
            serial: a.serial.clone().or(b.serial.clone()),
            hostname: a.hostname.clone().or(b.hostname.clone()),
            role: a.role.clone().or(b.role.clone()),
            labels,
        }
    }

    proptest! {
        /// `overlaps` (what makes a tie at load time) is exactly "some machine matches both".
        #[test]
        fn overlap_means_a_common_match(a in selector(), b in selector(), q in query()) {
            if a.matches(&q) && b.matches(&q) {
                prop_assert!(a.overlaps(&b));
            }
            if a.overlaps(&b) {
                let w = witness(&a, &b);
                prop_assert!(a.matches(&w) && b.matches(&w), "{a:?} {b:?} {w:?}");
            }
            prop_assert_eq!(a.overlaps(&b), b.overlaps(&a));
        }

        #[test]
        fn query_string_round_trips(q in query()) {
            let (back, token) = Query::from_query_string(&q.to_query_string()).unwrap();
            prop_assert_eq!(back, q.clone());
            prop_assert_eq!(token, None);
            let key = TokenKey::new(b"secret".to_vec());
            let (back, token) = Query::from_query_string(&key.query_string(&q)).unwrap();
            prop_assert!(key.verify(&back, &token.unwrap()));
        }

        #[test]
        fn any_query_string_gives_a_typed_answer(s in "\\PC{0,40}") {
            let _ = Query::from_query_string(&s);
        }

        #[test]
        fn any_bytes_give_a_typed_answer(b in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = Config::parse(b);
        }

        #[test]
        fn rendered_configs_validate(
            spec in proptest::sample::select(Spec::ALL.to_vec()),
            host in "[a-z][a-z0-9-]{0,20}[a-z0-9]",
            contents in proptest::collection::vec(any::<u8>(), 0..64),
            name in "[a-z][a-z0-9_-]{0,10}",
            mode in 0u32..=0o7777,
        ) {
            let mode = if spec.is_v2() || spec >= Spec::V3_4 { mode } else { mode & 0o777 };
            let role = Config::parse(format!(r#"{{"ignition":{{"version":"{spec}"}}}}"#)).unwrap();
            let custom = Customization {
                hostname: Some(host),
                files: vec![File { path: format!("/etc/{name}"), contents, mode: Some(mode) }],
                units: vec![Unit { name: format!("{name}.service"), enabled: Some(true), ..Default::default() }],
                network: vec![Keyfile { name: name.clone(), contents: "[connection]\n".into() }],
                ssh_authorized_keys: vec![format!("ssh-ed25519 {name}")],
            };
            for mode in [Mode::Merged, Mode::Pointer { url: "http://h/ignition/r".into() }] {
                let r = render_for_host(&role, &custom, &mode).unwrap();
                assert_schema_valid(&r.bytes);
                let back = Config::parse(r.bytes.clone()).unwrap();
                prop_assert_eq!(back.spec(), spec);
                // The file's contents survive the data URL.
                let f = back.value()["storage"]["files"].as_array().unwrap().iter()
                    .find(|f| f["path"] == format!("/etc/{name}")).unwrap().clone();
                prop_assert_eq!(f["mode"].as_u64(), Some(u64::from(custom.files[0].mode.unwrap())));
                prop_assert_eq!(decode_data_url(f["contents"]["source"].as_str().unwrap()), custom.files[0].contents.clone());
            }
        }
    }

    fn decode_data_url(url: &str) -> Vec<u8> {
        use base64::Engine as _;
        let rest = url.strip_prefix("data:").unwrap();
        let (meta, data) = rest.split_once(',').unwrap();
        if meta.ends_with(";base64") {
            base64::engine::general_purpose::STANDARD
                .decode(data)
                .unwrap()
        } else {
            percent_encoding::percent_decode_str(data).collect()
        }
    }
}

// ---------------------------------------------------------------- Ignition itself as the peer

const IGNITION_VALIDATE: &str = "/usr/bin/ignition-validate";
const IGNITION: &str = "/usr/lib/dracut/modules.d/30ignition/ignition";

/// Whether a peer binary is installed; in CI a missing one fails the test.
fn have(path: &str) -> bool {
    if Path::new(path).exists() {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{path} missing: run scripts/install-deps.sh (Debian package `ignition`)");
    }
    eprintln!("skipping: {path} missing (Debian package `ignition`, scripts/install-deps.sh)");
    false
}

/// Ignition 2.14 (Debian 12) validates spec 3.0 to 3.3; 2.2 predates it and 3.4+ postdate it.
fn ignition_214_validates(spec: Spec) -> bool {
    matches!(spec, Spec::V3_0 | Spec::V3_1 | Spec::V3_2 | Spec::V3_3)
}

#[test]
fn ignition_peer_validate_accepts_every_emitted_config() {
    if !have(IGNITION_VALIDATE) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut checked = 0;
    let mut roles: Vec<(String, Config)> = all_fixture_configs()
        .into_iter()
        .map(|p| {
            (
                p.display().to_string(),
                Config::parse(std::fs::read(&p).unwrap()).unwrap(),
            )
        })
        .collect();
    for spec in Spec::ALL {
        let bare = Config::parse(format!(r#"{{"ignition":{{"version":"{spec}"}}}}"#)).unwrap();
        roles.push((format!("bare {spec}"), bare));
    }
    for (name, role) in &roles {
        if !ignition_214_validates(role.spec()) {
            continue;
        }
        for (i, mode) in [
            Mode::Merged,
            Mode::Pointer {
                url: "http://192.168.111.1:8080/ignition/master?mac=52:54:00:00:00:20".into(),
            },
        ]
        .iter()
        .enumerate()
        {
            let r = match render_for_host(role, &full_customization(), mode) {
                Ok(r) => r,
                // A self-replacing role config cannot be merged (see the rendering tests).
                Err(Error::Customization { field, .. }) if field == "mode" => continue,
                Err(e) => panic!("{name}: {e}"),
            };
            let path = dir.path().join(format!("{checked}-{i}.ign"));
            std::fs::write(&path, &r.bytes).unwrap();
            let out = std::process::Command::new(IGNITION_VALIDATE)
                .arg(&path)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{name} {mode:?}: ignition-validate says {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        checked += 1;
    }
    assert!(checked >= 14, "only {checked} configs checked");
}

#[test]
fn ignition_peer_validate_rejects_what_we_reject() {
    if !have(IGNITION_VALIDATE) {
        return;
    }
    let sha256 = format!("sha256-{}", "a".repeat(64));
    let cases = [
        r#"{"ignition":{"version":"3.2.0","config":{"merge":[{"verification":{}}]}}}"#.to_owned(),
        r#"{"ignition":{"version":"3.0.0"},"storage":{"files":[{"path":"a"}]}}"#.to_owned(),
        r#"{"ignition":{"version":"3.0.0"},"storage":{"files":[{"path":"/a"}],"links":[{"path":"/a","target":"/b"}]}}"#.to_owned(),
        r#"{"ignition":{"version":"3.1.0"},"systemd":{"units":[{"name":"a.service"},{"name":"a.service"}]}}"#.to_owned(),
        r#"{"ignition":{"version":"3.1.0"},"systemd":{"units":[{"enabled":true}]}}"#.to_owned(),
        r#"{"ignition":{"version":"3.1.0"},"storage":{"files":[{"path":"/a","mode":-1}]}}"#.to_owned(),
        r#"{"ignition":{"version":"3.1.0"},"storage":{"files":[{"path":"/a","overwrite":true}]}}"#.to_owned(),
        r#"{"ignition":{"version":"3.1.0"},"passwd":{"users":[{"name":"core"},{"name":"core"}]}}"#.to_owned(),
        r#"{"ignition":{"version":"3.2.0","config":{"merge":[{"source":"http://x","verification":{"hash":"sha512-abc"}}]}}}"#.to_owned(),
        format!(r#"{{"ignition":{{"version":"3.0.0","config":{{"merge":[{{"source":"http://x","verification":{{"hash":"{sha256}"}}}}]}}}}}}"#),
        r#"{"ignition":{"version":"3.9.0"}}"#.to_owned(),
        r#"{"ignition":{"version":"3.2.0"}"#.to_owned(),
    ];
    let dir = tempfile::tempdir().unwrap();
    for (i, case) in cases.iter().enumerate() {
        assert!(Config::parse(case.clone()).is_err(), "we accept {case}");
        let path = dir.path().join(format!("{i}.ign"));
        std::fs::write(&path, case).unwrap();
        let out = std::process::Command::new(IGNITION_VALIDATE)
            .arg(&path)
            .output()
            .unwrap();
        assert!(!out.status.success(), "ignition-validate accepts {case}");
    }
}

/// A minimal HTTP/1.1 server on 127.0.0.1 for the route, so real Ignition can fetch from it.
/// (The real server is pxe-stack's; this is only enough for Ignition's Go client.)
struct TestServer {
    addr: SocketAddr,
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestServer {
    fn start(
        listener: std::net::TcpListener,
        route: Route,
        after: impl Fn(&Route, StatusCode) + Send + 'static,
    ) -> TestServer {
        use std::io::{BufRead, BufReader};
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if flag.load(std::sync::atomic::Ordering::SeqCst) {
                    break;
                }
                let Ok(mut conn) = conn else { continue };
                let peer = conn.peer_addr().unwrap();
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                let target = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                        break;
                    }
                }
                let req = RouteRequest {
                    request: Request::get(target).body(Bytes::new()).unwrap(),
                    peer,
                    mac: None,
                };
                let resp = route.respond(&req);
                let mut head = format!(
                    "HTTP/1.1 {}\r\nContent-Length: {}\r\nConnection: close\r\n",
                    resp.status(),
                    resp.body().len()
                );
                for (k, v) in resp.headers() {
                    head.push_str(&format!("{k}: {}\r\n", v.to_str().unwrap()));
                }
                head.push_str("\r\n");
                let _ = conn.write_all(head.as_bytes());
                let _ = conn.write_all(resp.body());
                after(&route, resp.status());
            }
        });
        TestServer {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = std::net::TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Run Ignition's fetch stage on `config` (platform `file`), everything under `dir`.
fn ignition_fetch(dir: &Path, config: &str) -> (bool, String, Option<Value>) {
    let cfg = dir.join("boot.ign");
    std::fs::write(&cfg, config).unwrap();
    let cache = dir.join("cache.json");
    // `timeout` only guards against a hung peer; it is far beyond any normal run.
    let out = std::process::Command::new("timeout")
        .args(["--kill-after=10", "300", IGNITION])
        .env("IGNITION_CONFIG_FILE", &cfg)
        .args([
            "-platform",
            "file",
            "-stage",
            "fetch",
            "-log-to-stdout",
            "-fetch-timeout",
            "30s",
        ])
        .arg("-root")
        .arg(dir.join("root"))
        .arg("-config-cache")
        .arg(&cache)
        .arg("-state-file")
        .arg(dir.join("state"))
        .arg("-neednet")
        .arg(dir.join("neednet"))
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let cached = std::fs::read(&cache)
        .ok()
        .map(|b| serde_json::from_slice(&b).unwrap());
    (out.status.success(), log, cached)
}

fn loopback_store() -> Store {
    let mut store = Store::new();
    store
        .insert_role(
            "master",
            Config::parse(
                r#"{"ignition":{"version":"3.2.0"},"storage":{"files":[{"path":"/etc/role","contents":{"source":"data:,master"}}]}}"#,
            )
            .unwrap(),
        )
        .unwrap();
    store
        .add_group(Group {
            id: "master-0".into(),
            selector: Selector {
                mac: Some(M0.parse().unwrap()),
                ..Default::default()
            },
            profile: Profile {
                role: "master".into(),
                customization: Customization {
                    hostname: Some("master-0".into()),
                    ..Default::default()
                },
                ..Default::default()
            },
        })
        .unwrap();
    store
}

#[test]
fn ignition_peer_fetches_pointer_and_pinned_role_after_a_503() {
    if !have(IGNITION) {
        return;
    }
    let events = Recorder::new();
    let mut store = loopback_store();
    store.set_ready(false);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let route = Route::new(
        store,
        Leases::with(&[(M0, [127, 0, 0, 1])]),
        Arc::new(events.clone()),
        Options {
            delivery: Delivery::Pointer {
                base_url: base.clone(),
            },
            ..Default::default()
        },
    );
    let statuses = Arc::new(Mutex::new(Vec::new()));
    let seen = statuses.clone();
    let server = TestServer::start(listener, route, move |route, status| {
        seen.lock().unwrap().push(status.as_u16());
        // The first answer is a 503; Ignition must retry, and then the store is ready.
        if status == StatusCode::SERVICE_UNAVAILABLE {
            route.update(|s| s.set_ready(true));
        }
    });
    let dir = tempfile::tempdir().unwrap();
    // What the kernel argument ignition.config.url does: replace with our URL.
    let boot = format!(
        r#"{{"ignition":{{"version":"3.2.0","config":{{"replace":{{"source":"{base}/ignition?mac=52-54-00-00-00-10"}}}}}}}}"#
    );
    let (ok, log, cache) = ignition_fetch(dir.path(), &boot);
    drop(server);
    assert!(ok, "ignition fetch failed:\n{log}");
    assert_eq!(*statuses.lock().unwrap(), [503, 200, 200], "{log}");
    let cache = cache.expect("ignition wrote its config cache");
    let files: Vec<&str> = cache["storage"]["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert!(
        files.contains(&"/etc/hostname") && files.contains(&"/etc/role"),
        "{cache}"
    );
    let roles: Vec<_> = events
        .events()
        .into_iter()
        .map(|e| match e.kind {
            EventKind::Ignition { role, .. } => role,
            other => panic!("unexpected event {other:?}"),
        })
        .collect();
    assert_eq!(roles, ["master", "master"]);
}

#[test]
fn ignition_peer_gives_up_on_403() {
    if !have(IGNITION) {
        return;
    }
    // The lease for master-0 is held by another address: every request is refused.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let route = Route::new(
        loopback_store(),
        Leases::with(&[(M0, [127, 0, 0, 2])]),
        Arc::new(Recorder::new()),
        Options::default(),
    );
    let server = TestServer::start(listener, route, |_, _| {});
    let dir = tempfile::tempdir().unwrap();
    let boot = format!(
        r#"{{"ignition":{{"version":"3.2.0","config":{{"replace":{{"source":"{base}/ignition?mac=52-54-00-00-00-10"}}}}}}}}"#
    );
    let (ok, log, _) = ignition_fetch(dir.path(), &boot);
    drop(server);
    assert!(!ok, "ignition accepted a refused config:\n{log}");
    assert!(log.contains("GET result: Forbidden"), "{log}");
}
