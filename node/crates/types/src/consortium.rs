//! The consortium: the sorted node set, its thresholds, the proposer of each attempt and
//! the submitter rotation of each certificate.
//!
//! Invariants kept here:
//! - a [`Consortium`] holds 1 ≤ n ≤ [`MAX_NODES`] nodes sorted by identity key, with
//!   distinct identities, each a valid ed25519 key that is not of small order, and distinct
//!   guardian addresses;
//! - [`Thresholds::of`] is the one definition of f = ⌊(n − 1) / 3⌋, t = n − f and
//!   p = f + 1; everything that needs a threshold (config validation, the agreement core,
//!   gossip validation) derives it from there;
//! - the proposer of `(member, seq, attempt)` and the submitter rotation of a digest are
//!   pure functions of their inputs and the consortium, so every node computes the same.

use std::collections::{BTreeMap, BTreeSet};

use alloy::primitives::{Address, B256, U256, keccak256};
use ed25519_dalek::VerifyingKey;

use crate::incident::{Attempt, IncidentKey};

/// Largest consortium (node indices fit a `u16`, thresholds a `u8` on chain).
pub const MAX_NODES: usize = 255;

/// Index of a node in the sorted consortium.
pub type NodeIndex = u16;

/// The thresholds of a consortium of `n` nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Thresholds {
    /// Nodes.
    pub n: usize,
    /// Most byzantine nodes tolerated: ⌊(n − 1) / 3⌋.
    pub f: usize,
    /// Signatures needed to pay or to lift: n − f.
    pub t: usize,
    /// Signatures needed to freeze, pause or raise an alert: f + 1.
    pub p: usize,
}

impl Thresholds {
    /// The thresholds for `n ≥ 1` nodes (`n = 0` is treated as 1).
    pub const fn of(n: usize) -> Self {
        let n = if n == 0 { 1 } else { n };
        let f = (n - 1) / 3;
        Self {
            n,
            f,
            t: n - f,
            p: f + 1,
        }
    }
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
    /// An identity is no usable ed25519 public key.
    #[error("identity key {0} is not a valid ed25519 public key")]
    InvalidKey(String),
    /// Two nodes share an identity key.
    #[error("identity key {0} listed twice")]
    DuplicateIdentity(String),
    /// Two nodes share a guardian address.
    #[error("guardian {0} listed twice")]
    DuplicateGuardian(Address),
    /// A guardian set that is not this consortium's with one node's key replaced.
    #[error(
        "the guardian set {given:?} is not the consortium's with one key replaced: guardians rotated out {removed:?}, new guardians {added:?} (a node follows one replacement at a time; a change of the node set needs the configuration's consortium updated)"
    )]
    NotOneReplacement {
        /// The set given.
        given: Vec<Address>,
        /// Guardians of the consortium not in it.
        removed: Vec<Address>,
        /// Guardians in it not of the consortium.
        added: Vec<Address>,
    },
}

/// The sorted node set and its thresholds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Consortium {
    nodes: Vec<NodeInfo>,
    keys: Vec<VerifyingKey>,
    by_guardian: BTreeMap<Address, NodeIndex>,
    thresholds: Thresholds,
}

fn hex(bytes: &[u8]) -> String {
    alloy::primitives::hex::encode_prefixed(bytes)
}

