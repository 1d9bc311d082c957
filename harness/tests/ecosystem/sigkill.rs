//! `tekup-harness up` killed with SIGKILL (no destructor, no signal
//! handler) leaves no process, container or network; Ctrl-C tears down.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;
use tekup_harness::env::docker;

use crate::common::{alive, ecosystem_file, eventually, group_members, recorded_pids};

/// The `tekup-harness up` under test. A failing assertion or a killed test
/// process must not leave it running: it gets the test thread's death as
/// SIGKILL, and dropping the guard interrupts it (Ctrl-C: it tears down).
struct Up(Child);

impl Drop for Up {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            signal(&self.0, libc::SIGINT);
            let deadline = std::time::Instant::now() + Duration::from_secs(15);
            while std::time::Instant::now() < deadline {
                if !matches!(self.0.try_wait(), Ok(None)) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Starts `tekup-harness up` and waits (with a deadline) until it says it is up.
fn up(runtime: &str, dir: &Path) -> (Up, Value) {
    let state_file = dir.join("state.json");
    let mut command = Command::new(env!("CARGO_BIN_EXE_tekup-harness"));
    #[expect(unsafe_code, reason = "prctl between fork and exec")]
    // SAFETY: only an async-signal-safe libc call runs between fork and exec.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut command, || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command
        .args(["up", "--runtime", runtime, "--file"])
        .arg(ecosystem_file())
        .arg("--state-file")
        .arg(&state_file)
        .arg("--logs-dir")
        .arg(dir.join("logs"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tekup-harness starts");
    let stdout = child.stdout.take().expect("stdout");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel();
    let tx2 = tx.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx2.send(line);
        }
    });
    let mut seen = Vec::new();
    loop {
        match rx.recv_timeout(Duration::from_secs(180)) {
            Ok(line) if line.contains("up until Ctrl-C") => break,
            Ok(line) => seen.push(line),
            Err(_) => {
                drop(Up(child));
                panic!("`tekup-harness up` did not come up:\n{}", seen.join("\n"));
            }
        }
    }
    let guard = Up(child);
    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(&state_file).expect("state file"))
            .expect("state JSON");
    (guard, state)
}

fn signal(child: &Child, signal: i32) {
    let pid = i32::try_from(child.id()).expect("pid");
    #[expect(unsafe_code, reason = "kill(2) has no safe wrapper in std")]
    // SAFETY: kill has no memory-safety preconditions.
    let rc = unsafe { libc::kill(pid, signal) };
    assert_eq!(rc, 0, "signal delivered");
}

fn leftovers(pids: &[u32]) -> Vec<u32> {
    let mut left: Vec<u32> = pids
        .iter()
        .flat_map(|p| {
            let mut v = group_members(*p);
            if alive(*p) {
                v.push(*p);
            }
            v
        })
        .collect();
    left.sort_unstable();
    left.dedup();
    left
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_the_harness_leaves_no_process() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut harness, state) = up("process", dir.path());
    let pids = recorded_pids(&state);
    assert!(pids.len() >= 11, "{state}");
    let running: Vec<u32> = state["backend"]["processes"]
        .as_array()
        .expect("processes")
        .iter()
        .filter(|p| p["name"] != "migrate")
        .filter_map(|p| u32::try_from(p["pid"].as_u64()?).ok())
        .collect();
    assert!(running.iter().all(|p| alive(*p)), "the components run");
    let run_dir = state["backend"]["run-dir"]
        .as_str()
        .expect("run dir")
        .to_owned();

    signal(&harness.0, libc::SIGKILL);
    let _ = harness.0.wait();
    assert!(
        eventually(Duration::from_secs(10), || leftovers(&pids).is_empty()).await,
        "processes left after SIGKILL: {:?}",
        leftovers(&pids)
    );
    // No destructor ran: the run directory (Postgres data) is still there,
    // and the next start sweeps it away.
    assert!(Path::new(&run_dir).exists());
    let next = dir.path().join("next.toml");
    std::fs::write(
        &next,
        "[component.noop]\nkind = \"job\"\nprogram = \"/bin/true\"\n",
    )
    .expect("write");
    let eco = tekup_harness::env::Ecosystem::builder()
        .file(&next)
        .runtime(tekup_harness::env::Runtime::Process)
        .logs_dir(dir.path().join("next-logs"))
        .start()
        .await
        .expect("a next run starts");
    assert!(
        !Path::new(&run_dir).exists(),
        "the dead run's directory was swept"
    );
    drop(eco);
}

