//! How long settling waits: as long as the platform keeps making progress.
//!
//! After a fault the checks poll the stores until nothing pending is left.
//! A fixed window for that ("everything settled within 20 s of the load")
//! is a clock: on a busy machine a healthy worker drains its queue more
//! slowly, the window closes on a backlog that was still shrinking, and a
//! healthy platform is reported broken (or a deliberately broken one is
//! reported broken for the wrong reason).
//!
//! So the window is one of *no progress*: [`Patience`] gives up once its
//! `idle` time has passed since the backlog last reached a new low
//! ([`Verdict::backlog`]: leads unprocessed, jobs in queues, breakers
//! open, ...). A platform that keeps working gets the time it needs; a
//! stalled one (a job stuck in flight, a breaker that never closes, a lead
//! acknowledged and never processed) fails `idle` after its last step.
//! Only new lows count, so a backlog that goes up and down does not keep
//! the checks going, and since the backlog is a count that never goes
//! below zero, every wait ends; a cap of [`CAP_FACTOR`] times `idle` from
//! the first check bounds a platform that crawls.
//!
//! One [`Patience`] may span several waits (breakers, then the stores,
//! then the events and the audit): progress in one counts for the next,
//! and the time without it runs on from one to the next.

use std::time::{Duration, Instant};

use super::Verdict;

/// The longest a [`Patience`] lasts, in multiples of its idle time, however
/// steadily the backlog shrinks.
pub const CAP_FACTOR: u32 = 10;

/// How long the checks may go on without progress (see the module docs).
#[derive(Debug, Clone)]
pub struct Patience {
    idle: Duration,
    began: Instant,
    last_progress: Instant,
    clock: Clock,
}

impl Patience {
    /// Patience that gives up `idle` after the last progress (or after
    /// [`CAP_FACTOR`] times `idle` in all).
    pub fn new(idle: Duration) -> Patience {
        Patience::on(Clock::Real, idle)
    }

    fn on(clock: Clock, idle: Duration) -> Patience {
        let now = clock.now();
        Patience {
            idle,
            began: now,
            last_progress: now,
            clock,
        }
    }

    fn elapsed(&self, since: Instant) -> Duration {
        self.clock.now().saturating_duration_since(since)
    }

    /// The time allowed without progress.
    pub fn idle(&self) -> Duration {
        self.idle
    }

    /// Notes progress: the idle time starts again.
    pub fn progressed(&mut self) {
        self.last_progress = self.clock.now();
    }

    /// What is left before it gives up.
    pub fn left(&self) -> Duration {
        let idle = self.idle.saturating_sub(self.elapsed(self.last_progress));
        let cap = (self.idle * CAP_FACTOR).saturating_sub(self.elapsed(self.began));
        idle.min(cap)
    }

    /// Whether it has given up.
    pub fn exhausted(&self) -> bool {
        self.left().is_zero()
    }

    /// Whether it gave up on the cap rather than on a stall.
    pub fn capped(&self) -> bool {
        self.elapsed(self.began) >= self.idle * CAP_FACTOR
    }
}

/// Where [`Patience`] and [`poll_until`] read the time and wait: the real
/// clock, or in this module's tests one that moves only when waited on
/// (so they check the arithmetic, not the machine's speed).
#[derive(Debug, Clone)]
enum Clock {
    Real,
    #[cfg(test)]
    Fake(std::sync::Arc<tests::FakeClock>),
}

impl Clock {
    fn now(&self) -> Instant {
        match self {
            Clock::Real => Instant::now(),
            #[cfg(test)]
            Clock::Fake(fake) => fake.now(),
        }
    }

    async fn sleep(&self, pause: Duration) {
        match self {
            Clock::Real => tokio::time::sleep(pause).await,
            #[cfg(test)]
            Clock::Fake(fake) => fake.advance(pause),
        }
    }
}

