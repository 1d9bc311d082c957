//! Leads, and the lead-to-contact flow.
//!
//! `POST /leads` stores the lead, then enqueues a `process-lead` job on the
//! lead-processing queue, answering 201 at once; the worker then runs the
//! lead-to-contact flow ([`super::processing`]).
//! Without a queue configured (no Redis), the flow runs inside the request.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;

use super::{activities, processing};
use crate::auth::TenantContext;
use crate::db::tenant_tx;
use crate::error::{ApiError, ApiResult};
use crate::queue::{Job, QueueName};
use crate::state::AppState;
use crate::validate;

pub(crate) const STATUSES: [&str; 5] = ["new", "contacted", "qualified", "converted", "lost"];

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct Lead {
    pub id: Uuid,
    pub tenant_id: String,
    pub first_name: String,
    pub last_name: Option<String>,
    pub email: String,
    pub company: Option<String>,
    pub phone: Option<String>,
    pub source: Option<String>,
    pub status: String,
    pub contact_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct NewLead {
    first_name: String,
    last_name: Option<String>,
    email: String,
    company: Option<String>,
    phone: Option<String>,
    source: Option<String>,
    /// Queue a voice notification once the lead is processed.
    notify_voice: Option<bool>,
}

pub(super) async fn create(
    State(state): State<AppState>,
    ctx: TenantContext,
    Json(body): Json<NewLead>,
) -> ApiResult<(StatusCode, Json<Lead>)> {
    ctx.require("write:leads")?;
    let first_name = validate::name("firstName", &body.first_name, 200)?;
    let last_name = validate::optional_name("lastName", body.last_name.as_deref(), 200)?;
    let email = validate::email("email", &body.email)?;
    let company = validate::optional_name("company", body.company.as_deref(), 200)?;
    let phone = validate::optional_text("phone", body.phone.as_deref(), 50)?;
    let source = validate::optional_text("source", body.source.as_deref(), 100)?;

    let mut tx = tenant_tx(&state.db, &ctx.tenant_id).await?;
    let lead: Lead = sqlx::query_as(
        "INSERT INTO flow.leads (id, tenant_id, first_name, last_name, email, company, phone, source)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING *",
    )
    .bind(Uuid::new_v4())
    .bind(&ctx.tenant_id)
    .bind(&first_name)
    .bind(&last_name)
    .bind(&email)
    .bind(&company)
    .bind(&phone)
    .bind(&source)
    .fetch_one(&mut *tx)
    .await?;
    let Some(queues) = &state.queues else {
        // No queue configured: the lead-to-contact flow runs in the request,
        // and a CRM failure is recorded rather than failing the request.
        tx.commit().await?;
        state.metrics.leads_created.inc();
        let lead = processing::process_lead(&state, &ctx.tenant_id, Some(&ctx.app), lead.id, false)
            .await
            .map_err(ApiError::internal)?;
        return Ok((StatusCode::CREATED, Json(lead)));
    };
    // Committed before the job is queued, so the worker always finds the
    // lead. Should queueing fail, the lead is taken back and the client told
    // to retry (503): a lead is never stored without its job.
    tx.commit().await?;
    let job = Job::new(
        QueueName::LeadProcessing,
        processing::PROCESS_LEAD,
        &ctx.tenant_id,
        json!({ "leadId": lead.id, "originApp": ctx.app, "notifyVoice": body.notify_voice.unwrap_or(false) }),
    );
    if let Err(e) = queues.enqueue(&job).await {
        tracing::error!(error = crate::error::chain(&e), lead = %lead.id, "failed to enqueue lead processing; taking the lead back");
        let mut tx = tenant_tx(&state.db, &ctx.tenant_id).await?;
        sqlx::query("DELETE FROM flow.leads WHERE id = $1 AND tenant_id = $2")
            .bind(lead.id)
            .bind(&ctx.tenant_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        return Err(ApiError::Unavailable(
            "the lead-processing queue is unavailable; retry later".into(),
        ));
    }
    state.metrics.leads_created.inc();
    Ok((StatusCode::CREATED, Json(lead)))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct ListQuery {
    status: Option<String>,
    email: Option<String>,
    limit: Option<i64>,
    offset: Option<i64>,
}

pub(super) async fn list(
    State(state): State<AppState>,
    ctx: TenantContext,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    ctx.require("read:leads")?;
    let (limit, offset) = validate::page(q.limit, q.offset)?;
    if let Some(status) = &q.status {
        validate::one_of("status", status, &STATUSES)?;
    }
    let email = q
        .email
        .as_deref()
        .map(|e| validate::email("email", e))
        .transpose()?;
    let mut tx = tenant_tx(&state.db, &ctx.tenant_id).await?;
    let filter =
        "tenant_id = $1 AND ($2::text IS NULL OR status = $2) AND ($3::text IS NULL OR email = $3)";
    let rows: Vec<Lead> = sqlx::query_as(&format!(
        "SELECT * FROM flow.leads WHERE {filter} ORDER BY created_at DESC, id LIMIT $4 OFFSET $5"
    ))
    .bind(&ctx.tenant_id)
    .bind(&q.status)
    .bind(&email)
    .bind(limit)
    .bind(offset)
    .fetch_all(&mut *tx)
    .await?;
    let total: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM flow.leads WHERE {filter}"))
        .bind(&ctx.tenant_id)
        .bind(&q.status)
        .bind(&email)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Json(json!({ "data": rows, "total": total })))
}

pub(super) async fn get(
    State(state): State<AppState>,
    ctx: TenantContext,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Lead>> {
    ctx.require("read:leads")?;
    let mut tx = tenant_tx(&state.db, &ctx.tenant_id).await?;
    let lead: Option<Lead> =
        sqlx::query_as("SELECT * FROM flow.leads WHERE id = $1 AND tenant_id = $2")
            .bind(id)
            .bind(&ctx.tenant_id)
            .fetch_optional(&mut *tx)
            .await?;
    tx.commit().await?;
    lead.map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("lead {id} not found")))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct LeadUpdate {
    status: String,
}

/// Which status changes are allowed; `converted` and `lost` are final.
fn transition_allowed(from: &str, to: &str) -> bool {
    matches!(
        (from, to),
        ("new", "contacted" | "qualified" | "lost")
            | ("contacted", "qualified" | "lost")
            | ("qualified", "converted" | "lost")
    )
}

pub(super) async fn update(
    State(state): State<AppState>,
    ctx: TenantContext,
    Path(id): Path<Uuid>,
    Json(body): Json<LeadUpdate>,
) -> ApiResult<Json<Lead>> {
    ctx.require("write:leads")?;
    let to = validate::one_of("status", &body.status, &STATUSES)?;
    let mut tx = tenant_tx(&state.db, &ctx.tenant_id).await?;
    let from: Option<String> = sqlx::query_scalar(
        "SELECT status FROM flow.leads WHERE id = $1 AND tenant_id = $2 FOR UPDATE",
    )
    .bind(id)
    .bind(&ctx.tenant_id)
    .fetch_optional(&mut *tx)
    .await?;
    let from = from.ok_or_else(|| ApiError::NotFound(format!("lead {id} not found")))?;
    if !transition_allowed(&from, to) {
        return Err(ApiError::Conflict(format!(
            "a lead cannot go from `{from}` to `{to}`"
        )));
    }
    let lead: Lead = sqlx::query_as(
        "UPDATE flow.leads SET status = $3, updated_at = now() WHERE id = $1 AND tenant_id = $2 RETURNING *",
    )
    .bind(id)
    .bind(&ctx.tenant_id)
    .bind(to)
    .fetch_one(&mut *tx)
    .await?;
    let data = json!({ "from": from, "to": to });
    activities::record(
        &mut tx,
        &ctx.tenant_id,
        "LEAD_STATUS_CHANGED",
        "lead",
        Some(id),
        None,
        &data,
    )
    .await?;
    tx.commit().await?;
    Ok(Json(lead))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_statuses_stay_final() {
        assert!(transition_allowed("new", "qualified"));
        assert!(transition_allowed("qualified", "converted"));
        assert!(!transition_allowed("converted", "new"));
        assert!(!transition_allowed("lost", "contacted"));
        assert!(!transition_allowed("new", "converted"));
        assert!(!transition_allowed("new", "new"));
    }
}
