//! A throw-away PostgreSQL server from the machine's own binaries.
//!
//! Starting one costs a copy of a cached `initdb` template plus the server's
//! own start-up: the first start on a machine runs `initdb` once into
//! `$TMPDIR/tekup-harness-cache/` (override with `TEKUP_CACHE_DIR`), later
//! starts copy that directory, into memory when the machine has room
//! ([`super::scratch`]). PostgreSQL refuses to run as root; when the
//! harness is root, the server runs as the `postgres` system user.
//!
//! Readiness is the server's own "ready to accept connections" log line,
//! awaited with a deadline; an early exit or a timeout is reported with the
//! server's last log lines.

use std::collections::VecDeque;
use std::fs;
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use super::error::EnvError;
use super::model::Ready;
use super::ready::{self, Probe};
use super::runtime::{Instance, LaunchSpec};
use super::spawn::{signal_group, spawn_owned};

/// Where the server keeps its dynamic shared memory: files in the data
/// directory (`pg_dynshmem/`), thrown away with it, instead of POSIX
/// segments in `/dev/shm`, which the immediate shutdown (SIGQUIT) every
/// throw-away server ends with leaves behind: some ten megabytes of memory
/// per run of the test suite, until the machine restarts.
pub(crate) const DSM_IN_DATA_DIR: &str = "dynamic_shared_memory_type=mmap";

/// How long the server may take to accept connections.
pub const DEFAULT_STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
const LOG_TAIL_LINES: usize = 200;
const SUPERUSER: &str = "postgres";

/// Errors while starting a local PostgreSQL server.
#[derive(Debug, thiserror::Error)]
pub enum PostgresError {
    #[error("failed to find the PostgreSQL binaries (initdb, postgres): looked in $PG_BIN, $PATH and /usr/lib/postgresql/*/bin; install PostgreSQL or set PG_BIN")]
    BinariesNotFound,
    #[error("{0}")]
    NotInstalled(String),
    #[error("running as root, and there is no `postgres` user to run PostgreSQL as (it refuses root); create one with `useradd -r postgres` or run as another user")]
    NoUnprivilegedUser,
    #[error("failed to {action}")]
    Io {
        action: String,
        #[source]
        source: io::Error,
    },
    #[error("initdb failed with {status}:\n{output}")]
    Initdb { status: String, output: String },
    #[error("PostgreSQL exited before it was ready ({status}); last log lines:\n{log}")]
    Exited { status: String, log: String },
    #[error("PostgreSQL was not ready after {waited:?}; last log lines:\n{log}")]
    Timeout { waited: Duration, log: String },
}

fn io_err(action: impl Into<String>) -> impl FnOnce(io::Error) -> PostgresError {
    let action = action.into();
    move |source| PostgresError::Io { action, source }
}

/// A running PostgreSQL server on `127.0.0.1`, stopped and deleted on drop.
#[derive(Debug)]
pub struct LocalPostgres {
    child: Option<Child>,
    port: u16,
    log: Arc<Mutex<VecDeque<String>>>,
    log_path: PathBuf,
    // Last field: removed after the server has stopped.
    dir: tempfile::TempDir,
}

/// The user the server runs as, when the harness itself is root.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RunAs {
    pub(crate) uid: u32,
    pub(crate) gid: u32,
}

impl LocalPostgres {
    /// Starts a server, waiting until it accepts connections.
    pub async fn start() -> Result<Self, PostgresError> {
        Self::off_thread(|| Self::start_blocking(DEFAULT_STARTUP_TIMEOUT)).await
    }

    /// Starts a server on a copy of `cluster`, the data directory of a
    /// cleanly stopped server of the machine's PostgreSQL version (a cluster
    /// kept in the cache, say), waiting until it accepts connections.
    /// `cluster` itself is only read.
    pub async fn start_from(cluster: impl Into<PathBuf>) -> Result<Self, PostgresError> {
        let cluster = cluster.into();
        Self::off_thread(move || {
            if !cluster.join("PG_VERSION").is_file() {
                return Err(PostgresError::Io {
                    action: format!(
                        "start from {}: it is not a PostgreSQL data directory (no PG_VERSION)",
                        cluster.display()
                    ),
                    source: io::ErrorKind::NotFound.into(),
                });
            }
            let bin = find_bin_dir()?;
            Self::start_copy_of(&cluster, &bin, run_as()?, DEFAULT_STARTUP_TIMEOUT)
        })
        .await
    }

