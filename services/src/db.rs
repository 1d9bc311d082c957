//! Postgres: pools, migrations, roles, and tenant-scoped transactions.

use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::PgPoolOptions;
use sqlx::{PgPool, Postgres, Transaction};

/// The schema migrations in `services/migrations`, embedded in the binary.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// The group role every service login role belongs to (created by the migrations).
pub const APP_ROLE: &str = "tekup_app";

/// Opens a pool, failing fast with the cause when Postgres cannot be reached.
pub async fn connect(url: &str, max_connections: u32) -> Result<PgPool, sqlx::Error> {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect(url)
        .await
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
