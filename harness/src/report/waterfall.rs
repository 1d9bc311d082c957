//! The trace waterfall of a scenario: its spans as one table, a group of
//! rows per trace, one row per span.
//!
//! - Rows nest: a span sits under its parent, indented by its depth
//!   (`data-depth`), siblings in start order. A span whose parent never
//!   arrived (lost, or exported by a service outside the run) starts a row
//!   group of its own, marked `orphan`: that is how a broken propagation
//!   shows.
//! - Each bar's offset and width are its start and duration as a share of
//!   its trace's time (first start to last end), so spans of one trace line
//!   up; traces are not drawn to one scale, each fills the width.
//! - Error spans are marked (`error` class and a ✖ with the status
//!   message). The attributes and events are in the bar's hover title and
//!   in a `<details>` under the span's name.
//! - At most [`MAX_ROWS`] rows are drawn; a note says how many were not
//!   (`traces.json` has them all). Every text is escaped.
//!
//! The table is well-formed XML on its own (no unclosed tags), so tests
//! parse it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;

use super::text::{self, escape_attr, escape_text};
use crate::trace::{Span, StatusCode};

/// The most span rows drawn for one scenario.
pub(crate) const MAX_ROWS: usize = 300;

/// The waterfall of `spans` (any order), and the note on those not drawn.
pub(crate) fn render(spans: &[Span]) -> String {
    let traces = group(spans);
    let mut html = String::from(
        "<div class=\"wf-wrap\"><table class=\"waterfall\">\n<tr><th>span</th><th>service</th>\
         <th class=\"num\">duration</th><th class=\"wf-time\">timeline</th></tr>\n",
    );
    let mut drawn = 0;
    for trace in &traces {
        if drawn >= MAX_ROWS {
            break;
        }
        let rows = order(trace);
        let (t0, t1) = bounds(trace);
        let _ = writeln!(
            html,
            "<tbody class=\"trace\" data-trace=\"{id}\"><tr class=\"trace-head\"><th colspan=\"4\">\
             trace <code>{id}</code> · {n} span{s} · {dur}</th></tr>",
            id = escape_attr(&trace[0].trace_id),
            n = trace.len(),
            s = if trace.len() == 1 { "" } else { "s" },
            dur = escape_text(&text::duration(nanos_ms(t1 - t0))),
        );
        for (span, depth, orphan) in rows.into_iter().take(MAX_ROWS - drawn) {
            push_row(&mut html, span, depth, orphan, t0, t1);
            drawn += 1;
        }
        html.push_str("</tbody>\n");
    }
    html.push_str("</table></div>\n");
    if let Some(more) = spans.len().checked_sub(drawn).filter(|&n| n > 0) {
        let _ = writeln!(
            html,
            r#"<p class="note">{more} more spans not drawn (traces.json and report.json have them all).</p>"#
        );
    }
    html
}

/// Spans by trace, each trace's spans in start order, traces in the order
/// of their first start.
fn group(spans: &[Span]) -> Vec<Vec<&Span>> {
    let mut by_trace: BTreeMap<&str, Vec<&Span>> = BTreeMap::new();
    for span in spans {
        by_trace.entry(&span.trace_id).or_default().push(span);
    }
    let mut traces: Vec<Vec<&Span>> = by_trace.into_values().collect();
    for trace in &mut traces {
        trace.sort_by_key(|s| (s.start_unix_nano, s.span_id.as_str()));
    }
    traces.sort_by_key(|t| (t[0].start_unix_nano, t[0].trace_id.as_str()));
    traces
}

fn bounds(trace: &[&Span]) -> (u64, u64) {
    let t0 = trace.iter().map(|s| s.start_unix_nano).min().unwrap_or(0);
    let t1 = trace
        .iter()
        .map(|s| s.end_unix_nano.max(s.start_unix_nano))
        .max()
        .unwrap_or(t0);
    (t0, t1)
}

