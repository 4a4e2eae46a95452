//! The lab against the real programs it drives (root only: namespaces, taps, QEMU, OVMF,
//! ipmi_sim): the harness itself, then whole deployments through our DHCP, TFTP and HTTP
//! servers with every disk checked.

use std::time::{Duration, Instant};

use rhcos_deploy::lab::{BMC_PASSWORD, BMC_USER, Lab, LabConfig};

/// Skips (or, under CI, fails) when the test cannot run here.
fn prerequisites() -> bool {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let mut missing = Vec::new();
    if !nix_is_root() {
        missing.push("root".to_owned());
    }
    for tool in [
        "/usr/bin/qemu-system-x86_64",
        "/usr/bin/ipmi_sim",
        "/usr/bin/ipmitool",
        "/bin/busybox",
        "/usr/sbin/debugfs",
        "/usr/bin/ignition-validate",
        "/usr/bin/xz",
        "/usr/sbin/mkfs.ext4",
        "/usr/sbin/mkfs.vfat",
        "/usr/bin/udevadm",
        "/usr/bin/gpg",
        "/usr/bin/lsblk",
        "/usr/share/OVMF/OVMF_CODE_4M.fd",
        "/usr/lib/ipxe/undionly.kpxe",
        "/usr/lib/ipxe/snponly.efi",
        "/usr/lib/ipxe/ipxe.efi",
        "/usr/bin/chromium",
        "/usr/bin/curl",
    ] {
        if !std::path::Path::new(tool).exists() {
            missing.push(tool.to_owned());
        }
    }
    if missing.is_empty() {
        return true;
    }
    assert!(
        !ci,
        "CI=true: the lab tests need {missing:?} (scripts/install-deps.sh)"
    );
    eprintln!("skipping: the lab tests need {missing:?}");
    false
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
    cmd.args(["netns", "exec", lab.server_netns().name(), "ipmitool"])
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
        // A rack's layout: the hosts' segment has no address of its own, the provisioning
        // server's end of it carries the provisioning address, the BMCs its loopback.
        assert_eq!(lab.hosts_netns().name(), format!("{netns_name}-hosts"));
        assert_eq!(lab.server_netns().name(), format!("{netns_name}-server"));
        let v4 = lab.hosts_netns().ipv4_addresses().expect("ip -4 addr");
        assert!(v4.is_empty(), "the hosts' namespace has no IPv4: {v4:?}");
        let v4 = lab.server_netns().ipv4_addresses().expect("ip -4 addr");
        assert_eq!(v4, ["127.0.0.1/8 (lo)", "192.168.126.1/24 (prov0)"]);
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

/// `RHCOS_METAL_LAB_KEEP=<dir>` keeps the lab's files (serial logs, disks) there for a look.
fn lab_config(tag: &str, work: &std::path::Path) -> LabConfig {
    let keep = std::env::var_os("RHCOS_METAL_LAB_KEEP").map(std::path::PathBuf::from);
    let mut config = LabConfig::two_hosts(keep.clone().unwrap_or_else(|| work.to_owned()));
    config.keep_files = keep.is_some();
    config.netns = format!("rmlab{tag}{}", std::process::id());
    config
}

fn print_report(report: &rhcos_deploy::lab::LabReport) {
    eprintln!("{}", report.summary.timeline.render_table());
    for d in &report.disks {
        eprintln!(
            "disk {} role {:?} installer {:?} image {} kargs {:?} dns {:?} evidence {:?}: {:?}",
            d.name, d.role, d.installer, d.image, d.kernel_args, d.dns, d.evidence, d.result
        );
    }
}

/// Every disk was written by the real coreos-installer, named with its version.
fn assert_installed_by_coreos_installer(report: &rhcos_deploy::lab::LabReport) {
    let version = format!(
        "coreos-installer {}",
        rhcos_deploy::lab::COREOS_INSTALLER_VERSION
    );
    for d in &report.disks {
        assert_eq!(d.installer.as_deref(), Some(version.as_str()), "{}", d.name);
        // The disk is on the command line, or (introspected hosts) in the install config.
        assert!(
            d.evidence
                .iter()
                .any(|l| l.starts_with("coreos-installer install "))
                && d.evidence.iter().any(|l| l.contains(" /dev/vda")),
            "{}: the service script ran coreos-installer on /dev/vda: {:?}",
            d.name,
            d.evidence
        );
        assert!(d.evidence.iter().any(|l| l == "Install complete."));
    }
}

/// The README's main job, as a test: a BIOS VM with a fixed role and a UEFI VM that is
/// introspected, PXE-booted through our DHCP, TFTP and HTTP servers, powered on over IPMI,
/// installed by the real coreos-installer (its own service script reading `coreos.inst.*`), and
/// their disks read back from the host.
#[test]
fn root_lab_deploys_a_bios_master_and_an_introspected_uefi_host() {
    if !prerequisites() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let mut config = lab_config("d", work.path());
    config.status_port = Some(9100);
    let lab = Lab::build(&config).expect("lab builds");
    let url = lab.status_url().expect("the lab serves its status page");
    eprintln!("status page: {url}");
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = std::thread::spawn({
        let (url, done) = (url.clone(), done.clone());
        move || status::watch_mid_run(&url, &done)
    });
    let report = lab.deploy(|_| {}, std::future::pending());
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let mid_run = watcher.join().expect("the status watcher");
    let report = report.expect("deployment runs");
    print_report(&report);
    assert!(report.success(), "every host installed and checked out");
    // While the VMs installed: the page in a real browser, and the metrics over HTTP.
    let mid_run = mid_run.expect("the status page was seen mid-run");
    status::check_mid_run(&mid_run, &["node0", "node1"]);
    // At the end: the counts the run must have produced, the timeline's record, and the
    // finished page in the browser (served from the run's status after the servers stopped).
    status::check_final(&report);
    status::check_final_page(&report, &["node0", "node1"]);
    assert_installed_by_coreos_installer(&report);
    let roles: Vec<_> = report.disks.iter().map(|d| d.role.clone()).collect();
    assert_eq!(roles, [Some("master".into()), Some("worker".into())]);
    let images: Vec<_> = report.disks.iter().map(|d| d.image.as_str()).collect();
    assert_eq!(
        images,
        ["raw.gz", "4k.raw.gz"],
        "the 4Kn disk got the 4k image"
    );
    // Each installer resolved api-int and its own name both ways through our DNS (the disk
    // check holds it to that), and the deployment's timeline saw those queries.
    let zone = lab.zone();
    for (d, vm) in report.disks.iter().zip(&lab.vms) {
        assert!(
            d.dns
                .contains(&format!("api-int.{zone} -> {}", lab.api_vip())),
            "{}: {:?}",
            d.name,
            d.dns
        );
        let host = report.summary.timeline.host(vm.spec.mac).unwrap();
        assert_eq!(
            host.dns.get(&format!("api-int.{zone}")),
            Some(&pxe_stack::DnsOutcome::Answered),
            "{}: {:?}",
            d.name,
            host.dns
        );
        assert_eq!(
            host.dns.get(&format!("{}.{zone}", vm.spec.name)),
            Some(&pxe_stack::DnsOutcome::Answered),
            "{}: {:?}",
            d.name,
            host.dns
        );
    }
    let uefi = report.summary.timeline.host(lab.vms[1].spec.mac).unwrap();
    assert!(
        uefi.phases.contains_key(&rhcos_deploy::Phase::BootFile),
        "the UEFI host fetched snponly.efi over TFTP"
    );
    assert!(
        uefi.phases
            .contains_key(&rhcos_deploy::Phase::Introspection)
    );
}

/// The other chainload paths: the BIOS NIC ROM is handed undionly.kpxe over TFTP first, and only
/// the iPXE that comes from it gets the script; UEFI firmware gets ipxe.efi (iPXE's own NIC
/// drivers) instead of snponly.efi. The stream is FCOS-shaped (xz images only), so
/// coreos-installer gets `raw.xz` and `4k.raw.xz` here, under URLs without a suffix.
#[test]
fn root_lab_chainloads_undionly_kpxe_on_bios_and_ipxe_efi_on_uefi() {
    if !prerequisites() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let mut config = lab_config("u", work.path());
    config.chain = rhcos_deploy::ChainMode::Stateful;
    config.efi_boot_file = "ipxe.efi".into();
    config.xz_only = true;
    let lab = Lab::build(&config).expect("lab builds");
    let report = lab
        .deploy(|_| {}, std::future::pending())
        .expect("deployment runs");
    print_report(&report);
    assert!(report.success());
    assert_installed_by_coreos_installer(&report);
    let images: Vec<_> = report.disks.iter().map(|d| d.image.as_str()).collect();
    assert_eq!(images, ["raw.xz", "4k.raw.xz"]);
    for vm in &lab.vms {
        let host = report.summary.timeline.host(vm.spec.mac).unwrap();
        assert!(
            host.phases.contains_key(&rhcos_deploy::Phase::BootFile),
            "{} chainloaded its iPXE binary over TFTP",
            vm.spec.name
        );
    }
}

/// Signed lab images: every artifact carries a detached signature by a throwaway key that the
/// plan names as its keyring, and rhcos-deploy's own checks accept them, and refuse a tampered
/// signature.
#[test]
fn root_lab_signed_artifacts_pass_the_plans_keyring_and_tampering_fails() {
    if !prerequisites() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let mut config = lab_config("k", work.path());
    config.signed = true;
    config.hosts.truncate(1);
    let lab = Lab::build(&config).expect("lab builds");
    let plan = lab.plan();
    assert!(plan.images.keyring.is_some() && !plan.images.unsigned);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let artifacts = runtime
        .block_on(rhcos_deploy::fetch_artifacts(
            &plan,
            rhcos_images::NoProgress,
        ))
        .expect("every artifact verifies against the lab's keyring");
    assert!(artifacts.image.is_some());

    // A signature by the same key over other bytes: refused, and nothing reaches the cache.
    let mut tampered = plan.clone();
    tampered.images.cache = work.path().join("cache-tampered");
    let sigs = lab.dir.join("signatures");
    let kernel_sig = sigs.join("vmlinuz.sig");
    let initrd_sig = sigs.join("initrd.img.sig");
    std::fs::copy(&initrd_sig, &kernel_sig).unwrap();
    let err = runtime
        .block_on(rhcos_deploy::fetch_artifacts(
            &tampered,
            rhcos_images::NoProgress,
        ))
        .expect_err("a signature over other bytes is refused");
    eprintln!("tampered: {err:?}");
}

/// The whole install with signed images: rhcos-deploy verifies every artifact against the
/// plan's keyring (a throwaway key). coreos-installer 0.27 fetches `<image_url>.sig` whatever
/// the flags and checks any signature it finds against its compiled-in release keys, so the
/// image's signature is withheld from it (404) and `coreos.inst.insecure` lets it go on.
#[test]
fn root_lab_installs_images_signed_by_the_plans_keyring() {
    if !prerequisites() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let mut config = lab_config("s", work.path());
    config.signed = true;
    config.hosts.truncate(1);
    let lab = Lab::build(&config).expect("lab builds");
    let report = lab
        .deploy(|_| {}, std::future::pending())
        .expect("deployment runs");
    print_report(&report);
    assert!(report.success());
    assert_installed_by_coreos_installer(&report);
}

/// The disk check against disks whose history is known: the image as written (no Ignition
/// config yet), an Ignition config written where coreos-installer writes it, and one flipped
/// byte in the root partition. Needs e2fsprogs, dosfstools and xz, not root.
#[test]
fn lab_disk_check_reads_boot_and_sees_changes_outside_it() {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let tools = [
        "/usr/sbin/mkfs.ext4",
        "/usr/sbin/mkfs.vfat",
        "/usr/sbin/debugfs",
        "/usr/bin/xz",
    ];
    if let Some(missing) = tools.iter().find(|t| !std::path::Path::new(t).exists()) {
        assert!(
            !ci,
            "CI=true: {missing} is missing (scripts/install-deps.sh)"
        );
        eprintln!("skipping: {missing} is missing");
        return;
    }
    use rhcos_deploy::lab::{MIN_IMAGE_MIB, generate_image, inspect_disk};
    let work = tempfile::tempdir().unwrap();
    for sector_size in [512, 4096] {
        let image = generate_image(&work.path().join("cache"), MIN_IMAGE_MIB, sector_size)
            .expect("image generates");
        let disk = work.path().join(format!("disk{sector_size}"));
        let mut bytes = std::fs::read(&image.raw).unwrap();
        bytes.resize(bytes.len() + (16 << 20), 0);
        std::fs::write(&disk, &bytes).unwrap();

        let fresh = inspect_disk(&disk, &image, work.path()).unwrap();
        assert!(fresh.outside_boot_identical);
        assert!(fresh.boot_files_changed.is_empty());
        assert_eq!(fresh.ignition, None);
        assert_eq!(
            fresh.bls_options.as_deref(),
            Some(rhcos_deploy::lab::BLS_OPTIONS)
        );
        assert_eq!(fresh.partitions.len(), 4);

        // What coreos-installer does to /boot, done with debugfs on the partition's bytes.
        let boot = image.partition("boot").unwrap();
        let (b0, b1) = (boot.offset as usize, (boot.offset + boot.len) as usize);
        let fs = work.path().join("boot.ext4");
        std::fs::write(&fs, &bytes[b0..b1]).unwrap();
        let config = work.path().join("config.ign");
        std::fs::write(&config, br#"{"ignition":{"version":"3.2.0"}}"#).unwrap();
        for cmd in [
            "mkdir /ignition".to_owned(),
            format!("write {} /ignition/config.ign", config.display()),
            "set_inode_field /ignition/config.ign mode 0100600".to_owned(),
        ] {
            let out = std::process::Command::new("debugfs")
                .args(["-w", "-R", &cmd])
                .arg(&fs)
                .output()
                .unwrap();
            assert!(out.status.success(), "debugfs {cmd}: {out:?}");
        }
        bytes[b0..b1].copy_from_slice(&std::fs::read(&fs).unwrap());
        std::fs::write(&disk, &bytes).unwrap();
        let installed = inspect_disk(&disk, &image, work.path()).unwrap();
        assert!(installed.outside_boot_identical);
        assert_eq!(
            installed.ignition.as_deref(),
            Some(br#"{"ignition":{"version":"3.2.0"}}"#.as_slice())
        );
        assert_eq!(installed.ignition_mode.as_deref(), Some("0600"));

        let root = image.partition("root").unwrap();
        bytes[(root.offset + root.len / 2) as usize] ^= 1;
        std::fs::write(&disk, &bytes).unwrap();
        let flipped = inspect_disk(&disk, &image, work.path()).unwrap();
        assert!(
            !flipped.outside_boot_identical,
            "a flipped root byte is seen"
        );
    }
}

/// The lab image's ESP carries Debian's signed shim and network GRUB where a release keeps its
/// own (`EFI/debian/`), and the release reader gets them back out of the compressed images as
/// deployed: both sector sizes, gzip and xz, cached by sha256 with the image they came from.
/// Needs e2fsprogs, dosfstools, mtools, xz and Debian's shim-signed and grub-efi-amd64-signed,
/// not root.
#[test]
fn lab_image_esp_holds_the_signed_chain_the_release_reader_extracts() {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let (shim, grub) = rhcos_deploy::lab::SECURE_BOOT_FILES;
    let needs = [
        "/usr/sbin/mkfs.ext4",
        "/usr/sbin/mkfs.vfat",
        "/usr/bin/mcopy",
        "/usr/bin/xz",
        shim,
        grub,
    ];
    if let Some(missing) = needs.iter().find(|t| !std::path::Path::new(t).exists()) {
        assert!(
            !ci,
            "CI=true: {missing} is missing (scripts/install-deps.sh)"
        );
        eprintln!("skipping: {missing} is missing");
        return;
    }
    use rhcos_deploy::lab::{ESP_VENDOR_DIR, MIN_IMAGE_MIB, generate_image, sha256_file};
    use rhcos_images::{Cache, Compression, esp::cache_boot_chain};
    let work = tempfile::tempdir().unwrap();
    let cache = Cache::open(work.path().join("served")).unwrap();
    let shim_sha = sha256_file(std::path::Path::new(shim)).unwrap();
    let grub_sha = sha256_file(std::path::Path::new(grub)).unwrap();
    for sector_size in [512, 4096] {
        let image = generate_image(&work.path().join("cache"), MIN_IMAGE_MIB, sector_size)
            .expect("image generates");
        for ((file, sha), compression) in
            [(&image.gz, Compression::Gzip), (&image.xz, Compression::Xz)]
        {
            std::fs::copy(file, cache.path_for(sha).unwrap()).unwrap();
            let chain = cache_boot_chain(&cache, sha, compression).expect("the chain is read");
            assert_eq!(chain.vendor, "debian");
            assert_eq!(chain.shim_path, format!("{ESP_VENDOR_DIR}/shimx64.efi"));
            assert_eq!(chain.grub_path, format!("{ESP_VENDOR_DIR}/grubx64.efi"));
            assert_eq!(
                (chain.shim_sha256.as_str(), chain.grub_sha256.as_str()),
                (shim_sha.as_str(), grub_sha.as_str())
            );
            assert_eq!(
                std::fs::read(chain.shim(&cache).unwrap()).unwrap(),
                std::fs::read(shim).unwrap()
            );
        }
    }
}

/// The status page and metrics during and after a lab run, seen from this machine through the
/// lab's private link: JSON with curl, the page in headless Chromium, metrics parsed by a
/// Prometheus text-format parser.
mod status {
    use std::path::PathBuf;
    use std::process::Command;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    /// What was seen mid-run.
    pub(super) struct MidRun {
        pub(super) status: serde_json::Value,
        pub(super) dom: String,
        pub(super) metrics: String,
        pub(super) screenshot: PathBuf,
    }

    fn curl(url: &str) -> Option<String> {
        let out = Command::new("curl")
            .args(["-sf", "--max-time", "10", url])
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Where the screenshot is kept for CI: `<target>/ci-artifacts/status.png`.
    fn artifact_dir() -> PathBuf {
        let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        let dir = tmp.parent().unwrap_or(&tmp).join("ci-artifacts");
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn chromium(args: &[&str], url: &str) -> std::process::Output {
        let profile = tempfile::tempdir().unwrap();
        let out = Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--hide-scrollbars",
                "--virtual-time-budget=5000",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(args)
            .arg(url)
            .output()
            .expect("chromium runs (apt-get install chromium)");
        assert!(
            out.status.success(),
            "chromium {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Polls `/status` until a host is past DHCP and not every host is done, then loads the
    /// page in headless Chromium (DOM and screenshot) and scrapes `/metrics`. `None` when the
    /// run ended first.
    pub(super) fn watch_mid_run(url: &str, done: &AtomicBool) -> Option<MidRun> {
        while !done.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_secs(1));
            let Some(text) = curl(&format!("{url}status")) else {
                continue;
            };
            let status: serde_json::Value = serde_json::from_str(&text).expect("/status is JSON");
            let hosts = status["hosts"].as_array().cloned().unwrap_or_default();
            let moving = hosts.iter().any(|h| {
                matches!(
                    h["phase"].as_str(),
                    Some("kernel" | "initrd" | "introspect" | "image" | "ignition")
                )
            });
            let finished = status["installed"].as_u64() == Some(hosts.len() as u64);
            if !moving || finished {
                continue;
            }
            let dom = chromium(&["--dump-dom"], url);
            let screenshot = artifact_dir().join("status.png");
            let _ = std::fs::remove_file(&screenshot);
            chromium(
                &[
                    "--window-size=1500,260",
                    &format!("--screenshot={}", screenshot.display()),
                ],
                url,
            );
            eprintln!(
                "status page screenshot (CI artifact): {}",
                screenshot.display()
            );
            let metrics = curl(&format!("{url}metrics")).expect("/metrics answers");
            return Some(MidRun {
                status,
                dom: String::from_utf8_lossy(&dom.stdout).into_owned(),
                metrics,
                screenshot,
            });
        }
        None
    }

    /// The texts of the cells of one column (`<td class="phase">…</td>`) in a dumped DOM.
    fn cells<'a>(dom: &'a str, class: &str) -> Vec<&'a str> {
        let open = format!("<td class=\"{class}\">");
        dom.split(&open)
            .skip(1)
            .map(|rest| rest.split("</td>").next().unwrap_or(""))
            .collect()
    }

    fn parse(text: &str) -> prometheus_parse::Scrape {
        prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
            .expect("metrics parse as Prometheus text")
    }

    fn value(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
        scrape
            .samples
            .iter()
            .filter(|s| s.metric == name)
            .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => 0.0,
            })
            .sum()
    }

    pub(super) fn check_mid_run(seen: &MidRun, names: &[&str]) {
        eprintln!("mid-run status: {}", seen.status);
        // The browser ran the page's script: one row per host, with its phase.
        let hosts = cells(&seen.dom, "name");
        assert_eq!(hosts, names, "rows in the DOM: {}", seen.dom);
        let phases = cells(&seen.dom, "phase");
        assert_eq!(phases.len(), names.len(), "{}", seen.dom);
        assert!(
            phases.iter().any(|p| !p.is_empty()),
            "a phase is shown: {phases:?}"
        );
        let known = [
            "power",
            "dhcp",
            "bootfile",
            "script",
            "kernel",
            "initrd",
            "introspect",
            "image",
            "ignition",
            "installed",
        ];
        assert!(
            phases.iter().all(|p| p.is_empty() || known.contains(p)),
            "{phases:?}"
        );
        assert!(!seen.dom.contains(rhcos_deploy::lab::BMC_PASSWORD));
        let png = std::fs::read(&seen.screenshot).expect("a screenshot was written");
        assert!(png.starts_with(b"\x89PNG"), "the screenshot is a PNG");
        // Mid-run metrics: both hosts were powered on (verified) and got DHCP answers.
        let m = parse(&seen.metrics);
        assert!(
            value(
                &m,
                "rhcos_bmc_calls_total",
                &[("step", "on"), ("outcome", "verified")]
            ) >= 1.0,
            "{}",
            seen.metrics
        );
        assert!(value(&m, "rhcos_dhcp_messages_total", &[("type", "ack")]) >= 1.0);
    }

    /// The finished deployment's page, served by `serve_status` on this machine's loopback.
    pub(super) fn check_final_page(report: &rhcos_deploy::lab::LabReport, names: &[&str]) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let status = report.status.clone();
        let server = std::thread::spawn(move || {
            rt.block_on(rhcos_deploy::serve_status(status, listener, async {
                let _ = stopped.await;
            }))
        });
        let dom = chromium(&["--dump-dom"], &url);
        let dom = String::from_utf8_lossy(&dom.stdout).into_owned();
        let screenshot = artifact_dir().join("status-final.png");
        chromium(
            &[
                "--window-size=1500,260",
                &format!("--screenshot={}", screenshot.display()),
            ],
            &url,
        );
        eprintln!(
            "final status page screenshot (CI artifact): {}",
            screenshot.display()
        );
        let _ = stop.send(());
        server.join().unwrap().unwrap();
        assert_eq!(cells(&dom, "name"), names, "{dom}");
        assert!(
            cells(&dom, "phase").iter().all(|p| *p == "installed"),
            "{dom}"
        );
        assert!(
            cells(&dom, "state").iter().all(|s| *s == "installed"),
            "{dom}"
        );
        assert!(dom.contains("2 hosts: 2 installed, 0 failed"), "{dom}");
    }

    pub(super) fn check_final(report: &rhcos_deploy::lab::LabReport) {
        let text = report.status.metrics_text();
        eprintln!("{text}");
        let m = parse(&text);
        let v = |name, labels: &[(&str, &str)]| value(&m, name, labels);
        // Every host: powered on, installed, set to boot from disk; each one's kernel,
        // initramfs and image were served once at least, and both reported.
        assert_eq!(
            v(
                "rhcos_bmc_calls_total",
                &[("step", "on"), ("outcome", "verified")]
            ),
            2.0
        );
        assert_eq!(v("rhcos_bmc_calls_total", &[("step", "boot-disk")]), 2.0);
        assert_eq!(
            v("rhcos_install_reports_total", &[("stage", "installed")]),
            2.0
        );
        for route in ["kernel", "initramfs"] {
            assert!(
                v(
                    "rhcos_http_requests_total",
                    &[("route", route), ("status", "200")]
                ) >= 2.0,
                "{route}"
            );
        }
        // The BIOS host's image and the UEFI host's 4k image.
        assert!(
            v(
                "rhcos_http_requests_total",
                &[("route", "image"), ("status", "200")]
            ) >= 1.0
        );
        assert!(
            v(
                "rhcos_http_requests_total",
                &[("route", "image-4k"), ("status", "200")]
            ) >= 1.0
        );
        assert!(v("rhcos_http_bytes_total", &[("route", "image")]) > 0.0);
        // The fixed master's Ignition config; the introspected host's inventory and role.
        assert!(v("rhcos_ignition_configs_total", &[("role", "master")]) >= 1.0);
        assert_eq!(v("rhcos_introspections_total", &[("role", "worker")]), 1.0);
        // UEFI firmware fetched snponly.efi over TFTP.
        assert!(v("rhcos_tftp_transfers_total", &[("status", "complete")]) >= 1.0);
        assert!(v("rhcos_tftp_bytes_total", &[]) > 0.0);
        // Both firmwares got a boot file or the script URL from DHCP.
        assert!(v("rhcos_dhcp_messages_total", &[("type", "offer")]) >= 2.0);
        assert_eq!(v("rhcos_hosts", &[("state", "installed")]), 2.0);
        // Every artifact the lab's stream lists came through the fetcher, none refused.
        let fetched = v("rhcos_downloads_total", &[("outcome", "downloaded")])
            + v("rhcos_downloads_total", &[("outcome", "cached")]);
        assert!(fetched >= 3.0, "{fetched}");
        assert_eq!(v("rhcos_verification_failures_total", &[]), 0.0);
        // Both installers resolved api-int and their own name through the cluster DNS.
        assert!(v("rhcos_dns_questions_total", &[("outcome", "answered")]) >= 2.0);
        // One phase-duration observation per host for the phases both went through.
        assert!(
            text.contains("rhcos_phase_duration_seconds_count{phase=\"installed\"} 2"),
            "{text}"
        );
        // The final status and the timeline on disk.
        let s = report.status.snapshot();
        assert_eq!((s.total, s.installed, s.failed), (2, 2, 0));
        assert!(s.hosts.iter().all(|h| h.bmc.is_some()));
        let file = report
            .summary
            .timeline_file
            .as_ref()
            .expect("the timeline was written");
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap();
        assert_eq!(json["hosts"].as_array().unwrap().len(), 2);
        assert_eq!(json["hosts"][0]["installed"], true);
    }
}

