//! The HTTP surface every service shares: health, metrics, admin, error
//! normalisation, correlation ids; and [`app`] / [`serve`].
//!
//! [`serve`] runs its own accept loop over hyper's HTTP/1 connections
//! rather than `axum::serve`, for one reason: a bound on how long a client
//! may hold a connection without finishing a request. `axum::serve` sets no
//! timer, so a client sending a header one byte a minute (or nothing at all)
//! keeps a connection and its task forever. Hyper's header-read timer starts
//! when a connection waits for a request header and restarts after each
//! response, so the one bound covers both a slow header and an idle
//! connection. HTTP/2 is not offered: no client of the platform speaks it
//! without TLS, and version detection would read the first bytes untimed.

use std::future::Future;
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tracing::Instrument;

use crate::context::RequestContext;
use crate::error::{error_response, ApiError, ApiResult};
use crate::metrics::{method_label, HttpLabels, HttpRouteLabels, UNMATCHED_ROUTE};
use crate::state::{AppState, ServiceName};
use crate::tenants::{self, NewTenant, TenantError};

pub const CORRELATION_ID: &str = "x-correlation-id";

/// The router of `state.service`, with the shared endpoints and middleware.
pub fn app(state: AppState) -> Router {
    let routes = match state.service {
        ServiceName::FlowApi => crate::flow::routes(),
        ServiceName::CrmApi => crate::crm::routes(),
        ServiceName::SecurePlatform => crate::secure::routes(),
        ServiceName::Gateway => crate::gateway::routes(),
        ServiceName::Worker => Router::new(),
    };
    // The token is checked before the body is read: a caller without it
    // learns nothing of how the body is parsed (a 401, not a 400 or 422).
    let create_tenant_route = if crate::defects::active("input-admin-body-first") {
        post(create_tenant)
    } else {
        post(create_tenant).route_layer(middleware::from_fn_with_state(state.clone(), admin_first))
    };
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/admin/tenants", create_tenant_route)
        .route("/admin/queues", get(queue_stats))
        .route("/admin/breakers", get(breaker_states))
        .route("/openapi.json", get(openapi_document))
        .merge(routes)
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(state.max_body_bytes))
        .layer(middleware::from_fn_with_state(state.clone(), correlate))
        .with_state(state)
}

/// How long a client may hold a connection without a complete request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnLimits {
    /// A request header not complete within this closes the connection;
    /// the same timer bounds a connection idle before or between requests.
    pub header_read: Duration,
}

impl Default for ConnLimits {
    /// 5 s: far more than any client on a network needs to send a header,
    /// short enough that idle and slow-header connections do not pile up.
    fn default() -> Self {
        Self {
            header_read: Duration::from_secs(5),
        }
    }
}

/// How much of a request the client is still sending a closing connection
/// reads and throws away, and for how long at most (see [`Lingering`]).
const LINGER_BYTES: usize = 4 << 20;
const LINGER_FOR: Duration = Duration::from_secs(2);

/// A connection's stream that closes the way a client can read an early
/// answer.
///
/// A server that answers before it has read the whole request (413 for a
/// body over the limit, 401 before a large upload) and then closes the
/// socket with the rest of the request unread makes the kernel send a
/// reset instead of an orderly close; a reset makes the peer drop what it
/// had received and not yet read, the answer included, so the client sees
/// "connection reset" instead of the 413. On loopback the answer usually
/// wins the race; through a proxy or a TLS front it usually loses. So on
/// close this sends its FIN, then reads and discards what the client still
/// sends (up to [`LINGER_BYTES`], for at most [`LINGER_FOR`]) before the
/// socket is dropped: the "lingering close" of HTTP/1.1 servers.
struct Lingering<S> {
    inner: S,
    drain: Option<(usize, std::pin::Pin<Box<tokio::time::Sleep>>)>,
}

impl<S> Lingering<S> {
    fn new(inner: S) -> Self {
        Self { inner, drain: None }
    }
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Lingering<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite
    for Lingering<S>
{
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use std::task::Poll;
        let this = &mut *self;
        if this.drain.is_none() {
            std::task::ready!(std::pin::Pin::new(&mut this.inner).poll_shutdown(cx))?;
            this.drain = Some((LINGER_BYTES, Box::pin(tokio::time::sleep(LINGER_FOR))));
        }
        let Some((left, deadline)) = this.drain.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        let mut scratch = [0u8; 16 * 1024];
        loop {
            if deadline.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Ok(()));
            }
            let mut buf = tokio::io::ReadBuf::new(&mut scratch);
            match std::pin::Pin::new(&mut this.inner).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if buf.filled().is_empty() => return Poll::Ready(Ok(())),
                Poll::Ready(Ok(())) => {
                    *left = left.saturating_sub(buf.filled().len());
                    if *left == 0 {
                        return Poll::Ready(Ok(()));
                    }
                }
                Poll::Ready(Err(_)) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then drains,
/// with the default [`ConnLimits`].
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, router, shutdown, ConnLimits::default()).await
}

