//! A circuit breaker per call target.
//!
//! ```text
//!            N consecutive failures              open timeout elapsed
//!   Closed ────────────────────────▶ Open ─────────────────────────▶ HalfOpen
//!     ▲                               ▲                                  │
//!     │                               └──────── any probe fails ─────────┤
//!     └──────────────── M probes succeed in a row ───────────────────────┘
//! ```
//!
//! While open, calls fail at once with [`BreakerOpen`] (naming the target and
//! when it will be tried again) and nothing is sent. Half-open lets at most M
//! probes be in flight at a time; further calls are refused like in the open
//! state until the probes have answered.
//!
//! The move from open to half-open happens when the breaker is next asked
//! (a call, [`CircuitBreaker::state`]), not by a timer: nothing needs to
//! run while the circuit waits. Whatever shows the state from outside asks
//! first, so that it follows the clock (`Resilience::refresh`, which
//! `/metrics` runs).
//!
//! Time is [`tokio::time::Instant`], so tests drive it with
//! `tokio::time::pause()` / `advance`. Outcomes of calls that started in an
//! earlier state (a slow call from before the breaker opened) are ignored, so
//! they cannot close or re-open the circuit behind the probes' back.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use prometheus_client::metrics::gauge::Gauge;
use tokio::time::Instant;

/// Thresholds of a breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct BreakerConfig {
    /// Consecutive failures that open a closed circuit.
    pub failure_threshold: u32,
    /// How long the circuit stays open before probes are let through.
    pub open_for: Duration,
    /// Consecutive probe successes that close a half-open circuit.
    pub half_open_successes: u32,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            open_for: Duration::from_secs(60),
            half_open_successes: 3,
        }
    }
}

/// The state of a breaker; its number is the `circuit_breaker_state` gauge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed = 0,
    Open = 1,
    HalfOpen = 2,
}

impl BreakerState {
    /// Every state, in the gauge's order.
    pub const ALL: [BreakerState; 3] = [Self::Closed, Self::Open, Self::HalfOpen];

    /// `closed`, `open` or `half-open`, as `/admin/breakers` says it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half-open",
        }
    }
}

/// A breaker's state at one moment, with the time left while it is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerStatus {
    pub state: BreakerState,
    /// While open: the time until probes are let through (zero once it is
    /// up, which only a reading that does not look at the clock can show).
    pub retry_in: Option<Duration>,
}

/// A call refused without being sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("circuit breaker for {target} is {}: failing fast without calling it; {}", self.state_name(), self.when())]
pub struct BreakerOpen {
    pub target: String,
    /// [`BreakerState::Open`], or [`BreakerState::HalfOpen`] when all probes are in flight.
    pub state: BreakerState,
    /// Time until probes are let through (zero when half-open).
    pub retry_in: Duration,
}

impl BreakerOpen {
    fn state_name(&self) -> &'static str {
        match self.state {
            BreakerState::HalfOpen => "half-open with all probes in flight",
            _ => "open",
        }
    }

    fn when(&self) -> String {
        if self.state == BreakerState::HalfOpen {
            "it will be tried again when the probes answer".into()
        } else {
            let secs = seconds_rounded_up(self.retry_in);
            format!("it will be tried again in {secs}s")
        }
    }
}

