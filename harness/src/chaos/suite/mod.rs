//! Chaos suites: steady load while a fault happens, then the invariants.
//!
//! Each suite runs the same shape:
//!
//! 1. fresh tenants; for `gateway-partition` and `gateway-restarted`, one WebSocket subscriber
//!    per tenant (as `crm-web`, a room `LEAD_CREATED` is routed to);
//! 2. steady load ([`drive`]): leads at a fixed rate, each email twice,
//!    plus email syncs for `mock-flaky`;
//! 3. once a share of the load is sent (`fault_at`, counted in requests
//!    rather than seconds, so a slow machine shifts the clock, not the
//!    plan), the fault ([`faults`]): held for `hold`, then healed while the
//!    load goes on, so breakers see traffic to close on;
//! 4. when the load is done, a trickle of it goes on (breakers close only
//!    on traffic) while the [`Checker`] settles, for as long as the
//!    platform makes progress and at most the stated recovery time without
//!    any ([`Patience`]): no accepted lead lost, none with other than one
//!    contact association and one activity, no contact twice, every lead
//!    processed or dead-lettered, every accepted job settled, queues
//!    drained, breakers closed; where the services' spans reach the
//!    harness, each lead is also held to its own trace (the load sends
//!    one per lead): one `createLead`, one job queued, that job processed
//!    or dead-lettered in the same trace ([`crate::invariants::traces`]);
//!    for `gateway-partition` and `gateway-restarted` also every
//!    processed lead's `LEAD_CREATED` delivered to its tenant's subscriber
//!    exactly once, nothing of another tenant, and the gateway's audit
//!    ([`crate::invariants::Audit`]) one row per delivery to a subscriber's
//!    room and no row without one;
//! 5. a witness tenant, set up beside the suite's tenants before the load
//!    ([`crate::invariants::Witness`]), has seen and suffered nothing;
//! 6. the refusals are judged by phase ([`SuiteName::refusal_rules`]):
//!    before the fault nothing but a 429; during it and a grace period
//!    after the heal (`grace`) only what the fault explains (a 503 when a
//!    dependency on the request's path is down, no answer when the service
//!    itself is killed); after that nothing but a 429 ("still refusing
//!    12 s after the heal" is a finding). Every 429 and 503 must carry
//!    `Retry-After`, and the load's clients honour it: they send the same
//!    lead again after that long, and a lead accepted on a retry is held
//!    to the invariants like any other.
//!
//! With the ecosystem's optional Prometheus running (`--prometheus`), the
//! report lists the alerts it fired from the first request to the end of
//! the checks, and when they resolved ([`crate::alerts::AlertLog`]); and a
//! suite whose fault the platform's rules must see ([`SuiteName::alert`]:
//! `crm-paused`, `ServiceDown`) holds its fault until that alert fires and
//! fails unless it fires and then resolves after the heal ([`alert`]).
//!
//! The suites are the list: Redis killed and restarted during
//! 1,000 lead creations; Postgres killed and restarted; a mock failing
//! 50 % with 500s and then 429s; a partition between gateway and Redis.
//! A fifth freezes the CRM API (`pause`), so the worker's calls hang rather
//! than fail: requests the worker gave up on may still be served after the
//! thaw, which is where a non-idempotent handler would duplicate. A sixth
//! SIGKILLs the worker while it holds jobs (its CRM calls slowed so that it
//! does, and the kill waits until `/admin/queues` shows jobs in flight),
//! then starts it again: the jobs it held must be taken over and processed
//! (the platform promises queued work survives a worker crash). Three more
//! kill a service in the middle of its work, once [`waits`] sees it there:
//! `flow-api-killed` (leads stored, their answers not out yet: every stored
//! lead is held to the invariants, answered or not), `crm-api-killed` (the
//! worker's calls arriving) and `gateway-restarted` (subscribers that
//! resume from their last event: nothing missed, nothing twice).
//! [`Plan::full`] is that size; [`Plan::bounded`] is the size CI runs.
//! A job dead-lettered during a fault shorter than its queue's contract
//! `retry-span` is a finding ([`crate::invariants::Finding::DeadLettered`]):
//! `postgres-restarted` holds Postgres down 10 s in both to show none is.

