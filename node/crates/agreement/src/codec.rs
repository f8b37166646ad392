//! A small, stable binary encoding of the core's types, for the node's store and for the
//! simulation's trace hash.
//!
//! Layout: fixed-width integers little-endian, hashes and addresses as raw bytes, variable
//! parts (ABI-encoded contract structs, lists) behind a `u32` length that is checked against
//! a bound before anything is allocated. Contract structs (`Draw`, `LegRelease`, the action
//! structs) are stored as their Solidity ABI encoding, which is fixed by the contract.
//! Every stored value starts with a one-byte record version; [`Reader::finish`] refuses
//! trailing bytes, so a value decodes to exactly one thing or to an error, never silently.

use crate::types::{
    ActionAttestation, ActionProposal, Certificate, DrawAttestation, DrawProposal, GapObservation,
    IncidentKey, LegAttestation, MAX_LEGS, MAX_PINNED, Message, PinnedBlock, Subject,
    ThresholdAction,
};
use alloy::primitives::{Address, B256, Signature, U256};
use alloy::sol_types::SolValue;
use backstop_contracts::eip712::{
    ClearAlert, Draw, FreezeMember, GuardianSignature, LegRelease, Pause, RaiseAlert,
    RotateGuardians, SetLimits, SetMember, UnfreezeMember, Unpause, VaultId,
};
use backstop_types::governance::MAX_TARGETS;
use backstop_types::{GovernanceProposal, MAX_EVIDENCE_LEN, Signal, SignalKind};

/// Largest ABI blob accepted for one contract struct (a draw with [`MAX_LEGS`] legs is far
/// below it).
pub const MAX_ABI_LEN: usize = 64 * 1024;
/// Largest list of signatures decoded.
pub const MAX_SIGNATURES: usize = 255;

/// Why bytes do not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Input ended early.
    #[error("input truncated: need {need} more bytes at offset {at}")]
    Truncated {
        /// Offset where reading failed.
        at: usize,
        /// Bytes missing.
        need: usize,
    },
    /// A length prefix above its bound.
    #[error("{what} length {len} above bound {max}")]
    TooLong {
        /// Field.
        what: &'static str,
        /// Length found.
        len: usize,
        /// Bound.
        max: usize,
    },
    /// An unknown enum tag.
    #[error("unknown {what} tag {tag}")]
    Tag {
        /// Field.
        what: &'static str,
        /// Tag found.
        tag: u8,
    },
    /// Bytes left after the value.
    #[error("{0} trailing bytes")]
    Trailing(usize),
    /// An ABI blob that is not the expected struct.
    #[error("invalid ABI encoding of {what}: {reason}")]
    Abi {
        /// Struct.
        what: &'static str,
        /// Decoder's message.
        reason: String,
    },
    /// A malformed signature.
    #[error("invalid signature: {0}")]
    Signature(String),
    /// A record version this build does not know.
    #[error("unknown {what} record version {version}")]
    Version {
        /// Record.
        what: &'static str,
        /// Version found.
        version: u8,
    },
}

