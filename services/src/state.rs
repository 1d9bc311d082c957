//! Shared state of a running service.

use std::fmt;
use std::sync::Arc;

use sqlx::PgPool;

use crate::auth::grants::Grants;
use crate::auth::ratelimit::RateLimiter;
use crate::auth::token::TokenKeys;
use crate::client::CrossAppClient;
use crate::config::Upstreams;
use crate::metrics::Metrics;

/// The services this crate implements, by their names in the permission matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ServiceName {
    FlowApi,
    CrmApi,
    SecurePlatform,
}

impl ServiceName {
    pub const ALL: [ServiceName; 3] = [Self::FlowApi, Self::CrmApi, Self::SecurePlatform];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::FlowApi => "flow-api",
            Self::CrmApi => "crm-api",
            Self::SecurePlatform => "secure-platform",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

impl fmt::Display for ServiceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything a handler may need; cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    pub service: ServiceName,
    pub db: PgPool,
    pub grants: Arc<Grants>,
    pub tokens: TokenKeys,
    pub client: CrossAppClient,
    pub metrics: Arc<Metrics>,
    pub rate_limiter: Arc<RateLimiter>,
    /// Bearer token of the admin endpoints; `None` disables them.
    pub admin_token: Option<Arc<str>>,
    pub max_body_bytes: usize,
}

impl AppState {
    /// State for `service` with default limits and the admin endpoints off.
    pub fn new(
        service: ServiceName,
        db: PgPool,
        grants: Grants,
        token_secret: &[u8],
        upstreams: Upstreams,
    ) -> Self {
        let grants = Arc::new(grants);
        let metrics = Arc::new(Metrics::new());
        let tokens = TokenKeys::new(token_secret);
        let client = CrossAppClient::new(
            service,
            tokens.clone(),
            Arc::clone(&grants),
            Arc::clone(&metrics),
            Arc::new(upstreams),
        );
        Self {
            service,
            db,
            grants,
            tokens,
            client,
            metrics,
            rate_limiter: Arc::default(),
            admin_token: None,
            max_body_bytes: 64 * 1024,
        }
    }

    /// Points the outgoing client at other upstreams.
    pub fn set_upstreams(&mut self, upstreams: Upstreams) {
        self.client = CrossAppClient::new(
            self.service,
            self.tokens.clone(),
            Arc::clone(&self.grants),
            Arc::clone(&self.metrics),
            Arc::new(upstreams),
        );
    }
}
