//! The `tekup-mocks` binary: readiness line, admin API over HTTP, exit codes.

use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt as _, BufReader};

const BIN: &str = env!("CARGO_BIN_EXE_tekup-mocks");

#[tokio::test]
async fn all_mocks_start_and_are_driven_over_the_admin_api() {
    let mut child = tokio::process::Command::new(BIN)
        .arg("--all")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .expect("the readiness line comes")
        .unwrap()
        .expect("a line");
    let urls: Value = serde_json::from_str(&line).unwrap();
    let client = reqwest::Client::new();
    for name in ["openai", "gemini", "graph", "stripe"] {
        let base = urls[name]
            .as_str()
            .unwrap_or_else(|| panic!("{name} in {line}"));
        let health: Value = client
            .get(format!("{base}/__admin/health"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(health, json!({"mock": name, "status": "ok"}));
    }
    let stripe = urls["stripe"].as_str().unwrap();
    let added = client
        .post(format!("{stripe}/__admin/faults"))
        .json(&json!({"kind": "status", "status": 503, "times": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(added.status(), 201);
    let failed = client
        .get(format!("{stripe}/v1/customers"))
        .bearer_auth("sk_test_x")
        .send()
        .await
        .unwrap();
    assert_eq!(failed.status(), 503);
    let body: Value = failed.json().await.unwrap();
    assert_eq!(body["error"]["type"], "api_error");
    let journal: Vec<Value> = client
        .get(format!("{stripe}/__admin/journal"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(journal.len(), 1);
    assert_eq!(journal[0]["fault"], "status");

    // An unmet expectation is the admin client's to verify: SIGTERM still
    // shuts down cleanly (the in-process drop check stays out of the binary).
    let unmet = client
        .post(format!("{stripe}/__admin/expectations"))
        .json(&json!({"path": "/v1/refunds"}))
        .send()
        .await
        .unwrap();
    assert_eq!(unmet.status(), 201);
    let pid = child.id().expect("still running").to_string();
    let term = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(term.success());
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("the binary exits after SIGTERM")
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}\n{stderr}", out.status);
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[tokio::test]
async fn no_mock_selected_is_a_usage_error() {
    let output = tokio::process::Command::new(BIN).output().await.unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no mock selected"), "{stderr}");
}

#[tokio::test]
async fn help_explains_standalone_use() {
    let output = tokio::process::Command::new(BIN)
        .arg("--help")
        .output()
        .await
        .unwrap();
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for needle in [
        "/__admin/faults",
        "--all",
        "--tls",
        "--stripe-webhook",
        "Exit codes",
    ] {
        assert!(help.contains(needle), "--help lacks {needle}");
    }
}

#[tokio::test]
async fn a_taken_port_exits_with_code_1_and_a_hint() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let output = tokio::process::Command::new(BIN)
        .args(["--openai", &port])
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("failed to bind the openai mock"),
        "{stderr}"
    );
    assert!(stderr.contains("hint:"), "{stderr}");
}
