//! OTLP/gRPC: `opentelemetry.proto.collector.trace.v1.TraceService/Export`.
//!
//! Served through tonic's server machinery (HTTP/2, framing, gzip) with a
//! codec that hands over the message's bytes undecoded: the service
//! decodes them itself so that a malformed message is `INVALID_ARGUMENT`
//! with prost's reason, where the generated server's codec would answer
//! `INTERNAL`. The raw bytes are also what the forwarder sends on.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf as _, BufMut as _, Bytes};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tokio_util::sync::CancellationToken;
use tonic::body::Body;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http;
use tonic::{Request, Response, Status};

use super::Sink;

const SERVICE: &str = "opentelemetry.proto.collector.trace.v1.TraceService";
pub(super) const EXPORT: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
/// The largest message taken (tonic's default is 4 MiB).
const MAX_MESSAGE: usize = 64 << 20;

pub(super) async fn serve(
    listener: tokio::net::TcpListener,
    sink: Arc<Sink>,
    stop: CancellationToken,
) {
    let served = tonic::transport::Server::builder()
        .add_service(TraceService { sink })
        .serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(listener),
            async move { stop.cancelled().await },
        )
        .await;
    if let Err(e) = served {
        tracing::warn!("the OTLP/gRPC receiver stopped: {e}");
    }
}

/// The `TraceService`, as a tower service of HTTP/2 requests.
#[derive(Debug, Clone)]
struct TraceService {
    sink: Arc<Sink>,
}

impl tonic::server::NamedService for TraceService {
    const NAME: &'static str = SERVICE;
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

impl tonic::codegen::Service<http::Request<Body>> for TraceService {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let sink = Arc::clone(&self.sink);
        Box::pin(async move {
            if request.uri().path() != EXPORT {
                let status = Status::unimplemented(format!(
                    "{} is not served here: only {EXPORT}",
                    request.uri().path()
                ));
                return Ok(status.into_http());
            }
            let mut grpc = tonic::server::Grpc::new(RawCodec)
                .accept_compressed(CompressionEncoding::Gzip)
                .max_decoding_message_size(MAX_MESSAGE);
            Ok(grpc.unary(Export { sink }, request).await)
        })
    }
}

/// The `Export` method.
struct Export {
    sink: Arc<Sink>,
}

impl tonic::server::UnaryService<Bytes> for Export {
    type Response = Bytes;
    type Future = BoxFuture<Result<Response<Bytes>, Status>>;

    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        let sink = Arc::clone(&self.sink);
        Box::pin(async move {
            let raw = request.into_inner();
            let export = <ExportTraceServiceRequest as prost::Message>::decode(raw.clone())
                .map_err(|e| {
                    Status::invalid_argument(format!(
                        "the message is not a protobuf ExportTraceServiceRequest: {e}"
                    ))
                })?;
            sink.take(&export, Some(raw))
                .map_err(Status::invalid_argument)?;
            let response = prost::Message::encode_to_vec(&ExportTraceServiceResponse::default());
            Ok(Response::new(Bytes::from(response)))
        })
    }
}

/// Messages as their bytes, both ways.
#[derive(Debug, Clone, Copy)]
pub(super) struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}
