//! Typed gossip payloads and their checked conversion from and to the wire format.
//!
//! [`GossipMessage`] is what the rest of the node sees: alloy primitives and the vault's
//! ABI structs from `backstop-contracts`. [`GossipMessage::decode`] turns hostile payload
//! bytes into one, or a [`PayloadError`]; it never panics and never allocates more than
//! the input's size allows.
//!
//! Invariants:
//! - Every fixed-size field has exactly its length (32-byte hashes and uint256, 20-byte
//!   addresses, 65-byte guardian signatures with `v` in {27, 28}); anything else is
//!   rejected, never truncated or padded.
//! - Repeated fields and the evidence blob are bounded ([`MAX_LEGS`], [`MAX_PINNED`],
//!   [`MAX_EVIDENCE_LEN`]).
//! - `decode(encode(m)) == m` for every message `encode` produces.
//!
//! Guardian signatures are only checked for shape here; whether they recover to the
//! claimed guardian, and whether that guardian may sign, is the agreement layer's check.

use alloy::primitives::{Address, B256, Bytes, Signature, U256};
use backstop_contracts::eip712::{
    ClearAlert, Draw, FreezeMember, GuardianSignature, Leg, LegRelease, Pause, RaiseAlert,
    Signable, UnfreezeMember, Unpause, VaultId,
};
use backstop_proto::gossip::v1 as pb;
use prost::Message as _;

/// Most legs a draw may carry (one per chain).
pub const MAX_LEGS: usize = 64;
/// Most pinned blocks a proposal may carry (one per chain).
pub const MAX_PINNED: usize = 64;
/// Largest evidence blob of a signal.
pub const MAX_EVIDENCE_LEN: usize = 1024;

/// Why payload bytes are not a valid [`GossipMessage`].
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

/// An incident: `(member, seq)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IncidentKey {
    /// Member identifier.
    pub member: B256,
    /// Draw sequence number on the member's home vault.
    pub seq: u64,
}

/// A block a proposer pinned its view of one chain to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PinnedBlock {
    /// Chain id.
    pub chain_id: u64,
    /// Block number.
    pub number: u64,
    /// Block hash.
    pub hash: B256,
}

/// What a detector observed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SignalKind {
    /// Oracle price deviates from its reference.
    OracleDeviation,
    /// Oracle price is stale.
    OracleStale,
    /// Abnormal outflow from a member's contracts (exploit suspected).
    AbnormalOutflow,
    /// Pool token depeg.
    Depeg,
    /// No new head on a chain within the bound.
    ChainHalt,
    /// Raised by an operator.
    Operator,
    /// A covered member's books do not declare a payout booked after the booking timeout.
    PayoutNotBooked,
}

impl SignalKind {
    fn from_wire(v: i32) -> Result<Self, PayloadError> {
        use pb::SignalKind as K;
        match K::try_from(v) {
            Ok(K::OracleDeviation) => Ok(Self::OracleDeviation),
            Ok(K::OracleStale) => Ok(Self::OracleStale),
            Ok(K::AbnormalOutflow) => Ok(Self::AbnormalOutflow),
            Ok(K::Depeg) => Ok(Self::Depeg),
            Ok(K::ChainHalt) => Ok(Self::ChainHalt),
            Ok(K::Operator) => Ok(Self::Operator),
            Ok(K::PayoutNotBooked) => Ok(Self::PayoutNotBooked),
            Ok(K::Unspecified) | Err(_) => Err(PayloadError::Invalid {
                field: "signal.kind",
                reason: "unknown kind",
            }),
        }
    }

    fn to_wire(self) -> i32 {
        use pb::SignalKind as K;
        (match self {
            Self::OracleDeviation => K::OracleDeviation,
            Self::OracleStale => K::OracleStale,
            Self::AbnormalOutflow => K::AbnormalOutflow,
            Self::Depeg => K::Depeg,
            Self::ChainHalt => K::ChainHalt,
            Self::Operator => K::Operator,
            Self::PayoutNotBooked => K::PayoutNotBooked,
        }) as i32
    }
}

/// A detector's signed assertion about a subject.
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

