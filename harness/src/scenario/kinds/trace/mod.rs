//! The `trace` step: asserts on the spans the platform exported for this
//! run's requests (see [`crate::trace`]): which spans exist, how many, in
//! which order, under which parent, with which attributes, status and
//! duration; or that no span of a kind appears for a period.
//!
//! ```yaml
//! - trace:
//!     within: 10s
//!     spans:
//!       accept:  { service: flow-api, operation: createLead, count: 1 }
//!       job:     { operation: enqueue.process-lead, count: 1, child-of: accept }
//!       process: { service: worker, operation: process.process-lead, count: 1, child-of: job, status: ok }
//! - trace: { expect-none: { service: worker, status: error }, for: 1s }
//! ```
//!
//! Spans arrive a moment after the work they record (the services export
//! them in batches), so the step waits: it checks again whenever spans
//! arrive, until every selection holds or `within` runs out. The names it
//! selects by are the platform's contract (`contract/README.md`, Traces).

mod check;

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value as Json};

use super::{KindDef, StepCx, StepError};
use crate::scenario::ops::Place;
use crate::scenario::read::{fields, keyed, Cx, Fields};
use crate::scenario::schema::{self, Key};
use crate::scenario::steps::{expected, keyed_action};
use crate::scenario::vars::Scope;
use crate::scenario::yaml::{Node, Value};
use crate::trace::SpanKind;

/// How long a `trace: spans` step waits for its spans when `within` is
/// not given: the services export every 100 ms under the harness, and a
/// queue job may wait behind others.
const DEFAULT_WITHIN: Duration = Duration::from_secs(10);

/// A `trace` step.
#[derive(Debug, Clone, PartialEq)]
pub enum TraceStep {
    /// Every selection holds (checked again as spans arrive, up to `within`).
    Spans {
        within: Duration,
        spans: Vec<Selection>,
    },
    /// No span matches `select` for `period`.
    ExpectNone { select: Select, period: Duration },
}

/// Which spans of the run's traces a selection or `expect-none` is about.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Select {
    /// The resource's `service.name`.
    pub service: Option<String>,
    /// `tekup.operation`.
    pub operation: Option<String>,
    /// The span's name (`POST /leads`).
    pub name: Option<String>,
    pub kind: Option<SpanKind>,
    /// Attributes the span must have (values may hold operators).
    pub matching: BTreeMap<String, Json>,
    /// The status the span must have (`ok`: not an error).
    pub status: Option<StatusWant>,
}

/// A named selection of spans and what must hold of them.
#[derive(Debug, Clone, PartialEq)]
pub struct Selection {
    /// The key it is written under; `child-of`, `under` and `after` of
    /// other selections name it.
    pub name: String,
    pub select: Select,
    /// How many spans: a number (exactly) or operators (`{ $gte: 2 }`);
    /// `None`: at least one.
    pub count: Option<Json>,
    /// Every selected span has these attributes (operators allowed).
    pub attributes: BTreeMap<String, Json>,
    /// Every selected span has these events, this many times each (a
    /// number or operators).
    pub events: BTreeMap<String, Json>,
    pub min_duration: Option<Duration>,
    pub max_duration: Option<Duration>,
    /// Only spans whose parent is a span of this (earlier) selection.
    pub child_of: Option<String>,
    /// Only spans with a span of this (earlier) selection among their
    /// ancestors.
    pub under: Option<String>,
    /// Every selected span starts after every span of this selection ended.
    pub after: Option<String>,
}

/// The status a span must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusWant {
    /// Not an error (OTLP's `UNSET` or `OK`: instrumentation leaves a
    /// success unset).
    Ok,
    Error,
}

