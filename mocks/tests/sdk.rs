//! Fidelity proven by the official SDKs: runs `mocks/tests/sdk/test_*.py`
//! (openai, stripe, google-genai, msgraph-sdk from PyPI) against mocks started
//! here, then checks the journals from Rust as well.
//!
//! The interpreter is `$TEKUP_PYTHON`, else `<workspace>/.venv/bin/python`.
//! That venv is created (or brought up to date with requirements.txt) on
//! first use by `mocks/tests/sdk/setup-venv.sh`, one test binary at a time
//! (a lock file beside it); it takes a minute or two the first time, and
//! nothing once the venv matches. When the SDKs cannot be had (no Python,
//! no package index) the tests FAIL (they never skip) and say how to
//! create the venv by hand.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tekup_mocks::{Gemini, Graph, OpenAi, Stripe, TestCa};

const SETUP_HINT: &str = "create it with `mocks/tests/sdk/setup-venv.sh` \
    (or: python3 -m venv .venv && .venv/bin/pip install -r mocks/tests/sdk/requirements.txt) \
    at the workspace root, or point TEKUP_PYTHON at an interpreter that has them";

fn sdk_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk")
}

fn python() -> PathBuf {
    let python = match std::env::var_os("TEKUP_PYTHON") {
        Some(p) => PathBuf::from(p),
        None => {
            ensure_venv();
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python")
        }
    };
    assert!(
        python.exists(),
        "the Python interpreter {} for the SDK tests does not exist: {SETUP_HINT}",
        python.display()
    );
    python
}

/// Creates or updates `<workspace>/.venv` with the pinned SDKs, once per
/// process, one process at a time; a no-op when the venv is up to date.
fn ensure_venv() {
    use std::io::Write as _;
    static DONE: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    let result = DONE.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let lock = std::fs::File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(root.join(".venv.lock"))
            .map_err(|e| format!("failed to open .venv.lock: {e}"))?;
        lock.lock().map_err(|e| format!("failed to lock .venv.lock: {e}"))?;
        // Straight to standard error, past the test harness's capture: the
        // first set-up takes a while and says so as it starts.
        let mut err = std::io::stderr();
        let _ = writeln!(err, "sdk tests: making sure .venv has the pinned SDKs (mocks/tests/sdk/setup-venv.sh; the first time takes a minute or two)");
        let out = std::process::Command::new("bash")
            .arg(sdk_dir().join("setup-venv.sh"))
            .output()
            .map_err(|e| format!("failed to run setup-venv.sh: {e}"))?;
        let _ = err.write_all(&out.stdout);
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "setup-venv.sh failed ({}):\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    });
    if let Err(e) = result {
        panic!("the venv of the SDK tests could not be made: {e}\n{SETUP_HINT}");
    }
}

