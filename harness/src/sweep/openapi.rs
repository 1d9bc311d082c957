//! The services' operations, read from their OpenAPI 3.1 documents
//! (`contract/<service>.json`, or `GET /openapi.json` of a running
//! service), following the conventions of `contract/README.md`.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

/// Who may call an operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Security {
    /// No credentials (`/health`, `/metrics`, `/openapi.json`).
    Public,
    /// A tenant's key or a cross-app token holding `permission` (none: any
    /// authenticated caller).
    Tenant { permission: Option<String> },
    /// The admin token.
    Admin,
    /// A signed webhook of the contract (`webhooks.<name>`).
    Webhook { name: String },
}

/// A path, query or header parameter.
#[derive(Debug, Clone)]
pub struct Param {
    pub name: String,
    /// `path`, `query` or `header`.
    pub location: String,
    pub required: bool,
    pub schema: Value,
    pub example: Option<Value>,
    /// `<service>:<operationId>` of the operation that makes what it refers to.
    pub reference: Option<String>,
}

/// One operation of one service.
#[derive(Debug, Clone)]
pub struct Operation {
    pub service: String,
    /// Upper case: `GET`, `POST`, ...
    pub method: String,
    /// As the document writes it: `/leads/{id}`.
    pub path: String,
    pub operation_id: String,
    pub security: Security,
    pub params: Vec<Param>,
    /// The JSON request body's schema (`$ref`s resolved), if it takes one.
    pub body_schema: Option<Value>,
    /// A body the service accepts.
    pub body_example: Option<Value>,
    /// Statuses the document lists.
    pub responses: Vec<String>,
    /// `x-tekup-store`: the table an accepted write lands in.
    pub store: Option<String>,
}

impl Operation {
    /// `flow-api POST /leads`: how reports name it.
    pub fn label(&self) -> String {
        format!("{} {} {}", self.service, self.method, self.path)
    }

    /// Whether it changes state (anything but GET and HEAD).
    pub fn is_write(&self) -> bool {
        !matches!(self.method.as_str(), "GET" | "HEAD" | "OPTIONS")
    }
}

/// Every operation of every service document read.
#[derive(Debug, Clone, Default)]
pub struct Operations {
    pub list: Vec<Operation>,
    /// Service -> its document, as read.
    pub documents: BTreeMap<String, Value>,
}

impl Operations {
    /// Reads every `*.json` of `dir` (one OpenAPI document per service).
    pub fn load_dir(dir: &Path) -> Result<Operations, String> {
        let entries = std::fs::read_dir(dir).map_err(|e| {
            format!(
                "failed to read the OpenAPI directory {}: {e}",
                dir.display()
            )
        })?;
        let mut paths: Vec<_> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        paths.sort();
        if paths.is_empty() {
            return Err(format!(
                "{} holds no OpenAPI documents (*.json)",
                dir.display()
            ));
        }
        let mut ops = Operations::default();
        for path in paths {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("failed to read {}: {e}", path.display()))?;
            let doc: Value = serde_json::from_str(&text)
                .map_err(|e| format!("{} is not JSON: {e}", path.display()))?;
            ops.add(doc)
                .map_err(|e| format!("{}: {e}", path.display()))?;
        }
        Ok(ops)
    }

    /// Adds one service's document.
    pub fn add(&mut self, doc: Value) -> Result<(), String> {
        let service = doc["info"]["title"]
            .as_str()
            .ok_or("`info.title` (the service's name) is missing")?
            .to_owned();
        let paths = doc["paths"].as_object().ok_or("`paths` is missing")?;
        for (path, item) in paths {
            let shared = item["parameters"].as_array().cloned().unwrap_or_default();
            for method in ["get", "put", "post", "patch", "delete"] {
                let Some(op) = item.get(method) else {
                    continue;
                };
                let at = format!("paths.{path}.{method}");
                self.list
                    .push(operation(&doc, &service, method, path, op, &shared, &at)?);
            }
        }
        self.documents.insert(service, doc);
        Ok(())
    }

    /// The operation `operation_id` of `service`.
    pub fn find(&self, service: &str, operation_id: &str) -> Option<&Operation> {
        self.list
            .iter()
            .find(|o| o.service == service && o.operation_id == operation_id)
    }

    /// The operation a `x-tekup-ref` (`<service>:<operationId>`) names.
    pub fn referenced(&self, reference: &str) -> Option<&Operation> {
        let (service, id) = reference.split_once(':')?;
        self.find(service, id)
    }
}

fn operation(
    doc: &Value,
    service: &str,
    method: &str,
    path: &str,
    op: &Value,
    shared: &[Value],
    at: &str,
) -> Result<Operation, String> {
    let operation_id = op["operationId"]
        .as_str()
        .ok_or_else(|| format!("{at}: no `operationId`"))?
        .to_owned();
    let security = security(op, at)?;
    let mut params = Vec::new();
    for p in shared
        .iter()
        .chain(op["parameters"].as_array().into_iter().flatten())
    {
        let p = resolve(doc, p);
        let name = p["name"]
            .as_str()
            .ok_or_else(|| format!("{at}: a parameter without `name`"))?;
        params.push(Param {
            name: name.to_owned(),
            location: p["in"].as_str().unwrap_or("query").to_owned(),
            required: p["required"].as_bool().unwrap_or(false),
            schema: deref_all(doc, &p["schema"], 0),
            example: p
                .get("example")
                .or_else(|| p["schema"].get("example"))
                .cloned(),
            reference: p["x-tekup-ref"]
                .as_str()
                .or_else(|| p["schema"]["x-tekup-ref"].as_str())
                .map(str::to_owned),
        });
    }
    let body = &op["requestBody"]["content"]["application/json"];
    let body_schema = body.get("schema").map(|s| deref_all(doc, s, 0));
    let body_example = body
        .get("example")
        .cloned()
        .or_else(|| body_schema.as_ref().and_then(|s| s.get("example").cloned()));
    Ok(Operation {
        service: service.to_owned(),
        method: method.to_ascii_uppercase(),
        path: path.to_owned(),
        operation_id,
        security,
        params,
        body_schema,
        body_example,
        responses: op["responses"]
            .as_object()
            .map(|r| r.keys().cloned().collect())
            .unwrap_or_default(),
        store: op["x-tekup-store"].as_str().map(str::to_owned),
    })
}

