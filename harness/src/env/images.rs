//! `tekup-harness images build`: the docker runtime's images without a
//! registry.
//!
//! One Debian root filesystem is made from packages (mmdebstrap, or
//! debootstrap when mmdebstrap is missing) with PostgreSQL, Redis,
//! Prometheus and CA certificates, imported once (`docker import`, through
//! the API) and given four configurations (`docker commit --change`):
//!
//! - `tekup-harness/postgres:15`: the official image's contract
//!   (`images/postgres/docker-entrypoint.sh`);
//! - `tekup-harness/redis:7`: `redis-server --protected-mode no`;
//! - `tekup-harness/prometheus:2`: Debian's Prometheus (2.42 on bookworm)
//!   with the official `prom/prometheus` image's contract: the server as
//!   entrypoint, its flags as the command, user `nobody`, data in
//!   `/prometheus` (see [`super::prometheus`] for what the docker runtime
//!   passes it);
//! - `tekup-harness/runtime:bookworm`: the base that service binaries are
//!   copied into (same Debian release as the build machine's binaries need).
//!
//! The four images share one layer: each carries servers it does not use
//! (Prometheus and the web libraries of its pages add about 110 MB to a
//! layer stored once), and the
//! build downloads and installs packages once, which is what makes it fit
//! in CI. A layer per server would store the Debian base four times over
//! and take four package installs.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use bollard::query_parameters::CreateImageOptions;
use futures::StreamExt as _;

use super::docker;
use super::error::EnvError;
use super::process::which;

/// What to build.
#[derive(Debug, Clone)]
#[must_use]
pub struct ImageBuild {
    /// Debian release (must match the glibc the service binaries were built against).
    pub suite: String,
    /// Debian mirror.
    pub mirror: String,
    /// Directory holding `postgres/docker-entrypoint.sh`.
    pub images_dir: PathBuf,
    /// Names of the four images.
    pub postgres: String,
    pub redis: String,
    pub prometheus: String,
    pub runtime: String,
    /// Build the root filesystem again even when a cached one matches.
    pub rebuild: bool,
}

impl ImageBuild {
    /// The images the default ecosystem file names as `offline-image`.
    pub fn new(images_dir: impl Into<PathBuf>) -> Self {
        Self {
            suite: "bookworm".into(),
            mirror: "http://deb.debian.org/debian".into(),
            images_dir: images_dir.into(),
            postgres: "tekup-harness/postgres:15".into(),
            redis: "tekup-harness/redis:7".into(),
            prometheus: "tekup-harness/prometheus:2".into(),
            runtime: "tekup-harness/runtime:bookworm".into(),
            rebuild: false,
        }
    }

    /// Every image [`build`] makes (the harness image aside).
    pub fn images(&self) -> [&String; 4] {
        [&self.postgres, &self.redis, &self.prometheus, &self.runtime]
    }
}

const PACKAGES: &str = "postgresql-15,redis-server,prometheus,ca-certificates,tzdata,procps";

