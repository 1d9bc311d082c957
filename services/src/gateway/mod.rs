//! The WebSocket event gateway: `GET /events`.
//!
//! Clients authenticate like any API call (`x-tenant-key`, `x-tenant-id`,
//! `x-source-app`, as headers or, for browsers, as the query parameters
//! `tenantKey`, `tenantId`, `app`) and may resume with `lastEventId` (query)
//! or `Last-Event-ID` (header). One reader task follows the Redis event
//! stream and hands each event to the [`Hub`], which fans it out to the
//! connections of the event's tenant whose app the routing table names.
//! Deliveries are audited in Postgres (`gateway.event_audit`) by a batching
//! writer, per event and room.

mod audit;
pub mod hub;
mod socket;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use redis::aio::ConnectionManager;
use redis::streams::{StreamRangeReply, StreamReadOptions, StreamReadReply};
use redis::AsyncCommands;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::auth::{self, SOURCE_APP, TENANT_ID, TENANT_KEY};
use crate::error::ApiError;
use crate::events::{parse_cursor, CrossAppEvent, EVENTS_STREAM};
use crate::metrics::Metrics;
use crate::state::AppState;
pub use hub::{Hub, Subscription};
pub use socket::{
    CLOSE_GOING_AWAY, CLOSE_INTERNAL, CLOSE_NORMAL, CLOSE_PING_TIMEOUT, CLOSE_SLOW_CONSUMER,
    CLOSE_TOO_BIG,
};

/// Tuning of the gateway.
#[derive(Debug, Clone, clap::Args)]
pub struct GatewayArgs {
    /// Frames buffered per connection before it counts as a slow consumer and is closed.
    #[arg(long, env = "GATEWAY_BUFFER", default_value_t = 1024)]
    pub buffer: usize,
    /// Seconds between pings; a connection without pong for two intervals is closed.
    #[arg(long, env = "GATEWAY_PING_SECS", default_value_t = 20)]
    pub ping_secs: u64,
    /// Largest message (and frame) a client may send, in bytes; a larger one
    /// closes the connection with 1009 before it is read whole.
    #[arg(long, env = "GATEWAY_MAX_MESSAGE_BYTES", default_value_t = DEFAULT_MAX_MESSAGE_BYTES)]
    pub max_message_bytes: usize,
}

/// 64 KiB: a client only ever sends `join` and `ping` (a few dozen bytes).
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 64 * 1024;

impl Default for GatewayArgs {
    fn default() -> Self {
        Self {
            buffer: 1024,
            ping_secs: 20,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
        }
    }
}

/// The gateway's shared parts.
#[derive(Debug)]
pub struct Gateway {
    pub hub: Arc<Hub>,
    redis: RedisHandle,
    ping_interval: Duration,
    max_message_bytes: usize,
    shutdown: CancellationToken,
    /// The audit writer, awaited by [`Gateway::finish`].
    audit: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Tells the audit writer to write what it holds and stop.
    audit_stop: CancellationToken,
}

/// How long [`Gateway::finish`] waits for the audit's last rows.
const AUDIT_FLUSH_WITHIN: Duration = Duration::from_secs(10);

struct RedisHandle(ConnectionManager);

impl std::fmt::Debug for RedisHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Redis")
    }
}

impl Gateway {
    /// Starts the gateway's background tasks (stream reader, audit writer);
    /// they stop when `shutdown` is cancelled.
    pub async fn start(
        client: redis::Client,
        db: sqlx::PgPool,
        metrics: Arc<Metrics>,
        args: &GatewayArgs,
        shutdown: CancellationToken,
    ) -> Result<Arc<Self>, redis::RedisError> {
        let (audit_tx, audit_rx) = tokio::sync::mpsc::unbounded_channel();
        let hub = Hub::new(metrics, audit_tx, args.buffer);
        let redis =
            ConnectionManager::new_with_config(client.clone(), crate::queue::reconnecting())
                .await?;
        let start_after = latest_cursor(&mut redis.clone()).await?;
        let gateway = Arc::new(Self {
            hub,
            redis: RedisHandle(redis),
            ping_interval: Duration::from_secs(args.ping_secs.max(1)),
            max_message_bytes: args.max_message_bytes.max(1),
            shutdown: shutdown.clone(),
            audit: std::sync::Mutex::new(None),
            audit_stop: CancellationToken::new(),
        });
        let writer = tokio::spawn(audit::run(db, audit_rx, gateway.audit_stop.clone()));
        *gateway.audit.lock().unwrap_or_else(|e| e.into_inner()) = Some(writer);
        let reader =
            ConnectionManager::new_with_config(client, crate::queue::reconnecting()).await?;
        tokio::spawn(read_stream(
            Arc::clone(&gateway.hub),
            reader,
            start_after,
            shutdown,
        ));
        Ok(gateway)
    }

