//! Postgres: pools, migrations, roles, and tenant-scoped transactions.
//!
//! A service may start before its database answers (the harness starts the
//! services beside a Postgres it is still bringing up): [`connect_when_up`]
//! retries the first connection until the database answers or the wait
//! (`DATABASE_WAIT`, default [`DEFAULT_DATABASE_WAIT`]) is over, and then
//! gives up naming the database and the last error, so a database that
//! never comes is an error, not a hang. Only errors that can pass are
//! waited out (no connection, the server starting or shutting down); a
//! refused password or a missing database fails at once.

use std::time::{Duration, Instant};

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection as _, PgConnection, PgPool, Postgres, Transaction};

/// The schema migrations in `services/migrations`, embedded in the binary.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// The group role every service login role belongs to (created by the migrations).
pub const APP_ROLE: &str = "tekup_app";

/// How long a service waits for its database at start unless told
/// (`DATABASE_WAIT`).
pub const DEFAULT_DATABASE_WAIT: Duration = Duration::from_secs(30);

/// The pause after the first failed attempt; it doubles up to
/// [`MAX_RETRY_PAUSE`]. A refused connection costs next to nothing, and a
/// service's start waits on this: the first attempts follow each other
/// fast, and a service started beside its database answers within 10 ms
/// of it (at 50 ms, the services were ready 35 to 60 ms after Postgres).
const FIRST_RETRY_PAUSE: Duration = Duration::from_millis(5);
const MAX_RETRY_PAUSE: Duration = Duration::from_millis(10);
/// How long one attempt may take, at most (a server that accepts and
/// never answers).
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);

/// Opens a pool, failing fast with the cause when Postgres cannot be reached.
pub async fn connect(url: &str, max_connections: u32) -> Result<PgPool, sqlx::Error> {
    pool_options(max_connections).connect(url).await
}

fn pool_options(max_connections: u32) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
}

/// Errors of [`connect_when_up`]; `url` is shown with its password hidden.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("invalid database URL {url}")]
    InvalidUrl {
        url: String,
        #[source]
        source: sqlx::Error,
    },
    /// The database did not answer within the wait; `last` is the last
    /// attempt's error.
    #[error("gave up waiting for the database at {url} after {wait} ({attempts} attempts; DATABASE_WAIT sets how long to wait)", wait = show(*.waited))]
    GaveUp {
        url: String,
        waited: Duration,
        attempts: u32,
        #[source]
        last: sqlx::Error,
    },
    /// The database answered and refused, or the pool failed after it had
    /// answered: waiting would not help.
    #[error("failed to connect to the database at {url}")]
    Failed {
        url: String,
        #[source]
        source: sqlx::Error,
    },
}

/// Opens a pool once the database at `url` answers, trying for `wait` at
/// most (one attempt with a zero wait). See the module's documentation.
pub async fn connect_when_up(
    url: &str,
    max_connections: u32,
    wait: Duration,
) -> Result<PgPool, ConnectError> {
    let shown = crate::cli::redact_url(url);
    let options: PgConnectOptions = url.parse().map_err(|source| ConnectError::InvalidUrl {
        url: shown.clone(),
        source,
    })?;
    let started = Instant::now();
    let mut pause = FIRST_RETRY_PAUSE;
    let mut attempts = 0;
    loop {
        attempts += 1;
        let left = wait.saturating_sub(started.elapsed());
        let attempt = tokio::time::timeout(
            left.clamp(Duration::from_millis(100), ATTEMPT_TIMEOUT),
            PgConnection::connect_with(&options),
        )
        .await
        .unwrap_or_else(|_| {
            Err(sqlx::Error::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the connection attempt did not finish in time",
            )))
        });
        let last = match attempt {
            Ok(probe) => {
                // The pool's connections are its own; this one only asked.
                let _ = probe.close().await;
                break;
            }
            Err(e) if can_pass(&e) => e,
            Err(source) => return Err(ConnectError::Failed { url: shown, source }),
        };
        if started.elapsed() + pause > wait {
            return Err(ConnectError::GaveUp {
                url: shown,
                waited: wait,
                attempts,
                last,
            });
        }
        if attempts == 1 {
            tracing::info!(
                "the database at {shown} does not answer yet ({last}); waiting for it, {} at most (DATABASE_WAIT)",
                show(wait)
            );
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(MAX_RETRY_PAUSE);
    }
    if attempts > 1 {
        tracing::info!(
            waited_ms = started.elapsed().as_millis(),
            attempts,
            "the database at {shown} answers"
        );
    }
    pool_options(max_connections)
        .connect_with(options)
        .await
        .map_err(|source| ConnectError::Failed { url: shown, source })
}

