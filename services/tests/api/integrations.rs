//! The flows through the external APIs, against the project's own mocks:
//! voice commands (Gemini), security propagation (alert mail via Graph),
//! email sync (Graph), won deals and signed webhooks (Stripe).

use std::time::Duration;

use serde_json::{json, Value};
use tekup_mocks::{stripe_signature, Gemini, Graph, RecordedRequest, Stripe};
use tekup_services::external::ExternalApis;
use tekup_services::ServiceName::{CrmApi, FlowApi, SecurePlatform};

use crate::helpers::{assert_status, eventually, Options, TestApp, ACME_KEY, GLOBEX_KEY, WITHIN};
use crate::ws::WsClient;

const NOTHING_FOR: Duration = Duration::from_millis(800);
const WEBHOOK_SECRET: &str = "whsec_test_secret";

fn with_external(external: ExternalApis) -> Options {
    Options {
        external,
        ..Options::bus()
    }
}

#[tokio::test]
async fn voice_commands_run_through_gemini_function_calls() {
    let gemini = Gemini::builder()
        .api_key("gemini-test-key")
        .start()
        .await
        .unwrap();
    let external = ExternalApis {
        gemini_base_url: gemini.uri(),
        gemini_api_key: Some("gemini-test-key".into()),
        ..ExternalApis::default()
    };
    let app = TestApp::start(with_external(external), |_| {}).await;
    let flow = app.as_app(ACME_KEY, "acme", "flow-web");
    for (name, email) in [("Ann", "ann@example.com"), ("Bob", "bob@example.com")] {
        assert_status(
            &flow
                .post(
                    FlowApi,
                    "/leads",
                    json!({ "firstName": name, "email": email }),
                )
                .await,
            201,
        );
    }
    let mut voice_ws = app.ws(ACME_KEY, "acme", "voice-agent").await;
    // Resumed from the stream's start, so the two leads' LEAD_CREATED come
    // first, however far the worker has got.
    let mut flow_ws =
        WsClient::connect(app.gateway(), ACME_KEY, "acme", "flow-web", Some("0-0")).await;
    let mut crm_ws =
        WsClient::connect(app.gateway(), ACME_KEY, "acme", "crm-web", Some("0-0")).await;
    for client in [&mut flow_ws, &mut crm_ws] {
        for _ in 0..2 {
            let frame = client.next_event(WITHIN).await.expect("LEAD_CREATED");
            assert_eq!(frame["event"]["type"], "LEAD_CREATED");
        }
    }

    let voice = app.as_app(ACME_KEY, "acme", "voice-agent");
    let listed = voice
        .post(
            FlowApi,
            "/voice/execute",
            json!({ "transcript": "Show me new leads" }),
        )
        .await;
    assert_status(&listed, 200);
    assert_eq!(listed.json["executed"], true, "{}", listed.json);
    assert_eq!(listed.json["command"], "get_leads");
    assert_eq!(listed.json["result"]["count"], 2);
    for client in [&mut flow_ws, &mut voice_ws] {
        let frame = client
            .next_event(WITHIN)
            .await
            .expect("VOICE_COMMAND_EXECUTED");
        assert_eq!(frame["event"]["type"], "VOICE_COMMAND_EXECUTED");
        assert_eq!(frame["event"]["data"]["command"], "get_leads");
    }
    assert_eq!(
        crm_ws.next_event(NOTHING_FOR).await,
        None,
        "crm-web is not routed voice events"
    );

    let noted = voice
        .post(
            FlowApi,
            "/voice/execute",
            json!({ "transcript": "note that Ann wants a demo" }),
        )
        .await;
    assert_eq!(noted.json["command"], "create_activity", "{}", noted.json);
    assert_eq!(noted.json["result"]["description"], "Ann wants a demo");
    assert_eq!(noted.json["result"]["type"], "VOICE_NOTE");

    let unknown = voice
        .post(
            FlowApi,
            "/voice/execute",
            json!({ "transcript": "sing me a song" }),
        )
        .await;
    assert_status(&unknown, 200);
    assert_eq!(unknown.json["executed"], false);
    assert!(
        unknown.json["reply"]
            .as_str()
            .unwrap()
            .contains("sing me a song"),
        "{}",
        unknown.json
    );

    let calls: Vec<RecordedRequest> = gemini
        .journal()
        .into_iter()
        .filter(|r| r.path.ends_with(":generateContent"))
        .collect();
    assert_eq!(calls.len(), 3);
    assert!(calls
        .iter()
        .all(|c| c.headers.get("x-goog-api-key").map(String::as_str) == Some("gemini-test-key")));
    let forbidden = flow
        .post(
            FlowApi,
            "/voice/execute",
            json!({ "transcript": "show me leads" }),
        )
        .await;
    assert_status(&forbidden, 403);
}

