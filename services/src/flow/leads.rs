//! Leads, and the lead-to-contact flow.
//!
//! `POST /leads` stores the lead with its `process-lead` job in the outbox,
//! then queues the job on the lead-processing queue ([`super::outbox`]),
//! answering 201 at once; the worker then runs the lead-to-contact flow
//! ([`super::processing`]).
//! Without a queue configured (no Redis), the flow runs inside the request.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{activities, outbox, processing};
use crate::auth::TenantContext;
use crate::db::tenant_tx;
use crate::error::{ApiError, ApiResult};
use crate::openapi;
use crate::queue::{Job, QueueName};
use crate::state::AppState;
use crate::validate;

pub(crate) const STATUSES: [&str; 5] = ["new", "contacted", "qualified", "converted", "lost"];

#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
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
    #[schema(schema_with = openapi::fields::lead_status)]
    pub status: String,
    pub contact_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct NewLead {
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    first_name: String,
    #[schema(max_length = 200)]
    last_name: Option<String>,
    #[schema(format = Email, max_length = 254)]
    email: String,
    #[schema(max_length = 200)]
    company: Option<String>,
    #[schema(max_length = 50)]
    phone: Option<String>,
    #[schema(max_length = 100)]
    source: Option<String>,
    /// Queue a voice notification once the lead is processed.
    notify_voice: Option<bool>,
}

