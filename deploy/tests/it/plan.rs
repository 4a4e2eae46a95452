//! The documented sample plan, `examples/deploy.toml.example`, parses, lays out its bootstrap VM
//! and means what its comments say.

use rhcos_deploy::{BmcDriver, IgnitionVia, Plan, Role};

const SAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../examples/deploy.toml.example"
);

#[test]
fn the_sample_plan_parses() {
    let plan = Plan::load(std::path::Path::new(SAMPLE)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(plan.cluster.name, "ocp");
    let roles: Vec<_> = plan.hosts.iter().map(|h| h.role.clone()).collect();
    assert_eq!(roles, [Role::Master, Role::Worker, Role::Introspect]);
    let drivers: Vec<_> = plan
        .hosts
        .iter()
        .map(|h| h.bmc.as_ref().map(|b| b.driver))
        .collect();
    assert_eq!(
        drivers,
        [
            Some(BmcDriver::Ipmi),
            Some(BmcDriver::Redfish),
            Some(BmcDriver::Libvirt)
        ]
    );
    assert_eq!(plan.introspection.rules.len(), 1);

    let bootstrap = plan.bootstrap.as_ref().unwrap();
    assert_eq!(bootstrap.ignition_via, IgnitionVia::Fwcfg);
    let cluster = rhcos_deploy::bootstrap_cluster(&plan).unwrap().unwrap();
    let network = cluster.network.to_xml().unwrap();
    assert!(
        network.contains("<hostname>api-int.ocp.example.com</hostname>"),
        "{network}"
    );
    let domain = cluster.bootstrap.to_xml().unwrap();
    assert!(
        domain.contains(
            r#"<entry name="opt/com.coreos/config" file="/srv/ocp/install-dir/bootstrap.ign"/>"#
        ),
        "{domain}"
    );
}

#[test]
fn sample_errors_name_the_key_path() {
    let text = std::fs::read_to_string(SAMPLE).unwrap();
    let bad = text.replace("ca_file = \"/etc/pki/bmc-ca.pem\"", "ca_file = 7");
    let e = Plan::parse(&bad, "deploy.toml").unwrap_err().to_string();
    assert!(e.starts_with("deploy.toml:"), "{e}");
    assert!(e.contains(": at `hosts[1].bmc.ca_file`"), "{e}");
}
