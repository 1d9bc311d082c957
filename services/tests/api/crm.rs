//! CRM behaviour: idempotent sync, deals, and the admin tenant endpoint.

use serde_json::json;
use tekup_services::ServiceName::{CrmApi, FlowApi, SecurePlatform};

use crate::helpers::{assert_status, error_code, TestApp, ACME_KEY};

#[tokio::test]
async fn contact_sync_is_an_idempotent_upsert_by_email() {
    let app = TestApp::spawn().await;
    let inbox = app.as_app(ACME_KEY, "acme", "inbox-ai");
    let batch = json!({ "contacts": [
        { "email": "a@example.com", "firstName": "A" },
        { "email": "B@example.com", "company": "Bee" },
    ]});
    let first = inbox.post(CrmApi, "/contacts/sync", batch.clone()).await;
    assert_status(&first, 200);
    assert_eq!(
        (
            first.json["created"].as_i64(),
            first.json["updated"].as_i64(),
            first.json["unchanged"].as_i64()
        ),
        (Some(2), Some(0), Some(0))
    );
    let again = inbox.post(CrmApi, "/contacts/sync", batch).await;
    assert_eq!(
        (
            again.json["created"].as_i64(),
            again.json["updated"].as_i64(),
            again.json["unchanged"].as_i64()
        ),
        (Some(0), Some(0), Some(2))
    );
    assert_eq!(again.json["data"][0]["id"], first.json["data"][0]["id"]);
    let change = inbox
        .post(
            CrmApi,
            "/contacts/sync",
            json!({ "contacts": [{ "email": "b@example.com", "lastName": "Bee" }] }),
        )
        .await;
    assert_eq!(change.json["updated"], 1);
    assert_eq!(
        change.json["data"][0]["company"], "Bee",
        "absent fields are kept"
    );
    assert_eq!(change.json["data"][0]["lastName"], "Bee");
    let total = inbox.get(CrmApi, "/contacts").await;
    assert_eq!(total.json["total"], 2);

    let bad = inbox
        .post(
            CrmApi,
            "/contacts/sync",
            json!({ "contacts": [{ "email": "ok@example.com" }, { "email": "nope" }] }),
        )
        .await;
    assert_status(&bad, 422);
    assert!(
        bad.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("contacts[1].email"),
        "{}",
        bad.json
    );
    assert_eq!(
        inbox.get(CrmApi, "/contacts").await.json["total"],
        2,
        "a rejected batch stores nothing"
    );
    let duplicate = inbox
        .post(CrmApi, "/contacts", json!({ "email": "a@example.com" }))
        .await;
    assert_status(&duplicate, 409);
    assert_eq!(error_code(&duplicate), "conflict");
}

