//! Outgoing Stripe webhooks: events, endpoints, signatures and delivery.
//!
//! Each event is POSTed as JSON to every endpoint that enabled its type, with
//! `Stripe-Signature: t=<unix time>,v1=<hex HMAC-SHA256(secret, "<t>.<payload>")>`
//! (the scheme `stripe.Webhook.construct_event` verifies; the key is the whole
//! `whsec_...` string). Failed deliveries are retried a few times with
//! exponential backoff; every attempt is recorded and can be awaited.

use std::sync::Mutex;
use std::time::Duration;

use hmac::{Hmac, Mac as _};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::Sha256;
use tokio::sync::Notify;

use crate::ids;

/// Attempts per delivery before giving up.
const ATTEMPTS: u32 = 3;
/// First retry delay; doubled for each further attempt.
const BACKOFF: Duration = Duration::from_millis(200);
/// API version stamped on events.
pub(crate) const API_VERSION: &str = "2024-06-20";

/// The `Stripe-Signature` header value for `payload` signed with `secret` at `timestamp`.
#[must_use]
pub fn stripe_signature(secret: &str, timestamp: i64, payload: &str) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC accepts any key length");
    mac.update(format!("{timestamp}.{payload}").as_bytes());
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

/// A configured webhook endpoint, as `POST /__admin/stripe/webhooks`
/// answers it (and `GET` lists them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookEndpoint {
    /// `we_...`.
    pub id: String,
    /// Where events are POSTed.
    pub url: String,
    /// The signing secret, `whsec_...`.
    pub secret: String,
    /// Event types sent (`*` for all).
    pub enabled_events: Vec<String>,
}

impl WebhookEndpoint {
    pub(crate) fn new(url: String, secret: Option<String>, enabled_events: Vec<String>) -> Self {
        Self {
            id: ids::alnum_id("we_", 24),
            url,
            secret: secret.unwrap_or_else(|| ids::alnum_id("whsec_", 32)),
            enabled_events: if enabled_events.is_empty() {
                vec!["*".into()]
            } else {
                enabled_events
            },
        }
    }

    fn wants(&self, event_type: &str) -> bool {
        self.enabled_events
            .iter()
            .any(|e| e == "*" || e == event_type)
    }

    pub(crate) fn to_api(&self) -> Value {
        json!({
            "id": self.id, "object": "webhook_endpoint", "api_version": API_VERSION, "application": null,
            "created": ids::unix_now(), "description": null, "enabled_events": self.enabled_events,
            "livemode": false, "metadata": {}, "status": "enabled", "url": self.url
        })
    }
}

/// One delivery of one event to one endpoint, as
/// `GET /__admin/stripe/deliveries` lists them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    /// `evt_...`.
    pub event_id: String,
    /// Event type, e.g. `customer.created`.
    pub event_type: String,
    /// Endpoint URL.
    pub url: String,
    /// Attempts made so far.
    pub attempts: u32,
    /// Status of the last attempt (`None`: no HTTP answer).
    pub status: Option<u16>,
    /// Whether an attempt got a 2xx.
    pub delivered: bool,
    /// Error of the last failed attempt.
    pub error: Option<String>,
    /// The exact payload sent.
    pub payload: String,
    /// The `Stripe-Signature` header of the last attempt.
    pub signature: String,
}

impl Delivery {
    /// Whether the mock is done with it: delivered, or given up after its
    /// last attempt (no further attempt will change it).
    #[must_use]
    pub fn finished(&self) -> bool {
        self.delivered || self.attempts >= ATTEMPTS
    }
}

/// The body of `POST /__admin/stripe/webhooks`: a webhook endpoint to add.
/// Shared with the harness (its `stripe` step sends it), so the two sides
/// cannot drift apart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct EndpointSpec {
    /// Where events are POSTed.
    pub url: String,
    /// The signing secret (`whsec_...`); generated when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// Event types sent; all (`*`) when empty.
    #[serde(default)]
    pub enabled_events: Vec<String>,
}

/// The body of `POST /__admin/stripe/events`: an event to create and send
/// to the endpoints that enabled its type, like `stripe trigger`. The
/// answer is the event (`evt_...`) as Stripe shapes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriggerSpec {
    /// The event type, e.g. `payment_intent.succeeded`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The resource after the change: the event's `data.object`.
    #[serde(default)]
    pub object: Value,
}

/// Endpoints, delivery log and the HTTP client that sends.
#[derive(Debug)]
pub(crate) struct Webhooks {
    pub(crate) endpoints: Mutex<Vec<WebhookEndpoint>>,
    deliveries: Mutex<Vec<Delivery>>,
    changed: Notify,
    client: reqwest::Client,
}

