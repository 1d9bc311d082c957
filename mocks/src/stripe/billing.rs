//! Stripe invoices and invoice items (payment intents: [`super::payments`]).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{json, Value};

use super::api::{
    bool_param, expand, int_param, list, list_where, merge_metadata, query, str_param,
};
use super::payments::customer_exists;
use super::{form, missing, param_missing, stripe_error, unrecognized, RequestMeta, StripeState};
use crate::ids;

type S = State<Arc<StripeState>>;
type Meta = Extension<RequestMeta>;

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

pub(super) async fn create_item(State(s): S, Extension(meta): Meta, body: Bytes) -> Response {
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
    s.emit_for("invoiceitem.created", &item, &meta);
    Json(item).into_response()
}

pub(super) async fn list_items(State(s): S, RawQuery(q): RawQuery) -> Response {
    let p = query(q);
    let all = s.store().all("invoiceitem").to_vec();
    list(all, &p, "/v1/invoiceitems")
}

pub(super) async fn create_invoice(State(s): S, Extension(meta): Meta, body: Bytes) -> Response {
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
    s.emit_for("invoice.created", &invoice, &meta);
    Json(invoice).into_response()
}

pub(super) async fn get_invoice(
    State(s): S,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let found = s.store().get("invoice", &id).cloned();
    match found {
        Some(inv) => Json(expand(&s, inv, &query(q))).into_response(),
        None => missing("invoice", &id, "invoice"),
    }
}

pub(super) async fn delete_invoice(State(s): S, Path(id): Path<String>) -> Response {
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

pub(super) async fn invoice_action(
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
            _ => return unrecognized(&Method::POST, &format!("/v1/invoices/{id}/{action}")),
        }
        (events, inv.clone())
    };
    for event in events {
        s.emit_for(event, &invoice, &meta);
    }
    Json(invoice).into_response()
}

pub(super) async fn list_invoices(State(s): S, RawQuery(q): RawQuery) -> Response {
    list_where(
        &s,
        "invoice",
        q,
        "/v1/invoices",
        &["customer", "status"],
        |_| true,
    )
}
