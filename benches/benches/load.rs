//! The reference ecosystem's throughput at the platform's p95 target, per
//! load profile: `cargo bench -p tekup-benches --bench load`.
//!
//! The ecosystem is started once (process runtime, release binaries built
//! first) and each profile of `tekup-harness load` is run against it at
//! growing numbers of users (4, 8, 16, … `BENCH_MAX_USERS`, 128 by default),
//! `BENCH_STEP_SECS` (10) seconds each, until a step breaches a target (a
//! request kind's p95 ≥ 500 ms, errors ≥ 1 %, a lead not processed within a
//! minute). The figure is the requests per second of the last step that met
//! every target; its reports (`load.json`, `load.html`, goose's
//! `goose.html`) are written to `reports/load-bench/<profile>/`, and the
//! first breaching step's to `reports/load-bench/<profile>/breach/`.
//!
//! The load generator shares the machine's cores with the ecosystem, so the
//! figure is that of the whole loop on this machine. `BENCH_QUICK=1` runs
//! 2 and 8 users for 3 s each; `BENCH_PROFILES=lead-creation,mixed` picks
//! profiles.

use std::path::Path;
use std::time::Duration;

use tekup_harness::load::{self, LoadReport, Plan, Profile};
use tekup_harness::platform::Platform;
use tekup_harness::scenario::run::Suite;

#[expect(clippy::print_stdout, reason = "the bench's results")]
fn out(line: &str) {
    println!("{line}");
}

fn main() {
    let quick = std::env::var("BENCH_QUICK").is_ok_and(|v| v == "1");
    let (steps, secs) = if quick {
        (vec![2, 8], 3)
    } else {
        let max = tekup_benches::env_usize("BENCH_MAX_USERS", 128);
        let steps = std::iter::successors(Some(4usize), |u| Some(u * 2))
            .take_while(|u| *u <= max)
            .collect();
        (
            steps,
            tekup_benches::env_usize("BENCH_STEP_SECS", 10) as u64,
        )
    };
    let profiles: Vec<Profile> = match std::env::var("BENCH_PROFILES") {
        Ok(list) => list
            .split(',')
            .map(|p| p.parse().unwrap_or_else(|e| panic!("{e}")))
            .collect(),
        Err(_) => Profile::ALL.to_vec(),
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("workspace");
    let reports = root.join("reports/load-bench");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let mut suite = Suite::new(root.clone());
        suite.build = true;
        suite.reports_dir = reports.clone();
        let runner = suite.runner().await.expect("the ecosystem starts");
        let platform = Platform::from_ecosystem(runner.ecosystem()).expect("platform");
        out(&format!(
            "load bench: users {steps:?}, {secs} s a step, targets p95 < 500 ms, errors < 1 %, queue < 60 s"
        ));
        out(&format!(
            "{:<14} {:>6} {:>10} {:>10} {:>8} {:>11}  verdict",
            "profile", "users", "req/s", "worst p95", "errors", "queue max"
        ));
        let mut figures = Vec::new();
        for &profile in &profiles {
            let dir = reports.join(profile.name());
            let mut best: Option<LoadReport> = None;
            for &users in &steps {
                let step_dir = dir.join(format!("users-{users}"));
                let mut plan = Plan::new(profile, users, Duration::from_secs(secs));
                plan.goose_report = Some(step_dir.join("goose.html"));
                let report = match load::run(&plan, &platform).await {
                    Ok(r) => r,
                    Err(e) => panic!("{profile} at {users} users: {}", tekup_harness::env::error_chain(&e)),
                };
                report.write(&step_dir).expect("reports");
                out(&line(&report));
                if !report.passed {
                    for b in report.breaches() {
                        out(&format!("               {b}"));
                    }
                    keep(&step_dir, &dir.join("breach"));
                    break;
                }
                keep(&step_dir, &dir);
                best = Some(report);
            }
            figures.push((profile, best));
        }
        out("");
        out("throughput at the p95 target (last step meeting every target):");
        for (profile, best) in figures {
            match best {
                Some(r) => out(&format!(
                    "  {:<14} {:>8.1} req/s at {} users (p95 {:.1} ms, {})",
                    profile.name(),
                    r.requests_per_second,
                    r.users,
                    worst_p95(&r),
                    reports.join(profile.name()).join("load.json").display()
                )),
                None => out(&format!(
                    "  {:<14} no step met the targets",
                    profile.name()
                )),
            }
        }
    });
}

fn worst_p95(r: &LoadReport) -> f64 {
    r.requests
        .iter()
        .map(|k| k.latency_ms.p95)
        .fold(0.0, f64::max)
}

fn line(r: &LoadReport) -> String {
    let errors = if r.total.count == 0 {
        0.0
    } else {
        r.total.errors as f64 * 100.0 / r.total.count as f64
    };
    let queue = r.queue_latency.as_ref().map_or("-".to_owned(), |q| {
        format!("{:.0} ms", q.histogram.max_ms())
    });
    format!(
        "{:<14} {:>6} {:>10.1} {:>7.1} ms {:>6.2} % {:>11}  {}",
        r.profile,
        r.users,
        r.requests_per_second,
        worst_p95(r),
        errors,
        queue,
        if r.passed { "ok" } else { "BREACH" }
    )
}

/// Copies a step's reports into `to` (the profile's figure, or its breach).
fn keep(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("dir");
    for name in ["load.json", "load.html", "goose.html"] {
        let _ = std::fs::copy(from.join(name), to.join(name));
    }
}
