//! The traces as a second witness beside the stores.
//!
//! Each lead a suite creates gets a trace of its own: the request carries a
//! `traceparent` the run minted ([`LeadTraces::begin`]), so every span the
//! platform records for that lead (the request, the job it queued, each
//! attempt at processing it) lands in a trace the harness can name. The
//! contract (`contract/README.md`, "Traces") promises, for an accepted
//! lead, in that trace:
//!
//! - the server span of `POST /leads`, `tekup.operation = createLead`;
//! - one producer span `enqueue.process-lead`, naming the job it queued
//!   (`tekup.job.id`): one lead, one job;
//! - consumer spans `process.process-lead` for that job, one per attempt,
//!   a failed attempt with status `ERROR`; the job ends in an attempt that
//!   succeeded or in one with a `dead_letter` event.
//!
//! What the stores cannot tell, the traces can: a lead queued as two jobs
//! is processed twice, and the handlers' idempotence (by job id, per
//! `platform.yaml`) hides it from every table; a job that dropped its
//! trace context is processed all the same, in a trace of its own. Those
//! are broken findings. A span not there yet is pending (spans arrive in
//! batches, after the work), so settling waits for it like for the stores.
//!
//! A job processed successfully more than once is counted, not held
//! against the platform: delivery is at least once (an acknowledgement
//! lost to a Redis outage brings the job back), and the stores judge
//! whether its effects doubled.
//!
//! When no span of the run's traces has arrived at all (services that do
//! not export, a deployment exporting elsewhere), the traces are not
//! checked and the verdict says so: the stores remain the witness.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::{AcceptedLead, Finding, Verdict};
use crate::env::Ecosystem;
use crate::trace::{Span, SpanKind, SpanStore, StatusCode, TracePrefix};

/// `tekup.operation` of `POST /leads`'s server span (its `operationId`).
const CREATE_LEAD: &str = "createLead";
/// `tekup.operation` of the producer span that queues a lead's processing.
const ENQUEUE: &str = "enqueue.process-lead";
/// `tekup.operation` of each attempt at processing it.
const PROCESS: &str = "process.process-lead";
/// The event on the attempt that dead-lettered the job.
const DEAD_LETTER: &str = "dead_letter";
/// The job's id, on the producer and the consumer spans.
const JOB_ID: &str = "tekup.job.id";

/// Mints a trace per lead and holds the leads to their traces.
#[derive(Debug, Clone)]
pub struct LeadTraces {
    store: Arc<SpanStore>,
    prefix: TracePrefix,
    next: Arc<AtomicU64>,
}

/// What the traces said of a set of leads, beside the findings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TraceTally {
    /// Leads held to their traces.
    pub followed: usize,
    /// Of those, leads whose job was processed successfully more than once.
    pub reprocessed: usize,
    /// Why the traces were not checked, when they were not.
    pub skipped: Option<String>,
}

impl LeadTraces {
    /// The traces of `eco`, or `None` when its spans do not reach the
    /// harness ([`Ecosystem::traces_unavailable`]).
    pub fn of(eco: &Ecosystem) -> Option<LeadTraces> {
        if eco.traces_unavailable().is_some() {
            return None;
        }
        Some(LeadTraces::new(Arc::clone(eco.traces())))
    }

    /// Traces minted under a fresh prefix, read from `store`.
    pub fn new(store: Arc<SpanStore>) -> LeadTraces {
        LeadTraces {
            store,
            prefix: TracePrefix::random(),
            next: Arc::new(AtomicU64::new(1)),
        }
    }

    /// A new trace: the `traceparent` to send and its trace id.
    pub fn begin(&self) -> (String, String) {
        let seq = self.next.fetch_add(1, Ordering::Relaxed);
        (self.prefix.traceparent(seq), self.prefix.trace_id(seq))
    }

