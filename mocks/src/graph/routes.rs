//! Graph routes: users, messages, mail folders, sendMail, contacts, events,
//! paging (`$top`/`$skip` with absolute `@odata.nextLink`) and delta queries;
//! the routes of `count`, `attachments` and `batch` are merged in here, under
//! the same bearer-token check.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use chrono::Utc;
use serde_json::{json, Value};

use super::query::{
    create, ctx, delete, delta, filter, get_item, link, list, page_size, params, patch, select,
};
use super::store::{self, Item, Kind};
use super::{graph_error, GraphState};
use crate::server::{header_str, Origin};

type S = State<Arc<GraphState>>;

pub(super) fn router(state: Arc<GraphState>) -> Router {
    let api = Router::new()
        .route("/v1.0/users", get(list_users))
        .route("/v1.0/users/{user}", get(get_user))
        .route(
            "/v1.0/users/{user}/messages",
            get(list_messages).post(create_message),
        )
        // The SDKs call OData functions with parentheses (`delta()`); plain
        // `delta` is what older clients and hand-written URLs use.
        .route("/v1.0/users/{user}/messages/delta", get(delta_messages))
        .route("/v1.0/users/{user}/messages/delta()", get(delta_messages))
        .route(
            "/v1.0/users/{user}/messages/{id}",
            get(get_message).patch(patch_message).delete(delete_message),
        )
        .route(
            "/v1.0/users/{user}/mailFolders/{folder}/messages",
            get(list_folder).post(create_in_folder),
        )
        .route(
            "/v1.0/users/{user}/mailFolders/{folder}/messages/delta",
            get(delta_folder),
        )
        .route(
            "/v1.0/users/{user}/mailFolders/{folder}/messages/delta()",
            get(delta_folder),
        )
        .route(
            "/v1.0/users/{user}/mailFolders/{folder}/messages/{id}",
            get(get_folder_message)
                .patch(patch_folder_message)
                .delete(delete_folder_message),
        )
        .route("/v1.0/users/{user}/sendMail", post(send_mail))
        .route(
            "/v1.0/users/{user}/contacts",
            get(list_contacts).post(create_contact),
        )
        .route("/v1.0/users/{user}/contacts/delta", get(delta_contacts))
        .route("/v1.0/users/{user}/contacts/delta()", get(delta_contacts))
        .route(
            "/v1.0/users/{user}/contactFolders/{folder}/contacts/delta",
            get(delta_contact_folder),
        )
        .route(
            "/v1.0/users/{user}/contactFolders/{folder}/contacts/delta()",
            get(delta_contact_folder),
        )
        .route(
            "/v1.0/users/{user}/contacts/{id}",
            get(get_contact).patch(patch_contact).delete(delete_contact),
        )
        .route(
            "/v1.0/users/{user}/events",
            get(list_events).post(create_event),
        )
        .route(
            "/v1.0/users/{user}/events/{id}",
            get(get_event).patch(patch_event).delete(delete_event),
        )
        .route("/v1.0/me", get(me))
        .route("/v1.0/me/{*rest}", get(me).post(me).patch(me).delete(me))
        .merge(super::count::routes())
        .merge(super::attachments::routes())
        .merge(super::batch::routes())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            super::auth,
        ))
        .with_state(state.clone());
    let login = Router::new()
        .route("/{tenant}/oauth2/v2.0/token", post(super::token))
        .route(
            "/{tenant}/v2.0/.well-known/openid-configuration",
            get(super::openid_configuration),
        )
        .with_state(state);
    api.merge(login)
}

pub(super) fn crid(headers: &HeaderMap) -> Option<&str> {
    header_str(headers, "client-request-id")
}

async fn me(headers: HeaderMap) -> Response {
    graph_error(
        StatusCode::BAD_REQUEST,
        "BadRequest",
        "/me request is only valid with delegated authentication flow.",
        crid(&headers),
    )
}

pub(super) fn invalid_user(user: &str, headers: &HeaderMap) -> Response {
    graph_error(
        StatusCode::NOT_FOUND,
        "ErrorInvalidUser",
        &format!("The requested user '{user}' is invalid."),
        crid(headers),
    )
}

pub(super) fn item_not_found(headers: &HeaderMap) -> Response {
    graph_error(
        StatusCode::NOT_FOUND,
        "ErrorItemNotFound",
        "The specified object was not found in the store.",
        crid(headers),
    )
}

// ---- users -----------------------------------------------------------------

