//! Activities: the timeline of what happened to leads and contacts.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sqlx::{Postgres, Transaction};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::auth::TenantContext;
use crate::db::tenant_tx;
use crate::error::{ApiError, ApiResult};
use crate::openapi;
use crate::state::AppState;
use crate::validate;

#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Activity {
    pub id: Uuid,
    pub tenant_id: String,
    #[serde(rename = "type")]
    #[sqlx(rename = "type")]
    pub kind: String,
    #[schema(schema_with = openapi::fields::entity_type)]
    pub entity_type: String,
    pub entity_id: Option<Uuid>,
    pub description: Option<String>,
    #[schema(value_type = Object)]
    pub data: Value,
    pub created_at: DateTime<Utc>,
}

/// What an activity may be about.
pub(crate) const ENTITY_TYPES: [&str; 5] = ["lead", "contact", "deal", "incident", "voice"];

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct NewActivity {
    /// Upper case letters, digits and `_`: `CALL_LOGGED`.
    #[serde(rename = "type")]
    #[schema(pattern = "^[A-Z0-9_]{1,64}$", min_length = 1, max_length = 64)]
    kind: String,
    #[schema(schema_with = openapi::fields::entity_type)]
    entity_type: String,
    /// The lead (or other entity) it is about.
    #[schema(schema_with = openapi::fields::optional_lead)]
    entity_id: Option<Uuid>,
    #[schema(max_length = 2000)]
    description: Option<String>,
    /// Free-form details; an object (default `{}`).
    #[schema(value_type = Option<Object>)]
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

/// An activity's `type`: 1 to 64 upper-case letters, digits or `_`.
fn check_kind(kind: &str) -> Result<(), ApiError> {
    let ok = (1..=64).contains(&kind.len())
        && kind
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(ApiError::Validation(
            "`type` must be 1 to 64 upper-case letters, digits or `_` (e.g. CALL_LOGGED)".into(),
        ))
    }
}

/// Record an activity
#[utoipa::path(
    post,
    path = "/activities",
    operation_id = "createActivity",
    request_body(content = NewActivity, example = json!({
        "type": "CALL_LOGGED",
        "entityType": "lead",
        "entityId": "6f1c1a0e-8a3b-4c47-9d1e-2b7f6c3d9a10",
        "description": "Called about the demo",
        "data": { "minutes": 12 }
    })),
    responses((status = 201, description = "the activity, stored", body = Activity)),
    security(("tenantKey" = ["write:activities"]), ("crossAppToken" = ["write:activities"])),
    extensions(("x-tekup-store" = json!("flow.activities"))),
)]
pub(super) async fn create(
    State(state): State<AppState>,
    ctx: TenantContext,
    Json(body): Json<NewActivity>,
) -> ApiResult<(StatusCode, Json<Activity>)> {
    ctx.require("write:activities")?;
    check_kind(&body.kind)?;
    let entity_type = validate::one_of("entityType", &body.entity_type, &ENTITY_TYPES)?;
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

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct ListQuery {
    /// Only activities about this entity.
    entity_id: Option<Uuid>,
    /// Only activities of this type.
    #[serde(rename = "type")]
    #[param(max_length = 64, example = "LEAD_CREATED")]
    kind: Option<String>,
    /// Page size (default 50).
    #[param(minimum = 1, maximum = 500, example = 50)]
    limit: Option<i64>,
    /// Rows to skip.
    #[param(minimum = 0, example = 0)]
    offset: Option<i64>,
}

/// List activities
///
/// Newest first.
#[utoipa::path(
    get,
    path = "/activities",
    operation_id = "listActivities",
    params(ListQuery),
    responses((status = 200, description = "a page of activities", body = openapi::Page<Activity>)),
    security(("tenantKey" = ["read:activities"]), ("crossAppToken" = ["read:activities"])),
)]
pub(super) async fn list(
    State(state): State<AppState>,
    ctx: TenantContext,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    ctx.require("read:activities")?;
    let (limit, offset) = validate::page(q.limit, q.offset)?;
    if let Some(kind) = &q.kind {
        check_kind(kind)?;
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
    Ok(Json(json!({ "data": rows })))
}
