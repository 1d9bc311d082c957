//! The fault proxy and the ecosystem's links, against real sockets:
//!
//! - `toxics`: each toxic's observable effect on a client of a proxy in
//!   front of a small echo or source server; runtime changes; `down`;
//!   clean shutdown.
//! - `links`: the ecosystem under the process runtime with a proxy on every
//!   link (flow-api loses Redis when `flow-api->redis` is down and gets it
//!   back), Redis's append-only file across kill + restart, and the
//!   runtimes that refuse links.
//! - `alerts`: the platform's alert rules pass `promtool check rules` and
//!   their unit tests, and rules broken on purpose are caught.
//! - `alerts_fire`: the optional Prometheus component sees Stripe failing:
//!   crm-api's breaker alert fires, then resolves after the heal.
//! - `breakers`: with traffic stopped, an open breaker reads half-open once
//!   the ecosystem file's open time has passed, and a build whose gauge
//!   does not follow the clock (`breaker-gauge-stale`) is caught.
//!
//! Timing assertions have generous upper bounds: the machine is small and
//! shared.

mod alerts;
mod alerts_fire;
mod breakers;
mod common;
mod links;
mod toxics;
