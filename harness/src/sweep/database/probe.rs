//! Behaviour: queries run as one of the services' roles, for one tenant,
//! in a transaction that is always rolled back.

use std::time::Duration;

use sqlx::PgPool;

use super::catalog::Layout;
use super::{as_role_sql, literal, quoted, surface, Tenants};
use crate::env::error_chain;
use crate::sweep::ClassReport;

/// How long one probe may run: a function or view that hangs is not what
/// this class looks for, and must not hang the sweep.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// A value bound to a probe's `$n`.
#[derive(Debug, Clone)]
pub(super) enum Bind {
    Text(String),
    TextArray(Vec<String>),
}

/// What a probe's `SELECT count(*) …` gave.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Outcome {
    Count(i64),
    /// The database refused it: SQLSTATE and message.
    Refused {
        code: String,
        message: String,
    },
}

impl Outcome {
    /// How a finding shows it.
    pub(super) fn describe(&self) -> String {
        match self {
            Outcome::Count(n) => format!("accepted ({n} rows)"),
            Outcome::Refused { code, message } => format!("SQLSTATE {code}: {message}"),
        }
    }
}

/// Runs `sql` (a `SELECT count(*) …`) as `role` with `app.tenant_id` set
/// to `tenant` (empty when `None`), and rolls back.
pub(super) async fn count_as(
    pool: &PgPool,
    role: &str,
    tenant: Option<&str>,
    sql: &str,
    binds: &[Bind],
) -> Result<Outcome, String> {
    let failed = |e: sqlx::Error| format!("failed to probe as {role}: {}", error_chain(&e));
    let mut tx = pool.begin().await.map_err(failed)?;
    sqlx::query(&format!(
        "SET LOCAL statement_timeout = {}",
        PROBE_TIMEOUT.as_millis()
    ))
    .execute(&mut *tx)
    .await
    .map_err(failed)?;
    sqlx::query(&format!("SET LOCAL ROLE {}", quoted(role)))
        .execute(&mut *tx)
        .await
        .map_err(failed)?;
    // Set even when `None` (to nothing): a pooled connection may carry a
    // session-wide setting from whoever used it before.
    sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
        .bind(tenant.unwrap_or_default())
        .execute(&mut *tx)
        .await
        .map_err(failed)?;
    let mut query = sqlx::query_scalar::<_, i64>(sql);
    for bind in binds {
        query = match bind {
            Bind::Text(text) => query.bind(text.clone()),
            Bind::TextArray(list) => query.bind(list.clone()),
        };
    }
    let outcome = match query.fetch_one(&mut *tx).await {
        Ok(n) => Outcome::Count(n),
        Err(sqlx::Error::Database(e)) => Outcome::Refused {
            code: e.code().map(|c| c.into_owned()).unwrap_or_default(),
            message: e.message().to_owned(),
        },
        Err(e) => return Err(failed(e)),
    };
    tx.rollback().await.map_err(failed)?;
    Ok(outcome)
}

/// `WHERE` clause true for a row `r` whose text holds one of `$1`'s markers.
pub(super) const NAMES_A_MARKER: &str =
    "EXISTS (SELECT 1 FROM unnest($1::text[]) AS m (marker) WHERE strpos(r::text, m.marker) > 0)";

/// As each role, for tenant A: no row of another tenant is seen, with no
/// tenant set no row at all, and a row for tenant B is refused by
/// row-level security (42501, which Postgres checks before any constraint).
pub(super) async fn check_tables(
    pool: &PgPool,
    layout: &Layout,
    roles: &[String],
    tenants: &Tenants,
    report: &mut ClassReport,
) -> Result<(), String> {
    for role in roles {
        for table in &layout.tenant_tables {
            let label = table.label();
            let (t, a) = (table.sql(), tenants.a.as_str());
            report.cases += 2;
            let (sql, shown_sql, binds) = if table.has_tenant_id {
                (
                    format!("SELECT count(*) FROM {t} WHERE tenant_id IS DISTINCT FROM $1"),
                    format!("SELECT count(*) FROM {label} WHERE tenant_id IS DISTINCT FROM current_setting('app.tenant_id')"),
                    vec![Bind::Text(a.to_owned())],
                )
            } else {
                let markers = tenants.b_markers(&Default::default());
                (
                    format!("SELECT count(*) FROM {t} AS r WHERE {NAMES_A_MARKER}"),
                    format!(
                        "SELECT * FROM {label} AS r WHERE r::text ~ '{}'",
                        markers.join("|")
                    ),
                    vec![Bind::TextArray(markers)],
                )
            };
            if let Outcome::Count(n @ 1..) = count_as(pool, role, Some(a), &sql, &binds).await? {
                report.found(
                    surface(&label),
                    format!(
                        "{role} acting for one tenant sees {n} rows of other tenants in {label}"
                    ),
                    format!(
                        "expected only tenant {a}'s rows, got {n} of others\nSQL: {}",
                        as_role_sql(role, Some(a), &shown_sql)
                    ),
                    None,
                );
            }
            let sql = format!("SELECT count(*) FROM {t}");
            if let Outcome::Count(n @ 1..) = count_as(pool, role, None, &sql, &[]).await? {
                report.found(
                    surface(&label),
                    format!("{role} with no tenant set sees {n} rows of {label}"),
                    format!(
                        "expected no row when app.tenant_id is not set, got {n}\nSQL: {}",
                        as_role_sql(role, None, &format!("SELECT count(*) FROM {label}"))
                    ),
                    None,
                );
            }
            if !table.has_tenant_id {
                continue;
            }
            report.cases += 1;
            let sql = format!(
                "WITH ins AS (INSERT INTO {t} (tenant_id) VALUES ($1) RETURNING 1) SELECT count(*) FROM ins"
            );
            let b = tenants.b.as_str();
            let outcome = count_as(pool, role, Some(a), &sql, &[Bind::Text(b.to_owned())]).await?;
            if !matches!(&outcome, Outcome::Refused { code, .. } if code == "42501") {
                report.found(
                    surface(&label),
                    format!("{role} acting for one tenant may write another tenant's row into {label}"),
                    format!(
                        "expected row-level security to refuse a row of tenant {b} (SQLSTATE 42501, before any \
                         constraint is checked), got {}\nSQL: {}",
                        outcome.describe(),
                        as_role_sql(
                            role,
                            Some(a),
                            &format!("INSERT INTO {label} (tenant_id) VALUES ({})", literal(b))
                        )
                    ),
                    None,
                );
            }
        }
    }
    Ok(())
}
