//! The outgoing path against a small local server: headers, metrics,
//! retries on the wire, the breaker, and the cross-app client.
//!
//! These run in real time (reqwest's timeouts would fire at once under
//! paused time while waiting on sockets); the timing logic itself is tested
//! in paused time in `crate::resilience`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::any;
use axum::Router;
use serde_json::json;

use super::*;
use crate::context::RequestContext;
use crate::metrics::Metrics;
use crate::resilience::{BreakerConfig, BreakerState, Jitter, Resilience, RetryPolicy};

/// A server answering from a list of statuses (repeating the last), with
/// optional `Retry-After`, recording the headers of every request.
#[derive(Default)]
struct Script {
    answers: Vec<(u16, Option<&'static str>)>,
    hits: AtomicU32,
    headers: Mutex<Vec<HeaderMap>>,
}

async fn answer(State(script): State<Arc<Script>>, headers: HeaderMap) -> impl IntoResponse {
    let n = script.hits.fetch_add(1, Ordering::SeqCst) as usize;
    script.headers.lock().unwrap().push(headers);
    let (status, retry_after) = script.answers[n.min(script.answers.len() - 1)];
    let mut response = (
        StatusCode::from_u16(status).unwrap(),
        axum::Json(json!({ "n": n })),
    )
        .into_response();
    if let Some(value) = retry_after {
        response
            .headers_mut()
            .insert("retry-after", value.parse().unwrap());
    }
    response
}

/// The tests here take turns: tracing caches per call site whether anyone
/// listens, and a call site first reached on one test's thread (no
/// subscriber there) while another test's thread records spans could be
/// cached as unheard, losing that test's `retry` events (seen with three
/// test threads or more).
static TURNS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn serve(answers: &[(u16, Option<&'static str>)]) -> (String, Arc<Script>) {
    let script = Arc::new(Script {
        answers: answers.to_vec(),
        ..Script::default()
    });
    let app = Router::new()
        .fallback(any(answer))
        .with_state(Arc::clone(&script));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, script)
}

fn http(attempts: u32, breaker: BreakerConfig) -> (ResilientHttp, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::new());
    let policy = RetryPolicy::default()
        .max_attempts(attempts)
        .backoff(Duration::from_millis(5), Duration::from_millis(20))
        .jitter(Jitter::None);
    let resilience = Resilience::new(policy, breaker, metrics.circuit_breaker_state.clone());
    let http = ResilientHttp::new("flow-api", Arc::clone(&metrics), Arc::new(resilience));
    (http, metrics)
}

#[tokio::test]
async fn correlation_id_and_traceparent_are_propagated_on_every_attempt() {
    let _turn = TURNS.lock().await;
    let (url, script) = serve(&[(502, None), (200, None)]).await;
    let (http, metrics) = http(3, BreakerConfig::default());
    let ctx = RequestContext::incoming(
        Some("corr-123"),
        Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
    );
    let response = ctx
        .scope(http.send(
            "crm-api",
            "test.call",
            http.client().get(format!("{url}/x")),
        ))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let headers = script.headers.lock().unwrap().clone();
    assert_eq!(headers.len(), 2);
    for h in &headers {
        assert_eq!(h["x-correlation-id"], "corr-123");
        let traceparent = h["traceparent"].to_str().unwrap();
        assert!(
            traceparent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
            "{traceparent}"
        );
    }
    let text = metrics.render();
    for line in [
        r#"cross_app_requests_total{source="flow-api",target="crm-api",status="502"} 1"#,
        r#"cross_app_requests_total{source="flow-api",target="crm-api",status="200"} 1"#,
        r#"cross_app_request_duration_seconds_count{source="flow-api",target="crm-api"} 2"#,
    ] {
        assert!(text.contains(line), "missing {line} in\n{text}");
    }
}

#[tokio::test]
async fn client_errors_come_back_at_once() {
    let _turn = TURNS.lock().await;
    for status in [400, 401, 404] {
        let (url, script) = serve(&[(status, None)]).await;
        let (http, _) = http(5, BreakerConfig::default());
        let response = http
            .send("stripe", "test.call", http.client().get(&url))
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), status);
        assert_eq!(script.hits.load(Ordering::SeqCst), 1, "{status}");
    }
}

