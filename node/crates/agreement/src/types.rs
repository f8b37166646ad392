//! The shared vocabulary of the agreement core: incident keys, the consortium and its
//! thresholds, gap observations, pinned blocks, proposals, attestations, threshold actions,
//! signals and certificates.
//!
//! Invariants kept here:
//! - a [`Consortium`] is sorted by identity key, with distinct identities and distinct
//!   guardian addresses, and 1 ≤ n ≤ [`MAX_NODES`]; f, t and p are derived from n only;
//! - the proposer of `(member, seq, attempt)` and the submitter rotation of a digest are pure
//!   functions of their inputs and the consortium, so every node computes the same ones.

use alloy::primitives::{Address, B256, U256, keccak256};
use backstop_contracts::eip712::{
    ClearAlert, Draw, FreezeMember, GuardianSignature, LegRelease, Pause, RaiseAlert, Signable,
    UnfreezeMember, Unpause, VaultId,
};
use std::collections::BTreeMap;

/// Largest consortium the core accepts (node indices fit a `u16`, thresholds a `u8` on chain).
pub const MAX_NODES: usize = 255;
/// Most pinned blocks (one per chain) a proposal may carry.
pub const MAX_PINNED: usize = 64;
/// Most legs a draw may carry.
pub const MAX_LEGS: usize = 64;
/// Largest evidence carried by a signal.
pub const MAX_EVIDENCE: usize = 1024;

/// Index of a node in the sorted consortium.
pub type NodeIndex = u16;
/// Attempt number of an incident, starting at 0.
pub type Attempt = u32;

/// An incident: the member and the home vault's `nextSeq(member)` when it opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IncidentKey {
    /// Member identifier (the same on every chain).
    pub member: B256,
    /// Draw sequence on the member's home vault.
    pub seq: u64,
}

/// One consortium node: its gossip identity and its guardian (chain signer) address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeInfo {
    /// ed25519 public key (its libp2p PeerId); the consortium is sorted by it.
    pub identity: [u8; 32],
    /// Address of its secp256k1 guardian key, in every vault's guardian set.
    pub guardian: Address,
}

/// Why a node list is not a consortium.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConsortiumError {
    /// No nodes, or more than [`MAX_NODES`].
    #[error("a consortium has 1 to {MAX_NODES} nodes, got {0}")]
    Size(usize),
    /// Two nodes share an identity key.
    #[error("identity key listed twice")]
    DuplicateIdentity,
    /// Two nodes share a guardian address.
    #[error("guardian {0} listed twice")]
    DuplicateGuardian(Address),
}

/// The sorted node set and its thresholds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Consortium {
    nodes: Vec<NodeInfo>,
    by_guardian: BTreeMap<Address, NodeIndex>,
}

impl Consortium {
    /// Sorts `nodes` by identity and checks that identities and guardians are distinct.
    pub fn new(mut nodes: Vec<NodeInfo>) -> Result<Self, ConsortiumError> {
        if nodes.is_empty() || nodes.len() > MAX_NODES {
            return Err(ConsortiumError::Size(nodes.len()));
        }
        nodes.sort_by_key(|a| a.identity);
        if nodes.windows(2).any(|w| w[0].identity == w[1].identity) {
            return Err(ConsortiumError::DuplicateIdentity);
        }
        let mut by_guardian = BTreeMap::new();
        for (i, node) in nodes.iter().enumerate() {
            // MAX_NODES < u16::MAX, so the index fits.
            if by_guardian.insert(node.guardian, i as NodeIndex).is_some() {
                return Err(ConsortiumError::DuplicateGuardian(node.guardian));
            }
        }
        Ok(Self { nodes, by_guardian })
    }

    /// The nodes, sorted by identity.
    pub fn nodes(&self) -> &[NodeInfo] {
        &self.nodes
    }

    /// Number of nodes.
    pub fn n(&self) -> usize {
        self.nodes.len()
    }

    /// Most byzantine nodes tolerated: floor((n - 1) / 3).
    pub fn f(&self) -> usize {
        (self.n() - 1) / 3
    }

    /// Signatures needed to pay or to lift: n - f.
    pub fn t(&self) -> usize {
        self.n() - self.f()
    }

    /// Signatures needed to freeze, pause or raise an alert: f + 1.
    pub fn p(&self) -> usize {
        self.f() + 1
    }

    /// Index of the node whose guardian is `guardian`.
    pub fn index_of_guardian(&self, guardian: &Address) -> Option<NodeIndex> {
        self.by_guardian.get(guardian).copied()
    }

    /// The node at `index`.
    pub fn node(&self, index: NodeIndex) -> Option<&NodeInfo> {
        self.nodes.get(usize::from(index))
    }

    /// The proposer of `(key, attempt)`: keccak256(member ‖ seq ‖ attempt) mod n.
    pub fn proposer(&self, key: &IncidentKey, attempt: Attempt) -> NodeIndex {
        let mut buf = [0u8; 44];
        buf[..32].copy_from_slice(key.member.as_slice());
        buf[32..40].copy_from_slice(&key.seq.to_be_bytes());
        buf[40..].copy_from_slice(&attempt.to_be_bytes());
        self.reduce(keccak256(buf))
    }

