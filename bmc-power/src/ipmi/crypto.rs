//! RMCP+ key derivation, integrity and confidentiality (IPMI 2.0 section 13), and the
//! IPMI 1.5 MD5 auth code. Suites 3 and 17 share every function here; only [`Hash`] differs.

use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit, block_padding::NoPadding};
use hmac::{Hmac, Mac};
use md5::{Digest, Md5};

use crate::error::{Error, Result};

/// The hash behind a suite's RAKP authentication and integrity algorithms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hash {
    /// RAKP-HMAC-SHA1 and HMAC-SHA1-96 (suite 3).
    Sha1,
    /// RAKP-HMAC-SHA256 and HMAC-SHA256-128 (suite 17).
    Sha256,
}

impl Hash {
    /// Length of the full HMAC (RAKP2 key exchange auth code, SIK, K1, K2).
    pub(crate) fn len(self) -> usize {
        match self {
            Hash::Sha1 => 20,
            Hash::Sha256 => 32,
        }
    }

    /// Length of the truncated HMAC used in RAKP4 and in packet integrity (SHA1-96 / SHA256-128).
    pub(crate) fn icv_len(self) -> usize {
        match self {
            Hash::Sha1 => 12,
            Hash::Sha256 => 16,
        }
    }
}

/// HMAC over the concatenation of `parts`.
pub(crate) fn hmac(hash: Hash, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    match hash {
        Hash::Sha1 => {
            let mut m = <Hmac<sha1::Sha1> as Mac>::new_from_slice(key)
                .expect("hmac accepts keys of any length");
            for p in parts {
                m.update(p);
            }
            m.finalize().into_bytes().to_vec()
        }
        Hash::Sha256 => {
            let mut m = <Hmac<sha2::Sha256> as Mac>::new_from_slice(key)
                .expect("hmac accepts keys of any length");
            for p in parts {
                m.update(p);
            }
            m.finalize().into_bytes().to_vec()
        }
    }
}

/// Constant-time comparison, so a mismatch position leaks nothing.
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The values both sides of the RAKP exchange know once RAKP2 has arrived.
#[derive(Debug, Clone)]
pub(crate) struct Rakp<'a> {
    pub(crate) hash: Hash,
    /// K_UID: the user's password (RMCP+ pads it with zeros to 20 bytes; HMAC pads keys anyway).
    pub(crate) kuid: &'a [u8],
    /// K_G, the BMC key; `None` means K_G = K_UID.
    pub(crate) kg: Option<&'a [u8]>,
    /// SIDm: the remote console's (our) session id.
    pub(crate) console_sid: u32,
    /// SIDc: the managed system's (BMC's) session id.
    pub(crate) bmc_sid: u32,
    /// Rm: our random number.
    pub(crate) rm: [u8; 16],
    /// Rc: the BMC's random number.
    pub(crate) rc: [u8; 16],
    /// GUIDc: the BMC's GUID.
    pub(crate) guid: [u8; 16],
    /// RoleM: the requested role byte exactly as sent in RAKP1 (privilege plus lookup bit).
    pub(crate) role: u8,
    /// UNameM.
    pub(crate) user: &'a [u8],
}

impl Rakp<'_> {
    /// RAKP2 key exchange auth code: HMAC_KUID(SIDm | SIDc | Rm | Rc | GUIDc | RoleM | ULenM | UNameM).
    pub(crate) fn rakp2_auth(&self) -> Vec<u8> {
        hmac(
            self.hash,
            self.kuid,
            &[
                &self.console_sid.to_le_bytes(),
                &self.bmc_sid.to_le_bytes(),
                &self.rm,
                &self.rc,
                &self.guid,
                &[self.role, self.user.len() as u8],
                self.user,
            ],
        )
    }

    /// RAKP3 key exchange auth code: HMAC_KUID(Rc | SIDm | RoleM | ULenM | UNameM).
    pub(crate) fn rakp3_auth(&self) -> Vec<u8> {
        hmac(
            self.hash,
            self.kuid,
            &[
                &self.rc,
                &self.console_sid.to_le_bytes(),
                &[self.role, self.user.len() as u8],
                self.user,
            ],
        )
    }

    /// Session integrity key: SIK = HMAC_KG(Rm | Rc | RoleM | ULenM | UNameM).
    pub(crate) fn sik(&self) -> Vec<u8> {
        hmac(
            self.hash,
            self.kg.unwrap_or(self.kuid),
            &[
                &self.rm,
                &self.rc,
                &[self.role, self.user.len() as u8],
                self.user,
            ],
        )
    }

    /// RAKP4 integrity check value: HMAC_SIK(Rm | SIDc | GUIDc), truncated.
    pub(crate) fn rakp4_icv(&self, sik: &[u8]) -> Vec<u8> {
        let mut v = hmac(
            self.hash,
            sik,
            &[&self.rm, &self.bmc_sid.to_le_bytes(), &self.guid],
        );
        v.truncate(self.hash.icv_len());
        v
    }
}

