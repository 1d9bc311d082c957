//! Inbound work: the Stripe webhook, and the email sync trigger.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde_json::{json, Value};
use sqlx::{Postgres, Transaction};
use std::time::Duration;
use uuid::Uuid;

use super::deals::Deal;
use crate::auth::TenantContext;
use crate::db::tenant_tx;
use crate::error::{ApiError, ApiResult};
use crate::events::CrossAppEvent;
use crate::external::stripe::{verify_webhook, WEBHOOK_TOLERANCE};
use crate::queue::{Job, QueueName};
use crate::state::{AppState, ServiceName};
use crate::worker::SYNC_EMAIL;

/// A Stripe event as the webhook reads it (Stripe sends more; any JSON
/// is acknowledged once its signature holds).
#[derive(Debug, utoipa::ToSchema)]
#[expect(
    dead_code,
    reason = "describes the webhook's body; the handler reads it as JSON"
)]
pub(super) struct StripeEvent {
    /// The event's id (`evt_...`).
    id: Option<String>,
    /// `payment_intent.succeeded` is handled; others are acknowledged.
    #[schema(rename = "type")]
    kind: Option<String>,
    /// `object`: the payment intent, with `metadata.tenant_id` and `metadata.deal_id`.
    #[schema(value_type = Option<Object>)]
    data: Option<Value>,
}

/// `POST /webhooks/stripe`: accepted only with a valid `Stripe-Signature`
/// for the raw body, within Stripe's timestamp tolerance. Each event id is
/// handled once: a second delivery of an id already handled (a replayed
/// capture, or Stripe retrying after a lost answer) is acknowledged (200,
/// `"duplicate": true`) without a second effect, as `replay: refused` of
/// the contract's `webhooks.stripe` says. `payment_intent.succeeded` for a
/// deal's payment intent marks the deal paid and broadcasts
/// `PAYMENT_RECEIVED`; other events are acknowledged and ignored, as Stripe
/// expects.
#[utoipa::path(
    post,
    path = "/webhooks/stripe",
    operation_id = "stripeWebhook",
    request_body(content = StripeEvent, example = json!({
        "id": "evt_1Example",
        "object": "event",
        "type": "payment_intent.succeeded",
        "data": { "object": {
            "id": "pi_1Example",
            "object": "payment_intent",
            "metadata": { "tenant_id": "t-example", "deal_id": "0b6e3c52-3f0a-4d55-8f7e-5a1c2d9e4b31" }
        } }
    })),
    responses(
        (status = 200, description = "acknowledged: `received`, `handled`, and `dealId` or `reason`; `duplicate` for an event id already handled, which has no second effect", body = Object),
        (status = 400, description = "a missing or invalid `Stripe-Signature`, a timestamp outside the tolerance, or a body that is not a JSON event with an `id`", body = crate::openapi::Error),
        (status = 503, description = "no webhook secret is configured", body = crate::openapi::Error),
    ),
    security(("webhookSignature" = [])),
    extensions(("x-tekup-webhook" = json!("stripe"))),
)]
pub(super) async fn stripe_webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let secret = state
        .external
        .stripe_webhook_secret()
        .map_err(|e| ApiError::not_configured("stripe", e.to_string()))?;
    let signature = headers
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| ApiError::BadRequest("missing `Stripe-Signature` header".into()))?;
    let tolerance = if crate::defects::active("webhook-no-timestamp") {
        Duration::MAX
    } else {
        WEBHOOK_TOLERANCE
    };
    verify_webhook(
        secret,
        signature,
        &body,
        chrono::Utc::now().timestamp(),
        tolerance,
    )
    .map_err(|e| ApiError::BadRequest(format!("invalid Stripe signature: {e}")))?;
    let event: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("the event is not JSON: {e}")))?;
    let event_id = event["id"]
        .as_str()
        .filter(|id| !id.is_empty())
        .ok_or_else(|| ApiError::BadRequest("the event has no `id`".into()))?;
    let Some((intent, tenant, deal)) = deal_payment(&event) else {
        let mut tx = state.db.begin().await?;
        if !claim(&mut tx, event_id).await? {
            return Ok(duplicate(event_id));
        }
        tx.commit().await?;
        return Ok(Json(if event["type"] == PAYMENT_SUCCEEDED {
            json!({ "received": true, "handled": false, "reason": "not a payment intent of a deal" })
        } else {
            json!({ "received": true, "handled": false })
        }));
    };
    let mut tx = tenant_tx(&state.db, tenant).await?;
    if !claim(&mut tx, event_id).await? {
        return Ok(duplicate(event_id));
    }
    let paid: Option<Deal> = sqlx::query_as(
        "UPDATE crm.deals SET paid_at = coalesce(paid_at, now())
          WHERE id = $1 AND tenant_id = $2 AND stripe_payment_intent_id = $3 RETURNING *",
    )
    .bind(deal)
    .bind(tenant)
    .bind(intent)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(paid) = paid else {
        tx.commit().await?;
        return Ok(Json(
            json!({ "received": true, "handled": false, "reason": "no deal with this payment intent" }),
        ));
    };
    let data = serde_json::to_value(&paid).map_err(ApiError::internal)?;
    // The deal is paid before anyone is told: a subscriber that reads the
    // deal on PAYMENT_RECEIVED must find it paid.
    tx.commit().await?;
    if let Some(events) = &state.events {
        let event = CrossAppEvent::new(
            "PAYMENT_RECEIVED",
            ServiceName::CrmApi.as_str(),
            tenant,
            data,
        )
        .with_stable_id(event_id);
        if let Err(e) = events.publish(&event).await {
            // Nobody was told: give the claim back, so that Stripe's retry
            // publishes again (the deal keeps its first `paid_at`, the
            // event its stable id).
            unclaim(&state.db, event_id).await;
            return Err(ApiError::from(e));
        }
    }
    Ok(Json(
        json!({ "received": true, "handled": true, "dealId": paid.id }),
    ))
}

