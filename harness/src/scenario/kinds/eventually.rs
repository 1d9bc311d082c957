//! The `eventually` step: retries one inner step until it passes or its
//! `within` runs out, waking on what the run observes (a bus event of its
//! tenants, a WebSocket frame) rather than polling on a fixed clock;
//! `fail-fast-on` stops early on a known-bad state, `holds-for` makes a
//! passing step keep passing for a period.

use std::time::{Duration, Instant};

use serde_json::{json, Value as Json};

use super::{retried_kinds, KindDef, StepCx, StepError, STEP_KINDS};
use crate::scenario::model::{Need, Step};
use crate::scenario::read::{duration, fields, Cx};
use crate::scenario::schema::{self, Key};
use crate::scenario::steps::step;
use crate::scenario::vars::Scope;
use crate::scenario::yaml::{Node, Value};

/// Retries one inner step until it passes or the deadline passes.
#[derive(Debug, Clone, PartialEq)]
pub struct EventuallyStep {
    pub within: Duration,
    pub step: Box<Step>,
    /// `fail-fast-on:` a known-bad state: when this step passes while the
    /// inner one still fails, the retrying stops at once with a failure.
    pub fail_fast_on: Option<Box<Step>>,
    /// `holds-for:` once the inner step passes, it must keep passing for
    /// this long (checked again and again; the first failure fails it).
    pub holds_for: Option<Duration>,
}

/// The keys of an `eventually` beside its one inner step (one of
/// [`retried_kinds`]).
const KEYS: [Key; 3] = [
    Key::new("within", schema::duration)
        .required()
        .help("How long the inner step is retried."),
    Key::new("fail-fast-on", fail_fast_schema).help(
        "A known-bad state: when this step passes while the retried one fails, the retrying stops with a failure.",
    ),
    Key::new("holds-for", schema::duration)
        .help("Once the step passes, it must keep passing for this long (checked again and again)."),
];

fn fail_fast_schema() -> Json {
    let mut props = serde_json::Map::new();
    for kind in retried_kinds() {
        props.insert(
            kind.to_owned(),
            json!({ "$ref": format!("#/$defs/{kind}") }),
        );
    }
    props.insert(
        "name".to_owned(),
        json!({ "type": "string", "minLength": 1, "pattern": "^[^\\n]*$" }),
    );
    json!({ "type": "object", "additionalProperties": false,
            "minProperties": 1, "maxProperties": 2, "properties": props })
}

impl KindDef for EventuallyStep {
    const NAME: &'static str = "eventually";
    const ABOUT: &'static str =
        "Retries one step of a kind that checks (its properties list them) until it passes or `within` runs out.";

    fn decode(cx: &mut Cx<'_>, node: &Node, scope: &mut Scope) -> Option<Self> {
        decode(cx, node, "`eventually` step", scope)
    }

    fn schema() -> Json {
        let mut schema = schema::object(&KEYS);
        for kind in retried_kinds() {
            schema["properties"][kind] = json!({ "$ref": format!("#/$defs/{kind}") });
        }
        schema["minProperties"] = json!(2);
        schema["maxProperties"] = json!(4);
        schema
    }

    fn label(&self) -> String {
        let holds = self
            .holds_for
            .map(|d| format!(", holding for {d:?}"))
            .unwrap_or_default();
        let bad = self
            .fail_fast_on
            .as_ref()
            .map(|b| {
                let what = b.name.clone().unwrap_or_else(|| b.kind.label());
                format!(" (fails fast on: {what})")
            })
            .unwrap_or_default();
        format!(
            "eventually within {:?}{holds}: {}{bad}",
            self.within,
            self.step.kind.label()
        )
    }

    fn natural_wait(&self) -> Duration {
        self.within + self.holds_for.unwrap_or_default()
    }

    fn needs(&self) -> Option<Need> {
        self.step
            .kind
            .needs()
            .or_else(|| self.fail_fast_on.as_ref()?.kind.needs())
    }

    fn alone(&self) -> bool {
        self.step.kind.alone()
    }

    async fn run(&self, cx: &mut StepCx<'_, '_>) -> Result<(), StepError> {
        let (result, attempts) = retry(cx, self).await;
        cx.attempts = attempts;
        result
    }
}