mod alert;
mod check;
mod drive;
mod faults;
mod waits;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use alert::AlertWatch;
pub use alert::{AlertCheck, ExpectedAlert};
use check::{check_audit, check_events};
use drive::Actors;
pub use drive::Load;
pub use faults::Timeline;

use crate::env::{error_chain, Ecosystem};
use crate::invariants::{
    describe_refusals, judge_refusals, Checker, JobsAccepted, Ledger, Patience, RefusalRules,
    Refusals, Tally, Verdict, Witness, WitnessReport,
};
use crate::platform::{Platform, Subscriber, TenantKey};

/// What a fault may look at while the load runs (see [`waits`]).
pub(super) struct Stage<'a> {
    actors: &'a [Actors],
    ledger: &'a Ledger,
    subscribers: &'a [(TenantKey, Subscriber)],
}

/// Leads per second while the checks settle.
const TRICKLE_RATE: f64 = 2.0;
/// How long after the heal the platform may refuse: a service reconnects
/// to a dependency that came back within this (the reference services'
/// Redis clients retry within a second or two, their Postgres pool on the
/// next request).
const GRACE: Duration = Duration::from_secs(5);
/// The app `gateway-partition`'s subscribers connect as: a room
/// `LEAD_CREATED` is routed to.
const SUBSCRIBER_APP: &str = "crm-web";

/// The chaos suites.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SuiteName {
    RedisKilled,
    PostgresRestarted,
    MockFlaky,
    GatewayPartition,
    CrmPaused,
    WorkerKilled,
    FlowApiKilled,
    CrmApiKilled,
    GatewayRestarted,
}

impl SuiteName {
    pub const ALL: [SuiteName; 9] = [
        SuiteName::RedisKilled,
        SuiteName::PostgresRestarted,
        SuiteName::MockFlaky,
        SuiteName::GatewayPartition,
        SuiteName::CrmPaused,
        SuiteName::WorkerKilled,
        SuiteName::FlowApiKilled,
        SuiteName::CrmApiKilled,
        SuiteName::GatewayRestarted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SuiteName::RedisKilled => "redis-killed",
            SuiteName::PostgresRestarted => "postgres-restarted",
            SuiteName::MockFlaky => "mock-flaky",
            SuiteName::GatewayPartition => "gateway-partition",
            SuiteName::CrmPaused => "crm-paused",
            SuiteName::WorkerKilled => "worker-killed",
            SuiteName::FlowApiKilled => "flow-api-killed",
            SuiteName::CrmApiKilled => "crm-api-killed",
            SuiteName::GatewayRestarted => "gateway-restarted",
        }
    }

    /// Whether the suite kills a component that exports spans, so that
    /// what it recorded last is lost and the leads' traces cannot witness
    /// their processing.
    pub fn loses_spans(self) -> bool {
        matches!(self, SuiteName::WorkerKilled | SuiteName::FlowApiKilled)
    }

    /// Whether the suite keeps a WebSocket subscriber per tenant and holds
    /// the gateway's deliveries to account.
    fn subscribes(self) -> bool {
        matches!(
            self,
            SuiteName::GatewayPartition | SuiteName::GatewayRestarted
        )
    }

    /// What the suite allows of the load's refusals (see
    /// [`RefusalRules`]): a 503 only where its fault takes down a
    /// dependency of `POST /leads` (Redis, Postgres) or flow-api itself;
    /// no answer only where it kills flow-api. The other faults are off
    /// the requests' path: the worker, the CRM API (the worker calls it,
    /// not the request), the gateway, Graph.
    pub fn refusal_rules(self, grace: Duration) -> RefusalRules {
        let (during, unanswered_during): (&'static [u16], bool) = match self {
            SuiteName::RedisKilled | SuiteName::PostgresRestarted => (&[503], false),
            SuiteName::FlowApiKilled => (&[503], true),
            SuiteName::MockFlaky
            | SuiteName::GatewayPartition
            | SuiteName::CrmPaused
            | SuiteName::WorkerKilled
            | SuiteName::CrmApiKilled
            | SuiteName::GatewayRestarted => (&[], false),
        };
        RefusalRules {
            during,
            unanswered_during,
            grace,
        }
    }

    /// The suite of that name, or an error listing the names.
    pub fn parse(name: &str) -> Result<SuiteName, String> {
        SuiteName::ALL
            .into_iter()
            .find(|s| s.as_str() == name)
            .ok_or_else(|| {
                let names: Vec<&str> = SuiteName::ALL.iter().map(|s| s.as_str()).collect();
                format!(
                    "no chaos suite `{name}`; the suites are {}",
                    names.join(", ")
                )
            })
    }

    /// One line on what the suite does.
    pub fn describe(self) -> &'static str {
        match self {
            SuiteName::RedisKilled => "Redis killed, held down, restarted, during lead creation",
            SuiteName::PostgresRestarted => {
                "Postgres killed, held down, restarted, during lead creation"
            }
            SuiteName::MockFlaky => {
                "the Graph mock fails a share of calls (50 % by default) with 500s, then with 429s, during leads and email syncs"
            }
            SuiteName::GatewayPartition => {
                "the gateway loses Redis (link down) while leads are created and events subscribed"
            }
            SuiteName::CrmPaused => {
                "the CRM API frozen (SIGSTOP), then thawed, while the worker links leads to contacts"
            }
            SuiteName::WorkerKilled => {
                "the worker killed (SIGKILL) while it holds jobs, then started again"
            }
            SuiteName::FlowApiKilled => {
                "the Flow API killed (SIGKILL) while leads it stored await their answers, then started again"
            }
            SuiteName::CrmApiKilled => {
                "the CRM API killed (SIGKILL) while the worker's calls reach it, then started again"
            }
            SuiteName::GatewayRestarted => {
                "the gateway restarted (SIGTERM, then started again) while subscribers listen; they resume from their last event"
            }
        }
    }
}

