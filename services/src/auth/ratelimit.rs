//! Per-tenant request rate limits: a token bucket per tenant, refilled
//! continuously at the tenant's `rate_limit_per_minute`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// Token buckets keyed by tenant id, local to one service process.
#[derive(Debug, Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimiter {
    /// Takes one token for `tenant`; on refusal returns the seconds until one is available.
    pub fn check(&self, tenant: &str, per_minute: u32, now: Instant) -> Result<(), u64> {
        let capacity = f64::from(per_minute.max(1));
        let per_second = capacity / 60.0;
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let bucket = buckets.entry(tenant.to_owned()).or_insert(Bucket {
            tokens: capacity,
            updated: now,
        });
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * per_second).min(capacity);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - bucket.tokens) / per_second;
            // Whole seconds, rounded up, as Retry-After wants.
            Err(wait.ceil().max(1.0) as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_tenant_is_limited_and_refilled_without_touching_others() {
        let limiter = RateLimiter::default();
        let t0 = Instant::now();
        for _ in 0..60 {
            limiter.check("a", 60, t0).unwrap();
        }
        assert_eq!(limiter.check("a", 60, t0), Err(1));
        limiter
            .check("b", 60, t0)
            .expect("another tenant has its own bucket");
        limiter
            .check("a", 60, t0 + Duration::from_secs(1))
            .expect("refilled after a second");
        assert!(limiter.check("a", 60, t0 + Duration::from_secs(1)).is_err());
    }
}
