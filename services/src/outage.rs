//! How long a client is told to wait while a dependency is down.
//!
//! A 503 carries `Retry-After`. For an open circuit breaker the wait is
//! known (the breaker's remaining open time, [`crate::error::ApiError`]'s
//! `From<BreakerOpen>`); for the database or Redis it is not, so it is a
//! backoff: half of how long the dependency has been refusing so far, at
//! least [`MIN_WAIT`], at most [`MAX_WAIT`]. Early in an outage clients
//! come back soon (a blip is over in a second); in a long one they space
//! out instead of hammering a server that is starting up.
//!
//! An outage is a run of refusals of one dependency with no gap longer
//! than [`QUIET`]; the first refusal after such a gap starts a new one.
//! The record is per process (one service per process, or several services
//! of one test process sharing it: the dependencies are shared too).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The shortest `Retry-After`.
pub const MIN_WAIT: Duration = Duration::from_secs(1);
/// The longest `Retry-After` of a backoff.
pub const MAX_WAIT: Duration = Duration::from_secs(30);
/// A gap between refusals this long ends an outage.
pub const QUIET: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy)]
struct Streak {
    since: Instant,
    last: Instant,
}

/// The outages of one process's dependencies.
#[derive(Debug, Default)]
pub struct Outages {
    streaks: Mutex<HashMap<String, Streak>>,
}

impl Outages {
    /// Records that `dependency` refused at `now`; returns the wait to
    /// tell the client.
    pub fn refused(&self, dependency: &str, now: Instant) -> Duration {
        let mut streaks = self.streaks.lock().unwrap_or_else(PoisonError::into_inner);
        let streak = streaks.entry(dependency.to_owned()).or_insert(Streak {
            since: now,
            last: now,
        });
        if now.saturating_duration_since(streak.last) > QUIET {
            streak.since = now;
        }
        streak.last = now;
        (now.saturating_duration_since(streak.since) / 2).clamp(MIN_WAIT, MAX_WAIT)
    }

    /// The dependency that refused within `window` before `now`, if any.
    pub fn refused_within(&self, window: Duration, now: Instant) -> Option<String> {
        let streaks = self.streaks.lock().unwrap_or_else(PoisonError::into_inner);
        streaks
            .iter()
            .find(|(_, s)| now.saturating_duration_since(s.last) < window)
            .map(|(name, _)| name.clone())
    }
}

static OUTAGES: std::sync::LazyLock<Outages> = std::sync::LazyLock::new(Outages::default);

/// Records a refusal of `dependency` now; the wait to tell the client.
pub fn refusing(dependency: &str) -> Duration {
    OUTAGES.refused(dependency, Instant::now())
}

/// How long the deliberate defect `outage-sticky` keeps refusing after a
/// dependency's last failure.
const STICKY_FOR: Duration = Duration::from_secs(30);

/// With the deliberate defect `outage-sticky`: refuses every tenant request
/// while any dependency failed in the last 30 s, long after it came back
/// (a "cool-down" that outlives the outage). Without it, nothing.
///
/// # Errors
/// The 503 of the sticky outage.
pub fn sticky_gate() -> Result<(), crate::error::ApiError> {
    if !crate::defects::active("outage-sticky") {
        return Ok(());
    }
    // Not recorded as a refusal of the dependency: the window runs from
    // its last real failure.
    match OUTAGES.refused_within(STICKY_FOR, Instant::now()) {
        Some(dependency) => Err(crate::error::ApiError::Unavailable(
            crate::error::Unavailable {
                message: format!("{dependency} was unavailable recently; retry later"),
                dependency,
                cause: "deliberate defect outage-sticky".to_owned(),
                retry_after: MIN_WAIT,
            },
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_grows_with_the_outage_and_is_bounded() {
        let outages = Outages::default();
        let t0 = Instant::now();
        let at = |secs: u64| t0 + Duration::from_secs(secs);
        assert_eq!(outages.refused("postgres", at(0)), MIN_WAIT);
        assert_eq!(outages.refused("postgres", at(1)), MIN_WAIT);
        assert_eq!(outages.refused("postgres", at(6)), Duration::from_secs(3));
        assert_eq!(outages.refused("postgres", at(14)), Duration::from_secs(7));
        // Refused without a pause long enough to end the outage.
        let mut secs = 14;
        while secs < 120 {
            secs += 9;
            outages.refused("postgres", at(secs));
        }
        assert_eq!(outages.refused("postgres", at(secs + 1)), MAX_WAIT);
        // Another dependency has its own outage.
        assert_eq!(outages.refused("redis", at(secs + 1)), MIN_WAIT);
    }

    #[test]
    fn a_quiet_gap_ends_an_outage() {
        let outages = Outages::default();
        let t0 = Instant::now();
        let at = |secs: u64| t0 + Duration::from_secs(secs);
        outages.refused("redis", at(0));
        assert_eq!(outages.refused("redis", at(8)), Duration::from_secs(4));
        assert_eq!(outages.refused("redis", at(8 + 11)), MIN_WAIT);
        assert_eq!(
            outages.refused_within(Duration::from_secs(5), at(22)),
            Some("redis".to_owned())
        );
        assert_eq!(outages.refused_within(Duration::from_secs(5), at(30)), None);
    }
}
