//! Stripe API routes: customers, payment intents, invoices, invoice items,
//! events and webhook endpoints; plus the Stripe-specific admin routes.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde_json::{json, Map, Value};

use super::webhook::WebhookEndpoint;
use super::{form, missing, param_invalid, param_missing, stripe_error, RequestMeta, StripeState};
use crate::ids;

type S = State<Arc<StripeState>>;
type Meta = Extension<RequestMeta>;

pub(super) fn router(state: Arc<StripeState>) -> Router {
    let api = Router::new()
        .route("/v1/customers", get(list_customers).post(create_customer))
        .route(
            "/v1/customers/{id}",
            get(get_customer)
                .post(update_customer)
                .delete(delete_customer),
        )
        .route("/v1/payment_intents", get(list_intents).post(create_intent))
        .route(
            "/v1/payment_intents/{id}",
            get(get_intent).post(update_intent),
        )
        .route("/v1/payment_intents/{id}/confirm", post(confirm_intent))
        .route("/v1/payment_intents/{id}/cancel", post(cancel_intent))
        .route("/v1/invoices", get(list_invoices).post(create_invoice))
        .route("/v1/invoices/{id}", get(get_invoice).delete(delete_invoice))
        .route("/v1/invoices/{id}/{action}", post(invoice_action))
        .route("/v1/invoiceitems", get(list_items).post(create_item))
        .route("/v1/events", get(list_events))
        .route("/v1/events/{id}", get(get_event))
        .route(
            "/v1/webhook_endpoints",
            get(list_endpoints).post(create_endpoint),
        )
        .route(
            "/v1/webhook_endpoints/{id}",
            get(get_endpoint).delete(delete_endpoint),
        )
        .fallback(unrecognized)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            super::middleware,
        ))
        .with_state(state.clone());
    let admin = Router::new()
        .route(
            "/__admin/stripe/webhooks",
            get(admin_endpoints).post(admin_add_endpoint),
        )
        .route("/__admin/stripe/deliveries", get(admin_deliveries))
        .route("/__admin/stripe/events", post(admin_trigger))
        .with_state(state);
    api.merge(admin)
}

async fn unrecognized(request: Request) -> Response {
    stripe_error(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        None,
        &format!(
            "Unrecognized request URL ({}: {}). Please see https://stripe.com/docs or we can help at https://support.stripe.com/.",
            request.method(),
            request.uri().path()
        ),
        None,
    )
}

fn query(raw: Option<String>) -> Value {
    form::decode(raw.unwrap_or_default().as_bytes())
}

fn str_param<'a>(p: &'a Value, key: &str) -> Option<&'a str> {
    p.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

fn int_param(p: &Value, key: &str) -> Result<Option<i64>, Response> {
    match p.get(key).and_then(Value::as_str) {
        None => Ok(None),
        Some(s) => s
            .parse()
            .map(Some)
            .map_err(|_| param_invalid(key, &format!("Invalid integer: {s}"))),
    }
}

fn bool_param(p: &Value, key: &str) -> bool {
    p.get(key).and_then(Value::as_str) == Some("true")
}

/// Merges `metadata[...]` params: an empty value deletes the key.
fn merge_metadata(target: &mut Value, p: &Value) {
    let Some(Value::Object(update)) = p.get("metadata") else {
        return;
    };
    if !target["metadata"].is_object() {
        target["metadata"] = json!({});
    }
    if let Value::Object(meta) = &mut target["metadata"] {
        for (k, v) in update {
            if v.as_str() == Some("") {
                meta.remove(k);
            } else {
                meta.insert(k.clone(), v.clone());
            }
        }
    }
}

