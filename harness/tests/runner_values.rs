//! The runner with step names and messages, computed values, declared
//! secrets and `eventually`'s `fail-fast-on`/`holds-for`, against a real
//! ecosystem (process runtime; one serves every test of this binary).

use std::path::Path;
use std::sync::Arc;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use tekup_harness::report::{Format, RunReport, ScenarioReport, Status};
use tekup_harness::scenario::parse_str;
use tekup_harness::scenario::run::{failure_text, Runner};

mod runner_common;

use runner_common::rt;

/// This binary's reports directory prefix.
const REPORTS: &str = "tekup-runner-values";

async fn runner() -> Arc<Runner> {
    runner_common::runner(REPORTS).await
}

async fn run(text: &str) -> ScenarioReport {
    let s = parse_str(Path::new("t.yaml"), text).unwrap_or_else(|e| panic!("{e}"));
    runner().await.run(&s).await
}

/// A secret with characters every encoding treats differently.
const SECRET: &str = "Hunter2 S3cret/+?~x";

#[test]
fn a_declared_secret_reaches_no_report_in_any_encoding() {
    rt().block_on(async {
        let form_encoded: String = form_urlencoded::byte_serialize(SECRET.as_bytes()).collect();
        let report = run(&format!(
            "name: leaky\ntenants: [acme]\nvars: {{ password: \"{SECRET}\" }}\nsecrets: [password]\nsteps:\n  \
             - name: create a lead that carries the secret\n    because: a secret must never be printed\n    http:\n      \
             service: flow-api\n      tenant: acme\n      app: flow-web\n      request:\n        method: POST\n        \
             path: \"/leads?note=${{password}}\"\n        \
             headers: {{ x-debug: \"${{password}}\", x-debug-auth: \"Basic ${{base64:ops:${{password}}}}\" }}\n        \
             json: {{ firstName: \"${{password}}\", lastName: \"${{base64:${{password}}}}\", company: \"${{base64url:${{password}}}}\", \
             source: \"{form_encoded}\", email: \"${{email}}\" }}\n      \
             expect: {{ status: 201, json: {{ firstName: nobody }} }}\n"
        ))
        .await;
        assert_eq!(report.status, Status::Failed, "{report:?}");
        let failure = report.failure.as_ref().expect("a failure");
        // The evidence is there, with the secret cut out of it.
        let response = failure.response.as_deref().expect("the response");
        assert!(response.matches("[redacted]").count() >= 4, "{response}");
        let request = failure.request.as_deref().expect("the request");
        assert!(request.contains("x-debug: [redacted]"), "{request}");
        assert!(request.contains("x-debug-auth: Basic"), "{request}");
        assert!(failure.diff.as_deref().is_some_and(|d| d.contains("[redacted]")));
        // Names and messages are shown with the failure.
        assert!(failure.message.starts_with("create a lead that carries the secret: "), "{}", failure.message);
        assert_eq!(failure.because.as_deref(), Some("a secret must never be printed"));

        let dir = tempfile::tempdir().expect("tempdir");
        let run_report = RunReport {
            scenarios: vec![report.clone()],
            ..RunReport::default()
        };
        let written = tekup_harness::report::write(&run_report, dir.path(), &Format::ALL).expect("written");
        let mut outputs: Vec<(String, String)> = written
            .iter()
            .map(|p| (p.display().to_string(), std::fs::read_to_string(p).expect("read")))
            .collect();
        outputs.push(("console".into(), failure_text(&report).expect("a failure text")));
        let forms = [
            SECRET.to_owned(),
            form_encoded.clone(),
            form_encoded.replace('+', "%20"),
            "Hunter2%20S3cret".to_owned(),
            STANDARD.encode(SECRET),
            URL_SAFE_NO_PAD.encode(SECRET),
            STANDARD.encode(format!("ops:{SECRET}")),
            "S3cret".to_owned(),
        ];
        assert_eq!(outputs.len(), 5, "junit, json, html, traces and the console");
        for (name, text) in &outputs {
            for form in &forms {
                assert!(!text.contains(form.as_str()), "{name} shows `{form}`:\n{text}");
            }
            if name.ends_with("traces.json") {
                // The services' spans: no step names, no secrets.
                continue;
            }
            assert!(text.contains("create a lead that carries the secret"), "{name} names the step");
            assert!(text.contains("a secret must never be printed"), "{name} says why");
        }
    });
}

