//! The platform's targets as pass/fail rules, judged after a run.
//!
//! Goose has thresholds of its own (`--threshold p95<500ms`), but they judge
//! only goose's request metrics, stop a run at the first breach, and cannot
//! see what we measure beside goose (queue latency, WebSocket deliveries) or
//! be judged again on a merge of several machines' reports. So the rules are
//! judged here, on a [`LoadReport`](super::LoadReport), after the run and
//! again after `load merge`: every rule gives a [`Verdict`] with the measured
//! value beside its limit, breached or not.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::report::LoadReport;

/// The limits a run is judged against (the platform's targets by default).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Thresholds {
    /// Each request kind's p95 must stay below this (ms).
    pub p95_ms: f64,
    /// Failed requests over all requests must stay below this (a fraction:
    /// 0.01 is 1 %).
    pub max_error_rate: f64,
    /// A created lead must be processed (LEAD_CREATED delivered) within this
    /// (ms), every one of them.
    pub max_queue_latency_ms: f64,
}

impl Default for Thresholds {
    /// API p95 < 500 ms, error rate < 1 %, queue latency < 1 min.
    fn default() -> Self {
        Self {
            p95_ms: 500.0,
            max_error_rate: 0.01,
            max_queue_latency_ms: 60_000.0,
        }
    }
}

impl Thresholds {
    /// The queue latency limit as a duration.
    pub fn max_queue_latency(&self) -> Duration {
        Duration::from_secs_f64(self.max_queue_latency_ms.max(0.0) / 1000.0)
    }
}

/// The unit a verdict's numbers are in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Unit {
    Ms,
    Percent,
    Count,
}

/// One rule, judged: `passed` is `measured < limit`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Verdict {
    /// What was judged, e.g. `p95 of POST /leads`, `error rate`,
    /// `queue latency (max)`.
    pub rule: String,
    pub measured: f64,
    pub limit: f64,
    pub unit: Unit,
    pub passed: bool,
}

impl Verdict {
    fn below(rule: impl Into<String>, measured: f64, limit: f64, unit: Unit) -> Self {
        Self {
            rule: rule.into(),
            measured,
            limit,
            unit,
            passed: measured < limit,
        }
    }
}

impl Verdict {
    /// The measured value with its unit: `12.3 ms`, `0.40 %`, `2`.
    pub fn measured_text(&self) -> String {
        match self.unit {
            Unit::Ms => format!("{:.1} ms", self.measured),
            Unit::Percent => format!("{:.2} %", self.measured),
            Unit::Count => format!("{}", self.measured),
        }
    }

    /// The limit as a rule: `< 500 ms`.
    pub fn limit_text(&self) -> String {
        match self.unit {
            Unit::Ms => format!("< {} ms", self.limit),
            Unit::Percent => format!("< {} %", self.limit),
            Unit::Count => format!("< {}", self.limit),
        }
    }
}

impl fmt::Display for Verdict {
    /// `ok     p95 of POST /leads: 12.3 ms (limit < 500 ms)`, or
    /// `BREACH …` when it failed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mark = if self.passed { "ok    " } else { "BREACH" };
        write!(
            f,
            "{mark} {}: {} (limit {})",
            self.rule,
            self.measured_text(),
            self.limit_text()
        )
    }
}

/// Judges `report` against `limits`: the p95 of every request kind that ran,
/// the error rate of all requests (and of WebSocket deliveries when the
/// profile counts them), and the queue latency when leads were created.
pub fn evaluate(report: &LoadReport, limits: &Thresholds) -> Vec<Verdict> {
    let mut verdicts = Vec::new();
    for kind in report.requests.iter().filter(|k| k.count > 0) {
        verdicts.push(Verdict::below(
            format!("p95 of {}", kind.name),
            kind.histogram.percentile_ms(95.0),
            limits.p95_ms,
            Unit::Ms,
        ));
    }
    let (count, errors) = report
        .requests
        .iter()
        .fold((0, 0), |(c, e), k| (c + k.count, e + k.errors));
    // A run that made no request at all did not meet any target.
    let rate = if count == 0 {
        1.0
    } else {
        errors as f64 / count as f64
    };
    verdicts.push(Verdict::below(
        "error rate",
        rate * 100.0,
        limits.max_error_rate * 100.0,
        Unit::Percent,
    ));
    if let Some(events) = &report.event_delivery {
        let rate = if events.expected == 0 {
            0.0
        } else {
            events.missed as f64 / events.expected as f64
        };
        verdicts.push(Verdict::below(
            "error rate of WebSocket deliveries (missed)",
            rate * 100.0,
            limits.max_error_rate * 100.0,
            Unit::Percent,
        ));
    }
    if let Some(queue) = &report.queue_latency {
        verdicts.push(Verdict::below(
            "queue latency (max)",
            queue.histogram.max_ms(),
            limits.max_queue_latency_ms,
            Unit::Ms,
        ));
        // A lead never processed waited longer than any limit.
        verdicts.push(Verdict {
            rule: format!(
                "leads not processed within {} s",
                limits.max_queue_latency_ms / 1000.0
            ),
            measured: queue.unprocessed as f64,
            limit: 1.0,
            unit: Unit::Count,
            passed: queue.unprocessed == 0,
        });
    }
    verdicts
}

