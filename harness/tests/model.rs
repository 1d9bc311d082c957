//! The ecosystem file: the shipped one is valid, and mistakes are reported
//! with the file's line.

use std::path::Path;

use tekup_harness::env::{EcosystemFile, Kind, Ready};

fn parse(text: &str) -> Result<EcosystemFile, String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/test.toml");
    EcosystemFile::parse(&dir, text).map_err(|e| e.to_string())
}

const BASE: &str = r#"[vars]
secret = "s"

[component.postgres]
kind = "postgres"
password = "${vars.secret}"

[component.api]
program = "tekup-service"
port = 8080
ready = { http = "/health" }
env = { DATABASE_URL = "${postgres.url}" }
"#;

#[test]
fn the_shipped_file_is_valid_and_orders_the_start() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/ecosystem.toml");
    let file = EcosystemFile::load(&path).expect("fixtures/ecosystem.toml is valid");
    for name in [
        "postgres",
        "redis",
        "openai",
        "gemini",
        "graph",
        "stripe",
        "migrate",
        "flow-api",
        "crm-api",
        "secure-platform",
    ] {
        assert!(file.component(name).is_some(), "{name} is in the file");
    }
    assert_eq!(file.component("migrate").expect("migrate").kind, Kind::Job);
    assert_eq!(
        file.component("flow-api").expect("flow").ready,
        Ready::Http("/health".into())
    );
    let layer_of = |name: &str| {
        file.layers
            .iter()
            .position(|l| l.iter().any(|n| n == name))
            .expect("placed")
    };
    assert!(layer_of("postgres") < layer_of("migrate"));
    assert!(layer_of("migrate") < layer_of("crm-api"));
    assert!(
        layer_of("crm-api") < layer_of("flow-api"),
        "flow-api references crm-api"
    );
    assert!(file
        .component("flow-api")
        .expect("flow")
        .depends_on
        .contains("openai"));
}

#[test]
fn an_unknown_key_names_its_line() {
    let text = BASE.replace("port = 8080", "port = 8080\nprots = 1");
    let err = parse(&text).expect_err("unknown key");
    assert!(
        err.contains("test.toml:11:1: unknown field `prots`"),
        "{err}"
    );
}

#[test]
fn an_unknown_kind_names_its_line() {
    let err = parse(&BASE.replace("kind = \"postgres\"", "kind = \"mysql\"")).expect_err("kind");
    assert!(
        err.contains("test.toml:5:8: unknown variant `mysql`"),
        "{err}"
    );
}

#[test]
fn a_dangling_component_reference_names_its_line_and_the_known_components() {
    let err = parse(&BASE.replace("${postgres.url}", "${postgress.url}")).expect_err("dangling");
    assert!(err.contains("test.toml:12:"), "{err}");
    assert!(
        err.contains("`${postgress.url}` refers to component `postgress`"),
        "{err}"
    );
    assert!(err.contains("known: api, postgres"), "{err}");
}

#[test]
fn wait_for_defaults_to_every_dependency_and_names_only_dependencies() {
    let file = parse(BASE).expect("valid");
    let api = file.component("api").expect("api");
    assert_eq!(api.wait_for, api.depends_on, "by default: wait for all");

    let file = parse(&BASE.replace("port = 8080", "port = 8080\nwait-for = []")).expect("valid");
    let api = file.component("api").expect("api");
    assert!(api.wait_for.is_empty());
    assert!(
        api.depends_on.contains("postgres"),
        "still started after it"
    );

    let text = BASE.replace("port = 8080", "port = 8080\nwait-for = [\"redis\"]");
    let err = parse(&text).expect_err("not a dependency");
    assert!(
        err.contains("test.toml:11:")
            && err.contains("`wait-for` names \"redis\", which `api` neither references nor lists in `depends-on` (its dependencies: postgres)"),
        "{err}"
    );

    // The shipped services wait for the migration and Redis only.
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/ecosystem.toml");
    let shipped = EcosystemFile::load(&path).expect("valid");
    let flow = shipped.component("flow-api").expect("flow-api");
    assert!(flow.depends_on.contains("crm-api"));
    assert_eq!(
        flow.wait_for.iter().map(String::as_str).collect::<Vec<_>>(),
        ["migrate", "redis"]
    );
}