/// A Stripe list, newest first, with `limit`, `starting_after`, `ending_before`.
fn list(objects: Vec<Value>, p: &Value, url: &str) -> Response {
    let limit = match int_param(p, "limit") {
        Ok(l) => l.unwrap_or(10),
        Err(r) => return r,
    };
    if !(1..=100).contains(&limit) {
        return param_invalid("limit", "This value must be between 1 and 100.");
    }
    let mut newest_first: Vec<Value> = objects.into_iter().rev().collect();
    if let Some(after) = str_param(p, "starting_after") {
        match newest_first.iter().position(|o| o["id"] == after) {
            Some(i) => newest_first.drain(..=i).for_each(drop),
            None => return missing("object", after, "starting_after"),
        }
    } else if let Some(before) = str_param(p, "ending_before") {
        match newest_first.iter().position(|o| o["id"] == before) {
            Some(i) => newest_first.truncate(i),
            None => return missing("object", before, "ending_before"),
        }
        let skip = newest_first.len().saturating_sub(limit as usize);
        newest_first.drain(..skip);
    }
    let has_more = newest_first.len() > limit as usize;
    newest_first.truncate(limit as usize);
    Json(json!({ "object": "list", "data": newest_first, "has_more": has_more, "url": url }))
        .into_response()
}

fn expand(state: &StripeState, mut object: Value, p: &Value) -> Value {
    let fields: Vec<String> = match p.get("expand") {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    };
    if fields.iter().any(|f| f == "customer") {
        if let Some(id) = object["customer"].as_str() {
            if let Some(c) = state.store().get("customer", id) {
                object["customer"] = c.clone();
            }
        }
    }
    object
}

// ---- customers -------------------------------------------------------------

async fn create_customer(State(s): S, Extension(meta): Meta, body: Bytes) -> Response {
    let p = form::decode(&body);
    let mut c = json!({
        "id": ids::alnum_id("cus_", 14), "object": "customer", "address": null, "balance": 0,
        "created": ids::unix_now(), "currency": null, "default_source": null, "delinquent": false,
        "description": str_param(&p, "description"), "discount": null, "email": str_param(&p, "email"),
        "invoice_prefix": ids::alnum_id("", 8).to_uppercase(),
        "invoice_settings": { "custom_fields": null, "default_payment_method": null, "footer": null, "rendering_options": null },
        "livemode": false, "metadata": {}, "name": str_param(&p, "name"), "next_invoice_sequence": 1,
        "phone": str_param(&p, "phone"), "preferred_locales": [], "shipping": null, "tax_exempt": "none", "test_clock": null
    });
    merge_metadata(&mut c, &p);
    s.store().insert("customer", c.clone());
    s.emit(
        "customer.created",
        &c,
        Some(&meta.request_id),
        meta.idempotency_key.as_deref(),
    );
    Json(c).into_response()
}

async fn get_customer(State(s): S, Path(id): Path<String>) -> Response {
    match s.store().get("customer", &id) {
        Some(c) => Json(c.clone()).into_response(),
        None => missing("customer", &id, "id"),
    }
}

async fn update_customer(
    State(s): S,
    Extension(meta): Meta,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let p = form::decode(&body);
    let updated = {
        let mut store = s.store();
        let Some(c) = store
            .get_mut("customer", &id)
            .filter(|c| c["deleted"] != true)
        else {
            return missing("customer", &id, "id");
        };
        for key in ["email", "name", "description", "phone"] {
            if let Some(v) = p.get(key).and_then(Value::as_str) {
                c[key] = if v.is_empty() {
                    Value::Null
                } else {
                    Value::from(v)
                };
            }
        }
        merge_metadata(c, &p);
        c.clone()
    };
    s.emit(
        "customer.updated",
        &updated,
        Some(&meta.request_id),
        meta.idempotency_key.as_deref(),
    );
    Json(updated).into_response()
}

async fn delete_customer(State(s): S, Extension(meta): Meta, Path(id): Path<String>) -> Response {
    let deleted = json!({ "id": id, "object": "customer", "deleted": true });
    let before = {
        let mut store = s.store();
        let Some(c) = store
            .get_mut("customer", &id)
            .filter(|c| c["deleted"] != true)
        else {
            return missing("customer", &id, "id");
        };
        std::mem::replace(c, deleted.clone())
    };
    s.emit(
        "customer.deleted",
        &before,
        Some(&meta.request_id),
        meta.idempotency_key.as_deref(),
    );
    Json(deleted).into_response()
}

