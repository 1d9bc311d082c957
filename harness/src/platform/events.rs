//! A WebSocket client of the event gateway that keeps every event it is
//! sent, for suites that count deliveries.
//!
//! Where the contract promises resumption (`gateway.resume`), a
//! [`Subscriber`] whose connection ends (the gateway restarted, a proxy cut
//! it) reconnects on its own with the cursor of the last event frame it
//! got, as a browser's client would; what it is then sent is held to the
//! same counts (a missed event stays missing, a replayed one is counted
//! twice). It keeps trying for [`RESUME_WITHIN`], and only then reports the
//! connection closed.

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
/// arrival order; the reader stops when the connection closes for good
/// (see the module's docs on resuming; dropping the subscriber closes it).
#[derive(Debug)]
pub struct Subscriber {
    inbox: Arc<Inbox>,
    reader: tokio::task::JoinHandle<()>,
}

#[derive(Debug, Default)]
struct Inbox {
    events: Mutex<Vec<Value>>,
    /// The cursor of the last event frame, to resume after.
    cursor: Mutex<Option<String>>,
    /// Why each resumed connection had ended.
    resumed: Mutex<Vec<String>>,
    closed: Mutex<Option<String>>,
    arrived: Notify,
}

/// How long a subscriber keeps trying to resume a lost connection.
const RESUME_WITHIN: Duration = Duration::from_secs(60);

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
    let extra = traceparent.map(|tp| ("traceparent", tp));
    handshake(tls, gateway, [key, tenant_id, app], within, extra).await
}

/// The handshake of [`open_events`], with one more header (a
/// `traceparent`, a resume cursor).
async fn handshake(
    tls: &ClientTls,
    gateway: &str,
    [key, tenant_id, app]: [&str; 3],
    within: Duration,
    extra: Option<(&str, &str)>,
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
    .chain(extra)
    {
        let value = value
            .parse()
            .map_err(|_| failed(format!("`{value}` is not a valid {name} header")))?;
        let name = tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| failed(format!("`{name}` is not a valid header name")))?;
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
    /// welcome frame (up to `within`); resumes on its own where the
    /// contract promises it (see the module's docs).
    pub async fn subscribe(
        &self,
        tenant: &TenantKey,
        app: &str,
        within: Duration,
    ) -> Result<Subscriber, PlatformError> {
        let gateway = self.url(GATEWAY)?.to_owned();
        let tls = self.tls().clone();
        let who = [tenant.key.clone(), tenant.id.clone(), app.to_owned()];
        let open = move |cursor: Option<(String, String)>| {
            let (tls, gateway, who) = (tls.clone(), gateway.clone(), who.clone());
            async move {
                let extra = cursor.as_ref().map(|(h, c)| (h.as_str(), c.as_str()));
                let [key, id, app] = &who;
                handshake(&tls, &gateway, [key, id, app], within, extra).await
            }
        };
        let (sink, source) = open(None).await.map_err(|e| PlatformError::Transport {
            method: reqwest::Method::GET,
            url: e.url,
            cause: e.why,
            not_sent: false,
        })?;
        let resume = crate::contract::active().gateway.resume.clone();
        let inbox = Arc::new(Inbox::default());
        let keep = Arc::clone(&inbox);
        let reader = tokio::spawn(async move {
            let mut connection = (sink, source);
            loop {
                let reason = read(connection, &keep, resume.as_ref()).await;
                let Some(resume) = &resume else {
                    return keep.close(reason);
                };
                match reconnect(&open, &keep, resume).await {
                    Ok(again) => {
                        lock(&keep.resumed).push(reason);
                        connection = again;
                    }
                    Err(why) => return keep.close(format!("{reason}; resuming failed: {why}")),
                }
            }
        });
        Ok(Subscriber { inbox, reader })
    }
}

/// Reads a connection until it ends, keeping its events (and their
/// cursors); says how it ended.
async fn read(
    (sink, mut source): EventStream,
    inbox: &Inbox,
    resume: Option<&crate::contract::Resume>,
) -> String {
    // The sink is kept alive with the reader: dropping it would close our
    // half of the connection.
    let _sink = sink;
    loop {
        match source.next().await {
            Some(Ok(Message::Text(text))) => {
                let frame: Value = serde_json::from_str(&text).unwrap_or_default();
                if frame["type"] == "event" {
                    if let Some(cursor) = resume.and_then(|r| frame[r.cursor.as_str()].as_str()) {
                        *lock(&inbox.cursor) = Some(cursor.to_owned());
                    }
                    lock(&inbox.events).push(frame["event"].clone());
                    inbox.arrived.notify_waiters();
                }
            }
            Some(Ok(Message::Close(frame))) => {
                break frame.map_or("closed".into(), |f| format!("closed {}", f.code))
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => break format!("connection failed: {e}"),
            None => break "connection ended".into(),
        }
    }
}

/// Opens the connection again with the last cursor, retrying with a
/// growing pause (the gateway is coming back) for up to [`RESUME_WITHIN`].
async fn reconnect<F, Fut>(
    open: &F,
    inbox: &Inbox,
    resume: &crate::contract::Resume,
) -> Result<EventStream, String>
where
    F: Fn(Option<(String, String)>) -> Fut,
    Fut: std::future::Future<Output = Result<EventStream, HandshakeError>>,
{
    let deadline = tokio::time::Instant::now() + RESUME_WITHIN;
    let mut pause = Duration::from_millis(20);
    loop {
        let cursor = lock(&inbox.cursor)
            .clone()
            .map(|c| (resume.header.clone(), c));
        match open(cursor).await {
            Ok(connection) => return Ok(connection),
            Err(e) if tokio::time::Instant::now() + pause < deadline => {
                tracing::debug!(error = %e, "the gateway is not back yet");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(500));
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}

impl Inbox {
    fn close(&self, reason: String) {
        *lock(&self.closed) = Some(reason);
        self.arrived.notify_waiters();
    }
}

impl Subscriber {
    /// The events received so far (the `event` of each event frame).
    pub fn events(&self) -> Vec<Value> {
        lock(&self.inbox.events).clone()
    }

    /// How often the connection was lost and resumed, and why each ended.
    pub fn resumed(&self) -> Vec<String> {
        lock(&self.inbox.resumed).clone()
    }

    /// Why the connection ended for good, if it did.
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
