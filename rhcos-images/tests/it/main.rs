//! Integration tests: real fixture metadata, the one-pass verifier, and the fetcher against a
//! loopback HTTP/1.1 server written here so it can inject faults.

use std::io::Write;
use std::path::Path;

use proptest::prelude::*;
use rhcos_images::{
    Artifact, Cache, Compression, Decode, Error, Kind, Location, Metadata, Source, Verifier,
};
use sha2::{Digest, Sha256};

const FCOS: &str = "tests/fixtures/fcos-stream-stable-34.20211016.3.0.json";
const RHCOS_411: &str = "tests/fixtures/rhcos-4.11-stream-metal-excerpt.json";
const LEGACY_41: &str = "tests/fixtures/rhcos-legacy-410.8.20190520.0-rhcos.json";

fn load(path: &str) -> Metadata {
    let bytes = std::fs::read(path).unwrap();
    Metadata::from_slice(&bytes, path).unwrap()
}

fn render(artifacts: &[Artifact]) -> String {
    artifacts
        .iter()
        .map(|a| {
            format!(
                "{kind}: {name}\n  location: {loc}\n  sha256: {sha}\n  uncompressed: {u:?}\n  size: {size:?}\n  signature: {sig}\n  release: {rel}\n  compression: {c}\n",
                kind = a.kind.map(|k| k.name()).unwrap_or("-"),
                name = a.name,
                loc = a.location,
                sha = a.sha256,
                u = a.uncompressed_sha256,
                size = a.size,
                sig = a.signature.is_some(),
                rel = a.release,
                c = a.compression(),
            )
        })
        .collect()
}

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// Deterministic "disk image": half pseudo-random, half patterned, so gzip gets about 2:1.
fn image(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|i| {
            if (i / 4096) % 2 == 0 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            } else {
                (i % 251) as u8
            }
        })
        .collect()
}

// One test binary: the area modules live in `tests/it/`.
#[cfg(feature = "esp")]
mod esp;
mod install;
#[cfg(feature = "signatures")]
mod signatures;

// ---------------------------------------------------------------- metadata

#[test]
fn fcos_stream_selects_pxe_and_metal() {
    let meta = load(FCOS);
    assert_eq!(meta.architectures(), ["aarch64", "x86_64"]);
    let picked = meta
        .select(
            "x86_64",
            &[
                Kind::Kernel,
                Kind::Initramfs,
                Kind::Rootfs,
                Kind::RawXz,
                Kind::QemuXz,
                Kind::Iso,
            ],
        )
        .unwrap();
    insta::assert_snapshot!("fcos_x86_64", render(&picked));
}

#[test]
fn rhcos_411_stream_selects_metal() {
    let meta = load(RHCOS_411);
    let all = meta.available("x86_64").unwrap();
    insta::assert_snapshot!("rhcos_411_x86_64", render(&all));
    // aarch64 has its own release string in the same file.
    let arm = meta.select("aarch64", &[Kind::RawGz]).unwrap();
    assert_ne!(arm[0].release, all[0].release);
}

#[test]
fn legacy_41_maps_old_names_and_string_sizes() {
    let meta = load(LEGACY_41);
    assert_eq!(meta.architectures(), ["x86_64"]);
    let picked = meta
        .select(
            "x86_64",
            &[
                Kind::Kernel,
                Kind::Initramfs,
                Kind::RawGz,
                Kind::QemuGz,
                Kind::Iso,
            ],
        )
        .unwrap();
    insta::assert_snapshot!("legacy_41_x86_64", render(&picked));
    assert_eq!(
        picked[2].size,
        Some(719_954_527),
        "size given as a JSON string"
    );
    let Metadata::Legacy(l) = meta else {
        panic!("not legacy")
    };
    assert_eq!(
        l.images["aws"].uncompressed_size,
        Some(742_703_616),
        "size as a number"
    );
}

#[test]
fn unknown_choices_list_what_exists() {
    let meta = load(RHCOS_411);
    let e = meta.select("x86_64", &[Kind::RawXz]).unwrap_err();
    assert!(matches!(&e, Error::UnknownArtifact { artifact, .. } if artifact == "raw.xz"));
    assert_eq!(
        e.to_string(),
        "no raw.xz artifact for x86_64 (available: kernel, initramfs, rootfs, raw.gz, 4k.raw.gz, iso)"
    );
    let e = meta.select("riscv64", &[Kind::RawGz]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "unknown architecture riscv64 (available: aarch64, x86_64)"
    );
    let e = load(LEGACY_41)
        .select("x86_64", &[Kind::Rootfs])
        .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("no rootfs artifact for x86_64 (available: kernel")
    );
    let e = "floppy".parse::<Kind>().unwrap_err();
    assert!(matches!(e, Error::UnknownKind { .. }));
    assert_eq!("metal".parse::<Kind>().unwrap(), Kind::RawGz);
}

#[test]
fn malformed_metadata_is_a_typed_error() {
    let e = Metadata::from_slice(b"{\"architectures\": 3}", "bad.json").unwrap_err();
    assert!(
        matches!(&e, Error::Metadata { origin, .. } if origin == "bad.json"),
        "{e:?}"
    );
    let e = Metadata::from_slice(b"not json", "x").unwrap_err();
    assert!(matches!(e, Error::Metadata { .. }));
    let e = Metadata::from_slice(b"{\"hello\": 1}", "y").unwrap_err();
    assert!(matches!(e, Error::UnknownMetadataFormat { .. }));
    let bad_sha = br#"{"stream":"s","architectures":{"x86_64":{"artifacts":{"metal":{"release":"1",
        "formats":{"iso":{"disk":{"location":"http://h/a.iso","sha256":"xyz"}}}}}}}}"#;
    let meta = Metadata::from_slice(bad_sha, "z").unwrap();
    let e = meta.select("x86_64", &[Kind::Iso]).unwrap_err();
    assert!(
        matches!(&e, Error::InvalidField { field, .. }
            if field == "architectures.x86_64.artifacts.metal.formats.iso.disk.sha256"),
        "{e:?}"
    );
    let bad_size =
        br#"{"baseURI":"http://h/","images":{"kernel":{"path":"k","sha256":"00","size":"big"}}}"#;
    assert!(matches!(
        Metadata::from_slice(bad_size, "w"),
        Err(Error::Metadata { .. })
    ));
}

