//! The `docker` runtime: one container per component on a network per run.
//!
//! This follows testcontainers' model (a client from `DOCKER_HOST`, labels on
//! everything, readiness as conditions) but talks to the daemon through
//! bollard directly: testcontainers 0.2x pins the newest Docker API version
//! and cannot talk to older daemons (Docker 20.10 speaks API 1.41), while
//! bollard negotiates the version.
//!
//! - Postgres, Redis and Prometheus run from `image` when it exists
//!   locally, else from `offline-image` (built by `tekup-harness images
//!   build`), else `image` is pulled. Prometheus's generated configuration
//!   and rules are copied in before its container starts (see
//!   [`super::prometheus`]).
//! - Services, mocks and jobs run in a runtime image; their binaries (and
//!   `${file:...}` files) are copied in before the container starts.
//! - A snapshot job (`snapshot = "postgres"`) runs once per key: its
//!   Postgres is then committed to an image, and later starts run the
//!   Postgres from it and create no container for the job (see
//!   [`snapshot`]).
//! - Other components reach a component by its name on the run's network;
//!   the harness reaches it on a published port of `127.0.0.1` (or the
//!   `DOCKER_HOST` machine). Prefer `http`/`log` readiness for containers:
//!   docker's userland proxy accepts TCP on a published port before the
//!   container listens, so `{ tcp = true }` proves little there.
//! - Every container and the network carry `tekup-harness.run=<id>`.
//!   Teardown removes them; a reaper process (`tekup-harness reap`) holds a
//!   pipe to the harness and removes them when the harness dies without
//!   tearing down (SIGKILL); `tekup-harness down` removes leftovers.

mod archive;
mod bin_image;
mod clean;
mod instance;
mod release;
mod snapshot;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use bollard::models::{
    ContainerCreateBody, EndpointSettings, HostConfig, NetworkCreateRequest, NetworkingConfig,
    PortBinding,
};
use bollard::query_parameters::{CreateContainerOptions, UploadToContainerOptions};
use bollard::Docker;
use futures::future::BoxFuture;
use futures::FutureExt as _;
use serde_json::json;

pub use bin_image::remove_program_images;
pub(crate) use clean::image_exists;
pub use clean::{connect, reap, remove_runs, run_resources, usable};
use instance::DockerInstance;
pub(crate) use release::image_program;
pub use snapshot::remove_snapshot_images;

use super::error::EnvError;
use super::model::{Component, Kind};
use super::runtime::{Backend, Instance, LaunchSpec, Placement};

/// Label on everything the harness creates.
pub const LABEL: &str = "tekup-harness";
/// Label holding the run id.
pub const RUN_LABEL: &str = "tekup-harness.run";

/// Starts components as containers.
#[derive(Debug)]
pub(crate) struct DockerBackend {
    docker: Docker,
    run_id: String,
    network: String,
    logs_dir: PathBuf,
    keep: bool,
    /// Host the published ports are reached on.
    host: String,
    started: Mutex<Vec<Arc<DockerInstance>>>,
    reaper: Mutex<Option<Child>>,
    /// Snapshot jobs, by job: decided when their Postgres starts.
    snapshots: Mutex<std::collections::BTreeMap<String, snapshot::Decision>>,
}

impl DockerBackend {
    pub(crate) async fn connect(
        run_id: &str,
        logs_dir: PathBuf,
        keep: bool,
    ) -> Result<Self, EnvError> {
        let docker = connect().await?;
        let network = format!("tekup-{run_id}");
        let mut labels = HashMap::new();
        labels.insert(LABEL.to_owned(), "1".to_owned());
        labels.insert(RUN_LABEL.to_owned(), run_id.to_owned());
        let reaper = if keep { None } else { spawn_reaper(run_id) };
        docker
            .create_network(NetworkCreateRequest {
                name: network.clone(),
                driver: Some("bridge".into()),
                labels: Some(labels),
                ..Default::default()
            })
            .await
            .map_err(EnvError::docker(format!("create the network {network}")))?;
        std::fs::create_dir_all(&logs_dir)
            .map_err(EnvError::io(format!("create {}", logs_dir.display())))?;
        Ok(Self {
            docker,
            run_id: run_id.to_owned(),
            network,
            logs_dir,
            keep,
            host: docker_host_name(),
            started: Mutex::new(Vec::new()),
            reaper: Mutex::new(reaper),
            snapshots: Mutex::new(std::collections::BTreeMap::new()),
        })
    }

