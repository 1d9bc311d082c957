//! The OpenAI mock: chat completions (plain, SSE stream, tool calls), the
//! Responses API (stored responses, `previous_response_id`, typed stream
//! events), embeddings (float and base64), audio transcriptions and models.
//!
//! Wire format as the official clients expect it: bodies as in the API
//! reference, errors as `{"error": {"message", "type", "param", "code"}}`,
//! `x-request-id`, `openai-version`, `openai-processing-ms` and the
//! `x-ratelimit-*` headers on every answer. A requests-per-minute limit can be
//! enforced (`OpenAiBuilder::requests_per_minute`), answering 429
//! `rate_limit_exceeded` like the real service.

mod answer;
mod chat;
mod misc;
mod models;
mod responses;
mod structured;
pub(crate) use misc::embed;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::net::TcpListener;

use self::responses::ResponseStore;
use crate::error::MockError;
use crate::ids;
use crate::script::Script;
use crate::server::{header_str, not_mocked_message, Api, MockServer, ServeOptions};
use crate::tls::TestCa;

/// Window of the requests-per-minute limit.
const WINDOW: Duration = Duration::from_secs(60);
/// Limit shown in `x-ratelimit-limit-requests` when none is enforced.
const DEFAULT_RPM: u64 = 10_000;
const TOKEN_LIMIT: u64 = 2_000_000;

// Header names of every answer, parsed once: `insert("x-...", ..)` with a
// string parses and hashes the name on every call, which showed in profiles.
const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const OPENAI_VERSION: HeaderName = HeaderName::from_static("openai-version");
const OPENAI_ORGANIZATION: HeaderName = HeaderName::from_static("openai-organization");
const OPENAI_PROCESSING_MS: HeaderName = HeaderName::from_static("openai-processing-ms");
const LIMIT_REQUESTS: HeaderName = HeaderName::from_static("x-ratelimit-limit-requests");
const REMAINING_REQUESTS: HeaderName = HeaderName::from_static("x-ratelimit-remaining-requests");
const RESET_REQUESTS: HeaderName = HeaderName::from_static("x-ratelimit-reset-requests");
const LIMIT_TOKENS: HeaderName = HeaderName::from_static("x-ratelimit-limit-tokens");
const REMAINING_TOKENS: HeaderName = HeaderName::from_static("x-ratelimit-remaining-tokens");
const RESET_TOKENS: HeaderName = HeaderName::from_static("x-ratelimit-reset-tokens");

/// A running OpenAI mock; dereferences to [`MockServer`] (journal, faults, ...).
#[derive(Debug)]
pub struct OpenAi {
    server: MockServer,
}

impl std::ops::Deref for OpenAi {
    type Target = MockServer;
    fn deref(&self) -> &MockServer {
        &self.server
    }
}

impl OpenAi {
    /// Starts a mock on `127.0.0.1:0` with the built-in script.
    ///
    /// # Errors
    /// [`MockError::Bind`] if no port can be bound.
    pub async fn start() -> Result<Self, MockError> {
        Self::builder().start().await
    }

    /// A builder to choose listener, script, API keys and limits.
    pub fn builder() -> OpenAiBuilder {
        OpenAiBuilder::default()
    }

    /// Base URL for SDKs (`OPENAI_BASE_URL`): `<uri>/v1`.
    #[must_use]
    pub fn base_url(&self) -> String {
        format!("{}/v1", self.server.uri())
    }

    /// The underlying server handle.
    #[must_use]
    pub fn into_server(self) -> MockServer {
        self.server
    }
}

/// Configures an [`OpenAi`] mock.
#[derive(Debug, Default)]
#[must_use]
pub struct OpenAiBuilder {
    options: ServeOptions,
    script: Option<Script>,
    api_keys: Vec<String>,
    rpm: Option<u64>,
    tls: Option<Result<(), MockError>>,
}

impl OpenAiBuilder {
    /// Serve on this bound listener.
    pub fn listener(mut self, listener: TcpListener) -> Self {
        self.options.listener = Some(listener);
        self
    }

    /// Serve TLS with a certificate from `ca`.
    pub fn tls(mut self, ca: &TestCa) -> Self {
        self.tls = Some(self.options.with_tls(ca));
        self
    }

