//! Governance proposals as this node knows them: the ones its operator proposed and the
//! ones peers gossiped, their approvals and their progress on each target vault.
//!
//! A plain table fed with proposals (local or gossiped), approvals seen, operator approvals,
//! executed vault actions and time. It decides nothing on its own: an operator's approval
//! of a proposal by its exact digest ([`Governance::approve`]) is what returns the
//! threshold actions the node then signs, one per target vault, through the agreement
//! machine (which records before it signs).
//!
//! Invariants:
//! - nothing is signed without this node's operator's approval of the proposal's digest,
//!   which binds the change and every target vault ([`GovernanceProposal::digest`]);
//! - a proposal is refused (kept as rejected, with its reason) when its change is invalid,
//!   names a vault that is not the consortium's, or its deadline is past or too far; one
//!   that changes the same thing (a member, the limits or the guardian set) on a chain
//!   where another proposal is open is kept as conflicting, naming that proposal;
//! - a proposal is taken in only with its proposer's guardian signature over its digest, so
//!   any node may relay it (every node gossips the open proposals it holds, which survives a
//!   proposer's restart) and no node can put one under another's name;
//! - one id names one proposal: a second, different proposal under a known id is dropped;
//! - the table holds at most [`MAX_PROPOSALS`]: ended proposals (executed, expired,
//!   rejected, conflicting) are evicted first, oldest first; open ones are never evicted,
//!   and at most [`MAX_OPEN_PER_NODE`] are open per proposer.

use std::collections::{BTreeMap, BTreeSet};

use alloy::primitives::{Address, B256, U256};
use backstop_contracts::eip712::{SetMember, VaultId};
use backstop_types::governance::GovernanceError;
use backstop_types::{Consortium, GovernanceProposal, NodeIndex, ThresholdAction};

use crate::view::{ChainSnapshot, NodeView};

/// Most proposals kept.
pub const MAX_PROPOSALS: usize = 64;
/// Most open proposals of one proposer.
pub const MAX_OPEN_PER_NODE: usize = 8;
/// How long a proposal stays open (s): its actions' deadline on the vaults, and the
/// furthest deadline a node accepts from a peer.
pub const PROPOSAL_TTL_S: u64 = 24 * 3600;
/// How often a node gossips the open proposals it holds again (ms), for nodes that missed
/// them or restarted.
pub const REBROADCAST_MS: u64 = 30_000;

/// A governance change an operator asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GovernanceChange {
    /// A `SetMember`, `SetLimits` or `RotateGuardians` action; [`action_of`] sets its id
    /// and deadline.
    Action(ThresholdAction),
    /// Disable a member: its vault record kept (recipient, home chain, window), its cap,
    /// deductible and coverage limit set to zero.
    DisableMember(B256),
}

/// The vault action of an operator's change, under `id` and `deadline`, checked against
/// this node's view: a member's home chain must be configured and its cap not above the
/// pool (the configured vaults' balances at their newest confirmed blocks); a member to
/// disable must be on its home vault.
pub fn action_of(
    change: GovernanceChange,
    id: B256,
    deadline: u64,
    view: &NodeView,
) -> Result<ThresholdAction, ProposalError> {
    let vaults = &view.config().vaults;
    let action = match change {
        GovernanceChange::Action(ThresholdAction::SetMember(mut a)) => {
            if !vaults.contains_key(&a.homeChainId) {
                return Err(ProposalError::UnknownChain(a.homeChainId));
            }
            let pool: U256 = vaults
                .keys()
                .filter_map(|c| view.latest(*c))
                .map(|s| s.vault.balance)
                .fold(U256::ZERO, |acc, b| acc.saturating_add(b));
            if U256::from(a.cap) > pool {
                return Err(ProposalError::CapAbovePool { cap: a.cap, pool });
            }
            a.id = id;
            a.deadline = deadline;
            ThresholdAction::SetMember(a)
        }
        GovernanceChange::Action(ThresholdAction::SetLimits(mut a)) => {
            a.id = id;
            a.deadline = deadline;
            ThresholdAction::SetLimits(a)
        }
        GovernanceChange::Action(ThresholdAction::RotateGuardians(mut a)) => {
            a.id = id;
            a.deadline = deadline;
            ThresholdAction::RotateGuardians(a)
        }
        GovernanceChange::Action(other) => {
            return Err(GovernanceError::NotGovernance(other.name()).into());
        }
        GovernanceChange::DisableMember(member) => {
            let record = view
                .config()
                .members
                .get(&member)
                .and_then(|m| view.latest(m.home_chain_id))
                .and_then(|s| s.members.get(&member))
                .map(|m| m.record)
                .ok_or(ProposalError::UnknownMember(member))?;
            ThresholdAction::SetMember(SetMember {
                member,
                recipient: record.recipient,
                homeChainId: record.home_chain_id,
                cap: 0,
                deductible: 0,
                coverageLimit: 0,
                coverageWindow: record.coverage_window,
                id,
                deadline,
            })
        }
    };
    Ok(action)
}

