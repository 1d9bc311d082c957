//! What the witness found, and what it watched.

use std::fmt;

/// One thing the witness should not have seen or suffered.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum WitnessFinding {
    /// Its connection as `app` received an event: another tenant's (a
    /// leak), or its own after the fingerprint (the platform acting for it
    /// unasked).
    Frame {
        app: String,
        event_type: String,
        tenant: String,
        id: String,
        /// Whether the event is the witness's own.
        own: bool,
    },
    /// A job for the witness tenant went onto a queue after the fingerprint.
    Job {
        stream: String,
        kind: String,
        id: String,
        correlation: String,
    },
    /// An event of the witness tenant was published after the fingerprint.
    Published {
        event_type: String,
        id: String,
        source: String,
    },
    /// A mock received a call that names the witness after the fingerprint.
    MockCall {
        mock: String,
        call: String,
        at: String,
        /// What in it names the witness.
        naming: String,
    },
    /// One of its objects changed: a table's rows of the witness tenant,
    /// or what an API read of its objects answers.
    Changed {
        what: String,
        before: String,
        after: String,
    },
    /// Something the witness was to watch, it could not (its connection
    /// ended, a store could not be read at the end).
    Blind { what: String, why: String },
    /// The witness could not be set up as it should (its own objects or
    /// events did not settle, a request was refused).
    SetUp(String),
}

impl fmt::Display for WitnessFinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WitnessFinding::Frame {
                app,
                event_type,
                tenant,
                id,
                own: false,
            } => write!(
                f,
                "LEAK: the witness's {app} connection received {event_type} {id} of tenant {tenant}"
            ),
            WitnessFinding::Frame {
                app,
                event_type,
                id,
                own: true,
                ..
            } => write!(
                f,
                "the witness's {app} connection received its own {event_type} {id} after the fingerprint: the platform acted for a tenant that did nothing"
            ),
            WitnessFinding::Job {
                stream,
                kind,
                id,
                correlation,
            } => write!(
                f,
                "a {kind} job ({id}, correlation {correlation}) for the witness tenant went onto {stream} after the fingerprint"
            ),
            WitnessFinding::Published {
                event_type,
                id,
                source,
            } => write!(
                f,
                "{source} published {event_type} {id} for the witness tenant after the fingerprint"
            ),
            WitnessFinding::MockCall {
                mock,
                call,
                at,
                naming,
            } => write!(
                f,
                "the {mock} mock received {call} at {at}, carrying the witness's {naming}"
            ),
            WitnessFinding::Changed {
                what,
                before,
                after,
            } => write!(
                f,
                "the witness's {what} changed after the fingerprint: {before} → {after}"
            ),
            WitnessFinding::Blind { what, why } => {
                write!(f, "the witness could not watch {what}: {why}")
            }
            WitnessFinding::SetUp(why) => write!(f, "the witness's set-up: {why}"),
        }
    }
}

/// What a witness found at the end of a run, with what it watched and
/// what it could not.
#[derive(Debug, Clone, Default)]
pub struct WitnessReport {
    /// The witness tenant's id (empty when it was never created).
    pub tenant: String,
    /// What it watched: one line each.
    pub watched: Vec<String>,
    /// What it did not watch, and why (not a failure: the run's
    /// deployment does not expose it).
    pub skipped: Vec<String>,
    pub findings: Vec<WitnessFinding>,
}

impl WitnessReport {
    /// Whether the witness saw and suffered nothing.
    pub fn holds(&self) -> bool {
        self.findings.is_empty()
    }

    /// The header (what was watched and skipped), then the findings, at
    /// most `max` of them.
    pub fn describe(&self, max: usize) -> String {
        let mut out = format!(
            "witness tenant {}: {}",
            if self.tenant.is_empty() {
                "(none)"
            } else {
                &self.tenant
            },
            if self.holds() {
                "saw and suffered nothing".to_owned()
            } else {
                format!("{} finding(s)", self.findings.len())
            }
        );
        if !self.watched.is_empty() {
            out.push_str(&format!("\n  watched: {}", self.watched.join("; ")));
        }
        for skipped in &self.skipped {
            out.push_str(&format!("\n  not watched: {skipped}"));
        }
        for finding in self.findings.iter().take(max) {
            out.push_str(&format!("\n  - {finding}"));
        }
        if self.findings.len() > max {
            out.push_str(&format!("\n  - … and {} more", self.findings.len() - max));
        }
        out
    }
}
