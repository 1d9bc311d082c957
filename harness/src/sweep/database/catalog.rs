//! What the catalog says: the tenant-data tables and their row-level
//! security, the services' roles, their attributes, ownerships and
//! privileges on the identity tables.

use std::collections::BTreeSet;

use sqlx::PgPool;

use super::{literal, quoted, shown, surface};
use crate::contract::Stores;
use crate::env::error_chain;
use crate::sweep::ClassReport;

fn sql_error(e: sqlx::Error) -> String {
    error_chain(&e)
}

/// A table of the tenant schemas.
#[derive(Debug, Clone)]
pub(super) struct Table {
    pub oid: i64,
    pub schema: String,
    pub name: String,
    pub rls: bool,
    pub forced: bool,
    pub policies: i64,
    pub has_tenant_id: bool,
    pub in_contract: bool,
}

impl Table {
    /// `flow.leads`, as findings show it.
    pub(super) fn label(&self) -> String {
        format!("{}.{}", shown(&self.schema), shown(&self.name))
    }

    /// `"flow"."leads"`, for the SQL the sweep runs.
    pub(super) fn sql(&self) -> String {
        format!("{}.{}", quoted(&self.schema), quoted(&self.name))
    }
}

/// The tenant-data tables and the schemas the class looks into.
#[derive(Debug)]
pub(super) struct Layout {
    /// The contract's tenant tables that exist, and every other table of
    /// their schemas with a `tenant_id` column.
    pub tenant_tables: Vec<Table>,
    /// The schemas holding a tenant-data table.
    pub tenant_schemas: BTreeSet<String>,
    /// The tenant schemas and those of the identity tables.
    pub checked_schemas: BTreeSet<String>,
    /// The contract's identity tables, `(schema, name)`.
    pub identity_tables: Vec<(String, String)>,
    contract_tenant_tables: BTreeSet<(String, String)>,
}

/// `schema.table` of the contract, or a finding saying it is not one.
fn split(entry: &str, key: &str, report: &mut ClassReport) -> Option<(String, String)> {
    match entry.split_once('.') {
        Some((schema, table)) if !schema.is_empty() && !table.is_empty() => {
            Some((schema.to_owned(), table.to_owned()))
        }
        _ => {
            report.found(
                "database",
                format!("`{entry}` of the contract's stores.{key} is not `schema.table`"),
                format!("fixtures/platform.yaml, stores.{key}: write each table as `schema.table` (e.g. flow.leads)"),
                None,
            );
            None
        }
    }
}

impl Layout {
    /// Reads the tables of the schemas the contract's stores name; a
    /// contract table that does not exist is a finding.
    pub(super) async fn read(
        pool: &PgPool,
        stores: &Stores,
        report: &mut ClassReport,
    ) -> Result<Layout, String> {
        let contract: BTreeSet<(String, String)> = stores
            .tenant_tables
            .iter()
            .filter_map(|t| split(t, "tenant-tables", report))
            .collect();
        let identity_tables: Vec<(String, String)> = stores
            .identity_tables
            .iter()
            .filter_map(|t| split(t, "identity-tables", report))
            .collect();
        let schemas: Vec<String> = contract
            .iter()
            .map(|(s, _)| s.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let rows: Vec<(i64, String, String, bool, bool, i64, bool)> = sqlx::query_as(
            "SELECT c.oid::bigint, n.nspname::text, c.relname::text, c.relrowsecurity,
                    c.relforcerowsecurity,
                    (SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid),
                    EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid
                            AND a.attname = 'tenant_id' AND a.attnum > 0 AND NOT a.attisdropped)
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relkind IN ('r', 'p') AND n.nspname = ANY($1)
             ORDER BY 2, 3",
        )
        .bind(&schemas)
        .fetch_all(pool)
        .await
        .map_err(sql_error)?;
        let mut tenant_tables = Vec::new();
        for (oid, schema, name, rls, forced, policies, has_tenant_id) in rows {
            let in_contract = contract.contains(&(schema.clone(), name.clone()));
            if in_contract || has_tenant_id {
                tenant_tables.push(Table {
                    oid,
                    schema,
                    name,
                    rls,
                    forced,
                    policies,
                    has_tenant_id,
                    in_contract,
                });
            }
        }
        for (schema, name) in &contract {
            report.cases += 1;
            let exists = tenant_tables
                .iter()
                .any(|t| &t.schema == schema && &t.name == name);
            if !exists {
                let label = format!("{}.{}", shown(schema), shown(name));
                report.found(
                    surface(&label),
                    format!("the contract's tenant table {label} does not exist"),
                    format!(
                        "stores.tenant-tables names it, but there is no such table\n\
                         SQL: SELECT to_regclass({})",
                        literal(&label)
                    ),
                    None,
                );
            }
        }
        let tenant_schemas: BTreeSet<String> =
            tenant_tables.iter().map(|t| t.schema.clone()).collect();
        let mut checked_schemas = tenant_schemas.clone();
        checked_schemas.extend(schemas);
        checked_schemas.extend(identity_tables.iter().map(|(s, _)| s.clone()));
        Ok(Layout {
            tenant_tables,
            tenant_schemas,
            checked_schemas,
            identity_tables,
            contract_tenant_tables: contract,
        })
    }