/// Runs `tekup-harness down` for a state file when dropped.
struct Down(std::path::PathBuf);

impl Down {
    fn run(&self) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_tekup-harness"))
            .arg("down")
            .arg("--state-file")
            .arg(&self.0)
            .output()
            .expect("down runs")
    }
}

impl Drop for Down {
    fn drop(&mut self) {
        if self.0.exists() {
            let _ = self.run();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_leaves_the_ecosystem_up_until_down() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state_file = dir.path().join("state.json");
    let down = Down(state_file.clone());
    let up = Command::new(env!("CARGO_BIN_EXE_tekup-harness"))
        .args(["up", "--runtime", "process", "--keep", "--file"])
        .arg(ecosystem_file())
        .arg("--state-file")
        .arg(&state_file)
        .arg("--logs-dir")
        .arg(dir.path().join("logs"))
        .output()
        .expect("up runs");
    assert!(up.status.success(), "{up:?}");
    let stdout = String::from_utf8_lossy(&up.stdout);
    assert!(
        stdout.contains("kept running: stop it with `tekup-harness down`"),
        "{stdout}"
    );
    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(&state_file).expect("state")).expect("JSON");
    let pids = recorded_pids(&state);
    let flow = stdout
        .lines()
        .find(|l| l.starts_with("flow-api"))
        .and_then(|l| l.split_whitespace().nth(1))
        .expect("flow-api URL printed")
        .to_owned();
    let health = reqwest::get(format!("{flow}/health"))
        .await
        .expect("kept up");
    assert!(health.status().is_success());

    let out = down.run();
    assert!(out.status.success(), "{out:?}");
    // Every recorded process runs; the finished migration job is not one.
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!("stopped {} processes", pids.len())),
        "{out:?}\n{state:#}"
    );
    assert!(
        eventually(Duration::from_secs(10), || leftovers(&pids).is_empty()).await,
        "{:?}",
        leftovers(&pids)
    );
    let run_dir = state["backend"]["run-dir"].as_str().expect("run dir");
    assert!(
        !Path::new(run_dir).exists(),
        "down removed the run directory"
    );
    assert!(!state_file.exists(), "down removed the state file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_tears_the_ecosystem_down() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut harness, state) = up("process", dir.path());
    let pids = recorded_pids(&state);
    signal(&harness.0, libc::SIGINT);
    let status = harness.0.wait().expect("exits");
    assert!(status.success(), "{status}");
    assert!(leftovers(&pids).is_empty(), "{:?}", leftovers(&pids));
    assert!(
        !dir.path().join("state.json").exists(),
        "state file removed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_the_harness_leaves_no_container_or_network() {
    crate::docker::require_docker_images().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut harness, state) = up("docker", dir.path());
    let run = state["run-id"].as_str().expect("run id").to_owned();
    let (containers, networks) = docker::run_resources(&run).await.expect("docker");
    assert!(containers >= 9 && networks == 1, "{containers} {networks}");

    signal(&harness.0, libc::SIGKILL);
    let _ = harness.0.wait();
    let mut last = (containers, networks);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while std::time::Instant::now() < deadline {
        last = docker::run_resources(&run).await.expect("docker");
        if last == (0, 0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(last, (0, 0), "containers and networks left after SIGKILL");
}
