//! Scenario files: the declarative format of `scenarios/README.md`,
//! its model, its checker, and the runner ([`run`]). The step kinds are
//! one module each under `kinds/`; `docs/ARCHITECTURE.md` follows a file
//! from reading to report and shows how to add a kind.
//!
//! The checker reports every problem it finds as `file:line:col: message`
//! with a `hint:` line, never panics on any input, and checks at parse time
//! what a run would only find late: unknown keys and step kinds (with the
//! closest known one), missing fields, wrong types, duplicate keys,
//! `${...}` references to names nothing defines, tenants a scenario did not
//! declare, WebSocket connections never opened, and scenario names used by
//! two files.
//!
//! Why a hand-written decoder over a positioned YAML tree instead of serde
//! derives: derives stop at the first error, lose the column once a value is
//! a `serde_yaml::Value`, and `untagged` enums (the natural shape of "one key
//! names the step kind") give "data did not match any variant" messages.

mod cases;
mod computed;
mod defaults;
mod file;
pub(crate) mod kinds;
pub mod model;
mod ops;
mod read;
pub mod run;
mod schema;
pub mod select;
mod steps;
mod template;
mod token;
mod uses;
pub mod vars;
mod yaml;

use std::fmt;
use std::path::PathBuf;

pub use file::{check_paths, parse_file, parse_str, FileReport, INCLUDE_SUFFIX};
pub use model::*;
pub use read::parse_duration;
pub use schema::schema;
pub use select::{TagExpr, TagExprError};
pub use template::template;
pub use uses::STEP_DIR;

/// One problem in a scenario file, with where it is and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    pub pos: Pos,
    pub message: String,
    pub hint: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}\n  hint: {}",
            self.file.display(),
            self.pos.line,
            self.pos.col,
            self.message,
            self.hint
        )
    }
}

/// The problems of a file (at least one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
pub struct ScenarioError(pub Vec<Diagnostic>);
