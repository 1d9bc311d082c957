//! A suite: one ecosystem started on first use, one [`Runner`] shared by
//! every scenario of a process (those that need the ecosystem alone get
//! one of their own, see `own`), and the reports written at the end. The
//! `cargo test` binary (`tests/scenarios.rs`) and `tekup-harness run`
//! both use it.
//!
//! A suite also sets up a [`Witness`] when its ecosystem starts: a tenant
//! of no scenario that must see and suffer nothing while they run.
//! [`Suite::finish`] checks it; a finding is a failed entry named
//! `witness` in the run's report (so JUnit, JSON and HTML show it), and
//! the callers fail the run on it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use super::{needs_ecosystem_alone, EcosystemRecipe, Runner};
use crate::env::{error_chain, Progress, Runtime};
use crate::invariants::{Witness, WitnessReport};
use crate::net::{ClientTls, TlsArgs};
use crate::report::{Failure, Format, RunReport, ScenarioReport, Status};
use crate::scenario::Scenario;

/// Where a suite runs and what it writes.
#[derive(Debug)]
pub struct Suite {
    root: PathBuf,
    /// The ecosystem file.
    pub file: PathBuf,
    pub runtime: Runtime,
    /// Where reports and component logs go.
    pub reports_dir: PathBuf,
    /// Build the service and mock binaries (`cargo build`) before starting.
    /// Off for tests by default: `cargo test --workspace` has built them, and
    /// a `cargo build` of two packages resolves features differently, so it
    /// would rebuild them (and `cargo test` again after it). `TEKUP_BUILD=1`
    /// turns it on; `tekup-harness run` under `cargo run` turns it on.
    pub build: bool,
    /// Deliberate defects to start the reference services with (see
    /// [`crate::env::EcosystemBuilder::defects`]); empty for none.
    pub defects: String,
    /// Set up a witness tenant when the ecosystem starts, and check it in
    /// [`Suite::finish`] (on by default; suites that bring their own, like
    /// the property and chaos suites, turn it off).
    pub witness: bool,
    /// The TLS settings of every client of the run ([`Suite::set_tls`]).
    tls: ClientTls,
    /// Why the TLS settings of the environment could not be read, said when
    /// the suite starts.
    tls_error: Option<String>,
    /// Whether the settings came from the environment (so `--insecure` is
    /// said here; the command line says it itself).
    tls_from_env: bool,
    /// The external runtime's deployment file (default: `$TEKUP_EXTERNAL_FILE`).
    pub external: Option<PathBuf>,
    /// Leave the tenants made on an external deployment as they are
    /// (`--keep-tenants`) instead of suspending them in [`Suite::finish`].
    pub keep_tenants: bool,
    /// Forward the services' spans to this OTLP/HTTP endpoint too
    /// (`--otlp-forward`, `TEKUP_OTLP_FORWARD`; see
    /// [`crate::env::EcosystemBuilder::otlp_forward`]).
    pub otlp_forward: Option<String>,
    /// Give each scenario that needs the ecosystem alone one of its own,
    /// where the runtime starts one cheaply (see
    /// [`Runner::with_own_ecosystems`]); off (`TEKUP_OWN_ECOSYSTEMS=0`,
    /// `--no-own-ecosystems`), such scenarios run alone on the shared one.
    pub own_ecosystems: bool,
    state: tokio::sync::Mutex<Option<Result<Arc<Runner>, String>>>,
    watching: tokio::sync::Mutex<Option<Witness>>,
    started: Instant,
    started_at: chrono::DateTime<chrono::Utc>,
}

