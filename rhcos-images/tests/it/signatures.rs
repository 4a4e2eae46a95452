//! Detached OpenPGP signatures against real `gpg` as the peer: gpg makes keys and signatures,
//! our `Keyring` must accept what gpg accepts and refuse what gpg refuses.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use rhcos_images::{Error, Keyring, SignatureProblem};

use super::image;

/// A throwaway `GNUPGHOME` with one key; the agent it starts is stopped on drop.
pub(crate) struct Gpg {
    home: tempfile::TempDir,
    pub(crate) fingerprint: String,
}

impl Gpg {
    /// A new home with a fresh key of `algo` (`ed25519`, `rsa2048`, ...).
    pub(crate) fn new(algo: &str) -> Gpg {
        let home = tempfile::Builder::new()
            .prefix("gpg")
            .tempdir_in("/tmp")
            .unwrap();
        let mut g = Gpg {
            home,
            fingerprint: String::new(),
        };
        let uid = format!("Test {algo} <test-{algo}@example.com>");
        g.ok(&["--quick-gen-key", &uid, algo, "sign", "never"]);
        let colons = String::from_utf8(g.ok(&["--with-colons", "--list-keys"]).stdout).unwrap();
        g.fingerprint = colons
            .lines()
            .find_map(|l| {
                l.strip_prefix("fpr:")
                    .map(|r| r.trim_matches(':').to_owned())
            })
            .unwrap();
        g
    }

    pub(crate) fn run(&self, args: &[&str]) -> Output {
        Command::new("gpg")
            .env("GNUPGHOME", self.home.path())
            .args(["--batch", "--pinentry-mode", "loopback", "--passphrase", ""])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("gpg is needed for these tests (apt-get install gnupg)")
    }

    pub(crate) fn ok(&self, args: &[&str]) -> Output {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "gpg {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.home.path().join(name)
    }

    /// Writes `data` to `name` and signs it, returning the detached signature.
    pub(crate) fn sign(&self, name: &str, data: &[u8], extra: &[&str]) -> Vec<u8> {
        let file = self.path(name);
        std::fs::write(&file, data).unwrap();
        let sig = self.path(&format!("{name}.sig"));
        let _ = std::fs::remove_file(&sig);
        let mut args = vec!["--detach-sign", "--output", sig.to_str().unwrap()];
        args.extend_from_slice(extra);
        args.push(file.to_str().unwrap());
        self.ok(&args);
        std::fs::read(sig).unwrap()
    }

    /// Whether gpg accepts `sig` over the file `data`.
    pub(crate) fn verifies(&self, sig: &[u8], data: &Path) -> bool {
        let sig_file = self.path("check.sig");
        std::fs::write(&sig_file, sig).unwrap();
        self.run(&[
            "--verify",
            sig_file.to_str().unwrap(),
            data.to_str().unwrap(),
        ])
        .status
        .success()
    }

    pub(crate) fn keyring(&self, armor: bool) -> Keyring {
        let args: &[&str] = if armor {
            &["--armor", "--export"]
        } else {
            &["--export"]
        };
        Keyring::from_bytes(&self.ok(args).stdout, "gpg --export").unwrap()
    }
}

impl Drop for Gpg {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf")
            .env("GNUPGHOME", self.home.path())
            .args(["--kill", "gpg-agent"])
            .output();
    }
}

fn problem(e: Error) -> SignatureProblem {
    match e {
        Error::BadSignature { problem, .. } => problem,
        other => panic!("not a signature error: {other}"),
    }
}

#[test]
fn gpg_signatures_verify_and_a_flipped_byte_is_refused_by_both() {
    let gpg = Gpg::new("ed25519");
    let data = image(3 << 20);
    let sig = gpg.sign("image.raw", &data, &[]);
    let file = gpg.path("image.raw");
    assert!(gpg.verifies(&sig, &file));

    for armor in [true, false] {
        let keyring = gpg.keyring(armor);
        assert_eq!(
            keyring.fingerprints(),
            std::slice::from_ref(&gpg.fingerprint)
        );
        let signer = keyring.verify(&data[..], &sig).unwrap();
        assert_eq!(signer.primary_fingerprint, gpg.fingerprint);
        assert_eq!(signer.user_ids, ["Test ed25519 <test-ed25519@example.com>"]);
        assert!(signer.created.is_some());
    }

    // Any chunking gives the same answer: the check is incremental.
    let keyring = gpg.keyring(true);
    let mut check = keyring.check(&sig).unwrap();
    for chunk in data.chunks(7919) {
        check.update(chunk);
    }
    check.finish().unwrap();

    // A restart forgets what was fed before.
    let mut check = keyring.check(&sig).unwrap();
    check.update(b"garbage from an abandoned attempt");
    check.restart();
    check.update(&data);
    check.finish().unwrap();

    // One flipped bit: refused by us and by gpg.
    let mut bad = data.clone();
    bad[1 << 20] ^= 0x01;
    std::fs::write(&file, &bad).unwrap();
    assert!(!gpg.verifies(&sig, &file), "gpg accepted altered data");
    let e = keyring.verify(&bad[..], &sig).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "bad signature for data: signature does not match the data (issuer {})",
            gpg.fingerprint
        )
    );
    assert!(matches!(problem(e), SignatureProblem::Mismatch { .. }));

    // A truncated file, too.
    assert!(matches!(
        problem(keyring.verify(&data[..data.len() - 1], &sig).unwrap_err()),
        SignatureProblem::Mismatch { .. }
    ));
}

