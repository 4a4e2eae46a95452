//! File serving shared by HTTP and TFTP, against both at once on one single-threaded runtime:
//! a directory swapped for a symlink out of the root while clients ask for a file under it never
//! leaks the outside file, and a file whose open stalls (a FIFO nobody writes) does not stall
//! the other server.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::loopback::Background;

/// HTTP and TFTP over one root, on one current-thread runtime (so a blocking call on it would
/// stall both).
struct Both {
    http: SocketAddr,
    tftp: SocketAddr,
    root: PathBuf,
    _server: Background,
    dir: tempfile::TempDir,
}

impl Both {
    fn start() -> Both {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir(&root).unwrap();
        std::fs::write(root.join("hello"), b"hello\n").unwrap();
        let mut http_config = pxe_stack::http::Config::default();
        http_config.root = Some(root.clone());
        let mut tftp_config = pxe_stack::tftp::Config::default();
        tftp_config.root = Some(root.clone());
        tftp_config.timeout = Duration::from_secs(1);
        tftp_config.max_per_client = 1000;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let (http, tftp) = (listener.local_addr().unwrap(), udp.local_addr().unwrap());
        let server = Background::spawn(
            tokio::runtime::Builder::new_current_thread(),
            move |shutdown| async move {
                let (tx, rx) = tokio::sync::watch::channel(false);
                let mut rx2 = rx.clone();
                let mut rx1 = rx;
                let h = pxe_stack::http::Server::new(http_config).serve(
                    tokio::net::TcpListener::from_std(listener).unwrap(),
                    async move {
                        let _ = rx1.changed().await;
                    },
                );
                let t = pxe_stack::tftp::Server::new(tftp_config).serve(udp, async move {
                    let _ = rx2.changed().await;
                });
                let stop = async move {
                    shutdown.await;
                    let _ = tx.send(true);
                };
                let (h, t, ()) = tokio::join!(h, t, stop);
                h.map_err(|e| e.to_string())?;
                t.map_err(|e| e.to_string())
            },
        );
        Both {
            http,
            tftp,
            root,
            _server: server,
            dir,
        }
    }
}

/// GET over HTTP/1.0: the status and the body.
fn http_get(addr: SocketAddr, path: &str) -> (u16, Vec<u8>) {
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    c.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())
        .unwrap();
    let mut all = Vec::new();
    c.read_to_end(&mut all).unwrap();
    let status = std::str::from_utf8(&all[9..12]).unwrap().parse().unwrap();
    let body = match all.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(i) => all[i + 4..].to_vec(),
        None => Vec::new(),
    };
    (status, body)
}

/// One TFTP block of `path`: `Ok(data)` or `Err(error code)`.
fn tftp_first_block(addr: SocketAddr, path: &str) -> Result<Vec<u8>, u16> {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut rrq = vec![0, 1];
    rrq.extend_from_slice(path.as_bytes());
    rrq.extend_from_slice(b"\0octet\0");
    s.send_to(&rrq, addr).unwrap();
    let mut buf = [0u8; 600];
    let (n, from) = s.recv_from(&mut buf).expect("a tftp answer");
    match buf[1] {
        3 => {
            // Acknowledge so the transfer ends (the file is one block).
            let _ = s.send_to(&[0, 4, buf[2], buf[3]], from);
            Ok(buf[4..n].to_vec())
        }
        _ => Err(u16::from_be_bytes([buf[2], buf[3]])),
    }
}

#[test]
fn a_directory_swapped_for_a_symlink_out_never_leaks_the_outside() {
    let both = Both::start();
    let outside = both.dir.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("f"), b"outside the root\n").unwrap();
    let real = both.root.join("d");
    std::fs::create_dir(&real).unwrap();
    std::fs::write(real.join("f"), b"inside\n").unwrap();
    let parked = both.dir.path().join("parked");

    let stop = Arc::new(AtomicBool::new(false));
    let swapper = {
        let (stop, d, parked, outside) = (stop.clone(), real.clone(), parked.clone(), outside);
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::fs::rename(&d, &parked).unwrap();
                std::os::unix::fs::symlink(&outside, &d).unwrap();
                std::thread::yield_now();
                std::fs::remove_file(&d).unwrap();
                std::fs::rename(&parked, &d).unwrap();
                std::thread::yield_now();
            }
        })
    };
    let (mut inside, mut refused) = (0, 0);
    for _ in 0..300 {
        let (status, body) = http_get(both.http, "/d/f");
        assert!(
            !body.starts_with(b"outside"),
            "HTTP leaked the outside file"
        );
        match status {
            200 => inside += 1,
            403 | 404 => refused += 1,
            s => panic!("status {s}"),
        }
        match tftp_first_block(both.tftp, "d/f") {
            Ok(data) => {
                assert_eq!(data, b"inside\n", "TFTP leaked the outside file");
                inside += 1;
            }
            Err(code) => {
                assert!(code == 1 || code == 2, "code {code}");
                refused += 1;
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    swapper.join().unwrap();
    eprintln!("{inside} served from inside, {refused} refused");
    // With the directory in place again, both serve it, and the symlink alone is refused.
    assert_eq!(http_get(both.http, "/d/f"), (200, b"inside\n".to_vec()));
    std::os::unix::fs::symlink(both.dir.path().join("outside"), both.root.join("out")).unwrap();
    assert_eq!(http_get(both.http, "/out/f").0, 403);
    assert_eq!(tftp_first_block(both.tftp, "out/f"), Err(2));
}

/// Opens the FIFO for writing (which lets a blocked reader's open return) and closes it.
fn release(fifo: &Path) {
    let _ = std::fs::OpenOptions::new().write(true).open(fifo);
}

#[test]
fn a_stalled_tftp_open_does_not_stall_http() {
    if !crate::common::have(&["mkfifo"]) {
        return;
    }
    let both = Both::start();
    let fifo = both.root.join("stalled");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    // The open of a FIFO blocks until a writer comes: on a runtime thread it would stall both
    // servers, which share the one thread here.
    let tftp = both.tftp;
    let waiting = std::thread::spawn(move || tftp_first_block(tftp, "stalled"));
    // Give the request time to reach the server (not a threshold: the check below holds
    // whether or not it has).
    std::thread::sleep(Duration::from_millis(300));
    for _ in 0..5 {
        assert_eq!(http_get(both.http, "/hello"), (200, b"hello\n".to_vec()));
        assert_eq!(
            tftp_first_block(both.tftp, "hello"),
            Ok(b"hello\n".to_vec())
        );
    }
    release(&fifo);
    // Not a regular file: refused once its open returns.
    assert_eq!(waiting.join().unwrap(), Err(1));
}
