//! The rule a `SECURITY DEFINER` function the services' roles may execute
//! is held to (see the module doc of [`super`]): read from its text, its
//! pinned `search_path` and, transitively, the functions of the schemas it
//! reaches.

use std::collections::BTreeSet;

/// Built-ins that run SQL or read a table named in a string.
const DYNAMIC_BUILTINS: [&str; 6] = [
    "query_to_xml",
    "table_to_xml",
    "cursor_to_xml",
    "schema_to_xml",
    "database_to_xml",
    "dblink",
];

/// A function of a user schema, as the rule reads it.
#[derive(Debug, Clone)]
pub(super) struct Function {
    pub oid: i64,
    pub schema: String,
    pub name: String,
    pub language: String,
    pub definer: bool,
    /// `f` function, `p` procedure, `a` aggregate, `w` window.
    pub kind: String,
    pub body: String,
    /// `search_path=…` and the like (`proconfig`).
    pub config: Vec<String>,
    pub owner: String,
    /// Identity arguments, as `pg_get_function_identity_arguments` writes them.
    pub signature: String,
    /// Each argument's type, as `format_type` writes it.
    pub arg_types: Vec<String>,
    /// The owner is superuser, has `BYPASSRLS`, or owns a tenant-data table.
    pub owner_bypasses: bool,
}

/// `Ok` when `f` cannot reach a schema holding tenant data (the rule of
/// the module doc of [`super`]); otherwise why it can.
pub(super) fn reaches_tenant_data(
    f: &Function,
    all: &[Function],
    user_schemas: &BTreeSet<String>,
    tenant_schemas: &BTreeSet<String>,
) -> Result<(), String> {
    let Some(path) = pinned_path(f) else {
        return Err(
            "its search_path is not pinned (the caller's path decides what its names mean)".into(),
        );
    };
    let mut reached: BTreeSet<String> = path
        .into_iter()
        .filter(|s| user_schemas.contains(s))
        .collect();
    reached.extend(named_schemas(&f.body, user_schemas));
    let mut seen = BTreeSet::from([f.oid]);
    let mut through = vec![format!("{}.{}", f.schema, f.name)];
    if let Some(why) = dynamic(f) {
        return Err(why);
    }
    loop {
        if let Some(s) = reached.iter().find(|s| tenant_schemas.contains(*s)) {
            return Err(format!(
                "it reaches the schema {s}, which holds tenant data (by name or search_path, through {})",
                through.join(" → ")
            ));
        }
        let Some(g) = all
            .iter()
            .find(|g| !seen.contains(&g.oid) && reached.contains(&g.schema))
        else {
            return Ok(());
        };
        seen.insert(g.oid);
        through.push(format!("{}.{}", g.schema, g.name));
        if let Some(why) = dynamic(g) {
            return Err(format!("it reaches {}.{}, where {why}", g.schema, g.name));
        }
        reached.extend(
            pinned_path(g)
                .unwrap_or_default()
                .into_iter()
                .filter(|s| user_schemas.contains(s)),
        );
        reached.extend(named_schemas(&g.body, user_schemas));
    }
}

/// The schemas of a pinned `search_path` (`"$user"` is the owner's name).
fn pinned_path(f: &Function) -> Option<Vec<String>> {
    let value = f.config.iter().find_map(|c| {
        let (k, v) = c.split_once('=')?;
        k.trim().eq_ignore_ascii_case("search_path").then_some(v)
    })?;
    Some(
        value
            .split(',')
            .map(|s| {
                let s = s.trim();
                let s = s
                    .strip_prefix('"')
                    .and_then(|s| s.strip_suffix('"'))
                    .unwrap_or(s);
                if s == "$user" {
                    f.owner.clone()
                } else {
                    s.to_owned()
                }
            })
            .filter(|s| !s.is_empty())
            .collect(),
    )
}

/// Why `f`'s body runs SQL its text does not show, if it may.
fn dynamic(f: &Function) -> Option<String> {
    if !matches!(f.language.as_str(), "sql" | "plpgsql") {
        return Some(format!(
            "its body is in {} (only sql and plpgsql can be read)",
            f.language
        ));
    }
    let words = words(&f.body);
    if f.language == "plpgsql" && words.iter().any(|w| w == "execute") {
        return Some("its body runs dynamic SQL (EXECUTE)".into());
    }
    words
        .iter()
        .find(|w| DYNAMIC_BUILTINS.iter().any(|b| w.starts_with(b)))
        .map(|w| format!("its body calls {w}, which runs SQL given as text"))
}

