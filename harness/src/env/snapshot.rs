//! A job replayed from a snapshot of the Postgres it changes.
//!
//! The reference ecosystem's `migrate` job (schema, roles, row-level
//! security, the seed tenants) took about a third of a warm start, and its
//! result is the same every time its inputs are. A job that says
//! `snapshot = "postgres"` in the ecosystem file promises that it changes
//! nothing but that Postgres, and that its result depends only on its
//! inputs. Once the job has run, the runtime keeps that Postgres's data
//! (stopped cleanly, so it starts without recovery) under a key made of
//! those inputs ([`key`]); a later start with the same key starts the
//! Postgres from what was kept and does not run the job.
//!
//! - The process runtime keeps the data directory and copies it instead of
//!   the bare cluster ([`super::process`]).
//! - The docker runtime commits the stopped Postgres container to an image,
//!   `tekup-harness/snapshot:<job>-<key>`, and runs the Postgres from that
//!   image ([`super::docker`]). There the job's program is an image (the
//!   runtime image with the binary copied in), so the key also covers that
//!   image's id and the Postgres image's id: a rebuilt program or a rebuilt
//!   `tekup-harness images build` makes a new key. A Postgres image that
//!   keeps `PGDATA` in a `VOLUME` (the official `postgres` image does; the
//!   offline one does not) would lose the data on commit, so under a
//!   snapshot its `PGDATA` moves out of the volume.
//!
//! A replayed job's result is in its Postgres from the Postgres's first
//! answer, so what waits for the job only to find that result need not
//! wait for the job at all, if it can wait for the Postgres by itself: a
//! component that says so (`waits-itself-for = ["postgres"]`, the shipped
//! services) starts beside the Postgres when the job is replayed
//! ([`super::runtime::Backend::replays`], decided once per start with the
//! Postgres's own start). When the job runs, the Postgres restarts right
//! after it to keep its data, and such a component waits for the job as
//! its `wait-for` says.
//!
//! The key covers what the job's result can depend on: its program (path,
//! size, modification time: a rebuild makes a new key), its arguments and
//! environment as written, the file's `vars` that these or the Postgres's
//! own settings use (`${vars.name}`), the content of every file
//! its arguments and environment name (`${file:...}`), and the Postgres's
//! user, database and password. Ports are not in it: they change on every
//! start and only say where the database is. The model check
//! ([`super::model`]) holds the job to depend on its Postgres alone, and
//! everything else that uses the Postgres to wait for the job.
//!
//! Kept clusters live beside the cached bare cluster
//! (`$TMPDIR/tekup-harness-cache/`, or `TEKUP_CACHE_DIR`), named
//! `<cluster>+<job>-<key>`; making a new one removes those of the same
//! cluster and job beyond the newest [`KEEP`] (once they are an hour old,
//! so a start copying one meanwhile is left alone). Snapshot images are
//! pruned the same way, by job.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use sha2::{Digest as _, Sha256};

use super::error::EnvError;
use super::model::{Component, EcosystemFile};
use super::refs::Ref;

/// How many kept clusters of one cluster and job survive a new one.
pub(crate) const KEEP: usize = 3;

/// A job kept as a snapshot of its Postgres: on both the job's and the
/// Postgres's launch spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotOf {
    /// The job's component name.
    pub job: String,
    /// The Postgres component's name.
    pub postgres: String,
    /// The key of the job's inputs ([`key`]).
    pub key: String,
    /// Under docker, the job's images (`image`, then `offline-image`) and
    /// the program copied into it: the runtime extends [`SnapshotOf::key`]
    /// with the id of the image the job would run.
    pub job_image: Option<JobImage>,
}

/// What a docker job runs: its candidate images and its program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobImage {
    /// `image`, then `offline-image`, as the ecosystem file gives them.
    pub images: Vec<String>,
    /// The program copied into the image.
    pub program: PathBuf,
}

/// The log of a job replayed from `from` (`the snapshot <where>`) instead
/// of run, under either runtime.
pub(crate) fn replay_note(of: &SnapshotOf, from: &str) -> String {
    format!(
        "not run: replayed from {from} (`{}` ran before with the same inputs; `snapshot = \"{}\"` in the ecosystem file)\n",
        of.job, of.postgres
    )
}