/// Builds the images; `progress` hears each step. Returns the images and
/// how long each step took.
pub async fn build(
    options: &ImageBuild,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<Vec<(String, Duration)>, EnvError> {
    let entrypoint = options.images_dir.join("postgres/docker-entrypoint.sh");
    if !entrypoint.is_file() {
        return Err(EnvError::other(
            "find the Postgres entrypoint",
            format!("{} is missing", entrypoint.display()),
        ));
    }
    let entrypoint = entrypoint
        .canonicalize()
        .map_err(EnvError::io(format!("resolve {}", entrypoint.display())))?;
    let docker = docker::connect().await?;
    let tarball = cached_rootfs_path(options, &entrypoint)?;
    let mut timings = Vec::new();
    let started = Instant::now();
    let rootfs = if tarball.is_file() && !options.rebuild {
        progress(&format!(
            "reusing the root filesystem {}",
            tarball.display()
        ));
        tarball
    } else {
        progress(&format!(
            "building a Debian {} root filesystem ({PACKAGES}) from {}",
            options.suite, options.mirror
        ));
        let (entrypoint, options2) = (entrypoint.clone(), options.clone());
        tokio::task::spawn_blocking(move || rootfs(&options2, &entrypoint, &tarball))
            .await
            .map_err(|e| EnvError::other("build the root filesystem", e))??
    };
    timings.push(("root filesystem".to_owned(), started.elapsed()));
    let path =
        "/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    let images = [
        (
            &options.postgres,
            vec![
                format!("ENV PATH={path}"),
                "ENV PGDATA=/var/lib/postgresql/data".to_owned(),
                "ENV LANG=C.UTF-8".to_owned(),
                "ENTRYPOINT [\"docker-entrypoint.sh\"]".to_owned(),
                "CMD [\"postgres\"]".to_owned(),
                "EXPOSE 5432".to_owned(),
            ],
        ),
        (
            &options.redis,
            vec![
                "CMD [\"redis-server\", \"--protected-mode\", \"no\"]".to_owned(),
                "EXPOSE 6379".to_owned(),
            ],
        ),
        (
            &options.prometheus,
            vec![
                // The official image's contract: the server as entrypoint,
                // flags as the command, its data in /prometheus as nobody.
                "USER nobody".to_owned(),
                "WORKDIR /prometheus".to_owned(),
                "ENTRYPOINT [\"/usr/bin/prometheus\"]".to_owned(),
                "CMD [\"--config.file=/etc/prometheus/prometheus.yml\", \"--storage.tsdb.path=/prometheus\"]".to_owned(),
                "EXPOSE 9090".to_owned(),
            ],
        ),
        (
            &options.runtime,
            vec![
                "ENV LANG=C.UTF-8".to_owned(),
                "CMD [\"/bin/bash\"]".to_owned(),
            ],
        ),
    ];
    // Images these tags name now are replaced; remove them afterwards.
    let mut replaced = Vec::new();
    for image in options.images() {
        if let Ok(found) = docker.inspect_image(image).await {
            replaced.extend(found.id);
        }
    }
    // One import; the other images share its layer and differ in config only.
    let [postgres, redis, prometheus, runtime] = images;
    let step = Instant::now();
    progress(&format!("docker import {}", runtime.0));
    import(&docker, &rootfs, runtime.0, runtime.1).await?;
    timings.push((runtime.0.clone(), step.elapsed()));
    for (image, changes) in [postgres, redis, prometheus] {
        let step = Instant::now();
        progress(&format!("docker commit {image} (from {})", runtime.0));
        derive(&docker, runtime.0, image, &changes).await?;
        timings.push((image.clone(), step.elapsed()));
    }
    // Program images are built on the old runtime image, snapshot images
    // on the old Postgres image: drop them so the old images can go (the
    // next docker start makes new ones).
    let _ = docker::remove_program_images().await;
    let _ = docker::remove_snapshot_images().await;
    for id in replaced {
        // Fails, harmlessly, while a container or a program image uses it.
        let _ = docker
            .remove_image(
                &id,
                None::<bollard::query_parameters::RemoveImageOptions>,
                None,
            )
            .await;
    }
    Ok(timings)
}

/// Makes `image` from `base` with other configuration (`docker commit
/// --change` of a created, never started container).
async fn derive(
    docker: &bollard::Docker,
    base: &str,
    image: &str,
    changes: &[String],
) -> Result<(), EnvError> {
    use bollard::models::{ContainerConfig, ContainerCreateBody};
    use bollard::query_parameters::{CommitContainerOptions, RemoveContainerOptions};
    let (repo, tag) = image.rsplit_once(':').unwrap_or((image, "latest"));
    let scratch = docker
        .create_container(
            None::<bollard::query_parameters::CreateContainerOptions>,
            ContainerCreateBody {
                image: Some(base.to_owned()),
                ..Default::default()
            },
        )
        .await
        .map_err(EnvError::docker(format!("create a container from {base}")))?
        .id;
    let committed = docker
        .commit_container(
            CommitContainerOptions {
                container: Some(scratch.clone()),
                repo: Some(repo.to_owned()),
                tag: Some(tag.to_owned()),
                changes: Some(changes.join("\n")),
                ..Default::default()
            },
            ContainerConfig::default(),
        )
        .await
        .map_err(EnvError::docker(format!("commit {image}")));
    let _ = docker
        .remove_container(
            &scratch,
            Some(RemoveContainerOptions {
                force: true,
                ..Default::default()
            }),
        )
        .await;
    committed.map(|_| ())
}

