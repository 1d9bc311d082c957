//! The fields of a request body, read from its schema, and whether a
//! value is one the platform must refuse.
//!
//! The oracle is the OpenAPI schema (compiled with `jsonschema`, formats
//! checked) plus three rules the platform holds for all text, which a
//! schema cannot state well:
//!
//! - control characters (other than tab, line feed and carriage return)
//!   are refused in every text field: no client means them, and storage
//!   refuses some (Postgres text cannot hold NUL);
//! - bidi overrides, embeddings and isolates (U+202A–U+202E,
//!   U+2066–U+2069) are refused in names and emails, which other people
//!   read as identities (a field is a name when its key ends in `name`,
//!   or is `title` or `company`); free text (descriptions, transcripts)
//!   may carry them;
//! - an email (`format: email`) is a sane address: a dot-atom local part
//!   and a host name, no quoted strings or comments, which RFC 5322
//!   allows and `jsonschema`'s format check accepts (`<script>@x.com`).

use std::fmt;

use serde_json::Value;

/// One step of a path into a JSON body.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) enum Seg {
    Key(String),
    Index(usize),
}

/// Where a field is in a body: `contacts[0].email`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) struct FieldPath(pub(super) Vec<Seg>);

impl FieldPath {
    pub(super) fn child(&self, seg: Seg) -> FieldPath {
        let mut segs = self.0.clone();
        segs.push(seg);
        FieldPath(segs)
    }

    /// The last key (`email` of `contacts[0].email`).
    pub(super) fn key(&self) -> &str {
        self.0
            .iter()
            .rev()
            .find_map(|s| match s {
                Seg::Key(k) => Some(k.as_str()),
                Seg::Index(_) => None,
            })
            .unwrap_or("")
    }

    /// Whether `self` is `other` or inside it.
    pub(super) fn starts_with(&self, other: &FieldPath) -> bool {
        self.0.starts_with(&other.0)
    }

    /// The value at this path.
    pub(super) fn get<'a>(&self, body: &'a Value) -> Option<&'a Value> {
        self.0.iter().try_fold(body, |node, seg| match seg {
            Seg::Key(k) => node.get(k),
            Seg::Index(i) => node.get(i),
        })
    }

    /// Sets (or with `None` removes) the value at this path; false when a
    /// parent is missing.
    pub(super) fn set(&self, body: &mut Value, value: Option<Value>) -> bool {
        let Some((last, parents)) = self.0.split_last() else {
            if let Some(v) = value {
                *body = v;
            }
            return true;
        };
        let mut node = body;
        for seg in parents {
            let next = match seg {
                Seg::Key(k) => node.get_mut(k),
                Seg::Index(i) => node.get_mut(i),
            };
            match next {
                Some(n) => node = n,
                None => return false,
            }
        }
        match (last, value) {
            (Seg::Key(k), Some(v)) => match node.as_object_mut() {
                Some(map) => {
                    map.insert(k.clone(), v);
                    true
                }
                None => false,
            },
            (Seg::Key(k), None) => node.as_object_mut().is_some_and(|m| {
                m.remove(k);
                true
            }),
            (Seg::Index(i), Some(v)) => match node.get_mut(i) {
                Some(slot) => {
                    *slot = v;
                    true
                }
                None => false,
            },
            (Seg::Index(i), None) => node.as_array_mut().is_some_and(|a| {
                if *i < a.len() {
                    a.remove(*i);
                }
                true
            }),
        }
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(body)");
        }
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(k) if i == 0 => f.write_str(k)?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// What kind of value a field takes.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Kind {
    Text {
        format: Option<String>,
        max_length: Option<u64>,
        choices: Option<Vec<Value>>,
    },
    Integer,
    Number,
    Boolean,
    Object,
    Array {
        max_items: Option<u64>,
    },
    /// No type stated (free JSON).
    Any,
}

/// One field of a body.
#[derive(Debug, Clone)]
pub(super) struct Field {
    pub(super) path: FieldPath,
    pub(super) kind: Kind,
    pub(super) required: bool,
    /// `x-tekup-ref`: the operation that makes what this field refers to.
    pub(super) reference: Option<String>,
}

