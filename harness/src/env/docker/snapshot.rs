//! Snapshot jobs under docker ([`super::super::snapshot`]): the Postgres a
//! job changed, committed to an image once the job has run.
//!
//! When the Postgres starts, the runtime extends the job's key with the ids
//! of the job's image and of the Postgres image (and the Postgres's
//! environment, which `initdb` reads), and looks for
//! `tekup-harness/snapshot:<job>-<key>`. Found, the Postgres runs from it
//! and the job is not run (a [`ReplayedJob`] stands in for it). Not found,
//! the job runs; once it has exited the Postgres is stopped with SIGINT (a
//! fast shutdown: the committed cluster starts without recovery),
//! committed, and started again, and the start waits until it answers.
//!
//! `docker commit` keeps the container's own layer, not its volumes. The
//! offline image declares none (its `PGDATA` is a link to the cluster baked
//! into the image, in the layer); the official `postgres` image declares
//! `/var/lib/postgresql/data`, so with such an image the snapshot's
//! Postgres gets `PGDATA` [`OUTSIDE_VOLUMES`].

use std::time::{Duration, SystemTime};

use bollard::models::ContainerConfig;
use bollard::query_parameters::{
    CommitContainerOptions, KillContainerOptions, RemoveImageOptions, WaitContainerOptions,
};
use futures::future::BoxFuture;
use futures::{FutureExt as _, StreamExt as _};

use super::super::error::EnvError;
use super::super::model::Ready;
use super::super::ready::{self, Probe};
use super::super::runtime::{ExitInfo, Instance, LaunchSpec, SnapshotOf};
use super::super::snapshot::{extend_key, replay_note, KEEP};
use super::DockerBackend;

/// Repository of the snapshot images.
pub(crate) const REPO: &str = "tekup-harness/snapshot";
/// Label naming the job a snapshot image was made by.
pub(crate) const JOB_LABEL: &str = "tekup-harness.snapshot";
/// `PGDATA` of a snapshot's Postgres whose image keeps its data in a volume.
pub(crate) const OUTSIDE_VOLUMES: &str = "/tekup/pgdata";
/// How long a clean shutdown of the Postgres may take before the snapshot
/// is given up (and the Postgres started again as it is).
const SHUTDOWN: Duration = Duration::from_secs(30);

/// What a snapshot job does in this run, decided when its Postgres starts.
#[derive(Debug, Clone)]
pub(super) enum Decision {
    /// The Postgres runs from this snapshot image: the job is not run.
    Replay { image: String },
    /// The Postgres runs bare: run the job, then keep it as `image`.
    Keep(Keep),
}

/// A snapshot to make once the job has run.
#[derive(Debug, Clone)]
pub(super) struct Keep {
    /// `repo:tag` to commit.
    image: String,
    /// The Postgres's URL parts, to wait for it after its restart.
    user: String,
    password: String,
    database: String,
    timeout: Duration,
}

impl DockerBackend {
    /// The image the snapshot job's Postgres runs from: its snapshot when
    /// one was kept, else `base`. Moves `PGDATA` out of `base`'s volumes.
    pub(super) async fn snapshot_image(
        &self,
        of: &SnapshotOf,
        base: String,
        spec: &mut LaunchSpec,
    ) -> Result<String, EnvError> {
        let Some(job) = &of.job_image else {
            return Ok(base);
        };
        let inspected = self
            .docker
            .inspect_image(&base)
            .await
            .map_err(EnvError::docker(format!("inspect {base}")))?;
        let config = inspected.config.unwrap_or_default();
        let pgdata = spec.env.get("PGDATA").cloned().or_else(|| {
            config
                .env
                .iter()
                .flatten()
                .find_map(|e| e.strip_prefix("PGDATA=").map(str::to_owned))
        });
        if in_volume(
            pgdata.as_deref().unwrap_or("/var/lib/postgresql/data"),
            config.volumes.iter().flatten(),
        ) {
            spec.env.insert("PGDATA".into(), OUTSIDE_VOLUMES.into());
        }
        let job_image = self.choose_image(&of.job, &job.images).await?;
        let job_image = super::bin_image::ensure(&self.docker, &job_image, &job.program).await?;
        let job_id = self
            .docker
            .inspect_image(&job_image)
            .await
            .map_err(EnvError::docker(format!("inspect {job_image}")))?
            .id
            .unwrap_or_default();
        let env: Vec<String> = spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let key = extend_key(
            &of.key,
            &[
                ("job-image", &job_id),
                (
                    "postgres-image",
                    inspected.id.as_deref().unwrap_or_default(),
                ),
                ("postgres-env", &env.join("\n")),
            ],
        );
        let image = format!("{REPO}:{}-{key}", tag_safe(&of.job));
        let (decision, run_from) = if super::image_exists(&self.docker, &image).await {
            (
                Decision::Replay {
                    image: image.clone(),
                },
                image,
            )
        } else {
            let keep = Keep {
                image,
                user: spec.component.user.clone(),
                password: spec.password.clone().unwrap_or_default(),
                database: spec.component.database.clone(),
                timeout: spec.component.ready_timeout,
            };
            (Decision::Keep(keep), base)
        };
        self.snapshots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(of.job.clone(), decision);
        Ok(run_from)
    }

