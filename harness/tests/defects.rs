//! The scenarios catch broken services: the platform's own scenario files
//! run against reference services started with deliberate defects
//! (`TEKUP_DEFECTS`, see services/src/defects.rs) fail at the step that
//! checks the broken behaviour, with a report that says what went wrong;
//! and the suite's witness tenant fails the run on a leak even when the
//! scenario never looked for one.

use std::path::{Path, PathBuf};

use tekup_harness::invariants::witness::WitnessFinding;
use tekup_harness::report::{Format, ScenarioReport, Status};
use tekup_harness::scenario::parse_file;
use tekup_harness::scenario::run::{failure_text, Finished, Suite};

fn workspace() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    dir.canonicalize().unwrap_or(dir)
}

/// Runs a scenario file of `scenarios/` on an ecosystem with `defects` on,
/// and finishes the suite (its witness checked, a JSON report written).
fn run_with_defects(defects: &str, file: &str) -> (ScenarioReport, Finished) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let mut suite = Suite::new(workspace());
        suite.reports_dir = std::env::temp_dir().join(format!(
            "tekup-defects-{}-{defects}-{file}",
            std::process::id()
        ));
        suite.defects = defects.to_owned();
        let runner = suite.runner().await.expect("the ecosystem starts");
        let scenario =
            parse_file(&workspace().join("scenarios").join(file)).expect("valid scenario");
        let report = runner.run(&scenario).await;
        drop(runner);
        let finished = suite.finish(vec![report.clone()], 1, &[Format::Json]).await;
        (report, finished)
    })
}

/// The witness's leak findings: (its connection's app, the event's type,
/// its tenant, its id).
fn leaks(finished: &Finished) -> Vec<(String, String, String, String)> {
    let witness = finished.witness.as_ref().expect("the suite had a witness");
    witness
        .findings
        .iter()
        .filter_map(|f| match f {
            WitnessFinding::Frame {
                app,
                event_type,
                tenant,
                id,
                own: false,
            } => Some((app.clone(), event_type.clone(), tenant.clone(), id.clone())),
            _ => None,
        })
        .collect()
}

/// The failed step's label and the full failure text.
fn failed_step(report: &ScenarioReport) -> (String, String) {
    assert_eq!(report.status, Status::Failed, "the defect went unnoticed");
    let failure = report.failure.as_ref().expect("a failure");
    let step = failure
        .step
        .and_then(|i| report.steps.get(i - 1))
        .expect("a failed step");
    (step.label.clone(), failure_text(report).expect("text"))
}

#[test]
fn a_worker_that_skips_the_event_fails_lead_to_contact_at_the_event() {
    let (report, _) = run_with_defects("skip-lead-event", "lead-to-contact.yaml");
    let (label, text) = failed_step(&report);
    assert!(label.contains("expects LEAD_CREATED"), "{label}\n{text}");
    assert!(text.contains("lead-to-contact.yaml:"), "{text}");
    assert!(text.contains("no `LEAD_CREATED` frame"), "{text}");
    assert!(text.contains("WebSocket `crm` received"), "{text}");
}

#[test]
fn a_gateway_without_its_tenant_filter_fails_lead_to_contact_at_the_spy() {
    let (report, finished) = run_with_defects("cross-tenant-fanout", "lead-to-contact.yaml");
    let (label, text) = failed_step(&report);
    assert!(label.contains("spy expects no event"), "{label}\n{text}");
    assert!(text.contains("expected no event but received"), "{text}");
    assert!(text.contains("LEAD_CREATED"), "{text}");
    // The witness saw it too: acme's LEAD_CREATED in its crm-web and flow-web rooms.
    let acme = &report.tenants["acme"];
    let leaked: Vec<_> = leaks(&finished)
        .into_iter()
        .filter(|(_, kind, tenant, _)| kind == "LEAD_CREATED" && tenant == acme)
        .map(|(app, ..)| app)
        .collect();
    assert!(
        leaked.contains(&"crm-web".to_owned()) && leaked.contains(&"flow-web".to_owned()),
        "{leaked:?}\n{}",
        finished
            .witness
            .as_ref()
            .map(|w| w.describe(20))
            .unwrap_or_default()
    );
}

#[test]
fn a_leak_no_scenario_looks_for_fails_the_run_through_the_witness() {
    // security-low-severity checks its own tenant's incident and never
    // whether another tenant's room got it: it passes on the broken gateway.
    let (report, finished) = run_with_defects("cross-tenant-fanout", "security-low-severity.yaml");
    assert_eq!(
        report.status,
        Status::Passed,
        "{}",
        failure_text(&report).unwrap_or_default()
    );
    let acme = &report.tenants["acme"];
    let incident = leaks(&finished).into_iter().find(|(app, kind, tenant, _)| {
        kind == "SECURITY_INCIDENT" && tenant == acme && app == "secure-platform"
    });
    let witness = finished.witness.as_ref().expect("a witness").describe(20);
    let (_, _, _, id) = incident.unwrap_or_else(|| panic!("no leak found:\n{witness}"));
    // The run fails with a `witness` entry naming the leaked event.
    let entry = finished.entry.as_ref().expect("a failed witness entry");
    assert_eq!(
        (entry.name.as_str(), entry.status),
        ("witness", Status::Failed)
    );
    let text = failure_text(entry).expect("a failure");
    assert!(
        text.contains(&format!(
            "LEAK: the witness's secure-platform connection received SECURITY_INCIDENT {id} of tenant {acme}"
        )),
        "{text}"
    );
    let json = finished
        .written
        .iter()
        .find(|p| p.extension().is_some_and(|e| e == "json"))
        .expect("report.json written");
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(json).expect("read")).expect("json");
    let entries = written["scenarios"].as_array().expect("scenarios");
    assert!(
        entries
            .iter()
            .any(|s| s["name"] == "witness" && s["status"] == "failed"),
        "{written}"
    );
    assert!(entries
        .iter()
        .any(|s| s["name"] == "security-low-severity" && s["status"] == "passed"));
}
