//! `validate`, `schema`, `new scenario` and `run`'s refusals as users run
//! them, and the `scenarios` test binary's `TEKUP_TAGS` selection.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

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
         scenarios/c.yaml:3:5: unknown step kind `slep`\n  hint: did you mean `sleep`? the kinds are http, ws, eventually, sql, redis, mock, stripe, trace, chaos, sleep; `use: <step file>` calls a step file\n\
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

/// The `scenarios` test binary, built as this one was.
///
/// Cargo tells a test where the `[[bin]]` targets are, not the other
/// tests. Guessing `target/<profile>/deps/scenarios-<hash>` is ambiguous
/// (old builds leave other hashes) and may find a stale binary, or none,
/// when only this file was built. So cargo is asked: `cargo test
/// --workspace --no-run --message-format=json` builds it if needed and
/// names the executable. After the README's `cargo test --workspace` that
/// is nothing to do: same packages, so the same features for every
/// dependency; same profile; the environment, `CARGO_TARGET_DIR` included,
/// inherited, less what cargo set for this test
/// ([`tekup_harness::env::cargo_command`]). (`-p tekup-harness` unifies
/// features over that package alone, and `CARGO_MANIFEST_DIR` reruns
/// ring's build script: about fifty dependencies and the harness compiled
/// again, 80 s of CI's 2 cores, and the ones built in place once more by
/// CI's next cargo command.) That runs directly, so its own exit code and
/// stderr are seen, where `cargo test -- --list` would turn any failure
/// into cargo's 101.
fn scenarios_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        // This test is `target/[<triple>/]<profile>/deps/<name>`; `dev` builds to `debug`.
        let exe = std::env::current_exe().expect("the test's own path");
        let profile = exe
            .parent()
            .and_then(Path::parent)
            .and_then(Path::file_name)
            .and_then(|p| p.to_str())
            .expect("the test binary is in target/<profile>/deps");
        let profile = if profile == "debug" { "dev" } else { profile };
        let o = tekup_harness::env::cargo_command()
            .args(["test", "--workspace", "--test", "scenarios"])
            .args(["--no-run", "--message-format=json", "--profile", profile])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .expect("run cargo");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        stdout(&o)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|m| m["target"]["name"] == "scenarios" && m["executable"].is_string())
            .and_then(|m| m["executable"].as_str().map(PathBuf::from))
            .expect("cargo names the scenarios test executable")
    })
}

/// The `scenarios` test binary on the scenario files in `dir/scenarios`,
/// with `TEKUP_TAGS` set to `tags` (unset for `None`). The ecosystem file
/// does not exist: a run that tried to start anything would fail at once.
fn scenarios_test(dir: &Path, tags: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = Command::new(scenarios_binary());
    cmd.args(args)
        .env("TEKUP_SCENARIOS", dir.join("scenarios"))
        .env("TEKUP_REPORTS_DIR", dir.join("reports"))
        .env("TEKUP_ECOSYSTEM", dir.join("no-ecosystem.toml"))
        .env_remove("TEKUP_BUILD");
    match tags {
        Some(t) => cmd.env("TEKUP_TAGS", t),
        None => cmd.env_remove("TEKUP_TAGS"),
    };
    cmd.output().expect("run the scenarios test binary")
}

/// Five cases with different tags, two of them from one data-driven file.
fn tagged_scenarios() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = dir.path().join("scenarios");
    std::fs::create_dir_all(&s).expect("mkdir");
    let files = [
        ("a.yaml", "name: fast-smoke\ntags: [smoke]\n"),
        ("b.yaml", "name: slow-smoke\ntags: [smoke, slow]\n"),
        ("c.yaml", "name: untagged\n"),
        (
            "d.yaml",
            "name: matrix\ntags: [crm, slow]\nmatrix: { d: [1ms, 2ms] }\n",
        ),
    ];
    for (file, head) in files {
        let sleep = if file == "d.yaml" { "\"${d}\"" } else { "1ms" };
        std::fs::write(s.join(file), format!("{head}steps:\n  - sleep: {sleep}\n")).expect("write");
    }
    dir
}

#[test]
fn tekup_tags_selects_the_trials_of_the_scenarios_test_binary() {
    let dir = tagged_scenarios();
    let all = "[smoke] fast-smoke: test\n\
               [smoke,slow] slow-smoke: test\n\
               untagged: test\n\
               [crm,slow] matrix[d=1ms]: test\n\
               [crm,slow] matrix[d=2ms]: test\n";
    let cases = [
        (None, all, None),
        (Some(" "), all, None),
        (
            Some("smoke and not slow"),
            "[smoke] fast-smoke: test\n",
            Some("tekup-harness: TEKUP_TAGS='smoke and not slow' selects 1 of 5 cases"),
        ),
        (
            Some("slow and not smoke"),
            "[crm,slow] matrix[d=1ms]: test\n[crm,slow] matrix[d=2ms]: test\n",
            Some("tekup-harness: TEKUP_TAGS='slow and not smoke' selects 2 of 5 cases"),
        ),
        (
            Some("not (crm or smoke)"),
            "untagged: test\n",
            Some("tekup-harness: TEKUP_TAGS='not (crm or smoke)' selects 1 of 5 cases"),
        ),
    ];
    for (tags, listed, line) in cases {
        let o = scenarios_test(dir.path(), tags, &["--list"]);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{tags:?}: {stderr}");
        assert_eq!(stdout(&o), listed, "{tags:?}");
        match line {
            Some(line) => assert!(stderr.contains(line), "{tags:?}: {stderr}"),
            None => assert!(!stderr.contains("TEKUP_TAGS"), "{tags:?}: {stderr}"),
        }
    }
    // A file that does not parse stays a (failing) trial: its tags are unknown.
    std::fs::write(
        dir.path().join("scenarios/e.yaml"),
        "name: broken\nsteps:\n  - slep: 1s\n",
    )
    .expect("write");
    let o = scenarios_test(dir.path(), Some("smoke and not slow"), &["--list"]);
    assert_eq!(stdout(&o), "[smoke] fast-smoke: test\ne: test\n");
}

#[test]
fn the_scenarios_test_binary_refuses_a_bad_tekup_tags_before_starting_anything() {
    let dir = tagged_scenarios();
    // Without `--list`: had it got as far as a trial, the missing ecosystem file would say so.
    let o = scenarios_test(dir.path(), Some("smoke and (not"), &[]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert_eq!(stdout(&o), "");
    assert!(
        stderr.contains(
            "tekup-harness: error: TEKUP_TAGS: invalid tag expression `smoke and (not`: \
             expected a tag after `not` at column 15\n"
        ),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    // A well-formed expression that selects nothing is refused too.
    let o = scenarios_test(dir.path(), Some("smoke and not smoke"), &[]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert_eq!(stdout(&o), "");
    assert!(
        stderr.contains("TEKUP_TAGS='smoke and not smoke' selects 0 of 5 cases\n"),
        "{stderr}"
    );
    assert!(!stderr.contains("ecosystem"), "{stderr}");
}
