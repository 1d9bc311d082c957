//! Scenario files: good files give the expected model, malformed ones the
//! exact `file:line:col`, message and hint.

use std::path::Path;
use std::time::Duration;

use tekup_harness::scenario::{
    parse_file, parse_str, ChaosStep, MockStep, RedisStep, SqlAs, StepKind, WsStep,
};

fn errors(text: &str) -> String {
    parse_str(Path::new("s.yaml"), text)
        .expect_err("the file is invalid")
        .to_string()
}

#[test]
fn the_design_example_parses_into_the_model() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenario_fixtures/lead-to-contact.yaml");
    let s = parse_file(&path).expect("the example fixture is valid");
    assert_eq!(s.name, "lead-to-contact");
    assert_eq!(s.tags, ["smoke", "crm"]);
    assert_eq!(s.tenants, ["acme", "globex"]);
    assert_eq!(s.steps.len(), 9);
    let kinds: Vec<&str> = s.steps.iter().map(|st| st.kind.name()).collect();
    assert_eq!(
        kinds,
        [
            "ws",
            "ws",
            "http",
            "eventually",
            "ws",
            "ws",
            "sql",
            "mock",
            "chaos"
        ]
    );
    assert_eq!((s.steps[2].pos.line, s.steps[2].pos.col), (7, 5));
    let StepKind::Http(h) = &s.steps[2].kind else {
        panic!("http")
    };
    assert_eq!(h.service, "flow-api");
    assert_eq!(h.request.method, "POST");
    assert_eq!(
        h.request.json,
        Some(serde_json::json!({"firstName": "John", "email": "john@example.com"}))
    );
    assert_eq!(h.expect.as_ref().and_then(|e| e.status), Some(201));
    assert_eq!(h.save.get("lead").map(String::as_str), Some("$.id"));
    let StepKind::Eventually(ev) = &s.steps[3].kind else {
        panic!("eventually")
    };
    assert_eq!(ev.within, Duration::from_secs(5));
    assert_eq!(ev.step.kind.name(), "http");
    assert_eq!(
        s.steps[4].kind,
        StepKind::Ws(WsStep::Expect {
            name: "crm".into(),
            event: "LEAD_CREATED".into(),
            within: Duration::from_secs(2),
            data: Some(serde_json::json!({"id": "${lead}"})),
            envelope: None,
        })
    );
    assert_eq!(
        s.steps[5].kind,
        StepKind::Ws(WsStep::ExpectNone {
            name: "spy".into(),
            event: None,
            duration: Duration::from_secs(1)
        })
    );
    let StepKind::Sql(q) = &s.steps[6].kind else {
        panic!("sql")
    };
    assert_eq!(q.run_as, SqlAs::Tenant("acme".into()));
    assert_eq!(q.expect, Some(vec![vec![serde_json::json!(1)]]));
    let StepKind::Mock(MockStep::Expect { mock, times, .. }) = &s.steps[7].kind else {
        panic!("mock")
    };
    assert_eq!((mock.as_str(), *times), ("openai", Some(1)));
    assert_eq!(
        s.steps[8].kind,
        StepKind::Chaos(ChaosStep::Kill {
            component: "redis".into()
        })
    );
}

#[test]
fn top_level_keys_and_other_kinds() {
    let s = parse_str(
        Path::new("s.yaml"),
        "name: chaos-1\nexclusive: true\ntimeout: 1m30s\ntenants: [acme]\n\
         setup:\n  - sql: { admin: true, query: \"select 1\" }\n\
         steps:\n  - redis: { queue: lead-processing, dead-letter: true, size: 0 }\n\
         \x20 - chaos: { toxic: latency, link: flow-api->redis, latency: 500ms }\n\
         \x20 - mock: { fault: stripe, status: 503, times: 2 }\n  - sleep: 200ms\n\
         teardown:\n  - chaos: { restart: redis }\n",
    )
    .expect("valid");
    assert!(s.exclusive);
    assert_eq!(s.timeout, Some(Duration::from_secs(90)));
    assert_eq!(s.setup.len(), 1);
    assert_eq!(s.steps.len(), 4);
    assert_eq!(s.steps[3].kind, StepKind::Sleep(Duration::from_millis(200)));
    assert_eq!(s.run_order().count(), 6);
}

