//! The services' OpenAPI 3.1 documents, generated from their handlers.
//!
//! Each handler carries `#[utoipa::path]` (its path, `operationId`,
//! parameters, body, answers, the permission it requires as `security`
//! scopes, and the vendor extensions of `contract/README.md`), and each
//! request type derives `ToSchema` with the validation its handler applies.
//! One `#[derive(OpenApi)]` per service sits next to its router
//! (`flow::FlowApiDoc`, ...) and `http::SharedApi` describes
//! the endpoints every service shares.
//!
//! What utoipa cannot say from an annotation is added here, in one place,
//! by `finish`: the security schemes, `security: []` on public
//! operations (utoipa leaves the field out), and the error answers every
//! operation of a class shares (a tenant operation may answer 401, 403 and
//! 429; one with a body 400, 413, 415 and 422), all in the platform's error
//! shape. Fields whose schema utoipa cannot derive (enums kept as strings,
//! references to other services' objects) get theirs from `fields`.
//!
//! The documents are served at `GET /openapi.json` and committed under
//! `contract/`; a test of `tekup-services` keeps the copies in sync.

pub(crate) mod fields;

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde_json::{json, Value};
use utoipa::OpenApi;

use crate::state::ServiceName;

/// The document of `service`, as served and committed; `None` for the
/// worker, which has only the shared endpoints.
/// The 503 every authenticated operation may answer.
const UNAVAILABLE: &str = "a dependency (the database, Redis, another service) is down or timing out; retry after `Retry-After` seconds";

pub fn document(service: ServiceName) -> Option<Value> {
    let own = match service {
        ServiceName::FlowApi => crate::flow::FlowApiDoc::openapi(),
        ServiceName::CrmApi => crate::crm::CrmApiDoc::openapi(),
        ServiceName::SecurePlatform => crate::secure::SecurePlatformDoc::openapi(),
        ServiceName::Gateway => crate::gateway::GatewayDoc::openapi(),
        ServiceName::Worker => return None,
    };
    Some(finish(own.merge_from(crate::http::SharedApi::openapi())))
}

/// The document as its committed file holds it: pretty-printed, keys
/// sorted, ending with a newline.
pub fn to_file_text(doc: &Value) -> String {
    let mut text = serde_json::to_string_pretty(&sorted(doc)).expect("a JSON value serialises");
    text.push('\n');
    text
}

/// `value` with every object's keys in order, whether or not serde_json
/// keeps insertion order (its `preserve_order` feature) in this build.
fn sorted(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), sorted(&map[k])))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

/// The text `GET /openapi.json` answers for `service` (the committed
/// file's), rendered once per process.
pub fn served(service: ServiceName) -> Option<&'static str> {
    static TEXTS: OnceLock<BTreeMap<ServiceName, String>> = OnceLock::new();
    let texts = TEXTS.get_or_init(|| {
        ServiceName::ALL
            .into_iter()
            .filter_map(|s| Some((s, to_file_text(&document(s)?))))
            .collect()
    });
    texts.get(&service).map(String::as_str)
}

/// The error body every refusal and failure has (`error` of the contract).
#[derive(Debug, utoipa::ToSchema)]
#[expect(
    dead_code,
    reason = "describes an answer; the body is built by crate::error"
)]
pub(crate) struct Error {
    error: ErrorDetail,
}

#[derive(Debug, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[expect(
    dead_code,
    reason = "describes an answer; the body is built by crate::error"
)]
struct ErrorDetail {
    /// Machine-readable: `validation_failed`, `forbidden`, ...
    #[schema(min_length = 1)]
    code: String,
    /// What was wrong, and where.
    message: String,
    /// The request's correlation id, as the logs carry it.
    correlation_id: Option<String>,
}

/// A page of a list: `data`, and for some lists the `total` matching.
#[derive(Debug, utoipa::ToSchema)]
#[expect(
    dead_code,
    reason = "describes an answer; handlers build it with json!"
)]
pub(crate) struct Page<T> {
    data: Vec<T>,
    total: Option<i64>,
}

const ERROR: &str = "#/components/schemas/Error";

/// The conventions of `contract/README.md` that annotations cannot state.
fn finish(doc: utoipa::openapi::OpenApi) -> Value {
    let mut doc = serde_json::to_value(doc).expect("an OpenAPI document serialises");
    doc["components"]["securitySchemes"] = json!({
        "tenantKey": {
            "type": "apiKey", "in": "header", "name": "x-tenant-key",
            "description": "A tenant's API key, sent with `x-tenant-id` and `x-source-app` (the calling app). Scopes name the permission of the matrix the operation needs."
        },
        "crossAppToken": {
            "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
            "description": "A cross-app token of a service identity (HS256, audience the called service, subject the tenant), sent with `x-tenant-id`. Scopes name the permission the operation needs."
        },
        "adminToken": {
            "type": "http", "scheme": "bearer",
            "description": "The platform's admin token."
        },
        "webhookSignature": {
            "type": "apiKey", "in": "header", "name": "stripe-signature",
            "description": "Stripe's signature of the raw body (`t=<unix time>,v1=<HMAC-SHA256 hex>`)."
        }
    });
    assert!(
        doc["components"]["schemas"]["Error"].is_object(),
        "the Error schema is registered"
    );
    let paths = doc["paths"].as_object_mut().expect("a document has paths");
    for item in paths.values_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for op in item.values_mut().filter_map(Value::as_object_mut) {
            let security = op
                .entry("security")
                .or_insert_with(|| json!([]))
                .as_array()
                .cloned()
                .unwrap_or_default();
            let scheme = |name: &str| security.iter().any(|r| r.get(name).is_some());
            let mut errors: Vec<(&str, &str)> = Vec::new();
            if scheme("tenantKey") || scheme("crossAppToken") {
                errors.extend([
                    ("401", "missing, unknown or revoked credentials"),
                    (
                        "403",
                        "the tenant or app may not call this, or lacks the permission",
                    ),
                    ("429", "the tenant's rate limit is exceeded"),
                    ("503", UNAVAILABLE),
                ]);
            }
            if scheme("adminToken") {
                errors.extend([
                    ("401", "a missing or wrong admin token"),
                    ("503", UNAVAILABLE),
                ]);
            }
            if scheme("webhookSignature") {
                // The raw body is verified, then read as any JSON.
                errors.push(("413", "a body over the size limit"));
            } else if op.contains_key("requestBody") {
                errors.extend([
                    ("400", "a body that is not JSON"),
                    ("413", "a body over the size limit"),
                    ("415", "a body that is not `application/json`"),
                    (
                        "422",
                        "a body that does not fit its schema (the message names the field)",
                    ),
                ]);
            }
            if op.contains_key("parameters") {
                errors.push(("400", "a parameter that does not fit its schema"));
            }
            let responses = op
                .entry("responses")
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .expect("responses are a map");
            for (status, why) in errors {
                responses.entry(status).or_insert_with(|| {
                    json!({
                        "description": why,
                        "content": { "application/json": { "schema": { "$ref": ERROR } } }
                    })
                });
            }
            // A refusal to come back from says when.
            for status in ["429", "503"] {
                if let Some(response) = responses.get_mut(status).and_then(Value::as_object_mut) {
                    response
                        .entry("headers")
                        .or_insert_with(|| json!({}))
                        .as_object_mut()
                        .expect("headers are a map")
                        .entry("Retry-After")
                        .or_insert_with(|| {
                            json!({
                                "description": "seconds to wait before trying again",
                                "required": true,
                                "schema": { "type": "integer", "minimum": 1 }
                            })
                        });
                }
            }
        }
    }
    doc
}
