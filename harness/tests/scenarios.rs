//! Every scenario file in `scenarios/` is one test case:
//!
//! ```text
//! cargo test -p tekup-harness --test scenarios                 # all of them
//! cargo test -p tekup-harness --test scenarios -- lead-to      # by name
//! cargo test -p tekup-harness --test scenarios -- 'matrix[app=crm-web'  # cases of a data-driven file
//! cargo test -p tekup-harness --test scenarios -- --list       # what there is
//! TEKUP_TAGS='smoke and not slow' cargo test -p tekup-harness --test scenarios   # by tags
//! ```
//!
//! `TEKUP_TAGS` is a tag expression, as for `tekup-harness run --tag` (see
//! `tekup_harness::scenario::select`); it comes from the environment
//! because libtest-mimic refuses flags it does not know. The cases it does
//! not select are not trials at all, so `--list` shows only the selected
//! ones, and a line on stderr says how many it selected of how many. A file
//! that does not parse stays a (failing) trial whatever the expression: its
//! tags are unknown, and a selection must not hide it. Unset or blank
//! selects everything. A malformed expression, or one that leaves no trial,
//! ends the binary with exit code 1 before anything starts: a selection
//! that ran nothing would pass.
//!
//! The ecosystem (`fixtures/ecosystem.toml`, runtime `TEKUP_RUNTIME`,
//! default `process`) is started once for the binary, when the first
//! scenario runs, and torn down at the end. Scenarios run four at a time
//! (`--test-threads N` to change it); those that need the ecosystem alone
//! start first, each on an ecosystem of its own (`TEKUP_OWN_ECOSYSTEMS=0`:
//! alone on the shared one). Reports go to `reports/` (`TEKUP_REPORTS_DIR`). Under
//! `cargo nextest`, each scenario runs in its own process with its own
//! ecosystem. The services and mocks are the binaries `cargo test
//! --workspace` built; after changing them, run that (or `cargo build -p
//! tekup-services -p tekup-mocks`, or set `TEKUP_BUILD=1`) first.
//!
//! A witness tenant watches the run (see `tekup_harness::invariants::witness`):
//! when it saw or suffered something, the binary fails after the trials,
//! with its findings, even if every scenario passed.

use std::env::VarError;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};

use libtest_mimic::{Arguments, Failed, Trial};
use tekup_harness::report::ScenarioReport;
use tekup_harness::scenario::run::{failure_text, needs_ecosystem_alone, Runner, Suite};
use tekup_harness::scenario::{check_paths, Scenario, TagExpr};

/// The variable that holds the tag expression.
const TAGS: &str = "TEKUP_TAGS";

fn workspace() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    dir.canonicalize().unwrap_or(dir)
}

#[expect(
    clippy::print_stderr,
    reason = "where the report is, for the test output"
)]
fn main() -> ExitCode {
    let mut args = Arguments::from_args();
    if args.test_threads.is_none() {
        args.test_threads = Some(4);
    }
    let selection = match tag_selection() {
        Ok(selection) => selection,
        Err(e) => {
            eprintln!("tekup-harness: error: {e}");
            eprintln!("tekup-harness: hint: a tag, or tags combined with and, or, not and parentheses: {TAGS}='smoke and not slow'");
            return ExitCode::FAILURE;
        }
    };
    let root = workspace();
    let dir =
        std::env::var_os("TEKUP_SCENARIOS").map_or_else(|| root.join("scenarios"), PathBuf::from);
    let rt = Arc::new(
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime"),
    );
    let suite = Arc::new(Suite::new(root.clone()));
    let reports: Arc<Mutex<Vec<ScenarioReport>>> = Arc::default();
    // Trials start in this order: the cases that need the ecosystem alone
    // first (each on an ecosystem of its own, and long), the others after.
    let (mut first, mut trials) = (Vec::new(), Vec::new());
    let (mut cases, mut selected) = (0, 0);
    for file in check_paths(&[dir]) {
        let name = file
            .path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        match file.result {
            Err(e) => trials.push(Trial::test(name, move || Err(Failed::from(e.to_string())))),
            Ok(file) => {
                // A data-driven file is one trial per case (`name[row]`).
                for scenario in file.cases() {
                    cases += 1;
                    if selection
                        .as_ref()
                        .is_some_and(|(_, e)| !e.matches(&scenario.tags))
                    {
                        continue;
                    }
                    selected += 1;
                    let (rt, suite, reports) =
                        (Arc::clone(&rt), Arc::clone(&suite), Arc::clone(&reports));
                    let tags = scenario.tags.join(",");
                    let queue = if needs_ecosystem_alone(&scenario) {
                        &mut first
                    } else {
                        &mut trials
                    };
                    queue.push(
                        Trial::test(scenario.name.clone(), move || {
                            run(&rt, &suite, &reports, &scenario)
                        })
                        .with_kind(tags),
                    );
                }
            }
        }
    }
    first.append(&mut trials);
    let trials = first;
    if let Some((text, _)) = &selection {
        eprintln!("tekup-harness: {TAGS}='{text}' selects {selected} of {cases} cases");
        if trials.is_empty() {
            eprintln!("tekup-harness: error: no case to run: no case has tags that fit {TAGS}");
            return ExitCode::FAILURE;
        }
    }
    let conclusion = libtest_mimic::run(&args, trials);
    let reports = std::mem::take(&mut *reports.lock().unwrap_or_else(PoisonError::into_inner));
    let finished = rt.block_on(suite.finish(
        reports,
        args.test_threads.unwrap_or(1),
        &tekup_harness::report::Format::ALL,
    ));
    if let Some(html) = finished
        .written
        .iter()
        .find(|p| p.extension().is_some_and(|e| e == "html"))
    {
        eprintln!("tekup-harness: report at {}", html.display());
    }
    if let Some(entry) = &finished.entry {
        eprintln!("{}", failure_text(entry).unwrap_or_default());
        eprintln!("tekup-harness: the witness tenant found a leak: the run fails");
        return ExitCode::FAILURE;
    }
    if let Some(witness) = &finished.witness {
        eprintln!("tekup-harness: {}", witness.describe(0));
    }
    conclusion.exit_code()
}

/// The expression in `TEKUP_TAGS` with its text; `None` when it is unset
/// or blank. The error names the variable and what is wrong.
fn tag_selection() -> Result<Option<(String, TagExpr)>, String> {
    let text = match std::env::var(TAGS) {
        Ok(text) if !text.trim().is_empty() => text,
        Ok(_) | Err(VarError::NotPresent) => return Ok(None),
        Err(VarError::NotUnicode(_)) => return Err(format!("{TAGS} is not valid UTF-8")),
    };
    match TagExpr::parse(&text) {
        Ok(expr) => Ok(Some((text, expr))),
        Err(e) => Err(format!("{TAGS}: {e}")),
    }
}

fn run(
    rt: &tokio::runtime::Runtime,
    suite: &Suite,
    reports: &Mutex<Vec<ScenarioReport>>,
    scenario: &Scenario,
) -> Result<(), Failed> {
    rt.block_on(async {
        let runner: Arc<Runner> = suite.runner().await.map_err(Failed::from)?;
        let report = runner.run(scenario).await;
        let failure = failure_text(&report);
        reports
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(report);
        match failure {
            Some(text) => Err(Failed::from(text)),
            None => Ok(()),
        }
    })
}
