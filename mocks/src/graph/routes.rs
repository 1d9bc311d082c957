//! Graph routes: users, messages, mail folders, sendMail, contacts, events,
//! paging (`$top`/`$skip` with absolute `@odata.nextLink`) and delta queries.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use chrono::Utc;
use serde_json::{json, Value};

use super::store::{self, Item, Kind};
use super::{graph_error, GraphState};
use crate::server::{header_str, Origin};

type S = State<Arc<GraphState>>;

pub(super) fn router(state: Arc<GraphState>) -> Router {
    let api = Router::new()
        .route("/v1.0/users", get(list_users))
        .route("/v1.0/users/{user}", get(get_user))
        .route("/v1.0/users/{user}/messages", get(list_messages).post(create_message))
        .route("/v1.0/users/{user}/messages/delta", get(delta_messages))
        .route("/v1.0/users/{user}/messages/{id}", get(get_message).patch(patch_message).delete(delete_message))
        .route("/v1.0/users/{user}/mailFolders/{folder}/messages", get(list_folder).post(create_in_folder))
        .route("/v1.0/users/{user}/mailFolders/{folder}/messages/delta", get(delta_folder))
        .route("/v1.0/users/{user}/sendMail", post(send_mail))
        .route("/v1.0/users/{user}/contacts", get(list_contacts).post(create_contact))
        .route("/v1.0/users/{user}/contacts/delta", get(delta_contacts))
        .route("/v1.0/users/{user}/contactFolders/{folder}/contacts/delta", get(delta_contact_folder))
        .route("/v1.0/users/{user}/contacts/{id}", get(get_contact).patch(patch_contact).delete(delete_contact))
        .route("/v1.0/users/{user}/events", get(list_events).post(create_event))
        .route("/v1.0/users/{user}/events/{id}", get(get_event).patch(patch_event).delete(delete_event))
        .route("/v1.0/me", get(me))
        .route("/v1.0/me/{*rest}", get(me).post(me).patch(me).delete(me))
        .fallback(unknown_segment)
        .layer(axum::middleware::from_fn_with_state(state.clone(), super::auth))
        .with_state(state.clone());
    let login = Router::new()
        .route("/{tenant}/oauth2/v2.0/token", post(super::token))
        .route("/{tenant}/v2.0/.well-known/openid-configuration", get(super::openid_configuration))
        .with_state(state);
    api.merge(login)
}

fn crid(headers: &HeaderMap) -> Option<&str> {
    header_str(headers, "client-request-id")
}

async fn me(headers: HeaderMap) -> Response {
    graph_error(StatusCode::BAD_REQUEST, "BadRequest", "/me request is only valid with delegated authentication flow.", crid(&headers))
}

async fn unknown_segment(request: Request) -> Response {
    let segment = request.uri().path().rsplit('/').next().unwrap_or_default().to_owned();
    graph_error(StatusCode::BAD_REQUEST, "BadRequest", &format!("Resource not found for the segment '{segment}'."), crid(request.headers()))
}

fn invalid_user(user: &str, headers: &HeaderMap) -> Response {
    graph_error(StatusCode::NOT_FOUND, "ErrorInvalidUser", &format!("The requested user '{user}' is invalid."), crid(headers))
}

fn item_not_found(headers: &HeaderMap) -> Response {
    graph_error(StatusCode::NOT_FOUND, "ErrorItemNotFound", "The specified object was not found in the store.", crid(headers))
}

fn params(raw: Option<&str>) -> BTreeMap<String, String> {
    form_urlencoded::parse(raw.unwrap_or_default().as_bytes()).into_owned().collect()
}

fn encode(v: &str) -> String {
    form_urlencoded::byte_serialize(v.as_bytes()).collect()
}

/// `origin + path + ?query`, keeping `$` keys readable as Graph does.
fn link(origin: &str, path: &str, query: &[(String, String)]) -> String {
    let q: Vec<String> = query.iter().map(|(k, v)| format!("{k}={}", encode(v))).collect();
    format!("{origin}{path}?{}", q.join("&"))
}

