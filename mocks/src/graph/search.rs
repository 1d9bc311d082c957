//! `$search`: real filtering on messages and users, or a refusal.
//!
//! A mock that ignored `$search` would hand every message back and let a
//! client's search look as if it worked, so each request either filters or
//! is refused in Graph's error shape. What Graph itself refuses is mirrored
//! with its codes: `$search` with `$filter` (`SearchWithFilter`) or
//! `$orderby` (`SearchWithOrderBy`) on messages, and `$search` on users
//! without `ConsistencyLevel: eventual` (`Request_UnsupportedQuery`). Forms
//! Graph accepts but this mock does not model (KQL properties such as
//! `received:` or `size:`, `NOT`, parentheses, wildcards; `$search` on contacts
//! and events) answer 501 `NotImplemented` naming what is supported, so a
//! test can tell a mock limit from a Graph refusal.
//!
//! Messages: a bare term matches `from`, `subject` and `body` (Graph's
//! default search properties); `subject:`, `body:`, `from:`, `to:`, `cc:`,
//! `bcc:`, `participants:` and `recipients:` narrow it. A term is a word or
//! a quoted phrase; terms are joined by `AND` (also implicit, by a space)
//! and `OR` (binding looser). Matching is a
//! case-insensitive substring, where Exchange matches word prefixes: close
//! enough for tests, and it never matches less than Graph would.
//!
//! Users (directory objects): clauses `"property:value"`; `displayName`
//! matches the start of any of its words, other string properties match
//! their start, as Graph's tokenized directory search does.

use std::collections::BTreeMap;

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::Value;

use super::graph_error;
use super::query::Predicate;
use super::routes::crid;
use crate::server::header_str;

/// A refusal in Graph's error shape, built into a response with the
/// request's `client-request-id`.
#[derive(Debug)]
pub(super) struct Refusal {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl Refusal {
    pub(super) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// A form Graph accepts that this mock does not model.
    pub(super) fn not_modelled(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_IMPLEMENTED, "NotImplemented", message)
    }

    pub(super) fn respond(&self, headers: &HeaderMap) -> Response {
        graph_error(self.status, self.code, &self.message, crid(headers))
    }
}

/// True if the request opted in to eventual consistency (Graph's advanced
/// queries on directory objects).
pub(super) fn eventual(headers: &HeaderMap) -> bool {
    header_str(headers, "consistencylevel").is_some_and(|v| v.eq_ignore_ascii_case("eventual"))
}

/// The `$search` predicate for a message collection, if `$search` is given.
pub(super) fn messages(p: &BTreeMap<String, String>) -> Result<Option<Predicate>, Refusal> {
    let Some(raw) = p.get("$search") else {
        return Ok(None);
    };
    if p.contains_key("$filter") {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "SearchWithFilter",
            "The query parameter '$filter' is not supported with '$search'.",
        ));
    }
    if p.contains_key("$orderby") {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "SearchWithOrderBy",
            "The query parameter '$orderBy' is not supported with '$search'.",
        ));
    }
    let groups = parse(raw, MessageField::parse)?;
    Ok(Some(Box::new(move |m| {
        groups.iter().any(|all| {
            all.iter()
                .all(|(field, value)| field.texts(m).iter().any(|t| t.contains(value.as_str())))
        })
    })))
}

/// The `$search` predicate for `/users`, if `$search` is given.
pub(super) fn users(
    p: &BTreeMap<String, String>,
    headers: &HeaderMap,
) -> Result<Option<Predicate>, Refusal> {
    let Some(raw) = p.get("$search") else {
        return Ok(None);
    };
    if !eventual(headers) {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "Request_UnsupportedQuery",
            "Request with $search query parameter only works through MSGraph with a special request header: 'ConsistencyLevel: eventual'",
        ));
    }
    const PROPERTIES: [&str; 6] = [
        "displayName",
        "mail",
        "userPrincipalName",
        "givenName",
        "surname",
        "jobTitle",
    ];
    // Directory search quotes each clause: "displayName:ad" OR "mail:ad".
    let groups = parse(raw, |prop| {
        let Some(prop) = prop else {
            return Err(Refusal::not_modelled(
                "tekup-mocks supports $search on users as \"property:value\" clauses, e.g. $search=\"displayName:adele\".",
            ));
        };
        PROPERTIES
            .iter()
            .find(|p| p.eq_ignore_ascii_case(prop))
            .map(|p| (*p).to_owned())
            .ok_or_else(|| {
                Refusal::not_modelled(format!(
                    "tekup-mocks searches users by {} only, not by '{prop}'.",
                    PROPERTIES.join(", ")
                ))
            })
    })?;
    Ok(Some(Box::new(move |u| {
        groups.iter().any(|all| {
            all.iter().all(|(prop, value)| {
                let text = u[prop.as_str()].as_str().unwrap_or_default().to_lowercase();
                if prop == "displayName" {
                    text.split(|c: char| !c.is_alphanumeric())
                        .any(|w| w.starts_with(value.as_str()))
                        || text.starts_with(value.as_str())
                } else {
                    text.starts_with(value.as_str())
                }
            })
        })
    })))
}

/// Refusal for collections whose `$search` is not modelled.
pub(super) fn unsupported(set: &str) -> Refusal {
    Refusal::not_modelled(format!(
        "tekup-mocks serves $search on messages and users, not on {set}."
    ))
}

