//! Queue names, their priorities and retry limits, jobs, and backoff.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QueuePriority {
    High,
    Medium,
    Low,
}

/// The platform's six queues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum QueueName {
    LeadProcessing,
    EmailSync,
    VoiceProcessing,
    BackupOperations,
    ComplianceChecks,
    AnalyticsProcessing,
}

impl QueueName {
    pub const ALL: [QueueName; 6] = [
        Self::LeadProcessing,
        Self::EmailSync,
        Self::VoiceProcessing,
        Self::BackupOperations,
        Self::ComplianceChecks,
        Self::AnalyticsProcessing,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::LeadProcessing => "lead-processing",
            Self::EmailSync => "email-sync",
            Self::VoiceProcessing => "voice-processing",
            Self::BackupOperations => "backup-operations",
            Self::ComplianceChecks => "compliance-checks",
            Self::AnalyticsProcessing => "analytics-processing",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|q| q.as_str() == name)
    }

    pub fn priority(self) -> QueuePriority {
        match self {
            Self::LeadProcessing | Self::VoiceProcessing => QueuePriority::High,
            Self::EmailSync | Self::ComplianceChecks => QueuePriority::Medium,
            Self::BackupOperations | Self::AnalyticsProcessing => QueuePriority::Low,
        }
    }

    /// Retries after the first attempt before a job may be dead-lettered:
    /// the least it gets, however soon its retry span is over (see
    /// `crate::worker`'s retry policy).
    pub fn max_retries(self) -> u32 {
        match self {
            Self::LeadProcessing | Self::BackupOperations | Self::ComplianceChecks => 3,
            Self::EmailSync => 5,
            Self::VoiceProcessing => 2,
            Self::AnalyticsProcessing => 1,
        }
    }
}

/// A unit of work. `id` is the idempotency key: handlers make a job's
/// effects happen once however often it is delivered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    pub id: Uuid,
    pub queue: QueueName,
    /// What to do, e.g. `process-lead`.
    pub kind: String,
    pub tenant_id: String,
    pub payload: Value,
    /// 0 on the first attempt.
    #[serde(default)]
    pub attempt: u32,
    pub enqueued_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When its first attempt failed (set by [`Job::retried`] and kept
    /// from then on): the retry span is measured from here, not by adding
    /// up the delays, so a job rides out its queue's span however the
    /// jitter fell. Absent until it fails, and in jobs written before it
    /// existed (those count from their next failure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_failed_at: Option<DateTime<Utc>>,
    /// The correlation id of the request that caused the job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    /// W3C trace context of the span that enqueued it (set by
    /// [`Queues::enqueue`](super::Queues::enqueue)): each attempt's span
    /// continues that trace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

impl Job {
    pub fn new(queue: QueueName, kind: &str, tenant_id: &str, payload: Value) -> Self {
        Self {
            id: Uuid::new_v4(),
            queue,
            kind: kind.to_owned(),
            tenant_id: tenant_id.to_owned(),
            payload,
            attempt: 0,
            enqueued_at: Utc::now(),
            last_error: None,
            first_failed_at: None,
            correlation_id: crate::context::RequestContext::with_current(|c| {
                c.correlation_id.clone()
            }),
            traceparent: None,
        }
    }

    /// The job as it waits for its next attempt after one failed at `now`
    /// with `error`: one attempt on, its last error, and the time of its
    /// first failure (this one, unless an earlier one is recorded).
    #[must_use]
    pub fn retried(&self, error: &str, now: DateTime<Utc>) -> Job {
        Job {
            attempt: self.attempt + 1,
            last_error: Some(error.to_owned()),
            first_failed_at: Some(self.first_failed_at.unwrap_or(now)),
            ..self.clone()
        }
    }

    /// How long it has been failing at `now`: since its first failure, or
    /// nothing when this is its first.
    pub fn failing_for(&self, now: DateTime<Utc>) -> Duration {
        self.first_failed_at
            .and_then(|first| (now - first).to_std().ok())
            .unwrap_or_default()
    }
}

/// Delay before retry number `attempt` (1-based): exponential from `base`,
/// capped at `cap`, with "equal jitter" (half fixed, half random) so that
/// jobs failing together do not retry together.
pub fn backoff(attempt: u32, base: Duration, cap: Duration, rng: &mut impl Rng) -> Duration {
    let exp = base
        .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)))
        .min(cap);
    let half = exp / 2;
    half + half.mul_f64(rng.gen::<f64>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn the_six_queues_have_the_platforms_priorities_and_retries() {
        let table: Vec<_> = QueueName::ALL
            .iter()
            .map(|q| (q.as_str(), q.priority(), q.max_retries()))
            .collect();
        assert_eq!(
            table,
            [
                ("lead-processing", QueuePriority::High, 3),
                ("email-sync", QueuePriority::Medium, 5),
                ("voice-processing", QueuePriority::High, 2),
                ("backup-operations", QueuePriority::Low, 3),
                ("compliance-checks", QueuePriority::Medium, 3),
                ("analytics-processing", QueuePriority::Low, 1),
            ]
        );
    }

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + seconds, 0).expect("a time")
    }

    #[test]
    fn the_first_failure_is_recorded_once_and_the_attempts_counted() {
        let job = Job::new(QueueName::LeadProcessing, "process-lead", "t", Value::Null);
        assert_eq!(job.failing_for(at(0)), Duration::ZERO);
        let once = job.retried("refused", at(0));
        let twice = once.retried("timed out", at(7));
        assert_eq!((once.attempt, once.first_failed_at), (1, Some(at(0))));
        assert_eq!(
            (
                twice.attempt,
                twice.first_failed_at,
                twice.last_error.as_deref()
            ),
            (2, Some(at(0)), Some("timed out"))
        );
        assert_eq!(twice.failing_for(at(12)), Duration::from_secs(12));
        // A clock that went back says nothing rather than a negative span.
        assert_eq!(twice.failing_for(at(-3)), Duration::ZERO);
        // On the wire: `firstFailedAt`, absent until the first failure.
        let wire = serde_json::to_value(&twice).unwrap();
        assert_eq!(wire["firstFailedAt"], "2023-11-14T22:13:20Z");
        assert!(serde_json::to_value(&job)
            .unwrap()
            .get("firstFailedAt")
            .is_none());
        let back: Job = serde_json::from_value(wire).unwrap();
        assert_eq!(back, twice);
    }

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let base = Duration::from_millis(100);
        let cap = Duration::from_secs(5);
        for attempt in 1..=10 {
            let exp = (base * 2u32.pow(attempt - 1)).min(cap);
            let samples: Vec<Duration> = (0..50)
                .map(|_| backoff(attempt, base, cap, &mut rng))
                .collect();
            assert!(
                samples.iter().all(|d| *d >= exp / 2 && *d <= exp),
                "attempt {attempt}: {samples:?}"
            );
            assert!(
                samples.iter().any(|d| *d != samples[0]),
                "no jitter at attempt {attempt}"
            );
        }
    }
}