    /// Designated submitter of a certificate over `digest`; fallback `i` is
    /// `(designated + i) mod n`.
    pub fn designated_submitter(&self, digest: &B256) -> NodeIndex {
        self.reduce(keccak256(digest))
    }

    /// Rank of `node` in the submitter rotation of `designated`: 0 for the designated
    /// submitter, `i` for fallback `i`.
    pub fn submitter_rank(&self, designated: NodeIndex, node: NodeIndex) -> usize {
        let n = self.n();
        (usize::from(node) + n - usize::from(designated) % n) % n
    }

    fn reduce(&self, hash: B256) -> NodeIndex {
        let n = U256::from(self.n());
        // The remainder is < n ≤ MAX_NODES, so it fits.
        (U256::from_be_bytes(hash.0) % n).to::<u64>() as NodeIndex
    }
}

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
    /// liabilities - assets, or 0.
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
    /// Registered draw (its EIP-712 digest on the home vault).
    pub draw_hash: B256,
    /// The remote vault that pays the leg.
    pub vault: VaultId,
    /// The release.
    pub release: LegRelease,
    /// Signature over `release.digest(vault)`.
    pub signature: GuardianSignature,
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
        }
    }

    /// Whether it stops something (p signatures) rather than lifting (t signatures).
    pub fn is_emergency(&self) -> bool {
        matches!(self, Self::Freeze(_) | Self::Pause(_) | Self::RaiseAlert(_))
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

/// What a detector observed (carried by gossip; acted on by the policy layer, not here).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SignalKind {
    /// Oracle price deviates from its reference.
    OracleDeviation,
    /// Oracle has not updated within its bound.
    OracleStale,
    /// Abnormal outflow from a member's contracts.
    AbnormalOutflow,
    /// Pool token depeg.
    Depeg,
    /// No new head within a bound.
    ChainHalt,
    /// Raised by an operator.
    Operator,
    /// A covered member's books do not declare a payout booked after the booking timeout.
    PayoutNotBooked,
}

/// A detector's signal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signal {
    /// What was observed.
    pub kind: SignalKind,
    /// About what (member, oracle, chain...).
    pub subject: B256,
    /// When (unix seconds).
    pub observed_at: u64,
    /// Small evidence, at most [`MAX_EVIDENCE`] bytes.
    pub evidence: Vec<u8>,
}

/// A gossip payload handled by the agreement core.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// A draw proposal.
    Proposal(DrawProposal),
    /// A signature over a proposed draw.
    DrawAttestation(DrawAttestation),
    /// A signature over a leg release.
    LegAttestation(LegAttestation),
    /// A request to sign a threshold action.
    ActionProposal(ActionProposal),
    /// A signature over a threshold action.
    ActionAttestation(ActionAttestation),
}

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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn consortium(n: usize) -> Consortium {
        Consortium::new(
            (0..n)
                .map(|i| NodeInfo {
                    identity: [i as u8; 32],
                    guardian: Address::with_last_byte(i as u8 + 1),
                })
                .collect(),
        )
        .unwrap()
    }

    #[test]
    fn thresholds_follow_n() {
        for (n, f, t, p) in [(1, 0, 1, 1), (4, 1, 3, 2), (7, 2, 5, 3), (10, 3, 7, 4)] {
            let c = consortium(n);
            assert_eq!((c.f(), c.t(), c.p()), (f, t, p), "n = {n}");
        }
    }

    #[test]
    fn rejects_duplicates_and_sizes() {
        assert_eq!(Consortium::new(vec![]), Err(ConsortiumError::Size(0)));
        let a = NodeInfo {
            identity: [1; 32],
            guardian: Address::with_last_byte(1),
        };
        let b = NodeInfo {
            identity: [2; 32],
            guardian: Address::with_last_byte(1),
        };
        assert_eq!(
            Consortium::new(vec![a, a]),
            Err(ConsortiumError::DuplicateIdentity)
        );
        assert_eq!(
            Consortium::new(vec![a, b]),
            Err(ConsortiumError::DuplicateGuardian(a.guardian))
        );
    }

    #[test]
    fn proposer_rotates_over_attempts_and_is_spread() {
        let c = consortium(7);
        let key = IncidentKey {
            member: B256::repeat_byte(9),
            seq: 3,
        };
        let mut seen = [0usize; 7];
        for a in 0..700 {
            seen[usize::from(c.proposer(&key, a))] += 1;
        }
        // Every node proposes some attempts and none dominates.
        assert!(seen.iter().all(|&s| (50..=150).contains(&s)), "{seen:?}");
        // Deterministic.
        assert_eq!(c.proposer(&key, 5), consortium(7).proposer(&key, 5));
    }

    #[test]
    fn submitter_rank_is_distance_in_rotation() {
        let c = consortium(4);
        assert_eq!(c.submitter_rank(2, 2), 0);
        assert_eq!(c.submitter_rank(2, 3), 1);
        assert_eq!(c.submitter_rank(2, 0), 2);
        assert_eq!(c.submitter_rank(2, 1), 3);
    }
}
