//! Known-answer tests for RMCP+ suites 3 and 17, worked from the IPMI 2.0 specification
//! (section 13.31 RAKP, 13.32 SIK, K1/K2, 13.28 integrity, 13.29 AES-CBC-128).
//!
//! The expected values were computed outside this crate, with Python's hmac/hashlib and with
//! openssl, from these inputs:
//!
//! ```text
//! K_UID = b"password", UNameM = b"admin", RoleM = 0x14 (admin, name-only lookup)
//! SIDm = 0xa0a2a3a4 (console), SIDc = 0x01020304 (bmc), Rm = 00..0f, Rc = 10..1f
//! GUIDc = a123456789abcdefa123456789abcdef
//!
//! import hmac, hashlib, struct
//! H = lambda k, m: hmac.new(k, m, hashlib.sha1 or hashlib.sha256).digest()
//! sidm, sidc = struct.pack("<I", 0xa0a2a3a4), struct.pack("<I", 0x01020304)
//! rakp2 = H(kuid, sidm + sidc + rm + rc + guid + bytes([0x14, 5]) + b"admin")
//! rakp3 = H(kuid, rc + sidm + bytes([0x14, 5]) + b"admin")
//! sik   = H(kuid, rm + rc + bytes([0x14, 5]) + b"admin")
//! k1, k2 = H(sik, b"\x01" * 20), H(sik, b"\x02" * 20)      # 20 bytes for both suites
//! rakp4 = H(sik, rm + sidc + guid)[:12 or 16]
//! icv   = H(k1, bytes.fromhex("06c004030201010000002000") + bytes(32) + b"\xff\xff\x02\x07")[:12 or 16]
//!
//! printf '2000e08104017a010203040506070808' | xxd -r -p |
//!   openssl enc -aes-128-cbc -K <k2[:16]> -iv 000102030405060708090a0b0c0d0e0f -nopad | xxd -p
//! ```
//!
//! Both suites go through the same `Handshake` and `SessionV2` code; only the hash differs,
//! which `same_code_path_for_both_suites` checks.
//!
//! The K1/K2 constant is 20 bytes for suite 17 too (IPMI 2.0 section 13.32; ipmitool and
//! FreeIPMI agree). Vectors worked from one reading of the specification cannot catch a
//! misreading the code shares, so `interop.rs` also checks suite 17 against ipmitool.

use super::crypto::{self, Hash};
use super::session::{CipherSuite, Credentials, Handshake, Step};
use super::wire::{self, Request, payload};

const CONSOLE_SID: u32 = 0xa0a2_a3a4;
const BMC_SID: u32 = 0x0102_0304;
const GUID: &str = "a123456789abcdefa123456789abcdef";

struct Vectors {
    suite: CipherSuite,
    rakp2: &'static str,
    rakp3: &'static str,
    sik: &'static str,
    k1: &'static str,
    k2: &'static str,
    rakp4: &'static str,
    icv: &'static str,
    aes: &'static str,
}

const SUITE3: Vectors = Vectors {
    suite: CipherSuite::Suite3,
    rakp2: "5e4f85599417e633213afd9370bf67815adc5dae",
    rakp3: "4ab420258775814f120682c8ab9275c29997effd",
    sik: "122c77c4b11ccd93251cbae6c34a9cb6310da154",
    k1: "e4472be78f9a81fa68297aab696a7be8c97fc9f8",
    k2: "2b6552012a2517cb3b5713901d757a6efc7d8301",
    rakp4: "9f904b3938cafaf7ee2f3bc2",
    icv: "c6e306e770199c18822fbec9",
    aes: "66192aabc3dd9b9b12d3b3789b8085ca",
};

const SUITE17: Vectors = Vectors {
    suite: CipherSuite::Suite17,
    rakp2: "95db572416b6a1fab19296596e78711814f6240a3a9962e8654e18cf0605a86e",
    rakp3: "72a845290e0504673b2177d93a8dd844954778f3fe6b0476b2e7055a21663586",
    sik: "e5935f7199865ad961063477b0662684e2ce9b1da8f2b8d41c5ce127d37e9bcf",
    k1: "dc4fe73d075306f6897115dd63257385e845c10404fa1d73991790c6a101bec2",
    k2: "2a4f969ea6dfa83066f36674fdc2fea289fa1a21da90303e9b5269b54ec5adb5",
    rakp4: "451bf460dc5ca7a60cc6b2fd800f24c8",
    icv: "554d08abb60635a634b8a5237f200f70",
    aes: "5b002cbe77c91c70784f66f7d14bafd1",
};

