//! Who is calling, for which tenant, with which permissions.
//!
//! Every tenant endpoint takes a [`TenantContext`] extractor. It accepts
//! either a tenant API key (`x-tenant-key`, with `x-tenant-id` and
//! `x-source-app`) or a cross-app token (`Authorization: Bearer`, with
//! `x-tenant-id`) and resolves the permissions of the calling app on this
//! service from the matrix. Handlers then state what they need with
//! [`TenantContext::require`].

pub mod grants;
pub mod keys;
pub mod ratelimit;
pub mod token;

use std::collections::BTreeSet;
use std::time::Instant;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};

use crate::error::ApiError;
use crate::state::AppState;
use keys::ApiKey;

pub const TENANT_KEY: &str = "x-tenant-key";
pub const TENANT_ID: &str = "x-tenant-id";
pub const SOURCE_APP: &str = "x-source-app";

/// The matrix rows that are services calling each other with cross-app
/// tokens, never apps a tenant's key may name. (`secure-platform` is both a
/// service and the platform's app of that name, so it is not here.)
pub const SERVICE_IDENTITIES: [&str; 4] = ["flow-api", "crm-api", "gateway", "worker"];

/// How the caller proved who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    ApiKey { key_id: String },
    CrossAppToken { issuer: String },
}

/// The authenticated caller of a tenant endpoint.
#[derive(Debug, Clone)]
pub struct TenantContext {
    pub tenant_id: String,
    /// The app (or, for cross-app tokens, the service) making the call.
    pub app: String,
    /// For cross-app tokens: the app whose request caused the call.
    pub origin_app: Option<String>,
    pub permissions: BTreeSet<String>,
    pub credential: Credential,
    service: &'static str,
}

impl TenantContext {
    /// Refuses with 403 unless the caller holds `permission` on this service.
    pub fn require(&self, permission: &str) -> Result<(), ApiError> {
        if self.permissions.contains(permission) || crate::defects::active("access-skip-permission")
        {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "app `{}` lacks permission `{permission}` on {}",
                self.app, self.service
            )))
        }
    }
}

/// The one value of header `name`, if present. Two values of a credential
/// header are refused (400): which of them counts would otherwise depend
/// on the proxy in front of the service.
pub(crate) fn header_str<'a>(
    headers: &'a HeaderMap,
    name: &str,
) -> Result<Option<&'a str>, ApiError> {
    if headers.get_all(name).iter().nth(1).is_some() && !crate::defects::active("access-dup-header")
    {
        return Err(ApiError::BadRequest(format!(
            "header `{name}` is given more than once"
        )));
    }
    headers
        .get(name)
        .map(|v| {
            v.to_str()
                .map(str::trim)
                .map_err(|_| ApiError::BadRequest(format!("header `{name}` is not valid text")))
        })
        .transpose()
}

/// The row behind an API key.
#[derive(Debug, sqlx::FromRow)]
struct KeyRow {
    tenant_id: String,
    secret_sha256: Vec<u8>,
    key_active: bool,
    tenant_active: bool,
    allowed_apps: Vec<String>,
    rate_limit_per_minute: i32,
}

#[derive(Debug, sqlx::FromRow)]
struct TenantRow {
    active: bool,
    rate_limit_per_minute: i32,
}

impl FromRequestParts<AppState> for TenantContext {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        crate::outage::sticky_gate()?;
        let headers = &parts.headers;
        let tenant_id = header_str(headers, TENANT_ID)?
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ApiError::Unauthenticated(format!("missing `{TENANT_ID}` header")))?
            .to_owned();
        let bearer = header_str(headers, header::AUTHORIZATION.as_str())?
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        let source_app = header_str(headers, SOURCE_APP)?.filter(|a| !a.is_empty());

        if let Some(token) = bearer {
            let (ctx, rate_limit) = authenticate_token(state, token, tenant_id, source_app).await?;
            limit_rate(state, ctx, rate_limit)
        } else {
            let key = header_str(headers, TENANT_KEY)?.ok_or_else(|| {
                ApiError::Unauthenticated(format!(
                    "missing credentials: send `{TENANT_KEY}` or a cross-app bearer token"
                ))
            })?;
            authenticate_key(state, key, tenant_id, source_app).await
        }
    }
}

fn limit_rate(
    state: &AppState,
    ctx: TenantContext,
    per_minute: i32,
) -> Result<TenantContext, ApiError> {
    // Known now, even when the rate limit refuses the request.
    crate::context::RequestContext::set_caller(&ctx.tenant_id, Some(&ctx.app));
    let per_minute = u32::try_from(per_minute).unwrap_or(1);
    state
        .rate_limiter
        .check(&ctx.tenant_id, per_minute, Instant::now())
        .map_err(|retry_after_secs| ApiError::RateLimited { retry_after_secs })?;
    Ok(ctx)
}

