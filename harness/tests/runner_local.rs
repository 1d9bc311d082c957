//! The runner's requests and expectations against a small local server
//! instead of the whole ecosystem (an `external` ecosystem of one service,
//! `echo`): what a step sends (query, cookies, form, multipart and raw
//! bodies) arrives as written, and every operator of an expectation bites,
//! its failure naming the operator and the value it saw.

use std::path::Path;
use std::sync::Arc;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::IntoResponse;
use tekup_harness::env::{Ecosystem, Runtime};
use tekup_harness::report::{ScenarioReport, Status};
use tekup_harness::scenario::parse_str;
use tekup_harness::scenario::run::{failure_text, Runner};

/// Answers every request with what it received, as JSON; the response
/// carries `x-echo: <the request's x-echo>` and `x-version: 3`.
async fn echo(method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> impl IntoResponse {
    let header = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    let answer = serde_json::json!({
        "method": method.as_str(),
        "path": uri.path(),
        "query": uri.query().unwrap_or_default(),
        "cookie": header("cookie"),
        "content-type": header("content-type"),
        "body": String::from_utf8_lossy(&body),
        "json": json,
    });
    (
        [("x-echo", header("x-echo")), ("x-version", "3".to_owned())],
        axum::Json(answer),
    )
}

async fn runner() -> (Runner, tempfile::TempDir) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let app = axum::Router::new().fallback(echo);
        let _ = axum::serve(listener, app).await;
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let eco_file = dir.path().join("ecosystem.toml");
    std::fs::write(&eco_file, "[vars]\nadmin-token = \"t\"\n\n[component.echo]\nprogram = \"echo\"\nport = 8080\nready = { http = \"/health\" }\n").expect("write");
    let external = dir.path().join("external.toml");
    std::fs::write(&external, format!("[component.echo]\nurl = \"{url}\"\n")).expect("write");
    let eco = Ecosystem::builder()
        .file(&eco_file)
        .runtime(Runtime::External)
        .external_file(&external)
        .logs_dir(dir.path().join("logs"))
        .start()
        .await
        .unwrap_or_else(|e| panic!("{}", tekup_harness::env::error_chain(&e)));
    let runner = Runner::new(Arc::new(eco)).await.expect("runner");
    (runner, dir)
}

async fn run(runner: &Runner, dir: &Path, steps: &str) -> ScenarioReport {
    let file = dir.join("t.yaml");
    let s =
        parse_str(&file, &format!("name: t\nsteps:\n{steps}")).unwrap_or_else(|e| panic!("{e}"));
    runner.run(&s).await
}

fn passed(r: &ScenarioReport) {
    assert_eq!(
        r.status,
        Status::Passed,
        "{}",
        failure_text(r).unwrap_or_default()
    );
}