fn h(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

fn rm() -> [u8; 16] {
    std::array::from_fn(|i| i as u8)
}

fn rc() -> [u8; 16] {
    std::array::from_fn(|i| 16 + i as u8)
}

fn rakp(hash: Hash, guid: &[u8; 16]) -> crypto::Rakp<'static> {
    crypto::Rakp {
        hash,
        kuid: b"password",
        kg: None,
        console_sid: CONSOLE_SID,
        bmc_sid: BMC_SID,
        rm: rm(),
        rc: rc(),
        guid: *guid,
        role: 0x14,
        user: b"admin",
    }
}

fn check_formulas(v: &Vectors) {
    let guid: [u8; 16] = h(GUID).try_into().unwrap();
    let hash = v.suite.hash();
    let r = rakp(hash, &guid);
    assert_eq!(hex::encode(r.rakp2_auth()), v.rakp2);
    assert_eq!(hex::encode(r.rakp3_auth()), v.rakp3);
    let sik = r.sik();
    assert_eq!(hex::encode(&sik), v.sik);
    assert_eq!(hex::encode(crypto::additional_key(hash, &sik, 1)), v.k1);
    assert_eq!(hex::encode(crypto::additional_key(hash, &sik, 2)), v.k2);
    assert_eq!(hex::encode(r.rakp4_icv(&sik)), v.rakp4);
    let mut signed = h("06c004030201010000002000");
    signed.extend_from_slice(&[0; 32]);
    signed.extend_from_slice(&[0xff, 0xff, 0x02, 0x07]);
    assert_eq!(
        hex::encode(crypto::integrity(hash, &h(v.k1), &signed)),
        v.icv
    );
    let ct = crypto::encrypt(&h(v.k2), rm(), &[0x20, 0x00, 0xe0, 0x81, 0x04, 0x01, 0x7a]);
    assert_eq!(hex::encode(&ct[16..]), v.aes);
    assert_eq!(
        crypto::decrypt(&h(v.k2), &ct).unwrap(),
        [0x20, 0x00, 0xe0, 0x81, 0x04, 0x01, 0x7a]
    );
}

#[test]
fn suite3_formulas() {
    check_formulas(&SUITE3);
}

#[test]
fn suite17_formulas() {
    check_formulas(&SUITE17);
}

/// Drive the sans-IO handshake with a scripted BMC whose answers are the independent vectors,
/// then wrap a request and check the integrity code and ciphertext. Suites 3 and 17 go
/// through exactly this code; only the vectors differ.
fn scripted_handshake(v: &Vectors) {
    let creds = Credentials {
        username: "admin".into(),
        password: "password".into(),
        kg: None,
    };
    let mut hs = Handshake::new(v.suite, creds, CONSOLE_SID, rm());
    let open = hs.start();
    let (a, i, c) = v.suite.algorithms();
    // The request names the suite's algorithms at fixed offsets (IPMI 2.0 table 13-9).
    let o = wire::decode_v2(&open, 0).unwrap();
    assert_eq!(o.payload_type, payload::OPEN_SESSION_REQUEST);
    assert_eq!((o.payload[12], o.payload[20], o.payload[28]), (a, i, c));

    // Open Session Response.
    let mut p = vec![0, 0, 4, 0];
    p.extend_from_slice(&CONSOLE_SID.to_le_bytes());
    p.extend_from_slice(&BMC_SID.to_le_bytes());
    p.extend_from_slice(&[
        0, 0, 0, 8, a, 0, 0, 0, 1, 0, 0, 8, i, 0, 0, 0, 2, 0, 0, 8, c, 0, 0, 0,
    ]);
    let d = wire::encode_v2(payload::OPEN_SESSION_RESPONSE, false, 0, 0, &p, None);
    let Some(Step::Send(rakp1)) = hs.handle(&d).unwrap() else {
        panic!("expected rakp1")
    };
    let r1 = wire::decode_v2(&rakp1, 0).unwrap();
    assert_eq!(r1.payload_type, payload::RAKP1);
    assert_eq!(&r1.payload[4..8], &BMC_SID.to_le_bytes());
    assert_eq!(&r1.payload[8..24], &rm());
    assert_eq!(
        &r1.payload[24..],
        &[0x14, 0, 0, 5, b'a', b'd', b'm', b'i', b'n']
    );
    // A duplicate Open Session Response (retransmission) is ignored, not an error.
    assert!(hs.handle(&d).unwrap().is_none());

    // RAKP2 with the vector's key exchange auth code.
    let mut p = vec![0, 0, 0, 0];
    p.extend_from_slice(&CONSOLE_SID.to_le_bytes());
    p.extend_from_slice(&rc());
    p.extend_from_slice(&h(GUID));
    p.extend_from_slice(&h(v.rakp2));
    let d = wire::encode_v2(payload::RAKP2, false, 0, 0, &p, None);
    let Some(Step::Send(rakp3)) = hs.handle(&d).unwrap() else {
        panic!("expected rakp3")
    };
    let r3 = wire::decode_v2(&rakp3, 0).unwrap();
    assert_eq!(r3.payload_type, payload::RAKP3);
    assert_eq!(hex::encode(&r3.payload[8..]), v.rakp3);

    // RAKP4 with the vector's integrity check value.
    let mut p = vec![0, 0, 0, 0];
    p.extend_from_slice(&CONSOLE_SID.to_le_bytes());
    p.extend_from_slice(&h(v.rakp4));
    let d = wire::encode_v2(payload::RAKP4, false, 0, 0, &p, None);
    let Some(Step::Done(mut s)) = hs.handle(&d).unwrap() else {
        panic!("expected an established session")
    };

    // First session message: Get Chassis Status, IV 00..0f.
    let req = Request {
        netfn: 0,
        cmd: 1,
        rq_seq: 1,
        data: vec![],
    };
    let pkt = s.encode(&req, rm());
    let hash = v.suite.hash();
    let w = wire::decode_v2(&pkt, hash.icv_len()).unwrap();
    assert!(w.encrypted && w.authenticated);
    assert_eq!((w.sid, w.seq), (BMC_SID, 1));
    assert_eq!(hex::encode(&w.payload[16..]), v.aes);
    assert_eq!(
        hex::encode(w.auth_code),
        hex::encode(crypto::integrity(hash, &h(v.k1), w.signed))
    );
}

