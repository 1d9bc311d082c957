//! The sweep: every surface of the platform attacked, generated from its
//! contract.
//!
//! A scenario proves what its author thought of; the sweep tries what an
//! attacker, a confused client or a flaky network would, on every
//! operation the services' OpenAPI documents name (`contract/*.json`) and
//! with the expectations of the platform's contract
//! (`fixtures/platform.yaml`), never of the services' code. It runs
//! against any runtime, `external` included, and reports each defect as a
//! [`Finding`] of one [`Class`], with the smallest request that shows it
//! (a `curl` line with keys redacted, and a scenario step).
//!
//! | class | what it tries |
//! |---|---|
//! | `access` | every operation (the gateway's handshake included) × every app × own tenant, another tenant, a suspended tenant, a revoked key, a key of A with the id of B, missing or duplicated headers: exactly the status the matrix and the tenancy rules imply; a refused write changes nothing |
//! | `inputs` | every field of every body missing, null, of the wrong type, empty, oversized, with control characters, lone surrogates, bidi marks, SQL, HTML and path-traversal strings, boundary and huge numbers, unknown fields, another tenant's ids: a 4xx in the platform's error shape, never a 5xx or a hang, nothing stored, nothing of another tenant echoed |
//! | `limits` | unauthenticated junk does not grow the metric series; slow-header and idle connections are closed; oversized WebSocket frames are refused with a close code; no log line is oversized |
//! | `database` | as the services' role: row-level security enabled and forced on every tenant table; no view or `SECURITY DEFINER` function reading around it; no write on identity tables; no superuser, `BYPASSRLS` or ownership |
//! | `tokens` | cross-app tokens: lifetime ceiling, `iat` not ahead, algorithm, audience, issuer; no long-lived token committed in the repository; webhooks refuse a missing or forged signature, a stale timestamp and a replayed event |
//!
//! Each class is one module with one entry point, `sweep(&Target, &mut
//! ClassReport)`: it counts the cases it ran and pushes what it found.

mod access;
mod database;
mod inputs;
mod limits;
mod openapi;
mod report;
mod repro;
mod target;
mod tokens;

use std::collections::BTreeSet;
use std::fmt;
use std::time::{Duration, Instant};

pub use openapi::{Operation, Operations, Param, Security};
pub use repro::Repro;
pub use target::{SweepError, Target};

/// How much of the input space a run tries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    /// What CI runs: every class and operation, a sample of each input
    /// family per field (under 3 minutes on 2 cores for the reference platform).
    Bounded,
    /// Every case of every family.
    Full,
}

/// A family of defects the sweep looks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Class {
    Access,
    Inputs,
    Limits,
    Database,
    Tokens,
}

impl Class {
    pub const ALL: [Class; 5] = [
        Class::Access,
        Class::Inputs,
        Class::Limits,
        Class::Database,
        Class::Tokens,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Class::Access => "access",
            Class::Inputs => "inputs",
            Class::Limits => "limits",
            Class::Database => "database",
            Class::Tokens => "tokens",
        }
    }

    pub fn parse(name: &str) -> Result<Class, String> {
        Class::ALL
            .into_iter()
            .find(|c| c.as_str() == name)
            .ok_or_else(|| {
                format!(
                    "unknown sweep class `{name}` (the classes are {})",
                    Class::ALL.map(Class::as_str).join(", ")
                )
            })
    }
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One defect: what is wrong, where, and the smallest request that shows it.
#[derive(Debug, Clone)]
pub struct Finding {
    pub class: Class,
    /// The operation (`flow-api POST /leads`), or the surface (`database`,
    /// `repository`, `gateway GET /events`).
    pub operation: String,
    /// One line: what is wrong (`NUL byte in firstName answered 500`).
    pub title: String,
    /// Expected vs got, and whatever else helps to act on it.
    pub detail: String,
    /// The minimal request that shows it, when one does.
    pub repro: Option<Repro>,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {}: {}", self.class, self.operation, self.title)?;
        if !self.detail.is_empty() {
            write!(f, "\n    {}", self.detail.replace('\n', "\n    "))?;
        }
        if let Some(repro) = &self.repro {
            write!(f, "\n    curl: {}", repro.curl())?;
            write!(f, "\n    step: {}", repro.scenario_step())?;
        }
        Ok(())
    }
}

