//! The conditions a fault waits on before it strikes, so that it finds the
//! platform in the state it exists to test, whatever the machine's speed:
//! jobs held by the worker, leads stored whose answers are not out yet,
//! subscribers that have something to resume from. And, after the load,
//! the leads the platform stored that no answer told the load about.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tokio::sync::watch;

use super::drive::Actors;
use crate::env::Ecosystem;
use crate::invariants::{AcceptedLead, Ledger};
use crate::platform::{Subscriber, TenantKey};

/// How often a condition is looked at again.
const POLL: Duration = Duration::from_millis(20);

/// Polls `probe` until it gives a value, or says the wait is over because
/// the load ended first (its sender dropped).
async fn until<T, F, Fut>(
    sent: &mut watch::Receiver<usize>,
    what: &str,
    mut probe: F,
) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>, String>>,
{
    loop {
        if let Some(found) = probe().await? {
            return Ok(found);
        }
        if sent.has_changed().is_err() {
            return Err(format!("the load ended before {what}"));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The queue whose jobs `worker-killed`, `crm-api-killed` and
/// `postgres-restarted` want held.
const HELD_QUEUE: &str = "lead-processing";

/// Waits until the worker holds lead-processing jobs (delivered, not yet
/// acknowledged: `inFlight` of `GET /admin/queues`) and gives how many.
pub(super) async fn jobs_held(
    eco: &Ecosystem,
    sent: &mut watch::Receiver<usize>,
) -> Result<u64, String> {
    let platform = crate::platform::Platform::from_ecosystem(eco).map_err(|e| e.to_string())?;
    until(sent, "the worker was seen holding a job", || async {
        let listed = platform
            .queue_list(&[crate::platform::TENANT_SERVICE])
            .await?
            .unwrap_or_default();
        let held = listed
            .iter()
            .find(|q| q["name"] == HELD_QUEUE)
            .and_then(|q| q["inFlight"].as_u64())
            .ok_or_else(|| format!("/admin/queues lists no `{HELD_QUEUE}`"))?;
        Ok((held > 0).then_some(held))
    })
    .await
}

/// How many leads must be stored and unanswered at once before
/// `flow-api-killed` strikes: more than one, so that a lead answered
/// between the look and the kill still leaves one.
const STORED_UNANSWERED: u64 = 2;

/// Waits until the platform holds more leads of the load's tenants (`GET
/// /leads`' `total`) than the load has been answered 201 for, by at least
/// [`STORED_UNANSWERED`]: leads committed whose requests are still out.
pub(super) async fn stored_unanswered(
    actors: &[Actors],
    ledger: &Ledger,
    sent: &mut watch::Receiver<usize>,
) -> Result<u64, String> {
    until(
        sent,
        "leads were seen stored and not yet answered",
        || async {
            let mut answered: BTreeMap<String, u64> = BTreeMap::new();
            for lead in ledger.accepted_leads() {
                *answered.entry(lead.tenant).or_default() += 1;
            }
            let mut ahead = 0;
            for actor in actors {
                let tenant = actor.leads.tenant_id();
                let page = actor
                    .leads
                    .get("flow-api", "/leads?limit=1")
                    .await
                    .map_err(|e| format!("listing {tenant}'s leads: {e}"))?;
                let stored = page.body["total"].as_u64().ok_or_else(|| {
                    format!("GET /leads answered {} without a total", page.status)
                })?;
                ahead += stored.saturating_sub(answered.get(tenant).copied().unwrap_or(0));
            }
            Ok((ahead >= STORED_UNANSWERED).then_some(ahead))
        },
    )
    .await
}

/// Waits until every subscriber has received an event, so that each has a
/// cursor to resume from.
pub(super) async fn subscribers_primed(
    subscribers: &[(TenantKey, Subscriber)],
    sent: &mut watch::Receiver<usize>,
) -> Result<(), String> {
    until(sent, "every subscriber had received an event", || async {
        Ok(subscribers
            .iter()
            .all(|(_, sub)| !sub.events().is_empty())
            .then_some(()))
    })
    .await
}

/// The leads of the load's tenants the platform stored that no 201 told
/// the load about (the request's answer was lost: its connection died,
/// its process was killed, the driver gave up on it). The platform owes
/// them the same as the answered ones: a stored lead is processed or
/// dead-lettered. Read through the API (`GET /leads`, page by page).
pub(super) async fn unanswered_leads(
    actors: &[Actors],
    answered: &[AcceptedLead],
) -> Result<Vec<AcceptedLead>, String> {
    const PAGE: usize = 500;
    let mut known: BTreeSet<uuid::Uuid> = answered.iter().map(|l| l.id).collect();
    let mut found = Vec::new();
    for actor in actors {
        let tenant = actor.leads.tenant_id();
        for offset in (0..).step_by(PAGE) {
            let page = actor
                .leads
                .get("flow-api", &format!("/leads?limit={PAGE}&offset={offset}"))
                .await
                .map_err(|e| format!("listing {tenant}'s leads: {e}"))?;
            let Some(rows) = page.body["data"].as_array().filter(|_| page.status == 200) else {
                return Err(format!(
                    "listing {tenant}'s leads answered {}: {}",
                    page.status, page.body
                ));
            };
            for row in rows {
                let id = row["id"].as_str().and_then(|id| id.parse().ok());
                let email = row["email"].as_str();
                if let (Some(id), Some(email)) = (id, email) {
                    // A set, as leads made meanwhile shift the pages.
                    if known.insert(id) {
                        found.push(AcceptedLead {
                            tenant: tenant.to_owned(),
                            id,
                            email: email.to_owned(),
                            trace: None,
                        });
                    }
                }
            }
            if rows.len() < PAGE {
                break;
            }
        }
    }
    Ok(found)
}
