//! `tekup-harness run`: the scenario suite against an ecosystem it starts
//! (or a deployment it points at), with live progress, the failures in
//! full, reports, and `N passed, N failed`. The suite's witness tenant
//! counts as one more entry when it found something: a leak fails the run
//! (exit 1) even when every scenario passed.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;

use super::{out, say, StartArgs};
use crate::report::{Format, ScenarioReport, Status};
use crate::scenario::run::{failure_text, needs_ecosystem_alone};
use crate::scenario::{check_paths, Scenario, TagExpr};

#[derive(Debug, Args)]
pub(super) struct RunArgs {
    /// Scenario files or directories (recursively; `*.steps.yaml` are includes).
    #[arg(default_value = "scenarios")]
    paths: Vec<PathBuf>,
    /// Only scenarios whose tags fit this expression: a tag, or tags with
    /// `and`, `or`, `not` and parentheses (`'smoke and not slow'`); repeat
    /// for any of several.
    #[arg(long = "tag", value_name = "EXPR")]
    tags: Vec<String>,
    /// Only scenarios whose name contains this text (a data-driven file's
    /// cases are named `name[row]`).
    #[arg(long, value_name = "TEXT")]
    filter: Option<String>,
    /// Scenarios run at once. One that changes what every run shares (a
    /// kill, a cut link, a fault every caller feels, `exclusive: true`)
    /// runs beside the others on an ecosystem of its own under the process
    /// runtime, and alone, after the others, under docker or external.
    #[arg(long, short, default_value_t = 4)]
    jobs: usize,
    /// Run the scenarios that change what every run shares alone on the
    /// shared ecosystem, after the others, instead of each on one of its
    /// own (also `TEKUP_OWN_ECOSYSTEMS=0`).
    #[arg(long)]
    no_own_ecosystems: bool,
    /// Reports to write: any of junit, json, html, traces (the run's spans
    /// as OTLP/JSON, traces.json).
    #[arg(long, default_value = "junit,json,html,traces", value_parser = Format::parse_list)]
    report: std::vec::Vec<Format>,
    #[command(flatten)]
    start: StartArgs,
}

