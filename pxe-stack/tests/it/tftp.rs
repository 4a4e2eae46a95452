//! The TFTP server against real clients: tftp-hpa's `tftp`, `atftp` (including its RFC 7440
//! `windowsize` option, which the 0.8.0 Debian package has) and curl, plus a small RFC 7440
//! client written here for what is easier to check from inside: the window across the block
//! number wraparound at blksize 512, the server's cap on the window, and transfers held half-open.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use pxe_stack::TransferStatus;
use pxe_stack::tftp::{Config, Server};
use pxe_stack::{Event, EventKind, Mac, Protocol, Recorder};

use crate::common::have;
use crate::loopback::{Background, OneHost, pattern};

/// A running server on 127.0.0.1 with a temp root; stops and cleans up on drop.
struct Running {
    addr: SocketAddr,
    root: PathBuf,
    events: Recorder,
    /// Before `_dir`: the server stops before its root is removed.
    _server: Background,
    _dir: tempfile::TempDir,
}

impl Running {
    fn start(tweak: impl FnOnce(&mut Config, &Path)) -> Running {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir(&root).unwrap();
        std::fs::write(dir.path().join("secret"), b"outside the root\n").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret"), root.join("escape")).unwrap();
        std::fs::write(root.join("small.bin"), pattern(3000)).unwrap();
        let mut config = Config::default();
        config.root = Some(root.clone());
        config.files.insert(
            "mem/boot.ipxe".into(),
            Bytes::from_static(b"#!ipxe\nshell\n"),
        );
        config.generator = Some(Arc::new(
            |path: &str, _peer: SocketAddr, mac: Option<Mac>| {
                (path == "host.ipxe").then(|| {
                    Bytes::from(format!(
                        "#!ipxe\necho {}\n",
                        mac.map(|m| m.hexhyp()).unwrap_or_default()
                    ))
                })
            },
        ));
        config.timeout = Duration::from_secs(1);
        tweak(&mut config, &root);
        let events = Recorder::new();
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = socket.local_addr().unwrap();
        let server = Server::new(config)
            .with_lookup(Arc::new(OneHost("52:54:00:00:00:01".parse().unwrap())))
            .with_events(Arc::new(events.clone()));
        Running {
            addr,
            root,
            events,
            _server: Background::spawn(
                tokio::runtime::Builder::new_current_thread(),
                move |shutdown| server.serve(socket, shutdown),
            ),
            _dir: dir,
        }
    }

    fn port(&self) -> String {
        self.addr.port().to_string()
    }

