//! Starting and stopping the ecosystem.
//!
//! - [`model`]: the ecosystem file (`fixtures/ecosystem.toml`), validated
//!   with line numbers.
//! - [`runtime`]: the [`Backend`] trait and the [`Runtime`] choice;
//!   [`process`], [`docker`] and [`external`] implement it.
//! - [`Ecosystem`]: starts every component in dependency order, waits for
//!   readiness ([`ready`]: conditions with deadlines, never sleeps), and
//!   tears everything down on drop unless kept.
//! - [`LocalPostgres`]: a single throw-away server for tests that need only
//!   a database.
//!
//! Every handle owns what it started. Child processes are spawned from one
//! long-lived thread with a parent-death signal ([`spawn`]), so they die
//! with the harness however it dies; containers are removed by a reaper
//! process that watches a pipe to the harness.

pub(crate) mod binaries;
pub mod docker;
mod ecosystem;
mod error;
pub mod external;
mod handle;
pub mod harness_image;
pub mod images;
pub mod model;
pub(crate) mod ports;
pub mod postgres;
pub(crate) mod process;
pub mod prometheus;
pub mod provision;
mod ready;
pub mod refs;
mod resolve;
pub mod runtime;
pub mod scratch;
mod snapshot;
mod spare;
mod spawn;
pub mod state;

pub use binaries::cargo_command;
pub use ecosystem::{Ecosystem, EcosystemBuilder, Progress};
pub use error::EnvError;
pub use handle::{postgres_answers, ComponentHandle, MockAdminError, MockHandle};
pub use model::{EcosystemFile, Kind, ModelError, Ready};
pub use postgres::{LocalPostgres, PostgresError};
pub use runtime::{Backend, Instance, Runtime};
pub use spare::wait_for_spares;

/// An error and its causes on one line, for messages; a TLS failure among
/// them is then said in words with the flag that fixes it
/// ([`crate::net::explain`]).
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    if let Some(tls) = crate::net::explain(error) {
        text.push_str(" — ");
        text.push_str(&tls);
    }
    text
}

/// Finds a component's program without building it.
pub(crate) fn binaries_resolve(
    component: &model::Component,
    base_dir: &std::path::Path,
) -> Result<std::path::PathBuf, EnvError> {
    binaries::resolve(component, base_dir, false)
}
