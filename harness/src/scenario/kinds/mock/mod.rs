//! The `mock` step: the external API mocks through their admin API. A
//! scenario checks what its own run sent them (`expect`, `expect-none`),
//! sets canned answers (`set`), injects each of their fault kinds
//! (`fault`), and empties them (`clear`).
//!
//! Answers and faults are scoped to the run's own calls (by the prefix of
//! the correlation ids it sends, which the services pass on), so scenarios
//! with them run beside others. Two things still take the ecosystem alone:
//! a fault that fails every call until the scenario ends (no `times`), as
//! a service's circuit breaker counts failures of every caller and may
//! open for all of them; and clearing a mock's journal or expectations,
//! which are the mock's, not the run's.
//!
//! `decode.rs` reads the step, `run.rs` runs it.

mod decode;
mod run;

pub(crate) use run::run_scope;

use std::time::Duration;

use serde_json::{json, Value as Json};

use super::{KindDef, StepCx, StepError};
use crate::scenario::model::Need;
use crate::scenario::read::Cx;
use crate::scenario::schema::{self, Key};
use crate::scenario::vars::Scope;
use crate::scenario::yaml::Node;

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

impl MockFault {
    /// Whether a call hit by the fault fails (what a circuit breaker
    /// counts): a 5xx, a broken or unparseable answer, no answer.
    /// Latency, a 4xx and a rate limit answer.
    pub fn fails_calls(&self) -> bool {
        match self {
            MockFault::Status { status, .. } => *status >= 500,
            MockFault::Reset
            | MockFault::Malformed
            | MockFault::Truncated
            | MockFault::Stall(_) => true,
            MockFault::Latency(_) | MockFault::RateLimit { .. } => false,
        }
    }
}

/// The actions of a `mock` step, each with its keys.
const ACTIONS: [(&str, &[Key]); 5] = [
    (
        "expect",
        &[
            Key::new("expect", schema::text).help("The mock that must have received the calls."),
            Key::new("request", request_schema).help("Which calls count: method, exact path, a JSON body containing `json`."),
            Key::new("answered", answered_schema).help("Only calls that got this outcome count."),
            Key::new("times", schema::count).help("Exactly this many; at least one when left out."),
        ],
    ),
    (
        "expect-none",
        &[
            Key::new("expect-none", schema::text).help("The mock that must receive no matching call."),
            Key::new("request", request_schema),
            Key::new("for", schema::duration).required().help(
                "The window, counted from the step's start; calls journaled before it do not count.",
            ),
        ],
    ),
    (
        "set",
        &[
            Key::new("set", schema::text),
            Key::new("request", request_schema),
            Key::new("respond", respond_schema).required(),
        ],
    ),
    (
        "fault",
        &[
            Key::new("fault", schema::text).help("The mock that fails, until the scenario ends or `times` runs out."),
            Key::new("method", schema::text),
            Key::new("path", schema::text).help("A path prefix the fault applies to."),
            Key::new("status", schema::status).help("Answer with this status, in the API's own error shape."),
            Key::new("json", schema::any).help("The body of a `status` fault instead of the API's error shape."),
            Key::new("delay", schema::duration).help("Answer normally after this long."),
            Key::new("retry-after", schema::duration).help("With `status: 429`: the `Retry-After` header."),
            Key::new("reset", schema::flag).help("Reset the connection without answering."),
            Key::new("malformed", schema::flag).help("Answer with a body that does not parse."),
            Key::new("truncated", schema::flag).help("Announce the whole body, send half, close."),
            Key::new("stall", stall_schema).help("Send nothing for this long, or `forever`."),
            Key::new("times", schema::count),
            Key::new("ratio", schema::share).help("The share of the calls in scope that fail."),
        ],
    ),
    (
        "clear",
        &[
            Key::new("clear", schema::text).help("The mock whose journal, faults and expectations to empty."),
            Key::new("only", parts_schema),
        ],
    ),
];

