//! Detached OpenPGP signatures (feature `signatures`): a [`Keyring`] of trusted public keys and
//! a [`SignatureCheck`] that hashes the signed bytes incrementally, so a 1 GiB image is checked
//! in the same single pass that computes its SHA-256, never held in memory.
//!
//! Only binary-document signatures (what `gpg --detach-sign` and the CoreOS release tooling make)
//! are accepted, with SHA-2 or SHA-3 hashes; MD5, SHA-1 and RIPEMD-160 are refused. Key expiry
//! and revocation are not evaluated: the keyring itself is the trust decision, as with
//! coreos-installer's embedded keys.

use std::io::Read;
use std::sync::{Arc, LazyLock};

use digest::DynDigest;
use pgp::composed::{Deserializable, DetachedSignature, SignedPublicKey};
use pgp::crypto::hash::HashAlgorithm;
use pgp::packet::{Signature, SignatureType, SignatureVersionSpecific};
use pgp::types::{KeyDetails, KeyVersion, VerifyingKey};

use crate::error::{Error, Result};

/// The release keys coreos-installer 0.27 embeds (Red Hat release key 2, Fedora 44-46); see
/// `keys/README.md` for provenance and fingerprints.
const RELEASE_KEYS: &[u8] = include_bytes!("../keys/release-keys.asc");

static RELEASE: LazyLock<Keyring> = LazyLock::new(|| {
    // The vendored file is tested to load (`release_keys_load`), so this cannot fail at run time.
    Keyring::from_bytes(RELEASE_KEYS, "keys/release-keys.asc")
        .expect("the vendored release keys parse")
});

use crate::signer::{SignatureProblem, SignerInfo};

/// Trusted OpenPGP public keys. Cheap to clone; compares equal when it holds the same keys.
#[derive(Clone, Default)]
pub struct Keyring {
    keys: Arc<Vec<SignedPublicKey>>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("fingerprints", &self.fingerprints())
            .finish()
    }
}

impl PartialEq for Keyring {
    fn eq(&self, other: &Self) -> bool {
        self.fingerprints() == other.fingerprints()
    }
}

impl Eq for Keyring {}

impl Keyring {
    /// An empty keyring: every signature checked against it fails with
    /// [`SignatureProblem::UnknownKey`].
    pub fn new() -> Self {
        Keyring::default()
    }

    /// The Fedora and Red Hat release keys that coreos-installer embeds: what Fedora CoreOS and
    /// RHCOS images are signed with.
    pub fn release_keys() -> Self {
        RELEASE.clone()
    }

    /// Reads public keys, ASCII-armored or binary, one or several (a `gpg --export` of a
    /// keyring works). `origin` (a path or URL) only goes into errors.
    pub fn from_bytes(bytes: &[u8], origin: &str) -> Result<Self> {
        let invalid = |reason: String| Error::Keys {
            origin: origin.to_owned(),
            reason,
        };
        // rPGP reads one armor block per call, and key files often concatenate several (the
        // release keys are four), so each block is parsed on its own.
        const BEGIN: &[u8] = b"-----BEGIN PGP";
        let mut blocks = Vec::new();
        let mut rest = bytes;
        while let Some(start) = find(rest, BEGIN) {
            let next = find(&rest[start + BEGIN.len()..], BEGIN)
                .map_or(rest.len(), |n| start + BEGIN.len() + n);
            blocks.push(&rest[start..next]);
            rest = &rest[next..];
        }
        if blocks.is_empty() {
            blocks.push(bytes);
        }
        let mut keys = Vec::new();
        for block in blocks {
            let (parsed, _headers) =
                SignedPublicKey::from_reader_many(block).map_err(|e| invalid(e.to_string()))?;
            for key in parsed {
                keys.push(key.map_err(|e| invalid(e.to_string()))?);
            }
        }
        if keys.is_empty() {
            return Err(invalid("no public key found".into()));
        }
        Ok(Keyring {
            keys: Arc::new(keys),
        })
    }

    /// Adds the keys of `other`.
    pub fn extend(&mut self, other: &Keyring) {
        Arc::make_mut(&mut self.keys).extend(other.keys.iter().cloned());
    }

    /// Uppercase hex fingerprints of the primary keys, in load order.
    pub fn fingerprints(&self) -> Vec<String> {
        self.keys
            .iter()
            .map(|k| format!("{:X}", k.fingerprint()))
            .collect()
    }

