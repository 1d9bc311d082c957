//! The client TLS settings of every client of the harness, in one value.
//!
//! [`ClientTls`] holds one `rustls` client configuration: the public roots
//! (Mozilla's, from `webpki-roots`) plus any private CA given with
//! `--ca-cert`, an optional client certificate for mutual TLS, or, with
//! `--insecure`, no verification at all. Every HTTP client
//! ([`ClientTls::http`]), the load generator's ([`ClientTls::goose_http`])
//! and every WebSocket connection ([`ClientTls::connect_ws`]) is built from
//! it, so `https://` and `wss://` behave the same in every suite: a
//! certificate that passes one client passes all of them.
//!
//! Input is checked when the settings are built, each problem naming the
//! file ([`TlsError`]); a handshake that fails against a server is put in
//! words, with the flag that fixes it, by [`explain`].

use std::error::Error as StdError;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{AlertDescription, CertificateError, ClientConfig, DigitallySignedStruct};

/// What `--insecure` skips, said on stderr each time a command starts.
pub const INSECURE_WARNING: &str = "warning: --insecure: TLS certificates and host names are NOT \
    verified; any server (or anyone on the path) can pose as the deployment and read this run's \
    traffic, the admin token included. Use --ca-cert FILE for a private CA instead.";

/// How long every HTTP client keeps an idle connection for reuse.
///
/// Servers close idle connections on their own schedule (the reference
/// services after 5 s). A request written to a pooled connection just as
/// the server closes it fails with "connection closed before message
/// completed": nothing the platform did wrong, yet a check would report it
/// as a request that got no answer. Dropping idle connections well before
/// any common server idle timeout keeps that race out of every verdict.
pub(crate) const POOL_IDLE: Duration = Duration::from_secs(2);

/// Wrong TLS input, named with its file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("failed to read the {what} {}: {source}", path.display())]
    Read {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the {what} {} is not PEM: it holds no `-----BEGIN {label}-----` block", path.display())]
    NotPem {
        what: &'static str,
        path: PathBuf,
        label: &'static str,
    },
    #[error("the {what} {} is not valid: {why}", path.display())]
    Invalid {
        what: &'static str,
        path: PathBuf,
        why: String,
    },
    #[error(
        "the client key {} does not match the client certificate {}",
        key.display(),
        cert.display()
    )]
    KeyMismatch { cert: PathBuf, key: PathBuf },
    #[error("a client certificate needs its key and the other way round: give both --client-cert and --client-key")]
    HalfIdentity,
}

/// The harness's client TLS settings. Cheap to clone; the default trusts
/// the public roots only and sends no client certificate.
#[derive(Clone)]
pub struct ClientTls {
    config: Arc<ClientConfig>,
    insecure: bool,
    client_cert: bool,
    described: Arc<str>,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("settings", &self.described)
            .finish_non_exhaustive()
    }
}

impl Default for ClientTls {
    fn default() -> Self {
        Self::builder()
            .build()
            .unwrap_or_else(|e| unreachable!("no file is read for the defaults: {e}"))
    }
}

/// How [`ClientTls`] is made: `ClientTls::builder().ca_cert("ca.pem").build()?`.
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct ClientTlsBuilder {
    ca_certs: Vec<PathBuf>,
    client_cert: Option<PathBuf>,
    client_key: Option<PathBuf>,
    insecure: bool,
}

impl ClientTlsBuilder {
    /// Trusts the CA certificate(s) in this PEM file, besides the public roots.
    pub fn ca_cert(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_certs.push(path.into());
        self
    }

    /// Sends this certificate (PEM, the chain after the leaf allowed) and
    /// key (PEM, PKCS#8, PKCS#1 or SEC1) when a server asks for one (mTLS).
    pub fn client_cert(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.client_cert = Some(cert.into());
        self.client_key = Some(key.into());
        self
    }

    /// The certificate and key separately, as the command line has them;
    /// [`Self::build`] refuses one without the other.
    pub fn client_identity(mut self, cert: Option<PathBuf>, key: Option<PathBuf>) -> Self {
        self.client_cert = cert;
        self.client_key = key;
        self
    }

    /// Accepts any server certificate for any host name. Only for a
    /// deployment whose certificate cannot be had; see [`INSECURE_WARNING`].
    pub fn insecure(mut self, insecure: bool) -> Self {
        self.insecure = insecure;
        self
    }

