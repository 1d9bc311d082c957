//! The `mock` step's forms: `expect-none` over a window, `clear`, `answered`
//! on `expect`, and every fault kind of the mocks; good forms give the
//! model, malformed ones the exact `file:line:col`, message and hint.

use std::path::Path;
use std::time::Duration;

use serde_json::json;
use tekup_harness::scenario::{
    parse_str, MockAnswer, MockFault, MockParts, MockRequest, MockStep, StepKind,
};

fn errors(text: &str) -> String {
    parse_str(Path::new("s.yaml"), text)
        .expect_err("the file is invalid")
        .to_string()
}

fn steps(body: &str) -> Vec<MockStep> {
    let text = format!("name: x\nsteps:\n{body}");
    let s = parse_str(Path::new("s.yaml"), &text).unwrap_or_else(|e| panic!("{e}"));
    s.steps
        .into_iter()
        .map(|s| match s.kind {
            StepKind::Mock(m) => m,
            other => panic!("not a mock step: {other:?}"),
        })
        .collect()
}

fn fault(line: &str) -> MockFault {
    match steps(&format!("  - mock: {{ fault: stripe, {line} }}\n")).remove(0) {
        MockStep::Fault { fault, .. } => fault,
        other => panic!("{other:?}"),
    }
}

#[test]
fn expect_none_takes_a_request_and_a_window() {
    let got = steps("  - mock: { expect-none: stripe, request: { method: post, path: /v1/customers }, for: 2s }\n");
    assert_eq!(
        got,
        [MockStep::ExpectNone {
            mock: "stripe".into(),
            request: MockRequest {
                method: Some("POST".into()),
                path: Some("/v1/customers".into()),
                json: None,
            },
            period: Duration::from_secs(2),
        }]
    );
}

#[test]
fn expect_none_needs_its_window_as_a_duration() {
    assert_eq!(
        errors("name: x\nsteps:\n  - mock: { expect-none: stripe }\n"),
        "s.yaml:3:11: `mock: expect-none` step needs `for`\n  hint: add `for: 2s`"
    );
    assert_eq!(
        errors("name: x\nsteps:\n  - mock: { expect-none: stripe, for: 2 }\n"),
        "s.yaml:3:39: `for`: invalid duration `2`: the number needs a unit\n  hint: a duration is a number and a unit: ms, s, m or h, e.g. `500ms`, `30s`, `1m30s`"
    );
    assert_eq!(
        errors("name: x\nsteps:\n  - mock: { expect-none: stripe, for: 1s, times: 0 }\n"),
        "s.yaml:3:43: unknown key `times` in `mock: expect-none` step\n  hint: the keys are expect-none, request, for"
    );
}

