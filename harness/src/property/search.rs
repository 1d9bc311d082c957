//! The search: proptest generates cases, each runs live, a failing one is
//! shrunk (every shrinking step runs live too) and the minimal one is
//! written as a scenario file.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use proptest::test_runner::{
    Config as ProptestConfig, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner,
};

use super::exec::{CaseFailure, Executor, Waits};
use super::op::{case, Op};
use super::plan::Plan;
use super::render;
use crate::env::Ecosystem;
use crate::invariants::{Witness, WitnessReport};

/// A case: its tenant count and operations.
type Case = (usize, Vec<Op>);

/// How big a search is, and where a failure is written.
#[derive(Debug, Clone)]
pub struct Config {
    /// Cases to generate (`TEKUP_PROP_CASES`).
    pub cases: u32,
    /// The seed of the generator (`TEKUP_PROP_SEED`); the same seed gives
    /// the same cases.
    pub seed: u64,
    /// Most operations in a case (`TEKUP_PROP_MAX_OPS`).
    pub max_ops: usize,
    /// Most shrinking steps after a failure (`TEKUP_PROP_SHRINK`); each
    /// runs a case live.
    pub max_shrink: u32,
    pub waits: Waits,
    /// Where `property/<seed>-minimal.yaml` goes.
    pub reports_dir: PathBuf,
}

/// What the property suite cannot even try.
#[derive(Debug, thiserror::Error)]
pub enum PropertyError {
    #[error("failed to prepare the property suite: {0}")]
    Setup(String),
    #[error("{name} must be {what}, not `{value}`")]
    Setting {
        name: &'static str,
        what: &'static str,
        value: String,
    },
    #[error("failed to write the minimal scenario to {path}: {cause}")]
    Write { path: PathBuf, cause: String },
}

impl Config {
    /// The defaults CI runs (8 cases of up to 12 operations), changed by
    /// `TEKUP_PROP_CASES`, `TEKUP_PROP_SEED`, `TEKUP_PROP_MAX_OPS`,
    /// `TEKUP_PROP_SHRINK`; a random seed when none is set.
    pub fn from_env(reports_dir: PathBuf) -> Result<Config, PropertyError> {
        fn var<T: std::str::FromStr>(
            name: &'static str,
            what: &'static str,
        ) -> Result<Option<T>, PropertyError> {
            match std::env::var(name) {
                Err(_) => Ok(None),
                Ok(value) => value
                    .trim()
                    .parse()
                    .map(Some)
                    .map_err(|_| PropertyError::Setting { name, what, value }),
            }
        }
        Ok(Config {
            cases: var("TEKUP_PROP_CASES", "a number of cases")?.unwrap_or(8),
            seed: var("TEKUP_PROP_SEED", "a number (u64)")?.unwrap_or_else(rand::random),
            max_ops: var("TEKUP_PROP_MAX_OPS", "a number of operations")?.unwrap_or(12),
            max_shrink: var("TEKUP_PROP_SHRINK", "a number of shrinking steps")?.unwrap_or(64),
            waits: Waits {
                settle: Duration::from_secs(30),
                events: Duration::from_secs(10),
                quiet: Duration::from_millis(300),
            },
            reports_dir,
        })
    }
}

/// What the search reports as it goes.
#[derive(Debug, Clone)]
pub enum Progress {
    /// Case `k` of `of` starts, with `ops` operations on `tenants` tenants.
    Case {
        k: u32,
        of: u32,
        ops: usize,
        tenants: usize,
    },
    /// Case `k` failed; shrinking starts.
    Failed { k: u32, finding: String },
    /// Shrinking step `step` tried `ops` operations: still failing or not.
    Shrink { step: u32, ops: usize, fails: bool },
}

/// A failure, shrunk.
#[derive(Debug, Clone)]
pub struct Failure {
    pub tenants: usize,
    pub ops: Vec<Op>,
    /// Why the minimal case fails.
    pub findings: Vec<String>,
    /// Shrinking steps taken.
    pub shrink_steps: u32,
    /// The minimal case as a scenario file, and where it was written.
    pub scenario: String,
    pub path: PathBuf,
}

/// What a search did.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub seed: u64,
    /// Cases generated (shrinking steps not counted).
    pub cases: u32,
    /// Operations run in the generated cases.
    pub ops: usize,
    pub failure: Option<Failure>,
    /// What the run's witness tenant saw and suffered over every case
    /// (shrinking included); a finding fails the run like a failing case.
    pub witness: WitnessReport,
}

impl Outcome {
    /// Whether the property held and the witness found nothing.
    pub fn holds(&self) -> bool {
        self.failure.is_none() && self.witness.holds()
    }
}

