//! The Kubernetes recipe of distributed load (`deploy/k8s/`), checked
//! without a cluster:
//!
//! - every manifest validates against the Kubernetes schema (strict: an
//!   unknown field is an error) with `kubernetes-validate` from PyPI, whose
//!   wheel bundles the schemas of many Kubernetes releases; and the
//!   validator bites: the same manifest with a misspelt field, a wrong type
//!   or a missing required field is refused, naming the problem;
//! - the recipe is what it says: an Indexed Job whose parallelism,
//!   completions and `--shard …/N` agree, each pod writing its reports under
//!   its own index, and every flag it gives `tekup-harness load` exists.
//!
//! The validator runs from `$TEKUP_KUBERNETES_VALIDATE`, else from
//! `<workspace>/.venv-deploy`, created (or brought up to date) on first use
//! by `deploy/tests/setup-venv.sh`, one process at a time. Without Python
//! or PyPI the tests fail and say how to make the venv by hand.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The oldest Kubernetes release the recipe is for: `backoffLimitPerIndex`
/// and `maxFailedIndexes` are generally available from 1.33.
const KUBERNETES_VERSION: &str = "1.33.0";

const SETUP_HINT: &str = "create it with `deploy/tests/setup-venv.sh` (or: python3 -m venv \
    .venv-deploy && .venv-deploy/bin/pip install -r deploy/tests/requirements.txt) at the \
    workspace root, or point TEKUP_KUBERNETES_VALIDATE at a kubernetes-validate";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn manifests() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("deploy/k8s"))
        .expect("deploy/k8s")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 2, "the load and merge jobs: {files:?}");
    files
}

fn validator() -> PathBuf {
    if let Some(path) = std::env::var_os("TEKUP_KUBERNETES_VALIDATE") {
        return PathBuf::from(path);
    }
    ensure_venv();
    root().join(".venv-deploy/bin/kubernetes-validate")
}