    /// Runs a blocking start (file copies, the wait for the server's log
    /// line) off the async runtime's threads.
    async fn off_thread(
        start: impl FnOnce() -> Result<Self, PostgresError> + Send + 'static,
    ) -> Result<Self, PostgresError> {
        tokio::task::spawn_blocking(start)
            .await
            .map_err(|e| PostgresError::Io {
                action: "join the start-up task".into(),
                source: io::Error::other(e.to_string()),
            })?
    }

    /// Starts a server from a synchronous context.
    pub fn start_blocking(timeout: Duration) -> Result<Self, PostgresError> {
        let bin = find_bin_dir()?;
        let run_as = run_as()?;
        let template = ensure_template(&bin, run_as)?;
        Self::start_copy_of(&template, &bin, run_as, timeout)
    }

    /// Starts a server on a fresh copy of `template`.
    fn start_copy_of(
        template: &Path,
        bin: &Path,
        run_as: Option<RunAs>,
        timeout: Duration,
    ) -> Result<Self, PostgresError> {
        let dir = tempfile::Builder::new()
            .prefix("tekup-pg-")
            .tempdir_in(super::scratch::dir())
            .map_err(io_err("create a temporary directory"))?;
        copy_for_server(template, dir.path(), run_as)?;
        let mut last_error = None;
        // A free port can be taken between our probe and the server's bind.
        for _ in 0..3 {
            match Self::launch(bin, run_as, &dir, timeout) {
                Ok((child, port, log, log_path)) => {
                    return Ok(Self {
                        child: Some(child),
                        port,
                        log,
                        log_path,
                        dir,
                    })
                }
                Err(e @ PostgresError::Exited { .. }) if e.to_string().contains("in use") => {
                    last_error = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last_error.expect("loop ran at least once"))
    }

    #[expect(
        clippy::type_complexity,
        reason = "private helper returning the parts of Self"
    )]
    fn launch(
        bin: &Path,
        run_as: Option<RunAs>,
        dir: &tempfile::TempDir,
        timeout: Duration,
    ) -> Result<(Child, u16, Arc<Mutex<VecDeque<String>>>, PathBuf), PostgresError> {
        let port = super::ports::free_port().map_err(io_err("find a free port"))?;
        let mut command = Command::new(bin.join("postgres"));
        command
            .arg("-D")
            .arg(dir.path().join("data"))
            .args(["-p", &port.to_string(), "-k"])
            .arg(dir.path())
            .args(["-c", "listen_addresses=127.0.0.1"])
            .args(["-c", "fsync=off", "-c", "synchronous_commit=off"])
            .args(["-c", "full_page_writes=off", "-c", "max_connections=300"])
            .args(["-c", DSM_IN_DATA_DIR])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(user) = run_as {
            command.uid(user.uid).gid(user.gid);
        }
        let mut child = spawn_owned(command).map_err(io_err("start postgres"))?;
        let log_path = dir.path().join("postgres.log");
        let log = Arc::new(Mutex::new(VecDeque::new()));
        let (ready_tx, ready_rx) = mpsc::channel();
        let stderr = child.stderr.take().expect("stderr is piped");
        let log_file = fs::File::create(&log_path).map_err(io_err("create the postgres log"))?;
        let tail = Arc::clone(&log);
        std::thread::spawn(move || follow_log(stderr, log_file, &tail, &ready_tx));

        let started = Instant::now();
        loop {
            match ready_rx.recv_timeout(Duration::from_millis(50)) {
                Ok(()) => return Ok((child, port, log, log_path)),
                Err(mpsc::RecvTimeoutError::Timeout | mpsc::RecvTimeoutError::Disconnected) => {}
            }
            if let Some(status) = child.try_wait().map_err(io_err("wait for postgres"))? {
                return Err(PostgresError::Exited {
                    status: status.to_string(),
                    log: tail_text(&log),
                });
            }
            if started.elapsed() > timeout {
                let _ = child.kill();
                let _ = child.wait();
                return Err(PostgresError::Timeout {
                    waited: started.elapsed(),
                    log: tail_text(&log),
                });
            }
        }
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A connection URL for `user` to `database` (trust authentication).
    pub fn url(&self, user: &str, database: &str) -> String {
        format!("postgres://{user}@127.0.0.1:{}/{database}", self.port)
    }

    /// A connection URL for the superuser to the `postgres` database.
    pub fn admin_url(&self) -> String {
        self.url(SUPERUSER, "postgres")
    }

    /// The server's last log lines, oldest first.
    pub fn log_tail(&self) -> String {
        tail_text(&self.log)
    }

    /// The directory holding the data directory, socket and log; removed on drop.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Where the full server log is written.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }
}

impl Drop for LocalPostgres {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // SIGQUIT is PostgreSQL's immediate shutdown: the data is thrown away.
        let _ = signal_group(child.id(), libc::SIGQUIT);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if matches!(child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = signal_group(child.id(), libc::SIGKILL);
        let _ = child.wait();
    }
}

fn follow_log(
    stderr: impl io::Read,
    mut file: fs::File,
    tail: &Mutex<VecDeque<String>>,
    ready: &mpsc::Sender<()>,
) {
    for line in BufReader::new(stderr).lines() {
        let Ok(line) = line else { break };
        let _ = writeln!(file, "{line}");
        let is_ready = line.contains("ready to accept connections");
        {
            let mut tail = tail.lock().unwrap_or_else(|e| e.into_inner());
            if tail.len() == LOG_TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(line);
        }
        // Signalled after the line is in the tail, so a caller woken by it sees it there.
        if is_ready {
            let _ = ready.send(());
        }
    }
}

fn tail_text(log: &Mutex<VecDeque<String>>) -> String {
    let tail = log.lock().unwrap_or_else(|e| e.into_inner());
    let skip = tail.len().saturating_sub(20);
    tail.iter()
        .skip(skip)
        .cloned()
        .collect::<Vec<_>>()
        .join("\n")
}

/// Finds the directory holding `initdb` and `postgres`, installing
/// PostgreSQL when it is missing and that is allowed (see
/// [`super::provision`]).
pub(crate) fn find_bin_dir() -> Result<PathBuf, PostgresError> {
    if let Ok(dir) = locate_bin_dir() {
        return Ok(dir);
    }
    super::provision::ensure(&super::provision::POSTGRES, || locate_bin_dir().ok())
        .map_err(|e| PostgresError::NotInstalled(e.to_string()))
}

/// Finds the directory holding `initdb` and `postgres`.
pub(crate) fn locate_bin_dir() -> Result<PathBuf, PostgresError> {
    let has_bins = |dir: &Path| dir.join("initdb").is_file() && dir.join("postgres").is_file();
    if let Some(dir) = std::env::var_os("PG_BIN").map(PathBuf::from) {
        return if has_bins(&dir) {
            Ok(dir)
        } else {
            Err(PostgresError::BinariesNotFound)
        };
    }
    if let Some(path) = std::env::var_os("PATH") {
        if let Some(dir) = std::env::split_paths(&path).find(|d| has_bins(d)) {
            return Ok(dir);
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            Some((version, e.path().join("bin")))
        })
        .filter(|(_, bin)| has_bins(bin))
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, bin)| bin)
        .ok_or(PostgresError::BinariesNotFound)
}