    /// Waits (up to a generous bound, not a performance threshold) for an event on `path`.
    fn event_for(&self, path: &str) -> Event {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(e) = self
                .events
                .events()
                .into_iter()
                .find(|e| matches!(&e.kind, EventKind::Transfer { path: p, .. } if p == path))
            {
                return e;
            }
            assert!(
                Instant::now() < deadline,
                "no event for {path}: {:?}",
                self.events.events()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("run client");
    eprintln!(
        "{cmd:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn transfer(e: &Event) -> (u64, TransferStatus) {
    match &e.kind {
        EventKind::Transfer {
            protocol: Protocol::Tftp,
            bytes,
            status,
            ..
        } => (*bytes, *status),
        k => panic!("not a tftp transfer: {k:?}"),
    }
}

#[test]
fn tftp_hpa_gets_files_from_root_memory_and_generator() {
    if !have(&["tftp"]) {
        return;
    }
    let srv = Running::start(|_, _| {});
    let out_dir = tempfile::tempdir().unwrap();
    for (remote, expected) in [
        ("small.bin", pattern(3000)),
        ("mem/boot.ipxe", b"#!ipxe\nshell\n".to_vec()),
        ("host.ipxe", b"#!ipxe\necho 52-54-00-00-00-01\n".to_vec()),
    ] {
        let local = out_dir.path().join("out");
        let out = run(Command::new("tftp")
            .args([
                "-m",
                "binary",
                "127.0.0.1",
                &srv.port(),
                "-c",
                "get",
                remote,
            ])
            .arg(&local));
        assert!(out.status.success());
        assert_eq!(std::fs::read(&local).unwrap(), expected, "{remote}");
        let e = srv.event_for(remote.trim_start_matches("./"));
        assert_eq!(
            transfer(&e),
            (expected.len() as u64, TransferStatus::TftpComplete)
        );
        assert_eq!(e.mac, Some("52:54:00:00:00:01".parse().unwrap()));
    }
}

#[test]
fn a_changed_file_is_served_as_it_is_now_not_as_it_was_shared() {
    if !have(&["tftp"]) {
        return;
    }
    let srv = Running::start(|_, _| {});
    let out_dir = tempfile::tempdir().unwrap();
    let local = out_dir.path().join("out");
    let get = || {
        let out = run(Command::new("tftp")
            .args(["-m", "binary", "127.0.0.1", &srv.port(), "-c", "get"])
            .arg("boot.efi")
            .arg(&local));
        assert!(out.status.success());
        std::fs::read(&local).unwrap()
    };
    let target = srv.root.join("boot.efi");
    std::fs::write(&target, b"first version").unwrap();
    assert_eq!(get(), b"first version");
    assert_eq!(get(), b"first version", "served again from the shared copy");

    // Replaced by rename, as installers update boot loaders: another inode.
    let staged = srv.root.join("boot.efi.new");
    std::fs::write(&staged, b"second version, longer").unwrap();
    std::fs::rename(&staged, &target).unwrap();
    assert_eq!(get(), b"second version, longer");

    // Rewritten in place with the same length: another modification time.
    std::fs::write(&target, b"third  version, longer").unwrap();
    let f = std::fs::File::options().write(true).open(&target).unwrap();
    f.set_modified(std::time::SystemTime::now() + Duration::from_secs(5))
        .unwrap();
    drop(f);
    assert_eq!(get(), b"third  version, longer");
}

#[test]
fn atftp_negotiates_blksize_and_tsize_and_cannot_write() {
    if !have(&["atftp"]) {
        return;
    }
    let srv =
        Running::start(|_, root| std::fs::write(root.join("big.bin"), pattern(200_000)).unwrap());
    let out_dir = tempfile::tempdir().unwrap();
    let local = out_dir.path().join("big");
    let out = run(Command::new("atftp")
        .args([
            "--trace",
            "--option",
            "blksize 1468",
            "--option",
            "tsize 0",
            "-g",
            "-r",
            "big.bin",
            "-l",
        ])
        .arg(&local)
        .args(["127.0.0.1", &srv.port()]));
    assert!(out.status.success());
    let log =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("received OACK <tsize: 200000, blksize: 1468"),
        "{log}"
    );
    assert_eq!(std::fs::read(&local).unwrap(), pattern(200_000));
    assert_eq!(
        transfer(&srv.event_for("big.bin")),
        (200_000, TransferStatus::TftpComplete)
    );

    // Writes are refused with "illegal operation" and nothing appears in the root.
    let out = run(Command::new("atftp")
        .args(["-p", "-r", "upload.bin", "-l"])
        .arg(&local)
        .args(["127.0.0.1", &srv.port()]));
    assert!(!out.status.success());
    assert!(!srv.root.join("upload.bin").exists());
    assert_eq!(
        transfer(&srv.event_for("upload.bin")),
        (0, TransferStatus::TftpRefused(4))
    );
}

/// atftp (0.8.0 in Debian) speaks RFC 7440: a real client negotiates `windowsize` and fetches a
/// few MiB, acknowledging once per window.
#[test]
fn atftp_negotiates_windowsize_and_gets_the_file() {
    if !have(&["atftp"]) {
        return;
    }
    let len = 3 * 1024 * 1024 + 777;
    let srv = Running::start(|_, root| std::fs::write(root.join("win.bin"), pattern(len)).unwrap());
    let out_dir = tempfile::tempdir().unwrap();
    let local = out_dir.path().join("win");
    let out = run(Command::new("atftp")
        .args([
            "--trace",
            "--option",
            "windowsize 16",
            "--option",
            "blksize 1468",
            "--get",
            "-r",
            "win.bin",
            "-l",
        ])
        .arg(&local)
        .args(["127.0.0.1", &srv.port()]));
    let log =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    let oack = log
        .lines()
        .find(|l| l.contains("received OACK"))
        .unwrap_or_else(|| panic!("no OACK in the trace:\n{log}"));
    assert!(oack.contains("windowsize: 16"), "{oack}");
    assert!(oack.contains("blksize: 1468"), "{oack}");
    // The client acknowledged windows, not every block (2144 blocks: 134 ACKs plus ACK 0 when
    // nothing is lost; the bound leaves room for retransmissions).
    let blocks = len / 1468 + 1;
    let acks = log.lines().filter(|l| l.starts_with("sent ACK")).count();
    assert!(
        acks > 0 && acks * 4 < blocks,
        "{acks} ACKs for {blocks} blocks"
    );
    assert!(
        std::fs::read(&local).unwrap() == pattern(len),
        "atftp windowed copy differs"
    );
    assert_eq!(
        transfer(&srv.event_for("win.bin")),
        (len as u64, TransferStatus::TftpComplete)
    );
}

#[test]
fn traversal_absolute_and_symlink_escape_are_refused() {
    if !have(&["atftp", "curl"]) {
        return;
    }
    let srv = Running::start(|_, _| {});
    let out_dir = tempfile::tempdir().unwrap();
    let local = out_dir.path().join("x");
    for remote in ["../secret", "//etc/passwd", "escape", "a/../../secret"] {
        let out = run(Command::new("atftp")
            .args(["-g", "-r", remote, "-l"])
            .arg(&local)
            .args(["127.0.0.1", &srv.port()]));
        assert!(!out.status.success(), "{remote} was served");
        let (bytes, status) = transfer(&srv.event_for(remote));
        assert_eq!(
            (bytes, status),
            (0, TransferStatus::TftpRefused(2)),
            "{remote}"
        );
    }
    // A leading `/` names the served root (tftpd-hpa --secure; GRUB sends `/grub/grub.cfg`):
    // `/etc/passwd` is looked up under the root, where it does not exist.
    let out = run(Command::new("atftp")
        .args(["-g", "-r", "/etc/passwd", "-l"])
        .arg(&local)
        .args(["127.0.0.1", &srv.port()]));
    assert!(!out.status.success(), "/etc/passwd was served");
    assert_eq!(
        transfer(&srv.event_for("/etc/passwd")),
        (0, TransferStatus::TftpRefused(1))
    );
    let out = run(Command::new("atftp")
        .args(["-g", "-r", "/small.bin", "-l"])
        .arg(&local)
        .args(["127.0.0.1", &srv.port()]));
    assert!(out.status.success(), "/small.bin is the root's small.bin");
    assert_eq!(std::fs::read(&local).unwrap(), pattern(3000));
    // curl percent-decodes the URL path and sends "../secret" as the file name.
    let out = run(Command::new("curl")
        .args(["-sS", "--path-as-is", "-o"])
        .arg(&local)
        .arg(format!("tftp://{}/%2e%2e/secret", srv.addr)));
    assert!(!out.status.success());
    assert!(
        !std::fs::read(&local)
            .unwrap_or_default()
            .starts_with(b"outside")
    );
}

#[test]
fn curl_blksize_and_block_number_wraparound() {
    if !have(&["curl"]) {
        return;
    }
    // 33 MiB + 100 bytes at blksize 512 needs 67 585 blocks: the block number wraps past 65535.
    let len = 33 * 1024 * 1024 + 100;
    let srv =
        Running::start(|_, root| std::fs::write(root.join("huge.bin"), pattern(len)).unwrap());
    let out_dir = tempfile::tempdir().unwrap();
    let local = out_dir.path().join("huge");
    let out = run(Command::new("curl")
        .args(["-sS", "--tftp-blksize", "512", "-o"])
        .arg(&local)
        .arg(format!("tftp://{}/huge.bin", srv.addr)));
    assert!(out.status.success());
    assert!(
        std::fs::read(&local).unwrap() == pattern(len),
        "curl copy differs"
    );
    assert_eq!(
        transfer(&srv.event_for("huge.bin")),
        (len as u64, TransferStatus::TftpComplete)
    );

    let out = run(Command::new("curl")
        .args(["-sS", "--tftp-blksize", "1468", "-o"])
        .arg(&local)
        .arg(format!("tftp://{}/small.bin", srv.addr)));
    assert!(out.status.success());
    assert_eq!(std::fs::read(&local).unwrap(), pattern(3000));
}

#[test]
fn windowsize_client_and_wraparound() {
    let len = 33 * 1024 * 1024 + 1;
    let srv =
        Running::start(|_, root| std::fs::write(root.join("huge.bin"), pattern(len)).unwrap());
    let got = client::get(
        srv.addr,
        "huge.bin",
        &[("blksize", "512"), ("windowsize", "16"), ("tsize", "0")],
    )
    .unwrap();
    assert_eq!(got.oack.get("windowsize").map(String::as_str), Some("16"));
    assert_eq!(got.oack.get("blksize").map(String::as_str), Some("512"));
    assert_eq!(
        got.oack.get("tsize").map(String::as_str),
        Some(len.to_string().as_str())
    );
    assert!(got.data == pattern(len), "windowed copy differs");

    // The limit on the window is enforced by the OACK.
    let got = client::get(
        srv.addr,
        "small.bin",
        &[("blksize", "1468"), ("windowsize", "1000")],
    )
    .unwrap();
    assert_eq!(got.oack.get("windowsize").map(String::as_str), Some("64"));
    assert_eq!(got.data, pattern(3000));
}

#[test]
fn missing_file_and_concurrency_limits_give_error_packets() {
    let srv = Running::start(|c, _| {
        c.max_per_client = 2;
        c.max_total = 3;
        c.max_send_retries = 2;
    });
    let err = client::get(srv.addr, "nope.bin", &[]).unwrap_err();
    assert_eq!(err.code, 1, "{err:?}");

    // Two transfers held open (first block received, never acknowledged) fill this client's slots.
    let held: Vec<UdpSocket> = (0..2)
        .map(|_| client::hold(srv.addr, "small.bin"))
        .collect();
    let err = client::get(srv.addr, "small.bin", &[]).unwrap_err();
    assert_eq!(err.code, 0);
    assert!(err.message.to_lowercase().contains("too many"), "{err:?}");
    assert!(srv.events.events().iter().any(|e| matches!(
        e.kind,
        EventKind::Transfer {
            status: TransferStatus::TftpBusy,
            ..
        }
    )));
    drop(held);
}

/// A raw request: opcode 1, then each string NUL-terminated.
fn raw_rrq(strings: &[&str]) -> Vec<u8> {
    let mut p = vec![0, 1];
    for s in strings {
        p.extend_from_slice(s.as_bytes());
        p.push(0);
    }
    p
}

#[test]
fn netascii_is_translated_like_tftp_hpa_and_has_no_tsize() {
    if !have(&["tftp"]) {
        return;
    }
    let text = b"line one\r\nline two\nbare\rcr\n".repeat(100);
    let srv = Running::start(|_, root| std::fs::write(root.join("text.txt"), &text).unwrap());
    // tftp-hpa's client undoes the translation: CR NUL back to CR, CR LF back to LF. A file
    // sent untranslated would lose its CRs before LFs on the way.
    let out_dir = tempfile::tempdir().unwrap();
    let local = out_dir.path().join("text");
    let out = run(Command::new("tftp")
        .args([
            "-m",
            "ascii",
            "127.0.0.1",
            &srv.port(),
            "-c",
            "get",
            "text.txt",
        ])
        .arg(&local));
    assert!(out.status.success());
    assert_eq!(std::fs::read(&local).unwrap(), text);

    // On the wire: the translated bytes, and an OACK without tsize (as tftp-hpa answers).
    let mut wire = Vec::new();
    for &b in &text {
        match b {
            b'\n' => wire.extend_from_slice(b"\r\n"),
            b'\r' => wire.extend_from_slice(b"\r\0"),
            b => wire.push(b),
        }
    }
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    sock.send_to(
        &raw_rrq(&["text.txt", "netascii", "tsize", "0", "blksize", "1024"]),
        srv.addr,
    )
    .unwrap();
    let mut buf = [0u8; 2048];
    let (n, from) = sock.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"\0\x06blksize\x001024\0", "OACK without tsize");
    let mut got = Vec::new();
    let mut block = 0u16;
    loop {
        let b = block.to_be_bytes();
        sock.send_to(&[0, 4, b[0], b[1]], from).unwrap();
        let (n, _) = sock.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..2], &[0, 3]);
        block = u16::from_be_bytes([buf[2], buf[3]]);
        got.extend_from_slice(&buf[4..n]);
        if n - 4 < 1024 {
            let b = block.to_be_bytes();
            sock.send_to(&[0, 4, b[0], b[1]], from).unwrap();
            break;
        }
    }
    assert_eq!(got, wire);
}

