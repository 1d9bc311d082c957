//! What the suites sent and what the platform answered, kept so that the
//! checker can hold the platform to its answers afterwards.
//!
//! Refusals are kept per attempt, by [`Phase`] of the suite's fault and by
//! status, with whether they said when to come back (`Retry-After`): a
//! chaos suite judges them against what it allows ([`RefusalRules`]).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use uuid::Uuid;

/// A lead the platform accepted (answered 201 with this id).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AcceptedLead {
    pub tenant: String,
    pub id: Uuid,
    pub email: String,
    /// The trace its request began ([`super::LeadTraces::begin`]), when it
    /// was sent with one: the traces then witness its processing too.
    pub trace: Option<String>,
}

/// The leads suites created, by outcome. Shared by the tasks of a load.
#[derive(Debug, Default)]
pub struct Ledger {
    inner: Mutex<Entries>,
}

#[derive(Debug, Default, Clone)]
struct Entries {
    accepted: Vec<AcceptedLead>,
    /// Leads accepted after at least one refusal.
    retried: u64,
    /// Requests given up on after a refusal.
    refused: u64,
    unanswered: u64,
    /// Every refused or unanswered attempt, in the order they came.
    attempts: Vec<RefusedAttempt>,
    jobs: BTreeMap<String, u64>,
    clock: Clock,
}

/// A refused or unanswered attempt, as it happened; its phase is known
/// once the fault's window is ([`Ledger::fault_window`]).
#[derive(Debug, Clone, Copy)]
struct RefusedAttempt {
    sent: Instant,
    answered: Instant,
    status: Option<u16>,
    retry_after: bool,
}

/// When the fault began and healed, and the grace after the heal.
#[derive(Debug, Default, Clone, Copy)]
struct Clock {
    began: Option<Instant>,
    healed: Option<Instant>,
    grace: Duration,
}

/// Where in a suite's run a request fell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Phase {
    /// Answered before the fault began.
    Before,
    /// In flight while the fault lasted (or sent before its heal).
    During,
    /// Sent after the heal, within the grace period the platform has to
    /// come back.
    Grace,
    /// Sent after the heal and its grace period: the platform must be
    /// back.
    After,
}

impl Phase {
    pub const ALL: [Phase; 4] = [Phase::Before, Phase::During, Phase::Grace, Phase::After];

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Before => "before the fault",
            Phase::During => "during the fault",
            Phase::Grace => "in the grace period after the heal",
            Phase::After => "after the heal and its grace period",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Refused attempts of one phase and status (`None`: no answer at all).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RefusalCount {
    pub count: u64,
    /// Of those, answers (429, 503) without a `Retry-After` in seconds.
    pub without_retry_after: u64,
    /// The latest one, in seconds after the heal (0 before it).
    pub latest_after_heal: f64,
}

/// Every refused or unanswered attempt, by phase and status.
pub type Refusals = BTreeMap<(Phase, Option<u16>), RefusalCount>;

/// How the platform answered the requests of a ledger (leads and any
/// other request a suite records).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tally {
    /// 201 with an id.
    pub accepted: u64,
    /// Any other status, and not accepted on a retry either: the platform
    /// said no, which is allowed during a fault (a 503 while Redis is
    /// down); the lead must then not exist.
    pub refused: u64,
    /// Of the accepted, those accepted only on a retry after a refusal
    /// (a 503 or 429, retried after its `Retry-After`).
    pub retried: u64,
    /// No answer at all (a timeout, a reset): the lead may or may not exist.
    pub unanswered: u64,
}

impl Ledger {
    /// An empty ledger.
    pub fn new() -> Ledger {
        Ledger::default()
    }

    /// Records a lead answered with 201.
    pub fn accepted(&self, lead: AcceptedLead) {
        self.lock().accepted.push(lead);
    }

    /// Records a lead accepted on a retry, after a refusal.
    pub fn accepted_on_retry(&self, lead: AcceptedLead) {
        let mut entries = self.lock();
        entries.accepted.push(lead);
        entries.retried += 1;
    }

