//! The gateway's rooms: a connection may join its own tenant's and app's
//! rooms, and no other (the contract's `gateway.join`, `joined`, `refused`).

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

use super::request::{handshake, Ws};
use super::world::{tenant_headers, World};
use crate::sweep::{ClassReport, Target};

/// How long a frame may take to come.
const FRAME: Duration = Duration::from_secs(10);

pub(super) async fn sweep(t: &Target, w: &World, report: &mut ClassReport) {
    let gw = &t.contract.gateway;
    let surface = format!("{} rooms", gw.service);
    let Some(app) = t.contract.apps.first() else {
        return;
    };
    let other_app = t
        .contract
        .apps
        .iter()
        .find(|a| *a != app)
        .cloned()
        .unwrap_or_default();
    let (opened, _) = handshake(t, &tenant_headers(t, &w.a, app)).await;
    let mut ws = match opened {
        Ok(ws) => ws,
        Err((status, body)) => {
            report.found(
                surface,
                format!("a's {app} could not connect to join rooms: {status}"),
                body,
                None,
            );
            return;
        }
    };
    report.operations.insert(surface.clone());
    let own = gw.rooms_of(&w.a.id, app);
    let foreign = [gw.rooms_of(&w.b.id, app), gw.rooms_of(&w.a.id, &other_app)].concat();
    let foreign: Vec<String> = foreign.into_iter().filter(|r| !own.contains(r)).collect();
    for (room, want, what) in own.iter().map(|r| (r, &gw.joined, "its own room")).chain(
        foreign
            .iter()
            .map(|r| (r, &gw.refused, "a room not its own")),
    ) {
        report.cases += 1;
        let mut join = gw.join.clone();
        join["room"] = Value::String(room.clone());
        match answer(&mut ws, &join).await {
            Ok(frame) if subset(want, &frame) => {}
            Ok(frame) => report.found(
                surface.clone(),
                format!("joining {what} `{room}` answered {}", frame),
                format!("expected a frame with {want}; sent {join}"),
                None,
            ),
            Err(e) => report.found(
                surface.clone(),
                format!("joining {what} `{room}`: {e}"),
                format!("expected a frame with {want}; sent {join}"),
                None,
            ),
        }
    }
    let _ = ws.close(None).await;
}

/// Sends `message` and returns the next frame that is not an event.
async fn answer(ws: &mut Ws, message: &Value) -> Result<Value, String> {
    ws.send(Message::text(message.to_string()))
        .await
        .map_err(|e| format!("sending failed: {e}"))?;
    loop {
        match tokio::time::timeout(FRAME, ws.next()).await {
            Err(_) => return Err(format!("no answer within {FRAME:?}")),
            Ok(None) => return Err("the gateway closed the connection".into()),
            Ok(Some(Err(e))) => return Err(format!("the connection failed: {e}")),
            Ok(Some(Ok(Message::Text(text)))) => {
                let frame: Value =
                    serde_json::from_str(&text).unwrap_or(Value::String(text.to_string()));
                if frame["type"] == "event" || frame["type"] == "welcome" {
                    continue;
                }
                return Ok(frame);
            }
            Ok(Some(Ok(Message::Close(frame)))) => {
                return Err(format!("the gateway closed the connection: {frame:?}"));
            }
            Ok(Some(Ok(_))) => {}
        }
    }
}

/// Whether every key of `want` has its value in `got`.
fn subset(want: &Value, got: &Value) -> bool {
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => w
            .iter()
            .all(|(k, v)| g.get(k).is_some_and(|x| subset(v, x))),
        (w, g) => w == g,
    }
}