#[test]
fn a_request_without_a_mode_gets_an_error_packet() {
    let srv = Running::start(|_, _| {});
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    for request in [
        &b"\0\x01small.bin\0"[..],
        b"\0\x01small.bin",
        b"\0\x01small.bin\0octet\0tsize\0",
    ] {
        sock.send_to(request, srv.addr).unwrap();
        let mut buf = [0u8; 600];
        let (n, _) = sock.recv_from(&mut buf).unwrap();
        assert_eq!(
            &buf[..4],
            &[0, 5, 0, 4],
            "ERROR 4 for {request:?}: {:?}",
            &buf[..n]
        );
    }
    let (bytes, status) = transfer(&srv.event_for("small.bin"));
    assert_eq!((bytes, status), (0, TransferStatus::TftpRefused(4)));
}

#[test]
fn a_burst_of_500_requests_from_one_address_is_answered() {
    let srv = Running::start(|c, _| {
        c.max_per_client = 1000;
        c.max_total = 1000;
        c.max_send_retries = 1;
    });
    // The server sizes its socket's buffer when it starts serving: one answered request first
    // shows it has (the burst below would otherwise race the server thread's start).
    client::get(srv.addr, "small.bin", &[]).unwrap();
    const BURST: usize = 500;
    let socks: Vec<UdpSocket> = (0..BURST)
        .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
        .collect();
    let rrq = raw_rrq(&["small.bin", "octet"]);
    for s in &socks {
        s.send_to(&rrq, srv.addr).unwrap();
    }
    let mut answered = 0;
    // One generous bound for all answers (not a performance threshold): lost ones never come.
    let deadline = Instant::now() + Duration::from_secs(30);
    for s in &socks {
        let left = deadline.saturating_duration_since(Instant::now());
        s.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        let mut buf = [0u8; 600];
        if let Ok((n, _)) = s.recv_from(&mut buf)
            && n >= 4
            && buf[..2] == [0, 3]
        {
            answered += 1;
        }
    }
    assert_eq!(answered, BURST, "requests lost in the receive queue");
}

