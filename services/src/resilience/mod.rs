//! Retry and circuit breaking for every outgoing call.
//!
//! [`Resilience`] combines a [`RetryPolicy`] with one [`CircuitBreaker`] per
//! target (`crm-api`, `stripe`, ...). It knows nothing about HTTP: a call is
//! a closure run once per attempt whose result says, through [`Classify`],
//! whether it failed transiently. [`crate::client::ResilientHttp`] plugs
//! reqwest into it; the unit tests plug in fakes and drive time with
//! `tokio::time::pause()`.
//!
//! Every attempt is reported to the breaker separately, so one call retried
//! three times against a dead dependency counts three failures. When the
//! breaker opens between two attempts, the last real answer is returned
//! rather than the breaker's refusal; the next call fails fast.

mod breaker;
mod retry;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use clap::Args;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

pub use breaker::{
    seconds_rounded_up, BreakerConfig, BreakerOpen, BreakerState, BreakerStatus, CircuitBreaker,
    Permit,
};
pub use retry::{parse_retry_after, Attempt, Idempotency, Jitter, RetryPolicy};

use crate::metrics::TargetLabels;

/// Retry and circuit-breaker options, from flags or the environment.
#[derive(Debug, Clone, Args)]
pub struct ResilienceArgs {
    /// Attempts per outgoing call, including the first (1 disables retries).
    #[arg(long, env = "RETRY_MAX_ATTEMPTS", default_value_t = 3,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub retry_max_attempts: u32,
    /// Backoff before the first retry, in milliseconds; doubled per retry.
    #[arg(long, env = "RETRY_BASE_DELAY_MS", default_value_t = 100)]
    pub retry_base_delay_ms: u64,
    /// Largest backoff between two attempts, in milliseconds.
    #[arg(long, env = "RETRY_MAX_DELAY_MS", default_value_t = 5_000)]
    pub retry_max_delay_ms: u64,
    /// How backoff delays are randomised.
    #[arg(long, env = "RETRY_JITTER", value_enum, default_value_t = Jitter::Full)]
    pub retry_jitter: Jitter,
    /// Consecutive failures that open a target's circuit breaker.
    #[arg(long, env = "BREAKER_FAILURE_THRESHOLD", default_value_t = 5,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub breaker_failure_threshold: u32,
    /// Seconds an open circuit refuses calls before letting probes through.
    #[arg(long, env = "BREAKER_OPEN_SECS", default_value_t = 60)]
    pub breaker_open_secs: u64,
    /// Consecutive successful probes that close a half-open circuit.
    #[arg(long, env = "BREAKER_HALF_OPEN_SUCCESSES", default_value_t = 3,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub breaker_half_open_successes: u32,
}

