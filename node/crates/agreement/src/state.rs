//! The node's durable state on a [`Kv`]: the sign-guard and the agreement records from
//! which the state machine is rebuilt after a restart.
//!
//! Invariants:
//! - [`NodeStore::open`] refuses a store whose schema version is not [`SCHEMA_VERSION`],
//!   and a store that holds data but no version;
//! - [`NodeStore::guard`] records at most one digest per [`GuardKey`], in one synced write,
//!   and never overwrites a recorded digest: a second, different digest is refused;
//! - every value carries a record version and decodes strictly (see [`crate::codec`]); a
//!   value that does not decode is an error, never skipped silently.

use crate::codec::{DecodeError, Reader, Writer};
use crate::kv::{Cf, Kv, KvError, WriteBatch};
use crate::types::{Attempt, Certificate, DrawProposal, IncidentKey, ThresholdAction};
use alloy::primitives::B256;
use backstop_contracts::eip712::{Draw, GuardianSignature, VaultId};
use std::collections::BTreeMap;

/// Schema version written in `meta` by this build.
pub const SCHEMA_VERSION: u32 = 1;
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
        "store schema version {found} is not supported (this build reads version {SCHEMA_VERSION})"
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
    /// When the current attempt started (ms).
    pub attempt_started: u64,
    /// The registered draw, once seen on chain.
    pub registration: Option<Registration>,
    /// Remote legs seen executed, with the block that showed each (0 in old records).
    pub legs_done: BTreeMap<VaultId, u64>,
    /// Set when closed.
    pub closed: Option<CloseReason>,
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

/// Everything loaded at start-up.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Incidents (open and closed).
    pub incidents: Vec<IncidentRecord>,
    /// Accepted proposals.
    pub proposals: Vec<DrawProposal>,
    /// Verified attestations: digest and signature.
    pub attestations: Vec<(B256, GuardianSignature)>,
    /// Certificates.
    pub certificates: Vec<Certificate>,
    /// Submissions, by certificate digest.
    pub submissions: Vec<(B256, SubmissionRecord)>,
    /// Threshold actions.
    pub actions: Vec<ActionRecord>,
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
                let found = u32::from_le_bytes(bytes);
                if found != SCHEMA_VERSION {
                    return Err(StoreError::UnknownSchema { found });
                }
            }
            None => {
                for cf in Cf::ALL {
                    if !kv.scan(cf)?.is_empty() {
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

    /// Stores an incident (replacing its previous state).
    pub fn put_incident(&mut self, rec: &IncidentRecord) -> Result<(), StoreError> {
        let mut k = Writer::new();
        k.key(&rec.key);
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
        self.put(Cf::Incidents, k.into_bytes(), w.into_bytes())
    }

    /// The stored record of one incident.
    pub fn get_incident(&self, key: &IncidentKey) -> Result<Option<IncidentRecord>, StoreError> {
        let mut k = Writer::new();
        k.key(key);
        match self.kv.get(Cf::Incidents, &k.into_bytes())? {
            None => Ok(None),
            Some(raw) => Ok(Some(
                Self::decode_incident(&raw).map_err(corrupt(Cf::Incidents))?,
            )),
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

    /// Stores an accepted proposal.
    pub fn put_proposal(&mut self, p: &DrawProposal) -> Result<(), StoreError> {
        let mut k = Writer::new();
        k.key(&p.key).u32(p.attempt);
        let mut w = Writer::new();
        w.u8(RECORD_V1).proposal(p);
        self.put(Cf::Proposals, k.into_bytes(), w.into_bytes())
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

    /// Loads everything (start-up).
    pub fn load(&self) -> Result<Snapshot, StoreError> {
        let mut s = Snapshot::default();
        for (_, v) in self.kv.scan(Cf::Incidents)? {
            s.incidents
                .push(Self::decode_incident(&v).map_err(corrupt(Cf::Incidents))?);
        }
        for (_, v) in self.kv.scan(Cf::Proposals)? {
            let p = (|| {
                let mut r = versioned(&v, "proposal")?;
                let p = r.proposal()?;
                r.finish()?;
                Ok(p)
            })()
            .map_err(corrupt(Cf::Proposals))?;
            s.proposals.push(p);
        }
        for (k, v) in self.kv.scan(Cf::Attestations)? {
            let a = (|| {
                let mut kr = Reader::new(&k);
                let digest = kr.b256()?;
                kr.address()?;
                kr.finish()?;
                let mut r = versioned(&v, "attestation")?;
                let sig = r.signature()?;
                r.finish()?;
                Ok((digest, sig))
            })()
            .map_err(corrupt(Cf::Attestations))?;
            s.attestations.push(a);
        }
        for (_, v) in self.kv.scan(Cf::Certificates)? {
            s.certificates
                .push(Self::decode_certificate(&v).map_err(corrupt(Cf::Certificates))?);
        }
        for (k, v) in self.kv.scan(Cf::Submissions)? {
            let e = (|| {
                let digest = B256::try_from(k.as_slice()).map_err(|_| DecodeError::Truncated {
                    at: 0,
                    need: 32usize.saturating_sub(k.len()),
                })?;
                let mut r = versioned(&v, "submission")?;
                let rec = SubmissionRecord {
                    last_at: r.u64()?,
                    count: r.u32()?,
                };
                r.finish()?;
                Ok((digest, rec))
            })()
            .map_err(corrupt(Cf::Submissions))?;
            s.submissions.push(e);
        }
        for (_, v) in self.kv.scan(Cf::Actions)? {
            let a = (|| {
                let mut r = versioned(&v, "action")?;
                let a = ActionRecord {
                    vault: r.vault()?,
                    action: r.action()?,
                    first_seen: r.u64()?,
                    approved: r.bool()?,
                    executed: r.bool()?,
                };
                r.finish()?;
                Ok(a)
            })()
            .map_err(corrupt(Cf::Actions))?;
            s.actions.push(a);
        }
        Ok(s)
    }
}
