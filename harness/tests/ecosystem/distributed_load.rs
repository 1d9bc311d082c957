//! Distributed load as `deploy/README.md` describes it for one Docker
//! host: three containers of the harness image (`tekup-harness/harness`),
//! on the host's network, each a shard of one plan against the ecosystem
//! started here (process runtime), each writing its `load.json` to a
//! mounted directory; `tekup-harness load merge` of the three is the sum of
//! its parts (requests, per-kind counts, errors, histogram buckets, users,
//! leads processed).
//!
//! The images are built on first use (see [`require_docker_images`]); the
//! harness image is this test's `tekup-harness` binary on the runtime
//! image, made again only when the binary changed.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptions, LogsOptions, RemoveContainerOptions, StartContainerOptions,
    WaitContainerOptions,
};
use futures::StreamExt as _;
use tekup_harness::env::harness_image::HarnessImage;
use tekup_harness::env::images::ImageBuild;
use tekup_harness::env::{docker, Ecosystem, Runtime};
use tekup_harness::load::{Histogram, KindStats, LoadReport, Shard};

use crate::common::ecosystem_file;
use crate::docker::require_docker_images;

const GENERATORS: u32 = 3;
const USERS: u64 = 6;
/// Bounds one generator's whole run (start, tenants, 3 s of load, the last
/// leads' events, reports): far above what it takes, never reached unless
/// something hangs.
const GENERATOR_DEADLINE: Duration = Duration::from_secs(180);

fn say(line: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "distributed load: {line}");
}

/// What one container did: its exit code and its output.
struct Generator {
    shard: Shard,
    exit: Option<i64>,
    log: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_generator_containers_merge_into_the_sum_of_their_parts() {
    require_docker_images().await;
    let image = HarnessImage::new(harness_bin(), ImageBuild::new("images").runtime);
    image
        .ensure(&|line| say(line))
        .await
        .unwrap_or_else(|e| panic!("the harness image: {}", tekup_harness::env::error_chain(&e)));

    let scratch = tempfile::tempdir().expect("tempdir");
    let mut eco = Ecosystem::builder()
        .file(ecosystem_file())
        .runtime(Runtime::Process)
        .logs_dir(scratch.path().join("logs"))
        .start()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "the ecosystem starts: {}",
                tekup_harness::env::error_chain(&e)
            )
        });
    let reports = scratch.path().join("reports");
    std::fs::create_dir_all(&reports).expect("reports dir");
    let args = |shard: Shard| -> Vec<String> {
        [
            "load",
            "--profile=mixed",
            &format!("--host={}", eco.url("flow-api").expect("flow-api")),
            &format!("--crm-host={}", eco.url("crm-api").expect("crm-api")),
            &format!("--gateway-host={}", eco.url("gateway").expect("gateway")),
            &format!("--admin-token={}", eco.file().vars["admin-token"]),
            &format!("--users={USERS}"),
            "--run-time=3s",
            // What is checked here is the sharding and the merge, not the
            // speed of debug builds on a 2-core machine busy with other
            // tests (a p95 of 632 ms against the 500 ms target once failed
            // CI): the latency target is lifted, so a generator's exit
            // status says whether requests failed or leads were lost.
            "--p95-ms=600000",
            &format!("--shard={shard}"),
            &format!("--reports-dir=/reports/shard-{}", shard.index),
        ]
        .map(str::to_owned)
        .to_vec()
    };
    let generators = run_generators(&image.image, &reports, &args).await;
    for g in &generators {
        assert_eq!(
            g.exit,
            Some(0),
            "generator {} ended {:?} (0: every target met):\n{}",
            g.shard,
            g.exit,
            g.log
        );
    }
    eco.shutdown().await;

    let parts: Vec<LoadReport> = (0..GENERATORS)
        .map(|i| {
            LoadReport::read(&reports.join(format!("shard-{i}/load.json")))
                .unwrap_or_else(|e| panic!("{}", tekup_harness::env::error_chain(&e)))
        })
        .collect();
    let merge = std::process::Command::new(harness_bin())
        .args(["load", "merge"])
        .args((0..GENERATORS).map(|i| reports.join(format!("shard-{i}/load.json"))))
        .arg("--output")
        .arg(reports.join("merged.json"))
        .output()
        .expect("tekup-harness load merge");
    for p in &parts {
        say(&format!(
            "{}: {} user(s), {} requests, {} errors, {} leads processed",
            p.machines.join(", "),
            p.users,
            p.total.count,
            p.total.errors,
            p.queue_latency.as_ref().map_or(0, |q| q.processed)
        ));
    }
    let summary = String::from_utf8_lossy(&merge.stdout);
    say(&format!("the merged report:\n{summary}"));
    assert!(
        merge.status.success(),
        "load merge failed ({}):\n{summary}\n{}",
        merge.status,
        String::from_utf8_lossy(&merge.stderr)
    );
    assert!(summary.contains("mixed: every target met"), "{summary}");
    let merged = LoadReport::read(&reports.join("merged.json")).expect("merged.json");
    assert_is_the_sum(&merged, &parts);
}

