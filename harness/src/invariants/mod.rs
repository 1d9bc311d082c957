//! The platform's invariants after load and faults: nothing lost, nothing
//! duplicated, everything processed or dead-lettered, breakers closed.
//!
//! Suites record what the platform accepted in a [`Ledger`]; afterwards a
//! [`Checker`] reads the platform's own stores (Postgres as superuser, so
//! row-level security does not hide a tenant's rows; Redis's dead-letter
//! streams; the services' `/admin/queues` and `/metrics`) and compares.
//!
//! Beside the stores, the contract: a queue's `retry-span` is the outage
//! its jobs ride out, so a job dead-lettered during a shorter fault is a
//! finding too ([`Finding::DeadLettered`]).
//!
//! Findings come in two kinds, and [`Checker::settle`] treats them apart:
//! - *pending*: the platform is still working (a lead not processed yet, a
//!   queue not drained, a breaker not closed). These may clear with time,
//!   so settling waits for them for as long as the platform keeps making
//!   progress on them ([`Patience`]).
//! - *broken*: no amount of waiting clears them (an accepted lead gone, a
//!   contact twice, two activities for one lead).
//!
//! The check is honest about what it cannot see: a lead whose request got
//! no answer may or may not exist, so it is not held to anything.
//!
//! Where the services' spans reach the harness, the checker also holds
//! each lead sent with a trace of its own to that trace ([`traces`]): a
//! second witness, which sees what the stores cannot (a lead queued as two
//! jobs, a job that lost its trace context).
//!
//! Beside the checker: [`breakers`] holds every breaker that reads open to
//! the open time the platform states, once traffic has stopped; [`audit`]
//! holds the gateway's audit to the deliveries a suite's subscribers saw,
//! and accepted writes to their tables; [`witness`] is a tenant that takes
//! part in nothing and must see, and suffer, nothing while a run goes on.

pub mod audit;
pub mod breakers;
mod ledger;
pub mod patience;
mod stores;
pub mod traces;
pub mod witness;

use std::fmt;
use std::time::Duration;

pub use audit::{AcceptedWrite, Audit, Delivery, Rooms};
pub use breakers::{watch_open_breakers, BreakerWatch};
pub use ledger::{
    describe_refusals, judge_refusals, AcceptedLead, Ledger, Phase, RefusalCount, RefusalProblem,
    RefusalRules, Refusals, Tally,
};
use patience::poll_until;
pub use patience::Patience;
pub use stores::{Checker, QueueTotals};
pub use traces::{LeadTraces, TraceTally};
pub use witness::{Witness, WitnessReport};

/// One thing that does not hold.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Finding {
    /// An accepted lead is not in `flow.leads`.
    LeadLost { tenant: String, lead: String },
    /// A lead has `n` `LEAD_CREATED` activities (not 1).
    Activities {
        tenant: String,
        lead: String,
        n: i64,
    },
    /// A lead is associated with `n` contacts (not 1), or not with the
    /// contact it names.
    Associations {
        tenant: String,
        lead: String,
        n: i64,
        detail: String,
    },
    /// `n` contacts of one tenant have the same email.
    ContactDuplicated {
        tenant: String,
        email: String,
        n: i64,
    },
    /// A lead is neither processed nor dead-lettered yet.
    Unprocessed { tenant: String, lead: String },
    /// A queue still holds work.
    QueueBusy {
        queue: String,
        size: u64,
        in_flight: u64,
        retrying: u64,
    },
    /// Fewer jobs of a queue were completed or dead-lettered than were
    /// accepted onto it.
    JobsUnsettled {
        queue: String,
        accepted: u64,
        settled: u64,
    },
    /// A service's breaker for a target is not closed.
    BreakerOpen {
        service: String,
        target: String,
        state: String,
    },
    /// A breaker read open, with no traffic, for longer than the platform's
    /// open time allows ([`breakers`]): what it shows does not follow the
    /// clock. `read_open` counts from the first read that saw it open.
    BreakerStale {
        service: String,
        target: String,
        read_open: Duration,
        open_time: Duration,
    },
    /// A store could not be read (which is pending: it may come back).
    Unreadable { what: String, error: String },
    /// An event delivered to a room has `rows` audit rows there, not 1
    /// (pending while 0: the audit is written in batches).
    Unaudited {
        tenant: String,
        app: String,
        event: String,
        event_type: String,
        rows: i64,
    },
    /// An audit row of a room no subscriber of which received the event.
    AuditWithoutDelivery {
        tenant: String,
        app: String,
        event: String,
    },
    /// An accepted lead's trace lacks a span the contract promises (pending:
    /// spans arrive in batches after the work).
    TraceIncomplete {
        tenant: String,
        lead: String,
        trace: String,
        missing: String,
    },
    /// An accepted lead's trace shows its processing queued as more than
    /// one job.
    TraceJobs {
        tenant: String,
        lead: String,
        trace: String,
        jobs: Vec<String>,
    },
    /// An accepted lead's job was processed in another trace than the
    /// lead's: the job lost its trace context.
    TraceContextLost {
        tenant: String,
        lead: String,
        job: String,
        trace: String,
        elsewhere: String,
    },
    /// An accepted write is not in the table the contract names for it.
    WriteLost {
        what: String,
        tenant: String,
        id: String,
        table: String,
    },
    /// Requests refused (`status`; `None`: not answered at all) in a way
    /// the suite does not allow in that phase ([`RefusalRules`]).
    Refused {
        phase: Phase,
        status: Option<u16>,
        count: u64,
        problem: RefusalProblem,
    },
    /// Jobs of a queue were dead-lettered during a run whose fault lasted
    /// `outage`, shorter than the queue's `retry-span` in the contract: the
    /// platform promises to ride out such an outage.
    DeadLettered {
        queue: String,
        count: u64,
        outage: Duration,
        span: Duration,
    },
}

