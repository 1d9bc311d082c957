//! The `request` of an `http` step (query, cookies, and one body: `json`,
//! `form`, `multipart` or a raw `body` with its `content-type`) and the
//! header expectations of its `expect`.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{json, Value as Json};

use super::{Body, Part, PartContent, Request};
use crate::scenario::ops::{self, Place};
use crate::scenario::read::{fields, keyed, string, Cx, Fields};
use crate::scenario::schema::{self, Key};
use crate::scenario::yaml::{Node, Value};

/// The keys of a `request`.
const KEYS: [Key; 10] = [
    Key::new("method", schema::text).required(),
    Key::new("path", schema::text).required(),
    Key::new("query", pairs_schema).help("Pairs appended URL-encoded to `path`; a list repeats the name."),
    Key::new("headers", headers),
    Key::new("cookies", cookies).help("Sent as one `cookie` header."),
    Key::new("json", schema::any),
    Key::new("form", pairs_schema).help("An application/x-www-form-urlencoded body (one body per request)."),
    Key::new("multipart", multipart_schema).help(
        "A multipart/form-data body: a part is text, or { file (relative to the scenario file) | text, filename, content-type }.",
    ),
    Key::new("body", raw).help("A raw body; needs `content-type`."),
    Key::new("content-type", schema::text),
];

/// The schema of a `request`.
pub(super) fn schema() -> Json {
    schema::object(&KEYS)
}

/// The schema of `expect.headers`: text or operators per header.
pub(super) fn header_expect_schema() -> Json {
    let operator = json!({ "type": "object", "minProperties": 1,
        "propertyNames": { "enum": ["$regex", "$gt", "$gte", "$lt", "$lte", "$len", "$type", "$one-of"] } });
    json!({ "type": "object", "additionalProperties": { "anyOf": [schema::text(), operator] } })
}

fn pairs_schema() -> Json {
    let text = schema::text();
    json!({ "type": "object", "additionalProperties": { "oneOf": [text, { "type": "array", "items": text }] } })
}

fn headers() -> Json {
    json!({ "type": "object", "additionalProperties": schema::text() })
}

fn cookies() -> Json {
    json!({ "type": "object", "additionalProperties": schema::text() })
}

fn raw() -> Json {
    json!({ "type": "string" })
}

fn multipart_schema() -> Json {
    let text = schema::text();
    let part = json!({ "oneOf": [text, { "type": "object", "additionalProperties": false,
        "properties": { "file": text, "text": text, "filename": text, "content-type": text } }] });
    json!({ "type": "object", "additionalProperties": part })
}

/// The keys that give a request its body; one at most.
const BODIES: [&str; 4] = ["json", "form", "multipart", "body"];

pub(super) fn request(cx: &mut Cx<'_>, node: &Node) -> Option<Request> {
    let r = keyed(cx, node, "`request`", &KEYS)?;
    let method = r.req_string(cx, "method", "method: GET");
    let path = r.req_string(cx, "path", "path: /health");
    let given: Vec<&str> = BODIES
        .iter()
        .copied()
        .filter(|b| r.get(b).is_some())
        .collect();
    if let [first, second, ..] = given.as_slice() {
        cx.error(
            r.key_pos(second).unwrap_or(r.pos),
            format!("a request has one body; `{first}` and `{second}` are both given"),
            "keep one of json, form, multipart, body",
        );
    }
    let body = match given.first().copied() {
        Some("form") => r
            .get("form")
            .and_then(|n| pairs(cx, n, "form"))
            .map(Body::Form),
        Some("multipart") => r.get("multipart").and_then(|n| multipart(cx, n)),
        Some("body") => {
            let text = r.string(cx, "body");
            let content_type =
                r.req_string(cx, "content-type", "content-type: text/plain` beside `body");
            Some(Body::Raw {
                text: text?,
                content_type: content_type?,
            })
        }
        _ => None,
    };
    if given.first() != Some(&"body") {
        if let Some(pos) = r.key_pos("content-type") {
            cx.error(
                pos,
                "`content-type` goes with a raw `body`",
                "give the body as `body: ...`; for JSON, form and multipart bodies the \
                 content type is set for you (or set it under `headers`)",
            );
        }
    }
    let headers = r.string_map(cx, "headers");
    let cookies = match r.get("cookies") {
        None => Vec::new(),
        Some(n) => {
            if let Some(name) = headers.keys().find(|h| h.eq_ignore_ascii_case("cookie")) {
                cx.error(
                    n.pos,
                    format!("cookies are given twice: in `cookies` and in the `{name}` header"),
                    "keep `cookies: { name: value }` and drop the header",
                );
            }
            pairs(cx, n, "cookies").unwrap_or_default()
        }
    };
    let query = match r.get("query") {
        None => Vec::new(),
        Some(n) => pairs(cx, n, "query").unwrap_or_default(),
    };
    Some(Request {
        method: method?.to_ascii_uppercase(),
        path: path?,
        query,
        json: if given.first() == Some(&"json") {
            r.json("json")
        } else {
            None
        },
        body,
        headers,
        cookies,
    })
}