    /// Reads and checks the files, and makes the settings.
    pub fn build(self) -> Result<ClientTls, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let mut described = Vec::new();
        for path in &self.ca_certs {
            for cert in read_certs("CA certificate", path)? {
                roots.add(cert).map_err(|e| TlsError::Invalid {
                    what: "CA certificate",
                    path: path.clone(),
                    why: format!("not a usable X.509 CA certificate ({e})"),
                })?;
            }
            described.push(format!("CA {}", path.display()));
        }
        let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .unwrap_or_else(|e| unreachable!("ring has the default protocol versions: {e}"));
        let builder = if self.insecure {
            described.push("insecure".into());
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnything(Arc::clone(&provider))))
        } else {
            builder.with_root_certificates(roots)
        };
        let config = match (self.client_cert, self.client_key) {
            (None, None) => builder.with_no_client_auth(),
            (Some(cert), Some(key)) => {
                let chain = read_certs("client certificate", &cert)?;
                let key_der = read_key(&key)?;
                described.push(format!("client certificate {}", cert.display()));
                builder
                    .with_client_auth_cert(chain, key_der)
                    .map_err(|e| match e {
                        rustls::Error::InconsistentKeys(_) => TlsError::KeyMismatch {
                            cert: cert.clone(),
                            key: key.clone(),
                        },
                        other => TlsError::Invalid {
                            what: "client key",
                            path: key.clone(),
                            why: other.to_string(),
                        },
                    })?
            }
            _ => return Err(TlsError::HalfIdentity),
        };
        let client_cert = described.iter().any(|d| d.starts_with("client"));
        Ok(ClientTls {
            config: Arc::new(config),
            insecure: self.insecure,
            client_cert,
            described: if described.is_empty() {
                "public roots".into()
            } else {
                described.join(", ").into()
            },
        })
    }
}

impl ClientTls {
    /// Settings from files: see [`ClientTlsBuilder`].
    pub fn builder() -> ClientTlsBuilder {
        ClientTlsBuilder::default()
    }

    /// Whether certificate and host name verification is off.
    pub fn is_insecure(&self) -> bool {
        self.insecure
    }

    /// Whether a client certificate is sent when asked for.
    pub fn has_client_cert(&self) -> bool {
        self.client_cert
    }

    /// The rustls configuration every client uses.
    pub fn config(&self) -> Arc<ClientConfig> {
        Arc::clone(&self.config)
    }

    /// An HTTP client builder with these settings (idle connections kept
    /// [`POOL_IDLE`]); add timeouts and the user agent, then `build()`.
    pub fn http(&self) -> reqwest::ClientBuilder {
        reqwest::Client::builder()
            .use_preconfigured_tls((*self.config).clone())
            .pool_idle_timeout(POOL_IDLE)
    }

    /// The same for the load generator, whose goose sends through reqwest 0.13.
    pub fn goose_http(&self) -> reqwest_goose::ClientBuilder {
        reqwest_goose::Client::builder()
            .tls_backend_preconfigured((*self.config).clone())
            .pool_idle_timeout(POOL_IDLE)
    }

    /// The connector of every WebSocket client (`ws://` and `wss://`).
    pub fn ws_connector(&self) -> tokio_tungstenite::Connector {
        tokio_tungstenite::Connector::Rustls(self.config())
    }

    /// Opens a WebSocket connection with these settings.
    pub async fn connect_ws<R>(
        &self,
        request: R,
    ) -> Result<
        (
            WsStream,
            tokio_tungstenite::tungstenite::handshake::client::Response,
        ),
        tokio_tungstenite::tungstenite::Error,
    >
    where
        R: tokio_tungstenite::tungstenite::client::IntoClientRequest + Unpin,
    {
        tokio_tungstenite::connect_async_tls_with_config(
            request,
            None,
            false,
            Some(self.ws_connector()),
        )
        .await
    }
}

/// A WebSocket connection of the harness (plain or TLS).
pub type WsStream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.to_owned(),
        source,
    })
}

fn read_certs(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(what, path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Invalid {
            what,
            path: path.to_owned(),
            why: format!("broken PEM ({e})"),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NotPem {
            what,
            path: path.to_owned(),
            label: "CERTIFICATE",
        });
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read("client key", path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::NotPem {
            what: "client key",
            path: path.to_owned(),
            label: "PRIVATE KEY",
        },
        other => TlsError::Invalid {
            what: "client key",
            path: path.to_owned(),
            why: format!("broken PEM ({other})"),
        },
    })
}

