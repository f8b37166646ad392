#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::input::Exposure;
use crate::{BPS, MAX_COVERAGE_BPS};
use alloy::primitives::I256;
use proptest::prelude::*;

fn u(x: u64) -> U256 {
    U256::from(x)
}

fn i(x: i128) -> I256 {
    I256::try_from(x).unwrap()
}

fn id(n: u8) -> B256 {
    B256::repeat_byte(n)
}

fn exposure(asset: &str, delta: i128, gamma: i128) -> Exposure {
    Exposure {
        asset: asset.into(),
        delta: i(delta),
        gamma: i(gamma),
    }
}

/// A member of chain 1 with equity 100 (assets 100, no liabilities), no deductible, generous
/// cap and window.
fn member(n: u8, basis: Basis) -> MemberInput {
    MemberInput {
        id: id(n),
        home_chain_id: 1,
        assets: u(100),
        liabilities: U256::ZERO,
        deductible: U256::ZERO,
        cap: u(1_000_000),
        coverage_available: u(1_000_000),
        basis,
    }
}

/// A vault that pays `x` now and within 24 hours.
fn vault(chain_id: u64, x: u64) -> VaultInput {
    VaultInput {
        chain_id,
        balance: u(x),
        reserve_floor: U256::ZERO,
        bucket_available: u(x),
        refill_per_second: U256::ZERO,
        paused: false,
        quarantined: false,
    }
}

fn crash(bps: i64) -> Scenario {
    Scenario {
        name: "crash".into(),
        all_assets_bps: bps,
        ..Default::default()
    }
}

fn one(vaults: &[VaultInput], members: &[MemberInput], s: Scenario) -> ScenarioResult {
    let mut results = evaluate(vaults, members, &[s]);
    assert_eq!(results.len(), 1);
    results.remove(0)
}

#[test]
fn delta_and_gamma_project_equity() {
    let s = crash(-3_000);
    assert_eq!(s.equity_change(&[exposure("ETH", 1_000, 0)]), i(-300));
    // gamma·m²/2 = 1_000 · 0.09 / 2 = 45.
    assert_eq!(s.equity_change(&[exposure("ETH", 1_000, 1_000)]), i(-255));
    // Equity 100 - 300 = -200: a gap of 200, all needed and covered.
    let m = member(1, Basis::Exposures(vec![exposure("ETH", 1_000, 0)]));
    let r = one(&[vault(1, 1_000)], &[m], s);
    assert_eq!(r.members.len(), 1);
    assert_eq!(r.members[0].projected_gap, u(200));
    assert_eq!(r.members[0].need, u(200));
    assert_eq!(r.members[0].covered, u(200));
    assert_eq!(r.members[0].basis, BasisKind::Exposures);
    assert_eq!(r.need, u(200));
    assert_eq!(r.shortfall, U256::ZERO);
    assert_eq!(r.coverage_day_bps, 50_000);
}

#[test]
fn listed_moves_override_the_correlated_one_and_are_clamped() {
    let mut s = crash(-1_000);
    s.moves_bps.insert("BTC".into(), -50_000);
    s.moves_bps.insert("SOL".into(), 200_000);
    assert_eq!(s.move_bps("ETH"), -1_000);
    assert_eq!(s.move_bps("BTC"), -10_000);
    assert_eq!(s.move_bps("SOL"), 100_000);
    let xs = [exposure("ETH", 1_000, 0), exposure("BTC", 1_000, 0)];
    assert_eq!(s.equity_change(&xs), i(-100 - 1_000));
}

#[test]
fn rounding_goes_toward_the_loss() {
    let down = crash(-1);
    let up = crash(1);
    assert_eq!(down.equity_change(&[exposure("X", 1, 0)]), i(-1));
    assert_eq!(up.equity_change(&[exposure("X", 1, 0)]), I256::ZERO);
    assert_eq!(up.equity_change(&[exposure("X", -1, 0)]), i(-1));
    assert_eq!(up.equity_change(&[exposure("X", 0, 1)]), I256::ZERO);
    assert_eq!(down.equity_change(&[exposure("X", 0, -1)]), i(-1));
    // 1_999 · -0.5 = -999.5 → -1_000; the terms are summed before the one floor.
    let half = crash(-5_000);
    assert_eq!(half.equity_change(&[exposure("X", 1_999, 0)]), i(-1_000));
    let two = [exposure("X", 1, 0), exposure("Y", 1, 0)];
    assert_eq!(half.equity_change(&two), i(-1));
}

