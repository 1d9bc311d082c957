//! The full ecosystem under the `process` runtime: it answers, faults work
//! per component, readiness failures explain themselves, and nothing is
//! left behind after drop or a panic.

use std::time::Duration;

use crate::common::{alive, check_answers, ecosystem_file, eventually};
use tekup_harness::env::{Ecosystem, EnvError, Runtime};

async fn start() -> Ecosystem {
    Ecosystem::builder()
        .file(ecosystem_file())
        .runtime(Runtime::Process)
        .start()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "the ecosystem starts: {}",
                tekup_harness::env::error_chain(&e)
            )
        })
}

fn pids(eco: &Ecosystem) -> Vec<u32> {
    eco.state()["backend"]["processes"]
        .as_array()
        .expect("process list")
        .iter()
        .filter_map(|p| p["pid"].as_u64())
        .map(|p| u32::try_from(p).expect("pid"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_full_ecosystem_answers_and_is_gone_after_drop() {
    let eco = start().await;
    assert_eq!(eco.runtime(), Runtime::Process);
    check_answers(&eco).await;

    let pids = pids(&eco);
    assert!(pids.len() >= 11, "every component is a process: {pids:?}");
    let ports: Vec<u16> = eco.components().filter_map(|c| c.port()).collect();
    let run_dir = eco.state()["backend"]["run-dir"]
        .as_str()
        .expect("run dir")
        .to_owned();
    assert!(std::path::Path::new(&run_dir).exists());
    drop(eco);

    assert!(pids.iter().all(|p| !alive(*p)), "no process survives drop");
    for port in ports {
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
            "port {port} is closed"
        );
    }
    assert!(
        !std::path::Path::new(&run_dir).exists(),
        "run directory removed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn components_can_be_killed_paused_and_restarted() {
    let eco = start().await;
    let crm = eco.component("crm-api").expect("crm-api");
    let health = format!("{}/health", crm.url().expect("url"));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_millis(500))
        .build()
        .expect("client");

    crm.kill().await.expect("kill");
    assert!(
        http.get(&health).send().await.is_err(),
        "killed crm-api refuses"
    );
    let took = crm.restart().await.expect("restart");
    assert!(took < Duration::from_secs(30));
    assert!(http
        .get(&health)
        .send()
        .await
        .expect("answers")
        .status()
        .is_success());

    crm.pause().await.expect("pause");
    let frozen = http.get(&health).send().await;
    match frozen {
        Err(e) if e.is_timeout() => {}
        Err(e) => panic!("a paused service hangs; the request failed otherwise: {e:?}"),
        Ok(answer) => panic!(
            "a paused service hangs; it answered {} {:?}",
            answer.status(),
            answer.text().await
        ),
    }
    crm.resume().await.expect("resume");
    assert!(http
        .get(&health)
        .send()
        .await
        .expect("answers")
        .status()
        .is_success());

    let pg = eco.component("postgres").expect("postgres");
    pg.restart().await.expect("postgres restarts");
    let pool = eco.postgres_pool().await.expect("pool after restart");
    let (n,): (i64,) = sqlx::query_as("select count(*) from auth.tenants")
        .fetch_one(&pool)
        .await
        .expect("data survived the restart");
    assert!(n > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_test_leaves_no_process() {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        let eco = start().await;
        let _ = tx.send(pids(&eco));
        panic!("the test fails while the ecosystem is up");
    });
    let pids = rx.await.expect("pids reported");
    assert!(task.await.is_err_and(|e| e.is_panic()));
    assert!(
        eventually(Duration::from_secs(10), || pids.iter().all(|p| !alive(*p))).await,
        "no process survives the panic"
    );
}

fn write_file(dir: &std::path::Path, body: &str) -> std::path::PathBuf {
    let path = dir.join("ecosystem.toml");
    std::fs::write(&path, body).expect("write");
    path
}

#[tokio::test]
async fn a_component_that_never_gets_ready_is_named_with_its_log_and_the_time_waited() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write_file(
        dir.path(),
        r#"
[component.slow]
program = "/bin/sh"
args = ["-c", "echo booting; echo still booting on ${self.port}; exec sleep 30"]
port = 80
ready = { http = "/health", timeout = "1s" }
"#,
    );
    let err = Ecosystem::builder()
        .file(&file)
        .runtime(Runtime::Process)
        .logs_dir(dir.path().join("logs"))
        .start()
        .await
        .expect_err("never ready");
    let text = err.to_string();
    assert!(matches!(err, EnvError::NotReady { .. }), "{text}");
    assert!(
        text.contains("`slow` was not ready (HTTP GET /health answering 2xx) after 1."),
        "{text}"
    );
    assert!(text.contains("still booting on"), "{text}");
}

#[tokio::test]
async fn a_component_that_exits_early_is_reported_with_its_status_and_output() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write_file(
        dir.path(),
        r#"
[component.crashy]
program = "/bin/sh"
args = ["-c", "echo cannot open config >&2; exit 3"]
port = 80
ready = { tcp = true }
"#,
    );
    let err = Ecosystem::builder()
        .file(&file)
        .runtime(Runtime::Process)
        .logs_dir(dir.path().join("logs"))
        .start()
        .await
        .expect_err("exits");
    let text = err.to_string();
    assert!(text.contains("`crashy` exited (exit status: 3)"), "{text}");
    assert!(text.contains("cannot open config"), "{text}");
}