impl Consortium {
    /// Sorts `nodes` by identity and checks sizes, keys, identities and guardians.
    pub fn new(mut nodes: Vec<NodeInfo>) -> Result<Self, ConsortiumError> {
        if nodes.is_empty() || nodes.len() > MAX_NODES {
            return Err(ConsortiumError::Size(nodes.len()));
        }
        nodes.sort_by_key(|a| a.identity);
        if let Some(w) = nodes.windows(2).find(|w| w[0].identity == w[1].identity) {
            return Err(ConsortiumError::DuplicateIdentity(hex(&w[0].identity)));
        }
        let keys = nodes
            .iter()
            .map(|n| match VerifyingKey::from_bytes(&n.identity) {
                Ok(k) if !k.is_weak() => Ok(k),
                _ => Err(ConsortiumError::InvalidKey(hex(&n.identity))),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut by_guardian = BTreeMap::new();
        for (i, node) in nodes.iter().enumerate() {
            // MAX_NODES < u16::MAX, so the index fits.
            if by_guardian.insert(node.guardian, i as NodeIndex).is_some() {
                return Err(ConsortiumError::DuplicateGuardian(node.guardian));
            }
        }
        let thresholds = Thresholds::of(nodes.len());
        Ok(Self {
            nodes,
            keys,
            by_guardian,
            thresholds,
        })
    }

    /// The nodes, sorted by identity.
    pub fn nodes(&self) -> &[NodeInfo] {
        &self.nodes
    }

    /// The nodes' identity keys, in the same order.
    pub fn verifying_keys(&self) -> &[VerifyingKey] {
        &self.keys
    }

    /// Number of nodes.
    pub fn n(&self) -> usize {
        self.nodes.len()
    }

    /// Its thresholds.
    pub fn thresholds(&self) -> Thresholds {
        self.thresholds
    }

    /// Most byzantine nodes tolerated: ⌊(n − 1) / 3⌋.
    pub fn f(&self) -> usize {
        self.thresholds.f
    }

    /// Signatures needed to pay or to lift: n − f.
    pub fn t(&self) -> usize {
        self.thresholds.t
    }

    /// Signatures needed to freeze, pause or raise an alert: f + 1.
    pub fn p(&self) -> usize {
        self.thresholds.p
    }

    /// The guardians, in node order.
    pub fn guardians(&self) -> Vec<Address> {
        self.nodes.iter().map(|n| n.guardian).collect()
    }

    /// Whether `guardians` (any order) is exactly this consortium's guardian set.
    pub fn has_guardian_set(&self, guardians: &[Address]) -> bool {
        guardians.len() == self.n() && guardians.iter().all(|g| self.by_guardian.contains_key(g))
    }

    /// This consortium with its guardians following `guardians` (a vault's set, any order):
    /// itself when the sets are equal, or the same nodes with the one guardian not in
    /// `guardians` replaced by the one address of `guardians` not in the consortium. Any
    /// other difference cannot be mapped to nodes without more than the chain holds, and
    /// is refused naming it.
    pub fn rebind(&self, guardians: &[Address]) -> Result<Self, ConsortiumError> {
        let given: BTreeSet<Address> = guardians.iter().copied().collect();
        let removed: Vec<Address> = self
            .by_guardian
            .keys()
            .filter(|g| !given.contains(*g))
            .copied()
            .collect();
        let added: Vec<Address> = given
            .iter()
            .filter(|g| !self.by_guardian.contains_key(*g))
            .copied()
            .collect();
        let refuse = || ConsortiumError::NotOneReplacement {
            given: guardians.to_vec(),
            removed: removed.clone(),
            added: added.clone(),
        };
        if given.len() != guardians.len() || given.len() != self.n() {
            return Err(refuse());
        }
        match (removed.as_slice(), added.as_slice()) {
            ([], []) => Ok(self.clone()),
            ([old], [new]) if *new != Address::ZERO => {
                let mut nodes = self.nodes.clone();
                for n in nodes.iter_mut().filter(|n| n.guardian == *old) {
                    n.guardian = *new;
                }
                Self::new(nodes)
            }
            _ => Err(refuse()),
        }
    }

    /// Index of the node whose guardian is `guardian`.
    pub fn index_of_guardian(&self, guardian: &Address) -> Option<NodeIndex> {
        self.by_guardian.get(guardian).copied()
    }

    /// Index of the node whose identity key is `identity`.
    pub fn index_of_identity(&self, identity: &[u8; 32]) -> Option<NodeIndex> {
        // Sorted by identity; the index fits (n ≤ MAX_NODES).
        self.nodes
            .binary_search_by(|n| n.identity.cmp(identity))
            .ok()
            .map(|i| i as NodeIndex)
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use ed25519_dalek::SigningKey;

    fn info(i: u8) -> NodeInfo {
        NodeInfo {
            identity: SigningKey::from_bytes(&[i; 32]).verifying_key().to_bytes(),
            guardian: Address::with_last_byte(i + 1),
        }
    }

    fn consortium(n: usize) -> Consortium {
        Consortium::new((0..n).map(|i| info(i as u8)).collect()).unwrap()
    }

    #[test]
    fn thresholds_follow_n() {
        for (n, f, t, p) in [(1, 0, 1, 1), (4, 1, 3, 2), (7, 2, 5, 3), (10, 3, 7, 4)] {
            let c = consortium(n);
            assert_eq!((c.f(), c.t(), c.p()), (f, t, p), "n = {n}");
            assert_eq!(Thresholds::of(n), Thresholds { n, f, t, p });
        }
        assert_eq!(Thresholds::of(19).t, 13);
    }

    #[test]
    fn sorted_and_indexed_by_identity_and_guardian() {
        let c = consortium(7);
        assert!(c.nodes().windows(2).all(|w| w[0].identity < w[1].identity));
        for (i, node) in c.nodes().iter().enumerate() {
            assert_eq!(c.index_of_identity(&node.identity), Some(i as NodeIndex));
            assert_eq!(c.index_of_guardian(&node.guardian), Some(i as NodeIndex));
            assert_eq!(c.verifying_keys()[i].to_bytes(), node.identity);
        }
        assert_eq!(c.index_of_identity(&info(9).identity), None);
    }

    #[test]
    fn rejects_sizes_duplicates_and_bad_keys() {
        assert_eq!(Consortium::new(vec![]), Err(ConsortiumError::Size(0)));
        let (a, b) = (info(1), info(2));
        assert!(matches!(
            Consortium::new(vec![a, a]),
            Err(ConsortiumError::DuplicateIdentity(_))
        ));
        let same_guardian = NodeInfo {
            guardian: a.guardian,
            ..b
        };
        assert_eq!(
            Consortium::new(vec![a, same_guardian]),
            Err(ConsortiumError::DuplicateGuardian(a.guardian))
        );
        // The curve's identity point: a key of small order.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let weak = NodeInfo { identity, ..b };
        assert!(matches!(
            Consortium::new(vec![a, weak]),
            Err(ConsortiumError::InvalidKey(_))
        ));
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

    #[test]
    fn rebind_follows_one_replaced_guardian_and_refuses_anything_else() {
        let c = consortium(4);
        let mut set = c.guardians();
        set.reverse();
        assert_eq!(c.rebind(&set).unwrap(), c, "the same set in any order");

        let old = c.nodes()[2].guardian;
        let new = Address::repeat_byte(0xee);
        let mut set = c.guardians();
        set[2] = new;
        let r = c.rebind(&set).unwrap();
        assert_eq!(r.n(), 4);
        assert_eq!(r.index_of_guardian(&new), Some(2), "node 2 keeps its index");
        assert_eq!(r.index_of_guardian(&old), None);
        assert_eq!(r.nodes()[2].identity, c.nodes()[2].identity);
        assert_eq!(r.nodes()[0], c.nodes()[0]);

        let mut two = set.clone();
        two[0] = Address::repeat_byte(0xdd);
        let err = c.rebind(&two).unwrap_err().to_string();
        assert!(err.contains("one key replaced"), "{err}");
        assert!(c.rebind(&set[..3]).is_err(), "a smaller set");
        let mut more = c.guardians();
        more.push(new);
        assert!(c.rebind(&more).is_err(), "a larger set");
        let mut dup = c.guardians();
        dup[1] = dup[0];
        assert!(c.rebind(&dup).is_err(), "a duplicated guardian");
        let mut zero = c.guardians();
        zero[3] = Address::ZERO;
        assert!(c.rebind(&zero).is_err(), "the zero address");
    }
}
