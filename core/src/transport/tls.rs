//! rustls on top of any transport: `grpcs://` for agentk → kas, and HTTPS listeners.

use std::io;
use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use super::{Accept, Accepted, BoxFuture, BoxIo, Connect, Dialer};

/// Why TLS material could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {source}")]
    Read { path: String, source: io::Error },
    #[error("{path}: no PEM certificates found")]
    NoCertificates { path: String },
    #[error("{path}: invalid PEM: {reason}")]
    Pem { path: String, reason: String },
    #[error("{path}: certificate rejected: {source}")]
    BadCertificate { path: String, source: rustls::Error },
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
    #[error("invalid TLS server name {0:?}")]
    ServerName(String),
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read_certs(pem: &[u8], path: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem { path: path.to_owned(), reason: e.to_string() })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificates { path: path.to_owned() });
    }
    Ok(certs)
}

fn read_file(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read { path: path.display().to_string(), source })
}

/// Server-side TLS settings.
#[derive(Clone)]
pub struct ServerTls {
    config: Arc<rustls::ServerConfig>,
}

impl ServerTls {
    /// From PEM bytes. `alpn` lists protocols in preference order, e.g. `h2`, `http/1.1`.
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8], alpn: &[&[u8]]) -> Result<Self, TlsError> {
        let certs = read_certs(cert_pem, "certificate")?;
        let key = PrivateKeyDer::from_pem_slice(key_pem)
            .map_err(|e| TlsError::Pem { path: "key".into(), reason: e.to_string() })?;
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(certs, key)?;
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Self { config: Arc::new(config) })
    }

    /// Like [`Self::from_pem`], but every client must present a certificate issued by `client_ca_pem`
    /// (mTLS: a receptive agentk authenticating kas).
    pub fn from_pem_with_client_ca(
        cert_pem: &[u8],
        key_pem: &[u8],
        alpn: &[&[u8]],
        client_ca_pem: &[u8],
    ) -> Result<Self, TlsError> {
        let certs = read_certs(cert_pem, "certificate")?;
        let key = PrivateKeyDer::from_pem_slice(key_pem)
            .map_err(|e| TlsError::Pem { path: "key".into(), reason: e.to_string() })?;
        let mut roots = rustls::RootCertStore::empty();
        for c in read_certs(client_ca_pem, "client CA")? {
            roots.add(c).map_err(|source| TlsError::BadCertificate { path: "client CA".into(), source })?;
        }
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .map_err(|e| TlsError::Pem { path: "client CA".into(), reason: e.to_string() })?;
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs, key)?;
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Self { config: Arc::new(config) })
    }

    pub fn from_files(cert: &Path, key: &Path, alpn: &[&[u8]]) -> Result<Self, TlsError> {
        Self::from_pem(&read_file(cert)?, &read_file(key)?, alpn).map_err(|e| match e {
            TlsError::Pem { reason, path } if path == "key" => {
                TlsError::Pem { path: key.display().to_string(), reason }
            }
            TlsError::Pem { reason, .. } => TlsError::Pem { path: cert.display().to_string(), reason },
            TlsError::NoCertificates { .. } => TlsError::NoCertificates { path: cert.display().to_string() },
            other => other,
        })
    }
}

/// A listener whose connections speak TLS; the handshake runs in each connection's task.
pub struct TlsListener<L> {
    inner: L,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl<L: Accept> TlsListener<L> {
    pub fn new(inner: L, tls: &ServerTls) -> Self {
        Self { inner, acceptor: tokio_rustls::TlsAcceptor::from(tls.config.clone()) }
    }
}

impl<L: Accept> Accept for TlsListener<L> {
    fn accept(&mut self) -> BoxFuture<'_, io::Result<Accepted>> {
        Box::pin(async move {
            let Accepted { peer, io } = self.inner.accept().await?;
            let acceptor = self.acceptor.clone();
            Ok(Accepted {
                peer,
                io: Box::pin(async move {
                    let io = io.await?;
                    let tls = acceptor.accept(io).await?;
                    Ok(Box::new(tls) as BoxIo)
                }),
            })
        })
    }

