//! The `tekup-harness` command line.
//!
//! Exit codes: 0 success, 1 a failure (printed with its causes and a hint),
//! 2 a usage error (from clap).

mod chaos;
mod doctor;
mod load;
mod prop;
mod run;
mod scenario;
mod sweep;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Args, Parser, Subcommand};

use crate::env::{self, images, state, Ecosystem, Kind, Progress, Runtime};
use crate::net::{ClientTls, TlsArgs};

#[derive(Debug, Parser)]
#[command(
    name = "tekup-harness",
    version,
    about = "Starts the TekUp ecosystem (processes, containers or a staging deployment) and runs scenarios, property, load and chaos suites against it",
    after_help = "Exit codes: 0 success, 1 failure, 2 usage error.\n\
        Runtimes: process (child processes, the default without docker images), docker \
        (containers; build the images once with `tekup-harness images build`), external \
        (TEKUP_<COMPONENT>_URL or --external FILE), auto (docker when usable, else process)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// The platform's contract (default: the reference platform's, fixtures/platform.yaml, built in).
    #[arg(long, global = true, env = "TEKUP_CONTRACT")]
    contract: Option<PathBuf>,
    /// Install nothing. By default, as root, a missing PostgreSQL, Redis
    /// (process runtime) or mmdebstrap (docker runtime's offline images) is
    /// installed with apt-get, announced with the command first; with this
    /// the start fails and prints the command to run instead.
    #[arg(
        long,
        global = true,
        env = "TEKUP_NO_INSTALL",
        value_parser = clap::builder::FalseyValueParser::new()
    )]
    no_install: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Starts the ecosystem, prints how to reach every component, stays up until Ctrl-C.
    Up(UpArgs),
    /// Stops an environment left running by `up --keep` (or a killed `up`).
    Down(DownArgs),
    /// Offline images for the docker runtime.
    #[command(subcommand)]
    Images(ImagesCommand),
    /// What is installed, which runtimes can work here, what to install for the others
    /// (`--fix` installs it).
    Doctor(doctor::DoctorArgs),
    /// Runs scenario files against the ecosystem (started here, or --runtime external).
    Run(run::RunArgs),
    /// Loads the ecosystem (or a deployment, --host) with a goose profile and judges it
    /// against the platform's targets; `load merge` merges several machines' reports.
    Load(Box<load::LoadArgs>),
    /// Chaos suites: steady load while Redis or Postgres dies, a mock fails, the gateway loses Redis or restarts, or a service is frozen or killed mid-work, then the invariants.
    Chaos(chaos::ChaosArgs),
    /// The sweep: attacks every operation, input, limit, database grant and token rule the
    /// contract and OpenAPI documents name; a finding prints its smallest request.
    Sweep(sweep::SweepArgs),
    /// Property tests: random operation sequences of several tenants against the ecosystem and a model; a failure is shrunk to a scenario file.
    Prop(prop::PropArgs),
    /// Checks scenario files (default: scenarios/); exit 1 when any is invalid.
    Validate {
        /// Files or directories of `*.yaml` scenarios.
        #[arg(default_value = "scenarios")]
        paths: Vec<PathBuf>,
    },
    /// Prints the JSON Schema of the scenario format.
    Schema,
    /// Creates a file from a template.
    #[command(subcommand)]
    New(NewCommand),
    /// Internal: removes a run's containers once standard input closes.
    #[command(hide = true)]
    Reap {
        #[arg(long)]
        run: String,
    },
}

