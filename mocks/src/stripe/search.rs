//! The search endpoints: `GET /v1/customers/search`,
//! `/v1/payment_intents/search` and `/v1/invoices/search`.
//!
//! Each resource names the fields Stripe lets one search on (and their kind);
//! the query is parsed by [`super::query`] and refused, never widened, when it
//! does not parse. Answers are Stripe's `search_result` list: newest first,
//! `limit` (1–100, default 10), `has_more`, an opaque `next_page` cursor to
//! pass back as `page`, and `total_count` only when `expand[]=total_count`
//! asks for it (as Stripe does). Unlike Stripe, the mock's search sees an
//! object as soon as it is written: tests should not have to wait a minute.

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine as _;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

use super::api::{int_param, query as decode_query, str_param};
use super::query::{FieldKind, Fields, Query};
use super::{param_invalid, param_missing, stripe_error, StripeState};

/// One searchable resource.
#[derive(Debug)]
pub(crate) struct Searchable {
    /// Store kind (`customer`).
    kind: &'static str,
    url: &'static str,
    fields: Fields,
    /// Objects the search never returns (deleted customers).
    hidden: fn(&Value) -> bool,
}

pub(crate) const CUSTOMERS: Searchable = Searchable {
    kind: "customer",
    url: "/v1/customers/search",
    fields: Fields {
        resource: "customers",
        fields: &[
            ("created", FieldKind::Numeric),
            ("email", FieldKind::String),
            ("name", FieldKind::String),
            ("phone", FieldKind::String),
        ],
    },
    hidden: |c| c["deleted"] == true,
};

pub(crate) const PAYMENT_INTENTS: Searchable = Searchable {
    kind: "payment_intent",
    url: "/v1/payment_intents/search",
    fields: Fields {
        resource: "payment_intents",
        fields: &[
            ("amount", FieldKind::Numeric),
            ("created", FieldKind::Numeric),
            ("currency", FieldKind::Token),
            ("customer", FieldKind::Token),
            ("status", FieldKind::Token),
        ],
    },
    hidden: |_| false,
};

pub(crate) const INVOICES: Searchable = Searchable {
    kind: "invoice",
    url: "/v1/invoices/search",
    fields: Fields {
        resource: "invoices",
        fields: &[
            ("created", FieldKind::Numeric),
            ("currency", FieldKind::Token),
            ("customer", FieldKind::Token),
            ("number", FieldKind::String),
            ("status", FieldKind::Token),
            ("subscription", FieldKind::Token),
            ("total", FieldKind::Numeric),
        ],
    },
    hidden: |_| false,
};

type S = State<Arc<StripeState>>;

pub(super) async fn customers(State(s): S, RawQuery(q): RawQuery) -> Response {
    search(&s, &CUSTOMERS, q)
}

pub(super) async fn payment_intents(State(s): S, RawQuery(q): RawQuery) -> Response {
    search(&s, &PAYMENT_INTENTS, q)
}

pub(super) async fn invoices(State(s): S, RawQuery(q): RawQuery) -> Response {
    search(&s, &INVOICES, q)
}

fn search(s: &StripeState, what: &Searchable, raw: Option<String>) -> Response {
    let p = decode_query(raw);
    let Some(text) = str_param(&p, "query") else {
        return param_missing("query");
    };
    let query = match Query::parse(text, &what.fields) {
        Ok(q) => q,
        Err(e) => {
            return stripe_error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                None,
                &e.to_string(),
                Some("query"),
            )
        }
    };
    let limit = match int_param(&p, "limit") {
        Ok(l) => l.unwrap_or(10),
        Err(r) => return r,
    };
    if !(1..=100).contains(&limit) {
        return param_invalid("limit", "This value must be between 1 and 100.");
    }
    let limit = usize::try_from(limit).unwrap_or(10);
    let digest = query_digest(text);
    let store = s.store();
    let all = store.all(what.kind);
    // Newest first; a cursor names the store position the next page starts below.
    let mut below = all.len();
    if let Some(page) = str_param(&p, "page") {
        match decode_cursor(page, &digest).and_then(|id| all.iter().position(|o| o["id"] == id)) {
            Some(position) => below = position,
            None => {
                return stripe_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request_error",
                    None,
                    &format!("Invalid page: `{page}` is not a next_page cursor of this query (a cursor is only valid with the query that returned it)."),
                    Some("page"),
                )
            }
        }
    }
    let matching = || {
        all.iter()
            .enumerate()
            .rev()
            .filter(|(_, o)| !(what.hidden)(o) && query.matches(o))
    };
    let rest: Vec<(usize, &Value)> = matching().filter(|(i, _)| *i < below).collect();
    let has_more = rest.len() > limit;
    let page: Vec<Value> = rest.iter().take(limit).map(|(_, o)| (*o).clone()).collect();
    let next_page = if has_more {
        page.last()
            .and_then(|o| o["id"].as_str())
            .map_or(Value::Null, |id| Value::from(encode_cursor(&digest, id)))
    } else {
        Value::Null
    };
    let mut body = json!({
        "object": "search_result", "url": what.url, "has_more": has_more,
        "next_page": next_page, "data": page,
    });
    let expand_total =
        matches!(p.get("expand"), Some(Value::Array(a)) if a.iter().any(|e| e == "total_count"));
    if expand_total {
        body["total_count"] = Value::from(matching().count());
    }
    Json(body).into_response()
}

fn query_digest(query: &str) -> String {
    hex::encode(&Sha256::digest(query.as_bytes())[..6])
}

fn encode_cursor(digest: &str, id: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{digest}:{id}"))
}

/// The object id a cursor points at, if it was made for this query.
fn decode_cursor(cursor: &str, digest: &str) -> Option<String> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (d, id) = text.split_once(':')?;
    (d == digest).then(|| id.to_owned())
}