fn graph_apis(graph: &Graph) -> ExternalApis {
    ExternalApis {
        graph_base_url: graph.uri(),
        graph_login_base_url: graph.uri(),
        graph_tenant_id: Some(graph.tenant()),
        graph_client_id: Some("tekup-app".into()),
        graph_client_secret: Some("graph-secret".into()),
        graph_mailbox: Some("adele.vance@contoso.test".into()),
        ..ExternalApis::default()
    }
}

fn sent_mail(graph: &Graph) -> Vec<Value> {
    graph
        .journal()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/sendMail"))
        .filter_map(|r| r.body_json())
        .collect()
}

#[tokio::test]
async fn a_security_incident_reaches_the_dashboard_the_compliance_report_and_the_alert_mailbox() {
    let graph = Graph::builder()
        .client("tekup-app", "graph-secret")
        .start()
        .await
        .unwrap();
    let app = TestApp::start(with_external(graph_apis(&graph)), |_| {}).await;
    let mut secure_ws = app.ws(ACME_KEY, "acme", "secure-platform").await;
    let mut dash_ws = app.ws(ACME_KEY, "acme", "business-dashboard").await;
    let mut crm_ws = app.ws(ACME_KEY, "acme", "crm-web").await;
    let mut spy = app.ws(GLOBEX_KEY, "globex", "secure-platform").await;

    let secure = app.as_app(ACME_KEY, "acme", "secure-platform");
    let incident = secure
        .post(
            SecurePlatform,
            "/incidents",
            json!({ "title": "Credential stuffing", "severity": "critical", "source": "waf" }),
        )
        .await;
    assert_status(&incident, 201);
    let id = incident.json["id"].as_str().unwrap().to_owned();
    for client in [&mut secure_ws, &mut dash_ws] {
        let frame = client.next_event(WITHIN).await.expect("SECURITY_INCIDENT");
        assert_eq!(frame["event"]["type"], "SECURITY_INCIDENT");
        assert_eq!(frame["event"]["data"]["id"], id);
        assert_eq!(frame["event"]["priority"], "critical");
    }
    assert_eq!(crm_ws.next_event(NOTHING_FOR).await, None);
    assert_eq!(
        spy.next_event(Duration::from_millis(100)).await,
        None,
        "another tenant saw the incident"
    );

    let dash = app
        .as_app(ACME_KEY, "acme", "business-dashboard")
        .get(SecurePlatform, "/dashboard/metrics")
        .await;
    assert_eq!(dash.json["activeIncidents"], 1);
    let reports = secure.get(FlowApi, "/compliance/reports").await;
    assert_eq!(
        reports.json["data"][0]["incidentId"],
        id.as_str(),
        "{}",
        reports.json
    );
    let mail = eventually("the alert mail", || async {
        sent_mail(&graph).into_iter().next()
    })
    .await;
    assert_eq!(
        mail["message"]["toRecipients"][0]["emailAddress"]["address"],
        "security@acme.test"
    );
    assert!(
        mail["message"]["subject"]
            .as_str()
            .unwrap()
            .contains("Credential stuffing"),
        "{mail}"
    );
    eventually("the spoken alert", || async {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM flow.activities WHERE type = 'VOICE_NOTIFICATION' AND description LIKE '%Credential stuffing%'")
            .fetch_one(&app.admin)
            .await
            .unwrap();
        (n == 1).then_some(())
    })
    .await;
    eventually("the job to settle", || async {
        (app.queue_stats("compliance-checks").await["processed"] == 1).then_some(())
    })
    .await;
    assert_eq!(sent_mail(&graph).len(), 1, "one alert mail per incident");
}

