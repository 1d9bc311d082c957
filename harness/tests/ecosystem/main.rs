//! The ecosystem started for real: under `process` (Postgres, Redis, the
//! mocks and the services as child processes) and under `docker` (the
//! offline images from `tekup-harness images build`, the optional
//! Prometheus included, snapshot jobs replayed from images), plus the
//! guarantee that nothing survives a harness killed with SIGKILL,
//! distributed load from containers of the harness image, and a fresh
//! machine (a clean Debian container).
//!
//! libtest starts the tests in the order of their names, four at a time.
//! The clean Debian's test (`clean_debian`: its own image, then PostgreSQL
//! and Redis installed from Debian's mirror, then every scenario; the
//! longest here) needs nothing the others make, and its name sorts first:
//! it runs beside the offline images' build, which the docker tests that
//! come next wait for, instead of after them.

mod clean_debian;
mod common;
mod distributed_load;
mod docker;
mod docker_prometheus;
mod docker_snapshot;
mod external;
mod process;
mod sigkill;
mod snapshot;
mod snapshot_beside;
