//! Payment intents, with Stripe's test-mode outcomes (payment methods:
//! [`super::payment_methods`]).
//!
//! Confirming an intent looks its payment method up in the test-card table
//! ([`super::cards`]) and does what Stripe documents for that card: succeed
//! (or wait in `requires_capture` with `capture_method=manual`), decline with
//! the card's own error (402, `last_payment_error`, back to
//! `requires_payment_method`), or stop in `requires_action` for 3-D Secure.
//! The customer's authentication is simulated two ways: confirming the
//! intent again (what a test does in place of Stripe.js), or opening the
//! `redirect_to_url` link, which points at this mock
//! (`/__admin/stripe/authenticate/{id}?result=complete|fail`, the test-mode
//! page's two buttons). A payment method the table does not know is a 404, as
//! on Stripe: a misspelt test card must not pass as a successful payment.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{json, Map, Value};

use super::api::{bool_param, expand, int_param, list_where, merge_metadata, query, str_param};
use super::cards::{Authentication, Decline, Outcome, TestCard};
use super::payment_methods::{
    card_of, decline_body, decline_response, no_such_payment_method, payment_method_object,
};
use super::{form, missing, param_missing, stripe_error, RequestMeta, StripeState};
use crate::ids;
use crate::server::Origin;

type S = State<Arc<StripeState>>;
type Meta = Extension<RequestMeta>;

pub(super) fn customer_exists(s: &StripeState, id: &str) -> bool {
    s.store()
        .get("customer", id)
        .is_some_and(|c| c["deleted"] != true)
}

// ---- payment intents -------------------------------------------------------

pub(super) async fn create_intent(
    State(s): S,
    Extension(meta): Meta,
    Extension(origin): Extension<Origin>,
    body: Bytes,
) -> Response {
    let p = form::decode(&body);
    let amount = match int_param(&p, "amount") {
        Ok(Some(a)) => a,
        Ok(None) => return param_missing("amount"),
        Err(r) => return r,
    };
    if amount < 50 {
        return stripe_error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            Some("amount_too_small"),
            "Amount must be at least $0.50 usd",
            Some("amount"),
        );
    }
    let Some(currency) = str_param(&p, "currency") else {
        return param_missing("currency");
    };
    if let Some(c) = str_param(&p, "customer") {
        if !customer_exists(&s, c) {
            return missing("customer", c, "customer");
        }
    }
    let payment_method = str_param(&p, "payment_method");
    if let Some(pm) = payment_method {
        if card_of(&s.store(), pm).is_none() {
            return no_such_payment_method(pm);
        }
    }
    let capture_method = match str_param(&p, "capture_method") {
        None | Some("automatic" | "automatic_async") => "automatic",
        Some("manual") => "manual",
        Some(other) => {
            return stripe_error(StatusCode::BAD_REQUEST, "invalid_request_error", Some("parameter_invalid_string"),
                &format!("Invalid capture_method: must be one of automatic, automatic_async, or manual (got {other})."), Some("capture_method"))
        }
    };
    let id = ids::alnum_id("pi_", 24);
    let mut pi = json!({
        "id": id, "object": "payment_intent", "amount": amount, "amount_capturable": 0,
        "amount_details": { "tip": {} }, "amount_received": 0, "application": null,
        "automatic_payment_methods": if bool_param(&p, "automatic_payment_methods[enabled]") || p.pointer("/automatic_payment_methods/enabled").and_then(Value::as_str) == Some("true") { json!({"allow_redirects": "always", "enabled": true}) } else { Value::Null },
        "canceled_at": null, "cancellation_reason": null, "capture_method": capture_method,
        "client_secret": format!("{id}_secret_{}", ids::alnum_id("", 25)), "confirmation_method": "automatic",
        "created": ids::unix_now(), "currency": currency.to_lowercase(), "customer": str_param(&p, "customer"),
        "description": str_param(&p, "description"), "last_payment_error": null, "latest_charge": null,
        "livemode": false, "metadata": {}, "next_action": null, "payment_method": payment_method,
        "payment_method_types": ["card"], "receipt_email": str_param(&p, "receipt_email"),
        "setup_future_usage": null, "shipping": null, "statement_descriptor": null,
        "status": if payment_method.is_some() { "requires_confirmation" } else { "requires_payment_method" }
    });
    merge_metadata(&mut pi, &p);
    s.store().insert("payment_intent", pi.clone());
    s.emit_for("payment_intent.created", &pi, &meta);
    if bool_param(&p, "confirm") {
        let mut confirm_params = Map::new();
        if let Some(url) = str_param(&p, "return_url") {
            confirm_params.insert("return_url".into(), Value::from(url));
        }
        return confirm(&s, &meta, &origin.0, &id, &Value::Object(confirm_params));
    }
    Json(expand(&s, pi, &p)).into_response()
}