/// How big a suite run is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Plan {
    pub load: Load,
    /// Fresh tenants the load is spread over.
    pub tenants: usize,
    /// The share of the load sent before the fault (0.0 to 1.0).
    pub fault_at: f64,
    /// How long the fault (each phase of it) lasts.
    pub hold: Duration,
    /// How long after the heal the platform may still refuse (see
    /// [`SuiteName::refusal_rules`]).
    pub grace: Duration,
    /// `mock-flaky`: the share of the mock's answers that fail.
    pub mock_failure_ratio: f64,
    /// How long the checks after the load may go on without progress
    /// ([`Patience`]): the platform gets the time it needs as long as it
    /// keeps working, and fails this long after it stops.
    pub recovery: Duration,
    /// `mock-flaky`: keep the last phase's fault until the load is done and
    /// this queue has nothing waiting, in flight or retrying (up to
    /// `recovery`), so that every job of it meets the fault whatever the
    /// machine's speed. None: heal after the phases.
    pub heal_when_drained: Option<&'static str>,
}

impl Plan {
    /// The size: 1,000 leads at 50/s, the fault after 30 % for 5 s
    /// (a phase; `postgres-restarted` 10 s), 60 s allowed without progress.
    pub fn full(suite: SuiteName) -> Plan {
        Plan {
            load: Load {
                leads: 1000,
                rate: 50.0,
                concurrency: 16,
                email_sync_every: (suite == SuiteName::MockFlaky).then_some(10),
            },
            tenants: 4,
            fault_at: 0.3,
            hold: faults::hold(suite, Duration::from_secs(5)),
            grace: GRACE,
            mock_failure_ratio: 0.5,
            recovery: Duration::from_secs(60),
            heal_when_drained: None,
        }
    }

    /// What CI runs: 300 leads at 40/s, the fault after 20 % for 2 s (a
    /// phase), so the load goes on for a few seconds after the last heal
    /// (`postgres-restarted` 10 s: the trickle after the load meets the
    /// healed platform).
    pub fn bounded(suite: SuiteName) -> Plan {
        Plan {
            load: Load {
                leads: 300,
                rate: 40.0,
                concurrency: 8,
                email_sync_every: (suite == SuiteName::MockFlaky).then_some(5),
            },
            tenants: 3,
            fault_at: 0.2,
            hold: faults::hold(suite, Duration::from_secs(2)),
            grace: GRACE,
            mock_failure_ratio: 0.5,
            recovery: Duration::from_secs(60),
            heal_when_drained: None,
        }
    }
}

