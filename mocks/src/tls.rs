//! A throw-away certificate authority for serving mocks over TLS.
//!
//! Some official clients refuse plain connections (google-genai always turns
//! its base URL into `wss://` for the Live API), so a mock can serve TLS with
//! a server certificate for `localhost` and `127.0.0.1` signed by a CA
//! generated at start-up. Tests trust the CA, never the system store:
//! `SSL_CERT_FILE=<ca.pem>` for Python, `reqwest::Certificate::from_pem` in Rust.

use std::path::Path;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::error::MockError;

/// A generated CA and a server certificate it signed.
pub struct TestCa {
    ca_pem: String,
    ca_der: CertificateDer<'static>,
    leaf_der: CertificateDer<'static>,
    leaf_key: Vec<u8>,
}

impl std::fmt::Debug for TestCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCa")
            .field("ca_pem_len", &self.ca_pem.len())
            .finish_non_exhaustive()
    }
}

impl TestCa {
    /// Generates a CA and a server certificate for `localhost`, `127.0.0.1` and `::1`.
    ///
    /// # Errors
    /// [`MockError::Certificate`] if key generation or signing fails.
    pub fn generate() -> Result<Self, MockError> {
        let ca_key = KeyPair::generate()?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "tekup-mocks test CA");
        dn.push(DnType::OrganizationName, "tekup-harness");
        ca_params.distinguished_name = dn;
        let ca = ca_params.self_signed(&ca_key)?;

        let leaf_key = KeyPair::generate()?;
        let mut leaf_params = CertificateParams::new(vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
        ])?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "localhost");
        leaf_params.distinguished_name = dn;
        leaf_params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let leaf = leaf_params.signed_by(&leaf_key, &ca, &ca_key)?;

        Ok(Self {
            ca_pem: ca.pem(),
            ca_der: ca.der().clone(),
            leaf_der: leaf.der().clone(),
            leaf_key: leaf_key.serialize_der(),
        })
    }

    /// The CA certificate in PEM, for clients to trust.
    #[must_use]
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Writes the CA certificate (PEM) to `path`.
    ///
    /// # Errors
    /// [`MockError::Write`] if the file cannot be written.
    pub fn write_ca_pem(&self, path: &Path) -> Result<(), MockError> {
        std::fs::write(path, &self.ca_pem).map_err(|source| MockError::Write {
            path: path.to_owned(),
            source,
        })
    }

    /// A rustls server configuration presenting the server certificate.
    pub(crate) fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, MockError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.leaf_key.clone()));
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(vec![self.leaf_der.clone(), self.ca_der.clone()], key)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// A rustls client configuration trusting only this CA (for Rust tests).
    ///
    /// # Errors
    /// [`MockError::Tls`] if the CA certificate is rejected.
    pub fn client_config(&self) -> Result<Arc<rustls::ClientConfig>, MockError> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca_der.clone())?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Arc::new(config))
    }
}