#[test]
fn included_step_files_are_loaded_and_define_names() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("login.steps.yaml"),
        "steps:\n  - http: { service: flow-api, request: { method: POST, path: /login }, save: { token: $.token } }\n",
    )
    .expect("write");
    let main = dir.path().join("main.yaml");
    std::fs::write(&main, "name: inc\ninclude: [login.steps.yaml]\nsteps:\n  - http: { service: flow-api, request: { method: GET, path: \"/me?t=${token}\" } }\n").expect("write");
    let s = parse_file(&main).expect("valid");
    assert_eq!(s.include.len(), 1);
    assert_eq!(s.include[0].steps.len(), 1);
    assert!(s.include[0].steps[0].file.ends_with("login.steps.yaml"));
}

#[test]
fn an_unknown_step_kind_names_the_closest() {
    assert_eq!(
        errors("name: x\nsteps:\n  - htp: { service: a }\n"),
        "s.yaml:3:5: unknown step kind `htp`\n  hint: did you mean `http`? the kinds are http, ws, eventually, sql, redis, mock, stripe, trace, chaos, sleep; `use: <step file>` calls a step file"
    );
    // A typo of `use` is pointed at `use`, not at the nearest step kind.
    assert_eq!(
        errors("name: x\nsteps:\n  - uze: create-lead\n"),
        "s.yaml:3:5: unknown step kind `uze`\n  hint: did you mean `use`? the kinds are http, ws, eventually, sql, redis, mock, stripe, trace, chaos, sleep; `use: <step file>` calls a step file"
    );
}

#[test]
fn bad_yaml_is_positioned() {
    assert_eq!(
        errors("name: x\nsteps: [\n"),
        "s.yaml:3:1: invalid YAML: while parsing a node, did not find expected node content\n  hint: check the indentation and quoting here: a value containing `: `, `#`, or starting with `{`, `[`, `*`, `&`, `!`, `%` or `@` needs quotes"
    );
}

#[test]
fn duplicate_keys_name_the_first() {
    assert_eq!(
        errors("name: x\nsteps:\n  - sleep: 1s\nname: y\n"),
        "s.yaml:4:1: duplicate key `name`\n  hint: `name` is already set at line 1; keep one of them"
    );
}

#[test]
fn wrong_types_unknown_and_missing_keys_are_all_reported() {
    assert_eq!(
        errors("name: x\ntenants: [acme]\nsteps:\n  - http:\n      service: flow-api\n      tenant: acme\n      request: { path: /x }\n      expect: { status: \"201\", jsn: 1 }\n"),
        "s.yaml:7:16: `request` needs `method`\n  hint: add `method: GET`\n\
         s.yaml:8:25: `status` must be a whole number up to 599, found `201`\n  hint: write e.g. `status: 1` without quotes\n\
         s.yaml:8:32: unknown key `jsn` in `expect` of an `http` step\n  hint: did you mean `json`? the keys are status, headers, json, json-schema, body-contains"
    );
}

#[test]
fn own_ecosystem_sets_vars_as_written_and_makes_the_scenario_need_the_ecosystem_alone() {
    let s = parse_str(
        Path::new("s.yaml"),
        "name: spans\nown-ecosystem:\n  vars: { job-retry-spans: \"lead-processing=4s\", breaker-open-secs: 2 }\n\
         steps:\n  - sleep: 1ms\n",
    )
    .expect("valid");
    let own = s.own_ecosystem.as_ref().expect("own-ecosystem");
    assert_eq!(own.pos.line, 3);
    assert_eq!(
        own.vars
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect::<Vec<_>>(),
        [
            ("breaker-open-secs", "2"),
            ("job-retry-spans", "lead-processing=4s")
        ]
    );
    assert!(tekup_harness::scenario::run::needs_ecosystem_alone(&s));
    let plain = parse_str(Path::new("s.yaml"), "name: p\nsteps:\n  - sleep: 1ms\n").expect("valid");
    assert!(!tekup_harness::scenario::run::needs_ecosystem_alone(&plain));
}

