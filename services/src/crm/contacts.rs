//! Contacts, their association with leads, and the idempotent sync.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sqlx::{Postgres, Transaction};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::auth::TenantContext;
use crate::db::{is_unique_violation, tenant_tx};
use crate::error::{ApiError, ApiResult};
use crate::openapi;
use crate::state::AppState;
use crate::validate;

/// A contact; `leadId` is the most recently associated lead.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Contact {
    pub id: Uuid,
    pub tenant_id: String,
    pub email: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub company: Option<String>,
    pub phone: Option<String>,
    pub source: Option<String>,
    pub lead_ids: Vec<Uuid>,
    #[sqlx(skip)]
    pub lead_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const SELECT_CONTACTS: &str = "
    SELECT c.*, coalesce(array_agg(cl.lead_id ORDER BY cl.associated_at, cl.lead_id)
                         FILTER (WHERE cl.lead_id IS NOT NULL), '{}') AS lead_ids
      FROM crm.contacts c LEFT JOIN crm.contact_leads cl ON cl.contact_id = c.id";

fn finish(mut contact: Contact) -> Contact {
    contact.lead_id = contact.lead_ids.last().copied();
    contact
}

async fn fetch(
    tx: &mut Transaction<'static, Postgres>,
    tenant: &str,
    id: Uuid,
) -> Result<Option<Contact>, sqlx::Error> {
    let contact: Option<Contact> = sqlx::query_as(&format!(
        "{SELECT_CONTACTS} WHERE c.id = $1 AND c.tenant_id = $2 GROUP BY c.id"
    ))
    .bind(id)
    .bind(tenant)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(contact.map(finish))
}

/// A contact as clients send it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct ContactInput {
    /// Unique per tenant (compared lower-cased).
    #[schema(format = Email, max_length = 254)]
    email: String,
    #[schema(max_length = 200)]
    first_name: Option<String>,
    #[schema(max_length = 200)]
    last_name: Option<String>,
    #[schema(max_length = 200)]
    company: Option<String>,
    #[schema(max_length = 50)]
    phone: Option<String>,
    #[schema(max_length = 100)]
    source: Option<String>,
    /// A lead to associate with the contact.
    #[schema(schema_with = openapi::fields::optional_lead)]
    lead_id: Option<Uuid>,
}

/// A validated [`ContactInput`].
#[derive(Debug)]
struct Fields {
    email: String,
    first_name: Option<String>,
    last_name: Option<String>,
    company: Option<String>,
    phone: Option<String>,
    source: Option<String>,
    lead_id: Option<Uuid>,
}

impl ContactInput {
    fn validate(self, at: &str) -> Result<Fields, ApiError> {
        let field = |name: &str| format!("{at}{name}");
        Ok(Fields {
            email: validate::email(&field("email"), &self.email)?,
            first_name: validate::optional_name(
                &field("firstName"),
                self.first_name.as_deref(),
                200,
            )?,
            last_name: validate::optional_name(&field("lastName"), self.last_name.as_deref(), 200)?,
            company: validate::optional_name(&field("company"), self.company.as_deref(), 200)?,
            phone: validate::optional_text(&field("phone"), self.phone.as_deref(), 50)?,
            source: validate::optional_text(&field("source"), self.source.as_deref(), 100)?,
            lead_id: self.lead_id,
        })
    }
}

async fn associate_lead(
    tx: &mut Transaction<'static, Postgres>,
    tenant: &str,
    contact: Uuid,
    lead: Uuid,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO crm.contact_leads (tenant_id, contact_id, lead_id) VALUES ($1, $2, $3)
         ON CONFLICT DO NOTHING",
    )
    .bind(tenant)
    .bind(contact)
    .bind(lead)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Create a contact
#[utoipa::path(
    post,
    path = "/contacts",
    operation_id = "createContact",
    request_body(content = ContactInput, example = json!({
        "email": "grace@example.com",
        "firstName": "Grace",
        "lastName": "Hopper",
        "company": "Navy Labs",
        "phone": "+1 202 555 0143",
        "source": "conference",
        "leadId": "6f1c1a0e-8a3b-4c47-9d1e-2b7f6c3d9a10"
    })),
    responses(
        (status = 201, description = "the contact, stored", body = Contact),
        (status = 409, description = "a contact with this email exists", body = openapi::Error),
    ),
    security(("tenantKey" = ["write:contacts"]), ("crossAppToken" = ["write:contacts"])),
    extensions(("x-tekup-store" = json!("crm.contacts"))),
)]
pub(super) async fn create(
    State(state): State<AppState>,
    ctx: TenantContext,
    Json(body): Json<ContactInput>,
) -> ApiResult<(StatusCode, Json<Contact>)> {
    ctx.require("write:contacts")?;
    let f = body.validate("")?;
    let mut tx = tenant_tx(&state.db, &ctx.tenant_id).await?;
    let id = Uuid::new_v4();
    let inserted = sqlx::query(
        "INSERT INTO crm.contacts (id, tenant_id, email, first_name, last_name, company, phone, source)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(id)
    .bind(&ctx.tenant_id)
    .bind(&f.email)
    .bind(&f.first_name)
    .bind(&f.last_name)
    .bind(&f.company)
    .bind(&f.phone)
    .bind(&f.source)
    .execute(&mut *tx)
    .await;
    match inserted {
        Err(e) if is_unique_violation(&e) => {
            return Err(ApiError::Conflict(format!(
                "a contact with email {} already exists",
                f.email
            )))
        }
        other => other?,
    };
    if let Some(lead) = f.lead_id {
        validate::own_object(&mut tx, "leadId", "lead", lead, &ctx.tenant_id).await?;
        associate_lead(&mut tx, &ctx.tenant_id, id, lead).await?;
    }
    let contact = fetch(&mut tx, &ctx.tenant_id, id)
        .await?
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("inserted contact {id} not visible")))?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(contact)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct ListQuery {
    /// Only the contact with this email.
    #[param(format = Email, max_length = 254, example = "grace@example.com")]
    email: Option<String>,
    /// Page size (default 50).
    #[param(minimum = 1, maximum = 500, example = 50)]
    limit: Option<i64>,
    /// Rows to skip.
    #[param(minimum = 0, example = 0)]
    offset: Option<i64>,
}

