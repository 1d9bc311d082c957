//! A typed client of the platform's HTTP API, for the suites that drive the
//! platform from Rust (property, load and chaos) rather than from scenario
//! files.
//!
//! It knows the platform's conventions and nothing of any one suite:
//! tenants are made through `POST /admin/tenants` with the admin token, and
//! every tenant request carries `x-tenant-key`, `x-tenant-id` and
//! `x-source-app` (see `fixtures/platform.yaml`). Answers come back as a status and a
//! JSON body, whatever the status: suites judge refusals, the client does
//! not turn them into errors. [`PlatformError`] is only for what prevents
//! an answer (no such service, a dead connection, a timeout).
//!
//! ```no_run
//! # async fn demo(eco: &tekup_harness::env::Ecosystem) -> Result<(), tekup_harness::platform::PlatformError> {
//! use tekup_harness::platform::Platform;
//! let platform = Platform::from_ecosystem(eco)?;
//! let acme = platform.create_tenant("acme").await?;
//! let web = platform.client(&acme, "flow-web");
//! let answer = web.post("flow-api", "/leads", &serde_json::json!({
//!     "firstName": "Ada", "email": "ada@example.com"
//! })).await?;
//! assert_eq!(answer.status, 201);
//! # Ok(()) }
//! ```

mod events;
mod queues;
mod tenants;
pub mod token;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::env::{error_chain, Ecosystem};
use crate::net::ClientTls;
pub use events::{
    open_events, open_events_traced, EventStream, HandshakeError, Subscriber, GATEWAY,
};
pub use queues::Queues;
pub use tenants::{release_tenants, TenantLedger, TenantRelease, TENANT_PREFIX};

/// The service that creates tenants (`POST /admin/tenants`).
pub const TENANT_SERVICE: &str = "flow-api";
/// How long one request may take before it counts as failed.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// What prevents an answer.
#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    #[error(
        "no admin token: set `admin-token` in the ecosystem file's [vars] or TEKUP_ADMIN_TOKEN"
    )]
    NoAdminToken,
    #[error("the ecosystem has no service `{0}` with a URL")]
    UnknownService(String),
    #[error("failed to build the HTTP client: {0}")]
    Client(String),
    #[error("{method} {url} got no answer: {cause}")]
    Transport {
        method: Method,
        url: String,
        cause: String,
        /// No connection could be made: nothing was sent, so sending the
        /// request again cannot do it twice.
        not_sent: bool,
    },
    #[error("creating tenant `{name}` answered {status}: {body}{hint}")]
    TenantRefused {
        name: String,
        status: u16,
        body: String,
        hint: &'static str,
    },
}

/// A tenant the platform knows: its id and an API key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TenantKey {
    pub id: String,
    pub key: String,
}

/// An answer: the status and the body (JSON, or the text as a JSON string,
/// or null when empty).
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
    /// `Retry-After` in seconds, when the answer has one that is a number
    /// of seconds (the platform's form; an HTTP date reads as none).
    pub retry_after: Option<u64>,
}

impl Answer {
    /// Whether the status is 2xx.
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// The platform's services by name, and the admin token. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Platform {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    http: reqwest::Client,
    tls: ClientTls,
    urls: BTreeMap<String, String>,
    admin_token: String,
    tenants: Arc<TenantLedger>,
}

impl Platform {
    /// The services of a running ecosystem; the admin token from
    /// `TEKUP_ADMIN_TOKEN`, else the ecosystem file's `admin-token` var.
    pub fn from_ecosystem(eco: &Ecosystem) -> Result<Platform, PlatformError> {
        let admin_token = std::env::var("TEKUP_ADMIN_TOKEN")
            .ok()
            .or_else(|| eco.file().vars.get("admin-token").cloned())
            .ok_or(PlatformError::NoAdminToken)?;
        let urls = eco
            .components()
            .filter_map(|c| Some((c.name().to_owned(), c.url()?)))
            .collect();
        Platform::build(urls, admin_token, eco.tls(), Arc::clone(eco.tenants()))
    }

    /// Services by name (`flow-api` → `http://…`) and the admin token,
    /// with the default TLS settings (the public roots); its tenants are
    /// recorded in a ledger of its own (a fresh run id).
    pub fn new(
        urls: BTreeMap<String, String>,
        admin_token: String,
    ) -> Result<Platform, PlatformError> {
        Platform::with_tls(urls, admin_token, &ClientTls::default())
    }

    /// [`Self::new`] with these TLS settings for every request and
    /// WebSocket of the platform (a private CA, a client certificate).
    pub fn with_tls(
        urls: BTreeMap<String, String>,
        admin_token: String,
        tls: &ClientTls,
    ) -> Result<Platform, PlatformError> {
        let run = uuid::Uuid::new_v4().simple().to_string();
        Platform::build(
            urls,
            admin_token,
            tls,
            Arc::new(TenantLedger::new(&run[..10])),
        )
    }