#[test]
fn own_ecosystem_that_sets_nothing_or_refers_to_run_values_is_refused() {
    assert_eq!(
        errors("name: x\nown-ecosystem: { vars: {} }\nsteps:\n  - sleep: 1ms\n"),
        "s.yaml:2:16: `own-ecosystem` sets nothing\n  \
         hint: give it `vars: { name: value }`, entries of the ecosystem file's [vars] (or remove it)"
    );
    assert_eq!(
        errors("name: x\nown-ecosystem: { var: { a: b } }\nsteps:\n  - sleep: 1ms\n"),
        "s.yaml:2:16: `own-ecosystem` needs `vars`\n  hint: add `vars: { name: value }`\n\
         s.yaml:2:18: unknown key `var` in `own-ecosystem`\n  hint: did you mean `vars`? the keys are vars"
    );
    assert_eq!(
        errors("name: x\nown-ecosystem:\n  vars: { admin-token: \"${uuid}\" }\nsteps:\n  - sleep: 1ms\n"),
        "s.yaml:3:9: `own-ecosystem` var `admin-token` holds a reference: \"${uuid}\"\n  \
         hint: write the value itself: the ecosystem starts before the scenario's values exist"
    );
}

#[test]
fn missing_required_top_level_fields() {
    assert_eq!(
        errors("tags: [a]\n"),
        "s.yaml:1:1: a scenario needs `name`\n  hint: add `name: lead-to-contact`\n\
         s.yaml:1:1: a scenario needs `steps`\n  hint: add `steps: [ - sleep: 1s ]`"
    );
}

#[test]
fn undefined_variables_are_refused_at_parse_time() {
    assert_eq!(
        errors("name: x\nsteps:\n  - http: { service: a, request: { method: GET, path: \"/l/${led}\" }, save: { lead: $.id } }\n  - sleep: 1s\n  - http: { service: a, request: { method: GET, path: \"/l/${leed}\" } }\n"),
        "s.yaml:3:55: `${led}` is not defined here\n  hint: no step before this one saves a value; also usable: a tenant (`${acme}`, `${acme.key}`), `${env.NAME}`, `${crm-api.url}`, `${uuid}`, `${email}`, `${now}`, `${cross-app-token:iss=..,aud=..,sub=..}`\n\
         s.yaml:5:55: `${leed}` is not defined here\n  hint: did you mean `${lead}`? saved before this step: lead; also usable: a tenant (`${acme}`, `${acme.key}`), `${env.NAME}`, `${crm-api.url}`, `${uuid}`, `${email}`, `${now}`, `${cross-app-token:iss=..,aud=..,sub=..}`"
    );
    parse_str(
        Path::new("s.yaml"),
        "name: x\ntenants: [acme]\nsteps:\n  - http: { service: a, request: { method: GET, path: \"/${uuid}/${email}/${now}/${env.HOME}/${acme}/${acme.key}\" } }\n",
    )
    .expect("generated, env and tenant references are defined");
}

#[test]
fn undeclared_tenants_and_unopened_connections() {
    assert_eq!(
        errors("name: x\ntenants: [acme]\nsteps:\n  - ws: { connect: c, tenant: acem, app: crm-web }\n  - ws: { expect: d, event: E, within: 1s }\n"),
        "s.yaml:4:31: tenant `acem` is not one of the scenario's `tenants`\n  hint: the tenants are acme; add `acem` to `tenants` to create it\n\
         s.yaml:5:19: no WebSocket connection `d` is open here\n  hint: open it first: `- ws: { connect: d, tenant: acme, app: crm-web }`"
    );
}

#[test]
fn bad_durations_and_two_kinds_in_one_step() {
    assert_eq!(
        errors("name: x\nsteps:\n  - sleep: 5\n  - sleep: 1s\n    http: {}\n"),
        "s.yaml:3:12: `sleep`: invalid duration `5`: the number needs a unit\n  hint: a duration is a number and a unit: ms, s, m or h, e.g. `500ms`, `30s`, `1m30s`\n\
         s.yaml:5:5: a step has one kind, this one has `sleep` and `http`\n  hint: indent the fields of `sleep` under it, or start a new step with `- `"
    );
}