const PAYMENT_SUCCEEDED: &str = "payment_intent.succeeded";

/// The payment intent, tenant and deal of a `payment_intent.succeeded`
/// event for a deal (the metadata `charge` gave the intent).
fn deal_payment(event: &Value) -> Option<(&str, &str, Uuid)> {
    if event["type"] != PAYMENT_SUCCEEDED {
        return None;
    }
    let object = &event["data"]["object"];
    Some((
        object["id"].as_str()?,
        object["metadata"]["tenant_id"].as_str()?,
        object["metadata"]["deal_id"].as_str()?.parse().ok()?,
    ))
}

/// How long a handled event id is remembered: far beyond Stripe's
/// timestamp tolerance (a captured delivery cannot be replayed after it)
/// and its 3 days of retries.
const REMEMBER_EVENTS: &str = "30 days";

/// Claims `event_id` in `tx`: false when it was handled before (or is
/// being handled by a transaction that then commits).
///
/// The claim is made in the transaction that has the event's effect: a
/// failure before the commit leaves the id unclaimed, and a failure to
/// publish after it gives the claim back ([`unclaim`]), so Stripe's retry
/// still goes through; two deliveries at once wait on the claim.
async fn claim(
    tx: &mut Transaction<'static, Postgres>,
    event_id: &str,
) -> Result<bool, sqlx::Error> {
    if crate::defects::active("webhook-replay") {
        return Ok(true);
    }
    sqlx::query("DELETE FROM webhooks.stripe_events WHERE received_at < now() - $1::interval")
        .bind(REMEMBER_EVENTS)
        .execute(&mut **tx)
        .await?;
    let claimed = sqlx::query(
        "INSERT INTO webhooks.stripe_events (event_id) VALUES ($1) ON CONFLICT DO NOTHING",
    )
    .bind(event_id)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(claimed == 1)
}

/// Forgets that `event_id` was handled (its effect could not be announced).
async fn unclaim(db: &sqlx::PgPool, event_id: &str) {
    if let Err(e) = sqlx::query("DELETE FROM webhooks.stripe_events WHERE event_id = $1")
        .bind(event_id)
        .execute(db)
        .await
    {
        tracing::error!(event_id, error = %e, "the event could not be published nor its id released: Stripe's retry will be taken as a duplicate");
    }
}

fn duplicate(event_id: &str) -> Json<Value> {
    tracing::info!(
        event_id,
        "stripe event already handled: acknowledged, not handled again"
    );
    Json(json!({ "received": true, "handled": false, "duplicate": true }))
}

/// `POST /emails/sync`: queues a sync of the mailbox (through Graph) into contacts.
#[utoipa::path(
    post,
    path = "/emails/sync",
    operation_id = "syncEmails",
    responses(
        (status = 202, description = "queued: `jobId`, `queue`", body = Object),
        (status = 503, description = "the email-sync queue is unavailable", body = crate::openapi::Error),
    ),
    security(("tenantKey" = ["sync:emails"]), ("crossAppToken" = ["sync:emails"])),
)]
pub(super) async fn sync_emails(
    State(state): State<AppState>,
    ctx: TenantContext,
) -> ApiResult<(StatusCode, Json<Value>)> {
    ctx.require("sync:emails")?;
    let queues = state.queues.as_ref().ok_or_else(|| {
        ApiError::not_configured("redis", "email sync needs the queues (REDIS_URL)")
    })?;
    let job = Job::new(QueueName::EmailSync, SYNC_EMAIL, &ctx.tenant_id, json!({}));
    queues.enqueue(&job).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "jobId": job.id, "queue": job.queue.as_str() })),
    ))
}
