//! The programs the docker runtime copies into its images: release-built
//! and stripped.
//!
//! A debug build of a service is about 200 MB, and a program image made
//! from it (see [`super::bin_image`]) about 530 MB; a team that runs the
//! ecosystem in containers wants the build it ships. So under docker a
//! component whose `cargo-package` is a package of this workspace runs
//! `cargo build --release` of that package (the workspace's release
//! profile strips symbols), all such programs of the ecosystem file in one
//! cargo invocation (separate invocations resolve features differently and
//! rebuild dependencies), once per process. A program found in
//! `$TEKUP_BIN_DIR` is used as it is (an explicit choice wins), and so is
//! a program no package of the workspace builds.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::super::binaries;
use super::super::error::EnvError;
use super::super::model::{Component, EcosystemFile};

/// Release builds done by this process: (workspace, program) → executable.
static BUILT: Mutex<Option<HashMap<(PathBuf, String), PathBuf>>> = Mutex::new(None);

/// The program to copy into `component`'s image: from `$TEKUP_BIN_DIR`
/// when it is there, else the workspace's release build (made now, with
/// the file's other cargo programs, when this process has not made it),
/// else what the process runtime would run.
pub(crate) fn image_program(
    component: &Component,
    file: &EcosystemFile,
) -> Result<PathBuf, EnvError> {
    let program = component.program.as_deref().unwrap_or_default();
    if let Some(dir) = std::env::var_os("TEKUP_BIN_DIR") {
        let pinned = Path::new(&dir).join(program);
        if pinned.is_file() && !program.contains('/') {
            return Ok(pinned);
        }
    }
    let workspace = binaries::workspace_root(&file.base_dir);
    let (Some(_), Some(ws)) = (&component.cargo_package, workspace) else {
        return binaries::resolve(component, &file.base_dir, true);
    };
    let key = (ws.clone(), program.to_owned());
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    let built = built.get_or_insert_with(HashMap::new);
    if let Some(path) = built.get(&key) {
        return Ok(path.clone());
    }
    let wanted: Vec<&Component> = file
        .components
        .values()
        .filter(|c| {
            c.cargo_package.is_some() && c.program.as_deref().is_some_and(|p| !p.contains('/'))
        })
        .filter(|c| !built.contains_key(&(ws.clone(), c.program.clone().unwrap_or_default())))
        .collect();
    for (name, path) in build(&ws, &wanted, &component.name)? {
        built.insert((ws.clone(), name), path);
    }
    built.get(&key).cloned().ok_or_else(|| EnvError::Start {
        component: component.name.clone(),
        message: format!(
            "`cargo build --release` of `{}` made no executable named `{program}`; \
             fix `program` or `cargo-package` in the ecosystem file",
            component.cargo_package.as_deref().unwrap_or_default()
        ),
    })
}

/// The cargo command that builds `components`' programs in release.
pub(crate) fn build_args(components: &[&Component]) -> Vec<String> {
    let mut packages = BTreeSet::new();
    let mut bins = BTreeSet::new();
    let mut features = BTreeSet::new();
    for c in components {
        let package = c.cargo_package.clone().unwrap_or_default();
        bins.insert(c.program.clone().unwrap_or_default());
        for f in &c.cargo_features {
            features.insert(format!("{package}/{f}"));
        }
        packages.insert(package);
    }
    let mut args = vec!["build".to_owned(), "--release".to_owned()];
    for p in packages {
        args.extend(["-p".to_owned(), p]);
    }
    for b in bins {
        args.extend(["--bin".to_owned(), b]);
    }
    if !features.is_empty() {
        let list: Vec<String> = features.into_iter().collect();
        args.extend(["--features".to_owned(), list.join(",")]);
    }
    args
}

/// Runs the release build; returns each executable it made by name.
fn build(
    workspace: &Path,
    components: &[&Component],
    asking: &str,
) -> Result<Vec<(String, PathBuf)>, EnvError> {
    let args = build_args(components);
    let mut cargo = binaries::cargo_command();
    let program = Path::new(cargo.get_program()).display().to_string();
    announce(&format!(
        "tekup-harness: the docker runtime's programs are release builds: cargo {} \
         (a first build takes minutes, later ones reuse it)",
        args.join(" ")
    ));
    let out = cargo
        .current_dir(workspace)
        .args(&args)
        .args(["--quiet", "--message-format=json-render-diagnostics"])
        .output()
        .map_err(EnvError::io(format!("run `{program} {}`", args.join(" "))))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(30).collect();
        return Err(EnvError::Start {
            component: asking.to_owned(),
            message: format!(
                "`cargo {}` failed ({}):\n{}",
                args.join(" "),
                out.status,
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            ),
        });
    }
    Ok(executables(&String::from_utf8_lossy(&out.stdout)))
}

/// The executables of cargo's `compiler-artifact` messages.
fn executables(messages: &str) -> Vec<(String, PathBuf)> {
    messages
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact")
        .filter_map(|m| {
            let exe = PathBuf::from(m["executable"].as_str()?);
            let name = exe.file_name()?.to_string_lossy().into_owned();
            Some((name, exe))
        })
        .collect()
}

/// Straight to standard error, past a test harness's capture.
fn announce(line: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "{line}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn executables_are_read_from_cargo_messages() {
        let messages = r#"{"reason":"compiler-artifact","executable":null,"target":{"name":"serde"}}
{"reason":"compiler-artifact","executable":"/t/release/tekup-mocks"}
not json
{"reason":"build-finished","success":true}"#;
        assert_eq!(
            executables(messages),
            vec![(
                "tekup-mocks".to_owned(),
                PathBuf::from("/t/release/tekup-mocks")
            )]
        );
    }

    #[test]
    fn one_cargo_invocation_builds_every_program_with_its_features() {
        let file = EcosystemFile::parse(
            Path::new("/w/fixtures/ecosystem.toml"),
            "[component.a]\nprogram = \"m\"\ncargo-package = \"pm\"\nport = 1\nready = { tcp = true }\n\
             [component.b]\nprogram = \"m\"\ncargo-package = \"pm\"\nport = 1\nready = { tcp = true }\n\
             [component.c]\nprogram = \"s\"\ncargo-package = \"ps\"\ncargo-features = [\"defects\"]\nport = 1\nready = { tcp = true }\n",
        )
        .expect("a valid file");
        let all: Vec<&Component> = file.components.values().collect();
        assert_eq!(
            build_args(&all).join(" "),
            "build --release -p pm -p ps --bin m --bin s --features ps/defects"
        );
    }
}