#[tokio::test]
async fn auto_falls_back_to_processes_and_says_why() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write_file(
        dir.path(),
        "[component.noop]\nkind = \"job\"\nprogram = \"/bin/true\"\n",
    );
    let reason = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let seen = std::sync::Arc::clone(&reason);
    let eco = Ecosystem::builder()
        .file(&file)
        .runtime(Runtime::Auto)
        .logs_dir(dir.path().join("logs"))
        .on_progress(move |p| {
            if let tekup_harness::env::Progress::Runtime { reason, .. } = p {
                *seen.lock().expect("lock") = reason.clone();
            }
        })
        .start()
        .await
        .expect("starts");
    assert_eq!(eco.runtime(), Runtime::Process);
    let reason = reason.lock().expect("lock").clone();
    assert_eq!(eco.runtime_reason(), reason);
    assert!(
        reason.ends_with("; using processes")
            && (reason.contains("noop (no `image` in the ecosystem file)")
                || reason.contains("no docker daemon")),
        "{reason}"
    );
}

#[tokio::test]
async fn components_with_a_program_are_pointed_at_the_run_s_otlp_receiver() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write_file(
        dir.path(),
        r#"
[component.plain]
kind = "job"
program = "/bin/sh"
args = ["-c", "env | grep ^OTEL_ | sort; echo ref=${otlp.url} grpc=${otlp.grpc-url}"]

[component.team]
kind = "job"
program = "/bin/sh"
args = ["-c", "env | grep ^OTEL_ | sort"]
env = { OTEL_EXPORTER_OTLP_ENDPOINT = "http://collector.team:4318", OTEL_SERVICE_NAME = "their-name" }
"#,
    );
    let eco = Ecosystem::builder()
        .file(&file)
        .runtime(Runtime::Process)
        .logs_dir(dir.path().join("logs"))
        .start()
        .await
        .expect("starts");
    let url = eco.otlp_url().expect("a receiver");
    let grpc = eco.otlp_grpc_url().expect("a receiver");
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let plain = eco.component("plain").expect("plain").log_tail(20).await;
    for line in [
        format!("OTEL_EXPORTER_OTLP_ENDPOINT={url}"),
        "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf".to_owned(),
        "OTEL_SERVICE_NAME=plain".to_owned(),
        "OTEL_BSP_SCHEDULE_DELAY=100".to_owned(),
        format!("ref={url} grpc={grpc}"),
    ] {
        assert!(
            plain.lines().any(|l| l == line),
            "{line:?} missing in:\n{plain}"
        );
    }
    // What the file sets itself is left as it is.
    let team = eco.component("team").expect("team").log_tail(20).await;
    for line in [
        "OTEL_EXPORTER_OTLP_ENDPOINT=http://collector.team:4318",
        "OTEL_SERVICE_NAME=their-name",
        "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf",
    ] {
        assert!(
            team.lines().any(|l| l == line),
            "{line:?} missing in:\n{team}"
        );
    }
    // The receiver answers there and fills the ecosystem's store.
    let span = |id: &str| tekup_harness::trace::Span {
        trace_id: "ab".repeat(16),
        span_id: id.repeat(16),
        parent_span_id: None,
        service: "plain".into(),
        name: "GET /health".into(),
        kind: tekup_harness::trace::SpanKind::Server,
        start_unix_nano: 1,
        end_unix_nano: 2,
        attributes: Default::default(),
        events: Vec::new(),
        status: Default::default(),
    };
    let spans = [span("1"), span("2")];
    let body = tekup_harness::trace::to_otlp_json(&spans).expect("json");
    let response = reqwest::Client::new()
        .post(format!("{url}/v1/traces"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("the receiver answers");
    assert_eq!(response.status(), 200);
    assert_eq!(eco.traces().received(), 2);
}

/// The image contract's user and database are in the cluster a Postgres
/// component starts from (made once per user and database, then copied):
/// the second start finds them as the first did, and its owner may create
/// tables there.
#[tokio::test]
async fn a_postgres_component_starts_with_its_own_user_and_database() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write_file(
        dir.path(),
        r#"
[component.db]
kind = "postgres"
user = "ledger_owner"
database = "ledger-books"
password = "secret"
"#,
    );
    for round in 1..=2 {
        let eco = Ecosystem::builder()
            .file(&file)
            .runtime(Runtime::Process)
            .logs_dir(dir.path().join(format!("logs-{round}")))
            .start()
            .await
            .unwrap_or_else(|e| panic!("round {round}: {}", tekup_harness::env::error_chain(&e)));
        let pool = eco.postgres_pool().await.expect("a pool");
        let (user, database, superuser): (String, String, bool) = sqlx::query_as(
            "select current_user::text, current_database()::text, rolsuper \
             from pg_roles where rolname = current_user",
        )
        .fetch_one(&pool)
        .await
        .expect("query");
        assert_eq!(
            (user.as_str(), database.as_str(), superuser),
            ("ledger_owner", "ledger-books", true),
            "round {round}"
        );
        sqlx::query("create table entries (id int)")
            .execute(&pool)
            .await
            .expect("the owner creates a table");
    }
}

