//! Allocation of an insurance draw over the vaults: a pure, deterministic function.
//!
//! Given a member's gap, its deductible and per-incident cap, its home chain and what each
//! vault can pay now (read at pinned blocks), [`allocate`] computes the legs of the draw:
//!
//! 1. the coverable amount is `gap - deductible` (zero when the gap is below the deductible);
//!    the target is that amount capped by the member's per-incident cap;
//! 2. the home vault pays first, up to what it can pay now (no bridging);
//! 3. the rest is spread over the other healthy vaults pro rata to what each can pay now,
//!    by floor division; the units lost to rounding go one each to the vaults with the
//!    largest remainders, ties broken by ascending chain id (largest-remainder method);
//! 4. a quarantined vault, or one that can pay nothing, gets no leg.
//!
//! Invariants (property-tested): the legs sum to the covered amount; no leg exceeds its
//! vault's capacity; covered ≤ target ≤ gap - deductible and ≤ cap; covered + uncovered =
//! coverable; quarantined vaults get nothing; legs are sorted by strictly ascending chain id
//! with non-zero amounts (as the vault requires); the result does not depend on the order in
//! which vaults are given, so identical inputs give identical bytes.

use alloy::primitives::{Address, B256, U256};
use backstop_contracts::bindings::IBackstopVault::{Draw, Leg};
/// Largest number of legs the vault accepts (`BackstopVault.MAX_LEGS`).
pub use backstop_types::MAX_LEGS;

/// What one vault can contribute, read at a pinned block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VaultCapacity {
    /// Chain of the vault.
    pub chain_id: u64,
    /// Vault address.
    pub vault: Address,
    /// What it can pay now: `min(balance - reserve floor, bucket available)`, i.e. the vault's
    /// `availableForPayout()` at the pinned block. At most `u128::MAX` (the bucket is u128).
    pub available: U256,
    /// The chain is quarantined (halted, contagion): it gets nothing.
    pub quarantined: bool,
}

/// Everything the allocation depends on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllocationInput {
    /// Solvency gap observed (liabilities - assets), pool-token units.
    pub gap: U256,
    /// Deductible the member always bears.
    pub deductible: u128,
    /// Per-incident cap of the member.
    pub cap: u128,
    /// The member's home chain.
    pub home_chain_id: u64,
    /// Every vault of the consortium (any order).
    pub vaults: Vec<VaultCapacity>,
}

/// The computed draw amounts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Allocation {
    /// Legs, sorted by strictly ascending chain id, all non-zero.
    pub legs: Vec<Leg>,
    /// Sum of the legs.
    pub covered: U256,
    /// `gap - deductible`: what the pool would cover without cap or capacity limits.
    pub coverable: U256,
    /// `coverable - covered`: what nobody covers (above the cap or beyond what vaults can pay).
    pub uncovered: U256,
}

/// Why the inputs cannot be allocated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllocationError {
    /// Two entries for one chain.
    #[error("chain {0} listed twice")]
    DuplicateChain(u64),
    /// A vault with the zero address or chain id zero.
    #[error("vault on chain {0} has a zero address or chain id")]
    InvalidVault(u64),
    /// A capacity larger than any vault can hold (the bucket is a u128).
    #[error("capacity of chain {0} exceeds u128")]
    CapacityOutOfRange(u64),
    /// More vaults than a draw can have legs.
    #[error("{0} vaults, at most {MAX_LEGS}")]
    TooManyVaults(usize),
}

