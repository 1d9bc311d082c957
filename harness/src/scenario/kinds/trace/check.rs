//! Evaluating a `trace` step against the run's spans, and saying what
//! is wrong in words and as a tree of what did arrive.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use serde_json::Value as Json;

use super::{Select, Selection, StatusWant, TraceStep};
use crate::scenario::kinds::{StepCx, StepError};
use crate::scenario::run::check::{mismatch, Mode};
use crate::scenario::run::Values;
use crate::trace::{harness_span, Span, StatusCode};

/// How many spans the failure's tree shows at most.
const TREE_LINES: usize = 200;

/// A `trace` step with every `${...}` expanded, ready to evaluate.
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    pub(crate) selections: Vec<Selection>,
}

impl Resolved {
    pub(crate) fn new(selections: &[Selection], values: &Values) -> Result<Self, String> {
        let selections = selections
            .iter()
            .map(|s| {
                Ok(Selection {
                    select: resolve_select(&s.select, values)?,
                    attributes: resolve_map(&s.attributes, values)?,
                    ..s.clone()
                })
            })
            .collect::<Result<_, String>>()?;
        Ok(Self { selections })
    }
}

fn resolve_select(select: &Select, values: &Values) -> Result<Select, String> {
    let text = |t: &Option<String>| t.as_deref().map(|t| values.text(t)).transpose();
    Ok(Select {
        service: text(&select.service)?,
        operation: text(&select.operation)?,
        name: text(&select.name)?,
        kind: select.kind,
        matching: resolve_map(&select.matching, values)?,
        status: select.status,
    })
}

fn resolve_map(
    map: &BTreeMap<String, Json>,
    values: &Values,
) -> Result<BTreeMap<String, Json>, String> {
    map.iter()
        .map(|(k, v)| Ok((k.clone(), values.json(v)?)))
        .collect()
}

/// Whether `span` is one `select` is about.
fn selects(select: &Select, span: &Span) -> bool {
    let eq =
        |want: &Option<String>, got: Option<&str>| want.as_deref().is_none_or(|w| Some(w) == got);
    eq(&select.service, Some(&span.service))
        && eq(&select.operation, span.operation())
        && eq(&select.name, Some(&span.name))
        && select.kind.is_none_or(|k| k == span.kind)
        && select.status.is_none_or(|s| status_is(s, span))
        && attributes_mismatch(&select.matching, span).is_none()
}

fn status_is(want: StatusWant, span: &Span) -> bool {
    match want {
        StatusWant::Ok => span.status.code != StatusCode::Error,
        StatusWant::Error => span.status.code == StatusCode::Error,
    }
}

fn attributes_mismatch(want: &BTreeMap<String, Json>, span: &Span) -> Option<String> {
    if want.is_empty() {
        return None;
    }
    let want = Json::Object(want.iter().map(|(k, v)| (k.clone(), v.clone())).collect());
    let got = Json::Object(
        span.attributes
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    );
    mismatch(&want, &got, "attributes", Mode::Subset)
}

