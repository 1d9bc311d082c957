//! WebSocket connections of a run to the event gateway (`/events`).
//!
//! A reader task per connection keeps every frame it receives, so an
//! `expect` finds an event that arrived before the step started, and a
//! failure can list everything the connection did receive. `expect` takes
//! the first frame not taken by an earlier `expect` that matches; frames
//! are events (`{"type":"event","event":{...}}`, matched on the event's
//! `type` and `data`) or anything else the gateway sends (`error`,
//! `joined`, `pong`, matched on `type` and the whole frame). A close
//! becomes a `closed` frame with its code, so a scenario can expect
//! `ws: { expect: c, event: closed, within: 2s, data: { code: 4008 } }`.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::{SinkExt as _, StreamExt as _};
use serde_json::{json, Value};
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use super::{check, Clock};
use crate::platform::open_events_traced;
use crate::report::{Message, MessageKind};

type Sink = futures::stream::SplitSink<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    WsMessage,
>;

/// What the reader shares with the run.
#[derive(Debug, Default)]
struct Inbox {
    frames: Vec<Value>,
    taken: Vec<bool>,
}

/// One open connection.
#[derive(Debug)]
pub(crate) struct Conn {
    inbox: Arc<Mutex<Inbox>>,
    arrived: Arc<Notify>,
    sink: tokio::sync::Mutex<Sink>,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// Where a reader reports frames for the run's sequence diagram.
#[derive(Clone, Debug)]
pub(crate) struct Observer {
    pub(crate) name: String,
    pub(crate) messages: Arc<Mutex<Vec<Message>>>,
    /// Wakes `eventually` when anything arrives.
    pub(crate) changed: Arc<Notify>,
    pub(crate) clock: Clock,
}

/// Who opens a connection: an app of a tenant (id and key), and the
/// trace its handshake belongs to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Opener<'a> {
    pub(crate) tenant_id: &'a str,
    pub(crate) key: &'a str,
    pub(crate) app: &'a str,
    pub(crate) traceparent: Option<&'a str>,
}

impl Conn {
    /// Connects to `gateway` (its http base URL) as `who` and waits for the
    /// `welcome` frame.
    pub(crate) async fn open(
        tls: &crate::net::ClientTls,
        gateway: &str,
        who: Opener<'_>,
        within: Duration,
        observer: Observer,
    ) -> Result<Conn, String> {
        let (sink, source) = open_events_traced(
            tls,
            gateway,
            who.key,
            who.tenant_id,
            who.app,
            within,
            who.traceparent,
        )
        .await
        .map_err(|e| e.why)?;
        let inbox = Arc::new(Mutex::new(Inbox::default()));
        let arrived = Arc::new(Notify::new());
        let reader = tokio::spawn(read(
            source,
            Arc::clone(&inbox),
            Arc::clone(&arrived),
            observer,
        ));
        Ok(Conn {
            inbox,
            arrived,
            sink: tokio::sync::Mutex::new(sink),
            reader,
        })
    }

