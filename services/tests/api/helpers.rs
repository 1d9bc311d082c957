//! Test helpers: a real Postgres from the machine's binaries, migrated and
//! seeded from `fixtures/tenants.yaml`, and the three services in-process on
//! free ports (the zero2prod `spawn_app` pattern).
//!
//! Set `TEST_LOG=1` to see the services' logs.

use std::path::PathBuf;
use std::sync::Arc;

use reqwest::{Method, StatusCode};
use serde_json::Value;
use sqlx::PgPool;
use tekup_harness::env::LocalPostgres;
use tekup_services::auth::grants::Grants;
use tekup_services::config::Upstreams;
use tekup_services::events::EventBus;
use tekup_services::external::ExternalApis;
use tekup_services::gateway::{Gateway, GatewayArgs};
use tekup_services::queue::{QueueName, Queues};
use tekup_services::tenants::{self, SeedFile};
use tekup_services::worker::{RetrySpan, WorkerArgs};
use tekup_services::{db, AppState, ServiceName};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::local_redis::LocalRedis;
use crate::ws::WsClient;

pub(crate) const ACME_KEY: &str = "tk_acmekey1_AcmeTestSecretNotForProduction01";
pub(crate) const ACME_REVOKED_KEY: &str = "tk_acmeold1_AcmeRevokedSecretNotForProduction";
pub(crate) const GLOBEX_KEY: &str = "tk_globexkey1_GlobexTestSecretNotForProduction1";
pub(crate) const UMBRELLA_KEY: &str = "tk_umbrellakey1_UmbrellaTestSecretNotForProduct";
pub(crate) const INITECH_KEY: &str = "tk_initechkey1_InitechTestSecretNotForProductio";
pub(crate) const TOKEN_SECRET: &[u8] = b"test-token-secret";
pub(crate) const SERVICE_ROLE: &str = "tekup_service";

pub(crate) fn fixture(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path)
}

/// A running ecosystem of the three services on one fresh database.
pub(crate) struct TestApp {
    /// Superuser pool (bypasses RLS): for arranging and inspecting.
    pub(crate) admin: PgPool,
    /// Pool of the services' login role (RLS applies).
    pub(crate) service_pool: PgPool,
    pub(crate) flow: String,
    pub(crate) crm: String,
    pub(crate) secure: String,
    /// Set with the bus: the gateway's and the worker's base URLs.
    pub(crate) gateway: Option<String>,
    pub(crate) worker: Option<String>,
    pub(crate) grants: Grants,
    pub(crate) external: ExternalApis,
    pub(crate) queues: Option<Queues>,
    pub(crate) events: Option<EventBus>,
    pub(crate) http: reqwest::Client,
    /// Stops the gateway's and worker's background tasks.
    pub(crate) shutdown: CancellationToken,
    pub(crate) redis: Option<LocalRedis>,
    pub(crate) pg: LocalPostgres,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// What to start besides the three API services.
#[derive(Default)]
pub(crate) struct Options {
    /// Redis, events and queues on every service, and the gateway.
    pub(crate) bus: bool,
    /// A worker in-process (needs `bus`).
    pub(crate) worker: Option<WorkerArgs>,
    pub(crate) gateway: GatewayArgs,
    /// Where the external APIs (mocks) are.
    pub(crate) external: ExternalApis,
}

impl Options {
    /// The full bus with a fast-retrying worker.
    pub(crate) fn bus() -> Self {
        Self {
            bus: true,
            worker: Some(fast_worker()),
            gateway: GatewayArgs::default(),
            external: ExternalApis::default(),
        }
    }
}

/// Worker settings with short delays, so retries happen within a test.
fn fast_worker() -> WorkerArgs {
    WorkerArgs {
        concurrency: 2,
        name: None,
        reclaim_idle_ms: 500,
        retry_base_ms: 20,
        retry_max_ms: 200,
        // The count alone decides, so a job that keeps failing reaches the
        // dead letters within a test rather than after 30 s.
        retry_spans: QueueName::ALL
            .map(|queue| RetrySpan {
                queue,
                span: std::time::Duration::ZERO,
            })
            .to_vec(),
        alert_email: Some("security@acme.test".into()),
    }
}

/// Serves a service in-process on a free port; returns its base URL.
async fn serve(state: AppState) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    let app = tekup_services::app(state);
    tokio::spawn(tekup_services::serve(listener, app, std::future::pending()));
    url
}

fn init_log() {
    if std::env::var_os("TEST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter("info,sqlx=warn")
            .with_test_writer()
            .try_init();
    }
}

impl TestApp {
    pub(crate) async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// Spawns the services; `tweak` may adjust each service's state first.
    pub(crate) async fn spawn_with(tweak: impl Fn(&mut AppState)) -> Self {
        Self::start(Options::default(), tweak).await
    }