    /// [`Platform::with_tls`] recording its tenants in `tenants` (release
    /// them at the end with [`release_tenants`]).
    pub fn with_ledger(
        urls: BTreeMap<String, String>,
        admin_token: String,
        tls: &ClientTls,
        tenants: Arc<TenantLedger>,
    ) -> Result<Platform, PlatformError> {
        Platform::build(urls, admin_token, tls, tenants)
    }

    fn build(
        urls: BTreeMap<String, String>,
        admin_token: String,
        tls: &ClientTls,
        tenants: Arc<TenantLedger>,
    ) -> Result<Platform, PlatformError> {
        let http = tls
            .http()
            .timeout(REQUEST_TIMEOUT)
            .user_agent("tekup-harness")
            .build()
            .map_err(|e| PlatformError::Client(error_chain(&e)))?;
        let urls = urls
            .into_iter()
            .map(|(name, url)| (name, url.trim_end_matches('/').to_owned()))
            .collect();
        Ok(Platform {
            inner: Arc::new(Inner {
                http,
                tls: tls.clone(),
                urls,
                admin_token,
                tenants,
            }),
        })
    }

    /// The base URL of `service`.
    pub fn url(&self, service: &str) -> Result<&str, PlatformError> {
        self.inner
            .urls
            .get(service)
            .map(String::as_str)
            .ok_or_else(|| PlatformError::UnknownService(service.to_owned()))
    }

    /// The HTTP client every request of this platform goes through.
    pub fn http(&self) -> &reqwest::Client {
        &self.inner.http
    }

    /// The TLS settings of its clients, for more of them (WebSockets, load users).
    pub fn tls(&self) -> &ClientTls {
        &self.inner.tls
    }

    /// The tenants this platform made (and those of its ecosystem).
    pub fn tenants(&self) -> &Arc<TenantLedger> {
        &self.inner.tenants
    }

    /// Creates a fresh tenant with the id `tekup-harness-<run>-<name>-<8 hex>`
    /// (see [`TenantLedger::fresh_id`]) and returns its first API key.
    pub async fn create_tenant(&self, name: &str) -> Result<TenantKey, PlatformError> {
        self.create(name, serde_json::json!({})).await
    }

    /// [`Self::create_tenant`] with a rate limit of its own (requests per
    /// minute) instead of the platform's default: load runs give their
    /// tenants one far above what they send, so a 429 is the platform
    /// refusing load, not a quota of the harness's own making.
    pub async fn create_tenant_with_rate_limit(
        &self,
        name: &str,
        per_minute: u32,
    ) -> Result<TenantKey, PlatformError> {
        self.create(
            name,
            serde_json::json!({ "rateLimitPerMinute": per_minute }),
        )
        .await
    }

    /// [`Self::create_tenant`] with `keys` API keys (one [`TenantKey`] each,
    /// the same tenant id), e.g. one to revoke beside one to keep.
    pub async fn create_tenant_keys(
        &self,
        name: &str,
        keys: usize,
    ) -> Result<Vec<TenantKey>, PlatformError> {
        self.create_all(name, serde_json::json!({ "keys": keys }))
            .await
    }

    /// `POST /admin/tenants` with `extra` fields beside the id and name.
    async fn create(&self, name: &str, extra: Value) -> Result<TenantKey, PlatformError> {
        let mut keys = self.create_all(name, extra).await?;
        Ok(keys.swap_remove(0))
    }

    /// `POST /admin/tenants`, every key of the answer.
    async fn create_all(
        &self,
        name: &str,
        mut extra: Value,
    ) -> Result<Vec<TenantKey>, PlatformError> {
        let id = self.inner.tenants.fresh_id(name);
        let url = format!("{}/admin/tenants", self.url(TENANT_SERVICE)?);
        let answer = self
            .send(
                self.inner
                    .http
                    .post(&url)
                    .bearer_auth(&self.inner.admin_token)
                    .json(&{
                        extra["id"] = Value::from(id.as_str());
                        extra["name"] = Value::from(name);
                        extra
                    }),
                Method::POST,
                &url,
            )
            .await?;
        let keys: Vec<TenantKey> = answer.body["apiKeys"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(|key| TenantKey {
                id: id.clone(),
                key: key.to_owned(),
            })
            .collect();
        match keys.first() {
            Some(_) if answer.ok() => {
                self.inner.tenants.record(&id);
                Ok(keys)
            }
            _ => Err(PlatformError::TenantRefused {
                name: name.to_owned(),
                status: answer.status,
                body: answer.body.to_string(),
                hint: if answer.status == 401 {
                    " (is the admin token of the ecosystem file the services' ADMIN_TOKEN?)"
                } else {
                    ""
                },
            }),
        }
    }

    /// `GET path` on `service` with the admin token (e.g. `/admin/queues`).
    pub async fn admin_get(&self, service: &str, path: &str) -> Result<Answer, PlatformError> {
        let url = format!("{}{path}", self.url(service)?);
        self.send(
            self.inner
                .http
                .get(&url)
                .bearer_auth(&self.inner.admin_token),
            Method::GET,
            &url,
        )
        .await
    }

    /// `GET path` on `service` with no credentials (`/health`, `/metrics`).
    pub async fn get_public(&self, service: &str, path: &str) -> Result<Answer, PlatformError> {
        let url = format!("{}{path}", self.url(service)?);
        self.send(self.inner.http.get(&url), Method::GET, &url)
            .await
    }

    /// A client acting as `app` of `tenant`.
    pub fn client(&self, tenant: &TenantKey, app: &str) -> TenantClient {
        TenantClient {
            platform: self.clone(),
            tenant_id: tenant.id.clone(),
            key: tenant.key.clone(),
            app: app.to_owned(),
            traceparent: None,
        }
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        method: Method,
        url: &str,
    ) -> Result<Answer, PlatformError> {
        let transport = |e: reqwest::Error| PlatformError::Transport {
            method: method.clone(),
            url: url.to_owned(),
            cause: error_chain(&e),
            not_sent: e.is_connect(),
        };
        let response = request.send().await.map_err(transport)?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok());
        let bytes = response.bytes().await.map_err(transport)?;
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Ok(Answer {
            status,
            body,
            retry_after,
        })
    }
}

