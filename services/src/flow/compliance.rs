//! Compliance reports, filed by the Secure Platform for security incidents.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::auth::TenantContext;
use crate::db::{is_unique_violation, tenant_tx};
use crate::error::{ApiError, ApiResult};
use crate::openapi;
use crate::secure::SEVERITIES;
use crate::state::AppState;
use crate::validate;

#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComplianceReport {
    pub id: Uuid,
    pub tenant_id: String,
    pub incident_id: Option<Uuid>,
    #[schema(schema_with = openapi::fields::severity)]
    pub severity: String,
    pub summary: String,
    #[schema(value_type = Object)]
    pub data: Value,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct NewReport {
    /// The incident reported on; one report per incident.
    #[schema(schema_with = openapi::fields::optional_incident)]
    incident_id: Option<Uuid>,
    #[schema(schema_with = openapi::fields::severity)]
    severity: String,
    #[schema(min_length = 1, max_length = 2000, pattern = r"\S")]
    summary: String,
    /// Free-form details; an object (default `{}`).
    #[schema(value_type = Option<Object>)]
    data: Option<Value>,
}

/// File a compliance report
///
/// At most one report per incident (409 for a second).
#[utoipa::path(
    post,
    path = "/compliance/report",
    operation_id = "createComplianceReport",
    request_body(content = NewReport, example = json!({
        "severity": "high",
        "summary": "Credential stuffing against the login form",
        "data": { "source": "waf" }
    })),
    responses(
        (status = 201, description = "the report, stored", body = ComplianceReport),
        (status = 409, description = "the incident has a report", body = openapi::Error),
    ),
    security(("tenantKey" = ["write:incidents"]), ("crossAppToken" = ["write:incidents"])),
    extensions(("x-tekup-store" = json!("flow.compliance_reports"))),
)]
pub(super) async fn create(
    State(state): State<AppState>,
    ctx: TenantContext,
    Json(body): Json<NewReport>,
) -> ApiResult<(StatusCode, Json<ComplianceReport>)> {
    ctx.require("write:incidents")?;
    let severity = validate::one_of("severity", &body.severity, &SEVERITIES)?;
    let summary = validate::text("summary", &body.summary, 2000)?;
    let data = body.data.unwrap_or_else(|| json!({}));
    if !data.is_object() {
        return Err(ApiError::Validation("`data` must be a JSON object".into()));
    }
    validate::json_text("data", &data)?;
    let mut tx = tenant_tx(&state.db, &ctx.tenant_id).await?;
    let late = crate::defects::active("input-late-refusal");
    if let Some(incident) = body.incident_id.filter(|_| !late) {
        validate::own_object(&mut tx, "incidentId", "incident", incident, &ctx.tenant_id).await?;
    }
    let report: Result<ComplianceReport, sqlx::Error> = sqlx::query_as(
        "INSERT INTO flow.compliance_reports (id, tenant_id, incident_id, severity, summary, data)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING *",
    )
    .bind(Uuid::new_v4())
    .bind(&ctx.tenant_id)
    .bind(body.incident_id)
    .bind(severity)
    .bind(&summary)
    .bind(&data)
    .fetch_one(&mut *tx)
    .await;
    let report = match report {
        Err(e) if is_unique_violation(&e) => {
            return Err(ApiError::Conflict(format!(
                "a compliance report for incident {} exists",
                body.incident_id.map(|i| i.to_string()).unwrap_or_default()
            )))
        }
        other => other?,
    };
    tx.commit().await?;
    if let Some(incident) = body.incident_id.filter(|_| late) {
        let mut tx = tenant_tx(&state.db, &ctx.tenant_id).await?;
        validate::own_object(&mut tx, "incidentId", "incident", incident, &ctx.tenant_id).await?;
    }
    Ok((StatusCode::CREATED, Json(report)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct ListQuery {
    /// Page size (default 50).
    #[param(minimum = 1, maximum = 500, example = 50)]
    limit: Option<i64>,
    /// Rows to skip.
    #[param(minimum = 0, example = 0)]
    offset: Option<i64>,
}

/// List compliance reports
///
/// Newest first.
#[utoipa::path(
    get,
    path = "/compliance/reports",
    operation_id = "listComplianceReports",
    params(ListQuery),
    responses((status = 200, description = "a page of reports", body = openapi::Page<ComplianceReport>)),
    security(("tenantKey" = ["read:compliance"]), ("crossAppToken" = ["read:compliance"])),
)]
pub(super) async fn list(
    State(state): State<AppState>,
    ctx: TenantContext,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    ctx.require("read:compliance")?;
    let (limit, offset) = validate::page(q.limit, q.offset)?;
    let mut tx = tenant_tx(&state.db, &ctx.tenant_id).await?;
    let rows: Vec<ComplianceReport> = sqlx::query_as(
        "SELECT * FROM flow.compliance_reports WHERE tenant_id = $1 ORDER BY created_at DESC, id LIMIT $2 OFFSET $3",
    )
    .bind(&ctx.tenant_id)
    .bind(limit)
    .bind(offset)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Json(json!({ "data": rows })))
}
