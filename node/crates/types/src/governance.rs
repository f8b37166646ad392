//! Governance proposals: a change to the consortium's vaults (a member, the limits, the
//! guardian set) that one operator proposes and every other operator approves by its
//! digest before its node signs.
//!
//! Invariants kept here:
//! - a proposal's digest binds the exact action and the exact set of target vaults: it
//!   hashes the action's EIP-712 digest under each target's domain, in ascending target
//!   order, so an approval of one proposal never signs another, nor the same change on a
//!   vault the proposal did not name;
//! - a proposal carries its proposer's guardian signature over that digest, so any node can
//!   relay it and nobody can put a proposal under another node's name. The digest is
//!   tagged ([`proposal_digest`]): it is never a digest a vault verifies, so this signature
//!   authorizes nothing on chain;
//! - [`GovernanceProposal::check`] refuses what the vault would refuse (zero recipient,
//!   coverage out of range, limits out of range, unordered or oversized guardian sets) and
//!   what the consortium must not adopt: thresholds other than t = n − f and p = f + 1 of
//!   the new set ([`Thresholds::of`], the one definition of the fault bound).

use alloy::primitives::{Address, B256, keccak256};
use backstop_contracts::eip712::{GuardianSignature, VaultId};

use crate::consortium::{NodeIndex, Thresholds};
use crate::message::ThresholdAction;

/// Most vaults one proposal targets (one per chain).
pub const MAX_TARGETS: usize = 64;
/// Most guardians a vault holds (the vault's `MAX_GUARDIANS`).
pub const MAX_GUARDIANS: usize = 32;
/// Longest coverage window, withdrawal cooldown or emergency duration (the vault's
/// `MAX_DURATION`: 365 days, in seconds).
pub const MAX_DURATION_S: u64 = 365 * 24 * 3600;
/// Largest cumulative coverage limit a vault stores (`type(uint96).max`).
pub const MAX_COVERAGE_LIMIT: u128 = (1u128 << 96) - 1;

/// Domain tag of a proposal digest (never an EIP-712 digest a vault verifies).
const DIGEST_TAG: &[u8] = b"backstop.governance.proposal.v1";

/// A governance change and the vaults it targets, as its proposer gossips it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GovernanceProposal {
    /// The proposing node.
    pub proposer: NodeIndex,
    /// Target vaults, ascending, distinct, one per chain.
    pub targets: Vec<VaultId>,
    /// The change: [`ThresholdAction::SetMember`], [`ThresholdAction::SetLimits`] or
    /// [`ThresholdAction::RotateGuardians`]; its id is the proposal's id on every vault.
    pub action: ThresholdAction,
    /// The proposer's guardian signature over [`GovernanceProposal::digest`].
    pub signature: GuardianSignature,
}

/// What operators approve for `action` on `targets`: the action's EIP-712 digest under
/// each target's domain, hashed in target order behind a domain tag.
pub fn proposal_digest(targets: &[VaultId], action: &ThresholdAction) -> B256 {
    let mut buf = Vec::with_capacity(DIGEST_TAG.len() + targets.len() * 60);
    buf.extend_from_slice(DIGEST_TAG);
    for vault in targets {
        buf.extend_from_slice(&vault.chain_id.to_be_bytes());
        buf.extend_from_slice(vault.address.as_slice());
        buf.extend_from_slice(action.digest(vault).as_slice());
    }
    keccak256(buf)
}

