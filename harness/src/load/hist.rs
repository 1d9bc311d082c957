//! A latency histogram that merges exactly.
//!
//! Percentiles cannot be averaged: the p95 of two machines' runs is not the
//! mean of their p95s. So every latency a run reports is kept as bucket
//! counts, and merging two runs adds the counts bucket by bucket; the
//! percentiles of the merge are then those of the union of the samples, to
//! within a bucket's width.
//!
//! The buckets are goose's own log-linear scheme in microseconds (every
//! power of two split into 64 buckets of equal width, every time below
//! 128 µs its own bucket), so goose's per-request timings convert without
//! losing anything, and a bucket's reported value is at most 1/128 away
//! from any time it holds.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Buckets per power of two, as a power of two.
const SUB_BITS: u32 = 6;
/// Every time below this has a bucket of its own.
const EXACT: u64 = 1 << (SUB_BITS + 1);

/// The lowest time (µs) of the bucket holding `us`; it keys the bucket.
pub fn bucket_floor(us: u64) -> u64 {
    let bits = width_bits(us);
    (us >> bits) << bits
}

fn width_bits(us: u64) -> u32 {
    if us < EXACT {
        0
    } else {
        63 - us.leading_zeros() - SUB_BITS
    }
}

/// The time a bucket reports: its middle.
fn bucket_value(floor: u64) -> u64 {
    floor + ((1u64 << width_bits(floor)) >> 1)
}

/// Counts of latencies per bucket, with the exact count, sum, min and max.
///
/// Serialized as `{"count","sumUs","minUs","maxUs","buckets":[[floorUs,count],…]}`
/// with the buckets in ascending order and only those that hold a time.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Histogram {
    pub count: u64,
    pub sum_us: u64,
    pub min_us: u64,
    pub max_us: u64,
    pub buckets: Vec<(u64, u64)>,
}

impl Histogram {
    /// An empty histogram.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one latency.
    pub fn record(&mut self, latency: Duration) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.record_us(us, 1);
    }

    /// Counts `n` latencies of `us` microseconds.
    pub fn record_us(&mut self, us: u64, n: u64) {
        if n == 0 {
            return;
        }
        self.min_us = if self.count == 0 {
            us
        } else {
            self.min_us.min(us)
        };
        self.max_us = self.max_us.max(us);
        self.count += n;
        self.sum_us = self.sum_us.saturating_add(us.saturating_mul(n));
        self.add_bucket(bucket_floor(us), n);
    }

    fn add_bucket(&mut self, floor: u64, n: u64) {
        match self.buckets.binary_search_by_key(&floor, |&(f, _)| f) {
            Ok(i) => self.buckets[i].1 += n,
            Err(i) => self.buckets.insert(i, (floor, n)),
        }
    }

    /// Adds every sample of `other` to this one.
    pub fn merge(&mut self, other: &Histogram) {
        if other.count == 0 {
            return;
        }
        self.min_us = if self.count == 0 {
            other.min_us
        } else {
            self.min_us.min(other.min_us)
        };
        self.max_us = self.max_us.max(other.max_us);
        self.count += other.count;
        self.sum_us = self.sum_us.saturating_add(other.sum_us);
        for &(floor, n) in &other.buckets {
            self.add_bucket(bucket_floor(floor), n);
        }
    }

    /// The latency (µs) that `percent` of the samples did not exceed: the
    /// value of the bucket holding the sample of that rank, kept within the
    /// measured min and max; the max itself for 100. 0 when empty.
    pub fn percentile_us(&self, percent: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        if percent >= 100.0 {
            return self.max_us;
        }
        // The rank (1-based) of the sample at `percent`, in f64 which holds
        // every count exactly.
        let rank = ((percent / 100.0) * self.count as f64).ceil().max(1.0);
        let mut seen = 0u64;
        for &(floor, n) in &self.buckets {
            seen += n;
            if seen as f64 >= rank {
                return bucket_value(floor).clamp(self.min_us, self.max_us);
            }
        }
        self.max_us
    }

    /// [`Self::percentile_us`] in milliseconds.
    pub fn percentile_ms(&self, percent: f64) -> f64 {
        self.percentile_us(percent) as f64 / 1000.0
    }

    /// The mean in milliseconds; 0 when empty.
    pub fn mean_ms(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum_us as f64 / self.count as f64 / 1000.0
        }
    }

    /// The maximum in milliseconds.
    pub fn max_ms(&self) -> f64 {
        self.max_us as f64 / 1000.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(values_ms: &[u64]) -> Histogram {
        let mut h = Histogram::new();
        for &v in values_ms {
            h.record(Duration::from_millis(v));
        }
        h
    }

    #[test]
    fn a_bucket_is_never_wider_than_a_64th_of_its_times() {
        for us in [0, 1, 127, 128, 129, 1_000, 65_432, 1_000_000, 60_000_000] {
            let floor = bucket_floor(us);
            assert!(floor <= us);
            let value = bucket_value(floor);
            let error = value.abs_diff(us) as f64;
            assert!(error <= (us as f64 / 64.0).max(0.5), "{us}: {value}");
        }
    }

    #[test]
    fn percentiles_of_one_to_a_hundred_ms() {
        let h = of(&(1..=100).collect::<Vec<_>>());
        assert_eq!(h.count, 100);
        let close = |got: f64, want: f64| (got - want).abs() <= want / 64.0;
        assert!(
            close(h.percentile_ms(50.0), 50.0),
            "{}",
            h.percentile_ms(50.0)
        );
        assert!(
            close(h.percentile_ms(95.0), 95.0),
            "{}",
            h.percentile_ms(95.0)
        );
        assert!(close(h.percentile_ms(99.0), 99.0));
        assert_eq!(h.percentile_ms(100.0), 100.0);
        assert_eq!(h.min_us, 1_000);
        assert!((h.mean_ms() - 50.5).abs() < 1e-9);
    }

    #[test]
    fn merging_gives_the_histogram_of_the_union() {
        let a: Vec<u64> = (1..=900).map(|i| i % 40 + 1).collect();
        let b: Vec<u64> = (1..=100).map(|i| 400 + i).collect();
        let mut merged = of(&a);
        merged.merge(&of(&b));
        let union = of(&a.iter().chain(&b).copied().collect::<Vec<_>>());
        assert_eq!(merged, union);
        // 10% of the union is slow: its p95 is among the slow ones, which
        // neither input's p95 nor their mean would say.
        assert!(merged.percentile_ms(95.0) > 400.0);
        assert!(of(&a).percentile_ms(95.0) < 41.0);
    }

    #[test]
    fn merging_with_empty_keeps_min_and_max() {
        let mut h = Histogram::new();
        h.merge(&of(&[5, 7]));
        h.merge(&Histogram::new());
        assert_eq!((h.min_us, h.max_us, h.count), (5_000, 7_000, 2));
        assert_eq!(Histogram::new().percentile_us(95.0), 0);
    }

    #[test]
    fn serializes_as_pairs_and_back() {
        let h = of(&[1, 1, 250]);
        let text = serde_json::to_string(&h).unwrap();
        assert!(
            text.contains(r#""buckets":[[1000,2],[249856,1]]"#),
            "{text}"
        );
        assert_eq!(serde_json::from_str::<Histogram>(&text).unwrap(), h);
    }
}