/// Why a suite could not run (as opposed to the platform failing it,
/// which is a [`SuiteReport`] that did not pass).
#[derive(Debug, thiserror::Error)]
pub enum SuiteError {
    #[error("chaos suite {suite}: cannot start: {cause}")]
    Setup { suite: &'static str, cause: String },
    #[error("chaos suite {suite}: failed to {what}: {cause}")]
    Fault {
        suite: &'static str,
        what: String,
        cause: String,
    },
}

/// Events a tenant's subscriber should and did get.
#[derive(Debug, Clone, Default)]
pub struct EventCheck {
    /// Processed leads whose `LEAD_CREATED` never arrived.
    pub missing: usize,
    /// Events that arrived more than once (by event id).
    pub duplicated: usize,
    /// Events of another tenant.
    pub foreign: usize,
    /// Events received in all.
    pub received: usize,
    /// One line per problem, for the report (capped).
    pub problems: Vec<String>,
}

/// What a suite run found.
#[derive(Debug, Clone)]
pub struct SuiteReport {
    pub suite: SuiteName,
    pub plan: Plan,
    pub tally: Tally,
    /// Refused and unanswered attempts, by phase of the fault and status.
    pub refusals: Refusals,
    /// Jobs accepted per queue.
    pub jobs: BTreeMap<String, u64>,
    pub timeline: Timeline,
    pub verdict: Verdict,
    pub events: Option<EventCheck>,
    /// What the suite's witness tenant saw and suffered.
    pub witness: WitnessReport,
    /// From the first request to the end of the checks.
    pub took: Duration,
    /// Problems putting the ecosystem back after a failed injection.
    pub restore_problems: Vec<String>,
    /// The alerts the ecosystem's Prometheus fired from the first request
    /// to the end of the checks, when one ran (`--prometheus`).
    pub alerts: Option<crate::alerts::AlertLog>,
    /// The alert the suite's fault must fire and then resolve
    /// ([`SuiteName::alert`]), when Prometheus runs.
    pub alert: Option<AlertCheck>,
}

impl SuiteReport {
    /// Whether every invariant held within the recovery time.
    pub fn passed(&self) -> bool {
        self.verdict.holds()
            && self.witness.holds()
            && self.tally.accepted > 0
            && self.alert.as_ref().is_none_or(AlertCheck::holds)
            && self
                .events
                .as_ref()
                .is_none_or(|e| e.missing + e.duplicated + e.foreign == 0)
    }

