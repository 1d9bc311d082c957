//! TLS throughout: the reference ecosystem behind the harness's TLS front
//! (certificates made here with rcgen), reached as an `external`
//! deployment by the `tekup-harness` command with only `https://` URLs.
//!
//! - a scenario with HTTP steps and gateway WebSockets (`wss://`) passes
//!   with `--ca-cert`, fails without it saying "unknown CA" and naming
//!   `--ca-cert`, and passes with `--insecure`, which says so on stderr;
//! - behind a front that requires client certificates (mTLS), it is
//!   refused without one, naming `--client-cert`, and passes with one;
//! - wrong TLS files are errors naming the file, before anything starts;
//! - the load generator (goose's HTTP users and its WebSocket clients) and
//!   the property suite run through the front.
//!
//! One ecosystem (process runtime) and two fronts serve every test.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use tekup_harness::env::{Ecosystem, Runtime};
use tekup_harness::load::{self, Plan, Profile};
use tekup_harness::net::{ClientTls, TestCerts, TlsFront};
use tekup_harness::platform::Platform;
use tokio::sync::OnceCell;

fn rt() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("runtime")
    })
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("workspace")
}

fn scratch() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("tempdir"))
        .path()
}

struct Fixture {
    eco: Ecosystem,
    certs: TestCerts,
    /// Server certificate only.
    front: TlsFront,
    /// Also requires a client certificate signed by the test CA.
    mtls: TlsFront,
}

async fn fixture() -> &'static Fixture {
    static FIXTURE: OnceCell<Fixture> = OnceCell::const_new();
    FIXTURE
        .get_or_init(|| async {
            let eco = Ecosystem::builder()
                .file(root().join("fixtures/ecosystem.toml"))
                .runtime(Runtime::Process)
                .logs_dir(scratch().join("logs"))
                .start()
                .await
                .unwrap_or_else(|e| {
                    panic!(
                        "the ecosystem starts: {}",
                        tekup_harness::env::error_chain(&e)
                    )
                });
            let certs = TestCerts::generate(scratch().join("certs")).expect("certificates");
            let upstreams: BTreeMap<String, String> = eco
                .components()
                .filter_map(|c| Some((c.name().to_owned(), c.url()?)))
                .collect();
            let front = TlsFront::start(&upstreams, certs.server())
                .await
                .expect("TLS front");
            let mtls = TlsFront::start(&upstreams, certs.server().require_client_cert(true))
                .await
                .expect("mTLS front");
            Fixture {
                eco,
                certs,
                front,
                mtls,
            }
        })
        .await
}

/// A scenario of HTTP steps and gateway WebSockets only (what an external
/// deployment offers): a lead is created and its event reaches the tenant's
/// crm-web client.
const SCENARIO: &str = r#"
name: tls-lead-event
tenants: [acme]
steps:
  - ws: { connect: crm, tenant: acme, app: crm-web }
  - http:
      service: flow-api
      tenant: acme
      app: flow-web
      request:
        method: POST
        path: /leads
        json: { firstName: Ada, lastName: Lovelace, company: Acme, email: "${email}" }
      expect: { status: 201, json: { tenantId: "${acme}" } }
      save: { lead: $.id }
  - ws:
      expect: crm
      event: LEAD_CREATED
      within: 10s
      data: { id: "${lead}", tenantId: "${acme}" }
"#;

fn scenario_file() -> PathBuf {
    let path = scratch().join("tls-lead-event.yaml");
    if !path.exists() {
        std::fs::write(&path, SCENARIO).expect("scenario file");
    }
    path
}

struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Ran {
    fn all(&self) -> String {
        format!(
            "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// `tekup-harness ARGS` against the deployment at `urls` (external
/// runtime), with no TLS settings from this process's environment.
async fn harness(args: &[&str], urls: &BTreeMap<String, String>) -> Ran {
    // TEKUP_HARNESS_BIN: another build of the command (e.g. a copy kept
    // away from a target directory that other builds overwrite).
    let program = std::env::var_os("TEKUP_HARNESS_BIN")
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_tekup-harness").into());
    let mut command = tokio::process::Command::new(program);
    command
        .args(args)
        .current_dir(root())
        .env("TEKUP_ECOSYSTEM", root().join("fixtures/ecosystem.toml"))
        .env("TEKUP_LOG", "warn")
        .kill_on_drop(true);
    for var in [
        "TEKUP_CA_CERT",
        "TEKUP_CLIENT_CERT",
        "TEKUP_CLIENT_KEY",
        "TEKUP_INSECURE",
        "TEKUP_EXTERNAL_FILE",
        "TEKUP_RUNTIME",
        "TEKUP_ADMIN_TOKEN",
    ] {
        command.env_remove(var);
    }
    for (name, url) in urls {
        command.env(tekup_harness::env::external::env_var(name), url);
    }
    let output = tokio::time::timeout(Duration::from_secs(240), command.output())
        .await
        .expect("the command ends within 4 minutes")
        .expect("the harness runs");
    Ran {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// `run` of the scenario as an external deployment, with `tls` flags.
async fn run_scenario(urls: &BTreeMap<String, String>, tls: &[&str], reports: &str) -> Ran {
    let file = scenario_file();
    let reports = scratch().join(reports);
    let mut args = vec![
        "run",
        file.to_str().expect("utf-8 path"),
        "--runtime",
        "external",
        "--report",
        "json",
        "--reports-dir",
        reports.to_str().expect("utf-8 path"),
    ];
    args.extend_from_slice(tls);
    harness(&args, urls).await
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[test]
fn the_front_serves_https_urls_for_every_http_service() {
    rt().block_on(async {
        let f = fixture().await;
        let urls = f.front.urls();
        for service in ["flow-api", "crm-api", "gateway", "openai"] {
            assert!(
                urls[service].starts_with("https://127.0.0.1:"),
                "{service}: {}",
                urls[service]
            );
        }
        assert!(urls["postgres"].starts_with("postgres://"), "{urls:?}");
        // A plain client (public roots only) does not trust the test CA.
        let plain = ClientTls::default().http().build().expect("client");
        let err = plain
            .get(format!("{}/health", urls["flow-api"]))
            .send()
            .await
            .expect_err("the test CA is not a public root");
        let said = tekup_harness::env::error_chain(&err);
        assert!(
            said.contains("unknown CA") && said.contains("--ca-cert"),
            "{said}"
        );
        // With the CA it answers.
        let trusted = ClientTls::builder()
            .ca_cert(f.certs.ca_cert())
            .build()
            .expect("CA file")
            .http()
            .build()
            .expect("client");
        let health = trusted
            .get(format!("{}/health", urls["flow-api"]))
            .send()
            .await
            .expect("flow-api answers through the front");
        assert!(health.status().is_success(), "{}", health.status());
        // A name the certificate is not for (resolved to the front) is a
        // hostname mismatch, said so.
        let port = urls["flow-api"].rsplit(':').next().expect("port");
        let at: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().expect("address");
        let renamed = ClientTls::builder()
            .ca_cert(f.certs.ca_cert())
            .build()
            .expect("CA file")
            .http()
            .resolve("elsewhere.example", at)
            .build()
            .expect("client");
        let err = renamed
            .get(format!("https://elsewhere.example:{port}/health"))
            .send()
            .await
            .expect_err("the certificate is for localhost and 127.0.0.1");
        let said = tekup_harness::env::error_chain(&err);
        assert!(said.contains("hostname mismatch"), "{said}");
    });
}

#[test]
fn a_scenario_with_ca_cert_passes_over_https_and_wss() {
    rt().block_on(async {
        let f = fixture().await;
        let ca = f.certs.ca_cert();
        let ran = run_scenario(f.front.urls(), &["--ca-cert", path(&ca)], "with-ca").await;
        assert_eq!(ran.code, Some(0), "{}", ran.all());
        assert!(ran.stdout.contains("1 passed, 0 failed"), "{}", ran.all());
        assert!(!ran.stderr.contains("--insecure:"), "{}", ran.all());
    });
}

#[test]
fn without_the_ca_the_run_fails_naming_ca_cert() {
    rt().block_on(async {
        let f = fixture().await;
        let ran = run_scenario(f.front.urls(), &[], "without-ca").await;
        assert_eq!(ran.code, Some(1), "{}", ran.all());
        let said = ran.all();
        assert!(said.contains("unknown CA"), "{said}");
        assert!(said.contains("--ca-cert FILE"), "{said}");
        assert!(!said.contains("panicked"), "{said}");
    });
}

#[test]
fn insecure_passes_and_says_what_it_skips() {
    rt().block_on(async {
        let f = fixture().await;
        let ran = run_scenario(f.front.urls(), &["--insecure"], "insecure").await;
        assert_eq!(ran.code, Some(0), "{}", ran.all());
        assert!(ran.stdout.contains("1 passed, 0 failed"), "{}", ran.all());
        assert_eq!(
            ran.stderr
                .matches("certificates and host names are NOT verified")
                .count(),
            1,
            "said once, at the start: {}",
            ran.all()
        );
    });
}

#[test]
fn mtls_without_a_client_certificate_is_refused_naming_client_cert() {
    rt().block_on(async {
        let f = fixture().await;
        let refused_before = f.mtls.refused_handshakes();
        let ca = f.certs.ca_cert();
        let ran = run_scenario(f.mtls.urls(), &["--ca-cert", path(&ca)], "mtls-none").await;
        assert_eq!(ran.code, Some(1), "{}", ran.all());
        let said = ran.all();
        assert!(said.contains("requires a client certificate"), "{said}");
        assert!(
            said.contains("--client-cert FILE --client-key FILE"),
            "{said}"
        );
        assert!(f.mtls.refused_handshakes() > refused_before);
    });
}

#[test]
fn mtls_with_a_client_certificate_passes() {
    rt().block_on(async {
        let f = fixture().await;
        let (ca, cert, key) = (
            f.certs.ca_cert(),
            f.certs.client_cert(),
            f.certs.client_key(),
        );
        let ran = run_scenario(
            f.mtls.urls(),
            &[
                "--ca-cert",
                path(&ca),
                "--client-cert",
                path(&cert),
                "--client-key",
                path(&key),
            ],
            "mtls",
        )
        .await;
        assert_eq!(ran.code, Some(0), "{}", ran.all());
        assert!(ran.stdout.contains("1 passed, 0 failed"), "{}", ran.all());
    });
}

#[test]
fn wrong_tls_files_are_errors_naming_the_file() {
    rt().block_on(async {
        let dir = scratch().join("bad-files");
        std::fs::create_dir_all(&dir).expect("dir");
        let not_pem = dir.join("not-pem.txt");
        std::fs::write(&not_pem, "this is not a certificate\n").expect("write");
        let missing = dir.join("missing.pem");
        let other = TestCerts::generate(dir.join("other")).expect("certificates");
        let mine = TestCerts::generate(dir.join("mine")).expect("certificates");
        let no_urls = BTreeMap::new();
        let cases: Vec<(Vec<&str>, Vec<String>)> = vec![
            (
                vec!["--ca-cert", path(&not_pem)],
                vec![
                    format!("the CA certificate {} is not PEM", not_pem.display()),
                    "BEGIN CERTIFICATE".into(),
                ],
            ),
            (
                vec!["--ca-cert", path(&missing)],
                vec![format!(
                    "failed to read the CA certificate {}",
                    missing.display()
                )],
            ),
        ];
        let (cert, wrong_key, good_key) =
            (mine.client_cert(), other.client_key(), mine.client_key());
        let mut cases = cases;
        cases.push((
            vec![
                "--client-cert",
                path(&cert),
                "--client-key",
                path(&wrong_key),
            ],
            vec![format!(
                "the client key {} does not match the client certificate {}",
                wrong_key.display(),
                cert.display()
            )],
        ));
        cases.push((
            vec![
                "--client-cert",
                path(&not_pem),
                "--client-key",
                path(&good_key),
            ],
            vec![format!(
                "the client certificate {} is not PEM",
                not_pem.display()
            )],
        ));
        cases.push((
            vec!["--client-cert", path(&cert), "--client-key", path(&not_pem)],
            vec![format!("the client key {} is not PEM", not_pem.display())],
        ));
        for (flags, wanted) in cases {
            let ran = run_scenario(&no_urls, &flags, "bad-files").await;
            assert_eq!(ran.code, Some(1), "{flags:?}: {}", ran.all());
            for text in wanted {
                assert!(
                    ran.stderr.contains(&text),
                    "{flags:?}: wanted {text:?} in {}",
                    ran.all()
                );
            }
            assert!(!ran.stderr.contains("panicked"), "{}", ran.all());
        }
        // One half of a client identity is a usage error (exit 2).
        let ran = run_scenario(&no_urls, &["--client-cert", path(&cert)], "bad-files").await;
        assert_eq!(ran.code, Some(2), "{}", ran.all());
        assert!(ran.stderr.contains("--client-key"), "{}", ran.all());
    });
}

#[test]
fn the_load_generator_runs_through_the_front() {
    rt().block_on(async {
        let f = fixture().await;
        let tls = ClientTls::builder()
            .ca_cert(f.certs.ca_cert())
            .client_cert(f.certs.client_cert(), f.certs.client_key())
            .build()
            .expect("TLS files");
        let token = f.eco.file().vars["admin-token"].clone();
        // Through the mTLS front: goose's users and the WebSocket clients
        // both need the client certificate.
        let platform = Platform::with_tls(f.mtls.urls().clone(), token, &tls).expect("platform");
        let dir = scratch().join("load");
        std::fs::create_dir_all(&dir).expect("dir");
        let mut plan = Plan::new(Profile::WsFanout, 2, Duration::from_secs(2));
        plan.ws_clients = 2;
        let report = load::run(&plan, &platform)
            .await
            .unwrap_or_else(|e| panic!("the load runs: {}", tekup_harness::env::error_chain(&e)));
        assert!(report.total.count > 0, "{report:#?}");
        assert_eq!(report.total.errors, 0, "{:?}", report.error_samples);
        let delivery = report
            .event_delivery
            .as_ref()
            .expect("ws-fanout counts deliveries");
        assert_eq!(
            delivery.clients, 4,
            "2 tenants × 2 wss:// clients: {delivery:?}"
        );
        assert!(delivery.delivered > 0, "{delivery:?}");
        assert_eq!(delivery.missed, 0, "{delivery:?}");
        assert!(
            report.targets.contains(&f.mtls.urls()["gateway"]),
            "the gateway's https URL is among the targets: {:?}",
            report.targets
        );
    });
}

#[test]
fn the_property_suite_runs_through_the_front() {
    rt().block_on(async {
        let f = fixture().await;
        let ca = f.certs.ca_cert();
        let reports = scratch().join("prop");
        let ran = harness(
            &[
                "prop",
                "--runtime",
                "external",
                "--cases",
                "2",
                "--max-ops",
                "4",
                "--seed",
                "7",
                "--reports-dir",
                path(&reports),
                "--ca-cert",
                path(&ca),
            ],
            f.front.urls(),
        )
        .await;
        assert_eq!(ran.code, Some(0), "{}", ran.all());
        assert!(
            ran.stdout.contains("property holds: 2 cases"),
            "{}",
            ran.all()
        );
    });
}

#[test]
fn gateway_websockets_say_what_is_wrong_with_tls() {
    rt().block_on(async {
        let f = fixture().await;
        let within = Duration::from_secs(10);
        let open = |tls: ClientTls, gateway: String| async move {
            tekup_harness::platform::open_events(&tls, &gateway, "k", "t", "crm-web", within)
                .await
                .map(|_| ())
        };
        let unknown = open(ClientTls::default(), f.front.urls()["gateway"].clone())
            .await
            .expect_err("the test CA is not trusted by default");
        assert!(unknown.url.starts_with("wss://127.0.0.1:"), "{unknown}");
        assert!(
            unknown.why.contains("unknown CA") && unknown.why.contains("--ca-cert FILE"),
            "{unknown}"
        );
        let ca_only = ClientTls::builder()
            .ca_cert(f.certs.ca_cert())
            .build()
            .expect("CA file");
        let no_cert = open(ca_only, f.mtls.urls()["gateway"].clone())
            .await
            .expect_err("the mTLS front wants a client certificate");
        assert!(
            no_cert.why.contains("requires a client certificate")
                && no_cert.why.contains("--client-cert FILE"),
            "{no_cert}"
        );
        // Through TLS the gateway itself answers: a wrong key is refused by
        // the gateway (an HTTP answer), not by TLS.
        let full = ClientTls::builder()
            .ca_cert(f.certs.ca_cert())
            .client_cert(f.certs.client_cert(), f.certs.client_key())
            .build()
            .expect("TLS files");
        let refused = open(full, f.mtls.urls()["gateway"].clone())
            .await
            .expect_err("no such tenant key");
        assert!(!refused.why.contains("TLS"), "{refused}");
        assert!(refused.why.contains("refused the connection"), "{refused}");
    });
}
