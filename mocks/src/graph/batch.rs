//! JSON batching: `POST /v1.0/$batch` with up to 20 `requests`, each run
//! through the mock's own routes, answered as `{"responses": [...]}`.
//!
//! Each inner request is sent back to this mock over loopback HTTP (to its
//! own socket, with the batch's `Authorization` and `Host`), so it meets the
//! same routes, the same auth, the same journal and the same faults as a
//! direct call: a test sees it in the journal, marked with the headers
//! `x-tekup-batch` (one id per batch, also on the batch's response) and
//! `x-tekup-batch-request-id` (the inner `id`), and a rate-limit fault on an
//! inner path makes that one inner response a 429, as Graph throttles
//! batched requests one by one. Dispatching in-process instead would need a
//! second copy of the journal and fault logic.
//!
//! What is Graph's, after its JSON-batching documentation: the 20-request
//! limit and a malformed batch refused whole with a 400, `id`s unique
//! (case-insensitively), `dependsOn` naming earlier requests, a dependent of
//! a failed request answered `424 Failed Dependency`, write requests needing
//! a body and a `Content-Type`, bodies as JSON when JSON, as a string when
//! text, else base64. Requests run in order, one at a time, which satisfies
//! every `dependsOn`. An inner `url` is relative to `/v1.0`; an absolute URL
//! is reduced to its path, so `https://graph.microsoft.com/v1.0/users` (what
//! msgraph-sdk-python's `BatchRequestItem` sends) answers 400 "Resource not
//! found for the segment 'v1.0'", as Graph does. Only `dependsOn` is read:
//! the SDK's `depends_on` is an unknown property, ignored as by Graph.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine as _;
use serde_json::{json, Map, Value};

use super::search::Refusal;
use super::GraphState;
use crate::server::header_str;

/// Graph's limit of requests per batch.
pub(crate) const MAX_REQUESTS: usize = 20;

/// How long one inner request may take before it answers 504.
const INNER_TIMEOUT: Duration = Duration::from_secs(60);

/// Response headers worth handing back per inner response.
const KEPT_HEADERS: [&str; 6] = [
    "content-type",
    "location",
    "retry-after",
    "etag",
    "odata-version",
    "cache-control",
];

pub(super) fn routes() -> Router<Arc<GraphState>> {
    Router::new().route("/v1.0/$batch", post(batch))
}

/// One validated inner request.
#[derive(Debug)]
struct Inner {
    id: String,
    method: reqwest::Method,
    url: String,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
    depends_on: Vec<String>,
}

fn malformed(message: impl Into<String>) -> Refusal {
    Refusal::new(StatusCode::BAD_REQUEST, "BadRequest", message)
}