#[tokio::test]
async fn email_sync_pulls_the_mailbox_into_contacts_once() {
    let graph = Graph::builder()
        .client("tekup-app", "graph-secret")
        .start()
        .await
        .unwrap();
    let app = TestApp::start(with_external(graph_apis(&graph)), |_| {}).await;
    let mut inbox_ws = app.ws(ACME_KEY, "acme", "inbox-ai").await;
    let inbox = app.as_app(ACME_KEY, "acme", "inbox-ai");
    let queued = inbox.post(CrmApi, "/emails/sync", json!(null)).await;
    assert_status(&queued, 202);
    let frame = inbox_ws.next_event(WITHIN).await.expect("EMAIL_SYNCED");
    assert_eq!(frame["event"]["type"], "EMAIL_SYNCED");
    let data = &frame["event"]["data"];
    assert_eq!(data["messages"], 25, "{data}");
    let senders = data["senders"].as_i64().unwrap();
    assert!(senders > 0);
    assert_eq!(data["contacts"]["created"], senders);
    let contacts = inbox.get(CrmApi, "/contacts?limit=500").await;
    assert_eq!(contacts.json["total"].as_i64(), Some(senders));
    assert!(contacts.json["data"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["source"] == "email"));

    assert_status(&inbox.post(CrmApi, "/emails/sync", json!(null)).await, 202);
    let again = inbox_ws
        .next_event(WITHIN)
        .await
        .expect("second EMAIL_SYNCED");
    assert_eq!(again["event"]["data"]["contacts"]["created"], 0);
    assert_eq!(again["event"]["data"]["contacts"]["unchanged"], senders);
    assert_status(
        &app.as_app(ACME_KEY, "acme", "crm-web")
            .post(CrmApi, "/emails/sync", json!(null))
            .await,
        403,
    );
}

#[tokio::test]
async fn a_won_deal_is_charged_through_stripe_and_paid_by_a_signed_webhook() {
    let stripe = Stripe::start().await.unwrap();
    let external = ExternalApis {
        stripe_base_url: stripe.uri(),
        stripe_secret_key: Some("sk_test_tekup".into()),
        stripe_webhook_secret: Some(WEBHOOK_SECRET.into()),
        ..ExternalApis::default()
    };
    let app = TestApp::start(with_external(external), |_| {}).await;
    stripe.add_webhook(
        format!("{}/webhooks/stripe", app.crm),
        Some(WEBHOOK_SECRET.into()),
    );
    let mut crm_ws = app.ws(ACME_KEY, "acme", "crm-web").await;
    let crm = app.as_app(ACME_KEY, "acme", "crm-web");
    let contact = crm
        .post(CrmApi, "/contacts", json!({ "email": "buyer@example.com" }))
        .await;
    let deal = crm
        .post(CrmApi, "/deals", json!({ "title": "Rockets", "amount": 99_00, "currency": "eur", "contactId": contact.json["id"] }))
        .await;
    let deal_id = deal.json["id"].as_str().unwrap().to_owned();
    let won = crm
        .post(CrmApi, &format!("/deals/{deal_id}/won"), json!(null))
        .await;
    assert_status(&won, 200);
    let intent = won.json["stripePaymentIntentId"]
        .as_str()
        .expect("payment intent")
        .to_owned();
    assert!(intent.starts_with("pi_"), "{intent}");
    let again = crm
        .post(CrmApi, &format!("/deals/{deal_id}/won"), json!(null))
        .await;
    assert_eq!(
        again.json["stripePaymentIntentId"],
        intent.as_str(),
        "winning twice charges once"
    );

    let created: Vec<RecordedRequest> = stripe
        .journal()
        .into_iter()
        .filter(|r| r.method == "POST")
        .collect();
    assert_eq!(created.len(), 2, "one customer and one payment intent");
    assert!(created.iter().all(|r| r
        .headers
        .get("idempotency-key")
        .is_some_and(|k| k.starts_with(&format!("deal-{deal_id}")))));
    let form: std::collections::BTreeMap<String, String> =
        created[1].body_form().into_iter().collect();
    assert_eq!(
        (form["amount"].as_str(), form["currency"].as_str()),
        ("9900", "eur")
    );
    assert_eq!(form["metadata[tenant_id]"], "acme");
    let frame = crm_ws.next_event(WITHIN).await.expect("DEAL_WON");
    assert_eq!(frame["event"]["type"], "DEAL_WON");

    stripe.trigger(
        "payment_intent.succeeded",
        json!({ "id": intent, "object": "payment_intent", "amount": 9900, "currency": "eur", "status": "succeeded",
                "metadata": { "tenant_id": "acme", "deal_id": deal_id } }),
    );
    let frame = crm_ws.next_event(WITHIN).await.expect("PAYMENT_RECEIVED");
    assert_eq!(frame["event"]["type"], "PAYMENT_RECEIVED");
    let deals = crm.get(CrmApi, "/deals?stage=won").await;
    assert!(
        deals.json["data"][0]["paidAt"].is_string(),
        "{}",
        deals.json
    );

    // Directly: a valid signature is accepted, a tampered payload or a wrong secret is not.
    let payload =
        json!({ "id": "evt_manual", "type": "customer.updated", "data": { "object": {} } })
            .to_string();
    let now = chrono::Utc::now().timestamp();
    let post = |signature: String, body: String| {
        app.http
            .post(format!("{}/webhooks/stripe", app.crm))
            .header("stripe-signature", signature)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let good = post(
        stripe_signature(WEBHOOK_SECRET, now, &payload),
        payload.clone(),
    )
    .await
    .unwrap();
    assert_eq!(good.status().as_u16(), 200);
    let tampered = post(
        stripe_signature(WEBHOOK_SECRET, now, &payload),
        payload.replace("updated", "deleted"),
    )
    .await
    .unwrap();
    assert_eq!(tampered.status().as_u16(), 400);
    let body: Value = tampered.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("invalid Stripe signature"),
        "{body}"
    );
    let wrong = post(
        stripe_signature("whsec_other", now, &payload),
        payload.clone(),
    )
    .await
    .unwrap();
    assert_eq!(wrong.status().as_u16(), 400);
    let stale = post(
        stripe_signature(WEBHOOK_SECRET, now - 3600, &payload),
        payload,
    )
    .await
    .unwrap();
    assert_eq!(stale.status().as_u16(), 400);
}

