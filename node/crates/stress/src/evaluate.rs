//! Evaluation of stress scenarios over the pool, at the newest confirmed heads.
//!
//! For each scenario, [`evaluate()`]:
//!
//! 1. projects each member's equity ([`Basis`]) and its gap, `liabilities - projected assets`
//!    when positive;
//! 2. takes what the pool promised for the gap: `min(gap - deductible, cap,
//!    coverage_available)`, zero when the gap is at most the deductible;
//! 3. sums what the vaults can pay, over vaults neither quarantined, nor paused, nor on a
//!    chain the scenario halts: within the next block `min(balance - floor, bucket_available)`;
//!    within 24 hours `min(balance - floor, bucket_available + refill·DAY_S)`: what draws
//!    spread over the day can take in all, the bucket refilling as it pays (its capacity bounds
//!    one draw, not the day's total). A pause counts as paying nothing within 24 hours too (it
//!    may outlast the day). Both sums
//!    are then worth `depeg_bps` less, floored;
//! 4. shares what is payable within 24 hours over the members by need
//!    ([`MemberResult::covered`]). A member whose home chain is halted by the scenario, or whose
//!    home vault is missing, quarantined or paused, cannot register a draw and gets nothing.
//!
//! Invariants (property-tested): nothing panics; each member's `covered ≤ need`; `Σ covered ≤
//! payable_day`, equal to `min(payable_day, Σ need of members able to draw)`; `shortfall =
//! need - Σ covered`; members sorted by id, so equal inputs give equal outputs. Sums that do
//! not fit 256 bits saturate at `U256::MAX`.

use crate::DAY_S;
use crate::input::{Basis, MemberInput, Scenario, VaultInput};
use crate::math::{allocate, coverage_bps, gap, less_bps, narrow, wide};
use alloy::primitives::{B256, U256, U512};

/// What a scenario would do to the pool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScenarioResult {
    /// The scenario's name.
    pub name: String,
    /// Σ over members of what the pool promised for their projected gap (saturating).
    pub need: U256,
    /// What the vaults can pay within the next block (see the module docs).
    pub payable_next_block: U256,
    /// What the vaults can pay within 24 hours (see the module docs).
    pub payable_day: U256,
    /// `BPS·payable_next_block / need`, floored, capped at
    /// [`MAX_COVERAGE_BPS`](crate::MAX_COVERAGE_BPS); the cap when `need` is zero.
    pub coverage_next_block_bps: u64,
    /// `BPS·payable_day / need`, likewise.
    pub coverage_day_bps: u64,
    /// What the members would not get: `need - Σ covered`. It is `need - payable_day` when
    /// positive if every member with a need can draw; more when some cannot.
    pub shortfall: U256,
    /// Members with a projected gap, sorted by id.
    pub members: Vec<MemberResult>,
}

impl ScenarioResult {
    /// The members who would not get all they need.
    pub fn uncovered(&self) -> impl Iterator<Item = &MemberResult> {
        self.members.iter().filter(|m| !m.shortfall.is_zero())
    }
}

/// How a member's gap was projected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BasisKind {
    /// From its reported exposures.
    Exposures,
    /// From its equity history: it reports no risk view.
    History,
    /// From its equity history: its risk view was invalid.
    InvalidView,
}

/// What a scenario would do to one member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberResult {
    /// The member's id.
    pub id: B256,
    /// Its projected gap (non-zero).
    pub projected_gap: U256,
    /// What the pool promised for it: `min(gap - deductible, cap, coverage_available)`.
    pub need: U256,
    /// Its share of `payable_day` (see the module docs): at most `need`.
    pub covered: U256,
    /// `need - covered`.
    pub shortfall: U256,
    /// How the gap was projected.
    pub basis: BasisKind,
    /// Why its risk view was refused, for [`BasisKind::InvalidView`].
    pub invalid_reason: Option<String>,
}

/// Evaluates every scenario over `vaults` and `members`, in the order of `scenarios`.
pub fn evaluate(
    vaults: &[VaultInput],
    members: &[MemberInput],
    scenarios: &[Scenario],
) -> Vec<ScenarioResult> {
    let mut sorted: Vec<&MemberInput> = members.iter().collect();
    sorted.sort_by_key(|m| m.id);
    scenarios
        .iter()
        .map(|s| evaluate_one(vaults, &sorted, s))
        .collect()
}

