//! Deliberate defects, for testing the tests.
//!
//! The harness proves its scenarios can fail by running them against
//! services that misbehave on purpose. `TEKUP_DEFECTS` (a comma-separated
//! list, read once at start) turns these on; unset, nothing changes. A
//! service with defects says so loudly in its log at start.
//!
//! | name               | what goes wrong                                               |
//! |--------------------|---------------------------------------------------------------|
//! | `skip-lead-event`  | lead processing never publishes `LEAD_CREATED`                |
//! | `cross-tenant-fanout` | the gateway delivers an event to the app's rooms of every tenant (the tenant filter is gone) |
//! | `duplicate-activity` | lead processing records its activity without the once-per-lead key |
//! | `no-job-retry`     | the worker acknowledges a failed job and drops it: no retry, no dead letter |

use std::sync::OnceLock;

/// The defects this binary knows.
pub const KNOWN: [&str; 4] = [
    "skip-lead-event",
    "cross-tenant-fanout",
    "duplicate-activity",
    "no-job-retry",
];

fn enabled() -> &'static Vec<String> {
    static ENABLED: OnceLock<Vec<String>> = OnceLock::new();
    ENABLED.get_or_init(|| {
        std::env::var("TEKUP_DEFECTS")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    })
}

/// Whether the defect `name` is on.
pub fn active(name: &str) -> bool {
    debug_assert!(KNOWN.contains(&name), "unknown defect {name}");
    enabled().iter().any(|d| d == name)
}

/// Logs the defects that are on (and refuses names it does not know).
pub fn announce() -> Result<(), String> {
    let unknown: Vec<&String> = enabled()
        .iter()
        .filter(|d| !KNOWN.contains(&d.as_str()))
        .collect();
    if !unknown.is_empty() {
        return Err(format!(
            "TEKUP_DEFECTS names unknown defects {unknown:?}; the known ones are {}",
            KNOWN.join(", ")
        ));
    }
    if !enabled().is_empty() {
        tracing::warn!(defects = ?enabled(), "DELIBERATE DEFECTS ARE ON (TEKUP_DEFECTS): this service misbehaves on purpose");
    }
    Ok(())
}
