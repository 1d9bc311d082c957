//! `tekup-harness doctor`: what is installed, which runtimes can work here,
//! and what to install for the others; `doctor --fix` installs it (what a
//! start would install on demand: see [`crate::env::provision`]) and then
//! checks again.

use std::path::{Path, PathBuf};
use std::process::Command;

use clap::Args;

use crate::env::{self, docker, external, images, postgres, provision, EcosystemFile, Kind};

use super::{out, say, Failure};

#[derive(Debug, Args)]
pub(super) struct DoctorArgs {
    /// The ecosystem file.
    #[arg(
        long,
        env = "TEKUP_ECOSYSTEM",
        default_value = "fixtures/ecosystem.toml"
    )]
    file: PathBuf,
    /// Install what is missing first: PostgreSQL and Redis (apt-get, as
    /// root), and when a docker daemon answers, mmdebstrap and the docker
    /// runtime's offline images. Each install is announced with its
    /// command; `--no-install` refuses them.
    #[arg(long)]
    fix: bool,
    /// Directory with the image files (postgres/docker-entrypoint.sh), for `--fix`.
    #[arg(long, default_value = "images")]
    images_dir: PathBuf,
}

/// The checks, after installing what is missing with `--fix`; fails when
/// a fix failed (the checks still print what is there).
pub(super) async fn run(args: &DoctorArgs) -> Result<(), Failure> {
    let failed = if args.fix {
        fix(args).await
    } else {
        Vec::new()
    };
    report(&args.file).await;
    if failed.is_empty() {
        return Ok(());
    }
    Err((
        env::EnvError::other("fix this machine", failed.join("; ")),
        Some("as root, with apt-get and the Debian mirror reachable; without --no-install"),
    ))
}

/// Installs what is missing, saying what it does; returns what failed.
async fn fix(args: &DoctorArgs) -> Vec<String> {
    let mut failed = Vec::new();
    let mut step = |what: &str, result: Result<String, String>| match result {
        Ok(done) => say(&format!("fix: {what}: {done}")),
        Err(why) => {
            say(&format!("fix: {what}: FAILED: {why}"));
            failed.push(format!("{what}: {why}"));
        }
    };
    step(
        "PostgreSQL",
        provision::ensure(&provision::POSTGRES, || postgres::locate_bin_dir().ok())
            .map(|dir| format!("in {}", dir.display()))
            .map_err(|e| env::error_chain(&e)),
    );
    step(
        "redis-server",
        provision::ensure_program(&provision::REDIS)
            .map(|p| p.display().to_string())
            .map_err(|e| env::error_chain(&e)),
    );
    if docker::connect().await.is_err() {
        step(
            "docker runtime",
            Ok("no docker daemon answers; nothing to set up for it".into()),
        );
        return failed;
    }
    // The optional components run under the process runtime only.
    let model = EcosystemFile::load(&args.file)
        .map(|mut model| {
            model.without_optional();
            model
        })
        .map_err(|e| e.to_string());
    let images = match model {
        Ok(model) => {
            let progress = |line: &str| say(&format!("fix: {line}"));
            provision::ensure_offline_images(&model, &args.images_dir, &progress)
                .await
                .map(|()| "every image of the ecosystem file exists".to_owned())
        }
        Err(e) => Err(e),
    };
    step("the docker runtime's images", images);
    failed
}

struct Check {
    ok: bool,
    what: String,
    fix: Option<String>,
}

fn line(check: &Check) {
    let mark = if check.ok { "ok  " } else { "MISSING" };
    out(&format!("  [{mark:<7}] {}", check.what));
    if let (false, Some(fix)) = (check.ok, &check.fix) {
        out(&format!("            fix: {fix}"));
    }
}

