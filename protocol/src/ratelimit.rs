//! Per-org token buckets, driven by the caller's clock.

use crate::ids::OrgId;
use std::collections::HashMap;

/// A token bucket per org: `burst` tokens, refilled at `per_minute` tokens per minute.
#[derive(Debug, Clone, Default)]
pub struct RateLimiter {
    buckets: HashMap<OrgId, Bucket>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Tokens, in thousandths.
    milli_tokens: u64,
    last_ms: u64,
}

impl RateLimiter {
    /// Takes one token for `org` at `now_ms`; false when the bucket is empty.
    pub fn allow(&mut self, org: &OrgId, now_ms: u64, per_minute: u32, burst: u32) -> bool {
        let cap = u64::from(burst) * 1000;
        let bucket = self.buckets.entry(org.clone()).or_insert(Bucket {
            milli_tokens: cap,
            last_ms: now_ms,
        });
        let elapsed = now_ms.saturating_sub(bucket.last_ms);
        // per_minute tokens per 60_000 ms = per_minute milli-tokens per 60 ms.
        let refill = elapsed.saturating_mul(u64::from(per_minute)) / 60;
        bucket.milli_tokens = bucket.milli_tokens.saturating_add(refill).min(cap);
        bucket.last_ms = bucket.last_ms.max(now_ms);
        if bucket.milli_tokens >= 1000 {
            bucket.milli_tokens -= 1000;
            true
        } else {
            false
        }
    }

    /// Forgets orgs not in `keep` (called when membership changes).
    pub fn retain(&mut self, keep: impl Fn(&OrgId) -> bool) {
        self.buckets.retain(|org, _| keep(org));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refill() {
        let mut r = RateLimiter::default();
        let org = OrgId::new("fbi").unwrap();
        assert!((0..10).all(|_| r.allow(&org, 0, 60, 10)));
        assert!(!r.allow(&org, 0, 60, 10));
        assert!(!r.allow(&org, 999, 60, 10));
        assert!(r.allow(&org, 1000, 60, 10), "one token per second refills");
        assert!(!r.allow(&org, 1000, 60, 10));
    }
}
