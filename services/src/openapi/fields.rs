//! Schemas of fields that utoipa cannot derive from their Rust type, for
//! `#[schema(schema_with = ...)]` and `#[param(schema_with = ...)]`.
//!
//! - Enums the services keep as strings take their values from the same
//!   constants the handlers validate with, so the two cannot drift.
//! - References to other objects (`x-tekup-ref`, see `contract/README.md`)
//!   name the operation that creates such an object. A path `{id}` states
//!   its reference on the parameter itself (`extensions(...)` in
//!   `#[utoipa::path]`); body fields have no such attribute in utoipa,
//!   so theirs are here, one function per kind of object.

use serde_json::json;
use utoipa::openapi::extensions::ExtensionsBuilder;
use utoipa::openapi::schema::{KnownFormat, Object, ObjectBuilder, SchemaFormat, Type};

/// A string that is one of `values`.
fn one_of(values: &[&str]) -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(values.iter().copied()))
        .build()
}

/// The id of an object `reference` (`<service>:<operationId>`) creates;
/// `null` allowed when `optional`.
fn reference(reference: &str, optional: bool) -> Object {
    let kind: utoipa::openapi::schema::SchemaType = if optional {
        [Type::String, Type::Null].into_iter().collect()
    } else {
        Type::String.into()
    };
    ObjectBuilder::new()
        .schema_type(kind)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid)))
        .extensions(Some(
            ExtensionsBuilder::new()
                .add("x-tekup-ref", json!(reference))
                .build(),
        ))
        .build()
}

/// A lead's status (`flow::leads::STATUSES`).
pub(crate) fn lead_status() -> Object {
    one_of(&crate::flow::LEAD_STATUSES)
}

/// An incident's severity (`secure::SEVERITIES`).
pub(crate) fn severity() -> Object {
    one_of(&crate::secure::SEVERITIES)
}

/// An incident's status (`secure::INCIDENT_STATUSES`).
pub(crate) fn incident_status() -> Object {
    one_of(&crate::secure::INCIDENT_STATUSES)
}

/// What an activity is about (`flow::ENTITY_TYPES`).
pub(crate) fn entity_type() -> Object {
    one_of(&crate::flow::ENTITY_TYPES)
}

/// A deal's stage (`crm::DEAL_STAGES`).
pub(crate) fn deal_stage() -> Object {
    one_of(&crate::crm::DEAL_STAGES)
}

/// A circuit breaker's state (`resilience::BreakerState`).
pub(crate) fn breaker_state() -> Object {
    one_of(&crate::resilience::BreakerState::ALL.map(crate::resilience::BreakerState::as_str))
}

/// A lead of Flow API.
pub(crate) fn lead() -> Object {
    reference("flow-api:createLead", false)
}

/// A lead of Flow API, or none.
pub(crate) fn optional_lead() -> Object {
    reference("flow-api:createLead", true)
}

/// A contact of CRM API, or none.
pub(crate) fn optional_contact() -> Object {
    reference("crm-api:createContact", true)
}

/// An incident of Secure Platform, or none.
pub(crate) fn optional_incident() -> Object {
    reference("secure-platform:createIncident", true)
}

/// An app of the platform (`events::ALL_APPS`).
pub(crate) fn app() -> Object {
    one_of(crate::events::ALL_APPS)
}
