//! What each suite does to the ecosystem while the load runs, and how it
//! puts it back.

use std::time::{Duration, Instant};

use super::alert::AlertWatch;
use super::{waits, Plan, Stage, SuiteError, SuiteName};
use crate::chaos::Toxic;
use crate::env::{error_chain, Ecosystem, MockAdminError, MockHandle};

/// The mock the `mock-flaky` suite breaks: email sync reads the mailbox
/// through Graph.
pub(super) const FLAKY_MOCK: &str = "graph";

/// What happened when, for the report.
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    started: Option<Instant>,
    /// Seconds since the suite started, and what happened.
    pub entries: Vec<(f64, String)>,
    /// When the fault began (the component killed or frozen, the link cut,
    /// the mock failing), in seconds since the suite started.
    pub fault_began: Option<f64>,
    /// When it was healed (the component ready again, the link up, the mock
    /// healthy), in seconds since the suite started.
    pub fault_healed: Option<f64>,
}

impl Timeline {
    pub(super) fn start() -> Timeline {
        Timeline {
            started: Some(Instant::now()),
            ..Timeline::default()
        }
    }

    fn now(&self) -> f64 {
        self.started.map_or(0.0, |s| s.elapsed().as_secs_f64())
    }

    pub(super) fn note(&mut self, what: impl Into<String>) {
        let at = self.now();
        self.entries.push((at, what.into()));
    }

    /// Marks the start of the fault (the first mark counts: a fault of
    /// several phases began with the first). Marked just before the fault
    /// is done, not after: a request the kill cuts off is cut off by the
    /// fault, whenever the kill returns.
    fn began(&mut self) {
        if self.fault_began.is_none() {
            self.fault_began = Some(self.now());
        }
    }

    /// Marks the end of the fault.
    fn healed(&mut self) {
        self.fault_healed = Some(self.now());
    }

    /// The instant `secs` (one of the marks above) stands for.
    pub(super) fn instant(&self, secs: Option<f64>) -> Option<Instant> {
        Some(self.started? + Duration::from_secs_f64(secs?.max(0.0)))
    }

    /// How long the fault lasted, from its start to its heal: the outage
    /// the platform had to ride out. `None` until it has healed.
    pub fn outage(&self) -> Option<Duration> {
        let (began, healed) = (self.fault_began?, self.fault_healed?);
        Some(Duration::from_secs_f64((healed - began).max(0.0)))
    }
}

/// How long `suite` holds its fault where a plan holds the others' for
/// `usual`. `postgres-restarted`: 10 s in every plan, past what the
/// retries' count alone rides out (lead processing's three retries take
/// at most 0.5 + 1 + 2 s) and well inside the contract's `retry-span`
/// (30 s): the jobs the outage finds must all be retried, none
/// dead-lettered ([`crate::invariants::Finding::DeadLettered`]).
pub(super) fn hold(suite: SuiteName, usual: Duration) -> Duration {
    match suite {
        SuiteName::PostgresRestarted => POSTGRES_OUTAGE,
        _ => usual,
    }
}

/// How long `postgres-restarted` keeps Postgres down (see [`hold`]).
const POSTGRES_OUTAGE: Duration = Duration::from_secs(10);

/// Holds a fault for `hold`, then, with an alert to watch, until it fires.
async fn held(hold: Duration, alert: &mut Option<&mut AlertWatch>, timeline: &mut Timeline) {
    tokio::time::sleep(hold).await;
    if let Some(alert) = alert {
        timeline.note(alert.until_firing().await);
    }
}

