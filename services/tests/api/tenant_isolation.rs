//! A tenant never reads or writes another tenant's rows: through the API,
//! and in Postgres itself for the services' role, even without a filter.

use reqwest::Method;
use serde_json::json;
use tekup_services::db::tenant_tx;
use tekup_services::ServiceName::{CrmApi, FlowApi, SecurePlatform};
use uuid::Uuid;

use crate::helpers::{assert_status, error_code, TestApp, ACME_KEY, GLOBEX_KEY};

#[tokio::test]
async fn a_tenant_key_never_reads_or_writes_another_tenants_rows_through_the_api() {
    let app = TestApp::spawn().await;
    let acme_flow = app.as_app(ACME_KEY, "acme", "flow-web");
    let acme_crm = app.as_app(ACME_KEY, "acme", "crm-web");
    let acme_sec = app.as_app(ACME_KEY, "acme", "secure-platform");
    let globex_flow = app.as_app(GLOBEX_KEY, "globex", "flow-web");
    let globex_crm = app.as_app(GLOBEX_KEY, "globex", "crm-web");
    let globex_sec = app.as_app(GLOBEX_KEY, "globex", "secure-platform");
    let globex_dash = app.as_app(GLOBEX_KEY, "globex", "business-dashboard");

    let lead = acme_flow
        .post(
            FlowApi,
            "/leads",
            json!({ "firstName": "Ann", "email": "ann@acme.test" }),
        )
        .await;
    assert_status(&lead, 201);
    let lead_id = lead.json["id"].as_str().unwrap().to_owned();
    let contact_id = lead.json["contactId"]
        .as_str()
        .expect("lead linked to a contact")
        .to_owned();
    let deal = acme_crm.post(CrmApi, "/deals", json!({ "title": "Anvils", "amount": 5000, "currency": "usd", "contactId": contact_id })).await;
    assert_status(&deal, 201);
    let deal_id = deal.json["id"].as_str().unwrap().to_owned();
    let incident = acme_sec
        .post(
            SecurePlatform,
            "/incidents",
            json!({ "title": "Breach", "severity": "high" }),
        )
        .await;
    assert_status(&incident, 201);
    let incident_id = incident.json["id"].as_str().unwrap().to_owned();
    let own = globex_flow
        .post(
            FlowApi,
            "/leads",
            json!({ "firstName": "Gus", "email": "gus@globex.test" }),
        )
        .await;
    assert_status(&own, 201);

    // Reads.
    let leads = globex_flow.get(FlowApi, "/leads").await;
    assert_status(&leads, 200);
    let ids: Vec<&str> = leads.json["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [own.json["id"].as_str().unwrap()]);
    assert_eq!(leads.json["total"], 1);
    assert_status(
        &globex_flow.get(FlowApi, &format!("/leads/{lead_id}")).await,
        404,
    );
    let found = globex_crm
        .get(CrmApi, "/contacts?email=ann@acme.test")
        .await;
    assert_eq!(found.json["data"], json!([]));
    assert_status(
        &globex_crm
            .get(CrmApi, &format!("/contacts/{contact_id}"))
            .await,
        404,
    );
    let deals = globex_crm.get(CrmApi, "/deals").await;
    assert_eq!(deals.json["data"], json!([]));
    let incidents = globex_sec.get(SecurePlatform, "/incidents").await;
    assert_eq!(incidents.json["data"], json!([]));
    let activities = app
        .as_app(GLOBEX_KEY, "globex", "flow-web")
        .get(FlowApi, &format!("/activities?entityId={lead_id}"))
        .await;
    assert_eq!(activities.json["data"], json!([]));
    let dash = globex_dash.get(SecurePlatform, "/dashboard/metrics").await;
    assert_eq!(
        dash.json["activeIncidents"], 0,
        "acme's incident counted for globex"
    );
    let dash = globex_dash.get(FlowApi, "/dashboard/metrics").await;
    assert_eq!(dash.json["leads"], 1);

    // Writes.
    let patch = globex_flow
        .send(
            FlowApi,
            Method::PATCH,
            &format!("/leads/{lead_id}"),
            Some(json!({ "status": "lost" })),
        )
        .await;
    assert_status(&patch, 404);
    let assoc = globex_crm
        .post(
            CrmApi,
            &format!("/contacts/{contact_id}/leads"),
            json!({ "leadId": Uuid::new_v4() }),
        )
        .await;
    assert_status(&assoc, 404);
    let deal = globex_crm
        .post(
            CrmApi,
            "/deals",
            json!({ "title": "x", "amount": 1, "currency": "usd", "contactId": contact_id }),
        )
        .await;
    assert_status(&deal, 404);
    assert_status(
        &globex_crm
            .post(CrmApi, &format!("/deals/{deal_id}/won"), json!({}))
            .await,
        404,
    );
    assert_status(
        &globex_sec
            .post(
                SecurePlatform,
                &format!("/incidents/{incident_id}/resolve"),
                json!({}),
            )
            .await,
        404,
    );
    let sync = globex_crm
        .post(
            CrmApi,
            "/contacts/sync",
            json!({ "contacts": [{ "email": "ann@acme.test", "firstName": "Mallory" }] }),
        )
        .await;
    assert_status(&sync, 200);
    assert_eq!(
        sync.json["created"], 1,
        "globex gets its own contact, acme's is untouched"
    );

    // Nothing of acme's changed, as the superuser sees it.
    let (status,): (String,) = sqlx::query_as("SELECT status FROM flow.leads WHERE id = $1::uuid")
        .bind(&lead_id)
        .fetch_one(&app.admin)
        .await
        .unwrap();
    assert_eq!(status, "new");
    let (stage,): (String,) = sqlx::query_as("SELECT stage FROM crm.deals WHERE id = $1::uuid")
        .bind(&deal_id)
        .fetch_one(&app.admin)
        .await
        .unwrap();
    assert_eq!(stage, "open");
    let (first_name, leads): (Option<String>, i64) = sqlx::query_as(
        "SELECT first_name, (SELECT count(*) FROM crm.contact_leads WHERE contact_id = c.id)
           FROM crm.contacts c WHERE id = $1::uuid",
    )
    .bind(&contact_id)
    .fetch_one(&app.admin)
    .await
    .unwrap();
    assert_eq!((first_name.as_deref(), leads), (Some("Ann"), 1));
    let (incident_status,): (String,) =
        sqlx::query_as("SELECT status FROM secure.incidents WHERE id = $1::uuid")
            .bind(&incident_id)
            .fetch_one(&app.admin)
            .await
            .unwrap();
    assert_eq!(incident_status, "open");

    // A key of one tenant claiming another tenant id is refused outright.
    let claim = app
        .as_app(ACME_KEY, "globex", "flow-web")
        .get(FlowApi, "/leads")
        .await;
    assert_status(&claim, 403);
    assert_eq!(error_code(&claim), "forbidden");
}

#[tokio::test]
async fn row_level_security_holds_for_the_service_role_even_without_a_tenant_filter() {
    let app = TestApp::spawn().await;
    for (tenant, n) in [("acme", 3), ("globex", 2)] {
        for i in 0..n {
            sqlx::query("INSERT INTO flow.leads (id, tenant_id, first_name, email) VALUES ($1, $2, 'x', $3)")
                .bind(Uuid::new_v4())
                .bind(tenant)
                .bind(format!("{i}@{tenant}.test"))
                .execute(&app.admin)
                .await
                .unwrap();
            sqlx::query("INSERT INTO crm.contacts (id, tenant_id, email) VALUES ($1, $2, $3)")
                .bind(Uuid::new_v4())
                .bind(tenant)
                .bind(format!("{i}@{tenant}.test"))
                .execute(&app.admin)
                .await
                .unwrap();
        }
    }
    let pool = &app.service_pool;

    // No tenant set: nothing visible, nothing writable.
    let visible: i64 = sqlx::query_scalar("SELECT count(*) FROM flow.leads")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(visible, 0);
    let insert = sqlx::query("INSERT INTO flow.leads (id, tenant_id, first_name, email) VALUES ($1, 'acme', 'x', 'y@z.test')")
        .bind(Uuid::new_v4())
        .execute(pool)
        .await;
    assert_rls_refusal(insert);

    // Tenant set, query without any tenant filter: only that tenant's rows.
    let mut tx = tenant_tx(pool, "acme").await.unwrap();
    let tenants: Vec<String> = sqlx::query_scalar("SELECT tenant_id FROM flow.leads")
        .fetch_all(&mut *tx)
        .await
        .unwrap();
    assert_eq!(tenants.len(), 3);
    assert!(tenants.iter().all(|t| t == "acme"), "{tenants:?}");
    let updated = sqlx::query("UPDATE flow.leads SET status = 'lost'")
        .execute(&mut *tx)
        .await
        .unwrap();
    assert_eq!(updated.rows_affected(), 3);
    let deleted = sqlx::query("DELETE FROM crm.contacts")
        .execute(&mut *tx)
        .await
        .unwrap();
    assert_eq!(deleted.rows_affected(), 3);
    tx.commit().await.unwrap();

    // Writing rows into another tenant is refused by Postgres.
    for statement in [
        "INSERT INTO flow.leads (id, tenant_id, first_name, email) VALUES (gen_random_uuid(), 'globex', 'x', 'y@z.test')",
        "UPDATE flow.leads SET tenant_id = 'globex'",
    ] {
        let mut tx = tenant_tx(pool, "acme").await.unwrap();
        assert_rls_refusal(sqlx::query(statement).execute(&mut *tx).await);
        tx.rollback().await.unwrap();
    }

    // Globex's rows are untouched; the setting did not outlive the transaction.
    let globex: (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM flow.leads WHERE tenant_id = 'globex' AND status = 'new'),
                (SELECT count(*) FROM crm.contacts WHERE tenant_id = 'globex')",
    )
    .fetch_one(&app.admin)
    .await
    .unwrap();
    assert_eq!(globex, (2, 2));
    let visible: i64 = sqlx::query_scalar("SELECT count(*) FROM flow.leads")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(
        visible, 0,
        "tenant setting leaked to the next use of a pooled connection"
    );
}