/// The keys that select spans.
const SELECT: [Key; 6] = [
    Key::new("service", schema::text)
        .help("The span's service (`service.name`: flow-api, worker)."),
    Key::new("operation", schema::text)
        .help("The span's `tekup.operation` (createLead, process.process-lead)."),
    Key::new("name", schema::text).help("The span's name (`POST /leads`)."),
    Key::new("kind", kind_schema).help("server, client, producer, consumer or internal."),
    Key::new("where", attributes_schema)
        .help("Attributes a span must have to be selected (values may hold operators)."),
    Key::new("status", status_schema)
        .help("Only spans with this status: `ok` (not an error) or `error`."),
];

/// The keys of one selection of `spans`.
const SELECTION: [Key; 14] = [
    SELECT[0],
    SELECT[1],
    SELECT[2],
    SELECT[3],
    SELECT[4],
    SELECT[5],
    Key::new("count", count_schema)
        .help("How many spans: a number (exactly), or operators (`{ $gte: 2 }`); at least one when left out."),
    Key::new("attributes", attributes_schema)
        .help("Attributes every selected span has (values may hold operators)."),
    Key::new("events", events_schema)
        .help("Events every selected span has, by name: how many (a number or operators)."),
    Key::new("min-duration", schema::duration).help("Every selected span lasted at least this long."),
    Key::new("max-duration", schema::duration).help("Every selected span lasted at most this long."),
    Key::new("child-of", schema::text)
        .help("Only spans whose parent is a span of this selection (written above)."),
    Key::new("under", schema::text)
        .help("Only spans with a span of this selection (written above) among their ancestors."),
    Key::new("after", schema::text)
        .help("Every selected span starts after every span of this selection (written above) ended."),
];

const SPANS: [Key; 2] = [
    Key::new("spans", spans_schema)
        .required()
        .help("Named selections of the run's spans, each with what must hold of it; all must hold at once."),
    Key::new("within", schema::duration)
        .help("How long to wait for the spans to arrive and hold (10s when left out)."),
];

const NONE: [Key; 2] = [
    Key::new("expect-none", none_schema).help("The spans that must not appear."),
    Key::new("for", schema::duration)
        .required()
        .help("How long no such span may appear."),
];

fn kind_schema() -> Json {
    json!({ "enum": ["server", "client", "producer", "consumer", "internal"] })
}

fn status_schema() -> Json {
    json!({ "enum": ["ok", "error"] })
}

fn count_schema() -> Json {
    json!({ "anyOf": [schema::count(), { "type": "object" }] })
}

fn attributes_schema() -> Json {
    json!({ "type": "object", "additionalProperties": schema::expected() })
}

fn events_schema() -> Json {
    json!({ "type": "object", "additionalProperties": count_schema() })
}

fn spans_schema() -> Json {
    json!({ "type": "object", "minProperties": 1, "additionalProperties": schema::object(&SELECTION) })
}

fn none_schema() -> Json {
    schema::object(&SELECT)
}

impl KindDef for TraceStep {
    const NAME: &'static str = "trace";
    const ABOUT: &'static str =
        "The spans the platform exported for this run's requests: named selections with count, order, parent, attributes, status and duration, waited for up to `within`; or `expect-none` for a period.";

    fn decode(cx: &mut Cx<'_>, node: &Node, _scope: &mut Scope) -> Option<Self> {
        decode(cx, node)
    }

    fn schema() -> Json {
        schema::actions(&[("spans", &SPANS), ("expect-none", &NONE)])
    }

    fn label(&self) -> String {
        match self {
            TraceStep::Spans { spans, .. } => {
                let names: Vec<String> = spans.iter().map(|s| s.name.clone()).collect();
                format!("trace: {}", names.join(", "))
            }
            TraceStep::ExpectNone { select, period } => {
                format!("trace: no {} for {period:?}", select.describe())
            }
        }
    }

    fn natural_wait(&self) -> Duration {
        match self {
            TraceStep::Spans { within, .. } => *within,
            TraceStep::ExpectNone { period, .. } => *period,
        }
    }

    async fn run(&self, cx: &mut StepCx<'_, '_>) -> Result<(), StepError> {
        check::run(cx, self).await
    }
}

