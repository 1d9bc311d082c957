//! Talking to the daemon outside one run: is docker usable, pulling,
//! removing runs (teardown, `down`, the reaper).

use std::collections::HashMap;
use std::io::Read as _;
use std::time::Duration;

use bollard::query_parameters::{
    CreateImageOptions, ListContainersOptions, ListNetworksOptions, RemoveContainerOptions,
};
use bollard::Docker;
use futures::StreamExt as _;

use super::super::error::EnvError;
use super::super::model::EcosystemFile;
use super::{LABEL, RUN_LABEL};

/// Connects to the daemon named by `DOCKER_HOST` (or the local socket) and
/// negotiates the API version.
pub async fn connect() -> Result<Docker, EnvError> {
    let docker = Docker::connect_with_defaults().map_err(EnvError::docker(
        "connect to the daemon (DOCKER_HOST or /var/run/docker.sock)",
    ))?;
    tokio::time::timeout(Duration::from_secs(5), docker.negotiate_version())
        .await
        .map_err(|_| EnvError::other("reach the docker daemon", "no answer within 5s"))?
        .map_err(EnvError::docker(
            "reach the daemon (DOCKER_HOST or /var/run/docker.sock)",
        ))
}

pub(crate) async fn image_exists(docker: &Docker, image: &str) -> bool {
    docker.inspect_image(image).await.is_ok()
}

/// Pulls `image`, returning the daemon's complaint on failure.
pub(super) async fn pull(docker: &Docker, image: &str) -> Result<(), String> {
    let (from_image, tag) = match image.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => (name, tag),
        _ => (image, "latest"),
    };
    let options = CreateImageOptions {
        from_image: Some(from_image.to_owned()),
        tag: Some(tag.to_owned()),
        ..Default::default()
    };
    let mut stream = docker.create_image(Some(options), None, None);
    let pulling = async {
        while let Some(item) = stream.next().await {
            item.map_err(|e| e.to_string())?;
        }
        Ok(())
    };
    tokio::time::timeout(Duration::from_secs(300), pulling)
        .await
        .map_err(|_| "no progress within 300s".to_owned())?
}

/// Whether the docker runtime can start `file` here: a daemon answers and
/// every component's image exists locally. The text says why (not).
pub async fn usable(file: &EcosystemFile) -> Result<String, String> {
    let docker = connect().await.map_err(|e| {
        format!(
            "no docker daemon answers ({})",
            super::super::error_chain(&e)
        )
    })?;
    let version = docker.client_version();
    let mut missing = Vec::new();
    // The optional Prometheus counts too: `images build` makes its image
    // with the others, and a file that is not asked for it has left it out
    // before it gets here (`EcosystemFile::without_optional`).
    for c in file.components.values() {
        let mut found = false;
        for image in c.images() {
            if image_exists(&docker, image).await {
                found = true;
                break;
            }
        }
        if !found {
            let images: Vec<String> = c.images().cloned().collect();
            missing.push(if images.is_empty() {
                format!("{} (no `image` in the ecosystem file)", c.name)
            } else {
                format!("{} ({})", c.name, images.join(" or "))
            });
        }
    }
    if missing.is_empty() {
        Ok(format!(
            "a docker daemon answers (API {}.{}) and every image exists locally",
            version.major_version, version.minor_version
        ))
    } else {
        Err(format!(
            "a docker daemon answers but images are missing: {}; run `tekup-harness images build`",
            missing.join(", ")
        ))
    }
}

/// Removes the containers and networks of run `run` (every run of the
/// harness when `None`). Returns how many containers and networks went.
pub async fn remove_runs(docker: &Docker, run: Option<&str>) -> Result<(usize, usize), EnvError> {
    let label = match run {
        Some(run) => format!("{RUN_LABEL}={run}"),
        None => LABEL.to_owned(),
    };
    let filters = HashMap::from([("label".to_owned(), vec![label])]);
    let containers = docker
        .list_containers(Some(ListContainersOptions {
            all: true,
            filters: Some(filters.clone()),
            ..Default::default()
        }))
        .await
        .map_err(EnvError::docker("list the harness's containers"))?;
    let removals = containers.iter().filter_map(|c| c.id.as_deref()).map(|id| {
        docker.remove_container(
            id,
            Some(RemoveContainerOptions {
                force: true,
                v: true,
                ..Default::default()
            }),
        )
    });
    let removed = futures::future::join_all(removals)
        .await
        .into_iter()
        .filter(Result::is_ok)
        .count();
    let networks = docker
        .list_networks(Some(ListNetworksOptions {
            filters: Some(filters),
        }))
        .await
        .map_err(EnvError::docker("list the harness's networks"))?;
    let mut networks_removed = 0;
    for n in networks.iter().filter_map(|n| n.id.as_deref()) {
        if docker.remove_network(n).await.is_ok() {
            networks_removed += 1;
        }
    }
    Ok((removed, networks_removed))
}

/// The reaper: waits until standard input closes (the harness that started
/// it has exited, however), then removes run `run`.
pub async fn reap(run: &str) -> Result<(usize, usize), EnvError> {
    tokio::task::spawn_blocking(|| {
        let mut sink = [0u8; 64];
        let mut stdin = std::io::stdin();
        while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
    })
    .await
    .map_err(|e| EnvError::other("wait for the harness", e))?;
    let docker = connect().await?;
    remove_runs(&docker, Some(run)).await
}

/// How many containers and networks of run `run` exist.
pub async fn run_resources(run: &str) -> Result<(usize, usize), EnvError> {
    let docker = connect().await?;
    let filters = HashMap::from([("label".to_owned(), vec![format!("{RUN_LABEL}={run}")])]);
    let containers = docker
        .list_containers(Some(ListContainersOptions {
            all: true,
            filters: Some(filters.clone()),
            ..Default::default()
        }))
        .await
        .map_err(EnvError::docker("list the run's containers"))?;
    let networks = docker
        .list_networks(Some(ListNetworksOptions {
            filters: Some(filters),
        }))
        .await
        .map_err(EnvError::docker("list the run's networks"))?;
    Ok((containers.len(), networks.len()))
}

/// The images carrying `label` (`key=value`, or a key alone: any value).
pub(super) async fn labelled_images(
    docker: &Docker,
    label: &str,
) -> Result<Vec<bollard::models::ImageSummary>, bollard::errors::Error> {
    let filters = [("label".to_owned(), vec![label.to_owned()])].into();
    docker
        .list_images(Some(bollard::query_parameters::ListImagesOptions {
            filters: Some(filters),
            ..Default::default()
        }))
        .await
}

/// Removes every image labelled `label` (forced: a stopped container of
/// it does not keep it); returns how many went. `what` names them in the
/// error when they cannot be listed.
pub(super) async fn remove_labelled_images(label: &str, what: &str) -> Result<usize, EnvError> {
    let docker = connect().await?;
    let images = labelled_images(&docker, label)
        .await
        .map_err(EnvError::docker(format!("list the {what}")))?;
    let mut removed = 0;
    for image in images {
        let options = bollard::query_parameters::RemoveImageOptions {
            force: true,
            ..Default::default()
        };
        let gone = docker.remove_image(&image.id, Some(options), None).await;
        removed += usize::from(gone.is_ok());
    }
    Ok(removed)
}
