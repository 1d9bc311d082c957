//! Graph collections: paged lists (`$top`, `$skip`, `$filter`, `$search`,
//! `$select`, `$count=true`, absolute `@odata.nextLink`), delta rounds
//! (with `changeType`), and item create/read/update/delete.

use std::collections::BTreeMap;

use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use serde_json::{json, Value};

use super::routes::{crid, invalid_user, item_not_found};
use super::search::{self, Refusal};
use super::store::{self, Item, Kind};
use super::{graph_error, GraphState};
use crate::server::{header_str, Origin};

pub(super) fn params(raw: Option<&str>) -> BTreeMap<String, String> {
    form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

pub(super) fn encode(v: &str) -> String {
    form_urlencoded::byte_serialize(v.as_bytes()).collect()
}

/// `origin + path + ?query`, keeping `$` keys readable as Graph does.
pub(super) fn link(origin: &str, path: &str, query: &[(String, String)]) -> String {
    let q: Vec<String> = query
        .iter()
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect();
    format!("{origin}{path}?{}", q.join("&"))
}

pub(super) fn page_size(
    p: &BTreeMap<String, String>,
    headers: &HeaderMap,
    default: usize,
) -> Result<usize, String> {
    if let Some(top) = p.get("$top") {
        return top
            .parse::<usize>()
            .ok()
            .filter(|t| (1..=1000).contains(t))
            .ok_or_else(|| format!("Invalid value '{top}' for query parameter $top."));
    }
    let pref = header_str(headers, "prefer").and_then(|p| {
        p.split(',')
            .find_map(|x| x.trim().strip_prefix("odata.maxpagesize=")?.parse().ok())
    });
    Ok(pref.unwrap_or(default))
}

pub(super) fn field<'a>(object: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('/').try_fold(object, |v, k| v.get(k))
}

/// A compiled `$filter` or `$search`.
pub(super) type Predicate = Box<dyn Fn(&Value) -> bool + Send>;

/// The `$filter` forms clients of this platform use.
pub(super) fn filter(expr: &str) -> Result<Predicate, String> {
    let expr = expr.trim().to_owned();
    let any = regex::Regex::new(r"^emailAddresses/any\((\w+):\s*\w+/address eq '(.*)'\)$")
        .map_err(|e| e.to_string())?;
    if let Some(c) = any.captures(&expr) {
        let wanted = c[2].to_lowercase();
        return Ok(Box::new(move |o| {
            o["emailAddresses"].as_array().is_some_and(|a| {
                a.iter().any(|e| {
                    e["address"]
                        .as_str()
                        .is_some_and(|x| x.to_lowercase() == wanted)
                })
            })
        }));
    }
    let eq =
        regex::Regex::new(r"^([\w/]+) eq (?:'(.*)'|(true|false))$").map_err(|e| e.to_string())?;
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
    let starts =
        regex::Regex::new(r"^startswith\(([\w/]+),\s*'(.*)'\)$").map_err(|e| e.to_string())?;
    if let Some(c) = starts.captures(&expr) {
        let path = c[1].to_owned();
        let prefix = c[2].to_lowercase();
        return Ok(Box::new(move |o| {
            field(o, &path)
                .and_then(Value::as_str)
                .is_some_and(|s| s.to_lowercase().starts_with(&prefix))
        }));
    }
    Err(format!("Invalid filter clause: the mock supports `x eq 'v'`, `startswith(x,'v')` and `emailAddresses/any(a:a/address eq 'v')`, not `{expr}`."))
}

pub(super) fn select(object: &Value, fields: Option<&String>) -> Value {
    let Some(fields) = fields else {
        return object.clone();
    };
    let mut out = serde_json::Map::new();
    for key in ["@odata.etag", "id"]
        .into_iter()
        .chain(fields.split(',').map(str::trim))
    {
        if let Some(v) = object.get(key) {
            out.insert(key.to_owned(), v.clone());
        }
    }
    Value::Object(out)
}

pub(super) fn context(kind: Kind, user: &str) -> String {
    let set = match kind {
        Kind::Message => "messages",
        Kind::Contact => "contacts",
        Kind::Event => "events",
    };
    format!("https://graph.microsoft.com/v1.0/$metadata#users('{user}')/{set}")
}

pub(super) struct Ctx {
    origin: String,
    path: String,
    query: Option<String>,
    headers: HeaderMap,
}

pub(super) async fn ctx(request: Request) -> Ctx {
    Ctx {
        origin: request
            .extensions()
            .get::<Origin>()
            .map(|o| o.0.clone())
            .unwrap_or_default(),
        path: request.uri().path().to_owned(),
        query: request.uri().query().map(str::to_owned),
        headers: request.headers().clone(),
    }
}

