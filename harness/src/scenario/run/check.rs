//! Matching what came against what a step expects, and saying how it
//! differs: JSON subsets, SQL rows, and a small JSONPath for `save`.
//!
//! Subset rules (`expect: { json: ... }`, `ws: { data: ... }`):
//! - an object matches when every expected key is present and matches
//!   (extra keys are ignored);
//! - an array matches when each expected element matches a different
//!   element of the actual array, in any order (extra elements ignored);
//!   an empty expected array `[]` matches only an empty array;
//! - numbers compare by value (`1` matches `1.0`); everything else by equality;
//! - operators (`{ $regex: ... }`, `$absent`, `{ $exact: ... }`, see
//!   `scenario::ops`) are evaluated in `super::ops`.

use serde_json::Value;

use super::ops;
use crate::scenario::ops::{key_kind, literal_text};

/// Where `expected` is not a subset of `got`, as `$.path: reason`; `None` when it is.
pub(crate) fn subset(expected: &Value, got: &Value) -> Option<String> {
    mismatch(expected, got, "$", Mode::Subset)
}

/// How far an expected object or array must agree with what came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Extra keys and elements are ignored; elements in any order.
    Subset,
    /// The same keys, the same elements in the same order (`$exact`, SQL cells).
    Exact,
}

/// Where `got` (at the path `at`) does not match `expected`, operators
/// included (`super::ops`).
pub(crate) fn mismatch(expected: &Value, got: &Value, at: &str, mode: Mode) -> Option<String> {
    if let Some(operators) = ops::operators(expected) {
        return operators
            .iter()
            .find_map(|(op, arg)| ops::apply(op, arg, got, at, mode));
    }
    match (expected, got) {
        (Value::String(w), _) if w == "$any" => None,
        (Value::String(w), h) if w == "$absent" => {
            Some(format!("{at}: expected absent ($absent), got {}", short(h)))
        }
        (Value::Object(want), Value::Object(have)) => {
            let named = |k: &str| key_kind(k).unwrap_or_else(|literal| literal).to_owned();
            let missing = want.iter().find_map(|(k, w)| {
                let key = named(k);
                let path = format!("{at}.{key}");
                match have.get(&key) {
                    None if w == "$absent" => None,
                    None => Some(format!("{path}: missing (expected {})", short(w))),
                    Some(h) => mismatch(w, h, &path, mode),
                }
            });
            if missing.is_some() || mode == Mode::Subset {
                return missing;
            }
            let wanted: Vec<String> = want.keys().map(|k| named(k)).collect();
            have.iter()
                .find(|(k, _)| !wanted.contains(k))
                .map(|(k, v)| format!("{at}: unexpected key `{k}` ($exact), with {}", short(v)))
        }
        (Value::Array(want), Value::Array(have)) if mode == Mode::Exact => {
            if want.len() != have.len() {
                return Some(format!(
                    "{at}: expected {} ($exact), got {}",
                    plural(want.len(), "element"),
                    have.len()
                ));
            }
            want.iter()
                .zip(have)
                .enumerate()
                .find_map(|(i, (w, h))| mismatch(w, h, &format!("{at}[{i}]"), mode))
        }
        (Value::Array(want), Value::Array(have)) if want.is_empty() && !have.is_empty() => {
            Some(format!(
                "{at}: expected an empty array, got {}",
                plural(have.len(), "element")
            ))
        }
        (Value::Array(want), Value::Array(have)) => {
            let mut used = vec![false; have.len()];
            for (i, w) in want.iter().enumerate() {
                let found = have
                    .iter()
                    .enumerate()
                    .find(|(j, h)| !used[*j] && mismatch(w, h, at, mode).is_none());
                match found {
                    Some((j, _)) => used[j] = true,
                    None => {
                        return Some(format!(
                            "{at}[{i}]: no element of the {} matches {}",
                            plural(have.len(), "element"),
                            short(w)
                        ))
                    }
                }
            }
            None
        }
        (Value::Number(a), Value::Number(b)) if a.as_f64() == b.as_f64() => None,
        (Value::String(w), Value::String(h)) if literal_text(w) == h => None,
        (w, h) if w == h => None,
        (Value::String(w), h) => Some(format!(
            "{at}: expected {}, got {}",
            short(&Value::from(literal_text(w))),
            short(h)
        )),
        (w, h) => Some(format!("{at}: expected {}, got {}", short(w), short(h))),
    }
}

/// Where an SQL cell differs from its expectation: numbers by value (also
/// a count written as text), objects and arrays (`jsonb`) exactly, and
/// operators as everywhere else.
pub(crate) fn cell(expected: &Value, got: &Value, at: &str) -> Option<String> {
    match (expected, got) {
        (Value::String(a), Value::Number(b)) | (Value::Number(b), Value::String(a))
            if a.parse::<f64>().ok() == b.as_f64() =>
        {
            None
        }
        _ => mismatch(expected, got, at, Mode::Exact),
    }
}

