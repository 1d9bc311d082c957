//! The `mock` step against a real ecosystem (process runtime): `expect-none`
//! fails as soon as a matching call arrives within its window and counts
//! only calls from its start, `clear` empties the journal, and a fault kind
//! written in YAML reaches the mock (its journal names it); the `stripe`
//! step registers a webhook endpoint, emits a signed event to it, checks
//! its delivery and saves what Stripe signed, and fails naming the event
//! it cannot find or the answer the endpoint gave.
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
        let _gemini = GEMINI.lock().await;
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
        let _gemini = GEMINI.lock().await;
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

/// Held by the tests that send voice commands (Gemini is asked), so that
/// the fault `an_unscoped_fault_would_fail_the_run_beside_it` puts on the
/// mock for every caller meets only its own runs' calls.
static GEMINI: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Held by the two side-by-side tests and by the tests whose scenario runs
/// alone (it registers a webhook endpoint). In a side-by-side test, run A
/// waits for run B to pass; a run waiting to be alone, queued between
/// them, would wait for A to end while B waits behind it, until A's 120 s
/// window ran out. (Taken before `GEMINI` where both are.)
static ALONE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[test]
fn a_truncated_fault_written_in_yaml_hits_the_next_call() {
    rt().block_on(async {
        let _gemini = GEMINI.lock().await;
        let report = run(&format!(
            "name: truncated\ntenants: [acme]\nsteps:\n  - mock: {{ fault: gemini, truncated: true, times: 1 }}\n{VOICE}      \
             expect: {{ status: 502 }}\n  \
             - mock: {{ expect: gemini, answered: {{ fault: truncated }}, times: 1 }}\n  \
             - mock: {{ expect: gemini, answered: {{ fault: reset }}, times: 0 }}\n"
        ))
        .await;
        assert_eq!(report.status, Status::Passed, "{}", failure_text(&report).unwrap_or_default());
        // And the run's fault is gone after the scenario (other tests of
        // this binary may have faults of their own meanwhile).
        let scope = run_scope(&report);
        let faults = gemini_faults().await;
        assert!(!faults.iter().any(|f| f.header.as_ref() == Some(&scope)), "{faults:?}");
    });
}

/// The faults the Gemini mock holds now.
async fn gemini_faults() -> Vec<tekup_mocks::Fault> {
    let admin = runner()
        .await
        .ecosystem()
        .mock("gemini")
        .expect("mock")
        .admin_url;
    reqwest::get(format!("{admin}/faults"))
        .await
        .expect("admin")
        .json()
        .await
        .expect("typed faults")
}

/// The scope of a run's faults: its correlation ids' prefix, read off the
/// first request it sent.
fn run_scope(report: &ScenarioReport) -> tekup_mocks::HeaderScope {
    let id = report
        .messages
        .iter()
        .find_map(|m| m.correlation_id.clone())
        .expect("the run sent a request");
    let prefix = &id[..=id.rfind('-').expect("<prefix>-<n>")];
    tekup_mocks::HeaderScope::new("x-correlation-id", prefix)
}

/// Whether the Gemini mock holds a fault scoped to a run.
async fn a_scoped_gemini_fault() -> bool {
    gemini_faults().await.iter().any(|f| f.header.is_some())
}

/// A run's fault hits its own calls only: while run A's Gemini fault is in
/// place, run B's voice command is answered, then A's own call meets the
/// fault. B runs between A's fault and A's call, in that order, because A
/// waits for a Redis key the test sets once B has passed.
#[test]
fn a_runs_fault_hits_its_own_calls_and_not_those_of_a_run_beside_it() {
    rt().block_on(async {
        let _alone = ALONE.lock().await;
        let _gemini = GEMINI.lock().await;
        let (a, b) = side_by_side("scoped").await;
        assert_eq!(
            b.status,
            Status::Passed,
            "{}",
            failure_text(&b).unwrap_or_default()
        );
        assert_eq!(
            a.status,
            Status::Passed,
            "{}",
            failure_text(&a).unwrap_or_default()
        );
    });
}

