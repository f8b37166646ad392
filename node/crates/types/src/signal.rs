//! The kinds of signal detectors raise (the policy layer decides what each one does).

use std::fmt;
use std::str::FromStr;

use alloy::primitives::{Address, B256, U256, keccak256};
use serde::Serialize;

/// What a detector observed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SignalKind {
    /// Oracle price deviates from its reference.
    OracleDeviation,
    /// Oracle price has not updated within its bound.
    OracleStale,
    /// Abnormal outflow from a member's contracts (exploit suspected).
    AbnormalOutflow,
    /// Pool token depeg.
    Depeg,
    /// No new head on a chain within the bound.
    ChainHalt,
    /// Raised by an operator.
    Operator,
    /// A covered member's books do not declare a payout booked after the booking timeout.
    PayoutNotBooked,
    /// Early warning: a member's equity falls on a trend that reaches insolvency within
    /// the configured horizon (subject: the member).
    MarginTrend,
    /// Early warning: a stress scenario's coverage ratio is under the configured threshold
    /// (subject: [`pool_subject`]).
    CoverageLow,
    /// Early warning: an oracle's price moves more than the configured volatility (subject:
    /// the oracle's [`oracle_subject`]).
    VolatilitySpike,
}

/// The on-chain subject of a chain: its id as a 32-byte big-endian word.
pub fn chain_subject(chain_id: u64) -> B256 {
    B256::from(U256::from(chain_id))
}

/// The subject of the pool as a whole (its alerts on every vault):
/// `keccak256("backstop.pool")`.
pub fn pool_subject() -> B256 {
    keccak256(b"backstop.pool")
}

/// The subject of an oracle: `keccak256(chain_id as 8 bytes big-endian ‖ address)`.
pub fn oracle_subject(chain_id: u64, oracle: Address) -> B256 {
    keccak256([&chain_id.to_be_bytes()[..], oracle.as_slice()].concat())
}

/// A name that is no [`SignalKind`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown signal kind {0:?}")]
pub struct UnknownSignalKind(pub String);

impl SignalKind {
    /// Every kind.
    pub const ALL: [SignalKind; 10] = [
        Self::OracleDeviation,
        Self::OracleStale,
        Self::AbnormalOutflow,
        Self::Depeg,
        Self::ChainHalt,
        Self::Operator,
        Self::PayoutNotBooked,
        Self::MarginTrend,
        Self::CoverageLow,
        Self::VolatilitySpike,
    ];

    /// Whether it is an early warning: a precursor that raises a level-1 alert and never
    /// pays, freezes or quarantines by itself.
    pub fn is_early_warning(self) -> bool {
        matches!(
            self,
            Self::MarginTrend | Self::CoverageLow | Self::VolatilitySpike
        )
    }

    /// Snake-case name (`oracle_deviation`, …), as in JSON, the CLI and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OracleDeviation => "oracle_deviation",
            Self::OracleStale => "oracle_stale",
            Self::AbnormalOutflow => "abnormal_outflow",
            Self::Depeg => "depeg",
            Self::ChainHalt => "chain_halt",
            Self::Operator => "operator",
            Self::PayoutNotBooked => "payout_not_booked",
            Self::MarginTrend => "margin_trend",
            Self::CoverageLow => "coverage_low",
            Self::VolatilitySpike => "volatility_spike",
        }
    }
}

impl fmt::Display for SignalKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SignalKind {
    type Err = UnknownSignalKind;

    /// Accepts the snake-case name, with `-` for `_`, in any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        crate::by_name(&Self::ALL, |k| k.as_str(), s)
            .ok_or_else(|| UnknownSignalKind(crate::shorten(s)))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_refused() {
        for k in SignalKind::ALL {
            assert_eq!(k.as_str().parse::<SignalKind>(), Ok(k));
            assert_eq!(k.as_str().to_uppercase().replace('_', "-").parse(), Ok(k));
        }
        assert!("oracle".parse::<SignalKind>().is_err());
    }
}
