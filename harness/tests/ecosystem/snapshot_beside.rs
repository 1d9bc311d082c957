//! A service that waits for its database by itself (`waits-itself-for`)
//! starts beside its Postgres when the snapshot job it waits for is
//! replayed, and reaches ready once the Postgres answers; a database that
//! never comes ends the start with the service's error, not a hang.
//!
//! The Postgres is held back by a gate of the test's own, a job blocked on
//! reading a FIFO until the test writes to it: the service's start before
//! its database answers is then certain, not a race with the copy of the
//! cluster.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tekup_harness::env::{error_chain, Ecosystem, EnvError, Progress, Runtime};

use crate::common::{eventually, forget, job_name, workspace};

/// The ecosystem file in `dir`: `gate` (blocked on the FIFO `dir/gate`),
/// a Postgres waiting for it, the services' migration as a snapshot job
/// called `job`, and the CRM API waiting for the job and for Postgres by
/// itself, `DATABASE_WAIT` set to `wait`.
fn ecosystem(dir: &Path, job: &str, wait: &str) -> PathBuf {
    for fixture in ["tenants.yaml", "platform.yaml"] {
        std::fs::copy(
            workspace().join("fixtures").join(fixture),
            dir.join(fixture),
        )
        .expect("copy a fixture");
    }
    let gate = dir.join("gate");
    if !gate.exists() {
        let made = std::process::Command::new("mkfifo")
            .arg(&gate)
            .status()
            .expect("run mkfifo");
        assert!(made.success(), "mkfifo {}: {made}", gate.display());
    }
    let text = format!(
        r#"
[vars]
service-password = "beside-password"

[component.gate]
kind = "job"
program = "/bin/sh"
args = ["-c", "read go < \"$GATE\""]
env = {{ GATE = "{gate}" }}

[component.postgres]
kind = "postgres"
database = "tekup"
depends-on = ["gate"]

[component.{job}]
kind = "job"
program = "tekup-service"
cargo-package = "tekup-services"
args = ["migrate", "--service-password", "${{vars.service-password}}", "--seed", "${{file:tenants.yaml}}", "--contract", "${{file:platform.yaml}}"]
env = {{ ADMIN_DATABASE_URL = "${{postgres.url}}", RUST_LOG = "info,sqlx=warn" }}
snapshot = "postgres"

[component.crm-api]
program = "tekup-service"
cargo-package = "tekup-services"
args = ["crm-api"]
port = 8080
ready = {{ http = "/health" }}
depends-on = ["{job}"]
wait-for = ["{job}"]
waits-itself-for = ["postgres"]

[component.crm-api.env]
BIND = "${{self.bind}}"
DATABASE_URL = "postgres://tekup_service:${{vars.service-password}}@${{postgres.host}}:${{postgres.port}}/${{postgres.database}}"
TEKUP_TOKEN_SECRET = "beside-secret"
DATABASE_WAIT = "{wait}"
"#,
        gate = gate.display()
    );
    let path = dir.join("ecosystem.toml");
    std::fs::write(&path, text).expect("write the ecosystem file");
    path
}

/// Lets the gate job finish: opens the FIFO (once the job reads it) and
/// writes a line.
async fn open_gate(dir: &Path) {
    let gate = dir.join("gate");
    let opened = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::task::spawn_blocking(move || {
            use std::io::Write as _;
            let mut fifo = std::fs::OpenOptions::new()
                .write(true)
                .open(&gate)
                .expect("open the gate");
            fifo.write_all(b"go\n").expect("write to the gate");
        }),
    )
    .await;
    assert!(
        matches!(opened, Ok(Ok(()))),
        "the gate job never read its FIFO: {opened:?}"
    );
}

/// What the start reported, in order: `<component> starting|ready`.
type Events = Arc<Mutex<Vec<String>>>;

/// Starts `file` in a task of its own, recording its progress.
fn start(
    file: &Path,
    logs: PathBuf,
) -> (Events, tokio::task::JoinHandle<Result<Ecosystem, EnvError>>) {
    let events: Events = Arc::default();
    let record = Arc::clone(&events);
    let builder = Ecosystem::builder()
        .file(file)
        .runtime(Runtime::Process)
        .logs_dir(logs)
        .on_progress(move |p| {
            let event = match p {
                Progress::Starting { component } => format!("{component} starting"),
                Progress::Ready { component, .. } => format!("{component} ready"),
                Progress::Runtime { .. } => return,
            };
            record.lock().unwrap_or_else(|e| e.into_inner()).push(event);
        });
    (events, tokio::spawn(builder.start()))
}