/// The rows of one trace: `(span, depth, orphan)`, each span after its
/// parent, depth first. Roots are spans without a parent and orphans
/// (whose parent is not in the trace); a span in a parent cycle (a broken
/// exporter) is drawn as a root rather than lost.
fn order<'a>(trace: &[&'a Span]) -> Vec<(&'a Span, usize, bool)> {
    let ids: HashSet<&str> = trace.iter().map(|s| s.span_id.as_str()).collect();
    let mut children: HashMap<&str, Vec<&'a Span>> = HashMap::new();
    let mut roots: Vec<(&'a Span, bool)> = Vec::new();
    for span in trace {
        match span.parent_span_id.as_deref() {
            Some(parent) if ids.contains(parent) && parent != span.span_id => {
                children.entry(parent).or_default().push(span);
            }
            Some(_) => roots.push((span, true)),
            None => roots.push((span, false)),
        }
    }
    let mut rows = Vec::with_capacity(trace.len());
    let mut seen: HashSet<(&str, u64)> = HashSet::new();
    let mut visit = |root: &'a Span, orphan: bool, rows: &mut Vec<(&'a Span, usize, bool)>| {
        let mut stack = vec![(root, 0usize)];
        while let Some((span, depth)) = stack.pop() {
            if !seen.insert((span.span_id.as_str(), span.start_unix_nano)) {
                continue;
            }
            rows.push((span, depth, orphan && depth == 0));
            if let Some(kids) = children.get(span.span_id.as_str()) {
                // Reversed onto the stack: the earliest child is drawn first.
                stack.extend(kids.iter().rev().map(|k| (*k, depth + 1)));
            }
        }
    };
    for (root, orphan) in roots {
        visit(root, orphan, &mut rows);
    }
    // What no root reached (a parent cycle); visiting a seen span is a no-op.
    for span in trace {
        visit(span, true, &mut rows);
    }
    rows
}

fn nanos_ms(nanos: u64) -> f64 {
    nanos as f64 / 1e6
}

fn push_row(html: &mut String, span: &Span, depth: usize, orphan: bool, t0: u64, t1: u64) {
    let total = (t1 - t0) as f64;
    let (left, width) = if total > 0.0 {
        (
            (span.start_unix_nano - t0) as f64 / total * 100.0,
            span.duration_nanos() as f64 / total * 100.0,
        )
    } else {
        (0.0, 100.0)
    };
    let error = span.status.code == StatusCode::Error;
    let mut class = String::from("span");
    if error {
        class.push_str(" error");
    }
    if orphan {
        class.push_str(" orphan");
    }
    let parent = span
        .parent_span_id
        .as_deref()
        .map(|p| format!(" data-parent=\"{}\"", escape_attr(p)))
        .unwrap_or_default();
    let mark = if error {
        format!(
            "<span class=\"wf-err\" title=\"{}\">✖</span> ",
            escape_attr(&format!("error: {}", span.status.message))
        )
    } else {
        String::new()
    };
    let note = if orphan {
        " <span class=\"note\">(parent span not received)</span>"
    } else {
        ""
    };
    let details = details(span);
    let _ = writeln!(
        html,
        "<tr class=\"{class}\" data-span=\"{id}\"{parent} data-depth=\"{depth}\">\
         <td class=\"wf-name\" style=\"padding-left:{indent:.1}em\">{mark}<details><summary>{name}</summary>\
         <pre>{details_text}</pre></details>{note}</td>\
         <td>{service}</td><td class=\"num\">{duration}</td>\
         <td class=\"wf-time\"><div class=\"wf-bar{bar_class}\" style=\"margin-left:{left:.2}%;width:{width:.2}%\" \
         title=\"{title}\"></div></td></tr>",
        id = escape_attr(&span.span_id),
        indent = 0.3 + 1.2 * depth as f64,
        name = escape_text(&span.name),
        details_text = escape_text(&details),
        service = escape_text(&span.service),
        duration = escape_text(&text::duration(nanos_ms(span.duration_nanos()))),
        bar_class = if error { " error" } else { "" },
        title = escape_attr(&format!(
            "{} {} ({}, {})\n{details}",
            span.service,
            span.name,
            span.kind,
            text::duration(nanos_ms(span.duration_nanos()))
        )),
    );
}

/// Kind, status, attributes and events, a line each.
fn details(span: &Span) -> String {
    let mut lines = vec![format!("kind: {}", span.kind)];
    lines.push(match (span.status.code, span.status.message.is_empty()) {
        (code, true) => format!("status: {}", code.as_str()),
        (code, false) => format!("status: {}: {}", code.as_str(), span.status.message),
    });
    for (key, value) in &span.attributes {
        lines.push(format!("{key} = {}", json_text(value)));
    }
    for event in &span.events {
        let attrs: Vec<String> = event
            .attributes
            .iter()
            .map(|(k, v)| format!("{k}={}", json_text(v)))
            .collect();
        lines.push(format!(
            "event {} at +{} {}",
            event.name,
            text::duration(nanos_ms(
                event.time_unix_nano.saturating_sub(span.start_unix_nano)
            )),
            attrs.join(" ")
        ));
    }
    lines.join("\n")
}

fn json_text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