impl Suite {
    /// A suite in the workspace at `root`, configured from the environment:
    /// `TEKUP_ECOSYSTEM` (default `fixtures/ecosystem.toml`), `TEKUP_RUNTIME`
    /// (default `process`), `TEKUP_REPORTS_DIR` (default `reports`),
    /// `TEKUP_BUILD=1` (build the binaries first), and the TLS settings
    /// `TEKUP_CA_CERT`, `TEKUP_CLIENT_CERT`/`TEKUP_CLIENT_KEY`,
    /// `TEKUP_INSECURE` (wrong files fail the start, naming them), and
    /// `TEKUP_OTLP_FORWARD` (an OTLP endpoint to forward spans to), and
    /// `TEKUP_OWN_ECOSYSTEMS=0` (no ecosystems of their own: see
    /// [`Suite::own_ecosystems`]).
    pub fn new(root: PathBuf) -> Suite {
        let (tls, tls_error) = match TlsArgs::from_env().load() {
            Ok(tls) => (tls, None),
            Err(e) => (ClientTls::default(), Some(e.to_string())),
        };
        let var = |name: &str| std::env::var_os(name).map(PathBuf::from);
        let runtime = std::env::var("TEKUP_RUNTIME")
            .ok()
            .and_then(|r| r.parse().ok())
            .unwrap_or(Runtime::Process);
        Suite {
            file: var("TEKUP_ECOSYSTEM").unwrap_or_else(|| root.join("fixtures/ecosystem.toml")),
            reports_dir: var("TEKUP_REPORTS_DIR").unwrap_or_else(|| root.join("reports")),
            build: std::env::var("TEKUP_BUILD").is_ok_and(|b| b == "1"),
            runtime,
            root,
            defects: String::new(),
            witness: true,
            tls,
            tls_error,
            tls_from_env: true,
            external: None,
            keep_tenants: false,
            otlp_forward: std::env::var("TEKUP_OTLP_FORWARD")
                .ok()
                .filter(|u| !u.is_empty()),
            own_ecosystems: std::env::var("TEKUP_OWN_ECOSYSTEMS").map_or(true, |v| v != "0"),
            state: tokio::sync::Mutex::new(None),
            watching: tokio::sync::Mutex::new(None),
            started: Instant::now(),
            started_at: chrono::Utc::now(),
        }
    }

    /// The TLS settings every client of the run is built with (the
    /// ecosystem's readiness checks, HTTP steps, gateway WebSockets).
    pub fn set_tls(&mut self, tls: ClientTls) {
        self.tls = tls;
        self.tls_error = None;
        self.tls_from_env = false;
    }

    /// The TLS settings of the run.
    pub fn tls(&self) -> &ClientTls {
        &self.tls
    }

    /// The runner, starting the ecosystem on the first call. A failure to
    /// start is kept and returned to every caller (each scenario then fails
    /// with it, rather than each trying again).
    pub async fn runner(&self) -> Result<Arc<Runner>, String> {
        let mut state = self.state.lock().await;
        if let Some(result) = &*state {
            return result.clone();
        }
        let result = self.start().await;
        *state = Some(result.clone());
        result
    }

