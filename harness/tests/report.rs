//! The report writers, checked the way their readers see them: JUnit XML
//! through a real XML parser, the JSON through serde_json, the HTML page's
//! sequence diagram through an XML parser too.

use std::collections::BTreeMap;
use std::path::Path;

use tekup_harness::report::{
    self, html, json, junit, Failure, Format, Message, MessageKind, ReportError, RunReport,
    ScenarioReport, Section, Status, StepReport,
};
use tekup_harness::trace::{Span, SpanKind, SpanStatus, StatusCode};

const NASTY: &str = "<&\"'>\u{1b}[31mred\u{0}\u{7}";

fn step(index: usize, status: Status) -> StepReport {
    StepReport {
        index,
        section: Section::Steps,
        kind: "http".to_owned(),
        name: None,
        label: format!("POST flow-api /leads → 201 #{index}"),
        location: format!("scenarios/lead.yaml:{}", 10 + index),
        status,
        started_ms: 5.0 * index as f64,
        duration_ms: 40.0,
        service_ms: 30.0,
        attempts: 1,
    }
}

fn message(at_ms: f64, from: &str, to: &str, kind: MessageKind, label: &str) -> Message {
    Message {
        at_ms,
        from: from.to_owned(),
        to: to.to_owned(),
        kind,
        label: label.to_owned(),
        correlation_id: Some("c-1".to_owned()),
    }
}

fn scenario(name: &str, status: Status) -> ScenarioReport {
    ScenarioReport {
        name: name.to_owned(),
        file: format!("scenarios/{name}.yaml"),
        tags: vec!["smoke".to_owned()],
        status,
        duration_ms: 1234.0,
        service_ms: 1000.0,
        tenants: BTreeMap::from([("acme".to_owned(), "t-acme-1".to_owned())]),
        steps: vec![step(1, Status::Passed), step(2, status)],
        failure: None,
        skip_reason: (status == Status::Skipped)
            .then(|| "step 2 `sql` needs the database".to_owned()),
        messages: vec![
            message(
                1.0,
                "flow-api",
                "crm-api",
                MessageKind::Request,
                "GET /contacts",
            ),
            message(
                0.5,
                "harness",
                "flow-api",
                MessageKind::Request,
                "POST /leads",
            ),
            message(2.0, "crm-api", "flow-api", MessageKind::Response, "200"),
            message(
                3.0,
                "flow-api",
                "flow-api",
                MessageKind::Job,
                "lead-processing",
            ),
            message(4.0, "redis", "ws:crm", MessageKind::Event, "LEAD_CREATED"),
            message(5.0, "harness", "redis", MessageKind::Fault, "kill"),
        ],
        spans: Vec::new(),
        own_ecosystem: None,
    }
}

fn failure() -> Failure {
    Failure {
        step: Some(2),
        location: "scenarios/lead.yaml:12".to_owned(),
        message: format!("status: expected 201, got 500 {NASTY}"),
        because: None,
        diff: Some("--- expected\n+++ got\n-  \"status\": 201\n+  \"status\": 500".to_owned()),
        request: Some("POST /leads\nx-tenant-key: [redacted]".to_owned()),
        response: Some("500 Internal Server Error\n{\"error\":{}}".to_owned()),
        ws_events: BTreeMap::from([("crm".to_owned(), vec!["LEAD_UPDATED".to_owned()])]),
        logs: BTreeMap::from([("flow-api".to_owned(), "ERROR boom \u{1b}[0m".to_owned())]),
    }
}

fn run_report() -> RunReport {
    let mut failed = scenario("<script>alert(1)</script>", Status::Failed);
    failed.failure = Some(failure());
    let mut skipped = scenario("skipped-one", Status::Skipped);
    skipped.steps.clear();
    RunReport {
        started_at: "2025-01-02T03:04:05Z".to_owned(),
        duration_ms: 2500.0,
        runtime: "process".to_owned(),
        jobs: 4,
        scenarios: vec![scenario("lead-to-contact", Status::Passed), failed, skipped],
    }
}

fn parse_junit(xml: &str) -> roxmltree::Document<'_> {
    roxmltree::Document::parse(xml)
        .unwrap_or_else(|e| panic!("junit.xml does not parse: {e}\n{xml}"))
}

fn element<'a>(doc: &'a roxmltree::Document<'a>, name: &str) -> Vec<roxmltree::Node<'a, 'a>> {
    doc.descendants().filter(|n| n.has_tag_name(name)).collect()
}

