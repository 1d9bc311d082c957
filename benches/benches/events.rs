//! Events through the real stack: fan-out by the WebSocket gateway, the
//! latency from `POST /leads` to the `LEAD_CREATED` frame, and leads per
//! second through the lead-processing queue.
//!
//! `cargo bench -p tekup-benches --bench events`
//!
//! Everything runs on this machine, in this process (as the services' own
//! API tests do): Postgres from the machine's binaries (migrated, seeded
//! from `fixtures/tenants.yaml`), a `redis-server` with append-only
//! persistence, the CRM and Flow APIs with events and queues, the gateway
//! and one worker with default settings, each service with its own
//! Postgres pool and Redis connections as `tekup-service` would have. The
//! load generators (WebSocket clients, HTTP clients) share the same cores,
//! so the figures are those of the whole loop on one machine.
//!
//! 1. *fan-out*: `BENCH_CLIENTS` (1,000) clients connect as `acme`/`crm-web`;
//!    `BENCH_EVENTS` (1,000) events alternating `LEAD_CREATED` and
//!    `CONTACT_UPDATED` (both routed to crm-web) are published with
//!    [`EventBus`], and every client counts the distinct sequence numbers it
//!    receives: nothing may be lost or duplicated, nobody may be slow (the
//!    gateway's buffer is sized to hold every event).
//! 2. *latency*: `BENCH_LATENCY_LEADS` (500) sequential `POST /leads` as
//!    flow-web, each until its `LEAD_CREATED` frame reaches a flow-web client.
//! 3. *throughput*: `BENCH_LEADS` (2,000) leads posted by
//!    `BENCH_HTTP_CONCURRENCY` (8) HTTP clients as fast as they are accepted,
//!    until every one's `LEAD_CREATED` frame has arrived and the queue counts
//!    them processed.
//!
//! `BENCH_QUICK=1` runs smaller numbers (under a minute). `BENCH_REDIS_FSYNC`
//! sets Redis's `appendfsync` (default `always`, as in the services' tests).
//! The acme tenant's request rate limit is lifted for the run: the worker's
//! two CRM calls per lead count against it, and the benchmark measures the
//! pipeline, not the limiter. `BENCH_LOG=1` shows the services' logs.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use serde_json::{json, Value};
use tekup_harness::env::LocalPostgres;
use tekup_services::auth::grants::Grants;
use tekup_services::config::Upstreams;
use tekup_services::events::{CrossAppEvent, EventBus};
use tekup_services::gateway::{Gateway, GatewayArgs};
use tekup_services::metrics::{Metrics, QueueOutcomeLabels};
use tekup_services::queue::{QueueName, Queues};
use tekup_services::tenants::{self, SeedFile};
use tekup_services::worker::WorkerArgs;
use tekup_services::{db, AppState, ServiceName};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Notify};
use tokio::time::{timeout_at, Instant};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const ACME_KEY: &str = "tk_acmekey1_AcmeTestSecretNotForProduction01";
const TOKEN_SECRET: &[u8] = b"bench-token-secret";
const SERVICE_ROLE: &str = "tekup_service";
/// What `tekup-service` uses by default (`DB_MAX_CONNECTIONS`).
const POOL_SIZE: u32 = 10;
/// Longest wait for any one phase to complete.
const PHASE_DEADLINE: Duration = Duration::from_secs(120);

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

#[derive(Debug, Clone)]
struct Params {
    quick: bool,
    clients: usize,
    events: usize,
    publish_concurrency: usize,
    warmup_leads: usize,
    latency_leads: usize,
    leads: usize,
    http_concurrency: usize,
    fsync: String,
}