#[test]
fn deductible_cap_and_window_each_bind() {
    // Gap 200 (see `delta_and_gamma_project_equity`).
    let base = member(1, Basis::Exposures(vec![exposure("ETH", 1_000, 0)]));
    let need = |f: &dyn Fn(&mut MemberInput)| {
        let mut m = base.clone();
        f(&mut m);
        one(&[vault(1, 1_000)], &[m], crash(-3_000)).members[0].need
    };
    assert_eq!(need(&|_| {}), u(200));
    assert_eq!(need(&|m| m.deductible = u(50)), u(150));
    assert_eq!(need(&|m| m.deductible = u(200)), U256::ZERO);
    assert_eq!(need(&|m| m.deductible = u(500)), U256::ZERO);
    assert_eq!(need(&|m| m.cap = u(120)), u(120));
    assert_eq!(need(&|m| m.coverage_available = u(90)), u(90));
    let all = |m: &mut MemberInput| {
        m.deductible = u(50);
        m.cap = u(140);
        m.coverage_available = u(130);
    };
    assert_eq!(need(&all), u(130));
}

#[test]
fn members_without_a_gap_are_left_out_and_members_sorted_by_id() {
    let rich = MemberInput {
        assets: u(10_000),
        ..member(1, Basis::Exposures(vec![]))
    };
    let a = member(9, Basis::Exposures(vec![exposure("ETH", 1_000, 0)]));
    let b = member(3, Basis::Exposures(vec![exposure("ETH", 2_000, 0)]));
    let members = [rich, a, b];
    let r = one(&[vault(1, 1_000)], &members, crash(-3_000));
    let ids: Vec<B256> = r.members.iter().map(|m| m.id).collect();
    assert_eq!(ids, vec![id(3), id(9)]);
    assert_eq!(r.members[0].projected_gap, u(500));
    let reversed: Vec<MemberInput> = members.iter().rev().cloned().collect();
    assert_eq!(one(&[vault(1, 1_000)], &reversed, crash(-3_000)), r);
}

#[test]
fn history_basis_applies_worst_fall_only_when_prices_move() {
    let history = Basis::History {
        worst_fall: u(130),
        invalid: None,
    };
    let invalid = Basis::History {
        worst_fall: u(150),
        invalid: Some("duplicate oracle".into()),
    };
    let members = [member(1, history), member(2, invalid)];
    let r = one(&[vault(1, 1_000)], &members, crash(-1));
    assert_eq!(r.members[0].projected_gap, u(30));
    assert_eq!(r.members[0].basis, BasisKind::History);
    assert_eq!(r.members[0].invalid_reason, None);
    assert_eq!(r.members[1].projected_gap, u(50));
    assert_eq!(r.members[1].basis, BasisKind::InvalidView);
    assert_eq!(
        r.members[1].invalid_reason.as_deref(),
        Some("duplicate oracle")
    );
    // A listed move counts too.
    let mut listed = crash(0);
    listed.moves_bps.insert("ETH".into(), 500);
    assert_eq!(one(&[vault(1, 1_000)], &members, listed).members.len(), 2);
    // A halt alone moves no price: no gap.
    let halt = Scenario {
        halted_chains: [7].into(),
        ..crash(0)
    };
    let r = one(&[vault(1, 1_000)], &members, halt);
    assert!(r.members.is_empty());
    assert_eq!(r.need, U256::ZERO);
    assert_eq!(r.coverage_day_bps, MAX_COVERAGE_BPS);
}