pub(crate) fn run_as() -> Result<Option<RunAs>, PostgresError> {
    let euid = fs::metadata("/proc/self")
        .map_err(io_err("read the effective user id"))?
        .uid();
    if euid != 0 {
        return Ok(None);
    }
    let passwd = fs::read_to_string("/etc/passwd").map_err(io_err("read /etc/passwd"))?;
    passwd
        .lines()
        .find_map(|line| {
            let mut fields = line.split(':');
            if fields.next()? != "postgres" {
                return None;
            }
            let _password = fields.next()?;
            let uid = fields.next()?.parse().ok()?;
            let gid = fields.next()?.parse().ok()?;
            Some(Some(RunAs { uid, gid }))
        })
        .ok_or(PostgresError::NoUnprivilegedUser)
}

/// `postgres --version` of the binaries in `bin`, as a name for the cached
/// template (`PostgreSQL_15.18_...`). Asked once per directory and process:
/// it is a program run, and every start needs it (some 10 ms of a start
/// beside the other components' own).
fn version_of(bin: &Path) -> Result<String, PostgresError> {
    static VERSIONS: Mutex<Vec<(PathBuf, String)>> = Mutex::new(Vec::new());
    let mut known = VERSIONS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, version)) = known.iter().find(|(dir, _)| dir == bin) {
        return Ok(version.clone());
    }
    let out = Command::new(bin.join("postgres"))
        .arg("--version")
        .output()
        .map_err(io_err("run postgres --version"))?;
    let version: String = String::from_utf8_lossy(&out.stdout)
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    known.push((bin.to_path_buf(), version.clone()));
    Ok(version)
}

