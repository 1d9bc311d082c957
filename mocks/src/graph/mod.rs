//! The Microsoft Graph mock: the OAuth2 client-credentials token endpoint,
//! users, mail (messages, mail folders, `sendMail`, attachments), contacts
//! and events, with paging, delta queries (`delta` and the SDKs' `delta()`),
//! `$count`, `$search`, JSON batching and Graph's error shape.
//!
//! One module per concern: `routes` (users, mail, contacts, events),
//! `query` (collections, paging, delta), `search` (`$search`), `count` (the
//! `$count` segment), `attachments`, `batch` (`$batch`), `store` (the data).
//!
//! Paging links are absolute and point at the mock itself (from the request's
//! `Host`), so SDK page iterators follow them; a delta round ends with an
//! `@odata.deltaLink` whose token replays only later changes. Errors are
//! `{"error": {"code", "message", "innerError": {"date", "request-id",
//! "client-request-id"}}}` with `request-id` and `client-request-id` headers.
//! Throttling (a rate-limit fault) is a 429 with `Retry-After`, as Graph does.

mod attachments;
mod batch;
mod count;
mod query;
mod routes;
mod search;
mod store;

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use tokio::net::TcpListener;

use crate::error::MockError;
use crate::server::{header_str, not_mocked_message, Api, MockServer, ServeOptions};
use crate::tls::TestCa;

pub use store::GraphSeed;

/// A running Graph mock; dereferences to [`MockServer`].
#[derive(Debug)]
pub struct Graph {
    server: MockServer,
    state: Arc<GraphState>,
}

impl std::ops::Deref for Graph {
    type Target = MockServer;
    fn deref(&self) -> &MockServer {
        &self.server
    }
}

impl Graph {
    /// The underlying server handle (the typed API is lost).
    #[must_use]
    pub fn into_server(self) -> MockServer {
        self.server
    }

    /// Starts a mock on `127.0.0.1:0` with the built-in seed.
    ///
    /// # Errors
    /// [`MockError::Bind`] if no port can be bound.
    pub async fn start() -> Result<Self, MockError> {
        Self::builder().start().await
    }

    /// A builder to choose listener, seed and credentials.
    pub fn builder() -> GraphBuilder {
        GraphBuilder::default()
    }

    /// Graph base URL for SDKs: `<uri>/v1.0`.
    #[must_use]
    pub fn base_url(&self) -> String {
        format!("{}/v1.0", self.server.uri())
    }

    /// Token endpoint URL for the seed's tenant.
    #[must_use]
    pub fn token_url(&self) -> String {
        format!(
            "{}/{}/oauth2/v2.0/token",
            self.server.uri(),
            self.state.seed.tenant()
        )
    }

    /// Tenant id of the seed.
    #[must_use]
    pub fn tenant(&self) -> String {
        self.state.seed.tenant().to_owned()
    }
}

/// Configures a [`Graph`] mock.
#[derive(Debug, Default)]
#[must_use]
pub struct GraphBuilder {
    options: ServeOptions,
    seed: Option<GraphSeed>,
    clients: Vec<(String, String)>,
    any_token: bool,
    tls: Option<Result<(), MockError>>,
}

impl GraphBuilder {
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

    /// Use this seed instead of `fixtures/mocks/graph.yaml`.
    pub fn seed(mut self, seed: GraphSeed) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Accept only these client credentials at the token endpoint (default: any).
    pub fn client(mut self, id: impl Into<String>, secret: impl Into<String>) -> Self {
        self.clients.push((id.into(), secret.into()));
        self
    }

    /// Accept any bearer token, not only those the token endpoint issued.
    pub fn accept_any_token(mut self) -> Self {
        self.any_token = true;
        self
    }

    /// Starts the mock.
    ///
    /// # Errors
    /// [`MockError::Bind`] or a TLS error.
    pub async fn start(self) -> Result<Graph, MockError> {
        if let Some(Err(e)) = self.tls {
            return Err(e);
        }
        let seed = self.seed.unwrap_or_else(GraphSeed::builtin);
        let state = Arc::new(GraphState {
            store: Mutex::new(store::Store::seeded(&seed)),
            seed,
            clients: self.clients,
            any_token: self.any_token,
            tokens: Mutex::default(),
            local: OnceLock::new(),
            loopback: OnceLock::new(),
        });
        let server =
            MockServer::serve(state.clone(), routes::router(state.clone()), self.options).await?;
        let _ = state.local.set(server.uri());
        Ok(Graph { server, state })
    }
}

