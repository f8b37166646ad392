//! Validation of incoming envelopes: a pure function of (state, time, origin, bytes).
//!
//! [`Validator`] is sans-IO: the swarm adapter feeds it raw gossip data or catch-up
//! entries with the current time and the member index of the peer they came from, and
//! acts on the returned [`Verdict`] (report the gossipsub acceptance, deliver the message).
//! Its only state is a bounded seen-cache, one token bucket per consortium node and the
//! drop counters.
//!
//! # Validation table
//!
//! Checks run in this order (cheap first; the signature, the expensive check, only runs
//! on envelopes that passed everything else). "P4" is gossipsub's invalid-message
//! penalty, charged to the peer that forwarded the message (an honest forwarder
//! validated it before forwarding, so a Reject is always the forwarder's fault).
//!
//! | # | check | reason | gossipsub | peer penalty |
//! |---|-------|--------|-----------|--------------|
//! | 1 | forwarding peer is a consortium node | `unknown_peer` | Reject | P4 |
//! | 2 | size ≤ `max_envelope_bytes` | `oversized` | Reject | P4 |
//! | 3 | protobuf `SignedEnvelope`, signer 32 B, signature 64 B | `undecodable` | Reject | P4 |
//! | 4 | version == 1 | `unsupported_version` | Ignore | none |
//! | 5 | signer is a consortium node | `not_member` | Reject | P4 |
//! | 6 | gossip: signer == gossipsub source (the publisher's signed claim) | `signer_mismatch` | Reject | P4 |
//! | 7 | timestamp ≥ now − max age (gossip and catch-up windows differ) | `too_old` | Ignore | none |
//! | 8 | timestamp ≤ now + `max_future_skew_ms` | `from_future` | Ignore | none |
//! | 9 | content id not in the seen-cache | `duplicate` | Ignore | none |
//! | 10 | gossip: forwarder's token bucket has a token | `rate_limited` | Ignore | none |
//! | 11 | payload decodes and every field is well-formed | `invalid_payload` | Reject | P4 |
//! | 12 | ed25519 signature (strict) over the signing bytes | `bad_signature` | Reject | P4 |
//! | 13 | an attestation's guardian address is the signer node's guardian | `guardian_mismatch` | Reject | P4 |
//!
//! Ignore is for what an honest peer can cause (clock skew, delay, a newer version,
//! duplicates, bursts): the message is dropped without penalty. Reject is for what only
//! a faulty or malicious peer sends. Either way the message is not forwarded, so a bad
//! message stops at the first hop. Envelopes above gossipsub's `max_transmit_size`
//! (configured above `max_envelope_bytes`) are dropped by the gossipsub codec itself
//! and never reach this table.
//!
//! Catch-up entries skip checks 1, 6 and 10 (the serving peer relays other nodes'
//! envelopes; the request bounds the page) and use the longer catch-up age window.
//!
//! Invariants: every input yields exactly one verdict and bumps exactly one counter;
//! nothing is accepted without a valid signature of a consortium node; the seen-cache
//! holds at most `seen_capacity` ids (oldest evicted first), so it bounds memory and
//! not correctness: delivery is at-least-once and consumers must be idempotent.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use ed25519_dalek::Signature;
use sha2::{Digest, Sha256};

use crate::envelope::{ENVELOPE_VERSION, Envelope, EnvelopeError};
use crate::message::Wire;
use backstop_types::Consortium;
use backstop_types::Message;

/// Validation limits.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidationConfig {
    /// Largest envelope accepted, bytes.
    pub max_envelope_bytes: usize,
    /// Oldest gossip envelope accepted, ms before now.
    pub max_age_ms: u64,
    /// Oldest catch-up envelope accepted, ms before now (open incidents may be old).
    pub max_catch_up_age_ms: u64,
    /// Furthest in the future an envelope may be dated, ms after now.
    pub max_future_skew_ms: u64,
    /// Entries of the seen-cache.
    pub seen_capacity: usize,
    /// Burst of the per-peer token bucket, envelopes.
    pub rate_burst: u32,
    /// Refill of the per-peer token bucket, envelopes per second.
    pub rate_per_sec: u32,
}

