//! The OTLP trace receiver every ecosystem starts: what the services export
//! lands in the ecosystem's [`SpanStore`].
//!
//! It speaks both transports an OpenTelemetry SDK may be configured with:
//! HTTP (`POST /v1/traces`, protobuf or JSON, optionally gzip-encoded; the
//! reference services use `http/protobuf`) on one port, gRPC
//! (`opentelemetry.proto.collector.trace.v1.TraceService/Export`) on
//! another, as a collector has 4318 and 4317. Both bind port 0 on the
//! address the runtime asks for (loopback for processes, the run network's
//! gateway under docker), so runs never collide.
//!
//! A malformed request is refused whole, with a message naming the problem
//! (which span, which field): 400 over HTTP, `INVALID_ARGUMENT` over gRPC.
//! The gRPC service decodes the protobuf itself rather than through
//! tonic's generated server, whose codec calls a bad message `INTERNAL`.
//! Partial success is never reported: a request is taken or refused.
//!
//! With a forward URL ([`ReceiverOptions::forward`]) every request taken is
//! also posted to that OTLP endpoint (a Jaeger or Tempo of the team's), from
//! a queue of its own: a slow or dead backend never slows the services.
//!
//! The receiver stops when dropped (or [`Receiver::shutdown`]).

mod forward;
mod grpc;
mod http;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::otlp::spans_of;
use super::SpanStore;
pub use forward::ForwardUrlError;
use forward::Forwarder;

/// Where the receiver listens and what it does besides storing.
#[derive(Debug, Clone)]
#[must_use]
pub struct ReceiverOptions {
    bind: IpAddr,
    forward: Option<String>,
}

impl Default for ReceiverOptions {
    fn default() -> Self {
        Self {
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            forward: None,
        }
    }
}

impl ReceiverOptions {
    /// The address both servers bind (default 127.0.0.1), each on a free port.
    pub fn bind(mut self, ip: IpAddr) -> Self {
        self.bind = ip;
        self
    }

    /// Also forward every request taken to this OTLP/HTTP endpoint's
    /// `/v1/traces` (as a collector's base URL: `http://jaeger:4318`).
    pub fn forward(mut self, url: Option<String>) -> Self {
        self.forward = url;
        self
    }
}

/// Why the receiver did not start.
#[derive(Debug, thiserror::Error)]
pub enum ReceiverError {
    #[error("failed to bind the OTLP receiver's {transport} port on {ip}")]
    Bind {
        transport: &'static str,
        ip: IpAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Forward(#[from] ForwardUrlError),
}

/// Takes export requests into the store (and the forward queue).
#[derive(Debug)]
struct Sink {
    store: Arc<SpanStore>,
    forward: Option<Forwarder>,
}

impl Sink {
    /// Stores the request's spans; `raw` is its protobuf encoding when the
    /// caller has it (forwarded as it came, not re-encoded).
    fn take(&self, request: &ExportTraceServiceRequest, raw: Option<Bytes>) -> Result<(), String> {
        let spans = spans_of(request).map_err(|e| e.to_string())?;
        self.store.insert(spans);
        if let Some(forward) = &self.forward {
            let body = raw.unwrap_or_else(|| Bytes::from(prost::Message::encode_to_vec(request)));
            forward.send(body);
        }
        Ok(())
    }
}

/// A running receiver; stops when dropped.
#[derive(Debug)]
pub struct Receiver {
    http: SocketAddr,
    grpc: SocketAddr,
    stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
    sink: Arc<Sink>,
}

impl Receiver {
    /// Binds both ports and starts serving into `store`.
    pub async fn start(
        store: Arc<SpanStore>,
        options: ReceiverOptions,
    ) -> Result<Receiver, ReceiverError> {
        let forward = options
            .forward
            .as_deref()
            .map(Forwarder::start)
            .transpose()?;
        let bind = |transport| {
            let ip = options.bind;
            async move {
                tokio::net::TcpListener::bind(SocketAddr::new(ip, 0))
                    .await
                    .map_err(|source| ReceiverError::Bind {
                        transport,
                        ip,
                        source,
                    })
            }
        };
        let http_listener = bind("HTTP").await?;
        let grpc_listener = bind("gRPC").await?;
        let local = |l: &tokio::net::TcpListener, transport| {
            l.local_addr().map_err(|source| ReceiverError::Bind {
                transport,
                ip: options.bind,
                source,
            })
        };
        let (http_addr, grpc_addr) = (
            local(&http_listener, "HTTP")?,
            local(&grpc_listener, "gRPC")?,
        );
        let sink = Arc::new(Sink { store, forward });
        let stop = CancellationToken::new();
        let tasks = vec![
            tokio::spawn(http::serve(http_listener, Arc::clone(&sink), stop.clone())),
            tokio::spawn(grpc::serve(grpc_listener, Arc::clone(&sink), stop.clone())),
        ];
        Ok(Receiver {
            http: http_addr,
            grpc: grpc_addr,
            stop,
            tasks,
            sink,
        })
    }

    /// Where OTLP/HTTP is served.
    pub fn http_addr(&self) -> SocketAddr {
        self.http
    }

    /// Where OTLP/gRPC is served.
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc
    }

    /// The OTLP/HTTP base URL (`OTEL_EXPORTER_OTLP_ENDPOINT`; exporters add
    /// `/v1/traces`), as reached on the address it is bound to.
    pub fn http_url(&self) -> String {
        format!("http://{}", self.http)
    }

    /// The OTLP/gRPC endpoint URL.
    pub fn grpc_url(&self) -> String {
        format!("http://{}", self.grpc)
    }

    /// Stops serving and waits until both servers have stopped; what is
    /// still queued for forwarding is sent first (bounded by the forward
    /// timeout).
    pub async fn shutdown(mut self) {
        self.stop.cancel();
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
        if let Some(forward) = &self.sink.forward {
            forward.drain().await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.cancel();
        for task in &self.tasks {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests;