#[test]
fn next_block_and_day_payable() {
    let v = VaultInput {
        chain_id: 1,
        balance: u(1_000),
        reserve_floor: u(100),
        bucket_available: u(10),
        refill_per_second: u(1),
        paused: false,
        quarantined: false,
    };
    let r = one(std::slice::from_ref(&v), &[], crash(0));
    assert_eq!(r.payable_next_block, u(10));
    // The bucket refills as it pays: 10 + 86,400, bound by the 900 above the floor.
    assert_eq!(r.payable_day, u(900));
    // The balance above the floor binds.
    let low = VaultInput {
        balance: u(300),
        ..v.clone()
    };
    assert_eq!(one(&[low], &[], crash(0)).payable_day, u(200));
    // A slow refill binds.
    let slow = VaultInput {
        refill_per_second: U256::ZERO,
        ..v.clone()
    };
    assert_eq!(one(&[slow], &[], crash(0)).payable_day, u(10));
    // A reserve above the balance pays nothing.
    let under = VaultInput {
        reserve_floor: u(5_000),
        ..v.clone()
    };
    let r = one(&[under], &[], crash(0));
    assert_eq!(
        (r.payable_next_block, r.payable_day),
        (U256::ZERO, U256::ZERO)
    );
    // Vaults add up.
    let r = one(&[v.clone(), vault(2, 40)], &[], crash(0));
    assert_eq!((r.payable_next_block, r.payable_day), (u(50), u(940)));
}

#[test]
fn halted_chain_pays_nothing_and_its_members_get_nothing() {
    let gap_200 = || Basis::Exposures(vec![exposure("ETH", 1_000, 0)]);
    let on_1 = member(1, gap_200());
    let on_2 = MemberInput {
        home_chain_id: 2,
        ..member(2, gap_200())
    };
    let vaults = [vault(1, 1_000), vault(2, 300)];
    let halt = Scenario {
        halted_chains: [1].into(),
        ..crash(-3_000)
    };
    let r = one(&vaults, &[on_1, on_2], halt);
    assert_eq!(r.payable_next_block, u(300));
    assert_eq!(r.payable_day, u(300));
    assert_eq!(r.need, u(400));
    assert_eq!(r.members[0].covered, U256::ZERO);
    assert_eq!(r.members[0].shortfall, u(200));
    assert_eq!(r.members[1].covered, u(200));
    // 100 of the day's payable is left, but the member of chain 1 cannot draw it.
    assert_eq!(r.shortfall, u(200));
    assert_eq!(r.coverage_day_bps, 7_500);
    let uncovered: Vec<B256> = r.uncovered().map(|m| m.id).collect();
    assert_eq!(uncovered, vec![id(1)]);
}

#[test]
fn quarantined_or_paused_vaults_pay_nothing_and_their_members_get_nothing() {
    let on_2 = || MemberInput {
        home_chain_id: 2,
        ..member(2, Basis::Exposures(vec![exposure("ETH", 1_000, 0)]))
    };
    let on_1 = member(1, Basis::Exposures(vec![exposure("ETH", 1_000, 0)]));
    let flags: [fn(&mut VaultInput); 2] = [|v| v.quarantined = true, |v| v.paused = true];
    for flag in flags {
        let mut blocked = vault(2, 5_000);
        flag(&mut blocked);
        let r = one(
            &[vault(1, 300), blocked],
            &[on_1.clone(), on_2()],
            crash(-3_000),
        );
        assert_eq!(r.payable_next_block, u(300));
        assert_eq!(r.payable_day, u(300));
        assert_eq!(r.members[0].covered, u(200));
        assert_eq!(r.members[1].covered, U256::ZERO);
        assert_eq!(r.shortfall, u(200));
    }
    // A member whose home chain has no vault cannot draw either.
    let r = one(&[vault(1, 1_000)], &[on_2()], crash(-3_000));
    assert_eq!(r.members[0].covered, U256::ZERO);
}