impl Params {
    fn from_env() -> Self {
        let quick = tekup_benches::quick();
        let pick = |full: usize, small: usize| if quick { small } else { full };
        Self {
            quick,
            clients: tekup_benches::env_usize("BENCH_CLIENTS", pick(1000, 1000)).max(1),
            events: tekup_benches::env_usize("BENCH_EVENTS", pick(1000, 200)).max(1),
            publish_concurrency: tekup_benches::env_usize("BENCH_PUBLISH_CONCURRENCY", 16).max(1),
            warmup_leads: pick(20, 10),
            latency_leads: tekup_benches::env_usize("BENCH_LATENCY_LEADS", pick(500, 100)).max(1),
            leads: tekup_benches::env_usize("BENCH_LEADS", pick(2000, 400)).max(1),
            http_concurrency: tekup_benches::env_usize("BENCH_HTTP_CONCURRENCY", 8).max(1),
            fsync: std::env::var("BENCH_REDIS_FSYNC").unwrap_or_else(|_| "always".into()),
        }
    }
}

fn main() {
    let params = Params::from_env();
    // Each client holds two sockets in this process (its own and the gateway's).
    let needed = params.clients as u64 * 2 + 1024;
    let limit = rlimit::increase_nofile_limit(needed).expect("failed to read the open-files limit");
    assert!(
        limit >= needed,
        "{} clients need {needed} open files but the hard limit is {limit}: raise it (`ulimit -n {needed}`) or set BENCH_CLIENTS lower",
        params.clients
    );
    if std::env::var_os("BENCH_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter("info,sqlx=warn")
            .with_writer(std::io::stderr)
            .init();
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let table = rt.block_on(run(&params));
    drop(rt);
    #[expect(clippy::print_stdout, reason = "the benchmark's result table")]
    {
        println!("{table}");
    }
}

async fn run(params: &Params) -> String {
    let started = Instant::now();
    let stack = Stack::start(params).await;
    let mut report = Report::new(params, &stack, started.elapsed());
    fan_out(params, &stack, &mut report).await;
    let mut client = LeadClient::connect(&stack).await;
    latency(params, &stack, &mut client, &mut report).await;
    throughput(params, &stack, &mut client, &mut report).await;
    report.finish(&stack);
    report.text
}

// ---------------------------------------------------------------- the stack

/// The services in-process on free ports, with their databases.
struct Stack {
    flow: String,
    gateway: String,
    queues: Queues,
    events: EventBus,
    gateway_metrics: Arc<Metrics>,
    worker_metrics: Arc<Metrics>,
    gateway_buffer: usize,
    worker_concurrency: usize,
    shutdown: CancellationToken,
    // Dropped last: the servers' processes.
    _redis: LocalRedis,
    _pg: LocalPostgres,
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl Stack {
    async fn start(params: &Params) -> Self {
        let pg = LocalPostgres::start().await.expect("postgres starts");
        let server = db::connect(&pg.admin_url(), 1)
            .await
            .expect("admin connects");
        sqlx::query("CREATE DATABASE tekup")
            .execute(&server)
            .await
            .expect("database created");
        server.close().await;
        let admin = db::connect(&pg.url("postgres", "tekup"), 2)
            .await
            .expect("admin connects");
        db::MIGRATOR.run(&admin).await.expect("migrations apply");
        db::ensure_login_role(&admin, SERVICE_ROLE, "bench-password")
            .await
            .expect("login role created");
        let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures");
        let seed = SeedFile::load_with_contract(
            Some(&fixtures.join("tenants.yaml")),
            Some(&fixtures.join("platform.yaml")),
        )
        .expect("seed file and contract load");
        tenants::seed(&admin, &seed).await.expect("tenants seeded");
        sqlx::query("UPDATE auth.tenants SET rate_limit_per_minute = 100000000 WHERE id = 'acme'")
            .execute(&admin)
            .await
            .expect("rate limit lifted");
        admin.close().await;

        let redis = LocalRedis::start(&params.fsync);
        let service_url = pg.url(SERVICE_ROLE, "tekup");
        let shutdown = CancellationToken::new();
        let state = |service: ServiceName, upstreams: Upstreams| {
            let url = service_url.clone();
            let redis_url = redis.url();
            async move {
                let pool = db::connect(&url, POOL_SIZE)
                    .await
                    .expect("service connects");
                let grants = Grants::load(&pool).await.expect("grants load");
                let mut state = AppState::new(service, pool, grants, TOKEN_SECRET, upstreams);
                state.admin_token = Some("admin-token".into());
                let client = redis::Client::open(redis_url).expect("redis url");
                let manager = redis::aio::ConnectionManager::new(client.clone())
                    .await
                    .expect("redis connects");
                state.events = Some(EventBus::new(manager));
                state.queues = Some(Queues::connect(client.clone()).await.expect("queues"));
                (state, client)
            }
        };
        let (crm_state, _) = state(ServiceName::CrmApi, Upstreams::default()).await;
        let crm = serve(crm_state, &shutdown).await;
        let upstreams = Upstreams {
            crm_api_url: Some(crm),
            ..Upstreams::default()
        };
        let (flow_state, _) = state(ServiceName::FlowApi, upstreams.clone()).await;
        let queues = flow_state.queues.clone().expect("queues");
        let events = flow_state.events.clone().expect("events");
        let flow = serve(flow_state, &shutdown).await;

        let gateway_args = GatewayArgs {
            buffer: (params.events + 64).max(GatewayArgs::default().buffer),
            ..GatewayArgs::default()
        };
        let (mut gateway_state, client) = state(ServiceName::Gateway, Upstreams::default()).await;
        let gateway_metrics = Arc::clone(&gateway_state.metrics);
        let hub = Gateway::start(
            client,
            gateway_state.db.clone(),
            Arc::clone(&gateway_state.metrics),
            &gateway_args,
            shutdown.clone(),
        )
        .await
        .expect("gateway starts");
        gateway_state.gateway = Some(hub);
        let gateway = serve(gateway_state, &shutdown).await;

        let worker_args = WorkerArgs {
            name: Some("bench-worker".into()),
            ..WorkerArgs::default()
        };
        let worker_concurrency = worker_args.concurrency;
        let (worker_state, _) = state(ServiceName::Worker, upstreams).await;
        let worker_metrics = Arc::clone(&worker_state.metrics);
        tokio::spawn(tekup_services::worker::run(
            worker_state,
            worker_args,
            shutdown.clone(),
        ));
        Self {
            flow,
            gateway,
            queues,
            events,
            gateway_metrics,
            worker_metrics,
            gateway_buffer: gateway_args.buffer,
            worker_concurrency,
            shutdown,
            _redis: redis,
            _pg: pg,
        }
    }

    fn worker_outcomes(&self, outcome: &str) -> u64 {
        self.worker_metrics
            .queue_processed
            .get_or_create(&QueueOutcomeLabels {
                queue: QueueName::LeadProcessing.as_str().to_owned(),
                outcome: outcome.to_owned(),
            })
            .get()
    }

    /// Processed count and dead letters of the lead-processing queue.
    async fn lead_queue(&self) -> (u64, u64) {
        let stats = self.queues.stats().await.expect("queue stats");
        let lead = stats
            .iter()
            .find(|s| s.name == QueueName::LeadProcessing.as_str())
            .expect("lead-processing queue");
        (lead.processed, lead.dead_letters)
    }
}

/// Serves a service on a free port until `shutdown`; returns its base URL.
async fn serve(state: AppState, shutdown: &CancellationToken) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    let app = tekup_services::app(state);
    tokio::spawn(tekup_services::serve(
        listener,
        app,
        shutdown.clone().cancelled_owned(),
    ));
    url
}

/// A throw-away `redis-server` with append-only persistence, killed on drop.
struct LocalRedis {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl LocalRedis {
    fn start(fsync: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let mut child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "yes", "--appendfsync", fsync])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts (install it: apt-get install redis-server)");
        let stdout = child.stdout.take().expect("piped stdout");
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.contains("Ready to accept connections") {
                    let _ = ready_tx.send(());
                }
            }
        });
        ready_rx
            .recv_timeout(Duration::from_secs(20))
            .expect("redis-server ready within 20 s");
        Self {
            child,
            port,
            _dir: dir,
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for LocalRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn ws_connect(gateway: &str, app: &str) -> Ws {
    let url = format!("{}/events", gateway.replacen("http://", "ws://", 1));
    let mut request = url.into_client_request().expect("request");
    let headers = request.headers_mut();
    headers.insert("x-tenant-key", ACME_KEY.parse().expect("header"));
    headers.insert("x-tenant-id", "acme".parse().expect("header"));
    headers.insert("x-source-app", app.parse().expect("header"));
    let (mut ws, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("websocket connects");
    // The welcome frame is sent after the connection joined its room.
    match ws.next().await {
        Some(Ok(Message::Text(text))) if text.contains("\"welcome\"") => ws,
        other => panic!("expected a welcome frame, got {other:?}"),
    }
}

// ------------------------------------------------------------- 1. fan-out

/// What one fan-out client received.
#[derive(Debug, Default)]
struct Tally {
    distinct: usize,
    duplicates: u64,
    other: u64,
}

/// Reads frames until cancelled; signals `done` once it has all `n` sequence numbers.
async fn count_frames(
    mut ws: Ws,
    n: usize,
    done: Arc<(AtomicUsize, Notify)>,
    stop: CancellationToken,
) -> Tally {
    let mut seen = vec![false; n];
    let mut tally = Tally::default();
    loop {
        let message = tokio::select! {
            () = stop.cancelled() => break,
            message = ws.next() => message,
        };
        let Some(Ok(message)) = message else { break };
        let Message::Text(text) = message else {
            continue;
        };
        // Cheaper than parsing: the load generator shares the cores.
        let seq = text.find("\"seq\":").and_then(|at| {
            let digits = &text[at + 6..];
            let end = digits
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(digits.len());
            digits[..end].parse::<usize>().ok()
        });
        match seq {
            Some(i) if i < n && !seen[i] => {
                seen[i] = true;
                tally.distinct += 1;
                if tally.distinct == n {
                    done.0.fetch_add(1, Ordering::SeqCst);
                    done.1.notify_one();
                }
            }
            Some(_) => tally.duplicates += 1,
            None => tally.other += 1,
        }
    }
    let _ = ws.close(None).await;
    tally
}

async fn fan_out(params: &Params, stack: &Stack, report: &mut Report) {
    let (clients, n) = (params.clients, params.events);
    let publish_events = |tag: &'static str| -> Vec<CrossAppEvent> {
        (0..n)
            .map(|i| {
                let kind = if i % 2 == 0 {
                    "LEAD_CREATED"
                } else {
                    "CONTACT_UPDATED"
                };
                CrossAppEvent::new(kind, "bench", "acme", json!({ tag: i }))
            })
            .collect()
    };
    // Baseline: the same events with nobody connected (Redis and the bus alone).
    let events = publish_events("baseline");
    let started = Instant::now();
    publish_all(stack, &events, params.publish_concurrency).await;
    let alone_took = started.elapsed();

    let slow_before = stack.gateway_metrics.websocket_slow_consumers.get();
    let delivered_before = stack.gateway_metrics.websocket_events_delivered.get();
    let connect_started = Instant::now();
    let sockets: Vec<Ws> = futures::stream::iter(0..clients)
        .map(|_| ws_connect(&stack.gateway, "crm-web"))
        .buffer_unordered(64)
        .collect()
        .await;
    let connect_took = connect_started.elapsed();

    let done = Arc::new((AtomicUsize::new(0), Notify::new()));
    let stop = CancellationToken::new();
    let readers: Vec<_> = sockets
        .into_iter()
        .map(|ws| tokio::spawn(count_frames(ws, n, Arc::clone(&done), stop.clone())))
        .collect();
    let events = publish_events("seq");
    let started = Instant::now();
    publish_all(stack, &events, params.publish_concurrency).await;
    let publish_took = started.elapsed();
    let deadline = started + PHASE_DEADLINE;
    while done.0.load(Ordering::SeqCst) < clients {
        if timeout_at(deadline, done.1.notified()).await.is_err() {
            break;
        }
    }
    let delivered_took = started.elapsed();
    let complete = done.0.load(Ordering::SeqCst);
    stop.cancel();
    let mut total = Tally::default();
    for reader in readers {
        let tally = reader.await.expect("reader task");
        total.distinct += tally.distinct;
        total.duplicates += tally.duplicates;
        total.other += tally.other;
    }
    let slow = stack.gateway_metrics.websocket_slow_consumers.get() - slow_before;
    let counted = stack.gateway_metrics.websocket_events_delivered.get() - delivered_before;
    let frames = clients * n;
    let params_text = format!(
        "{clients} clients acme/crm-web, N={n}, publish concurrency {}",
        params.publish_concurrency
    );
    report.section("1. fan-out through the gateway", &params_text);
    report.row(
        "connect clients (welcome received)",
        format!("{} s", secs(connect_took)),
        format!("{:.0} connects/s", rate(clients, connect_took)),
    );
    report.row(
        "publish N events, no client connected",
        format!("{} s", secs(alone_took)),
        format!("{:.0} events/s published (baseline)", rate(n, alone_took)),
    );
    report.row(
        "publish N events to the clients",
        format!("{} s", secs(publish_took)),
        format!("{:.0} events/s published", rate(n, publish_took)),
    );
    report.row(
        "until every client has all N",
        format!("{} s", secs(delivered_took)),
        format!(
            "{:.0} events/s, {:.0} frames/s delivered",
            rate(n, delivered_took),
            rate(frames, delivered_took)
        ),
    );
    report.row(
        "frames: complete clients / lost / dup",
        format!("{complete}/{clients}"),
        format!(
            "{} lost, {} duplicated, {} other; gateway counted {counted}",
            frames - total.distinct,
            total.duplicates,
            total.other
        ),
    );
    report.row(
        "slow consumers (closed 4008)",
        slow.to_string(),
        format!("gateway buffer {} frames", stack.gateway_buffer),
    );
}

/// Publishes `events` with up to `concurrency` in flight on the bus's connection.
async fn publish_all(stack: &Stack, events: &[CrossAppEvent], concurrency: usize) {
    let failed = futures::stream::iter(events)
        .map(|event| stack.events.publish(event))
        .buffer_unordered(concurrency)
        .filter(|published| std::future::ready(published.is_err()))
        .count()
        .await;
    assert_eq!(
        failed,
        0,
        "{failed} of {} events failed to publish",
        events.len()
    );
}

// ------------------------------------------------------- 2. and 3. leads

/// Posts leads as flow-web and follows their `LEAD_CREATED` frames on a
/// flow-web WebSocket client.
struct LeadClient {
    http: reqwest::Client,
    flow: String,
    frames: mpsc::UnboundedReceiver<(Uuid, Instant)>,
    seen: HashMap<Uuid, Instant>,
    run: Uuid,
    next: AtomicU64,
}

impl LeadClient {
    async fn connect(stack: &Stack) -> Self {
        let mut ws = ws_connect(&stack.gateway, "flow-web").await;
        let (tx, frames) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some(Ok(message)) = ws.next().await {
                let Message::Text(text) = message else {
                    continue;
                };
                let at = Instant::now();
                let frame: Value = serde_json::from_str(&text).expect("frames are JSON");
                let event = &frame["event"];
                if frame["type"] == "event" && event["type"] == "LEAD_CREATED" {
                    let id = event["data"]["id"].as_str().and_then(|s| s.parse().ok());
                    if tx.send((id.expect("lead id"), at)).is_err() {
                        break;
                    }
                }
            }
        });
        Self {
            http: reqwest::Client::new(),
            flow: stack.flow.clone(),
            frames,
            seen: HashMap::new(),
            run: Uuid::new_v4(),
            next: AtomicU64::new(0),
        }
    }

    /// Posts one lead; returns its id once accepted (201).
    async fn post(http: &reqwest::Client, flow: &str, email: String) -> Uuid {
        let response = http
            .post(format!("{flow}/leads"))
            .header("x-tenant-key", ACME_KEY)
            .header("x-tenant-id", "acme")
            .header("x-source-app", "flow-web")
            .json(&json!({ "firstName": "Bench", "lastName": "Lead", "email": email }))
            .send()
            .await
            .expect("POST /leads sent");
        let status = response.status();
        let body: Value = response.json().await.expect("lead JSON");
        assert_eq!(
            status.as_u16(),
            201,
            "POST /leads answered {status}: {body}"
        );
        body["id"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .expect("lead id")
    }

    fn email(&self) -> String {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        format!("lead-{i}-{}@bench.example", self.run.simple())
    }

    /// When the frame of `lead` arrived, waiting for it until `deadline`.
    async fn arrival(&mut self, lead: Uuid, deadline: Instant) -> Instant {
        loop {
            if let Some(at) = self.seen.get(&lead) {
                return *at;
            }
            match timeout_at(deadline, self.frames.recv()).await {
                Ok(Some((id, at))) => {
                    self.seen.insert(id, at);
                }
                _ => panic!("no LEAD_CREATED frame for lead {lead} within the deadline"),
            }
        }
    }
}

