//! The consortium: the fixed set of nodes allowed to connect and to sign gossip.
//!
//! Each node is an ed25519 identity key (its libp2p PeerId and the signer of its gossip
//! envelopes) and a guardian address (its secp256k1 chain signer). Nodes are sorted by
//! public key bytes; a node's *index* is its position in that order, the same on every
//! node given the same configuration.
//!
//! Invariants: no two nodes share a key or a guardian address; no key is a weak (small
//! order) ed25519 point; the set is not empty. Thresholds follow `docs/design.md`:
//! `f = (n - 1) / 3`, `t = n - f`, `p = f + 1`.

use std::collections::HashMap;

use alloy::primitives::Address;
use ed25519_dalek::VerifyingKey;

/// Why a consortium configuration is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConsortiumError {
    /// No nodes.
    #[error("the consortium has no nodes")]
    Empty,
    /// The same ed25519 key appears twice.
    #[error("duplicate node key {0}")]
    DuplicateKey(String),
    /// The same guardian address appears twice.
    #[error("duplicate guardian {0}")]
    DuplicateGuardian(Address),
    /// A key is not a valid ed25519 point, or a weak one.
    #[error("invalid node key {0}")]
    InvalidKey(String),
}

/// One node of the consortium.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsortiumNode {
    /// Its ed25519 identity key.
    pub public_key: VerifyingKey,
    /// Its guardian (chain signer) address.
    pub guardian: Address,
}

impl ConsortiumNode {
    /// Builds a node from raw key bytes, refusing invalid and weak keys.
    pub fn from_bytes(public_key: [u8; 32], guardian: Address) -> Result<Self, ConsortiumError> {
        let key = VerifyingKey::from_bytes(&public_key)
            .map_err(|_| ConsortiumError::InvalidKey(hex(&public_key)))?;
        Ok(Self {
            public_key: key,
            guardian,
        })
    }
}

/// The sorted node set.
#[derive(Clone, Debug)]
pub struct Consortium {
    nodes: Vec<ConsortiumNode>,
    by_key: HashMap<[u8; 32], usize>,
}

impl Consortium {
    /// Checks and sorts `nodes`.
    pub fn new(mut nodes: Vec<ConsortiumNode>) -> Result<Self, ConsortiumError> {
        if nodes.is_empty() {
            return Err(ConsortiumError::Empty);
        }
        nodes.sort_by_key(|n| n.public_key.to_bytes());
        let mut by_key = HashMap::with_capacity(nodes.len());
        let mut guardians = std::collections::HashSet::with_capacity(nodes.len());
        for (i, n) in nodes.iter().enumerate() {
            let bytes = n.public_key.to_bytes();
            if n.public_key.is_weak() {
                return Err(ConsortiumError::InvalidKey(hex(&bytes)));
            }
            if by_key.insert(bytes, i).is_some() {
                return Err(ConsortiumError::DuplicateKey(hex(&bytes)));
            }
            if !guardians.insert(n.guardian) {
                return Err(ConsortiumError::DuplicateGuardian(n.guardian));
            }
        }
        Ok(Self { nodes, by_key })
    }

    /// Number of nodes, `n`.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Always false (a consortium has at least one node).
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Byzantine nodes tolerated, `f = (n - 1) / 3`.
    pub fn f(&self) -> usize {
        (self.len() - 1) / 3
    }

    /// Threshold to pay or lift, `t = n - f`.
    pub fn t(&self) -> usize {
        self.len() - self.f()
    }

    /// Threshold to freeze, pause or alert, `p = f + 1`.
    pub fn p(&self) -> usize {
        self.f() + 1
    }

    /// The nodes, by index.
    pub fn nodes(&self) -> &[ConsortiumNode] {
        &self.nodes
    }

    /// Node `index`.
    pub fn node(&self, index: usize) -> Option<&ConsortiumNode> {
        self.nodes.get(index)
    }

    /// Index of the node with this public key.
    pub fn index_of_key(&self, key: &[u8; 32]) -> Option<usize> {
        self.by_key.get(key).copied()
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;

    fn node(seed: u8) -> ConsortiumNode {
        ConsortiumNode {
            public_key: SigningKey::from_bytes(&[seed; 32]).verifying_key(),
            guardian: Address::repeat_byte(seed),
        }
    }

    #[test]
    fn thresholds_follow_design() {
        for (n, f, t, p) in [(1, 0, 1, 1), (4, 1, 3, 2), (7, 2, 5, 3), (10, 3, 7, 4)] {
            let c = Consortium::new((1..=n as u8).map(node).collect()).unwrap();
            assert_eq!((c.len(), c.f(), c.t(), c.p()), (n, f, t, p));
        }
    }

    #[test]
    fn sorted_by_key_and_indexed() {
        let c = Consortium::new(vec![node(3), node(1), node(2)]).unwrap();
        let keys: Vec<_> = c.nodes().iter().map(|n| n.public_key.to_bytes()).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(c.index_of_key(k), Some(i));
        }
        assert_eq!(c.index_of_key(&[0; 32]), None);
    }

    #[test]
    fn refuses_duplicates_weak_and_empty() {
        assert_eq!(Consortium::new(vec![]).unwrap_err(), ConsortiumError::Empty);
        assert!(matches!(
            Consortium::new(vec![node(1), node(1)]).unwrap_err(),
            ConsortiumError::DuplicateKey(_)
        ));
        let mut dup_guardian = node(2);
        dup_guardian.guardian = Address::repeat_byte(1);
        assert_eq!(
            Consortium::new(vec![node(1), dup_guardian]).unwrap_err(),
            ConsortiumError::DuplicateGuardian(Address::repeat_byte(1))
        );
        // The identity point is a weak key.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let weak = ConsortiumNode::from_bytes(identity, Address::ZERO).unwrap();
        assert!(matches!(
            Consortium::new(vec![weak]).unwrap_err(),
            ConsortiumError::InvalidKey(_)
        ));
    }
}