    /// Answer from this script instead of the built-in one.
    pub fn script(mut self, script: Script) -> Self {
        self.script = Some(script);
        self
    }

    /// Accept only these API keys (default: any `Bearer` token).
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_keys.push(key.into());
        self
    }

    /// Enforce a requests-per-minute limit with real 429 answers.
    pub fn requests_per_minute(mut self, rpm: u64) -> Self {
        self.rpm = Some(rpm);
        self
    }

    /// Starts the mock.
    ///
    /// # Errors
    /// [`MockError::Bind`] or a TLS error.
    pub async fn start(self) -> Result<OpenAi, MockError> {
        if let Some(Err(e)) = self.tls {
            return Err(e);
        }
        let state = Arc::new(OpenAiState {
            script: self.script.unwrap_or_else(Script::builtin_openai),
            api_keys: self.api_keys,
            rpm: self.rpm,
            window: Mutex::new(VecDeque::new()),
            responses: ResponseStore::default(),
        });
        let server = MockServer::serve(state.clone(), router(state), self.options).await?;
        Ok(OpenAi { server })
    }
}

pub(crate) struct OpenAiState {
    pub(crate) script: Script,
    api_keys: Vec<String>,
    rpm: Option<u64>,
    window: Mutex<VecDeque<Instant>>,
    responses: ResponseStore,
}

impl OpenAiState {
    /// Counts a request; returns (remaining, reset-after) or `Err` when over the limit.
    fn admit(&self) -> Result<(u64, Duration), Duration> {
        let now = Instant::now();
        let mut window = self
            .window
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        while window
            .front()
            .is_some_and(|t| now.duration_since(*t) >= WINDOW)
        {
            window.pop_front();
        }
        let limit = self.rpm.unwrap_or(DEFAULT_RPM);
        let reset = window.front().map_or(Duration::ZERO, |t| {
            WINDOW.saturating_sub(now.duration_since(*t))
        });
        let used = window.len() as u64;
        if self.rpm.is_some() && used >= limit {
            return Err(reset);
        }
        if window.len() < 100_000 {
            window.push_back(now);
        }
        Ok((limit.saturating_sub(used + 1), reset))
    }
}

impl Api for OpenAiState {
    fn name(&self) -> &'static str {
        "openai"
    }

    fn error(&self, status: StatusCode, message: &str) -> Response {
        let (kind, code) = match status.as_u16() {
            401 => ("invalid_request_error", Value::from("invalid_api_key")),
            404 => ("invalid_request_error", Value::Null),
            429 => ("requests", Value::from("rate_limit_exceeded")),
            400..=499 => ("invalid_request_error", Value::Null),
            _ => ("server_error", Value::Null),
        };
        error_response(status, message, kind, Value::Null, code)
    }

    fn rate_limited(&self, retry_after: Duration) -> Response {
        let mut response = self.error(
            StatusCode::TOO_MANY_REQUESTS,
            &format!(
                "Rate limit reached for requests. Limit {}, Used {}, Requested 1. Please try again in {}ms.",
                self.rpm.unwrap_or(DEFAULT_RPM),
                self.rpm.unwrap_or(DEFAULT_RPM),
                retry_after.as_millis()
            ),
        );
        let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
        let h = response.headers_mut();
        h.insert("retry-after", HeaderValue::from(secs));
        h.insert("x-ratelimit-remaining-requests", HeaderValue::from(0));
        h.insert("x-ratelimit-reset-requests", format_reset(retry_after));
        response
    }

    /// The API's own wording, `Invalid URL (POST /v1/foo)`, which clients
    /// may match on, followed by the shared note that the mock lacks it.
    fn not_mocked(&self, method: &Method, path: &str) -> Response {
        error_response(
            StatusCode::NOT_FOUND,
            &format!(
                "Invalid URL ({method} {path}); {}",
                not_mocked_message(self.name(), method, path)
            ),
            "invalid_request_error",
            Value::Null,
            Value::Null,
        )
    }

    fn reset(&self) {
        self.window
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
        self.responses.clear();
    }
}

