//! The runtime extension point: one trait for "start this component
//! somewhere", implemented by the process, docker and external runtimes.
//!
//! A [`Backend`] places a component (decides the addresses others use to
//! reach it, before its arguments are rendered), starts it from a
//! [`LaunchSpec`], and tears down everything it started. What it returns is
//! an [`Instance`]: the handle behind `kill`/`pause`/`restart`, logs and
//! exit status. Everything is async and boxed so the runtime can be chosen
//! at run time (`--runtime auto`). A runtime that replays snapshot jobs
//! says so ([`Backend::replays`]), so that what waits for such a job and
//! can wait for its Postgres by itself starts beside the Postgres.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::future::BoxFuture;

use super::error::EnvError;
use super::model::Component;
pub use super::snapshot::SnapshotOf;

/// Which runtime starts the ecosystem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Runtime {
    /// Docker when a daemon answers and every image exists locally, else process.
    #[default]
    Auto,
    /// Child processes from the machine's binaries.
    Process,
    /// Containers on a per-run network.
    Docker,
    /// A running deployment: nothing is started.
    External,
}

impl Runtime {
    /// The `--runtime` spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Runtime::Auto => "auto",
            Runtime::Process => "process",
            Runtime::Docker => "docker",
            Runtime::External => "external",
        }
    }
}

impl fmt::Display for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Runtime {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Runtime::Auto),
            "process" => Ok(Runtime::Process),
            "docker" => Ok(Runtime::Docker),
            "external" => Ok(Runtime::External),
            other => Err(format!(
                "unknown runtime {other:?}: use auto, process, docker or external"
            )),
        }
    }
}

/// Where a component listens and how the others reach it.
#[derive(Debug, Clone)]
pub struct Placement {
    /// Host name other components use (`${name.host}`).
    pub inner_host: String,
    /// Port other components use (`${name.port}`).
    pub inner_port: Option<u16>,
    /// Address the component binds (`${self.bind-host}`).
    pub bind_host: String,
}

/// Everything needed to start one component, references rendered.
#[derive(Debug, Clone)]
pub struct LaunchSpec {
    pub component: Component,
    pub placement: Placement,
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
    /// Resolved program on this machine (services and jobs).
    pub program: Option<PathBuf>,
    /// Files referenced with `${file:...}`: (path on this machine, path the component sees).
    pub files: Vec<(PathBuf, String)>,
    /// Postgres: the superuser's password.
    pub password: Option<String>,
    /// Prometheus: `(component, host:port)` of what it scrapes, reached
    /// directly (never through a link's fault proxy: a fault on a link
    /// must not blind the monitoring).
    pub scrape: Vec<(String, String)>,
    /// A job kept as a snapshot of its Postgres, on the job's spec and on
    /// the Postgres's (process and docker runtimes; [`super::snapshot`]).
    pub snapshot: Option<SnapshotOf>,
}

/// How a component ended.
#[derive(Debug, Clone)]
pub struct ExitInfo {
    pub success: bool,
    pub text: String,
}

/// One started component.
pub trait Instance: Send + Sync + fmt::Debug {
    /// Host the harness reaches it on.
    fn host(&self) -> String;
    /// Port the harness reaches it on.
    fn host_port(&self) -> Option<u16>;
    /// A URL given by the runtime itself (external deployments).
    fn url_override(&self) -> Option<String> {
        None
    }
    /// The URL the deployment's other components reach it on, when the
    /// runtime was told one (an external file's `peer-url`).
    fn peer_url_override(&self) -> Option<String> {
        None
    }
    /// `Some` once it has exited.
    fn exit_status(&self) -> BoxFuture<'_, Result<Option<ExitInfo>, EnvError>>;
    /// The last `lines` lines of its output.
    fn log_tail(&self, lines: usize) -> BoxFuture<'_, String>;
    /// Whether its output contains `text`.
    fn log_contains<'a>(&'a self, text: &'a str) -> BoxFuture<'a, bool>;
    /// Stops it abruptly (SIGKILL).
    fn kill(&self) -> BoxFuture<'_, Result<(), EnvError>>;
    /// Freezes it (SIGSTOP / docker pause).
    fn pause(&self) -> BoxFuture<'_, Result<(), EnvError>>;
    /// Thaws it.
    fn resume(&self) -> BoxFuture<'_, Result<(), EnvError>>;
    /// Starts it again with the same addresses (after a kill, or while running).
    fn restart(&self) -> BoxFuture<'_, Result<(), EnvError>>;
    /// Stops it as an orchestrator does (SIGTERM, and SIGKILL only after a
    /// grace period), then starts it again: a restart it can prepare for
    /// (finish its work in hand, flush what it holds). By default, as
    /// [`Instance::restart`].
    fn restart_gracefully(&self) -> BoxFuture<'_, Result<(), EnvError>> {
        self.restart()
    }
    /// Where its log is, if it is a file.
    fn log_path(&self) -> Option<PathBuf> {
        None
    }
}

/// A way of starting components.
pub trait Backend: Send + Sync + fmt::Debug {
    /// `process`, `docker` or `external`.
    fn name(&self) -> &'static str;
    /// Decides where `component` listens, before anything starts.
    fn place(&self, component: &Component) -> Result<Placement, EnvError>;
    /// The path a component sees for a file next to the ecosystem file.
    fn file_path(&self, host_path: &Path, relative: &str) -> String;
    /// Whether the snapshot job `of` of the Postgres component `postgres`
    /// is replayed in this start rather than run ([`super::snapshot`]):
    /// the job's result is then in the Postgres from its first answer, so
    /// a component that waits for the Postgres by itself
    /// ([`Component::waits_itself_for`]) need not wait for the job. Decided
    /// once per start, the same answer the Postgres's own start acts on.
    /// By default `false`: the job runs.
    fn replays<'a>(
        &'a self,
        postgres: &'a Component,
        of: &'a SnapshotOf,
    ) -> BoxFuture<'a, Result<bool, EnvError>> {
        let _ = (postgres, of);
        Box::pin(async { Ok(false) })
    }
    /// Starts one component (readiness is awaited by the caller).
    fn start(&self, spec: LaunchSpec) -> BoxFuture<'_, Result<Arc<dyn Instance>, EnvError>>;
    /// Every component is started and ready: work a backend keeps off the
    /// start's critical path may begin (the process runtime's spare
    /// copies of its Postgres clusters, [`super::spare`]). By default
    /// nothing.
    fn started(&self) {}
    /// Stops and removes everything this backend started, waiting for it.
    fn teardown(&self) -> BoxFuture<'_, ()>;
    /// What `tekup-harness down` needs to stop a kept environment.
    fn keep_state(&self) -> serde_json::Value;
    /// The address of this machine that its components reach, for servers
    /// the harness runs for them (the OTLP receiver binds it): loopback for
    /// processes, the run network's gateway under docker. `Err` says why
    /// there is none (a remote docker daemon).
    fn harness_ip(&self) -> BoxFuture<'_, Result<std::net::IpAddr, String>> {
        Box::pin(async { Ok(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)) })
    }
}
