//! The `$count` path segment: `…/messages/$count`, `…/contacts/$count`,
//! `…/events/$count`, `mailFolders/{f}/messages/$count` and `/users/$count`
//! answer a plain number (`text/plain`), after `$filter` or `$search`.
//!
//! Graph splits here by kind of object, and so does the mock: mailbox items
//! (messages, personal contacts, events) count without ceremony, while
//! directory objects (users) count only in Graph's "advanced queries", with
//! `ConsistencyLevel: eventual`; without it `/users/$count` is a 400
//! `Request_BadRequest` and `/users?$count=true` silently leaves
//! `@odata.count` out (both as Graph's advanced-query documentation shows).

use std::sync::Arc;

use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::query::{ctx, matching, params};
use super::search::{self, Refusal};
use super::store::Kind;
use super::GraphState;

type S = State<Arc<GraphState>>;

pub(super) fn routes() -> Router<Arc<GraphState>> {
    Router::new()
        .route("/v1.0/users/$count", get(users))
        .route("/v1.0/users/{user}/messages/$count", get(messages))
        .route(
            "/v1.0/users/{user}/mailFolders/{folder}/messages/$count",
            get(folder_messages),
        )
        .route("/v1.0/users/{user}/contacts/$count", get(contacts))
        .route("/v1.0/users/{user}/events/$count", get(events))
}

/// A count as Graph sends it: the number as text.
fn number(n: usize) -> Response {
    let mut response = n.to_string().into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    response
}

async fn items(
    s: &GraphState,
    r: Request,
    user: &str,
    kind: Kind,
    folder: Option<&str>,
) -> Response {
    match matching(s, &ctx(r).await, user, kind, folder) {
        Ok(items) => number(items.len()),
        Err(response) => response,
    }
}

async fn messages(State(s): S, Path(user): Path<String>, r: Request) -> Response {
    items(&s, r, &user, Kind::Message, None).await
}

async fn folder_messages(
    State(s): S,
    Path((user, folder)): Path<(String, String)>,
    r: Request,
) -> Response {
    items(&s, r, &user, Kind::Message, Some(&folder)).await
}

async fn contacts(State(s): S, Path(user): Path<String>, r: Request) -> Response {
    items(&s, r, &user, Kind::Contact, None).await
}

async fn events(State(s): S, Path(user): Path<String>, r: Request) -> Response {
    items(&s, r, &user, Kind::Event, None).await
}

/// `GET /users/$count`: only with `ConsistencyLevel: eventual`.
async fn users(State(s): S, RawQuery(q): RawQuery, headers: HeaderMap) -> Response {
    if !search::eventual(&headers) {
        return Refusal::new(
            StatusCode::BAD_REQUEST,
            "Request_BadRequest",
            "$count is not currently supported.",
        )
        .respond(&headers);
    }
    let p = params(q.as_deref());
    if p.contains_key("$filter") {
        return Refusal::not_modelled("tekup-mocks does not model $filter on users.")
            .respond(&headers);
    }
    let predicate = match search::users(&p, &headers) {
        Ok(f) => f,
        Err(r) => return r.respond(&headers),
    };
    let store = s.store();
    number(
        store
            .users
            .iter()
            .filter(|u| predicate.as_ref().is_none_or(|f| f(&u.object)))
            .count(),
    )
}
