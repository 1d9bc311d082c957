//! A TLS-terminating front for a started ecosystem, and the certificates
//! to run it with, so `https://` and `wss://` (and mutual TLS) are tested
//! against the real services without a proxy from outside.
//!
//! The front is one listener per service on `127.0.0.1`: it finishes the
//! TLS handshake (asking for a client certificate when told to) and then
//! copies bytes both ways to the service's plain address. HTTP requests and
//! WebSocket upgrades pass unchanged, because nothing above TLS is parsed.
//!
//! ```no_run
//! # async fn demo(eco: &tekup_harness::env::Ecosystem) -> Result<(), tekup_harness::net::FrontError> {
//! use tekup_harness::net::{TestCerts, TlsFront};
//! let certs = TestCerts::generate(std::env::temp_dir().join("certs"))?;
//! let upstreams = eco.components().filter_map(|c| Some((c.name().to_owned(), c.url()?))).collect();
//! let front = TlsFront::start(&upstreams, certs.server().require_client_cert(true)).await?;
//! let flow = &front.urls()["flow-api"]; // https://127.0.0.1:…
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

/// How long a client may take over its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why certificates or the front could not be made.
#[derive(Debug, thiserror::Error)]
pub enum FrontError {
    #[error("failed to make the test certificates: {0}")]
    Certificate(#[from] rcgen::Error),
    #[error("failed to write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("failed to set up the front's TLS: {0}")]
    Tls(String),
    #[error("`{name}`'s URL `{url}` has no host and port to forward to")]
    Upstream { name: String, url: String },
    #[error("failed to listen for `{name}`: {source}")]
    Listen {
        name: String,
        source: std::io::Error,
    },
}

/// A private CA made at run time, a server certificate it signed for
/// `localhost`, `127.0.0.1` and `::1`, and a client certificate it signed,
/// each written as PEM into a directory (`ca.pem`, `server.pem`,
/// `server.key`, `client.pem`, `client.key`).
#[derive(Debug)]
pub struct TestCerts {
    dir: PathBuf,
    ca_der: CertificateDer<'static>,
    server_chain: Vec<CertificateDer<'static>>,
    server_key: Vec<u8>,
}

impl TestCerts {
    /// Makes the CA and both certificates and writes them into `dir`
    /// (created if missing).
    pub fn generate(dir: impl Into<PathBuf>) -> Result<TestCerts, FrontError> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|source| FrontError::Write {
            path: dir.clone(),
            source,
        })?;
        let ca_key = KeyPair::generate()?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        ca_params.distinguished_name = name("tekup-harness test CA");
        let ca = ca_params.self_signed(&ca_key)?;

        let leaf = |names: Vec<String>, cn: &str, usage: ExtendedKeyUsagePurpose| {
            let key = KeyPair::generate()?;
            let mut params = CertificateParams::new(names)?;
            params.distinguished_name = name(cn);
            params.extended_key_usages = vec![usage];
            let cert = params.signed_by(&key, &ca, &ca_key)?;
            Ok::<_, rcgen::Error>((cert, key))
        };
        let (server, server_key) = leaf(
            vec!["localhost".into(), "127.0.0.1".into(), "::1".into()],
            "localhost",
            ExtendedKeyUsagePurpose::ServerAuth,
        )?;
        let (client, client_key) = leaf(
            Vec::new(),
            "tekup-harness client",
            ExtendedKeyUsagePurpose::ClientAuth,
        )?;
        for (file, text) in [
            ("ca.pem", ca.pem()),
            ("server.pem", server.pem()),
            ("server.key", server_key.serialize_pem()),
            ("client.pem", client.pem()),
            ("client.key", client_key.serialize_pem()),
        ] {
            let path = dir.join(file);
            std::fs::write(&path, text).map_err(|source| FrontError::Write { path, source })?;
        }
        Ok(TestCerts {
            ca_der: ca.der().clone(),
            server_chain: vec![server.der().clone()],
            server_key: server_key.serialize_der(),
            dir,
        })
    }

    /// The CA certificate (PEM): what `--ca-cert` is given.
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// The client certificate (PEM): what `--client-cert` is given.
    pub fn client_cert(&self) -> PathBuf {
        self.dir.join("client.pem")
    }

    /// The client certificate's key (PEM): what `--client-key` is given.
    pub fn client_key(&self) -> PathBuf {
        self.dir.join("client.key")
    }

    /// The directory the files are in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The front's side: the server certificate; client certificates,
    /// when required, must be signed by this CA.
    pub fn server(&self) -> ServerTls {
        ServerTls {
            chain: self.server_chain.clone(),
            key: self.server_key.clone(),
            client_ca: self.ca_der.clone(),
            require_client_cert: false,
        }
    }
}

fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn.push(DnType::OrganizationName, "tekup-harness");
    dn
}

