//! What the sweep runs against: the platform's URLs and admin token, its
//! operations, its contract, and whatever else the deployment lets the
//! harness see (the database as superuser, the components' logs, the
//! secrets the contract's rules are checked with).

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::{Operations, Size};
use crate::contract::{self, Contract};
use crate::env::{error_chain, Ecosystem, EnvError, Kind};
use crate::platform::{Platform, PlatformError};

/// Why a sweep could not start.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error("failed to reach the platform: {0}")]
    Platform(#[from] PlatformError),
    #[error("failed to reach the ecosystem's database: {0}")]
    Database(String),
    #[error("failed to read the services' operations: {0}")]
    Operations(String),
    #[error("{0}")]
    Other(String),
}

impl From<EnvError> for SweepError {
    fn from(e: EnvError) -> Self {
        SweepError::Database(error_chain(&e))
    }
}

/// Everything a class may use. Optional parts are `None` where the
/// deployment does not offer them; a class that needs one says it skipped.
#[derive(Debug)]
pub struct Target {
    pub contract: &'static Contract,
    pub platform: Platform,
    pub operations: Operations,
    /// The database as its superuser (the process and docker runtimes, or
    /// an external deployment that gives a DSN).
    pub superuser: Option<sqlx::PgPool>,
    /// Secrets the contract's rules are checked with, by the ecosystem
    /// file's var names: `token-secret` (cross-app tokens),
    /// `stripe-webhook-secret`, `admin-token`.
    pub secrets: BTreeMap<String, String>,
    /// Component name -> its log file, where the runtime keeps one.
    pub logs: BTreeMap<String, PathBuf>,
    /// The repository whose files must hold no long-lived token.
    pub repository: Option<PathBuf>,
    /// The platform's Redis (`redis://host:port`), where the contract's
    /// event stream is read to see what a request had as effect (the
    /// `tokens` class's webhook replay); `None` where the deployment does
    /// not expose it, and the checks that need it say so.
    pub redis: Option<String>,
    pub size: Size,
}

impl Target {
    /// The platform of a running ecosystem, with the operations of the
    /// OpenAPI documents in `operations`.
    pub async fn from_ecosystem(
        eco: &Ecosystem,
        operations: Operations,
        size: Size,
    ) -> Result<Target, SweepError> {
        let platform = Platform::from_ecosystem(eco)?;
        let superuser = if eco.offers(Kind::Postgres) {
            Some(eco.postgres_pool().await?)
        } else {
            None
        };
        let logs = eco
            .components()
            .filter_map(|c| Some((c.name().to_owned(), c.log_path()?)))
            .collect();
        let repository = crate::env::binaries::workspace_root(&eco.file().base_dir);
        let redis = eco
            .components()
            .find(|c| c.kind() == Kind::Redis)
            .and_then(|c| c.url());
        Ok(Target {
            contract: contract::active(),
            platform,
            operations,
            superuser,
            secrets: eco.file().vars.clone(),
            logs,
            repository,
            redis,
            size,
        })
    }

    /// A secret by its ecosystem var name, or a message saying it is missing.
    pub fn secret(&self, name: &str) -> Result<&str, String> {
        self.secrets.get(name).map(String::as_str).ok_or_else(|| {
            format!("no `{name}`: set it in the ecosystem file's [vars] (the services' value)")
        })
    }
}
