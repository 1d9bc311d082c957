//! The `tekup-service` command line.
//!
//! Exit codes: 0 success, 1 a runtime failure (printed with its causes),
//! 2 a usage error (from clap).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::auth::grants::Grants;
use crate::config::ServiceArgs;
use crate::events::EventBus;
use crate::gateway::{Gateway, GatewayArgs};
use crate::queue::Queues;
use crate::state::{AppState, ServiceName};
use crate::tenants::{self, NewTenant, SeedFile};
use crate::worker::{self, WorkerArgs};
use crate::{db, http};

#[derive(Debug, Parser)]
#[command(
    name = "tekup-service",
    version,
    about = "Reference implementation of the TekUp platform services",
    long_about = "Runs one of the TekUp reference services, or administers their database.\n\n\
        Typical start: `tekup-service migrate --database-url postgres://postgres@localhost/tekup \
        --service-password secret --seed fixtures/tenants.yaml --contract fixtures/platform.yaml`, then each service with \
        DATABASE_URL pointing at the login role (tekup_service by default) and a shared \
        TEKUP_TOKEN_SECRET.",
    after_help = "Exit codes: 0 success, 1 runtime failure, 2 usage error.\n\
        Logs go to stderr; RUST_LOG sets the level (default info), LOG_FORMAT=json for JSON lines.\n\
        Traces: OTEL_EXPORTER_OTLP_ENDPOINT exports OpenTelemetry spans over OTLP http/protobuf (the standard OTEL_* variables apply)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Flow API: leads, activities, compliance reports (needs CRM_API_URL for lead-to-contact).
    FlowApi(ServiceArgs),
    /// CRM API: contacts, contact sync, deals.
    CrmApi(ServiceArgs),
    /// Secure Platform: security incidents.
    SecurePlatform(ServiceArgs),
    /// WebSocket event gateway on `/events` (needs REDIS_URL).
    Gateway(GatewayCommand),
    /// Queue worker: lead processing, notifications, ... (needs REDIS_URL); serves /health, /metrics, /admin/queues, /admin/breakers.
    Worker(WorkerCommand),
    /// Applies the migrations, creates the services' login role, optionally seeds tenants.
    Migrate(MigrateArgs),
    /// Administers tenants.
    #[command(subcommand)]
    Tenant(TenantCommand),
}

#[derive(Debug, Args)]
struct GatewayCommand {
    #[command(flatten)]
    service: ServiceArgs,
    #[command(flatten)]
    gateway: GatewayArgs,
}

#[derive(Debug, Args)]
struct WorkerCommand {
    #[command(flatten)]
    service: ServiceArgs,
    #[command(flatten)]
    worker: WorkerArgs,
}

