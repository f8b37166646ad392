//! The real-time stress test of the pool: at every confirmed head, every configured scenario
//! is evaluated ([`backstop_stress::evaluate`]) over the newest confirmed snapshot of each
//! chain: the vaults' balances, reserve floors and buckets, each member's books, cap,
//! deductible and coverage window at its home chain, and how its risk was read there.
//!
//! A member's projection rests on its risk view when it reported a valid one whose every
//! oracle is a configured oracle of its home chain (the asset a scenario moves is the
//! oracle's asset); otherwise on the largest fall of its equity over the history window,
//! with the reason when its view was refused. Members not yet read and chains without a
//! confirmed snapshot are left out (the report's `heads` say what was read).
//!
//! Invariants: pure (fed with the view, the early warnings' history and `now`); a report is
//! a function of those alone; nothing here pays, freezes or quarantines.

use std::collections::{BTreeMap, BTreeSet};

use alloy::primitives::{Address, U256};
use backstop_chain::reads::RiskView;
use backstop_stress::{
    Basis, BasisKind, Exposure, MemberInput, RiskStatus, Scenario, ScenarioResult, StressReport,
    VaultInput, evaluate,
};

use crate::detect::OracleSpec;
use crate::view::NodeView;
use crate::warning::Warnings;

/// The configured scenarios, and the asset each oracle prices.
#[derive(Clone, Debug)]
pub struct StressTest {
    scenarios: Vec<Scenario>,
    assets: BTreeMap<(u64, Address), String>,
}

impl StressTest {
    /// The test of `scenarios`, exposures mapped to assets through `oracles`.
    pub fn new(scenarios: Vec<Scenario>, oracles: &[OracleSpec]) -> Self {
        let assets = oracles
            .iter()
            .map(|o| ((o.chain_id, o.address), o.asset.clone()))
            .collect();
        Self { scenarios, assets }
    }

    /// Whether no scenario is configured (nothing to evaluate).
    pub fn is_empty(&self) -> bool {
        self.scenarios.is_empty()
    }

    /// Every scenario over the newest confirmed snapshots of `view`.
    pub fn evaluate(&self, view: &NodeView, warnings: &Warnings, now: u64) -> StressReport {
        let quarantined = view.quarantined();
        let (heads, vaults) = vaults(view, &quarantined);
        let (members, risk) = self.members(view, warnings);
        StressReport {
            evaluated_ms: now,
            heads,
            risk,
            scenarios: evaluate(&vaults, &members, &self.scenarios),
        }
    }

    /// The members read at their home chain's newest confirmed block, with how their risk
    /// was read.
    fn members(&self, view: &NodeView, warnings: &Warnings) -> (Vec<MemberInput>, Vec<RiskStatus>) {
        let mut inputs = Vec::new();
        let mut risk = Vec::new();
        for (id, policy) in &view.config().members {
            let home = policy.home_chain_id;
            let Some(at) = view.latest(home).and_then(|s| s.members.get(id)) else {
                continue;
            };
            let Some(books) = at.solvency else { continue };
            let basis = self.basis(home, at.risk.as_ref(), warnings.worst_fall(id));
            risk.push(status(*id, &basis));
            inputs.push(MemberInput {
                id: *id,
                home_chain_id: home,
                assets: books.assets,
                liabilities: books.liabilities,
                deductible: U256::from(at.record.deductible),
                cap: policy.local_cap.map_or(U256::from(at.record.cap), |c| {
                    c.min(U256::from(at.record.cap))
                }),
                coverage_available: at.record.coverage_available,
                basis,
            });
        }
        (inputs, risk)
    }

    /// What a member's projection rests on.
    fn basis(&self, home: u64, risk: Option<&RiskView>, worst_fall: U256) -> Basis {
        let history = |invalid| Basis::History {
            worst_fall,
            invalid,
        };
        match risk {
            Some(RiskView::Exposures(list)) => {
                let mut exposures = Vec::with_capacity(list.len());
                for e in list {
                    let Some(asset) = self.assets.get(&(home, e.oracle)) else {
                        return history(Some(format!(
                            "exposure to {} on chain {home}, which is no configured oracle",
                            e.oracle
                        )));
                    };
                    exposures.push(Exposure {
                        asset: asset.clone(),
                        delta: e.delta,
                        gamma: e.gamma,
                    });
                }
                Basis::Exposures(exposures)
            }
            Some(RiskView::Invalid(reason)) => history(Some(reason.clone())),
            Some(RiskView::Missing) | None => history(None),
        }
    }
}