/// Authenticates a tenant API key for `source_app` (and counts the request
/// against the tenant's rate limit). Also used by the WebSocket gateway.
pub(crate) async fn authenticate_key(
    state: &AppState,
    key: &str,
    tenant_id: String,
    source_app: Option<&str>,
) -> Result<TenantContext, ApiError> {
    let (ctx, rate_limit) = key_context(state, key, tenant_id, source_app).await?;
    limit_rate(state, ctx, rate_limit)
}

async fn key_context(
    state: &AppState,
    key: &str,
    tenant_id: String,
    source_app: Option<&str>,
) -> Result<(TenantContext, i32), ApiError> {
    let invalid = || ApiError::Unauthenticated("invalid API key".into());
    let key = ApiKey::parse(key)
        .map_err(|e| ApiError::Unauthenticated(format!("malformed API key: {e}")))?;
    let row: Option<KeyRow> = sqlx::query_as(
        "SELECT k.tenant_id, k.secret_sha256, k.active AS key_active, t.active AS tenant_active,
                t.allowed_apps, t.rate_limit_per_minute
           FROM auth.api_keys k JOIN auth.tenants t ON t.id = k.tenant_id
          WHERE k.key_id = $1",
    )
    .bind(&key.key_id)
    .fetch_optional(&state.db)
    .await?;
    let Some(row) = row else {
        // Same work as a found key, so timing does not reveal which key ids exist.
        let _ = key.matches(&[0; 32]);
        return Err(invalid());
    };
    if !key.matches(&row.secret_sha256) {
        return Err(invalid());
    }
    if !row.key_active {
        return Err(ApiError::Unauthenticated("API key is inactive".into()));
    }
    if row.tenant_id != tenant_id {
        return Err(ApiError::Forbidden(format!(
            "`{TENANT_ID}` does not match the tenant of the API key"
        )));
    }
    if !row.tenant_active && !crate::defects::active("access-suspended") {
        return Err(ApiError::Forbidden("tenant is inactive".into()));
    }
    let app = source_app
        .ok_or_else(|| ApiError::Unauthenticated(format!("missing `{SOURCE_APP}` header")))?;
    // A service's identity (its grants in the matrix) is for its cross-app
    // tokens only: a tenant's key never acts as a service.
    if SERVICE_IDENTITIES.contains(&app) {
        return Err(ApiError::Forbidden(format!(
            "`{app}` is a service identity: services authenticate with cross-app tokens, not API keys"
        )));
    }
    if !row.allowed_apps.iter().any(|a| a == app) {
        return Err(ApiError::Forbidden(format!(
            "app `{app}` is not allowed for this tenant"
        )));
    }
    let ctx = TenantContext {
        tenant_id,
        app: app.to_owned(),
        origin_app: None,
        permissions: state.grants.for_app(app, state.service),
        credential: Credential::ApiKey { key_id: key.key_id },
        service: state.service.as_str(),
    };
    Ok((ctx, row.rate_limit_per_minute))
}

async fn authenticate_token(
    state: &AppState,
    token: &str,
    tenant_id: String,
    source_app: Option<&str>,
) -> Result<(TenantContext, i32), ApiError> {
    let claims = state
        .tokens
        .verify(token, state.service)
        .map_err(|e| ApiError::Unauthenticated(e.to_string()))?;
    if claims.sub != tenant_id {
        return Err(ApiError::Forbidden(format!(
            "the cross-app token was issued for another tenant than `{TENANT_ID}`"
        )));
    }
    if source_app.is_some_and(|app| app != claims.iss) {
        return Err(ApiError::Forbidden(format!(
            "`{SOURCE_APP}` does not match the issuer of the cross-app token"
        )));
    }
    let tenant: Option<TenantRow> =
        sqlx::query_as("SELECT active, rate_limit_per_minute FROM auth.tenants WHERE id = $1")
            .bind(&tenant_id)
            .fetch_optional(&state.db)
            .await?;
    let tenant = tenant.ok_or_else(|| ApiError::Unauthenticated("unknown tenant".into()))?;
    if !tenant.active {
        return Err(ApiError::Forbidden("tenant is inactive".into()));
    }
    // A token can narrow, never widen, what the issuing service may do.
    let granted = state.grants.for_app(&claims.iss, state.service);
    let permissions = claims
        .scope
        .split_whitespace()
        .filter(|p| granted.contains(*p))
        .map(str::to_owned)
        .collect();
    let ctx = TenantContext {
        tenant_id,
        app: claims.iss.clone(),
        origin_app: claims.origin_app,
        permissions,
        credential: Credential::CrossAppToken { issuer: claims.iss },
        service: state.service.as_str(),
    };
    Ok((ctx, tenant.rate_limit_per_minute))
}
