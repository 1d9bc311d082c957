//! What a client may cost a service: metric series, connections, WebSocket
//! messages, log lines (the bounds of `limits` in `fixtures/platform.yaml`).

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use reqwest::Method;
use serde_json::json;
use tekup_services::gateway::CLOSE_TOO_BIG;
use tekup_services::{serve_with, ConnLimits, ServiceName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::helpers::{TestApp, ACME_KEY, WITHIN};

/// The `http_requests` series of a `/metrics` text.
fn request_series(metrics: &str) -> Vec<&str> {
    metrics
        .lines()
        .filter(|l| l.starts_with("http_requests"))
        .map(|l| l.rsplit_once(' ').map_or(l, |(series, _)| series))
        .collect()
}

#[tokio::test]
async fn invented_methods_and_paths_add_no_metric_series() {
    let app = TestApp::spawn().await;
    let junk = |i: usize| {
        let method = Method::from_bytes(format!("XJUNK{i}").as_bytes()).expect("a token");
        (method, format!("/x/{}", uuid::Uuid::new_v4()))
    };
    let app = &app;
    let send = |method: Method, path: String| async move {
        let odd = uuid::Uuid::new_v4().to_string();
        app.with_headers(&[("x-odd-header", odd.as_str())])
            .send(ServiceName::FlowApi, method, &path, None)
            .await
    };
    // One of each shape first (and a read of /metrics, which counts
    // itself): the bounded labels they make may be new.
    app.metrics(&app.flow).await;
    let (method, path) = junk(0);
    send(method.clone(), path).await;
    send(method, "/health".into()).await;
    send(Method::GET, format!("/x/{}", uuid::Uuid::new_v4())).await;
    let before = app.metrics(&app.flow).await;
    for i in 1..30 {
        let (method, path) = junk(i);
        assert_eq!(send(method.clone(), path).await.status, 404);
        assert_eq!(send(method, "/health".into()).await.status, 405);
        send(Method::GET, format!("/x/{}", uuid::Uuid::new_v4())).await;
    }
    let after = app.metrics(&app.flow).await;
    assert!(!after.contains("XJUNK"), "{after}");
    assert!(!after.contains("/x/"), "{after}");
    assert!(
        after.contains(r#"method="OTHER",route="unmatched",status="404""#),
        "{after}"
    );
    assert_eq!(
        request_series(&before).len(),
        request_series(&after).len(),
        "before:\n{before}\nafter:\n{after}"
    );
}

/// A service that answers `/health`, served with a short header-read bound.
async fn serve_with_bound(bound: Duration) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let router = Router::new().route("/health", get(|| async { "ok" }));
    let limits = ConnLimits { header_read: bound };
    tokio::spawn(serve_with(listener, router, std::future::pending(), limits));
    address
}

/// Reads until the server closes the connection (EOF or reset), with a
/// deadline; whether it did.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 1024];
    tokio::time::timeout(within, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

#[tokio::test]
async fn slow_header_and_idle_connections_are_closed() {
    let bound = Duration::from_millis(300);
    let address = serve_with_bound(bound).await;

    // Before connecting: the server's timer cannot start earlier.
    let started = tokio::time::Instant::now();
    let mut slow = TcpStream::connect(address).await.expect("connects");
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .expect("writes");
    let mut idle = TcpStream::connect(address).await.expect("connects");
    assert!(
        closed_within(&mut slow, WITHIN).await,
        "slow header kept open"
    );
    assert!(
        closed_within(&mut idle, WITHIN).await,
        "idle connection kept open"
    );
    assert!(started.elapsed() >= bound, "closed before the bound");

    // A client that sends its request in time is served, and may reuse the
    // connection for the next one.
    let mut prompt = TcpStream::connect(address).await.expect("connects");
    for _ in 0..2 {
        prompt
            .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("writes");
        let mut answer = vec![0u8; 512];
        let n = tokio::time::timeout(WITHIN, prompt.read(&mut answer))
            .await
            .expect("answered in time")
            .expect("reads");
        let answer = String::from_utf8_lossy(&answer[..n]);
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
}

/// Log lines written while it is the thread's default subscriber.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("not poisoned").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn lines(&self) -> Vec<String> {
        let bytes = self.0.lock().expect("not poisoned").clone();
        String::from_utf8_lossy(&bytes)
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

// Current-thread runtime: every task of the services runs on this thread,
// under the capturing subscriber.
#[tokio::test]
async fn oversized_messages_are_refused_and_room_names_are_not_logged_whole() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("info")
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _log = tracing::subscriber::set_default(subscriber);
    let app = TestApp::spawn_bus().await;

    let mut client = app.ws(ACME_KEY, "acme", "crm-web").await;
    let over = "a".repeat(64 * 1024 + 1);
    let _ = client.try_send_text(over).await;
    assert_eq!(client.close_code(WITHIN).await, Some(CLOSE_TOO_BIG));

    let mut client = app.ws(ACME_KEY, "acme", "crm-web").await;
    let huge_room = json!({ "action": "join", "room": "r".repeat(1 << 20) });
    let _ = client.try_send_text(huge_room.to_string()).await;
    assert_eq!(client.close_code(WITHIN).await, Some(CLOSE_TOO_BIG));

    // Under the bound, refused: neither the reply nor the log holds it whole.
    let mut client = app.ws(ACME_KEY, "acme", "crm-web").await;
    let long_room = "q".repeat(32 * 1024);
    client
        .send(json!({ "action": "join", "room": long_room }))
        .await;
    let reply = client.next(WITHIN).await.expect("a reply");
    assert_eq!(reply["code"], "forbidden", "{reply}");
    assert!(reply.to_string().len() < 512, "{reply}");
    let lines = captured.lines();
    let refused: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("refused to join a foreign room"))
        .collect();
    assert_eq!(refused.len(), 1, "{lines:#?}");
    assert!(refused[0].len() < 1024, "{} bytes", refused[0].len());
    assert!(refused[0].contains("(32768 bytes)"), "{}", refused[0]);
    assert!(lines.iter().all(|l| l.len() < 16 * 1024));
}