/// Appends encoded fields to a buffer.
#[derive(Default, Debug)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// An empty writer.
    pub fn new() -> Self {
        Self::default()
    }

    /// The bytes written.
    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    /// One byte.
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }

    /// A bool as one byte.
    pub fn bool(&mut self, v: bool) -> &mut Self {
        self.u8(u8::from(v))
    }

    /// Little-endian u16.
    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// Little-endian u32.
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// Little-endian u64.
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// 32 raw bytes.
    pub fn b256(&mut self, v: &B256) -> &mut Self {
        self.buf.extend_from_slice(v.as_slice());
        self
    }

    /// 20 raw bytes.
    pub fn address(&mut self, v: &Address) -> &mut Self {
        self.buf.extend_from_slice(v.as_slice());
        self
    }

    /// `u32` length then the bytes.
    pub fn bytes(&mut self, v: &[u8]) -> &mut Self {
        // Callers only write bounded values (ABI of bounded structs, evidence).
        self.u32(v.len() as u32);
        self.buf.extend_from_slice(v);
        self
    }

    /// Incident key.
    pub fn key(&mut self, k: &IncidentKey) -> &mut Self {
        self.b256(&k.member).u64(k.seq)
    }

    /// Vault id.
    pub fn vault(&mut self, v: &VaultId) -> &mut Self {
        self.u64(v.chain_id).address(&v.address)
    }

    /// Guardian signature: signer then `r || s || v`.
    pub fn signature(&mut self, s: &GuardianSignature) -> &mut Self {
        self.address(&s.signer);
        self.buf.extend_from_slice(&s.signature.as_bytes());
        self
    }

    /// A draw as its ABI encoding.
    pub fn draw(&mut self, d: &Draw) -> &mut Self {
        self.bytes(&d.abi_encode())
    }

    /// A leg release as its ABI encoding.
    pub fn release(&mut self, r: &LegRelease) -> &mut Self {
        self.bytes(&r.abi_encode())
    }

    /// A threshold action: tag then ABI encoding.
    pub fn action(&mut self, a: &ThresholdAction) -> &mut Self {
        match a {
            ThresholdAction::Freeze(x) => self.u8(0).bytes(&x.abi_encode()),
            ThresholdAction::Unfreeze(x) => self.u8(1).bytes(&x.abi_encode()),
            ThresholdAction::Pause(x) => self.u8(2).bytes(&x.abi_encode()),
            ThresholdAction::Unpause(x) => self.u8(3).bytes(&x.abi_encode()),
            ThresholdAction::RaiseAlert(x) => self.u8(4).bytes(&x.abi_encode()),
            ThresholdAction::ClearAlert(x) => self.u8(5).bytes(&x.abi_encode()),
            ThresholdAction::SetMember(x) => self.u8(6).bytes(&x.abi_encode()),
            ThresholdAction::SetLimits(x) => self.u8(7).bytes(&x.abi_encode()),
            ThresholdAction::RotateGuardians(x) => self.u8(8).bytes(&x.abi_encode()),
        }
    }

    /// A draw proposal.
    pub fn proposal(&mut self, p: &DrawProposal) -> &mut Self {
        self.key(&p.key).u32(p.attempt).u16(p.proposer);
        self.u32(p.pinned.len() as u32);
        for b in &p.pinned {
            self.u64(b.chain_id).u64(b.number).b256(&b.hash);
        }
        self.draw(&p.draw)
    }

    /// A certificate subject.
    pub fn subject(&mut self, s: &Subject) -> &mut Self {
        match s {
            Subject::Draw {
                key,
                attempt,
                vault,
                draw,
            } => self.u8(0).key(key).u32(*attempt).vault(vault).draw(draw),
            Subject::Leg { vault, release } => self.u8(1).vault(vault).release(release),
            Subject::Action { vault, action } => self.u8(2).vault(vault).action(action),
        }
    }

    /// A certificate.
    pub fn certificate(&mut self, c: &Certificate) -> &mut Self {
        self.subject(&c.subject).b256(&c.digest);
        self.u32(c.signatures.len() as u32);
        for s in &c.signatures {
            self.signature(s);
        }
        self
    }

    /// A gossip message.
    pub fn message(&mut self, m: &Message) -> &mut Self {
        match m {
            Message::DrawProposal(p) => self.u8(0).proposal(p),
            Message::DrawAttestation(a) => self
                .u8(1)
                .key(&a.key)
                .u32(a.attempt)
                .b256(&a.digest)
                .signature(&a.signature),
            Message::LegAttestation(a) => self
                .u8(2)
                .b256(&a.draw_hash())
                .vault(&a.vault)
                .release(&a.release)
                .signature(&a.signature),
            Message::ActionProposal(a) => self.u8(3).vault(&a.vault).action(&a.action),
            Message::ActionAttestation(a) => self
                .u8(4)
                .vault(&a.vault)
                .action(&a.action)
                .signature(&a.signature),
            Message::Signal(g) => self
                .u8(5)
                .u8(signal_tag(g.kind))
                .b256(&g.subject)
                .u64(g.observed_at_ms)
                .bytes(&g.evidence),
            Message::GapObservation(g) => self
                .u8(6)
                .key(&g.key)
                .u64(g.home_chain_id)
                .u64(g.block_number)
                .b256(&g.block_hash)
                .b256(&g.assets.to_be_bytes::<32>().into())
                .b256(&g.liabilities.to_be_bytes::<32>().into()),
            Message::GovernanceProposal(g) => {
                self.u8(7).u16(g.proposer).u32(g.targets.len() as u32);
                for v in &g.targets {
                    self.vault(v);
                }
                self.action(&g.action).signature(&g.signature)
            }
        }
    }
}

