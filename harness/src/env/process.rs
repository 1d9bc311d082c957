//! The `process` runtime: every component is a child process on 127.0.0.1.
//!
//! - Postgres runs from the machine's binaries on a copy of the cached
//!   `initdb` template (see [`super::postgres`]), or of the cluster its
//!   snapshot job left (see [`super::snapshot`]; which of them is decided
//!   once per start, and [`Backend::replays`] answers from the same
//!   decision); as root, as the `postgres` user. A start takes a copy
//!   made ahead of it when one is ready ([`super::spare`]). The `POSTGRES_DB` part
//!   of the image contract is honoured by creating the database once the
//!   server answers. `fsync=off` (nothing here outlives the machine) but
//!   `synchronous_commit` stays on: a commit's WAL reaches the kernel
//!   before Postgres acknowledges it, so a `kill` loses no acknowledged
//!   commit. With it off, the chaos suite
//!   `postgres-restarted` saw a processed lead's contact link vanish: the
//!   worker had been told "committed" up to 200 ms before the WAL writer
//!   wrote it.
//! - Redis is `redis-server` with an append-only file in the run
//!   directory, so what it acknowledged (queued jobs included) survives a
//!   `kill` + `restart` of the component. The harness kills processes, not
//!   the machine, so what matters is that Redis hands each write to the
//!   kernel before it replies: with `appendfsync no` it write(2)s the AOF
//!   before every reply and leaves flushing to the kernel, whose page cache
//!   outlives a killed process. `everysec` is not enough: while its
//!   background fsync runs, Redis postpones the write (up to 2 s) and
//!   replies all the same, so a kill loses acknowledged writes (410 of
//!   1,001 keys in `tests/chaos` under disk load). `always` adds an fsync
//!   before every reply, protection against the machine going down that
//!   costs 15 to 60 times as much per write here (one client: 400-1,800
//!   SET/s against 20,000-28,000). No RDB snapshots (`save ""`).
//! - Prometheus (optional, see [`super::prometheus`]) is the machine's
//!   `prometheus` with a generated configuration and its storage in the
//!   run directory.
//! - Services, mocks and jobs are their programs with a cleared environment
//!   (PATH, HOME, TMPDIR, LANG, RUST_LOG and RUST_BACKTRACE pass through) plus
//!   the component's `env`.
//!
//! Each child leads its own process group and gets SIGKILL as its
//! parent-death signal, so nothing survives the harness: not a panic, not
//! Ctrl-C, not SIGKILL. With `keep`, children are detached instead and
//! `tekup-harness down` stops them from the recorded state. Output goes to
//! `<logs>/<component>.log`.

use std::fs;
use std::io::{BufRead as _, Seek as _};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::FutureExt as _;
use serde_json::json;

use super::error::EnvError;
use super::model::{Component, Kind, Ready};
use super::ports::{self, Reserved};
use super::postgres::{self as pg, RunAs};
use super::ready;
use super::runtime::{Backend, ExitInfo, Instance, LaunchSpec, Placement, SnapshotOf};
use super::snapshot;
use super::spare;
use super::spawn::{group_stopped, spawn_detached, spawn_owned, Leader};
pub(crate) use super::spawn::{process_start_time, which};

/// How long a paused component's threads may take to stop once signalled:
/// a thread stops when it next runs, which only a very busy machine delays
/// by more than milliseconds.
const STOP_WAIT: Duration = Duration::from_secs(30);

const PASS_THROUGH_ENV: &[&str] = &[
    "PATH",
    "HOME",
    "TMPDIR",
    "LANG",
    "RUST_LOG",
    "RUST_BACKTRACE",
    "SSL_CERT_FILE",
];