/// UEFI Secure Boot, enforced: OVMF's Secure Boot build with Microsoft's keys enrolled. First
/// the negative control: with Secure Boot off in the plan, DHCP offers the VM our unsigned iPXE
/// and the firmware refuses to run it. Then the deployment: DHCP hands the VM Debian's
/// Microsoft-signed shim over TFTP, shim loads Debian's signed network GRUB beside it (both
/// read from the ESP of the verified lab image, `provisioning.secure_boot.from = "image"`, as a
/// release's own shim and GRUB are), GRUB
/// fetches the host's configuration from `grub/grub.cfg` and loads Debian's signed kernel
/// (verified through shim) and the lab's installer initramfs over HTTP, and the real
/// coreos-installer installs the disk.
#[test]
fn root_lab_secure_boot_installs_through_shim_and_grub_and_refuses_unsigned_ipxe() {
    if !prerequisites() {
        return;
    }
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let (shim, grub) = rhcos_deploy::lab::SECURE_BOOT_FILES;
    let missing: Vec<_> = [
        "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd",
        "/usr/share/OVMF/OVMF_VARS_4M.ms.fd",
        shim,
        grub,
    ]
    .into_iter()
    .filter(|f| !std::path::Path::new(f).exists())
    .collect();
    if !missing.is_empty() {
        assert!(
            !ci,
            "CI=true: the Secure Boot lab needs {missing:?} (scripts/install-deps.sh)"
        );
        eprintln!("skipping: the Secure Boot lab needs {missing:?}");
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let base = lab_config("b", work.path());
    let mut config = LabConfig::secure_boot(base.work_dir.clone());
    config.keep_files = base.keep_files;
    config.netns = base.netns;
    // TCG, as the other lab tests: nested KVM here has no System Management Mode, which
    // OVMF's Secure Boot build needs.
    let lab = Lab::build(&config).expect("lab builds");

    let (console, refused) = lab
        .offer_unsigned_ipxe(0, Duration::from_secs(300))
        .expect("the negative control runs");
    let refusal = console
        .lines()
        .find(|l| rhcos_deploy::lab::REFUSALS.iter().any(|r| l.contains(r)));
    eprintln!("negative control: {refusal:?}");
    assert!(
        refused,
        "the Secure Boot firmware refused our unsigned iPXE; console:\n{console}"
    );
    assert!(
        !console.contains("iPXE initialising"),
        "iPXE never ran under Secure Boot:\n{console}"
    );

    let report = lab
        .deploy(|_| {}, std::future::pending())
        .expect("deployment runs");
    print_report(&report);
    let console = lab.vms[0].serial_log();
    assert!(
        report.success(),
        "the Secure Boot host installed; console:\n{console}"
    );
    assert_installed_by_coreos_installer(&report);
    let host = report.summary.timeline.host(lab.vms[0].spec.mac).unwrap();
    for phase in [
        rhcos_deploy::Phase::BootFile,
        rhcos_deploy::Phase::Loader,
        rhcos_deploy::Phase::Script,
        rhcos_deploy::Phase::Kernel,
    ] {
        assert!(
            host.phases.contains_key(&phase),
            "{phase:?} (shim, GRUB, its config, the kernel) is in the timeline: {:?}",
            host.phases
        );
    }
    assert!(
        console.contains("rhcos-metal: loading the installer, attempt 1 of"),
        "our GRUB configuration ran:\n{console}"
    );
    // The kernel's EFI stub reads the firmware's SecureBoot variable: it was enforcing.
    assert!(
        console.contains("EFI stub: UEFI Secure Boot is enabled."),
        "the kernel booted with Secure Boot on:\n{console}"
    );
    // The chain the firmware ran came out of the image: the cache records which image it was
    // read from and keeps Debian's binaries under their sha256.
    assert_eq!(
        config.secure_boot_chain,
        rhcos_deploy::SecureBoot::FromImage
    );
    let cache = lab.dir.join("cache");
    let record = std::fs::read_dir(&cache)
        .unwrap()
        .flatten()
        .find(|e| {
            e.file_name()
                .to_string_lossy()
                .ends_with(".boot-chain.json")
        })
        .expect("a boot-chain record in the deployment's cache");
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(record.path()).unwrap()).unwrap();
    eprintln!("boot chain read from the image: {record}");
    assert_eq!(record["vendor"], "debian");
    assert_eq!(record["shim_path"], "EFI/debian/shimx64.efi");
    for (key, file) in [("shim_sha256", shim), ("grub_sha256", grub)] {
        let sha = rhcos_deploy::lab::sha256_file(std::path::Path::new(file)).unwrap();
        assert_eq!(record[key], sha.as_str(), "{key} is {file}'s");
        assert!(
            cache.join(&sha).is_file(),
            "{file} is cached under its sha256"
        );
    }
}

