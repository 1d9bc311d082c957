//! The `tekup-service` binary: migrate, tenant creation, and its errors.

use std::process::{Command, Output};

use tekup_services::ServiceName::FlowApi;

use crate::helpers::{assert_status, fixture, TestApp};

fn tekup_service(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tekup-service"))
        .args(args)
        .env_remove("DATABASE_URL")
        .env_remove("ADMIN_DATABASE_URL")
        .output()
        .expect("the binary runs")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test]
async fn migrate_is_idempotent_and_tenant_create_prints_working_keys() {
    let app = TestApp::spawn().await;
    let admin_url = app.pg.url("postgres", "tekup");
    let seed = fixture("fixtures/tenants.yaml");
    let contract = fixture("fixtures/platform.yaml");
    let url = admin_url.clone();
    let output = tokio::task::spawn_blocking(move || {
        tekup_service(&[
            "migrate",
            "--database-url",
            &url,
            "--service-password",
            "pw",
            "--seed",
            seed.to_str().unwrap(),
            "--contract",
            contract.to_str().unwrap(),
        ])
    })
    .await
    .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));

    let url = admin_url.clone();
    let output = tokio::task::spawn_blocking(move || {
        tekup_service(&[
            "tenant",
            "create",
            "--database-url",
            &url,
            "--id",
            "from-cli",
            "--apps",
            "flow-web,crm-web",
        ])
    })
    .await
    .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let created: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("JSON on stdout");
    assert_eq!(
        created["allowedApps"],
        serde_json::json!(["flow-web", "crm-web"])
    );
    let key = created["apiKeys"][0].as_str().unwrap();
    assert_status(
        &app.as_app(key, "from-cli", "flow-web")
            .get(FlowApi, "/leads")
            .await,
        200,
    );
}

#[test]
fn a_malformed_seed_file_is_named_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tenants.yaml");
    std::fs::write(
        &path,
        "tenants:\n  - id: acme\n    name: Acme\n    allowed-apps: [flow-web]\n    kees: []\n",
    )
    .unwrap();
    let output = tekup_service(&[
        "migrate",
        "--database-url",
        "postgres://nobody@127.0.0.1:1/x",
        "--seed",
        path.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(err.contains("tenants.yaml"), "{err}");
    assert!(err.contains("unknown field `kees`"), "{err}");
    assert!(err.contains("line 5"), "{err}");

    std::fs::write(&path, "tenants:\n  - id: acme\n    name: Acme\n    allowed-apps: [flow-web]\n    keys: [{ key: letmein }]\n").unwrap();
    let output = tekup_service(&[
        "migrate",
        "--database-url",
        "postgres://nobody@127.0.0.1:1/x",
        "--seed",
        path.to_str().unwrap(),
    ]);
    let err = stderr(&output);
    assert!(
        err.contains("tenants[0] (acme).keys[0]") && err.contains("tk_"),
        "{err}"
    );
}

#[test]
fn a_database_that_never_answers_is_given_up_on_naming_it_without_the_password() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://svc:hunter2@127.0.0.1:{port}/tekup");
    let started = std::time::Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_tekup-service"))
        .args(["flow-api", "--database-url", &url, "--token-secret", "s"])
        .env("DATABASE_WAIT", "300ms")
        .output()
        .expect("the binary runs");
    let took = started.elapsed();
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(
        err.contains(&format!(
            "gave up waiting for the database at postgres://svc:***@127.0.0.1:{port}/tekup after 300ms ("
        )),
        "{err}"
    );
    // The last attempt's error, chained.
    assert!(err.contains("Connection refused"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
    // It waited (it did not give up at the first refusal), and not much
    // longer than asked.
    assert!(err.contains("does not answer yet"), "{err}");
    assert!(
        took >= std::time::Duration::from_millis(250) && took < std::time::Duration::from_secs(10),
        "{took:?}"
    );
}

#[test]
fn a_database_that_refuses_the_login_is_not_waited_for() {
    // Only what can pass is waited out: a wrong database answers at once.
    let pg = tekup_harness::env::LocalPostgres::start_blocking(std::time::Duration::from_secs(30))
        .expect("postgres starts");
    let url = pg.url("postgres", "no_such_database");
    let output = Command::new(env!("CARGO_BIN_EXE_tekup-service"))
        .args(["flow-api", "--database-url", &url, "--token-secret", "s"])
        .env("DATABASE_WAIT", "1m")
        .output()
        .expect("the binary runs");
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(
        err.contains("failed to connect to the database at postgres://")
            && err.contains("no_such_database"),
        "{err}"
    );
    assert!(!err.contains("gave up waiting"), "{err}");
}

#[test]
fn help_lists_the_services_and_exit_codes() {
    let output = tekup_service(&["--help"]);
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for word in [
        "flow-api",
        "crm-api",
        "secure-platform",
        "migrate",
        "tenant",
        "Exit codes",
    ] {
        assert!(help.contains(word), "--help lacks {word}:\n{help}");
    }
    assert_eq!(tekup_service(&["no-such-command"]).status.code(), Some(2));
}

#[test]
fn the_default_build_refuses_deliberate_defects() {
    // Defects exist only in the `tekup-service-defects` binary (feature
    // `defects`); the program teams deploy refuses to start with them asked for.
    let output = Command::new(env!("CARGO_BIN_EXE_tekup-service"))
        .args([
            "flow-api",
            "--database-url",
            "postgres://nobody@127.0.0.1:1/x",
        ])
        .args(["--token-secret", "s"])
        .env("TEKUP_DEFECTS", "skip-lead-event")
        .output()
        .expect("the binary runs");
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(
        err.contains("TEKUP_DEFECTS=skip-lead-event") && err.contains("this build has none"),
        "{err}"
    );
}

#[test]
fn a_malformed_job_retry_span_is_refused_at_start_naming_the_entry() {
    // Refused before anything is connected to: the database is never asked.
    let base = [
        "worker",
        "--database-url",
        "postgres://nobody@127.0.0.1:1/x",
        "--token-secret",
        "s",
    ];
    let flag = tekup_service(&[&base[..], &["--job-retry-span", "lead-processing=soon"]].concat());
    assert_eq!(flag.status.code(), Some(2), "{}", stderr(&flag));
    let err = stderr(&flag);
    assert!(
        err.contains("`lead-processing=soon`: `soon` is not a span"),
        "{err}"
    );

    let env = Command::new(env!("CARGO_BIN_EXE_tekup-service"))
        .args(base)
        .env("JOB_RETRY_SPANS", "lead-processing=30,emails=60")
        .output()
        .expect("the binary runs");
    assert_eq!(env.status.code(), Some(2), "{}", stderr(&env));
    let err = stderr(&env);
    assert!(
        err.contains("`emails=60`: `emails` is not a queue; the queues are lead-processing,"),
        "{err}"
    );

    let help = tekup_service(&["worker", "--help"]);
    let help = String::from_utf8_lossy(&help.stdout);
    for words in [
        "--job-retry-span <QUEUE=SPAN>",
        "JOB_RETRY_SPANS",
        "failing for SPAN since its first failure",
    ] {
        assert!(help.contains(words), "`{words}` missing from:\n{help}");
    }
}