impl Default for ResilienceArgs {
    fn default() -> Self {
        let retry = RetryPolicy::default();
        let breaker = BreakerConfig::default();
        Self {
            retry_max_attempts: retry.max_attempts,
            retry_base_delay_ms: millis(retry.base_delay),
            retry_max_delay_ms: millis(retry.max_delay),
            retry_jitter: retry.jitter,
            breaker_failure_threshold: breaker.failure_threshold,
            breaker_open_secs: breaker.open_for.as_secs(),
            breaker_half_open_successes: breaker.half_open_successes,
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl ResilienceArgs {
    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy::default()
            .max_attempts(self.retry_max_attempts)
            .backoff(
                Duration::from_millis(self.retry_base_delay_ms),
                Duration::from_millis(self.retry_max_delay_ms),
            )
            .jitter(self.retry_jitter)
    }

    pub fn breaker_config(&self) -> BreakerConfig {
        BreakerConfig {
            failure_threshold: self.breaker_failure_threshold,
            open_for: Duration::from_secs(self.breaker_open_secs),
            half_open_successes: self.breaker_half_open_successes,
        }
    }
}

/// How one attempt's result counts for retry and breaker.
pub trait Classify {
    /// `None` for a local error (a request that could not even be built):
    /// neither retried nor counted by the breaker.
    fn classify(&self) -> Option<Attempt>;
}

/// Retry policy plus the breakers of all targets of one service.
#[derive(Debug)]
pub struct Resilience {
    policy: RetryPolicy,
    breaker: BreakerConfig,
    breakers: Mutex<HashMap<String, Arc<CircuitBreaker>>>,
    gauges: Family<TargetLabels, Gauge>,
}

impl Resilience {
    /// `gauges` is the service's `circuit_breaker_state` family.
    pub fn new(
        policy: RetryPolicy,
        breaker: BreakerConfig,
        gauges: Family<TargetLabels, Gauge>,
    ) -> Self {
        Self {
            policy,
            breaker,
            breakers: Mutex::default(),
            gauges,
        }
    }

    pub fn from_args(args: &ResilienceArgs, gauges: Family<TargetLabels, Gauge>) -> Self {
        Self::new(args.retry_policy(), args.breaker_config(), gauges)
    }

    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    /// The breaker of `target`, created closed on first use.
    pub fn breaker(&self, target: &str) -> Arc<CircuitBreaker> {
        let mut breakers = self.breakers.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(breakers.entry(target.to_owned()).or_insert_with(|| {
            let gauge = self
                .gauges
                .get_or_create(&TargetLabels {
                    target: target.to_owned(),
                })
                .clone();
            Arc::new(CircuitBreaker::new(target, self.breaker, gauge))
        }))
    }

    /// Every breaker made so far (one per target called), by target.
    pub fn breakers(&self) -> Vec<Arc<CircuitBreaker>> {
        let mut all: Vec<Arc<CircuitBreaker>> = self
            .breakers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect();
        all.sort_by(|a, b| a.target().cmp(b.target()));
        all
    }

    /// Moves every open breaker whose timeout has passed to half-open, and
    /// its `circuit_breaker_state` gauge with it.
    ///
    /// A breaker looks at the clock only when asked (a call, a read of its
    /// state). Without this, once calls stop an open breaker's gauge reads
    /// open for ever, and a dashboard built on it shows a circuit refusing
    /// calls that would in fact let probes through. `/metrics` and
    /// `/admin/breakers` call it before they answer; nothing else needs
    /// to, since every call refreshes its own target's breaker.
    pub fn refresh(&self) {
        for breaker in self.breakers() {
            breaker.state();
        }
    }

    /// Runs `attempt` (given the attempt number, from 1) until it succeeds,
    /// fails in a way that is not retried, or the attempts run out; returns
    /// the last result.
    ///
    /// # Errors
    /// [`BreakerOpen`] when `target`'s circuit refuses the first attempt.
    pub async fn run<R, F, Fut>(
        &self,
        target: &str,
        idempotency: Idempotency,
        mut attempt: F,
    ) -> Result<R, BreakerOpen>
    where
        R: Classify,
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = R>,
    {
        let breaker = self.breaker(target);
        let mut permit = breaker.try_acquire().inspect_err(|_| {
            crate::telemetry::circuit_open(target);
        })?;
        let mut number = 1;
        loop {
            let result = attempt(number).await;
            let Some(outcome) = result.classify() else {
                drop(permit);
                return Ok(result);
            };
            if !outcome.is_transient() {
                permit.success();
                return Ok(result);
            }
            permit.failure();
            let delay = self
                .policy
                .decide(number, &outcome, idempotency, &mut rand::thread_rng());
            let Some(delay) = delay else {
                return Ok(result);
            };
            tracing::debug!(
                target_service = target,
                attempt = number,
                ?outcome,
                ?delay,
                "retrying"
            );
            crate::telemetry::retry(number + 1, Reason(&outcome));
            tokio::time::sleep(delay).await;
            permit = match breaker.try_acquire() {
                Ok(permit) => permit,
                Err(_) => {
                    crate::telemetry::circuit_open(target);
                    return Ok(result);
                }
            };
            number += 1;
        }
    }
}

/// Why an attempt is retried, as the `retry` span event's `reason` says it:
/// `status 503`, `connect failed`, `no answer`.
struct Reason<'a>(&'a Attempt);

impl std::fmt::Display for Reason<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Attempt::ConnectFailed => f.write_str("connect failed"),
            Attempt::NoAnswer => f.write_str("no answer"),
            Attempt::Answered { status, .. } => write!(f, "status {status}"),
        }
    }
}

#[cfg(test)]
mod tests;