/// Starts components as child processes.
#[derive(Debug)]
pub(crate) struct ProcessBackend {
    run_dir: PathBuf,
    logs_dir: PathBuf,
    keep: bool,
    started: Mutex<Vec<Arc<ProcessInstance>>>,
    /// Ports placed but not yet handed to their component, by component.
    reserved: Mutex<std::collections::BTreeMap<String, Reserved>>,
    /// Snapshot jobs, by job: replayed from a kept cluster, or to run and
    /// keep ([`super::snapshot`]); recorded when their Postgres starts.
    snapshots: Mutex<std::collections::BTreeMap<String, Snapshot>>,
    /// What each Postgres component starts from, by component: decided
    /// once per start, by its own start or by [`Backend::replays`],
    /// whichever asks first.
    sources: Mutex<std::collections::BTreeMap<String, Arc<tokio::sync::OnceCell<Source>>>>,
    /// The Postgres components' launch specs, to wait for one again after
    /// the restart that keeps a snapshot.
    postgres_specs: Mutex<std::collections::BTreeMap<String, LaunchSpec>>,
    /// The clusters this start copied from, each with its server's user: a
    /// spare copy of each is made once the start is over ([`spare`]).
    spares_wanted: Mutex<Vec<(PathBuf, Option<RunAs>)>>,
}

/// The cluster a Postgres component starts from, and what its snapshot
/// job (if it has one) does in this run.
#[derive(Debug, Clone)]
struct Source {
    cluster: PathBuf,
    /// Who the server runs as ([`pg::run_as`]), and so owns the copy.
    run_as: Option<RunAs>,
    snapshot: Option<(String, Snapshot)>,
}

impl Source {
    /// The directory copied into the run.
    fn copied_from(&self) -> &Path {
        match &self.snapshot {
            Some((_, Snapshot::Replay(kept))) => kept,
            _ => &self.cluster,
        }
    }
}

/// What a snapshot job does in this run.
#[derive(Debug, Clone)]
enum Snapshot {
    /// Its Postgres started from this kept cluster: the job is not run.
    Replay(PathBuf),
    /// Its Postgres started bare: run the job, then keep the cluster here.
    Keep(PathBuf),
}

impl ProcessBackend {
    pub(crate) fn new(run_dir: PathBuf, logs_dir: PathBuf, keep: bool) -> Result<Self, EnvError> {
        if let Some(parent) = run_dir.parent() {
            sweep_stale_runs(parent);
        }
        fs::create_dir_all(&run_dir)
            .map_err(EnvError::io(format!("create {}", run_dir.display())))?;
        record_owner(&run_dir, std::process::id(), keep)
            .map_err(EnvError::io("record the run directory's owner"))?;
        // The postgres user must be able to traverse into its data directory.
        fs::set_permissions(&run_dir, fs::Permissions::from_mode(0o711))
            .map_err(EnvError::io("open the run directory to the postgres user"))?;
        fs::create_dir_all(&logs_dir)
            .map_err(EnvError::io(format!("create {}", logs_dir.display())))?;
        Ok(Self {
            run_dir,
            logs_dir,
            keep,
            started: Mutex::new(Vec::new()),
            reserved: Mutex::new(std::collections::BTreeMap::new()),
            snapshots: Mutex::new(std::collections::BTreeMap::new()),
            sources: Mutex::new(std::collections::BTreeMap::new()),
            postgres_specs: Mutex::new(std::collections::BTreeMap::new()),
            spares_wanted: Mutex::new(Vec::new()),
        })
    }

    /// What the Postgres component `c` starts from in this run: the cached
    /// cluster ([`pg::ensure_cluster`]; the first start on a machine makes
    /// it), or the cluster its snapshot job `of` left, kept earlier. Decided
    /// once: the Postgres's start and [`Backend::replays`] get the same
    /// answer. File work, so off the runtime's threads.
    async fn source(&self, c: &Component, of: Option<&SnapshotOf>) -> Result<Source, EnvError> {
        let cell = Arc::clone(
            self.sources
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(c.name.clone())
                .or_default(),
        );
        let source = cell
            .get_or_try_init(|| {
                let (name, user, database) = (c.name.clone(), c.user.clone(), c.database.clone());
                let of = of.cloned();
                async move {
                    tokio::task::spawn_blocking(move || {
                        let start = |e: pg::PostgresError| EnvError::Start {
                            component: name.clone(),
                            message: e.to_string(),
                        };
                        let bin = pg::find_bin_dir().map_err(start)?;
                        let run_as = pg::run_as().map_err(start)?;
                        let cluster =
                            pg::ensure_cluster(&bin, run_as, &user, &database).map_err(start)?;
                        let snapshot = of.map(|of| {
                            let kept = snapshot::path(&cluster, &of);
                            if snapshot::exists(&kept) {
                                (of.job, Snapshot::Replay(kept))
                            } else {
                                (of.job, Snapshot::Keep(kept))
                            }
                        });
                        Ok::<_, EnvError>(Source {
                            cluster,
                            run_as,
                            snapshot,
                        })
                    })
                    .await
                    .map_err(|e| EnvError::other("prepare the postgres data directory", e))?
                }
            })
            .await?;
        Ok(source.clone())
    }

