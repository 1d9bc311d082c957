//! The admin API's typed form: a client (the harness) builds faults with
//! [`Fault`]'s builder, sends them as [`FaultSpec`], and reads the faults and
//! the journal back as [`Fault`] and [`RecordedRequest`]; Stripe's webhook
//! routes take [`EndpointSpec`] and [`TriggerSpec`] and answer
//! [`WebhookEndpoint`] and [`Delivery`]s (the harness's `stripe` step). These tests go
//! through the real admin API over HTTP, so a field renamed on one side only
//! fails here.

use std::time::Duration;

use serde_json::json;
use tekup_mocks::stripe::{Delivery, EndpointSpec, TriggerSpec, WebhookEndpoint};
use tekup_mocks::{stripe_signature, Fault, FaultSpec, OpenAi, RecordedRequest, Stripe};

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

#[tokio::test]
async fn every_fault_kind_round_trips_through_the_admin_api() {
    let mock = OpenAi::start().await.unwrap();
    let http = client();
    let faults = vec![
        Fault::latency(Duration::from_millis(250)).on_path("/v1/chat"),
        Fault::status(503).times(2),
        Fault::status(400)
            .with_body(json!({"error": {"message": "no", "type": "invalid_request_error"}}))
            .on_method("post"),
        Fault::rate_limit(Duration::from_secs(2)).ratio(0.25),
        Fault::malformed(),
        Fault::truncated().on_path("/v1/embeddings"),
        Fault::reset().times(1),
        Fault::stall(Some(Duration::from_millis(1500))),
        Fault::stall(None).on_path("/never"),
        Fault::status(502).on_header("x-correlation-id", "run-7-"),
    ];
    for fault in &faults {
        let response = http
            .post(format!("{}/__admin/faults", mock.uri()))
            .json(&FaultSpec::from(fault))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "{fault:?}");
        let created: Fault = response.json().await.unwrap();
        assert_eq!(&created, fault);
    }
    let listed: Vec<Fault> = http
        .get(format!("{}/__admin/faults", mock.uri()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed, faults);
    // Admin calls are not journaled.
    assert_eq!(mock.journal().len(), 0);
}

/// Two runs share the mock: each one's fault hits only its own calls (by
/// correlation id), and each removes only its own faults at its end.
#[tokio::test]
async fn faults_scoped_to_a_run_leave_the_other_runs_alone() {
    let mock = OpenAi::start().await.unwrap();
    let http = client();
    let admin = format!("{}/__admin/faults", mock.uri());
    for (run, status) in [("run-a-", 503), ("run-b-", 429)] {
        let fault = Fault::status(status).on_header("x-correlation-id", run);
        let sent = http
            .post(&admin)
            .json(&FaultSpec::from(&fault))
            .send()
            .await;
        assert_eq!(sent.unwrap().status(), 201);
    }
    let call = |id: &'static str| {
        let request = http
            .post(format!("{}/v1/embeddings", mock.uri()))
            .header("authorization", "Bearer sk-test")
            .header("x-correlation-id", id)
            .json(&json!({"model": "text-embedding-3-small", "input": "hi"}));
        async move { request.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(call("run-a-1").await, 503);
    assert_eq!(call("run-b-1").await, 429);
    assert_eq!(call("run-c-1").await, 200, "a run without faults");

    let removed: serde_json::Value = http
        .delete(format!("{admin}?header=x-correlation-id&prefix=run-a-"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(removed, json!({ "removed": 1 }));
    assert_eq!(call("run-a-2").await, 200);
    assert_eq!(call("run-b-2").await, 429, "the other run's fault stays");

    let half = http
        .delete(format!("{admin}?prefix=run-b-"))
        .send()
        .await
        .unwrap();
    assert_eq!(half.status(), 400);
    assert!(half
        .text()
        .await
        .unwrap()
        .contains("`header` and `prefix` go together"));
    assert_eq!(
        call("run-b-3").await,
        429,
        "a refused clean-up removes nothing"
    );
}

#[tokio::test]
async fn journal_entries_read_back_as_recorded_requests() {
    let mock = OpenAi::start().await.unwrap();
    let http = client();
    let sent = http
        .post(format!("{}/v1/embeddings", mock.uri()))
        .header("authorization", "Bearer sk-test")
        .header("x-correlation-id", "run-1")
        .json(&json!({"model": "text-embedding-3-small", "input": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), 200);
    let entries: Vec<RecordedRequest> = http
        .get(format!("{}/__admin/journal", mock.uri()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(entries, mock.journal());
    assert_eq!(entries[0].header("x-correlation-id"), Some("run-1"));
    assert_eq!(
        entries[0].body_json(),
        Some(json!({"model": "text-embedding-3-small", "input": "hi"}))
    );
    assert_eq!(entries[0].status, Some(200));
}

#[test]
fn binary_bodies_survive_the_json_form() {
    let text = json!({
        "seq": 7, "receivedAt": "2026-01-01T00:00:00Z", "method": "POST", "path": "/x",
        "query": null, "headers": {}, "body": "base64:AP8=", "status": null, "fault": "reset"
    });
    let entry: RecordedRequest = serde_json::from_value(text.clone()).unwrap();
    assert_eq!(&entry.body[..], &[0x00, 0xff]);
    assert_eq!(serde_json::to_value(&entry).unwrap(), text);
}

#[tokio::test]
async fn stripe_webhook_routes_speak_the_shared_types() {
    let app = axum::Router::new().route("/hook", axum::routing::post(|| async { "ok" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let stripe = Stripe::start().await.unwrap();
    let admin = format!("{}/__admin/stripe", stripe.uri());
    let http = client();

    let spec = EndpointSpec {
        url: url.clone(),
        secret: Some("whsec_typed".into()),
        enabled_events: vec!["customer.created".into()],
    };
    let response = http
        .post(format!("{admin}/webhooks"))
        .json(&spec)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let endpoint: WebhookEndpoint = response.json().await.unwrap();
    assert!(endpoint.id.starts_with("we_"), "{endpoint:?}");
    assert_eq!(
        (endpoint.url.as_str(), endpoint.secret.as_str()),
        (url.as_str(), "whsec_typed")
    );
    assert_eq!(endpoint.enabled_events, spec.enabled_events);

    let trigger = TriggerSpec {
        kind: "customer.created".into(),
        object: json!({ "id": "cus_1" }),
    };
    let response = http
        .post(format!("{admin}/events"))
        .json(&trigger)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let event: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        (event["type"].clone(), event["data"]["object"]["id"].clone()),
        (json!("customer.created"), json!("cus_1"))
    );

    let deliveries: Vec<Delivery> = http
        .get(format!("{admin}/deliveries?wait-for=1&timeout=5s"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(deliveries, stripe.deliveries());
    let d = &deliveries[0];
    assert!(d.delivered && d.finished(), "{d:?}");
    assert_eq!(
        (d.event_id.as_str(), d.url.as_str(), d.status),
        (event["id"].as_str().unwrap(), url.as_str(), Some(200))
    );
    let t: i64 = d.signature[2..d.signature.find(',').unwrap()]
        .parse()
        .unwrap();
    assert_eq!(d.signature, stripe_signature("whsec_typed", t, &d.payload));
}