/// Why a proposal is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GovernanceError {
    /// The action is an emergency or lift action, not a governance change.
    #[error("a {0} is not a governance change")]
    NotGovernance(&'static str),
    /// No target vault.
    #[error("no target vault")]
    NoTargets,
    /// More targets than [`MAX_TARGETS`].
    #[error("{0} target vaults, at most {MAX_TARGETS} allowed")]
    TooManyTargets(usize),
    /// Targets out of order, repeated, or two on one chain.
    #[error("target vaults must be one per chain, in ascending chain order")]
    TargetsNotAscending,
    /// A zero recipient or home chain.
    #[error("member {member}: {what} must not be zero")]
    ZeroField {
        /// The member.
        member: B256,
        /// Which field.
        what: &'static str,
    },
    /// Coverage window or limit outside what the vault stores.
    #[error(
        "member {member}: coverage window {window_s} s must be 1..={MAX_DURATION_S} and the coverage limit at most {MAX_COVERAGE_LIMIT}, got {limit}"
    )]
    Coverage {
        /// The member.
        member: B256,
        /// Window asked for.
        window_s: u64,
        /// Limit asked for.
        limit: u128,
    },
    /// A deductible above a non-zero cap: the member could never be paid.
    #[error("member {member}: deductible {deductible} above cap {cap}")]
    DeductibleAboveCap {
        /// The member.
        member: B256,
        /// Deductible.
        deductible: u128,
        /// Cap.
        cap: u128,
    },
    /// Emergency duration zero or above the vault's bound, or cooldown above it.
    #[error(
        "limits: emergency duration must be 1..={MAX_DURATION_S} s and the withdrawal cooldown at most that, got {emergency_s} s and {cooldown_s} s"
    )]
    Limits {
        /// Emergency duration asked for.
        emergency_s: u64,
        /// Cooldown asked for.
        cooldown_s: u64,
    },
    /// An empty or oversized guardian set.
    #[error("guardian set of {0}: 1 to {MAX_GUARDIANS} guardians allowed")]
    GuardianCount(usize),
    /// The zero address in the guardian set.
    #[error("guardian set: the zero address is no guardian")]
    ZeroGuardian,
    /// A guardian listed twice.
    #[error("guardian set: {0} listed twice")]
    DuplicateGuardian(Address),
    /// Guardians not in ascending order (the vault requires it).
    #[error("guardian set: {0} listed after a higher address (ascending order required)")]
    GuardiansNotAscending(Address),
    /// Thresholds other than the consortium's rule for the new set.
    #[error(
        "thresholds t = {t}, p = {p} for {n} guardians: the consortium requires t = n - f = {want_t} and p = f + 1 = {want_p}"
    )]
    Thresholds {
        /// Guardians.
        n: usize,
        /// t asked for.
        t: u8,
        /// p asked for.
        p: u8,
        /// n − f.
        want_t: usize,
        /// f + 1.
        want_p: usize,
    },
}

impl GovernanceProposal {
    /// The proposal's id: its action id, the same on every target vault.
    pub fn id(&self) -> B256 {
        self.action.id()
    }

    /// What operators approve ([`proposal_digest`]).
    pub fn digest(&self) -> B256 {
        proposal_digest(&self.targets, &self.action)
    }

    /// Whether the signature is `guardian`'s over the digest.
    pub fn signed_by(&self, guardian: Address) -> bool {
        self.signature.signer == guardian && self.signature.verify(self.digest()).is_ok()
    }

    /// Checks the targets and the change (see the module's invariants).
    pub fn check(&self) -> Result<(), GovernanceError> {
        check_targets(&self.targets)?;
        check_action(&self.action)
    }
}

fn check_targets(targets: &[VaultId]) -> Result<(), GovernanceError> {
    if targets.is_empty() {
        return Err(GovernanceError::NoTargets);
    }
    if targets.len() > MAX_TARGETS {
        return Err(GovernanceError::TooManyTargets(targets.len()));
    }
    if targets.windows(2).any(|w| w[0].chain_id >= w[1].chain_id) {
        return Err(GovernanceError::TargetsNotAscending);
    }
    Ok(())
}

