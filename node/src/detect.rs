//! Detectors: conditions read from confirmed chain state, turned into this node's signal
//! assertions.
//!
//! - oracle staleness: the answer is older than the bound at the block read, or the oracle
//!   cannot be read, or answers zero or less;
//! - oracle deviation: the answer is farther than the bound from the asset's reference
//!   oracle when one is configured, otherwise from the median of every oracle of the asset
//!   (itself included: with three oracles and one outlier, the median of the other two
//!   would be their mean and would flag the healthy ones too);
//! - abnormal outflow: a member's assets fell by more than the bound from their peak
//!   within the last `outflow_window_blocks` confirmed blocks (exploit suspected);
//! - depeg: the chain's pool-token feed is farther than the bound from 1;
//! - chain halt: the chain watcher reports no new head within the bound;
//! - payout not booked: `booking_timeout_ms` after a member's covered incident closed, its
//!   books at the newest home block show a gap above dust and do not declare the payout
//!   booked (the booking rule of [`backstop_agreement::booking`]); a member whose books show
//!   no gap needs nothing and is left alone.
//!
//! Invariants: pure (fed with snapshots, halts and time); a condition is asserted when it
//! starts to hold and again every `interval_ms` while it holds, never after it stopped; the
//! state kept per member and per oracle is bounded by the configuration.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use alloy::primitives::{Address, B256, U256};
use backstop_agreement::booking::Payout;
use backstop_chain::reads::Solvency;
use backstop_types::SignalKind;

use crate::view::{ChainSnapshot, SCALE_DECIMALS};
use backstop_types::{chain_subject, oracle_subject};

/// Basis points in one.
const BPS: u64 = 10_000;

/// A configured oracle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OracleSpec {
    /// Chain it lives on.
    pub chain_id: u64,
    /// Feed address.
    pub address: Address,
    /// Asset it prices; oracles of one asset are compared with one another.
    pub asset: String,
    /// The asset's reference oracle.
    pub reference: bool,
}

/// Thresholds and what to watch.
#[derive(Clone, Debug)]
pub struct DetectorConfig {
    /// Deviation bound (basis points).
    pub max_deviation_bps: u64,
    /// Staleness bound (seconds).
    pub max_staleness_s: u64,
    /// Outflow bound (basis points of the peak).
    pub outflow_drop_bps: u64,
    /// Outflow window (blocks).
    pub outflow_window_blocks: u64,
    /// Depeg bound (basis points).
    pub depeg_bps: u64,
    /// Re-assertion period of a holding condition (ms).
    pub interval_ms: u64,
    /// Time a covered member's books get to declare the payout booked (ms).
    pub booking_timeout_ms: u64,
    /// Gaps at or below this are no gap.
    pub dust: U256,
    /// Oracles.
    pub oracles: Vec<OracleSpec>,
    /// Pool-token feed of each chain that has one.
    pub pool_oracles: BTreeMap<u64, Address>,
    /// Members and their home chains.
    pub members: BTreeMap<B256, u64>,
}

/// A signal this node asserts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assertion {
    /// Kind.
    pub kind: SignalKind,
    /// Subject.
    pub subject: B256,
    /// Why, for operators and the gossip evidence.
    pub evidence: String,
}

/// A condition: what kind, about which subject.
pub type Key = (SignalKind, B256);

/// The detectors of one node.
#[derive(Debug)]
pub struct Detectors {
    cfg: DetectorConfig,
    /// Latest price (18 decimals) of each oracle, `None` when unreadable.
    prices: BTreeMap<(u64, Address), Option<U256>>,
    /// Recent `(block, assets)` of each member, oldest first.
    assets: BTreeMap<B256, VecDeque<(u64, U256)>>,
    /// Conditions holding now, with their evidence and last assertion (ms).
    holding: BTreeMap<Key, (String, u64)>,
}

impl Detectors {
    /// Detectors with nothing observed.
    pub fn new(cfg: DetectorConfig) -> Self {
        Self {
            cfg,
            prices: BTreeMap::new(),
            assets: BTreeMap::new(),
            holding: BTreeMap::new(),
        }
    }

