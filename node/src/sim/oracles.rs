//! Simulated price feeds. Every chain has one asset with two feeds: its reference, and the
//! feed that prices the members homed there. A run has at most one fault, the same for
//! every node (drawn from the run's seed): over a stretch before the heal, the member feed
//! of one chain deviates from its reference or stops updating.

use std::collections::BTreeMap;

use alloy::primitives::{Address, I256, keccak256};
use backstop_agreement::sim::chain::{GENESIS_S, World};
use backstop_agreement::sim::rng::Rng;

use crate::detect::OracleSpec;
use crate::view::OracleRead;

/// Every feed's answer when healthy (2,000 with 8 decimals).
const ANSWER: i64 = 200_000_000_000;
/// The feeds' decimals.
const DECIMALS: u8 = 8;
/// The detectors' staleness bound (s).
pub const MAX_STALENESS_S: u64 = 20;
/// Chance (per mille) that a run has a fault.
const FAULT_PERMILLE: u64 = 400;

/// What goes wrong with a feed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// Its answer is off by this many basis points.
    Deviates {
        /// Basis points above the reference.
        bps: u64,
    },
    /// It stops updating.
    Stale,
}

/// A fault of the member feed of one chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    /// Chain index in the world.
    pub chain: usize,
    /// What goes wrong.
    pub kind: FaultKind,
    /// From (sim ms, included).
    pub from_ms: u64,
    /// Until (sim ms, excluded).
    pub until_ms: u64,
}

impl Fault {
    /// The run's fault, if it has one (before `heal_ms`).
    pub fn of(w: &World, heal_ms: u64) -> Option<Self> {
        let mut rng = Rng::new(w.seed ^ 0x0AC1_EFEE);
        if !rng.chance(FAULT_PERMILLE) || heal_ms < 5_000 {
            return None;
        }
        let chain = rng.range(0, w.chains.len() as u64 - 1) as usize;
        let kind = if rng.chance(500) {
            FaultKind::Deviates {
                bps: rng.range(1_000, 5_000),
            }
        } else {
            FaultKind::Stale
        };
        let from_ms = rng.range(1_000, heal_ms - 4_000);
        let until_ms = (from_ms + rng.range(3_000, 40_000)).min(heal_ms);
        Some(Self {
            chain,
            kind,
            from_ms,
            until_ms,
        })
    }

    /// Whether a reader of chain `c` at block time `ms` (block timestamp `ts`) sees the
    /// fault: a deviating answer, or an answer older than the staleness bound.
    pub fn shows(&self, c: usize, ms: u64, ts: u64) -> bool {
        let active = c == self.chain && ms >= self.from_ms && ms < self.until_ms;
        match self.kind {
            FaultKind::Deviates { .. } => active,
            FaultKind::Stale => active && ts.saturating_sub(self.frozen_at()) > MAX_STALENESS_S,
        }
    }

    /// The last update (unix s) of a stale feed.
    fn frozen_at(&self) -> u64 {
        GENESIS_S + self.from_ms / 1000
    }
}

/// The reference feed (`reference`) or the member feed of chain `c`.
pub fn feed(c: usize, reference: bool) -> Address {
    Address::from_word(keccak256([c as u8, 0x0a, u8::from(reference)]))
}

/// The feeds as the detectors are configured with them.
pub fn specs(w: &World) -> Vec<OracleSpec> {
    w.chains
        .iter()
        .enumerate()
        .flat_map(|(c, chain)| {
            [true, false].map(|reference| OracleSpec {
                chain_id: chain.vault.chain_id,
                address: feed(c, reference),
                asset: format!("asset of chain {c}"),
                reference,
            })
        })
        .collect()
}

/// The feeds of chain `c` at block time `ms`, block timestamp `ts`.
pub fn reads(
    fault: Option<Fault>,
    c: usize,
    ms: u64,
    ts: u64,
) -> BTreeMap<Address, Option<OracleRead>> {
    let healthy = OracleRead {
        answer: I256::try_from(ANSWER).unwrap_or(I256::ONE),
        updated_at: ts,
        decimals: DECIMALS,
    };
    let mut member = healthy;
    if let Some(f) = fault.filter(|f| c == f.chain && ms >= f.from_ms && ms < f.until_ms) {
        match f.kind {
            FaultKind::Deviates { bps } => {
                let off = I256::try_from(ANSWER as i128 * (10_000 + bps as i128) / 10_000);
                member.answer = off.unwrap_or(I256::ONE);
            }
            FaultKind::Stale => member.updated_at = f.frozen_at(),
        }
    }
    [
        (feed(c, true), Some(healthy)),
        (feed(c, false), Some(member)),
    ]
    .into()
}
