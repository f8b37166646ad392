//! The gossip wire codec: [`Message`] (defined once, in `backstop-types`) from and to its
//! protobuf form.
//!
//! [`Wire::decode`] turns hostile payload bytes into a [`Message`], or a [`PayloadError`];
//! it never panics and never allocates more than the input's size allows.
//!
//! Invariants:
//! - Every fixed-size field has exactly its length (32-byte hashes and uint256, 20-byte
//!   addresses, 16-byte uint128, 65-byte guardian signatures with `v` in {27, 28}); anything else is
//!   rejected, never truncated or padded.
//! - Repeated fields and the evidence blob are bounded ([`MAX_LEGS`], [`MAX_PINNED`],
//!   [`MAX_EVIDENCE_LEN`], [`MAX_TARGETS`], [`MAX_GUARDIANS`]).
//! - `decode(encode(m)) == m` for every message `encode` produces.
//!
//! Guardian signatures are only checked for shape here; whether they recover to the
//! claimed guardian, and whether that guardian may sign, is the agreement layer's check.

use alloy::primitives::{Address, B256, Signature, U256};
use backstop_contracts::eip712::{
    ClearAlert, Draw, FreezeMember, GuardianSignature, Leg, LegRelease, Pause, RaiseAlert,
    RotateGuardians, SetLimits, SetMember, UnfreezeMember, Unpause, VaultId,
};
use backstop_proto::gossip::v1 as pb;
use backstop_types::governance::{MAX_GUARDIANS, MAX_TARGETS};
use backstop_types::{
    ActionAttestation, ActionProposal, DrawAttestation, DrawProposal, GapObservation,
    GovernanceProposal, IncidentKey, LegAttestation, Message, NodeIndex, PinnedBlock, Signal,
    SignalKind, ThresholdAction,
};
pub use backstop_types::{MAX_EVIDENCE_LEN, MAX_LEGS, MAX_PINNED};
use prost::Message as _;

/// Why payload bytes are not a valid [`Message`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    /// The bytes are not a protobuf `Payload`.
    #[error("undecodable payload: {0}")]
    Decode(String),
    /// The payload carries no body.
    #[error("empty payload")]
    Empty,
    /// A required message field is absent.
    #[error("missing field {0}")]
    Missing(&'static str),
    /// A fixed-size field has the wrong length.
    #[error("field {field} has {actual} bytes, expected {expected}")]
    Length {
        /// Field name.
        field: &'static str,
        /// Required length.
        expected: usize,
        /// Length received.
        actual: usize,
    },
    /// A bounded field is too large.
    #[error("field {field} has {actual} entries, at most {max} allowed")]
    TooMany {
        /// Field name.
        field: &'static str,
        /// Bound.
        max: usize,
        /// Size received.
        actual: usize,
    },
    /// A field's value is out of its domain.
    #[error("field {field} is invalid: {reason}")]
    Invalid {
        /// Field name.
        field: &'static str,
        /// Why.
        reason: &'static str,
    },
}

fn kind_from_wire(v: i32) -> Result<SignalKind, PayloadError> {
    use SignalKind as S;
    use pb::SignalKind as K;
    match K::try_from(v) {
        Ok(K::OracleDeviation) => Ok(S::OracleDeviation),
        Ok(K::OracleStale) => Ok(S::OracleStale),
        Ok(K::AbnormalOutflow) => Ok(S::AbnormalOutflow),
        Ok(K::Depeg) => Ok(S::Depeg),
        Ok(K::ChainHalt) => Ok(S::ChainHalt),
        Ok(K::Operator) => Ok(S::Operator),
        Ok(K::PayoutNotBooked) => Ok(S::PayoutNotBooked),
        Ok(K::MarginTrend) => Ok(S::MarginTrend),
        Ok(K::CoverageLow) => Ok(S::CoverageLow),
        Ok(K::VolatilitySpike) => Ok(S::VolatilitySpike),
        Ok(K::Unspecified) | Err(_) => Err(PayloadError::Invalid {
            field: "signal.kind",
            reason: "unknown kind",
        }),
    }
}

