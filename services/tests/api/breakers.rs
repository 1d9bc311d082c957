//! An open circuit breaker reads half-open in `/metrics` and
//! `/admin/breakers` once its open time has passed, with no call to its
//! target in between (issue 18): the router in-process, time paused and
//! advanced by hand.
//!
//! The stale reading of the `breaker-gauge-stale` defect needs the
//! `tekup-service-defects` build, which only the harness starts: its test
//! is `harness/tests/chaos/breakers.rs`, against the same two endpoints.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{json, Value};
use tekup_services::auth::grants::Grants;
use tekup_services::config::Upstreams;
use tekup_services::resilience::BreakerState;
use tekup_services::{AppState, ServiceName};
use tower::ServiceExt as _;

use crate::helpers::TOKEN_SECRET;

/// flow-api's state with the default breakers (open for 60 s) and a
/// database pool that never connects: neither endpoint asks it.
fn offline_state() -> AppState {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .connect_lazy("postgres://nobody@127.0.0.1:9/none")
        .expect("a lazy pool");
    let mut state = AppState::new(
        ServiceName::FlowApi,
        pool,
        Grants::default(),
        TOKEN_SECRET,
        Upstreams::default(),
    );
    state.admin_token = Some("admin-token".into());
    state
}

/// `GET path` through the router: status and body text.
async fn get(state: &AppState, path: &str, admin: bool) -> (StatusCode, String) {
    let mut request = Request::get(path);
    if admin {
        request = request.header("authorization", "Bearer admin-token");
    }
    let response = tekup_services::app(state.clone())
        .oneshot(request.body(Body::empty()).expect("a request"))
        .await
        .expect("the router answers");
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .expect("a body");
    (status, String::from_utf8(body.to_vec()).expect("UTF-8"))
}

/// The `circuit_breaker_state` line of `target` in `/metrics`.
async fn gauge(state: &AppState, target: &str) -> String {
    let (status, text) = get(state, "/metrics", false).await;
    assert_eq!(status, StatusCode::OK);
    let prefix = format!("circuit_breaker_state{{target=\"{target}\"}} ");
    text.lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no gauge of {target} in /metrics:\n{text}"))
        .to_owned()
}

async fn admin_breakers(state: &AppState) -> Value {
    let (status, text) = get(state, "/admin/breakers", true).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    serde_json::from_str(&text).expect("JSON")
}

#[tokio::test(start_paused = true)]
async fn an_open_breaker_reads_half_open_once_its_time_passed_without_a_call() {
    let state = offline_state();
    let resilience = state.http.resilience();
    let crm = resilience.breaker("crm-api");
    for _ in 0..5 {
        crm.try_acquire()
            .expect("closed lets calls through")
            .failure();
    }
    resilience
        .breaker("stripe")
        .try_acquire()
        .expect("closed")
        .success();
    assert_eq!(
        gauge(&state, "crm-api").await,
        r#"circuit_breaker_state{target="crm-api"} 1"#
    );
    assert_eq!(
        admin_breakers(&state).await,
        json!({ "breakers": [
            { "target": "crm-api", "state": "open", "retryInSecs": 60 },
            { "target": "stripe", "state": "closed" },
        ] })
    );

    tokio::time::advance(std::time::Duration::from_millis(59_500)).await;
    assert_eq!(
        gauge(&state, "crm-api").await,
        r#"circuit_breaker_state{target="crm-api"} 1"#,
        "half a second before its time it is still open"
    );
    assert_eq!(
        admin_breakers(&state).await["breakers"][0],
        json!({ "target": "crm-api", "state": "open", "retryInSecs": 1 })
    );

    tokio::time::advance(std::time::Duration::from_millis(500)).await;
    // Nothing called crm-api: only the reading moved the breaker on.
    assert_eq!(
        gauge(&state, "crm-api").await,
        r#"circuit_breaker_state{target="crm-api"} 2"#
    );
    assert_eq!(crm.state(), BreakerState::HalfOpen);
    assert_eq!(
        admin_breakers(&state).await,
        json!({ "breakers": [
            { "target": "crm-api", "state": "half-open" },
            { "target": "stripe", "state": "closed" },
        ] })
    );
    assert_eq!(
        gauge(&state, "stripe").await,
        r#"circuit_breaker_state{target="stripe"} 0"#
    );
}

#[tokio::test(start_paused = true)]
async fn the_admin_endpoint_reads_the_time_left_without_metrics_being_asked() {
    let state = offline_state();
    let stripe = state.http.resilience().breaker("stripe");
    for _ in 0..5 {
        stripe.try_acquire().expect("closed").failure();
    }
    tokio::time::advance(std::time::Duration::from_secs(60)).await;
    // `/admin/breakers` before anything else looked: its own reading
    // follows the clock.
    assert_eq!(
        admin_breakers(&state).await,
        json!({ "breakers": [{ "target": "stripe", "state": "half-open" }] })
    );
    assert_eq!(
        gauge(&state, "stripe").await,
        r#"circuit_breaker_state{target="stripe"} 2"#
    );
}

#[tokio::test]
async fn the_breakers_need_the_admin_token() {
    let state = offline_state();
    let (status, body) = get(&state, "/admin/breakers", false).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(body.contains("invalid admin token"), "{body}");
    let mut disabled = offline_state();
    disabled.admin_token = None;
    let (status, body) = get(&disabled, "/admin/breakers", true).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(body.contains("admin endpoints are disabled"), "{body}");
    // No breaker yet (none is made before its target is called).
    assert_eq!(admin_breakers(&state).await, json!({ "breakers": [] }));
}
