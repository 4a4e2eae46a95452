//! Integration tests: fixtures, persistence across restarts, the HTTP handler's answers, and
//! property tests that throw garbage and mutated fixtures at the parser.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use http::{Request, header};
use proptest::prelude::*;
use pxe_stack::route::{Handler, RouteRequest};
use pxe_stack::{EventKind, HostLookup, Mac, Recorder};
use rhcos_introspect::{
    ConfigAnswer, ConfigSource, DiskHints, Error, FileStore, HostFacts, Introspector, LeaseCheck,
    MemoryStore, Rules, Settings, StaticConfigs, Store, Warning, choose_disk, identify, parse,
};
use serde_json::{Value, json};

const FIXTURE_2019: &[u8] = include_bytes!("../fixtures/ghwc-2019-74380277-snapshot-61797.json");
const FIXTURE_DELL: &[u8] = include_bytes!("../fixtures/dell-r610-block.json");
const FIXTURE_MODERN: &[u8] = include_bytes!("../fixtures/ghw-modern-qemu-host.json");

const MASTER_IGN: &str = r#"{"ignition":{"version":"3.2.0","config":{"merge":[{"source":"https://api-int:22623/config/master"}]}}}"#;
const WORKER_IGN: &str = r#"{"ignition":{"version":"3.2.0","config":{"merge":[{"source":"https://api-int:22623/config/worker"}]}}}"#;

fn configs() -> StaticConfigs {
    StaticConfigs::new()
        .with("master", MASTER_IGN)
        .with("worker", WORKER_IGN)
}

fn mac(n: u8) -> Mac {
    Mac([0x52, 0x54, 0x00, 0xaa, 0x00, n])
}

fn addr(n: u8) -> IpAddr {
    IpAddr::from([192, 0, 2, n])
}

/// The 2019 fixture with its (stripped) NIC MACs filled in as `mac(n)`, `mac(n + 100)`, ...
fn host_2019(n: u8) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(FIXTURE_2019).unwrap();
    for (i, nic) in v["network"]["nics"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .enumerate()
    {
        let m = Mac([0x52, 0x54, 0x00, 0xaa, u8::try_from(i).unwrap(), n]);
        nic["mac_address"] = json!(m.to_string());
    }
    serde_json::to_vec(&v).unwrap()
}

/// A small host with one NIC and one disk.
fn small_host(n: u8, disk_gib: u64) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "network": {"nics": [{"name": "eth0", "mac_address": mac(n).to_string(), "is_virtual": false}]},
        "block": {"disks": [{"name": "vda", "size_bytes": disk_gib << 30, "drive_type": "hdd",
                             "storage_controller": "virtio", "bus_path": format!("pci-0000:00:{n:02x}.0")}]},
        "cpu": {"total_cores": 4},
        "memory": {"total_physical_bytes": 16u64 << 30}
    }))
    .unwrap()
}

fn service(settings: Settings) -> Introspector {
    Introspector::builder(settings)
        .build(configs(), MemoryStore::new())
        .unwrap()
}

fn no_lease() -> Settings {
    Settings {
        rules: Rules::masters_then_workers(3),
        lease_check: LeaseCheck::Refuse,
        ..Settings::default()
    }
}

// ---- fixtures ----------------------------------------------------------------------------

#[test]
fn fixture_2019_parses_and_has_no_macs() {
    let p = parse(FIXTURE_2019).unwrap();
    let hw = &p.hardware;
    let keys: Vec<&str> = p.raw.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        ["block", "cpu", "gpu", "memory", "network", "topology"]
    );
    assert_eq!(hw.block.as_ref().unwrap().disks.len(), 8);
    assert_eq!(hw.cpu.as_ref().unwrap().total_cores, Some(6));
    assert_eq!(
        hw.memory.as_ref().unwrap().total_physical_bytes,
        Some(33_564_585_984)
    );
    assert_eq!(hw.network.as_ref().unwrap().nics.len(), 4);
    let gpu = hw.gpu.as_ref().unwrap();
    assert_eq!(
        gpu.cards[0]
            .pci
            .as_ref()
            .unwrap()
            .vendor
            .as_ref()
            .unwrap()
            .id
            .as_deref(),
        Some("1002")
    );
    // ghw snapshots strip MACs: the real fixture has no identity.
    assert!(matches!(
        identify(hw),
        Err(Error::NoUsableMac { skipped: 4 })
    ));
}

