//! Activities: the timeline of what happened to leads and contacts.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use crate::auth::TenantContext;
use crate::db::tenant_tx;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::validate;

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct Activity {
    pub id: Uuid,
    pub tenant_id: String,
    #[serde(rename = "type")]
    #[sqlx(rename = "type")]
    pub kind: String,
    pub entity_type: String,
    pub entity_id: Option<Uuid>,
    pub description: Option<String>,
    pub data: Value,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct NewActivity {
    #[serde(rename = "type")]
    kind: String,
    entity_type: String,
    entity_id: Option<Uuid>,
    description: Option<String>,
    data: Option<Value>,
}

/// Records an activity inside the caller's tenant transaction.
pub(super) async fn record(
    tx: &mut Transaction<'static, Postgres>,
    tenant_id: &str,
    kind: &str,
    entity_type: &str,
    entity_id: Option<Uuid>,
    description: Option<&str>,
    data: &Value,
) -> Result<Activity, sqlx::Error> {
    sqlx::query_as(
        "INSERT INTO flow.activities (id, tenant_id, type, entity_type, entity_id, description, data)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING *",
    )
    .bind(Uuid::new_v4())
    .bind(tenant_id)
    .bind(kind)
    .bind(entity_type)
    .bind(entity_id)
    .bind(description)
    .bind(data)
    .fetch_one(&mut **tx)
    .await
}

/// An activity recorded at most once per tenant and `dedupe_key`: what
/// makes a job's effects happen once however often it is delivered.
#[derive(Debug)]
pub(crate) struct Once<'a> {
    pub(crate) kind: &'a str,
    pub(crate) entity_type: &'a str,
    pub(crate) entity_id: Option<Uuid>,
    pub(crate) description: Option<&'a str>,
    pub(crate) data: &'a Value,
    pub(crate) dedupe_key: &'a str,
}

/// Records `entry` unless an activity with its `dedupe_key` exists for the
/// tenant; returns whether it was recorded.
pub(crate) async fn record_once(
    tx: &mut Transaction<'static, Postgres>,
    tenant_id: &str,
    entry: &Once<'_>,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO flow.activities (id, tenant_id, type, entity_type, entity_id, description, data, dedupe_key)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (tenant_id, dedupe_key) WHERE dedupe_key IS NOT NULL DO NOTHING",
    )
    .bind(Uuid::new_v4())
    .bind(tenant_id)
    .bind(entry.kind)
    .bind(entry.entity_type)
    .bind(entry.entity_id)
    .bind(entry.description)
    .bind(entry.data)
    .bind(entry.dedupe_key)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub(super) async fn create(
    State(state): State<AppState>,
    ctx: TenantContext,
    Json(body): Json<NewActivity>,
) -> ApiResult<(StatusCode, Json<Activity>)> {
    ctx.require("write:activities")?;
    let kind_ok = (1..=64).contains(&body.kind.len())
        && body
            .kind
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
    if !kind_ok {
        return Err(ApiError::Validation(
            "`type` must be 1 to 64 upper-case letters, digits or `_` (e.g. CALL_LOGGED)".into(),
        ));
    }
    let entity_type = validate::one_of(
        "entityType",
        &body.entity_type,
        &["lead", "contact", "deal", "incident", "voice"],
    )?;
    let description = validate::optional_text("description", body.description.as_deref(), 2000)?;
    let data = body
        .data
        .unwrap_or_else(|| Value::Object(Default::default()));
    if !data.is_object() {
        return Err(ApiError::Validation("`data` must be a JSON object".into()));
    }
    validate::json_text("data", &data)?;
    let mut tx = tenant_tx(&state.db, &ctx.tenant_id).await?;
    if let Some(id) = body.entity_id {
        if entity_type == "voice" {
            return Err(ApiError::Validation(
                "`entityId`: a voice activity names no object".into(),
            ));
        }
        validate::own_object(&mut tx, "entityId", entity_type, id, &ctx.tenant_id).await?;
    }
    let activity = record(
        &mut tx,
        &ctx.tenant_id,
        &body.kind,
        entity_type,
        body.entity_id,
        description.as_deref(),
        &data,
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(activity)))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct ListQuery {
    entity_id: Option<Uuid>,
    #[serde(rename = "type")]
    kind: Option<String>,
    limit: Option<i64>,
    offset: Option<i64>,
}

pub(super) async fn list(
    State(state): State<AppState>,
    ctx: TenantContext,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    ctx.require("read:activities")?;
    let (limit, offset) = validate::page(q.limit, q.offset)?;
    if let Some(kind) = &q.kind {
        validate::no_control("type", kind)?;
    }
    let mut tx = tenant_tx(&state.db, &ctx.tenant_id).await?;
    let rows: Vec<Activity> = sqlx::query_as(
        "SELECT * FROM flow.activities
          WHERE tenant_id = $1 AND ($2::uuid IS NULL OR entity_id = $2) AND ($3::text IS NULL OR type = $3)
          ORDER BY created_at DESC, id LIMIT $4 OFFSET $5",
    )
    .bind(&ctx.tenant_id)
    .bind(q.entity_id)
    .bind(q.kind)
    .bind(limit)
    .bind(offset)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Json(serde_json::json!({ "data": rows })))
}
