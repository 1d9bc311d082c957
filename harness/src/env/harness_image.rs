//! `tekup-harness/harness`: the harness itself in an image, for load
//! generators run as containers (N of them on one Docker host, or the
//! pods of a Kubernetes Indexed Job, `deploy/`).
//!
//! Built without a registry like the other offline images: the
//! `tekup-harness` binary is copied into a created, never started container
//! of the runtime image (`tekup-harness/runtime:bookworm`, Debian packages
//! by mmdebstrap, see [`super::images`]) and committed with the binary as
//! entrypoint. The image is labelled with a key of the binary (path, size,
//! modification time) and the runtime image's id, so [`HarnessImage::ensure`]
//! rebuilds it only when either changed.
//!
//! The binary is found the way the program images find theirs (see
//! [`super::binaries`]): `$TEKUP_BIN_DIR`, next to the running executable,
//! the cargo target directories, `PATH`.

use std::hash::{Hash as _, Hasher as _};
use std::path::{Path, PathBuf};

use bollard::models::{ContainerConfig, ContainerCreateBody};
use bollard::query_parameters::{
    CommitContainerOptions, CreateContainerOptions, RemoveContainerOptions, RemoveImageOptions,
    UploadToContainerOptions,
};

use super::error::EnvError;

/// The image's name.
pub const IMAGE: &str = "tekup-harness/harness:latest";
/// Where the binary is in the image.
pub const BINARY_IN_IMAGE: &str = "/usr/local/bin/tekup-harness";
/// The label holding the key of the binary and base the image was made from.
const KEY_LABEL: &str = "tekup-harness.harness-key";

/// The harness image to make: `binary` on `base`, named `image`.
#[derive(Debug, Clone)]
#[must_use]
pub struct HarnessImage {
    pub image: String,
    pub base: String,
    pub binary: PathBuf,
}

impl HarnessImage {
    /// [`IMAGE`] from `binary` on the runtime image `base`.
    pub fn new(binary: impl Into<PathBuf>, base: impl Into<String>) -> Self {
        Self {
            image: IMAGE.to_owned(),
            base: base.into(),
            binary: binary.into(),
        }
    }

    /// Makes the image unless one from the same binary and base exists;
    /// returns whether it was made. `progress` hears what is done.
    pub async fn ensure(&self, progress: &(dyn Fn(&str) + Sync)) -> Result<bool, EnvError> {
        let docker = super::docker::connect().await?;
        let base_id = docker
            .inspect_image(&self.base)
            .await
            .map_err(|e| {
                EnvError::other(
                    format!("find the runtime image {}", self.base),
                    format!(
                        "{e}; it is built by `tekup-harness images build` (from Debian packages)"
                    ),
                )
            })?
            .id
            .unwrap_or_default();
        let key = self.key(&base_id)?;
        let old = docker.inspect_image(&self.image).await.ok();
        let old_key = old
            .as_ref()
            .and_then(|i| i.config.as_ref()?.labels.as_ref()?.get(KEY_LABEL).cloned());
        if old_key.as_deref() == Some(key.as_str()) {
            return Ok(false);
        }
        progress(&format!(
            "docker commit {} ({} on {})",
            self.image,
            self.binary.display(),
            self.base
        ));
        self.make(&docker, &key).await?;
        if let Some(id) = old.and_then(|i| i.id) {
            // The tag has moved on; the old image goes unless a container uses it.
            let _ = docker
                .remove_image(&id, None::<RemoveImageOptions>, None)
                .await;
        }
        Ok(true)
    }

    fn key(&self, base_id: &str) -> Result<String, EnvError> {
        let meta = std::fs::metadata(&self.binary).map_err(|e| {
            EnvError::other(
                format!("read the harness binary {}", self.binary.display()),
                format!("{e}; build it with `cargo build -p tekup-harness`"),
            )
        })?;
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        (&self.binary, meta.len(), meta.modified().ok(), base_id).hash(&mut hasher);
        Ok(format!("{:016x}", hasher.finish()))
    }

    async fn make(&self, docker: &bollard::Docker, key: &str) -> Result<(), EnvError> {
        let scratch = format!("tekup-harness-image-{key}-{}", std::process::id());
        docker
            .create_container(
                Some(CreateContainerOptions {
                    name: Some(scratch.clone()),
                    ..Default::default()
                }),
                ContainerCreateBody {
                    image: Some(self.base.clone()),
                    ..Default::default()
                },
            )
            .await
            .map_err(EnvError::docker(format!(
                "create a container from {}",
                self.base
            )))?;
        let made = self.copy_and_commit(docker, &scratch, key).await;
        let _ = docker
            .remove_container(
                &scratch,
                Some(RemoveContainerOptions {
                    force: true,
                    ..Default::default()
                }),
            )
            .await;
        made
    }

