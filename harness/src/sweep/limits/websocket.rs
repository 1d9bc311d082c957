//! WebSocket messages: over `max-ws-frame`, refused with close code 1009.
//!
//! Connected as an app of a fresh tenant, the sweep sends the message, then
//! a WebSocket ping. A gateway that refused the message closes (1009 is the
//! code RFC 6455 gives "message too big"); one that read it answers the
//! message, or at least the ping. Either way the sweep waits on what comes
//! back, with a deadline.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use super::super::{Class, ClassReport, Target};
use super::{head, secs, MARGIN};
use crate::contract::Limits;
use crate::platform::{open_events, EventStream, GATEWAY};

/// RFC 6455 §7.4.1: the message is too big to process.
pub(super) const CLOSE_TOO_BIG: u16 = 1009;

/// The room name the brief of every gateway must survive.
const HUGE_ROOM: usize = 1 << 20;

/// How long the gateway has to answer or close (a local round trip takes
/// milliseconds; this is the deadline of a wait on a condition).
const WITHIN: Duration = Duration::from_secs(10);

/// What the gateway did with a message.
#[derive(Debug, PartialEq)]
enum Outcome {
    /// A close frame with this code.
    Closed(u16),
    /// The connection ended without a close frame (a reset): refused too.
    Dropped,
    /// A frame came back first: the message was read.
    Answered(String),
    /// Nothing within the deadline.
    Silent,
}

/// Runs the checks; also returns the id of the tenant that sent a long
/// room name under the bound, for the log check to wait on.
pub(super) async fn check(
    target: &Target,
    limits: &Limits,
    marker: &str,
) -> (ClassReport, Option<String>) {
    let mut report = ClassReport::new(Class::Limits);
    let Ok(url) = target.platform.url(GATEWAY) else {
        report.notes.push(format!(
            "no `{GATEWAY}` URL: WebSocket messages not checked"
        ));
        return (report, None);
    };
    let tenant = match target.platform.create_tenant("sweep-limits").await {
        Ok(tenant) => tenant,
        Err(e) => {
            report.notes.push(format!(
                "WebSocket messages not checked: no tenant to connect as: {e}"
            ));
            return (report, None);
        }
    };
    let Some(app) = target
        .contract
        .apps
        .iter()
        .find(|a| !target.contract.events_for_app(a).is_empty())
    else {
        report
            .notes
            .push("WebSocket messages not checked: the contract routes no event to any app".into());
        return (report, None);
    };
    let operation = format!("{GATEWAY} GET /events");
    report.operations.insert(operation.clone());
    let connect = || {
        open_events(
            target.platform.tls(),
            url,
            &tenant.key,
            &tenant.id,
            app,
            WITHIN + MARGIN,
        )
    };
    let bound = usize::try_from(limits.max_ws_frame).unwrap_or(usize::MAX);
    let as_who = format!("connected as {app} of a fresh tenant ({})", tenant.id);

    // A message one byte over the bound.
    let over = format!("{{\"action\":\"ping\",\"pad\":\"{marker}\"}}");
    let over = format!(
        "{over}{}",
        " ".repeat((bound + 1).saturating_sub(over.len()))
    );
    let huge = json!({ "action": "join", "room": format!("{marker}{}", "r".repeat(HUGE_ROOM)) })
        .to_string();
    for (what, message) in [
        (format!("a text message of {} bytes", over.len()), over),
        (
            format!("a room join with a {} KiB room name", HUGE_ROOM >> 10),
            huge,
        ),
    ] {
        report.cases += 1;
        let outcome = match connect().await {
            Ok(stream) => exchange(stream, message.clone()).await,
            Err(e) => {
                report.found(&operation, "the handshake failed", e.to_string(), None);
                continue;
            }
        };
        let problem = match &outcome {
            Outcome::Closed(CLOSE_TOO_BIG) | Outcome::Dropped => continue,
            Outcome::Closed(code) => format!("closed with code {code} instead of {CLOSE_TOO_BIG}"),
            Outcome::Answered(frame) => format!("read it and answered {}", head(frame, 200)),
            Outcome::Silent => format!("neither refused it nor answered within {}", secs(WITHIN)),
        };
        report.found(
            &operation,
            format!(
                "{what} (max-ws-frame {} bytes) was not refused with {CLOSE_TOO_BIG}",
                limits.max_ws_frame
            ),
            format!(
                "{as_who}, sent {what} and a ping: the gateway {problem}; a message over the bound must be refused (close {CLOSE_TOO_BIG}) from its frame header, before it is read whole"
            ),
            None,
        );
    }

    // A room name longer than a log line may be, in a message under the
    // bound: refused, and (the log check) not logged whole.
    let log_line = usize::try_from(limits.max_log_line).unwrap_or(usize::MAX);
    let room_len = (log_line.saturating_mul(2)).min(bound.saturating_sub(64));
    if room_len <= log_line {
        report.notes.push(format!(
            "max-ws-frame ({bound}) leaves no room for a room name over max-log-line ({log_line}): that log check is not provoked"
        ));
        return (report, None);
    }
    report.cases += 1;
    let room = format!("{marker}{}", "q".repeat(room_len));
    let join = json!({ "action": "join", "room": room }).to_string();
    match connect().await {
        Ok(stream) => {
            if let Outcome::Answered(frame) = exchange(stream, join).await {
                if frame.contains("\"joined\"") {
                    report.found(
                        &operation,
                        format!(
                            "a room of {room_len} bytes that is no room of the tenant was joined"
                        ),
                        format!(
                            "{as_who}, joined {}: {}",
                            head(&room, 80),
                            head(&frame, 200)
                        ),
                        None,
                    );
                }
            }
        }
        Err(e) => report.found(&operation, "the handshake failed", e.to_string(), None),
    }
    (report, Some(tenant.id))
}

/// Sends `message` and a ping; what came back first.
async fn exchange(stream: EventStream, message: String) -> Outcome {
    let (mut sink, mut source) = stream;
    // A gateway that refuses may close while the message is still being
    // written: what it sent back says what happened.
    let _ = sink.send(Message::Text(message.into())).await;
    let _ = sink.send(Message::Ping(b"sweep".to_vec().into())).await;
    let first = async {
        loop {
            match source.next().await {
                Some(Ok(Message::Close(frame))) => {
                    return frame.map_or(Outcome::Dropped, |f| Outcome::Closed(u16::from(f.code)))
                }
                Some(Ok(Message::Text(text))) => return Outcome::Answered(text.to_string()),
                Some(Ok(Message::Pong(_))) => return Outcome::Answered("a pong".into()),
                Some(Ok(Message::Binary(b))) => {
                    return Outcome::Answered(format!("a binary frame of {} bytes", b.len()))
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return Outcome::Dropped,
            }
        }
    };
    tokio::time::timeout(WITHIN, first)
        .await
        .unwrap_or(Outcome::Silent)
}
