//! `promtool check rules` and `promtool test rules`, with `promtool`
//! installed on demand (Debian's `prometheus` package; see
//! [`crate::env::provision`]: as root it says the `apt-get` command and
//! runs it, otherwise the error names it).

use std::path::Path;
use std::process::Command;

use crate::env::provision::{ensure_program, PROMTOOL};
use crate::env::{error_chain, EnvError};

/// Why the rules did not pass.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    #[error("failed to get promtool")]
    Tool(#[source] EnvError),
    #[error("failed to run `{command}`")]
    Run {
        command: String,
        #[source]
        source: std::io::Error,
    },
    /// The tool ran and refused: its output says why.
    #[error("`{command}` failed ({status}):\n{output}")]
    Failed {
        command: String,
        status: String,
        output: String,
    },
}

/// `promtool check rules FILES`: every file parses and every expression is
/// valid PromQL. Returns the tool's output.
pub fn check_rules(files: &[&Path]) -> Result<String, RulesError> {
    promtool(&["check", "rules"], files)
}

/// `promtool test rules FILES`: the unit tests pass (their `rule_files`
/// are relative to each test file). Returns the tool's output.
pub fn test_rules(files: &[&Path]) -> Result<String, RulesError> {
    promtool(&["test", "rules"], files)
}

fn promtool(args: &[&str], files: &[&Path]) -> Result<String, RulesError> {
    let program = ensure_program(&PROMTOOL).map_err(RulesError::Tool)?;
    let mut command = Command::new(&program);
    command.args(args).args(files);
    let shown = format!(
        "promtool {} {}",
        args.join(" "),
        files
            .iter()
            .map(|f| f.display().to_string())
            .collect::<Vec<_>>()
            .join(" ")
    );
    let out = command.output().map_err(|source| RulesError::Run {
        command: shown.clone(),
        source,
    })?;
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
    .trim()
    .to_owned();
    if out.status.success() {
        Ok(output)
    } else {
        Err(RulesError::Failed {
            command: shown,
            status: out.status.to_string(),
            output,
        })
    }
}

impl RulesError {
    /// The error and its causes on one line (the tool's output kept as is).
    pub fn describe(&self) -> String {
        error_chain(self)
    }
}
