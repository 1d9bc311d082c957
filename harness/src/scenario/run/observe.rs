//! What a run sees happen beyond its own requests: events on the bus and
//! jobs on the queues (tailed from Redis), and the calls the services made
//! to the mocks (from the mocks' journals, tied to the run by the
//! correlation ids it sent). They draw the sequence diagram, and bus
//! events wake `eventually` steps instead of fixed polling.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::Value;
use tokio::sync::{broadcast, Notify};

use super::{Clock, Runner, StepError};
use crate::env::{Ecosystem, Kind};
use crate::report::{Message, MessageKind};

/// Something seen on a Redis stream, for the tenant it belongs to.
#[derive(Debug, Clone)]
struct Seen {
    tenant: String,
    at: chrono::DateTime<chrono::Utc>,
    from: String,
    to: String,
    kind: MessageKind,
    label: String,
    correlation_id: Option<String>,
}

/// The tail of the event and queue streams, shared by all runs.
#[derive(Debug)]
pub(crate) struct Bus {
    sender: broadcast::Sender<Seen>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Bus {
    fn drop(&mut self) {
        if let Some(t) = &self.task {
            t.abort();
        }
    }
}

impl Bus {
    /// Starts tailing when the ecosystem has a Redis; otherwise runs see no bus.
    pub(crate) async fn start(eco: &Ecosystem) -> Bus {
        let (sender, _) = broadcast::channel(4096);
        let task = match eco.redis().await {
            Ok(conn) => Some(tokio::spawn(tail(conn, sender.clone()))),
            Err(e) => {
                tracing::info!("no bus to observe: {}", crate::env::error_chain(&e));
                None
            }
        };
        Bus { sender, task }
    }

