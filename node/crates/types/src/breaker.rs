//! Circuit breakers' vocabulary: what a breaker guards against and the emergency effects
//! it puts on vaults. The policy layer decides when; the view and the API only read these.

use std::fmt;
use std::str::FromStr;

use alloy::primitives::B256;
use serde::Serialize;

/// A name that is no [`BreakerKind`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "breaker kind: unknown {0:?} (known: oracle, exploit, chain_halt, contagion, depeg, operator, payout_not_booked, early_warning)"
)]
pub struct UnknownBreakerKind(pub String);

/// What tripped a circuit breaker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerKind {
    /// An oracle deviates from its reference or is stale.
    Oracle,
    /// Abnormal outflow from a member's contracts (exploit suspected).
    Exploit,
    /// A chain stopped producing heads.
    ChainHalt,
    /// Several members of one chain in trouble at once.
    Contagion,
    /// The pool token lost its peg.
    Depeg,
    /// Raised by an operator.
    Operator,
    /// A covered member's books do not declare a payout booked after the booking timeout.
    PayoutNotBooked,
    /// A precursor of failure (margin trend, low stress coverage, volatility): a level-1
    /// alert for the member or the pool, lifted by the nodes once the condition clears.
    EarlyWarning,
}

impl BreakerKind {
    /// Every kind, in wire order.
    pub const ALL: [BreakerKind; 8] = [
        Self::Oracle,
        Self::Exploit,
        Self::ChainHalt,
        Self::Contagion,
        Self::Depeg,
        Self::Operator,
        Self::PayoutNotBooked,
        Self::EarlyWarning,
    ];

    /// Snake-case name (`oracle`, `chain_halt`, …), as in breaker ids, JSON, the CLI and
    /// metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Oracle => "oracle",
            Self::Exploit => "exploit",
            Self::ChainHalt => "chain_halt",
            Self::Contagion => "contagion",
            Self::Depeg => "depeg",
            Self::Operator => "operator",
            Self::PayoutNotBooked => "payout_not_booked",
            Self::EarlyWarning => "early_warning",
        }
    }
}

impl fmt::Display for BreakerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for BreakerKind {
    type Err = UnknownBreakerKind;

    /// Accepts the snake-case name, with `-` for `_`, in any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        crate::by_name(&Self::ALL, |k| k.as_str(), s)
            .ok_or_else(|| UnknownBreakerKind(crate::shorten(s)))
    }
}

/// An emergency state a breaker puts on a vault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Effect {
    /// `freezeMember(member)`.
    Freeze(B256),
    /// `raiseAlert(subject, level)`.
    Alert {
        /// Subject.
        subject: B256,
        /// Level.
        level: u8,
    },
}

impl Effect {
    /// Operator-facing name of the vault call.
    pub fn action(&self) -> &'static str {
        match self {
            Self::Freeze(_) => "freeze member",
            Self::Alert { .. } => "raise alert",
        }
    }

    /// Whether having `self` wanted means signing `other`: the same freeze, or an alert
    /// of the same subject at most as high.
    pub fn covers(&self, other: &Effect) -> bool {
        match (self, other) {
            (
                Self::Alert { subject, level },
                Self::Alert {
                    subject: s,
                    level: l,
                },
            ) => subject == s && l <= level,
            _ => self == other,
        }
    }

    /// The member or alert subject.
    pub fn subject(&self) -> B256 {
        match self {
            Self::Freeze(m) => *m,
            Self::Alert { subject, .. } => *subject,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn breaker_kinds_parse_leniently() {
        assert_eq!(
            "Chain-Halt".parse::<BreakerKind>().unwrap(),
            BreakerKind::ChainHalt
        );
        for k in BreakerKind::ALL {
            assert_eq!(k.as_str().parse::<BreakerKind>().unwrap(), k);
        }
        let err = "oracle_stale".parse::<BreakerKind>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "breaker kind: unknown \"oracle_stale\" (known: oracle, exploit, chain_halt, contagion, depeg, operator, payout_not_booked, early_warning)"
        );
    }

    #[test]
    fn an_alert_covers_lower_levels_of_its_subject_only() {
        let (a, b) = (B256::repeat_byte(1), B256::repeat_byte(2));
        let alert = |subject, level| Effect::Alert { subject, level };
        assert!(alert(a, 3).covers(&alert(a, 2)));
        assert!(!alert(a, 2).covers(&alert(a, 3)));
        assert!(!alert(a, 3).covers(&alert(b, 1)));
        assert!(Effect::Freeze(a).covers(&Effect::Freeze(a)));
        assert!(!Effect::Freeze(a).covers(&Effect::Freeze(b)));
    }
}
