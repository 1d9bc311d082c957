//! [`Ecosystem`]: the whole ecosystem file started by one runtime, torn down
//! on drop.

use crate::trace::{Receiver, ReceiverOptions, SpanStore};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::try_join_all;
use tokio::sync::watch;

use super::binaries;
use super::error::EnvError;
use super::handle::{ComponentHandle, MockHandle};
use super::model::{Component, EcosystemFile, Kind, Template};
use super::refs::{self, Ref};
use super::resolve::{other_attr, own_attr};
use super::runtime::{Backend, LaunchSpec, Placement, Runtime, SnapshotOf};
use super::{docker, error_chain, external, process};
use crate::chaos::{parse_link, Link, Links, Proxy};
use crate::net::ClientTls;
use crate::platform::{TenantLedger, TenantRelease};

/// What happens while the ecosystem starts, for progress displays.
#[derive(Debug, Clone)]
pub enum Progress {
    /// The runtime was chosen (`run_id` labels what this run creates).
    Runtime {
        runtime: Runtime,
        reason: String,
        run_id: String,
    },
    /// A component is being started.
    Starting { component: String },
    /// A component is ready.
    Ready { component: String, took: Duration },
}

type ProgressFn = Arc<dyn Fn(&Progress) + Send + Sync>;

/// How far a component's start has come, for those that wait for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Waiting,
    /// Its readiness condition held (a job: it finished).
    Ready,
}

/// Options for starting an [`Ecosystem`].
#[must_use]
#[derive(Clone, Default)]
pub struct EcosystemBuilder {
    file: Option<PathBuf>,
    runtime: Runtime,
    keep: bool,
    logs_dir: Option<PathBuf>,
    external: Option<PathBuf>,
    progress: Option<ProgressFn>,
    links: Option<bool>,
    defects: Option<String>,
    tls: ClientTls,
    otlp_forward: Option<String>,
    prometheus: Option<bool>,
    /// `[vars]` entries set otherwise (see [`EcosystemBuilder::var`]).
    vars: Vec<(String, String)>,
}

impl fmt::Debug for EcosystemBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EcosystemBuilder")
            .field("file", &self.file)
            .field("runtime", &self.runtime)
            .field("keep", &self.keep)
            .field("links", &self.links)
            .finish_non_exhaustive()
    }
}

/// The program of the reference services, and its build with deliberate defects.
const SERVICE_PROGRAM: &str = "tekup-service";
const DEFECTS_PROGRAM: &str = "tekup-service-defects";

/// Points every `tekup-service` component at the defects build with `defects` on.
fn with_defects(file: &mut EcosystemFile, defects: &str) {
    for component in file.components.values_mut() {
        if component.program.as_deref() != Some(SERVICE_PROGRAM) {
            continue;
        }
        component.program = Some(DEFECTS_PROGRAM.to_owned());
        component.cargo_features.push("defects".to_owned());
        component.env.insert(
            "TEKUP_DEFECTS".to_owned(),
            Template {
                text: defects.to_owned(),
                refs: Vec::new(),
                line: component.line,
            },
        );
    }
}

/// Sets `[vars]` entries the file has (see [`EcosystemBuilder::var`]).
fn set_vars(file: &mut EcosystemFile, vars: &[(String, String)]) -> Result<(), EnvError> {
    for (name, value) in vars {
        let Some(entry) = file.vars.get_mut(name) else {
            let known: Vec<&str> = file.vars.keys().map(String::as_str).collect();
            return Err(EnvError::other(
                format!("set `{name}` of the ecosystem file's [vars]"),
                format!(
                    "{} has no such entry; it has {}",
                    file.path.display(),
                    known.join(", ")
                ),
            ));
        };
        value.clone_into(entry);
    }
    Ok(())
}

impl EcosystemBuilder {
    /// The ecosystem file (default: `$TEKUP_ECOSYSTEM`, else
    /// `fixtures/ecosystem.toml` in the current directory or above it).
    pub fn file(mut self, path: impl Into<PathBuf>) -> Self {
        self.file = Some(path.into());
        self
    }

    /// The runtime (default: auto).
    pub fn runtime(mut self, runtime: Runtime) -> Self {
        self.runtime = runtime;
        self
    }

    /// Leave everything running when the handle is dropped.
    pub fn keep(mut self, keep: bool) -> Self {
        self.keep = keep;
        self
    }

