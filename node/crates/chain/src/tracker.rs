//! Confirmation and reorg tracking of one chain: a sans-IO state machine.
//!
//! The tracker holds the node's view of the canonical chain as a contiguous window of block
//! references (number, hash, parent hash). It is fed blocks one at a time
//! ([`ConfirmationTracker::on_block`]) and answers either with what changed (a new tip, a
//! reorg) or with the number of a block it must see first ([`Step::NeedBlock`]): the adapter
//! fetches the canonical block at that number, feeds it, and feeds the original block again.
//!
//! Invariants:
//! - the window is contiguous: entry `i + 1` has number `entry i + 1` and its parent hash is
//!   the hash of entry `i`;
//! - the confirmed head is `tip - depth`; a block is reported confirmed only while it is in
//!   the window (so its hash is known);
//! - a block is never silently replaced: every replacement is reported as a
//!   [`TrackerEvent::Reorged`], flagged `deep` when it removes a block the tracker had
//!   already reported as confirmed (a reorg deeper than the confirmation depth);
//! - the window never drops a block above the floor set by the consumer
//!   ([`ConfirmationTracker::set_floor`]), so blocks not yet delivered keep their hashes.

use std::collections::VecDeque;

use alloy::primitives::B256;

/// A block as the tracker sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BlockRef {
    /// Block number.
    pub number: u64,
    /// Block hash.
    pub hash: B256,
    /// Hash of the parent block.
    pub parent_hash: B256,
}

impl BlockRef {
    /// This block of `chain_id`, as reads pin it.
    pub fn pinned(&self, chain_id: u64) -> backstop_types::PinnedBlock {
        backstop_types::PinnedBlock {
            chain_id,
            number: self.number,
            hash: self.hash,
        }
    }
}

/// What feeding a block produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// The block was applied (or was already known); these changes followed.
    Applied(Vec<TrackerEvent>),
    /// The canonical block at this number must be fed first, then the block again.
    NeedBlock(u64),
}

/// A change of the canonical view.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TrackerEvent {
    /// A new canonical tip.
    NewTip(BlockRef),
    /// Blocks above `ancestor` were replaced.
    Reorged {
        /// Highest block kept.
        ancestor: u64,
        /// The blocks removed, ascending.
        dropped: Vec<BlockRef>,
        /// Whether a removed block had been reported confirmed.
        deep: bool,
    },
}

/// Why a block cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrackerError {
    /// The block forks below the oldest block the tracker still holds.
    #[error("block {number} forks below the tracked window (oldest {oldest})")]
    ReorgBeyondWindow {
        /// Number of the block fed.
        number: u64,
        /// Oldest block in the window.
        oldest: u64,
    },
}

/// Tracks the canonical chain and its confirmed head.
#[derive(Clone, Debug)]
pub struct ConfirmationTracker {
    depth: u64,
    keep: usize,
    floor: u64,
    window: VecDeque<BlockRef>,
    /// Highest block number reported confirmed so far.
    confirmed: Option<u64>,
}

impl ConfirmationTracker {
    /// A tracker confirming blocks `depth` below the tip and keeping at least `keep` blocks.
    pub fn new(depth: u64, keep: usize) -> Self {
        let keep = keep.max(depth as usize + 2);
        Self {
            depth,
            keep,
            floor: 0,
            window: VecDeque::with_capacity(keep),
            confirmed: None,
        }
    }

    /// A tracker that starts from `anchor`, a block already known confirmed.
    pub fn anchored(depth: u64, keep: usize, anchor: BlockRef) -> Self {
        let mut t = Self::new(depth, keep);
        t.window.push_back(anchor);
        t.confirmed = Some(anchor.number);
        t.floor = anchor.number;
        t
    }

    /// Confirmation depth.
    pub fn depth(&self) -> u64 {
        self.depth
    }

    /// The canonical tip.
    pub fn tip(&self) -> Option<BlockRef> {
        self.window.back().copied()
    }

    /// The canonical block at `number`, if in the window.
    pub fn canonical(&self, number: u64) -> Option<BlockRef> {
        let front = self.window.front()?.number;
        let i = usize::try_from(number.checked_sub(front)?).ok()?;
        self.window.get(i).copied()
    }

    /// The confirmed head: the canonical block `depth` below the tip.
    pub fn confirmed_head(&self) -> Option<BlockRef> {
        let tip = self.tip()?;
        let n = tip.number.checked_sub(self.depth)?;
        let b = self.canonical(n)?;
        Some(b)
    }

