//! The reference services implement the platform's contract
//! (`fixtures/platform.yaml`): their routing table, queues, token lifetime
//! and apps are the contract's. The harness never reads the services'
//! tables; this is where the two are held together.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

use serde_json::{json, Value};
use serde_yaml::Value as Yaml;
use tekup_harness::sweep::{Operation, Operations, Security};
use tekup_mocks::{stripe_signature, Gemini};
use tekup_services::auth::grants::Grants;
use tekup_services::auth::token::TOKEN_TTL_SECS;
use tekup_services::config::Upstreams;
use tekup_services::events::{routes_for, ALL_APPS, EVENT_TYPES};
use tekup_services::external::ExternalApis;
use tekup_services::queue::{QueueName, QueuePriority};
use tekup_services::worker::DEFAULT_RETRY_SPAN;
use tekup_services::AppState;
use tekup_services::ServiceName::{self, CrmApi, FlowApi, Gateway, SecurePlatform, Worker};
use tokio::net::TcpListener;

use crate::helpers::{fixture, Options, TestApp, TOKEN_SECRET};

fn contract() -> Yaml {
    let text = std::fs::read_to_string(fixture("fixtures/platform.yaml")).expect("contract");
    serde_yaml::from_str(&text).expect("the contract is YAML")
}

fn strings(v: &Yaml) -> Vec<String> {
    v.as_sequence()
        .expect("a list")
        .iter()
        .map(|s| s.as_str().expect("a string").to_owned())
        .collect()
}

#[test]
fn the_routing_table_is_the_contracts() {
    let c = contract();
    let types = c["events"]["types"].as_mapping().expect("event types");
    let mut named: Vec<String> = types
        .keys()
        .map(|k| k.as_str().unwrap().to_owned())
        .collect();
    named.sort();
    let mut ours: Vec<String> = EVENT_TYPES.iter().map(|s| (*s).to_owned()).collect();
    ours.sort();
    assert_eq!(ours, named, "event types");
    for kind in EVENT_TYPES {
        assert_eq!(
            routes_for(kind),
            strings(&c["events"]["types"][kind]["routes"]),
            "routes of {kind}"
        );
    }
    assert_eq!(ALL_APPS, strings(&c["apps"]), "apps");
}

#[test]
fn the_queues_are_the_contracts() {
    let c = contract();
    let list = c["queues"]["list"].as_mapping().expect("queues");
    let names: Vec<&str> = list.keys().map(|k| k.as_str().unwrap()).collect();
    assert_eq!(QueueName::ALL.map(QueueName::as_str).as_slice(), names);
    for q in QueueName::ALL {
        let spec = &c["queues"]["list"][q.as_str()];
        let priority = match q.priority() {
            QueuePriority::High => "high",
            QueuePriority::Medium => "medium",
            QueuePriority::Low => "low",
        };
        assert_eq!(spec["priority"].as_str(), Some(priority), "{}", q.as_str());
        assert_eq!(
            spec["max-retries"].as_u64(),
            Some(u64::from(q.max_retries())),
            "{}",
            q.as_str()
        );
        // The outage a job rides out: the worker's span when it is given none.
        assert_eq!(
            spec["retry-span"].as_str(),
            Some(format!("{}s", DEFAULT_RETRY_SPAN.as_secs()).as_str()),
            "{}",
            q.as_str()
        );
    }
}

#[test]
fn tokens_live_no_longer_than_the_contract_allows() {
    let c = contract();
    assert_eq!(
        c["tokens"]["max-lifetime"].as_str(),
        Some(format!("{TOKEN_TTL_SECS}s").as_str())
    );
}

// --- The OpenAPI documents (`contract/<service>.json`) ------------------

/// The services with an OpenAPI document, by their file names.
const DOCUMENTED: [ServiceName; 4] = [FlowApi, CrmApi, SecurePlatform, Gateway];

const BLESS_HINT: &str = "TEKUP_BLESS=1 cargo test -p tekup-services --test api contract";

/// Serves `service` on a free port with a database pool that never
/// connects: enough for `GET /openapi.json`, and for requests refused
/// before the database is asked.
async fn serve_offline(service: ServiceName) -> String {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .connect_lazy("postgres://nobody@127.0.0.1:9/none")
        .expect("a lazy pool");
    let mut state = AppState::new(
        service,
        pool,
        Grants::default(),
        TOKEN_SECRET,
        Upstreams::default(),
    );
    state.admin_token = Some("admin-token".into());
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    let app = tekup_services::app(state);
    tokio::spawn(tekup_services::serve(listener, app, std::future::pending()));
    url
}

/// `GET /openapi.json` of `service`: status, content type and text.
async fn served_document(service: ServiceName) -> (u16, Option<String>, String) {
    let base = serve_offline(service).await;
    served_from(&base).await
}

async fn served_from(base: &str) -> (u16, Option<String>, String) {
    let response = reqwest::get(format!("{base}/openapi.json"))
        .await
        .expect("the service answers");
    let status = response.status().as_u16();
    let kind = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (status, kind, response.text().await.expect("a body"))
}