#[test]
fn sources_resolve_mirrors() {
    let a = load(RHCOS_411)
        .select("x86_64", &[Kind::Kernel])
        .unwrap()
        .remove(0);
    let mirror = Source::mirror("http://10.0.0.1/rhcos").unwrap();
    assert_eq!(
        mirror.locate(&a).unwrap(),
        Location::parse("http://10.0.0.1/rhcos/rhcos-411.86.202205051017-0-live-kernel-x86_64")
            .unwrap()
    );
    let dir = Source::mirror("file:///srv/mirror").unwrap();
    assert_eq!(
        dir.locate(&a).unwrap(),
        Location::File("/srv/mirror/rhcos-411.86.202205051017-0-live-kernel-x86_64".into())
    );
    assert!(matches!(
        Location::parse("ftp://x/y"),
        Err(Error::InvalidLocation { .. })
    ));
}

proptest! {
    #[test]
    fn kind_names_round_trip(i in 0..Kind::ALL.len()) {
        let k = Kind::ALL[i];
        prop_assert_eq!(k.name().parse::<Kind>().unwrap(), k);
        prop_assert_eq!(k.to_string(), k.name());
    }

    #[test]
    fn legacy_sizes_accept_strings_and_numbers(n in any::<u64>(), as_string in any::<bool>()) {
        let size = if as_string { format!("\"{n}\"") } else { n.to_string() };
        let json = format!(r#"{{"baseURI":"http://h/","images":{{"metal":{{"path":"m.raw.gz","sha256":"{}","size":{size}}}}}}}"#, "ab".repeat(32));
        let Metadata::Legacy(l) = Metadata::from_slice(json.as_bytes(), "p").unwrap() else { panic!() };
        prop_assert_eq!(l.images["metal"].size, Some(n));
        // Serialising and parsing again gives the same document.
        let again: rhcos_images::LegacyMeta = serde_json::from_str(&serde_json::to_string(&l).unwrap()).unwrap();
        prop_assert_eq!(again, l);
    }

    /// Chunk boundaries never change the result, for single- and multi-member gzip.
    #[test]
    fn verifier_is_chunking_independent(
        len in 0usize..40_000,
        cuts in proptest::collection::vec(1usize..5000, 1..20),
        members in 1usize..4,
    ) {
        let raw = image(len);
        let per = len / members + 1;
        let gz: Vec<u8> = raw.chunks(per.max(1)).flat_map(gzip).collect();
        let gz = if gz.is_empty() { gzip(&[]) } else { gz };
        let mut v = Verifier::new(Vec::new(), Decode::With(Compression::Gzip));
        let mut rest = &gz[..];
        for c in cuts.iter().cycle() {
            if rest.is_empty() { break; }
            let (a, b) = rest.split_at((*c).min(rest.len()));
            v.update(a).unwrap();
            rest = b;
        }
        let (out, d) = v.finish().unwrap();
        prop_assert_eq!(&out, &raw);
        prop_assert_eq!(d.sha256, sha(&gz));
        prop_assert_eq!(d.uncompressed_sha256, Some(sha(&raw)));
        prop_assert_eq!(d.size, gz.len() as u64);
    }
}

// ---------------------------------------------------------------- verifier

#[test]
fn verifier_detects_gzip_by_magic_and_passes_plain_data() {
    let raw = image(10_000);
    let mut v = Verifier::new(Vec::new(), Decode::Detect);
    v.update(&gzip(&raw)[..3]).unwrap();
    v.update(&gzip(&raw)[3..]).unwrap();
    let (out, d) = v.finish().unwrap();
    assert_eq!(out, raw);
    assert_eq!(d.decoded, Compression::Gzip);

    let mut v = Verifier::new(Vec::new(), Decode::Detect);
    v.update(b"abc").unwrap();
    let (out, d) = v.finish().unwrap();
    assert_eq!(out, b"abc");
    assert_eq!(d.decoded, Compression::None);
    assert_eq!(d.uncompressed_sha256, None);
}

#[test]
fn truncated_and_corrupt_gzip_are_decompress_errors() {
    let gz = gzip(&image(100_000));
    let mut v = Verifier::new(Vec::new(), Decode::With(Compression::Gzip)).with_url("u");
    v.update(&gz[..gz.len() - 10]).unwrap();
    let e = v.finish().unwrap_err();
    assert!(
        matches!(&e, Error::Decompress { url, format: Compression::Gzip, .. } if url == "u"),
        "{e:?}"
    );

    let mut bad = gz.clone();
    for b in &mut bad[100..200] {
        *b ^= 0x5a;
    }
    let mut v = Verifier::new(Vec::new(), Decode::With(Compression::Gzip));
    let e = v
        .update(&bad)
        .and_then(|()| v.finish().map(drop))
        .unwrap_err();
    assert!(matches!(e, Error::Decompress { .. }), "{e:?}");
}

#[test]
fn disk_full_is_an_io_error_naming_the_path() {
    let Ok(full) = std::fs::OpenOptions::new().write(true).open("/dev/full") else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "/dev/full is required in CI"
        );
        eprintln!("skipping: /dev/full is not available");
        return;
    };
    let raw = image(3 << 20);
    let mut v = Verifier::new(
        std::io::BufWriter::new(full),
        Decode::With(Compression::Gzip),
    )
    .with_sink_path("/dev/full");
    let e = v
        .update(&gzip(&raw))
        .and_then(|()| v.finish().map(drop))
        .unwrap_err();
    match e {
        Error::Io { path, source } => {
            assert_eq!(path, Path::new("/dev/full"));
            assert_eq!(source.kind(), std::io::ErrorKind::StorageFull);
        }
        other => panic!("expected Io, got {other:?}"),
    }
}

#[cfg(feature = "xz")]
#[test]
fn verifier_decodes_multi_stream_xz() {
    let raw = image(50_000);
    let mut xz = Vec::new();
    for part in raw.chunks(20_000) {
        let mut e = liblzma::write::XzEncoder::new(Vec::new(), 1);
        e.write_all(part).unwrap();
        xz.extend(e.finish().unwrap());
    }
    let mut v = Verifier::new(Vec::new(), Decode::Detect);
    for c in xz.chunks(777) {
        v.update(c).unwrap();
    }
    let (out, d) = v.finish().unwrap();
    assert_eq!(out, raw);
    assert_eq!(d.decoded, Compression::Xz);
}

#[cfg(not(feature = "xz"))]
#[test]
fn xz_without_feature_is_a_typed_error() {
    let mut v = Verifier::new(Vec::new(), Decode::With(Compression::Xz));
    assert!(matches!(
        v.update(b"x"),
        Err(Error::FeatureDisabled { feature: "xz", .. })
    ));
}

#[test]
fn cache_commits_only_named_by_hash() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    let mut tmp = cache.temp_file().unwrap();
    tmp.write_all(b"kernel").unwrap();
    let h = sha(b"kernel");
    let p = cache.commit(tmp, &h, "vmlinuz").unwrap();
    assert_eq!(p, dir.path().join(&h));
    assert_eq!(cache.get(&h), Some(p.clone()));
    assert_eq!(
        cache.get_by_name("vmlinuz"),
        Some(p.canonicalize().unwrap())
    );
    assert!(matches!(
        cache.path_for("../etc/passwd"),
        Err(Error::InvalidField { .. })
    ));
    assert_eq!(
        std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
        0
    );
}

