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
        // One scenario: an ecosystem of its own would be a second start.
        suite.own_ecosystems = false;
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

/// What the witness is to catch, done to it on purpose on the reference
/// services: a job for its tenant, a mock call naming it, a row of its
/// changed behind the API's back.
#[test]
fn the_witness_reports_a_job_a_mock_call_and_a_change_made_for_it() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let finished = rt.block_on(async {
        let mut suite = Suite::new(workspace());
        suite.reports_dir =
            std::env::temp_dir().join(format!("tekup-defects-{}-witness", std::process::id()));
        let runner = suite.runner().await.expect("the ecosystem starts");
        let witness = suite.witness_tenant().await.expect("a witness tenant");
        let eco = runner.ecosystem();
        let contract = tekup_harness::contract::active();
        // A job for the witness, as a confused service would enqueue it.
        let job = tekup_harness::contract::new_job(
            contract,
            "email-sync",
            "sync-email",
            &witness,
            serde_json::json!({}),
            "tkd-witness-job",
        )
        .expect("a job of the contract");
        let mut redis = eco.redis().await.expect("redis");
        let _: String = redis::AsyncCommands::xadd(
            &mut redis,
            contract.queue_stream("email-sync", false),
            "*",
            &[("job", job.to_string())],
        )
        .await
        .expect("enqueued");
        // A call to a mock carrying its tenant id.
        let stripe = eco.mock("stripe").expect("the stripe mock");
        reqwest::Client::new()
            .post(format!("{}/v1/customers", stripe.url))
            .form(&[("metadata[tenant_id]", witness.as_str())])
            .send()
            .await
            .expect("the mock answers");
        // Its lead renamed in the database.
        let pg = eco.postgres_pool().await.expect("postgres");
        let changed =
            sqlx::query("UPDATE flow.leads SET first_name = 'Changed' WHERE tenant_id = $1")
                .bind(&witness)
                .execute(&pg)
                .await
                .expect("updated");
        assert_eq!(changed.rows_affected(), 1);
        // The worker takes the job (and deletes it) before the run ends.
        let stream = contract.queue_stream("email-sync", false);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let left: usize = redis::AsyncCommands::xlen(&mut redis, &stream)
                .await
                .expect("xlen");
            if left == 0 || std::time::Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        drop(runner);
        suite.finish(Vec::new(), 1, &[]).await
    });
    let report = finished.witness.as_ref().expect("a witness");
    let text = report.describe(50);
    let found = |f: fn(&WitnessFinding) -> bool| report.findings.iter().any(f);
    assert!(
        found(
            |f| matches!(f, WitnessFinding::Job { kind, correlation, .. }
            if kind == "sync-email" && correlation == "tkd-witness-job")
        ),
        "{text}"
    );
    assert!(
        found(
            |f| matches!(f, WitnessFinding::MockCall { mock, naming, .. }
            if mock == "stripe" && naming == "tenant id")
        ),
        "{text}"
    );
    assert!(
        found(
            |f| matches!(f, WitnessFinding::Changed { what, .. } if what == "rows in flow.leads")
        ),
        "{text}"
    );
    assert!(
        found(|f| matches!(f, WitnessFinding::Changed { what, after, .. }
            if what.starts_with("lead (GET flow-api /leads/") && after.contains("Changed"))),
        "{text}"
    );
    assert!(finished.witness_failed(), "{text}");
}

/// A worker that loses the trace context of the jobs it takes (the
/// enqueued job carries no `traceparent`) fails the `trace` steps of the
/// shipped scenarios whose work goes through a queue, and the report
/// shows where the chain broke: the processing span is missing from the
/// run's traces and turns up outside them, under the run's tenant.
#[test]
fn jobs_that_lose_their_trace_context_fail_the_trace_steps() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let reports = rt.block_on(async {
        let mut suite = Suite::new(workspace());
        suite.reports_dir = std::env::temp_dir().join(format!(
            "tekup-defects-{}-trace-drops-job-context",
            std::process::id()
        ));
        suite.defects = "trace-drops-job-context".to_owned();
        let runner = suite.runner().await.expect("the ecosystem starts");
        let mut reports = Vec::new();
        for file in ["lead-to-contact.yaml", "security-propagation.yaml"] {
            let scenario =
                parse_file(&workspace().join("scenarios").join(file)).expect("valid scenario");
            reports.push(runner.run(&scenario).await);
        }
        reports
    });
    for report in &reports {
        let (label, text) = failed_step(report);
        assert!(label.starts_with("trace:"), "{label}\n{text}");
        assert!(text.contains(".yaml:"), "{text}");
        assert!(
            text.contains("count: expected 1, got 0 (found none)"),
            "{text}"
        );
        assert!(
            text.contains("arrived outside its traces: a trace context was lost on the way"),
            "{text}"
        );
        assert!(text.contains("the run's traces:"), "{text}");
        assert!(text.contains("worker consumer \"process "), "{text}");
    }
    let lead = failure_text(&reports[0]).expect("text");
    assert!(
        lead.contains(
            "`process` (span worker consumer process.process-lead status ok, a child of `job`)"
        ),
        "{lead}"
    );
    let incident = failure_text(&reports[1]).expect("text");
    assert!(
        incident
            .contains("`check` (span worker process.compliance-check status ok, under `incident`)"),
        "{incident}"
    );
}
