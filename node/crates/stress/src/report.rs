//! What one evaluation of the stress scenarios shows operators: where it was evaluated, how
//! each member's risk was read, and each scenario's result.
//!
//! Invariants: `heads` has one entry per chain read, ascending by chain id; `risk` one
//! entry per configured member with a confirmed solvency read, ascending by id; `scenarios`
//! are in the configured order.

use alloy::primitives::B256;

use crate::{BasisKind, ScenarioResult};

/// How a member's risk was read at the newest confirmed block of its home chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RiskStatus {
    /// The member.
    pub id: B256,
    /// What its projection rests on.
    pub basis: BasisKind,
    /// Why its risk view was refused ([`BasisKind::InvalidView`]).
    pub reason: Option<String>,
}

/// One evaluation of every configured scenario.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StressReport {
    /// When it was evaluated (ms since the epoch).
    pub evaluated_ms: u64,
    /// The confirmed head each chain was read at: (chain id, block number).
    pub heads: Vec<(u64, u64)>,
    /// Each member's risk reading.
    pub risk: Vec<RiskStatus>,
    /// Each scenario's result, in the configured order.
    pub scenarios: Vec<ScenarioResult>,
}
