//! The alert a suite's fault must fire, and must resolve after the heal,
//! when the ecosystem runs Prometheus (`--prometheus`).
//!
//! The alert rules (`fixtures/prometheus/alerts.yml`) are part of what a
//! suite tests: a fault the platform's monitoring does not see is a
//! finding, and so is an alert that goes on firing after the heal. A
//! rule's `for:` can be far longer than a suite's fault (a minute for
//! `ServiceDown`), so with Prometheus running the fault is held until the
//! alert fires, not for a fixed time: the deadline is the rule's own
//! `for:` (read from Prometheus, so an edited rule moves it) plus
//! [`MARGIN`] for scrapes and evaluations. After the heal, the alert must
//! resolve within what is left of the suite's recovery time.
//!
//! Without Prometheus the suites run as before and nothing here is asked.

use std::fmt;
use std::time::{Duration, Instant};

use super::SuiteName;
use crate::alerts::Prometheus;
use crate::env::{error_chain, Ecosystem};

/// Beyond the rule's `for:`, for the scrapes and evaluations (one second
/// each in the harness's configuration) before and after it.
pub(super) const MARGIN: Duration = Duration::from_secs(30);

/// An alert of the platform's rules, by name and labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpectedAlert {
    pub name: &'static str,
    pub labels: &'static [(&'static str, &'static str)],
}

impl fmt::Display for ExpectedAlert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let labels: Vec<String> = self
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        write!(f, "{}{{{}}}", self.name, labels.join(","))
    }
}

impl SuiteName {
    /// The alert this suite's fault must fire: the CRM API frozen cannot
    /// answer its scrapes, so `ServiceDown` for it. The other suites'
    /// faults are shorter than any rule's `for:` would fire on.
    pub fn alert(self) -> Option<ExpectedAlert> {
        match self {
            SuiteName::CrmPaused => Some(ExpectedAlert {
                name: "ServiceDown",
                labels: &[("job", "crm-api")],
            }),
            _ => None,
        }
    }
}

/// What became of a suite's expected alert.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertCheck {
    pub expected: ExpectedAlert,
    /// The rule's `for:`, as Prometheus has it loaded.
    pub rule_hold: Option<Duration>,
    /// How long after the fault began it fired.
    pub fired_after: Option<Duration>,
    /// How long after the heal it resolved.
    pub resolved_after: Option<Duration>,
    /// What did not hold, for the report.
    pub problems: Vec<String>,
}

impl AlertCheck {
    pub fn holds(&self) -> bool {
        self.problems.is_empty() && self.fired_after.is_some() && self.resolved_after.is_some()
    }

    /// One line for the summary.
    pub fn describe(&self) -> String {
        let mut out = format!("alert {}: ", self.expected);
        match self.fired_after {
            Some(at) => out.push_str(&format!("fired {:.1} s into the fault", at.as_secs_f64())),
            None => out.push_str("did not fire"),
        }
        if let Some(hold) = self.rule_hold {
            out.push_str(&format!(" (the rule's for: {:.0} s)", hold.as_secs_f64()));
        }
        if let Some(at) = self.resolved_after {
            out.push_str(&format!(
                ", resolved {:.1} s after the heal",
                at.as_secs_f64()
            ));
        }
        for problem in &self.problems {
            out.push_str(&format!("\n  - {problem}"));
        }
        out
    }
}

/// The watch on a suite's expected alert, from before the fault to after
/// the heal.
#[derive(Debug)]
pub(super) struct AlertWatch {
    prometheus: Prometheus,
    check: AlertCheck,
    fault_began: Option<Instant>,
    healed: Option<Instant>,
}

