//! `name:`/`because:` beside a step's kind, `${now+5m}` and `${base64:...}`,
//! `secrets:`, and `eventually`'s `fail-fast-on:` and `holds-for:`.

use std::path::Path;
use std::time::Duration;

use tekup_harness::scenario::{parse_str, Scenario, Secret, StepKind};

use super::errors;

fn parse(text: &str) -> Scenario {
    parse_str(Path::new("s.yaml"), text).unwrap_or_else(|e| panic!("{e}"))
}

const GET: &str = "{ service: flow-api, request: { method: GET, path: /health } }";

#[test]
fn a_step_carries_a_name_and_a_because_beside_its_kind() {
    let s = parse(&format!(
        "name: x\nsteps:\n  - name: the gateway answers\n    because: every app starts here\n    http: {GET}\n    timeout: 2s\n  - sleep: 1s\n"
    ));
    let step = &s.steps[0];
    assert_eq!(step.name.as_deref(), Some("the gateway answers"));
    assert_eq!(step.because.as_deref(), Some("every app starts here"));
    assert_eq!(step.timeout, Some(Duration::from_secs(2)));
    assert_eq!((step.pos.line, step.pos.col), (5, 5), "the kind's position");
    assert_eq!(
        (s.steps[1].name.clone(), s.steps[1].because.clone()),
        (None, None)
    );
}

#[test]
fn names_and_messages_are_checked_where_they_are_written() {
    assert_eq!(
        errors("name: x\nsteps:\n  - name: lonely\n    because: why\n"),
        "s.yaml:3:5: a step has a `name` and a `because` but no kind\n  hint: add the step beside it, e.g. `http: { ... }`; the kinds are http, ws, eventually, sql, redis, mock, stripe, trace, chaos, sleep; `use: <step file>` calls a step file"
    );
    assert_eq!(
        errors("name: x\nsteps:\n  - sleep: 1s\n    name: \"\"\n"),
        "s.yaml:4:11: `name` is empty\n  hint: write plain text, e.g. `name: create the lead`"
    );
    assert_eq!(
        errors("name: x\nsteps:\n  - sleep: 1s\n    because: \"${email}\"\n"),
        "s.yaml:4:14: `because` is shown as written; `${...}` is not expanded in it\n  hint: write plain text, e.g. `because: a lead must reach the CRM within a minute`"
    );
    assert_eq!(
        errors("name: x\nsteps:\n  - sleep: 1s\n    name: [a]\n"),
        "s.yaml:4:11: `name` must be text, found a list\n  hint: write `name: some-text` (quote it if it contains `: ` or `#`)"
    );
}

#[test]
fn computed_values_are_accepted_and_checked_at_parse_time() {
    parse(
        "name: x\nvars: { password: hunter2 }\nsteps:\n  - http:\n      service: a\n      request:\n        method: POST\n        path: /trials\n        \
         headers: { authorization: \"Basic ${base64:ops:${password}}\", x-sig: \"${base64url:${now:unix}}\" }\n        \
         json: { ends: \"${now+14d}\", started: \"${now-1h30m}\", at: \"${now+5m:unix}\" }\n",
    );
    assert_eq!(
        errors("name: x\nsteps:\n  - http: { service: a, request: { method: GET, path: \"/t?at=${now+5x}\" } }\n"),
        "s.yaml:3:55: `${now+5x}`: `5x` is not an offset like `5m`, `90s`, `1h30m` or `2d`\n  hint: write `${now+5m}`, `${now-1h}`, `${now+2d:unix}` (units s, m, h, d), `${base64:text}` or `${base64:user:${password}}` (`base64url:` for the URL-safe alphabet)"
    );
    let e = errors("name: x\nsteps:\n  - http: { service: a, request: { method: GET, path: /t, headers: { at: \"${now+1h:iso}\" } } }\n");
    assert!(
        e.starts_with("s.yaml:3:74: `${now+1h:iso}`: unknown format `iso`"),
        "{e}"
    );
    let e = errors("name: x\nsteps:\n  - http: { service: a, request: { method: GET, path: /t, headers: { a: \"${base64:}\" } } }\n");
    assert!(
        e.starts_with("s.yaml:3:73: `${base64:}`: nothing to encode"),
        "{e}"
    );
    // A reference inside base64's text is checked like any other.
    let e = errors("name: x\nvars: { password: p }\nsteps:\n  - http: { service: a, request: { method: GET, path: /t, headers: { a: \"Basic ${base64:ops:${pasword}}\" } } }\n");
    assert!(
        e.starts_with(
            "s.yaml:4:73: `${pasword}` is not defined here\n  hint: did you mean `${password}`?"
        ),
        "{e}"
    );
    let e = errors("name: x\nsteps:\n  - http: { service: a, request: { method: GET, path: \"${base64:${uuid}\" } }\n");
    assert!(e.starts_with("s.yaml:3:55: unterminated `${`"), "{e}");
}