    /// Chain `chain_id`'s blocks from `from` on were replaced by a reorg: the assets read at
    /// them go, so that whichever replacing block is read next is compared with what still
    /// stands (a node that reads only the newest of several waiting blocks may never read a
    /// block at `from`).
    pub fn on_reorg(&mut self, chain_id: u64, from: u64) {
        for (member, hist) in &mut self.assets {
            if self.cfg.members.get(member) == Some(&chain_id) {
                while hist.back().is_some_and(|(b, _)| *b >= from) {
                    hist.pop_back();
                }
            }
        }
    }

    /// Conditions holding now, with their evidence.
    pub fn holding(&self) -> impl Iterator<Item = (&Key, &str)> {
        self.holding.iter().map(|(k, (e, _))| (k, e.as_str()))
    }

    /// A confirmed block's snapshot, with the reads of the oracles of its chain.
    pub fn on_snapshot(&mut self, snap: &ChainSnapshot, now: u64) -> Vec<Assertion> {
        let chain_id = snap.block.chain_id;
        let mut affected: BTreeSet<Key> = BTreeSet::new();
        let mut found: BTreeMap<Key, String> = BTreeMap::new();

        // Staleness, and this chain's prices.
        let mut assets_touched = BTreeSet::new();
        for o in self.cfg.oracles.iter().filter(|o| o.chain_id == chain_id) {
            let subject = oracle_subject(chain_id, o.address);
            affected.insert((SignalKind::OracleStale, subject));
            assets_touched.insert(o.asset.clone());
            let read = snap.oracles.get(&o.address).copied().flatten();
            let price = read.and_then(|r| r.price());
            self.prices.insert((chain_id, o.address), price);
            let stale = match read {
                None => Some("unreadable".to_owned()),
                Some(r) if price.is_none() => Some(format!("answer {}", r.answer)),
                Some(r) => {
                    let age = snap.timestamp.saturating_sub(r.updated_at);
                    (age > self.cfg.max_staleness_s)
                        .then(|| format!("last update {age} s before block {}", snap.block.number))
                }
            };
            if let Some(e) = stale {
                found.insert((SignalKind::OracleStale, subject), e);
            }
        }

        // Deviation, for every oracle of the assets this chain prices.
        for asset in &assets_touched {
            let group: Vec<&OracleSpec> = self
                .cfg
                .oracles
                .iter()
                .filter(|o| &o.asset == asset)
                .collect();
            let price_of =
                |o: &OracleSpec| self.prices.get(&(o.chain_id, o.address)).copied().flatten();
            let reference = group.iter().find(|o| o.reference).copied();
            let mut all: Vec<U256> = group.iter().filter_map(|o| price_of(o)).collect();
            all.sort();
            for o in &group {
                let subject = oracle_subject(o.chain_id, o.address);
                affected.insert((SignalKind::OracleDeviation, subject));
                let Some(p) = price_of(o) else { continue };
                let against = match reference {
                    Some(r) if r != *o => price_of(r),
                    Some(_) => None,
                    None => median(&all),
                };
                if let Some(r) = against
                    && let Some(bps) = deviation_bps(p, r)
                    && bps > self.cfg.max_deviation_bps
                {
                    found.insert(
                        (SignalKind::OracleDeviation, subject),
                        format!("price {p} is {bps} bps from {r} (1e18 scale)"),
                    );
                }
            }
        }

        // Depeg of this chain's pool token.
        if let Some(feed) = self.cfg.pool_oracles.get(&chain_id) {
            let key = (SignalKind::Depeg, chain_subject(chain_id));
            affected.insert(key);
            let one = U256::from(10).pow(U256::from(SCALE_DECIMALS));
            if let Some(p) = snap
                .oracles
                .get(feed)
                .copied()
                .flatten()
                .and_then(|r| r.price())
                && let Some(bps) = deviation_bps(p, one)
                && bps > self.cfg.depeg_bps
            {
                found.insert(
                    key,
                    format!("pool token at {p} (1e18 = par), {bps} bps off"),
                );
            }
        }

        // Outflow of the members homed here.
        let window = self.cfg.outflow_window_blocks;
        for (member, _) in self.cfg.members.iter().filter(|(_, h)| **h == chain_id) {
            let Some(current) = snap
                .members
                .get(member)
                .and_then(|m| m.solvency)
                .map(|s| s.assets)
            else {
                continue;
            };
            let key = (SignalKind::AbnormalOutflow, *member);
            affected.insert(key);
            let hist = self.assets.entry(*member).or_default();
            let number = snap.block.number;
            // A reorg or a repeated block replaces what it replaces.
            while hist.back().is_some_and(|(b, _)| *b >= number) {
                hist.pop_back();
            }
            hist.push_back((number, current));
            while hist
                .front()
                .is_some_and(|(b, _)| b.saturating_add(window) < number)
            {
                hist.pop_front();
            }
            let Some(&(peak_block, peak)) = hist.iter().max_by_key(|(_, a)| *a) else {
                continue;
            };
            if !peak.is_zero()
                && let Some(bps) = drop_bps(peak, current)
                && bps > self.cfg.outflow_drop_bps
            {
                found.insert(
                    key,
                    format!(
                        "assets fell {bps} bps, from {peak} at block {peak_block} to {current} at block {number}"
                    ),
                );
            }
        }

        self.apply(affected, found, now)
    }

