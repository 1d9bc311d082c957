//! The operators of expected values and the request forms beside JSON, as
//! the checker reads them: good files give the model, malformed ones the
//! exact `file:line:col`, message and hint.

use std::path::Path;

use serde_json::json;
use tekup_harness::scenario::{parse_file, parse_str, Body, PartContent, StepKind};

fn errors(text: &str) -> String {
    parse_str(Path::new("s.yaml"), text)
        .expect_err("the file is invalid")
        .to_string()
}

fn http(expect: &str) -> String {
    format!(
        "name: s\nsteps:\n  - http:\n      service: crm-api\n      request: {{ method: GET, path: /x }}\n      expect: {expect}\n"
    )
}

#[test]
fn operators_are_kept_as_written_in_every_expected_value() {
    let text = "name: s\ntenants: [acme]\nsteps:\n  - ws: { connect: c, tenant: acme, app: crm-web }\n  - http:\n      service: crm-api\n      \
                request: { method: GET, path: /x }\n      expect:\n        headers: { x-request-id: { $regex: \"^[0-9a-f-]{36}$\" }, x-debug: $absent }\n        \
                json: { id: { $regex: \"^lead_\" }, n: { $gte: 1, $lt: 5 }, tags: { $len: { $gte: 1 } }, \"$$ref\": x, secret: $absent, \
                all: { $exact: [1, 2] } }\n  - ws: { expect: c, event: E, within: 1s, data: { at: { $gt: \"2024-01-01T00:00:00Z\" } }, envelope: { priority: { $one-of: [high, low] } } }\n  \
                - sql: { admin: true, query: select 1, expect: [[{ $type: integer }, $any]] }\n";
    let s = parse_str(Path::new("s.yaml"), text).unwrap_or_else(|e| panic!("{e}"));
    let StepKind::Http(h) = &s.steps[1].kind else {
        panic!("http")
    };
    let expect = h.expect.as_ref().expect("expect");
    assert_eq!(expect.headers["x-debug"], json!("$absent"));
    assert_eq!(
        expect.headers["x-request-id"],
        json!({ "$regex": "^[0-9a-f-]{36}$" })
    );
    assert_eq!(
        expect.json.as_ref().expect("json")["n"],
        json!({ "$gte": 1, "$lt": 5 })
    );
    let StepKind::Sql(q) = &s.steps[3].kind else {
        panic!("sql")
    };
    assert_eq!(
        q.expect,
        Some(vec![vec![json!({ "$type": "integer" }), json!("$any")]])
    );
}

#[test]
fn an_unknown_operator_names_the_closest_one() {
    assert_eq!(
        errors(&http("{ json: { id: { $regx: \"^a\" } } }")),
        "s.yaml:6:31: unknown operator `$regx`\n  hint: did you mean `$regex`? the operators are $regex, $gt, $gte, $lt, $lte, $len, $type, $one-of, $exact, $absent, $any; write a literal key `$regx` as `$$regx`"
    );
    assert_eq!(
        errors(&http("{ json: { id: $abset } }")),
        "s.yaml:6:29: unknown operator `$abset`\n  hint: did you mean `$absent`? the operators are $regex, $gt, $gte, $lt, $lte, $len, $type, $one-of, $exact, $absent, $any; write the text `$abset` as `$$abset`"
    );
}

#[test]
fn a_bad_regex_and_wrong_arguments_are_refused_where_written() {
    let e = errors(&http("{ json: { id: { $regex: \"(unclosed\" } } }"));
    assert!(e.starts_with("s.yaml:6:39: `$regex`: `(unclosed` is not a valid regex\n  hint: error: unclosed group"), "{e}");
    assert_eq!(
        errors(&http("{ json: { n: { $gt: soon } } }")),
        "s.yaml:6:35: `$gt` compares with a number or an RFC 3339 time, found `soon`\n  hint: write e.g. `{ $gt: 3 }` or `{ $gt: \"2024-01-01T00:00:00Z\" }`"
    );
    assert_eq!(
        errors(&http("{ json: { n: { $len: [1] } } }")),
        "s.yaml:6:36: `$len` takes a whole number or a comparison, found a list\n  hint: write e.g. `{ $len: 2 }` or `{ $len: { $gte: 1 } }`"
    );
    assert_eq!(
        errors(&http("{ json: { n: { $type: strng } } }")),
        "s.yaml:6:37: `$type`: unknown type `strng`\n  hint: did you mean `string`? the types are string, number, integer, boolean, null, array, object"
    );
    assert_eq!(
        errors(&http("{ json: { n: { $one-of: a } } }")),
        "s.yaml:6:39: `$one-of` takes a non-empty list of values, found a string\n  hint: write e.g. `{ $one-of: [open, won] }`"
    );
    assert_eq!(
        errors(&http("{ json: { n: { $exact: 1 } } }")),
        "s.yaml:6:38: `$exact` takes a map or a list, found a number\n  hint: write e.g. `{ $exact: { id: 1, name: a } }`"
    );
}