    /// Where component logs go (default: `reports/logs/<run id>` of the workspace).
    pub fn logs_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.logs_dir = Some(dir.into());
        self
    }

    /// The deployment description for the external runtime (default:
    /// `$TEKUP_EXTERNAL_FILE`, else environment variables only).
    pub fn external_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.external = Some(path.into());
        self
    }

    /// The TLS settings of every client made for this ecosystem: its
    /// readiness checks, and what is built from it later
    /// ([`crate::platform::Platform::from_ecosystem`], the scenario
    /// runner, the suites). Default: the public roots only.
    pub fn tls(mut self, tls: ClientTls) -> Self {
        self.tls = tls;
        self
    }

    /// Whether to put a fault proxy on every link between components
    /// (`from->to`, see [`crate::chaos::links`]), so that
    /// [`Ecosystem::link`] can slow, cut or reset it.
    ///
    /// Default: on under the process runtime (`auto` counts as process
    /// when it picks processes), off otherwise and off with `keep` (the
    /// proxies live in this process, which a kept environment outlives).
    /// Asking for links makes `auto` pick processes; with docker, external
    /// or `keep` asking for them is an error: under docker the components
    /// reach each other on a container network the harness's proxies are
    /// not on.
    pub fn links(mut self, on: bool) -> Self {
        self.links = Some(on);
        self
    }

    /// Starts the reference services with deliberate defects on, to show
    /// that a check catches them: every component running `tekup-service`
    /// runs `tekup-service-defects` instead (built with the `defects`
    /// feature, which the default build lacks) with `TEKUP_DEFECTS` set to
    /// `defects` (a comma-separated list of the names in
    /// `tekup_services::defects`).
    pub fn defects(mut self, defects: &str) -> Self {
        self.defects = Some(defects.to_owned());
        self
    }

    /// Also forward every span export the ecosystem's OTLP receiver takes
    /// to this OTLP/HTTP endpoint (`http://jaeger:4318`; requests go to its
    /// `/v1/traces`), from a queue of its own: a failure is logged once and
    /// never fails the run (see [`crate::trace::receiver`]).
    pub fn otlp_forward(mut self, url: impl Into<String>) -> Self {
        self.otlp_forward = Some(url.into());
        self
    }

    /// Whether to start the file's optional Prometheus components
    /// (`kind = "prometheus"`); without them the file runs as if they were
    /// not in it. Default: [`super::prometheus::asked`] (`--prometheus`,
    /// `TEKUP_PROMETHEUS`). The process and docker runtimes start them
    /// (see [`super::prometheus`]).
    pub fn prometheus(mut self, on: bool) -> Self {
        self.prometheus = Some(on);
        self
    }

    /// Sets the ecosystem file's `[vars]` entry `name` to `value` for this
    /// ecosystem (a scenario's `own-ecosystem: { vars }`). The file must
    /// have the entry: a name it lacks fails the start, naming the entries
    /// it has, rather than setting what nothing reads.
    pub fn var(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.vars.push((name.into(), value.into()));
        self
    }

    /// Called as components start.
    pub fn on_progress(mut self, f: impl Fn(&Progress) + Send + Sync + 'static) -> Self {
        self.progress = Some(Arc::new(f));
        self
    }

    /// Starts every component, each after what it depends on, and waits
    /// until all are ready. On failure, what was started is torn down.
    pub async fn start(self) -> Result<Ecosystem, EnvError> {
        let path = match &self.file {
            Some(p) => p.clone(),
            None => default_file()?,
        };
        let mut file = EcosystemFile::load(&path)?;
        set_vars(&mut file, &self.vars)?;
        if let Some(defects) = &self.defects {
            with_defects(&mut file, defects);
        }
        if !self.prometheus.unwrap_or_else(super::prometheus::asked) {
            file.without_optional();
        }
        let report = |p: Progress| {
            if let Some(f) = &self.progress {
                f(&p);
            }
        };
        let (runtime, reason) = match (self.runtime, self.links) {
            (Runtime::Auto, Some(true)) => (
                Runtime::Process,
                "links were asked for and need the process runtime".to_owned(),
            ),
            (wanted, _) => pick(wanted, &file).await,
        };
        let links_off = links_off(self.links, runtime, self.keep)?;
        let run_id = uuid::Uuid::new_v4().simple().to_string()[..10].to_owned();
        report(Progress::Runtime {
            runtime,
            reason: reason.clone(),
            run_id: run_id.clone(),
        });
        let root =
            binaries::workspace_root(&file.base_dir).unwrap_or_else(|| file.base_dir.join(".."));
        let logs_dir = self
            .logs_dir
            .clone()
            .unwrap_or_else(|| root.join("reports").join("logs").join(&run_id));
        match runtime {
            Runtime::Process => super::provision::ensure_for_process(&file).await?,
            Runtime::Docker => {
                super::provision::ensure_offline_images_for_start(&file, &root.join("images"))
                    .await?;
            }
            Runtime::Auto | Runtime::External => {}
        }
        let backend: Arc<dyn Backend> = match runtime {
            Runtime::Process | Runtime::Auto => Arc::new(process::ProcessBackend::new(
                super::scratch::dir().join(format!("tekup-run-{run_id}")),
                logs_dir.clone(),
                self.keep,
            )?),
            Runtime::Docker => Arc::new(
                docker::DockerBackend::connect(&run_id, logs_dir.clone(), self.keep).await?,
            ),
            Runtime::External => {
                let backend = external::ExternalBackend::load(self.external.as_deref())?;
                file.vars
                    .extend(backend.vars.iter().map(|(k, v)| (k.clone(), v.clone())));
                Arc::new(backend)
            }
        };
        let tenants = Arc::new(TenantLedger::new(&run_id));
        let mut eco = Ecosystem {
            file,
            runtime,
            reason,
            backend,
            components: BTreeMap::new(),
            keep: self.keep,
            run_id,
            logs_dir,
            torn_down: false,
            links: Links::default(),
            links_off,
            tls: self.tls.clone(),
            tenants,
            placements: BTreeMap::new(),
            traces: SpanStore::new(),
            otlp: None,
        };
        if !eco.keep {
            eco.otlp = otlp_receiver(&*eco.backend, &eco.traces, self.otlp_forward.clone()).await?;
        }
        if let Err(e) = eco.start_all(&report).await {
            // A half-started environment is never kept.
            eco.keep = false;
            eco.shutdown().await;
            return Err(e);
        }
        eco.backend.started();
        Ok(eco)
    }
}