/// [`SnapshotOf::key`] extended with what a runtime knows only once it
/// runs (image ids): hex, 16 characters.
pub(crate) fn extend_key(key: &str, parts: &[(&str, &str)]) -> String {
    let mut hash = Sha256::new();
    for (label, value) in std::iter::once(&("key", key)).chain(parts) {
        for bytes in [label.as_bytes(), value.as_bytes()] {
            hash.update((bytes.len() as u64).to_le_bytes());
            hash.update(bytes);
        }
    }
    hex::encode(&hash.finalize()[..8])
}

/// The key of a snapshot job's inputs: hex, 16 characters. `program` is
/// the job's resolved program on this machine.
pub(crate) fn key(
    file: &EcosystemFile,
    job: &Component,
    postgres: &Component,
    program: &Path,
) -> Result<String, EnvError> {
    let mut hash = Sha256::new();
    let mut put = |label: &str, value: &[u8]| {
        hash.update(label.as_bytes());
        hash.update((value.len() as u64).to_le_bytes());
        hash.update(value);
    };
    put("snapshot", b"1");
    let meta = fs::metadata(program).map_err(EnvError::io(format!(
        "read the program of `{}` ({})",
        job.name,
        program.display()
    )))?;
    let modified = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .unwrap_or_default();
    let canonical = program
        .canonicalize()
        .unwrap_or_else(|_| program.to_path_buf());
    put("program", canonical.as_os_str().as_encoded_bytes());
    put("size", &meta.len().to_le_bytes());
    put("modified", &modified.as_nanos().to_le_bytes());
    let templates = job
        .args
        .iter()
        .map(|t| ("arg", "", t))
        .chain(job.env.iter().map(|(name, t)| ("env", name.as_str(), t)));
    for (what, name, template) in templates {
        put(what, name.as_bytes());
        put("text", template.text.as_bytes());
        for r in &template.refs {
            if let Ref::File(rel) = r {
                let path = file.base_dir.join(rel);
                let content = fs::read(&path).map_err(EnvError::io(format!(
                    "read {} (named by `{}`) to key its snapshot",
                    path.display(),
                    job.name
                )))?;
                put("file", &Sha256::digest(&content));
            }
        }
    }
    // The vars the job or its Postgres use, and no others: another
    // deployment parameter (a scenario's `own-ecosystem` sets the worker's)
    // leaves what the job makes as it was.
    let used: std::collections::BTreeSet<&str> = [job, postgres]
        .into_iter()
        .flat_map(|c| c.args.iter().chain(c.env.values()).chain(&c.password))
        .flat_map(|t| &t.refs)
        .filter_map(|r| match r {
            Ref::Var(name) => Some(name.as_str()),
            _ => None,
        })
        .collect();
    for (name, value) in file.vars.iter().filter(|(n, _)| used.contains(n.as_str())) {
        put("var", name.as_bytes());
        put("value", value.as_bytes());
    }
    put("user", postgres.user.as_bytes());
    put("database", postgres.database.as_bytes());
    put(
        "password",
        postgres
            .password
            .as_ref()
            .map_or(&b""[..], |t| t.text.as_bytes()),
    );
    Ok(hex::encode(&hash.finalize()[..8]))
}

/// Where the snapshot of `of` made from `cluster` (a cached bare cluster)
/// is kept.
pub(crate) fn path(cluster: &Path, of: &SnapshotOf) -> PathBuf {
    let name = cluster.file_name().unwrap_or_default().to_string_lossy();
    cluster.with_file_name(format!("{name}+{}-{}", of.job, of.key))
}

/// Whether a kept cluster is complete (it is moved into place whole).
pub(crate) fn exists(path: &Path) -> bool {
    path.join("PG_VERSION").is_file()
}

