//! OpenTelemetry traces: what the services record, and how they export it.
//!
//! The conventions are the platform's (`contract/README.md`, "Traces"): a
//! server span per incoming request, a client span per call to another
//! service or an external API (with `retry` and `circuit_open` events), a
//! producer span per job enqueued and a consumer span per attempt at it
//! (with a `dead_letter` event), a producer span per bus event published
//! and a consumer span per room the gateway delivers it to. The
//! `traceparent` travels in HTTP headers, in the job (`traceparent`) and in
//! the event's envelope (`traceparent`), so one request of a client is one
//! trace across services, the queue, the worker and the gateway.
//!
//! # Configuration
//!
//! Only the standard variables: `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) turns the export on; the SDK reads
//! `OTEL_SERVICE_NAME` (default: the service's own name),
//! `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_EXPORTER_OTLP_HEADERS` and `_TIMEOUT`,
//! `OTEL_BSP_SCHEDULE_DELAY` and the other `OTEL_BSP_*` batch settings,
//! and `OTEL_TRACES_SAMPLER` (`_ARG`). `OTEL_SDK_DISABLED=true` turns it off
//! again. The export is OTLP over HTTP/protobuf to a plain `http://`
//! endpoint: a protocol other than `http/protobuf` or an `https://`
//! endpoint is refused at start, naming the variable, rather than
//! silently exporting nothing.
//!
//! # Why spans are recorded the way they are
//!
//! Spans are `tracing` spans with the target [`TARGET`], turned into
//! OpenTelemetry spans by `tracing-opentelemetry`. The log output filters
//! that target out and the OpenTelemetry layer sees nothing else, so the
//! logs stay as they were and the traces hold only the spans of the
//! contract. Without an endpoint no layer listens to [`TARGET`]: every
//! span macro of this module returns a disabled span without evaluating its
//! fields, and the code around them checks [`tracing::Span::is_disabled`]
//! before building any attribute, so tracing off costs a branch per span.
//!
//! Spans are attached to futures (`Instrument`), never entered across an
//! `.await` (see `crate::worker`). The batch processor exports from a
//! thread of its own, every `OTEL_BSP_SCHEDULE_DELAY`; [`Telemetry::shutdown`]
//! flushes what is left when the service stops (SIGTERM or ctrl-c).

pub mod operations;
mod spans;

use opentelemetry::trace::{
    SpanContext, TraceContextExt as _, TraceFlags, TraceId, TraceState, TracerProvider as _,
};
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::Layer;

pub use spans::{
    circuit_open, client, consumer, dead_letter, deliver, fail, producer_job, publish, retry,
    server,
};

use crate::context::TraceParent;

/// The `tracing` target of every span and span event meant for
/// OpenTelemetry (and of nothing else).
pub const TARGET: &str = "tekup_otel";

/// Why tracing could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error(
        "{var}={value:?}: this build exports traces over OTLP http/protobuf only; \
         unset it or set it to `http/protobuf`"
    )]
    Protocol { var: &'static str, value: String },
    #[error(
        "{var}={value:?}: this build exports traces over plain http only (no TLS); \
         point it at an `http://` collector"
    )]
    Tls { var: &'static str, value: String },
    #[error("failed to build the OTLP trace exporter")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
}

/// The tracer provider of a service that exports, to flush at the end.
#[derive(Debug)]
#[must_use = "dropping it without `shutdown` loses the spans not yet exported"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Whether spans are exported.
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }

    /// Exports the spans still buffered and stops the exporter (blocks up
    /// to the exporter's timeout). Call it outside the async runtime.
    pub fn shutdown(self) {
        if let Some(provider) = self.provider {
            if let Err(e) = provider.shutdown() {
                tracing::warn!(error = %e, "failed to flush the last spans to the OTLP endpoint");
            }
        }
    }
}