#[test]
fn clear_empties_everything_or_what_only_names() {
    let got = steps("  - mock: { clear: stripe }\n  - mock: { clear: graph, only: faults }\n  - mock: { clear: graph, only: [journal, expectations] }\n");
    let parts: Vec<MockParts> = got
        .iter()
        .map(|m| match m {
            MockStep::Clear { parts, .. } => *parts,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(parts[0], MockParts::ALL);
    assert_eq!(
        parts[1],
        MockParts {
            journal: false,
            faults: true,
            expectations: false
        }
    );
    assert_eq!(
        parts[2],
        MockParts {
            journal: true,
            faults: false,
            expectations: true
        }
    );
}

#[test]
fn clear_refuses_what_a_mock_does_not_hold() {
    assert_eq!(
        errors("name: x\nsteps:\n  - mock: { clear: stripe, only: [journal, fault] }\n"),
        "s.yaml:3:44: a mock holds no `fault` to clear\n  hint: did you mean `faults`? write any of journal, faults, expectations"
    );
    assert_eq!(
        errors("name: x\nsteps:\n  - mock: { clear: stripe, only: [] }\n"),
        "s.yaml:3:34: `only` names nothing to clear\n  hint: write any of journal, faults, expectations, or leave `only` out to clear all"
    );
    assert_eq!(
        errors("name: x\nsteps:\n  - mock: { clear: stripe, expect: stripe }\n"),
        "s.yaml:3:13: `mock` step does one thing; `expect` and `clear` are both given\n  hint: split it into two steps"
    );
}

#[test]
fn expect_filters_on_the_answer_the_call_got() {
    let got = steps("  - mock: { expect: graph, request: { method: GET }, answered: { status: 429, fault: rate-limit }, times: 2 }\n");
    let MockStep::Expect {
        answered, times, ..
    } = &got[0]
    else {
        panic!("{got:?}")
    };
    assert_eq!(
        *answered,
        MockAnswer {
            status: Some(429),
            fault: Some("rate-limit".into())
        }
    );
    assert_eq!(*times, Some(2));
    assert_eq!(
        errors("name: x\nsteps:\n  - mock: { expect: graph, answered: { fault: ratelimit } }\n"),
        "s.yaml:3:47: unknown fault `ratelimit`\n  hint: did you mean `rate-limit`? the faults are latency, status, rate-limit, malformed, truncated, reset, stall"
    );
}

#[test]
fn every_fault_kind_of_the_mocks_is_reachable() {
    assert_eq!(
        fault("delay: 250ms"),
        MockFault::Latency(Duration::from_millis(250))
    );
    assert_eq!(
        fault("status: 503"),
        MockFault::Status {
            status: 503,
            json: None
        }
    );
    assert_eq!(
        fault("status: 402, json: { error: { code: card_declined } }"),
        MockFault::Status {
            status: 402,
            json: Some(json!({"error": {"code": "card_declined"}}))
        }
    );
    assert_eq!(
        fault("status: 429, retry-after: 2s"),
        MockFault::RateLimit {
            retry_after: Duration::from_secs(2)
        }
    );
    assert_eq!(fault("malformed: true"), MockFault::Malformed);
    assert_eq!(fault("truncated: true"), MockFault::Truncated);
    assert_eq!(fault("reset: true"), MockFault::Reset);
    assert_eq!(
        fault("stall: 5s"),
        MockFault::Stall(Some(Duration::from_secs(5)))
    );
    assert_eq!(fault("stall: forever"), MockFault::Stall(None));
}

#[test]
fn malformed_faults_are_positioned() {
    assert_eq!(
        errors("name: x\nsteps:\n  - mock: { fault: stripe, stall: soon }\n"),
        "s.yaml:3:35: `stall` must be a duration or `forever`, found `soon`\n  hint: write e.g. `stall: 5s`, or `stall: forever` to hold calls until the mock stops"
    );
    assert_eq!(
        errors("name: x\nsteps:\n  - mock: { fault: stripe, truncated: false }\n"),
        "s.yaml:3:28: `truncated: false` injects nothing\n  hint: write one of `status: 503`, `status: 429, retry-after: 2s`, `delay: 2s`, `stall: 5s`, `stall: forever`, `reset: true`, `malformed: true`, `truncated: true`"
    );
    assert_eq!(
        errors("name: x\nsteps:\n  - mock: { fault: stripe, truncated: true, stall: 1s }\n"),
        "s.yaml:3:28: `mock: fault` step injects one fault; `stall` and `truncated` are both given\n  hint: split it into two steps"
    );
    assert_eq!(
        errors("name: x\nsteps:\n  - mock: { fault: stripe, reset: true, json: {} }\n"),
        "s.yaml:3:41: `json` goes with `status`\n  hint: remove it, or inject a `status` fault"
    );
    assert_eq!(
        errors("name: x\nsteps:\n  - mock: { fault: stripe, status: 429, retry-after: 1s, json: {} }\n"),
        "s.yaml:3:58: a 429 with `retry-after` answers in the API's own shape\n  hint: remove `json`, or `retry-after` to answer 429 with this body"
    );
}

#[test]
fn shipped_scenarios_with_mock_steps_and_readme_forms_fit_the_schema() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("scenario.schema.json")).expect("committed schema"),
    )
    .expect("json");
    let validator = jsonschema::validator_for(&schema).expect("a valid schema");
    let check = |name: &str, text: &str| {
        let doc: serde_json::Value = serde_yaml::from_str(text).expect("yaml");
        let problems: Vec<String> = validator
            .iter_errors(&doc)
            .map(|e| format!("{}: {e}", e.instance_path))
            .collect();
        assert!(problems.is_empty(), "{name}: {problems:#?}");
    };
    for name in ["circuit-breaker.yaml", "graph-throttling.yaml"] {
        check(
            name,
            &std::fs::read_to_string(root.join(name)).expect("shipped scenario"),
        );
    }
    check(
        "forms",
        "name: x\nsteps:\n  - mock: { expect-none: stripe, request: { method: POST, path: /v1/refunds }, for: 2s }\n  \
         - mock: { clear: stripe }\n  - mock: { clear: stripe, only: [journal, faults] }\n  \
         - mock: { expect: graph, answered: { status: 429, fault: rate-limit }, times: 2 }\n  \
         - mock: { fault: stripe, truncated: true }\n  - mock: { fault: stripe, stall: forever }\n  \
         - mock: { fault: stripe, stall: 5s, times: 1 }\n  - mock: { fault: stripe, status: 402, json: { error: { code: card_declined } } }\n",
    );
    // And it refuses what the decoder refuses.
    let doc: serde_json::Value =
        serde_yaml::from_str("name: x\nsteps:\n  - mock: { expect-none: stripe }\n").expect("yaml");
    assert!(!validator.is_valid(&doc), "expect-none without `for`");
}

