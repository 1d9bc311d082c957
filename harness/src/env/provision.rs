//! What the harness needs from the machine, installed when it is missing.
//!
//! A fresh Debian or Ubuntu machine has Rust and little else. When a
//! program the process runtime or the tests need (`redis-server`,
//! PostgreSQL's `initdb`, `mmdebstrap` for the offline images) is missing
//! and the harness runs as root, it installs the system's package with
//! `apt-get`, saying so with the exact command first. Not as root, with
//! `TEKUP_NO_INSTALL` set or after [`refuse_installs`] (the command line's
//! `--no-install`), it installs nothing and the error names the command to
//! run. One install at a time on the machine (a lock file), so
//! parallel test binaries do not race `apt-get`.
//!
//! The Debian packages of Redis and Prometheus start a system server (on
//! ports 6379 and 9090); the harness stops it again (it starts its own on
//! free ports).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};

use super::error::EnvError;
use super::process::which;

/// Set (to anything but `0`, `false`, `no`, `off` or nothing) to refuse
/// installing anything.
pub const NO_INSTALL: &str = "TEKUP_NO_INSTALL";

static REFUSED: AtomicBool = AtomicBool::new(false);

/// Refuses every install in this process from now on (`--no-install`).
pub fn refuse_installs() {
    REFUSED.store(true, Ordering::Relaxed);
}

/// Whether installs are refused: [`refuse_installs`] was called or
/// `TEKUP_NO_INSTALL` is set to a true value.
pub fn installs_refused() -> bool {
    REFUSED.load(Ordering::Relaxed)
        || std::env::var(NO_INSTALL).is_ok_and(|v| {
            !matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "" | "0" | "false" | "no" | "off" | "n" | "f"
            )
        })
}

/// Whether this process runs as root (and so may run `apt-get`).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    #[expect(unsafe_code, reason = "geteuid(2), to know whether apt-get may run")]
    let uid = unsafe { libc::geteuid() };
    uid == 0
}

/// A program and the Debian package that brings it.
#[derive(Debug, Clone, Copy)]
pub struct Need {
    pub program: &'static str,
    pub package: &'static str,
    /// What the harness needs it for, for the messages.
    pub purpose: &'static str,
}

pub const REDIS: Need = Need {
    program: "redis-server",
    package: "redis-server",
    purpose: "the process runtime's Redis",
};
pub const POSTGRES: Need = Need {
    program: "initdb",
    package: "postgresql",
    purpose: "the process runtime's PostgreSQL",
};
/// `promtool`, which checks and unit-tests the platform's alert rules;
/// Debian's `prometheus` package brings it beside the server.
pub const PROMTOOL: Need = Need {
    program: "promtool",
    package: "prometheus",
    purpose: "checking and testing the platform's alert rules",
};
pub const PROMETHEUS: Need = Need {
    program: "prometheus",
    package: "prometheus",
    purpose: "the process runtime's Prometheus (`kind = \"prometheus\"`)",
};
pub const MMDEBSTRAP: Need = Need {
    program: "mmdebstrap",
    package: "mmdebstrap",
    purpose: "building the docker runtime's offline images",
};

/// The command that installs `need`, as a person would type it.
pub fn install_command(need: &Need) -> String {
    format!(
        "apt-get update && apt-get install -y --no-install-recommends {}",
        need.package
    )
}

/// Makes sure `found()` finds the program of `need`, installing its package
/// when allowed (see the module docs). Returns what `found` returns.
pub fn ensure<T>(need: &Need, found: impl Fn() -> Option<T>) -> Result<T, EnvError> {
    if let Some(it) = found() {
        return Ok(it);
    }
    let refuse = |why: String| EnvError::Install {
        package: need.package.to_owned(),
        purpose: need.purpose.to_owned(),
        why,
    };
    if installs_refused() {
        return Err(refuse(format!(
            "installing was refused (--no-install or {NO_INSTALL}), so nothing is installed; run `{}` (as root)",
            install_command(need)
        )));
    }
    if !is_root() {
        return Err(refuse(format!(
            "not running as root, so nothing is installed; run `sudo {}`",
            install_command(need).replace("&& apt-get", "&& sudo apt-get")
        )));
    }
    if which("apt-get").is_none() {
        return Err(refuse(format!(
            "this machine has no apt-get; install `{}` with its package manager",
            need.program
        )));
    }
    let _lock = lock(&std::env::temp_dir().join("tekup-harness-install.lock"))?;
    if let Some(it) = found() {
        return Ok(it);
    }
    say(&format!(
        "tekup-harness: `{}` is missing ({}); installing it as root: {}",
        need.program,
        need.purpose,
        install_command(need)
    ));
    apt(&["update", "-qq"], need)?;
    apt(
        &[
            "install",
            "-y",
            "-qq",
            "--no-install-recommends",
            need.package,
        ],
        need,
    )?;
    if need.package == REDIS.package || need.package == PROMETHEUS.package {
        stop_system_service(need.package);
    }
    found().ok_or_else(|| {
        refuse(format!(
            "`{}` installed, but `{}` is still not found",
            need.package, need.program
        ))
    })
}

