//! Every message the nodes gossip, as the whole node sees it: alloy primitives and the
//! vault's EIP-712 structs. The wire codec (protobuf, bounded and checked) lives in
//! `backstop-p2p`; the agreement core consumes the same types.
//!
//! Bounds every decoder enforces: [`MAX_PINNED`] pinned blocks per proposal, [`MAX_LEGS`]
//! legs per draw, [`MAX_EVIDENCE_LEN`] bytes of evidence per signal.

use alloy::primitives::{B256, Bytes, U256};
use backstop_contracts::eip712::{
    ClearAlert, Draw, FreezeMember, GuardianSignature, LegRelease, Pause, RaiseAlert,
    RotateGuardians, SetLimits, SetMember, Signable, UnfreezeMember, Unpause, VaultId,
};

use crate::consortium::{Consortium, NodeIndex};
pub use crate::governance::GovernanceProposal;
use crate::incident::{Attempt, IncidentKey};
use crate::signal::SignalKind;

/// Most pinned blocks (one per chain) a proposal may carry.
pub const MAX_PINNED: usize = 64;
/// Most legs a draw may carry (the vault's `MAX_LEGS`).
pub const MAX_LEGS: usize = 32;
/// Largest evidence blob of a signal.
pub const MAX_EVIDENCE_LEN: usize = 1024;

/// A confirmed block of one chain, pinned by a proposal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PinnedBlock {
    /// EIP-155 chain id.
    pub chain_id: u64,
    /// Block number.
    pub number: u64,
    /// Block hash.
    pub hash: B256,
}

/// A detector's assertion about a subject.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signal {
    /// What was observed.
    pub kind: SignalKind,
    /// Member, oracle, chain or token concerned.
    pub subject: B256,
    /// Observation time, ms since the Unix epoch.
    pub observed_at_ms: u64,
    /// Small evidence blob, at most [`MAX_EVIDENCE_LEN`] bytes.
    pub evidence: Bytes,
}

/// A solvency gap read at a confirmed head of the member's home chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GapObservation {
    /// Member and its home vault's `nextSeq` at that block.
    pub key: IncidentKey,
    /// The member's home chain.
    pub home_chain_id: u64,
    /// Confirmed block read.
    pub block_number: u64,
    /// Its hash.
    pub block_hash: B256,
    /// Member's assets (pool-token units).
    pub assets: U256,
    /// Member's liabilities (pool-token units).
    pub liabilities: U256,
}

impl GapObservation {
    /// liabilities − assets, or 0.
    pub fn gap(&self) -> U256 {
        self.liabilities.saturating_sub(self.assets)
    }
}

/// A draw proposed for `(key, attempt)` by that attempt's proposer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DrawProposal {
    /// Incident.
    pub key: IncidentKey,
    /// Attempt.
    pub attempt: Attempt,
    /// Index of the proposer (must be `Consortium::proposer(key, attempt)`).
    pub proposer: NodeIndex,
    /// One pinned block per chain, ascending chain id.
    pub pinned: Vec<PinnedBlock>,
    /// The draw the proposer computed at the pinned blocks.
    pub draw: Draw,
}

/// A guardian's signature over the draw digest of `(key, attempt)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DrawAttestation {
    /// Incident.
    pub key: IncidentKey,
    /// Attempt.
    pub attempt: Attempt,
    /// EIP-712 digest of the draw under the home vault's domain.
    pub digest: B256,
    /// The guardian's signature over `digest`.
    pub signature: GuardianSignature,
}

/// A guardian's signature over the release of one remote leg of a registered draw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LegAttestation {
    /// The remote vault that pays the leg.
    pub vault: VaultId,
    /// The release (it carries the registered draw's hash).
    pub release: LegRelease,
    /// Signature over `release.digest(vault)`.
    pub signature: GuardianSignature,
}

impl LegAttestation {
    /// The registered draw this leg belongs to (its EIP-712 digest on the home vault).
    pub fn draw_hash(&self) -> B256 {
        self.release.drawHash
    }
}

/// A threshold action aimed at one vault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ThresholdAction {
    /// Freeze payouts to a member (p signatures).
    Freeze(FreezeMember),
    /// Lift a freeze (t signatures).
    Unfreeze(UnfreezeMember),
    /// Pause the vault (p signatures).
    Pause(Pause),
    /// Lift a pause (t signatures).
    Unpause(Unpause),
    /// Raise an alert (p signatures).
    RaiseAlert(RaiseAlert),
    /// Clear an alert (t signatures).
    ClearAlert(ClearAlert),
    /// Add or change a member (governance, t signatures).
    SetMember(SetMember),
    /// Change the vault's limits (governance, t signatures).
    SetLimits(SetLimits),
    /// Replace the guardian set and its thresholds (governance, t signatures of the current set).
    RotateGuardians(RotateGuardians),
}

