//! The fault proxy and the ecosystem's links, against real sockets:
//!
//! - `toxics`: each toxic's observable effect on a client of a proxy in
//!   front of a small echo or source server; runtime changes; `down`;
//!   clean shutdown.
//! - `links`: the ecosystem under the process runtime with a proxy on every
//!   link (flow-api loses Redis when `flow-api->redis` is down and gets it
//!   back), Redis's append-only file across kill + restart, and the
//!   runtimes that refuse links.
//!
//! Timing assertions have generous upper bounds: the machine is small and
//! shared.

mod alerts;
mod common;
mod links;
mod toxics;
