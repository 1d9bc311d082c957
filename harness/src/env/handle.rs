//! Handles to started components: addresses, logs and faults.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::error::EnvError;
use super::model::{Kind, Ready};
use super::ready::{self, Probe};
use super::runtime::Instance;

/// One running component of an [`super::Ecosystem`].
#[derive(Clone)]
pub struct ComponentHandle {
    pub(crate) name: String,
    pub(crate) kind: Kind,
    pub(crate) instance: Arc<dyn Instance>,
    pub(crate) ready: Ready,
    pub(crate) timeout: Duration,
    pub(crate) admin_path: Option<String>,
    /// Postgres: user, password, database.
    pub(crate) credentials: Option<(String, String, String)>,
    pub(crate) runtime: &'static str,
    pub(crate) tls: crate::net::ClientTls,
}

impl fmt::Debug for ComponentHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ComponentHandle")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("url", &self.url())
            .finish_non_exhaustive()
    }
}

impl ComponentHandle {
    /// The component's name in the ecosystem file.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What kind of component it is.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The host the harness reaches it on.
    pub fn host(&self) -> String {
        self.instance.host()
    }

    /// The port the harness reaches it on (none for jobs).
    pub fn port(&self) -> Option<u16> {
        self.instance.host_port()
    }

    /// How the harness (and you) reach it: `http://…` for services,
    /// `postgres://…` for Postgres, `redis://…` for Redis; `None` for jobs.
    pub fn url(&self) -> Option<String> {
        if let Some(url) = self.instance.url_override() {
            return Some(url);
        }
        let host = self.host();
        let port = self.port()?;
        Some(match (&self.kind, &self.credentials) {
            (Kind::Postgres, Some((user, password, db))) => {
                super::resolve::postgres_url(user, password, &host, &port.to_string(), db)
            }
            (Kind::Postgres, None) => format!("postgres://postgres@{host}:{port}/postgres"),
            (Kind::Redis, _) => format!("redis://{host}:{port}"),
            _ => format!("http://{host}:{port}"),
        })
    }

    /// The admin API's base URL (mocks: `…/__admin`).
    pub fn admin_url(&self) -> Option<String> {
        Some(format!("{}{}", self.url()?, self.admin_path.as_deref()?))
    }

    /// Its last `lines` lines of output.
    pub async fn log_tail(&self, lines: usize) -> String {
        self.instance.log_tail(lines).await
    }

    /// Where its log file is (process runtime).
    pub fn log_path(&self) -> Option<std::path::PathBuf> {
        self.instance.log_path()
    }

    /// Kills it abruptly (SIGKILL / `docker kill`).
    pub async fn kill(&self) -> Result<(), EnvError> {
        self.instance.kill().await
    }

    /// Freezes it: connections hang instead of failing.
    pub async fn pause(&self) -> Result<(), EnvError> {
        self.instance.pause().await
    }

    /// Thaws a paused component.
    pub async fn resume(&self) -> Result<(), EnvError> {
        self.instance.resume().await
    }

    /// Starts it again on the same addresses and waits until it is ready.
    pub async fn restart(&self) -> Result<Duration, EnvError> {
        self.instance.restart().await?;
        self.wait_ready().await
    }

    /// Stops it as an orchestrator does (SIGTERM, SIGKILL after a grace
    /// period), starts it again and waits until it is ready; gives how long
    /// readiness took.
    pub async fn restart_gracefully(&self) -> Result<Duration, EnvError> {
        self.instance.restart_gracefully().await?;
        self.wait_ready().await
    }

    /// Whether the ecosystem offers it: always for what the harness
    /// started; for an external deployment, whether it gave its URL (the
    /// database, Redis and the mocks are optional there).
    pub fn offered(&self) -> bool {
        self.kind == Kind::Job || self.url().is_some()
    }

    /// Waits for its readiness condition (with its deadline); at once for
    /// a component an external deployment does not offer.
    pub async fn wait_ready(&self) -> Result<Duration, EnvError> {
        if !self.offered() {
            return Ok(Duration::ZERO);
        }
        let probe = Probe {
            host: self.host(),
            port: self.port(),
            postgres_url: matches!(self.kind, Kind::Postgres | Kind::Redis)
                .then(|| self.url())
                .flatten(),
            http_base: self
                .instance
                .url_override()
                .unwrap_or_else(|| format!("http://{}:{}", self.host(), self.port().unwrap_or(0))),
            tls: self.tls.clone(),
        };
        ready::wait(
            &self.name,
            &self.ready,
            &probe,
            self.instance.as_ref(),
            self.timeout,
        )
        .await
    }

