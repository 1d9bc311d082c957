//! The `database` class (see the table in [`super`]): the platform's
//! Postgres, read as its superuser and tried as the services' roles.
//!
//! Tenant isolation in the database is a property of the catalog (what
//! row-level security, grants, views and functions say) and of behaviour
//! (what a query of the services' role returns). The catalog names the
//! defect precisely; behaviour proves it matters, and catches what a rule
//! over the catalog cannot see (a policy `USING (true)`). So the class does
//! both, and every finding carries the SQL that shows it.
//!
//! **Roles.** The contract's `stores.service-role` and every login role
//! that is, directly or through other roles, a member of it: the roles the
//! services connect as. Behaviour is tried as each of them with `SET LOCAL
//! ROLE` inside a transaction that is rolled back (nothing the probes do
//! stays), with `app.tenant_id` set as the services set it, and a statement
//! timeout so a probe cannot hang the sweep.
//!
//! **Tenant data.** The contract's `stores.tenant-tables`, and every other
//! table in their schemas with a `tenant_id` column: a table the contract
//! forgot is a finding of its own, and is held to the same rules.
//!
//! | rule | read from | tried |
//! |---|---|---|
//! | row-level security enabled and forced, with a policy, on each tenant-data table | `pg_class`, `pg_policy` | as tenant A, no row of another tenant is seen; with no tenant set, no row at all; a row for tenant B is refused with 42501 before any other check |
//! | no view the role can read reads tenant data with its owner's rights: views must be `security_invoker`; no materialized view of tenant data is readable by the role | `pg_class.reloptions`, the views' rules in `pg_depend` (through views and materialized views) | as tenant A, the view's rows name nothing of tenant B |
//! | no `SECURITY DEFINER` function the role can execute reads tenant data around row-level security (the rule below) | `pg_proc` | as tenant A, called with tenant B's ids, it returns nothing of tenant B |
//! | no INSERT, UPDATE (any column), DELETE, TRUNCATE or TRIGGER on `stores.identity-tables` | `has_table_privilege`, `has_any_column_privilege` | |
//! | not superuser, no `BYPASSRLS`, `CREATEROLE` or `CREATEDB`, in any role it can act as | `pg_roles`, `pg_has_role` | |
//! | no ownership of a table, view, sequence or schema of the tenant and identity schemas | `pg_class`, `pg_namespace` | |
//!
//! A view's dependencies (`pg_depend` of its rule) name the tables it reads,
//! through other views too; the functions a view calls run as the caller
//! (Postgres checks them as if the query had called them), so only a
//! `SECURITY DEFINER` one can read around row-level security, and the
//! function rule below covers it.
//!
//! **The `SECURITY DEFINER` rule.** Such a function runs with its owner's
//! rights. When the owner is subject to row-level security (not superuser,
//! no `BYPASSRLS`, owning no tenant-data table) the policies still apply
//! inside it with the caller's `app.tenant_id`, and it is accepted. When
//! the owner bypasses row-level security, as the migrating role does, the
//! function is accepted only if it cannot reach tenant data at all:
//! - its `search_path` is pinned (`SET search_path`): otherwise the
//!   caller's path decides what its unqualified names mean;
//! - every schema it can reach holds no tenant-data table, where a function
//!   reaches the schemas on its pinned path, the schemas its body names
//!   (`auth.` in `auth.tenants`), and, transitively, whatever the functions
//!   of those schemas reach;
//! - nothing reached runs SQL the text does not show: no PL/pgSQL
//!   `EXECUTE`, no `query_to_xml`-like built-in, no language other than
//!   `sql` and `plpgsql`.
//!
//! This is what the reference services' `auth.create_tenant` is: it
//! writes `auth` only, reads no tenant table, and so can lend the services'
//! role the one identity write it needs without lending it anyone's rows.
//! The rule reads text, so it is about the honest mistake (a helper that
//! selects from `flow.leads` for convenience), not a hostile migration
//! author, who as the tables' owner could do anything anyway; and it errs
//! on the side of a finding (an `EXECUTE` in a comment counts). Every
//! executable definer function is also called, accepted or not, as each
//! role with tenant A set and tenant B's ids as arguments: a result naming
//! tenant B is a finding whatever the text says.

mod catalog;
mod definer;
mod probe;
mod routines;

use std::collections::BTreeSet;

use serde_json::Value;

use super::{ClassReport, Security, Target};
use crate::contract::ANY_SERVICE;

/// The surface a finding or an operation is reported under.
fn surface(what: &str) -> String {
    format!("database {what}")
}

pub(super) async fn sweep(target: &Target, report: &mut ClassReport) {
    let Some(pool) = &target.superuser else {
        report.skipped = Some(
            "no database access: the deployment gave no DSN of its database's superuser \
             (the process and docker runtimes do; an external deployment does not)"
                .into(),
        );
        return;
    };
    if let Err(e) = run(target, pool, report).await {
        report.found(
            "database",
            "the database sweep could not finish",
            format!("failed to read or query the database: {e}"),
            None,
        );
    }
}