#[test]
fn colons_in_file_names_are_no_drive_letters() {
    if !have(&["tftp", "curl"]) {
        return;
    }
    let srv = Running::start(|_, root| {
        for name in ["e:x.txt", "a:b.txt"] {
            std::fs::write(root.join(name), name).unwrap();
        }
    });
    let out_dir = tempfile::tempdir().unwrap();
    for name in ["e:x.txt", "a:b.txt"] {
        let local = out_dir.path().join("out");
        let out = run(Command::new("curl")
            .args(["-sS", "-o"])
            .arg(&local)
            .arg(format!("tftp://{}/{name}", srv.addr)));
        assert!(out.status.success(), "curl {name}");
        assert_eq!(std::fs::read(&local).unwrap(), name.as_bytes());
        std::fs::remove_file(&local).unwrap();
        // tftp-hpa's `get` takes `host:file`: the host is given that way, so the file name
        // keeps its colon.
        let out = run(Command::new("tftp")
            .args(["-m", "binary", "127.0.0.1", &srv.port(), "-c", "get"])
            .arg(format!("127.0.0.1:{name}"))
            .arg(&local));
        assert!(out.status.success());
        assert_eq!(
            std::fs::read(&local).unwrap(),
            name.as_bytes(),
            "tftp-hpa {name}"
        );
    }
}