impl Default for ValidationConfig {
    fn default() -> Self {
        Self {
            max_envelope_bytes: 64 * 1024,
            max_age_ms: 5 * 60 * 1000,
            max_catch_up_age_ms: 7 * 24 * 3600 * 1000,
            max_future_skew_ms: 5_000,
            seen_capacity: 1 << 16,
            rate_burst: 2_000,
            rate_per_sec: 1_000,
        }
    }
}

/// Where an envelope came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Gossip. Indices are consortium indices, `None` when the peer is not a member.
    Gossip {
        /// The peer that forwarded it to us.
        forwarder: Option<usize>,
        /// The publisher named (and signed) in the gossipsub message.
        source: Option<usize>,
    },
    /// A catch-up response from `server` (a consortium index, or `None`).
    CatchUp {
        /// The peer that served it.
        server: Option<usize>,
    },
}

/// Why an envelope was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// The forwarding peer is not a consortium node.
    UnknownPeer,
    /// Larger than `max_envelope_bytes`.
    Oversized,
    /// Not an envelope.
    Undecodable,
    /// Envelope version this node does not know.
    UnsupportedVersion,
    /// Signer is not a consortium node.
    NotMember,
    /// Signer differs from the gossipsub publisher.
    SignerMismatch,
    /// Older than the age window.
    TooOld,
    /// Dated beyond the allowed clock skew.
    FromFuture,
    /// Already seen.
    Duplicate,
    /// The forwarder exceeded its rate.
    RateLimited,
    /// The payload is not a well-formed message.
    InvalidPayload,
    /// The signature does not verify.
    BadSignature,
    /// An attestation's guardian is not the signer node's guardian.
    GuardianMismatch,
}

/// What gossipsub is told about a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Acceptance {
    /// Deliver and forward.
    Accept,
    /// Drop and charge the forwarder the invalid-message penalty (P4).
    Reject,
    /// Drop without penalty.
    Ignore,
}

impl DropReason {
    /// Every reason, in counter order.
    pub const ALL: [DropReason; 13] = [
        Self::UnknownPeer,
        Self::Oversized,
        Self::Undecodable,
        Self::UnsupportedVersion,
        Self::NotMember,
        Self::SignerMismatch,
        Self::TooOld,
        Self::FromFuture,
        Self::Duplicate,
        Self::RateLimited,
        Self::InvalidPayload,
        Self::BadSignature,
        Self::GuardianMismatch,
    ];

    /// The acceptance reported to gossipsub (see the module table).
    pub fn acceptance(self) -> Acceptance {
        match self {
            Self::UnsupportedVersion
            | Self::TooOld
            | Self::FromFuture
            | Self::Duplicate
            | Self::RateLimited => Acceptance::Ignore,
            Self::UnknownPeer
            | Self::Oversized
            | Self::Undecodable
            | Self::NotMember
            | Self::SignerMismatch
            | Self::InvalidPayload
            | Self::BadSignature
            | Self::GuardianMismatch => Acceptance::Reject,
        }
    }

    /// Stable metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UnknownPeer => "unknown_peer",
            Self::Oversized => "oversized",
            Self::Undecodable => "undecodable",
            Self::UnsupportedVersion => "unsupported_version",
            Self::NotMember => "not_member",
            Self::SignerMismatch => "signer_mismatch",
            Self::TooOld => "too_old",
            Self::FromFuture => "from_future",
            Self::Duplicate => "duplicate",
            Self::RateLimited => "rate_limited",
            Self::InvalidPayload => "invalid_payload",
            Self::BadSignature => "bad_signature",
            Self::GuardianMismatch => "guardian_mismatch",
        }
    }

    fn index(self) -> usize {
        Self::ALL.iter().position(|r| *r == self).unwrap_or(0)
    }
}