/// `GET /users`: `$filter` (the forms of [`super::query::filter`]),
/// `$search` and `$count=true` (both advanced queries: with
/// `ConsistencyLevel: eventual` only; without it Graph refuses `$search` and
/// silently leaves `@odata.count` out), `$select`, `$top` and `$skiptoken`.
async fn list_users(
    State(s): S,
    Extension(Origin(origin)): Extension<Origin>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    let p = params(q.as_deref());
    let top = page_size(&p, &headers, 100).unwrap_or(100);
    let skip: usize = p
        .get("$skiptoken")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let searched = match super::search::users(&p, &headers) {
        Ok(f) => f,
        Err(r) => return r.respond(&headers),
    };
    let filtered = match p.get("$filter").map(|f| filter(f)).transpose() {
        Ok(f) => f,
        Err(m) => {
            return graph_error(
                StatusCode::BAD_REQUEST,
                "Request_UnsupportedQuery",
                &m,
                crid(&headers),
            )
        }
    };
    let store = s.store();
    let matched: Vec<&Value> = store
        .users
        .iter()
        .map(|u| &u.object)
        .filter(|u| searched.as_ref().is_none_or(|f| f(u)))
        .filter(|u| filtered.as_ref().is_none_or(|f| f(u)))
        .collect();
    let users: Vec<Value> = matched
        .iter()
        .skip(skip)
        .take(top)
        .map(|u| select(u, p.get("$select")))
        .collect();
    let mut body = json!({ "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users", "value": users });
    if super::search::eventual(&headers) && p.get("$count").is_some_and(|c| c == "true") {
        body["@odata.count"] = Value::from(matched.len());
    }
    if skip + top < matched.len() {
        let mut q: Vec<(String, String)> = p
            .iter()
            .filter(|(k, _)| *k != "$skiptoken" && *k != "$top")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        q.push(("$top".into(), top.to_string()));
        q.push(("$skiptoken".into(), (skip + top).to_string()));
        body["@odata.nextLink"] = Value::from(link(&origin, "/v1.0/users", &q));
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
async fn list_folder(
    State(s): S,
    Path((user, folder)): Path<(String, String)>,
    r: Request,
) -> Response {
    list(&s, &ctx(r).await, &user, Kind::Message, Some(&folder))
}
async fn delta_messages(State(s): S, Path(user): Path<String>, r: Request) -> Response {
    delta(&s, &ctx(r).await, &user, Kind::Message, None)
}
async fn delta_folder(
    State(s): S,
    Path((user, folder)): Path<(String, String)>,
    r: Request,
) -> Response {
    delta(&s, &ctx(r).await, &user, Kind::Message, Some(&folder))
}
async fn get_message(
    State(s): S,
    Path((user, id)): Path<(String, String)>,
    RawQuery(q): RawQuery,
    h: HeaderMap,
) -> Response {
    get_item(&s, &h, &user, Kind::Message, &id, q.as_deref())
}
async fn create_message(
    State(s): S,
    Path(user): Path<String>,
    h: HeaderMap,
    body: Bytes,
) -> Response {
    create(&s, &h, &user, Kind::Message, "drafts", &body)
}
async fn create_in_folder(
    State(s): S,
    Path((user, folder)): Path<(String, String)>,
    h: HeaderMap,
    body: Bytes,
) -> Response {
    create(&s, &h, &user, Kind::Message, &folder.to_lowercase(), &body)
}
async fn patch_message(
    State(s): S,
    Path((user, id)): Path<(String, String)>,
    h: HeaderMap,
    body: Bytes,
) -> Response {
    patch(&s, &h, &user, Kind::Message, &id, &body)
}
async fn delete_message(
    State(s): S,
    Path((user, id)): Path<(String, String)>,
    h: HeaderMap,
) -> Response {
    delete(&s, &h, &user, Kind::Message, &id)
}

// A message's id is unique in the mailbox, so its folder in the path only
// says where the client found it.
async fn get_folder_message(
    State(s): S,
    Path((user, _folder, id)): Path<(String, String, String)>,
    RawQuery(q): RawQuery,
    h: HeaderMap,
) -> Response {
    get_item(&s, &h, &user, Kind::Message, &id, q.as_deref())
}
async fn patch_folder_message(
    State(s): S,
    Path((user, _folder, id)): Path<(String, String, String)>,
    h: HeaderMap,
    body: Bytes,
) -> Response {
    patch(&s, &h, &user, Kind::Message, &id, &body)
}
async fn delete_folder_message(
    State(s): S,
    Path((user, _folder, id)): Path<(String, String, String)>,
    h: HeaderMap,
) -> Response {
    delete(&s, &h, &user, Kind::Message, &id)
}

/// `POST /users/{id}/sendMail`: 202, a copy in Sent Items, delivery to known users.
async fn send_mail(State(s): S, Path(user): Path<String>, h: HeaderMap, body: Bytes) -> Response {
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return graph_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "Empty Payload. JSON content expected.",
            crid(&h),
        );
    };
    // Action parameters are matched case-insensitively, as Graph does (the
    // SDKs send `Message` and `SaveToSentItems`).
    let param = |name: &str| {
        request.as_object().and_then(|o| {
            o.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v)
        })
    };
    let Some(message) = param("message").filter(|m| m.is_object()) else {
        return graph_error(
            StatusCode::BAD_REQUEST,
            "ErrorInvalidParameter",
            "The value of the parameter 'Message' is empty.",
            crid(&h),
        );
    };
    let to: Vec<Value> = message["toRecipients"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let addresses: Vec<String> = to
        .iter()
        .filter_map(|r| r["emailAddress"]["address"].as_str())
        .map(str::to_owned)
        .collect();
    if addresses.is_empty() || addresses.iter().any(|a| !a.contains('@')) {
        return graph_error(StatusCode::BAD_REQUEST, "ErrorInvalidRecipients",
            "At least one recipient is not valid., Recipient '' is not resolved. All recipients must be resolved before a message can be submitted.", crid(&h));
    }
    let save = param("saveToSentItems")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let mut store = s.store();
    let Some(sender) = store.user_mut(&user).map(|u| u.object.clone()) else {
        return invalid_user(&user, &h);
    };
    let from =
        json!({ "emailAddress": { "name": sender["displayName"], "address": sender["mail"] } });
    let subject = message["subject"].as_str().unwrap_or_default();
    let content = message["body"]["content"].as_str().unwrap_or_default();
    let build = |folder: &str| {
        let mut m = store::message(
            subject,
            content,
            from.clone(),
            to.clone(),
            Utc::now(),
            folder,
        );
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
            u.items.push(Item {
                kind: Kind::Message,
                folder: "sentitems".into(),
                seq,
                created: seq,
                deleted: false,
                object,
            });
        }
    }
    for address in &addresses {
        let seq = store.next_seq();
        let object = build("inbox");
        if let Some(u) = store.user_mut(address) {
            u.items.push(Item {
                kind: Kind::Message,
                folder: "inbox".into(),
                seq,
                created: seq,
                deleted: false,
                object,
            });
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
async fn delta_contact_folder(
    State(s): S,
    Path((user, _folder)): Path<(String, String)>,
    r: Request,
) -> Response {
    delta(&s, &ctx(r).await, &user, Kind::Contact, None)
}
async fn get_contact(
    State(s): S,
    Path((user, id)): Path<(String, String)>,
    RawQuery(q): RawQuery,
    h: HeaderMap,
) -> Response {
    get_item(&s, &h, &user, Kind::Contact, &id, q.as_deref())
}
async fn create_contact(
    State(s): S,
    Path(user): Path<String>,
    h: HeaderMap,
    body: Bytes,
) -> Response {
    create(&s, &h, &user, Kind::Contact, "contacts", &body)
}
async fn patch_contact(
    State(s): S,
    Path((user, id)): Path<(String, String)>,
    h: HeaderMap,
    body: Bytes,
) -> Response {
    patch(&s, &h, &user, Kind::Contact, &id, &body)
}
async fn delete_contact(
    State(s): S,
    Path((user, id)): Path<(String, String)>,
    h: HeaderMap,
) -> Response {
    delete(&s, &h, &user, Kind::Contact, &id)
}
async fn list_events(State(s): S, Path(user): Path<String>, r: Request) -> Response {
    list(&s, &ctx(r).await, &user, Kind::Event, None)
}
async fn get_event(
    State(s): S,
    Path((user, id)): Path<(String, String)>,
    RawQuery(q): RawQuery,
    h: HeaderMap,
) -> Response {
    get_item(&s, &h, &user, Kind::Event, &id, q.as_deref())
}
async fn create_event(
    State(s): S,
    Path(user): Path<String>,
    h: HeaderMap,
    body: Bytes,
) -> Response {
    create(&s, &h, &user, Kind::Event, "calendar", &body)
}
async fn patch_event(
    State(s): S,
    Path((user, id)): Path<(String, String)>,
    h: HeaderMap,
    body: Bytes,
) -> Response {
    patch(&s, &h, &user, Kind::Event, &id, &body)
}
async fn delete_event(
    State(s): S,
    Path((user, id)): Path<(String, String)>,
    h: HeaderMap,
) -> Response {
    delete(&s, &h, &user, Kind::Event, &id)
}
