//! Decoding a step: the key that names its kind, the keys beside it
//! (`name`, `because`, `timeout`), and the helpers the kinds' decoders
//! share (tenants, statuses, expected values, one-of actions). Each kind's
//! own keys are decoded by its module in `scenario/kinds/`.

use super::kinds;
use super::model::{Step, STEP_KINDS};
use super::ops::{self, Place};
use super::read::{closest, duration, string, uint, Cx, Fields};
use super::schema::Key;
use super::vars::Scope;

use super::yaml::{Node, Pos, Value};

/// Decodes the steps of a list, in order, growing the scope as names are saved.
pub(crate) fn steps(cx: &mut Cx<'_>, node: &Node, key: &str, scope: &mut Scope) -> Vec<Step> {
    let Value::Seq(items) = &node.value else {
        cx.error(
            node.pos,
            format!("`{key}` must be a list of steps, found {}", node.describe()),
            "write each step as a list item: `- http: { ... }`",
        );
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|n| step(cx, n, scope, true))
        .collect()
}

/// Decodes one step: a map with one key, the step's kind.
/// `check_refs` is false for the inner step of `eventually` (already checked).
pub(crate) fn step(
    cx: &mut Cx<'_>,
    node: &Node,
    scope: &mut Scope,
    check_refs: bool,
) -> Option<Step> {
    // A `use:` of a step file is expanded before steps are decoded; a step
    // that reaches here is a kind, or a typo of a kind or of `use`.
    let kinds = format!(
        "{}; `use: <step file>` calls a step file",
        STEP_KINDS.join(", ")
    );
    let entries = match &node.value {
        Value::Map(entries) if !entries.is_empty() => entries,
        _ => {
            cx.error(
                node.pos,
                format!(
                    "a step must be a map with its kind as the key, found {}",
                    node.describe()
                ),
                format!("write e.g. `- sleep: 1s`; the kinds are {kinds}"),
            );
            return None;
        }
    };
    // `timeout`, `name` and `because` may stand beside the kind:
    // `- http: {...}` / `  timeout: 5s` / `  name: create a lead`.
    let beside = |key: &str| entries.iter().find(|(k, _)| k.key_text() == key);
    let timeout = beside("timeout").and_then(|(_, v)| duration(cx, v, "timeout"));
    let name = beside("name").and_then(|(_, v)| label_text(cx, v, "name"));
    let because = beside("because").and_then(|(_, v)| label_text(cx, v, "because"));
    let entries: Vec<&(Node, Node)> = entries
        .iter()
        .filter(|(k, _)| !BESIDE_KIND.contains(&k.key_text().as_str()))
        .collect();
    let Some((key, value)) = entries.first().map(|e| (&e.0, &e.1)) else {
        let given: Vec<String> = BESIDE_KIND
            .iter()
            .filter(|k| beside(k).is_some())
            .map(|k| format!("a `{k}`"))
            .collect();
        cx.error(
            node.pos,
            format!("a step has {} but no kind", given.join(" and ")),
            format!("add the step beside it, e.g. `http: {{ ... }}`; the kinds are {kinds}"),
        );
        return None;
    };
    let kind = key.key_text();
    if !STEP_KINDS.contains(&kind.as_str()) {
        let mut known = STEP_KINDS.to_vec();
        known.push("use");
        let guess = closest(&kind, &known)
            .map(|k| format!("did you mean `{k}`? "))
            .unwrap_or_default();
        cx.error(
            key.pos,
            format!("unknown step kind `{kind}`"),
            format!("{guess}the kinds are {kinds}"),
        );
        return None;
    }
    if let Some((other, _)) = entries.get(1) {
        cx.error(
            other.pos,
            format!(
                "a step has one kind, this one has `{kind}` and `{}`",
                other.key_text()
            ),
            format!("indent the fields of `{kind}` under it, or start a new step with `- `"),
        );
        return None;
    }
    if check_refs {
        scope.check(cx, value);
    }
    let kind = kinds::decode(&kind, cx, value, scope)?;
    Some(Step {
        file: cx.file.clone(),
        pos: key.pos,
        timeout,
        name,
        because,
        kind,
        via: Vec::new(),
    })
}

/// The keys that may stand beside a step's kind.
pub(crate) const BESIDE_KIND: [&str; 3] = ["timeout", "name", "because"];

