//! Reusable step files (`use:` with `with:`, `returns:`) and `defaults:`:
//! what they expand to, and each malformed form's `file:line:col`.

use std::path::{Path, PathBuf};

use tekup_harness::scenario::{parse_file, Scenario, Step, StepKind};

/// A directory with `steps/<name>.yaml` files and a scenario `s.yaml`.
struct Dir {
    dir: tempfile::TempDir,
}

impl Dir {
    fn new(step_files: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("steps")).expect("steps/");
        for (name, text) in step_files {
            std::fs::write(dir.path().join("steps").join(format!("{name}.yaml")), text)
                .expect("write a step file");
        }
        Self { dir }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("s.yaml")
    }

    fn parse(&self, scenario: &str) -> Result<Scenario, String> {
        std::fs::write(self.path(), scenario).expect("write the scenario");
        parse_file(&self.path()).map_err(|e| {
            // Paths relative to the directory, as a user reads them.
            e.to_string()
                .replace(&format!("{}/", self.dir.path().display()), "")
        })
    }

    fn ok(&self, scenario: &str) -> Scenario {
        self.parse(scenario).unwrap_or_else(|e| panic!("{e}"))
    }

    fn err(&self, scenario: &str) -> String {
        self.parse(scenario).expect_err("the scenario is invalid")
    }
}