/// Checks a governance change on its own (no targets): what the vault would refuse and the
/// consortium's threshold rule for a new guardian set.
pub fn check_action(action: &ThresholdAction) -> Result<(), GovernanceError> {
    match action {
        ThresholdAction::SetMember(m) => {
            let zero = |what| GovernanceError::ZeroField {
                member: m.member,
                what,
            };
            if m.recipient == Address::ZERO {
                return Err(zero("recipient"));
            }
            if m.homeChainId == 0 {
                return Err(zero("home chain"));
            }
            if m.coverageWindow == 0
                || m.coverageWindow > MAX_DURATION_S
                || m.coverageLimit > MAX_COVERAGE_LIMIT
            {
                return Err(GovernanceError::Coverage {
                    member: m.member,
                    window_s: m.coverageWindow,
                    limit: m.coverageLimit,
                });
            }
            if m.cap != 0 && m.deductible > m.cap {
                return Err(GovernanceError::DeductibleAboveCap {
                    member: m.member,
                    deductible: m.deductible,
                    cap: m.cap,
                });
            }
            Ok(())
        }
        ThresholdAction::SetLimits(l) => {
            if l.emergencyDuration == 0
                || l.emergencyDuration > MAX_DURATION_S
                || l.withdrawCooldown > MAX_DURATION_S
            {
                return Err(GovernanceError::Limits {
                    emergency_s: l.emergencyDuration,
                    cooldown_s: l.withdrawCooldown,
                });
            }
            Ok(())
        }
        ThresholdAction::RotateGuardians(r) => {
            check_guardians(&r.guardians)?;
            let want = Thresholds::of(r.guardians.len());
            if usize::from(r.threshold) != want.t || usize::from(r.pauseThreshold) != want.p {
                return Err(GovernanceError::Thresholds {
                    n: r.guardians.len(),
                    t: r.threshold,
                    p: r.pauseThreshold,
                    want_t: want.t,
                    want_p: want.p,
                });
            }
            Ok(())
        }
        other => Err(GovernanceError::NotGovernance(other.name())),
    }
}

