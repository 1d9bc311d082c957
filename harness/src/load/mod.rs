//! Load profiles (goose) and the platform's targets as pass/fail rules.
//!
//! `tekup-harness load --profile P` and the `load` bench use [`run`]: it
//! creates a fresh tenant per user, opens WebSocket clients on the gateway
//! (to see each lead processed, and for the fan-out profile), runs the
//! profile's goose scenario, waits for the last leads' events, and returns
//! a [`LoadReport`] judged against [`Thresholds`] (API p95 < 500 ms, error
//! rate < 1 %, queue latency < 1 min by default).
//!
//! Why this shape:
//! - goose does the load (users, ramp-up, its request metrics and HTML
//!   report); what goose cannot see, queue latency and WebSocket
//!   deliveries, is measured beside it ([`events`]);
//! - every latency is kept as a mergeable [`Histogram`], and the rules are
//!   judged on the report, not inside goose, so reports of several machines
//!   merge into one whose percentiles and verdicts are those of the union
//!   ([`LoadReport::merge`]; goose has no distributed mode since 0.17);
//! - several generators run one plan as [`Shard`]s (`--shard I/N`): each
//!   its share of the users with tenants of its own, its shard in its
//!   report, so a merge counts every shard once (`deploy/README.md`);
//! - goose keeps process-wide state (its kill switch, its Ctrl-C handler),
//!   so runs in one process take turns.

mod events;
pub mod hist;
pub mod html;
mod profiles;
pub mod report;
mod run;
pub mod shard;
pub mod thresholds;

use std::path::PathBuf;

pub use hist::Histogram;
pub use profiles::Profile;
pub use report::{DeliveryStats, KindStats, LoadReport, QueueStats};
pub use run::{run, Plan};
pub use shard::Shard;
pub use thresholds::{Thresholds, Verdict};

/// Why a load run (or a merge of reports) could not be made.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(
        "unknown load profile `{0}`: expected one of lead-creation, contact-sync, mixed, ws-fanout"
    )]
    UnknownProfile(String),
    #[error("profile `{profile}` needs {service}: {hint}")]
    MissingTarget {
        profile: Profile,
        service: &'static str,
        hint: &'static str,
    },
    #[error("failed to create the load tenants")]
    Tenants(#[source] crate::platform::PlatformError),
    #[error("failed to connect a WebSocket client to {url}: {why}")]
    Gateway { url: String, why: String },
    #[error("the load run failed")]
    Goose(#[source] Box<goose::GooseError>),
    #[error("failed to read the load report {}", path.display())]
    ReadReport {
        path: PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("failed to write the load report {}", path.display())]
    WriteReport {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("shard {shard} of a plan of {users} user(s) has no user: give --users at least {}", shard.count)]
    EmptyShard { shard: Shard, users: usize },
    #[error("failed to merge load reports: {0}")]
    Merge(String),
}

impl From<goose::GooseError> for LoadError {
    fn from(e: goose::GooseError) -> Self {
        LoadError::Goose(Box::new(e))
    }
}
