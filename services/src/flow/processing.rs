//! The lead-to-contact flow, run by the worker for each `process-lead` job
//! (or inside `POST /leads` when no queue is configured).
//!
//! 1. Ask the CRM API for a contact with the lead's email; associate the
//!    lead with it, or create the contact with the lead (a concurrent
//!    creator's 409 falls back to associating).
//! 2. Store the contact id on the lead and record the `LEAD_CREATED`
//!    activity, keyed `LEAD_CREATED:<lead id>` so it exists once per lead.
//! 3. Publish `LEAD_CREATED` with an id derived from the lead id, so the
//!    gateway drops a re-publication.
//!
//! Every step is idempotent, which is what makes at-least-once delivery of
//! the job safe: a job delivered twice has one effect.

use axum::http::StatusCode;
use serde_json::json;
use uuid::Uuid;

use super::activities;
use super::leads::Lead;
use crate::client::{Call, CallError, OnBehalf};
use crate::db::tenant_tx;
use crate::events::{CrossAppEvent, EventError};
use crate::state::{AppState, ServiceName};

/// The job kind of the lead-processing queue.
pub(crate) const PROCESS_LEAD: &str = "process-lead";

/// Why processing a lead failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProcessLeadError {
    #[error("lead {0} not found")]
    NotFound(Uuid),
    #[error("failed to link the lead to a CRM contact")]
    Crm(#[from] CallError),
    #[error("database error")]
    Database(#[from] sqlx::Error),
    #[error("failed to publish LEAD_CREATED")]
    Publish(#[from] EventError),
}

/// Runs the flow for a stored lead. With `strict`, a CRM failure is an
/// error (the job is retried); without, it is recorded in the activity and
/// the lead stays without contact.
pub(crate) async fn process_lead(
    state: &AppState,
    tenant: &str,
    origin_app: Option<&str>,
    lead_id: Uuid,
    strict: bool,
) -> Result<Lead, ProcessLeadError> {
    let mut tx = tenant_tx(&state.db, tenant).await?;
    let lead: Option<Lead> =
        sqlx::query_as("SELECT * FROM flow.leads WHERE id = $1 AND tenant_id = $2")
            .bind(lead_id)
            .bind(tenant)
            .fetch_optional(&mut *tx)
            .await?;
    tx.commit().await?;
    let mut lead = lead.ok_or(ProcessLeadError::NotFound(lead_id))?;

    let link = link_contact(state, tenant, origin_app, &lead).await;
    // Deliberate defect: a CRM that is down (not one that is slow) is taken
    // for a final answer, and the job is acknowledged without the contact.
    let strict = strict
        && !(crate::defects::active("crm-refused-final")
            && matches!(&link, Err(CallError::Unreachable { source, .. }) if !source.is_timeout()));
    let mut tx = tenant_tx(&state.db, tenant).await?;
    let data = match link {
        Ok((contact_id, created)) => {
            lead = sqlx::query_as(
                "UPDATE flow.leads SET contact_id = $2, updated_at = now()
                  WHERE id = $1 AND tenant_id = $3 RETURNING *",
            )
            .bind(lead.id)
            .bind(contact_id)
            .bind(tenant)
            .fetch_one(&mut *tx)
            .await?;
            json!({ "contactId": contact_id, "contactCreated": created, "email": lead.email })
        }
        Err(error) if !strict => {
            tracing::warn!(lead = %lead.id, error = crate::error::chain(&error), "lead not linked to a CRM contact");
            json!({ "contactId": null, "contactError": error.to_string(), "email": lead.email })
        }
        Err(error) => return Err(error.into()),
    };
    let mut key = format!("LEAD_CREATED:{}", lead.id);
    if crate::defects::active("duplicate-activity") {
        key = format!("{key}:{}", Uuid::new_v4());
    }
    let entry = activities::Once {
        kind: "LEAD_CREATED",
        entity_type: "lead",
        entity_id: Some(lead.id),
        description: None,
        data: &data,
        dedupe_key: &key,
    };
    activities::record_once(&mut tx, tenant, &entry).await?;
    tx.commit().await?;

    if crate::defects::active("skip-lead-event") {
        return Ok(lead);
    }
    if let Some(events) = &state.events {
        let mut payload = serde_json::to_value(&lead).unwrap_or_default();
        payload["contactCreated"] = data["contactCreated"].clone();
        let event = CrossAppEvent::new(
            "LEAD_CREATED",
            ServiceName::FlowApi.as_str(),
            tenant,
            payload,
        )
        .with_stable_id(&key);
        events.publish(&event).await?;
    }
    Ok(lead)
}

/// Finds or creates the CRM contact of `lead` and associates the lead with
/// it; returns the contact id and whether it was created.
async fn link_contact(
    state: &AppState,
    tenant: &str,
    origin_app: Option<&str>,
    lead: &Lead,
) -> Result<(Uuid, bool), CallError> {
    let on_behalf = OnBehalf { tenant, origin_app };
    let client = &state.client;
    let find = || async {
        let path = format!("/contacts?email={}", percent_encode(&lead.email));
        let (_, found) = client
            .call(on_behalf, Call::get(ServiceName::CrmApi, path))
            .await?;
        Ok::<_, CallError>(
            found["data"][0]["id"]
                .as_str()
                .and_then(|id| id.parse::<Uuid>().ok()),
        )
    };
    let associate = |contact: Uuid| async move {
        let body = json!({ "leadId": lead.id });
        let path = format!("/contacts/{contact}/leads");
        client
            // Associating twice changes nothing: safe to retry.
            .call(
                on_behalf,
                Call::post(ServiceName::CrmApi, path, &body).idempotent(),
            )
            .await
            .map(|_| contact)
    };
    if let Some(contact) = find().await? {
        return Ok((associate(contact).await?, false));
    }
    let body = json!({
        "email": lead.email,
        "firstName": lead.first_name,
        "lastName": lead.last_name,
        "company": lead.company,
        "phone": lead.phone,
        "source": "flow-api",
        "leadId": lead.id,
    });
    let (status, created) = client
        .call(
            on_behalf,
            // A retry after a lost answer gets 409 and associates: safe to retry.
            Call::post(ServiceName::CrmApi, "/contacts", &body)
                .accept(&[StatusCode::CONFLICT])
                .idempotent(),
        )
        .await?;
    if status == StatusCode::CONFLICT {
        // Someone created the contact between our lookup and our insert.
        let contact = find().await?.ok_or_else(|| CallError::Status {
            target: ServiceName::CrmApi,
            status,
            body: "contact reported as existing but not found".into(),
        })?;
        return Ok((associate(contact).await?, false));
    }
    let id = created["id"]
        .as_str()
        .and_then(|id| id.parse::<Uuid>().ok())
        .ok_or_else(|| CallError::Status {
            target: ServiceName::CrmApi,
            status,
            body: format!("created contact has no id: {created}"),
        })?;
    Ok((id, true))
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn percent_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_encoded_for_query_strings() {
        assert_eq!(percent_encode("a+b@x.com"), "a%2Bb%40x.com");
    }
}
