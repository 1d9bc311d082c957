//! The OTLP receiver's throughput: spans per second taken into the store
//! over HTTP/protobuf and over gRPC, from a client in the same process on
//! the loopback.
//!
//! `cargo bench -p tekup-benches --bench otlp_receiver` (`BENCH_QUICK=1`
//! for fewer requests).
//!
//! Each request is a batch of 512 spans (the SDK batch processor's default
//! export size) of 8 attributes each, like a reference service's server
//! spans; 4 requests in flight at once. The figure counts spans stored,
//! checked against the store at the end. The median of 5 rounds is shown
//! with the lowest and highest.
//!
//! On the project's 2-core machine, shared with other builds (two runs):
//! HTTP/protobuf 191,000-209,000 spans/s at the median (125,000-305,000
//! across rounds), gRPC 131,000-133,000 (116,000-199,000). The reference
//! services export a few spans per request, so the receiver is far from
//! being what limits a run.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt as _;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use tekup_harness::trace::otlp::to_request;
use tekup_harness::trace::{Receiver, ReceiverOptions, Span, SpanKind, SpanStatus, SpanStore};

const BATCH: usize = 512;
const IN_FLIGHT: usize = 4;
const ROUNDS: usize = 5;

fn batch(seq: u64) -> ExportTraceServiceRequest {
    let spans: Vec<Span> = (0..BATCH as u64)
        .map(|i| Span {
            trace_id: format!("{:016x}{i:016x}", seq + 1),
            span_id: format!("{:016x}", i + 1),
            parent_span_id: (i % 2 == 1).then(|| format!("{i:016x}")),
            service: ["flow-api", "crm-api"][(i % 2) as usize].to_owned(),
            name: "POST /leads".to_owned(),
            kind: SpanKind::Server,
            start_unix_nano: 1_700_000_000_000_000_000 + i * 1_000,
            end_unix_nano: 1_700_000_000_000_000_000 + i * 1_000 + 900,
            attributes: BTreeMap::from([
                ("tekup.operation".to_owned(), "createLead".into()),
                (
                    "tekup.tenant_id".to_owned(),
                    "5b3c0e8e-6f1a-4c53-9a0e-1d2f3a4b5c6d".into(),
                ),
                ("tekup.source_app".to_owned(), "flow-web".into()),
                ("tekup.target_app".to_owned(), "flow-api".into()),
                ("tekup.correlation_id".to_owned(), "c-0123456789".into()),
                ("http.request.method".to_owned(), "POST".into()),
                ("http.route".to_owned(), "/leads".into()),
                ("http.response.status_code".to_owned(), 201.into()),
            ]),
            events: Vec::new(),
            status: SpanStatus::default(),
        })
        .collect();
    to_request(&spans)
}

fn main() {
    let quick = tekup_benches::quick();
    let requests = if quick { 40 } else { 200 };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async move {
        let store = SpanStore::new();
        let receiver = Receiver::start(Arc::clone(&store), ReceiverOptions::default())
            .await
            .expect("the receiver starts");
        let bodies: Vec<Vec<u8>> = (0..requests as u64)
            .map(|seq| prost::Message::encode_to_vec(&batch(seq)))
            .collect();
        let messages: Vec<ExportTraceServiceRequest> =
            (0..requests as u64).map(batch).collect();
        let http = reqwest::Client::new();
        let url = format!("{}/v1/traces", receiver.http_url());
        let grpc = TraceServiceClient::connect(receiver.grpc_url())
            .await
            .expect("gRPC connects")
            .max_decoding_message_size(64 << 20);
        // Warm-up, not measured.
        http_round(&http, &url, &bodies[..IN_FLIGHT]).await;
        grpc_round(&grpc, &messages[..IN_FLIGHT]).await;
        let mut rates: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
        for _ in 0..ROUNDS {
            let before = store.received();
            let started = Instant::now();
            http_round(&http, &url, &bodies).await;
            let took = started.elapsed().as_secs_f64();
            assert_eq!(store.received() - before, (requests * BATCH) as u64);
            rates[0].push((requests * BATCH) as f64 / took);
            let before = store.received();
            let started = Instant::now();
            grpc_round(&grpc, &messages).await;
            let took = started.elapsed().as_secs_f64();
            assert_eq!(store.received() - before, (requests * BATCH) as u64);
            rates[1].push((requests * BATCH) as f64 / took);
        }
        say(&format!(
            "OTLP receiver: {requests} requests of {BATCH} spans a round, {IN_FLIGHT} in flight, {ROUNDS} rounds"
        ));
        for (name, mut r) in ["HTTP/protobuf", "gRPC"].into_iter().zip(rates) {
            r.sort_by(f64::total_cmp);
            say(&format!(
                "{name:<14} {:>9.0} spans/s (median; {:.0} to {:.0})",
                r[r.len() / 2],
                r[0],
                r[r.len() - 1]
            ));
        }
        receiver.shutdown().await;
    });
}

async fn http_round(client: &reqwest::Client, url: &str, bodies: &[Vec<u8>]) {
    futures::stream::iter(bodies)
        .map(|body| async move {
            let response = client
                .post(url)
                .header("content-type", "application/x-protobuf")
                .body(body.clone())
                .send()
                .await
                .expect("the receiver answers");
            assert!(response.status().is_success(), "{}", response.status());
        })
        .buffer_unordered(IN_FLIGHT)
        .collect::<()>()
        .await;
}

async fn grpc_round(
    client: &TraceServiceClient<tonic::transport::Channel>,
    messages: &[ExportTraceServiceRequest],
) {
    futures::stream::iter(messages)
        .map(|m| {
            let mut client = client.clone();
            async move {
                client.export(m.clone()).await.expect("the export is taken");
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect::<()>()
        .await;
}

fn say(line: &str) {
    #[expect(clippy::print_stdout, reason = "the benchmark's results")]
    {
        println!("{line}");
    }
}