    /// The fault lasted from `began` to `healed` (`None`: it has not
    /// healed); requests sent `grace` after the heal must be accepted
    /// ([`Phase::After`]). Until this is said, every refusal counts as
    /// [`Phase::Before`].
    pub fn fault_window(&self, began: Instant, healed: Option<Instant>, grace: Duration) {
        self.lock().clock = Clock {
            began: Some(began),
            healed,
            grace,
        };
    }

    /// Records an attempt sent at `sent` and refused now with `status`
    /// (with `retry_after` seconds, if it said), or with no answer
    /// (`None`).
    pub fn attempt_refused(&self, sent: Instant, status: Option<u16>, retry_after: Option<u64>) {
        self.record(RefusedAttempt {
            sent,
            answered: Instant::now(),
            status,
            retry_after: retry_after.is_some(),
        });
    }

    fn record(&self, attempt: RefusedAttempt) {
        self.lock().attempts.push(attempt);
    }

    /// Records a request given up on after a refusal.
    pub fn refused(&self) {
        self.lock().refused += 1;
    }

    /// Every refused or unanswered attempt so far, by phase and status.
    pub fn refusals(&self) -> Refusals {
        let entries = self.lock();
        let clock = entries.clock;
        let mut refusals = Refusals::new();
        for attempt in &entries.attempts {
            let phase = clock.phase(attempt.sent, attempt.answered);
            let entry = refusals.entry((phase, attempt.status)).or_default();
            entry.count += 1;
            if attempt.status.is_some() && !attempt.retry_after {
                entry.without_retry_after += 1;
            }
            if let Some(healed) = clock.healed {
                let after = attempt.sent.saturating_duration_since(healed).as_secs_f64();
                entry.latest_after_heal = entry.latest_after_heal.max(after);
            }
        }
        refusals
    }

    /// Records a lead request that got no answer (its attempt is recorded
    /// by [`Ledger::attempt_refused`] with no status).
    pub fn unanswered(&self) {
        self.lock().unanswered += 1;
    }

    /// Records a job the platform accepted onto `queue` (a lead's
    /// processing, an email sync).
    pub fn job_accepted(&self, queue: &str) {
        *self.lock().jobs.entry(queue.to_owned()).or_default() += 1;
    }

    /// Jobs accepted per queue so far.
    pub fn jobs(&self) -> BTreeMap<String, u64> {
        self.lock().jobs.clone()
    }

    /// The accepted leads so far.
    pub fn accepted_leads(&self) -> Vec<AcceptedLead> {
        self.lock().accepted.clone()
    }

