//! Per-request context carried across `.await`s: correlation id and trace.
//!
//! The HTTP middleware ([`crate::http`]) scopes a [`RequestContext`] around
//! each request, and the worker one around each job; error bodies, log
//! lines, outgoing calls, jobs and events read it from here instead of
//! threading it through every function.
//!
//! With OpenTelemetry on (see [`crate::telemetry`]) the context's trace and
//! span ids are those of its OpenTelemetry span (the request's server span,
//! the job's consumer span), which continues the incoming `traceparent`;
//! without it, the trace id is kept from the incoming `traceparent` (or
//! made up) and nothing is recorded.

use std::sync::{Arc, OnceLock};

use rand::Rng;
use uuid::Uuid;

tokio::task_local! {
    static CURRENT: RequestContext;
}

/// Identity of one request as it travels through the platform.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub correlation_id: String,
    /// W3C trace id (32 hex digits): the OpenTelemetry span's when one is
    /// recorded, else kept from an incoming `traceparent`.
    pub trace_id: String,
    /// This hop's span id (16 hex digits).
    pub span_id: String,
    /// Whether the incoming or recorded trace is sampled (the
    /// `traceparent` flag `01`).
    pub sampled: bool,
    /// The OpenTelemetry span of this hop (a request's server span, a
    /// job's consumer span); disabled when no OpenTelemetry layer listens.
    pub span: tracing::Span,
    /// The service handling it, once known.
    pub service: Option<&'static str>,
    /// Tenant and app of the caller, once authenticated (shared by clones).
    caller: Arc<OnceLock<Caller>>,
}

/// Who a request is for: set once, when it is authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub tenant_id: String,
    pub app: Option<String>,
}

/// A parsed W3C `traceparent` (version 00).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub sampled: bool,
}

impl TraceParent {
    /// Parses a valid version-00 `traceparent`; `None` for anything else
    /// (other versions, all-zero ids, wrong lengths, non-hex digits).
    pub fn parse(value: &str) -> Option<Self> {
        let mut parts = value.trim().split('-');
        let (version, trace, span, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if version != "00" || parts.next().is_some() {
            return None;
        }
        let trace_id: [u8; 16] = hex::decode(trace).ok()?.try_into().ok()?;
        let span_id: [u8; 8] = hex::decode(span).ok()?.try_into().ok()?;
        let flags: [u8; 1] = hex::decode(flags).ok()?.try_into().ok()?;
        if trace_id == [0; 16] || span_id == [0; 8] {
            return None;
        }
        Some(Self {
            trace_id,
            span_id,
            sampled: flags[0] & 1 == 1,
        })
    }

    /// The header value: `00-<trace id>-<span id>-<flags>`.
    pub fn header(&self) -> String {
        format!(
            "00-{}-{}-{}",
            hex::encode(self.trace_id),
            hex::encode(self.span_id),
            if self.sampled { "01" } else { "00" }
        )
    }
}

impl RequestContext {
    /// Builds the context of an incoming request from its headers' values,
    /// without an OpenTelemetry span.
    pub fn incoming(correlation_id: Option<&str>, traceparent: Option<&str>) -> Self {
        Self::traced(tracing::Span::none(), correlation_id, traceparent)
    }

    /// Builds the context of a hop recorded as `span`: the span continues
    /// the trace of `traceparent` (a new trace without a valid one), and
    /// the context takes its ids. With `span` disabled this is
    /// [`incoming`](Self::incoming).
    pub fn traced(
        span: tracing::Span,
        correlation_id: Option<&str>,
        traceparent: Option<&str>,
    ) -> Self {
        let correlation_id = correlation_id
            .filter(|c| !c.is_empty() && c.len() <= 128 && c.bytes().all(|b| b.is_ascii_graphic()))
            .map_or_else(|| Uuid::new_v4().to_string(), str::to_owned);
        let remote = traceparent.and_then(TraceParent::parse);
        let ids = crate::telemetry::continue_trace(&span, remote.as_ref());
        let (trace_id, span_id, sampled) = match (ids, remote) {
            (Some(own), _) => (
                hex::encode(own.trace_id),
                hex::encode(own.span_id),
                own.sampled,
            ),
            (None, Some(remote)) => (hex::encode(remote.trace_id), random_hex(8), remote.sampled),
            (None, None) => (random_hex(16), random_hex(8), true),
        };
        if !span.is_disabled() {
            span.record("tekup.correlation_id", correlation_id.as_str());
        }
        Self {
            correlation_id,
            trace_id,
            span_id,
            sampled,
            span,
            service: None,
            caller: Arc::default(),
        }
    }