/// How a member's risk was read, for operators.
fn status(id: alloy::primitives::B256, basis: &Basis) -> RiskStatus {
    let (basis, reason) = match basis {
        Basis::Exposures(_) => (BasisKind::Exposures, None),
        Basis::History { invalid: None, .. } => (BasisKind::History, None),
        Basis::History {
            invalid: Some(r), ..
        } => (BasisKind::InvalidView, Some(r.clone())),
    };
    RiskStatus { id, basis, reason }
}

/// Each chain's vault at its newest confirmed block, with that block's number.
fn vaults(view: &NodeView, quarantined: &BTreeSet<u64>) -> (Vec<(u64, u64)>, Vec<VaultInput>) {
    let mut heads = Vec::new();
    let mut vaults = Vec::new();
    for chain_id in view.config().vaults.keys() {
        let Some(snap) = view.latest(*chain_id) else {
            continue;
        };
        let v = &snap.vault;
        heads.push((*chain_id, snap.block.number));
        vaults.push(VaultInput {
            chain_id: *chain_id,
            balance: v.balance,
            reserve_floor: v.limits.reserveFloor,
            bucket_available: v.bucket_available,
            refill_per_second: U256::from(v.limits.refillPerSecond),
            paused: v.paused,
            quarantined: quarantined.contains(chain_id),
        });
    }
    (heads, vaults)
}

/// Scenarios whose 24-hour coverage crossed `threshold_bps` between two reports, each with
/// a line for operators: under it now (`true`), or back at or above it (`false`).
pub fn crossings(
    before: Option<&StressReport>,
    now: &StressReport,
    threshold_bps: u64,
) -> Vec<(String, bool, String)> {
    let was_low = |name: &str| {
        before
            .and_then(|b| b.scenarios.iter().find(|s| s.name == name))
            .is_some_and(|s| s.coverage_day_bps < threshold_bps)
    };
    now.scenarios
        .iter()
        .filter_map(|s| {
            let low = s.coverage_day_bps < threshold_bps;
            (low != was_low(&s.name)).then(|| (s.name.clone(), low, line(s, low)))
        })
        .collect()
}