#[test]
fn depeg_scales_payable() {
    let mut v = vault(1, 1_000);
    v.bucket_available = u(401);
    v.refill_per_second = u(1);
    let s = Scenario {
        depeg_bps: 2_500,
        ..crash(0)
    };
    let r = one(&[v.clone()], &[], s);
    assert_eq!(r.payable_next_block, u(300)); // 300.75 floored
    assert_eq!(r.payable_day, u(750));
    let full = Scenario {
        depeg_bps: 20_000,
        ..crash(0)
    };
    assert_eq!(one(&[v], &[], full).payable_day, U256::ZERO);
}

#[test]
fn coverage_ratio_at_zero_need_capped_and_floored() {
    let r = one(&[vault(1, 1_000)], &[], crash(-3_000));
    assert_eq!(
        (r.coverage_next_block_bps, r.coverage_day_bps),
        (MAX_COVERAGE_BPS, MAX_COVERAGE_BPS)
    );
    // Need 200: 1_000_000 pays 5_000× → capped at 100×.
    let m = member(1, Basis::Exposures(vec![exposure("ETH", 1_000, 0)]));
    let r = one(
        &[vault(1, 1_000_000)],
        std::slice::from_ref(&m),
        crash(-3_000),
    );
    assert_eq!(r.coverage_day_bps, MAX_COVERAGE_BPS);
    // 150 of 200 is 75%, 66 of 200 33%.
    let r = one(&[vault(1, 150)], std::slice::from_ref(&m), crash(-3_000));
    assert_eq!(r.coverage_day_bps, 7_500);
    assert_eq!(r.shortfall, u(50));
    let mut third = vault(1, 1_000);
    third.bucket_available = u(66);
    let r = one(&[third], &[m], crash(-3_000));
    assert_eq!(r.coverage_day_bps, 3_300);
    assert_eq!(
        one(&[vault(1, 200)], &[], crash(0)).coverage_day_bps,
        MAX_COVERAGE_BPS
    );
}

#[test]
fn pro_rata_shares_sum_to_payable() {
    // Gaps 500, 300 and 200 (deltas 6_000, 4_000 and 3_000 at -10%), 700 payable.
    let members: Vec<MemberInput> = [(1, 6_000), (2, 4_000), (3, 3_000)]
        .into_iter()
        .map(|(n, d)| member(n, Basis::Exposures(vec![exposure("ETH", d, 0)])))
        .collect();
    let r = one(&[vault(1, 700)], &members, crash(-1_000));
    let needs: Vec<U256> = r.members.iter().map(|m| m.need).collect();
    assert_eq!(needs, vec![u(500), u(300), u(200)]);
    let covered: Vec<U256> = r.members.iter().map(|m| m.covered).collect();
    assert_eq!(covered, vec![u(350), u(210), u(140)]);
    assert_eq!(r.shortfall, u(300));
    // 7 over 5, 3, 2: floors 3, 2, 1 and the unit left to the largest remainder.
    let r = one(&[vault(1, 7)], &members, crash(-1_000));
    let covered: Vec<U256> = r.members.iter().map(|m| m.covered).collect();
    assert_eq!(covered, vec![u(4), u(2), u(1)]);
    let shortfalls: Vec<U256> = r.members.iter().map(|m| m.shortfall).collect();
    assert_eq!(shortfalls, vec![u(496), u(298), u(199)]);
}