#[test]
fn junit_has_one_suite_with_the_counts() {
    let xml = junit::render(&run_report());
    let doc = parse_junit(&xml);
    let suites = element(&doc, "testsuite");
    assert_eq!(suites.len(), 1);
    let suite = suites[0];
    assert_eq!(suite.attribute("name"), Some("tekup-scenarios"));
    assert_eq!(suite.attribute("tests"), Some("3"));
    assert_eq!(suite.attribute("failures"), Some("1"));
    assert_eq!(suite.attribute("errors"), Some("0"));
    assert_eq!(suite.attribute("skipped"), Some("1"));
    assert_eq!(suite.attribute("time"), Some("2.500"));
}

#[test]
fn junit_has_one_testcase_per_scenario_with_its_outcome() {
    let xml = junit::render(&run_report());
    let doc = parse_junit(&xml);
    let cases = element(&doc, "testcase");
    let names: Vec<_> = cases.iter().filter_map(|c| c.attribute("name")).collect();
    assert_eq!(
        names,
        [
            "lead-to-contact",
            "<script>alert(1)</script>",
            "skipped-one"
        ]
    );
    for case in &cases {
        assert_eq!(case.attribute("classname"), Some("scenarios"));
        assert_eq!(case.attribute("time"), Some("1.234"));
        assert!(case.attribute("file").unwrap().starts_with("scenarios/"));
    }
    let child = |i: usize, tag: &str| cases[i].children().any(|n| n.has_tag_name(tag));
    assert!(!child(0, "failure") && !child(0, "skipped"));
    assert!(child(1, "failure") && !child(1, "skipped"));
    assert!(child(2, "skipped") && !child(2, "failure"));
    let skip = cases[2]
        .children()
        .find(|n| n.has_tag_name("skipped"))
        .expect("skipped");
    assert_eq!(
        skip.attribute("message"),
        Some("step 2 `sql` needs the database"),
        "a skip says why"
    );
}

#[test]
fn junit_failure_holds_everything_needed_to_act_on_it() {
    let xml = junit::render(&run_report());
    let doc = parse_junit(&xml);
    let failure = element(&doc, "failure")[0];
    let message = failure.attribute("message").unwrap();
    assert!(
        message.starts_with("status: expected 201, got 500"),
        "{message}"
    );
    let body = failure.text().unwrap();
    for needle in [
        "at scenarios/lead.yaml:12 (step 2)",
        "-  \"status\": 201\n+  \"status\": 500",
        "POST /leads\nx-tenant-key: [redacted]",
        "500 Internal Server Error",
        "websocket `crm` received 1 events:\nLEAD_UPDATED",
        "log of `flow-api`:\nERROR boom",
    ] {
        assert!(body.contains(needle), "missing {needle:?} in\n{body}");
    }
}

#[test]
fn junit_keeps_markup_and_replaces_forbidden_control_characters() {
    let xml = junit::render(&run_report());
    let doc = parse_junit(&xml);
    let failure = element(&doc, "failure")[0];
    let expected = "<&\"'>\\u{1b}[31mred\\u{0}\\u{7}";
    assert!(failure.attribute("message").unwrap().ends_with(expected));
    assert!(failure.text().unwrap().contains(expected));
    assert!(!xml.contains('\u{1b}') && !xml.contains('\u{0}'));
}

#[test]
fn junit_keeps_newlines_in_the_failure_message_attribute() {
    let mut report = run_report();
    report.scenarios[1].failure.as_mut().unwrap().message = "line one\nline two".to_owned();
    let xml = junit::render(&report);
    let doc = parse_junit(&xml);
    let failure = element(&doc, "failure")[0];
    assert_eq!(failure.attribute("message"), Some("line one\nline two"));
}

#[test]
fn junit_system_out_lists_the_steps() {
    let xml = junit::render(&run_report());
    let doc = parse_junit(&xml);
    let out = element(&doc, "system-out")[1].text().unwrap();
    assert!(out.contains("tenants: acme=t-acme-1"), "{out}");
    let steps: Vec<_> = out
        .lines()
        .filter(|l| l.contains("POST flow-api"))
        .collect();
    assert_eq!(steps.len(), 2, "{out}");
    assert!(steps[1].contains("failed"), "{}", steps[1]);
    assert!(steps[1].contains("scenarios/lead.yaml:12"), "{}", steps[1]);
    assert!(steps[1].contains("40.0 ms"), "{}", steps[1]);
}

