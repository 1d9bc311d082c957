//! The property suite, bounded for CI: it holds on the reference services,
//! and it catches services broken on purpose (`TEKUP_DEFECTS`, see
//! services/src/defects.rs) for the right reason, shrinks the failure to a
//! minimal sequence, and writes it as a scenario that fails the same way
//! when replayed.
//!
//! One ecosystem per defect setting; the tests take turns (the defects
//! travel to the services through the environment, and two ecosystems at
//! once would only slow each other down). Sizes: `TEKUP_PROP_CASES`,
//! `TEKUP_PROP_MAX_OPS`, `TEKUP_PROP_SEED` for the reference run; the
//! defect runs use fixed seeds so they are deterministic.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use tekup_harness::property::{search, Config, Failure, Op, Outcome, Progress};
use tekup_harness::report::Status;
use tekup_harness::scenario::parse_file;
use tekup_harness::scenario::run::{failure_text, Runner, Suite};

fn workspace() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    dir.canonicalize().unwrap_or(dir)
}

static SERIAL: Mutex<()> = Mutex::new(());

#[expect(
    clippy::print_stderr,
    reason = "progress of a live property run, for the test output"
)]
fn say(line: &str) {
    eprintln!("{line}");
}

/// Starts an ecosystem with `defects` on and runs `f` on it.
fn with_ecosystem<T>(
    defects: &str,
    f: impl FnOnce(&tokio::runtime::Runtime, &Arc<Runner>, &Path) -> T,
) -> T {
    let _turn = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let mut suite = Suite::new(workspace());
    let reports = std::env::temp_dir().join(format!(
        "tekup-property-{}-{}",
        std::process::id(),
        if defects.is_empty() {
            "reference"
        } else {
            defects
        }
    ));
    suite.reports_dir = reports.clone();
    suite.defects = defects.to_owned();
    // The search sets up its own witness, for its run of cases.
    suite.witness = false;
    let runner = rt.block_on(suite.runner()).expect("the ecosystem starts");
    let result = f(&rt, &runner, &reports);
    drop(runner);
    rt.block_on(suite.finish(Vec::new(), 1, &[]));
    result
}

fn progress(p: Progress) {
    match p {
        Progress::Case {
            k,
            of,
            ops,
            tenants,
        } => say(&format!(
            "case {k}/{of}: {ops} operations, {tenants} tenants"
        )),
        Progress::Failed { k, finding } => say(&format!("case {k} failed: {finding}")),
        Progress::Shrink { step, ops, fails } => {
            say(&format!(
                "  shrink step {step}: {ops} operations, {}",
                if fails { "fails" } else { "passes" }
            ));
        }
    }
}

fn run(rt: &tokio::runtime::Runtime, runner: &Runner, config: &Config) -> Outcome {
    say(&format!(
        "property suite: seed {} ({} cases of up to {} operations)",
        config.seed, config.cases, config.max_ops
    ));
    search(rt.handle(), runner.ecosystem(), config, &progress).expect("the suite runs")
}

/// A fixed-seed configuration for a defect run.
fn fixed(reports: &Path, seed: u64) -> Config {
    let mut config = Config::from_env(reports.to_owned()).expect("settings");
    config.seed = seed;
    config.cases = 10;
    config.max_ops = 10;
    config.max_shrink = 48;
    config
}

/// The failure, its findings as one text, and the minimal scenario checked
/// like `tekup-harness validate` checks it.
fn minimal(outcome: &Outcome) -> (&Failure, String) {
    let failure = outcome.failure.as_ref().unwrap_or_else(|| {
        panic!(
            "the defect went unnoticed in {} cases (seed {})",
            outcome.cases, outcome.seed
        )
    });
    let text = failure.findings.join("\n");
    say(&format!(
        "minimal scenario {}:\n{}",
        failure.path.display(),
        failure.scenario
    ));
    assert!(
        failure
            .path
            .ends_with(format!("property/{}-minimal.yaml", outcome.seed)),
        "{}",
        failure.path.display()
    );
    (failure, text)
}

#[test]
fn the_property_holds_on_the_reference_services() {
    with_ecosystem("", |rt, runner, reports| {
        let config = Config::from_env(reports.to_owned()).expect("settings");
        let outcome = run(rt, runner, &config);
        if let Some(f) = &outcome.failure {
            panic!(
                "the property fails on the reference services (seed {}):\n{}\n\n{}",
                outcome.seed,
                f.findings.join("\n"),
                f.scenario
            );
        }
        assert_eq!(outcome.cases, config.cases);
        let witness = outcome.witness.describe(20);
        say(&witness);
        assert!(outcome.witness.holds(), "{witness}");
        assert!(!outcome.witness.tenant.is_empty(), "{witness}");
        assert!(
            outcome.witness.skipped.is_empty(),
            "the process runtime exposes everything the witness watches: {witness}"
        );
        assert!(outcome.holds());
        say(&format!(
            "{} cases, {} operations: the property holds (seed {})",
            outcome.cases, outcome.ops, outcome.seed
        ));
    });
}

/// Runs the suite with `seed` on services with `defect` on, and asserts
/// the failure it finds: its text has `finding`, the minimal sequence has
/// at most two operations, one of which `needed` accepts, and the scenario
/// written from it fails on the same services with `replayed` in its text.
fn assert_caught(
    defect: &str,
    seed: u64,
    finding: &[&str],
    needed: (&str, fn(&Op) -> bool),
    replayed: &[&str],
) -> Outcome {
    with_ecosystem(defect, |rt, runner, reports| {
        let outcome = run(rt, runner, &fixed(reports, seed));
        let (failure, text) = minimal(&outcome);
        for needle in finding {
            assert!(text.contains(needle), "{needle:?} not in:\n{text}");
        }
        let (what, is_needed) = needed;
        assert!(
            failure.ops.iter().any(is_needed),
            "the minimal sequence has no {what}: {:?}",
            failure.ops
        );
        assert!(failure.ops.len() <= 2, "not shrunk: {:?}", failure.ops);
        let scenario =
            parse_file(&failure.path).unwrap_or_else(|e| panic!("the scenario is invalid: {e}"));
        let report = rt.block_on(runner.run(&scenario));
        let replay = failure_text(&report).unwrap_or_default();
        assert_eq!(
            report.status,
            Status::Failed,
            "the scenario passes on the broken services"
        );
        for needle in replayed {
            assert!(replay.contains(needle), "{needle:?} not in:\n{replay}");
        }
        outcome
    })
}

#[test]
fn a_second_activity_for_a_redelivered_job_is_found_shrunk_and_replayed() {
    assert_caught(
        "duplicate-activity",
        7,
        &["LEAD_CREATED activities, not 1"],
        ("redelivery", |op| matches!(op, Op::Redeliver { .. })),
        &["flow.activities", "differ from the expected ones"],
    );
}

#[test]
fn a_gateway_without_its_tenant_filter_is_caught_leaking() {
    let outcome = assert_caught(
        "cross-tenant-fanout",
        11,
        &["LEAK: ", "another tenant"],
        ("subscription", |op| matches!(op, Op::Subscribe { .. })),
        &["expected no"],
    );
    // The run's witness tenant, in every room, got the cases' events too.
    let witness = outcome.witness.describe(5);
    assert!(
        witness.contains("LEAK: the witness's")
            && witness.contains("of tenant tekup-harness-")
            && witness.contains("-prop-t"),
        "{witness}"
    );
}
