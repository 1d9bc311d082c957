//! Deliberate defects of the database (see [`crate::defects`]).
//!
//! The services' grants, policies and functions come from the migrations,
//! not from code that runs per request, so these defects are applied by
//! `tekup-service migrate` right after the migrations (as the migrating
//! role), when the `defects` build runs with them on. Each is one small
//! change of the kind a migration could get wrong; the sweep's `database`
//! class must report every one of them.

use sqlx::PgPool;

use crate::defects;

/// Each database defect and the statements that make it.
const DEFECTS: &[(&str, &[&str])] = &[
    (
        "db-identity-writes",
        &["GRANT INSERT ON auth.api_keys TO tekup_app"],
    ),
    (
        "db-rls-off",
        &[
            "ALTER TABLE crm.deals NO FORCE ROW LEVEL SECURITY",
            "ALTER TABLE crm.deals DISABLE ROW LEVEL SECURITY",
        ],
    ),
    (
        "db-definer-leak",
        &[
            "CREATE OR REPLACE FUNCTION flow.recent_leads() RETURNS SETOF flow.leads
                 LANGUAGE sql STABLE SECURITY DEFINER SET search_path = flow, pg_temp
                 AS $$ SELECT * FROM leads ORDER BY created_at DESC LIMIT 1000 $$",
            "REVOKE ALL ON FUNCTION flow.recent_leads() FROM PUBLIC",
            "GRANT EXECUTE ON FUNCTION flow.recent_leads() TO tekup_app",
        ],
    ),
    (
        "db-view-leak",
        &[
            "CREATE OR REPLACE VIEW flow.lead_emails AS SELECT tenant_id, id, email FROM flow.leads",
            "GRANT SELECT ON flow.lead_emails TO tekup_app",
            "CREATE MATERIALIZED VIEW IF NOT EXISTS crm.contact_counts AS
                 SELECT tenant_id, count(*) AS contacts FROM crm.contacts GROUP BY tenant_id",
            "GRANT SELECT ON crm.contact_counts TO tekup_app",
        ],
    ),
    (
        "db-forgotten-table",
        &[
            "CREATE TABLE IF NOT EXISTS crm.notes (
                 id uuid PRIMARY KEY,
                 tenant_id text NOT NULL REFERENCES auth.tenants (id),
                 body text NOT NULL)",
            "GRANT SELECT, INSERT ON crm.notes TO tekup_app",
        ],
    ),
    (
        "db-role-powers",
        &[
            "ALTER ROLE tekup_app BYPASSRLS CREATEDB",
            "ALTER TABLE flow.compliance_reports OWNER TO tekup_app",
        ],
    ),
];

/// Applies the database defects that are on (none outside a `defects`
/// build), returning their names.
pub async fn apply(admin: &PgPool) -> Result<Vec<&'static str>, sqlx::Error> {
    let mut applied = Vec::new();
    for (name, statements) in DEFECTS {
        if !defects::active(name) {
            continue;
        }
        let mut tx = admin.begin().await?;
        for statement in *statements {
            sqlx::query(statement).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        applied.push(*name);
    }
    Ok(applied)
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_database_defect_is_known() {
        for (name, _) in super::DEFECTS {
            assert!(
                crate::defects::KNOWN.contains(name),
                "{name} is missing from defects::KNOWN"
            );
        }
    }
}