impl Finding {
    /// Whether waiting can clear it.
    pub fn is_pending(&self) -> bool {
        matches!(
            self,
            Finding::Unprocessed { .. }
                | Finding::QueueBusy { .. }
                | Finding::JobsUnsettled { .. }
                | Finding::BreakerOpen { .. }
                | Finding::Unreadable { .. }
                | Finding::TraceIncomplete { .. }
                | Finding::Unaudited { rows: 0, .. }
                | Finding::AuditWithoutDelivery { .. }
        )
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Finding::LeadLost { tenant, lead } => {
                write!(f, "lead {lead} of {tenant} was accepted (201) and is gone")
            }
            Finding::Activities { tenant, lead, n } => write!(
                f,
                "lead {lead} of {tenant} has {n} LEAD_CREATED activities, not 1"
            ),
            Finding::Associations {
                tenant,
                lead,
                n,
                detail,
            } => write!(
                f,
                "lead {lead} of {tenant} has {n} contact associations, not 1{detail}"
            ),
            Finding::ContactDuplicated { tenant, email, n } => {
                write!(f, "tenant {tenant} has {n} contacts with email {email}")
            }
            Finding::Unprocessed { tenant, lead } => write!(
                f,
                "lead {lead} of {tenant} is neither processed (no contact) nor dead-lettered"
            ),
            Finding::QueueBusy {
                queue,
                size,
                in_flight,
                retrying,
            } => write!(
                f,
                "queue {queue} is not drained: {size} waiting, {in_flight} in flight, {retrying} retrying"
            ),
            Finding::JobsUnsettled {
                queue,
                accepted,
                settled,
            } => write!(
                f,
                "queue {queue} settled {settled} of the {accepted} jobs accepted onto it (completed or dead-lettered)"
            ),
            Finding::BreakerOpen {
                service,
                target,
                state,
            } => write!(f, "{service}'s circuit breaker for {target} is {state}"),
            Finding::BreakerStale {
                service,
                target,
                read_open,
                open_time,
            } => write!(
                f,
                "{service}'s circuit breaker for {target} has read open for {:.1}s with no traffic, though the platform's breakers open for {open_time:?} (`{}`): it should read half-open by now, so its circuit_breaker_state is stale",
                read_open.as_secs_f64(),
                breakers::OPEN_TIME_VAR,
            ),
            Finding::Unreadable { what, error } => write!(f, "cannot read {what}: {error}"),
            Finding::Unaudited {
                tenant,
                app,
                event,
                event_type,
                rows,
            } => write!(
                f,
                "event {event} ({event_type}) delivered to room ({tenant}, {app}) has {rows} audit rows, not 1"
            ),
            Finding::AuditWithoutDelivery { tenant, app, event } => write!(
                f,
                "the audit has a row for event {event} in room ({tenant}, {app}), which no subscriber of that room received"
            ),
            Finding::WriteLost {
                what,
                tenant,
                id,
                table,
            } => write!(
                f,
                "{what} ({id}) of {tenant} was accepted and is not in {table}, the store the contract names for it"
            ),
            Finding::DeadLettered {
                queue,
                count,
                outage,
                span,
            } => write!(
                f,
                "{count} {queue} job(s) dead-lettered during a {:.1} s outage; the contract's retry span is {} s",
                outage.as_secs_f64(),
                span.as_secs_f64()
            ),
            Finding::TraceIncomplete {
                tenant,
                lead,
                trace,
                missing,
            } => write!(f, "lead {lead} of {tenant}: its trace {trace} has {missing}"),
            Finding::TraceJobs {
                tenant,
                lead,
                trace,
                jobs,
            } => write!(
                f,
                "lead {lead} of {tenant} was queued as {} jobs ({}) in its trace {trace}: one lead, one job (the handlers are idempotent by job id, so each job processes the lead again)",
                jobs.len(),
                jobs.join(", ")
            ),
            Finding::TraceContextLost {
                tenant,
                lead,
                job,
                trace,
                elsewhere,
            } => write!(
                f,
                "lead {lead} of {tenant}: its job {job} was processed in trace {elsewhere}, not in the lead's trace {trace} (the job lost its trace context)"
            ),
            Finding::Refused {
                phase,
                status,
                count,
                problem,
            } => {
                let answered = match status {
                    Some(status) => format!("answered {status}"),
                    None => "not answered at all".to_owned(),
                };
                match problem {
                    RefusalProblem::NotAllowed { allowed } => {
                        let allowed: Vec<String> = allowed.iter().map(u16::to_string).collect();
                        write!(
                            f,
                            "{count} request(s) {answered} {phase}; allowed then: {} (with Retry-After)",
                            if allowed.is_empty() { "none".to_owned() } else { allowed.join(", ") }
                        )
                    }
                    RefusalProblem::NoRetryAfter => write!(
                        f,
                        "{count} request(s) {answered} {phase} without Retry-After: a client cannot tell when to come back"
                    ),
                    RefusalProblem::StillRefusing {
                        latest_after_heal_ms,
                        grace_ms,
                    } => write!(
                        f,
                        "still refusing {:.1} s after the heal (the grace period is {:.1} s): {count} request(s) {answered}",
                        *latest_after_heal_ms as f64 / 1000.0,
                        *grace_ms as f64 / 1000.0
                    ),
                }
            }
        }
    }
}

