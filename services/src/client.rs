//! Calls from one service to another, on behalf of a tenant.
//!
//! Every call carries a fresh cross-app token scoped to what the calling
//! service may do on the target (from the permission matrix), the caller's
//! correlation id and a W3C `traceparent`, and is counted in
//! `cross_app_requests_total` / `cross_app_request_duration_seconds`.
//! Retries and the circuit breaker come with the event-bus work (issue 4).

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::auth::grants::Grants;
use crate::auth::token::TokenKeys;
use crate::auth::{SOURCE_APP, TENANT_ID};
use crate::config::Upstreams;
use crate::context::RequestContext;
use crate::metrics::{CrossAppLabels, Metrics, RouteLabels};
use crate::state::ServiceName;

/// Why a call to another service failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("{target} is not configured (set its URL)")]
    NotConfigured { target: ServiceName },
    #[error("failed to sign the cross-app token")]
    Token(#[from] crate::auth::token::TokenError),
    #[error("failed to reach {target}")]
    Unreachable {
        target: ServiceName,
        #[source]
        source: reqwest::Error,
    },
    #[error("{target} answered {status}: {body}")]
    Status {
        target: ServiceName,
        status: StatusCode,
        body: String,
    },
    #[error("{target} answered with a body that is not JSON")]
    Decode {
        target: ServiceName,
        #[source]
        source: reqwest::Error,
    },
}

/// The outgoing HTTP client of a service.
#[derive(Debug, Clone)]
pub struct CrossAppClient {
    http: reqwest::Client,
    source: ServiceName,
    tokens: TokenKeys,
    grants: Arc<Grants>,
    metrics: Arc<Metrics>,
    upstreams: Arc<Upstreams>,
}

/// Who a call is made for.
#[derive(Debug, Clone, Copy)]
pub struct OnBehalf<'a> {
    pub tenant: &'a str,
    pub origin_app: Option<&'a str>,
}

/// One request to another service.
#[derive(Debug, Clone)]
#[must_use]
pub struct Call<'a> {
    target: ServiceName,
    method: Method,
    path: String,
    body: Option<&'a Value>,
    accept: &'a [StatusCode],
}

impl<'a> Call<'a> {
    pub fn get(target: ServiceName, path: impl Into<String>) -> Self {
        Self {
            target,
            method: Method::GET,
            path: path.into(),
            body: None,
            accept: &[],
        }
    }

    pub fn post(target: ServiceName, path: impl Into<String>, body: &'a Value) -> Self {
        Self {
            target,
            method: Method::POST,
            path: path.into(),
            body: Some(body),
            accept: &[],
        }
    }

    /// Non-2xx statuses the caller handles itself (e.g. 404, 409) instead of
    /// receiving them as [`CallError::Status`].
    pub fn accept(mut self, statuses: &'a [StatusCode]) -> Self {
        self.accept = statuses;
        self
    }
}

impl CrossAppClient {
    pub fn new(
        source: ServiceName,
        tokens: TokenKeys,
        grants: Arc<Grants>,
        metrics: Arc<Metrics>,
        upstreams: Arc<Upstreams>,
    ) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(2))
            .build()
            .expect("a client with default TLS settings builds");
        Self {
            http,
            source,
            tokens,
            grants,
            metrics,
            upstreams,
        }
    }

    fn base_url(&self, target: ServiceName) -> Option<&str> {
        match target {
            ServiceName::FlowApi => self.upstreams.flow_api_url.as_deref(),
            ServiceName::CrmApi => self.upstreams.crm_api_url.as_deref(),
            ServiceName::SecurePlatform => self.upstreams.secure_platform_url.as_deref(),
        }
    }

    /// Sends `call` and returns the status and JSON body of a 2xx answer or
    /// of an accepted status; any other status is an error.
    pub async fn call(
        &self,
        on_behalf: OnBehalf<'_>,
        call: Call<'_>,
    ) -> Result<(StatusCode, Value), CallError> {
        let Call {
            target,
            method,
            path,
            body,
            accept,
        } = call;
        let base_url = self
            .base_url(target)
            .ok_or(CallError::NotConfigured { target })?;
        let scope = self.grants.for_app(self.source.as_str(), target);
        let scope: Vec<&str> = scope.iter().map(String::as_str).collect();
        let now = chrono::Utc::now().timestamp();
        let token = self.tokens.issue(
            self.source,
            target,
            on_behalf.tenant,
            on_behalf.origin_app,
            &scope,
            now,
        )?;
        let mut request = self
            .http
            .request(method, format!("{}{path}", base_url.trim_end_matches('/')))
            .bearer_auth(token)
            .header(TENANT_ID, on_behalf.tenant)
            .header(SOURCE_APP, self.source.as_str());
        if let Some(ctx) = RequestContext::current() {
            request = request
                .header("x-correlation-id", &ctx.correlation_id)
                .header("traceparent", ctx.outgoing_traceparent());
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let started = Instant::now();
        let result = request.send().await;
        let route = RouteLabels {
            source: self.source.as_str().into(),
            target: target.as_str().into(),
        };
        self.metrics
            .cross_app_duration
            .get_or_create(&route)
            .observe(started.elapsed().as_secs_f64());
        let status_label = match &result {
            Ok(response) => response.status().as_u16().to_string(),
            Err(_) => "error".into(),
        };
        self.metrics
            .cross_app_requests
            .get_or_create(&CrossAppLabels {
                source: route.source,
                target: route.target,
                status: status_label,
            })
            .inc();
        let response = result.map_err(|source| CallError::Unreachable { target, source })?;
        let status = response.status();
        if !status.is_success() && !accept.contains(&status) {
            let body = response.text().await.unwrap_or_default();
            return Err(CallError::Status {
                target,
                status,
                body,
            });
        }
        let json = response
            .json()
            .await
            .map_err(|source| CallError::Decode { target, source })?;
        Ok((status, json))
    }
}
