//! The worker: takes jobs off the queues, runs their handlers, and settles
//! each one (done, retry later with backoff, or dead letter: `retry.rs`
//! says when a failed job is given up on, and why a count is not enough).
//!
//! `concurrency` consumer tasks each read with their own connection; one
//! maintenance task moves due retries back onto their queues, reclaims jobs
//! left pending by a dead worker (`XAUTOCLAIM` after `reclaim_idle`) and
//! refreshes the `message_queue_size` and `message_queue_oldest_age_seconds`
//! gauges.

mod handlers;
mod retry;

pub use handlers::{COMPLIANCE_CHECK, SYNC_EMAIL, VOICE_NOTIFICATION};
pub(crate) use retry::parse_span;
pub use retry::{RetrySpan, DEFAULT_RETRY_SPAN};

use std::sync::Arc;
use std::time::Duration;

use rand::SeedableRng;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::context::RequestContext;
use crate::metrics::{QueueLabels, QueueOutcomeLabels};
use crate::queue::{Delivery, QueueError, Queues};
use crate::state::AppState;
use retry::{Next, RetryPolicy};

/// Tuning of the worker.
#[derive(Debug, Clone, clap::Args)]
pub struct WorkerArgs {
    /// Jobs handled at once.
    #[arg(long, env = "WORKER_CONCURRENCY", default_value_t = 4)]
    pub concurrency: usize,
    /// This worker's consumer name; unique per worker process (default: host-pid).
    #[arg(long, env = "WORKER_NAME")]
    pub name: Option<String>,
    /// A job pending this long with another consumer is taken over (that consumer probably died).
    #[arg(long, env = "WORKER_RECLAIM_IDLE_MS", default_value_t = 30_000)]
    pub reclaim_idle_ms: u64,
    /// First retry delay; doubles per attempt, with jitter.
    #[arg(long, env = "QUEUE_RETRY_BASE_MS", default_value_t = 500)]
    pub retry_base_ms: u64,
    /// Longest retry delay.
    #[arg(long, env = "QUEUE_RETRY_MAX_MS", default_value_t = 60_000)]
    pub retry_max_ms: u64,
    /// The outage a queue's jobs ride out, as QUEUE=SPAN: a failed job is
    /// dead-lettered only once it has used its queue's retries and has been
    /// failing for SPAN since its first failure; until then it is retried
    /// with the same capped, jittered backoff. SPAN is seconds or e.g.
    /// `90s`, `2m`, `500ms`; `0` lets the count alone decide. Repeat the
    /// flag, or separate entries with commas (`lead-processing=30,email-sync=60`).
    /// Queues not named: 30 s (the contract's `retry-span`).
    #[arg(
        long = "job-retry-span",
        env = "JOB_RETRY_SPANS",
        value_name = "QUEUE=SPAN",
        value_delimiter = ','
    )]
    pub retry_spans: Vec<RetrySpan>,
    /// Where security alerts are mailed (through Graph); no alert mails without it.
    #[arg(long, env = "ALERT_EMAIL")]
    pub alert_email: Option<String>,
}

impl Default for WorkerArgs {
    fn default() -> Self {
        Self {
            concurrency: 4,
            name: None,
            reclaim_idle_ms: 30_000,
            retry_base_ms: 500,
            retry_max_ms: 60_000,
            retry_spans: Vec::new(),
            alert_email: None,
        }
    }
}

impl WorkerArgs {
    /// When failed jobs are retried and when dead-lettered (see `retry.rs`).
    fn retry_policy(&self) -> RetryPolicy<'_> {
        RetryPolicy {
            base: Duration::from_millis(self.retry_base_ms),
            cap: Duration::from_millis(self.retry_max_ms),
            spans: &self.retry_spans,
            by_count: crate::defects::active("job-retries-by-count"),
        }
    }
}

fn now_ms() -> u64 {
    u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0)
}

