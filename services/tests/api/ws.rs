//! A WebSocket client of the gateway for the tests.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub(crate) struct WsClient {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub(crate) welcome: Value,
}

impl WsClient {
    /// Connects as `app` of `tenant`, optionally resuming after `last`.
    pub(crate) async fn connect(
        gateway: &str,
        key: &str,
        tenant: &str,
        app: &str,
        last: Option<&str>,
    ) -> Self {
        Self::try_connect(gateway, key, tenant, app, last)
            .await
            .expect("websocket connects")
    }

    pub(crate) async fn try_connect(
        gateway: &str,
        key: &str,
        tenant: &str,
        app: &str,
        last: Option<&str>,
    ) -> Result<Self, tokio_tungstenite::tungstenite::Error> {
        let url = format!("{}/events", gateway.replacen("http://", "ws://", 1));
        let mut request = url.into_client_request()?;
        let headers = request.headers_mut();
        headers.insert("x-tenant-key", key.parse().unwrap());
        headers.insert("x-tenant-id", tenant.parse().unwrap());
        headers.insert("x-source-app", app.parse().unwrap());
        if let Some(last) = last {
            headers.insert("last-event-id", last.parse().unwrap());
        }
        let (mut stream, _) = tokio_tungstenite::connect_async(request).await?;
        let welcome = next_json(&mut stream, Duration::from_secs(5))
            .await
            .expect("welcome frame");
        assert_eq!(welcome["type"], "welcome", "{welcome}");
        Ok(Self { stream, welcome })
    }

    /// The next JSON frame within `within`, or `None`.
    pub(crate) async fn next(&mut self, within: Duration) -> Option<Value> {
        next_json(&mut self.stream, within).await
    }

    /// The next `event` frame within `within`, skipping other frames.
    pub(crate) async fn next_event(&mut self, within: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let frame = self.next(left).await?;
            if frame["type"] == "event" {
                return Some(frame);
            }
        }
    }

    pub(crate) async fn send(&mut self, value: Value) {
        self.stream
            .send(Message::Text(value.to_string().into()))
            .await
            .expect("send");
    }

    /// Sends a text frame, which may fail when the gateway closes first.
    pub(crate) async fn try_send_text(
        &mut self,
        text: String,
    ) -> Result<(), tokio_tungstenite::tungstenite::Error> {
        self.stream.send(Message::Text(text.into())).await
    }

    /// Waits for the close frame; returns its code.
    pub(crate) async fn close_code(&mut self, within: Duration) -> Option<u16> {
        tokio::time::timeout(within, async {
            while let Some(message) = self.stream.next().await {
                match message {
                    Ok(Message::Close(frame)) => return frame.map(|f| u16::from(f.code)),
                    Ok(_) => {}
                    Err(_) => return None,
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
    }
}

async fn next_json(
    stream: &mut WebSocketStream<MaybeTlsStream<TcpStream>>,
    within: Duration,
) -> Option<Value> {
    tokio::time::timeout(within, async {
        while let Some(message) = stream.next().await {
            match message.ok()? {
                Message::Text(text) => return serde_json::from_str(&text).ok(),
                Message::Close(_) => return None,
                _ => {}
            }
        }
        None
    })
    .await
    .ok()
    .flatten()
}