#[test]
fn vars_step_timeouts_sql_errors_and_mock_faults() {
    let s = parse_str(
        Path::new("s.yaml"),
        "name: x\ntenants: [acme]\nvars: { ada: \"${email}\", n: 3 }\nsteps:\n  \
         - http: { service: a, request: { method: GET, path: \"/l?e=${ada}&u=${crm-api.url}\" } }\n    timeout: 2s\n  \
         - sql: { tenant: acme, query: \"insert into x values (1)\", error: \"42501\" }\n  \
         - mock: { fault: graph, path: /v1.0/me, status: 429, retry-after: 1s, times: 2, ratio: 0.5 }\n",
    )
    .expect("valid");
    assert_eq!(s.vars[0].0, "ada");
    assert_eq!(s.steps[0].timeout, Some(Duration::from_secs(2)));
    let StepKind::Sql(sql) = &s.steps[1].kind else {
        panic!("sql")
    };
    assert_eq!(sql.error.as_deref(), Some("42501"));
    let StepKind::Mock(MockStep::Fault {
        fault,
        times,
        ratio,
        ..
    }) = &s.steps[2].kind
    else {
        panic!("mock fault")
    };
    assert_eq!(
        *fault,
        tekup_harness::scenario::MockFault::RateLimit {
            retry_after: Duration::from_secs(1)
        }
    );
    assert_eq!((*times, *ratio), (Some(2), Some(0.5)));
}

#[test]
fn malformed_vars_faults_and_sql_expectations_are_explained() {
    assert_eq!(
        errors("name: x\nvars: { uuid: 1 }\nsteps:\n  - sleep: 1s\n"),
        "s.yaml:2:9: var `uuid` hides a tenant or a generated value of the same name\n  hint: give it another name"
    );
    assert_eq!(
        errors("name: x\nsteps:\n  - mock: { fault: graph, status: 500, delay: 1s }\n"),
        "s.yaml:3:27: `mock: fault` step injects one fault; `delay` and `status` are both given\n  hint: split it into two steps"
    );
    assert_eq!(
        errors("name: x\nsteps:\n  - mock: { fault: graph, status: 503, retry-after: 1s }\n"),
        "s.yaml:3:40: `retry-after` goes with `status: 429`\n  hint: remove it, or use `status: 429`"
    );
    assert_eq!(
        errors("name: x\nsteps:\n  - sql: { admin: true, query: q, expect: [[1]], error: \"42501\" }\n"),
        "s.yaml:3:50: a query either returns rows (`expect`) or fails (`error`), not both\n  hint: keep one of them"
    );
    assert_eq!(
        errors("name: x\nsteps:\n  - timeout: 1s\n"),
        "s.yaml:3:5: a step has a `timeout` but no kind\n  hint: add the step beside it, e.g. `http: { ... }`; the kinds are http, ws, eventually, sql, redis, mock, stripe, trace, chaos, sleep; `use: <step file>` calls a step file"
    );
}

#[test]
fn toxics_on_links_take_the_toxiproxy_attributes() {
    let s = parse_str(
        Path::new("s.yaml"),
        "name: x\nsteps:\n  \
         - chaos: { toxic: latency, link: flow-api->redis, latency: 300ms, jitter: 50ms, for: 2s }\n  \
         - chaos: { toxic: slicer, link: a->b, average-size: 64, stream: upstream, toxicity: 0.5 }\n  \
         - chaos: { toxic: down, link: gateway->redis }\n",
    )
    .expect("valid");
    let StepKind::Chaos(ChaosStep::Toxic {
        toxic,
        duration,
        upstream,
        ..
    }) = &s.steps[0].kind
    else {
        panic!("toxic")
    };
    assert_eq!(
        *toxic,
        tekup_harness::scenario::Toxic::Latency {
            latency: Duration::from_millis(300),
            jitter: Duration::from_millis(50)
        }
    );
    assert_eq!(
        (*duration, *upstream),
        (Some(Duration::from_secs(2)), false)
    );
    let StepKind::Chaos(ChaosStep::Toxic {
        toxic,
        upstream,
        toxicity,
        ..
    }) = &s.steps[1].kind
    else {
        panic!("toxic")
    };
    assert_eq!(
        *toxic,
        tekup_harness::scenario::Toxic::Slicer {
            average: 64,
            variation: 0,
            delay: Duration::ZERO
        }
    );
    assert_eq!((*upstream, *toxicity), (true, Some(0.5)));
    assert_eq!(
        errors("name: x\nsteps:\n  - chaos: { toxic: latncy, link: a->b }\n"),
        "s.yaml:3:21: unknown toxic `latncy`\n  hint: did you mean `latency`? the toxics are latency, bandwidth, slow-close, timeout, reset-peer, slicer, limit-data, down"
    );
    assert_eq!(
        errors("name: x\nsteps:\n  - chaos: { toxic: bandwidth, link: a->b }\n"),
        "s.yaml:3:12: toxic `bandwidth` needs `rate`\n  hint: add e.g. `rate: 64`"
    );
}