#[test]
fn a_dangling_variable_attribute_or_dependency_is_an_error_with_its_line() {
    let err = parse(&BASE.replace("${vars.secret}", "${vars.secrte}")).expect_err("var");
    assert!(
        err.contains("test.toml:6:") && err.contains("vars.secrte"),
        "{err}"
    );

    let err = parse(&BASE.replace("${postgres.url}", "${postgres.uri}")).expect_err("attr");
    assert!(
        err.contains("test.toml:12:") && err.contains("unknown attribute"),
        "{err}"
    );

    let text = BASE.replace("port = 8080", "port = 8080\ndepends-on = [\"redis\"]");
    let err = parse(&text).expect_err("dependency");
    assert!(
        err.contains("test.toml:11:") && err.contains("\"redis\", which is not a component"),
        "{err}"
    );

    let err = parse(&BASE.replace("${postgres.url}", "${file:nope.yaml}")).expect_err("file");
    assert!(
        err.contains("test.toml:12:") && err.contains("does not exist"),
        "{err}"
    );
}

#[test]
fn a_cycle_is_an_error() {
    let text = format!(
        "{BASE}\n[component.other]\nprogram = \"x\"\nport = 1\nready = {{ tcp = true }}\nargs = [\"${{api.url}}\"]\n"
    )
    .replace("env = { DATABASE_URL", "args = [\"${other.url}\"]\nenv = { DATABASE_URL");
    let err = parse(&text).expect_err("cycle");
    assert!(
        err.contains("dependency cycle among components api, other"),
        "{err}"
    );
}

#[test]
fn a_service_needs_a_program_a_port_and_a_readiness_check() {
    let err = parse(&BASE.replace("program = \"tekup-service\"\n", "")).expect_err("program");
    assert!(
        err.contains("test.toml:8:") && err.contains("needs `program`"),
        "{err}"
    );
    let err = parse(&BASE.replace("port = 8080\n", "")).expect_err("port");
    assert!(err.contains("needs `port`"), "{err}");
    let err = parse(&BASE.replace("ready = { http = \"/health\" }\n", "")).expect_err("ready");
    assert!(err.contains("a service needs `ready`"), "{err}");
    let err = parse(&BASE.replace(
        "{ http = \"/health\" }",
        "{ http = \"/health\", tcp = true }",
    ))
    .expect_err("two checks");
    assert!(err.contains("exactly one of"), "{err}");
    let err = parse(&BASE.replace(
        "{ http = \"/health\" }",
        "{ http = \"/h\", timeout = \"5 parsecs\" }",
    ))
    .expect_err("duration");
    assert!(
        err.contains("test.toml:11:") && err.contains("invalid duration"),
        "{err}"
    );
}

#[test]
fn the_shipped_prometheus_scrapes_the_services_and_is_left_out_unless_asked() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/ecosystem.toml");
    let mut file = EcosystemFile::load(&path).expect("valid");
    let prometheus = file.component("prometheus").expect("in the file").clone();
    assert_eq!(prometheus.kind, Kind::Prometheus);
    assert_eq!(prometheus.ready, Ready::Http("/-/ready".into()));
    assert!(prometheus.rules[0].ends_with("prometheus/alerts.yml"));
    for service in [
        "crm-api",
        "flow-api",
        "secure-platform",
        "gateway",
        "worker",
    ] {
        assert!(prometheus.scrape.iter().any(|s| s == service), "{service}");
    }
    assert!(
        !prometheus.scrape.iter().any(|s| s == "stripe"),
        "mocks have no metrics: {:?}",
        prometheus.scrape
    );
    assert_eq!(
        file.layers.last().map(Vec::as_slice),
        Some(&["prometheus".to_owned()][..]),
        "it starts after what it scrapes"
    );
    file.without_optional();
    assert!(file.component("prometheus").is_none());
    assert!(file.layers.iter().flatten().all(|n| n != "prometheus"));
    assert!(file.layers.iter().all(|l| !l.is_empty()));
}

#[test]
fn prometheus_mistakes_name_their_line() {
    let with = |extra: &str| format!("{BASE}\n[component.prom]\nkind = \"prometheus\"\n{extra}");
    let err = parse(&with("rules = [\"no-such-rules.yml\"]")).expect_err("missing rules");
    assert!(err.contains("test.toml:16:"), "{err}");
    assert!(
        err.contains("no-such-rules.yml, which is not a file"),
        "{err}"
    );
    let err = parse(&BASE.replace("port = 8080", "port = 8080\nrules = [\"x.yml\"]"))
        .expect_err("rules on a service");
    assert!(
        err.contains("`rules` is for a Prometheus component"),
        "{err}"
    );
    let err = parse(&format!(
        "{}\ndepends-on = [\"prom\"]\n[component.prom]\nkind = \"prometheus\"\n",
        BASE.trim_end()
    ))
    .expect_err("depends on the optional");
    assert!(
        err.contains("component `api` depends on `prom`, a Prometheus, which starts only when a run asks for it"),
        "{err}"
    );
}

