//! The scenario runner against a real ecosystem (process runtime): what a
//! failure reports, `eventually`'s deadline, runs isolated from each other,
//! runs that need the ecosystem alone (alone on the shared one, or beside
//! the others on one of their own), and chaos put back afterwards.
//!
//! One ecosystem serves every test of this binary (started by the first),
//! but for the test of ecosystems of their own, which has a suite of its own.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tekup_harness::report::{ScenarioReport, Status};
use tekup_harness::scenario::run::{failure_text, Runner, Suite};
use tekup_harness::scenario::{parse_str, Scenario};

mod runner_common;

use runner_common::rt;

/// This binary's reports directory prefix.
const REPORTS: &str = "tekup-runner-test";

async fn runner() -> Arc<Runner> {
    runner_common::runner(REPORTS).await
}

fn scenario(name: &str, text: &str) -> Scenario {
    parse_str(Path::new(&format!("{name}.yaml")), text).unwrap_or_else(|e| panic!("{e}"))
}

async fn run(text: &str) -> ScenarioReport {
    let s = scenario("t", text);
    runner().await.run(&s).await
}

const LEAD: &str = "      service: flow-api\n      tenant: acme\n      app: flow-web\n";

#[test]
fn a_failing_step_shows_its_line_a_diff_and_the_exchange_without_secrets() {
    rt().block_on(async {
        let report = run(&format!(
            "name: failing\ntenants: [acme]\nvars: {{ ada: \"${{email}}\" }}\nsteps:\n  - http:\n{LEAD}      \
             request: {{ method: POST, path: /leads, json: {{ firstName: Ada, email: \"${{ada}}\" }} }}\n      \
             expect: {{ status: 201, json: {{ email: someone-else@x.test, firstName: Ada }} }}\n"
        ))
        .await;
        assert_eq!(report.status, Status::Failed);
        let failure = report.failure.as_ref().expect("a failure");
        assert_eq!(failure.location, "t.yaml:5");
        assert!(failure.message.contains("$.email: expected \"someone-else@x.test\""), "{}", failure.message);
        let diff = failure.diff.as_deref().expect("a diff");
        assert!(diff.contains("-  \"email\": \"someone-else@x.test\""), "{diff}");
        assert!(diff.contains("+  \"email\": \"user-"), "{diff}");
        assert!(!diff.contains("createdAt"), "only expected keys are diffed: {diff}");
        let text = failure_text(&report).expect("text");
        assert!(text.contains("POST http://") && text.contains("/leads"), "{text}");
        assert!(text.contains("201") && text.contains("\"firstName\": \"Ada\""), "{text}");
        for (i, _) in text.match_indices("x-tenant-key: ") {
            let value = &text[i + 14..].lines().next().unwrap_or_default();
            assert!(value.ends_with("[redacted]"), "the key is shown: {value}");
        }
        assert!(failure.logs.contains_key("flow-api"), "{:?}", failure.logs.keys());
    });
}

#[test]
fn eventually_gives_up_at_its_deadline_after_several_attempts() {
    rt().block_on(async {
        let started = Instant::now();
        let report = run(
            "name: never\ntenants: [acme]\nsteps:\n  - eventually:\n      within: 600ms\n      http:\n        \
             service: flow-api\n        tenant: acme\n        app: flow-web\n        \
             request: { method: GET, path: /leads }\n        expect: { json: { data: [ { firstName: Nobody } ] } }\n",
        )
        .await;
        let took = started.elapsed();
        assert_eq!(report.status, Status::Failed, "{report:?}");
        let step = &report.steps[0];
        assert!(step.attempts >= 3, "retried: {}", step.attempts);
        assert!(step.duration_ms >= 600.0, "waited out `within`: {}", step.duration_ms);
        assert!(took < Duration::from_secs(10), "{took:?}");
        let message = &report.failure.as_ref().expect("failure").message;
        assert!(message.starts_with("still failing after"), "{message}");
    });
}