fn check_guardians(set: &[Address]) -> Result<(), GovernanceError> {
    if set.is_empty() || set.len() > MAX_GUARDIANS {
        return Err(GovernanceError::GuardianCount(set.len()));
    }
    let mut previous = Address::ZERO;
    for (i, g) in set.iter().enumerate() {
        if *g == Address::ZERO {
            return Err(GovernanceError::ZeroGuardian);
        }
        if set[..i].contains(g) {
            return Err(GovernanceError::DuplicateGuardian(*g));
        }
        if *g < previous {
            return Err(GovernanceError::GuardiansNotAscending(*g));
        }
        previous = *g;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use alloy::primitives::U256;
    use alloy::signers::local::PrivateKeySigner;
    use backstop_contracts::eip712::{Pause, RotateGuardians, SetLimits, SetMember, sign_digest};

    fn vault(c: u64) -> VaultId {
        VaultId {
            chain_id: c,
            address: Address::with_last_byte(c as u8),
        }
    }

    fn member() -> SetMember {
        SetMember {
            member: B256::repeat_byte(7),
            recipient: Address::with_last_byte(9),
            homeChainId: 1,
            cap: 1_000,
            deductible: 10,
            coverageLimit: 5_000,
            coverageWindow: 86_400,
            id: B256::repeat_byte(1),
            deadline: 100,
        }
    }

    fn rotation(n: u8, t: u8, p: u8) -> ThresholdAction {
        ThresholdAction::RotateGuardians(RotateGuardians {
            guardians: (1..=n).map(Address::with_last_byte).collect(),
            threshold: t,
            pauseThreshold: p,
            id: B256::repeat_byte(2),
            deadline: 100,
        })
    }

    fn key() -> PrivateKeySigner {
        PrivateKeySigner::from_bytes(&B256::repeat_byte(3)).unwrap()
    }

    fn proposal(targets: Vec<VaultId>, action: ThresholdAction) -> GovernanceProposal {
        let signature = sign_digest(&key(), proposal_digest(&targets, &action)).unwrap();
        GovernanceProposal {
            proposer: 0,
            targets,
            action,
            signature,
        }
    }

    #[test]
    fn the_digest_binds_the_change_and_every_target() {
        let p = proposal(
            vec![vault(1), vault(2)],
            ThresholdAction::SetMember(member()),
        );
        let mut other = member();
        other.cap += 1;
        let changed = proposal(vec![vault(1), vault(2)], ThresholdAction::SetMember(other));
        let fewer = proposal(vec![vault(1)], ThresholdAction::SetMember(member()));
        let moved = proposal(
            vec![vault(1), vault(3)],
            ThresholdAction::SetMember(member()),
        );
        assert_ne!(p.digest(), changed.digest());
        assert_ne!(p.digest(), fewer.digest());
        assert_ne!(p.digest(), moved.digest());
        assert_eq!(p.digest(), p.clone().digest());
        assert_eq!(p.id(), B256::repeat_byte(1));
        // Signed by its proposer, and by nobody else; a changed target breaks the signature.
        assert!(p.signed_by(key().address()));
        assert!(!p.signed_by(Address::with_last_byte(1)));
        let mut forged = p.clone();
        forged.targets.pop();
        assert!(!forged.signed_by(key().address()));
    }

    #[test]
    fn rotations_need_the_consortium_thresholds_of_the_new_set() {
        // 4 guardians: f = 1, t = 3, p = 2.
        let ok = proposal(vec![vault(1)], rotation(4, 3, 2));
        assert_eq!(ok.check(), Ok(()));
        let err = proposal(vec![vault(1)], rotation(4, 2, 2))
            .check()
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "thresholds t = 2, p = 2 for 4 guardians: the consortium requires t = n - f = 3 and p = f + 1 = 2"
        );
        assert_eq!(
            proposal(vec![vault(1)], rotation(0, 1, 1)).check(),
            Err(GovernanceError::GuardianCount(0))
        );
        let mut dup = rotation(3, 3, 1);
        if let ThresholdAction::RotateGuardians(r) = &mut dup {
            r.guardians[2] = r.guardians[1];
        }
        assert_eq!(
            proposal(vec![vault(1)], dup).check(),
            Err(GovernanceError::DuplicateGuardian(Address::with_last_byte(
                2
            )))
        );
        let mut unordered = rotation(3, 3, 1);
        if let ThresholdAction::RotateGuardians(r) = &mut unordered {
            r.guardians.swap(0, 2);
        }
        assert!(matches!(
            proposal(vec![vault(1)], unordered).check(),
            Err(GovernanceError::GuardiansNotAscending(_))
        ));
    }

    #[test]
    fn members_limits_and_targets_out_of_range_are_refused() {
        let mut m = member();
        m.recipient = Address::ZERO;
        assert!(matches!(
            check_action(&ThresholdAction::SetMember(m)),
            Err(GovernanceError::ZeroField { .. })
        ));
        let mut m = member();
        m.coverageWindow = MAX_DURATION_S + 1;
        assert!(matches!(
            check_action(&ThresholdAction::SetMember(m)),
            Err(GovernanceError::Coverage { .. })
        ));
        let mut m = member();
        m.deductible = m.cap + 1;
        assert!(matches!(
            check_action(&ThresholdAction::SetMember(m)),
            Err(GovernanceError::DeductibleAboveCap { .. })
        ));
        let limits = SetLimits {
            bucketCapacity: 1,
            refillPerSecond: 1,
            reserveFloor: U256::ZERO,
            withdrawCooldown: 0,
            emergencyDuration: 0,
            id: B256::ZERO,
            deadline: 1,
        };
        assert!(matches!(
            check_action(&ThresholdAction::SetLimits(limits)),
            Err(GovernanceError::Limits { .. })
        ));
        let pause = ThresholdAction::Pause(Pause {
            id: B256::ZERO,
            deadline: 1,
        });
        assert_eq!(
            check_action(&pause),
            Err(GovernanceError::NotGovernance("pause"))
        );
        let set = ThresholdAction::SetMember(member());
        assert_eq!(
            proposal(vec![], set.clone()).check(),
            Err(GovernanceError::NoTargets)
        );
        assert_eq!(
            proposal(vec![vault(2), vault(1)], set.clone()).check(),
            Err(GovernanceError::TargetsNotAscending)
        );
        assert_eq!(
            proposal(vec![vault(1), vault(1)], set).check(),
            Err(GovernanceError::TargetsNotAscending)
        );
    }
}
