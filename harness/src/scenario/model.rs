//! The scenario format as data: what a runner executes.
//!
//! One enum, [`StepKind`], with one struct per kind: a runner adds one
//! `match` arm (or one trait impl per struct) per kind. JSON-like values
//! (`json`, `data`, `args`, rows) are kept as [`serde_json::Value`] with their
//! `${...}` templates unexpanded; the runner interpolates them.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

pub use super::yaml::Pos;

/// The step kinds, in the order the documentation lists them.
pub const STEP_KINDS: [&str; 8] = [
    "http",
    "ws",
    "eventually",
    "sql",
    "redis",
    "mock",
    "chaos",
    "sleep",
];

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
    /// Runs alone (chaos scenarios).
    pub exclusive: bool,
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

/// What a step does.
#[derive(Debug, Clone, PartialEq)]
#[expect(
    clippy::large_enum_variant,
    reason = "steps are decoded once per file and borrowed while they run, never moved in bulk"
)]
pub enum StepKind {
    Http(HttpStep),
    Ws(WsStep),
    Eventually(EventuallyStep),
    Sql(SqlStep),
    Redis(RedisStep),
    Mock(MockStep),
    Chaos(ChaosStep),
    Sleep(Duration),
}

impl StepKind {
    /// The key that names the kind in a file.
    pub fn name(&self) -> &'static str {
        match self {
            StepKind::Http(_) => "http",
            StepKind::Ws(_) => "ws",
            StepKind::Eventually(_) => "eventually",
            StepKind::Sql(_) => "sql",
            StepKind::Redis(_) => "redis",
            StepKind::Mock(_) => "mock",
            StepKind::Chaos(_) => "chaos",
            StepKind::Sleep(_) => "sleep",
        }
    }

    /// What the step needs of the ecosystem beyond the services' HTTP and
    /// WebSocket APIs (which every runtime offers); `None` for nothing
    /// more. The runner skips a scenario with a step whose need the
    /// ecosystem does not meet (an external deployment without a database
    /// DSN, say) rather than failing it.
    pub fn needs(&self) -> Option<Need> {
        match self {
            StepKind::Http(_) | StepKind::Ws(_) | StepKind::Sleep(_) => None,
            StepKind::Eventually(e) => e
                .step
                .kind
                .needs()
                .or_else(|| e.fail_fast_on.as_ref()?.kind.needs()),
            StepKind::Sql(_) => Some(Need::Database),
            StepKind::Redis(_) => Some(Need::Redis),
            StepKind::Mock(m) => Some(Need::Mock(m.mock().to_owned())),
            StepKind::Chaos(
                ChaosStep::Kill { .. } | ChaosStep::Pause { .. } | ChaosStep::Restart { .. },
            ) => Some(Need::Faults),
            StepKind::Chaos(ChaosStep::Toxic { .. } | ChaosStep::Heal { .. }) => Some(Need::Links),
        }
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
}

impl Need {
    /// The names `skip-if: { lacks: ... }` gives the needs (`mock:NAME` for a mock).
    pub const NAMES: [&'static str; 5] = ["database", "redis", "faults", "links", "mock:NAME"];

    /// The need a `skip-if` name stands for.
    pub fn parse(name: &str) -> Option<Need> {
        Some(match name {
            "database" => Need::Database,
            "redis" => Need::Redis,
            "faults" => Need::Faults,
            "links" => Need::Links,
            _ => Need::Mock(
                name.strip_prefix("mock:")
                    .filter(|m| !m.is_empty())?
                    .to_owned(),
            ),
        })
    }
}

/// A request to a service as a tenant's app, with expectations.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HttpStep {
    pub service: String,
    pub tenant: Option<String>,
    pub app: Option<String>,
    pub request: Request,
    pub expect: Option<HttpExpect>,
    /// Variable name → JSONPath into the response body (`$.id`).
    pub save: BTreeMap<String, String>,
}

/// A request line, headers and body.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// `query:` pairs in file order, appended URL-encoded to `path` (a list
    /// value gives the name once per item).
    pub query: Vec<(String, String)>,
    pub json: Option<serde_json::Value>,
    /// A body other than JSON (at most one of `json` and `body`).
    pub body: Option<Body>,
    pub headers: BTreeMap<String, String>,
    /// `cookies:` sent as one `cookie` header.
    pub cookies: Vec<(String, String)>,
}

/// A request body other than JSON.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    /// `form:`, sent as `application/x-www-form-urlencoded`.
    Form(Vec<(String, String)>),
    /// `multipart:`, sent as `multipart/form-data`.
    Multipart(Vec<Part>),
    /// `body:` with its `content-type:`, sent as written.
    Raw { text: String, content_type: String },
}