/// Runs one SDK script with `env`, failing the test with its output if it fails.
async fn run_script(script: &str, env: &[(&str, String)]) -> String {
    let python = python();
    let check = tokio::process::Command::new(&python)
        .args(["-c", "import openai, stripe, google.genai, msgraph"])
        .output()
        .await
        .unwrap_or_else(|e| panic!("failed to run {}: {e}; {SETUP_HINT}", python.display()));
    assert!(
        check.status.success(),
        "the official SDKs are not installed for {}:\n{}\n{SETUP_HINT}",
        python.display(),
        String::from_utf8_lossy(&check.stderr)
    );
    let mut command = tokio::process::Command::new(&python);
    command
        .arg(sdk_dir().join(script))
        .current_dir(sdk_dir())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    for (k, v) in env {
        command.env(k, v);
    }
    let output = tokio::time::timeout(Duration::from_secs(240), command.output())
        .await
        .unwrap_or_else(|_| panic!("{script} did not finish within 240 s"))
        .unwrap_or_else(|e| panic!("failed to start {script}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{script} failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        output.status
    );
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_sdk() {
    let mock = OpenAi::builder().api_key("sk-test").start().await.unwrap();
    let out = run_script("test_openai.py", &[("MOCK_OPENAI_URL", mock.uri())]).await;
    assert!(out.contains("ok: SDK retried two 429s"), "{out}");
    let chat: Vec<_> = mock
        .journal()
        .into_iter()
        .filter(|r| r.path == "/v1/chat/completions")
        .collect();
    let statuses: Vec<_> = chat.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses,
        [Some(429), Some(429), Some(200)],
        "retries of the SDK as journaled"
    );
    assert!(chat.iter().all(|r| r
        .header("user-agent")
        .is_some_and(|ua| ua.starts_with("OpenAI/Python"))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_sdk_responses() {
    let mock = OpenAi::builder().api_key("sk-test").start().await.unwrap();
    let out = run_script(
        "test_openai_responses.py",
        &[("MOCK_OPENAI_URL", mock.uri())],
    )
    .await;
    assert!(
        out.contains("ok: unknown model refused with model_not_found"),
        "{out}"
    );
    let follow_up = mock
        .journal()
        .into_iter()
        .find(|r| {
            r.path == "/v1/responses"
                && r.body_json()
                    .is_some_and(|b| b["previous_response_id"].is_string())
        })
        .expect("a follow-up with previous_response_id was journaled");
    assert_eq!(follow_up.status, Some(200));
    let streams: Vec<_> = mock
        .journal()
        .into_iter()
        .filter(|r| r.path == "/v1/responses" && r.body_json().is_some_and(|b| b["stream"] == true))
        .collect();
    assert!(
        streams.len() >= 3,
        "three streamed responses: {}",
        streams.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_sdk_structured_outputs() {
    let mock = OpenAi::builder().api_key("sk-test").start().await.unwrap();
    let out = run_script(
        "test_openai_structured.py",
        &[("MOCK_OPENAI_URL", mock.uri())],
    )
    .await;
    assert!(
        out.contains("ok: responses.parse and text.format json_schema"),
        "{out}"
    );
    let parsed = mock
        .journal()
        .into_iter()
        .filter(|r| {
            r.path == "/v1/responses"
                && r.body_json()
                    .is_some_and(|b| b["text"]["format"]["name"] == "Contact")
        })
        .count();
    assert_eq!(
        parsed, 2,
        "responses.parse and responses.stream with text_format=Contact"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stripe_sdk() {
    let mock = Stripe::start().await.unwrap();
    let out = run_script("test_stripe.py", &[("MOCK_STRIPE_URL", mock.uri())]).await;
    assert!(
        out.contains("ok: webhook accepted by construct_event"),
        "{out}"
    );
    let posts: Vec<_> = mock
        .journal()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path == "/v1/customers")
        .collect();
    assert_eq!(posts.len(), 2, "one reset attempt and its retry");
    assert_eq!(
        posts[0].header("idempotency-key"),
        posts[1].header("idempotency-key")
    );
    assert!(posts[0]
        .body_form()
        .iter()
        .any(|(k, v)| k == "email" && v == "retry@example.com"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stripe_sdk_search() {
    let mock = Stripe::start().await.unwrap();
    let out = run_script("test_stripe_search.py", &[("MOCK_STRIPE_URL", mock.uri())]).await;
    assert!(out.contains("ok: malformed queries refused"), "{out}");
    let searches: Vec<_> = mock
        .journal()
        .into_iter()
        .filter(|r| r.path.ends_with("/search"))
        .collect();
    let refused = searches.iter().filter(|r| r.status == Some(400)).count();
    assert_eq!(refused, 9, "the refused queries and the foreign cursor");
    assert!(
        searches
            .iter()
            .any(|r| r.query.as_deref().is_some_and(|q| q.contains("page="))),
        "the SDK paged with page=next_page"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stripe_sdk_test_cards() {
    let mock = Stripe::start().await.unwrap();
    let out = run_script("test_stripe_cards.py", &[("MOCK_STRIPE_URL", mock.uri())]).await;
    assert!(out.contains("ok: raw numbers"), "{out}");
    let declines = mock
        .journal()
        .into_iter()
        .filter(|r| r.status == Some(402))
        .count();
    assert_eq!(
        declines,
        10 + 1 + 2,
        "ten decline cards, one after 3-D Secure, two raw numbers"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graph_sdk() {
    let mock = Graph::start().await.unwrap();
    let out = run_script(
        "test_graph.py",
        &[
            ("MOCK_GRAPH_URL", mock.uri()),
            ("MOCK_GRAPH_TENANT", mock.tenant()),
        ],
    )
    .await;
    assert!(out.contains("ok: page chain of 3 pages"), "{out}");
    let contacts: Vec<_> = mock
        .journal()
        .into_iter()
        .filter(|r| r.path.ends_with("/contacts") && r.method == "GET")
        .collect();
    assert_eq!(
        contacts.iter().map(|r| r.status).collect::<Vec<_>>(),
        [Some(429), Some(429), Some(200)]
    );
}

/// Runs a Graph SDK script against a fresh Graph mock, which it returns
/// for the journal checks.
async fn graph_script(script: &str, expect: &str) -> Graph {
    let mock = Graph::start().await.unwrap();
    let out = run_script(
        script,
        &[
            ("MOCK_GRAPH_URL", mock.uri()),
            ("MOCK_GRAPH_TENANT", mock.tenant()),
        ],
    )
    .await;
    assert!(out.contains(expect), "{out}");
    mock
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graph_sdk_delta_functions() {
    let mock = graph_script(
        "test_graph_delta.py",
        "ok: mailFolders/inbox/messages/delta()",
    )
    .await;
    let delta: Vec<_> = mock
        .journal()
        .into_iter()
        .filter(|r| r.path.contains("/delta"))
        .collect();
    assert!(
        delta
            .iter()
            .all(|r| r.path.ends_with("/delta()") && r.status == Some(200)),
        "every delta call of the SDK was delta() and served: {:?}",
        delta
            .iter()
            .map(|r| (&r.path, r.status))
            .collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graph_sdk_batch() {
    let mock = graph_script("test_graph_batch.py", "ok: per-request throttling").await;
    let inner: Vec<_> = mock
        .journal()
        .into_iter()
        .filter(|r| r.header("x-tekup-batch-request-id").is_some())
        .collect();
    assert!(
        inner
            .iter()
            .any(|r| r.method == "POST" && r.path.ends_with("/contacts")),
        "inner requests are journaled with their batch headers: {:?}",
        inner
            .iter()
            .map(|r| (&r.method, &r.path))
            .collect::<Vec<_>>()
    );
    assert!(inner.iter().all(|r| r
        .header("authorization")
        .is_some_and(|a| a.starts_with("Bearer "))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graph_sdk_count_and_search() {
    graph_script("test_graph_query.py", "ok: $search on users").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graph_sdk_attachments() {
    graph_script("test_graph_attachments.py", "ok: attachment deleted").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn genai_sdk_rest_and_live() {
    let rest = Gemini::start().await.unwrap();
    let ca = TestCa::generate().unwrap();
    let live = Gemini::builder().tls(&ca).start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    ca.write_ca_pem(&ca_file).unwrap();
    let out = run_script(
        "test_genai.py",
        &[
            ("MOCK_GEMINI_URL", rest.uri()),
            ("MOCK_GEMINI_TLS_URL", live.uri()),
            ("SSL_CERT_FILE", ca_file.display().to_string()),
        ],
    )
    .await;
    assert!(out.contains("ok: Live session over wss"), "{out}");
    assert!(
        out.contains(
            "ok: a scripted reply that does not fit the schema is an error naming the rule"
        ),
        "{out}"
    );
    let structured: Vec<_> = rest
        .journal()
        .into_iter()
        .filter(|r| r.path.ends_with("/models/gemini-2.5-flash:generateContent"))
        .collect();
    let statuses: Vec<_> = structured.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses,
        [Some(200), Some(200), Some(200), Some(200), Some(200), Some(200), Some(500), Some(400)],
        "structured-output calls: built, built again, list, enum, JSON Schema, scripted, misfit, text/plain"
    );
    assert!(
        structured[0].body_json().unwrap()["generationConfig"]["responseSchema"]["type"]
            == "OBJECT"
    );
    let upgrades: Vec<_> = live
        .journal()
        .into_iter()
        .filter(|r| r.path.starts_with("/ws/"))
        .collect();
    assert_eq!(upgrades.len(), 1, "one Live session");
    assert_eq!(upgrades[0].status, Some(101));
    assert_eq!(upgrades[0].header("x-goog-api-key"), Some("test-key"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn genai_sdk_live_voice_and_refusals() {
    let ca = TestCa::generate().unwrap();
    let live = Gemini::builder().tls(&ca).start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    ca.write_ca_pem(&ca_file).unwrap();
    let out = run_script(
        "test_genai_live.py",
        &[
            ("MOCK_GEMINI_TLS_URL", live.uri()),
            ("SSL_CERT_FILE", ca_file.display().to_string()),
        ],
    )
    .await;
    for step in [
        "ok: Live: 1.5 s of silence and audioStreamEnd get no turn",
        "ok: Live: spoken PCM (realtimeInput.audio) -> inputTranscription -> toolCall get_leads {status: new}",
        "ok: Live: spoken answer,",
        "ok: Live: manual activity (activityStart, mediaChunks, activityEnd) -> toolCall create_activity",
        "ok: Live: unknown or non-Live model refused at setup with APIError 1008",
        "ok: Live: audio it cannot read closes with 1007",
        "ok: Live: malformed JSON closes with 1007",
        "ok: Live: an unknown message kind closes with 1007",
    ] {
        assert!(out.contains(step), "missing step {step:?} in:\n{out}");
    }
    let sessions = live
        .journal()
        .into_iter()
        .filter(|r| r.path.starts_with("/ws/") && r.status == Some(101))
        .count();
    assert_eq!(sessions, 8, "one upgrade per Live session of the script");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sdk_surfaces_a_not_mocked_endpoint_as_its_own_error() {
    let openai = OpenAi::start().await.unwrap();
    let stripe = Stripe::start().await.unwrap();
    let gemini = Gemini::start().await.unwrap();
    let graph = Graph::builder().accept_any_token().start().await.unwrap();
    let out = run_script(
        "test_not_mocked.py",
        &[
            ("MOCK_OPENAI_URL", openai.uri()),
            ("MOCK_STRIPE_URL", stripe.uri()),
            ("MOCK_GEMINI_URL", gemini.uri()),
            ("MOCK_GRAPH_URL", graph.uri()),
        ],
    )
    .await;
    assert!(
        out.contains("ok: the not-mocked calls are in the journals"),
        "{out}"
    );
    let calendars: Vec<_> = graph
        .journal()
        .into_iter()
        .filter(|r| r.path.ends_with("/calendars"))
        .collect();
    assert_eq!(calendars.len(), 1, "journaled once, not retried");
    assert!(calendars[0].status.is_some_and(|s| s >= 400));
}