#[test]
fn fixture_2019_as_concatenated_subcommand_output() {
    // What the 2019 client sends: `ghwc block -f json; ghwc cpu -f json; ...` one after another.
    let full: serde_json::Map<String, Value> = serde_json::from_slice(&host_2019(1)).unwrap();
    let mut body = Vec::new();
    for (k, v) in &full {
        let key = if k == "network" { "net" } else { k.as_str() };
        body.extend(serde_json::to_vec_pretty(&json!({ key: v })).unwrap());
        body.push(b'\n');
    }
    let svc = service(no_lease());
    let out = svc
        .introspect(&body, addr(1), None, SystemTime::now())
        .unwrap();
    assert_eq!(out.record.role, "master");
    // sda (256 GB ssd) is the smallest real disk; dm-* are skipped; no bus path is known.
    assert_eq!(out.record.install_dev, "/dev/sda");
    assert_eq!(out.record.macs.len(), 4);
    assert_eq!(out.record.warnings, [Warning::NoLease { addr: addr(1) }]);
    assert_eq!(&out.config.body[..], MASTER_IGN.as_bytes());
}

#[test]
fn fixture_dell_block_disk_choice() {
    let p = parse(FIXTURE_DELL).unwrap();
    let disks = &p.hardware.block.as_ref().unwrap().disks;
    let check = |hints: DiskHints, expected: &str| {
        let got = match choose_disk(disks, &hints, 8 << 30) {
            Ok(c) => c.device,
            Err(r) => r
                .iter()
                .map(|r| format!("{}: {}", r.disk, r.reason))
                .collect::<Vec<_>>()
                .join("; "),
        };
        assert_eq!(got, expected, "{hints:?}");
    };
    let sda = "/dev/disk/by-path/pci-0000:03:00.0-scsi-0:2:0:0";
    check(DiskHints::default(), sda);
    check(
        DiskHints {
            wwn: Some("0xcafe".into()),
            ..DiskHints::default()
        },
        sda,
    );
    check(
        DiskHints {
            model: Some("PERC 6 i".into()),
            vendor: Some("dell".into()),
            ..DiskHints::default()
        },
        sda,
    );
    check(
        DiskHints {
            rotational: Some(true),
            ..DiskHints::default()
        },
        sda,
    );
    check(
        DiskHints {
            rotational: Some(false),
            ..DiskHints::default()
        },
        "dm-0: virtual or removable-media device; dm-1: virtual or removable-media device; \
         dm-2: virtual or removable-media device; dm-3: virtual or removable-media device; \
         dm-4: virtual or removable-media device; sda: rotational true != false; \
         sr0: virtual or removable-media device; zram0: virtual or removable-media device",
    );
    insta::assert_json_snapshot!("dell_r610_sda", disks[5]);
}

#[test]
fn fixture_modern_identity_and_disk() {
    let p = parse(FIXTURE_MODERN).unwrap();
    let id = identify(&p.hardware).unwrap();
    let macs: Vec<String> = id.macs.iter().map(ToString::to_string).collect();
    assert_eq!(macs, ["52:54:00:6b:3c:01", "52:54:00:6b:3c:02"]);
    assert_eq!(
        id.uuid.as_deref(),
        Some("6f1a2b3c-4d5e-4f60-8172-839405a6b7c8")
    );
    assert_eq!(id.serial.as_deref(), Some("rhcos-lab-0001"));
    assert_eq!(id.skipped, 2);
    let hw = &p.hardware;
    assert_eq!(hw.pci.as_ref().unwrap().devices.len(), 1);
    assert_eq!(hw.chassis.as_ref().unwrap().serial_number, None);
    assert_eq!(hw.topology.as_ref().unwrap().nodes[0].distances, [10]);

    let svc = service(no_lease());
    let lease = "52:54:00:6b:3c:02".parse().unwrap();
    let out = svc
        .introspect(FIXTURE_MODERN, addr(7), Some(lease), SystemTime::UNIX_EPOCH)
        .unwrap();
    let r = &out.record;
    assert_eq!(r.mac, lease, "the leased MAC is the primary one");
    assert_eq!(r.install_dev, "/dev/disk/by-path/pci-0000:00:04.0");
    assert!(r.warnings.is_empty());
    let mut listing = serde_json::to_value(svc.list()).unwrap();
    listing[0]["last_seen"] = json!("[redacted]");
    insta::assert_json_snapshot!("modern_listing", listing);
}

#[test]
fn model_round_trips_through_json() {
    for fixture in [FIXTURE_2019, FIXTURE_DELL, FIXTURE_MODERN] {
        let a = parse(fixture).unwrap().hardware;
        let b = parse(&serde_json::to_vec(&a).unwrap()).unwrap().hardware;
        assert_eq!(a, b);
    }
}