/// List contacts
///
/// Newest first, with the `total` matching.
#[utoipa::path(
    get,
    path = "/contacts",
    operation_id = "listContacts",
    params(ListQuery),
    responses((status = 200, description = "a page of contacts", body = openapi::Page<Contact>)),
    security(("tenantKey" = ["read:contacts"]), ("crossAppToken" = ["read:contacts"])),
)]
pub(super) async fn list(
    State(state): State<AppState>,
    ctx: TenantContext,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    ctx.require("read:contacts")?;
    let (limit, offset) = validate::page(q.limit, q.offset)?;
    let email = q
        .email
        .as_deref()
        .map(|e| validate::email("email", e))
        .transpose()?;
    let mut tx = tenant_tx(&state.db, &ctx.tenant_id).await?;
    let filter = "c.tenant_id = $1 AND ($2::text IS NULL OR c.email = $2)";
    let rows: Vec<Contact> = sqlx::query_as(&format!(
        "{SELECT_CONTACTS} WHERE {filter} GROUP BY c.id ORDER BY c.created_at DESC, c.id LIMIT $3 OFFSET $4"
    ))
    .bind(&ctx.tenant_id)
    .bind(&email)
    .bind(limit)
    .bind(offset)
    .fetch_all(&mut *tx)
    .await?;
    let total: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM crm.contacts c WHERE {filter}"
    ))
    .bind(&ctx.tenant_id)
    .bind(&email)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    let rows: Vec<Contact> = rows.into_iter().map(finish).collect();
    Ok(Json(json!({ "data": rows, "total": total })))
}

/// Get a contact
#[utoipa::path(
    get,
    path = "/contacts/{id}",
    operation_id = "getContact",
    params(("id" = Uuid, Path, description = "the contact's id", extensions(("x-tekup-ref" = json!("crm-api:createContact"))))),
    responses(
        (status = 200, description = "the contact", body = Contact),
        (status = 404, description = "no such contact for this tenant", body = openapi::Error),
    ),
    security(("tenantKey" = ["read:contacts"]), ("crossAppToken" = ["read:contacts"])),
)]
pub(super) async fn get(
    State(state): State<AppState>,
    ctx: TenantContext,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Contact>> {
    ctx.require("read:contacts")?;
    let mut tx = tenant_tx(&state.db, &ctx.tenant_id).await?;
    let contact = fetch(&mut tx, &ctx.tenant_id, id).await?;
    tx.commit().await?;
    contact
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("contact {id} not found")))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct Association {
    #[schema(schema_with = openapi::fields::lead)]
    lead_id: Uuid,
}

/// Associate a lead with a contact
///
/// 201 when the association is new, 200 when it existed.
#[utoipa::path(
    post,
    path = "/contacts/{id}/leads",
    operation_id = "associateLead",
    params(("id" = Uuid, Path, description = "the contact's id", extensions(("x-tekup-ref" = json!("crm-api:createContact"))))),
    request_body(content = Association, example = json!({ "leadId": "6f1c1a0e-8a3b-4c47-9d1e-2b7f6c3d9a10" })),
    responses(
        (status = 201, description = "associated", body = Contact),
        (status = 200, description = "already associated", body = Contact),
        (status = 404, description = "no such contact for this tenant", body = openapi::Error),
    ),
    security(("tenantKey" = ["write:contacts"]), ("crossAppToken" = ["write:contacts"])),
    extensions(("x-tekup-store" = json!("crm.contact_leads"))),
)]
pub(super) async fn associate(
    State(state): State<AppState>,
    ctx: TenantContext,
    Path(id): Path<Uuid>,
    Json(body): Json<Association>,
) -> ApiResult<(StatusCode, Json<Contact>)> {
    ctx.require("write:contacts")?;
    let mut tx = tenant_tx(&state.db, &ctx.tenant_id).await?;
    // Checked through RLS first: a foreign key alone would accept another tenant's contact.
    if fetch(&mut tx, &ctx.tenant_id, id).await?.is_none() {
        return Err(ApiError::NotFound(format!("contact {id} not found")));
    }
    validate::own_object(&mut tx, "leadId", "lead", body.lead_id, &ctx.tenant_id).await?;
    let new = associate_lead(&mut tx, &ctx.tenant_id, id, body.lead_id).await?;
    let contact = fetch(&mut tx, &ctx.tenant_id, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("contact {id} not found")))?;
    tx.commit().await?;
    let status = if new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(contact)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct SyncRequest {
    #[schema(max_items = 500)]
    contacts: Vec<ContactInput>,
}