    /// True when the keyring holds no key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Starts checking `signature` (armored or binary, one or more signature packets) over data
    /// that will be fed to [`SignatureCheck::update`].
    pub fn check(&self, signature: &[u8]) -> Result<SignatureCheck> {
        SignatureCheck::new(self.clone(), signature)
    }

    /// Checks a detached `signature` over everything `data` yields, reading it in chunks.
    pub fn verify(&self, mut data: impl Read, signature: &[u8]) -> Result<SignerInfo> {
        let mut check = self.check(signature)?;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            match data.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => check.update(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::io("", e)),
            }
        }
        check.finish()
    }

    /// Every key that may have made `sig`: primary keys and signing subkeys whose key ID or
    /// fingerprint the signature names (all of them when it names none), with their primary key.
    fn candidates<'a>(
        &'a self,
        sig: &Signature,
    ) -> Vec<(&'a SignedPublicKey, &'a dyn VerifyingKeyDetails)> {
        let ids = sig.issuer_key_id();
        let fps = sig.issuer_fingerprint();
        let named = |k: &dyn VerifyingKeyDetails| {
            (ids.is_empty() && fps.is_empty())
                || ids.iter().any(|id| **id == k.legacy_key_id())
                || fps.iter().any(|fp| **fp == k.fingerprint())
        };
        let mut out: Vec<(&SignedPublicKey, &dyn VerifyingKeyDetails)> = Vec::new();
        for primary in self.keys.iter() {
            if named(primary) {
                out.push((primary, primary));
            }
            for sub in &primary.public_subkeys {
                // A subkey counts only with a valid binding that allows signing.
                let signs = sub.signatures.iter().any(|b| b.key_flags().sign());
                if signs && named(sub) && sub.verify_bindings(&primary.primary_key).is_ok() {
                    out.push((primary, sub));
                }
            }
        }
        out
    }
}

/// `VerifyingKey` is object-safe but `KeyDetails` methods are what we match on; both together.
trait VerifyingKeyDetails: VerifyingKey + KeyDetails {}
impl<T: VerifyingKey + KeyDetails> VerifyingKeyDetails for T {}

/// One signature being checked, with its own hash of the data.
struct Pending {
    signature: Signature,
    hasher: Box<dyn DynDigest + Send>,
}

/// An incremental detached-signature check: [`update`](Self::update) with the signed bytes in
/// any chunking, then [`finish`](Self::finish). Made by [`Keyring::check`].
pub struct SignatureCheck {
    keyring: Keyring,
    pending: Vec<Pending>,
    /// Why signatures in the file were set aside before hashing (weak hash, text mode, ...).
    set_aside: Vec<SignatureProblem>,
    artifact: String,
}

impl std::fmt::Debug for SignatureCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignatureCheck")
            .field("artifact", &self.artifact)
            .field("signatures", &self.pending.len())
            .field("keyring", &self.keyring)
            .finish()
    }
}

impl SignatureCheck {
    fn new(keyring: Keyring, signature: &[u8]) -> Result<Self> {
        let mut check = SignatureCheck {
            keyring,
            pending: Vec::new(),
            set_aside: Vec::new(),
            artifact: "data".to_owned(),
        };
        let malformed = |reason: String| SignatureProblem::Malformed { reason };
        let signatures = DetachedSignature::from_reader_many(signature)
            .and_then(|(sigs, _)| sigs.collect::<std::result::Result<Vec<_>, _>>())
            .map_err(|e| check.fail(malformed(e.to_string())))?;
        for DetachedSignature { signature } in signatures {
            match start(&signature) {
                Ok(hasher) => check.pending.push(Pending { signature, hasher }),
                Err(problem) => check.set_aside.push(problem),
            }
        }
        if check.pending.is_empty() {
            let problem = check
                .set_aside
                .pop()
                .unwrap_or_else(|| malformed("no signature packet".into()));
            return Err(check.fail(problem));
        }
        Ok(check)
    }

    /// Names the signed artifact in errors (the default is `data`).
    pub fn for_artifact(mut self, name: impl Into<String>) -> Self {
        self.artifact = name.into();
        self
    }

    /// Feeds the next signed bytes.
    pub fn update(&mut self, data: &[u8]) {
        for p in &mut self.pending {
            p.hasher.update(data);
        }
    }

    /// Forgets the bytes fed so far, for a download that restarts from byte zero.
    pub fn restart(&mut self) {
        for p in &mut self.pending {
            p.hasher.reset();
            if let Some(SignatureVersionSpecific::V6 { salt }) =
                p.signature.config().map(|c| &c.version_specific)
            {
                p.hasher.update(salt);
            }
        }
    }

