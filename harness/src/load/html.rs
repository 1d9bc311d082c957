//! `load.html`: the run's summary on one self-contained page (the scenario
//! report's stylesheet, no script, nothing fetched), beside goose's own
//! report, which has the graphs over time. Every text is escaped.

use std::fmt::Write as _;

use super::hist::Histogram;
use super::report::{KindStats, LoadReport};
use crate::report::html::STYLE;
use crate::report::text::escape_text;

/// Renders `report` as a self-contained HTML page.
pub fn render(report: &LoadReport) -> String {
    let verdict = if report.passed {
        "passed: every target met".to_owned()
    } else {
        format!("failed: {} target(s) breached", report.breaches().count())
    };
    let class = if report.passed {
        "passed-text"
    } else {
        "failed-text"
    };
    let mut page = String::with_capacity(16 * 1024);
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>tekup load: {profile} {verdict}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
         <header>\n<h1>tekup load: {profile}</h1>\n<p class=\"verdict {class}\">{verdict}</p>\n<dl class=\"run\">\n",
        profile = escape_text(&report.profile),
        verdict = escape_text(&verdict),
    );
    let users = report.users.to_string();
    let run_time = format!("{:.1} s", report.run_time_s);
    let rps = format!("{:.1}", report.requests_per_second);
    let machines = report.machines.join(", ");
    let targets = report.targets.join(", ");
    for (term, value) in [
        ("started", report.started_at.as_str()),
        ("users", &users),
        ("run time", &run_time),
        ("requests/s", &rps),
        ("machines", &machines),
        ("targets", &targets),
    ] {
        let _ = writeln!(
            page,
            "<div><dt>{term}</dt><dd>{}</dd></div>",
            escape_text(value)
        );
    }
    page.push_str("</dl>\n</header>\n<main>\n<h3>Targets</h3>\n<table>\n<tr><th>rule</th><th class=\"num\">measured</th><th class=\"num\">limit</th><th>verdict</th></tr>\n");
    for v in &report.verdicts {
        let _ = writeln!(
            page,
            "<tr{}><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"{}\">{}</td></tr>",
            if v.passed { "" } else { " class=\"failed\"" },
            escape_text(&v.rule),
            escape_text(&v.measured_text()),
            escape_text(&v.limit_text()),
            if v.passed { "passed-text" } else { "failed-text" },
            if v.passed { "ok" } else { "BREACH" },
        );
    }
    page.push_str("</table>\n<h3>Requests</h3>\n<table>\n<tr><th>kind</th><th class=\"num\">count</th><th class=\"num\">errors</th><th class=\"num\">p50 ms</th><th class=\"num\">p95 ms</th><th class=\"num\">p99 ms</th><th class=\"num\">max ms</th><th class=\"num\">mean ms</th></tr>\n");
    for kind in report.requests.iter().chain([&report.total]) {
        push_kind(&mut page, kind);
    }
    page.push_str("</table>\n");
    if let Some(q) = &report.queue_latency {
        page.push_str("<h3>Queue latency</h3>\n<p class=\"muted\">From a lead's 201 to its LEAD_CREATED event at the gateway's clients.</p>\n");
        let _ = writeln!(
            page,
            "<p>{} processed, {} not processed in time</p>",
            q.processed, q.unprocessed
        );
        push_histogram(&mut page, &q.histogram);
    }
    if let Some(d) = &report.event_delivery {
        page.push_str("<h3>WebSocket fan-out</h3>\n<p class=\"muted\">From an event's publication to its arrival at each subscribed client.</p>\n");
        let _ = writeln!(
            page,
            "<p>{} clients; {} deliveries expected, {} delivered, {} missed</p>",
            d.clients, d.expected, d.delivered, d.missed
        );
        push_histogram(&mut page, &d.histogram);
    }
    if let Some(alerts) = &report.alerts {
        page.push_str("<h3>Alerts</h3>\n<p class=\"muted\">What the ecosystem's Prometheus fired during the run (seconds after its start).</p>\n<ul>\n");
        for line in alerts.lines() {
            let _ = writeln!(page, "<li>{}</li>", escape_text(&line));
        }
        page.push_str("</ul>\n");
    }
    if !report.error_samples.is_empty() {
        page.push_str("<h3>First failures</h3>\n<pre>");
        page.push_str(&escape_text(&report.error_samples.join("\n")));
        page.push_str("</pre>\n");
    }
    page.push_str("</main>\n</body>\n</html>\n");
    page
}

fn push_kind(page: &mut String, k: &KindStats) {
    let l = &k.latency_ms;
    let _ = writeln!(
        page,
        "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{:.1}</td>\
         <td class=\"num\">{:.1}</td><td class=\"num\">{:.1}</td><td class=\"num\">{:.1}</td><td class=\"num\">{:.1}</td></tr>",
        escape_text(&k.name),
        k.count,
        k.errors,
        l.p50,
        l.p95,
        l.p99,
        l.max,
        l.mean
    );
}

/// p50/p95/p99/max in a table.
fn push_histogram(page: &mut String, h: &Histogram) {
    let _ = writeln!(
        page,
        "<table><tr><th class=\"num\">samples</th><th class=\"num\">p50 ms</th><th class=\"num\">p95 ms</th>\
         <th class=\"num\">p99 ms</th><th class=\"num\">max ms</th></tr>\
         <tr><td class=\"num\">{}</td><td class=\"num\">{:.1}</td><td class=\"num\">{:.1}</td><td class=\"num\">{:.1}</td><td class=\"num\">{:.1}</td></tr></table>",
        h.count,
        h.percentile_ms(50.0),
        h.percentile_ms(95.0),
        h.percentile_ms(99.0),
        h.max_ms()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_lists_the_alerts_that_fired() {
        let at = |s: i64| chrono::DateTime::from_timestamp(s, 0).unwrap_or_default();
        let r = LoadReport {
            alerts: Some(crate::alerts::AlertLog {
                from: at(100),
                to: at(200),
                source: "http://127.0.0.1:9090".into(),
                fired: vec![crate::alerts::FiredAlert {
                    name: "ApiLatencyHigh".into(),
                    labels: [("job".to_owned(), "flow-api".to_owned())].into(),
                    fired_at: at(130),
                    resolved_at: Some(at(160)),
                }],
                error: None,
            }),
            ..LoadReport::default()
        };
        let page = render(&r);
        assert!(page.contains("<h3>Alerts</h3>"), "{page}");
        assert!(
            page.contains(
                "<li>ApiLatencyHigh{job=flow-api} fired at +30 s, resolved at +60 s</li>"
            ),
            "{page}"
        );
        assert!(!render(&LoadReport::default()).contains("<h3>Alerts</h3>"));
    }

    #[test]
    fn the_page_escapes_names_and_shows_breaches() {
        let mut h = Histogram::new();
        h.record(std::time::Duration::from_millis(900));
        let mut r = LoadReport {
            profile: "<script>".into(),
            requests: vec![KindStats::new("POST /leads", 0, h)],
            ..LoadReport::default()
        };
        r.judge(super::super::Thresholds::default());
        let page = render(&r);
        assert!(page.contains("&lt;script&gt;"));
        assert!(!page.contains("<script>"));
        assert!(page.contains("BREACH"));
        assert!(page.contains("900.0"));
    }
}