fn assert_rls_refusal(result: Result<sqlx::postgres::PgQueryResult, sqlx::Error>) {
    match result {
        Err(sqlx::Error::Database(e)) => assert_eq!(e.code().as_deref(), Some("42501"), "{e}"),
        other => panic!("expected a row-level security refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn every_tenant_table_is_guarded_and_the_service_role_cannot_bypass_it() {
    let app = TestApp::spawn().await;
    let unguarded: Vec<String> = sqlx::query_scalar(
        "SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE c.relkind = 'r' AND n.nspname IN ('flow', 'crm', 'secure', 'gateway')
            AND EXISTS (SELECT 1 FROM pg_attribute a
                         WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped)
            AND NOT (c.relrowsecurity AND c.relforcerowsecurity)",
    )
    .fetch_all(&app.admin)
    .await
    .unwrap();
    assert!(
        unguarded.is_empty(),
        "tables without forced RLS: {unguarded:?}"
    );
    let without_tenant: Vec<String> = sqlx::query_scalar(
        "SELECT table_schema || '.' || table_name FROM information_schema.tables t
          WHERE table_schema IN ('flow', 'crm', 'secure', 'gateway') AND NOT EXISTS (
              SELECT 1 FROM information_schema.columns c
               WHERE c.table_schema = t.table_schema AND c.table_name = t.table_name AND c.column_name = 'tenant_id')",
    )
    .fetch_all(&app.admin)
    .await
    .unwrap();
    assert!(
        without_tenant.is_empty(),
        "tenant tables without tenant_id: {without_tenant:?}"
    );
    let (superuser, bypass): (bool, bool) =
        sqlx::query_as("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user")
            .fetch_one(&app.service_pool)
            .await
            .unwrap();
    assert!(!superuser && !bypass);
    let owned: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_tables WHERE tableowner = current_user")
            .fetch_one(&app.service_pool)
            .await
            .unwrap();
    assert_eq!(owned, 0, "the service role owns tables");
}