/// Injects the suite's fault, holds it for the plan's `hold` (per phase;
/// with `alert`, also until that alert fires), and heals; the timeline
/// marks when the fault began and healed ([`Timeline::outage`]).
pub(super) async fn inject(
    eco: &Ecosystem,
    suite: SuiteName,
    plan: &Plan,
    stage: &Stage<'_>,
    mut sent: tokio::sync::watch::Receiver<usize>,
    timeline: &mut Timeline,
    mut alert: Option<&mut AlertWatch>,
) -> Result<(), SuiteError> {
    let hold = plan.hold;
    let fault = |what: &str, e: &(dyn std::error::Error + 'static)| SuiteError::Fault {
        suite: suite.as_str(),
        what: what.to_owned(),
        cause: error_chain(e),
    };
    match suite {
        SuiteName::RedisKilled => {
            let component = eco.component("redis").map_err(|e| fault("find", &e))?;
            timeline.began();
            component.kill().await.map_err(|e| fault("kill", &e))?;
            timeline.note("redis killed");
            held(hold, &mut alert, timeline).await;
            ready_again(component, "restarted", timeline)
                .await
                .map_err(|e| fault("restart", &e))?;
        }
        SuiteName::PostgresRestarted => {
            let name = "postgres";
            let component = eco.component(name).map_err(|e| fault("find", &e))?;
            // The worker's calls to the CRM slowed until it holds jobs, so
            // that the outage finds jobs in its hands, however fast the
            // machine: they fail while Postgres is down, and must ride the
            // outage out (retried, not dead-lettered: the contract's
            // `retry-span`).
            let link = eco
                .link("worker", "crm-api")
                .map_err(|e| fault("find the link", &e))?;
            link.add(Toxic::latency(WORKER_CRM_LATENCY, Duration::ZERO))
                .map_err(|e| fault("slow worker->crm-api", &e))?;
            let held_jobs = waits::jobs_held(eco, &mut sent).await;
            timeline.began();
            component.kill().await.map_err(|e| fault("kill", &e))?;
            link.reset()
                .map_err(|e| fault("heal worker->crm-api", &e))?;
            timeline.note(match held_jobs {
                Ok(n) => format!("{name} killed while the worker held {n} lead-processing job(s)"),
                Err(e) => format!("{name} killed; whether the worker held jobs is unknown: {e}"),
            });
            held(hold, &mut alert, timeline).await;
            ready_again(component, "restarted", timeline)
                .await
                .map_err(|e| fault("restart", &e))?;
        }
        SuiteName::MockFlaky => {
            let mock = flaky_mock(eco, suite)?;
            let http = eco
                .tls()
                .http()
                .build()
                .map_err(|e| fault("build an HTTP client for", &e))?;
            let failed = |what: String, e: MockAdminError| SuiteError::Fault {
                suite: suite.as_str(),
                what: format!("{what} on the {FLAKY_MOCK} mock"),
                cause: e.to_string(),
            };
            let ratio = plan.mock_failure_ratio;
            let share = format!("{:.0} %", ratio * 100.0);
            let phases = [
                (
                    tekup_mocks::Fault::status(500).ratio(ratio),
                    format!("{share} 500s"),
                ),
                (
                    tekup_mocks::Fault::rate_limit(Duration::from_secs(1)).ratio(ratio),
                    format!("{share} 429s with Retry-After: 1"),
                ),
            ];
            for (spec, label) in phases {
                mock.clear_faults(&http)
                    .await
                    .map_err(|e| failed("clear the faults".into(), e))?;
                timeline.began();
                mock.add_fault(&http, &spec)
                    .await
                    .map_err(|e| failed(format!("set the fault {spec:?}"), e))?;
                timeline.note(format!("{FLAKY_MOCK} answers {label}"));
                tokio::time::sleep(hold).await;
            }
            held(Duration::ZERO, &mut alert, timeline).await;
            if let Some(queue) = plan.heal_when_drained {
                // Until the driver is done, which it says by dropping its
                // sender: every request answered, every email sync queued
                // (a count of requests *started* would let the last syncs
                // be queued after the queue looked drained, and meet a
                // healed mock).
                while sent.changed().await.is_ok() {}
                let drained = drained(eco, queue, plan.recovery).await;
                timeline.note(match drained {
                    Ok(()) => format!("{queue} drained under the fault"),
                    Err(e) => format!("{queue} not drained under the fault: {e}"),
                });
            }
            mock.clear_faults(&http)
                .await
                .map_err(|e| failed("clear the faults".into(), e))?;
            timeline.healed();
            timeline.note(format!("{FLAKY_MOCK} healthy again"));
        }
        SuiteName::CrmPaused => {
            let crm = eco.component("crm-api").map_err(|e| fault("find", &e))?;
            timeline.began();
            crm.pause().await.map_err(|e| fault("pause crm-api", &e))?;
            timeline.note("crm-api paused");
            held(hold, &mut alert, timeline).await;
            crm.resume()
                .await
                .map_err(|e| fault("resume crm-api", &e))?;
            timeline.healed();
            timeline.note("crm-api resumed");
        }
        SuiteName::WorkerKilled => {
            let worker = eco.component("worker").map_err(|e| fault("find", &e))?;
            // The worker's calls to the CRM slowed, so that each job stays
            // in flight a while: the kill then finds jobs held, however
            // fast the machine processes them.
            let link = eco
                .link("worker", "crm-api")
                .map_err(|e| fault("find the link", &e))?;
            link.add(Toxic::latency(WORKER_CRM_LATENCY, Duration::ZERO))
                .map_err(|e| fault("slow worker->crm-api", &e))?;
            let held_jobs = waits::jobs_held(eco, &mut sent).await;
            timeline.began();
            worker
                .kill()
                .await
                .map_err(|e| fault("kill the worker", &e))?;
            timeline.note(match held_jobs {
                Ok(n) => format!("worker killed holding {n} lead-processing job(s)"),
                Err(e) => format!("worker killed; whether it held jobs is unknown: {e}"),
            });
            link.reset()
                .map_err(|e| fault("heal worker->crm-api", &e))?;
            held(hold, &mut alert, timeline).await;
            ready_again(worker, "started again", timeline)
                .await
                .map_err(|e| fault("restart the worker", &e))?;
        }
        SuiteName::FlowApiKilled => {
            let flow = eco.component("flow-api").map_err(|e| fault("find", &e))?;
            // What flow-api writes to Redis is held, so that each lead
            // stored from now on waits after its commit for its job to be
            // queued: the kill then finds leads there, however fast the
            // machine.
            let link = eco
                .link("flow-api", "redis")
                .map_err(|e| fault("find the link", &e))?;
            link.add(Toxic::timeout(Duration::ZERO).upstream())
                .map_err(|e| fault("hold flow-api->redis", &e))?;
            let stored = waits::stored_unanswered(stage.actors, stage.ledger, &mut sent).await;
            timeline.began();
            flow.kill().await.map_err(|e| fault("kill flow-api", &e))?;
            // Cutting the link drops what the proxy held for the dead
            // process: its last jobs never reach the queue. The toxic goes
            // only once every connection it held is closed, or what they
            // held would flow on.
            link.disable()
                .map_err(|e| fault("cut flow-api->redis", &e))?;
            closed(link)
                .await
                .map_err(|e| fault("close flow-api->redis's connections", &e))?;
            link.reset()
                .map_err(|e| fault("heal flow-api->redis", &e))?;
            timeline.note(match stored {
                Ok(n) => format!("flow-api killed with {n} lead(s) stored and not yet answered"),
                Err(e) => {
                    format!("flow-api killed; whether leads were stored unanswered is unknown: {e}")
                }
            });
            held(hold, &mut alert, timeline).await;
            ready_again(flow, "started again", timeline)
                .await
                .map_err(|e| fault("restart flow-api", &e))?;
        }
        SuiteName::CrmApiKilled => {
            let crm = eco.component("crm-api").map_err(|e| fault("find", &e))?;
            // The worker's requests to the CRM slowed on their way in, so
            // that the kill finds some arriving and some being served.
            let link = eco
                .link("worker", "crm-api")
                .map_err(|e| fault("find the link", &e))?;
            link.add(Toxic::latency(WORKER_CRM_LATENCY, Duration::ZERO).upstream())
                .map_err(|e| fault("slow worker->crm-api", &e))?;
            let held_jobs = waits::jobs_held(eco, &mut sent).await;
            timeline.began();
            crm.kill().await.map_err(|e| fault("kill crm-api", &e))?;
            link.reset()
                .map_err(|e| fault("heal worker->crm-api", &e))?;
            timeline.note(match held_jobs {
                Ok(n) => format!("crm-api killed while the worker held {n} lead-processing job(s)"),
                Err(e) => {
                    format!("crm-api killed; whether the worker was calling it is unknown: {e}")
                }
            });
            held(hold, &mut alert, timeline).await;
            ready_again(crm, "started again", timeline)
                .await
                .map_err(|e| fault("restart crm-api", &e))?;
        }
        SuiteName::GatewayRestarted => {
            let gateway = eco.component("gateway").map_err(|e| fault("find", &e))?;
            let primed = waits::subscribers_primed(stage.subscribers, &mut sent).await;
            timeline.note(match primed {
                Ok(()) => "every subscriber has an event to resume from".to_owned(),
                Err(e) => format!("restarting anyway: {e}"),
            });
            held(Duration::ZERO, &mut alert, timeline).await;
            timeline.began();
            let took = gateway
                .restart_gracefully()
                .await
                .map_err(|e| fault("restart the gateway", &e))?;
            timeline.healed();
            timeline.note(format!(
                "gateway stopped (SIGTERM) and started again (ready in {:.1} s)",
                took.as_secs_f64()
            ));
        }
        SuiteName::GatewayPartition => {
            let link = eco
                .link("gateway", "redis")
                .map_err(|e| fault("find the link", &e))?;
            timeline.began();
            link.disable()
                .map_err(|e| fault("cut gateway->redis", &e))?;
            timeline.note("gateway->redis partitioned (down)");
            held(hold, &mut alert, timeline).await;
            link.enable()
                .map_err(|e| fault("heal gateway->redis", &e))?;
            timeline.healed();
            timeline.note("gateway->redis healed");
        }
    }
    if let Some(outage) = timeline.outage() {
        timeline.note(format!("the fault lasted {:.1} s", outage.as_secs_f64()));
    }
    Ok(())
}

