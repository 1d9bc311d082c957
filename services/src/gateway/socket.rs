//! One WebSocket connection: authentication, resume, fan-out, ping, close.
//!
//! Protocol (JSON text frames):
//! - server → client: `welcome` (connection id, tenant, app, rooms), then
//!   `event` frames `{"type":"event","cursor":…,"event":{…}}`; `error`
//!   frames answer refused actions; `pong` answers `{"action":"ping"}`.
//! - client → server: `{"action":"join","room":"tenant:<id>"|"app:<id>"}` —
//!   a connection is in its own tenant's and app's rooms from the start, and
//!   joining any other room is refused; `{"action":"ping"}`.
//!
//! Close codes: 1000 normal, 1001 gateway shutting down, 1009 a message
//! over the gateway's bound (refused from its frame header, before its
//! payload is read), 4008 slow consumer (its buffer filled up), 4009 no pong
//! within two ping intervals, 1011 internal error (the replay could not be
//! read).
//!
//! What a client sent is never logged or echoed whole: a room name is cut
//! to [`SHOWN_CHARS`] characters and its length said.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::json;
use tokio::time::Instant;

use super::Gateway;

pub const CLOSE_NORMAL: u16 = 1000;
pub const CLOSE_GOING_AWAY: u16 = 1001;
pub const CLOSE_TOO_BIG: u16 = 1009;
pub const CLOSE_INTERNAL: u16 = 1011;

/// How much of a client's text a log line or an error frame shows.
const SHOWN_CHARS: usize = 64;
pub const CLOSE_SLOW_CONSUMER: u16 = 4008;
pub const CLOSE_PING_TIMEOUT: u16 = 4009;

/// Who is connected.
#[derive(Debug, Clone)]
pub(super) struct Peer {
    pub tenant: String,
    pub app: String,
    pub resume_from: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "action", rename_all = "lowercase")]
enum ClientMessage {
    Join { room: String },
    Ping,
}

fn close(code: u16, reason: &str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: Utf8Bytes::from(reason.to_owned()),
    }))
}

pub(super) async fn run(gateway: Arc<Gateway>, socket: WebSocket, peer: Peer) {
    let mut subscription = gateway.hub.join(&peer.tenant, &peer.app);
    let (mut sink, mut stream) = socket.split();
    let rooms = [
        format!("tenant:{}", peer.tenant),
        format!("app:{}", peer.app),
    ];
    let welcome = json!({
        "type": "welcome",
        "connectionId": subscription.id,
        "tenantId": peer.tenant,
        "app": peer.app,
        "rooms": rooms,
    });
    if sink
        .send(Message::Text(welcome.to_string().into()))
        .await
        .is_err()
    {
        return;
    }

    // Joined before the replay is read, so nothing published in between is
    // missed; live frames at or below the replay's last cursor are skipped.
    let mut high_water = None;
    // Deliberate defect `gateway-resume-from-now`: no replay.
    let resume_from = peer
        .resume_from
        .as_ref()
        .filter(|_| !crate::defects::active("gateway-resume-from-now"));
    if let Some(cursor) = resume_from {
        match gateway.replay(cursor, &peer.tenant, &peer.app).await {
            Ok(frames) => {
                for (frame, row) in frames {
                    high_water = Some(frame.cursor);
                    if sink
                        .send(Message::Text(frame.text.clone().into()))
                        .await
                        .is_err()
                    {
                        return;
                    }
                    gateway.hub.audit(row);
                }
            }
            Err(e) => {
                tracing::error!(error = crate::error::chain(&e), "replay failed");
                let _ = sink
                    .send(close(CLOSE_INTERNAL, "failed to replay missed events"))
                    .await;
                return;
            }
        }
    }

    let ping_every = gateway.ping_interval;
    let mut ping = tokio::time::interval_at(Instant::now() + ping_every, ping_every);
    let mut last_pong = Instant::now();
    let outcome: Option<(u16, &str)> = loop {
        tokio::select! {
            frame = subscription.frames.recv() => {
                let Some(frame) = frame else { break None };
                if high_water.is_some_and(|h| frame.cursor <= h) {
                    continue;
                }
                let send = sink.send(Message::Text(frame.text.clone().into()));
                tokio::select! {
                    sent = send => if sent.is_err() { break None },
                    () = subscription.slow.cancelled() => break Some((CLOSE_SLOW_CONSUMER, "slow consumer: buffer full")),
                }
            }
            message = stream.next() => match message {
                Some(Ok(Message::Text(text))) => {
                    let reply = answer(&text, &peer);
                    if sink.send(Message::Text(reply.into())).await.is_err() {
                        break None;
                    }
                }
                Some(Ok(Message::Pong(_))) => last_pong = Instant::now(),
                Some(Err(e)) if too_big(&e) => break Some((CLOSE_TOO_BIG, "message too big")),
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break None,
                Some(Ok(_)) => {}
            },
            _ = ping.tick() => {
                if last_pong.elapsed() > ping_every * 2 {
                    break Some((CLOSE_PING_TIMEOUT, "no pong"));
                }
                if sink.send(Message::Ping(Default::default())).await.is_err() {
                    break None;
                }
            }
            () = subscription.slow.cancelled() => break Some((CLOSE_SLOW_CONSUMER, "slow consumer: buffer full")),
            () = gateway.shutdown.cancelled() => break Some((CLOSE_GOING_AWAY, "gateway shutting down")),
        }
    };
    // Out of the room first: nothing more is buffered for this connection.
    drop(subscription);
    let (code, reason) = outcome.unwrap_or((CLOSE_NORMAL, ""));
    if code != CLOSE_NORMAL {
        tracing::info!(
            tenant = peer.tenant,
            app = peer.app,
            code,
            reason,
            "closing connection"
        );
    }
    // A slow peer takes the close frame only after what is already in the
    // socket; give it a few seconds, then drop the connection regardless.
    let _ = tokio::time::timeout(Duration::from_secs(5), sink.send(close(code, reason))).await;
}

