//! OpenTelemetry spans of real requests, jobs and events: the services'
//! own code, in-process on a real Postgres and Redis, recorded by the
//! services' OpenTelemetry layer into the SDK's in-memory exporter.
//!
//! The layer is installed for the test's thread only (`set_default`), so
//! each test runs on a current-thread runtime: every task of its services
//! runs on that thread and is recorded, and no other test's spans are.

use opentelemetry::trace::{SpanId, SpanKind, Status, TraceId};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use serde_json::json;
use tekup_services::queue::{Job, QueueName};
use tekup_services::ServiceName::FlowApi;
use tracing_subscriber::layer::SubscriberExt as _;

use crate::helpers::{assert_status, eventually, TestApp, ACME_KEY, WITHIN};

/// The spans of this test's thread, as exported.
struct Recorder {
    exporter: InMemorySpanExporter,
    _provider: SdkTracerProvider,
    _guard: tracing::subscriber::DefaultGuard,
}

fn record() -> Recorder {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber =
        tracing_subscriber::registry().with(tekup_services::telemetry::layer(&provider));
    Recorder {
        exporter,
        _guard: tracing::subscriber::set_default(subscriber),
        _provider: provider,
    }
}

impl Recorder {
    fn spans(&self) -> Vec<SpanData> {
        self.exporter.get_finished_spans().expect("spans readable")
    }

    /// Waits until `count` finished spans are named `name`; returns them.
    async fn named(&self, name: &str, count: usize) -> Vec<SpanData> {
        eventually(&format!("{count} span(s) `{name}`"), || async {
            let spans: Vec<SpanData> = self
                .spans()
                .into_iter()
                .filter(|s| s.name == name)
                .collect();
            (spans.len() >= count).then_some(spans)
        })
        .await
    }
}

fn attr(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.to_string())
}

#[track_caller]
fn assert_attrs(span: &SpanData, expected: &[(&str, &str)]) {
    for (key, value) in expected {
        assert_eq!(
            attr(span, key).as_deref(),
            Some(*value),
            "`{key}` of span `{}`: {:?}",
            span.name,
            span.attributes
        );
    }
}