impl Select {
    /// `worker process.process-lead` (what a message names it by).
    pub(crate) fn describe(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        if let Some(s) = &self.service {
            parts.push(s.clone());
        }
        if let Some(k) = self.kind {
            parts.push(k.to_string());
        }
        if let Some(o) = &self.operation {
            parts.push(o.clone());
        }
        if let Some(n) = &self.name {
            parts.push(format!("\"{n}\""));
        }
        for (k, v) in &self.matching {
            parts.push(format!("{k}={}", crate::scenario::run::check::short(v)));
        }
        if let Some(s) = self.status {
            parts.push(format!("status {}", s.as_str()));
        }
        if parts.is_empty() {
            "span".to_owned()
        } else {
            format!("span {}", parts.join(" "))
        }
    }
}

impl StatusWant {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            StatusWant::Ok => "ok",
            StatusWant::Error => "error",
        }
    }
}

fn decode(cx: &mut Cx<'_>, node: &Node) -> Option<TraceStep> {
    let what = "`trace` step";
    let (act, target, keys) =
        keyed_action(cx, node, what, &[("spans", &SPANS), ("expect-none", &NONE)])?;
    let f = keyed(cx, node, what, keys)?;
    if act == "expect-none" {
        let what = "`trace: expect-none`";
        let sf = fields(cx, target, what, &schema::names(&SELECT))?;
        let select = select(cx, &sf)?;
        let period = f.req_duration(cx, "for");
        return Some(TraceStep::ExpectNone {
            select,
            period: period?,
        });
    }
    let within = f.duration(cx, "within").unwrap_or(DEFAULT_WITHIN);
    let Value::Map(entries) = &target.value else {
        cx.error(
            target.pos,
            format!(
                "`spans` must be a map of named selections, found {}",
                target.describe()
            ),
            "write `spans: { accept: { service: flow-api, operation: createLead } }`",
        );
        return None;
    };
    if entries.is_empty() {
        cx.error(
            target.pos,
            "`spans` names no selection",
            "add one: `accept: { service: flow-api, operation: createLead }`",
        );
        return None;
    }
    let mut spans = Vec::new();
    let mut ok = true;
    for (key, value) in entries {
        let name = key.key_text();
        let what = format!("`spans.{name}`");
        match fields(cx, value, &what, &schema::names(&SELECTION)) {
            Some(sf) => match selection(cx, &sf, name) {
                Some(s) => spans.push(s),
                None => ok = false,
            },
            None => ok = false,
        }
    }
    // `child-of`, `under` and `after` name another selection of the step.
    let names: Vec<String> = spans.iter().map(|s| s.name.clone()).collect();
    for (index, (key, value)) in entries.iter().enumerate() {
        let Value::Map(inner) = &value.value else {
            continue;
        };
        for (k, v) in inner {
            let rel = k.key_text();
            if !["child-of", "under", "after"].contains(&rel.as_str()) {
                continue;
            }
            let target = v.to_json();
            let target = target.as_str().unwrap_or_default();
            if target == key.key_text() {
                cx.error(
                    v.pos,
                    format!("`{rel}: {target}` names its own selection"),
                    "name another selection of this step",
                );
                ok = false;
            } else if entries[index + 1..]
                .iter()
                .any(|(k, _)| k.key_text() == target)
            {
                cx.error(
                    v.pos,
                    format!("`{rel}: {target}` names a selection written after this one"),
                    format!(
                        "write `{target}` before `{}`: a selection names those above it",
                        key.key_text()
                    ),
                );
                ok = false;
            } else if !names.iter().any(|n| n == target) {
                let known: Vec<&str> = names.iter().map(String::as_str).collect();
                let guess = crate::scenario::read::closest(target, &known)
                    .map(|k| format!("did you mean `{k}`? "))
                    .unwrap_or_default();
                cx.error(
                    v.pos,
                    format!("`{rel}: {target}` names no selection of this step"),
                    format!("{guess}the selections are {}", known.join(", ")),
                );
                ok = false;
            }
        }
    }
    ok.then_some(TraceStep::Spans { within, spans })
}

