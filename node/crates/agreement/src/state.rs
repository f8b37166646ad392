//! The node's durable state on a [`Kv`]: the sign-guard and the agreement records from
//! which the state machine is rebuilt after a restart.
//!
//! Layout: open incidents in `incidents`; closed ones in `closed`, keyed by when they were
//! opened, with one [`MemberRecord`] per member in `members` holding what later incidents
//! need of them. Start-up reads the open incidents, the member records, the newest closed
//! incidents it shows or may reopen ([`NodeStore::newest_closed`]), and for each open
//! subject its own proposals, attestations, certificate and submission by key: never the
//! whole history, so it takes the same time with 100 or 100,000 closed incidents.
//!
//! Invariants:
//! - [`NodeStore::open`] refuses a store whose schema version is neither [`SCHEMA_VERSION`]
//!   nor the previous one (which it migrates in one atomic write), and a store that holds
//!   data but no version;
//! - an incident is in `incidents` (open) or in `closed`, never both: closing, reopening and
//!   the member record move it in one atomic write;
//! - [`NodeStore::prune_closed`] deletes only closed incidents past the retention and their
//!   leg deadline, with their proposals, attestations, certificates, submissions and
//!   sign-guard entries; it keeps the sign-guard entries of a draw whose seq may still be
//!   reopened (closed resolved above the member's covered seq);
//! - [`NodeStore::guard`] records at most one digest per [`GuardKey`], in one synced write,
//!   and never overwrites a recorded digest: a second, different digest is refused;
//! - every value carries a record version and decodes strictly (see [`crate::codec`]); a
//!   value that does not decode is an error, never skipped silently.

use crate::codec::{DecodeError, Reader, Writer};
use crate::kv::{Cf, Kv, KvError, Order, WriteBatch};
use crate::types::{Attempt, Certificate, DrawProposal, IncidentKey, ThresholdAction};
use alloy::primitives::B256;
use backstop_contracts::eip712::{Draw, GuardianSignature, LegRelease, Signable, VaultId};
use std::collections::BTreeMap;

/// Schema version written in `meta` by this build.
pub const SCHEMA_VERSION: u32 = 2;
/// The version before: every incident, open or closed, in `incidents`; migrated on open.
const SCHEMA_V1: u32 = 1;
/// Key of the schema version in `meta`.
pub const SCHEMA_KEY: &[u8] = b"schema_version";
const RECORD_V1: u8 = 1;
/// Incident records since registrations and legs carry the block that showed them.
const RECORD_V2: u8 = 2;

/// Errors of the node store.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The backend failed.
    #[error(transparent)]
    Kv(#[from] KvError),
    /// A stored value does not decode.
    #[error("corrupt {cf} record: {source}")]
    Corrupt {
        /// Column family.
        cf: &'static str,
        /// Why.
        source: DecodeError,
    },
    /// The store was written by another schema.
    #[error(
        "store schema version {found} is not supported (this build reads version {SCHEMA_VERSION} \
         and migrates version {SCHEMA_V1})"
    )]
    UnknownSchema {
        /// Version found.
        found: u32,
    },
    /// The store holds data but no schema version.
    #[error("store holds data but no schema version; refusing to guess its format")]
    MissingSchema,
}

/// What a signature is for; a node signs at most one digest per key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GuardKey {
    /// The draw of `(key, attempt)`.
    Draw {
        /// Incident.
        key: IncidentKey,
        /// Attempt.
        attempt: Attempt,
    },
    /// The release of the leg of `draw_hash` on `vault`.
    Leg {
        /// Registered draw.
        draw_hash: B256,
        /// Paying vault.
        vault: VaultId,
    },
    /// The threshold action `id` on `vault`.
    Action {
        /// Target vault.
        vault: VaultId,
        /// Action id.
        id: B256,
    },
}