/// A message that passed every check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Validated {
    /// Consortium index of the signer.
    pub signer: usize,
    /// Signer's timestamp.
    pub timestamp_ms: u64,
    /// Content id (see [`Envelope::content_id`]).
    pub content_id: [u8; 32],
    /// The message.
    pub message: Message,
    /// The envelope bytes as received (what a catch-up store keeps and serves).
    pub envelope: Vec<u8>,
    /// True when it arrived through catch-up rather than gossip.
    pub catch_up: bool,
}

/// The outcome of validating one envelope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Deliver and forward.
    Accept(Box<Validated>),
    /// Drop; penalise the forwarder.
    Reject(DropReason),
    /// Drop; no penalty.
    Ignore(DropReason),
}

impl Verdict {
    fn drop(reason: DropReason) -> Self {
        match reason.acceptance() {
            Acceptance::Ignore => Self::Ignore(reason),
            _ => Self::Reject(reason),
        }
    }

    /// The gossipsub acceptance of this verdict.
    pub fn acceptance(&self) -> Acceptance {
        match self {
            Self::Accept(_) => Acceptance::Accept,
            Self::Reject(_) => Acceptance::Reject,
            Self::Ignore(_) => Acceptance::Ignore,
        }
    }
}

/// Counts of accepted and dropped envelopes, shared with whoever exports metrics.
#[derive(Debug, Default)]
pub struct Counters {
    accepted: AtomicU64,
    dropped: [AtomicU64; DropReason::ALL.len()],
}

impl Counters {
    /// Envelopes accepted.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Envelopes dropped for `reason`.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.dropped[reason.index()].load(Ordering::Relaxed)
    }

    /// `(label, count)` for every reason, in [`DropReason::ALL`] order.
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        DropReason::ALL
            .iter()
            .map(|r| (r.as_str(), self.dropped(*r)))
            .collect()
    }

    /// Total dropped, all reasons.
    pub fn total_dropped(&self) -> u64 {
        DropReason::ALL.iter().map(|r| self.dropped(*r)).sum()
    }

    fn count(&self, verdict: &Verdict) {
        match verdict {
            Verdict::Accept(_) => self.accepted.fetch_add(1, Ordering::Relaxed),
            Verdict::Reject(r) | Verdict::Ignore(r) => {
                self.dropped[r.index()].fetch_add(1, Ordering::Relaxed)
            }
        };
    }
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    last_ms: u64,
}

/// Bounded FIFO set of content ids.
#[derive(Debug)]
struct SeenCache {
    set: HashSet<[u8; 32]>,
    order: VecDeque<[u8; 32]>,
    capacity: usize,
}

impl SeenCache {
    fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            set: HashSet::with_capacity(capacity),
            order: VecDeque::with_capacity(capacity),
            capacity,
        }
    }

    fn contains(&self, id: &[u8; 32]) -> bool {
        self.set.contains(id)
    }

    /// Inserts `id`; false if it was present.
    fn insert(&mut self, id: [u8; 32]) -> bool {
        if !self.set.insert(id) {
            return false;
        }
        self.order.push_back(id);
        while self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        true
    }
}

/// An envelope that passed every check but the signature.
struct Pending {
    catch_up: bool,
    /// The signing bytes and their SHA-256, computed once.
    signing: Vec<u8>,
    content_id: [u8; 32],
    envelope: Envelope,
    bytes: Vec<u8>,
    signer: usize,
    message: Message,
}

/// The validator. See the module docs for the table it implements.
#[derive(Debug)]
pub struct Validator {
    consortium: Arc<Consortium>,
    config: ValidationConfig,
    seen: SeenCache,
    buckets: Vec<Bucket>,
    counters: Arc<Counters>,
}

