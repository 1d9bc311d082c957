//! The tenants a run loads, created before it starts.
//!
//! One fresh tenant per user: users never share a rate limit bucket or a
//! WebSocket room, so what one user does cannot slow or disturb another,
//! and the run leaves its data in tenants of its own. They are created
//! with a rate limit far above what a run sends, so a 429 means the
//! platform refused load, not that the harness hit a per-tenant quota.

use futures::StreamExt as _;
use serde_json::json;

use super::LoadError;

/// Requests per minute a load tenant may make.
const LOAD_RATE_LIMIT_PER_MINUTE: u32 = 10_000_000;
/// Tenants created at once.
const CREATE_AT_ONCE: usize = 8;

/// A tenant and its API key.
#[derive(Debug, Clone)]
pub struct Tenant {
    pub id: String,
    pub key: String,
}

/// Creates `count` tenants through flow-api's admin API.
pub(crate) async fn create(
    http: &reqwest::Client,
    flow_api: &str,
    admin_token: &str,
    run: &str,
    count: usize,
) -> Result<Vec<Tenant>, LoadError> {
    futures::stream::iter(0..count)
        .map(|i| create_one(http, flow_api, admin_token, format!("load-{run}-{i}")))
        .buffered(CREATE_AT_ONCE)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect()
}

// TODO(platform): replaced by the shared platform client once it lands on main.
async fn create_one(
    http: &reqwest::Client,
    flow_api: &str,
    admin_token: &str,
    id: String,
) -> Result<Tenant, LoadError> {
    let url = format!("{}/admin/tenants", flow_api.trim_end_matches('/'));
    let failed = |why: String| LoadError::Tenants {
        url: url.clone(),
        why,
    };
    let response = http
        .post(&url)
        .bearer_auth(admin_token)
        .json(&json!({ "id": id, "name": id, "rateLimitPerMinute": LOAD_RATE_LIMIT_PER_MINUTE }))
        .send()
        .await
        .map_err(|e| failed(crate::env::error_chain(&e)))?;
    let status = response.status();
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    match body["apiKeys"][0].as_str() {
        Some(key) if status.is_success() => Ok(Tenant {
            id,
            key: key.to_owned(),
        }),
        _ if status.as_u16() == 401 || status.as_u16() == 403 => Err(failed(format!(
            "the admin API refused the admin token ({status}); give the services' ADMIN_TOKEN \
             with --admin-token or TEKUP_ADMIN_TOKEN"
        ))),
        _ => Err(failed(format!("answered {status}: {body}"))),
    }
}