/// A `name` or `because`: one non-empty line of plain text (it labels the
/// step in reports; `${...}` would print values, maybe secrets, so it is
/// not expanded and `${` is refused).
fn label_text(cx: &mut Cx<'_>, node: &Node, key: &str) -> Option<String> {
    let text = string(cx, node, key)?;
    let problem = if text.trim().is_empty() {
        Some(format!("`{key}` is empty"))
    } else if key == "name" && text.contains('\n') {
        Some("`name` is one line".to_owned())
    } else if text.contains("${") {
        Some(format!(
            "`{key}` is shown as written; `${{...}}` is not expanded in it"
        ))
    } else {
        None
    };
    if let Some(message) = problem {
        cx.error(
            node.pos,
            message,
            format!(
                "write plain text, e.g. `{key}: {}`",
                if key == "name" {
                    "create the lead"
                } else {
                    "a lead must reach the CRM within a minute"
                }
            ),
        );
        return None;
    }
    Some(text.trim().to_owned())
}

/// A `tenant` that must be one of the scenario's tenants.
pub(crate) fn tenant(cx: &mut Cx<'_>, f: &Fields<'_>, key: &str, scope: &Scope) -> Option<String> {
    let name = f.string(cx, key)?;
    if !scope.tenants.contains(&name) {
        let known: Vec<&str> = scope.tenants.iter().map(String::as_str).collect();
        let pos = f.get(key).map_or(f.pos, |n| n.pos);
        cx.error(
            pos,
            format!("tenant `{name}` is not one of the scenario's `tenants`"),
            if known.is_empty() {
                format!("declare it: `tenants: [{name}]`")
            } else {
                format!(
                    "the tenants are {}; add `{name}` to `tenants` to create it",
                    known.join(", ")
                )
            },
        );
        return None;
    }
    Some(name)
}

pub(crate) fn status(cx: &mut Cx<'_>, node: &Node) -> Option<u16> {
    let n = uint(cx, node, "status", 599)?;
    if n < 100 {
        cx.error(
            node.pos,
            format!("`status` {n} is not an HTTP status"),
            "use 100 to 599, e.g. `status: 201`",
        );
        return None;
    }
    u16::try_from(n).ok()
}

/// An expected value: its operators checked, kept as JSON.
pub(crate) fn expected(cx: &mut Cx<'_>, node: &Node, place: Place) -> serde_json::Value {
    ops::check(cx, node, place);
    node.to_json()
}

/// For a kind that does one of several actions, each with its own keys
/// (`ws: { connect: c, tenant, app }`): which action, its value, and the
/// keys that action takes (read them with `read::keyed`).
pub(crate) fn keyed_action<'n>(
    cx: &mut Cx<'_>,
    node: &'n Node,
    what: &str,
    actions: &[(&'static str, &'static [Key])],
) -> Option<(&'static str, &'n Node, &'static [Key])> {
    let names: Vec<&'static str> = actions.iter().map(|(name, _)| *name).collect();
    let (act, target) = action(cx, node, what, &names)?;
    let keys = actions
        .iter()
        .find(|(name, _)| *name == act)
        .map_or(&[][..], |(_, keys)| *keys);
    Some((act, target, keys))
}

/// Exactly one of `actions` among the keys: which, and its value.
pub(crate) fn action<'n>(
    cx: &mut Cx<'_>,
    node: &'n Node,
    what: &str,
    actions: &[&'static str],
) -> Option<(&'static str, &'n Node)> {
    let Value::Map(entries) = &node.value else {
        cx.error(
            node.pos,
            format!("{what} must be a map, found {}", node.describe()),
            format!("write e.g. `{{ {}: name }}`", actions[0]),
        );
        return None;
    };
    let found: Vec<(&'static str, &Node, Pos)> = actions
        .iter()
        .filter_map(|a| {
            entries
                .iter()
                .find(|(k, _)| k.key_text() == *a)
                .map(|(k, v)| (*a, v, k.pos))
        })
        .collect();
    match found.as_slice() {
        [(a, v, _)] => Some((a, v)),
        [] => {
            cx.error(
                node.pos,
                format!("{what} needs one of {}", actions.join(", ")),
                format!("add e.g. `{}: name`", actions[0]),
            );
            None
        }
        [_, (b, _, pos), ..] => {
            cx.error(
                *pos,
                format!(
                    "{what} does one thing; `{}` and `{b}` are both given",
                    found[0].0
                ),
                "split it into two steps",
            );
            None
        }
    }
}

/// A share from 0 to 1 (`ratio`, `toxicity`).
pub(crate) fn ratio(cx: &mut Cx<'_>, node: &Node) -> Option<f64> {
    let value = node.to_json().as_f64().filter(|r| (0.0..=1.0).contains(r));
    if value.is_none() {
        cx.error(
            node.pos,
            format!(
                "`ratio` must be a number from 0 to 1, found {}",
                node.describe()
            ),
            "write e.g. `ratio: 0.5` for half of the calls",
        );
    }
    value
}