#[test]
fn parallel_runs_get_their_own_tenants_and_see_only_their_own_mock_calls() {
    rt().block_on(async {
        let text = "name: voice\ntenants: [acme]\nsteps:\n  - http:\n      service: flow-api\n      tenant: acme\n      app: voice-agent\n      \
                    request: { method: POST, path: /voice/execute, json: { transcript: show me my leads } }\n      expect: { status: 200 }\n  \
                    - mock: { expect: gemini, times: 1 }\n  - http:\n      service: flow-api\n      tenant: acme\n      app: flow-web\n      \
                    request: { method: GET, path: /leads }\n      expect: { json: { data: [] } }\n";
        let s = scenario("voice", text);
        let runner = runner().await;
        let (a, b) = tokio::join!(runner.run(&s), runner.run(&s));
        for r in [&a, &b] {
            assert_eq!(r.status, Status::Passed, "{}", failure_text(r).unwrap_or_default());
        }
        assert_ne!(a.tenants["acme"], b.tenants["acme"]);
    });
}

#[test]
fn a_scenario_that_changes_shared_state_runs_alone() {
    rt().block_on(async {
        let shared = scenario("shared", "name: shared\nsteps:\n  - sleep: 700ms\n");
        let alone = scenario(
            "alone",
            "name: alone\nsteps:\n  - mock: { fault: openai, path: /v1/nothing-calls-this, status: 503 }\n  - sleep: 700ms\n",
        );
        let runner = runner().await;
        let started = Instant::now();
        let (a, b) = tokio::join!(runner.run(&shared), runner.run(&alone));
        let took = started.elapsed();
        assert_eq!(a.status, Status::Passed);
        assert_eq!(b.status, Status::Passed, "{}", failure_text(&b).unwrap_or_default());
        assert!(took >= Duration::from_millis(1400), "they overlapped: {took:?}");
        // And its fault is gone afterwards.
        let admin = runner.ecosystem().mock("openai").expect("mock").admin_url;
        let faults: serde_json::Value = reqwest::get(format!("{admin}/faults")).await.expect("admin").json().await.expect("json");
        assert_eq!(faults, serde_json::json!([]));
    });
}

/// The pid of `name`'s process (process runtime).
fn pid_of(eco: &tekup_harness::env::Ecosystem, name: &str) -> u64 {
    let state = eco.state();
    state["backend"]["processes"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == name))
        .and_then(|p| p["pid"].as_u64())
        .unwrap_or_else(|| panic!("no pid of {name} in {state}"))
}

