//! Payment methods: the documented test `pm_card_*` ids, and cards created
//! from raw test numbers with `POST /v1/payment_methods`; plus the card-error
//! body every decline shares.
//!
//! Raw numbers are accepted (Stripe accepts them in test mode only for
//! accounts with raw card data access; a mock has no such account setting):
//! a number of the test-card table ([`super::cards`]) makes a payment method
//! that behaves as that card, an invalid number is refused with
//! `incorrect_number` and any other valid number with `test_mode_live_card`,
//! as Stripe refuses real cards in test mode.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::api::str_param;
use super::cards::{self, Decline, Outcome, TestCard};
use super::{form, missing, param_missing, stripe_error, Store, StripeState};
use crate::ids;

type S = State<Arc<StripeState>>;

/// The test card behind payment method `id`: a documented `pm_card_*` or one
/// created through `POST /v1/payment_methods`.
pub(super) fn card_of(store: &Store, id: &str) -> Option<&'static TestCard> {
    cards::by_payment_method(id).or_else(|| store.cards.get(id).copied())
}

pub(super) fn no_such_payment_method(id: &str) -> Response {
    missing("PaymentMethod", id, "payment_method")
}

pub(super) fn payment_method_object(id: &str, card: &TestCard, p: &Value) -> Value {
    let exp = |key: &str, default: i64| {
        p.pointer(&format!("/card/{key}"))
            .and_then(Value::as_str)
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(default)
    };
    json!({
        "id": id, "object": "payment_method", "allow_redisplay": "unspecified",
        "billing_details": { "address": { "city": null, "country": null, "line1": null, "line2": null, "postal_code": null, "state": null },
            "email": null, "name": null, "phone": null },
        "card": { "brand": card.brand, "checks": { "address_line1_check": null, "address_postal_code_check": null, "cvc_check": "unchecked" },
            "country": "US", "display_brand": card.brand, "exp_month": exp("exp_month", 12), "exp_year": exp("exp_year", 2034),
            "fingerprint": hex::encode(&<sha2::Sha256 as sha2::Digest>::digest(card.number.as_bytes())[..8]),
            "funding": if card.payment_method == Some("pm_card_visa_debit") { "debit" } else { "credit" },
            "last4": &card.number[card.number.len() - 4..],
            "networks": { "available": [card.brand], "preferred": null },
            "three_d_secure_usage": { "supported": true }, "wallet": null },
        "created": ids::unix_now(), "customer": null, "livemode": false, "metadata": {}, "type": "card"
    })
}

/// `POST /v1/payment_methods` with a raw test card number.
pub(super) async fn create_payment_method(State(s): S, body: Bytes) -> Response {
    let p = form::decode(&body);
    match str_param(&p, "type") {
        None => return param_missing("type"),
        Some("card") => {}
        Some(other) => {
            return stripe_error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                Some("parameter_invalid_string"),
                &format!(
                "Invalid type: the mock creates payment methods of type card only, not {other}."
            ),
                Some("type"),
            )
        }
    }
    let Some(number) = p.pointer("/card/number").and_then(Value::as_str) else {
        return param_missing("card[number]");
    };
    for key in ["exp_month", "exp_year"] {
        if p.pointer(&format!("/card/{key}")).is_none() {
            return param_missing(&format!("card[{key}]"));
        }
    }
    let card = match cards::by_number(number) {
        Some(c) if c.refused_on_creation => {
            return decline_response(&decline_body(outcome_decline(c), None, None), None)
        }
        Some(c) => c,
        None if cards::luhn_valid(number) => {
            return decline_response(
                &decline_body(cards::LIVE_CARD_IN_TEST_MODE, None, None),
                None,
            )
        }
        None => {
            return decline_response(
                &decline_body(
                    Decline {
                        code: "incorrect_number",
                        decline_code: None,
                        message: "Your card number is incorrect.",
                        param: Some("number"),
                    },
                    None,
                    None,
                ),
                None,
            )
        }
    };
    let id = ids::alnum_id("pm_", 24);
    let pm = payment_method_object(&id, card, &p);
    let mut store = s.store();
    store.cards.insert(id, card);
    store.insert("payment_method", pm.clone());
    Json(pm).into_response()
}

fn outcome_decline(card: &TestCard) -> Decline {
    match card.outcome {
        Outcome::Declines(d) | Outcome::Authenticates { then: Some(d), .. } => d,
        _ => cards::LIVE_CARD_IN_TEST_MODE,
    }
}

pub(super) async fn get_payment_method(State(s): S, Path(id): Path<String>) -> Response {
    let store = s.store();
    if let Some(pm) = store.get("payment_method", &id) {
        return Json(pm.clone()).into_response();
    }
    match cards::by_payment_method(&id) {
        Some(card) => Json(payment_method_object(&id, card, &Value::Null)).into_response(),
        None => no_such_payment_method(&id),
    }
}

pub(super) fn decline_body(d: Decline, pm: Option<Value>, charge: Option<&str>) -> Value {
    let mut error = json!({
        "type": "card_error", "code": d.code, "message": d.message,
        "doc_url": format!("https://stripe.com/docs/error-codes/{}", d.code.replace('_', "-")),
    });
    if let Some(dc) = d.decline_code {
        error["decline_code"] = Value::from(dc);
    }
    if let Some(param) = d.param {
        error["param"] = Value::from(param);
    }
    if let Some(charge) = charge {
        error["charge"] = Value::from(charge);
    }
    if let Some(pm) = pm {
        error["payment_method"] = pm;
    }
    error
}

pub(super) fn decline_response(error: &Value, intent: Option<Value>) -> Response {
    let mut body = error.clone();
    if let Some(pi) = intent {
        body["payment_intent"] = pi;
    }
    (StatusCode::PAYMENT_REQUIRED, Json(json!({ "error": body }))).into_response()
}