/// Every way `resolved` fails on `spans` (the run's spans); empty when it
/// holds.
pub(crate) fn evaluate(resolved: &Resolved, spans: &[Span]) -> Vec<String> {
    let by_id: HashMap<(&str, &str), &Span> = spans
        .iter()
        .map(|s| ((s.trace_id.as_str(), s.span_id.as_str()), s))
        .collect();
    // In file order: `child-of` and `under` name earlier selections (the
    // decoder makes sure), whose spans are known by then.
    let mut selected: BTreeMap<&str, Vec<&Span>> = BTreeMap::new();
    let mut problems = Vec::new();
    for sel in &resolved.selections {
        let candidates: Vec<&Span> = spans.iter().filter(|s| selects(&sel.select, s)).collect();
        let related = |span: &Span| -> Option<String> {
            if let Some(other) = &sel.child_of {
                let parents = &selected[other.as_str()];
                let ok = span.parent_span_id.as_deref().is_some_and(|p| {
                    parents
                        .iter()
                        .any(|o| o.trace_id == span.trace_id && o.span_id == p)
                });
                if !ok {
                    return Some(format!("its parent is {}", parent_text(span, &by_id)));
                }
            }
            if let Some(other) = &sel.under {
                let above = &selected[other.as_str()];
                let ancestors = ancestors(span, &by_id);
                let ok = above
                    .iter()
                    .any(|o| o.trace_id == span.trace_id && ancestors.contains(o.span_id.as_str()));
                if !ok {
                    return Some(format!("its ancestors are {}", ancestry_text(span, &by_id)));
                }
            }
            None
        };
        let (mine, apart): (Vec<&Span>, Vec<&Span>) =
            candidates.into_iter().partition(|s| related(s).is_none());
        let mut relation = String::new();
        if let Some(other) = &sel.child_of {
            relation.push_str(&format!(", a child of `{other}`"));
        }
        if let Some(other) = &sel.under {
            relation.push_str(&format!(", under `{other}`"));
        }
        let what = format!("`{}` ({}{relation})", sel.name, sel.select.describe());
        let n = mine.len();
        let count_problem = match &sel.count {
            None if n == 0 => Some("expected at least one span, found none".to_owned()),
            None => None,
            Some(want) => mismatch(want, &Json::from(n), "count", Mode::Exact).map(|why| {
                let found = if n == 0 {
                    "none".to_owned()
                } else {
                    format!("{n}: {}", ids(&mine))
                };
                format!("{why} (found {found})")
            }),
        };
        if let Some(why) = count_problem {
            let mut text = format!("{what}: {why}");
            // What matched but for the relation: where the chain broke.
            for span in apart.iter().take(5) {
                let reason = related(span).unwrap_or_default();
                text.push_str(&format!("; {} matches but {reason}", span_ref(span)));
            }
            problems.push(text);
        }
        for span in &mine {
            let one = format!("{what} span {}", span_ref(span));
            if let Some(why) = attributes_mismatch(&sel.attributes, span) {
                problems.push(format!("{one}: {why}"));
            }
            for (event, want) in &sel.events {
                let got = span.events.iter().filter(|e| &e.name == event).count();
                if let Some(why) = mismatch(
                    want,
                    &Json::from(got),
                    &format!("events.{event}"),
                    Mode::Exact,
                ) {
                    problems.push(format!("{one}: {why}"));
                }
            }
            let took = Duration::from_nanos(span.duration_nanos());
            if let Some(min) = sel.min_duration.filter(|m| took < *m) {
                problems.push(format!("{one}: lasted {took:?}, expected at least {min:?}"));
            }
            if let Some(max) = sel.max_duration.filter(|m| took > *m) {
                problems.push(format!("{one}: lasted {took:?}, expected at most {max:?}"));
            }
            if let Some(other) = &sel.after {
                let before = &selected[other.as_str()];
                if let Some(late) = before
                    .iter()
                    .find(|o| o.end_unix_nano > span.start_unix_nano)
                {
                    problems.push(format!(
                        "{one}: expected to start after `{other}` ended, but it started {} before {} ended",
                        gap(late.end_unix_nano - span.start_unix_nano),
                        span_ref(late)
                    ));
                }
            }
        }
        selected.insert(sel.name.as_str(), mine);
    }
    problems
}

/// The span ids of a span's ancestors that arrived.
fn ancestors<'s>(span: &Span, by_id: &HashMap<(&str, &str), &'s Span>) -> BTreeSet<&'s str> {
    let mut out = BTreeSet::new();
    let mut at = span
        .parent_span_id
        .as_deref()
        .and_then(|p| by_id.get(&(span.trace_id.as_str(), p)).copied());
    while let Some(parent) = at {
        if !out.insert(parent.span_id.as_str()) {
            break; // a cycle: ids repeated by a broken exporter
        }
        at = parent
            .parent_span_id
            .as_deref()
            .and_then(|p| by_id.get(&(parent.trace_id.as_str(), p)).copied());
    }
    out
}