fn kind_to_wire(kind: SignalKind) -> i32 {
    use SignalKind as S;
    use pb::SignalKind as K;
    (match kind {
        S::OracleDeviation => K::OracleDeviation,
        S::OracleStale => K::OracleStale,
        S::AbnormalOutflow => K::AbnormalOutflow,
        S::Depeg => K::Depeg,
        S::ChainHalt => K::ChainHalt,
        S::Operator => K::Operator,
        S::PayoutNotBooked => K::PayoutNotBooked,
        S::MarginTrend => K::MarginTrend,
        S::CoverageLow => K::CoverageLow,
        S::VolatilitySpike => K::VolatilitySpike,
    }) as i32
}

/// The protobuf wire form of [`Message`]: the one codec of gossip payloads.
pub trait Wire: Sized {
    /// Decodes and checks payload bytes.
    fn decode(bytes: &[u8]) -> Result<Self, PayloadError>;
    /// Canonical protobuf encoding (what [`crate::envelope::sign`] signs).
    fn encode(&self) -> Vec<u8>;
}

impl Wire for Message {
    fn decode(bytes: &[u8]) -> Result<Self, PayloadError> {
        let payload =
            pb::Payload::decode(bytes).map_err(|e| PayloadError::Decode(e.to_string()))?;
        from_proto(payload)
    }

    fn encode(&self) -> Vec<u8> {
        to_proto(self).encode_to_vec()
    }
}

fn from_proto(p: pb::Payload) -> Result<Message, PayloadError> {
    use pb::payload::Body;
    Ok(match p.body.ok_or(PayloadError::Empty)? {
        Body::Signal(s) => {
            if s.evidence.len() > MAX_EVIDENCE_LEN {
                return Err(PayloadError::TooMany {
                    field: "signal.evidence",
                    max: MAX_EVIDENCE_LEN,
                    actual: s.evidence.len(),
                });
            }
            Message::Signal(Signal {
                kind: kind_from_wire(s.kind)?,
                subject: b256("signal.subject", &s.subject)?,
                observed_at_ms: s.observed_at_ms,
                evidence: s.evidence.into(),
            })
        }
        Body::GapObservation(g) => Message::GapObservation(GapObservation {
            key: incident(g.incident)?,
            home_chain_id: g.home_chain_id,
            block_number: g.block_number,
            block_hash: b256("gap.block_hash", &g.block_hash)?,
            assets: u256("gap.assets", &g.assets)?,
            liabilities: u256("gap.liabilities", &g.liabilities)?,
        }),
        Body::DrawProposal(d) => {
            bounded("proposal.pinned", d.pinned.len(), MAX_PINNED)?;
            Message::DrawProposal(DrawProposal {
                key: incident(d.incident)?,
                attempt: d.attempt,
                proposer: NodeIndex::try_from(d.proposer_index).map_err(|_| {
                    PayloadError::Invalid {
                        field: "proposal.proposer_index",
                        reason: "above the largest node index",
                    }
                })?,
                pinned: d
                    .pinned
                    .iter()
                    .map(|b| {
                        Ok(PinnedBlock {
                            chain_id: b.chain_id,
                            number: b.number,
                            hash: b256("pinned.hash", &b.hash)?,
                        })
                    })
                    .collect::<Result<_, PayloadError>>()?,
                draw: draw(d.draw.ok_or(PayloadError::Missing("proposal.draw"))?)?,
            })
        }
        Body::DrawAttestation(a) => Message::DrawAttestation(DrawAttestation {
            key: incident(a.incident)?,
            attempt: a.attempt,
            digest: b256("attestation.draw_digest", &a.draw_digest)?,
            signature: guardian_sig(a.signature)?,
        }),
        Body::LegAttestation(l) => Message::LegAttestation(LegAttestation {
            vault: vault(l.vault)?,
            release: leg_release(l.release.ok_or(PayloadError::Missing("leg.release"))?)?,
            signature: guardian_sig(l.signature)?,
        }),
        Body::ActionProposal(a) => Message::ActionProposal(ActionProposal {
            vault: vault(a.vault)?,
            action: action(a.action)?,
        }),
        Body::ActionAttestation(a) => Message::ActionAttestation(ActionAttestation {
            vault: vault(a.vault)?,
            action: action(a.action)?,
            signature: guardian_sig(a.signature)?,
        }),
        Body::GovernanceProposal(g) => {
            bounded("governance.targets", g.targets.len(), MAX_TARGETS)?;
            Message::GovernanceProposal(GovernanceProposal {
                proposer: NodeIndex::try_from(g.proposer_index).map_err(|_| {
                    PayloadError::Invalid {
                        field: "governance.proposer_index",
                        reason: "above the largest node index",
                    }
                })?,
                targets: g
                    .targets
                    .into_iter()
                    .map(|v| vault(Some(v)))
                    .collect::<Result<_, _>>()?,
                action: action(g.action)?,
                signature: guardian_sig(g.signature)?,
            })
        }
    })
}