#[test]
fn settings_deserialize_from_a_plan() {
    let s: Settings = serde_json::from_value(json!({
        "lease_check": "require",
        "rules": {
            "explicit": {"52-54-00-aa-00-01": "infra"},
            "rules": [{"role": "master", "limit": 3, "when": {"min_cores": 4},
                       "disk": {"rotational": false}}],
            "default_role": "worker",
            "disk": {"min_size_bytes": 120000000000u64, "model": "PERC H730"}
        }
    }))
    .unwrap();
    assert_eq!(s.lease_check, LeaseCheck::Require);
    assert_eq!(s.rules.explicit[&mac(1)], "infra");
    assert_eq!(s.rules.rules[0].limit, Some(3));
    assert_eq!(
        s.rules.min_disk_bytes,
        rhcos_introspect::DEFAULT_MIN_DISK_BYTES
    );
    assert_eq!(s.body_limit, rhcos_introspect::DEFAULT_BODY_LIMIT);
    let typo = serde_json::from_value::<Settings>(json!({"rules": {"rulez": []}}));
    assert!(
        typo.unwrap_err()
            .to_string()
            .contains("unknown field `rulez`")
    );
}

// ---- idempotency, persistence, restart ---------------------------------------------------

#[test]
fn file_store_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let settings = Settings {
        rules: Rules::masters_then_workers(2),
        ..Settings::default()
    };
    let roles = |svc: &Introspector, hosts: &[u8]| -> Vec<String> {
        hosts
            .iter()
            .map(|&n| {
                let out = svc
                    .introspect(
                        &small_host(n, 120),
                        addr(n),
                        Some(mac(n)),
                        SystemTime::now(),
                    )
                    .unwrap();
                format!("{} {}", out.record.hostname, out.created)
            })
            .collect()
    };
    {
        let svc = Introspector::builder(settings.clone())
            .build(configs(), FileStore::new(dir.path()).unwrap())
            .unwrap();
        assert_eq!(
            roles(&svc, &[1, 2, 3, 1]),
            [
                "master-0 true",
                "master-1 true",
                "worker-0 true",
                "master-0 false"
            ]
        );
    }
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "52-54-00-aa-00-01.json",
            "52-54-00-aa-00-02.json",
            "52-54-00-aa-00-03.json"
        ],
        "one file per host, no temporary files left"
    );

    // A restart: same roles for known hosts, counts continue.
    let svc = Introspector::builder(settings.clone())
        .build(configs(), FileStore::new(dir.path()).unwrap())
        .unwrap();
    assert_eq!(
        roles(&svc, &[3, 2, 4]),
        ["worker-0 false", "master-1 false", "worker-1 true"]
    );
    let r = svc.record(mac(1)).unwrap();
    assert_eq!(r.posts, 2);
    assert_eq!(
        svc.install_dev(mac(4)).as_deref(),
        Some("/dev/disk/by-path/pci-0000:00:04.0")
    );

    // Forgetting a host (deleting its file) frees its name; names are never doubled.
    drop(svc);
    std::fs::remove_file(dir.path().join("52-54-00-aa-00-03.json")).unwrap();
    let svc = Introspector::builder(settings.clone())
        .build(configs(), FileStore::new(dir.path()).unwrap())
        .unwrap();
    assert_eq!(roles(&svc, &[5, 3]), ["worker-0 true", "worker-2 true"]);

    // A damaged record is reported, not skipped.
    std::fs::write(dir.path().join("52-54-00-aa-00-09.json"), b"{\"mac\":").unwrap();
    let err = Introspector::builder(settings)
        .build(configs(), FileStore::new(dir.path()).unwrap())
        .unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err:?}");
}

#[test]
fn same_host_by_uuid_after_nic_swap() {
    let svc = service(Settings {
        lease_check: LeaseCheck::Off,
        ..no_lease()
    });
    let first = svc
        .introspect(FIXTURE_MODERN, addr(7), None, SystemTime::now())
        .unwrap();
    let swapped = String::from_utf8(FIXTURE_MODERN.to_vec())
        .unwrap()
        .replace("52:54:00:6b:3c:01", "52:54:00:6b:3c:11")
        .replace("52:54:00:6b:3c:02", "52:54:00:6b:3c:12");
    let again = svc
        .introspect(swapped.as_bytes(), addr(7), None, SystemTime::now())
        .unwrap();
    assert!(!again.created);
    assert_eq!(again.record.mac, first.record.mac);
    assert!(matches!(
        again.record.warnings[..],
        [Warning::MacsChanged { .. }]
    ));
    assert_eq!(svc.list().len(), 1);
}

#[test]
fn concurrent_posts_respect_the_master_count() {
    let svc = service(no_lease());
    let threads: Vec<_> = (1..=12u8)
        .map(|n| {
            let svc = svc.clone();
            std::thread::spawn(move || {
                svc.introspect(
                    &small_host(n, 100),
                    addr(n),
                    Some(mac(n)),
                    SystemTime::now(),
                )
                .unwrap()
                .record
                .role
            })
        })
        .collect();
    let roles: Vec<String> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(roles.iter().filter(|r| *r == "master").count(), 3);
    assert_eq!(roles.iter().filter(|r| *r == "worker").count(), 9);
}