/// `d` in whole seconds, rounded up: a wait told to a client must not be
/// shorter than the real one.
pub fn seconds_rounded_up(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

#[derive(Debug)]
enum Phase {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { successes: u32, in_flight: u32 },
}

#[derive(Debug)]
struct Inner {
    phase: Phase,
    /// Bumped on every transition; a permit records only into its own generation.
    generation: u64,
}

/// The breaker of one target.
#[derive(Debug)]
pub struct CircuitBreaker {
    target: String,
    config: BreakerConfig,
    inner: Mutex<Inner>,
    gauge: Gauge,
}

impl CircuitBreaker {
    /// A closed breaker; `gauge` follows its state.
    pub fn new(target: impl Into<String>, config: BreakerConfig, gauge: Gauge) -> Self {
        gauge.set(BreakerState::Closed as i64);
        Self {
            target: target.into(),
            config: BreakerConfig {
                failure_threshold: config.failure_threshold.max(1),
                half_open_successes: config.half_open_successes.max(1),
                ..config
            },
            inner: Mutex::new(Inner {
                phase: Phase::Closed { failures: 0 },
                generation: 0,
            }),
            gauge,
        }
    }

    pub fn target(&self) -> &str {
        &self.target
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The current state (an open breaker whose timeout passed reads
    /// half-open, and moves there, its gauge with it).
    pub fn state(&self) -> BreakerState {
        self.status().state
    }

    /// The current state and, while open, the time left; like
    /// [`state`](Self::state) it first moves an open breaker whose timeout
    /// passed to half-open.
    pub fn status(&self) -> BreakerStatus {
        let mut inner = self.lock();
        self.refresh(&mut inner);
        Self::read(&inner)
    }

    /// The status as last recorded, without looking at the clock: an open
    /// breaker whose timeout passed still reads open, retrying in zero.
    /// That is what every reading between calls showed before `/metrics`
    /// refreshed the breakers; only the `breaker-gauge-stale` defect
    /// (see [`crate::defects`]) reads a breaker this way.
    pub(crate) fn recorded_status(&self) -> BreakerStatus {
        Self::read(&self.lock())
    }

    fn read(inner: &Inner) -> BreakerStatus {
        match inner.phase {
            Phase::Closed { .. } => BreakerStatus {
                state: BreakerState::Closed,
                retry_in: None,
            },
            Phase::Open { until } => BreakerStatus {
                state: BreakerState::Open,
                retry_in: Some(until.saturating_duration_since(Instant::now())),
            },
            Phase::HalfOpen { .. } => BreakerStatus {
                state: BreakerState::HalfOpen,
                retry_in: None,
            },
        }
    }

    fn transition(&self, inner: &mut Inner, phase: Phase) {
        let state = match phase {
            Phase::Closed { .. } => BreakerState::Closed,
            Phase::Open { .. } => BreakerState::Open,
            Phase::HalfOpen { .. } => BreakerState::HalfOpen,
        };
        tracing::info!(target_service = %self.target, state = ?state, "circuit breaker state changed");
        inner.phase = phase;
        inner.generation += 1;
        self.gauge.set(state as i64);
    }

    /// Moves an open breaker whose timeout passed to half-open.
    fn refresh(&self, inner: &mut Inner) {
        if let Phase::Open { until } = inner.phase {
            if Instant::now() >= until {
                self.transition(
                    inner,
                    Phase::HalfOpen {
                        successes: 0,
                        in_flight: 0,
                    },
                );
            }
        }
    }

    /// Asks to send one call; the permit must be told how it went.
    ///
    /// # Errors
    /// [`BreakerOpen`] while the circuit is open, or half-open with all
    /// probes in flight.
    pub fn try_acquire(self: &Arc<Self>) -> Result<Permit, BreakerOpen> {
        let mut inner = self.lock();
        self.refresh(&mut inner);
        let generation = inner.generation;
        let probe = match &mut inner.phase {
            Phase::Closed { .. } => false,
            Phase::Open { until } => {
                return Err(BreakerOpen {
                    target: self.target.clone(),
                    state: BreakerState::Open,
                    retry_in: until.saturating_duration_since(Instant::now()),
                })
            }
            Phase::HalfOpen { in_flight, .. } => {
                if *in_flight >= self.config.half_open_successes {
                    return Err(BreakerOpen {
                        target: self.target.clone(),
                        state: BreakerState::HalfOpen,
                        retry_in: Duration::ZERO,
                    });
                }
                *in_flight += 1;
                true
            }
        };
        Ok(Permit {
            breaker: Arc::clone(self),
            generation,
            probe,
            recorded: false,
        })
    }

    fn record(&self, generation: u64, probe: bool, success: Option<bool>) {
        let mut inner = self.lock();
        if inner.generation != generation {
            return;
        }
        let open = Phase::Open {
            until: Instant::now() + self.config.open_for,
        };
        match (&mut inner.phase, success) {
            (Phase::Closed { failures }, Some(true)) => *failures = 0,
            (Phase::Closed { failures }, Some(false)) => {
                *failures += 1;
                if *failures >= self.config.failure_threshold {
                    self.transition(&mut inner, open);
                }
            }
            (Phase::HalfOpen { in_flight, .. }, None) if probe => {
                *in_flight = in_flight.saturating_sub(1);
            }
            (
                Phase::HalfOpen {
                    successes,
                    in_flight,
                },
                Some(true),
            ) => {
                *in_flight = in_flight.saturating_sub(u32::from(probe));
                *successes += 1;
                if *successes >= self.config.half_open_successes {
                    self.transition(&mut inner, Phase::Closed { failures: 0 });
                }
            }
            (Phase::HalfOpen { .. }, Some(false)) => self.transition(&mut inner, open),
            _ => {}
        }
    }
}

/// Leave to send one call; report its outcome with [`Permit::success`] or
/// [`Permit::failure`]. Dropping it unreported (a cancelled call) frees a
/// half-open probe slot without counting either way.
#[derive(Debug)]
#[must_use = "report the call's outcome on the permit"]
pub struct Permit {
    breaker: Arc<CircuitBreaker>,
    generation: u64,
    probe: bool,
    recorded: bool,
}

impl Permit {
    /// The dependency answered healthily (2xx, or a 4xx other than 429).
    pub fn success(mut self) {
        self.recorded = true;
        self.breaker.record(self.generation, self.probe, Some(true));
    }

    /// The dependency failed (connection error, timeout, 5xx, 429).
    pub fn failure(mut self) {
        self.recorded = true;
        self.breaker
            .record(self.generation, self.probe, Some(false));
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if !self.recorded {
            self.breaker.record(self.generation, self.probe, None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> Arc<CircuitBreaker> {
        Arc::new(CircuitBreaker::new(
            "crm-api",
            BreakerConfig::default(),
            Gauge::default(),
        ))
    }

    fn fail(b: &Arc<CircuitBreaker>, n: u32) {
        for _ in 0..n {
            b.try_acquire()
                .expect("closed lets calls through")
                .failure();
        }
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_five_consecutive_failures() {
        let b = breaker();
        fail(&b, 4);
        assert_eq!(b.state(), BreakerState::Closed);
        fail(&b, 1);
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(b.gauge.get(), 1);
        let refused = b.try_acquire().expect_err("open refuses");
        assert_eq!(refused.retry_in, Duration::from_secs(60));
        assert_eq!(
            refused.to_string(),
            "circuit breaker for crm-api is open: failing fast without calling it; \
             it will be tried again in 60s"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_success_resets_the_failure_count() {
        let b = breaker();
        fail(&b, 4);
        b.try_acquire().unwrap().success();
        fail(&b, 4);
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn half_opens_after_the_timeout_and_closes_after_three_successes() {
        let b = breaker();
        fail(&b, 5);
        tokio::time::advance(Duration::from_secs(59)).await;
        assert_eq!(
            b.try_acquire().unwrap_err().retry_in,
            Duration::from_secs(1)
        );
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert_eq!(b.gauge.get(), 2);
        for _ in 0..2 {
            b.try_acquire().expect("probe allowed").success();
            assert_eq!(b.state(), BreakerState::HalfOpen);
        }
        b.try_acquire().expect("probe allowed").success();
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(b.gauge.get(), 0);
        // Closed again: needs five fresh failures to open.
        fail(&b, 4);
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_probe_reopens_for_a_full_timeout() {
        let b = breaker();
        fail(&b, 5);
        tokio::time::advance(Duration::from_secs(60)).await;
        b.try_acquire().unwrap().success();
        b.try_acquire().unwrap().failure();
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(
            b.try_acquire().unwrap_err().retry_in,
            Duration::from_secs(60)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn half_open_limits_probes_in_flight() {
        let b = breaker();
        fail(&b, 5);
        tokio::time::advance(Duration::from_secs(60)).await;
        let probes: Vec<_> = (0..3).map(|_| b.try_acquire().unwrap()).collect();
        let refused = b.try_acquire().unwrap_err();
        assert_eq!(refused.state, BreakerState::HalfOpen);
        assert!(refused.to_string().contains("half-open"), "{refused}");
        // A cancelled probe frees its slot without counting.
        drop(probes);
        assert_eq!(b.state(), BreakerState::HalfOpen);
        b.try_acquire().expect("slot freed").success();
    }

    #[tokio::test(start_paused = true)]
    async fn outcomes_from_an_earlier_state_are_ignored() {
        let b = breaker();
        let slow = b.try_acquire().unwrap();
        fail(&b, 5);
        slow.success();
        assert_eq!(b.state(), BreakerState::Open);
    }

    #[tokio::test(start_paused = true)]
    async fn thresholds_are_configurable() {
        let b = Arc::new(CircuitBreaker::new(
            "stripe",
            BreakerConfig {
                failure_threshold: 2,
                open_for: Duration::from_secs(5),
                half_open_successes: 1,
            },
            Gauge::default(),
        ));
        fail(&b, 2);
        assert_eq!(b.state(), BreakerState::Open);
        tokio::time::advance(Duration::from_secs(5)).await;
        b.try_acquire().unwrap().success();
        assert_eq!(b.state(), BreakerState::Closed);
    }
}