impl ThresholdAction {
    /// The action's unique id.
    pub fn id(&self) -> B256 {
        match self {
            Self::Freeze(a) => a.id,
            Self::Unfreeze(a) => a.id,
            Self::Pause(a) => a.id,
            Self::Unpause(a) => a.id,
            Self::RaiseAlert(a) => a.id,
            Self::ClearAlert(a) => a.id,
            Self::SetMember(a) => a.id,
            Self::SetLimits(a) => a.id,
            Self::RotateGuardians(a) => a.id,
        }
    }

    /// Last timestamp (seconds) at which the vault accepts it.
    pub fn deadline(&self) -> u64 {
        match self {
            Self::Freeze(a) => a.deadline,
            Self::Unfreeze(a) => a.deadline,
            Self::Pause(a) => a.deadline,
            Self::Unpause(a) => a.deadline,
            Self::RaiseAlert(a) => a.deadline,
            Self::ClearAlert(a) => a.deadline,
            Self::SetMember(a) => a.deadline,
            Self::SetLimits(a) => a.deadline,
            Self::RotateGuardians(a) => a.deadline,
        }
    }

    /// Whether it stops something (p signatures) rather than lifting (t signatures).
    pub fn is_emergency(&self) -> bool {
        matches!(self, Self::Freeze(_) | Self::Pause(_) | Self::RaiseAlert(_))
    }

    /// The vault call, in snake case (`freeze`, `set_member`...): metrics labels and messages.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Freeze(_) => "freeze",
            Self::Unfreeze(_) => "unfreeze",
            Self::Pause(_) => "pause",
            Self::Unpause(_) => "unpause",
            Self::RaiseAlert(_) => "raise_alert",
            Self::ClearAlert(_) => "clear_alert",
            Self::SetMember(_) => "set_member",
            Self::SetLimits(_) => "set_limits",
            Self::RotateGuardians(_) => "rotate_guardians",
        }
    }

    /// Whether it changes the consortium's configuration (a governance proposal that each
    /// node signs only after its own operator approved it).
    pub fn is_governance(&self) -> bool {
        matches!(
            self,
            Self::SetMember(_) | Self::SetLimits(_) | Self::RotateGuardians(_)
        )
    }

    /// Signatures the vault requires.
    pub fn quorum(&self, consortium: &Consortium) -> usize {
        if self.is_emergency() {
            consortium.p()
        } else {
            consortium.t()
        }
    }

    /// EIP-712 digest under `vault`'s domain.
    pub fn digest(&self, vault: &VaultId) -> B256 {
        match self {
            Self::Freeze(a) => a.digest(vault),
            Self::Unfreeze(a) => a.digest(vault),
            Self::Pause(a) => a.digest(vault),
            Self::Unpause(a) => a.digest(vault),
            Self::RaiseAlert(a) => a.digest(vault),
            Self::ClearAlert(a) => a.digest(vault),
            Self::SetMember(a) => a.digest(vault),
            Self::SetLimits(a) => a.digest(vault),
            Self::RotateGuardians(a) => a.digest(vault),
        }
    }
}

/// A node asks the others to sign a threshold action (it carries no signature).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActionProposal {
    /// Target vault.
    pub vault: VaultId,
    /// The action.
    pub action: ThresholdAction,
}

/// A guardian's signature over a threshold action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActionAttestation {
    /// Target vault.
    pub vault: VaultId,
    /// The action.
    pub action: ThresholdAction,
    /// Signature over `action.digest(vault)`.
    pub signature: GuardianSignature,
}

/// Every message the nodes gossip.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// A detector's signal (handled by the policy layer).
    Signal(Signal),
    /// A solvency observation (handled by the node's view).
    GapObservation(GapObservation),
    /// A draw proposal.
    DrawProposal(DrawProposal),
    /// A signature over a proposed draw.
    DrawAttestation(DrawAttestation),
    /// A signature over a leg release.
    LegAttestation(LegAttestation),
    /// A request to sign a threshold action.
    ActionProposal(ActionProposal),
    /// A signature over a threshold action.
    ActionAttestation(ActionAttestation),
    /// A governance change proposed by an operator, for the other operators to approve.
    GovernanceProposal(GovernanceProposal),
}

impl Message {
    /// The incident this message belongs to, if any (catch-up stores index by it).
    pub fn incident(&self) -> Option<IncidentKey> {
        match self {
            Self::GapObservation(m) => Some(m.key),
            Self::DrawProposal(m) => Some(m.key),
            Self::DrawAttestation(m) => Some(m.key),
            Self::LegAttestation(m) => Some(IncidentKey {
                member: m.release.member,
                seq: m.release.seq,
            }),
            Self::Signal(_)
            | Self::ActionProposal(_)
            | Self::ActionAttestation(_)
            | Self::GovernanceProposal(_) => None,
        }
    }

    /// The guardian signature the message carries, if any.
    pub fn guardian_signature(&self) -> Option<&GuardianSignature> {
        match self {
            Self::DrawAttestation(m) => Some(&m.signature),
            Self::LegAttestation(m) => Some(&m.signature),
            Self::ActionAttestation(m) => Some(&m.signature),
            Self::Signal(_)
            | Self::GapObservation(_)
            | Self::DrawProposal(_)
            | Self::ActionProposal(_)
            | Self::GovernanceProposal(_) => None,
        }
    }
}
