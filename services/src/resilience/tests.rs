//! Retry and breaker together, against a fake dependency, in paused time.

use std::sync::atomic::{AtomicU32, Ordering};

use tokio::time::Instant;

use super::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fake(Attempt);

impl Classify for Fake {
    fn classify(&self) -> Option<Attempt> {
        Some(self.0)
    }
}

fn status(status: u16) -> Fake {
    Fake(Attempt::Answered {
        status,
        retry_after: None,
    })
}

fn resilience(attempts: u32) -> Resilience {
    let policy = RetryPolicy::default()
        .max_attempts(attempts)
        .backoff(Duration::from_millis(100), Duration::from_secs(1))
        .jitter(Jitter::None);
    Resilience::new(policy, BreakerConfig::default(), Family::default())
}

/// Calls `r` once against a dependency answering from `answers` in turn
/// (repeating the last); returns the result and the attempts sent.
async fn call(r: &Resilience, answers: &[Fake]) -> (Result<Fake, BreakerOpen>, u32) {
    let sent = AtomicU32::new(0);
    let result = r
        .run("crm-api", Idempotency::Idempotent, |n| {
            sent.fetch_add(1, Ordering::SeqCst);
            let answer = answers[(n as usize - 1).min(answers.len() - 1)];
            async move { answer }
        })
        .await;
    (result, sent.load(Ordering::SeqCst))
}

/// Calls `target` once against a dependency answering `answer`.
async fn call_target(
    r: &Resilience,
    target: &str,
    answer: Fake,
) -> (Result<Fake, BreakerOpen>, u32) {
    let sent = AtomicU32::new(0);
    let result = r
        .run(target, Idempotency::Idempotent, |_| {
            sent.fetch_add(1, Ordering::SeqCst);
            async move { answer }
        })
        .await;
    (result, sent.load(Ordering::SeqCst))
}

