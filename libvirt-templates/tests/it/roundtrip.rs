//! Parsing: every fixture parses, render -> parse -> render is stable, and typed parse errors.

use std::net::Ipv4Addr;

use libvirt_templates::{ClusterSpec, Domain, Error, IgnitionVia, Network};
use proptest::prelude::*;

use crate::util::{assert_valid, fixture, fixtures, relaxng};

/// Parses `name`, renders, parses again and renders again; both parses and both renders agree,
/// and the rendered document validates.
fn check_network(name: &str) -> Vec<String> {
    let parsed = Network::from_xml(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    let xml = parsed.value.to_xml().unwrap();
    let again = Network::from_xml(&xml).unwrap();
    assert_eq!(again.value, parsed.value, "{name}");
    assert!(again.ignored.is_empty(), "{name}: {:?}", again.ignored);
    assert_eq!(again.value.to_xml().unwrap(), xml, "{name}");
    assert_valid("network", &xml);
    parsed.ignored
}

fn check_domain(name: &str) -> Vec<String> {
    let parsed = Domain::from_xml(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    let xml = parsed.value.to_xml().unwrap();
    let again = Domain::from_xml(&xml).unwrap();
    assert_eq!(again.value, parsed.value, "{name}");
    assert!(again.ignored.is_empty(), "{name}: {:?}", again.ignored);
    assert_eq!(again.value.to_xml().unwrap(), xml, "{name}");
    assert_valid("domain", &xml);
    parsed.ignored
}

#[test]
fn every_fixture_parses_and_round_trips() {
    let mut seen = 0;
    for entry in std::fs::read_dir(fixtures()).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if !name.ends_with(".xml") {
            continue;
        }
        let ignored = if name.starts_with("network-") || name.contains("-net") {
            check_network(&name)
        } else {
            check_domain(&name)
        };
        eprintln!("{name}: ignored {ignored:?}");
        seen += 1;
    }
    assert_eq!(seen, 13);
}

#[test]
fn fixtures_report_what_the_model_leaves_out() {
    let cases: [(&str, &[&str]); 7] = [
        ("domain-qemu-ns.xml", &["capabilities"]),
        ("network-nat-network.xml", &[]),
        ("network-nat-dns-hosts.xml", &[]),
        ("network-netboot.xml", &["ip.0.dhcp.option"]),
        ("peers-cluster-net.xml", &["@xmlns:dnsmasq"]),
        ("peers-probe-dom.xml", &[]),
        (
            "domain-console-compat.xml",
            &[
                "devices.disk.0.address",
                "devices.controller",
                "devices.input",
                "devices.memballoon",
            ],
        ),
    ];
    for (name, want) in cases {
        let ignored = if name.starts_with("network") || name.contains("-net") {
            Network::from_xml(&fixture(name)).unwrap().ignored
        } else {
            Domain::from_xml(&fixture(name)).unwrap().ignored
        };
        for w in want {
            assert!(
                ignored.iter().any(|i| i == w),
                "{name}: {w} not in {ignored:?}"
            );
        }
        if want.is_empty() {
            assert!(ignored.is_empty(), "{name}: {ignored:?}");
        }
    }
}

#[test]
fn negative_fixture_fails_validation_as_documented() {
    // <dhcp><option> is newer than libvirt 9.0's schema.
    if let Some((ok, out)) = relaxng("network", &fixture("network-netboot.xml")) {
        assert!(!ok, "network-netboot.xml unexpectedly validates: {out}");
    }
}

#[test]
fn the_validator_catches_a_bad_document() {
    let mut net = Network::from_xml(&fixture("seed-network.xml"))
        .unwrap()
        .value;
    net.ip[0].dhcp.as_mut().unwrap().range.clear();
    let xml = net.to_xml().unwrap().replace("<name>ocp4</name>", "");
    if let Some((ok, _)) = relaxng("network", &xml) {
        assert!(!ok, "a network without <name> must not validate");
    }
}

#[test]
fn parse_errors_are_typed() {
    type Check = fn(&Error) -> bool;
    let cases: [(&str, Check); 5] = [
        (
            "<domain type='kvm'><name>x</name></domain>",
            |e| matches!(e, Error::WrongRoot { expected: "network", found } if found == "domain"),
        ),
        ("", |e| matches!(e, Error::Parse { .. })),
        ("<network><name>x</name>", |e| {
            matches!(e, Error::Parse { .. })
        }),
        (
            "<network><name>x</name><mac address='zz'/></network>",
            |e| matches!(e, Error::Parse { .. }),
        ),
        (
            "<network><name>x</name><forward mode='bogus'/></network>",
            |e| matches!(e, Error::Parse { .. }),
        ),
    ];
    for (xml, want) in cases {
        let err = Network::from_xml(xml).expect_err(xml);
        assert!(want(&err), "{xml}: {err:?}");
    }
    let err = Domain::from_xml("<domain type='xen'><name>x</name></domain>").unwrap_err();
    assert!(
        matches!(err, Error::Parse { root: "domain", .. }),
        "{err:?}"
    );
}

fn arb_spec() -> impl Strategy<Value = ClusterSpec> {
    (
        "[a-z][a-z0-9-]{0,8}[a-z0-9]",
        prop::sample::select(vec!["example.com", "lab.test", "a.b.c"]),
        0usize..6,
        0usize..6,
        any::<bool>(),
        any::<bool>(),
        prop::sample::select(vec![
            (Ipv4Addr::new(192, 168, 126, 1), 24u8),
            (Ipv4Addr::new(10, 20, 0, 1), 16),
            (Ipv4Addr::new(172, 16, 5, 129), 25),
        ]),
        prop::sample::select(vec!["52:54:00", "52:54:00:7e", "02:00:00:00:01"]),
        "/[a-z]{1,8}/[a-z, ]{1,8}\\.ign",
    )
        .prop_map(
            |(name, domain, masters, workers, etcd, fwcfg, (address, prefix), mac, ign)| {
                let mut s = ClusterSpec::new(name, domain).with_counts(masters, workers);
                s.address = address;
                s.prefix = prefix;
                s.mac_prefix = mac.to_owned();
                s.etcd_srv = etcd;
                s.vm.image = "/var/lib/libvirt/images/x.qcow2".into();
                s.vm.ignition = Some(ign);
                s.vm.ignition_via = if fwcfg {
                    IgnitionVia::Fwcfg
                } else {
                    IgnitionVia::QemuCommandline
                };
                s
            },
        )
}

proptest! {
    #[test]
    fn built_documents_round_trip(spec in arb_spec()) {
        let cluster = spec.build().unwrap();
        let net = cluster.network.to_xml().unwrap();
        let parsed = Network::from_xml(&net).unwrap();
        prop_assert!(parsed.ignored.is_empty());
        prop_assert_eq!(&parsed.value, &cluster.network);
        prop_assert_eq!(parsed.value.to_xml().unwrap(), net);
        let dom = cluster.bootstrap.to_xml().unwrap();
        let parsed = Domain::from_xml(&dom).unwrap();
        prop_assert!(parsed.ignored.is_empty());
        prop_assert_eq!(&parsed.value, &cluster.bootstrap);
        prop_assert_eq!(parsed.value.to_xml().unwrap(), dom);
    }
}

/// A smaller deterministic sweep that also runs every output through the RelaxNG schemas.
#[test]
fn built_documents_validate() {
    for masters in [0, 1, 3] {
        for workers in [0, 2] {
            for etcd in [false, true] {
                for via in [IgnitionVia::QemuCommandline, IgnitionVia::Fwcfg] {
                    let mut s = crate::util::seed_spec().with_counts(masters, workers);
                    s.etcd_srv = etcd;
                    s.vm.ignition_via = via;
                    let c = s.build().unwrap();
                    assert_valid("network", &c.network.to_xml().unwrap());
                    assert_valid("domain", &c.bootstrap.to_xml().unwrap());
                }
            }
        }
    }
}

#[test]
fn qemu_commandline_always_carries_its_namespace() {
    let mut dom = Domain::from_xml(&fixture("seed-bootstrap.xml"))
        .unwrap()
        .value;
    dom.xmlns_qemu = None;
    let xml = dom.to_xml().unwrap();
    assert!(
        xml.starts_with(
            r#"<domain type="kvm" xmlns:qemu="http://libvirt.org/schemas/domain/qemu/1.0">"#
        ),
        "{xml}"
    );
    assert_valid("domain", &xml);
    // A document using another prefix for the namespace still parses (by local name).
    let other = fixture("seed-bootstrap.xml")
        .replace("xmlns:qemu=", "xmlns:q=")
        .replace("qemu:", "q:");
    let parsed = Domain::from_xml(&other).unwrap().value;
    assert_eq!(parsed.qemu_commandline, dom.qemu_commandline);
    assert_eq!(
        Domain::from_xml(&parsed.to_xml().unwrap())
            .unwrap()
            .value
            .xmlns_qemu
            .as_deref(),
        Some(libvirt_templates::QEMU_NS)
    );
}

/// The network's rendering with `<bootp file server>` replaced verbatim (already escaped).
fn network_with_bootp(file_xml: &str, server_xml: &str) -> String {
    let mut spec = crate::util::seed_spec();
    spec.bootp = Some(libvirt_templates::Bootp {
        file: "PLACEHOLDER".into(),
        server: Some("192.0.2.1".into()),
    });
    let xml = spec.build().unwrap().network.to_xml().unwrap();
    assert!(xml.contains(r#"file="PLACEHOLDER""#) && xml.contains(r#"server="192.0.2.1""#));
    xml.replace(r#"file="PLACEHOLDER""#, &format!(r#"file="{file_xml}""#))
        .replace(
            r#"server="192.0.2.1""#,
            &format!(r#"server="{server_xml}""#),
        )
}

/// Whether libvirt's own network parser (the `test:///default` driver in virsh, no daemon)
/// defines the network.
fn libvirt_defines(xml: &str) -> Option<(bool, String)> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("network.xml");
    std::fs::write(&file, xml).unwrap();
    match std::process::Command::new("virsh")
        .args(["-c", "test:///default", "net-define"])
        .arg(&file)
        .output()
    {
        Ok(out) => Some((
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )),
        Err(e) => {
            crate::util::skip(&format!("virsh (libvirt-clients) not runnable: {e}"));
            None
        }
    }
}

#[test]
fn bootp_values_libvirt_refuses_are_typed_errors() {
    use libvirt_templates::Bootp;
    let check = |file: &str, server: Option<&str>| {
        let bootp = Bootp {
            file: file.into(),
            server: server.map(Into::into),
        };
        let mut spec = crate::util::seed_spec();
        spec.bootp = Some(bootp.clone());
        let built = spec.build();
        assert_eq!(
            built.as_ref().err().map(ToString::to_string),
            bootp.check().err().map(|e| e.to_string())
        );
        match bootp.check() {
            Ok(()) => None,
            Err(Error::InvalidBootp { field, .. }) => Some(field),
            Err(e) => panic!("{e}"),
        }
    };
    let escape = |s: &str| {
        s.replace('&', "&amp;")
            .replace('"', "&quot;")
            .replace('\n', "&#10;")
            .replace('\r', "&#13;")
            .replace('\u{1}', "&#1;")
    };
    // Accepted by us, by libvirt's schema and by libvirt's parser.
    for file in [
        "pxelinux.0",
        "http://192.168.126.1:8080/boot.ipxe",
        "ipxe/snponly.efi",
    ] {
        assert_eq!(check(file, Some("192.168.126.5")), None, "{file}");
        let xml = network_with_bootp(&escape(file), "192.168.126.5");
        if let Some((ok, out)) = crate::util::virt_xml_validate("network", &xml) {
            assert!(ok, "{file}: {out}");
        }
        if let Some((ok, out)) = libvirt_defines(&xml) {
            assert!(ok, "{file}: {out}");
        }
    }
    // File names libvirt's schema refuses: typed errors here.
    for file in ["pxelinux.0\nx", "a\rb", "a\u{1}b", ""] {
        assert_eq!(check(file, None), Some("file"), "{file:?}");
        let xml = network_with_bootp(&escape(file), "192.168.126.5");
        if let Some((ok, out)) = crate::util::virt_xml_validate("network", &xml) {
            assert!(!ok, "virt-xml-validate accepts file {file:?}: {out}");
        }
    }
    // File names that would split dnsmasq's `dhcp-boot=file,,server` line libvirt writes.
    for file in ["a,b", "a b", "a\"b", "a\tb"] {
        assert_eq!(check(file, None), Some("file"), "{file:?}");
    }
    // Servers: libvirt parses them as an address; a name or IPv6 is refused.
    for server in ["tftp.example.com", "::1", "192.168.126.300"] {
        assert_eq!(
            check("pxelinux.0", Some(server)),
            Some("server"),
            "{server}"
        );
        let xml = network_with_bootp("pxelinux.0", server);
        let schema = crate::util::virt_xml_validate("network", &xml);
        let parser = libvirt_defines(&xml);
        if let (Some((schema_ok, _)), Some((parser_ok, out))) = (schema, parser) {
            assert!(
                !(schema_ok && parser_ok),
                "libvirt accepts server {server}: {out}"
            );
        }
    }
}
