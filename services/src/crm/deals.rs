//! Deals: opened against a contact, then won (or lost).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::auth::TenantContext;
use crate::client::HttpError;
use crate::db::tenant_tx;
use crate::error::{ApiError, ApiResult};
use crate::events::CrossAppEvent;
use crate::external::stripe::{NewCustomer, NewPaymentIntent, StripeClient, StripeError};
use crate::openapi;
use crate::state::{AppState, ServiceName};
use crate::validate;

/// A deal; `amount` is in the currency's minor unit, as Stripe counts it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Deal {
    pub id: Uuid,
    pub tenant_id: String,
    pub contact_id: Option<Uuid>,
    pub title: String,
    #[sqlx(rename = "amount_cents")]
    pub amount: i64,
    pub currency: String,
    #[schema(schema_with = openapi::fields::deal_stage)]
    pub stage: String,
    pub won_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub stripe_customer_id: Option<String>,
    pub stripe_payment_intent_id: Option<String>,
    pub paid_at: Option<DateTime<Utc>>,
}

/// A deal's stages.
pub(crate) const DEAL_STAGES: [&str; 3] = ["open", "won", "lost"];

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct NewDeal {
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    title: String,
    /// In the currency's minor unit (cents).
    #[schema(minimum = 0)]
    amount: i64,
    /// An ISO 4217 code, any case (stored lower-case).
    #[schema(pattern = "^[A-Za-z]{3}$", min_length = 3, max_length = 3)]
    currency: String,
    /// The contact the deal is with.
    #[schema(schema_with = openapi::fields::optional_contact)]
    contact_id: Option<Uuid>,
}

/// Open a deal
#[utoipa::path(
    post,
    path = "/deals",
    operation_id = "createDeal",
    request_body(content = NewDeal, example = json!({
        "title": "Annual licence",
        "amount": 120000,
        "currency": "eur",
        "contactId": "0b6e3c52-3f0a-4d55-8f7e-5a1c2d9e4b31"
    })),
    responses((status = 201, description = "the deal, stored", body = Deal)),
    security(("tenantKey" = ["write:deals"]), ("crossAppToken" = ["write:deals"])),
    extensions(("x-tekup-store" = json!("crm.deals"))),
)]
pub(super) async fn create(
    State(state): State<AppState>,
    ctx: TenantContext,
    Json(body): Json<NewDeal>,
) -> ApiResult<(StatusCode, Json<Deal>)> {
    ctx.require("write:deals")?;
    let title = validate::name("title", &body.title, 200)?;
    if body.amount < 0 {
        return Err(ApiError::Validation("`amount` must not be negative".into()));
    }
    let currency = body.currency.to_ascii_lowercase();
    if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_lowercase()) {
        return Err(ApiError::Validation(
            "`currency` must be a three-letter ISO code".into(),
        ));
    }
    let mut tx = tenant_tx(&state.db, &ctx.tenant_id).await?;
    if let Some(contact) = body.contact_id {
        validate::own_object(&mut tx, "contactId", "contact", contact, &ctx.tenant_id).await?;
    }
    let deal: Deal = sqlx::query_as(
        "INSERT INTO crm.deals (id, tenant_id, contact_id, title, amount_cents, currency)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING *",
    )
    .bind(Uuid::new_v4())
    .bind(&ctx.tenant_id)
    .bind(body.contact_id)
    .bind(&title)
    .bind(body.amount)
    .bind(&currency)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(deal)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct ListQuery {
    /// Only deals at this stage.
    #[param(schema_with = openapi::fields::deal_stage)]
    stage: Option<String>,
    /// Only deals with this contact.
    contact_id: Option<Uuid>,
    /// Page size (default 50).
    #[param(minimum = 1, maximum = 500, example = 50)]
    limit: Option<i64>,
    /// Rows to skip.
    #[param(minimum = 0, example = 0)]
    offset: Option<i64>,
}

/// List deals
///
/// Newest first.
#[utoipa::path(
    get,
    path = "/deals",
    operation_id = "listDeals",
    params(ListQuery),
    responses((status = 200, description = "a page of deals", body = openapi::Page<Deal>)),
    security(("tenantKey" = ["read:deals"]), ("crossAppToken" = ["read:deals"])),
)]
pub(super) async fn list(
    State(state): State<AppState>,
    ctx: TenantContext,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    ctx.require("read:deals")?;
    let (limit, offset) = validate::page(q.limit, q.offset)?;
    if let Some(stage) = &q.stage {
        validate::one_of("stage", stage, &DEAL_STAGES)?;
    }
    let mut tx = tenant_tx(&state.db, &ctx.tenant_id).await?;
    let rows: Vec<Deal> = sqlx::query_as(
        "SELECT * FROM crm.deals
          WHERE tenant_id = $1 AND ($2::text IS NULL OR stage = $2) AND ($3::uuid IS NULL OR contact_id = $3)
          ORDER BY created_at DESC, id LIMIT $4 OFFSET $5",
    )
    .bind(&ctx.tenant_id)
    .bind(&q.stage)
    .bind(q.contact_id)
    .bind(limit)
    .bind(offset)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Json(json!({ "data": rows })))
}

