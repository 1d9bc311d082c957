//! `tekup-harness prop`: the property suite at any size, against an
//! ecosystem it starts, with progress, a summary, and the minimal failing
//! case as a scenario file.

use std::process::ExitCode;
use std::time::Instant;

use clap::Args;

use super::{out, say, StartArgs};
use crate::property::{search, Config, Progress};

#[derive(Debug, Args)]
pub(super) struct PropArgs {
    /// Cases to generate [default: TEKUP_PROP_CASES, else 8].
    #[arg(long)]
    cases: Option<u32>,
    /// Seed of the generator, to repeat a run [default: TEKUP_PROP_SEED, else random].
    #[arg(long)]
    seed: Option<u64>,
    /// Most operations in a case [default: TEKUP_PROP_MAX_OPS, else 12].
    #[arg(long)]
    max_ops: Option<usize>,
    /// Most shrinking steps after a failure [default: TEKUP_PROP_SHRINK, else 64].
    #[arg(long)]
    max_shrink: Option<u32>,
    /// Runtime, reports directory (also for `property/<seed>-minimal.yaml`)
    /// and ecosystem file (`--file`/`--ecosystem`); the checks read Postgres
    /// and Redis, so process, docker, or external with both DSNs in its file.
    #[command(flatten)]
    start: StartArgs,
}

pub(super) fn run(args: PropArgs, rt: &tokio::runtime::Runtime) -> ExitCode {
    let mut config = match Config::from_env(args.start.reports_dir.clone()) {
        Ok(c) => c,
        Err(e) => {
            say(&format!("error: {e}"));
            return ExitCode::FAILURE;
        }
    };
    config.cases = args.cases.unwrap_or(config.cases);
    config.seed = args.seed.unwrap_or(config.seed);
    config.max_ops = args.max_ops.unwrap_or(config.max_ops);
    config.max_shrink = args.max_shrink.unwrap_or(config.max_shrink);
    let mut suite = match args.start.suite() {
        Ok(suite) => suite,
        Err(code) => return code,
    };
    // The search sets up its own witness, for its run of cases.
    suite.witness = false;
    say(&format!(
        "property suite: seed {} ({} cases of up to {} operations; repeat with --seed {})",
        config.seed, config.cases, config.max_ops, config.seed
    ));
    let runner = match rt.block_on(suite.runner()) {
        Ok(r) => r,
        Err(e) => {
            say(&format!("error: {e}"));
            say("hint: `tekup-harness doctor` says what this machine can run");
            return ExitCode::FAILURE;
        }
    };
    let started = Instant::now();
    let result = search(rt.handle(), runner.ecosystem(), &config, &|p| {
        say(&progress(&p))
    });
    drop(runner);
    if let Some(tenants) = rt.block_on(suite.finish(Vec::new(), 1, &[])).tenants {
        say(&tenants.describe());
    }
    let elapsed = started.elapsed().as_secs_f64();
    match result {
        Err(e) => {
            say(&format!("error: {e}"));
            ExitCode::FAILURE
        }
        Ok(outcome) => match outcome.failure {
            None if !outcome.witness.holds() => {
                out(&outcome.witness.describe(50));
                out(&format!(
                    "property FAILED: {} cases held, but the witness tenant saw or suffered something (seed {}, {elapsed:.1} s)",
                    outcome.cases, outcome.seed
                ));
                ExitCode::FAILURE
            }
            None => {
                say(&outcome.witness.describe(0));
                out(&format!(
                    "property holds: {} cases, {} operations, seed {} ({elapsed:.1} s)",
                    outcome.cases, outcome.ops, outcome.seed
                ));
                ExitCode::SUCCESS
            }
            Some(f) => {
                out(&f.scenario);
                out(&format!(
                    "property FAILED after {} case(s) (seed {}), shrunk in {} step(s) to {} operation(s) on {} tenants ({elapsed:.1} s):",
                    outcome.cases,
                    outcome.seed,
                    f.shrink_steps,
                    f.ops.len(),
                    f.tenants
                ));
                for finding in &f.findings {
                    out(&format!("  - {finding}"));
                }
                if !outcome.witness.holds() {
                    out(&outcome.witness.describe(50));
                }
                out(&format!("minimal scenario: {}", f.path.display()));
                out(&format!(
                    "rerun it: cargo run -p tekup-harness -- run {}   (or the search: --seed {})",
                    f.path.display(),
                    outcome.seed
                ));
                ExitCode::FAILURE
            }
        },
    }
}

fn progress(p: &Progress) -> String {
    match p {
        Progress::Case {
            k,
            of,
            ops,
            tenants,
        } => {
            format!("case {k}/{of}: {ops} operations, {tenants} tenants")
        }
        Progress::Failed { k, finding } => format!("case {k} FAILED: {finding}\nshrinking …"),
        Progress::Shrink { step, ops, fails } => format!(
            "  shrink step {step}: {ops} operations, {}",
            if *fails { "still fails" } else { "passes" }
        ),
    }
}