#[cfg(test)]
mod tests {
    use super::super::hist::Histogram;
    use super::super::report::{KindStats, QueueStats};
    use super::*;

    fn kind(name: &str, ms: &[u64], errors: u64) -> KindStats {
        let mut histogram = Histogram::new();
        for &v in ms {
            histogram.record(Duration::from_millis(v));
        }
        KindStats::new(name, errors, histogram)
    }

    fn report(kinds: Vec<KindStats>) -> LoadReport {
        LoadReport {
            requests: kinds,
            ..LoadReport::default()
        }
    }

    #[test]
    fn a_fast_clean_run_passes_every_rule() {
        let r = report(vec![kind("POST /leads", &[10; 200], 0)]);
        let v = evaluate(&r, &Thresholds::default());
        assert_eq!(v.len(), 2);
        assert!(v.iter().all(|v| v.passed), "{v:?}");
        assert_eq!(v[0].rule, "p95 of POST /leads");
    }

    #[test]
    fn a_slow_kind_is_named_with_its_p95_and_limit() {
        let mut slow = vec![20; 90];
        slow.extend([900; 10]);
        let r = report(vec![
            kind("GET /leads", &[5; 100], 0),
            kind("POST /leads", &slow, 0),
        ]);
        let v = evaluate(&r, &Thresholds::default());
        let breached: Vec<String> = v
            .iter()
            .filter(|v| !v.passed)
            .map(ToString::to_string)
            .collect();
        assert_eq!(breached.len(), 1, "{v:?}");
        assert!(
            breached[0].starts_with("BREACH p95 of POST /leads: 89"),
            "{}",
            breached[0]
        );
        assert!(breached[0].ends_with("(limit < 500 ms)"));
    }

    #[test]
    fn the_error_rate_counts_all_kinds_together() {
        // 1 error in 100 is 1 %: not below 1 %.
        let r = report(vec![
            kind("POST /leads", &[1; 50], 1),
            kind("GET /leads", &[1; 50], 0),
        ]);
        let v = evaluate(&r, &Thresholds::default());
        let rate = v.iter().find(|v| v.rule == "error rate").unwrap();
        assert_eq!(rate.measured, 1.0);
        assert!(!rate.passed);
        let looser = Thresholds {
            max_error_rate: 0.02,
            ..Thresholds::default()
        };
        assert!(evaluate(&r, &looser).iter().all(|v| v.passed));
    }

    #[test]
    fn a_run_without_requests_fails() {
        let v = evaluate(&report(Vec::new()), &Thresholds::default());
        assert_eq!(v.len(), 1);
        assert!(!v[0].passed);
    }

    #[test]
    fn unprocessed_leads_breach_even_when_the_processed_were_fast() {
        let mut histogram = Histogram::new();
        histogram.record(Duration::from_millis(40));
        let mut r = report(vec![kind("POST /leads", &[3], 0)]);
        r.queue_latency = Some(QueueStats {
            histogram,
            processed: 1,
            unprocessed: 2,
        });
        let v = evaluate(&r, &Thresholds::default());
        let names: Vec<_> = v.iter().filter(|v| !v.passed).map(|v| &v.rule).collect();
        assert_eq!(names, ["leads not processed within 60 s"]);
        let slow = Thresholds {
            max_queue_latency_ms: 10.0,
            ..Thresholds::default()
        };
        let v = evaluate(&r, &slow);
        assert!(v
            .iter()
            .any(|v| v.rule == "queue latency (max)" && !v.passed));
    }
}
