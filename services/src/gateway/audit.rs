//! Writes the audit of delivered events to Postgres in batches.
//!
//! The audit holds one row per event and room it was delivered to. An
//! event can reach a room twice: live, and replayed to a connection that
//! resumed from a cursor before it (a connection that joins the room
//! before it reads its replay gets the live frame too, and skips it). So a
//! row is written only where the room has none for the event yet: the
//! first delivery is the one audited.

use std::collections::BTreeMap;
use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::hub::AuditRow;
use crate::db::tenant_tx;

const BATCH: usize = 1000;
const ATTEMPTS: u32 = 5;
/// `audit-skip` (a deliberate defect): one row in this many is dropped.
const SKIP_ONE_IN: u64 = 7;

/// Whether the deliberate defect `audit-skip` drops this row: every
/// seventh row the process writes (never without the defect).
fn skipped() -> bool {
    static ROWS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    crate::defects::active("audit-skip")
        && ROWS.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % SKIP_ONE_IN == SKIP_ONE_IN - 1
}

/// Drains `rows` until every sender is gone, or `stop`: then writes what
/// is still queued and returns.
pub(super) async fn run(
    db: PgPool,
    mut rows: mpsc::UnboundedReceiver<AuditRow>,
    stop: CancellationToken,
) {
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        let first = tokio::select! {
            row = rows.recv() => row,
            () = stop.cancelled() => rows.try_recv().ok(),
        };
        let Some(first) = first else { break };
        batch.push(first);
        while batch.len() < BATCH {
            match rows.try_recv() {
                Ok(row) => batch.push(row),
                Err(_) => break,
            }
        }
        batch.retain(|_| !skipped());
        if batch.is_empty() {
            continue;
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            match write(&db, &batch).await {
                Ok(()) => break,
                Err(e) if attempt < ATTEMPTS => {
                    tracing::warn!(error = %e, attempt, rows = batch.len(), "writing the event audit failed; retrying");
                    tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
                }
                Err(e) => {
                    tracing::error!(error = %e, rows = batch.len(), "event audit rows could not be written and are dropped");
                    break;
                }
            }
        }
        batch.clear();
    }
}

async fn write(db: &PgPool, rows: &[AuditRow]) -> Result<(), sqlx::Error> {
    let mut by_tenant: BTreeMap<&str, Vec<&AuditRow>> = BTreeMap::new();
    for row in rows {
        by_tenant
            .entry(row.tenant_id.as_str())
            .or_default()
            .push(row);
    }
    for (tenant, mut rows) in by_tenant {
        let mut seen = std::collections::HashSet::new();
        rows.retain(|r| seen.insert((r.event_id, r.app.as_str())));
        let mut tx = tenant_tx(db, tenant).await?;
        sqlx::query(
            "INSERT INTO gateway.event_audit (tenant_id, event_id, event_type, cursor, app, connections)
             SELECT $1, r.* FROM UNNEST($2::uuid[], $3::text[], $4::text[], $5::text[], $6::int[])
                 AS r (event_id, event_type, cursor, app, connections)
             WHERE NOT EXISTS (SELECT 1 FROM gateway.event_audit a
                                WHERE a.tenant_id = $1 AND a.event_id = r.event_id AND a.app = r.app)",
        )
        .bind(tenant)
        .bind(rows.iter().map(|r| r.event_id).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.event_type.clone()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.cursor.clone()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.app.clone()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.connections).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
    }
    Ok(())
}
