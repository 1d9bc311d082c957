//! The cases of one operation: its valid request with one thing changed.
//!
//! Every field of the body and every parameter gets each family of bad
//! value that fits its kind (a text, a number, an object, ...); at the
//! bounded size one value per family, at the full size every value. What
//! the platform must answer is decided here, from the schema and the text
//! rules of [`super::fields`], never from the services: a value the schema
//! refuses must be refused (a 4xx), a value it allows may be taken or
//! refused, another tenant's id in a reference must be not found.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::fields::{self, Field, FieldPath, Kind, Seg};
use super::params;
use crate::sweep::{Operation, Size};

/// What a case changes in the operation's valid request.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Mutation {
    /// Sets the field (or with `None` removes it).
    Field(FieldPath, Option<Value>),
    /// Sets the field to raw JSON text serde cannot hold (`1e309`, a lone surrogate).
    RawField(FieldPath, String),
    /// Replaces the whole body (not JSON, or not an object).
    Body { raw: String },
    /// The valid body under another content type.
    ContentType(String),
    /// A path parameter, percent-encoded.
    Path(String, String),
    /// A query parameter (added or replaced), percent-encoded.
    Query(String, String),
}

/// What the platform must answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Expect {
    /// A 4xx: the schema or a text rule refuses the value (why).
    Refused(String),
    /// A 2xx or a 4xx: the schema allows it.
    Either,
    /// The status of `object-of-another-tenant` (another tenant's id).
    NotFound,
}

/// One case.
#[derive(Debug, Clone)]
pub(super) struct Case {
    /// `firstName: a NUL byte`.
    pub(super) label: String,
    pub(super) mutation: Mutation,
    pub(super) expect: Expect,
    /// The body field it changes, if one (kept when shrinking).
    pub(super) field: Option<FieldPath>,
}

/// The operation's valid request: the example with references resolved.
#[derive(Debug, Clone, Default)]
pub(super) struct Base {
    pub(super) body: Option<Value>,
    /// Path parameter -> value (percent-encoded).
    pub(super) path_params: BTreeMap<String, String>,
    /// Query parameters sent with every case (the required ones).
    pub(super) query: Vec<(String, String)>,
}

/// The unknown key tried in objects and queries.
pub(super) const UNKNOWN_KEY: &str = "unexpectedField";
/// A text longer than any field should take when none states a maximum.
const MEGABYTE: usize = 1_000_000;