fn parent_text(span: &Span, by_id: &HashMap<(&str, &str), &Span>) -> String {
    match span.parent_span_id.as_deref() {
        None => "none: it starts its own trace".to_owned(),
        Some(p) => match by_id.get(&(span.trace_id.as_str(), p)) {
            Some(parent) => span_ref(parent),
            None if harness_span(&span.trace_id, p) => "the harness's request".to_owned(),
            None => format!("{p}, a span that never arrived"),
        },
    }
}

fn ancestry_text(span: &Span, by_id: &HashMap<(&str, &str), &Span>) -> String {
    let mut chain = Vec::new();
    let mut at = span;
    while let Some(p) = at.parent_span_id.as_deref() {
        match by_id.get(&(at.trace_id.as_str(), p)) {
            Some(parent) if chain.len() < 32 => {
                chain.push(span_ref(parent));
                at = parent;
            }
            Some(_) => break,
            None if harness_span(&at.trace_id, p) => {
                chain.push("the harness's request".to_owned());
                break;
            }
            None => {
                chain.push(format!("{p} (never arrived)"));
                break;
            }
        }
    }
    if chain.is_empty() {
        "none: it starts its own trace".to_owned()
    } else {
        chain.join(" < ")
    }
}

/// `flow-api "POST /leads" 3f2a9c01` (service, name, the span id's start).
fn span_ref(span: &Span) -> String {
    format!(
        "{} \"{}\" {}",
        span.service,
        span.name,
        &span.span_id[..span.span_id.len().min(8)]
    )
}

fn ids(spans: &[&Span]) -> String {
    spans
        .iter()
        .map(|s| span_ref(s))
        .collect::<Vec<_>>()
        .join(", ")
}

fn gap(nanos: u64) -> String {
    format!("{:.3} ms", nanos as f64 / 1e6)
}

/// The spans as indented trees, one per trace: service, kind, name,
/// operation, duration, status; a span whose parent never arrived is
/// marked so.
pub(crate) fn render_tree(spans: &[Span]) -> String {
    let mut out = String::new();
    let mut traces: BTreeMap<&str, Vec<&Span>> = BTreeMap::new();
    for s in spans {
        traces.entry(s.trace_id.as_str()).or_default().push(s);
    }
    let mut lines = 0;
    for (trace_id, spans) in &traces {
        let ids: BTreeSet<&str> = spans.iter().map(|s| s.span_id.as_str()).collect();
        let mut children: BTreeMap<&str, Vec<&Span>> = BTreeMap::new();
        let mut roots = Vec::new();
        for s in spans {
            match s.parent_span_id.as_deref() {
                Some(p) if ids.contains(p) && p != s.span_id => {
                    children.entry(p).or_default().push(s)
                }
                _ => roots.push(*s),
            }
        }
        let _ = writeln!(out, "trace {trace_id}");
        let mut stack: Vec<(&Span, usize)> = roots.iter().rev().map(|s| (*s, 1)).collect();
        let mut seen = BTreeSet::new();
        while let Some((s, depth)) = stack.pop() {
            if !seen.insert(s.span_id.as_str()) {
                continue;
            }
            lines += 1;
            if lines > TREE_LINES {
                let _ = writeln!(
                    out,
                    "… {} more spans not shown",
                    spans.len().saturating_sub(seen.len() - 1)
                );
                return out;
            }
            let orphan = match s.parent_span_id.as_deref() {
                Some(p) if harness_span(trace_id, p) => "  ← the harness".to_owned(),
                Some(p) if !ids.contains(p) => format!("  (parent {p} never arrived)"),
                _ => String::new(),
            };
            let status = match s.status.code {
                StatusCode::Error if s.status.message.is_empty() => "  ERROR".to_owned(),
                StatusCode::Error => format!("  ERROR: {}", s.status.message),
                _ => String::new(),
            };
            let op = s.operation().map(|o| format!(" [{o}]")).unwrap_or_default();
            let _ = writeln!(
                out,
                "{}{} {} \"{}\"{op} {}{status}{orphan}",
                "  ".repeat(depth),
                s.service,
                s.kind,
                s.name,
                gap(s.duration_nanos()),
            );
            if let Some(kids) = children.get(s.span_id.as_str()) {
                for k in kids.iter().rev() {
                    stack.push((k, depth + 1));
                }
            }
        }
    }
    if out.is_empty() {
        out.push_str("(no span of this run's traces arrived)\n");
    }
    out
}