/// Whether a failed connection attempt may succeed later: no connection
/// (refused, reset, closed by a proxy whose upstream is not there yet),
/// or the server starting up or shutting down (SQLSTATE class 08 and
/// 57P01-57P03).
fn can_pass(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut => true,
        sqlx::Error::Database(e) => e.code().is_some_and(|code| {
            code.starts_with("08") || matches!(&*code, "57P01" | "57P02" | "57P03")
        }),
        _ => false,
    }
}

/// `30s`, `500ms`: how the wait is written.
fn show(wait: Duration) -> String {
    if wait.subsec_millis() == 0 {
        format!("{}s", wait.as_secs())
    } else {
        format!("{}ms", wait.as_millis())
    }
}

/// Starts a transaction in which row-level security shows only `tenant_id`'s rows.
///
/// The setting is transaction-local (`set_config(..., true)`), so it cannot
/// leak to the next user of the pooled connection.
pub async fn tenant_tx(
    pool: &PgPool,
    tenant_id: &str,
) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
        .bind(tenant_id)
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}

/// Errors of [`ensure_login_role`].
#[derive(Debug, thiserror::Error)]
pub enum RoleError {
    #[error("role name {0:?} must be lower-case letters, digits and `_`, starting with a letter")]
    InvalidName(String),
    #[error("failed to create or update the login role")]
    Database(#[from] sqlx::Error),
}

/// Creates (or updates the password of) a login role in [`APP_ROLE`]: not a
/// superuser, not the tables' owner, subject to row-level security.
pub async fn ensure_login_role(
    admin: &PgPool,
    role: &str,
    password: &str,
) -> Result<(), RoleError> {
    let valid = role.starts_with(|c: char| c.is_ascii_lowercase())
        && role.len() <= 63
        && role
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !valid {
        return Err(RoleError::InvalidName(role.to_owned()));
    }
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
            .bind(role)
            .fetch_one(admin)
            .await?;
    let verb = if exists { "ALTER" } else { "CREATE" };
    let statement: String = sqlx::query_scalar(&format!(
        "SELECT format('{verb} ROLE %I LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE PASSWORD %L', $1::text, $2::text)"
    ))
    .bind(role)
    .bind(password)
    .fetch_one(admin)
    .await?;
    sqlx::query(&statement).execute(admin).await?;
    let grant: String = sqlx::query_scalar("SELECT format('GRANT %I TO %I', $1::text, $2::text)")
        .bind(APP_ROLE)
        .bind(role)
        .fetch_one(admin)
        .await?;
    sqlx::query(&grant).execute(admin).await?;
    Ok(())
}

/// Runs a `(key text, count bigint)` query for `tenant_id` (bound as `$1`)
/// and returns the counts as a JSON object, for dashboard figures.
pub async fn grouped_counts(
    tx: &mut Transaction<'static, Postgres>,
    query: &str,
    tenant_id: &str,
) -> Result<serde_json::Map<String, serde_json::Value>, sqlx::Error> {
    let rows: Vec<(String, i64)> = sqlx::query_as(query)
        .bind(tenant_id)
        .fetch_all(&mut **tx)
        .await?;
    Ok(rows.into_iter().map(|(k, n)| (k, n.into())).collect())
}

/// Whether `error` is a unique-constraint violation (SQLSTATE 23505).
pub fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(e) if e.code().as_deref() == Some("23505"))
}
