//! The scenario runner: executes [`Scenario`]s against a running
//! [`Ecosystem`] and reports what happened ([`ScenarioReport`]).
//!
//! One [`Runner`] serves many runs at once. Each run gets fresh tenants
//! (created through the services' `POST /admin/tenants`), its own values
//! and WebSocket connections, and a correlation-id prefix; so scenarios run
//! in parallel on one ecosystem without seeing each other. Scenarios that
//! change shared state (chaos, mock faults, `exclusive: true`) take the
//! runner's gate exclusively and run alone.
//!
//! Where the parts are:
//! - the step kinds themselves are in `scenario/kinds/`, one module each;
//!   they run against a [`StepCx`] (`cx`), the part of a run they may use;
//! - `interp`: `${...}` values; `check`: subset matching, diffs, JSONPath;
//! - `ws`: the run's WebSocket connections; `sql`: queries with bound
//!   arguments; `queue`: the platform's Redis queues;
//! - `observe`: what the run saw happen (bus events, mock calls), for the
//!   sequence diagram and to wake `eventually` without fixed polling;
//! - `output`: a failure as text for a terminal.

pub(crate) mod check;
mod cx;
mod interp;
pub(crate) mod observe;
mod ops;
mod output;
mod own;
pub(crate) mod queue;
mod sql;
mod suite;
pub(crate) mod ws;

use crate::trace::TracePrefix;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

pub(crate) use cx::StepCx;
pub(crate) use interp::Values;
pub(crate) use observe::Call;
pub use output::failure_text;
pub(crate) use output::redact;
pub use own::{runtime_gives_own, EcosystemRecipe};
pub(crate) use sql::{query, SqlError};
pub(crate) use suite::build_binaries;
pub use suite::{witness_entry, Finished, Suite};
pub(crate) use ws::{Conn, Opener};

use super::model::{Need, Scenario, Step};
use crate::env::{error_chain, Ecosystem, Kind};
use crate::platform::{Platform, PlatformError, TENANT_SERVICE};
use crate::report::{Failure, Message, ScenarioReport, Section, Status, StepReport};
use interp::Tenant;

/// A scenario's deadline when it sets none.
pub const DEFAULT_SCENARIO_TIMEOUT: Duration = Duration::from_secs(120);
/// A step's deadline when it sets none (its own `within`/`for` adds to it).
pub const DEFAULT_STEP_TIMEOUT: Duration = Duration::from_secs(30);
/// Teardown steps and clean-up get this long after a failure or timeout.
const TEARDOWN_TIMEOUT: Duration = Duration::from_secs(60);
/// Log lines of each involved component shown with a failure.
const LOG_LINES: usize = 25;

/// Why a runner could not be made.
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    #[error("cannot run scenarios: {0}")]
    Setup(String),
}

/// Runs scenarios against one ecosystem; share it (`Arc`) between runs.
#[derive(Debug)]
pub struct Runner {
    eco: Arc<Ecosystem>,
    http: reqwest::Client,
    platform: Platform,
    pg: Result<sqlx::PgPool, String>,
    redis: Result<redis::aio::MultiplexedConnection, String>,
    bus: observe::Bus,
    /// Read by ordinary runs, written by runs that need the ecosystem alone.
    gate: tokio::sync::RwLock<()>,
    components: BTreeMap<String, String>,
    peers: BTreeMap<String, String>,
    /// How to start an ecosystem of its own for a scenario that needs the
    /// ecosystem alone; `None`: it runs alone on this one.
    own: Option<EcosystemRecipe>,
}