    /// A Postgres component's data directory, unless a start before this
    /// one made it (a restart keeps the data): a copy of what it starts
    /// from ([`Self::source`]), made ahead of the start when a spare is
    /// ready ([`spare`]). File work, so off the runtime's threads: the
    /// other components start meanwhile. Returns the line its log begins
    /// with, saying where the data came from.
    async fn postgres_data(&self, spec: &LaunchSpec) -> Result<Option<String>, EnvError> {
        let c = &spec.component;
        let dir = self.run_dir.join(&c.name);
        let data = dir.join("data");
        if data.exists() {
            return Ok(None);
        }
        let source = self.source(c, spec.snapshot.as_ref()).await?;
        let name = c.name.clone();
        let (from, run_as) = (source.copied_from().to_path_buf(), source.run_as);
        // A run that keeps a snapshot now is the last to start from `from`;
        // otherwise the next start gets a spare copy, made once this one
        // is over ([`Backend::started`]).
        if !matches!(source.snapshot, Some((_, Snapshot::Keep(_)))) {
            self.spares_wanted
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((from.clone(), run_as));
        }
        let note = tokio::task::spawn_blocking(move || {
            fs::create_dir_all(&dir).map_err(EnvError::io("create the postgres directory"))?;
            if spare::take(&from, run_as, &dir.join("data")) {
                if let Some(user) = run_as {
                    std::os::unix::fs::chown(&dir, Some(user.uid), Some(user.gid))
                        .map_err(EnvError::io("hand the postgres directory to postgres"))?;
                }
                return Ok(format!(
                    "data directory: a spare copy of {}, made after an earlier start\n",
                    from.display()
                ));
            }
            pg::copy_for_server(&from, &dir, run_as).map_err(|e| EnvError::Start {
                component: name,
                message: e.to_string(),
            })?;
            Ok::<_, EnvError>(format!("data directory: a copy of {}\n", from.display()))
        })
        .await
        .map_err(|e| EnvError::other("prepare the postgres data directory", e))??;
        if let Some((job, what)) = source.snapshot {
            self.snapshots
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(job, what);
        }
        Ok(Some(note))
    }