// ---- a store several servers share -------------------------------------------------------

/// What a database gives several servers: one set of records, decisions made one at a time
/// under one lock; `up` false is the database gone.
#[derive(Clone, Default)]
struct Shared {
    records: Arc<std::sync::Mutex<std::collections::BTreeMap<Mac, rhcos_introspect::Record>>>,
    down: Arc<std::sync::atomic::AtomicBool>,
}

impl Shared {
    fn check(&self) -> Result<(), Error> {
        if self.down.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(Error::Unavailable {
                message: "connection refused".into(),
            });
        }
        Ok(())
    }
}

impl Store for Shared {
    fn load(&self) -> Result<Vec<rhcos_introspect::Record>, Error> {
        self.check()?;
        Ok(self.records.lock().unwrap().values().cloned().collect())
    }

    fn save(&self, record: &rhcos_introspect::Record) -> Result<(), Error> {
        self.check()?;
        self.records
            .lock()
            .unwrap()
            .insert(record.mac, record.clone());
        Ok(())
    }

    fn shared(&self) -> bool {
        true
    }

    fn decide(
        &self,
        decide: &mut dyn FnMut(
            &[rhcos_introspect::Record],
        ) -> Result<rhcos_introspect::Record, Error>,
    ) -> Result<rhcos_introspect::Record, Error> {
        self.check()?;
        let mut records = self.records.lock().unwrap();
        let all: Vec<_> = records.values().cloned().collect();
        let record = decide(&all)?;
        records.insert(record.mac, record.clone());
        Ok(record)
    }
}

#[test]
fn two_services_on_one_shared_store_decide_once_and_refuse_without_it() {
    let store = Shared::default();
    let settings = no_lease();
    let a = Introspector::builder(settings.clone())
        .build(configs(), store.clone())
        .unwrap();
    let b = Introspector::builder(settings)
        .build(configs(), store.clone())
        .unwrap();
    // Posts spread over both services at once: still three masters, no hostname twice.
    let threads: Vec<_> = (1..=12u8)
        .map(|n| {
            let svc = if n % 2 == 0 { a.clone() } else { b.clone() };
            std::thread::spawn(move || {
                svc.introspect(
                    &small_host(n, 100),
                    addr(n),
                    Some(mac(n)),
                    SystemTime::now(),
                )
                .unwrap()
                .record
            })
        })
        .collect();
    let records: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(records.iter().filter(|r| r.role == "master").count(), 3);
    let names: std::collections::BTreeSet<_> = records.iter().map(|r| &r.hostname).collect();
    assert_eq!(names.len(), 12);
    // What one decided, the other answers.
    for n in 1..=12u8 {
        assert_eq!(a.record(mac(n)), b.record(mac(n)));
    }
    assert_eq!(a.list(), b.list());
    // The store goes away: a new host is refused (503), a known one still answered.
    store.down.store(true, std::sync::atomic::Ordering::SeqCst);
    let err = a
        .introspect(
            &small_host(13, 100),
            addr(13),
            Some(mac(13)),
            SystemTime::now(),
        )
        .unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }), "{err}");
    assert_eq!(err.status(), 503);
    assert!(err.to_string().contains("nothing was decided"), "{err}");
    assert_eq!(b.install_dev(mac(1)), Some(records[0].install_dev.clone()));
    store.down.store(false, std::sync::atomic::Ordering::SeqCst);
    assert!(b.record(mac(13)).is_none());
}

// ---- the HTTP handler --------------------------------------------------------------------

struct Leases(HashMap<IpAddr, Mac>);

impl HostLookup for Leases {
    fn mac_for(&self, addr: IpAddr) -> Option<Mac> {
        self.0.get(&addr).copied()
    }
    fn addr_for(&self, mac: Mac) -> Option<IpAddr> {
        self.0.iter().find(|(_, m)| **m == mac).map(|(a, _)| *a)
    }
}

struct NotReady;

impl ConfigSource for NotReady {
    fn config_for(&self, host: &HostFacts) -> Result<ConfigAnswer, Error> {
        Err(Error::NotReady {
            role: host.role.clone(),
        })
    }
}

fn req(method: &str, uri: &str, body: &[u8], peer: u8, lease: Option<Mac>) -> RouteRequest {
    RouteRequest {
        request: Request::builder()
            .method(method)
            .uri(uri)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Bytes::copy_from_slice(body))
            .unwrap(),
        peer: SocketAddr::new(addr(peer), 40000),
        mac: lease,
    }
}

