//! The `database` class catches its deliberate defects, and finds nothing
//! on the reference services.
//!
//! The database defects are all applied by `migrate` (grants, policies and
//! functions come from the migrations), so one ecosystem carries them all:
//! each leaves its own finding, named by the object it spoils.

use tekup_harness::sweep::{Class, SweepReport};

use crate::{matching, sweep_on};

/// The findings naming `object` whose title also says `what`.
fn reported(report: &SweepReport, object: &str, what: &str) {
    let found = matching(report, object);
    assert!(
        found.iter().any(|f| f.title.contains(what)),
        "no finding on {object} saying {what:?}; the findings on it: {:#?}",
        found.iter().map(|f| &f.title).collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_database_class_reports_each_database_defect() {
    let report = sweep_on(
        "db-identity-writes,db-rls-off,db-definer-leak,db-view-leak,db-forgotten-table,db-role-powers",
        &[Class::Database],
    )
    .await;
    let class = &report.classes[0];
    assert!(class.skipped.is_none(), "skipped: {:?}", class.skipped);
    // db-identity-writes
    reported(
        &report,
        "auth.api_keys",
        "tekup_app has INSERT on the identity table",
    );
    // db-rls-off: the catalog, and tried (tekup_service has no BYPASSRLS of
    // its own, so this is the table's doing, not db-role-powers')
    reported(&report, "crm.deals", "row-level security is off");
    reported(
        &report,
        "crm.deals",
        "tekup_service acting for one tenant may write another tenant's row",
    );
    // db-definer-leak: the rule, and the call returning tenant B's leads
    reported(&report, "flow.recent_leads()", "SECURITY DEFINER function");
    reported(
        &report,
        "flow.recent_leads()",
        "tekup_service acting for one tenant gets another tenant's rows",
    );
    // db-view-leak
    reported(
        &report,
        "flow.lead_emails",
        "reads tenant data with its owner's rights",
    );
    reported(&report, "crm.contact_counts", "materialized view");
    // db-forgotten-table
    reported(
        &report,
        "crm.notes",
        "not one of the contract's tenant tables",
    );
    reported(&report, "crm.notes", "has no row-level security policy");
    // db-role-powers
    reported(&report, "tekup_app has BYPASSRLS", "BYPASSRLS");
    reported(&report, "tekup_app has CREATEDB", "CREATEDB");
    reported(
        &report,
        "tekup_service can act as tekup_app, which has BYPASSRLS",
        "BYPASSRLS",
    );
    reported(&report, "owns flow.compliance_reports", "tekup_app owns");
    // and, through BYPASSRLS, tekup_app sees tenant B's lead
    reported(
        &report,
        "flow.leads",
        "tekup_app acting for one tenant sees",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_database_class_is_clean_on_the_reference_services() {
    let report = sweep_on("", &[Class::Database]).await;
    let class = &report.classes[0];
    assert!(class.skipped.is_none(), "skipped: {:?}", class.skipped);
    assert!(class.cases > 100, "only {} cases", class.cases);
    for table in [
        "flow.leads",
        "crm.deals",
        "gateway.event_audit",
        "auth.api_keys",
    ] {
        assert!(
            class.operations.contains(&format!("database {table}")),
            "{table} not checked: {:?}",
            class.operations
        );
    }
    let findings: Vec<String> = class.findings.iter().map(ToString::to_string).collect();
    assert!(findings.is_empty(), "{}", findings.join("\n\n"));
}