/// Makes sure the docker runtime's images exist, building the offline ones
/// (`tekup-harness images build`, 2 to 5 minutes, from Debian's packages)
/// when some are missing: one build on the machine at a time (a lock
/// file), and a build that another process finished meanwhile is not
/// repeated. Fails with the reason when no docker daemon answers.
pub async fn ensure_offline_images(
    file: &super::EcosystemFile,
    images_dir: &Path,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<(), String> {
    let missing = match super::docker::usable(file).await {
        Ok(_) => return Ok(()),
        Err(why) if why.contains("images are missing") => why,
        Err(why) => return Err(why),
    };
    ensure(&MMDEBSTRAP, || {
        which("mmdebstrap").or_else(|| which("debootstrap"))
    })
    .map_err(|e| e.to_string())?;
    let _lock = lock(&std::env::temp_dir().join("tekup-harness-images.lock"))
        .map_err(|e| super::error_chain(&e))?;
    if super::docker::usable(file).await.is_ok() {
        return Ok(());
    }
    progress(&format!(
        "{missing}: building the offline images now (tekup-harness images build; 2 to 5 minutes)"
    ));
    let options = super::images::ImageBuild::new(images_dir);
    super::images::build(&options, progress)
        .await
        .map_err(|e| super::error_chain(&e))?;
    super::docker::usable(file).await.map(drop)
}

/// Before a start under the process runtime: installs what the file's
/// PostgreSQL, Redis and Prometheus components need when it is missing (see
/// [`ensure`]), before any component starts and off the async workers. An
/// install takes a minute; done while components start, it would block
/// the workers and count against the readiness window of components that
/// started meanwhile.
pub async fn ensure_for_process(file: &super::EcosystemFile) -> Result<(), EnvError> {
    use super::model::Kind;
    let has = |kind: Kind| file.components.values().any(|c| c.kind == kind);
    let (postgres, redis) = (has(Kind::Postgres), has(Kind::Redis));
    let prometheus = has(Kind::Prometheus);
    tokio::task::spawn_blocking(move || {
        if prometheus {
            ensure_program(&PROMETHEUS)?;
        }
        if postgres {
            super::postgres::find_bin_dir()
                .map_err(|e| EnvError::other("set up PostgreSQL", e.to_string()))?;
        }
        if redis {
            ensure_program(&REDIS)?;
        }
        Ok(())
    })
    .await
    .map_err(|e| EnvError::other("set up PostgreSQL and Redis", e))?
}

/// Before a start under docker: builds the offline images (as
/// [`ensure_offline_images`] does) when a component can run from nothing
/// but one of them and it is missing, so that `--runtime docker` works on
/// a machine that never ran `tekup-harness images build`. Images the build
/// does not make are left to the start, which pulls them or says which are
/// missing; so is a machine without a docker daemon.
pub async fn ensure_offline_images_for_start(
    file: &super::EcosystemFile,
    images_dir: &Path,
) -> Result<(), EnvError> {
    let Ok(docker) = super::docker::connect().await else {
        return Ok(());
    };
    let build = super::images::ImageBuild::new(images_dir);
    let made = build.images();
    let mut needed = false;
    for c in file.components.values() {
        let Some(offline) = &c.offline_image else {
            continue;
        };
        if !made.contains(&offline) {
            continue;
        }
        let mut found = false;
        for image in c.images() {
            found |= super::docker::image_exists(&docker, image).await;
        }
        needed |= !found;
    }
    if !needed {
        return Ok(());
    }
    let progress = |line: &str| say(&format!("tekup-harness: {line}"));
    ensure_offline_images(file, images_dir, &progress)
        .await
        .map_err(|why| EnvError::other("prepare the docker runtime's offline images", why))
}

/// Makes sure `need.program` is on PATH; returns its path.
pub fn ensure_program(need: &Need) -> Result<PathBuf, EnvError> {
    ensure(need, || which(need.program))
}

fn apt(args: &[&str], need: &Need) -> Result<(), EnvError> {
    let out = Command::new("apt-get")
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .output()
        .map_err(EnvError::io("run apt-get"))?;
    if out.status.success() {
        return Ok(());
    }
    Err(EnvError::Install {
        package: need.package.to_owned(),
        purpose: need.purpose.to_owned(),
        why: format!(
            "`apt-get {}` failed ({}):\n{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ),
    })
}

/// The Debian package starts a server of its own (`redis-server`,
/// `prometheus`); the harness runs its own.
fn stop_system_service(service: &str) {
    for cmd in [
        &["systemctl", "stop", service][..],
        &["service", service, "stop"][..],
    ] {
        if which(cmd[0]).is_some() {
            let _ = Command::new(cmd[0]).args(&cmd[1..]).output();
        }
    }
}

/// An exclusive lock on `path` (created if missing), held until dropped;
/// waits while another process holds it.
pub fn lock(path: &Path) -> Result<File, EnvError> {
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(EnvError::io(format!(
            "open the lock file {}",
            path.display()
        )))?;
    file.lock()
        .map_err(EnvError::io(format!("lock {}", path.display())))?;
    Ok(file)
}

/// Says it on the process's standard error as it is, past a test
/// harness's output capture (which takes only the print macros): an
/// install is announced before it runs, also inside `cargo test`.
fn say(line: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "{line}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_present_program_is_found_without_installing() {
        let sh = ensure_program(&Need {
            program: "sh",
            package: "dash",
            purpose: "a test",
        })
        .unwrap();
        assert!(sh.ends_with("sh"));
    }

    #[test]
    fn the_error_names_the_command_to_run() {
        std::env::set_var(NO_INSTALL, "1");
        let err = ensure_program(&Need {
            program: "tekup-no-such-program",
            package: "tekup-no-such-package",
            purpose: "a test",
        })
        .unwrap_err()
        .to_string();
        std::env::remove_var(NO_INSTALL);
        assert!(
            err.contains("apt-get install -y --no-install-recommends tekup-no-such-package"),
            "{err}"
        );
        assert!(err.contains("a test"), "{err}");
    }
}
