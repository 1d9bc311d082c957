//! The permission matrix: which permissions a source app holds on a service.
//!
//! The matrix is data (`permissions:` of the platform's contract,
//! `fixtures/platform.yaml`, stored in `auth.app_grants` by
//! `migrate --contract`), so teams can change it without a rebuild. Service `*` grants a permission on every service.

use std::collections::{BTreeMap, BTreeSet};

use sqlx::PgPool;

use crate::state::ServiceName;

/// The service name that stands for every service.
pub const ANY_SERVICE: &str = "*";

/// app → service (or `*`) → permissions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    matrix: BTreeMap<String, BTreeMap<String, BTreeSet<String>>>,
}

impl Grants {
    pub fn new(matrix: BTreeMap<String, BTreeMap<String, BTreeSet<String>>>) -> Self {
        Self { matrix }
    }

    /// Loads the matrix from `auth.app_grants`.
    pub async fn load(db: &PgPool) -> Result<Self, sqlx::Error> {
        let rows: Vec<(String, String, String)> =
            sqlx::query_as("SELECT app, service, permission FROM auth.app_grants")
                .fetch_all(db)
                .await?;
        let mut matrix: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
        for (app, service, permission) in rows {
            matrix
                .entry(app)
                .or_default()
                .entry(service)
                .or_default()
                .insert(permission);
        }
        Ok(Self { matrix })
    }

    /// Whether `app` is in the matrix at all.
    pub fn knows_app(&self, app: &str) -> bool {
        self.matrix.contains_key(app)
    }

    /// The permissions `app` holds on `service`.
    pub fn for_app(&self, app: &str, service: ServiceName) -> BTreeSet<String> {
        let Some(services) = self.matrix.get(app) else {
            return BTreeSet::new();
        };
        [service.as_str(), ANY_SERVICE]
            .iter()
            .filter_map(|s| services.get(*s))
            .flatten()
            .cloned()
            .collect()
    }

    /// Whether `app` holds `permission` on `service`.
    pub fn allows(&self, app: &str, service: ServiceName, permission: &str) -> bool {
        self.for_app(app, service).contains(permission)
    }

    /// Every (app, service, permission) row.
    pub fn rows(&self) -> impl Iterator<Item = (&str, &str, &str)> {
        self.matrix.iter().flat_map(|(app, services)| {
            services.iter().flat_map(move |(service, perms)| {
                perms
                    .iter()
                    .map(move |p| (app.as_str(), service.as_str(), p.as_str()))
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matrix() -> Grants {
        let mut m: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
        m.entry("flow-web".into())
            .or_default()
            .insert("flow-api".into(), ["read:leads".to_owned()].into());
        m.entry("secure-platform".into())
            .or_default()
            .insert("*".into(), ["read:security".to_owned()].into());
        Grants::new(m)
    }

    #[test]
    fn a_grant_applies_to_its_service_only_and_star_to_all() {
        let g = matrix();
        assert!(g.allows("flow-web", ServiceName::FlowApi, "read:leads"));
        assert!(!g.allows("flow-web", ServiceName::CrmApi, "read:leads"));
        assert!(!g.allows("flow-web", ServiceName::FlowApi, "write:leads"));
        for s in ServiceName::ALL {
            assert!(g.allows("secure-platform", s, "read:security"));
        }
        assert!(!g.allows("unknown", ServiceName::FlowApi, "read:leads"));
        assert_eq!(g.rows().count(), 2);
    }
}
