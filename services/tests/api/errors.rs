//! Bad input gets a 4xx with the JSON error shape, never a 500; a dead
//! dependency gets a 503 that says when to come back.

use reqwest::Method;
use serde_json::json;
use tekup_services::ServiceName::{CrmApi, FlowApi};

use crate::helpers::{assert_status, error_code, TestApp, ACME_KEY};

#[tokio::test]
async fn invalid_requests_get_a_json_error_naming_the_problem() {
    let app = TestApp::spawn().await;
    let flow = app.as_app(ACME_KEY, "acme", "flow-web");
    let cases = [
        (
            json!({ "firstName": "A", "email": "not-an-email" }),
            422,
            "email",
        ),
        (json!({ "email": "a@b.test" }), 422, "firstName"),
        (
            json!({ "firstName": " ", "email": "a@b.test" }),
            422,
            "firstName",
        ),
        (
            json!({ "firstName": "A", "email": "a@b.test", "favouriteColour": "red" }),
            422,
            "favouriteColour",
        ),
        (
            json!({ "firstName": 42, "email": "a@b.test" }),
            422,
            "firstName",
        ),
        (
            json!({ "firstName": "x".repeat(201), "email": "a@b.test" }),
            422,
            "firstName",
        ),
    ];
    for (body, status, mentions) in cases {
        let reply = flow.post(FlowApi, "/leads", body.clone()).await;
        assert_eq!(reply.status.as_u16(), status, "{body}: {}", reply.json);
        assert_eq!(error_code(&reply), "validation_failed");
        let message = reply.json["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(mentions),
            "{body}: {message:?} does not name {mentions}"
        );
    }
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM flow.leads")
        .fetch_one(&app.admin)
        .await
        .unwrap();
    assert_eq!(count, 0, "an invalid lead was stored");
}

#[tokio::test]
async fn malformed_bodies_paths_and_methods_are_client_errors() {
    let app = TestApp::spawn().await;
    let headers = [
        ("x-tenant-key", ACME_KEY),
        ("x-tenant-id", "acme"),
        ("x-source-app", "flow-web"),
    ];
    let raw = |method: Method, path: &str, content_type: Option<&str>, body: Vec<u8>| {
        let mut request = app.http.request(method, format!("{}{path}", app.flow));
        for (k, v) in headers {
            request = request.header(k, v);
        }
        if let Some(ct) = content_type {
            request = request.header("content-type", ct);
        }
        request.body(body).send()
    };
    let expectations: Vec<(reqwest::Response, u16, &str)> = vec![
        (
            raw(
                Method::POST,
                "/leads",
                Some("application/json"),
                b"{\"firstName\": ".to_vec(),
            )
            .await
            .unwrap(),
            400,
            "bad_request",
        ),
        (
            raw(Method::POST, "/leads", None, b"{}".to_vec())
                .await
                .unwrap(),
            415,
            "unsupported_media_type",
        ),
        (
            raw(
                Method::POST,
                "/leads",
                Some("application/json"),
                format!("{{\"firstName\":\"{}\"}}", "x".repeat(70_000)).into_bytes(),
            )
            .await
            .unwrap(),
            413,
            "payload_too_large",
        ),
        (
            raw(Method::GET, "/leads/not-a-uuid", None, vec![])
                .await
                .unwrap(),
            400,
            "bad_request",
        ),
        (
            raw(Method::GET, "/leads?limit=0", None, vec![])
                .await
                .unwrap(),
            422,
            "validation_failed",
        ),
        (
            raw(Method::GET, "/leads?limit=abc", None, vec![])
                .await
                .unwrap(),
            400,
            "bad_request",
        ),
        (
            raw(Method::GET, "/leads?status=won", None, vec![])
                .await
                .unwrap(),
            422,
            "validation_failed",
        ),
        (
            raw(Method::GET, "/no/such/thing", None, vec![])
                .await
                .unwrap(),
            404,
            "not_found",
        ),
        (
            raw(Method::DELETE, "/leads", None, vec![]).await.unwrap(),
            405,
            "method_not_allowed",
        ),
    ];
    for (response, status, code) in expectations {
        let url = response.url().clone();
        assert_eq!(response.status().as_u16(), status, "{url}");
        assert!(response.headers().contains_key("x-correlation-id"));
        let body: serde_json::Value = response.json().await.expect("JSON error body");
        assert_eq!(body["error"]["code"], code, "{url}: {body}");
        assert!(body["error"]["correlationId"].is_string(), "{body}");
    }
}

