//! The ecosystem's links under the process runtime, Redis's append-only
//! file, and the runtimes that refuse links.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tekup_harness::chaos::Toxic;
use tekup_harness::env::{error_chain, Ecosystem, EnvError, Runtime};

use crate::common::ms;

const ACME_KEY: &str = "tk_acmekey1_AcmeTestSecretNotForProduction01";

pub(crate) fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/ecosystem.toml")
}

async fn start(builder: tekup_harness::env::EcosystemBuilder) -> Ecosystem {
    builder
        .runtime(Runtime::Process)
        .start()
        .await
        .unwrap_or_else(|e| panic!("the ecosystem starts: {}", error_chain(&e)))
}

/// `GET <service>/health`: status and body.
async fn health(http: &reqwest::Client, eco: &Ecosystem, service: &str) -> (u16, Value) {
    let url = format!("{}/health", eco.url(service).expect("service URL"));
    match http.get(&url).send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            (status, response.json().await.unwrap_or(Value::Null))
        }
        Err(e) => (0, json!({ "error": e.to_string() })),
    }
}

/// `POST /leads` on flow-api: the status, or what went wrong.
async fn post_lead(http: &reqwest::Client, eco: &Ecosystem) -> Result<u16, String> {
    let email = format!("{}@example.com", uuid::Uuid::new_v4().simple());
    http.post(format!("{}/leads", eco.url("flow-api").expect("flow")))
        .header("x-tenant-key", ACME_KEY)
        .header("x-tenant-id", "acme")
        .header("x-source-app", "flow-web")
        .json(&json!({ "firstName": "Ada", "email": email }))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .map_err(|e| error_chain(&e))
}