#[test]
fn rsa_and_armored_signatures_and_unknown_keys() {
    let rsa = Gpg::new("rsa2048");
    let other = Gpg::new("ed25519");
    let data = b"initramfs bytes".repeat(1000);
    let armored = rsa.sign(
        "initramfs.img",
        &data,
        &["--armor", "--digest-algo", "SHA512"],
    );
    assert!(armored.starts_with(b"-----BEGIN PGP SIGNATURE-----"));
    let signer = rsa.keyring(false).verify(&data[..], &armored).unwrap();
    assert_eq!(signer.hash, "SHA512");

    // Signed by a key we do not hold: gpg (holding only `other`) and we both refuse.
    let file = rsa.path("initramfs.img");
    assert!(!other.verifies(&armored, &file));
    let e = other.keyring(true).verify(&data[..], &armored).unwrap_err();
    assert!(
        matches!(problem(e), SignatureProblem::UnknownKey { issuer } if issuer == rsa.fingerprint)
    );

    // A keyring with both accepts, and names the right signer.
    let mut both = other.keyring(true);
    both.extend(&rsa.keyring(true));
    let signer = both.verify(&data[..], &armored).unwrap();
    assert_eq!(signer.primary_fingerprint, rsa.fingerprint);
    assert!(Keyring::new().verify(&data[..], &armored).is_err());
}

#[test]
fn policy_stricter_than_gpg_and_malformed_input() {
    let gpg = Gpg::new("ed25519");
    let data = b"kernel".to_vec();
    // gpg 2.2 still accepts SHA-1 data signatures; we refuse them as a policy.
    let sig = gpg.sign("kernel", &data, &["--digest-algo", "SHA1"]);
    assert!(gpg.verifies(&sig, &gpg.path("kernel")));
    let e = gpg.keyring(true).verify(&data[..], &sig).unwrap_err();
    assert_eq!(
        problem(e),
        SignatureProblem::WeakHash {
            hash: "SHA1".into()
        }
    );
    // Text-mode signatures are for documents, not images.
    let sig = gpg.sign("kernel", &data, &["--textmode"]);
    assert!(matches!(
        problem(gpg.keyring(true).verify(&data[..], &sig).unwrap_err()),
        SignatureProblem::Unsupported { .. }
    ));
    // Not a signature at all: neither side takes it.
    assert!(!gpg.verifies(b"not a signature", &gpg.path("kernel")));
    assert!(matches!(
        problem(gpg.keyring(true).check(b"not a signature").unwrap_err()),
        SignatureProblem::Malformed { .. }
    ));
    assert!(matches!(
        Keyring::from_bytes(b"junk", "junk").unwrap_err(),
        Error::Keys { .. }
    ));
}

#[test]
fn release_keys_load() {
    let keys = Keyring::release_keys();
    assert_eq!(
        keys.fingerprints(),
        [
            "567E347AD0044ADE55BA8A5F199E2F91FD431D51", // Red Hat, Inc. (release key 2)
            "36F612DCF27F7D1A48A835E4DBFCF71C6D9F90A6", // Fedora 44
            "4F50A6114CD5C6976A7F1179655A4B02F577861E", // Fedora 45
            "D924B10D3E810DABDD8B56B596E7E91491211FCE", // Fedora 46
        ]
    );
    // A test key's signature is not a release signature.
    let gpg = Gpg::new("ed25519");
    let sig = gpg.sign("x", b"x", &[]);
    assert!(matches!(
        problem(keys.verify(&b"x"[..], &sig).unwrap_err()),
        SignatureProblem::UnknownKey { .. }
    ));
}