/// The change's parameters, for operators.
pub fn summary(action: &ThresholdAction) -> String {
    match action {
        ThresholdAction::SetMember(m) => format!(
            "member {} recipient {} home chain {} cap {} deductible {} coverage {} per {} s",
            m.member,
            m.recipient,
            m.homeChainId,
            m.cap,
            m.deductible,
            m.coverageLimit,
            m.coverageWindow
        ),
        ThresholdAction::SetLimits(l) => format!(
            "bucket {} refill {}/s reserve floor {} withdrawal cooldown {} s emergency {} s",
            l.bucketCapacity,
            l.refillPerSecond,
            l.reserveFloor,
            l.withdrawCooldown,
            l.emergencyDuration
        ),
        ThresholdAction::RotateGuardians(r) => {
            let set: Vec<String> = r.guardians.iter().map(|g| g.to_string()).collect();
            format!(
                "guardians [{}] t {} p {}",
                set.join(", "),
                r.threshold,
                r.pauseThreshold
            )
        }
        other => other.name().to_string(),
    }
}

/// How a configured member stands on its home vault: the chain holds its terms, the
/// configuration only where to read its books.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Registration {
    /// On its home vault, homed where the configuration says, with a non-zero cap.
    Registered,
    /// Not on its home vault (waiting for the consortium to add it).
    NotOnVault,
    /// On its home vault with a zero cap (disabled by the consortium).
    Disabled,
    /// The home vault records another home chain.
    HomeDiffers(u64),
}

impl Registration {
    /// What operators are told when a member's registration changes to this.
    pub fn describe(&self, name: &str, home: u64) -> String {
        match self {
            Self::Registered => {
                format!("member {name} is registered on its home vault (chain {home})")
            }
            Self::NotOnVault => format!(
                "member {name} is configured but not on its home vault (chain {home}): nothing is paid to it until the consortium adds it"
            ),
            Self::Disabled => {
                format!("member {name} is disabled on its home vault (chain {home}): cap 0")
            }
            Self::HomeDiffers(other) => format!(
                "member {name}: configured home chain {home}, but its home vault records home chain {other}"
            ),
        }
    }
}

/// Each configured member homed on `snap`'s chain, and how it stands there.
pub fn registrations<'a>(
    snap: &'a ChainSnapshot,
    view: &'a NodeView,
) -> impl Iterator<Item = (B256, Registration)> + 'a {
    let chain_id = snap.block.chain_id;
    view.config()
        .members
        .iter()
        .filter(move |(_, m)| m.home_chain_id == chain_id)
        .map(move |(id, _)| {
            let reg = match snap.members.get(id).map(|m| m.record) {
                None => Registration::NotOnVault,
                Some(r) if r.recipient == Address::ZERO => Registration::NotOnVault,
                Some(r) if r.home_chain_id != chain_id => {
                    Registration::HomeDiffers(r.home_chain_id)
                }
                Some(r) if r.cap == 0 => Registration::Disabled,
                Some(_) => Registration::Registered,
            };
            (*id, reg)
        })
}

/// What a proposal changes, for conflicts: two open proposals must not change the same
/// thing on one chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Topic {
    Member(B256),
    Limits,
    Guardians,
}

fn topic(action: &ThresholdAction) -> Option<Topic> {
    match action {
        ThresholdAction::SetMember(m) => Some(Topic::Member(m.member)),
        ThresholdAction::SetLimits(_) => Some(Topic::Limits),
        ThresholdAction::RotateGuardians(_) => Some(Topic::Guardians),
        _ => None,
    }
}

/// Where a proposal stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    /// Collecting approvals, or being carried out.
    Open,
    /// Executed on every target vault.
    Executed,
    /// Its deadline passed before every target executed it.
    Expired,
    /// Refused by this node (the reason).
    Rejected(String),
    /// Changes what another open proposal changes (that proposal's id).
    Conflicting(B256),
}