    /// Waits for a frame of `kind` whose data contains `data` and whose
    /// event (or frame) contains `envelope`; takes it.
    pub(crate) async fn expect(
        &self,
        kind: &str,
        data: Option<&Value>,
        envelope: Option<&Value>,
        within: Duration,
    ) -> Result<Value, String> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let notified = self.arrived.notified();
            if let Some(frame) = self.take_matching(kind, data, envelope) {
                return Ok(frame);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Err(self.no_match(kind, data, envelope, within));
            }
        }
    }

    /// Waits `period` and fails if a frame of `kind` (any event when `None`)
    /// that no `expect` took arrived, before or during the period.
    pub(crate) async fn expect_none(
        &self,
        kind: Option<&str>,
        period: Duration,
    ) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + period;
        loop {
            let notified = self.arrived.notified();
            if let Some(frame) = self.untaken(kind) {
                return Err(format!(
                    "expected no {} but received {}",
                    kind.map_or("event".to_owned(), |k| format!("`{k}` frame")),
                    check::short(&frame)
                ));
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Ok(());
            }
        }
    }

    /// Sends `{"type": kind, ...data}`.
    pub(crate) async fn send(&self, kind: &str, data: Option<&Value>) -> Result<(), String> {
        let mut frame = match data {
            Some(Value::Object(map)) => Value::Object(map.clone()),
            Some(other) => json!({ "data": other }),
            None => json!({}),
        };
        frame["type"] = Value::String(kind.to_owned());
        self.sink
            .lock()
            .await
            .send(WsMessage::Text(frame.to_string().into()))
            .await
            .map_err(|e| format!("sending on the WebSocket failed: {e}"))
    }

    /// Every frame received so far, as received (for checks over all of them).
    pub(crate) fn frames(&self) -> Vec<Value> {
        self.inbox
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .frames
            .clone()
    }

    /// Waits until `done` holds for the frames received so far, or the
    /// deadline passes; whether it held.
    pub(crate) async fn wait_for(
        &self,
        deadline: tokio::time::Instant,
        done: impl Fn(&[Value]) -> bool,
    ) -> bool {
        loop {
            let notified = self.arrived.notified();
            if done(&self.frames()) {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return done(&self.frames());
            }
        }
    }

    /// Every frame received so far, one line each (long ones cut at 600
    /// characters), marked when an `expect` took it.
    pub(crate) fn received(&self) -> Vec<String> {
        let inbox = self.inbox.lock().unwrap_or_else(PoisonError::into_inner);
        inbox
            .frames
            .iter()
            .zip(&inbox.taken)
            .map(|(f, taken)| {
                let text = check::cut(f.to_string(), 600);
                if *taken {
                    format!("(expected) {text}")
                } else {
                    text
                }
            })
            .collect()
    }

    fn take_matching(
        &self,
        kind: &str,
        data: Option<&Value>,
        envelope: Option<&Value>,
    ) -> Option<Value> {
        let mut inbox = self.inbox.lock().unwrap_or_else(PoisonError::into_inner);
        let Inbox { frames, taken } = &mut *inbox;
        let i = frames.iter().enumerate().position(|(i, f)| {
            !taken[i]
                && matches(f, kind, data)
                && envelope.is_none_or(|e| check::subset(e, outer(f)).is_none())
        })?;
        taken[i] = true;
        Some(frames[i].clone())
    }

    fn untaken(&self, kind: Option<&str>) -> Option<Value> {
        let inbox = self.inbox.lock().unwrap_or_else(PoisonError::into_inner);
        inbox
            .frames
            .iter()
            .zip(&inbox.taken)
            .find(|(f, taken)| {
                !**taken
                    && match kind {
                        Some(k) => frame_kind(f) == k,
                        None => f["type"] == "event",
                    }
            })
            .map(|(f, _)| f.clone())
    }

    fn no_match(
        &self,
        kind: &str,
        data: Option<&Value>,
        envelope: Option<&Value>,
        within: Duration,
    ) -> String {
        let inbox = self.inbox.lock().unwrap_or_else(PoisonError::into_inner);
        let same_kind: Vec<&Value> = inbox
            .frames
            .iter()
            .zip(&inbox.taken)
            .filter(|(f, taken)| !**taken && frame_kind(f) == kind)
            .map(|(f, _)| f)
            .collect();
        let mut message = format!("no `{kind}` frame");
        if let Some(d) = data {
            message.push_str(&format!(" with data containing {}", check::short(d)));
        }
        if let Some(e) = envelope {
            message.push_str(&format!(" and an envelope containing {}", check::short(e)));
        }
        message.push_str(&format!(" arrived within {within:?}"));
        if let Some(first) = same_kind.first() {
            let why = data
                .and_then(|d| check::subset(d, payload(first)))
                .or_else(|| envelope.and_then(|e| check::subset(e, outer(first))));
            if let Some(why) = why {
                message.push_str(&format!(
                    "; {} `{kind}` frame(s) came, the first differs at {why}",
                    same_kind.len()
                ));
            }
        } else if inbox.frames.is_empty() {
            message.push_str("; the connection received nothing");
        }
        message
    }
}

/// `event.type` for event frames, else the frame's `type`.
fn frame_kind(frame: &Value) -> &str {
    if frame["type"] == "event" {
        frame["event"]["type"].as_str().unwrap_or_default()
    } else {
        frame["type"].as_str().unwrap_or_default()
    }
}

/// What `envelope` is matched against: the event, or the whole frame.
fn outer(frame: &Value) -> &Value {
    if frame["type"] == "event" {
        &frame["event"]
    } else {
        frame
    }
}

/// What `data` is matched against: an event's data, or the whole frame.
fn payload(frame: &Value) -> &Value {
    if frame["type"] == "event" {
        &frame["event"]["data"]
    } else {
        frame
    }
}

fn matches(frame: &Value, kind: &str, data: Option<&Value>) -> bool {
    frame_kind(frame) == kind && data.is_none_or(|d| check::subset(d, payload(frame)).is_none())
}

async fn read(
    mut source: futures::stream::SplitStream<
        tokio_tungstenite::WebSocketStream<
            tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
        >,
    >,
    inbox: Arc<Mutex<Inbox>>,
    arrived: Arc<Notify>,
    observer: Observer,
) {
    while let Some(message) = source.next().await {
        let frame = match message {
            Ok(WsMessage::Text(text)) => serde_json::from_str(&text)
                .unwrap_or_else(|_| json!({ "type": "unreadable", "text": text.as_str() })),
            Ok(WsMessage::Close(frame)) => json!({
                "type": "closed",
                "code": frame.as_ref().map(|f| u16::from(f.code)),
                "reason": frame.as_ref().map(|f| f.reason.to_string()),
            }),
            Ok(_) => continue,
            Err(e) => json!({ "type": "closed", "error": e.to_string() }),
        };
        let closed = frame["type"] == "closed";
        observer
            .messages
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Message {
                at_ms: observer.clock.now_ms(),
                from: "gateway".into(),
                to: format!("ws:{}", observer.name),
                kind: MessageKind::Event,
                label: frame_kind(&frame).to_owned(),
                correlation_id: None,
            });
        {
            let mut inbox = inbox.lock().unwrap_or_else(PoisonError::into_inner);
            inbox.frames.push(frame);
            inbox.taken.push(false);
        }
        arrived.notify_waiters();
        observer.changed.notify_waiters();
        if closed {
            break;
        }
    }
}