/// A member's solvency at a confirmed head of its home chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GapObservation {
    /// The incident it concerns.
    pub incident: IncidentKey,
    /// Home chain of the member.
    pub home_chain_id: u64,
    /// Confirmed head read.
    pub block_number: u64,
    /// Its hash.
    pub block_hash: B256,
    /// Member's assets, pool-token units.
    pub assets: U256,
    /// Member's liabilities, pool-token units.
    pub liabilities: U256,
}

/// The proposer's draw for one attempt of an incident.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DrawProposal {
    /// The incident.
    pub incident: IncidentKey,
    /// Attempt number, from 0.
    pub attempt: u32,
    /// Proposer's index in the sorted consortium.
    pub proposer_index: u32,
    /// One pinned block per chain.
    pub pinned: Vec<PinnedBlock>,
    /// The draw the proposer computed.
    pub draw: Draw,
}

/// A guardian's signature over a draw digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DrawAttestation {
    /// The incident.
    pub incident: IncidentKey,
    /// Attempt number.
    pub attempt: u32,
    /// EIP-712 digest of the draw under the home vault's domain.
    pub draw_digest: B256,
    /// The guardian's signature over `draw_digest`.
    pub signature: GuardianSignature,
}

/// A guardian's signature over a leg release under the paying vault's domain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LegAttestation {
    /// The paying vault.
    pub vault: VaultId,
    /// The release (carries the draw hash).
    pub release: LegRelease,
    /// The guardian's signature over `release.digest(vault)`.
    pub signature: GuardianSignature,
}

impl LegAttestation {
    /// The registered draw this leg belongs to.
    pub fn draw_hash(&self) -> B256 {
        self.release.drawHash
    }
}

/// A threshold action on one vault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Freeze payouts to a member (p signatures).
    FreezeMember(FreezeMember),
    /// Lift a freeze (t signatures).
    UnfreezeMember(UnfreezeMember),
    /// Pause the vault (p signatures).
    Pause(Pause),
    /// Lift a pause (t signatures).
    Unpause(Unpause),
    /// Raise an alert level (p signatures).
    RaiseAlert(RaiseAlert),
    /// Clear an alert (t signatures).
    ClearAlert(ClearAlert),
}

impl Action {
    /// The action's unique id.
    pub fn id(&self) -> B256 {
        match self {
            Self::FreezeMember(a) => a.id,
            Self::UnfreezeMember(a) => a.id,
            Self::Pause(a) => a.id,
            Self::Unpause(a) => a.id,
            Self::RaiseAlert(a) => a.id,
            Self::ClearAlert(a) => a.id,
        }
    }

    /// Its EIP-712 digest under `vault`'s domain.
    pub fn digest(&self, vault: &VaultId) -> B256 {
        match self {
            Self::FreezeMember(a) => a.digest(vault),
            Self::UnfreezeMember(a) => a.digest(vault),
            Self::Pause(a) => a.digest(vault),
            Self::Unpause(a) => a.digest(vault),
            Self::RaiseAlert(a) => a.digest(vault),
            Self::ClearAlert(a) => a.digest(vault),
        }
    }

    /// True for the actions that stop something (p signatures), false for lifts (t).
    pub fn is_emergency(&self) -> bool {
        matches!(
            self,
            Self::FreezeMember(_) | Self::Pause(_) | Self::RaiseAlert(_)
        )
    }
}

/// A proposal to carry out an action on one vault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActionProposal {
    /// Target vault.
    pub vault: VaultId,
    /// The action.
    pub action: Action,
}

/// A guardian's signature over an action's digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActionAttestation {
    /// Target vault.
    pub vault: VaultId,
    /// The action.
    pub action: Action,
    /// The guardian's signature over `action.digest(vault)`.
    pub signature: GuardianSignature,
}

/// Every message nodes gossip.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GossipMessage {
    /// A detector's signal.
    Signal(Signal),
    /// A solvency observation.
    GapObservation(GapObservation),
    /// A draw proposal.
    DrawProposal(DrawProposal),
    /// A draw attestation.
    DrawAttestation(DrawAttestation),
    /// A leg release attestation.
    LegAttestation(LegAttestation),
    /// An action proposal.
    ActionProposal(ActionProposal),
    /// An action attestation.
    ActionAttestation(ActionAttestation),
}

