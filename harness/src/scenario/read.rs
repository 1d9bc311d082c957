//! Typed reads from the positioned YAML tree, each problem recorded with its
//! position and a hint (several per file, not only the first).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use super::yaml::{Node, Pos, Value};
use super::Diagnostic;

/// Where diagnostics go while one file is checked.
#[derive(Debug)]
pub(crate) struct Cx<'e> {
    pub(crate) file: PathBuf,
    pub(crate) errors: &'e mut Vec<Diagnostic>,
}

impl Cx<'_> {
    pub(crate) fn error(&mut self, pos: Pos, message: impl Into<String>, hint: impl Into<String>) {
        self.errors.push(Diagnostic {
            file: self.file.clone(),
            pos,
            message: message.into(),
            hint: hint.into(),
        });
    }
}

/// The closest of `known` to `word`, when it is close enough to be a typo.
pub(crate) fn closest<'k>(word: &str, known: &[&'k str]) -> Option<&'k str> {
    known
        .iter()
        .map(|k| (strsim::damerau_levenshtein(word, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 3) && *d < word.chars().count())
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// A map whose keys were checked against the allowed ones.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fields<'n> {
    pub(crate) pos: Pos,
    entries: &'n [(Node, Node)],
    what: &'n str,
}

/// Reads `node` as a map with only `allowed` keys (unknown keys are reported).
pub(crate) fn fields<'n>(
    cx: &mut Cx<'_>,
    node: &'n Node,
    what: &'n str,
    allowed: &[&str],
) -> Option<Fields<'n>> {
    let Value::Map(entries) = &node.value else {
        cx.error(
            node.pos,
            format!("{what} must be a map, found {}", node.describe()),
            format!(
                "write `key: value` lines under it; the keys are {}",
                allowed.join(", ")
            ),
        );
        return None;
    };
    for (key, _) in entries {
        let name = key.key_text();
        if !allowed.contains(&name.as_str()) {
            let guess = closest(&name, allowed)
                .map(|k| format!("did you mean `{k}`? "))
                .unwrap_or_default();
            cx.error(
                key.pos,
                format!("unknown key `{name}` in {what}"),
                format!("{guess}the keys are {}", allowed.join(", ")),
            );
        }
    }
    Some(Fields {
        pos: node.pos,
        entries,
        what,
    })
}

/// Reads `node` as a map with the keys of a kind's key table (see
/// [`super::schema::Key`]: the same table gives the schema).
pub(crate) fn keyed<'n>(
    cx: &mut Cx<'_>,
    node: &'n Node,
    what: &'n str,
    keys: &[super::schema::Key],
) -> Option<Fields<'n>> {
    fields(cx, node, what, &super::schema::names(keys))
}

impl<'n> Fields<'n> {
    pub(crate) fn get(&self, key: &str) -> Option<&'n Node> {
        self.entries
            .iter()
            .find(|(k, _)| k.key_text() == key)
            .map(|(_, v)| v)
    }

    /// The position of a key (for errors about the key itself).
    pub(crate) fn key_pos(&self, key: &str) -> Option<Pos> {
        self.entries
            .iter()
            .find(|(k, _)| k.key_text() == key)
            .map(|(k, _)| k.pos)
    }

    /// A required field; `example` shows how to write it.
    pub(crate) fn require(&self, cx: &mut Cx<'_>, key: &str, example: &str) -> Option<&'n Node> {
        let found = self.get(key);
        if found.is_none() {
            cx.error(
                self.pos,
                format!("{} needs `{key}`", self.what),
                format!("add `{example}`"),
            );
        }
        found
    }

    pub(crate) fn string(&self, cx: &mut Cx<'_>, key: &str) -> Option<String> {
        self.get(key).and_then(|n| string(cx, n, key))
    }

    pub(crate) fn req_string(&self, cx: &mut Cx<'_>, key: &str, example: &str) -> Option<String> {
        self.require(cx, key, example)
            .and_then(|n| string(cx, n, key))
    }

    pub(crate) fn duration(&self, cx: &mut Cx<'_>, key: &str) -> Option<Duration> {
        self.get(key).and_then(|n| duration(cx, n, key))
    }

    pub(crate) fn req_duration(&self, cx: &mut Cx<'_>, key: &str) -> Option<Duration> {
        self.require(cx, key, &format!("{key}: 5s"))
            .and_then(|n| duration(cx, n, key))
    }

    pub(crate) fn json(&self, key: &str) -> Option<serde_json::Value> {
        self.get(key).map(Node::to_json)
    }

    pub(crate) fn string_map(&self, cx: &mut Cx<'_>, key: &str) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let Some(node) = self.get(key) else {
            return out;
        };
        let Value::Map(entries) = &node.value else {
            cx.error(
                node.pos,
                format!(
                    "`{key}` must be a map of names to text, found {}",
                    node.describe()
                ),
                format!("write e.g. `{key}: {{ x-name: value }}`"),
            );
            return out;
        };
        for (k, v) in entries {
            if let Some(text) = string(cx, v, &k.key_text()) {
                out.insert(k.key_text(), text);
            }
        }
        out
    }
}