#[tokio::test]
async fn a_deal_is_won_once_and_counted() {
    let app = TestApp::spawn().await;
    let crm = app.as_app(ACME_KEY, "acme", "crm-web");
    let deal = crm
        .post(
            CrmApi,
            "/deals",
            json!({ "title": "Rockets", "amount": 125_000, "currency": "USD" }),
        )
        .await;
    assert_status(&deal, 201);
    assert_eq!(deal.json["currency"], "usd");
    assert_eq!(deal.json["stage"], "open");
    let path = format!("/deals/{}/won", deal.json["id"].as_str().unwrap());
    let won = crm.post(CrmApi, &path, json!(null)).await;
    assert_status(&won, 200);
    let won_at = won.json["wonAt"].clone();
    assert!(won_at.is_string());
    let again = crm.post(CrmApi, &path, json!(null)).await;
    assert_eq!(again.json["wonAt"], won_at, "winning twice changes nothing");
    assert_status(
        &crm.post(
            CrmApi,
            "/deals",
            json!({ "title": "x", "amount": -1, "currency": "usd" }),
        )
        .await,
        422,
    );
    assert_status(
        &crm.post(
            CrmApi,
            "/deals",
            json!({ "title": "x", "amount": 1, "currency": "dollars" }),
        )
        .await,
        422,
    );
    let dash = app
        .as_app(ACME_KEY, "acme", "business-dashboard")
        .get(CrmApi, "/dashboard/metrics")
        .await;
    assert_eq!(dash.json["dealsByStage"], json!({ "won": 1 }));
    assert_eq!(dash.json["wonAmount"], json!({ "usd": 125_000 }));
    assert_eq!(
        crm.get(CrmApi, "/deals?stage=won").await.json["data"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn incidents_count_as_active_until_resolved() {
    let app = TestApp::spawn().await;
    let sec = app.as_app(ACME_KEY, "acme", "secure-platform");
    let dash = app.as_app(ACME_KEY, "acme", "business-dashboard");
    let incident = sec
        .post(
            SecurePlatform,
            "/incidents",
            json!({ "title": "Port scan", "severity": "critical" }),
        )
        .await;
    assert_status(&incident, 201);
    let metrics = dash.get(SecurePlatform, "/dashboard/metrics").await;
    assert_eq!(metrics.json["activeIncidents"], 1);
    assert_eq!(
        metrics.json["activeIncidentsBySeverity"],
        json!({ "critical": 1 })
    );
    let resolved = sec
        .post(
            SecurePlatform,
            &format!(
                "/incidents/{}/resolve",
                incident.json["id"].as_str().unwrap()
            ),
            json!(null),
        )
        .await;
    assert_eq!(resolved.json["status"], "resolved");
    assert_eq!(
        dash.get(SecurePlatform, "/dashboard/metrics").await.json["activeIncidents"],
        0
    );
    assert_status(
        &sec.post(
            SecurePlatform,
            "/incidents",
            json!({ "title": "x", "severity": "apocalyptic" }),
        )
        .await,
        422,
    );
}

#[tokio::test]
async fn the_admin_endpoint_creates_working_tenants_and_guards_itself() {
    let app = TestApp::spawn().await;
    let anonymous = app
        .with_headers(&[])
        .post(FlowApi, "/admin/tenants", json!({}))
        .await;
    assert_status(&anonymous, 401);
    let wrong = app
        .with_headers(&[("authorization", "Bearer nope")])
        .post(FlowApi, "/admin/tenants", json!({}))
        .await;
    assert_status(&wrong, 401);
    let admin = app.with_headers(&[("authorization", "Bearer admin-token")]);
    let created = admin
        .post(
            FlowApi,
            "/admin/tenants",
            json!({ "id": "scenario-1", "allowedApps": ["flow-web"], "keys": 2 }),
        )
        .await;
    assert_status(&created, 201);
    assert_eq!(created.json["apiKeys"].as_array().unwrap().len(), 2);
    for key in created.json["apiKeys"].as_array().unwrap() {
        let caller = app.as_app(key.as_str().unwrap(), "scenario-1", "flow-web");
        assert_status(&caller.get(FlowApi, "/leads").await, 200);
        assert_status(
            &app.as_app(key.as_str().unwrap(), "scenario-1", "crm-web")
                .get(CrmApi, "/contacts")
                .await,
            403,
        );
    }
    assert_status(
        &admin
            .post(FlowApi, "/admin/tenants", json!({ "id": "scenario-1" }))
            .await,
        422,
    );
    assert_status(
        &admin
            .post(FlowApi, "/admin/tenants", json!({ "id": "Bad Id" }))
            .await,
        422,
    );
    let random = admin.post(FlowApi, "/admin/tenants", json!({})).await;
    assert_status(&random, 201);
    assert!(random.json["id"].as_str().unwrap().starts_with("t-"));
    let matrix_apps: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT app FROM auth.app_grants ORDER BY app")
            .fetch_all(&app.admin)
            .await
            .unwrap();
    let expected: Vec<String> = matrix_apps
        .into_iter()
        .filter(|a| a != "flow-api" && a != "worker")
        .collect();
    assert_eq!(
        random.json["allowedApps"],
        json!(expected),
        "every app of the matrix but the service identities: {}",
        random.json
    );

    let disabled = TestApp::spawn_with(|state| state.admin_token = None).await;
    let reply = disabled
        .with_headers(&[("authorization", "Bearer admin-token")])
        .post(FlowApi, "/admin/tenants", json!({}))
        .await;
    assert_status(&reply, 404);
}