/// Polls `flow-api`'s health until `wanted` says yes (within `within`).
async fn flow_health_until(
    http: &reqwest::Client,
    eco: &Ecosystem,
    what: &str,
    within: Duration,
    wanted: impl Fn(u16, &Value) -> bool,
) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let (status, body) = health(http, eco, "flow-api").await;
        if wanted(status, &body) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "flow-api health never showed {what} within {within:?}; last: {status} {body}"
        );
        tokio::time::sleep(ms(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_taken_down_cuts_flow_api_from_redis_alone_and_it_recovers() {
    let eco = start(Ecosystem::builder().file(fixtures())).await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");

    let names: Vec<&str> = eco.links().map(|l| l.name()).collect();
    for expected in [
        "flow-api->redis",
        "flow-api->postgres",
        "flow-api->crm-api",
        "worker->redis",
        "crm-api->redis",
        "migrate->postgres",
    ] {
        assert!(names.contains(&expected), "{expected} in {names:?}");
    }
    assert!(!names.iter().any(|n| n.starts_with("redis->")), "{names:?}");
    assert_eq!(
        eco.state()["links"].as_array().map(Vec::len),
        Some(names.len())
    );
    let unknown = eco.link("flow-api", "nope").expect_err("no such component");
    assert!(
        unknown.to_string().starts_with(
            "no link `flow-api->nope` (there is no component `nope`); the links are: "
        ),
        "{unknown}"
    );
    let backwards = eco
        .link_named("redis->flow-api")
        .expect_err("redis calls nobody");
    assert!(
        backwards
            .to_string()
            .contains("(`redis` references no host, port or url of `flow-api` in its args or env)"),
        "{backwards}"
    );
    assert!(matches!(
        eco.link_named("flow-api"),
        Err(EnvError::Chaos(_))
    ));

    assert_eq!(
        post_lead(&http, &eco).await,
        Ok(201),
        "a lead before any fault"
    );
    let link = eco.link("flow-api", "redis").expect("the link exists");
    assert!(
        link.stats().accepted >= 1,
        "flow-api reaches Redis through it"
    );

    // Down: flow-api's connection to Redis is closed and new ones are
    // refused; its health says so at once. Up again right after: the
    // services' Redis client (redis-rs ConnectionManager, default backoff)
    // retries after 1-2 s, so it is back within seconds. An outage longer
    // than that costs flow-api 1-2 minutes (its next retry waits 60-120 s;
    // 115 s measured), which the chaos suites will show.
    link.disable().expect("down");
    let body = flow_health_until(
        &http,
        &eco,
        "redis unreachable",
        Duration::from_secs(30),
        |status, body| status == 503 && body["redis"] == "unreachable",
    )
    .await;
    link.enable().expect("up");
    assert_eq!(body["database"], "ok", "only Redis is cut: {body}");
    let (crm, crm_body) = health(&http, &eco, "crm-api").await;
    assert_eq!(
        crm, 200,
        "crm-api's own link to Redis stayed up: {crm_body}"
    );
    // Seconds as a rule; the bound leaves room for a machine so loaded that
    // the client's second retry came before the link was up again.
    flow_health_until(
        &http,
        &eco,
        "recovery",
        Duration::from_secs(150),
        |status, _| status == 200,
    )
    .await;
    assert_eq!(
        post_lead(&http, &eco).await,
        Ok(201),
        "leads are taken again"
    );

    // Latency on the link slows flow-api's Redis round trips.
    link.add(Toxic::latency(ms(400), Duration::ZERO).named("slow-redis"))
        .expect("adds");
    let started = Instant::now();
    let (status, _) = health(&http, &eco, "flow-api").await;
    assert_eq!(status, 200);
    assert!(
        started.elapsed() >= ms(400),
        "the health check's PING crossed the slowed link: {:?}",
        started.elapsed()
    );
    eco.reset_links().expect("reset");
    assert!(link.toxics().is_empty());
}

/// A small ecosystem: Redis, and a shell that prints the Redis port it was
/// given and then waits.
fn small_file(dir: &Path) -> PathBuf {
    let path = dir.join("ecosystem.toml");
    std::fs::write(
        &path,
        r#"
[component.redis]
kind = "redis"

[component.client]
program = "/bin/sh"
args = ["-c", "echo redis at ${redis.host}:${redis.port} as ${redis.url}; exec sleep 600"]
port = 80
ready = { log = "redis at" }
"#,
    )
    .expect("writes the file");
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn references_resolve_to_the_link_unless_links_are_off() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = small_file(dir.path());
    let eco = start(
        Ecosystem::builder()
            .file(&file)
            .logs_dir(dir.path().join("on")),
    )
    .await;
    let names: Vec<&str> = eco.links().map(|l| l.name()).collect();
    assert_eq!(names, ["client->redis"]);
    let proxy = eco.link("client", "redis").expect("link");
    let redis_port = eco.component("redis").expect("redis").port().expect("port");
    assert_eq!(proxy.upstream().port(), redis_port);
    let log = eco.component("client").expect("client").log_tail(5).await;
    let port = proxy.addr().port();
    assert!(
        log.contains(&format!(
            "redis at 127.0.0.1:{port} as redis://127.0.0.1:{port}"
        )),
        "the client was given the proxy, not Redis ({redis_port}): {log}"
    );

    // The link outlives a restart of Redis: each new connection reaches
    // the upstream again.
    let through = redis::Client::open(format!("redis://{}", proxy.addr())).expect("url");
    let ping = || async {
        let mut c = through.get_multiplexed_async_connection().await?;
        redis::cmd("PING").query_async::<String>(&mut c).await
    };
    assert_eq!(ping().await.expect("PING through the link"), "PONG");
    let accepted = proxy.stats().accepted;
    let redis = eco.component("redis").expect("redis");
    redis.kill().await.expect("kill");
    assert!(ping().await.is_err(), "Redis is gone behind the link");
    redis.restart().await.expect("restart");
    assert_eq!(ping().await.expect("PING after the restart"), "PONG");
    assert!(
        proxy.stats().accepted >= accepted + 2,
        "{:?}",
        proxy.stats()
    );
    drop(eco);

    let eco = start(
        Ecosystem::builder()
            .file(&file)
            .logs_dir(dir.path().join("off"))
            .links(false),
    )
    .await;
    assert_eq!(eco.links().count(), 0);
    let redis_port = eco.component("redis").expect("redis").port().expect("port");
    let log = eco.component("client").expect("client").log_tail(5).await;
    assert!(log.contains(&format!("127.0.0.1:{redis_port} ")), "{log}");
    let off = eco
        .link("client", "redis")
        .expect_err("no links")
        .to_string();
    assert_eq!(
        off,
        "failed to use link `client->redis`: links were turned off (EcosystemBuilder::links(false))"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_keeps_what_it_acknowledged_across_kill_and_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let eco = start(
        Ecosystem::builder()
            .file(small_file(dir.path()))
            .logs_dir(dir.path().join("logs")),
    )
    .await;
    let mut redis = eco.redis().await.expect("redis");
    let mut pipe = redis::pipe();
    for i in 0..1_000 {
        pipe.cmd("SET").arg(format!("key:{i}")).arg(i).ignore();
    }
    pipe.cmd("XADD")
        .arg("tekup:queue:lead-processing")
        .arg("*")
        .arg("job")
        .arg(r#"{"kind":"process-lead"}"#)
        .ignore();
    let () = pipe.query_async(&mut redis).await.expect("writes");
    // Killed right after the acknowledgement. The pipeline takes Redis
    // more than one event-loop turn (it reads 16 KB at a time), which is
    // where `appendfsync everysec` would postpone the AOF write and lose
    // the rest.
    let component = eco.component("redis").expect("redis");
    component.kill().await.expect("kill");
    component.restart().await.expect("restart");

    let mut redis = eco.redis().await.expect("redis after the restart");
    let keys: usize = redis::cmd("DBSIZE")
        .query_async(&mut redis)
        .await
        .expect("dbsize");
    assert_eq!(
        keys,
        1_001,
        "every key and the queue survived; Redis's log:\n{}",
        eco.component("redis").expect("redis").log_tail(40).await
    );
    let last: i64 = redis::cmd("GET")
        .arg("key:999")
        .query_async(&mut redis)
        .await
        .expect("get");
    assert_eq!(last, 999);
    let jobs: usize = redis::cmd("XLEN")
        .arg("tekup:queue:lead-processing")
        .query_async(&mut redis)
        .await
        .expect("xlen");
    assert_eq!(jobs, 1, "the queued job survived");
}

#[tokio::test]
async fn links_are_refused_where_they_cannot_work() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = small_file(dir.path());
    let docker = Ecosystem::builder()
        .file(&file)
        .runtime(Runtime::Docker)
        .links(true)
        .start()
        .await
        .expect_err("docker has no links");
    assert_eq!(
        docker.to_string(),
        "the docker runtime cannot put fault proxies on the links between components: links need the process runtime (--runtime process); containers reach each other on their own network"
    );
    let external = Ecosystem::builder()
        .file(&file)
        .runtime(Runtime::External)
        .links(true)
        .start()
        .await
        .expect_err("an external deployment has no links");
    assert!(
        external
            .to_string()
            .starts_with("the external runtime cannot put fault proxies on the links"),
        "{external}"
    );
    let kept = Ecosystem::builder()
        .file(&file)
        .runtime(Runtime::Process)
        .keep(true)
        .links(true)
        .start()
        .await
        .expect_err("a kept environment has no links");
    assert!(
        kept.to_string()
            .contains("which a kept environment outlives"),
        "{kept}"
    );
}