#[tokio::test]
async fn status_changes_follow_the_lead_lifecycle() {
    let app = TestApp::spawn().await;
    let flow = app.as_app(ACME_KEY, "acme", "flow-web");
    let lead = flow
        .post(
            FlowApi,
            "/leads",
            json!({ "firstName": "L", "email": "l@example.com" }),
        )
        .await;
    let path = format!("/leads/{}", lead.json["id"].as_str().unwrap());
    let patch = |status: &'static str| {
        flow.send(
            FlowApi,
            Method::PATCH,
            &path,
            Some(json!({ "status": status })),
        )
    };
    assert_status(&patch("qualified").await, 200);
    assert_status(&patch("converted").await, 200);
    let back = patch("new").await;
    assert_status(&back, 409);
    assert!(back.json["error"]["message"]
        .as_str()
        .unwrap()
        .contains("`converted` to `new`"));
    let reply = flow.get(FlowApi, "/leads?status=converted").await;
    assert_eq!(reply.json["total"], 1);
    let history = flow
        .get(
            FlowApi,
            &format!(
                "/activities?type=LEAD_STATUS_CHANGED&entityId={}",
                lead.json["id"].as_str().unwrap()
            ),
        )
        .await;
    assert_eq!(history.json["data"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn the_correlation_id_is_kept_and_returned() {
    let app = TestApp::spawn().await;
    let reply = app
        .with_headers(&[
            ("x-correlation-id", "corr-123"),
            ("x-tenant-id", "acme"),
            ("x-source-app", "flow-web"),
        ])
        .get(FlowApi, "/leads")
        .await;
    assert_status(&reply, 401);
    assert_eq!(reply.headers["x-correlation-id"], "corr-123");
    assert_eq!(reply.json["error"]["correlationId"], "corr-123");
}

#[tokio::test]
async fn health_and_metrics_answer_without_credentials() {
    let app = TestApp::spawn().await;
    for url in [&app.flow, &app.crm, &app.secure] {
        let health: serde_json::Value = app
            .http
            .get(format!("{url}/health"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(health["status"], "ok");
        assert_eq!(health["database"], "ok");
    }
    app.as_app(ACME_KEY, "acme", "crm-web")
        .get(CrmApi, "/contacts")
        .await;
    let metrics = app
        .http
        .get(format!("{}/metrics", app.crm))
        .send()
        .await
        .unwrap();
    assert!(metrics.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text"));
    let text = metrics.text().await.unwrap();
    assert!(
        text.contains(r#"http_requests_total{method="GET",route="/contacts",status="200"} 1"#),
        "{text}"
    );
    assert!(
        text.contains("# TYPE cross_app_request_duration_seconds histogram"),
        "{text}"
    );
}

#[tokio::test]
async fn health_reports_a_dead_database() {
    let app = TestApp::spawn().await;
    let url = app.flow.clone();
    let http = app.http.clone();
    drop(app);
    let response = http.get(format!("{url}/health")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 503);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["database"], "unreachable");
}

/// Stops the test's Postgres at once (SIGQUIT to the postmaster: every
/// backend goes, the pooled connections break).
fn stop_postgres(app: &TestApp) {
    let pid_file = app.pg.dir().join("data/postmaster.pid");
    let text = std::fs::read_to_string(&pid_file).expect("postmaster.pid");
    let pid = text.lines().next().expect("a pid").trim().to_owned();
    let status = std::process::Command::new("kill")
        .args(["-QUIT", &pid])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -QUIT {pid}");
}

#[tokio::test]
async fn a_dead_database_is_a_503_with_retry_after_not_a_500() {
    let app = TestApp::spawn().await;
    let flow = app.as_app(ACME_KEY, "acme", "flow-web");
    let lead = json!({ "firstName": "Ada", "email": "ada@example.com" });
    assert_status(&flow.post(FlowApi, "/leads", lead.clone()).await, 201);
    stop_postgres(&app);
    // The pooled connections break (or, once they are gone, no new one
    // can be had within the pool's acquire timeout): either way a 503.
    for _ in 0..2 {
        let reply = flow.post(FlowApi, "/leads", lead.clone()).await;
        assert_status(&reply, 503);
        assert_eq!(error_code(&reply), "unavailable", "{:?}", reply.json);
        let message = reply.json["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("database"), "{message}");
        let retry_after: u64 = reply
            .headers
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("a Retry-After in seconds: {:?}", reply.headers));
        assert!((1..=30).contains(&retry_after), "{retry_after}");
    }
}