/// The ecosystem's OTLP receiver, on the address the runtime's components
/// reach (`None`, after a warning, when there is none: a remote docker
/// daemon). A kept ecosystem has none: the receiver lives in the harness
/// process, which a kept environment outlives.
async fn otlp_receiver(
    backend: &dyn Backend,
    store: &Arc<SpanStore>,
    forward: Option<String>,
) -> Result<Option<OtlpReceiver>, EnvError> {
    let ip = match backend.harness_ip().await {
        Ok(ip) => ip,
        Err(why) => {
            tracing::warn!("no OTLP receiver for this ecosystem, its components' spans are not collected: {why}");
            return Ok(None);
        }
    };
    let receiver = Receiver::start(
        Arc::clone(store),
        ReceiverOptions::default().bind(ip).forward(forward),
    )
    .await
    .map_err(|e| EnvError::other("start the OTLP trace receiver", e))?;
    Ok(Some(OtlpReceiver(receiver)))
}

/// The receiver, and what components are told of it.
#[derive(Debug)]
struct OtlpReceiver(Receiver);

impl OtlpReceiver {
    /// `OTEL_*` variables for a component with a program, each only where
    /// the ecosystem file does not set it.
    fn inject(&self, component: &str, env: &mut BTreeMap<String, String>) {
        for (key, value) in [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", self.0.http_url()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf".to_owned()),
            ("OTEL_SERVICE_NAME", component.to_owned()),
            ("OTEL_BSP_SCHEDULE_DELAY", "100".to_owned()),
        ] {
            env.entry(key.to_owned()).or_insert(value);
        }
    }
}

/// `(from, to, address of to)` for every link of the file.
fn link_targets(
    file: &EcosystemFile,
    placements: &BTreeMap<String, Placement>,
) -> Vec<(String, String, std::net::SocketAddr)> {
    file.links()
        .into_iter()
        .filter_map(|(from, to)| {
            let at = placements.get(&to)?;
            let addr = format!("{}:{}", at.inner_host, at.inner_port?)
                .parse()
                .ok()?;
            Some((from, to, addr))
        })
        .collect()
}

fn default_file() -> Result<PathBuf, EnvError> {
    if let Some(p) = std::env::var_os("TEKUP_ECOSYSTEM") {
        return Ok(PathBuf::from(p));
    }
    let cwd = std::env::current_dir().map_err(EnvError::io("read the current directory"))?;
    let mut candidates: Vec<PathBuf> = cwd
        .ancestors()
        .map(|d| d.join("fixtures").join("ecosystem.toml"))
        .collect();
    // Tests of this crate run in harness/; the file is at the workspace root.
    candidates.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/ecosystem.toml"));
    candidates
        .into_iter()
        .find(|p| p.is_file())
        .ok_or_else(|| EnvError::other(
            "find the ecosystem file",
            "no fixtures/ecosystem.toml in the current directory or above; pass --file or set TEKUP_ECOSYSTEM",
        ))
}

