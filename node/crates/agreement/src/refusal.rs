//! Why a node's view refuses a draw or a threshold action: one typed reason per rule, so
//! operators see the rule in logs and count refusals by kind in metrics.
//!
//! Invariant: [`Refusal::kind`] is one of [`Refusal::KINDS`], a fixed set, so a metric
//! labelled by it has bounded cardinality.

use alloy::primitives::B256;

use crate::booking::NotBooked;

/// A rule of the view that a draw or an action breaks.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The member is not configured here.
    #[error("unknown member {0}")]
    UnknownMember(B256),
    /// Pinned blocks must be one per chain, in strictly ascending chain order.
    #[error("pinned blocks not one per chain in ascending chain order")]
    PinnedOrder,
    /// A pinned chain is not configured here.
    #[error("chain {0} is not configured")]
    ChainNotConfigured(u64),
    /// A pinned block is older than the maximum age by this node's clock.
    #[error(
        "pinned block {number} of chain {chain_id} is older than {max_age_s} s by this node's clock \
         (a clock ahead of the chains refuses every block: see the clock in GetStatus)"
    )]
    PinnedTooOld {
        /// Chain.
        chain_id: u64,
        /// Block number.
        number: u64,
        /// The bound.
        max_age_s: u64,
    },
    /// The member's home chain is not pinned (or not the one the calling code expects).
    #[error("home chain not pinned")]
    HomeNotPinned,
    /// The member's home chain is quarantined by a breaker.
    #[error("home chain quarantined")]
    HomeQuarantined,
    /// A breaker blocks the member.
    #[error("member blocked: {0}")]
    MemberBlocked(String),
    /// The home vault is paused.
    #[error("home vault paused")]
    HomePaused,
    /// The home vault does not know the member, or names another home chain.
    #[error("member unknown to its home vault, or its home vault names another home chain")]
    UnknownToHomeVault,
    /// The member is frozen on its home vault.
    #[error("member frozen on its home vault")]
    MemberFrozen,
    /// The incident's seq is not the vault's `nextSeq` at the pinned block.
    #[error("seq {seq} is not nextSeq {next_seq} at the pinned block")]
    SeqMismatch {
        /// The incident's seq.
        seq: u64,
        /// The vault's.
        next_seq: u64,
    },
    /// The previous draw registered too recently for the member to have booked it.
    #[error(
        "draw {previous} was registered less than {settle_s} s before the pinned block \
         (the member may not have booked it yet)"
    )]
    NotSettled {
        /// The previous draw.
        previous: u64,
        /// The settle time.
        settle_s: u64,
    },
    /// The previous draw is not closed here: its legs may still be paid.
    #[error("draw {0} is not closed here: its legs may still be paid")]
    PreviousOpen(u64),
    /// The member's books do not declare the previous payout booked.
    #[error(transparent)]
    NotBooked(#[from] NotBooked),
    /// No gap above dust.
    #[error("no gap above dust")]
    NoGap,
    /// The member's coverage window on its home vault is used up.
    #[error("coverage window used up on the home vault")]
    WindowExhausted,
    /// The allocation has nothing to cover (no capacity within the caps, deductible).
    #[error("nothing coverable: {0}")]
    NothingCoverable(String),
    /// A threshold action's deadline is further ahead than this node allows.
    #[error("deadline too far ahead")]
    DeadlineTooFar,
    /// This node's own detectors still assert what the lift would end.
    #[error("lift refused: {0}")]
    LiftRefused(String),
    /// No tripped breaker or operator request of this node wants this emergency action.
    #[error("no tripped breaker or request of this node wants this emergency action")]
    NotWanted,
    /// A governance change this node's operator has not approved (by its digest).
    #[error("governance change not approved by this node's operator")]
    NotApproved,
}

impl Refusal {
    /// Every [`Refusal::kind`].
    pub const KINDS: [&'static str; 21] = [
        "unknown_member",
        "pinned_order",
        "chain_not_configured",
        "pinned_too_old",
        "home_not_pinned",
        "home_quarantined",
        "member_blocked",
        "home_paused",
        "unknown_to_home_vault",
        "member_frozen",
        "seq_mismatch",
        "not_settled",
        "previous_open",
        "not_booked",
        "no_gap",
        "window_exhausted",
        "nothing_coverable",
        "deadline_too_far",
        "lift_refused",
        "not_wanted",
        "not_approved",
    ];

    /// Short fixed name of the rule (a metric label).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::UnknownMember(_) => "unknown_member",
            Self::PinnedOrder => "pinned_order",
            Self::ChainNotConfigured(_) => "chain_not_configured",
            Self::PinnedTooOld { .. } => "pinned_too_old",
            Self::HomeNotPinned => "home_not_pinned",
            Self::HomeQuarantined => "home_quarantined",
            Self::MemberBlocked(_) => "member_blocked",
            Self::HomePaused => "home_paused",
            Self::UnknownToHomeVault => "unknown_to_home_vault",
            Self::MemberFrozen => "member_frozen",
            Self::SeqMismatch { .. } => "seq_mismatch",
            Self::NotSettled { .. } => "not_settled",
            Self::PreviousOpen(_) => "previous_open",
            Self::NotBooked(_) => "not_booked",
            Self::NoGap => "no_gap",
            Self::WindowExhausted => "window_exhausted",
            Self::NothingCoverable(_) => "nothing_coverable",
            Self::DeadlineTooFar => "deadline_too_far",
            Self::LiftRefused(_) => "lift_refused",
            Self::NotWanted => "not_wanted",
            Self::NotApproved => "not_approved",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_listed_once() {
        let all = [
            Refusal::UnknownMember(B256::ZERO),
            Refusal::PinnedOrder,
            Refusal::ChainNotConfigured(1),
            Refusal::PinnedTooOld {
                chain_id: 1,
                number: 2,
                max_age_s: 3,
            },
            Refusal::HomeNotPinned,
            Refusal::HomeQuarantined,
            Refusal::MemberBlocked(String::new()),
            Refusal::HomePaused,
            Refusal::UnknownToHomeVault,
            Refusal::MemberFrozen,
            Refusal::SeqMismatch {
                seq: 1,
                next_seq: 2,
            },
            Refusal::NotSettled {
                previous: 0,
                settle_s: 3,
            },
            Refusal::PreviousOpen(0),
            Refusal::NotBooked(NotBooked {
                previous: 0,
                declared: None,
            }),
            Refusal::NoGap,
            Refusal::WindowExhausted,
            Refusal::NothingCoverable(String::new()),
            Refusal::DeadlineTooFar,
            Refusal::LiftRefused(String::new()),
            Refusal::NotWanted,
            Refusal::NotApproved,
        ];
        let kinds: Vec<_> = all.iter().map(Refusal::kind).collect();
        assert_eq!(kinds, Refusal::KINDS);
    }
}
