//! HTTPS for the sandbox (`SandboxOptions::tls`): a certificate authority
//! generated at start, one server certificate it signs for every loopback name
//! (`127.0.0.1`, `localhost`, `::1`, plus the bind address), and a listener
//! that hands `axum::serve` TLS streams.
//!
//! A client trusts the sandbox by adding [`SandboxCert::ca_pem`] as an extra
//! root (see `Sandbox::ca_pem` and `Sandbox::write_ca_pem`). The CA's key is
//! dropped once the server certificate is signed, so the CA can vouch for
//! nothing else. Crypto is rustls' `ring` provider.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// The names every sandbox certificate is valid for.
pub const LOOPBACK_NAMES: [&str; 3] = ["127.0.0.1", "localhost", "::1"];

/// The certificate material of a TLS sandbox, made fresh at each start.
#[derive(Clone)]
pub struct SandboxCert {
    ca_pem: String,
    cert_pem: String,
    names: Vec<String>,
    config: Arc<ServerConfig>,
}

impl std::fmt::Debug for SandboxCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SandboxCert").field("names", &self.names).finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("could not generate the sandbox certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("could not configure TLS: {0}")]
    Config(#[from] rustls::Error),
}

impl SandboxCert {
    /// Generates a CA and a server certificate signed by it, valid for the
    /// loopback names and `extra_ip` (when it is a specific address).
    pub fn generate(extra_ip: Option<IpAddr>) -> Result<SandboxCert, TlsError> {
        let mut names: Vec<String> = LOOPBACK_NAMES.iter().map(|n| n.to_string()).collect();
        if let Some(ip) = extra_ip.filter(|ip| !ip.is_unspecified()) {
            let ip = ip.to_string();
            if !names.contains(&ip) {
                names.push(ip);
            }
        }

        let ca_key = KeyPair::generate()?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.distinguished_name.push(DnType::CommonName, "crmsync sandbox CA");
        ca_params.distinguished_name.push(DnType::OrganizationName, "crmsync sandbox");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca_params.self_signed(&ca_key)?;
        let ca = Issuer::new(ca_params, ca_key);

        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(names.clone())?;
        params.distinguished_name.push(DnType::CommonName, "crmsync sandbox");
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(&key, &ca)?;

        let chain: Vec<CertificateDer<'static>> = vec![cert.der().clone(), ca_cert.der().clone()];
        let private = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        // rustls 0.23.48 deprecates the ring provider for lacking post-quantum key
        // exchange, which a loopback test server does not need; ring keeps the
        // sandbox free of aws-lc's C build.
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, private)?;
        // axum serves HTTP/1.1 only (no `http2` feature).
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(SandboxCert { ca_pem: ca_cert.pem(), cert_pem: cert.pem(), names, config: Arc::new(config) })
    }

    /// The CA certificate (PEM): the one root a client needs to trust.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The server certificate (PEM), signed by the CA.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The names (DNS names and IP addresses) the server certificate is valid for.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    pub(crate) fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.config.clone())
    }
}

/// A listener that accepts TCP connections and completes the TLS handshake of
/// each on its own task, so one slow or broken client holds up no other.
/// Dropping it (when `axum::serve` stops) closes the port and abandons
/// handshakes still in progress.
pub(crate) struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
    accepting: JoinHandle<()>,
}

impl TlsListener {
    pub(crate) fn new(tcp: TcpListener, acceptor: TlsAcceptor) -> io::Result<TlsListener> {
        let local = tcp.local_addr()?;
        let (tx, ready) = mpsc::channel(64);
        let accepting = tokio::spawn(async move {
            let mut handshakes = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = tcp.accept() => match accepted {
                        Ok((stream, peer)) => {
                            let _ = stream.set_nodelay(true);
                            let acceptor = acceptor.clone();
                            let tx = tx.clone();
                            handshakes.spawn(async move {
                                match acceptor.accept(stream).await {
                                    Ok(tls) => {
                                        let _ = tx.send((tls, peer)).await;
                                    }
                                    Err(e) => tracing::debug!(%peer, error = %e, "sandbox TLS handshake failed"),
                                }
                            });
                        }
                        // As axum does for plain TCP: out of descriptors and the like
                        // pass; wait a little rather than spin.
                        Err(e) => {
                            tracing::warn!(error = %e, "sandbox accept failed");
                            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        }
                    },
                    Some(_) = handshakes.join_next(), if !handshakes.is_empty() => {}
                    () = tx.closed() => break,
                }
            }
        });
        Ok(TlsListener { ready, local, accepting })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(conn) => conn,
            // The accept task only ends when this listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local)
    }
}
