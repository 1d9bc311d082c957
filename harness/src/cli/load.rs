//! `tekup-harness load`: a load profile against the reference ecosystem
//! (started here) or a running deployment (`--host`), judged against the
//! platform's targets; and `load merge`, which merges the reports of
//! several machines that loaded one deployment at once.
//!
//! Exit codes: 0 every target met, 1 a target breached, a merge lacking a
//! shard of its plan, or a run that could not be made (with the cause and a
//! hint), 2 a usage error.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};

use super::{out, say, say_progress, Stop};
use crate::env::{error_chain, Ecosystem, Runtime};
use crate::load::{self, LoadReport, Plan, Profile, Thresholds};
use crate::net::ClientTls;
use crate::platform::Platform;

#[derive(Debug, Args)]
#[command(
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    after_help = "Without --host, the ecosystem is started here (--runtime process, docker or \
        auto) and loaded, or the deployment an external file describes is (--runtime external). \
        With --host, a running deployment is loaded: --host is flow-api (it also \
        creates the tenants, so give the services' ADMIN_TOKEN with --admin-token); contact-sync \
        and mixed need --crm-host, ws-fanout needs --gateway-host, and lead-creation and mixed \
        measure the queue latency only when --gateway-host is given.\n\
        Several generators at once: give each the same arguments and its own --shard \
        (0/3, 1/3, 2/3), then `load merge` their load.json files.\n\
        Reports: <reports-dir>/load.json and load.html (ours) and goose.html (goose's).\n\
        Exit codes: 0 every target met, 1 a target breached or the run failed, 2 usage error."
)]
pub(super) struct LoadArgs {
    #[command(subcommand)]
    command: Option<LoadCommand>,
    /// lead-creation, contact-sync, mixed or ws-fanout.
    #[arg(long, required = true, value_parser = parse_profile)]
    profile: Option<Profile>,
    /// flow-api of a running deployment (e.g. https://flow.staging.example); none: start the local ecosystem.
    #[arg(long, value_name = "URL")]
    host: Option<String>,
    /// crm-api of the deployment (contact-sync, mixed).
    #[arg(long, value_name = "URL", env = "TEKUP_CRM_API_URL")]
    crm_host: Option<String>,
    /// The WebSocket gateway of the deployment (ws-fanout; queue latency).
    #[arg(long, value_name = "URL", env = "TEKUP_GATEWAY_URL")]
    gateway_host: Option<String>,
    /// The services' ADMIN_TOKEN (default for the local ecosystem: its file's `admin-token`).
    #[arg(long, env = "TEKUP_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// Simulated users, each with a tenant of its own (of all shards together).
    #[arg(long, default_value_t = 10)]
    users: usize,
    /// This generator's part of a plan run by several at once, INDEX/COUNT
    /// counting from 0 (a Kubernetes Indexed Job's JOB_COMPLETION_INDEX):
    /// its share of --users and --hatch-rate, tenants named after it.
    #[arg(long, value_name = "INDEX/COUNT", env = "TEKUP_LOAD_SHARD")]
    shard: Option<load::Shard>,
    /// How long the load runs, ramp-up included (whole seconds).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    run_time: Duration,
    /// Users started per second, of all shards together (default: all in the first second).
    #[arg(long, value_name = "R")]
    hatch_rate: Option<f64>,
    /// WebSocket clients per tenant in ws-fanout.
    #[arg(long, default_value_t = 4)]
    ws_clients: usize,
    #[command(flatten)]
    limits: LimitArgs,
    /// Without --host: auto, process, docker or external [default: process].
    #[arg(long, conflicts_with = "host")]
    runtime: Option<Runtime>,
    /// The deployment file of --runtime external (default: TEKUP_<COMPONENT>_URL variables).
    #[arg(long, env = "TEKUP_EXTERNAL_FILE", value_name = "FILE")]
    external: Option<PathBuf>,
    /// Also forward every span the services export to this OTLP/HTTP
    /// endpoint (a collector's base URL, e.g. http://localhost:4318; sent to
    /// its /v1/traces as protobuf, in the background; failures are logged,
    /// never fatal).
    #[arg(long, env = "TEKUP_OTLP_FORWARD", value_name = "URL")]
    otlp_forward: Option<String>,
    /// Leave the tenants made on a deployment as they are (by default they
    /// are suspended through its database when the external file gives
    /// one; the end of the run says what became of them).
    #[arg(long)]
    keep_tenants: bool,
    /// The ecosystem file (for the local ecosystem).
    #[arg(
        long,
        env = "TEKUP_ECOSYSTEM",
        default_value = "fixtures/ecosystem.toml"
    )]
    ecosystem: PathBuf,
    /// Start the ecosystem file's optional Prometheus too (process or
    /// docker runtime), and list the alerts it fired during the run in the
    /// reports.
    #[arg(long)]
    prometheus: bool,
    /// Where the reports (and the local ecosystem's logs) go.
    #[arg(long, default_value = "reports")]
    reports_dir: PathBuf,
    #[command(flatten)]
    tls: crate::net::TlsArgs,
}