#[tokio::test]
async fn the_committed_openapi_documents_are_what_the_services_serve() {
    let bless = std::env::var("TEKUP_BLESS").is_ok_and(|v| v == "1");
    let mut stale = Vec::new();
    for service in DOCUMENTED {
        let (status, kind, served) = served_document(service).await;
        assert_eq!(status, 200, "{service}: GET /openapi.json");
        assert_eq!(kind.as_deref(), Some("application/json"), "{service}");
        let doc: serde_json::Value = serde_json::from_str(&served).expect("the document is JSON");
        assert_eq!(doc["info"]["title"], service.as_str());
        assert_eq!(doc["openapi"], "3.1.0", "{service}");
        let path = fixture(&format!("contract/{service}.json"));
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        if committed == served {
            continue;
        }
        if bless {
            std::fs::write(&path, &served)
                .unwrap_or_else(|e| panic!("failed to write {}: {e}", path.display()));
        } else {
            stale.push(format!("contract/{service}.json"));
        }
    }
    assert!(
        stale.is_empty(),
        "the committed OpenAPI documents {} differ from what the services serve; `{BLESS_HINT}` rewrites them",
        stale.join(", ")
    );
    let (status, _, _) = served_document(Worker).await;
    assert_eq!(status, 404, "the worker has no document");
}

/// Every operation a document names is a route of its service: asked
/// without credentials (or body), none answers the router's own 404 or 405.
#[tokio::test]
async fn every_documented_operation_is_routed() {
    let mut asked = 0;
    for service in DOCUMENTED {
        let base = serve_offline(service).await;
        let (_, _, text) = served_from(&base).await;
        let mut ops = Operations::default();
        ops.add(serde_json::from_str(&text).expect("JSON"))
            .expect("the reader reads the document");
        // `/health` asks the database, which this service does not have.
        for op in ops.list.iter().filter(|o| o.path != "/health") {
            let path = op.path.replace("{id}", &uuid::Uuid::nil().to_string());
            let response = reqwest::Client::new()
                .request(
                    op.method.parse().expect("a method"),
                    format!("{base}{path}"),
                )
                .send()
                .await
                .expect("the service answers");
            let status = response.status().as_u16();
            let body = response.text().await.unwrap_or_default();
            assert!(
                status != 405 && !(status == 404 && body.contains("no such endpoint")),
                "{}: {status} {body}",
                op.label()
            );
            asked += 1;
        }
    }
    assert!(asked >= 40, "only {asked} operations asked");
}

const WEBHOOK_SECRET: &str = "whsec_contract_examples";

/// One tenant's objects made for references, by `x-tekup-ref`.
struct Examples<'a> {
    app: &'a TestApp,
    ops: &'a Operations,
    tenant: String,
    key: String,
    made: BTreeMap<String, String>,
}

impl Examples<'_> {
    /// The base URL of a document's service.
    fn base(&self, service: &str) -> &str {
        match service {
            "flow-api" => &self.app.flow,
            "crm-api" => &self.app.crm,
            "secure-platform" => &self.app.secure,
            "gateway" => self.app.gateway(),
            other => panic!("no service {other} in the test app"),
        }
    }

    /// Sends `op` with its example body, its references made first.
    fn send<'s>(
        &'s mut self,
        op: &'s Operation,
    ) -> Pin<Box<dyn Future<Output = (u16, Value)> + 's>> {
        Box::pin(async move {
            let mut path = op.path.clone();
            for p in op.params.iter().filter(|p| p.location == "path") {
                let reference = p.reference.as_deref().unwrap_or_else(|| {
                    panic!(
                        "{}: path parameter {} without x-tekup-ref",
                        op.label(),
                        p.name
                    )
                });
                let id = self.make(reference).await;
                path = path.replace(&format!("{{{}}}", p.name), &id);
            }
            let mut body = op.body_example.clone();
            if let (Some(body), Some(schema)) = (&mut body, &op.body_schema) {
                let mut wanted = Vec::new();
                references_in(schema, body, &mut wanted);
                for reference in wanted {
                    let id = self.make(&reference).await;
                    replace_reference(schema, body, &reference, &id);
                }
            }
            let url = format!("{}{path}", self.base(&op.service));
            let mut request = self
                .app
                .http
                .request(op.method.parse().expect("a method"), url);
            match &op.security {
                Security::Public => {}
                Security::Admin => request = request.bearer_auth("admin-token"),
                Security::Tenant { permission } => {
                    let caller = caller_for(&op.service, permission.as_deref());
                    request = request
                        .header("x-tenant-key", &self.key)
                        .header("x-tenant-id", &self.tenant)
                        .header("x-source-app", caller);
                }
                Security::Webhook { name } => {
                    assert_eq!(name, "stripe", "{}", op.label());
                    let payload = body.clone().unwrap_or_default().to_string();
                    let signature =
                        stripe_signature(WEBHOOK_SECRET, chrono::Utc::now().timestamp(), &payload);
                    request = request.header("stripe-signature", signature);
                }
            }
            if let Some(body) = body {
                request = request.json(&body);
            }
            let response = request.send().await.expect("the service answers");
            let status = response.status().as_u16();
            let json = response.json().await.unwrap_or(Value::Null);
            (status, json)
        })
    }

    /// The id of an object `reference` names, made once per tenant.
    async fn make(&mut self, reference: &str) -> String {
        if let Some(id) = self.made.get(reference) {
            return id.clone();
        }
        let op = self
            .ops
            .referenced(reference)
            .unwrap_or_else(|| panic!("x-tekup-ref {reference} names no operation"));
        let (status, json) = self.send(op).await;
        assert!(
            (200..300).contains(&status),
            "{} (made for {reference}) answered {status}: {json}",
            op.label()
        );
        let id = json["id"]
            .as_str()
            .unwrap_or_else(|| panic!("{} answered no `id`: {json}", op.label()))
            .to_owned();
        self.made.insert(reference.to_owned(), id.clone());
        id
    }
}