// ---------------------------------------------------------------- fetcher

#[cfg(feature = "fetch")]
mod fetch {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use rhcos_images::{Fetcher, Options, ProgressEvent, Request, SignaturePolicy, WriteOnly};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// Fetching with a keyring (`tests/it/fetch/signed.rs`).
    #[cfg(feature = "signatures")]
    mod signed;

    fn artifact(name: &str, downloaded: &[u8], raw: Option<&[u8]>) -> Artifact {
        Artifact {
            kind: None,
            name: name.into(),
            location: format!("http://unused/{name}"),
            sha256: sha(downloaded),
            uncompressed_sha256: raw.map(sha),
            ..Artifact::default()
        }
    }

    /// What the test server saw in one request.
    #[derive(Debug, Clone, Default)]
    struct Seen {
        path: String,
        range: Option<u64>,
        if_range: Option<String>,
    }

    /// How the test server answers one request.
    enum Plan {
        Status(u16),
        Body(B),
    }

    /// A body answer.
    struct B {
        data: Arc<Vec<u8>>,
        etag: &'static str,
        ranges: Ranges,
        /// Close the connection after this many body bytes.
        cut: Option<usize>,
        /// Send this many body bytes one at a time, then hold the connection silently.
        stall: Option<usize>,
        /// A `Last-Modified` header to send.
        last_modified: Option<&'static str>,
    }

    #[derive(Clone, Copy, PartialEq)]
    enum Ranges {
        /// RFC 9110: serve 206 only when If-Range matches.
        Honour,
        /// Always 200 with the whole file.
        Ignore,
        /// A broken server: 206 even when If-Range does not match.
        IgnoreIfRange,
    }

    fn b(data: &Arc<Vec<u8>>, etag: &'static str) -> B {
        B {
            data: data.clone(),
            etag,
            ranges: Ranges::Honour,
            cut: None,
            stall: None,
            last_modified: None,
        }
    }

    fn body(data: &Arc<Vec<u8>>, etag: &'static str) -> Plan {
        Plan::Body(b(data, etag))
    }

    struct Server {
        base: String,
        seen: Arc<Mutex<Vec<Seen>>>,
        task: tokio::task::JoinHandle<()>,
    }

    impl Drop for Server {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    impl Server {
        fn url(&self, path: &str) -> String {
            format!("{}{path}", self.base)
        }
        fn seen(&self) -> Vec<Seen> {
            self.seen.lock().unwrap().clone()
        }
    }

