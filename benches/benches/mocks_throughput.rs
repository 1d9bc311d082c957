//! Throughput of the tekup mocks beside a bare wiremock server, in one run.
//!
//! Each target gets the same closed-loop load: `BENCH_CONCURRENCY` (default
//! 16) tasks sending requests back to back over keep-alive connections for
//! `BENCH_SECS` (default 3) seconds, after a short warm-up. Only loopback
//! addresses are used and every loop is bounded in time. The baseline is a
//! wiremock `MockServer` answering the same route with a fixed chat
//! completion body; the mocks do the full work (auth, journal, fault check,
//! scripted answer, rate-limit headers).
//!
//! `cargo bench -p tekup-benches --bench mocks_throughput` (env: `BENCH_SECS`,
//! `BENCH_CONCURRENCY`, `BENCH_ROUNDS`, `BENCH_ONLY=<substring of a target name>`)

use std::io::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tekup_mocks::{OpenAi, Stripe};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// What one target is asked.
#[derive(Clone)]
struct Target {
    name: &'static str,
    method: reqwest::Method,
    url: String,
    headers: Vec<(&'static str, &'static str)>,
    body: Option<(&'static str, String)>,
}

struct Result {
    requests: u64,
    errors: u64,
    elapsed: Duration,
    p50: Duration,
    p99: Duration,
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn drive(target: Target, duration: Duration, concurrency: usize) -> Result {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .expect("client builds");
    let target = Arc::new(target);
    let deadline = Instant::now() + duration;
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let client = client.clone();
        let target = target.clone();
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut errors, mut latencies) = (0u64, 0u64, Vec::new());
            while Instant::now() < deadline {
                let mut request = client.request(target.method.clone(), &target.url);
                for (k, v) in &target.headers {
                    request = request.header(*k, *v);
                }
                if let Some((content_type, body)) = &target.body {
                    request = request
                        .header("content-type", *content_type)
                        .body(body.clone());
                }
                let sent = Instant::now();
                match request.send().await {
                    Ok(r) if r.status().is_success() => match r.bytes().await {
                        Ok(_) => {
                            ok += 1;
                            latencies.push(sent.elapsed());
                        }
                        Err(_) => errors += 1,
                    },
                    _ => errors += 1,
                }
            }
            (ok, errors, latencies)
        }));
    }
    let (mut requests, mut errors, mut latencies) = (0, 0, Vec::new());
    for task in tasks {
        let (ok, err, lat) = task.await.expect("load task finishes");
        requests += ok;
        errors += err;
        latencies.extend(lat);
    }
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    let pick = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    Result {
        requests,
        errors,
        elapsed,
        p50: pick(0.5),
        p99: pick(0.99),
    }
}

/// A mock running on its own thread; dropping `Running` stops it.
struct Running {
    uri: String,
    journal_len: std::sync::mpsc::Receiver<usize>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Running {
    /// Stops the mock and returns the size of its journal.
    fn finish(mut self) -> usize {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.journal_len.recv().unwrap_or_default()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn on_own_thread<M, F, Fut>(start: F) -> (Running, std::thread::JoinHandle<()>)
where
    M: std::ops::Deref<Target = tekup_mocks::MockServer> + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = M>,
{
    let (uri_tx, uri_rx) = std::sync::mpsc::channel();
    let (len_tx, len_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime builds");
        runtime.block_on(async move {
            let mock = start().await;
            let _ = uri_tx.send(mock.uri());
            let _ = stop_rx.await;
            let _ = len_tx.send(mock.journal().len());
        });
    });
    let uri = uri_rx.recv().expect("the mock thread reports its address");
    (
        Running {
            uri,
            journal_len: len_rx,
            stop: Some(stop_tx),
        },
        thread,
    )
}

fn chat_body() -> String {
    json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "benchmark me"}]})
        .to_string()
}