#[track_caller]
fn child_of(span: &SpanData, parent: &SpanData) {
    assert_eq!(
        (span.span_context.trace_id(), span.parent_span_id),
        (
            parent.span_context.trace_id(),
            parent.span_context.span_id()
        ),
        "`{}` is not a child of `{}`",
        span.name,
        parent.name
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_lead_is_one_trace_from_the_request_through_the_worker_to_the_websocket() {
    let recorder = record();
    let app = TestApp::spawn_bus().await;
    let mut crm = app.ws(ACME_KEY, "acme", "crm-web").await;
    let incoming = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let lead = app
        .with_headers(&[
            ("x-tenant-key", ACME_KEY),
            ("x-tenant-id", "acme"),
            ("x-source-app", "flow-web"),
            ("traceparent", incoming),
        ])
        .post(
            FlowApi,
            "/leads",
            json!({ "firstName": "Ada", "email": "ada@example.com" }),
        )
        .await;
    assert_status(&lead, 201);
    crm.next_event(WITHIN)
        .await
        .expect("LEAD_CREATED delivered");

    let server = &recorder.named("POST /leads", 1).await[0];
    assert_eq!(server.span_kind, SpanKind::Server);
    assert_eq!(
        server.span_context.trace_id(),
        TraceId::from_hex("0af7651916cd43dd8448eb211c80319c").unwrap(),
        "the request continues the caller's trace"
    );
    assert_eq!(
        server.parent_span_id,
        SpanId::from_hex("b7ad6b7169203331").unwrap()
    );
    assert_attrs(
        server,
        &[
            ("tekup.operation", "createLead"),
            ("tekup.tenant_id", "acme"),
            ("tekup.source_app", "flow-web"),
            ("tekup.target_app", "flow-api"),
            ("http.request.method", "POST"),
            ("http.route", "/leads"),
            ("http.response.status_code", "201"),
        ],
    );
    assert!(attr(server, "tekup.correlation_id").is_some());
    // Numbers are numbers (OTel's semantic conventions): an operator such
    // as `{ $gte: 500 }` in a `trace` step compares them.
    let status = server
        .attributes
        .iter()
        .find(|kv| kv.key.as_str() == "http.response.status_code")
        .map(|kv| kv.value.clone());
    assert_eq!(status, Some(opentelemetry::Value::I64(201)));

    let enqueue = &recorder.named("enqueue lead-processing", 1).await[0];
    assert_eq!(enqueue.span_kind, SpanKind::Producer);
    child_of(enqueue, server);
    assert_attrs(
        enqueue,
        &[
            ("tekup.operation", "enqueue.process-lead"),
            ("messaging.destination.name", "lead-processing"),
            ("tekup.job.kind", "process-lead"),
            ("tekup.tenant_id", "acme"),
            ("tekup.source_app", "flow-api"),
        ],
    );

    let process = &recorder.named("process process-lead", 1).await[0];
    assert_eq!(process.span_kind, SpanKind::Consumer);
    child_of(process, enqueue);
    assert_attrs(
        process,
        &[
            ("tekup.operation", "process.process-lead"),
            ("tekup.job.attempt", "0"),
            ("tekup.tenant_id", "acme"),
        ],
    );
    assert_eq!(attr(process, "tekup.job.id"), attr(enqueue, "tekup.job.id"));
    assert_eq!(process.status, Status::Unset);

    // The worker's calls to the CRM, and the CRM's side of each.
    let spans = recorder.spans();
    let calls: Vec<&SpanData> = spans
        .iter()
        .filter(|s| {
            s.span_kind == SpanKind::Client
                && attr(s, "tekup.target_app").as_deref() == Some("crm-api")
        })
        .collect();
    assert!(!calls.is_empty(), "no client span to crm-api: {spans:#?}");
    for call in &calls {
        child_of(call, process);
        assert_attrs(
            call,
            &[("tekup.source_app", "worker"), ("tekup.tenant_id", "acme")],
        );
        let answered = spans
            .iter()
            .find(|s| {
                s.span_kind == SpanKind::Server && s.parent_span_id == call.span_context.span_id()
            })
            .unwrap_or_else(|| panic!("no server span under `{}`", call.name));
        assert_eq!(
            answered.span_context.trace_id(),
            call.span_context.trace_id()
        );
        assert_eq!(
            attr(answered, "tekup.operation"),
            attr(call, "tekup.operation"),
            "the client span names the operation the server ran"
        );
        assert_attrs(
            answered,
            &[
                ("tekup.source_app", "worker"),
                ("tekup.target_app", "crm-api"),
            ],
        );
    }

    let publish = &recorder.named("publish LEAD_CREATED", 1).await[0];
    assert_eq!(publish.span_kind, SpanKind::Producer);
    child_of(publish, process);
    let deliver = &recorder.named("deliver LEAD_CREATED", 1).await[0];
    assert_eq!(deliver.span_kind, SpanKind::Consumer);
    child_of(deliver, publish);
    assert_attrs(
        deliver,
        &[
            ("tekup.operation", "deliver.LEAD_CREATED"),
            ("tekup.room", "tenant:acme/app:crm-web"),
            ("tekup.connections", "1"),
            ("tekup.target_app", "crm-web"),
        ],
    );
    assert_eq!(
        attr(deliver, "tekup.event.id"),
        attr(publish, "tekup.event.id")
    );
}

/// A job as `trace-drops-job-context` enqueues it (no `traceparent`)
/// starts a new trace in the worker; the same job enqueued as it should be
/// is processed in its `enqueue` span's trace. Both fail (an unknown kind):
/// every attempt is an `ERROR`, the last a `dead_letter`.
#[tokio::test(flavor = "current_thread")]
async fn a_job_without_its_traceparent_is_processed_in_a_trace_of_its_own() {
    let recorder = record();
    let app = TestApp::spawn_bus().await;
    let traced = Job::new(
        QueueName::AnalyticsProcessing,
        "traced-kind",
        "acme",
        json!({}),
    );
    app.queues.as_ref().unwrap().enqueue(&traced).await.unwrap();
    let dropped = Job::new(
        QueueName::AnalyticsProcessing,
        "dropped-kind",
        "acme",
        json!({}),
    );
    assert_eq!(dropped.traceparent, None);
    let redis = redis::Client::open(app.redis.as_ref().unwrap().url()).unwrap();
    let mut conn = redis.get_multiplexed_async_connection().await.unwrap();
    let _: String = redis::cmd("XADD")
        .arg("tekup:queue:analytics-processing")
        .arg("*")
        .arg("job")
        .arg(serde_json::to_string(&dropped).unwrap())
        .query_async(&mut conn)
        .await
        .unwrap();

    // One retry, then the dead letter.
    let enqueue = &recorder.named("enqueue analytics-processing", 1).await[0];
    for (kind, parent) in [("traced-kind", Some(enqueue)), ("dropped-kind", None)] {
        let mut attempts = recorder.named(&format!("process {kind}"), 2).await;
        attempts.sort_by_key(|s| attr(s, "tekup.job.attempt"));
        for (n, attempt) in attempts.iter().enumerate() {
            assert_eq!(attr(attempt, "tekup.job.attempt"), Some(n.to_string()));
            assert!(
                matches!(&attempt.status, Status::Error { description } if description.contains(kind)),
                "{kind}: {:?}",
                attempt.status
            );
            match parent {
                Some(enqueue) => child_of(attempt, enqueue),
                None => {
                    assert_eq!(
                        attempt.parent_span_id,
                        SpanId::INVALID,
                        "{kind} has a parent"
                    );
                    assert_ne!(
                        attempt.span_context.trace_id(),
                        enqueue.span_context.trace_id()
                    );
                }
            }
        }
        let events: Vec<Vec<&str>> = attempts
            .iter()
            .map(|s| s.events.iter().map(|e| e.name.as_ref()).collect())
            .collect();
        assert_eq!(events, [vec![], vec!["dead_letter"]], "{kind}");
    }
}

/// What an OTLP receiver got: the bodies of `POST /v1/traces`.
type Received = std::sync::Arc<std::sync::Mutex<Vec<(String, Vec<u8>)>>>;

/// A minimal OTLP/HTTP receiver on a free port; returns its base URL.
async fn otlp_receiver() -> (String, Received) {
    use axum::http::HeaderMap;
    let received = Received::default();
    let store = std::sync::Arc::clone(&received);
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let store = std::sync::Arc::clone(&store);
            async move {
                let kind = headers
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                store.lock().unwrap().push((kind, body.to_vec()));
                ""
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, received)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Kills the service when the test ends, however it ends.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The program itself, configured by the standard variables only: with a
/// ten-minute batch delay nothing is exported while it runs, and SIGTERM
/// flushes the request's server span, over OTLP http/protobuf, named by
/// the service.
#[tokio::test]
async fn the_service_exports_its_spans_over_otlp_and_flushes_them_on_sigterm() {
    use std::io::BufRead as _;
    let app = TestApp::spawn().await;
    let (otlp, received) = otlp_receiver().await;
    let mut child = Running(
        std::process::Command::new(env!("CARGO_BIN_EXE_tekup-service"))
            .args(["flow-api", "--bind", "127.0.0.1:0"])
            .env(
                "DATABASE_URL",
                app.pg.url(crate::helpers::SERVICE_ROLE, "tekup"),
            )
            .env("TEKUP_TOKEN_SECRET", "secret")
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", &otlp)
            .env("OTEL_BSP_SCHEDULE_DELAY", "600000")
            .env_remove("OTEL_SERVICE_NAME")
            .env_remove("REDIS_URL")
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("the binary starts"),
    );
    // The log, line by line, read on a thread of its own (it ends with the
    // process's stderr).
    let (lines, log) = std::sync::mpsc::channel();
    let stderr = child.0.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let address = eventually("the service to say where it listens", || {
        seen.extend(log.try_iter());
        let address = seen.iter().find_map(|line| {
            let after = line.split("listening on http://").nth(1)?;
            after.split_whitespace().next().map(str::to_owned)
        });
        async move { address }
    })
    .await;

    let trace = "5b8efff798038103d269b633813fc60c";
    let health = reqwest::Client::new()
        .get(format!("http://{address}/health"))
        .header("traceparent", format!("00-{trace}-eee19b7ec3c1b174-01"))
        .send()
        .await
        .expect("the service answers");
    assert_eq!(health.status(), 200);
    assert!(
        received.lock().unwrap().is_empty(),
        "exported before the ten-minute batch delay"
    );

    let terminated = std::process::Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(terminated.success());
    let status = eventually("the service to exit", || {
        let exited = child.0.try_wait().expect("the process can be waited on");
        async move { exited }
    })
    .await;
    seen.extend(log.try_iter());
    let log = seen.join("\n");
    assert!(status.success(), "{status}: {log}");

    let received = received.lock().unwrap();
    let trace_id = hex::decode(trace).unwrap();
    let found = received
        .iter()
        .find(|(_, body)| contains(body, b"GET /health"));
    let (kind, body) = found.unwrap_or_else(|| panic!("no span `GET /health` exported: {log}"));
    assert_eq!(kind, "application/x-protobuf");
    assert!(contains(body, &trace_id), "the request's trace id");
    assert!(contains(body, b"flow-api"), "service.name");
    assert!(contains(body, b"tekup.operation"));
}
