//! Waiting for the platform's queues to be idle, as its admin API tells
//! (`GET /admin/queues`): the one wait of the suites that must let the
//! platform finish its work before they count or heal something.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::Platform;

/// What `GET /admin/queues` said once it was waited on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queues {
    /// Nothing waiting, in flight or retrying (on the queue asked about, or on all).
    Idle,
    /// No service asked lists queues (none, no admin access, or not the queue asked about).
    Unknown,
}

impl Platform {
    /// Waits until `queue` (every queue when None) has nothing waiting, in
    /// flight or retrying, as the first of `services` that lists queues
    /// says; polls with a growing pause, up to `within`. Errs when the
    /// deadline passes (naming what was still busy) or no answer comes.
    pub async fn wait_queues_idle(
        &self,
        services: &[&str],
        queue: Option<&str>,
        within: Duration,
    ) -> Result<Queues, String> {
        let deadline = Instant::now() + within;
        let mut pause = Duration::from_millis(50);
        loop {
            let Some(listed) = self.queue_list(services).await? else {
                return Ok(Queues::Unknown);
            };
            let asked: Vec<&Value> = listed
                .iter()
                .filter(|q| queue.is_none_or(|name| q["name"] == name))
                .collect();
            if asked.is_empty() {
                return Ok(Queues::Unknown);
            }
            let busy: Vec<String> = asked
                .iter()
                .filter(|q| {
                    ["size", "inFlight", "retrying"]
                        .iter()
                        .any(|k| q[*k].as_u64().unwrap_or(0) > 0)
                })
                .map(|q| q.to_string())
                .collect();
            if busy.is_empty() {
                return Ok(Queues::Idle);
            }
            if Instant::now() >= deadline {
                return Err(format!("still busy after {within:?}: {}", busy.join(", ")));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(500));
        }
    }

    /// The queues the first of `services` that lists any lists (`None`
    /// when none does), as `GET /admin/queues` gives them.
    pub(crate) async fn queue_list(&self, services: &[&str]) -> Result<Option<Vec<Value>>, String> {
        let mut last = None;
        for service in services {
            match self.admin_get(service, "/admin/queues").await {
                Ok(answer) => {
                    if let Some(list) = answer.body["queues"].as_array().filter(|_| answer.ok()) {
                        return Ok(Some(list.clone()));
                    }
                }
                Err(e) => last = Some(e.to_string()),
            }
        }
        match last {
            Some(e) if services.len() == 1 => Err(e),
            _ => Ok(None),
        }
    }
}