fn to_proto(m: &Message) -> pb::Payload {
    use pb::payload::Body;
    let body = match m {
        Message::Signal(s) => Body::Signal(pb::Signal {
            kind: kind_to_wire(s.kind),
            subject: s.subject.to_vec(),
            observed_at_ms: s.observed_at_ms,
            evidence: s.evidence.to_vec(),
        }),
        Message::GapObservation(g) => Body::GapObservation(pb::GapObservation {
            incident: Some(incident_pb(&g.key)),
            home_chain_id: g.home_chain_id,
            block_number: g.block_number,
            block_hash: g.block_hash.to_vec(),
            assets: g.assets.to_be_bytes::<32>().to_vec(),
            liabilities: g.liabilities.to_be_bytes::<32>().to_vec(),
        }),
        Message::DrawProposal(d) => Body::DrawProposal(pb::DrawProposal {
            incident: Some(incident_pb(&d.key)),
            attempt: d.attempt,
            proposer_index: u32::from(d.proposer),
            pinned: d
                .pinned
                .iter()
                .map(|b| pb::PinnedBlock {
                    chain_id: b.chain_id,
                    number: b.number,
                    hash: b.hash.to_vec(),
                })
                .collect(),
            draw: Some(draw_pb(&d.draw)),
        }),
        Message::DrawAttestation(a) => Body::DrawAttestation(pb::DrawAttestation {
            incident: Some(incident_pb(&a.key)),
            attempt: a.attempt,
            draw_digest: a.digest.to_vec(),
            signature: Some(guardian_sig_pb(&a.signature)),
        }),
        Message::LegAttestation(l) => Body::LegAttestation(pb::LegAttestation {
            vault: Some(vault_pb(&l.vault)),
            release: Some(pb::LegRelease {
                draw_hash: l.release.drawHash.to_vec(),
                member: l.release.member.to_vec(),
                seq: l.release.seq,
                amount: l.release.amount.to_be_bytes::<32>().to_vec(),
                deadline: l.release.deadline,
            }),
            signature: Some(guardian_sig_pb(&l.signature)),
        }),
        Message::ActionProposal(a) => Body::ActionProposal(pb::ActionProposal {
            vault: Some(vault_pb(&a.vault)),
            action: Some(action_pb(&a.action)),
        }),
        Message::ActionAttestation(a) => Body::ActionAttestation(pb::ActionAttestation {
            vault: Some(vault_pb(&a.vault)),
            action: Some(action_pb(&a.action)),
            signature: Some(guardian_sig_pb(&a.signature)),
        }),
        Message::GovernanceProposal(g) => Body::GovernanceProposal(pb::GovernanceProposal {
            proposer_index: u32::from(g.proposer),
            targets: g.targets.iter().map(vault_pb).collect(),
            action: Some(action_pb(&g.action)),
            signature: Some(guardian_sig_pb(&g.signature)),
        }),
    };
    pb::Payload { body: Some(body) }
}

