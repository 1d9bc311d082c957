//! Spare copies of the clusters the process runtime's Postgres starts
//! from, made ahead of the start that will use them.
//!
//! A Postgres component's first start in a run needs its own copy of a
//! cached cluster (about 47 MB in some 1,300 files for the kept snapshot of
//! `migrate`). Made during the start, that copy was on its critical path:
//! 60 to 80 ms of a 160 ms warm start, on two cores shared with the eleven
//! other programs starting beside it. So once a start is over (every
//! component ready, [`super::Backend::started`]), the process makes one
//! more copy of each cluster it started from, in a thread of its own; the
//! next start of the same cluster in this process takes it with one
//! `rename`, and the copy after that is made once that start is over. What
//! a start takes is a copy made exactly as the start would make it (the
//! same files, from the cached cluster, never from a run's data, owned by
//! the user the server runs as), and no start ever waits for a spare:
//! without one ready (the first start, or several at once) it copies as
//! before. The Postgres component's log begins with where its data
//! directory came from.
//!
//! - Spares live in `<scratch>/tekup-run-spares-<pid>/` ([`super::scratch`]:
//!   memory when the machine has room), one per cluster at most. The
//!   directory carries the same owner record as a run directory, so a
//!   process killed before it could clean up has it swept by the next
//!   start anywhere on the machine; a process that exits normally removes
//!   it on its way out (`atexit`), once the copy being made, if any, is
//!   done.
//! - `TEKUP_SPARE_CLUSTERS=0` turns spares off: every start copies (the
//!   memory a spare holds is then never used; a benchmark compares both).
//! - [`wait_for_spares`] waits until no spare is being made, for a caller
//!   that measures something the copy's work must not fall on.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, OnceLock};

use super::postgres::{self as pg, RunAs};

/// The cluster copies being made now, by spare name.
static MAKING: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
static MADE: Condvar = Condvar::new();
/// This process's spares directory, once made.
static DIR: OnceLock<Option<PathBuf>> = OnceLock::new();
/// Set as the process exits: no spare is begun after it.
static EXITING: AtomicBool = AtomicBool::new(false);

/// Whether spares are on (`TEKUP_SPARE_CLUSTERS`, default on).
pub(crate) fn enabled() -> bool {
    !std::env::var("TEKUP_SPARE_CLUSTERS").is_ok_and(|v| v == "0" || v == "false")
}

/// Moves a spare copy of `cluster`, made for `run_as`, to `data` (which must
/// not exist), and says whether there was one. Any failure short of that
/// (none ready, another start took it first, another file system) leaves
/// the caller to copy.
pub(crate) fn take(cluster: &Path, run_as: Option<RunAs>, data: &Path) -> bool {
    if !enabled() {
        return false;
    }
    let Some(Some(dir)) = DIR.get() else {
        return false;
    };
    let spare = dir.join(name(cluster, run_as));
    // A rename is atomic: of two starts asking at once, one gets it.
    if fs::rename(&spare, data).is_err() {
        return false;
    }
    // Only whole copies get their name; a check costs one stat.
    if data.join("PG_VERSION").is_file() {
        return true;
    }
    let _ = fs::remove_dir_all(data);
    false
}

/// Makes a spare copy of `cluster` for `run_as` in a thread of its own,
/// unless one is ready or being made. Errors are dropped: a spare missing
/// costs the next start its copy, nothing else.
pub(crate) fn replenish(cluster: &Path, run_as: Option<RunAs>) {
    if !enabled() {
        return;
    }
    let Some(dir) = DIR.get_or_init(make_dir).clone() else {
        return;
    };
    let name = name(cluster, run_as);
    if dir.join(&name).exists() {
        return;
    }
    {
        let mut making = making();
        if EXITING.load(Ordering::SeqCst) || !making.insert(name.clone()) {
            return;
        }
    }
    let cluster = cluster.to_path_buf();
    let spawned = std::thread::Builder::new()
        .name("tekup-spare".into())
        .spawn({
            let name = name.clone();
            move || {
                let _ = make(&cluster, run_as, &dir, &name);
                making().remove(&name);
                MADE.notify_all();
            }
        });
    if spawned.is_err() {
        making().remove(&name);
        MADE.notify_all();
    }
}