#[test]
fn operators_stand_alone_in_their_map_and_where_they_mean_something() {
    assert_eq!(
        errors(&http("{ json: { n: { $gt: 1, id: 2 } } }")),
        "s.yaml:6:38: `id` is a literal key in a map of operators (`$gt`)\n  hint: a map holds operators only (all must hold) or keys only; write a literal key that starts with `$` as `$$key`"
    );
    assert_eq!(
        errors(&http("{ json: [$absent] }")),
        "s.yaml:6:24: `$absent` stands for a key's value: the key must not be there\n  hint: write it under the key, e.g. `json: { password: $absent }`"
    );
    assert_eq!(
        errors(&http("{ json: { n: $regex } }")),
        "s.yaml:6:28: `$regex` needs an argument\n  hint: write it as a map: `{ $regex: ... }`"
    );
    assert_eq!(
        errors(&http("{ headers: { x-a: { $exact: [1] } } }")),
        "s.yaml:6:35: `$exact` has no meaning for a header: its value is text\n  hint: write the value itself: `x-name: value`"
    );
    assert_eq!(
        errors(
            "name: s\nsteps:\n  - sql: { admin: true, query: select 1, expect: [[$absent]] }\n"
        ),
        "s.yaml:3:52: `$absent` stands for a key's value: the key must not be there\n  hint: write it under the key, e.g. `json: { password: $absent }`"
    );
    let mock = "name: s\nsteps:\n  - mock: { expect: gemini, request: { json: { model: { $regx: a } } } }\n";
    assert!(
        errors(mock).starts_with("s.yaml:3:57: unknown operator `$regx`"),
        "{}",
        errors(mock)
    );
}

fn request(body: &str) -> String {
    format!(
        "name: s\nsteps:\n  - http:\n      service: crm-api\n      request: {{ method: POST, path: /x, {body} }}\n"
    )
}

#[test]
fn requests_carry_query_cookies_and_one_body_of_any_kind() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenario_fixtures/s.yaml");
    let text = "name: s\nvars: { n: 2 }\nsteps:\n  - http:\n      service: crm-api\n      request:\n        method: post\n        path: /import\n        \
                query: { q: \"a b&c\", tag: [x, y], n: \"${n}\" }\n        cookies: { session: abc }\n        \
                multipart: { title: Q3, leads: { file: parts/leads.csv, content-type: text/csv }, note: { text: hi, filename: n.txt } }\n  \
                - http: { service: crm-api, request: { method: POST, path: /f, form: { a: 1 } } }\n  \
                - http: { service: crm-api, request: { method: POST, path: /r, body: \"<x/>\", content-type: application/xml } }\n";
    let s = parse_str(&path, text).unwrap_or_else(|e| panic!("{e}"));
    let StepKind::Http(h) = &s.steps[0].kind else {
        panic!("http")
    };
    let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect()
    };
    assert_eq!(
        h.request.query,
        pairs(&[("q", "a b&c"), ("tag", "x"), ("tag", "y"), ("n", "${n}")])
    );
    assert_eq!(h.request.cookies, pairs(&[("session", "abc")]));
    let Some(Body::Multipart(parts)) = &h.request.body else {
        panic!("multipart")
    };
    assert_eq!(parts.len(), 3);
    assert_eq!(parts[1].filename.as_deref(), Some("leads.csv"));
    assert_eq!(parts[1].content_type.as_deref(), Some("text/csv"));
    assert!(matches!(&parts[1].content, PartContent::File(p) if p.ends_with("parts/leads.csv")));
    assert_eq!(parts[2].content, PartContent::Text("hi".into()));
    let StepKind::Http(f) = &s.steps[1].kind else {
        panic!("http")
    };
    assert_eq!(f.request.body, Some(Body::Form(pairs(&[("a", "1")]))));
    let StepKind::Http(r) = &s.steps[2].kind else {
        panic!("http")
    };
    assert_eq!(
        r.request.body,
        Some(Body::Raw {
            text: "<x/>".into(),
            content_type: "application/xml".into()
        })
    );
    // The shipped fixture directory really holds the part's file.
    assert!(parse_file(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenario_fixtures/lead-to-contact.yaml")
    )
    .is_ok());
}

#[test]
fn request_forms_are_refused_where_wrong() {
    assert_eq!(
        errors(&request("json: { a: 1 }, form: { a: 1 }")),
        "s.yaml:5:58: a request has one body; `json` and `form` are both given\n  hint: keep one of json, form, multipart, body"
    );
    assert_eq!(
        errors(&request("body: text")),
        "s.yaml:5:16: `request` needs `content-type`\n  hint: add `content-type: text/plain` beside `body`"
    );
    assert_eq!(
        errors(&request("json: {}, content-type: text/plain")),
        "s.yaml:5:52: `content-type` goes with a raw `body`\n  hint: give the body as `body: ...`; for JSON, form and multipart bodies the content type is set for you (or set it under `headers`)"
    );
    assert_eq!(
        errors(&request("multipart: { f: { file: nowhere.csv } }")),
        "s.yaml:5:66: no file `nowhere.csv` (looked for nowhere.csv)\n  hint: a part's `file` is a path relative to the scenario file"
    );
    assert_eq!(
        errors(&request("multipart: { f: { content-type: text/csv } }")),
        "s.yaml:5:58: part `f` of `multipart` needs `file` or `text`\n  hint: add `file: path/next/to/the/scenario.csv` or `text: inline content`"
    );
    assert_eq!(
        errors(&request("query: [a]")),
        "s.yaml:5:49: `query` must be a map of names to values, found a list\n  hint: write e.g. `query: { name: value, other: \"${saved}\" }`"
    );
    assert_eq!(
        errors(&request("cookies: { a: b }, headers: { Cookie: x=y }")),
        "s.yaml:5:51: cookies are given twice: in `cookies` and in the `Cookie` header\n  hint: keep `cookies: { name: value }` and drop the header"
    );
}