/// One part of a multipart body.
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    pub name: String,
    pub content: PartContent,
    pub filename: Option<String>,
    pub content_type: Option<String>,
}

/// Where a part's content comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum PartContent {
    /// Text written in the file (`${...}` expanded).
    Text(String),
    /// A file's bytes, the path resolved against the scenario file's directory.
    File(PathBuf),
}

/// What a response must be; `json` matches as a subset.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HttpExpect {
    pub status: Option<u16>,
    /// Header name → text (a trailing `*` matches a prefix) or operators
    /// (`{ $regex: ... }`, `$absent`), as JSON.
    pub headers: BTreeMap<String, serde_json::Value>,
    pub json: Option<serde_json::Value>,
    pub json_schema: Option<serde_json::Value>,
    /// Texts the body must contain (for bodies that are not JSON, e.g. `/metrics`).
    pub body_contains: Vec<String>,
}

/// A WebSocket action on a named connection.
#[derive(Debug, Clone, PartialEq)]
pub enum WsStep {
    /// Opens `name` to the gateway as `tenant`'s `app`.
    Connect {
        name: String,
        tenant: String,
        app: String,
    },
    /// An event of this type arrives within the deadline; `data` matches as a subset.
    Expect {
        name: String,
        event: String,
        within: Duration,
        data: Option<serde_json::Value>,
        /// Matched as a subset against the whole event (`priority`,
        /// `source`, `target`), or the whole frame for non-event frames.
        envelope: Option<serde_json::Value>,
    },
    /// Nothing (or no event of this type) arrives for the duration.
    ExpectNone {
        name: String,
        event: Option<String>,
        duration: Duration,
    },
    /// Sends an event on the connection.
    Send {
        name: String,
        event: String,
        data: Option<serde_json::Value>,
    },
}

/// Retries one inner step until it passes or the deadline passes.
#[derive(Debug, Clone, PartialEq)]
pub struct EventuallyStep {
    pub within: Duration,
    pub step: Box<Step>,
    /// `fail-fast-on:` a known-bad state: when this step passes while the
    /// inner one still fails, the retrying stops at once with a failure.
    pub fail_fast_on: Option<Box<Step>>,
    /// `holds-for:` once the inner step passes, it must keep passing for
    /// this long (checked again and again; the first failure fails it).
    pub holds_for: Option<Duration>,
}

/// Who a query runs as.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlAs {
    /// As the tenant (row-level security applies).
    Tenant(String),
    /// As the database owner.
    Admin,
}

/// A query and, optionally, the exact rows it must return.
#[derive(Debug, Clone, PartialEq)]
pub struct SqlStep {
    pub run_as: SqlAs,
    pub query: String,
    pub args: Vec<serde_json::Value>,
    pub expect: Option<Vec<Vec<serde_json::Value>>>,
    /// The query must fail with this SQLSTATE (`42501`) or message part.
    pub error: Option<String>,
}

/// A check on Redis.
#[derive(Debug, Clone, PartialEq)]
pub enum RedisStep {
    /// A queue's length (or its dead-letter queue's).
    QueueSize {
        queue: String,
        dead_letter: bool,
        size: u64,
    },
    /// A key exists (or not), optionally with a value.
    Key {
        key: String,
        exists: bool,
        value: Option<String>,
    },
    /// Adds a job to a queue as a service would (`XADD tekup:queue:<queue>`),
    /// e.g. a lead's `process-lead` job handed to the workers again, as the
    /// queue's at-least-once delivery may.
    Enqueue {
        queue: String,
        /// The job kind, e.g. `process-lead`.
        kind: String,
        /// One of the scenario's tenants.
        tenant: String,
        payload: serde_json::Value,
    },
}

/// A request as a mock matches it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MockRequest {
    pub method: Option<String>,
    pub path: Option<String>,
    pub json: Option<serde_json::Value>,
}

/// A canned response.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MockResponse {
    pub status: Option<u16>,
    pub json: Option<serde_json::Value>,
}