/// Waits until no spare is being made.
pub fn wait_for_spares() {
    let mut making = making();
    while !making.is_empty() {
        making = MADE.wait(making).unwrap_or_else(|e| e.into_inner());
    }
}

fn making() -> std::sync::MutexGuard<'static, BTreeSet<String>> {
    MAKING.lock().unwrap_or_else(|e| e.into_inner())
}

/// The spare of `cluster` for `run_as`: the cluster's directory name
/// (unique within the cache: template, cluster and snapshot names carry
/// their keys) and the server's user.
fn name(cluster: &Path, run_as: Option<RunAs>) -> String {
    let base = cluster.file_name().unwrap_or_default().to_string_lossy();
    match run_as {
        Some(user) => format!("{base}@{}", user.uid),
        None => format!("{base}@self"),
    }
}

/// Copies `cluster` into `dir` under a staging name, hands it to the
/// server's user, and only then gives it its name: a spare found is whole.
fn make(cluster: &Path, run_as: Option<RunAs>, dir: &Path, name: &str) -> io::Result<()> {
    let staging = dir.join(format!(".making-{name}"));
    let _ = fs::remove_dir_all(&staging);
    let made = pg::copy_dir(cluster, &staging).and_then(|()| match run_as {
        Some(user) => pg::chown_tree(&staging, user),
        None => Ok(()),
    });
    match made.and_then(|()| fs::rename(&staging, dir.join(name))) {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = fs::remove_dir_all(&staging);
            Err(e)
        }
    }
}

/// This process's spares directory, with its owner record, removed when
/// the process exits; `None` if it cannot be made (spares are then off).
fn make_dir() -> Option<PathBuf> {
    let pid = std::process::id();
    let dir = super::scratch::dir().join(format!("tekup-run-spares-{pid}"));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).ok()?;
    super::process::record_owner(&dir, pid, false).ok()?;
    remove_at_exit(&dir);
    Some(dir)
}

/// The directory [`remove_at_exit`] removes.
static AT_EXIT: OnceLock<PathBuf> = OnceLock::new();