/// The same two runs, but with a fault put on the mock for every caller
/// (what the `mock` step did before faults were scoped): B meets it. This
/// is what the test above would report if the scope were lost.
#[test]
fn an_unscoped_fault_would_fail_the_run_beside_it() {
    rt().block_on(async {
        let _alone = ALONE.lock().await;
        let _gemini = GEMINI.lock().await;
        let (_, b) = side_by_side("unscoped").await;
        assert_eq!(
            b.status,
            Status::Failed,
            "B passed beside an unscoped fault"
        );
        let failure = failure_text(&b).unwrap_or_default();
        assert!(failure.contains("502"), "{failure}");
    });
}

/// Runs A (a Gemini fault of one call; waits for a Redis key; a voice
/// command that must meet the fault) and, once A's fault is in place, B (a
/// voice command that must be answered); then sets the key. `how` is
/// `scoped` (A's step puts the fault) or `unscoped` (the test puts the same
/// fault on the mock for every caller, and A's step none).
async fn side_by_side(how: &str) -> (ScenarioReport, ScenarioReport) {
    let runner = runner().await;
    let key = format!("tekup-test:side-by-side:{how}:{}", std::process::id());
    let gemini = runner.ecosystem().mock("gemini").expect("mock");
    let http = reqwest::Client::new();
    let scoped = how == "scoped";
    let fault_step = if scoped {
        "  - mock: { fault: gemini, truncated: true, times: 1 }\n"
    } else {
        ""
    };
    let a = format!(
        "name: a-{how}\ntenants: [acme]\nsteps:\n{fault_step}  \
         - eventually:\n      within: 120s\n      redis: {{ key: \"{key}\" }}\n{VOICE}      \
         expect: {{ status: 502 }}\n"
    );
    let b =
        format!("name: b-{how}\ntenants: [acme]\nsteps:\n{VOICE}      expect: {{ status: 200 }}\n");
    let a = parse_str(Path::new("a.yaml"), &a).unwrap_or_else(|e| panic!("{e}"));
    let b = parse_str(Path::new("b.yaml"), &b).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        !a_scoped_gemini_fault().await,
        "a fault left behind by another run"
    );
    if !scoped {
        let fault = tekup_mocks::Fault::truncated().times(1);
        gemini
            .add_fault(&http, &fault)
            .await
            .expect("the fault is added");
    }
    let a_runner = runner.clone();
    let a_run = tokio::spawn(async move { a_runner.run(&a).await });
    // B starts once A's fault is on the mock (or the test's own, unscoped).
    if scoped {
        while !a_scoped_gemini_fault().await {
            assert!(!a_run.is_finished(), "A ended before its fault was seen");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
    let b = runner.run(&b).await;
    let mut redis = runner.ecosystem().redis().await.expect("redis");
    let () = redis::AsyncCommands::set_ex(&mut redis, &key, "go", 600)
        .await
        .expect("set the key");
    let a = a_run.await.expect("A's task");
    if !scoped {
        // Had B not met it, the fault would still be there.
        gemini
            .clear_faults(&http)
            .await
            .expect("the faults are removed");
    }
    (a, b)
}

/// crm-api's Stripe webhook (`tag` tells this test's endpoint from others).
fn hook(tag: &str) -> String {
    format!("\"${{crm-api.peer-url}}/webhooks/stripe?test={tag}\"")
}

/// The Stripe mock's endpoints at `url` after a run (its teardown removes them).
async fn endpoints_at(url_part: &str) -> Vec<tekup_mocks::stripe::WebhookEndpoint> {
    let admin = runner()
        .await
        .ecosystem()
        .mock("stripe")
        .expect("mock")
        .admin_url;
    let all: Vec<tekup_mocks::stripe::WebhookEndpoint> =
        reqwest::get(format!("{admin}/stripe/webhooks"))
            .await
            .expect("admin")
            .json()
            .await
            .expect("typed endpoints");
    all.into_iter()
        .filter(|e| e.url.contains(url_part))
        .collect()
}

const REMOVE: &str = "teardown:\n  - http: { service: stripe, request: { method: DELETE, path: \"/v1/webhook_endpoints/${endpoint}\", \
                      headers: { authorization: Bearer sk_test_harness } }, expect: { status: 200 } }\n";

#[test]
fn the_stripe_step_delivers_a_signed_event_and_saves_what_was_sent() {
    rt().block_on(async {
        let _alone = ALONE.lock().await;
        let report = run(&format!(
            "name: stripe-delivered\nsetup:\n  - stripe: {{ webhook: {hook}, secret: \"${{vars.stripe-webhook-secret}}\", \
             events: [tekup.test], save: {{ endpoint: id }} }}\nsteps:\n  \
             - stripe: {{ event: tekup.test, object: {{ id: obj_1, object: test }}, save: {{ event: id }} }}\n  \
             - eventually:\n      within: 5s\n      \
             stripe: {{ delivered: \"${{event}}\", to: {hook}, status: 200, save: {{ payload: payload, signature: signature }} }}\n  \
             # What the mock sent, sent again: crm-api takes the signature as Stripe's (and the event as seen).\n  \
             - http:\n      service: crm-api\n      \
             request: {{ method: POST, path: /webhooks/stripe, headers: {{ stripe-signature: \"${{signature}}\" }}, body: \"${{payload}}\", content-type: application/json }}\n      \
             expect: {{ status: 200, json: {{ received: true, duplicate: true }} }}\n{REMOVE}",
            hook = hook("delivered")
        ))
        .await;
        assert_eq!(report.status, Status::Passed, "{}", failure_text(&report).unwrap_or_default());
        let labels: Vec<&str> = report.steps.iter().map(|s| s.label.as_str()).collect();
        assert!(labels[1].starts_with("stripe event tekup.test → evt_"), "{labels:?}");
        assert!(labels[2].contains("200 after 1 attempt(s)"), "{labels:?}");
        // The delivery is an arrow of the sequence diagram, to crm-api.
        assert!(
            report.messages.iter().any(|m| m.from == "stripe" && m.to == "crm-api" && m.label == "webhook tekup.test → 200"),
            "{:?}",
            report.messages
        );
        assert!(endpoints_at("test=delivered").await.is_empty(), "the teardown removed the endpoint");
    });
}

#[test]
fn the_stripe_step_fails_naming_an_event_that_was_never_emitted() {
    rt().block_on(async {
        let _alone = ALONE.lock().await;
        let report = run(
            "name: stripe-never\nsteps:\n  - eventually:\n      within: 300ms\n      stripe: { delivered: evt_never_emitted }\n",
        )
        .await;
        assert_eq!(report.status, Status::Failed, "{report:?}");
        let failure = report.failure.as_ref().expect("a failure");
        assert_eq!(failure.location, "t.yaml:3");
        assert!(
            failure.message.ends_with(
                "event `evt_never_emitted` was never sent to a webhook endpoint of mock `stripe`: \
                 it was not emitted there, or no endpoint enabled its type"
            ),
            "{}",
            failure.message
        );
    });
}

#[test]
fn the_stripe_step_checks_what_the_endpoint_answered() {
    rt().block_on(async {
        let _alone = ALONE.lock().await;
        // Signed with a secret crm-api does not know: it refuses every attempt.
        let report = run(&format!(
            "name: stripe-refused\nsetup:\n  - stripe: {{ webhook: {hook}, secret: whsec_not_crm_apis, events: [tekup.test], \
             save: {{ endpoint: id }} }}\nsteps:\n  \
             - stripe: {{ event: tekup.test, object: {{ id: obj_2 }}, save: {{ event: id }} }}\n  \
             - eventually: {{ within: 5s, stripe: {{ delivered: \"${{event}}\", status: 400 }} }}\n  \
             - eventually: {{ within: 5s, stripe: {{ delivered: \"${{event}}\" }} }}\n{REMOVE}",
            hook = hook("refused")
        ))
        .await;
        assert_eq!(report.status, Status::Failed, "{report:?}");
        let failure = report.failure.as_ref().expect("a failure");
        assert_eq!(failure.location, "t.yaml:7", "{}", failure.message);
        assert!(
            failure.message.contains("/webhooks/stripe?test=refused`: the endpoint answered 400 at the last of 3 attempt(s), expected a 2xx"),
            "{}",
            failure.message
        );
        assert!(endpoints_at("test=refused").await.is_empty(), "the teardown ran after the failure");
    });
}
