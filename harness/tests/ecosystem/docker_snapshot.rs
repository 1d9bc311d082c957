//! A job kept as a snapshot of its Postgres under the `docker` runtime:
//! the Postgres container is committed to an image once the job has run;
//! a later start with the same inputs runs the Postgres from that image
//! and creates no container for the job; a change of the job's inputs
//! (its environment, its files, the image its program runs in) runs it
//! again; and a Postgres image that keeps its data in a `VOLUME` keeps it
//! all the same.

use std::path::{Path, PathBuf};

use bollard::query_parameters::{
    CommitContainerOptions, CreateContainerOptions, ListImagesOptions, RemoveContainerOptions,
    RemoveImageOptions,
};
use tekup_harness::env::{docker, error_chain, Ecosystem, Runtime};

use crate::common::{check_answers, workspace};
use crate::docker::require_docker_images;

const POSTGRES_IMAGE: &str = "tekup-harness/postgres:15";
const RUNTIME_IMAGE: &str = "tekup-harness/runtime:bookworm";

async fn started(file: &Path, logs: PathBuf) -> Ecosystem {
    Ecosystem::builder()
        .file(file)
        .runtime(Runtime::Docker)
        .logs_dir(logs)
        .start()
        .await
        .unwrap_or_else(|e| panic!("{} starts: {}", file.display(), error_chain(&e)))
}

/// The run's containers.
async fn containers(eco: &Ecosystem) -> usize {
    docker::run_resources(eco.run_id())
        .await
        .expect("docker answers")
        .0
}

/// Whether the job was replayed (its log says so) rather than run.
async fn replayed(eco: &Ecosystem, job: &str) -> bool {
    let log = eco.component(job).expect("the job").log_tail(50).await;
    log.contains("not run: replayed from the snapshot image")
}

/// A unique word for this test run: keys made of it are this run's alone.
fn unique(what: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{what}-{}-{nanos}", std::process::id())
}

