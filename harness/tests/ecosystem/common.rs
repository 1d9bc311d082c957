//! Shared checks of the ecosystem tests.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tekup_harness::env::Ecosystem;

pub(crate) const ACME_KEY: &str = "tk_acmekey1_AcmeTestSecretNotForProduction01";

pub(crate) fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub(crate) fn ecosystem_file() -> PathBuf {
    workspace().join("fixtures/ecosystem.toml")
}

/// Whether `pid` is a live process (zombies count as gone: they hold no
/// resources and wait only for a reaper).
pub(crate) fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rfind(')')
                .and_then(|i| stat[i + 2..].chars().next())
                .unwrap_or('X');
            state != 'Z' && state != 'X'
        }
        Err(_) => false,
    }
}

/// Polls `condition` until it holds or `within` passes.
pub(crate) async fn eventually(within: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every service answers `/health` with a working database, every mock its
/// admin health, and a lead created in Flow reaches the CRM as a contact
/// (through the queue and the worker).
pub(crate) async fn check_answers(eco: &Ecosystem) {
    let http = reqwest::Client::new();
    for name in [
        "flow-api",
        "crm-api",
        "secure-platform",
        "gateway",
        "worker",
    ] {
        let url = format!("{}/health", eco.url(name).expect("service URL"));
        let body: Value = http
            .get(&url)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{name} answers: {e}"))
            .json()
            .await
            .expect("health is JSON");
        assert_eq!(body["status"], "ok", "{name}: {body}");
        assert_eq!(body["database"], "ok", "{name}: {body}");
    }
    for name in ["openai", "gemini", "graph", "stripe"] {
        let mock = eco.mock(name).expect("mock handle");
        let status = http
            .get(format!("{}/health", mock.admin_url))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{name} admin answers: {e}"))
            .status();
        assert!(status.is_success(), "{name} admin health: {status}");
    }
    let email = format!("john-{}@example.com", eco.run_id());
    let lead: Value = http
        .post(format!("{}/leads", eco.url("flow-api").expect("flow")))
        .header("x-tenant-key", ACME_KEY)
        .header("x-tenant-id", "acme")
        .header("x-source-app", "flow-web")
        .json(&json!({ "firstName": "John", "email": email }))
        .send()
        .await
        .expect("lead created")
        .json()
        .await
        .expect("lead is JSON");
    assert_eq!(lead["email"], email.as_str(), "{lead}");
    // The worker links the lead to its contact asynchronously: wait for it.
    let lead_url = format!(
        "{}/leads/{}",
        eco.url("flow-api").expect("flow"),
        lead["id"].as_str().expect("lead id")
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let lead = loop {
        let lead: Value = http
            .get(&lead_url)
            .header("x-tenant-key", ACME_KEY)
            .header("x-tenant-id", "acme")
            .header("x-source-app", "flow-web")
            .send()
            .await
            .expect("lead read")
            .json()
            .await
            .expect("lead is JSON");
        if lead["contactId"].is_string() || tokio::time::Instant::now() > deadline {
            break lead;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let contact_id = lead["contactId"].as_str().unwrap_or_else(|| {
        panic!("lead not linked to a CRM contact by the worker within 20 s: {lead}")
    });

    let pool = eco.postgres_pool().await.expect("postgres pool");
    let (contacts,): (i64,) =
        sqlx::query_as("select count(*) from crm.contacts where id::text = $1 and email = $2")
            .bind(contact_id)
            .bind(&email)
            .fetch_one(&pool)
            .await
            .expect("contact query");
    assert_eq!(contacts, 1, "the CRM stored the contact");
    pool.close().await;

    let mut redis = eco.redis().await.expect("redis connection");
    let pong: String = redis::cmd("PING")
        .query_async(&mut redis)
        .await
        .expect("redis answers");
    assert_eq!(pong, "PONG");
}

/// Live processes in the process group `pgid` (children of a group leader
/// included, e.g. Postgres backends).
pub(crate) fn group_members(pgid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            let Some(close) = stat.rfind(')') else {
                return false;
            };
            let fields: Vec<&str> = stat[close + 2..].split(' ').collect();
            fields.first().is_some_and(|s| *s != "Z" && *s != "X")
                && fields.get(2).and_then(|g| g.parse::<u32>().ok()) == Some(pgid)
        })
        .collect()
}

/// The process-group leaders recorded in an ecosystem state document.
pub(crate) fn recorded_pids(state: &Value) -> Vec<u32> {
    state["backend"]["processes"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|p| p["pid"].as_u64())
                .filter_map(|p| u32::try_from(p).ok())
                .collect()
        })
        .unwrap_or_default()
}

/// A job name of this test run alone, so its kept clusters are its own.
pub(crate) fn job_name(what: &str) -> String {
    format!("{what}-{}", std::process::id())
}

/// Removes the clusters kept for `job` from the cache.
pub(crate) fn forget(job: &str) {
    let cache = std::env::var_os("TEKUP_CACHE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("tekup-harness-cache"));
    for entry in std::fs::read_dir(cache).into_iter().flatten().flatten() {
        if entry
            .file_name()
            .to_string_lossy()
            .contains(&format!("+{job}-"))
        {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}