    /// Keeps `of`'s Postgres cluster at `kept` once its job has run: stops
    /// the Postgres cleanly (a fast shutdown, so a start from the copy
    /// needs no recovery), copies its data directory into the cache and
    /// starts it again on the same port. Nothing else uses it yet: the
    /// model check holds every other user of it to wait for the job.
    async fn keep_snapshot(&self, of: &SnapshotOf, kept: PathBuf) -> Result<(), EnvError> {
        let instance = self
            .started
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|i| i.name == of.postgres)
            .cloned();
        let spec = self
            .postgres_specs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&of.postgres)
            .cloned();
        let (Some(instance), Some(spec)) = (instance, spec) else {
            return Ok(());
        };
        let data = self.run_dir.join(&of.postgres).join("data");
        let stopped = Arc::clone(&instance);
        tokio::task::spawn_blocking(move || {
            stopped.stop_blocking(libc::SIGINT);
            if data.join("postmaster.pid").exists() {
                // Killed after the grace period, not shut down: a copy
                // would need recovery on every start. Keep nothing.
                return Ok(());
            }
            let cache = kept.parent().unwrap_or(&kept);
            let staging = tempfile::Builder::new()
                .prefix(".snapshot-")
                .tempdir_in(cache)
                .map_err(EnvError::io("create a staging directory for the snapshot"))?;
            let copy = staging.path().join("data");
            pg::copy_dir(&data, &copy).map_err(EnvError::io(format!(
                "copy {} into the snapshot cache",
                data.display()
            )))?;
            match fs::rename(&copy, &kept) {
                Ok(()) => snapshot::prune(&kept),
                // Another start kept the same snapshot first.
                Err(_) if snapshot::exists(&kept) => {}
                Err(e) => return Err(EnvError::io("move the snapshot into the cache")(e)),
            }
            Ok(())
        })
        .await
        .map_err(|e| EnvError::other("keep the snapshot", e))??;
        instance.spawn()?;
        pg::init_for_ecosystem(instance.as_ref(), &spec).await
    }

    fn recipe(&self, spec: &LaunchSpec) -> Result<Recipe, EnvError> {
        let c = &spec.component;
        let port = spec.placement.inner_port;
        let mut recipe = Recipe {
            program: PathBuf::new(),
            args: Vec::new(),
            env: spec.env.clone(),
            run_as: None,
            cwd: self.run_dir.clone(),
            stop_signal: libc::SIGKILL,
        };
        match c.kind {
            Kind::Postgres => {
                let start = |e: pg::PostgresError| EnvError::Start {
                    component: c.name.clone(),
                    message: e.to_string(),
                };
                let bin = pg::find_bin_dir().map_err(start)?;
                let run_as = pg::run_as().map_err(start)?;
                let dir = self.run_dir.join(&c.name);
                let data = dir.join("data");
                recipe.program = bin.join("postgres");
                recipe.args = vec![
                    "-D".into(),
                    data.display().to_string(),
                    "-p".into(),
                    port.unwrap_or(5432).to_string(),
                    "-k".into(),
                    dir.display().to_string(),
                    "-c".into(),
                    "listen_addresses=127.0.0.1".into(),
                    "-c".into(),
                    "fsync=off".into(),
                    "-c".into(),
                    "full_page_writes=off".into(),
                    "-c".into(),
                    "max_connections=300".into(),
                    "-c".into(),
                    pg::DSM_IN_DATA_DIR.into(),
                ];
                recipe.run_as = run_as;
                recipe.cwd = dir;
                // SIGQUIT is PostgreSQL's immediate shutdown; it cleans its shared memory.
                recipe.stop_signal = libc::SIGQUIT;
            }
            Kind::Redis => {
                let dir = self.run_dir.join(&c.name);
                fs::create_dir_all(&dir).map_err(EnvError::io("create the redis directory"))?;
                recipe.program = super::provision::ensure_program(&super::provision::REDIS)?;
                recipe.args = vec![
                    "--port".into(),
                    port.unwrap_or(6379).to_string(),
                    "--bind".into(),
                    "127.0.0.1".into(),
                    "--save".into(),
                    String::new(),
                    "--appendonly".into(),
                    "yes".into(),
                    "--appendfsync".into(),
                    "no".into(),
                    "--protected-mode".into(),
                    "no".into(),
                    "--dir".into(),
                    dir.display().to_string(),
                ];
                recipe.cwd = dir;
            }
            Kind::Prometheus => {
                let dir = self.run_dir.join(&c.name);
                super::prometheus::prepare(&dir, spec)?;
                recipe.program = super::provision::ensure_program(&super::provision::PROMETHEUS)?;
                recipe.args = super::prometheus::args(&dir, port.unwrap_or(9090));
                recipe.cwd = dir;
                recipe.stop_signal = libc::SIGTERM;
            }
            Kind::Service | Kind::Job => {
                recipe.program = spec.program.clone().ok_or_else(|| EnvError::Start {
                    component: c.name.clone(),
                    message: "no program".into(),
                })?;
                recipe.args = spec.args.clone();
                recipe.stop_signal = libc::SIGKILL;
            }
        }
        Ok(recipe)
    }
}