/// An action on one of the external API mocks.
#[derive(Debug, Clone, PartialEq)]
pub enum MockStep {
    /// The mock's journal holds matching requests (`times` of them, if
    /// given) that got the `answered` outcome.
    Expect {
        mock: String,
        request: MockRequest,
        answered: MockAnswer,
        times: Option<u32>,
    },
    /// No matching request reaches the mock for `period`, counted from the
    /// step's start: requests journaled before it do not count.
    ExpectNone {
        mock: String,
        request: MockRequest,
        period: Duration,
    },
    /// Matching requests get this response.
    Set {
        mock: String,
        request: MockRequest,
        respond: MockResponse,
    },
    /// The mock fails, `times` times (or until the scenario ends), on a
    /// `ratio` of the calls in scope (`method`, `path` prefix).
    Fault {
        mock: String,
        method: Option<String>,
        path: Option<String>,
        fault: MockFault,
        times: Option<u32>,
        ratio: Option<f64>,
    },
    /// Empties what the mock holds through its admin API.
    Clear { mock: String, parts: MockParts },
}

impl MockStep {
    /// The mock the step acts on.
    pub fn mock(&self) -> &str {
        match self {
            MockStep::Expect { mock, .. }
            | MockStep::ExpectNone { mock, .. }
            | MockStep::Set { mock, .. }
            | MockStep::Fault { mock, .. }
            | MockStep::Clear { mock, .. } => mock,
        }
    }
}

/// The outcome a journaled request got, for `mock: expect` to filter on.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MockAnswer {
    /// The status the mock answered with.
    pub status: Option<u16>,
    /// The fault injected into the call (`rate-limit`, `reset`, ...).
    pub fault: Option<String>,
}

/// What `mock: clear` empties (all three unless `only:` narrows it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MockParts {
    pub journal: bool,
    pub faults: bool,
    pub expectations: bool,
}

impl MockParts {
    /// The names `only:` takes.
    pub const NAMES: [&'static str; 3] = ["journal", "faults", "expectations"];

    /// Everything.
    pub const ALL: MockParts = MockParts {
        journal: true,
        faults: true,
        expectations: true,
    };
}

/// What a mock does instead of answering normally: each of the mocks'
/// fault kinds (`tekup_mocks::FaultKind`).
#[derive(Debug, Clone, PartialEq)]
pub enum MockFault {
    /// Answers normally after the delay.
    Latency(Duration),
    /// Answers with the status, in the API's own error shape or with `json`.
    Status {
        status: u16,
        json: Option<serde_json::Value>,
    },
    /// 429 with `Retry-After`.
    RateLimit { retry_after: Duration },
    /// Resets the connection without answering.
    Reset,
    /// A body cut short that does not parse.
    Malformed,
    /// Announces the full body, sends half of it, then closes the connection.
    Truncated,
    /// Sends nothing for the duration (`None`: until the mock shuts down).
    Stall(Option<Duration>),
}

/// A network fault on a link between two components, on the Toxiproxy
/// model (`harness/src/chaos`).
#[derive(Debug, Clone, PartialEq)]
pub enum Toxic {
    /// Data is delayed by `latency` ± `jitter`.
    Latency { latency: Duration, jitter: Duration },
    /// Data flows at most at `rate` KB/s.
    Bandwidth { rate: u64 },
    /// The close of a connection is delayed.
    SlowClose { delay: Duration },
    /// Data stops; the connection is closed after `timeout` (never when 0).
    Timeout { timeout: Duration },
    /// The connection is reset (TCP RST) after `timeout`.
    ResetPeer { timeout: Duration },
    /// Data is cut into pieces of about `average` ± `variation` bytes, `delay` apart.
    Slicer {
        average: u64,
        variation: u64,
        delay: Duration,
    },
    /// The connection is closed after `bytes` bytes.
    LimitData { bytes: u64 },
    /// The link is down: connections are refused and cut.
    Down,
}

impl Toxic {
    /// The names a file uses.
    pub const NAMES: [&'static str; 8] = [
        "latency",
        "bandwidth",
        "slow-close",
        "timeout",
        "reset-peer",
        "slicer",
        "limit-data",
        "down",
    ];
}

/// A fault on a component or a link.
#[derive(Debug, Clone, PartialEq)]
pub enum ChaosStep {
    Kill {
        component: String,
    },
    Pause {
        component: String,
        duration: Option<Duration>,
    },
    Restart {
        component: String,
    },
    /// Removes every toxic from a link and brings it up again.
    Heal {
        link: String,
    },
    Toxic {
        toxic: Toxic,
        /// `from->to`, e.g. `flow-api->redis`.
        link: String,
        /// `upstream` (from → to) or `downstream` (to → from, the default).
        upstream: bool,
        /// The share of connections it applies to (default 1).
        toxicity: Option<f64>,
        /// How long it stays; until the scenario ends when absent.
        duration: Option<Duration>,
    },
}