/// The `$filter`/`$search` predicate of a request on a collection of `kind`.
fn predicate(p: &BTreeMap<String, String>, kind: Kind) -> Result<Option<Predicate>, Refusal> {
    let searched = match kind {
        Kind::Message => search::messages(p)?,
        Kind::Contact if p.contains_key("$search") => return Err(search::unsupported("contacts")),
        Kind::Event if p.contains_key("$search") => return Err(search::unsupported("events")),
        Kind::Contact | Kind::Event => None,
    };
    if searched.is_some() {
        return Ok(searched);
    }
    p.get("$filter")
        .map(|f| filter(f))
        .transpose()
        .map_err(|m| Refusal::new(StatusCode::BAD_REQUEST, "ErrorInvalidUrlQueryFilter", m))
}

/// The live items of one kind (in `folder`, if given) that the request's
/// `$filter` or `$search` selects, newest message first.
#[expect(
    clippy::result_large_err,
    reason = "an axum Response is the natural rejection of a handler helper"
)]
pub(super) fn matching(
    state: &GraphState,
    c: &Ctx,
    user: &str,
    kind: Kind,
    folder: Option<&str>,
) -> Result<Vec<Value>, Response> {
    let p = params(c.query.as_deref());
    let predicate = predicate(&p, kind).map_err(|r| r.respond(&c.headers))?;
    let mut store = state.store();
    let Some(u) = store.user_mut(user) else {
        return Err(invalid_user(user, &c.headers));
    };
    let mut items: Vec<Value> = u
        .items
        .iter()
        .filter(|i| {
            i.kind == kind && !i.deleted && folder.is_none_or(|f| i.folder.eq_ignore_ascii_case(f))
        })
        .map(|i| &i.object)
        .filter(|o| predicate.as_ref().is_none_or(|f| f(o)))
        .cloned()
        .collect();
    if kind == Kind::Message {
        items.sort_by(|a, b| {
            b["receivedDateTime"]
                .as_str()
                .cmp(&a["receivedDateTime"].as_str())
        });
    }
    Ok(items)
}

/// A paged list of one kind of item; `$count=true` adds `@odata.count` (the
/// whole match, not the page), which mailbox items serve without
/// `ConsistencyLevel` as Graph does.
pub(super) fn list(
    state: &GraphState,
    c: &Ctx,
    user: &str,
    kind: Kind,
    folder: Option<&str>,
) -> Response {
    let p = params(c.query.as_deref());
    let top = match page_size(&p, &c.headers, 10) {
        Ok(t) => t,
        Err(m) => return graph_error(StatusCode::BAD_REQUEST, "BadRequest", &m, crid(&c.headers)),
    };
    let skip: usize = p.get("$skip").and_then(|s| s.parse().ok()).unwrap_or(0);
    let items = match matching(state, c, user, kind, folder) {
        Ok(i) => i,
        Err(r) => return r,
    };
    let total = items.len();
    let page: Vec<Value> = items
        .iter()
        .skip(skip)
        .take(top)
        .map(|o| select(o, p.get("$select")))
        .collect();
    let mut body = json!({ "@odata.context": context(kind, user), "value": page });
    if p.get("$count")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    {
        body["@odata.count"] = Value::from(total);
    }
    if skip + top < total {
        let mut q: Vec<(String, String)> = p
            .iter()
            .filter(|(k, _)| *k != "$skip")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        q.push(("$skip".into(), (skip + top).to_string()));
        body["@odata.nextLink"] = Value::from(link(&c.origin, &c.path, &q));
    }
    Json(body).into_response()
}

