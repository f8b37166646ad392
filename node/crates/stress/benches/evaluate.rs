//! Time to evaluate 10 scenarios for 100 members (2 exposures each) over 3 vaults: what the
//! node spends at every confirmed head. Prints the median and p99 of one evaluation.
//!
//! Run in release: `cargo bench -p backstop-stress --bench evaluate`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use alloy::primitives::{B256, I256, U256};
use backstop_stress::{Basis, Exposure, MemberInput, Scenario, VaultInput, evaluate};
use std::hint::black_box;
use std::time::Instant;

const ITERATIONS: usize = 2_000;
const ASSETS: [&str; 4] = ["ETH", "BTC", "SOL", "USDC"];

fn pool(x: u64) -> U256 {
    U256::from(x) * U256::from(10u64).pow(U256::from(18))
}

fn members() -> Vec<MemberInput> {
    (0..100u64)
        .map(|i| {
            let exposure = |k: u64| Exposure {
                asset: ASSETS[((i + k) % 4) as usize].into(),
                delta: I256::try_from(1_000i128 + i as i128).unwrap()
                    * I256::try_from(10i128.pow(18)).unwrap(),
                gamma: I256::try_from(-(i as i128)).unwrap()
                    * I256::try_from(10i128.pow(18)).unwrap(),
            };
            let mut id = [0u8; 32];
            id[..8].copy_from_slice(&(i * 7_919 % 100).to_be_bytes());
            MemberInput {
                id: B256::from(id),
                home_chain_id: 1 + i % 3,
                assets: pool(1_000 + 10 * i),
                liabilities: pool(900),
                deductible: pool(10),
                cap: pool(500),
                coverage_available: pool(400),
                basis: if i % 10 == 9 {
                    Basis::History {
                        worst_fall: pool(300),
                        invalid: Some("too many exposures".into()),
                    }
                } else {
                    Basis::Exposures(vec![exposure(0), exposure(1)])
                },
            }
        })
        .collect()
}

fn vaults() -> Vec<VaultInput> {
    (1..=3u64)
        .map(|chain_id| VaultInput {
            chain_id,
            balance: pool(20_000 * chain_id),
            reserve_floor: pool(1_000),
            bucket_available: pool(2_000),
            refill_per_second: pool(1) / U256::from(10),
            paused: false,
            quarantined: chain_id == 3,
        })
        .collect()
}

fn scenarios() -> Vec<Scenario> {
    (0..10i64)
        .map(|k| Scenario {
            name: format!("scenario-{k}"),
            moves_bps: ASSETS
                .iter()
                .take(k as usize % 4)
                .map(|a| (a.to_string(), -1_000 * k))
                .collect(),
            all_assets_bps: -500 * k,
            halted_chains: if k == 7 {
                [2].into()
            } else {
                Default::default()
            },
            depeg_bps: if k == 8 { 1_500 } else { 0 },
        })
        .collect()
}

fn main() {
    let (vaults, members, scenarios) = (vaults(), members(), scenarios());
    let results = evaluate(&vaults, &members, &scenarios);
    let uncovered: usize = results.iter().map(|r| r.uncovered().count()).sum();

    let mut micros: Vec<f64> = (0..ITERATIONS)
        .map(|_| {
            let start = Instant::now();
            black_box(evaluate(
                black_box(&vaults),
                black_box(&members),
                black_box(&scenarios),
            ));
            start.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    micros.sort_by(f64::total_cmp);
    let at = |q: f64| micros[((micros.len() - 1) as f64 * q).round() as usize];

    let build = if cfg!(debug_assertions) {
        "DEBUG build (numbers meaningless)"
    } else {
        "release build"
    };
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_else(|_| "unknown".into());
    println!("{build}; load average: {}", load.trim());
    println!(
        "evaluate: {} scenarios × {} members (2 exposures) × {} vaults, {ITERATIONS} runs \
         ({uncovered} member-scenarios uncovered)",
        scenarios.len(),
        members.len(),
        vaults.len(),
    );
    println!(
        "  median {:.1} µs, p99 {:.1} µs per evaluation",
        at(0.5),
        at(0.99)
    );
}