/// Where the root filesystem of these options is cached: keyed by the
/// suite, packages, mirror, entrypoint and what is done after the
/// install, so a changed input rebuilds.
fn cached_rootfs_path(options: &ImageBuild, entrypoint: &Path) -> Result<PathBuf, EnvError> {
    use std::hash::{Hash as _, Hasher as _};
    let script = std::fs::read(entrypoint).map_err(EnvError::io("read the entrypoint"))?;
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (
        &options.suite,
        &options.mirror,
        PACKAGES,
        CUSTOMIZE,
        EXCLUDES,
        script,
    )
        .hash(&mut hasher);
    let cache = std::env::var_os("TEKUP_CACHE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("tekup-harness-cache"));
    std::fs::create_dir_all(&cache).map_err(EnvError::io(format!("create {}", cache.display())))?;
    Ok(cache.join(format!(
        "rootfs-{}-{:016x}.tar",
        options.suite,
        hasher.finish()
    )))
}

fn rootfs(options: &ImageBuild, entrypoint: &Path, tarball: &Path) -> Result<PathBuf, EnvError> {
    // Build next to the final name, then rename: a cut-short build is never reused.
    let partial = tarball.with_extension("partial.tar");
    let result = build_rootfs(options, entrypoint, &partial);
    match result {
        Ok(()) => std::fs::rename(&partial, tarball)
            .map(|()| tarball.to_path_buf())
            .map_err(EnvError::io("move the root filesystem into the cache")),
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            Err(e)
        }
    }
}

/// What is done to the root filesystem after the packages are in (`$1`
/// is its directory, `{ep}` the Postgres entrypoint): the Postgres image's
/// directories, the cluster `initdb` makes for the image contract's default
/// user and authentication with a database `tekup_seed`, in
/// `/var/lib/postgresql/seed`, marked `tekup-seed` (the entrypoint links
/// `PGDATA` to it, sets its password and renames the database instead of
/// running `initdb` on every start; a root filesystem where `initdb` cannot
/// run in a chroot goes without it), Prometheus's data directory for
/// `nobody` (the official image's user), and no package caches. moment-timezone's per-zone files
/// (212 MB, a dependency of Prometheus's pages) go: the pages load only
/// `moment-timezone-with-data.min.js`, which stays.
const CUSTOMIZE: &str = "install -m 755 {ep} \"$1/usr/local/bin/docker-entrypoint.sh\" && \
     rm -rf \"$1/var/lib/postgresql/15/main\" \"$1/etc/postgresql/15/main\" && \
     mkdir -p \"$1/docker-entrypoint-initdb.d\" \"$1/var/run/postgresql\" && \
     mkdir -p \"$1/prometheus\" && chown 65534:65534 \"$1/prometheus\" && \
     rm -rf \"$1/usr/share/javascript/moment-timezone/data\" && \
     rm -rf \"$1/var/cache/apt/archives\"/*.deb \"$1/var/lib/apt/lists\"/* && \
     { printf 'seed\\n' > \"$1/tmp/seed-pw\" && chmod 644 \"$1/tmp/seed-pw\" && \
       chroot \"$1\" setpriv --reuid=postgres --regid=postgres --init-groups \
         /usr/lib/postgresql/15/bin/initdb -D /var/lib/postgresql/seed --username=postgres \
         --pwfile=/tmp/seed-pw --encoding=UTF8 --locale=C.UTF-8 --auth-local=trust \
         --auth-host=scram-sha-256 --no-sync >/dev/null 2>&1 && \
       printf 'CREATE DATABASE tekup_seed\\n' | chroot \"$1\" setpriv --reuid=postgres \
         --regid=postgres --init-groups /usr/lib/postgresql/15/bin/postgres --single \
         -D /var/lib/postgresql/seed -c fsync=off postgres >/dev/null 2>&1 && \
       chroot \"$1\" setpriv --reuid=postgres --regid=postgres --init-groups \
         touch /var/lib/postgresql/seed/tekup-seed \
       || rm -rf \"$1/var/lib/postgresql/seed\"; rm -f \"$1/tmp/seed-pw\"; \
       mkdir -p \"$1/var/lib/postgresql/data\"; }";

