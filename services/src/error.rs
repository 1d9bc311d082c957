//! Errors as clients see them: `{"error":{"code","message","correlationId"}}`.
//!
//! Client mistakes are 4xx with a message naming the problem. A dependency
//! that is down or timing out (the database, Redis, another service, an
//! open circuit breaker) is a 503 with `Retry-After`, so that a client
//! that retries on 503 comes back when there is a chance; the log names
//! the dependency and the cause. Server faults, bugs, are an opaque 500
//! whose details go to the log under the request's correlation id, which
//! the body carries so the two can be matched.

use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::context::RequestContext;

/// An error a handler returns.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Validation(String),
    #[error("rate limit exceeded; retry after {retry_after_secs}s")]
    RateLimited { retry_after_secs: u64 },
    #[error("{0}")]
    Upstream(String),
    #[error("{}", .0.message)]
    Unavailable(Unavailable),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Upstream(_) => StatusCode::BAD_GATEWAY,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn internal(error: impl Into<anyhow::Error>) -> Self {
        Self::Internal(error.into())
    }

    /// `dependency` is down or timing out: a 503 whose `Retry-After` grows
    /// with how long it has been refusing ([`crate::outage`]). `cause`
    /// goes to the log only.
    pub fn unavailable(
        dependency: &str,
        message: impl Into<String>,
        cause: impl std::fmt::Display,
    ) -> Self {
        Self::Unavailable(Unavailable {
            dependency: dependency.to_owned(),
            message: message.into(),
            cause: cause.to_string(),
            retry_after: crate::outage::refusing(dependency),
        })
    }

    /// `dependency` is not configured (a missing URL or key): a 503 too,
    /// since the operator can fix it without the client changing anything,
    /// with a long `Retry-After`.
    pub fn not_configured(dependency: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        Self::Unavailable(Unavailable {
            dependency: dependency.to_owned(),
            cause: message.clone(),
            message,
            retry_after: NOT_CONFIGURED_RETRY,
        })
    }
}

/// `Retry-After` of a dependency that is not configured.
const NOT_CONFIGURED_RETRY: Duration = Duration::from_secs(300);

/// What a 503 knows: which dependency failed, why, and when to come back.
#[derive(Debug)]
pub struct Unavailable {
    /// `postgres`, `redis`, or a call target (`crm-api`, `stripe`).
    pub dependency: String,
    /// For the client.
    pub message: String,
    /// For the log: the error as the dependency's client reported it.
    pub cause: String,
    pub retry_after: Duration,
}

/// Whether a database error means the database is down or unreachable
/// (the pool cannot get a connection in time, the connection broke, the
/// server is shutting down, starting up or out of connections) rather
/// than that a statement is wrong.
pub fn database_unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => true,
        // Class 08: connection exception; 57P01..03: the server is shutting
        // down, crashed or not yet accepting connections; 53300: too many
        // connections.
        sqlx::Error::Database(e) => e.code().is_some_and(|code| {
            code.starts_with("08") || matches!(&*code, "57P01" | "57P02" | "57P03" | "53300")
        }),
        _ => false,
    }
}

/// Whether a Redis error means Redis is down, unreachable or not ready
/// (still loading its data after a restart) rather than that a command is
/// wrong.
pub fn redis_unavailable(error: &redis::RedisError) -> bool {
    use redis::ErrorKind;
    error.is_io_error()
        || error.is_connection_refusal()
        || error.is_connection_dropped()
        || error.is_timeout()
        || matches!(
            error.kind(),
            ErrorKind::BusyLoadingError
                | ErrorKind::TryAgain
                | ErrorKind::ClusterDown
                | ErrorKind::MasterDown
                | ErrorKind::ReadOnly
        )
}

impl ApiError {
    /// A dependency's error: a 503 naming `dependency` when `down` (the
    /// dependency is out, not the request wrong), else a bug (500). The
    /// deliberate defect `outage-500` takes every such error for a bug.
    fn outage_or_bug<E>(down: bool, dependency: &str, message: &str, error: E) -> Self
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        if down && !crate::defects::active("outage-500") {
            Self::unavailable(dependency, message, chain(&error))
        } else {
            Self::Internal(error.into())
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        let down = database_unavailable(&error);
        Self::outage_or_bug(
            down,
            "postgres",
            "the database is unavailable; retry later",
            error,
        )
    }
}

impl From<crate::queue::QueueError> for ApiError {
    fn from(error: crate::queue::QueueError) -> Self {
        use crate::queue::QueueError;
        let down = match &error {
            QueueError::Redis(e) => redis_unavailable(e),
            QueueError::Timeout(_) => true,
            QueueError::Codec(_) => false,
        };
        Self::outage_or_bug(
            down,
            "redis",
            "the queues are unavailable; retry later",
            error,
        )
    }
}

impl From<crate::events::EventError> for ApiError {
    fn from(error: crate::events::EventError) -> Self {
        let down = matches!(&error, crate::events::EventError::Redis(e) if redis_unavailable(e));
        Self::outage_or_bug(
            down,
            "redis",
            "the event bus is unavailable; retry later",
            error,
        )
    }
}

impl From<crate::resilience::BreakerOpen> for ApiError {
    /// The breaker knows when it will let calls through again; until then
    /// a retry is refused at once.
    fn from(open: crate::resilience::BreakerOpen) -> Self {
        Self::Unavailable(Unavailable {
            dependency: open.target.clone(),
            message: format!("{} is unavailable; retry later", open.target),
            cause: open.to_string(),
            retry_after: open.retry_in,
        })
    }
}