    /// A loopback HTTP/1.1 server; `plan(n, request)` decides the answer to the n-th request.
    async fn serve(plan: impl Fn(usize, &Seen) -> Plan + Send + Sync + 'static) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}/", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let plan = Arc::new(plan);
        let count = Arc::new(AtomicUsize::new(0));
        let seen2 = seen.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                let (plan, seen, count) = (plan.clone(), seen2.clone(), count.clone());
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match sock.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let text = String::from_utf8_lossy(&head).to_string();
                    let mut req = Seen::default();
                    for (i, line) in text.lines().enumerate() {
                        if i == 0 {
                            req.path = line.split(' ').nth(1).unwrap_or("").to_owned();
                        } else if let Some((k, v)) = line.split_once(':') {
                            let v = v.trim();
                            match k.to_ascii_lowercase().as_str() {
                                "range" => {
                                    req.range = v
                                        .strip_prefix("bytes=")
                                        .and_then(|r| r.trim_end_matches('-').parse().ok())
                                }
                                "if-range" => req.if_range = Some(v.to_owned()),
                                _ => {}
                            }
                        }
                    }
                    seen.lock().unwrap().push(req.clone());
                    let n = count.fetch_add(1, Ordering::SeqCst);
                    respond(&mut sock, plan(n, &req), &req).await;
                });
            }
        });
        Server { base, seen, task }
    }

    async fn respond(sock: &mut tokio::net::TcpStream, plan: Plan, req: &Seen) {
        let (data, etag, ranges, cut, stall, last_modified) = match plan {
            Plan::Status(code) => {
                let msg =
                    format!("HTTP/1.1 {code} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                let _ = sock.write_all(msg.as_bytes()).await;
                return;
            }
            Plan::Body(B {
                data,
                etag,
                ranges,
                cut,
                stall,
                last_modified,
            }) => (data, etag, ranges, cut, stall, last_modified),
        };
        let etag_q = format!("\"{etag}\"");
        // An empty tag means the server sends no validator at all.
        let mut etag_h = if etag.is_empty() {
            String::new()
        } else {
            format!("ETag: {etag_q}\r\n")
        };
        if let Some(lm) = last_modified {
            etag_h.push_str(&format!("Last-Modified: {lm}\r\n"));
        }
        let start = match (ranges, req.range) {
            (Ranges::Honour, Some(s)) if req.if_range.as_deref().is_none_or(|v| v == etag_q) => {
                Some(s)
            }
            (Ranges::IgnoreIfRange, Some(s)) => Some(s),
            _ => None,
        };
        let len = data.len();
        let (head, slice) = match start {
            Some(s) if (s as usize) < len => (
                format!(
                    "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {s}-{}/{len}\r\nContent-Length: {}\r\n{etag_h}Connection: close\r\n\r\n",
                    len - 1,
                    len - s as usize
                ),
                &data[s as usize..],
            ),
            _ => (
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {len}\r\n{etag_h}Connection: close\r\n\r\n"
                ),
                &data[..],
            ),
        };
        if sock.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        if let Some(n) = stall {
            // Trickle a few bytes, then go silent until the client gives up and closes.
            for b in slice.iter().take(n) {
                if sock.write_all(std::slice::from_ref(b)).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let mut sink = [0u8; 64];
            while matches!(sock.read(&mut sink).await, Ok(n) if n > 0) {}
            return;
        }
        let slice = &slice[..cut.unwrap_or(slice.len()).min(slice.len())];
        let _ = sock.write_all(slice).await;
        let _ = sock.shutdown().await;
    }

    fn options() -> Options {
        Options {
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_millis(300),
            retries: 3,
            backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(50),
            env_proxy: false,
            // These tests are about transfers; `signatures` tests the signed path.
            signatures: SignaturePolicy::Insecure,
            ..Options::default()
        }
    }

    struct Fixture {
        _dir: tempfile::TempDir,
        cache: Cache,
        fetcher: Fetcher,
        events: Arc<Mutex<Vec<String>>>,
    }

    fn fixture(opts: Options) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path().join("cache")).unwrap();
        let events = Arc::new(Mutex::new(Vec::new()));
        let ev = events.clone();
        let fetcher = Fetcher::new(opts)
            .unwrap()
            .with_progress(move |e: &ProgressEvent<'_>| {
                let s = match e {
                    ProgressEvent::Started { .. } => "started".to_owned(),
                    ProgressEvent::Restarted { reason, .. } => format!("restarted: {reason}"),
                    ProgressEvent::Retrying { attempt, .. } => format!("retry {attempt}"),
                    ProgressEvent::Cached { .. } => "cached".to_owned(),
                    ProgressEvent::Finished { .. } => "finished".to_owned(),
                    _ => return,
                };
                ev.lock().unwrap().push(s);
            });
        Fixture {
            _dir: dir,
            cache,
            fetcher,
            events,
        }
    }

    impl Fixture {
        /// No temporary or final file may remain after a failure.
        fn assert_nothing_stored(&self) {
            let root = self.cache.root();
            assert_eq!(
                std::fs::read_dir(root.join("tmp")).unwrap().count(),
                0,
                "temp file left"
            );
            let finals = std::fs::read_dir(root)
                .unwrap()
                .filter(|e| e.as_ref().unwrap().file_type().unwrap().is_file())
                .count();
            assert_eq!(finals, 0, "unverified file under a final name");
        }
        fn events(&self) -> Vec<String> {
            self.events.lock().unwrap().clone()
        }
    }

    struct Image {
        raw: Arc<Vec<u8>>,
        gz: Arc<Vec<u8>>,
    }

    fn test_image() -> Image {
        let raw = image(2 << 20);
        let gz = gzip(&raw);
        Image {
            raw: Arc::new(raw),
            gz: Arc::new(gz),
        }
    }

    fn request(server: &Server, name: &str, img: &Image, decompress: bool) -> Request {
        let mut a = artifact(name, &img.gz, Some(&img.raw));
        a.location = server.url(name);
        Request::new(a, &Source::Upstream, decompress).unwrap()
    }

    fn assert_raw(path: &Path, img: &Image) {
        let got = std::fs::read(path).unwrap();
        assert_eq!(got.len(), img.raw.len());
        assert_eq!(sha(&got), sha(&img.raw));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn fetches_decompresses_caches_and_does_not_refetch() {
        let img = test_image();
        let gz = img.gz.clone();
        let server = serve(move |_, _| body(&gz, "v1")).await;
        let f = fixture(options());
        let req = request(&server, "rhcos-metal.x86_64.raw.gz", &img, true);
        let got = f.fetcher.fetch_cached(&f.cache, &req).await.unwrap();
        assert!(!got.from_cache);
        assert_eq!(got.name, "rhcos-metal.x86_64.raw");
        assert_eq!(got.path, f.cache.root().join(sha(&img.raw)));
        assert_eq!(got.digests.size, img.gz.len() as u64);
        assert_raw(&got.path, &img);
        assert_eq!(
            f.cache.get_by_name("rhcos-metal.x86_64.raw"),
            Some(got.path.canonicalize().unwrap())
        );

        let again = f.fetcher.fetch_cached(&f.cache, &req).await.unwrap();
        assert!(again.from_cache);
        assert_eq!(
            server.seen().len(),
            1,
            "a cached, verified artifact is not fetched again"
        );
        assert_eq!(f.events(), ["started", "finished", "cached"]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn drop_mid_body_resumes_with_range_and_if_range() {
        let img = test_image();
        let gz = img.gz.clone();
        let server = serve(move |n, _| match n {
            0 => Plan::Body(B {
                cut: Some(700_000),
                ..b(&gz, "v1")
            }),
            _ => body(&gz, "v1"),
        })
        .await;
        let f = fixture(options());
        let req = request(&server, "a.raw.gz", &img, true);
        let got = f.fetcher.fetch_cached(&f.cache, &req).await.unwrap();
        assert_raw(&got.path, &img);
        let seen = server.seen();
        assert_eq!(seen.len(), 2);
        let resumed_at = seen[1]
            .range
            .expect("second request must resume with Range");
        assert!(resumed_at > 0 && resumed_at <= 700_000, "{resumed_at}");
        assert_eq!(seen[1].if_range.as_deref(), Some("\"v1\""));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_validator_means_no_resume() {
        let img = test_image();
        let gz = img.gz.clone();
        let server = serve(move |n, _| {
            Plan::Body(B {
                cut: (n == 0).then_some(500_000),
                ..b(&gz, "")
            })
        })
        .await;
        let f = fixture(options());
        let req = request(&server, "noetag.raw.gz", &img, true);
        let got = f.fetcher.fetch_cached(&f.cache, &req).await.unwrap();
        assert_raw(&got.path, &img);
        assert_eq!(
            server.seen()[1].range,
            None,
            "a plain GET, not a blind resume"
        );
        assert!(
            f.events()
                .contains(&"restarted: no validator to resume with".to_owned())
        );
    }

    /// Into a plain `Write` (here a Vec behind `WriteOnly`): a resume works, a restart cannot.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn write_only_sinks_resume_but_refuse_to_restart() {
        let img = test_image();
        let gz = img.gz.clone();
        let server = serve(move |n, _| {
            Plan::Body(B {
                cut: (n == 0).then_some(400_000),
                ..b(&gz, "v1")
            })
        })
        .await;
        let f = fixture(options());
        let req = request(&server, "w.raw.gz", &img, true);
        let (out, d) = f
            .fetcher
            .fetch_to(&req, WriteOnly(Vec::new()))
            .await
            .unwrap();
        assert_eq!(out.0, *img.raw);
        assert_eq!(d.uncompressed_sha256, Some(sha(&img.raw)));

        let gz = img.gz.clone();
        let server = serve(move |n, _| {
            Plan::Body(B {
                cut: (n == 0).then_some(400_000),
                ranges: Ranges::Ignore,
                ..b(&gz, "v1")
            })
        })
        .await;
        let req = request(&server, "w2.raw.gz", &img, true);
        let e = f
            .fetcher
            .fetch_to(&req, WriteOnly(Vec::new()))
            .await
            .unwrap_err();
        assert!(
            matches!(&e, Error::CannotRewind { url } if url.ends_with("w2.raw.gz")),
            "{e:?}"
        );
    }

    /// A link that drops every 300 kB: each attempt gets further, so one retry is enough budget.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn repeated_drops_with_progress_still_finish() {
        let img = test_image();
        let gz = img.gz.clone();
        let server = serve(move |_, _| {
            Plan::Body(B {
                cut: Some(300_000),
                ..b(&gz, "v1")
            })
        })
        .await;
        let f = fixture(Options {
            retries: 1,
            ..options()
        });
        let req = request(&server, "flaky.raw.gz", &img, true);
        let got = f.fetcher.fetch_cached(&f.cache, &req).await.unwrap();
        assert_raw(&got.path, &img);
        assert!(server.seen().len() > 2, "{:?}", server.seen());
    }

    /// The same link with a server that ignores Range never gets further: bounded failure.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn repeated_drops_without_range_give_up() {
        let img = test_image();
        let gz = img.gz.clone();
        let server = serve(move |_, _| {
            Plan::Body(B {
                cut: Some(300_000),
                ranges: Ranges::Ignore,
                ..b(&gz, "v1")
            })
        })
        .await;
        let f = fixture(Options {
            retries: 2,
            ..options()
        });
        let req = request(&server, "flaky2.raw.gz", &img, true);
        let e = f.fetcher.fetch_cached(&f.cache, &req).await.unwrap_err();
        assert!(matches!(e, Error::Truncated { got: 300_000, .. }), "{e:?}");
        assert_eq!(
            server.seen().len(),
            4,
            "the first attempt earns credit, then 1 + 2 retries"
        );
        f.assert_nothing_stored();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn oversized_metadata_is_refused() {
        let big = Arc::new(vec![b' '; 4096]);
        let server = serve(move |_, _| body(&big, "m")).await;
        let f = fixture(Options {
            max_metadata_bytes: 1000,
            ..options()
        });
        let e = f
            .fetcher
            .metadata(&Location::parse(&server.url("stream.json")).unwrap())
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Transfer { .. }), "{e:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn server_ignoring_range_restarts_from_zero() {
        let img = test_image();
        let gz = img.gz.clone();
        let server = serve(move |n, _| {
            Plan::Body(B {
                ranges: Ranges::Ignore,
                cut: (n == 0).then_some(900_000),
                ..b(&gz, "v1")
            })
        })
        .await;
        let f = fixture(options());
        let got = f
            .fetcher
            .fetch_cached(&f.cache, &request(&server, "b.raw.gz", &img, true))
            .await
            .unwrap();
        assert_raw(&got.path, &img);
        assert!(server.seen()[1].range.is_some());
        assert!(
            f.events()
                .contains(&"restarted: server sent the whole file".to_owned()),
            "{:?}",
            f.events()
        );
    }

    /// The file changes between attempts. A correct server answers the stale If-Range with 200;
    /// a broken one sends 206 with the new ETag. Either way the result is the new version whole.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn changed_etag_never_splices() {
        for ranges in [Ranges::Honour, Ranges::IgnoreIfRange] {
            let old = test_image();
            let new_raw = image(2 << 20)
                .into_iter()
                .map(|b| b.wrapping_add(1))
                .collect::<Vec<_>>();
            let new = Image {
                gz: Arc::new(gzip(&new_raw)),
                raw: Arc::new(new_raw),
            };
            let (old_gz, new_gz) = (old.gz.clone(), new.gz.clone());
            let server = serve(move |n, _| match n {
                0 => Plan::Body(B {
                    cut: Some(600_000),
                    ..b(&old_gz, "old")
                }),
                _ => Plan::Body(B {
                    ranges,
                    ..b(&new_gz, "new")
                }),
            })
            .await;
            let f = fixture(options());
            let got = f
                .fetcher
                .fetch_cached(&f.cache, &request(&server, "c.raw.gz", &new, true))
                .await
                .unwrap();
            assert_raw(&got.path, &new);
        }
    }

    /// Another version of the test image.
    fn new_image() -> Image {
        let raw = image(2 << 20)
            .into_iter()
            .map(|b| b.wrapping_add(1))
            .collect::<Vec<_>>();
        Image {
            gz: Arc::new(gzip(&raw)),
            raw: Arc::new(raw),
        }
    }

    const LM: &str = "Tue, 24 Nov 2026 07:00:00 GMT";

    /// A hostile peer that ignores If-Range and answers the resume with a 206 of the new
    /// version that carries no validator, or only a Last-Modified where an ETag was: nothing
    /// proves it is the same object, so the fetch starts over and gets the new version whole.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_206_without_the_recorded_validator_restarts_from_zero() {
        for (etag, last_modified, reason) in [
            ("", None, "partial content without a validator"),
            ("", Some(LM), "validator changed"),
        ] {
            let (old, new) = (test_image(), new_image());
            let (old_gz, new_gz) = (old.gz.clone(), new.gz.clone());
            let server = serve(move |n, _| match n {
                0 => Plan::Body(B {
                    cut: Some(600_000),
                    ..b(&old_gz, "v1")
                }),
                1 => Plan::Body(B {
                    ranges: Ranges::IgnoreIfRange,
                    last_modified,
                    ..b(&new_gz, etag)
                }),
                _ => body(&new_gz, "v2"),
            })
            .await;
            let f = fixture(options());
            let got = f
                .fetcher
                .fetch_cached(&f.cache, &request(&server, "v.raw.gz", &new, true))
                .await
                .unwrap();
            assert_raw(&got.path, &new);
            let seen = server.seen();
            assert_eq!(seen.len(), 3, "{seen:?}");
            assert!(seen[1].range.is_some(), "the second request resumes");
            assert_eq!(seen[2].range, None, "the third starts from zero");
            assert!(
                f.events().contains(&format!("restarted: {reason}")),
                "{:?}",
                f.events()
            );
        }
    }

    /// With no ETag the first time, the same Last-Modified is the proof, and the resume holds.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_matching_last_modified_resumes() {
        let img = test_image();
        let gz = img.gz.clone();
        let server = serve(move |n, _| {
            Plan::Body(B {
                cut: (n == 0).then_some(600_000),
                ranges: Ranges::IgnoreIfRange,
                last_modified: Some(LM),
                ..b(&gz, "")
            })
        })
        .await;
        let f = fixture(options());
        let got = f
            .fetcher
            .fetch_cached(&f.cache, &request(&server, "lm.raw.gz", &img, true))
            .await
            .unwrap();
        assert_raw(&got.path, &img);
        let seen = server.seen();
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[1].if_range.as_deref(), Some(LM));
    }

    /// A peer that lies: its 206 repeats the validator but carries another version. Only the
    /// hash sees the splice; the fetch then starts over from zero once, and fails only if that
    /// clean run is wrong too.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_hash_mismatch_after_a_resume_restarts_once() {
        for always_lie in [false, true] {
            // Two versions of the same length that differ before the cut: the splice is the
            // old one, and its length gives it away no more than its (lying) validator.
            let old_gz = test_image().gz;
            let mut changed = (*old_gz).clone();
            changed[100] ^= 0xff;
            let new_gz = Arc::new(changed);
            let new_gz2 = new_gz.clone();
            let server = serve(move |n, _| match (n, always_lie) {
                (0, _) | (2, true) => Plan::Body(B {
                    cut: Some(600_000),
                    ..b(&old_gz, "same")
                }),
                (1, _) | (3, true) => Plan::Body(B {
                    ranges: Ranges::IgnoreIfRange,
                    ..b(&new_gz, "same")
                }),
                _ => body(&new_gz, "same"),
            })
            .await;
            let f = fixture(options());
            // Kept compressed: the splice decompresses (gzip members) but hashes wrong.
            let mut a = artifact("s.raw.gz", &new_gz2, None);
            a.location = server.url("s.raw.gz");
            let req = Request::new(a, &Source::Upstream, false).unwrap();
            let got = f.fetcher.fetch_cached(&f.cache, &req).await;
            let restarts = f
                .events()
                .iter()
                .filter(|e| *e == "restarted: sha256 mismatch after a resume")
                .count();
            assert_eq!(restarts, 1, "{:?}", f.events());
            if always_lie {
                let e = got.unwrap_err();
                assert!(matches!(e, Error::HashMismatch { .. }), "{e:?}");
                assert_eq!(server.seen().len(), 4);
                f.assert_nothing_stored();
            } else {
                let got = got.unwrap();
                assert_eq!(std::fs::read(&got.path).unwrap(), *new_gz2);
                assert_eq!(server.seen().len(), 3);
                assert_eq!(server.seen()[2].range, None, "the restart is from zero");
            }
        }
    }

    /// The summary counts what arrived, failed transfers included.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn received_bytes_count_failed_transfers() {
        let img = test_image();
        let gz = img.gz.clone();
        let cut = gz.len() / 2;
        let server = serve(move |_, _| {
            Plan::Body(B {
                cut: Some(cut),
                ranges: Ranges::Ignore,
                ..b(&gz, "v1")
            })
        })
        .await;
        let f = fixture(Options {
            retries: 1,
            ..options()
        });
        let req = request(&server, "r.raw.gz", &img, true);
        f.fetcher.fetch_cached(&f.cache, &req).await.unwrap_err();
        let attempts = server.seen().len() as u64;
        assert_eq!(f.fetcher.received(), attempts * cut as u64);
    }

    /// Run by [`a_download_killed_mid_way_leaves_no_partial_behind`] in a child process, which
    /// it kills; a no-op when run as a test of its own.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn child_fetch_for_kill() {
        let (Ok(url), Ok(cache), Ok(sha)) = (
            std::env::var("RHCOS_IMAGES_TEST_CHILD_URL"),
            std::env::var("RHCOS_IMAGES_TEST_CHILD_CACHE"),
            std::env::var("RHCOS_IMAGES_TEST_CHILD_SHA"),
        ) else {
            return;
        };
        let cache = Cache::open(cache).unwrap();
        let fetcher = Fetcher::new(Options {
            read_timeout: Duration::from_secs(3600),
            ..options()
        })
        .unwrap();
        let a = Artifact {
            name: "killed.raw.gz".into(),
            location: url,
            sha256: sha,
            ..Artifact::default()
        };
        let req = Request::new(a, &Source::Upstream, false).unwrap();
        let _ = fetcher.fetch_cached(&cache, &req).await;
        unreachable!("the parent kills this process mid-download");
    }

    fn partials(cache: &Path) -> Vec<std::path::PathBuf> {
        std::fs::read_dir(cache.join("tmp"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with(".partial-")
            })
            .collect()
    }

    /// A download killed mid-way (SIGKILL: no destructor runs) leaves its partial file; the
    /// next run removes it, while a partial that a live download holds stays.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_download_killed_mid_way_leaves_no_partial_behind() {
        let img = test_image();
        let gz = img.gz.clone();
        // The first request trickles and then holds the connection: the child is mid-body.
        let server = serve(move |n, _| match n {
            0 => Plan::Body(B {
                stall: Some(64),
                ..b(&gz, "v1")
            }),
            _ => body(&gz, "v1"),
        })
        .await;
        let dir = tempfile::tempdir().unwrap();
        let cache_dir = dir.path().join("cache");
        Cache::open(&cache_dir).unwrap();
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "fetch::child_fetch_for_kill", "--nocapture"])
            .env("RHCOS_IMAGES_TEST_CHILD_URL", server.url("killed.raw.gz"))
            .env("RHCOS_IMAGES_TEST_CHILD_CACHE", &cache_dir)
            .env("RHCOS_IMAGES_TEST_CHILD_SHA", sha(&img.gz))
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while server.seen().is_empty() || partials(&cache_dir).is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "the child never started"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(partials(&cache_dir).len(), 1, "SIGKILL leaves the partial");

        // A download in progress in this process keeps its partial through a cleanup.
        let cache = Cache::open(&cache_dir).unwrap();
        assert!(partials(&cache_dir).is_empty(), "the next run removes it");
        let live = cache.temp_file().unwrap();
        assert_eq!(cache.remove_stale_partials().unwrap(), 0);
        assert!(live.path().exists());
        drop(live);

        // And the download then completes, leaving nothing in tmp.
        let fetcher = Fetcher::new(options()).unwrap();
        let mut a = artifact("killed.raw.gz", &img.gz, None);
        a.location = server.url("killed.raw.gz");
        let req = Request::new(a, &Source::Upstream, false).unwrap();
        let got = fetcher.fetch_cached(&cache, &req).await.unwrap();
        assert_eq!(std::fs::read(&got.path).unwrap(), *img.gz);
        assert!(partials(&cache_dir).is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn wrong_bytes_are_a_hash_mismatch_and_leave_nothing() {
        let img = test_image();
        let other = Arc::new(gzip(b"not the image"));
        let server = serve(move |_, _| body(&other, "v1")).await;
        let f = fixture(options());
        let e = f
            .fetcher
            .fetch_cached(&f.cache, &request(&server, "d.raw.gz", &img, true))
            .await
            .unwrap_err();
        assert!(
            matches!(&e, Error::HashMismatch { field: "sha256", url, .. } if url.ends_with("/d.raw.gz")),
            "{e:?}"
        );
        f.assert_nothing_stored();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn wrong_uncompressed_bytes_are_a_mismatch_too() {
        let img = test_image();
        let gz = img.gz.clone();
        let server = serve(move |_, _| body(&gz, "v1")).await;
        let f = fixture(options());
        let mut req = request(&server, "e.raw.gz", &img, true);
        req.artifact.uncompressed_sha256 = Some(sha(b"something else"));
        let e = f.fetcher.fetch_cached(&f.cache, &req).await.unwrap_err();
        assert!(
            matches!(
                e,
                Error::HashMismatch {
                    field: "uncompressed-sha256",
                    ..
                }
            ),
            "{e:?}"
        );
        f.assert_nothing_stored();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn trickle_then_stall_times_out_and_resumes() {
        let img = test_image();
        let gz = img.gz.clone();
        let server = serve(move |n, _| match n {
            0 => Plan::Body(B {
                stall: Some(20),
                ..b(&gz, "v1")
            }),
            _ => body(&gz, "v1"),
        })
        .await;
        let f = fixture(options());
        let got = f
            .fetcher
            .fetch_cached(&f.cache, &request(&server, "f.raw.gz", &img, true))
            .await
            .unwrap();
        assert_raw(&got.path, &img);
        // Normally a resume at byte 20; on a badly overloaded machine the stall can hit earlier.
        let resumed = server.seen()[1].range;
        assert!(resumed.is_none_or(|r| r <= 20), "{resumed:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn endless_stall_is_a_stalled_error() {
        let img = test_image();
        let gz = img.gz.clone();
        let server = serve(move |_, _| {
            Plan::Body(B {
                stall: Some(3),
                ..b(&gz, "v1")
            })
        })
        .await;
        let f = fixture(Options {
            retries: 1,
            ..options()
        });
        let e = f
            .fetcher
            .fetch_cached(&f.cache, &request(&server, "g.raw.gz", &img, true))
            .await
            .unwrap_err();
        assert!(
            matches!(&e, Error::Stalled { bytes, .. } if *bytes <= 3),
            "{e:?}"
        );
        assert_eq!(server.seen().len(), 2, "one try plus one retry");
        f.assert_nothing_stored();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn service_unavailable_then_ok() {
        let img = test_image();
        let gz = img.gz.clone();
        let server = serve(move |n, _| {
            if n < 2 {
                Plan::Status(503)
            } else {
                body(&gz, "v1")
            }
        })
        .await;
        let f = fixture(options());
        let got = f
            .fetcher
            .fetch_cached(&f.cache, &request(&server, "h.raw.gz", &img, false))
            .await
            .unwrap();
        assert_eq!(std::fs::read(&got.path).unwrap(), *img.gz);
        assert_eq!(f.events(), ["retry 2", "retry 3", "started", "finished"]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn status_errors_are_typed_and_bounded() {
        let img = test_image();
        let server = serve(|n, _| Plan::Status(if n == 0 { 404 } else { 503 })).await;
        let f = fixture(options());
        let e = f
            .fetcher
            .fetch_cached(&f.cache, &request(&server, "i", &img, false))
            .await
            .unwrap_err();
        assert!(matches!(e, Error::HttpStatus { status: 404, .. }), "{e:?}");
        assert_eq!(server.seen().len(), 1, "4xx is not retried");
        let e = f
            .fetcher
            .fetch_cached(&f.cache, &request(&server, "j", &img, false))
            .await
            .unwrap_err();
        assert!(matches!(e, Error::HttpStatus { status: 503, .. }), "{e:?}");
        assert_eq!(server.seen().len(), 1 + 4, "5xx retried `retries` times");
        f.assert_nothing_stored();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn truncated_gzip_with_matching_hash_is_a_decompress_error() {
        let img = test_image();
        let cut = Arc::new(img.gz[..img.gz.len() / 2].to_vec());
        let cut2 = cut.clone();
        let server = serve(move |_, _| body(&cut2, "v1")).await;
        let f = fixture(options());
        let mut req = request(&server, "k.raw.gz", &img, true);
        req.artifact.sha256 = sha(&cut);
        let e = f.fetcher.fetch_cached(&f.cache, &req).await.unwrap_err();
        assert!(
            matches!(
                e,
                Error::Decompress {
                    format: Compression::Gzip,
                    ..
                }
            ),
            "{e:?}"
        );
        f.assert_nothing_stored();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn connection_refused_is_a_transfer_error() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let img = test_image();
        let f = fixture(Options {
            retries: 1,
            ..options()
        });
        let mut a = artifact("l", &img.gz, None);
        a.location = format!("http://127.0.0.1:{port}/l");
        let req = Request::new(a, &Source::Upstream, false).unwrap();
        let e = f.fetcher.fetch_cached(&f.cache, &req).await.unwrap_err();
        assert!(
            matches!(&e, Error::Transfer { url, .. } if url.contains(&port.to_string())),
            "{e:?}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn several_artifacts_concurrently_from_real_stream_metadata() {
        // Serve the RHCOS 4.11 stream itself, then three artifacts named as in it through an
        // HTTP mirror (the hashes are the served bytes', since the real files are gigabytes).
        let stream = Arc::new(std::fs::read(RHCOS_411).unwrap());
        let img = test_image();
        let files: Vec<Arc<Vec<u8>>> = vec![
            Arc::new(b"kernel".to_vec()),
            Arc::new(b"initrd".to_vec()),
            img.gz.clone(),
        ];
        let files2 = files.clone();
        let server = serve(move |_, req| {
            if req.path.ends_with(".json") {
                body(&stream, "s")
            } else if req.path.contains("kernel") {
                body(&files2[0], "k")
            } else if req.path.contains("initramfs") {
                body(&files2[1], "i")
            } else {
                body(&files2[2], "m")
            }
        })
        .await;
        let f = fixture(options());
        let meta = f
            .fetcher
            .metadata(&Location::parse(&server.url("rhcos.json")).unwrap())
            .await
            .unwrap();
        let mirror = Source::mirror(&server.base).unwrap();
        let reqs: Vec<Request> = meta
            .select("x86_64", &[Kind::Kernel, Kind::Initramfs, Kind::RawGz])
            .unwrap()
            .into_iter()
            .zip(&files)
            .map(|(mut a, bytes)| {
                a.sha256 = sha(bytes);
                if a.kind == Some(Kind::RawGz) {
                    a.uncompressed_sha256 = Some(sha(&img.raw));
                }
                Request::new(a, &mirror, true).unwrap()
            })
            .collect();
        let results = f.fetcher.fetch_all(&f.cache, &reqs).await;
        let names: Vec<String> = results.into_iter().map(|r| r.unwrap().name).collect();
        assert_eq!(
            names,
            [
                "rhcos-411.86.202205051017-0-live-kernel-x86_64",
                "rhcos-411.86.202205051017-0-live-initramfs.x86_64.img",
                "rhcos-411.86.202205051017-0-metal.x86_64.raw",
            ]
        );
        assert_raw(&f.cache.get_by_name(&names[2]).unwrap(), &img);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn local_mirror_directory_and_file_urls() {
        let img = test_image();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("m.raw.gz"), &*img.gz).unwrap();
        std::fs::copy(LEGACY_41, dir.path().join("rhcos.json")).unwrap();
        let f = fixture(options());
        let url = format!("file://{}/rhcos.json", dir.path().display());
        let meta = f
            .fetcher
            .metadata(&Location::parse(&url).unwrap())
            .await
            .unwrap();
        assert!(matches!(meta, Metadata::Legacy(_)));
        let a = artifact("m.raw.gz", &img.gz, Some(&img.raw));
        let req = Request::new(a, &Source::MirrorDir(dir.path().into()), true).unwrap();
        let got = f.fetcher.fetch_cached(&f.cache, &req).await.unwrap();
        assert_raw(&got.path, &img);
        // A missing mirror file names its path.
        let a = artifact("missing.raw.gz", &img.gz, None);
        let req = Request::new(a, &Source::MirrorDir(dir.path().into()), true).unwrap();
        let e = f.fetcher.fetch_cached(&f.cache, &req).await.unwrap_err();
        assert!(
            matches!(&e, Error::Io { path, .. } if path.ends_with("missing.raw.gz")),
            "{e:?}"
        );
    }
}

// ---------------------------------------------------------------- real peer: nginx

/// nginx (Debian nginx-light) as the server: a full fetch, and the resume rules checked against
/// nginx's real answers to `Range` + `If-Range`. Needs the nginx binary (a peer daemon), not root.
#[cfg(feature = "fetch")]
mod nginx {
    use std::process::{Child, Command, Stdio};
    use std::time::Duration;

    use rhcos_images::resume::{self, Decision};
    use rhcos_images::{Fetcher, Options, Request};

    use super::*;

    struct Nginx {
        child: Child,
        dir: tempfile::TempDir,
        base: String,
    }

    impl Drop for Nginx {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    /// Starts nginx in the foreground on a free loopback port; `None` (or a panic under CI=true)
    /// when nginx is not installed.
    fn start() -> Option<Nginx> {
        let bin = ["/usr/sbin/nginx", "/usr/bin/nginx"]
            .into_iter()
            .find(|p| Path::new(p).exists());
        let Some(bin) = bin else {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "nginx is required in CI (scripts/install-deps.sh installs nginx-light)"
            );
            eprintln!("skipping: nginx not installed");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let d = dir.path().display();
        std::fs::create_dir(dir.path().join("www")).unwrap();
        let conf = format!(
            "daemon off; master_process off; worker_processes 1; pid {d}/nginx.pid;
             error_log {d}/error.log warn;
             events {{ worker_connections 16; }}
             http {{ access_log off; default_type application/octet-stream;
               client_body_temp_path {d}/b; proxy_temp_path {d}/p; fastcgi_temp_path {d}/f;
               uwsgi_temp_path {d}/u; scgi_temp_path {d}/s;
               server {{ listen 127.0.0.1:{port}; root {d}/www; }} }}"
        );
        std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
        let child = Command::new(bin)
            .arg("-c")
            .arg(dir.path().join("nginx.conf"))
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let nginx = Nginx {
            child,
            dir,
            base: format!("http://127.0.0.1:{port}/"),
        };
        // Wait until it accepts connections (bounded; not a timing assertion).
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(nginx);
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!(
            "nginx did not start: {}",
            std::fs::read_to_string(nginx.dir.path().join("error.log")).unwrap_or_default()
        );
    }

    async fn head_info(
        client: &reqwest::Client,
        url: &str,
        range_from: u64,
        if_range: Option<&str>,
    ) -> (u16, Option<String>, Option<String>, Option<u64>) {
        let mut req = client.get(url);
        if range_from > 0 {
            req = req.header("Range", format!("bytes={range_from}-"));
        }
        if let Some(v) = if_range {
            req = req.header("If-Range", v);
        }
        let resp = req.send().await.unwrap();
        let h = |n| {
            resp.headers()
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let out = (
            resp.status().as_u16(),
            h("content-range"),
            h("etag"),
            h("content-length").and_then(|v| v.parse().ok()),
        );
        drop(resp.bytes().await);
        out
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn root_nginx_peer_fetch_and_resume_rules() {
        let Some(nginx) = start() else { return };
        let raw = image(3 << 20);
        let gz = gzip(&raw);
        let www = nginx.dir.path().join("www");
        std::fs::write(www.join("rhcos-metal.x86_64.raw.gz"), &gz).unwrap();

        // A full fetch + gunzip + verify into a cache.
        let fetcher = Fetcher::new(Options {
            env_proxy: false,
            signatures: rhcos_images::SignaturePolicy::Insecure,
            ..Options::default()
        })
        .unwrap();
        let cache_dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(cache_dir.path()).unwrap();
        let a = Artifact {
            name: "rhcos-metal.x86_64.raw.gz".into(),
            location: format!("{}rhcos-metal.x86_64.raw.gz", nginx.base),
            sha256: sha(&gz),
            uncompressed_sha256: Some(sha(&raw)),
            ..Artifact::default()
        };
        let req = Request::new(a.clone(), &Source::Upstream, true).unwrap();
        let got = fetcher.fetch_cached(&cache, &req).await.unwrap();
        assert_eq!(sha(&std::fs::read(&got.path).unwrap()), sha(&raw));

        // nginx's real answers, fed to the sans-IO rules.
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let url = a.location.clone();
        let (status, _, etag, len) = head_info(&client, &url, 0, None).await;
        let etag = etag.expect("nginx sends an ETag");
        let first = resume::Response {
            status,
            content_length: len,
            etag: Some(&etag),
            ..Default::default()
        };
        let Decision::FromStart {
            validator: Some(v), ..
        } = resume::decide(0, None, &first)
        else {
            panic!("first response")
        };
        let (status, range, etag2, _) =
            head_info(&client, &url, 1000, Some(v.header_value())).await;
        let resp = resume::Response {
            status,
            content_range: range.as_deref(),
            etag: etag2.as_deref(),
            ..Default::default()
        };
        assert_eq!(
            resume::decide(1000, Some(&v), &resp),
            Decision::Continue {
                total: gz.len() as u64
            }
        );

        // The file changes: nginx answers the stale If-Range with the whole new file.
        // nginx's ETag is mtime-size; give the new file another size and an older mtime.
        let path = www.join("rhcos-metal.x86_64.raw.gz");
        std::fs::write(&path, gzip(b"new build")).unwrap();
        let f = std::fs::File::options().write(true).open(&path).unwrap();
        f.set_modified(std::time::UNIX_EPOCH + Duration::from_secs(1_000_000_000))
            .unwrap();
        drop(f);
        let (status, range, etag3, len) =
            head_info(&client, &url, 1000, Some(v.header_value())).await;
        let resp = resume::Response {
            status,
            content_range: range.as_deref(),
            content_length: len,
            etag: etag3.as_deref(),
            ..Default::default()
        };
        assert!(
            matches!(
                resume::decide(1000, Some(&v), &resp),
                Decision::FromStart { .. }
            ),
            "nginx answered {status} {range:?}"
        );
    }
}
