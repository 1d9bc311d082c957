//! The one outgoing HTTP path of a service: reqwest under retry and circuit
//! breaking, with trace propagation and the cross-app metrics.
//!
//! Every call (to another service or to an external API) is one client
//! span (see [`crate::telemetry`]): `{METHOD} {target}` with the target's
//! operation, an event `retry` per retry and `circuit_open` when the
//! breaker refused it, status `ERROR` when no answer or a 5xx came. Every
//! attempt carries the current request's `x-correlation-id` and a W3C
//! `traceparent` naming that client span as parent (without tracing, a
//! fresh span id in the request's trace), and is counted in
//! `cross_app_requests_total{source,target,status}` (`status` is the HTTP
//! status, `error` when no answer came, `circuit_open` when the breaker
//! refused the call) and timed in `cross_app_request_duration_seconds`.
//!
//! A POST is retried only when it was certainly not processed (see
//! [`Idempotency`]) unless it carries an `Idempotency-Key` header or the
//! caller says it is idempotent with [`ResilientHttp::send_idempotent`].

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use reqwest::header::{HeaderValue, RETRY_AFTER};
use reqwest::{Method, Request, Response};
use tracing::Instrument as _;

use crate::context::RequestContext;
use crate::metrics::{CrossAppLabels, Metrics, RouteLabels};
use crate::resilience::{
    parse_retry_after, Attempt, BreakerOpen, Classify, Idempotency, Resilience,
};

/// Header carrying the correlation id between services.
pub const CORRELATION_ID: &str = "x-correlation-id";
/// W3C trace context header.
pub const TRACEPARENT: &str = "traceparent";

/// Why an outgoing call produced no answer.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error(transparent)]
    CircuitOpen(#[from] BreakerOpen),
    #[error("failed to build the request to {target}")]
    Build {
        target: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("failed to reach {target}")]
    Unreachable {
        target: String,
        #[source]
        source: reqwest::Error,
    },
}

/// Outgoing HTTP with retry, circuit breaker, tracing headers and metrics;
/// cheap to clone (clones share breakers and connection pool).
#[derive(Debug, Clone)]
pub struct ResilientHttp {
    http: reqwest::Client,
    source: Arc<str>,
    metrics: Arc<Metrics>,
    resilience: Arc<Resilience>,
}

struct Sent(Result<Response, reqwest::Error>);

impl Classify for Sent {
    fn classify(&self) -> Option<Attempt> {
        match &self.0 {
            Ok(response) => Some(Attempt::Answered {
                status: response.status().as_u16(),
                retry_after: response
                    .headers()
                    .get(RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| parse_retry_after(v, SystemTime::now())),
            }),
            Err(e) if e.is_builder() => None,
            Err(e) if e.is_connect() => Some(Attempt::ConnectFailed),
            Err(_) => Some(Attempt::NoAnswer),
        }
    }
}