/// The machine-readable code of a status, used in every error body.
pub fn code_for(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::UNAUTHORIZED => "unauthenticated",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::CONFLICT => "conflict",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "validation_failed",
        StatusCode::TOO_MANY_REQUESTS => "rate_limited",
        StatusCode::BAD_GATEWAY => "upstream_failed",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        s if s.is_client_error() => "bad_request",
        _ => "internal",
    }
}

/// Builds the JSON error response for `status` and `message`.
pub fn error_response(status: StatusCode, message: &str) -> Response {
    let correlation_id = RequestContext::current().map(|c| c.correlation_id);
    let body = json!({
        "error": {
            "code": code_for(status),
            "message": message,
            "correlationId": correlation_id,
        }
    });
    (status, axum::Json(body)).into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let retry_after = match &self {
            Self::Internal(error) => {
                tracing::error!(error = format!("{error:#}"), "request failed");
                None
            }
            Self::Unavailable(u) => {
                let secs = whole_seconds(u.retry_after);
                tracing::warn!(
                    dependency = %u.dependency,
                    error = %u.cause,
                    retry_after_secs = secs,
                    "a dependency is unavailable; refused with 503"
                );
                Some(secs)
            }
            Self::RateLimited { retry_after_secs } => Some(*retry_after_secs),
            _ => None,
        };
        let mut response = error_response(status, &self.to_string());
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// `Retry-After` is whole seconds; rounded up, and at least 1 (0 would
/// invite a client to hammer; a half-open breaker's wait is 0).
fn whole_seconds(d: Duration) -> u64 {
    crate::resilience::seconds_rounded_up(d).max(1)
}

pub type ApiResult<T> = Result<T, ApiError>;

/// An error followed by its causes, `outer: inner: innermost`, for logs
/// and stored failures (a dead letter's last error). `{:#}` would show the
/// causes of an `anyhow::Error` only; for the crate's `thiserror` types it
/// prints the outermost message alone ("failed to link the lead to a CRM
/// contact", without the CRM's answer). A cause whose text the message
/// already ends with is not repeated.
pub fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let part = cause.to_string();
        if !part.is_empty() && !text.ends_with(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::{chain, database_unavailable, redis_unavailable, ApiError};
    use axum::response::IntoResponse;

    #[test]
    fn an_outage_is_told_apart_from_a_bug() {
        let io = || std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(database_unavailable(&sqlx::Error::PoolTimedOut));
        assert!(database_unavailable(&sqlx::Error::Io(io())));
        assert!(!database_unavailable(&sqlx::Error::RowNotFound));
        assert!(!database_unavailable(&sqlx::Error::ColumnNotFound(
            "x".into()
        )));
        let redis = |kind| redis::RedisError::from((kind, "test"));
        assert!(redis_unavailable(&redis::RedisError::from(io())));
        assert!(redis_unavailable(&redis(
            redis::ErrorKind::BusyLoadingError
        )));
        assert!(!redis_unavailable(&redis(redis::ErrorKind::TypeError)));
        assert!(!redis_unavailable(&redis(redis::ErrorKind::NoScriptError)));
    }

    #[test]
    fn a_database_outage_is_a_503_with_retry_after_and_a_bug_a_500_without() {
        let outage = ApiError::from(sqlx::Error::PoolTimedOut).into_response();
        assert_eq!(outage.status(), 503);
        let secs: u64 = outage.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=30).contains(&secs), "{secs}");
        let bug = ApiError::from(sqlx::Error::RowNotFound).into_response();
        assert_eq!(bug.status(), 500);
        assert!(bug.headers().get("retry-after").is_none());
    }

    #[test]
    fn an_open_breaker_says_when_it_lets_calls_through() {
        let open = crate::resilience::BreakerOpen {
            target: "stripe".into(),
            state: crate::resilience::BreakerState::Open,
            retry_in: std::time::Duration::from_millis(7_200),
        };
        let response = ApiError::from(open).into_response();
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()["retry-after"], "8");
    }

    #[derive(Debug, thiserror::Error)]
    #[error("crm-api answered 403 Forbidden: tenant is inactive")]
    struct Refused;

    #[derive(Debug, thiserror::Error)]
    enum Processing {
        #[error("failed to link the lead to a CRM contact")]
        Crm(#[from] Refused),
    }

    #[derive(Debug, thiserror::Error)]
    enum Job {
        #[error(transparent)]
        Lead(#[from] Processing),
        #[error("queue failed: {0}")]
        Queue(#[source] Refused),
    }

    #[test]
    fn an_error_is_shown_with_its_causes() {
        let error = Job::from(Processing::from(Refused));
        assert_eq!(
            format!("{error:#}"),
            "failed to link the lead to a CRM contact"
        );
        assert_eq!(
            chain(&error),
            "failed to link the lead to a CRM contact: crm-api answered 403 Forbidden: tenant is inactive"
        );
    }

    #[test]
    fn a_cause_already_in_the_message_is_not_repeated() {
        let error = Job::Queue(Refused);
        assert_eq!(
            chain(&error),
            "queue failed: crm-api answered 403 Forbidden: tenant is inactive"
        );
    }
}
