//! Shared state of a running service.

use std::fmt;
use std::sync::Arc;

use sqlx::PgPool;

use crate::auth::grants::Grants;
use crate::auth::ratelimit::RateLimiter;
use crate::auth::token::TokenKeys;
use crate::client::{CrossAppClient, ResilientHttp};
use crate::config::Upstreams;
use crate::events::EventBus;
use crate::external::External;
use crate::gateway::Gateway;
use crate::metrics::Metrics;
use crate::queue::Queues;
use crate::resilience::Resilience;

/// The services this crate implements, by their names in the permission matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ServiceName {
    FlowApi,
    CrmApi,
    SecurePlatform,
    Gateway,
    Worker,
}

impl ServiceName {
    /// Every service.
    pub const ALL: [ServiceName; 5] = [
        Self::FlowApi,
        Self::CrmApi,
        Self::SecurePlatform,
        Self::Gateway,
        Self::Worker,
    ];
    /// The services with a tenant HTTP API.
    pub const APIS: [ServiceName; 3] = [Self::FlowApi, Self::CrmApi, Self::SecurePlatform];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::FlowApi => "flow-api",
            Self::CrmApi => "crm-api",
            Self::SecurePlatform => "secure-platform",
            Self::Gateway => "gateway",
            Self::Worker => "worker",
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
    /// Retrying, circuit-breaking HTTP for any other outgoing call.
    pub http: ResilientHttp,
    /// Clients of the external APIs (each present when configured).
    pub external: Arc<External>,
    pub metrics: Arc<Metrics>,
    pub rate_limiter: Arc<RateLimiter>,
    /// Publisher of cross-app events (needs Redis).
    pub events: Option<EventBus>,
    /// The job queues (needs Redis).
    pub queues: Option<Queues>,
    /// Set on the gateway service only.
    pub gateway: Option<Arc<Gateway>>,
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
        let (http, client, external) = outgoing(service, &tokens, &grants, &metrics, upstreams);
        Self {
            service,
            db,
            grants,
            tokens,
            client,
            http,
            external,
            metrics,
            rate_limiter: Arc::default(),
            events: None,
            queues: None,
            gateway: None,
            admin_token: None,
            max_body_bytes: 64 * 1024,
        }
    }

    /// Points the outgoing client at other upstreams.
    pub fn set_upstreams(&mut self, upstreams: Upstreams) {
        (self.http, self.client, self.external) = outgoing(
            self.service,
            &self.tokens,
            &self.grants,
            &self.metrics,
            upstreams,
        );
    }
}

/// The outgoing HTTP layer, the cross-app client and the external API
/// clients, all sharing one set of circuit breakers.
fn outgoing(
    service: ServiceName,
    tokens: &TokenKeys,
    grants: &Arc<Grants>,
    metrics: &Arc<Metrics>,
    upstreams: Upstreams,
) -> (ResilientHttp, CrossAppClient, Arc<External>) {
    let resilience =
        Resilience::from_args(&upstreams.resilience, metrics.circuit_breaker_state.clone());
    let http = ResilientHttp::new(service.as_str(), Arc::clone(metrics), Arc::new(resilience));
    let external = Arc::new(External::new(&upstreams.external, &http));
    let client = CrossAppClient::new(
        service,
        tokens.clone(),
        Arc::clone(grants),
        http.clone(),
        Arc::new(upstreams),
    );
    (http, client, external)
}