/// Creates or updates `<workspace>/.venv-deploy`, once per process, one
/// process at a time; a no-op when it is up to date.
fn ensure_venv() {
    use std::io::Write as _;
    static DONE: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    let result = DONE.get_or_init(|| {
        let lock = std::fs::File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(root().join(".venv-deploy.lock"))
            .map_err(|e| format!("failed to open .venv-deploy.lock: {e}"))?;
        lock.lock()
            .map_err(|e| format!("failed to lock .venv-deploy.lock: {e}"))?;
        // Past the test harness's capture: the first set-up takes a while.
        let mut err = std::io::stderr();
        let _ = writeln!(
            err,
            "deploy tests: making sure .venv-deploy has kubernetes-validate (deploy/tests/setup-venv.sh)"
        );
        let out = Command::new("bash")
            .arg(root().join("deploy/tests/setup-venv.sh"))
            .output()
            .map_err(|e| format!("failed to run setup-venv.sh: {e}"))?;
        let _ = err.write_all(&out.stdout);
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "setup-venv.sh failed ({}):\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    });
    if let Err(e) = result {
        panic!("the validator's venv could not be made: {e}\n{SETUP_HINT}");
    }
}

/// Runs the validator on `file`: whether it passed, and what it said.
fn validate(file: &Path) -> (bool, String) {
    let validator = validator();
    let out = Command::new(&validator)
        .args(["--strict", "--no-warn", "-k", KUBERNETES_VERSION])
        .arg(file)
        .output()
        .unwrap_or_else(|e| panic!("failed to run {}: {e}\n{SETUP_HINT}", validator.display()));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn the_manifests_validate_against_the_kubernetes_schema() {
    for file in manifests() {
        let (passed, text) = validate(&file);
        assert!(passed, "{} is refused:\n{text}", file.display());
        let documents = std::fs::read_to_string(&file)
            .expect("manifest")
            .split("\n---")
            .count();
        assert_eq!(
            text.matches(" passed for resource ").count(),
            documents,
            "every document of {} is validated:\n{text}",
            file.display()
        );
    }
}

#[test]
fn the_validator_refuses_a_broken_manifest() {
    let job = root().join("deploy/k8s/load-job.yaml");
    let text = std::fs::read_to_string(&job).expect("load-job.yaml");
    let dir = tempfile::tempdir().expect("tempdir");
    for (what, from, to, said) in [
        (
            "a misspelt field",
            "  parallelism: 3",
            "  paralelism: 3",
            "'paralelism' was unexpected",
        ),
        (
            "a number given as a word",
            "  completions: 3",
            "  completions: three",
            "'three' is not of type 'integer'",
        ),
        (
            "a container without its required name",
            "        - name: load\n",
            "        - \n",
            "'name' is a required property",
        ),
    ] {
        assert!(text.contains(from), "load-job.yaml has `{from}`");
        let broken = dir.path().join("broken.yaml");
        std::fs::write(&broken, text.replacen(from, to, 1)).expect("write");
        let (passed, said_now) = validate(&broken);
        assert!(!passed, "{what} passes the validator:\n{said_now}");
        assert!(
            said_now.contains(said),
            "{what}: the validator says `{said}`:\n{said_now}"
        );
    }
}

fn load_job() -> serde_yaml::Value {
    let text = std::fs::read_to_string(root().join("deploy/k8s/load-job.yaml")).expect("job");
    let job = serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).expect("yaml"))
        .find(|doc: &serde_yaml::Value| doc["kind"] == "Job")
        .expect("a Job in load-job.yaml");
    job
}

#[test]
fn the_job_runs_one_shard_per_index_at_once() {
    let job = load_job();
    let spec = &job["spec"];
    assert_eq!(spec["completionMode"], "Indexed");
    let n = spec["completions"].as_u64().expect("completions");
    assert_eq!(spec["parallelism"].as_u64(), Some(n), "all at once");
    let container = &spec["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "tekup-harness/harness:latest");
    let args: Vec<&str> = container["args"]
        .as_sequence()
        .expect("args")
        .iter()
        .map(|a| a.as_str().expect("string"))
        .collect();
    assert_eq!(args[0], "load");
    assert!(
        args.contains(&format!("--shard=$(JOB_COMPLETION_INDEX)/{n}").as_str()),
        "each pod's shard is its index of {n}: {args:?}"
    );
    assert!(
        args.iter()
            .any(|a| a.starts_with("--reports-dir=") && a.contains("$(JOB_COMPLETION_INDEX)")),
        "each pod writes under its own index: {args:?}"
    );
}

#[test]
fn every_flag_the_job_gives_is_one_load_knows() {
    let help = Command::new(harness_bin())
        .args(["load", "--help"])
        .output()
        .expect("tekup-harness load --help");
    let help = String::from_utf8_lossy(&help.stdout);
    let job = load_job();
    let args = job["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_sequence()
        .expect("args")
        .clone();
    for arg in args.iter().filter_map(|a| a.as_str()) {
        if let Some(flag) = arg.strip_prefix("--") {
            let name = flag.split('=').next().unwrap_or_default();
            assert!(
                help.contains(&format!("--{name} ")) || help.contains(&format!("--{name}\n")),
                "`load` has no --{name}:\n{help}"
            );
        }
    }
    // And the env the ConfigMap sets is what `load` reads.
    for var in [
        "TEKUP_CRM_API_URL",
        "TEKUP_GATEWAY_URL",
        "TEKUP_ADMIN_TOKEN",
    ] {
        assert!(help.contains(var), "`load` reads {var}:\n{help}");
    }
}

/// The harness binary: `$TEKUP_HARNESS_BIN` (as for the container reaper),
/// else the one cargo built for these tests.
fn harness_bin() -> std::path::PathBuf {
    std::env::var_os("TEKUP_HARNESS_BIN").map_or_else(
        || env!("CARGO_BIN_EXE_tekup-harness").into(),
        std::path::PathBuf::from,
    )
}