impl Runner {
    /// A runner on `eco`. Postgres and Redis are optional (an external
    /// deployment may not expose them): steps that need them fail saying so.
    pub async fn new(eco: Arc<Ecosystem>) -> Result<Runner, RunnerError> {
        let platform =
            Platform::from_ecosystem(&eco).map_err(|e| RunnerError::Setup(error_chain(&e)))?;
        let http = eco
            .tls()
            .http()
            .timeout(DEFAULT_STEP_TIMEOUT)
            .user_agent("tekup-harness")
            .build()
            .map_err(|e| RunnerError::Setup(format!("HTTP client: {e}")))?;
        let pg = eco.postgres_pool().await.map_err(|e| error_chain(&e));
        let redis = eco.redis().await.map_err(|e| error_chain(&e));
        let bus = observe::Bus::start(&eco).await;
        let components = eco
            .components()
            .filter_map(|c| Some((c.name().to_owned(), c.url()?)))
            .collect();
        let peers = eco
            .components()
            .filter_map(|c| Some((c.name().to_owned(), eco.peer_url(c.name()).ok()?)))
            .collect();
        Ok(Runner {
            eco,
            http,
            platform,
            pg,
            redis,
            bus,
            gate: tokio::sync::RwLock::new(()),
            components,
            peers,
            own: None,
        })
    }

    /// Gives every scenario that needs the ecosystem alone an ecosystem of
    /// its own, started from `recipe` (with this one's runtime) and stopped
    /// when it ends, so it runs beside the others instead of alone. Only
    /// where the runtime starts one cheaply ([`runtime_gives_own`]);
    /// elsewhere the runner is left as it is.
    #[must_use]
    pub fn with_own_ecosystems(mut self, recipe: EcosystemRecipe) -> Self {
        if runtime_gives_own(self.eco.runtime()) {
            self.own = Some(recipe);
        }
        self
    }

    /// Whether a scenario that needs the ecosystem alone gets one of its
    /// own (see [`Runner::with_own_ecosystems`]) rather than waiting for the
    /// others and running alone.
    pub fn gives_own_ecosystems(&self) -> bool {
        self.own.is_some()
    }

    /// The ecosystem the runner uses.
    pub fn ecosystem(&self) -> &Ecosystem {
        &self.eco
    }

    /// Runs one scenario to its end (teardown and clean-up included) and
    /// reports it. Never panics on a failing system: failures are data.
    /// A scenario with a step the ecosystem cannot serve (see
    /// [`Runner::unmet`]) is skipped with the reason, not run.
    pub async fn run(&self, scenario: &Scenario) -> ScenarioReport {
        if let Some(why) = self.skipped_by_author(scenario) {
            return skipped(scenario, why);
        }
        if let Some(why) = self.unmet(scenario) {
            return skipped(scenario, why);
        }
        if needs_ecosystem_alone(scenario) {
            if let Some(recipe) = &self.own {
                return own::run_on_own(recipe, scenario).await;
            }
            let _alone = self.gate.write().await;
            self.run_now(scenario).await
        } else {
            let _shared = self.gate.read().await;
            self.run_now(scenario).await
        }
    }

    /// Why the ecosystem cannot run `scenario` (`None` when it can): the
    /// first step whose [`StepKind::needs`] it does not meet. What a
    /// runtime offers decides: an external deployment gives the database,
    /// Redis and the mocks only when its file names them, and never its
    /// components to kill; links exist only under the process runtime.
    pub fn unmet(&self, scenario: &Scenario) -> Option<String> {
        scenario.run_order().enumerate().find_map(|(i, step)| {
            let why = self.unmet_need(&step.kind.needs()?)?;
            Some(format!(
                "step {} `{}` ({}) {why}",
                i + 1,
                step.kind.name(),
                step.location()
            ))
        })
    }

    /// Why the scenario's `skip-if` holds here (`None` when it does not):
    /// its reason, and the condition that held.
    pub fn skipped_by_author(&self, scenario: &Scenario) -> Option<String> {
        let skip = scenario.skip_if.as_ref()?;
        let runtime = self.eco.runtime().as_str();
        let held = if skip.runtimes.iter().any(|r| r == runtime) {
            format!("the runtime is {runtime}")
        } else {
            skip.lacks.iter().find_map(|need| self.unmet_need(need))?
        };
        Some(format!(
            "{} (skip-if at {}: {held})",
            skip.because,
            location(&scenario.file, skip.pos.line)
        ))
    }

