//! Hostile input is refused in the platform's error shape, never a 500:
//! control characters in any text, bidi overrides in names, emails that
//! are not plain addresses, another tenant's ids inside request bodies,
//! and an admin body without the admin token (found by the harness's
//! `inputs` sweep).

use reqwest::Method;
use serde_json::{json, Value};
use tekup_services::ServiceName::{CrmApi, FlowApi, SecurePlatform};

use crate::helpers::{assert_status, error_code, TestApp, ACME_KEY, GLOBEX_KEY};

async fn rows(app: &TestApp, table: &str) -> i64 {
    sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
        .fetch_one(&app.admin)
        .await
        .unwrap()
}

#[tokio::test]
async fn control_characters_are_refused_in_every_text_field_and_bidi_overrides_in_names() {
    let app = TestApp::spawn().await;
    let flow = app.as_app(ACME_KEY, "acme", "flow-web");
    let secure = app.as_app(ACME_KEY, "acme", "secure-platform");
    let lead = |field: &str, value: &str| {
        let mut body = json!({ "firstName": "Ada", "email": "ada@example.com" });
        body[field] = json!(value);
        body
    };
    let cases: Vec<(Value, &str, &str)> = vec![
        (
            lead("firstName", "A\u{0}da"),
            "firstName",
            "control characters",
        ),
        (
            lead("lastName", "A\u{1}da"),
            "lastName",
            "control characters",
        ),
        (lead("source", "web\u{0}"), "source", "control characters"),
        (
            lead("firstName", "A\u{202E}da"),
            "firstName",
            "bidi override",
        ),
        (lead("company", "\u{2066}Acme"), "company", "bidi override"),
        (
            lead("email", "<script>@x.com"),
            "email",
            "not a valid email",
        ),
        (
            lead("email", "a..b@example.com"),
            "email",
            "not a valid email",
        ),
    ];
    for (body, field, problem) in cases {
        let reply = flow.post(FlowApi, "/leads", body.clone()).await;
        assert_status(&reply, 422);
        assert_eq!(error_code(&reply), "validation_failed");
        let message = reply.json["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(field) && message.contains(problem),
            "{body}: {message:?}"
        );
    }
    assert_eq!(
        rows(&app, "flow.leads").await,
        0,
        "a refused lead was stored"
    );

    // Free text and JSON data: NUL made Postgres fail the request (500).
    let report =
        |summary: &str, data: Value| json!({ "severity": "low", "summary": summary, "data": data });
    for body in [
        report("a\u{0}b", json!({})),
        report("ok", json!({ "note": "a\u{0}b" })),
    ] {
        let reply = secure.post(FlowApi, "/compliance/report", body).await;
        assert_status(&reply, 422);
    }
    let bidi_in_free_text = secure
        .post(
            FlowApi,
            "/compliance/report",
            report("שלום \u{202E}abc", json!({})),
        )
        .await;
    assert_status(&bidi_in_free_text, 201);
    let type_filter = app
        .as_app(ACME_KEY, "acme", "flow-web")
        .get(FlowApi, "/activities?type=A%00B")
        .await;
    assert_status(&type_filter, 422);
}