const CREATE_DEAL: &str = "\
params: [tenant, title, { amount: 1000 }]
defaults:
  http: { service: crm-api, tenant: \"${tenant}\", app: crm-web }
steps:
  - http:
      request: { method: POST, path: /deals, json: { title: \"${title}\", amount: \"${amount}\" } }
      expect: { status: 201 }
      save: { deal: $.id, raw: $.title }
  - http:
      request: { method: GET, path: \"/deals/${deal}?key=${tenant.key}\" }
returns: [deal]
";

fn http(step: &Step) -> &tekup_harness::scenario::HttpStep {
    match &step.kind {
        StepKind::Http(h) => h,
        other => panic!("not http: {other:?}"),
    }
}

#[test]
fn a_use_expands_to_the_step_files_steps_with_parameters_and_returns() {
    let d = Dir::new(&[("create-deal", CREATE_DEAL)]);
    let s = d.ok("name: t\ntenants: [shop]\nsteps:\n  - use: create-deal\n    with: { tenant: shop, title: One }\n    save: { d1: deal }\n  - use: create-deal\n    with: { tenant: shop, title: Two, amount: 5 }\n  - http: { service: crm-api, request: { method: GET, path: \"/deals/${d1}/${deal}\" } }\n");
    assert_eq!(s.steps.len(), 5);
    let first = http(&s.steps[0]);
    assert_eq!(first.service, "crm-api", "the step file's defaults");
    assert_eq!(
        first.tenant.as_deref(),
        Some("shop"),
        "a parameter in a default"
    );
    assert_eq!(
        first.request.json,
        Some(serde_json::json!({ "title": "One", "amount": 1000 })),
        "a parameter's default keeps its type"
    );
    assert_eq!(
        first.save.keys().collect::<Vec<_>>(),
        ["create-deal#1.raw", "d1"],
        "the returned value under the caller's name, the other one private"
    );
    assert_eq!(
        http(&s.steps[1]).request.path,
        "/deals/${d1}?key=${shop.key}",
        "the step file's own references follow the renaming; `{}` names the tenant",
        "${tenant.key}"
    );
    assert_eq!(
        http(&s.steps[2]).save.keys().collect::<Vec<_>>(),
        ["create-deal#2.raw", "deal"],
        "without `save:`, every returned name as it is"
    );
    assert_eq!(
        http(&s.steps[2]).request.json.as_ref().unwrap()["amount"],
        5
    );
    assert!(s.steps[0].file.ends_with("steps/create-deal.yaml"));
    assert_eq!((s.steps[0].pos.line, s.steps[0].pos.col), (5, 5));
    assert_eq!(s.steps[0].via.len(), 1);
    assert_eq!(s.steps[0].via[0].pos.line, 4);
    assert!(
        s.steps[0].location().contains("s.yaml:4 → "),
        "{}",
        s.steps[0].location()
    );
    assert!(
        s.steps[0].location().ends_with("steps/create-deal.yaml:5"),
        "{}",
        s.steps[0].location()
    );
    assert!(s.steps[4].via.is_empty());
}

#[test]
fn uses_nest_and_the_location_names_the_whole_chain() {
    let d = Dir::new(&[
        ("create-deal", CREATE_DEAL),
        (
            "won-deal",
            "params: [tenant]\nsteps:\n  - use: create-deal\n    with: { tenant: \"${tenant}\", title: Won }\n    save: { mine: deal }\n  - http: { service: crm-api, tenant: \"${tenant}\", app: crm-web, request: { method: POST, path: \"/deals/${mine}/won\" } }\nreturns: [mine]\n",
        ),
    ]);
    let s = d.ok("name: t\ntenants: [shop]\nsteps:\n  - use: won-deal\n    with: { tenant: shop }\n  - sleep: 1ms\n    timeout: 1s\n  - http: { service: crm-api, request: { method: GET, path: \"/deals/${mine}\" } }\n");
    assert_eq!(s.steps.len(), 5);
    assert_eq!(
        http(&s.steps[0]).save.keys().collect::<Vec<_>>(),
        ["create-deal#2.raw", "mine"],
        "the inner file's return is the outer file's, and the outer's the caller's"
    );
    assert_eq!(http(&s.steps[2]).request.path, "/deals/${mine}/won");
    let chain = s.steps[0].location();
    assert!(
        chain.contains("s.yaml:4 → ")
            && chain.contains("steps/won-deal.yaml:3 → ")
            && chain.ends_with("steps/create-deal.yaml:5"),
        "{chain}"
    );
}

#[test]
fn a_missing_or_unknown_parameter_is_an_error_at_the_caller_naming_the_definition() {
    let d = Dir::new(&[("create-deal", CREATE_DEAL)]);
    let e = d.err("name: t\ntenants: [shop]\nsteps:\n  - use: create-deal\n    with: { tenant: shop, titel: X }\n");
    assert!(
        e.contains("s.yaml:4:5: `use: create-deal` needs the parameter `title`\n  hint: `title` is declared without a default at steps/create-deal.yaml:1:18; add `with: { title: ... }`"),
        "{e}"
    );
    assert!(
        e.contains("s.yaml:5:27: `create-deal` has no parameter `titel`\n  hint: did you mean `title`? its parameters (steps/create-deal.yaml:1:1) are tenant, title, amount"),
        "{e}"
    );
}

#[test]
fn an_undefined_reference_or_return_is_reported_in_the_step_file() {
    let d = Dir::new(&[(
        "bad",
        "params: [tenant]\nsteps:\n  - http: { service: crm-api, request: { method: GET, path: \"/x/${lead}\" }, save: { a: $.id } }\nreturns: [a, b]\n",
    )]);
    let e = d.err("name: t\ntenants: [shop]\nvars: { lead: 1 }\nsteps:\n  - use: bad\n    with: { tenant: shop }\n  - use: bad\n    with: { tenant: shop }\n");
    assert!(
        e.contains("steps/bad.yaml:3:61: `${lead}` is not defined here"),
        "{e}"
    );
    assert!(
        e.contains("steps/bad.yaml:4:14: `returns` names `b`, which no step of this file saves"),
        "{e}"
    );
    assert_eq!(
        e.matches("is not defined here").count(),
        1,
        "once however often it is used: {e}"
    );
}

#[test]
fn a_problem_a_parameter_makes_is_reported_where_it_goes_naming_the_call() {
    let d = Dir::new(&[("create-deal", CREATE_DEAL)]);
    let e = d.err("name: t\ntenants: [shop]\nsteps:\n  - use: create-deal\n    with: { tenant: shopp, title: X }\n");
    assert!(
        e.contains("steps/create-deal.yaml:3:37: tenant `shopp` is not one of the scenario's `tenants` (in `use: create-deal` at "),
        "{e}"
    );
    let e = d.err("name: t\ntenants: [shop]\nsteps:\n  - use: create-deal\n    with: { tenant: shop, title: \"${nothing}\" }\n");
    assert!(
        e.contains("s.yaml:5:34: `${nothing}` is not defined here"),
        "{e}"
    );
    assert_eq!(e.matches("is not defined here").count(), 1, "{e}");
}

#[test]
fn cycles_missing_files_bad_saves_and_bad_params_are_refused() {
    let d = Dir::new(&[
        ("a", "steps:\n  - use: b\n"),
        ("b", "steps:\n  - sleep: 1ms\n  - use: a\n"),
        ("create-deal", CREATE_DEAL),
        (
            "params",
            "params: [tenant, tenant, { x: 1, y: 2 }, uuid]\nsteps: [ { sleep: 1ms } ]\n",
        ),
    ]);
    let e = d.err("name: t\nsteps:\n  - use: a\n");
    assert!(
        e.contains("steps/b.yaml:3:10: `use: a` makes a cycle: a → b → a"),
        "{e}"
    );
    let e = d.err("name: t\nsteps:\n  - use: crate-deal\n");
    assert!(e.contains("s.yaml:3:10: no step file `crate-deal`"), "{e}");
    let e = d.err("name: t\ntenants: [shop]\nsteps:\n  - use: create-deal\n    with: { tenant: shop, title: X }\n    save: { d: deals }\n    what: 1\n");
    assert!(
        e.contains("s.yaml:6:16: `create-deal` returns no `deals`"),
        "{e}"
    );
    assert!(
        e.contains("s.yaml:7:5: unknown key `what` in a `use` step"),
        "{e}"
    );
    let e = d.err("name: t\nsteps:\n  - use: params\n");
    assert!(
        e.contains("steps/params.yaml:1:18: parameter `tenant` is declared twice"),
        "{e}"
    );
    assert!(
        e.contains("steps/params.yaml:1:26: a parameter is a name or a one-key map, found a map"),
        "{e}"
    );
    assert!(
        e.contains("steps/params.yaml:1:42: `uuid` cannot name a parameter"),
        "{e}"
    );
}

#[test]
fn defaults_fill_http_steps_per_file_and_block_and_a_steps_own_value_wins() {
    let d = Dir::new(&[]);
    let s = d.ok("name: t\ntenants: [shop, other]\ndefaults:\n  http: { service: crm-api, tenant: shop, app: crm-web }\n  teardown: { http: { service: flow-api } }\nsteps:\n  - http: { request: { method: GET, path: /a } }\n  - http: { service: flow-api, tenant: other, request: { method: GET, path: /b } }\n  - http: { tenant: null, app: null, request: { method: GET, path: /metrics } }\n  - eventually:\n      within: 1s\n      http: { request: { method: GET, path: /c } }\n      fail-fast-on: { http: { request: { method: GET, path: /e } } }\nteardown:\n  - http: { request: { method: GET, path: /d } }\n");
    let a = http(&s.steps[0]);
    assert_eq!(
        (a.service.as_str(), a.tenant.as_deref(), a.app.as_deref()),
        ("crm-api", Some("shop"), Some("crm-web"))
    );
    let b = http(&s.steps[1]);
    assert_eq!(
        (b.service.as_str(), b.tenant.as_deref(), b.app.as_deref()),
        ("flow-api", Some("other"), Some("crm-web"))
    );
    let m = http(&s.steps[2]);
    assert_eq!(
        (m.service.as_str(), m.tenant.as_deref(), m.app.as_deref()),
        ("crm-api", None, None)
    );
    let StepKind::Eventually(e) = &s.steps[3].kind else {
        panic!("eventually")
    };
    assert_eq!(http(&e.step).tenant.as_deref(), Some("shop"));
    let bad = e.fail_fast_on.as_ref().expect("fail-fast-on");
    assert_eq!(
        http(bad).service,
        "crm-api",
        "also the step `eventually` fails fast on"
    );
    let t = http(&s.teardown[0]);
    assert_eq!(
        (t.service.as_str(), t.tenant.as_deref()),
        ("flow-api", Some("shop")),
        "the block's own over the file's"
    );
}

#[test]
fn unknown_keys_in_defaults_and_a_wrong_default_are_errors_where_written() {
    let d = Dir::new(&[]);
    let e = d.err("name: t\ntenants: [shop]\ndefaults:\n  http: { servce: crm-api, tenant: shp }\n  ws: { tenant: shop }\n  setup: { sql: {} }\nsteps:\n  - http: { request: { method: GET, path: /a } }\n");
    assert!(
        e.contains(
            "s.yaml:4:11: unknown key `servce` in `defaults.http`\n  hint: did you mean `service`?"
        ),
        "{e}"
    );
    assert!(
        e.contains("s.yaml:5:3: unknown key `ws` in `defaults`"),
        "{e}"
    );
    assert!(
        e.contains("s.yaml:6:12: unknown key `sql` in `defaults.setup`"),
        "{e}"
    );
    assert!(
        e.contains("s.yaml:4:36: tenant `shp` is not one of the scenario's `tenants`"),
        "{e}"
    );
    let e = d.err("name: t\nsteps: [ { use: x } ]\n");
    assert!(e.contains("s.yaml:2:17: no step file `x`"), "{e}");
    let d = Dir::new(&[("x", "params: [t]\ndefaults: { http: { tenant: \"${t}\", bogus: 1 } }\nsteps: [ { sleep: 1ms } ]\n")]);
    let e = d.err("name: t\nsteps: [ { use: x, with: { t: a } } ]\n");
    assert!(
        e.contains("steps/x.yaml:2:37: unknown key `bogus` in `defaults.http`"),
        "{e}"
    );
}

#[test]
fn the_shipped_circuit_breaker_states_its_service_once_and_creates_deals_with_a_step_file() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/circuit-breaker.yaml");
    let text = std::fs::read_to_string(&path).expect("circuit-breaker.yaml");
    assert_eq!(text.matches("service: crm-api").count(), 1);
    let s = parse_file(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.setup.len(), 5);
    for (i, step) in s.setup.iter().enumerate() {
        assert!(step.file.ends_with("steps/create-deal.yaml"));
        let h = http(step);
        assert_eq!(h.tenant.as_deref(), Some("shop"));
        assert!(h.save.contains_key(&format!("d{}", i + 1)), "{:?}", h.save);
    }
}

#[test]
fn the_schema_takes_uses_defaults_and_step_files_and_refuses_their_typos() {
    let schema = tekup_harness::scenario::schema();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let yaml = |p: &Path| -> serde_json::Value {
        serde_yaml::from_str(&std::fs::read_to_string(p).expect("read")).expect("yaml")
    };
    let scenarios = jsonschema::validator_for(&schema).expect("a valid schema");
    let scenario = yaml(&root.join("circuit-breaker.yaml"));
    assert!(
        scenarios.is_valid(&scenario),
        "{:?}",
        scenarios
            .iter_errors(&scenario)
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
    );
    let mut typo = scenario.clone();
    typo["defaults"]["http"]["servce"] = "crm-api".into();
    assert!(!scenarios.is_valid(&typo));
    let mut typo = scenario;
    typo["setup"][0]["wiht"] = serde_json::json!({});
    assert!(!scenarios.is_valid(&typo));

    let mut step_file = schema.clone();
    step_file["$ref"] = "#/$defs/step-file".into();
    for key in [
        "required",
        "properties",
        "additionalProperties",
        "not",
        "type",
    ] {
        step_file.as_object_mut().expect("object").remove(key);
    }
    let step_files = jsonschema::validator_for(&step_file).expect("a valid schema");
    let create = yaml(&root.join("steps/create-deal.yaml"));
    assert!(
        step_files.is_valid(&create),
        "{:?}",
        step_files
            .iter_errors(&create)
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
    );
    let mut typo = create;
    typo["return"] = serde_json::json!(["deal"]);
    assert!(!step_files.is_valid(&typo));
}
