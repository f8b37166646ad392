//! The agreement core's vocabulary: the shared types of `backstop-types` (incident keys,
//! the consortium and its thresholds, pinned blocks, proposals, attestations, threshold
//! actions, messages), and what only the core makes: certificates and their subjects.
//!
//! Invariant kept here: a [`Certificate`] carries verified signatures of distinct guardians
//! over its subject's digest, in ascending signer order.

use alloy::primitives::B256;
use backstop_contracts::eip712::{Draw, GuardianSignature, LegRelease, Signable, VaultId};
pub use backstop_types::{
    ActionAttestation, ActionProposal, Attempt, Consortium, ConsortiumError, DrawAttestation,
    DrawProposal, GapObservation, IncidentKey, LegAttestation, MAX_LEGS, MAX_NODES, MAX_PINNED,
    Message, NodeIndex, NodeInfo, PinnedBlock, ThresholdAction,
};

/// What a certificate certifies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Subject {
    /// A draw to register on the home vault.
    Draw {
        /// Incident.
        key: IncidentKey,
        /// Attempt whose proposal it is.
        attempt: Attempt,
        /// Home vault.
        vault: VaultId,
        /// The draw.
        draw: Draw,
    },
    /// A remote leg to release.
    Leg {
        /// Paying vault.
        vault: VaultId,
        /// The release.
        release: LegRelease,
    },
    /// A threshold action.
    Action {
        /// Target vault.
        vault: VaultId,
        /// The action.
        action: ThresholdAction,
    },
}

impl Subject {
    /// The vault the certificate is submitted to.
    pub fn vault(&self) -> VaultId {
        match self {
            Self::Draw { vault, .. } | Self::Leg { vault, .. } | Self::Action { vault, .. } => {
                *vault
            }
        }
    }

    /// EIP-712 digest of the subject under its vault's domain.
    pub fn digest(&self) -> B256 {
        match self {
            Self::Draw { vault, draw, .. } => draw.digest(vault),
            Self::Leg { vault, release } => release.digest(vault),
            Self::Action { vault, action } => action.digest(vault),
        }
    }
}

/// Enough verified signatures of distinct guardians over one digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Certificate {
    /// What is certified.
    pub subject: Subject,
    /// `subject.digest()`.
    pub digest: B256,
    /// Verified signatures of distinct guardians, ascending signer.
    pub signatures: Vec<GuardianSignature>,
}