impl GuardKey {
    /// Its key bytes in the `sign_guard` column family.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        match self {
            GuardKey::Draw { key, attempt } => w.u8(0).key(key).u32(*attempt),
            GuardKey::Leg { draw_hash, vault } => w.u8(1).b256(draw_hash).vault(vault),
            GuardKey::Action { vault, id } => w.u8(2).vault(vault).b256(id),
        };
        w.into_bytes()
    }

    /// Decodes key bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let k = match r.u8()? {
            0 => GuardKey::Draw {
                key: r.key()?,
                attempt: r.u32()?,
            },
            1 => GuardKey::Leg {
                draw_hash: r.b256()?,
                vault: r.vault()?,
            },
            2 => GuardKey::Action {
                vault: r.vault()?,
                id: r.b256()?,
            },
            tag => {
                return Err(DecodeError::Tag {
                    what: "guard key",
                    tag,
                });
            }
        };
        r.finish()?;
        Ok(k)
    }
}

/// Answer of the sign-guard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuardVerdict {
    /// Nothing was recorded for the key; `digest` now is (synced). Signing is allowed.
    Recorded,
    /// The same digest was already recorded. Signing it again is allowed.
    AlreadyRecorded,
    /// Another digest is recorded for the key. Signing is refused.
    Conflict {
        /// The digest recorded earlier.
        recorded: B256,
    },
}

impl GuardVerdict {
    /// Whether the digest may be signed.
    pub fn may_sign(&self) -> bool {
        !matches!(self, GuardVerdict::Conflict { .. })
    }
}

/// A draw registered on its home vault, as the chain layer reported it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registration {
    /// The draw's digest on the home vault.
    pub draw_hash: B256,
    /// The registered draw.
    pub draw: Draw,
    /// Whether it is at confirmed depth.
    pub finalized: bool,
    /// The home-chain block that showed it (0 in records written before blocks were kept).
    pub block: u64,
    /// A reorg deeper than the confirmation depth removed it after it was final: the same
    /// draw must be registered again (its certificate is submitted again), and nothing
    /// else may be (see `Machine`'s rewind handling).
    pub rewound: bool,
}

/// Why an incident closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// Registered, and every remote leg executed or past its deadline.
    Covered,
    /// The gap disappeared before any draw was registered.
    Resolved,
}

/// Durable state of one incident.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IncidentRecord {
    /// Incident.
    pub key: IncidentKey,
    /// Home vault of the member.
    pub home: VaultId,
    /// When this node opened it (ms).
    pub opened_at: u64,
    /// Current attempt.
    pub attempt: Attempt,
    /// When the current attempt's timer started (ms): the attempt's start, or, once its
    /// certificate formed, the first fallback submitter's turn (which may be ahead of now).
    pub attempt_started: u64,
    /// The registered draw, once seen on chain.
    pub registration: Option<Registration>,
    /// Remote legs seen executed, with the block that showed each (0 in old records).
    pub legs_done: BTreeMap<VaultId, u64>,
    /// Set when closed.
    pub closed: Option<CloseReason>,
}

impl IncidentRecord {
    /// The releases of the registered draw's remote legs (the home leg is paid by the
    /// registration; empty legs need no release), with the vault each is paid from.
    pub fn leg_releases(&self) -> Vec<(VaultId, LegRelease)> {
        let Some(reg) = &self.registration else {
            return Vec::new();
        };
        reg.draw
            .legs
            .iter()
            .filter(|leg| leg.chainId != self.home.chain_id && !leg.amount.is_zero())
            .map(|leg| {
                let vault = VaultId {
                    chain_id: leg.chainId,
                    address: leg.vault,
                };
                let release = LegRelease {
                    drawHash: reg.draw_hash,
                    member: self.key.member,
                    seq: self.key.seq,
                    amount: leg.amount,
                    deadline: reg.draw.legDeadline,
                };
                (vault, release)
            })
            .collect()
    }

    fn closed_key(&self) -> Vec<u8> {
        closed_key(self.opened_at, &self.key)
    }
}

/// The key of a closed incident in the `closed` column family: when it was opened, then
/// the incident, big-endian, so that the oldest come first.
fn closed_key(opened_at: u64, key: &IncidentKey) -> Vec<u8> {
    let mut k = Vec::with_capacity(48);
    k.extend_from_slice(&opened_at.to_be_bytes());
    k.extend_from_slice(key.member.as_slice());
    k.extend_from_slice(&key.seq.to_be_bytes());
    k
}