/// The lower-cased words of `text` (identifier characters).
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$'))
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// The user schemas `body` names as a qualifier (`flow.leads`, `"flow".leads`).
fn named_schemas(body: &str, user_schemas: &BTreeSet<String>) -> BTreeSet<String> {
    let lower = body.to_lowercase();
    let bytes = lower.as_bytes();
    let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80;
    user_schemas
        .iter()
        .filter(|schema| {
            let s = schema.to_lowercase();
            lower.match_indices(&s).any(|(at, _)| {
                let before = at.checked_sub(1).map(|i| bytes[i]);
                let rest = lower[at + s.len()..].trim_start_matches('"').trim_start();
                !before.is_some_and(ident) && rest.starts_with('.')
            })
        })
        .cloned()
        .collect()
}

/// A `SECURITY DEFINER` plpgsql function owned by a role that bypasses
/// row-level security, for the tests of the rule and of the probes.
#[cfg(test)]
pub(super) fn test_function(
    oid: i64,
    schema: &str,
    name: &str,
    body: &str,
    config: &[&str],
) -> Function {
    Function {
        oid,
        schema: schema.into(),
        name: name.into(),
        language: "plpgsql".into(),
        definer: true,
        kind: "f".into(),
        body: body.into(),
        config: config.iter().map(|c| (*c).to_owned()).collect(),
        owner: "postgres".into(),
        signature: String::new(),
        arg_types: Vec::new(),
        owner_bypasses: true,
    }
}

#[cfg(test)]
mod tests {
    use super::test_function as function;
    use super::*;

    fn schemas(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| (*s).to_owned()).collect()
    }

    fn verdict(f: &Function, all: &[Function]) -> Result<(), String> {
        reaches_tenant_data(
            f,
            all,
            &schemas(&["auth", "flow", "crm", "util", "public"]),
            &schemas(&["flow", "crm"]),
        )
    }

    fn alone(f: &Function) -> Result<(), String> {
        verdict(f, std::slice::from_ref(f))
    }

    #[test]
    fn a_pinned_function_writing_only_auth_is_accepted() {
        let f = function(
            1,
            "auth",
            "create_tenant",
            "BEGIN INSERT INTO auth.tenants (id) VALUES (p_id); INSERT INTO \"auth\".api_keys (tenant_id) VALUES (p_id); END",
            &["search_path=pg_catalog, pg_temp"],
        );
        assert_eq!(alone(&f), Ok(()));
    }

    #[test]
    fn an_unpinned_search_path_is_refused() {
        let f = function(1, "auth", "f", "SELECT 1", &[]);
        let why = alone(&f).unwrap_err();
        assert!(why.contains("search_path is not pinned"), "{why}");
    }

    #[test]
    fn a_tenant_schema_by_name_or_path_is_refused() {
        let named = function(
            1,
            "auth",
            "f",
            "SELECT * FROM Flow.leads",
            &["search_path=pg_catalog"],
        );
        let why = alone(&named).unwrap_err();
        assert!(why.contains("schema flow"), "{why}");
        let quoted = function(
            1,
            "auth",
            "f",
            "SELECT * FROM \"crm\" . deals",
            &["search_path=pg_catalog"],
        );
        assert!(alone(&quoted).is_err());
        let on_path = function(
            1,
            "auth",
            "f",
            "SELECT * FROM leads",
            &["search_path=\"flow\", pg_temp"],
        );
        assert!(alone(&on_path).is_err());
    }

    #[test]
    fn a_word_that_only_contains_a_schema_name_is_not_a_reference() {
        let f = function(
            1,
            "auth",
            "f",
            "SELECT overflow.x, flows.y FROM auth.t",
            &["search_path=pg_catalog"],
        );
        assert_eq!(alone(&f), Ok(()));
    }

    #[test]
    fn a_helper_reaching_tenant_data_is_followed() {
        let f = function(
            1,
            "auth",
            "f",
            "SELECT util.helper()",
            &["search_path=pg_catalog"],
        );
        let helper = function(
            2,
            "util",
            "helper",
            "SELECT count(*) FROM leads",
            &["search_path=flow"],
        );
        let why = verdict(&f, &[f.clone(), helper.clone()]).unwrap_err();
        assert!(why.contains("util.helper"), "{why}");
        let innocent = function(2, "util", "helper", "SELECT 1", &[]);
        assert_eq!(verdict(&f, &[f.clone(), innocent]), Ok(()));
    }

    #[test]
    fn dynamic_sql_and_other_languages_are_refused() {
        let f = function(
            1,
            "auth",
            "f",
            "BEGIN EXECUTE 'SELECT 1'; END",
            &["search_path=pg_catalog"],
        );
        assert!(alone(&f).unwrap_err().contains("EXECUTE"));
        let mut xml = function(
            1,
            "auth",
            "f",
            "SELECT query_to_xml('x', true, true, '')",
            &["search_path=pg_catalog"],
        );
        xml.language = "sql".into();
        assert!(alone(&xml).unwrap_err().contains("query_to_xml"));
        let mut c = function(1, "auth", "f", "f_impl", &["search_path=pg_catalog"]);
        c.language = "c".into();
        assert!(alone(&c).unwrap_err().contains("in c"));
    }
}