/// Why the ecosystem runs without links (`None`: it has them), or why the
/// links asked for cannot be had.
fn links_off(
    asked: Option<bool>,
    runtime: Runtime,
    keep: bool,
) -> Result<Option<String>, EnvError> {
    let refuse = |why: &str| {
        Err(EnvError::Unsupported {
            runtime: runtime.as_str(),
            action: format!("put fault proxies on the links between components: {why}"),
        })
    };
    match (asked, runtime, keep) {
        (Some(false), ..) => Ok(Some("links were turned off (EcosystemBuilder::links(false))".into())),
        (_, Runtime::Process | Runtime::Auto, false) => Ok(None),
        (None, Runtime::Process | Runtime::Auto, true) => Ok(Some(
            "a kept environment has no links: their proxies live in the harness process, which it outlives".into(),
        )),
        (Some(true), Runtime::Process | Runtime::Auto, true) => {
            refuse("the proxies live in the harness process, which a kept environment outlives; drop `keep`")
        }
        (None, Runtime::Docker, _) => Ok(Some(
            "links need the process runtime; this ecosystem runs under docker".into(),
        )),
        (None, Runtime::External, _) => Ok(Some(
            "links need the process runtime; an external deployment is not started by the harness".into(),
        )),
        (Some(true), Runtime::Docker, _) => refuse(
            "links need the process runtime (--runtime process); containers reach each other on their own network",
        ),
        (Some(true), Runtime::External, _) => {
            refuse("links need the process runtime; an external deployment is not started by the harness")
        }
    }
}

/// Chooses the runtime for `auto` and says why.
async fn pick(wanted: Runtime, file: &EcosystemFile) -> (Runtime, String) {
    match wanted {
        Runtime::Auto => match docker::usable(file).await {
            Ok(why) => (Runtime::Docker, why),
            Err(why) => (Runtime::Process, format!("{why}; using processes")),
        },
        other => (other, format!("--runtime {other} was asked for")),
    }
}

/// The running ecosystem. Dropping it stops every component and removes
/// what they wrote (unless built with `keep`).
pub struct Ecosystem {
    file: EcosystemFile,
    runtime: Runtime,
    reason: String,
    backend: Arc<dyn Backend>,
    components: BTreeMap<String, ComponentHandle>,
    keep: bool,
    run_id: String,
    logs_dir: PathBuf,
    torn_down: bool,
    /// Declared after the backend's teardown runs (in `Drop`), so proxies
    /// stop after the components.
    links: Links,
    tls: ClientTls,
    /// Why there are no links, when there are none.
    links_off: Option<String>,
    /// The tenants made on it through [`crate::platform::Platform`].
    tenants: Arc<TenantLedger>,
    /// Where each component is reached by the others (`${name.url}` of the file).
    placements: BTreeMap<String, Placement>,
    /// The spans the components exported to this ecosystem's receiver.
    traces: Arc<SpanStore>,
    /// The receiver filling `traces` (none when kept, or under a remote
    /// docker daemon).
    otlp: Option<OtlpReceiver>,
}

impl fmt::Debug for Ecosystem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ecosystem")
            .field("runtime", &self.runtime)
            .field("run_id", &self.run_id)
            .field("components", &self.components)
            .finish_non_exhaustive()
    }
}

impl Ecosystem {
    /// Starts the default ecosystem file with `runtime`.
    pub async fn start(runtime: Runtime) -> Result<Self, EnvError> {
        Self::builder().runtime(runtime).start().await
    }

    /// Options for starting.
    pub fn builder() -> EcosystemBuilder {
        EcosystemBuilder::default()
    }

    async fn start_all(
        &mut self,
        report: &(dyn Fn(Progress) + Send + Sync),
    ) -> Result<(), EnvError> {
        let mut placements = BTreeMap::new();
        for c in self.file.components.values() {
            placements.insert(c.name.clone(), self.backend.place(c)?);
        }
        if self.links_off.is_none() {
            self.links = Links::start(link_targets(&self.file, &placements)).await?;
        }
        self.placements.clone_from(&placements);
        // Each component starts once every component it waits for is ready;
        // not layer by layer, so a slow component holds back only what
        // needs it. A dependency it does not wait for starts alongside: it
        // is only called once requests come, after the whole start. A
        // replayed snapshot job of a Postgres the component waits for by
        // itself holds nothing back (`replayed_for`).
        let names: Vec<String> = self.file.layers.iter().flatten().cloned().collect();
        let stages: BTreeMap<String, watch::Sender<Stage>> = names
            .iter()
            .map(|n| (n.clone(), watch::channel(Stage::Waiting).0))
            .collect();
        let snapshots = self.snapshots()?;
        let this = &*self;
        let starts = names.iter().map(|name| {
            let component = this.file.components[name].clone();
            let spec = this.launch_spec(&component, &placements, &snapshots);
            let stages = &stages;
            let snapshots = &snapshots;
            async move {
                for dep in &component.wait_for {
                    if this.replayed_for(&component, dep, snapshots).await? {
                        continue;
                    }
                    if let Some(stage) = stages.get(dep) {
                        // The senders live as long as this function: no error.
                        let _ = stage.subscribe().wait_for(|s| *s == Stage::Ready).await;
                    }
                }
                report(Progress::Starting {
                    component: component.name.clone(),
                });
                let started = Instant::now();
                let handle = this.start_one(component, spec?).await?;
                handle.wait_ready().await?;
                stages[&handle.name].send_replace(Stage::Ready);
                report(Progress::Ready {
                    component: handle.name.clone(),
                    took: started.elapsed(),
                });
                Ok::<_, EnvError>(handle)
            }
        });
        for handle in try_join_all(starts).await? {
            self.components.insert(handle.name.clone(), handle);
        }
        Ok(())
    }