    /// A member's newest covered payout and its books at the newest home block (`None`
    /// without payout or read), that block's time being `block_ms`. The timeout runs to the
    /// earlier of `now` and `block_ms`: a node whose reads lag the chain sees the books of
    /// an old block, and must not blame the member for a booking the chain already has.
    pub fn on_booking(
        &mut self,
        member: B256,
        booking: Option<(Payout, Solvency)>,
        block_ms: u64,
        now: u64,
    ) -> Vec<Assertion> {
        if !self.cfg.members.contains_key(&member) {
            return Vec::new();
        }
        let key = (SignalKind::PayoutNotBooked, member);
        let mut found = BTreeMap::new();
        if let Some((p, books)) = booking
            && !p.is_booked(books.booked_draws)
            && let Some(gap) = books.gap().filter(|g| *g > self.cfg.dust)
            && now.min(block_ms) >= p.closed_ms.saturating_add(self.cfg.booking_timeout_ms)
        {
            let declared = books.booked_draws.map_or_else(
                || "nothing (no bookedDraws() view)".into(),
                |n| n.to_string(),
            );
            found.insert(
                key,
                format!(
                    "{} paid for draw {} not declared booked {} s after it closed (by the block read): the books \
                     declare {declared}, gap {gap}",
                    p.paid,
                    p.seq,
                    now.min(block_ms).saturating_sub(p.closed_ms) / 1000
                ),
            );
        }
        self.apply([key].into(), found, now)
    }

    /// Conditions judged elsewhere (the early warnings): asserted like this module's own.
    pub fn on_conditions(&mut self, c: crate::warning::Conditions, now: u64) -> Vec<Assertion> {
        self.apply(c.affected, c.found, now)
    }

    /// The chain watcher's verdict on a chain.
    pub fn on_halted(&mut self, chain_id: u64, halted: bool, now: u64) -> Vec<Assertion> {
        let key = (SignalKind::ChainHalt, chain_subject(chain_id));
        let mut found = BTreeMap::new();
        if halted {
            found.insert(key, format!("no new head on chain {chain_id}"));
        }
        self.apply([key].into(), found, now)
    }

    /// Re-asserts the conditions still holding whose period came.
    pub fn tick(&mut self, now: u64) -> Vec<Assertion> {
        let mut out = Vec::new();
        for ((kind, subject), (evidence, last)) in self.holding.iter_mut() {
            if last.saturating_add(self.cfg.interval_ms) <= now {
                *last = now;
                out.push(Assertion {
                    kind: *kind,
                    subject: *subject,
                    evidence: evidence.clone(),
                });
            }
        }
        out
    }