/// What a check found, with figures for the report.
#[derive(Debug, Clone, Default)]
pub struct Verdict {
    pub findings: Vec<Finding>,
    /// Accepted leads checked.
    pub leads: usize,
    /// Of those, processed (linked to a contact).
    pub processed: usize,
    /// The ids of the processed ones.
    pub processed_ids: std::collections::BTreeSet<uuid::Uuid>,
    /// Of those, in the dead-letter queue.
    pub dead_lettered: usize,
    /// What the leads' traces said, beside the findings
    /// ([`traces::LeadTraces`]).
    pub traces: TraceTally,
    /// How long settling took (zero for a single check).
    pub waited: Duration,
}

impl Verdict {
    /// Whether everything holds.
    pub fn holds(&self) -> bool {
        self.findings.is_empty()
    }

    /// Whether only pending findings are left (or none).
    fn settled(&self) -> bool {
        self.findings.iter().all(|f| !f.is_pending())
    }

    /// How much work the pending findings stand for: one per lead
    /// unprocessed, breaker open, trace or audit row still missing; the
    /// jobs a busy queue holds and an unsettled one still owes. Settling
    /// sees a new low as progress ([`Patience`]). None when a store could
    /// not be read: what it would have shown is not in the count.
    pub fn backlog(&self) -> Option<u64> {
        let mut backlog = 0;
        for finding in &self.findings {
            backlog += match finding {
                Finding::Unreadable { .. } => return None,
                Finding::QueueBusy {
                    size,
                    in_flight,
                    retrying,
                    ..
                } => (size + in_flight + retrying).max(1),
                Finding::JobsUnsettled {
                    accepted, settled, ..
                } => accepted.saturating_sub(*settled).max(1),
                f if f.is_pending() => 1,
                _ => 0,
            };
        }
        Some(backlog)
    }

