//! The HTTP server against a real client (curl): ranges, If-Range, HEAD, conditional GET, 416,
//! traversal, symlink escape, dynamic routes, body limits, access log, events, graceful
//! shutdown and HTTPS.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pxe_stack::http::{AccessEntry, Config, Routes, Server};
use pxe_stack::route::{RouteRequest, reply};
use pxe_stack::{EventKind, Protocol, Recorder, TransferStatus};

use crate::common::have;
use crate::loopback::{Background, OneHost, pattern};

const BIG: usize = 5 * 1024 * 1024 + 123;

/// A server on 127.0.0.1:0 over a temp root; shuts down and cleans up on drop.
struct Running {
    addr: SocketAddr,
    scheme: &'static str,
    events: Recorder,
    log: Arc<Mutex<Vec<AccessEntry>>>,
    /// Before `dir`: the server stops before its root is removed.
    server: Background,
    dir: tempfile::TempDir,
}

impl Running {
    fn start(tls: bool) -> Running {
        Running::start_with(tls, |_| {})
    }

    fn start_with(tls: bool, tweak: impl FnOnce(&mut Config)) -> Running {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("www");
        std::fs::create_dir_all(root.join("rhcos")).unwrap();
        std::fs::write(dir.path().join("secret"), b"outside the root\n").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret"), root.join("escape")).unwrap();
        std::fs::write(root.join("rhcos/metal.raw.gz"), pattern(BIG)).unwrap();
        std::fs::write(root.join("hello.ipxe"), b"#!ipxe\necho hello\n").unwrap();
        std::fs::write(root.join("empty"), b"").unwrap();
        let mut config = Config::default();
        config.root = Some(root);
        config.chunk_size = 64 * 1024;
        tweak(&mut config);
        let routes = Routes::new()
            .exact("/boot.ipxe", |req: RouteRequest| async move {
                reply::ok(
                    "text/plain",
                    format!(
                        "#!ipxe\necho {}\n",
                        req.mac.map(|m| m.hexhyp()).unwrap_or_default()
                    ),
                )
            })
            .exact_with_limit(
                "/introspect",
                1024,
                Arc::new(|req: RouteRequest| async move {
                    reply::ok(
                        "text/plain",
                        format!("got {} bytes\n", req.request.body().len()),
                    )
                }),
            )
            .prefix("/ignition/", |_req: RouteRequest| async move {
                reply::not_ready(Duration::from_secs(7), "not rendered yet")
            });
        let events = Recorder::new();
        let log: Arc<Mutex<Vec<AccessEntry>>> = Arc::default();
        let sink = Arc::clone(&log);
        #[allow(unused_mut)] // mut only with the tls feature
        let mut server = Server::new(config)
            .with_routes(routes)
            .with_lookup(Arc::new(OneHost("52:54:00:00:00:02".parse().unwrap())))
            .with_events(Arc::new(events.clone()))
            .with_access_log(Arc::new(move |e: &AccessEntry| {
                sink.lock().unwrap().push(e.clone())
            }));
        if tls {
            #[cfg(feature = "tls")]
            {
                let tls = pxe_stack::http::Tls::from_pem(
                    include_bytes!("../fixtures/tls/cert.pem"),
                    include_bytes!("../fixtures/tls/key.pem"),
                )
                .unwrap();
                server = server.with_tls(tls);
            }
        }
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        std_listener.set_nonblocking(true).unwrap();
        let addr = std_listener.local_addr().unwrap();
        let mut runtime = tokio::runtime::Builder::new_multi_thread();
        runtime.worker_threads(2);
        Running {
            addr,
            scheme: if tls { "https" } else { "http" },
            events,
            log,
            server: Background::spawn(runtime, move |shutdown| async move {
                let listener = tokio::net::TcpListener::from_std(std_listener).unwrap();
                server.serve(listener, shutdown).await
            }),
            dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}://{}{path}", self.scheme, self.addr)
    }

