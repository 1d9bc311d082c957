//! Start times of the full ecosystem per runtime, beside a single bare
//! Postgres start measured in the same run.
//!
//! `cargo bench -p tekup-benches --bench ecosystem_start`
//!
//! - *cold*: the first start with an empty initdb-template cache (process
//!   runtime and bare Postgres: it includes `initdb`); for docker, the first
//!   start without the cached program images (the offline base images
//!   exist; the service and mock binaries are copied in again).
//! - *warm*: the following starts (median, min and max of `TEKUP_BENCH_RUNS`,
//!   default 5), template cached. A warm bare start copies the same cached
//!   cluster as the process runtime's Postgres (the kept snapshot of
//!   `migrate`: 1.4 times the files of the initdb template), beside each
//!   process start.
//!
//! The programs are the workspace's release build, built first, unless
//! `TEKUP_BIN_DIR` names others.
//!
//! Start = from the call until every component is ready (services answer
//! `/health` with their database). Teardown is measured separately. The
//! docker rows need `tekup-harness images build`; without the images they
//! are reported as skipped with the reason (`TEKUP_BENCH_DOCKER=0` skips
//! them on purpose).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tekup_harness::env::{
    docker, wait_for_spares, Ecosystem, EcosystemFile, LocalPostgres, Progress, Runtime,
};