#[test]
fn a_scenario_that_changes_shared_state_runs_beside_the_others_on_an_ecosystem_of_its_own() {
    rt().block_on(async {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut suite = Suite::new(root.canonicalize().expect("workspace"));
        suite.reports_dir =
            std::env::temp_dir().join(format!("tekup-runner-test-own-{}", std::process::id()));
        suite.own_ecosystems = true;
        let runner = suite.runner().await.expect("the ecosystem starts");
        assert!(runner.gives_own_ecosystems());
        let worker = pid_of(runner.ecosystem(), "worker");
        // Kills the worker, so its lead's job waits: the only job of its
        // queue, whatever the scenario beside it enqueues meanwhile.
        let kill = scenario(
            "kill",
            &format!(
                "name: kill\ntenants: [acme]\nsteps:\n  - chaos: {{ kill: worker }}\n  - http:\n{LEAD}      \
                 request: {{ method: POST, path: /leads, json: {{ firstName: Kim, email: \"${{email}}\" }} }}\n      \
                 expect: {{ status: 201 }}\n  - redis: {{ queue: lead-processing, size: 1 }}\n"
            ),
        );
        // Needs the (shared) worker to turn its lead into a contact.
        let beside = scenario(
            "beside",
            &format!(
                "name: beside\ntenants: [acme]\nvars: {{ ada: \"${{email}}\" }}\nsteps:\n  - http:\n{LEAD}      \
                 request: {{ method: POST, path: /leads, json: {{ firstName: Ada, email: \"${{ada}}\" }} }}\n      \
                 expect: {{ status: 201 }}\n  - eventually:\n      within: 30s\n      http:\n        service: crm-api\n        \
                 tenant: acme\n        app: crm-web\n        request: {{ method: GET, path: \"/contacts?email=${{ada}}\" }}\n        \
                 expect: {{ status: 200, json: {{ total: 1 }} }}\n"
            ),
        );
        // Its own ecosystem's services take the admin token it sets; the
        // shared ones refuse it.
        let token = scenario(
            "token",
            "name: token\nown-ecosystem: { vars: { admin-token: own-admin-token } }\nsteps:\n  - http:\n      \
             service: flow-api\n      request: { method: GET, path: /admin/queues, headers: { authorization: \"Bearer own-admin-token\" } }\n      \
             expect: { status: 200 }\n",
        );
        let misspelt = scenario(
            "misspelt",
            "name: misspelt\nown-ecosystem: { vars: { admin-tokn: x } }\nsteps:\n  - sleep: 1ms\n",
        );
        let reports = suite
            .run_all(&[beside, kill, token, misspelt], 2, &|_| {})
            .await
            .expect("the runs");
        for r in &reports[..3] {
            assert_eq!(r.status, Status::Passed, "{}", failure_text(r).unwrap_or_default());
        }
        let shared = runner.ecosystem().url("flow-api").expect("flow-api");
        let refused = reqwest::Client::new()
            .get(format!("{shared}/admin/queues"))
            .bearer_auth("own-admin-token")
            .send()
            .await
            .expect("flow-api answers");
        assert_eq!(refused.status(), 401, "the shared ecosystem took the token");
        let own_vars = &reports[2].own_ecosystem.as_ref().expect("its own").vars;
        assert_eq!(own_vars.get("admin-token").map(String::as_str), Some("own-admin-token"));
        let failure = reports[3].failure.as_ref().expect("a misspelt var fails the scenario");
        assert!(
            failure.message.contains("`admin-tokn` of the ecosystem file's [vars]")
                && failure.message.contains("admin-token"),
            "{}",
            failure.message
        );
        let (beside, kill) = (&reports[0], &reports[1]);
        assert!(beside.own_ecosystem.is_none(), "{:?}", beside.own_ecosystem);
        let own = kill.own_ecosystem.as_ref().expect("an ecosystem of its own");
        assert_ne!(own.run_id, runner.ecosystem().run_id());
        assert_eq!(
            pid_of(runner.ecosystem(), "worker"),
            worker,
            "the shared worker was killed"
        );
        // Its components' logs are kept; the ecosystem itself is gone.
        let logs = Path::new(&own.logs);
        assert!(logs.starts_with(suite.reports_dir.join("logs").join("own")), "{}", own.logs);
        assert!(logs.join("worker.log").is_file(), "{}", own.logs);
        let run_dir = tekup_harness::env::scratch::dir().join(format!("tekup-run-{}", own.run_id));
        assert!(!run_dir.exists(), "{} is left", run_dir.display());
        drop(runner);
        let finished = suite.finish(reports[..3].to_vec(), 2, &[]).await;
        assert!(!finished.witness_failed(), "{:?}", finished.witness);
    });
}

#[test]
fn a_killed_component_is_back_after_the_scenario_even_when_it_failed() {
    rt().block_on(async {
        let report = run(
            "name: kill\nsteps:\n  - chaos: { kill: crm-api }\n  - http: { service: crm-api, request: { method: GET, path: /health }, expect: { status: 200 } }\n",
        )
        .await;
        assert_eq!(report.status, Status::Failed, "crm-api is down during the scenario");
        let message = &report.failure.as_ref().expect("failure").message;
        assert!(message.contains("got no response"), "{message}");
        let url = runner().await.ecosystem().url("crm-api").expect("url");
        let health = reqwest::get(format!("{url}/health")).await.expect("crm-api is back");
        assert!(health.status().is_success());
    });
}

#[test]
fn a_missing_component_is_named_with_the_known_ones() {
    rt().block_on(async {
        let report = run("name: nope\nsteps:\n  - http: { service: crm, request: { method: GET, path: /health } }\n").await;
        let message = &report.failure.as_ref().expect("failure").message;
        assert!(message.contains("no component `crm`") && message.contains("crm-api"), "{message}");
    });
}

