//! Exact integer helpers: products and sums of 256-bit amounts are taken in 512 bits, so
//! nothing overflows; results that do not fit 256 bits saturate at `U256::MAX`. Every division
//! floors.

use crate::{BPS, MAX_COVERAGE_BPS};
use alloy::primitives::{U256, U512};

/// `x` in 512 bits.
pub(crate) fn wide(x: U256) -> U512 {
    U512::from(x)
}

/// `x` in 256 bits, saturating.
pub(crate) fn narrow(x: U512) -> U256 {
    U256::saturating_from(x)
}

/// `⌊a·b / d⌋`, saturating; zero when `d` is zero.
pub(crate) fn mul_div(a: U256, b: U256, d: U256) -> U256 {
    if d.is_zero() {
        return U256::ZERO;
    }
    narrow(wide(a) * wide(b) / wide(d))
}

/// `⌊x·(BPS - bps) / BPS⌋`: `x` less `bps` basis points (`bps` at most [`BPS`]).
pub(crate) fn less_bps(x: U256, bps: u64) -> U256 {
    mul_div(x, U256::from(BPS.saturating_sub(bps)), U256::from(BPS))
}

/// The gap `(liabilities + loss) - (assets + gain)` when positive, else zero; saturating at
/// `U256::MAX`.
pub(crate) fn gap(assets: U256, liabilities: U256, gain: U256, loss: U256) -> U256 {
    let owed = wide(liabilities) + wide(loss);
    let held = wide(assets) + wide(gain);
    narrow(owed.saturating_sub(held))
}

/// `⌊BPS·payable / need⌋` capped at [`MAX_COVERAGE_BPS`]; the cap when `need` is zero.
pub(crate) fn coverage_bps(payable: U256, need: U256) -> u64 {
    if need.is_zero() {
        return MAX_COVERAGE_BPS;
    }
    let ratio = mul_div(payable, U256::from(BPS), need);
    ratio.saturating_to::<u64>().min(MAX_COVERAGE_BPS)
}

