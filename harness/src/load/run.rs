//! One load run: tenants, gateway clients, goose, the last events, the report.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use goose::config::{GooseConfiguration, GooseDefault, GooseDefaultType as _};
use goose::metrics::GooseMetrics;
use goose::GooseAttack;

use super::events::{Clients, Watch};
use super::hist::Histogram;
use super::profiles::{self, Ctx, Profile};
use super::report::{KindStats, LoadReport, FORMAT_VERSION};
use super::shard::Shard;
use super::thresholds::Thresholds;
use super::LoadError;
use crate::platform::{Platform, TenantKey};

/// Goose keeps process-wide state: one run at a time per process.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// What to run and how it is judged.
pub struct Plan {
    pub profile: Profile,
    /// Simulated users of the whole plan (of all shards together).
    pub users: usize,
    /// This generator's part of a plan run by several at once: it runs
    /// its share of the users and of the hatch rate (see [`Shard`]).
    pub shard: Option<Shard>,
    /// How long the load runs, ramp-up included (whole seconds, at least 1).
    pub run_time: Duration,
    /// Users started per second over the whole plan (default: all within
    /// the first second).
    pub hatch_rate: Option<f64>,
    /// WebSocket clients per tenant in `ws-fanout`.
    pub ws_clients: usize,
    pub thresholds: Thresholds,
    /// Where goose writes its HTML report, if anywhere.
    pub goose_report: Option<PathBuf>,
    /// Hears progress lines (tenants, clients, a line every `progress_every`).
    pub progress: Box<dyn Fn(&str) + Send + Sync>,
    pub progress_every: Duration,
}

impl std::fmt::Debug for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plan")
            .field("profile", &self.profile)
            .field("users", &self.users)
            .field("shard", &self.shard)
            .field("run_time", &self.run_time)
            .field("thresholds", &self.thresholds)
            .finish_non_exhaustive()
    }
}

impl Plan {
    /// `users` users of `profile` for `run_time`, default limits, quiet.
    pub fn new(profile: Profile, users: usize, run_time: Duration) -> Plan {
        Plan {
            profile,
            users,
            shard: None,
            run_time,
            hatch_rate: None,
            ws_clients: 4,
            thresholds: Thresholds::default(),
            goose_report: None,
            progress: Box::new(|_| {}),
            progress_every: Duration::from_secs(5),
        }
    }
}

/// Requests per minute a load tenant may make.
const LOAD_RATE_LIMIT_PER_MINUTE: u32 = 10_000_000;
/// Tenants created at once.
const CREATE_AT_ONCE: usize = 8;