/// Reads encoded fields from a slice, bounds-checked.
#[derive(Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, at: 0 }
    }

    /// Whether every byte was read.
    pub fn is_empty(&self) -> bool {
        self.at >= self.buf.len()
    }

    /// Every byte not read yet (a nested record's own encoding), consuming the reader.
    pub fn rest(self) -> &'a [u8] {
        self.buf.get(self.at..).unwrap_or_default()
    }

    /// Fails unless every byte was read.
    pub fn finish(self) -> Result<(), DecodeError> {
        match self.buf.len() - self.at {
            0 => Ok(()),
            n => Err(DecodeError::Trailing(n)),
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let rest = self.buf.len() - self.at;
        if rest < n {
            return Err(DecodeError::Truncated {
                at: self.at,
                need: n - rest,
            });
        }
        let out = &self.buf[self.at..self.at + n];
        self.at += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    /// One byte.
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    /// A bool (0 or 1).
    pub fn bool(&mut self) -> Result<bool, DecodeError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            tag => Err(DecodeError::Tag { what: "bool", tag }),
        }
    }

    /// Little-endian u16.
    pub fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    /// Little-endian u32.
    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    /// Little-endian u64.
    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// 32 raw bytes.
    pub fn b256(&mut self) -> Result<B256, DecodeError> {
        Ok(B256::new(self.array()?))
    }

    /// 20 raw bytes.
    pub fn address(&mut self) -> Result<Address, DecodeError> {
        Ok(Address::new(self.array()?))
    }

    /// A `u32` length, checked against `max`.
    pub fn len(&mut self, what: &'static str, max: usize) -> Result<usize, DecodeError> {
        let len = self.u32()? as usize;
        if len > max {
            return Err(DecodeError::TooLong { what, len, max });
        }
        Ok(len)
    }

    /// Length-prefixed bytes of at most `max`.
    pub fn bytes(&mut self, what: &'static str, max: usize) -> Result<&'a [u8], DecodeError> {
        let len = self.len(what, max)?;
        self.take(len)
    }

    /// Incident key.
    pub fn key(&mut self) -> Result<IncidentKey, DecodeError> {
        Ok(IncidentKey {
            member: self.b256()?,
            seq: self.u64()?,
        })
    }

    /// Vault id.
    pub fn vault(&mut self) -> Result<VaultId, DecodeError> {
        Ok(VaultId {
            chain_id: self.u64()?,
            address: self.address()?,
        })
    }

    /// Guardian signature.
    pub fn signature(&mut self) -> Result<GuardianSignature, DecodeError> {
        let signer = self.address()?;
        let raw: [u8; 65] = self.array()?;
        let signature =
            Signature::from_raw_array(&raw).map_err(|e| DecodeError::Signature(e.to_string()))?;
        Ok(GuardianSignature { signer, signature })
    }

    fn abi<T: SolValue + From<<T::SolType as alloy::sol_types::SolType>::RustType>>(
        &mut self,
        what: &'static str,
    ) -> Result<T, DecodeError> {
        let raw = self.bytes(what, MAX_ABI_LEN)?;
        T::abi_decode(raw).map_err(|e| DecodeError::Abi {
            what,
            reason: e.to_string(),
        })
    }

    /// A draw, with at most [`MAX_LEGS`] legs.
    pub fn draw(&mut self) -> Result<Draw, DecodeError> {
        let draw: Draw = self.abi("Draw")?;
        if draw.legs.len() > MAX_LEGS {
            return Err(DecodeError::TooLong {
                what: "legs",
                len: draw.legs.len(),
                max: MAX_LEGS,
            });
        }
        Ok(draw)
    }

    /// A leg release.
    pub fn release(&mut self) -> Result<LegRelease, DecodeError> {
        self.abi("LegRelease")
    }

    /// A threshold action.
    pub fn action(&mut self) -> Result<ThresholdAction, DecodeError> {
        Ok(match self.u8()? {
            0 => ThresholdAction::Freeze(self.abi::<FreezeMember>("FreezeMember")?),
            1 => ThresholdAction::Unfreeze(self.abi::<UnfreezeMember>("UnfreezeMember")?),
            2 => ThresholdAction::Pause(self.abi::<Pause>("Pause")?),
            3 => ThresholdAction::Unpause(self.abi::<Unpause>("Unpause")?),
            4 => ThresholdAction::RaiseAlert(self.abi::<RaiseAlert>("RaiseAlert")?),
            5 => ThresholdAction::ClearAlert(self.abi::<ClearAlert>("ClearAlert")?),
            6 => ThresholdAction::SetMember(self.abi::<SetMember>("SetMember")?),
            7 => ThresholdAction::SetLimits(self.abi::<SetLimits>("SetLimits")?),
            8 => ThresholdAction::RotateGuardians(self.abi::<RotateGuardians>("RotateGuardians")?),
            tag => {
                return Err(DecodeError::Tag {
                    what: "action",
                    tag,
                });
            }
        })
    }

    /// A draw proposal.
    pub fn proposal(&mut self) -> Result<DrawProposal, DecodeError> {
        let key = self.key()?;
        let attempt = self.u32()?;
        let proposer = self.u16()?;
        let count = self.len("pinned", MAX_PINNED)?;
        let mut pinned = Vec::with_capacity(count);
        for _ in 0..count {
            pinned.push(PinnedBlock {
                chain_id: self.u64()?,
                number: self.u64()?,
                hash: self.b256()?,
            });
        }
        Ok(DrawProposal {
            key,
            attempt,
            proposer,
            pinned,
            draw: self.draw()?,
        })
    }

    /// A certificate subject.
    pub fn subject(&mut self) -> Result<Subject, DecodeError> {
        Ok(match self.u8()? {
            0 => Subject::Draw {
                key: self.key()?,
                attempt: self.u32()?,
                vault: self.vault()?,
                draw: self.draw()?,
            },
            1 => Subject::Leg {
                vault: self.vault()?,
                release: self.release()?,
            },
            2 => Subject::Action {
                vault: self.vault()?,
                action: self.action()?,
            },
            tag => {
                return Err(DecodeError::Tag {
                    what: "subject",
                    tag,
                });
            }
        })
    }

    /// A certificate.
    pub fn certificate(&mut self) -> Result<Certificate, DecodeError> {
        let subject = self.subject()?;
        let digest = self.b256()?;
        let count = self.len("signatures", MAX_SIGNATURES)?;
        let mut signatures = Vec::with_capacity(count);
        for _ in 0..count {
            signatures.push(self.signature()?);
        }
        Ok(Certificate {
            subject,
            digest,
            signatures,
        })
    }

    /// A gossip message.
    pub fn message(&mut self) -> Result<Message, DecodeError> {
        Ok(match self.u8()? {
            0 => Message::DrawProposal(self.proposal()?),
            1 => Message::DrawAttestation(DrawAttestation {
                key: self.key()?,
                attempt: self.u32()?,
                digest: self.b256()?,
                signature: self.signature()?,
            }),
            2 => {
                let draw_hash = self.b256()?;
                let a = LegAttestation {
                    vault: self.vault()?,
                    release: self.release()?,
                    signature: self.signature()?,
                };
                if a.draw_hash() != draw_hash {
                    return Err(DecodeError::Abi {
                        what: "leg attestation",
                        reason: "draw hash differs from the release's".into(),
                    });
                }
                Message::LegAttestation(a)
            }
            3 => Message::ActionProposal(ActionProposal {
                vault: self.vault()?,
                action: self.action()?,
            }),
            4 => Message::ActionAttestation(ActionAttestation {
                vault: self.vault()?,
                action: self.action()?,
                signature: self.signature()?,
            }),
            5 => Message::Signal(Signal {
                kind: {
                    let tag = self.u8()?;
                    *SignalKind::ALL
                        .get(usize::from(tag))
                        .ok_or(DecodeError::Tag {
                            what: "signal kind",
                            tag,
                        })?
                },
                subject: self.b256()?,
                observed_at_ms: self.u64()?,
                evidence: self.bytes("evidence", MAX_EVIDENCE_LEN)?.to_vec().into(),
            }),
            6 => Message::GapObservation(GapObservation {
                key: self.key()?,
                home_chain_id: self.u64()?,
                block_number: self.u64()?,
                block_hash: self.b256()?,
                assets: U256::from_be_bytes(self.b256()?.0),
                liabilities: U256::from_be_bytes(self.b256()?.0),
            }),
            7 => {
                let proposer = self.u16()?;
                let count = self.len("targets", MAX_TARGETS)?;
                let mut targets = Vec::with_capacity(count);
                for _ in 0..count {
                    targets.push(self.vault()?);
                }
                Message::GovernanceProposal(GovernanceProposal {
                    proposer,
                    targets,
                    action: self.action()?,
                    signature: self.signature()?,
                })
            }
            tag => {
                return Err(DecodeError::Tag {
                    what: "message",
                    tag,
                });
            }
        })
    }
}