/// Installs the global subscriber: logs to stderr (`RUST_LOG`, default
/// `info,sqlx=warn`; `LOG_FORMAT=json` for JSON lines) and, when the
/// `OTEL_*` variables ask for it, the OpenTelemetry layer. `service` names
/// the resource when `OTEL_SERVICE_NAME` does not.
///
/// # Errors
/// [`TelemetryError`] for a configuration this build cannot export with.
pub fn init(service: Option<&str>) -> Result<Telemetry, TelemetryError> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"))
        .add_directive(format!("{TARGET}=off").parse().expect("a valid directive"));
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = if std::env::var("LOG_FORMAT").is_ok_and(|f| f == "json") {
        fmt.json().with_filter(filter).boxed()
    } else {
        fmt.with_filter(filter).boxed()
    };
    let provider = provider_from_env(service);
    let otel = provider.as_ref().ok().and_then(Option::as_ref).map(layer);
    tracing_subscriber::registry().with(fmt).with(otel).init();
    let provider = provider?;
    if provider.is_some() {
        tracing::info!("exporting traces over OTLP (OTEL_EXPORTER_OTLP_*)");
    }
    Ok(Telemetry { provider })
}

/// The OpenTelemetry layer over `provider`'s tracer, seeing only
/// [`TARGET`]; tests install it over an in-memory exporter.
pub fn layer<S>(provider: &SdkTracerProvider) -> impl Layer<S>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("tekup-services"))
        .with_location(false)
        .with_threads(false)
        .with_target(false)
        .with_tracked_inactivity(false)
        .with_filter(Targets::new().with_target(TARGET, tracing::Level::TRACE))
}

fn env(var: &str) -> Option<String> {
    std::env::var(var).ok().filter(|v| !v.trim().is_empty())
}

/// The provider the `OTEL_*` variables ask for; `None` when they ask for
/// no export.
fn provider_from_env(service: Option<&str>) -> Result<Option<SdkTracerProvider>, TelemetryError> {
    const ENDPOINTS: [&str; 2] = [
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    ];
    if env("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"))
        || ENDPOINTS.iter().all(|var| env(var).is_none())
    {
        return Ok(None);
    }
    for var in [
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
    ] {
        if let Some(value) = env(var).filter(|v| v.trim() != "http/protobuf") {
            return Err(TelemetryError::Protocol { var, value });
        }
    }
    for var in ENDPOINTS {
        if let Some(value) = env(var).filter(|v| !v.trim().starts_with("http://")) {
            return Err(TelemetryError::Tls { var, value });
        }
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()?;
    // `service.name` from OTEL_SERVICE_NAME or OTEL_RESOURCE_ATTRIBUTES,
    // else the service's own name.
    let named = opentelemetry_sdk::Resource::builder()
        .build()
        .get(&opentelemetry::Key::new("service.name"))
        .is_some_and(|name| !name.as_str().starts_with("unknown_service"));
    let mut resource = opentelemetry_sdk::Resource::builder();
    if let (false, Some(service)) = (named, service) {
        resource = resource.with_service_name(service.to_owned());
    }
    Ok(Some(
        SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource.build())
            .build(),
    ))
}

/// Makes `span` continue the trace of `remote` (a new trace without one,
/// whatever span is current) and returns its own ids; `None` when the span
/// is disabled.
pub fn continue_trace(span: &tracing::Span, remote: Option<&TraceParent>) -> Option<TraceParent> {
    if span.is_disabled() {
        return None;
    }
    let parent = match remote {
        Some(remote) => opentelemetry::Context::new().with_remote_span_context(SpanContext::new(
            TraceId::from_bytes(remote.trace_id),
            opentelemetry::trace::SpanId::from_bytes(remote.span_id),
            if remote.sampled {
                TraceFlags::SAMPLED
            } else {
                TraceFlags::default()
            },
            true,
            TraceState::default(),
        )),
        None => opentelemetry::Context::new(),
    };
    // Fails only for a span started already: it keeps the parent it has.
    let _ = span.set_parent(parent);
    traceparent_of(span)
}

/// The `traceparent` naming `span` as the parent; `None` when the span is
/// disabled.
pub fn traceparent_of(span: &tracing::Span) -> Option<TraceParent> {
    if span.is_disabled() {
        return None;
    }
    let context = span.context();
    let span_ref = context.span();
    let own = span_ref.span_context();
    own.is_valid().then(|| TraceParent {
        trace_id: own.trace_id().to_bytes(),
        span_id: own.span_id().to_bytes(),
        sampled: own.is_sampled(),
    })
}
