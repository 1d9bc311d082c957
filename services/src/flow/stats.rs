//! Figures for the business dashboard.

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use crate::auth::TenantContext;
use crate::db::{grouped_counts, tenant_tx};
use crate::error::ApiResult;
use crate::state::AppState;

/// `GET /dashboard/metrics`: lead counts by status, activities, open compliance reports.
#[utoipa::path(
    get,
    path = "/dashboard/metrics",
    operation_id = "dashboardMetrics",
    responses((status = 200, description = "`leads`, `leadsByStatus`, `activities`, `complianceReports`", body = Object)),
    security(("tenantKey" = ["read:metrics"]), ("crossAppToken" = ["read:metrics"])),
)]
pub(super) async fn dashboard(
    State(state): State<AppState>,
    ctx: TenantContext,
) -> ApiResult<Json<Value>> {
    ctx.require("read:metrics")?;
    let mut tx = tenant_tx(&state.db, &ctx.tenant_id).await?;
    let by_status = grouped_counts(
        &mut tx,
        "SELECT status, count(*) FROM flow.leads WHERE tenant_id = $1 GROUP BY status",
        &ctx.tenant_id,
    )
    .await?;
    let (activities, reports): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM flow.activities WHERE tenant_id = $1),
                (SELECT count(*) FROM flow.compliance_reports WHERE tenant_id = $1)",
    )
    .bind(&ctx.tenant_id)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    let leads: i64 = by_status.values().filter_map(Value::as_i64).sum();
    Ok(Json(json!({
        "leads": leads,
        "leadsByStatus": by_status,
        "activities": activities,
        "complianceReports": reports,
    })))
}

/// `GET /analytics`: leads created per day over the last 30 days.
#[utoipa::path(
    get,
    path = "/analytics",
    operation_id = "analytics",
    responses((status = 200, description = "`leadsPerDay`: day (`YYYY-MM-DD`) -> count", body = Object)),
    security(("tenantKey" = ["read:analytics"]), ("crossAppToken" = ["read:analytics"])),
)]
pub(super) async fn analytics(
    State(state): State<AppState>,
    ctx: TenantContext,
) -> ApiResult<Json<Value>> {
    ctx.require("read:analytics")?;
    let mut tx = tenant_tx(&state.db, &ctx.tenant_id).await?;
    let per_day = grouped_counts(
        &mut tx,
        "SELECT to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD'), count(*) FROM flow.leads
          WHERE tenant_id = $1 AND created_at > now() - interval '30 days' GROUP BY 1 ORDER BY 1",
        &ctx.tenant_id,
    )
    .await?;
    tx.commit().await?;
    Ok(Json(json!({ "leadsPerDay": per_day })))
}