/// Where the ecosystem comes from and where its logs and reports go, for
/// the commands that start one (`run`, `chaos`, ...).
#[derive(Debug, Args)]
pub(super) struct StartArgs {
    /// auto, process, docker or external (faults need process or docker).
    #[arg(long, default_value = "process")]
    pub(super) runtime: Runtime,
    /// Where reports and component logs go.
    #[arg(long, default_value = "reports")]
    pub(super) reports_dir: PathBuf,
    /// The ecosystem file.
    #[arg(
        long,
        visible_alias = "ecosystem",
        env = "TEKUP_ECOSYSTEM",
        default_value = "fixtures/ecosystem.toml"
    )]
    pub(super) file: PathBuf,
    #[command(flatten)]
    pub(super) tls: TlsArgs,
    /// The external runtime's deployment file: component URLs, and `[vars]`
    /// such as `admin-token` (see `--runtime external`).
    #[arg(long, env = "TEKUP_EXTERNAL_FILE")]
    pub(super) external: Option<PathBuf>,
    /// Also forward every span the services export to this OTLP/HTTP
    /// endpoint (a collector's base URL, e.g. http://localhost:4318; sent to
    /// its /v1/traces as protobuf, in the background; failures are logged,
    /// never fatal).
    #[arg(long, env = "TEKUP_OTLP_FORWARD", value_name = "URL")]
    pub(super) otlp_forward: Option<String>,
    /// Leave the tenants made on an external deployment as they are
    /// (by default they are suspended through its database when the
    /// external file gives one; the end of the run says what became of them).
    #[arg(long)]
    pub(super) keep_tenants: bool,
}

impl StartArgs {
    /// A suite in the current directory with these settings. Under
    /// `cargo run` the services and mocks are built too, so the main job
    /// never runs stale binaries; an installed harness uses prebuilt ones.
    /// `Err` (after saying why) when the TLS files are wrong.
    pub(super) fn suite(&self) -> Result<crate::scenario::run::Suite, ExitCode> {
        let mut suite =
            crate::scenario::run::Suite::new(std::env::current_dir().unwrap_or_default());
        suite.file = self.file.clone();
        suite.runtime = self.runtime;
        suite.reports_dir = self.reports_dir.clone();
        suite.set_tls(client_tls(&self.tls)?);
        suite.external.clone_from(&self.external);
        suite.keep_tenants = self.keep_tenants;
        suite.otlp_forward.clone_from(&self.otlp_forward);
        suite.build |=
            std::env::var_os("CARGO").is_some() && std::env::var_os("TEKUP_BIN_DIR").is_none();
        Ok(suite)
    }
}

/// The TLS settings of a command's clients; `--insecure` is said on stderr,
/// wrong files are an error naming them (exit 1).
pub(super) fn client_tls(args: &TlsArgs) -> Result<ClientTls, ExitCode> {
    match args.load() {
        Ok(tls) => {
            if tls.is_insecure() {
                say(crate::net::INSECURE_WARNING);
            }
            Ok(tls)
        }
        Err(e) => {
            say(&format!("error: {e}"));
            say("hint: --ca-cert, --client-cert and --client-key (TEKUP_CA_CERT, TEKUP_CLIENT_CERT, TEKUP_CLIENT_KEY) take PEM files");
            Err(ExitCode::FAILURE)
        }
    }
}

#[derive(Debug, Subcommand)]
enum NewCommand {
    /// Writes DIR/NAME.yaml from a commented template (never overwrites).
    Scenario {
        /// The scenario's name: lowercase letters, digits and dashes.
        name: String,
        /// Where scenario files live.
        #[arg(long, default_value = "scenarios")]
        dir: PathBuf,
    },
}

#[derive(Debug, Args)]
struct FileArgs {
    /// The ecosystem file.
    #[arg(
        long,
        env = "TEKUP_ECOSYSTEM",
        default_value = "fixtures/ecosystem.toml"
    )]
    file: PathBuf,
}

#[derive(Debug, Args)]
struct UpArgs {
    #[command(flatten)]
    file: FileArgs,
    /// auto, process, docker or external.
    #[arg(long, default_value = "auto")]
    runtime: Runtime,
    /// Leave the environment running and exit; stop it with `tekup-harness down`.
    #[arg(long)]
    keep: bool,
    /// Deployment file for the external runtime.
    #[arg(long, env = "TEKUP_EXTERNAL_FILE")]
    external: Option<PathBuf>,
    /// Also forward every span the services export to this OTLP/HTTP
    /// endpoint (a collector's base URL, e.g. http://localhost:4318; sent to
    /// its /v1/traces as protobuf, in the background; failures are logged,
    /// never fatal).
    #[arg(long, env = "TEKUP_OTLP_FORWARD", value_name = "URL")]
    otlp_forward: Option<String>,
    /// Where component logs go.
    #[arg(long, default_value = "reports/logs")]
    logs_dir: PathBuf,
    /// Where the environment's state is recorded (for `down`).
    #[arg(long, default_value = "reports/.tekup-env.json")]
    state_file: PathBuf,
    #[command(flatten)]
    tls: TlsArgs,
    /// Also serve every HTTP service over TLS (a front of the harness), with a CA,
    /// server and client certificates made now and written to DIR; not with --keep.
    #[arg(long, value_name = "DIR", conflicts_with = "keep")]
    tls_front: Option<PathBuf>,
    /// The TLS front requires client certificates signed by its CA (mTLS).
    #[arg(long, requires = "tls_front")]
    tls_front_mtls: bool,
}