    /// The first of `candidates` (`image`, then `offline-image`) that
    /// exists locally, else the first pulled.
    async fn choose_image(
        &self,
        component: &str,
        candidates: &[String],
    ) -> Result<String, EnvError> {
        for image in candidates {
            if image_exists(&self.docker, image).await {
                return Ok(image.clone());
            }
        }
        let Some(image) = candidates.first() else {
            return Err(EnvError::Start {
                component: component.to_owned(),
                message: "no `image` or `offline-image` in the ecosystem file".into(),
            });
        };
        match clean::pull(&self.docker, image).await {
            Ok(()) => Ok(image.clone()),
            Err(pull) => Err(EnvError::ImageMissing {
                component: component.to_owned(),
                images: candidates
                    .iter()
                    .map(|i| format!("`{i}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
                pull,
            }),
        }
    }

    fn container_config(&self, spec: &LaunchSpec, image: String) -> ContainerCreateBody {
        let c = &spec.component;
        let mut env: Vec<String> = spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let (entrypoint, cmd) = match c.kind {
            Kind::Postgres => {
                env.push(format!("POSTGRES_USER={}", c.user));
                env.push(format!(
                    "POSTGRES_PASSWORD={}",
                    spec.password.clone().unwrap_or_default()
                ));
                env.push(format!("POSTGRES_DB={}", c.database));
                let cmd = [
                    "postgres",
                    "-c",
                    "fsync=off",
                    "-c",
                    "synchronous_commit=off",
                    "-c",
                    "full_page_writes=off",
                    "-c",
                    "max_connections=300",
                ];
                (None, Some(cmd.iter().map(|s| (*s).to_owned()).collect()))
            }
            Kind::Redis => (None, None),
            // The image's entrypoint is the server (the official image's
            // contract); `copy_in` puts the configuration where this says.
            Kind::Prometheus => (
                None,
                Some(super::prometheus::container_args(c.port.unwrap_or(9090))),
            ),
            Kind::Service | Kind::Job => {
                let program = spec
                    .program
                    .as_ref()
                    .and_then(|p| p.file_name())
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                (
                    Some(vec![format!("/tekup/bin/{program}")]),
                    Some(spec.args.clone()),
                )
            }
        };
        let mut labels = HashMap::new();
        labels.insert(LABEL.to_owned(), "1".to_owned());
        labels.insert(RUN_LABEL.to_owned(), self.run_id.clone());
        labels.insert("tekup-harness.component".to_owned(), c.name.clone());
        labels.insert("tekup-harness.keep".to_owned(), self.keep.to_string());
        let port = c.port.map(|p| format!("{p}/tcp"));
        let bind_ip = if self.host == "127.0.0.1" {
            "127.0.0.1"
        } else {
            "0.0.0.0"
        };
        let port_bindings = port.as_ref().map(|p| {
            HashMap::from([(
                p.clone(),
                Some(vec![PortBinding {
                    host_ip: Some(bind_ip.into()),
                    host_port: Some(String::new()),
                }]),
            )])
        });
        ContainerCreateBody {
            image: Some(image),
            env: Some(env),
            entrypoint,
            cmd,
            labels: Some(labels),
            exposed_ports: port.map(|p| vec![p]),
            host_config: Some(HostConfig {
                network_mode: Some(self.network.clone()),
                port_bindings,
                ..Default::default()
            }),
            networking_config: Some(NetworkingConfig {
                endpoints_config: Some(HashMap::from([(
                    self.network.clone(),
                    EndpointSettings {
                        aliases: Some(vec![c.name.clone()]),
                        ..Default::default()
                    },
                )])),
            }),
            ..Default::default()
        }
    }

    /// Uploads the component's `${file:...}` files and, for a Prometheus,
    /// its generated configuration and rules, into the created container.
    async fn copy_in(&self, container: &str, spec: &LaunchSpec) -> Result<(), EnvError> {
        let files = spec.files.clone();
        let made = match spec.component.kind {
            Kind::Prometheus => {
                super::prometheus::bundle(Path::new(super::prometheus::CONTAINER_DIR), spec)?
            }
            _ => Vec::new(),
        };
        if files.is_empty() && made.is_empty() {
            return Ok(());
        }
        let archive = tokio::task::spawn_blocking(move || {
            let mut tar = archive::archive(None, &files)?;
            archive::append_made(&mut tar, &made)?;
            tar.into_inner()
        })
        .await
        .map_err(|e| EnvError::other("pack the files", e))?
        .map_err(EnvError::io(format!(
            "pack the files of `{}` into a tar archive",
            spec.component.name
        )))?;
        self.docker
            .upload_to_container(
                container,
                Some(UploadToContainerOptions {
                    path: "/".into(),
                    ..Default::default()
                }),
                bollard::body_full(archive.into()),
            )
            .await
            .map_err(EnvError::docker(format!("copy the files into {container}")))
    }
}

/// The host published ports are reached on: the `DOCKER_HOST` machine for
/// `tcp://`, else loopback.
fn docker_host_name() -> String {
    std::env::var("DOCKER_HOST")
        .ok()
        .and_then(|h| {
            let rest = h
                .strip_prefix("tcp://")
                .or_else(|| h.strip_prefix("http://"))?;
            Some(rest.split(':').next()?.to_owned())
        })
        .unwrap_or_else(|| "127.0.0.1".into())
}

/// Starts `tekup-harness reap --run <id>` holding a pipe to us: when this
/// process dies, however, the pipe closes and the reaper removes the run.
fn spawn_reaper(run_id: &str) -> Option<Child> {
    let exe = reaper_binary()?;
    let mut command = Command::new(exe);
    command
        .args(["reap", "--run", run_id])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    match command.spawn() {
        Ok(child) => Some(child),
        Err(e) => {
            tracing::warn!(
                "failed to start the container reaper: {e}; `tekup-harness down` removes leftovers"
            );
            None
        }
    }
}

fn reaper_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("TEKUP_HARNESS_BIN") {
        return Some(PathBuf::from(p));
    }
    let exe = std::env::current_exe().ok()?;
    if exe.file_name().is_some_and(|n| n == "tekup-harness") {
        return Some(exe);
    }
    let found = super::binaries::search_dirs(None)
        .into_iter()
        .map(|d| d.join("tekup-harness"))
        .find(|p| p.is_file());
    if found.is_none() {
        tracing::warn!("no tekup-harness binary to reap containers if this process is killed; `tekup-harness down` removes leftovers");
    }
    found
}

impl Backend for DockerBackend {
    fn name(&self) -> &'static str {
        "docker"
    }