/// Puts back what a failed injection may have left: the suite's component
/// restarted, links up, mock faults gone. Problems are returned as text
/// for the report; restoring goes on past them.
pub(super) async fn restore(eco: &Ecosystem, suite: SuiteName) -> Vec<String> {
    let mut problems = Vec::new();
    let component = match suite {
        SuiteName::RedisKilled => Some("redis"),
        SuiteName::PostgresRestarted => Some("postgres"),
        SuiteName::WorkerKilled => Some("worker"),
        SuiteName::FlowApiKilled => Some("flow-api"),
        SuiteName::CrmApiKilled => Some("crm-api"),
        SuiteName::GatewayRestarted => Some("gateway"),
        SuiteName::MockFlaky | SuiteName::GatewayPartition => None,
        SuiteName::CrmPaused => {
            if let Ok(crm) = eco.component("crm-api") {
                if let Err(e) = crm.resume().await {
                    problems.push(format!("resuming crm-api: {}", error_chain(&e)));
                }
            }
            None
        }
    };
    if let Some(name) = component {
        if let Ok(component) = eco.component(name) {
            if let Err(e) = component.restart().await {
                problems.push(format!("restarting {name}: {}", error_chain(&e)));
            }
        }
    }
    if let Err(e) = eco.reset_links() {
        problems.push(format!("healing the links: {}", error_chain(&e)));
    }
    if let Ok(mock) = flaky_mock(eco, suite) {
        let cleared = match eco.tls().http().build() {
            Ok(http) => mock.clear_faults(&http).await.map_err(|e| e.to_string()),
            Err(e) => Err(error_chain(&e)),
        };
        if let Err(e) = cleared {
            problems.push(format!("clearing the {FLAKY_MOCK} mock's faults: {e}"));
        }
    }
    problems
}

