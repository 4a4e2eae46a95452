//! Integration tests: fixtures from real projects, snapshots of the ready-made scripts,
//! property tests of the model, and real iPXE (QEMU's option ROM) running generated scripts.

use ipxe_script::{
    BuildArch, ChainScript, Command, CoreosArgs, Generation, GiveUp, HostQuery, HostScript, Ip,
    KernelArgs, Line, Magic, Platform, Retry, Script, Statement, WarningKind, Word, parse,
};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

fn fixture(path: &str) -> String {
    std::fs::read_to_string(format!("{FIXTURES}/{path}")).expect("fixture")
}

/// What the renderer should give back for a fixture: the same lines without trailing blanks.
fn normalised(text: &str) -> String {
    text.lines()
        .map(|l| format!("{}\n", l.trim_end()))
        .collect()
}

fn round_trip(text: &str) -> Script {
    let parsed = parse(text);
    let rendered = parsed.script.render();
    let again = parse(&rendered);
    assert_eq!(again.script, parsed.script, "parse -> render -> parse");
    assert_eq!(again.script.render(), rendered, "render is stable");
    parsed.script
}

mod fixtures {
    use super::*;

    const ALL: &[&str] = &[
        "ipxe/dev-scripts-dualboot.ipxe",
        "ipxe/fcos-docs-install-to-disk.ipxe",
        "ipxe/fcos-docs-live-pxe.ipxe",
        "ipxe/ironic-boot.ipxe.j2",
        "ipxe/metal3-ironic-image-inspector.ipxe",
    ];

    #[test]
    fn every_fixture_parses_and_renders_back() {
        for name in ALL {
            let text = fixture(name);
            let script = round_trip(&text);
            assert_eq!(script.magic, Magic::Ipxe, "{name}");
            assert_eq!(script.render(), normalised(&text), "{name}");
            assert!(script.undefined_labels().is_empty(), "{name}");
        }
    }

    #[test]
    fn only_the_template_warns() {
        for name in ALL {
            let warnings = parse(&fixture(name)).warnings;
            if name.ends_with(".j2") {
                let lines: Vec<_> = warnings.iter().map(|w| (w.line, w.kind.clone())).collect();
                assert_eq!(
                    lines,
                    vec![(8, WarningKind::Template), (11, WarningKind::Template)]
                );
            } else {
                assert!(warnings.is_empty(), "{name}: {warnings:?}");
            }
        }
    }