    /// Records that blocks up to `upto` (at most the confirmed head) were delivered as
    /// confirmed, so that a later reorg of them is reported `deep`.
    pub fn mark_confirmed(&mut self, upto: u64) {
        let upto = match self.confirmed_head() {
            Some(c) => upto.min(c.number),
            None => return,
        };
        self.confirmed = Some(self.confirmed.map_or(upto, |c| c.max(upto)));
    }

    /// Keep blocks at or above `floor` (blocks the consumer has not delivered yet).
    pub fn set_floor(&mut self, floor: u64) {
        self.floor = floor;
        self.trim();
    }

    fn trim(&mut self) {
        while self.window.len() > self.keep {
            match self.window.front() {
                Some(f) if f.number < self.floor => {
                    self.window.pop_front();
                }
                _ => break,
            }
        }
    }

    /// Feeds one block (from a new head, a fetch by number, or an answer to
    /// [`Step::NeedBlock`]).
    pub fn on_block(&mut self, b: BlockRef) -> Result<Step, TrackerError> {
        let Some(tip) = self.tip() else {
            self.window.push_back(b);
            return Ok(Step::Applied(vec![TrackerEvent::NewTip(b)]));
        };
        if b.number == tip.number + 1 && b.parent_hash == tip.hash {
            self.window.push_back(b);
            self.trim();
            return Ok(Step::Applied(vec![TrackerEvent::NewTip(b)]));
        }
        if b.number > tip.number + 1 {
            return Ok(Step::NeedBlock(tip.number + 1));
        }
        if self.canonical(b.number).is_some_and(|c| c.hash == b.hash) {
            return Ok(Step::Applied(Vec::new()));
        }
        // b replaces the block at its height (or extends a replaced tip): its parent must be
        // canonical, or the parent's height must be fetched first.
        let oldest = self.window.front().map_or(0, |f| f.number);
        let parent_number = match b.number.checked_sub(1) {
            Some(p) if p >= oldest => p,
            _ => {
                return Err(TrackerError::ReorgBeyondWindow {
                    number: b.number,
                    oldest,
                });
            }
        };
        let parent = self.canonical(parent_number);
        if parent.is_none_or(|p| p.hash != b.parent_hash) {
            return Ok(Step::NeedBlock(parent_number));
        }
        let keep = (parent_number - oldest + 1) as usize;
        let dropped: Vec<BlockRef> = self.window.drain(keep..).collect();
        let deep = self
            .confirmed
            .is_some_and(|c| dropped.first().is_some_and(|d| d.number <= c));
        if deep {
            self.confirmed = Some(parent_number);
        }
        self.window.push_back(b);
        self.trim();
        Ok(Step::Applied(vec![
            TrackerEvent::Reorged {
                ancestor: parent_number,
                dropped,
                deep,
            },
            TrackerEvent::NewTip(b),
        ]))
    }

