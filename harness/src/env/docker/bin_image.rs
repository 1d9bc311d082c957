//! Runtime images with a program copied in, cached between runs.
//!
//! Copying a 150 MB debug binary through the API into every container of
//! every run dominates a docker start. Instead, each program is copied once
//! into an image derived from the runtime image (`docker commit` of a
//! created, never started container), tagged by the program's path, size and
//! modification time and the runtime image's id. Later runs reuse it; a
//! rebuilt binary gets a new image and the harness removes the old ones.

use std::hash::{Hash as _, Hasher as _};
use std::path::Path;

use bollard::models::{ContainerConfig, ContainerCreateBody};
use bollard::query_parameters::{
    CommitContainerOptions, CreateContainerOptions, RemoveContainerOptions, RemoveImageOptions,
    UploadToContainerOptions,
};
use bollard::Docker;

use super::super::error::EnvError;

const REPO: &str = "tekup-harness/bin";
const PROGRAM_LABEL: &str = "tekup-harness.program";

/// One image creation at a time in this process: ecosystems started side
/// by side (tests, `--jobs`) want the same program images, and two
/// creations of one image would race for its scratch container's name.
/// Finding an image that exists takes no lock: the components of one
/// start look for theirs at once (a lock around the look-up held the
/// Postgres's container back behind the mocks' look-ups).
static CREATING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Returns an image holding `program` at `/tekup/bin/<name>` on top of
/// `base`, creating it when missing.
pub(super) async fn ensure(
    docker: &Docker,
    base: &str,
    program: &Path,
) -> Result<String, EnvError> {
    let name = program
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let meta =
        std::fs::metadata(program).map_err(EnvError::io(format!("read {}", program.display())))?;
    let base_id = docker
        .inspect_image(base)
        .await
        .map_err(EnvError::docker(format!("inspect {base}")))?
        .id
        .unwrap_or_default();
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (program, meta.len(), meta.modified().ok(), &base_id).hash(&mut hasher);
    let tag = format!("{name}-{:016x}", hasher.finish());
    let image = format!("{REPO}:{tag}");
    if super::image_exists(docker, &image).await {
        return Ok(image);
    }
    let _one_at_a_time = CREATING.lock().await;
    // Made meanwhile by a start that held the lock.
    if super::image_exists(docker, &image).await {
        return Ok(image);
    }
    let scratch = format!("tekup-bin-{tag}-{}", std::process::id());
    docker
        .create_container(
            Some(CreateContainerOptions {
                name: Some(scratch.clone()),
                ..Default::default()
            }),
            ContainerCreateBody {
                image: Some(base.to_owned()),
                labels: Some([(super::LABEL.to_owned(), "1".to_owned())].into()),
                ..Default::default()
            },
        )
        .await
        .map_err(EnvError::docker(format!("create a container from {base}")))?;
    let result = copy_and_commit(docker, &scratch, program, &name, &tag).await;
    let _ = docker
        .remove_container(
            &scratch,
            Some(RemoveContainerOptions {
                force: true,
                ..Default::default()
            }),
        )
        .await;
    result?;
    remove_stale(docker, &name, &image).await;
    Ok(image)
}

async fn copy_and_commit(
    docker: &Docker,
    scratch: &str,
    program: &Path,
    name: &str,
    tag: &str,
) -> Result<(), EnvError> {
    let program_owned = program.to_path_buf();
    let archive = tokio::task::spawn_blocking(move || {
        super::archive::build_archive(Some(&program_owned), &[])
    })
    .await
    .map_err(|e| EnvError::other("pack the program", e))?
    .map_err(EnvError::io("pack the program into a tar archive"))?;
    docker
        .upload_to_container(
            scratch,
            Some(UploadToContainerOptions {
                path: "/".into(),
                ..Default::default()
            }),
            bollard::body_full(archive.into()),
        )
        .await
        .map_err(EnvError::docker(format!(
            "copy {} into the runtime image",
            program.display()
        )))?;
    docker
        .commit_container(
            CommitContainerOptions {
                container: Some(scratch.to_owned()),
                repo: Some(REPO.to_owned()),
                tag: Some(tag.to_owned()),
                changes: Some(format!("LABEL {PROGRAM_LABEL}={name}")),
                ..Default::default()
            },
            ContainerConfig::default(),
        )
        .await
        .map_err(EnvError::docker(format!("commit the image {REPO}:{tag}")))?;
    Ok(())
}

/// Removes older images of the same program (unused ones; an image still
/// used by a running container stays).
async fn remove_stale(docker: &Docker, name: &str, keep: &str) {
    let Ok(images) =
        super::clean::labelled_images(docker, &format!("{PROGRAM_LABEL}={name}")).await
    else {
        return;
    };
    for image in images {
        if image.repo_tags.iter().any(|t| t == keep) {
            continue;
        }
        let _ = docker
            .remove_image(&image.id, None::<RemoveImageOptions>, None)
            .await;
    }
}

/// Removes every cached program image (the next docker start copies the
/// programs again); returns how many went.
pub async fn remove_program_images() -> Result<usize, EnvError> {
    super::clean::remove_labelled_images(PROGRAM_LABEL, "program images").await
}
