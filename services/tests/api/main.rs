//! Integration tests of the reference services against a real Postgres.
//!
//! One test binary (zero2prod style) so the helpers are compiled once; each
//! test starts its own Postgres cluster (a copy of a cached initdb template)
//! and its own services, so tests run in parallel without sharing state.

mod breakers;
mod cli;
mod contract;
mod crm;
mod errors;
mod events;
mod helpers;
mod inputs;
mod integrations;
mod lead_to_contact;
mod limits;
mod local_redis;
mod permissions;
mod queues;
mod tenant_isolation;
mod traces;
mod ws;
