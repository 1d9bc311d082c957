//! Prometheus metrics of one service (OpenMetrics text on `GET /metrics`).
//!
//! Each service owns its registry (no global recorder), so several services
//! can run in one test process without mixing their figures.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub method: String,
    pub route: String,
    pub status: u16,
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
    pub cross_app_requests: Family<CrossAppLabels, Counter>,
    pub cross_app_duration: HistogramFamily<RouteLabels>,
    pub leads_created: Counter,
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
        Self {
            registry,
            http_requests,
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
