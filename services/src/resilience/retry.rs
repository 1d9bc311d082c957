//! When to try an outgoing call again, and how long to wait first.
//!
//! Only failures that say nothing about the request itself are retried:
//! connection errors and timeouts, 5xx, and 429. Every other status (400,
//! 401, 403, 404, 409, 422, ...) is the caller's answer and goes back at
//! once. A 429 or 503 carrying `Retry-After` is retried after exactly that
//! long (seconds or an HTTP-date), unless it is longer than
//! [`RetryPolicy::max_retry_after`], in which case the answer is returned
//! rather than holding the caller for minutes. Otherwise the wait is
//! exponential (`base * 2^(n-1)`, capped) with jitter, so that many clients
//! failing together do not retry together.

use std::time::{Duration, SystemTime};

use rand::Rng;

/// How a backoff delay is randomised (AWS architecture blog, "Exponential
/// Backoff And Jitter").
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Jitter {
    /// Uniform in `0..=delay`: spreads retries the most.
    Full,
    /// `delay/2` plus uniform in `0..=delay/2`: never retries immediately.
    Equal,
    /// Exactly `delay` (for tests and debugging).
    None,
}

/// What one attempt of a call came to, as far as retrying is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// No connection could be made: the request was certainly not processed.
    ConnectFailed,
    /// The request may have been sent, but no (complete) answer came:
    /// a timeout, a reset connection.
    NoAnswer,
    /// An HTTP answer, with the delay its `Retry-After` asked for.
    Answered {
        status: u16,
        retry_after: Option<Duration>,
    },
}

impl Attempt {
    /// Whether this outcome counts as a failure of the dependency (for the
    /// circuit breaker) and may be retried: connection errors, timeouts, 5xx
    /// and 429.
    pub fn is_transient(&self) -> bool {
        match *self {
            Self::ConnectFailed | Self::NoAnswer => true,
            Self::Answered { status, .. } => status == 429 || (500..=599).contains(&status),
        }
    }

    /// Whether the dependency certainly did not act on the request, so that
    /// even a non-idempotent request may be sent again: no connection, 429,
    /// or 503 with `Retry-After` (a throttle or maintenance answer).
    pub fn certainly_not_processed(&self) -> bool {
        match *self {
            Self::ConnectFailed => true,
            Self::NoAnswer => false,
            Self::Answered {
                status,
                retry_after,
            } => status == 429 || (status == 503 && retry_after.is_some()),
        }
    }
}

/// Whether a request may be repeated without repeating its effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idempotency {
    /// GET, PUT, DELETE, or a POST with an idempotency key: every transient
    /// failure is retried.
    Idempotent,
    /// A plain POST: retried only when it was certainly not processed
    /// (see [`Attempt::certainly_not_processed`]).
    NotIdempotent,
}

/// The retry policy of a client.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct RetryPolicy {
    /// Attempts in total, including the first; 1 disables retries.
    pub max_attempts: u32,
    /// Delay before the first retry (before jitter).
    pub base_delay: Duration,
    /// Largest delay between two attempts (before jitter).
    pub max_delay: Duration,
    pub jitter: Jitter,
    /// A `Retry-After` longer than this is not waited for.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(5),
            jitter: Jitter::Full,
            max_retry_after: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// A policy that never retries.
    pub fn never() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n.max(1);
        self
    }

    pub fn backoff(mut self, base: Duration, max: Duration) -> Self {
        self.base_delay = base;
        self.max_delay = max.max(base);
        self
    }

    pub fn jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    pub fn max_retry_after(mut self, max: Duration) -> Self {
        self.max_retry_after = max;
        self
    }

    /// The backoff before retry number `retry` (1 for the first retry),
    /// before jitter: `base * 2^(retry-1)`, at most `max_delay`.
    pub fn backoff_ceiling(&self, retry: u32) -> Duration {
        let factor = 2u32.saturating_pow(retry.saturating_sub(1));
        self.base_delay
            .checked_mul(factor)
            .unwrap_or(self.max_delay)
            .min(self.max_delay)
    }

    /// The jittered backoff before retry number `retry`.
    pub fn backoff_delay(&self, retry: u32, rng: &mut impl Rng) -> Duration {
        let ceiling = self.backoff_ceiling(retry);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        match self.jitter {
            Jitter::None => ceiling,
            Jitter::Full => Duration::from_nanos(rng.gen_range(0..=nanos)),
            Jitter::Equal => {
                let half = nanos / 2;
                Duration::from_nanos(half + rng.gen_range(0..=nanos - half))
            }
        }
    }

    /// Whether to retry after attempt number `attempt` (1-based) ended in
    /// `outcome`, and after how long; `None` means give the outcome back.
    pub fn decide(
        &self,
        attempt: u32,
        outcome: &Attempt,
        idempotency: Idempotency,
        rng: &mut impl Rng,
    ) -> Option<Duration> {
        if attempt >= self.max_attempts || !outcome.is_transient() {
            return None;
        }
        if idempotency == Idempotency::NotIdempotent && !outcome.certainly_not_processed() {
            return None;
        }
        match *outcome {
            Attempt::Answered {
                status: 429 | 503,
                retry_after: Some(wait),
            } => (wait <= self.max_retry_after).then_some(wait),
            _ => Some(self.backoff_delay(attempt, rng)),
        }
    }
}