    /// The findings, one per line, at most `max` of each kind, for messages.
    pub fn describe(&self, max: usize) -> String {
        let mut out = format!(
            "{} accepted leads: {} processed, {} dead-lettered; settled in {:.1} s",
            self.leads,
            self.processed,
            self.dead_lettered,
            self.waited.as_secs_f64()
        );
        if let Some(traces) = self.traces.describe() {
            out.push_str("; ");
            out.push_str(&traces);
        }
        let mut per_kind: Vec<(std::mem::Discriminant<Finding>, usize)> = Vec::new();
        for finding in &self.findings {
            let kind = std::mem::discriminant(finding);
            let count = match per_kind.iter_mut().find(|(k, _)| *k == kind) {
                Some((_, n)) => {
                    *n += 1;
                    *n
                }
                None => {
                    per_kind.push((kind, 1));
                    1
                }
            };
            if count <= max {
                out.push_str("\n  - ");
                out.push_str(&finding.to_string());
            } else if count == max + 1 {
                let more = self
                    .findings
                    .iter()
                    .filter(|f| std::mem::discriminant(*f) == kind)
                    .count()
                    - max;
                out.push_str(&format!("\n  - … and {more} more like it"));
            }
        }
        out
    }
}

/// Jobs a suite had accepted onto queues: the totals before, and how many
/// per queue. Settling then also waits for that many to be settled.
#[derive(Debug, Clone, Copy)]
pub struct JobsAccepted<'a> {
    pub before: &'a QueueTotals,
    pub accepted: &'a std::collections::BTreeMap<String, u64>,
    /// How long the suite's fault lasted, when it had one
    /// ([`crate::chaos::suite::Timeline::outage`]): jobs dead-lettered since
    /// `before` are then a [`Finding::DeadLettered`] on each queue whose
    /// contract `retry-span` is longer.
    pub outage: Option<Duration>,
}

impl Checker {
    /// Checks again and again until nothing pending is left or the
    /// platform has made no progress for `idle` ([`Patience`]), and returns
    /// the last verdict (with the time it took).
    pub async fn settle(&self, leads: &[AcceptedLead], idle: Duration) -> Verdict {
        self.settle_all(leads, None, &mut Patience::new(idle)).await
    }

    /// [`Checker::settle`], also holding the queues to `jobs`, with a
    /// patience that may span other waits.
    pub async fn settle_all(
        &self,
        leads: &[AcceptedLead],
        jobs: Option<JobsAccepted<'_>>,
        patience: &mut Patience,
    ) -> Verdict {
        poll_until(patience, || self.check_with(leads, jobs)).await
    }

    /// Waits until every service's breakers are closed, while `patience`
    /// lasts (a breaker closing is progress); the verdict holds the
    /// breakers still open.
    pub async fn settle_breakers(&self, patience: &mut Patience) -> Verdict {
        poll_until(patience, || async {
            let mut verdict = Verdict::default();
            self.check_breakers(&mut verdict).await;
            verdict
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lost(n: usize) -> Finding {
        Finding::LeadLost {
            tenant: "t".into(),
            lead: n.to_string(),
        }
    }

    #[test]
    fn pending_findings_are_told_from_broken_ones() {
        assert!(!lost(1).is_pending());
        let busy = Finding::QueueBusy {
            queue: "lead-processing".into(),
            size: 1,
            in_flight: 0,
            retrying: 0,
        };
        assert!(busy.is_pending());
        let verdict = Verdict {
            findings: vec![lost(1)],
            ..Verdict::default()
        };
        assert!(verdict.settled() && !verdict.holds());
        let verdict = Verdict {
            findings: vec![lost(1), busy],
            ..Verdict::default()
        };
        assert!(!verdict.settled());
    }

    #[test]
    fn a_description_caps_each_kind() {
        let verdict = Verdict {
            findings: (0..5).map(lost).collect(),
            leads: 5,
            ..Verdict::default()
        };
        let text = verdict.describe(2);
        assert!(
            text.contains("lead 0 of t was accepted (201) and is gone"),
            "{text}"
        );
        assert!(text.contains("lead 1 of t"), "{text}");
        assert!(!text.contains("lead 2 of t"), "{text}");
        assert!(text.contains("… and 3 more like it"), "{text}");
    }
}