/// A member's newest incident closed resolved: no draw was registered, so its seq is still
/// unused on chain and a later gap opens it again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resolved {
    /// Its seq.
    pub seq: u64,
    /// The attempt a reopening starts at: one past the last one, whose digests honest nodes
    /// may have signed already.
    pub next_attempt: Attempt,
    /// When it was opened (its key among the closed incidents).
    pub opened_at: u64,
}

/// What a member's closed incidents leave for its later ones. The machine keeps it and
/// writes it with every close, so that start-up reads one record per member instead of
/// every incident the member ever had.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemberRecord {
    /// Highest seq closed covered (its draw registered).
    pub closed_through: Option<u64>,
    /// Newest incident closed resolved and not opened again.
    pub resolved: Option<Resolved>,
    /// The member's newest incident closed covered: what the booking rule needs.
    pub last_covered: Option<IncidentRecord>,
}

impl MemberRecord {
    /// Takes in `rec`, just closed.
    pub fn closed(&mut self, rec: &IncidentRecord) {
        let seq = rec.key.seq;
        match rec.closed {
            Some(CloseReason::Covered) => {
                self.closed_through = Some(self.closed_through.map_or(seq, |c| c.max(seq)));
                if self.last_covered.as_ref().is_none_or(|l| l.key.seq <= seq) {
                    self.last_covered = Some(rec.clone());
                }
                if self.resolved.is_some_and(|r| r.seq <= seq) {
                    self.resolved = None;
                }
            }
            Some(CloseReason::Resolved) => {
                self.resolved = Some(Resolved {
                    seq,
                    next_attempt: rec.attempt.saturating_add(1),
                    opened_at: rec.opened_at,
                });
            }
            None => {}
        }
    }
}

/// Durable state of one threshold action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActionRecord {
    /// Target vault.
    pub vault: VaultId,
    /// The action.
    pub action: ThresholdAction,
    /// When this node first saw it (ms).
    pub first_seen: u64,
    /// Whether this node approved (and signed) it.
    pub approved: bool,
    /// Whether the chain executed it.
    pub executed: bool,
}

/// A submission this node made for a certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SubmissionRecord {
    /// When it last submitted (ms).
    pub last_at: u64,
    /// How many times it submitted.
    pub count: u32,
}

/// The node's state on a [`Kv`].
pub struct NodeStore<K> {
    kv: K,
}

impl<K> std::fmt::Debug for NodeStore<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeStore").finish_non_exhaustive()
    }
}

fn corrupt(cf: Cf) -> impl Fn(DecodeError) -> StoreError {
    move |source| StoreError::Corrupt {
        cf: cf.name(),
        source,
    }
}

fn versioned<'a>(bytes: &'a [u8], what: &'static str) -> Result<Reader<'a>, DecodeError> {
    let mut r = Reader::new(bytes);
    match r.u8()? {
        RECORD_V1 => Ok(r),
        version => Err(DecodeError::Version { what, version }),
    }
}

fn decode_incident(raw: &[u8]) -> Result<IncidentRecord, DecodeError> {
    let mut r = Reader::new(raw);
    let v2 = match r.u8()? {
        RECORD_V1 => false,
        RECORD_V2 => true,
        version => {
            return Err(DecodeError::Version {
                what: "incident",
                version,
            });
        }
    };
    let key = r.key()?;
    let home = r.vault()?;
    let opened_at = r.u64()?;
    let attempt = r.u32()?;
    let attempt_started = r.u64()?;
    let registration = match r.u8()? {
        0 => None,
        1 => Some(Registration {
            draw_hash: r.b256()?,
            draw: r.draw()?,
            finalized: r.bool()?,
            block: if v2 { r.u64()? } else { 0 },
            rewound: v2 && r.bool()?,
        }),
        tag => {
            return Err(DecodeError::Tag {
                what: "registration",
                tag,
            });
        }
    };
    let count = r.len("legs_done", crate::types::MAX_LEGS)?;
    let mut legs_done = BTreeMap::new();
    for _ in 0..count {
        let vault = r.vault()?;
        let block = if v2 { r.u64()? } else { 0 };
        legs_done.insert(vault, block);
    }
    let closed = match r.u8()? {
        0 => None,
        1 => Some(CloseReason::Covered),
        2 => Some(CloseReason::Resolved),
        tag => {
            return Err(DecodeError::Tag {
                what: "closed",
                tag,
            });
        }
    };
    // Version-1 records of the first booking rule carry a flag it kept; the rule no
    // longer needs it.
    if !v2 && !r.is_empty() {
        r.bool()?;
    }
    r.finish()?;
    Ok(IncidentRecord {
        key,
        home,
        opened_at,
        attempt,
        attempt_started,
        registration,
        legs_done,
        closed,
    })
}

