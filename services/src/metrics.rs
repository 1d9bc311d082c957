//! Prometheus metrics of one service (OpenMetrics text on `GET /metrics`).
//!
//! Each service owns its registry (no global recorder), so several services
//! can run in one test process without mixing their figures.
//!
//! Every label comes from a bounded set: a series is never made from what a
//! client chose to send. A request's method is one of the standard ones or
//! `OTHER`, its route the matched route or `unmatched`; a client inventing
//! method names or paths adds no series (the sweep's `limits` class).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub method: String,
    pub route: String,
    pub status: u16,
}

/// The label of any method that is not one of [`KNOWN_METHODS`].
pub const OTHER_METHOD: &str = "OTHER";

/// The route label of a request no route matched.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// The methods that get a label of their own (RFC 9110 and PATCH).
pub const KNOWN_METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT",
];

/// The method label of `method`: itself when it is a standard method,
/// else [`OTHER_METHOD`].
pub fn method_label(method: &axum::http::Method) -> String {
    if crate::defects::active("metrics-any-method") {
        // Deliberate defect: every method name a client invents becomes a
        // series of its own, forever.
        return method.as_str().to_owned();
    }
    KNOWN_METHODS
        .into_iter()
        .find(|known| *known == method.as_str())
        .unwrap_or(OTHER_METHOD)
        .to_owned()
}

/// Labels of the served-request duration: no status, so a route's
/// latency is one histogram whatever it answered.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpRouteLabels {
    pub method: String,
    pub route: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CrossAppLabels {
    pub source: String,
    pub target: String,
    /// HTTP status, or `error` when no response came.
    pub status: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub source: String,
    pub target: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventTypeLabels {
    pub event_type: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueLabels {
    pub queue: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueOutcomeLabels {
    pub queue: String,
    /// `completed`, `retried` or `dead_lettered`.
    pub outcome: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TargetLabels {
    pub target: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 1 ms .. ~33 s
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// The metrics a service records.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub http_requests: Family<HttpLabels, Counter>,
    /// How long serving a request took, by method and route (the
    /// platform's API latency alert takes its p95 from this).
    pub http_duration: HistogramFamily<HttpRouteLabels>,
    pub cross_app_requests: Family<CrossAppLabels, Counter>,
    pub cross_app_duration: HistogramFamily<RouteLabels>,
    pub leads_created: Counter,
    pub websocket_connections: Gauge,
    pub websocket_events_published: Family<EventTypeLabels, Counter>,
    pub websocket_events_delivered: Counter,
    pub websocket_slow_consumers: Counter,
    pub queue_size: Family<QueueLabels, Gauge>,
    /// Age in seconds of the oldest job waiting in a queue (not yet read by
    /// a worker), 0 when none waits: a queue can be short and stuck.
    pub queue_oldest_age: Family<QueueLabels, Gauge>,
    pub queue_processed: Family<QueueOutcomeLabels, Counter>,
    /// 0 closed, 1 open, 2 half-open; see [`crate::resilience`].
    pub circuit_breaker_state: Family<TargetLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let http_requests = Family::<HttpLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests served",
            http_requests.clone(),
        );
        let http_duration: HistogramFamily<HttpRouteLabels> =
            Family::new_with_constructor(latency_histogram);
        registry.register_with_unit(
            "http_request_duration",
            "Time taken to serve HTTP requests",
            Unit::Seconds,
            http_duration.clone(),
        );
        let cross_app_requests = Family::<CrossAppLabels, Counter>::default();
        registry.register(
            "cross_app_requests",
            "Calls made to other services and external APIs",
            cross_app_requests.clone(),
        );
        let cross_app_duration: HistogramFamily<RouteLabels> =
            Family::new_with_constructor(latency_histogram);
        registry.register_with_unit(
            "cross_app_request_duration",
            "Duration of calls to other services and external APIs",
            Unit::Seconds,
            cross_app_duration.clone(),
        );
        let leads_created = Counter::default();
        registry.register(
            "leads_created",
            "Leads accepted by the Flow API",
            leads_created.clone(),
        );
        let websocket_connections = Gauge::default();
        registry.register(
            "websocket_connections_active",
            "Open WebSocket connections on the gateway",
            websocket_connections.clone(),
        );
        let websocket_events_published = Family::<EventTypeLabels, Counter>::default();
        registry.register(
            "websocket_events_published",
            "Events the gateway fanned out, by type",
            websocket_events_published.clone(),
        );
        let websocket_events_delivered = Counter::default();
        registry.register(
            "websocket_events_delivered",
            "Event frames handed to WebSocket connections",
            websocket_events_delivered.clone(),
        );
        let websocket_slow_consumers = Counter::default();
        registry.register(
            "websocket_slow_consumers",
            "Connections closed because their buffer was full",
            websocket_slow_consumers.clone(),
        );
        let queue_size = Family::<QueueLabels, Gauge>::default();
        registry.register(
            "message_queue_size",
            "Jobs waiting in a queue",
            queue_size.clone(),
        );
        let queue_oldest_age = Family::<QueueLabels, Gauge>::default();
        registry.register_with_unit(
            "message_queue_oldest_age",
            "Age of the oldest job waiting in a queue (0 when none waits)",
            Unit::Seconds,
            queue_oldest_age.clone(),
        );
        let queue_processed = Family::<QueueOutcomeLabels, Counter>::default();
        registry.register(
            "message_queue_processed",
            "Jobs settled by this worker, by outcome",
            queue_processed.clone(),
        );
        let circuit_breaker_state = Family::<TargetLabels, Gauge>::default();
        registry.register(
            "circuit_breaker_state",
            "State of the circuit breaker of a call target: 0 closed, 1 open, 2 half-open",
            circuit_breaker_state.clone(),
        );
        Self {
            registry,
            circuit_breaker_state,
            websocket_connections,
            websocket_events_published,
            websocket_events_delivered,
            websocket_slow_consumers,
            queue_size,
            queue_oldest_age,
            queue_processed,
            http_requests,
            http_duration,
            cross_app_requests,
            cross_app_duration,
            leads_created,
        }
    }

    /// The OpenMetrics text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Method;

    #[test]
    fn invented_methods_share_one_label() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::PATCH), "PATCH");
        for invented in ["FOO1", "XYZZY", "get", "PROPFIND"] {
            let method = Method::from_bytes(invented.as_bytes()).expect("a token");
            assert_eq!(method_label(&method), OTHER_METHOD, "{invented}");
        }
    }
}