/// Issue 23's lab: an IPv6-only provisioning segment (no IPv4 address anywhere in the hosts'
/// namespace, loopback included: the BMCs are on the provisioning server's management side,
/// its own namespace), a UEFI VM whose OVMF boots over IPv6 (its IPv4 PXE off): DHCPv6 hands it `tftp://[addr]/snponly.efi`, iPXE takes DHCPv6 again and its
/// per-host script over HTTP on IPv6, and the live installer (`ip=dhcp6`, ISC dhclient -6)
/// runs the real coreos-installer against our HTTP server over IPv6. The host keeps its
/// reservation by MAC although OVMF, iPXE and dhclient each send their own DUID.
#[test]
fn root_lab_ipv6_only_uefi_installs_over_dhcpv6_tftp_http() {
    if !prerequisites() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let base = lab_config("6", work.path());
    let mut config = LabConfig::ipv6_only(base.work_dir.clone());
    config.netns = base.netns;
    config.keep_files = base.keep_files;
    let lab = Lab::build(&config).expect("lab builds");
    let v4 = lab.hosts_netns().ipv4_addresses().expect("ip -4 addr");
    assert!(
        v4.is_empty(),
        "no IPv4 address in the hosts' namespace: {v4:?}"
    );
    // The provisioning server's end of the segment is IPv6-only too; its IPv4 is loopback's,
    // where the BMCs listen.
    let v4 = lab.server_netns().ipv4_addresses().expect("ip -4 addr");
    assert_eq!(v4, ["127.0.0.1/8 (lo)"], "the server's IPv4 is loopback's");
    let report = lab
        .deploy(|_| {}, std::future::pending())
        .expect("deployment runs");
    print_report(&report);
    assert!(
        report.success(),
        "the IPv6-only host installed and checked out"
    );
    assert_installed_by_coreos_installer(&report);
    let console = lab.vms[0].serial_log();
    assert!(
        console.contains("LIVE: dhcp6 bound ip6=fd00:126::10"),
        "the installer took its reservation over DHCPv6"
    );
    assert!(
        !console.contains("LIVE: dhcp bound ip="),
        "no DHCPv4 in the installer"
    );
    // OVMF's own PXE ran over IPv6 and handed over to the iPXE it fetched over TFTP, which
    // configured itself by DHCPv6 and fetched its script and the installer over HTTP on IPv6.
    assert!(console.contains("Start PXE over IPv6"), "{console}");
    assert!(!console.contains("PXE over IPv4"), "{console}");
    assert!(
        console.contains("Filename: http://[fd00:126::1]:8080/ipxe?mac=52-54-00-7e-60-02"),
        "{console}"
    );
    assert!(console.contains("net0: fd00:126::10/64"), "{console}");
    let v4 = lab.hosts_netns().ipv4_addresses().expect("ip -4 addr");
    assert!(
        v4.is_empty(),
        "still no IPv4 address in the hosts' namespace after the run: {v4:?}"
    );
}