impl AlertWatch {
    /// A watch when the ecosystem runs Prometheus and the suite expects an
    /// alert; a rule Prometheus has not loaded is a problem already.
    pub(super) async fn new(eco: &Ecosystem, suite: SuiteName) -> Option<AlertWatch> {
        let expected = suite.alert()?;
        let prometheus = eco.prometheus()?;
        let mut check = AlertCheck {
            expected,
            rule_hold: None,
            fired_after: None,
            resolved_after: None,
            problems: Vec::new(),
        };
        match prometheus.rule_hold(expected.name).await {
            Ok(Some(hold)) => check.rule_hold = Some(hold),
            Ok(None) => check.problems.push(format!(
                "Prometheus has no alerting rule `{}` loaded (the platform's rules: fixtures/prometheus/alerts.yml)",
                expected.name
            )),
            Err(e) => check
                .problems
                .push(format!("could not read the rules: {}", error_chain(&e))),
        }
        Some(AlertWatch {
            prometheus,
            check,
            fault_began: None,
            healed: None,
        })
    }

    /// The fault has begun.
    pub(super) fn fault_began(&mut self) {
        self.fault_began = Some(Instant::now());
    }

    /// Waits, while the fault is held, until the alert fires: up to the
    /// rule's `for:` plus [`MARGIN`] from the fault's start. Returns a line
    /// for the timeline.
    pub(super) async fn until_firing(&mut self) -> String {
        let Some(hold) = self.check.rule_hold else {
            return format!("not waiting for {}: no such rule", self.check.expected);
        };
        let began = *self.fault_began.get_or_insert_with(Instant::now);
        let within = (hold + MARGIN).saturating_sub(began.elapsed());
        let expected = self.check.expected;
        let what = format!("{expected} firing");
        match self
            .prometheus
            .wait_for(&what, within, |alerts| {
                alerts
                    .iter()
                    .any(|a| a.is_firing(expected.name, expected.labels))
            })
            .await
        {
            Ok(_) => {
                let at = began.elapsed();
                self.check.fired_after = Some(at);
                format!(
                    "{expected} fired ({:.1} s into the fault)",
                    at.as_secs_f64()
                )
            }
            Err(e) => {
                let line = format!(
                    "{expected} did not fire within the rule's for: plus {} s: {}",
                    MARGIN.as_secs(),
                    error_chain(&e)
                );
                self.check.problems.push(line.clone());
                line
            }
        }
    }

    /// The fault is healed.
    pub(super) fn healed(&mut self) {
        self.healed = Some(Instant::now());
    }

    /// Waits up to `within` until the alert is neither firing nor pending,
    /// and gives the check.
    pub(super) async fn until_resolved(mut self, within: Duration) -> AlertCheck {
        if self.check.fired_after.is_none() {
            return self.check;
        }
        let healed = self.healed.unwrap_or_else(Instant::now);
        let expected = self.check.expected;
        match self
            .prometheus
            .wait_for(&format!("{expected} resolved"), within, |alerts| {
                !alerts.iter().any(|a| a.is(expected.name, expected.labels))
            })
            .await
        {
            Ok(_) => self.check.resolved_after = Some(healed.elapsed()),
            Err(e) => self.check.problems.push(format!(
                "{expected} still active {:.0} s after the heal: {}",
                healed.elapsed().as_secs_f64(),
                error_chain(&e)
            )),
        }
        self.check
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_check_holds_only_when_fired_and_resolved() {
        let mut check = AlertCheck {
            expected: SuiteName::CrmPaused
                .alert()
                .expect("crm-paused expects one"),
            rule_hold: Some(Duration::from_secs(60)),
            fired_after: Some(Duration::from_secs(62)),
            resolved_after: None,
            problems: Vec::new(),
        };
        assert!(!check.holds());
        check.resolved_after = Some(Duration::from_secs(2));
        assert!(check.holds());
        assert_eq!(
            check.describe(),
            "alert ServiceDown{job=crm-api}: fired 62.0 s into the fault (the rule's for: 60 s), resolved 2.0 s after the heal"
        );
        check.problems.push("x".into());
        assert!(!check.holds());
    }
}