fn remove_at_exit(dir: &Path) {
    if AT_EXIT.set(dir.to_path_buf()).is_err() {
        return;
    }
    extern "C" fn remove() {
        // Begin no spare from now on (set under the lock `replenish` checks
        // it under), and let the one being made finish: removing the
        // directory while a copy writes into it left parts of it behind.
        {
            let _making = making();
            EXITING.store(true, Ordering::SeqCst);
        }
        wait_for_spares();
        if let Some(dir) = AT_EXIT.get() {
            let _ = fs::remove_dir_all(dir);
        }
    }
    // SAFETY: `remove` is a plain function with the signature atexit(3)
    // wants; it touches only a static set before it is registered. A
    // failed registration leaves the directory to the next start's sweep.
    #[expect(unsafe_code, reason = "atexit(3) has no wrapper in std")]
    unsafe {
        libc::atexit(remove);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A process that exits while a spare is being made leaves nothing
    /// behind: the test runs itself again as that process
    /// (`TEKUP_SPARE_EXIT_CHILD`), in a scratch directory of its own.
    #[test]
    fn a_process_exiting_while_a_spare_is_made_leaves_nothing() {
        if let Some(cluster) = std::env::var_os("TEKUP_SPARE_EXIT_CHILD") {
            let cluster = PathBuf::from(cluster);
            replenish(&cluster, None);
            // Exit once the copy is under way (or, on a fast machine, done).
            let dir = DIR.get().cloned().flatten().unwrap();
            let name = name(&cluster, None);
            while !dir.join(format!(".making-{name}/base")).exists() && !dir.join(&name).exists() {
                std::thread::yield_now();
            }
            std::process::exit(0);
        }
        let tmp = tempfile::tempdir().unwrap();
        let cluster = tmp.path().join("cluster-big");
        for db in 0..20 {
            let dir = cluster.join(format!("base/{db}"));
            fs::create_dir_all(&dir).unwrap();
            for file in 0..20 {
                fs::write(dir.join(file.to_string()), vec![1u8; 64 * 1024]).unwrap();
            }
        }
        fs::write(cluster.join("PG_VERSION"), "15\n").unwrap();
        let scratch = tmp.path().join("scratch");
        for round in 0..3 {
            let status = std::process::Command::new(std::env::current_exe().unwrap())
                .args([
                    "--exact",
                    "env::spare::tests::a_process_exiting_while_a_spare_is_made_leaves_nothing",
                    "--nocapture",
                ])
                .env("TEKUP_SPARE_EXIT_CHILD", &cluster)
                .env("TEKUP_SCRATCH_DIR", &scratch)
                .env_remove("TEKUP_SPARE_CLUSTERS")
                .stdout(std::process::Stdio::null())
                .status()
                .unwrap();
            assert!(status.success(), "round {round}: {status}");
            let left: Vec<_> = fs::read_dir(&scratch)
                .unwrap()
                .filter_map(Result::ok)
                .map(|e| e.path())
                .collect();
            assert!(left.is_empty(), "round {round}: left behind: {left:?}");
        }
    }

    /// A spare is taken once, whole, and the cluster it was made from is
    /// left as it was.
    #[test]
    fn a_spare_is_a_whole_copy_taken_once() {
        let tmp = tempfile::tempdir().unwrap();
        let cluster = tmp.path().join("cluster-abc");
        fs::create_dir_all(cluster.join("base/1")).unwrap();
        fs::write(cluster.join("PG_VERSION"), "15\n").unwrap();
        fs::write(cluster.join("base/1/1259"), vec![7u8; 3 * 8192]).unwrap();

        replenish(&cluster, None);
        wait_for_spares();

        // Runs take their spares into the same place (`rename` does not
        // cross file systems).
        let runs = tempfile::tempdir_in(super::super::scratch::dir()).unwrap();
        let first = runs.path().join("first");
        assert!(take(&cluster, None, &first), "a spare was made and taken");
        assert_eq!(fs::read(first.join("PG_VERSION")).unwrap(), b"15\n");
        assert_eq!(
            fs::read(first.join("base/1/1259")).unwrap(),
            vec![7u8; 3 * 8192]
        );
        assert!(
            !take(&cluster, None, &runs.path().join("second")),
            "one spare serves one start"
        );
        assert!(
            !take(
                &tmp.path().join("cluster-other"),
                None,
                &runs.path().join("third")
            ),
            "a spare serves only the cluster it was made from"
        );
        assert_eq!(fs::read(cluster.join("PG_VERSION")).unwrap(), b"15\n");

        // Made again on request, and not twice.
        replenish(&cluster, None);
        replenish(&cluster, None);
        wait_for_spares();
        let dir = DIR.get().cloned().flatten().unwrap();
        let made: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("cluster-abc"))
            .collect();
        assert_eq!(made, vec!["cluster-abc@self".to_owned()]);
        assert!(dir.join("owner.json").is_file());

        // A directory under a spare's name without a cluster in it is not
        // taken, and goes.
        let bogus = tmp.path().join("cluster-bogus");
        fs::create_dir_all(dir.join(name(&bogus, None))).unwrap();
        let fourth = runs.path().join("fourth");
        assert!(!take(&bogus, None, &fourth), "an empty spare is refused");
        assert!(!fourth.exists() && !dir.join(name(&bogus, None)).exists());
    }
}