/// Runs the step: waits for its selections to hold, or watches for
/// `expect-none`'s period.
pub(super) async fn run(cx: &mut StepCx<'_, '_>, step: &TraceStep) -> Result<(), StepError> {
    // Without the spans (an external deployment), the step cannot be
    // checked; the rest of the scenario still can. The label says so.
    if let Some(why) = cx.eco().traces_unavailable() {
        *cx.note = Some(format!("not checked: {why}"));
        return Ok(());
    }
    let started = Instant::now();
    match step {
        TraceStep::Spans { within, spans } => {
            let resolved = Resolved::new(spans, cx.values)?;
            let (seen, held) = watch(cx, started + *within, |seen| {
                evaluate(&resolved, seen).is_empty()
            })
            .await;
            cx.waited(started.elapsed());
            if held {
                *cx.note = Some(format!("{} span(s) in the run's traces", seen.len()));
                return Ok(());
            }
            Err(failure(cx, &evaluate(&resolved, &seen), &seen, *within))
        }
        TraceStep::ExpectNone { select, period } => {
            let select = resolve_select(select, cx.values)?;
            let (seen, appeared) = watch(cx, started + *period, |seen| {
                seen.iter().any(|s| selects(&select, s))
            })
            .await;
            cx.waited(started.elapsed());
            if !appeared {
                return Ok(());
            }
            let found: Vec<&Span> = seen.iter().filter(|s| selects(&select, s)).collect();
            Err(StepError {
                message: format!(
                    "trace: expected no {} for {period:?}, found {}: {}",
                    select.describe(),
                    found.len(),
                    ids(&found)
                ),
                response: Some(render_tree(&seen)),
                ..StepError::default()
            })
        }
    }
}

/// Reads the run's spans, and again whenever spans arrive, until `done`
/// holds of them or `deadline` passes (then reads them one last time:
/// some may have come with the deadline). Returns the last spans read and
/// whether `done` held of them.
async fn watch(
    cx: &StepCx<'_, '_>,
    deadline: Instant,
    mut done: impl FnMut(&[Span]) -> bool,
) -> (Vec<Span>, bool) {
    let changed = cx.eco().traces().changed();
    loop {
        // Registered before reading, so spans arriving in between wake us.
        let notified = changed.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let seen = cx.spans();
        if done(&seen) {
            return (seen, true);
        }
        let now = Instant::now();
        if now >= deadline
            || tokio::time::timeout(deadline - now, notified)
                .await
                .is_err()
        {
            let seen = cx.spans();
            let held = done(&seen);
            return (seen, held);
        }
    }
}

