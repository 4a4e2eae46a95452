//! Signatures end to end, with real `gpg` as the peer: a signed stream is fetched and verified
//! into the cache, our HTTP server serves each artifact with its `.sig` beside it, and
//! `gpg --verify` accepts what was served; a flipped byte is refused by both.

use std::path::{Path, PathBuf};
use std::process::Command;

use rhcos_deploy::{Plan, fetch_artifacts};

/// `None` (skip) when gpg or curl is missing, outside CI.
fn tools() -> Option<()> {
    for tool in ["gpg", "curl"] {
        let found = Command::new(tool).arg("--version").output().is_ok();
        if !found {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "{tool} is missing (scripts/install-deps.sh installs it)"
            );
            eprintln!("skipping: {tool} is missing");
            return None;
        }
    }
    Some(())
}

struct Gpg {
    home: tempfile::TempDir,
}

impl Gpg {
    fn new() -> Self {
        let gpg = Gpg {
            home: tempfile::tempdir().unwrap(),
        };
        gpg.run(&[
            "--quick-gen-key",
            "rhcos-metal test <test@rhcos-metal.invalid>",
            "ed25519",
            "sign",
            "never",
        ]);
        gpg
    }

    fn run(&self, args: &[&str]) -> std::process::Output {
        let out = Command::new("gpg")
            .env("GNUPGHOME", self.home.path())
            .args([
                "--batch",
                "--yes",
                "--passphrase",
                "",
                "--pinentry-mode",
                "loopback",
            ])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "gpg {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn sign(&self, file: &Path) -> PathBuf {
        let sig = PathBuf::from(format!("{}.sig", file.display()));
        self.run(&[
            "--detach-sign",
            "--output",
            sig.to_str().unwrap(),
            file.to_str().unwrap(),
        ]);
        sig
    }

    /// Whether `gpg --verify` accepts `sig` over `data`.
    fn verifies(&self, sig: &Path, data: &Path) -> bool {
        Command::new("gpg")
            .env("GNUPGHOME", self.home.path())
            .args(["--batch", "--verify"])
            .args([sig, data])
            .output()
            .unwrap()
            .status
            .success()
    }
}

fn sha256(path: &Path) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(std::fs::read(path).unwrap()))
}

/// A stream whose four artifacts are signed by `gpg`; returns the plan's text.
fn signed_stream(dir: &Path, gpg: &Gpg, image: &[u8]) -> String {
    let file = |name: &str, body: &[u8]| {
        let path = dir.join(name);
        std::fs::write(&path, body).unwrap();
        gpg.sign(&path);
        path
    };
    let kernel = file("signed-kernel-x86_64", b"kernel");
    let initramfs = file("signed-initramfs.x86_64.img", b"initramfs");
    let rootfs = file("signed-rootfs.x86_64.img", b"rootfs");
    let raw = file("signed-metal.x86_64.raw.gz", image);
    let entry = |p: &Path| {
        serde_json::json!({
            "location": format!("file://{}", p.display()),
            "signature": format!("file://{}.sig", p.display()),
            "sha256": sha256(p),
        })
    };
    let stream = serde_json::json!({
        "stream": "signed-test",
        "metadata": { "last-modified": "2026-12-04T00:00:00Z" },
        "architectures": { "x86_64": { "artifacts": { "metal": {
            "release": "test.0",
            "formats": {
                "raw.gz": { "disk": entry(&raw) },
                "pxe": { "kernel": entry(&kernel), "initramfs": entry(&initramfs), "rootfs": entry(&rootfs) },
            },
        } } } },
    });
    let stream_path = dir.join("stream.json");
    std::fs::write(&stream_path, serde_json::to_vec(&stream).unwrap()).unwrap();
    let keyring = dir.join("keys.asc");
    let key = gpg.run(&["--armor", "--export"]).stdout;
    std::fs::write(&keyring, key).unwrap();
    format!(
        r#"
[cluster]
name = "ocp"
base_domain = "example.com"
assets = "/srv/ocp"
[images]
stream = "{}"
cache = "{}"
keyring = "{}"
[provisioning]
interface = "lo"
address = "127.0.0.1"
"#,
        stream_path.display(),
        dir.join("cache").display(),
        keyring.display()
    )
}

/// Fetches `url` with curl into `to`.
fn curl(url: &str, to: &Path) {
    let ok = Command::new("curl")
        .args(["-sSf", "-o"])
        .arg(to)
        .arg(url)
        .status()
        .unwrap()
        .success();
    assert!(ok, "curl {url}");
}

#[tokio::test]
async fn signed_artifacts_round_trip_through_our_server_to_gpg() {
    if tools().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let gpg = Gpg::new();
    let image = vec![0x1f_u8; 64 << 10];
    let plan = Plan::parse(&signed_stream(dir.path(), &gpg, &image), "plan.toml").unwrap();
    let artifacts = fetch_artifacts(&plan, rhcos_images::NoProgress)
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    let image_path = artifacts.image.clone().unwrap();

    // Serve the cache as the deployment does, and fetch the image and its signature.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let mut config = pxe_stack::http::Config::default();
    config.root = Some(artifacts.root.clone());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(pxe_stack::http::Server::new(config).serve(listener, async {
        let _ = stopped.await;
    }));
    let served = dir.path().join("served.raw.gz");
    let served_sig = dir.path().join("served.raw.gz.sig");
    let (a, b) = (served.clone(), served_sig.clone());
    let url = format!("{base}{image_path}");
    tokio::task::spawn_blocking(move || {
        curl(&url, &a);
        curl(&format!("{url}.sig"), &b);
    })
    .await
    .unwrap();
    let _ = stop.send(());
    let _ = server.await;
    assert_eq!(std::fs::read(&served).unwrap(), image);
    assert!(
        gpg.verifies(&served_sig, &served),
        "gpg refuses what we serve"
    );

    // A flipped byte: gpg refuses it, and so does our fetch, even when the metadata's hash
    // was updated to match (only the signature can catch that).
    let mut flipped = image.clone();
    flipped[100] ^= 1;
    std::fs::write(&served, &flipped).unwrap();
    assert!(
        !gpg.verifies(&served_sig, &served),
        "gpg accepts a flipped byte"
    );

    let raw = dir.path().join("signed-metal.x86_64.raw.gz");
    std::fs::write(&raw, &flipped).unwrap();
    let stream_path = dir.path().join("stream.json");
    let text = std::fs::read_to_string(&stream_path)
        .unwrap()
        .replace(&image_sha(&image), &sha256(&raw));
    std::fs::write(&stream_path, text).unwrap();
    let e = fetch_artifacts(&plan, rhcos_images::NoProgress)
        .await
        .unwrap_err();
    assert!(
        matches!(
            &e,
            rhcos_deploy::Error::Images(rhcos_images::Error::BadSignature { .. })
        ),
        "{e:?}"
    );
    assert!(
        !plan.images.cache.join(sha256(&raw)).exists(),
        "an unverified image reached the cache"
    );
}

fn image_sha(image: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(image))
}