    fn unmet_need(&self, need: &Need) -> Option<String> {
        let eco = &*self.eco;
        let give = |kind: Kind, what: &str| -> Option<String> {
            if eco.offers(kind) {
                return None;
            }
            let name = eco
                .components()
                .find(|c| c.kind() == kind)
                .map_or_else(|| kind.to_string(), |c| c.name().to_owned());
            Some(format!(
                "needs {what}; give `component.{name}.url` in the external file"
            ))
        };
        match need {
            Need::Database => give(Kind::Postgres, "the database"),
            Need::Redis => give(Kind::Redis, "Redis"),
            Need::Mock(mock) => match eco.component(mock) {
                Ok(c) if !c.offered() => Some(format!(
                    "needs the admin API of the mock `{mock}`; give `component.{mock}.url` in the external file"
                )),
                // An unknown mock is the scenario's error: the step fails naming it.
                _ => None,
            },
            Need::Faults => eco
                .faults_unavailable()
                .map(|why| format!("needs to kill, pause or restart a component: {why}")),
            Need::Links => eco
                .links_unavailable()
                .map(|why| format!("needs the fault proxies on the links: {why}")),
            Need::Traces => eco
                .traces_unavailable()
                .map(|why| format!("needs the components' spans: {why}")),
        }
    }

    async fn run_now(&self, scenario: &Scenario) -> ScenarioReport {
        let mut run = Run::new(self, scenario);
        let started = Instant::now();
        let deadline = scenario.timeout.unwrap_or(DEFAULT_SCENARIO_TIMEOUT);
        let main = tokio::time::timeout(deadline, run.main()).await;
        if main.is_err() {
            let at = run.current.clone();
            run.fail(
                at.as_ref().map(|(i, _)| *i),
                at.map_or_else(
                    || location(&scenario.file, scenario.name_pos.line),
                    |(_, l)| l,
                ),
                format!("the scenario did not finish within its timeout of {deadline:?}"),
                StepError::default(),
            );
        }
        let _ = tokio::time::timeout(TEARDOWN_TIMEOUT, run.finish()).await;
        run.report(started.elapsed()).await
    }
}

/// The report of a scenario not run, and why.
fn skipped(scenario: &Scenario, why: String) -> ScenarioReport {
    ScenarioReport {
        name: scenario.name.clone(),
        file: scenario.file.display().to_string(),
        tags: scenario.tags.clone(),
        status: Status::Skipped,
        duration_ms: 0.0,
        service_ms: 0.0,
        tenants: BTreeMap::new(),
        steps: Vec::new(),
        failure: None,
        skip_reason: Some(why),
        messages: Vec::new(),
        spans: Vec::new(),
        own_ecosystem: None,
    }
}

/// Whether a scenario changes what other scenarios share: faults on mocks,
/// chaos, settings of its own ecosystem (`own-ecosystem`), or it says so.
pub fn needs_ecosystem_alone(scenario: &Scenario) -> bool {
    scenario.exclusive
        || scenario.own_ecosystem.is_some()
        || scenario.run_order().any(|s| s.kind.alone())
}

/// Offsets of a run's observations from its start.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    started: Instant,
    wall: chrono::DateTime<chrono::Utc>,
}

impl Clock {
    pub(crate) fn start() -> Clock {
        Clock {
            started: Instant::now(),
            wall: chrono::Utc::now(),
        }
    }

    /// Milliseconds since the run started.
    pub(crate) fn now_ms(&self) -> f64 {
        self.started.elapsed().as_secs_f64() * 1000.0
    }

    /// A wall-clock time as milliseconds since the run started.
    pub(crate) fn wall_ms(&self, t: chrono::DateTime<chrono::Utc>) -> f64 {
        (t - self.wall).num_microseconds().unwrap_or(0) as f64 / 1000.0
    }
}

