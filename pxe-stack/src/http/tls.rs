//! TLS for the HTTP server: rustls with the ring provider and a given certificate.

use std::sync::Arc;

use super::Error;

/// A server certificate chain and key, ready to accept TLS connections.
#[derive(Clone)]
pub struct Tls {
    pub(crate) acceptor: tokio_rustls::TlsAcceptor,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").finish_non_exhaustive()
    }
}

impl Tls {
    /// Loads a PEM certificate chain (leaf first) and a PEM private key (PKCS#8, PKCS#1 or
    /// SEC1), and offers HTTP/1.1 through ALPN.
    pub fn from_pem(cert_chain: &[u8], key: &[u8]) -> Result<Self, Error> {
        let certs = rustls_pemfile::certs(&mut &cert_chain[..])
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Error::Pem {
                what: "certificate",
                source: e,
            })?;
        if certs.is_empty() {
            return Err(Error::Pem {
                what: "certificate",
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "no certificate found",
                ),
            });
        }
        let key = rustls_pemfile::private_key(&mut &key[..])
            .map_err(|e| Error::Pem {
                what: "private key",
                source: e,
            })?
            .ok_or_else(|| Error::Pem {
                what: "private key",
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "no private key found",
                ),
            })?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(Error::Tls)?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(Error::Tls)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Tls {
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        })
    }
}
