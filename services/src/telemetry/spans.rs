//! The spans and span events of the contract's table, one constructor each.
//!
//! Every field is declared when the span is made (`tracing` cannot add
//! fields later) and filled in only when the span is enabled; the macros
//! evaluate no field value for a disabled span.

use std::fmt::Display;

use tracing::field::Empty;
use tracing::Span;

use super::TARGET;
use crate::context::RequestContext;
use crate::events::CrossAppEvent;
use crate::queue::Job;

/// Fills `tekup.tenant_id` and `tekup.correlation_id` from the current
/// request or job, unless the span is disabled or has them already.
fn from_context(span: &Span, tenant: Option<&str>) {
    if span.is_disabled() {
        return;
    }
    if let Some(tenant) = tenant {
        span.record("tekup.tenant_id", tenant);
    }
    RequestContext::with_current(|ctx| {
        span.record("tekup.correlation_id", ctx.correlation_id.as_str());
        if let (None, Some(caller)) = (tenant, ctx.caller()) {
            span.record("tekup.tenant_id", caller.tenant_id.as_str());
        }
    });
}

/// The server span of an incoming request to `service`: `{METHOD} {route}`,
/// `tekup.operation` the route's `operationId`. Its parent is set from the
/// request's `traceparent` by [`RequestContext::traced`]; the caller and
/// the status are recorded as they become known.
pub fn server(service: crate::state::ServiceName, method: &str, route: &str) -> Span {
    tracing::info_span!(
        target: TARGET,
        "server",
        otel.name = %format_args!("{method} {route}"),
        otel.kind = "server",
        otel.status_code = Empty,
        otel.status_description = Empty,
        tekup.operation = %super::operations::served(service, method, route),
        tekup.tenant_id = Empty,
        tekup.source_app = Empty,
        tekup.target_app = service.as_str(),
        tekup.correlation_id = Empty,
        http.request.method = method,
        http.route = route,
        http.response.status_code = Empty,
    )
}

/// A call from `source` to `target` (a service or an external API):
/// `{METHOD} {target}`. `operation` is asked only for an enabled span.
pub fn client<O: Display>(
    source: &str,
    target: &str,
    method: &str,
    operation: impl FnOnce() -> O,
    address: Option<&str>,
    tenant: Option<&str>,
) -> Span {
    let span = tracing::info_span!(
        target: TARGET,
        "client",
        otel.name = %format_args!("{method} {target}"),
        otel.kind = "client",
        otel.status_code = Empty,
        otel.status_description = Empty,
        tekup.operation = %operation(),
        tekup.tenant_id = Empty,
        tekup.source_app = source,
        tekup.target_app = target,
        tekup.correlation_id = Empty,
        server.address = address,
        http.request.method = method,
        http.response.status_code = Empty,
    );
    from_context(&span, tenant);
    span
}

/// Enqueueing `job` (by the service `source`): `enqueue {queue}`.
pub fn producer_job(job: &Job, source: Option<&str>) -> Span {
    let span = tracing::info_span!(
        target: TARGET,
        "enqueue",
        otel.name = %format_args!("enqueue {}", job.queue.as_str()),
        otel.kind = "producer",
        otel.status_code = Empty,
        otel.status_description = Empty,
        tekup.operation = %format_args!("enqueue.{}", job.kind),
        tekup.tenant_id = job.tenant_id.as_str(),
        tekup.source_app = source,
        tekup.target_app = "worker",
        tekup.correlation_id = job.correlation_id.as_deref(),
        messaging.destination.name = job.queue.as_str(),
        tekup.job.id = %job.id,
        tekup.job.kind = job.kind.as_str(),
    );
    if job.correlation_id.is_none() {
        from_context(&span, Some(&job.tenant_id));
    }
    span
}

/// One attempt at `job` by the worker: `process {kind}`. Its parent is set
/// from the job's `traceparent` by [`RequestContext::traced`].
pub fn consumer(job: &Job) -> Span {
    tracing::info_span!(
        target: TARGET,
        "process",
        otel.name = %format_args!("process {}", job.kind),
        otel.kind = "consumer",
        otel.status_code = Empty,
        otel.status_description = Empty,
        tekup.operation = %format_args!("process.{}", job.kind),
        tekup.tenant_id = job.tenant_id.as_str(),
        tekup.source_app = Empty,
        tekup.target_app = "worker",
        tekup.correlation_id = Empty,
        messaging.destination.name = job.queue.as_str(),
        tekup.job.id = %job.id,
        tekup.job.kind = job.kind.as_str(),
        tekup.job.attempt = i64::from(job.attempt),
    )
}

/// Publishing `event` on the bus: `publish {TYPE}`.
pub fn publish(event: &CrossAppEvent) -> Span {
    let span = tracing::info_span!(
        target: TARGET,
        "publish",
        otel.name = %format_args!("publish {}", event.kind),
        otel.kind = "producer",
        otel.status_code = Empty,
        otel.status_description = Empty,
        tekup.operation = %format_args!("publish.{}", event.kind),
        tekup.tenant_id = event.tenant_id.as_str(),
        tekup.source_app = event.source.as_str(),
        tekup.target_app = "gateway",
        tekup.correlation_id = Empty,
        messaging.destination.name = crate::events::EVENTS_STREAM,
        tekup.event.id = %event.id,
        tekup.event.type = event.kind.as_str(),
    );
    from_context(&span, Some(&event.tenant_id));
    span
}

/// The gateway delivering `event` to the room of `tenant` and `app`:
/// `deliver {TYPE}`, a child of the event's `publish` span (from its
/// envelope's `traceparent`; a new trace without one).
pub fn deliver(event: &CrossAppEvent, tenant: &str, app: &str, connections: usize) -> Span {
    let span = tracing::info_span!(
        target: TARGET,
        "deliver",
        otel.name = %format_args!("deliver {}", event.kind),
        otel.kind = "consumer",
        tekup.operation = %format_args!("deliver.{}", event.kind),
        tekup.tenant_id = event.tenant_id.as_str(),
        tekup.source_app = event.source.as_str(),
        tekup.target_app = app,
        tekup.event.id = %event.id,
        tekup.event.type = event.kind.as_str(),
        tekup.room = %format_args!("tenant:{tenant}/app:{app}"),
        tekup.connections = i64::try_from(connections).unwrap_or(i64::MAX),
    );
    if !span.is_disabled() {
        let remote = event
            .traceparent
            .as_deref()
            .and_then(crate::context::TraceParent::parse);
        super::continue_trace(&span, remote.as_ref());
    }
    span
}

/// Marks `span` failed: status `ERROR` with `message`.
pub fn fail(span: &Span, message: impl Display) {
    if !span.is_disabled() {
        span.record("otel.status_code", "ERROR");
        span.record("otel.status_description", message.to_string());
    }
}

/// The event `retry` on the current span: attempt number `attempt` (2 for
/// the first retry) follows, because of `reason`.
pub fn retry(attempt: u32, reason: impl Display) {
    tracing::info!(target: TARGET, attempt = i64::from(attempt), reason = %reason, "retry");
}

/// The event `circuit_open` on the current span: the breaker of `target`
/// refused the call.
pub fn circuit_open(target: &str) {
    tracing::info!(target: TARGET, breaker = target, "circuit_open");
}

/// The event `dead_letter` on the current span: the job ran out of retries.
pub fn dead_letter(error: &str) {
    tracing::info!(target: TARGET, reason = error, "dead_letter");
}