/// The keys of the request a `mock` step is about.
const REQUEST: [Key; 3] = [
    Key::new("method", schema::text),
    Key::new("path", schema::text),
    Key::new("json", schema::any),
];

/// The keys of a `mock: set` answer.
const RESPOND: [Key; 2] = [
    Key::new("status", schema::status),
    Key::new("json", schema::any),
];

/// The keys of `answered` of a `mock: expect`.
const ANSWERED: [Key; 2] = [
    Key::new("status", schema::status),
    Key::new("fault", fault_names),
];

fn request_schema() -> Json {
    schema::object(&REQUEST)
}

fn respond_schema() -> Json {
    schema::object(&RESPOND)
}

fn answered_schema() -> Json {
    schema::object(&ANSWERED)
}

fn fault_names() -> Json {
    json!({ "enum": decode::FAULT_NAMES })
}

fn stall_schema() -> Json {
    json!({ "anyOf": [schema::duration(), { "const": "forever" }] })
}

fn parts_schema() -> Json {
    let part = json!({ "enum": MockParts::NAMES });
    json!({ "anyOf": [part, { "type": "array", "items": part, "minItems": 1 }] })
}

impl KindDef for MockStep {
    const NAME: &'static str = "mock";
    const ABOUT: &'static str =
        "An external API mock: `expect` calls of this run, `expect-none` for a period, `set` an answer, inject a `fault`, `clear` it.";
    const RETRIED: bool = true;

    fn decode(cx: &mut Cx<'_>, node: &Node, _scope: &mut Scope) -> Option<Self> {
        decode::decode(cx, node, "`mock` step")
    }

    fn schema() -> Json {
        schema::actions(&ACTIONS)
    }

    fn label(&self) -> String {
        match self {
            MockStep::Expect {
                mock,
                request,
                times,
                ..
            } => format!(
                "mock {mock} received {} {}{}",
                request.method.as_deref().unwrap_or("*"),
                request.path.as_deref().unwrap_or("*"),
                times.map(|t| format!(" ×{t}")).unwrap_or_default()
            ),
            MockStep::Set { mock, request, .. } => format!(
                "mock {mock} answers {}",
                request.path.as_deref().unwrap_or("every path")
            ),
            MockStep::Fault {
                mock, path, fault, ..
            } => format!(
                "mock {mock} fault {fault:?} on {}",
                path.as_deref().unwrap_or("every path")
            ),
            MockStep::ExpectNone {
                mock,
                request,
                period,
            } => format!(
                "mock {mock} receives no {} {} for {period:?}",
                request.method.as_deref().unwrap_or("*"),
                request.path.as_deref().unwrap_or("*"),
            ),
            MockStep::Clear { mock, .. } => format!("mock {mock} cleared"),
        }
    }

    fn natural_wait(&self) -> Duration {
        match self {
            MockStep::ExpectNone { period, .. } => *period,
            _ => Duration::ZERO,
        }
    }

    fn needs(&self) -> Option<Need> {
        Some(Need::Mock(self.mock().to_owned()))
    }

    fn alone(&self) -> bool {
        match self {
            MockStep::Set { respond, .. } => respond.status.is_some_and(|s| s >= 500),
            MockStep::Fault { fault, times, .. } => times.is_none() && fault.fails_calls(),
            MockStep::Clear { parts, .. } => parts.journal || parts.expectations,
            MockStep::Expect { .. } | MockStep::ExpectNone { .. } => false,
        }
    }

    fn acts(&self) -> Option<&'static str> {
        match self {
            MockStep::Set { .. } | MockStep::Fault { .. } | MockStep::Clear { .. } => {
                Some("changes a mock")
            }
            MockStep::Expect { .. } | MockStep::ExpectNone { .. } => None,
        }
    }

    async fn run(&self, cx: &mut StepCx<'_, '_>) -> Result<(), StepError> {
        run::run(cx, self).await
    }
}