/// The `x-tekup-ref`s of the fields `example` fills, in `schema`'s order.
fn references_in(schema: &Value, example: &Value, out: &mut Vec<String>) {
    if let (Some(reference), Some(_)) = (schema["x-tekup-ref"].as_str(), example.as_str()) {
        out.push(reference.to_owned());
    }
    if let (Some(props), Some(fields)) = (schema["properties"].as_object(), example.as_object()) {
        for (name, field) in fields {
            if let Some(s) = props.get(name) {
                references_in(s, field, out);
            }
        }
    }
    if let Some(items) = example.as_array() {
        for item in items {
            references_in(&schema["items"], item, out);
        }
    }
}

/// `example` with every field that refers to `reference` set to `id`.
fn replace_reference(schema: &Value, example: &mut Value, reference: &str, id: &str) {
    if schema["x-tekup-ref"] == reference && example.is_string() {
        *example = Value::String(id.to_owned());
    }
    if let (Some(props), Some(fields)) = (schema["properties"].as_object(), example.as_object_mut())
    {
        for (name, field) in fields.iter_mut() {
            if let Some(s) = props.get(name) {
                replace_reference(s, field, reference, id);
            }
        }
    }
    if let Some(items) = example.as_array_mut() {
        for item in items {
            replace_reference(&schema["items"], item, reference, id);
        }
    }
}

/// An app of the contract's matrix holding `permission` on `service`
/// (any app for an operation that names none).
fn caller_for(service: &str, permission: Option<&str>) -> &'static str {
    let contract = tekup_harness::contract::active();
    contract
        .apps
        .iter()
        .find(|app| permission.is_none_or(|p| contract.permissions_of(app, service).contains(p)))
        .unwrap_or_else(|| panic!("no app of the matrix holds {permission:?} on {service}"))
}

/// Every request body example of every document is accepted by its
/// service: each in a fresh tenant allowed every app, after the objects
/// its references name were made through their own operations' examples.
#[tokio::test]
async fn every_request_body_example_is_accepted() {
    let gemini = Gemini::builder()
        .api_key("gemini-test-key")
        .start()
        .await
        .expect("the gemini mock starts");
    let external = ExternalApis {
        gemini_base_url: gemini.uri(),
        gemini_api_key: Some("gemini-test-key".into()),
        stripe_webhook_secret: Some(WEBHOOK_SECRET.into()),
        ..ExternalApis::default()
    };
    // The bus without a worker: writes queue their follow-ups, and nothing
    // runs behind the test's back.
    let options = Options {
        external,
        worker: None,
        ..Options::bus()
    };
    let app = TestApp::start(options, |_| {}).await;
    let ops = Operations::load_dir(&fixture("contract")).expect("the documents load");
    let mut tried = 0;
    let mut refused = Vec::new();
    for op in ops.list.iter().filter(|o| o.body_schema.is_some()) {
        let example = op
            .body_example
            .as_ref()
            .unwrap_or_else(|| panic!("{} has a body but no example", op.label()));
        let created = app
            .http
            .post(format!("{}/admin/tenants", app.flow))
            .bearer_auth("admin-token")
            .json(&json!({}))
            .send()
            .await
            .expect("a tenant is made");
        assert_eq!(created.status().as_u16(), 201);
        let tenant: Value = created.json().await.expect("the tenant as JSON");
        let mut examples = Examples {
            app: &app,
            ops: &ops,
            tenant: tenant["id"].as_str().expect("an id").to_owned(),
            key: tenant["apiKeys"][0].as_str().expect("a key").to_owned(),
            made: BTreeMap::new(),
        };
        let (status, json) = examples.send(op).await;
        tried += 1;
        if !(200..300).contains(&status) {
            refused.push(format!("{} with {example}: {status} {json}", op.label()));
        }
    }
    assert!(tried >= 12, "only {tried} operations with a body");
    assert!(
        refused.is_empty(),
        "examples refused:\n{}",
        refused.join("\n")
    );
}
