//! Ecosystems of their own for the scenarios that change what every run
//! shares.
//!
//! A scenario that kills a component, cuts a link, opens a breaker or
//! registers a webhook endpoint ([`super::needs_ecosystem_alone`]) cannot
//! share the ecosystem: every other run would feel it. On a runtime that
//! starts one cheaply (the process runtime: the cached cluster, the
//! migration replayed from its snapshot), such a scenario gets a fresh
//! ecosystem of its own, started from the same file with the same settings
//! (but the `[vars]` its `own-ecosystem:` sets), and runs beside the others
//! on it; the ecosystem stops when the scenario ends. Elsewhere (docker,
//! an external deployment) it runs alone on the shared one, as before.
//!
//! The run's witness tenant watches the shared ecosystem only: what a
//! scenario does on its own ecosystem is out of its sight, as it was out of
//! everybody's.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use super::{Runner, ScenarioReport};
use crate::env::{error_chain, Ecosystem, EcosystemBuilder, Runtime};
use crate::net::ClientTls;
use crate::report::{Failure, OwnEcosystem, Status};
use crate::scenario::Scenario;

/// How to start an ecosystem like the shared one: what its builder was
/// given. Each own ecosystem's logs go to `<logs>/own/<scenario>`.
#[derive(Debug, Clone)]
pub struct EcosystemRecipe {
    /// The ecosystem file.
    pub file: PathBuf,
    /// The logs directory of the shared ecosystem.
    pub logs: PathBuf,
    pub tls: ClientTls,
    /// Deliberate defects of the reference services (empty for none).
    pub defects: String,
    pub otlp_forward: Option<String>,
}

impl EcosystemRecipe {
    /// The builder of the ecosystem the run shares, or of one of its own
    /// (`own` names the scenario), on `runtime`.
    pub fn builder(&self, runtime: Runtime, own: Option<&str>) -> EcosystemBuilder {
        let logs = match own {
            Some(name) => self.logs.join("own").join(dir_name(name)),
            None => self.logs.clone(),
        };
        let mut builder = Ecosystem::builder()
            .file(&self.file)
            .runtime(runtime)
            .tls(self.tls.clone())
            .logs_dir(logs);
        if !self.defects.is_empty() {
            builder = builder.defects(&self.defects);
        }
        if let Some(url) = &self.otlp_forward {
            builder = builder.otlp_forward(url);
        }
        builder
    }
}

/// Whether `runtime` starts ecosystems of their own for the scenarios that
/// need one: only the process runtime does it in a fraction of a second.
pub fn runtime_gives_own(runtime: Runtime) -> bool {
    runtime == Runtime::Process
}

/// Runs `scenario` on a fresh ecosystem made from `recipe`, then stops it.
pub(super) async fn run_on_own(recipe: &EcosystemRecipe, scenario: &Scenario) -> ScenarioReport {
    let started = Instant::now();
    let mut builder = recipe.builder(Runtime::Process, Some(&scenario.name));
    let vars = scenario
        .own_ecosystem
        .as_ref()
        .map(|o| o.vars.clone())
        .unwrap_or_default();
    for (name, value) in &vars {
        builder = builder.var(name, value);
    }
    let eco = match builder.start().await {
        Ok(eco) => Arc::new(eco),
        Err(e) => {
            return not_started(
                scenario,
                format!(
                    "its own ecosystem did not start (a scenario that changes what every run shares gets one): {}",
                    error_chain(&e)
                ),
            )
        }
    };
    let own = OwnEcosystem {
        run_id: eco.run_id().to_owned(),
        start_ms: started.elapsed().as_secs_f64() * 1000.0,
        logs: eco.logs_dir().display().to_string(),
        vars,
    };
    let mut report = match Runner::new(Arc::clone(&eco)).await {
        Ok(runner) => runner.run_now(scenario).await,
        Err(e) => not_started(scenario, e.to_string()),
    };
    report.own_ecosystem = Some(own);
    stop(eco).await;
    report
}

/// Stops an ecosystem off the runtime's threads where it is still shared
/// (a task of its runner not yet ended), else in place.
async fn stop(eco: Arc<Ecosystem>) {
    match Arc::try_unwrap(eco) {
        Ok(mut eco) => eco.shutdown().await,
        Err(shared) => {
            // Its drop tears down, blocking: not on a runtime thread.
            let _ = tokio::task::spawn_blocking(move || drop(shared)).await;
        }
    }
}

/// The failed report of a scenario whose ecosystem could not be had.
fn not_started(scenario: &Scenario, message: String) -> ScenarioReport {
    let mut report = super::skipped(scenario, String::new());
    report.status = Status::Failed;
    report.skip_reason = None;
    report.failure = Some(Failure {
        location: super::location(&scenario.file, scenario.name_pos.line),
        message,
        ..Failure::default()
    });
    report
}

/// A scenario's name as a directory name: `[`, `=`, `/` and the like
/// become `-` (a data-driven case is `name[row]`).
fn dir_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    while out.ends_with('-') {
        out.pop();
    }
    if out.is_empty() || out.starts_with('.') {
        out.insert(0, '_');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_case_name_becomes_one_directory() {
        assert_eq!(dir_name("circuit-breaker"), "circuit-breaker");
        assert_eq!(
            dir_name("matrix[app=crm-web,path=/leads]"),
            "matrix-app-crm-web-path--leads"
        );
        assert_eq!(dir_name(".."), "_..");
        assert_eq!(dir_name("/"), "_");
    }

    #[tokio::test]
    async fn an_ecosystem_that_does_not_start_fails_the_scenario_naming_why() {
        let scenario = crate::scenario::parse_str(
            std::path::Path::new("kill.yaml"),
            "name: kill\nsteps:\n  - chaos: { kill: worker }\n",
        )
        .expect("a scenario");
        let dir = tempfile::tempdir().expect("a directory");
        let recipe = EcosystemRecipe {
            file: dir.path().join("missing.toml"),
            logs: dir.path().join("logs"),
            tls: ClientTls::default(),
            defects: String::new(),
            otlp_forward: None,
        };
        let report = run_on_own(&recipe, &scenario).await;
        assert_eq!(report.status, Status::Failed);
        assert!(report.own_ecosystem.is_none());
        let failure = report.failure.expect("a failure");
        assert_eq!(failure.location, "kill.yaml:1");
        assert!(
            failure
                .message
                .starts_with("its own ecosystem did not start")
                && failure.message.contains("missing.toml"),
            "{}",
            failure.message
        );
    }

    #[test]
    fn only_the_process_runtime_gives_own_ecosystems() {
        assert!(runtime_gives_own(Runtime::Process));
        for r in [Runtime::Docker, Runtime::External, Runtime::Auto] {
            assert!(!runtime_gives_own(r), "{r:?}");
        }
    }
}