pub(super) async fn get_intent(
    State(s): S,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let found = s.store().get("payment_intent", &id).cloned();
    match found {
        Some(pi) => Json(expand(&s, pi, &query(q))).into_response(),
        None => missing("payment_intent", &id, "intent"),
    }
}

pub(super) async fn update_intent(State(s): S, Path(id): Path<String>, body: Bytes) -> Response {
    let p = form::decode(&body);
    let amount = match int_param(&p, "amount") {
        Ok(a) => a,
        Err(r) => return r,
    };
    let mut store = s.store();
    if let Some(pm) = str_param(&p, "payment_method") {
        if card_of(&store, pm).is_none() {
            return no_such_payment_method(pm);
        }
    }
    let Some(pi) = store.get_mut("payment_intent", &id) else {
        return missing("payment_intent", &id, "intent");
    };
    if let Some(a) = amount {
        pi["amount"] = Value::from(a);
    }
    for key in [
        "currency",
        "description",
        "customer",
        "payment_method",
        "receipt_email",
    ] {
        if let Some(v) = str_param(&p, key) {
            pi[key] = Value::from(v);
        }
    }
    if pi["payment_method"].is_string() && pi["status"] == "requires_payment_method" {
        pi["status"] = Value::from("requires_confirmation");
    }
    merge_metadata(pi, &p);
    Json(pi.clone()).into_response()
}

pub(super) async fn confirm_intent(
    State(s): S,
    Extension(meta): Meta,
    Extension(origin): Extension<Origin>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    confirm(&s, &meta, &origin.0, &id, &form::decode(&body))
}