async fn list_customers(State(s): S, RawQuery(q): RawQuery) -> Response {
    let p = query(q);
    let email = str_param(&p, "email").map(str::to_owned);
    let all: Vec<Value> = s
        .store()
        .all("customer")
        .iter()
        .filter(|c| c["deleted"] != true && email.as_deref().is_none_or(|e| c["email"] == e))
        .cloned()
        .collect();
    list(all, &p, "/v1/customers")
}

// ---- payment intents -------------------------------------------------------

fn customer_exists(s: &StripeState, id: &str) -> bool {
    s.store()
        .get("customer", id)
        .is_some_and(|c| c["deleted"] != true)
}

async fn create_intent(State(s): S, Extension(meta): Meta, body: Bytes) -> Response {
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
    let id = ids::alnum_id("pi_", 24);
    let payment_method = str_param(&p, "payment_method");
    let mut pi = json!({
        "id": id, "object": "payment_intent", "amount": amount, "amount_capturable": 0,
        "amount_details": { "tip": {} }, "amount_received": 0, "application": null,
        "automatic_payment_methods": if bool_param(&p, "automatic_payment_methods[enabled]") || p.pointer("/automatic_payment_methods/enabled").and_then(Value::as_str) == Some("true") { json!({"allow_redirects": "always", "enabled": true}) } else { Value::Null },
        "canceled_at": null, "cancellation_reason": null, "capture_method": "automatic",
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
    s.emit(
        "payment_intent.created",
        &pi,
        Some(&meta.request_id),
        meta.idempotency_key.as_deref(),
    );
    if bool_param(&p, "confirm") {
        return confirm(&s, &meta, &id, &Value::Object(Map::new()));
    }
    Json(expand(&s, pi, &p)).into_response()
}

async fn get_intent(State(s): S, Path(id): Path<String>, RawQuery(q): RawQuery) -> Response {
    let found = s.store().get("payment_intent", &id).cloned();
    match found {
        Some(pi) => Json(expand(&s, pi, &query(q))).into_response(),
        None => missing("payment_intent", &id, "intent"),
    }
}

async fn update_intent(State(s): S, Path(id): Path<String>, body: Bytes) -> Response {
    let p = form::decode(&body);
    let amount = match int_param(&p, "amount") {
        Ok(a) => a,
        Err(r) => return r,
    };
    let mut store = s.store();
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

async fn confirm_intent(
    State(s): S,
    Extension(meta): Meta,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    confirm(&s, &meta, &id, &form::decode(&body))
}

/// Test payment methods decide the outcome, as in Stripe's test mode.
fn confirm(s: &StripeState, meta: &RequestMeta, id: &str, p: &Value) -> Response {
    let (event, result) = {
        let mut store = s.store();
        let Some(pi) = store.get_mut("payment_intent", id) else {
            return missing("payment_intent", id, "intent");
        };
        if let Some(pm) = str_param(p, "payment_method") {
            pi["payment_method"] = Value::from(pm);
        }
        let status = pi["status"].as_str().unwrap_or_default().to_owned();
        if matches!(status.as_str(), "succeeded" | "canceled") {
            return stripe_error(StatusCode::BAD_REQUEST, "invalid_request_error", Some("payment_intent_unexpected_state"),
                &format!("This PaymentIntent's payment_method could not be updated because it has a status of {status}. You may only update the payment_method of a PaymentIntent with one of the following statuses: requires_payment_method, requires_confirmation, requires_action."), None);
        }
        let Some(pm) = pi["payment_method"].as_str().map(str::to_owned) else {
            return stripe_error(StatusCode::BAD_REQUEST, "invalid_request_error", Some("payment_intent_unexpected_state"),
                "You cannot confirm this PaymentIntent because it's missing a payment method. To confirm the PaymentIntent with cus_xxx, specify a payment method attached to this customer along with the customer ID.", None);
        };
        if pm.contains("Declined") || pm.contains("declined") {
            let error = json!({
                "code": "card_declined", "decline_code": "generic_decline", "doc_url": "https://stripe.com/docs/error-codes/card-declined",
                "message": "Your card was declined.", "type": "card_error", "payment_method": { "id": pm, "object": "payment_method" }
            });
            pi["status"] = Value::from("requires_payment_method");
            pi["last_payment_error"] = error.clone();
            pi["payment_method"] = Value::Null;
            let mut body = error;
            body["payment_intent"] = pi.clone();
            ("payment_intent.payment_failed", Err((pi.clone(), body)))
        } else {
            pi["status"] = Value::from("succeeded");
            pi["amount_received"] = pi["amount"].clone();
            pi["latest_charge"] = Value::from(ids::alnum_id("ch_", 24));
            pi["last_payment_error"] = Value::Null;
            ("payment_intent.succeeded", Ok(pi.clone()))
        }
    };
    match result {
        Ok(pi) => {
            s.emit(
                event,
                &pi,
                Some(&meta.request_id),
                meta.idempotency_key.as_deref(),
            );
            Json(pi).into_response()
        }
        Err((pi, error)) => {
            s.emit(
                event,
                &pi,
                Some(&meta.request_id),
                meta.idempotency_key.as_deref(),
            );
            (
                StatusCode::PAYMENT_REQUIRED,
                Json(json!({ "error": error })),
            )
                .into_response()
        }
    }
}

async fn cancel_intent(
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
        pi["cancellation_reason"] =
            str_param(&p, "cancellation_reason").map_or(Value::Null, Value::from);
        pi.clone()
    };
    s.emit(
        "payment_intent.canceled",
        &pi,
        Some(&meta.request_id),
        meta.idempotency_key.as_deref(),
    );
    Json(pi).into_response()
}

async fn list_intents(State(s): S, RawQuery(q): RawQuery) -> Response {
    let p = query(q);
    let customer = str_param(&p, "customer").map(str::to_owned);
    let all: Vec<Value> = s
        .store()
        .all("payment_intent")
        .iter()
        .filter(|o| customer.as_deref().is_none_or(|c| o["customer"] == c))
        .cloned()
        .collect();
    list(all, &p, "/v1/payment_intents")
}

// ---- invoices and invoice items --------------------------------------------

fn recompute(invoice: &mut Value) {
    let total: i64 = invoice["lines"]["data"]
        .as_array()
        .map_or(0, |l| l.iter().filter_map(|i| i["amount"].as_i64()).sum());
    let paid = invoice["amount_paid"].as_i64().unwrap_or(0);
    for key in ["subtotal", "total", "amount_due"] {
        invoice[key] = Value::from(total);
    }
    invoice["amount_remaining"] = Value::from(total - paid);
}

fn line_of(item: &Value) -> Value {
    json!({
        "id": format!("il_{}", item["id"].as_str().unwrap_or_default().trim_start_matches("ii_")), "object": "line_item",
        "amount": item["amount"], "currency": item["currency"], "description": item["description"],
        "invoice_item": item["id"], "livemode": false, "metadata": item["metadata"], "quantity": 1, "type": "invoiceitem"
    })
}

async fn create_item(State(s): S, Extension(meta): Meta, body: Bytes) -> Response {
    let p = form::decode(&body);
    let Some(customer) = str_param(&p, "customer") else {
        return param_missing("customer");
    };
    if !customer_exists(&s, customer) {
        return missing("customer", customer, "customer");
    }
    let amount = match int_param(&p, "amount") {
        Ok(Some(a)) => a,
        Ok(None) => return param_missing("amount"),
        Err(r) => return r,
    };
    let mut item = json!({
        "id": ids::alnum_id("ii_", 24), "object": "invoiceitem", "amount": amount,
        "currency": str_param(&p, "currency").unwrap_or("usd"), "customer": customer, "date": ids::unix_now(),
        "description": str_param(&p, "description"), "invoice": str_param(&p, "invoice"), "livemode": false, "metadata": {}
    });
    merge_metadata(&mut item, &p);
    {
        let mut store = s.store();
        if let Some(inv_id) = str_param(&p, "invoice") {
            let Some(inv) = store.get_mut("invoice", inv_id) else {
                return missing("invoice", inv_id, "invoice");
            };
            if inv["status"] != "draft" {
                return stripe_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request_error",
                    Some("invoice_not_editable"),
                    "You can only add invoice items to draft invoices.",
                    Some("invoice"),
                );
            }
            if let Some(lines) = inv["lines"]["data"].as_array_mut() {
                lines.push(line_of(&item));
            }
            recompute(inv);
        }
        store.insert("invoiceitem", item.clone());
    }
    s.emit(
        "invoiceitem.created",
        &item,
        Some(&meta.request_id),
        meta.idempotency_key.as_deref(),
    );
    Json(item).into_response()
}

async fn list_items(State(s): S, RawQuery(q): RawQuery) -> Response {
    let p = query(q);
    let all = s.store().all("invoiceitem").to_vec();
    list(all, &p, "/v1/invoiceitems")
}

async fn create_invoice(State(s): S, Extension(meta): Meta, body: Bytes) -> Response {
    let p = form::decode(&body);
    let Some(customer) = str_param(&p, "customer") else {
        return param_missing("customer");
    };
    let invoice = {
        let mut store = s.store();
        let Some(c) = store
            .get("customer", customer)
            .filter(|c| c["deleted"] != true)
            .cloned()
        else {
            return missing("customer", customer, "customer");
        };
        let id = ids::alnum_id("in_", 24);
        let include_pending = str_param(&p, "pending_invoice_items_behavior") == Some("include");
        let mut lines = Vec::new();
        if let Some(items) = store.objects.get_mut("invoiceitem") {
            for item in items
                .iter_mut()
                .filter(|i| include_pending && i["customer"] == customer && i["invoice"].is_null())
            {
                item["invoice"] = Value::from(id.clone());
                lines.push(line_of(item));
            }
        }
        let mut invoice = json!({
            "id": id, "object": "invoice", "account_country": "US", "amount_due": 0, "amount_paid": 0, "amount_remaining": 0,
            "attempt_count": 0, "attempted": false, "auto_advance": bool_param(&p, "auto_advance"),
            "collection_method": str_param(&p, "collection_method").unwrap_or("charge_automatically"),
            "created": ids::unix_now(), "currency": str_param(&p, "currency").unwrap_or("usd"), "customer": customer,
            "customer_email": c["email"], "customer_name": c["name"], "days_until_due": null,
            "description": str_param(&p, "description"), "due_date": null, "hosted_invoice_url": null, "invoice_pdf": null,
            "lines": { "object": "list", "data": lines, "has_more": false, "url": format!("/v1/invoices/{id}/lines") },
            "livemode": false, "metadata": {}, "number": null, "paid": false, "status": "draft",
            "status_transitions": { "finalized_at": null, "marked_uncollectible_at": null, "paid_at": null, "voided_at": null },
            "subtotal": 0, "total": 0
        });
        merge_metadata(&mut invoice, &p);
        recompute(&mut invoice);
        store.insert("invoice", invoice.clone());
        invoice
    };
    s.emit(
        "invoice.created",
        &invoice,
        Some(&meta.request_id),
        meta.idempotency_key.as_deref(),
    );
    Json(invoice).into_response()
}

async fn get_invoice(State(s): S, Path(id): Path<String>, RawQuery(q): RawQuery) -> Response {
    let found = s.store().get("invoice", &id).cloned();
    match found {
        Some(inv) => Json(expand(&s, inv, &query(q))).into_response(),
        None => missing("invoice", &id, "invoice"),
    }
}

async fn delete_invoice(State(s): S, Path(id): Path<String>) -> Response {
    let mut store = s.store();
    let Some(inv) = store.get("invoice", &id) else {
        return missing("invoice", &id, "invoice");
    };
    if inv["status"] != "draft" {
        return stripe_error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            None,
            "You can only delete draft invoices.",
            None,
        );
    }
    if let Some(all) = store.objects.get_mut("invoice") {
        all.retain(|i| i["id"] != id.as_str());
    }
    Json(json!({ "id": id, "object": "invoice", "deleted": true })).into_response()
}

