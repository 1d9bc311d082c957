//! tekup-harness: starts the TekUp ecosystem, mocks its external APIs and runs
//! declarative scenarios, property, load and chaos tests against it.
//!
//! `docs/ARCHITECTURE.md` in the repository is the map of the crates, of a
//! scenario's way from file to report, and of the extension points.
//!
//! What is here today:
//! - [`env`]: the ecosystem file (`fixtures/ecosystem.toml`), the `process`,
//!   `docker` and `external` runtimes behind one trait, readiness and
//!   teardown, and [`env::Ecosystem`], the API tests use:
//!
//! ```no_run
//! # async fn demo() -> Result<(), tekup_harness::env::EnvError> {
//! use tekup_harness::env::{Ecosystem, Runtime};
//! let eco = Ecosystem::start(Runtime::Auto).await?;
//! let flow = eco.url("flow-api")?;          // http://127.0.0.1:…
//! let pool = eco.postgres_pool().await?;    // superuser pool on the database
//! eco.component("crm-api")?.kill().await?;  // faults per component
//! drop(eco);                                // everything torn down
//! # Ok(()) }
//! ```
//!
//! - [`cli`]: the `tekup-harness` command (`up`, `down`, `images build`,
//!   `doctor`).
//!
//! - [`scenario`]: the scenario file format, its model and checker
//!   (`file:line:col` errors); `validate`, `schema`, `new scenario`.
//!
//! - [`chaos`]: a fault proxy of our own (Toxiproxy's toxics) and the
//!   ecosystem's links: one proxy per `from->to` between components, e.g.
//!   `eco.link("flow-api", "redis")?.disable()?`.
//!
//! - [`platform`]: a typed client of the platform's API (tenants, tenant
//!   requests), for the suites that drive it from Rust.
//!
//! - [`alerts`]: the platform's alert rules checked with `promtool`, and
//!   the alerts a run's optional Prometheus fired (load and chaos reports).
//!
//! - [`invariants`]: what must hold after load and faults (nothing lost,
//!   nothing duplicated, everything processed or dead-lettered, breakers
//!   closed), checked against the platform's own stores.
//!
//! - [`load`]: goose load profiles (lead creation, contact sync, mixed,
//!   WebSocket fan-out) judged against the platform's targets, with
//!   reports that merge across machines.
//!
//! - [`property`]: property tests: random operation sequences of several
//!   tenants against the live ecosystem and a model, shrunk to a scenario
//!   file on failure (`tekup-harness prop`).
//!
//! - [`report`]: JUnit XML, JSON and HTML reports.
//!
//! - [`contract`]: the platform's contract as data (`fixtures/platform.yaml`):
//!   the oracle every suite takes its expectations from, never the services' code.
//!
//! - [`net`]: the client TLS settings every client of the harness uses
//!   (`--ca-cert`, `--client-cert`/`--client-key`, `--insecure`), and a
//!   TLS-terminating front for tests.
//!
//! - [`sweep`]: every surface of the platform attacked (access, inputs,
//!   limits, database, tokens), generated from the contract and the
//!   services' OpenAPI documents (`tekup-harness sweep`).

pub mod alerts;
pub mod chaos;
pub mod cli;
pub mod contract;
pub mod env;
pub mod invariants;
pub mod load;
pub mod net;
pub mod platform;
pub mod property;
pub mod report;
pub mod scenario;
pub mod sweep;
pub mod trace;