/// What one class did.
#[derive(Debug, Clone)]
pub struct ClassReport {
    pub class: Class,
    /// Cases tried (requests sent, catalog rows read, files scanned, ...).
    pub cases: usize,
    /// The operations (or surfaces) it covered.
    pub operations: BTreeSet<String>,
    pub findings: Vec<Finding>,
    /// Why the class did not run (e.g. no database access on an external deployment).
    pub skipped: Option<String>,
    /// What part of the class did not run and why, when the rest did (e.g.
    /// no log files on an external deployment).
    pub notes: Vec<String>,
    pub duration: Duration,
}

impl ClassReport {
    pub fn new(class: Class) -> Self {
        Self {
            class,
            cases: 0,
            operations: BTreeSet::new(),
            findings: Vec::new(),
            skipped: None,
            notes: Vec::new(),
            duration: Duration::ZERO,
        }
    }

    /// Records a finding of this class.
    pub fn found(
        &mut self,
        operation: impl Into<String>,
        title: impl Into<String>,
        detail: impl Into<String>,
        repro: Option<Repro>,
    ) {
        self.findings.push(Finding {
            class: self.class,
            operation: operation.into(),
            title: title.into(),
            detail: detail.into(),
            repro,
        });
    }
}

/// What a sweep did.
#[derive(Debug, Clone)]
pub struct SweepReport {
    pub classes: Vec<ClassReport>,
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub duration: Duration,
}

impl SweepReport {
    /// No findings (skipped classes do not count against it).
    pub fn clean(&self) -> bool {
        self.classes.iter().all(|c| c.findings.is_empty())
    }

    pub fn findings(&self) -> impl Iterator<Item = &Finding> {
        self.classes.iter().flat_map(|c| c.findings.iter())
    }

    /// The findings of `class`.
    pub fn of(&self, class: Class) -> Vec<&Finding> {
        self.findings().filter(|f| f.class == class).collect()
    }

    /// One line per class, and the totals.
    pub fn summary(&self) -> String {
        let mut lines = Vec::new();
        for c in &self.classes {
            lines.push(match &c.skipped {
                Some(why) => format!("  {:<9} skipped: {why}", c.class.as_str()),
                None => format!(
                    "  {:<9} {:>6} cases over {:>3} operations, {:>3} findings ({:.1} s)",
                    c.class.as_str(),
                    c.cases,
                    c.operations.len(),
                    c.findings.len(),
                    c.duration.as_secs_f64()
                ),
            });
            lines.extend(c.notes.iter().map(|n| format!("            note: {n}")));
        }
        let cases: usize = self.classes.iter().map(|c| c.cases).sum();
        let findings = self.findings().count();
        lines.push(format!(
            "sweep: {cases} cases, {findings} findings in {:.1} s",
            self.duration.as_secs_f64()
        ));
        lines.join("\n")
    }

    /// As the scenario reports' model, one case per class and operation,
    /// for the JUnit, JSON and HTML writers.
    pub fn to_run_report(&self, runtime: &str) -> crate::report::RunReport {
        report::to_run_report(self, runtime)
    }
}

/// Runs `classes` against `target`, one after another (each class spreads
/// its own requests), saying what it does through `progress`.
pub async fn run(
    target: &Target,
    classes: &[Class],
    progress: &(dyn Fn(&str) + Sync),
) -> SweepReport {
    let started_at = chrono::Utc::now();
    let started = Instant::now();
    let mut reports = Vec::new();
    for &class in classes {
        progress(&format!("sweep: {class} …"));
        let mut report = ClassReport::new(class);
        let t = Instant::now();
        sweep_class(target, &mut report).await;
        report.duration = t.elapsed();
        progress(&match &report.skipped {
            Some(why) => format!("sweep: {class} skipped: {why}"),
            None => format!(
                "sweep: {class}: {} cases, {} findings ({:.1} s)",
                report.cases,
                report.findings.len(),
                report.duration.as_secs_f64()
            ),
        });
        reports.push(report);
    }
    SweepReport {
        classes: reports,
        started_at,
        duration: started.elapsed(),
    }
}

async fn sweep_class(target: &Target, report: &mut ClassReport) {
    match report.class {
        Class::Access => access::sweep(target, report).await,
        Class::Inputs => inputs::sweep(target, report).await,
        Class::Limits => limits::sweep(target, report).await,
        Class::Database => database::sweep(target, report).await,
        Class::Tokens => tokens::sweep(target, report).await,
    }
}
