//! Flow API: leads, activities, compliance reports.
//!
//! | endpoint | permission |
//! |---|---|
//! | `POST /leads` | `write:leads` |
//! | `GET /leads`, `GET /leads/{id}` | `read:leads` |
//! | `PATCH /leads/{id}` | `write:leads` |
//! | `POST /activities` | `write:activities` |
//! | `GET /activities` | `read:activities` |
//! | `POST /compliance/report` | `write:incidents` |
//! | `GET /compliance/reports` | `read:compliance` |
//! | `GET /dashboard/metrics` | `read:metrics` |
//! | `GET /analytics` | `read:analytics` |
//! | `POST /voice/execute` | `execute:voice` (and the command's own) |
//!
//! Creating a lead links it to a CRM contact (found by email, or created)
//! and records a `LEAD_CREATED` activity; see [`leads`]. [`FlowApiDoc`] is
//! the service's OpenAPI document (see [`crate::openapi`]).

pub(crate) mod activities;
mod compliance;
mod leads;
mod outbox;
pub(crate) mod processing;
pub use outbox::recover as recover_outbox;
mod stats;
mod voice;

use axum::routing::{get, post};
use axum::Router;

use crate::state::AppState;

pub use activities::Activity;
pub(crate) use activities::ENTITY_TYPES;
pub use compliance::ComplianceReport;
pub use leads::Lead;
pub(crate) use leads::STATUSES as LEAD_STATUSES;

/// The operations of [`routes`], for the OpenAPI document.
#[derive(Debug, utoipa::OpenApi)]
#[openapi(
    info(
        title = "flow-api",
        description = "Flow API: leads, activities, compliance reports, voice commands."
    ),
    paths(
        leads::create,
        leads::list,
        leads::get,
        leads::update,
        activities::create,
        activities::list,
        compliance::create,
        compliance::list,
        stats::dashboard,
        stats::analytics,
        voice::execute,
    )
)]
pub struct FlowApiDoc;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/leads", post(leads::create).get(leads::list))
        .route("/leads/{id}", get(leads::get).patch(leads::update))
        .route(
            "/activities",
            post(activities::create).get(activities::list),
        )
        .route("/compliance/report", post(compliance::create))
        .route("/compliance/reports", get(compliance::list))
        .route("/dashboard/metrics", get(stats::dashboard))
        .route("/analytics", get(stats::analytics))
        .route("/voice/execute", post(voice::execute))
}
