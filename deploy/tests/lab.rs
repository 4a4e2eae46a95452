//! The lab harness itself, against the real programs it drives (root only: namespaces, taps,
//! QEMU, ipmi_sim). The full deployment through the lab is tested in the examples package.

#![cfg(feature = "lab")]

use std::time::{Duration, Instant};

use rhcos_deploy::lab::{BMC_PASSWORD, BMC_USER, Lab, LabConfig};

/// Skips (or, under CI, fails) when the test cannot run here.
fn prerequisites() -> bool {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let root = nix_is_root();
    if !root {
        assert!(!ci, "CI=true: the lab tests need root");
        eprintln!("skipping: the lab tests need root");
        return false;
    }
    true
}

fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

fn ipmitool(lab: &Lab, vm: usize, args: &[&str]) -> String {
    let port = lab.vms[vm].bmc.port().to_string();
    let mut cmd = std::process::Command::new("ip");
    cmd.args(["netns", "exec", lab.netns().name(), "ipmitool"])
        .args(["-I", "lanplus", "-C", "3", "-H", "127.0.0.1", "-p", &port])
        .args(["-U", BMC_USER, "-P", BMC_PASSWORD])
        .args(args);
    let out = cmd.output().expect("ipmitool runs");
    assert!(out.status.success(), "ipmitool {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn root_lab_boots_firmware_into_ipxe_and_tears_down() {
    if !prerequisites() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let mut config = LabConfig::two_hosts(work.path().to_owned());
    config.netns = format!("rmlabt{}", std::process::id());
    config.hosts.truncate(1);
    let netns_name = config.netns.clone();
    {
        let lab = Lab::build(&config).expect("lab builds");
        assert!(lab.installer.initramfs.exists());
        assert!(lab.stream.exists());
        assert!(ipmitool(&lab, 0, &["chassis", "power", "status"]).contains("off"));
        ipmitool(&lab, 0, &["chassis", "bootdev", "pxe"]);
        ipmitool(&lab, 0, &["chassis", "power", "on"]);
        let deadline = Instant::now() + Duration::from_secs(120);
        while !lab.vms[0].serial_log().contains("iPXE") && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(250));
        }
        assert!(lab.vms[0].running(), "the BMC started the VM");
        assert!(
            lab.vms[0].serial_log().contains("iPXE"),
            "the NIC's iPXE ROM ran: {}",
            lab.vms[0].serial_log()
        );
        ipmitool(&lab, 0, &["chassis", "power", "off"]);
        assert!(!lab.vms[0].running());
    }
    let namespaces = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&namespaces.stdout).contains(&netns_name),
        "the namespace is gone"
    );
}