/// Sends `req` to `h` and checks the status and that the body contains `needle`.
fn check(h: &dyn Handler, req: RouteRequest, status: u16, needle: &str) -> http::Response<Bytes> {
    let what = format!("{} {}", req.request.method(), req.request.uri());
    let resp = futures_lite::future::block_on(h.handle(req));
    let body = String::from_utf8_lossy(resp.body()).into_owned();
    assert_eq!(resp.status().as_u16(), status, "{what}: {body}");
    assert!(body.contains(needle), "{what}: {body:?} lacks {needle:?}");
    resp
}

#[test]
fn handler_status_codes_and_nothing_half_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let events = Recorder::new();
    let leases = Leases(HashMap::from([(addr(50), mac(99))]));
    let svc = Introspector::builder(Settings {
        rules: Rules {
            disk: DiskHints {
                min_size_bytes: Some(100 << 30),
                ..DiskHints::default()
            },
            ..Rules::masters_then_workers(1)
        },
        body_limit: 64 * 1024,
        ..Settings::default()
    })
    .lookup(Arc::new(leases))
    .events(Arc::new(events.clone()))
    .build(configs(), FileStore::new(dir.path()).unwrap())
    .unwrap();
    let h: &dyn Handler = &svc;

    let big = vec![b' '; 64 * 1024 + 1];
    check(
        h,
        req("POST", "/introspection", &big, 1, None),
        413,
        "over the limit",
    );
    check(
        h,
        req("POST", "/introspection", b"", 1, None),
        400,
        "empty body",
    );
    check(
        h,
        req(
            "POST",
            "/introspection",
            b"{\"block\":{\"disks\":[}",
            1,
            None,
        ),
        400,
        "malformed JSON at block.disks",
    );
    check(
        h,
        req(
            "POST",
            "/introspection",
            br#"{"block":{"disks":[{"size_bytes":{"a":1}}]}}"#,
            1,
            None,
        ),
        400,
        "invalid field block.disks[0].size_bytes",
    );
    check(
        h,
        req("POST", "/introspection", FIXTURE_2019, 1, None),
        422,
        "no usable NIC MAC",
    );
    check(
        h,
        req("POST", "/introspection", &small_host(1, 50), 1, None),
        409,
        "vda: too small",
    );
    // The sender's lease belongs to another MAC: named by the server, or found through the lookup.
    check(
        h,
        req(
            "POST",
            "/introspection",
            &small_host(1, 120),
            1,
            Some(mac(2)),
        ),
        403,
        "lease mismatch",
    );
    check(
        h,
        req("POST", "/introspection", &small_host(1, 120), 50, None),
        403,
        "leased to 52:54:00:aa:00:63",
    );
    assert!(svc.list().is_empty());
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing half-recorded"
    );
    assert!(events.events().is_empty());

    let resp = check(
        h,
        req(
            "POST",
            "/introspection",
            &small_host(1, 120),
            1,
            Some(mac(1)),
        ),
        200,
        "config/master",
    );
    assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/json");
    assert_eq!(&resp.body()[..], MASTER_IGN.as_bytes());
    check(
        h,
        req(
            "POST",
            "/introspection",
            &small_host(2, 120),
            2,
            Some(mac(2)),
        ),
        200,
        "config/worker",
    );
    check(
        h,
        req(
            "POST",
            "/introspection",
            &small_host(1, 120),
            1,
            Some(mac(1)),
        ),
        200,
        "config/master",
    );
    let kinds: Vec<EventKind> = events.events().into_iter().map(|e| e.kind).collect();
    assert_eq!(kinds.len(), 3);
    assert_eq!(
        kinds[1],
        EventKind::Introspected {
            role: "worker".into(),
            install_dev: Some("/dev/disk/by-path/pci-0000:00:02.0".into())
        }
    );

    let list = check(
        h,
        req("GET", "/inventory", b"", 9, None),
        200,
        "\"hostname\": \"worker-0\"",
    );
    let list: Value = serde_json::from_slice(list.body()).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert!(
        list[0].get("hardware").is_none(),
        "the listing is a summary"
    );
    let one = check(
        h,
        req("GET", "/inventory/52-54-00-aa-00-02/", b"", 9, None),
        200,
        "\"role\": \"worker\"",
    );
    let one: Value = serde_json::from_slice(one.body()).unwrap();
    assert_eq!(one["hardware"]["cpu"]["total_cores"], 4);
    check(
        h,
        req("GET", "/inventory/zz", b"", 9, None),
        400,
        "invalid MAC address",
    );
    check(
        h,
        req("GET", "/inventory/52:54:00:aa:00:63", b"", 9, None),
        404,
        "no host",
    );
    check(h, req("GET", "/elsewhere", b"", 9, None), 404, "not found");
    let resp = check(h, req("PUT", "/introspection", b"{}", 9, None), 405, "");
    assert_eq!(resp.headers()[header::ALLOW], "GET, POST");
}

