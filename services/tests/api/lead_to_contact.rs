//! Creating a lead links it to a CRM contact and records LEAD_CREATED.

use serde_json::{json, Value};
use tekup_services::ServiceName::{CrmApi, FlowApi};

use crate::helpers::{assert_status, TestApp, ACME_KEY};

async fn activities_of(app: &TestApp, lead: &str) -> Vec<Value> {
    let reply = app
        .as_app(ACME_KEY, "acme", "flow-web")
        .get(FlowApi, &format!("/activities?entityId={lead}"))
        .await;
    assert_status(&reply, 200);
    reply.json["data"].as_array().unwrap().clone()
}

#[tokio::test]
async fn a_lead_with_a_new_email_creates_the_contact() {
    let app = TestApp::spawn().await;
    let flow = app.as_app(ACME_KEY, "acme", "flow-web");
    let lead = flow
        .post(FlowApi, "/leads", json!({ "firstName": "John", "lastName": "Doe", "email": "John@Example.com", "company": "Acme" }))
        .await;
    assert_status(&lead, 201);
    assert_eq!(lead.json["email"], "john@example.com");
    assert_eq!(lead.json["status"], "new");
    let lead_id = lead.json["id"].as_str().unwrap();
    let contact_id = lead.json["contactId"].as_str().expect("contact linked");

    let contacts = app
        .as_app(ACME_KEY, "acme", "crm-web")
        .get(CrmApi, "/contacts?email=john@example.com")
        .await;
    assert_status(&contacts, 200);
    assert_eq!(contacts.json["total"], 1);
    let contact = &contacts.json["data"][0];
    assert_eq!(contact["id"], contact_id);
    assert_eq!(contact["leadId"], lead_id);
    assert_eq!(contact["leadIds"], json!([lead_id]));
    assert_eq!(contact["firstName"], "John");
    assert_eq!(contact["company"], "Acme");
    assert_eq!(contact["source"], "flow-api");

    let activities = activities_of(&app, lead_id).await;
    assert_eq!(activities.len(), 1, "{activities:?}");
    assert_eq!(activities[0]["type"], "LEAD_CREATED");
    assert_eq!(activities[0]["data"]["contactCreated"], true);
    assert_eq!(activities[0]["data"]["contactId"], contact_id);

    let metrics = app.metrics(&app.flow).await;
    assert!(
        metrics.contains(
            r#"cross_app_requests_total{source="flow-api",target="crm-api",status="201"} 1"#
        ),
        "{metrics}"
    );
    assert!(metrics.contains("leads_created_total 1"), "{metrics}");
}

#[tokio::test]
async fn a_lead_with_a_known_email_is_associated_with_the_existing_contact() {
    let app = TestApp::spawn().await;
    let crm = app.as_app(ACME_KEY, "acme", "crm-web");
    let existing = crm
        .post(
            CrmApi,
            "/contacts",
            json!({ "email": "jane@example.com", "firstName": "Jane" }),
        )
        .await;
    assert_status(&existing, 201);
    let contact_id = existing.json["id"].as_str().unwrap();

    let flow = app.as_app(ACME_KEY, "acme", "flow-web");
    let mut leads = Vec::new();
    for first_name in ["Jane", "Janet"] {
        let lead = flow
            .post(
                FlowApi,
                "/leads",
                json!({ "firstName": first_name, "email": "JANE@example.com" }),
            )
            .await;
        assert_status(&lead, 201);
        assert_eq!(lead.json["contactId"], contact_id);
        leads.push(lead.json["id"].as_str().unwrap().to_owned());
    }
    let contacts = crm.get(CrmApi, "/contacts?email=jane@example.com").await;
    assert_eq!(contacts.json["total"], 1, "no duplicate contact");
    assert_eq!(contacts.json["data"][0]["leadIds"], json!(leads));
    assert_eq!(contacts.json["data"][0]["leadId"], leads[1].as_str());
    assert_eq!(
        contacts.json["data"][0]["firstName"], "Jane",
        "the contact keeps its data"
    );
    for lead in &leads {
        let activities = activities_of(&app, lead).await;
        assert_eq!(activities.len(), 1);
        assert_eq!(activities[0]["data"]["contactCreated"], false);
    }
}

#[tokio::test]
async fn concurrent_leads_with_one_new_email_make_one_contact() {
    let app = TestApp::spawn().await;
    let flow = app.as_app(ACME_KEY, "acme", "flow-web");
    let replies = futures::future::join_all((0..8).map(|i| {
        let flow = &flow;
        async move {
            flow.post(
                FlowApi,
                "/leads",
                json!({ "firstName": format!("N{i}"), "email": "race@example.com" }),
            )
            .await
        }
    }))
    .await;
    let mut contact_ids: Vec<&str> = replies
        .iter()
        .map(|r| {
            assert_status(r, 201);
            r.json["contactId"].as_str().expect("every lead linked")
        })
        .collect();
    contact_ids.dedup();
    assert_eq!(contact_ids.len(), 1, "{contact_ids:?}");
    let contacts = app
        .as_app(ACME_KEY, "acme", "crm-web")
        .get(CrmApi, "/contacts?email=race@example.com")
        .await;
    assert_eq!(contacts.json["total"], 1);
    assert_eq!(
        contacts.json["data"][0]["leadIds"]
            .as_array()
            .unwrap()
            .len(),
        8
    );
}

#[tokio::test]
async fn a_crm_outage_never_loses_the_lead() {
    // The CRM "URL" is a port nobody listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let app = TestApp::spawn_with(|state| {
        if state.service == tekup_services::ServiceName::FlowApi {
            state.set_upstreams(tekup_services::config::Upstreams {
                crm_api_url: Some(format!("http://{closed}")),
                ..Default::default()
            });
        }
    })
    .await;
    let flow = app.as_app(ACME_KEY, "acme", "flow-web");
    let lead = flow
        .post(
            FlowApi,
            "/leads",
            json!({ "firstName": "Lost", "email": "lost@example.com" }),
        )
        .await;
    assert_status(&lead, 201);
    assert_eq!(lead.json["contactId"], Value::Null);
    let id = lead.json["id"].as_str().unwrap();
    assert_status(&flow.get(FlowApi, &format!("/leads/{id}")).await, 200);
    let activities = activities_of(&app, id).await;
    assert_eq!(activities.len(), 1);
    assert!(
        activities[0]["data"]["contactError"]
            .as_str()
            .unwrap()
            .contains("crm-api"),
        "{activities:?}"
    );
    let metrics = app.metrics(&app.flow).await;
    // Connection errors are retried: three attempts by default.
    assert!(
        metrics.contains(
            r#"cross_app_requests_total{source="flow-api",target="crm-api",status="error"} 3"#
        ),
        "{metrics}"
    );
}