    /// Whether `component` need not wait for its dependency `dep`: `dep`
    /// is a snapshot job of a Postgres that `component` waits for by itself
    /// (`waits-itself-for`), and the runtime replays the job instead of
    /// running it, so its result is there from the Postgres's first answer.
    /// When the job runs, the Postgres restarts right after it (to keep its
    /// data) and everything that uses it waits for the job as written.
    async fn replayed_for(
        &self,
        component: &Component,
        dep: &str,
        snapshots: &BTreeMap<String, SnapshotOf>,
    ) -> Result<bool, EnvError> {
        let Some(of) = snapshots.get(dep).filter(|of| of.job == dep) else {
            return Ok(false);
        };
        if !component.waits_itself_for.contains(&of.postgres) {
            return Ok(false);
        }
        let postgres = &self.file.components[&of.postgres];
        self.backend.replays(postgres, of).await
    }

    async fn start_one(
        &self,
        component: Component,
        spec: LaunchSpec,
    ) -> Result<ComponentHandle, EnvError> {
        let credentials = (component.kind == Kind::Postgres).then(|| {
            (
                component.user.clone(),
                spec.password.clone().unwrap_or_default(),
                component.database.clone(),
            )
        });
        let instance = self.backend.start(spec).await?;
        Ok(ComponentHandle {
            name: component.name.clone(),
            kind: component.kind,
            instance,
            ready: component.ready.clone(),
            timeout: component.ready_timeout,
            admin_path: component.admin_path.clone(),
            credentials,
            runtime: self.backend.name(),
            tls: self.tls.clone(),
        })
    }

    fn launch_spec(
        &self,
        c: &Component,
        placements: &BTreeMap<String, Placement>,
        snapshots: &BTreeMap<String, SnapshotOf>,
    ) -> Result<LaunchSpec, EnvError> {
        let me = &placements[&c.name];
        // References to a component this one links to resolve to the link's proxy.
        let through: BTreeMap<&str, Placement> = self
            .links
            .iter()
            .filter(|l| l.from() == c.name)
            .map(|l| {
                (
                    l.to(),
                    Placement {
                        inner_host: l.proxy().addr().ip().to_string(),
                        inner_port: Some(l.proxy().addr().port()),
                        bind_host: me.bind_host.clone(),
                    },
                )
            })
            .collect();
        let mut files = Vec::new();
        let file = &self.file;
        let backend = &self.backend;
        let mut resolve = |r: &Ref| -> Result<String, String> {
            Ok(match r {
                Ref::Var(v) => file.vars.get(v).cloned().unwrap_or_default(),
                Ref::File(rel) => {
                    let host = file.base_dir.join(rel);
                    let seen = backend.file_path(&host, rel);
                    files.push((host, seen.clone()));
                    seen
                }
                Ref::Own(attr) => own_attr(attr, me),
                Ref::Otlp(attr) => match &self.otlp {
                    Some(OtlpReceiver(r)) if attr == "grpc-url" => r.grpc_url(),
                    Some(OtlpReceiver(r)) => r.http_url(),
                    None => String::new(),
                },
                Ref::Component { component, attr } => other_attr(
                    file,
                    &file.components[component],
                    through
                        .get(component.as_str())
                        .unwrap_or(&placements[component]),
                    attr,
                )?,
            })
        };
        let at = |line: usize, m: String| {
            EnvError::Model(super::model::ModelError::Invalid {
                file: file.path.display().to_string(),
                line,
                column: 1,
                message: m,
            })
        };
        let mut args = Vec::new();
        for t in &c.args {
            args.push(refs::render(&t.text, &mut resolve).map_err(|m| at(t.line, m))?);
        }
        let mut env = BTreeMap::new();
        for (k, t) in &c.env {
            env.insert(
                k.clone(),
                refs::render(&t.text, &mut resolve).map_err(|m| at(t.line, m))?,
            );
        }
        if let (Some(otlp), Some(_)) = (&self.otlp, &c.program) {
            otlp.inject(&c.name, &mut env);
        }
        let password = match &c.password {
            Some(t) => Some(refs::render(&t.text, &mut resolve).map_err(|m| at(t.line, m))?),
            None => None,
        };
        let program = match (c.kind, self.runtime) {
            (Kind::Service | Kind::Job, Runtime::Process) => {
                Some(binaries::resolve(c, &self.file.base_dir, true)?)
            }
            (Kind::Service | Kind::Job, Runtime::Docker) => {
                Some(docker::image_program(c, &self.file)?)
            }
            _ => None,
        };
        let scrape = super::prometheus::targets(c, placements);
        Ok(LaunchSpec {
            scrape,
            snapshot: snapshots.get(&c.name).cloned(),
            component: c.clone(),
            placement: me.clone(),
            args,
            env,
            program,
            files,
            password,
        })
    }

