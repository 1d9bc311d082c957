//! Evaluating the operators of expected values (`scenario::ops` defines
//! their spelling and checks them when a file is read). Each failure names
//! the operator and the value it saw: `$.id: expected to match /^lead_/
//! ($regex), got "ld-7"`.

use std::cmp::Ordering;

use serde_json::Value;

use super::check::{mismatch, short, Mode};
use crate::scenario::ops::key_kind;

/// The operators of `v` when it is a map of operators (`{ $gt: 1, $lt: 5 }`).
pub(crate) fn operators(v: &Value) -> Option<Vec<(&str, &Value)>> {
    let Value::Object(map) = v else {
        return None;
    };
    if map.is_empty() || !map.keys().all(|k| key_kind(k).is_ok()) {
        return None;
    }
    Some(map.iter().map(|(k, v)| (k.as_str(), v)).collect())
}

/// Where `got` fails the operator `op` with argument `arg`, as `at: reason`.
pub(crate) fn apply(op: &str, arg: &Value, got: &Value, at: &str, mode: Mode) -> Option<String> {
    match op {
        "$regex" => {
            let Some(pattern) = arg.as_str() else {
                return Some(format!("{at}: `$regex` takes text, not {}", short(arg)));
            };
            let re = match regex::Regex::new(pattern) {
                Ok(re) => re,
                Err(e) => return Some(format!("{at}: `$regex` /{pattern}/ is not valid: {e}")),
            };
            match got {
                Value::String(s) if re.is_match(s) => None,
                _ => Some(format!(
                    "{at}: expected to match /{pattern}/ ($regex), got {}",
                    short(got)
                )),
            }
        }
        "$gt" | "$gte" | "$lt" | "$lte" => match compare(op, arg, got) {
            Ok(true) => None,
            Ok(false) => Some(format!(
                "{at}: expected {} {} ({op}), got {}",
                symbol(op),
                plain(arg),
                short(got)
            )),
            Err(e) => Some(format!("{at}: {e}")),
        },
        "$len" => {
            let len = match got {
                Value::String(s) => s.chars().count(),
                Value::Array(a) => a.len(),
                Value::Object(o) => o.len(),
                _ => {
                    return Some(format!(
                        "{at}: expected text, a list or an object ($len), got {}",
                        short(got)
                    ))
                }
            };
            let n = Value::from(len);
            let failed = match arg {
                Value::Object(cmp) => cmp.iter().find_map(|(op, a)| match compare(op, a, &n) {
                    Ok(true) => None,
                    Ok(false) => Some(format!("{} {}", symbol(op), plain(a))),
                    Err(e) => Some(e),
                }),
                _ if same_number(arg, &n) => None,
                _ => Some(plain(arg)),
            };
            failed.map(|want| format!("{at}: expected length {want} ($len), got length {len}"))
        }
        "$type" => {
            let want = arg.as_str().unwrap_or_default();
            if type_is(want, got) {
                None
            } else {
                Some(format!(
                    "{at}: expected {} ($type), got {}",
                    article(want),
                    short(got)
                ))
            }
        }
        "$one-of" => {
            let options = arg.as_array().map(Vec::as_slice).unwrap_or_default();
            if options.iter().any(|o| mismatch(o, got, at, mode).is_none()) {
                None
            } else {
                Some(format!(
                    "{at}: expected one of {} ($one-of), got {}",
                    short(arg),
                    short(got)
                ))
            }
        }
        "$exact" => mismatch(arg, got, at, Mode::Exact),
        _ => Some(format!("{at}: unknown operator `{op}`")),
    }
}

/// `got op arg`, for numbers (also numbers as text, as headers and some
/// SQL columns give them) and RFC 3339 times.
fn compare(op: &str, arg: &Value, got: &Value) -> Result<bool, String> {
    let ordering = if let Some(want) = arg.as_f64() {
        let have = match got {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.trim().parse::<f64>().ok(),
            _ => None,
        }
        .ok_or_else(|| {
            format!(
                "expected a number {} {} ({op}), got {}",
                symbol(op),
                plain(arg),
                short(got)
            )
        })?;
        have.partial_cmp(&want)
    } else if let Some(want) = arg.as_str().and_then(time) {
        let have = got.as_str().and_then(time).ok_or_else(|| {
            format!(
                "expected an RFC 3339 time {} {} ({op}), got {}",
                symbol(op),
                plain(arg),
                short(got)
            )
        })?;
        Some(have.cmp(&want))
    } else {
        return Err(format!(
            "`{op}` compares with a number or an RFC 3339 time, not {}",
            short(arg)
        ));
    };
    Ok(match (op, ordering) {
        (_, None) => false,
        ("$gt", Some(o)) => o == Ordering::Greater,
        ("$gte", Some(o)) => o != Ordering::Less,
        ("$lt", Some(o)) => o == Ordering::Less,
        (_, Some(o)) => o != Ordering::Greater,
    })
}

fn time(text: &str) -> Option<chrono::DateTime<chrono::FixedOffset>> {
    chrono::DateTime::parse_from_rfc3339(text.trim()).ok()
}