    /// What this run does with the snapshot job of `spec`, if it is one.
    pub(super) fn decision(&self, spec: &LaunchSpec) -> Option<Decision> {
        let of = spec.snapshot.as_ref()?;
        if of.job != spec.component.name {
            return None;
        }
        let found = self.snapshots.lock().unwrap_or_else(|e| e.into_inner());
        found.get(&of.job).cloned()
    }

    /// The stand-in for a job replayed from `image`; its log says so.
    pub(super) fn replayed(
        &self,
        spec: &LaunchSpec,
        image: &str,
    ) -> Result<std::sync::Arc<dyn Instance>, EnvError> {
        let note = match &spec.snapshot {
            Some(of) => replay_note(of, &format!("the snapshot image {image}")),
            None => format!("not run: replayed from the snapshot image {image}\n"),
        };
        let log = self.logs_dir.join(format!("{}.log", spec.component.name));
        std::fs::write(&log, &note).map_err(EnvError::io(format!("write {}", log.display())))?;
        Ok(std::sync::Arc::new(ReplayedJob {
            name: spec.component.name.clone(),
            host: self.host.clone(),
            note,
        }))
    }

    /// Waits for the job of `job` to exit, then keeps its Postgres as
    /// `keep.image`: stopped cleanly, committed, started again and waited
    /// for. A Postgres that does not stop cleanly in time keeps nothing.
    pub(super) async fn keep_snapshot(
        &self,
        of: &SnapshotOf,
        job: &dyn Instance,
        timeout: Duration,
        keep: Keep,
    ) -> Result<(), EnvError> {
        ready::wait(
            &of.job,
            &Ready::Exited,
            &Probe::for_process(None),
            job,
            timeout,
        )
        .await?;
        let container = format!("tekup-{}-{}", self.run_id, of.postgres);
        let Some(postgres) = self
            .started
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|i| i.name() == container)
            .cloned()
        else {
            return Ok(());
        };
        let stopped = self.stop_cleanly(&container).await?;
        if stopped {
            let (repo, tag) = keep.image.split_once(':').unwrap_or((REPO, "latest"));
            let made = self
                .docker
                .commit_container(
                    CommitContainerOptions {
                        container: Some(container.clone()),
                        repo: Some(repo.to_owned()),
                        tag: Some(tag.to_owned()),
                        changes: Some(format!("LABEL {JOB_LABEL}={}", of.job)),
                        ..Default::default()
                    },
                    ContainerConfig::default(),
                )
                .await
                .map_err(EnvError::docker(format!(
                    "commit {container} as {}",
                    keep.image
                )))?;
            prune(&self.docker, &of.job, &made.id).await;
        } else {
            tracing::warn!(
                "{} did not shut down cleanly within {SHUTDOWN:?}: no snapshot kept",
                of.postgres
            );
        }
        postgres.start().await?;
        let (host, port) = (postgres.host(), postgres.host_port().unwrap_or(0));
        let probe = Probe {
            host: host.clone(),
            postgres_url: Some(super::super::resolve::postgres_url(
                &keep.user,
                &keep.password,
                &host,
                &port.to_string(),
                &keep.database,
            )),
            ..Probe::for_process(Some(port))
        };
        ready::wait(
            &of.postgres,
            &Ready::Postgres,
            &probe,
            postgres.as_ref(),
            keep.timeout,
        )
        .await
        .map(|_| ())
    }

    /// SIGINT (a fast shutdown) and the wait for the exit; whether it
    /// exited cleanly in time. SIGKILL after [`SHUTDOWN`].
    async fn stop_cleanly(&self, container: &str) -> Result<bool, EnvError> {
        self.docker
            .kill_container(
                container,
                Some(KillContainerOptions {
                    signal: "SIGINT".into(),
                }),
            )
            .await
            .map_err(EnvError::docker(format!("stop {container}")))?;
        let mut waited = self
            .docker
            .wait_container(container, None::<WaitContainerOptions>);
        match tokio::time::timeout(SHUTDOWN, waited.next()).await {
            Ok(Some(Ok(exit))) => Ok(exit.status_code == 0),
            Ok(_) => Ok(false),
            Err(_) => {
                drop(waited);
                self.docker
                    .kill_container(container, None::<KillContainerOptions>)
                    .await
                    .map_err(EnvError::docker(format!("kill {container}")))?;
                let _ = self
                    .docker
                    .wait_container(container, None::<WaitContainerOptions>)
                    .next()
                    .await;
                Ok(false)
            }
        }
    }
}