/// A scalar as text (numbers and booleans are taken as written; null is refused).
pub(crate) fn string(cx: &mut Cx<'_>, node: &Node, key: &str) -> Option<String> {
    match &node.value {
        Value::Scalar { text, plain } if !*plain || !node.to_json().is_null() => Some(text.clone()),
        _ => {
            cx.error(
                node.pos,
                format!("`{key}` must be text, found {}", node.describe()),
                format!("write `{key}: some-text` (quote it if it contains `: ` or `#`)"),
            );
            None
        }
    }
}

pub(crate) fn uint(cx: &mut Cx<'_>, node: &Node, key: &str, max: u64) -> Option<u64> {
    match node.to_json().as_u64() {
        Some(n) if n <= max && matches!(node.value, Value::Scalar { plain: true, .. }) => Some(n),
        _ => {
            cx.error(
                node.pos,
                format!(
                    "`{key}` must be a whole number up to {max}, found {}",
                    match &node.value {
                        Value::Scalar { text, .. } => format!("`{text}`"),
                        _ => node.describe().to_owned(),
                    }
                ),
                format!("write e.g. `{key}: 1` without quotes"),
            );
            None
        }
    }
}

pub(crate) fn boolean(cx: &mut Cx<'_>, node: &Node, key: &str) -> Option<bool> {
    match (&node.value, node.to_json()) {
        (Value::Scalar { plain: true, .. }, serde_json::Value::Bool(b)) => Some(b),
        _ => {
            cx.error(
                node.pos,
                format!("`{key}` must be true or false, found {}", node.describe()),
                format!("write `{key}: true` without quotes"),
            );
            None
        }
    }
}

pub(crate) fn duration(cx: &mut Cx<'_>, node: &Node, key: &str) -> Option<Duration> {
    let text = string(cx, node, key)?;
    match parse_duration(&text) {
        Ok(d) => Some(d),
        Err(message) => {
            cx.error(
                node.pos,
                format!("`{key}`: {message}"),
                "a duration is a number and a unit: ms, s, m or h, e.g. `500ms`, `30s`, `1m30s`",
            );
            None
        }
    }
}

/// A list of text values.
pub(crate) fn string_list(cx: &mut Cx<'_>, node: &Node, key: &str) -> Vec<(String, Pos)> {
    let Value::Seq(items) = &node.value else {
        cx.error(
            node.pos,
            format!("`{key}` must be a list, found {}", node.describe()),
            format!("write `{key}: [a, b]`"),
        );
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|n| string(cx, n, key).map(|s| (s, n.pos)))
        .collect()
}

/// Parses a humantime-style duration: `500ms`, `30s`, `2m`, `1h`, `1m30s`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("invalid duration `{text}`");
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = rest[..unit_len].trim();
        rest = &rest[unit_len..];
        let ms_per = match unit {
            "ms" => 1u64,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "" => {
                return Err(format!(
                    "invalid duration `{text}`: the number needs a unit"
                ))
            }
            _ => return Err(format!("invalid duration `{text}`: unknown unit `{unit}`")),
        };
        let ms = n.checked_mul(ms_per).ok_or_else(bad)?;
        total = total
            .checked_add(Duration::from_millis(ms))
            .ok_or_else(bad)?;
    }
    Ok(total)
}