/// K_n = HMAC_SIK(Const n), Const n = n repeated 20 times (K1 for integrity, K2 for
/// confidentiality). The constant is 20 bytes for every suite, SHA-256 ones included (IPMI 2.0
/// section 13.32; ipmitool and FreeIPMI compute it so); only the resulting key is
/// hash-length.
pub(crate) fn additional_key(hash: Hash, sik: &[u8], n: u8) -> Vec<u8> {
    hmac(hash, sik, &[&[n; 20]])
}

/// Packet integrity auth code: HMAC_K1(bytes), truncated to 12 (SHA1-96) or 16 (SHA256-128).
pub(crate) fn integrity(hash: Hash, k1: &[u8], bytes: &[u8]) -> Vec<u8> {
    let mut v = hmac(hash, k1, &[bytes]);
    v.truncate(hash.icv_len());
    v
}

/// AES-CBC-128 with the IPMI confidentiality trailer: `IV | E(data | 1, 2, .., n | n)`.
pub(crate) fn encrypt(k2: &[u8], iv: [u8; 16], data: &[u8]) -> Vec<u8> {
    let pad = (16 - (data.len() + 1) % 16) % 16;
    let mut plain = Vec::with_capacity(data.len() + pad + 1);
    plain.extend_from_slice(data);
    plain.extend((1..=pad as u8).collect::<Vec<_>>());
    plain.push(pad as u8);
    let key: [u8; 16] = k2[..16].try_into().expect("k2 is at least 20 bytes");
    let ct = cbc::Encryptor::<aes::Aes128>::new(&key.into(), &iv.into())
        .encrypt_padded_vec_mut::<NoPadding>(&plain);
    let mut out = iv.to_vec();
    out.extend_from_slice(&ct);
    out
}

/// Undo [`encrypt`]; checks the pad.
pub(crate) fn decrypt(k2: &[u8], payload: &[u8]) -> Result<Vec<u8>> {
    if payload.len() < 32 || !payload.len().is_multiple_of(16) {
        return Err(Error::protocol(
            "encrypted payload length is not IV plus whole blocks",
        ));
    }
    let (iv, ct) = payload.split_at(16);
    let key: [u8; 16] = k2[..16].try_into().expect("k2 is at least 20 bytes");
    let iv: [u8; 16] = iv.try_into().expect("split at 16");
    let mut plain = cbc::Decryptor::<aes::Aes128>::new(&key.into(), &iv.into())
        .decrypt_padded_vec_mut::<NoPadding>(ct)
        .map_err(|_| Error::protocol("aes-cbc decryption failed"))?;
    let pad = *plain.last().expect("at least one block") as usize;
    if pad + 1 > plain.len() || pad > 15 {
        return Err(Error::protocol("bad confidentiality pad length"));
    }
    let body = plain.len() - pad - 1;
    if plain[body..plain.len() - 1]
        .iter()
        .enumerate()
        .any(|(i, &b)| b as usize != i + 1)
    {
        return Err(Error::protocol("bad confidentiality pad bytes"));
    }
    plain.truncate(body);
    Ok(plain)
}

/// The password as IPMI 1.5 uses it: zero-padded to 16 bytes.
pub(crate) fn password16(password: &[u8]) -> [u8; 16] {
    let mut p = [0u8; 16];
    let n = password.len().min(16);
    p[..n].copy_from_slice(&password[..n]);
    p
}

/// IPMI 1.5 MD5 auth code: MD5(password | session id | message | session seq | password).
pub(crate) fn md5_auth(password: &[u8; 16], session_id: u32, msg: &[u8], seq: u32) -> [u8; 16] {
    let mut h = Md5::new();
    h.update(password);
    h.update(session_id.to_le_bytes());
    h.update(msg);
    h.update(seq.to_le_bytes());
    h.update(password);
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn aes_round_trip(key in proptest::collection::vec(any::<u8>(), 20..33), iv: [u8; 16],
                          data in proptest::collection::vec(any::<u8>(), 0..100)) {
            let ct = encrypt(&key, iv, &data);
            prop_assert_eq!(ct.len() % 16, 0);
            prop_assert_eq!(decrypt(&key, &ct).unwrap(), data);
        }

        #[test]
        fn decrypt_never_panics(key in proptest::collection::vec(any::<u8>(), 20..21),
                                junk in proptest::collection::vec(any::<u8>(), 0..80)) {
            let _ = decrypt(&key, &junk);
        }
    }

    #[test]
    fn md5_auth_code() {
        // python3 -c 'import hashlib,struct; p=b"password"+bytes(8);
        //   print(hashlib.md5(p+struct.pack("<I",0x11223344)+bytes([0x20,0x18,0xc8])+struct.pack("<I",1)+p).hexdigest())'
        let p = password16(b"password");
        let code = md5_auth(&p, 0x1122_3344, &[0x20, 0x18, 0xc8], 1);
        assert_eq!(hex::encode(code), MD5_VECTOR);
    }

    const MD5_VECTOR: &str = "f2ce9fa533a2d807d98738a477584b36";
}
