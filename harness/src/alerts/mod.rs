//! The platform's alerts: its rules checked with `promtool`, and what a
//! run's Prometheus fired.
//!
//! The rules (`fixtures/prometheus/alerts.yml`) are the platform's, not
//! the harness's: they ship with the services, and their unit tests
//! (`alerts.test.yml`, `promtool test rules`) show each alert fires on a
//! synthetic series and stays quiet on a healthy one. [`rules`] runs
//! `promtool` on them (installed on demand, like Redis), so a rule that
//! no longer fires, or no longer parses, fails the harness's tests with
//! the tool's own words.
//!
//! [`api`] reads a running Prometheus (the optional `prometheus`
//! component, see [`crate::env::prometheus`]): which alerts are pending or
//! firing now, and from the `ALERTS` series which fired during a run,
//! when, and when they resolved. The load and chaos reports list them;
//! the chaos tests wait on them (poll with a deadline, never a sleep).

pub mod api;
pub mod rules;

pub use api::{ActiveAlert, AlertLog, AlertState, AlertsError, FiredAlert, Prometheus};
pub use rules::{check_rules, test_rules, RulesError};