/// Validates the whole batch before anything runs, as Graph refuses a
/// malformed batch as a whole.
fn parse(body: &[u8]) -> Result<Vec<Inner>, Refusal> {
    const FORMAT: &str = "Invalid batch payload format.";
    let value: Value = serde_json::from_slice(body).map_err(|_| malformed(FORMAT))?;
    let Some(requests) = value.get("requests").and_then(Value::as_array) else {
        return Err(malformed(FORMAT));
    };
    if requests.len() > MAX_REQUESTS {
        return Err(malformed(format!(
            "The batch has {} requests; a batch takes at most {MAX_REQUESTS}.",
            requests.len()
        )));
    }
    let mut seen: Vec<String> = Vec::new();
    let mut inner = Vec::with_capacity(requests.len());
    for r in requests {
        let text = |key: &str| r.get(key).and_then(Value::as_str).filter(|s| !s.is_empty());
        let (Some(id), Some(method), Some(url)) = (text("id"), text("method"), text("url")) else {
            return Err(malformed(format!(
                "{FORMAT} Each request needs the strings 'id', 'method' and 'url'."
            )));
        };
        if seen.iter().any(|s| s.eq_ignore_ascii_case(id)) {
            return Err(malformed(format!(
                "Request id '{id}' appears more than once in the batch; ids must be unique."
            )));
        }
        let method =
            reqwest::Method::from_bytes(method.to_ascii_uppercase().as_bytes()).map_err(|_| {
                malformed(format!(
                    "Invalid HTTP method '{method}' for request id '{id}'."
                ))
            })?;
        let headers: Vec<(String, String)> = match r.get("headers") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Object(h)) => h
                .iter()
                .map(|(k, v)| {
                    let v = match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    (k.clone(), v)
                })
                .collect(),
            Some(_) => {
                return Err(malformed(format!(
                    "{FORMAT} 'headers' of request id '{id}' must be an object."
                )))
            }
        };
        let content_type = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
            .map(|(_, v)| v.to_ascii_lowercase());
        let body = match (r.get("body").filter(|b| !b.is_null()), &content_type) {
            (None, _) => None,
            (Some(b), Some(ct)) => Some(body_bytes(b, ct)),
            (Some(_), None) => {
                return Err(malformed(format!(
                    "Write request id : {id} does not contain Content-Type header or body."
                )))
            }
        };
        if matches!(method.as_str(), "POST" | "PATCH" | "PUT") && body.is_none() {
            return Err(malformed(format!(
                "Write request id : {id} does not contain Content-Type header or body."
            )));
        }
        let depends_on: Vec<String> = match r.get("dependsOn") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(d)) => d
                .iter()
                .map(|x| x.as_str().map(str::to_owned))
                .collect::<Option<_>>()
                .ok_or_else(|| {
                    malformed(format!(
                        "{FORMAT} 'dependsOn' of request id '{id}' must list ids."
                    ))
                })?,
            Some(_) => {
                return Err(malformed(format!(
                    "{FORMAT} 'dependsOn' of request id '{id}' must be an array."
                )))
            }
        };
        if let Some(dep) = depends_on
            .iter()
            .find(|d| !seen.iter().any(|s| s.eq_ignore_ascii_case(d)))
        {
            return Err(malformed(format!(
                "Invalid dependency for request Id '{id}': request '{dep}' must be an earlier request of the batch."
            )));
        }
        seen.push(id.to_owned());
        inner.push(Inner {
            id: id.to_owned(),
            method,
            url: url.to_owned(),
            headers,
            body,
            depends_on,
        });
    }
    Ok(inner)
}

/// A request body: JSON when the content type is JSON, a string's text for
/// text types, else base64 (standard or URL-safe) decoded.
fn body_bytes(body: &Value, content_type: &str) -> Vec<u8> {
    match body {
        Value::String(s) if content_type.contains("json") => s.clone().into_bytes(),
        Value::String(s) if content_type.starts_with("text/") => s.clone().into_bytes(),
        Value::String(s) => base64::engine::general_purpose::STANDARD
            .decode(s)
            .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(s))
            .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s))
            .unwrap_or_else(|_| s.clone().into_bytes()),
        other => serde_json::to_vec(other).unwrap_or_default(),
    }
}

/// The path and query an inner `url` names below `/v1.0`, or the segment
/// Graph would not find.
fn relative(url: &str) -> Result<String, String> {
    let rel = match url.find("://") {
        Some(i) => {
            let rest = &url[i + 3..];
            rest.find('/').map_or("", |j| &rest[j..])
        }
        None => url,
    };
    let rel = rel.trim_start_matches('/');
    let first = rel.split(['/', '?']).next().unwrap_or_default();
    if first.is_empty()
        || first.eq_ignore_ascii_case("v1.0")
        || first.eq_ignore_ascii_case("beta")
        || first == "$batch"
    {
        return Err(first.to_owned());
    }
    Ok(rel.to_owned())
}

