//! Errors as clients see them: `{"error":{"code","message","correlationId"}}`.
//!
//! Client mistakes are 4xx with a message naming the problem. Server faults
//! are an opaque 500 whose details go to the log under the request's
//! correlation id, which the body carries so the two can be matched.

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
    #[error("{0}")]
    Unavailable(String),
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
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        Self::Internal(error.into())
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
        if let Self::Internal(error) = &self {
            tracing::error!(error = format!("{error:#}"), "request failed");
        }
        let mut response = error_response(status, &self.to_string());
        if let Self::RateLimited { retry_after_secs } = self {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
        }
        response
    }
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
    use super::chain;

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
