//! Message attachments: list, get, add (`#microsoft.graph.fileAttachment`),
//! delete, and the raw bytes at `…/attachments/{id}/$value`.
//!
//! Attachments live beside the messages (by message id) rather than inside
//! the message object, because Graph never returns them with the message
//! unless `$expand`ed; adding or removing one changes the message
//! (`hasAttachments`, a new change sequence), so a delta round sees it.
//! Only file attachments are modelled: item and reference attachments, and
//! the upload sessions Graph wants above 3 MB, are refused by name.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine as _;
use chrono::Utc;
use serde_json::{json, Value};

use super::query::params;
use super::routes::{crid, invalid_user, item_not_found};
use super::store::{self, Kind, Store};
use super::{graph_error, GraphState};

type S = State<Arc<GraphState>>;

const FILE_ATTACHMENT: &str = "#microsoft.graph.fileAttachment";

/// Largest attachment Graph accepts in a single POST; above it a client must
/// use an upload session.
const MAX_POST_BYTES: usize = 3 * 1024 * 1024;

pub(super) fn routes() -> Router<Arc<GraphState>> {
    Router::new()
        .route(
            "/v1.0/users/{user}/messages/{id}/attachments",
            get(list).post(add),
        )
        .route(
            "/v1.0/users/{user}/messages/{id}/attachments/{attachment}",
            get(one).delete(remove),
        )
        .route(
            "/v1.0/users/{user}/messages/{id}/attachments/{attachment}/$value",
            get(raw),
        )
}

/// A `fileAttachment` object as Graph returns it.
pub(crate) fn file_attachment(name: &str, content_type: &str, bytes: &[u8], at: &str) -> Value {
    json!({
        "@odata.type": FILE_ATTACHMENT,
        "@odata.mediaContentType": content_type,
        "id": format!("{}=", crate::ids::alnum_id("AAMkAGI2AAABEgAQA", 100)),
        "lastModifiedDateTime": at,
        "name": name,
        "contentType": content_type,
        "size": bytes.len(),
        "isInline": false,
        "contentId": null,
        "contentLocation": null,
        "contentBytes": base64::engine::general_purpose::STANDARD.encode(bytes),
    })
}

/// The message's id if `user` has a live message `id`, else the Graph error.
#[expect(
    clippy::result_large_err,
    reason = "an axum Response is the natural rejection of a handler helper"
)]
fn message_id(store: &mut Store, user: &str, id: &str, h: &HeaderMap) -> Result<String, Response> {
    let Some(u) = store.user_mut(user) else {
        return Err(invalid_user(user, h));
    };
    u.items
        .iter()
        .find(|i| i.kind == Kind::Message && !i.deleted && i.object["id"] == id)
        .map(|i| i.object["id"].as_str().unwrap_or_default().to_owned())
        .ok_or_else(|| item_not_found(h))
}

/// `$select` on an attachment keeps `@odata.type`, which the SDKs need to
/// pick the attachment's class.
fn selected(a: &Value, fields: Option<&String>) -> Value {
    let mut o = super::query::select(a, fields);
    o["@odata.type"] = a["@odata.type"].clone();
    o
}

async fn list(
    State(s): S,
    Path((user, id)): Path<(String, String)>,
    RawQuery(q): RawQuery,
    h: HeaderMap,
) -> Response {
    let p = params(q.as_deref());
    let mut store = s.store();
    let message = match message_id(&mut store, &user, &id, &h) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let value: Vec<Value> = store
        .attachments
        .get(&message)
        .map(|all| all.iter().map(|a| selected(a, p.get("$select"))).collect())
        .unwrap_or_default();
    let mut body = json!({
        "@odata.context": format!("https://graph.microsoft.com/v1.0/$metadata#users('{user}')/messages('{id}')/attachments"),
        "value": value,
    });
    if p.get("$count").is_some_and(|c| c == "true") {
        body["@odata.count"] = Value::from(body["value"].as_array().map_or(0, Vec::len));
    }
    Json(body).into_response()
}

/// Finds attachment `attachment` of message `id`, or answers with the error.
#[expect(
    clippy::result_large_err,
    reason = "an axum Response is the natural rejection of a handler helper"
)]
fn with_attachment<T>(
    s: &GraphState,
    user: &str,
    id: &str,
    attachment: &str,
    h: &HeaderMap,
    f: impl FnOnce(&Value) -> T,
) -> Result<T, Response> {
    let mut store = s.store();
    let message = message_id(&mut store, user, id, h)?;
    store
        .attachments
        .get(&message)
        .and_then(|all| all.iter().find(|a| a["id"] == attachment))
        .map(f)
        .ok_or_else(|| item_not_found(h))
}

async fn one(
    State(s): S,
    Path((user, id, attachment)): Path<(String, String, String)>,
    RawQuery(q): RawQuery,
    h: HeaderMap,
) -> Response {
    let p = params(q.as_deref());
    match with_attachment(&s, &user, &id, &attachment, &h, |a| {
        selected(a, p.get("$select"))
    }) {
        Ok(a) => Json(a).into_response(),
        Err(r) => r,
    }
}

