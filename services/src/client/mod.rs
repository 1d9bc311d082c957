//! Outgoing calls: to the other services ([`CrossAppClient`]) and, through
//! the same [`ResilientHttp`], to the external APIs ([`crate::external`]).
//!
//! A call to another service carries a fresh cross-app token scoped to what
//! the calling service may do on the target (from the permission matrix),
//! the tenant and the source app; [`ResilientHttp`] adds correlation id and
//! `traceparent`, retries, the circuit breaker of the target and the
//! `cross_app_*` metrics.

mod http;

use std::sync::Arc;

use reqwest::{Method, StatusCode};
use serde_json::Value;

pub use http::{HttpError, ResilientHttp, CORRELATION_ID, TRACEPARENT};

use crate::auth::grants::Grants;
use crate::auth::token::TokenKeys;
use crate::auth::{SOURCE_APP, TENANT_ID};
use crate::config::Upstreams;
use crate::resilience::BreakerOpen;
use crate::state::ServiceName;

/// Why a call to another service failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("{target} is not configured (set its URL)")]
    NotConfigured { target: ServiceName },
    #[error("failed to sign the cross-app token")]
    Token(#[from] crate::auth::token::TokenError),
    #[error(transparent)]
    CircuitOpen(BreakerOpen),
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

/// The client a service calls the other services with.
#[derive(Debug, Clone)]
pub struct CrossAppClient {
    http: ResilientHttp,
    source: ServiceName,
    tokens: TokenKeys,
    grants: Arc<Grants>,
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
    idempotent: bool,
}

impl<'a> Call<'a> {
    pub fn get(target: ServiceName, path: impl Into<String>) -> Self {
        Self {
            target,
            method: Method::GET,
            path: path.into(),
            body: None,
            accept: &[],
            idempotent: true,
        }
    }

    /// A POST; retried only when it was certainly not processed, unless
    /// marked [`idempotent`](Self::idempotent).
    pub fn post(target: ServiceName, path: impl Into<String>, body: &'a Value) -> Self {
        Self {
            target,
            method: Method::POST,
            path: path.into(),
            body: Some(body),
            accept: &[],
            idempotent: false,
        }
    }

    /// Non-2xx statuses the caller handles itself (e.g. 404, 409) instead of
    /// receiving them as [`CallError::Status`].
    pub fn accept(mut self, statuses: &'a [StatusCode]) -> Self {
        self.accept = statuses;
        self
    }

    /// Repeating this call has no further effect (e.g. a create that answers
    /// 409 the second time): retry it on any transient failure.
    pub fn idempotent(mut self) -> Self {
        self.idempotent = true;
        self
    }
}

impl CrossAppClient {
    pub fn new(
        source: ServiceName,
        tokens: TokenKeys,
        grants: Arc<Grants>,
        http: ResilientHttp,
        upstreams: Arc<Upstreams>,
    ) -> Self {
        Self {
            http,
            source,
            tokens,
            grants,
            upstreams,
        }
    }

    /// The resilient HTTP layer under this client (shared breakers).
    pub fn http(&self) -> &ResilientHttp {
        &self.http
    }

    fn base_url(&self, target: ServiceName) -> Option<&str> {
        match target {
            ServiceName::FlowApi => self.upstreams.flow_api_url.as_deref(),
            ServiceName::CrmApi => self.upstreams.crm_api_url.as_deref(),
            ServiceName::SecurePlatform => self.upstreams.secure_platform_url.as_deref(),
            ServiceName::Gateway | ServiceName::Worker => None,
        }
    }

    /// Sends `call` and returns the status and JSON body of a 2xx answer or
    /// of an accepted status; any other status is an error.
    ///
    /// # Errors
    /// [`CallError`]: target not configured, breaker open, unreachable after
    /// retries, a status not accepted, or a body that is not JSON.
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
            idempotent,
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
        let operation = || crate::telemetry::operations::called(target, method.as_str(), &path);
        let mut request = self
            .http
            .client()
            .request(
                method.clone(),
                format!("{}{path}", base_url.trim_end_matches('/')),
            )
            .bearer_auth(token)
            .header(TENANT_ID, on_behalf.tenant)
            .header(SOURCE_APP, self.source.as_str());
        if let Some(body) = body {
            request = request.json(body);
        }
        let idempotency = idempotent.then_some(crate::resilience::Idempotency::Idempotent);
        let sent = self
            .http
            .send_as(
                target.as_str(),
                operation,
                Some(on_behalf.tenant),
                request,
                idempotency,
            )
            .await;
        let response = sent.map_err(|e| match e {
            HttpError::CircuitOpen(open) => CallError::CircuitOpen(open),
            HttpError::Build { source, .. } | HttpError::Unreachable { source, .. } => {
                CallError::Unreachable { target, source }
            }
        })?;
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

#[cfg(test)]
mod tests;