/// `POST /deals/{id}/won`: idempotent; a lost deal cannot be won.
///
/// With Stripe configured, a won deal gets a Stripe customer and a payment
/// intent (idempotency keys derived from the deal, metadata naming tenant
/// and deal for the webhook) and `DEAL_WON` is broadcast. If Stripe fails
/// the deal stays won and the answer is 502: calling again completes it.
#[utoipa::path(
    post,
    path = "/deals/{id}/won",
    operation_id = "winDeal",
    params(("id" = Uuid, Path, description = "the deal's id", extensions(("x-tekup-ref" = json!("crm-api:createDeal"))))),
    responses(
        (status = 200, description = "the deal, won", body = Deal),
        (status = 404, description = "no such deal for this tenant", body = openapi::Error),
        (status = 409, description = "the deal is lost", body = openapi::Error),
        (status = 502, description = "won, but Stripe failed; call again to complete", body = openapi::Error),
    ),
    security(("tenantKey" = ["write:deals"]), ("crossAppToken" = ["write:deals"])),
    extensions(("x-tekup-store" = json!("crm.deals"))),
)]
pub(super) async fn won(
    State(state): State<AppState>,
    ctx: TenantContext,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Deal>> {
    ctx.require("write:deals")?;
    let mut tx = tenant_tx(&state.db, &ctx.tenant_id).await?;
    let deal: Option<Deal> =
        sqlx::query_as("SELECT * FROM crm.deals WHERE id = $1 AND tenant_id = $2 FOR UPDATE")
            .bind(id)
            .bind(&ctx.tenant_id)
            .fetch_optional(&mut *tx)
            .await?;
    let deal = deal.ok_or_else(|| ApiError::NotFound(format!("deal {id} not found")))?;
    let mut deal = match deal.stage.as_str() {
        "won" => deal,
        "lost" => return Err(ApiError::Conflict(format!("deal {id} is lost and cannot be won"))),
        _ => {
            sqlx::query_as("UPDATE crm.deals SET stage = 'won', won_at = now() WHERE id = $1 AND tenant_id = $2 RETURNING *")
                .bind(id)
                .bind(&ctx.tenant_id)
                .fetch_one(&mut *tx)
                .await?
        }
    };
    let email: Option<String> = match deal.contact_id {
        Some(contact) => {
            sqlx::query_scalar("SELECT email FROM crm.contacts WHERE id = $1 AND tenant_id = $2")
                .bind(contact)
                .bind(&ctx.tenant_id)
                .fetch_optional(&mut *tx)
                .await?
        }
        None => None,
    };
    tx.commit().await?;
    if deal.stripe_payment_intent_id.is_none() {
        if let Ok(stripe) = state.external.stripe() {
            deal = charge(&state, &ctx.tenant_id, stripe, deal, email).await?;
        }
    }
    Ok(Json(deal))
}

/// Creates the Stripe customer and payment intent of a won deal, stores
/// their ids and broadcasts `DEAL_WON`.
async fn charge(
    state: &AppState,
    tenant: &str,
    stripe: &StripeClient,
    deal: Deal,
    email: Option<String>,
) -> ApiResult<Deal> {
    let upstream = |e: StripeError| {
        tracing::warn!(deal = %deal.id, error = crate::error::chain(&e), "stripe failed for a won deal");
        match e {
            // Known down: come back when the breaker lets calls through.
            StripeError::Http(HttpError::CircuitOpen(open)) => ApiError::from(open),
            e => ApiError::Upstream(format!(
                "the deal is won, but Stripe failed ({e}); call again to complete it"
            )),
        }
    };
    let customer_id = match &deal.stripe_customer_id {
        Some(id) => id.clone(),
        None => {
            let mut new = NewCustomer::new()
                .name(deal.title.clone())
                .metadata("tenant_id", tenant)
                .metadata("deal_id", deal.id.to_string())
                .idempotency_key(format!("deal-{}-customer", deal.id));
            if let Some(email) = email {
                new = new.email(email);
            }
            stripe.create_customer(&new).await.map_err(upstream)?.id
        }
    };
    let intent = NewPaymentIntent::new(deal.amount, deal.currency.clone())
        .customer(customer_id.clone())
        .description(format!("Deal {}", deal.title))
        .metadata("tenant_id", tenant)
        .metadata("deal_id", deal.id.to_string())
        .idempotency_key(format!("deal-{}-payment-intent", deal.id));
    let intent = stripe
        .create_payment_intent(&intent)
        .await
        .map_err(upstream)?;
    let mut tx = tenant_tx(&state.db, tenant).await?;
    let deal: Deal = sqlx::query_as(
        "UPDATE crm.deals SET stripe_customer_id = $3, stripe_payment_intent_id = $4
          WHERE id = $1 AND tenant_id = $2 RETURNING *",
    )
    .bind(deal.id)
    .bind(tenant)
    .bind(&customer_id)
    .bind(&intent.id)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    if let Some(events) = &state.events {
        let data = serde_json::to_value(&deal).map_err(ApiError::internal)?;
        let event = CrossAppEvent::new("DEAL_WON", ServiceName::CrmApi.as_str(), tenant, data)
            .with_stable_id(&deal.id.to_string());
        events.publish(&event).await?;
    }
    Ok(deal)
}
