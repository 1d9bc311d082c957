//! Per-request context carried across `.await`s: correlation id and trace.
//!
//! The HTTP middleware ([`crate::http`]) scopes a [`RequestContext`] around
//! each request; error bodies, log lines and outgoing calls read it from here
//! instead of threading it through every function.

use rand::Rng;
use uuid::Uuid;

tokio::task_local! {
    static CURRENT: RequestContext;
}

/// Identity of one request as it travels through the platform.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub correlation_id: String,
    /// W3C trace id (32 hex digits), kept from an incoming `traceparent`.
    pub trace_id: String,
    /// This hop's span id (16 hex digits).
    pub span_id: String,
}

impl RequestContext {
    /// Builds the context of an incoming request from its headers' values.
    pub fn incoming(correlation_id: Option<&str>, traceparent: Option<&str>) -> Self {
        let correlation_id = correlation_id
            .filter(|c| !c.is_empty() && c.len() <= 128 && c.bytes().all(|b| b.is_ascii_graphic()))
            .map_or_else(|| Uuid::new_v4().to_string(), str::to_owned);
        let trace_id = traceparent
            .and_then(parse_traceparent)
            .unwrap_or_else(|| random_hex(16));
        Self {
            correlation_id,
            trace_id,
            span_id: random_hex(8),
        }
    }

    /// The `traceparent` header for an outgoing call made by this hop.
    pub fn outgoing_traceparent(&self) -> String {
        format!("00-{}-{}-01", self.trace_id, random_hex(8))
    }

    /// Runs `f` with this context as the current one.
    pub async fn scope<F: std::future::Future>(self, f: F) -> F::Output {
        CURRENT.scope(self, f).await
    }

    /// The current request's context, if inside one.
    pub fn current() -> Option<Self> {
        CURRENT.try_with(Clone::clone).ok()
    }
}

/// Returns the trace id of a valid version-00 `traceparent`.
fn parse_traceparent(value: &str) -> Option<String> {
    let mut parts = value.trim().split('-');
    let (version, trace, span, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    let valid = version == "00"
        && parts.next().is_none()
        && hex(trace, 32)
        && hex(span, 16)
        && hex(flags, 2)
        && trace.bytes().any(|b| b != b'0')
        && span.bytes().any(|b| b != b'0');
    valid.then(|| trace.to_ascii_lowercase())
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