impl Drop for ProcessBackend {
    /// A start abandoned half-way (its future dropped on Ctrl-C) stops what
    /// it had started.
    fn drop(&mut self) {
        if !self.keep {
            self.teardown_blocking();
        }
    }
}

const OWNER_FILE: &str = "owner.json";

/// Writes the owner record [`sweep_stale_runs`] reads into `dir`: the
/// process `pid` (with its start time, so a reused id is not taken for it)
/// and whether the directory is kept after it.
pub(crate) fn record_owner(dir: &Path, pid: u32, keep: bool) -> std::io::Result<()> {
    let owner = json!({ "pid": pid, "start-time": process_start_time(pid), "keep": keep });
    fs::write(dir.join(OWNER_FILE), owner.to_string())
}

/// Removes the run directories (`tekup-run-*`, with their Postgres data) of
/// harnesses that died without tearing down (SIGKILL) and did not ask to
/// keep them, and the spare copies ([`spare`]) of processes gone. Their
/// processes are already gone (parent-death signal).
fn sweep_stale_runs(tmp: &Path) {
    let Ok(entries) = fs::read_dir(tmp) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if !entry
            .file_name()
            .to_string_lossy()
            .starts_with("tekup-run-")
        {
            continue;
        }
        let Ok(text) = fs::read_to_string(path.join(OWNER_FILE)) else {
            // A spares directory ([`spare`]) half removed by an exit: its
            // name holds its process's id.
            let name = entry.file_name().to_string_lossy().into_owned();
            let pid = name
                .strip_prefix("tekup-run-spares-")
                .and_then(|p| p.parse().ok());
            if pid.is_some_and(|p| process_start_time(p).is_none()) {
                let _ = fs::remove_dir_all(&path);
            }
            continue;
        };
        let Ok(owner) = serde_json::from_str::<serde_json::Value>(&text) else {
            continue;
        };
        let pid = owner["pid"].as_u64().and_then(|p| u32::try_from(p).ok());
        let alive = pid.is_some_and(|p| {
            process_start_time(p).is_some() && process_start_time(p) == owner["start-time"].as_u64()
        });
        if !alive && owner["keep"] == false {
            let _ = fs::remove_dir_all(&path);
        }
    }
}

/// How to (re)start one process.
#[derive(Debug, Clone)]
struct Recipe {
    program: PathBuf,
    args: Vec<String>,
    env: std::collections::BTreeMap<String, String>,
    run_as: Option<RunAs>,
    cwd: PathBuf,
    stop_signal: i32,
}

/// One child process and how to start it again.
#[derive(Debug)]
pub(crate) struct ProcessInstance {
    name: String,
    recipe: Recipe,
    port: Option<u16>,
    log_path: PathBuf,
    keep: bool,
    child: Mutex<Option<Leader>>,
    /// A snapshot job not run: its result was in its Postgres's kept
    /// cluster. Reads as exited with success until started for real.
    replayed: AtomicBool,
}

impl ProcessInstance {
    fn spawn(&self) -> Result<(), EnvError> {
        self.replayed.store(false, Ordering::Relaxed);
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .map_err(EnvError::io(format!("open {}", self.log_path.display())))?;
        let log2 = log
            .try_clone()
            .map_err(EnvError::io("duplicate the log file"))?;
        let r = &self.recipe;
        let mut command = Command::new(&r.program);
        command
            .args(&r.args)
            .current_dir(&r.cwd)
            .env_clear()
            .envs(
                PASS_THROUGH_ENV
                    .iter()
                    .filter_map(|k| std::env::var_os(k).map(|v| (*k, v))),
            )
            .envs(&r.env)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        if let Some(user) = r.run_as {
            command.uid(user.uid).gid(user.gid);
        }
        let child = if self.keep {
            spawn_detached(command)
        } else {
            spawn_owned(command)
        }
        .map_err(EnvError::io(format!(
            "start `{}` ({})",
            self.name,
            r.program.display()
        )))?;
        *self.child.lock().unwrap_or_else(|e| e.into_inner()) = Some(Leader::new(child));
        Ok(())
    }

