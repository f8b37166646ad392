//! The inputs of a stress evaluation: configured scenarios, and members and vaults as the node
//! read them at its newest confirmed blocks.
//!
//! A scenario's values are validated by the config; here they are clamped into their ranges
//! all the same ([`MIN_MOVE_BPS`]..=[`MAX_MOVE_BPS`] for moves, 0..=[`BPS`] for a depeg), so a
//! scenario built elsewhere cannot make the projection meaningless.
//!
//! Projection from exposures ([`Scenario::equity_change`]): for a relative move `m = bps /
//! 10_000`, an exposure changes equity by `delta·m + gamma·m²/2`. The sum over the exposures is
//! computed exactly in integers as `Σ (delta·bps·2·10⁴ + gamma·bps²) / (2·10⁸)` and floored
//! once (toward the loss: a conservative projection). Exact while `|delta|, |gamma| < 2^127`
//! (the reader's bound) and there are fewer than 2^90 exposures; saturating beyond.

use crate::{BPS, MAX_MOVE_BPS, MIN_MOVE_BPS};
use alloy::primitives::{B256, I256, U256};
use std::collections::{BTreeMap, BTreeSet};

/// A named stress scenario (from the config; validated there).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scenario {
    /// Its name, as configured.
    pub name: String,
    /// Price move per asset name, basis points (-10_000 ..= +100_000); assets not listed take
    /// `all_assets_bps`.
    pub moves_bps: BTreeMap<String, i64>,
    /// Move of every asset not listed (a correlated crash), basis points; 0 when none.
    pub all_assets_bps: i64,
    /// Chains whose vaults pay nothing and whose members cannot register a draw (a halt).
    pub halted_chains: BTreeSet<u64>,
    /// Pool-token depeg, basis points (0 ..= 10_000): every vault's payable amount is worth
    /// this much less.
    pub depeg_bps: u64,
}

impl Scenario {
    /// The move of `asset`, basis points, clamped into [`MIN_MOVE_BPS`]..=[`MAX_MOVE_BPS`].
    pub fn move_bps(&self, asset: &str) -> i64 {
        let bps = self
            .moves_bps
            .get(asset)
            .copied()
            .unwrap_or(self.all_assets_bps);
        bps.clamp(MIN_MOVE_BPS, MAX_MOVE_BPS)
    }

    /// Whether the scenario moves any price (a listed move or the correlated one is not zero).
    pub fn moves_any_price(&self) -> bool {
        self.all_assets_bps != 0 || self.moves_bps.values().any(|&bps| bps != 0)
    }

    /// The depeg, basis points, at most [`BPS`].
    pub fn depeg(&self) -> u64 {
        self.depeg_bps.min(BPS)
    }

    /// Whether the scenario halts `chain_id`.
    pub fn halts(&self, chain_id: u64) -> bool {
        self.halted_chains.contains(&chain_id)
    }

    /// The change of equity the scenario projects from `exposures`, pool-token units, floored
    /// (see the module docs).
    pub fn equity_change(&self, exposures: &[Exposure]) -> I256 {
        let linear = int(2 * BPS as i64);
        let numerator = exposures.iter().fold(I256::ZERO, |sum, x| {
            let bps = int(self.move_bps(&x.asset));
            let first = x.delta.saturating_mul(bps).saturating_mul(linear);
            let second = x.gamma.saturating_mul(bps.saturating_mul(bps));
            sum.saturating_add(first).saturating_add(second)
        });
        let denominator = int(2 * (BPS * BPS) as i64);
        // Never `None`: the denominator is positive.
        numerator
            .checked_div_euclid(denominator)
            .unwrap_or(I256::MIN)
    }
}

/// `x` as an I256 (always fits).
fn int(x: i64) -> I256 {
    I256::try_from(x).unwrap_or(I256::ZERO)
}

/// One exposure of a member, its oracle already mapped to an asset name by the node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exposure {
    /// The asset whose price moves it.
    pub asset: String,
    /// Change of equity for a +100% move (first order), pool-token units; `|delta| < 2^127`.
    pub delta: I256,
    /// Second derivative of equity in the move, pool-token units; `|gamma| < 2^127`.
    pub gamma: I256,
}

/// How a member's projected equity is computed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Basis {
    /// From its reported exposures: equity plus [`Scenario::equity_change`].
    Exposures(Vec<Exposure>),
    /// No risk view (or an invalid one, with its reason): equity minus `worst_fall` (the
    /// largest fall of its equity over the node's history window) under every scenario that
    /// moves any price; unchanged under scenarios that move no price.
    History {
        /// The largest fall of its equity seen over the node's history window.
        worst_fall: U256,
        /// Why its risk view was refused, when it answered one.
        invalid: Option<String>,
    },
}

/// A member as read at the newest confirmed blocks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberInput {
    /// Its id.
    pub id: B256,
    /// Chain of its home vault, where its draws register.
    pub home_chain_id: u64,
    /// Its assets, pool-token units.
    pub assets: U256,
    /// Its liabilities, pool-token units.
    pub liabilities: U256,
    /// Its deductible.
    pub deductible: U256,
    /// Its per-incident cap.
    pub cap: U256,
    /// What its home vault may still pay it within its coverage window (the vault's
    /// `coverageAvailable`).
    pub coverage_available: U256,
    /// How its equity is projected.
    pub basis: Basis,
}

/// A vault as read at its chain's newest confirmed block.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VaultInput {
    /// Its chain.
    pub chain_id: u64,
    /// Its balance of pool tokens.
    pub balance: U256,
    /// The balance it keeps and never pays out.
    pub reserve_floor: U256,
    /// What the outflow bucket allows now.
    pub bucket_available: U256,
    /// The bucket's refill, pool-token units per second.
    pub refill_per_second: U256,
    /// Paused: pays nothing and registers no draw.
    pub paused: bool,
    /// Quarantined or halted now, by the node's breakers: pays nothing in every scenario.
    pub quarantined: bool,
}
