//! A queue job in the contract's format, for the harness's own writes to a
//! queue (`redis: enqueue` in scenarios, the property suite's redelivery).

use serde_json::{json, Value};
use uuid::Uuid;

use super::Contract;

/// A fresh job (attempt 0, enqueued now) of `kind` for `tenant_id` on
/// `queue`, carrying `correlation_id`. Refuses a queue or a job kind the
/// contract does not name, and a payload its schema refuses.
pub fn new_job(
    contract: &Contract,
    queue: &str,
    kind: &str,
    tenant_id: &str,
    payload: Value,
    correlation_id: &str,
) -> Result<Value, String> {
    let Some(q) = contract.queue(queue) else {
        return Err(format!(
            "unknown queue `{queue}` (the queues are {})",
            contract.queue_names().join(", ")
        ));
    };
    if let Some(schema) = q.jobs.get(kind) {
        let validator = jsonschema::validator_for(schema)
            .map_err(|e| format!("the contract's payload schema of `{kind}` is invalid: {e}"))?;
        let first = validator
            .iter_errors(&payload)
            .next()
            .map(|error| format!("{error} (at `{}`)", error.instance_path));
        if let Some(error) = first {
            return Err(format!(
                "the payload of a `{kind}` job does not match the contract: {error}"
            ));
        }
    }
    // A kind the contract does not list is allowed: a scenario may test
    // how the workers treat a job nobody handles (dead-lettered).
    Ok(json!({
        "id": Uuid::new_v4(),
        "queue": queue,
        "kind": kind,
        "tenantId": tenant_id,
        "payload": payload,
        "attempt": 0,
        "enqueuedAt": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "correlationId": correlation_id,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_matches_the_contracts_schema_and_payloads_are_checked() {
        let c = Contract::reference();
        let lead = Uuid::new_v4();
        let job = new_job(
            c,
            "lead-processing",
            "process-lead",
            "acme",
            json!({ "leadId": lead }),
            "cid",
        )
        .unwrap();
        let validator = jsonschema::validator_for(&c.queues.job).unwrap();
        assert!(validator.is_valid(&job), "{job}");
        assert_eq!(job["payload"]["leadId"], json!(lead));

        let err = new_job(
            c,
            "lead-processing",
            "process-lead",
            "acme",
            json!({ "leadId": 7 }),
            "c",
        )
        .unwrap_err();
        assert!(
            err.contains("process-lead") && err.contains("/leadId"),
            "{err}"
        );
        let err = new_job(c, "leads", "process-lead", "acme", json!({}), "c").unwrap_err();
        assert!(err.contains("unknown queue `leads`"), "{err}");
    }
}
