//! A job kept as a snapshot of its Postgres (`snapshot = "db"`) under the
//! process runtime: it runs once, later starts find its result without
//! running it, a change of its inputs runs it again, and a failing job is
//! named and leaves nothing kept; a start after another takes a spare
//! copy of the kept cluster made in between.

use std::path::{Path, PathBuf};

use crate::common::{forget, job_name};
use tekup_harness::env::{error_chain, wait_for_spares, Ecosystem, EnvError, Runtime};

/// An ecosystem file in `dir` whose job `job` appends a line to `runs`
/// (so the test counts its runs) and loads `seed.sql` into the Postgres.
fn ecosystem(dir: &Path, job: &str) -> PathBuf {
    let text = format!(
        r#"
[component.db]
kind = "postgres"
user = "owner"
database = "books"

[component.{job}]
kind = "job"
program = "/bin/sh"
args = ["-c", "echo ran >> {runs} && psql \"$URL\" -v ON_ERROR_STOP=1 -q -f \"$SEED\""]
env = {{ URL = "${{db.url}}", SEED = "${{file:seed.sql}}" }}
snapshot = "db"
"#,
        runs = dir.join("runs").display()
    );
    let path = dir.join("ecosystem.toml");
    std::fs::write(&path, text).expect("write the ecosystem file");
    path
}

fn runs(dir: &Path) -> usize {
    std::fs::read_to_string(dir.join("runs"))
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

async fn start(file: &Path, logs: PathBuf) -> Result<Ecosystem, EnvError> {
    Ecosystem::builder()
        .file(file)
        .runtime(Runtime::Process)
        .logs_dir(logs)
        .start()
        .await
}

/// Starts the ecosystem, which must start; `round` names it on failure.
async fn started(file: &Path, dir: &Path, round: u32) -> Ecosystem {
    start(file, dir.join(format!("logs-{round}")))
        .await
        .unwrap_or_else(|e| panic!("start {round}: {}", error_chain(&e)))
}

async fn notes(eco: &Ecosystem) -> Vec<String> {
    let pool = eco.postgres_pool().await.expect("a pool");
    sqlx::query_scalar("select note from seeded order by note")
        .fetch_all(&pool)
        .await
        .expect("the seeded table")
}

#[tokio::test]
async fn a_snapshot_job_runs_once_and_later_starts_find_its_result() {
    let dir = tempfile::tempdir().expect("tempdir");
    let job = job_name("seed");
    let file = ecosystem(dir.path(), &job);
    let seed = |note: &str| {
        std::fs::write(
            dir.path().join("seed.sql"),
            format!("create table seeded (note text); insert into seeded values ('{note}');"),
        )
        .expect("write the seed")
    };
    seed("first");

    let eco = started(&file, dir.path(), 1).await;
    assert_eq!(runs(dir.path()), 1);
    assert_eq!(notes(&eco).await, ["first"]);
    // What a run writes after the job is not part of the snapshot.
    let pool = eco.postgres_pool().await.expect("a pool");
    sqlx::query("insert into seeded values ('written by the first run')")
        .execute(&pool)
        .await
        .expect("insert");
    drop(eco);

    let eco = started(&file, dir.path(), 2).await;
    assert_eq!(runs(dir.path()), 1, "the job did not run again");
    assert_eq!(notes(&eco).await, ["first"]);
    let log = std::fs::read_to_string(dir.path().join(format!("logs-2/{job}.log"))).expect("log");
    assert!(log.contains("not run: replayed from the snapshot"), "{log}");
    drop(eco);

    // Another seed is another input: the job runs again.
    seed("second");
    let eco = started(&file, dir.path(), 3).await;
    assert_eq!(runs(dir.path()), 2);
    assert_eq!(notes(&eco).await, ["second"]);
    drop(eco);
    forget(&job);
}

#[tokio::test]
async fn a_snapshot_job_that_fails_is_named_and_nothing_is_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let job = job_name("broken-seed");
    let file = ecosystem(dir.path(), &job);
    std::fs::write(
        dir.path().join("seed.sql"),
        "create tabel seeded (note text);",
    )
    .expect("write the seed");
    for round in 1..=2 {
        let err = start(&file, dir.path().join(format!("logs-{round}")))
            .await
            .expect_err("the job fails");
        let text = error_chain(&err);
        assert!(matches!(err, EnvError::Exited { .. }), "{text}");
        assert!(text.contains(&format!("`{job}` exited")), "{text}");
        assert!(text.contains("syntax error"), "{text}");
        // Nothing was kept: the second start runs the job again.
        assert_eq!(runs(dir.path()), round);
    }
    forget(&job);
}

/// A start after another from the same kept cluster takes the spare copy
/// made once the one before was up (`env::spare`): its Postgres log says
/// so, and it holds the kept cluster as it was, not what the start before
/// wrote into its own copy.
#[tokio::test]
async fn a_later_start_takes_the_spare_copy_made_after_the_one_before() {
    let dir = tempfile::tempdir().expect("tempdir");
    let job = job_name("spare-seed");
    let file = ecosystem(dir.path(), &job);
    std::fs::write(
        dir.path().join("seed.sql"),
        "create table seeded (note text); insert into seeded values ('kept');",
    )
    .expect("write the seed");
    let data_from = |round: u32| {
        let log = std::fs::read_to_string(dir.path().join(format!("logs-{round}/db.log")))
            .expect("the postgres log");
        log.lines().next().unwrap_or_default().to_owned()
    };

    // The first start runs the job and keeps its cluster.
    drop(started(&file, dir.path(), 1).await);
    // The second copies the kept cluster: no spare of it was made yet.
    let eco = started(&file, dir.path(), 2).await;
    let first = data_from(2);
    assert!(first.starts_with("data directory: a copy of "), "{first}");
    assert!(first.contains(&format!("+{job}-")), "{first}");
    let pool = eco.postgres_pool().await.expect("a pool");
    sqlx::query("insert into seeded values ('written by the second start')")
        .execute(&pool)
        .await
        .expect("insert");
    pool.close().await;
    wait_for_spares();
    drop(eco);

    for round in 3..=4 {
        let eco = started(&file, dir.path(), round).await;
        let first = data_from(round);
        assert!(
            first.starts_with("data directory: a spare copy of ")
                && first.contains(&format!("+{job}-")),
            "start {round}: {first}"
        );
        assert_eq!(notes(&eco).await, ["kept"], "start {round}");
        assert_eq!(runs(dir.path()), 1, "the job ran once");
        wait_for_spares();
        drop(eco);
    }
    forget(&job);
}