impl GossipMessage {
    /// Decodes and checks payload bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, PayloadError> {
        let payload =
            pb::Payload::decode(bytes).map_err(|e| PayloadError::Decode(e.to_string()))?;
        Self::from_proto(payload)
    }

    /// Canonical protobuf encoding (what [`crate::envelope::sign`] signs).
    pub fn encode(&self) -> Vec<u8> {
        self.to_proto().encode_to_vec()
    }

    /// The incident this message belongs to, if any (used by catch-up stores).
    pub fn incident(&self) -> Option<IncidentKey> {
        match self {
            Self::GapObservation(m) => Some(m.incident),
            Self::DrawProposal(m) => Some(m.incident),
            Self::DrawAttestation(m) => Some(m.incident),
            Self::LegAttestation(m) => Some(IncidentKey {
                member: m.release.member,
                seq: m.release.seq,
            }),
            Self::Signal(_) | Self::ActionProposal(_) | Self::ActionAttestation(_) => None,
        }
    }

    /// The guardian signature the message carries, if any.
    pub fn guardian_signature(&self) -> Option<&GuardianSignature> {
        match self {
            Self::DrawAttestation(m) => Some(&m.signature),
            Self::LegAttestation(m) => Some(&m.signature),
            Self::ActionAttestation(m) => Some(&m.signature),
            _ => None,
        }
    }

    fn from_proto(p: pb::Payload) -> Result<Self, PayloadError> {
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
                Self::Signal(Signal {
                    kind: SignalKind::from_wire(s.kind)?,
                    subject: b256("signal.subject", &s.subject)?,
                    observed_at_ms: s.observed_at_ms,
                    evidence: s.evidence.into(),
                })
            }
            Body::GapObservation(g) => Self::GapObservation(GapObservation {
                incident: incident(g.incident)?,
                home_chain_id: g.home_chain_id,
                block_number: g.block_number,
                block_hash: b256("gap.block_hash", &g.block_hash)?,
                assets: u256("gap.assets", &g.assets)?,
                liabilities: u256("gap.liabilities", &g.liabilities)?,
            }),
            Body::DrawProposal(d) => {
                bounded("proposal.pinned", d.pinned.len(), MAX_PINNED)?;
                Self::DrawProposal(DrawProposal {
                    incident: incident(d.incident)?,
                    attempt: d.attempt,
                    proposer_index: d.proposer_index,
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
            Body::DrawAttestation(a) => Self::DrawAttestation(DrawAttestation {
                incident: incident(a.incident)?,
                attempt: a.attempt,
                draw_digest: b256("attestation.draw_digest", &a.draw_digest)?,
                signature: guardian_sig(a.signature)?,
            }),
            Body::LegAttestation(l) => Self::LegAttestation(LegAttestation {
                vault: vault(l.vault)?,
                release: leg_release(l.release.ok_or(PayloadError::Missing("leg.release"))?)?,
                signature: guardian_sig(l.signature)?,
            }),
            Body::ActionProposal(a) => Self::ActionProposal(ActionProposal {
                vault: vault(a.vault)?,
                action: action(a.action)?,
            }),
            Body::ActionAttestation(a) => Self::ActionAttestation(ActionAttestation {
                vault: vault(a.vault)?,
                action: action(a.action)?,
                signature: guardian_sig(a.signature)?,
            }),
        })
    }

    fn to_proto(&self) -> pb::Payload {
        use pb::payload::Body;
        let body = match self {
            Self::Signal(s) => Body::Signal(pb::Signal {
                kind: s.kind.to_wire(),
                subject: s.subject.to_vec(),
                observed_at_ms: s.observed_at_ms,
                evidence: s.evidence.to_vec(),
            }),
            Self::GapObservation(g) => Body::GapObservation(pb::GapObservation {
                incident: Some(incident_pb(&g.incident)),
                home_chain_id: g.home_chain_id,
                block_number: g.block_number,
                block_hash: g.block_hash.to_vec(),
                assets: g.assets.to_be_bytes::<32>().to_vec(),
                liabilities: g.liabilities.to_be_bytes::<32>().to_vec(),
            }),
            Self::DrawProposal(d) => Body::DrawProposal(pb::DrawProposal {
                incident: Some(incident_pb(&d.incident)),
                attempt: d.attempt,
                proposer_index: d.proposer_index,
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
            Self::DrawAttestation(a) => Body::DrawAttestation(pb::DrawAttestation {
                incident: Some(incident_pb(&a.incident)),
                attempt: a.attempt,
                draw_digest: a.draw_digest.to_vec(),
                signature: Some(guardian_sig_pb(&a.signature)),
            }),
            Self::LegAttestation(l) => Body::LegAttestation(pb::LegAttestation {
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
            Self::ActionProposal(a) => Body::ActionProposal(pb::ActionProposal {
                vault: Some(vault_pb(&a.vault)),
                action: Some(action_pb(&a.action)),
            }),
            Self::ActionAttestation(a) => Body::ActionAttestation(pb::ActionAttestation {
                vault: Some(vault_pb(&a.vault)),
                action: Some(action_pb(&a.action)),
                signature: Some(guardian_sig_pb(&a.signature)),
            }),
        };
        pb::Payload { body: Some(body) }
    }
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

fn action(p: Option<pb::Action>) -> Result<Action, PayloadError> {
    use pb::action::Kind;
    let kind = p
        .and_then(|a| a.kind)
        .ok_or(PayloadError::Missing("action"))?;
    Ok(match kind {
        Kind::FreezeMember(a) => Action::FreezeMember(FreezeMember {
            member: b256("freeze.member", &a.member)?,
            id: b256("freeze.id", &a.id)?,
            deadline: a.deadline,
        }),
        Kind::UnfreezeMember(a) => Action::UnfreezeMember(UnfreezeMember {
            member: b256("unfreeze.member", &a.member)?,
            id: b256("unfreeze.id", &a.id)?,
            deadline: a.deadline,
        }),
        Kind::Pause(a) => Action::Pause(Pause {
            id: b256("pause.id", &a.id)?,
            deadline: a.deadline,
        }),
        Kind::Unpause(a) => Action::Unpause(Unpause {
            id: b256("unpause.id", &a.id)?,
            deadline: a.deadline,
        }),
        Kind::RaiseAlert(a) => Action::RaiseAlert(RaiseAlert {
            subject: b256("alert.subject", &a.subject)?,
            level: u8::try_from(a.level).map_err(|_| PayloadError::Invalid {
                field: "alert.level",
                reason: "above 255",
            })?,
            id: b256("alert.id", &a.id)?,
            deadline: a.deadline,
        }),
        Kind::ClearAlert(a) => Action::ClearAlert(ClearAlert {
            subject: b256("clear.subject", &a.subject)?,
            id: b256("clear.id", &a.id)?,
            deadline: a.deadline,
        }),
    })
}

fn action_pb(a: &Action) -> pb::Action {
    use pb::action::Kind;
    let kind = match a {
        Action::FreezeMember(a) => Kind::FreezeMember(pb::FreezeMember {
            member: a.member.to_vec(),
            id: a.id.to_vec(),
            deadline: a.deadline,
        }),
        Action::UnfreezeMember(a) => Kind::UnfreezeMember(pb::UnfreezeMember {
            member: a.member.to_vec(),
            id: a.id.to_vec(),
            deadline: a.deadline,
        }),
        Action::Pause(a) => Kind::Pause(pb::Pause {
            id: a.id.to_vec(),
            deadline: a.deadline,
        }),
        Action::Unpause(a) => Kind::Unpause(pb::Unpause {
            id: a.id.to_vec(),
            deadline: a.deadline,
        }),
        Action::RaiseAlert(a) => Kind::RaiseAlert(pb::RaiseAlert {
            subject: a.subject.to_vec(),
            level: u32::from(a.level),
            id: a.id.to_vec(),
            deadline: a.deadline,
        }),
        Action::ClearAlert(a) => Kind::ClearAlert(pb::ClearAlert {
            subject: a.subject.to_vec(),
            id: a.id.to_vec(),
            deadline: a.deadline,
        }),
    };
    pb::Action { kind: Some(kind) }
}