/// Computes the legs of a draw. Pure and deterministic; see the module docs.
pub fn allocate(input: &AllocationInput) -> Result<Allocation, AllocationError> {
    if input.vaults.len() > MAX_LEGS {
        return Err(AllocationError::TooManyVaults(input.vaults.len()));
    }
    let mut vaults = input.vaults.clone();
    vaults.sort_by_key(|v| v.chain_id);
    for (i, v) in vaults.iter().enumerate() {
        if v.chain_id == 0 || v.vault == Address::ZERO {
            return Err(AllocationError::InvalidVault(v.chain_id));
        }
        if i > 0 && vaults[i - 1].chain_id == v.chain_id {
            return Err(AllocationError::DuplicateChain(v.chain_id));
        }
        if v.available > U256::from(u128::MAX) {
            return Err(AllocationError::CapacityOutOfRange(v.chain_id));
        }
    }

    let coverable = input.gap.saturating_sub(U256::from(input.deductible));
    let target = coverable.min(U256::from(input.cap));
    let capacity = |v: &VaultCapacity| {
        if v.quarantined {
            U256::ZERO
        } else {
            v.available
        }
    };

    // amounts[i] is what vaults[i] pays.
    let mut amounts = vec![U256::ZERO; vaults.len()];
    let mut rest = target;
    if let Some(home) = vaults
        .iter()
        .position(|v| v.chain_id == input.home_chain_id)
    {
        let pay = rest.min(capacity(&vaults[home]));
        amounts[home] = pay;
        rest -= pay;
    }

    let others: Vec<usize> = (0..vaults.len())
        .filter(|&i| vaults[i].chain_id != input.home_chain_id && capacity(&vaults[i]) > U256::ZERO)
        .collect();
    // Sum of at most 32 values below 2^128: no overflow in U256.
    let total: U256 = others.iter().map(|&i| capacity(&vaults[i])).sum();
    if !rest.is_zero() && !total.is_zero() {
        if total <= rest {
            for &i in &others {
                amounts[i] = capacity(&vaults[i]);
            }
        } else {
            // rest < total < 2^133 and capacity < 2^128: the products fit in U256.
            let mut remainders: Vec<(U256, u64, usize)> = Vec::with_capacity(others.len());
            let mut assigned = U256::ZERO;
            for &i in &others {
                let product = rest * capacity(&vaults[i]);
                let share = product / total;
                amounts[i] = share;
                assigned += share;
                remainders.push((product % total, vaults[i].chain_id, i));
            }
            // Fewer than `others.len()` units are left; each goes to a distinct vault whose
            // remainder is non-zero, so `share + 1 <= ceil(rest * cap / total) <= cap`.
            let mut left = rest - assigned;
            remainders.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
            for (remainder, _, i) in remainders {
                if left.is_zero() || remainder.is_zero() {
                    break;
                }
                amounts[i] += U256::from(1u8);
                left -= U256::from(1u8);
            }
        }
    }

    let legs: Vec<Leg> = vaults
        .iter()
        .zip(&amounts)
        .filter(|(_, a)| !a.is_zero())
        .map(|(v, a)| Leg {
            chainId: v.chain_id,
            vault: v.vault,
            amount: *a,
        })
        .collect();
    let covered: U256 = legs.iter().map(|l| l.amount).sum();
    Ok(Allocation {
        legs,
        covered,
        coverable,
        uncovered: coverable - covered,
    })
}

