//! The routing table: which apps receive which event types.
//!
//! The four routes the platform's spec names come first; the others are
//! what the reference services use.

/// Every event type the platform knows.
pub const EVENT_TYPES: [&str; 12] = [
    "LEAD_CREATED",
    "LEAD_UPDATED",
    "CONTACT_CREATED",
    "CONTACT_UPDATED",
    "DEAL_WON",
    "PAYMENT_RECEIVED",
    "EMAIL_SYNCED",
    "VOICE_COMMAND_EXECUTED",
    "SECURITY_INCIDENT",
    "COMPLIANCE_ALERT",
    "ANALYTICS_UPDATED",
    "SYSTEM_MAINTENANCE",
];

/// The platform's apps (the permission matrix's sources).
pub const ALL_APPS: &[&str] = &[
    "flow-web",
    "crm-web",
    "voice-agent",
    "inbox-ai",
    "secure-platform",
    "business-dashboard",
];

/// The apps that receive `event_type`; empty for unknown types.
pub fn routes_for(event_type: &str) -> &'static [&'static str] {
    match event_type {
        // From the platform's spec.
        "LEAD_CREATED" => &["crm-web", "flow-web"],
        "CONTACT_UPDATED" => &["inbox-ai", "crm-web"],
        "VOICE_COMMAND_EXECUTED" => &["flow-web", "voice-agent"],
        "SECURITY_INCIDENT" => &["secure-platform", "business-dashboard"],
        // The reference services' own.
        "LEAD_UPDATED" => &["flow-web", "crm-web"],
        "CONTACT_CREATED" => &["crm-web", "inbox-ai"],
        "DEAL_WON" | "PAYMENT_RECEIVED" => &["crm-web", "business-dashboard"],
        "EMAIL_SYNCED" => &["inbox-ai"],
        "COMPLIANCE_ALERT" => &["secure-platform", "business-dashboard"],
        "ANALYTICS_UPDATED" => &["business-dashboard"],
        "SYSTEM_MAINTENANCE" => ALL_APPS,
        _ => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_type_has_a_route() {
        for kind in EVENT_TYPES {
            assert!(!routes_for(kind).is_empty(), "{kind} has no route");
        }
        assert!(routes_for("NOPE").is_empty());
    }
}