/// Splits a `$search` value into terms and operators. One pair of quotes
/// around the whole value is Graph's usual wrapping (`"pizza"`,
/// `"from:ana AND subject:quote"`); inside, or between clauses quoted one by
/// one (`"displayName:wa" OR "displayName:ad"`), a quoted run (also
/// `\"…\"`, or after `property:`) is one term with its spaces.
fn tokens(raw: &str) -> Result<Vec<String>, Refusal> {
    let trimmed = raw.trim();
    let wrapped = trimmed.len() >= 2
        && trimmed.starts_with('"')
        && trimmed.ends_with('"')
        && !trimmed.ends_with("\\\"")
        && !trimmed[1..trimmed.len() - 1]
            .replace("\\\"", "")
            .contains('"');
    let text = if wrapped {
        &trimmed[1..trimmed.len() - 1]
    } else {
        trimmed
    }
    .replace("\\\"", "\"");
    if text.matches('"').count() % 2 == 1 {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            format!("Syntax error: unbalanced quotes in the $search expression {raw}."),
        ));
    }
    let mut out = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in text.chars() {
        match c {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => {
                if !current.is_empty() {
                    out.push(std::mem::take(&mut current));
                }
            }
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    if out.iter().any(|t| t.contains(['(', ')', '*'])) {
        return Err(Refusal::not_modelled(format!(
            "tekup-mocks supports $search terms and phrases joined by AND/OR, without parentheses or wildcards; got {raw}."
        )));
    }
    Ok(out)
}

/// Parses a KQL subset into OR-groups of AND-ed `(field, lower-case value)`
/// terms; `field` resolves a term's property (`None` for a bare term).
fn parse<F>(
    raw: &str,
    field: impl Fn(Option<&str>) -> Result<F, Refusal>,
) -> Result<Vec<Vec<(F, String)>>, Refusal> {
    let mut groups = vec![Vec::new()];
    for token in tokens(raw)? {
        match token.as_str() {
            "OR" => groups.push(Vec::new()),
            "AND" => {}
            "NOT" => {
                return Err(Refusal::not_modelled(
                    "tekup-mocks does not support NOT in $search.",
                ))
            }
            _ => {
                let (prop, value) = match token.split_once(':') {
                    Some((p, v)) if !p.is_empty() && p.chars().all(char::is_alphanumeric) => {
                        (Some(p), v)
                    }
                    _ => (None, token.as_str()),
                };
                if value.is_empty() {
                    return Err(Refusal::new(
                        StatusCode::BAD_REQUEST,
                        "BadRequest",
                        format!("Syntax error: the $search term '{token}' has no value."),
                    ));
                }
                let f = field(prop)?;
                if let Some(group) = groups.last_mut() {
                    group.push((f, value.to_lowercase()));
                }
            }
        }
    }
    if groups.iter().any(Vec::is_empty) {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            format!(
                "Syntax error: the $search expression {raw} is empty or has a dangling AND/OR."
            ),
        ));
    }
    Ok(groups)
}

/// Which message properties a term looks at.
#[derive(Debug, Clone, Copy)]
enum MessageField {
    Default,
    Subject,
    Body,
    From,
    To,
    Cc,
    Bcc,
    Participants,
    Recipients,
}

impl MessageField {
    const SUPPORTED: &'static str = "subject, body, from, to, cc, bcc, participants, recipients";

    fn parse(prop: Option<&str>) -> Result<Self, Refusal> {
        let Some(prop) = prop else {
            return Ok(Self::Default);
        };
        Ok(match prop.to_ascii_lowercase().as_str() {
            "subject" => Self::Subject,
            "body" => Self::Body,
            "from" => Self::From,
            "to" => Self::To,
            "cc" => Self::Cc,
            "bcc" => Self::Bcc,
            "participants" => Self::Participants,
            "recipients" => Self::Recipients,
            _ => {
                return Err(Refusal::not_modelled(format!(
                    "tekup-mocks does not model the message search property '{prop}'; it supports bare terms and {}.",
                    Self::SUPPORTED
                )))
            }
        })
    }

    /// The lower-cased texts this field covers in message `m`.
    fn texts(self, m: &Value) -> Vec<String> {
        let one = |v: &Value| v.as_str().unwrap_or_default().to_lowercase();
        let people = |keys: &[&str]| -> Vec<String> {
            keys.iter()
                .flat_map(|k| match &m[*k] {
                    Value::Array(a) => a.clone(),
                    Value::Object(_) => vec![m[*k].clone()],
                    _ => Vec::new(),
                })
                .flat_map(|r| {
                    [
                        one(&r["emailAddress"]["name"]),
                        one(&r["emailAddress"]["address"]),
                    ]
                })
                .collect()
        };
        match self {
            Self::Subject => vec![one(&m["subject"])],
            Self::Body => vec![one(&m["body"]["content"])],
            Self::From => people(&["from"]),
            Self::To => people(&["toRecipients"]),
            Self::Cc => people(&["ccRecipients"]),
            Self::Bcc => people(&["bccRecipients"]),
            Self::Recipients => people(&["toRecipients", "ccRecipients", "bccRecipients"]),
            Self::Participants => {
                people(&["from", "toRecipients", "ccRecipients", "bccRecipients"])
            }
            Self::Default => {
                let mut t = people(&["from"]);
                t.push(one(&m["subject"]));
                t.push(one(&m["body"]["content"]));
                t
            }
        }
    }
}