/// The `PAYMENT_RECEIVED` entries of the event stream (`tekup:events`).
async fn payments_published(app: &TestApp) -> usize {
    let url = app.redis.as_ref().expect("the bus runs Redis").url();
    let mut redis = redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let entries: redis::streams::StreamRangeReply =
        redis::AsyncCommands::xrange_all(&mut redis, "tekup:events")
            .await
            .unwrap();
    entries
        .ids
        .iter()
        .filter_map(|e| e.get::<String>("event"))
        .filter(|json| json.contains(r#""type":"PAYMENT_RECEIVED""#))
        .count()
}

#[tokio::test]
async fn a_replayed_stripe_event_is_acknowledged_without_a_second_effect() {
    let stripe = Stripe::start().await.unwrap();
    let external = ExternalApis {
        stripe_base_url: stripe.uri(),
        stripe_secret_key: Some("sk_test_tekup".into()),
        stripe_webhook_secret: Some(WEBHOOK_SECRET.into()),
        ..ExternalApis::default()
    };
    let app = TestApp::start(with_external(external), |_| {}).await;
    let crm = app.as_app(ACME_KEY, "acme", "crm-web");
    let deal = crm
        .post(
            CrmApi,
            "/deals",
            json!({ "title": "Replay", "amount": 500, "currency": "eur" }),
        )
        .await;
    let deal_id = deal.json["id"].as_str().unwrap().to_owned();
    let won = crm
        .post(CrmApi, &format!("/deals/{deal_id}/won"), json!(null))
        .await;
    assert_status(&won, 200);
    let intent = won.json["stripePaymentIntentId"].as_str().unwrap();
    let payload =
        json!({ "id": "evt_replayed", "object": "event", "type": "payment_intent.succeeded",
        "data": { "object": { "id": intent, "object": "payment_intent",
            "metadata": { "tenant_id": "acme", "deal_id": deal_id } } } })
        .to_string();
    let now = chrono::Utc::now().timestamp();
    let deliver = |t: i64| {
        app.http
            .post(format!("{}/webhooks/stripe", app.crm))
            .header(
                "stripe-signature",
                stripe_signature(WEBHOOK_SECRET, t, &payload),
            )
            .header("content-type", "application/json")
            .body(payload.clone())
            .send()
    };
    let first: Value = deliver(now).await.unwrap().json().await.unwrap();
    assert_eq!(first["handled"], true, "{first}");
    assert_eq!(payments_published(&app).await, 1);
    // The same event id, freshly signed: acknowledged, not handled again.
    let again = deliver(now - 1).await.unwrap();
    assert_eq!(again.status().as_u16(), 200);
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["duplicate"], true, "{again}");
    assert_eq!(again["handled"], false, "{again}");
    assert_eq!(
        payments_published(&app).await,
        1,
        "a replay published again"
    );
}
