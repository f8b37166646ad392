//! Chain-halt detection: a sans-IO state machine fed with head arrival times.
//!
//! A chain is *halted* when no new head arrived for longer than the bound (counted from
//! the detector's start when no head ever arrived); it is *live* again at the next head.
//! Every transition is reported exactly once.

use std::time::{Duration, Instant};

/// A change of a chain's liveness.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Liveness {
    /// No head for `silent_for` (more than the bound).
    Halted {
        /// Time since the last head (or the start).
        silent_for: Duration,
    },
    /// Heads arrive again.
    Resumed,
}

/// Reports a chain halted when it produces no head for `bound`.
#[derive(Clone, Debug)]
pub struct HaltDetector {
    bound: Duration,
    last: Instant,
    halted: bool,
}

impl HaltDetector {
    /// A detector started at `now`.
    pub fn new(bound: Duration, now: Instant) -> Self {
        Self {
            bound,
            last: now,
            halted: false,
        }
    }

    /// A new head arrived at `now`.
    pub fn on_head(&mut self, now: Instant) -> Option<Liveness> {
        self.last = self.last.max(now);
        if std::mem::take(&mut self.halted) {
            Some(Liveness::Resumed)
        } else {
            None
        }
    }

    /// Checks the bound at `now`.
    pub fn poll(&mut self, now: Instant) -> Option<Liveness> {
        let silent_for = now.saturating_duration_since(self.last);
        if !self.halted && silent_for > self.bound {
            self.halted = true;
            Some(Liveness::Halted { silent_for })
        } else {
            None
        }
    }

    /// Whether the chain is halted now.
    pub fn is_halted(&self) -> bool {
        self.halted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halts_once_after_bound_and_resumes_on_next_head() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut d = HaltDetector::new(10 * s, t0);
        assert_eq!(d.poll(t0 + 10 * s), None);
        assert_eq!(d.on_head(t0 + 5 * s), None);
        assert_eq!(d.poll(t0 + 15 * s), None);
        assert_eq!(
            d.poll(t0 + 16 * s),
            Some(Liveness::Halted { silent_for: 11 * s })
        );
        assert!(d.is_halted());
        assert_eq!(d.poll(t0 + 30 * s), None, "reported once");
        assert_eq!(d.on_head(t0 + 31 * s), Some(Liveness::Resumed));
        assert_eq!(d.on_head(t0 + 32 * s), None);
        assert_eq!(d.poll(t0 + 40 * s), None);
        assert!(matches!(d.poll(t0 + 43 * s), Some(Liveness::Halted { .. })));
    }

    #[test]
    fn never_any_head_counts_from_start() {
        let t0 = Instant::now();
        let mut d = HaltDetector::new(Duration::from_secs(2), t0);
        assert!(matches!(
            d.poll(t0 + Duration::from_secs(3)),
            Some(Liveness::Halted { .. })
        ));
    }
}