/// The key of an incident in `incidents` and of its proposals' prefix.
fn incident_key(key: &IncidentKey) -> Vec<u8> {
    let mut k = Writer::new();
    k.key(key);
    k.into_bytes()
}

/// The key of a proposal: its incident's key, then the attempt.
fn proposal_key(key: &IncidentKey, attempt: Attempt) -> Vec<u8> {
    let mut k = Writer::new();
    k.key(key).u32(attempt);
    k.into_bytes()
}

/// An incident record's bytes (the current record version).
fn encode_incident(rec: &IncidentRecord) -> Vec<u8> {
    let mut w = Writer::new();
    w.u8(RECORD_V2)
        .key(&rec.key)
        .vault(&rec.home)
        .u64(rec.opened_at)
        .u32(rec.attempt)
        .u64(rec.attempt_started);
    match &rec.registration {
        None => w.u8(0),
        Some(r) => w
            .u8(1)
            .b256(&r.draw_hash)
            .draw(&r.draw)
            .bool(r.finalized)
            .u64(r.block)
            .bool(r.rewound),
    };
    w.u32(rec.legs_done.len() as u32);
    for (v, block) in &rec.legs_done {
        w.vault(v).u64(*block);
    }
    w.u8(match rec.closed {
        None => 0,
        Some(CloseReason::Covered) => 1,
        Some(CloseReason::Resolved) => 2,
    });
    w.into_bytes()
}

fn encode_member(m: &MemberRecord) -> Vec<u8> {
    let mut w = Writer::new();
    w.u8(RECORD_V1);
    match m.closed_through {
        None => w.u8(0),
        Some(seq) => w.u8(1).u64(seq),
    };
    match m.resolved {
        None => w.u8(0),
        Some(r) => w.u8(1).u64(r.seq).u32(r.next_attempt).u64(r.opened_at),
    };
    let mut bytes = w.into_bytes();
    match &m.last_covered {
        None => bytes.push(0),
        Some(rec) => {
            bytes.push(1);
            bytes.extend(encode_incident(rec));
        }
    }
    bytes
}

fn decode_member(raw: &[u8]) -> Result<MemberRecord, DecodeError> {
    let mut r = versioned(raw, "member")?;
    let flag = |r: &mut Reader<'_>, what: &'static str| -> Result<bool, DecodeError> {
        match r.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            tag => Err(DecodeError::Tag { what, tag }),
        }
    };
    let closed_through = if flag(&mut r, "closed through")? {
        Some(r.u64()?)
    } else {
        None
    };
    let resolved = if flag(&mut r, "resolved")? {
        Some(Resolved {
            seq: r.u64()?,
            next_attempt: r.u32()?,
            opened_at: r.u64()?,
        })
    } else {
        None
    };
    let last_covered = if flag(&mut r, "last covered")? {
        Some(decode_incident(r.rest())?)
    } else {
        r.finish()?;
        None
    };
    Ok(MemberRecord {
        closed_through,
        resolved,
        last_covered,
    })
}

