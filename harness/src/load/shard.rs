//! One generator's part of a plan run by several at once.
//!
//! `--shard I/N` (I from 0 to N-1, the numbering of a Kubernetes Indexed
//! Job's `JOB_COMPLETION_INDEX`) makes this generator run its share of the
//! plan's users and hatch rate, with tenants named after the shard, so N
//! generators started with the same arguments make the plan between them
//! and never share a tenant. Every tenant id also carries a random suffix
//! ([`Platform::create_tenant`](crate::platform::Platform::create_tenant)),
//! so even two generators given the same shard do not collide on the
//! platform; the shard in each report lets `load merge` refuse to count one
//! twice.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Shard `index` of `count` (`0/3`, `1/3`, `2/3`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Shard {
    /// This shard's part of `total`: an equal share, the first
    /// `total % count` shards one more, so the parts add up to `total`.
    pub fn share(self, total: usize) -> usize {
        let count = self.count as usize;
        total / count + usize::from((self.index as usize) < total % count)
    }

    /// This shard's part of a rate.
    pub fn share_rate(self, rate: f64) -> f64 {
        rate / f64::from(self.count)
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("invalid shard `{text}`: {why} (e.g. 0/3, 1/3 and 2/3)");
        let (index, count) = text
            .trim()
            .split_once('/')
            .ok_or_else(|| bad("expected INDEX/COUNT"))?;
        let index: u32 = index
            .trim()
            .parse()
            .map_err(|_| bad("INDEX is not a whole number"))?;
        let count: u32 = count
            .trim()
            .parse()
            .map_err(|_| bad("COUNT is not a whole number"))?;
        if count == 0 {
            return Err(bad("COUNT must be at least 1"));
        }
        if index >= count {
            return Err(bad("INDEX counts from 0 and must be below COUNT"));
        }
        Ok(Shard { index, count })
    }
}

impl Serialize for Shard {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Shard {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_add_up_to_the_plan() {
        for total in 0..20 {
            for count in 1..6 {
                let sum: usize = (0..count)
                    .map(|index| Shard { index, count }.share(total))
                    .sum();
                assert_eq!(sum, total, "{total} over {count}");
            }
        }
        assert_eq!(Shard { index: 0, count: 3 }.share(7), 3);
        assert_eq!(Shard { index: 2, count: 3 }.share(7), 2);
    }

    #[test]
    fn parses_and_prints_index_over_count() {
        let s: Shard = "1/3".parse().unwrap();
        assert_eq!(s, Shard { index: 1, count: 3 });
        assert_eq!(s.to_string(), "1/3");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"1/3\"");
    }

    #[test]
    fn bad_shards_say_what_is_wrong() {
        for (text, why) in [
            ("3", "expected INDEX/COUNT"),
            ("3/3", "INDEX counts from 0"),
            ("1/0", "COUNT must be at least 1"),
            ("a/3", "INDEX is not a whole number"),
            ("1/-3", "COUNT is not a whole number"),
        ] {
            let err = text.parse::<Shard>().unwrap_err();
            assert!(err.contains(why) && err.contains(text), "{text}: {err}");
        }
    }
}
