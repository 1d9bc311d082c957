//! What each suite does to the ecosystem while the load runs, and how it
//! puts it back.

use std::time::{Duration, Instant};

use super::alert::AlertWatch;
use super::{Plan, SuiteError, SuiteName};
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
}

impl Timeline {
    pub(super) fn start() -> Timeline {
        Timeline {
            started: Some(Instant::now()),
            entries: Vec::new(),
        }
    }

    pub(super) fn note(&mut self, what: impl Into<String>) {
        let at = self.started.map_or(0.0, |s| s.elapsed().as_secs_f64());
        self.entries.push((at, what.into()));
    }
}

/// Holds a fault for `hold`, then, with an alert to watch, until it fires.
async fn held(hold: Duration, alert: &mut Option<&mut AlertWatch>, timeline: &mut Timeline) {
    tokio::time::sleep(hold).await;
    if let Some(alert) = alert {
        timeline.note(alert.until_firing().await);
    }
}

/// Injects the suite's fault, holds it for the plan's `hold` (per phase;
/// with `alert`, also until that alert fires), and heals.
pub(super) async fn inject(
    eco: &Ecosystem,
    suite: SuiteName,
    plan: &Plan,
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
        SuiteName::RedisKilled | SuiteName::PostgresRestarted => {
            let name = if suite == SuiteName::RedisKilled {
                "redis"
            } else {
                "postgres"
            };
            let component = eco.component(name).map_err(|e| fault("find", &e))?;
            component.kill().await.map_err(|e| fault("kill", &e))?;
            timeline.note(format!("{name} killed"));
            held(hold, &mut alert, timeline).await;
            let took = component
                .restart()
                .await
                .map_err(|e| fault("restart", &e))?;
            timeline.note(format!(
                "{name} restarted (ready in {:.1} s)",
                took.as_secs_f64()
            ));
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
            timeline.note(format!("{FLAKY_MOCK} healthy again"));
        }
        SuiteName::CrmPaused => {
            let crm = eco.component("crm-api").map_err(|e| fault("find", &e))?;
            crm.pause().await.map_err(|e| fault("pause crm-api", &e))?;
            timeline.note("crm-api paused");
            held(hold, &mut alert, timeline).await;
            crm.resume()
                .await
                .map_err(|e| fault("resume crm-api", &e))?;
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
            link.add(crate::chaos::Toxic::latency(
                WORKER_CRM_LATENCY,
                Duration::ZERO,
            ))
            .map_err(|e| fault("slow worker->crm-api", &e))?;
            let held_jobs = jobs_held(eco, &mut sent).await;
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
            let took = worker
                .restart()
                .await
                .map_err(|e| fault("restart the worker", &e))?;
            timeline.note(format!(
                "worker started again (ready in {:.1} s)",
                took.as_secs_f64()
            ));
        }
        SuiteName::GatewayPartition => {
            let link = eco
                .link("gateway", "redis")
                .map_err(|e| fault("find the link", &e))?;
            link.disable()
                .map_err(|e| fault("cut gateway->redis", &e))?;
            timeline.note("gateway->redis partitioned (down)");
            held(hold, &mut alert, timeline).await;
            link.enable()
                .map_err(|e| fault("heal gateway->redis", &e))?;
            timeline.note("gateway->redis healed");
        }
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

/// The delay `worker-killed` puts on each of the worker's CRM calls while
/// it waits for jobs held (a job makes two or three).
const WORKER_CRM_LATENCY: Duration = Duration::from_millis(200);

/// The queue whose jobs `worker-killed` wants held at the kill.
const HELD_QUEUE: &str = "lead-processing";

/// Waits until the worker holds lead-processing jobs (delivered, not yet
/// acknowledged: `inFlight` of `GET /admin/queues`) and gives how many, or
/// an error when the load ended first or the queues cannot be read.
async fn jobs_held(
    eco: &Ecosystem,
    sent: &mut tokio::sync::watch::Receiver<usize>,
) -> Result<u64, String> {
    let platform = crate::platform::Platform::from_ecosystem(eco).map_err(|e| e.to_string())?;
    loop {
        let listed = platform
            .queue_list(&[crate::platform::TENANT_SERVICE])
            .await?
            .unwrap_or_default();
        let held = listed
            .iter()
            .find(|q| q["name"] == HELD_QUEUE)
            .and_then(|q| q["inFlight"].as_u64())
            .ok_or_else(|| format!("/admin/queues lists no `{HELD_QUEUE}`"))?;
        if held > 0 {
            return Ok(held);
        }
        if sent.has_changed().is_err() {
            return Err("the load ended before the worker was seen holding a job".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn flaky_mock(eco: &Ecosystem, suite: SuiteName) -> Result<MockHandle, SuiteError> {
    eco.mock(FLAKY_MOCK).map_err(|e| SuiteError::Fault {
        suite: suite.as_str(),
        what: format!("find the {FLAKY_MOCK} mock"),
        cause: error_chain(&e),
    })
}

/// Waits until `queue` has nothing waiting, in flight or retrying, as the
/// platform's `GET /admin/queues` says, up to `within`.
async fn drained(eco: &Ecosystem, queue: &str, within: Duration) -> Result<(), String> {
    let platform = crate::platform::Platform::from_ecosystem(eco).map_err(|e| e.to_string())?;
    match platform
        .wait_queues_idle(&[crate::platform::TENANT_SERVICE], Some(queue), within)
        .await?
    {
        crate::platform::Queues::Idle => Ok(()),
        crate::platform::Queues::Unknown => Err(format!("/admin/queues names no queue `{queue}`")),
    }
}
