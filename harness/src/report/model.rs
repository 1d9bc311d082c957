//! What a run observed, as data: the scenario runner fills it in, the
//! writers (JUnit XML, JSON, HTML) render it. Durations are milliseconds
//! (`f64`) so the JSON report is readable without a schema.

use std::collections::BTreeMap;

use serde::Serialize;

/// One run of the scenario runner (one `tekup-harness run` or one test binary).
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunReport {
    /// When the run started, RFC 3339 (UTC).
    pub started_at: String,
    /// Wall time of the whole run.
    pub duration_ms: f64,
    /// The runtime the ecosystem ran on (`process`, `docker`, `external`).
    pub runtime: String,
    /// How many scenarios ran at once.
    pub jobs: usize,
    pub scenarios: Vec<ScenarioReport>,
}

impl RunReport {
    /// Scenarios that passed.
    pub fn passed(&self) -> usize {
        self.count(Status::Passed)
    }

    /// Scenarios that failed.
    pub fn failed(&self) -> usize {
        self.count(Status::Failed)
    }

    /// Scenarios that were not run (filtered out or skipped after a setup failure).
    pub fn skipped(&self) -> usize {
        self.count(Status::Skipped)
    }

    fn count(&self, status: Status) -> usize {
        self.scenarios.iter().filter(|s| s.status == status).count()
    }
}

/// How a scenario or a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Passed,
    Failed,
    Skipped,
}

/// One scenario file's run.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScenarioReport {
    pub name: String,
    /// The file, as given on the command line or relative to the workspace.
    pub file: String,
    pub tags: Vec<String>,
    pub status: Status,
    pub duration_ms: f64,
    /// Of `duration_ms`, the time spent waiting on the system under test
    /// (HTTP round trips, queries, WebSocket waits); the rest is the engine.
    pub service_ms: f64,
    /// Scenario tenant name → the fresh tenant id it ran as.
    pub tenants: BTreeMap<String, String>,
    pub steps: Vec<StepReport>,
    /// Set when `status` is failed.
    pub failure: Option<Failure>,
    /// Why it did not run, when `status` is skipped (`skipReason` in JSON).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skip_reason: Option<String>,
    /// What was seen to happen across the ecosystem, in time order: the
    /// source of the sequence diagram.
    pub messages: Vec<Message>,
    /// The spans of the run's traces that had arrived when it ended,
    /// ordered by start (see [`crate::trace`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub spans: Vec<crate::trace::Span>,
    /// The ecosystem it ran on, when not the run's shared one: a scenario
    /// that changes what every run shares gets one of its own (see
    /// [`crate::scenario::run::Runner::with_own_ecosystems`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub own_ecosystem: Option<OwnEcosystem>,
}

/// The ecosystem a scenario had to itself.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OwnEcosystem {
    /// Its run id (in its temporary directory's and its tenants' names).
    pub run_id: String,
    /// How long it took to start, before the scenario's own time.
    pub start_ms: f64,
    /// Where its components' logs are.
    pub logs: String,
    /// The ecosystem file's `[vars]` set otherwise for it (the scenario's
    /// `own-ecosystem`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub vars: BTreeMap<String, String>,
}

/// Which part of the scenario a step belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Section {
    Setup,
    Include,
    Steps,
    Teardown,
}

/// One executed step.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StepReport {
    /// 1-based, in run order.
    pub index: usize,
    pub section: Section,
    /// The step kind (`http`, `ws`, ...).
    pub kind: String,
    /// The step's `name:`, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// One line saying what it did: `POST flow-api /leads → 201`.
    pub label: String,
    /// `file:line` of the step.
    pub location: String,
    pub status: Status,
    /// Offset of the step's start from the scenario's start.
    pub started_ms: f64,
    pub duration_ms: f64,
    /// Time spent waiting on the system under test.
    pub service_ms: f64,
    /// Attempts made (more than 1 under `eventually`).
    pub attempts: u32,
}

impl StepReport {
    /// The step as shown to people: its name and what it did
    /// (`create the lead: POST flow-api /leads → 201`), or only the latter.
    pub fn title(&self) -> String {
        match &self.name {
            Some(name) => format!("{name}: {}", self.label),
            None => self.label.clone(),
        }
    }
}

/// Why a scenario failed, with what a user needs to act on it.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Failure {
    /// Index of the failed step (`StepReport::index`), if a step failed.
    pub step: Option<usize>,
    /// `file:line` of the failed step, or of the scenario.
    pub location: String,
    pub message: String,
    /// The failed step's `because:`: why the check matters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub because: Option<String>,
    /// Expected vs got, as a unified diff (`-` expected, `+` got).
    pub diff: Option<String>,
    /// The last request, with secrets and API keys redacted.
    pub request: Option<String>,
    /// Its response (status, headers, body).
    pub response: Option<String>,
    /// WebSocket connection name → the events it did receive.
    pub ws_events: BTreeMap<String, Vec<String>>,
    /// Component name → its last log lines.
    pub logs: BTreeMap<String, String>,
}

/// What kind of message a [`Message`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MessageKind {
    /// An HTTP request (harness → service, service → service or mock).
    Request,
    /// The answer to a request.
    Response,
    /// An event published on the bus or delivered over a WebSocket.
    Event,
    /// A job put on or taken off a queue.
    Job,
    /// A database query.
    Query,
    /// A fault injected by the harness.
    Fault,
}

impl MessageKind {
    /// Every kind, in the order the legend lists them.
    pub const ALL: [MessageKind; 6] = [
        MessageKind::Request,
        MessageKind::Response,
        MessageKind::Event,
        MessageKind::Job,
        MessageKind::Query,
        MessageKind::Fault,
    ];
}

/// One arrow of the sequence diagram.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    /// Offset from the scenario's start.
    pub at_ms: f64,
    /// Participant names: `harness`, a component (`flow-api`, `redis`, `stripe`), or `ws:<conn>`.
    pub from: String,
    pub to: String,
    pub kind: MessageKind,
    /// Short text on the arrow: `POST /leads`, `201`, `LEAD_CREATED`.
    pub label: String,
    /// The correlation id that ties it to a harness request, when known.
    pub correlation_id: Option<String>,
}
