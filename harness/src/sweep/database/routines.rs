//! Views, materialized views and `SECURITY DEFINER` functions: what could
//! read tenant rows around row-level security (the rules are in the
//! module doc of [`super`]).

use std::collections::BTreeSet;

use sqlx::PgPool;

use super::catalog::Layout;
use super::definer::{reaches_tenant_data, Function};
use super::probe::{count_as, Bind, Outcome, NAMES_A_MARKER};
use super::{as_role_sql, literal, quoted, shown, surface, Tenants};
use crate::env::error_chain;
use crate::sweep::ClassReport;

/// Schemas of Postgres itself, left out of every look-up.
const SYSTEM_SCHEMAS: &str =
    "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'";

fn sql_error(e: sqlx::Error) -> String {
    error_chain(&e)
}

pub(super) async fn check(
    pool: &PgPool,
    layout: &Layout,
    roles: &[String],
    tenants: &Tenants,
    report: &mut ClassReport,
) -> Result<(), String> {
    check_views(pool, layout, roles, tenants, report).await?;
    check_functions(pool, layout, roles, tenants, report).await
}

/// Whether `role` may use `what` (`has_table_privilege(…, 'SELECT')` or
/// `has_function_privilege(…, 'EXECUTE')`) in a schema it may use.
async fn may(pool: &PgPool, role: &str, check: &str, oid: i64) -> Result<bool, String> {
    sqlx::query_scalar(&format!(
        "SELECT {check} AND has_schema_privilege($1::name, ns, 'USAGE')
         FROM (SELECT $2::bigint::oid AS o,
                      coalesce((SELECT relnamespace FROM pg_class WHERE oid = $2::bigint::oid),
                               (SELECT pronamespace FROM pg_proc WHERE oid = $2::bigint::oid)) AS ns) AS x"
    ))
    .bind(role)
    .bind(oid)
    .fetch_one(pool)
    .await
    .map_err(sql_error)
}

/// A view's oid, schema, name, kind (`v`, `m`), options and the relations
/// it reads (through other views too).
type ViewRow = (i64, String, String, String, Vec<String>, Vec<i64>);

/// Every view and materialized view that reads a tenant-data table,
/// directly or through other views.
async fn check_views(
    pool: &PgPool,
    layout: &Layout,
    roles: &[String],
    tenants: &Tenants,
    report: &mut ClassReport,
) -> Result<(), String> {
    let views: Vec<ViewRow> = sqlx::query_as(&format!(
        "WITH RECURSIVE reads (view, rel) AS (
             SELECT r.ev_class, d.refobjid FROM pg_rewrite r
             JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
             WHERE d.refclassid = 'pg_class'::regclass AND d.refobjid <> r.ev_class
           UNION
             SELECT reads.view, d.refobjid FROM reads
             JOIN pg_rewrite r ON r.ev_class = reads.rel
             JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
             WHERE d.refclassid = 'pg_class'::regclass AND d.refobjid <> r.ev_class
         )
         SELECT c.oid::bigint, n.nspname::text, c.relname::text, c.relkind::text,
                coalesce(c.reloptions, '{{}}')::text[],
                coalesce(array_agg(DISTINCT reads.rel::bigint) FILTER (WHERE reads.rel IS NOT NULL), '{{}}')
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         LEFT JOIN reads ON reads.view = c.oid
         WHERE c.relkind IN ('v', 'm') AND {SYSTEM_SCHEMAS}
         GROUP BY 1, 2, 3, 4, 5 ORDER BY 2, 3"
    ))
    .fetch_all(pool)
    .await
    .map_err(sql_error)?;
    for (oid, schema, name, kind, options, reads) in views {
        let read: Vec<String> = layout
            .tenant_tables
            .iter()
            .filter(|t| reads.contains(&t.oid))
            .map(|t| t.label())
            .collect();
        if read.is_empty() {
            continue;
        }
        let label = format!("{}.{}", shown(&schema), shown(&name));
        let materialized = kind == "m";
        let invoker = options.iter().any(|o| is_security_invoker(o));
        report.operations.insert(surface(&label));
        let markers = tenants.b_markers(&BTreeSet::new());
        let sql = format!(
            "SELECT count(*) FROM {}.{} AS r WHERE {NAMES_A_MARKER}",
            quoted(&schema),
            quoted(&name)
        );
        for role in roles {
            report.cases += 1;
            if !may(
                pool,
                role,
                "has_table_privilege($1::name, o, 'SELECT')",
                oid,
            )
            .await?
            {
                continue;
            }
            let leak = count_as(
                pool,
                role,
                Some(&tenants.a),
                &sql,
                &[Bind::TextArray(markers.clone())],
            )
            .await?;
            let shown_sql = as_role_sql(
                role,
                Some(&tenants.a),
                &format!(
                    "SELECT * FROM {label} AS r WHERE r::text LIKE {}",
                    literal(&format!("%{}%", tenants.b))
                ),
            );
            let evidence = match leak {
                Outcome::Count(n @ 1..) => format!("; tried: acting for tenant {}, it returned {n} rows of tenant {}\nSQL: {shown_sql}", tenants.a, tenants.b),
                _ => String::new(),
            };
            let reads = read.join(", ");
            let (title, why) = if materialized {
                (
                    format!("{role} may read the materialized view {label} of tenant data"),
                    format!("a materialized view stores the rows of every tenant it read ({reads}) and row-level security does not apply to it"),
                )
            } else if !invoker {
                (
                    format!("{role} may read the view {label}, which reads tenant data with its owner's rights"),
                    format!("a view without security_invoker reads {reads} as its owner, around the caller's row-level security"),
                )
            } else if !evidence.is_empty() {
                (
                    format!("{role} acting for one tenant sees another tenant's rows through the view {label}"),
                    format!("the view is security_invoker, yet it shows rows of {reads} of another tenant"),
                )
            } else {
                continue;
            };
            report.found(
                surface(&label),
                title,
                format!(
                    "{why}{evidence}\nSQL: SELECT relkind, reloptions FROM pg_class WHERE oid = {}::regclass; \
                     SELECT has_table_privilege({}, {}::regclass, 'SELECT')",
                    literal(&label),
                    literal(role),
                    literal(&label)
                ),
                None,
            );
        }
    }
    Ok(())
}

