//! A sweep as the reports' model: one case per class and operation
//! (`inputs: flow-api POST /leads`), failed with its findings, so the
//! JUnit, JSON and HTML writers of the scenarios serve the sweep too.

use std::collections::BTreeMap;

use super::{Finding, SweepReport};
use crate::report::{Failure, RunReport, ScenarioReport, Status};

pub(super) fn to_run_report(sweep: &SweepReport, runtime: &str) -> RunReport {
    let mut scenarios = Vec::new();
    for class in &sweep.classes {
        let mut by_op: BTreeMap<&str, Vec<&Finding>> = class
            .operations
            .iter()
            .map(|op| (op.as_str(), Vec::new()))
            .collect();
        for f in &class.findings {
            by_op.entry(f.operation.as_str()).or_default().push(f);
        }
        if class.skipped.is_some() || by_op.is_empty() {
            scenarios.push(case(
                class.class.as_str(),
                "all",
                &[],
                class.skipped.as_deref(),
            ));
            continue;
        }
        for (op, findings) in by_op {
            scenarios.push(case(class.class.as_str(), op, &findings, None));
        }
    }
    RunReport {
        started_at: sweep.started_at.to_rfc3339(),
        duration_ms: sweep.duration.as_secs_f64() * 1000.0,
        runtime: runtime.to_owned(),
        jobs: 1,
        scenarios,
    }
}

fn case(class: &str, op: &str, findings: &[&Finding], skipped: Option<&str>) -> ScenarioReport {
    let status = match (skipped, findings.is_empty()) {
        (Some(_), _) => Status::Skipped,
        (None, true) => Status::Passed,
        (None, false) => Status::Failed,
    };
    let failure = match (skipped, findings.first()) {
        (Some(why), _) => Some(Failure {
            location: format!("sweep {class}"),
            message: format!("skipped: {why}"),
            ..Failure::default()
        }),
        (None, Some(first)) => Some(Failure {
            location: format!("sweep {class}: {op}"),
            message: findings
                .iter()
                .map(|f| f.to_string())
                .collect::<Vec<_>>()
                .join("\n\n"),
            request: first.repro.as_ref().map(super::Repro::curl),
            ..Failure::default()
        }),
        (None, None) => None,
    };
    ScenarioReport {
        name: format!("{class}: {op}"),
        file: format!("sweep/{class}"),
        tags: vec!["sweep".into(), class.to_owned()],
        status,
        duration_ms: 0.0,
        service_ms: 0.0,
        tenants: BTreeMap::new(),
        steps: Vec::new(),
        failure,
        skip_reason: skipped.map(str::to_owned),
        messages: Vec::new(),
        spans: Vec::new(),
        own_ecosystem: None,
    }
}