/// Where a response header differs from its expectation: text (a trailing
/// `*` matches a prefix), `$absent`, `$any`, or operators on its value.
pub(crate) fn header(name: &str, want: &Value, got: Option<&str>) -> Option<String> {
    let want = match want {
        Value::Number(_) | Value::Bool(_) => Value::String(want.to_string()),
        other => other.clone(),
    };
    match (&want, got) {
        (Value::String(w), None) if w == "$absent" => None,
        (Value::String(w), Some(v)) if w == "$absent" => Some(format!(
            "header `{name}`: expected absent ($absent), got `{v}`"
        )),
        (Value::String(w), None) => Some(format!(
            "header `{name}` is missing (expected `{}`)",
            literal_text(w)
        )),
        (Value::String(w), Some(_)) if w == "$any" => None,
        (Value::String(w), Some(v)) => {
            let w = literal_text(w);
            let prefix = w.strip_suffix('*').is_some_and(|p| v.starts_with(p));
            (v != w && !prefix).then(|| format!("header `{name}`: expected `{w}`, got `{v}`"))
        }
        (w, None) => Some(format!(
            "header `{name}` is missing (expected {})",
            short(w)
        )),
        (w, Some(v)) => mismatch(
            w,
            &Value::String(v.to_owned()),
            &format!("header `{name}`"),
            Mode::Subset,
        ),
    }
}

fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// A value in one line, cut at 120 characters.
pub(crate) fn short(v: &Value) -> String {
    cut(v.to_string(), 120)
}

/// `text` cut to at most `max` characters, the last one `…` when cut.
pub(crate) fn cut(text: String, max: usize) -> String {
    if text.chars().count() > max {
        format!("{}…", text.chars().take(max - 1).collect::<String>())
    } else {
        text
    }
}

/// A unified diff of two values pretty-printed: `-` expected, `+` got.
/// Of `got`, objects show only the keys `expected` names (the whole value is
/// in the response), so the diff shows what differs, not what is extra.
pub(crate) fn diff(expected: &Value, got: &Value) -> String {
    let want = serde_json::to_string_pretty(expected).unwrap_or_default();
    let have = serde_json::to_string_pretty(&project(expected, got)).unwrap_or_default();
    diff_text(&want, &have)
}

/// `got` cut down to the shape of `expected`: objects keep the expected
/// keys; arrays keep, for each expected element, its closest match.
fn project(expected: &Value, got: &Value) -> Value {
    match (expected, got) {
        (w, h) if ops::operators(w).is_some() => h.clone(),
        (Value::Object(want), Value::Object(have)) => Value::Object(
            want.iter()
                .filter_map(|(k, w)| {
                    let key = key_kind(k).unwrap_or_else(|literal| literal);
                    have.get(key).map(|h| (key.to_owned(), project(w, h)))
                })
                .collect(),
        ),
        (Value::Array(want), Value::Array(have)) if !have.is_empty() => {
            let mut left: Vec<&Value> = have.iter().collect();
            let mut out = Vec::new();
            for w in want {
                if left.is_empty() {
                    break;
                }
                let best = left
                    .iter()
                    .position(|h| mismatch(w, h, "$", Mode::Subset).is_none())
                    .unwrap_or(0);
                out.push(project(w, left.remove(best)));
            }
            Value::Array(out)
        }
        (_, h) => h.clone(),
    }
}

/// A unified diff of two texts, `-` expected and `+` got; long inputs are cut.
pub(crate) fn diff_text(expected: &str, got: &str) -> String {
    const MAX_LINES: usize = 400;
    let cut = |s: &str| -> String {
        let lines: Vec<&str> = s.lines().collect();
        if lines.len() <= MAX_LINES {
            return s.to_owned();
        }
        let mut out = lines[..MAX_LINES].join("\n");
        out.push_str(&format!("\n… {} more lines", lines.len() - MAX_LINES));
        out
    };
    let (mut a, mut b) = (cut(expected), cut(got));
    for text in [&mut a, &mut b] {
        if !text.ends_with('\n') {
            text.push('\n');
        }
    }
    similar::TextDiff::from_lines(&a, &b)
        .unified_diff()
        .context_radius(6)
        .header("expected", "got")
        .to_string()
}

