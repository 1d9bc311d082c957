//! What exporting spans costs the reference services: `POST /leads`
//! latency and leads/s through the lead-processing queue with tracing on
//! and off, side by side in one run.
//!
//! `cargo bench -p tekup-benches --bench tracing_cost`
//!
//! Two ecosystems run at once (process runtime, release binaries built
//! first), from the same ecosystem file: *on* as it is, its services
//! exporting spans to the harness's OTLP receiver (`OTEL_BSP_SCHEDULE_DELAY`
//! 100 ms, as every run of the harness has them); *off* from a copy of the
//! file whose `tekup-service` components set `OTEL_SDK_DISABLED=true`, so
//! nothing is recorded. Both ecosystems live for the whole run and are
//! measured in alternating rounds (on, off, on, off, …): machine noise that
//! comes and goes (the load generator shares the cores, and so may anything
//! else on the machine) falls on both. Per round, as one fresh tenant per
//! ecosystem (its rate limit lifted, as load runs do):
//!
//! 1. *latency*: `BENCH_WARMUP` (20) `POST /leads` as flow-web not counted,
//!    then `BENCH_LATENCY_LEADS` (300) sequential ones timed;
//! 2. *throughput*: `BENCH_LEADS` (500) leads posted by
//!    `BENCH_CONCURRENCY` (8) clients at once, timed from the first POST
//!    until the lead-processing queue (`GET /admin/queues` on flow-api)
//!    counts every one settled (processed or dead-lettered).
//!
//! The table gives each mode's pooled latency percentiles and median
//! leads/s over its rounds, and the on/off ratios. The *off* ecosystem's
//! receiver must have received no span (else the switch did not take and
//! the bench fails), the *on* one's some; their count is printed.
//! `BENCH_ROUNDS` (3) rounds per mode; `BENCH_QUICK=1` runs 2 rounds of
//! 10 + 100 leads and 200 leads.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use serde_json::{json, Value};
use tekup_harness::env::{EcosystemFile, Kind};
use tekup_harness::platform::{Platform, TenantClient};
use tekup_harness::scenario::run::{Runner, Suite};
use tokio::time::Instant;

/// The program whose components the *off* ecosystem starts without tracing.
const SERVICE_PROGRAM: &str = "tekup-service";
/// The queue the leads go through, and the service that lists it.
const LEAD_QUEUE: &str = "lead-processing";
const QUEUE_SERVICE: &str = "flow-api";
/// Longest wait for one batch of leads to be processed.
const BATCH_DEADLINE: Duration = Duration::from_secs(300);
/// How long the span count must stay still to be taken as final.
const SPANS_QUIET: Duration = Duration::from_millis(500);

#[derive(Debug, Clone)]
struct Params {
    quick: bool,
    rounds: usize,
    warmup: usize,
    latency_leads: usize,
    leads: usize,
    concurrency: usize,
}

impl Params {
    fn from_env() -> Self {
        let quick = tekup_benches::quick();
        let pick = |full: usize, small: usize| if quick { small } else { full };
        Self {
            quick,
            rounds: tekup_benches::env_usize("BENCH_ROUNDS", pick(3, 2)).max(1),
            warmup: tekup_benches::env_usize("BENCH_WARMUP", pick(20, 10)),
            latency_leads: tekup_benches::env_usize("BENCH_LATENCY_LEADS", pick(300, 100)).max(1),
            leads: tekup_benches::env_usize("BENCH_LEADS", pick(500, 200)).max(1),
            concurrency: tekup_benches::env_usize("BENCH_CONCURRENCY", 8).max(1),
        }
    }
}

#[expect(clippy::print_stdout, reason = "the bench's results")]
fn out(line: &str) {
    println!("{line}");
}

fn main() {
    let params = Params::from_env();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("the workspace directory");
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    if let Err(e) = rt.block_on(run(&params, &root)) {
        panic!("tracing_cost: {e}");
    }
}

/// One ecosystem under test: its suite (which owns it), runner and tenant.
struct Side {
    name: &'static str,
    _suite: Suite,
    runner: Arc<Runner>,
    platform: Platform,
    client: TenantClient,
    latencies: Vec<Duration>,
    rates: Vec<f64>,
    dead: u64,
    next_lead: usize,
}

impl Side {
    async fn start(name: &'static str, suite: Suite) -> Result<Self, String> {
        let runner = suite
            .runner()
            .await
            .map_err(|e| format!("the {name} ecosystem did not start: {e}"))?;
        let platform = Platform::from_ecosystem(runner.ecosystem())
            .map_err(|e| format!("{name} ecosystem: {e}"))?;
        let tenant = platform
            .create_tenant_with_rate_limit(&format!("tracing-cost-{name}"), 100_000_000)
            .await
            .map_err(|e| format!("{name} ecosystem: {e}"))?;
        let client = platform.client(&tenant, "flow-web");
        Ok(Self {
            name,
            _suite: suite,
            runner,
            platform,
            client,
            latencies: Vec::new(),
            rates: Vec::new(),
            dead: 0,
            next_lead: 0,
        })
    }

