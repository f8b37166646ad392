//! Retry policy: exponential backoff with jitter from an injectable source.
//!
//! The delay before retry `k` (0-based) is `d = min(initial · 2^k, max)`, then jittered
//! uniformly in `[d/2, d]` ("equal jitter"), so that nodes retrying against one endpoint
//! spread out while the delay stays bounded below. The jitter source is a trait so tests use
//! a fixed seed and get the same delays every run.

use std::time::Duration;

/// Source of jitter.
pub trait JitterSource: Send {
    /// A fresh pseudo-random value.
    fn next_u64(&mut self) -> u64;
}

/// SplitMix64: a small deterministic generator; seed it from the clock in production.
#[derive(Clone, Debug)]
pub struct SplitMix64(pub u64);

impl JitterSource for SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

impl SplitMix64 {
    /// Seeded from the system clock (for production use).
    pub fn from_clock() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x5EED);
        Self(nanos)
    }
}

/// Exponential backoff.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// Delay before the first retry (before jitter).
    pub initial: Duration,
    /// Largest delay (before jitter).
    pub max: Duration,
    /// Attempts in total (the first try included).
    pub max_attempts: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(50),
            max: Duration::from_secs(2),
            max_attempts: 6,
        }
    }
}

impl Backoff {
    /// The delay before retry `retry` (0 = the first retry).
    pub fn delay(&self, retry: u32, jitter: &mut dyn JitterSource) -> Duration {
        let factor = 1u32.checked_shl(retry.min(31)).unwrap_or(u32::MAX);
        let d = self.initial.saturating_mul(factor).min(self.max);
        let nanos = d.as_nanos().min(u64::MAX as u128) as u64;
        let half = nanos / 2;
        let spread = nanos - half;
        let extra = if spread == 0 {
            0
        } else {
            jitter.next_u64() % (spread + 1)
        };
        Duration::from_nanos(half + extra)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_are_capped_and_stay_in_the_jitter_band() {
        let b = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
            max_attempts: 10,
        };
        let mut j = SplitMix64(7);
        let expected = [100u64, 200, 400, 800, 1000, 1000, 1000];
        for (k, ms) in expected.iter().enumerate() {
            let d = b.delay(k as u32, &mut j);
            let full = Duration::from_millis(*ms);
            assert!(d >= full / 2 && d <= full, "retry {k}: {d:?} vs {full:?}");
        }
        assert!(b.delay(200, &mut j) <= Duration::from_secs(1));
    }

    #[test]
    fn same_seed_same_delays() {
        let b = Backoff::default();
        let run = |seed| {
            let mut j = SplitMix64(seed);
            (0..6).map(|k| b.delay(k, &mut j)).collect::<Vec<_>>()
        };
        assert_eq!(run(42), run(42));
        assert_ne!(run(42), run(43));
    }
}