#[tokio::main]
async fn main() {
    let secs = env_or("BENCH_SECS", 3);
    let concurrency = env_or("BENCH_CONCURRENCY", 16) as usize;
    let duration = Duration::from_secs(secs);

    let wiremock = MockServer::start().await;
    let canned = json!({
        "id": "chatcmpl-bench", "object": "chat.completion", "created": 1_700_000_000, "model": "gpt-4o",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "This is a mock answer to: benchmark me"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20}
    });
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(canned))
        .mount(&wiremock)
        .await;
    // wiremock serves from its own thread with a current-thread runtime; the
    // mocks get the same arrangement so that neither shares the clients' runtime.
    let (openai, _openai_thread) =
        on_own_thread(|| async { OpenAi::start().await.expect("openai mock starts") });
    let (stripe, _stripe_thread) =
        on_own_thread(|| async { Stripe::start().await.expect("stripe mock starts") });
    let openai_base = format!("{}/v1", openai.uri);

    let targets = vec![
        Target {
            name: "wiremock (bare) POST /v1/chat/completions",
            method: reqwest::Method::POST,
            url: format!("{}/v1/chat/completions", wiremock.uri()),
            headers: vec![],
            body: Some(("application/json", chat_body())),
        },
        Target {
            name: "tekup-mocks openai POST /v1/chat/completions",
            method: reqwest::Method::POST,
            url: format!("{openai_base}/chat/completions"),
            headers: vec![("authorization", "Bearer sk-bench")],
            body: Some(("application/json", chat_body())),
        },
        Target {
            name: "tekup-mocks openai GET /v1/models",
            method: reqwest::Method::GET,
            url: format!("{openai_base}/models"),
            headers: vec![("authorization", "Bearer sk-bench")],
            body: None,
        },
        Target {
            name: "tekup-mocks stripe GET /v1/customers",
            method: reqwest::Method::GET,
            url: format!("{}/v1/customers?limit=3", stripe.uri),
            headers: vec![("authorization", "Bearer sk_test_bench")],
            body: None,
        },
    ];

    // `BENCH_ONLY=<substring>` measures only the matching targets (for profiling).
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let targets: Vec<Target> = targets
        .into_iter()
        .filter(|t| t.name.contains(only.as_str()))
        .collect();
    // Targets are measured in interleaved rounds so that background load on a
    // shared machine hits all of them alike.
    let rounds = env_or("BENCH_ROUNDS", 3).max(1);
    let slice = duration / u32::try_from(rounds).unwrap_or(1);
    for target in &targets {
        // Warm-up: connections and allocations, not measured.
        let _ = drive(target.clone(), Duration::from_millis(300), concurrency).await;
    }
    let mut totals: Vec<(u64, u64, Duration, Vec<Duration>)> =
        vec![(0, 0, Duration::ZERO, Vec::new()); targets.len()];
    let mut per_round: Vec<Vec<f64>> = Vec::with_capacity(rounds as usize);
    for _ in 0..rounds {
        let mut rates = Vec::with_capacity(targets.len());
        for (i, target) in targets.iter().enumerate() {
            let r = drive(target.clone(), slice, concurrency).await;
            rates.push(r.requests as f64 / r.elapsed.as_secs_f64());
            totals[i].0 += r.requests;
            totals[i].1 += r.errors;
            totals[i].2 += r.elapsed;
            totals[i].3.extend([r.p50, r.p99]);
        }
        per_round.push(rates);
    }

    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "mocks throughput: {concurrency} concurrent clients, {secs} s per target in {rounds} interleaved rounds, loopback, same run\n"
    );
    let _ = writeln!(
        out,
        "{:<48} {:>10} {:>12} {:>12} {:>9} {:>7}",
        "target", "req/s", "p50 ms(max)", "p99 ms(max)", "requests", "errors"
    );
    let mut baseline = None;
    for (target, (requests, errors, elapsed, lat)) in targets.iter().zip(totals) {
        let rate = requests as f64 / elapsed.as_secs_f64();
        let relative = match baseline {
            None => {
                baseline = Some(rate);
                String::from("(baseline)")
            }
            Some(b) => format!("({:.0}% of wiremock)", rate / b * 100.0),
        };
        let p50 = lat.iter().step_by(2).max().copied().unwrap_or_default();
        let p99 = lat
            .iter()
            .skip(1)
            .step_by(2)
            .max()
            .copied()
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "{:<48} {:>10.0} {:>12.2} {:>12.2} {:>9} {:>7}  {relative}",
            target.name,
            rate,
            p50.as_secs_f64() * 1000.0,
            p99.as_secs_f64() * 1000.0,
            requests,
            errors
        );
    }
    // Each round's ratio to the baseline: how steady the figure is on a busy machine.
    let _ = writeln!(out, "\nper round, % of the first target:");
    for (target_index, target) in targets.iter().enumerate().skip(1) {
        let ratios: Vec<String> = per_round
            .iter()
            .map(|rates| format!("{:.0}%", rates[target_index] / rates[0] * 100.0))
            .collect();
        let _ = writeln!(out, "{:<48} {}", target.name, ratios.join("  "));
    }
    let journaled = openai.finish();
    let _ = writeln!(
        out,
        "\nopenai mock journal holds {journaled} entries after the run (bounded at 100000)"
    );
}
