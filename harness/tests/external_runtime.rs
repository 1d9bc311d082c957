//! The `external` runtime end to end. The reference ecosystem, started by
//! the process runtime, stands in for a deployment; the harness then runs
//! against it as `--runtime external` given only what a team has of its
//! staging: the services' and mocks' URLs and the admin token, in an
//! external file this test writes, and the CA of its certificates. As on a
//! real deployment every service is reached over TLS: a TLS-terminating
//! front ([`TlsFront`]) stands before each, so the file's URLs are
//! `https://` (and the gateway's `wss://`), given with `--ca-cert`.
//!
//! - URLs only: the scenario suite runs what needs no database, Redis or
//!   chaos, and skips the rest with the reason (console, JUnit, JSON); the
//!   sweep runs (its database parts skipped); the property suite, whose
//!   invariants read the database and Redis, refuses saying what to give;
//!   load runs all four profiles; the tenants made are left (there is no
//!   way to remove them) and the run lists them.
//! - With the database and Redis DSNs too: the scenarios with `sql` and
//!   `redis` steps run and pass, chaos ones stay skipped, the property
//!   suite holds, and every tenant made is suspended afterwards (or left
//!   active with `--keep-tenants`).
//! - A deployment that leaks (the gateway's tenant filter gone, a
//!   deliberate defect) fails the run against it.
//!
//! Run with prebuilt binaries (`TEKUP_BIN_DIR`) like the other tests that
//! start the ecosystem.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use serde_json::Value;
use tekup_harness::env::{error_chain, Ecosystem, Kind, Runtime};
use tekup_harness::load::{self, Plan, Profile};
use tekup_harness::net::{ClientTls, TestCerts, TlsFront};
use tekup_harness::platform::Platform;

fn workspace() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    dir.canonicalize().unwrap_or(dir)
}

/// Starts the stand-in deployment (process runtime), with `defects` on
/// when given.
async fn deployment(defects: Option<&str>, logs: &Path) -> Ecosystem {
    let mut builder = Ecosystem::builder()
        .file(workspace().join("fixtures/ecosystem.toml"))
        .runtime(Runtime::Process)
        .logs_dir(logs);
    if let Some(defects) = defects {
        builder = builder.defects(defects);
    }
    builder
        .start()
        .await
        .unwrap_or_else(|e| panic!("the stand-in deployment starts: {}", error_chain(&e)))
}

/// The deployment as a team sees it: its services behind TLS.
struct Fronted {
    /// The services' own `http://` URLs, which only the deployment's
    /// components use.
    plain: BTreeMap<String, String>,
    front: TlsFront,
    certs: TestCerts,
}

impl Fronted {
    /// Puts a TLS front with certificates of a private CA before every
    /// service and mock of `eco` (not its database nor Redis).
    async fn new(eco: &Ecosystem, dir: &Path) -> Fronted {
        let plain: BTreeMap<String, String> = eco
            .components()
            .filter(|c| c.kind() == Kind::Service)
            .map(|c| (c.name().to_owned(), c.url().expect("a service has a URL")))
            .collect();
        let certs = TestCerts::generate(dir.join("certs")).expect("certificates");
        let front = TlsFront::start(&plain, certs.server())
            .await
            .expect("the TLS front starts");
        Fronted {
            plain,
            front,
            certs,
        }
    }

    /// The `https://` URLs an external run is given.
    fn urls(&self) -> BTreeMap<String, String> {
        self.front.urls().clone()
    }

    fn ca(&self) -> String {
        self.certs.ca_cert().to_str().expect("utf-8").to_owned()
    }
}

/// Writes the external file: the front's URLs, the admin token and, when
/// `dsns`, the database's and Redis's URLs.
fn external_file(eco: &Ecosystem, fronted: &Fronted, dir: &Path, dsns: bool) -> PathBuf {
    let token = &eco.file().vars["admin-token"];
    let mut text = format!("[vars]\nadmin-token = \"{token}\"\n");
    let mut urls = fronted.urls();
    assert!(urls.values().all(|u| u.starts_with("https://")), "{urls:?}");
    if dsns {
        for c in eco
            .components()
            .filter(|c| matches!(c.kind(), Kind::Postgres | Kind::Redis))
        {
            urls.insert(c.name().to_owned(), c.url().expect("url"));
        }
    }
    for (name, url) in urls {
        writeln!(text, "[component.{name}]\nurl = \"{url}\"").expect("write");
        // Inside the deployment its components reach each other without
        // the front (the Stripe mock delivers webhooks to crm-api there).
        if let Some(peer) = fronted.plain.get(&name) {
            writeln!(text, "peer-url = \"{peer}\"").expect("write");
        }
    }
    let path = dir.join(if dsns { "with-dsns.toml" } else { "urls.toml" });
    std::fs::write(&path, text).expect("write the external file");
    path
}