/// `wait-for` says which dependencies must be ready before a component
/// starts; one it does not wait for starts alongside it. Here
/// `slow` becomes ready only once `quick` has run (quick's start writes the
/// file slow waits for): with `wait-for = []` the ecosystem starts; without
/// it, quick waits for slow, which waits for quick, and the start fails
/// naming slow (the short timeout only bounds a wait that cannot end).
#[tokio::test]
async fn a_component_starts_before_a_dependency_it_does_not_wait_for_is_ready() {
    let dir = tempfile::tempdir().expect("tempdir");
    let flag = dir.path().join("quick-ran");
    let body = |wait_for: &str| {
        format!(
            r#"
[component.slow]
program = "/bin/sh"
args = ["-c", "while [ ! -e '{flag}' ]; do sleep 0.01; done; echo slow is ready; exec sleep 600"]
port = 80
ready = {{ log = "slow is ready", timeout = "3s" }}

[component.quick]
program = "/bin/sh"
args = ["-c", "echo ${{slow.port}} > '{flag}'; echo quick is ready; exec sleep 600"]
port = 80
ready = {{ log = "quick is ready", timeout = "3s" }}
{wait_for}
"#,
            flag = flag.display()
        )
    };
    let file = write_file(dir.path(), &body("wait-for = []"));
    let eco = Ecosystem::builder()
        .file(&file)
        .runtime(Runtime::Process)
        // No fault proxy in between: quick gets slow's own port.
        .links(false)
        .logs_dir(dir.path().join("logs"))
        .start()
        .await
        .unwrap_or_else(|e| panic!("{}", tekup_harness::env::error_chain(&e)));
    let port = eco.component("slow").expect("slow").port().expect("a port");
    let written = std::fs::read_to_string(&flag).expect("quick ran");
    assert_eq!(written.trim(), port.to_string(), "quick had slow's address");
    drop(eco);

    std::fs::remove_file(&flag).expect("remove the flag");
    let file = write_file(dir.path(), &body(""));
    let err = Ecosystem::builder()
        .file(&file)
        .runtime(Runtime::Process)
        .logs_dir(dir.path().join("logs-2"))
        .start()
        .await
        .expect_err("quick waits for slow, which waits for quick");
    let text = err.to_string();
    assert!(text.contains("`slow` was not ready"), "{text}");
    assert!(!flag.exists(), "quick never started");
}