/// One scenario over members sorted by id.
fn evaluate_one(vaults: &[VaultInput], members: &[&MemberInput], s: &Scenario) -> ScenarioResult {
    let (next, day) = payable(vaults, s);
    let payable_next_block = less_bps(next, s.depeg());
    let payable_day = less_bps(day, s.depeg());

    let mut results = Vec::new();
    let mut needs = Vec::new();
    for m in members {
        let projected_gap = projected_gap(m, s);
        if projected_gap.is_zero() {
            continue;
        }
        let need = promised(m, projected_gap);
        needs.push(can_draw(m, vaults, s).then_some(need));
        results.push(member_result(m, projected_gap, need));
    }
    for (r, covered) in results.iter_mut().zip(allocate(&needs, payable_day)) {
        r.covered = covered;
        r.shortfall = r.need.saturating_sub(covered);
    }

    let need = narrow(sum(results.iter().map(|r| r.need)));
    let covered = sum(results.iter().map(|r| r.covered));
    ScenarioResult {
        name: s.name.clone(),
        need,
        payable_next_block,
        payable_day,
        coverage_next_block_bps: coverage_bps(payable_next_block, need),
        coverage_day_bps: coverage_bps(payable_day, need),
        shortfall: narrow(wide(need).saturating_sub(covered)),
        members: results,
    }
}

/// Σ `xs` in 512 bits.
fn sum(xs: impl Iterator<Item = U256>) -> U512 {
    xs.fold(U512::ZERO, |acc, x| acc.saturating_add(wide(x)))
}

/// What the vaults can pay within the next block and within 24 hours, before the depeg.
fn payable(vaults: &[VaultInput], s: &Scenario) -> (U256, U256) {
    vaults
        .iter()
        .filter(|v| pays(v, s))
        .map(vault_payable)
        .fold((U256::ZERO, U256::ZERO), |(next, day), (n, d)| {
            (next.saturating_add(n), day.saturating_add(d))
        })
}

/// Whether `v` pays anything under `s`.
fn pays(v: &VaultInput, s: &Scenario) -> bool {
    !v.quarantined && !v.paused && !s.halts(v.chain_id)
}

/// What `v` can pay within the next block and within 24 hours (see the module docs).
fn vault_payable(v: &VaultInput) -> (U256, U256) {
    let above_floor = v.balance.saturating_sub(v.reserve_floor);
    let refill = v.refill_per_second.saturating_mul(U256::from(DAY_S));
    let day_bucket = v.bucket_available.saturating_add(refill);
    (
        above_floor.min(v.bucket_available),
        above_floor.min(day_bucket),
    )
}

/// Whether `m` can register a draw under `s`: its home chain is not halted and its home vault
/// is there, neither quarantined nor paused.
fn can_draw(m: &MemberInput, vaults: &[VaultInput], s: &Scenario) -> bool {
    !s.halts(m.home_chain_id)
        && vaults
            .iter()
            .any(|v| v.chain_id == m.home_chain_id && !v.quarantined && !v.paused)
}

/// The gap of `m` under `s` (see [`Basis`]).
fn projected_gap(m: &MemberInput, s: &Scenario) -> U256 {
    let (gain, loss) = match &m.basis {
        Basis::Exposures(exposures) => {
            let change = s.equity_change(exposures);
            if change.is_negative() {
                (U256::ZERO, change.unsigned_abs())
            } else {
                (change.into_raw(), U256::ZERO)
            }
        }
        Basis::History { worst_fall, .. } if s.moves_any_price() => (U256::ZERO, *worst_fall),
        Basis::History { .. } => (U256::ZERO, U256::ZERO),
    };
    gap(m.assets, m.liabilities, gain, loss)
}

/// What the pool promised `m` for `gap`: `min(gap - deductible, cap, coverage_available)`.
fn promised(m: &MemberInput, gap: U256) -> U256 {
    gap.saturating_sub(m.deductible)
        .min(m.cap)
        .min(m.coverage_available)
}

/// The result of `m`, before its share is known.
fn member_result(m: &MemberInput, projected_gap: U256, need: U256) -> MemberResult {
    let (basis, invalid_reason) = match &m.basis {
        Basis::Exposures(_) => (BasisKind::Exposures, None),
        Basis::History { invalid: None, .. } => (BasisKind::History, None),
        Basis::History {
            invalid: Some(reason),
            ..
        } => (BasisKind::InvalidView, Some(reason.clone())),
    };
    MemberResult {
        id: m.id,
        projected_gap,
        need,
        covered: U256::ZERO,
        shortfall: need,
        basis,
        invalid_reason,
    }
}

#[cfg(test)]
mod tests;
