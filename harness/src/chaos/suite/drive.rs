//! The steady load a chaos suite keeps up while its faults happen: leads at
//! a fixed rate over several tenants, each email used twice (so the CRM's
//! find-or-create races with itself), and optionally an email sync every
//! few leads. Every answer goes into the [`Ledger`].
//!
//! The load's clients behave as the platform's clients are expected to: a
//! 503 or 429 with `Retry-After` is sent again after that many seconds
//! (the same lead, in a trace of its own), and so is a request that could
//! not connect (nothing was sent) after [`RECONNECT_WAIT`], up to
//! [`MAX_ATTEMPTS`]; a lead accepted on a retry counts as accepted. A
//! refusal without `Retry-After`, any other status, or a request lost
//! after it was sent ends the lead's attempts (the lead may exist, so
//! sending it again could make a second one).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::{watch, Semaphore};

use crate::invariants::{AcceptedLead, LeadTraces, Ledger};
use crate::platform::TenantClient;

/// How much load, how fast.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Load {
    /// Leads in all, spread over the tenants.
    pub leads: usize,
    /// Leads started per second.
    pub rate: f64,
    /// Requests in flight at most (when the platform is slow, the rate
    /// drops rather than the requests piling up).
    pub concurrency: usize,
    /// An email sync (`POST /emails/sync`) every this many leads, if set.
    pub email_sync_every: Option<usize>,
}

/// The clients the load acts through, per tenant.
#[derive(Debug, Clone)]
pub(super) struct Actors {
    /// `flow-web`, which creates leads.
    pub(super) leads: TenantClient,
    /// `inbox-ai`, which syncs email.
    pub(super) inbox: TenantClient,
    /// A trace per lead, when the ecosystem's spans reach the harness.
    pub(super) traces: Option<LeadTraces>,
}

/// Sends the load; `sent` counts the requests started, so fault timelines
/// can wait for "30 % of the leads" instead of for a time.
pub(super) async fn drive(
    actors: Vec<Actors>,
    load: Load,
    ledger: Arc<Ledger>,
    sent: watch::Sender<usize>,
) {
    let slots = Arc::new(Semaphore::new(load.concurrency.max(1)));
    let period = Duration::from_secs_f64(1.0 / load.rate.max(0.1));
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..load.leads {
        ticks.tick().await;
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            break;
        };
        let actor = actors[i % actors.len()].clone();
        let round = i / actors.len();
        let sync = load
            .email_sync_every
            .is_some_and(|every| every > 0 && i % every == every - 1);
        let ledger = Arc::clone(&ledger);
        tasks.spawn(async move {
            // Two leads of a tenant share an email: the second finds the
            // first's contact, or races it.
            let email = format!("lead{}@{}.example", round / 2, actor.leads.tenant_id());
            create_lead(&actor, &email, &ledger).await;
            if sync {
                sync_email(&actor.inbox, &ledger).await;
            }
            drop(slot);
        });
        sent.send_replace(i + 1);
        // Reap what has finished so the set stays small.
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
}

/// Attempts per request at most, the first included.
pub(super) const MAX_ATTEMPTS: u32 = 20;
/// The longest `Retry-After` the load waits out; a longer one is waited
/// this long (the suite's recovery time must leave room for the retries).
const MAX_RETRY_WAIT: Duration = Duration::from_secs(30);

/// How long a client waits before it tries again to connect to a service
/// that refused the connection.
const RECONNECT_WAIT: Duration = Duration::from_secs(1);

/// What became of one attempt.
enum Attempt {
    Done,
    /// Refused with a `Retry-After`: send again after this long.
    Again(Duration),
}

/// Sends requests through `attempt` until one is not refused with a
/// `Retry-After` (see the module's doc); records every refusal.
async fn with_retries<F, Fut>(ledger: &Ledger, mut attempt: F)
where
    F: FnMut(bool) -> Fut,
    Fut: std::future::Future<Output = Attempt>,
{
    let mut retry = false;
    for number in 1..=MAX_ATTEMPTS {
        match attempt(retry).await {
            Attempt::Done => return,
            Attempt::Again(wait) if number < MAX_ATTEMPTS => {
                retry = true;
                tokio::time::sleep(wait.min(MAX_RETRY_WAIT)).await;
            }
            Attempt::Again(_) => ledger.refused(),
        }
    }
}

/// Records a refused or unanswered attempt; whether and when to retry.
fn refused(
    ledger: &Ledger,
    sent: Instant,
    answer: Result<&crate::platform::Answer, &crate::platform::PlatformError>,
) -> Attempt {
    match answer {
        Ok(answer) => {
            ledger.attempt_refused(sent, Some(answer.status), answer.retry_after);
            match answer.retry_after {
                Some(secs) if matches!(answer.status, 429 | 503) => {
                    Attempt::Again(Duration::from_secs(secs))
                }
                _ => {
                    ledger.refused();
                    Attempt::Done
                }
            }
        }
        Err(e) => {
            ledger.attempt_refused(sent, None, None);
            if matches!(
                e,
                crate::platform::PlatformError::Transport { not_sent: true, .. }
            ) {
                Attempt::Again(RECONNECT_WAIT)
            } else {
                ledger.unanswered();
                Attempt::Done
            }
        }
    }
}

async fn create_lead(actor: &Actors, email: &str, ledger: &Ledger) {
    let body =
        json!({ "firstName": "Chaos", "lastName": "Load", "email": email, "source": "chaos" });
    with_retries(ledger, |retry| {
        // Each attempt in a trace of its own: the accepted one is the
        // lead's, and a refused one is not held to it.
        let (client, trace) = match &actor.traces {
            Some(traces) => {
                let (traceparent, trace) = traces.begin();
                (actor.leads.clone().traced(&traceparent), Some(trace))
            }
            None => (actor.leads.clone(), None),
        };
        let body = &body;
        async move {
            let sent = Instant::now();
            match client.post("flow-api", "/leads", body).await {
                Ok(answer) if answer.status == 201 => {
                    match answer.body["id"].as_str().and_then(|id| id.parse().ok()) {
                        Some(id) => {
                            let lead = AcceptedLead {
                                tenant: client.tenant_id().to_owned(),
                                id,
                                email: email.to_owned(),
                                trace,
                            };
                            if retry {
                                ledger.accepted_on_retry(lead);
                            } else {
                                ledger.accepted(lead);
                            }
                            ledger.job_accepted("lead-processing");
                        }
                        // A 201 without an id is the platform's fault; count
                        // it as unanswered rather than invent an id.
                        None => ledger.unanswered(),
                    }
                    Attempt::Done
                }
                Ok(answer) => refused(ledger, sent, Ok(&answer)),
                Err(e) => refused(ledger, sent, Err(&e)),
            }
        }
    })
    .await;
}

async fn sync_email(client: &TenantClient, ledger: &Ledger) {
    with_retries(ledger, |_| async {
        let sent = Instant::now();
        match client.post("crm-api", "/emails/sync", &json!({})).await {
            Ok(answer) if answer.status == 202 => {
                ledger.job_accepted("email-sync");
                Attempt::Done
            }
            Ok(answer) => refused(ledger, sent, Ok(&answer)),
            Err(e) => refused(ledger, sent, Err(&e)),
        }
    })
    .await;
}
