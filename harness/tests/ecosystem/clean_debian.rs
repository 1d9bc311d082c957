//! A fresh machine: the built binaries copied into a clean Debian
//! container that has neither PostgreSQL nor Redis, where the README's
//! main command (`tekup-harness run`) installs both with apt-get and
//! passes every scenario.
//!
//! The clean image (`tekup-harness/fresh:bookworm`, Debian's `minbase`
//! with empty package lists, as a Debian container starts) is made with
//! mmdebstrap on first use, no registry needed, and kept; its root
//! filesystem is cached in `$TEKUP_CACHE_DIR`. apt-get inside the
//! container reaches the Debian mirror through docker's default bridge.
//! The binaries are the ones this test run built (`$TEKUP_BIN_DIR` for
//! the services and mocks and `$TEKUP_HARNESS_BIN` for the harness, when
//! set).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecResults};
use bollard::models::ContainerCreateBody;
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, RemoveContainerOptions, UploadToContainerOptions,
};
use bollard::Docker;
use futures::StreamExt as _;
use tekup_harness::env::{docker, provision};

use crate::common::workspace;

const IMAGE: &str = "tekup-harness/fresh:bookworm";
const MIRROR: &str = "http://deb.debian.org/debian";
/// The whole test's bound: the image (about 80 s the first time), the
/// installs (under a minute) and the suite (one to two minutes), with room
/// for a loaded machine.
const BOUND: Duration = Duration::from_secs(20 * 60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_main_command_installs_postgres_and_redis_on_a_clean_debian_and_passes() {
    let started = Instant::now();
    tokio::time::timeout(BOUND, fresh_machine())
        .await
        .unwrap_or_else(|_| panic!("the fresh-machine test took over {BOUND:?}"));
    say(&format!("done in {:.0?}", started.elapsed()));
}

async fn fresh_machine() {
    let docker = docker::connect()
        .await
        .unwrap_or_else(|e| panic!("this test needs a docker daemon: {e}"));
    ensure_image(&docker).await;
    let container = Container::create(&docker).await;
    container.copy_in(&payload()).await;

    // Nothing there to begin with, and nothing installed when told not to.
    let absent = container
        .exec(
            "root",
            &[
                "sh",
                "-c",
                "command -v redis-server initdb || ls /usr/lib/postgresql",
            ],
        )
        .await;
    assert_ne!(absent.code, 0, "a clean container: {absent:?}");
    let refused = container
        .exec("root", &["tekup-harness", "run", "--no-install"])
        .await;
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(
        refused
            .stderr
            .contains("installing was refused (--no-install")
            && refused
                .stderr
                .contains("run `apt-get update && apt-get install -y --no-install-recommends"),
        "--no-install names the command instead: {refused:?}"
    );
    let doctor = container
        .exec(
            "root",
            &["tekup-harness", "--no-install", "doctor", "--fix"],
        )
        .await;
    assert_eq!(doctor.code, 1, "{doctor:?}");
    for (what, package) in [
        ("PostgreSQL", "postgresql"),
        ("redis-server", "redis-server"),
    ] {
        assert!(
            doctor
                .stderr
                .contains(&format!("fix: {what}: FAILED: `{package}` is needed for"))
                && doctor.stderr.contains("installing was refused"),
            "doctor --fix says what it could not install: {doctor:?}"
        );
    }
    assert!(
        doctor.stdout.contains("process:  cannot run here"),
        "{doctor:?}"
    );
    let not_root = container
        .exec(
            "65534:65534",
            &["tekup-harness", "run", "--reports-dir", "/tmp/nobody"],
        )
        .await;
    assert_eq!(not_root.code, 1, "{not_root:?}");
    assert!(
        not_root.stderr.contains("not running as root")
            && not_root.stderr.contains(
                "`sudo apt-get update && sudo apt-get install -y --no-install-recommends"
            ),
        "not as root, the command to run with sudo: {not_root:?}"
    );

    // The main command, as root: installs both, announced, and passes.
    let step = Instant::now();
    let run = container.exec("root", &["tekup-harness", "run"]).await;
    say(&format!(
        "`tekup-harness run` in the container: {:.0?}",
        step.elapsed()
    ));
    for package in ["postgresql", "redis-server"] {
        assert!(
            run.stderr.contains(&format!(
                "installing it as root: apt-get update && apt-get install -y --no-install-recommends {package}"
            )),
            "{package} is installed, announced with the command: {run:?}"
        );
    }
    let scenarios = tekup_harness::scenario::check_paths(&[workspace().join("scenarios")])
        .iter()
        .filter_map(|f| f.result.as_ref().ok())
        .map(|s| s.cases().len())
        .sum::<usize>();
    assert_eq!(
        run.stdout.lines().last().and_then(|l| l.split(" (").next()),
        Some(format!("{scenarios} passed, 0 failed").as_str()),
        "every scenario passes: {run:?}"
    );
    assert_eq!(run.code, 0, "{run:?}");
    let installed = container
        .exec(
            "root",
            &[
                "sh",
                "-c",
                "command -v redis-server && ls /usr/lib/postgresql",
            ],
        )
        .await;
    assert_eq!(installed.code, 0, "{installed:?}");
}

/// Builds the clean image when it is missing (one build at a time on the
/// machine).
async fn ensure_image(docker: &Docker) {
    if docker.inspect_image(IMAGE).await.is_ok() {
        return;
    }
    provision::ensure_program(&provision::MMDEBSTRAP)
        .unwrap_or_else(|e| panic!("{}", tekup_harness::env::error_chain(&e)));
    let _lock = provision::lock(&std::env::temp_dir().join("tekup-harness-fresh-image.lock"))
        .expect("the image lock");
    if docker.inspect_image(IMAGE).await.is_ok() {
        return;
    }
    let cache = std::env::var_os("TEKUP_CACHE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("tekup-harness-cache"));
    std::fs::create_dir_all(&cache).expect("the cache directory");
    let tarball = cache.join("fresh-bookworm.tar");
    if !tarball.is_file() {
        say(&format!(
            "building {IMAGE} with mmdebstrap (about a minute)"
        ));
        let partial = cache.join("fresh-bookworm.partial.tar");
        let out = Command::new("mmdebstrap")
            .args(["--variant=minbase", "--quiet"])
            .args([
                "--dpkgopt=path-exclude=/usr/share/doc/*",
                "--dpkgopt=path-exclude=/usr/share/man/*",
                "--dpkgopt=path-exclude=/usr/share/locale/*",
                // As a Debian container starts: no package lists, no archives.
                "--customize-hook=rm -rf \"$1\"/var/lib/apt/lists/* \"$1\"/var/cache/apt/archives/*.deb",
                "bookworm",
            ])
            .arg(&partial)
            .arg(MIRROR)
            .output()
            .expect("run mmdebstrap");
        assert!(
            out.status.success(),
            "mmdebstrap failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::rename(&partial, &tarball).expect("cache the root filesystem");
    }
    let (repo, tag) = IMAGE.split_once(':').expect("a tag");
    let file = tokio::fs::File::open(&tarball).await.expect("the tarball");
    let body = bollard::body_try_stream(tokio_util::io::ReaderStream::new(file));
    let mut stream = docker.create_image(
        Some(CreateImageOptions {
            from_src: Some("-".into()),
            repo: Some(repo.into()),
            tag: Some(tag.into()),
            changes: vec!["CMD [\"/bin/bash\"]".into()],
            ..Default::default()
        }),
        Some(body),
        None,
    );
    while let Some(item) = stream.next().await {
        let info = item.unwrap_or_else(|e| panic!("import {IMAGE}: {e}"));
        assert!(info.error_detail.is_none(), "import {IMAGE}: {info:?}");
    }
}

/// The binaries and the workspace files the main command reads, as a tar
/// archive in a temporary file: the programs in `/usr/local/bin`,
/// `scenarios/` and `fixtures/` in `/tekup` (writable by everyone, for
/// the run as another user).
fn payload() -> tempfile::NamedTempFile {
    let harness = std::env::var_os("TEKUP_HARNESS_BIN").map_or_else(
        || PathBuf::from(env!("CARGO_BIN_EXE_tekup-harness")),
        PathBuf::from,
    );
    let bin_dir = std::env::var_os("TEKUP_BIN_DIR").map_or_else(
        || harness.parent().expect("a directory").to_path_buf(),
        PathBuf::from,
    );
    let file = tempfile::NamedTempFile::new().expect("a temporary file");
    let mut tar = tar::Builder::new(file.reopen().expect("reopen"));
    tar.follow_symlinks(true);
    tar.sparse(false);
    let mut dir = tar::Header::new_gnu();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_mode(0o1777);
    dir.set_size(0);
    tar.append_data(&mut dir, "tekup/", std::io::empty())
        .expect("archive /tekup");
    let mut add = |host: &Path, inner: &str| {
        assert!(
            host.exists(),
            "{} is missing: build it with `cargo build -p tekup-services -p tekup-mocks --bins`",
            host.display()
        );
        if host.is_dir() {
            tar.append_dir_all(inner, host)
                .expect("archive a directory");
        } else {
            tar.append_path_with_name(host, inner)
                .expect("archive a file");
        }
    };
    add(&harness, "usr/local/bin/tekup-harness");
    for program in ["tekup-service", "tekup-mocks"] {
        add(&bin_dir.join(program), &format!("usr/local/bin/{program}"));
    }
    add(&workspace().join("scenarios"), "tekup/scenarios");
    add(&workspace().join("fixtures"), "tekup/fixtures");
    tar.finish().expect("finish the archive");
    file
}

/// What a command in the container printed and how it ended.
#[derive(Debug)]
struct Exec {
    code: i64,
    stdout: String,
    stderr: String,
}

/// The clean container, removed when dropped.
struct Container {
    docker: Docker,
    id: String,
}

impl Container {
    async fn create(docker: &Docker) -> Self {
        let name = format!("tekup-fresh-{}", std::process::id());
        let id = docker
            .create_container(
                Some(CreateContainerOptions {
                    name: Some(name),
                    ..Default::default()
                }),
                ContainerCreateBody {
                    image: Some(IMAGE.into()),
                    cmd: Some(vec!["sleep".into(), "infinity".into()]),
                    working_dir: Some("/tekup".into()),
                    labels: Some([(docker::LABEL.to_owned(), "1".to_owned())].into()),
                    ..Default::default()
                },
            )
            .await
            .expect("create the container")
            .id;
        let container = Self {
            docker: docker.clone(),
            id,
        };
        docker
            .start_container(
                &container.id,
                None::<bollard::query_parameters::StartContainerOptions>,
            )
            .await
            .expect("start the container");
        container
    }

    async fn copy_in(&self, archive: &tempfile::NamedTempFile) {
        let file = tokio::fs::File::open(archive.path())
            .await
            .expect("the archive");
        self.docker
            .upload_to_container(
                &self.id,
                Some(UploadToContainerOptions {
                    path: "/".into(),
                    ..Default::default()
                }),
                bollard::body_try_stream(tokio_util::io::ReaderStream::new(file)),
            )
            .await
            .expect("copy the binaries in");
    }

    async fn exec(&self, user: &str, cmd: &[&str]) -> Exec {
        let exec = self
            .docker
            .create_exec(
                &self.id,
                CreateExecOptions {
                    cmd: Some(cmd.iter().map(|s| (*s).to_owned()).collect()),
                    user: Some(user.to_owned()),
                    working_dir: Some("/tekup".to_owned()),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    ..Default::default()
                },
            )
            .await
            .expect("create the exec")
            .id;
        let mut result = Exec {
            code: -1,
            stdout: String::new(),
            stderr: String::new(),
        };
        if let StartExecResults::Attached { mut output, .. } = self
            .docker
            .start_exec(&exec, None)
            .await
            .expect("start the exec")
        {
            while let Some(chunk) = output.next().await {
                match chunk.expect("the exec's output") {
                    LogOutput::StdOut { message } => {
                        result.stdout.push_str(&String::from_utf8_lossy(&message));
                    }
                    LogOutput::StdErr { message } => {
                        result.stderr.push_str(&String::from_utf8_lossy(&message));
                    }
                    _ => {}
                }
            }
        }
        let inspected = self.docker.inspect_exec(&exec).await.expect("inspect");
        result.code = inspected.exit_code.unwrap_or(-1);
        result
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let (docker, id) = (self.docker.clone(), self.id.clone());
        // A thread with its own runtime: drop may run while the test's
        // runtime is shutting down.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            let _ = rt.block_on(docker.remove_container(
                &id,
                Some(RemoveContainerOptions {
                    force: true,
                    ..Default::default()
                }),
            ));
        })
        .join();
    }
}

/// Straight to standard error, past the test harness's capture.
fn say(line: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "fresh machine: {line}");
}
