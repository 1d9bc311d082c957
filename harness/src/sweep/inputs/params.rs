//! The cases of a path or query parameter: bounds and non-numbers for a
//! number (`limit` 0, -1, above its maximum, huge, `ten`), the hostile
//! texts for a text, and another tenant's id for a reference: in a path it
//! must be not found, in a query (a filter) it may find nothing.

use std::collections::BTreeMap;

use serde_json::Value;

use super::cases::{sample, Case, Expect, Mutation, HOSTILE};
use super::fields::{self, Kind};
use crate::sweep::{Param, Size};

/// The longest query or path value tried when none states a maximum (a
/// megabyte in a URL is a test of the HTTP parser, which `limits` owns).
const LONG_URL_VALUE: usize = 4096;

/// Percent-encodes everything but RFC 3986's unreserved characters.
pub(super) fn encode(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub(super) fn cases(
    param: &Param,
    foreign: &BTreeMap<String, String>,
    size: Size,
) -> Result<Vec<Case>, String> {
    let (is_path, is_query) = (param.location == "path", param.location == "query");
    if !is_path && !is_query {
        return Ok(Vec::new());
    }
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(&param.schema)
        .map_err(|e| {
            format!(
                "the schema of parameter `{}` does not compile: {e}",
                param.name
            )
        })?;
    let kind = fields::kind_of(&param.schema);
    let mut families: Vec<(&str, Vec<(&str, String)>)> = Vec::new();
    match &kind {
        Kind::Integer | Kind::Number => {
            let above = fields::unwrap(&param.schema)["maximum"]
                .as_i64()
                .map_or("501".to_owned(), |m| (m + 1).to_string());
            families.extend([
                ("boundary", vec![("0", "0".to_owned())]),
                ("negative", vec![("-1", "-1".to_owned())]),
                ("above the maximum", vec![("the maximum + 1", above)]),
                ("huge", vec![("10^20", "99999999999999999999".to_owned())]),
                ("not a number", vec![("ten", "ten".to_owned())]),
                ("fraction", vec![("1.5", "1.5".to_owned())]),
            ]);
        }
        _ => {
            for (family, texts) in HOSTILE {
                families.push((
                    family,
                    texts.iter().map(|(w, t)| (*w, (*t).to_owned())).collect(),
                ));
            }
            let long = match &kind {
                Kind::Text {
                    max_length: Some(m),
                    ..
                } => usize::try_from(*m).map_or(LONG_URL_VALUE, |m| m + 1),
                _ => LONG_URL_VALUE,
            };
            families.push(("oversized", vec![("too long", "x".repeat(long))]));
            if let Kind::Text {
                format, choices, ..
            } = &kind
            {
                if choices.is_some() {
                    families.push(("not one of the enum", vec![("bogus", "bogus".into())]));
                }
                if format.as_deref() == Some("uuid") {
                    families.push(("not a uuid", vec![("not-a-uuid", "not-a-uuid".into())]));
                }
            }
        }
    }
    let format = match &kind {
        Kind::Text { format, .. } => format.clone(),
        _ => None,
    };
    let mut out = Vec::new();
    for (family, vals) in families {
        for (what, text) in sample(vals, size) {
            let as_json = match kind {
                Kind::Integer | Kind::Number => {
                    serde_json::from_str::<Value>(&text).unwrap_or(Value::String(text.clone()))
                }
                _ => Value::String(text.clone()),
            };
            let expect = match fields::text_rule(&param.name, format.as_deref(), &text) {
                Some(why) => Expect::Refused(why.to_owned()),
                None if text.is_empty() && is_path => {
                    Expect::Refused("an empty path segment".into())
                }
                None => match validator.validate(&as_json) {
                    Ok(()) => Expect::Either,
                    Err(e) => Expect::Refused(format!("the schema refuses it: {e}")),
                },
            };
            let encoded = encode(&text);
            out.push(Case {
                label: format!("{} {}: {family} ({what})", param.location, param.name),
                mutation: if is_path {
                    Mutation::Path(param.name.clone(), encoded)
                } else {
                    Mutation::Query(param.name.clone(), encoded)
                },
                expect,
                field: None,
            });
        }
    }
    if let Some(id) = param.reference.as_ref().and_then(|r| foreign.get(r)) {
        out.push(Case {
            label: format!("{} {}: another tenant's id", param.location, param.name),
            mutation: if is_path {
                Mutation::Path(param.name.clone(), encode(id))
            } else {
                Mutation::Query(param.name.clone(), encode(id))
            },
            // A filter naming another tenant's object finds nothing; only a
            // path names the object the operation acts on.
            expect: if is_path {
                Expect::NotFound
            } else {
                Expect::Either
            },
            field: None,
        });
    }
    Ok(out)
}