/// [`serve`] with `limits`. On `shutdown` it stops accepting, lets each
/// connection finish its request in flight, and returns when all are closed.
pub async fn serve_with(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    limits: ConnLimits,
) -> std::io::Result<()> {
    if crate::defects::active("no-conn-timeouts") {
        // Deliberate defect: no timer, so slow-header and idle connections
        // are never closed.
        return axum::serve(listener, router)
            .with_graceful_shutdown(shutdown)
            .await;
    }
    let (drain, draining) = tokio::sync::watch::channel(false);
    let (open, open_rx) = tokio::sync::watch::channel(());
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of descriptors, or a connection reset before it
                    // was accepted: keep serving the others.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let service = hyper_util::service::TowerToHyperService::new(router.clone());
        let mut draining = draining.clone();
        let still_open = open_rx.clone();
        tokio::spawn(async move {
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(limits.header_read)
                .serve_connection(
                    hyper_util::rt::TokioIo::new(Lingering::new(stream)),
                    service,
                )
                .with_upgrades();
            tokio::pin!(connection);
            let mut asked = false;
            loop {
                tokio::select! {
                    result = connection.as_mut() => {
                        if let Err(e) = result {
                            tracing::debug!(error = %e, "connection ended");
                        }
                        break;
                    }
                    _ = draining.changed(), if !asked => {
                        asked = true;
                        connection.as_mut().graceful_shutdown();
                    }
                }
            }
            drop(still_open);
        });
    }
    drop(listener);
    let _ = drain.send(true);
    drop(open_rx);
    open.closed().await;
    Ok(())
}

/// The endpoints every service shares, for the OpenAPI documents (see
/// [`crate::openapi`]).
#[derive(Debug, utoipa::OpenApi)]
#[openapi(paths(
    health,
    metrics,
    openapi_document,
    create_tenant,
    queue_stats,
    breaker_states
))]
pub(crate) struct SharedApi;

/// `GET /health`: 200 when the database (and Redis, when configured)
/// answer, else 503 naming what does not.
#[utoipa::path(
    get,
    path = "/health",
    operation_id = "health",
    tag = "platform",
    responses(
        (status = 200, description = "`status` `ok`, `service`, `database` (and `redis`) `ok`", body = Object),
        (status = 503, description = "`status` `degraded`, naming what does not answer", body = Object),
    ),
)]
async fn health(State(state): State<AppState>) -> Response {
    let database = match sqlx::query("SELECT 1").execute(&state.db).await {
        Ok(_) => "ok",
        Err(e) => {
            tracing::warn!(error = %e, "health check: database unreachable");
            "unreachable"
        }
    };
    let redis = match &state.queues {
        None => None,
        Some(queues) => Some(match queues.ping().await {
            Ok(()) => "ok",
            Err(e) => {
                tracing::warn!(error = %e, "health check: redis unreachable");
                "unreachable"
            }
        }),
    };
    let healthy = database == "ok" && redis.is_none_or(|r| r == "ok");
    let mut body = json!({
        "status": if healthy { "ok" } else { "degraded" },
        "service": state.service.as_str(),
        "database": database,
    });
    if let Some(redis) = redis {
        body["redis"] = json!(redis);
    }
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

/// Prometheus metrics
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    tag = "platform",
    responses((status = 200, description = "the service's metrics, in the OpenMetrics text format",
        content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8", body = String)),
)]
async fn metrics(State(state): State<AppState>) -> Response {
    refresh_breakers(&state);
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

/// This service's OpenAPI document
#[utoipa::path(
    get,
    path = "/openapi.json",
    operation_id = "openapi",
    tag = "platform",
    responses(
        (status = 200, description = "the OpenAPI 3.1 document of the service", body = Object),
        (status = 404, description = "the service has no document (the worker)", body = crate::openapi::Error),
    ),
)]
async fn openapi_document(State(state): State<AppState>) -> Response {
    match crate::openapi::served(state.service) {
        Some(text) => ([(header::CONTENT_TYPE, "application/json")], text).into_response(),
        None => {
            ApiError::NotFound(format!("{} has no OpenAPI document", state.service)).into_response()
        }
    }
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such endpoint".into())
}