impl Validator {
    /// A validator for `consortium` with fresh state.
    pub fn new(consortium: Arc<Consortium>, config: ValidationConfig) -> Self {
        let buckets = vec![
            Bucket {
                tokens: f64::from(config.rate_burst),
                last_ms: 0,
            };
            consortium.n()
        ];
        Self {
            seen: SeenCache::new(config.seen_capacity),
            consortium,
            config,
            buckets,
            counters: Arc::new(Counters::default()),
        }
    }

    /// The counters this validator bumps.
    pub fn counters(&self) -> Arc<Counters> {
        self.counters.clone()
    }

    /// The consortium it validates against.
    pub fn consortium(&self) -> &Arc<Consortium> {
        &self.consortium
    }

    /// Follows a guardian rotation: `consortium` has the same nodes (identities, in the same
    /// order) and the guardians the vaults now hold, so a node's attestations are checked
    /// against its new key (row 13). Refused, keeping the current set, when the nodes differ.
    pub fn follow_guardians(&mut self, consortium: Arc<Consortium>) -> Result<(), String> {
        if consortium.verifying_keys() != self.consortium.verifying_keys() {
            return Err("a guardian rotation must keep the consortium's nodes".into());
        }
        self.consortium = consortium;
        Ok(())
    }

    /// Marks content as seen (what this node published itself), so that an echo of it
    /// counts as a duplicate.
    pub fn mark_seen(&mut self, content_id: [u8; 32]) {
        self.seen.insert(content_id);
    }

    /// Validates one envelope received at `now_ms`.
    pub fn validate(&mut self, now_ms: u64, origin: Origin, bytes: &[u8]) -> Verdict {
        let verdict = match self.precheck(now_ms, origin, bytes) {
            Err(reason) => Verdict::drop(reason),
            Ok(p) => {
                let key = &self.consortium.verifying_keys()[p.signer];
                let signature = Signature::from_bytes(&p.envelope.signature);
                if key.verify_strict(&p.signing, &signature).is_ok() {
                    self.finish(p)
                } else {
                    Verdict::drop(DropReason::BadSignature)
                }
            }
        };
        self.counters.count(&verdict);
        verdict
    }

    /// Validates several envelopes, verifying their signatures as one ed25519 batch
    /// (falling back to one by one when the batch fails, to find the culprits).
    /// Verdicts are in input order and equal to what [`Self::validate`] would give,
    /// except that a batch accepts the (non-strict) cofactorless forms a strict single
    /// check refuses; those can only come from a member's own key.
    pub fn validate_batch(&mut self, now_ms: u64, items: &[(Origin, &[u8])]) -> Vec<Verdict> {
        let mut out: Vec<Option<Verdict>> = Vec::with_capacity(items.len());
        let mut pending: Vec<(usize, Pending)> = Vec::new();
        for (i, (origin, bytes)) in items.iter().enumerate() {
            match self.precheck(now_ms, *origin, bytes) {
                Ok(p) => {
                    pending.push((i, p));
                    out.push(None);
                }
                Err(r) => out.push(Some(Verdict::drop(r))),
            }
        }
        let signing: Vec<Vec<u8>> = pending
            .iter_mut()
            .map(|(_, p)| std::mem::take(&mut p.signing))
            .collect();
        let messages: Vec<&[u8]> = signing.iter().map(Vec::as_slice).collect();
        let signatures: Vec<Signature> = pending
            .iter()
            .map(|(_, p)| Signature::from_bytes(&p.envelope.signature))
            .collect();
        let keys: Vec<_> = pending
            .iter()
            .map(|(_, p)| self.consortium.verifying_keys()[p.signer])
            .collect();
        // A batch of one gains nothing: verify it strictly, like `validate`.
        let batch_ok =
            pending.len() > 1 && ed25519_dalek::verify_batch(&messages, &signatures, &keys).is_ok();
        for (j, (i, p)) in pending.into_iter().enumerate() {
            let ok = batch_ok || keys[j].verify_strict(messages[j], &signatures[j]).is_ok();
            out[i] = Some(if ok {
                self.finish(p)
            } else {
                Verdict::drop(DropReason::BadSignature)
            });
        }
        out.into_iter()
            .map(|v| {
                let v = v.unwrap_or(Verdict::Reject(DropReason::BadSignature));
                self.counters.count(&v);
                v
            })
            .collect()
    }