async fn invoice_action(
    State(s): S,
    Extension(meta): Meta,
    Path((id, action)): Path<(String, String)>,
) -> Response {
    let now = ids::unix_now();
    let (events, invoice) = {
        let mut store = s.store();
        let prefix = {
            let Some(inv) = store.get("invoice", &id) else {
                return missing("invoice", &id, "invoice");
            };
            let customer = inv["customer"].as_str().unwrap_or_default().to_owned();
            store
                .get("customer", &customer)
                .and_then(|c| c["invoice_prefix"].as_str())
                .unwrap_or("MOCK")
                .to_owned()
        };
        let count = store
            .all("invoice")
            .iter()
            .filter(|i| i["number"].is_string())
            .count();
        let Some(inv) = store.get_mut("invoice", &id) else {
            return missing("invoice", &id, "invoice");
        };
        let status = inv["status"].as_str().unwrap_or_default().to_owned();
        let unexpected = |what: &str| {
            stripe_error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                Some("invoice_unexpected_state"),
                &format!("This invoice is {status}; it cannot be {what}."),
                None,
            )
        };
        let mut events = Vec::new();
        let mut finalize = |inv: &mut Value| {
            inv["status"] = Value::from("open");
            inv["number"] = Value::from(format!("{prefix}-{:04}", count + 1));
            inv["status_transitions"]["finalized_at"] = Value::from(now);
            inv["hosted_invoice_url"] =
                Value::from(format!("https://invoice.stripe.com/i/mock/{id}"));
            events.push("invoice.finalized");
        };
        match (action.as_str(), status.as_str()) {
            ("finalize", "draft") => finalize(inv),
            ("finalize", _) => return unexpected("finalized"),
            ("pay", "draft" | "open") => {
                if status == "draft" {
                    finalize(inv);
                }
                inv["status"] = Value::from("paid");
                inv["paid"] = Value::from(true);
                inv["amount_paid"] = inv["amount_due"].clone();
                inv["attempted"] = Value::from(true);
                inv["attempt_count"] = Value::from(1);
                inv["status_transitions"]["paid_at"] = Value::from(now);
                recompute(inv);
                events.push("invoice.paid");
            }
            ("pay", _) => return unexpected("paid"),
            ("void", "open") => {
                inv["status"] = Value::from("void");
                inv["status_transitions"]["voided_at"] = Value::from(now);
                events.push("invoice.voided");
            }
            ("void", _) => return unexpected("voided"),
            _ => return unrecognized_action(&id, &action),
        }
        (events, inv.clone())
    };
    for event in events {
        s.emit(
            event,
            &invoice,
            Some(&meta.request_id),
            meta.idempotency_key.as_deref(),
        );
    }
    Json(invoice).into_response()
}

