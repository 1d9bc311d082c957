//! Job queues on Redis streams with consumer groups.
//!
//! Each queue is a stream `tekup:queue:<name>` read by the consumer group
//! `workers`. A job is removed from its stream when it is acknowledged, so
//! a stream holds exactly the jobs waiting or in flight. The life of a job:
//!
//! - [`Queues::enqueue`] adds it;
//! - a worker reads it ([`Consumer::next`], higher priorities first) and it is
//!   *pending* for that consumer until acknowledged;
//! - success: [`Queues::complete`] acknowledges and deletes it;
//! - failure with retries left (its queue's count, and its retry span since
//!   its first failure; the worker decides): [`Queues::retry_later`] parks
//!   it in the delay set with an exponential, jittered due time, and
//!   acknowledges the original in the same `MULTI`; [`Queues::promote_due`]
//!   puts due jobs back;
//! - failure without retries left: [`Queues::dead_letter`] moves it, with
//!   its last error, to `tekup:queue:<name>:dead`;
//! - a worker that dies leaves its jobs pending: [`Queues::reclaim`]
//!   (`XAUTOCLAIM`) hands them to a live worker after an idle time.
//!
//! Delivery is therefore at-least-once; handlers are idempotent (see
//! `crate::worker`). With Redis persistence (AOF) on, jobs survive a Redis
//! restart too.

mod model;

use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::streams::{
    StreamAutoClaimOptions, StreamAutoClaimReply, StreamReadOptions, StreamReadReply,
};
use redis::{AsyncCommands, RedisError, Value as RedisValue};
use serde::Serialize;
use tracing::Instrument as _;

pub use model::{backoff, Job, QueueName, QueuePriority};

/// The consumer group every worker joins.
pub const GROUP: &str = "workers";
const DELAYED: &str = "tekup:queue:delayed";
const PROCESSED: &str = "tekup:queue:processed";

fn stream(queue: QueueName) -> String {
    format!("tekup:queue:{}", queue.as_str())
}

fn dead_stream(queue: QueueName) -> String {
    format!("tekup:queue:{}:dead", queue.as_str())
}

/// Errors of queue operations.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("failed to talk to Redis")]
    Redis(#[from] RedisError),
    #[error("failed to encode or decode a job")]
    Codec(#[from] serde_json::Error),
    #[error("Redis did not answer within {0:?}")]
    Timeout(std::time::Duration),
}

/// How the services' Redis connections reconnect after losing the server:
/// a bounded connect (2 s) and short backoff (at most 1 s, 3 tries per
/// attempt), so a healed link is used again within seconds rather than after
/// the client's default back-off of more than ten.
pub fn reconnecting() -> redis::aio::ConnectionManagerConfig {
    redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(std::time::Duration::from_secs(2))
        .set_number_of_retries(3)
        .set_max_delay(1_000)
}

/// How long a request may wait for Redis to take a job (or answer a ping)
/// before it is refused: a lost link must not hold requests until the
/// client's reconnect gives up.
pub const REDIS_CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

async fn bounded<T>(
    call: impl std::future::Future<Output = Result<T, RedisError>>,
) -> Result<T, QueueError> {
    match tokio::time::timeout(REDIS_CALL_TIMEOUT, call).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(QueueError::Timeout(REDIS_CALL_TIMEOUT)),
    }
}

/// Runs `call`, and once more when it failed on a dropped connection: a
/// connection a Redis outage broke fails the first command after Redis is
/// back (which starts the reconnect). Only for writes whose repetition is
/// harmless (an event id the gateway drops the second time, a job whose
/// handlers are idempotent).
pub(crate) async fn once_more_if_dropped<T, F, Fut>(
    what: &str,
    mut call: F,
) -> Result<T, RedisError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, RedisError>>,
{
    match call().await {
        Err(e) if e.is_io_error() || e.is_connection_dropped() => {
            tracing::warn!(error = %e, "{what} failed on a dropped connection; trying once more");
            call().await
        }
        result => result,
    }
}