/// Runs `check` again and again until nothing pending is left or
/// `patience` gives up, and returns the last verdict with the time this
/// wait took. A check whose backlog is below the lowest this wait has
/// seen is progress. Between checks it waits 100 ms, doubling up to 1 s:
/// the stores are polled, there is nothing to be woken by.
pub(super) async fn poll_until<F, Fut>(patience: &mut Patience, mut check: F) -> Verdict
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Verdict>,
{
    let started = patience.clock.now();
    let mut pause = Duration::from_millis(100);
    let mut low: Option<u64> = None;
    loop {
        let mut verdict = check().await;
        verdict.waited = patience.elapsed(started);
        if let Some(backlog) = verdict.backlog() {
            if low.is_some_and(|low| backlog < low) {
                patience.progressed();
            }
            low = Some(low.map_or(backlog, |low| low.min(backlog)));
        }
        if verdict.settled() || patience.exhausted() {
            return verdict;
        }
        patience.clock.sleep(pause.min(patience.left())).await;
        pause = (pause * 2).min(Duration::from_secs(1));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::invariants::Finding;

    /// A clock that moves only when slept on.
    #[derive(Debug)]
    pub(super) struct FakeClock {
        base: Instant,
        offset: Mutex<Duration>,
    }

    impl FakeClock {
        pub(super) fn now(&self) -> Instant {
            self.base + *self.offset.lock().unwrap()
        }

        pub(super) fn advance(&self, by: Duration) {
            *self.offset.lock().unwrap() += by;
        }

        /// The time since the clock was made.
        fn elapsed(&self) -> Duration {
            *self.offset.lock().unwrap()
        }
    }

    fn fake(idle: Duration) -> (Arc<FakeClock>, Patience) {
        let clock = Arc::new(FakeClock {
            base: Instant::now(),
            offset: Mutex::new(Duration::ZERO),
        });
        (clock.clone(), Patience::on(Clock::Fake(clock), idle))
    }

    /// A verdict with `n` leads still unprocessed.
    fn unprocessed(n: u64) -> Verdict {
        Verdict {
            findings: (0..n)
                .map(|i| Finding::Unprocessed {
                    tenant: "t".into(),
                    lead: i.to_string(),
                })
                .collect(),
            ..Verdict::default()
        }
    }

    /// A platform that processes one lead every `every`, from `backlog`.
    fn draining(
        clock: &Arc<FakeClock>,
        backlog: u64,
        every: Duration,
    ) -> impl FnMut() -> std::future::Ready<Verdict> {
        let clock = clock.clone();
        move || {
            let done = (clock.elapsed().as_millis() / every.as_millis()) as u64;
            std::future::ready(unprocessed(backlog.saturating_sub(done)))
        }
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[tokio::test]
    async fn a_backlog_that_keeps_shrinking_is_waited_for_past_the_idle_time() {
        // 12 leads, one every 4 s: 48 s in all, against 10 s without
        // progress. A fixed 10 s window would give up with 10 left.
        let (clock, mut patience) = fake(secs(10));
        let verdict = poll_until(&mut patience, draining(&clock, 12, secs(4))).await;
        assert!(verdict.holds(), "{}", verdict.describe(5));
        assert!(verdict.waited >= secs(48), "{:?}", verdict.waited);
        assert!(!patience.exhausted());
    }

    #[tokio::test]
    async fn a_backlog_that_stalls_is_given_up_on_after_the_idle_time() {
        // Three leads processed, one every 2 s, then nothing more.
        let (clock, mut patience) = fake(secs(10));
        let check = {
            let clock = clock.clone();
            move || {
                let done = (clock.elapsed().as_secs() / 2).min(3);
                std::future::ready(unprocessed(10 - done))
            }
        };
        let verdict = poll_until(&mut patience, check).await;
        assert_eq!(verdict.findings.len(), 7);
        // The last step seen at 6.5 s (checks 1 s apart by then), then
        // 10 s without one.
        let waited = verdict.waited.as_secs_f64();
        assert!((16.0..17.5).contains(&waited), "{waited}");
        assert!(patience.exhausted() && !patience.capped());
    }

    #[tokio::test]
    async fn a_backlog_that_goes_up_and_down_is_no_progress() {
        let (_clock, mut patience) = fake(secs(10));
        let calls = AtomicU64::new(0);
        let check = || {
            let n = calls.fetch_add(1, Ordering::Relaxed);
            std::future::ready(unprocessed(5 + n % 2))
        };
        let verdict = poll_until(&mut patience, check).await;
        assert!(!verdict.findings.is_empty());
        let waited = verdict.waited.as_secs_f64();
        assert!((10.0..11.0).contains(&waited), "{waited}");
    }

    #[tokio::test]
    async fn a_crawling_backlog_meets_the_cap() {
        // One lead every 5 s of 1,000, with 10 s allowed without progress:
        // it never stalls, and the cap ends it.
        let (clock, mut patience) = fake(secs(10));
        let verdict = poll_until(&mut patience, draining(&clock, 1000, secs(5))).await;
        assert!(!verdict.holds());
        assert!(patience.capped());
        let waited = verdict.waited.as_secs_f64();
        assert!((100.0..101.5).contains(&waited), "{waited}");
    }

    #[tokio::test]
    async fn a_store_that_cannot_be_read_is_no_progress() {
        // Every other check cannot read the stores, and so sees none of
        // the backlog: that is not a step forward.
        let (_clock, mut patience) = fake(secs(10));
        let calls = AtomicU64::new(0);
        let check = || {
            let n = calls.fetch_add(1, Ordering::Relaxed);
            let readable = n.is_multiple_of(2);
            let mut verdict = unprocessed(if readable { 5 } else { 0 });
            if !readable {
                verdict.findings.push(Finding::Unreadable {
                    what: "postgres".into(),
                    error: "connection refused".into(),
                });
            }
            std::future::ready(verdict)
        };
        let verdict = poll_until(&mut patience, check).await;
        let waited = verdict.waited.as_secs_f64();
        assert!((10.0..11.0).contains(&waited), "{waited}");
    }

    #[tokio::test]
    async fn progress_in_one_wait_counts_for_the_next() {
        let (clock, mut patience) = fake(secs(10));
        poll_until(&mut patience, draining(&clock, 3, secs(6))).await;
        // The backlog reached nothing, a new low, at the last check: the
        // next wait has the full 10 s.
        assert_eq!(patience.left(), secs(10));
        let stalled = || std::future::ready(unprocessed(1));
        let verdict = poll_until(&mut patience, stalled).await;
        let waited = verdict.waited.as_secs_f64();
        assert!((10.0..10.5).contains(&waited), "{waited}");
    }

    #[test]
    fn the_backlog_counts_the_work_pending_findings_stand_for() {
        let mut verdict = unprocessed(2);
        verdict.findings.push(Finding::QueueBusy {
            queue: "q".into(),
            size: 3,
            in_flight: 1,
            retrying: 2,
        });
        verdict.findings.push(Finding::JobsUnsettled {
            queue: "q".into(),
            accepted: 10,
            settled: 6,
        });
        // Broken findings are no work left to do.
        verdict.findings.push(Finding::LeadLost {
            tenant: "t".into(),
            lead: "l".into(),
        });
        assert_eq!(verdict.backlog(), Some(2 + 6 + 4));
    }
}
