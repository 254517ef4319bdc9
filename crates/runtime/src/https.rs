//! Serving a webhook router over TLS with the certificate of a [`CertStore`]: connections are
//! accepted only once a certificate is loaded, so that a replica just started never fails the
//! handshake of a webhook call (they wait in the listen backlog meanwhile).
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use crate::tls::{CertStore, TlsError, server_config};

/// How long a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a webhook replica cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A listener cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The TLS configuration cannot be built.
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// Listens on `addr`, returning the listener and the address it got (port 0 picks one).
pub async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), StartError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| StartError::Bind { addr, source })?;
    Ok((listener, local))
}

/// The certificates a TLS server presents and its rustls configuration.
#[derive(Clone, Debug)]
pub struct TlsServing {
    certificates: Arc<CertStore>,
    config: Arc<rustls::ServerConfig>,
}

impl TlsServing {
    /// Serving the certificate `certificates` holds (whichever it holds when a client
    /// connects).
    pub fn new(certificates: Arc<CertStore>) -> Result<Self, TlsError> {
        let config = server_config(Arc::clone(&certificates))?;
        Ok(Self {
            certificates,
            config,
        })
    }
}

/// Serves `router` over TLS on `listener` until the returned future is dropped; dropping it
/// also closes every open connection. Nothing is accepted before a certificate is loaded.
pub async fn serve_tls(listener: TcpListener, tls: TlsServing, router: Router) {
    tls.certificates.loaded().await;
    let acceptor = tokio_rustls::TlsAcceptor::from(tls.config);
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            Some(_) = connections.join_next() => continue,
        };
        let (tcp, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(accept_error) => {
                tracing::warn!(%accept_error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let service = TowerToHyperService::new(router.clone());
        connections.spawn(async move {
            let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(handshake_error)) => {
                    tracing::debug!(%peer, %handshake_error, "TLS handshake failed");
                    return;
                }
                Err(_) => return,
            };
            if let Err(serve_error) =
                hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await
            {
                tracing::debug!(%peer, %serve_error, "connection ended with an error");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::tls::{generate_ca, issue};

    #[tokio::test]
    async fn connections_wait_until_a_certificate_is_loaded() {
        let store = Arc::new(CertStore::default());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = Router::new().route("/health", axum::routing::get(|| async { "ok" }));
        let server = tokio::spawn(serve_tls(
            listener,
            TlsServing::new(Arc::clone(&store)).unwrap(),
            router,
        ));
        let ca = generate_ca(Duration::from_secs(3600)).unwrap();
        let name = "kyverno-svc.kyverno.svc";
        let pair = issue(&ca, &[name.to_owned()], Duration::from_secs(3600)).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        use rustls::pki_types::pem::PemObject;
        roots
            .add(rustls::pki_types::CertificateDer::from_pem_slice(ca.cert.as_bytes()).unwrap())
            .unwrap();
        let client = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        // Connected before the certificate is there: the handshake waits for it.
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let handshake = tokio::spawn(async move {
            let server_name = rustls::pki_types::ServerName::try_from(name).unwrap();
            tokio_rustls::TlsConnector::from(Arc::new(client))
                .connect(server_name, tcp)
                .await
        });
        tokio::task::yield_now().await;
        store.set(&pair).unwrap();
        let mut stream = handshake.await.unwrap().expect("the handshake succeeds");
        stream
            .write_all(b"GET /health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = Vec::new();
        let mut buffer = [0u8; 256];
        while answer.len() < 12 {
            let read = stream.read(&mut buffer).await.unwrap();
            if read == 0 {
                break;
            }
            answer.extend_from_slice(&buffer[..read]);
        }
        assert!(
            answer.starts_with(b"HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(&answer)
        );
        server.abort();
    }
}
