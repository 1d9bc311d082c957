//! Operators inside expected values (`json`, `data`, `envelope`, SQL rows,
//! `mock: expect` request bodies, `expect.headers`): their spelling and the
//! parse-time check of every use. The runner evaluates them
//! (`run::ops`).
//!
//! An operator is a map key that starts with `$` (`{ $regex: "^lead_" }`,
//! `{ $gte: 1, $lte: 5 }`: every operator of a map must hold), or one of the
//! two bare words `$absent` and `$any`. The platform's payloads use no key
//! that starts with `$`, and JSONPaths (`$.id`), prices (`$5`) and
//! references (`${x}`) do not look like `$word`, so the spelling is free; a
//! literal key or word that does is written with `$$` (`$$ref` is the key
//! `$ref`, `$$any` the text `$any`).
//!
//! The model keeps expected values as JSON exactly as written: this check
//! only refuses what would fail at run time (an unknown operator, a regex
//! that does not compile, an argument of the wrong type, an operator mixed
//! with literal keys), each with its `file:line:col`.

use super::read::{closest, Cx};
use super::yaml::{Node, Value};

/// Operators written as a map key with an argument.
pub(crate) const KEYED: [&str; 9] = [
    "$regex", "$gt", "$gte", "$lt", "$lte", "$len", "$type", "$one-of", "$exact",
];
/// Operators written as a bare word.
pub(crate) const BARE: [&str; 2] = ["$absent", "$any"];
/// The comparison operators (also `$len`'s argument).
pub(crate) const COMPARISONS: [&str; 4] = ["$gt", "$gte", "$lt", "$lte"];
/// The names `$type` takes.
pub(crate) const TYPES: [&str; 7] = [
    "string", "number", "integer", "boolean", "null", "array", "object",
];

/// Where an expected value is written: what is allowed there differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Place {
    /// A JSON body, WebSocket data or envelope, a mock request body.
    Json,
    /// One cell of an SQL row (`$absent` has no meaning there).
    Cell,
    /// The value of a response header (text; `$exact` has no meaning there).
    Header,
}

/// `$word` (not `$$word`): the shape of an operator name.
pub(crate) fn is_op_name(text: &str) -> bool {
    text.strip_prefix('$').is_some_and(|rest| {
        rest.starts_with(|c: char| c.is_ascii_lowercase())
            && rest.chars().all(|c| c.is_ascii_lowercase() || c == '-')
    })
}

/// A map key as meant: `Some(op)` for an operator, else the literal key
/// (`$$ref` → `$ref`).
pub(crate) fn key_kind(key: &str) -> Result<&str, &str> {
    if key.starts_with("$$") {
        Err(&key[1..])
    } else if key.starts_with('$') && !key.starts_with("${") {
        Ok(key)
    } else {
        Err(key)
    }
}

/// A text as meant: the escape `$$word` stands for the text `$word`.
pub(crate) fn literal_text(text: &str) -> &str {
    match text.strip_prefix('$') {
        Some(rest) if is_op_name(rest) => rest,
        _ => text,
    }
}

/// Checks every operator in `node`, an expected value written at `place`.
pub(crate) fn check(cx: &mut Cx<'_>, node: &Node, place: Place) {
    value(cx, node, place, false);
}

/// `member`: the node is the value of an object's key (where `$absent` means something).
fn value(cx: &mut Cx<'_>, node: &Node, place: Place, member: bool) {
    match &node.value {
        Value::Scalar { text, .. } => bare(cx, node, text, place, member),
        Value::Seq(items) => items.iter().for_each(|n| value(cx, n, place, false)),
        Value::Map(entries) => {
            let ops: Vec<&(Node, Node)> = entries
                .iter()
                .filter(|(k, _)| key_kind(&k.key_text()).is_ok())
                .collect();
            if ops.is_empty() {
                if place == Place::Header {
                    cx.error(
                        node.pos,
                        "a header's value is text or a map of operators",
                        "write `x-name: value` or e.g. `x-name: { $regex: \"^v[0-9]+$\" }`",
                    );
                    return;
                }
                let place = if place == Place::Cell {
                    Place::Json
                } else {
                    place
                };
                entries.iter().for_each(|(_, v)| value(cx, v, place, true));
                return;
            }
            if let Some((literal, _)) = entries
                .iter()
                .find(|(k, _)| key_kind(&k.key_text()).is_err())
            {
                cx.error(
                    literal.pos,
                    format!(
                        "`{}` is a literal key in a map of operators (`{}`)",
                        literal.key_text(),
                        ops[0].0.key_text()
                    ),
                    "a map holds operators only (all must hold) or keys only; \
                     write a literal key that starts with `$` as `$$key`",
                );
                return;
            }
            for (k, arg) in ops {
                operator(cx, k, arg, place);
            }
        }
    }
}