/// Runs the worker until `shutdown` is cancelled; jobs in progress finish first.
pub async fn run(
    state: AppState,
    args: WorkerArgs,
    shutdown: CancellationToken,
) -> Result<(), QueueError> {
    let queues = state.queues.clone().ok_or_else(|| {
        QueueError::Redis(redis::RedisError::from((
            redis::ErrorKind::ClientError,
            "the worker needs REDIS_URL",
        )))
    })?;
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| format!("{}-{}", hostname(), std::process::id()));
    let args = Arc::new(args);
    let consumers = args.concurrency.max(1);
    let roles = (0..consumers)
        .map(|i| Role::Consume(format!("{name}-{i}")))
        .chain([Role::Maintain(format!("{name}-reclaim"))])
        .collect();
    let start = |role: &Role| {
        let (state, queues, args, shutdown) = (
            state.clone(),
            queues.clone(),
            Arc::clone(&args),
            shutdown.clone(),
        );
        let role = role.clone();
        async move {
            let task: Task = match role {
                Role::Consume(name) => Box::pin(consume(
                    state,
                    queues.clone(),
                    queues.consumer(&name).await?,
                    args,
                    shutdown,
                )),
                Role::Maintain(name) => Box::pin(maintain(state, queues, name, args, shutdown)),
            };
            Ok::<_, QueueError>(task)
        }
    };
    tracing::info!(
        worker = name,
        concurrency = args.concurrency,
        "worker started"
    );
    supervise(roles, &shutdown, start).await
}

/// What a task of the worker does.
#[derive(Debug, Clone)]
enum Role {
    /// Consumes jobs as the named consumer.
    Consume(String),
    /// Promotes due retries and reclaims jobs of silent consumers.
    Maintain(String),
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Role::Consume(name) | Role::Maintain(name) => f.write_str(name),
        }
    }
}

type Task = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// Starts a task per role and waits until they have all ended. A task that
/// panics is started again for its role (unless `shutdown` is cancelled):
/// otherwise a panic would leave the worker a consumer short for good,
/// with the job it held pending until the reclaim. An error starting the
/// first tasks is returned; one starting a task again is logged.
async fn supervise<R, F, Fut, E>(
    roles: Vec<R>,
    shutdown: &CancellationToken,
    mut start: F,
) -> Result<(), E>
where
    R: std::fmt::Display,
    F: FnMut(&R) -> Fut,
    Fut: std::future::Future<Output = Result<Task, E>>,
    E: std::error::Error + 'static,
{
    let mut tasks = tokio::task::JoinSet::new();
    let mut running = std::collections::HashMap::new();
    for role in roles {
        let id = tasks.spawn(start(&role).await?).id();
        running.insert(id, role);
    }
    while let Some(ended) = tasks.join_next_with_id().await {
        let Err(error) = ended else { continue };
        let Some(role) = running.remove(&error.id()) else {
            continue;
        };
        if !error.is_panic() || shutdown.is_cancelled() {
            continue;
        }
        tracing::error!(task = %role, "a worker task panicked; starting it again");
        match start(&role).await {
            Ok(task) => {
                running.insert(tasks.spawn(task).id(), role);
            }
            Err(e) => tracing::error!(
                task = %role,
                error = crate::error::chain(&e),
                "failed to start the task again"
            ),
        }
    }
    Ok(())
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map_or_else(|_| "worker".to_owned(), |h| h.trim().to_owned())
}

async fn consume(
    state: AppState,
    queues: Queues,
    mut consumer: crate::queue::Consumer,
    args: Arc<WorkerArgs>,
    shutdown: CancellationToken,
) {
    let mut failures = 0u32;
    loop {
        let next = tokio::select! {
            () = shutdown.cancelled() => return,
            next = consumer.next(Duration::from_secs(1)) => next,
        };
        match next {
            Ok(Some(delivery)) => {
                failures = 0;
                settle(&state, &queues, &args, delivery).await;
            }
            Ok(None) => failures = 0,
            Err(e) => {
                failures += 1;
                tracing::warn!(
                    consumer = consumer.name(),
                    error = crate::error::chain(&e),
                    "reading the queues failed; retrying"
                );
                let pause = Duration::from_millis(100 * u64::from(failures.min(20)));
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(pause) => {}
                }
            }
        }
    }
}