impl Status {
    /// Whether it may still be approved and carried out.
    pub fn is_open(&self) -> bool {
        matches!(self, Self::Open)
    }
}

/// One target vault's progress.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TargetProgress {
    /// Nodes seen attesting the action on this vault (this one included).
    pub approvers: BTreeSet<NodeIndex>,
    /// Whether the vault executed it (its id is spent).
    pub executed: bool,
    /// The transaction that executed it, when this node saw it.
    pub tx_hash: Option<B256>,
}

/// A proposal and what this node knows of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proposal {
    /// The proposal as gossiped.
    pub proposal: GovernanceProposal,
    /// Its digest (what operators approve).
    pub digest: B256,
    /// When this node first saw it (unix ms).
    pub seen_ms: u64,
    /// Whether this node's operator approved it.
    pub approved_here: bool,
    /// Where it stands.
    pub status: Status,
    /// Per target chain.
    pub targets: BTreeMap<u64, TargetProgress>,
}

/// Why an operator's proposal or approval is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProposalError {
    /// The change itself is invalid.
    #[error(transparent)]
    Invalid(#[from] GovernanceError),
    /// A target chain is not the consortium's.
    #[error("chain {0} has no configured vault")]
    UnknownChain(u64),
    /// A member to disable that its home vault does not show.
    #[error("member {0} is not on its home vault as this node last read it")]
    UnknownMember(B256),
    /// A member cap above everything the pool holds.
    #[error("cap {cap} is above the pool's {pool} (the vaults' balances)")]
    CapAbovePool {
        /// Cap asked for.
        cap: u128,
        /// The pool.
        pool: U256,
    },
    /// A target vault is not the configured vault of its chain.
    #[error("vault {address} is not the configured vault of chain {chain_id}")]
    UnknownVault {
        /// Chain.
        chain_id: u64,
        /// Address named.
        address: Address,
    },
    /// The deadline is past, or further than this node accepts.
    #[error("deadline {deadline} s is outside now {now_s} s .. now + {max_ttl_s} s")]
    Deadline {
        /// Proposed deadline.
        deadline: u64,
        /// Now.
        now_s: u64,
        /// Longest lifetime accepted.
        max_ttl_s: u64,
    },
    /// Another open proposal changes the same thing on a common chain.
    #[error("conflicts with open proposal {0}")]
    Conflict(B256),
    /// A guardian rotation the nodes could not follow (see `crate::rotation`).
    #[error("{0}")]
    Unfollowable(String),
    /// A guardian rotation that leaves some configured vault out.
    #[error(
        "a guardian rotation targets every configured vault (chains {0:?}); the others would keep refusing the new key"
    )]
    PartialRotation(Vec<u64>),
    /// The proposal is not signed by the guardian of the node it names as proposer.
    #[error("proposal not signed by the guardian of node {0}")]
    Unsigned(NodeIndex),
    /// The proposer has too many open proposals.
    #[error("proposer has {MAX_OPEN_PER_NODE} open proposals already")]
    TooManyOpen,
    /// The table is full of open proposals.
    #[error("{MAX_PROPOSALS} proposals open already")]
    Full,
    /// No proposal with this id.
    #[error("no proposal {0}")]
    NotFound(B256),
    /// The approval names another digest than the proposal's.
    #[error("digest {given} is not proposal {id}'s digest {expected}")]
    DigestMismatch {
        /// Proposal.
        id: B256,
        /// Its digest.
        expected: B256,
        /// The digest approved.
        given: B256,
    },
    /// The proposal is not open.
    #[error("proposal {id} is {status:?}, not open")]
    NotOpen {
        /// Proposal.
        id: B256,
        /// Where it stands.
        status: Status,
    },
}

/// The table of governance proposals.
#[derive(Debug)]
pub struct Governance {
    vaults: BTreeMap<u64, Address>,
    /// The consortium as the vaults hold it (proposers' guardians, rotations' baseline).
    consortium: Consortium,
    max_ttl_s: u64,
    proposals: BTreeMap<B256, Proposal>,
}

impl Governance {
    /// An empty table for the consortium's `vaults` and `consortium`, accepting deadlines
    /// at most `max_ttl_s` ahead.
    pub fn new(vaults: BTreeMap<u64, Address>, consortium: Consortium, max_ttl_s: u64) -> Self {
        Self {
            vaults,
            consortium,
            max_ttl_s,
            proposals: BTreeMap::new(),
        }
    }