    /// Runs curl; returns status, lowercase headers and body.
    fn curl(&self, path: &str, args: &[&str]) -> (u16, HashMap<String, String>, Vec<u8>) {
        let out_dir = tempfile::tempdir().unwrap();
        let head = out_dir.path().join("h");
        let body = out_dir.path().join("b");
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "--path-as-is", "-D"])
            .arg(&head)
            .arg("-o")
            .arg(&body);
        if self.scheme == "https" {
            cmd.arg("--cacert").arg(fixture("tls/cert.pem"));
        }
        cmd.args(args).arg(self.url(path));
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{cmd:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let head = std::fs::read_to_string(&head).unwrap();
        let mut lines = head.lines();
        let status = lines
            .next()
            .unwrap()
            .split(' ')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_lowercase(), v.trim().to_owned()))
            .collect();
        (status, headers, std::fs::read(&body).unwrap_or_default())
    }

    /// Waits (a generous bound, not a performance threshold) until `n` requests were reported.
    fn wait_reports(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.log.lock().unwrap().len() < n || self.events.events().len() < n {
            assert!(
                Instant::now() < deadline,
                "only {} reports",
                self.log.lock().unwrap().len()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

#[test]
fn full_get_head_and_headers() {
    if !have(&["curl"]) {
        return;
    }
    let srv = Running::start(false);
    let (status, h, body) = srv.curl("/rhcos/metal.raw.gz", &[]);
    assert_eq!(status, 200);
    assert!(body == pattern(BIG), "body differs");
    assert_eq!(h["content-length"], BIG.to_string());
    assert_eq!(h["content-type"], "application/gzip");
    assert_eq!(h["accept-ranges"], "bytes");
    assert!(h["etag"].starts_with('"'), "{h:?}");
    assert!(h["last-modified"].ends_with("GMT"));

    let (status, hh, body) = srv.curl("/rhcos/metal.raw.gz", &["-I"]);
    assert_eq!(status, 200);
    // With -I curl writes the headers where the body would go: there is no body.
    assert!(body.starts_with(b"HTTP/1.1 200") && body.len() < 1000);
    assert_eq!(hh["content-length"], BIG.to_string());
    assert_eq!(hh["etag"], h["etag"]);

    let (status, h, body) = srv.curl("/hello.ipxe", &[]);
    assert_eq!(
        (status, body.as_slice()),
        (200, &b"#!ipxe\necho hello\n"[..])
    );
    assert_eq!(h["content-type"], "text/plain; charset=utf-8");

    let (status, h, body) = srv.curl("/empty", &[]);
    assert_eq!((status, body.len()), (200, 0));
    assert_eq!(h["content-length"], "0");

    let (status, _, _) = srv.curl("/rhcos/metal.raw.gz", &["-X", "DELETE"]);
    assert_eq!(status, 405);
    let (status, _, _) = srv.curl("/rhcos", &[]);
    assert_eq!(status, 404);
    let (status, _, _) = srv.curl("/missing", &[]);
    assert_eq!(status, 404);
}

#[test]
fn ranges_if_range_and_416() {
    if !have(&["curl"]) {
        return;
    }
    let srv = Running::start(false);
    let all = pattern(BIG);
    let (status, h, body) = srv.curl("/rhcos/metal.raw.gz", &["-r", "100-199"]);
    assert_eq!(status, 206);
    assert_eq!(body, &all[100..200]);
    assert_eq!(h["content-range"], format!("bytes 100-199/{BIG}"));
    assert_eq!(h["content-length"], "100");

    // Across chunk boundaries, open-ended and suffix.
    let (status, _, body) = srv.curl("/rhcos/metal.raw.gz", &["-r", "65000-"]);
    assert_eq!(status, 206);
    assert!(body == all[65000..], "open-ended range differs");
    let (status, h, body) = srv.curl("/rhcos/metal.raw.gz", &["-r", "-10"]);
    assert_eq!((status, body.as_slice()), (206, &all[BIG - 10..]));
    assert_eq!(
        h["content-range"],
        format!("bytes {}-{}/{BIG}", BIG - 10, BIG - 1)
    );

    let (status, h, body) = srv.curl("/rhcos/metal.raw.gz", &["-r", &format!("{BIG}-")]);
    assert_eq!(status, 416);
    assert_eq!(h["content-range"], format!("bytes */{BIG}"));
    assert!(body.is_empty());

    let (_, h, _) = srv.curl("/rhcos/metal.raw.gz", &["-I"]);
    let etag = &h["etag"];
    let date = &h["last-modified"];
    let (status, _, body) = srv.curl(
        "/rhcos/metal.raw.gz",
        &["-r", "0-9", "-H", &format!("If-Range: {etag}")],
    );
    assert_eq!((status, body.as_slice()), (206, &all[..10]));
    let (status, _, body) = srv.curl(
        "/rhcos/metal.raw.gz",
        &["-r", "0-9", "-H", "If-Range: \"stale\""],
    );
    assert_eq!(status, 200);
    assert_eq!(body.len(), BIG);
    let (status, _, body) = srv.curl(
        "/rhcos/metal.raw.gz",
        &["-r", "0-9", "-H", &format!("If-Range: {date}")],
    );
    assert_eq!((status, body.len()), (206, 10));
    let (status, _, body) = srv.curl(
        "/rhcos/metal.raw.gz",
        &["-r", "0-9", "-H", "If-Range: Thu, 01 Jan 1970 00:00:01 GMT"],
    );
    assert_eq!((status, body.len()), (200, BIG));

    // A multi-range request is answered with the whole file.
    let (status, _, body) = srv.curl("/rhcos/metal.raw.gz", &["-r", "0-1,5-6"]);
    assert_eq!((status, body.len()), (200, BIG));
}

#[test]
fn conditional_get() {
    if !have(&["curl"]) {
        return;
    }
    let srv = Running::start(false);
    let (_, h, _) = srv.curl("/hello.ipxe", &["-I"]);
    let (status, h304, body) = srv.curl(
        "/hello.ipxe",
        &["-H", &format!("If-None-Match: {}", h["etag"])],
    );
    assert_eq!((status, body.len()), (304, 0));
    assert_eq!(h304["etag"], h["etag"]);
    let (status, _, _) = srv.curl("/hello.ipxe", &["-H", "If-None-Match: \"other\""]);
    assert_eq!(status, 200);
    // curl -z sends If-Modified-Since.
    let (status, _, _) = srv.curl("/hello.ipxe", &["-z", &h["last-modified"]]);
    assert_eq!(status, 304);
    let (status, _, _) = srv.curl("/hello.ipxe", &["-z", "Thu, 01 Jan 1970 00:00:01 GMT"]);
    assert_eq!(status, 200);
    let (status, _, _) = srv.curl("/hello.ipxe", &["-H", "If-Match: \"other\""]);
    assert_eq!(status, 412);
}

#[test]
fn traversal_and_symlink_escape_are_refused() {
    if !have(&["curl"]) {
        return;
    }
    let srv = Running::start(false);
    for path in [
        "/../secret",
        "/../../../../etc/passwd",
        "/%2e%2e/secret",
        "/%2E%2E%2Fsecret",
        "/rhcos/..%2F..%2Fsecret",
        "/rhcos/..\\..\\secret",
        "//etc/passwd",
    ] {
        let (status, _, body) = srv.curl(path, &[]);
        assert_eq!(status, 404, "{path}");
        assert!(!body.starts_with(b"outside"), "{path}");
    }
    let (status, _, body) = srv.curl("/escape", &[]);
    assert_eq!(status, 403);
    assert!(!body.starts_with(b"outside"));
    assert!(srv.dir.path().join("secret").exists());
}

#[test]
fn routes_limits_not_ready_log_and_events() {
    if !have(&["curl"]) {
        return;
    }
    let srv = Running::start(false);
    let (status, _, body) = srv.curl("/boot.ipxe", &["-A", "iPXE/1.21.1"]);
    assert_eq!(
        (status, body.as_slice()),
        (200, &b"#!ipxe\necho 52-54-00-00-00-02\n"[..])
    );

    let small = srv.dir.path().join("small");
    std::fs::write(&small, vec![b'x'; 1000]).unwrap();
    let big = srv.dir.path().join("big");
    std::fs::write(&big, vec![b'x'; 5000]).unwrap();
    let (status, _, body) = srv.curl(
        "/introspect",
        &["--data-binary", &format!("@{}", small.display())],
    );
    assert_eq!((status, body.as_slice()), (200, &b"got 1000 bytes\n"[..]));
    let (status, _, _) = srv.curl(
        "/introspect",
        &["--data-binary", &format!("@{}", big.display())],
    );
    assert_eq!(status, 413);
    // Chunked, so the limit is found while reading, not from Content-Length.
    let (status, _, _) = srv.curl(
        "/introspect",
        &[
            "-H",
            "Transfer-Encoding: chunked",
            "--data-binary",
            &format!("@{}", big.display()),
        ],
    );
    assert_eq!(status, 413);

    let (status, h, _) = srv.curl("/ignition/master.ign", &[]);
    assert_eq!((status, h["retry-after"].as_str()), (503, "7"));

    let (status, _, _) = srv.curl("/rhcos/metal.raw.gz", &["-r", "0-99"]);
    assert_eq!(status, 206);

    srv.wait_reports(6);
    let log = srv.log.lock().unwrap().clone();
    // Reports are written when each response ends; look them up rather than rely on order.
    let first = log.iter().find(|e| e.target == "/boot.ipxe").unwrap();
    assert_eq!(
        (
            first.status,
            first.user_agent.as_str(),
            first.target.as_str()
        ),
        (200, "iPXE/1.21.1", "/boot.ipxe")
    );
    let line = log.iter().find(|e| e.status == 206).unwrap().line();
    assert!(
        line.contains("\"GET /rhcos/metal.raw.gz HTTP/1.1\" 206 100 0"),
        "{line}"
    );
    assert!(line.ends_with(" 52:54:00:00:00:02"), "{line}");
    assert!(
        log.iter()
            .any(|e| e.target == "/introspect" && e.status == 200 && e.request_length == 1000)
    );
    let events = srv.events.events();
    assert!(
        events
            .iter()
            .all(|e| e.mac == Some("52:54:00:00:00:02".parse().unwrap()))
    );
    let transfer = events
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::Transfer {
                protocol: Protocol::Http,
                path,
                bytes,
                status: TransferStatus::Http(206),
                ..
            } => Some((path.clone(), *bytes)),
            _ => None,
        })
        .unwrap();
    assert_eq!(transfer, ("/rhcos/metal.raw.gz".to_owned(), 100));
}

#[test]
fn graceful_shutdown_finishes_the_response_in_flight() {
    let srv = Running::start(false);
    // An idle connection that never sends a request must not hold up shutdown.
    let _idle = TcpStream::connect(srv.addr).unwrap();
    let mut conn = TcpStream::connect(srv.addr).unwrap();
    conn.write_all(b"GET /rhcos/metal.raw.gz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut first = [0u8; 4096];
    let n = conn.read(&mut first).unwrap();
    assert!(first[..n].starts_with(b"HTTP/1.1 200"));
    // The server stops while the body is still on its way; the client keeps reading slowly.
    let (stopped_tx, stopped_rx) = std::sync::mpsc::channel();
    let server = srv.server;
    std::thread::spawn(move || {
        drop(server);
        stopped_tx.send(()).unwrap();
    });
    let mut rest = Vec::new();
    conn.read_to_end(&mut rest).unwrap();
    let mut all = first[..n].to_vec();
    all.extend_from_slice(&rest);
    let split = all.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert!(
        all[split..] == pattern(BIG),
        "body cut short: {} bytes",
        all.len() - split
    );
    // read_to_end returned, so the server closed the connection after the response; serve()
    // returns once the connection is gone.
    stopped_rx.recv().unwrap();
    assert!(TcpStream::connect(srv.addr).is_err());
}

#[cfg(feature = "tls")]
#[test]
fn https_with_a_given_certificate() {
    if !have(&["curl"]) {
        return;
    }
    let srv = Running::start(true);
    let (status, _, body) = srv.curl("/rhcos/metal.raw.gz", &["-r", "10-19"]);
    assert_eq!((status, body.as_slice()), (206, &pattern(BIG)[10..20]));
    let (status, _, body) = srv.curl("/boot.ipxe", &[]);
    assert_eq!(
        (status, body.as_slice()),
        (200, &b"#!ipxe\necho 52-54-00-00-00-02\n"[..])
    );
    assert!(pxe_stack::http::Tls::from_pem(b"garbage", b"garbage").is_err());
    // A client stuck before its TLS handshake must not hold up shutdown (drop joins the server).
    let _stalled = TcpStream::connect(srv.addr).unwrap();
}

/// Sends `request` on a fresh connection and returns the status of the answer.
fn raw_status(addr: SocketAddr, request: &str) -> u16 {
    let mut conn = TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    conn.write_all(request.as_bytes()).unwrap();
    let mut head = [0u8; 12];
    conn.read_exact(&mut head).unwrap();
    std::str::from_utf8(&head[9..12]).unwrap().parse().unwrap()
}

#[test]
fn http11_needs_exactly_one_host_header() {
    if !have(&["curl"]) {
        return;
    }
    let srv = Running::start(false);
    // curl drops its Host header when given an empty one.
    let (status, _, _) = srv.curl("/hello.ipxe", &["-H", "Host:"]);
    assert_eq!(status, 400);
    let (status, _, body) = srv.curl("/hello.ipxe", &[]);
    assert_eq!((status, &body[..]), (200, &b"#!ipxe\necho hello\n"[..]));
    let (status, _, _) = srv.curl("/boot.ipxe", &["-H", "Host:"]);
    assert_eq!(status, 400, "dynamic routes too");
    for (request, expected) in [
        ("GET /hello.ipxe HTTP/1.1\r\nConnection: close\r\n\r\n", 400),
        (
            "GET /hello.ipxe HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n",
            400,
        ),
        (
            "GET /hello.ipxe HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n",
            400,
        ),
        ("GET /hello.ipxe HTTP/1.0\r\n\r\n", 200),
        (
            "GET /hello.ipxe HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
            200,
        ),
    ] {
        assert_eq!(raw_status(srv.addr, request), expected, "{request:?}");
    }
}

#[test]
fn colons_in_file_names_are_no_drive_letters() {
    if !have(&["curl"]) {
        return;
    }
    let srv = Running::start(false);
    let root = srv.dir.path().join("www");
    for name in ["e:x.txt", "a:b.txt", "C:boot"] {
        std::fs::write(root.join(name), name).unwrap();
        let (status, _, body) = srv.curl(&format!("/{name}"), &[]);
        assert_eq!((status, body), (200, name.as_bytes().to_vec()), "{name}");
    }
}

#[test]
fn clients_that_never_read_are_closed_and_others_still_served() {
    if !have(&["curl"]) {
        return;
    }
    let srv = Running::start_with(false, |c| c.send_timeout = Duration::from_millis(500));
    // Far more than the socket buffers of a connection hold; sparse, so cheap to make.
    const HUGE: u64 = 1 << 30;
    let huge = std::fs::File::create(srv.dir.path().join("www/huge.img")).unwrap();
    huge.set_len(HUGE).unwrap();
    const SLOW: usize = 40;
    let mut stalled: Vec<TcpStream> = (0..SLOW)
        .map(|_| {
            let mut c = TcpStream::connect(srv.addr).unwrap();
            c.write_all(b"GET /huge.img HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            c
        })
        .collect();
    // Served while the stalled downloads hold their connections.
    let (status, _, body) = srv.curl("/hello.ipxe", &[]);
    assert_eq!((status, &body[..]), (200, &b"#!ipxe\necho hello\n"[..]));
    // Every stalled download is closed by the server (its access entry is written when the
    // response ends) without having been read to its end.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let closed: Vec<u64> = srv
            .log
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.target == "/huge.img")
            .map(|e| e.bytes)
            .collect();
        if closed.len() == SLOW {
            assert!(closed.iter().all(|&b| b < HUGE), "{closed:?}");
            break;
        }
        assert!(Instant::now() < deadline, "only {} closed", closed.len());
        std::thread::sleep(Duration::from_millis(50));
    }
    // The clients see the end of the stream after what the socket buffers held.
    for c in &mut stalled {
        c.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let mut sink = Vec::new();
        let n = c.read_to_end(&mut sink).unwrap_or(0) as u64;
        assert!(n < HUGE, "a stalled download got all of it");
    }
    let (status, _, _) = srv.curl("/hello.ipxe", &[]);
    assert_eq!(status, 200);
}