fn failed_with(r: &ScenarioReport, message: &str) {
    assert_eq!(r.status, Status::Failed, "must fail with {message}");
    let got = &r.failure.as_ref().expect("a failure").message;
    assert!(got.contains(message), "expected `{message}` in: {got}");
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_arrive_as_written_and_operators_bite() {
    let (runner, dir) = runner().await;
    std::fs::write(dir.path().join("leads.csv"), "id,name\n1,Ada\n").expect("write");
    let dir = dir.path();
    let step = |request: &str, expect: &str| {
        format!(
            "  - http:\n      service: echo\n      request: {request}\n      expect: {expect}\n"
        )
    };

    // Requests: query, cookies, form, raw body, multipart.
    let r = run(&runner, dir, &step(
        "{ method: GET, path: \"/q?x=1\", query: { q: \"a b&c=d\", tag: [x, y] }, cookies: { session: abc, theme: dark } }",
        "{ json: { query: \"x=1&q=a+b%26c%3Dd&tag=x&tag=y\", cookie: \"session=abc; theme=dark\" } }",
    )).await;
    passed(&r);
    let r = run(&runner, dir, &step(
        "{ method: POST, path: /f, form: { name: \"Ada L\", n: 1 } }",
        "{ json: { body: \"name=Ada+L&n=1\", content-type: application/x-www-form-urlencoded } }",
    )).await;
    passed(&r);
    let r = run(
        &runner,
        dir,
        &step(
            "{ method: PUT, path: /r, body: \"<lead id='1'/>\", content-type: application/xml }",
            "{ json: { body: \"<lead id='1'/>\", content-type: application/xml, json: null } }",
        ),
    )
    .await;
    passed(&r);
    let r = run(&runner, dir, &step(
        "{ method: POST, path: /m, multipart: { title: Q3, leads: { file: leads.csv, content-type: text/csv } } }",
        "{ json: { content-type: { $regex: \"^multipart/form-data; boundary=\" }, \
         body: { $regex: \"(?s)name=\\\"title\\\"\\r\\n\\r\\nQ3\\r\\n.*name=\\\"leads\\\"; filename=\\\"leads.csv\\\"\\r\\ncontent-type: text/csv\\r\\n\\r\\nid,name\\n1,Ada\\n\" } } }",
    )).await;
    passed(&r);

    // Every operator passes where it holds...
    let body = "{ method: POST, path: /o, headers: { x-echo: v-12 }, json: { id: ld-7, n: 5, at: \"2024-05-01T10:00:00Z\", tags: [a, b], s: open, o: { a: 1, b: 2 } } }";
    let r = run(&runner, dir, &step(body,
        "{ headers: { x-echo: { $regex: \"^v-[0-9]+$\" }, x-version: { $gte: 3 }, x-nope: $absent, content-type: $any }, \
         json: { json: { id: { $regex: \"^ld-\" }, n: { $gt: 4, $lte: 5 }, at: { $lt: \"2025-01-01T00:00:00Z\" }, tags: { $len: 2 }, \
         s: { $one-of: [open, won] }, o: { $exact: { a: 1, b: { $type: integer } } }, missing: $absent, id2: $absent, n2: $absent } } }",
    )).await;
    passed(&r);
    // ... and fails, naming itself, where it does not.
    let cases = [
        (
            "{ json: { json: { id: { $regex: \"^lead_\" } } } }",
            "$.json.id: expected to match /^lead_/ ($regex), got \"ld-7\"",
        ),
        (
            "{ json: { json: { n: { $gt: 5 } } } }",
            "$.json.n: expected > 5 ($gt), got 5",
        ),
        (
            "{ json: { json: { n: { $gte: 6 } } } }",
            "$.json.n: expected >= 6 ($gte), got 5",
        ),
        (
            "{ json: { json: { n: { $lt: 5 } } } }",
            "$.json.n: expected < 5 ($lt), got 5",
        ),
        (
            "{ json: { json: { at: { $lte: \"2024-05-01T09:00:00Z\" } } } }",
            "$.json.at: expected <= 2024-05-01T09:00:00Z ($lte)",
        ),
        (
            "{ json: { json: { tags: { $len: 3 } } } }",
            "$.json.tags: expected length 3 ($len), got length 2",
        ),
        (
            "{ json: { json: { n: { $type: string } } } }",
            "$.json.n: expected a string ($type), got 5",
        ),
        (
            "{ json: { json: { s: { $one-of: [won, lost] } } } }",
            "$.json.s: expected one of [\"won\",\"lost\"] ($one-of), got \"open\"",
        ),
        (
            "{ json: { json: { id: $absent } } }",
            "$.json.id: expected absent ($absent), got \"ld-7\"",
        ),
        (
            "{ json: { json: { gone: $any } } }",
            "$.json.gone: missing (expected \"$any\")",
        ),
        (
            "{ json: { json: { o: { $exact: { a: 1 } } } } }",
            "$.json.o: unexpected key `b` ($exact), with 2",
        ),
        (
            "{ headers: { x-echo: { $regex: \"^w-\" } } }",
            "header `x-echo`: expected to match /^w-/ ($regex), got \"v-12\"",
        ),
        (
            "{ headers: { x-version: { $lt: 3 } } }",
            "header `x-version`: expected < 3 ($lt), got \"3\"",
        ),
        (
            "{ headers: { x-echo: $absent } }",
            "header `x-echo`: expected absent ($absent), got `v-12`",
        ),
        (
            "{ headers: { x-nope: $any } }",
            "header `x-nope` is missing (expected `$any`)",
        ),
    ];
    for (expect, message) in cases {
        let r = run(&runner, dir, &step(body, expect)).await;
        failed_with(&r, message);
    }
}