/// Runs a job's handler and settles the job by the outcome, in the
/// attempt's consumer span (a child of the job's `enqueue` span, from its
/// `traceparent`; see [`crate::telemetry`]).
async fn settle(state: &AppState, queues: &Queues, args: &WorkerArgs, delivery: Delivery) {
    let job = &delivery.job;
    let consumer = crate::telemetry::consumer(job);
    let ctx = RequestContext::traced(
        consumer.clone(),
        job.correlation_id.as_deref(),
        job.traceparent.as_deref(),
    )
    .in_service(state.service.as_str())
    .for_tenant(&job.tenant_id);
    let span = tracing::info_span!("job", queue = job.queue.as_str(), kind = job.kind, id = %job.id, attempt = job.attempt, correlation_id = ctx.correlation_id);
    // The span is attached to the futures, never entered across an await:
    // an entered span stays current on the thread while the task sleeps, so
    // other tasks' spans got it as parent, and once it closed the tracing
    // registry panicked cloning it ("tried to clone a span that already
    // closed"), killing a consumer with its job pending until the reclaim
    // 30 s later (the load bench's lead-creation at ~1,000 leads/s).
    let outcome = ctx
        .clone()
        .scope(handlers::handle(state, args, job))
        .instrument(span.clone())
        .instrument(consumer.clone())
        .await;
    if let Err(error) = &outcome {
        if !consumer.is_disabled() {
            crate::telemetry::fail(&consumer, crate::error::chain(error));
        }
    }
    ctx.scope(settle_outcome(state, queues, args, &delivery, outcome))
        .instrument(span)
        .instrument(consumer)
        .await;
}

/// Completes, retries or dead-letters a job by its handler's outcome.
async fn settle_outcome(
    state: &AppState,
    queues: &Queues,
    args: &WorkerArgs,
    delivery: &Delivery,
    outcome: Result<(), handlers::JobError>,
) {
    let job = &delivery.job;
    let label = |outcome: &str| QueueOutcomeLabels {
        queue: job.queue.as_str().to_owned(),
        outcome: outcome.to_owned(),
    };
    let settled = match outcome {
        Ok(()) => {
            tracing::debug!("job done");
            state
                .metrics
                .queue_processed
                .get_or_create(&label("completed"))
                .inc();
            queues.complete(delivery).await
        }
        Err(error) if crate::defects::active("no-job-retry") => {
            tracing::error!(
                error = crate::error::chain(&error),
                "job failed; dropped (deliberate defect no-job-retry)"
            );
            queues.discard(delivery).await
        }
        Err(error) => {
            let now = chrono::Utc::now();
            let policy = args.retry_policy();
            // With its causes: the job's `lastError` must say why it failed.
            let error = crate::error::chain(&error);
            match policy.next(job, now, &mut rand::rngs::StdRng::from_entropy()) {
                Next::Retry(delay) => {
                    tracing::warn!(
                        error,
                        ?delay,
                        failing_for = ?job.failing_for(now),
                        "job failed; will retry"
                    );
                    state
                        .metrics
                        .queue_processed
                        .get_or_create(&label("retried"))
                        .inc();
                    queues.retry_later(delivery, &error, delay, now).await
                }
                Next::DeadLetter => {
                    tracing::error!(
                        error,
                        failing_for = ?job.failing_for(now),
                        retry_span = ?policy.span(job.queue),
                        "job failed for the last time (its retries used, its retry span over); dead-lettered"
                    );
                    crate::telemetry::dead_letter(&error);
                    state
                        .metrics
                        .queue_processed
                        .get_or_create(&label("dead_lettered"))
                        .inc();
                    queues.dead_letter(delivery, &error).await
                }
            }
        }
    };
    if let Err(e) = settled {
        // The job stays pending and is reclaimed later: delivered again, not lost.
        tracing::error!(
            error = crate::error::chain(&e),
            "failed to settle the job; it will be redelivered"
        );
    }
}