    /// Holds each of `leads` that has a trace to what the contract
    /// promises of it; adds the findings to `verdict`. `dead` are the
    /// leads the stores hold dead-lettered (for the findings' wording).
    pub(super) fn check(
        &self,
        leads: &[AcceptedLead],
        dead: &BTreeSet<uuid::Uuid>,
        verdict: &mut Verdict,
    ) -> TraceTally {
        let traced: Vec<(&AcceptedLead, &str)> = leads
            .iter()
            .filter_map(|l| l.trace.as_deref().map(|t| (l, t)))
            .collect();
        let mut tally = TraceTally::default();
        if traced.is_empty() {
            return tally;
        }
        let spans = self.store.of_run(&self.prefix);
        if spans.is_empty() {
            tally.skipped = Some(
                "no span of the leads' traces arrived (the services export none to the harness); the stores alone were the witness"
                    .into(),
            );
            return tally;
        }
        let mut by_trace: HashMap<&str, Vec<&Span>> = HashMap::new();
        for span in &spans {
            by_trace.entry(&span.trace_id).or_default().push(span);
        }
        // Where each job's attempts went, across every trace: built only if
        // some job is missing from its own.
        let mut elsewhere: Option<HashMap<String, BTreeSet<String>>> = None;
        for (lead, trace) in traced {
            tally.followed += 1;
            let spans = by_trace.get(trace).map(Vec::as_slice).unwrap_or_default();
            let state = if verdict.processed_ids.contains(&lead.id) {
                "processed"
            } else if dead.contains(&lead.id) {
                "dead-lettered"
            } else {
                "not processed yet"
            };
            let incomplete = |missing: String| Finding::TraceIncomplete {
                tenant: lead.tenant.clone(),
                lead: lead.id.to_string(),
                trace: trace.to_owned(),
                missing,
            };
            if !spans
                .iter()
                .any(|s| s.kind == SpanKind::Server && s.operation() == Some(CREATE_LEAD))
            {
                verdict
                    .findings
                    .push(incomplete(format!("no `{CREATE_LEAD}` server span")));
            }
            let jobs: BTreeSet<String> = spans
                .iter()
                .filter(|s| s.kind == SpanKind::Producer && s.operation() == Some(ENQUEUE))
                .map(|s| s.attribute_text(JOB_ID).unwrap_or_default())
                .collect();
            let job = match jobs.len() {
                0 => {
                    verdict.findings.push(incomplete(format!(
                        "no `{ENQUEUE}` producer span (the stores: {state})"
                    )));
                    continue;
                }
                1 => jobs.into_iter().next().unwrap_or_default(),
                _ => {
                    verdict.findings.push(Finding::TraceJobs {
                        tenant: lead.tenant.clone(),
                        lead: lead.id.to_string(),
                        trace: trace.to_owned(),
                        jobs: jobs.into_iter().collect(),
                    });
                    continue;
                }
            };
            let attempts: Vec<&&Span> = spans
                .iter()
                .filter(|s| {
                    s.kind == SpanKind::Consumer
                        && s.operation() == Some(PROCESS)
                        && s.attribute_text(JOB_ID).as_deref() == Some(job.as_str())
                })
                .collect();
            let succeeded = attempts
                .iter()
                .filter(|s| s.status.code != StatusCode::Error)
                .count();
            let dead_lettered = attempts
                .iter()
                .any(|s| s.events.iter().any(|e| e.name == DEAD_LETTER));
            if succeeded > 1 {
                tally.reprocessed += 1;
            }
            if succeeded > 0 || dead_lettered {
                continue;
            }
            let index = elsewhere.get_or_insert_with(|| self.attempts_by_job());
            match index
                .get(&job)
                .and_then(|t| t.iter().find(|t| t.as_str() != trace))
            {
                Some(other) => verdict.findings.push(Finding::TraceContextLost {
                    tenant: lead.tenant.clone(),
                    lead: lead.id.to_string(),
                    job,
                    trace: trace.to_owned(),
                    elsewhere: other.clone(),
                }),
                None => verdict.findings.push(incomplete(format!(
                    "no attempt at job {job} that succeeded or dead-lettered it, of {} (the stores: {state})",
                    attempts.len()
                ))),
            }
        }
        tally
    }