    /// The counts so far.
    pub fn tally(&self) -> Tally {
        let entries = self.lock();
        Tally {
            accepted: entries.accepted.len() as u64,
            refused: entries.refused,
            retried: entries.retried,
            unanswered: entries.unanswered,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        // A panicking recorder cannot leave the entries half-written (each
        // change is one push or one increment), so a poisoned lock is fine.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// What a suite allows of refusals: in every phase a 429 (a rate limit is
/// the client's to respect, not an outage); during its fault and the grace
/// period after the heal also `during` (503 for an outage of a dependency
/// on the request's path) and no answer at all (a killed service). Every
/// 429 and 503 says when to come back (`Retry-After`). After the heal and
/// `grace`, nothing else: the platform is back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefusalRules {
    /// Statuses allowed during the fault and its grace period, beside 429.
    pub during: &'static [u16],
    /// Whether requests may go unanswered during the fault.
    pub unanswered_during: bool,
    /// How long after the heal the platform may still refuse.
    pub grace: Duration,
}

/// What is wrong with a kind of refusal.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum RefusalProblem {
    /// A status (or no answer) not allowed in its phase.
    NotAllowed { allowed: Vec<u16> },
    /// A 429 or 503 without `Retry-After`.
    NoRetryAfter,
    /// Refused after the heal and its grace period.
    StillRefusing {
        latest_after_heal_ms: u64,
        grace_ms: u64,
    },
}

/// The statuses that must say when to come back.
const RETRY_AFTER_STATUSES: [u16; 2] = [429, 503];

/// The refusals `rules` do not allow, one finding per phase, status and
/// problem.
pub fn judge_refusals(refusals: &Refusals, rules: &RefusalRules) -> Vec<super::Finding> {
    let mut findings = Vec::new();
    for (&(phase, status), counted) in refusals {
        let finding = |count: u64, problem: RefusalProblem| super::Finding::Refused {
            phase,
            status,
            count,
            problem,
        };
        let in_fault = matches!(phase, Phase::During | Phase::Grace);
        let allowed = match (status, in_fault) {
            (Some(429), _) => true,
            (Some(status), true) => rules.during.contains(&status),
            (None, true) => rules.unanswered_during,
            (_, false) => false,
        };
        if !allowed {
            let problem = if phase == Phase::After {
                RefusalProblem::StillRefusing {
                    latest_after_heal_ms: (counted.latest_after_heal * 1000.0) as u64,
                    grace_ms: u64::try_from(rules.grace.as_millis()).unwrap_or(u64::MAX),
                }
            } else {
                let mut allowed = vec![429];
                if in_fault {
                    allowed.extend(rules.during.iter().filter(|s| **s != 429));
                }
                allowed.sort_unstable();
                RefusalProblem::NotAllowed { allowed }
            };
            findings.push(finding(counted.count, problem));
        }
        if status.is_some_and(|s| RETRY_AFTER_STATUSES.contains(&s))
            && counted.without_retry_after > 0
        {
            findings.push(finding(
                counted.without_retry_after,
                RefusalProblem::NoRetryAfter,
            ));
        }
    }
    findings
}

/// The refusals, one phase per line: `during the fault: 503 x 120, no
/// answer x 3`; the phases without any are left out.
pub fn describe_refusals(refusals: &Refusals) -> Vec<String> {
    Phase::ALL
        .iter()
        .filter_map(|&phase| {
            let parts: Vec<String> = refusals
                .iter()
                .filter(|((p, _), _)| *p == phase)
                .map(|((_, status), c)| {
                    let what = status.map_or_else(|| "no answer".to_owned(), |s| s.to_string());
                    let missing = if c.without_retry_after > 0 {
                        format!(" ({} without Retry-After)", c.without_retry_after)
                    } else {
                        String::new()
                    };
                    format!("{what} x {}{missing}", c.count)
                })
                .collect();
            (!parts.is_empty()).then(|| format!("{phase}: {}", parts.join(", ")))
        })
        .collect()
}

impl Clock {
    /// A refusal answered before the fault began is of [`Phase::Before`];
    /// after the heal, the time it was sent decides (a request sent during
    /// the fault may be refused after the heal).
    fn phase(&self, sent: Instant, answered: Instant) -> Phase {
        let Some(began) = self.began else {
            return Phase::Before;
        };
        if answered < began {
            return Phase::Before;
        }
        match self.healed {
            Some(healed) if sent >= healed + self.grace => Phase::After,
            Some(healed) if sent >= healed => Phase::Grace,
            _ => Phase::During,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_attempt_falls_in_the_phase_of_its_fault() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut clock = Clock::default();
        assert_eq!(clock.phase(at(0), at(10)), Phase::Before);
        clock.began = Some(at(100));
        assert_eq!(clock.phase(at(0), at(90)), Phase::Before);
        // Sent before the fault, answered in it.
        assert_eq!(clock.phase(at(50), at(150)), Phase::During);
        assert_eq!(clock.phase(at(500), at(600)), Phase::During);
        clock.healed = Some(at(1_000));
        clock.grace = Duration::from_secs(5);
        // Sent before the heal, answered after: the fault's.
        assert_eq!(clock.phase(at(900), at(1_100)), Phase::During);
        assert_eq!(clock.phase(at(1_000), at(1_100)), Phase::Grace);
        assert_eq!(clock.phase(at(5_999), at(7_000)), Phase::Grace);
        assert_eq!(clock.phase(at(6_000), at(6_001)), Phase::After);
    }

    #[test]
    fn refusals_are_counted_by_phase_and_status_with_their_retry_after() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let ledger = Ledger::new();
        let attempt = |sent: u64, status: Option<u16>, retry_after: bool| {
            ledger.record(RefusedAttempt {
                sent: at(sent),
                answered: at(sent + 5),
                status,
                retry_after,
            });
        };
        attempt(0, Some(429), true);
        attempt(100, Some(503), true);
        attempt(200, Some(503), false);
        attempt(300, None, false);
        attempt(1_000, Some(503), true);
        // Until the window is known, everything is before the fault.
        assert_eq!(ledger.refusals()[&(Phase::Before, Some(503))].count, 3);
        ledger.fault_window(at(50), Some(at(500)), Duration::ZERO);
        let refusals = ledger.refusals();
        let during = refusals[&(Phase::During, Some(503))];
        assert_eq!((during.count, during.without_retry_after), (2, 1));
        // No answer has no Retry-After to miss.
        assert_eq!(refusals[&(Phase::During, None)].without_retry_after, 0);
        assert_eq!(refusals[&(Phase::Before, Some(429))].count, 1);
        assert_eq!(refusals[&(Phase::After, Some(503))].count, 1);
    }