    /// Replaces the conditions of `affected` by `found`; asserts those that start to hold.
    fn apply(
        &mut self,
        affected: BTreeSet<Key>,
        found: BTreeMap<Key, String>,
        now: u64,
    ) -> Vec<Assertion> {
        let mut out = Vec::new();
        for key in affected {
            match found.get(&key) {
                Some(evidence) => {
                    let entry = self.holding.entry(key).or_insert_with(|| {
                        out.push(Assertion {
                            kind: key.0,
                            subject: key.1,
                            evidence: evidence.clone(),
                        });
                        (evidence.clone(), now)
                    });
                    entry.0 = evidence.clone();
                }
                None => {
                    self.holding.remove(&key);
                }
            }
        }
        out
    }
}

/// The median of sorted `v` (the mean of the two middle values for an even count); `None`
/// with fewer than two values (nothing to compare with).
fn median(v: &[U256]) -> Option<U256> {
    let n = v.len();
    match n {
        0 | 1 => None,
        _ if n % 2 == 1 => Some(v[n / 2]),
        _ => Some(v[n / 2 - 1].saturating_add(v[n / 2]) / U256::from(2)),
    }
}

/// `|a − b| / b` in basis points; `None` when `b` is zero.
fn deviation_bps(a: U256, b: U256) -> Option<u64> {
    if b.is_zero() {
        return None;
    }
    let diff = if a > b { a - b } else { b - a };
    let bps = diff.saturating_mul(U256::from(BPS)) / b;
    Some(u64::try_from(bps).unwrap_or(u64::MAX))
}

