//! TLS trust for Redfish: the system store, a CA file that may hold the BMC's own self-signed
//! certificate, a pinned SHA-256 fingerprint, or trust on first use; and a description of
//! the certificate a BMC presented when it is refused.
//!
//! Most BMCs ship a self-signed certificate whose basic constraints say CA:TRUE. webpki refuses
//! such a certificate as the server's own even when it is the trust anchor
//! (`CaUsedAsEndEntity`), so the pinned cases get their own [`ServerCertVerifier`]: the
//! certificate is accepted when its DER is exactly the pinned one (hostname and validity are
//! then the pin's business), and the handshake signature is still checked with rustls' own
//! helpers. Certificates issued by a CA in the file go through webpki, hostname check included.

use std::sync::{Arc, Mutex};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::types::Fingerprint;

/// How to check the BMC's certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Tls {
    /// The operating system's trust store, hostname checked.
    #[default]
    System,
    /// Trust the certificates in this PEM bundle instead of the system store. A certificate in
    /// the bundle that the BMC presents as its own is accepted as that BMC's (the pinned
    /// self-signed case, CA:TRUE or not, whatever names it carries); any other certificate must
    /// be issued by one in the bundle and name the host.
    CustomCa(Vec<u8>),
    /// Accept exactly the certificate with this SHA-256 fingerprint (of its DER encoding).
    /// Checked during the handshake, before any credential is sent.
    Fingerprint(Fingerprint),
    /// Accept whatever certificate the first connection presents and pin it for the life of
    /// the driver; [`Redfish::fingerprint`](crate::Redfish::fingerprint) tells what was
    /// pinned so the caller can store it and pass [`Tls::Fingerprint`] next time.
    TrustOnFirstUse,
    /// Accept any certificate. Only on explicit request: anyone on the path can read the
    /// BMC password.
    InsecureSkipVerify,
}

/// The SHA-256 fingerprint of a DER certificate.
pub(crate) fn fingerprint_of(der: &[u8]) -> Fingerprint {
    Fingerprint(Sha256::digest(der).into())
}

/// The certificate a BMC presented, and why it was refused (when it was).
#[derive(Debug, Clone, Default)]
pub(crate) struct Seen {
    pub(crate) subject: Option<String>,
    pub(crate) fingerprint: Option<Fingerprint>,
    pub(crate) refusal: Option<String>,
}

#[derive(Debug)]
enum Trust {
    /// Exactly these certificates as the server's own, else webpki over them as roots.
    Anchors {
        exact: Vec<Vec<u8>>,
        webpki: Option<Arc<WebPkiServerVerifier>>,
    },
    Pin(Fingerprint),
    Tofu(Mutex<Option<Fingerprint>>),
    /// Record the certificate and refuse it (to describe a refusal by the system store).
    Record,
}

/// The verifier behind [`Tls::CustomCa`], [`Tls::Fingerprint`] and [`Tls::TrustOnFirstUse`].
#[derive(Debug)]
pub(crate) struct Verifier {
    trust: Trust,
    provider: Arc<CryptoProvider>,
    seen: Mutex<Seen>,
}

impl Verifier {
    /// What the last handshake presented.
    pub(crate) fn seen(&self) -> Seen {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The pinned fingerprint: the configured one, or the one trusted on first use.
    pub(crate) fn pinned(&self) -> Option<Fingerprint> {
        match &self.trust {
            Trust::Pin(f) => Some(*f),
            Trust::Tofu(f) => *f.lock().unwrap_or_else(|e| e.into_inner()),
            _ => None,
        }
    }

    fn decide(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<(), String> {
        let fp = fingerprint_of(end_entity);
        match &self.trust {
            Trust::Pin(want) if *want == fp => Ok(()),
            Trust::Pin(want) => Err(format!("its fingerprint is not the pinned {want}")),
            Trust::Tofu(pin) => {
                let mut pin = pin.lock().unwrap_or_else(|e| e.into_inner());
                match *pin {
                    None => {
                        tracing::info!(fingerprint = %fp, "trusting the bmc certificate on first use");
                        *pin = Some(fp);
                        Ok(())
                    }
                    Some(p) if p == fp => Ok(()),
                    Some(p) => Err(format!(
                        "it differs from the certificate trusted on first use ({p})"
                    )),
                }
            }
            Trust::Anchors { exact, .. } if exact.iter().any(|c| c[..] == end_entity[..]) => {
                Ok(())
            }
            Trust::Anchors {
                webpki: Some(w), ..
            } => w
                .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
                .map(drop)
                .map_err(|e| format!("it is not in the ca file and does not verify against it: {e}")),
            Trust::Anchors { webpki: None, .. } => Err(
                "it is not in the ca file, and the ca file holds no certificate usable as an issuer"
                    .into(),
            ),
            Trust::Record => Err("not trusted by the system store".into()),
        }
    }
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let decision = self.decide(end_entity, intermediates, server_name, ocsp_response, now);
        *self.seen.lock().unwrap_or_else(|e| e.into_inner()) = Seen {
            subject: subject(end_entity),
            fingerprint: Some(fingerprint_of(end_entity)),
            refusal: decision.as_ref().err().cloned(),
        };
        match decision {
            Ok(()) => Ok(ServerCertVerified::assertion()),
            Err(_) => Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            )),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

fn config_error(message: impl Into<String>) -> Error {
    Error::Config {
        message: message.into(),
    }
}

/// The rustls configuration for the trust modes that need our verifier; `None` for the
/// system store and for skipping checks (reqwest's own settings).
pub(crate) fn client_config(tls: &Tls) -> Result<Option<(rustls::ClientConfig, Arc<Verifier>)>> {
    let trust = match tls {
        Tls::System | Tls::InsecureSkipVerify => return Ok(None),
        Tls::Fingerprint(f) => Trust::Pin(*f),
        Tls::TrustOnFirstUse => Trust::Tofu(Mutex::new(None)),
        Tls::CustomCa(pem) => anchors(pem)?,
    };
    Ok(Some(build(trust)?))
}

/// A configuration that records the presented certificate and refuses it.
pub(crate) fn recorder() -> Result<(rustls::ClientConfig, Arc<Verifier>)> {
    build(Trust::Record)
}

fn provider() -> Arc<CryptoProvider> {
    CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()))
}