    /// The file's snapshot jobs under the process and docker runtimes,
    /// each under the job's name and its Postgres's (both specs carry it):
    /// see [`super::snapshot`]. Keyed once per start.
    fn snapshots(&self) -> Result<BTreeMap<String, SnapshotOf>, EnvError> {
        let mut by_component = BTreeMap::new();
        if !matches!(self.runtime, Runtime::Process | Runtime::Docker) {
            return Ok(by_component);
        }
        for job in self.file.components.values() {
            let Some(postgres) = job
                .snapshot
                .as_ref()
                .and_then(|p| self.file.components.get(p))
            else {
                continue;
            };
            let (program, job_image) = if self.runtime == Runtime::Docker {
                let program = docker::image_program(job, &self.file)?;
                let image = super::snapshot::JobImage {
                    images: job.images().cloned().collect(),
                    program: program.clone(),
                };
                (program, Some(image))
            } else {
                (binaries::resolve(job, &self.file.base_dir, true)?, None)
            };
            let of = SnapshotOf {
                job: job.name.clone(),
                postgres: postgres.name.clone(),
                key: super::snapshot::key(&self.file, job, postgres, &program)?,
                job_image,
            };
            by_component.insert(postgres.name.clone(), of.clone());
            by_component.insert(job.name.clone(), of);
        }
        Ok(by_component)
    }

    /// The runtime in use.
    pub fn runtime(&self) -> Runtime {
        self.runtime
    }

    /// Why that runtime was chosen.
    pub fn runtime_reason(&self) -> &str {
        &self.reason
    }

    /// This run's id (labels of its containers, name of its run directory).
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// Where the components' logs are.
    pub fn logs_dir(&self) -> &Path {
        &self.logs_dir
    }

    /// The ecosystem file it was started from.
    pub fn file(&self) -> &EcosystemFile {
        &self.file
    }

    /// The TLS settings every client of this ecosystem is built with.
    pub fn tls(&self) -> &ClientTls {
        &self.tls
    }

    /// Every component, by name.
    pub fn components(&self) -> impl Iterator<Item = &ComponentHandle> {
        self.components.values()
    }

    /// The component called `name`.
    pub fn component(&self, name: &str) -> Result<&ComponentHandle, EnvError> {
        self.components
            .get(name)
            .ok_or_else(|| EnvError::NoSuchComponent(name.to_owned()))
    }

    /// The base URL of component `name`.
    pub fn url(&self, name: &str) -> Result<String, EnvError> {
        self.component(name)?
            .url()
            .ok_or_else(|| EnvError::other(format!("give the URL of `{name}`"), "it has no port"))
    }

    /// The base URL other components reach `name` on, for a URL the
    /// harness hands to one of them (a webhook's target): under docker
    /// `http://<name>:<port>` on the run's network, on an external
    /// deployment the component's `peer-url` in the external file, else
    /// what [`Self::url`] gives.
    pub fn peer_url(&self, name: &str) -> Result<String, EnvError> {
        if let Some(url) = self.component(name)?.instance.peer_url_override() {
            return Ok(url);
        }
        let url = self.url(name)?;
        if self.runtime != Runtime::Docker {
            return Ok(url);
        }
        match self.placements.get(name) {
            Some(Placement {
                inner_host,
                inner_port: Some(port),
                ..
            }) if url.starts_with("http://") => Ok(format!("http://{inner_host}:{port}")),
            _ => Ok(url),
        }
    }

