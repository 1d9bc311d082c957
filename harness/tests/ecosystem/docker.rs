//! The full ecosystem under the `docker` runtime, from the offline images.
//!
//! These tests need the offline images (`tekup-harness images build`, no
//! registry needed); when they are missing the first test to need them
//! builds them (2 to 5 minutes, as root, with mmdebstrap installed when it
//! is missing), and the others wait for that build. Without a docker
//! daemon they fail and say so.

use std::time::Duration;

use tekup_harness::env::{docker, provision, EcosystemFile, Runtime};

use crate::common::{check_answers, ecosystem_file};

/// Builds the offline images when they are missing; fails the test, with
/// the reason, when docker cannot run here.
pub(crate) async fn require_docker_images() {
    let file = EcosystemFile::load(&ecosystem_file()).expect("ecosystem file");
    let images = crate::common::workspace().join("images");
    // Straight to standard error, past the test harness's capture: a first
    // build takes minutes and says what it does as it goes.
    let progress = |line: &str| {
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), "docker tests: {line}");
    };
    if let Err(why) = provision::ensure_offline_images(&file, &images, &progress).await {
        panic!(
            "the docker runtime cannot run here: {why}\n\
             (the offline images are built with `cargo run -p tekup-harness -- images build`, \
             which needs root, mmdebstrap and a docker daemon)"
        );
    }
}

async fn resources(run: &str) -> (usize, usize) {
    docker::run_resources(run).await.expect("docker answers")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_full_ecosystem_answers_under_docker_and_leaves_nothing() {
    require_docker_images().await;
    let eco = tekup_harness::env::Ecosystem::builder()
        .file(ecosystem_file())
        .runtime(Runtime::Docker)
        .start()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "the ecosystem starts: {}",
                tekup_harness::env::error_chain(&e)
            )
        });
    assert_eq!(eco.runtime(), Runtime::Docker);
    let run = eco.run_id().to_owned();
    // `migrate` replayed from a snapshot image has no container.
    let replayed = eco.component("migrate").expect("migrate").log_tail(5).await;
    let replayed = usize::from(replayed.contains("not run: replayed from the snapshot"));
    assert_eq!(
        resources(&run).await,
        (eco.components().count() - replayed, 1),
        "a container per component (but a replayed job) on one network"
    );
    check_answers(&eco).await;
    spans_reach_the_harness(&eco).await;

    // Faults work on containers too.
    let crm = eco.component("crm-api").expect("crm-api");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_millis(500))
        .build()
        .expect("client");
    crm.pause().await.expect("pause");
    let health = format!("{}/health", crm.url().expect("url"));
    assert!(http
        .get(&health)
        .send()
        .await
        .is_err_and(|e| e.is_timeout()));
    crm.resume().await.expect("resume");
    crm.kill().await.expect("kill");
    crm.restart().await.expect("restart");
    let health = format!("{}/health", crm.url().expect("url"));
    assert!(http
        .get(&health)
        .send()
        .await
        .expect("answers")
        .status()
        .is_success());

    let logs = eco.logs_dir().to_path_buf();
    drop(eco);
    assert_eq!(
        resources(&run).await,
        (0, 0),
        "no container or network survives"
    );
    let flow_log = std::fs::read_to_string(logs.join("flow-api.log")).expect("logs saved");
    assert!(flow_log.contains("listening"), "{flow_log}");
    let _ = std::fs::remove_dir_all(logs);
}