/// What the front presents, and whether it demands a client certificate.
#[derive(Clone)]
#[must_use]
pub struct ServerTls {
    chain: Vec<CertificateDer<'static>>,
    key: Vec<u8>,
    client_ca: CertificateDer<'static>,
    require_client_cert: bool,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("require_client_cert", &self.require_client_cert)
            .finish_non_exhaustive()
    }
}

impl ServerTls {
    /// Refuse clients without a certificate signed by the test CA (mTLS).
    pub fn require_client_cert(mut self, required: bool) -> Self {
        self.require_client_cert = required;
        self
    }

    fn config(&self) -> Result<rustls::ServerConfig, FrontError> {
        let failed = |e: &dyn std::fmt::Display| FrontError::Tls(e.to_string());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| failed(&e))?;
        let builder = if self.require_client_cert {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(self.client_ca.clone()).map_err(|e| failed(&e))?;
            let verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
                    .build()
                    .map_err(|e| failed(&e))?;
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.clone()));
        builder
            .with_single_cert(self.chain.clone(), key)
            .map_err(|e| failed(&e))
    }
}

/// The running front: one TLS listener per HTTP service. Dropping it
/// closes the listeners and every connection through them.
#[derive(Debug)]
pub struct TlsFront {
    urls: BTreeMap<String, String>,
    refused: Arc<AtomicU64>,
    _tasks: JoinSet<()>,
}

impl TlsFront {
    /// Fronts every `http://` URL of `upstreams` (service name → URL) with
    /// a `https://127.0.0.1:<port>` of its own; other URLs (`postgres://`,
    /// `redis://`) are kept as they are in [`Self::urls`].
    pub async fn start(
        upstreams: &BTreeMap<String, String>,
        tls: ServerTls,
    ) -> Result<TlsFront, FrontError> {
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls.config()?));
        let refused = Arc::new(AtomicU64::new(0));
        let mut tasks = JoinSet::new();
        let mut urls = BTreeMap::new();
        for (name, url) in upstreams {
            let Some(rest) = url.strip_prefix("http://") else {
                urls.insert(name.clone(), url.clone());
                continue;
            };
            let upstream_at = rest.split('/').next().unwrap_or_default().to_owned();
            if !upstream_at.contains(':') {
                return Err(FrontError::Upstream {
                    name: name.clone(),
                    url: url.clone(),
                });
            }
            let listener =
                TcpListener::bind("127.0.0.1:0")
                    .await
                    .map_err(|source| FrontError::Listen {
                        name: name.clone(),
                        source,
                    })?;
            let at: SocketAddr = listener.local_addr().map_err(|source| FrontError::Listen {
                name: name.clone(),
                source,
            })?;
            urls.insert(name.clone(), format!("https://127.0.0.1:{}", at.port()));
            tasks.spawn(serve(
                listener,
                acceptor.clone(),
                upstream_at,
                Arc::clone(&refused),
            ));
        }
        Ok(TlsFront {
            urls,
            refused,
            _tasks: tasks,
        })
    }

    /// Every service's URL through the front (`https://…`), and the
    /// non-HTTP ones as given.
    pub fn urls(&self) -> &BTreeMap<String, String> {
        &self.urls
    }

    /// Handshakes the front refused so far (wrong or missing client
    /// certificate, a client that does not trust the front's CA).
    pub fn refused_handshakes(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

async fn serve(
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    upstream: String,
    refused: Arc<AtomicU64>,
) {
    // Connections live in this set: aborting the listener's task (dropping
    // the front) drops them too.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((client, _)) = accepted else {
                    // Out of file descriptors, say: back off instead of spinning.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let acceptor = acceptor.clone();
                let upstream = upstream.clone();
                let refused = Arc::clone(&refused);
                connections.spawn(async move {
                    if let Err(why) = forward(client, &acceptor, &upstream).await {
                        if why.handshake {
                            refused.fetch_add(1, Ordering::Relaxed);
                        }
                        tracing::debug!("TLS front → {upstream}: {}", why.text);
                    }
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

struct Refusal {
    handshake: bool,
    text: String,
}

async fn forward(
    client: TcpStream,
    acceptor: &tokio_rustls::TlsAcceptor,
    upstream: &str,
) -> Result<(), Refusal> {
    let refusal = |handshake: bool| {
        move |e: std::io::Error| Refusal {
            handshake,
            text: e.to_string(),
        }
    };
    let mut tls = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(client))
        .await
        .map_err(|_| Refusal {
            handshake: true,
            text: "the client did not finish its TLS handshake".into(),
        })?
        .map_err(refusal(true))?;
    let mut service = TcpStream::connect(upstream).await.map_err(refusal(false))?;
    let _ = service.set_nodelay(true);
    tokio::io::copy_bidirectional(&mut tls, &mut service)
        .await
        .map_err(refusal(false))?;
    Ok(())
}