async fn latency(params: &Params, stack: &Stack, client: &mut LeadClient, report: &mut Report) {
    let mut end_to_end = Vec::with_capacity(params.latency_leads);
    let mut accepted = Vec::with_capacity(params.latency_leads);
    let retried_before = stack.worker_outcomes("retried");
    for i in 0..params.warmup_leads + params.latency_leads {
        let email = client.email();
        let sent = Instant::now();
        let lead = LeadClient::post(&client.http, &client.flow, email).await;
        let answered = sent.elapsed();
        let at = client.arrival(lead, sent + PHASE_DEADLINE).await;
        if i >= params.warmup_leads {
            accepted.push(answered);
            end_to_end.push(at - sent);
        }
    }
    let retried = stack.worker_outcomes("retried") - retried_before;
    report.section(
        "2. latency POST /leads -> LEAD_CREATED frame",
        &format!(
            "{} sequential leads after {} warm-up, 1 flow-web client",
            params.latency_leads, params.warmup_leads
        ),
    );
    report.percentiles("POST /leads answered (201)", &mut accepted);
    report.percentiles("LEAD_CREATED frame received", &mut end_to_end);
    report.row(
        "jobs retried (incl. warm-up)",
        retried.to_string(),
        "a retry waits the worker's backoff (500 ms base)".to_owned(),
    );
}