/// A delta round: pages of changes since a token, ending in a deltaLink.
pub(super) fn delta(
    state: &GraphState,
    c: &Ctx,
    user: &str,
    kind: Kind,
    folder: Option<&str>,
) -> Response {
    let p = params(c.query.as_deref());
    let top = page_size(&p, &c.headers, 10).unwrap_or(10);
    let change_type = p.get("changeType").map(|t| t.to_ascii_lowercase());
    if let Some(t) = change_type
        .as_deref()
        .filter(|t| !matches!(*t, "created" | "updated" | "deleted"))
    {
        return graph_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            &format!("Invalid value '{t}' for changeType: use created, updated or deleted."),
            crid(&c.headers),
        );
    }
    let mut store = state.store();
    let current = store.seq;
    let (since, offset, upto) = if let Some(token) = p.get("$skiptoken") {
        let parts: Vec<u64> = token.split('.').filter_map(|x| x.parse().ok()).collect();
        match parts.as_slice() {
            [s, o, u] => (*s, *o as usize, *u),
            _ => {
                return graph_error(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    "The skip token is invalid.",
                    crid(&c.headers),
                )
            }
        }
    } else if let Some(token) = p.get("$deltatoken") {
        match token.parse() {
            Ok(s) => (s, 0, current),
            Err(_) => {
                return graph_error(
                    StatusCode::GONE,
                    "SyncStateNotFound",
                    "The sync state generation is no longer valid. Please restart the sync.",
                    crid(&c.headers),
                )
            }
        }
    } else {
        (0, 0, current)
    };
    let Some(u) = store.user_mut(user) else {
        return invalid_user(user, &c.headers);
    };
    let mut changed: Vec<&Item> = u
        .items
        .iter()
        .filter(|i| {
            i.kind == kind
                && i.seq > since
                && i.seq <= upto
                && folder.is_none_or(|f| i.folder.eq_ignore_ascii_case(f))
        })
        .filter(|i| since > 0 || !i.deleted)
        .filter(|i| match change_type.as_deref() {
            Some("created") => !i.deleted && i.created > since,
            Some("updated") => !i.deleted && i.created <= since,
            Some("deleted") => i.deleted,
            _ => true,
        })
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
    let mut body =
        json!({ "@odata.context": format!("{}/delta", context(kind, user)), "value": page });
    // Graph keeps `$select` and `changeType` in its opaque state token; the
    // mock carries them beside its own token so later rounds keep them.
    let kept = |token: (String, String)| -> Vec<(String, String)> {
        ["$select", "changeType"]
            .iter()
            .filter_map(|k| p.get(*k).map(|v| ((*k).to_owned(), v.clone())))
            .chain(std::iter::once(token))
            .collect()
    };
    if offset + top < total {
        body["@odata.nextLink"] = Value::from(link(
            &c.origin,
            &c.path,
            &kept((
                "$skiptoken".into(),
                format!("{since}.{}.{upto}", offset + top),
            )),
        ));
    } else {
        body["@odata.deltaLink"] = Value::from(link(
            &c.origin,
            &c.path,
            &kept(("$deltatoken".into(), upto.to_string())),
        ));
    }
    Json(body).into_response()
}

pub(super) fn get_item(
    state: &GraphState,
    headers: &HeaderMap,
    user: &str,
    kind: Kind,
    id: &str,
    query: Option<&str>,
) -> Response {
    let p = params(query);
    let mut store = state.store();
    let Some(u) = store.user_mut(user) else {
        return invalid_user(user, headers);
    };
    match u
        .items
        .iter()
        .find(|i| i.kind == kind && !i.deleted && i.object["id"] == id)
    {
        Some(i) => Json(select(&i.object, p.get("$select"))).into_response(),
        None => item_not_found(headers),
    }
}

pub(super) fn create(
    state: &GraphState,
    headers: &HeaderMap,
    user: &str,
    kind: Kind,
    folder: &str,
    body: &[u8],
) -> Response {
    let Ok(fields @ Value::Object(_)) = serde_json::from_slice::<Value>(body) else {
        return graph_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "Empty Payload. JSON content expected.",
            crid(headers),
        );
    };
    let mut store = state.store();
    let seq = store.next_seq();
    let Some(u) = store.user_mut(user) else {
        return invalid_user(user, headers);
    };
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
    u.items.push(Item {
        kind,
        folder: folder.to_owned(),
        seq,
        created: seq,
        deleted: false,
        object: object.clone(),
    });
    (StatusCode::CREATED, Json(object)).into_response()
}

pub(super) fn patch(
    state: &GraphState,
    headers: &HeaderMap,
    user: &str,
    kind: Kind,
    id: &str,
    body: &[u8],
) -> Response {
    let Ok(fields @ Value::Object(_)) = serde_json::from_slice::<Value>(body) else {
        return graph_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "Empty Payload. JSON content expected.",
            crid(headers),
        );
    };
    let mut store = state.store();
    let seq = store.next_seq();
    let Some(u) = store.user_mut(user) else {
        return invalid_user(user, headers);
    };
    let Some(item) = u
        .items
        .iter_mut()
        .find(|i| i.kind == kind && !i.deleted && i.object["id"] == id)
    else {
        return item_not_found(headers);
    };
    store::merge(&mut item.object, &fields);
    item.object["lastModifiedDateTime"] = Value::from(store::iso(Utc::now()));
    item.seq = seq;
    Json(item.object.clone()).into_response()
}

pub(super) fn delete(
    state: &GraphState,
    headers: &HeaderMap,
    user: &str,
    kind: Kind,
    id: &str,
) -> Response {
    let mut store = state.store();
    let seq = store.next_seq();
    let Some(u) = store.user_mut(user) else {
        return invalid_user(user, headers);
    };
    let Some(item) = u
        .items
        .iter_mut()
        .find(|i| i.kind == kind && !i.deleted && i.object["id"] == id)
    else {
        return item_not_found(headers);
    };
    item.deleted = true;
    item.seq = seq;
    StatusCode::NO_CONTENT.into_response()
}