fn anchors(pem: &[u8]) -> Result<Trust> {
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut &pem[..])
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| config_error(format!("bad ca bundle: {e}")))?;
    if certs.is_empty() {
        return Err(config_error("ca bundle holds no certificate"));
    }
    let mut roots = rustls::RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(certs.iter().cloned());
    let webpki = if added > 0 {
        Some(
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
                .build()
                .map_err(|e| config_error(format!("bad ca bundle: {e}")))?,
        )
    } else {
        None
    };
    Ok(Trust::Anchors {
        exact: certs.iter().map(|c| c.to_vec()).collect(),
        webpki,
    })
}

fn build(trust: Trust) -> Result<(rustls::ClientConfig, Arc<Verifier>)> {
    let provider = provider();
    let verifier = Arc::new(Verifier {
        trust,
        provider: provider.clone(),
        seen: Mutex::new(Seen::default()),
    });
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| config_error(format!("tls: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier.clone())
        .with_no_client_auth();
    Ok((config, verifier))
}

/// One DER element: (tag, contents, rest).
fn der(d: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, d) = d.split_first()?;
    let (&first, d) = d.split_first()?;
    let (len, d) = if first < 0x80 {
        (usize::from(first), d)
    } else {
        let n = usize::from(first & 0x7F);
        if n == 0 || n > 3 || d.len() < n {
            return None;
        }
        let len = d[..n]
            .iter()
            .fold(0usize, |a, &b| (a << 8) | usize::from(b));
        (len, &d[n..])
    };
    (d.len() >= len).then(|| (tag, &d[..len], &d[len..]))
}

/// The subject of a DER certificate as `CN=..., O=...` (the common attributes only).
pub(crate) fn subject(cert: &[u8]) -> Option<String> {
    let (_, c, _) = der(cert)?;
    let (_, mut tbs, _) = der(c)?;
    // [0] version (optional), serial, signature algorithm, issuer, validity, subject.
    let (tag, _, rest) = der(tbs)?;
    if tag == 0xA0 {
        tbs = rest;
    }
    for _ in 0..4 {
        tbs = der(tbs)?.2;
    }
    let (_, mut name, _) = der(tbs)?;
    let mut parts = Vec::new();
    while !name.is_empty() {
        let (_, set, rest) = der(name)?;
        name = rest;
        let (_, atv, _) = der(set)?;
        let (_, oid, value) = der(atv)?;
        let (_, value, _) = der(value)?;
        let key = match oid {
            [0x55, 0x04, 0x03] => "CN",
            [0x55, 0x04, 0x06] => "C",
            [0x55, 0x04, 0x07] => "L",
            [0x55, 0x04, 0x08] => "ST",
            [0x55, 0x04, 0x0A] => "O",
            [0x55, 0x04, 0x0B] => "OU",
            _ => continue,
        };
        parts.push(format!("{key}={}", String::from_utf8_lossy(value)));
    }
    Some(parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_lengths_and_garbage() {
        assert_eq!(
            der(&[0x30, 0x01, 0xAA, 0xBB]),
            Some((0x30, &[0xAA][..], &[0xBB][..]))
        );
        assert_eq!(
            der(&[0x30, 0x81, 0x01, 0xAA]),
            Some((0x30, &[0xAA][..], &[][..]))
        );
        assert_eq!(der(&[0x30, 0x05, 0xAA]), None);
        assert_eq!(subject(b"not a certificate"), None);
    }
}