/// Loads a Graph seed file.
///
/// # Errors
/// See [`GraphSeed::from_file`].
pub fn load_seed(path: &Path) -> Result<GraphSeed, MockError> {
    GraphSeed::from_file(path)
}

#[derive(Debug)]
pub(crate) struct GraphState {
    pub(crate) store: Mutex<store::Store>,
    seed: GraphSeed,
    clients: Vec<(String, String)>,
    any_token: bool,
    tokens: Mutex<HashSet<String>>,
    /// The mock's own base URL, where `$batch` sends its inner requests.
    local: OnceLock<String>,
    loopback: OnceLock<reqwest::Client>,
}

impl GraphState {
    pub(crate) fn store(&self) -> std::sync::MutexGuard<'_, store::Store> {
        self.store
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The HTTP client `$batch` uses to call this mock itself: no proxy, and
    /// the mock's own (test-CA) certificate accepted when it serves TLS.
    pub(crate) fn loopback(&self) -> &reqwest::Client {
        self.loopback.get_or_init(|| {
            reqwest::Client::builder()
                .no_proxy()
                .danger_accept_invalid_certs(true)
                .build()
                .unwrap_or_default()
        })
    }
}

impl Api for GraphState {
    fn name(&self) -> &'static str {
        "graph"
    }

    fn error(&self, status: StatusCode, message: &str) -> Response {
        let code = match status.as_u16() {
            429 => "TooManyRequests",
            503 => "serviceNotAvailable",
            504 => "gatewayTimeout",
            404 => "itemNotFound",
            400 => "BadRequest",
            _ => "generalException",
        };
        graph_error(status, code, message, None)
    }

    /// Graph answers a path it does not know with a 400 naming the segment
    /// ("Resource not found for the segment 'calendars'."); the mock keeps
    /// that status, code and sentence, which clients match on, and adds
    /// which call is not mocked.
    fn not_mocked(&self, method: &Method, path: &str) -> Response {
        let segment = path
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or_default();
        let segment = percent_decode(segment);
        graph_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            &format!(
                "Resource not found for the segment '{segment}'. {}",
                not_mocked_message(self.name(), method, path)
            ),
            None,
        )
    }

    fn reset(&self) {
        *self.store() = store::Store::seeded(&self.seed);
        self.tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
    }
}

/// Graph's error body with `innerError` and the request-id headers.
pub(crate) fn graph_error(
    status: StatusCode,
    code: &str,
    message: &str,
    client_request_id: Option<&str>,
) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    let client_id = client_request_id.map_or_else(|| request_id.clone(), str::to_owned);
    let body = json!({ "error": { "code": code, "message": message, "innerError": {
        "date": chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S").to_string(),
        "request-id": request_id, "client-request-id": client_id
    }}});
    let mut response = (status, Json(body)).into_response();
    let h = response.headers_mut();
    h.insert(
        "request-id",
        HeaderValue::from_str(&request_id).unwrap_or(HeaderValue::from_static("0")),
    );
    h.insert(
        "client-request-id",
        HeaderValue::from_str(&client_id).unwrap_or(HeaderValue::from_static("0")),
    );
    response
}

/// `%40` → `@` and the like, for a path segment quoted in a message.
fn percent_decode(segment: &str) -> String {
    form_urlencoded::parse(format!("s={}", segment.replace('+', "%2B")).as_bytes())
        .next()
        .map_or_else(|| segment.to_owned(), |(_, v)| v.into_owned())
}

/// An Azure AD (v2 endpoint) OAuth error.
fn aad_error(status: StatusCode, error: &str, code: u32, description: &str) -> Response {
    let trace = uuid::Uuid::new_v4().to_string();
    let correlation = uuid::Uuid::new_v4().to_string();
    let now = chrono::Utc::now().format("%Y-%m-%d %H:%M:%SZ").to_string();
    (status, Json(json!({
        "error": error,
        "error_description": format!("AADSTS{code}: {description}\r\nTrace ID: {trace}\r\nCorrelation ID: {correlation}\r\nTimestamp: {now}"),
        "error_codes": [code], "timestamp": now, "trace_id": trace, "correlation_id": correlation,
        "error_uri": format!("https://login.microsoftonline.com/error?code={code}")
    })))
        .into_response()
}