    /// Follows a guardian rotation the vaults executed: proposers sign with their new keys.
    pub fn follow_guardians(&mut self, consortium: Consortium) {
        self.consortium = consortium;
    }

    /// Every open proposal (to gossip again).
    pub fn open(&self) -> impl Iterator<Item = &GovernanceProposal> {
        self.proposals
            .values()
            .filter(|p| p.status.is_open())
            .map(|p| &p.proposal)
    }

    /// Every proposal, by id.
    pub fn proposals(&self) -> impl Iterator<Item = &Proposal> {
        self.proposals.values()
    }

    /// One proposal.
    pub fn get(&self, id: &B256) -> Option<&Proposal> {
        self.proposals.get(id)
    }

    /// The open proposals `me` proposed (to gossip again).
    pub fn open_of(&self, me: NodeIndex) -> impl Iterator<Item = &GovernanceProposal> {
        self.proposals
            .values()
            .filter(move |p| p.status.is_open() && p.proposal.proposer == me)
            .map(|p| &p.proposal)
    }

    /// This node's operator proposes: the proposal is checked and kept open, or refused.
    pub fn propose(&mut self, p: GovernanceProposal, now_ms: u64) -> Result<B256, ProposalError> {
        if !self.signed_by_proposer(&p) {
            return Err(ProposalError::Unsigned(p.proposer));
        }
        self.check(&p, now_ms)?;
        let id = p.id();
        if self.proposals.contains_key(&id) {
            return Err(ProposalError::Conflict(id));
        }
        self.insert(p, now_ms, Status::Open)?;
        Ok(id)
    }

    /// A proposal from gossip (its proposer's, or relayed): kept open, or kept with the
    /// reason this node refuses it; dropped unless its proposer signed it. Returns whether
    /// it is new here.
    pub fn received(&mut self, p: GovernanceProposal, now_ms: u64) -> bool {
        if self.proposals.contains_key(&p.id()) || !self.signed_by_proposer(&p) {
            return false;
        }
        let status = match self.check(&p, now_ms) {
            Ok(()) => Status::Open,
            Err(ProposalError::Conflict(other)) => Status::Conflicting(other),
            Err(ProposalError::TooManyOpen | ProposalError::Full) => return false,
            Err(e) => Status::Rejected(e.to_string()),
        };
        self.insert(p, now_ms, status).is_ok()
    }

    /// This node's operator approves proposal `id` by `digest`: the actions to sign, one
    /// per target vault.
    pub fn approve(
        &mut self,
        id: B256,
        digest: B256,
        now_ms: u64,
    ) -> Result<Vec<(VaultId, ThresholdAction)>, ProposalError> {
        self.expire(now_ms);
        let p = self
            .proposals
            .get_mut(&id)
            .ok_or(ProposalError::NotFound(id))?;
        if p.digest != digest {
            return Err(ProposalError::DigestMismatch {
                id,
                expected: p.digest,
                given: digest,
            });
        }
        if !p.status.is_open() {
            return Err(ProposalError::NotOpen {
                id,
                status: p.status.clone(),
            });
        }
        p.approved_here = true;
        Ok(p.proposal
            .targets
            .iter()
            .filter(|v| p.targets.get(&v.chain_id).is_none_or(|t| !t.executed))
            .map(|v| (*v, p.proposal.action.clone()))
            .collect())
    }

    /// Node `from` attested the action `id` on `vault`.
    pub fn attested(&mut self, from: NodeIndex, vault: &VaultId, id: &B256) {
        if let Some(t) = self.target_mut(vault, id) {
            t.approvers.insert(from);
        }
    }

    /// The action `id` executed on `vault` (in `tx_hash`, when known).
    pub fn executed(&mut self, vault: &VaultId, id: &B256, tx_hash: Option<B256>) {
        let Some(t) = self.target_mut(vault, id) else {
            return;
        };
        t.executed = true;
        t.tx_hash = t.tx_hash.or(tx_hash);
        if let Some(p) = self.proposals.get_mut(id)
            && p.targets.values().all(|t| t.executed)
        {
            p.status = Status::Executed;
        }
    }

    /// Open proposals past their deadline expire.
    pub fn expire(&mut self, now_ms: u64) {
        let now_s = now_ms / 1000;
        for p in self.proposals.values_mut() {
            if p.status.is_open() && now_s > p.proposal.action.deadline() {
                p.status = Status::Expired;
            }
        }
    }