#[derive(Debug, Args)]
struct DownArgs {
    /// The state file `up` wrote.
    #[arg(long, default_value = "reports/.tekup-env.json")]
    state_file: PathBuf,
    /// Also remove every container and network any harness run left behind.
    #[arg(long)]
    all: bool,
}

#[derive(Debug, Subcommand)]
enum ImagesCommand {
    /// Builds tekup-harness/{postgres,redis,runtime} from Debian packages (no registry),
    /// and tekup-harness/harness (this harness on the runtime image, for load generators).
    Build(ImagesArgs),
    /// Says which offline images exist.
    List(ImagesArgs),
}

#[derive(Debug, Args)]
struct ImagesArgs {
    /// Directory with the image files (postgres/docker-entrypoint.sh).
    #[arg(long, default_value = "images")]
    images_dir: PathBuf,
    /// Debian mirror.
    #[arg(long, default_value = "http://deb.debian.org/debian")]
    mirror: String,
    /// Rebuild the root filesystem even when a cached one matches.
    #[arg(long)]
    rebuild: bool,
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.no_install {
        env::provision::refuse_installs();
    }
    if let Some(path) = &cli.contract {
        if let Err(e) = crate::contract::use_file(path) {
            say(&format!("error: {e}"));
            say("hint: --contract (or TEKUP_CONTRACT) names a platform.yaml like fixtures/platform.yaml");
            return ExitCode::FAILURE;
        }
    }
    match cli.command {
        Command::Validate { paths } => return scenario::validate(&paths),
        Command::Schema => return scenario::schema(),
        Command::New(NewCommand::Scenario { name, dir }) => return scenario::new(&name, &dir),
        _ => {}
    }
    let filter = tracing_subscriber::EnvFilter::try_from_env("TEKUP_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => return fail(&env::EnvError::io("start the async runtime")(e), None),
    };
    let command = match cli.command {
        Command::Up(args) => {
            let tls = match client_tls(&args.tls) {
                Ok(tls) => tls,
                Err(code) => return code,
            };
            return match runtime.block_on(up(args, tls)) {
                Ok(()) => ExitCode::SUCCESS,
                Err((e, hint)) => fail(&e, hint),
            };
        }
        Command::Run(args) => return run::run(args, &runtime),
        Command::Load(args) => return load::run(*args, &runtime),
        Command::Chaos(args) => return chaos::run(args, &runtime),
        Command::Prop(args) => return prop::run(args, &runtime),
        Command::Sweep(args) => return sweep::run(args, &runtime),
        other => other,
    };
    match runtime.block_on(run(command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err((e, hint)) => fail(&e, hint),
    }
}

type Failure = (env::EnvError, Option<&'static str>);

fn fail(error: &env::EnvError, hint: Option<&str>) -> ExitCode {
    say(&format!("error: {}", env::error_chain(error)));
    if let Some(hint) = hint {
        say(&format!("hint: {hint}"));
    }
    ExitCode::FAILURE
}

/// A line per stage of an ecosystem's start.
fn say_progress(progress: &Progress) {
    match progress {
        Progress::Runtime {
            runtime, reason, ..
        } => say(&format!("runtime: {runtime} ({reason})")),
        Progress::Starting { component } => say(&format!("  starting {component} …")),
        Progress::Ready { component, took } => {
            say(&format!("  ready    {component} ({took:.1?})"));
        }
    }
}

/// Progress and messages go to stderr; what a script may parse goes to stdout.
fn say(line: &str) {
    #[expect(clippy::print_stderr, reason = "the CLI's progress and error lines")]
    {
        eprintln!("{line}");
    }
}

fn out(line: &str) {
    #[expect(clippy::print_stdout, reason = "the CLI's results")]
    {
        println!("{line}");
    }
}

async fn run(command: Command) -> Result<(), Failure> {
    match command {
        Command::Down(args) => {
            let report = state::down(&args.state_file, args.all)
                .await
                .map_err(|e| (e, Some("is the docker daemon reachable?")))?;
            out(&format!(
                "stopped {} processes, removed {} containers and {} networks",
                report.processes, report.containers, report.networks
            ));
            Ok(())
        }
        Command::Images(ImagesCommand::Build(args)) => {
            let options = images::ImageBuild::new(&args.images_dir);
            let options = images::ImageBuild {
                mirror: args.mirror,
                rebuild: args.rebuild,
                ..options
            };
            let started = Instant::now();
            let timings = images::build(&options, &|line| say(&format!("==> {line}")))
                .await
                .map_err(|e| (e, Some("needs root, mmdebstrap (or debootstrap), a docker daemon and the Debian mirror")))?;
            for (step, took) in timings {
                out(&format!("{step:<34} {took:>8.1?}"));
            }
            let step = Instant::now();
            let harness = build_harness_image(&options.runtime).await?;
            out(&format!("{harness:<34} {:>8.1?}", step.elapsed()));
            out(&format!("{:<34} {:>8.1?}", "total", started.elapsed()));
            Ok(())
        }
        Command::Images(ImagesCommand::List(args)) => {
            let present = images::present(&images::ImageBuild::new(&args.images_dir))
                .await
                .map_err(|e| (e, None))?;
            let harness = env::harness_image::IMAGE.to_owned();
            let here = env::harness_image::present(&harness)
                .await
                .map_err(|e| (e, None))?;
            for (image, here) in present.into_iter().chain([(harness, here)]) {
                out(&format!(
                    "{image:<34} {}",
                    if here { "present" } else { "missing" }
                ));
            }
            Ok(())
        }
        Command::Doctor(args) => doctor::run(&args).await,
        Command::Reap { run } => {
            env::docker::reap(&run).await.map_err(|e| (e, None))?;
            Ok(())
        }
        Command::Up(_)
        | Command::Validate { .. }
        | Command::Schema
        | Command::New(_)
        | Command::Run(_)
        | Command::Load(_)
        | Command::Chaos(_)
        | Command::Sweep(_)
        | Command::Prop(_) => Ok(()),
    }
}

/// `tekup-harness/harness`: this harness's binary on the runtime image
/// `base`, for load generators in containers (`deploy/README.md`).
async fn build_harness_image(base: &str) -> Result<String, Failure> {
    let binary = env::harness_image::find_binary().map_err(|e| (e, None))?;
    let image = env::harness_image::HarnessImage::new(binary, base);
    image
        .ensure(&|line| say(&format!("==> {line}")))
        .await
        .map_err(|e| {
            (
                e,
                Some("the harness image needs a docker daemon and the tekup-harness binary (cargo build -p tekup-harness)"),
            )
        })?;
    Ok(image.image)
}

async fn up(args: UpArgs, tls: ClientTls) -> Result<(), Failure> {
    let started = Instant::now();
    let mut builder = Ecosystem::builder()
        .file(&args.file.file)
        .tls(tls)
        .runtime(args.runtime)
        .keep(args.keep)
        .logs_dir(&args.logs_dir)
        .on_progress(say_progress);
    if let Some(file) = &args.external {
        builder = builder.external_file(file);
    }
    if let Some(url) = &args.otlp_forward {
        builder = builder.otlp_forward(url);
    }
    // Handlers first: a Ctrl-C while starting tears down what has started.
    let mut stop = Stop::install();
    let started_eco = tokio::select! {
        eco = builder.start() => eco,
        () = stop.wait() => {
            return Err((
                env::EnvError::other("start the ecosystem", "interrupted; what had started was stopped"),
                None,
            ));
        }
    };
    let mut eco = started_eco.map_err(|e| {
        let hint = match &e {
            env::EnvError::ImageMissing { .. } => {
                Some("run `tekup-harness images build`, or use --runtime process")
            }
            env::EnvError::Model(_) => Some("fix the ecosystem file at the line shown"),
            _ => Some("`tekup-harness doctor` says what this machine can run"),
        };
        (e, hint)
    })?;
    state::write(&args.state_file, &eco.state()).map_err(|e| (e, None))?;
    say(&format!(
        "ecosystem up in {:.1?} ({} runtime, run {})",
        started.elapsed(),
        eco.runtime(),
        eco.run_id()
    ));
    print_components(&eco);
    out(&format!("logs: {}", eco.logs_dir().display()));
    if let (Some(http), Some(grpc)) = (eco.otlp_url(), eco.otlp_grpc_url()) {
        out(&format!("otlp: {http} (gRPC {grpc})"));
    }
    // Kept until Ctrl-C, like the ecosystem.
    let _front = match &args.tls_front {
        Some(dir) => Some(tls_front(&eco, dir, args.tls_front_mtls).await?),
        None => None,
    };
    if args.keep {
        out("kept running: stop it with `tekup-harness down`");
        return Ok(());
    }
    out("up until Ctrl-C");
    stop.wait().await;
    say("stopping …");
    eco.shutdown().await;
    let _ = std::fs::remove_file(&args.state_file);
    Ok(())
}

/// `up --tls-front DIR`: the HTTP services behind the harness's TLS front,
/// and how to reach them.
async fn tls_front(
    eco: &Ecosystem,
    dir: &std::path::Path,
    mtls: bool,
) -> Result<crate::net::TlsFront, Failure> {
    let failed = |e: crate::net::FrontError| (env::EnvError::other("start the TLS front", e), None);
    let certs = crate::net::TestCerts::generate(dir).map_err(failed)?;
    let upstreams = eco
        .components()
        .filter_map(|c| Some((c.name().to_owned(), c.url()?)))
        .collect();
    let front = crate::net::TlsFront::start(&upstreams, certs.server().require_client_cert(mtls))
        .await
        .map_err(failed)?;
    out("through the TLS front:");
    for (name, url) in front.urls() {
        if url.starts_with("https://") {
            out(&format!("{name:<16} {url}"));
        }
    }
    let mut flags = format!("--ca-cert {}", certs.ca_cert().display());
    if mtls {
        flags.push_str(&format!(
            " --client-cert {} --client-key {}",
            certs.client_cert().display(),
            certs.client_key().display()
        ));
    }
    out(&format!("TLS flags for the harness's commands: {flags}"));
    Ok(front)
}

fn print_components(eco: &Ecosystem) {
    let vars = &eco.file().vars;
    for c in eco.components() {
        let Some(url) = c.url() else {
            let what = if c.kind() == Kind::Job {
                "(job, done)"
            } else {
                "(not offered by the deployment)"
            };
            out(&format!("{:<16} {what}", c.name()));
            continue;
        };
        let how = match c.kind() {
            Kind::Postgres => format!("psql '{url}'"),
            Kind::Redis => format!("redis-cli -u {url}"),
            _ => match c.admin_url() {
                Some(admin) => format!("admin API {admin} (curl {admin}/health)"),
                None => format!("curl {url}/health"),
            },
        };
        out(&format!("{:<16} {url:<48} {how}", c.name()));
    }
    if let Some(token) = vars.get("admin-token") {
        out(&format!(
            "admin token (ADMIN_TOKEN of the services): {token}"
        ));
    }
}

/// Ctrl-C and SIGTERM, listened for from the start of `up`.
struct Stop {
    interrupt: Option<tokio::signal::unix::Signal>,
    terminate: Option<tokio::signal::unix::Signal>,
}

impl Stop {
    fn install() -> Self {
        use tokio::signal::unix::{signal, SignalKind};
        Self {
            interrupt: signal(SignalKind::interrupt()).ok(),
            terminate: signal(SignalKind::terminate()).ok(),
        }
    }

    async fn wait(&mut self) {
        async fn next(s: &mut Option<tokio::signal::unix::Signal>) {
            match s {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending().await,
            }
        }
        tokio::select! {
            () = next(&mut self.interrupt) => {}
            () = next(&mut self.terminate) => {}
        }
    }
}