#[test]
fn junit_of_a_failed_scenario_without_details_still_has_a_failure() {
    let report = RunReport {
        scenarios: vec![scenario("bare", Status::Failed)],
        ..RunReport::default()
    };
    let xml = junit::render(&report);
    let doc = parse_junit(&xml);
    assert_eq!(element(&doc, "failure").len(), 1);
}

#[test]
fn json_has_the_summary_and_every_message() {
    let text = json::render(&run_report()).unwrap();
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        value["summary"],
        serde_json::json!({"passed": 1, "failed": 1, "skipped": 1})
    );
    assert_eq!(value["runtime"], "process");
    assert_eq!(value["scenarios"][1]["failure"]["step"], 2);
    assert_eq!(
        value["scenarios"][0]["messages"].as_array().unwrap().len(),
        6
    );
    assert!(text.contains("\n  \"summary\""), "pretty, summary first");
}

#[test]
fn json_keeps_every_message_past_the_diagram_cap() {
    let mut report = run_report();
    report.scenarios[0].messages = many_messages(400);
    let value: serde_json::Value = serde_json::from_str(&json::render(&report).unwrap()).unwrap();
    assert_eq!(
        value["scenarios"][0]["messages"].as_array().unwrap().len(),
        400
    );
}

#[test]
fn html_is_self_contained() {
    let page = html::render(&run_report());
    for external in [
        "src=\"http",
        "href=\"http",
        "src='http",
        "href='http",
        "url(http",
        "@import",
        "<link",
    ] {
        assert!(!page.contains(external), "found {external}");
    }
    assert!(page.starts_with("<!DOCTYPE html>"));
    assert!(page.contains("<style>"));
}

#[test]
fn html_escapes_what_came_from_scenarios() {
    let page = html::render(&run_report());
    assert!(
        !page.contains("<script>alert"),
        "an injected script survived"
    );
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert_eq!(
        page.matches("<script>").count(),
        1,
        "only the expand/collapse one"
    );
    assert!(!page.contains('\u{1b}'));
}

#[test]
fn html_header_summarizes_the_run() {
    let page = html::render(&run_report());
    for needle in [
        "1 passed, 1 failed, 1 skipped",
        "2025-01-02T03:04:05Z",
        "process",
        "2.50 s",
    ] {
        assert!(page.contains(needle), "missing {needle}");
    }
}

#[test]
fn html_opens_failed_scenarios_only() {
    let page = html::render(&run_report());
    assert!(page.contains("<details class=\"scenario failed\" id=\"scenario-2\" open>"));
    assert!(page.contains("<details class=\"scenario passed\" id=\"scenario-1\">"));
    assert!(page.contains("<details class=\"scenario skipped\" id=\"scenario-3\">"));
}

#[test]
fn html_shows_the_failure_and_the_step_times() {
    let page = html::render(&run_report());
    assert!(page.contains("<span class=\"del\">-  \"status\": 201</span>"));
    assert!(page.contains("<span class=\"add\">+  \"status\": 500</span>"));
    assert!(page.contains("WebSocket crm: 1 events received"));
    assert!(page.contains("Log of flow-api"));
    // duration 40 ms, service 30 ms, so the engine took 10 ms.
    assert!(page.contains(
        "<td class=\"num\">40.0 ms</td><td class=\"num\">30.0 ms</td><td class=\"num\">10.0 ms</td>"
    ));
}

fn many_messages(n: usize) -> Vec<Message> {
    (0..n)
        .map(|i| {
            message(
                i as f64,
                "harness",
                "flow-api",
                MessageKind::Request,
                "GET /health",
            )
        })
        .collect()
}

/// The sequence diagrams of the page, parsed.
fn diagrams(page: &str) -> Vec<String> {
    page.match_indices("<svg class=\"sequence\"")
        .map(|(start, _)| {
            let end = start + page[start..].find("</svg>").unwrap() + "</svg>".len();
            page[start..end].to_owned()
        })
        .collect()
}