    /// Its pid while it runs (an ended job has none to record).
    fn running_pid(&self) -> Option<u32> {
        self.child
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .filter(|leader| matches!(leader.exited(), Ok(None)))
            .map(Leader::id)
    }

    fn signal(&self, signal: i32) -> Result<(), EnvError> {
        let guard = self.child.lock().unwrap_or_else(|e| e.into_inner());
        let Some(leader) = guard.as_ref() else {
            return Ok(());
        };
        match leader.signal(signal) {
            Ok(()) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(()),
            Err(e) => Err(EnvError::io(format!("signal `{}`", self.name))(e)),
        }
    }

    /// Stops the process group and reaps the leader, escalating to SIGKILL.
    pub(crate) fn stop_blocking(&self, signal: i32) {
        let Some(mut leader) = self.child.lock().unwrap_or_else(|e| e.into_inner()).take() else {
            return;
        };
        let _ = leader.signal(libc::SIGCONT);
        let _ = leader.signal(signal);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if matches!(leader.exited(), Ok(Some(_)) | Err(_)) {
                // Reaping kills the stragglers of the group (postgres
                // backends) first, while its id is still ours.
                let _ = leader.reap();
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = leader.signal(libc::SIGKILL);
        let _ = leader.reap();
    }

    fn read_log(&self) -> String {
        let Ok(mut file) = fs::File::open(&self.log_path) else {
            return String::new();
        };
        // Only the end matters; large logs are read from their last 256 KiB.
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        let _ = file.seek(std::io::SeekFrom::Start(len.saturating_sub(256 * 1024)));
        std::io::BufReader::new(file)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Instance for ProcessInstance {
    fn host(&self) -> String {
        "127.0.0.1".into()
    }

    fn host_port(&self) -> Option<u16> {
        self.port
    }

    fn exit_status(&self) -> BoxFuture<'_, Result<Option<ExitInfo>, EnvError>> {
        async move {
            let guard = self.child.lock().unwrap_or_else(|e| e.into_inner());
            let Some(leader) = guard.as_ref() else {
                let replayed = self.replayed.load(Ordering::Relaxed);
                return Ok(Some(ExitInfo {
                    success: replayed,
                    text: if replayed {
                        "replayed from a snapshot"
                    } else {
                        "stopped"
                    }
                    .into(),
                }));
            };
            Ok(leader
                .exited()
                .map_err(EnvError::io(format!("wait for `{}`", self.name)))?
                .map(|status| ExitInfo {
                    success: status.success(),
                    text: status.to_string(),
                }))
        }
        .boxed()
    }

    fn log_tail(&self, lines: usize) -> BoxFuture<'_, String> {
        async move {
            let text = self.read_log();
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        .boxed()
    }

    fn log_contains<'a>(&'a self, text: &'a str) -> BoxFuture<'a, bool> {
        async move { self.read_log().contains(text) }.boxed()
    }

    fn kill(&self) -> BoxFuture<'_, Result<(), EnvError>> {
        async move {
            self.signal(libc::SIGCONT)?;
            self.signal(libc::SIGKILL)?;
            if let Some(leader) = self
                .child
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .as_mut()
            {
                let _ = leader.reap();
            }
            Ok(())
        }
        .boxed()
    }

    fn pause(&self) -> BoxFuture<'_, Result<(), EnvError>> {
        async move {
            self.signal(libc::SIGSTOP)?;
            // Paused means nothing of it runs: wait until every thread of
            // the group has stopped, not only until the signal is sent.
            let Some(pid) = self.running_pid() else {
                return Ok(());
            };
            let asked = Instant::now();
            loop {
                let stopped = group_stopped(pid)
                    .map_err(EnvError::io(format!("see whether `{}` stopped", self.name)))?;
                if stopped {
                    return Ok(());
                }
                if asked.elapsed() > STOP_WAIT {
                    return Err(EnvError::other(
                        format!("pause `{}`", self.name),
                        format!(
                            "some of its threads were still running {:.0?} after SIGSTOP",
                            asked.elapsed()
                        ),
                    ));
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        .boxed()
    }

    fn resume(&self) -> BoxFuture<'_, Result<(), EnvError>> {
        async move { self.signal(libc::SIGCONT) }.boxed()
    }

    fn restart(&self) -> BoxFuture<'_, Result<(), EnvError>> {
        async move {
            let signal = self.recipe.stop_signal;
            self.stop_blocking(signal);
            self.spawn()
        }
        .boxed()
    }

    fn restart_gracefully(&self) -> BoxFuture<'_, Result<(), EnvError>> {
        async move {
            // SIGTERM, then (in stop_blocking) SIGKILL after its grace.
            let signal = match self.recipe.stop_signal {
                libc::SIGKILL => libc::SIGTERM,
                other => other,
            };
            self.stop_blocking(signal);
            self.spawn()
        }
        .boxed()
    }

