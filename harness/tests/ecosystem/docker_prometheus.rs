//! The optional Prometheus under the `docker` runtime, from the offline
//! image (`tekup-harness/prometheus:2`): it scrapes every service on the
//! run's network, has the platform's rules loaded, and sees a killed
//! service go down (`ServiceDown` fires). Waits poll Prometheus until a
//! condition holds, with generous deadlines (not speed verdicts).

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use serde_json::Value;
use tekup_harness::alerts::AlertLog;
use tekup_harness::env::{docker, error_chain, Ecosystem, Runtime};

use crate::common::{ecosystem_file, workspace};
use crate::docker::require_docker_images;

/// Far longer than a few one-second scrapes of services already ready.
const TARGETS_UP_WITHIN: Duration = Duration::from_secs(60);

/// `GET <prometheus><path>`'s `data`.
async fn api(http: &reqwest::Client, prometheus: &str, path: &str) -> Value {
    let url = format!("{prometheus}{path}");
    let body: Value = http
        .get(&url)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap_or_else(|e| panic!("Prometheus answers {url}: {e}"))
        .json()
        .await
        .unwrap_or_else(|e| panic!("{url} answers JSON: {e}"));
    assert_eq!(body["status"], "success", "{url}: {body}");
    body["data"].clone()
}

/// `(job, health, scrape URL)` of every active target.
fn targets(data: &Value) -> Vec<(String, String, String)> {
    data["activeTargets"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
            (
                text(&t["labels"]["job"]),
                text(&t["health"]),
                text(&t["scrapeUrl"]),
            )
        })
        .collect()
}

/// The alert names of the shipped rules, read from the file itself.
fn shipped_alerts() -> BTreeSet<String> {
    let path = workspace().join("fixtures/prometheus/alerts.yml");
    let text = std::fs::read_to_string(&path).expect("alerts.yml");
    let yaml: serde_yaml::Value = serde_yaml::from_str(&text).expect("alerts.yml is YAML");
    yaml["groups"]
        .as_sequence()
        .into_iter()
        .flatten()
        .flat_map(|g| g["rules"].as_sequence().cloned().unwrap_or_default())
        .filter_map(|r| r["alert"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_under_docker_scrapes_every_service_loads_the_rules_and_sees_one_go_down() {
    require_docker_images().await;
    let from = SystemTime::now();
    let eco = Ecosystem::builder()
        .file(ecosystem_file())
        .runtime(Runtime::Docker)
        .prometheus(true)
        .start()
        .await
        .unwrap_or_else(|e| panic!("the ecosystem starts: {}", error_chain(&e)));
    assert_eq!(eco.runtime(), Runtime::Docker);
    let run = eco.run_id().to_owned();
    let prometheus = eco.prometheus().expect("asked for, so running");
    assert!(
        prometheus.url().starts_with("http://127.0.0.1:"),
        "published to the harness: {}",
        prometheus.url()
    );
    let http = reqwest::Client::new();

    // Every service the file scrapes is a target, reached by its name on
    // the run's network (no fault proxy in between), and all come up.
    let scraped: BTreeSet<String> = eco
        .file()
        .component("prometheus")
        .expect("in the file")
        .scrape
        .iter()
        .cloned()
        .collect();
    assert!(scraped.contains("crm-api") && scraped.contains("gateway"));
    let deadline = tokio::time::Instant::now() + TARGETS_UP_WITHIN;
    let seen = loop {
        let seen = targets(&api(&http, prometheus.url(), "/api/v1/targets").await);
        let up: BTreeSet<String> = seen
            .iter()
            .filter(|(_, health, _)| health == "up")
            .map(|(job, ..)| job.clone())
            .collect();
        if up == scraped || tokio::time::Instant::now() >= deadline {
            break seen;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let jobs: BTreeSet<String> = seen.iter().map(|(job, ..)| job.clone()).collect();
    assert_eq!(jobs, scraped, "one target per scraped service: {seen:?}");
    for (job, health, url) in &seen {
        assert_eq!(
            health, "up",
            "{job} up within {TARGETS_UP_WITHIN:?}: {seen:?}"
        );
        assert_eq!(url, &format!("http://{job}:8080/metrics"), "{seen:?}");
    }

    // The rules of alerts.yml, and only they, are loaded.
    let rules = api(&http, prometheus.url(), "/api/v1/rules?type=alert").await;
    let loaded: BTreeSet<String> = rules["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
        .filter_map(|r| r["name"].as_str().map(str::to_owned))
        .collect();
    let shipped = shipped_alerts();
    assert!(shipped.contains("ServiceDown"), "{shipped:?}");
    assert_eq!(
        loaded, shipped,
        "the loaded alerting rules are alerts.yml's"
    );

    // A killed service container stops answering its scrape: ServiceDown
    // fires for it once its `for:` is over.
    let hold = prometheus
        .rule_hold("ServiceDown")
        .await
        .expect("rules")
        .expect("ServiceDown loaded");
    eco.component("gateway")
        .expect("gateway")
        .kill()
        .await
        .expect("kill the gateway's container");
    let within = hold + Duration::from_secs(120);
    let firing = prometheus
        .wait_for("ServiceDown firing for the gateway", within, |alerts| {
            alerts
                .iter()
                .any(|a| a.is_firing("ServiceDown", &[("job", "gateway")]))
        })
        .await
        .unwrap_or_else(|e| panic!("{}", error_chain(&e)));
    let alert = firing
        .iter()
        .find(|a| a.is_firing("ServiceDown", &[("job", "gateway")]))
        .expect("found");
    assert_eq!(
        alert.labels.get("instance").map(String::as_str),
        Some("gateway:8080")
    );
    assert!(
        !firing.iter().any(|a| a.name() == "ServiceDown"
            && a.labels.get("job").map(String::as_str) != Some("gateway")),
        "only the gateway is down: {firing:?}"
    );

    // The run's alert log reads the same Prometheus.
    let log = AlertLog::of_run(&eco, from)
        .await
        .expect("a Prometheus runs");
    assert_eq!(log.error, None, "{:?}", log.lines());
    assert_eq!(log.source, prometheus.url());
    assert!(
        log.lines().iter().any(|l| l.starts_with(
            "ServiceDown{instance=gateway:8080,job=gateway,severity=critical} fired at +"
        ) && l.ends_with("still firing at the end")),
        "{:?}",
        log.lines()
    );

    let logs = eco.logs_dir().to_path_buf();
    drop(eco);
    assert_eq!(
        docker::run_resources(&run).await.expect("docker answers"),
        (0, 0),
        "no container or network survives, Prometheus's included"
    );
    assert!(
        logs.join("prometheus.log").is_file(),
        "Prometheus's log is saved"
    );
    let _ = std::fs::remove_dir_all(logs);
}
