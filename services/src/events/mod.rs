//! Cross-app events: the platform's event types, their routing table, and
//! the Redis stream they travel on.
//!
//! Services publish a [`CrossAppEvent`] with [`EventBus::publish`]: one
//! `XADD` to the stream [`EVENTS_STREAM`]. The stream entry id is the
//! event's *cursor*: totally ordered, so a WebSocket client that reconnects
//! with its last cursor can be replayed exactly what it missed.
//!
//! Publishing is at-least-once (a retried job publishes again); event ids
//! are deterministic where a retry could repeat them, and the gateway drops
//! an event id it has already fanned out, so clients see each event once.

mod routing;

use chrono::{DateTime, Utc};
use redis::aio::ConnectionManager;
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::Instrument as _;
use uuid::Uuid;

pub use routing::{routes_for, ALL_APPS, EVENT_TYPES};

/// The Redis stream all events go through.
pub const EVENTS_STREAM: &str = "tekup:events";
/// Roughly how many events the stream keeps for replay.
pub const STREAM_MAX_LEN: usize = 100_000;

/// How urgent an event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    Low,
    #[default]
    Normal,
    High,
    Critical,
}

/// An event as the platform defines it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CrossAppEvent {
    pub id: Uuid,
    #[serde(rename = "type")]
    pub kind: String,
    /// The service that published it.
    pub source: String,
    /// When present, only these apps receive it (intersected with the routing table).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Vec<String>>,
    pub tenant_id: String,
    pub timestamp: DateTime<Utc>,
    pub data: Value,
    #[serde(default)]
    pub priority: Priority,
    /// W3C trace context of the span that published it (set by
    /// [`EventBus::publish`]): the gateway's deliveries continue that trace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

impl CrossAppEvent {
    /// A new event with a random id.
    pub fn new(kind: &str, source: &str, tenant_id: &str, data: Value) -> Self {
        Self {
            id: Uuid::new_v4(),
            kind: kind.to_owned(),
            source: source.to_owned(),
            target: None,
            tenant_id: tenant_id.to_owned(),
            timestamp: Utc::now(),
            data,
            priority: Priority::Normal,
            traceparent: None,
        }
    }

    /// Gives the event an id derived from `key` (e.g. a job id), so that
    /// publishing it again after a retry is recognised as the same event.
    #[must_use]
    pub fn with_stable_id(mut self, key: &str) -> Self {
        self.id = Uuid::new_v5(
            &Uuid::NAMESPACE_OID,
            format!("{}:{key}", self.kind).as_bytes(),
        );
        self
    }

    #[must_use]
    pub fn with_priority(mut self, priority: Priority) -> Self {
        self.priority = priority;
        self
    }

    #[must_use]
    pub fn with_target(mut self, apps: Vec<String>) -> Self {
        self.target = Some(apps);
        self
    }

    /// The apps that receive this event: the routing table of its type,
    /// narrowed to `target` when given.
    pub fn recipients(&self) -> Vec<&'static str> {
        routes_for(&self.kind)
            .iter()
            .copied()
            .filter(|app| {
                self.target
                    .as_ref()
                    .is_none_or(|t| t.iter().any(|x| x == app))
            })
            .collect()
    }
}

/// Errors of publishing.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("unknown event type {0:?}")]
    UnknownType(String),
    #[error("failed to publish the event to Redis")]
    Redis(#[from] redis::RedisError),
    #[error("failed to encode the event")]
    Encode(#[from] serde_json::Error),
}

/// Publishes events to the Redis stream.
#[derive(Clone)]
pub struct EventBus {
    redis: ConnectionManager,
}

impl std::fmt::Debug for EventBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EventBus")
    }
}

impl EventBus {
    pub fn new(redis: ConnectionManager) -> Self {
        Self { redis }
    }

    /// Appends `event` to the stream, with the `traceparent` of its
    /// `publish` span (see [`crate::telemetry`]); returns its cursor.
    pub async fn publish(&self, event: &CrossAppEvent) -> Result<String, EventError> {
        if !EVENT_TYPES.contains(&event.kind.as_str()) {
            return Err(EventError::UnknownType(event.kind.clone()));
        }
        let span = crate::telemetry::publish(event);
        let result = self.append(event, &span).instrument(span.clone()).await;
        if let Err(e) = &result {
            crate::telemetry::fail(&span, crate::error::chain(e));
        }
        result
    }

    async fn append(
        &self,
        event: &CrossAppEvent,
        span: &tracing::Span,
    ) -> Result<String, EventError> {
        let mut event = event.clone();
        event.traceparent = crate::telemetry::traceparent_of(span)
            .map(|t| t.header())
            .or_else(|| crate::context::RequestContext::with_current(|c| c.outgoing_traceparent()));
        let json = serde_json::to_string(&event)?;
        // Repeating it is safe: the gateway drops an event id it has
        // already delivered.
        let add = || {
            let mut redis = self.redis.clone();
            let json = json.clone();
            async move {
                redis
                    .xadd_maxlen::<_, _, _, _, String>(
                        EVENTS_STREAM,
                        redis::streams::StreamMaxlen::Approx(STREAM_MAX_LEN),
                        "*",
                        &[("event", json.as_str())],
                    )
                    .await
            }
        };
        let cursor = crate::queue::once_more_if_dropped("publishing an event", add).await?;
        tracing::debug!(event = %event.id, kind = event.kind, cursor, "event published");
        Ok(cursor)
    }
}

/// A stream cursor (`<ms>-<seq>`) as a comparable pair.
pub fn parse_cursor(cursor: &str) -> Option<(u64, u64)> {
    let (ms, seq) = cursor.split_once('-')?;
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn recipients_follow_the_routing_table_and_the_target() {
        let event = CrossAppEvent::new("LEAD_CREATED", "flow-api", "acme", json!({}));
        assert_eq!(event.recipients(), ["crm-web", "flow-web"]);
        let targeted = event
            .clone()
            .with_target(vec!["flow-web".into(), "inbox-ai".into()]);
        assert_eq!(targeted.recipients(), ["flow-web"]);
        let incident =
            CrossAppEvent::new("SECURITY_INCIDENT", "secure-platform", "acme", json!({}));
        assert_eq!(
            incident.recipients(),
            ["secure-platform", "business-dashboard"]
        );
    }

    #[test]
    fn stable_ids_repeat_for_the_same_key_only() {
        let a =
            CrossAppEvent::new("LEAD_CREATED", "worker", "acme", json!({})).with_stable_id("job-1");
        let b =
            CrossAppEvent::new("LEAD_CREATED", "worker", "acme", json!({})).with_stable_id("job-1");
        let c =
            CrossAppEvent::new("LEAD_CREATED", "worker", "acme", json!({})).with_stable_id("job-2");
        assert_eq!(a.id, b.id);
        assert_ne!(a.id, c.id);
    }

    #[test]
    fn cursors_compare_numerically() {
        assert!(parse_cursor("10-0") > parse_cursor("9-5"));
        assert!(parse_cursor("10-10") > parse_cursor("10-9"));
        assert_eq!(parse_cursor("x"), None);
    }

    #[test]
    fn the_wire_format_is_camel_case() {
        let event = CrossAppEvent::new("CONTACT_UPDATED", "crm-api", "acme", json!({ "id": 1 }));
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["type"], "CONTACT_UPDATED");
        assert_eq!(json["tenantId"], "acme");
        assert_eq!(json["priority"], "normal");
        assert!(json.get("target").is_none());
    }
}