/// Shares of `payable` for `needs` (`None`: cannot draw, gets nothing). Every need in full when
/// they all fit; else pro rata to need by the largest-remainder method: floors first, then one
/// unit each to the largest remainders, ties to the earlier entry. So each share is at most its
/// need and the shares sum to exactly `min(payable, Σ needs)`.
pub(crate) fn allocate(needs: &[Option<U256>], payable: U256) -> Vec<U256> {
    let total = needs
        .iter()
        .flatten()
        .fold(U512::ZERO, |sum, n| sum.saturating_add(wide(*n)));
    let payable = wide(payable);
    if payable >= total {
        return needs.iter().map(|n| n.unwrap_or_default()).collect();
    }
    // Here `total > payable >= 0`, so the divisions below are by a non-zero total.
    let mut shares = Vec::with_capacity(needs.len());
    let mut remainders = Vec::new();
    let mut given = U512::ZERO;
    for (i, need) in needs.iter().enumerate() {
        let product = payable * wide(need.unwrap_or_default());
        let share = product / total;
        let remainder = product % total;
        given += share;
        shares.push(narrow(share));
        if !remainder.is_zero() {
            remainders.push((remainder, i));
        }
    }
    // Fewer units are left than there are non-zero remainders (Σ remainders = total·left).
    let left = narrow(payable.saturating_sub(given)).saturating_to::<usize>();
    remainders.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    for &(_, i) in remainders.iter().take(left) {
        if let Some(share) = shares.get_mut(i) {
            *share = share.saturating_add(U256::from(1));
        }
    }
    shares
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn u(x: u64) -> U256 {
        U256::from(x)
    }

    #[test]
    fn mul_div_is_exact_where_256_bits_overflow() {
        assert_eq!(mul_div(U256::MAX, u(10), u(20)), U256::MAX / u(2));
        assert_eq!(mul_div(U256::MAX, U256::MAX, u(1)), U256::MAX);
        assert_eq!(mul_div(u(7), u(3), u(2)), u(10));
        assert_eq!(mul_div(u(7), u(3), U256::ZERO), U256::ZERO);
    }

    #[test]
    fn less_bps_floors() {
        assert_eq!(less_bps(u(1_000), 2_500), u(750));
        assert_eq!(less_bps(u(3), 5_000), u(1));
        assert_eq!(less_bps(u(3), 10_000), U256::ZERO);
        assert_eq!(less_bps(U256::MAX, 0), U256::MAX);
    }

    #[test]
    fn gap_is_exact_and_saturates() {
        assert_eq!(gap(u(100), u(50), U256::ZERO, u(300)), u(250));
        assert_eq!(gap(u(100), u(50), u(1), u(10)), U256::ZERO);
        assert_eq!(gap(U256::ZERO, U256::MAX, U256::ZERO, U256::MAX), U256::MAX);
        assert_eq!(gap(U256::MAX, U256::MAX, U256::MAX, U256::MAX), U256::ZERO);
        assert_eq!(gap(U256::MAX, U256::MAX, U256::ZERO, u(5)), u(5));
    }

    #[test]
    fn coverage_bps_caps_and_floors() {
        assert_eq!(coverage_bps(u(50), u(200)), 2_500);
        assert_eq!(coverage_bps(u(1), u(3)), 3_333);
        assert_eq!(coverage_bps(u(5), U256::ZERO), MAX_COVERAGE_BPS);
        assert_eq!(coverage_bps(u(101), u(1)), MAX_COVERAGE_BPS);
        assert_eq!(coverage_bps(U256::MAX, U256::MAX), BPS);
    }

    #[test]
    fn allocate_largest_remainder() {
        // 7 over needs 5, 3, 2: 3.5, 2.1, 1.4 → floors 3, 2, 1 and the unit left to the first.
        let needs = [Some(u(5)), Some(u(3)), Some(u(2))];
        assert_eq!(allocate(&needs, u(7)), vec![u(4), u(2), u(1)]);
        // Ties go to the earlier entry.
        let needs = [Some(u(1)), Some(u(1)), Some(u(1))];
        assert_eq!(allocate(&needs, u(2)), vec![u(1), u(1), U256::ZERO]);
        // An excluded entry gets nothing; the others share all of it.
        let needs = [Some(u(4)), None, Some(u(4))];
        assert_eq!(allocate(&needs, u(6)), vec![u(3), U256::ZERO, u(3)]);
        // Enough for all: each its need.
        assert_eq!(allocate(&needs, u(100)), vec![u(4), U256::ZERO, u(4)]);
        // Sums beyond 256 bits.
        let needs = [Some(U256::MAX), Some(U256::MAX)];
        assert_eq!(
            allocate(&needs, U256::MAX),
            vec![U256::MAX / u(2) + u(1), U256::MAX / u(2)]
        );
    }

    fn amount() -> impl Strategy<Value = U256> {
        prop_oneof![
            (0u64..1_000).prop_map(U256::from),
            any::<u64>().prop_map(U256::from),
            any::<[u64; 4]>().prop_map(U256::from_limbs),
            Just(U256::MAX),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1_024))]

        #[test]
        fn allocate_gives_exactly_what_fits(
            needs in prop::collection::vec(prop::option::weighted(0.8, amount()), 0..12),
            payable in amount(),
        ) {
            let shares = allocate(&needs, payable);
            prop_assert_eq!(shares.len(), needs.len());
            let total = needs.iter().flatten().fold(U512::ZERO, |s, n| s + wide(*n));
            let given = shares.iter().fold(U512::ZERO, |s, x| s + wide(*x));
            prop_assert_eq!(given, total.min(wide(payable)));
            for (share, need) in shares.iter().zip(&needs) {
                prop_assert!(*share <= need.unwrap_or_default());
            }
        }
    }
}