/// `{"error": {...}}` with the OpenAI headers.
pub(crate) fn error_response(
    status: StatusCode,
    message: &str,
    kind: &str,
    param: Value,
    code: Value,
) -> Response {
    let body =
        json!({ "error": { "message": message, "type": kind, "param": param, "code": code } });
    let mut response = (status, Json(body)).into_response();
    response
        .headers_mut()
        .insert("x-request-id", header_value(&ids::hex_id("req_", 32)));
    response
        .headers_mut()
        .insert("openai-version", HeaderValue::from_static("2020-10-01"));
    response
}

/// A 400 `invalid_request_error` naming the parameter.
pub(crate) fn invalid(message: &str, param: &str, code: Option<&str>) -> Response {
    error_response(
        StatusCode::BAD_REQUEST,
        message,
        "invalid_request_error",
        Value::from(param),
        code.map_or(Value::Null, Value::from),
    )
}

fn header_value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

/// OpenAI writes resets as Go durations: `6ms`, `1.5s`, `1m0s`.
fn format_reset(d: Duration) -> HeaderValue {
    let ms = d.as_millis();
    let text = if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.3}s", d.as_secs_f64())
    } else {
        format!("{}m{}s", ms / 60_000, (ms % 60_000) / 1000)
    };
    header_value(&text)
}

fn router(state: Arc<OpenAiState>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat::completions))
        .route("/v1/embeddings", post(misc::embeddings))
        .route("/v1/audio/transcriptions", post(misc::transcriptions))
        .route("/v1/responses", post(responses::create))
        .route(
            "/v1/responses/{id}",
            get(responses::retrieve).delete(responses::delete),
        )
        .route("/v1/models", get(misc::list_models))
        .route("/v1/models/{model}", get(misc::get_model))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth_and_headers,
        ))
        .with_state(state)
}

/// Checks the API key and the rate limit, and adds the headers every answer has.
async fn auth_and_headers(
    State(state): State<Arc<OpenAiState>>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    if let Err(response) = check_key(&state, request.headers()) {
        return response;
    }
    let (remaining, reset) = match state.admit() {
        Ok(r) => r,
        Err(retry) => return state.rate_limited(retry),
    };
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    h.reserve(10);
    if !h.contains_key(X_REQUEST_ID) {
        h.insert(X_REQUEST_ID, header_value(&ids::hex_id("req_", 32)));
    }
    h.insert(OPENAI_VERSION, HeaderValue::from_static("2020-10-01"));
    h.insert(
        OPENAI_ORGANIZATION,
        HeaderValue::from_static("user-tekup-mock"),
    );
    h.insert(
        OPENAI_PROCESSING_MS,
        HeaderValue::from(started.elapsed().as_millis() as u64),
    );
    h.insert(
        LIMIT_REQUESTS,
        HeaderValue::from(state.rpm.unwrap_or(DEFAULT_RPM)),
    );
    h.insert(REMAINING_REQUESTS, HeaderValue::from(remaining));
    h.insert(RESET_REQUESTS, format_reset(reset));
    h.insert(LIMIT_TOKENS, HeaderValue::from(TOKEN_LIMIT));
    h.insert(REMAINING_TOKENS, HeaderValue::from(TOKEN_LIMIT - 1));
    h.insert(RESET_TOKENS, HeaderValue::from_static("0s"));
    response
}

#[expect(
    clippy::result_large_err,
    reason = "an axum Response is the natural rejection of a handler helper"
)]
fn check_key(state: &OpenAiState, headers: &HeaderMap) -> Result<(), Response> {
    let key = header_str(headers, "authorization")
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match key {
        None | Some("") => Err(error_response(
            StatusCode::UNAUTHORIZED,
            "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            "invalid_request_error",
            Value::Null,
            Value::Null,
        )),
        Some(key) if !state.api_keys.is_empty() && !state.api_keys.iter().any(|k| k == key) => {
            let shown = if key.len() > 8 { format!("{}***{}", &key[..3], &key[key.len() - 4..]) } else { "***".into() };
            Err(error_response(
                StatusCode::UNAUTHORIZED,
                &format!("Incorrect API key provided: {shown}. You can find your API key at https://platform.openai.com/account/api-keys."),
                "invalid_request_error",
                Value::Null,
                Value::from("invalid_api_key"),
            ))
        }
        Some(_) => Ok(()),
    }
}