fn page_size(p: &BTreeMap<String, String>, headers: &HeaderMap, default: usize) -> Result<usize, String> {
    if let Some(top) = p.get("$top") {
        return top.parse::<usize>().ok().filter(|t| (1..=1000).contains(t)).ok_or_else(|| format!("Invalid value '{top}' for query parameter $top."));
    }
    let pref = header_str(headers, "prefer").and_then(|p| p.split(',').find_map(|x| x.trim().strip_prefix("odata.maxpagesize=")?.parse().ok()));
    Ok(pref.unwrap_or(default))
}

fn field<'a>(object: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('/').try_fold(object, |v, k| v.get(k))
}

/// The `$filter` forms clients of this platform use.
fn filter(expr: &str) -> Result<Box<dyn Fn(&Value) -> bool + Send>, String> {
    let expr = expr.trim().to_owned();
    let any = regex::Regex::new(r"^emailAddresses/any\((\w+):\s*\w+/address eq '(.*)'\)$").map_err(|e| e.to_string())?;
    if let Some(c) = any.captures(&expr) {
        let wanted = c[2].to_lowercase();
        return Ok(Box::new(move |o| {
            o["emailAddresses"].as_array().is_some_and(|a| a.iter().any(|e| e["address"].as_str().is_some_and(|x| x.to_lowercase() == wanted)))
        }));
    }
    let eq = regex::Regex::new(r"^([\w/]+) eq (?:'(.*)'|(true|false))$").map_err(|e| e.to_string())?;
    if let Some(c) = eq.captures(&expr) {
        let path = c[1].to_owned();
        let wanted = match (c.get(2), c.get(3)) {
            (Some(s), _) => Value::from(s.as_str().replace("''", "'")),
            (_, Some(b)) => Value::from(b.as_str() == "true"),
            _ => Value::Null,
        };
        return Ok(Box::new(move |o| match (field(o, &path), &wanted) {
            (Some(Value::String(a)), Value::String(b)) => a.eq_ignore_ascii_case(b),
            (Some(a), b) => a == b,
            (None, _) => false,
        }));
    }
    let starts = regex::Regex::new(r"^startswith\(([\w/]+),\s*'(.*)'\)$").map_err(|e| e.to_string())?;
    if let Some(c) = starts.captures(&expr) {
        let path = c[1].to_owned();
        let prefix = c[2].to_lowercase();
        return Ok(Box::new(move |o| field(o, &path).and_then(Value::as_str).is_some_and(|s| s.to_lowercase().starts_with(&prefix))));
    }
    Err(format!("Invalid filter clause: the mock supports `x eq 'v'`, `startswith(x,'v')` and `emailAddresses/any(a:a/address eq 'v')`, not `{expr}`."))
}

fn select(object: &Value, fields: Option<&String>) -> Value {
    let Some(fields) = fields else { return object.clone() };
    let mut out = serde_json::Map::new();
    for key in ["@odata.etag", "id"].into_iter().chain(fields.split(',').map(str::trim)) {
        if let Some(v) = object.get(key) {
            out.insert(key.to_owned(), v.clone());
        }
    }
    Value::Object(out)
}

fn context(kind: Kind, user: &str) -> String {
    let set = match kind {
        Kind::Message => "messages",
        Kind::Contact => "contacts",
        Kind::Event => "events",
    };
    format!("https://graph.microsoft.com/v1.0/$metadata#users('{user}')/{set}")
}

struct Ctx {
    origin: String,
    path: String,
    query: Option<String>,
    headers: HeaderMap,
}

async fn ctx(request: Request) -> Ctx {
    Ctx {
        origin: request.extensions().get::<Origin>().map(|o| o.0.clone()).unwrap_or_default(),
        path: request.uri().path().to_owned(),
        query: request.uri().query().map(str::to_owned),
        headers: request.headers().clone(),
    }
}