#[derive(Debug, Args)]
struct MigrateArgs {
    /// Postgres URL of a role that may create schemas and roles (the tables' owner).
    #[arg(long, env = "ADMIN_DATABASE_URL")]
    database_url: String,
    /// Login role the services connect as; it does not own the tables, so row-level security applies.
    #[arg(long, env = "SERVICE_DB_ROLE", default_value = "tekup_service")]
    service_role: String,
    /// Password of the login role; without it no login role is created or changed.
    #[arg(long, env = "SERVICE_DB_PASSWORD", hide_env_values = true)]
    service_password: Option<String>,
    /// Seed file with tenants and their keys (e.g. fixtures/tenants.yaml).
    #[arg(long)]
    seed: Option<PathBuf>,
    /// The platform's contract (e.g. fixtures/platform.yaml), whose permission matrix is stored.
    #[arg(long)]
    contract: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum TenantCommand {
    /// Creates a tenant with fresh API keys and prints it as JSON (the only time keys are shown).
    Create(TenantCreateArgs),
}

#[derive(Debug, Args)]
struct TenantCreateArgs {
    /// Postgres URL (the admin or the service role).
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,
    /// Tenant id (lower-case letters, digits, `-`); random when omitted.
    #[arg(long)]
    id: Option<String>,
    /// Display name; the id when omitted.
    #[arg(long)]
    name: Option<String>,
    /// Comma-separated allowed apps; every app of the permission matrix when omitted.
    #[arg(long, value_delimiter = ',')]
    apps: Option<Vec<String>>,
    /// Number of API keys to issue.
    #[arg(long, default_value_t = 1)]
    keys: usize,
    /// Requests per minute allowed to the tenant, per service.
    #[arg(long)]
    rate_limit: Option<i32>,
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let service = match &cli.command {
        Command::FlowApi(_) => Some(ServiceName::FlowApi),
        Command::CrmApi(_) => Some(ServiceName::CrmApi),
        Command::SecurePlatform(_) => Some(ServiceName::SecurePlatform),
        Command::Gateway(_) => Some(ServiceName::Gateway),
        Command::Worker(_) => Some(ServiceName::Worker),
        Command::Migrate(_) | Command::Tenant(_) => None,
    };
    let telemetry = match crate::telemetry::init(service.map(ServiceName::as_str)) {
        Ok(telemetry) => telemetry,
        Err(e) => return fail(&anyhow::Error::new(e).context("failed to set up tracing")),
    };
    if telemetry.exporting() {
        crate::telemetry::operations::prepare();
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => return fail(&anyhow::Error::new(e).context("failed to start the async runtime")),
    };
    let result = runtime.block_on(run(cli.command));
    // The runtime first: its tasks end, and their last spans with them.
    drop(runtime);
    telemetry.shutdown();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

fn fail(error: &anyhow::Error) -> ExitCode {
    tracing::error!("{error:#}");
    #[expect(clippy::print_stderr, reason = "the CLI's final error message")]
    {
        eprintln!("error: {error:#}");
    }
    ExitCode::FAILURE
}

async fn run(command: Command) -> anyhow::Result<()> {
    crate::defects::announce().map_err(anyhow::Error::msg)?;
    match command {
        Command::FlowApi(args) => run_service(ServiceName::FlowApi, args, Role::Api).await,
        Command::CrmApi(args) => run_service(ServiceName::CrmApi, args, Role::Api).await,
        Command::SecurePlatform(args) => {
            run_service(ServiceName::SecurePlatform, args, Role::Api).await
        }
        Command::Gateway(cmd) => {
            run_service(
                ServiceName::Gateway,
                cmd.service,
                Role::Gateway(cmd.gateway),
            )
            .await
        }
        Command::Worker(cmd) => {
            run_service(ServiceName::Worker, cmd.service, Role::Worker(cmd.worker)).await
        }
        Command::Migrate(args) => migrate(args).await,
        Command::Tenant(TenantCommand::Create(args)) => create_tenant(args).await,
    }
}

/// Hides the password of a Postgres URL for messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

async fn connect(url: &str, max: u32) -> anyhow::Result<sqlx::PgPool> {
    db::connect(url, max)
        .await
        .with_context(|| format!("failed to connect to Postgres at {}", redact_url(url)))
}

/// What a service process runs besides its HTTP server.
#[derive(Debug)]
enum Role {
    Api,
    Gateway(GatewayArgs),
    Worker(WorkerArgs),
}

async fn run_service(service: ServiceName, args: ServiceArgs, role: Role) -> anyhow::Result<()> {
    let pool = db::connect_when_up(
        &args.database_url,
        args.db_max_connections,
        args.database_wait,
    )
    .await?;
    let grants = Grants::load(&pool)
        .await
        .context("failed to load the permission matrix (has `tekup-service migrate` run?)")?;
    if grants.rows().next().is_none() {
        tracing::warn!("the permission matrix is empty: every request will be refused; run `tekup-service migrate --contract fixtures/platform.yaml`");
    }
    let mut state = AppState::new(
        service,
        pool.clone(),
        grants,
        args.token_secret.as_bytes(),
        args.upstreams,
    );
    state.admin_token = args.admin_token.map(Into::into);
    state.max_body_bytes = args.max_body_bytes;
    let shutdown = CancellationToken::new();

    let redis = match &args.redis_url {
        Some(url) => Some(connect_redis(url, &mut state).await?),
        None if matches!(role, Role::Api) => {
            tracing::warn!(
                "no REDIS_URL: no events are published and leads are processed inside the request"
            );
            None
        }
        None => anyhow::bail!("{service} needs Redis: set REDIS_URL or --redis-url"),
    };
    if service == ServiceName::FlowApi && state.queues.is_some() {
        tokio::spawn(crate::flow::recover_outbox(state.clone(), shutdown.clone()));
    }
    let mut worker = None;
    match role {
        Role::Api => {}
        Role::Gateway(gateway_args) => {
            let client = redis.clone().expect("checked above");
            let gateway = Gateway::start(
                client,
                pool,
                Arc::clone(&state.metrics),
                &gateway_args,
                shutdown.clone(),
            )
            .await
            .context("failed to start the gateway's stream reader")?;
            state.gateway = Some(gateway);
        }
        Role::Worker(worker_args) => {
            worker = Some(tokio::spawn(worker::run(
                state.clone(),
                worker_args,
                shutdown.clone(),
            )));
        }
    }

    let listener = TcpListener::bind(args.bind)
        .await
        .with_context(|| format!("failed to listen on {}", args.bind))?;
    let address = listener
        .local_addr()
        .context("failed to read the bound address")?;
    tracing::info!(%service, %address, "listening on http://{address}");
    let stop = shutdown.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        stop.cancel();
    });
    let gateway = state.gateway.clone();
    http::serve(
        listener,
        http::app(state),
        shutdown.clone().cancelled_owned(),
    )
    .await
    .context("the HTTP server failed")?;
    shutdown.cancel();
    if let Some(gateway) = gateway {
        // Every connection is closed: what they were sent is audited
        // before the process goes.
        gateway.finish().await;
    }
    if let Some(worker) = worker {
        worker
            .await
            .context("the worker task panicked")?
            .context("the worker failed")?;
    }
    tracing::info!(%service, "stopped");
    Ok(())
}