    #[expect(
        clippy::print_stderr,
        reason = "progress of a long start, for the test output"
    )]
    async fn start(&self) -> Result<Arc<Runner>, String> {
        // Docker starts build their own (release) programs; external starts none.
        if self.build && !matches!(self.runtime, Runtime::External | Runtime::Docker) {
            self.build_binaries().await?;
        }
        let started = Instant::now();
        eprintln!(
            "tekup-harness: starting the ecosystem ({}) from {}",
            self.runtime.as_str(),
            self.file.display()
        );
        if let Some(e) = &self.tls_error {
            return Err(e.clone());
        }
        if self.tls.is_insecure() && self.tls_from_env {
            eprintln!("tekup-harness: {}", crate::net::INSECURE_WARNING);
        }
        let mut builder = self.recipe().builder(self.runtime, None);
        if let Some(file) = &self.external {
            builder = builder.external_file(file);
        }
        let eco = builder
            .on_progress(|p| {
                if let Progress::Runtime {
                    runtime, reason, ..
                } = p
                {
                    eprintln!("tekup-harness: runtime {} ({reason})", runtime.as_str());
                }
            })
            .start()
            .await
            .map_err(|e| format!("the ecosystem did not start: {}", error_chain(&e)))?;
        eprintln!(
            "tekup-harness: ecosystem ready in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        let mut runner = Runner::new(Arc::new(eco))
            .await
            .map_err(|e| e.to_string())?;
        if self.own_ecosystems {
            runner = runner.with_own_ecosystems(self.recipe());
        }
        let runner = Arc::new(runner);
        if self.witness {
            let started = Instant::now();
            let witness = Witness::set_up(runner.ecosystem(), "scenarios").await;
            eprintln!(
                "tekup-harness: witness tenant {} set up in {:.1} s",
                witness.tenant(),
                started.elapsed().as_secs_f64()
            );
            *self.watching.lock().await = Some(witness);
        }
        Ok(runner)
    }

    /// What the run's ecosystems are started from: the shared one, and each
    /// scenario's own (see [`Runner::with_own_ecosystems`]).
    fn recipe(&self) -> EcosystemRecipe {
        EcosystemRecipe {
            file: self.file.clone(),
            logs: self.reports_dir.join("logs"),
            tls: self.tls.clone(),
            defects: self.defects.clone(),
            otlp_forward: self.otlp_forward.clone(),
        }
    }

    /// The witness tenant's id, once the ecosystem started with a witness.
    pub async fn witness_tenant(&self) -> Option<String> {
        let watching = self.watching.lock().await;
        watching
            .as_ref()
            .map(|w| w.tenant().to_owned())
            .filter(|t| !t.is_empty())
    }

    async fn build_binaries(&self) -> Result<(), String> {
        build_binaries(&self.root).await
    }

    /// Runs `scenarios`, `jobs` at a time, and reports them in the order
    /// given; `on_done` hears of each as it ends. Those that need the
    /// ecosystem alone start first, each on an ecosystem of its own where
    /// the runner gives one (they are the long ones: a start, then a fault
    /// waited out); where it does not, they run one by one after the
    /// others.
    pub async fn run_all(
        &self,
        scenarios: &[Scenario],
        jobs: usize,
        on_done: &(dyn Fn(&ScenarioReport) + Sync),
    ) -> Result<Vec<ScenarioReport>, String> {
        use futures::StreamExt as _;
        let runner = self.runner().await?;
        type Numbered<'s> = Vec<(usize, &'s Scenario)>;
        let (alone, shared): (Numbered<'_>, Numbered<'_>) = scenarios
            .iter()
            .enumerate()
            .partition(|(_, s)| needs_ecosystem_alone(s));
        let (first, last) = if runner.gives_own_ecosystems() {
            (alone.into_iter().chain(shared).collect(), Vec::new())
        } else {
            (shared, alone)
        };
        let mut done: Vec<(usize, ScenarioReport)> = futures::stream::iter(first)
            .map(|(i, s)| run_one(&runner, i, s, on_done))
            .buffer_unordered(jobs.max(1))
            .collect()
            .await;
        for (i, s) in last {
            done.push(run_one(&runner, i, s, on_done).await);
        }
        done.sort_by_key(|(i, _)| *i);
        Ok(done.into_iter().map(|(_, r)| r).collect())
    }

    /// Checks the witness, disposes of the tenants made (see
    /// [`Ecosystem::release_tenants`]), writes the run report of
    /// `scenarios` (with a failed `witness` entry when the witness found
    /// something) to the reports directory, then stops the ecosystem.
    pub async fn finish(
        &self,
        mut scenarios: Vec<ScenarioReport>,
        jobs: usize,
        formats: &[Format],
    ) -> Finished {
        let runner = self.state.lock().await.take();
        let runtime = match &runner {
            Some(Ok(r)) => r.ecosystem().runtime().as_str().to_owned(),
            _ => self.runtime.as_str().to_owned(),
        };
        let witness = match self.watching.lock().await.take() {
            Some(w) => Some(w.check().await),
            None => None,
        };
        let tenants = match &runner {
            Some(Ok(r)) => Some(r.ecosystem().release_tenants(self.keep_tenants).await),
            _ => None,
        };
        drop(runner);
        let entry = witness.as_ref().filter(|w| !w.holds()).map(witness_entry);
        scenarios.extend(entry.clone());
        scenarios.sort_by(|a, b| a.name.cmp(&b.name));
        let mut finished = Finished {
            written: Vec::new(),
            witness,
            entry,
            tenants,
        };
        if scenarios.is_empty() {
            return finished;
        }
        let report = RunReport {
            started_at: self
                .started_at
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            duration_ms: self.started.elapsed().as_secs_f64() * 1000.0,
            runtime,
            jobs,
            scenarios,
        };
        match crate::report::write(&report, &self.reports_dir, formats) {
            Ok(paths) => finished.written = paths,
            Err(e) => tracing::warn!("{}", error_chain(&e)),
        }
        finished
    }
}