/// A lead created with a `traceparent` leaves spans of that trace in
/// [`Ecosystem::traces`]: exported by the containers of flow-api (which
/// took the request, under the harness's span), the worker and crm-api,
/// to the receiver on the run network's gateway address.
async fn spans_reach_the_harness(eco: &tekup_harness::env::Ecosystem) {
    use tekup_harness::trace::{harness_span, TracePrefix};
    assert_eq!(eco.traces_unavailable(), None);
    let receiver = eco.otlp_url().expect("a receiver");
    assert!(
        !receiver.starts_with("http://127."),
        "the receiver listens where containers reach it: {receiver}"
    );
    let prefix = TracePrefix::random();
    let trace = prefix.trace_id(1);
    let changed = eco.traces().changed();
    let created = reqwest::Client::new()
        .post(format!("{}/leads", eco.url("flow-api").expect("flow")))
        .header("traceparent", prefix.traceparent(1))
        .header("x-tenant-key", crate::common::ACME_KEY)
        .header("x-tenant-id", "acme")
        .header("x-source-app", "flow-web")
        .json(&serde_json::json!({
            "firstName": "Trace",
            "email": format!("trace-{}@example.com", eco.run_id()),
        }))
        .send()
        .await
        .expect("lead created");
    assert_eq!(created.status(), 201);
    let wanted = ["flow-api", "worker", "crm-api"];
    let within = Duration::from_secs(30);
    let deadline = tokio::time::Instant::now() + within;
    loop {
        // Registered before reading, so spans arriving in between wake us.
        let notified = changed.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let spans = eco.traces().trace(&trace);
        let services: std::collections::BTreeSet<&str> =
            spans.iter().map(|s| s.service.as_str()).collect();
        // flow-api exports its request's span after the job's (a batch
        // later): wait for the one that continues the harness's traceparent.
        let continued = spans.iter().any(|s| {
            s.service == "flow-api"
                && s.parent_span_id
                    .as_deref()
                    .is_some_and(|p| harness_span(&trace, p))
        });
        if continued && wanted.iter().all(|w| services.contains(w)) {
            break;
        }
        let now = tokio::time::Instant::now();
        if now >= deadline
            || tokio::time::timeout(deadline - now, notified)
                .await
                .is_err()
        {
            panic!(
                "spans of trace {trace} from {wanted:?}, one of flow-api's continuing the harness's traceparent, within {within:?}; got {:?} ({} span(s) of any trace received)",
                spans
                    .iter()
                    .map(|s| format!("{}: {}", s.service, s.name))
                    .collect::<Vec<_>>(),
                eco.traces().received()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_picks_docker_when_the_images_exist() {
    require_docker_images().await;
    let file = EcosystemFile::load(&ecosystem_file()).expect("file");
    let why = docker::usable(&file).await.expect("usable");
    assert!(why.contains("every image exists locally"), "{why}");
    // And a failed start under docker removes what it created.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ecosystem.toml");
    std::fs::write(
        &path,
        "[component.redis]\nkind = \"redis\"\nimage = \"redis:7\"\noffline-image = \"tekup-harness/redis:7\"\n\
         [component.broken]\nkind = \"redis\"\nimage = \"tekup-harness/no-such-image:1\"\ndepends-on = [\"redis\"]\n",
    )
    .expect("write");
    let run = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let seen = std::sync::Arc::clone(&run);
    let err = tekup_harness::env::Ecosystem::builder()
        .file(&path)
        .runtime(Runtime::Docker)
        .logs_dir(dir.path().join("logs"))
        .on_progress(move |p| {
            if let tekup_harness::env::Progress::Runtime { run_id, .. } = p {
                *seen.lock().expect("lock") = run_id.clone();
            }
        })
        .start()
        .await
        .expect_err("the image does not exist");
    let text = err.to_string();
    assert!(
        text.contains("`tekup-harness/no-such-image:1`") && text.contains("images build"),
        "{text}"
    );
    let run = run.lock().expect("lock").clone();
    assert!(!run.is_empty());
    assert_eq!(
        resources(&run).await,
        (0, 0),
        "a failed start removes what it created"
    );
}

/// `tekup-harness run --runtime docker`, as a team runs it: every scenario
/// passes against the ecosystem in containers, whose program images hold
/// release builds (a stripped service is a fraction of a debug build).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scenario_suite_passes_under_docker_with_release_program_images() {
    require_docker_images().await;
    let reports = tempfile::tempdir().expect("tempdir");
    let started = std::time::Instant::now();
    let run = tokio::time::timeout(
        Duration::from_secs(20 * 60),
        tokio::process::Command::new(
            std::env::var_os("TEKUP_HARNESS_BIN")
                .unwrap_or_else(|| env!("CARGO_BIN_EXE_tekup-harness").into()),
        )
        .args(["run", "--runtime", "docker", "--reports-dir"])
        .arg(reports.path())
        .current_dir(crate::common::workspace())
        .kill_on_drop(true)
        .output(),
    )
    .await
    .expect("the suite ends within 20 minutes")
    .expect("run tekup-harness");
    {
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "docker tests: the scenario suite under docker took {:.0?}",
            started.elapsed()
        );
    }
    let (stdout, stderr) = (
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr),
    );
    let scenarios =
        tekup_harness::scenario::check_paths(&[crate::common::workspace().join("scenarios")])
            .iter()
            .filter_map(|f| f.result.as_ref().ok())
            .map(|s| s.cases().len())
            .sum::<usize>();
    assert!(
        stderr.contains("runtime: docker") || stderr.contains("(docker)"),
        "{stderr}"
    );
    // The one scenario that faults a link between components is skipped,
    // with the reason: links need the process runtime.
    assert_eq!(
        stdout.lines().last().and_then(|l| l.split(" (").next()),
        Some(format!("{} passed, 0 failed, 1 skipped", scenarios - 1).as_str()),
        "every scenario passes under docker:\n{stdout}\n{stderr}"
    );
    assert!(
        stderr.contains("skip redis-link-down")
            && stderr
                .contains("needs the fault proxies on the links: links need the process runtime"),
        "{stderr}"
    );
    assert!(run.status.success(), "{stdout}\n{stderr}");
    assert!(reports.path().join("junit.xml").is_file());
    trace_steps_were_checked(&reports.path().join("report.json"));

    // The program images: release builds, unless TEKUP_BIN_DIR pins others.
    if std::env::var_os("TEKUP_BIN_DIR").is_none() {
        for (program, size) in program_image_sizes().await {
            assert!(
                size < 80_000_000,
                "the image of {program} adds {size} bytes to the runtime image: not a stripped release build"
            );
        }
    }
}

/// Every trace step of the run saw its spans: under docker the services'
/// spans reach the harness, so none says "not checked".
fn trace_steps_were_checked(report: &std::path::Path) {
    let text = std::fs::read_to_string(report).expect("report.json written");
    let report: serde_json::Value = serde_json::from_str(&text).expect("report.json is JSON");
    let labels: Vec<String> = report["scenarios"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["steps"].as_array().cloned().unwrap_or_default())
        .filter(|step| step["kind"] == "trace")
        .map(|step| {
            let text = |key: &str| step[key].as_str().unwrap_or_default().to_owned();
            format!("{} ({})", text("label"), text("status"))
        })
        .collect();
    assert!(!labels.is_empty(), "the suite has trace steps");
    for label in &labels {
        assert!(
            label.contains("span(s) in the run's traces") && label.ends_with("(passed)"),
            "a trace step checked under docker: {label}\n(all: {labels:#?})"
        );
    }
}

/// What each program image adds to the runtime image, in bytes.
async fn program_image_sizes() -> Vec<(String, i64)> {
    use bollard::query_parameters::ListImagesOptions;
    let docker = docker::connect().await.expect("docker");
    let base = docker
        .inspect_image("tekup-harness/runtime:bookworm")
        .await
        .expect("the runtime image")
        .size
        .unwrap_or_default();
    let mut sizes = Vec::new();
    for program in ["tekup-service", "tekup-mocks"] {
        let images = docker
            .list_images(Some(ListImagesOptions {
                filters: Some(
                    [(
                        "label".to_owned(),
                        vec![format!("tekup-harness.program={program}")],
                    )]
                    .into(),
                ),
                ..Default::default()
            }))
            .await
            .expect("list images");
        assert!(
            !images.is_empty(),
            "an image of {program} after a docker run"
        );
        sizes.extend(
            images
                .into_iter()
                .map(|i| (i.repo_tags.join(","), i.size - base)),
        );
    }
    sizes
}

/// The offline Postgres image keeps the official image's contract on both
/// of its paths: for the default user it sets up the cluster made when the
/// image was built (no `initdb` at start: its "The files belonging to this
/// database system" banner is absent from the log), giving it the password
/// and the database's name (or dropping the made one when `postgres` is
/// asked for), for another user it runs `initdb`; either way the password
/// is checked (scram-sha-256 over TCP) and the database exists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_postgres_image_keeps_its_contract_with_and_without_initdb() {
    require_docker_images().await;
    let dir = tempfile::tempdir().expect("tempdir");
    for (user, password, database, initdb) in [
        ("postgres", "it's \"quoted\"", "shop", false),
        ("postgres", "plain", "postgres", false),
        ("ledger_owner", "s3cret", "ledger-books", true),
    ] {
        let escape = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
        let file = dir.path().join(format!("{user}.toml"));
        std::fs::write(
            &file,
            format!(
                "[component.db]\nkind = \"postgres\"\noffline-image = \"tekup-harness/postgres:15\"\n\
                 user = \"{}\"\npassword = \"{}\"\ndatabase = \"{}\"\n",
                escape(user),
                escape(password),
                escape(database)
            ),
        )
        .expect("write the file");
        let eco = tekup_harness::env::Ecosystem::builder()
            .file(&file)
            .runtime(Runtime::Docker)
            .logs_dir(dir.path().join(format!("logs-{user}")))
            .start()
            .await
            .unwrap_or_else(|e| panic!("{user}: {}", tekup_harness::env::error_chain(&e)));
        let pool = eco.postgres_pool().await.expect("a pool");
        let (current, db): (String, String) =
            sqlx::query_as("select current_user::text, current_database()::text")
                .fetch_one(&pool)
                .await
                .unwrap_or_else(|e| panic!("{user} connects with its password: {e}"));
        assert_eq!((current.as_str(), db.as_str()), (user, database));
        let log = eco.component("db").expect("db").log_tail(200).await;
        assert_eq!(
            log.contains("The files belonging to this database system"),
            initdb,
            "{user}: initdb ran = {}:\n{log}",
            !initdb
        );
        // A wrong password is refused: the password is really checked.
        let url = eco.component("db").expect("db").url().expect("a url");
        let options: sqlx::postgres::PgConnectOptions = url.parse().expect("a postgres URL");
        let refused = sqlx::PgPool::connect_with(options.password("not-the-password")).await;
        assert!(refused.is_err(), "{user}: a wrong password was accepted");
    }
}