/// The failure: every problem, and the run's spans as a tree. Spans of
/// the run's tenants that arrived outside its traces are named too: they
/// are what a lost trace context leaves behind.
fn failure(cx: &StepCx<'_, '_>, problems: &[String], seen: &[Span], within: Duration) -> StepError {
    let mut message = format!(
        "trace: {} of the step's checks failed after waiting {within:?} ({} span(s) in the run's traces):",
        problems.len(),
        seen.len()
    );
    for p in problems {
        message.push_str("\n  - ");
        message.push_str(p);
    }
    let tenants: BTreeSet<String> = cx.values.tenants.values().map(|t| t.id.clone()).collect();
    let run_traces: BTreeSet<&str> = seen.iter().map(|s| s.trace_id.as_str()).collect();
    let strays: Vec<Span> = cx
        .eco()
        .traces()
        .all()
        .into_iter()
        .filter(|s| {
            !run_traces.contains(s.trace_id.as_str())
                && s.attribute_text("tekup.tenant_id")
                    .is_some_and(|t| tenants.contains(&t))
        })
        .collect();
    let mut tree = format!("the run's traces:\n{}", render_tree(seen));
    if !strays.is_empty() {
        message.push_str(&format!(
            "\n  {} span(s) of this run's tenants arrived outside its traces: a trace context was lost on the way (see below)",
            strays.len()
        ));
        tree.push_str(&format!(
            "\nspans of this run's tenants outside its traces:\n{}",
            render_tree(&strays)
        ));
    }
    StepError {
        message,
        response: Some(tree),
        ..StepError::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::{SpanEvent, SpanKind, SpanStatus};

    fn span(id: &str, parent: Option<&str>, service: &str, op: &str, start: u64, end: u64) -> Span {
        Span {
            trace_id: "a".repeat(32),
            span_id: format!("{id:0<16}"),
            parent_span_id: parent.map(|p| format!("{p:0<16}")),
            service: service.into(),
            name: op.into(),
            kind: SpanKind::Internal,
            start_unix_nano: start,
            end_unix_nano: end,
            attributes: BTreeMap::from([
                ("tekup.operation".to_owned(), Json::from(op)),
                ("tekup.tenant_id".to_owned(), Json::from("t1")),
            ]),
            events: Vec::new(),
            status: SpanStatus::default(),
        }
    }

    /// A lead's trace: accepted, enqueued, processed, a CRM call.
    fn lead() -> Vec<Span> {
        vec![
            span("1", None, "flow-api", "createLead", 0, 100),
            span("2", Some("1"), "flow-api", "enqueue.process-lead", 10, 20),
            span("3", Some("2"), "worker", "process.process-lead", 200, 400),
            span("4", Some("3"), "worker", "syncContact.call", 210, 300),
            span("5", Some("4"), "crm-api", "syncContact", 220, 290),
        ]
    }

    fn sel(name: &str, service: &str, op: &str) -> Selection {
        Selection {
            name: name.into(),
            select: Select {
                service: Some(service.into()),
                operation: Some(op.into()),
                ..Select::default()
            },
            count: None,
            attributes: BTreeMap::new(),
            events: BTreeMap::new(),
            min_duration: None,
            max_duration: None,
            child_of: None,
            under: None,
            after: None,
        }
    }

    fn chain() -> Vec<Selection> {
        let accept = sel("accept", "flow-api", "createLead");
        let job = Selection {
            child_of: Some("accept".into()),
            count: Some(Json::from(1)),
            ..sel("job", "flow-api", "enqueue.process-lead")
        };
        let mut process = Selection {
            child_of: Some("job".into()),
            after: Some("job".into()),
            count: Some(Json::from(1)),
            ..sel("process", "worker", "process.process-lead")
        };
        process.select.status = Some(StatusWant::Ok);
        let sync = Selection {
            under: Some("process".into()),
            attributes: BTreeMap::from([("tekup.tenant_id".to_owned(), Json::from("t1"))]),
            ..sel("sync", "crm-api", "syncContact")
        };
        vec![accept, job, process, sync]
    }

    fn check(selections: Vec<Selection>, spans: &[Span]) -> Vec<String> {
        evaluate(&Resolved { selections }, spans)
    }

    #[test]
    fn a_whole_trace_holds() {
        assert_eq!(check(chain(), &lead()), Vec::<String>::new());
    }

    #[test]
    fn a_lost_job_context_breaks_the_chain() {
        let mut spans = lead();
        // The worker's span starts a trace of its own: not among the run's.
        spans.retain(|s| s.service != "worker" && s.service != "crm-api");
        let problems = check(chain(), &spans);
        assert!(
            problems
                .iter()
                .any(|p| p.contains("`process`") && p.contains("found none")),
            "{problems:?}"
        );
        assert!(
            problems.iter().any(|p| p.contains("`sync`")),
            "{problems:?}"
        );
    }

    #[test]
    fn a_wrong_parent_is_named() {
        let mut spans = lead();
        spans[2].parent_span_id = Some(format!("{:0<16}", "1"));
        let problems = check(chain(), &spans);
        // `process` selects the successful processing that is a child of
        // `job`: there is none, and the span that is there is named with
        // its actual parent; `sync`, under `process`, goes with it.
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems[0].starts_with(
                "`process` (span worker process.process-lead status ok, a child of `job`): count: expected 1, got 0"
            ),
            "{problems:?}"
        );
        assert!(
            problems[0].contains(
                "worker \"process.process-lead\" 30000000 matches but its parent is flow-api \"createLead\" 10000000"
            ),
            "{problems:?}"
        );
        assert!(problems[1].starts_with("`sync`"), "{problems:?}");
    }

    #[test]
    fn a_duplicate_is_counted() {
        let mut spans = lead();
        let mut twice = spans[1].clone();
        twice.span_id = format!("{:0<16}", "9");
        spans.push(twice);
        let problems = check(chain(), &spans);
        assert!(
            problems
                .iter()
                .any(|p| p.contains("`job`") && p.contains("count: expected 1, got 2")),
            "{problems:?}"
        );
    }

    #[test]
    fn order_status_attributes_events_and_duration_bite() {
        let mut spans = lead();
        spans[2].start_unix_nano = 15; // before the enqueue span ended
        spans[4]
            .attributes
            .insert("tekup.tenant_id".into(), Json::from("t2"));
        let problems = check(chain(), &spans);
        let all = problems.join("\n");
        assert!(all.contains("expected to start after `job` ended"), "{all}");
        assert!(
            all.contains("attributes.tekup.tenant_id: expected \"t1\", got \"t2\""),
            "{all}"
        );

        // A failed attempt is not the successful processing `process` selects.
        let mut failed = lead();
        failed[2].status = SpanStatus {
            code: StatusCode::Error,
            message: "boom".into(),
        };
        let all = check(chain(), &failed).join("\n");
        assert!(
            all.contains(
                "`process` (span worker process.process-lead status ok, a child of `job`): count: expected 1, got 0"
            ),
            "{all}"
        );
        // A failed attempt before one that succeeded: still exactly one success.
        let mut retried = lead();
        let mut first = retried[2].clone();
        first.span_id = format!("{:0<16}", "8");
        first.status = SpanStatus {
            code: StatusCode::Error,
            message: "not there yet".into(),
        };
        retried.push(first);
        assert_eq!(check(chain(), &retried), Vec::<String>::new());

        let mut timed = sel("process", "worker", "process.process-lead");
        timed.max_duration = Some(Duration::from_nanos(100));
        timed.events = BTreeMap::from([("retry".to_owned(), Json::from(1))]);
        let problems = check(vec![timed.clone()], &lead()).join("\n");
        assert!(
            problems.contains("lasted 200ns, expected at most 100ns"),
            "{problems}"
        );
        assert!(
            problems.contains("events.retry: expected 1, got 0"),
            "{problems}"
        );
        let mut spans = lead();
        spans[2].events.push(SpanEvent {
            name: "retry".into(),
            time_unix_nano: 250,
            attributes: BTreeMap::new(),
        });
        timed.max_duration = None;
        assert_eq!(check(vec![timed], &spans), Vec::<String>::new());
    }

    #[test]
    fn count_takes_operators() {
        let mut any = sel("accept", "flow-api", "createLead");
        any.count = Some(serde_json::json!({ "$gte": 2 }));
        let problems = check(vec![any], &lead());
        assert!(problems[0].contains("count: expected >= 2"), "{problems:?}");
    }

    #[test]
    fn the_tree_shows_nesting_errors_and_orphans() {
        let mut spans = lead();
        spans[3].status = SpanStatus {
            code: StatusCode::Error,
            message: "503".into(),
        };
        spans.push(span(
            "7",
            Some("6"),
            "gateway",
            "deliver.LEAD_CREATED",
            500,
            510,
        ));
        let tree = render_tree(&spans);
        let lines: Vec<&str> = tree.lines().collect();
        assert_eq!(lines[0], format!("trace {}", "a".repeat(32)));
        assert!(
            lines[1].starts_with("  flow-api internal \"createLead\""),
            "{tree}"
        );
        assert!(
            lines[3].starts_with("      worker internal \"process.process-lead\""),
            "{tree}"
        );
        assert!(lines[4].contains("ERROR: 503"), "{tree}");
        assert!(
            tree.contains("(parent 6000000000000000 never arrived)"),
            "{tree}"
        );
    }
}
