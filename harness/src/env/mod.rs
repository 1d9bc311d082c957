//! Starting and stopping the components of the ecosystem.
//!
//! Every handle here owns what it started: dropping it stops the component
//! and removes its files. Child processes are spawned from one long-lived
//! thread with a parent-death signal, so they also die when the harness
//! process dies abruptly (SIGKILL, abort) and no `Drop` runs.

pub mod postgres;
mod spawn;

pub use postgres::{LocalPostgres, PostgresError};
