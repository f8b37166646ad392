//! Early warnings: precursors of a member's failure, detected before a gap opens.
//!
//! - margin trend: a member's equity (assets − liabilities at its home chain's confirmed
//!   blocks) falls steadily — between at least half of the consecutive samples of the last
//!   `margin_window_blocks` blocks, so one sudden loss is not a trend (the outflow detector
//!   judges those) — and its least-squares line reaches zero within `margin_horizon_blocks`
//!   ([`backstop_stress::blocks_to_insolvency`]);
//! - coverage low: a stress scenario's 24-hour coverage ratio is under
//!   `coverage_alert_bps` (a subject for the whole pool, [`pool_subject`]);
//! - volatility spike: the standard deviation of an oracle's moves between its chain's
//!   confirmed blocks, over the last `volatility_window_blocks`, is above
//!   `volatility_alert_bps` ([`backstop_stress::volatility_bps`]).
//!
//! The results are [`Conditions`] the detectors turn into this node's assertions; the
//! policy raises a level-1 alert for what p nodes confirm, and nothing else (an early
//! warning never pays, freezes or quarantines).
//!
//! Invariants: pure (fed with snapshots and stress results); the history kept per member and
//! per oracle is bounded by the configured windows, and only configured members and oracles
//! have one; a reorg or a repeated block replaces the samples it replaces, so a history is
//! always in strictly ascending block order.

use std::collections::{BTreeMap, BTreeSet};

use alloy::primitives::{Address, B256, U256};
use backstop_stress::{ScenarioResult, Window, blocks_to_insolvency, volatility_bps};
use backstop_types::{SignalKind, oracle_subject, pool_subject};

use crate::detect::{Key, OracleSpec};
use crate::view::ChainSnapshot;

/// Thresholds and what to watch (the default watches nothing).
#[derive(Clone, Debug, Default)]
pub struct WarningConfig {
    /// Blocks the equity trend is fitted to.
    pub margin_window_blocks: u64,
    /// A trend reaching zero within this many blocks holds.
    pub margin_horizon_blocks: u64,
    /// Blocks over which a member's largest equity fall is taken.
    pub history_blocks: u64,
    /// A scenario's 24-hour coverage under this (bps) holds; 0: never.
    pub coverage_alert_bps: u64,
    /// Blocks an oracle's volatility is measured over.
    pub volatility_window_blocks: u64,
    /// A volatility above this (bps) holds; 0: never.
    pub volatility_alert_bps: u64,
    /// Members and their home chains.
    pub members: BTreeMap<B256, u64>,
    /// Oracles.
    pub oracles: Vec<OracleSpec>,
}

/// What one source decided: every condition it judged, with the evidence of those holding.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Conditions {
    /// Conditions judged (those not in `found` do not hold).
    pub affected: BTreeSet<Key>,
    /// Conditions holding, with their evidence.
    pub found: BTreeMap<Key, String>,
}

/// One member's sample: (block, assets, liabilities).
type Sample = (u64, U256, U256);

/// The early-warning state of one node.
#[derive(Debug)]
pub struct Warnings {
    cfg: WarningConfig,
    equity: BTreeMap<B256, Window<Sample>>,
    prices: BTreeMap<(u64, Address), Window<(u64, U256)>>,
}

