//! The scenario format as data: what a runner executes.
//!
//! A scenario is a list of [`Step`]s; what a step does is a [`StepKind`],
//! one variant per kind, each kind's type defined in its own module under
//! `scenario/kinds/` and re-exported here. JSON-like values
//! (`json`, `data`, `args`, rows) are kept as [`serde_json::Value`] with their
//! `${...}` templates unexpanded; the runner interpolates them.

use std::path::PathBuf;
use std::time::Duration;

pub use super::yaml::Pos;

pub use super::kinds::chaos::{ChaosStep, Toxic};
pub use super::kinds::eventually::EventuallyStep;
pub use super::kinds::http::{Body, HttpExpect, HttpStep, Part, PartContent, Request};
pub use super::kinds::mock::{
    MockAnswer, MockFault, MockParts, MockRequest, MockResponse, MockStep,
};
pub use super::kinds::redis::RedisStep;
pub use super::kinds::sql::{SqlAs, SqlStep};
pub use super::kinds::stripe::{StripeAction, StripeStep};
pub use super::kinds::trace::{
    Select as TraceSelect, Selection as TraceSelection, StatusWant, TraceStep,
};
pub use super::kinds::ws::WsStep;
pub use super::kinds::{StepKind, STEP_KINDS};

/// One scenario file.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    pub name: String,
    /// Where `name` is written (duplicate names are reported there).
    pub name_pos: Pos,
    /// Where the scenario was read from.
    pub file: PathBuf,
    pub tags: Vec<String>,
    /// Fresh tenants created for each run (so scenarios can run in parallel).
    pub tenants: Vec<String>,
    /// Values computed once per run (`${email}` fixed for the whole run), in order.
    pub vars: Vec<(String, serde_json::Value)>,
    /// Shared step files, resolved relative to the scenario file.
    pub include: Vec<Include>,
    /// Needs the ecosystem alone (chaos scenarios): one of its own, or alone on the shared one.
    pub exclusive: bool,
    /// `own-ecosystem:`: settings of the ecosystem of its own it asks for
    /// (which makes it need the ecosystem alone).
    pub own_ecosystem: Option<OwnSettings>,
    pub timeout: Option<Duration>,
    /// Values redacted from everything the run prints or writes (`secrets:`).
    pub secrets: Vec<Secret>,
    /// Run first; then the steps of the included files, then `steps`.
    pub setup: Vec<Step>,
    pub steps: Vec<Step>,
    /// Run last, also after a failure.
    pub teardown: Vec<Step>,
    /// `skip-if:`: when the scenario is not run, and why.
    pub skip_if: Option<SkipIf>,
    /// The cases of a data-driven file (`examples:` or `matrix:`), each a
    /// whole scenario named `name[row]`; empty for a plain file. The file's
    /// own fields are those of its first case, under the file's name: run
    /// the cases ([`Scenario::cases`]), never the file.
    pub cases: Vec<Scenario>,
}

/// `skip-if: { runtime: external, because: "..." }`: a scenario the
/// runner reports as skipped, with the reason, when any condition holds.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SkipIf {
    /// Where `skip-if` is written.
    pub pos: Pos,
    /// The runtimes (`process`, `docker`, `external`) it is skipped under.
    pub runtimes: Vec<String>,
    /// What the ecosystem must offer for it to run.
    pub lacks: Vec<Need>,
    /// Why, in the scenario author's words.
    pub because: String,
}

/// `own-ecosystem: { vars: { job-retry-spans: "lead-processing=4s" } }`:
/// entries of the ecosystem file's `[vars]` set otherwise on the ecosystem
/// of the scenario's own. They apply only there: where the scenario runs
/// alone on the shared ecosystem (docker, an external deployment,
/// `--no-own-ecosystems`), the file's values hold, so a scenario must pass
/// with either.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OwnSettings {
    /// Where `own-ecosystem` is written.
    pub pos: Pos,
    /// Name → the value the file's `[vars]` entry takes, as written (no
    /// `${...}`).
    pub vars: std::collections::BTreeMap<String, String>,
}

