//! The Gemini mock: the REST API (`generateContent`, `streamGenerateContent`
//! with `alt=sse` or as a JSON array, `countTokens`, `embedContent`, models)
//! and the Live API WebSocket (`BidiGenerateContent`, see the `live` module source).
//!
//! Requests are authenticated by API key, as query `key=` or header
//! `x-goog-api-key`; errors are `{"error": {"code", "message", "status"}}`
//! with Google's canonical status names. Keys may be camelCase or snake_case
//! (the protobuf JSON mapping accepts both); answers are camelCase.
//! Structured output (`responseSchema`, `responseJsonSchema`) is answered with
//! JSON valid against the schema (see the `structured` module source). One
//! model list (the `models` module) serves REST and Live alike.

mod live;
mod models;
mod rest;
mod structured;

use std::sync::{Arc, OnceLock};

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Map, Value};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::error::MockError;
use crate::script::{Prompt, Script};
use crate::server::{header_str, Api, MockServer, ServeOptions};
use crate::tls::TestCa;

/// A running Gemini mock; dereferences to [`MockServer`].
#[derive(Debug)]
pub struct Gemini {
    server: MockServer,
}

impl std::ops::Deref for Gemini {
    type Target = MockServer;
    fn deref(&self) -> &MockServer {
        &self.server
    }
}

impl Gemini {
    /// Starts a mock on `127.0.0.1:0` (plain HTTP) with the built-in script.
    ///
    /// # Errors
    /// [`MockError::Bind`] if no port can be bound.
    pub async fn start() -> Result<Self, MockError> {
        Self::builder().start().await
    }

    /// A builder to choose listener, TLS, script and API keys.
    pub fn builder() -> GeminiBuilder {
        GeminiBuilder::default()
    }

    /// The Live API WebSocket URL (`ws://` or `wss://`) for API version `v1beta`.
    #[must_use]
    pub fn live_url(&self) -> String {
        let uri = self.server.uri();
        let ws = uri
            .replacen("https://", "wss://", 1)
            .replacen("http://", "ws://", 1);
        format!("{ws}/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent")
    }

    /// The underlying server handle.
    #[must_use]
    pub fn into_server(self) -> MockServer {
        self.server
    }
}

/// Configures a [`Gemini`] mock.
#[derive(Debug, Default)]
#[must_use]
pub struct GeminiBuilder {
    options: ServeOptions,
    script: Option<Script>,
    api_keys: Vec<String>,
    tls: Option<Result<(), MockError>>,
}

impl GeminiBuilder {
    /// Serve on this bound listener.
    pub fn listener(mut self, listener: TcpListener) -> Self {
        self.options.listener = Some(listener);
        self
    }

    /// Serve TLS (and `wss://`) with a certificate from `ca`.
    pub fn tls(mut self, ca: &TestCa) -> Self {
        self.tls = Some(self.options.with_tls(ca));
        self
    }

    /// Answer from this script instead of the built-in one.
    pub fn script(mut self, script: Script) -> Self {
        self.script = Some(script);
        self
    }

    /// Accept only these API keys (default: any non-empty key).
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_keys.push(key.into());
        self
    }

    /// Starts the mock.
    ///
    /// # Errors
    /// [`MockError::Bind`] or a TLS error.
    pub async fn start(self) -> Result<Gemini, MockError> {
        if let Some(Err(e)) = self.tls {
            return Err(e);
        }
        let state = Arc::new(GeminiState {
            script: self.script.unwrap_or_else(Script::builtin_gemini),
            api_keys: self.api_keys,
            shutdown: OnceLock::new(),
        });
        let server = MockServer::serve(state.clone(), router(state), self.options).await?;
        Ok(Gemini { server })
    }
}

#[derive(Debug)]
pub(crate) struct GeminiState {
    pub(crate) script: Script,
    api_keys: Vec<String>,
    shutdown: OnceLock<watch::Receiver<bool>>,
}

