//! Secure Platform: security incidents.
//!
//! | endpoint | permission |
//! |---|---|
//! | `POST /incidents`, `POST /incidents/{id}/resolve` | `write:incidents` |
//! | `GET /incidents` | `read:security` |
//! | `GET /dashboard/metrics` (`activeIncidents`) | `read:metrics` |
//! | `GET /analytics` | `read:analytics` |
//!
//! A new incident queues a `compliance-check` job (the worker files the
//! Flow API compliance report, broadcasts `SECURITY_INCIDENT` to the
//! secure-platform and business-dashboard rooms and mails an alert through
//! Graph and, when high or critical, queues a spoken alert on the voice queue).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::auth::TenantContext;
use crate::db::{grouped_counts, tenant_tx};
use crate::error::{ApiError, ApiResult};
use crate::openapi;
use crate::queue::{Job, QueueName};
use crate::state::AppState;
use crate::validate;
use crate::worker::COMPLIANCE_CHECK;

pub const SEVERITIES: [&str; 4] = ["low", "medium", "high", "critical"];
/// An incident's statuses.
pub const INCIDENT_STATUSES: [&str; 2] = ["open", "resolved"];

/// The operations of [`routes`], for the OpenAPI document (see [`crate::openapi`]).
#[derive(Debug, utoipa::OpenApi)]
#[openapi(
    info(
        title = "secure-platform",
        description = "Secure Platform: security incidents."
    ),
    paths(create, list, resolve, dashboard, analytics)
)]
pub struct SecurePlatformDoc;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/incidents", post(create).get(list))
        .route("/incidents/{id}/resolve", post(resolve))
        .route("/dashboard/metrics", get(dashboard))
        .route("/analytics", get(analytics))
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Incident {
    pub id: Uuid,
    pub tenant_id: String,
    pub title: String,
    #[schema(schema_with = openapi::fields::severity)]
    pub severity: String,
    #[schema(schema_with = openapi::fields::incident_status)]
    pub status: String,
    pub description: Option<String>,
    pub source: Option<String>,
    pub created_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NewIncident {
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    title: String,
    #[schema(schema_with = openapi::fields::severity)]
    severity: String,
    #[schema(max_length = 4000)]
    description: Option<String>,
    /// What detected it.
    #[schema(max_length = 100)]
    source: Option<String>,
}

/// Open an incident
///
/// Queues its compliance check (a Flow API compliance report, a
/// `SECURITY_INCIDENT` event, an alert mail).
#[utoipa::path(
    post,
    path = "/incidents",
    operation_id = "createIncident",
    request_body(content = NewIncident, example = json!({
        "title": "Repeated failed logins",
        "severity": "high",
        "description": "300 failed logins for one account in a minute",
        "source": "auth-monitor"
    })),
    responses(
        (status = 201, description = "the incident, stored", body = Incident),
        (status = 503, description = "the compliance-checks queue is unavailable; retry", body = openapi::Error),
    ),
    security(("tenantKey" = ["write:incidents"]), ("crossAppToken" = ["write:incidents"])),
    extensions(("x-tekup-store" = json!("secure.incidents"))),
)]
async fn create(
    State(state): State<AppState>,
    ctx: TenantContext,
    Json(body): Json<NewIncident>,
) -> ApiResult<(StatusCode, Json<Incident>)> {
    ctx.require("write:incidents")?;
    let title = validate::name("title", &body.title, 200)?;
    let severity = validate::one_of("severity", &body.severity, &SEVERITIES)?;
    let description = validate::optional_text("description", body.description.as_deref(), 4000)?;
    let source = validate::optional_text("source", body.source.as_deref(), 100)?;
    let mut tx = tenant_tx(&state.db, &ctx.tenant_id).await?;
    let incident: Incident = sqlx::query_as(
        "INSERT INTO secure.incidents (id, tenant_id, title, severity, description, source)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING *",
    )
    .bind(Uuid::new_v4())
    .bind(&ctx.tenant_id)
    .bind(&title)
    .bind(severity)
    .bind(&description)
    .bind(&source)
    .fetch_one(&mut *tx)
    .await?;
    // Committed before the job is queued, so the worker always finds the
    // incident. Should queueing fail, the incident is taken back and the
    // client told to retry (503): an incident is never stored unpropagated.
    tx.commit().await?;
    if let Some(queues) = &state.queues {
        let check = Job::new(
            QueueName::ComplianceChecks,
            COMPLIANCE_CHECK,
            &ctx.tenant_id,
            json!({ "incidentId": incident.id }),
        );
        if let Err(e) = queues.enqueue(&check).await {
            tracing::error!(error = crate::error::chain(&e), incident = %incident.id, "failed to queue the incident's propagation; taking it back");
            let mut tx = tenant_tx(&state.db, &ctx.tenant_id).await?;
            sqlx::query("DELETE FROM secure.incidents WHERE id = $1 AND tenant_id = $2")
                .bind(incident.id)
                .bind(&ctx.tenant_id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            return Err(ApiError::from(e));
        }
    }
    Ok((StatusCode::CREATED, Json(incident)))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Only incidents with this status.
    #[param(schema_with = openapi::fields::incident_status)]
    status: Option<String>,
    /// Page size (default 50).
    #[param(minimum = 1, maximum = 500, example = 50)]
    limit: Option<i64>,
    /// Rows to skip.
    #[param(minimum = 0, example = 0)]
    offset: Option<i64>,
}

/// List incidents
///
/// Newest first.
#[utoipa::path(
    get,
    path = "/incidents",
    operation_id = "listIncidents",
    params(ListQuery),
    responses((status = 200, description = "a page of incidents", body = openapi::Page<Incident>)),
    security(("tenantKey" = ["read:security"]), ("crossAppToken" = ["read:security"])),
)]
async fn list(
    State(state): State<AppState>,
    ctx: TenantContext,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    ctx.require("read:security")?;
    let (limit, offset) = validate::page(q.limit, q.offset)?;
    if let Some(status) = &q.status {
        validate::one_of("status", status, &INCIDENT_STATUSES)?;
    }
    let mut tx = tenant_tx(&state.db, &ctx.tenant_id).await?;
    let rows: Vec<Incident> = sqlx::query_as(
        "SELECT * FROM secure.incidents WHERE tenant_id = $1 AND ($2::text IS NULL OR status = $2)
          ORDER BY created_at DESC, id LIMIT $3 OFFSET $4",
    )
    .bind(&ctx.tenant_id)
    .bind(&q.status)
    .bind(limit)
    .bind(offset)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Json(json!({ "data": rows })))
}