#[test]
fn handler_config_failures() {
    // Not ready: 503 with Retry-After, and nothing recorded so the retry decides afresh.
    let svc = Introspector::builder(no_lease())
        .build(NotReady, MemoryStore::new())
        .unwrap();
    let resp = check(
        &svc,
        req("POST", "/i", &small_host(1, 120), 1, None),
        503,
        "not ready",
    );
    assert!(resp.headers().contains_key(header::RETRY_AFTER));
    assert!(svc.list().is_empty());

    // No config for the role: our fault, 500.
    let svc = Introspector::builder(no_lease())
        .build(
            StaticConfigs::new().with("worker", "{}"),
            MemoryStore::new(),
        )
        .unwrap();
    check(
        &svc,
        req("POST", "/i", &small_host(1, 120), 1, None),
        500,
        "no config for role master",
    );

    // No rule and no default role: 409.
    let svc = Introspector::builder(Settings {
        rules: Rules {
            default_role: None,
            ..Rules::default()
        },
        lease_check: LeaseCheck::Require,
        ..Settings::default()
    })
    .build(configs(), MemoryStore::new())
    .unwrap();
    check(
        &svc,
        req("POST", "/i", &small_host(1, 120), 1, None),
        403,
        "no DHCP lease",
    );
    check(
        &svc,
        req("POST", "/i", &small_host(1, 120), 1, Some(mac(1))),
        409,
        "no rule assigns a role",
    );
}

#[test]
fn store_trait_is_usable_directly() {
    let store = MemoryStore::new();
    let svc = Introspector::builder(no_lease())
        .build(configs(), MemoryStore::new())
        .unwrap();
    let out = svc
        .introspect(&small_host(3, 120), addr(3), None, SystemTime::now())
        .unwrap();
    store.save(&out.record).unwrap();
    assert_eq!(store.load().unwrap(), [out.record]);
}

// ---- property tests ----------------------------------------------------------------------

/// Every JSON pointer in `v`.
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let p = format!("{at}/{}", k.replace('~', "~0").replace('/', "~1"));
                out.push(p.clone());
                pointers(x, p, out);
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                let p = format!("{at}/{i}");
                out.push(p.clone());
                pointers(x, p, out);
            }
        }
        _ => {}
    }
}

fn odd_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        Just(json!("unknown")),
        Just(json!("")),
        Just(json!(-1)),
        Just(json!(1.5)),
        Just(json!(u64::MAX)),
        Just(json!([])),
        Just(json!({})),
        Just(json!(true)),
        ".{0,12}".prop_map(Value::String),
        any::<i64>().prop_map(|n| json!(n)),
    ]
}

fn post_status(svc: &Introspector, body: &[u8]) -> u16 {
    match svc.introspect(body, addr(1), None, SystemTime::now()) {
        Ok(_) => 200,
        Err(e) => e.status().as_u16(),
    }
}