    /// Writes the audit rows still held (of the deliveries made so far) and
    /// stops the writer; called once every connection is closed, so that a
    /// stopping gateway leaves no delivery unaudited.
    pub async fn finish(&self) {
        self.audit_stop.cancel();
        let writer = self.audit.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(writer) = writer {
            if tokio::time::timeout(AUDIT_FLUSH_WITHIN, writer)
                .await
                .is_err()
            {
                tracing::error!(
                    "the event audit's last rows were not written within {AUDIT_FLUSH_WITHIN:?}"
                );
            }
        }
    }

    /// The events after `cursor` that `tenant`/`app` should see, oldest first.
    async fn replay(
        &self,
        cursor: &str,
        tenant: &str,
        app: &str,
    ) -> Result<Vec<(hub::Frame, hub::AuditRow)>, redis::RedisError> {
        let mut redis = self.redis.0.clone();
        let mut from = format!("({cursor}");
        let mut seen = std::collections::HashSet::new();
        let mut frames = Vec::new();
        loop {
            let page: StreamRangeReply =
                redis.xrange_count(EVENTS_STREAM, &from, "+", 1000).await?;
            let Some(last) = page.ids.last().map(|e| e.id.clone()) else {
                break;
            };
            for entry in page.ids {
                let Some(event) = decode(&entry.map) else {
                    continue;
                };
                if Hub::visible_to(&event, tenant, app) && seen.insert(event.id) {
                    if let Some(frame) = hub::Frame::event(&entry.id, &event) {
                        // A replay is a delivery to the room too, and is
                        // audited as one (see [`audit`]).
                        let row = hub::AuditRow {
                            tenant_id: event.tenant_id.clone(),
                            event_id: event.id,
                            event_type: event.kind.clone(),
                            cursor: entry.id.clone(),
                            app: app.to_owned(),
                            connections: 1,
                        };
                        frames.push((frame, row));
                    }
                }
            }
            from = format!("({last}");
        }
        Ok(frames)
    }
}

async fn latest_cursor(redis: &mut ConnectionManager) -> Result<String, redis::RedisError> {
    let last: StreamRangeReply = redis.xrevrange_count(EVENTS_STREAM, "+", "-", 1).await?;
    Ok(last
        .ids
        .first()
        .map_or_else(|| "0-0".to_owned(), |e| e.id.clone()))
}

fn decode(fields: &std::collections::HashMap<String, redis::Value>) -> Option<CrossAppEvent> {
    let raw: String = fields
        .get("event")
        .and_then(|v| redis::from_redis_value(v).ok())?;
    match serde_json::from_str(&raw) {
        Ok(event) => Some(event),
        Err(e) => {
            tracing::warn!(error = %e, "unreadable event on the stream skipped");
            None
        }
    }
}

/// Follows the event stream from `after`, dispatching every event. Redis
/// errors (a restart, a partition) are logged and the read is retried from
/// the last cursor, so nothing published meanwhile is skipped.
async fn read_stream(
    hub: Arc<Hub>,
    mut redis: ConnectionManager,
    mut after: String,
    shutdown: CancellationToken,
) {
    let options = StreamReadOptions::default().block(2000).count(500);
    let mut failures = 0u32;
    loop {
        let ids = [after.as_str()];
        let read =
            redis.xread_options::<_, _, Option<StreamReadReply>>(&[EVENTS_STREAM], &ids, &options);
        let reply = tokio::select! {
            () = shutdown.cancelled() => return,
            reply = read => reply,
        };
        match reply {
            Ok(reply) => {
                failures = 0;
                for entry in reply.into_iter().flat_map(|r| r.keys).flat_map(|k| k.ids) {
                    if let Some(event) = decode(&entry.map) {
                        hub.dispatch(&entry.id, &event);
                    }
                    after = entry.id;
                }
            }
            Err(e) => {
                failures += 1;
                tracing::warn!(error = %e, failures, "reading the event stream failed; retrying");
                // Back off between attempts against a Redis that is down.
                let pause = Duration::from_millis(100 * u64::from(failures.min(20)));
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(pause) => {}
                }
            }
        }
    }
}