fn symbol(op: &str) -> &'static str {
    match op {
        "$gt" => ">",
        "$gte" => ">=",
        "$lt" => "<",
        _ => "<=",
    }
}

/// A value as written in a message: text without quotes.
fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => short(other),
    }
}

fn same_number(a: &Value, b: &Value) -> bool {
    a.as_f64().is_some() && a.as_f64() == b.as_f64()
}

fn type_is(want: &str, got: &Value) -> bool {
    match want {
        "string" => got.is_string(),
        "number" => got.is_number(),
        "integer" => got.as_f64().is_some_and(|f| f.fract() == 0.0),
        "boolean" => got.is_boolean(),
        "null" => got.is_null(),
        "array" => got.is_array(),
        "object" => got.is_object(),
        _ => false,
    }
}

fn article(kind: &str) -> String {
    match kind {
        "null" => "null".to_owned(),
        "array" | "integer" | "object" => format!("an {kind}"),
        _ => format!("a {kind}"),
    }
}

#[cfg(test)]
mod tests {
    use super::super::check::subset;
    use serde_json::json;

    #[test]
    fn each_operator_passes_and_fails_naming_itself() {
        let got = json!({
            "id": "ld-7", "n": 5, "at": "2024-05-01T10:00:00Z", "tags": ["a", "b"],
            "status": "open", "nested": { "a": 1, "b": 2 }, "count": "12",
        });
        let pass = [
            json!({ "id": { "$regex": "^ld-[0-9]+$" } }),
            json!({ "n": { "$gt": 4, "$lte": 5 } }),
            json!({ "count": { "$gte": 12 } }),
            json!({ "at": { "$gt": "2024-05-01T09:59:59Z" } }),
            json!({ "at": { "$lt": "2024-05-01T12:00:00+01:00" } }),
            json!({ "tags": { "$len": 2 }, "id": { "$len": { "$gte": 1 } } }),
            json!({ "n": { "$type": "integer" }, "tags": { "$type": "array" } }),
            json!({ "status": { "$one-of": ["won", "open"] } }),
            json!({ "password": "$absent", "id": "$any" }),
            json!({ "nested": { "$exact": { "a": 1, "b": { "$gt": 1 } } } }),
            json!({ "tags": { "$exact": ["a", "b"] } }),
        ];
        for want in pass {
            assert_eq!(subset(&want, &got), None, "{want}");
        }
        let fail = [
            (
                json!({ "id": { "$regex": "^lead_" } }),
                r#"$.id: expected to match /^lead_/ ($regex), got "ld-7""#,
            ),
            (
                json!({ "n": { "$gt": 5 } }),
                "$.n: expected > 5 ($gt), got 5",
            ),
            (
                json!({ "n": { "$gte": 1, "$lt": 5 } }),
                "$.n: expected < 5 ($lt), got 5",
            ),
            (
                json!({ "at": { "$gte": "2025-01-01T00:00:00Z" } }),
                r#"$.at: expected >= 2025-01-01T00:00:00Z ($gte), got "2024-05-01T10:00:00Z""#,
            ),
            (
                json!({ "id": { "$lte": "2025-01-01T00:00:00Z" } }),
                r#"$.id: expected an RFC 3339 time <= 2025-01-01T00:00:00Z ($lte), got "ld-7""#,
            ),
            (
                json!({ "tags": { "$len": 3 } }),
                "$.tags: expected length 3 ($len), got length 2",
            ),
            (
                json!({ "tags": { "$len": { "$gt": 2 } } }),
                "$.tags: expected length > 2 ($len), got length 2",
            ),
            (
                json!({ "n": { "$type": "string" } }),
                "$.n: expected a string ($type), got 5",
            ),
            (
                json!({ "status": { "$one-of": ["won", "lost"] } }),
                r#"$.status: expected one of ["won","lost"] ($one-of), got "open""#,
            ),
            (
                json!({ "id": "$absent" }),
                r#"$.id: expected absent ($absent), got "ld-7""#,
            ),
            (
                json!({ "gone": "$any" }),
                r#"$.gone: missing (expected "$any")"#,
            ),
            (
                json!({ "nested": { "$exact": { "a": 1 } } }),
                "$.nested: unexpected key `b` ($exact), with 2",
            ),
            (
                json!({ "tags": { "$exact": ["b", "a"] } }),
                r#"$.tags[0]: expected "b", got "a""#,
            ),
            (
                json!({ "tags": { "$exact": ["a"] } }),
                "$.tags: expected 1 element ($exact), got 2",
            ),
        ];
        for (want, message) in fail {
            assert_eq!(subset(&want, &got).as_deref(), Some(message), "{want}");
        }
    }

    #[test]
    fn escapes_stand_for_literal_keys_and_words() {
        let got = json!({ "$ref": "#/a", "word": "$any" });
        assert_eq!(
            subset(&json!({ "$$ref": "#/a", "word": "$$any" }), &got),
            None
        );
        let e = subset(&json!({ "word": "$$absent" }), &got).unwrap();
        assert_eq!(e, r#"$.word: expected "$absent", got "$any""#);
    }
}
