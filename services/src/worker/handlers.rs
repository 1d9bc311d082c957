//! What each job kind does. Every handler is idempotent: its effects are
//! keyed by something stable (the lead id, the job id), so a redelivered job
//! finds them done instead of doing them twice.

use serde_json::{json, Value};
use uuid::Uuid;

use crate::db::tenant_tx;
use crate::flow::processing::{process_lead, PROCESS_LEAD};
use crate::queue::Job;
use crate::state::AppState;

/// A handler's failure; every failure is retried up to the queue's limit.
#[derive(Debug, thiserror::Error)]
pub(super) enum JobError {
    #[error("invalid payload: {0}")]
    Payload(String),
    #[error("no handler for job kind {0:?}")]
    UnknownKind(String),
    #[error(transparent)]
    Lead(#[from] crate::flow::processing::ProcessLeadError),
    #[error("database error")]
    Database(#[from] sqlx::Error),
}

fn uuid_field(payload: &Value, field: &str) -> Result<Uuid, JobError> {
    payload[field]
        .as_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            JobError::Payload(format!("`{field}` must be a UUID, got {}", payload[field]))
        })
}

pub(super) async fn handle(state: &AppState, job: &Job) -> Result<(), JobError> {
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
        other => Err(JobError::UnknownKind(other.to_owned())),
    }
}

/// The job kind of spoken notifications on the voice-processing queue.
pub(crate) const VOICE_NOTIFICATION: &str = "voice-notification";

/// Records that a voice notification was handed to the voice agent, once per job.
async fn record_voice_notification(
    state: &AppState,
    job: &Job,
    text: &str,
) -> Result<(), JobError> {
    let mut tx = tenant_tx(&state.db, &job.tenant_id).await?;
    sqlx::query(
        "INSERT INTO flow.activities (id, tenant_id, type, entity_type, description, data, dedupe_key)
         VALUES ($1, $2, 'VOICE_NOTIFICATION', 'voice', $3, $4, $5)
         ON CONFLICT (tenant_id, dedupe_key) WHERE dedupe_key IS NOT NULL DO NOTHING",
    )
    .bind(Uuid::new_v4())
    .bind(&job.tenant_id)
    .bind(text)
    .bind(json!({ "jobId": job.id, "queue": job.queue.as_str() }))
    .bind(format!("VOICE_NOTIFICATION:{}", job.id))
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}