impl<K: Kv> NodeStore<K> {
    /// Opens the state on `kv`, writing the schema version into an empty store and refusing
    /// any other version.
    pub fn open(mut kv: K) -> Result<Self, StoreError> {
        match kv.get(Cf::Meta, SCHEMA_KEY)? {
            Some(raw) => {
                let bytes: [u8; 4] = raw
                    .as_slice()
                    .try_into()
                    .map_err(|_| StoreError::UnknownSchema { found: u32::MAX })?;
                match u32::from_le_bytes(bytes) {
                    SCHEMA_VERSION => {}
                    SCHEMA_V1 => migrate_v1(&mut kv)?,
                    found => return Err(StoreError::UnknownSchema { found }),
                }
            }
            None => {
                for cf in Cf::ALL {
                    if !kv.scan_prefix(cf, &[], Order::Ascending, 1)?.is_empty() {
                        return Err(StoreError::MissingSchema);
                    }
                }
                let mut batch = WriteBatch::default();
                batch.put(
                    Cf::Meta,
                    SCHEMA_KEY.to_vec(),
                    SCHEMA_VERSION.to_le_bytes().to_vec(),
                );
                kv.write(batch, true)?;
            }
        }
        Ok(Self { kv })
    }

    /// The backend.
    pub fn kv(&self) -> &K {
        &self.kv
    }

    /// Checks `digest` against what was signed for `key` and, if nothing was, records it in
    /// one synced write before returning. Only a verdict that [`GuardVerdict::may_sign`]
    /// allows signing.
    pub fn guard(&mut self, key: GuardKey, digest: B256) -> Result<GuardVerdict, StoreError> {
        let k = key.encode();
        if let Some(raw) = self.kv.get(Cf::SignGuard, &k)? {
            let mut r = versioned(&raw, "sign_guard").map_err(corrupt(Cf::SignGuard))?;
            let recorded = r.b256().map_err(corrupt(Cf::SignGuard))?;
            r.finish().map_err(corrupt(Cf::SignGuard))?;
            return Ok(if recorded == digest {
                GuardVerdict::AlreadyRecorded
            } else {
                GuardVerdict::Conflict { recorded }
            });
        }
        let mut w = Writer::new();
        w.u8(RECORD_V1).b256(&digest);
        let mut batch = WriteBatch::default();
        batch.put(Cf::SignGuard, k, w.into_bytes());
        self.kv.write(batch, true)?;
        Ok(GuardVerdict::Recorded)
    }

    /// Every sign-guard entry.
    pub fn guard_entries(&self) -> Result<Vec<(GuardKey, B256)>, StoreError> {
        self.kv
            .scan(Cf::SignGuard)?
            .into_iter()
            .map(|(k, v)| {
                let key = GuardKey::decode(&k).map_err(corrupt(Cf::SignGuard))?;
                let mut r = versioned(&v, "sign_guard").map_err(corrupt(Cf::SignGuard))?;
                let digest = r.b256().map_err(corrupt(Cf::SignGuard))?;
                r.finish().map_err(corrupt(Cf::SignGuard))?;
                Ok((key, digest))
            })
            .collect()
    }

    fn put(&mut self, cf: Cf, key: Vec<u8>, value: Vec<u8>) -> Result<(), StoreError> {
        let mut batch = WriteBatch::default();
        batch.put(cf, key, value);
        self.kv.write(batch, false)?;
        Ok(())
    }

    /// Stores an open incident (replacing its previous state).
    pub fn put_incident(&mut self, rec: &IncidentRecord) -> Result<(), StoreError> {
        debug_assert!(
            rec.closed.is_none(),
            "closed incidents go through close_incident"
        );
        self.put(Cf::Incidents, incident_key(&rec.key), encode_incident(rec))
    }

    /// Moves `rec`, just closed, out of the open incidents, with its member's record, in
    /// one atomic write.
    pub fn close_incident(
        &mut self,
        rec: &IncidentRecord,
        member: &MemberRecord,
    ) -> Result<(), StoreError> {
        let mut batch = WriteBatch::default();
        batch
            .delete(Cf::Incidents, incident_key(&rec.key))
            .put(Cf::Closed, rec.closed_key(), encode_incident(rec))
            .put(Cf::Members, rec.key.member.to_vec(), encode_member(member));
        self.kv.write(batch, false)?;
        Ok(())
    }

