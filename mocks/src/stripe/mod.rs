//! The Stripe mock: customers, payment intents and payment methods (with
//! Stripe's test cards, `cards.rs`), invoices (and invoice items), search
//! (`search.rs`, over the query language in `query.rs`), events, webhook
//! endpoints, and signed outgoing webhooks.
//!
//! Requests are form-encoded with bracket notation and authenticated with
//! `Authorization: Bearer sk_test_...`; every answer carries `Request-Id`;
//! `Idempotency-Key` is honoured (same key and parameters: the first answer is
//! replayed with `Idempotent-Replayed: true`; other parameters: 400
//! `idempotency_error`); errors have Stripe's shape
//! `{"error": {"type", "code", "message", "param", "doc_url", ...}}`.

mod api;
mod billing;
mod cards;
mod form;
mod payment_methods;
mod payments;
mod query;
mod search;
mod webhook;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine as _;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use tokio::net::TcpListener;

use crate::error::MockError;
use crate::ids;
use crate::server::{header_str, not_mocked_message, Api, MockServer, ServeOptions};
use crate::tls::TestCa;

pub use webhook::{stripe_signature, Delivery, EndpointSpec, TriggerSpec, WebhookEndpoint};

/// A running Stripe mock; dereferences to [`MockServer`].
#[derive(Debug)]
pub struct Stripe {
    server: MockServer,
    state: Arc<StripeState>,
}

impl std::ops::Deref for Stripe {
    type Target = MockServer;
    fn deref(&self) -> &MockServer {
        &self.server
    }
}

impl Stripe {
    /// The underlying server handle (the typed API is lost).
    #[must_use]
    pub fn into_server(self) -> MockServer {
        self.server
    }

    /// Starts a mock on `127.0.0.1:0` without webhook endpoints.
    ///
    /// # Errors
    /// [`MockError::Bind`] if no port can be bound.
    pub async fn start() -> Result<Self, MockError> {
        Self::builder().start().await
    }

    /// A builder to choose listener and webhook endpoints.
    pub fn builder() -> StripeBuilder {
        StripeBuilder::default()
    }

    /// Adds a webhook endpoint receiving all events; returns it (with its secret).
    pub fn add_webhook(&self, url: impl Into<String>, secret: Option<String>) -> WebhookEndpoint {
        let endpoint = WebhookEndpoint::new(url.into(), secret, Vec::new());
        self.state
            .webhooks
            .endpoints
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(endpoint.clone());
        endpoint
    }

    /// Creates an event of `event_type` for `object` and sends it, like `stripe trigger`.
    pub fn trigger(&self, event_type: &str, object: Value) -> Value {
        self.state.emit(event_type, &object, None, None)
    }

    /// Webhook deliveries so far.
    #[must_use]
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.state.webhooks.deliveries()
    }

    /// Waits until at least `n` deliveries finished (delivered or given up), or `timeout`.
    pub async fn wait_for_deliveries(&self, n: usize, timeout: Duration) -> Vec<Delivery> {
        self.state
            .webhooks
            .wait(timeout, |d| d.iter().filter(|d| d.finished()).count() >= n)
            .await
    }
}

/// Configures a [`Stripe`] mock.
#[derive(Debug, Default)]
#[must_use]
pub struct StripeBuilder {
    options: ServeOptions,
    endpoints: Vec<WebhookEndpoint>,
    tls: Option<Result<(), MockError>>,
}

impl StripeBuilder {
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

    /// Send all events to `url`, signed with `secret` (`whsec_...`).
    pub fn webhook(mut self, url: impl Into<String>, secret: impl Into<String>) -> Self {
        self.endpoints.push(WebhookEndpoint::new(
            url.into(),
            Some(secret.into()),
            Vec::new(),
        ));
        self
    }

    /// Starts the mock.
    ///
    /// # Errors
    /// [`MockError::Bind`] or a TLS error.
    pub async fn start(self) -> Result<Stripe, MockError> {
        if let Some(Err(e)) = self.tls {
            return Err(e);
        }
        let state = Arc::new(StripeState {
            store: Mutex::default(),
            idempotency: Mutex::default(),
            webhooks: Arc::new(webhook::Webhooks::new(self.endpoints.clone())),
            seed_endpoints: self.endpoints,
        });
        let server =
            MockServer::serve(state.clone(), api::router(state.clone()), self.options).await?;
        Ok(Stripe { server, state })
    }
}

/// Objects by kind, newest last.
#[derive(Debug, Default)]
pub(crate) struct Store {
    pub(crate) objects: HashMap<&'static str, Vec<Value>>,
    /// The test card behind each payment method created from a raw number.
    pub(crate) cards: HashMap<String, &'static cards::TestCard>,
}

impl Store {
    pub(crate) fn all(&self, kind: &'static str) -> &[Value] {
        self.objects.get(kind).map_or(&[], Vec::as_slice)
    }

