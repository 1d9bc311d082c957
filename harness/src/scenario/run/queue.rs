//! The services' job queues as the harness touches them: counting a run's
//! jobs in a stream, and adding a job the way a service would. The
//! scenario steps (`redis: queue`, `redis: enqueue`) and the property
//! suite's redelivery share these, so both speak the same format.

use std::collections::BTreeSet;

use redis::AsyncCommands as _;
use serde_json::Value;

use crate::contract;

/// The stream of a queue (`dead` for its dead-letter stream), as the contract names it.
pub(crate) fn stream(queue: &str, dead: bool) -> String {
    contract::active().queue_stream(queue, dead)
}

/// How many jobs of `tenants` a stream holds, and how many it holds in all.
pub(crate) async fn tenant_jobs(
    redis: &mut redis::aio::MultiplexedConnection,
    stream: &str,
    tenants: &BTreeSet<&str>,
) -> Result<(u64, u64), String> {
    let entries: redis::streams::StreamRangeReply = redis
        .xrange_all(stream)
        .await
        .map_err(|e| format!("XRANGE {stream}: {e}"))?;
    let mine = entries
        .ids
        .iter()
        .filter(|e| {
            let job: Option<String> = e.get("job");
            job.and_then(|j| serde_json::from_str::<Value>(&j).ok())
                .and_then(|j| j["tenantId"].as_str().map(|t| tenants.contains(t)))
                .unwrap_or(false)
        })
        .count() as u64;
    Ok((mine, entries.ids.len() as u64))
}

/// Adds a new job to `queue` in the contract's job format (attempt 0,
/// enqueued now, carrying `correlation_id` and, when given, the trace
/// context `traceparent`): one `XADD <queue stream> * job <json>`, as a
/// service queues a job. Returns the job.
pub(crate) async fn enqueue_job(
    redis: &mut redis::aio::MultiplexedConnection,
    queue: &str,
    kind: &str,
    tenant_id: &str,
    payload: Value,
    correlation_id: &str,
    traceparent: Option<&str>,
) -> Result<Value, String> {
    let mut job = contract::new_job(
        contract::active(),
        queue,
        kind,
        tenant_id,
        payload,
        correlation_id,
    )?;
    if let Some(tp) = traceparent {
        job["traceparent"] = Value::String(tp.to_owned());
    }
    let key = stream(queue, false);
    let _: String = redis
        .xadd(&key, "*", &[("job", job.to_string())])
        .await
        .map_err(|e| format!("XADD {key}: {e}"))?;
    Ok(job)
}