fn decode(cx: &mut Cx<'_>, node: &Node, what: &str, scope: &mut Scope) -> Option<EventuallyStep> {
    let Value::Map(entries) = &node.value else {
        cx.error(
            node.pos,
            format!("{what} must be a map, found {}", node.describe()),
            "write `within: 5s` and one step kind under it",
        );
        return None;
    };
    let own = schema::names(&KEYS);
    let mut allowed = own.clone();
    allowed.extend(retried_kinds());
    let f = fields(cx, node, what, &allowed)?;
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
        .filter(|(k, _)| !own.contains(&k.key_text().as_str()))
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
    let checks = retried_kinds();
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
        if STEP_KINDS.contains(&key.as_str()) && !checks.contains(&key.as_str()) {
            cx.error(
                k.pos,
                format!("`fail-fast-on` checks a state; `{key}` does not"),
                format!("use one of {}", checks.join(", ")),
            );
            return None;
        }
    }
    let step = step(cx, node, scope, false)?;
    if let Some(acts) = step.kind.acts() {
        cx.error(
            step.pos,
            format!("`fail-fast-on` checks a state; this `{}` step {acts}", step.kind.name()),
            format!(
                "check with a step that only looks: one of {}, not an action that changes something",
                retried_kinds().join(", ")
            ),
        );
        return None;
    }
    Some(step)
}

/// One attempt of an inner step (boxed: the kinds' futures contain this one).
async fn attempt(cx: &mut StepCx<'_, '_>, step: &Step) -> Result<(), StepError> {
    Box::pin(step.kind.run(&mut cx.reborrow())).await
}

/// Retries the inner step until it passes or `within` runs out. Between
/// attempts it waits for something to happen (a bus event of the run's
/// tenants, a WebSocket frame) or a short backoff, whichever is first.
/// After each failed attempt, a `fail-fast-on` step that passes stops
/// it at once; a pass is followed by the `holds-for` period.
async fn retry(cx: &mut StepCx<'_, '_>, e: &EventuallyStep) -> (Result<(), StepError>, u32) {
    let deadline = tokio::time::Instant::now() + e.within;
    let mut backoff = Duration::from_millis(20);
    let mut attempts = 0;
    loop {
        attempts += 1;
        let changed = cx.changed();
        let notified = changed.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let result = attempt(cx, &e.step).await;
        let Err(mut error) = result else {
            return match e.holds_for {
                None => (Ok(()), attempts),
                Some(period) => holds(cx, &e.step, period, attempts).await,
            };
        };
        if let Some(bad) = &e.fail_fast_on {
            // Its own result is not the step's: keep the note of the inner step.
            let note = cx.note.take();
            let bad_holds = attempt(cx, bad).await.is_ok();
            *cx.note = note;
            if bad_holds {
                let what = bad.name.clone().unwrap_or_else(|| bad.kind.label());
                error.message = format!(
                    "stopped after {attempts} attempt(s): the known-bad state `{what}` ({}:{}) holds \
                     (`fail-fast-on`); the step was still failing: {}",
                    bad.file.display(),
                    bad.pos.line,
                    error.message
                );
                return (Err(error), attempts);
            }
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            error.message = format!(
                "still failing after {attempts} attempt(s) within {:?}: {}",
                e.within, error.message
            );
            return (Err(error), attempts);
        }
        let wait = backoff.min(deadline - now);
        wait_for_change(cx, notified, wait).await;
        backoff = (backoff * 2).min(Duration::from_millis(500));
    }
}

/// `holds-for`: the step passed; it is checked again whenever
/// something happens or after a short backoff, and once more when the
/// period has passed. The clock only bounds the window: the verdict is
/// the checks', the first failing one fails the step.
async fn holds(
    cx: &mut StepCx<'_, '_>,
    step: &Step,
    period: Duration,
    mut attempts: u32,
) -> (Result<(), StepError>, u32) {
    let started = tokio::time::Instant::now();
    let end = started + period;
    let mut backoff = Duration::from_millis(20);
    let mut checks = 1;
    loop {
        let now = tokio::time::Instant::now();
        if now >= end {
            return (Ok(()), attempts);
        }
        let changed = cx.changed();
        let notified = changed.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        wait_for_change(cx, notified, backoff.min(end - now)).await;
        attempts += 1;
        checks += 1;
        if let Err(mut error) = attempt(cx, step).await {
            error.message = format!(
                "held for {:?} of its {period:?} (`holds-for`), then failed at check {checks}: {}",
                started.elapsed(),
                error.message
            );
            return (Err(error), attempts);
        }
        backoff = (backoff * 2).min(Duration::from_millis(250));
    }
}

/// Waits until something the run can observe happened, or `wait`.
async fn wait_for_change(
    cx: &mut StepCx<'_, '_>,
    notified: std::pin::Pin<&mut tokio::sync::futures::Notified<'_>>,
    wait: Duration,
) {
    let waited = Instant::now();
    tokio::select! {
        () = notified => {}
        () = tokio::time::sleep(wait) => {}
    }
    cx.waited(waited.elapsed());
}
