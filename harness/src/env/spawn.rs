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

/// Whether every thread of every process in the process group `pgid` is
/// stopped (SIGSTOP delivered, state `T`). `kill(2)` returns before that:
/// each thread stops only once it runs again, which on a busy machine can
/// be long enough for a thread still running to answer a request. An empty
/// group counts as stopped: nothing in it runs.
pub(crate) fn group_stopped(pgid: u32) -> io::Result<bool> {
    for entry in fs::read_dir("/proc")? {
        let Ok(pid) = entry?.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        // A process may be gone between the listing and the read.
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some((_, group)) = state_and_group(&stat) else {
            continue;
        };
        if group != pgid {
            continue;
        }
        let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
            continue;
        };
        for task in tasks {
            let tid = task?.file_name();
            let path = format!("/proc/{pid}/task/{}/stat", tid.to_string_lossy());
            let Ok(stat) = fs::read_to_string(path) else {
                continue;
            };
            // `t` is a traced stop; a zombie thread runs nothing either.
            if !matches!(state_and_group(&stat), Some(('T' | 't' | 'Z' | 'X', _))) {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

/// The state (field 3) and process group (field 5) of a `/proc/.../stat`
/// line; the command name before them may hold spaces and parentheses.
fn state_and_group(stat: &str) -> Option<(char, u32)> {
    let mut fields = stat.get(stat.rfind(')')? + 2..)?.split(' ');
    let state = fields.next()?.chars().next()?;
    let group = fields.nth(1)?.parse().ok()?;
    Some((state, group))
}

/// A child that leads its own process group, signalled through the group
/// and never after it has been reaped.
///
/// Once a process is reaped its pid is free, and once its group is empty
/// the kernel may hand the same number to a new process group: with the
/// default `pid_max` of 32768 and the hundreds of processes a test run
/// spawns, that happens within minutes. Signalling `-pid` then would stop,
/// resume or kill someone else's processes (another test's service). So
/// the leader stays a zombie, holding its pid and with it the group's id,
/// until [`Leader::reap`]: exit is observed without reaping (`WNOWAIT`),
/// stragglers of the group are killed while the id is still ours, and only
/// then is the leader reaped, after which no signal is sent.
#[derive(Debug)]
pub(crate) struct Leader {
    child: Child,
    status: Option<std::process::ExitStatus>,
}

impl Leader {
    pub(crate) fn new(child: Child) -> Self {
        Self {
            child,
            status: None,
        }
    }

    pub(crate) fn id(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` to the group; does nothing once the leader is reaped.
    pub(crate) fn signal(&self, signal: i32) -> io::Result<()> {
        if self.status.is_some() {
            return Ok(());
        }
        signal_group(self.child.id(), signal)
    }

    /// How the leader ended, if it has; leaves it unreaped.
    pub(crate) fn exited(&self) -> io::Result<Option<std::process::ExitStatus>> {
        if let Some(status) = self.status {
            return Ok(Some(status));
        }
        peek_exit(self.child.id())
    }

    /// Kills what is left of the group and reaps the leader, waiting for
    /// it if it still runs (callers signal it first).
    pub(crate) fn reap(&mut self) -> io::Result<std::process::ExitStatus> {
        if let Some(status) = self.status {
            return Ok(status);
        }
        if self.exited()?.is_some() {
            let _ = signal_group(self.child.id(), libc::SIGKILL);
        }
        let status = self.child.wait()?;
        self.status = Some(status);
        Ok(status)
    }
}

/// `waitid(P_PID, pid, WEXITED | WNOHANG | WNOWAIT)`: the exit status of a
/// child that has ended, without reaping it.
fn peek_exit(pid: u32) -> io::Result<Option<std::process::ExitStatus>> {
    use std::os::unix::process::ExitStatusExt as _;
    let id = libc::id_t::from(pid);
    #[expect(unsafe_code, reason = "waitid(2) has no wrapper in std")]
    // SAFETY: `info` is a zeroed siginfo_t the kernel fills in; it lives
    // for the whole call.
    let (rc, info) = unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        let rc = libc::waitid(
            libc::P_PID,
            id,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        );
        (rc, info)
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    #[expect(unsafe_code, reason = "siginfo_t's fields are a union in libc")]
    // SAFETY: waitid filled `info` for a child-state change (or left it
    // zeroed, si_pid 0, when the child still runs).
    let (pid, code, status) = unsafe { (info.si_pid(), info.si_code, info.si_status()) };
    if pid == 0 {
        return Ok(None);
    }
    // The raw wait status std decodes: exit code in the second byte, or
    // the signal number (with 0x80 when it dumped core).
    let raw = match code {
        libc::CLD_EXITED => (status & 0xff) << 8,
        libc::CLD_DUMPED => status | 0x80,
        _ => status,
    };
    Ok(Some(std::process::ExitStatus::from_raw(raw)))
}

#[cfg(test)]
mod leader_tests {
    use std::os::unix::process::ExitStatusExt as _;
    use std::time::{Duration, Instant};

    use super::*;

    fn ended(leader: &Leader) -> std::process::ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = leader.exited().expect("waitid") {
                return status;
            }
            assert!(Instant::now() < deadline, "the child never ended");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn state(pid: u32) -> Option<char> {
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        stat[stat.rfind(')')? + 2..].chars().next()
    }

    #[test]
    fn an_ended_leader_keeps_its_pid_until_reaped_and_is_never_signalled_after() {
        let mut command = Command::new("sh");
        command.args(["-c", "exit 3"]);
        let mut leader = Leader::new(spawn_owned(command).expect("spawns"));
        let pid = leader.id();
        let status = ended(&leader);
        assert_eq!(status.code(), Some(3));
        assert_eq!(state(pid), Some('Z'), "observed, not reaped");
        assert_eq!(
            leader.exited().expect("again").map(|s| s.code()),
            Some(Some(3))
        );
        assert_eq!(leader.reap().expect("reaps").code(), Some(3));
        assert_ne!(state(pid), Some('Z'), "reaped");
        // The group id may belong to someone else now: nothing is sent.
        leader.signal(libc::SIGKILL).expect("a no-op");
        assert_eq!(leader.reap().expect("reaped once").code(), Some(3));
    }

    #[test]
    fn a_killed_leader_reports_its_signal() {
        let mut command = Command::new("sleep");
        command.arg("600");
        let mut leader = Leader::new(spawn_owned(command).expect("spawns"));
        assert!(leader.exited().expect("waitid").is_none(), "still running");
        leader.signal(libc::SIGKILL).expect("signals");
        assert_eq!(ended(&leader).signal(), Some(libc::SIGKILL));
        assert_eq!(leader.reap().expect("reaps").signal(), Some(libc::SIGKILL));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_and_group_are_read_past_any_command_name() {
        let stat = "4242 (tekup (x) y) T 1 4240 4240 0 -1 4194560";
        assert_eq!(state_and_group(stat), Some(('T', 4240)));
        assert_eq!(state_and_group("4242 (sleep) S 1"), None);
    }

    /// Waits (up to a minute, on a condition) until `want` is what
    /// [`group_stopped`] says of `pgid`.
    fn until_stopped_is(pgid: u32, want: bool) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while group_stopped(pgid).expect("/proc") != want {
            assert!(
                std::time::Instant::now() < deadline,
                "group {pgid} never read stopped = {want}"
            );
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    #[test]
    fn a_group_reads_stopped_once_every_thread_stopped_and_running_after_sigcont() {
        let mut command = Command::new("sleep");
        command.arg("600");
        let mut leader = Leader::new(spawn_owned(command).expect("sleep starts"));
        let pgid = leader.id();
        assert!(
            !group_stopped(pgid).expect("/proc"),
            "a sleeping process runs"
        );
        leader.signal(libc::SIGSTOP).expect("SIGSTOP");
        until_stopped_is(pgid, true);
        leader.signal(libc::SIGCONT).expect("SIGCONT");
        until_stopped_is(pgid, false);
        leader.signal(libc::SIGKILL).expect("SIGKILL");
        leader.reap().expect("reaped");
        assert!(
            group_stopped(pgid).expect("/proc"),
            "an empty group runs nothing"
        );
    }
}