#[test]
fn suite3_scripted_handshake() {
    scripted_handshake(&SUITE3);
}

#[test]
fn suite17_scripted_handshake() {
    scripted_handshake(&SUITE17);
}

#[test]
fn same_code_path_for_both_suites() {
    // Suite 17 differs from suite 3 only in the hash and the algorithm numbers.
    assert_eq!(CipherSuite::Suite3.hash(), Hash::Sha1);
    assert_eq!(CipherSuite::Suite17.hash(), Hash::Sha256);
    assert_eq!(CipherSuite::Suite3.algorithms(), (1, 1, 1));
    assert_eq!(CipherSuite::Suite17.algorithms(), (3, 4, 1));
    assert_eq!((Hash::Sha1.len(), Hash::Sha1.icv_len()), (20, 12));
    assert_eq!((Hash::Sha256.len(), Hash::Sha256.icv_len()), (32, 16));
}

#[test]
fn wrong_password_is_an_authentication_error() {
    let creds = Credentials {
        username: "admin".into(),
        password: "wrong".into(),
        kg: None,
    };
    let mut hs = Handshake::new(CipherSuite::Suite17, creds, CONSOLE_SID, rm());
    let mut p = vec![0, 0, 4, 0];
    p.extend_from_slice(&CONSOLE_SID.to_le_bytes());
    p.extend_from_slice(&BMC_SID.to_le_bytes());
    p.extend_from_slice(&[
        0, 0, 0, 8, 3, 0, 0, 0, 1, 0, 0, 8, 4, 0, 0, 0, 2, 0, 0, 8, 1, 0, 0, 0,
    ]);
    hs.handle(&wire::encode_v2(
        payload::OPEN_SESSION_RESPONSE,
        false,
        0,
        0,
        &p,
        None,
    ))
    .unwrap();
    let mut p = vec![0, 0, 0, 0];
    p.extend_from_slice(&CONSOLE_SID.to_le_bytes());
    p.extend_from_slice(&rc());
    p.extend_from_slice(&h(GUID));
    p.extend_from_slice(&h(SUITE17.rakp2));
    let e = hs
        .handle(&wire::encode_v2(payload::RAKP2, false, 0, 0, &p, None))
        .unwrap_err();
    assert!(matches!(e, crate::Error::Authentication { .. }), "{e:?}");
}

#[test]
fn rejected_suite_is_unsupported() {
    // ipmi_sim answers an Open Session for suite 17 with status 0x04 (invalid auth algorithm).
    let mut hs = Handshake::new(
        CipherSuite::Suite17,
        Credentials::default(),
        CONSOLE_SID,
        rm(),
    );
    let p = [0, 0x04, 0, 0, 0xa4, 0xa3, 0xa2, 0xa0];
    let e = hs
        .handle(&wire::encode_v2(
            payload::OPEN_SESSION_RESPONSE,
            false,
            0,
            0,
            &p,
            None,
        ))
        .unwrap_err();
    assert!(matches!(e, crate::Error::Unsupported { .. }), "{e:?}");
}