    /// Spawns the services with Redis, the event bus, the gateway and a worker.
    pub(crate) async fn spawn_bus() -> Self {
        Self::start(Options::bus(), |_| {}).await
    }

    pub(crate) async fn start(options: Options, tweak: impl Fn(&mut AppState)) -> Self {
        init_log();
        let pg = LocalPostgres::start().await.expect("postgres starts");
        let server = db::connect(&pg.admin_url(), 2)
            .await
            .expect("admin connects");
        sqlx::query("CREATE DATABASE tekup")
            .execute(&server)
            .await
            .expect("database created");
        server.close().await;
        let admin = db::connect(&pg.url("postgres", "tekup"), 4)
            .await
            .expect("admin connects");
        db::MIGRATOR.run(&admin).await.expect("migrations apply");
        db::ensure_login_role(&admin, SERVICE_ROLE, "service-password")
            .await
            .expect("role created");
        let seed = SeedFile::load_with_contract(
            Some(&fixture("fixtures/tenants.yaml")),
            Some(&fixture("fixtures/platform.yaml")),
        )
        .expect("seed file and contract load");
        tenants::seed(&admin, &seed).await.expect("seeded");
        let service_pool = db::connect(&pg.url(SERVICE_ROLE, "tekup"), 20)
            .await
            .expect("service role connects");
        let grants = Grants::load(&service_pool).await.expect("grants load");

        let redis = options.bus.then(LocalRedis::start);
        let client = redis
            .as_ref()
            .map(|r| redis::Client::open(r.url()).expect("redis url"));
        let (events, queues) = match &client {
            Some(client) => {
                let manager = redis::aio::ConnectionManager::new(client.clone())
                    .await
                    .expect("redis connects");
                (
                    Some(EventBus::new(manager)),
                    Some(
                        Queues::connect(client.clone())
                            .await
                            .expect("queues set up"),
                    ),
                )
            }
            None => (None, None),
        };
        let shutdown = CancellationToken::new();
        let state_for = |service: ServiceName, upstreams: Upstreams| {
            let mut state = AppState::new(
                service,
                service_pool.clone(),
                grants.clone(),
                TOKEN_SECRET,
                upstreams,
            );
            state.admin_token = Some("admin-token".into());
            state.events = events.clone();
            state.queues = queues.clone();
            tweak(&mut state);
            state
        };
        let base = Upstreams {
            external: options.external.clone(),
            ..Upstreams::default()
        };
        let crm = serve(state_for(ServiceName::CrmApi, base.clone())).await;
        let secure = serve(state_for(ServiceName::SecurePlatform, base.clone())).await;
        let upstreams = Upstreams {
            crm_api_url: Some(crm.clone()),
            secure_platform_url: Some(secure.clone()),
            ..base.clone()
        };
        let flow = serve(state_for(ServiceName::FlowApi, upstreams.clone())).await;
        let upstreams = Upstreams {
            flow_api_url: Some(flow.clone()),
            ..upstreams
        };
        let mut gateway = None;
        if let Some(client) = &client {
            let mut state = state_for(ServiceName::Gateway, base.clone());
            let hub = Gateway::start(
                client.clone(),
                service_pool.clone(),
                Arc::clone(&state.metrics),
                &options.gateway,
                shutdown.clone(),
            )
            .await
            .expect("gateway starts");
            state.gateway = Some(hub);
            gateway = Some(serve(state).await);
        }
        let mut worker = None;
        if let Some(args) = options.worker {
            let state = state_for(ServiceName::Worker, upstreams);
            tokio::spawn(tekup_services::worker::run(
                state.clone(),
                args,
                shutdown.clone(),
            ));
            worker = Some(serve(state).await);
        }
        Self {
            admin,
            service_pool,
            flow,
            crm,
            secure,
            gateway,
            worker,
            grants,
            external: options.external,
            queues,
            events,
            http: reqwest::Client::new(),
            shutdown,
            redis,
            pg,
        }
    }

    /// Spawns the services with Redis, the event bus and the gateway, but no
    /// worker: the test arranges the queue, then calls [`Self::start_worker`].
    pub(crate) async fn spawn_bus_without_worker() -> Self {
        Self::start(
            Options {
                worker: None,
                ..Options::bus()
            },
            |_| {},
        )
        .await
    }

    /// Starts a fast-retrying worker in-process; it stops with the app.
    pub(crate) fn start_worker(&self) {
        let run = tekup_services::worker::run(
            self.worker_state(),
            fast_worker(),
            self.shutdown.child_token(),
        );
        tokio::spawn(run);
    }

