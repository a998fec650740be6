//! What a peer may still ask of us: token buckets of requests and of sync bytes.

use std::time::{Duration, Instant};

/// Requests a peer may make: a token bucket of requests and one of sync bytes.
#[derive(Debug)]
pub struct Throttle {
    requests: f64,
    bytes: f64,
    last: Instant,
}

/// Per-peer request limits (config `sync_requests_per_sec`, `sync_bytes_per_sec`).
#[derive(Debug, Clone, Copy)]
pub struct RequestLimits {
    /// Requests per second (and the burst).
    pub requests_per_sec: u32,
    /// Sync page bytes per second (and the burst).
    pub bytes_per_sec: u64,
}

impl Default for RequestLimits {
    fn default() -> Self {
        Self {
            requests_per_sec: 50,
            bytes_per_sec: 32 * 1024 * 1024,
        }
    }
}

impl Throttle {
    pub(super) fn new(limits: RequestLimits, now: Instant) -> Self {
        Self {
            requests: f64::from(limits.requests_per_sec),
            bytes: limits.bytes_per_sec as f64,
            last: now,
        }
    }

    fn refill(&mut self, limits: RequestLimits, now: Instant) {
        let dt = now.duration_since(self.last).as_secs_f64();
        self.last = now;
        let rps = f64::from(limits.requests_per_sec);
        let bps = limits.bytes_per_sec as f64;
        self.requests = (self.requests + dt * rps).min(rps);
        self.bytes = (self.bytes + dt * bps).min(bps);
    }

    /// Takes one request; `Err(wait)` if the peer must wait that long first.
    pub(super) fn take(&mut self, limits: RequestLimits, now: Instant) -> Result<(), Duration> {
        self.refill(limits, now);
        let rps = f64::from(limits.requests_per_sec.max(1));
        let bps = limits.bytes_per_sec.max(1) as f64;
        if self.requests < 1.0 {
            return Err(Duration::from_secs_f64((1.0 - self.requests) / rps));
        }
        if self.bytes < 0.0 {
            return Err(Duration::from_secs_f64(-self.bytes / bps));
        }
        self.requests -= 1.0;
        Ok(())
    }

    /// Charges the bytes of a page already served (the balance may go negative).
    pub(super) fn spend_bytes(&mut self, bytes: usize) {
        self.bytes -= bytes as f64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttle_allows_a_burst_then_asks_to_wait_and_refills() {
        let limits = RequestLimits {
            requests_per_sec: 10,
            bytes_per_sec: 1000,
        };
        let t0 = Instant::now();
        let mut t = Throttle::new(limits, t0);
        for _ in 0..10 {
            assert!(t.take(limits, t0).is_ok());
        }
        let wait = t.take(limits, t0).unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_millis(100),
            "{wait:?}"
        );
        assert!(t.take(limits, t0 + Duration::from_millis(100)).is_ok());
        // Sync bytes: a page may overdraw; the next request waits for the deficit.
        let t1 = t0 + Duration::from_secs(10);
        assert!(t.take(limits, t1).is_ok());
        t.spend_bytes(3000);
        let wait = t.take(limits, t1).unwrap_err();
        assert_eq!(wait, Duration::from_secs(2));
        assert!(t.take(limits, t1 + Duration::from_secs(2)).is_ok());
    }
}
