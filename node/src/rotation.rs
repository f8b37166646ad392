//! Following the vaults' guardian set, sans IO.
//!
//! The vaults hold the guardian set (`docs/design.md`, "Governance"); a rotation is executed
//! vault by vault. The node follows a set once every configured vault holds it: until then
//! the certificates it forms carry guardians that every vault still accepts or that the
//! rotated vaults refuse, and [`Machine::follow_guardians`] re-forms those at the switch.
//!
//! Invariants:
//! - one entry per configured vault: a set reported for any other vault is ignored;
//! - the consortium handed out is [`Consortium::rebind`] of the current one, so a rotation
//!   never changes the nodes, their order or the thresholds; a set that is not one key
//!   replaced is reported once, and the node keeps the set it has.
//!
//! [`Machine::follow_guardians`]: backstop_agreement::Machine::follow_guardians

use std::collections::BTreeMap;

use alloy::primitives::Address;
use backstop_contracts::eip712::VaultId;
use backstop_types::Consortium;
use backstop_types::governance::MAX_GUARDIANS;

/// What a reported guardian set means for the node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Follow {
    /// Nothing to do: the vaults are not all read yet, differ from each other (a rotation
    /// under way), or hold the consortium's set.
    Nothing,
    /// Every vault holds this rotation of the consortium: follow it.
    Rotate(Consortium),
    /// Every vault holds a set the node cannot map onto its nodes (said once per set).
    Refused(String),
}

/// The latest guardian set of each configured vault.
#[derive(Debug)]
pub struct GuardianFollower {
    vaults: BTreeMap<u64, VaultId>,
    sets: BTreeMap<u64, Vec<Address>>,
    refused: Option<Vec<Address>>,
}

impl GuardianFollower {
    /// A follower of the configured `vaults`, none read yet.
    pub fn new(vaults: impl IntoIterator<Item = VaultId>) -> Self {
        Self {
            vaults: vaults.into_iter().map(|v| (v.chain_id, v)).collect(),
            sets: BTreeMap::new(),
            refused: None,
        }
    }

    /// Records `vault`'s set, and says whether the node now follows a rotation.
    pub fn observe(
        &mut self,
        vault: VaultId,
        mut guardians: Vec<Address>,
        current: &Consortium,
    ) -> Follow {
        if self.vaults.get(&vault.chain_id) != Some(&vault) || guardians.len() > MAX_GUARDIANS {
            return Follow::Nothing;
        }
        guardians.sort();
        self.sets.insert(vault.chain_id, guardians);
        if self.sets.len() < self.vaults.len() {
            return Follow::Nothing;
        }
        let mut sets = self.sets.values();
        let Some(first) = sets.next() else {
            return Follow::Nothing;
        };
        if sets.any(|s| s != first) || current.has_guardian_set(first) {
            return Follow::Nothing;
        }
        match current.rebind(first) {
            Ok(c) => Follow::Rotate(c),
            Err(_) if self.refused.as_ref() == Some(first) => Follow::Nothing,
            Err(e) => {
                self.refused = Some(first.clone());
                Follow::Refused(format!(
                    "every vault holds a guardian set this node cannot follow: {e}"
                ))
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
pub(crate) mod testing {
    use alloy::primitives::Address;
    use backstop_types::{Consortium, NodeInfo};

    /// Four nodes: identity seeds 1..=4, guardians `0x0101…`, `0x0202…`, `0x0303…`, `0x0404…`.
    pub(crate) fn consortium() -> Consortium {
        let nodes = (1..=4u8)
            .map(|i| NodeInfo {
                identity: ed25519_dalek::SigningKey::from_bytes(&[i; 32])
                    .verifying_key()
                    .to_bytes(),
                guardian: Address::repeat_byte(i),
            })
            .collect();
        Consortium::new(nodes).unwrap()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::testing::consortium;
    use super::*;

    fn vault(chain_id: u64) -> VaultId {
        VaultId {
            chain_id,
            address: Address::repeat_byte(0xa0 + chain_id as u8),
        }
    }

    fn set(bytes: &[u8]) -> Vec<Address> {
        bytes.iter().map(|b| Address::repeat_byte(*b)).collect()
    }

    #[test]
    fn a_rotation_is_followed_once_every_vault_holds_it() {
        let c = consortium();
        let mut f = GuardianFollower::new([vault(1), vault(2)]);
        assert_eq!(f.observe(vault(1), set(&[1, 2, 3, 4]), &c), Follow::Nothing);
        assert_eq!(f.observe(vault(2), set(&[4, 3, 2, 1]), &c), Follow::Nothing);
        // Vault 1 rotated node 4's key first: vault 2 still holds the old set.
        assert_eq!(f.observe(vault(1), set(&[1, 2, 3, 9]), &c), Follow::Nothing);
        // A set reported for a vault not configured changes nothing.
        let stranger = VaultId {
            chain_id: 2,
            address: Address::repeat_byte(1),
        };
        assert_eq!(f.observe(stranger, set(&[1, 2, 3, 9]), &c), Follow::Nothing);
        let Follow::Rotate(r) = f.observe(vault(2), set(&[9, 1, 2, 3]), &c) else {
            panic!("every vault rotated");
        };
        assert_eq!(r, c.rebind(&set(&[1, 2, 3, 9])).unwrap());
        assert_eq!(f.observe(vault(2), set(&[9, 1, 2, 3]), &r), Follow::Nothing);
    }

    #[test]
    fn a_set_that_is_not_one_key_replaced_is_refused_once() {
        let c = consortium();
        let mut f = GuardianFollower::new([vault(1)]);
        let Follow::Refused(e) = f.observe(vault(1), set(&[1, 2, 8, 9]), &c) else {
            panic!("two keys replaced");
        };
        assert!(e.contains("cannot follow"), "{e}");
        assert_eq!(f.observe(vault(1), set(&[1, 2, 8, 9]), &c), Follow::Nothing);
        let too_many: Vec<Address> = (0..=MAX_GUARDIANS as u8)
            .map(Address::repeat_byte)
            .collect();
        assert_eq!(f.observe(vault(1), too_many, &c), Follow::Nothing);
    }
}