    async fn copy_and_commit(
        &self,
        docker: &bollard::Docker,
        scratch: &str,
        key: &str,
    ) -> Result<(), EnvError> {
        let binary = self.binary.clone();
        let archive = tokio::task::spawn_blocking(move || pack(&binary))
            .await
            .map_err(|e| EnvError::other("pack the harness binary", e))??;
        let file = tokio::fs::File::open(archive.path())
            .await
            .map_err(EnvError::io("open the packed harness binary"))?;
        docker
            .upload_to_container(
                scratch,
                Some(UploadToContainerOptions {
                    path: "/".into(),
                    ..Default::default()
                }),
                bollard::body_try_stream(tokio_util::io::ReaderStream::new(file)),
            )
            .await
            .map_err(EnvError::docker(format!(
                "copy {} into {}",
                self.binary.display(),
                self.base
            )))?;
        let (repo, tag) = self
            .image
            .rsplit_once(':')
            .unwrap_or((self.image.as_str(), "latest"));
        let changes = [
            format!("ENTRYPOINT [\"{BINARY_IN_IMAGE}\"]"),
            "CMD [\"--help\"]".to_owned(),
            "WORKDIR /work".to_owned(),
            "ENV LANG=C.UTF-8".to_owned(),
            format!("ENV TEKUP_HARNESS_BIN={BINARY_IN_IMAGE}"),
            format!("LABEL {KEY_LABEL}={key}"),
        ];
        docker
            .commit_container(
                CommitContainerOptions {
                    container: Some(scratch.to_owned()),
                    repo: Some(repo.to_owned()),
                    tag: Some(tag.to_owned()),
                    changes: Some(changes.join("\n")),
                    ..Default::default()
                },
                ContainerConfig::default(),
            )
            .await
            .map_err(EnvError::docker(format!("commit {}", self.image)))?;
        Ok(())
    }
}

/// A tar archive (in a temporary file: the binary is large) holding
/// `binary` at [`BINARY_IN_IMAGE`] and an empty `/work`.
fn pack(binary: &Path) -> Result<tempfile::NamedTempFile, EnvError> {
    let file = tempfile::NamedTempFile::new().map_err(EnvError::io("create a temporary file"))?;
    let mut tar = tar::Builder::new(
        file.reopen()
            .map_err(EnvError::io("open a temporary file"))?,
    );
    let mut dir = tar::Header::new_gnu();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_mode(0o755);
    dir.set_size(0);
    tar.append_data(&mut dir, "work/", std::io::empty())
        .map_err(EnvError::io("pack /work"))?;
    let mut source =
        std::fs::File::open(binary).map_err(EnvError::io(format!("open {}", binary.display())))?;
    let len = source
        .metadata()
        .map_err(EnvError::io(format!("read {}", binary.display())))?
        .len();
    let mut header = tar::Header::new_gnu();
    header.set_size(len);
    header.set_mode(0o755);
    tar.append_data(
        &mut header,
        BINARY_IN_IMAGE.trim_start_matches('/'),
        &mut source,
    )
    .map_err(EnvError::io(format!("pack {}", binary.display())))?;
    tar.into_inner()
        .map_err(EnvError::io("finish the tar archive"))?;
    Ok(file)
}

/// The `tekup-harness` binary to put in the image, found where the program
/// images' binaries are; the error says how to build it.
pub fn find_binary() -> Result<PathBuf, EnvError> {
    let cwd = std::env::current_dir().unwrap_or_default();
    let workspace = super::binaries::workspace_root(&cwd);
    let dirs = super::binaries::search_dirs(workspace.as_deref());
    dirs.iter()
        .map(|d| d.join("tekup-harness"))
        .find(|p| p.is_file())
        .ok_or_else(|| EnvError::ProgramNotFound {
            component: "the harness image".into(),
            program: "tekup-harness".into(),
            searched: dirs
                .iter()
                .take(8)
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            hint: "build it with `cargo build -p tekup-harness`".into(),
        })
}

/// Whether the harness image exists.
pub async fn present(image: &str) -> Result<bool, EnvError> {
    let docker = super::docker::connect().await?;
    Ok(super::docker::image_exists(&docker, image).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_archive_holds_the_binary_executable_at_its_place() {
        let dir = tempfile::tempdir().unwrap();
        let binary = dir.path().join("tekup-harness");
        let script = b"#!/bin/sh\necho hi\n";
        std::fs::write(&binary, script).unwrap();
        let packed = pack(&binary).unwrap();
        let mut archive = tar::Archive::new(std::fs::File::open(packed.path()).unwrap());
        let entries: Vec<(String, u32, u64)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let path = e.path().unwrap().display().to_string();
                (path, e.header().mode().unwrap(), e.header().size().unwrap())
            })
            .collect();
        assert_eq!(
            entries,
            [
                ("work/".to_owned(), 0o755, 0),
                (
                    "usr/local/bin/tekup-harness".to_owned(),
                    0o755,
                    script.len() as u64
                )
            ]
        );
    }

    #[test]
    fn a_missing_binary_is_named_with_the_build_command() {
        let image = HarnessImage::new("/nonexistent/tekup-harness", "base");
        let err = super::super::error_chain(&image.key("id").unwrap_err());
        assert!(err.contains("/nonexistent/tekup-harness"), "{err}");
        assert!(err.contains("cargo build -p tekup-harness"), "{err}");
    }
}
