//! `validate`, `schema` and `new scenario` as users run them.

use std::path::Path;
use std::process::{Command, Output};

fn harness(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tekup-harness"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run tekup-harness")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn the_committed_schema_is_the_generated_one() {
    let committed = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/scenario.schema.json"),
    )
    .expect("scenarios/scenario.schema.json");
    let generated = serde_json::to_string_pretty(&tekup_harness::scenario::schema()).expect("json");
    assert_eq!(
        committed.trim_end(),
        generated,
        "run `tekup-harness schema > scenarios/scenario.schema.json`"
    );
    let printed = harness(Path::new("."), &["schema"]);
    assert!(printed.status.success());
    assert_eq!(stdout(&printed).trim_end(), generated);
}

#[test]
fn new_scenario_writes_a_valid_template_and_never_overwrites() {
    let dir = tempfile::tempdir().expect("tempdir");
    let made = harness(dir.path(), &["new", "scenario", "my-flow"]);
    assert!(made.status.success(), "{made:?}");
    let text = std::fs::read_to_string(dir.path().join("scenarios/my-flow.yaml")).expect("written");
    assert!(text.contains("name: my-flow") && text.starts_with('#'));
    let again = harness(dir.path(), &["new", "scenario", "my-flow"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    let bad = harness(dir.path(), &["new", "scenario", "Bad Name"]);
    assert_eq!(bad.status.code(), Some(1));
    let ok = harness(dir.path(), &["validate"]);
    assert!(ok.status.success(), "{}", stdout(&ok));
    assert_eq!(
        stdout(&ok),
        "OK      scenarios/my-flow.yaml\n1 valid, 0 invalid\n"
    );
}

#[test]
fn validate_reports_each_file_duplicates_and_a_summary() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = dir.path().join("scenarios");
    std::fs::create_dir_all(&s).expect("mkdir");
    std::fs::write(s.join("a.yaml"), "name: same\nsteps:\n  - sleep: 1s\n").expect("write");
    std::fs::write(
        s.join("b.yaml"),
        "# another\nname: same\nsteps:\n  - sleep: 1s\n",
    )
    .expect("write");
    std::fs::write(s.join("c.yaml"), "name: c\nsteps:\n  - slep: 1s\n").expect("write");
    std::fs::write(s.join("shared.steps.yaml"), "steps: []\n").expect("write");
    let o = harness(dir.path(), &["validate"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stdout(&o),
        "OK      scenarios/a.yaml\n\
         INVALID scenarios/b.yaml\n\
         scenarios/b.yaml:2:7: duplicate scenario name `same`\n  hint: scenarios/a.yaml:1 already uses it; scenario names are unique (they name the test cases)\n\
         INVALID scenarios/c.yaml\n\
         scenarios/c.yaml:3:5: unknown step kind `slep`\n  hint: did you mean `sleep`? the kinds are http, ws, eventually, sql, redis, mock, chaos, sleep; `use: <step file>` calls a step file\n\
         1 valid, 2 invalid\n"
    );
}

#[test]
fn run_refuses_a_malformed_tag_expression_before_starting_anything() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("a.yaml"),
        "name: a\ntags: [smoke]\nsteps:\n  - sleep: 1ms\n",
    )
    .expect("write");
    let o = harness(dir.path(), &["run", "a.yaml", "--tag", "smoke and (not"]);
    assert_eq!(o.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains(
            "error: invalid tag expression `smoke and (not`: expected a tag after `not` at column 15"
        ),
        "{stderr}"
    );
    assert!(!stderr.contains("starting the ecosystem"), "{stderr}");
    // A well-formed expression that selects nothing says so, also before starting.
    let o = harness(
        dir.path(),
        &["run", "a.yaml", "--tag", "smoke and not smoke"],
    );
    assert_eq!(o.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("error: no scenario to run (1 found in a.yaml, none selected)"),
        "{stderr}"
    );
}

#[test]
fn validate_counts_the_cases_of_a_data_driven_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("m.yaml"),
        "name: m\nmatrix: { d: [1ms, 2ms], e: [a, b, c] }\nsteps:\n  - sleep: \"${d}\"\n  - http: { service: s, request: { method: GET, path: \"/${e}\" } }\n",
    )
    .expect("write");
    let o = harness(dir.path(), &["validate", "m.yaml"]);
    assert_eq!(stdout(&o), "OK      m.yaml (6 cases)\n1 valid, 0 invalid\n");
}