    fn log_path(&self) -> Option<PathBuf> {
        Some(self.log_path.clone())
    }
}

impl Backend for ProcessBackend {
    fn name(&self) -> &'static str {
        "process"
    }

    fn place(&self, component: &Component) -> Result<Placement, EnvError> {
        let port = match (component.kind, component.port) {
            (Kind::Job, _) | (_, None) => None,
            _ => {
                let reserved = ports::reserve().map_err(EnvError::io("find a free port"))?;
                let port = reserved.port();
                self.reserved
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(component.name.clone(), reserved);
                Some(port)
            }
        };
        Ok(Placement {
            inner_host: "127.0.0.1".into(),
            inner_port: port,
            bind_host: "127.0.0.1".into(),
        })
    }

    fn file_path(&self, host_path: &Path, _relative: &str) -> String {
        host_path
            .canonicalize()
            .unwrap_or_else(|_| host_path.to_path_buf())
            .display()
            .to_string()
    }

    fn replays<'a>(
        &'a self,
        postgres: &'a Component,
        of: &'a SnapshotOf,
    ) -> BoxFuture<'a, Result<bool, EnvError>> {
        async move {
            let source = self.source(postgres, Some(of)).await?;
            Ok(matches!(source.snapshot, Some((_, Snapshot::Replay(_)))))
        }
        .boxed()
    }

    fn started(&self) {
        let wanted =
            std::mem::take(&mut *self.spares_wanted.lock().unwrap_or_else(|e| e.into_inner()));
        // A kept ecosystem's harness exits now: it starts nothing more.
        if self.keep {
            return;
        }
        for (cluster, run_as) in wanted {
            spare::replenish(&cluster, run_as);
        }
    }

    fn start(&self, spec: LaunchSpec) -> BoxFuture<'_, Result<Arc<dyn Instance>, EnvError>> {
        async move {
            let c = &spec.component;
            let mut note = None;
            if c.kind == Kind::Postgres {
                note = self.postgres_data(&spec).await?;
                self.postgres_specs
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(c.name.clone(), spec.clone());
            }
            let snapshot = match (&spec.snapshot, c.kind) {
                (Some(of), Kind::Job) => self
                    .snapshots
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(&of.job)
                    .cloned()
                    .map(|what| (of, what)),
                _ => None,
            };
            let recipe = self.recipe(&spec)?;
            let log_path = self.logs_dir.join(format!("{}.log", c.name));
            let _ = fs::remove_file(&log_path);
            if let Some(note) = note {
                fs::write(&log_path, note)
                    .map_err(EnvError::io(format!("write {}", log_path.display())))?;
            }
            let instance = Arc::new(ProcessInstance {
                name: c.name.clone(),
                recipe,
                port: spec.placement.inner_port,
                log_path,
                keep: self.keep,
                child: Mutex::new(None),
                replayed: AtomicBool::new(false),
            });
            // The component binds its port itself: let it go now.
            self.reserved
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&c.name);
            if let Some((of, Snapshot::Replay(kept))) = &snapshot {
                let note = snapshot::replay_note(of, &format!("the snapshot {}", kept.display()));
                fs::write(&instance.log_path, note).map_err(EnvError::io(format!(
                    "write {}",
                    instance.log_path.display()
                )))?;
                instance.replayed.store(true, Ordering::Relaxed);
            } else {
                instance.spawn()?;
            }
            self.started
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(Arc::clone(&instance));
            // A Postgres whose readiness is its query (the default) is
            // probed once, by the ecosystem, as for any component; one
            // with another condition must answer queries as well.
            if c.kind == Kind::Postgres && c.ready != Ready::Postgres {
                pg::init_for_ecosystem(instance.as_ref(), &spec).await?;
            }
            if let Some((of, Snapshot::Keep(kept))) = snapshot {
                // The job runs to its end here, then its result is kept.
                let probe = ready::Probe::for_process(spec.placement.inner_port);
                ready::wait(
                    &c.name,
                    &Ready::Exited,
                    &probe,
                    instance.as_ref(),
                    c.ready_timeout,
                )
                .await?;
                self.keep_snapshot(of, kept).await?;
            }
            Ok(instance as Arc<dyn Instance>)
        }
        .boxed()
    }

    fn teardown(&self) -> BoxFuture<'_, ()> {
        async move { self.teardown_blocking() }.boxed()
    }

    fn keep_state(&self) -> serde_json::Value {
        let started = self.started.lock().unwrap_or_else(|e| e.into_inner());
        json!({
            "run-dir": self.run_dir,
            "processes": started.iter().filter_map(|p| {
                let pid = p.running_pid()?;
                Some(json!({
                    "name": p.name,
                    "pid": pid,
                    "start-time": process_start_time(pid),
                    "stop-signal": p.recipe.stop_signal,
                }))
            }).collect::<Vec<_>>(),
        })
    }
}