    /// Moves `rec`, a closed incident opened again, back into the open incidents, with its
    /// member's record, in one atomic write; `closed_opened_at` is when the closed one was
    /// opened (a resolved incident reopens as a new record).
    pub fn reopen_incident(
        &mut self,
        rec: &IncidentRecord,
        closed_opened_at: u64,
        member: &MemberRecord,
    ) -> Result<(), StoreError> {
        debug_assert!(rec.closed.is_none());
        let mut batch = WriteBatch::default();
        batch
            .delete(Cf::Closed, closed_key(closed_opened_at, &rec.key))
            .put(Cf::Incidents, incident_key(&rec.key), encode_incident(rec))
            .put(Cf::Members, rec.key.member.to_vec(), encode_member(member));
        self.kv.write(batch, false)?;
        Ok(())
    }

    /// The stored record of one open incident.
    pub fn get_incident(&self, key: &IncidentKey) -> Result<Option<IncidentRecord>, StoreError> {
        match self.kv.get(Cf::Incidents, &incident_key(key))? {
            None => Ok(None),
            Some(raw) => Ok(Some(decode_incident(&raw).map_err(corrupt(Cf::Incidents))?)),
        }
    }

    /// Stores an accepted proposal.
    pub fn put_proposal(&mut self, p: &DrawProposal) -> Result<(), StoreError> {
        let mut w = Writer::new();
        w.u8(RECORD_V1).proposal(p);
        self.put(
            Cf::Proposals,
            proposal_key(&p.key, p.attempt),
            w.into_bytes(),
        )
    }

    /// Stores a verified attestation over `digest`.
    pub fn put_attestation(
        &mut self,
        digest: B256,
        sig: &GuardianSignature,
    ) -> Result<(), StoreError> {
        let mut k = Writer::new();
        k.b256(&digest).address(&sig.signer);
        let mut w = Writer::new();
        w.u8(RECORD_V1).signature(sig);
        self.put(Cf::Attestations, k.into_bytes(), w.into_bytes())
    }

    /// Stores a certificate.
    pub fn put_certificate(&mut self, c: &Certificate) -> Result<(), StoreError> {
        let mut w = Writer::new();
        w.u8(RECORD_V1).certificate(c);
        self.put(Cf::Certificates, c.digest.to_vec(), w.into_bytes())
    }

    /// The stored certificate over `digest`, if this node formed one.
    pub fn get_certificate(&self, digest: &B256) -> Result<Option<Certificate>, StoreError> {
        let Some(raw) = self.kv.get(Cf::Certificates, digest.as_slice())? else {
            return Ok(None);
        };
        Self::decode_certificate(&raw)
            .map(Some)
            .map_err(corrupt(Cf::Certificates))
    }

    fn decode_certificate(raw: &[u8]) -> Result<Certificate, DecodeError> {
        let mut r = versioned(raw, "certificate")?;
        let c = r.certificate()?;
        r.finish()?;
        Ok(c)
    }

    /// Stores a submission made for the certificate over `digest`.
    pub fn put_submission(&mut self, digest: B256, s: &SubmissionRecord) -> Result<(), StoreError> {
        let mut w = Writer::new();
        w.u8(RECORD_V1).u64(s.last_at).u32(s.count);
        self.put(Cf::Submissions, digest.to_vec(), w.into_bytes())
    }

    /// Stores a threshold action.
    pub fn put_action(&mut self, a: &ActionRecord) -> Result<(), StoreError> {
        let mut k = Writer::new();
        k.vault(&a.vault).b256(&a.action.id());
        let mut w = Writer::new();
        w.u8(RECORD_V1)
            .vault(&a.vault)
            .action(&a.action)
            .u64(a.first_seen)
            .bool(a.approved)
            .bool(a.executed);
        self.put(Cf::Actions, k.into_bytes(), w.into_bytes())
    }

    /// Every open incident.
    pub fn open_incidents(&self) -> Result<Vec<IncidentRecord>, StoreError> {
        self.kv
            .scan(Cf::Incidents)?
            .iter()
            .map(|(_, v)| decode_incident(v).map_err(corrupt(Cf::Incidents)))
            .collect()
    }