/// Evaluates the JSONPath subset `save` accepts: `$`, `.name`, `['name']`,
/// `[index]` (negative from the end). `Err` says what is wrong with the path.
pub(crate) fn json_path<'v>(root: &'v Value, path: &str) -> Result<Option<&'v Value>, String> {
    let Some(mut rest) = path.trim().strip_prefix('$') else {
        return Err(format!("`{path}` does not start at `$`"));
    };
    let mut at = root;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            let key = &r[..end];
            if key.is_empty() {
                return Err(format!("`{path}`: empty name after `.`"));
            }
            match at.get(key) {
                Some(v) => at = v,
                None => return Ok(None),
            }
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r
                .find(']')
                .ok_or_else(|| format!("`{path}`: `[` without `]`"))?;
            let inner = r[..end].trim();
            rest = &r[end + 1..];
            let quoted = inner
                .strip_prefix('\'')
                .and_then(|s| s.strip_suffix('\''))
                .or_else(|| inner.strip_prefix('"').and_then(|s| s.strip_suffix('"')));
            let next = if let Some(key) = quoted {
                at.get(key)
            } else {
                let i: i64 = inner.parse().map_err(|_| {
                    format!("`{path}`: `[{inner}]` is neither an index nor a quoted name (filters and wildcards are not supported)")
                })?;
                let Value::Array(items) = at else {
                    return Ok(None);
                };
                let len = i64::try_from(items.len()).unwrap_or(i64::MAX);
                let i = if i < 0 { len + i } else { i };
                usize::try_from(i).ok().and_then(|i| items.get(i))
            };
            match next {
                Some(v) => at = v,
                None => return Ok(None),
            }
        } else {
            return Err(format!(
                "`{path}`: expected `.name` or `[index]` at `{rest}`"
            ));
        }
    }
    Ok(Some(at))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn objects_match_on_the_expected_keys_only() {
        let got = json!({ "id": 1, "email": "a@b", "extra": true });
        assert_eq!(subset(&json!({ "email": "a@b" }), &got), None);
        let e = subset(&json!({ "email": "x@b" }), &got).unwrap();
        assert_eq!(e, r#"$.email: expected "x@b", got "a@b""#);
        let e = subset(&json!({ "name": "n" }), &got).unwrap();
        assert!(e.starts_with("$.name: missing"), "{e}");
    }

    #[test]
    fn arrays_match_elements_in_any_order_each_once() {
        let got = json!({ "data": [ { "id": 2 }, { "id": 1 } ] });
        assert_eq!(subset(&json!({ "data": [ { "id": 1 } ] }), &got), None);
        assert_eq!(
            subset(&json!({ "data": [ { "id": 1 }, { "id": 2 } ] }), &got),
            None
        );
        let e = subset(&json!({ "data": [ { "id": 1 }, { "id": 1 } ] }), &got).unwrap();
        assert!(
            e.starts_with("$.data[1]: no element of the 2 elements matches"),
            "{e}"
        );
        assert!(subset(&json!({ "data": [] }), &json!({ "data": {} })).is_some());
        assert_eq!(subset(&json!({ "data": [] }), &json!({ "data": [] })), None);
        let e = subset(&json!({ "data": [] }), &got).unwrap();
        assert_eq!(e, "$.data: expected an empty array, got 2 elements");
    }

    #[test]
    fn numbers_compare_by_value() {
        assert_eq!(subset(&json!(1), &json!(1.0)), None);
        assert!(subset(&json!(1), &json!("1")).is_some());
        assert_eq!(cell(&json!(1), &json!(1.0), "c"), None);
        assert_eq!(cell(&json!("3"), &json!(3), "c"), None);
        assert!(cell(&json!("a"), &json!(3), "c").is_some());
        assert_eq!(cell(&json!({ "$gt": 2 }), &json!(3), "c"), None);
        let e = cell(&json!({ "a": 1 }), &json!({ "a": 1, "b": 2 }), "c").unwrap();
        assert_eq!(
            e, "c: unexpected key `b` ($exact), with 2",
            "jsonb cells compare exactly"
        );
    }

    #[test]
    fn diff_marks_expected_and_got() {
        let d = diff(&json!({ "a": 1 }), &json!({ "a": 2 }));
        assert!(
            d.contains("-  \"a\": 1") && d.contains("+  \"a\": 2"),
            "{d}"
        );
    }

    #[test]
    fn json_path_subset() {
        let v = json!({ "id": "x", "data": [ { "id": 1 }, { "id": 2 } ], "a-b": { "c": true } });
        assert_eq!(json_path(&v, "$.id").unwrap(), Some(&json!("x")));
        assert_eq!(json_path(&v, "$.data[1].id").unwrap(), Some(&json!(2)));
        assert_eq!(json_path(&v, "$.data[-1].id").unwrap(), Some(&json!(2)));
        assert_eq!(json_path(&v, "$['a-b'].c").unwrap(), Some(&json!(true)));
        assert_eq!(json_path(&v, "$.nope").unwrap(), None);
        assert_eq!(json_path(&v, "$").unwrap(), Some(&v));
        assert!(json_path(&v, "$.data[*]")
            .unwrap_err()
            .contains("not supported"));
        assert!(json_path(&v, "id").is_err());
    }
}
