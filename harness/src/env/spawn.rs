//! Spawning child processes that never outlive the harness.
//!
//! Linux delivers a parent-death signal (`PR_SET_PDEATHSIG`) when the
//! *thread* that forked the child exits, not the process. Test harnesses and
//! tokio runtimes create and retire threads freely, so every child is forked
//! from one dedicated thread that lives as long as the process: the signal
//! then fires exactly when the harness process is gone, however it died.

use std::fs;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::mpsc;
use std::sync::OnceLock;

type Request = (Command, mpsc::Sender<io::Result<Child>>);

static SPAWNER: OnceLock<mpsc::Sender<Request>> = OnceLock::new();

fn spawner() -> &'static mpsc::Sender<Request> {
    SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Request>();
        std::thread::Builder::new()
            .name("tekup-spawner".into())
            .spawn(move || {
                for (mut command, reply) in rx {
                    // The requester may have given up; nothing to do then,
                    // the child is dropped and reaped by its owner's logic.
                    let _ = reply.send(command.spawn());
                }
            })
            .expect("failed to start the process spawner thread");
        tx
    })
}

/// Spawns `command` in its own process group, with SIGKILL as its
/// parent-death signal.
pub(crate) fn spawn_owned(mut command: Command) -> io::Result<Child> {
    let parent = std::process::id();
    command.process_group(0);
    #[expect(unsafe_code, reason = "prctl and getppid between fork and exec")]
    // SAFETY: only async-signal-safe libc calls run between fork and exec.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died before prctl took effect.
            if libc::getppid() as u32 != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
    let (reply_tx, reply_rx) = mpsc::channel();
    spawner()
        .send((command, reply_tx))
        .map_err(|_| io::Error::other("the process spawner thread is gone"))?;
    reply_rx
        .recv()
        .map_err(|_| io::Error::other("the process spawner thread is gone"))?
}

/// Spawns `command` in its own process group without a parent-death
/// signal: for environments kept running after the harness exits
/// (`tekup-harness up --keep`), stopped later by `tekup-harness down`.
pub(crate) fn spawn_detached(mut command: Command) -> io::Result<Child> {
    command.process_group(0);
    command.spawn()
}

/// Sends `signal` to the process group led by `pid` (children are spawned
/// as group leaders by [`spawn_owned`]).
pub(crate) fn signal_group(pid: u32, signal: i32) -> io::Result<()> {
    let pgid = i32::try_from(pid).map_err(|_| io::Error::other("pid out of range"))?;
    #[expect(unsafe_code, reason = "kill(2) has no safe wrapper in std")]
    // SAFETY: kill has no memory-safety preconditions.
    let rc = unsafe { libc::kill(-pgid, signal) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Finds `name` on PATH.
pub(crate) fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The kernel's start time of `pid` (field 22 of /proc/<pid>/stat): tells a
/// recorded process from a later one that reused its pid.
pub(crate) fn process_start_time(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 2..];
    after_name.split(' ').nth(19)?.parse().ok()
}