    fn lead(&mut self) -> Value {
        self.next_lead += 1;
        json!({
            "firstName": "Bench",
            "lastName": "Lead",
            "email": format!("lead-{}-{}@tracing-cost.example", self.name, self.next_lead),
        })
    }

    /// One round: the warm-up, the timed sequential leads, then a batch.
    async fn round(&mut self, params: &Params) -> Result<(), String> {
        for i in 0..params.warmup + params.latency_leads {
            let body = self.lead();
            let sent = Instant::now();
            post_lead(&self.client, &body).await?;
            if i >= params.warmup {
                self.latencies.push(sent.elapsed());
            }
        }
        let before = self.settled().await?;
        let bodies: Vec<Value> = (0..params.leads).map(|_| self.lead()).collect();
        let started = Instant::now();
        let posted: Vec<Result<(), String>> = futures::stream::iter(&bodies)
            .map(|body| post_lead(&self.client, body))
            .buffer_unordered(params.concurrency)
            .collect()
            .await;
        posted.into_iter().collect::<Result<Vec<()>, String>>()?;
        let deadline = started + BATCH_DEADLINE;
        let mut poll = tokio::time::interval(Duration::from_millis(10));
        let (processed, dead) = loop {
            poll.tick().await;
            let now = self.settled().await?;
            let settled = (now.0 - before.0, now.1 - before.1);
            if settled.0 + settled.1 >= params.leads as u64 {
                break settled;
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "{} ecosystem: {} of {} leads settled after {BATCH_DEADLINE:?}",
                    self.name,
                    settled.0 + settled.1,
                    params.leads
                ));
            }
        };
        let took = started.elapsed();
        self.dead += dead;
        self.rates
            .push((processed + dead) as f64 / took.as_secs_f64().max(1e-9));
        Ok(())
    }

    /// Processed and dead-lettered counts of the lead queue.
    async fn settled(&self) -> Result<(u64, u64), String> {
        let answer = self
            .platform
            .admin_get(QUEUE_SERVICE, "/admin/queues")
            .await
            .map_err(|e| format!("{} ecosystem: {e}", self.name))?;
        let queue = answer.body["queues"]
            .as_array()
            .filter(|_| answer.ok())
            .and_then(|list| list.iter().find(|q| q["name"] == LEAD_QUEUE))
            .ok_or_else(|| {
                format!(
                    "{} ecosystem: GET /admin/queues on {QUEUE_SERVICE} lists no `{LEAD_QUEUE}` ({}: {})",
                    self.name, answer.status, answer.body
                )
            })?;
        let count = |key: &str| queue[key].as_u64().unwrap_or(0);
        Ok((count("processed"), count("deadLetters")))
    }

    /// The span count once no span has arrived for [`SPANS_QUIET`] (the
    /// exporters send what they hold every 100 ms), or after 30 s.
    async fn settled_spans(&self) -> u64 {
        let store = self.runner.ecosystem().traces();
        let changed = store.changed();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let notified = changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let quiet = tokio::time::timeout(SPANS_QUIET, notified).await.is_err();
            if quiet || Instant::now() >= deadline {
                return store.received();
            }
        }
    }
}

async fn post_lead(client: &TenantClient, body: &Value) -> Result<(), String> {
    let answer = client
        .post("flow-api", "/leads", body)
        .await
        .map_err(|e| e.to_string())?;
    if answer.status == 201 {
        Ok(())
    } else {
        Err(format!(
            "POST /leads as {} answered {}: {}",
            client.tenant_id(),
            answer.status,
            answer.body
        ))
    }
}