    /// Ends the data and checks it: succeeds when any signature in the file was made over it by
    /// a key in the keyring.
    pub fn finish(mut self) -> Result<SignerInfo> {
        let mut problem = None;
        for Pending { signature, hasher } in std::mem::take(&mut self.pending) {
            match self.finish_one(&signature, hasher) {
                Ok(info) => return Ok(info),
                // A mismatch by a known key says more than "unknown key" from another signature.
                Err(p) => {
                    if problem.is_none() || matches!(p, SignatureProblem::Mismatch { .. }) {
                        problem = Some(p);
                    }
                }
            }
        }
        let problem = problem.unwrap_or_else(|| SignatureProblem::Malformed {
            reason: "no signature packet".into(),
        });
        Err(Error::BadSignature {
            artifact: self.artifact,
            problem,
        })
    }

    fn finish_one(
        &self,
        sig: &Signature,
        mut hasher: Box<dyn DynDigest + Send>,
    ) -> std::result::Result<SignerInfo, SignatureProblem> {
        let malformed = |e: pgp::errors::Error| SignatureProblem::Malformed {
            reason: e.to_string(),
        };
        let (Some(config), Some(bytes), Some(left16)) =
            (sig.config(), sig.signature(), sig.signed_hash_value())
        else {
            return Err(SignatureProblem::Unsupported {
                what: format!("signature version {:?}", sig.version()),
            });
        };
        let len = config.hash_signature_data(&mut hasher).map_err(malformed)?;
        hasher.update(&config.trailer(len).map_err(malformed)?);
        let hash = hasher.finalize();
        let mut tried = false;
        for (primary, key) in self.keyring.candidates(sig) {
            let v6_key = key.version() == KeyVersion::V6;
            let v6_sig = matches!(config.version_specific, SignatureVersionSpecific::V6 { .. });
            if v6_key != v6_sig {
                continue;
            }
            tried = true;
            if hash.get(..2) == Some(&left16[..])
                && key.verify(config.hash_alg, &hash, bytes).is_ok()
            {
                return Ok(signer_info(primary, key, sig));
            }
        }
        if tried {
            Err(SignatureProblem::Mismatch {
                issuer: issuer(sig),
            })
        } else {
            Err(SignatureProblem::UnknownKey {
                issuer: issuer(sig),
            })
        }
    }

    fn fail(&self, problem: SignatureProblem) -> Error {
        Error::BadSignature {
            artifact: self.artifact.clone(),
            problem,
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A hasher for one signature, or why the signature cannot be used for a binary document.
fn start(sig: &Signature) -> std::result::Result<Box<dyn DynDigest + Send>, SignatureProblem> {
    let Some(config) = sig.config() else {
        return Err(SignatureProblem::Unsupported {
            what: format!("signature version {:?}", sig.version()),
        });
    };
    if config.typ != SignatureType::Binary {
        return Err(SignatureProblem::Unsupported {
            what: format!(
                "{:?} signature (expected a binary document signature)",
                config.typ
            ),
        });
    }
    if matches!(
        config.hash_alg,
        HashAlgorithm::None | HashAlgorithm::Md5 | HashAlgorithm::Sha1 | HashAlgorithm::Ripemd160
    ) {
        return Err(SignatureProblem::WeakHash {
            hash: config.hash_alg.to_string(),
        });
    }
    let mut hasher = config
        .hash_alg
        .new_hasher()
        .map_err(|e| SignatureProblem::Unsupported {
            what: e.to_string(),
        })?;
    if let SignatureVersionSpecific::V6 { salt } = &config.version_specific {
        hasher.update(salt);
    }
    Ok(hasher)
}

fn issuer(sig: &Signature) -> String {
    sig.issuer_fingerprint()
        .first()
        .map(|fp| format!("{fp:X}"))
        .or_else(|| {
            sig.issuer_key_id()
                .first()
                .map(|id| id.to_string().to_uppercase())
        })
        .unwrap_or_default()
}

fn signer_info(
    primary: &SignedPublicKey,
    key: &dyn VerifyingKeyDetails,
    sig: &Signature,
) -> SignerInfo {
    SignerInfo {
        primary_fingerprint: format!("{:X}", primary.fingerprint()),
        key_fingerprint: format!("{:X}", key.fingerprint()),
        user_ids: primary
            .details
            .users
            .iter()
            .map(|u| String::from_utf8_lossy(u.id.id()).into_owned())
            .collect(),
        created: sig.created().map(|t| t.as_secs().into()),
        hash: sig.hash_alg().map(|h| h.to_string()).unwrap_or_default(),
    }
}
