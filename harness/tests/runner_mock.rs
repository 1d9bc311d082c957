//! The `mock` step against a real ecosystem (process runtime): `expect-none`
//! fails as soon as a matching call arrives within its window and counts
//! only calls from its start, `clear` empties the journal, and a fault kind
//! written in YAML reaches the mock (its journal names it).
//!
//! One ecosystem serves every test of this binary (started by the first).

use std::path::Path;
use std::sync::Arc;

use tekup_harness::report::{ScenarioReport, Status};
use tekup_harness::scenario::parse_str;
use tekup_harness::scenario::run::{failure_text, Runner};

mod runner_common;

use runner_common::rt;

/// This binary's reports directory prefix.
const REPORTS: &str = "tekup-runner-mock-test";

async fn runner() -> Arc<Runner> {
    runner_common::runner(REPORTS).await
}

async fn run(text: &str) -> ScenarioReport {
    let s = parse_str(Path::new("t.yaml"), text).unwrap_or_else(|e| panic!("{e}"));
    runner().await.run(&s).await
}

/// A voice command: flow-api asks Gemini once, before it answers.
const VOICE: &str = "  - http:\n      service: flow-api\n      tenant: acme\n      app: voice-agent\n      \
                     request: { method: POST, path: /voice/execute, json: { transcript: show me my leads } }\n";

/// An email sync: crm-api answers 202 at once; the worker reads Graph later.
const SYNC: &str =
    "  - http:\n      service: crm-api\n      tenant: acme\n      app: inbox-ai\n      \
                    request: { method: POST, path: /emails/sync }\n      expect: { status: 202 }\n";

#[test]
fn expect_none_fails_as_soon_as_a_matching_call_arrives_in_its_window() {
    rt().block_on(async {
        let report = run(&format!(
            "name: none\ntenants: [acme]\nsteps:\n{SYNC}  - mock: {{ expect-none: graph, request: {{ method: GET }}, for: 20s }}\n"
        ))
        .await;
        assert_eq!(report.status, Status::Failed, "{report:?}");
        let failure = report.failure.as_ref().expect("a failure");
        assert_eq!(failure.location, "t.yaml:10");
        assert!(
            failure.message.starts_with("mock `graph` received 1 matching call(s) from this scenario")
                || failure.message.starts_with("mock `graph` received 2 matching call(s)"),
            "{}",
            failure.message
        );
        assert!(failure.message.contains("into the 20.0 s it had to receive none"), "{}", failure.message);
        let text = failure_text(&report).expect("text");
        assert!(text.contains("GET /v1.0/users/"), "the call is shown: {text}");
        // It failed on the call, not at the end of the window.
        let step = &report.steps[1];
        assert!(step.duration_ms < 15_000.0, "waited out the window: {}", step.duration_ms);
    });
}

#[test]
fn expect_none_counts_from_its_start_and_waits_out_its_window() {
    rt().block_on(async {
        let report = run(&format!(
            "name: quiet\ntenants: [acme]\nsteps:\n{VOICE}  - mock: {{ expect: gemini, times: 1 }}\n  \
             - mock: {{ expect-none: gemini, for: 400ms }}\n"
        ))
        .await;
        assert_eq!(report.status, Status::Passed, "{}", failure_text(&report).unwrap_or_default());
        let step = &report.steps[2];
        assert!(step.duration_ms >= 400.0, "the window is waited out: {}", step.duration_ms);
        assert!(step.duration_ms < 5_000.0, "{}", step.duration_ms);
    });
}

#[test]
fn clear_empties_the_journal_through_the_admin_api() {
    rt().block_on(async {
        let cleared = run(&format!(
            "name: cleared\ntenants: [acme]\nsteps:\n{VOICE}  - mock: {{ clear: gemini, only: journal }}\n  \
             - mock: {{ expect: gemini, times: 0 }}\n"
        ))
        .await;
        assert_eq!(cleared.status, Status::Passed, "{}", failure_text(&cleared).unwrap_or_default());
        // Without the clear, the same check fails: the call was journaled.
        let kept = run(&format!(
            "name: kept\ntenants: [acme]\nsteps:\n{VOICE}  - mock: {{ expect: gemini, times: 0 }}\n"
        ))
        .await;
        assert_eq!(kept.status, Status::Failed, "{kept:?}");
    });
}

#[test]
fn a_truncated_fault_written_in_yaml_hits_the_next_call() {
    rt().block_on(async {
        let report = run(&format!(
            "name: truncated\ntenants: [acme]\nsteps:\n  - mock: {{ fault: gemini, truncated: true, times: 1 }}\n{VOICE}      \
             expect: {{ status: 502 }}\n  \
             - mock: {{ expect: gemini, answered: {{ fault: truncated }}, times: 1 }}\n  \
             - mock: {{ expect: gemini, answered: {{ fault: reset }}, times: 0 }}\n"
        ))
        .await;
        assert_eq!(report.status, Status::Passed, "{}", failure_text(&report).unwrap_or_default());
        // And the fault is gone after the scenario.
        let admin = runner().await.ecosystem().mock("gemini").expect("mock").admin_url;
        let faults: Vec<tekup_mocks::Fault> = reqwest::get(format!("{admin}/faults"))
            .await
            .expect("admin")
            .json()
            .await
            .expect("typed faults");
        assert!(faults.is_empty(), "{faults:?}");
    });
}
