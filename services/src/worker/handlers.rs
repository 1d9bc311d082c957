//! What each job kind does. Every handler is idempotent: its effects are
//! keyed by something stable (the lead id, the incident id, the job id), so
//! a redelivered job finds them done instead of doing them twice.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::client::{Call, CallError, OnBehalf};
use crate::db::tenant_tx;
use crate::events::{CrossAppEvent, EventError, Priority};
use crate::external::graph::OutgoingMail;
use crate::flow::activities::{record_once, Once};
use crate::flow::processing::{process_lead, PROCESS_LEAD};
use crate::queue::{Job, QueueError, QueueName};
use crate::secure::Incident;
use crate::state::{AppState, ServiceName};

/// The job kind of spoken notifications on the voice-processing queue.
pub const VOICE_NOTIFICATION: &str = "voice-notification";
/// The job kind propagating a security incident (compliance-checks queue).
pub const COMPLIANCE_CHECK: &str = "compliance-check";
/// The job kind pulling mail through Graph into CRM contacts (email-sync queue).
pub const SYNC_EMAIL: &str = "sync-email";

/// A handler's failure; every failure is retried up to the queue's limit.
#[derive(Debug, thiserror::Error)]
pub(super) enum JobError {
    #[error("invalid payload: {0}")]
    Payload(String),
    #[error("no handler for job kind {0:?}")]
    UnknownKind(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error(transparent)]
    Lead(#[from] crate::flow::processing::ProcessLeadError),
    #[error("database error")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Call(#[from] CallError),
    #[error("failed to publish an event")]
    Publish(#[from] EventError),
    #[error(transparent)]
    NotConfigured(#[from] crate::external::NotConfigured),
    #[error(transparent)]
    Graph(#[from] crate::external::graph::GraphError),
    #[error("failed to queue a follow-up job")]
    Queue(#[from] QueueError),
}

fn uuid_field(payload: &Value, field: &str) -> Result<Uuid, JobError> {
    payload[field]
        .as_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            JobError::Payload(format!("`{field}` must be a UUID, got {}", payload[field]))
        })
}

pub(super) async fn handle(
    state: &AppState,
    settings: &super::WorkerArgs,
    job: &Job,
) -> Result<(), JobError> {
    match job.kind.as_str() {
        PROCESS_LEAD => {
            let lead = uuid_field(&job.payload, "leadId")?;
            let origin = job.payload["originApp"].as_str();
            process_lead(state, &job.tenant_id, origin, lead, true).await?;
            if job.payload["notifyVoice"].as_bool() == Some(true) {
                record_voice_notification(state, job, &format!("New lead {lead}")).await?;
            }
            Ok(())
        }
        VOICE_NOTIFICATION => {
            let text = job.payload["text"]
                .as_str()
                .ok_or_else(|| JobError::Payload("`text` must be a string".into()))?;
            record_voice_notification(state, job, text).await
        }
        COMPLIANCE_CHECK => compliance_check(state, settings, job).await,
        SYNC_EMAIL => sync_email(state, job).await,
        other => Err(JobError::UnknownKind(other.to_owned())),
    }
}

/// Records that a voice notification was handed to the voice agent, once per job.
async fn record_voice_notification(
    state: &AppState,
    job: &Job,
    text: &str,
) -> Result<(), JobError> {
    let mut tx = tenant_tx(&state.db, &job.tenant_id).await?;
    insert_marker(
        &mut tx,
        job,
        "VOICE_NOTIFICATION",
        ("voice", None),
        text,
        &format!("VOICE_NOTIFICATION:{}", job.id),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Records, once per `dedupe_key`, that `job` did something; false when it already had.
async fn insert_marker(
    tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    job: &Job,
    kind: &str,
    entity: (&str, Option<Uuid>),
    description: &str,
    dedupe_key: &str,
) -> Result<bool, sqlx::Error> {
    let data = json!({ "jobId": job.id, "queue": job.queue.as_str() });
    let entry = Once {
        kind,
        entity_type: entity.0,
        entity_id: entity.1,
        description: Some(description),
        data: &data,
        dedupe_key,
    };
    record_once(tx, &job.tenant_id, &entry).await
}

fn on_behalf(job: &Job) -> OnBehalf<'_> {
    OnBehalf {
        tenant: &job.tenant_id,
        origin_app: Some(ServiceName::SecurePlatform.as_str()),
    }
}

/// An incident's propagation: the compliance report in the Flow API, the
/// `SECURITY_INCIDENT` broadcast, and an alert mail through Graph.
async fn compliance_check(
    state: &AppState,
    settings: &super::WorkerArgs,
    job: &Job,
) -> Result<(), JobError> {
    let id = uuid_field(&job.payload, "incidentId")?;
    let mut tx = tenant_tx(&state.db, &job.tenant_id).await?;
    let incident: Option<Incident> =
        sqlx::query_as("SELECT * FROM secure.incidents WHERE id = $1 AND tenant_id = $2")
            .bind(id)
            .bind(&job.tenant_id)
            .fetch_optional(&mut *tx)
            .await?;
    tx.commit().await?;
    // Not there yet (the creating transaction has not committed) or gone: retried.
    let incident = incident.ok_or_else(|| JobError::NotFound(format!("incident {id}")))?;

    let report = json!({
        "incidentId": incident.id,
        "severity": incident.severity,
        "summary": format!("Security incident: {}", incident.title),
        "data": { "source": incident.source, "description": incident.description },
    });
    // One report per incident (409 after a lost answer): safe to retry.
    let call = Call::post(ServiceName::FlowApi, "/compliance/report", &report)
        .accept(&[StatusCode::CONFLICT])
        .idempotent();
    state.client.call(on_behalf(job), call).await?;

    if let Some(events) = &state.events {
        let priority = match incident.severity.as_str() {
            "critical" => Priority::Critical,
            "high" => Priority::High,
            _ => Priority::Normal,
        };
        let data = serde_json::to_value(&incident).unwrap_or_default();
        let event = CrossAppEvent::new(
            "SECURITY_INCIDENT",
            ServiceName::SecurePlatform.as_str(),
            &job.tenant_id,
            data,
        )
        .with_priority(priority)
        .with_stable_id(&incident.id.to_string());
        events.publish(&event).await?;
    }

    if let (Some(queues), "high" | "critical") = (&state.queues, incident.severity.as_str()) {
        // Same job id however often this runs: the voice handler acts once per id.
        let text = format!("Security alert, {}: {}", incident.severity, incident.title);
        let mut alert = Job::new(
            QueueName::VoiceProcessing,
            VOICE_NOTIFICATION,
            &job.tenant_id,
            json!({ "text": text }),
        );
        alert.id = Uuid::new_v5(
            &Uuid::NAMESPACE_OID,
            format!("voice-alert:{}", incident.id).as_bytes(),
        );
        queues.enqueue(&alert).await?;
    }

    // The marker commits only once the mail is sent: a failed send is retried,
    // a sent mail is not sent again.
    let Some(to) = settings.alert_email.as_deref() else {
        return Ok(());
    };
    let graph = state.external.graph()?;
    let mut tx = tenant_tx(&state.db, &job.tenant_id).await?;
    let key = format!("SECURITY_ALERT_MAIL:{}", incident.id);
    let subject = format!(
        "[{}] Security incident: {}",
        incident.severity, incident.title
    );
    if insert_marker(
        &mut tx,
        job,
        "SECURITY_ALERT_MAILED",
        ("incident", Some(incident.id)),
        &subject,
        &key,
    )
    .await?
    {
        let body = format!(
            "Tenant {}: a {} incident was reported at {}.\n\n{}\n\n{}",
            incident.tenant_id,
            incident.severity,
            incident.created_at,
            incident.title,
            incident.description.as_deref().unwrap_or("")
        );
        graph
            .send_mail(&OutgoingMail::text(subject, body).to(to))
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Pulls the mailbox through Graph and upserts every sender as a CRM contact.
async fn sync_email(state: &AppState, job: &Job) -> Result<(), JobError> {
    let graph = state.external.graph()?;
    let messages = graph.list_messages().await?;
    let mut senders: BTreeMap<String, Option<String>> = BTreeMap::new();
    for message in &messages {
        if let Some(from) = &message.from {
            let address = from.email_address.address.trim().to_ascii_lowercase();
            if crate::validate::email("from", &address).is_ok() {
                senders
                    .entry(address)
                    .or_insert_with(|| from.email_address.name.clone());
            }
        }
    }
    let (mut created, mut updated, mut unchanged) = (0, 0, 0);
    let contacts: Vec<Value> = senders
        .iter()
        .map(|(email, name)| json!({ "email": email, "firstName": name, "source": "email" }))
        .collect();
    let behalf = OnBehalf {
        tenant: &job.tenant_id,
        origin_app: Some("inbox-ai"),
    };
    for chunk in contacts.chunks(500) {
        let body = json!({ "contacts": chunk });
        let (_, reply) = state
            .client
            .call(
                behalf,
                Call::post(ServiceName::CrmApi, "/contacts/sync", &body).idempotent(),
            )
            .await?;
        created += reply["created"].as_i64().unwrap_or(0);
        updated += reply["updated"].as_i64().unwrap_or(0);
        unchanged += reply["unchanged"].as_i64().unwrap_or(0);
    }
    if let Some(events) = &state.events {
        let data = json!({
            "messages": messages.len(),
            "senders": senders.len(),
            "contacts": { "created": created, "updated": updated, "unchanged": unchanged },
        });
        let event = CrossAppEvent::new(
            "EMAIL_SYNCED",
            ServiceName::Worker.as_str(),
            &job.tenant_id,
            data,
        )
        .with_stable_id(&job.id.to_string());
        events.publish(&event).await?;
    }
    Ok(())
}