#[tokio::test]
async fn a_post_without_idempotency_key_is_not_retried_after_a_500() {
    let _turn = TURNS.lock().await;
    let (url, script) = serve(&[(500, None), (201, None)]).await;
    let (http, _) = http(3, BreakerConfig::default());
    let response = http
        .send(
            "crm-api",
            "test.call",
            http.client().post(&url).json(&json!({})),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), 500);
    assert_eq!(script.hits.load(Ordering::SeqCst), 1);
    // With a key, or vouched idempotent, it is.
    let (url, script) = serve(&[(500, None), (201, None)]).await;
    let keyed = http.client().post(&url).header("idempotency-key", "k1");
    assert_eq!(
        http.send("stripe", "test.call", keyed)
            .await
            .unwrap()
            .status(),
        201
    );
    assert_eq!(script.hits.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn retry_after_on_429_is_honoured() {
    let _turn = TURNS.lock().await;
    let (url, script) = serve(&[(429, Some("1")), (200, None)]).await;
    let (http, _) = http(3, BreakerConfig::default());
    let started = std::time::Instant::now();
    let response = http
        .send(
            "graph",
            "test.call",
            http.client().post(&url).json(&json!({})),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(script.hits.load(Ordering::SeqCst), 2);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn connection_errors_are_retried_and_reported_as_unreachable() {
    let _turn = TURNS.lock().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (http, metrics) = http(2, BreakerConfig::default());
    let error = http
        .send(
            "crm-api",
            "test.call",
            http.client().get(format!("http://{closed}/")),
        )
        .await
        .unwrap_err();
    assert!(matches!(error, HttpError::Unreachable { .. }), "{error:?}");
    assert_eq!(error.to_string(), "failed to reach crm-api");
    assert!(metrics.render().contains(
        r#"cross_app_requests_total{source="flow-api",target="crm-api",status="error"} 2"#
    ));
}

#[tokio::test]
async fn an_open_breaker_refuses_without_sending_and_closes_after_probes() {
    let _turn = TURNS.lock().await;
    let breaker = BreakerConfig {
        failure_threshold: 5,
        open_for: Duration::from_millis(200),
        half_open_successes: 3,
    };
    let (url, script) = serve(&[
        (500, None),
        (500, None),
        (500, None),
        (500, None),
        (500, None),
        (200, None),
    ])
    .await;
    let (http, metrics) = http(1, breaker);
    for _ in 0..5 {
        let r = http
            .send("stripe", "test.call", http.client().get(&url))
            .await
            .unwrap();
        assert_eq!(r.status(), 500);
    }
    let error = http
        .send("stripe", "test.call", http.client().get(&url))
        .await
        .unwrap_err();
    let HttpError::CircuitOpen(open) = &error else {
        panic!("expected an open circuit, got {error:?}");
    };
    assert_eq!(open.target, "stripe");
    assert_eq!(
        script.hits.load(Ordering::SeqCst),
        5,
        "nothing sent while open"
    );
    assert!(metrics
        .render()
        .contains(r#"circuit_breaker_state{target="stripe"} 1"#));
    tokio::time::sleep(Duration::from_millis(250)).await;
    for _ in 0..3 {
        let r = http
            .send("stripe", "test.call", http.client().get(&url))
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    assert_eq!(
        http.resilience().breaker("stripe").state(),
        BreakerState::Closed
    );
    assert!(metrics
        .render()
        .contains(r#"circuit_breaker_state{target="stripe"} 0"#));
}

#[tokio::test]
async fn cross_app_calls_keep_their_api_and_surface_an_open_circuit() {
    let _turn = TURNS.lock().await;
    let (url, script) = serve(&[(409, None)]).await;
    let (http, _) = http(1, BreakerConfig::default());
    let upstreams = crate::config::Upstreams {
        crm_api_url: Some(url),
        ..Default::default()
    };
    let grants = Arc::new(crate::auth::grants::Grants::new(BTreeMap::new()));
    let client = CrossAppClient::new(
        ServiceName::FlowApi,
        crate::auth::token::TokenKeys::new(b"secret"),
        grants,
        http.clone(),
        Arc::new(upstreams),
    );
    let on_behalf = OnBehalf {
        tenant: "acme",
        origin_app: Some("flow-web"),
    };
    let body = json!({ "email": "a@example.com" });
    let (status, json) = client
        .call(
            on_behalf,
            Call::post(ServiceName::CrmApi, "/contacts", &body).accept(&[StatusCode::CONFLICT]),
        )
        .await
        .unwrap();
    assert_eq!((status, json), (StatusCode::CONFLICT, json!({ "n": 0 })));
    let seen = script.headers.lock().unwrap()[0].clone();
    assert_eq!(seen["x-tenant-id"], "acme");
    assert!(seen["authorization"]
        .to_str()
        .unwrap()
        .starts_with("Bearer "));
    let error = client
        .call(on_behalf, Call::get(ServiceName::CrmApi, "/contacts"))
        .await
        .unwrap_err();
    assert!(matches!(
        error,
        CallError::Status {
            status: StatusCode::CONFLICT,
            ..
        }
    ));
    for _ in 0..5 {
        http.resilience()
            .breaker("crm-api")
            .try_acquire()
            .unwrap()
            .failure();
    }
    let error = client
        .call(on_behalf, Call::get(ServiceName::CrmApi, "/contacts"))
        .await
        .unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("circuit breaker for crm-api is open"),
        "{error}"
    );
}

/// Records the spans of the current thread (a current-thread runtime runs
/// the test's server and client on it) into an in-memory exporter.
fn record_spans() -> (
    opentelemetry_sdk::trace::InMemorySpanExporter,
    opentelemetry_sdk::trace::SdkTracerProvider,
    tracing::subscriber::DefaultGuard,
) {
    use tracing_subscriber::layer::SubscriberExt as _;
    let exporter = opentelemetry_sdk::trace::InMemorySpanExporter::default();
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber = tracing_subscriber::registry().with(crate::telemetry::layer(&provider));
    let guard = tracing::subscriber::set_default(subscriber);
    (exporter, provider, guard)
}

#[tokio::test(flavor = "current_thread")]
async fn a_call_is_one_client_span_with_its_retries_and_the_breakers_refusal() {
    let _turn = TURNS.lock().await;
    use opentelemetry::trace::{SpanKind, Status};
    let (exporter, _provider, _guard) = record_spans();
    let breaker = BreakerConfig {
        failure_threshold: 2,
        open_for: Duration::from_secs(60),
        half_open_successes: 1,
    };
    let (url, script) = serve(&[(503, None)]).await;
    let (http, _) = http(2, breaker);
    let first = http
        .send("stripe", "stripe.customers.create", http.client().get(&url))
        .await
        .unwrap();
    assert_eq!(first.status(), 503);
    let refused = http
        .send("stripe", "stripe.customers.create", http.client().get(&url))
        .await
        .unwrap_err();
    assert!(matches!(refused, HttpError::CircuitOpen(_)), "{refused:?}");

    let spans = exporter.get_finished_spans().unwrap();
    assert_eq!(spans.len(), 2, "{spans:#?}");
    let attr = |i: usize, key: &str| {
        spans[i]
            .attributes
            .iter()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| kv.value.to_string())
    };
    for (i, span) in spans.iter().enumerate() {
        assert_eq!(span.name, "GET stripe");
        assert_eq!(span.span_kind, SpanKind::Client);
        assert!(
            matches!(span.status, Status::Error { .. }),
            "{:?}",
            span.status
        );
        assert_eq!(
            attr(i, "tekup.operation").as_deref(),
            Some("stripe.customers.create")
        );
        assert_eq!(attr(i, "tekup.source_app").as_deref(), Some("flow-api"));
        assert_eq!(attr(i, "tekup.target_app").as_deref(), Some("stripe"));
        assert_eq!(attr(i, "server.address").as_deref(), Some("127.0.0.1"));
    }
    assert_eq!(attr(0, "http.response.status_code").as_deref(), Some("503"));
    let events = |i: usize| -> Vec<(String, Option<String>, Option<String>)> {
        spans[i]
            .events
            .iter()
            .map(|e| {
                let field = |key: &str| {
                    e.attributes
                        .iter()
                        .find(|kv| kv.key.as_str() == key)
                        .map(|kv| kv.value.to_string())
                };
                (e.name.to_string(), field("attempt"), field("reason"))
            })
            .collect()
    };
    assert_eq!(
        events(0),
        [(
            "retry".to_owned(),
            Some("2".to_owned()),
            Some("status 503".to_owned())
        )]
    );
    assert_eq!(events(1), [("circuit_open".to_owned(), None, None)]);

    // Both attempts named the first call's span as their parent.
    let own = format!(
        "00-{}-{}-01",
        spans[0].span_context.trace_id(),
        spans[0].span_context.span_id()
    );
    let sent: Vec<String> = script
        .headers
        .lock()
        .unwrap()
        .iter()
        .map(|h| h["traceparent"].to_str().unwrap().to_owned())
        .collect();
    assert_eq!(sent, [own.clone(), own]);
}
