//! Finding the programs the ecosystem file names.
//!
//! A bare name is looked up, in order, in `$TEKUP_BIN_DIR`, next to the
//! running executable (and one level up, for test binaries in
//! `target/<profile>/deps`), in `$CARGO_TARGET_DIR/<profile>`, in the
//! workspace's `target/<profile>`, and on `PATH`. When it is missing and the
//! component names a `cargo-package` of this workspace, it is built once with
//! `cargo build -p <package> --bin <program>` (with `--features` when the
//! component names `cargo-features`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use super::error::EnvError;
use super::model::Component;

static BUILD_LOCK: Mutex<()> = Mutex::new(());

/// `cargo` (`$CARGO`, else from `PATH`) as the build that made this
/// executable ran it: without the variables cargo sets for a crate it runs
/// (`CARGO_MANIFEST_DIR`, `CARGO_MANIFEST_PATH`, `CARGO_PKG_*`, …), which
/// a test, or `tekup-harness` under `cargo run`, inherits.
///
/// Cargo compares them with what some build scripts watched: ring's
/// (`rerun-if-env-changed=CARGO_MANIFEST_DIR`, `CARGO_PKG_NAME`, …) then
/// runs again, and ring, rustls, reqwest, the harness, the services and
/// everything else that links them are compiled again, in place: once by
/// the build started here and once more by the next `cargo` the user runs.
/// Without them, a build of what the running build already made is nothing
/// to do.
pub fn cargo_command() -> Command {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    for (name, _) in std::env::vars_os() {
        let Some(name) = name.to_str() else { continue };
        if name.starts_with("CARGO_PKG_")
            || name.starts_with("CARGO_MANIFEST_")
            || matches!(
                name,
                "CARGO_CRATE_NAME"
                    | "CARGO_BIN_NAME"
                    | "CARGO_PRIMARY_PACKAGE"
                    | "CARGO_TARGET_TMPDIR"
                    | "OUT_DIR"
            )
        {
            command.env_remove(name);
        }
    }
    command
}

/// The directories searched for a bare program name.
pub(crate) fn search_dirs(workspace: Option<&Path>) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(dir) = std::env::var_os("TEKUP_BIN_DIR") {
        dirs.push(PathBuf::from(dir));
    }
    if let Ok(exe) = std::env::current_exe() {
        if let Some(dir) = exe.parent() {
            dirs.push(dir.to_path_buf());
            if dir.ends_with("deps") {
                if let Some(up) = dir.parent() {
                    dirs.push(up.to_path_buf());
                }
            }
        }
    }
    let profiles = ["debug", "release"];
    if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
        dirs.extend(profiles.iter().map(|p| PathBuf::from(&target).join(p)));
    }
    if let Some(ws) = workspace {
        dirs.extend(profiles.iter().map(|p| ws.join("target").join(p)));
    }
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    dirs
}

/// Finds the workspace root above `start` (the directory whose Cargo.toml has `[workspace]`).
pub(crate) fn workspace_root(start: &Path) -> Option<PathBuf> {
    let start = start.canonicalize().ok()?;
    start
        .ancestors()
        .find(|dir| {
            std::fs::read_to_string(dir.join("Cargo.toml"))
                .is_ok_and(|text| text.contains("[workspace]"))
        })
        .map(Path::to_path_buf)
}

fn find(program: &str, dirs: &[PathBuf]) -> Option<PathBuf> {
    dirs.iter().map(|d| d.join(program)).find(|p| p.is_file())
}

/// Resolves the program of `component`, building it with cargo when allowed.
pub(crate) fn resolve(
    component: &Component,
    base_dir: &Path,
    build: bool,
) -> Result<PathBuf, EnvError> {
    let program = component.program.as_deref().unwrap_or_default();
    if program.contains('/') {
        let path = base_dir.join(program);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(EnvError::ProgramNotFound {
                component: component.name.clone(),
                program: program.to_owned(),
                searched: path.display().to_string(),
                hint: "fix `program` in the ecosystem file".into(),
            })
        };
    }
    let workspace = workspace_root(base_dir);
    let dirs = search_dirs(workspace.as_deref());
    if let Some(found) = find(program, &dirs) {
        return Ok(found);
    }
    let searched = dirs
        .iter()
        .take(8)
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let (Some(package), Some(ws), true) = (&component.cargo_package, &workspace, build) else {
        return Err(EnvError::ProgramNotFound {
            component: component.name.clone(),
            program: program.to_owned(),
            searched,
            hint: match &component.cargo_package {
                Some(p) => format!("build it with `cargo build -p {p}`"),
                None => "install it or set TEKUP_BIN_DIR".into(),
            },
        });
    };
    let _guard = BUILD_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(found) = find(program, &dirs) {
        return Ok(found);
    }
    let mut command = cargo_command();
    command
        .current_dir(ws)
        .args(["build", "--quiet", "-p", package, "--bin", program]);
    if !component.cargo_features.is_empty() {
        command.args(["--features", &component.cargo_features.join(",")]);
    }
    let out = command
        .output()
        .map_err(EnvError::io(format!("run `cargo build -p {package}`")))?;
    if !out.status.success() {
        return Err(EnvError::Start {
            component: component.name.clone(),
            message: format!(
                "`cargo build -p {package} --bin {program}` failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            ),
        });
    }
    find(program, &dirs).ok_or_else(|| EnvError::ProgramNotFound {
        component: component.name.clone(),
        program: program.to_owned(),
        searched,
        hint: format!(
            "`cargo build -p {package}` ran but its output is elsewhere; set TEKUP_BIN_DIR"
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cargo_runs_without_what_cargo_set_for_this_test() {
        // `cargo test` set these for this process; `CARGO_TARGET_DIR` and
        // the like are the user's and stay.
        assert!(std::env::var_os("CARGO_MANIFEST_DIR").is_some());
        let command = cargo_command();
        let removed: Vec<&std::ffi::OsStr> = command
            .get_envs()
            .filter(|(_, value)| value.is_none())
            .map(|(name, _)| name)
            .collect();
        for name in ["CARGO_MANIFEST_DIR", "CARGO_PKG_NAME", "CARGO_PKG_VERSION"] {
            assert!(removed.contains(&std::ffi::OsStr::new(name)), "{name}");
        }
        assert!(removed.iter().all(|name| {
            let name = name.to_string_lossy();
            name.starts_with("CARGO_PKG_") || name.starts_with("CARGO_MANIFEST_")
        }));
        assert!(command.get_envs().all(|(_, value)| value.is_none()));
    }
}
