//! The sweep (`tekup_harness::sweep`): clean on the reference services, and
//! each class catches the defects of its kind that a build of the services
//! has on purpose (`tekup-service-defects`, `TEKUP_DEFECTS`).
//!
//! Each test sweeps an ecosystem of its own ([`sweep_on`]), side by side as
//! libtest runs them (four at a time, `.cargo/config.toml`), as the chaos
//! suites' tests do. One at a time left the cores half idle: a sweep
//! waits on sockets as much as it works (on the limits class's defect
//! build the connections stay open, and the check waits out its 35 s
//! deadline). Each class's defect tests are in the module of that class.

#![expect(
    clippy::print_stderr,
    reason = "the sweep's progress and findings, for the test output"
)]

mod access;
mod database;
mod inputs;
mod limits;
mod tokens;

use std::path::{Path, PathBuf};

use tekup_harness::env::{error_chain, Ecosystem, Runtime};
use tekup_harness::sweep::{self, Class, Finding, Operations, Size, SweepReport, Target};

fn workspace() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    dir.canonicalize().unwrap_or(dir)
}

/// Starts the reference ecosystem with `defects` on (none when empty),
/// sweeps it with `classes` at the bounded size, prints what it found.
pub(crate) async fn sweep_on(defects: &str, classes: &[Class]) -> SweepReport {
    // Its own log directory: two tests may sweep the reference build at once.
    let classes_label: Vec<&str> = classes.iter().map(|c| c.as_str()).collect();
    let label = format!(
        "{}-{}",
        if defects.is_empty() {
            "reference"
        } else {
            defects
        },
        classes_label.join("+")
    );
    let mut builder = Ecosystem::builder()
        .file(workspace().join("fixtures/ecosystem.toml"))
        .runtime(Runtime::Process)
        .links(false)
        .logs_dir(std::env::temp_dir().join(format!(
            "tekup-sweep-{}-{}",
            std::process::id(),
            label.replace(',', "+")
        )));
    if !defects.is_empty() {
        builder = builder.defects(defects);
    }
    let mut eco = builder
        .start()
        .await
        .unwrap_or_else(|e| panic!("the ecosystem starts: {}", error_chain(&e)));
    let operations =
        Operations::load_dir(&workspace().join("contract")).expect("contract/*.json load");
    let target = Target::from_ecosystem(&eco, operations, Size::Bounded)
        .await
        .unwrap_or_else(|e| panic!("the sweep's target: {e}"));
    let progress = |line: &str| eprintln!("{line}");
    let report = sweep::run(&target, classes, &progress).await;
    eprintln!("{}", report.summary());
    for f in report.findings() {
        eprintln!("{f}\n");
    }
    drop(target);
    eco.shutdown().await;
    report
}

/// The findings of `report` whose title or detail contains `needle`.
pub(crate) fn matching<'a>(report: &'a SweepReport, needle: &str) -> Vec<&'a Finding> {
    report
        .findings()
        .filter(|f| f.title.contains(needle) || f.detail.contains(needle))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_sweep_is_clean_on_the_reference_services() {
    let report = sweep_on("", &Class::ALL).await;
    for class in &report.classes {
        assert!(
            class.skipped.is_none(),
            "{} skipped on the reference ecosystem: {:?}",
            class.class,
            class.skipped
        );
        assert!(class.cases > 0, "{} ran no case", class.class);
    }
    let findings: Vec<String> = report.findings().map(ToString::to_string).collect();
    assert!(findings.is_empty(), "{}", findings.join("\n\n"));
}