/// Connects the event bus and the queues; returns the client for more connections.
async fn connect_redis(url: &str, state: &mut AppState) -> anyhow::Result<redis::Client> {
    let shown = redact_url(url);
    let client = redis::Client::open(url).with_context(|| format!("invalid REDIS_URL {shown}"))?;
    let manager = redis::aio::ConnectionManager::new_with_config(
        client.clone(),
        crate::queue::reconnecting(),
    )
    .await
    .with_context(|| format!("failed to connect to Redis at {shown}"))?;
    state.events = Some(EventBus::new(manager));
    state.queues = Some(
        Queues::connect(client.clone())
            .await
            .with_context(|| format!("failed to set up the queues on Redis at {shown}"))?,
    );
    Ok(client)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

async fn migrate(args: MigrateArgs) -> anyhow::Result<()> {
    let seed = (args.seed.is_some() || args.contract.is_some())
        .then(|| SeedFile::load_with_contract(args.seed.as_deref(), args.contract.as_deref()))
        .transpose()?;
    let pool = connect(&args.database_url, 2).await?;
    db::MIGRATOR
        .run(&pool)
        .await
        .context("failed to apply the migrations")?;
    tracing::info!("migrations applied");
    if let Some(password) = &args.service_password {
        db::ensure_login_role(&pool, &args.service_role, password)
            .await
            .with_context(|| format!("failed to set up the login role {}", args.service_role))?;
        tracing::info!(role = args.service_role, "login role ready");
    }
    if let Some(seed) = seed {
        tenants::seed(&pool, &seed)
            .await
            .context("failed to seed tenants")?;
        tracing::info!(tenants = seed.tenants.len(), "seeded");
    }
    let defects = crate::defects_db::apply(&pool)
        .await
        .context("failed to apply the deliberate database defects")?;
    if !defects.is_empty() {
        tracing::warn!(?defects, "DELIBERATE DATABASE DEFECTS APPLIED");
    }
    Ok(())
}

async fn create_tenant(args: TenantCreateArgs) -> anyhow::Result<()> {
    let pool = connect(&args.database_url, 1).await?;
    let created = tenants::create_tenant(
        &pool,
        NewTenant {
            id: args.id,
            name: args.name,
            allowed_apps: args.apps,
            rate_limit_per_minute: args.rate_limit,
            keys: Some(args.keys),
        },
    )
    .await
    .context("failed to create the tenant")?;
    let json = serde_json::to_string_pretty(&created).context("failed to encode the tenant")?;
    #[expect(clippy::print_stdout, reason = "the command's output")]
    {
        println!("{json}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://svc:hunter2@db:5432/x"),
            "postgres://svc:***@db:5432/x"
        );
        assert_eq!(redact_url("postgres://svc@db/x"), "postgres://svc@db/x");
        assert_eq!(redact_url("not a url"), "not a url");
    }

    #[test]
    fn the_cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