/// Writes the ecosystem file at `file` with `OTEL_SDK_DISABLED=true` in the
/// environment of every `tekup-service` service into `dir`, beside links
/// to what sits next to the original (the `${file:…}` references and rule
/// files resolve there). Returns the copy's path, checked by loading it.
fn tracing_off_file(file: &Path, dir: &Path) -> Result<PathBuf, String> {
    let model = EcosystemFile::load(file).map_err(|e| e.to_string())?;
    let services: Vec<&str> = model
        .components
        .values()
        .filter(|c| c.kind == Kind::Service && c.program.as_deref() == Some(SERVICE_PROGRAM))
        .map(|c| c.name.as_str())
        .collect();
    if services.is_empty() {
        return Err(format!(
            "{} has no `{SERVICE_PROGRAM}` service to measure",
            file.display()
        ));
    }
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("failed to read {}: {e}", file.display()))?;
    let mut doc: toml::Table = text
        .parse()
        .map_err(|e| format!("failed to parse {}: {e}", file.display()))?;
    for name in &services {
        let env = doc
            .get_mut("component")
            .and_then(|c| c.get_mut(*name))
            .and_then(toml::Value::as_table_mut)
            .map(|c| {
                c.entry("env")
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            })
            .and_then(toml::Value::as_table_mut)
            .ok_or_else(|| format!("{}: component `{name}` has no env table", file.display()))?;
        env.insert("OTEL_SDK_DISABLED".into(), toml::Value::from("true"));
    }
    let base = file.parent().unwrap_or(Path::new("."));
    let entries =
        std::fs::read_dir(base).map_err(|e| format!("failed to list {}: {e}", base.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("failed to list {}: {e}", base.display()))?;
        let to = dir.join(entry.file_name());
        std::os::unix::fs::symlink(entry.path(), &to)
            .map_err(|e| format!("failed to link {}: {e}", to.display()))?;
    }
    let copy = dir.join("ecosystem-tracing-off.toml");
    let rendered = toml::to_string(&doc).map_err(|e| format!("failed to write the copy: {e}"))?;
    std::fs::write(&copy, rendered)
        .map_err(|e| format!("failed to write {}: {e}", copy.display()))?;
    let check = EcosystemFile::load(&copy).map_err(|e| e.to_string())?;
    for name in &services {
        let set = check
            .components
            .get(*name)
            .and_then(|c| c.env.get("OTEL_SDK_DISABLED").map(|t| t.text == "true"));
        if set != Some(true) {
            return Err(format!(
                "{}: `{name}` lost OTEL_SDK_DISABLED",
                copy.display()
            ));
        }
    }
    Ok(copy)
}

async fn run(params: &Params, root: &Path) -> Result<(), String> {
    let mut on_suite = Suite::new(root.to_path_buf());
    on_suite.build = true;
    on_suite.witness = false;
    let off_dir = tempfile::tempdir().map_err(|e| format!("failed to make a temp dir: {e}"))?;
    let mut off_suite = Suite::new(root.to_path_buf());
    off_suite.witness = false;
    off_suite.file = tracing_off_file(&on_suite.file, off_dir.path())?;

    let started = Instant::now();
    let mut on = Side::start("on", on_suite).await?;
    let mut off = Side::start("off", off_suite).await?;
    let start_took = started.elapsed();
    let spans_before = on.settled_spans().await;
    let mut order = Vec::new();
    for round in 0..params.rounds {
        for side in [&mut on, &mut off] {
            let took = Instant::now();
            side.round(params).await?;
            order.push(format!(
                "{}{} {:.1}s",
                side.name,
                round + 1,
                took.elapsed().as_secs_f64()
            ));
        }
    }
    let spans = on.settled_spans().await - spans_before;
    let off_spans = off.settled_spans().await;
    if off_spans > 0 {
        return Err(format!(
            "the off ecosystem's receiver got {off_spans} spans: OTEL_SDK_DISABLED did not turn tracing off"
        ));
    }
    if spans == 0 {
        return Err("the on ecosystem's receiver got no span: tracing was not on".into());
    }
    report(params, &mut on, &mut off, spans, start_took, &order);
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn report(
    params: &Params,
    on: &mut Side,
    off: &mut Side,
    spans: u64,
    start_took: Duration,
    order: &[String],
) {
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let mode = if params.quick { "quick" } else { "default" };
    out(&format!(
        "\ntracing_cost ({mode} mode, {cores} cores): {} rounds per mode interleaved on/off; a round = \
         {} warm-up + {} timed sequential POST /leads, then {} leads by {} clients until the queue \
         settles them; both ecosystems started in {:.1} s",
        params.rounds,
        params.warmup,
        params.latency_leads,
        params.leads,
        params.concurrency,
        start_took.as_secs_f64()
    ));
    out(&format!("rounds: {}", order.join(", ")));
    out(&format!(
        "\n{:<34} {:>12} {:>12} {:>9}",
        "", "tracing on", "tracing off", "on/off"
    ));
    on.latencies.sort();
    off.latencies.sort();
    for (label, q) in [
        ("POST /leads p50 (ms)", 0.5),
        ("POST /leads p95 (ms)", 0.95),
    ] {
        let (a, b) = (
            ms(percentile(&on.latencies, q)),
            ms(percentile(&off.latencies, q)),
        );
        out(&format!("{label:<34} {a:>12.2} {b:>12.2} {:>9.3}", a / b));
    }
    let (a, b) = (median(&mut on.rates), median(&mut off.rates));
    out(&format!(
        "{:<34} {a:>12.1} {b:>12.1} {:>9.3}",
        "leads/s through the queue (median)",
        a / b
    ));
    let rates = |side: &Side| {
        side.rates
            .iter()
            .map(|r| format!("{r:.1}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    out(&format!(
        "  leads/s per round: on [{}], off [{}]",
        rates(on),
        rates(off)
    ));
    let leads = (params.rounds * (params.warmup + params.latency_leads + params.leads)) as f64;
    out(&format!(
        "\nspans received (on): {spans} ({:.1} per lead posted); off: 0; dead-lettered leads: on {}, off {}",
        spans as f64 / leads,
        on.dead,
        off.dead
    ));
}
