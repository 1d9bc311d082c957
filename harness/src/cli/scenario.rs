//! `validate`, `schema` and `new scenario`: the scenario files' commands.
//! They need no ecosystem and no async runtime.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::{out, say};
use crate::scenario;

/// Prints each file as OK or its errors, then `N valid, N invalid`.
pub(super) fn validate(paths: &[PathBuf]) -> ExitCode {
    let reports = scenario::check_paths(paths);
    let mut valid = 0;
    let mut invalid = 0;
    for report in &reports {
        match &report.result {
            Ok(s) => {
                valid += 1;
                let cases = if s.cases.is_empty() {
                    String::new()
                } else {
                    format!(" ({} cases)", s.cases.len())
                };
                out(&format!("OK      {}{cases}", report.path.display()));
            }
            Err(e) => {
                invalid += 1;
                out(&format!("INVALID {}", report.path.display()));
                out(&e.to_string());
            }
        }
    }
    out(&format!("{valid} valid, {invalid} invalid"));
    if invalid > 0 || reports.is_empty() {
        if reports.is_empty() {
            say("error: no scenario files found\nhint: give `.yaml` files or directories holding them");
        }
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

pub(super) fn schema() -> ExitCode {
    match serde_json::to_string_pretty(&scenario::schema()) {
        Ok(text) => {
            out(&text);
            ExitCode::SUCCESS
        }
        Err(e) => {
            say(&format!("error: failed to print the schema: {e}"));
            ExitCode::FAILURE
        }
    }
}

pub(super) fn new(name: &str, dir: &Path) -> ExitCode {
    let ok_name = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !ok_name {
        say(&format!("error: `{name}` is not a scenario name"));
        say("hint: use lowercase letters, digits and dashes, e.g. `lead-to-contact`");
        return ExitCode::FAILURE;
    }
    let path = dir.join(format!("{name}.yaml"));
    let written = std::fs::create_dir_all(dir).and_then(|()| {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)?
            .write_all(scenario::template(name).as_bytes())
    });
    match written {
        Ok(()) => {
            out(&format!("wrote {}", path.display()));
            ExitCode::SUCCESS
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            say(&format!("error: {} already exists", path.display()));
            say("hint: choose another name, or edit the existing file");
            ExitCode::FAILURE
        }
        Err(e) => {
            say(&format!("error: failed to write {}: {e}", path.display()));
            ExitCode::FAILURE
        }
    }
}