fn exact<const N: usize>(field: &'static str, bytes: &[u8]) -> Result<[u8; N], PayloadError> {
    bytes.try_into().map_err(|_| PayloadError::Length {
        field,
        expected: N,
        actual: bytes.len(),
    })
}

fn b256(field: &'static str, bytes: &[u8]) -> Result<B256, PayloadError> {
    exact::<32>(field, bytes).map(B256::from)
}

fn u256(field: &'static str, bytes: &[u8]) -> Result<U256, PayloadError> {
    exact::<32>(field, bytes).map(|b| U256::from_be_bytes(b))
}

fn u128_be(field: &'static str, bytes: &[u8]) -> Result<u128, PayloadError> {
    exact::<16>(field, bytes).map(u128::from_be_bytes)
}

fn u8_of(field: &'static str, v: u32) -> Result<u8, PayloadError> {
    u8::try_from(v).map_err(|_| PayloadError::Invalid {
        field,
        reason: "above 255",
    })
}

fn address(field: &'static str, bytes: &[u8]) -> Result<Address, PayloadError> {
    exact::<20>(field, bytes).map(Address::from)
}

fn bounded(field: &'static str, actual: usize, max: usize) -> Result<(), PayloadError> {
    if actual > max {
        return Err(PayloadError::TooMany { field, max, actual });
    }
    Ok(())
}

fn incident(p: Option<pb::IncidentKey>) -> Result<IncidentKey, PayloadError> {
    let p = p.ok_or(PayloadError::Missing("incident"))?;
    Ok(IncidentKey {
        member: b256("incident.member", &p.member)?,
        seq: p.seq,
    })
}

fn incident_pb(k: &IncidentKey) -> pb::IncidentKey {
    pb::IncidentKey {
        member: k.member.to_vec(),
        seq: k.seq,
    }
}

fn vault(p: Option<pb::VaultId>) -> Result<VaultId, PayloadError> {
    let p = p.ok_or(PayloadError::Missing("vault"))?;
    Ok(VaultId {
        chain_id: p.chain_id,
        address: address("vault.address", &p.address)?,
    })
}

fn vault_pb(v: &VaultId) -> pb::VaultId {
    pb::VaultId {
        chain_id: v.chain_id,
        address: v.address.to_vec(),
    }
}

fn guardian_sig(p: Option<pb::GuardianSignature>) -> Result<GuardianSignature, PayloadError> {
    let p = p.ok_or(PayloadError::Missing("signature"))?;
    let raw = exact::<65>("signature.signature", &p.signature)?;
    if raw[64] != 27 && raw[64] != 28 {
        return Err(PayloadError::Invalid {
            field: "signature.signature",
            reason: "v must be 27 or 28",
        });
    }
    let signature = Signature::from_raw_array(&raw).map_err(|_| PayloadError::Invalid {
        field: "signature.signature",
        reason: "bad parity",
    })?;
    Ok(GuardianSignature {
        signer: address("signature.signer", &p.signer)?,
        signature,
    })
}

fn guardian_sig_pb(s: &GuardianSignature) -> pb::GuardianSignature {
    pb::GuardianSignature {
        signer: s.signer.to_vec(),
        signature: s.signature.as_bytes().to_vec(),
    }
}