    /// Forwards what concerns `tenants` into a run's messages and wakes it.
    pub(crate) fn watch(
        &self,
        tenants: BTreeSet<String>,
        messages: Arc<Mutex<Vec<Message>>>,
        changed: Arc<Notify>,
        clock: Clock,
    ) -> tokio::task::JoinHandle<()> {
        let mut receiver = self.sender.subscribe();
        tokio::spawn(async move {
            loop {
                match receiver.recv().await {
                    Ok(seen) if tenants.contains(&seen.tenant) => {
                        messages
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .push(Message {
                                at_ms: clock.wall_ms(seen.at),
                                from: seen.from,
                                to: seen.to,
                                kind: seen.kind,
                                label: seen.label,
                                correlation_id: seen.correlation_id,
                            });
                        changed.notify_waiters();
                    }
                    Ok(_) => {}
                    // Missed some under load: still wake the run.
                    Err(broadcast::error::RecvError::Lagged(_)) => changed.notify_waiters(),
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        })
    }
}

async fn tail(mut conn: redis::aio::MultiplexedConnection, sender: broadcast::Sender<Seen>) {
    // The event stream and every queue's streams, as the contract names them.
    let contract = crate::contract::active();
    let mut keys = vec![contract.events.stream.clone()];
    for q in contract.queue_names() {
        keys.push(contract.queue_stream(q, false));
        keys.push(contract.queue_stream(q, true));
    }
    // From now on, by time: `$` would mean "newer than the last entry when
    // each XREAD is sent", losing what arrives between two reads on a stream
    // that had nothing yet.
    let start = format!("{}-0", chrono::Utc::now().timestamp_millis());
    let mut ids: Vec<String> = vec![start; keys.len()];
    let options = redis::streams::StreamReadOptions::default()
        .block(1000)
        .count(500);
    loop {
        let reply: redis::RedisResult<redis::streams::StreamReadReply> =
            redis::AsyncCommands::xread_options(&mut conn, &keys, &ids, &options).await;
        let reply = match reply {
            Ok(r) => r,
            Err(_) => {
                // Redis may be down on purpose (chaos); try again shortly.
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
                continue;
            }
        };
        for stream in reply.keys {
            let Some(i) = keys.iter().position(|k| *k == stream.key) else {
                continue;
            };
            for entry in stream.ids {
                ids[i].clone_from(&entry.id);
                if let Some(seen) = seen(&stream.key, &entry) {
                    let _ = sender.send(seen);
                }
            }
        }
    }
}

/// An entry of a stream as something seen, when it names a tenant.
fn seen(stream: &str, entry: &redis::streams::StreamId) -> Option<Seen> {
    let millis: i64 = entry.id.split('-').next()?.parse().ok()?;
    let at = chrono::DateTime::from_timestamp_millis(millis)?;
    if stream == crate::contract::active().events.stream {
        let text: String = entry.get("event")?;
        let event: Value = serde_json::from_str(&text).ok()?;
        return Some(Seen {
            tenant: event["tenantId"].as_str()?.to_owned(),
            at,
            from: event["source"].as_str().unwrap_or("?").to_owned(),
            to: "redis".into(),
            kind: MessageKind::Event,
            label: format!("publish {}", event["type"].as_str().unwrap_or("?")),
            correlation_id: None,
        });
    }
    let text: String = entry.get("job")?;
    let job: Value = serde_json::from_str(&text).ok()?;
    let queue = job["queue"].as_str().unwrap_or("?");
    let kind = job["kind"].as_str().unwrap_or("?");
    let dead = stream.ends_with(":dead");
    Some(Seen {
        tenant: job["tenantId"].as_str()?.to_owned(),
        at,
        from: if dead { "worker" } else { "redis" }.to_owned(),
        to: if dead { "redis" } else { "worker" }.to_owned(),
        kind: MessageKind::Job,
        label: if dead {
            format!("dead letter {kind}")
        } else {
            format!(
                "{kind} ({queue}, attempt {})",
                job["attempt"].as_u64().unwrap_or(0) + 1
            )
        },
        correlation_id: job["correlationId"].as_str().map(str::to_owned),
    })
}

/// A call a mock received, as its journal tells.
#[derive(Debug)]
pub(crate) struct Call {
    /// Its place in the mock's journal (grows, never reused).
    pub(crate) seq: u64,
    pub(crate) at: Option<chrono::DateTime<chrono::Utc>>,
    pub(crate) method: String,
    pub(crate) path: String,
    /// The calling service, from its `user-agent` (`tekup-service/<name>`).
    pub(crate) caller: String,
    pub(crate) status: Option<u16>,
    pub(crate) json: Option<Value>,
    pub(crate) fault: Option<String>,
}

/// The calls a mock received that carry a correlation id of the run.
pub(crate) async fn journal(
    runner: &Runner,
    admin: &str,
    prefix: &str,
) -> Result<Vec<Call>, StepError> {
    let url = format!("{admin}/journal");
    let response = runner
        .http
        .get(&url)
        .send()
        .await
        .map_err(|e| format!("GET {url}: {}", crate::env::error_chain(&e)))?;
    let entries: Vec<tekup_mocks::RecordedRequest> = response
        .json()
        .await
        .map_err(|e| format!("GET {url}: not a journal: {e}"))?;
    Ok(calls_of_run(entries, prefix))
}

/// The journal entries that carry a correlation id of the run (`prefix-…`),
/// as calls.
pub(crate) fn calls_of_run(entries: Vec<tekup_mocks::RecordedRequest>, prefix: &str) -> Vec<Call> {
    let mine = format!("{prefix}-");
    entries
        .into_iter()
        .filter(|e| {
            e.header("x-correlation-id")
                .is_some_and(|c| c.starts_with(&mine))
        })
        .map(|e| Call {
            seq: e.seq,
            at: Some(e.received_at),
            json: e.body_json(),
            caller: e
                .header("user-agent")
                .and_then(|ua| ua.strip_prefix("tekup-service/"))
                .unwrap_or("?")
                .to_owned(),
            method: e.method,
            path: e.path,
            status: e.status,
            fault: e.fault,
        })
        .collect()
}

/// Every mock's calls of the run, as sequence-diagram messages.
pub(crate) async fn mock_calls(runner: &Runner, prefix: &str, clock: Clock) -> Vec<Message> {
    let mut out = Vec::new();
    for c in runner
        .eco
        .components()
        .filter(|c| c.kind() == Kind::Service)
    {
        let (Some(admin), name) = (c.admin_url(), c.name()) else {
            continue;
        };
        let Ok(calls) = journal(runner, &admin, prefix).await else {
            continue;
        };
        for call in calls {
            let at = call.at.map_or(0.0, |t| clock.wall_ms(t));
            out.push(Message {
                at_ms: at,
                from: call.caller.clone(),
                to: name.to_owned(),
                kind: MessageKind::Request,
                label: format!("{} {}", call.method, call.path),
                correlation_id: None,
            });
            out.push(Message {
                at_ms: at + 0.001,
                from: name.to_owned(),
                to: call.caller,
                kind: if call.fault.is_some() {
                    MessageKind::Fault
                } else {
                    MessageKind::Response
                },
                label: match (call.status, &call.fault) {
                    (Some(s), Some(f)) => format!("{s} ({f})"),
                    (Some(s), None) => s.to_string(),
                    (None, f) => f.clone().unwrap_or_else(|| "no answer".into()),
                },
                correlation_id: None,
            });
        }
    }
    out
}