impl GeminiState {
    /// Checks the API key from query or header; `Err` is the error to answer.
    pub(crate) fn check_key(
        &self,
        headers: &HeaderMap,
        query: Option<&str>,
    ) -> Result<(), (StatusCode, String)> {
        let from_query = query.and_then(|q| {
            form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == "key")
                .map(|(_, v)| v.into_owned())
        });
        let key = from_query.or_else(|| header_str(headers, "x-goog-api-key").map(str::to_owned));
        match key.as_deref() {
            None | Some("") => Err((
                StatusCode::FORBIDDEN,
                "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.".into(),
            )),
            Some(k) if !self.api_keys.is_empty() && !self.api_keys.iter().any(|a| a == k) => {
                Err((StatusCode::BAD_REQUEST, "API key not valid. Please pass a valid API key.".into()))
            }
            Some(_) => Ok(()),
        }
    }

    pub(crate) async fn stopped(&self) {
        match self.shutdown.get() {
            Some(rx) => {
                let mut rx = rx.clone();
                let _ = rx.wait_for(|s| *s).await;
            }
            None => std::future::pending().await,
        }
    }
}

impl Api for GeminiState {
    fn name(&self) -> &'static str {
        "gemini"
    }

    fn error(&self, status: StatusCode, message: &str) -> Response {
        google_error(status, message)
    }

    fn reset(&self) {}

    fn started(&self, shutdown: watch::Receiver<bool>) {
        let _ = self.shutdown.set(shutdown);
    }
}

/// Google's canonical status name for an HTTP status.
pub(crate) fn status_name(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        409 => "ABORTED",
        429 => "RESOURCE_EXHAUSTED",
        499 => "CANCELLED",
        501 => "UNIMPLEMENTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        _ => "INTERNAL",
    }
}

/// `{"error": {"code", "message", "status"}}`, plus `details` for key errors.
pub(crate) fn google_error(status: StatusCode, message: &str) -> Response {
    let mut error =
        json!({ "code": status.as_u16(), "message": message, "status": status_name(status) });
    if message.starts_with("API key not valid") {
        error["details"] = json!([{
            "@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
            "domain": "googleapis.com", "metadata": { "service": "generativelanguage.googleapis.com" }
        }]);
    }
    (status, Json(json!({ "error": error }))).into_response()
}

fn router(state: Arc<GeminiState>) -> Router {
    Router::new()
        .route("/{version}/models", get(rest::list_models))
        .route(
            "/{version}/models/{name}",
            get(rest::get_model).post(rest::model_action),
        )
        .route("/ws/{method}", get(live::upgrade))
        .with_state(state)
}

/// snake_case to camelCase for one key.
fn camel(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    let mut upper = false;
    for c in key.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// Rewrites snake_case keys as camelCase, leaving user data (`args`,
/// `response`, schemas) untouched.
pub(crate) fn normalize(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    let key = camel(&k);
                    let v = if matches!(
                        key.as_str(),
                        "args"
                            | "response"
                            | "parameters"
                            | "parametersJsonSchema"
                            | "responseSchema"
                    ) {
                        v
                    } else {
                        normalize(v)
                    };
                    (key, v)
                })
                .collect::<Map<String, Value>>(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(normalize).collect()),
        other => other,
    }
}

/// Declared function names in `tools`.
pub(crate) fn tool_names(tools: Option<&Value>) -> Vec<String> {
    tools
        .and_then(Value::as_array)
        .map(|tools| {
            tools
                .iter()
                .filter_map(|t| t.get("functionDeclarations").and_then(Value::as_array))
                .flatten()
                .filter_map(|f| f.get("name").and_then(Value::as_str).map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn text_parts(content: &Value) -> String {
    content
        .get("parts")
        .and_then(Value::as_array)
        .map(|parts| {
            parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

/// The script's view of a conversation (`contents` as in the REST API).
pub(crate) fn prompt_of(contents: &[Value], system: Option<&Value>, tools: Vec<String>) -> Prompt {
    let user = contents
        .iter()
        .rev()
        .filter(|c| c.get("role").and_then(Value::as_str).unwrap_or("user") == "user")
        .map(text_parts)
        .find(|t| !t.is_empty())
        .unwrap_or_default();
    let tool_result = contents.last().and_then(|c| {
        c.get("parts")?.as_array()?.iter().find_map(|p| {
            let r = p.get("functionResponse")?;
            Some((
                r.get("name")?.as_str()?.to_owned(),
                r.get("response").cloned().unwrap_or(Value::Null),
            ))
        })
    });
    let tool_result = tool_result.map(|(name, response)| {
        // The SDKs wrap plain results as {"output": ...}; rules may use either.
        let unwrapped = match response.get("output") {
            Some(inner) if response.as_object().is_some_and(|o| o.len() == 1) => inner.clone(),
            _ => response,
        };
        (name, unwrapped)
    });
    Prompt {
        user,
        system: system.map(text_parts).unwrap_or_default(),
        tools,
        tool_result,
    }
}