/// Whether a `reloptions` entry turns `security_invoker` on.
fn is_security_invoker(option: &str) -> bool {
    option.split_once('=').is_some_and(|(k, v)| {
        k.trim().eq_ignore_ascii_case("security_invoker")
            && ["true", "on", "yes", "1"]
                .iter()
                .any(|t| v.trim().eq_ignore_ascii_case(t))
    })
}

type FunctionRow = (
    i64,
    String,
    String,
    String,
    bool,
    String,
    String,
    Vec<String>,
    String,
    String,
    Vec<String>,
    bool,
);

async fn functions(pool: &PgPool, layout: &Layout) -> Result<Vec<Function>, String> {
    let tenant_oids: Vec<i64> = layout.tenant_tables.iter().map(|t| t.oid).collect();
    let rows: Vec<FunctionRow> = sqlx::query_as(&format!(
        "SELECT p.oid::bigint, n.nspname::text, p.proname::text, l.lanname::text, p.prosecdef,
                p.prokind::text, coalesce(p.prosrc, ''), coalesce(p.proconfig, '{{}}')::text[],
                o.rolname::text, pg_get_function_identity_arguments(p.oid),
                array(SELECT format_type(a.t, NULL) FROM unnest(p.proargtypes::oid[]) WITH ORDINALITY AS a (t, i) ORDER BY a.i),
                o.rolsuper OR o.rolbypassrls OR EXISTS (
                    SELECT 1 FROM pg_class t WHERE t.oid::bigint = ANY($1) AND pg_has_role(p.proowner, t.relowner, 'MEMBER'))
         FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
         JOIN pg_language l ON l.oid = p.prolang JOIN pg_roles o ON o.oid = p.proowner
         WHERE {SYSTEM_SCHEMAS} ORDER BY 2, 3, 10"
    ))
    .bind(&tenant_oids)
    .fetch_all(pool)
    .await
    .map_err(sql_error)?;
    Ok(rows
        .into_iter()
        .map(|r| Function {
            oid: r.0,
            schema: r.1,
            name: r.2,
            language: r.3,
            definer: r.4,
            kind: r.5,
            body: r.6,
            config: r.7,
            owner: r.8,
            signature: r.9,
            arg_types: r.10,
            owner_bypasses: r.11,
        })
        .collect())
}

