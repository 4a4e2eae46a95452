//! Shared helpers: fixture paths and RelaxNG validation through xmllint.

use std::path::{Path, PathBuf};
use std::process::Command;

use libvirt_templates::ClusterSpec;

pub(crate) fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

pub(crate) fn fixture(name: &str) -> String {
    std::fs::read_to_string(fixtures().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Whether CI=true, where a missing prerequisite must fail instead of skipping.
pub(crate) fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Prints why a test cannot run and returns; panics instead under CI=true.
pub(crate) fn skip(why: &str) {
    if ci() {
        panic!("prerequisite missing under CI=true: {why}");
    }
    eprintln!("skipping: {why}");
}

/// Runs `xmllint --relaxng` with the bundled libvirt 9.0.0 schema for `root` (`network` or
/// `domain`). Returns `None` when xmllint is not installed (after [`skip`]), else whether the
/// document validates and xmllint's output.
pub(crate) fn relaxng(root: &str, xml: &str) -> Option<(bool, String)> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(format!("{root}.xml"));
    std::fs::write(&file, xml).unwrap();
    let schema = fixtures().join(format!("schemas-libvirt-9.0.0/{root}.rng"));
    let out = match Command::new("xmllint")
        .arg("--noout")
        .arg("--relaxng")
        .arg(&schema)
        .arg(&file)
        .output()
    {
        Ok(out) => out,
        Err(e) => {
            skip(&format!("xmllint (libxml2-utils) not runnable: {e}"));
            return None;
        }
    };
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    Some((out.status.success(), text))
}

/// Asserts that `xml` validates against libvirt's schema for `root`.
pub(crate) fn assert_valid(root: &str, xml: &str) {
    if let Some((ok, out)) = relaxng(root, xml) {
        assert!(ok, "{root} does not validate:\n{out}\n{xml}");
    }
}

/// The spec that reproduces the (reconstructed) seed templates.
pub(crate) fn seed_spec() -> ClusterSpec {
    let mut spec = ClusterSpec::new("ocp4", "example.com").with_counts(3, 2);
    spec.network_uuid = Some("3f1c6a8e-2b4d-4e1f-9a7c-5d2e8b0c1a01".into());
    spec.etcd_srv = true;
    spec.bootp = Some(libvirt_templates::Bootp {
        file: "pxelinux.0".into(),
        server: None,
    });
    spec.vm.uuid = Some("3f1c6a8e-2b4d-4e1f-9a7c-5d2e8b0c1a10".into());
    spec.vm.image = "/var/lib/libvirt/images/ocp4-bootstrap.qcow2".into();
    spec.vm.ignition = Some("/var/lib/libvirt/images/bootstrap.ign".into());
    spec
}

/// Runs libvirt's own `virt-xml-validate` (package libvirt-clients) on a document. Returns
/// `None` when it is not installed (after [`skip`]), else whether it validates and its output.
pub(crate) fn virt_xml_validate(root: &str, xml: &str) -> Option<(bool, String)> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(format!("{root}.xml"));
    std::fs::write(&file, xml).unwrap();
    let out = match Command::new("virt-xml-validate")
        .arg(&file)
        .arg(root)
        .output()
    {
        Ok(out) => out,
        Err(e) => {
            skip(&format!(
                "virt-xml-validate (libvirt-clients) not runnable: {e}"
            ));
            return None;
        }
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some((out.status.success(), text))
}