/// A signal kind's tag: its place in [`SignalKind::ALL`].
fn signal_tag(kind: SignalKind) -> u8 {
    // ALL has 7 entries and lists every kind.
    SignalKind::ALL.iter().position(|k| *k == kind).unwrap_or(0) as u8
}

/// Encodes a message.
pub fn encode_message(m: &Message) -> Vec<u8> {
    let mut w = Writer::new();
    w.message(m);
    w.into_bytes()
}

/// Decodes exactly one message.
pub fn decode_message(bytes: &[u8]) -> Result<Message, DecodeError> {
    let mut r = Reader::new(bytes);
    let m = r.message()?;
    r.finish()?;
    Ok(m)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use alloy::signers::local::PrivateKeySigner;
    use backstop_contracts::eip712::{Leg, sign_digest};

    fn sample_draw() -> Draw {
        Draw {
            member: B256::repeat_byte(1),
            seq: 7,
            gap: U256::from(1000),
            amount: U256::from(900),
            legs: vec![
                Leg {
                    chainId: 1,
                    vault: Address::with_last_byte(1),
                    amount: U256::from(400),
                },
                Leg {
                    chainId: 2,
                    vault: Address::with_last_byte(2),
                    amount: U256::from(500),
                },
            ],
            deadline: 100,
            legDeadline: 200,
        }
    }

    fn messages() -> Vec<Message> {
        let key = PrivateKeySigner::random();
        let sig = sign_digest(&key, B256::repeat_byte(3)).unwrap();
        let vault = VaultId {
            chain_id: 5,
            address: Address::with_last_byte(5),
        };
        vec![
            Message::DrawProposal(DrawProposal {
                key: IncidentKey {
                    member: B256::repeat_byte(1),
                    seq: 7,
                },
                attempt: 3,
                proposer: 2,
                pinned: vec![PinnedBlock {
                    chain_id: 1,
                    number: 10,
                    hash: B256::repeat_byte(4),
                }],
                draw: sample_draw(),
            }),
            Message::DrawAttestation(DrawAttestation {
                key: IncidentKey {
                    member: B256::repeat_byte(1),
                    seq: 7,
                },
                attempt: 1,
                digest: B256::repeat_byte(3),
                signature: sig,
            }),
            Message::LegAttestation(LegAttestation {
                vault,
                release: LegRelease {
                    drawHash: B256::repeat_byte(8),
                    member: B256::repeat_byte(1),
                    seq: 7,
                    amount: U256::from(5),
                    deadline: 9,
                },
                signature: sig,
            }),
            Message::ActionProposal(ActionProposal {
                vault,
                action: ThresholdAction::Pause(Pause {
                    id: B256::repeat_byte(6),
                    deadline: 4,
                }),
            }),
            Message::ActionAttestation(ActionAttestation {
                vault,
                action: ThresholdAction::RaiseAlert(RaiseAlert {
                    subject: B256::repeat_byte(2),
                    level: 3,
                    id: B256::repeat_byte(6),
                    deadline: 4,
                }),
                signature: sig,
            }),
            Message::Signal(Signal {
                kind: SignalKind::PayoutNotBooked,
                subject: B256::repeat_byte(4),
                observed_at_ms: 1_700_000_000_123,
                evidence: vec![1, 2, 3].into(),
            }),
            Message::GapObservation(GapObservation {
                key: IncidentKey {
                    member: B256::repeat_byte(1),
                    seq: 7,
                },
                home_chain_id: 31337,
                block_number: 12,
                block_hash: B256::repeat_byte(5),
                assets: U256::from(100),
                liabilities: U256::MAX,
            }),
            Message::GovernanceProposal(GovernanceProposal {
                proposer: 1,
                targets: vec![vault, vault],
                action: ThresholdAction::RotateGuardians(RotateGuardians {
                    guardians: vec![Address::with_last_byte(1), Address::with_last_byte(2)],
                    threshold: 2,
                    pauseThreshold: 1,
                    id: B256::repeat_byte(6),
                    deadline: 4,
                }),
                signature: sig,
            }),
            Message::ActionProposal(ActionProposal {
                vault,
                action: ThresholdAction::SetMember(SetMember {
                    member: B256::repeat_byte(1),
                    recipient: Address::with_last_byte(3),
                    homeChainId: 5,
                    cap: u128::MAX,
                    deductible: 1,
                    coverageLimit: 2,
                    coverageWindow: 3,
                    id: B256::repeat_byte(6),
                    deadline: 4,
                }),
            }),
            Message::ActionProposal(ActionProposal {
                vault,
                action: ThresholdAction::SetLimits(SetLimits {
                    bucketCapacity: 1,
                    refillPerSecond: 2,
                    reserveFloor: U256::MAX,
                    withdrawCooldown: 3,
                    emergencyDuration: 4,
                    id: B256::repeat_byte(6),
                    deadline: 4,
                }),
            }),
        ]
    }

    #[test]
    fn messages_round_trip() {
        for m in messages() {
            let bytes = encode_message(&m);
            assert_eq!(decode_message(&bytes).unwrap(), m);
        }
    }

    #[test]
    fn unknown_signal_kinds_and_mismatched_leg_hashes_are_refused() {
        let signal = messages()
            .into_iter()
            .find(|m| matches!(m, Message::Signal(_)));
        let mut bytes = encode_message(&signal.unwrap());
        bytes[1] = SignalKind::ALL.len() as u8;
        assert!(matches!(
            decode_message(&bytes),
            Err(DecodeError::Tag {
                what: "signal kind",
                ..
            })
        ));
        let leg = messages()
            .into_iter()
            .find(|m| matches!(m, Message::LegAttestation(_)));
        let mut bytes = encode_message(&leg.unwrap());
        bytes[1] ^= 1;
        assert!(matches!(
            decode_message(&bytes),
            Err(DecodeError::Abi { .. })
        ));
    }

    #[test]
    fn truncated_and_trailing_bytes_are_refused() {
        for m in messages() {
            let bytes = encode_message(&m);
            for cut in 0..bytes.len() {
                assert!(decode_message(&bytes[..cut]).is_err(), "cut at {cut}");
            }
            let mut long = bytes.clone();
            long.push(0);
            assert_eq!(decode_message(&long), Err(DecodeError::Trailing(1)));
        }
    }

    #[test]
    fn huge_length_prefix_is_refused_before_allocation() {
        let mut w = Writer::new();
        w.u8(0).key(&IncidentKey {
            member: B256::ZERO,
            seq: 0,
        });
        w.u32(0).u16(0).u32(u32::MAX);
        assert!(matches!(
            decode_message(&w.into_bytes()),
            Err(DecodeError::TooLong { what: "pinned", .. })
        ));
    }

    #[test]
    fn certificate_round_trips() {
        let key = PrivateKeySigner::random();
        let vault = VaultId {
            chain_id: 1,
            address: Address::with_last_byte(1),
        };
        let subject = Subject::Draw {
            key: IncidentKey {
                member: B256::repeat_byte(1),
                seq: 7,
            },
            attempt: 0,
            vault,
            draw: sample_draw(),
        };
        let digest = subject.digest();
        let cert = Certificate {
            subject,
            digest,
            signatures: vec![sign_digest(&key, digest).unwrap()],
        };
        let mut w = Writer::new();
        w.certificate(&cert);
        let bytes = w.into_bytes();
        let mut r = Reader::new(&bytes);
        assert_eq!(r.certificate().unwrap(), cert);
        r.finish().unwrap();
    }
}