/// A paged list of one kind of item.
fn list(state: &GraphState, c: &Ctx, user: &str, kind: Kind, folder: Option<&str>) -> Response {
    let p = params(c.query.as_deref());
    let top = match page_size(&p, &c.headers, 10) {
        Ok(t) => t,
        Err(m) => return graph_error(StatusCode::BAD_REQUEST, "BadRequest", &m, crid(&c.headers)),
    };
    let skip: usize = p.get("$skip").and_then(|s| s.parse().ok()).unwrap_or(0);
    let predicate = match p.get("$filter").map(|f| filter(f)).transpose() {
        Ok(f) => f,
        Err(m) => return graph_error(StatusCode::BAD_REQUEST, "ErrorInvalidUrlQueryFilter", &m, crid(&c.headers)),
    };
    let mut store = state.store();
    let Some(u) = store.user_mut(user) else { return invalid_user(user, &c.headers) };
    let mut items: Vec<&Value> = u
        .items
        .iter()
        .filter(|i| i.kind == kind && !i.deleted && folder.is_none_or(|f| i.folder.eq_ignore_ascii_case(f)))
        .map(|i| &i.object)
        .filter(|o| predicate.as_ref().is_none_or(|f| f(o)))
        .collect();
    if kind == Kind::Message {
        items.sort_by(|a, b| b["receivedDateTime"].as_str().cmp(&a["receivedDateTime"].as_str()));
    }
    let total = items.len();
    let page: Vec<Value> = items.into_iter().skip(skip).take(top).map(|o| select(o, p.get("$select"))).collect();
    let mut body = json!({ "@odata.context": context(kind, user), "value": page });
    if skip + top < total {
        let mut q: Vec<(String, String)> = p.iter().filter(|(k, _)| *k != "$skip").map(|(k, v)| (k.clone(), v.clone())).collect();
        q.push(("$skip".into(), (skip + top).to_string()));
        body["@odata.nextLink"] = Value::from(link(&c.origin, &c.path, &q));
    }
    Json(body).into_response()
}

/// A delta round: pages of changes since a token, ending in a deltaLink.
fn delta(state: &GraphState, c: &Ctx, user: &str, kind: Kind, folder: Option<&str>) -> Response {
    let p = params(c.query.as_deref());
    let top = page_size(&p, &c.headers, 10).unwrap_or(10);
    let mut store = state.store();
    let current = store.seq;
    let (since, offset, upto) = if let Some(token) = p.get("$skiptoken") {
        let parts: Vec<u64> = token.split('.').filter_map(|x| x.parse().ok()).collect();
        match parts.as_slice() {
            [s, o, u] => (*s, *o as usize, *u),
            _ => return graph_error(StatusCode::BAD_REQUEST, "BadRequest", "The skip token is invalid.", crid(&c.headers)),
        }
    } else if let Some(token) = p.get("$deltatoken") {
        match token.parse() {
            Ok(s) => (s, 0, current),
            Err(_) => {
                return graph_error(StatusCode::GONE, "SyncStateNotFound", "The sync state generation is no longer valid. Please restart the sync.", crid(&c.headers))
            }
        }
    } else {
        (0, 0, current)
    };
    let Some(u) = store.user_mut(user) else { return invalid_user(user, &c.headers) };
    let mut changed: Vec<&Item> = u
        .items
        .iter()
        .filter(|i| i.kind == kind && i.seq > since && i.seq <= upto && folder.is_none_or(|f| i.folder.eq_ignore_ascii_case(f)))
        .filter(|i| since > 0 || !i.deleted)
        .collect();
    changed.sort_by_key(|i| i.seq);
    let total = changed.len();
    let odata_type = match kind {
        Kind::Message => "#microsoft.graph.message",
        Kind::Contact => "#microsoft.graph.contact",
        Kind::Event => "#microsoft.graph.event",
    };
    let page: Vec<Value> = changed
        .into_iter()
        .skip(offset)
        .take(top)
        .map(|i| {
            if i.deleted {
                json!({ "@odata.type": odata_type, "id": i.object["id"], "@removed": { "reason": "deleted" } })
            } else {
                let mut o = select(&i.object, p.get("$select"));
                o["@odata.type"] = Value::from(odata_type);
                o
            }
        })
        .collect();
    let mut body = json!({ "@odata.context": format!("{}/delta", context(kind, user)), "value": page });
    if offset + top < total {
        body["@odata.nextLink"] = Value::from(link(&c.origin, &c.path, &[("$skiptoken".into(), format!("{since}.{}.{upto}", offset + top))]));
    } else {
        body["@odata.deltaLink"] = Value::from(link(&c.origin, &c.path, &[("$deltatoken".into(), upto.to_string())]));
    }
    Json(body).into_response()
}