#[test]
fn absurd_inputs_saturate() {
    let extreme = I256::try_from(i128::MAX).unwrap();
    let big = MemberInput {
        assets: U256::ZERO,
        liabilities: U256::MAX,
        deductible: U256::ZERO,
        cap: U256::MAX,
        coverage_available: U256::MAX,
        ..member(
            1,
            Basis::Exposures(vec![exposure("ETH", i128::MAX, i128::MIN); 64]),
        )
    };
    let other = MemberInput {
        id: id(2),
        ..big.clone()
    };
    let history = MemberInput {
        id: id(3),
        basis: Basis::History {
            worst_fall: U256::MAX,
            invalid: None,
        },
        ..big.clone()
    };
    let v = VaultInput {
        chain_id: 1,
        balance: U256::MAX,
        reserve_floor: U256::ZERO,
        bucket_available: U256::MAX,
        refill_per_second: U256::MAX,
        paused: false,
        quarantined: false,
    };
    let scenarios = [
        crash(-10_000),
        crash(100_000),
        crash(i64::MIN),
        crash(i64::MAX),
    ];
    let results = evaluate(&[v.clone(), v], &[big, other, history], &scenarios);
    assert_eq!(results.len(), 4);
    for r in &results {
        assert_eq!(r.payable_day, U256::MAX);
        assert_eq!(r.need, U256::MAX);
        assert_eq!(r.members.len(), 3);
        assert!(
            r.members
                .iter()
                .all(|m| m.projected_gap == U256::MAX && m.covered <= m.need)
        );
        assert_eq!(r.coverage_day_bps, BPS);
    }
    // Gamma near 2^127 at the largest move: exact, no saturation.
    let s = crash(100_000);
    let expected = extreme * i(10) + extreme * i(50);
    assert_eq!(
        s.equity_change(&[Exposure {
            asset: "X".into(),
            delta: extreme,
            gamma: extreme
        }]),
        expected
    );
}

fn amount() -> impl Strategy<Value = U256> {
    prop_oneof![
        Just(U256::ZERO),
        Just(U256::MAX),
        (0u64..2_000).prop_map(U256::from),
        any::<u64>().prop_map(U256::from),
        any::<[u64; 4]>().prop_map(U256::from_limbs),
    ]
}

fn signed() -> impl Strategy<Value = I256> {
    prop_oneof![
        (-5_000i128..5_000).prop_map(|x| I256::try_from(x).unwrap()),
        any::<i128>().prop_map(|x| I256::try_from(x).unwrap()),
        Just(I256::MAX),
        Just(I256::MIN),
    ]
}

fn asset() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("ETH".to_string()),
        Just("BTC".to_string()),
        Just("USD".to_string())
    ]
}

fn basis() -> impl Strategy<Value = Basis> {
    prop_oneof![
        prop::collection::vec(
            (asset(), signed(), signed()).prop_map(|(asset, delta, gamma)| Exposure {
                asset,
                delta,
                gamma
            }),
            0..4
        )
        .prop_map(Basis::Exposures),
        (amount(), prop::option::of(Just("bad".to_string()))).prop_map(|(worst_fall, invalid)| {
            Basis::History {
                worst_fall,
                invalid,
            }
        }),
    ]
}

fn member_input() -> impl Strategy<Value = MemberInput> {
    (
        any::<u8>(),
        1u64..4,
        [amount(), amount(), amount(), amount(), amount()],
        basis(),
    )
        .prop_map(
            |(
                n,
                home_chain_id,
                [assets, liabilities, deductible, cap, coverage_available],
                basis,
            )| MemberInput {
                id: id(n),
                home_chain_id,
                assets,
                liabilities,
                deductible,
                cap,
                coverage_available,
                basis,
            },
        )
}

fn vault_input() -> impl Strategy<Value = VaultInput> {
    (
        1u64..4,
        [amount(), amount(), amount(), amount()],
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(chain_id, [balance, reserve_floor, bucket_available, refill_per_second], p, q)| {
                VaultInput {
                    chain_id,
                    balance,
                    reserve_floor,
                    bucket_available,
                    refill_per_second,
                    paused: p && q,
                    quarantined: !p && q,
                }
            },
        )
}

fn scenario() -> impl Strategy<Value = Scenario> {
    let moves = prop::collection::btree_map(asset(), -20_000i64..200_000, 0..3);
    let halted = prop::collection::btree_set(1u64..4, 0..2);
    (
        moves,
        prop_oneof![Just(0i64), -10_000i64..100_000, any::<i64>()],
        halted,
        0u64..12_000,
    )
        .prop_map(
            |(moves_bps, all_assets_bps, halted_chains, depeg_bps)| Scenario {
                name: "p".into(),
                moves_bps,
                all_assets_bps,
                halted_chains,
                depeg_bps,
            },
        )
}

