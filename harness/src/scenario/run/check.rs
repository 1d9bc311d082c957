//! Matching what came against what a step expects, and saying how it
//! differs: JSON subsets, SQL rows, and a small JSONPath for `save`.
//!
//! Subset rules (`expect: { json: ... }`, `ws: { data: ... }`):
//! - an object matches when every expected key is present and matches
//!   (extra keys are ignored);
//! - an array matches when each expected element matches a different
//!   element of the actual array, in any order (extra elements ignored);
//!   an empty expected array `[]` matches only an empty array;
//! - numbers compare by value (`1` matches `1.0`); everything else by equality.

use serde_json::Value;

/// Where `expected` is not a subset of `got`, as `$.path: reason`; `None` when it is.
pub(crate) fn subset(expected: &Value, got: &Value) -> Option<String> {
    mismatch(expected, got, "$")
}

fn mismatch(expected: &Value, got: &Value, at: &str) -> Option<String> {
    match (expected, got) {
        (Value::Object(want), Value::Object(have)) => want.iter().find_map(|(k, w)| {
            let path = format!("{at}.{k}");
            match have.get(k) {
                None => Some(format!("{path}: missing (expected {})", short(w))),
                Some(h) => mismatch(w, h, &path),
            }
        }),
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
                    .find(|(j, h)| !used[*j] && mismatch(w, h, at).is_none());
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
        (w, h) if w == h => None,
        (w, h) => Some(format!("{at}: expected {}, got {}", short(w), short(h))),
    }
}

/// Two values equal as SQL cells: numbers by value, else by equality.
pub(crate) fn same_cell(expected: &Value, got: &Value) -> bool {
    match (expected, got) {
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        // A count written as a string in YAML, or a uuid/text compared to a string.
        (Value::String(a), Value::Number(b)) | (Value::Number(b), Value::String(a)) => {
            a.parse::<f64>().ok() == b.as_f64()
        }
        _ => expected == got,
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
        (Value::Object(want), Value::Object(have)) => Value::Object(
            want.iter()
                .filter_map(|(k, w)| have.get(k).map(|h| (k.clone(), project(w, h))))
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
                    .position(|h| mismatch(w, h, "$").is_none())
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
        assert!(same_cell(&json!(1), &json!(1.0)));
        assert!(same_cell(&json!("3"), &json!(3)));
        assert!(!same_cell(&json!("a"), &json!(3)));
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