#[derive(Debug, Args)]
struct LimitArgs {
    /// Each request kind's p95 must be below this many ms [default: 500].
    #[arg(long, value_name = "MS")]
    p95_ms: Option<f64>,
    /// Failed requests must be below this share: `1%` or `0.01` [default: 1%].
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    max_error_rate: Option<f64>,
    /// Every lead must be processed within this [default: 60s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    max_queue_latency: Option<Duration>,
}

impl LimitArgs {
    fn over(&self, base: Thresholds) -> Thresholds {
        Thresholds {
            p95_ms: self.p95_ms.unwrap_or(base.p95_ms),
            max_error_rate: self.max_error_rate.unwrap_or(base.max_error_rate),
            max_queue_latency_ms: self
                .max_queue_latency
                .map_or(base.max_queue_latency_ms, |d| d.as_secs_f64() * 1000.0),
        }
    }

    fn given(&self) -> bool {
        self.p95_ms.is_some() || self.max_error_rate.is_some() || self.max_queue_latency.is_some()
    }
}

#[derive(Debug, Subcommand)]
enum LoadCommand {
    /// Merges load.json reports of runs made at once on several machines
    /// (counts and histograms add up) and judges the merge again.
    Merge {
        /// The load.json files.
        #[arg(required = true)]
        reports: Vec<PathBuf>,
        /// Where the merged JSON goes (an HTML page is written beside it).
        #[arg(short, long, default_value = "reports/merged.json")]
        output: PathBuf,
        #[command(flatten)]
        limits: LimitArgs,
    },
}

fn parse_profile(text: &str) -> Result<Profile, String> {
    text.parse().map_err(|e: load::LoadError| e.to_string())
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    crate::scenario::parse_duration(text).map_err(|e| format!("{e} (e.g. 30s, 2m)"))
}

fn parse_rate(text: &str) -> Result<f64, String> {
    let bad = || format!("invalid rate `{text}`: e.g. 1% or 0.01");
    let rate = match text.trim().strip_suffix('%') {
        Some(percent) => percent.trim().parse::<f64>().map_err(|_| bad())? / 100.0,
        None => text.trim().parse::<f64>().map_err(|_| bad())?,
    };
    if (0.0..=1.0).contains(&rate) {
        Ok(rate)
    } else {
        Err(bad())
    }
}

pub(super) fn run(args: LoadArgs, rt: &tokio::runtime::Runtime) -> ExitCode {
    if let Some(LoadCommand::Merge {
        reports,
        output,
        limits,
    }) = &args.command
    {
        return merge(reports, output, limits);
    }
    let Some(profile) = args.profile else {
        say("error: --profile is required");
        return ExitCode::FAILURE;
    };
    let tls = match super::client_tls(&args.tls) {
        Ok(tls) => tls,
        Err(code) => return code,
    };
    let report = rt.block_on(load(&args, profile, &tls));
    let report = match report {
        Ok(r) => r,
        Err((e, hint)) => {
            say(&format!("error: {e}"));
            if let Some(hint) = hint {
                say(&format!("hint: {hint}"));
            }
            return ExitCode::FAILURE;
        }
    };
    finish(&report, |r| r.write(&args.reports_dir))
}