const LEADS: &str =
    "service: flow-api, tenant: acme, app: flow-web, request: { method: GET, path: /leads }";

#[test]
fn fail_fast_on_stops_the_retrying_at_the_known_bad_state() {
    rt().block_on(async {
        let report = run(&format!(
            "name: ff\ntenants: [acme]\nsteps:\n  - eventually:\n      within: 60s\n      \
             http: {{ {LEADS}, expect: {{ json: {{ data: [ {{ firstName: Nobody }} ] }} }} }}\n      \
             fail-fast-on:\n        name: the list is readable and nobody is in it\n        \
             http: {{ {LEADS}, expect: {{ status: 200, json: {{ data: [] }} }} }}\n"
        ))
        .await;
        assert_eq!(report.status, Status::Failed, "{report:?}");
        let step = &report.steps[0];
        assert_eq!(step.attempts, 1, "stopped at the first attempt, not at the deadline");
        assert!(step.duration_ms < 30_000.0, "{}", step.duration_ms);
        let message = &report.failure.as_ref().expect("failure").message;
        assert!(
            message.starts_with("stopped after 1 attempt(s): the known-bad state `the list is readable and nobody is in it` (t.yaml:9) holds"),
            "{message}"
        );
        assert!(step.label.contains("fails fast on: the list is readable"), "{}", step.label);
    });
}

#[test]
fn fail_fast_on_does_not_fire_while_the_bad_state_is_absent() {
    rt().block_on(async {
        let report = run(&format!(
            "name: ff-quiet\ntenants: [acme]\nsteps:\n  - eventually:\n      within: 10s\n      \
             http: {{ {LEADS}, expect: {{ status: 200 }} }}\n      \
             fail-fast-on: {{ http: {{ {LEADS}, expect: {{ status: 500 }} }} }}\n"
        ))
        .await;
        assert_eq!(
            report.status,
            Status::Passed,
            "{}",
            failure_text(&report).unwrap_or_default()
        );
    });
}

/// `select now() < $1`: true until the time in `$1`, by the database's clock.
fn until(var: &str, holds_for: &str) -> String {
    format!(
        "name: holds\nvars: {{ until: \"${{{var}}}\" }}\nsteps:\n  - name: the window is open\n    eventually:\n      within: 5s\n      \
         holds-for: {holds_for}\n      sql: {{ admin: true, query: \"select now() < $1::timestamptz\", args: [\"${{until}}\"], expect: [[true]] }}\n"
    )
}

#[test]
fn holds_for_passes_when_the_condition_stays_true_for_the_period() {
    rt().block_on(async {
        let report = run(&until("now+1h", "1s")).await;
        assert_eq!(
            report.status,
            Status::Passed,
            "{}",
            failure_text(&report).unwrap_or_default()
        );
        let step = &report.steps[0];
        assert!(step.attempts >= 2, "checked again: {}", step.attempts);
        assert!(
            step.duration_ms >= 1000.0,
            "held for the period: {}",
            step.duration_ms
        );
        assert_eq!(step.name.as_deref(), Some("the window is open"));
    });
}

#[test]
fn holds_for_fails_at_the_first_check_that_does_not_hold() {
    rt().block_on(async {
        let report = run(&until("now+2s", "60s")).await;
        assert_eq!(report.status, Status::Failed, "{report:?}");
        let message = &report.failure.as_ref().expect("failure").message;
        assert!(
            message.starts_with("the window is open: held for "),
            "{message}"
        );
        assert!(
            message.contains("of its 60s (`holds-for`), then failed at check"),
            "{message}"
        );
        assert!(
            report.steps[0].duration_ms < 30_000.0,
            "failed when it stopped holding, not at the window's end"
        );
    });
}