    /// Every check but the signature (rows 1-11 of the table).
    fn precheck(
        &mut self,
        now_ms: u64,
        origin: Origin,
        bytes: &[u8],
    ) -> Result<Pending, DropReason> {
        let (max_age, gossip) = match origin {
            Origin::Gossip { forwarder, .. } => {
                if forwarder.is_none_or(|i| i >= self.consortium.n()) {
                    return Err(DropReason::UnknownPeer);
                }
                (self.config.max_age_ms, true)
            }
            Origin::CatchUp { .. } => (self.config.max_catch_up_age_ms, false),
        };
        let envelope =
            Envelope::decode(bytes, self.config.max_envelope_bytes).map_err(|e| match e {
                EnvelopeError::Oversized { .. } => DropReason::Oversized,
                EnvelopeError::Undecodable(_) => DropReason::Undecodable,
            })?;
        if envelope.version != ENVELOPE_VERSION {
            return Err(DropReason::UnsupportedVersion);
        }
        let signer = self
            .consortium
            .index_of_identity(&envelope.signer)
            .map(usize::from)
            .ok_or(DropReason::NotMember)?;
        if let Origin::Gossip { source, .. } = origin
            && source != Some(signer)
        {
            return Err(DropReason::SignerMismatch);
        }
        if envelope.timestamp_ms < now_ms.saturating_sub(max_age) {
            return Err(DropReason::TooOld);
        }
        if envelope.timestamp_ms > now_ms.saturating_add(self.config.max_future_skew_ms) {
            return Err(DropReason::FromFuture);
        }
        let signing = envelope.signing_bytes();
        let content_id: [u8; 32] = Sha256::digest(&signing).into();
        if self.seen.contains(&content_id) {
            return Err(DropReason::Duplicate);
        }
        if let Origin::Gossip {
            forwarder: Some(f), ..
        } = origin
            && gossip
            && !self.take_token(f, now_ms)
        {
            return Err(DropReason::RateLimited);
        }
        let message = Message::decode(&envelope.payload).map_err(|_| DropReason::InvalidPayload)?;
        Ok(Pending {
            catch_up: !gossip,
            signing,
            content_id,
            envelope,
            bytes: bytes.to_vec(),
            signer,
            message,
        })
    }

    /// Row 13 and the seen-cache insert, after a valid signature.
    fn finish(&mut self, p: Pending) -> Verdict {
        if let Some(sig) = p.message.guardian_signature()
            && sig.signer != self.consortium.nodes()[p.signer].guardian
        {
            return Verdict::drop(DropReason::GuardianMismatch);
        }
        let content_id = p.content_id;
        if !self.seen.insert(content_id) {
            return Verdict::drop(DropReason::Duplicate);
        }
        Verdict::Accept(Box::new(Validated {
            signer: p.signer,
            timestamp_ms: p.envelope.timestamp_ms,
            content_id,
            message: p.message,
            envelope: p.bytes,
            catch_up: p.catch_up,
        }))
    }

    fn take_token(&mut self, peer: usize, now_ms: u64) -> bool {
        let (burst, rate) = (
            f64::from(self.config.rate_burst),
            f64::from(self.config.rate_per_sec),
        );
        let Some(b) = self.buckets.get_mut(peer) else {
            return false;
        };
        let elapsed = now_ms.saturating_sub(b.last_ms) as f64 / 1000.0;
        b.tokens = (b.tokens + elapsed * rate).min(burst);
        b.last_ms = b.last_ms.max(now_ms);
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}
