//! One container: start, published port, logs and faults.

use std::path::Path;
use std::sync::Mutex;

use bollard::query_parameters::{
    InspectContainerOptions, KillContainerOptions, LogsOptions, RestartContainerOptions,
};
use bollard::Docker;
use futures::future::BoxFuture;
use futures::{FutureExt as _, StreamExt as _};

use super::super::error::EnvError;
use super::super::runtime::{ExitInfo, Instance};

#[derive(Debug)]
pub(crate) struct DockerInstance {
    docker: Docker,
    name: String,
    inner_port: Option<u16>,
    host: String,
    host_port: Mutex<Option<u16>>,
}

impl DockerInstance {
    pub(crate) fn new(docker: Docker, name: String, inner_port: Option<u16>, host: String) -> Self {
        Self {
            docker,
            name,
            inner_port,
            host,
            host_port: Mutex::new(None),
        }
    }

    /// The container's name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) async fn start(&self) -> Result<(), EnvError> {
        self.docker
            .start_container(&self.name, None)
            .await
            .map_err(EnvError::docker(format!(
                "start the container {}",
                self.name
            )))?;
        self.refresh_port().await
    }

    /// Reads the published port (it may change when the container restarts).
    async fn refresh_port(&self) -> Result<(), EnvError> {
        let Some(inner) = self.inner_port else {
            return Ok(());
        };
        let info = self
            .docker
            .inspect_container(&self.name, None::<InspectContainerOptions>)
            .await
            .map_err(EnvError::docker(format!("inspect {}", self.name)))?;
        let port = info
            .network_settings
            .and_then(|n| n.ports)
            .and_then(|ports| ports.get(&format!("{inner}/tcp")).cloned().flatten())
            .and_then(|bindings| bindings.into_iter().find_map(|b| b.host_port))
            .and_then(|p| p.parse().ok());
        *self.host_port.lock().unwrap_or_else(|e| e.into_inner()) = port;
        Ok(())
    }

    async fn logs(&self, docker: &Docker, tail: Option<usize>) -> String {
        let options = LogsOptions {
            stdout: true,
            stderr: true,
            tail: tail.map_or_else(|| "all".to_owned(), |n| n.to_string()),
            ..Default::default()
        };
        let chunks: Vec<_> = docker.logs(&self.name, Some(options)).collect().await;
        chunks
            .into_iter()
            .filter_map(Result::ok)
            .map(|c| c.to_string())
            .collect()
    }

    /// Writes the container's whole log to `<dir>/<component>.log`.
    pub(crate) async fn save_log(&self, docker: &Docker, dir: &Path) {
        let text = self.logs(docker, None).await;
        let component = self
            .name
            .splitn(3, '-')
            .nth(2)
            .unwrap_or(&self.name)
            .to_owned();
        let _ = std::fs::write(dir.join(format!("{component}.log")), text);
    }
}

impl Instance for DockerInstance {
    fn host(&self) -> String {
        self.host.clone()
    }

    fn host_port(&self) -> Option<u16> {
        *self.host_port.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn exit_status(&self) -> BoxFuture<'_, Result<Option<ExitInfo>, EnvError>> {
        async move {
            let info = self
                .docker
                .inspect_container(&self.name, None::<InspectContainerOptions>)
                .await
                .map_err(EnvError::docker(format!("inspect {}", self.name)))?;
            let Some(state) = info.state else {
                return Ok(None);
            };
            if state.running == Some(true) || state.restarting == Some(true) {
                return Ok(None);
            }
            // Created but not started yet counts as not exited.
            if state.exit_code.is_none()
                || state.status.map(|s| s.to_string()).as_deref() == Some("created")
            {
                return Ok(None);
            }
            let code = state.exit_code.unwrap_or(-1);
            Ok(Some(ExitInfo {
                success: code == 0,
                text: format!("exit code {code}"),
            }))
        }
        .boxed()
    }