fn draw(p: pb::Draw) -> Result<Draw, PayloadError> {
    bounded("draw.legs", p.legs.len(), MAX_LEGS)?;
    Ok(Draw {
        member: b256("draw.member", &p.member)?,
        seq: p.seq,
        gap: u256("draw.gap", &p.gap)?,
        amount: u256("draw.amount", &p.amount)?,
        legs: p
            .legs
            .iter()
            .map(|l| {
                Ok(Leg {
                    chainId: l.chain_id,
                    vault: address("leg.vault", &l.vault)?,
                    amount: u256("leg.amount", &l.amount)?,
                })
            })
            .collect::<Result<_, PayloadError>>()?,
        deadline: p.deadline,
        legDeadline: p.leg_deadline,
    })
}

fn draw_pb(d: &Draw) -> pb::Draw {
    pb::Draw {
        member: d.member.to_vec(),
        seq: d.seq,
        gap: d.gap.to_be_bytes::<32>().to_vec(),
        amount: d.amount.to_be_bytes::<32>().to_vec(),
        legs: d
            .legs
            .iter()
            .map(|l| pb::Leg {
                chain_id: l.chainId,
                vault: l.vault.to_vec(),
                amount: l.amount.to_be_bytes::<32>().to_vec(),
            })
            .collect(),
        deadline: d.deadline,
        leg_deadline: d.legDeadline,
    }
}

fn leg_release(p: pb::LegRelease) -> Result<LegRelease, PayloadError> {
    Ok(LegRelease {
        drawHash: b256("release.draw_hash", &p.draw_hash)?,
        member: b256("release.member", &p.member)?,
        seq: p.seq,
        amount: u256("release.amount", &p.amount)?,
        deadline: p.deadline,
    })
}

fn action(p: Option<pb::Action>) -> Result<ThresholdAction, PayloadError> {
    use pb::action::Kind;
    let kind = p
        .and_then(|a| a.kind)
        .ok_or(PayloadError::Missing("action"))?;
    Ok(match kind {
        Kind::FreezeMember(a) => ThresholdAction::Freeze(FreezeMember {
            member: b256("freeze.member", &a.member)?,
            id: b256("freeze.id", &a.id)?,
            deadline: a.deadline,
        }),
        Kind::UnfreezeMember(a) => ThresholdAction::Unfreeze(UnfreezeMember {
            member: b256("unfreeze.member", &a.member)?,
            id: b256("unfreeze.id", &a.id)?,
            deadline: a.deadline,
        }),
        Kind::Pause(a) => ThresholdAction::Pause(Pause {
            id: b256("pause.id", &a.id)?,
            deadline: a.deadline,
        }),
        Kind::Unpause(a) => ThresholdAction::Unpause(Unpause {
            id: b256("unpause.id", &a.id)?,
            deadline: a.deadline,
        }),
        Kind::RaiseAlert(a) => ThresholdAction::RaiseAlert(RaiseAlert {
            subject: b256("alert.subject", &a.subject)?,
            level: u8_of("alert.level", a.level)?,
            id: b256("alert.id", &a.id)?,
            deadline: a.deadline,
        }),
        Kind::ClearAlert(a) => ThresholdAction::ClearAlert(ClearAlert {
            subject: b256("clear.subject", &a.subject)?,
            id: b256("clear.id", &a.id)?,
            deadline: a.deadline,
        }),
        Kind::SetMember(a) => ThresholdAction::SetMember(SetMember {
            member: b256("set_member.member", &a.member)?,
            recipient: address("set_member.recipient", &a.recipient)?,
            homeChainId: a.home_chain_id,
            cap: u128_be("set_member.cap", &a.cap)?,
            deductible: u128_be("set_member.deductible", &a.deductible)?,
            coverageLimit: u128_be("set_member.coverage_limit", &a.coverage_limit)?,
            coverageWindow: a.coverage_window,
            id: b256("set_member.id", &a.id)?,
            deadline: a.deadline,
        }),
        Kind::SetLimits(a) => ThresholdAction::SetLimits(SetLimits {
            bucketCapacity: u128_be("set_limits.bucket_capacity", &a.bucket_capacity)?,
            refillPerSecond: u128_be("set_limits.refill_per_second", &a.refill_per_second)?,
            reserveFloor: u256("set_limits.reserve_floor", &a.reserve_floor)?,
            withdrawCooldown: a.withdraw_cooldown,
            emergencyDuration: a.emergency_duration,
            id: b256("set_limits.id", &a.id)?,
            deadline: a.deadline,
        }),
        Kind::RotateGuardians(a) => {
            bounded("rotate.guardians", a.guardians.len(), MAX_GUARDIANS)?;
            ThresholdAction::RotateGuardians(RotateGuardians {
                guardians: a
                    .guardians
                    .iter()
                    .map(|g| address("rotate.guardians", g))
                    .collect::<Result<_, _>>()?,
                threshold: u8_of("rotate.threshold", a.threshold)?,
                pauseThreshold: u8_of("rotate.pause_threshold", a.pause_threshold)?,
                id: b256("rotate.id", &a.id)?,
                deadline: a.deadline,
            })
        }
    })
}

