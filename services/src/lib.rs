//! Reference implementation of the TekUp platform services.
//!
//! The real platform's services are not public, so this crate implements a
//! compact but real version of them: the system under test of our own
//! scenarios, and the model that teams replace with their own binaries
//! through `fixtures/ecosystem.toml`.
//!
//! One binary, `tekup-service`, runs any of them (`flow-api`, `crm-api`,
//! `secure-platform`) or administers the database (`migrate`, `tenant`).
//! Each service is an axum [`Router`](axum::Router) built by
//! [`app`]; [`serve`] runs it on a bound listener until a shutdown future
//! completes, so tests run services in-process on port 0.
//!
//! Tenant isolation has two layers: every handler filters by the tenant of
//! the authenticated request, and Postgres row-level security (keyed on the
//! transaction setting `app.tenant_id`, see [`db::tenant_tx`]) refuses other
//! tenants' rows even to a query that forgets the filter, because services
//! connect as a role that does not own the tables.

pub mod auth;
pub mod cli;
pub mod client;
pub mod config;
pub mod context;
pub mod crm;
pub mod db;
pub mod defects;
pub mod defects_db;
pub mod error;
pub mod events;
pub mod external;
pub mod flow;
pub mod gateway;
pub mod http;
pub mod metrics;
pub mod openapi;
pub mod outage;
pub mod queue;
pub mod resilience;
pub mod secure;
pub mod state;
pub mod telemetry;
pub mod tenants;
pub mod validate;
pub mod worker;

pub use http::{app, serve, serve_with, ConnLimits};
pub use state::{AppState, ServiceName};