fn arb_disk() -> impl Strategy<Value = rhcos_introspect::Disk> {
    (
        prop::sample::select(vec![
            "sda", "sdb", "vda", "nvme0n1", "dm-0", "sr0", "zram0", "md127",
        ]),
        prop::option::of(0u64..(1 << 41)),
        prop::option::of(any::<bool>()),
        prop::sample::select(vec!["hdd", "ssd", "odd", "fdd", "virtual", "unknown"]),
    )
        .prop_map(|(name, size, removable, kind)| {
            serde_json::from_value(json!({
                "name": name, "size_bytes": size, "removable": removable, "drive_type": kind
            }))
            .unwrap()
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn chosen_disk_is_the_smallest_eligible(
        disks in proptest::collection::vec(arb_disk(), 0..8).prop_map(|mut v| {
            // Unique names (kind prefixes kept), so the chosen disk can be found again.
            for (i, d) in v.iter_mut().enumerate() {
                d.name = d.name.take().map(|n| format!("{n}{i}"));
            }
            v
        }),
        floor in 0u64..(1 << 40),
        rotational in prop::option::of(any::<bool>()),
    ) {
        let hints = DiskHints { rotational, ..DiskHints::default() };
        match choose_disk(&disks, &hints, floor) {
            Ok(c) => {
                prop_assert!(c.size_bytes >= floor);
                let d = disks.iter().find(|d| d.name.as_deref() == Some(c.name.as_str())).unwrap();
                prop_assert_ne!(d.removable, Some(true));
                // Every disk smaller than the chosen one was rejected on its own.
                for other in disks.iter().filter(|o| o.size_bytes.is_some_and(|s| s < c.size_bytes)) {
                    prop_assert!(choose_disk(std::slice::from_ref(other), &hints, floor).is_err());
                }
            }
            Err(rejected) => prop_assert_eq!(rejected.len(), disks.len()),
        }
    }

    #[test]
    fn arbitrary_bytes_give_typed_errors(body in proptest::collection::vec(any::<u8>(), 0..512)) {
        let svc = service(no_lease());
        let status = post_status(&svc, &body);
        prop_assert!([200, 400, 409, 422].contains(&status), "status {status}");
    }

    #[test]
    fn mutated_fixture_bytes(pos in 0usize..FIXTURE_MODERN.len(), byte in any::<u8>(), cut in any::<bool>()) {
        let mut body = FIXTURE_MODERN.to_vec();
        if cut { body.truncate(pos) } else { body[pos] = byte }
        let svc = service(no_lease());
        let status = post_status(&svc, &body);
        prop_assert!([200, 400, 409, 422].contains(&status), "status {status}");
    }

    #[test]
    fn mutated_fixture_values(picks in proptest::collection::vec((any::<prop::sample::Index>(), odd_value()), 1..4)) {
        let mut doc: Value = serde_json::from_slice(FIXTURE_MODERN).unwrap();
        for (pick, value) in picks {
            let mut all = Vec::new();
            pointers(&doc, String::new(), &mut all);
            if all.is_empty() { break }
            let p = pick.get(&all).clone();
            if let Some(slot) = doc.pointer_mut(&p) { *slot = value; }
        }
        let body = serde_json::to_vec(&doc).unwrap();
        let svc = service(no_lease());
        let status = post_status(&svc, &body);
        prop_assert!([200, 400, 409, 422].contains(&status), "status {status}");
        // Whatever parsed once parses the same after a round trip through our model.
        if let Ok(p) = parse(&body) {
            let again = parse(&serde_json::to_vec(&p.hardware).unwrap()).unwrap();
            prop_assert_eq!(p.hardware, again.hardware);
        }
    }
}

// ---- the ignition-serve adapter ----------------------------------------------------------

#[cfg(feature = "ignition")]
mod ignition {
    use super::*;
    use ignition_serve::{Config, Customization, Group, Profile, Selector};
    use rhcos_introspect::IgnitionConfigs;

    const WORKER_3_2: &[u8] = include_bytes!("../fixtures/mco-worker-pointer-spec3.2.0.ign");
    const WORKER_2_2: &[u8] = include_bytes!("../fixtures/mco-worker-pointer-spec2.2.0.ign");

    fn store() -> ignition_serve::Store {
        let mut store = ignition_serve::Store::new();
        store
            .insert_role("worker", Config::parse(WORKER_3_2.to_vec()).unwrap())
            .unwrap();
        // The pre-4.6 pointer stands in for a master config of the other spec family.
        store
            .insert_role("master", Config::parse(WORKER_2_2.to_vec()).unwrap())
            .unwrap();
        store.expect_role("infra").unwrap();
        store
            .add_group(Group {
                id: "host-2".into(),
                selector: Selector {
                    mac: Some(mac(2)),
                    ..Selector::default()
                },
                profile: Profile {
                    role: "worker".into(),
                    customization: Customization {
                        ssh_authorized_keys: vec![
                            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample lab".into(),
                        ],
                        ..Customization::default()
                    },
                    ..Profile::default()
                },
            })
            .unwrap();
        store
    }

    #[test]
    fn renders_the_decided_role_for_the_host() {
        let mut rules = Rules::masters_then_workers(1);
        rules.explicit.insert(mac(3), "infra".into());
        rules.explicit.insert(mac(4), "storage".into());
        let svc = Introspector::builder(Settings {
            rules,
            ..Settings::default()
        })
        .build(IgnitionConfigs::new(store()), MemoryStore::new())
        .unwrap();
        let post = |n: u8| {
            svc.introspect(
                &small_host(n, 120),
                addr(n),
                Some(mac(n)),
                SystemTime::now(),
            )
        };

        let master = post(1).unwrap();
        let body: Value = serde_json::from_slice(&master.config.body).unwrap();
        assert_eq!(body["ignition"]["version"], "2.2.0");
        assert!(body["ignition"]["config"]["append"].is_array(), "{body}");
        let files = body["storage"]["files"].as_array().unwrap();
        assert!(files.iter().any(|f| f["path"] == "/etc/hostname"), "{body}");
        assert_eq!(master.config.sha512.as_ref().map(String::len), Some(128));

        let worker = post(2).unwrap();
        let text = String::from_utf8(worker.config.body.to_vec()).unwrap();
        let body: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(body["ignition"]["version"], "3.2.0");
        assert_eq!(
            body["ignition"]["config"]["merge"][0]["source"],
            "https://test-cluster-api:22623/config/worker"
        );
        assert!(
            text.contains("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample lab"),
            "{text}"
        );
        assert!(text.contains("/etc/hostname"), "{text}");

        // Declared but not loaded: 503 and nothing recorded; unknown role: 500.
        assert!(matches!(post(3), Err(Error::NotReady { .. })));
        assert!(matches!(post(4), Err(Error::UnknownRole { .. })));
        assert_eq!(svc.list().len(), 2);
    }

    #[test]
    fn not_ready_store_and_live_route() {
        let mut s = store();
        s.set_ready(false);
        let route = ignition_serve::Route::new(
            s,
            Arc::new(pxe_stack::NoLookup),
            Arc::new(pxe_stack::Discard),
            ignition_serve::Options::default(),
        );
        let svc = Introspector::builder(no_lease())
            .build(
                IgnitionConfigs::from_route(route.clone()).hostnames(false),
                MemoryStore::new(),
            )
            .unwrap();
        let r = check(
            &svc,
            req("POST", "/introspection", &small_host(1, 120), 1, None),
            503,
            "not ready",
        );
        assert!(r.headers().contains_key(header::RETRY_AFTER));
        route.update(|s| s.set_ready(true));
        let r = check(
            &svc,
            req("POST", "/introspection", &small_host(1, 120), 1, None),
            200,
            "\"2.2.0\"",
        );
        assert!(!String::from_utf8_lossy(r.body()).contains("/etc/hostname"));
    }
}

// ---- end to end: curl against pxe-stack's HTTP server -------------------------------------

/// Whether `tool` runs; outside CI a missing tool skips the test, in CI it fails it.
fn have(tool: &str) -> bool {
    let ok = std::process::Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{tool} is required in CI"
        );
        eprintln!("skipping: {tool} not found");
    }
    ok
}

