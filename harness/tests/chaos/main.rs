//! The fault proxy and the ecosystem's links, against real sockets:
//!
//! - `toxics`: each toxic's observable effect on a client of a proxy in
//!   front of a small echo or source server; runtime changes; `down`;
//!   clean shutdown.
//!
//! Timing assertions have generous upper bounds: the machine is small and
//! shared.

mod common;
mod toxics;
