//! The TLS flags every command that talks to the platform shares
//! (`#[command(flatten)]`), with their environment variables.

use std::path::PathBuf;

use clap::Args;

use super::tls::{ClientTls, TlsError};

/// `--ca-cert`, `--client-cert`, `--client-key`, `--insecure`.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "TLS (https:// and wss:// deployments)")]
pub struct TlsArgs {
    /// Trust the CA certificate(s) in this PEM file, besides the public roots
    /// (for a deployment behind a private CA).
    #[arg(long, value_name = "FILE", env = "TEKUP_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
    /// Client certificate (PEM) for deployments that require mutual TLS; needs --client-key.
    #[arg(
        long,
        value_name = "FILE",
        env = "TEKUP_CLIENT_CERT",
        requires = "client_key"
    )]
    pub client_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM); needs --client-cert.
    #[arg(
        long,
        value_name = "FILE",
        env = "TEKUP_CLIENT_KEY",
        requires = "client_cert"
    )]
    pub client_key: Option<PathBuf>,
    /// Skip TLS certificate and host name verification (said on stderr at every start);
    /// prefer --ca-cert.
    #[arg(long, env = "TEKUP_INSECURE", value_parser = clap::builder::FalseyValueParser::new())]
    pub insecure: bool,
}

impl TlsArgs {
    /// The settings from the environment alone (`TEKUP_CA_CERT`,
    /// `TEKUP_CLIENT_CERT`, `TEKUP_CLIENT_KEY`, `TEKUP_INSECURE`), for
    /// library users without a command line.
    pub fn from_env() -> TlsArgs {
        let path = |name: &str| std::env::var_os(name).map(PathBuf::from);
        TlsArgs {
            ca_cert: path("TEKUP_CA_CERT"),
            client_cert: path("TEKUP_CLIENT_CERT"),
            client_key: path("TEKUP_CLIENT_KEY"),
            insecure: std::env::var("TEKUP_INSECURE").is_ok_and(|v| {
                !matches!(
                    v.trim().to_ascii_lowercase().as_str(),
                    "" | "0" | "false" | "no" | "off" | "n" | "f"
                )
            }),
        }
    }

    /// Reads the files and makes the settings every client of the command uses.
    pub fn load(&self) -> Result<ClientTls, TlsError> {
        let mut builder = ClientTls::builder()
            .client_identity(self.client_cert.clone(), self.client_key.clone())
            .insecure(self.insecure);
        if let Some(ca) = &self.ca_cert {
            builder = builder.ca_cert(ca);
        }
        builder.build()
    }
}