async fn throughput(params: &Params, stack: &Stack, client: &mut LeadClient, report: &mut Report) {
    let n = params.leads;
    let (processed_before, dead_before) = stack.lead_queue().await;
    let retried_before = stack.worker_outcomes("retried");
    let emails: Vec<String> = (0..n).map(|_| client.email()).collect();
    let emails = Arc::new(emails);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let posters: Vec<_> = (0..params.http_concurrency)
        .map(|_| {
            let (http, flow) = (client.http.clone(), client.flow.clone());
            let (emails, next) = (Arc::clone(&emails), Arc::clone(&next));
            tokio::spawn(async move {
                let mut posted = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(email) = emails.get(i) else { break };
                    let sent = Instant::now();
                    posted.push((LeadClient::post(&http, &flow, email.clone()).await, sent));
                }
                posted
            })
        })
        .collect();
    let mut posted = Vec::with_capacity(n);
    for poster in posters {
        posted.extend(poster.await.expect("poster task"));
    }
    let accept_took = started.elapsed();
    let deadline = started + PHASE_DEADLINE;
    let mut last = started;
    let mut under_load = Vec::with_capacity(n);
    for (lead, sent) in &posted {
        let at = client.arrival(*lead, deadline).await;
        last = last.max(at);
        under_load.push(at - *sent);
    }
    let events_took = last - started;
    // The job is acknowledged (and counted) just after its event is published.
    let mut processed = 0;
    let mut poll = tokio::time::interval(Duration::from_millis(10));
    while Instant::now() < deadline {
        poll.tick().await;
        processed = stack.lead_queue().await.0 - processed_before;
        if processed >= n as u64 {
            break;
        }
    }
    let processed_took = started.elapsed();
    let dead = stack.lead_queue().await.1 - dead_before;
    let retried = stack.worker_outcomes("retried") - retried_before;

    report.section(
        "3. leads through the lead-processing queue",
        &format!(
            "{n} leads, {} HTTP clients, 1 worker x {} consumers",
            params.http_concurrency, stack.worker_concurrency
        ),
    );
    report.row(
        "accepted by the API (201)",
        format!("{} s", secs(accept_took)),
        format!("{:.0} leads/s accepted", rate(n, accept_took)),
    );
    report.row(
        "all LEAD_CREATED frames received",
        format!("{} s", secs(events_took)),
        format!("{:.0} leads/s processed", rate(n, events_took)),
    );
    report.row(
        "queue `processed` reached N",
        format!("{} s", secs(processed_took)),
        format!("{processed}/{n} processed, {retried} retried, {dead} dead"),
    );
    report.percentiles("POST -> LEAD_CREATED during the burst", &mut under_load);
}