fn action_pb(a: &ThresholdAction) -> pb::Action {
    use pb::action::Kind;
    let kind = match a {
        ThresholdAction::Freeze(a) => Kind::FreezeMember(pb::FreezeMember {
            member: a.member.to_vec(),
            id: a.id.to_vec(),
            deadline: a.deadline,
        }),
        ThresholdAction::Unfreeze(a) => Kind::UnfreezeMember(pb::UnfreezeMember {
            member: a.member.to_vec(),
            id: a.id.to_vec(),
            deadline: a.deadline,
        }),
        ThresholdAction::Pause(a) => Kind::Pause(pb::Pause {
            id: a.id.to_vec(),
            deadline: a.deadline,
        }),
        ThresholdAction::Unpause(a) => Kind::Unpause(pb::Unpause {
            id: a.id.to_vec(),
            deadline: a.deadline,
        }),
        ThresholdAction::RaiseAlert(a) => Kind::RaiseAlert(pb::RaiseAlert {
            subject: a.subject.to_vec(),
            level: u32::from(a.level),
            id: a.id.to_vec(),
            deadline: a.deadline,
        }),
        ThresholdAction::ClearAlert(a) => Kind::ClearAlert(pb::ClearAlert {
            subject: a.subject.to_vec(),
            id: a.id.to_vec(),
            deadline: a.deadline,
        }),
        ThresholdAction::SetMember(a) => Kind::SetMember(pb::SetMember {
            member: a.member.to_vec(),
            recipient: a.recipient.to_vec(),
            home_chain_id: a.homeChainId,
            cap: a.cap.to_be_bytes().to_vec(),
            deductible: a.deductible.to_be_bytes().to_vec(),
            coverage_limit: a.coverageLimit.to_be_bytes().to_vec(),
            coverage_window: a.coverageWindow,
            id: a.id.to_vec(),
            deadline: a.deadline,
        }),
        ThresholdAction::SetLimits(a) => Kind::SetLimits(pb::SetLimits {
            bucket_capacity: a.bucketCapacity.to_be_bytes().to_vec(),
            refill_per_second: a.refillPerSecond.to_be_bytes().to_vec(),
            reserve_floor: a.reserveFloor.to_be_bytes::<32>().to_vec(),
            withdraw_cooldown: a.withdrawCooldown,
            emergency_duration: a.emergencyDuration,
            id: a.id.to_vec(),
            deadline: a.deadline,
        }),
        ThresholdAction::RotateGuardians(a) => Kind::RotateGuardians(pb::RotateGuardians {
            guardians: a.guardians.iter().map(|g| g.to_vec()).collect(),
            threshold: u32::from(a.threshold),
            pause_threshold: u32::from(a.pauseThreshold),
            id: a.id.to_vec(),
            deadline: a.deadline,
        }),
    };
    pb::Action { kind: Some(kind) }
}