fn bare(cx: &mut Cx<'_>, node: &Node, text: &str, place: Place, member: bool) {
    if !is_op_name(text) {
        return;
    }
    match text {
        "$any" => {}
        "$absent" if member || place == Place::Header => {}
        "$absent" => cx.error(
            node.pos,
            "`$absent` stands for a key's value: the key must not be there",
            "write it under the key, e.g. `json: { password: $absent }`",
        ),
        _ if KEYED.contains(&text) => cx.error(
            node.pos,
            format!("`{text}` needs an argument"),
            format!("write it as a map: `{{ {text}: ... }}`"),
        ),
        _ => {
            let known: Vec<&str> = KEYED.iter().chain(&BARE).copied().collect();
            let guess = closest(text, &known)
                .map(|k| format!("did you mean `{k}`? "))
                .unwrap_or_default();
            cx.error(
                node.pos,
                format!("unknown operator `{text}`"),
                format!(
                    "{guess}the operators are {}; write the text `{text}` as `${text}`",
                    known.join(", ")
                ),
            );
        }
    }
}

fn operator(cx: &mut Cx<'_>, key: &Node, arg: &Node, place: Place) {
    let name = key.key_text();
    let json = arg.to_json();
    let wrong = |cx: &mut Cx<'_>, what: &str, example: &str| {
        cx.error(
            arg.pos,
            format!("`{name}` takes {what}, found {}", arg.describe()),
            format!("write e.g. `{{ {name}: {example} }}`"),
        );
    };
    match name.as_str() {
        "$regex" => match &json {
            serde_json::Value::String(re) if re.contains("${") => {}
            serde_json::Value::String(re) => {
                if let Err(e) = regex::Regex::new(re) {
                    cx.error(
                        arg.pos,
                        format!("`$regex`: `{re}` is not a valid regex"),
                        first_line(&e.to_string()),
                    );
                }
            }
            _ => wrong(cx, "a regex as text", "\"^lead_\""),
        },
        "$gt" | "$gte" | "$lt" | "$lte" => comparable(cx, &name, arg, &json),
        "$len" => match &json {
            serde_json::Value::Number(n) if n.as_u64().is_some() => {}
            serde_json::Value::Object(m)
                if !m.is_empty() && m.keys().all(|k| COMPARISONS.contains(&k.as_str())) =>
            {
                if let Value::Map(entries) = &arg.value {
                    for (k, v) in entries {
                        comparable(cx, &k.key_text(), v, &v.to_json());
                    }
                }
            }
            _ => cx.error(
                arg.pos,
                format!(
                    "`$len` takes a whole number or a comparison, found {}",
                    arg.describe()
                ),
                "write e.g. `{ $len: 2 }` or `{ $len: { $gte: 1 } }`",
            ),
        },
        "$type" => match json.as_str() {
            Some(t) if TYPES.contains(&t) => {}
            Some(t) => {
                let guess = closest(t, &TYPES)
                    .map(|k| format!("did you mean `{k}`? "))
                    .unwrap_or_default();
                cx.error(
                    arg.pos,
                    format!("`$type`: unknown type `{t}`"),
                    format!("{guess}the types are {}", TYPES.join(", ")),
                );
            }
            None => wrong(cx, "a type name", "string"),
        },
        "$one-of" => match &arg.value {
            Value::Seq(items) if !items.is_empty() => {
                let inner = if place == Place::Header {
                    Place::Header
                } else {
                    Place::Json
                };
                items.iter().for_each(|n| value(cx, n, inner, false));
            }
            _ => wrong(cx, "a non-empty list of values", "[open, won]"),
        },
        "$exact" if place == Place::Header => cx.error(
            key.pos,
            "`$exact` has no meaning for a header: its value is text",
            "write the value itself: `x-name: value`",
        ),
        "$exact" => match &arg.value {
            Value::Map(_) | Value::Seq(_) => value(cx, arg, Place::Json, false),
            _ => wrong(cx, "a map or a list", "{ id: 1, name: a }"),
        },
        "$absent" | "$any" => cx.error(
            key.pos,
            format!("`{name}` is written as a value, not as a key"),
            format!("write `key: {name}`"),
        ),
        _ => {
            let known: Vec<&str> = KEYED.iter().chain(&BARE).copied().collect();
            let guess = closest(&name, &known)
                .map(|k| format!("did you mean `{k}`? "))
                .unwrap_or_default();
            cx.error(
                key.pos,
                format!("unknown operator `{name}`"),
                format!(
                    "{guess}the operators are {}; write a literal key `{name}` as `${name}`",
                    known.join(", ")
                ),
            );
        }
    }
}

/// The argument of a comparison: a number or an RFC 3339 time (or a
/// `${...}` reference, known at run time).
fn comparable(cx: &mut Cx<'_>, name: &str, arg: &Node, json: &serde_json::Value) {
    match json {
        serde_json::Value::Number(_) => {}
        serde_json::Value::String(s)
            if s.contains("${") || chrono::DateTime::parse_from_rfc3339(s).is_ok() => {}
        _ => cx.error(
            arg.pos,
            format!(
                "`{name}` compares with a number or an RFC 3339 time, found {}",
                match json {
                    serde_json::Value::String(s) => format!("`{s}`"),
                    _ => arg.describe().to_owned(),
                }
            ),
            format!("write e.g. `{{ {name}: 3 }}` or `{{ {name}: \"2024-01-01T00:00:00Z\" }}`"),
        ),
    }
}

fn first_line(text: &str) -> String {
    let line = text
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with("error:"))
        .map_or_else(|| text.lines().next().unwrap_or_default(), str::trim);
    format!("{line}; regexes are Rust's `regex` syntax (no look-around)")
}