    /// Whether `schema.table` (as an `x-tekup-store` names it) is a tenant-data table.
    pub(super) fn is_tenant_table_name(&self, name: &str) -> bool {
        name.split_once('.').is_some_and(|(s, t)| {
            self.contract_tenant_tables
                .contains(&(s.to_owned(), t.to_owned()))
                || self
                    .tenant_tables
                    .iter()
                    .any(|x| x.schema == s && x.name == t)
        })
    }

    /// Row-level security on, forced and with a policy, on every
    /// tenant-data table; none outside the contract.
    pub(super) fn check_tables(&self, report: &mut ClassReport) {
        for t in &self.tenant_tables {
            let label = t.label();
            report.operations.insert(surface(&label));
            report.cases += 3;
            if !t.in_contract {
                report.found(
                    surface(&label),
                    format!("{label} holds tenant data (a tenant_id column) but is not one of the contract's tenant tables"),
                    format!(
                        "every table with tenant_id in a tenant schema is tenant data; list it in stores.tenant-tables \
                         (or give the column another name if it is not)\n\
                         SQL: SELECT attname FROM pg_attribute WHERE attrelid = {}::regclass AND attname = 'tenant_id'",
                        literal(&label)
                    ),
                    None,
                );
            }
            if !(t.rls && t.forced) {
                let what = if t.rls {
                    "row-level security is enabled but not forced (the table's owner bypasses it)"
                } else {
                    "row-level security is off"
                };
                report.found(
                    surface(&label),
                    format!("{what} on {label}"),
                    format!(
                        "expected relrowsecurity and relforcerowsecurity true, got {} and {}\n\
                         SQL: SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = {}::regclass",
                        t.rls,
                        t.forced,
                        literal(&label)
                    ),
                    None,
                );
            }
            if t.policies == 0 {
                report.found(
                    surface(&label),
                    format!("{label} has no row-level security policy"),
                    format!(
                        "expected a policy keeping each tenant to its rows, got none\n\
                         SQL: SELECT polname FROM pg_policy WHERE polrelid = {}::regclass",
                        literal(&label)
                    ),
                    None,
                );
            }
        }
    }
}

/// The contract's service role and every login role that is a member of
/// it (directly or through other roles); a missing service role is a
/// finding, and then there is no role to try.
pub(super) async fn roles(
    pool: &PgPool,
    service_role: &str,
    report: &mut ClassReport,
) -> Result<Vec<String>, String> {
    let roles: Vec<String> = sqlx::query_scalar(
        "WITH RECURSIVE members(oid) AS (
             SELECT m.member FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
             WHERE g.rolname = $1
           UNION
             SELECT m.member FROM pg_auth_members m JOIN members s ON m.roleid = s.oid
         )
         SELECT r.rolname::text FROM pg_roles r
         WHERE r.rolname = $1 OR (r.rolcanlogin AND r.oid IN (SELECT oid FROM members))
         ORDER BY r.rolname <> $1, r.rolname",
    )
    .bind(service_role)
    .fetch_all(pool)
    .await
    .map_err(sql_error)?;
    report.cases += 1;
    if roles.first().map(String::as_str) != Some(service_role) {
        report.found(
            surface(&format!("role {service_role}")),
            format!("the contract's service role {service_role} does not exist"),
            format!(
                "stores.service-role names it; without it nothing the services' roles may do can be checked\n\
                 SQL: SELECT rolname FROM pg_roles WHERE rolname = {}",
                literal(service_role)
            ),
            None,
        );
        return Ok(Vec::new());
    }
    Ok(roles)
}

/// Privileges on an identity table that write it (INSERT and UPDATE also
/// when granted on a single column).
const WRITES: [&str; 5] = ["INSERT", "UPDATE", "DELETE", "TRUNCATE", "TRIGGER"];

/// Role attributes that lift a role above row-level security or the
/// platform's own administration.
const POWERS: [&str; 4] = ["SUPERUSER", "BYPASSRLS", "CREATEROLE", "CREATEDB"];