/// A minimal blocking RFC 1350/2347/7440 read client, for the cases listed at the top of the file.
mod client {
    use super::*;

    #[derive(Debug)]
    pub(crate) struct Got {
        pub(crate) data: Vec<u8>,
        pub(crate) oack: HashMap<String, String>,
    }

    #[derive(Debug)]
    pub(crate) struct TftpError {
        pub(crate) code: u16,
        pub(crate) message: String,
    }

    fn rrq(path: &str, opts: &[(&str, &str)]) -> Vec<u8> {
        let mut p = vec![0, 1];
        for s in [path, "octet"]
            .into_iter()
            .chain(opts.iter().flat_map(|(k, v)| [*k, *v]))
        {
            p.extend_from_slice(s.as_bytes());
            p.push(0);
        }
        p
    }

    fn ack(block: u16) -> [u8; 4] {
        let b = block.to_be_bytes();
        [0, 4, b[0], b[1]]
    }

    /// Sends an RRQ and returns the socket after the first answer, without acknowledging it.
    pub(crate) fn hold(server: SocketAddr, path: &str) -> UdpSocket {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        sock.send_to(&rrq(path, &[]), server).unwrap();
        let mut buf = [0u8; 2048];
        let (n, _) = sock.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..2], &[0, 3], "expected DATA, got {:?}", &buf[..n]);
        sock
    }

    pub(crate) fn get(
        server: SocketAddr,
        path: &str,
        opts: &[(&str, &str)],
    ) -> Result<Got, TftpError> {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        sock.send_to(&rrq(path, opts), server).unwrap();
        let mut buf = vec![0u8; 65536];
        let mut data = Vec::new();
        let mut oack = HashMap::new();
        let mut blksize = 512usize;
        let mut window = 1usize;
        let mut expected: u16 = 1;
        let mut in_window = 0usize;
        let mut tid: Option<SocketAddr> = None;
        let mut last_ack: Option<[u8; 4]> = None;
        let mut timeouts = 0;
        loop {
            let (n, from) = match sock.recv_from(&mut buf) {
                Ok(x) => x,
                Err(_) => {
                    timeouts += 1;
                    assert!(timeouts < 20, "server went silent");
                    if let (Some(a), Some(t)) = (last_ack, tid) {
                        sock.send_to(&a, t).unwrap();
                    }
                    in_window = 0;
                    continue;
                }
            };
            if *tid.get_or_insert(from) != from {
                continue;
            }
            let pkt = &buf[..n];
            match u16::from_be_bytes([pkt[0], pkt[1]]) {
                6 => {
                    let fields: Vec<String> = pkt[2..]
                        .split(|b| *b == 0)
                        .map(|s| String::from_utf8_lossy(s).into_owned())
                        .collect();
                    for kv in fields.chunks(2) {
                        if kv.len() == 2 && !kv[0].is_empty() {
                            oack.insert(kv[0].to_lowercase(), kv[1].clone());
                        }
                    }
                    blksize = oack.get("blksize").map_or(512, |v| v.parse().unwrap());
                    window = oack.get("windowsize").map_or(1, |v| v.parse().unwrap());
                    let a = ack(0);
                    sock.send_to(&a, from).unwrap();
                    last_ack = Some(a);
                }
                3 => {
                    let block = u16::from_be_bytes([pkt[2], pkt[3]]);
                    let payload = &pkt[4..];
                    if block == expected {
                        data.extend_from_slice(payload);
                        expected = expected.wrapping_add(1);
                        in_window += 1;
                        let last = payload.len() < blksize;
                        if in_window == window || last {
                            let a = ack(block);
                            sock.send_to(&a, from).unwrap();
                            last_ack = Some(a);
                            in_window = 0;
                        }
                        if last {
                            return Ok(Got { data, oack });
                        }
                    } else if block != expected.wrapping_sub(1) || in_window == 0 {
                        // Out of order: acknowledge what arrived in order so the server resends the rest.
                        let a = ack(expected.wrapping_sub(1));
                        sock.send_to(&a, from).unwrap();
                        last_ack = Some(a);
                        in_window = 0;
                    }
                }
                5 => {
                    let code = u16::from_be_bytes([pkt[2], pkt[3]]);
                    let message = String::from_utf8_lossy(&pkt[4..])
                        .trim_end_matches('\0')
                        .to_owned();
                    return Err(TftpError { code, message });
                }
                op => panic!("unexpected opcode {op}"),
            }
        }
    }
}
