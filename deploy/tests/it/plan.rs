//! The documented sample plan, `examples/deploy.toml.example`, parses, lays out its bootstrap VM
//! and means what its comments say.

use rhcos_deploy::{BmcDriver, IgnitionVia, NetworkFamily, Plan, Role};

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

/// The sample's commented `[state]` section, uncommented, parses; its mistakes carry their key
/// paths (a password in the URL, plaintext not chosen explicitly, a backend that is not one).
#[test]
fn the_sample_state_section_parses_and_its_mistakes_name_the_key() {
    let text = std::fs::read_to_string(SAMPLE).unwrap();
    let state: String = text
        .lines()
        .skip_while(|l| *l != "# [state]")
        .take_while(|l| l.starts_with('#'))
        .map(|l| format!("{}\n", l.trim_start_matches("# ")))
        .collect();
    assert!(state.starts_with("[state]\n"), "{state}");
    let with = |section: &str| format!("{text}\n{section}");
    let plan = Plan::parse(&with(&state), "deploy.toml").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(plan.state.backend, rhcos_deploy::StateBackend::Postgres);
    assert_eq!(
        plan.state.password_env.as_deref(),
        Some("RHCOS_DB_PASSWORD")
    );
    // The default is files.
    let plan = Plan::parse(&text, "deploy.toml").unwrap();
    assert_eq!(plan.state.backend, rhcos_deploy::StateBackend::Files);

    let err = |section: String| {
        Plan::parse(&with(&section), "deploy.toml")
            .unwrap_err()
            .to_string()
    };
    let e = err(state.replace("rhcos@db", "rhcos:hunter2@db"));
    assert!(
        e.contains("at `state.url`") && e.contains("password_env"),
        "{e}"
    );
    assert!(
        !e.contains("hunter2"),
        "the error repeats the password: {e}"
    );
    let e = err(state.replace("ca_file = \"/etc/pki/rhcos-db-ca.pem\"", ""));
    assert!(
        e.contains("at `state.ca_file`") && e.contains("allow_plaintext"),
        "{e}"
    );
    let e = err(state.replace("\"postgres\"", "\"etcd\""));
    assert!(
        e.starts_with("deploy.toml:") && e.contains("at `state.backend`"),
        "{e}"
    );
    let e = err("[state]\nurl = \"postgresql://db/x\"\n".into());
    assert!(
        e.contains("at `state.url`") && e.contains("only with backend"),
        "{e}"
    );
}

/// The sample's commented IPv6 lines, switched on, make a dual-stack plan; without the IPv4
/// keys, an IPv6-only one.
#[test]
fn the_sample_ipv6_lines_make_a_dual_stack_plan() {
    let text = std::fs::read_to_string(SAMPLE).unwrap();
    let dual = text
        .replace("# family = \"dual-stack\"", "family = \"dual-stack\"")
        .replace("# ipv6 = {", "ipv6 = {")
        .replace("# ipv6 = \"fd00:22::10\"", "ipv6 = \"fd00:22::10\"");
    let plan = Plan::parse(&dual, "deploy.toml").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(plan.provisioning.family, NetworkFamily::DualStack);
    assert_eq!(plan.hosts[0].ipv6, Some("fd00:22::10".parse().unwrap()));
    assert_eq!(
        plan.provisioning.ipv6.as_ref().unwrap().dhcp_range,
        Some((
            "fd00:22::100".parse().unwrap(),
            "fd00:22::1ff".parse().unwrap()
        ))
    );

    // IPv6 only: the IPv4 keys the comment says to drop are refused while they are there.
    let v6 = dual.replace("family = \"dual-stack\"", "family = \"ipv6\"");
    let e = Plan::parse(&v6, "deploy.toml").unwrap_err().to_string();
    assert!(
        e.contains("at `provisioning.address`: family = \"ipv6\" runs no IPv4 server"),
        "{e}"
    );
}