#[test]
fn the_readme_examples_of_mock_steps_parse() {
    let readme = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/README.md"),
    )
    .expect("README");
    let section = readme
        .split("## Mock steps")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("a Mock steps section");
    let blocks: Vec<&str> = section
        .split("```yaml\n")
        .skip(1)
        .filter_map(|b| b.split("```").next())
        .collect();
    assert!(blocks.len() >= 4, "{blocks:?}");
    for block in blocks {
        let body: String = block.lines().map(|l| format!("  {l}\n")).collect();
        let text = format!("name: x\nvars: {{ messages: /v1.0/me/messages }}\nsteps:\n{body}");
        parse_str(Path::new("README.md"), &text).unwrap_or_else(|e| panic!("{block}\n{e}"));
    }
}

/// Faults and answers are scoped to the run's calls, so their scenario
/// runs beside others; a fault that fails every call until the scenario
/// ends (it may open a service's circuit breaker for every caller) and
/// clearing what is the mock's (journal, expectations) take it alone.
#[test]
fn only_what_others_would_feel_runs_a_scenario_alone() {
    let alone = |body: &str| {
        let text = format!("name: x\nsteps:\n{body}");
        let s = parse_str(Path::new("s.yaml"), &text).unwrap_or_else(|e| panic!("{e}"));
        tekup_harness::scenario::run::needs_ecosystem_alone(&s)
    };
    for shared in [
        "  - mock: { fault: graph, status: 429, retry-after: 2s, times: 2 }\n",
        "  - mock: { fault: graph, status: 429, retry-after: 2s }\n",
        "  - mock: { fault: gemini, truncated: true, times: 1 }\n",
        "  - mock: { fault: stripe, status: 500, times: 4 }\n",
        "  - mock: { fault: openai, delay: 2s }\n",
        "  - mock: { fault: openai, status: 404 }\n",
        "  - mock: { set: gemini, respond: { status: 200, json: { a: 1 } } }\n",
        "  - mock: { clear: stripe, only: faults }\n",
        "  - mock: { expect: stripe, times: 1 }\n",
    ] {
        assert!(!alone(shared), "alone: {shared}");
    }
    for lone in [
        "  - mock: { fault: stripe, status: 500 }\n",
        "  - mock: { fault: stripe, status: 500, ratio: 0.5 }\n",
        "  - mock: { fault: gemini, reset: true }\n",
        "  - mock: { fault: gemini, malformed: true }\n",
        "  - mock: { fault: gemini, stall: forever }\n",
        "  - mock: { set: gemini, respond: { status: 503 } }\n",
        "  - mock: { clear: stripe }\n",
        "  - mock: { clear: stripe, only: journal }\n",
        "  - eventually:\n      within: 5s\n      mock: { fault: stripe, status: 502 }\n",
    ] {
        assert!(alone(lone), "shared: {lone}");
    }
}
