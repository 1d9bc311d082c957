//! Stripe API routes and shared helpers: customers, events, webhook endpoints
//! and the Stripe-specific admin routes (payments and invoices: [`super::billing`]).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde_json::{json, Value};

use super::billing::{
    create_invoice, create_item, delete_invoice, get_invoice, invoice_action, list_invoices,
    list_items,
};
use super::payment_methods::{create_payment_method, get_payment_method};
use super::payments::{
    authenticate, cancel_intent, capture_intent, confirm_intent, create_intent, get_intent,
    list_intents, update_intent,
};
use super::search;
use super::webhook::{EndpointSpec, TriggerSpec, WebhookEndpoint};
use super::{form, missing, param_invalid, param_missing, RequestMeta, StripeState};
use crate::ids;

type S = State<Arc<StripeState>>;
type Meta = Extension<RequestMeta>;

pub(super) fn router(state: Arc<StripeState>) -> Router {
    let api = Router::new()
        .route("/v1/customers", get(list_customers).post(create_customer))
        .route("/v1/customers/search", get(search::customers))
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
        .route("/v1/payment_intents/search", get(search::payment_intents))
        .route("/v1/payment_intents/{id}/confirm", post(confirm_intent))
        .route("/v1/payment_intents/{id}/capture", post(capture_intent))
        .route("/v1/payment_intents/{id}/cancel", post(cancel_intent))
        .route("/v1/payment_methods", post(create_payment_method))
        .route("/v1/payment_methods/{id}", get(get_payment_method))
        .route("/v1/invoices", get(list_invoices).post(create_invoice))
        .route("/v1/invoices/search", get(search::invoices))
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
        .route("/__admin/stripe/authenticate/{id}", get(authenticate))
        .with_state(state);
    api.merge(admin)
}

pub(super) fn query(raw: Option<String>) -> Value {
    form::decode(raw.unwrap_or_default().as_bytes())
}

pub(super) fn str_param<'a>(p: &'a Value, key: &str) -> Option<&'a str> {
    p.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

#[expect(
    clippy::result_large_err,
    reason = "an axum Response is the natural rejection of a handler helper"
)]
pub(super) fn int_param(p: &Value, key: &str) -> Result<Option<i64>, Response> {
    match p.get(key).and_then(Value::as_str) {
        None => Ok(None),
        Some(s) => s
            .parse()
            .map(Some)
            .map_err(|_| param_invalid(key, &format!("Invalid integer: {s}"))),
    }
}

pub(super) fn bool_param(p: &Value, key: &str) -> bool {
    p.get(key).and_then(Value::as_str) == Some("true")
}

/// Merges `metadata[...]` params: an empty value deletes the key.
pub(super) fn merge_metadata(target: &mut Value, p: &Value) {
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

/// Lists the stored objects of `kind` that `keep` accepts and whose fields
/// named in `filters` equal the query parameters of the same names (when
/// given), as a Stripe list at `url`.
pub(super) fn list_where(
    s: &StripeState,
    kind: &'static str,
    raw_query: Option<String>,
    url: &str,
    filters: &[&str],
    keep: impl Fn(&Value) -> bool,
) -> Response {
    let p = query(raw_query);
    let wanted: Vec<(&str, String)> = filters
        .iter()
        .filter_map(|f| str_param(&p, f).map(|v| (*f, v.to_owned())))
        .collect();
    let all: Vec<Value> = s
        .store()
        .all(kind)
        .iter()
        .filter(|o| {
            keep(o)
                && wanted
                    .iter()
                    .all(|(field, value)| o[*field] == value.as_str())
        })
        .cloned()
        .collect();
    list(all, &p, url)
}

/// A Stripe list, newest first, with `limit`, `starting_after`, `ending_before`.
pub(super) fn list(objects: Vec<Value>, p: &Value, url: &str) -> Response {
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

pub(super) fn expand(state: &StripeState, mut object: Value, p: &Value) -> Value {
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
    s.emit_for("customer.created", &c, &meta);
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
    s.emit_for("customer.updated", &updated, &meta);
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
    s.emit_for("customer.deleted", &before, &meta);
    Json(deleted).into_response()
}

async fn list_customers(State(s): S, RawQuery(q): RawQuery) -> Response {
    list_where(&s, "customer", q, "/v1/customers", &["email"], |c| {
        c["deleted"] != true
    })
}

// ---- events and webhook endpoints ------------------------------------------

async fn list_events(State(s): S, RawQuery(q): RawQuery) -> Response {
    list_where(&s, "event", q, "/v1/events", &["type"], |_| true)
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
                .wait(timeout, |d| d.iter().filter(|d| d.finished()).count() >= n)
                .await
        }
        None => s.webhooks.deliveries(),
    };
    Json(deliveries).into_response()
}

async fn admin_trigger(State(s): S, body: Bytes) -> Response {
    let spec: TriggerSpec = match crate::admin::parse_json(&body) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let event = s.emit(&spec.kind, &spec.object, None, None);
    (StatusCode::CREATED, Json(event)).into_response()
}