/// The schema with a nullable wrapper (`oneOf`/`anyOf` of a type and
/// `null`, or a one-element `allOf`) taken off.
pub(super) fn unwrap(schema: &Value) -> &Value {
    for key in ["oneOf", "anyOf"] {
        if let Some(branches) = schema[key].as_array() {
            let real: Vec<&Value> = branches.iter().filter(|b| b["type"] != "null").collect();
            if real.len() == 1 {
                return unwrap(real[0]);
            }
        }
    }
    match schema["allOf"].as_array() {
        Some(parts) if parts.len() == 1 => unwrap(&parts[0]),
        _ => schema,
    }
}

/// The schema's type, ignoring `null`.
fn main_type(schema: &Value) -> Option<&str> {
    match &schema["type"] {
        Value::String(t) => Some(t.as_str()),
        Value::Array(types) => types
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null"),
        _ if schema.get("properties").is_some() => Some("object"),
        _ => match schema["enum"].as_array().and_then(|e| e.first()) {
            Some(Value::String(_)) => Some("string"),
            Some(Value::Number(_)) => Some("number"),
            _ => None,
        },
    }
}

pub(super) fn kind_of(schema: &Value) -> Kind {
    let schema = unwrap(schema);
    match main_type(schema) {
        Some("string") => Kind::Text {
            format: schema["format"].as_str().map(str::to_owned),
            max_length: schema["maxLength"].as_u64(),
            choices: schema["enum"].as_array().cloned(),
        },
        Some("integer") => Kind::Integer,
        Some("number") => Kind::Number,
        Some("boolean") => Kind::Boolean,
        Some("object") => Kind::Object,
        Some("array") => Kind::Array {
            max_items: schema["maxItems"].as_u64(),
        },
        _ => Kind::Any,
    }
}

/// The `x-tekup-ref` of a property, wherever in its schema it is written.
pub(super) fn reference_of(schema: &Value) -> Option<String> {
    if let Some(r) = schema["x-tekup-ref"].as_str() {
        return Some(r.to_owned());
    }
    ["oneOf", "anyOf", "allOf"]
        .iter()
        .filter_map(|k| schema[*k].as_array())
        .flatten()
        .find_map(reference_of)
}

/// Every field of a body: the schema's properties, and those of objects
/// and first array items inside (as far as the example goes), to a depth of 4.
pub(super) fn fields(schema: &Value, example: &Value) -> Vec<Field> {
    let mut out = Vec::new();
    walk(schema, example, &FieldPath::default(), 0, &mut out);
    out
}

fn walk(schema: &Value, example: &Value, at: &FieldPath, depth: usize, out: &mut Vec<Field>) {
    if depth > 4 {
        return;
    }
    let schema = unwrap(schema);
    let Some(props) = schema["properties"].as_object() else {
        return;
    };
    let required: Vec<&str> = schema["required"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for (key, prop) in props {
        let path = at.child(Seg::Key(key.clone()));
        let kind = kind_of(prop);
        out.push(Field {
            path: path.clone(),
            kind: kind.clone(),
            required: required.contains(&key.as_str()),
            reference: reference_of(prop),
        });
        let value = &example[key.as_str()];
        match kind {
            Kind::Object if value.is_object() => walk(prop, value, &path, depth + 1, out),
            Kind::Array { .. } if value.get(0).is_some() => {
                let items = &unwrap(prop)["items"];
                walk(items, &value[0], &path.child(Seg::Index(0)), depth + 1, out);
            }
            _ => {}
        }
    }
}

/// Whether a key names someone or something (the bidi rule).
pub(super) fn is_name(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    key.ends_with("name") || key == "title" || key == "company"
}

/// Bidi overrides, embeddings and isolates.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Why the platform must refuse `text` in a field `key` of format
/// `format`, by the rules of this module; `None` when it may take it.
pub(super) fn text_rule(key: &str, format: Option<&str>, text: &str) -> Option<&'static str> {
    if text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
    {
        return Some("a control character");
    }
    let email = format == Some("email");
    if (email || is_name(key)) && text.chars().any(is_bidi_control) {
        return Some("a bidi override in a name");
    }
    if email && !sane_email(text) {
        return Some("not a sane email address");
    }
    None
}

