//! The optional Prometheus component on the process runtime sees a fault:
//! Stripe failing opens crm-api's circuit breaker, `CircuitBreakerOpen`
//! fires, and resolves once Stripe heals and calls close the breaker; the
//! alert log of the run has the firing with both times. Waits poll
//! Prometheus with generous deadlines (not speed verdicts).

use std::time::{Duration, SystemTime};

use serde_json::json;
use tekup_harness::alerts::{AlertLog, AlertsError};
use tekup_harness::env::{error_chain, Ecosystem, Runtime};
use tekup_harness::platform::Platform;

/// Far longer than the rule's `for: 30s` plus a few 1 s scrapes.
const FIRES_WITHIN: Duration = Duration::from_secs(180);

fn breaker_alert(a: &tekup_harness::alerts::ActiveAlert) -> bool {
    a.name() == "CircuitBreakerOpen"
        && a.labels.get("job").map(String::as_str) == Some("crm-api")
        && a.labels.get("target").map(String::as_str) == Some("stripe")
}

fn breaker_open(a: &tekup_harness::alerts::ActiveAlert) -> bool {
    a.is_firing(
        "CircuitBreakerOpen",
        &[("job", "crm-api"), ("target", "stripe")],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_stripe_fires_the_breaker_alert_which_resolves_after_the_heal() {
    let eco = Ecosystem::builder()
        .file(super::links::fixtures())
        .runtime(Runtime::Process)
        .links(false)
        .prometheus(true)
        .start()
        .await
        .unwrap_or_else(|e| panic!("the ecosystem starts: {}", error_chain(&e)));
    let started = SystemTime::now();
    let prometheus = eco.prometheus().expect("asked for, so running");
    let platform = Platform::from_ecosystem(&eco).expect("platform");
    let (crm, deals) =
        super::breakers::open_crm_breaker_for_stripe(&eco, &platform, "alerts").await;
    let firing = prometheus
        .wait_for(
            "CircuitBreakerOpen firing for crm-api -> stripe",
            FIRES_WITHIN,
            |alerts| alerts.iter().any(breaker_open),
        )
        .await
        .unwrap_or_else(|e| panic!("{}", error_chain(&e)));
    let alert = firing.iter().find(|a| breaker_open(a)).expect("found");
    assert_eq!(
        alert.annotations.get("summary").map(String::as_str),
        Some("crm-api: the circuit breaker to stripe is open")
    );
    assert_eq!(
        alert.labels.get("severity").map(String::as_str),
        Some("critical")
    );

    // Heal, then call: an open breaker closes only on traffic (after its
    // open window, probes go through), and the alert resolves with it.
    eco.mock("stripe")
        .expect("stripe mock")
        .clear_faults(platform.http())
        .await
        .expect("faults cleared");
    let deadline = tokio::time::Instant::now() + FIRES_WITHIN;
    loop {
        for deal in &deals {
            let _ = crm
                .post("crm-api", &format!("/deals/{deal}/won"), &json!({}))
                .await;
        }
        // Resolved: neither firing nor pending again.
        let active = prometheus.active().await.expect("alerts");
        if !active.iter().any(breaker_alert) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "CircuitBreakerOpen still firing {FIRES_WITHIN:?} after the heal: {active:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    let log = AlertLog::of_run(&eco, started)
        .await
        .expect("a Prometheus runs");
    assert_eq!(log.error, None);
    let fired = log
        .fired
        .iter()
        .find(|f| {
            f.name == "CircuitBreakerOpen"
                && f.labels.get("target").map(String::as_str) == Some("stripe")
        })
        .unwrap_or_else(|| panic!("the firing is in the run's log: {:?}", log.lines()));
    let resolved = fired
        .resolved_at
        .unwrap_or_else(|| panic!("resolved within the run: {log:?}"));
    assert!(
        fired.fired_at >= log.from && resolved > fired.fired_at,
        "{fired:?}"
    );
    assert!(
        log.lines().iter().any(|l| l.starts_with(
            "CircuitBreakerOpen{job=crm-api,severity=critical,target=stripe} fired at +"
        )),
        "{:?}",
        log.lines()
    );

    // A wait for what does not happen fails naming it and what was active.
    let err = prometheus
        .wait_for("ServiceDown firing", Duration::from_secs(2), |alerts| {
            alerts.iter().any(|a| a.name() == "ServiceDown")
        })
        .await
        .expect_err("nothing is down");
    assert!(matches!(err, AlertsError::Timeout { .. }), "{err}");
    assert!(
        err.to_string()
            .starts_with("ServiceDown firing did not happen within 2s"),
        "{err}"
    );
}