/// Starts one container per shard at once, waits for each to end (within
/// [`GENERATOR_DEADLINE`]) and removes them, whatever happened.
async fn run_generators(
    image: &str,
    reports: &Path,
    args: &dyn Fn(Shard) -> Vec<String>,
) -> Vec<Generator> {
    let docker = docker::connect().await.expect("docker answers");
    let run = format!("load-{}", std::process::id());
    let mut names = Vec::new();
    for index in 0..GENERATORS {
        let shard = Shard {
            index,
            count: GENERATORS,
        };
        let name = format!("tekup-{run}-{index}");
        let created = docker
            .create_container(
                Some(CreateContainerOptions {
                    name: Some(name.clone()),
                    ..Default::default()
                }),
                ContainerCreateBody {
                    image: Some(image.to_owned()),
                    cmd: Some(args(shard)),
                    labels: Some(
                        [
                            (docker::LABEL.to_owned(), "1".to_owned()),
                            (docker::RUN_LABEL.to_owned(), run.clone()),
                        ]
                        .into(),
                    ),
                    host_config: Some(HostConfig {
                        network_mode: Some("host".into()),
                        binds: Some(vec![format!("{}:/reports", reports.display())]),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            )
            .await;
        if let Err(e) = created {
            remove(&docker, &names).await;
            panic!("failed to create the container {name}: {e}");
        }
        names.push((shard, name));
    }
    for (_, name) in &names {
        if let Err(e) = docker
            .start_container(name, None::<StartContainerOptions>)
            .await
        {
            remove(&docker, &names).await;
            panic!("failed to start the container {name}: {e}");
        }
    }
    say(&format!(
        "{GENERATORS} containers of {image} started on the host network"
    ));
    let mut generators = Vec::new();
    for (shard, name) in &names {
        let waited = tokio::time::timeout(GENERATOR_DEADLINE, async {
            let mut wait = docker.wait_container(name, None::<WaitContainerOptions>);
            match wait.next().await {
                Some(Ok(r)) => Some(r.status_code),
                // bollard reports a non-zero exit as an error carrying the code.
                Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => {
                    Some(code)
                }
                _ => None,
            }
        })
        .await
        .ok()
        .flatten();
        let log: String = docker
            .logs(
                name,
                Some(LogsOptions {
                    stdout: true,
                    stderr: true,
                    ..Default::default()
                }),
            )
            .filter_map(|c| async move { c.ok().map(|c| c.to_string()) })
            .collect()
            .await;
        generators.push(Generator {
            shard: *shard,
            exit: waited,
            log,
        });
    }
    remove(&docker, &names).await;
    generators
}

async fn remove(docker: &bollard::Docker, names: &[(Shard, String)]) {
    for (_, name) in names {
        let _ = docker
            .remove_container(
                name,
                Some(RemoveContainerOptions {
                    force: true,
                    ..Default::default()
                }),
            )
            .await;
    }
}

/// Bucket by bucket, the histograms' counts added up.
fn buckets<'a>(histograms: impl Iterator<Item = &'a Histogram>) -> BTreeMap<u64, u64> {
    let mut sum = BTreeMap::new();
    for h in histograms {
        for &(floor, n) in &h.buckets {
            *sum.entry(floor).or_default() += n;
        }
    }
    sum
}

fn assert_is_the_sum(merged: &LoadReport, parts: &[LoadReport]) {
    let shards: Vec<Shard> = parts.iter().map(|p| p.shard.expect("a shard")).collect();
    assert_eq!(
        shards,
        (0..GENERATORS)
            .map(|index| Shard {
                index,
                count: GENERATORS
            })
            .collect::<Vec<_>>()
    );
    assert_eq!(merged.shards, shards, "the merge names its shards");
    assert!(merged.missing_shards().is_empty());
    for p in parts {
        assert_eq!(p.users, USERS / u64::from(GENERATORS), "{:?}", p.machines);
        assert!(p.total.count > 0, "{:?} sent requests", p.machines);
    }
    assert_eq!(merged.machines.len(), parts.len());
    assert_eq!(merged.users, USERS, "the plan's users, between them");

    let sum = |f: &dyn Fn(&LoadReport) -> u64| parts.iter().map(f).sum::<u64>();
    assert_eq!(merged.total.count, sum(&|p| p.total.count));
    assert_eq!(merged.total.errors, sum(&|p| p.total.errors));
    assert_eq!(merged.total.histogram.count, merged.total.count);
    assert_eq!(
        buckets([&merged.total.histogram].into_iter()),
        buckets(parts.iter().map(|p| &p.total.histogram))
    );

    let kinds: std::collections::BTreeSet<&str> = parts
        .iter()
        .flat_map(|p| p.requests.iter().map(|k| k.name.as_str()))
        .collect();
    assert_eq!(
        merged
            .requests
            .iter()
            .map(|k| k.name.as_str())
            .collect::<std::collections::BTreeSet<_>>(),
        kinds
    );
    for kind in &merged.requests {
        let of_parts: Vec<&KindStats> = parts
            .iter()
            .filter_map(|p| p.requests.iter().find(|k| k.name == kind.name))
            .collect();
        let name = &kind.name;
        assert_eq!(
            kind.count,
            of_parts.iter().map(|k| k.count).sum::<u64>(),
            "{name}"
        );
        assert_eq!(
            kind.errors,
            of_parts.iter().map(|k| k.errors).sum::<u64>(),
            "{name}"
        );
        assert_eq!(
            kind.histogram.count,
            of_parts.iter().map(|k| k.histogram.count).sum::<u64>(),
            "{name}"
        );
        assert_eq!(
            buckets([&kind.histogram].into_iter()),
            buckets(of_parts.iter().map(|k| &k.histogram)),
            "{name}"
        );
    }

    let queue = merged.queue_latency.as_ref().expect("queue latency");
    let queues: Vec<_> = parts
        .iter()
        .map(|p| p.queue_latency.as_ref().expect("each part's queue latency"))
        .collect();
    assert_eq!(
        queue.processed,
        queues.iter().map(|q| q.processed).sum::<u64>()
    );
    assert_eq!(
        queue.unprocessed,
        queues.iter().map(|q| q.unprocessed).sum::<u64>()
    );
    assert_eq!(queue.histogram.count, queue.processed);
    assert!(merged.passed, "{:#?}", merged.verdicts);
}

/// The harness binary: `$TEKUP_HARNESS_BIN` (as for the container reaper),
/// else the one cargo built for these tests.
fn harness_bin() -> std::path::PathBuf {
    std::env::var_os("TEKUP_HARNESS_BIN").map_or_else(
        || env!("CARGO_BIN_EXE_tekup-harness").into(),
        std::path::PathBuf::from,
    )
}