fn get_item(state: &GraphState, headers: &HeaderMap, user: &str, kind: Kind, id: &str, query: Option<&str>) -> Response {
    let p = params(query);
    let mut store = state.store();
    let Some(u) = store.user_mut(user) else { return invalid_user(user, headers) };
    match u.items.iter().find(|i| i.kind == kind && !i.deleted && i.object["id"] == id) {
        Some(i) => Json(select(&i.object, p.get("$select"))).into_response(),
        None => item_not_found(headers),
    }
}

fn create(state: &GraphState, headers: &HeaderMap, user: &str, kind: Kind, folder: &str, body: &[u8]) -> Response {
    let Ok(fields @ Value::Object(_)) = serde_json::from_slice::<Value>(body) else {
        return graph_error(StatusCode::BAD_REQUEST, "BadRequest", "Empty Payload. JSON content expected.", crid(headers));
    };
    let mut store = state.store();
    let seq = store.next_seq();
    let Some(u) = store.user_mut(user) else { return invalid_user(user, headers) };
    let object = match kind {
        Kind::Contact => store::contact(&fields),
        Kind::Event => store::event(&fields, &u.object),
        Kind::Message => {
            let mut m = store::message("", "", json!({}), Vec::new(), Utc::now(), folder);
            m["isDraft"] = Value::from(folder == "drafts");
            store::merge(&mut m, &fields);
            m
        }
    };
    u.items.push(Item { kind, folder: folder.to_owned(), seq, deleted: false, object: object.clone() });
    (StatusCode::CREATED, Json(object)).into_response()
}

fn patch(state: &GraphState, headers: &HeaderMap, user: &str, kind: Kind, id: &str, body: &[u8]) -> Response {
    let Ok(fields @ Value::Object(_)) = serde_json::from_slice::<Value>(body) else {
        return graph_error(StatusCode::BAD_REQUEST, "BadRequest", "Empty Payload. JSON content expected.", crid(headers));
    };
    let mut store = state.store();
    let seq = store.next_seq();
    let Some(u) = store.user_mut(user) else { return invalid_user(user, headers) };
    let Some(item) = u.items.iter_mut().find(|i| i.kind == kind && !i.deleted && i.object["id"] == id) else {
        return item_not_found(headers);
    };
    store::merge(&mut item.object, &fields);
    item.object["lastModifiedDateTime"] = Value::from(store::iso(Utc::now()));
    item.seq = seq;
    Json(item.object.clone()).into_response()
}

fn delete(state: &GraphState, headers: &HeaderMap, user: &str, kind: Kind, id: &str) -> Response {
    let mut store = state.store();
    let seq = store.next_seq();
    let Some(u) = store.user_mut(user) else { return invalid_user(user, headers) };
    let Some(item) = u.items.iter_mut().find(|i| i.kind == kind && !i.deleted && i.object["id"] == id) else {
        return item_not_found(headers);
    };
    item.deleted = true;
    item.seq = seq;
    StatusCode::NO_CONTENT.into_response()
}

// ---- users -----------------------------------------------------------------