/// Removes the kept clusters of the same cluster and job as `kept` beyond
/// the newest [`KEEP`], once they are an hour old. Best effort: a failure
/// leaves the directory for the next time.
pub(crate) fn prune(kept: &Path) {
    let Some(name) = kept.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return;
    };
    // `<cluster>+<job>-` is the prefix of every key of this job.
    let Some(cut) = name.rfind('-') else {
        return;
    };
    let prefix = &name[..=cut];
    let Some(dir) = kept.parent() else {
        return;
    };
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let mut found: Vec<(SystemTime, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    found.sort_by_key(|(modified, _)| std::cmp::Reverse(*modified));
    let hour_ago = SystemTime::now() - Duration::from_secs(3600);
    for (modified, path) in found.into_iter().skip(KEEP) {
        if modified < hour_ago && path != kept {
            let _ = fs::remove_dir_all(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(dir: &Path, seed: &str, vars: &str) -> EcosystemFile {
        fs::write(dir.join("seed.yaml"), seed).unwrap();
        let text = format!(
            r#"
[vars]
{vars}

[component.postgres]
kind = "postgres"
user = "admin"
database = "app"

[component.migrate]
kind = "job"
program = "{program}"
args = ["migrate", "--seed", "${{file:seed.yaml}}", "--password", "${{vars.pw}}"]
env = {{ DATABASE_URL = "${{postgres.url}}" }}
snapshot = "postgres"
"#,
            program = dir.join("prog").display()
        );
        let path = dir.join("ecosystem.toml");
        fs::write(&path, &text).unwrap();
        EcosystemFile::parse(&path, &text).unwrap()
    }

    fn key_of(dir: &Path, seed: &str, vars: &str) -> String {
        let f = file(dir, seed, vars);
        key(
            &f,
            &f.components["migrate"],
            &f.components["postgres"],
            &dir.join("prog"),
        )
        .unwrap()
    }

    #[test]
    fn the_key_follows_the_inputs_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("prog"), "one build").unwrap();
        let first = key_of(dir.path(), "tenants: [a]", "pw = \"x\"");
        assert_eq!(first.len(), 16);
        assert_eq!(key_of(dir.path(), "tenants: [a]", "pw = \"x\""), first);
        // A var the job does not use is not one of its inputs.
        assert_eq!(
            key_of(dir.path(), "tenants: [a]", "pw = \"x\"\nspans = \"q=4s\""),
            first
        );
        // A seed file's content, a var it uses, a rebuilt program: each a new key.
        assert_ne!(key_of(dir.path(), "tenants: [a, b]", "pw = \"x\""), first);
        assert_ne!(key_of(dir.path(), "tenants: [a]", "pw = \"y\""), first);
        fs::write(dir.path().join("prog"), "another build, longer").unwrap();
        assert_ne!(key_of(dir.path(), "tenants: [a]", "pw = \"x\""), first);
    }

    #[test]
    fn an_extended_key_follows_every_part() {
        let base = extend_key(
            "k",
            &[("job-image", "sha256:a"), ("postgres-image", "sha256:b")],
        );
        assert_eq!(base.len(), 16);
        assert_eq!(
            extend_key(
                "k",
                &[("job-image", "sha256:a"), ("postgres-image", "sha256:b")]
            ),
            base
        );
        assert_ne!(
            extend_key(
                "k",
                &[("job-image", "sha256:c"), ("postgres-image", "sha256:b")]
            ),
            base
        );
        assert_ne!(
            extend_key(
                "j",
                &[("job-image", "sha256:a"), ("postgres-image", "sha256:b")]
            ),
            base
        );
        assert_ne!(
            extend_key(
                "k",
                &[("job-image", "sha256:ab"), ("postgres-image", "sha256:")]
            ),
            base
        );
    }

    #[test]
    fn a_missing_program_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let f = file(dir.path(), "tenants: []", "pw = \"x\"");
        let err = key(
            &f,
            &f.components["migrate"],
            &f.components["postgres"],
            &dir.path().join("prog"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("program of `migrate`"), "{err}");
    }

    #[test]
    fn pruning_keeps_the_newest_and_anything_young() {
        let dir = tempfile::tempdir().unwrap();
        let cluster = dir.path().join("cluster-15");
        let of = |key: &str| SnapshotOf {
            job: "migrate".into(),
            postgres: "postgres".into(),
            key: key.into(),
            job_image: None,
        };
        let old = SystemTime::now() - Duration::from_secs(7200);
        let mut made = Vec::new();
        for (i, key) in ["aa", "bb", "cc", "dd", "ee"].iter().enumerate() {
            let p = path(&cluster, &of(key));
            fs::create_dir(&p).unwrap();
            let when = old + Duration::from_secs(i as u64);
            fs::File::open(&p).unwrap().set_modified(when).unwrap();
            made.push(p);
        }
        // Another job's snapshot of the same cluster is not this job's.
        let other = cluster.with_file_name("cluster-15+seed-ff");
        fs::create_dir(&other).unwrap();
        fs::File::open(&other).unwrap().set_modified(old).unwrap();
        prune(&made[4]);
        let left: Vec<bool> = made.iter().map(|p| p.exists()).collect();
        assert_eq!(left, [false, false, true, true, true]);
        assert!(other.exists());
    }
}