#[test]
fn a_snapshot_job_changes_its_postgres_alone_and_is_waited_for() {
    let job = "\n[component.migrate]\nkind = \"job\"\nprogram = \"tekup-service\"\n\
               env = { URL = \"${postgres.url}\" }\nsnapshot = \"postgres\"\n";
    // `api` uses Postgres without waiting for the job.
    let err = parse(&format!("{BASE}{job}")).expect_err("api does not wait");
    assert!(
        err.contains("`api` uses `postgres` without waiting for `migrate`"),
        "{err}"
    );
    let waits = BASE.replace("port = 8080", "port = 8080\ndepends-on = [\"migrate\"]");
    let file = parse(&format!("{waits}{job}")).expect("valid once api waits for it");
    assert_eq!(
        file.component("migrate")
            .and_then(|c| c.snapshot.as_deref()),
        Some("postgres")
    );
    let cases = [
        (
            job.replace("kind = \"job\"\n", "port = 1\nready = { tcp = true }\n"),
            "`snapshot` is for a job; `migrate` is a service",
        ),
        (
            job.replace("snapshot = \"postgres\"", "snapshot = \"api\""),
            "`snapshot` names \"api\", which is not a Postgres component",
        ),
        (
            job.replace("${postgres.url}", "${postgres.url} ${api.url}"),
            "it depends on `api`, and its result could change with it",
        ),
        (
            job.replace("snapshot", "wait-for = []\nsnapshot"),
            "`migrate` keeps a snapshot of `postgres` but does not wait for it",
        ),
    ];
    for (job, expected) in cases {
        let err = parse(&format!("{waits}{job}")).expect_err(expected);
        assert!(err.contains("test.toml:"), "{err}");
        assert!(err.contains(expected), "{err}");
    }
}

#[test]
fn waits_itself_for_names_dependencies_the_runtime_does_not_hold_it_back_for() {
    let itself = |extra: &str| BASE.replace("port = 8080", &format!("port = 8080\n{extra}"));
    let file = parse(&itself("waits-itself-for = [\"postgres\"]")).expect("valid");
    let api = file.component("api").expect("api");
    assert!(api.waits_itself_for.contains("postgres"));
    assert!(
        api.wait_for.is_empty(),
        "left out of the default wait-for: {:?}",
        api.wait_for
    );

    let err = parse(&itself("waits-itself-for = [\"redis\"]")).expect_err("not a dependency");
    assert!(
        err.contains("test.toml:11:")
            && err.contains("`waits-itself-for` names \"redis\", which `api` neither references nor lists in `depends-on` (its dependencies: postgres)"),
        "{err}"
    );
    let err = parse(&itself(
        "wait-for = [\"postgres\"]\nwaits-itself-for = [\"postgres\"]",
    ))
    .expect_err("both");
    assert!(
        err.contains("test.toml:11:")
            && err.contains("`api` lists \"postgres\" in both `wait-for` and `waits-itself-for`"),
        "{err}"
    );

    // Waiting for the Postgres by itself does not excuse a component from
    // waiting for the Postgres's snapshot job: it is still in `wait-for`
    // (the runtime lets it start beside the Postgres only when the job is
    // replayed, not run).
    let job = "\n[component.migrate]\nkind = \"job\"\nprogram = \"tekup-service\"\n\
               env = { URL = \"${postgres.url}\" }\nsnapshot = \"postgres\"\n";
    let err = parse(&format!(
        "{}{job}",
        itself("waits-itself-for = [\"postgres\"]")
    ))
    .expect_err("api does not wait for the job");
    assert!(
        err.contains("`api` uses `postgres` without waiting for `migrate`"),
        "{err}"
    );
    let file = parse(&format!(
        "{}{job}",
        itself("depends-on = [\"migrate\"]\nwaits-itself-for = [\"postgres\"]")
    ))
    .expect("valid");
    let api = file.component("api").expect("api");
    assert_eq!(api.wait_for.iter().collect::<Vec<_>>(), ["migrate"]);

    // The shipped services: the job and Redis in `wait-for`, Postgres by themselves.
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/ecosystem.toml");
    let shipped = EcosystemFile::load(&path).expect("valid");
    for service in [
        "crm-api",
        "flow-api",
        "secure-platform",
        "gateway",
        "worker",
    ] {
        let c = shipped.component(service).expect(service);
        assert_eq!(
            c.waits_itself_for.iter().collect::<Vec<_>>(),
            ["postgres"],
            "{service}"
        );
        assert_eq!(
            c.wait_for.iter().collect::<Vec<_>>(),
            ["migrate", "redis"],
            "{service}"
        );
    }
}