    /// Whether the runtime lets the harness inject faults into it.
    pub fn runtime(&self) -> &'static str {
        self.runtime
    }
}

/// A mock of an external API: where it is and where its admin API is.
#[derive(Debug, Clone)]
pub struct MockHandle {
    /// Base URL of the mocked API.
    pub url: String,
    /// Base URL of its admin API (journal, faults, expectations).
    pub admin_url: String,
}

/// Why a mock's admin API did not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum MockAdminError {
    #[error("its admin API did not answer: {0}")]
    Unreachable(String),
    #[error("it refused ({status}): {body}")]
    Refused {
        status: reqwest::StatusCode,
        body: String,
    },
}

impl MockHandle {
    /// Adds a fault, sent as the mocks' own [`tekup_mocks::FaultSpec`] so
    /// that the two sides cannot drift apart.
    pub async fn add_fault(
        &self,
        http: &reqwest::Client,
        fault: &tekup_mocks::Fault,
    ) -> Result<(), MockAdminError> {
        let sent = http
            .post(format!("{}/faults", self.admin_url))
            .json(&tekup_mocks::FaultSpec::from(fault))
            .send()
            .await;
        Self::answered(sent).await
    }

    /// Removes every fault.
    pub async fn clear_faults(&self, http: &reqwest::Client) -> Result<(), MockAdminError> {
        self.delete(http, "faults", &[]).await
    }

    /// Removes the faults scoped to exactly `scope` (one run's), leaving
    /// the others'.
    pub async fn clear_scoped_faults(
        &self,
        http: &reqwest::Client,
        scope: &tekup_mocks::HeaderScope,
    ) -> Result<(), MockAdminError> {
        let query = [
            ("header", scope.name.as_str()),
            ("prefix", scope.prefix.as_str()),
        ];
        self.delete(http, "faults", &query).await
    }

    /// Empties the journal (sequence numbers keep growing).
    pub async fn clear_journal(&self, http: &reqwest::Client) -> Result<(), MockAdminError> {
        self.delete(http, "journal", &[]).await
    }

    /// Removes every expectation.
    pub async fn clear_expectations(&self, http: &reqwest::Client) -> Result<(), MockAdminError> {
        self.delete(http, "expectations", &[]).await
    }

    async fn delete(
        &self,
        http: &reqwest::Client,
        what: &str,
        query: &[(&str, &str)],
    ) -> Result<(), MockAdminError> {
        let sent = http
            .delete(format!("{}/{what}", self.admin_url))
            .query(query)
            .send()
            .await;
        Self::answered(sent).await
    }

    /// The journal, oldest first; `method` and `path` (a prefix) filter it
    /// on the mock's side.
    pub async fn journal(
        &self,
        http: &reqwest::Client,
        method: Option<&str>,
        path: Option<&str>,
    ) -> Result<Vec<tekup_mocks::RecordedRequest>, MockAdminError> {
        let mut query: Vec<(&str, &str)> = Vec::new();
        if let Some(m) = method {
            query.push(("method", m));
        }
        if let Some(p) = path {
            query.push(("path", p));
        }
        let response = http
            .get(format!("{}/journal", self.admin_url))
            .query(&query)
            .send()
            .await
            .map_err(|e| MockAdminError::Unreachable(super::error_chain(&e)))?;
        let status = response.status();
        if !status.is_success() {
            return Err(MockAdminError::Refused {
                status,
                body: response.text().await.unwrap_or_default(),
            });
        }
        response.json().await.map_err(|e| {
            MockAdminError::Unreachable(format!(
                "its journal did not read as a list of requests: {e}"
            ))
        })
    }

    async fn answered(sent: reqwest::Result<reqwest::Response>) -> Result<(), MockAdminError> {
        let response = sent.map_err(|e| MockAdminError::Unreachable(super::error_chain(&e)))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        Err(MockAdminError::Refused {
            status,
            body: response.text().await.unwrap_or_default(),
        })
    }
}

impl ComponentHandle {
    /// This component as a mock, when it has an admin API.
    pub fn as_mock(&self) -> Option<MockHandle> {
        Some(MockHandle {
            url: self.url()?,
            admin_url: self.admin_url()?,
        })
    }
}

/// Checks a Postgres URL answers a query within `timeout`.
pub async fn postgres_answers(url: &str, timeout: Duration) -> bool {
    ready::postgres_answers(url, timeout).await
}
