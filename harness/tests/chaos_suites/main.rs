//! The chaos suites at the size CI runs (`Plan::bounded`), on the process
//! runtime: each holds its invariants on the reference services, and a
//! worker that drops failed jobs (`TEKUP_DEFECTS=no-job-retry`, a missing
//! retry) is caught losing leads, and a gateway whose audit skips rows
//! (`audit-skip`) is caught by `gateway-partition`'s audit check, and a
//! lead queued twice (`lead-enqueued-twice`, invisible to the stores: the
//! handlers are idempotent) is caught by the leads' traces, and a worker
//! that never takes over a dead worker's jobs (`worker-no-reclaim`) is
//! caught by `worker-killed`, and a worker that dead-letters a failed job
//! once its retries' count is used (`job-retries-by-count`, its queue's
//! retry span ignored) is caught dead-lettering leads during
//! `postgres-restarted`'s 10 s outage. The suites that kill a service mid-work
//! each catch a build broken their way ([`kills`]). Refusals are judged
//! too: a platform that answers 500 while Postgres is down
//! (`outage-500`) and one that keeps refusing long after Redis came back
//! (`outage-sticky`) are caught. Every suite has a
//! witness tenant that must see and suffer nothing. Full size:
//! `tekup-harness chaos --full`.

#![expect(
    clippy::print_stderr,
    reason = "the suites' progress and summaries, for the test output"
)]

use std::path::{Path, PathBuf};

use tekup_harness::chaos::suite::{self, Plan, SuiteName, SuiteReport};
use tekup_harness::env::{error_chain, Ecosystem, Runtime};
use tekup_harness::invariants::witness::WitnessFinding;
use tekup_harness::invariants::{Finding, Phase, RefusalProblem};

mod kills;

fn workspace() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    dir.canonicalize().unwrap_or(dir)
}

/// Starts the reference ecosystem (links on) with `defects` switched on in
/// every service.
async fn ecosystem(defects: &str, logs: &str) -> Ecosystem {
    start(
        Ecosystem::builder().file(workspace().join("fixtures/ecosystem.toml")),
        defects,
        logs,
    )
    .await
}

