//! `sql` steps: a query as a tenant (the services' role, with the tenant
//! set the way the services set it, so row-level security applies) or as
//! the database owner.
//!
//! Arguments are bound with the types Postgres infers for `$1, $2, ...`
//! (a `uuid` column gets a uuid, an `int8` a number), so scenarios write
//! `where id = $1` without casts. Columns come back as JSON; a type with no
//! JSON form here (e.g. `numeric`) gets an error asking for a cast.

use serde_json::Value;
use sqlx::postgres::{PgArguments, PgRow, PgTypeInfo};
use sqlx::{Column as _, Executor as _, Row as _, Statement as _, TypeInfo as _};

/// The role the services log in through (see services' migrations).
const SERVICE_ROLE: &str = "tekup_app";

/// Runs `query` and returns its rows. `tenant` is `Some(id)` to run
/// through row-level security as that tenant. Writes are committed.
pub(crate) async fn query(
    pool: &sqlx::PgPool,
    tenant: Option<&str>,
    query: &str,
    args: &[Value],
) -> Result<Vec<Vec<Value>>, SqlError> {
    let mut tx = pool.begin().await.map_err(SqlError::other)?;
    if let Some(tenant) = tenant {
        tx.execute(format!("set local role {SERVICE_ROLE}").as_str())
            .await
            .map_err(SqlError::other)?;
        sqlx::query("select set_config('app.tenant_id', $1, true)")
            .bind(tenant)
            .execute(&mut *tx)
            .await
            .map_err(SqlError::other)?;
    }
    let statement = tx.prepare(query).await.map_err(SqlError::from_db)?;
    let types: Vec<PgTypeInfo> = match statement.parameters() {
        Some(sqlx::Either::Left(types)) => types.to_vec(),
        _ => Vec::new(),
    };
    if types.len() != args.len() {
        return Err(SqlError::Usage(format!(
            "the query takes {} argument(s) ($1…), `args` gives {}",
            types.len(),
            args.len()
        )));
    }
    let mut arguments = PgArguments::default();
    for (i, (ty, value)) in types.iter().zip(args).enumerate() {
        bind(&mut arguments, ty, value).map_err(|e| SqlError::Usage(format!("${}: {e}", i + 1)))?;
    }
    let rows = sqlx::query_with(query, arguments)
        .fetch_all(&mut *tx)
        .await
        .map_err(SqlError::from_db)?;
    tx.commit().await.map_err(SqlError::from_db)?;
    rows.iter().map(row).collect()
}

/// Why a query did not give rows.
#[derive(Debug)]
pub(crate) enum SqlError {
    /// Postgres refused it: SQLSTATE and message.
    Db { code: String, message: String },
    /// The step is wrong (argument count or type, a column type).
    Usage(String),
    /// Connection trouble.
    Other(String),
}

impl SqlError {
    fn other(e: sqlx::Error) -> Self {
        SqlError::Other(e.to_string())
    }

    fn from_db(e: sqlx::Error) -> Self {
        match e.as_database_error() {
            Some(db) => SqlError::Db {
                code: db.code().map(|c| c.to_string()).unwrap_or_default(),
                message: db.message().to_owned(),
            },
            None => SqlError::Other(e.to_string()),
        }
    }
}

impl std::fmt::Display for SqlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SqlError::Db { code, message } => write!(f, "Postgres error {code}: {message}"),
            SqlError::Usage(m) | SqlError::Other(m) => f.write_str(m),
        }
    }
}

fn bind(arguments: &mut PgArguments, ty: &PgTypeInfo, value: &Value) -> Result<(), String> {
    use sqlx::Arguments as _;
    let name = ty.name();
    let text = || match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let wrong = |what: &str| format!("`{value}` is not {what} (the parameter's type is {name})");
    let added = match (name, value) {
        (_, Value::Null) => arguments.add(Option::<String>::None),
        ("UUID", _) => {
            let id = uuid::Uuid::parse_str(&text()).map_err(|_| wrong("a uuid"))?;
            arguments.add(id)
        }
        ("INT2" | "INT4" | "INT8", _) => {
            let n: i64 = text().parse().map_err(|_| wrong("an integer"))?;
            match name {
                "INT2" => arguments.add(i16::try_from(n).map_err(|_| wrong("an int2"))?),
                "INT4" => arguments.add(i32::try_from(n).map_err(|_| wrong("an int4"))?),
                _ => arguments.add(n),
            }
        }
        ("FLOAT4" | "FLOAT8", _) => {
            let n: f64 = text().parse().map_err(|_| wrong("a number"))?;
            arguments.add(n)
        }
        ("BOOL", Value::Bool(b)) => arguments.add(*b),
        ("BOOL", _) => return Err(wrong("true or false")),
        ("JSON" | "JSONB", v) => arguments.add(sqlx::types::Json(v.clone())),
        ("TIMESTAMPTZ", _) => {
            let t = chrono::DateTime::parse_from_rfc3339(&text())
                .map_err(|_| wrong("an RFC 3339 time"))?;
            arguments.add(t.with_timezone(&chrono::Utc))
        }
        ("TEXT" | "VARCHAR" | "NAME" | "BPCHAR" | "CHAR", _) => arguments.add(text()),
        _ => {
            return Err(format!(
            "parameters of type {name} are not bound here; cast it in the query (`$1::text::{}`)",
            name.to_ascii_lowercase()
        ))
        }
    };
    added.map_err(|e| e.to_string())
}

fn row(row: &PgRow) -> Result<Vec<Value>, SqlError> {
    row.columns()
        .iter()
        .map(|column| {
            let i = column.ordinal();
            let name = column.type_info().name();
            let get = |e: sqlx::Error| SqlError::Other(format!("column `{}`: {e}", column.name()));
            Ok(match name {
                "BOOL" => row
                    .try_get::<Option<bool>, _>(i)
                    .map_err(get)?
                    .map(Value::from),
                "INT2" => row
                    .try_get::<Option<i16>, _>(i)
                    .map_err(get)?
                    .map(Value::from),
                "INT4" => row
                    .try_get::<Option<i32>, _>(i)
                    .map_err(get)?
                    .map(Value::from),
                "INT8" => row
                    .try_get::<Option<i64>, _>(i)
                    .map_err(get)?
                    .map(Value::from),
                "FLOAT4" => row
                    .try_get::<Option<f32>, _>(i)
                    .map_err(get)?
                    .map(Value::from),
                "FLOAT8" => row
                    .try_get::<Option<f64>, _>(i)
                    .map_err(get)?
                    .map(Value::from),
                "TEXT" | "VARCHAR" | "NAME" | "BPCHAR" | "CHAR" => row
                    .try_get::<Option<String>, _>(i)
                    .map_err(get)?
                    .map(Value::from),
                "UUID" => row
                    .try_get::<Option<uuid::Uuid>, _>(i)
                    .map_err(get)?
                    .map(|u| Value::from(u.to_string())),
                "TIMESTAMPTZ" => row
                    .try_get::<Option<chrono::DateTime<chrono::Utc>>, _>(i)
                    .map_err(get)?
                    .map(|t| Value::from(t.to_rfc3339())),
                "JSON" | "JSONB" => row
                    .try_get::<Option<sqlx::types::Json<Value>>, _>(i)
                    .map_err(get)?
                    .map(|j| j.0),
                other => {
                    return Err(SqlError::Usage(format!(
                        "column `{}` has type {other}, which has no JSON form here; cast it \
                         (`{}::text` or `::float8`)",
                        column.name(),
                        column.name()
                    )))
                }
            }
            .unwrap_or(Value::Null))
        })
        .collect()
}