fn unrecognized_action(id: &str, action: &str) -> Response {
    stripe_error(StatusCode::NOT_FOUND, "invalid_request_error", None,
        &format!("Unrecognized request URL (POST: /v1/invoices/{id}/{action}). Please see https://stripe.com/docs or we can help at https://support.stripe.com/."), None)
}

async fn list_invoices(State(s): S, RawQuery(q): RawQuery) -> Response {
    let p = query(q);
    let customer = str_param(&p, "customer").map(str::to_owned);
    let status = str_param(&p, "status").map(str::to_owned);
    let all: Vec<Value> = s
        .store()
        .all("invoice")
        .iter()
        .filter(|i| {
            customer.as_deref().is_none_or(|c| i["customer"] == c)
                && status.as_deref().is_none_or(|st| i["status"] == st)
        })
        .cloned()
        .collect();
    list(all, &p, "/v1/invoices")
}

// ---- events and webhook endpoints ------------------------------------------

async fn list_events(State(s): S, RawQuery(q): RawQuery) -> Response {
    let p = query(q);
    let kind = str_param(&p, "type").map(str::to_owned);
    let all: Vec<Value> = s
        .store()
        .all("event")
        .iter()
        .filter(|e| kind.as_deref().is_none_or(|t| e["type"] == t))
        .cloned()
        .collect();
    list(all, &p, "/v1/events")
}

