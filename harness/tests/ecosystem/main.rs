//! The ecosystem started for real: under `process` (Postgres, Redis, the
//! mocks and the services as child processes) and under `docker` (the
//! offline images from `tekup-harness images build`, the optional
//! Prometheus included), plus the guarantee that nothing survives a
//! harness killed with SIGKILL, and distributed load from containers of
//! the harness image.

mod common;
mod distributed_load;
mod docker;
mod docker_prometheus;
mod external;
mod fresh;
mod process;
mod sigkill;
mod snapshot;
