//! Data-driven scenario files (`examples:`, `matrix:`) and `skip-if:`:
//! what a file expands to, and the exact `file:line:col` of each mistake.

use std::path::Path;

use tekup_harness::scenario::{parse_file, parse_str, Need, Scenario, StepKind};

fn parse(text: &str) -> Scenario {
    parse_str(Path::new("s.yaml"), text).unwrap_or_else(|e| panic!("{e}"))
}

fn errors(text: &str) -> String {
    parse_str(Path::new("s.yaml"), text)
        .expect_err("the file is invalid")
        .to_string()
}

fn http(s: &Scenario) -> &tekup_harness::scenario::HttpStep {
    match &s.steps[0].kind {
        StepKind::Http(h) => h,
        other => panic!("not http: {other:?}"),
    }
}

const STEP: &str = "steps:\n  - http: { service: \"${svc}\", tenant: acme, app: \"${app}\", request: { method: GET, path: /x }, expect: { status: \"${status}\" } }\n";

#[test]
fn examples_make_one_case_per_row_named_by_its_values_or_label() {
    let s = parse(&format!(
        "name: perms\ntenants: [acme]\nexamples:\n\
         \x20 - {{ app: crm-web, svc: crm-api, status: 200 }}\n\
         \x20 - {{ label: flow-refused, app: flow-web, svc: crm-api, status: 403 }}\n{STEP}"
    ));
    let cases = s.cases();
    let names: Vec<&str> = cases.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "perms[app=crm-web,svc=crm-api,status=200]",
            "perms[flow-refused]"
        ]
    );
    assert_eq!(s.name, "perms", "the file keeps its own name");
    let (first, second) = (http(&cases[0]), http(&cases[1]));
    assert_eq!(first.app.as_deref(), Some("crm-web"));
    assert_eq!(second.app.as_deref(), Some("flow-web"));
    // `"${status}"` alone takes the row's value with its type: a number.
    assert_eq!(second.expect.as_ref().and_then(|e| e.status), Some(403));
    assert!(cases.iter().all(|c| c.cases.is_empty()));
}

#[test]
fn a_plain_file_is_its_own_single_case() {
    let s = parse("name: plain\nsteps:\n  - sleep: 1s\n");
    assert!(s.cases.is_empty());
    assert_eq!(s.cases().len(), 1);
    assert_eq!(s.cases()[0].name, "plain");
}

#[test]
fn a_matrix_is_the_product_of_its_lists_first_key_slowest() {
    let s = parse(
        "name: m\ntenants: [acme]\nmatrix:\n  app: [crm-web, flow-web]\n  verb: [GET, POST, DELETE]\n\
         steps:\n  - http: { service: crm-api, tenant: acme, app: \"${app}\", request: { method: \"${verb}\", path: /contacts } }\n",
    );
    let names: Vec<String> = s.cases().into_iter().map(|c| c.name).collect();
    assert_eq!(names.len(), 6);
    assert_eq!(names[0], "m[app=crm-web,verb=GET]");
    assert_eq!(names[2], "m[app=crm-web,verb=DELETE]");
    assert_eq!(names[5], "m[app=flow-web,verb=DELETE]");
    assert_eq!(http(&s.cases()[4]).request.method, "POST");
}

#[test]
fn row_values_are_put_into_other_references_such_as_a_minted_token() {
    let s = parse(
        "name: tok\ntenants: [acme]\nexamples:\n  - { iss: flow-api, scope: read:contacts }\n  - { iss: worker, scope: \"read:contacts write:contacts\" }\n\
         steps:\n  - http:\n      service: crm-api\n      request:\n        method: GET\n        path: /contacts\n\
         \x20       headers: { authorization: \"Bearer ${cross-app-token:iss=${iss},aud=crm-api,sub=acme,scope=${scope}}\", x-source-app: \"${iss}\", literal: \"$${iss}\" }\n",
    );
    let cases = s.cases();
    let headers = &http(&cases[1]).request.headers;
    assert_eq!(
        headers["authorization"],
        "Bearer ${cross-app-token:iss=worker,aud=crm-api,sub=acme,scope=read:contacts write:contacts}"
    );
    assert_eq!(headers["x-source-app"], "worker");
    assert_eq!(headers["literal"], "$${iss}", "`$${{` stays a literal");
}

