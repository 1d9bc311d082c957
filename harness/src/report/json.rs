//! The JSON report: everything the run observed, for scripts and dashboards.
//!
//! What it guarantees: the serde form of [`RunReport`] (camelCase keys,
//! durations in milliseconds, every message of every scenario, none capped)
//! with a top-level `summary` of `{passed, failed, skipped}` first, so a
//! script needs no counting; pretty-printed so a person can read a diff of
//! two runs. Non-finite durations come out as `null`.

use serde::Serialize;

use super::model::RunReport;

/// How many scenarios ended each way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
}

impl Summary {
    /// The counts of `report`.
    pub fn of(report: &RunReport) -> Self {
        Self {
            passed: report.passed(),
            failed: report.failed(),
            skipped: report.skipped(),
        }
    }
}

#[derive(Serialize)]
struct JsonReport<'a> {
    summary: Summary,
    #[serde(flatten)]
    run: &'a RunReport,
}

/// Renders `report` as pretty-printed JSON.
pub fn render(report: &RunReport) -> Result<String, serde_json::Error> {
    let json = JsonReport {
        summary: Summary::of(report),
        run: report,
    };
    let mut out = serde_json::to_string_pretty(&json)?;
    out.push('\n');
    Ok(out)
}