    /// Why this ecosystem has no links between its components (docker,
    /// external, kept), or `None` when [`Self::link`] works.
    pub fn links_off(&self) -> Option<&str> {
        self.links_off.as_deref()
    }

    /// The mock called `name` (URL and admin URL).
    pub fn mock(&self, name: &str) -> Result<MockHandle, EnvError> {
        self.component(name)?.as_mock().ok_or_else(|| {
            EnvError::other(format!("use `{name}` as a mock"), "it has no `admin-path`")
        })
    }

    fn first_of(&self, kind: Kind) -> Result<&ComponentHandle, EnvError> {
        self.components
            .values()
            .find(|c| c.kind == kind)
            .ok_or_else(|| EnvError::NoSuchComponent(format!("(any {kind})")))
    }

    /// The URL of the first component of `kind`, or why there is none.
    fn url_of_kind(&self, kind: Kind) -> Result<String, EnvError> {
        let c = self.first_of(kind)?;
        c.url().ok_or_else(|| {
            EnvError::other(
                format!("reach the ecosystem's {kind}"),
                format!(
                    "the external deployment gives no URL for `{0}` (set {1} or `[component.{0}] url` in the external file)",
                    c.name,
                    external::env_var(&c.name)
                ),
            )
        })
    }

    /// Whether the ecosystem offers a component of `kind` the harness can
    /// reach (an external deployment may not give the database or Redis).
    pub fn offers(&self, kind: Kind) -> bool {
        self.components
            .values()
            .any(|c| c.kind == kind && c.offered())
    }

