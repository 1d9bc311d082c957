//! Chaos: faults on the network between components.
//!
//! - [`Proxy`] ([`proxy`]): a TCP proxy of our own on the Toxiproxy model.
//!   It listens on 127.0.0.1, forwards each connection to one upstream and
//!   passes the data of each direction ([`Stream`]) through a chain of
//!   [`Toxic`]s: latency (+ jitter), bandwidth, slow close, timeout, reset
//!   peer, slicer, limit data. Toxics are added, updated and removed while
//!   connections are open; the proxy can be disabled (`down`: connections
//!   closed, new ones refused) and enabled again on the same port.
//! - [`Links`] ([`links`]): one proxy per link `from->to` between two
//!   components of the ecosystem. Under the process runtime every
//!   reference a component makes to another's host, port or URL goes
//!   through its link, so a scenario step
//!   `chaos: { toxic: latency, link: flow-api->redis, latency: 500ms }`
//!   becomes
//!
//! ```no_run
//! # async fn demo(eco: &tekup_harness::env::Ecosystem) -> Result<(), tekup_harness::env::EnvError> {
//! use std::time::Duration;
//! use tekup_harness::chaos::Toxic;
//!
//! let link = eco.link_named("flow-api->redis")?;
//! link.add(Toxic::latency(Duration::from_millis(500), Duration::ZERO).named("step-3"))?;
//! // ... `for: 5s` later:
//! link.remove("step-3")?;
//! link.disable()?; // `down`: flow-api loses Redis; the worker keeps it
//! link.enable()?;
//! let names: Vec<&str> = eco.links().map(|l| l.name()).collect(); // ["crm-api->gemini", ...]
//! # Ok(()) }
//! ```
//!
//! - [`suite`]: chaos suites, steady load while Redis or Postgres is
//!   killed, a mock fails or the gateway loses Redis, then the
//!   [`crate::invariants`] within a recovery time.
//!
//! How a connection is carried (read-ahead, timestamps, the stage list of
//! a chunk) is described in `conn.rs` and `writer.rs`; why `down` refuses
//! instead of accepting and closing, in [`proxy`].

mod conn;
mod error;
pub mod links;
pub mod proxy;
pub mod suite;
pub mod toxic;
mod writer;

pub use error::ChaosError;
pub use links::{parse_link, Link, Links};
pub use proxy::{Proxy, ProxyStats};
pub use toxic::{Stream, Toxic, ToxicKind};