/// One value of a family: how it is shown and what it sets.
enum Val {
    Remove,
    Json(&'static str, Value),
    Raw(&'static str, String),
}

/// The cases of `op` from `base`. `foreign` maps a reference
/// (`<service>:<operationId>`) to another tenant's object of that kind.
pub(super) fn generate(
    op: &Operation,
    base: &Base,
    foreign: &BTreeMap<String, String>,
    size: Size,
) -> Result<Vec<Case>, String> {
    let mut out = Vec::new();
    if let (Some(schema), Some(body)) = (&op.body_schema, &base.body) {
        let validator = jsonschema::options()
            .should_validate_formats(true)
            .build(schema)
            .map_err(|e| format!("the request body schema does not compile: {e}"))?;
        let judge = |body: &Value, field: &Field, value: &Value| -> Expect {
            if let (Value::String(text), Kind::Text { format, .. }) = (value, &field.kind) {
                if let Some(why) = fields::text_rule(field.path.key(), format.as_deref(), text) {
                    return Expect::Refused(why.to_owned());
                }
            }
            if !value.is_string() && fields::holds_control(value) {
                return Expect::Refused("a control character in a string inside".into());
            }
            schema_says(&validator, body)
        };
        for field in fields::fields(schema, body) {
            for (family, vals) in field_families(&field) {
                for val in sample(vals, size) {
                    let label = |what: &str| format!("{}: {family} ({what})", field.path);
                    let case = match val {
                        Val::Remove => {
                            let mut changed = body.clone();
                            if !field.path.set(&mut changed, None) {
                                continue;
                            }
                            Case {
                                label: label("left out"),
                                mutation: Mutation::Field(field.path.clone(), None),
                                expect: schema_says(&validator, &changed),
                                field: Some(field.path.clone()),
                            }
                        }
                        Val::Json(what, value) => {
                            let mut changed = body.clone();
                            if !field.path.set(&mut changed, Some(value.clone())) {
                                continue;
                            }
                            Case {
                                label: label(what),
                                expect: judge(&changed, &field, &value),
                                mutation: Mutation::Field(field.path.clone(), Some(value)),
                                field: Some(field.path.clone()),
                            }
                        }
                        Val::Raw(what, raw) => Case {
                            label: label(what),
                            mutation: Mutation::RawField(field.path.clone(), raw),
                            expect: Expect::Refused("not a JSON value serde can hold".into()),
                            field: Some(field.path.clone()),
                        },
                    };
                    out.push(case);
                }
            }
            if let Some(id) = field.reference.as_ref().and_then(|r| foreign.get(r)) {
                out.push(Case {
                    label: format!("{}: another tenant's id", field.path),
                    mutation: Mutation::Field(field.path.clone(), Some(json!(id))),
                    expect: Expect::NotFound,
                    field: Some(field.path.clone()),
                });
            }
            if field.kind == Kind::Object && field.path.get(body).is_some_and(Value::is_object) {
                out.push(unknown_key(&validator, body, &field.path));
            }
        }
        out.push(unknown_key(&validator, body, &FieldPath::default()));
        let refused = |why: &str| Expect::Refused(why.to_owned());
        let text = body.to_string();
        let mut whole = vec![
            Case {
                label: "body: malformed JSON".into(),
                mutation: Mutation::Body {
                    raw: text[..text.len() / 2].to_owned(),
                },
                expect: refused("not JSON"),
                field: None,
            },
            Case {
                label: "body: content type text/plain".into(),
                mutation: Mutation::ContentType("text/plain".into()),
                expect: refused("the body is declared application/json"),
                field: None,
            },
        ];
        if size == Size::Full {
            for (what, raw) in [("empty", ""), ("an array", "[]"), ("null", "null")] {
                whole.push(Case {
                    label: format!("body: {what}"),
                    mutation: Mutation::Body { raw: raw.into() },
                    expect: refused("not an object"),
                    field: None,
                });
            }
        }
        out.extend(whole);
    }
    for param in &op.params {
        out.extend(params::cases(param, foreign, size)?);
    }
    if op.params.iter().any(|p| p.location == "query") {
        out.push(Case {
            label: format!("query {UNKNOWN_KEY}: an unknown parameter"),
            mutation: Mutation::Query(UNKNOWN_KEY.into(), "1".into()),
            expect: Expect::Either,
            field: None,
        });
    }
    Ok(out)
}

fn unknown_key(validator: &jsonschema::Validator, body: &Value, at: &FieldPath) -> Case {
    let path = at.child(Seg::Key(UNKNOWN_KEY.into()));
    let mut changed = body.clone();
    path.set(&mut changed, Some(json!(1)));
    Case {
        label: format!("{path}: an unknown field"),
        mutation: Mutation::Field(path.clone(), Some(json!(1))),
        expect: schema_says(validator, &changed),
        field: Some(path),
    }
}

/// Either, when the schema allows `body`; else refused, saying why.
fn schema_says(validator: &jsonschema::Validator, body: &Value) -> Expect {
    match validator.validate(body) {
        Ok(()) => Expect::Either,
        Err(e) => Expect::Refused(format!("the schema refuses it: {e}")),
    }
}

/// The first value of each family at the bounded size, all at the full size.
pub(super) fn sample<T>(vals: Vec<T>, size: Size) -> Vec<T> {
    match size {
        Size::Bounded => vals.into_iter().take(1).collect(),
        Size::Full => vals,
    }
}

/// The hostile texts, by family: `(family, label, text)`.
pub(super) const HOSTILE: [(&str, &[(&str, &str)]); 6] = [
    (
        "control characters",
        &[("a NUL byte", "a\u{0}b"), ("U+0001", "a\u{1}b")],
    ),
    ("bidi marks", &[("U+202E", "a\u{202E}b")]),
    ("SQL", &[("a quote and a comment", "'; DROP TABLE x; --")]),
    ("HTML", &[("a script tag", "<script>alert(1)</script>")]),
    (
        "path traversal",
        &[("../../etc/passwd", "../../etc/passwd")],
    ),
    ("empty", &[("an empty string", "")]),
];

fn field_families(field: &Field) -> Vec<(&'static str, Vec<Val>)> {
    let mut families: Vec<(&'static str, Vec<Val>)> = vec![
        ("missing", vec![Val::Remove]),
        ("null", vec![Val::Json("null", Value::Null)]),
    ];
    match &field.kind {
        Kind::Text {
            format,
            max_length,
            choices,
        } => {
            families.push((
                "wrong type",
                vec![
                    Val::Json("a number", json!(42)),
                    Val::Json("a boolean", json!(true)),
                    Val::Json("an array", json!([])),
                    Val::Json("an object", json!({})),
                ],
            ));
            let email = format.as_deref() == Some("email");
            for (family, texts) in HOSTILE {
                let vals = texts
                    .iter()
                    .map(|(what, text)| {
                        let text = if email && !text.is_empty() {
                            format!("{text}@example.com")
                        } else {
                            (*text).to_owned()
                        };
                        Val::Json(what, Value::String(text))
                    })
                    .collect();
                families.push((family, vals));
            }
            families.push((
                "lone surrogate",
                vec![Val::Raw("\\ud800", r#""a\ud800b""#.to_owned())],
            ));
            let long = match max_length {
                Some(max) => usize::try_from(*max).map_or(MEGABYTE, |m| m + 1),
                None => MEGABYTE,
            };
            let long = if email {
                format!("{}@example.com", "x".repeat(long))
            } else {
                "x".repeat(long)
            };
            families.push((
                "oversized",
                vec![Val::Json("too long", Value::String(long))],
            ));
            if choices.is_some() {
                families.push((
                    "not one of the enum",
                    vec![Val::Json("bogus", json!("bogus"))],
                ));
            }
            if format.as_deref() == Some("uuid") {
                families.push((
                    "not a uuid",
                    vec![Val::Json("not-a-uuid", json!("not-a-uuid"))],
                ));
            }
        }
        Kind::Integer | Kind::Number => {
            families.push((
                "wrong type",
                vec![
                    Val::Json("a string", json!("1")),
                    Val::Json("a boolean", json!(true)),
                ],
            ));
            families.push((
                "boundary",
                vec![Val::Json("-1", json!(-1)), Val::Json("0", json!(0))],
            ));
            families.push((
                "huge",
                vec![
                    Val::Json("i64::MAX", json!(i64::MAX)),
                    Val::Json("i64::MIN", json!(i64::MIN)),
                ],
            ));
            families.push((
                "overflow",
                vec![
                    Val::Raw("1e309", "1e309".into()),
                    Val::Raw("2^63", "9223372036854775808".into()),
                ],
            ));
            if field.kind == Kind::Integer {
                families.push(("fraction", vec![Val::Json("1.5", json!(1.5))]));
            }
        }
        Kind::Boolean => families.push((
            "wrong type",
            vec![
                Val::Json("a string", json!("true")),
                Val::Json("a number", json!(1)),
            ],
        )),
        Kind::Object => {
            families.push((
                "wrong type",
                vec![
                    Val::Json("a string", json!("x")),
                    Val::Json("an array", json!([])),
                ],
            ));
            families.push((
                "control characters",
                vec![Val::Json("a NUL byte inside", json!({ "note": "a\u{0}b" }))],
            ));
        }
        Kind::Array { .. } => {
            families.push((
                "wrong type",
                vec![
                    Val::Json("a string", json!("x")),
                    Val::Json("an object", json!({})),
                ],
            ));
            families.push(("empty", vec![Val::Json("no items", json!([]))]));
        }
        Kind::Any => {}
    }
    families
}