    /// This context, handled by `service`.
    #[must_use]
    pub fn in_service(mut self, service: &'static str) -> Self {
        self.service = Some(service);
        self
    }

    /// This context, for `tenant_id` (a job's tenant: known from the start).
    #[must_use]
    pub fn for_tenant(self, tenant_id: &str) -> Self {
        let _ = self.caller.set(Caller {
            tenant_id: tenant_id.to_owned(),
            app: None,
        });
        self
    }

    /// The `traceparent` header for an outgoing call made by this hop
    /// without a span of its own: this trace, a fresh span id.
    pub fn outgoing_traceparent(&self) -> String {
        format!(
            "00-{}-{}-{}",
            self.trace_id,
            random_hex(8),
            if self.sampled { "01" } else { "00" }
        )
    }

    /// The authenticated caller, if known yet.
    pub fn caller(&self) -> Option<&Caller> {
        self.caller.get()
    }

    /// Records the authenticated caller of the current request (the first
    /// one wins): on its span (`tekup.tenant_id`, `tekup.source_app`) and for
    /// the spans the request makes later.
    pub fn set_caller(tenant_id: &str, app: Option<&str>) {
        let _ = CURRENT.try_with(|ctx| {
            let caller = Caller {
                tenant_id: tenant_id.to_owned(),
                app: app.map(str::to_owned),
            };
            if ctx.caller.set(caller).is_ok() && !ctx.span.is_disabled() {
                ctx.span.record("tekup.tenant_id", tenant_id);
                if let Some(app) = app {
                    ctx.span.record("tekup.source_app", app);
                }
            }
        });
    }

    /// Runs `f` with this context as the current one.
    pub async fn scope<F: std::future::Future>(self, f: F) -> F::Output {
        CURRENT.scope(self, f).await
    }

    /// Spawns `f` as part of the current request, if inside one: with its
    /// context, inside its hop's span and the current span, as the
    /// request's own future runs (see `crate::http`), so that the spans `f`
    /// opens join the request's trace. A task of its own runs on when the
    /// request's future is dropped (its client hung up).
    pub fn spawn<F>(f: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        use tracing::Instrument as _;
        let current = tracing::Span::current();
        match Self::current() {
            Some(ctx) => {
                let hop = ctx.span.clone();
                tokio::spawn(ctx.scope(f).instrument(current).instrument(hop))
            }
            None => tokio::spawn(f.instrument(current)),
        }
    }

    /// The current request's context, if inside one.
    pub fn current() -> Option<Self> {
        CURRENT.try_with(Clone::clone).ok()
    }

    /// Runs `f` on the current request's context without cloning it.
    pub fn with_current<T>(f: impl FnOnce(&Self) -> T) -> Option<T> {
        CURRENT.try_with(f).ok()
    }
}

fn random_hex(bytes: usize) -> String {
    let mut rng = rand::thread_rng();
    (0..bytes)
        .map(|_| format!("{:02x}", rng.gen::<u8>()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_valid_traceparent_keeps_its_trace_id() {
        let ctx = RequestContext::incoming(
            Some("abc"),
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        );
        assert_eq!(ctx.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(ctx.correlation_id, "abc");
        let out = ctx.outgoing_traceparent();
        assert!(
            out.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
            "{out}"
        );
        assert_ne!(&out[36..52], "00f067aa0ba902b7");
        assert!(out.ends_with("-01"), "{out}");
    }

    #[test]
    fn a_traceparent_round_trips_and_keeps_its_sampled_flag() {
        let header = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
        let parsed = TraceParent::parse(header).expect("valid");
        assert!(!parsed.sampled);
        assert_eq!(parsed.header(), header);
        let ctx = RequestContext::incoming(None, Some(header));
        assert!(ctx.outgoing_traceparent().ends_with("-00"));
    }

    #[test]
    fn invalid_inputs_are_replaced() {
        for bad in [
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "garbage",
        ] {
            let ctx = RequestContext::incoming(Some("has space"), Some(bad));
            assert_ne!(ctx.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736", "{bad}");
            assert_eq!(ctx.trace_id.len(), 32);
            assert_ne!(ctx.correlation_id, "has space");
        }
    }
}