    fn place(&self, component: &Component) -> Result<Placement, EnvError> {
        Ok(Placement {
            inner_host: component.name.clone(),
            inner_port: component.port,
            bind_host: "0.0.0.0".into(),
        })
    }

    fn file_path(&self, _host_path: &Path, relative: &str) -> String {
        format!("/tekup/files/{relative}")
    }

    fn start(&self, mut spec: LaunchSpec) -> BoxFuture<'_, Result<Arc<dyn Instance>, EnvError>> {
        async move {
            let decision = self.decision(&spec);
            if let Some(snapshot::Decision::Replay { image }) = &decision {
                return self.replayed(&spec, image);
            }
            let candidates: Vec<String> = spec.component.images().cloned().collect();
            let mut image = self.choose_image(&spec.component.name, &candidates).await?;
            if let Some(program) = &spec.program {
                image = bin_image::ensure(&self.docker, &image, program).await?;
            }
            if let (Some(of), Kind::Postgres) = (spec.snapshot.clone(), spec.component.kind) {
                image = self.snapshot_image(&of, image, &mut spec).await?;
            }
            let c = &spec.component;
            let name = format!("tekup-{}-{}", self.run_id, c.name);
            let config = self.container_config(&spec, image);
            self.docker
                .create_container(
                    Some(CreateContainerOptions {
                        name: Some(name.clone()),
                        ..Default::default()
                    }),
                    config,
                )
                .await
                .map_err(EnvError::docker(format!("create the container {name}")))?;
            self.copy_in(&name, &spec).await?;
            let instance = Arc::new(DockerInstance::new(
                self.docker.clone(),
                name,
                c.port,
                self.host.clone(),
            ));
            self.started
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(Arc::clone(&instance));
            instance.start().await?;
            if let (Some(snapshot::Decision::Keep(keep)), Some(of)) = (decision, &spec.snapshot) {
                // The job runs to its end here, then its result is kept.
                self.keep_snapshot(of, instance.as_ref(), c.ready_timeout, keep)
                    .await?;
            }
            Ok(instance as Arc<dyn Instance>)
        }
        .boxed()
    }

    fn teardown(&self) -> BoxFuture<'_, ()> {
        async move {
            let started: Vec<_> = self
                .started
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .drain(..)
                .collect();
            // A fresh client: drop may run this on another tokio runtime.
            let Ok(docker) = connect().await else { return };
            for instance in &started {
                instance.save_log(&docker, &self.logs_dir).await;
            }
            if let Err(e) = remove_runs(&docker, Some(&self.run_id)).await {
                tracing::warn!("failed to remove run {}: {e}", self.run_id);
            }
            // Closing the pipe lets the reaper exit (it finds nothing left).
            let reaper = self.reaper.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some(mut reaper) = reaper {
                drop(reaper.stdin.take());
                let _ = reaper.wait();
            }
        }
        .boxed()
    }

    fn keep_state(&self) -> serde_json::Value {
        json!({ "network": self.network, "run": self.run_id })
    }

    /// The run network's gateway: this machine's address on the bridge,
    /// which its containers reach (on a local daemon only).
    fn harness_ip(&self) -> BoxFuture<'_, Result<std::net::IpAddr, String>> {
        async move {
            if self.host != "127.0.0.1" {
                return Err(format!(
                    "the docker daemon runs on {}, whose containers cannot reach a server of this machine's bridge",
                    self.host
                ));
            }
            let network = self
                .docker
                .inspect_network(&self.network, None)
                .await
                .map_err(|e| format!("failed to inspect the network {}: {e}", self.network))?;
            let gateway = network
                .ipam
                .and_then(|ipam| ipam.config)
                .unwrap_or_default()
                .into_iter()
                .find_map(|c| c.gateway?.parse::<std::net::IpAddr>().ok());
            gateway.ok_or_else(|| format!("the network {} has no gateway address", self.network))
        }
        .boxed()
    }
}