async fn list_users(State(s): S, Extension(Origin(origin)): Extension<Origin>, RawQuery(q): RawQuery, headers: HeaderMap) -> Response {
    let p = params(q.as_deref());
    let top = page_size(&p, &headers, 100).unwrap_or(100);
    let skip: usize = p.get("$skiptoken").and_then(|s| s.parse().ok()).unwrap_or(0);
    let store = s.store();
    let users: Vec<Value> = store.users.iter().skip(skip).take(top).map(|u| select(&u.object, p.get("$select"))).collect();
    let mut body = json!({ "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users", "value": users });
    if skip + top < store.users.len() {
        body["@odata.nextLink"] = Value::from(link(&origin, "/v1.0/users", &[("$top".into(), top.to_string()), ("$skiptoken".into(), (skip + top).to_string())]));
    }
    Json(body).into_response()
}

async fn get_user(State(s): S, Path(user): Path<String>, headers: HeaderMap) -> Response {
    let mut store = s.store();
    match store.user_mut(&user) {
        Some(u) => {
            let mut o = u.object.clone();
            o["@odata.context"] = Value::from("https://graph.microsoft.com/v1.0/$metadata#users/$entity");
            Json(o).into_response()
        }
        None => graph_error(
            StatusCode::NOT_FOUND,
            "Request_ResourceNotFound",
            &format!("Resource '{user}' does not exist or one of its queried reference-property objects are not present."),
            crid(&headers),
        ),
    }
}

// ---- mail ------------------------------------------------------------------

async fn list_messages(State(s): S, Path(user): Path<String>, r: Request) -> Response {
    list(&s, &ctx(r).await, &user, Kind::Message, None)
}
async fn list_folder(State(s): S, Path((user, folder)): Path<(String, String)>, r: Request) -> Response {
    list(&s, &ctx(r).await, &user, Kind::Message, Some(&folder))
}
async fn delta_messages(State(s): S, Path(user): Path<String>, r: Request) -> Response {
    delta(&s, &ctx(r).await, &user, Kind::Message, None)
}
async fn delta_folder(State(s): S, Path((user, folder)): Path<(String, String)>, r: Request) -> Response {
    delta(&s, &ctx(r).await, &user, Kind::Message, Some(&folder))
}
async fn get_message(State(s): S, Path((user, id)): Path<(String, String)>, RawQuery(q): RawQuery, h: HeaderMap) -> Response {
    get_item(&s, &h, &user, Kind::Message, &id, q.as_deref())
}
async fn create_message(State(s): S, Path(user): Path<String>, h: HeaderMap, body: Bytes) -> Response {
    create(&s, &h, &user, Kind::Message, "drafts", &body)
}
async fn create_in_folder(State(s): S, Path((user, folder)): Path<(String, String)>, h: HeaderMap, body: Bytes) -> Response {
    create(&s, &h, &user, Kind::Message, &folder.to_lowercase(), &body)
}
async fn patch_message(State(s): S, Path((user, id)): Path<(String, String)>, h: HeaderMap, body: Bytes) -> Response {
    patch(&s, &h, &user, Kind::Message, &id, &body)
}
async fn delete_message(State(s): S, Path((user, id)): Path<(String, String)>, h: HeaderMap) -> Response {
    delete(&s, &h, &user, Kind::Message, &id)
}