    fn local_addr(&self) -> String {
        self.inner.local_addr()
    }
}

/// Client-side TLS settings, mirroring agentk's `--ca-cert-file`, `--kas-tls-server-name` and
/// `--kas-insecure-skip-tls-verify`.
#[derive(Debug, Clone, Default)]
pub struct ClientTlsOptions {
    /// Extra CA certificates (PEM), added to the built-in web PKI roots as upstream adds them to the
    /// system pool.
    pub ca_pem: Option<Vec<u8>>,
    /// Name to verify instead of the host of the address.
    pub server_name: Option<String>,
    pub insecure_skip_verify: bool,
    pub alpn: Vec<Vec<u8>>,
    /// Client certificate chain and key (PEM), for servers that authenticate clients by certificate
    /// (a kind cluster's admin kubeconfig does).
    pub client_identity: Option<(Vec<u8>, Vec<u8>)>,
}

impl ClientTlsOptions {
    /// Loads `--ca-cert-file`.
    pub fn with_ca_file(mut self, path: &Path) -> Result<Self, TlsError> {
        let pem = read_file(path)?;
        read_certs(&pem, &path.display().to_string())?;
        self.ca_pem = Some(pem);
        Ok(self)
    }
}

/// Dials through another connector and runs a TLS client handshake.
pub struct TlsConnector {
    inner: Dialer,
    connector: tokio_rustls::TlsConnector,
    server_name: Option<ServerName<'static>>,
}

impl TlsConnector {
    pub fn new(inner: Dialer, opts: &ClientTlsOptions) -> Result<Self, TlsError> {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(pem) = &opts.ca_pem {
            for cert in read_certs(pem, "CA certificate")? {
                roots.add(cert).map_err(|source| TlsError::BadCertificate { path: "CA certificate".into(), source })?;
            }
        }
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots);
        let mut config = match &opts.client_identity {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => {
                let certs = read_certs(cert, "client certificate")?;
                let key = PrivateKeyDer::from_pem_slice(key)
                    .map_err(|e| TlsError::Pem { path: "client key".into(), reason: e.to_string() })?;
                builder.with_client_auth_cert(certs, key)?
            }
        };
        config.alpn_protocols = if opts.alpn.is_empty() { vec![b"h2".to_vec()] } else { opts.alpn.clone() };
        if opts.insecure_skip_verify {
            config.dangerous().set_certificate_verifier(Arc::new(NoVerification(provider())));
        }
        let server_name = match &opts.server_name {
            Some(n) => Some(ServerName::try_from(n.clone()).map_err(|_| TlsError::ServerName(n.clone()))?),
            None => None,
        };
        Ok(Self { inner, connector: tokio_rustls::TlsConnector::from(Arc::new(config)), server_name })
    }
}

impl std::fmt::Debug for TlsConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConnector").field("inner", &self.inner).field("server_name", &self.server_name).finish()
    }
}

impl Connect for TlsConnector {
    fn connect(&self, authority: &str) -> BoxFuture<'static, io::Result<BoxIo>> {
        let host = authority.rsplit_once(':').map_or(authority, |(h, _)| h);
        let host = host.trim_start_matches('[').trim_end_matches(']').to_owned();
        let name = match &self.server_name {
            Some(n) => Ok(n.clone()),
            None => ServerName::try_from(host.clone())
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, format!("invalid TLS server name {host:?}"))),
        };
        let io = self.inner.connect(authority);
        let connector = self.connector.clone();
        Box::pin(async move {
            let name = name?;
            let io = io.await?;
            let tls = connector.connect(name, io).await?;
            Ok(Box::new(tls) as BoxIo)
        })
    }
}

/// `--kas-insecure-skip-tls-verify`: accept any certificate, still check handshake signatures.
#[derive(Debug)]
struct NoVerification(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