/// The IPv6-only lab with the host set to UEFI HTTP boot instead of PXE: OVMF's HTTP boot
/// over IPv4 finds nothing, then over IPv6 it solicits with the `HTTPClient` vendor class, takes
/// the `http://[addr]/snponly.efi` our DHCPv6 server gives such a client, downloads it from our
/// HTTP server, and the install goes on as with PXE.
#[test]
fn root_lab_ipv6_only_uefi_http_boot_installs() {
    if !prerequisites() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let base = lab_config("6h", work.path());
    let mut config = LabConfig::ipv6_only_http_boot(base.work_dir.clone());
    config.netns = base.netns;
    config.keep_files = base.keep_files;
    let lab = Lab::build(&config).expect("lab builds");
    assert!(lab.hosts_netns().ipv4_addresses().unwrap().is_empty());
    let report = lab
        .deploy(|_| {}, std::future::pending())
        .expect("deployment runs");
    print_report(&report);
    assert!(report.success(), "the HTTP-booted host installed");
    assert_installed_by_coreos_installer(&report);
    let console = lab.vms[0].serial_log();
    assert!(console.contains("Start HTTP Boot over IPv6"), "{console}");
    assert!(
        console.contains("URI: http://[fd00:126::1]:8080/snponly.efi"),
        "{console}"
    );
    assert!(!console.contains("PXE over"), "no PXE at all: {console}");
    assert!(
        console.contains("LIVE: dhcp6 bound ip6=fd00:126::10"),
        "the installer kept the host's reservation across the firmware's, iPXE's and its own DUIDs"
    );
}

