//! CRM API: contacts (with their leads) and deals.
//!
//! | endpoint | permission |
//! |---|---|
//! | `POST /contacts`, `POST /contacts/sync`, `POST /contacts/{id}/leads` | `write:contacts` |
//! | `GET /contacts` (`?email=`), `GET /contacts/{id}` | `read:contacts` |
//! | `POST /deals`, `POST /deals/{id}/won` | `write:deals` |
//! | `GET /deals` | `read:deals` |
//! | `GET /dashboard/metrics` | `read:metrics` |
//! | `GET /analytics` | `read:analytics` |
//! | `POST /emails/sync` (queues a Graph mail sync) | `sync:emails` |
//! | `POST /webhooks/stripe` | none: a valid `Stripe-Signature` |
//!
//! Emails are unique per tenant (stored lower-cased), which is what makes
//! `POST /contacts/sync` an idempotent upsert.

mod contacts;
mod deals;
mod inbound;

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::auth::TenantContext;
use crate::db::{grouped_counts, tenant_tx};
use crate::error::ApiResult;
use crate::state::AppState;

pub use contacts::Contact;
pub use deals::Deal;
pub(crate) use deals::DEAL_STAGES;

/// The operations of [`routes`], for the OpenAPI document (see [`crate::openapi`]).
#[derive(Debug, utoipa::OpenApi)]
#[openapi(
    info(
        title = "crm-api",
        description = "CRM API: contacts, their leads, deals, the email sync and the Stripe webhook."
    ),
    paths(
        contacts::create,
        contacts::list,
        contacts::sync,
        contacts::get,
        contacts::associate,
        deals::create,
        deals::list,
        deals::won,
        dashboard,
        analytics,
        inbound::sync_emails,
        inbound::stripe_webhook,
    )
)]
pub struct CrmApiDoc;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/contacts", post(contacts::create).get(contacts::list))
        .route("/contacts/sync", post(contacts::sync))
        .route("/contacts/{id}", get(contacts::get))
        .route("/contacts/{id}/leads", post(contacts::associate))
        .route("/deals", post(deals::create).get(deals::list))
        .route("/deals/{id}/won", post(deals::won))
        .route("/dashboard/metrics", get(dashboard))
        .route("/analytics", get(analytics))
        .route("/emails/sync", post(inbound::sync_emails))
        .route("/webhooks/stripe", post(inbound::stripe_webhook))
}

/// `GET /dashboard/metrics`: contacts, deals by stage, won amounts by currency.
#[utoipa::path(
    get,
    path = "/dashboard/metrics",
    operation_id = "dashboardMetrics",
    responses((status = 200, description = "`contacts`, `dealsByStage`, `wonAmount` (by currency)", body = Object)),
    security(("tenantKey" = ["read:metrics"]), ("crossAppToken" = ["read:metrics"])),
)]
async fn dashboard(State(state): State<AppState>, ctx: TenantContext) -> ApiResult<Json<Value>> {
    ctx.require("read:metrics")?;
    let mut tx = tenant_tx(&state.db, &ctx.tenant_id).await?;
    let contacts: i64 =
        sqlx::query_scalar("SELECT count(*) FROM crm.contacts WHERE tenant_id = $1")
            .bind(&ctx.tenant_id)
            .fetch_one(&mut *tx)
            .await?;
    let by_stage = grouped_counts(
        &mut tx,
        "SELECT stage, count(*) FROM crm.deals WHERE tenant_id = $1 GROUP BY stage",
        &ctx.tenant_id,
    )
    .await?;
    let won = grouped_counts(
        &mut tx,
        "SELECT currency, sum(amount_cents)::bigint FROM crm.deals
          WHERE tenant_id = $1 AND stage = 'won' GROUP BY currency",
        &ctx.tenant_id,
    )
    .await?;
    tx.commit().await?;
    Ok(Json(
        json!({ "contacts": contacts, "dealsByStage": by_stage, "wonAmount": won }),
    ))
}

/// `GET /analytics`: deals won per day over the last 30 days.
#[utoipa::path(
    get,
    path = "/analytics",
    operation_id = "analytics",
    responses((status = 200, description = "`dealsWonPerDay`: day (`YYYY-MM-DD`) -> count", body = Object)),
    security(("tenantKey" = ["read:analytics"]), ("crossAppToken" = ["read:analytics"])),
)]
async fn analytics(State(state): State<AppState>, ctx: TenantContext) -> ApiResult<Json<Value>> {
    ctx.require("read:analytics")?;
    let mut tx = tenant_tx(&state.db, &ctx.tenant_id).await?;
    let per_day = grouped_counts(
        &mut tx,
        "SELECT to_char(won_at AT TIME ZONE 'UTC', 'YYYY-MM-DD'), count(*) FROM crm.deals
          WHERE tenant_id = $1 AND stage = 'won' AND won_at > now() - interval '30 days' GROUP BY 1 ORDER BY 1",
        &ctx.tenant_id,
    )
    .await?;
    tx.commit().await?;
    Ok(Json(json!({ "dealsWonPerDay": per_day })))
}
