//! The scenarios catch broken services: the platform's own scenario files
//! run against reference services started with deliberate defects
//! (`TEKUP_DEFECTS`, see services/src/defects.rs) fail at the step that
//! checks the broken behaviour, with a report that says what went wrong.

use std::path::{Path, PathBuf};

use tekup_harness::report::{ScenarioReport, Status};
use tekup_harness::scenario::parse_file;
use tekup_harness::scenario::run::{failure_text, Suite};

fn workspace() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    dir.canonicalize().unwrap_or(dir)
}

/// Runs a scenario file of `scenarios/` on an ecosystem with `defects` on.
fn run_with_defects(defects: &str, file: &str) -> ScenarioReport {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let mut suite = Suite::new(workspace());
        suite.reports_dir =
            std::env::temp_dir().join(format!("tekup-defects-{}-{defects}", std::process::id()));
        suite.defects = defects.to_owned();
        let runner = suite.runner().await.expect("the ecosystem starts");
        let scenario =
            parse_file(&workspace().join("scenarios").join(file)).expect("valid scenario");
        let report = runner.run(&scenario).await;
        drop(runner);
        suite.finish(Vec::new(), 1, &[]).await;
        report
    })
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
    let report = run_with_defects("skip-lead-event", "lead-to-contact.yaml");
    let (label, text) = failed_step(&report);
    assert!(label.contains("expects LEAD_CREATED"), "{label}\n{text}");
    assert!(text.contains("lead-to-contact.yaml:"), "{text}");
    assert!(text.contains("no `LEAD_CREATED` frame"), "{text}");
    assert!(text.contains("WebSocket `crm` received"), "{text}");
}

#[test]
fn a_gateway_without_its_tenant_filter_fails_lead_to_contact_at_the_spy() {
    let report = run_with_defects("cross-tenant-fanout", "lead-to-contact.yaml");
    let (label, text) = failed_step(&report);
    assert!(label.contains("spy expects no event"), "{label}\n{text}");
    assert!(text.contains("expected no event but received"), "{text}");
    assert!(text.contains("LEAD_CREATED"), "{text}");
}