    fn statements(script: &Script) -> Vec<&Statement> {
        script
            .lines
            .iter()
            .filter_map(|l| match l {
                Line::Statement(s) => Some(s),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn commands_are_typed() {
        let inspector = parse(&fixture("ipxe/metal3-ironic-image-inspector.ipxe")).script;
        let st = statements(&inspector);
        let Command::Kernel(kernel) = &st[2].first else {
            panic!("not a kernel line: {:?}", st[2]);
        };
        assert_eq!(kernel.timeout_ms, Some(60000));
        assert!(kernel.args.contains(&Word::new("BOOTIF=${mac}").unwrap()));
        assert_eq!(st[2].rest.len(), 1);
        assert!(matches!(st[1].first, Command::Imgfree { image: None }));

        let dualboot = parse(&fixture("ipxe/dev-scripts-dualboot.ipxe")).script;
        let st = statements(&dualboot);
        assert!(matches!(&st[0].first, Command::Set { value, .. } if value[0].as_str() == "-1"));
        assert!(matches!(&st[1].first, Command::Inc { by: None, .. }));
        assert!(
            matches!(&st[2].first, Command::Isset { value } if value.as_str() == "${net${netid}/mac}")
        );
        assert_eq!(st[2].rest.len(), 2);
        assert!(matches!(
            st.last().unwrap().first,
            Command::Reboot { warm: false }
        ));
    }

    fn kernel_args(script: &Script) -> String {
        for s in statements(script) {
            if let Command::Kernel(k) = &s.first {
                let args: Vec<_> = k.args.iter().map(Word::as_str).collect();
                return args.join(" ");
            }
        }
        panic!("no kernel line");
    }

    /// The builder writes exactly what Fedora CoreOS's docs write (after `initrd=main`).
    #[test]
    fn builder_matches_fcos_docs() {
        let base = "${BASEURL}/fedora-coreos-${VERSION}";
        let rootfs = format!("{base}-live-rootfs.x86_64.img");

        let docs = kernel_args(&parse(&fixture("ipxe/fcos-docs-install-to-disk.ipxe")).script);
        let built = CoreosArgs::live_install(&rootfs, "${INSTALLDEV}", "${CONFIGURL}")
            .build()
            .unwrap();
        assert_eq!(docs, format!("initrd=main {built}"));

        let docs = kernel_args(&parse(&fixture("ipxe/fcos-docs-live-pxe.ipxe")).script);
        let built = CoreosArgs::live_boot(&rootfs, "${CONFIGURL}")
            .build()
            .unwrap();
        assert_eq!(docs, format!("initrd=main {built}"));
    }

    fn append_line(cfg: &str) -> KernelArgs {
        let line = cfg
            .lines()
            .find_map(|l| l.trim().strip_prefix("APPEND "))
            .expect("APPEND line");
        KernelArgs::parse(line).unwrap()
    }

    fn sorted_without_initrd(args: &KernelArgs) -> Vec<String> {
        let mut v: Vec<String> = args
            .iter()
            .filter(|a| a.key() != "initrd")
            .map(|a| a.to_string())
            .collect();
        v.sort();
        v
    }

    /// The builder's legacy form has every argument of the legacy installer's documented APPEND.
    #[test]
    fn builder_matches_legacy_pxelinux() {
        let cfg = append_line(&fixture(
            "coreos-installer/pxelinux-legacy-installer-coreos-inst-yes.cfg",
        ));
        let built = CoreosArgs {
            network: Some(Ip::Dhcp),
            consoles: vec!["tty0".into(), "ttyS0".into()],
            ..CoreosArgs::legacy_install(
                "/dev/sda",
                "http://192.168.1.101:8000/fedora-coreos-30.20190801.0-metal.raw.xz",
                "http://192.168.1.101:8000/config.ign",
            )
        }
        .build()
        .unwrap();
        assert_eq!(sorted_without_initrd(&built), sorted_without_initrd(&cfg));
    }

    /// The live form writes the install arguments the current docs use (`/dev/sda`).
    #[test]
    fn builder_matches_live_pxelinux() {
        let cfg = append_line(&fixture("coreos-installer/pxelinux-live-current.cfg"));
        let built = CoreosArgs::live_install(
            "http://192.168.1.101:8000/rootfs.img",
            "sda",
            "http://192.168.1.101:8000/config.ign",
        )
        .build()
        .unwrap();
        for key in ["coreos.inst.install_dev", "coreos.inst.ignition_url"] {
            assert_eq!(built.get(key), cfg.get(key), "{key}");
        }
    }
}

mod snapshots {
    use super::*;

    const SERVER: &str = "http://172.22.0.1:8080";

    fn word(s: &str) -> Word {
        Word::new(s).unwrap()
    }

    /// Renders, checks the script is self-consistent and parses back, and returns the text.
    fn text(script: Script) -> String {
        assert!(script.undefined_labels().is_empty());
        let rendered = script.render();
        let parsed = parse(&rendered);
        assert!(parsed.warnings.is_empty(), "{:?}", parsed.warnings);
        assert_eq!(parsed.script, script);
        rendered
    }

    #[test]
    fn chain() {
        let chain = ChainScript::per_host(&format!("{SERVER}/ipxe")).unwrap();
        insta::assert_snapshot!("chain", text(chain.script().unwrap()));
    }

    #[test]
    fn chain_reboots_when_giving_up() {
        let chain = ChainScript {
            retry: Retry {
                attempts: 3,
                delay_secs: 10,
                give_up: GiveUp::Reboot,
            },
            ..ChainScript::per_host(&format!("{SERVER}/ipxe?cluster=ocp")).unwrap()
        };
        insta::assert_snapshot!("chain_reboot", text(chain.script().unwrap()));
    }

    #[test]
    fn legacy_install() {
        let args = CoreosArgs {
            network: Some(Ip::Dhcp),
            consoles: vec!["tty0".into(), "ttyS0".into()],
            ..CoreosArgs::legacy_install(
                "sda",
                &format!("{SERVER}/rhcos-4.1.0-x86_64-metal-bios.raw.gz"),
                &format!("{SERVER}/ignition?mac=${{mac:hexhyp}}"),
            )
        }
        .build()
        .unwrap();
        let boot = HostScript::new(
            word(&format!("{SERVER}/rhcos-4.1.0-x86_64-installer-kernel")),
            word(&format!(
                "{SERVER}/rhcos-4.1.0-x86_64-installer-initramfs.img"
            )),
            args,
        );
        insta::assert_snapshot!("legacy_install", text(boot.script().unwrap()));
    }

    #[test]
    fn live_install() {
        let args = CoreosArgs {
            consoles: vec!["tty0".into(), "ttyS0,115200n8".into()],
            ..CoreosArgs::live_install(
                &format!("{SERVER}/rhcos-live-rootfs.x86_64.img"),
                "/dev/sda",
                &format!("{SERVER}/ignition?mac=${{mac:hexhyp}}"),
            )
        }
        .build()
        .unwrap();
        let boot = HostScript::new(
            word(&format!("{SERVER}/rhcos-live-kernel-x86_64")),
            word(&format!("{SERVER}/rhcos-live-initramfs.x86_64.img")),
            args,
        );
        insta::assert_snapshot!("live_install", text(boot.script().unwrap()));
    }

    #[test]
    fn introspection_install() {
        let args = CoreosArgs {
            image_url: Some(format!("{SERVER}/rhcos-metal.x86_64.raw.gz")),
            network: Some(Ip::Dhcp),
            consoles: vec!["ttyS0".into()],
            ..CoreosArgs::introspection(
                Generation::Legacy,
                "/dev/sda",
                &format!("{SERVER}/introspection"),
            )
        }
        .build()
        .unwrap();
        assert_eq!(args.get("coreos.inst.ignition_url"), None);
        let boot = HostScript {
            retry: Retry {
                give_up: GiveUp::Poweroff,
                ..Retry::default()
            },
            ..HostScript::new(
                word(&format!("{SERVER}/rhcos-installer-kernel-x86_64")),
                word(&format!("{SERVER}/rhcos-installer-initramfs.x86_64.img")),
                args,
            )
        };
        insta::assert_snapshot!("introspection_install", text(boot.script().unwrap()));
    }

    #[test]
    fn live_boot() {
        let args = CoreosArgs::live_boot(
            &format!("{SERVER}/rhcos-live-rootfs.x86_64.img"),
            &format!("{SERVER}/ignition?mac=${{mac:hexhyp}}"),
        )
        .build()
        .unwrap();
        let boot = HostScript::new(
            word(&format!("{SERVER}/rhcos-live-kernel-x86_64")),
            word(&format!("{SERVER}/rhcos-live-initramfs.x86_64.img")),
            args,
        );
        insta::assert_snapshot!("live_boot", text(boot.script().unwrap()));
    }

    #[test]
    fn no_attempts_is_an_error() {
        let mut chain = ChainScript::per_host(SERVER).unwrap();
        chain.retry.attempts = 0;
        assert_eq!(chain.script(), Err(ipxe_script::Error::NoAttempts));
        assert!(ChainScript::per_host("http://x/a b").is_err());
    }
}

mod properties {
    use super::*;
    use ipxe_script::{CommandName, Comment, Image, Label, NetConfig, Op, RawLine, Text};
    use proptest::prelude::*;

    fn word() -> impl Strategy<Value = Word> {
        (
            "[a-z0-9][a-zA-Z0-9_./:=-]{0,6}",
            proptest::option::of("[a-z]{1,4}(/mac)?(:hexhyp)?"),
        )
            .prop_map(|(w, s)| match s {
                Some(s) => Word::new(format!("{w}${{{s}}}")).unwrap(),
                None => Word::new(w).unwrap(),
            })
    }

    fn words(max: usize) -> impl Strategy<Value = Vec<Word>> {
        proptest::collection::vec(word(), 0..max)
    }

    fn image() -> impl Strategy<Value = Image> {
        (
            proptest::option::of(word()),
            proptest::option::of(0u64..100_000),
            any::<bool>(),
            any::<bool>(),
            word(),
            words(4),
        )
            .prop_map(|(name, timeout_ms, autofree, replace, uri, args)| Image {
                name,
                timeout_ms,
                autofree,
                replace,
                uri,
                args,
            })
    }

    fn text() -> impl Strategy<Value = Text> {
        words(4).prop_map(|w| Text::from_words(w).unwrap())
    }

    fn net() -> impl Strategy<Value = NetConfig> {
        (
            proptest::option::of(word()),
            proptest::option::of(0u64..100_000),
            words(3),
        )
            .prop_map(|(configurator, timeout_ms, interfaces)| NetConfig {
                configurator,
                timeout_ms,
                interfaces,
            })
    }

    const KNOWN: &[&str] = &[
        "set", "clear", "inc", "kernel", "initrd", "chain", "boot", "imgargs", "imgfree", "goto",
        "isset", "iseq", "echo", "sleep", "dhcp", "ifconf", "prompt", "reboot", "poweroff", "exit",
    ];

    fn command() -> impl Strategy<Value = Command> {
        prop_oneof![
            (word(), words(3)).prop_map(|(name, value)| Command::Set { name, value }),
            word().prop_map(|name| Command::Clear { name }),
            (word(), proptest::option::of(word())).prop_map(|(name, by)| Command::Inc { name, by }),
            image().prop_map(Command::Kernel),
            image().prop_map(Command::Initrd),
            image().prop_map(Command::Chain),
            proptest::option::of(word()).prop_map(|image| Command::Boot { image }),
            (word(), words(3)).prop_map(|(image, args)| Command::Imgargs { image, args }),
            proptest::option::of(word()).prop_map(|image| Command::Imgfree { image }),
            word().prop_map(|label| Command::Goto { label }),
            word().prop_map(|value| Command::Isset { value }),
            (word(), word()).prop_map(|(left, right)| Command::Iseq { left, right }),
            (any::<bool>(), text())
                .prop_map(|(no_newline, text)| Command::Echo { no_newline, text }),
            any::<u32>().prop_map(|seconds| Command::Sleep { seconds }),
            net().prop_map(Command::Dhcp),
            net().prop_map(Command::Ifconf),
            (
                proptest::option::of(word()),
                proptest::option::of(0u64..1000),
                text()
            )
                .prop_map(|(key, timeout_ms, text)| Command::Prompt {
                    key,
                    timeout_ms,
                    text
                }),
            any::<bool>().prop_map(|warm| Command::Reboot { warm }),
            Just(Command::Poweroff),
            proptest::option::of(any::<u32>()).prop_map(|status| Command::Exit { status }),
            ("[a-z]{2,8}", words(4))
                .prop_filter("not a modelled command", |(n, _)| !KNOWN
                    .contains(&n.as_str()))
                .prop_map(|(n, args)| Command::Other {
                    name: CommandName::new(n).unwrap(),
                    args
                }),
        ]
    }

    fn comment() -> impl Strategy<Value = Comment> {
        "( [a-z0-9#!:]{1,5}){0,3}".prop_map(|c| Comment::new(c).unwrap())
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![Just(Op::And), Just(Op::Or), Just(Op::Then)]
    }

    fn statement() -> impl Strategy<Value = Statement> {
        (
            command(),
            proptest::collection::vec((op(), command()), 0..3),
            any::<bool>(),
            proptest::option::of(comment()),
        )
            .prop_map(|(first, rest, ignore_failure, comment)| Statement {
                first,
                rest,
                ignore_failure,
                comment,
            })
    }

    fn line() -> impl Strategy<Value = Line> {
        prop_oneof![
            Just(Line::Blank),
            comment().prop_map(Line::Comment),
            "[a-z_][a-z0-9_.-]{0,8}".prop_map(|l| Line::Label(Label::new(l).unwrap())),
            statement().prop_map(Line::Statement),
            "[a-z]{1,6}".prop_map(|t| Line::Raw(RawLine::new(format!("{{{{ {t} }}}}")).unwrap())),
        ]
    }

    fn script() -> impl Strategy<Value = Script> {
        (
            prop_oneof![Just(Magic::Ipxe), Just(Magic::Gpxe)],
            proptest::collection::vec(line(), 0..12),
        )
            .prop_map(|(magic, lines)| Script { magic, lines })
    }

    proptest! {
        #[test]
        fn model_round_trips(script in script()) {
            let rendered = script.render();
            let parsed = parse(&rendered);
            prop_assert_eq!(&parsed.script, &script, "rendered:\n{}", rendered);
        }

        /// Any text at all: the parser never panics, and its result is a fixed point.
        #[test]
        fn parser_is_idempotent(input in "[ a-z#:${}|&;\\\\\n\r\t-]{0,80}") {
            let first = parse(&input).script;
            let rendered = first.render();
            let second = parse(&rendered).script;
            prop_assert_eq!(&second, &first, "rendered:\n{}", rendered);
        }

        /// Whatever a token is, it is either refused or survives a render and parse unchanged.
        #[test]
        fn accepted_words_survive(raw in "[ a-z#:${}|&;\\\\\t\"-]{1,12}") {
            if let Ok(w) = Word::new(raw.clone()) {
                let st = Statement::new(Command::Set { name: Word::new("x").unwrap(), value: vec![w.clone()] });
                let mut s = Script::new();
                s.push(st);
                let parsed = parse(&s.render()).script;
                prop_assert_eq!(parsed, s);
            }
        }
    }
}

/// Real iPXE: QEMU's virtio-net option ROM (BIOS, or its EFI driver under OVMF) fetches the
/// generated `boot.ipxe` over slirp's built-in TFTP, chains to a per-host URL served by this test
/// on 127.0.0.1 (the guest sees the host as 10.0.2.2; slirp is QEMU-internal and touches no real
/// interface), and runs the per-host script. Where a kernel boots, it is the Debian kernel with a
/// busybox initramfs whose `/init` prints `/proc/cmdline` and powers off.
mod qemu {
    use super::*;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command as Process, Stdio};
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex, mpsc};
    use std::time::{Duration, Instant};

    /// One VM at a time: the machine has two cores and TCG is CPU-bound.
    static ONE_VM: Mutex<()> = Mutex::new(());
    static RUN: AtomicUsize = AtomicUsize::new(0);

    const MAC: &str = "52:54:00:12:34:56";
    const UUID: &str = "1b4e28ba-2fa1-11d2-883f-0016d3cca427";
    const CMDLINE_MARKER: &str = "IPXE-SCRIPT-CMDLINE:";
    const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
    const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";

    #[derive(Clone, Copy, PartialEq, Eq, Debug)]
    enum Firmware {
        Bios,
        Uefi,
    }

    /// Kills QEMU, stops the HTTP thread and removes the temp dir, even when the test fails.
    struct Guard {
        child: Option<Child>,
        dir: PathBuf,
        stop: Arc<AtomicBool>,
    }

    impl Drop for Guard {
        fn drop(&mut self) {
            if let Some(child) = &mut self.child {
                let _ = child.kill();
                let _ = child.wait();
            }
            self.stop.store(true, Ordering::SeqCst);
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    /// Whether a prerequisite is missing: prints why, or panics under `CI=true`.
    fn missing(why: &str) -> bool {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("prerequisite missing in CI: {why}");
        }
        eprintln!("skipping: {why}");
        true
    }

    fn on_path(bin: &str) -> bool {
        std::env::var_os("PATH")
            .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(bin).is_file()))
    }