/// Whether a string (or key) anywhere in `value` holds a control character
/// the text rule refuses.
pub(super) fn holds_control(value: &Value) -> bool {
    match value {
        Value::String(s) => text_rule("", None, s) == Some("a control character"),
        Value::Array(items) => items.iter().any(holds_control),
        Value::Object(map) => map
            .iter()
            .any(|(k, v)| holds_control(&Value::String(k.clone())) || holds_control(v)),
        _ => false,
    }
}

/// A dot-atom local part (RFC 5322 atext, no quoted strings) and a host
/// name of at least two labels.
pub(super) fn sane_email(text: &str) -> bool {
    let Some((local, domain)) = text.rsplit_once('@') else {
        return false;
    };
    let atext = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c);
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && local
            .split('.')
            .all(|a| !a.is_empty() && a.chars().all(atext));
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && domain.len() <= 253
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    local_ok && domain_ok && text.len() <= 254
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_get_set_and_remove_nested_values() {
        let mut body = json!({ "contacts": [{ "email": "a@b.co", "firstName": "A" }] });
        let email = FieldPath(vec![
            Seg::Key("contacts".into()),
            Seg::Index(0),
            Seg::Key("email".into()),
        ]);
        assert_eq!(email.to_string(), "contacts[0].email");
        assert_eq!(email.key(), "email");
        assert_eq!(email.get(&body), Some(&json!("a@b.co")));
        assert!(email.set(&mut body, Some(json!(null))));
        assert_eq!(body["contacts"][0]["email"], Value::Null);
        assert!(email.set(&mut body, None));
        assert_eq!(body, json!({ "contacts": [{ "firstName": "A" }] }));
        let orphan = FieldPath(vec![Seg::Key("nope".into()), Seg::Key("x".into())]);
        assert!(!orphan.set(&mut body, Some(json!(1))));
    }

    #[test]
    fn fields_come_from_the_schema_with_nullable_wrappers_and_nested_items() {
        let schema = json!({
            "type": "object", "required": ["contacts"],
            "properties": {
                "contacts": { "type": "array", "maxItems": 500, "items": {
                    "type": "object", "required": ["email"],
                    "properties": {
                        "email": { "type": "string", "format": "email" },
                        "leadId": { "oneOf": [{ "type": "null" },
                            { "type": "string", "format": "uuid", "x-tekup-ref": "flow-api:createLead" }] }
                    } } }
            }
        });
        let example = json!({ "contacts": [{ "email": "a@b.co" }] });
        let found = fields(&schema, &example);
        let names: Vec<String> = found.iter().map(|f| f.path.to_string()).collect();
        assert_eq!(
            names,
            ["contacts", "contacts[0].email", "contacts[0].leadId"]
        );
        assert_eq!(
            found[0].kind,
            Kind::Array {
                max_items: Some(500)
            }
        );
        assert!(found[1].required);
        assert!(!found[2].required);
        assert_eq!(found[2].reference.as_deref(), Some("flow-api:createLead"));
        assert!(matches!(&found[2].kind, Kind::Text { format: Some(f), .. } if f == "uuid"));
    }

    #[test]
    fn the_text_rules() {
        assert_eq!(
            text_rule("summary", None, "a\u{0}b"),
            Some("a control character")
        );
        assert_eq!(
            text_rule("summary", None, "a\u{1}b"),
            Some("a control character")
        );
        assert_eq!(text_rule("summary", None, "line\nline\tx"), None);
        assert_eq!(
            text_rule("firstName", None, "a\u{202E}b"),
            Some("a bidi override in a name")
        );
        assert_eq!(
            text_rule("contact", Some("email"), "a\u{202E}b@x.com"),
            Some("a bidi override in a name")
        );
        assert_eq!(text_rule("description", None, "a\u{202E}b"), None);
        assert_eq!(text_rule("title", None, "<script>alert(1)</script>"), None);
        for bad in [
            "<script>@x.com",
            "'; DROP TABLE x; --@example.com",
            "../../etc/passwd@example.com",
            "a..b@example.com",
            "\"quoted\"@example.com",
            "a@localhost",
            "a@-x.com",
        ] {
            assert!(!sane_email(bad), "{bad} passed");
        }
        for good in ["ada@example.com", "ada.l+c1@mail.example.co", "o'neil@x.io"] {
            assert!(sane_email(good), "{good} failed");
        }
    }
}