#[test]
fn each_case_of_a_data_driven_file_runs_and_reports_on_its_own() {
    rt().block_on(async {
        // The second row's expectation is wrong on purpose: only its case fails.
        let file = scenario(
            "dd",
            "name: dd\ntenants: [acme]\nexamples:\n\
             \x20 - { app: flow-web, status: 200 }\n\
             \x20 - { label: wrong, app: crm-web, status: 200 }\n\
             steps:\n  - http: { service: flow-api, tenant: acme, app: \"${app}\", request: { method: GET, path: /leads }, expect: { status: \"${status}\" } }\n",
        );
        let runner = runner().await;
        let cases = file.cases();
        let reports =
            futures::future::join_all(cases.iter().map(|c| runner.run(c))).await;
        assert_eq!(reports[0].name, "dd[app=flow-web,status=200]");
        assert_eq!(reports[0].status, Status::Passed, "{:?}", reports[0].failure);
        assert_eq!(reports[1].name, "dd[wrong]");
        assert_eq!(reports[1].status, Status::Failed);
        let failure = reports[1].failure.as_ref().expect("a failure");
        assert!(failure.message.contains("403"), "{}", failure.message);
        assert_ne!(
            reports[0].tenants["acme"], reports[1].tenants["acme"],
            "each case has its own tenants"
        );
    });
}

#[test]
fn skip_if_skips_with_the_authors_reason_only_when_it_holds() {
    rt().block_on(async {
        let runner = runner().await;
        let skipped = runner
            .run(&scenario(
                "skip",
                "name: skip\nskip-if: { runtime: [docker, process], because: \"needs a real deployment\" }\nsteps:\n  - http: { service: nowhere, request: { method: GET, path: / } }\n",
            ))
            .await;
        assert_eq!(skipped.status, Status::Skipped);
        assert_eq!(
            skipped.skip_reason.as_deref(),
            Some("needs a real deployment (skip-if at skip.yaml:2: the runtime is process)")
        );
        // The process runtime offers the database and links: the scenario runs.
        let ran = runner
            .run(&scenario(
                "run",
                "name: run\nskip-if: { runtime: external, lacks: [database, links], because: x }\nsteps:\n  - sleep: 1ms\n",
            ))
            .await;
        assert_eq!(ran.status, Status::Passed, "{:?}", ran.skip_reason);
    });
}

#[test]
fn a_used_step_file_returns_its_values_and_a_failure_in_it_names_the_call_chain() {
    rt().block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("steps")).expect("steps/");
        std::fs::write(
            dir.path().join("steps/new-lead.yaml"),
            "params: [tenant, { status: 201 }]\n\
             defaults: { http: { service: flow-api, tenant: \"${tenant}\", app: flow-web } }\n\
             steps:\n\
             \x20 - http:\n\
             \x20     request: { method: POST, path: /leads, json: { firstName: Ada, email: \"${email}\" } }\n\
             \x20     expect: { status: \"${status}\" }\n\
             \x20     save: { lead: $.id }\n\
             returns: [lead]\n",
        )
        .expect("write the step file");
        let path = dir.path().join("t.yaml");
        // The second use expects a status the service does not answer: it fails.
        let s = parse_str(
            &path,
            "name: uses\ntenants: [acme]\ndefaults: { http: { service: flow-api, tenant: acme, app: flow-web } }\nsteps:\n\
             \x20 - use: new-lead\n    with: { tenant: acme }\n\
             \x20 - http: { request: { method: GET, path: \"/leads/${lead}\" }, expect: { status: 200, json: { id: \"${lead}\" } } }\n\
             \x20 - use: new-lead\n    with: { tenant: acme, status: 409 }\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let report = runner().await.run(&s).await;
        assert_eq!(report.status, Status::Failed);
        let passed = report.steps.iter().filter(|s| s.status == Status::Passed).count();
        assert_eq!(passed, 2, "the returned `${{lead}}` reached the caller's GET");
        let failure = report.failure.as_ref().expect("a failure");
        let chain = format!(
            "{}:8 → {}:4",
            path.display(),
            dir.path().join("steps/new-lead.yaml").display()
        );
        assert_eq!(failure.location, chain);
        assert!(failure.message.contains("409"), "{}", failure.message);
        assert_eq!(report.steps[2].location, chain);
    });
}
