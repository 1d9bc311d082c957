//! The suites that kill a service in the middle of its work, each against
//! a build broken the way it exists to catch:
//!
//! - `flow-api-killed`: a Flow API that queues a lead's job after the
//!   commit with nothing to recover it from (`lead-no-outbox`) leaves the
//!   leads it had stored when it died unprocessed for good;
//! - `crm-api-killed`: a worker that takes a CRM that is down for a final
//!   answer (`crm-refused-final`) acknowledges jobs whose leads never got
//!   their contact;
//! - `gateway-restarted`: a gateway that ignores a reconnecting client's
//!   last event id (`gateway-resume-from-now`) never sends what was
//!   published while it was away.

use std::time::Duration;

use tekup_harness::chaos::suite::{Plan, SuiteName, SuiteReport};
use tekup_harness::invariants::Finding;

use super::{assert_caught, ecosystem, noted, run};

/// The number at the start of the timeline entry that ends `…{rest}`.
fn counted(report: &SuiteReport, rest: &str) -> Option<u64> {
    report.timeline.entries.iter().find_map(|(_, what)| {
        what.find(rest)
            .and_then(|at| what[..at].split_whitespace().last())
            .and_then(|n| n.parse().ok())
    })
}

/// Nothing but leads left unprocessed (and so their queue unsettled):
/// nothing lost, nothing doubled.
fn only_unprocessed(report: &SuiteReport) -> bool {
    report.verdict.findings.iter().all(|f| {
        matches!(
            f,
            Finding::Unprocessed { .. } | Finding::JobsUnsettled { .. }
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flow_api_without_an_outbox_is_caught_by_flow_api_killed_losing_stored_leads() {
    let eco = ecosystem("lead-no-outbox", "lead-no-outbox").await;
    let name = SuiteName::FlowApiKilled;
    let mut plan = Plan::bounded(name);
    plan.load.leads = 100;
    // The leads it held are never processed: nothing brings them back, so
    // no need to wait long.
    plan.recovery = Duration::from_secs(15);
    let report = run(&eco, name, &plan).await;
    assert_caught(&report);
    assert!(
        noted(&report, "flow-api killed with"),
        "{}",
        report.summary()
    );
    let stored = counted(&report, " lead(s) stored whose answer never came back");
    assert!(stored.is_some_and(|n| n > 0), "{}", report.summary());
    assert!(
        report
            .verdict
            .findings
            .iter()
            .any(|f| matches!(f, Finding::Unprocessed { .. })),
        "{}",
        report.summary()
    );
    assert!(only_unprocessed(&report), "{}", report.summary());
    assert!(report.witness.holds(), "{}", report.summary());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_that_takes_a_dead_crm_for_an_answer_is_caught_by_crm_api_killed() {
    let eco = ecosystem("crm-refused-final", "crm-refused-final").await;
    let name = SuiteName::CrmApiKilled;
    let mut plan = Plan::bounded(name);
    plan.load.leads = 150;
    plan.recovery = Duration::from_secs(20);
    let report = run(&eco, name, &plan).await;
    assert_caught(&report);
    assert!(
        noted(&report, "crm-api killed while the worker held"),
        "{}",
        report.summary()
    );
    // Their jobs were acknowledged: the leads stay without a contact.
    assert!(
        report
            .verdict
            .findings
            .iter()
            .any(|f| matches!(f, Finding::Unprocessed { .. })),
        "{}",
        report.summary()
    );
    assert!(only_unprocessed(&report), "{}", report.summary());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_gateway_that_ignores_the_resume_cursor_is_caught_by_gateway_restarted() {
    let eco = ecosystem("gateway-resume-from-now", "gateway-resume-from-now").await;
    let name = SuiteName::GatewayRestarted;
    let mut plan = Plan::bounded(name);
    plan.load.leads = 150;
    plan.recovery = Duration::from_secs(30);
    let report = run(&eco, name, &plan).await;
    assert_caught(&report);
    assert!(
        noted(&report, "gateway stopped (SIGTERM) and started again"),
        "{}",
        report.summary()
    );
    assert!(
        noted(&report, "subscribers resumed"),
        "{}",
        report.summary()
    );
    let events = report
        .events
        .as_ref()
        .expect("gateway-restarted subscribes");
    assert!(events.missing > 0, "{}", report.summary());
    assert_eq!(
        events.duplicated + events.foreign,
        0,
        "{}",
        report.summary()
    );
    // The stores are right: only the deliveries are missing.
    assert!(
        report.verdict.findings.iter().all(|f| matches!(
            f,
            Finding::Unaudited { .. } | Finding::AuditWithoutDelivery { .. }
        )),
        "{}",
        report.summary()
    );
}
