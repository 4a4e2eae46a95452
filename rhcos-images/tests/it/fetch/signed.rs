// Fetching with a keyring: the signature is fetched first, checked in the same pass as the
// hashes, and stored as `<sha256>.sig` beside the artifact; any failure leaves nothing behind.

use rhcos_images::{Error, Keyring, SignatureProblem};

use super::*;
use crate::signatures::Gpg;

fn signed_options(keyring: Keyring) -> Options {
    Options {
        signatures: SignaturePolicy::Require(keyring),
        ..options()
    }
}

/// Serves the image at any path and `sig` at paths ending in `.sig` (404 when `None`).
async fn serve_signed(img: &Image, sig: Option<Vec<u8>>) -> Server {
    let gz = img.gz.clone();
    let sig = sig.map(Arc::new);
    serve(move |_, req| match (&sig, req.path.ends_with(".sig")) {
        (Some(s), true) => body(s, "s1"),
        (None, true) => Plan::Status(404),
        (_, false) => body(&gz, "v1"),
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_fetch_verifies_in_one_pass_and_keeps_the_signature() {
    let gpg = Gpg::new("ed25519");
    let img = test_image();
    let sig = gpg.sign("image.raw.gz", &img.gz, &[]);
    let server = serve_signed(&img, Some(sig.clone())).await;
    let f = fixture(signed_options(gpg.keyring(true)));
    let req = request(&server, "rhcos-metal.x86_64.raw.gz", &img, true);
    assert_eq!(
        req.signature.as_ref().map(Location::display),
        Some(server.url("rhcos-metal.x86_64.raw.gz.sig"))
    );
    let got = f.fetcher.fetch_cached(&f.cache, &req).await.unwrap();
    assert_raw(&got.path, &img);
    let signer = got.digests.signer.as_ref().unwrap();
    assert_eq!(signer.primary_fingerprint, gpg.fingerprint);
    let sig_path = f.cache.root().join(format!("{}.sig", sha(&img.raw)));
    assert_eq!(got.signature_path.as_deref(), Some(sig_path.as_path()));
    assert_eq!(std::fs::read(&sig_path).unwrap(), sig);
    // The image was downloaded once: the signature is checked on the way, not re-read.
    let paths: Vec<String> = server.seen().into_iter().map(|s| s.path).collect();
    assert_eq!(
        paths,
        [
            "/rhcos-metal.x86_64.raw.gz.sig",
            "/rhcos-metal.x86_64.raw.gz"
        ]
    );

    // Again: a cache hit, with its stored signature.
    let again = f.fetcher.fetch_cached(&f.cache, &req).await.unwrap();
    assert!(again.from_cache);
    assert_eq!(again.signature_path, Some(sig_path));
    assert_eq!(server.seen().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_or_bad_signatures_refuse_the_artifact_and_leave_nothing() {
    let gpg = Gpg::new("ed25519");
    let img = test_image();
    let name = "rhcos-metal.x86_64.raw.gz";

    // No signature on the server.
    let server = serve_signed(&img, None).await;
    let f = fixture(signed_options(gpg.keyring(true)));
    let e = f
        .fetcher
        .fetch_cached(&f.cache, &request(&server, name, &img, true))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::SignatureMissing { artifact, url, source }
            if artifact == name && url.ends_with(".sig")
                && matches!(**source, Error::HttpStatus { status: 404, .. })),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        format!(
            "no signature for {name} at {}",
            server.url(&format!("{name}.sig"))
        )
    );
    f.assert_nothing_stored();

    // A signature over other bytes.
    let sig = gpg.sign("other", b"other bytes", &[]);
    let server = serve_signed(&img, Some(sig)).await;
    let f = fixture(signed_options(gpg.keyring(true)));
    let e = f
        .fetcher
        .fetch_cached(&f.cache, &request(&server, name, &img, true))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::BadSignature { artifact, problem: SignatureProblem::Mismatch { .. } }
            if artifact == name),
        "{e:?}"
    );
    f.assert_nothing_stored();

    // Not a signature at all.
    let server = serve_signed(&img, Some(b"<html>not found</html>".to_vec())).await;
    let f = fixture(signed_options(gpg.keyring(true)));
    let e = f
        .fetcher
        .fetch_cached(&f.cache, &request(&server, name, &img, true))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::BadSignature { artifact, problem: SignatureProblem::Malformed { .. } }
            if artifact == name),
        "{e:?}"
    );
    f.assert_nothing_stored();

    // The default policy requires the release keys, which did not sign a test image.
    let sig = gpg.sign("image.raw.gz", &img.gz, &[]);
    let server = serve_signed(&img, Some(sig)).await;
    let f = fixture(Options {
        signatures: SignaturePolicy::default(),
        ..options()
    });
    assert_eq!(
        SignaturePolicy::default(),
        SignaturePolicy::Require(Keyring::release_keys())
    );
    let e = f
        .fetcher
        .fetch_cached(&f.cache, &request(&server, name, &img, true))
        .await
        .unwrap_err();
    assert!(
        matches!(
            &e,
            Error::BadSignature {
                problem: SignatureProblem::UnknownKey { .. },
                ..
            }
        ),
        "{e:?}"
    );
    f.assert_nothing_stored();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_insecure_cache_entry_is_fetched_again_under_a_keyring() {
    let gpg = Gpg::new("ed25519");
    let img = test_image();
    let sig = gpg.sign("image.raw.gz", &img.gz, &[]);
    let server = serve_signed(&img, Some(sig)).await;
    let f = fixture(options());
    let req = request(&server, "rhcos-metal.x86_64.raw.gz", &img, false);
    let got = f.fetcher.fetch_cached(&f.cache, &req).await.unwrap();
    assert_eq!(got.signature_path, None);
    assert!(got.digests.signer.is_none());
    assert!(f.cache.get_signature(&sha(&img.gz)).is_none());

    let signed = Fetcher::new(signed_options(gpg.keyring(true))).unwrap();
    let got = signed.fetch_cached(&f.cache, &req).await.unwrap();
    assert!(
        !got.from_cache,
        "an unsigned cache entry must not satisfy a keyring"
    );
    assert!(got.digests.signer.is_some());
    assert!(f.cache.get_signature(&sha(&img.gz)).is_some());
}
