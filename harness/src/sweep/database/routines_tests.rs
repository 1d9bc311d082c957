use std::collections::BTreeSet;

use super::*;

fn function(oid: i64, schema: &str, name: &str, body: &str, config: &[&str]) -> Function {
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