#[test]
fn included_steps_get_the_rows_values_too() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("read.steps.yaml"),
        "steps:\n  - http: { service: crm-api, request: { method: GET, path: \"/${what}\" } }\n",
    )
    .expect("write");
    let main = dir.path().join("main.yaml");
    std::fs::write(
        &main,
        "name: inc\nmatrix: { what: [contacts, deals] }\ninclude: [read.steps.yaml]\nsteps:\n  - sleep: 1ms\n",
    )
    .expect("write");
    let s = parse_file(&main).expect("valid");
    let paths: Vec<String> = s
        .cases()
        .iter()
        .map(|c| match &c.include[0].steps[0].kind {
            StepKind::Http(h) => h.request.path.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(paths, ["/contacts", "/deals"]);
}

#[test]
fn rows_with_different_keys_are_refused_at_the_row() {
    assert_eq!(
        errors(&format!(
            "name: x\ntenants: [acme]\nexamples:\n  - {{ app: a, svc: s, status: 200 }}\n  - {{ app: b, status: 403, extra: 1 }}\n{STEP}"
        )),
        "s.yaml:5:5: this row of `examples` lacks `svc` and has `extra` the first row has not\n  \
         hint: every row has the same keys (`label` aside): app, svc, status"
    );
}

#[test]
fn a_reference_no_row_defines_is_refused_where_it_is_used() {
    let e = errors(
        "name: x\nexamples:\n  - { app: a }\nsteps:\n  - http: { service: \"${svc}\", app: \"${app}\", request: { method: GET, path: / } }\n",
    );
    assert!(
        e.starts_with("s.yaml:5:22: `${svc}` is not defined here"),
        "{e}"
    );
}

#[test]
fn a_problem_only_some_rows_make_names_the_case() {
    let e = errors("name: x\nmatrix: { wait: [1s, soon] }\nsteps:\n  - sleep: \"${wait}\"\n");
    assert!(
        e.starts_with("s.yaml:4:12: `sleep`: invalid duration `soon` (in case `[wait=soon]`)"),
        "{e}"
    );
}

#[test]
fn empty_tables_are_refused() {
    assert_eq!(
        errors("name: x\nexamples: []\nsteps:\n  - sleep: 1s\n"),
        "s.yaml:2:11: `examples` is empty\n  hint: give at least one row, or remove `examples`"
    );
    assert_eq!(
        errors("name: x\nmatrix: {}\nsteps:\n  - sleep: 1s\n"),
        "s.yaml:2:9: `matrix` is empty\n  hint: give at least one name with a list of values, or remove `matrix`"
    );
    assert!(
        errors("name: x\nmatrix: { a: [] }\nsteps:\n  - sleep: \"${a}\"\n")
            .starts_with("s.yaml:2:14: `matrix.a` is empty: the matrix would have no case")
    );
}

#[test]
fn examples_and_matrix_at_once_are_refused_at_the_second() {
    assert!(errors(
        "name: x\nexamples: [ { a: 1s } ]\nmatrix: { a: [1s] }\nsteps:\n  - sleep: \"${a}\"\n"
    )
    .starts_with("s.yaml:3:1: a scenario has `examples` or `matrix`, not both"));
}

#[test]
fn duplicate_labels_are_refused_naming_the_first() {
    assert_eq!(
        errors("name: x\nexamples:\n  - { label: one, d: 1s }\n  - { label: one, d: 2s }\nsteps:\n  - sleep: \"${d}\"\n"),
        "s.yaml:4:14: two rows of `examples` are both labelled `one`\n  \
         hint: line 3 has it too; the label names the test case `name[one]`: make it unique (an explicit `label:`)"
    );
    assert!(
        errors("name: x\nmatrix: { d: [1s, 1s] }\nsteps:\n  - sleep: \"${d}\"\n")
            .starts_with("s.yaml:2:19: `matrix` makes the case `[d=1s]` twice")
    );
}

#[test]
fn row_keys_are_checked() {
    assert!(
        errors("name: x\nmatrix: { unused: [a, b] }\nsteps:\n  - sleep: 1s\n")
            .starts_with("s.yaml:2:11: row value `unused` is used by no step")
    );
    assert!(
        errors("name: x\nexamples: [ { email: a } ]\nsteps:\n  - sleep: \"${email}\"\n")
            .starts_with("s.yaml:2:15: row value `email` hides the generated `${email}`")
    );
    assert!(errors(
        "name: x\ntenants: [acme]\nmatrix: { acme: [a] }\nsteps:\n  - sleep: \"${acme}\"\n"
    )
    .contains("s.yaml:3:11: row value `acme` hides a tenant or a var of the same name"));
    assert!(
        errors("name: x\nmatrix: { a.b: [1s] }\nsteps:\n  - sleep: 1s\n")
            .starts_with("s.yaml:2:11: `a.b` cannot name a row value")
    );
    assert!(errors("name: x\nexamples: [ 3 ]\nsteps:\n  - sleep: 1s\n")
        .starts_with("s.yaml:2:13: a row of `examples` must be a map, found a number"));
    assert!(
        errors("name: x\nmatrix: { a: 1s }\nsteps:\n  - sleep: \"${a}\"\n")
            .starts_with("s.yaml:2:14: `matrix.a` must be a list, found a string")
    );
}

#[test]
fn a_matrix_too_large_is_refused() {
    let list = (0..40)
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let e = errors(&format!(
        "name: x\nmatrix:\n  a: [{list}]\n  b: [{list}]\nsteps:\n  - http: {{ service: s, request: {{ method: GET, path: \"/${{a}}/${{b}}\" }} }}\n"
    ));
    assert!(
        e.starts_with("s.yaml:3:3: `matrix` makes 1600 cases, more than 1000"),
        "{e}"
    );
}

#[test]
fn skip_if_reads_runtimes_needs_and_a_reason() {
    let s = parse(
        "name: x\nskip-if: { runtime: [external, docker], lacks: [faults, \"mock:gemini\"], because: needs chaos }\nsteps:\n  - sleep: 1s\n",
    );
    let skip = s.skip_if.expect("skip-if");
    assert_eq!(skip.runtimes, ["external", "docker"]);
    assert_eq!(skip.lacks, [Need::Faults, Need::Mock("gemini".into())]);
    assert_eq!(skip.because, "needs chaos");
    assert_eq!((skip.pos.line, skip.pos.col), (2, 10));
}

#[test]
fn skip_if_mistakes_are_positioned() {
    assert_eq!(
        errors("name: x\nskip-if: { runtime: k8s, because: no }\nsteps:\n  - sleep: 1s\n"),
        "s.yaml:2:21: unknown runtime `k8s` in `skip-if`\n  hint: the runtimes are process, docker, external"
    );
    assert_eq!(
        errors("name: x\nskip-if: { lacks: kafka, because: no }\nsteps:\n  - sleep: 1s\n"),
        "s.yaml:2:19: `skip-if` cannot check whether the ecosystem lacks `kafka`\n  \
         hint: it can check database, redis, faults, links, traces, mock:NAME"
    );
    assert!(
        errors("name: x\nskip-if: { runtime: external }\nsteps:\n  - sleep: 1s\n")
            .starts_with("s.yaml:2:10: `skip-if` needs `because`")
    );
    assert!(
        errors("name: x\nskip-if: { because: why }\nsteps:\n  - sleep: 1s\n")
            .starts_with("s.yaml:2:10: `skip-if` needs a condition: `runtime` or `lacks`")
    );
}

#[test]
fn the_shipped_permission_matrix_walks_every_app() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/permission-matrix.yaml");
    let s = parse_file(&path).expect("valid");
    let cases = s.cases();
    let apps: std::collections::BTreeSet<String> =
        cases.iter().filter_map(|c| http(c).app.clone()).collect();
    assert_eq!(
        apps.len(),
        tekup_harness::contract::active().apps.len(),
        "{apps:?}"
    );
    assert!(cases.len() >= 40, "{}", cases.len());
}