#[tokio::test(start_paused = true)]
async fn client_errors_are_sent_once() {
    let r = resilience(5);
    for code in [400, 401, 403, 404, 409, 422] {
        let started = Instant::now();
        let (result, sent) = call(&r, &[status(code)]).await;
        assert_eq!(result, Ok(status(code)));
        assert_eq!(sent, 1, "{code} must not be retried");
        assert_eq!(started.elapsed(), Duration::ZERO);
    }
    assert_eq!(r.breaker("crm-api").state(), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn server_errors_are_retried_up_to_the_limit_with_backoff() {
    let r = resilience(3);
    let started = Instant::now();
    let (result, sent) = call(&r, &[status(500)]).await;
    assert_eq!(result, Ok(status(500)), "the last answer comes back");
    assert_eq!(sent, 3);
    assert_eq!(started.elapsed(), Duration::from_millis(100 + 200));
}

#[tokio::test(start_paused = true)]
async fn a_retry_that_succeeds_returns_the_success() {
    let r = resilience(3);
    let (result, sent) = call(&r, &[Fake(Attempt::ConnectFailed), status(200)]).await;
    assert_eq!(result, Ok(status(200)));
    assert_eq!(sent, 2);
}

#[tokio::test(start_paused = true)]
async fn too_many_requests_waits_exactly_the_retry_after() {
    let r = resilience(3);
    let throttled = Fake(Attempt::Answered {
        status: 429,
        retry_after: Some(Duration::from_secs(7)),
    });
    let started = Instant::now();
    let (result, sent) = call(&r, &[throttled, status(201)]).await;
    assert_eq!(result, Ok(status(201)));
    assert_eq!(sent, 2);
    assert_eq!(started.elapsed(), Duration::from_secs(7));
}

#[tokio::test(start_paused = true)]
async fn a_post_is_not_retried_after_an_ambiguous_failure() {
    let r = resilience(3);
    let sent = AtomicU32::new(0);
    let result = r
        .run("stripe", Idempotency::NotIdempotent, |_| {
            sent.fetch_add(1, Ordering::SeqCst);
            async { status(502) }
        })
        .await;
    assert_eq!(result, Ok(status(502)));
    assert_eq!(sent.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn the_breaker_opens_after_five_failures_and_rejects_without_sending() {
    let r = resilience(1);
    for _ in 0..5 {
        let (_, sent) = call(&r, &[status(503)]).await;
        assert_eq!(sent, 1);
    }
    let (result, sent) = call(&r, &[status(200)]).await;
    let refused = result.expect_err("the open circuit refuses");
    assert_eq!(sent, 0, "nothing is sent while open");
    assert_eq!(refused.target, "crm-api");
    assert_eq!(refused.retry_in, Duration::from_secs(60));
}

#[tokio::test(start_paused = true)]
async fn half_open_lets_probes_through_and_three_successes_close() {
    let r = resilience(1);
    for _ in 0..5 {
        let _ = call(&r, &[status(500)]).await;
    }
    tokio::time::advance(Duration::from_secs(60)).await;
    assert_eq!(r.breaker("crm-api").state(), BreakerState::HalfOpen);
    for expected in [
        BreakerState::HalfOpen,
        BreakerState::HalfOpen,
        BreakerState::Closed,
    ] {
        let (result, sent) = call(&r, &[status(200)]).await;
        assert_eq!((result, sent), (Ok(status(200)), 1));
        assert_eq!(r.breaker("crm-api").state(), expected);
    }
}

#[tokio::test(start_paused = true)]
async fn a_failing_probe_reopens() {
    let r = resilience(1);
    for _ in 0..5 {
        let _ = call(&r, &[status(500)]).await;
    }
    tokio::time::advance(Duration::from_secs(60)).await;
    let (result, sent) = call(&r, &[status(500)]).await;
    assert_eq!((result, sent), (Ok(status(500)), 1));
    assert_eq!(r.breaker("crm-api").state(), BreakerState::Open);
    assert!(call(&r, &[status(200)]).await.0.is_err());
}

#[tokio::test(start_paused = true)]
async fn retries_stop_when_the_breaker_opens_and_return_the_last_answer() {
    let r = resilience(10);
    let (result, sent) = call(&r, &[status(500)]).await;
    assert_eq!(result, Ok(status(500)));
    assert_eq!(sent, 5, "the fifth failure opens the circuit");
}

#[tokio::test(start_paused = true)]
async fn breakers_are_per_target_and_exported_as_a_gauge() {
    let metrics = crate::metrics::Metrics::new();
    let r = Resilience::new(
        RetryPolicy::never(),
        BreakerConfig::default(),
        metrics.circuit_breaker_state.clone(),
    );
    for _ in 0..5 {
        let _ = r
            .run("stripe", Idempotency::Idempotent, |_| async { status(500) })
            .await;
    }
    let _ = r
        .run("graph", Idempotency::Idempotent, |_| async { status(200) })
        .await;
    assert_eq!(r.breaker("stripe").state(), BreakerState::Open);
    assert_eq!(r.breaker("graph").state(), BreakerState::Closed);
    let text = metrics.render();
    assert!(
        text.contains(r#"circuit_breaker_state{target="stripe"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"circuit_breaker_state{target="graph"} 0"#),
        "{text}"
    );
}

/// The line of `target` in the metrics text, e.g. `circuit_breaker_state{target="stripe"} 1`.
fn gauge_line(metrics: &crate::metrics::Metrics, target: &str) -> String {
    let text = metrics.render();
    let prefix = format!("circuit_breaker_state{{target=\"{target}\"}} ");
    text.lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no gauge of {target} in:\n{text}"))
        .to_owned()
}

/// Opens `target`'s breaker of `r` with five failed calls.
async fn open(r: &Resilience, target: &str) {
    for _ in 0..5 {
        let _ = r
            .run(target, Idempotency::Idempotent, |_| async { status(500) })
            .await;
    }
}

#[tokio::test(start_paused = true)]
async fn refresh_moves_the_gauge_of_an_open_breaker_to_half_open_without_a_call() {
    let metrics = crate::metrics::Metrics::new();
    let r = Resilience::new(
        RetryPolicy::never(),
        BreakerConfig::default(),
        metrics.circuit_breaker_state.clone(),
    );
    open(&r, "stripe").await;
    let _ = r
        .run("graph", Idempotency::Idempotent, |_| async { status(200) })
        .await;
    tokio::time::advance(Duration::from_secs(59)).await;
    r.refresh();
    assert_eq!(
        gauge_line(&metrics, "stripe"),
        r#"circuit_breaker_state{target="stripe"} 1"#,
        "still open a second before its time"
    );
    tokio::time::advance(Duration::from_secs(1)).await;
    // Nothing asked the breaker: the gauge still says what it recorded.
    assert_eq!(
        gauge_line(&metrics, "stripe"),
        r#"circuit_breaker_state{target="stripe"} 1"#
    );
    r.refresh();
    assert_eq!(
        gauge_line(&metrics, "stripe"),
        r#"circuit_breaker_state{target="stripe"} 2"#
    );
    assert_eq!(
        gauge_line(&metrics, "graph"),
        r#"circuit_breaker_state{target="graph"} 0"#,
        "a closed breaker stays closed"
    );
    // Half-open by the clock is the same half-open a call finds: probes
    // go through and close it.
    for _ in 0..3 {
        let (result, sent) = call_target(&r, "stripe", status(200)).await;
        assert_eq!((result, sent), (Ok(status(200)), 1));
    }
    assert_eq!(
        gauge_line(&metrics, "stripe"),
        r#"circuit_breaker_state{target="stripe"} 0"#
    );
}

#[tokio::test(start_paused = true)]
async fn statuses_name_each_target_with_the_time_left_while_open() {
    let r = resilience(1);
    assert!(r.breakers().is_empty(), "breakers are made on first use");
    open(&r, "stripe").await;
    let _ = call_target(&r, "crm-api", status(200)).await;
    tokio::time::advance(Duration::from_millis(20_500)).await;
    let statuses: Vec<(String, BreakerStatus)> = r
        .breakers()
        .iter()
        .map(|b| (b.target().to_owned(), b.status()))
        .collect();
    assert_eq!(
        statuses,
        vec![
            (
                "crm-api".to_owned(),
                BreakerStatus {
                    state: BreakerState::Closed,
                    retry_in: None
                }
            ),
            (
                "stripe".to_owned(),
                BreakerStatus {
                    state: BreakerState::Open,
                    retry_in: Some(Duration::from_millis(39_500))
                }
            ),
        ]
    );
    tokio::time::advance(Duration::from_millis(39_500)).await;
    let stripe = r.breaker("stripe");
    // The reading that does not look at the clock (the defect's) still
    // says open, with no time left; the real one moves it on.
    assert_eq!(
        stripe.recorded_status(),
        BreakerStatus {
            state: BreakerState::Open,
            retry_in: Some(Duration::ZERO)
        }
    );
    assert_eq!(
        stripe.status(),
        BreakerStatus {
            state: BreakerState::HalfOpen,
            retry_in: None
        }
    );
    assert_eq!(stripe.recorded_status().state, BreakerState::HalfOpen);
}

#[test]
fn args_default_to_the_documented_values() {
    use clap::Parser;
    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        resilience: ResilienceArgs,
    }
    let parsed = Cli::try_parse_from(["x"]).expect("defaults parse");
    let defaults = ResilienceArgs::default();
    assert_eq!(parsed.resilience.retry_policy(), defaults.retry_policy());
    assert_eq!(
        parsed.resilience.breaker_config(),
        defaults.breaker_config()
    );
    assert_eq!(defaults.breaker_config(), BreakerConfig::default());
    let parsed = Cli::try_parse_from([
        "x",
        "--retry-max-attempts",
        "5",
        "--breaker-open-secs",
        "10",
        "--retry-jitter",
        "equal",
    ])
    .expect("flags parse");
    assert_eq!(parsed.resilience.retry_policy().max_attempts, 5);
    assert_eq!(parsed.resilience.retry_policy().jitter, Jitter::Equal);
    assert_eq!(
        parsed.resilience.breaker_config().open_for,
        Duration::from_secs(10)
    );
    assert!(Cli::try_parse_from(["x", "--retry-max-attempts", "0"]).is_err());
}