/// Whether `path` is at or under one of `volumes`.
fn in_volume<'a>(path: &str, volumes: impl IntoIterator<Item = &'a String>) -> bool {
    let path = path.trim_end_matches('/');
    volumes.into_iter().any(|v| {
        let v = v.trim_end_matches('/');
        v.is_empty() || path == v || path.starts_with(&format!("{v}/"))
    })
}

/// `name` as a tag may hold it (letters, digits, `_`, `.`, `-`).
fn tag_safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_.-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(100)
        .collect()
}

/// Removes `job`'s snapshot images beyond the newest [`KEEP`] once they
/// are an hour old, never `made`. Best effort: an image a container still
/// runs from stays.
async fn prune(docker: &bollard::Docker, job: &str, made: &str) {
    let Ok(mut images) = super::clean::labelled_images(docker, &format!("{JOB_LABEL}={job}")).await
    else {
        return;
    };
    images.sort_by_key(|i| std::cmp::Reverse(i.created));
    let hour_ago = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs().saturating_sub(3600));
    for image in images.into_iter().skip(KEEP) {
        let old = u64::try_from(image.created).unwrap_or(u64::MAX) < hour_ago;
        if old && image.id != made {
            let _ = docker
                .remove_image(&image.id, None::<RemoveImageOptions>, None)
                .await;
        }
    }
}

/// Removes every snapshot image (the next docker start of each snapshot
/// job runs it again); returns how many went.
pub async fn remove_snapshot_images() -> Result<usize, EnvError> {
    super::clean::remove_labelled_images(JOB_LABEL, "snapshot images").await
}

/// A snapshot job that was not run: its result is in the image its
/// Postgres runs from. It reads as exited with success; there is no
/// container to kill, pause or restart.
#[derive(Debug)]
pub(super) struct ReplayedJob {
    name: String,
    host: String,
    note: String,
}

impl Instance for ReplayedJob {
    fn host(&self) -> String {
        self.host.clone()
    }

    fn host_port(&self) -> Option<u16> {
        None
    }

    fn exit_status(&self) -> BoxFuture<'_, Result<Option<ExitInfo>, EnvError>> {
        async move {
            Ok(Some(ExitInfo {
                success: true,
                text: "replayed from a snapshot".into(),
            }))
        }
        .boxed()
    }

    fn log_tail(&self, _lines: usize) -> BoxFuture<'_, String> {
        async move { self.note.clone() }.boxed()
    }

    fn log_contains<'a>(&'a self, text: &'a str) -> BoxFuture<'a, bool> {
        async move { self.note.contains(text) }.boxed()
    }

    fn kill(&self) -> BoxFuture<'_, Result<(), EnvError>> {
        async move { Ok(()) }.boxed()
    }

    fn pause(&self) -> BoxFuture<'_, Result<(), EnvError>> {
        async move { Ok(()) }.boxed()
    }

    fn resume(&self) -> BoxFuture<'_, Result<(), EnvError>> {
        async move { Ok(()) }.boxed()
    }

    fn restart(&self) -> BoxFuture<'_, Result<(), EnvError>> {
        async move {
            Err(EnvError::Start {
                component: self.name.clone(),
                message: format!("it has no container to restart: {}", self.note.trim_end()),
            })
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pgdata_in_a_volume_is_seen() {
        let volumes = ["/var/lib/postgresql/data".to_owned()];
        assert!(in_volume("/var/lib/postgresql/data", &volumes));
        assert!(in_volume("/var/lib/postgresql/data/pgdata", &volumes));
        assert!(in_volume("/var/lib/postgresql/data/", &volumes));
        assert!(!in_volume("/var/lib/postgresql/data2", &volumes));
        assert!(!in_volume(OUTSIDE_VOLUMES, &volumes));
        assert!(!in_volume("/var/lib/postgresql/data", std::iter::empty()));
    }

    #[test]
    fn tags_hold_only_what_docker_allows() {
        assert_eq!(tag_safe("migrate"), "migrate");
        assert_eq!(tag_safe("seed db/2"), "seed_db_2");
    }
}