    /// Highest block number reported confirmed (see [`Self::mark_confirmed`]).
    pub fn reported_confirmed(&self) -> Option<u64> {
        self.confirmed
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn h(fork: u8, n: u64) -> B256 {
        let mut b = [0u8; 32];
        b[0] = fork;
        b[24..].copy_from_slice(&n.to_be_bytes());
        B256::from(b)
    }

    /// Block `n` of fork `fork`, whose parent is on fork `parent_fork`.
    fn blk(fork: u8, parent_fork: u8, n: u64) -> BlockRef {
        BlockRef {
            number: n,
            hash: h(fork, n),
            parent_hash: h(parent_fork, n.wrapping_sub(1)),
        }
    }

    fn feed_chain(t: &mut ConfirmationTracker, fork: u8, range: std::ops::RangeInclusive<u64>) {
        for n in range {
            let step = t.on_block(blk(fork, fork, n)).unwrap();
            assert_eq!(
                step,
                Step::Applied(vec![TrackerEvent::NewTip(blk(fork, fork, n))])
            );
        }
    }

    #[test]
    fn confirmed_head_is_depth_below_tip() {
        let mut t = ConfirmationTracker::new(3, 16);
        feed_chain(&mut t, 0, 0..=2);
        assert_eq!(t.confirmed_head(), None);
        feed_chain(&mut t, 0, 3..=3);
        assert_eq!(t.confirmed_head().unwrap().number, 0);
        feed_chain(&mut t, 0, 4..=10);
        assert_eq!(t.confirmed_head().unwrap(), blk(0, 0, 7));
        assert_eq!(t.canonical(5), Some(blk(0, 0, 5)));
    }

    #[test]
    fn gap_asks_for_next_block() {
        let mut t = ConfirmationTracker::new(2, 16);
        feed_chain(&mut t, 0, 0..=3);
        assert_eq!(t.on_block(blk(0, 0, 7)).unwrap(), Step::NeedBlock(4));
        assert_eq!(t.tip().unwrap().number, 3);
    }

    #[test]
    fn duplicate_block_changes_nothing() {
        let mut t = ConfirmationTracker::new(2, 16);
        feed_chain(&mut t, 0, 0..=3);
        assert_eq!(t.on_block(blk(0, 0, 2)).unwrap(), Step::Applied(vec![]));
        assert_eq!(t.tip().unwrap(), blk(0, 0, 3));
    }

    #[test]
    fn shallow_reorg_walks_back_and_replaces() {
        let mut t = ConfirmationTracker::new(3, 16);
        feed_chain(&mut t, 0, 0..=10);
        t.mark_confirmed(7);
        // New fork 1 branches off after block 8: blocks 9', 10', 11'.
        assert_eq!(t.on_block(blk(1, 1, 11)).unwrap(), Step::NeedBlock(10));
        assert_eq!(t.on_block(blk(1, 1, 10)).unwrap(), Step::NeedBlock(9));
        let step = t.on_block(blk(1, 0, 9)).unwrap();
        assert_eq!(
            step,
            Step::Applied(vec![
                TrackerEvent::Reorged {
                    ancestor: 8,
                    dropped: vec![blk(0, 0, 9), blk(0, 0, 10)],
                    deep: false
                },
                TrackerEvent::NewTip(blk(1, 0, 9)),
            ])
        );
        assert!(matches!(
            t.on_block(blk(1, 1, 10)).unwrap(),
            Step::Applied(_)
        ));
        assert!(matches!(
            t.on_block(blk(1, 1, 11)).unwrap(),
            Step::Applied(_)
        ));
        assert_eq!(t.confirmed_head().unwrap(), blk(0, 0, 8));
        assert_eq!(t.reported_confirmed(), Some(7));
    }

    #[test]
    fn reorg_of_a_confirmed_block_is_deep_and_rewinds() {
        let mut t = ConfirmationTracker::new(2, 16);
        feed_chain(&mut t, 0, 0..=10);
        t.mark_confirmed(8);
        let step = t.on_block(blk(2, 0, 8)).unwrap();
        let Step::Applied(events) = step else {
            panic!("applied")
        };
        assert_eq!(
            events[0],
            TrackerEvent::Reorged {
                ancestor: 7,
                dropped: vec![blk(0, 0, 8), blk(0, 0, 9), blk(0, 0, 10)],
                deep: true
            }
        );
        assert_eq!(t.reported_confirmed(), Some(7));
    }

    #[test]
    fn shorter_replacement_chain_is_a_reorg() {
        let mut t = ConfirmationTracker::new(2, 16);
        feed_chain(&mut t, 0, 0..=6);
        // The node now reports a different block 5 (its chain went back and forked).
        assert!(matches!(
            t.on_block(blk(3, 0, 5)).unwrap(),
            Step::Applied(ref e) if matches!(e[0], TrackerEvent::Reorged { ancestor: 4, .. })
        ));
        assert_eq!(t.tip().unwrap(), blk(3, 0, 5));
    }

    #[test]
    fn reorg_below_window_is_an_error_and_changes_nothing() {
        let mut t = ConfirmationTracker::new(2, 4);
        feed_chain(&mut t, 0, 0..=20);
        t.mark_confirmed(18);
        t.set_floor(18);
        let oldest = 20 - 3;
        for n in (oldest + 1..=20).rev() {
            assert_eq!(t.on_block(blk(4, 4, n)).unwrap(), Step::NeedBlock(n - 1));
        }
        assert_eq!(
            t.on_block(blk(4, 4, oldest)),
            Err(TrackerError::ReorgBeyondWindow {
                number: oldest,
                oldest
            })
        );
        assert_eq!(t.tip().unwrap(), blk(0, 0, 20));
    }

    #[test]
    fn floor_keeps_undelivered_blocks() {
        let mut t = ConfirmationTracker::anchored(1, 4, blk(0, 0, 100));
        feed_chain(&mut t, 0, 101..=130);
        // Nothing delivered beyond the anchor: every block since is kept.
        assert_eq!(t.canonical(100), Some(blk(0, 0, 100)));
        t.set_floor(125);
        assert_eq!(t.canonical(124), None);
        assert_eq!(t.canonical(125), Some(blk(0, 0, 125)));
    }
}