/// `GET …/attachments/{id}/$value`: the file's bytes with its content type.
async fn raw(
    State(s): S,
    Path((user, id, attachment)): Path<(String, String, String)>,
    h: HeaderMap,
) -> Response {
    let found = with_attachment(&s, &user, &id, &attachment, &h, |a| {
        (
            a["contentType"].as_str().unwrap_or_default().to_owned(),
            a["contentBytes"].as_str().unwrap_or_default().to_owned(),
        )
    });
    let (content_type, encoded) = match found {
        Ok(x) => x,
        Err(r) => return r,
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .unwrap_or_default();
    let mut response = bytes.into_response();
    let content_type = HeaderValue::from_str(&content_type)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, content_type);
    response
}

/// `POST …/attachments` with a `#microsoft.graph.fileAttachment`.
async fn add(
    State(s): S,
    Path((user, id)): Path<(String, String)>,
    h: HeaderMap,
    body: Bytes,
) -> Response {
    let bad =
        |code: &str, message: &str| graph_error(StatusCode::BAD_REQUEST, code, message, crid(&h));
    let Ok(fields @ Value::Object(_)) = serde_json::from_slice::<Value>(&body) else {
        return bad("BadRequest", "Empty Payload. JSON content expected.");
    };
    let kind = fields["@odata.type"].as_str().unwrap_or_default();
    if kind.is_empty() {
        return bad(
            "ErrorInvalidRequest",
            "The attachment's '@odata.type' is missing: set '#microsoft.graph.fileAttachment'.",
        );
    }
    if kind != FILE_ATTACHMENT {
        return graph_error(
            StatusCode::NOT_IMPLEMENTED,
            "NotImplemented",
            &format!(
                "tekup-mocks models file attachments only ('{FILE_ATTACHMENT}'), not '{kind}'."
            ),
            crid(&h),
        );
    }
    let Some(name) = fields["name"].as_str().filter(|n| !n.is_empty()) else {
        return bad(
            "ErrorRequiredPropertyMissing",
            "Required property is missing: 'name'.",
        );
    };
    let Some(encoded) = fields["contentBytes"].as_str() else {
        return bad(
            "ErrorRequiredPropertyMissing",
            "Required property is missing: 'contentBytes'.",
        );
    };
    let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(encoded) else {
        return bad(
            "ErrorInvalidProperty",
            "The value of 'contentBytes' is not valid base64.",
        );
    };
    if bytes.len() > MAX_POST_BYTES {
        return graph_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "ErrorAttachmentSizeLimitExceeded",
            &format!(
                "The attachment is {} bytes; a POST takes at most {MAX_POST_BYTES}: use createUploadSession (not mocked by tekup-mocks).",
                bytes.len()
            ),
            crid(&h),
        );
    }
    let content_type = fields["contentType"]
        .as_str()
        .unwrap_or("application/octet-stream");
    let mut attachment = file_attachment(name, content_type, &bytes, &store::iso(Utc::now()));
    if let Some(inline) = fields.get("isInline").filter(|v| v.is_boolean()) {
        attachment["isInline"] = inline.clone();
    }
    if let Some(cid) = fields.get("contentId").filter(|v| v.is_string()) {
        attachment["contentId"] = cid.clone();
    }
    let mut store = s.store();
    let message = match message_id(&mut store, &user, &id, &h) {
        Ok(m) => m,
        Err(r) => return r,
    };
    store
        .attachments
        .entry(message.clone())
        .or_default()
        .push(attachment.clone());
    touch(&mut store, &user, &message);
    (StatusCode::CREATED, Json(attachment)).into_response()
}

/// `DELETE …/attachments/{id}`: 204.
async fn remove(
    State(s): S,
    Path((user, id, attachment)): Path<(String, String, String)>,
    h: HeaderMap,
) -> Response {
    let mut store = s.store();
    let message = match message_id(&mut store, &user, &id, &h) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let Some(all) = store.attachments.get_mut(&message) else {
        return item_not_found(&h);
    };
    let before = all.len();
    all.retain(|a| a["id"] != attachment.as_str());
    if all.len() == before {
        return item_not_found(&h);
    }
    touch(&mut store, &user, &message);
    StatusCode::NO_CONTENT.into_response()
}

/// Records a change of the message: `hasAttachments` from its (non-inline)
/// attachments, a new change sequence and modification time.
fn touch(store: &mut Store, user: &str, message: &str) {
    let has = store
        .attachments
        .get(message)
        .is_some_and(|all| all.iter().any(|a| a["isInline"] != true));
    let seq = store.next_seq();
    if let Some(item) = store.user_mut(user).and_then(|u| {
        u.items
            .iter_mut()
            .find(|i| i.kind == Kind::Message && i.object["id"] == message)
    }) {
        item.object["hasAttachments"] = Value::Bool(has);
        item.object["lastModifiedDateTime"] = Value::from(store::iso(Utc::now()));
        item.seq = seq;
    }
}