/// Files dpkg leaves out (mmdebstrap only).
const EXCLUDES: [&str; 4] = [
    "path-exclude=/usr/share/doc/*",
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/locale/*",
    "path-exclude=/usr/share/info/*",
];

fn build_rootfs(options: &ImageBuild, entrypoint: &Path, tarball: &Path) -> Result<(), EnvError> {
    let customize = CUSTOMIZE.replace("{ep}", &shell_quote(&entrypoint.display().to_string()));
    let output = if which("mmdebstrap").is_some() {
        let mut cmd = Command::new("mmdebstrap");
        cmd.args(["--variant=minbase", "--quiet"])
            .arg(format!("--include={PACKAGES}"))
            .arg(format!("--customize-hook={customize}"));
        for e in EXCLUDES {
            cmd.arg(format!("--dpkgopt={e}"));
        }
        cmd.arg(&options.suite).arg(tarball).arg(&options.mirror);
        cmd.output()
    } else if which("debootstrap").is_some() {
        let dir = tarball.with_extension("d");
        let boot = Command::new("debootstrap")
            .args(["--variant=minbase"])
            .arg(format!("--include={PACKAGES}"))
            .arg(&options.suite)
            .arg(&dir)
            .arg(&options.mirror)
            .output()
            .map_err(EnvError::io("run debootstrap"))?;
        if !boot.status.success() {
            return Err(failed("debootstrap", &boot));
        }
        Command::new("sh")
            .arg("-c")
            .arg(format!(
                "set -e; {customize}; tar -C \"$1\" -cf {} .",
                shell_quote(&tarball.display().to_string())
            ))
            .arg("sh")
            .arg(&dir)
            .output()
    } else {
        return Err(EnvError::other(
            "build the root filesystem",
            "neither mmdebstrap nor debootstrap is installed (Debian: apt-get install mmdebstrap)",
        ));
    }
    .map_err(EnvError::io("run mmdebstrap"))?;
    if !output.status.success() {
        return Err(failed("mmdebstrap/debootstrap", &output));
    }
    Ok(())
}

fn failed(tool: &str, out: &std::process::Output) -> EnvError {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let tail: Vec<&str> = text.lines().rev().take(30).collect();
    EnvError::other(
        format!("build the root filesystem with {tool} ({})", out.status),
        tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
    )
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

async fn import(
    docker: &bollard::Docker,
    tarball: &Path,
    image: &str,
    changes: Vec<String>,
) -> Result<(), EnvError> {
    let (repo, tag) = image.rsplit_once(':').unwrap_or((image, "latest"));
    let file = tokio::fs::File::open(tarball)
        .await
        .map_err(EnvError::io(format!("open {}", tarball.display())))?;
    let body = bollard::body_try_stream(tokio_util::io::ReaderStream::new(file));
    let options = CreateImageOptions {
        from_src: Some("-".into()),
        repo: Some(repo.into()),
        tag: Some(tag.into()),
        changes,
        ..Default::default()
    };
    let mut stream = docker.create_image(Some(options), Some(body), None);
    while let Some(item) = stream.next().await {
        let info = item.map_err(EnvError::docker(format!("import {image}")))?;
        if let Some(error) = info.error_detail.and_then(|d| d.message) {
            return Err(EnvError::other(format!("import {image}"), error));
        }
    }
    Ok(())
}

/// Which of the offline images exist locally.
pub async fn present(options: &ImageBuild) -> Result<Vec<(String, bool)>, EnvError> {
    let docker = docker::connect().await?;
    let mut out = Vec::new();
    for image in options.images() {
        out.push((image.clone(), docker::image_exists(&docker, image).await));
    }
    Ok(out)
}
