//! The HTML report: one self-contained page a person opens after a run.
//!
//! What it guarantees:
//! - one file: CSS inline, no external URL, no font or script to fetch; it
//!   works opened from a CI artifact or an air-gapped machine. Sections
//!   collapse with `<details>`, so it needs no JavaScript (a few lines of it
//!   only add "expand all" / "collapse all");
//! - every text that came from a scenario, a service or a log is escaped, so
//!   a scenario named `<script>` is shown, never run;
//! - a header with the run's summary, then one section per scenario (failed
//!   ones open): its tenants, its failure (message, coloured diff, request,
//!   response, WebSocket events, component logs), its steps with the time
//!   spent in the engine and in the system under test, a sequence
//!   diagram of its messages (see [`super::sequence`]) and a waterfall of
//!   the spans its traces left (see [`super::waterfall`]).

use std::fmt::Write as _;

use super::model::{Failure, RunReport, ScenarioReport, Status, StepReport};
use super::text::{self, escape_text};
use super::{sequence, waterfall};

pub(crate) const STYLE: &str = r#"
:root { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #111827; }
body { margin: 0 auto; max-width: 1400px; padding: 1rem 1.5rem 3rem; }
h1 { font-size: 1.4rem; margin: 0 0 .3rem; }
h3 { font-size: 1.05rem; margin: 1.2rem 0 .4rem; }
h4 { font-size: .95rem; margin: .9rem 0 .3rem; }
code, pre, .seq text { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; font-size: 12px; }
pre { background: #f9fafb; border: 1px solid #e5e7eb; border-radius: 4px; padding: .5rem .7rem;
      overflow: auto; max-height: 32rem; white-space: pre-wrap; overflow-wrap: anywhere; margin: 0; }
.verdict { font-size: 1.15rem; font-weight: 600; margin: .2rem 0 .6rem; }
.run { display: flex; flex-wrap: wrap; gap: .3rem 1.6rem; margin: 0 0 .8rem; }
.run div { display: flex; gap: .4rem; } .run dt { color: #6b7280; } .run dd { margin: 0; }
.status { display: inline-block; min-width: 4.2rem; text-align: center; border-radius: 3px;
          padding: 0 .35rem; font-size: 12px; font-weight: 600; color: #fff; }
.status.passed { background: #15803d; } .status.failed { background: #b91c1c; } .status.skipped { background: #6b7280; }
.passed-text { color: #15803d; } .failed-text { color: #b91c1c; } .muted { color: #6b7280; }
details.scenario { border: 1px solid #d1d5db; border-radius: 6px; margin: .6rem 0; }
details.scenario.failed { border-color: #fca5a5; }
details.scenario > summary { cursor: pointer; padding: .5rem .8rem; display: flex; gap: .8rem; align-items: baseline; }
details.scenario > summary .name { font-weight: 600; }
details.scenario > .body { padding: 0 1rem 1rem; border-top: 1px solid #e5e7eb; }
table { border-collapse: collapse; font-size: 13px; }
th, td { text-align: left; padding: .2rem .55rem; border-bottom: 1px solid #e5e7eb; vertical-align: top; }
th { background: #f3f4f6; font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.failed td { background: #fef2f2; }
.failure { border-left: 4px solid #b91c1c; padding: .1rem 0 .3rem .9rem; }
.diff .add { color: #166534; background: #dcfce7; } .diff .del { color: #991b1b; background: #fee2e2; }
.diff .hunk { color: #1d4ed8; }
.seq { overflow-x: auto; border: 1px solid #e5e7eb; border-radius: 4px; background: #fff; }
.legend { display: flex; gap: 1rem; font-size: 12px; color: #374151; }
.note { color: #92400e; }
nav button { font: inherit; font-size: 12px; margin-right: .4rem; }
.wf-wrap { overflow-x: auto; border: 1px solid #e5e7eb; border-radius: 4px; }
table.waterfall { width: 100%; table-layout: fixed; }
table.waterfall th:nth-child(1) { width: 34%; } table.waterfall th:nth-child(2) { width: 11%; }
table.waterfall th:nth-child(3) { width: 7%; }
tr.trace-head th { background: #eef2ff; font-weight: 500; }
td.wf-name { overflow: hidden; white-space: nowrap; text-overflow: ellipsis; }
td.wf-name details { display: inline; } td.wf-name summary { cursor: pointer; display: inline; }
td.wf-name pre { white-space: pre-wrap; font-size: 11px; margin-top: .2rem; }
td.wf-time { position: relative; }
.wf-bar { height: 10px; min-width: 2px; margin-top: 4px; background: #2563eb; border-radius: 2px; }
.wf-bar.error, tr.span.error td.wf-name summary { background: #dc2626; color: #fff; }
.wf-err { color: #b91c1c; } tr.span.orphan td { background: #fffbeb; }
"#;

const SCRIPT: &str = r#"
function setAll(open) {
  document.querySelectorAll("details.scenario").forEach(function (d) { d.open = open; });
}
"#;

/// Renders `report` as a self-contained HTML page.
pub fn render(report: &RunReport) -> String {
    let mut page = String::with_capacity(64 * 1024);
    push_head(&mut page, report);
    push_header(&mut page, report);
    page.push_str("<main>\n");
    for (index, scenario) in report.scenarios.iter().enumerate() {
        push_scenario(&mut page, index, scenario);
    }
    if report.scenarios.is_empty() {
        page.push_str("<p class=\"muted\">No scenario ran.</p>\n");
    }
    page.push_str("</main>\n</body>\n</html>\n");
    page
}

fn verdict(report: &RunReport) -> String {
    let mut verdict = format!("{} passed, {} failed", report.passed(), report.failed());
    if report.skipped() > 0 {
        let _ = write!(verdict, ", {} skipped", report.skipped());
    }
    verdict
}

fn push_head(page: &mut String, report: &RunReport) {
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>tekup scenarios: {}</title>\n<style>{STYLE}</style>\n\
         <script>{SCRIPT}</script>\n</head>\n<body>\n",
        escape_text(&verdict(report))
    );
}

fn push_header(page: &mut String, report: &RunReport) {
    let class = if report.failed() > 0 {
        "failed-text"
    } else {
        "passed-text"
    };
    let _ = writeln!(
        page,
        "<header>\n<h1>tekup scenarios</h1>\n<p class=\"verdict {class}\">{}</p>",
        escape_text(&verdict(report))
    );
    page.push_str("<dl class=\"run\">\n");
    let jobs = report.jobs.to_string();
    let duration = text::duration(report.duration_ms);
    for (term, value) in [
        ("started", report.started_at.as_str()),
        ("runtime", report.runtime.as_str()),
        ("jobs", jobs.as_str()),
        ("duration", duration.as_str()),
    ] {
        let _ = writeln!(
            page,
            "<div><dt>{term}</dt><dd>{}</dd></div>",
            escape_text(value)
        );
    }
    page.push_str(
        "</dl>\n<nav><button type=\"button\" onclick=\"setAll(true)\">expand all</button>\
         <button type=\"button\" onclick=\"setAll(false)\">collapse all</button></nav>\n</header>\n",
    );
}

fn push_scenario(page: &mut String, index: usize, scenario: &ScenarioReport) {
    let status = text::status(scenario.status);
    let open = if scenario.status == Status::Failed {
        " open"
    } else {
        ""
    };
    let _ = writeln!(
        page,
        "<details class=\"scenario {status}\" id=\"scenario-{}\"{open}>\n<summary>\
         <span class=\"status {status}\">{status}</span> <span class=\"name\">{}</span> \
         <code class=\"muted\">{}</code> <span class=\"muted\">{}</span></summary>\n<div class=\"body\">",
        index + 1,
        escape_text(&scenario.name),
        escape_text(&scenario.file),
        escape_text(&text::duration(scenario.duration_ms)),
    );
    push_overview(page, scenario);
    if let Some(why) = &scenario.skip_reason {
        let _ = writeln!(
            page,
            "<p class=\"skipped\">skipped: {}</p>",
            escape_text(why)
        );
    }
    if let Some(failure) = &scenario.failure {
        push_failure(page, failure);
    }
    push_steps(page, scenario);
    page.push_str("<h3>Sequence</h3>\n");
    if scenario.messages.is_empty() {
        page.push_str("<p class=\"muted\">No message was recorded.</p>\n");
    } else {
        page.push_str(&sequence::legend());
        page.push_str(&sequence::render(
            &scenario.messages,
            &format!("s{}", index + 1),
        ));
    }
    page.push_str("<h3>Traces</h3>\n");
    if scenario.spans.is_empty() {
        page.push_str("<p class=\"muted\">No span of this scenario's traces was received.</p>\n");
    } else {
        page.push_str(&waterfall::render(&scenario.spans));
    }
    page.push_str("</div>\n</details>\n");
}

/// Tags, the time split and the tenants.
fn push_overview(page: &mut String, scenario: &ScenarioReport) {
    let engine = text::engine_ms(scenario.duration_ms, scenario.service_ms);
    let _ = writeln!(
        page,
        "<dl class=\"run\"><div><dt>tags</dt><dd>{}</dd></div><div><dt>duration</dt><dd>{}</dd></div>\
         <div><dt>service</dt><dd>{}</dd></div><div><dt>engine</dt><dd>{}</dd></div></dl>",
        escape_text(&scenario.tags.join(", ")),
        text::duration(scenario.duration_ms),
        text::duration(scenario.service_ms),
        text::duration(engine),
    );
    if scenario.tenants.is_empty() {
        return;
    }
    page.push_str(
        "<h3>Tenants</h3>\n<table class=\"tenants\"><tr><th>tenant</th><th>id</th></tr>\n",
    );
    for (name, id) in &scenario.tenants {
        let _ = writeln!(
            page,
            "<tr><td>{}</td><td><code>{}</code></td></tr>",
            escape_text(name),
            escape_text(id)
        );
    }
    page.push_str("</table>\n");
}

fn push_steps(page: &mut String, scenario: &ScenarioReport) {
    page.push_str("<h3>Steps</h3>\n");
    if scenario.steps.is_empty() {
        page.push_str("<p class=\"muted\">No step ran.</p>\n");
        return;
    }
    page.push_str(
        "<table class=\"steps\"><tr><th class=\"num\">#</th><th>section</th><th>kind</th>\
         <th>step</th><th>location</th><th>status</th><th class=\"num\">start</th>\
         <th class=\"num\">duration</th><th class=\"num\">service</th><th class=\"num\">engine</th>\
         <th class=\"num\">attempts</th></tr>\n",
    );
    for step in &scenario.steps {
        page.push_str(&step_row(step));
    }
    page.push_str("</table>\n");
}

fn step_row(step: &StepReport) -> String {
    let status = text::status(step.status);
    let engine = text::engine_ms(step.duration_ms, step.service_ms);
    format!(
        "<tr class=\"{status}\"><td class=\"num\">{}</td><td>{}</td><td>{}</td><td>{}</td>\
         <td><code>{}</code></td><td><span class=\"status {status}\">{status}</span></td>\
         <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
         <td class=\"num\">{}</td><td class=\"num\">{}</td></tr>\n",
        step.index,
        text::section(step.section),
        escape_text(&step.kind),
        escape_text(&step.title()),
        escape_text(&step.location),
        text::duration(step.started_ms),
        text::duration(step.duration_ms),
        text::duration(step.service_ms),
        text::duration(engine),
        step.attempts,
    )
}

fn push_failure(page: &mut String, failure: &Failure) {
    page.push_str("<section class=\"failure\">\n<h3>Failure</h3>\n");
    let step = failure
        .step
        .map(|s| format!(" (step {s})"))
        .unwrap_or_default();
    let _ = writeln!(
        page,
        "<p>at <code>{}</code>{step}</p>\n<pre class=\"message\">{}</pre>",
        escape_text(&failure.location),
        escape_text(&failure.message)
    );
    if let Some(because) = &failure.because {
        let _ = writeln!(
            page,
            "<p class=\"because\">because: {}</p>",
            escape_text(because)
        );
    }
    if let Some(diff) = &failure.diff {
        let _ = writeln!(
            page,
            "<h4>Expected (-) vs got (+)</h4>\n<pre class=\"diff\">{}</pre>",
            diff_html(diff)
        );
    }
    for (title, block) in [
        ("Request", &failure.request),
        ("Response", &failure.response),
    ] {
        if let Some(block) = block {
            push_pre(page, title, block);
        }
    }
    push_ws_events(page, failure);
    for (component, log) in &failure.logs {
        push_pre(page, &format!("Log of {component}"), log);
    }
    page.push_str("</section>\n");
}

fn push_ws_events(page: &mut String, failure: &Failure) {
    for (connection, events) in &failure.ws_events {
        let title = format!("WebSocket {connection}: {} events received", events.len());
        if events.is_empty() {
            let _ = writeln!(page, "<h4>{}</h4>", escape_text(&title));
        } else {
            push_pre(page, &title, &events.join("\n"));
        }
    }
}

fn push_pre(page: &mut String, title: &str, body: &str) {
    let _ = writeln!(
        page,
        "<h4>{}</h4>\n<pre>{}</pre>",
        escape_text(title),
        escape_text(body.trim_end())
    );
}

/// The diff with each line coloured by its prefix: `-` expected, `+` got,
/// `@@` a hunk header.
fn diff_html(diff: &str) -> String {
    let mut html = String::with_capacity(diff.len() * 2);
    for line in diff.lines() {
        let class = if line.starts_with("@@") {
            Some("hunk")
        } else if line.starts_with('+') {
            Some("add")
        } else if line.starts_with('-') {
            Some("del")
        } else {
            None
        };
        match class {
            Some(class) => {
                let _ = write!(html, "<span class=\"{class}\">{}</span>", escape_text(line));
            }
            None => html.push_str(&escape_text(line)),
        }
        html.push('\n');
    }
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_lines_are_classed_by_prefix() {
        let html = diff_html("@@ json @@\n-  \"a\": 1\n+  \"a\": <2>\n   same");
        assert_eq!(
            html,
            "<span class=\"hunk\">@@ json @@</span>\n<span class=\"del\">-  \"a\": 1</span>\n\
             <span class=\"add\">+  \"a\": &lt;2&gt;</span>\n   same\n"
        );
    }
}