impl Warnings {
    /// Nothing observed yet.
    pub fn new(cfg: WarningConfig) -> Self {
        Self {
            cfg,
            equity: BTreeMap::new(),
            prices: BTreeMap::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &WarningConfig {
        &self.cfg
    }

    /// Chain `chain_id`'s blocks from `from` on were replaced by a reorg: their samples go,
    /// so that whichever replacing block is read next is compared with what still stands
    /// (a node that reads only the newest of several waiting blocks may never read a block
    /// at `from`).
    pub fn on_reorg(&mut self, chain_id: u64, from: u64) {
        for (member, hist) in &mut self.equity {
            if self.cfg.members.get(member) == Some(&chain_id) {
                drop_from(hist, from, |s| s.0);
            }
        }
        for ((chain, _), hist) in &mut self.prices {
            if *chain == chain_id {
                drop_from(hist, from, |s| s.0);
            }
        }
    }

    /// A confirmed block of one chain: the margin trends of the members homed there and the
    /// volatility of its oracles.
    pub fn on_snapshot(&mut self, snap: &ChainSnapshot) -> Conditions {
        let mut c = Conditions::default();
        self.margins(snap, &mut c);
        self.volatility(snap, &mut c);
        c
    }

    fn margins(&mut self, snap: &ChainSnapshot, c: &mut Conditions) {
        let chain_id = snap.block.chain_id;
        let number = snap.block.number;
        let keep = self.cfg.history_blocks.max(self.cfg.margin_window_blocks) as usize;
        let window = self.cfg.margin_window_blocks as usize;
        for (member, _) in self.cfg.members.iter().filter(|(_, h)| **h == chain_id) {
            let key = (SignalKind::MarginTrend, *member);
            c.affected.insert(key);
            let Some(s) = snap.members.get(member).and_then(|m| m.solvency) else {
                continue;
            };
            let hist = self
                .equity
                .entry(*member)
                .or_insert_with(|| Window::new(keep));
            push_at(hist, number, (number, s.assets, s.liabilities), |s| s.0);
            let recent = hist.as_slice();
            let recent = &recent[recent.len().saturating_sub(window)..];
            if steady_fall(recent)
                && let Some(blocks) = blocks_to_insolvency(recent)
                && blocks <= self.cfg.margin_horizon_blocks
            {
                c.found.insert(
                    key,
                    format!(
                        "equity {} at block {number} falls on a trend that reaches zero in {blocks} blocks (fitted over {} blocks)",
                        equity_text(s.assets, s.liabilities),
                        recent.len()
                    ),
                );
            }
        }
    }

    fn volatility(&mut self, snap: &ChainSnapshot, c: &mut Conditions) {
        let chain_id = snap.block.chain_id;
        let number = snap.block.number;
        let window = self.cfg.volatility_window_blocks as usize;
        for o in self.cfg.oracles.iter().filter(|o| o.chain_id == chain_id) {
            let key = (
                SignalKind::VolatilitySpike,
                oracle_subject(chain_id, o.address),
            );
            c.affected.insert(key);
            let Some(price) = snap
                .oracles
                .get(&o.address)
                .copied()
                .flatten()
                .and_then(|r| r.price())
            else {
                // An unreadable feed is the staleness detector's: no volatility claimed.
                continue;
            };
            let hist = self
                .prices
                .entry((chain_id, o.address))
                .or_insert_with(|| Window::new(window));
            push_at(hist, number, (number, price), |s| s.0);
            let prices: Vec<U256> = hist.iter().map(|(_, p)| *p).collect();
            if self.cfg.volatility_alert_bps > 0
                && let Some(bps) = volatility_bps(&prices)
                && bps > self.cfg.volatility_alert_bps
            {
                c.found.insert(
                    key,
                    format!(
                        "{} price moves {bps} bps per block (std. dev. over {} blocks to {number})",
                        o.asset,
                        prices.len()
                    ),
                );
            }
        }
    }

    /// The stress results at the newest confirmed heads: the pool's coverage.
    pub fn on_stress(&self, results: &[ScenarioResult]) -> Conditions {
        let key = (SignalKind::CoverageLow, pool_subject());
        let mut c = Conditions {
            affected: [key].into(),
            found: BTreeMap::new(),
        };
        let low: Vec<String> = results
            .iter()
            .filter(|r| r.coverage_day_bps < self.cfg.coverage_alert_bps)
            .map(|r| {
                format!(
                    "{} covers {}.{:02} of {} needed (shortfall {})",
                    r.name,
                    r.coverage_day_bps / 10_000,
                    r.coverage_day_bps % 10_000 / 100,
                    r.need,
                    r.shortfall
                )
            })
            .collect();
        if !low.is_empty() {
            c.found
                .insert(key, format!("within 24 h: {}", low.join("; ")));
        }
        c
    }

    /// The largest fall of `member`'s equity over the history window: the most its equity
    /// went down from an earlier sample to a later one (zero without history).
    pub fn worst_fall(&self, member: &B256) -> U256 {
        let Some(hist) = self.equity.get(member) else {
            return U256::ZERO;
        };
        let mut peak: Option<(U256, U256)> = None;
        let mut worst = U256::ZERO;
        for &(_, assets, liabilities) in hist.iter() {
            // Equity as (plus, minus) to stay unsigned: a fall from (a, l) to (a', l') is
            // (a + l') − (a' + l) when positive.
            if let Some((pa, pl)) = peak {
                let fall = pa
                    .saturating_add(liabilities)
                    .saturating_sub(assets.saturating_add(pl));
                worst = worst.max(fall);
                if assets.saturating_add(pl) > pa.saturating_add(liabilities) {
                    peak = Some((assets, liabilities));
                }
            } else {
                peak = Some((assets, liabilities));
            }
        }
        worst
    }
}

/// Whether equity fell between at least half of the consecutive samples.
fn steady_fall(samples: &[Sample]) -> bool {
    let falls = samples
        .windows(2)
        .filter(|w| {
            // e1 < e0  ⇔  a1 + l0 < a0 + l1
            w[1].1.saturating_add(w[0].2) < w[0].1.saturating_add(w[1].2)
        })
        .count();
    falls > 0 && 2 * falls >= samples.len().saturating_sub(1)
}

/// Appends `sample`, taken at block `number`, first dropping the samples of that block and
/// later ones (a reorg or a repeated block); `block` reads a sample's block.
fn push_at<T>(hist: &mut Window<T>, number: u64, sample: T, block: impl Fn(&T) -> u64) {
    drop_from(hist, number, block);
    hist.push(sample);
}

/// Drops the samples taken at block `from` or later.
fn drop_from<T>(hist: &mut Window<T>, from: u64, block: impl Fn(&T) -> u64) {
    while hist.newest().is_some_and(|s| block(s) >= from) {
        hist.pop_newest();
    }
}

/// `assets − liabilities` as text, signed.
fn equity_text(assets: U256, liabilities: U256) -> String {
    if assets >= liabilities {
        (assets - liabilities).to_string()
    } else {
        format!("-{}", liabilities - assets)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::view::OracleRead;
    use crate::view::tests::{member, member_mut, snap};
    use alloy::primitives::I256;
    use backstop_chain::reads::Solvency;

    const HOME: u64 = 1;
    const FEED: Address = Address::repeat_byte(0x0f);

    fn warnings() -> Warnings {
        Warnings::new(WarningConfig {
            margin_window_blocks: 4,
            margin_horizon_blocks: 5,
            history_blocks: 6,
            coverage_alert_bps: 10_000,
            volatility_window_blocks: 4,
            volatility_alert_bps: 500,
            members: [(member(), HOME)].into(),
            oracles: vec![OracleSpec {
                chain_id: HOME,
                address: FEED,
                asset: "ETH".into(),
                reference: false,
            }],
        })
    }

    /// The home chain's block `number` with the member's books and the feed's price.
    fn block(number: u64, assets: u64, liabilities: u64, price: i64) -> ChainSnapshot {
        let mut s = snap(HOME, number, 1_000, 0);
        member_mut(&mut s).solvency = Some(Solvency {
            assets: U256::from(assets),
            liabilities: U256::from(liabilities),
            booked_draws: None,
        });
        s.oracles.insert(
            FEED,
            Some(OracleRead {
                answer: I256::try_from(price).unwrap(),
                updated_at: 0,
                decimals: 8,
            }),
        );
        s
    }

    fn holds(c: &Conditions, kind: SignalKind) -> bool {
        c.found.keys().any(|(k, _)| *k == kind)
    }

    /// Samples of blocks a reorg replaced are forgotten, also when the block read next is
    /// above them; another chain's reorg leaves them.
    #[test]
    fn samples_of_blocks_a_reorg_replaced_are_forgotten() {
        let mut w = warnings();
        for (b, assets) in [(10, 1_100), (11, 1_090), (12, 1_020), (13, 1_010)] {
            w.on_snapshot(&block(b, assets, 1_000, 100));
        }
        assert_eq!(w.worst_fall(&member()), U256::from(90));
        w.on_reorg(HOME + 1, 12);
        assert_eq!(w.worst_fall(&member()), U256::from(90));
        w.on_reorg(HOME, 12);
        w.on_snapshot(&block(15, 1_095, 1_000, 100));
        // What stands: 100 at block 10, 90 at 11, 95 at 15.
        assert_eq!(w.worst_fall(&member()), U256::from(10));
    }

    /// Equity 100, 90, 80, ... reaches zero 10 blocks after the first sample: the warning
    /// holds once that is within the 5-block horizon, and stops when the trend turns.
    #[test]
    fn a_falling_margin_warns_within_the_horizon_only() {
        let mut w = warnings();
        let mut held = Vec::new();
        for b in 0..8u64 {
            let c = w.on_snapshot(&block(10 + b, 1_100 - 10 * b, 1_000, 100));
            assert!(c.affected.contains(&(SignalKind::MarginTrend, member())));
            held.push(holds(&c, SignalKind::MarginTrend));
        }
        // Zero is reached at block 20: blocks 15.. are within 5 blocks of it.
        assert_eq!(held, [false, false, false, false, false, true, true, true]);
        // The books recover: no trend to zero.
        for b in 8..12u64 {
            let c = w.on_snapshot(&block(10 + b, 1_100 + 50 * b, 1_000, 100));
            assert!(!holds(&c, SignalKind::MarginTrend), "block {b}");
        }
        // The last 6 samples: equity 40, 30, 500, 550, 600, 650.
        assert_eq!(w.worst_fall(&member()), U256::from(10));
    }

    /// One sudden loss is not a trend: the line through it falls, but the equity did not
    /// fall steadily.
    #[test]
    fn one_sudden_loss_is_no_trend() {
        let mut w = warnings();
        for (b, equity) in [(10, 100), (11, 100), (12, 100), (13, 20)] {
            let c = w.on_snapshot(&block(b, 1_000 + equity, 1_000, 100));
            assert!(!holds(&c, SignalKind::MarginTrend), "block {b}");
        }
        // It goes on falling: two of the three steps in the window fall, towards zero.
        let c = w.on_snapshot(&block(14, 1_015, 1_000, 100));
        assert!(holds(&c, SignalKind::MarginTrend), "{c:?}");
    }

    /// A reorg replaces the samples of the blocks it replaced, so a fall that the chain no
    /// longer shows does not count.
    #[test]
    fn a_reorg_replaces_samples() {
        let mut w = warnings();
        for b in 0..6u64 {
            w.on_snapshot(&block(10 + b, 1_100 - 10 * b, 1_000, 100));
        }
        assert_eq!(w.worst_fall(&member()), U256::from(50));
        // Blocks 13.. are replaced by flat books.
        for b in 3..6u64 {
            let c = w.on_snapshot(&block(10 + b, 1_100, 1_000, 100));
            assert!(!holds(&c, SignalKind::MarginTrend));
        }
        assert_eq!(w.worst_fall(&member()), U256::from(20));
    }

    #[test]
    fn volatility_warns_above_the_bound() {
        let mut w = warnings();
        let calm: Vec<bool> = [100, 101, 100, 101]
            .iter()
            .enumerate()
            .map(|(i, p)| {
                holds(
                    &w.on_snapshot(&block(i as u64, 2_000, 1_000, *p)),
                    SignalKind::VolatilitySpike,
                )
            })
            .collect();
        assert_eq!(calm, [false; 4], "1 % moves");
        let c = w.on_snapshot(&block(4, 2_000, 1_000, 70));
        assert!(holds(&c, SignalKind::VolatilitySpike), "a 30 % fall");
        assert!(
            c.found.values().any(|e| e.contains("ETH price moves")),
            "{c:?}"
        );
    }

    #[test]
    fn coverage_under_the_threshold_warns_for_the_pool() {
        let w = warnings();
        let result = |name: &str, bps| ScenarioResult {
            name: name.into(),
            need: U256::from(1_000),
            payable_next_block: U256::ZERO,
            payable_day: U256::from(bps / 10),
            coverage_next_block_bps: 0,
            coverage_day_bps: bps,
            shortfall: U256::from(1_000 - (bps / 10).min(1_000)),
            members: Vec::new(),
        };
        let key = (SignalKind::CoverageLow, pool_subject());
        let fine = w.on_stress(&[result("a", 10_000), result("b", 20_000)]);
        assert!(fine.affected.contains(&key) && fine.found.is_empty());
        let low = w.on_stress(&[result("a", 10_000), result("b", 8_500)]);
        assert_eq!(
            low.found[&key],
            "within 24 h: b covers 0.85 of 1000 needed (shortfall 150)"
        );
    }
}