/// `--insecure`: every certificate passes for every name; the handshake's
/// signatures are still checked, so the connection is at least to whoever
/// holds the key of the certificate it shows.
#[derive(Debug)]
struct AcceptAnything(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnything {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A TLS failure somewhere in `error`'s causes, in words a user
/// understands, with the flag that fixes it; `None` when TLS is not why.
pub fn explain(error: &(dyn StdError + 'static)) -> Option<String> {
    find_rustls(error, 0).map(describe)
}

/// The rustls error among `e`'s causes. An I/O error's `source` skips the
/// error it carries (and hyper wraps I/O errors in I/O errors), so those
/// are opened by hand, as is tungstenite's TLS error.
fn find_rustls<'a>(e: &'a (dyn StdError + 'static), depth: usize) -> Option<&'a rustls::Error> {
    use tokio_tungstenite::tungstenite::error::{Error as WsError, TlsError as WsTlsError};
    if depth > 16 {
        return None;
    }
    if let Some(tls) = e.downcast_ref::<rustls::Error>() {
        return Some(tls);
    }
    let carried: Option<&'a (dyn StdError + 'static)> =
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            io.get_ref().map(|inner| inner as &(dyn StdError + 'static))
        } else if let Some(WsError::Tls(WsTlsError::Rustls(tls))) = e.downcast_ref::<WsError>() {
            return Some(tls);
        } else if let Some(WsError::Io(io)) = e.downcast_ref::<WsError>() {
            Some(io as &(dyn StdError + 'static))
        } else {
            None
        };
    carried
        .and_then(|inner| find_rustls(inner, depth + 1))
        .or_else(|| find_rustls(e.source()?, depth + 1))
}

const CA_HINT: &str = "give the CA that signed it with --ca-cert FILE (or TEKUP_CA_CERT), \
    or skip verification with --insecure";
const CLIENT_HINT: &str = "give a client certificate the server trusts with --client-cert FILE \
    --client-key FILE (or TEKUP_CLIENT_CERT and TEKUP_CLIENT_KEY)";

fn describe(e: &rustls::Error) -> String {
    match e {
        rustls::Error::InvalidCertificate(cert) => match cert {
            CertificateError::UnknownIssuer => format!(
                "TLS: the server's certificate is signed by a certificate authority the harness \
                 does not trust (unknown CA); {CA_HINT}"
            ),
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                format!(
                    "TLS: the server's certificate is not valid for the host name in the URL \
                     (hostname mismatch: {cert}); use a URL with a name the certificate is for, \
                     or skip verification with --insecure"
                )
            }
            CertificateError::Expired
            | CertificateError::ExpiredContext { .. }
            | CertificateError::NotValidYet
            | CertificateError::NotValidYetContext { .. } => format!(
                "TLS: the server's certificate is outside its validity period ({cert}); \
                 check the server's certificate and this machine's clock"
            ),
            other => format!("TLS: the server's certificate was refused ({other}); {CA_HINT}"),
        },
        rustls::Error::AlertReceived(AlertDescription::CertificateRequired) => format!(
            "TLS: the server requires a client certificate (mutual TLS) and refused the \
             connection without one ({e}); {CLIENT_HINT}"
        ),
        // TLS 1.2 servers say this for a missing client certificate, and
        // for having no cipher suite in common.
        rustls::Error::AlertReceived(AlertDescription::HandshakeFailure) => format!(
            "TLS: the server ended the handshake ({e}); most often it requires a client \
             certificate (mutual TLS): {CLIENT_HINT}"
        ),
        rustls::Error::AlertReceived(
            AlertDescription::UnknownCA
            | AlertDescription::BadCertificate
            | AlertDescription::CertificateUnknown
            | AlertDescription::UnsupportedCertificate
            | AlertDescription::CertificateExpired
            | AlertDescription::CertificateRevoked
            | AlertDescription::AccessDenied,
        ) => format!("TLS: the server refused the client certificate ({e}); {CLIENT_HINT}"),
        rustls::Error::InvalidMessage(_) => format!(
            "TLS: the server did not answer in TLS ({e}); is it plain HTTP? then use an \
             http:// or ws:// URL"
        ),
        other => format!("TLS: the handshake failed ({other})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_a_client_identity_is_refused() {
        let err = ClientTls::builder()
            .client_identity(Some("client.pem".into()), None)
            .build()
            .expect_err("a certificate without its key");
        assert!(matches!(err, TlsError::HalfIdentity), "{err}");
    }

    #[test]
    fn a_tls_failure_inside_nested_io_errors_is_explained() {
        // How hyper hands a failed handshake to reqwest.
        let inner = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer),
        );
        let outer = std::io::Error::other(inner);
        let said = explain(&outer).expect("a TLS failure");
        assert!(
            said.contains("unknown CA") && said.contains("--ca-cert FILE"),
            "{said}"
        );
    }

    #[test]
    fn other_failures_are_not_called_tls() {
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert_eq!(explain(&refused), None);
    }

    #[test]
    fn the_default_settings_trust_the_public_roots_only() {
        let tls = ClientTls::default();
        assert!(!tls.is_insecure() && !tls.has_client_cert());
        assert_eq!(
            format!("{tls:?}"),
            r#"ClientTls { settings: "public roots", .. }"#
        );
    }
}