    /// The `limit` closed incidents opened last, newest first.
    pub fn newest_closed(&self, limit: usize) -> Result<Vec<IncidentRecord>, StoreError> {
        self.kv
            .scan_prefix(Cf::Closed, &[], Order::Descending, limit)?
            .iter()
            .map(|(_, v)| decode_incident(v).map_err(corrupt(Cf::Closed)))
            .collect()
    }

    /// Every member's record.
    pub fn members(&self) -> Result<Vec<(B256, MemberRecord)>, StoreError> {
        self.kv
            .scan(Cf::Members)?
            .iter()
            .map(|(k, v)| {
                let member = B256::try_from(k.as_slice())
                    .map_err(|_| DecodeError::Trailing(k.len()))
                    .and_then(|m| Ok((m, decode_member(v)?)));
                member.map_err(corrupt(Cf::Members))
            })
            .collect()
    }

    /// The proposals accepted for `key`, lowest attempt first.
    pub fn proposals_of(&self, key: &IncidentKey) -> Result<Vec<DrawProposal>, StoreError> {
        let entries = self.kv.scan_prefix(
            Cf::Proposals,
            &incident_key(key),
            Order::Ascending,
            usize::MAX,
        )?;
        entries
            .iter()
            .map(|(_, v)| {
                let mut r = versioned(v, "proposal")?;
                let p = r.proposal()?;
                r.finish()?;
                Ok(p)
            })
            .collect::<Result<_, DecodeError>>()
            .map_err(corrupt(Cf::Proposals))
    }

    /// The verified attestations over `digest`.
    pub fn attestations_of(&self, digest: &B256) -> Result<Vec<GuardianSignature>, StoreError> {
        let entries = self.kv.scan_prefix(
            Cf::Attestations,
            digest.as_slice(),
            Order::Ascending,
            usize::MAX,
        )?;
        entries
            .iter()
            .map(|(_, v)| {
                let mut r = versioned(v, "attestation")?;
                let sig = r.signature()?;
                r.finish()?;
                Ok(sig)
            })
            .collect::<Result<_, DecodeError>>()
            .map_err(corrupt(Cf::Attestations))
    }

    /// The submission this node made for the certificate over `digest`, if any.
    pub fn get_submission(&self, digest: &B256) -> Result<Option<SubmissionRecord>, StoreError> {
        let Some(raw) = self.kv.get(Cf::Submissions, digest.as_slice())? else {
            return Ok(None);
        };
        let decode = || {
            let mut r = versioned(&raw, "submission")?;
            let rec = SubmissionRecord {
                last_at: r.u64()?,
                count: r.u32()?,
            };
            r.finish()?;
            Ok(rec)
        };
        decode().map(Some).map_err(corrupt(Cf::Submissions))
    }

    /// The digest the sign-guard recorded for `key`, if any.
    pub fn guarded(&self, key: &GuardKey) -> Result<Option<B256>, StoreError> {
        let Some(raw) = self.kv.get(Cf::SignGuard, &key.encode())? else {
            return Ok(None);
        };
        let mut r = versioned(&raw, "sign_guard").map_err(corrupt(Cf::SignGuard))?;
        let digest = r.b256().map_err(corrupt(Cf::SignGuard))?;
        r.finish().map_err(corrupt(Cf::SignGuard))?;
        Ok(Some(digest))
    }

    /// Every threshold action.
    pub fn actions(&self) -> Result<Vec<ActionRecord>, StoreError> {
        self.kv
            .scan(Cf::Actions)?
            .iter()
            .map(|(_, v)| {
                let mut r = versioned(v, "action")?;
                let a = ActionRecord {
                    vault: r.vault()?,
                    action: r.action()?,
                    first_seen: r.u64()?,
                    approved: r.bool()?,
                    executed: r.bool()?,
                };
                r.finish()?;
                Ok(a)
            })
            .collect::<Result<_, DecodeError>>()
            .map_err(corrupt(Cf::Actions))
    }

