//! Waiting for a component to be ready: a condition polled until a deadline.
//!
//! Each condition is data ([`Ready`]); the wait fails early when the
//! component exits, and a failure names the component, the condition, the
//! time waited and the component's last log lines.

use std::time::{Duration, Instant};

use super::error::EnvError;
use super::model::Ready;
use super::runtime::Instance;

/// How often a condition is probed, at most: the first probes follow each
/// other faster (from [`FIRST_PROBE_INTERVAL`], doubling), since most
/// components are ready within tens of milliseconds and a component's
/// start is on the ecosystem's critical path. A refused connection costs
/// next to nothing.
const PROBE_INTERVAL: Duration = Duration::from_millis(10);
const FIRST_PROBE_INTERVAL: Duration = Duration::from_millis(2);
/// How many log lines an error shows.
pub(crate) const ERROR_LOG_LINES: usize = 20;

/// Where and how to probe one component from the harness.
#[derive(Debug, Clone)]
pub(crate) struct Probe {
    pub(crate) host: String,
    pub(crate) port: Option<u16>,
    /// Postgres or Redis: the URL to probe.
    pub(crate) postgres_url: Option<String>,
    /// Base of HTTP checks (`http://host:port`, or an external deployment's URL).
    pub(crate) http_base: String,
    /// The TLS settings of HTTP checks (an external deployment's `https://`).
    pub(crate) tls: crate::net::ClientTls,
}

impl Probe {
    /// A probe of a process on this machine, with no URL: a job's exit, a
    /// port's TCP (a Postgres adds its `postgres_url`).
    pub(crate) fn for_process(port: Option<u16>) -> Self {
        Self {
            host: "127.0.0.1".into(),
            port,
            postgres_url: None,
            http_base: String::new(),
            tls: crate::net::ClientTls::default(),
        }
    }
}

/// Waits until `ready` holds for `instance`, or fails after `timeout`.
pub(crate) async fn wait(
    component: &str,
    ready: &Ready,
    probe: &Probe,
    instance: &dyn Instance,
    timeout: Duration,
) -> Result<Duration, EnvError> {
    let started = Instant::now();
    let http = probe
        .tls
        .http()
        .timeout(Duration::from_secs(2))
        .build()
        .map_err(|e| EnvError::other("build an HTTP client", e))?;
    let mut interval = FIRST_PROBE_INTERVAL;
    loop {
        if let Some(status) = instance.exit_status().await? {
            if *ready == Ready::Exited && status.success {
                return Ok(started.elapsed());
            }
            return Err(EnvError::Exited {
                component: component.to_owned(),
                status: status.text,
                waited: started.elapsed(),
                log: instance.log_tail(ERROR_LOG_LINES).await,
            });
        }
        match check(ready, probe, instance, &http).await {
            Ok(true) => return Ok(started.elapsed()),
            Ok(false) => {}
            // A TLS failure does not go away by waiting: say it now.
            Err(tls) => {
                return Err(EnvError::other(
                    format!("check that {component} is ready ({ready})"),
                    tls,
                ))
            }
        }
        if started.elapsed() >= timeout {
            return Err(EnvError::NotReady {
                component: component.to_owned(),
                condition: ready.to_string(),
                waited: started.elapsed(),
                log: instance.log_tail(ERROR_LOG_LINES).await,
            });
        }
        tokio::time::sleep(interval).await;
        interval = (interval * 2).min(PROBE_INTERVAL);
    }
}

/// Whether `ready` holds; `Err` with a TLS failure in words, which no
/// amount of waiting mends.
async fn check(
    ready: &Ready,
    probe: &Probe,
    instance: &dyn Instance,
    http: &reqwest::Client,
) -> Result<bool, String> {
    let port = probe.port.unwrap_or(0);
    let bounded = Duration::from_secs(2);
    Ok(match ready {
        Ready::Exited => false,
        Ready::Tcp => matches!(
            tokio::time::timeout(
                bounded,
                tokio::net::TcpStream::connect((probe.host.as_str(), port))
            )
            .await,
            Ok(Ok(_))
        ),
        Ready::Http(path) => {
            let url = format!("{}{path}", probe.http_base.trim_end_matches('/'));
            match http.get(&url).send().await {
                Ok(r) => r.status().is_success(),
                Err(e) => match crate::net::explain(&e) {
                    Some(tls) => return Err(format!("{url}: {tls}")),
                    None => false,
                },
            }
        }
        Ready::Log(text) => instance.log_contains(text).await,
        Ready::Postgres => {
            let Some(url) = &probe.postgres_url else {
                return Ok(false);
            };
            postgres_answers(url, bounded).await
        }
        Ready::Redis => {
            let url = probe
                .postgres_url
                .clone()
                .unwrap_or_else(|| format!("redis://{}:{port}", probe.host));
            redis_answers(&url, bounded).await
        }
    })
}

pub(crate) async fn postgres_answers(url: &str, bounded: Duration) -> bool {
    use sqlx::Connection as _;
    let attempt = async {
        let mut conn = sqlx::PgConnection::connect(url).await?;
        sqlx::query("select 1").execute(&mut conn).await?;
        conn.close().await
    };
    matches!(tokio::time::timeout(bounded, attempt).await, Ok(Ok(())))
}

async fn redis_answers(url: &str, bounded: Duration) -> bool {
    let attempt = async {
        let client = redis::Client::open(url)?;
        let mut conn = client.get_multiplexed_async_connection().await?;
        redis::cmd("PING").query_async::<String>(&mut conn).await
    };
    matches!(tokio::time::timeout(bounded, attempt).await, Ok(Ok(pong)) if pong == "PONG")
}