fn main() {
    let runs: usize = std::env::var("TEKUP_BENCH_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5)
        .max(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/ecosystem.toml");
    let components = EcosystemFile::load(&file)
        .expect("ecosystem file")
        .components
        .len();
    let mut rows = Vec::new();
    let programs = release_programs();

    let cache = tempfile::tempdir().expect("cache dir");
    // Safe in edition 2021; nothing else reads the environment concurrently yet.
    std::env::set_var("TEKUP_CACHE_DIR", cache.path().join("bare"));
    // A bare start of `cluster`, or of the initdb template (`None`).
    let bare_once = |cluster: Option<&Path>| {
        let busy = cpu_busy();
        let started = Instant::now();
        let pg = match cluster {
            Some(c) => rt.block_on(LocalPostgres::start_from(c)),
            None => rt.block_on(LocalPostgres::start()),
        }
        .expect("postgres starts");
        let took = started.elapsed();
        let cpu = cpu_busy().saturating_sub(busy);
        let stop = Instant::now();
        drop(pg);
        Start {
            took,
            cpu,
            stopped: stop.elapsed(),
        }
    };
    let bare_cold = bare_once(None);

    std::env::set_var("TEKUP_CACHE_DIR", cache.path().join("process"));
    // Build the programs before timing (a missing binary is built on first start).
    let warmup = rt
        .block_on(
            Ecosystem::builder()
                .file(&file)
                .runtime(Runtime::Process)
                .start(),
        )
        .expect("process ecosystem starts");
    drop(warmup);
    // The warm bare starts copy the cluster the process runtime's Postgres
    // starts from (its migrated snapshot), not the smaller initdb template.
    let kept = kept_cluster(&cache.path().join("process"));
    std::env::set_var("TEKUP_CACHE_DIR", cache.path().join("process-cold"));
    let mut process_phases = Vec::new();
    let process_cold = start_full(&rt, &file, Runtime::Process, &mut process_phases);
    process_phases.clear();
    // The warm starts alternate, bare, process, process without a spare
    // copy, on the same (warm) cache: the machine's noise of the moment
    // falls on all three alike, and each round gives a ratio. A spare copy
    // is made after a start, off it (`TEKUP_SPARE_CLUSTERS`): each round
    // waits until it is made, so that its work falls on no start measured.
    let (mut bare, mut process) = (Sample::new(bare_cold), Sample::new(process_cold));
    let mut copying = Vec::new();
    let mut copying_phases = Vec::new();
    let (mut ratios, mut copying_ratios) = (Vec::new(), Vec::new());
    wait_for_spares();
    for _ in 0..runs {
        let b = bare_once(Some(&kept));
        let p = start_full(&rt, &file, Runtime::Process, &mut process_phases);
        wait_for_spares();
        std::env::set_var("TEKUP_SPARE_CLUSTERS", "0");
        let c = start_full(&rt, &file, Runtime::Process, &mut copying_phases);
        std::env::remove_var("TEKUP_SPARE_CLUSTERS");
        ratios.push(p.took.as_secs_f64() / b.took.as_secs_f64());
        copying_ratios.push(c.took.as_secs_f64() / b.took.as_secs_f64());
        bare.add(b);
        process.add(p);
        copying.push(c);
    }
    let mut without = Sample::warm_only();
    for c in copying {
        without.add(c);
    }
    rows.push((
        "bare Postgres (LocalPostgres; warm: the kept cluster)".to_owned(),
        Some(bare),
    ));
    rows.push((
        format!("process runtime ({components} components)"),
        Some(process),
    ));
    rows.push((
        "process runtime, no spare copy (copies in the start)".to_owned(),
        Some(without),
    ));
    let paired = format!(
        "process / bare Postgres, each warm start beside its bare one: median {}\n\
         the same without a spare copy (TEKUP_SPARE_CLUSTERS=0):       median {}",
        spread(ratios),
        spread(copying_ratios),
    );
    let mut phases = vec![
        ("process runtime", process_phases),
        ("process runtime, no spare copy", copying_phases),
    ];

    let usable = if std::env::var("TEKUP_BENCH_DOCKER").is_ok_and(|v| v == "0") {
        Err("TEKUP_BENCH_DOCKER=0".to_owned())
    } else {
        rt.block_on(async {
            let model = EcosystemFile::load(&file).expect("file");
            docker::usable(&model).await.map_err(|e| e.to_string())
        })
    };
    match usable {
        Ok(_) => {
            // Cold: the programs are copied into fresh program images again.
            rt.block_on(docker::remove_program_images())
                .expect("program images removed");
            let mut docker_phases = Vec::new();
            let d = measure(runs, || {
                start_full(&rt, &file, Runtime::Docker, &mut docker_phases)
            });
            rows.push((format!("docker runtime ({components} components)"), Some(d)));
            phases.push(("docker runtime", docker_phases.split_off(1)));
        }
        Err(why) => rows.push((format!("docker runtime: skipped ({why})"), None)),
    }

    report(runs, &rows);
    #[expect(clippy::print_stdout, reason = "the benchmark's result")]
    {
        println!("{paired}\nprograms: {programs}\n");
    }
    for (runtime, runs) in &phases {
        where_the_time_goes(runtime, runs);
    }
}

/// The services' and mocks' programs the runtimes start: `TEKUP_BIN_DIR`
/// when set, else this workspace's release build, built now (a start
/// measured on debug programs measures how slowly they load: on two
/// cores, ten debug programs starting beside Postgres held it back by
/// about 80 ms). Returns what it chose, for the report.
fn release_programs() -> String {
    if let Some(dir) = std::env::var_os("TEKUP_BIN_DIR") {
        return format!("TEKUP_BIN_DIR={}", Path::new(&dir).display());
    }
    // target/release/deps/ecosystem_start-<hash> → target/release
    let exe = std::env::current_exe().expect("the benchmark's own path");
    let release = exe
        .parent()
        .and_then(Path::parent)
        .expect("the benchmark runs from target/<profile>/deps")
        .to_path_buf();
    #[expect(clippy::print_stderr, reason = "progress of a long step")]
    {
        eprintln!("building the release programs: cargo build --release -p tekup-services -p tekup-mocks --bins");
    }
    let status = tekup_harness::env::cargo_command()
        .args([
            "build",
            "--release",
            "-p",
            "tekup-services",
            "-p",
            "tekup-mocks",
            "--bins",
        ])
        .status()
        .expect("cargo runs");
    assert!(status.success(), "the release build of the programs failed");
    // Safe in edition 2021; nothing else reads the environment concurrently yet.
    std::env::set_var("TEKUP_BIN_DIR", &release);
    format!("the release build, {}", release.display())
}

/// The cluster a warm process start copies for its Postgres: the newest
/// kept snapshot (`<cluster>+migrate-<key>`) in the cache `dir`.
fn kept_cluster(dir: &Path) -> std::path::PathBuf {
    std::fs::read_dir(dir)
        .expect("the process runtime's cache")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().contains("+migrate-"))
        .filter(|e| e.path().join("PG_VERSION").is_file())
        .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok())
        .map(|e| e.path())
        .unwrap_or_else(|| panic!("no kept cluster of `migrate` in {}", dir.display()))
}