#[test]
fn secrets_name_vars_saved_values_or_values() {
    let s = parse(
        "name: x\nvars: { password: hunter2-pw }\nsecrets: [password, session, { value: \"${env.SMTP_PASSWORD}\" }]\nsteps:\n  \
         - http: { service: a, request: { method: POST, path: /login }, save: { session: $.token } }\n",
    );
    assert_eq!(
        s.secrets,
        [
            Secret::Name("password".into()),
            Secret::Name("session".into()),
            Secret::Value("${env.SMTP_PASSWORD}".into()),
        ]
    );
    assert_eq!(
        errors("name: x\nvars: { password: p }\nsecrets: [pasword]\nsteps:\n  - sleep: 1s\n"),
        "s.yaml:3:11: secret `pasword` is not a var or a saved value of this scenario\n  hint: did you mean `password`? a value itself is written `{ value: \"...\" }`"
    );
    assert_eq!(
        errors("name: x\nsecrets: password\nsteps:\n  - sleep: 1s\n"),
        "s.yaml:2:10: `secrets` must be a list, found a string\n  hint: list var or saved-value names, or values: `secrets: [password, { value: \"${env.SMTP_PASSWORD}\" }]`"
    );
    let e = errors("name: x\nsecrets: [{ vaule: x }]\nsteps:\n  - sleep: 1s\n");
    assert!(
        e.contains("s.yaml:2:13: unknown key `vaule` in a `secrets` entry"),
        "{e}"
    );
    let e = errors("name: x\nsecrets: [{ value: \"${nope}\" }]\nsteps:\n  - sleep: 1s\n");
    assert!(
        e.starts_with("s.yaml:2:20: `${nope}` is not defined here"),
        "{e}"
    );
}

#[test]
fn eventually_takes_a_known_bad_state_and_a_holding_period() {
    let s = parse(&format!(
        "name: x\nsteps:\n  - eventually:\n      within: 10s\n      holds-for: 2s\n      http: {GET}\n      \
         fail-fast-on:\n        name: the lead was rejected\n        sql: {{ admin: true, query: \"select 1\", expect: [[1]] }}\n"
    ));
    let StepKind::Eventually(e) = &s.steps[0].kind else {
        panic!("eventually")
    };
    assert_eq!(e.within, Duration::from_secs(10));
    assert_eq!(e.holds_for, Some(Duration::from_secs(2)));
    assert_eq!(e.step.kind.name(), "http");
    let bad = e.fail_fast_on.as_ref().expect("fail-fast-on");
    assert_eq!(bad.kind.name(), "sql");
    assert_eq!(bad.name.as_deref(), Some("the lead was rejected"));
    assert_eq!((bad.pos.line, bad.pos.col), (9, 9));
    assert_eq!(
        s.steps[0].kind.needs(),
        Some(tekup_harness::scenario::Need::Database),
        "the condition's needs count"
    );
}

#[test]
fn eventually_conditions_are_checked_where_they_are_written() {
    let prefix = format!("name: x\nsteps:\n  - eventually:\n      within: 5s\n      http: {GET}\n");
    assert_eq!(
        errors(&format!("{prefix}      holds-for: soon\n")),
        format!("s.yaml:6:18: `holds-for`: invalid duration `soon`\n  hint: a duration is a number and a unit: ms, s, m or h, e.g. `500ms`, `30s`, `1m30s`")
    );
    assert_eq!(
        errors(&format!("{prefix}      holds-for: 0s\n")),
        "s.yaml:6:7: `holds-for: 0s` holds for no time\n  hint: give the period the step must keep passing, e.g. `holds-for: 2s`, or leave it out"
    );
    assert_eq!(
        errors(&format!("{prefix}      fail-fast-on: {{ sleep: 1s }}\n")),
        "s.yaml:6:23: `fail-fast-on` checks a state; `sleep` does not\n  hint: use one of http, ws, sql, redis, mock, stripe"
    );
    assert_eq!(
        errors(&format!("{prefix}      fail-fast-on: {{ timeout: 1s, http: {GET} }}\n")),
        "s.yaml:6:23: `timeout` does not apply to `fail-fast-on`\n  hint: the step under `fail-fast-on` runs within the `eventually`'s deadline; name it with `name:`"
    );
    assert_eq!(
        errors(&format!("{prefix}      fail-fast-on: lead rejected\n")),
        "s.yaml:6:21: `fail-fast-on` must be a map with one step, found a string\n  hint: write the known-bad state as one step: `fail-fast-on: { name: lead rejected, http: { ... } }`"
    );
    let e = errors(&format!(
        "{prefix}      fail-fast-on: {{ http: {{ service: a }} }}\n"
    ));
    assert!(
        e.starts_with("s.yaml:6:29: `http` step needs `request`"),
        "{e}"
    );
    let e = errors(&format!("{prefix}      fail-fast-on: {{ http: {{ service: a, request: {{ method: GET, path: \"${{nope}}\" }} }} }}\n"));
    assert!(
        e.starts_with("s.yaml:6:") && e.contains("`${nope}` is not defined here"),
        "{e}"
    );
}