/// Runs the `tekup-harness` program in the workspace with `args`.
fn harness(args: &[&str]) -> (bool, String) {
    // `TEKUP_HARNESS_BIN` runs a copy (the build's can be replaced by
    // another build while the test runs).
    let program = std::env::var_os("TEKUP_HARNESS_BIN")
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_tekup-harness").into());
    let output: Output = std::process::Command::new(program)
        .current_dir(workspace())
        .args(args)
        .env_remove("TEKUP_ADMIN_TOKEN")
        .env_remove("TEKUP_EXTERNAL_FILE")
        .env_remove("TEKUP_ECOSYSTEM")
        .output()
        .expect("tekup-harness runs");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// `run` of `scenarios/` against the deployment the file describes.
fn run_scenarios(file: &Path, ca: &str, reports: &Path, extra: &[&str]) -> (bool, String) {
    let mut args = vec![
        "run",
        "--runtime",
        "external",
        "--external",
        file.to_str().expect("utf-8"),
        "--ca-cert",
        ca,
        "--reports-dir",
        reports.to_str().expect("utf-8"),
        "--report",
        "junit,json",
    ];
    args.extend_from_slice(extra);
    harness(&args)
}

/// Scenario name → (status, skip reason) from the run's JSON report.
fn outcomes(reports: &Path) -> BTreeMap<String, (String, Option<String>)> {
    let json: Value = serde_json::from_str(
        &std::fs::read_to_string(reports.join("report.json")).expect("report.json"),
    )
    .expect("report.json parses");
    json["scenarios"]
        .as_array()
        .expect("scenarios")
        .iter()
        .map(|s| {
            (
                s["name"].as_str().expect("name").to_owned(),
                (
                    s["status"].as_str().expect("status").to_owned(),
                    s["skipReason"].as_str().map(str::to_owned),
                ),
            )
        })
        .collect()
}

/// What the run printed about its tenants: their prefix.
fn tenant_prefix(output: &str) -> String {
    let line = output
        .lines()
        .find(|l| l.starts_with("tenants: made "))
        .unwrap_or_else(|| panic!("the run says what it made:\n{output}"));
    let start = line.find("(tekup-harness-").expect("the prefix") + 1;
    let end = line[start..].find("-*)").expect("the prefix's end") + start;
    line[start..end].to_owned()
}

/// The deployment's tenants whose id starts with `prefix`: id → active.
async fn tenants_of(eco: &Ecosystem, prefix: &str) -> BTreeMap<String, bool> {
    let pool = eco.postgres_pool().await.expect("the stand-in's database");
    sqlx::query_as::<_, (String, bool)>("SELECT id, active FROM auth.tenants WHERE id LIKE $1")
        .bind(format!("{prefix}-%"))
        .fetch_all(&pool)
        .await
        .expect("tenants")
        .into_iter()
        .collect()
}

/// The scenarios with a step of `kind` (`sql`, `redis`, `chaos`), read
/// from the files themselves.
fn scenarios_using(kinds: &[&str]) -> Vec<String> {
    let mut names = Vec::new();
    for file in tekup_harness::scenario::check_paths(&[workspace().join("scenarios")]) {
        let scenario = file.result.expect("valid scenario");
        let uses = scenario.run_order().any(|s| {
            let kind = match &s.kind {
                tekup_harness::scenario::StepKind::Eventually(e) => e.step.kind.name(),
                k => k.name(),
            };
            kinds.contains(&kind)
        });
        if uses {
            names.push(scenario.name.clone());
        }
    }
    names
}

#[test]
fn an_external_deployment_given_by_urls_then_with_dsns() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let staging = rt.block_on(deployment(None, &dir.path().join("logs")));
    let fronted = rt.block_on(Fronted::new(&staging, dir.path()));
    let ca = fronted.ca();
    let urls_only = external_file(&staging, &fronted, dir.path(), false);

    // ---- URLs only: the scenario suite ----
    let reports = dir.path().join("urls");
    let (ok, output) = run_scenarios(&urls_only, &ca, &reports, &[]);
    assert!(ok, "nothing fails, the rest is skipped:\n{output}");
    let seen = outcomes(&reports);
    let needing = scenarios_using(&["sql", "redis", "chaos"]);
    assert!(
        !needing.is_empty() && needing.len() < seen.len(),
        "{needing:?}"
    );
    for (name, (status, why)) in &seen {
        if needing.contains(name) {
            assert_eq!(status, "skipped", "{name}: {why:?}\n{output}");
            let why = why.as_deref().expect("a skip says why");
            assert!(why.starts_with("step "), "{name}: {why}");
            assert!(
                why.contains("give `component.postgres.url` in the external file")
                    || why.contains("give `component.redis.url` in the external file")
                    || why.contains("not the harness's to kill")
                    || why.contains("needs the fault proxies on the links"),
                "{name}: {why}"
            );
            assert!(
                output.contains(&format!("skipped: {why}")),
                "the console shows why {name} was skipped:\n{output}"
            );
        } else {
            assert_eq!(status, "passed", "{name}\n{output}");
        }
    }
    assert!(
        seen.values().any(|(_, why)| why
            .as_deref()
            .is_some_and(|w| w.contains("`sql`") && w.contains("needs the database"))),
        "{seen:#?}"
    );
    let skipped = seen.values().filter(|(s, _)| s == "skipped").count();
    let passed = seen.len() - skipped;
    assert!(
        output.contains(&format!("{passed} passed, 0 failed, {skipped} skipped")),
        "{output}"
    );
    let junit = std::fs::read_to_string(reports.join("junit.xml")).expect("junit.xml");
    assert!(
        junit.contains(&format!(r#"skipped="{skipped}""#)),
        "{junit}"
    );
    assert!(
        junit.contains(r#"<skipped message="step "#) && junit.contains("needs the database"),
        "{junit}"
    );
    // The tenants made are named as the harness's, and left: the platform
    // cannot delete or suspend them and the file gives no database.
    let prefix = tenant_prefix(&output);
    let made = rt.block_on(tenants_of(&staging, &prefix));
    assert!(
        made.len() > passed,
        "a witness and each scenario's tenants: {made:?}"
    );
    assert!(made.values().all(|active| *active), "{made:?}");
    assert!(
        output.contains(&format!("; {} left on the deployment", made.len()))
            && output.contains("cannot delete or suspend a tenant"),
        "{output}"
    );
    for id in made.keys() {
        assert!(
            output.contains(&format!("left: {id}")),
            "{id} listed\n{output}"
        );
    }

    // ---- With the DSNs: the database and Redis scenarios run ----
    // (before the sweep has been at the deployment: after its `inputs`
    // class and other traffic, graph-throttling sees two successful reads
    // of the Graph mock's mailbox where it counts one, every time; most
    // likely a second page of a mailbox grown by the mail the sweep had
    // the services send, not yet confirmed)
    let with_dsns = external_file(&staging, &fronted, dir.path(), true);
    let reports = dir.path().join("dsns");
    let (ok, output) = run_scenarios(&with_dsns, &ca, &reports, &[]);
    assert!(ok, "{output}");
    let seen = outcomes(&reports);
    let chaos = scenarios_using(&["chaos"]);
    for (name, (status, why)) in &seen {
        if chaos.contains(name) {
            assert_eq!(status, "skipped", "{name}");
            assert!(
                why.as_deref().is_some_and(|w| w.contains("`chaos`")),
                "{name}: {why:?}"
            );
        } else {
            assert_eq!(status, "passed", "{name}: {why:?}\n{output}");
        }
    }
    assert!(
        needing.iter().any(|n| !chaos.contains(n)),
        "some scenario ran only because the DSNs were given"
    );
    let prefix = tenant_prefix(&output);
    let made = rt.block_on(tenants_of(&staging, &prefix));
    assert!(!made.is_empty());
    assert!(
        made.values().all(|active| !active),
        "every tenant made was suspended: {made:?}"
    );
    assert!(
        output.contains(&format!("; {} suspended through the database", made.len())),
        "{output}"
    );

    // ---- URLs only: the sweep (bounded) ----
    let sweep_reports = dir.path().join("sweep");
    let (ok, output) = harness(&[
        "sweep",
        "--runtime",
        "external",
        "--external",
        urls_only.to_str().expect("utf-8"),
        "--ca-cert",
        &ca,
        "--reports-dir",
        sweep_reports.to_str().expect("utf-8"),
    ]);
    assert!(ok, "the reference services are clean:\n{output}");
    assert!(
        output.contains("sweep: ") && output.contains(" findings in "),
        "{output}"
    );
    assert!(
        output.contains("database  skipped: "),
        "the database class needs the DSN:\n{output}"
    );
    assert!(output.contains("tenants: made "), "{output}");

    // ---- URLs only: the property suite needs the database and Redis ----
    let (ok, output) = harness(&[
        "prop",
        "--runtime",
        "external",
        "--external",
        urls_only.to_str().expect("utf-8"),
        "--ca-cert",
        &ca,
        "--reports-dir",
        dir.path().join("prop").to_str().expect("utf-8"),
        "--cases",
        "2",
    ]);
    assert!(!ok, "{output}");
    assert!(
        output.contains("the external deployment gives no URL for `postgres`"),
        "says what to give:\n{output}"
    );

    // ---- URLs only: load, every profile, short ----
    rt.block_on(async {
        let eco = Ecosystem::builder()
            .file(workspace().join("fixtures/ecosystem.toml"))
            .runtime(Runtime::External)
            .external_file(&urls_only)
            .tls(
                ClientTls::builder()
                    .ca_cert(fronted.certs.ca_cert())
                    .build()
                    .expect("the CA file"),
            )
            .start()
            .await
            .expect("the external runtime connects");
        let platform = Platform::from_ecosystem(&eco).expect("platform");
        for profile in Profile::ALL {
            let mut plan = Plan::new(profile, 2, Duration::from_secs(2));
            plan.ws_clients = 2;
            let report = load::run(&plan, &platform)
                .await
                .unwrap_or_else(|e| panic!("{profile}: {}", error_chain(&e)));
            assert!(report.passed, "{profile}: {report:#?}");
            assert!(report.total.count > 0, "{profile}");
        }
        let release = eco.release_tenants(false).await;
        assert_eq!(release.made.len(), 4 * 2, "two users a profile");
        assert_eq!(release.left, release.made, "no database to suspend them in");
    });

    // ---- With the DSNs: the property suite (bounded) ----
    let (ok, output) = harness(&[
        "prop",
        "--runtime",
        "external",
        "--external",
        with_dsns.to_str().expect("utf-8"),
        "--ca-cert",
        &ca,
        "--reports-dir",
        dir.path().join("prop").to_str().expect("utf-8"),
        "--cases",
        "3",
        "--max-ops",
        "8",
    ]);
    assert!(ok && output.contains("property holds: 3 cases"), "{output}");
    assert!(
        output.contains("suspended through the database"),
        "{output}"
    );

    // ---- --keep-tenants leaves them as they are ----
    let reports = dir.path().join("kept");
    let (ok, output) = run_scenarios(
        &with_dsns,
        &ca,
        &reports,
        &["--keep-tenants", "--filter", "voice-get-leads"],
    );
    assert!(ok, "{output}");
    let prefix = tenant_prefix(&output);
    let made = rt.block_on(tenants_of(&staging, &prefix));
    assert!(made.len() >= 3, "the witness and two tenants: {made:?}");
    assert!(made.values().all(|active| *active), "{made:?}");
    assert!(output.contains("kept (--keep-tenants)"), "{output}");
}

#[test]
fn a_deployment_that_leaks_fails_the_run_against_it() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let staging = rt.block_on(deployment(
        Some("cross-tenant-fanout"),
        &dir.path().join("logs"),
    ));
    let fronted = rt.block_on(Fronted::new(&staging, dir.path()));
    let urls_only = external_file(&staging, &fronted, dir.path(), false);
    let reports = dir.path().join("reports");
    let (ok, output) = run_scenarios(
        &urls_only,
        &fronted.ca(),
        &reports,
        &["--filter", "voice-get-leads"],
    );
    assert!(!ok, "the leak is reported:\n{output}");
    let seen = outcomes(&reports);
    assert_eq!(seen["voice-get-leads"].0, "failed", "{output}");
    // The witness tenant, watching through the gateway alone, sees the
    // other tenants' events too.
    assert_eq!(seen["witness"].0, "failed", "{output}");
    assert!(
        output.contains("LEAK: the witness's") && output.contains("of tenant tekup-harness-"),
        "{output}"
    );
}