/// `POST /v1.0/$batch`.
async fn batch(State(s): State<Arc<GraphState>>, headers: HeaderMap, body: Bytes) -> Response {
    let requests = match parse(&body) {
        Ok(r) => r,
        Err(refusal) => return refusal.respond(&headers),
    };
    let Some(base) = s.local.get().cloned() else {
        return Refusal::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "serviceNotAvailable",
            "The mock's own address is not known yet.",
        )
        .respond(&headers);
    };
    let batch_id = uuid::Uuid::new_v4().to_string();
    let mut statuses: HashMap<String, u16> = HashMap::new();
    let mut responses = Vec::with_capacity(requests.len());
    for r in &requests {
        let failed = r.depends_on.iter().find(|d| {
            statuses
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(d))
                .is_none_or(|(_, st)| !(200..300).contains(st))
        });
        let (status, response) = match failed {
            Some(dep) => failed_dependency(&r.id, dep),
            None => run(&s, &base, &headers, &batch_id, r).await,
        };
        statuses.insert(r.id.clone(), status);
        responses.push(response);
    }
    let mut response = Json(json!({ "responses": responses })).into_response();
    if let Ok(v) = HeaderValue::from_str(&batch_id) {
        response.headers_mut().insert("x-tekup-batch", v);
    }
    response
}

fn inner_error(id: &str, status: u16, code: &str, message: &str) -> (u16, Value) {
    let request_id = uuid::Uuid::new_v4().to_string();
    (
        status,
        json!({
            "id": id, "status": status,
            "headers": { "Content-Type": "application/json" },
            "body": { "error": { "code": code, "message": message, "innerError": {
                "date": chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S").to_string(),
                "request-id": request_id, "client-request-id": request_id
            }}}
        }),
    )
}

fn failed_dependency(id: &str, dep: &str) -> (u16, Value) {
    inner_error(
        id,
        424,
        "FailedDependency",
        &format!("The request depends on request '{dep}', which failed."),
    )
}

/// Runs one inner request through the mock's own socket.
async fn run(
    s: &GraphState,
    base: &str,
    outer: &HeaderMap,
    batch_id: &str,
    r: &Inner,
) -> (u16, Value) {
    let rel = match relative(&r.url) {
        Ok(rel) => rel,
        Err(segment) => {
            return inner_error(
                &r.id,
                400,
                "BadRequest",
                &format!("Resource not found for the segment '{segment}'."),
            )
        }
    };
    let mut request = s
        .loopback()
        .request(r.method.clone(), format!("{base}/v1.0/{rel}"))
        .timeout(INNER_TIMEOUT)
        .header("x-tekup-batch", batch_id)
        .header("x-tekup-batch-request-id", &r.id);
    for name in [header::AUTHORIZATION, header::HOST] {
        if let Some(v) = outer.get(&name) {
            request = request.header(name, v);
        }
    }
    for (k, v) in &r.headers {
        request = request.header(k.as_str(), v.as_str());
    }
    if let Some(body) = &r.body {
        request = request.body(body.clone());
    }
    let response = match request.send().await {
        Ok(response) => response,
        Err(e) if e.is_timeout() => {
            return inner_error(
                &r.id,
                504,
                "gatewayTimeout",
                "The request timed out inside the batch.",
            )
        }
        Err(e) => {
            return inner_error(
                &r.id,
                503,
                "serviceNotAvailable",
                &format!("The request failed inside the batch: {e}"),
            )
        }
    };
    let status = response.status().as_u16();
    let mut headers = Map::new();
    for name in KEPT_HEADERS {
        if let Some(v) = response.headers().get(name).and_then(|v| v.to_str().ok()) {
            headers.insert(canonical(name), Value::from(v));
        }
    }
    let content_type = header_str(response.headers(), "content-type")
        .unwrap_or_default()
        .to_ascii_lowercase();
    let bytes = response.bytes().await.unwrap_or_default();
    let mut item = json!({ "id": r.id, "status": status, "headers": headers });
    if !bytes.is_empty() {
        item["body"] = if content_type.contains("json") {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::from(String::from_utf8_lossy(&bytes).into_owned()))
        } else if content_type.starts_with("text/") {
            Value::from(String::from_utf8_lossy(&bytes).into_owned())
        } else {
            Value::from(base64::engine::general_purpose::STANDARD.encode(&bytes))
        };
    }
    (status, item)
}

/// `content-type` → `Content-Type`, as Graph spells inner headers.
fn canonical(name: &str) -> String {
    if name == "odata-version" {
        return "OData-Version".into();
    }
    name.split('-')
        .map(|part| {
            let mut c = part.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join("-")
}
