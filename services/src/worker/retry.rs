//! When a failed job is tried again, and when it is given up on.
//!
//! A queue promises to ride out an outage of its *retry span* (the
//! contract's `retry-span`, 30 s for every queue unless the worker is told
//! otherwise): a job is dead-lettered only once it has used its queue's
//! retries ([`QueueName::max_retries`], now the least it gets) *and* has
//! been failing for at least the span since its first failure
//! ([`Job::first_failed_at`]). The count alone did not keep that promise:
//! lead processing's three retries, 0.5 + 1 + 2 s with jitter, all fell
//! inside a five-second Postgres outage, and the lead was dead-lettered.
//! The span is measured from the recorded first failure, not by adding up
//! the delays, so it holds however the jitter fell (and across workers,
//! as the time travels with the job).
//!
//! Between attempts the delay stays exponential, jittered and capped
//! ([`backoff`]), so a long outage is not hammered. Once a job's retries
//! are used, the wait for its next attempt is cut to what is left of its
//! span: the attempt after the span is then the last, and a job that cannot
//! succeed is dead-lettered about one span after it first failed, rather
//! than up to twice that (the doubling delay overshoots the span's end by
//! as much as the span itself).

use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;

use crate::queue::{backoff, Job, QueueName};

/// The span of a queue the worker is given none for: the contract's
/// `retry-span` of every queue (`fixtures/platform.yaml`).
pub const DEFAULT_RETRY_SPAN: Duration = Duration::from_secs(30);

/// One `--job-retry-span` entry, `QUEUE=SPAN`: how long the jobs of a queue
/// ride out failures. The span is a number of seconds, or a number with a
/// unit (`500ms`, `30s`, `2m`, `1h`); `0` leaves the retries' count alone
/// to decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetrySpan {
    pub queue: QueueName,
    pub span: Duration,
}

impl std::str::FromStr for RetrySpan {
    type Err = String;

    fn from_str(entry: &str) -> Result<Self, String> {
        let (queue, span) = entry
            .split_once('=')
            .ok_or_else(|| format!("`{entry}` is not QUEUE=SPAN (e.g. `lead-processing=30s`)"))?;
        let (queue, span) = (queue.trim(), span.trim());
        let queue = QueueName::parse(queue).ok_or_else(|| {
            let names: Vec<&str> = QueueName::ALL.map(QueueName::as_str).to_vec();
            format!(
                "`{entry}`: `{queue}` is not a queue; the queues are {}",
                names.join(", ")
            )
        })?;
        let span = parse_span(span).ok_or_else(|| {
            format!(
                "`{entry}`: `{span}` is not a span (write seconds, or e.g. `30s`, `2m`, `500ms`)"
            )
        })?;
        Ok(RetrySpan { queue, span })
    }
}

/// `30` (seconds), `30s`, `500ms`, `2m`, `1h`.
pub(crate) fn parse_span(text: &str) -> Option<Duration> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().ok()?;
    match unit {
        "" | "s" => Some(Duration::from_secs(n)),
        "ms" => Some(Duration::from_millis(n)),
        "m" => n.checked_mul(60).map(Duration::from_secs),
        "h" => n.checked_mul(3600).map(Duration::from_secs),
        _ => None,
    }
}

/// What becomes of a job whose attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Next {
    /// Tried again after this delay.
    Retry(Duration),
    /// Given up on: its retries are used and its span is over.
    DeadLetter,
}

/// The worker's retry settings (from [`super::WorkerArgs`]).
#[derive(Debug, Clone, Copy)]
pub(super) struct RetryPolicy<'a> {
    /// The first retry's delay, doubled per attempt.
    pub(super) base: Duration,
    /// The longest delay.
    pub(super) cap: Duration,
    /// Per queue; the last entry naming a queue wins.
    pub(super) spans: &'a [RetrySpan],
    /// The deliberate defect `job-retries-by-count`: spans are ignored, the
    /// count alone decides (the policy before spans, which dead-lettered
    /// jobs during short outages).
    pub(super) by_count: bool,
}