    fn signed_by_proposer(&self, p: &GovernanceProposal) -> bool {
        self.consortium
            .node(p.proposer)
            .is_some_and(|n| p.signed_by(n.guardian))
    }

    fn target_mut(&mut self, vault: &VaultId, id: &B256) -> Option<&mut TargetProgress> {
        let p = self.proposals.get_mut(id)?;
        if !p.proposal.targets.contains(vault) {
            return None;
        }
        p.targets.get_mut(&vault.chain_id)
    }

    /// The checks of the module's invariants, conflicts last.
    fn check(&self, p: &GovernanceProposal, now_ms: u64) -> Result<(), ProposalError> {
        p.check()?;
        for v in &p.targets {
            match self.vaults.get(&v.chain_id) {
                None => return Err(ProposalError::UnknownChain(v.chain_id)),
                Some(a) if *a != v.address => {
                    return Err(ProposalError::UnknownVault {
                        chain_id: v.chain_id,
                        address: v.address,
                    });
                }
                Some(_) => {}
            }
        }
        if let ThresholdAction::RotateGuardians(r) = &p.action {
            self.consortium
                .rebind(&r.guardians)
                .map_err(|e| ProposalError::Unfollowable(e.to_string()))?;
            let left_out: Vec<u64> = self
                .vaults
                .keys()
                .filter(|c| !p.targets.iter().any(|v| v.chain_id == **c))
                .copied()
                .collect();
            if !left_out.is_empty() {
                return Err(ProposalError::PartialRotation(left_out));
            }
        }
        let now_s = now_ms / 1000;
        let deadline = p.action.deadline();
        if deadline < now_s || deadline > now_s.saturating_add(self.max_ttl_s) {
            return Err(ProposalError::Deadline {
                deadline,
                now_s,
                max_ttl_s: self.max_ttl_s,
            });
        }
        let chains: BTreeSet<u64> = p.targets.iter().map(|v| v.chain_id).collect();
        let conflict = self.proposals.values().find(|o| {
            o.status.is_open()
                && topic(&o.proposal.action) == topic(&p.action)
                && o.proposal
                    .targets
                    .iter()
                    .any(|v| chains.contains(&v.chain_id))
        });
        if let Some(o) = conflict {
            return Err(ProposalError::Conflict(o.proposal.id()));
        }
        Ok(())
    }