    pub(crate) fn get(&self, kind: &'static str, id: &str) -> Option<&Value> {
        self.all(kind).iter().find(|o| o["id"] == id)
    }

    pub(crate) fn get_mut(&mut self, kind: &'static str, id: &str) -> Option<&mut Value> {
        self.objects
            .get_mut(kind)?
            .iter_mut()
            .find(|o| o["id"] == id)
    }

    pub(crate) fn insert(&mut self, kind: &'static str, object: Value) {
        self.objects.entry(kind).or_default().push(object);
    }
}

#[derive(Debug)]
struct Stored {
    fingerprint: String,
    status: StatusCode,
    body: Bytes,
    request_id: String,
}

#[derive(Debug)]
pub(crate) struct StripeState {
    pub(crate) store: Mutex<Store>,
    idempotency: Mutex<HashMap<String, Stored>>,
    pub(crate) webhooks: Arc<webhook::Webhooks>,
    seed_endpoints: Vec<WebhookEndpoint>,
}

impl StripeState {
    pub(crate) fn store(&self) -> std::sync::MutexGuard<'_, Store> {
        self.store
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// [`Self::emit`] for an event a request caused: the event names the
    /// request's id and idempotency key, as Stripe's `request` field does.
    pub(crate) fn emit_for(&self, event_type: &str, object: &Value, meta: &RequestMeta) -> Value {
        self.emit(
            event_type,
            object,
            Some(&meta.request_id),
            meta.idempotency_key.as_deref(),
        )
    }

    /// Records an event and dispatches it to the webhook endpoints.
    pub(crate) fn emit(
        &self,
        event_type: &str,
        object: &Value,
        request_id: Option<&str>,
        key: Option<&str>,
    ) -> Value {
        let event = webhook::event(event_type, object, request_id, key);
        self.store().insert("event", event.clone());
        self.webhooks.dispatch(&event);
        event
    }
}

impl Api for StripeState {
    fn name(&self) -> &'static str {
        "stripe"
    }

    fn error(&self, status: StatusCode, message: &str) -> Response {
        match status.as_u16() {
            429 => stripe_error(status, "invalid_request_error", Some("rate_limit"), "Request rate limit exceeded. Learn more about rate limits here https://stripe.com/docs/rate-limits.", None),
            400..=499 => stripe_error(status, "invalid_request_error", None, message, None),
            _ => stripe_error(status, "api_error", None, message, None),
        }
    }

    fn rate_limited(&self, retry_after: Duration) -> Response {
        let mut response = self.error(StatusCode::TOO_MANY_REQUESTS, "");
        let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
        response
            .headers_mut()
            .insert("retry-after", HeaderValue::from(secs));
        response
            .headers_mut()
            .insert("stripe-should-retry", HeaderValue::from_static("true"));
        response
    }

    /// Stripe's own wording for an unknown URL, followed by the mock's
    /// "not mocked" sentence, so both kinds of reader recognise it.
    fn not_mocked(&self, method: &Method, path: &str) -> Response {
        unrecognized(method, path)
    }

    fn reset(&self) {
        *self.store() = Store::default();
        self.idempotency
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
        self.webhooks.clear();
        *self
            .webhooks
            .endpoints
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = self.seed_endpoints.clone();
    }
}

/// Stripe's error body with `Request-Id`.
pub(crate) fn stripe_error(
    status: StatusCode,
    kind: &str,
    code: Option<&str>,
    message: &str,
    param: Option<&str>,
) -> Response {
    let request_id = ids::alnum_id("req_", 14);
    let mut error = json!({
        "type": kind, "message": message,
        "request_log_url": format!("https://dashboard.stripe.com/test/logs/{request_id}?t={}", ids::unix_now()),
    });
    if let Some(code) = code {
        error["code"] = Value::from(code);
        error["doc_url"] = Value::from(format!(
            "https://stripe.com/docs/error-codes/{}",
            code.replace('_', "-")
        ));
    }
    if let Some(param) = param {
        error["param"] = Value::from(param);
    }
    let mut response = (status, Json(json!({ "error": error }))).into_response();
    response.headers_mut().insert(
        "request-id",
        HeaderValue::from_str(&request_id).unwrap_or(HeaderValue::from_static("req_x")),
    );
    response
}

/// 404 for a URL the mock does not serve: Stripe's `Unrecognized request URL
/// (GET: /v1/...)` with the harness's not-mocked sentence in place of
/// Stripe's pointer to its documentation.
pub(crate) fn unrecognized(method: &Method, path: &str) -> Response {
    stripe_error(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        None,
        &format!(
            "Unrecognized request URL ({method}: {path}). {}",
            not_mocked_message("stripe", method, path)
        ),
        None,
    )
}

/// 404 `resource_missing` for `kind` `id`.
pub(crate) fn missing(noun: &str, id: &str, param: &str) -> Response {
    stripe_error(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        Some("resource_missing"),
        &format!("No such {noun}: '{id}'"),
        Some(param),
    )
}