    fn log_tail(&self, lines: usize) -> BoxFuture<'_, String> {
        async move { self.logs(&self.docker, Some(lines)).await }.boxed()
    }

    fn log_contains<'a>(&'a self, text: &'a str) -> BoxFuture<'a, bool> {
        async move { self.logs(&self.docker, None).await.contains(text) }.boxed()
    }

    fn kill(&self) -> BoxFuture<'_, Result<(), EnvError>> {
        async move {
            self.docker
                .kill_container(&self.name, None::<KillContainerOptions>)
                .await
                .map_err(EnvError::docker(format!("kill {}", self.name)))
        }
        .boxed()
    }

    fn pause(&self) -> BoxFuture<'_, Result<(), EnvError>> {
        async move {
            let mut attempt = 1;
            loop {
                match self.docker.pause_container(&self.name).await {
                    Ok(()) => return Ok(()),
                    Err(e) if attempt < FREEZE_ATTEMPTS && froze_too_slowly(&e) => {
                        tracing::debug!(container = %self.name, attempt, "pause: {e}; again");
                        attempt += 1;
                    }
                    Err(e) => return Err(EnvError::docker(format!("pause {}", self.name))(e)),
                }
            }
        }
        .boxed()
    }

    fn resume(&self) -> BoxFuture<'_, Result<(), EnvError>> {
        async move {
            self.docker
                .unpause_container(&self.name)
                .await
                .map_err(EnvError::docker(format!("unpause {}", self.name)))
        }
        .boxed()
    }

    fn restart(&self) -> BoxFuture<'_, Result<(), EnvError>> {
        self.restart_within(1)
    }

    fn restart_gracefully(&self) -> BoxFuture<'_, Result<(), EnvError>> {
        self.restart_within(GRACE_SECS)
    }
}

/// How long a graceful restart lets the program stop before SIGKILL.
const GRACE_SECS: i32 = 10;

/// How often `pause` asks again when the container's processes did not
/// freeze in the time runc gives them.
const FREEZE_ATTEMPTS: u32 = 5;

/// Whether a pause failed only because the cgroup freezer did not catch
/// every process in time, as happens on a loaded machine: runc then thaws
/// the container and leaves it running, so asking again is safe, and runc's
/// maintainers leave that retry to the caller.
fn froze_too_slowly(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError { status_code: 500, message }
            if message.contains("unable to freeze")
                || message.contains("waiting for the cgroup to freeze")
    )
}

impl DockerInstance {
    /// `docker restart` with `secs` between SIGTERM and SIGKILL.
    fn restart_within(&self, secs: i32) -> BoxFuture<'_, Result<(), EnvError>> {
        async move {
            self.docker
                .restart_container(
                    &self.name,
                    Some(RestartContainerOptions {
                        t: Some(secs),
                        ..Default::default()
                    }),
                )
                .await
                .map_err(EnvError::docker(format!("restart {}", self.name)))?;
            self.refresh_port().await
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server_error(status_code: u16, message: &str) -> bollard::errors::Error {
        bollard::errors::Error::DockerResponseServerError {
            status_code,
            message: message.to_owned(),
        }
    }

    #[test]
    fn a_freezer_that_was_too_slow_is_asked_again_and_nothing_else_is() {
        assert!(froze_too_slowly(&server_error(
            500,
            "Cannot pause container 5f29: OCI runtime pause failed: unable to freeze: unknown",
        )));
        assert!(froze_too_slowly(&server_error(
            500,
            "OCI runtime pause failed: timeout of 10s reached waiting for the cgroup to freeze",
        )));
        assert!(!froze_too_slowly(&server_error(
            409,
            "Container 5f29 is not running"
        )));
        assert!(!froze_too_slowly(&server_error(
            500,
            "OCI runtime pause failed: freezer not supported: openat2 cgroup.freeze: no such file",
        )));
        assert!(!froze_too_slowly(&server_error(404, "No such container")));
    }
}