/// The median of `ratios`, and their range.
fn spread(mut ratios: Vec<f64>) -> String {
    ratios.sort_by(f64::total_cmp);
    format!(
        "{:.2}x ({:.2}x..{:.2}x)",
        ratios[ratios.len() / 2],
        ratios[0],
        ratios[ratios.len() - 1]
    )
}

/// When each component of one start began and was ready, from the start.
type Phases = BTreeMap<String, (Duration, Duration)>;

fn start_full(
    rt: &tokio::runtime::Runtime,
    file: &Path,
    runtime: Runtime,
    phases: &mut Vec<Phases>,
) -> Start {
    let busy = cpu_busy();
    let started = Instant::now();
    let seen: Arc<Mutex<Phases>> = Arc::default();
    let record = Arc::clone(&seen);
    let builder = Ecosystem::builder()
        .file(file)
        .runtime(runtime)
        .on_progress(move |p| {
            let at = started.elapsed();
            let mut seen = record.lock().unwrap_or_else(|e| e.into_inner());
            match p {
                Progress::Starting { component } => {
                    seen.insert(component.clone(), (at, at));
                }
                Progress::Ready { component, .. } => {
                    seen.entry(component.clone()).or_insert((at, at)).1 = at;
                }
                _ => {}
            }
        });
    let eco = rt.block_on(builder.start()).unwrap_or_else(|e| {
        panic!(
            "{runtime} ecosystem starts: {}",
            tekup_harness::env::error_chain(&e)
        )
    });
    let took = started.elapsed();
    let cpu = cpu_busy().saturating_sub(busy);
    phases.push(std::mem::take(
        &mut *seen.lock().unwrap_or_else(|e| e.into_inner()),
    ));
    let logs = eco.logs_dir().to_path_buf();
    let stop = Instant::now();
    drop(eco);
    let stopped = stop.elapsed();
    let _ = std::fs::remove_dir_all(logs);
    Start { took, cpu, stopped }
}

/// One start: until ready, the CPU time the whole machine spent meanwhile
/// (every process's, on every core), and its teardown.
struct Start {
    took: Duration,
    cpu: Duration,
    stopped: Duration,
}

/// The CPU time the machine has spent busy since boot, all cores together
/// (`/proc/stat`; counted in ticks of 10 ms, so one start's figure is
/// coarse and the mean of several is the one to read). Zero where
/// `/proc/stat` cannot be read.
fn cpu_busy() -> Duration {
    let Ok(stat) = std::fs::read_to_string("/proc/stat") else {
        return Duration::ZERO;
    };
    let ticks: u64 = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .enumerate()
        // user nice system idle iowait irq softirq steal: all but idle and iowait.
        .filter(|(i, _)| !matches!(i, 3 | 4) && *i < 8)
        .filter_map(|(_, v)| v.parse::<u64>().ok())
        .sum();
    // USER_HZ is 100 on every Linux this runs on.
    Duration::from_millis(ticks * 10)
}

/// Cold (first) and warm (the rest) start times, plus the warm starts' CPU
/// time and every teardown time.
struct Sample {
    /// None for a series of warm starts alone.
    cold: Option<Duration>,
    warm: Vec<Duration>,
    warm_cpu: Vec<Duration>,
    teardown: Vec<Duration>,
}

