//! The outcome types of a signature check: plain data, available without the `signatures`
//! feature so [`Digests`](crate::Digests) can carry them.

/// Who signed: the key that verified a detached signature.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SignerInfo {
    /// Uppercase hex fingerprint of the primary key (the one listed in the keyring).
    pub primary_fingerprint: String,
    /// Uppercase hex fingerprint of the key that made the signature (a subkey, or the primary).
    pub key_fingerprint: String,
    /// The primary key's user IDs, for example `Fedora (44) <fedora-44-primary@fedoraproject.org>`.
    pub user_ids: Vec<String>,
    /// Signature creation time, seconds since the Unix epoch, when the signature states it.
    pub created: Option<u64>,
    /// The signature's hash algorithm, for example `SHA256`.
    pub hash: String,
}

/// Why a detached signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureProblem {
    /// The signature file is not OpenPGP, or holds no signature packet.
    #[error("malformed signature: {reason}")]
    Malformed {
        /// The parser's description.
        reason: String,
    },
    /// No key in the keyring made the signature.
    #[error("signed by a key not in the keyring (issuer {issuer})")]
    UnknownKey {
        /// Fingerprint or key ID the signature names (empty when it names none).
        issuer: String,
    },
    /// A key in the keyring could have made it, but the data does not match: it was altered, or
    /// the signature is for other bytes.
    #[error("signature does not match the data (issuer {issuer})")]
    Mismatch {
        /// Fingerprint or key ID the signature names.
        issuer: String,
    },
    /// The signature uses a hash that is no longer collision resistant (MD5, SHA-1, RIPEMD-160).
    #[error("signature uses the weak hash {hash}")]
    WeakHash {
        /// The hash algorithm's name.
        hash: String,
    },
    /// Not a binary-document signature, or a packet version this crate cannot check.
    #[error("unsupported signature: {what}")]
    Unsupported {
        /// What was found.
        what: String,
    },
}
