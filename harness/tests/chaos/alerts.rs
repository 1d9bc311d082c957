//! The platform's alert rules (`fixtures/prometheus/`): `promtool check
//! rules` and the rules' unit tests pass, and a rule broken on purpose is
//! caught with the tool's words.

use std::path::{Path, PathBuf};

use tekup_harness::alerts::{check_rules, test_rules, RulesError};

fn rules_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/prometheus")
}

#[test]
fn the_platform_rules_are_valid_and_their_unit_tests_pass() {
    let dir = rules_dir();
    let checked =
        check_rules(&[&dir.join("alerts.yml")]).unwrap_or_else(|e| panic!("{}", e.describe()));
    assert!(checked.contains("SUCCESS: 7 rules found"), "{checked}");
    let tested =
        test_rules(&[&dir.join("alerts.test.yml")]).unwrap_or_else(|e| panic!("{}", e.describe()));
    assert!(tested.contains("SUCCESS"), "{tested}");
}

/// A copy of the rules and their tests in a temp dir, with `edit` applied
/// to the rules.
fn broken_copy(edit: impl Fn(&str) -> String) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let src = rules_dir();
    let rules = std::fs::read_to_string(src.join("alerts.yml")).expect("alerts.yml");
    let broken = edit(&rules);
    assert_ne!(broken, rules, "the edit changed nothing");
    std::fs::write(dir.path().join("alerts.yml"), broken).expect("write");
    std::fs::copy(
        src.join("alerts.test.yml"),
        dir.path().join("alerts.test.yml"),
    )
    .expect("copy");
    dir
}

#[test]
fn a_rule_that_no_longer_fires_fails_the_unit_tests() {
    // The breaker alert now wants the state above 2: an open breaker (1)
    // no longer fires it.
    let dir = broken_copy(|rules| {
        rules.replace(
            "max by (job, target) (circuit_breaker_state) > 0",
            "max by (job, target) (circuit_breaker_state) > 2",
        )
    });
    // Still valid PromQL: only the unit tests can tell.
    check_rules(&[&dir.path().join("alerts.yml")]).unwrap_or_else(|e| panic!("{}", e.describe()));
    let err = test_rules(&[&dir.path().join("alerts.test.yml")]).expect_err("the tests fail");
    let RulesError::Failed { output, .. } = &err else {
        panic!("not the tool's refusal: {}", err.describe());
    };
    assert!(output.contains("CircuitBreakerOpen"), "{output}");
    assert!(err.to_string().contains("promtool test rules"), "{err}");
}

#[test]
fn a_rule_that_does_not_parse_fails_the_check() {
    let dir = broken_copy(|rules| rules.replace("expr: up == 0", "expr: up === 0"));
    let err = check_rules(&[&dir.path().join("alerts.yml")]).expect_err("refused");
    let RulesError::Failed { output, .. } = &err else {
        panic!("not the tool's refusal: {}", err.describe());
    };
    assert!(
        output.contains("parse error") || output.contains("unexpected"),
        "{output}"
    );
}