impl RetryPolicy<'_> {
    /// The span `queue`'s jobs ride out.
    pub(super) fn span(&self, queue: QueueName) -> Duration {
        if self.by_count {
            return Duration::ZERO;
        }
        self.spans
            .iter()
            .rev()
            .find(|s| s.queue == queue)
            .map_or(DEFAULT_RETRY_SPAN, |s| s.span)
    }

    /// What becomes of `job`, whose attempt failed at `now`.
    pub(super) fn next(&self, job: &Job, now: DateTime<Utc>, rng: &mut impl Rng) -> Next {
        let span = self.span(job.queue);
        let failing_for = job.failing_for(now);
        let retries = job.queue.max_retries();
        if job.attempt >= retries && failing_for >= span {
            return Next::DeadLetter;
        }
        let delay = backoff(job.attempt + 1, self.base, self.cap, rng);
        let left = span.saturating_sub(failing_for);
        if job.attempt + 1 >= retries && !left.is_zero() {
            // Its retries are used after this one: the next attempt falls
            // at the latest when the span is over, and is its last.
            return Next::Retry(delay.min(left));
        }
        Next::Retry(delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use serde_json::Value;

    const BASE: Duration = Duration::from_millis(500);
    const CAP: Duration = Duration::from_secs(60);

    fn policy(spans: &[RetrySpan], by_count: bool) -> RetryPolicy<'_> {
        RetryPolicy {
            base: BASE,
            cap: CAP,
            spans,
            by_count,
        }
    }

    fn at(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(1_700_000_000_000 + ms).expect("a time")
    }

    fn lead_job() -> Job {
        Job::new(QueueName::LeadProcessing, "process-lead", "t", Value::Null)
    }

    /// `job` after failing `retries` times, the first at 0 ms.
    fn failed(retries: u32) -> Job {
        let mut job = lead_job();
        for _ in 0..retries {
            job = job.retried("down", at(0));
        }
        job
    }

    #[test]
    fn before_the_span_is_over_a_job_is_retried_past_its_count() {
        let rng = &mut rand::rngs::StdRng::seed_from_u64(1);
        let job = failed(5);
        assert!(job.attempt > QueueName::LeadProcessing.max_retries());
        let next = policy(&[], false).next(&job, at(29_999), rng);
        // Cut to the one millisecond left of the span.
        assert_eq!(next, Next::Retry(Duration::from_millis(1)));
    }

    #[test]
    fn once_the_count_is_used_and_the_span_over_a_job_is_dead_lettered() {
        let rng = &mut rand::rngs::StdRng::seed_from_u64(2);
        let p = policy(&[], false);
        assert_eq!(p.next(&failed(3), at(30_000), rng), Next::DeadLetter);
        // The span over, but a retry of the count left: retried, by backoff.
        match p.next(&failed(2), at(45_000), rng) {
            Next::Retry(delay) => assert!(delay >= BASE * 2 && delay <= BASE * 4, "{delay:?}"),
            Next::DeadLetter => panic!("dead-lettered with a retry left"),
        }
    }

    #[test]
    fn a_queues_span_is_its_last_entry_or_the_default() {
        let spans: Vec<RetrySpan> = ["lead-processing=10", "email-sync=2m", "lead-processing=45s"]
            .iter()
            .map(|e| e.parse().unwrap())
            .collect();
        let p = policy(&spans, false);
        assert_eq!(p.span(QueueName::LeadProcessing), Duration::from_secs(45));
        assert_eq!(p.span(QueueName::EmailSync), Duration::from_secs(120));
        assert_eq!(p.span(QueueName::VoiceProcessing), DEFAULT_RETRY_SPAN);
        assert_eq!(
            policy(&spans, true).span(QueueName::EmailSync),
            Duration::ZERO
        );
        let rng = &mut rand::rngs::StdRng::seed_from_u64(3);
        assert!(matches!(
            p.next(&failed(3), at(30_000), rng),
            Next::Retry(_)
        ));
        assert_eq!(p.next(&failed(3), at(45_000), rng), Next::DeadLetter);
    }

    #[test]
    fn a_malformed_entry_is_refused_naming_it() {
        let err = |entry: &str| entry.parse::<RetrySpan>().unwrap_err();
        assert_eq!(
            err("lead-processing"),
            "`lead-processing` is not QUEUE=SPAN (e.g. `lead-processing=30s`)"
        );
        assert!(
            err("leads=30").starts_with(
                "`leads=30`: `leads` is not a queue; the queues are lead-processing, email-sync,"
            ),
            "{}",
            err("leads=30")
        );
        assert!(
            err("email-sync=soon").starts_with("`email-sync=soon`: `soon` is not a span"),
            "{}",
            err("email-sync=soon")
        );
        assert!(err("email-sync=-5s").contains("`-5s` is not a span"));
        assert_eq!(
            " email-sync = 500ms ".parse::<RetrySpan>(),
            Ok(RetrySpan {
                queue: QueueName::EmailSync,
                span: Duration::from_millis(500)
            })
        );
    }

    /// Runs a job that fails until `healed` (or for ever) through `p`,
    /// each attempt taking `work`: when it succeeded or was
    /// dead-lettered, and after how many attempts.
    fn ride(
        p: &RetryPolicy<'_>,
        healed: Option<Duration>,
        work: Duration,
        rng: &mut impl Rng,
    ) -> (Result<Duration, Duration>, u32) {
        let mut job = lead_job();
        let mut clock = Duration::ZERO;
        loop {
            clock += work;
            if healed.is_some_and(|h| clock >= h) {
                return (Ok(clock), job.attempt + 1);
            }
            let now = at(i64::try_from(clock.as_millis()).unwrap());
            match p.next(&job, now, rng) {
                Next::Retry(delay) => {
                    job = job.retried("down", now);
                    clock += delay;
                }
                Next::DeadLetter => return (Err(clock), job.attempt + 1),
            }
        }
    }

    #[test]
    fn an_outage_shorter_than_the_span_dead_letters_nothing_however_the_jitter_falls() {
        let p = policy(&[], false);
        for seed in 0..200 {
            let rng = &mut rand::rngs::StdRng::seed_from_u64(seed);
            let (outcome, _) = ride(
                &p,
                Some(Duration::from_secs(29)),
                Duration::from_millis(20),
                rng,
            );
            assert!(outcome.is_ok(), "seed {seed}: dead-lettered at {outcome:?}");
        }
    }

    #[test]
    fn a_job_that_cannot_succeed_is_dead_lettered_about_one_span_after_its_first_failure() {
        let p = policy(&[], false);
        let work = Duration::from_millis(20);
        for seed in 0..200 {
            let rng = &mut rand::rngs::StdRng::seed_from_u64(seed);
            let (outcome, attempts) = ride(&p, None, work, rng);
            let at = outcome.expect_err("it never succeeds");
            // From its first failure (at `work`): the span, then one
            // attempt's work (and the millisecond times are kept to).
            let failing = at - work;
            let latest = DEFAULT_RETRY_SPAN + work + Duration::from_millis(1);
            assert!(
                failing >= DEFAULT_RETRY_SPAN && failing <= latest,
                "seed {seed}: dead-lettered after failing for {failing:?}"
            );
            // Exponential: a handful of attempts over 30 s, not hundreds.
            assert!(
                (5..=9).contains(&attempts),
                "seed {seed}: {attempts} attempts"
            );
        }
    }

    #[test]
    fn by_count_a_five_second_outage_dead_letters() {
        // The deliberate defect `job-retries-by-count`: three retries of
        // at most 0.5 + 1 + 2 s.
        let p = policy(&[], true);
        for seed in 0..50 {
            let rng = &mut rand::rngs::StdRng::seed_from_u64(seed);
            let (outcome, attempts) = ride(
                &p,
                Some(Duration::from_secs(5)),
                Duration::from_millis(20),
                rng,
            );
            assert!(outcome.is_err(), "seed {seed}: rode it out");
            assert_eq!(attempts, 4);
        }
    }

    #[test]
    fn a_long_outage_is_not_hammered() {
        // Past the count, the delays still double up to the cap.
        let rng = &mut rand::rngs::StdRng::seed_from_u64(9);
        let span = [RetrySpan {
            queue: QueueName::LeadProcessing,
            span: Duration::from_secs(3600),
        }];
        let p = policy(&span, false);
        let job = failed(12);
        match p.next(&job, at(600_000), rng) {
            Next::Retry(delay) => assert!(delay >= CAP / 2 && delay <= CAP, "{delay:?}"),
            Next::DeadLetter => panic!("dead-lettered inside its span"),
        }
    }
}