/// What one confirmation (or authentication) did to an intent.
enum Step {
    /// The intent moved on (`succeeded`, `requires_capture`, `requires_action`).
    Moved(&'static str, Value),
    /// The payment failed: the event, the intent and the 402 body.
    Failed(Value, Value),
}

fn unexpected_state(action: &str, status: &str, allowed: &str) -> Response {
    stripe_error(StatusCode::BAD_REQUEST, "invalid_request_error", Some("payment_intent_unexpected_state"),
        &format!("You cannot {action} this PaymentIntent because it has a status of {status}. Only a PaymentIntent with one of the following statuses may be {action}ed: {allowed}."), None)
}

/// Confirms intent `id` with the params `p` (`payment_method`, `return_url`);
/// `origin` is this mock's base URL, for the 3-D Secure page link.
fn confirm(s: &StripeState, meta: &RequestMeta, origin: &str, id: &str, p: &Value) -> Response {
    let step = {
        let mut store = s.store();
        let new_pm = str_param(p, "payment_method");
        let Some(current) = store.get("payment_intent", id) else {
            return missing("payment_intent", id, "intent");
        };
        let status = current["status"].as_str().unwrap_or_default().to_owned();
        if !matches!(
            status.as_str(),
            "requires_payment_method" | "requires_confirmation" | "requires_action"
        ) {
            return unexpected_state(
                "confirm",
                &status,
                "requires_payment_method, requires_confirmation, requires_action",
            );
        }
        let Some(pm) = new_pm
            .map(str::to_owned)
            .or_else(|| current["payment_method"].as_str().map(str::to_owned))
        else {
            return stripe_error(StatusCode::BAD_REQUEST, "invalid_request_error", Some("payment_intent_unexpected_state"),
                "You cannot confirm this PaymentIntent because it's missing a payment method. To confirm the PaymentIntent with cus_xxx, specify a payment method attached to this customer along with the customer ID.", None);
        };
        let Some(card) = card_of(&store, &pm) else {
            return no_such_payment_method(&pm);
        };
        let Some(pi) = store.get_mut("payment_intent", id) else {
            return missing("payment_intent", id, "intent");
        };
        pi["payment_method"] = Value::from(pm.as_str());
        // Confirming again while 3-D Secure is pending stands for the
        // customer completing it (unless a new payment method was given).
        let authenticated = status == "requires_action" && new_pm.is_none();
        match (card.outcome, authenticated) {
            (Outcome::Succeeds, _) | (Outcome::Authenticates { then: None, .. }, true) => {
                succeed(pi)
            }
            (Outcome::Declines(d), _) | (Outcome::Authenticates { then: Some(d), .. }, true) => {
                fail(pi, d, card, &pm)
            }
            (Outcome::Authenticates { flow, .. }, false) => {
                require_action(pi, flow, origin, str_param(p, "return_url"))
            }
        }
    };
    finish(s, meta, step)
}

fn succeed(pi: &mut Value) -> Step {
    pi["next_action"] = Value::Null;
    pi["last_payment_error"] = Value::Null;
    pi["latest_charge"] = Value::from(ids::alnum_id("ch_", 24));
    if pi["capture_method"] == "manual" {
        pi["status"] = Value::from("requires_capture");
        pi["amount_capturable"] = pi["amount"].clone();
        Step::Moved("payment_intent.amount_capturable_updated", pi.clone())
    } else {
        pi["status"] = Value::from("succeeded");
        pi["amount_received"] = pi["amount"].clone();
        Step::Moved("payment_intent.succeeded", pi.clone())
    }
}

fn fail(pi: &mut Value, d: Decline, card: &TestCard, pm: &str) -> Step {
    let charge = ids::alnum_id("ch_", 24);
    let error = decline_body(
        d,
        Some(payment_method_object(pm, card, &Value::Null)),
        Some(&charge),
    );
    pi["status"] = Value::from("requires_payment_method");
    pi["last_payment_error"] = error.clone();
    pi["payment_method"] = Value::Null;
    pi["next_action"] = Value::Null;
    pi["latest_charge"] = Value::from(charge);
    Step::Failed(pi.clone(), error)
}

fn require_action(
    pi: &mut Value,
    flow: Authentication,
    origin: &str,
    return_url: Option<&str>,
) -> Step {
    let id = pi["id"].as_str().unwrap_or_default().to_owned();
    let source = ids::alnum_id("src_", 24);
    let page = format!("{origin}/__admin/stripe/authenticate/{id}");
    pi["status"] = Value::from("requires_action");
    pi["next_action"] = match return_url {
        Some(return_url) => json!({
            "type": "redirect_to_url",
            "redirect_to_url": { "url": page, "return_url": return_url }
        }),
        None => json!({
            "type": "use_stripe_sdk",
            "use_stripe_sdk": match flow {
                Authentication::ThreeDs2 => json!({
                    "type": "stripe_3ds2_fingerprint", "merchant": "acct_mock", "three_d_secure_2_source": source,
                    "directory_server_name": "visa", "server_transaction_id": uuid::Uuid::new_v4().to_string(),
                    "three_ds_method_url": "", "three_ds_optimizations": "", "directory_server_encryption": { "directory_server_id": "A000000003", "algorithm": "RSA" }
                }),
                Authentication::Redirect => json!({ "type": "three_d_secure_redirect", "stripe_js": page, "source": source }),
            }
        }),
    };
    Step::Moved("payment_intent.requires_action", pi.clone())
}

fn finish(s: &StripeState, meta: &RequestMeta, step: Step) -> Response {
    match step {
        Step::Moved(event, pi) => {
            s.emit_for(event, &pi, meta);
            Json(pi).into_response()
        }
        Step::Failed(pi, error) => {
            s.emit_for("payment_intent.payment_failed", &pi, meta);
            decline_response(&error, Some(pi))
        }
    }
}

#[derive(serde::Deserialize)]
pub(super) struct AuthenticateQuery {
    result: Option<String>,
}

/// `GET /__admin/stripe/authenticate/{id}?result=complete|fail`: the test-mode
/// 3-D Secure page. `complete` moves the intent on as the card documents;
/// `fail` returns it to `requires_payment_method` with
/// `payment_intent_authentication_failure`. Redirects to the `return_url`.
pub(super) async fn authenticate(
    State(s): S,
    Path(id): Path<String>,
    Query(q): Query<AuthenticateQuery>,
) -> Response {
    let (step, return_url) = {
        let mut store = s.store();
        let card = store
            .get("payment_intent", &id)
            .and_then(|pi| pi["payment_method"].as_str())
            .and_then(|pm| card_of(&store, pm));
        let Some(pi) = store.get_mut("payment_intent", &id) else {
            return missing("payment_intent", &id, "intent");
        };
        if pi["status"] != "requires_action" {
            return unexpected_state(
                "authenticate",
                pi["status"].as_str().unwrap_or_default(),
                "requires_action",
            );
        }
        let Some(card) = card else {
            return no_such_payment_method(pi["payment_method"].as_str().unwrap_or_default());
        };
        let return_url = pi
            .pointer("/next_action/redirect_to_url/return_url")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let pm = pi["payment_method"].as_str().unwrap_or_default().to_owned();
        let step = match (q.result.as_deref(), card.outcome) {
            (Some("complete"), Outcome::Authenticates { then: Some(d), .. }) => fail(pi, d, card, &pm),
            (Some("complete"), _) => succeed(pi),
            (Some("fail"), _) => fail(pi, Decline {
                code: "payment_intent_authentication_failure", decline_code: None, param: None,
                message: "The provided PaymentMethod has failed authentication. You can provide payment_method_data or a new PaymentMethod to attempt to fulfill this PaymentIntent again.",
            }, card, &pm),
            (other, _) => return crate::admin::bad_request(format!("result must be complete or fail, not {}", other.unwrap_or("missing"))),
        };
        (step, return_url)
    };
    let (event, pi) = match &step {
        Step::Moved(event, pi) => (*event, pi.clone()),
        Step::Failed(pi, _) => ("payment_intent.payment_failed", pi.clone()),
    };
    s.emit(event, &pi, None, None);
    match return_url {
        Some(url) => (StatusCode::FOUND, [(header::LOCATION, url)]).into_response(),
        None => Json(pi).into_response(),
    }
}

pub(super) async fn capture_intent(
    State(s): S,
    Extension(meta): Meta,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let p = form::decode(&body);
    let amount = match int_param(&p, "amount_to_capture") {
        Ok(a) => a,
        Err(r) => return r,
    };
    let pi = {
        let mut store = s.store();
        let Some(pi) = store.get_mut("payment_intent", &id) else {
            return missing("payment_intent", &id, "intent");
        };
        if pi["status"] != "requires_capture" {
            return unexpected_state(
                "capture",
                pi["status"].as_str().unwrap_or_default(),
                "requires_capture",
            );
        }
        let capturable = pi["amount_capturable"].as_i64().unwrap_or(0);
        let amount = amount.unwrap_or(capturable);
        if amount > capturable || amount < 1 {
            return stripe_error(StatusCode::BAD_REQUEST, "invalid_request_error", Some("amount_too_large"),
                &format!("The amount to capture ({amount}) must be between 1 and the amount capturable ({capturable})."), Some("amount_to_capture"));
        }
        pi["status"] = Value::from("succeeded");
        pi["amount_received"] = Value::from(amount);
        pi["amount_capturable"] = Value::from(0);
        pi.clone()
    };
    s.emit_for("payment_intent.succeeded", &pi, &meta);
    Json(pi).into_response()
}

pub(super) async fn cancel_intent(
    State(s): S,
    Extension(meta): Meta,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let p = form::decode(&body);
    let pi = {
        let mut store = s.store();
        let Some(pi) = store.get_mut("payment_intent", &id) else {
            return missing("payment_intent", &id, "intent");
        };
        if matches!(pi["status"].as_str(), Some("succeeded" | "canceled")) {
            return stripe_error(StatusCode::BAD_REQUEST, "invalid_request_error", Some("payment_intent_unexpected_state"),
                &format!("You cannot cancel this PaymentIntent because it has a status of {}. Only a PaymentIntent with one of the following statuses may be canceled: requires_payment_method, requires_capture, requires_confirmation, requires_action, processing.", pi["status"].as_str().unwrap_or_default()), None);
        }
        pi["status"] = Value::from("canceled");
        pi["canceled_at"] = Value::from(ids::unix_now());
        pi["next_action"] = Value::Null;
        pi["amount_capturable"] = Value::from(0);
        pi["cancellation_reason"] =
            str_param(&p, "cancellation_reason").map_or(Value::Null, Value::from);
        pi.clone()
    };
    s.emit_for("payment_intent.canceled", &pi, &meta);
    Json(pi).into_response()
}

pub(super) async fn list_intents(State(s): S, RawQuery(q): RawQuery) -> Response {
    list_where(
        &s,
        "payment_intent",
        q,
        "/v1/payment_intents",
        &["customer"],
        |_| true,
    )
}