fn security(op: &Value, at: &str) -> Result<Security, String> {
    let Some(list) = op.get("security").and_then(Value::as_array) else {
        return Ok(Security::Public);
    };
    for requirement in list {
        let Some(map) = requirement.as_object() else {
            continue;
        };
        if let Some(scopes) = map.get("tenantKey").or_else(|| map.get("crossAppToken")) {
            let permission = scopes
                .as_array()
                .and_then(|s| s.first())
                .and_then(Value::as_str)
                .map(str::to_owned);
            return Ok(Security::Tenant { permission });
        }
        if map.contains_key("adminToken") {
            return Ok(Security::Admin);
        }
        if map.contains_key("webhookSignature") {
            let name = op["x-tekup-webhook"]
                .as_str()
                .ok_or_else(|| format!("{at}: a webhook operation without `x-tekup-webhook`"))?;
            return Ok(Security::Webhook {
                name: name.to_owned(),
            });
        }
    }
    Ok(Security::Public)
}

/// A `$ref` to `#/components/...` replaced by what it names.
fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => r
            .strip_prefix("#/")
            .map(|p| p.split('/').fold(doc, |node, key| &node[key]))
            .unwrap_or(v),
        None => v,
    }
}

/// A schema with every `$ref` inside it resolved (to a depth of 16).
fn deref_all(doc: &Value, v: &Value, depth: usize) -> Value {
    if depth > 16 {
        return v.clone();
    }
    let v = resolve(doc, v);
    match v {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, x)| (k.clone(), deref_all(doc, x, depth + 1)))
                .collect(),
        ),
        Value::Array(items) => {
            Value::Array(items.iter().map(|x| deref_all(doc, x, depth + 1)).collect())
        }
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn operations_security_refs_and_examples_are_read() {
        let doc = json!({
            "openapi": "3.1.0",
            "info": { "title": "flow-api", "version": "1" },
            "paths": {
                "/leads": { "post": {
                    "operationId": "createLead",
                    "security": [{ "tenantKey": ["write:leads"] }, { "crossAppToken": ["write:leads"] }],
                    "x-tekup-store": "flow.leads",
                    "requestBody": { "content": { "application/json": {
                        "schema": { "$ref": "#/components/schemas/NewLead" } } } },
                    "responses": { "201": {}, "422": {} }
                }},
                "/leads/{id}": { "get": {
                    "operationId": "getLead",
                    "security": [{ "tenantKey": ["read:leads"] }],
                    "parameters": [{ "name": "id", "in": "path", "required": true,
                        "schema": { "type": "string", "format": "uuid" },
                        "x-tekup-ref": "flow-api:createLead" }],
                    "responses": { "200": {} }
                }},
                "/health": { "get": { "operationId": "health", "responses": { "200": {} } } },
                "/webhooks/stripe": { "post": { "operationId": "stripeWebhook",
                    "security": [{ "webhookSignature": [] }], "x-tekup-webhook": "stripe",
                    "responses": { "200": {} } } }
            },
            "components": { "schemas": { "NewLead": {
                "type": "object", "required": ["email"],
                "properties": { "email": { "type": "string", "format": "email" } },
                "example": { "email": "ada@example.com" } } } }
        });
        let mut ops = Operations::default();
        ops.add(doc).unwrap();
        let create = ops.find("flow-api", "createLead").unwrap();
        assert_eq!(create.label(), "flow-api POST /leads");
        assert_eq!(
            create.security,
            Security::Tenant {
                permission: Some("write:leads".into())
            }
        );
        assert_eq!(
            create.body_example,
            Some(json!({ "email": "ada@example.com" }))
        );
        assert_eq!(
            create.body_schema.as_ref().unwrap()["properties"]["email"]["format"],
            "email"
        );
        assert_eq!(create.store.as_deref(), Some("flow.leads"));
        let get = ops.find("flow-api", "getLead").unwrap();
        assert_eq!(
            get.params[0].reference.as_deref(),
            Some("flow-api:createLead")
        );
        assert_eq!(
            ops.referenced("flow-api:createLead").unwrap().operation_id,
            "createLead"
        );
        assert_eq!(
            ops.find("flow-api", "health").unwrap().security,
            Security::Public
        );
        assert_eq!(
            ops.find("flow-api", "stripeWebhook").unwrap().security,
            Security::Webhook {
                name: "stripe".into()
            }
        );
    }

    #[test]
    fn a_document_without_operation_ids_is_refused_naming_the_path() {
        let mut ops = Operations::default();
        let err = ops
            .add(json!({ "info": { "title": "x" }, "paths": { "/a": { "get": {} } } }))
            .unwrap_err();
        assert!(err.contains("paths./a.get: no `operationId`"), "{err}");
    }
}

#[cfg(test)]
#[path = "openapi_contract.rs"]
mod committed_documents;