/// Requests as one app of one tenant. The credentials are ordinary fields,
/// so a suite can also send them wrong on purpose ([`TenantClient::with_key`],
/// [`TenantClient::with_tenant_id`]).
#[derive(Debug, Clone)]
pub struct TenantClient {
    platform: Platform,
    tenant_id: String,
    key: String,
    app: String,
    /// Sent as `traceparent` on every request, when set.
    traceparent: Option<String>,
}

impl TenantClient {
    /// The tenant id this client names.
    pub fn tenant_id(&self) -> &str {
        &self.tenant_id
    }

    /// The app this client claims to be.
    pub fn app(&self) -> &str {
        &self.app
    }

    /// The same client presenting another API key.
    #[must_use]
    pub fn with_key(mut self, key: &str) -> Self {
        key.clone_into(&mut self.key);
        self
    }

    /// The same client naming another tenant id.
    #[must_use]
    pub fn with_tenant_id(mut self, id: &str) -> Self {
        id.clone_into(&mut self.tenant_id);
        self
    }

    /// The same client sending `traceparent` (W3C trace context) on its
    /// requests, so that what they cause is recorded in that trace.
    #[must_use]
    pub fn traced(mut self, traceparent: &str) -> Self {
        self.traceparent = Some(traceparent.to_owned());
        self
    }

    /// A request with the tenant headers (and the `traceparent`, if any),
    /// for what the helpers below do not cover.
    pub fn request(
        &self,
        method: Method,
        service: &str,
        path: &str,
    ) -> Result<reqwest::RequestBuilder, PlatformError> {
        let url = format!("{}{path}", self.platform.url(service)?);
        let request = self
            .platform
            .inner
            .http
            .request(method, url)
            .header("x-tenant-key", &self.key)
            .header("x-tenant-id", &self.tenant_id)
            .header("x-source-app", &self.app);
        Ok(match &self.traceparent {
            Some(tp) => request.header("traceparent", tp),
            None => request,
        })
    }

    /// `GET path` on `service`.
    pub async fn get(&self, service: &str, path: &str) -> Result<Answer, PlatformError> {
        self.call(Method::GET, service, path, None).await
    }

    /// `POST path` on `service` with a JSON body.
    pub async fn post(
        &self,
        service: &str,
        path: &str,
        body: &Value,
    ) -> Result<Answer, PlatformError> {
        self.call(Method::POST, service, path, Some(body)).await
    }

    /// `PATCH path` on `service` with a JSON body.
    pub async fn patch(
        &self,
        service: &str,
        path: &str,
        body: &Value,
    ) -> Result<Answer, PlatformError> {
        self.call(Method::PATCH, service, path, Some(body)).await
    }

    /// Any method, with an optional JSON body.
    pub async fn call(
        &self,
        method: Method,
        service: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Answer, PlatformError> {
        let url = format!("{}{path}", self.platform.url(service)?);
        let mut request = self.request(method.clone(), service, path)?;
        if let Some(body) = body {
            request = request.json(body);
        }
        self.platform.send(request, method, &url).await
    }
}

/// A name fit for a tenant id: lowercase letters, digits and dashes.
pub fn sanitize(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let trimmed = cleaned.trim_matches('-');
    if trimmed.is_empty() {
        "tenant".to_owned()
    } else {
        trimmed.chars().take(40).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_names_become_ids() {
        assert_eq!(sanitize("Acme Corp"), "acme-corp");
        assert_eq!(sanitize("--"), "tenant");
        assert_eq!(sanitize(&"x".repeat(60)).len(), 40);
    }

    #[test]
    fn an_unknown_service_is_named() {
        let platform = Platform::new(BTreeMap::new(), "t".into()).unwrap();
        let error = platform.url("crm-api").unwrap_err();
        assert_eq!(
            error.to_string(),
            "the ecosystem has no service `crm-api` with a URL"
        );
    }
}