/// A vault on each chain 1..=3 that pays, so every member of those chains can draw.
fn healthy_vaults() -> impl Strategy<Value = Vec<VaultInput>> {
    prop::collection::vec((0u64..5_000, 0u64..500), 3).prop_map(|xs| {
        xs.into_iter()
            .zip(1u64..)
            .map(|((balance, available), chain_id)| VaultInput {
                chain_id,
                balance: u(balance),
                reserve_floor: u(balance / 10),
                bucket_available: u(available),
                refill_per_second: U256::ZERO,
                paused: false,
                quarantined: false,
            })
            .collect()
    })
}

/// A member of chain 1..=3 with small amounts and one exposure.
fn small_member() -> impl Strategy<Value = MemberInput> {
    (
        any::<u8>(),
        1u64..4,
        0u64..2_000,
        0u64..2_000,
        -3_000i128..3_000,
        0u64..200,
    )
        .prop_map(
            |(n, home_chain_id, assets, liabilities, delta, deductible)| MemberInput {
                id: id(n),
                home_chain_id,
                assets: u(assets),
                liabilities: u(liabilities),
                deductible: u(deductible),
                cap: u(1_500),
                coverage_available: u(1_800),
                basis: Basis::Exposures(vec![exposure("ETH", delta, delta / 3)]),
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn when_every_member_can_draw_the_shortfall_is_need_less_payable(
        vaults in healthy_vaults(),
        members in prop::collection::vec(small_member(), 1..12),
        bps in -10_000i64..10_000,
        depeg_bps in 0u64..5_000,
    ) {
        let s = Scenario { depeg_bps, ..crash(bps) };
        let r = one(&vaults, &members, s);
        let covered = r.members.iter().fold(U256::ZERO, |sum, m| sum + m.covered);
        prop_assert_eq!(covered, r.need.min(r.payable_day));
        prop_assert_eq!(r.shortfall, r.need.saturating_sub(r.payable_day));
        prop_assert_eq!(r.coverage_day_bps, coverage_bps(r.payable_day, r.need));
        for m in &r.members {
            prop_assert!(m.covered <= m.need);
            prop_assert_eq!(m.covered + m.shortfall, m.need);
        }
    }

    #[test]
    fn evaluate_never_panics_and_keeps_its_invariants(
        vaults in prop::collection::vec(vault_input(), 0..4),
        members in prop::collection::vec(member_input(), 0..8),
        scenarios in prop::collection::vec(scenario(), 1..4),
    ) {
        let results = evaluate(&vaults, &members, &scenarios);
        prop_assert_eq!(results.len(), scenarios.len());
        prop_assert_eq!(&results, &evaluate(&vaults, &members, &scenarios));
        for (r, s) in results.iter().zip(&scenarios) {
            prop_assert!(r.payable_next_block <= r.payable_day);
            prop_assert!(r.members.windows(2).all(|w| w[0].id <= w[1].id));
            let covered = sum(r.members.iter().map(|m| m.covered));
            let need = sum(r.members.iter().map(|m| m.need));
            prop_assert!(covered <= wide(r.payable_day));
            prop_assert_eq!(r.need, narrow(need));
            for m in &r.members {
                prop_assert!(!m.projected_gap.is_zero());
                prop_assert!(m.covered <= m.need);
                prop_assert!(m.need <= m.projected_gap);
                prop_assert_eq!(m.shortfall, m.need - m.covered);
            }
            let all_can_draw = members.iter().all(|m| can_draw(m, &vaults, s));
            if need <= wide(U256::MAX) {
                prop_assert_eq!(wide(r.shortfall), need - covered);
                if all_can_draw {
                    prop_assert_eq!(covered, need.min(wide(r.payable_day)));
                    if wide(r.payable_day) < need {
                        prop_assert_eq!(r.shortfall, r.need - r.payable_day);
                    }
                }
            }
            prop_assert!(r.coverage_day_bps <= MAX_COVERAGE_BPS);
            prop_assert!(r.coverage_next_block_bps <= r.coverage_day_bps);
        }
    }
}