    /// State for a worker started by the test itself.
    fn worker_state(&self) -> AppState {
        let mut state = AppState::new(
            ServiceName::Worker,
            self.service_pool.clone(),
            self.grants.clone(),
            TOKEN_SECRET,
            Upstreams {
                crm_api_url: Some(self.crm.clone()),
                flow_api_url: Some(self.flow.clone()),
                external: self.external.clone(),
                ..Upstreams::default()
            },
        );
        state.events = self.events.clone();
        state.queues = self.queues.clone();
        state
    }

    /// The gateway's base URL.
    pub(crate) fn gateway(&self) -> &str {
        self.gateway.as_deref().expect("started with the bus")
    }

    /// Connects a WebSocket client as `app` of `tenant`.
    pub(crate) async fn ws(&self, key: &str, tenant: &str, app: &str) -> WsClient {
        WsClient::connect(self.gateway(), key, tenant, app, None).await
    }

    /// The Prometheus text of the service at `base`.
    pub(crate) async fn metrics(&self, base: &str) -> String {
        let response = self
            .http
            .get(format!("{base}/metrics"))
            .send()
            .await
            .expect("metrics answer");
        response.text().await.expect("metrics text")
    }

    /// `GET /admin/queues` of the worker, as JSON.
    pub(crate) async fn queue_stats(&self, queue: &str) -> Value {
        let url = format!("{}/admin/queues", self.flow);
        let stats: Value = self
            .http
            .get(url)
            .bearer_auth("admin-token")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        stats["queues"]
            .as_array()
            .and_then(|qs| qs.iter().find(|q| q["name"] == queue).cloned())
            .unwrap_or_else(|| panic!("no queue {queue} in {stats}"))
    }

    pub(crate) fn url(&self, service: ServiceName) -> &str {
        match service {
            ServiceName::FlowApi => &self.flow,
            ServiceName::CrmApi => &self.crm,
            ServiceName::SecurePlatform => &self.secure,
            other => panic!("{other} has no URL in this test app"),
        }
    }

    /// A request with a tenant's key, the tenant id and the source app.
    pub(crate) fn as_app(&self, key: &str, tenant: &str, app: &str) -> Caller<'_> {
        Caller {
            app: self,
            headers: vec![
                ("x-tenant-key".into(), key.into()),
                ("x-tenant-id".into(), tenant.into()),
                ("x-source-app".into(), app.into()),
            ],
        }
    }

    /// A request with arbitrary headers.
    pub(crate) fn with_headers(&self, headers: &[(&str, &str)]) -> Caller<'_> {
        Caller {
            app: self,
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect(),
        }
    }
}

/// Who sends a request.
pub(crate) struct Caller<'a> {
    app: &'a TestApp,
    headers: Vec<(String, String)>,
}

/// A response, read whole.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) headers: reqwest::header::HeaderMap,
    pub(crate) json: Value,
}

impl Caller<'_> {
    pub(crate) async fn send(
        &self,
        service: ServiceName,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Reply {
        let mut request = self
            .app
            .http
            .request(method, format!("{}{path}", self.app.url(service)));
        for (k, v) in &self.headers {
            request = request.header(k, v);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request sent");
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body read");
        let json = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("body is not JSON ({e}): {text}"))
        };
        Reply {
            status,
            headers,
            json,
        }
    }

    pub(crate) async fn get(&self, service: ServiceName, path: &str) -> Reply {
        self.send(service, Method::GET, path, None).await
    }

    pub(crate) async fn post(&self, service: ServiceName, path: &str, body: Value) -> Reply {
        self.send(service, Method::POST, path, Some(body)).await
    }
}

/// Asserts a status, printing the body when it differs.
#[track_caller]
pub(crate) fn assert_status(reply: &Reply, expected: u16) {
    assert_eq!(
        reply.status.as_u16(),
        expected,
        "unexpected status; body: {:#}",
        reply.json
    );
}

/// Asserts the JSON error shape and returns its code.
#[track_caller]
pub(crate) fn error_code(reply: &Reply) -> String {
    let error = &reply.json["error"];
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "error without message: {}",
        reply.json
    );
    assert!(
        error["correlationId"]
            .as_str()
            .is_some_and(|c| !c.is_empty()),
        "error without correlation id: {}",
        reply.json
    );
    error["code"]
        .as_str()
        .unwrap_or_else(|| panic!("error without code: {}", reply.json))
        .to_owned()
}

/// How long a test waits for something that should happen.
pub(crate) const WITHIN: std::time::Duration = std::time::Duration::from_secs(15);

/// Polls `probe` until it returns `Some` (a condition, not a fixed sleep),
/// failing the test after [`WITHIN`] with `what` in the message.
pub(crate) async fn eventually<T, F: std::future::Future<Output = Option<T>>>(
    what: &str,
    mut probe: impl FnMut() -> F,
) -> T {
    let deadline = tokio::time::Instant::now() + WITHIN;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
}