/// Every `SECURITY DEFINER` function a role may execute: the rule, then
/// the call.
async fn check_functions(
    pool: &PgPool,
    layout: &Layout,
    roles: &[String],
    tenants: &Tenants,
    report: &mut ClassReport,
) -> Result<(), String> {
    let all = functions(pool, layout).await?;
    let user_schemas: BTreeSet<String> = sqlx::query_scalar::<_, String>(&format!(
        "SELECT n.nspname::text FROM pg_namespace n WHERE {SYSTEM_SCHEMAS}"
    ))
    .fetch_all(pool)
    .await
    .map_err(sql_error)?
    .into_iter()
    .collect();
    for f in all.iter().filter(|f| f.definer) {
        let label = format!("{}.{}({})", shown(&f.schema), shown(&f.name), f.signature);
        let mut executable_by = Vec::new();
        for role in roles {
            report.cases += 1;
            if may(
                pool,
                role,
                "has_function_privilege($1::name, o, 'EXECUTE')",
                f.oid,
            )
            .await?
            {
                executable_by.push(role.as_str());
            }
        }
        if executable_by.is_empty() {
            continue;
        }
        report
            .operations
            .insert(surface(&format!("function {label}")));
        let verdict = if f.owner_bypasses {
            reaches_tenant_data(f, &all, &user_schemas, &layout.tenant_schemas).err()
        } else {
            None
        };
        let rule_sql = format!(
            "SELECT prosecdef, proowner::regrole, proconfig, prosrc FROM pg_proc WHERE oid = {}::regprocedure",
            literal(&format!("{}.{}({})", shown(&f.schema), shown(&f.name), f.arg_types.join(", ")))
        );
        if let Some(reason) = &verdict {
            report.found(
                surface(&format!("function {label}")),
                format!("{} may execute the SECURITY DEFINER function {label}, which can read tenant data around row-level security", executable_by.join(", ")),
                format!(
                    "its owner {} bypasses row-level security, and {reason}\nSQL: {rule_sql}",
                    f.owner
                ),
                None,
            );
        }
        if f.kind != "f" {
            continue;
        }
        for role in &executable_by {
            report.cases += 1;
            let (call, shown_call, passed, mut binds) = call_with_b(f, tenants);
            let markers = tenants.b_markers(&passed);
            binds.insert(0, Bind::TextArray(markers));
            let sql = format!("SELECT count(*) FROM {call} AS r WHERE {NAMES_A_MARKER}");
            if let Outcome::Count(n @ 1..) =
                count_as(pool, role, Some(&tenants.a), &sql, &binds).await?
            {
                report.found(
                    surface(&format!("function {label}")),
                    format!("{role} acting for one tenant gets another tenant's rows from {label}"),
                    format!(
                        "called for tenant {} with tenant {}'s ids, it returned {n} rows naming tenant {}\nSQL: {}",
                        tenants.a,
                        tenants.b,
                        tenants.b,
                        as_role_sql(role, Some(&tenants.a), &format!("SELECT * FROM {shown_call}"))
                    ),
                    None,
                );
            }
        }
    }
    Ok(())
}

/// The call of `f` with tenant B's ids where its arguments take them (text:
/// B's id; uuid: B's first object), NULL elsewhere: the SQL run (binds
/// from `$2`), the SQL shown, the values passed, and the binds.
fn call_with_b(f: &Function, tenants: &Tenants) -> (String, String, BTreeSet<String>, Vec<Bind>) {
    let (mut run, mut show, mut passed, mut binds) =
        (Vec::new(), Vec::new(), BTreeSet::new(), Vec::new());
    let object = tenants
        .b_objects
        .iter()
        .find(|o| uuid::Uuid::parse_str(o).is_ok());
    for ty in &f.arg_types {
        let value = match ty.as_str() {
            "text" | "character varying" | "name" => {
                Some((Bind::Text(tenants.b.clone()), tenants.b.clone(), false))
            }
            "text[]" | "character varying[]" => Some((
                Bind::TextArray(vec![tenants.b.clone()]),
                tenants.b.clone(),
                true,
            )),
            "uuid" => object.map(|o| (Bind::Text(o.clone()), o.clone(), false)),
            "uuid[]" => object.map(|o| (Bind::TextArray(vec![o.clone()]), o.clone(), true)),
            _ => None,
        };
        match value {
            Some((bind, text, array)) => {
                binds.push(bind);
                let n = binds.len() + 1;
                let base = if array { "text[]" } else { "text" };
                run.push(format!("${n}::{base}::{ty}"));
                show.push(if array {
                    format!("ARRAY[{}]::{ty}", literal(&text))
                } else {
                    format!("{}::{ty}", literal(&text))
                });
                passed.insert(text);
            }
            None => {
                run.push(format!("NULL::{ty}"));
                show.push(format!("NULL::{ty}"));
            }
        }
    }
    let run = format!(
        "{}.{}({})",
        quoted(&f.schema),
        quoted(&f.name),
        run.join(", ")
    );
    let show = format!(
        "{}.{}({})",
        shown(&f.schema),
        shown(&f.name),
        show.join(", ")
    );
    (run, show, passed, binds)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sweep::database::definer::test_function as function;

    #[test]
    fn security_invoker_is_read_from_reloptions() {
        assert!(is_security_invoker("security_invoker=true"));
        assert!(is_security_invoker("security_invoker=on"));
        assert!(!is_security_invoker("security_invoker=false"));
        assert!(!is_security_invoker("security_barrier=true"));
    }

    #[test]
    fn a_call_passes_b_ids_where_the_arguments_take_them() {
        let mut f = function(1, "flow", "lead", "", &[]);
        f.arg_types = vec!["uuid".into(), "integer".into(), "text[]".into()];
        let tenants = Tenants {
            a: "a".into(),
            b: "b-1".into(),
            b_objects: vec!["0b6f0c1e-2c55-4a8e-9d1a-0b8f4a9b8c7d".into()],
        };
        let (run, show, passed, binds) = call_with_b(&f, &tenants);
        assert_eq!(
            run,
            "\"flow\".\"lead\"($2::text::uuid, NULL::integer, $3::text[]::text[])"
        );
        assert_eq!(
            show,
            "flow.lead('0b6f0c1e-2c55-4a8e-9d1a-0b8f4a9b8c7d'::uuid, NULL::integer, ARRAY['b-1']::text[])"
        );
        assert_eq!(binds.len(), 2);
        assert!(
            tenants.b_markers(&passed).is_empty(),
            "what was passed in is no evidence"
        );
    }
}
