//! Configuration of a service, from flags or the environment.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;

use crate::external::ExternalApis;
use crate::resilience::ResilienceArgs;

/// Options shared by every service subcommand.
#[derive(Debug, Clone, Args)]
pub struct ServiceArgs {
    /// Address to listen on; port 0 picks a free port (logged at start-up).
    #[arg(long, env = "BIND", default_value = "127.0.0.1:0")]
    pub bind: SocketAddr,

    /// Postgres URL of the service's login role (not the tables' owner, so
    /// row-level security applies).
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: String,

    /// How long to wait at start for the database to answer (`30s`,
    /// `500ms`; `0` tries once): the service may start before its
    /// database, and gives up after this naming the database and the last
    /// connection error.
    #[arg(long, env = "DATABASE_WAIT", default_value = "30s", value_parser = parse_wait)]
    pub database_wait: Duration,

    /// Maximum connections in the service's Postgres pool.
    #[arg(long, env = "DB_MAX_CONNECTIONS", default_value_t = 10)]
    pub db_max_connections: u32,

    /// Shared secret signing the HS256 cross-app tokens between services.
    #[arg(long, env = "TEKUP_TOKEN_SECRET", hide_env_values = true)]
    pub token_secret: String,

    /// Bearer token guarding `/admin/*`; the admin endpoints are off without it.
    #[arg(long, env = "ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,

    /// Redis URL for events and queues (e.g. redis://127.0.0.1:6379). Without
    /// it the Flow API processes leads inside the request and publishes no events.
    #[arg(long, env = "REDIS_URL")]
    pub redis_url: Option<String>,

    /// Largest accepted request body, in bytes; larger bodies get 413.
    #[arg(long, env = "MAX_BODY_BYTES", default_value_t = 64 * 1024)]
    pub max_body_bytes: usize,

    #[command(flatten)]
    pub upstreams: Upstreams,
}

/// Where the other services and the external APIs are.
#[derive(Debug, Clone, Default, Args)]
pub struct Upstreams {
    /// Base URL of the Flow API.
    #[arg(long, env = "FLOW_API_URL")]
    pub flow_api_url: Option<String>,
    /// Base URL of the CRM API (Flow API needs it for lead-to-contact).
    #[arg(long, env = "CRM_API_URL")]
    pub crm_api_url: Option<String>,
    /// Base URL of the Secure Platform.
    #[arg(long, env = "SECURE_PLATFORM_URL")]
    pub secure_platform_url: Option<String>,
    /// External APIs (Gemini, OpenAI, Graph, Stripe): base URLs and credentials.
    #[command(flatten, next_help_heading = "External APIs")]
    pub external: ExternalApis,
    /// Retry and circuit breaking of every outgoing call.
    #[command(flatten, next_help_heading = "Outgoing calls")]
    pub resilience: ResilienceArgs,
}

fn parse_wait(text: &str) -> Result<Duration, String> {
    crate::worker::parse_span(text)
        .ok_or_else(|| format!("`{text}` is not a duration (write e.g. `30s`, `500ms`, `2m`)"))
}