/// The delay `worker-killed`, `crm-api-killed` and `postgres-restarted`
/// put on each of the worker's CRM calls while they wait for jobs held (a
/// job makes two or three).
const WORKER_CRM_LATENCY: Duration = Duration::from_millis(200);

/// Starts a killed component again, marks the heal and notes when it was
/// ready: `{name} {what} (ready in 0.1 s)`.
async fn ready_again(
    component: &crate::env::ComponentHandle,
    what: &str,
    timeline: &mut Timeline,
) -> Result<(), crate::env::EnvError> {
    let took = component.restart().await?;
    timeline.healed();
    timeline.note(format!(
        "{} {what} (ready in {:.1} s)",
        component.name(),
        took.as_secs_f64()
    ));
    Ok(())
}

/// How long a disabled link's connections may take to close.
const CLOSE_WITHIN: Duration = Duration::from_secs(10);

/// Waits until a disabled link has no connection left open.
async fn closed(link: &crate::chaos::Proxy) -> Result<(), std::io::Error> {
    let deadline = Instant::now() + CLOSE_WITHIN;
    while link.stats().active > 0 {
        if Instant::now() >= deadline {
            return Err(std::io::Error::other(format!(
                "{} connection(s) still open after {CLOSE_WITHIN:?}",
                link.stats().active
            )));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

fn flaky_mock(eco: &Ecosystem, suite: SuiteName) -> Result<MockHandle, SuiteError> {
    eco.mock(FLAKY_MOCK).map_err(|e| SuiteError::Fault {
        suite: suite.as_str(),
        what: format!("find the {FLAKY_MOCK} mock"),
        cause: error_chain(&e),
    })
}

/// Waits until `queue` has nothing waiting, in flight or retrying, as the
/// platform's `GET /admin/queues` says: up to `within` while no queue moves.
/// On a busy machine the worker may reach `queue` only after the others
/// (priorities), so a wait that runs out while the worker is still working
/// (jobs of any queue completed or dead-lettered meanwhile) goes on, up to
/// ten times `within` in all.
async fn drained(eco: &Ecosystem, queue: &str, within: Duration) -> Result<(), String> {
    let platform = crate::platform::Platform::from_ecosystem(eco).map_err(|e| e.to_string())?;
    let services = [crate::platform::TENANT_SERVICE];
    let cap = Instant::now() + within * 10;
    let mut done = work_done(&platform).await?;
    loop {
        match platform
            .wait_queues_idle(&services, Some(queue), within)
            .await
        {
            Ok(crate::platform::Queues::Idle) => return Ok(()),
            Ok(crate::platform::Queues::Unknown) => {
                return Err(format!("/admin/queues names no queue `{queue}`"))
            }
            Err(busy) => {
                let now = work_done(&platform).await?;
                if now == done || Instant::now() >= cap {
                    return Err(busy);
                }
                done = now;
            }
        }
    }
}

/// Jobs completed or dead-lettered so far, over every queue.
async fn work_done(platform: &crate::platform::Platform) -> Result<u64, String> {
    let listed = platform
        .queue_list(&[crate::platform::TENANT_SERVICE])
        .await?
        .unwrap_or_default();
    Ok(listed
        .iter()
        .map(|q| q["processed"].as_u64().unwrap_or(0) + q["deadLetters"].as_u64().unwrap_or(0))
        .sum())
}
