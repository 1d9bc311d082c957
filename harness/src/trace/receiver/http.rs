//! OTLP/HTTP: `POST /v1/traces` with a protobuf or JSON
//! `ExportTraceServiceRequest`, identity or gzip content encoding.
//!
//! Answers follow the OTLP/HTTP specification: 200 with an
//! `ExportTraceServiceResponse` in the request's encoding; 400 with a
//! `google.rpc.Status` (protobuf for a protobuf request, JSON otherwise)
//! whose message names the problem; 415 for a content type or encoding it
//! does not take.

use std::io::Read as _;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tokio_util::sync::CancellationToken;

use super::Sink;

/// The largest request body taken, compressed or not (a batch of a few
/// thousand spans is a few MiB).
const MAX_BODY: usize = 64 << 20;

const PROTOBUF: &str = "application/x-protobuf";
const JSON: &str = "application/json";

/// `google.rpc.Status`, the body of an OTLP/HTTP error.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

/// gRPC's `INVALID_ARGUMENT`, the code of a malformed request's status.
const INVALID_ARGUMENT: i32 = 3;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Protobuf,
    Json,
}

pub(super) async fn serve(
    listener: tokio::net::TcpListener,
    sink: Arc<Sink>,
    stop: CancellationToken,
) {
    let served = axum::serve(listener, app(sink))
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await;
    if let Err(e) = served {
        tracing::warn!("the OTLP/HTTP receiver stopped: {e}");
    }
}

fn app(sink: Arc<Sink>) -> Router {
    Router::new()
        .route("/v1/traces", post(export))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(sink)
}

async fn export(State(sink): State<Arc<Sink>>, headers: HeaderMap, body: Bytes) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let encoding = if content_type.starts_with(PROTOBUF) {
        Encoding::Protobuf
    } else if content_type.starts_with(JSON) {
        Encoding::Json
    } else {
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "unsupported content type {content_type:?}: OTLP/HTTP takes {PROTOBUF} or {JSON}"
            ),
        )
            .into_response();
    };
    let body = match decompress(&headers, body) {
        Ok(body) => body,
        Err((status, message)) => return error(status, encoding, message),
    };
    let request = match encoding {
        Encoding::Protobuf => <ExportTraceServiceRequest as prost::Message>::decode(body.clone())
            .map_err(|e| format!("the body is not a protobuf ExportTraceServiceRequest: {e}")),
        Encoding::Json => serde_json::from_slice::<ExportTraceServiceRequest>(&body)
            .map_err(|e| format!("the body is not an OTLP/JSON ExportTraceServiceRequest: {e}")),
    };
    let taken = request.and_then(|request| {
        let raw = (encoding == Encoding::Protobuf).then_some(body);
        sink.take(&request, raw)
    });
    match taken {
        Err(message) => error(StatusCode::BAD_REQUEST, encoding, message),
        Ok(()) => {
            match encoding {
                Encoding::Protobuf => (
                    [(header::CONTENT_TYPE, PROTOBUF)],
                    prost::Message::encode_to_vec(&ExportTraceServiceResponse::default()),
                )
                    .into_response(),
                // An empty ExportTraceServiceResponse (serde would write
                // `"partialSuccess": null`).
                Encoding::Json => ([(header::CONTENT_TYPE, JSON)], "{}").into_response(),
            }
        }
    }
}

/// The body without its content encoding (identity or gzip).
fn decompress(headers: &HeaderMap, body: Bytes) -> Result<Bytes, (StatusCode, String)> {
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("identity")
        .trim()
        .to_ascii_lowercase();
    match encoding.as_str() {
        "" | "identity" => Ok(body),
        "gzip" => {
            let mut out = Vec::with_capacity(body.len() * 4);
            let read = flate2::read::GzDecoder::new(&body[..])
                .take(MAX_BODY as u64 + 1)
                .read_to_end(&mut out);
            match read {
                Err(e) => Err((
                    StatusCode::BAD_REQUEST,
                    format!("the body is not valid gzip: {e}"),
                )),
                Ok(n) if n > MAX_BODY => Err((
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("the body inflates to more than {MAX_BODY} bytes"),
                )),
                Ok(_) => Ok(Bytes::from(out)),
            }
        }
        other => Err((
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("unsupported content encoding {other:?}: OTLP/HTTP takes gzip or none"),
        )),
    }
}

fn error(status: StatusCode, encoding: Encoding, message: String) -> Response {
    let rpc = RpcStatus {
        code: INVALID_ARGUMENT,
        message,
    };
    match encoding {
        Encoding::Protobuf => (
            status,
            [(header::CONTENT_TYPE, PROTOBUF)],
            prost::Message::encode_to_vec(&rpc),
        )
            .into_response(),
        Encoding::Json => (
            status,
            [(header::CONTENT_TYPE, JSON)],
            serde_json::json!({ "code": rpc.code, "message": rpc.message }).to_string(),
        )
            .into_response(),
    }
}

/// The message of an OTLP/HTTP error body (protobuf or JSON `Status`).
#[cfg(test)]
pub(super) fn error_message(content_type: &str, body: &[u8]) -> String {
    if content_type.starts_with(PROTOBUF) {
        <RpcStatus as prost::Message>::decode(body)
            .map(|s| s.message)
            .unwrap_or_default()
    } else {
        serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v["message"].as_str().map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned())
    }
}
