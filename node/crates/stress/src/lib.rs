//! Stress tests of the Backstop pool and the math of early warnings, as pure functions.
//!
//! - [`input`]: what the node reads at its newest confirmed blocks (members, vaults) and the
//!   configured [`Scenario`]s;
//! - [`evaluate()`]: for each scenario, every member's projected gap, what the pool promised
//!   for it, what the vaults can pay within the next block and the next 24 hours, the coverage
//!   ratios and who would stay uncovered, by how much;
//! - [`warning`]: precursors of a failure (a member's equity trending to zero, price
//!   volatility) and [`Window`], the bounded history they are computed over.
//!
//! Invariants of the crate: no I/O, no async runtime, no chain client. Every amount is
//! computed with exact or saturating integer arithmetic, so no input (however absurd: balances
//! of `U256::MAX`, a reserve above the balance) panics or overflows; the output depends on the
//! inputs alone, members sorted by id. Floating point is used only in [`warning`], for a
//! detector's decision, never for an amount.

pub mod evaluate;
pub mod input;
mod math;
pub mod report;
pub mod warning;

pub use evaluate::{BasisKind, MemberResult, ScenarioResult, evaluate};
pub use input::{Basis, Exposure, MemberInput, Scenario, VaultInput};
pub use report::{RiskStatus, StressReport};
pub use warning::{Window, blocks_to_insolvency, volatility_bps};

/// Basis points in one.
pub const BPS: u64 = 10_000;
/// The coverage ratio with nothing to cover, and the cap of any ratio (100×), in basis points.
pub const MAX_COVERAGE_BPS: u64 = 1_000_000;
/// Seconds in the long horizon (24 hours).
pub const DAY_S: u64 = 86_400;
/// Lowest price move, basis points (-100%); lower moves are taken as this.
pub const MIN_MOVE_BPS: i64 = -10_000;
/// Highest price move, basis points (+1000%); higher moves are taken as this.
pub const MAX_MOVE_BPS: i64 = 100_000;
