//! The admin API every mock serves under `/__admin`, so that a harness in any
//! language can drive a standalone mock:
//!
//! | method and path                 | what it does                                   |
//! |---------------------------------|------------------------------------------------|
//! | `GET /__admin/health`           | `{"mock": "openai", "status": "ok"}`           |
//! | `GET /__admin/journal`          | journaled requests; `?method=POST&path=/v1/x` filters (path is a prefix) |
//! | `DELETE /__admin/journal`       | clears the journal                             |
//! | `GET /__admin/faults`           | active faults                                  |
//! | `POST /__admin/faults`          | adds a fault ([`crate::FaultSpec`])            |
//! | `DELETE /__admin/faults`        | removes all faults; `?header=x-correlation-id&prefix=run-1-` only those scoped to exactly that (one run's) |
//! | `GET /__admin/expectations`     | expectations with their current counts         |
//! | `POST /__admin/expectations`    | adds one ([`crate::ExpectationSpec`])          |
//! | `DELETE /__admin/expectations`  | removes all                                    |
//! | `GET /__admin/verify`           | 200 when all are met, else 417 with the list   |
//! | `POST /__admin/reset`           | journal, faults, expectations and state reset  |
//!
//! Mocks add their own admin routes (e.g. Stripe's webhook settings).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use crate::expect::ExpectationSpec;
use crate::faults::FaultSpec;
use crate::server::Shared;

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/__admin/health", get(health))
        .route("/__admin/journal", get(journal).delete(clear_journal))
        .route(
            "/__admin/faults",
            get(faults).post(add_fault).delete(clear_faults),
        )
        .route(
            "/__admin/expectations",
            get(expectations)
                .post(add_expectation)
                .delete(clear_expectations),
        )
        .route("/__admin/verify", get(verify))
        .route("/__admin/reset", post(reset))
        .with_state(shared)
}

/// A JSON error of the admin API: `{"error": "..."}`.
pub(crate) fn bad_request(message: impl std::fmt::Display) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({ "error": message.to_string() })),
    )
        .into_response()
}

/// Parses a JSON body into `T`, answering 400 with serde's message on failure.
#[expect(
    clippy::result_large_err,
    reason = "an axum Response is the natural rejection of a handler helper"
)]
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Response> {
    serde_json::from_slice(body).map_err(|e| bad_request(format!("invalid JSON body: {e}")))
}

async fn health(State(shared): State<Arc<Shared>>) -> Json<serde_json::Value> {
    Json(json!({ "mock": shared.api.name(), "status": "ok" }))
}

async fn journal(
    State(shared): State<Arc<Shared>>,
    Query(filter): Query<BTreeMap<String, String>>,
) -> Response {
    let method = filter.get("method").map(|m| m.to_ascii_uppercase());
    let path = filter.get("path");
    let entries = shared.journal.matching(|r| {
        method.as_deref().is_none_or(|m| r.method == m)
            && path.is_none_or(|p| r.path.starts_with(p.as_str()))
    });
    Json(entries).into_response()
}

async fn clear_journal(State(shared): State<Arc<Shared>>) -> StatusCode {
    shared.journal.clear();
    StatusCode::NO_CONTENT
}

async fn faults(State(shared): State<Arc<Shared>>) -> Response {
    Json(shared.faults.list()).into_response()
}

async fn add_fault(State(shared): State<Arc<Shared>>, body: axum::body::Bytes) -> Response {
    let spec: FaultSpec = match parse_json(&body) {
        Ok(s) => s,
        Err(r) => return r,
    };
    match spec.into_fault() {
        Ok(fault) => {
            shared.faults.push(fault.clone());
            (StatusCode::CREATED, Json(fault)).into_response()
        }
        Err(e) => bad_request(e),
    }
}

async fn clear_faults(
    State(shared): State<Arc<Shared>>,
    Query(scope): Query<BTreeMap<String, String>>,
) -> Response {
    let unknown: Vec<&str> = scope
        .keys()
        .map(String::as_str)
        .filter(|k| !["header", "prefix"].contains(k))
        .collect();
    if !unknown.is_empty() {
        return bad_request(format!(
            "unknown query parameter(s) {}: DELETE /__admin/faults takes `header` and `prefix` together, or nothing",
            unknown.join(", ")
        ));
    }
    match (scope.get("header"), scope.get("prefix")) {
        (None, None) => {
            shared.faults.clear();
            StatusCode::NO_CONTENT.into_response()
        }
        (Some(name), Some(prefix)) => {
            let removed = shared
                .faults
                .clear_scoped(&crate::faults::HeaderScope::new(name, prefix));
            Json(json!({ "removed": removed })).into_response()
        }
        _ => bad_request("`header` and `prefix` go together: the scope of the faults to remove"),
    }
}

async fn expectations(State(shared): State<Arc<Shared>>) -> Response {
    Json(shared.outcomes()).into_response()
}

async fn add_expectation(State(shared): State<Arc<Shared>>, body: axum::body::Bytes) -> Response {
    let spec: ExpectationSpec = match parse_json(&body) {
        Ok(s) => s,
        Err(r) => return r,
    };
    match spec.into_expectation() {
        Ok(e) => {
            shared
                .expectations
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(e);
            StatusCode::CREATED.into_response()
        }
        Err(e) => bad_request(e),
    }
}

async fn clear_expectations(State(shared): State<Arc<Shared>>) -> StatusCode {
    shared
        .expectations
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clear();
    StatusCode::NO_CONTENT
}

async fn verify(State(shared): State<Arc<Shared>>) -> Response {
    let outcomes = shared.outcomes();
    let ok = outcomes.iter().all(|o| o.satisfied);
    let failures: Vec<String> = outcomes
        .iter()
        .filter(|o| !o.satisfied)
        .map(ToString::to_string)
        .collect();
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::EXPECTATION_FAILED
    };
    (
        status,
        Json(json!({ "ok": ok, "failures": failures, "expectations": outcomes })),
    )
        .into_response()
}

async fn reset(State(shared): State<Arc<Shared>>) -> StatusCode {
    shared.reset();
    StatusCode::NO_CONTENT
}