    fn insert(
        &mut self,
        p: GovernanceProposal,
        now_ms: u64,
        status: Status,
    ) -> Result<(), ProposalError> {
        if status.is_open() && self.open_of(p.proposer).count() >= MAX_OPEN_PER_NODE {
            return Err(ProposalError::TooManyOpen);
        }
        if self.proposals.len() >= MAX_PROPOSALS {
            let oldest_ended = self
                .proposals
                .values()
                .filter(|o| !o.status.is_open())
                .min_by_key(|o| o.seen_ms)
                .map(|o| o.proposal.id());
            match oldest_ended {
                Some(id) => {
                    self.proposals.remove(&id);
                }
                None => return Err(ProposalError::Full),
            }
        }
        let targets = p
            .targets
            .iter()
            .map(|v| (v.chain_id, TargetProgress::default()))
            .collect();
        let entry = Proposal {
            digest: p.digest(),
            seen_ms: now_ms,
            approved_here: false,
            status,
            targets,
            proposal: p,
        };
        self.proposals.insert(entry.proposal.id(), entry);
        debug_assert!(self.proposals.len() <= MAX_PROPOSALS);
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use alloy::primitives::U256;
    use alloy::signers::local::PrivateKeySigner;
    use backstop_contracts::eip712::{RotateGuardians, SetLimits, SetMember, sign_digest};
    use backstop_types::NodeInfo;
    use backstop_types::governance::proposal_digest;

    const NOW: u64 = 1_000_000_000;

    fn vault(c: u64) -> VaultId {
        VaultId {
            chain_id: c,
            address: Address::with_last_byte(c as u8),
        }
    }

    fn key(node: NodeIndex) -> PrivateKeySigner {
        PrivateKeySigner::from_bytes(&B256::repeat_byte(node as u8 + 1)).unwrap()
    }

    fn table() -> Governance {
        // Node i (in identity order) has guardian key(i).
        let mut identities: Vec<[u8; 32]> = (1..=4u8)
            .map(|i| {
                ed25519_dalek::SigningKey::from_bytes(&[i; 32])
                    .verifying_key()
                    .to_bytes()
            })
            .collect();
        identities.sort();
        let nodes = identities
            .into_iter()
            .zip(0..)
            .map(|(identity, i)| NodeInfo {
                identity,
                guardian: key(i).address(),
            })
            .collect();
        Governance::new(
            (1..=3).map(|c| (c, vault(c).address)).collect(),
            Consortium::new(nodes).unwrap(),
            86_400,
        )
    }

    fn limits(id: u8, deadline: u64) -> ThresholdAction {
        ThresholdAction::SetLimits(SetLimits {
            bucketCapacity: 1_000,
            refillPerSecond: 1,
            reserveFloor: U256::from(5),
            withdrawCooldown: 60,
            emergencyDuration: 600,
            id: B256::repeat_byte(id),
            deadline,
        })
    }

    fn signed_as(
        proposer: NodeIndex,
        signer: NodeIndex,
        targets: &[u64],
        action: ThresholdAction,
    ) -> GovernanceProposal {
        let targets: Vec<VaultId> = targets.iter().map(|c| vault(*c)).collect();
        let signature = sign_digest(&key(signer), proposal_digest(&targets, &action)).unwrap();
        GovernanceProposal {
            proposer,
            targets,
            action,
            signature,
        }
    }

    fn proposal(
        proposer: NodeIndex,
        targets: &[u64],
        action: ThresholdAction,
    ) -> GovernanceProposal {
        signed_as(proposer, proposer, targets, action)
    }

    fn deadline() -> u64 {
        NOW / 1000 + 3_600
    }

    #[test]
    fn an_approval_by_the_exact_digest_yields_one_action_per_target() {
        let mut g = table();
        let p = proposal(0, &[1, 2, 3], limits(1, deadline()));
        let digest = p.digest();
        let id = g.propose(p, NOW).unwrap();
        let mut wrong = digest;
        wrong.0[31] ^= 1;
        assert!(matches!(
            g.approve(id, wrong, NOW),
            Err(ProposalError::DigestMismatch { .. })
        ));
        assert!(!g.get(&id).unwrap().approved_here);
        let actions = g.approve(id, digest, NOW).unwrap();
        assert_eq!(
            actions.iter().map(|(v, _)| v.chain_id).collect::<Vec<_>>(),
            [1, 2, 3]
        );
        assert!(g.get(&id).unwrap().approved_here);
        assert_eq!(
            g.approve(B256::ZERO, digest, NOW),
            Err(ProposalError::NotFound(B256::ZERO))
        );
    }

    #[test]
    fn it_executes_when_every_target_did_and_expires_otherwise() {
        let mut g = table();
        let p = proposal(0, &[1, 2], limits(1, deadline()));
        let id = g.propose(p.clone(), NOW).unwrap();
        g.attested(2, &vault(1), &id);
        g.attested(2, &vault(9), &id); // not a target: ignored
        assert_eq!(g.get(&id).unwrap().targets[&1].approvers.len(), 1);
        g.executed(&vault(1), &id, Some(B256::repeat_byte(0xaa)));
        assert_eq!(g.get(&id).unwrap().status, Status::Open);
        // Approving now asks only for the vault still to do.
        let left = g.approve(id, p.digest(), NOW).unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].0, vault(2));
        g.executed(&vault(2), &id, None);
        assert_eq!(g.get(&id).unwrap().status, Status::Executed);