// ---------------------------------------------------------------- report

fn secs(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64())
}

fn rate(count: usize, d: Duration) -> f64 {
    count as f64 / d.as_secs_f64().max(1e-9)
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

/// The result table, built as the phases finish.
struct Report {
    text: String,
}

impl Report {
    fn new(params: &Params, stack: &Stack, start: Duration) -> Self {
        let cores = std::thread::available_parallelism().map_or(0, usize::from);
        let mode = if params.quick { "quick" } else { "default" };
        let text = format!(
            "\nevents bench ({mode} mode, {cores} cores): Postgres (local binaries), redis-server \
             AOF appendfsync={}, CRM + Flow APIs, gateway (buffer {}), 1 worker (concurrency {}), \
             all in-process with the load generators; stack started in {} s\n",
            params.fsync,
            stack.gateway_buffer,
            stack.worker_concurrency,
            secs(start)
        );
        Self { text }
    }

    fn section(&mut self, title: &str, params: &str) {
        self.text.push_str(&format!("\n{title}  [{params}]\n"));
    }

    fn row(&mut self, what: &str, value: String, detail: String) {
        self.text
            .push_str(&format!("  {what:<42} {value:>12}   {detail}\n"));
    }

    fn percentiles(&mut self, what: &str, samples: &mut [Duration]) {
        samples.sort();
        let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
        let detail = format!(
            "p50 {}  p90 {}  p99 {}  max {} ms",
            ms(at(0.5)),
            ms(at(0.9)),
            ms(at(0.99)),
            ms(at(1.0))
        );
        self.row(what, format!("n={}", samples.len()), detail);
    }

    fn finish(&mut self, stack: &Stack) {
        let failed = stack.worker_outcomes("dead_lettered");
        self.text.push_str(&format!(
            "\nworker totals: {} completed, {} retried, {failed} dead-lettered\n",
            stack.worker_outcomes("completed"),
            stack.worker_outcomes("retried"),
        ));
    }
}