/// 400 `parameter_missing`.
pub(crate) fn param_missing(param: &str) -> Response {
    stripe_error(
        StatusCode::BAD_REQUEST,
        "invalid_request_error",
        Some("parameter_missing"),
        &format!("Missing required param: {param}."),
        Some(param),
    )
}

/// 400 `parameter_invalid_integer` and friends.
pub(crate) fn param_invalid(param: &str, message: &str) -> Response {
    stripe_error(
        StatusCode::BAD_REQUEST,
        "invalid_request_error",
        Some("parameter_invalid_integer"),
        message,
        Some(param),
    )
}

fn api_key(headers: &HeaderMap) -> Option<String> {
    let value = header_str(headers, "authorization")?;
    if let Some(token) = value.strip_prefix("Bearer ") {
        return Some(token.trim().to_owned());
    }
    let basic = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(basic.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    Some(text.split(':').next().unwrap_or_default().to_owned())
}

/// Authentication, `Request-Id`, `Stripe-Version` and idempotency.
pub(crate) async fn middleware(
    State(state): State<Arc<StripeState>>,
    request: Request,
    next: Next,
) -> Response {
    let key = api_key(request.headers());
    match key.as_deref() {
        None | Some("") => {
            return stripe_error(StatusCode::UNAUTHORIZED, "invalid_request_error", None,
                "You did not provide an API key. You need to provide your API key in the Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication for details, or we can help at https://support.stripe.com/.", None)
        }
        Some(k) if !(k.starts_with("sk_test_") || k.starts_with("rk_test_")) => {
            let shown = if k.len() > 4 { format!("{}****{}", &k[..k.len().min(8)], &k[k.len() - 4..]) } else { "****".into() };
            return stripe_error(StatusCode::UNAUTHORIZED, "invalid_request_error", Some("api_key_invalid"), &format!("Invalid API Key provided: {shown}"), None);
        }
        Some(_) => {}
    }
    let version = header_str(request.headers(), "stripe-version")
        .unwrap_or(webhook::API_VERSION)
        .to_owned();
    let idem = header_str(request.headers(), "idempotency-key")
        .map(str::to_owned)
        .filter(|_| request.method() == "POST");
    let request_id = ids::alnum_id("req_", 14);
    let (mut parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let fingerprint = format!(
        "{} {} {}",
        parts.method,
        parts.uri.path(),
        hex::encode(Sha256::digest(&body))
    );

    let mut response = if let Some(key) = &idem {
        let replay = {
            let stored = state
                .idempotency
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            stored.get(key).map(|s| {
                (
                    s.fingerprint == fingerprint,
                    s.status,
                    s.body.clone(),
                    s.request_id.clone(),
                )
            })
        };
        match replay {
            Some((true, status, body, original_id)) => {
                let mut r = (status, [("content-type", "application/json")], body).into_response();
                r.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
                r.headers_mut().insert("original-request", HeaderValue::from_str(&original_id).unwrap_or(HeaderValue::from_static("req_x")));
                r
            }
            Some((false, ..)) => stripe_error(StatusCode::BAD_REQUEST, "idempotency_error", None,
                &format!("Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '{key}' if you meant to execute a different request."), None),
            None => {
                parts.extensions.insert(RequestMeta { request_id: request_id.clone(), idempotency_key: Some(key.clone()) });
                let response = next.run(Request::from_parts(parts, Body::from(body))).await;
                let (rparts, rbody) = response.into_parts();
                let bytes = axum::body::to_bytes(rbody, usize::MAX).await.unwrap_or_default();
                if !rparts.status.is_server_error() {
                    state.idempotency.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(
                        key.clone(),
                        Stored { fingerprint, status: rparts.status, body: bytes.clone(), request_id: request_id.clone() },
                    );
                }
                Response::from_parts(rparts, Body::from(bytes))
            }
        }
    } else {
        parts.extensions.insert(RequestMeta {
            request_id: request_id.clone(),
            idempotency_key: None,
        });
        next.run(Request::from_parts(parts, Body::from(body))).await
    };
    let h = response.headers_mut();
    if !h.contains_key("request-id") {
        h.insert(
            "request-id",
            HeaderValue::from_str(&request_id).unwrap_or(HeaderValue::from_static("req_x")),
        );
    }
    if let Some(key) = idem {
        if let Ok(v) = HeaderValue::from_str(&key) {
            h.insert("idempotency-key", v);
        }
    }
    h.insert(
        "stripe-version",
        HeaderValue::from_str(&version).unwrap_or(HeaderValue::from_static(webhook::API_VERSION)),
    );
    response
}

/// Request id and idempotency key, for the events a request causes.
#[derive(Debug, Clone)]
pub(crate) struct RequestMeta {
    pub(crate) request_id: String,
    pub(crate) idempotency_key: Option<String>,
}