/// A job handed to a worker, with what is needed to settle it.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub queue: QueueName,
    pub entry_id: String,
    pub job: Job,
    /// How often Redis has delivered this entry (more than 1 after a reclaim).
    pub deliveries: u64,
}

/// Figures of one queue, as `/admin/queues` shows them.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct QueueStats {
    pub name: &'static str,
    pub priority: QueuePriority,
    pub max_retries: u32,
    /// Waiting to be read.
    pub size: u64,
    /// Read by a worker, not yet settled.
    pub in_flight: u64,
    /// Failed, waiting for their next attempt.
    pub retrying: u64,
    pub dead_letters: u64,
    pub processed: u64,
}

/// The six queues, on one Redis.
#[derive(Clone)]
pub struct Queues {
    redis: ConnectionManager,
    client: redis::Client,
}

impl std::fmt::Debug for Queues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Queues")
    }
}

const PROMOTE_SCRIPT: &str = r"
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, member in ipairs(due) do
  local job = cjson.decode(member)
  redis.call('XADD', 'tekup:queue:' .. job.queue, '*', 'job', member)
  redis.call('ZREM', KEYS[1], member)
end
return #due
";

/// One worker's reading end. Blocking reads get a connection of their own:
/// on the shared multiplexed connection they would stall every other command.
pub struct Consumer {
    queues: Queues,
    name: String,
    blocking: ConnectionManager,
    /// Jobs a read delivered beside the one it returned: one read of
    /// several streams hands out up to one entry per stream, all pending
    /// for this consumer, so they are handled next rather than left to
    /// the reclaimer.
    delivered: std::collections::VecDeque<Delivery>,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Consumer({})", self.name)
    }
}

impl Consumer {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The next job, highest priority first, waiting up to `block` when
    /// every queue is empty.
    pub async fn next(&mut self, block: Duration) -> Result<Option<Delivery>, QueueError> {
        if let Some(delivery) = self.delivered.pop_front() {
            return Ok(Some(delivery));
        }
        for tier in [
            QueuePriority::High,
            QueuePriority::Medium,
            QueuePriority::Low,
        ] {
            let queues: Vec<QueueName> = QueueName::ALL
                .into_iter()
                .filter(|q| q.priority() == tier)
                .collect();
            if let Some(found) = self.read(&queues, None).await? {
                return Ok(Some(found));
            }
        }
        self.read(&QueueName::ALL, Some(block)).await
    }

    async fn read(
        &mut self,
        queues: &[QueueName],
        block: Option<Duration>,
    ) -> Result<Option<Delivery>, QueueError> {
        let keys: Vec<String> = queues.iter().map(|q| stream(*q)).collect();
        let ids: Vec<&str> = queues.iter().map(|_| ">").collect();
        let mut options = StreamReadOptions::default()
            .group(GROUP, &self.name)
            .count(1);
        if let Some(block) = block {
            options = options.block(
                usize::try_from(block.as_millis())
                    .unwrap_or(usize::MAX)
                    .max(1),
            );
        }
        let reply: Option<StreamReadReply> =
            self.blocking.xread_options(&keys, &ids, &options).await?;
        let Some(reply) = reply else { return Ok(None) };
        for key in reply.keys {
            let Some(queue) = QueueName::ALL.into_iter().find(|q| stream(*q) == key.key) else {
                continue;
            };
            for entry in key.ids {
                let delivery = self.queues.decode(queue, &entry.id, &entry.map, 1).await?;
                self.delivered.push_back(delivery);
            }
        }
        Ok(self.delivered.pop_front())
    }
}

impl Queues {
    /// A reading end for the consumer `name` (unique per worker task).
    pub async fn consumer(&self, name: &str) -> Result<Consumer, QueueError> {
        Ok(Consumer {
            queues: self.clone(),
            name: name.to_owned(),
            delivered: std::collections::VecDeque::new(),
            blocking: ConnectionManager::new_with_config(self.client.clone(), reconnecting())
                .await?,
        })
    }