async fn start(
    builder: tekup_harness::env::EcosystemBuilder,
    defects: &str,
    logs: &str,
) -> Ecosystem {
    let mut builder = builder;
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

/// Fails unless the suite failed: it runs on a build with a defect.
fn assert_caught(report: &SuiteReport) {
    assert!(
        !report.passed(),
        "the defect went unnoticed:\n{}",
        report.summary()
    );
}

/// Whether the timeline has an entry starting with `start`.
fn noted(report: &SuiteReport, start: &str) -> bool {
    report
        .timeline
        .entries
        .iter()
        .any(|(_, what)| what.starts_with(start))
}

async fn run(eco: &Ecosystem, name: SuiteName, plan: &Plan) -> SuiteReport {
    let progress = |line: &str| eprintln!("{line}");
    let report = suite::run(eco, name, plan, &progress)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!("{}", report.summary());
    report
}

/// One suite on an ecosystem of its own, on the reference services: the
/// fault happened during the load, and the suite passed.
async fn holds(name: SuiteName) {
    let eco = ecosystem("", &format!("reference-{}", name.as_str())).await;
    let report = run(&eco, name, &Plan::bounded(name)).await;
    assert!(report.timeline.entries.len() >= 4, "{}", report.summary());
    assert!(report.passed(), "{}", report.summary());
}

/// A test per suite (each its own ecosystem, so they run side by side and
/// a failure names its suite), and a check that no suite is left out:
/// `gateway-partition`'s test is below, with its audit and its witness.
macro_rules! each_suite_holds_on_the_reference_services {
    ($($test:ident: $name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $test() {
                holds(SuiteName::$name).await;
            }
        )*

        #[test]
        fn every_suite_has_a_test_on_the_reference_services() {
            let mut tested = vec![$(SuiteName::$name,)* SuiteName::GatewayPartition];
            tested.sort();
            let mut all = SuiteName::ALL.to_vec();
            all.sort();
            assert_eq!(tested, all);
        }
    };
}

each_suite_holds_on_the_reference_services! {
    redis_killed_holds_its_invariants_on_the_reference_services: RedisKilled,
    postgres_restarted_holds_its_invariants_on_the_reference_services: PostgresRestarted,
    mock_flaky_holds_its_invariants_on_the_reference_services: MockFlaky,
    crm_paused_holds_its_invariants_on_the_reference_services: CrmPaused,
    worker_killed_holds_its_invariants_on_the_reference_services: WorkerKilled,
    flow_api_killed_holds_its_invariants_on_the_reference_services: FlowApiKilled,
    crm_api_killed_holds_its_invariants_on_the_reference_services: CrmApiKilled,
    gateway_restarted_holds_its_invariants_on_the_reference_services: GatewayRestarted,
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
    assert_caught(&report);
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
    assert!(noted(&report, "audit checked"), "{}", report.summary());
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
    assert_caught(&report);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lead_queued_twice_is_caught_by_its_trace_where_the_stores_see_nothing() {
    let eco = ecosystem("lead-enqueued-twice", "lead-enqueued-twice").await;
    // A fault away from the leads' path (Graph serves only the email
    // syncs), so every accepted lead's second job is queued too.
    let name = SuiteName::MockFlaky;
    let mut plan = Plan::bounded(name);
    plan.load.leads = 100;
    plan.recovery = std::time::Duration::from_secs(30);
    let report = run(&eco, name, &plan).await;
    assert_caught(&report);
    // Every accepted lead was followed in its trace, and each is reported
    // queued as two jobs.
    assert_eq!(
        report.verdict.traces.followed as u64,
        report.tally.accepted,
        "{}",
        report.summary()
    );
    let twice = report
        .verdict
        .findings
        .iter()
        .filter(|f| matches!(f, Finding::TraceJobs { jobs, .. } if jobs.len() == 2))
        .count();
    assert_eq!(twice as u64, report.tally.accepted, "{}", report.summary());
    assert!(
        report.summary().contains("was queued as 2 jobs"),
        "{}",
        report.summary()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn crm_paused_fires_service_down_under_the_shipped_rules_and_it_resolves() {
    let builder = Ecosystem::builder()
        .file(workspace().join("fixtures/ecosystem.toml"))
        .prometheus(true);
    let eco = start(builder, "", "alert").await;
    let name = SuiteName::CrmPaused;
    let mut plan = Plan::bounded(name);
    // The alert is the point here; a small load keeps the freeze's retries
    // and dead letters few.
    plan.load.leads = 60;
    let report = run(&eco, name, &plan).await;
    let alert = report
        .alert
        .as_ref()
        .expect("Prometheus runs: the alert is checked");
    assert!(report.passed(), "{}", report.summary());
    let hold = alert.rule_hold.expect("the shipped rules have ServiceDown");
    // Held until the alert fired: at least the rule's `for:`, not the
    // plan's two seconds.
    assert!(
        alert.fired_after.is_some_and(|at| at >= hold),
        "{}",
        report.summary()
    );
    assert!(alert.resolved_after.is_some(), "{}", report.summary());
    assert!(
        report
            .summary()
            .contains("alert ServiceDown{job=crm-api}: fired"),
        "{}",
        report.summary()
    );
}

/// A copy of `fixtures/` under the workspace's `target/` (so the
/// services' binaries are found as from the original) whose `ServiceDown`
/// rule can never fire: `up == 2`, the kind of slip that blinds the
/// monitoring. Its `for:` is five seconds, so the wait for it is short.
fn fixtures_with_a_blind_rule() -> PathBuf {
    let from = workspace().join("fixtures");
    let to = workspace()
        .join("target")
        .join(format!("tekup-blind-rule-{}", std::process::id()));
    copy_dir(&from, &to);
    let rules = to.join("prometheus/alerts.yml");
    let text = std::fs::read_to_string(&rules).expect("the rules");
    let broken = text.replacen(
        "expr: up == 0\n        for: 1m",
        "expr: up == 2\n        for: 5s",
        1,
    );
    assert_ne!(
        broken, text,
        "the ServiceDown rule is where the test expects it"
    );
    std::fs::write(&rules, broken).expect("write the broken rules");
    to.join("ecosystem.toml")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("make the copy's directory");
    for entry in std::fs::read_dir(from).expect("read fixtures") {
        let entry = entry.expect("an entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("its type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy a fixture");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rule_that_cannot_fire_fails_crm_paused_naming_the_alert() {
    let file = fixtures_with_a_blind_rule();
    let builder = Ecosystem::builder().file(&file).prometheus(true);
    let eco = start(builder, "", "blind-rule").await;
    let name = SuiteName::CrmPaused;
    let mut plan = Plan::bounded(name);
    plan.load.leads = 60;
    let report = run(&eco, name, &plan).await;
    drop(eco);
    let _ = std::fs::remove_dir_all(file.parent().expect("the copy"));
    assert!(
        !report.passed(),
        "the blind rule went unnoticed:\n{}",
        report.summary()
    );
    let alert = report.alert.as_ref().expect("the alert is checked");
    assert_eq!(alert.fired_after, None, "{}", report.summary());
    assert!(
        report
            .summary()
            .contains("ServiceDown{job=crm-api} did not fire within the rule's for: plus 30 s"),
        "{}",
        report.summary()
    );
    // The rest of the suite held: only the monitoring is at fault.
    assert!(report.verdict.holds(), "{}", report.summary());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_that_never_takes_over_a_dead_workers_jobs_is_caught_by_worker_killed() {
    let eco = ecosystem("worker-no-reclaim", "worker-no-reclaim").await;
    let name = SuiteName::WorkerKilled;
    let mut plan = Plan::bounded(name);
    plan.load.leads = 100;
    // Past the reference worker's takeover (jobs idle 30 s, looked for
    // every 15 s), which `every_suite_holds_…` shows within the default.
    plan.recovery = std::time::Duration::from_secs(50);
    let report = run(&eco, name, &plan).await;
    assert_caught(&report);
    assert!(
        noted(&report, "worker killed holding"),
        "{}",
        report.summary()
    );
    // The jobs it held are never processed, and stay in flight.
    let findings = &report.verdict.findings;
    assert!(
        findings
            .iter()
            .any(|f| matches!(f, Finding::Unprocessed { .. })),
        "{}",
        report.summary()
    );
    assert!(
        findings.iter().any(|f| matches!(
            f,
            Finding::QueueBusy { queue, in_flight, .. } if queue == "lead-processing" && *in_flight > 0
        )),
        "{}",
        report.summary()
    );
    // Nothing else: no lead lost, nothing doubled.
    assert!(
        findings.iter().all(|f| matches!(
            f,
            Finding::Unprocessed { .. } | Finding::QueueBusy { .. } | Finding::JobsUnsettled { .. }
        )),
        "{}",
        report.summary()
    );
}

/// The refusal findings of a report: phase, status and problem.
fn refusals(report: &SuiteReport) -> Vec<(Phase, Option<u16>, &RefusalProblem)> {
    report
        .verdict
        .findings
        .iter()
        .filter_map(|f| match f {
            Finding::Refused {
                phase,
                status,
                problem,
                ..
            } => Some((*phase, *status, problem)),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_platform_that_answers_500_while_postgres_is_down_is_caught() {
    let eco = ecosystem("outage-500", "outage-500").await;
    let name = SuiteName::PostgresRestarted;
    let report = run(&eco, name, &Plan::bounded(name)).await;
    assert_caught(&report);
    let found = refusals(&report);
    assert!(
        found.iter().any(|(phase, status, problem)| *phase == Phase::During
            && *status == Some(500)
            && matches!(problem, RefusalProblem::NotAllowed { allowed } if allowed == &[429, 503])),
        "{found:?}\n{}",
        report.summary()
    );
    // A 500 is not retried: those leads are refused for good.
    assert!(report.tally.refused > 0, "{}", report.summary());
    assert!(
        report
            .summary()
            .contains("answered 500 during the fault; allowed then: 429, 503"),
        "{}",
        report.summary()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_platform_that_keeps_refusing_after_redis_came_back_is_caught() {
    let eco = ecosystem("outage-sticky", "outage-sticky").await;
    let name = SuiteName::RedisKilled;
    let report = run(&eco, name, &Plan::bounded(name)).await;
    assert_caught(&report);
    let found = refusals(&report);
    let late = found
        .iter()
        .find_map(|(phase, status, problem)| match problem {
            RefusalProblem::StillRefusing {
                latest_after_heal_ms,
                grace_ms,
            } if *phase == Phase::After && *status == Some(503) => {
                Some((*latest_after_heal_ms, *grace_ms))
            }
            _ => None,
        });
    let (latest, grace) = late.unwrap_or_else(|| {
        panic!(
            "expected 503s after the grace period:\n{}",
            report.summary()
        )
    });
    assert!(latest > grace, "{latest} ms after a {grace} ms grace");
    // Nothing else is wrong: the 503s during the outage carried Retry-After.
    assert!(
        found
            .iter()
            .all(|(_, _, p)| matches!(p, RefusalProblem::StillRefusing { .. })),
        "{found:?}"
    );
    assert!(
        report.summary().contains("still refusing"),
        "{}",
        report.summary()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_that_retries_by_count_alone_is_caught_dead_lettering_during_a_postgres_outage() {
    let eco = ecosystem("job-retries-by-count", "job-retries-by-count").await;
    let name = SuiteName::PostgresRestarted;
    let report = run(&eco, name, &Plan::bounded(name)).await;
    assert_caught(&report);
    assert!(
        noted(&report, "postgres killed while the worker held"),
        "{}",
        report.summary()
    );
    let outage = report.timeline.outage().expect("the fault healed");
    assert!(
        outage >= std::time::Duration::from_secs(10),
        "{}",
        report.summary()
    );
    // The jobs the outage found used their three retries within it (at
    // most 0.5 + 1 + 2 s) and were dead-lettered; the reference worker
    // rides out the contract's 30 s.
    let dead = report.verdict.findings.iter().find_map(|f| match f {
        Finding::DeadLettered {
            queue,
            count,
            outage,
            span,
        } if queue == "lead-processing" => Some((*count, *outage, *span)),
        _ => None,
    });
    let (count, judged, span) = dead.unwrap_or_else(|| {
        panic!(
            "expected lead-processing jobs dead-lettered during the outage:\n{}",
            report.summary()
        )
    });
    assert!(count > 0, "{}", report.summary());
    assert_eq!(judged, outage, "{}", report.summary());
    assert_eq!(span, std::time::Duration::from_secs(30));
    // Among them the load's leads: dead-lettered, not lost.
    assert!(report.verdict.dead_lettered > 0, "{}", report.summary());
    assert!(
        report.summary().contains(&format!(
            "{count} lead-processing job(s) dead-lettered during a {:.1} s outage; the contract's retry span is 30 s",
            outage.as_secs_f64()
        )),
        "{}",
        report.summary()
    );
}