async fn get_event(State(s): S, Path(id): Path<String>) -> Response {
    match s.store().get("event", &id) {
        Some(e) => Json(e.clone()).into_response(),
        None => missing("event", &id, "id"),
    }
}

fn endpoints(s: &StripeState) -> std::sync::MutexGuard<'_, Vec<WebhookEndpoint>> {
    s.webhooks
        .endpoints
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn create_endpoint(State(s): S, body: Bytes) -> Response {
    let p = form::decode(&body);
    let Some(url) = str_param(&p, "url") else {
        return param_missing("url");
    };
    let events: Vec<String> = match p.get("enabled_events") {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => return param_missing("enabled_events"),
    };
    let endpoint = WebhookEndpoint::new(url.to_owned(), None, events);
    let mut body = endpoint.to_api();
    body["secret"] = Value::from(endpoint.secret.clone());
    endpoints(&s).push(endpoint);
    Json(body).into_response()
}

async fn list_endpoints(State(s): S, RawQuery(q): RawQuery) -> Response {
    let all: Vec<Value> = endpoints(&s).iter().map(WebhookEndpoint::to_api).collect();
    list(all, &query(q), "/v1/webhook_endpoints")
}

async fn get_endpoint(State(s): S, Path(id): Path<String>) -> Response {
    match endpoints(&s).iter().find(|e| e.id == id) {
        Some(e) => Json(e.to_api()).into_response(),
        None => missing("webhook_endpoint", &id, "id"),
    }
}