/// The attributes of every role `role` can act as, its ownerships in the
/// checked schemas, and its writes on the identity tables.
pub(super) async fn check_role(
    pool: &PgPool,
    layout: &Layout,
    role: &str,
    report: &mut ClassReport,
) -> Result<(), String> {
    let surface_role = surface(&format!("role {role}"));
    let acts_as: Vec<(String, bool, bool, bool, bool)> = sqlx::query_as(
        "SELECT x.rolname::text, x.rolsuper, x.rolbypassrls, x.rolcreaterole, x.rolcreatedb
         FROM pg_roles x WHERE pg_has_role($1::name, x.oid, 'MEMBER') ORDER BY x.rolname <> $1, x.rolname",
    )
    .bind(role)
    .fetch_all(pool)
    .await
    .map_err(sql_error)?;
    let mut superuser = false;
    report.cases += POWERS.len();
    for (other, is_super, bypass, create_role, create_db) in acts_as {
        superuser |= is_super;
        let held = [is_super, bypass, create_role, create_db];
        for (power, _) in POWERS.iter().zip(held).filter(|(_, on)| *on) {
            let who = if other == role {
                format!("{role} has {power}")
            } else {
                format!("{role} can act as {other}, which has {power}")
            };
            report.found(
                surface_role.clone(),
                who,
                format!(
                    "the services' roles must be NOSUPERUSER NOBYPASSRLS NOCREATEROLE NOCREATEDB, \
                     also in every role they are members of\n\
                     SQL: SELECT rolname, rolsuper, rolbypassrls, rolcreaterole, rolcreatedb FROM pg_roles \
                     WHERE pg_has_role({}, oid, 'MEMBER')",
                    literal(role)
                ),
                None,
            );
        }
    }
    if !superuser {
        check_ownership(pool, layout, role, &surface_role, report).await?;
    }
    for (schema, name) in &layout.identity_tables {
        check_identity_writes(pool, role, schema, name, report).await?;
    }
    Ok(())
}

async fn check_ownership(
    pool: &PgPool,
    layout: &Layout,
    role: &str,
    surface_role: &str,
    report: &mut ClassReport,
) -> Result<(), String> {
    let schemas: Vec<String> = layout.checked_schemas.iter().cloned().collect();
    let owned: Vec<(String, String, bool)> = sqlx::query_as(
        "SELECT n.nspname::text, c.relname::text, pg_has_role($1::name, c.relowner, 'MEMBER')
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = ANY($2) AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
         UNION ALL
         SELECT n.nspname::text, '', pg_has_role($1::name, n.nspowner, 'MEMBER')
         FROM pg_namespace n WHERE n.nspname = ANY($2)
         ORDER BY 1, 2",
    )
    .bind(role)
    .bind(&schemas)
    .fetch_all(pool)
    .await
    .map_err(sql_error)?;
    report.cases += owned.len();
    for (schema, name, is_owner) in owned.into_iter().filter(|o| o.2) {
        let (what, sql) = if name.is_empty() {
            (
                format!("the schema {}", shown(&schema)),
                format!(
                    "SELECT nspowner::regrole FROM pg_namespace WHERE nspname = {}",
                    literal(&schema)
                ),
            )
        } else {
            let label = format!("{}.{}", shown(&schema), shown(&name));
            (
                label.clone(),
                format!(
                    "SELECT relowner::regrole FROM pg_class WHERE oid = {}::regclass",
                    literal(&label)
                ),
            )
        };
        debug_assert!(is_owner);
        report.found(
            surface_role.to_owned(),
            format!("{role} owns {what}"),
            format!(
                "the services' roles must own nothing of the tenant and identity schemas: an owner may \
                 turn row-level security off, change grants and drop the object\nSQL: {sql}"
            ),
            None,
        );
    }
    Ok(())
}

async fn check_identity_writes(
    pool: &PgPool,
    role: &str,
    schema: &str,
    name: &str,
    report: &mut ClassReport,
) -> Result<(), String> {
    let label = format!("{}.{}", shown(schema), shown(name));
    let target = format!("{}.{}", quoted(schema), quoted(name));
    report.operations.insert(surface(&label));
    let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(&target)
        .fetch_one(pool)
        .await
        .map_err(sql_error)?;
    report.cases += 1;
    if !exists {
        report.found(
            surface(&label),
            format!("the contract's identity table {label} does not exist"),
            format!(
                "stores.identity-tables names it, but there is no such table\nSQL: SELECT to_regclass({})",
                literal(&label)
            ),
            None,
        );
        return Ok(());
    }
    let granted: Vec<(String, bool)> = sqlx::query_as(
        "SELECT p.privilege,
                CASE WHEN p.privilege IN ('INSERT', 'UPDATE')
                     THEN has_any_column_privilege($1::name, to_regclass($2), p.privilege)
                     ELSE has_table_privilege($1::name, to_regclass($2), p.privilege) END
         FROM unnest($3::text[]) AS p (privilege)",
    )
    .bind(role)
    .bind(&target)
    .bind(WRITES.map(str::to_owned).to_vec())
    .fetch_all(pool)
    .await
    .map_err(sql_error)?;
    report.cases += granted.len();
    for (privilege, _) in granted.into_iter().filter(|g| g.1) {
        let function = if matches!(privilege.as_str(), "INSERT" | "UPDATE") {
            "has_any_column_privilege"
        } else {
            "has_table_privilege"
        };
        report.found(
            surface(&label),
            format!("{role} has {privilege} on the identity table {label}"),
            format!(
                "the services' roles may write no identity table (tenants, keys, grants): a role that may \
                 could issue itself a key of any tenant\n\
                 SQL: SELECT {function}({}, {}, {})",
                literal(role),
                literal(&label),
                literal(&privilege)
            ),
            None,
        );
    }
    Ok(())
}
