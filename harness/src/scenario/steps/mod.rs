//! Decoding of the step kinds: one function per kind, each checking its keys,
//! the types of their values, and the names it uses (tenants, connections).

use super::model::{
    EventuallyStep, HttpExpect, HttpStep, MockStep, RedisStep, SqlAs, SqlStep, Step, StepKind,
    WsStep, STEP_KINDS,
};
use super::ops::{self, Place};
use super::read::{boolean, closest, duration, fields, string, string_list, uint, Cx, Fields};
use super::vars::Scope;

mod effects;
mod request;

use super::yaml::{Node, Pos, Value};
use effects::{chaos, mock, redis};

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
    let what = format!("`{kind}` step");
    let kind = match kind.as_str() {
        "http" => StepKind::Http(http(cx, value, &what, scope)?),
        "ws" => StepKind::Ws(ws(cx, value, &what, scope)?),
        "eventually" => StepKind::Eventually(eventually(cx, value, &what, scope)?),
        "sql" => StepKind::Sql(sql(cx, value, &what, scope)?),
        "redis" => StepKind::Redis(redis(cx, value, &what, scope)?),
        "mock" => StepKind::Mock(mock(cx, value, &what)?),
        "chaos" => StepKind::Chaos(chaos(cx, value, &what)?),
        _ => StepKind::Sleep(duration(cx, value, "sleep")?),
    };
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
fn tenant(cx: &mut Cx<'_>, f: &Fields<'_>, key: &str, scope: &Scope) -> Option<String> {
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

fn http(cx: &mut Cx<'_>, node: &Node, what: &str, scope: &mut Scope) -> Option<HttpStep> {
    let f = fields(
        cx,
        node,
        what,
        &["service", "tenant", "app", "request", "expect", "save"],
    )?;
    let service = f.req_string(cx, "service", "service: flow-api");
    let tenant_name = f
        .get("tenant")
        .and_then(|_| tenant(cx, &f, "tenant", scope));
    let app = f.string(cx, "app");
    let request = f
        .require(cx, "request", "request: { method: GET, path: /health }")
        .and_then(|n| request::request(cx, n));
    let expect = f.get("expect").and_then(|n| {
        let e = fields(
            cx,
            n,
            "`expect` of an `http` step",
            &["status", "headers", "json", "json-schema", "body-contains"],
        )?;
        let body_contains = match e.get("body-contains") {
            None => Vec::new(),
            Some(
                n @ Node {
                    value: Value::Seq(_),
                    ..
                },
            ) => string_list(cx, n, "body-contains")
                .into_iter()
                .map(|(s, _)| s)
                .collect(),
            Some(n) => string(cx, n, "body-contains").into_iter().collect(),
        };
        Some(HttpExpect {
            status: e.get("status").and_then(|s| status(cx, s)),
            headers: request::expected_headers(cx, &e),
            json: e.get("json").map(|n| expected(cx, n, Place::Json)),
            json_schema: e.json("json-schema"),
            body_contains,
        })
    });
    let mut save = std::collections::BTreeMap::new();
    if let Some(n) = f.get("save") {
        match &n.value {
            Value::Map(entries) => {
                for (k, v) in entries {
                    let Some(path) = string(cx, v, &k.key_text()) else {
                        continue;
                    };
                    if !path.starts_with('$') {
                        cx.error(
                            v.pos,
                            format!("`{path}` is not a JSONPath"),
                            "a JSONPath starts at the response body's root: `$.id`, `$.data[0].id`",
                        );
                        continue;
                    }
                    save.insert(k.key_text(), path);
                }
            }
            _ => cx.error(
                n.pos,
                format!(
                    "`save` must be a map of names to JSONPaths, found {}",
                    n.describe()
                ),
                "write `save: { lead: $.id }`, then use `${lead}` in later steps",
            ),
        }
    }
    scope.saved.extend(save.keys().cloned());
    Some(HttpStep {
        service: service?,
        tenant: tenant_name,
        app,
        request: request?,
        expect,
        save,
    })
}

pub(super) fn status(cx: &mut Cx<'_>, node: &Node) -> Option<u16> {
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
pub(super) fn expected(cx: &mut Cx<'_>, node: &Node, place: Place) -> serde_json::Value {
    ops::check(cx, node, place);
    node.to_json()
}

/// Exactly one of `actions` among the keys: which, and its value.
pub(super) fn action<'n>(
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

fn ws(cx: &mut Cx<'_>, node: &Node, what: &str, scope: &mut Scope) -> Option<WsStep> {
    let (act, target) = action(
        cx,
        node,
        what,
        &["connect", "expect", "expect-none", "send"],
    )?;
    let what = format!("`ws: {act}` step");
    let allowed: &[&str] = match act {
        "connect" => &["connect", "tenant", "app"],
        "expect" => &["expect", "event", "within", "data", "envelope"],
        "expect-none" => &["expect-none", "event", "for"],
        _ => &["send", "event", "data"],
    };
    let f = fields(cx, node, &what, allowed)?;
    let name = string(cx, target, act)?;
    if act == "connect" {
        let tenant_name = f
            .require(cx, "tenant", "tenant: acme")
            .and_then(|_| tenant(cx, &f, "tenant", scope));
        let app = f.req_string(cx, "app", "app: crm-web");
        scope.connections.insert(name.clone());
        return Some(WsStep::Connect {
            name,
            tenant: tenant_name?,
            app: app?,
        });
    }
    if !scope.connections.contains(&name) {
        let known: Vec<&str> = scope.connections.iter().map(String::as_str).collect();
        let guess = closest(&name, &known)
            .map(|k| format!("did you mean `{k}`? "))
            .unwrap_or_default();
        cx.error(
            target.pos,
            format!("no WebSocket connection `{name}` is open here"),
            format!(
                "{guess}open it first: `- ws: {{ connect: {name}, tenant: acme, app: crm-web }}`"
            ),
        );
        return None;
    }
    match act {
        "expect" => {
            let event = f.req_string(cx, "event", "event: LEAD_CREATED");
            let within = f.req_duration(cx, "within");
            Some(WsStep::Expect {
                name,
                event: event?,
                within: within?,
                data: f.get("data").map(|n| expected(cx, n, Place::Json)),
                envelope: f.get("envelope").map(|n| expected(cx, n, Place::Json)),
            })
        }
        "expect-none" => {
            let event = f.string(cx, "event");
            let duration = f.req_duration(cx, "for");
            Some(WsStep::ExpectNone {
                name,
                event,
                duration: duration?,
            })
        }
        _ => {
            let event = f.req_string(cx, "event", "event: LEAD_CREATED");
            Some(WsStep::Send {
                name,
                event: event?,
                data: f.json("data"),
            })
        }
    }
}

fn eventually(
    cx: &mut Cx<'_>,
    node: &Node,
    what: &str,
    scope: &mut Scope,
) -> Option<EventuallyStep> {
    let Value::Map(entries) = &node.value else {
        cx.error(
            node.pos,
            format!("{what} must be a map, found {}", node.describe()),
            "write `within: 5s` and one step kind under it",
        );
        return None;
    };
    let f = fields(
        cx,
        node,
        what,
        &[
            "within",
            "fail-fast-on",
            "holds-for",
            "http",
            "ws",
            "sql",
            "redis",
            "mock",
        ],
    )?;
    let within = f.req_duration(cx, "within");
    let holds_for = f
        .get("holds-for")
        .and_then(|n| duration(cx, n, "holds-for"));
    if holds_for == Some(std::time::Duration::ZERO) {
        cx.error(
            f.key_pos("holds-for").unwrap_or(f.pos),
            "`holds-for: 0s` holds for no time",
            "give the period the step must keep passing, e.g. `holds-for: 2s`, or leave it out",
        );
    }
    let fail_fast_on = match f.get("fail-fast-on") {
        None => None,
        Some(n) => Some(condition(cx, n, scope)?),
    };
    let inner: Vec<&(Node, Node)> = entries
        .iter()
        .filter(|(k, _)| !["within", "fail-fast-on", "holds-for"].contains(&k.key_text().as_str()))
        .collect();
    let step_node = match inner.as_slice() {
        [one] => Node {
            pos: node.pos,
            value: Value::Map(vec![(*one).clone()]),
        },
        [] => {
            cx.error(
                node.pos,
                format!("{what} needs one step to retry"),
                "add e.g. `http: { ... }` next to `within`",
            );
            return None;
        }
        [_, (k, _), ..] => {
            cx.error(
                k.pos,
                format!(
                    "{what} retries one step, found a second (`{}`)",
                    k.key_text()
                ),
                "use one `eventually` per step; a known-bad state goes under `fail-fast-on:`",
            );
            return None;
        }
    };
    let step = step(cx, &step_node, scope, false)?;
    Some(EventuallyStep {
        within: within?,
        step: Box::new(step),
        fail_fast_on: fail_fast_on.map(Box::new),
        holds_for,
    })
}

/// `fail-fast-on: { http: {...} }`: a step that checks a known-bad state
/// (one of the kinds `eventually` retries; it may carry `name`).
fn condition(cx: &mut Cx<'_>, node: &Node, scope: &mut Scope) -> Option<Step> {
    const CHECKS: [&str; 5] = ["http", "ws", "sql", "redis", "mock"];
    let hint = "write the known-bad state as one step: `fail-fast-on: { name: lead rejected, http: { ... } }`";
    let Value::Map(entries) = &node.value else {
        cx.error(
            node.pos,
            format!(
                "`fail-fast-on` must be a map with one step, found {}",
                node.describe()
            ),
            hint,
        );
        return None;
    };
    for (k, _) in entries {
        let key = k.key_text();
        if key == "timeout" || key == "because" {
            cx.error(
                k.pos,
                format!("`{key}` does not apply to `fail-fast-on`"),
                "the step under `fail-fast-on` runs within the `eventually`'s deadline; name it with `name:`",
            );
            return None;
        }
        if STEP_KINDS.contains(&key.as_str()) && !CHECKS.contains(&key.as_str()) {
            cx.error(
                k.pos,
                format!("`fail-fast-on` checks a state; `{key}` does not"),
                format!("use one of {}", CHECKS.join(", ")),
            );
            return None;
        }
    }
    let step = step(cx, node, scope, false)?;
    let acts = match &step.kind {
        StepKind::Mock(MockStep::Set { .. } | MockStep::Fault { .. } | MockStep::Clear { .. }) => {
            Some("changes a mock")
        }
        StepKind::Ws(WsStep::Connect { .. } | WsStep::Send { .. }) => Some("acts on a connection"),
        StepKind::Redis(RedisStep::Enqueue { .. }) => Some("adds a job"),
        _ => None,
    };
    if let Some(acts) = acts {
        cx.error(
            step.pos,
            format!("`fail-fast-on` checks a state; this `{}` step {acts}", step.kind.name()),
            "check with `http`, `sql`, `redis` (queue, key), `mock: { expect: ... }` or `ws` expect",
        );
        return None;
    }
    Some(step)
}

fn sql(cx: &mut Cx<'_>, node: &Node, what: &str, scope: &mut Scope) -> Option<SqlStep> {
    let (act, _) = action(cx, node, what, &["tenant", "admin"])?;
    let f = fields(cx, node, what, &[act, "query", "args", "expect", "error"])?;
    let run_as = if act == "tenant" {
        SqlAs::Tenant(tenant(cx, &f, "tenant", scope)?)
    } else {
        let admin = f.get("admin").and_then(|n| boolean(cx, n, "admin"))?;
        if !admin {
            cx.error(
                f.key_pos("admin").unwrap_or(f.pos),
                "`admin: false` says nothing",
                "run as a tenant with `tenant: acme`, or write `admin: true`",
            );
            return None;
        }
        SqlAs::Admin
    };
    let query = f.req_string(cx, "query", "query: \"select 1\"");
    let args = match f.get("args") {
        None => Vec::new(),
        Some(Node {
            value: Value::Seq(items),
            ..
        }) => items.iter().map(Node::to_json).collect(),
        Some(n) => {
            cx.error(
                n.pos,
                format!("`args` must be a list, found {}", n.describe()),
                "write `args: [\"${lead}\", 1]` for $1, $2",
            );
            return None;
        }
    };
    let expect = match f.get("expect") {
        None => None,
        Some(n) => Some(rows(cx, n)?),
    };
    let error = f.string(cx, "error");
    if error.is_some() && expect.is_some() {
        cx.error(
            f.key_pos("error").unwrap_or(f.pos),
            "a query either returns rows (`expect`) or fails (`error`), not both",
            "keep one of them",
        );
        return None;
    }
    Some(SqlStep {
        run_as,
        query: query?,
        args,
        expect,
        error,
    })
}

fn rows(cx: &mut Cx<'_>, node: &Node) -> Option<Vec<Vec<serde_json::Value>>> {
    let hint = "write the rows as a list of lists: `expect: [[1, \"a\"], [2, \"b\"]]`";
    let Value::Seq(items) = &node.value else {
        cx.error(
            node.pos,
            format!("`expect` must be a list of rows, found {}", node.describe()),
            hint,
        );
        return None;
    };
    let mut out = Vec::new();
    for row in items {
        match &row.value {
            Value::Seq(cells) => {
                out.push(cells.iter().map(|c| expected(cx, c, Place::Cell)).collect())
            }
            _ => {
                cx.error(
                    row.pos,
                    format!("a row must be a list, found {}", row.describe()),
                    hint,
                );
                return None;
            }
        }
    }
    Some(out)
}