    fn count(count: u64, without_retry_after: u64, latest_after_heal: f64) -> RefusalCount {
        RefusalCount {
            count,
            without_retry_after,
            latest_after_heal,
        }
    }

    const OUTAGE: RefusalRules = RefusalRules {
        during: &[503],
        unanswered_during: true,
        grace: Duration::from_secs(5),
    };

    #[test]
    fn refusals_the_rules_allow_are_no_finding() {
        let refusals: Refusals = [
            ((Phase::Before, Some(429)), count(2, 0, 0.0)),
            ((Phase::During, Some(503)), count(40, 0, 0.0)),
            ((Phase::During, None), count(3, 0, 0.0)),
            ((Phase::Grace, Some(503)), count(4, 0, 3.0)),
            ((Phase::After, Some(429)), count(1, 0, 9.0)),
        ]
        .into_iter()
        .collect();
        assert_eq!(judge_refusals(&refusals, &OUTAGE), vec![]);
        assert_eq!(
            describe_refusals(&refusals),
            [
                "before the fault: 429 x 2",
                "during the fault: no answer x 3, 503 x 40",
                "in the grace period after the heal: 503 x 4",
                "after the heal and its grace period: 429 x 1",
            ]
        );
    }

    #[test]
    fn a_500_an_unexplained_503_and_a_late_refusal_are_findings() {
        let refusals: Refusals = [
            ((Phase::Before, Some(503)), count(1, 0, 0.0)),
            ((Phase::During, Some(500)), count(265, 265, 0.0)),
            ((Phase::During, Some(503)), count(10, 4, 0.0)),
            ((Phase::After, Some(503)), count(7, 0, 12.5)),
        ]
        .into_iter()
        .collect();
        let findings = judge_refusals(&refusals, &OUTAGE);
        let text: Vec<String> = findings.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [
                "1 request(s) answered 503 before the fault; allowed then: 429 (with Retry-After)",
                "265 request(s) answered 500 during the fault; allowed then: 429, 503 (with Retry-After)",
                "4 request(s) answered 503 during the fault without Retry-After: a client cannot tell when to come back",
                "still refusing 12.5 s after the heal (the grace period is 5.0 s): 7 request(s) answered 503",
            ]
        );
        // A suite whose fault is off the request's path allows no 503 at all.
        let off_path = RefusalRules {
            during: &[],
            unanswered_during: false,
            ..OUTAGE
        };
        let findings = judge_refusals(
            &[((Phase::During, None), count(2, 0, 0.0))]
                .into_iter()
                .collect(),
            &off_path,
        );
        assert_eq!(
            findings.iter().map(ToString::to_string).collect::<Vec<_>>(),
            ["2 request(s) not answered at all during the fault; allowed then: 429 (with Retry-After)"]
        );
    }
}