/// `POST /incidents/{id}/resolve`: idempotent.
#[utoipa::path(
    post,
    path = "/incidents/{id}/resolve",
    operation_id = "resolveIncident",
    params(("id" = Uuid, Path, description = "the incident's id", extensions(("x-tekup-ref" = json!("secure-platform:createIncident"))))),
    responses(
        (status = 200, description = "the incident, resolved", body = Incident),
        (status = 404, description = "no such incident for this tenant", body = openapi::Error),
    ),
    security(("tenantKey" = ["write:incidents"]), ("crossAppToken" = ["write:incidents"])),
    extensions(("x-tekup-store" = json!("secure.incidents"))),
)]
async fn resolve(
    State(state): State<AppState>,
    ctx: TenantContext,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Incident>> {
    ctx.require("write:incidents")?;
    let mut tx = tenant_tx(&state.db, &ctx.tenant_id).await?;
    let incident: Option<Incident> = sqlx::query_as(
        "UPDATE secure.incidents SET status = 'resolved', resolved_at = coalesce(resolved_at, now())
          WHERE id = $1 AND tenant_id = $2 RETURNING *",
    )
    .bind(id)
    .bind(&ctx.tenant_id)
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    incident
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("incident {id} not found")))
}

/// `GET /dashboard/metrics`: open incidents, in total and by severity.
#[utoipa::path(
    get,
    path = "/dashboard/metrics",
    operation_id = "dashboardMetrics",
    responses((status = 200, description = "`activeIncidents`, `activeIncidentsBySeverity`", body = Object)),
    security(("tenantKey" = ["read:metrics"]), ("crossAppToken" = ["read:metrics"])),
)]
async fn dashboard(State(state): State<AppState>, ctx: TenantContext) -> ApiResult<Json<Value>> {
    ctx.require("read:metrics")?;
    let mut tx = tenant_tx(&state.db, &ctx.tenant_id).await?;
    let by_severity = grouped_counts(
        &mut tx,
        "SELECT severity, count(*) FROM secure.incidents WHERE tenant_id = $1 AND status = 'open' GROUP BY severity",
        &ctx.tenant_id,
    )
    .await?;
    tx.commit().await?;
    let active: i64 = by_severity.values().filter_map(Value::as_i64).sum();
    Ok(Json(
        json!({ "activeIncidents": active, "activeIncidentsBySeverity": by_severity }),
    ))
}

/// `GET /analytics`: incidents opened per day over the last 30 days.
#[utoipa::path(
    get,
    path = "/analytics",
    operation_id = "analytics",
    responses((status = 200, description = "`incidentsPerDay`: day (`YYYY-MM-DD`) -> count", body = Object)),
    security(("tenantKey" = ["read:analytics"]), ("crossAppToken" = ["read:analytics"])),
)]
async fn analytics(State(state): State<AppState>, ctx: TenantContext) -> ApiResult<Json<Value>> {
    ctx.require("read:analytics")?;
    let mut tx = tenant_tx(&state.db, &ctx.tenant_id).await?;
    let per_day = grouped_counts(
        &mut tx,
        "SELECT to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD'), count(*) FROM secure.incidents
          WHERE tenant_id = $1 AND created_at > now() - interval '30 days' GROUP BY 1 ORDER BY 1",
        &ctx.tenant_id,
    )
    .await?;
    tx.commit().await?;
    Ok(Json(json!({ "incidentsPerDay": per_day })))
}