#[test]
fn a_job_is_enqueued_for_a_tenant_with_its_payload() {
    let s = parse_str(
        Path::new("s.yaml"),
        "name: redeliver\ntenants: [acme]\nsteps:\n\
         \x20 - http: { service: flow-api, tenant: acme, app: flow-web, request: { method: POST, path: /leads, json: { firstName: A, email: a@b.test } }, save: { lead: $.id } }\n\
         \x20 - redis: { enqueue: lead-processing, kind: process-lead, tenant: acme, payload: { leadId: \"${lead}\", originApp: flow-web } }\n",
    )
    .expect("valid");
    assert_eq!(
        s.steps[1].kind,
        StepKind::Redis(RedisStep::Enqueue {
            queue: "lead-processing".into(),
            kind: "process-lead".into(),
            tenant: "acme".into(),
            payload: serde_json::json!({ "leadId": "${lead}", "originApp": "flow-web" }),
        })
    );
}

#[test]
fn an_enqueue_step_names_unknown_queues_tenants_and_missing_fields() {
    assert_eq!(
        errors("name: x\ntenants: [acme]\nsteps:\n  - redis: { enqueue: lead-procesing, kind: process-lead, tenant: acme, payload: {} }\n"),
        "s.yaml:4:23: unknown queue `lead-procesing`\n  hint: did you mean `lead-processing`? the queues are lead-processing, email-sync, voice-processing, backup-operations, compliance-checks, analytics-processing"
    );
    assert_eq!(
        errors("name: x\ntenants: [acme]\nsteps:\n  - redis: { enqueue: lead-processing, tenant: acme, payload: [1] }\n"),
        "s.yaml:4:12: `redis: enqueue` step needs `kind`\n  hint: add `kind: process-lead`\n\
         s.yaml:4:63: `payload` must be a map, found a list\n  hint: write the job's payload as the services read it, e.g. `payload: { leadId: \"${lead}\", originApp: flow-web }`"
    );
    assert_eq!(
        errors("name: x\ntenants: [acme]\nsteps:\n  - redis: { enqueue: email-sync, kind: sync-email, tenant: globex, payload: {}, size: 1 }\n"),
        "s.yaml:4:61: tenant `globex` is not one of the scenario's `tenants`\n  hint: the tenants are acme; add `globex` to `tenants` to create it\n\
         s.yaml:4:82: unknown key `size` in `redis: enqueue` step\n  hint: the keys are enqueue, kind, tenant, payload"
    );
}

#[test]
fn each_step_says_what_it_needs_beyond_the_services() {
    use tekup_harness::scenario::Need;
    let s = parse_str(
        Path::new("s.yaml"),
        r#"
name: needs
tenants: [acme]
steps:
  - http: { service: flow-api, request: { method: GET, path: /leads } }
  - eventually:
      within: 5s
      sql: { admin: true, query: "SELECT 1", expect: [[1]] }
  - redis: { queue: lead-processing, size: 0 }
  - mock: { expect: gemini, request: { method: POST } }
  - chaos: { kill: worker }
  - chaos: { toxic: down, link: flow-api->redis }
  - sleep: 1s
"#,
    )
    .expect("valid");
    let needs: Vec<Option<Need>> = s.steps.iter().map(|st| st.kind.needs()).collect();
    assert_eq!(
        needs,
        [
            None,
            Some(Need::Database),
            Some(Need::Redis),
            Some(Need::Mock("gemini".into())),
            Some(Need::Faults),
            Some(Need::Links),
            None,
        ]
    );
}

/// Step names and messages, computed values, declared secrets and the
/// `eventually` conditions.
#[path = "scenario_parse/values.rs"]
mod values;
