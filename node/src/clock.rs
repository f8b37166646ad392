//! This node's clock against the chains' block timestamps.
//!
//! A node whose clock runs ahead sees every confirmed block as older than it is: past
//! `max_pin_age_s` it refuses every pinned block as stale, so it proposes and attests
//! nothing, and one more such node stops the consortium. A clock far behind reads blocks
//! from the future. Neither shows anywhere else, so the node measures its offset from the
//! chains: on each newest confirmed block, `now - block timestamp`. The smallest offset
//! over the configured chains is the estimate (a confirmed block is never younger than
//! its timestamp, so every sample is the clock offset plus a non-negative delay, and the
//! freshest chain bounds it best).
//!
//! Invariants: pure (fed with block timestamps and the node's time); one sample per chain
//! (the map holds at most the chains it is fed, which the core limits to the configured
//! ones); a verdict changes only on a sample, and [`ClockCheck::on_block`] reports each
//! change once.

use std::collections::BTreeMap;

/// A block timestamp this far ahead of the node's clock means the clock is behind (s):
/// clients reject blocks whose timestamp is more than about 15 s in their future.
pub const BEHIND_BOUND_S: i64 = 15;

/// What the offset says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Skew {
    /// Within bounds.
    Fine,
    /// The clock is ahead by more than the pin age: every pinned block looks too old and the
    /// node signs nothing.
    Ahead,
    /// The clock is behind: the newest blocks carry timestamps in its future.
    Behind,
}

/// The estimate and its verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClockReport {
    /// `now - block timestamp`, smallest over the chains (ms).
    pub offset_ms: i64,
    /// The verdict.
    pub skew: Skew,
    /// For operators: empty when fine, else what is wrong and what it does.
    pub warning: String,
}

/// The clock check of one node.
#[derive(Clone, Debug)]
pub struct ClockCheck {
    max_pin_age_s: u64,
    /// Per chain: the offset of its newest confirmed block when it arrived (ms).
    offsets: BTreeMap<u64, i64>,
    skew: Skew,
}

impl ClockCheck {
    /// A check for a node refusing pinned blocks older than `max_pin_age_s`.
    pub fn new(max_pin_age_s: u64) -> Self {
        Self {
            max_pin_age_s,
            offsets: BTreeMap::new(),
            skew: Skew::Fine,
        }
    }

    /// Records chain `chain_id`'s newest confirmed block (timestamp `ts_s`) seen at
    /// `now_ms`; returns the new report when the verdict changed.
    pub fn on_block(&mut self, chain_id: u64, ts_s: u64, now_ms: u64) -> Option<ClockReport> {
        let ts_ms = i64::try_from(ts_s.saturating_mul(1000)).unwrap_or(i64::MAX);
        let now = i64::try_from(now_ms).unwrap_or(i64::MAX);
        self.offsets.insert(chain_id, now.saturating_sub(ts_ms));
        let report = self.report()?;
        if report.skew == self.skew {
            return None;
        }
        self.skew = report.skew;
        Some(report)
    }

    /// The estimate (`None` before any block).
    pub fn report(&self) -> Option<ClockReport> {
        let offset_ms = *self.offsets.values().min()?;
        let max_age_ms = i64::try_from(self.max_pin_age_s.saturating_mul(1000)).unwrap_or(i64::MAX);
        let (skew, warning) = if offset_ms > max_age_ms {
            (
                Skew::Ahead,
                format!(
                    "clock {} s ahead of every chain: each confirmed block looks older than the \
                     {} s a pinned block may be, so this node proposes and attests nothing; \
                     check its time source (NTP)",
                    offset_ms / 1000,
                    self.max_pin_age_s
                ),
            )
        } else if offset_ms < -BEHIND_BOUND_S * 1000 {
            (
                Skew::Behind,
                format!(
                    "clock {} s behind the chains: blocks carry timestamps in its future; \
                     check its time source (NTP)",
                    -offset_ms / 1000
                ),
            )
        } else {
            (Skew::Fine, String::new())
        };
        Some(ClockReport {
            offset_ms,
            skew,
            warning,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000_000;

    #[test]
    fn the_freshest_chain_bounds_the_offset() {
        let mut c = ClockCheck::new(120);
        assert_eq!(c.report(), None);
        // Chain 1 confirms a block 2 s old, chain 2 one 30 s old (deep confirmations).
        assert_eq!(c.on_block(1, NOW / 1000 - 2, NOW), None);
        assert_eq!(c.on_block(2, NOW / 1000 - 30, NOW), None);
        let r = c.report().unwrap_or_else(|| panic!("a report"));
        assert_eq!((r.offset_ms, r.skew), (2_000, Skew::Fine));
        assert!(r.warning.is_empty());
    }

    #[test]
    fn a_clock_ten_minutes_ahead_is_reported_once_and_its_recovery_too() {
        let mut c = ClockCheck::new(120);
        let ahead = NOW + 600_000;
        let r = c
            .on_block(1, NOW / 1000 - 1, ahead)
            .unwrap_or_else(|| panic!("a change"));
        assert_eq!((r.offset_ms, r.skew), (601_000, Skew::Ahead));
        assert!(
            r.warning.contains("601 s ahead") && r.warning.contains("attests nothing"),
            "{}",
            r.warning
        );
        // Still ahead on the next block and on another chain: no new report.
        assert_eq!(c.on_block(1, NOW / 1000, ahead + 1_000), None);
        assert_eq!(c.on_block(2, NOW / 1000, ahead + 1_000), None);
        // 121 s on chain 1: still beyond the 120 s pin age.
        assert_eq!(c.on_block(1, NOW / 1000 + 480, ahead + 1_000), None);
        // The clock fixed: the smallest offset counts, here chain 2's fresh block.
        let r = c
            .on_block(2, NOW / 1000, NOW + 1_000)
            .unwrap_or_else(|| panic!("a change"));
        assert_eq!((r.offset_ms, r.skew), (1_000, Skew::Fine));
    }

    #[test]
    fn blocks_from_the_future_mean_the_clock_is_behind() {
        let mut c = ClockCheck::new(120);
        // 15 s ahead of the node is still tolerated; 16 s is not.
        assert_eq!(c.on_block(1, NOW / 1000 + 15, NOW), None);
        let r = c
            .on_block(1, NOW / 1000 + 16, NOW)
            .unwrap_or_else(|| panic!("a change"));
        assert_eq!((r.offset_ms, r.skew), (-16_000, Skew::Behind));
        assert!(r.warning.contains("16 s behind"), "{}", r.warning);
        // The bound is exactly the pin age on the other side.
        let mut c = ClockCheck::new(120);
        assert_eq!(c.on_block(1, NOW / 1000 - 120, NOW), None);
        assert!(c.on_block(1, NOW / 1000 - 121, NOW).is_some());
    }
}
