//! Real exports over both transports into a receiver on the loopback.

use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;

use super::grpc::{RawCodec, EXPORT};
use super::http::error_message;
use super::{Receiver, ReceiverOptions};
use crate::trace::otlp::{tests::sample, to_request};
use crate::trace::{SpanKind, SpanStore, StatusCode};

async fn receiver(options: ReceiverOptions) -> (Receiver, Arc<SpanStore>) {
    let store = SpanStore::new();
    let receiver = Receiver::start(Arc::clone(&store), options)
        .await
        .expect("the receiver starts");
    (receiver, store)
}

/// Checks what `store` holds is [`sample`]: the server span with its
/// attributes, event and error status, the client span under it.
fn assert_sample_landed(store: &SpanStore) {
    let spans = store.trace("0af7651916cd43dd8448eb211c80319c");
    assert_eq!(spans.len(), 2, "{spans:#?}");
    let root = spans.iter().find(|s| s.service == "flow-api").unwrap();
    assert_eq!(root.parent_span_id, None);
    assert_eq!(root.kind, SpanKind::Server);
    assert_eq!(root.operation(), Some("createLead"));
    assert_eq!(root.attributes["http.response.status_code"], 201);
    assert_eq!(root.attributes["tags"], serde_json::json!(["a", 1]));
    assert_eq!(root.status.code, StatusCode::Error);
    assert_eq!(root.status.message, "boom");
    assert_eq!(root.events[0].name, "retry");
    assert_eq!(root.events[0].attributes["attempt"], 2);
    let child = spans.iter().find(|s| s.service == "crm-api").unwrap();
    assert_eq!(child.parent_span_id.as_deref(), Some("b7ad6b7169203331"));
    assert_eq!(child.kind, SpanKind::Client);
}

fn protobuf(request: &ExportTraceServiceRequest) -> Vec<u8> {
    prost::Message::encode_to_vec(request)
}

async fn post(url: &str, content_type: &str, gzip: bool, body: Vec<u8>) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .post(format!("{url}/v1/traces"))
        .header("content-type", content_type);
    let body = if gzip {
        request = request.header("content-encoding", "gzip");
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(&body).unwrap();
        encoder.finish().unwrap()
    } else {
        body
    };
    request
        .body(body)
        .send()
        .await
        .expect("the receiver answers")
}

/// The status and the error message of an answer.
async fn refusal(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body = response.bytes().await.unwrap();
    (status, error_message(&content_type, &body))
}

#[tokio::test]
async fn http_protobuf_exports_land_in_the_store() {
    let (receiver, store) = receiver(ReceiverOptions::default()).await;
    let body = protobuf(&to_request(&sample()));
    let response = post(&receiver.http_url(), "application/x-protobuf", false, body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/x-protobuf");
    assert_sample_landed(&store);
}

#[tokio::test]
async fn http_json_and_gzip_exports_land_in_the_store() {
    let (receiver, store) = receiver(ReceiverOptions::default()).await;
    let json = serde_json::to_vec(&to_request(&sample())).unwrap();
    let response = post(&receiver.http_url(), "application/json", true, json).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "{}");
    assert_sample_landed(&store);
    let (other, store) = self::receiver(ReceiverOptions::default()).await;
    let body = protobuf(&to_request(&sample()));
    let response = post(&other.http_url(), "application/x-protobuf", true, body).await;
    assert_eq!(response.status(), 200);
    assert_sample_landed(&store);
}

#[tokio::test]
async fn grpc_exports_land_in_the_store() {
    let (receiver, store) = receiver(ReceiverOptions::default()).await;
    let mut client = TraceServiceClient::connect(receiver.grpc_url())
        .await
        .expect("connects");
    client
        .export(to_request(&sample()))
        .await
        .expect("the export is taken");
    assert_sample_landed(&store);
}