    /// Connects to Redis and makes sure every consumer group exists.
    pub async fn connect(client: redis::Client) -> Result<Self, QueueError> {
        let redis = ConnectionManager::new_with_config(client.clone(), reconnecting()).await?;
        let queues = Self { redis, client };
        queues.ensure_groups().await?;
        Ok(queues)
    }

    async fn ensure_groups(&self) -> Result<(), QueueError> {
        let mut redis = self.redis.clone();
        for queue in QueueName::ALL {
            let created: Result<(), RedisError> = redis
                .xgroup_create_mkstream(stream(queue), GROUP, "0")
                .await;
            match created {
                Ok(()) => {}
                Err(e) if e.code() == Some("BUSYGROUP") => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Checks that Redis answers.
    pub async fn ping(&self) -> Result<(), QueueError> {
        let mut redis = self.redis.clone();
        let _: String = bounded(redis::cmd("PING").query_async(&mut redis)).await?;
        Ok(())
    }

    /// Adds a job, with the `traceparent` of its `enqueue` span (see
    /// [`crate::telemetry`]); returns its stream entry id.
    pub async fn enqueue(&self, job: &Job) -> Result<String, QueueError> {
        let source = crate::context::RequestContext::with_current(|c| c.service).flatten();
        let span = crate::telemetry::producer_job(job, source);
        let result = self.add(job, &span).instrument(span.clone()).await;
        if let Err(e) = &result {
            crate::telemetry::fail(&span, crate::error::chain(e));
        }
        result
    }

    async fn add(&self, job: &Job, span: &tracing::Span) -> Result<String, QueueError> {
        let mut job = job.clone();
        job.traceparent = crate::telemetry::traceparent_of(span)
            .map(|t| t.header())
            .or_else(|| crate::context::RequestContext::with_current(|c| c.outgoing_traceparent()));
        if crate::defects::active("trace-drops-job-context") {
            // Deliberate defect: the job forgets its trace; its processing
            // starts a new one.
            job.traceparent = None;
        }
        let json = serde_json::to_string(&job)?;
        let add = || {
            let mut redis = self.redis.clone();
            let (stream, json) = (stream(job.queue), json.clone());
            async move { redis.xadd(stream, "*", &[("job", json)]).await }
        };
        bounded(once_more_if_dropped("queueing a job", add)).await
    }

    async fn decode(
        &self,
        queue: QueueName,
        entry_id: &str,
        fields: &std::collections::HashMap<String, RedisValue>,
        deliveries: u64,
    ) -> Result<Delivery, QueueError> {
        let raw: Option<String> = fields
            .get("job")
            .and_then(|v| redis::from_redis_value(v).ok());
        match raw.as_deref().map(serde_json::from_str::<Job>) {
            Some(Ok(job)) => Ok(Delivery {
                queue,
                entry_id: entry_id.to_owned(),
                job,
                deliveries,
            }),
            // An entry we cannot even read is dead on arrival: keep it for
            // inspection, never lose it, never loop on it.
            other => {
                let error = match other {
                    Some(Err(e)) => format!("undecodable job: {e}"),
                    _ => "entry has no `job` field".to_owned(),
                };
                let mut redis = self.redis.clone();
                let _: () = redis::pipe()
                    .atomic()
                    .xadd(
                        dead_stream(queue),
                        "*",
                        &[("raw", raw.unwrap_or_default()), ("error", error.clone())],
                    )
                    .xack(stream(queue), GROUP, &[entry_id])
                    .xdel(stream(queue), &[entry_id])
                    .query_async(&mut redis)
                    .await?;
                Err(QueueError::Codec(serde_json::Error::io(
                    std::io::Error::other(error),
                )))
            }
        }
    }

    /// Acknowledges a finished job and counts it as processed.
    pub async fn complete(&self, delivery: &Delivery) -> Result<(), QueueError> {
        let mut redis = self.redis.clone();
        let _: () = redis::pipe()
            .atomic()
            .xack(stream(delivery.queue), GROUP, &[&delivery.entry_id])
            .xdel(stream(delivery.queue), &[&delivery.entry_id])
            .hincr(PROCESSED, delivery.queue.as_str(), 1)
            .query_async(&mut redis)
            .await?;
        Ok(())
    }

    /// Acknowledges and removes a job without counting it anywhere. Only
    /// the deliberate defect `no-job-retry` does this: it is how a worker
    /// that swallows failures loses jobs.
    pub async fn discard(&self, delivery: &Delivery) -> Result<(), QueueError> {
        let mut redis = self.redis.clone();
        let _: () = redis::pipe()
            .atomic()
            .xack(stream(delivery.queue), GROUP, &[&delivery.entry_id])
            .xdel(stream(delivery.queue), &[&delivery.entry_id])
            .query_async(&mut redis)
            .await?;
        Ok(())
    }

    /// Parks a job that failed at `now` for another attempt after `delay`,
    /// recording the time of its first failure on the first retry
    /// ([`Job::retried`]).
    pub async fn retry_later(
        &self,
        delivery: &Delivery,
        error: &str,
        delay: Duration,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), QueueError> {
        let job = delivery.job.retried(error, now);
        let now_ms = u64::try_from(now.timestamp_millis()).unwrap_or(0);
        let due = now_ms + u64::try_from(delay.as_millis()).unwrap_or(u64::MAX / 2);
        let mut redis = self.redis.clone();
        let _: () = redis::pipe()
            .atomic()
            .zadd(DELAYED, serde_json::to_string(&job)?, due)
            .xack(stream(delivery.queue), GROUP, &[&delivery.entry_id])
            .xdel(stream(delivery.queue), &[&delivery.entry_id])
            .query_async(&mut redis)
            .await?;
        Ok(())
    }

    /// Moves a job that ran out of retries to its dead-letter stream.
    pub async fn dead_letter(&self, delivery: &Delivery, error: &str) -> Result<(), QueueError> {
        let mut job = delivery.job.clone();
        job.last_error = Some(error.to_owned());
        let mut redis = self.redis.clone();
        let _: () = redis::pipe()
            .atomic()
            .xadd(
                dead_stream(delivery.queue),
                "*",
                &[
                    ("job", serde_json::to_string(&job)?),
                    ("error", error.to_owned()),
                ],
            )
            .xack(stream(delivery.queue), GROUP, &[&delivery.entry_id])
            .xdel(stream(delivery.queue), &[&delivery.entry_id])
            .query_async(&mut redis)
            .await?;
        Ok(())
    }

    /// Puts delayed jobs whose time has come back on their queues.
    pub async fn promote_due(&self, now_ms: u64) -> Result<u64, QueueError> {
        let mut redis = self.redis.clone();
        let moved: u64 = redis::Script::new(PROMOTE_SCRIPT)
            .key(DELAYED)
            .arg(now_ms)
            .arg(100)
            .invoke_async(&mut redis)
            .await?;
        Ok(moved)
    }

    /// Takes over jobs another consumer has held for longer than `min_idle`
    /// (it probably died), up to `count` per queue.
    pub async fn reclaim(
        &self,
        consumer: &str,
        min_idle: Duration,
        count: usize,
    ) -> Result<Vec<Delivery>, QueueError> {
        let mut redis = self.redis.clone();
        let mut out = Vec::new();
        let idle = usize::try_from(min_idle.as_millis()).unwrap_or(usize::MAX);
        for queue in QueueName::ALL {
            let reply: StreamAutoClaimReply = redis
                .xautoclaim_options(
                    stream(queue),
                    GROUP,
                    consumer,
                    idle,
                    "0-0",
                    StreamAutoClaimOptions::default().count(count),
                )
                .await?;
            for entry in reply.claimed {
                match self.decode(queue, &entry.id, &entry.map, 2).await {
                    Ok(delivery) => out.push(delivery),
                    Err(QueueError::Codec(e)) => {
                        tracing::warn!(queue = queue.as_str(), error = %e, "dead-lettered an unreadable job")
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(out)
    }

    /// Dead letters of a queue, newest first: (job or raw entry, last error).
    pub async fn dead_letters(
        &self,
        queue: QueueName,
        count: usize,
    ) -> Result<Vec<(serde_json::Value, String)>, QueueError> {
        let mut redis = self.redis.clone();
        let reply: redis::streams::StreamRangeReply = redis
            .xrevrange_count(dead_stream(queue), "+", "-", count)
            .await?;
        Ok(reply
            .ids
            .into_iter()
            .map(|entry| {
                let field = |name: &str| -> String {
                    entry
                        .map
                        .get(name)
                        .and_then(|v| redis::from_redis_value(v).ok())
                        .unwrap_or_default()
                };
                let job = serde_json::from_str(&field("job"))
                    .unwrap_or_else(|_| serde_json::Value::String(field("raw")));
                (job, field("error"))
            })
            .collect())
    }

    /// When the oldest job waiting in each queue (added, not yet read by
    /// a worker) was added, in milliseconds since the epoch; `None` for a
    /// queue with nothing waiting. A stream entry's id starts with the time
    /// it was added, and what the group has not been handed yet comes after
    /// its last delivered id.
    pub async fn oldest_waiting(&self) -> Result<Vec<(QueueName, Option<u64>)>, QueueError> {
        let mut redis = self.redis.clone();
        let mut out = Vec::new();
        for queue in QueueName::ALL {
            let groups: redis::streams::StreamInfoGroupsReply =
                bounded(redis.xinfo_groups(stream(queue))).await?;
            let Some(group) = groups.groups.iter().find(|g| g.name == GROUP) else {
                out.push((queue, None));
                continue;
            };
            let first: redis::streams::StreamRangeReply = bounded(redis.xrange_count(
                stream(queue),
                format!("({}", group.last_delivered_id),
                "+",
                1,
            ))
            .await?;
            let added_ms = first
                .ids
                .first()
                .and_then(|entry| entry.id.split('-').next()?.parse::<u64>().ok());
            out.push((queue, added_ms));
        }
        Ok(out)
    }

    /// Sizes, in-flight, retrying, dead and processed counts of every queue,
    /// read in one transaction: every move of a job (retry, promotion,
    /// dead letter) is atomic too, so a job is counted in one place only.
    /// (Read piecemeal, a job dead-lettered between the reads showed as
    /// retrying and dead at once.)
    pub async fn stats(&self) -> Result<Vec<QueueStats>, QueueError> {
        let mut redis = self.redis.clone();
        let mut pipe = redis::pipe();
        pipe.atomic().zrange(DELAYED, 0, -1).hgetall(PROCESSED);
        for queue in QueueName::ALL {
            pipe.xlen(stream(queue))
                .xpending(stream(queue), GROUP)
                .xlen(dead_stream(queue));
        }
        let replies: Vec<RedisValue> = pipe.query_async(&mut redis).await?;
        let mut replies = replies.into_iter();
        let mut next = || replies.next().unwrap_or(RedisValue::Nil);
        let delayed: Vec<String> = redis::from_redis_value(&next())?;
        let processed: std::collections::HashMap<String, u64> = redis::from_redis_value(&next())?;
        let mut out = Vec::new();
        for queue in QueueName::ALL {
            let len: u64 = redis::from_redis_value(&next())?;
            let pending: redis::streams::StreamPendingReply = redis::from_redis_value(&next())?;
            let dead: u64 = redis::from_redis_value(&next())?;
            let in_flight = pending.count() as u64;
            let retrying = delayed
                .iter()
                .filter_map(|m| serde_json::from_str::<Job>(m).ok())
                .filter(|job| job.queue == queue)
                .count() as u64;
            out.push(QueueStats {
                name: queue.as_str(),
                priority: queue.priority(),
                max_retries: queue.max_retries(),
                size: len.saturating_sub(in_flight),
                in_flight,
                retrying,
                dead_letters: dead,
                processed: processed.get(queue.as_str()).copied().unwrap_or(0),
            });
        }
        Ok(out)
    }
}
