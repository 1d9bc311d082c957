//! `tekup.operation` of requests and calls: the `operationId` of the
//! route in the served service's OpenAPI document.
//!
//! The documents are the ones `GET /openapi.json` serves ([`crate::openapi`]),
//! so a span names an operation exactly as the contract does. Each
//! service's table of (method, route template, `operationId`) is built once,
//! the first time it is needed (only with tracing on; [`prepare`] builds it
//! at start). A server span looks its route up by the matched template;
//! a client span matches the concrete path it calls against the target's
//! templates.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::OnceLock;

use utoipa::OpenApi as _;

use crate::state::ServiceName;

/// One operation of a document.
#[derive(Debug)]
struct Operation {
    method: String,
    template: String,
    id: String,
}

impl Operation {
    /// Whether the concrete `path` fits this operation's template
    /// (`{param}` matches any one segment).
    fn matches(&self, method: &str, path: &str) -> bool {
        if !self.method.eq_ignore_ascii_case(method) {
            return false;
        }
        let mut template = self.template.split('/');
        let mut concrete = path.split('/');
        loop {
            match (template.next(), concrete.next()) {
                (None, None) => return true,
                (Some(t), Some(c)) if t.starts_with('{') && t.ends_with('}') && !c.is_empty() => {}
                (Some(t), Some(c)) if t == c => {}
                _ => return false,
            }
        }
    }
}

fn table(service: ServiceName) -> &'static [Operation] {
    static TABLES: OnceLock<BTreeMap<ServiceName, Vec<Operation>>> = OnceLock::new();
    let tables = TABLES.get_or_init(|| {
        ServiceName::ALL
            .into_iter()
            .map(|s| {
                let doc = crate::openapi::document(s).unwrap_or_else(|| {
                    serde_json::to_value(crate::http::SharedApi::openapi())
                        .expect("an OpenAPI document serialises")
                });
                (s, operations(&doc))
            })
            .collect()
    });
    tables.get(&service).map_or(&[], Vec::as_slice)
}

fn operations(doc: &serde_json::Value) -> Vec<Operation> {
    let mut out = Vec::new();
    let Some(paths) = doc["paths"].as_object() else {
        return out;
    };
    for (template, item) in paths {
        let Some(item) = item.as_object() else {
            continue;
        };
        for (method, op) in item {
            if let Some(id) = op["operationId"].as_str() {
                out.push(Operation {
                    method: method.to_ascii_uppercase(),
                    template: template.clone(),
                    id: id.to_owned(),
                });
            }
        }
    }
    // Literal segments before parameters: `/contacts/sync` is not `/contacts/{id}`.
    out.sort_by_key(|op| op.template.matches('{').count());
    out
}

/// Builds the operation tables now rather than on the first request.
pub fn prepare() {
    let _ = table(ServiceName::Worker);
}

/// `tekup.operation` of a request to `service` on the matched `route`:
/// its `operationId` (`connectEvents` for the gateway's handshake); the
/// method and route for a route without one (and for unmatched requests).
pub fn served(service: ServiceName, method: &str, route: &str) -> Cow<'static, str> {
    table(service)
        .iter()
        .find(|op| op.method.eq_ignore_ascii_case(method) && op.template == route)
        .map_or_else(
            || Cow::Owned(format!("{method} {route}")),
            |op| Cow::Borrowed(op.id.as_str()),
        )
}

/// `tekup.operation` of a call to `target` at `path` (query ignored): the
/// `operationId` of the route it fits; the method and path when none does.
pub fn called(target: ServiceName, method: &str, path: &str) -> Cow<'static, str> {
    let path = path.split(['?', '#']).next().unwrap_or_default();
    table(target)
        .iter()
        .find(|op| op.matches(method, path))
        .map_or_else(
            || Cow::Owned(format!("{method} {path}")),
            |op| Cow::Borrowed(op.id.as_str()),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_and_paths_name_their_operation_ids() {
        assert_eq!(served(ServiceName::FlowApi, "POST", "/leads"), "createLead");
        assert_eq!(served(ServiceName::Worker, "GET", "/health"), "health");
        assert_eq!(
            served(ServiceName::Gateway, "GET", "/events"),
            "connectEvents"
        );
        assert_eq!(
            served(ServiceName::FlowApi, "GET", "unmatched"),
            "GET unmatched"
        );
        assert_eq!(
            called(ServiceName::CrmApi, "POST", "/contacts/sync?x=1"),
            "syncContacts"
        );
        assert_eq!(
            called(ServiceName::CrmApi, "DELETE", "/nowhere"),
            "DELETE /nowhere"
        );
    }

    #[test]
    fn a_template_parameter_matches_one_whole_segment() {
        let op = Operation {
            method: "GET".into(),
            template: "/leads/{id}".into(),
            id: "getLead".into(),
        };
        assert!(op.matches("GET", "/leads/42"));
        assert!(!op.matches("GET", "/leads/"));
        assert!(!op.matches("GET", "/leads/42/x"));
        assert!(!op.matches("POST", "/leads/42"));
    }
}
