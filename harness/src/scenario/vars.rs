//! `${...}` references and the names in scope at each step, checked at parse
//! time so a typo fails `validate`, not a run half an hour later.
//!
//! A reference is one of: `${uuid}`, `${email}`, `${now}` (generated per
//! use), `${env.NAME}` (the harness's environment), a tenant (`${acme}` is
//! its id, `${acme.key}` its API key), a component's address as the harness
//! reaches it (`${crm-api.url}`, `.host`, `.port`; checked when the run
//! starts), a `vars:` entry, a name saved by an earlier step, or a
//! cross-app token minted at each use
//! (`${cross-app-token:iss=flow-api,aud=crm-api,sub=acme,scope=read:contacts}`,
//! see `scenario::token`), or a value computed at each use: a time
//! relative to now (`${now+5m}`, `${now-1h:unix}`) or the base64 of a text
//! (`${base64:user:${password}}`, see `scenario::computed`). Braces nest,
//! so a reference's argument may hold references.
//! `$${` writes a literal `${`.

use std::collections::BTreeSet;

use super::computed::Computed;
use super::read::{closest, Cx};
use super::yaml::{Node, Value};

/// Names generated fresh for every use.
pub const GENERATED: [&str; 3] = ["uuid", "email", "now"];

/// What is defined at a point of a scenario.
#[derive(Debug, Clone, Default)]
pub(crate) struct Scope {
    pub(crate) tenants: BTreeSet<String>,
    pub(crate) saved: BTreeSet<String>,
    pub(crate) connections: BTreeSet<String>,
}

/// A part of a text: literal text, or the name inside a `${...}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Piece<'t> {
    Text(&'t str),
    Ref(&'t str),
}

/// Splits a text into literal parts and references (`$${` is the literal
/// text `${`); `Err` is the message for an unterminated `${`. The checker
/// and the runner's expansion both read texts through this.
pub(crate) fn pieces(text: &str) -> Result<Vec<Piece<'_>>, String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("${") {
        if rest[..at].ends_with('$') {
            out.push(Piece::Text(&rest[..at - 1]));
            out.push(Piece::Text("${"));
            rest = &rest[at + 2..];
            continue;
        }
        out.push(Piece::Text(&rest[..at]));
        let after = &rest[at + 2..];
        // Braces nest, so a reference may hold references
        // (`${base64:user:${password}}`).
        let mut depth = 0usize;
        let Some(end) = after.char_indices().find_map(|(i, c)| match c {
            '{' => {
                depth += 1;
                None
            }
            '}' if depth == 0 => Some(i),
            '}' => {
                depth -= 1;
                None
            }
            _ => None,
        }) else {
            return Err("unterminated `${` (no closing `}`)".to_owned());
        };
        out.push(Piece::Ref(after[..end].trim()));
        rest = &after[end + 1..];
    }
    out.push(Piece::Text(rest));
    Ok(out)
}

/// The references in a text: `Ok(names)` or the error message of a malformed one.
pub fn references(text: &str) -> Result<Vec<String>, String> {
    Ok(pieces(text)?
        .into_iter()
        .filter_map(|p| match p {
            Piece::Ref(name) => Some(name.to_owned()),
            Piece::Text(_) => None,
        })
        .collect())
}

impl Scope {
    fn defines(&self, name: &str) -> bool {
        if GENERATED.contains(&name) || self.saved.contains(name) || self.tenants.contains(name) {
            return true;
        }
        if let Some(var) = name.strip_prefix("vars.") {
            return !var.is_empty();
        }
        if let Some(var) = name.strip_prefix("env.") {
            return !var.is_empty() && var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        }
        match name.split_once('.') {
            Some((tenant, "id" | "key")) => self.tenants.contains(tenant),
            Some((component, "url" | "peer-url" | "host" | "port")) => !component.is_empty(),
            _ => false,
        }
    }

    /// Checks every reference in the values (not the keys) under `node`.
    pub(crate) fn check(&self, cx: &mut Cx<'_>, node: &Node) {
        match &node.value {
            Value::Scalar { text, .. } => match references(text) {
                Err(message) => cx.error(
                    node.pos,
                    message,
                    "close it with `}`, or write `$${` for a literal `${`",
                ),
                Ok(names) => {
                    for name in &names {
                        self.check_ref(cx, node, name);
                    }
                }
            },
            Value::Seq(items) => items.iter().for_each(|n| self.check(cx, n)),
            Value::Map(entries) => entries.iter().for_each(|(_, v)| self.check(cx, v)),
        }
    }

    /// Checks one reference (and those inside a computed value's argument).
    fn check_ref(&self, cx: &mut Cx<'_>, node: &Node, name: &str) {
        if let Some(spec) = super::token::parse(name) {
            if let Err(e) = spec {
                cx.error(node.pos, format!("`${{{name}}}`: {e}"), super::token::HINT);
            }
            return;
        }
        match super::computed::parse(name) {
            Some(Err(e)) => cx.error(
                node.pos,
                format!("`${{{name}}}`: {e}"),
                super::computed::HINT,
            ),
            Some(Ok(Computed::Base64 { of, .. })) => match references(of) {
                Ok(inner) => inner.iter().for_each(|n| self.check_ref(cx, node, n)),
                Err(message) => cx.error(
                    node.pos,
                    format!("`${{{name}}}`: {message}"),
                    super::computed::HINT,
                ),
            },
            Some(Ok(Computed::Now { .. })) => {}
            None if !self.defines(name) => self.undefined(cx, node, name),
            None => {}
        }
    }

    fn undefined(&self, cx: &mut Cx<'_>, node: &Node, name: &str) {
        let mut known: Vec<&str> = self.saved.iter().map(String::as_str).collect();
        known.extend(self.tenants.iter().map(String::as_str));
        known.extend(GENERATED);
        let guess = closest(name, &known)
            .map(|k| format!("did you mean `${{{k}}}`? "))
            .unwrap_or_default();
        let saved = if self.saved.is_empty() {
            "no step before this one saves a value".to_owned()
        } else {
            format!(
                "saved before this step: {}",
                self.saved.iter().cloned().collect::<Vec<_>>().join(", ")
            )
        };
        cx.error(
            node.pos,
            format!("`${{{name}}}` is not defined here"),
            format!(
                "{guess}{saved}; also usable: a tenant (`${{acme}}`, `${{acme.key}}`), \
                 `${{env.NAME}}`, `${{crm-api.url}}`, `${{uuid}}`, `${{email}}`, `${{now}}`, \
                 `${{cross-app-token:iss=..,aud=..,sub=..}}`"
            ),
        );
    }
}

/// A copy of a JSON value with every string replaced by what `f` makes of
/// it (keys stay as they are): the walk of every expansion of references in
/// JSON bodies.
pub fn map_strings(
    value: &serde_json::Value,
    f: &dyn Fn(&str) -> Result<serde_json::Value, String>,
) -> Result<serde_json::Value, String> {
    use serde_json::Value;
    Ok(match value {
        Value::String(s) => f(s)?,
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| map_strings(v, f))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), map_strings(v, f)?)))
                .collect::<Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}
