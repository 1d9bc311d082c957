//! The services' job queues as the harness touches them: counting a run's
//! jobs in a stream, and adding a job the way a service would. The
//! scenario steps (`redis: queue`, `redis: enqueue`) and the property
//! suite's redelivery share these, so both speak the same format.

use std::collections::BTreeSet;

use redis::AsyncCommands as _;
use serde_json::Value;
use tekup_services::queue::{Job, QueueName};

/// The stream of a queue (`dead` for its dead-letter stream).
pub(crate) fn stream(queue: &str, dead: bool) -> String {
    if dead {
        format!("tekup:queue:{queue}:dead")
    } else {
        format!("tekup:queue:{queue}")
    }
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

/// Adds a new job to `queue` in the services' [`Job`] format (attempt 0,
/// enqueued now, carrying `correlation_id`): one `XADD tekup:queue:<queue>
/// * job <json>`, as `Queues::enqueue` of the services does. Returns the job.
pub(crate) async fn enqueue_job(
    redis: &mut redis::aio::MultiplexedConnection,
    queue: &str,
    kind: &str,
    tenant_id: &str,
    payload: Value,
    correlation_id: &str,
) -> Result<Job, String> {
    let name = QueueName::parse(queue).ok_or_else(|| {
        format!(
            "unknown queue `{queue}` (the queues are {})",
            QueueName::ALL.map(QueueName::as_str).join(", ")
        )
    })?;
    let mut job = Job::new(name, kind, tenant_id, payload);
    job.correlation_id = Some(correlation_id.to_owned());
    let json = serde_json::to_string(&job).map_err(|e| format!("encoding the job: {e}"))?;
    let key = stream(queue, false);
    let _: String = redis
        .xadd(&key, "*", &[("job", json)])
        .await
        .map_err(|e| format!("XADD {key}: {e}"))?;
    Ok(job)
}
