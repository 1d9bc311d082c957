//! The chaos suites at the size CI runs (`Plan::bounded`), on the process
//! runtime: each holds its invariants on the reference services, and a
//! worker that drops failed jobs (`TEKUP_DEFECTS=no-job-retry`, a missing
//! retry) is caught losing leads, and a gateway whose audit skips rows
//! (`audit-skip`) is caught by `gateway-partition`'s audit check. Every
//! suite has a witness tenant that must see and suffer nothing. Full size:
//! `tekup-harness chaos --full`.

#![expect(
    clippy::print_stderr,
    reason = "the suites' progress and summaries, for the test output"
)]

use std::path::{Path, PathBuf};

use tekup_harness::chaos::suite::{self, Plan, SuiteName, SuiteReport};
use tekup_harness::env::{error_chain, Ecosystem, Runtime};
use tekup_harness::invariants::witness::WitnessFinding;
use tekup_harness::invariants::Finding;

fn workspace() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    dir.canonicalize().unwrap_or(dir)
}

/// Starts the reference ecosystem (links on) with `defects` switched on in
/// every service.
async fn ecosystem(defects: &str, logs: &str) -> Ecosystem {
    let mut builder = Ecosystem::builder().file(workspace().join("fixtures/ecosystem.toml"));
    if !defects.is_empty() {
        builder = builder.defects(defects);
    }
    let eco = builder
        .runtime(Runtime::Process)
        .logs_dir(
            std::env::temp_dir().join(format!("tekup-chaos-suites-{}-{logs}", std::process::id())),
        )
        .start()
        .await;
    eco.unwrap_or_else(|e| panic!("the ecosystem starts: {}", error_chain(&e)))
}

async fn run(eco: &Ecosystem, name: SuiteName, plan: &Plan) -> SuiteReport {
    let progress = |line: &str| eprintln!("{line}");
    let report = suite::run(eco, name, plan, &progress)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!("{}", report.summary());
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_suite_holds_its_invariants_on_the_reference_services() {
    let eco = ecosystem("", "reference").await;
    let mut failed = Vec::new();
    for name in SuiteName::ALL {
        let report = run(&eco, name, &Plan::bounded(name)).await;
        // The fault really happened, during the load.
        assert!(report.timeline.entries.len() >= 4, "{}", report.summary());
        if !report.passed() {
            failed.push(report.summary());
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_that_drops_failed_jobs_is_caught_losing_them() {
    let eco = ecosystem("no-job-retry", "no-job-retry").await;
    // Email syncs fail while Graph answers only 500s and 429s (the
    // services' own call retries cannot get past that); without job
    // retries they are gone, and nothing brings them back: no need to
    // wait long.
    let name = SuiteName::MockFlaky;
    let mut plan = Plan::bounded(name);
    plan.mock_failure_ratio = 1.0;
    // Graph fails from the first request until every email sync has been
    // tried: none can succeed, whatever the machine's speed.
    plan.fault_at = 0.0;
    plan.heal_when_drained = Some("email-sync");
    plan.recovery = std::time::Duration::from_secs(10);
    let report = run(&eco, name, &plan).await;
    assert!(
        !report.passed(),
        "the defect went unnoticed:\n{}",
        report.summary()
    );
    let unsettled = report.verdict.findings.iter().find_map(|f| match f {
        Finding::JobsUnsettled {
            queue,
            accepted,
            settled,
        } if queue == "email-sync" => Some((*accepted, *settled)),
        _ => None,
    });
    let (accepted, settled) = unsettled.unwrap_or_else(|| {
        panic!(
            "expected email-sync jobs neither completed nor dead-lettered:\n{}",
            report.summary()
        )
    });
    assert!(settled < accepted, "{}", report.summary());
    assert!(
        report.summary().contains("queue email-sync settled"),
        "{}",
        report.summary()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gateway_partition_holds_its_audit_and_its_witness_on_the_reference_services() {
    let eco = ecosystem("", "gateway-reference").await;
    let name = SuiteName::GatewayPartition;
    let report = run(&eco, name, &Plan::bounded(name)).await;
    assert!(report.passed(), "{}", report.summary());
    let events = report.events.as_ref().expect("the subscribers' check");
    assert!(events.received > 0, "{}", report.summary());
    assert!(
        report
            .timeline
            .entries
            .iter()
            .any(|(_, what)| what.starts_with("audit checked")),
        "{}",
        report.summary()
    );
    // The witness was set up, in every room, and watched everything.
    assert!(!report.witness.tenant.is_empty(), "{}", report.summary());
    assert!(report.witness.holds(), "{}", report.summary());
    assert!(
        report.witness.skipped.is_empty(),
        "{}",
        report.witness.describe(5)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_gateway_audit_that_skips_rows_is_caught_by_gateway_partition() {
    let eco = ecosystem("audit-skip", "audit-skip").await;
    let name = SuiteName::GatewayPartition;
    let mut plan = Plan::bounded(name);
    // Fewer leads suffice (one audit row in seven goes missing), and a
    // missing row is pending until the deadline: keep it short.
    plan.load.leads = 120;
    plan.recovery = std::time::Duration::from_secs(20);
    let report = run(&eco, name, &plan).await;
    assert!(
        !report.passed(),
        "the defect went unnoticed:\n{}",
        report.summary()
    );
    let unaudited: Vec<&Finding> = report
        .verdict
        .findings
        .iter()
        .filter(|f| {
            matches!(f, Finding::Unaudited { rows: 0, app, event_type, .. }
                if app == "crm-web" && event_type == "LEAD_CREATED")
        })
        .collect();
    // One row in seven of the suite's deliveries, give or take those of
    // other rooms and tenants the counter also counts.
    let received = report.events.as_ref().map_or(0, |e| e.received);
    assert!(
        unaudited.len() * 20 >= received && !unaudited.is_empty(),
        "{} unaudited of {received} delivered:\n{}",
        unaudited.len(),
        report.summary()
    );
    assert!(
        report
            .summary()
            .contains("delivered to room (tekup-harness-")
            && report.summary().contains("-chaos-gateway-partition-"),
        "{}",
        report.summary()
    );
    // Nothing else is wrong with the platform: the load's invariants hold.
    let other: Vec<String> = report
        .verdict
        .findings
        .iter()
        .filter(|f| !matches!(f, Finding::Unaudited { .. }))
        .map(ToString::to_string)
        .collect();
    assert!(other.is_empty(), "{other:#?}");
    // The witness may have lost one of its own rows (the counter is the
    // process's); if so it says so at its set-up, and it saw no leak.
    assert!(
        report
            .witness
            .findings
            .iter()
            .all(|f| matches!(f, WitnessFinding::SetUp(_))),
        "{}",
        report.witness.describe(10)
    );
}