/// Searches for a failing case on `eco`, with a witness tenant watching
/// the whole run. Runs the cases on `handle` and must therefore be called
/// outside it (from a plain thread).
pub fn search(
    handle: &tokio::runtime::Handle,
    eco: &Ecosystem,
    config: &Config,
    progress: &dyn Fn(Progress),
) -> Result<Outcome, PropertyError> {
    let executor = handle
        .block_on(Executor::new(eco, config.waits))
        .map_err(PropertyError::Setup)?;
    // One witness for the whole run of cases: a tenant of no case.
    let witness = handle.block_on(Witness::set_up(eco, "property"));
    let proptest = ProptestConfig {
        cases: config.cases,
        max_shrink_iters: config.max_shrink,
        max_shrink_time: 0,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let mut seed = [0u8; 32];
    for chunk in seed.chunks_mut(8) {
        chunk.copy_from_slice(&config.seed.to_le_bytes());
    }
    let mut runner =
        TestRunner::new_with_rng(proptest, TestRng::from_seed(RngAlgorithm::ChaCha, &seed));
    let generated = Cell::new(0u32);
    let ops_run = Cell::new(0usize);
    let failed = Cell::new(false);
    let shrink_steps = Cell::new(0u32);
    let findings: RefCell<HashMap<Case, Vec<String>>> = RefCell::new(HashMap::new());
    let result = runner.run(&case(config.max_ops), |(tenants, ops)| {
        let plan = Plan::new(tenants, &ops);
        if failed.get() {
            shrink_steps.set(shrink_steps.get() + 1);
        } else {
            generated.set(generated.get() + 1);
            ops_run.set(ops_run.get() + ops.len());
            progress(Progress::Case {
                k: generated.get(),
                of: config.cases,
                ops: ops.len(),
                tenants,
            });
        }
        let label = format!(
            "tkp-{}-{}-{}",
            config.seed,
            generated.get(),
            shrink_steps.get()
        );
        let outcome = handle.block_on(executor.run(&plan, &label));
        if failed.get() {
            progress(Progress::Shrink {
                step: shrink_steps.get(),
                ops: ops.len(),
                fails: outcome.is_err(),
            });
        }
        let Err(failure) = outcome else {
            return Ok(());
        };
        let found = describe(failure, &plan, &ops);
        if !failed.get() {
            progress(Progress::Failed {
                k: generated.get(),
                finding: found[0].clone(),
            });
            failed.set(true);
        }
        let reason = found.join("\n");
        findings.borrow_mut().insert((tenants, ops), found);
        Err(TestCaseError::fail(reason))
    });
    let failure = match result {
        Ok(()) => None,
        Err(TestError::Abort(why)) => return Err(PropertyError::Setup(why.to_string())),
        Err(TestError::Fail(_, (tenants, ops))) => {
            let mut found = findings
                .borrow()
                .get(&(tenants, ops.clone()))
                .cloned()
                .unwrap_or_default();
            // proptest drops each operation once, in one pass; an operation
            // that could not go early may go once later ones are gone. One
            // more pass, within what is left of the shrinking budget.
            let mut ops = ops;
            let mut i = 0;
            while i < ops.len() && shrink_steps.get() < config.max_shrink {
                let mut fewer = ops.clone();
                fewer.remove(i);
                shrink_steps.set(shrink_steps.get() + 1);
                let label = format!("tkp-{}-polish-{}", config.seed, shrink_steps.get());
                let outcome = handle.block_on(executor.run(&Plan::new(tenants, &fewer), &label));
                progress(Progress::Shrink {
                    step: shrink_steps.get(),
                    ops: fewer.len(),
                    fails: outcome.is_err(),
                });
                match outcome {
                    Err(failure) => {
                        found = describe(failure, &Plan::new(tenants, &fewer), &fewer);
                        ops = fewer;
                    }
                    Ok(()) => i += 1,
                }
            }
            let plan = Plan::new(tenants, &ops);
            let scenario = render::scenario(config.seed, &ops, &plan, &found, config.waits.quiet);
            let dir = config.reports_dir.join("property");
            let path = dir.join(format!("{}-minimal.yaml", config.seed));
            std::fs::create_dir_all(&dir)
                .and_then(|()| std::fs::write(&path, &scenario))
                .map_err(|e| PropertyError::Write {
                    path: path.clone(),
                    cause: e.to_string(),
                })?;
            Some(Failure {
                tenants,
                ops,
                findings: found,
                shrink_steps: shrink_steps.get(),
                scenario,
                path,
            })
        }
    };
    Ok(Outcome {
        seed: config.seed,
        cases: generated.get(),
        ops: ops_run.get(),
        failure,
        witness: handle.block_on(witness.check()),
    })
}

/// A failure's findings, the first naming the operation whose request
/// failed its check.
fn describe(failure: CaseFailure, plan: &Plan, ops: &[Op]) -> Vec<String> {
    let CaseFailure { step, mut findings } = failure;
    if let (Some(i), Some(first)) = (step, findings.first_mut()) {
        let op = plan.origin[i];
        *first = format!("operation {} ({}): {first}", op + 1, plan.describe(op, ops));
    }
    findings
}
