//! A WebSocket client of the event gateway that keeps every event it is
//! sent, for suites that count deliveries.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use serde_json::Value;
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use super::{Platform, PlatformError, TenantKey};

/// The gateway's component name.
pub const GATEWAY: &str = "gateway";

/// A connection to `/events` as one app of one tenant. Events are kept in
/// arrival order; the reader stops when the connection closes (dropping
/// the subscriber closes it).
#[derive(Debug)]
pub struct Subscriber {
    inbox: Arc<Inbox>,
    reader: tokio::task::JoinHandle<()>,
}

#[derive(Debug, Default)]
struct Inbox {
    events: Mutex<Vec<Value>>,
    closed: Mutex<Option<String>>,
    arrived: Notify,
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// The two halves of a welcomed connection to the gateway's `/events`.
pub type EventStream = (
    futures::stream::SplitSink<WsStream, Message>,
    futures::stream::SplitStream<WsStream>,
);
use crate::net::{ClientTls, WsStream};

/// A failed handshake with the gateway: the URL and why.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{url}: {why}")]
pub struct HandshakeError {
    pub url: String,
    pub why: String,
}

/// Connects to `<gateway>/events` (its http base URL) as `app` of a tenant
/// (key and id), and waits for the `welcome` frame; each wait is bounded by
/// `within`. The one handshake of every gateway client of the harness
/// (scenario runs, load, suites); `tls` for a `https://` gateway (`wss://`).
pub async fn open_events(
    tls: &ClientTls,
    gateway: &str,
    key: &str,
    tenant_id: &str,
    app: &str,
    within: Duration,
) -> Result<EventStream, HandshakeError> {
    open_events_traced(tls, gateway, key, tenant_id, app, within, None).await
}

/// [`open_events`] with a `traceparent` on the handshake: the gateway's
/// span of it joins that trace (a scenario's connections are its run's).
pub async fn open_events_traced(
    tls: &ClientTls,
    gateway: &str,
    key: &str,
    tenant_id: &str,
    app: &str,
    within: Duration,
    traceparent: Option<&str>,
) -> Result<EventStream, HandshakeError> {
    let url = format!(
        "{}/events",
        gateway
            .trim_end_matches('/')
            .replacen("http://", "ws://", 1)
            .replacen("https://", "wss://", 1)
    );
    let failed = |why: String| HandshakeError {
        url: url.clone(),
        why,
    };
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|e| failed(format!("not a WebSocket URL: {e}")))?;
    for (name, value) in [
        ("x-tenant-key", key),
        ("x-tenant-id", tenant_id),
        ("x-source-app", app),
    ]
    .into_iter()
    .chain(traceparent.map(|tp| ("traceparent", tp)))
    {
        let value = value
            .parse()
            .map_err(|_| failed(format!("`{value}` is not a valid {name} header")))?;
        request.headers_mut().insert(name, value);
    }
    let (stream, _) = tokio::time::timeout(within, tls.connect_ws(request))
        .await
        .map_err(|_| {
            failed(format!(
                "the gateway did not accept the connection within {within:?}"
            ))
        })?
        .map_err(|e| {
            failed(match crate::net::explain(&e) {
                Some(tls) => tls,
                None => format!("the gateway refused the connection: {e}"),
            })
        })?;
    let (sink, mut source) = stream.split();
    match tokio::time::timeout(within, source.next()).await {
        Ok(Some(Ok(Message::Text(text)))) if text.contains("\"welcome\"") => Ok((sink, source)),
        Ok(Some(Ok(Message::Close(frame)))) => Err(failed(format!(
            "the gateway closed the connection at once: {}",
            frame.map_or("no reason".into(), |f| format!("{} {}", f.code, f.reason))
        ))),
        Ok(other) => Err(failed(format!("expected a welcome frame, got {other:?}"))),
        Err(_) => Err(failed(format!("no welcome frame within {within:?}"))),
    }
}

impl Platform {
    /// Connects to the gateway as `app` of `tenant` and waits for its
    /// welcome frame (up to `within`).
    pub async fn subscribe(
        &self,
        tenant: &TenantKey,
        app: &str,
        within: Duration,
    ) -> Result<Subscriber, PlatformError> {
        let (sink, mut source) = open_events(
            self.tls(),
            self.url(GATEWAY)?,
            &tenant.key,
            &tenant.id,
            app,
            within,
        )
        .await
        .map_err(|e| PlatformError::Transport {
            method: reqwest::Method::GET,
            url: e.url,
            cause: e.why,
        })?;
        let inbox = Arc::new(Inbox::default());
        let keep = Arc::clone(&inbox);
        let reader = tokio::spawn(async move {
            // The sink is kept alive with the reader: dropping it would
            // close our half of the connection.
            let _sink = sink;
            let reason = loop {
                match source.next().await {
                    Some(Ok(Message::Text(text))) => {
                        let frame: Value = serde_json::from_str(&text).unwrap_or_default();
                        if frame["type"] == "event" {
                            lock(&keep.events).push(frame["event"].clone());
                            keep.arrived.notify_waiters();
                        }
                    }
                    Some(Ok(Message::Close(frame))) => {
                        break frame.map_or("closed".into(), |f| format!("closed {}", f.code))
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => break format!("connection failed: {e}"),
                    None => break "connection ended".into(),
                }
            };
            *lock(&keep.closed) = Some(reason);
            keep.arrived.notify_waiters();
        });
        Ok(Subscriber { inbox, reader })
    }
}

impl Subscriber {
    /// The events received so far (the `event` of each event frame).
    pub fn events(&self) -> Vec<Value> {
        lock(&self.inbox.events).clone()
    }

    /// Why the connection ended, if it did.
    pub fn closed(&self) -> Option<String> {
        lock(&self.inbox.closed).clone()
    }

    /// Waits until `done` holds for the events received, the connection
    /// ends, or `within` passes; returns whether `done` held. Woken by each
    /// arriving event, not by polling.
    pub async fn wait_for(&self, within: Duration, done: impl Fn(&[Value]) -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let arrived = self.inbox.arrived.notified();
            if done(&lock(&self.inbox.events)) {
                return true;
            }
            if self.closed().is_some() {
                return false;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                return done(&lock(&self.inbox.events));
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