/// The reference ecosystem with `migrate` given one more environment
/// variable, `SNAPSHOT_TEST=<value>`, in `dir` (with the files it names).
fn reference_file(dir: &Path, value: &str) -> PathBuf {
    let fixtures = workspace().join("fixtures");
    let text = std::fs::read_to_string(fixtures.join("ecosystem.toml")).expect("the fixture");
    let env = r#"env = { ADMIN_DATABASE_URL = "${postgres.url}", RUST_LOG = "info,sqlx=warn" }"#;
    assert_eq!(text.matches(env).count(), 1, "migrate's env changed: {env}");
    let text = text.replace(
        env,
        &format!(
            "{}, SNAPSHOT_TEST = \"{value}\" }}",
            env.trim_end_matches(" }")
        ),
    );
    for name in ["tenants.yaml", "platform.yaml", "prometheus/alerts.yml"] {
        let to = dir.join(name);
        std::fs::create_dir_all(to.parent().expect("a parent")).expect("mkdir");
        std::fs::copy(fixtures.join(name), to).expect("copy a fixture");
    }
    let path = dir.join("ecosystem.toml");
    std::fs::write(&path, text).expect("write the file");
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_docker_start_replays_migrate_and_a_changed_input_runs_it_again() {
    require_docker_images().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let value = unique("first");
    let file = reference_file(dir.path(), &value);

    let eco = started(&file, dir.path().join("logs-1")).await;
    let all = eco.components().count();
    assert!(!replayed(&eco, "migrate").await, "a new key runs the job");
    assert_eq!(containers(&eco).await, all, "a container per component");
    drop(eco);

    let eco = started(&file, dir.path().join("logs-2")).await;
    assert!(replayed(&eco, "migrate").await, "the second start replays");
    assert_eq!(
        containers(&eco).await,
        all - 1,
        "no container for the replayed job"
    );
    let pool = eco.postgres_pool().await.expect("a pool");
    let tenants: Vec<String> = sqlx::query_scalar("select id from auth.tenants order by id")
        .fetch_all(&pool)
        .await
        .expect("migrate's schema is there");
    assert!(
        tenants.iter().any(|t| t == "acme") && tenants.iter().any(|t| t == "globex"),
        "the seed tenants are there: {tenants:?}"
    );
    let (roles,): (i64,) =
        sqlx::query_as("select count(*) from pg_roles where rolname = 'tekup_app'")
            .fetch_one(&pool)
            .await
            .expect("roles");
    assert_eq!(roles, 1, "migrate's role is there");
    pool.close().await;
    check_answers(&eco).await;
    drop(eco);

    // Another environment is another input: the job runs again.
    let file = reference_file(dir.path(), &unique("second"));
    let eco = started(&file, dir.path().join("logs-3")).await;
    assert!(
        !replayed(&eco, "migrate").await,
        "a changed env runs the job"
    );
    assert_eq!(containers(&eco).await, all);
    drop(eco);
}

/// A small ecosystem: a Postgres from `postgres_image` and a job `job`
/// that loads `seed.sql` with psql, in a container of `job_image`.
fn seed_file(dir: &Path, job: &str, postgres_image: &str, job_image: &str) -> PathBuf {
    let text = format!(
        r#"
[component.db]
kind = "postgres"
offline-image = "{postgres_image}"
user = "postgres"
password = "snapshot-test"
database = "books"

[component.{job}]
kind = "job"
program = "/bin/sh"
offline-image = "{job_image}"
args = ["-c", "/usr/lib/postgresql/15/bin/psql \"$URL\" -v ON_ERROR_STOP=1 -q -f \"$SEED\""]
env = {{ URL = "${{db.url}}", SEED = "${{file:seed.sql}}" }}
snapshot = "db"
"#
    );
    let path = dir.join("ecosystem.toml");
    std::fs::write(&path, text).expect("write the ecosystem file");
    path
}

async fn notes(eco: &Ecosystem) -> Vec<String> {
    let pool = eco.postgres_pool().await.expect("a pool");
    let notes = sqlx::query_scalar("select note from seeded order by note")
        .fetch_all(&pool)
        .await
        .expect("the seeded table");
    pool.close().await;
    notes
}

/// `image` made from `base` with `change` (a Dockerfile instruction).
async fn derived(base: &str, image: &str, change: &str) {
    let docker = docker::connect().await.expect("docker");
    let scratch = docker
        .create_container(
            None::<CreateContainerOptions>,
            bollard::models::ContainerCreateBody {
                image: Some(base.to_owned()),
                ..Default::default()
            },
        )
        .await
        .expect("a scratch container")
        .id;
    let (repo, tag) = image.split_once(':').expect("repo:tag");
    docker
        .commit_container(
            CommitContainerOptions {
                container: Some(scratch.clone()),
                repo: Some(repo.to_owned()),
                tag: Some(tag.to_owned()),
                changes: Some(change.to_owned()),
                ..Default::default()
            },
            bollard::models::ContainerConfig::default(),
        )
        .await
        .expect("commit");
    let remove = RemoveContainerOptions {
        force: true,
        ..Default::default()
    };
    docker
        .remove_container(&scratch, Some(remove))
        .await
        .expect("remove the scratch container");
}

/// Removes `images` and the snapshot images of `job` (force: a run that
/// failed may have left a container).
async fn remove_images(images: &[&str], job: &str) {
    let docker = docker::connect().await.expect("docker");
    let filters = [(
        "label".to_owned(),
        vec![format!("tekup-harness.snapshot={job}")],
    )]
    .into();
    let snapshots = docker
        .list_images(Some(ListImagesOptions {
            filters: Some(filters),
            ..Default::default()
        }))
        .await
        .expect("list images");
    let ids = snapshots.into_iter().map(|i| i.id);
    for image in ids.chain(images.iter().map(|i| (*i).to_owned())) {
        let options = RemoveImageOptions {
            force: true,
            ..Default::default()
        };
        let _ = docker.remove_image(&image, Some(options), None).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_docker_snapshot_follows_the_seed_the_job_image_and_survives_a_volume() {
    require_docker_images().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let job = unique("seed");
    let seed = |note: &str| {
        std::fs::write(
            dir.path().join("seed.sql"),
            format!("create table seeded (note text); insert into seeded values ('{note}');"),
        )
        .expect("write the seed")
    };
    // The same runtime under another image id, and the Postgres image
    // with its data directory in a volume (as the official image has it).
    let other_runtime = format!("tekup-harness/runtime:{job}");
    let volume_postgres = format!("tekup-harness/postgres:{job}");
    derived(RUNTIME_IMAGE, &other_runtime, "LABEL snapshot-test=1").await;
    derived(
        POSTGRES_IMAGE,
        &volume_postgres,
        "VOLUME /var/lib/postgresql/data",
    )
    .await;

    let rounds = [
        // (what, Postgres image, job image, seed, replayed)
        ("first start", POSTGRES_IMAGE, RUNTIME_IMAGE, "first", false),
        ("same inputs", POSTGRES_IMAGE, RUNTIME_IMAGE, "first", true),
        (
            "another seed",
            POSTGRES_IMAGE,
            RUNTIME_IMAGE,
            "second",
            false,
        ),
        (
            "the job's image",
            POSTGRES_IMAGE,
            other_runtime.as_str(),
            "second",
            false,
        ),
        (
            "a volume, first",
            volume_postgres.as_str(),
            RUNTIME_IMAGE,
            "third",
            false,
        ),
        (
            "a volume, again",
            volume_postgres.as_str(),
            RUNTIME_IMAGE,
            "third",
            true,
        ),
    ];
    for (round, (what, postgres, runtime, note, replays)) in rounds.into_iter().enumerate() {
        seed(note);
        let file = seed_file(dir.path(), &job, postgres, runtime);
        let eco = started(&file, dir.path().join(format!("logs-{round}"))).await;
        assert_eq!(replayed(&eco, &job).await, replays, "{what}");
        assert_eq!(
            containers(&eco).await,
            if replays { 1 } else { 2 },
            "{what}"
        );
        assert_eq!(notes(&eco).await, [note], "{what}");
        if !replays {
            // What a run writes after the job is not part of the snapshot.
            let pool = eco.postgres_pool().await.expect("a pool");
            sqlx::query("insert into seeded values ('written after the job')")
                .execute(&pool)
                .await
                .expect("insert");
            pool.close().await;
        }
        drop(eco);
    }
    remove_images(&[&other_runtime, &volume_postgres], &job).await;
}