pub fn routes() -> Router<AppState> {
    Router::new().route("/events", get(connect))
}

/// The operations of [`routes`], for the OpenAPI document (see [`crate::openapi`]).
#[derive(Debug, utoipa::OpenApi)]
#[openapi(
    info(
        title = "gateway",
        description = "The WebSocket event gateway: each tenant's events, to the rooms of the apps the routing table names."
    ),
    paths(connect)
)]
pub struct GatewayDoc;

/// The credentials as query parameters, for browsers (which cannot set
/// headers on a WebSocket handshake); the headers win when both are sent.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
struct ConnectQuery {
    /// The tenant's API key, when not sent as `x-tenant-key`.
    #[param(pattern = "^tk_[a-z0-9]{4,40}_[A-Za-z0-9]{24,}$")]
    tenant_key: Option<String>,
    /// The tenant, when not sent as `x-tenant-id`.
    #[param(pattern = "^[a-z0-9][a-z0-9-]{0,62}$", example = "acme")]
    tenant_id: Option<String>,
    /// The app whose room to join, when not sent as `x-source-app`.
    #[param(schema_with = crate::openapi::fields::app)]
    app: Option<String>,
    /// Resume after this event cursor (`<ms>-<seq>`), when not sent as `Last-Event-ID`.
    #[param(pattern = "^[0-9]+-[0-9]+$", example = "1700000000000-0")]
    last_event_id: Option<String>,
}

/// The header a reconnecting client resumes with (read by [`connect`]).
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[expect(
    dead_code,
    reason = "describes a header for the document; `connect` reads it"
)]
struct ResumeHeader {
    /// Resume after this event cursor (`<ms>-<seq>`).
    #[param(
        rename = "last-event-id",
        pattern = "^[0-9]+-[0-9]+$",
        example = "1700000000000-0"
    )]
    last_event_id: Option<String>,
}

/// Join the tenant's events
///
/// A WebSocket upgrade. The connection receives the events of its tenant
/// routed to its app, each once, as JSON text frames carrying the event's
/// stream cursor (`id`, for `lastEventId`).
#[utoipa::path(
    get,
    path = "/events",
    operation_id = "connectEvents",
    params(ConnectQuery, ResumeHeader),
    responses(
        (status = 101, description = "switched to the WebSocket protocol"),
        (status = 400, description = "not a WebSocket handshake, or a `lastEventId` that is not a cursor", body = crate::openapi::Error),
    ),
    security(("tenantKey" = [])),
    tag = "events",
)]

async fn connect(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<ConnectQuery>,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let Some(gateway) = state.gateway.clone() else {
        return Err(ApiError::NotFound("this service is not a gateway".into()));
    };
    let header = |name: &str| -> Result<Option<String>, ApiError> {
        Ok(auth::header_str(&headers, name)?.map(str::to_owned))
    };
    let missing = |what: &str| {
        ApiError::Unauthenticated(format!("missing `{what}` (header) or its query parameter"))
    };
    let key = header(TENANT_KEY)?
        .or(query.tenant_key)
        .ok_or_else(|| missing(TENANT_KEY))?;
    let tenant = header(TENANT_ID)?
        .or(query.tenant_id)
        .ok_or_else(|| missing(TENANT_ID))?;
    let app = header(SOURCE_APP)?
        .or(query.app)
        .ok_or_else(|| missing(SOURCE_APP))?;
    let ctx = auth::authenticate_key(&state, &key, tenant, Some(&app)).await?;
    let resume_from = header("last-event-id")?.or(query.last_event_id);
    if let Some(cursor) = &resume_from {
        if parse_cursor(cursor).is_none() {
            return Err(ApiError::BadRequest(format!(
                "`lastEventId` {cursor:?} is not an event cursor (`<ms>-<seq>`)"
            )));
        }
    }
    let peer = socket::Peer {
        tenant: ctx.tenant_id,
        app: ctx.app,
        resume_from,
    };
    // A frame's header states its length: one over the bound is refused
    // before its payload is read (tungstenite's defaults are 16 MiB frames
    // and 64 MiB messages).
    let upgrade = if crate::defects::active("ws-no-frame-limit") {
        upgrade
    } else {
        upgrade
            .max_frame_size(gateway.max_message_bytes)
            .max_message_size(gateway.max_message_bytes)
    };
    Ok(upgrade.on_upgrade(move |ws| socket::run(gateway, ws, peer)))
}
