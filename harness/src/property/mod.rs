//! Property tests against the live ecosystem: random sequences of
//! operations by several tenants and apps, held to a model of what each
//! tenant should see, with failures shrunk to a scenario file.
//!
//! A case is 2–3 fresh tenants and a list of [`Op`]s: leads created,
//! updated, listed and read; contacts synced and listed; deals; security
//! incidents; WebSocket clients of the gateway as (tenant, app); calls
//! across apps and services that must be refused; forged and swapped keys
//! and other tenants' ids; and a lead's processing job handed to the
//! workers again (the queues deliver at least once). Checked after every
//! operation and at the end of the case:
//!
//! - a tenant reads, receives and changes only its own data: reads return
//!   exactly what the model says it owns, others' ids give 404 (or 403),
//!   refused writes change nothing (the owners' views are read again);
//! - every accepted lead has exactly one contact association and one
//!   `LEAD_CREATED` activity ([`crate::invariants::Checker`], settled);
//! - every event a client receives is its tenant's, of a type the routing
//!   table sends to its app, and comes once; every event the model expects
//!   reaches every subscribed room the table names.
//!
//! Why it is built this way:
//!
//! - **Plain `Vec<Op>` with references by index**, not
//!   `proptest-state-machine`: an operation names earlier results by index,
//!   resolved modulo what exists when it runs, so any subsequence is a valid
//!   case and proptest's own `Vec` shrinking (drop operations, then simplify
//!   each) needs no preconditions or a reference state machine. The model
//!   is then a pure function of the operations ([`plan`]), not a second
//!   state machine beside the generator.
//! - **One plan drives the run and the scenario**: the model turns the
//!   operations into requests with their expected answers, naming what the
//!   platform assigns as a scenario names it (`${lead-0}`). The executor
//!   binds those names as answers come; the renderer writes them as they
//!   are. A shrunk failure therefore replays as the same requests under
//!   `tekup-harness run`.
//! - **Fresh tenants per case**, so cases are independent and share one
//!   ecosystem (started once, which dominates the cost of a run).
//! - **Waiting is on conditions with deadlines**: the end of a case settles
//!   the stores ([`crate::invariants::Checker::settle`]), waits for each
//!   expected event, and only then listens for a bounded quiet window in
//!   which nothing more may arrive. An event caused before a client
//!   connected races the connection, so it may come (once) but need not.
//! - **Cases run one at a time**: the stores' checks (queues drained,
//!   breakers closed) are about the whole platform, and a live case is
//!   seconds, not microseconds, so proptest's case count is kept small in
//!   CI (`TEKUP_PROP_CASES`) and the generator is weighted towards what the
//!   invariants are about (leads, redeliveries, subscriptions).

mod check;
mod events;
mod exec;
pub mod op;
pub mod plan;
mod render;
mod search;

pub use exec::{CaseFailure, Executor, Waits};
pub use op::Op;
pub use plan::Plan;
pub use render::scenario;
pub use search::{search, Config, Failure, Outcome, Progress, PropertyError};
