//! The standalone `tekup-mocks` command: argument parsing and [`run`].
//!
//! Exit codes: 0 after a clean shutdown (Ctrl-C or SIGTERM), 1 when a mock
//! cannot start (the message and a hint go to stderr), 2 for invalid arguments.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use serde_json::{json, Map, Value};
use tokio::net::TcpListener;

use crate::error::MockError;
use crate::{Gemini, Graph, GraphSeed, OpenAi, Script, Stripe, TestCa};

const ABOUT: &str =
    "High-fidelity mocks of OpenAI, Gemini (REST and Live WebSocket), Microsoft Graph and Stripe.";

const LONG_ABOUT: &str = "\
High-fidelity mocks of OpenAI, Gemini (REST and Live WebSocket), Microsoft Graph and Stripe,
for running the TekUp harness (or any client) against them without the real services.

Each mock listens on its own port, answers in the real API's wire format, and serves an
admin API under /__admin on the same port:

  GET    /__admin/health              is it up
  GET    /__admin/journal             requests received (?method=POST&path=/v1/chat filters)
  DELETE /__admin/journal             forget them
  POST   /__admin/faults              {\"kind\":\"status\",\"status\":503,\"times\":2,\"path\":\"/v1/chat\"}
                                      kinds: latency (delay), status (status, body), rate-limit
                                      (retry-after), malformed, truncated, reset, stall (duration);
                                      scope: times, ratio (0..1), path (prefix), method
  DELETE /__admin/faults              remove all faults
  POST   /__admin/expectations        {\"method\":\"POST\",\"path\":\"/v1/embeddings\",\"times\":1}
                                      also path-prefix, path-regex, query, headers,
                                      body-contains, body-json (partial), at-least, at-most
  GET    /__admin/verify              200 when every expectation holds, else 417 with the list
  POST   /__admin/reset               journal, faults, expectations and the mock's state
  Stripe only: POST /__admin/stripe/webhooks {\"url\":..., \"secret\":\"whsec_...\"},
               GET /__admin/stripe/deliveries?wait-for=1&timeout=5s, POST /__admin/stripe/events

When all mocks are up, one JSON line with their base URLs is printed on stdout (and written
to --ready-file), e.g. {\"openai\":\"http://127.0.0.1:4010\",...}: wait for that line, not a
fixed delay. Point the official SDKs at them:

  OpenAI   base_url = <openai>/v1            any `Bearer` key
  Gemini   base_url = <gemini>               any API key; Live needs --tls (wss) and the CA
  Graph    token    = <graph>/<tenant>/oauth2/v2.0/token, API = <graph>/v1.0
  Stripe   api_base = <stripe>               keys sk_test_...

Examples:
  tekup-mocks --all
  tekup-mocks --openai 4010 --stripe 4020 --stripe-webhook http://127.0.0.1:8080/hooks \\
              --stripe-webhook-secret whsec_test
  tekup-mocks --gemini 0 --tls --ca-out /tmp/mocks-ca.pem   # then SSL_CERT_FILE=/tmp/mocks-ca.pem

Exit codes: 0 after Ctrl-C/SIGTERM, 1 when a mock cannot start, 2 for invalid arguments.
Logs go to stderr; set TEKUP_MOCKS_LOG=debug for more.";

/// Command-line arguments of `tekup-mocks`.
#[derive(Debug, Parser)]
#[command(name = "tekup-mocks", version, about = ABOUT, long_about = LONG_ABOUT)]
pub struct Cli {
    /// Address to bind the mocks to.
    #[arg(long, default_value = "127.0.0.1", env = "TEKUP_MOCKS_HOST")]
    pub host: String,
    /// Start all four mocks (on random ports unless a port is given for one).
    #[arg(long)]
    pub all: bool,
    /// Start the OpenAI mock on this port (0: any free port).
    #[arg(long, value_name = "PORT")]
    pub openai: Option<u16>,
    /// Start the Gemini mock on this port (0: any free port).
    #[arg(long, value_name = "PORT")]
    pub gemini: Option<u16>,
    /// Start the Microsoft Graph mock on this port (0: any free port).
    #[arg(long, value_name = "PORT")]
    pub graph: Option<u16>,
    /// Start the Stripe mock on this port (0: any free port).
    #[arg(long, value_name = "PORT")]
    pub stripe: Option<u16>,
    /// Serve HTTPS/WSS with a freshly generated CA (see --ca-out).
    #[arg(long)]
    pub tls: bool,
    /// Write the generated CA certificate (PEM) here, for clients to trust.
    #[arg(long, value_name = "FILE", requires = "tls")]
    pub ca_out: Option<PathBuf>,
    /// Directory with openai.yaml, gemini.yaml and graph.yaml (defaults are built in).
    #[arg(long, value_name = "DIR", env = "TEKUP_MOCKS_FIXTURES")]
    pub fixtures: Option<PathBuf>,
    /// Send Stripe events to this URL.
    #[arg(long, value_name = "URL", requires = "stripe_webhook_secret")]
    pub stripe_webhook: Option<String>,
    /// Signing secret of --stripe-webhook (whsec_...).
    #[arg(long, value_name = "SECRET")]
    pub stripe_webhook_secret: Option<String>,
    /// Also write the JSON line of base URLs to this file.
    #[arg(long, value_name = "FILE")]
    pub ready_file: Option<PathBuf>,
}

/// Parses arguments, runs the mocks until Ctrl-C/SIGTERM, and exits with a documented code.
pub fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("TEKUP_MOCKS_LOG")
        .unwrap_or_else(|_| "warn".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            let _ = writeln!(
                std::io::stderr(),
                "error: failed to start the async runtime: {e}"
            );
            return std::process::ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(MockError::Usage(message)) => {
            let _ = writeln!(
                std::io::stderr(),
                "error: {message}\nhint: see `tekup-mocks --help`"
            );
            std::process::ExitCode::from(2)
        }
        Err(e) => {
            let mut stderr = std::io::stderr();
            let _ = writeln!(stderr, "error: {e}");
            let mut source = std::error::Error::source(&e);
            while let Some(cause) = source {
                let _ = writeln!(stderr, "  caused by: {cause}");
                source = cause.source();
            }
            let _ = writeln!(stderr, "hint: choose free ports (0 picks one) and check the fixture files; see `tekup-mocks --help`");
            std::process::ExitCode::from(1)
        }
    }
}

async fn bind(host: &str, port: u16, mock: &'static str) -> Result<TcpListener, MockError> {
    let addr = format!("{host}:{port}");
    let parsed: Result<SocketAddr, _> = addr.parse();
    let result = match parsed {
        Ok(a) => TcpListener::bind(a).await,
        Err(_) => TcpListener::bind(addr.as_str()).await,
    };
    result.map_err(|source| MockError::Bind { mock, addr, source })
}

/// Starts the selected mocks, prints their URLs, and serves until a signal.
///
/// # Errors
/// Any [`MockError`] from starting a mock, loading fixtures or writing files.
pub async fn run(cli: Cli) -> Result<(), MockError> {
    let pick = |port: Option<u16>| port.or(cli.all.then_some(0));
    let (openai_port, gemini_port, graph_port, stripe_port) = (
        pick(cli.openai),
        pick(cli.gemini),
        pick(cli.graph),
        pick(cli.stripe),
    );
    if [openai_port, gemini_port, graph_port, stripe_port]
        .iter()
        .all(Option::is_none)
    {
        return Err(MockError::Usage(
            "no mock selected: pass --all or a port for --openai, --gemini, --graph or --stripe"
                .into(),
        ));
    }
    let ca = if cli.tls {
        Some(TestCa::generate()?)
    } else {
        None
    };
    if let (Some(ca), Some(path)) = (&ca, &cli.ca_out) {
        ca.write_ca_pem(path)?;
    }
    let fixture = |name: &str| {
        cli.fixtures
            .as_ref()
            .map(|d| d.join(name))
            .filter(|p| p.exists())
    };
    let mut urls = Map::new();
    let mut running = Vec::new();

    if let Some(port) = openai_port {
        let mut b = OpenAi::builder().listener(bind(&cli.host, port, "openai").await?);
        if let Some(path) = fixture("openai.yaml") {
            b = b.script(Script::from_file(&path)?);
        }
        if let Some(ca) = &ca {
            b = b.tls(ca);
        }
        let m = b.start().await?;
        urls.insert("openai".into(), Value::from(m.uri()));
        running.push(m.into_server());
    }
    if let Some(port) = gemini_port {
        let mut b = Gemini::builder().listener(bind(&cli.host, port, "gemini").await?);
        if let Some(path) = fixture("gemini.yaml") {
            b = b.script(Script::from_file(&path)?);
        }
        if let Some(ca) = &ca {
            b = b.tls(ca);
        }
        let m = b.start().await?;
        urls.insert("gemini".into(), Value::from(m.uri()));
        urls.insert("geminiLive".into(), Value::from(m.live_url()));
        running.push(m.into_server());
    }
    if let Some(port) = graph_port {
        let mut b = Graph::builder().listener(bind(&cli.host, port, "graph").await?);
        if let Some(path) = fixture("graph.yaml") {
            b = b.seed(GraphSeed::from_file(&path)?);
        }
        if let Some(ca) = &ca {
            b = b.tls(ca);
        }
        let m = b.start().await?;
        urls.insert("graph".into(), Value::from(m.uri()));
        urls.insert("graphTenant".into(), Value::from(m.tenant()));
        running.push(m.into_server());
    }
    if let Some(port) = stripe_port {
        let mut b = Stripe::builder().listener(bind(&cli.host, port, "stripe").await?);
        if let (Some(url), Some(secret)) = (&cli.stripe_webhook, &cli.stripe_webhook_secret) {
            b = b.webhook(url.clone(), secret.clone());
        }
        if let Some(ca) = &ca {
            b = b.tls(ca);
        }
        let m = b.start().await?;
        urls.insert("stripe".into(), Value::from(m.uri()));
        running.push(m.into_server());
    }
    if let Some(path) = &cli.ca_out {
        urls.insert("ca".into(), Value::from(path.display().to_string()));
    }
    let line = json!(urls).to_string();
    if let Some(path) = &cli.ready_file {
        std::fs::write(path, format!("{line}\n")).map_err(|source| MockError::Write {
            path: path.clone(),
            source,
        })?;
    }
    {
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "{line}");
        let _ = stdout.flush();
    }
    wait_for_signal().await;
    for mut server in running {
        // Clients verified over the admin API; nothing to panic about here.
        server.skip_verify_on_drop();
        server.shutdown().await;
    }
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(t) => t,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