fn select(cx: &mut Cx<'_>, f: &Fields<'_>) -> Option<Select> {
    let kind = match f.get("kind") {
        None => None,
        Some(n) => {
            let text = n.to_json();
            let text = text.as_str().unwrap_or_default();
            let kind = match text {
                "server" => SpanKind::Server,
                "client" => SpanKind::Client,
                "producer" => SpanKind::Producer,
                "consumer" => SpanKind::Consumer,
                "internal" => SpanKind::Internal,
                _ => {
                    cx.error(
                        n.pos,
                        format!("`kind` must be a span kind, found {}", n.describe()),
                        "write one of server, client, producer, consumer, internal",
                    );
                    return None;
                }
            };
            Some(kind)
        }
    };
    Some(Select {
        service: f.string(cx, "service"),
        operation: f.string(cx, "operation"),
        name: f.string(cx, "name"),
        kind,
        matching: attributes(cx, f, "where")?,
        status: status(cx, f)?,
    })
}

fn selection(cx: &mut Cx<'_>, f: &Fields<'_>, name: String) -> Option<Selection> {
    let select = select(cx, f)?;
    let how_many = match f.get("count") {
        None => None,
        Some(n) => Some(count(cx, n, "count")?),
    };
    let mut events = BTreeMap::new();
    if let Some(n) = f.get("events") {
        let Value::Map(entries) = &n.value else {
            cx.error(
                n.pos,
                format!(
                    "`events` must be a map of event names to counts, found {}",
                    n.describe()
                ),
                "write e.g. `events: { retry: 2 }` or `events: { retry: { $gte: 1 } }`",
            );
            return None;
        };
        for (k, v) in entries {
            events.insert(k.key_text(), count(cx, v, &k.key_text())?);
        }
    }
    let min_duration = f.duration(cx, "min-duration");
    let max_duration = f.duration(cx, "max-duration");
    Some(Selection {
        name,
        select,
        count: how_many,
        attributes: attributes(cx, f, "attributes")?,
        events,
        min_duration,
        max_duration,
        child_of: f.string(cx, "child-of"),
        under: f.string(cx, "under"),
        after: f.string(cx, "after"),
    })
}

/// A count: a whole number, or a map of operators (`{ $gte: 1 }`).
fn count(cx: &mut Cx<'_>, node: &Node, key: &str) -> Option<Json> {
    let value = node.to_json();
    match &value {
        Json::Number(n) if n.as_u64().is_some() => Some(value),
        Json::Object(_) => Some(expected(cx, node, Place::Json)),
        _ => {
            cx.error(
                node.pos,
                format!(
                    "`{key}` must be a whole number or operators, found {}",
                    node.describe()
                ),
                format!("write e.g. `{key}: 1` or `{key}: {{ $gte: 1 }}`"),
            );
            None
        }
    }
}

fn attributes(cx: &mut Cx<'_>, f: &Fields<'_>, key: &str) -> Option<BTreeMap<String, Json>> {
    let mut out = BTreeMap::new();
    let Some(node) = f.get(key) else {
        return Some(out);
    };
    let Value::Map(entries) = &node.value else {
        cx.error(
            node.pos,
            format!(
                "`{key}` must be a map of attribute names to values, found {}",
                node.describe()
            ),
            format!("write e.g. `{key}: {{ tekup.tenant_id: \"${{acme}}\" }}`"),
        );
        return None;
    };
    for (k, v) in entries {
        out.insert(k.key_text(), expected(cx, v, Place::Json));
    }
    Some(out)
}

