//! The `external` runtime against a running deployment: here, an ecosystem
//! started by the process runtime stands in for staging.

use std::fmt::Write as _;

use tekup_harness::env::{Ecosystem, EnvError, Kind, Runtime};

use crate::common::{check_answers, ecosystem_file};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_external_deployment_is_used_as_it_is_and_never_harmed() {
    let staging = Ecosystem::builder()
        .file(ecosystem_file())
        .runtime(Runtime::Process)
        .start()
        .await
        .expect("the stand-in deployment starts");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut description = String::new();
    for c in staging.components().filter(|c| c.kind() != Kind::Job) {
        let url = c.url().expect("url");
        writeln!(description, "[component.{}]\nurl = \"{url}\"", c.name()).expect("write");
    }
    let path = dir.path().join("staging.toml");
    std::fs::write(&path, description).expect("write");

    let eco = Ecosystem::builder()
        .file(ecosystem_file())
        .runtime(Runtime::External)
        .external_file(&path)
        .start()
        .await
        .expect("the external runtime connects");
    assert_eq!(
        eco.url("flow-api").expect("url"),
        staging.url("flow-api").expect("url")
    );
    check_answers(&eco).await;

    let err = eco
        .component("crm-api")
        .expect("crm-api")
        .kill()
        .await
        .expect_err("no faults on someone else's deployment");
    assert!(matches!(err, EnvError::Unsupported { .. }), "{err}");
    drop(eco);

    // Services only: the database, Redis and the mocks are optional, and
    // the file's [vars] override the ecosystem file's.
    let mut services = String::from("[vars]\nadmin-token = \"the-deployment's\"\n");
    for c in staging
        .components()
        .filter(|c| c.kind() == Kind::Service && c.admin_url().is_none())
    {
        let url = c.url().expect("url");
        writeln!(services, "[component.{}]\nurl = \"{url}\"", c.name()).expect("write");
    }
    let path = dir.path().join("services.toml");
    std::fs::write(&path, services).expect("write");
    let eco = Ecosystem::builder()
        .file(ecosystem_file())
        .runtime(Runtime::External)
        .external_file(&path)
        .start()
        .await
        .expect("services alone are enough");
    assert_eq!(eco.file().vars["admin-token"], "the-deployment's");
    assert!(!eco.offers(Kind::Postgres) && !eco.offers(Kind::Redis));
    assert!(!eco.component("gemini").expect("gemini").offered());
    let err = eco.postgres_pool().await.expect_err("no database given");
    let text = tekup_harness::env::error_chain(&err);
    assert!(
        text.contains(
            "the external deployment gives no URL for `postgres` (set TEKUP_POSTGRES_URL"
        ),
        "{text}"
    );
    drop(eco);
    // Nothing was stopped: the deployment still answers.
    let health = reqwest::get(format!("{}/health", staging.url("crm-api").expect("url")))
        .await
        .expect("still up");
    assert!(health.status().is_success());
}

#[tokio::test]
async fn a_component_without_a_url_names_the_variable_to_set() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("staging.toml");
    std::fs::write(
        &path,
        "[component.flow-api]\nurl = \"http://127.0.0.1:9\"\n",
    )
    .expect("write");
    let err = Ecosystem::builder()
        .file(ecosystem_file())
        .runtime(Runtime::External)
        .external_file(&path)
        .start()
        .await
        .expect_err("most URLs are missing");
    let text = err.to_string();
    assert!(text.contains("no URL for it: set TEKUP_"), "{text}");
}