/// Most contacts one sync request may carry.
pub(super) const MAX_SYNC_BATCH: usize = 500;

/// `POST /contacts/sync`: upsert by email. Given fields overwrite, absent
/// fields keep their value; a row whose values do not change is not touched,
/// so replaying a sync reports everything `unchanged`.
#[utoipa::path(
    post,
    path = "/contacts/sync",
    operation_id = "syncContacts",
    request_body(content = SyncRequest, example = json!({
        "contacts": [
            { "email": "alan@example.com", "firstName": "Alan", "lastName": "Turing" },
            { "email": "edsger@example.com", "company": "Eindhoven University" }
        ]
    })),
    responses((status = 200, description = "`data` (the contacts), `created`, `updated`, `unchanged`", body = Object)),
    security(("tenantKey" = ["write:contacts"]), ("crossAppToken" = ["write:contacts"])),
    extensions(("x-tekup-store" = json!("crm.contacts"))),
)]
pub(super) async fn sync(
    State(state): State<AppState>,
    ctx: TenantContext,
    Json(body): Json<SyncRequest>,
) -> ApiResult<Json<Value>> {
    ctx.require("write:contacts")?;
    if body.contacts.len() > MAX_SYNC_BATCH {
        return Err(ApiError::Validation(format!(
            "`contacts` holds {} entries; at most {MAX_SYNC_BATCH} per request",
            body.contacts.len()
        )));
    }
    let fields = body
        .contacts
        .into_iter()
        .enumerate()
        .map(|(i, c)| c.validate(&format!("contacts[{i}].")))
        .collect::<Result<Vec<_>, _>>()?;
    let mut tx = tenant_tx(&state.db, &ctx.tenant_id).await?;
    let (mut created, mut updated, mut unchanged) = (0, 0, 0);
    let mut ids = Vec::with_capacity(fields.len());
    for (i, f) in fields.iter().enumerate() {
        if let Some(lead) = f.lead_id {
            let field = format!("contacts[{i}].leadId");
            validate::own_object(&mut tx, &field, "lead", lead, &ctx.tenant_id).await?;
        }
    }
    for f in fields {
        let upserted: Option<(Uuid, bool)> = sqlx::query_as(
            "INSERT INTO crm.contacts AS c (id, tenant_id, email, first_name, last_name, company, phone, source)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (tenant_id, email) DO UPDATE SET
                 first_name = coalesce(EXCLUDED.first_name, c.first_name),
                 last_name = coalesce(EXCLUDED.last_name, c.last_name),
                 company = coalesce(EXCLUDED.company, c.company),
                 phone = coalesce(EXCLUDED.phone, c.phone),
                 source = coalesce(EXCLUDED.source, c.source),
                 updated_at = now()
             WHERE (c.first_name, c.last_name, c.company, c.phone, c.source) IS DISTINCT FROM
                   (coalesce(EXCLUDED.first_name, c.first_name), coalesce(EXCLUDED.last_name, c.last_name),
                    coalesce(EXCLUDED.company, c.company), coalesce(EXCLUDED.phone, c.phone),
                    coalesce(EXCLUDED.source, c.source))
             RETURNING id, (xmax = 0) AS inserted",
        )
        .bind(Uuid::new_v4())
        .bind(&ctx.tenant_id)
        .bind(&f.email)
        .bind(&f.first_name)
        .bind(&f.last_name)
        .bind(&f.company)
        .bind(&f.phone)
        .bind(&f.source)
        .fetch_optional(&mut *tx)
        .await?;
        let id = match upserted {
            Some((id, true)) => {
                created += 1;
                id
            }
            Some((id, false)) => {
                updated += 1;
                id
            }
            None => {
                unchanged += 1;
                sqlx::query_scalar(
                    "SELECT id FROM crm.contacts WHERE tenant_id = $1 AND email = $2",
                )
                .bind(&ctx.tenant_id)
                .bind(&f.email)
                .fetch_one(&mut *tx)
                .await?
            }
        };
        if let Some(lead) = f.lead_id {
            associate_lead(&mut tx, &ctx.tenant_id, id, lead).await?;
        }
        ids.push(id);
    }
    let mut data = Vec::with_capacity(ids.len());
    for id in ids {
        data.extend(fetch(&mut tx, &ctx.tenant_id, id).await?);
    }
    tx.commit().await?;
    Ok(Json(
        json!({ "data": data, "created": created, "updated": updated, "unchanged": unchanged }),
    ))
}
