//! The `http` step: a request to a service as a tenant's app, with
//! expectations on the response and values saved from it.
//!
//! - `request`: the request line, headers and one body (`request.rs`);
//! - `run.rs`: sending it, checking the response, saving values;
//! - `body.rs`: query strings, cookies, form, multipart and raw bodies.

mod body;
mod request;
mod run;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::{json, Value as Json};

use super::{KindDef, StepCx, StepError};
use crate::scenario::ops::Place;
use crate::scenario::read::{keyed, string, string_list, Cx};
use crate::scenario::schema::{self, Key};
use crate::scenario::steps::{expected, status, tenant};
use crate::scenario::vars::Scope;
use crate::scenario::yaml::{Node, Value};

/// A request to a service as a tenant's app, with expectations.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HttpStep {
    pub service: String,
    pub tenant: Option<String>,
    pub app: Option<String>,
    pub request: Request,
    pub expect: Option<HttpExpect>,
    /// Variable name → JSONPath into the response body (`$.id`).
    pub save: BTreeMap<String, String>,
}

/// A request line, headers and body.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// `query:` pairs in file order, appended URL-encoded to `path` (a list
    /// value gives the name once per item).
    pub query: Vec<(String, String)>,
    pub json: Option<serde_json::Value>,
    /// A body other than JSON (at most one of `json` and `body`).
    pub body: Option<Body>,
    pub headers: BTreeMap<String, String>,
    /// `cookies:` sent as one `cookie` header.
    pub cookies: Vec<(String, String)>,
}

/// A request body other than JSON.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    /// `form:`, sent as `application/x-www-form-urlencoded`.
    Form(Vec<(String, String)>),
    /// `multipart:`, sent as `multipart/form-data`.
    Multipart(Vec<Part>),
    /// `body:` with its `content-type:`, sent as written.
    Raw { text: String, content_type: String },
}

/// One part of a multipart body.
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    pub name: String,
    pub content: PartContent,
    pub filename: Option<String>,
    pub content_type: Option<String>,
}

/// Where a part's content comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum PartContent {
    /// Text written in the file (`${...}` expanded).
    Text(String),
    /// A file's bytes, the path resolved against the scenario file's directory.
    File(PathBuf),
}

/// What a response must be; `json` matches as a subset.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HttpExpect {
    pub status: Option<u16>,
    /// Header name → text (a trailing `*` matches a prefix) or operators
    /// (`{ $regex: ... }`, `$absent`), as JSON.
    pub headers: BTreeMap<String, serde_json::Value>,
    pub json: Option<serde_json::Value>,
    pub json_schema: Option<serde_json::Value>,
    /// Texts the body must contain (for bodies that are not JSON, e.g. `/metrics`).
    pub body_contains: Vec<String>,
}

/// The keys of an `http` step.
const KEYS: [Key; 6] = [
    Key::new("service", schema::text)
        .help("The component called (`flow-api`); may come from `defaults`."),
    Key::new("tenant", or_none).help(
        "One of the scenario's tenants: its key and id are sent; `null` sends none (over `defaults`).",
    ),
    Key::new("app", or_none).help("Sent as `x-source-app`; `null` sends none (over `defaults`)."),
    Key::new("request", request::schema).required(),
    Key::new("expect", expect_schema)
        .help("What the response must be; without it, a 5xx still fails the step."),
    Key::new("save", save_schema)
        .help("Names to JSONPaths into the response body (`lead: $.id`), used later as `${lead}`."),
];

/// The keys of an `http` step's `expect`.
const EXPECT_KEYS: [Key; 5] = [
    Key::new("status", schema::status),
    Key::new("headers", request::header_expect_schema)
        .help("Header name to text (a trailing `*` matches a prefix) or operators."),
    Key::new("json", schema::expected).help("Matched as a subset of the JSON body."),
    Key::new("json-schema", schema::any).help("A JSON Schema the body must satisfy."),
    Key::new("body-contains", text_or_list).help("Texts the body must contain."),
];

fn or_none() -> Json {
    json!({ "type": ["string", "number", "boolean", "null"] })
}

fn expect_schema() -> Json {
    schema::object(&EXPECT_KEYS)
}

fn save_schema() -> Json {
    json!({ "type": "object", "additionalProperties": { "type": "string", "pattern": "^\\$" } })
}

fn text_or_list() -> Json {
    json!({ "oneOf": [schema::text(), { "type": "array", "items": schema::text() }] })
}

impl KindDef for HttpStep {
    const NAME: &'static str = "http";
    const ABOUT: &'static str =
        "A request to a service as a tenant's app; `expect` checks the response, `save` keeps values from it.";
    const RETRIED: bool = true;

    fn decode(cx: &mut Cx<'_>, node: &Node, scope: &mut Scope) -> Option<Self> {
        decode(cx, node, "`http` step", scope)
    }

    fn schema() -> Json {
        schema::object(&KEYS)
    }

    fn label(&self) -> String {
        format!(
            "{} {} {}",
            self.request.method, self.service, self.request.path
        )
    }

    async fn run(&self, cx: &mut StepCx<'_, '_>) -> Result<(), StepError> {
        run::http(cx, self).await
    }
}

fn decode(cx: &mut Cx<'_>, node: &Node, what: &str, scope: &mut Scope) -> Option<HttpStep> {
    let f = keyed(cx, node, what, &KEYS)?;
    let service = f.req_string(cx, "service", "service: flow-api");
    let tenant_name = f
        .get("tenant")
        .and_then(|_| tenant(cx, &f, "tenant", scope));
    let app = f.string(cx, "app");
    let request = f
        .require(cx, "request", "request: { method: GET, path: /health }")
        .and_then(|n| request::request(cx, n));
    let expect = f.get("expect").and_then(|n| {
        let e = keyed(cx, n, "`expect` of an `http` step", &EXPECT_KEYS)?;
        let body_contains = match e.get("body-contains") {
            None => Vec::new(),
            Some(
                n @ Node {
                    value: Value::Seq(_),
                    ..
                },
            ) => string_list(cx, n, "body-contains")
                .into_iter()
                .map(|(s, _)| s)
                .collect(),
            Some(n) => string(cx, n, "body-contains").into_iter().collect(),
        };
        Some(HttpExpect {
            status: e.get("status").and_then(|s| status(cx, s)),
            headers: request::expected_headers(cx, &e),
            json: e.get("json").map(|n| expected(cx, n, Place::Json)),
            json_schema: e.json("json-schema"),
            body_contains,
        })
    });
    let mut save = std::collections::BTreeMap::new();
    if let Some(n) = f.get("save") {
        match &n.value {
            Value::Map(entries) => {
                for (k, v) in entries {
                    let Some(path) = string(cx, v, &k.key_text()) else {
                        continue;
                    };
                    if !path.starts_with('$') {
                        cx.error(
                            v.pos,
                            format!("`{path}` is not a JSONPath"),
                            "a JSONPath starts at the response body's root: `$.id`, `$.data[0].id`",
                        );
                        continue;
                    }
                    save.insert(k.key_text(), path);
                }
            }
            _ => cx.error(
                n.pos,
                format!(
                    "`save` must be a map of names to JSONPaths, found {}",
                    n.describe()
                ),
                "write `save: { lead: $.id }`, then use `${lead}` in later steps",
            ),
        }
    }
    scope.saved.extend(save.keys().cloned());
    Some(HttpStep {
        service: service?,
        tenant: tenant_name,
        app,
        request: request?,
        expect,
        save,
    })
}