impl ProcessBackend {
    /// Stops every child (dependants first) and removes the run directory.
    pub(crate) fn teardown_blocking(&self) {
        let started: Vec<_> = self
            .started
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
            .collect();
        std::thread::scope(|scope| {
            for p in started.iter().rev() {
                scope.spawn(move || p.stop_blocking(p.recipe.stop_signal));
            }
        });
        let _ = fs::remove_dir_all(&self.run_dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sweep removes what processes gone left (a run without `keep`, a
    /// spares directory with or without its owner record) and leaves what
    /// belongs to a live process or was kept.
    #[test]
    fn the_sweep_removes_what_processes_gone_left_and_nothing_else() {
        let tmp = tempfile::tempdir().unwrap();
        let me = std::process::id();
        // Processes that exited: children run to their end.
        let exited = || {
            std::process::Command::new("true")
                .spawn()
                .and_then(|mut c| c.wait().map(|_| c.id()))
                .unwrap()
        };
        let (gone, also_gone) = (exited(), exited());
        let owned = |name: &str, pid: u32, keep: bool| {
            let dir = tmp.path().join(name);
            fs::create_dir_all(dir.join("data")).unwrap();
            record_owner(&dir, pid, keep).unwrap();
            dir
        };
        let dead_run = owned("tekup-run-dead", gone, false);
        let kept_run = owned("tekup-run-kept", gone, true);
        let live_run = owned("tekup-run-live", me, false);
        let dead_spares = owned(&format!("tekup-run-spares-{gone}"), gone, false);
        let half_removed = tmp.path().join(format!("tekup-run-spares-{also_gone}"));
        let live_spares = tmp.path().join(format!("tekup-run-spares-{me}"));
        let other = tmp.path().join("tekup-other");
        for dir in [&half_removed, &live_spares, &other] {
            fs::create_dir_all(dir.join("cluster@self")).unwrap();
        }

        sweep_stale_runs(tmp.path());

        for gone in [&dead_run, &dead_spares, &half_removed] {
            assert!(!gone.exists(), "{} was left", gone.display());
        }
        for stays in [&kept_run, &live_run, &live_spares, &other] {
            assert!(stays.exists(), "{} was removed", stays.display());
        }
    }
}
