//! The witness's view of Redis: the event stream and every queue's live
//! and dead-letter streams, tailed from a Redis time, keeping what names
//! the witness tenant.
//!
//! A job leaves its stream once handled (the contract's queues are
//! streams read by a consumer group; the reference deletes an acknowledged
//! entry), so reading the streams at the end of a run would miss every job
//! already handled: the tail reads them as they come (`XREAD BLOCK`). What
//! it cannot see: an entry added and removed while it is not reading,
//! which is while it reconnects after losing Redis; those gaps are counted
//! and reported.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde_json::Value;

/// An entry of a stream that names the witness tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Entry {
    pub(super) stream: String,
    /// The stream entry id (`<ms>-<n>`).
    pub(super) entry_id: String,
    /// An event (`event` field) or a job (`job` field).
    pub(super) job: bool,
    /// The event's or job's own id.
    pub(super) id: String,
    /// The event type or the job kind.
    pub(super) kind: String,
    /// Who published the event, or the job's correlation id.
    pub(super) detail: String,
}

impl Entry {
    /// Milliseconds of its entry id.
    pub(super) fn ms(&self) -> u64 {
        stream_ms(&self.entry_id)
    }
}

/// A running tail; dropping it stops the reader.
#[derive(Debug)]
pub(super) struct Tail {
    client: redis::Client,
    seen: Arc<Mutex<Vec<Entry>>>,
    /// Times reading failed (Redis gone); a gap each.
    gaps: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Tail {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The streams the contract names: events, then each queue's live and
/// dead-letter stream.
fn streams() -> Vec<String> {
    let contract = crate::contract::active();
    let mut keys = vec![contract.events.stream.clone()];
    for q in contract.queue_names() {
        keys.push(contract.queue_stream(q, false));
        keys.push(contract.queue_stream(q, true));
    }
    keys
}

impl Tail {
    /// Starts tailing every stream from Redis's clock now, keeping what
    /// names `tenant`.
    pub(super) async fn start(client: redis::Client, tenant: &str) -> Result<Tail, String> {
        let start = redis_ms(&client).await?;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let gaps = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn(read(
            client.clone(),
            tenant.to_owned(),
            format!("{start}-0"),
            Arc::clone(&seen),
            Arc::clone(&gaps),
        ));
        Ok(Tail {
            client,
            seen,
            gaps,
            task,
        })
    }

    /// What was seen so far.
    pub(super) fn seen(&self) -> Vec<Entry> {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// How often the tail lost Redis.
    pub(super) fn gaps(&self) -> usize {
        self.gaps.load(Ordering::Relaxed)
    }

    /// Redis's clock now, in milliseconds.
    pub(super) async fn now_ms(&self) -> Result<u64, String> {
        redis_ms(&self.client).await
    }

    /// Whether the entry is still in its stream (a job waiting or in flight).
    pub(super) async fn still_there(&self, entry: &Entry) -> Result<bool, String> {
        let mut conn = self
            .client
            .get_multiplexed_async_connection()
            .await
            .map_err(|e| crate::env::error_chain(&e))?;
        let reply: redis::streams::StreamRangeReply = redis::AsyncCommands::xrange(
            &mut conn,
            &entry.stream,
            &entry.entry_id,
            &entry.entry_id,
        )
        .await
        .map_err(|e| crate::env::error_chain(&e))?;
        Ok(!reply.ids.is_empty())
    }
}

async fn redis_ms(client: &redis::Client) -> Result<u64, String> {
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| {
            format!(
                "failed to connect to Redis: {}",
                crate::env::error_chain(&e)
            )
        })?;
    let (secs, micros): (u64, u64) = redis::cmd("TIME")
        .query_async(&mut conn)
        .await
        .map_err(|e| format!("Redis TIME failed: {}", crate::env::error_chain(&e)))?;
    Ok(secs * 1000 + micros / 1000)
}

async fn read(
    client: redis::Client,
    tenant: String,
    start: String,
    seen: Arc<Mutex<Vec<Entry>>>,
    gaps: Arc<AtomicUsize>,
) {
    let keys = streams();
    let mut ids = vec![start; keys.len()];
    let options = redis::streams::StreamReadOptions::default()
        .block(1000)
        .count(500);
    let mut conn = None;
    loop {
        if conn.is_none() {
            match client.get_multiplexed_async_connection().await {
                Ok(c) => conn = Some(c),
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        let reply: redis::RedisResult<redis::streams::StreamReadReply> =
            redis::AsyncCommands::xread_options(c, &keys, &ids, &options).await;
        let reply = match reply {
            Ok(r) => r,
            Err(_) => {
                gaps.fetch_add(1, Ordering::Relaxed);
                conn = None;
                tokio::time::sleep(Duration::from_millis(250)).await;
                continue;
            }
        };
        let mut found = Vec::new();
        for stream in reply.keys {
            let Some(i) = keys.iter().position(|k| *k == stream.key) else {
                continue;
            };
            for entry in &stream.ids {
                ids[i].clone_from(&entry.id);
                if let Some(e) = entry_of(&stream.key, entry, &tenant) {
                    found.push(e);
                }
            }
        }
        if !found.is_empty() {
            seen.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .extend(found);
        }
    }
}

/// The entry as an [`Entry`], when it names `tenant`.
fn entry_of(stream: &str, entry: &redis::streams::StreamId, tenant: &str) -> Option<Entry> {
    let (job, text) = match (entry.get::<String>("event"), entry.get::<String>("job")) {
        (Some(text), _) => (false, text),
        (None, Some(text)) => (true, text),
        (None, None) => return None,
    };
    let value: Value = serde_json::from_str(&text).ok()?;
    if value["tenantId"] != tenant {
        return None;
    }
    let field = |k: &str| value[k].as_str().unwrap_or("?").to_owned();
    Some(Entry {
        stream: stream.to_owned(),
        entry_id: entry.id.clone(),
        job,
        id: field("id"),
        kind: if job { field("kind") } else { field("type") },
        detail: if job {
            field("correlationId")
        } else {
            field("source")
        },
    })
}

/// The milliseconds of a stream entry id (`<ms>-<n>`); 0 when unreadable.
pub(super) fn stream_ms(id: &str) -> u64 {
    id.split('-')
        .next()
        .and_then(|ms| ms.parse().ok())
        .unwrap_or(0)
}