/// `POST /users/{id}/sendMail`: 202, a copy in Sent Items, delivery to known users.
async fn send_mail(State(s): S, Path(user): Path<String>, h: HeaderMap, body: Bytes) -> Response {
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return graph_error(StatusCode::BAD_REQUEST, "BadRequest", "Empty Payload. JSON content expected.", crid(&h));
    };
    // Action parameters are matched case-insensitively, as Graph does (the
    // SDKs send `Message` and `SaveToSentItems`).
    let param = |name: &str| request.as_object().and_then(|o| o.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v));
    let Some(message) = param("message").filter(|m| m.is_object()) else {
        return graph_error(StatusCode::BAD_REQUEST, "ErrorInvalidParameter", "The value of the parameter 'Message' is empty.", crid(&h));
    };
    let to: Vec<Value> = message["toRecipients"].as_array().cloned().unwrap_or_default();
    let addresses: Vec<String> = to.iter().filter_map(|r| r["emailAddress"]["address"].as_str()).map(str::to_owned).collect();
    if addresses.is_empty() || addresses.iter().any(|a| !a.contains('@')) {
        return graph_error(StatusCode::BAD_REQUEST, "ErrorInvalidRecipients",
            "At least one recipient is not valid., Recipient '' is not resolved. All recipients must be resolved before a message can be submitted.", crid(&h));
    }
    let save = param("saveToSentItems").and_then(Value::as_bool).unwrap_or(true);
    let mut store = s.store();
    let Some(sender) = store.user_mut(&user).map(|u| u.object.clone()) else { return invalid_user(&user, &h) };
    let from = json!({ "emailAddress": { "name": sender["displayName"], "address": sender["mail"] } });
    let subject = message["subject"].as_str().unwrap_or_default();
    let content = message["body"]["content"].as_str().unwrap_or_default();
    let build = |folder: &str| {
        let mut m = store::message(subject, content, from.clone(), to.clone(), Utc::now(), folder);
        if let Some(b) = message.get("body").filter(|b| b.is_object()) {
            m["body"] = b.clone();
        }
        m["ccRecipients"] = message.get("ccRecipients").cloned().unwrap_or(json!([]));
        m
    };
    if save {
        let seq = store.next_seq();
        let object = build("sentitems");
        if let Some(u) = store.user_mut(&user) {
            u.items.push(Item { kind: Kind::Message, folder: "sentitems".into(), seq, deleted: false, object });
        }
    }
    for address in &addresses {
        let seq = store.next_seq();
        let object = build("inbox");
        if let Some(u) = store.user_mut(address) {
            u.items.push(Item { kind: Kind::Message, folder: "inbox".into(), seq, deleted: false, object });
        }
    }
    StatusCode::ACCEPTED.into_response()
}

// ---- contacts and events ----------------------------------------------------

async fn list_contacts(State(s): S, Path(user): Path<String>, r: Request) -> Response {
    list(&s, &ctx(r).await, &user, Kind::Contact, None)
}
async fn delta_contacts(State(s): S, Path(user): Path<String>, r: Request) -> Response {
    delta(&s, &ctx(r).await, &user, Kind::Contact, None)
}
async fn delta_contact_folder(State(s): S, Path((user, _folder)): Path<(String, String)>, r: Request) -> Response {
    delta(&s, &ctx(r).await, &user, Kind::Contact, None)
}
async fn get_contact(State(s): S, Path((user, id)): Path<(String, String)>, RawQuery(q): RawQuery, h: HeaderMap) -> Response {
    get_item(&s, &h, &user, Kind::Contact, &id, q.as_deref())
}
async fn create_contact(State(s): S, Path(user): Path<String>, h: HeaderMap, body: Bytes) -> Response {
    create(&s, &h, &user, Kind::Contact, "contacts", &body)
}
async fn patch_contact(State(s): S, Path((user, id)): Path<(String, String)>, h: HeaderMap, body: Bytes) -> Response {
    patch(&s, &h, &user, Kind::Contact, &id, &body)
}
async fn delete_contact(State(s): S, Path((user, id)): Path<(String, String)>, h: HeaderMap) -> Response {
    delete(&s, &h, &user, Kind::Contact, &id)
}
async fn list_events(State(s): S, Path(user): Path<String>, r: Request) -> Response {
    list(&s, &ctx(r).await, &user, Kind::Event, None)
}
async fn get_event(State(s): S, Path((user, id)): Path<(String, String)>, RawQuery(q): RawQuery, h: HeaderMap) -> Response {
    get_item(&s, &h, &user, Kind::Event, &id, q.as_deref())
}
async fn create_event(State(s): S, Path(user): Path<String>, h: HeaderMap, body: Bytes) -> Response {
    create(&s, &h, &user, Kind::Event, "calendar", &body)
}
async fn patch_event(State(s): S, Path((user, id)): Path<(String, String)>, h: HeaderMap, body: Bytes) -> Response {
    patch(&s, &h, &user, Kind::Event, &id, &body)
}
async fn delete_event(State(s): S, Path((user, id)): Path<(String, String)>, h: HeaderMap) -> Response {
    delete(&s, &h, &user, Kind::Event, &id)
}