/// A map of names to text (or lists of text, for a name given more than once).
fn pairs(cx: &mut Cx<'_>, node: &Node, key: &str) -> Option<Vec<(String, String)>> {
    let Value::Map(entries) = &node.value else {
        cx.error(
            node.pos,
            format!(
                "`{key}` must be a map of names to values, found {}",
                node.describe()
            ),
            format!("write e.g. `{key}: {{ name: value, other: \"${{saved}}\" }}`"),
        );
        return None;
    };
    let mut out = Vec::new();
    for (k, v) in entries {
        let name = k.key_text();
        match &v.value {
            Value::Seq(items) if key != "cookies" => {
                for item in items {
                    if let Some(text) = string(cx, item, &name) {
                        out.push((name.clone(), text));
                    }
                }
            }
            _ => {
                if let Some(text) = string(cx, v, &name) {
                    out.push((name, text));
                }
            }
        }
    }
    Some(out)
}

fn multipart(cx: &mut Cx<'_>, node: &Node) -> Option<Body> {
    let Value::Map(entries) = &node.value else {
        cx.error(
            node.pos,
            format!("`multipart` must be a map of part names to parts, found {}", node.describe()),
            "write e.g. `multipart: { title: Q3, report: { file: q3.csv, content-type: text/csv } }`",
        );
        return None;
    };
    let dir = cx.file.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut parts = Vec::new();
    for (k, v) in entries {
        let name = k.key_text();
        if !matches!(v.value, Value::Map(_)) {
            if let Some(text) = string(cx, v, &name) {
                parts.push(Part {
                    name,
                    content: PartContent::Text(text),
                    filename: None,
                    content_type: None,
                });
            }
            continue;
        }
        let what = format!("part `{name}` of `multipart`");
        let Some(f) = fields(cx, v, &what, &["file", "text", "filename", "content-type"]) else {
            continue;
        };
        let content = match (f.get("file"), f.get("text")) {
            (Some(_), Some(_)) => {
                cx.error(
                    f.key_pos("text").unwrap_or(f.pos),
                    format!("{what} has both `file` and `text`"),
                    "a part's content is a file or inline text: keep one",
                );
                continue;
            }
            (Some(n), None) => file(cx, &f, n, &dir),
            (None, Some(_)) => f.string(cx, "text").map(PartContent::Text),
            (None, None) => {
                cx.error(
                    f.pos,
                    format!("{what} needs `file` or `text`"),
                    "add `file: path/next/to/the/scenario.csv` or `text: inline content`",
                );
                continue;
            }
        };
        let filename = f.string(cx, "filename").or_else(|| match &content {
            Some(PartContent::File(p)) => p.file_name().map(|n| n.to_string_lossy().into_owned()),
            _ => None,
        });
        let content_type = f.string(cx, "content-type");
        if let Some(content) = content {
            parts.push(Part {
                name,
                content,
                filename,
                content_type,
            });
        }
    }
    Some(Body::Multipart(parts))
}

/// A part's file: relative to the scenario file, and there when the file is read.
fn file(cx: &mut Cx<'_>, f: &Fields<'_>, node: &Node, dir: &Path) -> Option<PartContent> {
    let written = f.string(cx, "file")?;
    let path = dir.join(&written);
    if !path.is_file() {
        cx.error(
            node.pos,
            format!("no file `{written}` (looked for {})", path.display()),
            "a part's `file` is a path relative to the scenario file",
        );
        return None;
    }
    Some(PartContent::File(path))
}

/// `expect.headers`: a header's value is text (a trailing `*` matches a
/// prefix) or operators (`{ $regex: ... }`, `$absent`, `$any`).
pub(super) fn expected_headers(
    cx: &mut Cx<'_>,
    e: &Fields<'_>,
) -> BTreeMap<String, serde_json::Value> {
    let mut out = BTreeMap::new();
    let Some(node) = e.get("headers") else {
        return out;
    };
    let Value::Map(entries) = &node.value else {
        cx.error(
            node.pos,
            format!(
                "`headers` must be a map of names to values, found {}",
                node.describe()
            ),
            "write e.g. `headers: { content-type: application/json*, x-request-id: $any }`",
        );
        return out;
    };
    for (k, v) in entries {
        let name = k.key_text();
        let value = if let Value::Map(_) = &v.value {
            ops::check(cx, v, Place::Header);
            Some(v.to_json())
        } else {
            string(cx, v, &name).map(|text| {
                ops::check(cx, v, Place::Header);
                serde_json::Value::String(text)
            })
        };
        if let Some(value) = value {
            out.insert(name, value);
        }
    }
    out
}
