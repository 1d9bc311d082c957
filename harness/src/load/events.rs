//! Queue latency and WebSocket fan-out, measured at the gateway's clients.
//!
//! A lead is processed when the worker has taken it off the lead-processing
//! queue, found or created its contact and published LEAD_CREATED; the
//! gateway then delivers the event to the tenant's `crm-web` and `flow-web`
//! clients. So the honest measure of queue latency is the time from the
//! lead's `201 Created` to the first LEAD_CREATED of that lead reaching a
//! client: it needs no clock of the platform and no database access, and
//! works the same against a staging URL. Every client of the tenant should
//! receive the event; what did not arrive is counted missed.
//!
//! Waiting for stragglers after the run ([`Watch::drain`]) is on a
//! condition with a deadline (each lead's creation plus the latency limit),
//! never a sleep.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use serde_json::Value;
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Message;

use crate::net::ClientTls;

use super::hist::Histogram;
use super::report::{DeliveryStats, QueueStats};
use super::LoadError;
use crate::platform::{open_events, TenantKey as Tenant};

/// How long a client may take to connect and be welcomed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, Default)]
struct Lead {
    created: Option<Instant>,
    first_seen: Option<Instant>,
    receipts: u64,
}

#[derive(Debug, Default)]
struct State {
    leads: HashMap<String, Lead>,
    queue: Histogram,
    delivery: Histogram,
    delivered: u64,
}

/// What the run's clients saw, per lead.
#[derive(Debug)]
pub(crate) struct Watch {
    state: Mutex<State>,
    changed: Notify,
    /// Deliveries each lead should get: its tenant's clients.
    per_lead: u64,
}

impl Watch {
    pub(crate) fn new(clients_per_tenant: usize) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State::default()),
            changed: Notify::new(),
            per_lead: clients_per_tenant as u64,
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A lead was created (its 201 arrived at `at`).
    pub(crate) fn created(&self, lead: &str, at: Instant) {
        let mut state = self.state();
        let entry = state.leads.entry(lead.to_owned()).or_default();
        entry.created = Some(at);
        // The event can beat the response to the client.
        if let Some(seen) = entry.first_seen {
            let latency = seen.saturating_duration_since(at);
            state.queue.record(latency);
        }
    }

    /// A client received LEAD_CREATED of `lead` at `at`; `delay` is the time
    /// since the event was published, when it says.
    fn seen(&self, lead: &str, at: Instant, delay: Option<Duration>) {
        let mut guard = self.state();
        let state = &mut *guard;
        let entry = state.leads.entry(lead.to_owned()).or_default();
        entry.receipts += 1;
        if entry.first_seen.is_none() {
            entry.first_seen = Some(at);
            if let Some(created) = entry.created {
                state.queue.record(at.saturating_duration_since(created));
            }
        }
        state.delivered += 1;
        if let Some(delay) = delay {
            state.delivery.record(delay);
        }
        drop(guard);
        self.changed.notify_waiters();
    }

    fn outstanding(&self) -> Option<Instant> {
        let state = self.state();
        state
            .leads
            .values()
            .filter(|l| l.receipts < self.per_lead)
            .filter_map(|l| l.created)
            .max()
    }

    /// Waits until every created lead reached every client, or until
    /// `limit` after the last one still waiting was created; then reports.
    pub(crate) async fn drain(&self, limit: Duration, clients: u64) -> (QueueStats, DeliveryStats) {
        loop {
            let notified = self.changed.notified();
            let Some(last) = self.outstanding() else {
                break;
            };
            let deadline = tokio::time::Instant::from_std(last + limit);
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                break;
            }
        }
        let state = self.state();
        let created = state.leads.values().filter(|l| l.created.is_some());
        let (mut processed, mut unprocessed, mut expected, mut missed) = (0, 0, 0, 0);
        for lead in created {
            if lead.first_seen.is_some() {
                processed += 1;
            } else {
                unprocessed += 1;
            }
            expected += self.per_lead;
            missed += self.per_lead.saturating_sub(lead.receipts);
        }
        let queue = QueueStats {
            processed,
            unprocessed,
            histogram: state.queue.clone(),
        };
        let delivery = DeliveryStats {
            clients,
            expected,
            delivered: expected - missed,
            missed,
            histogram: state.delivery.clone(),
        };
        (queue, delivery)
    }
}

/// The gateway's clients of a run; dropping it closes them.
#[derive(Debug, Default)]
pub(crate) struct Clients {
    readers: Vec<tokio::task::JoinHandle<()>>,
    /// How long each took to connect and be welcomed.
    pub(crate) connects: Histogram,
}

impl Drop for Clients {
    fn drop(&mut self) {
        for r in &self.readers {
            r.abort();
        }
    }
}

impl Clients {
    pub(crate) fn len(&self) -> usize {
        self.readers.len()
    }

    /// Connects `per_tenant` clients for each tenant (alternately as
    /// `crm-web` and `flow-web`, the apps LEAD_CREATED is routed to).
    pub(crate) async fn connect(
        tls: &ClientTls,
        gateway: &str,
        tenants: &[Tenant],
        per_tenant: usize,
        watch: &Arc<Watch>,
    ) -> Result<Clients, LoadError> {
        let mut clients = Clients::default();
        let wanted = tenants
            .iter()
            .flat_map(|t| (0..per_tenant).map(move |i| (t, ["crm-web", "flow-web"][i % 2])));
        let mut opened = futures::stream::iter(wanted)
            .map(|(tenant, app)| open(tls, gateway, tenant, app, Arc::clone(watch)))
            .buffer_unordered(16);
        while let Some(result) = opened.next().await {
            let (reader, took) = result?;
            clients.readers.push(reader);
            clients.connects.record(took);
        }
        Ok(clients)
    }
}

async fn open(
    tls: &ClientTls,
    gateway: &str,
    tenant: &Tenant,
    app: &str,
    watch: Arc<Watch>,
) -> Result<(tokio::task::JoinHandle<()>, Duration), LoadError> {
    let started = Instant::now();
    let (sink, mut source) =
        open_events(tls, gateway, &tenant.key, &tenant.id, app, CONNECT_TIMEOUT)
            .await
            .map_err(|e| LoadError::Gateway {
                url: e.url,
                why: e.why,
            })?;
    let took = started.elapsed();
    let reader = tokio::spawn(async move {
        // The write half lives as long as the reader: the client only
        // listens, and tungstenite answers the gateway's pings itself.
        let _sink = sink;
        while let Some(Ok(frame)) = source.next().await {
            let Message::Text(text) = frame else {
                continue;
            };
            let at = Instant::now();
            let Ok(frame) = serde_json::from_str::<Value>(&text) else {
                continue;
            };
            let event = &frame["event"];
            if frame["type"] != "event" || event["type"] != "LEAD_CREATED" {
                continue;
            }
            let Some(lead) = event["data"]["id"].as_str() else {
                continue;
            };
            let delay = event["timestamp"]
                .as_str()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .map(|t| {
                    (chrono::Utc::now() - t.with_timezone(&chrono::Utc))
                        .to_std()
                        .unwrap_or_default()
                });
            watch.seen(lead, at, delay);
        }
    });
    Ok((reader, took))
}
