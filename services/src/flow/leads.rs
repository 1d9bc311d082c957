//! Leads, and the lead-to-contact flow.
//!
//! `POST /leads` stores the lead, then asks the CRM API for a contact with
//! the lead's email: an existing contact gets the lead associated, otherwise
//! a contact is created with it (a concurrent creator's 409 falls back to
//! associating). Finally a `LEAD_CREATED` activity records the outcome.
//! The lead is committed first, so a CRM outage never loses it: the answer
//! is still 201, with `contactId: null` and the failure in the activity.
//! (Synchronous for now; the lead-processing queue replaces this in issue 4.)

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;

use super::activities;
use crate::auth::TenantContext;
use crate::client::{Call, CallError, OnBehalf};
use crate::db::tenant_tx;
use crate::error::{ApiError, ApiResult};
use crate::state::{AppState, ServiceName};
use crate::validate;

pub(super) const STATUSES: [&str; 5] = ["new", "contacted", "qualified", "converted", "lost"];

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
}

pub(super) async fn create(
    State(state): State<AppState>,
    ctx: TenantContext,
    Json(body): Json<NewLead>,
) -> ApiResult<(StatusCode, Json<Lead>)> {
    ctx.require("write:leads")?;
    let first_name = validate::text("firstName", &body.first_name, 200)?;
    let last_name = validate::optional_text("lastName", body.last_name.as_deref(), 200)?;
    let email = validate::email("email", &body.email)?;
    let company = validate::optional_text("company", body.company.as_deref(), 200)?;
    let phone = validate::optional_text("phone", body.phone.as_deref(), 50)?;
    let source = validate::optional_text("source", body.source.as_deref(), 100)?;

    let mut tx = tenant_tx(&state.db, &ctx.tenant_id).await?;
    let mut lead: Lead = sqlx::query_as(
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
    tx.commit().await?;
    state.metrics.leads_created.inc();

    let link = link_contact(&state, &ctx, &lead).await;
    let mut tx = tenant_tx(&state.db, &ctx.tenant_id).await?;
    let data = match &link {
        Ok((contact_id, created)) => {
            lead = sqlx::query_as(
                "UPDATE flow.leads SET contact_id = $2, updated_at = now()
                  WHERE id = $1 AND tenant_id = $3 RETURNING *",
            )
            .bind(lead.id)
            .bind(contact_id)
            .bind(&ctx.tenant_id)
            .fetch_one(&mut *tx)
            .await?;
            json!({ "contactId": contact_id, "contactCreated": created, "email": email })
        }
        Err(error) => {
            tracing::warn!(lead = %lead.id, error = format!("{error:#}"), "lead not linked to a CRM contact");
            json!({ "contactId": null, "contactError": error.to_string(), "email": email })
        }
    };
    activities::record(
        &mut tx,
        &ctx.tenant_id,
        "LEAD_CREATED",
        "lead",
        Some(lead.id),
        None,
        &data,
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(lead)))
}

/// Finds or creates the CRM contact of `lead` and associates the lead with
/// it; returns the contact id and whether it was created.
async fn link_contact(
    state: &AppState,
    ctx: &TenantContext,
    lead: &Lead,
) -> Result<(Uuid, bool), CallError> {
    let on_behalf = OnBehalf {
        tenant: &ctx.tenant_id,
        origin_app: Some(&ctx.app),
    };
    let client = &state.client;
    let find = || async {
        let path = format!("/contacts?email={}", percent_encode(&lead.email));
        let (_, found) = client
            .call(on_behalf, Call::get(ServiceName::CrmApi, path))
            .await?;
        Ok::<_, CallError>(
            found["data"][0]["id"]
                .as_str()
                .and_then(|id| id.parse::<Uuid>().ok()),
        )
    };
    let associate = |contact: Uuid| async move {
        let body = json!({ "leadId": lead.id });
        let path = format!("/contacts/{contact}/leads");
        client
            .call(on_behalf, Call::post(ServiceName::CrmApi, path, &body))
            .await
            .map(|_| contact)
    };
    if let Some(contact) = find().await? {
        return Ok((associate(contact).await?, false));
    }
    let body = json!({
        "email": lead.email,
        "firstName": lead.first_name,
        "lastName": lead.last_name,
        "company": lead.company,
        "phone": lead.phone,
        "source": "flow-api",
        "leadId": lead.id,
    });
    let (status, created) = client
        .call(
            on_behalf,
            Call::post(ServiceName::CrmApi, "/contacts", &body).accept(&[StatusCode::CONFLICT]),
        )
        .await?;
    if status == StatusCode::CONFLICT {
        // Someone created the contact between our lookup and our insert.
        let contact = find().await?.ok_or_else(|| CallError::Status {
            target: ServiceName::CrmApi,
            status,
            body: "contact reported as existing but not found".into(),
        })?;
        return Ok((associate(contact).await?, false));
    }
    let id = created["id"]
        .as_str()
        .and_then(|id| id.parse::<Uuid>().ok())
        .ok_or_else(|| CallError::Status {
            target: ServiceName::CrmApi,
            status,
            body: format!("created contact has no id: {created}"),
        })?;
    Ok((id, true))
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn percent_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
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

    #[test]
    fn emails_are_encoded_for_query_strings() {
        assert_eq!(percent_encode("a+b@x.com"), "a%2Bb%40x.com");
    }
}