    /// Deletes up to `limit` of the oldest closed incidents that were opened before
    /// `before_ms` and whose legs' deadline has passed at `now_s` (a deep reorg can no
    /// longer reopen them), with every record kept for them. Stops at the first closed
    /// incident it may not delete. Returns how many it deleted.
    pub fn prune_closed(
        &mut self,
        before_ms: u64,
        now_s: u64,
        limit: usize,
    ) -> Result<usize, StoreError> {
        let oldest = self
            .kv
            .scan_prefix(Cf::Closed, &[], Order::Ascending, limit)?;
        let mut pruned = 0;
        for (k, v) in oldest {
            let rec = decode_incident(&v).map_err(corrupt(Cf::Closed))?;
            let live = rec
                .registration
                .as_ref()
                .is_some_and(|r| r.draw.legDeadline >= now_s);
            if rec.opened_at >= before_ms || live {
                break;
            }
            let mut batch = WriteBatch::default();
            batch.delete(Cf::Closed, k);
            self.forget(&rec, &mut batch)?;
            self.kv.write(batch, false)?;
            pruned += 1;
        }
        Ok(pruned)
    }

    /// Adds to `batch` the deletion of what was kept for `rec`, a closed incident: its
    /// proposals, and for each of its draws and leg releases the attestations, certificate,
    /// submission and sign-guard entry.
    fn forget(&self, rec: &IncidentRecord, batch: &mut WriteBatch) -> Result<(), StoreError> {
        let reopenable = rec.closed == Some(CloseReason::Resolved)
            && self
                .kv
                .get(Cf::Members, rec.key.member.as_slice())?
                .map(|raw| decode_member(&raw).map_err(corrupt(Cf::Members)))
                .transpose()?
                .and_then(|m| m.closed_through)
                .is_none_or(|c| c < rec.key.seq);
        let mut subjects = Vec::new();
        for p in self.proposals_of(&rec.key)? {
            batch.delete(Cf::Proposals, proposal_key(&p.key, p.attempt));
            let guard = GuardKey::Draw {
                key: p.key,
                attempt: p.attempt,
            };
            subjects.push((p.draw.digest(&rec.home), (!reopenable).then_some(guard)));
        }
        for (vault, release) in rec.leg_releases() {
            let guard = GuardKey::Leg {
                draw_hash: release.drawHash,
                vault,
            };
            subjects.push((release.digest(&vault), Some(guard)));
        }
        for (digest, guard) in subjects {
            let signers = self.kv.scan_prefix(
                Cf::Attestations,
                digest.as_slice(),
                Order::Ascending,
                usize::MAX,
            )?;
            for (k, _) in signers {
                batch.delete(Cf::Attestations, k);
            }
            batch.delete(Cf::Certificates, digest.to_vec());
            batch.delete(Cf::Submissions, digest.to_vec());
            if let Some(guard) = guard {
                batch.delete(Cf::SignGuard, guard.encode());
            }
        }
        Ok(())
    }
}

/// Migrates a version-1 store in one atomic write: closed incidents move from `incidents`
/// to `closed`, each member gets its record, and the version becomes [`SCHEMA_VERSION`].
fn migrate_v1<K: Kv>(kv: &mut K) -> Result<(), StoreError> {
    let mut batch = WriteBatch::default();
    let mut members: BTreeMap<B256, MemberRecord> = BTreeMap::new();
    // Ascending key: each member's incidents by seq, as the machine closed them.
    for (k, v) in kv.scan(Cf::Incidents)? {
        let rec = decode_incident(&v).map_err(corrupt(Cf::Incidents))?;
        if rec.closed.is_none() {
            continue;
        }
        members.entry(rec.key.member).or_default().closed(&rec);
        batch.delete(Cf::Incidents, k);
        batch.put(Cf::Closed, rec.closed_key(), encode_incident(&rec));
    }
    for (member, m) in &members {
        batch.put(Cf::Members, member.to_vec(), encode_member(m));
    }
    batch.put(
        Cf::Meta,
        SCHEMA_KEY.to_vec(),
        SCHEMA_VERSION.to_le_bytes().to_vec(),
    );
    kv.write(batch, true)?;
    tracing::info!(
        members = members.len(),
        "store migrated from schema version 1: closed incidents moved out of the open ones"
    );
    Ok(())
}
