//! The `tokens` class catches its deliberate defects, and its repository
//! scan finds what it should where it should.

use std::time::Duration;

use tekup_harness::contract::Contract;
use tekup_harness::platform::token::Claims;
use tekup_harness::sweep::{long_lived_tokens, Class};

use crate::{matching, sweep_on, workspace};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_tokens_class_catches_uncapped_tokens_and_unprotected_webhooks() {
    let report = sweep_on(
        "token-no-lifetime-cap,webhook-replay,webhook-no-timestamp",
        &[Class::Tokens],
    )
    .await;
    let tokens = &report.classes[0];
    assert!(tokens.skipped.is_none(), "{:?}", tokens.skipped);
    let titles: Vec<String> = report.findings().map(ToString::to_string).collect();
    let all = titles.join("\n\n");
    // token-no-lifetime-cap: the ceiling and the iat check.
    for needle in [
        "a token valid for 100 years answered 200 (expected 401)",
        "a token with exp - iat = 66s (max + leeway + 1 s) answered 200 (expected 401)",
        "a token issued 35s in the future answered 200 (expected 401)",
    ] {
        let found = matching(&report, needle);
        assert_eq!(found.len(), 1, "`{needle}` not reported once:\n{all}");
        let repro = found[0].repro.as_ref().expect("a repro");
        assert!(
            repro.curl().contains("authorization: ***"),
            "{}",
            repro.curl()
        );
    }
    assert!(
        matching(&report, "rule: tokens.max-lifetime (60s, leeway 5s)").len() == 2,
        "{all}"
    );
    // webhook-no-timestamp: both sides of the tolerance.
    for needle in [
        "an event signed `tolerance + 60 s` ago answered 200 (expected 4xx)",
        "an event signed `tolerance + 60 s` ahead answered 200 (expected 4xx)",
    ] {
        assert_eq!(matching(&report, needle).len(), 1, "`{needle}`:\n{all}");
    }
    // webhook-replay: the second delivery published again.
    let replay = matching(&report, "a replayed event was handled again");
    assert_eq!(replay.len(), 1, "{all}");
    assert!(
        replay[0].detail.contains("PAYMENT_RECEIVED"),
        "{}",
        replay[0]
    );
    // And nothing the defects do not explain: the other checks held.
    assert_eq!(report.findings().count(), 6, "{all}");
}

#[test]
fn the_repository_scan_names_the_file_and_line_of_a_long_lived_token() {
    let dir = tempfile::tempdir().unwrap();
    let now = chrono::Utc::now().timestamp();
    let century = Claims::new(
        "flow-api",
        "crm-api",
        "acme",
        "",
        now,
        100 * 365 * 24 * 3600,
    )
    .sign(b"secret");
    let fresh = Claims::new("flow-api", "crm-api", "acme", "", now, 60).sign(b"secret");
    std::fs::create_dir_all(dir.path().join("scenarios")).unwrap();
    std::fs::write(
        dir.path().join("scenarios/leak.yaml"),
        format!("vars:\n  fresh: \"{fresh}\"\n  old: \"Bearer {century}\"\n"),
    )
    .unwrap();
    // Build output is not the repository's.
    std::fs::create_dir_all(dir.path().join("target")).unwrap();
    std::fs::write(dir.path().join("target/leak.txt"), &century).unwrap();
    let found = long_lived_tokens(dir.path(), Duration::from_secs(60)).unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].place(), "scenarios/leak.yaml:3");
    assert!(found[0].why.contains("100 years"), "{}", found[0].why);
    assert_eq!(found[0].claims["iss"], "flow-api");
}

#[test]
fn the_repository_commits_no_long_lived_token() {
    let max = Contract::reference().tokens.max_lifetime;
    let found = long_lived_tokens(&workspace(), max).unwrap();
    let places: Vec<String> = found
        .iter()
        .map(|t| format!("{} {}", t.place(), t.why))
        .collect();
    assert!(places.is_empty(), "{}", places.join("\n"));
}