/// The first start: the job runs (the service waits for it) and its
/// result is kept; the gate is opened as soon as the start begins.
async fn make_the_snapshot(file: &Path, dir: &Path) {
    let (_, started) = start(file, dir.join("logs-1"));
    open_gate(dir).await;
    let eco = started
        .await
        .expect("the start task")
        .unwrap_or_else(|e| panic!("the first start: {}", error_chain(&e)));
    drop(eco);
}

fn log(dir: &Path, logs: &str, component: &str) -> String {
    std::fs::read_to_string(dir.join(logs).join(format!("{component}.log"))).unwrap_or_default()
}

fn position(events: &[String], event: &str) -> usize {
    events
        .iter()
        .position(|e| e == event)
        .unwrap_or_else(|| panic!("no `{event}` in {events:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_starts_before_its_database_answers_and_is_ready_once_it_does() {
    let dir = tempfile::tempdir().expect("tempdir");
    let job = job_name("migrate-beside");
    let file = ecosystem(dir.path(), &job, "30s");
    make_the_snapshot(&file, dir.path()).await;

    let (events, started) = start(&file, dir.path().join("logs-2"));
    // The gate holds Postgres back: the service starts all the same, and
    // finds no database.
    assert!(
        eventually(Duration::from_secs(30), || {
            log(dir.path(), "logs-2", "crm-api").contains("does not answer yet")
        })
        .await,
        "crm-api did not start before its database answered; started: {:?}; its log: {}",
        events.lock().unwrap_or_else(|e| e.into_inner()),
        log(dir.path(), "logs-2", "crm-api")
    );
    {
        let seen = events.lock().unwrap_or_else(|e| e.into_inner());
        assert!(
            !seen
                .iter()
                .any(|e| e == "postgres starting" || e == "crm-api ready"),
            "{seen:?}"
        );
    }
    assert!(!started.is_finished(), "the start waits for the service");

    open_gate(dir.path()).await;
    let eco = started
        .await
        .expect("the start task")
        .unwrap_or_else(|e| panic!("the second start: {}", error_chain(&e)));
    let seen = events.lock().unwrap_or_else(|e| e.into_inner()).clone();
    assert!(
        position(&seen, "crm-api starting") < position(&seen, "postgres ready"),
        "{seen:?}"
    );
    // It got ready once its database answered: its own log says it waited
    // and then found it. (Which of the two the start reports ready first
    // is a race of probes: crm-api's `/health` can see Postgres answer
    // before the runtime's probe of Postgres does.)
    let crm_log = log(dir.path(), "logs-2", "crm-api");
    let waited = crm_log.find("does not answer yet");
    let answered = crm_log.rfind(" answers");
    assert!(
        matches!((waited, answered), (Some(w), Some(a)) if w < a),
        "{seen:?}\n{crm_log}"
    );
    let job_log = log(dir.path(), "logs-2", &job);
    assert!(
        job_log.contains("not run: replayed from the snapshot"),
        "{job_log}"
    );
    // Ready means what it meant: the service answers, with its database.
    let health = format!("{}/health", eco.url("crm-api").expect("url"));
    let answer = reqwest::get(&health).await.expect("crm-api answers");
    assert!(answer.status().is_success(), "{}", answer.status());
    let service_log = log(dir.path(), "logs-2", "crm-api");
    assert!(
        service_log.contains("the database at postgres://tekup_service:***@127.0.0.1:")
            && service_log.contains("answers"),
        "{service_log}"
    );
    drop(eco);
    forget(&job);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_never_comes_ends_the_start_with_the_services_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let job = job_name("migrate-never");
    let file = ecosystem(dir.path(), &job, "1s");
    make_the_snapshot(&file, dir.path()).await;

    // The gate stays shut: Postgres never starts.
    let (_, started) = start(&file, dir.path().join("logs-2"));
    let err = tokio::time::timeout(Duration::from_secs(60), started)
        .await
        .expect("the start ends, it does not hang")
        .expect("the start task")
        .expect_err("the service gives up");
    let text = error_chain(&err);
    assert!(matches!(err, EnvError::Exited { .. }), "{text}");
    assert!(text.contains("`crm-api` exited"), "{text}");
    assert!(
        text.contains(
            "gave up waiting for the database at postgres://tekup_service:***@127.0.0.1:"
        ) && text.contains("/tekup after 1s ("),
        "{text}"
    );
    forget(&job);
}
