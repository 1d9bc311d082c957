//! The scenario engine's cost, and what parallel scenarios buy.
//!
//! `cargo bench -p tekup-benches --bench scenarios`
//!
//! Runs the scenario files of `scenarios/` (`TEKUP_SCENARIOS` to change)
//! against one ecosystem (process runtime; a scenario that needs the
//! ecosystem alone runs on one of its own, started for it, with both
//! `--jobs`, as under `tekup-harness run`), `TEKUP_BENCH_RUNS` rounds
//! (default 3). Each round runs the whole suite with `--jobs 1` and then with
//! the default of `tekup-harness run` (4), so both are measured side by side
//! on the same machine state.
//!
//! - Engine overhead of a scenario = its run time minus the time it spent
//!   waiting on the system under test (HTTP round trips, queries, WebSocket
//!   and `eventually` waits, `sleep`), as the runner accounts it. Reported
//!   per scenario (median over the `--jobs 1` runs, where nothing competes)
//!   and per step (a scenario's overhead over the steps it ran).
//! - Suite wall time with `--jobs 1` vs `--jobs 4`, median and ratio.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use tekup_harness::report::{ScenarioReport, Status};
use tekup_harness::scenario::check_paths;
use tekup_harness::scenario::run::Suite;

const DEFAULT_JOBS: usize = 4;

#[expect(clippy::print_stdout, reason = "the benchmark's results")]
fn main() {
    let runs: usize = std::env::var("TEKUP_BENCH_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3)
        .max(1);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("workspace");
    let dir =
        std::env::var_os("TEKUP_SCENARIOS").map_or_else(|| root.join("scenarios"), Into::into);
    let scenarios: Vec<_> = check_paths(&[dir])
        .into_iter()
        .flat_map(|f| f.result.unwrap_or_else(|e| panic!("{e}")).cases())
        .collect();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let mut suite = Suite::new(root.clone());
    suite.reports_dir =
        std::env::temp_dir().join(format!("tekup-bench-scenarios-{}", std::process::id()));
    let quiet = |_: &ScenarioReport| {};
    let mut walls: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
    let mut overhead: BTreeMap<String, Vec<(f64, f64, f64)>> = BTreeMap::new();
    let mut steps: BTreeMap<String, usize> = BTreeMap::new();
    // A scenario's time with --jobs 1, its own ecosystem's start included.
    let mut spans: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    rt.block_on(async {
        suite.runner().await.expect("the ecosystem starts");
        // One unmeasured round: connections, caches, first-use costs.
        suite
            .run_all(&scenarios, DEFAULT_JOBS, &quiet)
            .await
            .expect("warm-up");
        for round in 1..=runs {
            for jobs in [1, DEFAULT_JOBS] {
                let started = Instant::now();
                let reports = suite
                    .run_all(&scenarios, jobs, &quiet)
                    .await
                    .expect("suite runs");
                let wall = started.elapsed().as_secs_f64();
                let failed: Vec<&str> = reports
                    .iter()
                    .filter(|r| r.status != Status::Passed)
                    .map(|r| r.name.as_str())
                    .collect();
                println!(
                    "round {round}, --jobs {jobs}: {wall:.2} s, {} scenarios, failed: {failed:?}",
                    reports.len()
                );
                walls.entry(jobs).or_default().push(wall);
                if jobs == 1 {
                    for r in &reports {
                        let own = r.own_ecosystem.as_ref().map_or(0.0, |o| o.start_ms);
                        spans
                            .entry(r.name.clone())
                            .or_default()
                            .push((r.duration_ms + own) / 1000.0);
                    }
                    for r in reports {
                        steps.insert(r.name.clone(), r.steps.len().max(1));
                        overhead.entry(r.name.clone()).or_default().push((
                            r.duration_ms,
                            r.service_ms,
                            r.duration_ms - r.service_ms,
                        ));
                    }
                }
            }
        }
        suite.finish(Vec::new(), 1, &[]).await;
    });
    println!("\nper scenario, --jobs 1, median of {runs} (ms):");
    println!(
        "{:<34} {:>10} {:>12} {:>10} {:>8} {:>6} {:>12}",
        "scenario", "run", "in system", "engine", "engine%", "steps", "engine/step"
    );
    let mut engine_all = Vec::new();
    let mut per_step_all = Vec::new();
    let (mut engine_sum, mut steps_sum) = (0.0, 0);
    for (name, samples) in &overhead {
        let run = median(samples.iter().map(|s| s.0).collect());
        let system = median(samples.iter().map(|s| s.1).collect());
        let engine = median(samples.iter().map(|s| s.2).collect());
        let n = steps.get(name).copied().unwrap_or(1);
        engine_all.push(engine);
        per_step_all.push(engine / n as f64);
        engine_sum += engine;
        steps_sum += n;
        println!(
            "{name:<34} {run:>10.1} {system:>12.1} {engine:>10.2} {:>7.2}% {n:>6} {:>12.3}",
            100.0 * engine / run.max(f64::EPSILON),
            engine / n as f64
        );
    }
    println!(
        "median engine overhead per scenario: {:.2} ms",
        median(engine_all)
    );
    println!(
        "engine overhead per step: median {:.3} ms, all scenarios together {:.3} ms ({steps_sum} steps)",
        median(per_step_all),
        engine_sum / steps_sum.max(1) as f64
    );
    let one = median(walls[&1].clone());
    let many = median(walls[&DEFAULT_JOBS].clone());
    println!(
        "\nsuite wall time, median of {runs}: --jobs 1 {one:.2} s, --jobs {DEFAULT_JOBS} {many:.2} s ({:.2}x faster)",
        one / many
    );
    // No number of jobs takes the suite below its longest scenario.
    if let Some((name, longest)) = spans
        .iter()
        .map(|(name, s)| (name, median(s.clone())))
        .max_by(|a, b| a.1.total_cmp(&b.1))
    {
        println!(
            "longest scenario: {name}, {longest:.2} s (median, --jobs 1, its own ecosystem's start included): at most {:.2}x faster however many jobs",
            one / longest.max(f64::EPSILON)
        );
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
