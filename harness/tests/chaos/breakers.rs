//! The harness holds a platform's breakers to the open time the ecosystem
//! file states (`breaker-open-secs`, 5 s): Stripe failing opens crm-api's
//! breaker for it; then nothing more is sent, and
//! [`watch_open_breakers`] waits for the breaker to leave the open state.
//! The reference services' `/metrics` and `/admin/breakers` read half-open
//! once the time has passed; a build whose breakers keep what they last
//! recorded (`breaker-gauge-stale`) is caught, the finding naming the
//! service, the target and how long it read open. Waits are the watch's
//! own, on the condition, with [`GRACE_FACTOR`] open times as the
//! deadline.

use std::time::Duration;

use serde_json::{json, Value};
use tekup_harness::env::{error_chain, Ecosystem, Runtime};
use tekup_harness::invariants::breakers::GRACE_FACTOR;
use tekup_harness::invariants::{watch_open_breakers, Finding};
use tekup_harness::platform::{Platform, TenantClient};

/// The reference ecosystem on the process runtime, without link proxies,
/// with `defects` on when given.
async fn start(defects: Option<&str>) -> Ecosystem {
    let mut builder = Ecosystem::builder()
        .file(super::links::fixtures())
        .runtime(Runtime::Process)
        .links(false);
    if let Some(defects) = defects {
        builder = builder.defects(defects);
    }
    builder
        .start()
        .await
        .unwrap_or_else(|e| panic!("the ecosystem starts: {}", error_chain(&e)))
}

/// Fails Stripe's customer creation and wins two deals on crm-api: three
/// attempts of the first and two of the second fail, and the fifth opens
/// crm-api's breaker for Stripe. Nothing is sent after that. Returns the
/// client and the deals, to win them again after the heal.
pub(super) async fn open_crm_breaker_for_stripe(
    eco: &Ecosystem,
    platform: &Platform,
    tenant_name: &str,
) -> (TenantClient, Vec<String>) {
    let tenant = platform.create_tenant(tenant_name).await.expect("tenant");
    let crm = platform.client(&tenant, "crm-web");
    let mut deals = Vec::new();
    for i in 0..2 {
        let deal = crm
            .post(
                "crm-api",
                "/deals",
                &json!({ "title": format!("Deal {i}"), "amount": 1000, "currency": "eur" }),
            )
            .await
            .expect("create a deal");
        assert_eq!(deal.status, 201, "{:?}", deal.body);
        deals.push(deal.body["id"].as_str().expect("id").to_owned());
    }
    let stripe = eco.mock("stripe").expect("stripe mock");
    stripe
        .add_fault(
            platform.http(),
            &tekup_mocks::Fault::status(500).on_path("/v1/customers"),
        )
        .await
        .expect("fault added");
    for deal in &deals {
        let won = crm
            .post("crm-api", &format!("/deals/{deal}/won"), &json!({}))
            .await
            .expect("answered");
        assert_eq!(won.status, 502, "{:?}", won.body);
    }
    assert_eq!(customer_calls(eco, platform).await, 5);
    (crm, deals)
}

/// How many customer creations reached the Stripe mock.
async fn customer_calls(eco: &Ecosystem, platform: &Platform) -> usize {
    eco.mock("stripe")
        .expect("stripe mock")
        .journal(platform.http(), Some("POST"), Some("/v1/customers"))
        .await
        .expect("the journal")
        .len()
}

/// crm-api's `/admin/breakers` entry for Stripe.
async fn admin_entry(platform: &Platform) -> Value {
    let answer = platform
        .admin_get("crm-api", "/admin/breakers")
        .await
        .expect("answered");
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer.body["breakers"]
        .as_array()
        .and_then(|all| all.iter().find(|b| b["target"] == "stripe"))
        .cloned()
        .unwrap_or_else(|| panic!("no stripe breaker in {}", answer.body))
}

/// crm-api's `circuit_breaker_state` line for Stripe.
async fn gauge_line(platform: &Platform) -> String {
    let answer = platform
        .get_public("crm-api", "/metrics")
        .await
        .expect("answered");
    let text = answer.body.as_str().unwrap_or_default().to_owned();
    text.lines()
        .find(|l| l.starts_with(r#"circuit_breaker_state{target="stripe"} "#))
        .unwrap_or_else(|| panic!("no stripe gauge in crm-api's /metrics:\n{text}"))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_breaker_reads_half_open_once_the_stated_time_passed_without_traffic() {
    let eco = start(None).await;
    let platform = Platform::from_ecosystem(&eco).expect("platform");
    open_crm_breaker_for_stripe(&eco, &platform, "breakers").await;
    let watch = watch_open_breakers(&eco, &platform)
        .await
        .expect("the file states an open time");
    assert_eq!(watch.open_time, Duration::from_secs(5));
    assert!(watch.holds(), "{watch:?}");
    // Half-open by the clock alone: Stripe heard nothing since it opened.
    assert_eq!(
        gauge_line(&platform).await,
        r#"circuit_breaker_state{target="stripe"} 2"#
    );
    assert_eq!(
        admin_entry(&platform).await,
        json!({ "target": "stripe", "state": "half-open" })
    );
    assert_eq!(
        customer_calls(&eco, &platform).await,
        5,
        "no probe was sent"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_breaker_gauge_that_does_not_follow_the_clock_is_caught() {
    let eco = start(Some("breaker-gauge-stale")).await;
    let platform = Platform::from_ecosystem(&eco).expect("platform");
    open_crm_breaker_for_stripe(&eco, &platform, "breakers").await;
    let watch = watch_open_breakers(&eco, &platform)
        .await
        .expect("the file states an open time");
    let limit = watch.open_time * GRACE_FACTOR;
    let [finding] = watch.findings.as_slice() else {
        panic!("expected one finding: {watch:?}");
    };
    let Finding::BreakerStale {
        service,
        target,
        read_open,
        open_time,
    } = finding
    else {
        panic!("expected a stale breaker: {finding}");
    };
    assert_eq!(
        (service.as_str(), target.as_str(), *open_time),
        ("crm-api", "stripe", Duration::from_secs(5))
    );
    assert!(*read_open >= limit, "{finding}");
    let text = finding.to_string();
    assert!(
        text.starts_with("crm-api's circuit breaker for stripe has read open for ")
            && text.contains(
                "s with no traffic, though the platform's breakers open for 5s (`breaker-open-secs`)"
            ),
        "{text}"
    );
    // Both views keep the open reading, the admin one with no time left.
    assert_eq!(
        gauge_line(&platform).await,
        r#"circuit_breaker_state{target="stripe"} 1"#
    );
    assert_eq!(
        admin_entry(&platform).await,
        json!({ "target": "stripe", "state": "open", "retryInSecs": 0 })
    );
    assert_eq!(
        customer_calls(&eco, &platform).await,
        5,
        "no probe was sent"
    );
}
