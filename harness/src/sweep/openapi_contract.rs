//! The committed documents (`contract/*.json`) follow the conventions the
//! reader relies on (`contract/README.md`), against the reference contract
//! (`fixtures/platform.yaml`): what the sweep needs from them is there.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::Value;

use super::{Operation, Operations, Security};
use crate::contract::Contract;

fn committed() -> Operations {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../contract");
    Operations::load_dir(&dir).unwrap_or_else(|e| panic!("{e}"))
}

/// The permissions any app holds on `service` in the matrix.
fn permissions_on<'c>(contract: &'c Contract, service: &str) -> BTreeSet<&'c str> {
    contract
        .apps
        .iter()
        .chain(&contract.service_identities)
        .flat_map(|app| contract.permissions_of(app, service))
        .collect()
}

/// Every `x-tekup-ref` inside `schema`, with where it is.
fn references(schema: &Value, at: &str, out: &mut Vec<(String, String)>) {
    match schema {
        Value::Object(map) => {
            if let Some(r) = map.get("x-tekup-ref").and_then(Value::as_str) {
                out.push((at.to_owned(), r.to_owned()));
            }
            for (key, value) in map {
                references(value, &format!("{at}.{key}"), out);
            }
        }
        Value::Array(items) => {
            for (i, value) in items.iter().enumerate() {
                references(value, &format!("{at}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// Problems of one operation, each naming it.
fn problems(ops: &Operations, op: &Operation, contract: &Contract) -> Vec<String> {
    let mut out = Vec::new();
    let label = op.label();
    let raw = &ops.documents[&op.service]["paths"][&op.path][op.method.to_ascii_lowercase()];
    if raw.get("security").is_none() {
        out.push(format!(
            "{label}: no `security` (public operations say `[]`)"
        ));
    }
    let public = ["/health", "/metrics", "/openapi.json"];
    match &op.security {
        Security::Public if !public.contains(&op.path.as_str()) => {
            out.push(format!("{label}: public, but not one of {public:?}"));
        }
        Security::Tenant {
            permission: Some(p),
        } if !permissions_on(contract, &op.service).contains(p.as_str()) => {
            out.push(format!(
                "{label}: permission `{p}` is not in the matrix for {}",
                op.service
            ));
        }
        Security::Tenant { permission: None } if op.path != "/events" => {
            out.push(format!("{label}: a tenant operation without a permission"));
        }
        Security::Webhook { name } if !contract.webhooks.contains_key(name) => {
            out.push(format!("{label}: webhook `{name}` is not in the contract"));
        }
        _ => {}
    }
    if let Some(store) = &op.store {
        if !contract.stores.tenant_tables.contains(store) {
            out.push(format!("{label}: store `{store}` is not a tenant table"));
        }
    }
    if let Some(schema) = &op.body_schema {
        match &op.body_example {
            None => out.push(format!("{label}: a body without an example")),
            Some(example) => {
                let validator = jsonschema::options()
                    .should_validate_formats(true)
                    .build(schema)
                    .unwrap_or_else(|e| panic!("{label}: the body schema does not compile: {e}"));
                for error in validator.iter_errors(example) {
                    out.push(format!(
                        "{label}: the example does not fit its schema at `{}`: {error}",
                        error.instance_path
                    ));
                }
            }
        }
    }
    let mut refs = Vec::new();
    if let Some(schema) = &op.body_schema {
        references(schema, "body", &mut refs);
    }
    for p in &op.params {
        if let Some(r) = &p.reference {
            refs.push((format!("parameter {}", p.name), r.clone()));
        }
        let kind = ["format", "enum", "pattern", "minimum", "maximum"]
            .iter()
            .any(|k| p.schema.get(k).is_some());
        if p.example.is_none() && !kind {
            out.push(format!(
                "{label}: parameter {} has neither an example nor a schema naming its kind",
                p.name
            ));
        }
        if p.location == "path" && p.reference.is_none() {
            out.push(format!(
                "{label}: path parameter {} without `x-tekup-ref`",
                p.name
            ));
        }
    }
    for (at, reference) in refs {
        match ops.referenced(&reference) {
            None => out.push(format!(
                "{label}: {at} refers to `{reference}`, no such operation"
            )),
            Some(maker) if !(maker.is_write() && maker.body_example.is_some()) => {
                out.push(format!(
                    "{label}: {at} refers to `{reference}`, which makes nothing from an example"
                ))
            }
            Some(_) => {}
        }
    }
    out
}

#[test]
fn the_committed_documents_follow_the_conventions() {
    let contract = Contract::reference();
    let ops = committed();
    let services: BTreeSet<&str> = ops.documents.keys().map(String::as_str).collect();
    assert_eq!(
        services,
        BTreeSet::from(["crm-api", "flow-api", "gateway", "secure-platform"])
    );
    for service in &services {
        assert!(contract.services.iter().any(|s| s == service), "{service}");
    }
    let found: Vec<String> = ops
        .list
        .iter()
        .flat_map(|op| problems(&ops, op, contract))
        .collect();
    assert!(found.is_empty(), "{}", found.join("\n"));
    // What the sweep's classes lean on is there at all.
    let count = |f: &dyn Fn(&Operation) -> bool| ops.list.iter().filter(|o| f(o)).count();
    assert!(count(&|o| o.body_example.is_some()) >= 12);
    assert!(count(&|o| o.store.is_some()) >= 10);
    assert!(count(&|o| o.params.iter().any(|p| p.reference.is_some())) >= 6);
    assert_eq!(
        count(&|o| matches!(o.security, Security::Webhook { .. })),
        1
    );
    let handshake = ops.find("gateway", "connectEvents").expect("the handshake");
    assert_eq!(
        (handshake.method.as_str(), handshake.path.as_str()),
        ("GET", "/events")
    );
    assert!(handshake.responses.iter().any(|s| s == "101"));
}

#[test]
fn a_broken_document_is_reported_naming_the_operation() {
    let contract = Contract::reference();
    let mut documents = committed().documents;
    let doc = documents.get_mut("flow-api").expect("flow-api");
    let create = &mut doc["paths"]["/leads"]["post"];
    create["security"][0]["tenantKey"][0] = "write:everything".into();
    create["requestBody"]["content"]["application/json"]["example"]["email"] = 7.into();
    doc["paths"]["/leads/{id}"]["get"]["parameters"][0]["x-tekup-ref"] = "flow-api:makeLead".into();
    let mut reread = Operations::default();
    for doc in documents.into_values() {
        reread.add(doc).expect("still readable");
    }
    let found: Vec<String> = reread
        .list
        .iter()
        .flat_map(|op| problems(&reread, op, contract))
        .collect();
    let text = found.join("\n");
    assert!(
        text.contains("flow-api POST /leads: permission `write:everything` is not in the matrix"),
        "{text}"
    );
    assert!(
        text.contains("flow-api POST /leads: the example does not fit its schema at `/email`"),
        "{text}"
    );
    assert!(
        text.contains("flow-api GET /leads/{id}: parameter id refers to `flow-api:makeLead`, no such operation"),
        "{text}"
    );
    assert_eq!(found.len(), 3, "{text}");
}