impl Webhooks {
    pub(crate) fn new(endpoints: Vec<WebhookEndpoint>) -> Self {
        Self {
            endpoints: Mutex::new(endpoints),
            deliveries: Mutex::default(),
            changed: Notify::new(),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .user_agent("Stripe/1.0 (+https://stripe.com/docs/webhooks)")
                .build()
                .unwrap_or_default(),
        }
    }

    pub(crate) fn deliveries(&self) -> Vec<Delivery> {
        self.deliveries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn clear(&self) {
        self.deliveries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
    }

    /// Waits until `done(deliveries)` holds or `timeout` passes; returns the last view.
    pub(crate) async fn wait(
        &self,
        timeout: Duration,
        done: impl Fn(&[Delivery]) -> bool,
    ) -> Vec<Delivery> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.changed.notified();
            let now = self.deliveries();
            if done(&now) || tokio::time::Instant::now() >= deadline {
                return now;
            }
            let _ = tokio::time::timeout_at(deadline, notified).await;
        }
    }

    /// Sends `event` to every endpoint that wants it, in the background.
    pub(crate) fn dispatch(self: &std::sync::Arc<Self>, event: &Value) {
        let event_type = event["type"].as_str().unwrap_or_default().to_owned();
        let event_id = event["id"].as_str().unwrap_or_default().to_owned();
        let payload = serde_json::to_string_pretty(event).unwrap_or_default();
        let targets: Vec<WebhookEndpoint> = self
            .endpoints
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .filter(|e| e.wants(&event_type))
            .cloned()
            .collect();
        for endpoint in targets {
            let index = {
                let mut deliveries = self
                    .deliveries
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                deliveries.push(Delivery {
                    event_id: event_id.clone(),
                    event_type: event_type.clone(),
                    url: endpoint.url.clone(),
                    attempts: 0,
                    status: None,
                    delivered: false,
                    error: None,
                    payload: payload.clone(),
                    signature: String::new(),
                });
                deliveries.len() - 1
            };
            let this = self.clone();
            let payload = payload.clone();
            tokio::spawn(async move { this.deliver(index, endpoint, payload).await });
        }
    }

    async fn deliver(&self, index: usize, endpoint: WebhookEndpoint, payload: String) {
        for attempt in 1..=ATTEMPTS {
            let signature = stripe_signature(&endpoint.secret, ids::unix_now(), &payload);
            let result = self
                .client
                .post(&endpoint.url)
                .header("content-type", "application/json; charset=utf-8")
                .header("stripe-signature", &signature)
                .body(payload.clone())
                .send()
                .await;
            let (status, error) = match result {
                Ok(r) => (Some(r.status().as_u16()), None),
                Err(e) => (None, Some(e.to_string())),
            };
            let delivered = status.is_some_and(|s| (200..300).contains(&s));
            if let Some(d) = self
                .deliveries
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .get_mut(index)
            {
                d.attempts = attempt;
                d.status = status;
                d.delivered = delivered;
                d.error = error.or_else(|| {
                    (!delivered).then(|| format!("endpoint answered {}", status.unwrap_or(0)))
                });
                d.signature = signature;
            }
            self.changed.notify_waiters();
            if delivered || attempt == ATTEMPTS {
                return;
            }
            tokio::time::sleep(BACKOFF * 2u32.pow(attempt - 1)).await;
        }
    }
}

/// A Stripe event object for `object` (the resource after the change).
pub(crate) fn event(
    event_type: &str,
    object: &Value,
    request_id: Option<&str>,
    idempotency_key: Option<&str>,
) -> Value {
    json!({
        "id": ids::alnum_id("evt_", 24), "object": "event", "api_version": API_VERSION,
        "created": ids::unix_now(), "data": { "object": object }, "livemode": false,
        "pending_webhooks": 1,
        "request": { "id": request_id, "idempotency_key": idempotency_key },
        "type": event_type
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_the_documented_scheme() {
        // HMAC-SHA256("whsec_test", "1700000000.{}") computed independently.
        let sig = stripe_signature("whsec_test", 1_700_000_000, "{}");
        let mut mac = Hmac::<Sha256>::new_from_slice(b"whsec_test").unwrap();
        mac.update(b"1700000000.{}");
        assert_eq!(
            sig,
            format!(
                "t=1700000000,v1={}",
                hex::encode(mac.finalize().into_bytes())
            )
        );
        assert_ne!(sig, stripe_signature("whsec_other", 1_700_000_000, "{}"));
    }
}
