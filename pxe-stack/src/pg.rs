//! What every PostgreSQL user in rhcos-metal shares (feature `postgres`): TLS to the database
//! ([`MakeRustls`], tokio-postgres's connector traits over tokio-rustls with ring, the server's
//! certificate verified against a CA file and the URL's host name) and the migration runner
//! ([`migrate`]).
//!
//! Our own connector rather than `tokio-postgres-rustls`/`postgres-native-tls`: those pull in
//! another crypto backend (aws-lc-rs or OpenSSL) beside the ring that the HTTPS and Redfish
//! clients already use.

use std::future::Future;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};

use tokio_postgres::Client;

/// A CA file that cannot be used to verify the database's certificate.
#[derive(Debug, thiserror::Error)]
#[error("CA file {path}: {message}")]
pub struct CaError {
    /// The file.
    pub path: std::path::PathBuf,
    /// What is wrong with it.
    pub message: String,
}

/// Makes a TLS connection per database connection.
#[derive(Clone)]
pub struct MakeRustls(Arc<rustls::ClientConfig>);

impl std::fmt::Debug for MakeRustls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MakeRustls")
    }
}

impl MakeRustls {
    /// Trusts the PEM certificates in `ca_file` only.
    ///
    /// # Errors
    /// [`CaError`] when the file cannot be read or holds no usable PEM certificate.
    pub fn from_ca_file(ca_file: &Path) -> Result<Self, CaError> {
        let ca = |message: String| CaError {
            path: ca_file.to_owned(),
            message,
        };
        let pem = std::fs::read(ca_file).map_err(|e| ca(e.to_string()))?;
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
            let cert = cert.map_err(|e| ca(e.to_string()))?;
            roots.add(cert).map_err(|e| ca(e.to_string()))?;
        }
        if roots.is_empty() {
            return Err(ca("no PEM certificate in it".into()));
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| ca(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(MakeRustls(Arc::new(config)))
    }
}

impl<S> MakeTlsConnect<S> for MakeRustls
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type TlsConnect = RustlsConnect;
    type Error = rustls::pki_types::InvalidDnsNameError;

    fn make_tls_connect(&mut self, domain: &str) -> Result<RustlsConnect, Self::Error> {
        Ok(RustlsConnect {
            config: self.0.clone(),
            name: ServerName::try_from(domain.to_owned())?,
        })
    }
}

/// One connection's TLS handshake.
pub struct RustlsConnect {
    config: Arc<rustls::ClientConfig>,
    name: ServerName<'static>,
}

impl<S> TlsConnect<S> for RustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<RustlsStream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let tls = tokio_rustls::TlsConnector::from(self.config)
                .connect(self.name, stream)
                .await?;
            Ok(RustlsStream(tls))
        })
    }
}

/// A TLS stream to the database.
pub struct RustlsStream<S>(tokio_rustls::client::TlsStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for RustlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for RustlsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream for RustlsStream<S> {
    fn channel_binding(&self) -> ChannelBinding {
        // SCRAM without channel binding (SCRAM-SHA-256, not -PLUS): the certificate check
        // above is what ties the connection to the server.
        ChannelBinding::none()
    }
}

/// Applies the `migrations` (name, SQL) this database lacks, in order, each once, recorded in
/// the table `ledger`, all inside one transaction that holds the advisory lock `lock`, so
/// servers starting together never apply one twice.
///
/// # Errors
/// The database's error, when a statement fails (nothing of the run is then applied).
pub async fn migrate(
    client: &mut Client,
    ledger: &str,
    lock: i64,
    migrations: &[(&str, &str)],
) -> Result<(), tokio_postgres::Error> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&lock])
        .await?;
    tx.batch_execute(&format!(
        "CREATE TABLE IF NOT EXISTS {ledger} (
            name text PRIMARY KEY,
            applied_at timestamptz NOT NULL DEFAULT now())"
    ))
    .await?;
    for (name, sql) in migrations {
        let applied = tx
            .query_opt(&format!("SELECT 1 FROM {ledger} WHERE name = $1"), &[name])
            .await?
            .is_some();
        if !applied {
            tx.batch_execute(sql).await?;
            tx.execute(&format!("INSERT INTO {ledger} (name) VALUES ($1)"), &[name])
                .await?;
        }
    }
    tx.commit().await
}

/// The error and its sources on one line (tokio-postgres puts the server's message in the
/// source).
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(s) = next {
        out.push_str(": ");
        out.push_str(&s.to_string());
        next = s.source();
    }
    out
}
