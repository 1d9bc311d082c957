//! JUnit XML, the format every CI reads (GitHub and GitLab test reports,
//! Jenkins' `junit` step).
//!
//! What it guarantees:
//! - well-formed XML 1.0 whatever the scenarios logged: markup characters are
//!   escaped and the control characters XML forbids are replaced by a visible
//!   `\u{..}` (see [`super::text`]);
//! - the shape the common parsers agree on: `<testsuites>` holding one
//!   `<testsuite name="tekup-scenarios">` with `tests`, `failures`, `errors`,
//!   `skipped` and `time` (seconds); one `<testcase classname="scenarios">`
//!   per scenario with its `file`; a failed one has a `<failure message=..>`
//!   whose text is everything needed to act on it (location, message, diff,
//!   request, response, WebSocket events, component logs), a skipped one a
//!   `<skipped message="why"/>`; each has a `<system-out>` listing its steps.

use std::fmt::Write as _;

use super::model::{Failure, RunReport, ScenarioReport, Status, StepReport};
use super::text::{self, escape_attr, escape_text};

/// The `name` of the one `<testsuite>`.
pub const SUITE_NAME: &str = "tekup-scenarios";

/// The `classname` of every `<testcase>`.
pub const CLASS_NAME: &str = "scenarios";

/// Renders `report` as a JUnit XML document.
pub fn render(report: &RunReport) -> String {
    let counts = format!(
        r#"tests="{}" failures="{}" errors="0" skipped="{}" time="{}""#,
        report.scenarios.len(),
        report.failed(),
        report.skipped(),
        text::seconds(report.duration_ms),
    );
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(xml, r#"<testsuites name="tekup-harness" {counts}>"#);
    let _ = writeln!(xml, r#"  <testsuite name="{SUITE_NAME}" {counts}>"#);
    push_properties(&mut xml, report);
    for scenario in &report.scenarios {
        push_testcase(&mut xml, scenario);
    }
    xml.push_str("  </testsuite>\n</testsuites>\n");
    xml
}

fn push_properties(xml: &mut String, report: &RunReport) {
    xml.push_str("    <properties>\n");
    let jobs = report.jobs.to_string();
    for (name, value) in [
        ("startedAt", report.started_at.as_str()),
        ("runtime", report.runtime.as_str()),
        ("jobs", jobs.as_str()),
    ] {
        let _ = writeln!(
            xml,
            r#"      <property name="{name}" value="{}"/>"#,
            escape_attr(value)
        );
    }
    xml.push_str("    </properties>\n");
}

fn push_testcase(xml: &mut String, scenario: &ScenarioReport) {
    let _ = writeln!(
        xml,
        r#"    <testcase classname="{CLASS_NAME}" name="{}" file="{}" time="{}">"#,
        escape_attr(&scenario.name),
        escape_attr(&scenario.file),
        text::seconds(scenario.duration_ms),
    );
    match scenario.status {
        Status::Passed => {}
        Status::Skipped => match &scenario.skip_reason {
            Some(why) => {
                let _ = writeln!(xml, r#"      <skipped message="{}"/>"#, escape_attr(why));
            }
            None => xml.push_str("      <skipped/>\n"),
        },
        Status::Failed => push_failure(xml, scenario.failure.as_ref()),
    }
    let _ = writeln!(
        xml,
        "      <system-out>{}</system-out>",
        escape_text(&system_out(scenario))
    );
    xml.push_str("    </testcase>\n");
}

fn push_failure(xml: &mut String, failure: Option<&Failure>) {
    let (message, body) = match failure {
        Some(f) => (f.message.as_str(), failure_text(f)),
        None => (
            "scenario failed",
            "the runner recorded no details".to_owned(),
        ),
    };
    let _ = writeln!(
        xml,
        r#"      <failure message="{}" type="scenario">{}</failure>"#,
        escape_attr(message),
        escape_text(&body)
    );
}

/// The failure as plain text, the way a CI log viewer shows it.
fn failure_text(failure: &Failure) -> String {
    let mut out = format!("at {}", failure.location);
    if let Some(step) = failure.step {
        let _ = write!(out, " (step {step})");
    }
    let _ = write!(out, "\n{}\n", failure.message);
    if let Some(because) = &failure.because {
        let _ = writeln!(out, "because: {because}");
    }
    let blocks = [
        ("diff (- expected, + got)", failure.diff.as_deref()),
        ("request", failure.request.as_deref()),
        ("response", failure.response.as_deref()),
    ];
    for (title, block) in blocks {
        if let Some(block) = block {
            push_block(&mut out, title, block);
        }
    }
    for (connection, events) in &failure.ws_events {
        let title = format!("websocket `{connection}` received {} events", events.len());
        push_block(&mut out, &title, &events.join("\n"));
    }
    for (component, log) in &failure.logs {
        push_block(&mut out, &format!("log of `{component}`"), log);
    }
    out
}

fn push_block(out: &mut String, title: &str, body: &str) {
    let _ = write!(out, "\n{title}:\n{}", body.trim_end());
    out.push('\n');
}

/// The tenants and the steps a scenario ran, one line each.
fn system_out(scenario: &ScenarioReport) -> String {
    let mut out = String::new();
    if !scenario.tenants.is_empty() {
        let tenants: Vec<String> = scenario
            .tenants
            .iter()
            .map(|(name, id)| format!("{name}={id}"))
            .collect();
        let _ = writeln!(out, "tenants: {}", tenants.join(", "));
    }
    if scenario.steps.is_empty() {
        out.push_str("steps: none ran\n");
        return out;
    }
    out.push_str("steps:\n");
    for step in &scenario.steps {
        out.push_str(&step_line(step));
    }
    out
}

fn step_line(step: &StepReport) -> String {
    let attempts = match step.attempts {
        0 | 1 => String::new(),
        n => format!(", {n} attempts"),
    };
    format!(
        "{:>4}. {:<7} {} [{} {}] at {} ({}{attempts})\n",
        step.index,
        text::status(step.status),
        step.title(),
        text::section(step.section),
        step.kind,
        step.location,
        text::duration(step.duration_ms),
    )
}
