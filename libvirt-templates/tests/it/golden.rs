//! The builder reproduces the seed's two templates element for element; snapshots pin the
//! rendered text; every rendered document validates against libvirt's RelaxNG schemas.

use libvirt_templates::{Domain, IgnitionVia, Network};

use crate::util::{assert_valid, fixture, seed_spec};

#[test]
fn seed_network_is_reproduced() {
    let seed = Network::from_xml(&fixture("seed-network.xml")).unwrap();
    assert!(seed.ignored.is_empty(), "model misses {:?}", seed.ignored);
    let built = seed_spec().build().unwrap();
    assert_eq!(built.network, seed.value);
    let xml = built.network.to_xml().unwrap();
    // Text level too, independent of the model: only the quote style differs.
    assert_eq!(xml, fixture("seed-network.xml").replace('\'', "\""));
    assert_valid("network", &xml);
}

#[test]
fn seed_bootstrap_is_reproduced() {
    let seed = Domain::from_xml(&fixture("seed-bootstrap.xml")).unwrap();
    assert!(seed.ignored.is_empty(), "model misses {:?}", seed.ignored);
    let built = seed_spec().build().unwrap();
    assert_eq!(built.bootstrap, seed.value);
    let xml = built.bootstrap.to_xml().unwrap();
    assert_eq!(xml, fixture("seed-bootstrap.xml").replace('\'', "\""));
    assert_valid("domain", &xml);
}

#[test]
fn snapshot_seed_network() {
    let xml = seed_spec().build().unwrap().network.to_xml().unwrap();
    insta::assert_snapshot!(xml);
}

#[test]
fn snapshot_seed_bootstrap_qemu_commandline() {
    let xml = seed_spec().build().unwrap().bootstrap.to_xml().unwrap();
    insta::assert_snapshot!(xml);
}

#[test]
fn snapshot_bootstrap_fwcfg() {
    let mut spec = seed_spec();
    spec.vm.ignition_via = IgnitionVia::Fwcfg;
    let domain = spec.build().unwrap().bootstrap;
    assert!(domain.xmlns_qemu.is_none() && domain.qemu_commandline.is_none());
    let xml = domain.to_xml().unwrap();
    assert_valid("domain", &xml);
    insta::assert_snapshot!(xml);
}

#[test]
fn snapshot_defaults_without_etcd_or_bootp() {
    let mut spec = libvirt_templates::ClusterSpec::new("lab", "test.local").with_counts(1, 1);
    spec.vm.image = "/var/lib/libvirt/images/rhcos.raw".into();
    spec.vm.image_format = libvirt_templates::DiskFormat::Raw;
    spec.vm.kind = libvirt_templates::DomainType::Qemu;
    spec.vm.memory_mib = 2048;
    spec.vm.vnc = false;
    let cluster = spec.build().unwrap();
    let net = cluster.network.to_xml().unwrap();
    let dom = cluster.bootstrap.to_xml().unwrap();
    assert!(!net.contains("<srv"));
    assert_valid("network", &net);
    assert_valid("domain", &dom);
    insta::assert_snapshot!("defaults_network", net);
    insta::assert_snapshot!("defaults_bootstrap", dom);
}