/// `POST /admin/tenants`: a fresh tenant with API keys (the harness makes
/// one per scenario run). Off unless an admin token is configured.
#[utoipa::path(
    post,
    path = "/admin/tenants",
    operation_id = "createTenant",
    tag = "admin",
    request_body(content = NewTenant, example = json!({ "name": "Example Co", "rateLimitPerMinute": 600, "keys": 1 })),
    responses(
        (status = 201, description = "the tenant, with its API keys in clear (shown once)", body = tenants::CreatedTenant),
        (status = 404, description = "admin endpoints are disabled (no admin token configured)", body = crate::openapi::Error),
    ),
    security(("adminToken" = [])),
)]
async fn create_tenant(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(new): Json<NewTenant>,
) -> ApiResult<(StatusCode, Json<tenants::CreatedTenant>)> {
    require_admin(&state, &headers)?;
    let mut new = new;
    if let Some(name) = &new.name {
        new.name = Some(crate::validate::name("name", name, 200)?);
    }
    for app in new.allowed_apps.iter().flatten() {
        crate::validate::no_control("allowedApps", app)?;
    }
    match tenants::create_tenant(&state.db, new).await {
        Ok(created) => Ok((StatusCode::CREATED, Json(created))),
        Err(TenantError::Invalid(message)) => Err(ApiError::Validation(message)),
        Err(TenantError::Database(e)) => Err(ApiError::from(e)),
        Err(e) => Err(ApiError::internal(e)),
    }
}

/// Runs the request on only with the admin token, before its extractors.
async fn admin_first(State(state): State<AppState>, request: Request, next: Next) -> Response {
    match require_admin(&state, request.headers()) {
        Ok(()) => next.run(request).await,
        Err(e) => e.into_response(),
    }
}

/// Refuses unless the request carries the admin bearer token.
fn require_admin(state: &AppState, headers: &HeaderMap) -> ApiResult<()> {
    let Some(expected) = state.admin_token.as_deref() else {
        return Err(ApiError::NotFound(
            "admin endpoints are disabled (no ADMIN_TOKEN)".into(),
        ));
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if bool::from(presented.as_bytes().ct_eq(expected.as_bytes())) {
        Ok(())
    } else {
        Err(ApiError::Unauthenticated("invalid admin token".into()))
    }
}

/// `GET /admin/queues`: every queue's size, in-flight, retrying, dead and
/// processed counts, with the last dead letters and their errors.
#[utoipa::path(
    get,
    path = "/admin/queues",
    operation_id = "queueStats",
    tag = "admin",
    responses(
        (status = 200, description = "`queues`: each queue's counts and last dead letters", body = Object),
        (status = 404, description = "admin endpoints are disabled, or the service has no queues", body = crate::openapi::Error),
    ),
    security(("adminToken" = [])),
)]
async fn queue_stats(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> ApiResult<Json<serde_json::Value>> {
    require_admin(&state, &headers)?;
    let Some(queues) = &state.queues else {
        return Err(ApiError::NotFound(
            "this service has no queues (no REDIS_URL)".into(),
        ));
    };
    let stats = queues.stats().await?;
    let mut out = Vec::with_capacity(stats.len());
    for s in stats {
        let queue = crate::queue::QueueName::parse(s.name).expect("stats name a known queue");
        let dead: Vec<serde_json::Value> = queues
            .dead_letters(queue, 10)
            .await?
            .into_iter()
            .map(|(job, error)| json!({ "job": job, "error": error }))
            .collect();
        let mut entry = serde_json::to_value(&s).map_err(ApiError::internal)?;
        entry["lastDeadLetters"] = serde_json::Value::Array(dead);
        out.push(entry);
    }
    Ok(Json(json!({ "queues": out })))
}

/// Brings every breaker up to date with the clock before its state is
/// shown (see [`crate::resilience::Resilience::refresh`]): an open breaker
/// whose time passed reads half-open, in `/metrics` too, without waiting
/// for a call. One [`Resilience`](crate::resilience::Resilience) per
/// service holds every breaker: the cross-app client, the external APIs'
/// clients and the worker all send through `state.http`.
fn refresh_breakers(state: &AppState) {
    if crate::defects::active("breaker-gauge-stale") {
        // Deliberate defect: the breakers keep what they last recorded, so
        // an open one reads open until a call comes, however long that is.
        return;
    }
    state.http.resilience().refresh();
}

/// One entry of `GET /admin/breakers`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct BreakerEntry {
    /// The called service or external API (`crm-api`, `stripe`).
    target: String,
    #[schema(schema_with = crate::openapi::fields::breaker_state)]
    state: &'static str,
    /// While open: whole seconds (rounded up) until probes are let through.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    retry_in_secs: Option<u64>,
}