/// How far `current` fell below `peak`, in basis points of `peak`.
fn drop_bps(peak: U256, current: U256) -> Option<u64> {
    if peak.is_zero() {
        return None;
    }
    let fall = peak.saturating_sub(current);
    let bps = fall.saturating_mul(U256::from(BPS)) / peak;
    Some(u64::try_from(bps).unwrap_or(u64::MAX))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::view::OracleRead;
    use crate::view::tests::{member, member_mut, snap};
    use alloy::primitives::I256;

    const A: Address = Address::repeat_byte(0xa1);
    const B: Address = Address::repeat_byte(0xb2);
    const C: Address = Address::repeat_byte(0xc3);
    const FEED: Address = Address::repeat_byte(0xfe);
    const NOW: u64 = 5_000_000;

    fn detectors(reference: bool) -> Detectors {
        let oracle = |chain_id, address, reference| OracleSpec {
            chain_id,
            address,
            asset: "ETH".into(),
            reference,
        };
        Detectors::new(DetectorConfig {
            max_deviation_bps: 500,
            max_staleness_s: 60,
            outflow_drop_bps: 2_000,
            outflow_window_blocks: 5,
            depeg_bps: 200,
            interval_ms: 10_000,
            booking_timeout_ms: 5_000,
            dust: U256::from(10),
            oracles: vec![
                oracle(1, A, false),
                oracle(2, B, false),
                oracle(3, C, reference),
            ],
            pool_oracles: [(1, FEED)].into(),
            members: [(member(), 1)].into(),
        })
    }

    /// A snapshot of `chain` at `number` where `oracle` answers `answer` (8 decimals),
    /// updated `age` seconds before the block, and the member holds `assets`.
    fn at(chain: u64, number: u64, oracle: Address, answer: i64, age: u64) -> ChainSnapshot {
        let mut s = snap(chain, number, 1_000, 0);
        s.oracles.insert(
            oracle,
            Some(OracleRead {
                answer: I256::try_from(answer).unwrap(),
                updated_at: s.timestamp - age,
                decimals: 8,
            }),
        );
        s
    }

    fn kinds(a: &[Assertion]) -> Vec<(SignalKind, B256)> {
        a.iter().map(|a| (a.kind, a.subject)).collect()
    }

    #[test]
    fn the_outlier_deviates_the_median_and_the_others_do_not() {
        let mut d = detectors(false);
        assert!(d.on_snapshot(&at(2, 1, B, 100_000_000, 0), NOW).is_empty());
        assert!(
            d.on_snapshot(&at(3, 1, C, 101_000_000, 0), NOW).is_empty(),
            "1% is within"
        );
        let found = d.on_snapshot(&at(1, 1, A, 150_000_000, 0), NOW);
        assert_eq!(
            kinds(&found),
            [(SignalKind::OracleDeviation, oracle_subject(1, A))]
        );
        // Holding: not asserted again before the interval, then again.
        assert!(
            d.on_snapshot(&at(1, 2, A, 150_000_000, 0), NOW + 1)
                .is_empty()
        );
        assert!(d.tick(NOW + 9_999).is_empty());
        assert_eq!(d.tick(NOW + 10_000).len(), 1);
        // Back in line: no longer holding, never re-asserted.
        assert!(
            d.on_snapshot(&at(1, 3, A, 100_500_000, 0), NOW + 10_001)
                .is_empty()
        );
        assert!(d.tick(NOW + 100_000).is_empty());
    }

    #[test]
    fn a_reference_oracle_is_the_yardstick_when_configured() {
        let mut d = detectors(true);
        d.on_snapshot(&at(1, 1, A, 100_000_000, 0), NOW);
        d.on_snapshot(&at(2, 1, B, 100_000_000, 0), NOW);
        let found = d.on_snapshot(&at(3, 1, C, 120_000_000, 0), NOW);
        let subjects: BTreeSet<B256> = found.iter().map(|a| a.subject).collect();
        assert_eq!(
            subjects,
            [oracle_subject(1, A), oracle_subject(2, B)].into(),
            "both differ from the reference by 1/6; the reference itself is not judged"
        );
    }

    #[test]
    fn stale_unreadable_and_nonpositive_answers_are_staleness() {
        let mut d = detectors(false);
        let found = d.on_snapshot(&at(2, 1, B, 100_000_000, 61), NOW);
        assert_eq!(
            kinds(&found),
            [(SignalKind::OracleStale, oracle_subject(2, B))]
        );
        let mut s = snap(3, 1, 1_000, 0);
        s.oracles.insert(C, None);
        assert_eq!(
            kinds(&d.on_snapshot(&s, NOW)),
            [(SignalKind::OracleStale, oracle_subject(3, C))]
        );
        let found = d.on_snapshot(&at(1, 1, A, -1, 0), NOW);
        assert!(found.contains(&Assertion {
            kind: SignalKind::OracleStale,
            subject: oracle_subject(1, A),
            evidence: "answer -1".into(),
        }));
    }

    /// Chain 1's snapshot at `number` whose member holds `assets` against as many liabilities.
    fn with_assets(number: u64, assets: u64) -> ChainSnapshot {
        let mut s = at(1, number, A, 100_000_000, 0);
        member_mut(&mut s).solvency = Some(Solvency {
            assets: U256::from(assets),
            liabilities: U256::from(assets),
            booked_draws: Some(0),
        });
        s
    }

    #[test]
    fn outflow_counts_the_fall_from_the_peak_within_the_window() {
        let mut d = detectors(false);
        assert!(d.on_snapshot(&with_assets(1, 1_000), NOW).is_empty());
        assert!(
            d.on_snapshot(&with_assets(2, 850), NOW).is_empty(),
            "15% is within"
        );
        let found = d.on_snapshot(&with_assets(3, 700), NOW);
        assert_eq!(kinds(&found), [(SignalKind::AbnormalOutflow, member())]);
        // The peak leaves the window (5 blocks): the condition stops holding.
        assert!(d.on_snapshot(&with_assets(9, 700), NOW).is_empty());
        assert_eq!(d.holding().count(), 0);
        // A slow bleed within the bound per window is not an exploit.
        for (i, a) in [690u64, 640, 590, 550].into_iter().enumerate() {
            assert!(
                d.on_snapshot(&with_assets(20 + 6 * i as u64, a), NOW)
                    .is_empty()
            );
        }
    }

    #[test]
    fn assets_of_blocks_a_reorg_replaced_are_not_a_peak_to_fall_from() {
        let mut d = detectors(false);
        assert!(d.on_snapshot(&with_assets(1, 700), NOW).is_empty());
        assert!(d.on_snapshot(&with_assets(2, 1_000), NOW).is_empty());
        // Blocks 2.. are replaced; the node reads the newest replacing block only, where the
        // assets are what they were before block 2.
        d.on_reorg(1, 2);
        assert!(d.on_snapshot(&with_assets(4, 700), NOW).is_empty());
        // Another chain's reorg leaves this member's history alone.
        assert!(d.on_snapshot(&with_assets(5, 1_000), NOW).is_empty());
        d.on_reorg(2, 5);
        let found = d.on_snapshot(&with_assets(6, 700), NOW);
        assert_eq!(kinds(&found), [(SignalKind::AbnormalOutflow, member())]);
    }

    #[test]
    fn depeg_and_halt_are_asserted_while_they_hold() {
        let mut d = detectors(false);
        let feed = |number, answer| {
            let mut s = at(1, number, FEED, answer, 0);
            let healthy = at(1, number, A, 100_000_000, 0);
            s.oracles.extend(healthy.oracles);
            s
        };
        let found = d.on_snapshot(&feed(1, 97_000_000), NOW);
        assert_eq!(kinds(&found), [(SignalKind::Depeg, chain_subject(1))]);
        assert!(d.on_snapshot(&feed(2, 99_000_000), NOW).is_empty());
        assert!(!d.holding().any(|(k, _)| k.0 == SignalKind::Depeg));

        assert_eq!(
            kinds(&d.on_halted(2, true, NOW)),
            [(SignalKind::ChainHalt, chain_subject(2))]
        );
        assert_eq!(d.tick(NOW + 10_000).len(), 1);
        assert!(d.on_halted(2, false, NOW + 10_001).is_empty());
        assert!(d.tick(NOW + 50_000).is_empty());
    }

    #[test]
    fn an_undeclared_payout_is_signalled_after_the_timeout_while_a_gap_stands() {
        let mut d = detectors(false);
        let payout = Payout {
            seq: 2,
            paid: U256::from(200),
            closed_ms: NOW,
        };
        let books = |gap: u64, declared: Option<u64>| Solvency {
            assets: U256::from(1_000),
            liabilities: U256::from(1_000 + gap),
            booked_draws: declared,
        };
        let not_booked = [(SignalKind::PayoutNotBooked, member())];
        // Within the timeout: nothing yet.
        assert!(
            d.on_booking(
                member(),
                Some((payout, books(300, Some(2)))),
                NOW + 4_999,
                NOW + 4_999
            )
            .is_empty()
        );
        // Past it, undeclared with a gap: asserted, saying what the books declare.
        let a = d.on_booking(
            member(),
            Some((payout, books(300, Some(2)))),
            NOW + 5_000,
            NOW + 5_000,
        );
        assert_eq!(kinds(&a), not_booked);
        assert!(
            a[0].evidence.contains("declare 2, gap 300"),
            "{}",
            a[0].evidence
        );
        // A node whose reads lag shows the books of a block read long after the close but
        // mined within the timeout: nothing, however late the node's own clock is.
        let mut lagging = detectors(false);
        assert!(
            lagging
                .on_booking(
                    member(),
                    Some((payout, books(300, Some(2)))),
                    NOW + 1_000,
                    NOW + 300_000
                )
                .is_empty()
        );
        // Declared: the condition ends at once.
        assert!(
            d.on_booking(
                member(),
                Some((payout, books(300, Some(3)))),
                NOW + 6_000,
                NOW + 6_000
            )
            .is_empty()
        );
        assert!(d.tick(NOW + 60_000).is_empty());
        // No view at all, with a gap: asserted.
        let mut d = detectors(false);
        let a = d.on_booking(
            member(),
            Some((payout, books(300, None))),
            NOW + 5_000,
            NOW + 5_000,
        );
        assert_eq!(kinds(&a), not_booked);
        assert!(
            a[0].evidence.contains("no bookedDraws() view"),
            "{}",
            a[0].evidence
        );
        // Undeclared but whole (a gap within dust): nothing to freeze it for.
        let mut d = detectors(false);
        assert!(
            d.on_booking(
                member(),
                Some((payout, books(10, Some(0)))),
                NOW + 9_000,
                NOW + 9_000
            )
            .is_empty()
        );
        assert!(
            d.on_booking(member(), None, NOW + 9_000, NOW + 9_000)
                .is_empty()
        );
        // An unknown member is not watched.
        let other = B256::repeat_byte(0x42);
        assert!(
            d.on_booking(
                other,
                Some((payout, books(300, None))),
                NOW + 9_000,
                NOW + 9_000
            )
            .is_empty()
        );
    }
}
