//! The state of a kept environment (`up --keep`), and `down`.
//!
//! `up --keep` writes what it started to a JSON state file
//! (`reports/.tekup-env.json` by default); `down` reads it and stops the
//! recorded processes (checking their start time, so a reused pid is never
//! signalled) or removes the run's containers and network. `down --all`
//! also removes every container and network labelled by the harness.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::docker;
use super::error::EnvError;
use super::process::process_start_time;
use super::spawn::signal_group;

/// Writes `state` to `path`.
pub fn write(path: &Path, state: &Value) -> Result<(), EnvError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(EnvError::io(format!("create {}", dir.display())))?;
    }
    let text = serde_json::to_string_pretty(state).unwrap_or_default();
    std::fs::write(path, text).map_err(EnvError::io(format!("write {}", path.display())))
}

/// What `down` did.
#[derive(Debug, Default)]
pub struct DownReport {
    pub processes: usize,
    pub containers: usize,
    pub networks: usize,
}

/// Stops the environment recorded in `path` (if any); with `all`, also
/// every container and network of any harness run.
pub async fn down(path: &Path, all: bool) -> Result<DownReport, EnvError> {
    let mut report = DownReport::default();
    if let Ok(text) = std::fs::read_to_string(path) {
        let state: Value = serde_json::from_str(&text)
            .map_err(|e| EnvError::other(format!("read {}", path.display()), e))?;
        match state["runtime"].as_str() {
            Some("process") => {
                report.processes = stop_processes(&state["backend"]["processes"]);
                if let Some(dir) = state["backend"]["run-dir"].as_str() {
                    let _ = std::fs::remove_dir_all(dir);
                }
            }
            Some("docker") => {
                if let Some(run) = state["run-id"].as_str() {
                    let docker = docker::connect().await?;
                    let (c, n) = docker::remove_runs(&docker, Some(run)).await?;
                    report.containers += c;
                    report.networks += n;
                }
            }
            _ => {}
        }
        std::fs::remove_file(path).map_err(EnvError::io(format!("remove {}", path.display())))?;
    }
    if all {
        if let Ok(docker) = docker::connect().await {
            let (c, n) = docker::remove_runs(&docker, None).await?;
            report.containers += c;
            report.networks += n;
        }
    }
    Ok(report)
}

fn stop_processes(list: &Value) -> usize {
    let mut stopped = Vec::new();
    for p in list.as_array().into_iter().flatten() {
        let (Some(pid), start) = (p["pid"].as_u64(), p["start-time"].as_u64()) else {
            continue;
        };
        let Ok(pid) = u32::try_from(pid) else {
            continue;
        };
        if process_start_time(pid).is_none() || process_start_time(pid) != start {
            continue; // gone, or the pid now belongs to another process
        }
        let signal = p["stop-signal"]
            .as_i64()
            .and_then(|s| i32::try_from(s).ok())
            .unwrap_or(libc::SIGKILL);
        let _ = signal_group(pid, libc::SIGCONT);
        let _ = signal_group(pid, signal);
        stopped.push(pid);
    }
    // These are not our children: wait for them to vanish, then make sure.
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && stopped.iter().any(|p| process_start_time(*p).is_some()) {
        std::thread::sleep(Duration::from_millis(20));
    }
    for pid in &stopped {
        let _ = signal_group(*pid, libc::SIGKILL);
    }
    stopped.len()
}