async fn delete_endpoint(State(s): S, Path(id): Path<String>) -> Response {
    let mut list = endpoints(&s);
    let before = list.len();
    list.retain(|e| e.id != id);
    if list.len() == before {
        return missing("webhook_endpoint", &id, "id");
    }
    Json(json!({ "id": id, "object": "webhook_endpoint", "deleted": true })).into_response()
}

// ---- admin -----------------------------------------------------------------

#[derive(serde::Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct EndpointSpec {
    url: String,
    secret: Option<String>,
    #[serde(default)]
    enabled_events: Vec<String>,
}

async fn admin_add_endpoint(State(s): S, body: Bytes) -> Response {
    let spec: EndpointSpec = match crate::admin::parse_json(&body) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let endpoint = WebhookEndpoint::new(spec.url, spec.secret, spec.enabled_events);
    endpoints(&s).push(endpoint.clone());
    (StatusCode::CREATED, Json(endpoint)).into_response()
}

async fn admin_endpoints(State(s): S) -> Response {
    Json(endpoints(&s).clone()).into_response()
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
struct DeliveryQuery {
    wait_for: Option<usize>,
    timeout: Option<String>,
}

/// `GET /__admin/stripe/deliveries?wait-for=2&timeout=5s` waits (bounded) for finished deliveries.
async fn admin_deliveries(
    State(s): S,
    axum::extract::Query(q): axum::extract::Query<DeliveryQuery>,
) -> Response {
    let timeout = q
        .timeout
        .as_deref()
        .and_then(crate::faults::parse_duration)
        .unwrap_or(Duration::from_secs(5));
    let deliveries = match q.wait_for {
        Some(n) => {
            s.webhooks
                .wait(timeout, |d| {
                    d.iter().filter(|d| d.delivered || d.attempts >= 3).count() >= n
                })
                .await
        }
        None => s.webhooks.deliveries(),
    };
    Json(deliveries).into_response()
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct TriggerSpec {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    object: Value,
}

async fn admin_trigger(State(s): S, body: Bytes) -> Response {
    let spec: TriggerSpec = match crate::admin::parse_json(&body) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let event = s.emit(&spec.kind, &spec.object, None, None);
    (StatusCode::CREATED, Json(event)).into_response()
}