/// The dual-stack lab: the BIOS host's iPXE ROM on DHCPv4, the introspected UEFI host's OVMF
/// PXE over IPv6, a third host's OVMF HTTP boot over IPv4; every installer with `ip=dhcp,dhcp6` (udhcpc and
/// dhclient -6), each holding a DHCPv4 and a DHCPv6 address.
#[test]
fn root_lab_dual_stack_installs() {
    if !prerequisites() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let base = lab_config("ds", work.path());
    let mut config = LabConfig::dual_stack(base.work_dir.clone());
    config.netns = base.netns;
    config.keep_files = base.keep_files;
    let lab = Lab::build(&config).expect("lab builds");
    let report = lab
        .deploy(|_| {}, std::future::pending())
        .expect("deployment runs");
    print_report(&report);
    assert!(report.success(), "every host installed and checked out");
    assert_installed_by_coreos_installer(&report);
    for vm in &lab.vms {
        let console = vm.serial_log();
        assert!(console.contains("LIVE: dhcp bound ip="), "{}", vm.spec.name);
        assert!(
            console.contains("LIVE: dhcp6 bound ip6="),
            "{}",
            vm.spec.name
        );
    }
    // The UEFI host's OVMF booted over IPv6 (its IPv4 PXE off), the BIOS host's iPXE ROM over
    // DHCPv4, and the HTTP boot host's OVMF over IPv4: DHCPv4 with the `HTTPClient` vendor
    // class, then the URL our server gave it.
    assert!(lab.vms[1].serial_log().contains("Start PXE over IPv6"));
    let http = lab.vms[2].serial_log();
    assert!(http.contains("Start HTTP Boot over IPv4"), "{http}");
    assert!(
        http.contains("URI: http://192.168.126.1:8080/snponly.efi"),
        "{http}"
    );
    assert!(!http.contains("PXE over"), "no PXE at all: {http}");
}