/// Parses a `Retry-After` value: delay seconds or an HTTP-date (a date in the
/// past means "now").
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn rng() -> StdRng {
        StdRng::seed_from_u64(7)
    }

    fn status(status: u16) -> Attempt {
        Attempt::Answered {
            status,
            retry_after: None,
        }
    }

    fn policy() -> RetryPolicy {
        RetryPolicy::default()
            .max_attempts(4)
            .backoff(Duration::from_millis(100), Duration::from_millis(350))
            .jitter(Jitter::None)
    }

    #[test]
    fn client_errors_are_never_retried() {
        for code in [400, 401, 403, 404, 409, 422] {
            let decision = policy().decide(1, &status(code), Idempotency::Idempotent, &mut rng());
            assert_eq!(decision, None, "{code} must not be retried");
        }
    }

    #[test]
    fn server_errors_connection_errors_and_timeouts_are_retried() {
        for outcome in [
            status(500),
            status(502),
            status(503),
            status(429),
            Attempt::ConnectFailed,
            Attempt::NoAnswer,
        ] {
            let decision = policy().decide(1, &outcome, Idempotency::Idempotent, &mut rng());
            assert_eq!(
                decision,
                Some(Duration::from_millis(100)),
                "{outcome:?} must be retried"
            );
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_and_stops_at_the_limit() {
        let p = policy();
        let delays: Vec<_> = (1..=4)
            .map(|n| p.decide(n, &status(500), Idempotency::Idempotent, &mut rng()))
            .collect();
        assert_eq!(
            delays,
            [
                Some(Duration::from_millis(100)),
                Some(Duration::from_millis(200)),
                Some(Duration::from_millis(350)),
                None,
            ]
        );
        assert_eq!(p.backoff_ceiling(64), Duration::from_millis(350));
    }

    #[test]
    fn jitter_stays_within_its_bounds() {
        let mut rng = rng();
        let full = policy().jitter(Jitter::Full);
        let equal = policy().jitter(Jitter::Equal);
        for _ in 0..200 {
            assert!(full.backoff_delay(2, &mut rng) <= Duration::from_millis(200));
            let d = equal.backoff_delay(2, &mut rng);
            assert!(d >= Duration::from_millis(100) && d <= Duration::from_millis(200));
        }
    }

    #[test]
    fn retry_after_is_waited_for_exactly_unless_too_long() {
        let wait = Attempt::Answered {
            status: 429,
            retry_after: Some(Duration::from_secs(7)),
        };
        let p = policy();
        assert_eq!(
            p.decide(1, &wait, Idempotency::Idempotent, &mut rng()),
            Some(Duration::from_secs(7))
        );
        let p = p.max_retry_after(Duration::from_secs(5));
        assert_eq!(
            p.decide(1, &wait, Idempotency::Idempotent, &mut rng()),
            None
        );
    }

    #[test]
    fn non_idempotent_requests_are_retried_only_when_not_processed() {
        let p = policy();
        let not_idem = Idempotency::NotIdempotent;
        assert!(p
            .decide(1, &Attempt::ConnectFailed, not_idem, &mut rng())
            .is_some());
        assert!(p.decide(1, &status(429), not_idem, &mut rng()).is_some());
        let throttled = Attempt::Answered {
            status: 503,
            retry_after: Some(Duration::from_secs(1)),
        };
        assert!(p.decide(1, &throttled, not_idem, &mut rng()).is_some());
        assert_eq!(p.decide(1, &status(500), not_idem, &mut rng()), None);
        assert_eq!(p.decide(1, &status(503), not_idem, &mut rng()), None);
        assert_eq!(p.decide(1, &Attempt::NoAnswer, not_idem, &mut rng()), None);
    }

    #[test]
    fn retry_after_parses_seconds_and_http_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480);
        assert_eq!(
            parse_retry_after(" 120 ", now),
            Some(Duration::from_secs(120))
        );
        // 2015-10-21 07:28:00 UTC is 1445412480.
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-1", now), None);
    }
}