/// `POST /{tenant}/oauth2/v2.0/token` with `grant_type=client_credentials`.
pub(crate) async fn token(
    State(state): State<Arc<GraphState>>,
    body: axum::body::Bytes,
) -> Response {
    let form: std::collections::HashMap<String, String> =
        form_urlencoded::parse(&body).into_owned().collect();
    let Some(grant) = form.get("grant_type") else {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900_144,
            "The request body must contain the following parameter: 'grant_type'.",
        );
    };
    if grant != "client_credentials" {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            70003,
            "The app requested an unsupported grant type.",
        );
    }
    let Some(client_id) = form.get("client_id").filter(|c| !c.is_empty()) else {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900_144,
            "The request body must contain the following parameter: 'client_id'.",
        );
    };
    let secret = form
        .get("client_secret")
        .map(String::as_str)
        .unwrap_or_default();
    if secret.is_empty() && !form.contains_key("client_assertion") {
        return aad_error(StatusCode::UNAUTHORIZED, "invalid_client", 7_000_218, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.");
    }
    if !state.clients.is_empty()
        && !state
            .clients
            .iter()
            .any(|(id, s)| id == client_id && s == secret)
    {
        return aad_error(StatusCode::UNAUTHORIZED, "invalid_client", 7_000_215, "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app.");
    }
    let scope = form.get("scope").map(String::as_str).unwrap_or_default();
    if !scope.ends_with("/.default") {
        return aad_error(StatusCode::BAD_REQUEST, "invalid_scope", 1_002_012, &format!("The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."));
    }
    let access_token = format!(
        "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.{}.{}",
        crate::ids::alnum_id("", 120),
        crate::ids::alnum_id("", 43)
    );
    state
        .tokens
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert(access_token.clone());
    Json(json!({ "token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": access_token })).into_response()
}

/// OpenID configuration for MSAL-based clients.
pub(crate) async fn openid_configuration(
    State(state): State<Arc<GraphState>>,
    request: Request,
) -> Response {
    let origin = request
        .extensions()
        .get::<crate::server::Origin>()
        .map(|o| o.0.clone())
        .unwrap_or_default();
    let tenant = state.seed.tenant();
    Json(json!({
        "token_endpoint": format!("{origin}/{tenant}/oauth2/v2.0/token"),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "jwks_uri": format!("{origin}/{tenant}/discovery/v2.0/keys"),
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"], "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": format!("{origin}/{tenant}/v2.0"),
        "authorization_endpoint": format!("{origin}/{tenant}/oauth2/v2.0/authorize"),
        "device_authorization_endpoint": format!("{origin}/{tenant}/oauth2/v2.0/devicecode"),
        "end_session_endpoint": format!("{origin}/{tenant}/oauth2/v2.0/logout"),
        "tenant_region_scope": "EU", "cloud_instance_name": "microsoftonline.com"
    }))
    .into_response()
}

/// Bearer token check and the `request-id`/`client-request-id` headers.
pub(crate) async fn auth(
    State(state): State<Arc<GraphState>>,
    request: Request,
    next: Next,
) -> Response {
    let client_request_id = header_str(request.headers(), "client-request-id").map(str::to_owned);
    if let Err(response) = check_token(&state, request.headers(), client_request_id.as_deref()) {
        return response;
    }
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    if !h.contains_key("request-id") {
        let id = uuid::Uuid::new_v4().to_string();
        h.insert(
            "request-id",
            HeaderValue::from_str(&id).unwrap_or(HeaderValue::from_static("0")),
        );
        if client_request_id.is_none() {
            h.insert(
                "client-request-id",
                HeaderValue::from_str(&id).unwrap_or(HeaderValue::from_static("0")),
            );
        }
    }
    if let Some(id) = client_request_id.and_then(|c| HeaderValue::from_str(&c).ok()) {
        h.insert("client-request-id", id);
    }
    h.insert("x-ms-ags-diagnostic", HeaderValue::from_static(r#"{"ServerInfo":{"DataCenter":"Mock","Slice":"E","Ring":"5","ScaleUnit":"000","RoleInstance":"TEKUP-MOCK"}}"#));
    response
}

#[expect(
    clippy::result_large_err,
    reason = "an axum Response is the natural rejection of a handler helper"
)]
fn check_token(
    state: &GraphState,
    headers: &HeaderMap,
    client_request_id: Option<&str>,
) -> Result<(), Response> {
    let token = header_str(headers, "authorization")
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match token {
        None | Some("") => Err(graph_error(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            "Access token is empty.",
            client_request_id,
        )),
        Some(t)
            if !state.any_token
                && !state
                    .tokens
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .contains(t) =>
        {
            Err(graph_error(
                StatusCode::UNAUTHORIZED,
                "InvalidAuthenticationToken",
                "Access token validation failure. Invalid audience.",
                client_request_id,
            ))
        }
        Some(_) => Ok(()),
    }
}