fn status(cx: &mut Cx<'_>, f: &Fields<'_>) -> Option<Option<StatusWant>> {
    let Some(node) = f.get("status") else {
        return Some(None);
    };
    match node.to_json().as_str() {
        Some("ok") => Some(Some(StatusWant::Ok)),
        Some("error") => Some(Some(StatusWant::Error)),
        _ => {
            cx.error(
                node.pos,
                format!(
                    "`status` must be `ok` or `error`, found {}",
                    node.describe()
                ),
                "write `status: ok` (not an error) or `status: error`",
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::scenario::model::StepKind;
    use crate::scenario::parse_str;

    fn parse(body: &str) -> Result<TraceStep, String> {
        let text = format!("name: x\ntenants: [acme]\nsteps:\n{body}");
        match parse_str(Path::new("s.yaml"), &text) {
            Ok(s) => match s.steps.into_iter().next().map(|s| s.kind) {
                Some(StepKind::Trace(t)) => Ok(t),
                other => panic!("not a trace step: {other:?}"),
            },
            Err(e) => Err(e.to_string()),
        }
    }

    #[test]
    fn selections_keep_their_order_and_relations() {
        let step = parse(
            "  - trace:\n      within: 3s\n      spans:\n        accept: { service: flow-api, operation: createLead, count: 1, where: { tekup.tenant_id: \"${acme}\" } }\n        job: { operation: enqueue.process-lead, child-of: accept, count: { $gte: 1 }, kind: producer }\n        done: { service: worker, under: accept, after: job, status: ok, max-duration: 5s, events: { retry: 0 } }\n",
        )
        .unwrap();
        let TraceStep::Spans { within, spans } = step else {
            panic!("not spans: {step:?}");
        };
        assert_eq!(within, Duration::from_secs(3));
        let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["accept", "job", "done"]);
        assert_eq!(spans[0].count, Some(json!(1)));
        assert_eq!(
            spans[0].select.matching["tekup.tenant_id"],
            json!("${acme}")
        );
        assert_eq!(spans[1].select.kind, Some(SpanKind::Producer));
        assert_eq!(spans[1].child_of.as_deref(), Some("accept"));
        assert_eq!(spans[2].select.status, Some(StatusWant::Ok));
        assert_eq!(spans[2].max_duration, Some(Duration::from_secs(5)));
        assert_eq!(spans[2].events["retry"], json!(0));
    }

    #[test]
    fn expect_none_takes_a_status_and_a_period() {
        let step =
            parse("  - trace: { expect-none: { service: worker, status: error }, for: 1s }\n")
                .unwrap();
        assert_eq!(
            step,
            TraceStep::ExpectNone {
                select: Select {
                    service: Some("worker".into()),
                    status: Some(StatusWant::Error),
                    ..Select::default()
                },
                period: Duration::from_secs(1),
            }
        );
    }

    #[test]
    fn mistakes_are_named_where_they_are() {
        let cases = [
            (
                "  - trace: { spans: { a: { service: x, child-of: b } } }\n",
                "s.yaml:4:50: `child-of: b` names no selection of this step",
            ),
            (
                "  - trace: { spans: { a: { service: x, under: a } } }\n",
                "s.yaml:4:47: `under: a` names its own selection",
            ),
            (
                "  - trace: { spans: { a: { servise: x } } }\n",
                "unknown key `servise` in `spans.a`",
            ),
            (
                "  - trace: { spans: { a: { count: -1 } } }\n",
                "`count` must be a whole number or operators",
            ),
            (
                "  - trace: { spans: { a: { status: fine } } }\n",
                "`status` must be `ok` or `error`",
            ),
            (
                "  - trace: { spans: { a: { kind: sever } } }\n",
                "`kind` must be a span kind",
            ),
            ("  - trace: { spans: {} }\n", "`spans` names no selection"),
            (
                "  - trace: { spans: { a: { under: b }, b: { service: x } } }\n",
                "`under: b` names a selection written after this one",
            ),
            (
                "  - trace: { expect-none: { service: x } }\n",
                "needs `for`",
            ),
            (
                "  - trace: { spans: { a: { attributes: { x: { $regx: a } } } } }\n",
                "$regx",
            ),
        ];
        for (body, want) in cases {
            let err = parse(body).expect_err(body);
            assert!(err.contains(want), "{body}\nwanted: {want}\ngot: {err}");
        }
    }
}