/// What [`Suite::finish`] did.
#[derive(Debug, Clone, Default)]
pub struct Finished {
    /// The report files written.
    pub written: Vec<PathBuf>,
    /// What the witness found (none when the suite had none: its ecosystem
    /// never started, or [`Suite::witness`] was off).
    pub witness: Option<WitnessReport>,
    /// The failed `witness` entry added to the report, when it found something.
    pub entry: Option<ScenarioReport>,
    /// What became of the tenants made (none when the ecosystem never started).
    pub tenants: Option<crate::platform::TenantRelease>,
}

impl Finished {
    /// Whether the witness found something (which fails the run).
    pub fn witness_failed(&self) -> bool {
        self.entry.is_some()
    }
}

/// The report entry of a witness that found something: a failed scenario
/// named `witness`, its findings as the failure.
pub fn witness_entry(report: &WitnessReport) -> ScenarioReport {
    ScenarioReport {
        name: "witness".into(),
        file: "(the witness tenant of the run)".into(),
        tags: vec!["witness".into()],
        status: Status::Failed,
        duration_ms: 0.0,
        service_ms: 0.0,
        tenants: [("witness".to_owned(), report.tenant.clone())]
            .into_iter()
            .collect(),
        steps: Vec::new(),
        failure: Some(Failure {
            location: "witness".into(),
            message: format!(
                "the witness tenant, which took part in no scenario, saw or suffered something:\n{}",
                report.describe(50)
            ),
            ..Failure::default()
        }),
        skip_reason: None,
        messages: Vec::new(),
        spans: Vec::new(),
        own_ecosystem: None,
    }
}

async fn run_one(
    runner: &Runner,
    i: usize,
    scenario: &Scenario,
    on_done: &(dyn Fn(&ScenarioReport) + Sync),
) -> (usize, ScenarioReport) {
    let report = runner.run(scenario).await;
    on_done(&report);
    (i, report)
}

/// Builds the service and mock binaries of the workspace at `root` with the
/// profile this executable was built with (`tekup-harness run` and `load`
/// under `cargo run`, so they never start stale binaries).
pub(crate) async fn build_binaries(root: &std::path::Path) -> Result<(), String> {
    let mut args = vec![
        "build",
        "--quiet",
        "-p",
        "tekup-services",
        "-p",
        "tekup-mocks",
        "--bins",
    ];
    // The binaries are looked up next to this executable first: build
    // the profile it was built with (`cargo bench` is release).
    let release = std::env::current_exe()
        .is_ok_and(|exe| exe.components().any(|c| c.as_os_str() == "release"));
    if release {
        args.push("--release");
    }
    let output = tokio::process::Command::from(crate::env::cargo_command())
        .current_dir(root)
        .args(&args)
        .output()
        .await
        .map_err(|e| format!("running cargo to build the services and mocks: {e}"))?;
    if output.status.success() {
        return Ok(());
    }
    Err(format!(
        "building the services and mocks failed (set TEKUP_BIN_DIR to use prebuilt ones):\n{}",
        String::from_utf8_lossy(&output.stderr)
    ))
}