/// Why a step failed: what, the diff, the exchange that showed it.
#[derive(Debug, Default, Clone)]
pub(crate) struct StepError {
    pub(crate) message: String,
    pub(crate) diff: Option<String>,
    pub(crate) request: Option<String>,
    pub(crate) response: Option<String>,
}

impl From<String> for StepError {
    fn from(message: String) -> Self {
        StepError {
            message,
            ..StepError::default()
        }
    }
}

/// What a run cleans up at its end, whatever happened.
#[derive(Debug, Default)]
pub(crate) struct Cleanup {
    /// Toxics were put on links: every link is healed at the end.
    pub(crate) links: bool,
    pub(crate) killed: BTreeSet<String>,
    pub(crate) paused: BTreeSet<String>,
    pub(crate) faulted_mocks: BTreeSet<String>,
}

/// One scenario's run: its values, connections and observations.
pub(crate) struct Run<'r> {
    runner: &'r Runner,
    scenario: &'r Scenario,
    /// Prefix of every correlation id the run sends.
    prefix: String,
    /// Prefix of the trace id of every request the run sends.
    trace: TracePrefix,
    values: Values,
    conns: BTreeMap<String, ws::Conn>,
    clock: Clock,
    messages: Arc<Mutex<Vec<Message>>>,
    /// Notified when something the run can observe happened.
    changed: Arc<Notify>,
    steps: Vec<StepReport>,
    /// Time spent waiting on the system during the current step.
    service: Duration,
    /// Total of `service` over the run.
    service_total: Duration,
    requests: usize,
    /// The step running now: index and `file:line`.
    current: Option<(usize, String)>,
    /// A short result to append to the step's label (`→ 201`).
    note: Option<String>,
    failure: Option<Failure>,
    involved: BTreeSet<String>,
    cleanup: Cleanup,
    bus_watch: Option<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for Run<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Run")
            .field("scenario", &self.scenario.name)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl<'r> Run<'r> {
    fn new(runner: &'r Runner, scenario: &'r Scenario) -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string();
        Run {
            runner,
            scenario,
            prefix: format!("tkh-{}", &id[..10]),
            trace: TracePrefix::random(),
            values: Values {
                components: runner.components.clone(),
                peers: runner.peers.clone(),
                ecosystem: runner.eco.file().vars.clone(),
                declared: scenario.secrets.clone(),
                ..Values::default()
            },
            conns: BTreeMap::new(),
            clock: Clock::start(),
            messages: Arc::new(Mutex::new(Vec::new())),
            changed: Arc::new(Notify::new()),
            steps: Vec::new(),
            service: Duration::ZERO,
            service_total: Duration::ZERO,
            requests: 0,
            current: None,
            note: None,
            failure: None,
            involved: BTreeSet::new(),
            cleanup: Cleanup::default(),
            bus_watch: None,
        }
    }

    /// Tenants, vars, then setup, included and main steps; stops at the first failure.
    async fn main(&mut self) {
        if let Err(e) = self.create_tenants().await {
            let at = location(&self.scenario.file, self.scenario.name_pos.line);
            self.fail(None, at, e.message.clone(), e);
            return;
        }
        let ids: BTreeSet<String> = self.values.tenants.values().map(|t| t.id.clone()).collect();
        self.bus_watch = Some(self.runner.bus.watch(
            ids,
            Arc::clone(&self.messages),
            Arc::clone(&self.changed),
            self.clock,
        ));
        for (name, value) in &self.scenario.vars {
            match self.values.json(value) {
                Ok(v) => {
                    self.values.saved.insert(name.clone(), v);
                }
                Err(e) => {
                    let at = location(&self.scenario.file, self.scenario.name_pos.line);
                    self.fail(None, at, format!("var `{name}`: {e}"), StepError::default());
                    return;
                }
            }
        }
        let scenario = self.scenario;
        let parts = [(Section::Setup, scenario.setup.iter().collect::<Vec<_>>())]
            .into_iter()
            .chain([(
                Section::Include,
                scenario
                    .include
                    .iter()
                    .flat_map(|i| i.steps.iter())
                    .collect(),
            )])
            .chain([(Section::Steps, scenario.steps.iter().collect())]);
        for (section, steps) in parts {
            for step in steps {
                if !self.step(section, step).await {
                    return;
                }
            }
        }
    }

    /// Teardown steps (also after a failure), then the run's clean-up.
    async fn finish(&mut self) {
        let scenario = self.scenario;
        if !self.values.tenants.is_empty() || scenario.tenants.is_empty() {
            for step in &scenario.teardown {
                if !self.step(Section::Teardown, step).await {
                    break;
                }
            }
        }
        self.restore().await;
        self.conns.clear();
    }

    /// Runs one step with its deadline; records it; `false` when it failed.
    async fn step(&mut self, section: Section, step: &Step) -> bool {
        let index = self.steps.len() + 1;
        let at = step.location();
        self.current = Some((index, at.clone()));
        self.service = Duration::ZERO;
        self.note = None;
        let started_ms = self.clock.now_ms();
        let started = Instant::now();
        let limit = step.timeout.unwrap_or(DEFAULT_STEP_TIMEOUT) + step.kind.natural_wait();
        let (result, attempts) = match tokio::time::timeout(limit, self.execute(step)).await {
            Ok(r) => r,
            Err(_) => (
                Err(StepError::from(format!(
                    "the step did not finish within {limit:?}{}",
                    if step.timeout.is_some() {
                        " (its `timeout`)"
                    } else {
                        ""
                    }
                ))),
                1,
            ),
        };
        let status = if result.is_ok() {
            Status::Passed
        } else {
            Status::Failed
        };
        let mut label = step.kind.label();
        if let Some(note) = self.note.take() {
            label.push_str(" → ");
            label.push_str(&note);
        }
        self.service_total += self.service;
        self.steps.push(StepReport {
            index,
            section,
            kind: step.kind.name().to_owned(),
            name: step.name.clone(),
            label,
            location: at.clone(),
            status,
            started_ms,
            duration_ms: ms(started.elapsed()),
            service_ms: ms(self.service),
            attempts,
        });
        match result {
            Ok(()) => true,
            Err(e) => {
                let message = match &step.name {
                    Some(name) => format!("{name}: {}", e.message),
                    None => e.message.clone(),
                };
                self.fail(Some(index), at, message, e);
                if let Some(f) = self.failure.as_mut().filter(|f| f.step == Some(index)) {
                    f.because.clone_from(&step.because);
                }
                false
            }
        }
    }

    /// Runs a step against its context: the result and the attempts it took.
    async fn execute(&mut self, step: &Step) -> (Result<(), StepError>, u32) {
        let mut cx = self.step_cx();
        let result = step.kind.run(&mut cx).await;
        (result, cx.attempts)
    }

    /// Creates a fresh tenant for every name of `tenants:`.
    async fn create_tenants(&mut self) -> Result<(), StepError> {
        for name in &self.scenario.tenants {
            let sent = Instant::now();
            let made = self.runner.platform.create_tenant(name).await;
            self.service += sent.elapsed();
            let made = made.map_err(|e| match e {
                PlatformError::UnknownService(_) => StepError::from(format!(
                    "the scenario declares tenants but the ecosystem has no `{TENANT_SERVICE}` to create them"
                )),
                e => StepError::from(error_chain(&e)),
            })?;
            self.values.tenants.insert(
                name.clone(),
                Tenant {
                    id: made.id,
                    key: made.key,
                },
            );
        }
        self.service_total += self.service;
        self.service = Duration::ZERO;
        Ok(())
    }

    /// Records the run's failure (the first one wins; teardown failures
    /// after a failure are kept in the step list only).
    fn fail(&mut self, step: Option<usize>, at: String, message: String, e: StepError) {
        if self.failure.is_some() {
            return;
        }
        let secrets = self.values.secrets();
        let ws_events = self
            .conns
            .iter()
            .map(|(name, c)| {
                let frames = c
                    .received()
                    .iter()
                    .map(|f| output::redact(f, &secrets))
                    .collect();
                (name.clone(), frames)
            })
            .collect();
        self.failure = Some(Failure {
            step,
            location: at,
            message: output::redact(&message, &secrets),
            because: None,
            diff: e.diff.map(|d| output::redact(&d, &secrets)),
            request: e.request.map(|r| output::redact(&r, &secrets)),
            response: e.response.map(|r| output::redact(&r, &secrets)),
            ws_events,
            logs: BTreeMap::new(),
        });
    }

    /// Puts back what the run broke: killed and paused components, mock faults.
    async fn restore(&mut self) {
        let cleanup = std::mem::take(&mut self.cleanup);
        for name in &cleanup.paused {
            if let Ok(c) = self.runner.eco.component(name) {
                if let Err(e) = c.resume().await {
                    tracing::warn!(component = %name, "resume after the scenario: {}", error_chain(&e));
                }
            }
        }
        for name in &cleanup.killed {
            if let Ok(c) = self.runner.eco.component(name) {
                if let Err(e) = c.restart().await {
                    tracing::warn!(component = %name, "restart after the scenario: {}", error_chain(&e));
                }
            }
        }
        if cleanup.links {
            if let Err(e) = self.runner.eco.reset_links() {
                tracing::warn!("healing the links after the scenario: {}", error_chain(&e));
            }
        }
        let scope = crate::scenario::kinds::mock::run_scope(&self.prefix);
        for mock in &cleanup.faulted_mocks {
            if let Ok(m) = self.runner.eco.mock(mock) {
                if let Err(e) = m.clear_scoped_faults(&self.runner.http, &scope).await {
                    tracing::warn!(mock = %mock, "removing the scenario's faults: {e}");
                }
            }
        }
    }

    /// The report, with the failure's evidence gathered now.
    async fn report(mut self, elapsed: Duration) -> ScenarioReport {
        if let Some(handle) = self.bus_watch.take() {
            handle.abort();
        }
        let journal = observe::mock_calls(self.runner, &self.prefix, self.clock).await;
        let mut messages =
            std::mem::take(&mut *self.messages.lock().unwrap_or_else(PoisonError::into_inner));
        messages.extend(journal);
        messages.sort_by(|a, b| a.at_ms.total_cmp(&b.at_ms));
        for m in &messages {
            for p in [&m.from, &m.to] {
                if self.runner.components.contains_key(p.as_str()) {
                    self.involved.insert(p.clone());
                }
            }
        }
        let status = if self.failure.is_some() {
            Status::Failed
        } else {
            Status::Passed
        };
        if let Some(failure) = &mut self.failure {
            for name in &self.involved {
                if let Ok(c) = self.runner.eco.component(name) {
                    let tail = c.log_tail(LOG_LINES).await;
                    if !tail.trim().is_empty() {
                        let tail = output::strip_ansi(&tail);
                        failure
                            .logs
                            .insert(name.clone(), output::redact(&tail, &self.values.secrets()));
                    }
                }
            }
        }
        let mut report = ScenarioReport {
            name: self.scenario.name.clone(),
            file: self.scenario.file.display().to_string(),
            tags: self.scenario.tags.clone(),
            status,
            duration_ms: ms(elapsed),
            service_ms: ms(self.service_total),
            tenants: self
                .values
                .tenants
                .iter()
                .map(|(k, t)| (k.clone(), t.id.clone()))
                .collect(),
            steps: self.steps,
            failure: self.failure,
            skip_reason: None,
            messages,
            spans: self.runner.eco.traces().of_run(&self.trace),
            own_ecosystem: None,
        };
        // Every writer (console, JUnit, JSON, HTML) renders this report:
        // one pass here, with every secret the run came to know.
        output::redact_report(&mut report, &self.values.secrets());
        report
    }
}

/// `file:line`.
fn location(file: &std::path::Path, line: usize) -> String {
    format!("{}:{line}", file.display())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
