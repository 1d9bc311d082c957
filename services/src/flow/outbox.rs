//! The outbox of `POST /leads` (migration `0007_lead_job_outbox.sql`).
//!
//! A lead's `process-lead` job is written into `flow.lead_jobs` in the
//! lead's own transaction, then queued, then its row deleted. The row is
//! what makes "a stored lead is always processed" survive the two ways the
//! request can stop between the commit and the queue:
//!
//! - the client hangs up, which drops the handler's future: the commit and
//!   the queueing run in a task of its own (with [`queue`]), so both
//!   happen or neither;
//! - the process dies (SIGKILL, OOM, a crash): the row stays, and the next
//!   flow-api to start queues every row older than its start
//!   ([`recover`]).
//!
//! A job can then be queued twice (a row whose delete was lost, or one a
//! recovering flow-api queued while a live one did too), under the same job
//! id; the worker's handlers are idempotent by job id, which is what the
//! platform promises of at-least-once delivery anyway.
//!
//! When queueing fails (Redis down), the request takes the lead back and
//! answers 503, as before, but only if it can still delete its own row: a
//! row someone else already took means the job is on the queue, and the
//! lead stands.

use std::time::Duration;

use serde_json::Value;
use sqlx::{Postgres, Transaction};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::db::tenant_tx;
use crate::error::ApiError;
use crate::queue::Job;
use crate::state::AppState;

/// Records `job` in the outbox, in the transaction that stores its lead.
pub(super) async fn record(
    tx: &mut Transaction<'static, Postgres>,
    job: &Job,
    lead: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO flow.lead_jobs (job_id, tenant_id, lead_id, job) VALUES ($1, $2, $3, $4)",
    )
    .bind(job.id)
    .bind(&job.tenant_id)
    .bind(lead)
    .bind(sqlx::types::Json(job))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Queues the job of a lead just committed, then deletes its outbox row;
/// when queueing fails, takes the lead back if the row is still its own
/// and answers why (a 503 when Redis is down: the client retries). Ok when
/// the job is on the queue, by this request or by a recovery.
pub(super) async fn queue(state: &AppState, tenant: &str, job: &Job) -> Result<(), ApiError> {
    let Some(queues) = &state.queues else {
        return Err(ApiError::internal(anyhow::anyhow!(
            "the lead's job has no queue to go to"
        )));
    };
    let lead = job.payload["leadId"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    match queues.enqueue(job).await {
        Ok(_) => {
            if let Err(e) = forget(state, tenant, job.id).await {
                // The row stays; the next start queues the job again, which
                // the handlers' idempotency absorbs.
                tracing::warn!(error = crate::error::chain(&e), job = %job.id, "failed to delete a queued job's outbox row");
            }
            Ok(())
        }
        Err(e) => {
            tracing::error!(error = crate::error::chain(&e), %lead, "failed to enqueue lead processing; taking the lead back");
            let mut tx = tenant_tx(&state.db, tenant).await?;
            let own = sqlx::query("DELETE FROM flow.lead_jobs WHERE job_id = $1")
                .bind(job.id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if own == 0 {
                // A recovery took the row: the job is queued.
                tx.commit().await?;
                return Ok(());
            }
            sqlx::query("DELETE FROM flow.leads WHERE id = $1::uuid AND tenant_id = $2")
                .bind(&lead)
                .bind(tenant)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            // Redis down is a 503 the client retries; a job that cannot
            // be encoded is a bug (500). Either way the lead is not kept.
            Err(ApiError::from(e))
        }
    }
}

async fn forget(state: &AppState, tenant: &str, job: Uuid) -> Result<(), sqlx::Error> {
    let mut tx = tenant_tx(&state.db, tenant).await?;
    sqlx::query("DELETE FROM flow.lead_jobs WHERE job_id = $1")
        .bind(job)
        .execute(&mut *tx)
        .await?;
    tx.commit().await
}

/// How long [`recover`] waits before trying again after a failure.
const RETRY: Duration = Duration::from_secs(1);

/// Queues the jobs a flow-api that stopped between a lead's commit and its
/// queueing left in the outbox: every row created before this start, of
/// every tenant (row-level security shows one tenant at a time, so it
/// takes them in turn). Runs in the background once, retrying until it
/// has gone through every tenant or `shutdown`.
pub async fn recover(state: AppState, shutdown: CancellationToken) {
    let mut queued = 0usize;
    let result = loop {
        let attempt = async {
            let since: chrono::DateTime<chrono::Utc> = sqlx::query_scalar("SELECT now()")
                .fetch_one(&state.db)
                .await?;
            let tenants: Vec<String> = sqlx::query_scalar("SELECT id FROM auth.tenants")
                .fetch_all(&state.db)
                .await?;
            for tenant in tenants {
                queued += recover_tenant(&state, &tenant, since).await?;
            }
            Ok::<(), RecoverError>(())
        };
        tokio::select! {
            () = shutdown.cancelled() => break None,
            done = attempt => match done {
                Ok(()) => break Some(()),
                Err(e) => {
                    tracing::warn!(error = crate::error::chain(&e), "outbox recovery failed; trying again");
                    tokio::select! {
                        () = shutdown.cancelled() => break None,
                        () = tokio::time::sleep(RETRY) => {}
                    }
                }
            },
        }
    };
    if result.is_some() && queued > 0 {
        tracing::warn!(
            queued,
            "queued lead jobs a previous flow-api left in the outbox"
        );
    }
}

#[derive(Debug, thiserror::Error)]
enum RecoverError {
    #[error("database error")]
    Database(#[from] sqlx::Error),
    #[error("failed to queue a recovered job")]
    Queue(#[from] crate::queue::QueueError),
    #[error("an outbox row holds no job: {0}")]
    Row(#[from] serde_json::Error),
}

async fn recover_tenant(
    state: &AppState,
    tenant: &str,
    since: chrono::DateTime<chrono::Utc>,
) -> Result<usize, RecoverError> {
    let Some(queues) = &state.queues else {
        return Ok(0);
    };
    let mut tx = tenant_tx(&state.db, tenant).await?;
    // Deleted first, in a transaction that commits only once they are all
    // queued (a failure rolls the rows back): a request failing to queue
    // its own job meanwhile waits for the commit, then finds its row gone
    // and keeps its lead.
    let rows: Vec<(Uuid, Value)> =
        sqlx::query_as("DELETE FROM flow.lead_jobs WHERE created_at < $1 RETURNING job_id, job")
            .bind(since)
            .fetch_all(&mut *tx)
            .await?;
    for (id, job) in &rows {
        let job: Job = serde_json::from_value(job.clone())?;
        queues.enqueue(&job).await?;
        tracing::info!(job = %id, tenant, "queued a lead job left in the outbox");
    }
    tx.commit().await?;
    Ok(rows.len())
}