fn version_of(program: &Path, arg: &str) -> String {
    Command::new(program)
        .arg(arg)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

async fn report(file: &Path) {
    let model = EcosystemFile::load(file);
    out(&format!("ecosystem file {}:", file.display()));
    match &model {
        Ok(m) => out(&format!("  [ok     ] {} components", m.components.len())),
        Err(e) => out(&format!("  [INVALID] {e}")),
    }

    out("process runtime:");
    let pg = match postgres::locate_bin_dir() {
        Ok(bin) => Check {
            ok: true,
            what: format!(
                "PostgreSQL: {}",
                version_of(&bin.join("postgres"), "--version")
            ),
            fix: None,
        },
        Err(e) => Check {
            ok: false,
            what: format!("PostgreSQL server binaries: {e}"),
            fix: Some(format!(
                "{} (or set PG_BIN), or `tekup-harness doctor --fix`",
                provision::install_command(&provision::POSTGRES)
            )),
        },
    };
    line(&pg);
    let root_ok = postgres::run_as().is_ok();
    line(&Check {
        ok: root_ok,
        what: "a user to run PostgreSQL as (when root: `postgres`)".into(),
        fix: Some("useradd -r postgres (the Debian package creates it)".into()),
    });
    let redis = env::process::which("redis-server");
    line(&Check {
        ok: redis.is_some(),
        what: match &redis {
            Some(p) => format!("redis-server: {}", version_of(p, "--version")),
            None => "redis-server".into(),
        },
        fix: Some(format!(
            "{} (stop the system service it starts), or `tekup-harness doctor --fix`",
            provision::install_command(&provision::REDIS)
        )),
    });
    let mut programs_ok = true;
    if let Ok(m) = &model {
        let mut seen = std::collections::BTreeSet::new();
        for c in m.components.values() {
            let Some(program) = &c.program else { continue };
            if !seen.insert(program.clone()) {
                continue;
            }
            let found = env::binaries_resolve(c, &m.base_dir);
            programs_ok &= found.is_ok() || c.cargo_package.is_some();
            line(&Check {
                ok: found.is_ok(),
                what: match &found {
                    Ok(p) => format!("{program}: {}", p.display()),
                    Err(_) => format!("{program}: not built yet"),
                },
                fix: Some(match &c.cargo_package {
                    Some(p) => {
                        format!("cargo build -p {p} (or let the harness build it on first start)")
                    }
                    None => "install it, or set TEKUP_BIN_DIR".into(),
                }),
            });
        }
    }
    let process_ok = pg.ok && root_ok && redis.is_some() && programs_ok;

    out("docker runtime:");
    let daemon = docker::connect().await;
    line(&Check {
        ok: daemon.is_ok(),
        what: match &daemon {
            Ok(d) => {
                let v = d.client_version();
                format!(
                    "docker daemon at {} (API {}.{})",
                    std::env::var("DOCKER_HOST")
                        .unwrap_or_else(|_| "unix:///var/run/docker.sock".into()),
                    v.major_version,
                    v.minor_version
                )
            }
            Err(e) => format!("docker daemon: {}", env::error_chain(e)),
        },
        fix: Some("install docker.io and start dockerd, or set DOCKER_HOST".into()),
    });
    let builder = ["mmdebstrap", "debootstrap"]
        .into_iter()
        .find(|t| env::process::which(t).is_some());
    line(&Check {
        ok: builder.is_some(),
        what: format!(
            "offline image builder: {}",
            builder.unwrap_or("mmdebstrap or debootstrap")
        ),
        fix: Some(format!(
            "{}, or `tekup-harness doctor --fix`",
            provision::install_command(&provision::MMDEBSTRAP)
        )),
    });
    let usable = match (&model, &daemon) {
        (Ok(m), Ok(_)) => docker::usable(m).await,
        _ => Err("needs a valid ecosystem file and a daemon".into()),
    };
    if daemon.is_ok() {
        if let Ok(present) = images::present(&images::ImageBuild::new("images")).await {
            for (image, here) in present {
                line(&Check {
                    ok: here,
                    what: format!("image {image}"),
                    fix: Some("tekup-harness images build (or doctor --fix)".into()),
                });
            }
        }
    }

    out("external runtime:");
    let mut missing = Vec::new();
    if let Ok(m) = &model {
        for c in m.components.values().filter(|c| c.kind != Kind::Job) {
            if std::env::var_os(external::env_var(&c.name)).is_none() {
                missing.push(external::env_var(&c.name));
            }
        }
    }
    let external_file = std::env::var_os("TEKUP_EXTERNAL_FILE").is_some();
    line(&Check {
        ok: missing.is_empty() || external_file,
        what: if external_file {
            "TEKUP_EXTERNAL_FILE is set".into()
        } else {
            format!("URLs of a deployment ({} not set)", missing.len())
        },
        fix: Some(format!(
            "set {} or pass --external FILE",
            missing.first().cloned().unwrap_or_default()
        )),
    });

    out("verdict:");
    out(&format!(
        "  process:  {}",
        if process_ok {
            "can run here"
        } else {
            "cannot run here (see MISSING above)"
        }
    ));
    out(&format!(
        "  docker:   {}",
        match &usable {
            Ok(why) => format!("can run here: {why}"),
            Err(why) => format!("cannot run here: {why}"),
        }
    ));
    out(&format!(
        "  external: {}",
        if missing.is_empty() || external_file {
            "configured"
        } else {
            "not configured (needs a deployment's URLs)"
        }
    ));
    out(&format!(
        "  auto picks: {}",
        if usable.is_ok() { "docker" } else { "process" }
    ));
}