pub(super) fn run(args: RunArgs, rt: &tokio::runtime::Runtime) -> ExitCode {
    let Some(scenarios) = select(&args) else {
        return ExitCode::FAILURE;
    };
    let mut suite = match args.start.suite() {
        Ok(suite) => suite,
        Err(code) => return code,
    };
    if args.no_own_ecosystems {
        suite.own_ecosystems = false;
    }
    let alone = scenarios
        .iter()
        .filter(|s| needs_ecosystem_alone(s))
        .count();
    let started = Instant::now();
    let done = Arc::new(AtomicUsize::new(0));
    let total = scenarios.len();
    let result = rt.block_on(async {
        let ticker = tokio::spawn(progress(Arc::clone(&done), total, started));
        // Where the scenarios that need the ecosystem alone run is known
        // once it has started (`--runtime auto` picks then).
        // (A start that failed is said by run_all below.)
        if let Ok(runner) = suite.runner().await {
            say(&format!(
                "running {} scenario(s), {} at a time{}",
                scenarios.len(),
                args.jobs.max(1),
                match alone {
                    0 => String::new(),
                    _ if runner.gives_own_ecosystems() => format!(
                        "; {alone} of them change what every run shares: they start first, each on an ecosystem of its own"
                    ),
                    _ => format!(", then {alone} that need the ecosystem alone, one by one"),
                }
            ));
        }
        let on_done = |r: &ScenarioReport| {
            let n = done.fetch_add(1, Ordering::Relaxed) + 1;
            say(&line(r, n, total));
        };
        let reports = suite.run_all(&scenarios, args.jobs, &on_done).await;
        ticker.abort();
        reports
    });
    let reports = match result {
        Ok(r) => r,
        Err(e) => {
            say(&format!("error: {e}"));
            if e.contains("TLS: ") {
                say("hint: the deployment's TLS settings: --ca-cert, --client-cert/--client-key, --insecure (see `tekup-harness run --help`)");
            } else {
                say("hint: `tekup-harness doctor` says what this machine can run; component logs are in the reports directory");
            }
            rt.block_on(suite.finish(Vec::new(), args.jobs, &[]));
            return ExitCode::FAILURE;
        }
    };
    for r in &reports {
        if let Some(text) = failure_text(r) {
            out(&text);
        }
    }
    let mut failed = reports
        .iter()
        .filter(|r| r.status == Status::Failed)
        .count();
    let skipped = reports
        .iter()
        .filter(|r| r.status == Status::Skipped)
        .count();
    let passed = reports.len() - failed - skipped;
    let finished = rt.block_on(suite.finish(reports, args.jobs, &args.report));
    if let Some(entry) = &finished.entry {
        failed += 1;
        say("FAIL witness");
        if let Some(text) = failure_text(entry) {
            out(&text);
        }
    } else if let Some(witness) = &finished.witness {
        say(&witness.describe(0));
    }
    for path in &finished.written {
        say(&format!("report: {}", path.display()));
    }
    if let Some(tenants) = &finished.tenants {
        say(&tenants.describe());
    }
    out(&format!(
        "{passed} passed, {failed} failed{} ({:.1} s)",
        if skipped > 0 {
            format!(", {skipped} skipped")
        } else {
            String::new()
        },
        started.elapsed().as_secs_f64()
    ));
    if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// The valid scenarios the arguments select; `None` (after saying why) when
/// a file is invalid or nothing is selected.
fn select(args: &RunArgs) -> Option<Vec<Scenario>> {
    let mut exprs = Vec::new();
    for text in &args.tags {
        match TagExpr::parse(text) {
            Ok(e) => exprs.push(e),
            Err(e) => {
                say(&format!("error: {e}"));
                say("hint: a tag, or tags combined with and, or, not and parentheses: --tag 'smoke and not slow'");
                return None;
            }
        }
    }
    let mut scenarios = Vec::new();
    let mut invalid = 0;
    for file in check_paths(&args.paths) {
        match file.result {
            Ok(s) => scenarios.extend(s.cases()),
            Err(e) => {
                invalid += 1;
                out(&e.to_string());
            }
        }
    }
    if invalid > 0 {
        say(&format!(
            "error: {invalid} scenario file(s) are invalid; nothing was run"
        ));
        say("hint: `tekup-harness validate` checks files without running them");
        return None;
    }
    let total = scenarios.len();
    scenarios.retain(|s| {
        (exprs.is_empty() || exprs.iter().any(|e| e.matches(&s.tags)))
            && args
                .filter
                .as_ref()
                .is_none_or(|f| s.name.contains(f.as_str()))
    });
    if scenarios.is_empty() {
        say(&format!(
            "error: no scenario to run ({total} found in {}, none selected)",
            args.paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
        say("hint: check the paths, `--tag` and `--filter`");
        return None;
    }
    Some(scenarios)
}

fn line(r: &ScenarioReport, n: usize, total: usize) -> String {
    let mark = match r.status {
        Status::Passed => "ok  ",
        Status::Failed => "FAIL",
        Status::Skipped => "skip",
    };
    let mut text = format!(
        "[{n:>3}/{total}] {mark} {} ({:.1} s{})",
        r.name,
        r.duration_ms / 1000.0,
        r.own_ecosystem
            .as_ref()
            .map_or_else(String::new, |own| format!(
                "; on its own ecosystem{}, started in {:.1} s",
                if own.vars.is_empty() {
                    String::new()
                } else {
                    let set: Vec<String> = own
                        .vars
                        .iter()
                        .map(|(k, v)| format!("{k} = {v:?}"))
                        .collect();
                    format!(" ({})", set.join(", "))
                },
                own.start_ms / 1000.0
            ))
    );
    if let Some(why) = &r.skip_reason {
        text.push_str(&format!("\n           skipped: {why}"));
    }
    if let Some(f) = &r.failure {
        text.push_str(&format!(
            "\n           {}: {}",
            f.location,
            f.message.lines().next().unwrap_or_default()
        ));
        if let Some(because) = &f.because {
            text.push_str(&format!("\n           because: {because}"));
        }
    }
    text
}

/// Says every 15 s how far the run is, so a long run is not silent.
async fn progress(done: Arc<AtomicUsize>, total: usize, started: Instant) {
    let mut tick = tokio::time::interval(Duration::from_secs(15));
    tick.tick().await;
    loop {
        tick.tick().await;
        say(&format!(
            "… {} of {total} done after {:.0} s",
            done.load(Ordering::Relaxed),
            started.elapsed().as_secs_f64()
        ));
    }
}