#[tokio::test]
async fn malformed_http_bodies_are_refused_with_the_reason() {
    let (receiver, store) = receiver(ReceiverOptions::default()).await;
    let url = receiver.http_url();
    let garbage = vec![0xff, 0xff, 0xff, 0x01, 0x02];
    let (status, message) =
        refusal(post(&url, "application/x-protobuf", false, garbage.clone()).await).await;
    assert_eq!(status, 400);
    assert!(
        message.starts_with("the body is not a protobuf ExportTraceServiceRequest"),
        "{message}"
    );
    let (status, message) = refusal(
        post(
            &url,
            "application/json",
            false,
            b"{\"resourceSpans\": 7}".to_vec(),
        )
        .await,
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        message.starts_with("the body is not an OTLP/JSON ExportTraceServiceRequest"),
        "{message}"
    );
    let mut bad = to_request(&sample());
    bad.resource_spans[0].scope_spans[0].spans[0].span_id = vec![1, 2];
    let (status, message) =
        refusal(post(&url, "application/x-protobuf", false, protobuf(&bad)).await).await;
    assert_eq!(status, 400);
    assert_eq!(
        message,
        "resourceSpans[0].scopeSpans[0].spans[0]: spanId has 2 bytes, expected 8"
    );
    let (status, message) =
        refusal(post(&url, "application/x-protobuf", true, garbage.clone()).await).await;
    // Gzip of garbage is valid gzip of invalid protobuf.
    assert_eq!((status, message.contains("not a protobuf")), (400, true));
    let response = reqwest::Client::new()
        .post(format!("{url}/v1/traces"))
        .header("content-type", "application/x-protobuf")
        .header("content-encoding", "gzip")
        .body(garbage.clone())
        .send()
        .await
        .unwrap();
    let (status, message) = refusal(response).await;
    assert_eq!(status, 400);
    assert!(
        message.starts_with("the body is not valid gzip"),
        "{message}"
    );
    let response = post(&url, "text/plain", false, garbage).await;
    assert_eq!(response.status(), 415);
    assert!(response
        .text()
        .await
        .unwrap()
        .contains("application/x-protobuf"));
    assert_eq!(store.received(), 0, "nothing of a refused request is kept");
}

#[tokio::test]
async fn malformed_grpc_messages_are_invalid_arguments() {
    let (receiver, store) = receiver(ReceiverOptions::default()).await;
    let channel = tonic::transport::Endpoint::from_shared(receiver.grpc_url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready().await.unwrap();
    let status = grpc
        .unary::<Bytes, Bytes, _>(
            tonic::Request::new(Bytes::from_static(&[0xff, 0xff, 0xff, 0x01])),
            tonic::codegen::http::uri::PathAndQuery::from_static(EXPORT),
            RawCodec,
        )
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(
        status
            .message()
            .starts_with("the message is not a protobuf"),
        "{status:?}"
    );
    let mut bad = to_request(&sample());
    bad.resource_spans[1].scope_spans[0].spans[0].trace_id = Vec::new();
    let status = TraceServiceClient::new(channel)
        .export(bad)
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert_eq!(
        status.message(),
        "resourceSpans[1].scopeSpans[0].spans[0]: traceId has 0 bytes, expected 16"
    );
    assert_eq!(store.received(), 0);
}

/// Waits until `store` has received `n` spans (or fails after 10 s).
async fn until_received(store: &SpanStore, n: u64) {
    let changed = store.changed();
    let waited = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let notified = changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if store.received() >= n {
                return;
            }
            notified.await;
        }
    })
    .await;
    assert!(
        waited.is_ok(),
        "{} of {n} spans arrived within 10 s",
        store.received()
    );
}

#[tokio::test]
async fn exports_are_forwarded_over_both_transports() {
    let (backend, forwarded) = receiver(ReceiverOptions::default()).await;
    let (front, store) =
        receiver(ReceiverOptions::default().forward(Some(format!("{}/", backend.http_url()))))
            .await;
    let json = serde_json::to_vec(&to_request(&sample())).unwrap();
    let response = post(&front.http_url(), "application/json", false, json).await;
    assert_eq!(response.status(), 200);
    let mut client = TraceServiceClient::connect(front.grpc_url()).await.unwrap();
    let mut second = sample();
    for s in &mut second {
        s.trace_id = "1".repeat(32);
    }
    client.export(to_request(&second)).await.unwrap();
    until_received(&forwarded, 4).await;
    assert_sample_landed(&forwarded);
    assert_eq!(forwarded.trace(&"1".repeat(32)).len(), 2);
    assert_eq!(store.received(), 4);
    front.shutdown().await;
}

#[tokio::test]
async fn a_dead_forward_target_never_fails_an_export() {
    // A port that was free a moment ago: nothing listens there.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (front, store) =
        receiver(ReceiverOptions::default().forward(Some(format!("http://{dead}")))).await;
    for _ in 0..3 {
        let body = protobuf(&to_request(&sample()));
        let response = post(&front.http_url(), "application/x-protobuf", false, body).await;
        assert_eq!(response.status(), 200);
    }
    assert_eq!(store.received(), 6);
    front.shutdown().await;
}

#[tokio::test]
async fn a_bad_forward_url_is_refused_at_start() {
    let err = Receiver::start(
        SpanStore::new(),
        ReceiverOptions::default().forward(Some("ftp://x".into())),
    )
    .await
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid OTLP forward URL `ftp://x`: expected an http:// or https:// URL"
    );
}

#[tokio::test]
async fn a_stopped_receiver_refuses_connections() {
    let (receiver, _store) = receiver(ReceiverOptions::default()).await;
    let (http, grpc) = (receiver.http_addr(), receiver.grpc_addr());
    receiver.shutdown().await;
    assert!(tokio::net::TcpStream::connect(http).await.is_err());
    assert!(tokio::net::TcpStream::connect(grpc).await.is_err());
}