fn arrows(svg: &str) -> Vec<(String, String)> {
    let doc = roxmltree::Document::parse(svg).unwrap_or_else(|e| panic!("svg: {e}\n{svg}"));
    doc.descendants()
        .filter(|n| n.has_tag_name("path") && n.attribute("class") == Some("arrow"))
        .map(|n| {
            let group = n.parent_element().unwrap();
            let label = group.children().rfind(|c| c.has_tag_name("text"));
            (
                group.attribute("class").unwrap().to_owned(),
                label.and_then(|l| l.text()).unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[test]
fn html_draws_one_arrow_per_message_in_time_order() {
    let page = html::render(&run_report());
    let svgs = diagrams(&page);
    assert_eq!(svgs.len(), 3);
    let drawn = arrows(&svgs[0]);
    let labels: Vec<_> = drawn.iter().map(|(_, label)| label.as_str()).collect();
    assert_eq!(
        labels,
        [
            "POST /leads",
            "GET /contacts",
            "200",
            "lead-processing",
            "LEAD_CREATED",
            "kill"
        ]
    );
    let kinds: Vec<_> = drawn.iter().map(|(class, _)| class.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "msg k-request",
            "msg k-request",
            "msg k-response",
            "msg k-job",
            "msg k-event",
            "msg k-fault"
        ]
    );
}

#[test]
fn html_styles_arrows_by_kind() {
    let svg = &diagrams(&html::render(&run_report()))[0];
    let doc = roxmltree::Document::parse(svg).unwrap();
    let arrow = |kind: &str| {
        doc.descendants()
            .find(|n| n.attribute("class") == Some(&format!("msg k-{kind}")[..]))
            .and_then(|g| g.children().find(|c| c.has_tag_name("path")))
            .unwrap()
    };
    assert!(arrow("response").attribute("stroke-dasharray").is_some());
    assert!(arrow("request").attribute("stroke-dasharray").is_none());
    assert_eq!(arrow("fault").attribute("stroke"), Some("#dc2626"));
    assert_ne!(
        arrow("event").attribute("stroke"),
        arrow("request").attribute("stroke")
    );
    // flow-api → flow-api is a loop, not a line.
    assert!(arrow("job").attribute("d").unwrap().contains('v'));
}

#[test]
fn html_puts_the_harness_lifeline_first() {
    let svg = &diagrams(&html::render(&run_report()))[0];
    let doc = roxmltree::Document::parse(svg).unwrap();
    let actors: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("text") && n.attribute("class") == Some("actor"))
        .filter_map(|n| n.children().find(|c| c.is_text()).and_then(|t| t.text()))
        .collect();
    // Each participant has a box at the top and one at the bottom.
    let expected = ["harness", "flow-api", "crm-api", "redis", "ws:crm"];
    let tops: Vec<_> = actors.iter().step_by(2).copied().collect();
    let bottoms: Vec<_> = actors.iter().skip(1).step_by(2).copied().collect();
    assert_eq!(tops, expected);
    assert_eq!(bottoms, expected);
}

#[test]
fn html_caps_the_diagram_and_says_how_many_were_left_out() {
    let mut report = run_report();
    report.scenarios[0].messages = many_messages(350);
    let page = html::render(&report);
    assert_eq!(arrows(&diagrams(&page)[0]).len(), 300);
    assert!(page.contains("50 more messages not drawn"));
    report.scenarios[0].messages = many_messages(300);
    let page = html::render(&report);
    assert_eq!(arrows(&diagrams(&page)[0]).len(), 300);
    assert!(!page.contains("more messages not drawn"));
}

#[test]
fn html_escapes_participants_and_labels_in_the_diagram() {
    let mut report = run_report();
    report.scenarios[0].messages = vec![message(1.0, "<b>", "x&y", MessageKind::Event, "\"<i>\"")];
    let page = html::render(&report);
    let svg = &diagrams(&page)[0];
    assert_eq!(
        arrows(svg),
        [("msg k-event".to_owned(), "\"<i>\"".to_owned())]
    );
    assert!(!page.contains("<b>") && !page.contains("<i>"));
}

fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn write_creates_the_directory_and_one_file_per_format() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("reports/nested");
    let formats = Format::parse_list("junit,json,html").unwrap();
    let written = report::write(&run_report(), &dir, &formats).unwrap();
    assert_eq!(
        written,
        [
            dir.join("junit.xml"),
            dir.join("report.json"),
            dir.join("report.html")
        ]
    );
    assert_eq!(
        file_names(&dir),
        ["junit.xml", "report.html", "report.json"]
    );
    let xml = std::fs::read_to_string(dir.join("junit.xml")).unwrap();
    assert_eq!(xml, junit::render(&run_report()));
}

#[test]
fn write_replaces_a_previous_report_and_leaves_no_temporary_file() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("report.json"), "old").unwrap();
    report::write(&run_report(), tmp.path(), &[Format::Json, Format::Json]).unwrap();
    assert_eq!(file_names(tmp.path()), ["report.json"]);
    let text = std::fs::read_to_string(tmp.path().join("report.json")).unwrap();
    assert!(text.contains("\"summary\""));
}

