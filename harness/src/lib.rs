//! tekup-harness: starts the TekUp ecosystem, mocks its external APIs and runs
//! declarative scenarios, property, load and chaos tests against it.
//!
//! What is here today:
//! - [`env::postgres`]: a throw-away PostgreSQL server started from the
//!   machine's own binaries (`initdb`/`postgres`), used by the tests of the
//!   reference services and, later, by the `process` runtime.
//!
//! What this crate will hold (see `DESIGN.md` in the repository):
//! - `env`: the ecosystem file model and the `process`, `docker` and
//!   `external` runtimes behind one trait, readiness checks and teardown;
//! - `scenario`: the scenario file format, its parser and runner;
//! - `chaos`: a fault proxy with toxics and component faults;
//! - `load`: goose load profiles with SLO thresholds;
//! - `report`: JUnit XML, JSON and HTML reports.

pub mod env;