impl Sample {
    /// From the first (cold) start and its teardown.
    fn new(cold: Start) -> Self {
        let mut sample = Self::warm_only();
        sample.cold = Some(cold.took);
        sample.teardown.push(cold.stopped);
        sample
    }

    /// A series of warm starts alone.
    fn warm_only() -> Self {
        Self {
            cold: None,
            warm: Vec::new(),
            warm_cpu: Vec::new(),
            teardown: Vec::new(),
        }
    }

    /// Adds a warm start and its teardown, keeping the times sorted.
    fn add(&mut self, start: Start) {
        self.warm.push(start.took);
        self.warm.sort();
        self.warm_cpu.push(start.cpu);
        self.teardown.push(start.stopped);
        self.teardown.sort();
    }

    /// The warm starts' mean CPU time (see [`cpu_busy`]).
    fn mean_cpu(&self) -> Duration {
        let total: Duration = self.warm_cpu.iter().sum();
        total / u32::try_from(self.warm_cpu.len().max(1)).unwrap_or(u32::MAX)
    }
}

fn measure(runs: usize, mut once: impl FnMut() -> Start) -> Sample {
    let mut sample = Sample::new(once());
    for _ in 0..runs {
        sample.add(once());
    }
    sample
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn report(runs: usize, rows: &[(String, Option<Sample>)]) {
    let mut text = format!(
        "\nstart until ready; cold = first start (empty initdb cache; docker: no cached program images), warm = median of {runs} (min..max); CPU = the machine's busy time during a warm start, all cores (mean)\n\n{:<52} {:>9} {:>9} {:>21} {:>9} {:>14}\n",
        "", "cold", "warm", "warm min..max", "CPU", "teardown"
    );
    for (name, sample) in rows {
        match sample {
            Some(s) => {
                let median = s.warm[s.warm.len() / 2];
                let (min, max) = (s.warm[0], s.warm[s.warm.len() - 1]);
                let td = s.teardown[s.teardown.len() / 2];
                text.push_str(&format!(
                    "{name:<52} {:>9} {:>9} {:>21} {:>9} {:>14}\n",
                    s.cold.map_or_else(|| "-".to_owned(), ms),
                    ms(median),
                    format!("{}..{}", ms(min), ms(max)),
                    ms(s.mean_cpu()),
                    ms(td)
                ));
            }
            None => text.push_str(&format!("{name}\n")),
        }
    }
    #[expect(clippy::print_stdout, reason = "the benchmark's result table")]
    {
        println!("{text}");
    }
}

/// The warm starts' median moments per component: when its start began and
/// when it was ready, counted from the call, in the order they were ready.
/// A component starts once what it waits for (`wait-for`) is ready, so the
/// critical path reads down the "ready" column.
fn where_the_time_goes(runtime: &str, warm: &[Phases]) {
    if warm.is_empty() {
        return;
    }
    let median = |mut v: Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let mut rows: Vec<(String, Duration, Duration)> = warm[0]
        .keys()
        .map(|name| {
            let of = |pick: fn(&(Duration, Duration)) -> Duration| {
                median(warm.iter().filter_map(|p| p.get(name)).map(pick).collect())
            };
            (name.clone(), of(|p| p.0), of(|p| p.1))
        })
        .collect();
    rows.sort_by_key(|r| r.2);
    let mut text = format!(
        "where the time goes, {runtime} (median of the warm starts)\n\n{:<24} {:>10} {:>10} {:>10}\n",
        "component", "starts at", "ready at", "took"
    );
    for (name, from, ready) in rows {
        text.push_str(&format!(
            "{name:<24} {:>10} {:>10} {:>10}\n",
            ms(from),
            ms(ready),
            ms(ready.saturating_sub(from))
        ));
    }
    #[expect(clippy::print_stdout, reason = "the benchmark's result table")]
    {
        println!("{text}");
    }
}