#[test]
fn write_into_an_unusable_directory_names_it() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("not-a-dir");
    std::fs::write(&file, "").unwrap();
    let dir = file.join("reports");
    let err = report::write(&run_report(), &dir, &[Format::Junit]).unwrap_err();
    assert!(matches!(err, ReportError::CreateDir { ref path, .. } if *path == dir));
    assert!(
        err.to_string().contains(&dir.display().to_string()),
        "{err}"
    );
}

#[test]
fn write_over_an_unwritable_file_names_it() {
    let tmp = tempfile::tempdir().unwrap();
    // A directory where the report file should go cannot be replaced by it.
    std::fs::create_dir(tmp.path().join("report.html")).unwrap();
    std::fs::write(tmp.path().join("report.html/keep"), "").unwrap();
    let err = report::write(&run_report(), tmp.path(), &[Format::Html]).unwrap_err();
    let path = tmp.path().join("report.html");
    assert!(matches!(err, ReportError::Write { path: ref p, .. } if *p == path));
    assert_eq!(
        err.to_string(),
        format!("failed to write the report {}", path.display())
    );
    assert_eq!(
        file_names(tmp.path()),
        ["report.html"],
        "no temporary file left"
    );
}

#[test]
fn a_bad_format_list_names_the_item_and_the_allowed_ones() {
    let err = Format::parse_list("junit,pdf").unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("`pdf`") && message.contains("junit, json, html"),
        "{message}"
    );
}

const T0: u64 = 1_700_000_000_000_000_000;
const MS: u64 = 1_000_000;
const TRACE_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const TRACE_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

fn span(
    trace: &str,
    id: &str,
    parent: Option<&str>,
    service: &str,
    name: &str,
    from_ms: u64,
    to_ms: u64,
) -> Span {
    Span {
        trace_id: trace.to_owned(),
        span_id: id.repeat(16 / id.len()),
        parent_span_id: parent.map(|p| p.repeat(16 / p.len())),
        service: service.to_owned(),
        name: name.to_owned(),
        kind: SpanKind::Server,
        start_unix_nano: T0 + from_ms * MS,
        end_unix_nano: T0 + to_ms * MS,
        attributes: BTreeMap::from([
            (
                "tekup.operation".to_owned(),
                serde_json::json!("createLead"),
            ),
            ("hostile".to_owned(), serde_json::json!(NASTY)),
        ]),
        events: Vec::new(),
        status: SpanStatus::default(),
    }
}

/// Trace A: a root (0-100 ms), its child (10-60 ms, failed), the child's
/// child (20-50 ms), a span whose parent never arrived (70-90 ms); trace B:
/// one span that starts later. Given out of order.
fn spans() -> Vec<Span> {
    let mut failed = span(TRACE_A, "2", Some("1"), "flow-api", "POST crm-api", 10, 60);
    failed.status = SpanStatus {
        code: StatusCode::Error,
        message: format!("refused {NASTY}"),
    };
    vec![
        span(
            TRACE_B,
            "5",
            None,
            "gateway",
            "deliver LEAD_CREATED",
            200,
            201,
        ),
        span(
            TRACE_A,
            "4",
            Some("9"),
            "worker",
            "process process-lead",
            70,
            90,
        ),
        span(
            TRACE_A,
            "3",
            Some("2"),
            "crm-api",
            "<img src=x onerror=alert(1)>",
            20,
            50,
        ),
        failed,
        span(TRACE_A, "1", None, "flow-api", "POST /leads", 0, 100),
    ]
}