impl Allocation {
    /// The draw the guardians sign for incident `(member, seq)`.
    pub fn to_draw(
        &self,
        member: B256,
        seq: u64,
        gap: U256,
        deadline: u64,
        leg_deadline: u64,
    ) -> Draw {
        Draw {
            member,
            seq,
            gap,
            amount: self.covered,
            legs: self.legs.clone(),
            deadline,
            legDeadline: leg_deadline,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use alloy::sol_types::SolValue;
    use proptest::prelude::*;

    fn vault(chain_id: u64, available: u64) -> VaultCapacity {
        VaultCapacity {
            chain_id,
            vault: Address::with_last_byte(chain_id as u8 | 1),
            available: U256::from(available),
            quarantined: false,
        }
    }

    fn input(gap: u64, vaults: Vec<VaultCapacity>) -> AllocationInput {
        AllocationInput {
            gap: U256::from(gap),
            deductible: 100,
            cap: 1_000_000,
            home_chain_id: 1,
            vaults,
        }
    }

    #[test]
    fn home_first_then_pro_rata_with_largest_remainder() {
        // coverable = 1100 - 100 = 1000; home pays 400; 600 over capacities 100, 200, 300.
        let a = allocate(&input(
            1_100,
            vec![vault(4, 300), vault(1, 400), vault(2, 100), vault(3, 200)],
        ))
        .unwrap();
        let amounts: Vec<(u64, u64)> = a
            .legs
            .iter()
            .map(|l| (l.chainId, l.amount.to::<u64>()))
            .collect();
        assert_eq!(amounts, vec![(1, 400), (2, 100), (3, 200), (4, 300)]);
        assert_eq!(a.covered, U256::from(1_000));
        assert_eq!(a.uncovered, U256::ZERO);

        // 7 over capacities 3, 3, 3 (ties): 2 each, then one unit to the lowest chain id.
        let a = allocate(&input(
            107,
            vec![vault(1, 0), vault(2, 3), vault(3, 3), vault(4, 3)],
        ))
        .unwrap();
        let amounts: Vec<(u64, u64)> = a
            .legs
            .iter()
            .map(|l| (l.chainId, l.amount.to::<u64>()))
            .collect();
        assert_eq!(amounts, vec![(2, 3), (3, 2), (4, 2)]);

        // 10 over capacities 10, 20: 3.33 and 6.67; the larger remainder (chain 3) gets the unit.
        let a = allocate(&input(110, vec![vault(2, 10), vault(3, 20)])).unwrap();
        let amounts: Vec<(u64, u64)> = a
            .legs
            .iter()
            .map(|l| (l.chainId, l.amount.to::<u64>()))
            .collect();
        assert_eq!(amounts, vec![(2, 3), (3, 7)]);
    }

    #[test]
    fn uncovered_when_capacity_or_cap_short() {
        let a = allocate(&input(10_100, vec![vault(1, 1_000), vault(2, 500)])).unwrap();
        assert_eq!(a.covered, U256::from(1_500));
        assert_eq!(a.uncovered, U256::from(8_500));
        let mut i = input(10_100, vec![vault(1, 100_000)]);
        i.cap = 2_000;
        let a = allocate(&i).unwrap();
        assert_eq!(a.covered, U256::from(2_000));
        assert_eq!(a.coverable, U256::from(10_000));
        assert_eq!(a.uncovered, U256::from(8_000));
    }

    #[test]
    fn gap_below_deductible_covers_nothing() {
        let a = allocate(&input(99, vec![vault(1, 1_000)])).unwrap();
        assert!(a.legs.is_empty());
        assert_eq!(a.covered, U256::ZERO);
        assert_eq!(a.coverable, U256::ZERO);
    }

    #[test]
    fn rejects_bad_vault_lists() {
        assert_eq!(
            allocate(&input(1, vec![vault(2, 1), vault(2, 1)])),
            Err(AllocationError::DuplicateChain(2))
        );
        let mut v = vault(2, 1);
        v.vault = Address::ZERO;
        assert_eq!(
            allocate(&input(1, vec![v])),
            Err(AllocationError::InvalidVault(2))
        );
        let mut v = vault(2, 1);
        v.available = U256::MAX;
        assert_eq!(
            allocate(&input(1, vec![v])),
            Err(AllocationError::CapacityOutOfRange(2))
        );
        let many: Vec<_> = (1..=33).map(|c| vault(c, 1)).collect();
        assert_eq!(
            allocate(&input(1, many)),
            Err(AllocationError::TooManyVaults(33))
        );
    }

    fn arb_input() -> impl Strategy<Value = AllocationInput> {
        let vaults = proptest::collection::btree_map(
            1u64..40,
            (
                prop_oneof![
                    Just(0u128),
                    1u128..1_000,
                    1u128..u64::MAX as u128,
                    Just(u128::MAX)
                ],
                proptest::bool::weighted(0.2),
            ),
            0..=MAX_LEGS,
        );
        (
            prop_oneof![0u128..10_000, 0u128..u128::MAX, Just(u128::MAX)],
            prop_oneof![Just(0u128), 0u128..1_000, 0u128..u128::MAX],
            prop_oneof![Just(u128::MAX), 0u128..100_000, 0u128..u128::MAX],
            0u64..45,
            vaults,
            any::<bool>(),
        )
            .prop_map(|(gap, deductible, cap, home, vaults, huge_gap)| {
                let gap = if huge_gap {
                    U256::from(gap) << 100
                } else {
                    U256::from(gap)
                };
                AllocationInput {
                    gap,
                    deductible,
                    cap,
                    home_chain_id: home,
                    vaults: vaults
                        .into_iter()
                        .map(|(chain_id, (available, quarantined))| VaultCapacity {
                            chain_id,
                            vault: Address::with_last_byte(chain_id as u8),
                            available: U256::from(available),
                            quarantined,
                        })
                        .collect(),
                }
            })
    }

    fn draw_bytes(a: &Allocation) -> Vec<u8> {
        a.to_draw(B256::repeat_byte(7), 3, U256::from(1), 10, 20)
            .abi_encode()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        #[test]
        fn allocation_invariants(input in arb_input(), seed in any::<u64>()) {
            let a = allocate(&input).unwrap();
            // Legs sum to the covered amount; covered + uncovered = coverable.
            let sum: U256 = a.legs.iter().map(|l| l.amount).sum();
            prop_assert_eq!(sum, a.covered);
            prop_assert_eq!(a.covered + a.uncovered, a.coverable);
            // Never more than the gap (minus deductible), never above the cap.
            prop_assert_eq!(a.coverable, input.gap.saturating_sub(U256::from(input.deductible)));
            prop_assert!(a.covered <= a.coverable);
            prop_assert!(a.covered <= input.gap);
            prop_assert!(a.covered <= U256::from(input.cap));
            // Strictly ascending chain ids, non-zero amounts, within capacity, never quarantined.
            for (i, leg) in a.legs.iter().enumerate() {
                prop_assert!(!leg.amount.is_zero());
                if i > 0 {
                    prop_assert!(a.legs[i - 1].chainId < leg.chainId);
                }
                let v = input.vaults.iter().find(|v| v.chain_id == leg.chainId).unwrap();
                prop_assert!(!v.quarantined, "quarantined chain {} got a leg", v.chain_id);
                prop_assert!(leg.amount <= v.available);
                prop_assert_eq!(leg.vault, v.vault);
            }
            // Everything the healthy vaults could give is used before anything is left uncovered.
            let healthy: U256 = input.vaults.iter().filter(|v| !v.quarantined).map(|v| v.available).sum();
            let target = a.coverable.min(U256::from(input.cap));
            prop_assert_eq!(a.covered, target.min(healthy));
            // The home vault pays first.
            if let Some(home) = input.vaults.iter().find(|v| v.chain_id == input.home_chain_id && !v.quarantined) {
                let home_leg = a.legs.iter().find(|l| l.chainId == home.chain_id).map(|l| l.amount).unwrap_or_default();
                prop_assert_eq!(home_leg, target.min(home.available));
            }
            // Identical inputs, in any order, give identical bytes.
            let again = allocate(&input).unwrap();
            prop_assert_eq!(draw_bytes(&a), draw_bytes(&again));
            let mut shuffled = input.clone();
            let n = shuffled.vaults.len();
            if n > 1 {
                let mut s = seed;
                for i in (1..n).rev() {
                    s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    shuffled.vaults.swap(i, (s >> 33) as usize % (i + 1));
                }
            }
            prop_assert_eq!(draw_bytes(&a), draw_bytes(&allocate(&shuffled).unwrap()));
        }

        #[test]
        fn pro_rata_is_within_one_unit(input in arb_input()) {
            let a = allocate(&input).unwrap();
            let target = a.coverable.min(U256::from(input.cap));
            let home_paid = a.legs.iter().find(|l| l.chainId == input.home_chain_id).map(|l| l.amount).unwrap_or_default();
            let rest = target - home_paid;
            let others: Vec<&VaultCapacity> = input.vaults.iter()
                .filter(|v| v.chain_id != input.home_chain_id && !v.quarantined && !v.available.is_zero())
                .collect();
            let total: U256 = others.iter().map(|v| v.available).sum();
            if total > rest && !rest.is_zero() {
                for v in others {
                    let exact_floor = rest * v.available / total;
                    let got = a.legs.iter().find(|l| l.chainId == v.chain_id).map(|l| l.amount).unwrap_or_default();
                    prop_assert!(got == exact_floor || got == exact_floor + U256::from(1u8));
                }
            }
        }
    }
}