/// One entry of `secrets:`: what is redacted, in every encoding (see
/// `scenarios/README.md`).
#[derive(Debug, Clone, PartialEq)]
pub enum Secret {
    /// A `vars:` entry or a saved value, by name: its value when known.
    Name(String),
    /// A value (`{ value: "..." }`), a template expanded when the run starts
    /// (`{ value: "${env.SMTP_PASSWORD}" }`).
    Value(String),
}

/// A shared step file and its steps.
#[derive(Debug, Clone, PartialEq)]
pub struct Include {
    pub path: PathBuf,
    pub pos: Pos,
    pub steps: Vec<Step>,
}

impl Scenario {
    /// The test cases of the file: its `examples`/`matrix` cases, or the
    /// scenario itself.
    pub fn cases(&self) -> Vec<Scenario> {
        if self.cases.is_empty() {
            vec![self.clone()]
        } else {
            self.cases.clone()
        }
    }

    /// Every step in the order a run executes them.
    pub fn run_order(&self) -> impl Iterator<Item = &Step> {
        self.setup
            .iter()
            .chain(self.include.iter().flat_map(|i| i.steps.iter()))
            .chain(self.steps.iter())
            .chain(self.teardown.iter())
    }
}

/// One step and where it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// The file the step is in (an included file for included steps).
    pub file: PathBuf,
    /// Position of the step's kind key.
    pub pos: Pos,
    /// `timeout: 5s` beside the kind: the step fails when it takes longer.
    pub timeout: Option<Duration>,
    /// `name:` beside the kind: what the step is for, shown in progress,
    /// failures and reports.
    pub name: Option<String>,
    /// `because:` beside the kind: printed with the step's failure.
    pub because: Option<String>,
    pub kind: StepKind,
    /// The `use:` steps this step was expanded from, outermost first (empty
    /// for a step written in the scenario itself).
    pub via: Vec<Call>,
}

/// Where a `use:` step is written: the caller's file and the `use` key.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub file: PathBuf,
    pub pos: Pos,
}

impl Step {
    /// `file:line` of the step, after the `file:line` of each `use:` it was
    /// expanded from: `s.yaml:12 → steps/create-deal.yaml:9`.
    pub fn location(&self) -> String {
        let mut out = String::new();
        for call in &self.via {
            out.push_str(&format!("{}:{} → ", call.file.display(), call.pos.line));
        }
        out.push_str(&format!("{}:{}", self.file.display(), self.pos.line));
        out
    }
}

/// What a step needs beyond the services' APIs (see [`StepKind::needs`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Need {
    /// The database, as its superuser (`sql`).
    Database,
    /// Redis (`redis`).
    Redis,
    /// The admin API of the named mock (`mock`).
    Mock(String),
    /// Killing, pausing or restarting components (`chaos` kill, pause, restart).
    Faults,
    /// The fault proxies on the links between components (`chaos` toxics, heal).
    Links,
    /// The components' spans, exported to the harness's receiver (`trace`).
    Traces,
}

impl Need {
    /// The names `skip-if: { lacks: ... }` gives the needs (`mock:NAME` for a mock).
    pub const NAMES: [&'static str; 6] = [
        "database",
        "redis",
        "faults",
        "links",
        "traces",
        "mock:NAME",
    ];

    /// The need a `skip-if` name stands for.
    pub fn parse(name: &str) -> Option<Need> {
        Some(match name {
            "database" => Need::Database,
            "redis" => Need::Redis,
            "faults" => Need::Faults,
            "links" => Need::Links,
            "traces" => Need::Traces,
            _ => Need::Mock(
                name.strip_prefix("mock:")
                    .filter(|m| !m.is_empty())?
                    .to_owned(),
            ),
        })
    }
}