/// The scenario's waterfall table, parsed: one `(span id, depth, class,
/// bar style, summary text)` per row.
fn waterfall_rows(page: &str) -> Vec<(String, String, String, String, String)> {
    let start = page
        .find("<table class=\"waterfall\"")
        .expect("a waterfall");
    let end = start + page[start..].find("</table>").unwrap() + "</table>".len();
    let table = &page[start..end];
    let doc =
        roxmltree::Document::parse(table).unwrap_or_else(|e| panic!("waterfall: {e}\n{table}"));
    doc.descendants()
        .filter(|n| {
            n.has_tag_name("tr") && n.attribute("class").is_some_and(|c| c.starts_with("span"))
        })
        .map(|row| {
            let bar = row
                .descendants()
                .find(|n| {
                    n.attribute("class")
                        .is_some_and(|c| c.starts_with("wf-bar"))
                })
                .unwrap();
            let summary = row
                .descendants()
                .find(|n| n.has_tag_name("summary"))
                .unwrap();
            (
                row.attribute("data-span").unwrap()[..1].to_owned(),
                row.attribute("data-depth").unwrap().to_owned(),
                row.attribute("class").unwrap().to_owned(),
                bar.attribute("style").unwrap().to_owned(),
                summary.text().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[test]
fn html_draws_each_scenario_s_traces_as_a_waterfall() {
    let mut report = run_report();
    report.scenarios[0].spans = spans();
    let page = html::render(&report);
    let rows = waterfall_rows(&page);
    let order: Vec<(&str, &str)> = rows.iter().map(|r| (r.0.as_str(), r.1.as_str())).collect();
    // Trace A first (it starts first): the root, its child, the grandchild,
    // then the orphan at depth 0; then trace B.
    assert_eq!(
        order,
        [("1", "0"), ("2", "1"), ("3", "2"), ("4", "0"), ("5", "0")]
    );
    assert_eq!(rows[0].3, "margin-left:0.00%;width:100.00%");
    assert_eq!(rows[1].3, "margin-left:10.00%;width:50.00%");
    assert_eq!(rows[2].3, "margin-left:20.00%;width:30.00%");
    assert_eq!(rows[3].3, "margin-left:70.00%;width:20.00%");
    // Trace B fills the width on its own scale.
    assert_eq!(rows[4].3, "margin-left:0.00%;width:100.00%");
    assert_eq!(rows[1].2, "span error");
    assert_eq!(rows[3].2, "span orphan");
    assert_eq!(rows[0].2, "span");
    assert_eq!(rows[2].4, "<img src=x onerror=alert(1)>");
    assert!(!page.contains("<img"), "the hostile span name is escaped");
    assert!(page.contains("(parent span not received)"));
    assert!(
        page.contains("2 spans") || page.contains("4 spans"),
        "trace headers count spans"
    );
    // Attributes are in the hover and the expandable details, escaped.
    assert!(page.contains("tekup.operation = createLead"));
    assert!(
        page.contains("hostile = &lt;&amp;\"'&gt;\\u{1b}[31mred"),
        "text node escape"
    );
    assert!(page.contains("status: error: refused &lt;&amp;"));
    // The other scenarios say they have none.
    assert!(page.contains("No span of this scenario's traces was received."));
}

#[test]
fn html_caps_the_waterfall_and_says_how_many_were_left_out() {
    let mut report = run_report();
    report.scenarios[0].spans = (0..350)
        .map(|i| {
            span(
                TRACE_A,
                &format!("{:016x}", i + 1),
                None,
                "flow-api",
                "GET /health",
                i,
                i + 1,
            )
        })
        .collect();
    let page = html::render(&report);
    assert_eq!(waterfall_rows(&page).len(), 300);
    assert!(page.contains("50 more spans not drawn"));
}

#[test]
fn traces_json_is_an_otlp_export_request_of_every_scenario_s_spans() {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    let mut report = run_report();
    report.scenarios[0].spans = spans();
    report.scenarios[1].spans = vec![span(TRACE_B, "6", Some("5"), "worker", "x", 201, 202)];
    let tmp = tempfile::tempdir().unwrap();
    let written = report::write(&report, tmp.path(), &[Format::Traces]).unwrap();
    assert_eq!(written, [tmp.path().join("traces.json")]);
    let text = std::fs::read_to_string(&written[0]).unwrap();
    let request: ExportTraceServiceRequest = serde_json::from_str(&text).expect("OTLP/JSON");
    let services: Vec<String> = request
        .resource_spans
        .iter()
        .map(|r| {
            match &r.resource.as_ref().unwrap().attributes[0]
                .value
                .as_ref()
                .unwrap()
                .value
            {
                Some(opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(s)) => {
                    s.clone()
                }
                other => panic!("service.name: {other:?}"),
            }
        })
        .collect();
    assert_eq!(services, ["crm-api", "flow-api", "gateway", "worker"]);
    let mut back = tekup_harness::trace::otlp::spans_of(&request).unwrap();
    let mut all: Vec<Span> = report
        .scenarios
        .iter()
        .flat_map(|s| s.spans.clone())
        .collect();
    back.sort_by(|a, b| a.span_id.cmp(&b.span_id));
    all.sort_by(|a, b| a.span_id.cmp(&b.span_id));
    assert_eq!(back, all);
    assert!(text.contains(&format!("\"traceId\": \"{TRACE_A}\"")));
}