type Failure = (String, Option<&'static str>);

async fn load(args: &LoadArgs, profile: Profile, tls: &ClientTls) -> Result<LoadReport, Failure> {
    std::fs::create_dir_all(&args.reports_dir).map_err(|e| {
        (
            format!("failed to create {}: {e}", args.reports_dir.display()),
            None,
        )
    })?;
    let mut plan = Plan::new(profile, args.users, args.run_time);
    plan.shard = args.shard;
    plan.hatch_rate = args.hatch_rate;
    plan.ws_clients = args.ws_clients;
    plan.thresholds = args.limits.over(Thresholds::default());
    plan.goose_report = Some(args.reports_dir.join("goose.html"));
    plan.progress = Box::new(|line| say(&format!("load: {line}")));
    let Some(host) = &args.host else {
        let mut eco = start(args, tls).await?;
        let began = std::time::SystemTime::now();
        let mut report = match local_platform(&eco, args.admin_token.clone()) {
            Ok(platform) => load::run(&plan, &platform)
                .await
                .map_err(|e| (error_chain(&e), None)),
            Err(e) => Err((error_chain(&e), None)),
        };
        if let Ok(report) = &mut report {
            report.alerts = crate::alerts::AlertLog::of_run(&eco, began).await;
        }
        say(&format!(
            "tenants: {}",
            eco.release_tenants(args.keep_tenants).await.describe()
        ));
        say("stopping the ecosystem …");
        eco.shutdown().await;
        return report;
    };
    let Some(admin_token) = args.admin_token.clone() else {
        return Err((
            "no admin token for the deployment's admin API (tenants are created through it)".into(),
            Some("give the services' ADMIN_TOKEN with --admin-token or TEKUP_ADMIN_TOKEN"),
        ));
    };
    let urls = [
        ("flow-api", Some(host)),
        ("crm-api", args.crm_host.as_ref()),
        ("gateway", args.gateway_host.as_ref()),
    ]
    .into_iter()
    .filter_map(|(name, url)| Some((name.to_owned(), url?.clone())))
    .collect();
    let platform =
        Platform::with_tls(urls, admin_token, tls).map_err(|e| (error_chain(&e), None))?;
    let report = load::run(&plan, &platform).await;
    let release = crate::platform::release_tenants(
        platform.tenants().take(),
        platform.tenants().prefix(),
        args.keep_tenants,
        None,
        Some("--host gives the deployment's URLs only; use --runtime external with a file that gives the database"),
    )
    .await;
    say(&format!("tenants: {}", release.describe()));
    report.map_err(|e| {
        let hint = match &e {
            load::LoadError::Tenants(crate::platform::PlatformError::Transport { .. }) => {
                Some("is --host the deployment's flow-api, reachable from here?")
            }
            load::LoadError::Tenants(crate::platform::PlatformError::TenantRefused {
                status: 401 | 403,
                ..
            }) => Some("give the deployment's ADMIN_TOKEN with --admin-token or TEKUP_ADMIN_TOKEN"),
            _ => None,
        };
        (error_chain(&e), hint)
    })
}

/// The local ecosystem's services, with `--admin-token` if given.
fn local_platform(
    eco: &Ecosystem,
    admin_token: Option<String>,
) -> Result<Platform, crate::platform::PlatformError> {
    match admin_token {
        None => Platform::from_ecosystem(eco),
        Some(token) => {
            let urls = eco
                .components()
                .filter_map(|c| Some((c.name().to_owned(), c.url()?)))
                .collect();
            Platform::with_ledger(urls, token, eco.tls(), std::sync::Arc::clone(eco.tenants()))
        }
    }
}

/// Starts the ecosystem on `--runtime` (building the binaries first under
/// `cargo run`), or finds the external deployment.
async fn start(args: &LoadArgs, tls: &ClientTls) -> Result<Ecosystem, Failure> {
    let runtime = args.runtime.unwrap_or(Runtime::Process);
    let root = std::env::current_dir().unwrap_or_default();
    if runtime != Runtime::External
        && std::env::var_os("CARGO").is_some()
        && std::env::var_os("TEKUP_BIN_DIR").is_none()
    {
        say("building the services and mocks …");
        crate::scenario::run::build_binaries(&root)
            .await
            .map_err(|e| (e, None))?;
    }
    let mut builder = Ecosystem::builder()
        .file(&args.ecosystem)
        .runtime(runtime)
        .tls(tls.clone())
        .logs_dir(args.reports_dir.join("logs"))
        .prometheus(args.prometheus || crate::env::prometheus::asked())
        .on_progress(say_progress);
    if let Some(file) = &args.external {
        builder = builder.external_file(file);
    }
    if let Some(url) = &args.otlp_forward {
        builder = builder.otlp_forward(url);
    }
    let mut stop = Stop::install();
    let eco = tokio::select! {
        eco = builder.start() => eco,
        () = stop.wait() => return Err(("interrupted while starting the ecosystem; what had started was stopped".into(), None)),
    };
    eco.map_err(|e| {
        let hint = match &e {
            crate::env::EnvError::ImageMissing { .. } => {
                "run `tekup-harness images build`, or use --runtime process"
            }
            crate::env::EnvError::Model(_) => {
                "fix the ecosystem file (--ecosystem) at the line shown"
            }
            _ if runtime == Runtime::External => {
                "--external FILE (or TEKUP_EXTERNAL_FILE, or TEKUP_<COMPONENT>_URL variables) describes the deployment"
            }
            _ => "`tekup-harness doctor` says what this machine can run",
        };
        (
            format!("the ecosystem did not start: {}", error_chain(&e)),
            Some(hint),
        )
    })
}

fn merge(paths: &[PathBuf], output: &Path, limits: &LimitArgs) -> ExitCode {
    let mut reports = Vec::with_capacity(paths.len());
    for path in paths {
        match LoadReport::read(path) {
            Ok(r) => reports.push(r),
            Err(e) => {
                say(&format!("error: {}", error_chain(&e)));
                say("hint: load merge reads the load.json files `tekup-harness load` writes");
                return ExitCode::FAILURE;
            }
        }
    }
    let base = reports.first().map(|r| r.thresholds).unwrap_or_default();
    let limits = limits.given().then(|| limits.over(base));
    let merged = match LoadReport::merge(&reports, limits) {
        Ok(m) => m,
        Err(e) => {
            say(&format!("error: {e}"));
            return ExitCode::FAILURE;
        }
    };
    let dir = output.parent().unwrap_or(Path::new("."));
    let base = output
        .file_stem()
        .map_or_else(|| "merged".into(), |s| s.to_string_lossy().into_owned());
    let judged = finish(&merged, |r| r.write_as(dir, &base));
    let missing = merged.missing_shards();
    if missing.is_empty() {
        return judged;
    }
    say(&format!(
        "error: the merge lacks shard(s) {} of the plan: it is not the whole load",
        missing
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    ));
    say("hint: merge the load.json of every shard (did a generator fail before writing it?)");
    ExitCode::FAILURE
}

/// Writes the reports, prints the summary and a line per rule, and says
/// how the run ended.
fn finish(
    report: &LoadReport,
    write: impl FnOnce(&LoadReport) -> Result<Vec<PathBuf>, load::LoadError>,
) -> ExitCode {
    match write(report) {
        Ok(paths) => {
            for p in paths {
                say(&format!("report: {}", p.display()));
            }
        }
        Err(e) => say(&format!("warning: {}", error_chain(&e))),
    }
    out(&summary(report));
    let breaches = report.breaches().count();
    if breaches == 0 {
        out(&format!("{}: every target met", report.profile));
        ExitCode::SUCCESS
    } else {
        out(&format!(
            "{}: {breaches} target(s) breached",
            report.profile
        ));
        ExitCode::FAILURE
    }
}

/// The run in a few lines: totals, each kind, queue and delivery, verdicts.
pub(crate) fn summary(r: &LoadReport) -> String {
    let mut text = format!(
        "{} — {} user(s), {:.1} s, {:.1} requests/s on {}\n",
        r.profile,
        r.users,
        r.run_time_s,
        r.requests_per_second,
        r.machines.join(", ")
    );
    text.push_str(&format!(
        "{:<28} {:>8} {:>7} {:>9} {:>9} {:>9} {:>9}\n",
        "request", "count", "errors", "p50 ms", "p95 ms", "p99 ms", "max ms"
    ));
    for k in r.requests.iter().chain([&r.total]) {
        let l = &k.latency_ms;
        text.push_str(&format!(
            "{:<28} {:>8} {:>7} {:>9.1} {:>9.1} {:>9.1} {:>9.1}\n",
            k.name, k.count, k.errors, l.p50, l.p95, l.p99, l.max
        ));
    }
    if let Some(q) = &r.queue_latency {
        text.push_str(&format!(
            "queue latency: {} processed, {} not, p50 {:.1} ms, p95 {:.1} ms, max {:.1} ms\n",
            q.processed,
            q.unprocessed,
            q.histogram.percentile_ms(50.0),
            q.histogram.percentile_ms(95.0),
            q.histogram.max_ms()
        ));
    }
    if let Some(d) = &r.event_delivery {
        text.push_str(&format!(
            "WebSocket fan-out: {} clients, {}/{} delivered, {} missed, p95 {:.1} ms, max {:.1} ms\n",
            d.clients,
            d.delivered,
            d.expected,
            d.missed,
            d.histogram.percentile_ms(95.0),
            d.histogram.max_ms()
        ));
    }
    for sample in &r.error_samples {
        text.push_str(&format!("failure: {sample}\n"));
    }
    if let Some(alerts) = &r.alerts {
        for line in alerts.lines() {
            text.push_str(&format!("alert: {line}\n"));
        }
    }
    for v in &r.verdicts {
        text.push_str(&format!("{v}\n"));
    }
    text.pop();
    text
}