/// Whether a read failed because the message was over the bound.
fn too_big(error: &axum::Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = cause {
        if let Some(tungstenite::Error::Capacity(_)) = e.downcast_ref::<tungstenite::Error>() {
            return true;
        }
        cause = e.source();
    }
    false
}

/// At most [`SHOWN_CHARS`] characters of `text`, saying how long it was.
fn shown(text: &str) -> String {
    match text.char_indices().nth(SHOWN_CHARS) {
        None => text.to_owned(),
        Some((end, _)) => format!("{}… ({} bytes)", &text[..end], text.len()),
    }
}

/// `text` as a log line may hold it ([`shown`]).
fn logged(text: &str) -> String {
    if crate::defects::active("log-unbounded") {
        // Deliberate defect: whatever the client sent, logged whole.
        return text.to_owned();
    }
    shown(text)
}

/// Answers a client message.
fn answer(text: &str, peer: &Peer) -> String {
    match serde_json::from_str::<ClientMessage>(text) {
        Ok(ClientMessage::Ping) => json!({ "type": "pong" }).to_string(),
        Ok(ClientMessage::Join { room }) => {
            let own = [format!("tenant:{}", peer.tenant), format!("app:{}", peer.app)];
            if own.contains(&room) || crate::defects::active("gateway-any-room") {
                json!({ "type": "joined", "room": room }).to_string()
            } else {
                tracing::warn!(
                    tenant = peer.tenant,
                    app = peer.app,
                    room = logged(&room),
                    "refused to join a foreign room"
                );
                json!({
                    "type": "error",
                    "code": "forbidden",
                    "message": format!("cannot join room {:?}: a connection only belongs to its own tenant's and app's rooms", shown(&room)),
                })
                .to_string()
            }
        }
        Err(e) => json!({ "type": "error", "code": "bad_request", "message": format!("unreadable message: {}", shown(&e.to_string())) }).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_own_rooms_can_be_joined() {
        let peer = Peer {
            tenant: "acme".into(),
            app: "crm-web".into(),
            resume_from: None,
        };
        assert!(answer(r#"{"action":"join","room":"tenant:acme"}"#, &peer).contains("joined"));
        assert!(answer(r#"{"action":"join","room":"app:crm-web"}"#, &peer).contains("joined"));
        assert!(answer(r#"{"action":"join","room":"tenant:globex"}"#, &peer).contains("forbidden"));
        assert!(answer(r#"{"action":"join","room":"app:flow-web"}"#, &peer).contains("forbidden"));
        assert!(answer(r#"{"action":"ping"}"#, &peer).contains("pong"));
        assert!(answer("nonsense", &peer).contains("bad_request"));
    }

    #[test]
    fn a_long_room_is_not_echoed_whole() {
        let peer = Peer {
            tenant: "acme".into(),
            app: "crm-web".into(),
            resume_from: None,
        };
        let room = "é".repeat(100_000);
        let join = json!({ "action": "join", "room": room }).to_string();
        let reply = answer(&join, &peer);
        assert!(reply.contains("forbidden"), "{reply}");
        assert!(reply.len() < 400, "{} bytes", reply.len());
        assert!(reply.contains("(200000 bytes)"), "{reply}");
        let unknown = json!({ "action": "a".repeat(100_000) }).to_string();
        let reply = answer(&unknown, &peer);
        assert!(
            reply.contains("bad_request") && reply.len() < 400,
            "{reply}"
        );
        assert_eq!(shown("tenant:acme"), "tenant:acme");
    }
}