    /// A few lines for people: the load, the faults, the verdict.
    pub fn summary(&self) -> String {
        let mut out = format!(
            "chaos suite {} ({}): {}\n  load: {} leads at {}/s over {} tenants; {} accepted ({} on a retry), {} refused, {} unanswered; jobs {:?}\n",
            self.suite.as_str(),
            self.suite.describe(),
            if self.passed() { "PASSED" } else { "FAILED" },
            self.plan.load.leads,
            self.plan.load.rate,
            self.plan.tenants,
            self.tally.accepted,
            self.tally.retried,
            self.tally.refused,
            self.tally.unanswered,
            self.jobs,
        );
        let refusals = describe_refusals(&self.refusals);
        if refusals.is_empty() {
            out.push_str("  refusals: none\n");
        } else {
            out.push_str(&format!(
                "  refusals (grace {:.0} s after the heal):\n",
                self.plan.grace.as_secs_f64()
            ));
            for line in refusals {
                out.push_str(&format!("    {line}\n"));
            }
        }
        for (at, what) in &self.timeline.entries {
            out.push_str(&format!("  {at:>6.1} s  {what}\n"));
        }
        out.push_str(&format!(
            "  invariants (allowed {:.0} s without progress): {}\n",
            self.plan.recovery.as_secs_f64(),
            self.verdict.describe(5)
        ));
        if self.tally.accepted == 0 {
            out.push_str("  - the platform accepted no lead at all: nothing was tested\n");
        }
        if let Some(events) = &self.events {
            out.push_str(&format!(
                "  events: {} received; {} missing, {} duplicated, {} of another tenant\n",
                events.received, events.missing, events.duplicated, events.foreign
            ));
            for problem in &events.problems {
                out.push_str(&format!("  - {problem}\n"));
            }
        }
        for problem in &self.restore_problems {
            out.push_str(&format!("  - restoring: {problem}\n"));
        }
        if let Some(alert) = &self.alert {
            for line in alert.describe().lines() {
                out.push_str(&format!("  {line}\n"));
            }
        }
        if let Some(alerts) = &self.alerts {
            for line in alerts.lines() {
                out.push_str(&format!("  alert: {line}\n"));
            }
        }
        for line in self.witness.describe(10).lines() {
            out.push_str(&format!("  {line}\n"));
        }
        out.push_str(&format!("  took {:.1} s", self.took.as_secs_f64()));
        out
    }
}

/// Runs one suite on `eco` (which must allow faults: the process or
/// docker runtime). `progress` hears a line at each stage.
pub async fn run(
    eco: &Ecosystem,
    suite: SuiteName,
    plan: &Plan,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<SuiteReport, SuiteError> {
    let setup = |cause: String| SuiteError::Setup {
        suite: suite.as_str(),
        cause,
    };
    let platform = Platform::from_ecosystem(eco).map_err(|e| setup(error_chain(&e)))?;
    let checker = Checker::new(eco, platform.clone()).await.map_err(setup)?;
    let mut tenants = Vec::new();
    for i in 0..plan.tenants.max(1) {
        let tenant = platform
            .create_tenant(&format!("chaos-{}-{i}", suite.as_str()))
            .await
            .map_err(|e| setup(error_chain(&e)))?;
        tenants.push(tenant);
    }
    let mut subscribers = Vec::new();
    if suite.subscribes() {
        for tenant in &tenants {
            let sub = platform
                .subscribe(tenant, SUBSCRIBER_APP, Duration::from_secs(10))
                .await
                .map_err(|e| setup(error_chain(&e)))?;
            subscribers.push((tenant.clone(), sub));
        }
    }
    // Before the totals are read, so its own jobs are not counted as the load's.
    let witness = Witness::set_up(eco, suite.as_str()).await;
    let before = checker
        .queue_totals()
        .await
        .map_err(|f| setup(f.to_string()))?;
    let actors: Vec<Actors> = tenants
        .iter()
        .map(|t| Actors {
            leads: platform.client(t, "flow-web"),
            inbox: platform.client(t, "inbox-ai"),
            traces: checker.traces().filter(|_| !suite.loses_spans()).cloned(),
        })
        .collect();

    let started = Instant::now();
    let began = std::time::SystemTime::now();
    let mut timeline = Timeline::start();
    progress(&format!(
        "{}: {} leads at {}/s over {} tenants; the fault after {:.0} %",
        suite.as_str(),
        plan.load.leads,
        plan.load.rate,
        tenants.len(),
        plan.fault_at * 100.0
    ));
    let ledger = Arc::new(Ledger::new());
    let (sent_tx, mut sent) = watch::channel(0usize);
    let stage = Stage {
        actors: &actors,
        ledger: &ledger,
        subscribers: &subscribers,
    };
    let load = tokio::spawn(drive::drive(
        actors.clone(),
        plan.load,
        Arc::clone(&ledger),
        sent_tx,
    ));
    let threshold = ((plan.load.leads as f64) * plan.fault_at).ceil() as usize;
    // The driver drops its sender when done, which ends the wait too.
    let _ = sent.wait_for(|n| *n >= threshold).await;
    timeline.note(format!("{threshold} requests started"));
    let mut alert = AlertWatch::new(eco, suite).await;
    if let Some(alert) = &mut alert {
        alert.fault_began();
    }
    let injecting = Instant::now();
    let injected = faults::inject(
        eco,
        suite,
        plan,
        &stage,
        sent.clone(),
        &mut timeline,
        alert.as_mut(),
    )
    .await;
    // The refusals' phases by the fault's own marks (the kill, the
    // restart ready), not by when the injection started and returned: it
    // may wait for the platform to be mid-work first.
    ledger.fault_window(
        timeline.instant(timeline.fault_began).unwrap_or(injecting),
        Some(
            timeline
                .instant(timeline.fault_healed)
                .unwrap_or_else(Instant::now),
        ),
        plan.grace,
    );
    if let Some(alert) = &mut alert {
        alert.healed();
    }
    let restore_problems = match &injected {
        Ok(()) => Vec::new(),
        Err(_) => faults::restore(eco, suite).await,
    };
    let load_result = load.await;
    let tally = ledger.tally();
    timeline.note(format!(
        "load done: {} accepted, {} refused, {} unanswered",
        tally.accepted, tally.refused, tally.unanswered
    ));
    injected?;
    if let Err(e) = load_result {
        return Err(setup(format!("the load task failed: {e}")));
    }
    progress(&format!(
        "{}: load done; settling (up to {:.0} s)",
        suite.as_str(),
        plan.recovery.as_secs_f64()
    ));

    // A breaker only closes on traffic (half-open lets a few calls through
    // and closes after enough succeed), so a trickle of the same load goes
    // on until every breaker is closed; its leads are held to the
    // invariants too.
    let trickle = tokio::spawn(drive::drive(
        actors.clone(),
        Load {
            leads: usize::MAX,
            rate: TRICKLE_RATE,
            concurrency: 2,
            ..plan.load
        },
        Arc::clone(&ledger),
        watch::channel(0).0,
    ));
    // One patience for every wait from here: each may take as long as the
    // platform keeps making progress, and the time without any runs on
    // from one wait to the next.
    let mut patience = Patience::new(plan.recovery);
    let first = checker.settle_breakers(&mut patience).await;
    trickle.abort();
    let _ = trickle.await;
    // Then everything, the trickle's leads included, in the time left; and
    // the leads the platform stored whose answers never came back (a
    // killed process, a dropped connection), which it owes the same.
    let mut leads = ledger.accepted_leads();
    let mut jobs = ledger.jobs();
    match waits::unanswered_leads(&actors, &leads).await {
        Ok(unanswered) => {
            timeline.note(format!(
                "{} lead(s) stored whose answer never came back: held to the same invariants",
                unanswered.len()
            ));
            *jobs.entry("lead-processing".to_owned()).or_default() += unanswered.len() as u64;
            leads.extend(unanswered);
        }
        Err(e) => timeline.note(format!("the stored leads could not be listed: {e}")),
    }
    let mut verdict = checker
        .settle_all(
            &leads,
            Some(JobsAccepted {
                before: &before,
                accepted: &jobs,
                outage: timeline.outage(),
            }),
            &mut patience,
        )
        .await;
    verdict.waited += first.waited;
    if suite.loses_spans() {
        verdict.traces.skipped = Some(format!(
            "the suite SIGKILLs the {}, and the spans it had not exported yet die with it",
            if suite == SuiteName::WorkerKilled {
                "worker"
            } else {
                "Flow API"
            }
        ));
    }
    let waited = verdict.waited.as_secs_f64();
    timeline.note(if patience.capped() {
        format!(
            "checks stopped after {waited:.1} s: the platform was still making progress, at {}x the recovery time",
            crate::invariants::patience::CAP_FACTOR
        )
    } else if patience.exhausted() {
        format!(
            "checks gave up after {waited:.1} s: no progress for {:.0} s",
            plan.recovery.as_secs_f64()
        )
    } else {
        format!("checks settled after {waited:.1} s")
    });
    let events = if subscribers.is_empty() {
        None
    } else {
        let events = check_events(&subscribers, &leads, &verdict, &mut patience).await;
        let audit = check_audit(&checker, &subscribers, &mut patience).await;
        timeline.note(format!(
            "audit checked in {:.1} s: {} finding(s)",
            audit.waited.as_secs_f64(),
            audit.findings.len()
        ));
        verdict.findings.extend(audit.findings);
        let resumed: usize = subscribers.iter().map(|(_, s)| s.resumed().len()).sum();
        if resumed > 0 {
            timeline.note(format!("subscribers resumed {resumed} time(s)"));
        }
        Some(events)
    };
    // The load and its trickle are over: these are all the refusals.
    let refusals = ledger.refusals();
    verdict
        .findings
        .extend(judge_refusals(&refusals, &suite.refusal_rules(plan.grace)));
    let witness = witness.check().await;
    let alert = match alert {
        Some(alert) => Some(alert.until_resolved(patience.left()).await),
        None => None,
    };
    let alerts = crate::alerts::AlertLog::of_run(eco, began).await;
    Ok(SuiteReport {
        suite,
        plan: *plan,
        tally: ledger.tally(),
        refusals,
        jobs,
        timeline,
        verdict,
        events,
        witness,
        took: started.elapsed(),
        restore_problems,
        alerts,
        alert,
    })
}
