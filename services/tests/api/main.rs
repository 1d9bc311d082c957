//! Integration tests of the reference services against a real Postgres.
//!
//! One test binary (zero2prod style) so the helpers are compiled once; each
//! test starts its own Postgres cluster (a copy of a cached initdb template)
//! and its own services, so tests run in parallel without sharing state.

mod cli;
mod crm;
mod errors;
mod helpers;
mod lead_to_contact;
mod permissions;
mod tenant_isolation;