/// Runs `plan` against the platform's flow-api, crm-api and gateway, and
/// judges it. A breach is in the report's verdicts, not an error: errors
/// are what kept the run from being made (a missing service, a refused
/// admin token, goose failing).
///
/// Each user gets a fresh tenant of its own, made before the run: users
/// never share a rate limit bucket or a WebSocket room, and the run's data
/// stays in tenants of its own. They are made with a rate limit far above
/// what a run sends, so a 429 is the platform refusing load.
pub async fn run(plan: &Plan, platform: &Platform) -> Result<LoadReport, LoadError> {
    let profile = plan.profile;
    let flow_api = platform
        .url("flow-api")
        .map_err(LoadError::Tenants)?
        .to_owned();
    let crm_api = platform.url("crm-api").ok().map(str::to_owned);
    let gateway = platform.url("gateway").ok().map(str::to_owned);
    if profile.needs_crm() && crm_api.is_none() {
        return Err(LoadError::MissingTarget {
            profile,
            service: "crm-api",
            hint: "give its URL with --crm-host",
        });
    }
    if profile.needs_gateway() && gateway.is_none() {
        return Err(LoadError::MissingTarget {
            profile,
            service: "the gateway",
            hint: "give its URL with --gateway-host",
        });
    }
    let (users, hatch) = match plan.shard {
        None => (plan.users.max(1), plan.hatch_rate),
        Some(shard) => (
            shard.share(plan.users),
            plan.hatch_rate.map(|r| shard.share_rate(r)),
        ),
    };
    if let (Some(shard), 0) = (plan.shard, users) {
        return Err(LoadError::EmptyShard {
            shard,
            users: plan.users,
        });
    }
    let _alone = ONE_AT_A_TIME.lock().await;
    let say = &plan.progress;
    let prefix = match plan.shard {
        None => "load".to_owned(),
        Some(shard) => {
            say(&format!(
                "shard {shard}: {users} of the plan's {} user(s)",
                plan.users
            ));
            format!("load-s{}", shard.index)
        }
    };
    say(&format!("creating {users} tenant(s) at {flow_api}"));
    let tenants = create_tenants(platform, &prefix, users).await?;

    // Clients on the gateway: one per tenant to see leads processed, or
    // `ws_clients` per tenant for the fan-out.
    let per_tenant = match profile {
        Profile::WsFanout => plan.ws_clients.max(1),
        _ => 1,
    };
    let mut connects = None;
    let (watch, clients) = match (&gateway, profile.creates_leads()) {
        (Some(gateway), true) => {
            say(&format!(
                "connecting {} WebSocket client(s) to {gateway}",
                per_tenant * tenants.len()
            ));
            let watch = Watch::new(per_tenant);
            let clients =
                Clients::connect(platform.tls(), gateway, &tenants, per_tenant, &watch).await?;
            connects = Some(clients.connects.clone());
            (Some(watch), Some(clients))
        }
        _ => (None, None),
    };

    let ctx = Arc::new(Ctx::new(
        flow_api.clone(),
        crm_api.clone(),
        tenants,
        watch.clone(),
    ));
    let run_secs = plan.run_time.as_secs_f64().ceil().max(1.0) as usize;
    let hatch = hatch.unwrap_or(users as f64).max(0.01);
    let mut attack = GooseAttack::initialize_with_config(GooseConfiguration::default())?
        .register_scenario(profiles::scenario(profile, &ctx, platform.tls())?)
        .set_default(GooseDefault::Host, flow_api.as_str())?
        .set_default(GooseDefault::Users, users)?
        .set_default(GooseDefault::RunTime, run_secs)?
        .set_default(GooseDefault::IncreaseRate, hatch.to_string().as_str())?
        .set_default(GooseDefault::Quiet, 1)?
        .set_default(GooseDefault::NoPrintMetrics, true)?
        .set_default(GooseDefault::NoResetMetrics, true)?
        .set_default(GooseDefault::NoTelnet, true)?
        .set_default(GooseDefault::Timeout, "30")?;
    if let Some(path) = &plan.goose_report {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| LoadError::WriteReport {
                path: path.clone(),
                source,
            })?;
        }
        attack = attack.set_default(GooseDefault::ReportFile, path.to_string_lossy().as_ref())?;
    }
    say(&format!(
        "{profile}: {users} user(s) for {run_secs} s, {hatch} started per second"
    ));
    let started_at = chrono::Utc::now();
    let started = Instant::now();
    let ticker = {
        let ctx = Arc::clone(&ctx);
        let every = plan.progress_every;
        let say_line = move |line: String| say(&line);
        async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                let n = ctx.requests.load(Ordering::Relaxed);
                let secs = started.elapsed().as_secs_f64();
                say_line(format!(
                    "… {secs:.0} s: {n} requests ({:.0}/s), {} errors",
                    n as f64 / secs,
                    ctx.errors.load(Ordering::Relaxed)
                ));
            }
        }
    };
    let metrics = tokio::select! {
        m = attack.execute() => m?,
        () = ticker => unreachable!("the ticker never ends"),
    };
    let elapsed = started.elapsed();

    let mut report = from_goose(&metrics, elapsed);
    report.profile = profile.name().to_owned();
    report.started_at = started_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    report.users = users as u64;
    report.shard = plan.shard;
    if let Some(shard) = plan.shard {
        // Containers on one host's network all have the host's name.
        report.machines = vec![format!("{} (shard {shard})", machine())];
    }
    report.targets = [
        Some(&flow_api),
        crm_api.as_ref().filter(|_| profile.needs_crm()),
        gateway.as_ref().filter(|_| watch.is_some()),
    ]
    .into_iter()
    .flatten()
    .cloned()
    .collect();
    if let (Some(watch), Some(clients)) = (&watch, &clients) {
        say("waiting for the last leads' events");
        let (queue, delivery) = watch
            .drain(plan.thresholds.max_queue_latency(), clients.len() as u64)
            .await;
        report.queue_latency = Some(queue);
        if profile == Profile::WsFanout {
            report.event_delivery = Some(delivery);
            if let Some(connects) = connects {
                report
                    .requests
                    .push(KindStats::new("WS connect /events", 0, connects));
            }
        }
    }
    drop(clients);
    report.error_samples = ctx
        .samples
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    report.judge(plan.thresholds);
    Ok(report)
}

async fn create_tenants(
    platform: &Platform,
    prefix: &str,
    count: usize,
) -> Result<Vec<TenantKey>, LoadError> {
    use futures::StreamExt as _;
    futures::stream::iter(0..count)
        .map(|i| async move {
            let name = format!("{prefix}-{i}");
            platform
                .create_tenant_with_rate_limit(&name, LOAD_RATE_LIMIT_PER_MINUTE)
                .await
        })
        .buffered(CREATE_AT_ONCE)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()
        .map_err(LoadError::Tenants)
}

/// The request kinds goose measured, as mergeable histograms.
fn from_goose(metrics: &GooseMetrics, elapsed: Duration) -> LoadReport {
    let mut requests: Vec<KindStats> = metrics
        .requests
        .iter()
        .map(|(name, aggregate)| {
            let raw = &aggregate.raw_data;
            let mut histogram = Histogram::new();
            for (&floor, &count) in raw.times_us.iter() {
                histogram.record_us(floor, count as u64);
            }
            // The buckets' floors, with goose's exact figures.
            histogram.count = raw.counter as u64;
            histogram.sum_us = raw.total_time_us;
            histogram.min_us = raw.minimum_time_us;
            histogram.max_us = raw.maximum_time_us;
            KindStats::new(name.clone(), aggregate.fail_count as u64, histogram)
        })
        .collect();
    requests.sort_by(|a, b| a.name.cmp(&b.name));
    let count: u64 = requests.iter().map(|k| k.count).sum();
    let secs = elapsed.as_secs_f64().max(1e-3);
    LoadReport {
        version: FORMAT_VERSION,
        machines: vec![machine()],
        run_time_s: secs,
        requests_per_second: count as f64 / secs,
        requests,
        ..LoadReport::default()
    }
}

/// This machine's host name, to tell merged reports apart.
fn machine() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}
