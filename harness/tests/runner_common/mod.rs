//! What the runner test binaries share: one tokio runtime and one
//! [`Suite`] per binary (so one ecosystem, started by the first test that
//! asks for a runner), its reports under a temporary directory named for
//! the binary. Scenarios that need the ecosystem alone run alone on it,
//! not on ecosystems of their own.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use tekup_harness::scenario::run::{Runner, Suite};

pub(crate) fn rt() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("runtime")
    })
}

/// The binary's suite; `reports` names its reports directory
/// (`<tmp>/<reports>-<pid>`), fixed by the first call.
pub(crate) fn suite(reports: &str) -> &'static Suite {
    static SUITE: OnceLock<Suite> = OnceLock::new();
    SUITE.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut suite = Suite::new(root.canonicalize().expect("workspace"));
        suite.reports_dir = std::env::temp_dir().join(format!("{reports}-{}", std::process::id()));
        // These binaries test the shared ecosystem: a scenario that needs
        // it alone runs alone on it (runner.rs tests ecosystems of their own
        // with a suite of its own).
        suite.own_ecosystems = false;
        suite
    })
}

/// The runner of the binary's suite, starting the ecosystem on first use.
pub(crate) async fn runner(reports: &str) -> Arc<Runner> {
    suite(reports).runner().await.expect("the ecosystem starts")
}