async fn maintain(
    state: AppState,
    queues: Queues,
    reclaimer: String,
    args: Arc<WorkerArgs>,
    shutdown: CancellationToken,
) {
    let idle = Duration::from_millis(args.reclaim_idle_ms);
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    let mut last_reclaim = tokio::time::Instant::now();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Err(e) = queues.promote_due(now_ms()).await {
            tracing::warn!(error = crate::error::chain(&e), "moving due retries failed");
        }
        // Deliberate defect: jobs a dead worker held stay pending forever.
        let reclaims = !crate::defects::active("worker-no-reclaim");
        if reclaims && last_reclaim.elapsed() >= (idle / 2).max(Duration::from_millis(200)) {
            last_reclaim = tokio::time::Instant::now();
            match queues.reclaim(&reclaimer, idle, 50).await {
                Ok(reclaimed) => {
                    for delivery in reclaimed {
                        tracing::info!(job = %delivery.job.id, queue = delivery.queue.as_str(), "reclaimed a job from a silent worker");
                        settle(&state, &queues, &args, delivery).await;
                    }
                }
                Err(e) => {
                    tracing::warn!(
                        error = crate::error::chain(&e),
                        "reclaiming pending jobs failed"
                    )
                }
            }
        }
        if let Ok(stats) = queues.stats().await {
            for s in stats {
                state
                    .metrics
                    .queue_size
                    .get_or_create(&QueueLabels {
                        queue: s.name.to_owned(),
                    })
                    .set(i64::try_from(s.size).unwrap_or(i64::MAX));
            }
        }
        if let Ok(oldest) = queues.oldest_waiting().await {
            let now = now_ms();
            for (queue, added_ms) in oldest {
                let age_s = added_ms.map_or(0, |added| now.saturating_sub(added) / 1000);
                state
                    .metrics
                    .queue_oldest_age
                    .get_or_create(&QueueLabels {
                        queue: queue.as_str().to_owned(),
                    })
                    .set(i64::try_from(age_s).unwrap_or(i64::MAX));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A `start` whose first task panics and whose later tasks end; counts
    /// the starts.
    fn panics_once(
        starts: &Arc<AtomicUsize>,
    ) -> impl FnMut(&&str) -> std::future::Ready<Result<Task, std::io::Error>> {
        let starts = Arc::clone(starts);
        move |role: &&str| {
            let n = starts.fetch_add(1, Ordering::SeqCst);
            let role = role.to_string();
            let task: Task = Box::pin(async move {
                assert!(n > 0, "deliberate panic of {role}'s first run");
            });
            std::future::ready(Ok(task))
        }
    }

    #[tokio::test]
    async fn a_task_that_panics_is_started_again_for_its_role() {
        let starts = Arc::new(AtomicUsize::new(0));
        let shutdown = CancellationToken::new();
        supervise(vec!["consumer-0"], &shutdown, panics_once(&starts))
            .await
            .expect("started");
        assert_eq!(starts.load(Ordering::SeqCst), 2, "started, then again");
    }

    #[tokio::test]
    async fn during_shutdown_a_task_that_panics_stays_down() {
        let starts = Arc::new(AtomicUsize::new(0));
        let shutdown = CancellationToken::new();
        shutdown.cancel();
        supervise(vec!["consumer-0"], &shutdown, panics_once(&starts))
            .await
            .expect("started");
        assert_eq!(starts.load(Ordering::SeqCst), 1);
    }
}