/// Runs the pxe-stack HTTP server on 127.0.0.1 until dropped.
struct HttpServer {
    rt: tokio::runtime::Runtime,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), pxe_stack::http::Error>>>,
    port: u16,
}

impl HttpServer {
    fn start(routes: pxe_stack::http::Routes) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server =
            pxe_stack::http::Server::new(pxe_stack::http::Config::default()).with_routes(routes);
        let task = rt.spawn(server.serve(listener, async move {
            let _ = stopped.await;
        }));
        HttpServer {
            rt,
            stop: Some(stop),
            task: Some(task),
            port,
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = self.rt.block_on(task);
        }
    }
}

/// `curl` with `args`; returns (status, content type, body).
fn curl(args: &[&str]) -> (u16, String, String) {
    let out = std::process::Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "30",
            "-o",
            "-",
            "-w",
            "\n%{http_code} %{content_type}",
        ])
        .args(args)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, meta) = text.rsplit_once('\n').unwrap();
    let (code, ctype) = meta.split_once(' ').unwrap_or((meta, ""));
    (code.parse().unwrap(), ctype.to_owned(), body.to_owned())
}

#[test]
fn curl_posts_to_the_pxe_stack_http_server() {
    if !have("curl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let svc = Introspector::builder(no_lease())
        .build(
            configs(),
            FileStore::new(dir.path().join("inventory")).unwrap(),
        )
        .unwrap();
    let limit = 64 * 1024;
    let routes = pxe_stack::http::Routes::new()
        .exact_with_limit("/introspection", limit, Arc::new(svc.clone()))
        .prefix("/inventory", svc.clone());
    let server = HttpServer::start(routes);
    let base = format!("http://127.0.0.1:{}", server.port);
    let post = |file: &std::path::Path| {
        curl(&[
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            &format!("@{}", file.display()),
            &format!("{base}/introspection"),
        ])
    };
    let write = |name: &str, bytes: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };

    let (code, ctype, body) = post(&write("modern.json", FIXTURE_MODERN));
    assert_eq!((code, ctype.as_str()), (200, "application/json"), "{body}");
    assert_eq!(body, MASTER_IGN);
    let (code, _, body) = post(&write("2019.json", FIXTURE_2019));
    assert_eq!(code, 422, "{body}");
    let (code, _, body) = post(&write(
        "broken.json",
        br#"{"block":{"disks":[{"name":"sda",}]}}"#,
    ));
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("block.disks[0]"), "{body}");
    let (code, _, _) = post(&write("big.json", &vec![b' '; limit + 1]));
    assert_eq!(code, 413);

    let (code, ctype, body) = curl(&[&format!("{base}/inventory")]);
    assert_eq!((code, ctype.as_str()), (200, "application/json"), "{body}");
    let list: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(list[0]["install_dev"], "/dev/disk/by-path/pci-0000:00:04.0");
    let (code, _, body) = curl(&[&format!("{base}/inventory/52-54-00-6b-3c-02")]);
    assert_eq!(code, 200, "{body}");
    assert!(
        body.contains("\"Devices\""),
        "the full hardware JSON: {body}"
    );
    drop(server);
    assert!(dir.path().join("inventory/52-54-00-6b-3c-01.json").exists());
}