        let q = proposal(0, &[3], limits(2, deadline()));
        let qd = q.digest();
        let qid = g.propose(q, NOW).unwrap();
        g.expire((deadline() + 1) * 1000);
        assert_eq!(g.get(&qid).unwrap().status, Status::Expired);
        assert!(matches!(
            g.approve(qid, qd, (deadline() + 1) * 1000),
            Err(ProposalError::NotOpen { .. })
        ));
    }

    #[test]
    fn unknown_vaults_bad_deadlines_and_conflicts_are_refused() {
        let mut g = table();
        assert_eq!(
            g.propose(proposal(0, &[4], limits(1, deadline())), NOW),
            Err(ProposalError::UnknownChain(4))
        );
        let mut p = proposal(0, &[1], limits(1, deadline()));
        p.targets[0].address = Address::with_last_byte(0xee);
        // The signature covers the targets: changed after signing, it no longer holds.
        assert_eq!(g.propose(p.clone(), NOW), Err(ProposalError::Unsigned(0)));
        p.signature = sign_digest(&key(0), p.digest()).unwrap();
        assert!(matches!(
            g.propose(p, NOW),
            Err(ProposalError::UnknownVault { chain_id: 1, .. })
        ));
        assert!(matches!(
            g.propose(proposal(0, &[1], limits(1, NOW / 1000 + 86_401)), NOW),
            Err(ProposalError::Deadline { .. })
        ));
        assert!(matches!(
            g.propose(proposal(0, &[1], limits(1, NOW / 1000 - 1)), NOW),
            Err(ProposalError::Deadline { .. })
        ));
        let first = g
            .propose(proposal(0, &[1, 2], limits(1, deadline())), NOW)
            .unwrap();
        assert_eq!(
            g.propose(proposal(0, &[2, 3], limits(2, deadline())), NOW),
            Err(ProposalError::Conflict(first))
        );
        // A member change on the same chains is another topic.
        let member = ThresholdAction::SetMember(SetMember {
            member: B256::repeat_byte(7),
            recipient: Address::with_last_byte(9),
            homeChainId: 1,
            cap: 10,
            deductible: 1,
            coverageLimit: 100,
            coverageWindow: 3_600,
            id: B256::repeat_byte(3),
            deadline: deadline(),
        });
        assert!(g.propose(proposal(0, &[1], member), NOW).is_ok());
        // A peer's conflicting or invalid proposal is kept, with why it is not open.
        assert!(g.received(proposal(1, &[1], limits(4, deadline())), NOW));
        assert_eq!(
            g.get(&B256::repeat_byte(4)).unwrap().status,
            Status::Conflicting(first)
        );
        let bad = ThresholdAction::RotateGuardians(RotateGuardians {
            guardians: vec![Address::with_last_byte(1)],
            threshold: 2,
            pauseThreshold: 1,
            id: B256::repeat_byte(5),
            deadline: deadline(),
        });
        assert!(g.received(proposal(1, &[1], bad), NOW));
        assert!(matches!(
            g.get(&B256::repeat_byte(5)).unwrap().status,
            Status::Rejected(_)
        ));
        // A proposal under another node's name (signed by node 2, naming node 1), one by a
        // node outside the consortium, or under a known id, is dropped; one relayed with its
        // proposer's signature is taken in.
        assert!(!g.received(signed_as(1, 2, &[3], limits(6, deadline())), NOW));
        assert!(!g.received(proposal(9, &[3], limits(6, deadline())), NOW));
        assert!(!g.received(proposal(1, &[3], limits(4, deadline())), NOW));
        assert!(g.received(proposal(2, &[3], limits(6, deadline())), NOW));
        assert!(g.open().any(|p| p.id() == B256::repeat_byte(6)));
    }

    #[test]
    fn a_members_standing_on_its_home_vault_is_read_from_the_chain() {
        use crate::view::tests::{HOME, member, member_mut, snap, view_with};
        let view = view_with(vec![]);
        let standing = |s: &ChainSnapshot| registrations(s, &view).collect::<Vec<_>>();
        let mut s = snap(HOME, 10, 1_000, 0);
        assert_eq!(standing(&s), [(member(), Registration::Registered)]);
        member_mut(&mut s).record.cap = 0;
        assert_eq!(standing(&s), [(member(), Registration::Disabled)]);
        member_mut(&mut s).record.home_chain_id = 9;
        assert_eq!(standing(&s), [(member(), Registration::HomeDiffers(9))]);
        member_mut(&mut s).record.recipient = Address::ZERO;
        assert_eq!(standing(&s), [(member(), Registration::NotOnVault)]);
        // Members homed elsewhere are not judged on this chain.
        assert!(standing(&snap(HOME + 1, 10, 1_000, 0)).is_empty());
    }

    #[test]
    fn changes_are_checked_against_the_view_and_get_the_cores_id_and_deadline() {
        use crate::view::tests::{HOME, member, snap, view_with};
        let view = view_with(vec![snap(HOME, 10, 1_000, 0), snap(HOME + 1, 10, 500, 0)]);
        let set = |cap: u128, home: u64| {
            GovernanceChange::Action(ThresholdAction::SetMember(SetMember {
                member: B256::repeat_byte(8),
                recipient: Address::with_last_byte(9),
                homeChainId: home,
                cap,
                deductible: 1,
                coverageLimit: 100,
                coverageWindow: 3_600,
                id: B256::ZERO,
                deadline: 0,
            }))
        };
        let id = B256::repeat_byte(0x42);
        let ok = action_of(set(1_500, HOME), id, 77, &view).unwrap();
        assert_eq!((ok.id(), ok.deadline()), (id, 77));
        assert_eq!(
            action_of(set(1_501, HOME), id, 77, &view),
            Err(ProposalError::CapAbovePool {
                cap: 1_501,
                pool: U256::from(1_500)
            })
        );
        assert_eq!(
            action_of(set(1, 99), id, 77, &view),
            Err(ProposalError::UnknownChain(99))
        );
        // Disabling keeps what the home vault records and zeroes the terms.
        let ThresholdAction::SetMember(d) =
            action_of(GovernanceChange::DisableMember(member()), id, 77, &view).unwrap()
        else {
            panic!("a disable is a member change");
        };
        assert_eq!(
            (d.homeChainId, d.cap, d.coverageLimit, d.coverageWindow),
            (HOME, 0, 0, 86_400)
        );
        assert_eq!(
            action_of(GovernanceChange::DisableMember(B256::ZERO), id, 77, &view),
            Err(ProposalError::UnknownMember(B256::ZERO))
        );
    }

    #[test]
    fn the_table_is_bounded_and_keeps_open_proposals() {
        let mut g = table();
        // Each node may hold a few open proposals; ended ones make room for new ones.
        for i in 0..MAX_OPEN_PER_NODE as u8 {
            let member = ThresholdAction::SetMember(SetMember {
                member: B256::repeat_byte(i + 1),
                recipient: Address::with_last_byte(9),
                homeChainId: 1,
                cap: 10,
                deductible: 1,
                coverageLimit: 100,
                coverageWindow: 3_600,
                id: B256::repeat_byte(i + 1),
                deadline: deadline(),
            });
            g.propose(proposal(0, &[1], member), NOW).unwrap();
        }
        assert_eq!(
            g.propose(proposal(0, &[1], limits(0xf0, deadline())), NOW),
            Err(ProposalError::TooManyOpen)
        );
        // Rejected proposals from a flooding peer only evict ended ones.
        for i in 0..200u16 {
            let mut id = [0u8; 32];
            id[..2].copy_from_slice(&i.to_be_bytes());
            id[31] = 0xcc;
            let mut bad = limits(0, deadline());
            if let ThresholdAction::SetLimits(l) = &mut bad {
                l.id = B256::from(id);
                l.emergencyDuration = 0;
            }
            g.received(proposal(1, &[2], bad), NOW + u64::from(i));
        }
        assert_eq!(g.proposals().count(), MAX_PROPOSALS);
        assert_eq!(g.open_of(0).count(), MAX_OPEN_PER_NODE);
    }

    #[test]
    fn a_rotation_is_one_key_replaced_on_every_vault() {
        let mut g = table();
        let rotation = |id: u8, guardians: Vec<Address>| {
            let mut guardians = guardians;
            guardians.sort();
            ThresholdAction::RotateGuardians(RotateGuardians {
                guardians,
                threshold: 3,
                pauseThreshold: 2,
                id: B256::repeat_byte(id),
                deadline: deadline(),
            })
        };
        let mut one = (0..4).map(|i| key(i).address()).collect::<Vec<_>>();
        one[3] = Address::repeat_byte(0x77);
        let mut two = one.clone();
        two[2] = Address::repeat_byte(0x78);
        let err = g
            .propose(proposal(0, &[1, 2, 3], rotation(1, two)), NOW)
            .unwrap_err();
        assert!(
            matches!(&err, ProposalError::Unfollowable(e) if e.contains("one key replaced")),
            "{err}"
        );
        let err = g
            .propose(proposal(0, &[1, 2], rotation(2, one.clone())), NOW)
            .unwrap_err();
        assert_eq!(err, ProposalError::PartialRotation(vec![3]));
        assert!(
            g.propose(proposal(0, &[1, 2, 3], rotation(3, one.clone())), NOW)
                .is_ok()
        );

        // Once the vaults rotated node 3's key, its proposals are signed with the new key.
        let new_key = PrivateKeySigner::from_bytes(&B256::repeat_byte(0x55)).unwrap();
        let mut set = g.consortium.guardians();
        set[3] = new_key.address();
        let rotated = g.consortium.rebind(&set).unwrap();
        let mut p = proposal(3, &[1], limits(9, deadline()));
        p.signature = sign_digest(&new_key, proposal_digest(&p.targets, &p.action)).unwrap();
        assert!(
            !g.received(p.clone(), NOW),
            "not node 3's key before the rotation"
        );
        g.follow_guardians(rotated);
        assert!(g.received(p, NOW), "the new key is node 3's");
    }
}