    fn kernel_path() -> Option<PathBuf> {
        let mut kernels: Vec<PathBuf> = std::fs::read_dir("/boot")
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
            })
            .collect();
        kernels.sort();
        kernels.pop()
    }

    /// The prerequisites of a scenario, or `None` (after printing why) to skip it.
    fn prerequisites(firmware: Firmware, needs_kernel: bool) -> Option<Option<PathBuf>> {
        if !on_path("qemu-system-x86_64") && missing("qemu-system-x86_64 is not installed") {
            return None;
        }
        if !Path::new("/usr/lib/ipxe/qemu/efi-virtio.rom").exists()
            && missing("QEMU's iPXE ROM (package ipxe-qemu) is not installed")
        {
            return None;
        }
        if firmware == Firmware::Uefi
            && !(Path::new(OVMF_CODE).exists() && Path::new(OVMF_VARS).exists())
            && missing("OVMF (package ovmf) is not installed")
        {
            return None;
        }
        if !needs_kernel {
            return Some(None);
        }
        let kernel = kernel_path();
        if kernel.is_none() && missing("no /boot/vmlinuz-* (package linux-image-amd64)") {
            return None;
        }
        if !Path::new("/bin/busybox").exists()
            && missing("no /bin/busybox (package busybox-static)")
        {
            return None;
        }
        Some(kernel)
    }

    /// One cpio entry: path, mode, contents, and the (major, minor) of a device node.
    type Entry<'a> = (&'a str, u32, &'a [u8], (u32, u32));

    /// A newc cpio archive, as the kernel unpacks an initramfs.
    fn cpio(entries: &[Entry<'_>]) -> Vec<u8> {
        fn pad(out: &mut Vec<u8>) {
            while !out.len().is_multiple_of(4) {
                out.push(0);
            }
        }
        let mut out = Vec::new();
        let trailer: Entry<'_> = ("TRAILER!!!", 0, &[], (0, 0));
        for (ino, (name, mode, data, (major, minor))) in
            entries.iter().chain(std::iter::once(&trailer)).enumerate()
        {
            let fields = [
                ino as u32 + 1,
                *mode,
                0,
                0,
                1,
                0,
                data.len() as u32,
                0,
                0,
                *major,
                *minor,
                name.len() as u32 + 1,
                0,
            ];
            out.extend_from_slice(b"070701");
            for f in fields {
                out.extend_from_slice(format!("{f:08x}").as_bytes());
            }
            out.extend_from_slice(name.as_bytes());
            out.push(0);
            pad(&mut out);
            out.extend_from_slice(data);
            pad(&mut out);
        }
        out
    }

    fn initramfs() -> Vec<u8> {
        let busybox = std::fs::read("/bin/busybox").expect("read /bin/busybox");
        let init = format!(
            "#!/bin/busybox sh\n/bin/busybox mount -t proc proc /proc\n\
             echo \"{CMDLINE_MARKER} $(/bin/busybox cat /proc/cmdline)\"\n\
             /bin/busybox poweroff -f\n"
        );
        cpio(&[
            ("dev", 0o040755, b"", (0, 0)),
            ("dev/console", 0o020600, b"", (5, 1)),
            ("proc", 0o040755, b"", (0, 0)),
            ("bin", 0o040755, b"", (0, 0)),
            ("bin/busybox", 0o100755, &busybox, (0, 0)),
            ("init", 0o100755, init.as_bytes(), (0, 0)),
        ])
    }

    type Responder = Box<dyn Fn(&str, usize) -> (u16, Vec<u8>) + Send>;

    /// A tiny HTTP server: answers each request through `respond` (given the target and how
    /// many times it has been asked for), and logs the targets.
    fn serve(
        listener: TcpListener,
        stop: Arc<AtomicBool>,
        log: Arc<Mutex<Vec<String>>>,
        respond: Responder,
    ) {
        listener.set_nonblocking(true).unwrap();
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let (mut conn, _) = match listener.accept() {
                    Ok(c) => c,
                    Err(_) => {
                        std::thread::sleep(Duration::from_millis(20));
                        continue;
                    }
                };
                let _ = conn.set_nonblocking(false);
                let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut chunk) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&buf);
                let target = head.split_whitespace().nth(1).unwrap_or("").to_owned();
                let n = {
                    let mut l = log.lock().unwrap();
                    l.push(target.clone());
                    l.iter().filter(|t| *t == &target).count()
                };
                let (status, body) = respond(&target, n);
                let reason = if status == 200 { "OK" } else { "Error" };
                let head = format!(
                    "HTTP/1.1 {status} {reason}\r\nContent-Type: application/octet-stream\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = conn.write_all(head.as_bytes());
                let _ = conn.write_all(&body);
            }
        });
    }

    struct Outcome {
        serial: String,
        requests: Vec<String>,
        found: bool,
    }

    /// Boots one VM with `boot.ipxe` (a [`ChainScript`] to `/ipxe?...`) and the given per-host
    /// script, until a serial line contains `until`.
    ///
    /// The first `/ipxe` fetch answers 503, to exercise the entry script's retry. The first
    /// request for `/kernel` answers 404 when `kernel_fails_once`.
    fn run(
        firmware: Firmware,
        kernel: Option<PathBuf>,
        host_script: impl Fn(&str) -> Script,
        kernel_fails_once: bool,
        until: &str,
    ) -> Outcome {
        let _one = ONE_VM.lock().unwrap_or_else(|e| e.into_inner());
        let dir = std::env::temp_dir().join(format!(
            "ipxe-script-qemu-{}-{}",
            std::process::id(),
            RUN.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let mut guard = Guard {
            child: None,
            dir: dir.clone(),
            stop: stop.clone(),
        };

        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = format!("http://10.0.2.2:{port}");

        let chain = ChainScript {
            retry: Retry {
                attempts: 3,
                delay_secs: 1,
                give_up: GiveUp::Exit,
            },
            ..ChainScript::per_host(&format!("{server}/ipxe")).unwrap()
        };
        std::fs::write(dir.join("boot.ipxe"), chain.script().unwrap().render()).unwrap();

        let host = host_script(&server).render().into_bytes();
        let kernel = kernel.map(|k| std::fs::read(k).expect("read kernel"));
        let initrd = kernel.as_ref().map(|_| initramfs());
        let log = Arc::new(Mutex::new(Vec::new()));
        serve(
            listener,
            stop.clone(),
            log.clone(),
            Box::new(move |target, n| {
                let found = |body: &Option<Vec<u8>>| match body {
                    Some(b) => (200, b.clone()),
                    None => (404, b"not found\n".to_vec()),
                };
                if target.starts_with("/ipxe?") {
                    if n == 1 {
                        (503, b"not ready\n".to_vec())
                    } else {
                        (200, host.clone())
                    }
                } else if target == "/kernel" {
                    if kernel_fails_once && n == 1 {
                        (404, b"not yet\n".to_vec())
                    } else {
                        found(&kernel)
                    }
                } else if target == "/initrd" {
                    found(&initrd)
                } else {
                    (404, b"not found\n".to_vec())
                }
            }),
        );

        let netdev = format!(
            "user,id=n0,tftp={},bootfile=boot.ipxe,ipv6=off",
            dir.display()
        );
        let mut qemu = Process::new("qemu-system-x86_64");
        qemu.args(["-machine", "pc", "-accel", "tcg", "-m", "256", "-nographic"])
            .args(["-no-reboot", "-uuid", UUID, "-netdev", &netdev])
            .args([
                "-device",
                &format!("virtio-net-pci,netdev=n0,mac={MAC},bootindex=1"),
            ]);
        if firmware == Firmware::Uefi {
            let vars = dir.join("vars.fd");
            std::fs::copy(OVMF_VARS, &vars).unwrap();
            qemu.args([
                "-drive",
                &format!("if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE}"),
                "-drive",
                &format!("if=pflash,format=raw,unit=1,file={}", vars.display()),
            ]);
        } else {
            qemu.args(["-boot", "n"]);
        }
        let mut child = qemu
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start qemu");
        let stdout = child.stdout.take().unwrap();
        guard.child = Some(child);

        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).split(b'\n') {
                let Ok(line) = line else { break };
                if tx
                    .send(String::from_utf8_lossy(&line).into_owned())
                    .is_err()
                {
                    break;
                }
            }
        });

        // A bound on a hang, not a performance threshold: TCG reaches the marker well before.
        let deadline = Instant::now() + Duration::from_secs(300);
        let mut serial = Vec::new();
        let mut found = false;
        while Instant::now() < deadline && !found {
            match rx.recv_timeout(Duration::from_secs(1)) {
                Ok(line) => {
                    found = line.contains(until);
                    serial.push(line);
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        let requests = log.lock().unwrap().clone();
        drop(guard);
        Outcome {
            serial: serial.join("\n"),
            requests,
            found,
        }
    }

    fn boot(server: &str, args: KernelArgs, retry: Retry) -> Script {
        HostScript {
            retry,
            ..HostScript::new(
                Word::new(format!("{server}/kernel")).unwrap(),
                Word::new(format!("{server}/initrd")).unwrap(),
                args,
            )
        }
        .script()
        .unwrap()
    }

    fn check_identity(out: &Outcome, firmware: Firmware) {
        let fetches: Vec<_> = out
            .requests
            .iter()
            .filter(|t| t.starts_with("/ipxe?"))
            .collect();
        assert_eq!(fetches.len(), 2, "requests: {:?}", out.requests);
        let query = fetches[0].split_once('?').map_or("", |(_, q)| q);
        // The pairs as our HTTP server decodes them.
        let params = pxe_stack::route::Params::parse(query).unwrap();
        let host = HostQuery::from_pairs(params.iter());
        assert_eq!(host.mac.as_deref(), Some("52-54-00-12-34-56"), "{query}");
        assert_eq!(host.uuid.as_deref(), Some(UUID), "{query}");
        let (platform, arches): (Platform, &[BuildArch]) = match firmware {
            Firmware::Bios => (Platform::Pcbios, &[BuildArch::I386, BuildArch::X86_64]),
            Firmware::Uefi => (Platform::Efi, &[BuildArch::X86_64]),
        };
        assert_eq!(host.platform, Some(platform), "{query}");
        assert!(host.arch.is_some_and(|a| arches.contains(&a)), "{query}");
        // The entry script's message on the console, with the counter expanded by iPXE.
        assert!(
            out.serial
                .contains("rhcos-metal: fetching the host script failed (attempt 1 of 3)"),
            "serial:\n{}",
            out.serial
        );
    }

    /// The kernel command line Linux saw, from the initramfs's marker line.
    fn cmdline(out: &Outcome) -> String {
        out.serial
            .lines()
            .find_map(|l| {
                l.split_once(CMDLINE_MARKER)
                    .map(|(_, c)| c.trim().to_owned())
            })
            .unwrap_or_default()
    }

    #[test]
    fn root_qemu_bios_retries_then_gives_up() {
        let Some(_) = prerequisites(Firmware::Bios, false) else {
            return;
        };
        // Debian's iPXE has no `poweroff`: the script must go on to its fallback.
        let done = "this iPXE cannot power off, exiting to the next boot device";
        let out = run(
            Firmware::Bios,
            None,
            |server| {
                let args = CoreosArgs::live_install(
                    &format!("{server}/rootfs.img"),
                    "/dev/vda",
                    &format!("{server}/ignition"),
                )
                .build()
                .unwrap();
                let retry = Retry {
                    attempts: 2,
                    delay_secs: 0,
                    give_up: GiveUp::Poweroff,
                };
                boot(server, args, retry)
            },
            false,
            done,
        );
        assert!(
            out.found,
            "serial:\n{}\nrequests: {:?}",
            out.serial, out.requests
        );
        check_identity(&out, Firmware::Bios);
        assert!(
            out.serial
                .contains("loading the kernel and initramfs (attempt 2 of 2)")
        );
        assert!(
            out.serial
                .contains("booting failed 2 times, giving up: powering off")
        );
        let kernels = out.requests.iter().filter(|t| *t == "/kernel").count();
        assert_eq!(kernels, 2, "requests: {:?}", out.requests);
    }

    /// A host script that only exits (the server's "boot from disk") ends `boot.ipxe` too.
    #[test]
    fn root_qemu_bios_host_script_returns() {
        let Some(_) = prerequisites(Firmware::Bios, false) else {
            return;
        };
        let done = "rhcos-metal: the host script returned, exiting to the next boot device";
        let out = run(
            Firmware::Bios,
            None,
            |_| {
                let mut s = Script::new();
                s.push(Command::echo(
                    ipxe_script::Text::new("host script: boot from disk").unwrap(),
                ));
                s.push(Command::Exit { status: Some(0) });
                s
            },
            false,
            done,
        );
        assert!(
            out.found,
            "serial:\n{}\nrequests: {:?}",
            out.serial, out.requests
        );
        check_identity(&out, Firmware::Bios);
        assert!(out.serial.contains("host script: boot from disk"));
        assert!(
            !out.serial
                .contains("fetching the host script failed (attempt 2 of 3)")
        );
    }

    #[test]
    fn root_qemu_bios_boots_kernel_with_legacy_args() {
        let Some(kernel) = prerequisites(Firmware::Bios, true) else {
            return;
        };
        let out = run(
            Firmware::Bios,
            kernel,
            |server| {
                let args = CoreosArgs {
                    consoles: vec!["ttyS0".into()],
                    ..CoreosArgs::legacy_install(
                        "/dev/sda",
                        &format!("{server}/metal.raw.gz"),
                        &format!("{server}/ignition?mac=${{mac:hexhyp}}"),
                    )
                }
                .build()
                .unwrap();
                boot(server, args, Retry::default())
            },
            true,
            CMDLINE_MARKER,
        );
        assert!(
            out.found,
            "serial:\n{}\nrequests: {:?}",
            out.serial, out.requests
        );
        check_identity(&out, Firmware::Bios);
        let cmdline = cmdline(&out);
        eprintln!("the kernel saw: {cmdline}");
        assert!(
            cmdline
                .contains("initrd=main console=ttyS0 coreos.inst=yes coreos.inst.install_dev=sda"),
            "{cmdline}"
        );
        // iPXE expanded ${mac:hexhyp} before handing the line to the kernel.
        assert!(
            cmdline.contains("/ignition?mac=52-54-00-12-34-56"),
            "{cmdline}"
        );
        // The first kernel fetch failed; the boot script's own loop fetched it again.
        assert!(
            out.serial
                .contains("rhcos-metal: booting failed (attempt 1 of 5)")
        );
    }

    #[test]
    fn root_qemu_uefi_boots_kernel_with_named_initrd() {
        let Some(kernel) = prerequisites(Firmware::Uefi, true) else {
            return;
        };
        let out = run(
            Firmware::Uefi,
            kernel,
            |server| {
                let args = CoreosArgs {
                    consoles: vec!["ttyS0".into()],
                    ..CoreosArgs::live_install(
                        &format!("{server}/rootfs.img"),
                        "/dev/vda",
                        &format!("{server}/ignition?mac=${{mac:hexhyp}}&uuid=${{uuid}}"),
                    )
                }
                .build()
                .unwrap();
                boot(server, args, Retry::default())
            },
            false,
            CMDLINE_MARKER,
        );
        // Reaching /init at all proves the EFI stub found the initrd named `main`.
        assert!(
            out.found,
            "serial:\n{}\nrequests: {:?}",
            out.serial, out.requests
        );
        check_identity(&out, Firmware::Uefi);
        let cmdline = cmdline(&out);
        eprintln!("the kernel saw: {cmdline}");
        assert!(
            cmdline.contains("initrd=main console=ttyS0 coreos.live.rootfs_url="),
            "{cmdline}"
        );
        assert!(
            cmdline.contains("coreos.inst.install_dev=/dev/vda"),
            "{cmdline}"
        );
        assert!(
            cmdline.contains(&format!("/ignition?mac=52-54-00-12-34-56&uuid={UUID}")),
            "{cmdline}"
        );
    }
}

/// The GRUB configuration of the Secure Boot path: snapshots, round trips, refusals, and GRUB's
/// own `grub-script-check` reading what we render.
mod grub {
    use ipxe_script::grub::{self, Config, NetFile, NetProtocol};
    use ipxe_script::{CoreosArgs, Error, GiveUp, KernelArgs, Problem, Retry};
    use proptest::prelude::*;

    const SERVER: &str = "http://172.22.0.1:8080";

    fn live_install() -> Config {
        let args = CoreosArgs {
            consoles: vec!["ttyS0,115200".into()],
            extra: vec![format!("rhcos_metal.report={SERVER}/report")],
            ..CoreosArgs::live_install(
                &format!("{SERVER}/rhcos-live-rootfs.x86_64.img"),
                "/dev/sda",
                &format!("{SERVER}/ignition?mac=52-54-00-12-34-56&role=worker"),
            )
        }
        .build()
        .unwrap();
        Config::new(
            NetFile::from_url(&format!("{SERVER}/rhcos-live-kernel-x86_64")).unwrap(),
            vec![NetFile::from_url(&format!("{SERVER}/rhcos-live-initramfs.x86_64.img")).unwrap()],
            args,
        )
    }

    /// Renders, checks with GRUB's own syntax checker when it is there, parses back.
    fn text(config: &Config) -> String {
        let rendered = config.render();
        assert_eq!(&grub::parse(&rendered).unwrap(), config);
        script_check(&rendered);
        rendered
    }

    /// `grub-script-check` (grub-common) reads the text with GRUB's own lexer and parser.
    fn script_check(text: &str) {
        use std::io::Write;
        let Ok(mut child) = std::process::Command::new("grub-script-check")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
        else {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "prerequisite missing in CI: grub-script-check (grub-common)"
            );
            eprintln!("skipping grub-script-check: not installed");
            return;
        };
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "grub-script-check refused:\n{text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    fn live_install_snapshot() {
        insta::assert_snapshot!("grub_live_install", text(&live_install()));
    }

    #[test]
    fn legacy_install_with_two_initrds_and_poweroff() {
        let args = CoreosArgs::legacy_install(
            "sda",
            &format!("{SERVER}/rhcos-4.1.0-x86_64-metal-bios.raw.gz"),
            &format!("{SERVER}/ignition?mac=52-54-00-12-34-56"),
        )
        .build()
        .unwrap();
        let config = Config::new(
            NetFile::new(NetProtocol::Tftp, "172.22.0.1", "/vmlinuz").unwrap(),
            vec![
                NetFile::from_url(&format!("{SERVER}/initramfs.img")).unwrap(),
                NetFile::from_url(&format!("{SERVER}/extra.cpio")).unwrap(),
            ],
            args,
        )
        .with_retry(Retry {
            attempts: 2,
            delay_secs: 0,
            give_up: GiveUp::Poweroff,
        });
        insta::assert_snapshot!("grub_legacy_two_initrds", text(&config));
    }

    #[test]
    fn values_that_would_break_the_config_are_refused() {
        let unsafe_problem = |r: Result<NetFile, Error>| match r {
            Err(Error::Unsafe { problem, .. }) => problem,
            other => panic!("accepted: {other:?}"),
        };
        assert_eq!(
            unsafe_problem(NetFile::from_url("http://a/k'; reboot; echo '")),
            Problem::SingleQuote { at: 2 }
        );
        assert_eq!(
            unsafe_problem(NetFile::from_url("http://a/ignition?mac=${mac:hexhyp}")),
            Problem::Expansion { at: 14 }
        );
        assert_eq!(
            unsafe_problem(NetFile::from_url("http://a/k\nreboot")),
            Problem::LineBreak { at: 2 }
        );
        assert_eq!(
            unsafe_problem(NetFile::from_url("http://a/k\\")),
            Problem::Backslash { at: 2 }
        );
        // GRUB 2.06 takes no port in a device name: the default one is left out.
        assert_eq!(
            NetFile::from_url("http://10.0.0.1:80/k")
                .unwrap()
                .to_string(),
            "(http,10.0.0.1)/k"
        );
        assert!(matches!(
            unsafe_problem(NetFile::from_url("ftp://a/k")),
            Problem::Character { .. }
        ));
        assert!(matches!(
            unsafe_problem(NetFile::new(NetProtocol::Http, "a,b", "/k")),
            Problem::Character { .. }
        ));
        // Kernel arguments are checked when the GRUB text is read back, too.
        let config = live_install().render();
        let tampered = config.replace("'coreos.inst.install_dev=/dev/sda'", "'a=$b'");
        assert!(matches!(
            grub::parse(&tampered),
            Err(grub::ParseError::Value { .. })
        ));
    }

    #[test]
    fn other_grub_text_is_a_typed_error_not_a_panic() {
        for text in [
            "",
            "set timeout=0\n",
            "set timeout=0\nfor attempt in ; do\n",
            "set timeout=0\nfor attempt in 2 1; do\n",
            "set timeout=0\nfor attempt in 1; do\n  echo 'unclosed\n",
            "menuentry 'x' { linux /k }\n",
            "set timeout=0 & reboot\n",
        ] {
            assert!(grub::parse(text).is_err(), "{text:?}");
        }
    }

    #[test]
    fn every_gateway_name_is_recognised() {
        for name in grub::config_names([2, 0, 0, 0, 0, 1], Some([172, 22, 0, 10].into())) {
            assert!(grub::ConfigName::parse(&name).is_some(), "{name}");
        }
    }

    fn arg() -> impl Strategy<Value = String> {
        "[a-z][a-z0-9_.]{0,8}(=[a-zA-Z0-9_./:,?&;|<>}()#=-]{0,12})?"
            .prop_filter("rd.break is refused", |a| !a.starts_with("rd.break"))
    }

    fn file() -> impl Strategy<Value = NetFile> {
        (
            prop_oneof![Just(NetProtocol::Http), Just(NetProtocol::Tftp)],
            "[a-z0-9.]{1,10}(:[0-9]{1,5})?",
            "/[a-zA-Z0-9_./?&=;#{}|-]{0,16}",
        )
            .prop_map(|(p, s, path)| NetFile::new(p, &s, &path).unwrap())
    }

    proptest! {
        #[test]
        fn any_config_parses_back(
            kernel in file(),
            initrds in proptest::collection::vec(file(), 0..3),
            args in proptest::collection::vec(arg(), 0..6),
            attempts in 1u32..12,
            delay_secs in 0u32..100,
            give_up in prop_oneof![Just(GiveUp::Exit), Just(GiveUp::Reboot), Just(GiveUp::Poweroff)],
        ) {
            let config = Config::new(kernel, initrds, KernelArgs::parse(&args.join(" ")).unwrap())
                .with_retry(Retry { attempts, delay_secs, give_up });
            let text = config.render();
            prop_assert_eq!(grub::parse(&text).unwrap(), config);
        }
    }

    #[test]
    fn grub_script_check_accepts_tricky_values() {
        let args = KernelArgs::parse("a=x;reboot b=|& c={} d=#e f=<g>").unwrap();
        let config = Config::new(
            NetFile::new(NetProtocol::Http, "10.0.0.1:80", "/k?x=1&y=2;z").unwrap(),
            vec![],
            args,
        );
        text(&config);
    }
}
