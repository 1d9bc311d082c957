//! Distributed traces: the spans the services export while the harness
//! runs them, kept per run so that scenarios can see and assert on what
//! they caused.
//!
//! Every ecosystem the harness starts has an OTLP receiver of its own
//! (`receiver`), and the services are pointed at it with the standard
//! `OTEL_*` variables. What arrives lands in a [`SpanStore`]. A run finds
//! its own spans by trace id: each request a scenario sends carries a
//! `traceparent` whose trace id begins with the run's [`TracePrefix`], so
//! every span of that request's trace (across services, queue jobs, the
//! worker and WebSocket deliveries, when the platform propagates the
//! context) shares the prefix. A span whose context was lost starts a new
//! trace, outside every run: that is what a `trace` step reports as
//! missing.
//!
//! The names and attributes spans are selected by are the platform's
//! contract (`contract/README.md`, Traces), not the services' code.

pub mod otlp;
pub mod receiver;
mod store;

pub use otlp::{to_otlp_json, InvalidSpan};
pub use receiver::{Receiver, ReceiverError, ReceiverOptions};
pub use store::{
    harness_span, Span, SpanEvent, SpanKind, SpanStatus, SpanStore, StatusCode, TracePrefix,
};