#[tokio::test]
async fn another_tenants_ids_inside_request_bodies_are_not_found() {
    let app = TestApp::spawn().await;
    let acme_flow = app.as_app(ACME_KEY, "acme", "flow-web");
    let acme_sec = app.as_app(ACME_KEY, "acme", "secure-platform");
    let acme_crm = app.as_app(ACME_KEY, "acme", "crm-web");
    let globex_voice = app.as_app(GLOBEX_KEY, "globex", "voice-agent");
    let globex_crm = app.as_app(GLOBEX_KEY, "globex", "crm-web");
    let globex_sec = app.as_app(GLOBEX_KEY, "globex", "secure-platform");

    let lead = acme_flow
        .post(
            FlowApi,
            "/leads",
            json!({ "firstName": "Ann", "email": "ann@acme.test" }),
        )
        .await;
    assert_status(&lead, 201);
    let acme_lead = lead.json["id"].as_str().unwrap().to_owned();
    let acme_contact = lead.json["contactId"].as_str().unwrap().to_owned();
    let incident = acme_sec
        .post(
            SecurePlatform,
            "/incidents",
            json!({ "title": "Breach", "severity": "high" }),
        )
        .await;
    assert_status(&incident, 201);
    let acme_incident = incident.json["id"].as_str().unwrap().to_owned();
    let globex_lead = app
        .as_app(GLOBEX_KEY, "globex", "flow-web")
        .post(
            FlowApi,
            "/leads",
            json!({ "firstName": "Gus", "email": "gus@globex.test" }),
        )
        .await;
    assert_status(&globex_lead, 201);
    let globex_contact = globex_lead.json["contactId"].as_str().unwrap().to_owned();
    let before = [
        rows(&app, "crm.contact_leads").await,
        rows(&app, "flow.activities").await,
        rows(&app, "flow.compliance_reports").await,
        rows(&app, "crm.deals").await,
        rows(&app, "crm.contacts").await,
    ];

    let refused = [
        globex_crm
            .post(
                CrmApi,
                &format!("/contacts/{globex_contact}/leads"),
                json!({ "leadId": acme_lead }),
            )
            .await,
        globex_voice
            .post(
                FlowApi,
                "/activities",
                json!({ "type": "CALL", "entityType": "lead", "entityId": acme_lead }),
            )
            .await,
        globex_voice
            .post(
                FlowApi,
                "/activities",
                json!({ "type": "CALL", "entityType": "contact", "entityId": acme_contact }),
            )
            .await,
        globex_sec
            .post(
                FlowApi,
                "/compliance/report",
                json!({ "incidentId": acme_incident, "severity": "high", "summary": "s" }),
            )
            .await,
        globex_crm
            .post(
                CrmApi,
                "/deals",
                json!({ "title": "x", "amount": 1, "currency": "usd", "contactId": acme_contact }),
            )
            .await,
        globex_crm
            .post(
                CrmApi,
                "/contacts",
                json!({ "email": "new@globex.test", "leadId": acme_lead }),
            )
            .await,
        globex_crm
            .post(
                CrmApi,
                "/contacts/sync",
                json!({ "contacts": [{ "email": "s@globex.test", "leadId": acme_lead }] }),
            )
            .await,
    ];
    for reply in &refused {
        assert_status(reply, 404);
        assert_eq!(error_code(reply), "not_found");
        let text = reply.json.to_string();
        assert!(!text.contains("acme"), "another tenant shown: {text}");
    }
    let after = [
        rows(&app, "crm.contact_leads").await,
        rows(&app, "flow.activities").await,
        rows(&app, "flow.compliance_reports").await,
        rows(&app, "crm.deals").await,
        rows(&app, "crm.contacts").await,
    ];
    assert_eq!(before, after, "a refused write stored rows");

    // The tenant's own ids still work.
    let own = acme_crm
        .post(
            CrmApi,
            "/deals",
            json!({ "title": "x", "amount": 1, "currency": "usd", "contactId": acme_contact }),
        )
        .await;
    assert_status(&own, 201);
    let own = app
        .as_app(ACME_KEY, "acme", "voice-agent")
        .post(
            FlowApi,
            "/activities",
            json!({ "type": "CALL", "entityType": "lead", "entityId": acme_lead }),
        )
        .await;
    assert_status(&own, 201);
}

#[tokio::test]
async fn the_admin_token_is_checked_before_the_body_is_read() {
    let app = TestApp::spawn().await;
    let raw = |token: Option<&str>, content_type: &str, body: &str| {
        let mut request = app
            .http
            .request(Method::POST, format!("{}/admin/tenants", app.flow))
            .header("content-type", content_type)
            .body(body.to_owned());
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    for token in [None, Some("not-the-token")] {
        for (content_type, body) in [
            ("application/json", r#"{"name": "#),
            ("text/plain", r#"{"name": "x"}"#),
            ("application/json", r#"{"name": "x", "nope": 1}"#),
        ] {
            let reply = raw(token, content_type, body).await.unwrap();
            assert_eq!(reply.status(), 401, "{token:?} {content_type} {body}");
            let json: Value = reply.json().await.unwrap();
            assert_eq!(json["error"]["code"], "unauthenticated");
        }
    }
    let malformed = raw(Some("admin-token"), "application/json", r#"{"name": "#)
        .await
        .unwrap();
    assert_eq!(malformed.status(), 400);
    let admin = app.with_headers(&[("authorization", "Bearer admin-token")]);
    for name in ["A\u{0}cme", "A\u{202E}cme"] {
        let reply = admin
            .post(FlowApi, "/admin/tenants", json!({ "name": name }))
            .await;
        assert_status(&reply, 422);
    }
}