fn line(s: &ScenarioResult, low: bool) -> String {
    let ratio = format!(
        "{}.{:02}",
        s.coverage_day_bps / 10_000,
        s.coverage_day_bps % 10_000 / 100
    );
    if low {
        format!(
            "stress scenario {}: the pool covers {ratio} of {} within 24 h; {} uncovered (shortfall {})",
            s.name,
            s.need,
            s.uncovered().count(),
            s.shortfall
        )
    } else {
        format!(
            "stress scenario {}: the pool covers {ratio} of what it needs again",
            s.name
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::view::tests::{member, member_mut, snap, view_with};
    use crate::warning::WarningConfig;
    use alloy::primitives::I256;
    use backstop_chain::reads::Exposure as Read;

    const FEED: Address = Address::repeat_byte(0x0f);

    fn test(scenarios: Vec<Scenario>) -> StressTest {
        let oracles = [OracleSpec {
            chain_id: 1,
            address: FEED,
            asset: "ETH".into(),
            reference: false,
        }];
        StressTest::new(scenarios, &oracles)
    }

    fn crash(bps: i64) -> Scenario {
        Scenario {
            name: format!("crash-{bps}"),
            moves_bps: [("ETH".to_owned(), bps)].into(),
            all_assets_bps: 0,
            halted_chains: BTreeSet::new(),
            depeg_bps: 0,
        }
    }

    fn exposure(oracle: Address, delta: i64) -> Read {
        Read {
            oracle,
            delta: I256::try_from(delta).unwrap(),
            gamma: I256::ZERO,
        }
    }

    /// A member reporting an exposure to a configured oracle is projected from it; one whose
    /// view names an unknown oracle, or was refused, or is missing, from its history, and the
    /// report says which and why.
    #[test]
    fn a_members_basis_follows_its_risk_view() {
        let t = test(vec![]);
        let fall = U256::from(7);
        assert!(matches!(
            t.basis(1, Some(&RiskView::Exposures(vec![exposure(FEED, 5)])), fall),
            Basis::Exposures(e) if e.len() == 1 && e[0].asset == "ETH"
        ));
        let unknown = t.basis(2, Some(&RiskView::Exposures(vec![exposure(FEED, 5)])), fall);
        let s = status(member(), &unknown);
        assert_eq!(s.basis, BasisKind::InvalidView);
        assert!(s.reason.unwrap().contains("no configured oracle"));
        let refused = t.basis(1, Some(&RiskView::Invalid("17 entries".into())), fall);
        assert_eq!(
            status(member(), &refused).reason.as_deref(),
            Some("17 entries")
        );
        for missing in [Some(&RiskView::Missing), None] {
            assert_eq!(
                t.basis(1, missing, fall),
                Basis::History {
                    worst_fall: fall,
                    invalid: None
                }
            );
        }
    }

    /// Over a view of three chains: the member (equity 0, delta 1,000 on ETH) needs 300 in
    /// a 30 % crash, the vaults pay; a quarantined home chain's member can draw nothing.
    #[test]
    fn scenarios_are_evaluated_over_the_newest_confirmed_snapshots() {
        let chain = |id, available| snap(id, 10, available, 0);
        let mut home = chain(1, 5_000);
        member_mut(&mut home).risk = Some(RiskView::Exposures(vec![exposure(FEED, 1_000)]));
        let mut v = view_with(vec![home, chain(2, 5_000), chain(3, 0)]);
        let t = test(vec![crash(-3_000), crash(1_000)]);
        let w = Warnings::new(WarningConfig::default());
        let r = t.evaluate(&v, &w, 42);
        assert_eq!(r.evaluated_ms, 42);
        assert_eq!(r.heads, vec![(1, 10), (2, 10), (3, 10)]);
        assert_eq!(r.risk.len(), 1);
        assert_eq!(r.risk[0].basis, BasisKind::Exposures);
        let (down, up) = (&r.scenarios[0], &r.scenarios[1]);
        // Gap 300, deductible 100: 200 needed, 10,000 payable (chain 3 holds nothing).
        assert_eq!(down.members[0].projected_gap, U256::from(300));
        assert_eq!(down.need, U256::from(200));
        assert_eq!(down.payable_next_block, U256::from(10_000));
        assert!(down.shortfall.is_zero());
        assert!(up.members.is_empty(), "a rise opens no gap");

        v.set_quarantined(1, true);
        let r = t.evaluate(&v, &w, 43);
        assert_eq!(r.scenarios[0].payable_next_block, U256::from(5_000));
        assert_eq!(
            r.scenarios[0].shortfall,
            U256::from(200),
            "its draw cannot register"
        );
    }

    #[test]
    fn crossings_are_reported_once_each_way() {
        let report = |bps| StressReport {
            scenarios: vec![ScenarioResult {
                name: "s".into(),
                need: U256::from(100),
                payable_next_block: U256::ZERO,
                payable_day: U256::ZERO,
                coverage_next_block_bps: bps,
                coverage_day_bps: bps,
                shortfall: U256::ZERO,
                members: Vec::new(),
            }],
            ..StressReport::default()
        };
        let (fine, low) = (report(12_000), report(9_000));
        assert!(crossings(None, &fine, 10_000).is_empty());
        let down = crossings(Some(&fine), &low, 10_000);
        assert_eq!(down.len(), 1);
        assert!(
            down[0].1 && down[0].2.contains("covers 0.90 of 100"),
            "{down:?}"
        );
        assert!(crossings(Some(&low), &low, 10_000).is_empty());
        let up = crossings(Some(&low), &fine, 10_000);
        assert!(!up[0].1 && up[0].2.contains("again"));
        assert_eq!(
            crossings(None, &low, 10_000).len(),
            1,
            "low from the first report"
        );
    }
}