/// The answer of `GET /admin/breakers`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
struct BreakerList {
    /// One per target this service has called, by target.
    breakers: Vec<BreakerEntry>,
}

/// `GET /admin/breakers`: the circuit breaker of every target this service
/// has called, read as `/metrics` reads them (an open breaker whose time
/// passed is half-open).
#[utoipa::path(
    get,
    path = "/admin/breakers",
    operation_id = "breakerStates",
    tag = "admin",
    responses(
        (status = 200, description = "`breakers`: each target's state, and while open the seconds until probes are let through", body = BreakerList),
        (status = 404, description = "admin endpoints are disabled (no admin token configured)", body = crate::openapi::Error),
    ),
    security(("adminToken" = [])),
)]
async fn breaker_states(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> ApiResult<Json<BreakerList>> {
    require_admin(&state, &headers)?;
    let stale = crate::defects::active("breaker-gauge-stale");
    let breakers = state
        .http
        .resilience()
        .breakers()
        .iter()
        .map(|breaker| {
            // The defect reads what the breaker last recorded (see
            // `refresh_breakers`).
            let status = if stale {
                breaker.recorded_status()
            } else {
                breaker.status()
            };
            BreakerEntry {
                target: breaker.target().to_owned(),
                state: status.state.as_str(),
                retry_in_secs: status.retry_in.map(crate::resilience::seconds_rounded_up),
            }
        })
        .collect();
    Ok(Json(BreakerList { breakers }))
}

/// Scopes the request context, logs and counts the request, and turns
/// every non-JSON error (axum's own rejections, 405s) into the JSON error shape.
///
/// The request's OpenTelemetry server span (see [`crate::telemetry`])
/// continues the incoming `traceparent`, and the context takes its ids.
async fn correlate(State(state): State<AppState>, request: Request, next: Next) -> Response {
    // Labels from bounded sets only (see `crate::metrics`).
    let method = method_label(request.method());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| UNMATCHED_ROUTE.to_owned(), |p| p.as_str().to_owned());
    let server = crate::telemetry::server(state.service, &method, &route);
    let ctx = {
        let header = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok());
        RequestContext::traced(
            server.clone(),
            header(CORRELATION_ID),
            header(crate::client::TRACEPARENT),
        )
        .in_service(state.service.as_str())
    };
    let span = tracing::info_span!("request", method, route, correlation_id = %ctx.correlation_id);
    let started = Instant::now();
    let mut response = ctx
        .clone()
        .scope(async move {
            let response = next.run(request).await;
            normalise_error(response).await
        })
        .instrument(span.clone())
        .instrument(server.clone())
        .await;
    let status = response.status();
    if !server.is_disabled() {
        server.record("http.response.status_code", i64::from(status.as_u16()));
        if status.is_server_error() {
            crate::telemetry::fail(&server, status);
        }
    }
    if let Ok(value) = HeaderValue::from_str(&ctx.correlation_id) {
        response.headers_mut().insert(CORRELATION_ID, value);
    }
    let elapsed = started.elapsed();
    state
        .metrics
        .http_duration
        .get_or_create(&HttpRouteLabels {
            method: method.clone(),
            route: route.clone(),
        })
        .observe(elapsed.as_secs_f64());
    state
        .metrics
        .http_requests
        .get_or_create(&HttpLabels {
            method,
            route,
            status: status.as_u16(),
        })
        .inc();
    let elapsed_ms = elapsed.as_secs_f64() * 1000.0;
    span.in_scope(|| {
        if status.is_server_error() {
            tracing::warn!(status = status.as_u16(), elapsed_ms, "request done");
        } else {
            tracing::debug!(status = status.as_u16(), elapsed_ms, "request done");
        }
    });
    response
}

async fn normalise_error(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let message = if status.is_server_error() || text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_owned()
    } else {
        text
    };
    let mut normalised = error_response(status, &message);
    for name in [header::ALLOW, header::RETRY_AFTER] {
        if let Some(value) = parts.headers.get(&name) {
            normalised.headers_mut().insert(name, value.clone());
        }
    }
    normalised
}