    /// Why components cannot be killed, paused or restarted here (`None`
    /// when they can: the process and docker runtimes started them).
    pub fn faults_unavailable(&self) -> Option<&'static str> {
        (self.runtime == Runtime::External).then_some(
            "an external deployment's components are not the harness's to kill, pause or restart",
        )
    }

    /// Why there are no fault proxies on the links (`None` when there are).
    pub fn links_unavailable(&self) -> Option<&str> {
        self.links_off.as_deref()
    }

    /// The spans its components exported, for runs to find their own in
    /// (see [`crate::trace`]).
    pub fn traces(&self) -> &Arc<SpanStore> {
        &self.traces
    }

    /// The OTLP/HTTP base URL of the receiver filling [`Self::traces`] (what
    /// components get as `OTEL_EXPORTER_OTLP_ENDPOINT`), or `None` when the
    /// ecosystem has no receiver (kept, or on a remote docker daemon).
    pub fn otlp_url(&self) -> Option<String> {
        self.otlp.as_ref().map(|r| r.0.http_url())
    }

    /// The receiver's OTLP/gRPC endpoint, when it has one.
    pub fn otlp_grpc_url(&self) -> Option<String> {
        self.otlp.as_ref().map(|r| r.0.grpc_url())
    }

    /// Why the components' spans do not reach [`Ecosystem::traces`], or
    /// `None` when they do: the harness points the components it starts at
    /// its receiver; an external deployment exports wherever it was set up to.
    pub fn traces_unavailable(&self) -> Option<&'static str> {
        if self.runtime == Runtime::External {
            return Some(
                "an external deployment's services export their spans where they were set up to, not to the harness",
            );
        }
        self.otlp.is_none().then_some(
            "this ecosystem has no OTLP receiver (a kept environment outlives the harness process that would receive; a remote Docker daemon cannot reach it)",
        )
    }

    /// The tenants made on this ecosystem through [`crate::platform::Platform`].
    pub fn tenants(&self) -> &Arc<TenantLedger> {
        &self.tenants
    }

    /// Disposes of the tenants made on it, and says how. The process and
    /// docker runtimes throw the whole database away with the ecosystem;
    /// on an external deployment they are suspended (see
    /// [`crate::platform::release_tenants`]) unless `keep`.
    pub async fn release_tenants(&self, keep: bool) -> TenantRelease {
        let made = self.tenants.take();
        if self.runtime != Runtime::External {
            return TenantRelease::gone_with_ecosystem(made, self.tenants.prefix());
        }
        let pool = if keep || made.is_empty() {
            Err(String::new())
        } else {
            self.postgres_pool().await.map_err(|e| error_chain(&e))
        };
        crate::platform::release_tenants(
            made,
            self.tenants.prefix(),
            keep,
            pool.as_ref().ok(),
            pool.as_ref().err().map(String::as_str),
        )
        .await
    }

    /// A pool on the Postgres component's database, as its superuser.
    pub async fn postgres_pool(&self) -> Result<sqlx::PgPool, EnvError> {
        let url = self.url_of_kind(Kind::Postgres)?;
        sqlx::postgres::PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(10))
            .connect(&url)
            .await
            .map_err(|e| EnvError::other("connect to the ecosystem's Postgres", e))
    }

    /// A connection to the Redis component.
    pub async fn redis(&self) -> Result<redis::aio::MultiplexedConnection, EnvError> {
        let url = self.url_of_kind(Kind::Redis)?;
        let client =
            redis::Client::open(url).map_err(|e| EnvError::other("open the Redis URL", e))?;
        client
            .get_multiplexed_async_connection()
            .await
            .map_err(|e| EnvError::other("connect to the ecosystem's Redis", e))
    }

    /// The proxy on the link from component `from` to component `to`
    /// (see [`crate::chaos::links`]): add toxics to it, or disable it.
    pub fn link(&self, from: &str, to: &str) -> Result<&Proxy, EnvError> {
        let name = format!("{from}->{to}");
        if let Some(why) = &self.links_off {
            return Err(EnvError::other(format!("use link `{name}`"), why));
        }
        self.links.get(from, to).map_err(|_| {
            let hint = match (self.file.component(from), self.file.component(to)) {
                (None, _) => format!("there is no component `{from}`"),
                (_, None) => format!("there is no component `{to}`"),
                (Some(_), Some(c)) if c.kind == Kind::Job || c.port.is_none() => {
                    format!("`{to}` listens on no port")
                }
                _ => {
                    format!("`{from}` references no host, port or url of `{to}` in its args or env")
                }
            };
            EnvError::Chaos(self.links.missing(&name, hint))
        })
    }

    /// The proxy on the link called `from->to`, e.g. `flow-api->redis`.
    pub fn link_named(&self, name: &str) -> Result<&Proxy, EnvError> {
        let (from, to) = parse_link(name).map_err(EnvError::Chaos)?;
        self.link(from, to)
    }

    /// Every link, ordered by name (none without links).
    pub fn links(&self) -> impl Iterator<Item = &Link> {
        self.links.iter()
    }

    /// Removes every toxic from every link and enables them all.
    pub fn reset_links(&self) -> Result<(), EnvError> {
        self.links.reset().map_err(EnvError::Chaos)
    }

    /// What `tekup-harness down` needs to stop this environment later.
    pub fn state(&self) -> serde_json::Value {
        serde_json::json!({
            "run-id": self.run_id,
            "runtime": self.runtime.as_str(),
            "pid": std::process::id(),
            "logs": self.logs_dir,
            "backend": self.backend.keep_state(),
            "links": self.links.iter().map(|l| serde_json::json!({
                "name": l.name(),
                "listen": l.proxy().addr().to_string(),
                "upstream": l.proxy().upstream().to_string(),
            })).collect::<Vec<_>>(),
        })
    }

    /// Stops everything now (also what drop does), unless `keep` was set.
    pub async fn shutdown(&mut self) {
        if self.torn_down || self.keep {
            return;
        }
        self.torn_down = true;
        self.backend.teardown().await;
        std::mem::take(&mut self.links).shutdown().await;
        if let Some(OtlpReceiver(receiver)) = self.otlp.take() {
            receiver.shutdown().await;
        }
    }
}

impl Drop for Ecosystem {
    fn drop(&mut self) {
        if self.torn_down || self.keep {
            return;
        }
        self.torn_down = true;
        let backend = Arc::clone(&self.backend);
        // Teardown is async (docker); run it on a runtime of its own so drop
        // works inside and outside tokio, and never panics while panicking.
        let joined = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                rt.block_on(backend.teardown());
            }
        })
        .join();
        if joined.is_err() && !std::thread::panicking() {
            tracing::error!("tearing down the ecosystem panicked");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> EcosystemFile {
        EcosystemFile::parse(
            Path::new("/x/eco.toml"),
            "[vars]\nadmin-token = \"a\"\nbreaker-open-secs = \"5\"\n\n\
             [component.redis]\nkind = \"redis\"\n",
        )
        .expect("a file")
    }

    #[test]
    fn a_var_the_file_has_is_set_and_one_it_lacks_is_named_with_those_it_has() {
        let mut f = file();
        set_vars(&mut f, &[("breaker-open-secs".into(), "1".into())]).expect("set");
        assert_eq!(f.vars["breaker-open-secs"], "1");
        assert_eq!(f.vars["admin-token"], "a");
        let e = set_vars(&mut f, &[("breaker-open-sec".into(), "1".into())]).expect_err("unknown");
        assert_eq!(
            e.to_string(),
            "failed to set `breaker-open-sec` of the ecosystem file's [vars]: \
             /x/eco.toml has no such entry; it has admin-token, breaker-open-secs"
        );
    }
}