/// Create a lead
///
/// Stores the lead and queues its processing (linking it to a CRM contact,
/// found by email or created).
#[utoipa::path(
    post,
    path = "/leads",
    operation_id = "createLead",
    request_body(content = NewLead, example = json!({
        "firstName": "Ada",
        "lastName": "Lovelace",
        "email": "ada@example.com",
        "company": "Analytical Engines",
        "phone": "+44 20 7946 0000",
        "source": "website"
    })),
    responses(
        (status = 201, description = "the lead, stored", body = Lead),
        (status = 503, description = "the lead-processing queue is unavailable; retry", body = openapi::Error),
    ),
    security(("tenantKey" = ["write:leads"]), ("crossAppToken" = ["write:leads"])),
    extensions(("x-tekup-store" = json!("flow.leads"))),
)]
pub(super) async fn create(
    State(state): State<AppState>,
    ctx: TenantContext,
    Json(body): Json<NewLead>,
) -> ApiResult<(StatusCode, Json<Lead>)> {
    let late_check = crate::defects::active("access-late-check");
    if !late_check {
        ctx.require("write:leads")?;
    }
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
            .map_err(|e| match e {
                processing::ProcessLeadError::Database(e) => ApiError::from(e),
                processing::ProcessLeadError::Publish(e) => ApiError::from(e),
                e => ApiError::internal(e),
            })?;
        return Ok((StatusCode::CREATED, Json(lead)));
    };
    let job = Job::new(
        QueueName::LeadProcessing,
        processing::PROCESS_LEAD,
        &ctx.tenant_id,
        json!({ "leadId": lead.id, "originApp": ctx.app, "notifyVoice": body.notify_voice.unwrap_or(false) }),
    );
    let outbox = !crate::defects::active("lead-no-outbox");
    if outbox {
        // The job goes into the outbox in the lead's own transaction: a
        // lead is never stored without a record of its job. The commit and
        // the queueing then run in a task of its own: a client that hangs
        // up drops this handler's future, and a future dropped between the
        // two would leave the job to the next start's recovery.
        outbox::record(&mut tx, &job, lead.id).await?;
        let state = state.clone();
        let tenant = ctx.tenant_id.clone();
        let job = job.clone();
        crate::context::RequestContext::spawn(async move {
            // Committed before the job is queued, so the worker always
            // finds the lead.
            tx.commit().await?;
            outbox::queue(&state, &tenant, &job).await
        })
        .await
        .map_err(|e| ApiError::internal(anyhow::anyhow!("queueing the lead's job: {e}")))??;
        if late_check {
            ctx.require("write:leads")?;
        }
    } else {
        // Deliberate defect `lead-no-outbox`: queued after the commit with
        // nothing to recover it from, as the platform did before the
        // outbox; a process killed here leaves the lead unprocessed.
        tx.commit().await?;
        if late_check {
            ctx.require("write:leads")?;
        }
        if let Err(e) = queues.enqueue(&job).await {
            tracing::error!(error = crate::error::chain(&e), lead = %lead.id, "failed to enqueue lead processing; taking the lead back");
            let mut tx = tenant_tx(&state.db, &ctx.tenant_id).await?;
            sqlx::query("DELETE FROM flow.leads WHERE id = $1 AND tenant_id = $2")
                .bind(lead.id)
                .bind(&ctx.tenant_id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            return Err(ApiError::from(e));
        }
    }
    if crate::defects::active("lead-enqueued-twice") {
        // Deliberate defect: the job is queued again under a new id, as a
        // client retrying an enqueue whose answer it lost would do. The
        // handlers are idempotent by job id, not by lead, so the lead is
        // processed twice.
        let again = Job {
            id: Uuid::new_v4(),
            ..job
        };
        if let Err(e) = queues.enqueue(&again).await {
            tracing::warn!(error = crate::error::chain(&e), "the second enqueue failed");
        }
    }
    state.metrics.leads_created.inc();
    Ok((StatusCode::CREATED, Json(lead)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct ListQuery {
    /// Only leads with this status.
    #[param(schema_with = openapi::fields::lead_status)]
    status: Option<String>,
    /// Only leads with this email.
    #[param(format = Email, max_length = 254, example = "ada@example.com")]
    email: Option<String>,
    /// Page size (default 50).
    #[param(minimum = 1, maximum = 500, example = 50)]
    limit: Option<i64>,
    /// Rows to skip.
    #[param(minimum = 0, example = 0)]
    offset: Option<i64>,
}

/// List leads
///
/// Newest first, with the `total` matching.
#[utoipa::path(
    get,
    path = "/leads",
    operation_id = "listLeads",
    params(ListQuery),
    responses((status = 200, description = "a page of leads", body = openapi::Page<Lead>)),
    security(("tenantKey" = ["read:leads"]), ("crossAppToken" = ["read:leads"])),
)]
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

/// Get a lead
#[utoipa::path(
    get,
    path = "/leads/{id}",
    operation_id = "getLead",
    params(("id" = Uuid, Path, description = "the lead's id", extensions(("x-tekup-ref" = json!("flow-api:createLead"))))),
    responses(
        (status = 200, description = "the lead", body = Lead),
        (status = 404, description = "no such lead for this tenant", body = openapi::Error),
    ),
    security(("tenantKey" = ["read:leads"]), ("crossAppToken" = ["read:leads"])),
)]
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

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct LeadUpdate {
    #[schema(schema_with = openapi::fields::lead_status)]
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

/// Change a lead's status
///
/// `new` may go to `contacted`, `qualified` or `lost`; `contacted` to
/// `qualified` or `lost`; `qualified` to `converted` or `lost`. `converted`
/// and `lost` are final. Records a `LEAD_STATUS_CHANGED` activity.
#[utoipa::path(
    patch,
    path = "/leads/{id}",
    operation_id = "updateLead",
    params(("id" = Uuid, Path, description = "the lead's id", extensions(("x-tekup-ref" = json!("flow-api:createLead"))))),
    request_body(content = LeadUpdate, example = json!({ "status": "contacted" })),
    responses(
        (status = 200, description = "the lead, updated", body = Lead),
        (status = 404, description = "no such lead for this tenant", body = openapi::Error),
        (status = 409, description = "the lead cannot go to that status from its own", body = openapi::Error),
    ),
    security(("tenantKey" = ["write:leads"]), ("crossAppToken" = ["write:leads"])),
    extensions(("x-tekup-store" = json!("flow.leads"))),
)]
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