impl ResilientHttp {
    /// A client for calls made by `source` (a service name), with a 10 s
    /// timeout per attempt and a 2 s connect timeout.
    pub fn new(source: &str, metrics: Arc<Metrics>, resilience: Arc<Resilience>) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(2))
            // The services close a connection idle for 5 s (`ConnLimits`);
            // a call written to a pooled connection just as crm-api closes
            // it would fail for nothing. Idle connections go first here.
            .pool_idle_timeout(Duration::from_secs(2))
            // Says who calls: the mocks' journals (and a harness's sequence
            // diagram) read the caller from it.
            .user_agent(format!("tekup-service/{source}"))
            .build()
            .expect("a client with default TLS settings builds");
        Self {
            http,
            source: source.into(),
            metrics,
            resilience,
        }
    }

    /// Uses `http` (e.g. with other timeouts or a test CA) for the calls.
    #[must_use]
    pub fn with_client(mut self, http: reqwest::Client) -> Self {
        self.http = http;
        self
    }

    /// The reqwest client to build requests with.
    pub fn client(&self) -> &reqwest::Client {
        &self.http
    }

    pub fn resilience(&self) -> &Resilience {
        &self.resilience
    }

    /// Sends `request` to `target` (the name in metrics and breaker, e.g.
    /// `crm-api`, `stripe`); retries per the policy. A non-2xx answer is
    /// returned as is (after retries), for the caller to interpret.
    ///
    /// # Errors
    /// [`HttpError`] when the breaker refused the call, the request could
    /// not be built, or no answer came in any attempt.
    /// `operation` is the span's `tekup.operation` (`stripe.customers.create`).
    pub async fn send(
        &self,
        target: &str,
        operation: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<Response, HttpError> {
        self.send_as(target, || operation, None, request, None)
            .await
    }

    /// Like [`send`](Self::send), retrying every transient failure even for a
    /// POST, which the caller vouches is safe to repeat.
    ///
    /// # Errors
    /// See [`send`](Self::send).
    pub async fn send_idempotent(
        &self,
        target: &str,
        operation: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<Response, HttpError> {
        self.send_as(
            target,
            || operation,
            None,
            request,
            Some(Idempotency::Idempotent),
        )
        .await
    }

    /// [`send`](Self::send) with the operation named only when a span
    /// records it, for `tenant`.
    pub(crate) async fn send_as<O: std::fmt::Display>(
        &self,
        target: &str,
        operation: impl FnOnce() -> O,
        tenant: Option<&str>,
        request: reqwest::RequestBuilder,
        idempotency: Option<Idempotency>,
    ) -> Result<Response, HttpError> {
        let request = request.build().map_err(|source| HttpError::Build {
            target: target.to_owned(),
            source,
        })?;
        let idempotency = idempotency.unwrap_or_else(|| idempotency_of(&request));
        let span = crate::telemetry::client(
            &self.source,
            target,
            request.method().as_str(),
            operation,
            request.url().host_str(),
            tenant,
        );
        let result = self
            .attempts(target, request, idempotency, &span)
            .instrument(span.clone())
            .await;
        if !span.is_disabled() {
            match &result {
                Ok(response) => {
                    span.record(
                        "http.response.status_code",
                        i64::from(response.status().as_u16()),
                    );
                    if response.status().is_server_error() {
                        crate::telemetry::fail(&span, response.status());
                    }
                }
                Err(e) => crate::telemetry::fail(&span, crate::error::chain(e)),
            }
        }
        result
    }

    async fn attempts(
        &self,
        target: &str,
        request: Request,
        idempotency: Idempotency,
        span: &tracing::Span,
    ) -> Result<Response, HttpError> {
        let context = RequestContext::current();
        let traceparent = crate::telemetry::traceparent_of(span).map(|t| t.header());
        let mut original = Some(request);
        let result = self
            .resilience
            .run(target, idempotency, |_| {
                // A body that cannot be cloned (a stream) is sent once: the
                // first attempt takes the original, later ones get nothing.
                let attempt = original
                    .as_ref()
                    .and_then(Request::try_clone)
                    .or_else(|| original.take());
                let context = context.clone();
                let traceparent = traceparent
                    .clone()
                    .or_else(|| context.as_ref().map(RequestContext::outgoing_traceparent));
                async move {
                    let Some(mut request) = attempt else {
                        return Sent(self.http.execute(unrepeatable()).await);
                    };
                    let headers = request.headers_mut();
                    if let Some(ctx) = &context {
                        if let Ok(v) = HeaderValue::from_str(&ctx.correlation_id) {
                            headers.insert(CORRELATION_ID, v);
                        }
                    }
                    if let Some(v) = traceparent.and_then(|t| HeaderValue::from_str(&t).ok()) {
                        headers.insert(TRACEPARENT, v);
                    }
                    let started = Instant::now();
                    let result = self.http.execute(request).await;
                    self.record(target, result.as_ref().ok(), started.elapsed());
                    Sent(result)
                }
            })
            .await;
        match result {
            Ok(Sent(Ok(response))) => Ok(response),
            Ok(Sent(Err(source))) if source.is_builder() => Err(HttpError::Build {
                target: target.to_owned(),
                source,
            }),
            Ok(Sent(Err(source))) => Err(HttpError::Unreachable {
                target: target.to_owned(),
                source,
            }),
            Err(open) => {
                self.count(target, "circuit_open");
                Err(open.into())
            }
        }
    }

    fn record(&self, target: &str, response: Option<&Response>, elapsed: Duration) {
        self.metrics
            .cross_app_duration
            .get_or_create(&RouteLabels {
                source: self.source.to_string(),
                target: target.to_owned(),
            })
            .observe(elapsed.as_secs_f64());
        match response {
            Some(r) => self.count(target, r.status().as_str()),
            None => self.count(target, "error"),
        }
    }

    fn count(&self, target: &str, status: &str) {
        self.metrics
            .cross_app_requests
            .get_or_create(&CrossAppLabels {
                source: self.source.to_string(),
                target: target.to_owned(),
                status: status.to_owned(),
            })
            .inc();
    }
}

/// A request whose sending fails as a builder error: stands in for a
/// streaming body that cannot be sent a second time.
fn unrepeatable() -> Request {
    Request::new(
        Method::GET,
        "unrepeatable:".parse().expect("a valid URL literal"),
    )
}

/// GET, HEAD, PUT, DELETE, OPTIONS, and requests with an `Idempotency-Key`
/// may be repeated; anything else only when it was certainly not processed.
fn idempotency_of(request: &Request) -> Idempotency {
    let method = request.method();
    let safe = [
        Method::GET,
        Method::HEAD,
        Method::PUT,
        Method::DELETE,
        Method::OPTIONS,
    ];
    if safe.contains(method) || request.headers().contains_key("idempotency-key") {
        Idempotency::Idempotent
    } else {
        Idempotency::NotIdempotent
    }
}