/// Returns the cached initdb template for this PostgreSQL version, creating
/// it on first use. Concurrent creators race to an atomic rename.
pub(crate) fn ensure_template(bin: &Path, run_as: Option<RunAs>) -> Result<PathBuf, PostgresError> {
    let version = version_of(bin)?;
    let cache = std::env::var_os("TEKUP_CACHE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("tekup-harness-cache"));
    let template = cache.join(format!("initdb-{}", version.trim_matches('_')));
    if template.join("PG_VERSION").is_file() {
        return Ok(template);
    }
    fs::create_dir_all(&cache).map_err(io_err(format!("create {}", cache.display())))?;
    let staging = tempfile::Builder::new()
        .prefix(".initdb-")
        .tempdir_in(&cache)
        .map_err(io_err("create a staging directory for initdb"))?;
    if let Some(user) = run_as {
        chown_tree(staging.path(), user)
            .map_err(io_err("hand the staging directory to postgres"))?;
    }
    let data = staging.path().join("data");
    let mut initdb = Command::new(bin.join("initdb"));
    initdb.arg("-D").arg(&data).args([
        "-U",
        SUPERUSER,
        "--auth=trust",
        "--encoding=UTF8",
        "--locale=C",
        "--no-sync",
    ]);
    if let Some(user) = run_as {
        initdb.uid(user.uid).gid(user.gid);
    }
    let out = initdb.output().map_err(io_err("run initdb"))?;
    if !out.status.success() {
        return Err(PostgresError::Initdb {
            status: out.status.to_string(),
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        });
    }
    match fs::rename(&data, &template) {
        Ok(()) => {}
        // Another process won the race; its template is as good as ours.
        Err(_) if template.join("PG_VERSION").is_file() => {}
        Err(e) => return Err(io_err("move the initdb template into the cache")(e)),
    }
    Ok(template)
}

/// The cached cluster an ecosystem's Postgres starts from: the initdb
/// template plus the image contract's role and database (`user`, `database`;
/// see [`init_for_ecosystem`]), made once per (version, user, database) with
/// `postgres --single` on a copy of the template. A start then copies this
/// cluster and creates nothing: `CREATE DATABASE` alone took about a
/// hundred milliseconds of every start.
pub(crate) fn ensure_cluster(
    bin: &Path,
    run_as: Option<RunAs>,
    user: &str,
    database: &str,
) -> Result<PathBuf, PostgresError> {
    use sha2::Digest as _;
    let template = ensure_template(bin, run_as)?;
    let mut statements = Vec::new();
    let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    if user != SUPERUSER {
        statements.push(format!("CREATE ROLE {} SUPERUSER LOGIN", quote(user)));
    }
    if database != "postgres" {
        statements.push(format!(
            "CREATE DATABASE {} OWNER {}",
            quote(database),
            quote(user)
        ));
    }
    if statements.is_empty() {
        return Ok(template);
    }
    let cache = template.parent().unwrap_or(&template);
    let key = hex::encode(&sha2::Sha256::digest(statements.join("\n").as_bytes())[..8]);
    let name = template.file_name().unwrap_or_default().to_string_lossy();
    let cluster = cache.join(format!("{name}-{key}"));
    if cluster.join("PG_VERSION").is_file() {
        return Ok(cluster);
    }
    let staging = tempfile::Builder::new()
        .prefix(".cluster-")
        .tempdir_in(cache)
        .map_err(io_err("create a staging directory for the cluster"))?;
    let data = copy_for_server(&template, staging.path(), run_as)?;
    // Single-user mode: no server, no port; one statement per line, and the
    // cluster is shut down cleanly at the end of the input.
    let mut single = Command::new(bin.join("postgres"));
    single
        .arg("--single")
        .arg("-D")
        .arg(&data)
        .args(["-c", "fsync=off", "postgres"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(owner) = run_as {
        single.uid(owner.uid).gid(owner.gid);
    }
    let mut child = single.spawn().map_err(io_err("run postgres --single"))?;
    if let Some(mut stdin) = child.stdin.take() {
        let script = format!("{}\n", statements.join("\n"));
        stdin
            .write_all(script.as_bytes())
            .map_err(io_err("write to postgres --single"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(io_err("wait for postgres --single"))?;
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Single-user mode reports a failed statement on its output and goes on.
    if !out.status.success() || output.contains("ERROR:") {
        return Err(PostgresError::Initdb {
            status: format!(
                "{} (postgres --single: {})",
                out.status,
                statements.join("; ")
            ),
            output,
        });
    }
    match fs::rename(&data, &cluster) {
        Ok(()) => {}
        Err(_) if cluster.join("PG_VERSION").is_file() => {}
        Err(e) => return Err(io_err("move the cluster into the cache")(e)),
    }
    Ok(cluster)
}

/// Copies the cluster `template` to `<dir>/data`, all of `dir` handed to
/// the user the server runs as; returns the data directory.
pub(crate) fn copy_for_server(
    template: &Path,
    dir: &Path,
    run_as: Option<RunAs>,
) -> Result<PathBuf, PostgresError> {
    let data = dir.join("data");
    copy_dir(template, &data).map_err(io_err(format!(
        "copy the initdb template {} to {}",
        template.display(),
        data.display()
    )))?;
    if let Some(user) = run_as {
        chown_tree(dir, user).map_err(io_err("hand the data directory to postgres"))?;
    }
    Ok(data)
}

pub(crate) fn copy_dir(from: &Path, to: &Path) -> io::Result<()> {
    fs::create_dir(to)?;
    fs::set_permissions(to, fs::Permissions::from_mode(0o700))?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        let kind = entry.file_type()?;
        if kind.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else if kind.is_file() {
            fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

pub(crate) fn chown_tree(path: &Path, user: RunAs) -> io::Result<()> {
    std::os::unix::fs::chown(path, Some(user.uid), Some(user.gid))?;
    if fs::symlink_metadata(path)?.is_dir() {
        for entry in fs::read_dir(path)? {
            chown_tree(&entry?.path(), user)?;
        }
    }
    Ok(())
}

/// Waits until an ecosystem's Postgres answers as its superuser. The
/// `POSTGRES_USER`/`POSTGRES_DB` part of the official image's contract is
/// in the cluster it started from ([`ensure_cluster`]). Authentication is
/// `trust` on 127.0.0.1, so passwords are not checked.
pub(crate) async fn init_for_ecosystem(
    instance: &dyn Instance,
    spec: &LaunchSpec,
) -> Result<(), EnvError> {
    let c = &spec.component;
    let port = spec.placement.inner_port.unwrap_or(5432);
    let probe = Probe {
        // Trust authentication: no password.
        postgres_url: Some(super::resolve::postgres_url(
            SUPERUSER,
            "",
            "127.0.0.1",
            &port.to_string(),
            &c.database,
        )),
        ..Probe::for_process(Some(port))
    };
    ready::wait(&c.name, &Ready::Postgres, &probe, instance, c.ready_timeout)
        .await
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_starts_accepts_tcp_and_is_gone_after_drop() {
        let pg = LocalPostgres::start_blocking(DEFAULT_STARTUP_TIMEOUT).expect("postgres starts");
        let port = pg.port();
        std::net::TcpStream::connect(("127.0.0.1", port)).expect("accepts TCP");
        let dir = pg.dir().to_path_buf();
        assert!(pg.log_tail().contains("ready to accept connections"));
        // Its dynamic shared memory is in its data directory, which goes
        // with it (`DSM_IN_DATA_DIR`), not in /dev/shm, where it would stay.
        let dsm = fs::read_dir(dir.join("data/pg_dynshmem"))
            .expect("pg_dynshmem")
            .count();
        assert!(dsm > 0, "no segment in the data directory's pg_dynshmem");
        drop(pg);
        assert!(!dir.exists(), "data directory removed");
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
            "server stopped"
        );
    }

    #[tokio::test]
    async fn a_server_starts_from_a_copy_of_a_kept_cluster_and_leaves_it_as_it_was() {
        let bin = find_bin_dir().expect("PostgreSQL binaries");
        let run_as = run_as().expect("a user to run PostgreSQL as");
        let cluster = ensure_cluster(&bin, run_as, "ledger_owner", "ledger").expect("a cluster");
        let before = fs::read_dir(&cluster).expect("the cluster").count();
        let pg = LocalPostgres::start_from(&cluster)
            .await
            .expect("postgres starts");
        assert!(pg.log_tail().contains("ready to accept connections"));
        assert!(pg.dir().join("data").join("PG_VERSION").is_file());
        drop(pg);
        assert_eq!(fs::read_dir(&cluster).expect("the cluster").count(), before);
        assert!(
            !cluster.join("postmaster.pid").exists(),
            "the server ran on a copy"
        );

        let empty = tempfile::tempdir().expect("a directory");
        let e = LocalPostgres::start_from(empty.path())
            .await
            .expect_err("no cluster");
        assert!(
            e.to_string().contains("not a PostgreSQL data directory"),
            "{e}"
        );
    }

    #[test]
    fn a_cluster_postgres_refuses_to_make_is_an_error_that_says_why() {
        let bin = find_bin_dir().expect("PostgreSQL binaries");
        let run_as = run_as().expect("a user to run PostgreSQL as");
        // Role names starting with pg_ are reserved.
        let err = ensure_cluster(&bin, run_as, "pg_ledger", "ledger").expect_err("refused");
        let text = err.to_string();
        assert!(text.contains("CREATE ROLE \"pg_ledger\""), "{text}");
        assert!(text.contains("reserved"), "{text}");
    }
}