    /// The traces each job's processing attempts were recorded in, over
    /// every span received (another run's too: a job that lost its context
    /// starts a trace no run owns).
    fn attempts_by_job(&self) -> HashMap<String, BTreeSet<String>> {
        let mut index: HashMap<String, BTreeSet<String>> = HashMap::new();
        for span in self
            .store
            .matching(|s| s.kind == SpanKind::Consumer && s.operation() == Some(PROCESS))
        {
            if let Some(job) = span.attribute_text(JOB_ID) {
                index.entry(job).or_default().insert(span.trace_id);
            }
        }
        index
    }
}

impl TraceTally {
    /// One line for a verdict's description, or `None` when nothing was
    /// followed and nothing skipped.
    pub fn describe(&self) -> Option<String> {
        if let Some(why) = &self.skipped {
            return Some(format!("traces not checked: {why}"));
        }
        (self.followed > 0).then(|| {
            format!(
                "traces: {} leads followed; {} processed successfully more than once (allowed: delivery is at least once)",
                self.followed, self.reprocessed
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::trace::{SpanEvent, SpanStatus};

    struct Lead {
        traces: LeadTraces,
        lead: AcceptedLead,
        trace: String,
    }

    fn lead(traces: &LeadTraces) -> Lead {
        let (_, trace) = traces.begin();
        Lead {
            traces: traces.clone(),
            lead: AcceptedLead {
                tenant: "t".into(),
                id: uuid::Uuid::new_v4(),
                email: "a@t.example".into(),
                trace: Some(trace.clone()),
            },
            trace,
        }
    }

    fn span(trace: &str, kind: SpanKind, op: &str, job: Option<&str>) -> Span {
        let mut attributes = BTreeMap::new();
        attributes.insert("tekup.operation".into(), op.into());
        if let Some(job) = job {
            attributes.insert(JOB_ID.into(), job.into());
        }
        Span {
            trace_id: trace.into(),
            span_id: format!("{:016x}", rand::random::<u64>()),
            parent_span_id: None,
            service: "x".into(),
            name: op.into(),
            kind,
            start_unix_nano: 1,
            end_unix_nano: 2,
            attributes,
            events: Vec::new(),
            status: SpanStatus::default(),
        }
    }

    impl Lead {
        fn has(&self, kind: SpanKind, op: &str, job: Option<&str>) -> &Self {
            self.traces.store.insert([span(&self.trace, kind, op, job)]);
            self
        }

        fn attempt(&self, trace: &str, job: &str, failed: bool, dead: bool) -> &Self {
            let mut s = span(trace, SpanKind::Consumer, PROCESS, Some(job));
            if failed {
                s.status.code = StatusCode::Error;
            }
            if dead {
                s.events.push(SpanEvent {
                    name: DEAD_LETTER.into(),
                    time_unix_nano: 2,
                    attributes: BTreeMap::new(),
                });
            }
            self.traces.store.insert([s]);
            self
        }

        fn accepted(&self) -> &Self {
            self.has(SpanKind::Server, CREATE_LEAD, None)
        }
    }

    fn check(traces: &LeadTraces, leads: &[&Lead]) -> (Verdict, TraceTally) {
        let leads: Vec<AcceptedLead> = leads.iter().map(|l| l.lead.clone()).collect();
        let mut verdict = Verdict::default();
        let tally = traces.check(&leads, &BTreeSet::new(), &mut verdict);
        (verdict, tally)
    }

    #[test]
    fn a_lead_queued_once_and_processed_holds() {
        let traces = LeadTraces::new(SpanStore::new());
        let ok = lead(&traces);
        ok.accepted()
            .has(SpanKind::Producer, ENQUEUE, Some("j1"))
            .attempt(&ok.trace, "j1", true, false)
            .attempt(&ok.trace, "j1", false, false);
        let dead = lead(&traces);
        dead.accepted()
            .has(SpanKind::Producer, ENQUEUE, Some("j2"))
            .attempt(&dead.trace, "j2", true, true);
        let (verdict, tally) = check(&traces, &[&ok, &dead]);
        assert!(verdict.findings.is_empty(), "{:?}", verdict.findings);
        assert_eq!(tally.followed, 2);
        assert_eq!(tally.reprocessed, 0);
    }

    #[test]
    fn a_lead_queued_twice_is_broken() {
        let traces = LeadTraces::new(SpanStore::new());
        let twice = lead(&traces);
        twice
            .accepted()
            .has(SpanKind::Producer, ENQUEUE, Some("j1"))
            .has(SpanKind::Producer, ENQUEUE, Some("j2"))
            .attempt(&twice.trace, "j1", false, false)
            .attempt(&twice.trace, "j2", false, false);
        let (verdict, _) = check(&traces, &[&twice]);
        assert!(
            matches!(&verdict.findings[..], [f @ Finding::TraceJobs { jobs, .. }]
                if jobs == &["j1", "j2"] && !f.is_pending()),
            "{:?}",
            verdict.findings
        );
        assert!(verdict.findings[0].to_string().contains("queued as 2 jobs"));
    }

    #[test]
    fn a_job_processed_in_another_trace_lost_its_context() {
        let traces = LeadTraces::new(SpanStore::new());
        let lost = lead(&traces);
        lost.accepted()
            .has(SpanKind::Producer, ENQUEUE, Some("j1"))
            .attempt(&"e".repeat(32), "j1", false, false);
        let (verdict, _) = check(&traces, &[&lost]);
        assert!(
            matches!(&verdict.findings[..], [f @ Finding::TraceContextLost { elsewhere, .. }]
                if elsewhere == &"e".repeat(32) && !f.is_pending()),
            "{:?}",
            verdict.findings
        );
    }

    #[test]
    fn what_has_not_arrived_is_pending_and_named() {
        let traces = LeadTraces::new(SpanStore::new());
        let waiting = lead(&traces);
        waiting
            .accepted()
            .has(SpanKind::Producer, ENQUEUE, Some("j1"))
            .attempt(&waiting.trace, "j1", true, false);
        let unqueued = lead(&traces);
        unqueued.accepted();
        let (verdict, _) = check(&traces, &[&waiting, &unqueued]);
        assert_eq!(verdict.findings.len(), 2, "{:?}", verdict.findings);
        assert!(verdict.findings.iter().all(Finding::is_pending));
        let text: Vec<String> = verdict.findings.iter().map(ToString::to_string).collect();
        assert!(
            text[0].contains("no attempt at job j1 that succeeded or dead-lettered it, of 1"),
            "{text:?}"
        );
        assert!(text[1].contains("no `enqueue.process-lead`"), "{text:?}");
    }

    #[test]
    fn reprocessing_is_counted_not_held_against_the_platform() {
        let traces = LeadTraces::new(SpanStore::new());
        let again = lead(&traces);
        again
            .accepted()
            .has(SpanKind::Producer, ENQUEUE, Some("j1"))
            .attempt(&again.trace, "j1", false, false)
            .attempt(&again.trace, "j1", false, false);
        let (verdict, tally) = check(&traces, &[&again]);
        assert!(verdict.findings.is_empty(), "{:?}", verdict.findings);
        assert_eq!(tally.reprocessed, 1);
    }

    #[test]
    fn without_any_span_the_traces_are_skipped_and_say_so() {
        let traces = LeadTraces::new(SpanStore::new());
        let quiet = lead(&traces);
        let (verdict, tally) = check(&traces, &[&quiet]);
        assert!(verdict.findings.is_empty());
        assert!(tally
            .describe()
            .is_some_and(|d| d.starts_with("traces not checked")));
    }
}