async fn run(target: &Target, pool: &sqlx::PgPool, report: &mut ClassReport) -> Result<(), String> {
    let stores = &target.contract.stores;
    let layout = catalog::Layout::read(pool, stores, report).await?;
    layout.check_tables(report);
    let roles = catalog::roles(pool, &stores.service_role, report).await?;
    for role in &roles {
        report.operations.insert(surface(&format!("role {role}")));
        catalog::check_role(pool, &layout, role, report).await?;
    }
    if roles.is_empty() {
        return Ok(());
    }
    let tenants = Tenants::make(target, &layout, report).await;
    routines::check(pool, &layout, &roles, &tenants, report).await?;
    probe::check_tables(pool, &layout, &roles, &tenants, report).await?;
    Ok(())
}

/// The two tenants behaviour is tried with: A is the one the role acts
/// for, B the one whose rows must stay out of sight.
#[derive(Debug)]
pub(super) struct Tenants {
    pub a: String,
    pub b: String,
    /// Ids of objects of B made through the API, besides B's id.
    pub b_objects: Vec<String>,
}

impl Tenants {
    /// Two fresh tenants made through the platform's API, each with one
    /// object of every kind a tenant operation of the OpenAPI documents
    /// creates with its example (`x-tekup-store` naming a tenant table).
    /// When the platform refuses, a finding says so and the probes go on
    /// with ids no tenant has (what they try does not need the rows).
    async fn make(target: &Target, layout: &catalog::Layout, report: &mut ClassReport) -> Self {
        let platform = &target.platform;
        let (a, b) = match (
            platform.create_tenant("sweep-database-a").await,
            platform.create_tenant("sweep-database-b").await,
        ) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(e), _) | (_, Err(e)) => {
                report.found(
                    "database",
                    "the sweep's tenants could not be created through the platform",
                    format!(
                        "POST /admin/tenants failed: {e}; the probes ran with tenant ids no \
                         tenant has, so they saw no row of a tenant of their own making"
                    ),
                    None,
                );
                return Tenants {
                    a: "sweep-database-no-tenant-a".into(),
                    b: "sweep-database-no-tenant-b".into(),
                    b_objects: Vec::new(),
                };
            }
        };
        let contract = target.contract;
        let mut b_objects = Vec::new();
        for op in &target.operations.list {
            let stored = op
                .store
                .as_deref()
                .is_some_and(|s| layout.is_tenant_table_name(s));
            let Security::Tenant { permission } = &op.security else {
                continue;
            };
            let Some(example) = op.body_example.as_ref() else {
                continue;
            };
            if op.method != "POST" || !stored || op.params.iter().any(|p| p.location == "path") {
                continue;
            }
            let holds = |app: &&String| {
                let Some(grants) = contract.permissions.get(*app) else {
                    return false;
                };
                permission.as_ref().is_none_or(|p| {
                    [op.service.as_str(), ANY_SERVICE]
                        .iter()
                        .any(|s| grants.get(*s).is_some_and(|ps| ps.contains(p)))
                })
            };
            let Some(app) = contract
                .apps
                .iter()
                .filter(|app| !contract.service_identities.contains(app))
                .find(holds)
            else {
                continue;
            };
            for (tenant, is_b) in [(&a, false), (&b, true)] {
                let answer = platform
                    .client(tenant, app)
                    .post(&op.service, &op.path, example)
                    .await;
                if let Ok(answer) = answer {
                    if let (true, Some(Value::String(id))) = (answer.ok(), answer.body.get("id")) {
                        if is_b {
                            b_objects.push(id.clone());
                        }
                    }
                }
            }
        }
        Tenants {
            a: a.id,
            b: b.id,
            b_objects,
        }
    }

    /// What in a result shows tenant B's data: its id and its objects' ids,
    /// less the values the probe itself passed in (`passed`).
    pub(super) fn b_markers(&self, passed: &BTreeSet<String>) -> Vec<String> {
        std::iter::once(&self.b)
            .chain(&self.b_objects)
            .filter(|m| !passed.contains(*m))
            .cloned()
            .collect()
    }
}

/// `name` as an SQL identifier, quoted always (for SQL the sweep runs).
pub(super) fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `name` as an SQL identifier, quoted only when it must be (for the SQL
/// shown in findings).
pub(super) fn shown(name: &str) -> String {
    let plain = name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain {
        name.to_owned()
    } else {
        quoted(name)
    }
}

/// An SQL string literal.
pub(super) fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// How a finding shows behaviour: the transaction the probe ran, as the
/// role with the tenant set, rolled back.
pub(super) fn as_role_sql(role: &str, tenant: Option<&str>, statement: &str) -> String {
    let tenant = tenant.map_or(String::new(), |t| {
        format!(" SELECT set_config('app.tenant_id', {}, true);", literal(t))
    });
    format!(
        "BEGIN; SET LOCAL ROLE {};{tenant} {statement}; ROLLBACK;",
        shown(role)
    )
}
