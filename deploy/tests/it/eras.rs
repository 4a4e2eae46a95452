//! Every metadata era deploys: the artifacts chosen from real stream metadata (Fedora CoreOS,
//! RHCOS 4.11, legacy RHCOS 4.1 `rhcos.json`) and the per-host scripts built from them, read
//! the way `deploy --dry-run` reads them (metadata only, nothing else downloaded).

use std::collections::HashMap;

use bytes::Bytes;
use pxe_stack::Mac;
use rhcos_deploy::{Generation, Layout, Plan, Selection, ipxe_scripts, select_artifacts};

const FCOS: &str = "fcos-stream-stable-34.20211016.3.0.json";
const RHCOS_411: &str = "rhcos-4.11-stream-metal-excerpt.json";
const LEGACY_41: &str = "rhcos-legacy-410.8.20190520.0-rhcos.json";

/// A plan for `fixture` with a master on a 512-byte disk, a worker on a 4Kn disk and an
/// introspected host; `images` adds lines to `[images]`.
fn plan(fixture: &str, images: &str, worker_sectors: u32) -> Plan {
    let stream = format!("{}/tests/fixtures/{fixture}", env!("CARGO_MANIFEST_DIR"));
    Plan::parse(
        &format!(
            r#"
[cluster]
name = "ocp"
base_domain = "example.com"
assets = "/srv/ocp"
[images]
stream = "{stream}"
cache = "/var/cache/rhcos-metal"
{images}
[provisioning]
interface = "eno2"
address = "172.22.0.1"
dhcp_range = ["172.22.0.100", "172.22.0.199"]
[[hosts]]
name = "master-0"
mac = "52:54:00:12:60:01"
role = "master"
[[hosts]]
name = "worker-0"
mac = "52:54:00:12:60:02"
role = "worker"
sector_size = {worker_sectors}
[[hosts]]
name = "new-0"
mac = "52:54:00:12:60:03"
role = "introspect"
"#
        ),
        "plan.toml",
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

async fn scripts_for(plan: &Plan) -> (Selection, HashMap<Mac, String>) {
    let selection = select_artifacts(plan)
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    let layout = Layout::new(plan, &selection.served(plan.images.cache.clone()));
    let scripts: HashMap<Mac, Bytes> = ipxe_scripts(plan, &layout).unwrap();
    let text = scripts
        .into_iter()
        .map(|(mac, s)| (mac, String::from_utf8(s.to_vec()).unwrap()))
        .collect();
    (selection, text)
}

fn mac(last: u8) -> Mac {
    Mac([0x52, 0x54, 0, 0x12, 0x60, last])
}

fn kernel_line(script: &str) -> &str {
    script
        .lines()
        .find(|l| l.starts_with("kernel "))
        .unwrap_or_else(|| panic!("no kernel line in\n{script}"))
}

#[tokio::test]
async fn fcos_stream_installs_raw_xz_and_the_4k_image_on_4kn_disks() {
    let plan = plan(FCOS, "", 4096);
    let (selection, scripts) = scripts_for(&plan).await;
    assert_eq!(selection.served("/c".into()).generation, Generation::Live);
    let image = selection.set.image.as_ref().unwrap();
    assert!(
        image.name.ends_with("metal.x86_64.raw.xz"),
        "{}",
        image.name
    );
    let image_4k = selection.image_4k.as_ref().unwrap();
    assert!(
        image_4k.name.ends_with("metal4k.x86_64.raw.xz"),
        "{}",
        image_4k.name
    );
    assert!(selection.set.rootfs.is_some());

    let master = kernel_line(&scripts[&mac(1)]);
    assert!(
        master.contains(&format!(
            "coreos.inst.image_url=http://172.22.0.1:8080/{}",
            image.sha256
        )),
        "{master}"
    );
    assert!(
        master.contains("coreos.live.rootfs_url=http://172.22.0.1:8080/"),
        "{master}"
    );
    assert!(
        master.contains("coreos.inst.install_dev=/dev/sda"),
        "{master}"
    );
    assert!(
        master.contains(
            "coreos.inst.ignition_url=http://172.22.0.1:8080/ignition?mac=52-54-00-12-60-01"
        ),
        "{master}"
    );
    // Release-signed images: the installer checks the signature itself.
    assert!(!master.contains("coreos.inst.insecure"), "{master}");
    assert!(!master.contains("coreos.inst=yes"), "{master}");

    let worker = kernel_line(&scripts[&mac(2)]);
    assert!(worker.contains(&image_4k.sha256), "{worker}");
    let introspected = kernel_line(&scripts[&mac(3)]);
    assert!(
        introspected
            .contains("coreos.inst.introspection_endpoint=http://172.22.0.1:8080/introspection"),
        "{introspected}"
    );
    // The disk and image are introspection's: they come from the install config, not the
    // command line.
    assert!(
        !introspected.contains("coreos.inst.install_dev"),
        "{introspected}"
    );
    assert!(
        !introspected.contains("coreos.inst.image_url"),
        "{introspected}"
    );
    assert!(
        introspected.contains(
            "rhcos_metal.install_config=http://172.22.0.1:8080/install-config?mac=52-54-00-12-60-03"
        ),
        "{introspected}"
    );
    // Every artifact names its signature, so coreos-installer finds `<image URL>.sig`.
    for a in selection.artifacts() {
        assert!(a.signature_url().ends_with(".sig"), "{}", a.signature_url());
    }
}

#[tokio::test]
async fn rhcos_stream_installs_raw_gz() {
    let plan = plan(RHCOS_411, "", 512);
    let (selection, scripts) = scripts_for(&plan).await;
    let image = selection.set.image.as_ref().unwrap();
    assert!(
        image.name.ends_with("metal.x86_64.raw.gz"),
        "{}",
        image.name
    );
    // No fixed host has a 4Kn disk, but the introspected one may: the 4k image comes along.
    assert!(selection.image_4k.is_some());
    let master = kernel_line(&scripts[&mac(1)]);
    assert!(master.contains(&image.sha256), "{master}");
    assert!(master.contains("coreos.live.rootfs_url="), "{master}");
}

#[tokio::test]
async fn legacy_rhcos_json_boots_the_installer_initramfs() {
    let plan = plan(LEGACY_41, "", 512);
    let (selection, scripts) = scripts_for(&plan).await;
    assert_eq!(selection.served("/c".into()).generation, Generation::Legacy);
    assert!(selection.set.rootfs.is_none());
    let image = selection.set.image.as_ref().unwrap();
    assert!(
        image.name.ends_with("metal-bios.raw.gz") || image.name.ends_with("metal.raw.gz"),
        "{}",
        image.name
    );
    assert!(
        selection.set.kernel.name.contains("installer-kernel"),
        "{}",
        selection.set.kernel.name
    );
    let master = kernel_line(&scripts[&mac(1)]);
    assert!(master.contains("coreos.inst=yes"), "{master}");
    assert!(master.contains("coreos.inst.install_dev=sda"), "{master}");
    assert!(master.contains(&image.sha256), "{master}");
    assert!(!master.contains("coreos.live.rootfs_url"), "{master}");
}

#[tokio::test]
async fn a_4kn_host_needs_metadata_with_a_4k_image() {
    let plan = plan(LEGACY_41, "", 4096);
    let e = select_artifacts(&plan).await.unwrap_err();
    assert!(
        matches!(
            &e,
            rhcos_deploy::Error::Images(rhcos_images::Error::No4kImage { .. })
        ),
        "{e:?}"
    );
}

#[tokio::test]
async fn insecure_only_when_the_plan_says_the_installer_cannot_check() {
    let (_, scripts) = scripts_for(&plan(FCOS, "unsigned = true", 512)).await;
    assert!(kernel_line(&scripts[&mac(1)]).contains(" coreos.inst.insecure"));
    // A keyring of our own (here the release keys as a file): coreos-installer knows only its
    // embedded keys, so it is told not to check again.
    let keyring = format!(
        "keyring = \"{}/../rhcos-images/keys/release-keys.asc\"",
        env!("CARGO_MANIFEST_DIR")
    );
    let (_, scripts) = scripts_for(&plan(FCOS, &keyring, 512)).await;
    assert!(kernel_line(&scripts[&mac(1)]).contains(" coreos.inst.insecure"));
    let (_, scripts) = scripts_for(&plan(FCOS, "", 512)).await;
    assert!(!kernel_line(&scripts[&mac(1)]).contains("insecure"));
}

#[tokio::test]
async fn live_installs_can_skip_the_image_download() {
    let (selection, scripts) = scripts_for(&plan(FCOS, "install_from = \"live\"", 512)).await;
    assert!(selection.set.image.is_none());
    let master = kernel_line(&scripts[&mac(1)]);
    assert!(!master.contains("coreos.inst.image_url"), "{master}");
    assert!(master.contains("coreos.live.rootfs_url="), "{master}");
    // The legacy installer has no live system to copy: it always downloads.
    let (selection, _) = scripts_for(&plan(LEGACY_41, "install_from = \"live\"", 512)).await;
    assert!(selection.set.image.is_some());
}

#[test]
fn the_plan_refuses_sector_sizes_without_images() {
    let e = std::panic::catch_unwind(|| plan(FCOS, "", 520)).unwrap_err();
    let message = e.downcast_ref::<String>().unwrap();
    assert!(message.contains("hosts[1].sector_size"), "{message}");
}
