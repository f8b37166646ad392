//! The sans-IO agreement state machine of one node.
//!
//! [`Machine::handle`] takes an [`Event`] (a gap observation, a gossip message, a chain
//! fact, a local request or a tick) and the current time, and returns [`Output`]s
//! (messages to broadcast, certificates to submit, when to be woken). It reads chain state
//! only through the injected [`StateView`], signs only through the injected
//! [`GuardianSigner`], and keeps its state in a [`NodeStore`], from which
//! [`Machine::restore`] rebuilds it after a restart.
//!
//! Invariants:
//! - **record before sign**: every signature is preceded by a [`NodeStore::guard`] call that
//!   recorded (synced) or found the same digest; a conflicting digest is never signed, so a
//!   node signs at most one digest per `(member, seq, attempt)`, per `(draw hash, vault)`
//!   and per `(vault, action id)`, across restarts;
//! - a draw is signed only when the node's own view recomputes the same draw at the pinned
//!   blocks, only for the proposer of that attempt, never after a draw of that key was seen
//!   registered, and never while an earlier incident of the member is still open;
//! - legs are signed only for the draw the home chain registered, and only once that
//!   registration is final;
//! - a certificate holds `quorum` signatures of distinct guardians, each verified against
//!   the digest; attestations from non-guardians, for unknown digests, duplicates and stale
//!   attempts are dropped and counted in [`Stats`];
//! - everything kept for hostile input is bounded: proposals per incident, buffered
//!   attestations per guardian, open actions.

use crate::kv::Kv;
use crate::refusal::Refusal;
use crate::state::{
    ActionRecord, CloseReason, GuardKey, IncidentRecord, MemberRecord, NodeStore, Registration,
    StoreError, SubmissionRecord,
};
use crate::types::{
    ActionAttestation, ActionProposal, Attempt, Certificate, Consortium, DrawAttestation,
    DrawProposal, GapObservation, IncidentKey, LegAttestation, MAX_LEGS, MAX_PINNED, Message,
    NodeIndex, PinnedBlock, Subject, ThresholdAction,
};
use alloy::primitives::{Address, B256, U256};
use alloy::signers::local::PrivateKeySigner;
use backstop_contracts::eip712::{Draw, GuardianSignature, Signable, VaultId, sign_digest};
use backstop_types::governance::proposal_digest;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use tracing::{debug, info, warn};

/// Most executed action ids remembered (beyond the actions still being gathered).
pub const MAX_EXECUTED_ACTIONS: usize = 4096;
/// Most covered incidents kept for a deep reorg to reopen (one per member is the usual).
pub const MAX_RECENT_COVERED: usize = 1024;
/// How often closed incidents past their retention are pruned (ms).
const PRUNE_INTERVAL_MS: u64 = 60_000;
/// Most closed incidents pruned at a time: a store that kept years of history is pruned
/// over minutes, never in one long write.
const PRUNE_BATCH: usize = 1024;

/// Why the view refuses or cannot answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ViewError {
    /// A pinned block is not a confirmed block of that chain (or not known yet).
    #[error("unknown pinned block: {0}")]
    UnknownBlock(String),
    /// A rule of the view refuses (member frozen, chain quarantined, breaker tripped, no
    /// gap...).
    #[error("refused: {0}")]
    Refused(#[from] Refusal),
    /// The state could not be read.
    #[error("state unavailable: {0}")]
    Unavailable(String),
}

/// The node's own view of chain state, injected into the machine.
pub trait StateView {
    /// The member's home vault, if the member is known.
    fn home_vault(&self, member: &B256) -> Option<VaultId>;
    /// As proposer: pins one confirmed block per chain and computes the draw for `key`.
    fn propose(
        &mut self,
        key: &IncidentKey,
        now_ms: u64,
    ) -> Result<(Vec<PinnedBlock>, Draw), ViewError>;
    /// As attester: re-reads the pinned blocks, recomputes the draw and checks policy.
    fn recompute(
        &mut self,
        key: &IncidentKey,
        pinned: &[PinnedBlock],
        now_ms: u64,
    ) -> Result<Draw, ViewError>;
    /// Whether this node approves the threshold action (a confirmed signal, an operator's
    /// request...).
    fn approve_action(
        &mut self,
        vault: &VaultId,
        action: &ThresholdAction,
        now_ms: u64,
    ) -> Result<(), ViewError>;
    /// A member's incident closed covered (or was restored so): what it paid gates the
    /// member's next draw by the booking rule ([`crate::booking`]). Called in seq order.
    fn covered(&mut self, rec: &IncidentRecord, closed_ms: u64);
}

/// Why signing failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("signer: {0}")]
pub struct SignError(pub String);

/// The node's guardian key, injected into the machine.
pub trait GuardianSigner {
    /// The guardian address.
    fn address(&self) -> Address;
    /// Signs a digest (already recorded by the sign-guard).
    fn sign(&self, digest: B256) -> Result<GuardianSignature, SignError>;
}

impl GuardianSigner for PrivateKeySigner {
    fn address(&self) -> Address {
        alloy::signers::Signer::address(self)
    }

    fn sign(&self, digest: B256) -> Result<GuardianSignature, SignError> {
        sign_digest(self, digest).map_err(|e| SignError(e.to_string()))
    }
}

/// Checks a guardian signature over a digest (a pure function, so it may be memoized).
pub trait SignatureCheck {
    /// Whether `sig` over `digest` recovers to `sig.signer`.
    fn check(&self, sig: &GuardianSignature, digest: B256) -> bool;
}

/// secp256k1 recovery through `GuardianSignature::verify`; the default.
#[derive(Clone, Copy, Debug, Default)]
pub struct Secp256k1Check;

impl SignatureCheck for Secp256k1Check {
    fn check(&self, sig: &GuardianSignature, digest: B256) -> bool {
        sig.verify(digest).is_ok()
    }
}

/// Errors that stop the machine (the node must not go on without its store or signer).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MachineError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The signer failed.
    #[error(transparent)]
    Sign(#[from] SignError),
    /// The configuration is inconsistent.
    #[error("configuration: {0}")]
    Config(String),
}

/// Timing and bounds.
#[derive(Clone, Debug)]
pub struct Config {
    /// The consortium.
    pub consortium: Consortium,
    /// This node's index in it.
    pub me: NodeIndex,
    /// Gaps at or below this do not open incidents.
    pub dust: U256,
    /// Timeout of attempt 0 (ms); attempt `a` waits `base · 2^min(a, max_timeout_doublings)`,
    /// counted from the attempt's start, or, once its certificate forms here, from the first
    /// fallback submitter's turn (`submit_delay(1)` after the certificate).
    pub attempt_timeout_ms: u64,
    /// Cap on the doublings of the attempt timeout.
    pub max_timeout_doublings: u32,
    /// Fallback `i` of a certificate submits `submit_delay_ms · (2^i - 1)` after it formed.
    pub submit_delay_ms: u64,
    /// Interval between resubmissions of a certificate not yet seen executed.
    pub resubmit_ms: u64,
    /// Interval between rebroadcasts of own leg and action attestations.
    pub rebroadcast_ms: u64,
    /// A proposal may lead the current attempt by this many; a farther one (a node catching
    /// up after a restart) is accepted at most once per `attempt_timeout_ms` per incident,
    /// so a byzantine proposer cannot make a node record attempts at message rate.
    pub attempt_lead: u32,
    /// Proposals and attestations of attempts older than current minus this are stale.
    pub attempt_window: u32,
    /// Buffered attestations (digest not known yet) per guardian.
    pub pending_per_signer: usize,
    /// Buffered attestations older than this are dropped (ms).
    pub pending_ttl_ms: u64,
    /// Most open threshold actions tracked.
    pub max_actions: usize,
    /// After an incident closes covered, the member has this long (ms) to book what it was
    /// paid before a gap still standing opens its next seq: its `solvency()` lags the legs,
    /// and a draw computed from the lagging read would pay the same loss twice.
    pub settle_ms: u64,
    /// How long a closed incident's records are kept (ms since it opened) before they are
    /// pruned from the store; never before its legs' deadline.
    pub retain_closed_ms: u64,
}

impl Config {
    /// Defaults for `consortium` and `me` (timings suit chains with ~1-12 s blocks).
    pub fn new(consortium: Consortium, me: NodeIndex) -> Self {
        Self {
            consortium,
            me,
            dust: U256::ZERO,
            attempt_timeout_ms: 4_000,
            max_timeout_doublings: 3,
            submit_delay_ms: 3_000,
            resubmit_ms: 30_000,
            rebroadcast_ms: 5_000,
            attempt_lead: 4,
            attempt_window: 32,
            pending_per_signer: 64,
            pending_ttl_ms: 120_000,
            max_actions: 1024,
            settle_ms: 3_000,
            retain_closed_ms: 30 * 86_400_000,
        }
    }

    /// Timeout of `attempt`.
    pub fn attempt_timeout(&self, attempt: Attempt) -> u64 {
        self.attempt_timeout_ms
            .saturating_mul(1u64 << attempt.min(self.max_timeout_doublings).min(32))
    }

    /// Delay of submitter rank `rank` after the certificate formed.
    pub fn submit_delay(&self, rank: usize) -> u64 {
        let r = rank.min(20) as u32;
        self.submit_delay_ms.saturating_mul((1u64 << r) - 1)
    }
}

/// Input of the machine.
#[derive(Clone, Debug)]
pub enum Event {
    /// This node's chain layer read a solvency gap at a confirmed head.
    Observed(GapObservation),
    /// A gossip message from node `from` (authenticated by its envelope).
    Received {
        /// Sender.
        from: NodeIndex,
        /// Payload.
        message: Message,
    },
    /// The chain layer saw a draw registered on its home vault (`finalized` at confirmed
    /// depth).
    DrawRegistered {
        /// Incident.
        key: IncidentKey,
        /// Digest of the registered draw.
        draw_hash: B256,
        /// The registered draw.
        draw: Draw,
        /// At confirmed depth.
        finalized: bool,
        /// The block that showed it.
        block: u64,
    },
    /// The chain layer saw a remote leg paid.
    LegExecuted {
        /// Registered draw.
        draw_hash: B256,
        /// Paying vault.
        vault: VaultId,
        /// The block that showed it.
        block: u64,
    },
    /// A reorg deeper than the confirmation depth replaced the blocks of `chain_id` above
    /// `after`: the registrations and legs they showed are gone from the chain.
    Rewound {
        /// Chain.
        chain_id: u64,
        /// The newest block the reorg kept.
        after: u64,
    },
    /// The chain layer saw a threshold action executed.
    ActionExecuted {
        /// Vault.
        vault: VaultId,
        /// Action id.
        id: B256,
    },
    /// The policy layer or an operator asks for a threshold action.
    RequestAction {
        /// Vault.
        vault: VaultId,
        /// Action.
        action: ThresholdAction,
    },
    /// Time passed.
    Tick,
}

/// Output of the machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Gossip this to every node. Attestations in it are already recorded and signed.
    Broadcast(Message),
    /// Submit this certificate to its vault.
    Submit(Certificate),
    /// Deliver a [`Event::Tick`] at or after this time (ms).
    WakeAt(u64),
    /// A deep reorg took back what the chain had shown of an incident: operators must hear
    /// of it. The machine submits the same draw and releases again where it can.
    Rewound {
        /// Incident.
        key: IncidentKey,
        /// Chain of the reorg.
        chain_id: u64,
        /// Its registration was taken back.
        registration: bool,
        /// Remote legs taken back.
        legs: Vec<VaultId>,
        /// The incident is open again (false: it could not be reopened, because a later
        /// incident of the member is open or closed; operators must act).
        reopened: bool,
    },
}

/// Counters of what the machine did and dropped.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Signatures produced.
    pub signed: u64,
    /// Certificates formed.
    pub certificates: u64,
    /// Submissions emitted.
    pub submissions: u64,
    /// Attestations or proposals signed by a non-guardian / sent by a non-proposer.
    pub dropped_not_authorized: u64,
    /// Signatures that do not recover to their claimed signer.
    pub dropped_bad_signature: u64,
    /// Attestations for digests that match nothing known.
    pub dropped_unknown_digest: u64,
    /// Duplicates.
    pub dropped_duplicate: u64,
    /// Old attempts, closed or registered incidents, expired deadlines.
    pub dropped_stale: u64,
    /// Proposals the view refused or that differ from the view's draw.
    pub rejected_by_view: u64,
    /// Proposals and actions refused by a rule of the view, by [`Refusal::kind`] (at most
    /// [`Refusal::KINDS`] entries), counted each time a message asks for the signature.
    pub refusals: BTreeMap<&'static str, u64>,
    /// Two different proposals for one attempt.
    pub equivocations: u64,
    /// Signatures refused by the sign-guard.
    pub guard_conflicts: u64,
    /// Buffered attestations dropped (quota or age).
    pub dropped_pending: u64,
}

/// A registration as the chain layer reported it.
#[derive(Clone, Debug)]
struct Seen {
    draw_hash: B256,
    draw: Draw,
    finalized: bool,
    block: u64,
}

struct Collector {
    subject: Subject,
    quorum: usize,
    sigs: BTreeMap<Address, GuardianSignature>,
    certified: bool,
}

struct Incident {
    rec: IncidentRecord,
    proposals: BTreeMap<Attempt, (DrawProposal, B256)>,
    legs: BTreeMap<VaultId, B256>,
    next_rebroadcast: u64,
    last_far_jump: Option<u64>,
    /// Newest home block at which this node knows the gap stood: its own observations and
    /// the pinned home block of each proposal its view validated. An observation of no gap
    /// at or below it is older news (this node's view behind its peers') and resolves
    /// nothing. Not stored: after a restart, any later observation counts.
    gap_block: u64,
}

struct CertState {
    cert: Certificate,
    due: u64,
    submission: Option<SubmissionRecord>,
    done: bool,
}

struct ActionState {
    rec: ActionRecord,
    digest: B256,
    next_rebroadcast: u64,
}

struct Pending {
    message: Message,
    at: u64,
}

/// The agreement state machine of one node.
pub struct Machine<V, S, K> {
    cfg: Config,
    me_guardian: Address,
    view: V,
    signer: S,
    store: NodeStore<K>,
    incidents: BTreeMap<IncidentKey, Incident>,
    open_by_member: BTreeMap<B256, u64>,
    /// Per member, what its closed incidents leave for later ones: the highest seq closed
    /// covered, the newest resolved without a draw (a later gap reopens its seq), its last
    /// payout. Written to the store with every close.
    members: BTreeMap<B256, MemberRecord>,
    /// Per member, until when (ms) a gap does not open the next seq (see `settle_ms`).
    settling: BTreeMap<B256, u64>,
    by_draw_hash: BTreeMap<B256, IncidentKey>,
    /// Incidents closed covered whose registration or legs a deep reorg could still take
    /// back and the consortium still put back: until the leg deadline, at most
    /// [`MAX_RECENT_COVERED`].
    recent: BTreeMap<IncidentKey, IncidentRecord>,
    collectors: BTreeMap<B256, Collector>,
    certs: BTreeMap<B256, CertState>,
    actions: BTreeMap<(VaultId, B256), ActionState>,
    /// Actions known executed (their id is spent on the vault), oldest first, at most
    /// [`MAX_EXECUTED_ACTIONS`]: one evicted and proposed again is refused by its vault.
    executed_actions: BTreeSet<(VaultId, B256)>,
    executed_order: VecDeque<(VaultId, B256)>,
    pending: BTreeMap<B256, BTreeMap<Address, Pending>>,
    pending_count: BTreeMap<Address, usize>,
    deferred: BTreeMap<B256, (IncidentKey, Seen)>,
    stats: Stats,
    now: u64,
    /// When closed incidents are next pruned from the store (ms).
    next_prune: u64,
    checker: Arc<dyn SignatureCheck + Send + Sync>,
}

impl<V: StateView, S: GuardianSigner, K: Kv> Machine<V, S, K> {
    /// Builds the machine from the store's contents (empty on first start).
    pub fn restore(
        cfg: Config,
        view: V,
        signer: S,
        store: NodeStore<K>,
        now: u64,
    ) -> Result<Self, MachineError> {
        let me_guardian = signer.address();
        match cfg.consortium.node(cfg.me) {
            Some(node) if node.guardian == me_guardian => {}
            _ => {
                return Err(MachineError::Config(format!(
                    "node {} of the consortium does not have guardian {me_guardian}",
                    cfg.me
                )));
            }
        }
        let mut m = Self {
            cfg,
            me_guardian,
            view,
            signer,
            store,
            incidents: BTreeMap::new(),
            open_by_member: BTreeMap::new(),
            members: BTreeMap::new(),
            settling: BTreeMap::new(),
            by_draw_hash: BTreeMap::new(),
            recent: BTreeMap::new(),
            collectors: BTreeMap::new(),
            certs: BTreeMap::new(),
            actions: BTreeMap::new(),
            executed_actions: BTreeSet::new(),
            executed_order: VecDeque::new(),
            pending: BTreeMap::new(),
            pending_count: BTreeMap::new(),
            deferred: BTreeMap::new(),
            stats: Stats::default(),
            now,
            next_prune: now,
            checker: Arc::new(Secp256k1Check),
        };
        m.restore_incidents()?;
        m.restore_actions()?;
        // Leg collectors of final registrations (re-signing is idempotent via the guard).
        let registered: Vec<IncidentKey> = m
            .incidents
            .values()
            .filter(|i| i.rec.registration.as_ref().is_some_and(|r| r.finalized))
            .map(|i| i.rec.key)
            .collect();
        let mut out = Vec::new();
        for key in registered {
            m.setup_legs(key, &mut out)?;
        }
        m.restore_signatures()?;
        m.resign_lost()?;
        // The store may hold signatures of guardians the vaults rotated out since.
        m.drop_rotated_out();
        m.certify_all()?;
        info!(
            incidents = m.incidents.len(),
            certificates = m.certs.len(),
            actions = m.actions.len(),
            "agreement state restored"
        );
        Ok(m)
    }

    /// Signs again what the sign-guard says this node signed, where the signature itself is
    /// gone: the guard's record is synced before a signature leaves, the attestation record
    /// after it is not, so a power cut between them loses the signature while peers may
    /// have it. Without this, an action or draw whose quorum needs this node's signature
    /// would wait for it until its deadline. The same holds after a rotation of this node's
    /// key: the new key signs what the old one did. The digest is the recorded one, so the
    /// sign-guard's rule holds.
    fn resign_lost(&mut self) -> Result<(), MachineError> {
        if !self.signing() {
            return Ok(());
        }
        let mut lost = Vec::new();
        for (digest, c) in &self.collectors {
            if c.sigs.contains_key(&self.me_guardian) {
                continue;
            }
            for key in self.guard_keys(digest, &c.subject) {
                if self.store.guarded(&key)? == Some(*digest) {
                    lost.push(*digest);
                    break;
                }
            }
        }
        for digest in lost {
            let sig = self.signer.sign(digest)?;
            self.stats.signed += 1;
            self.store.put_attestation(digest, &sig)?;
            if let Some(c) = self.collectors.get_mut(&digest) {
                c.sigs.insert(sig.signer, sig);
            }
            info!(%digest, "signed again (lost with unsynced writes, or the key was rotated)");
        }
        Ok(())
    }

    /// The sign-guard keys under which this node may have signed `digest`, of `subject`:
    /// a draw's under each attempt that proposed it.
    fn guard_keys(&self, digest: &B256, subject: &Subject) -> Vec<GuardKey> {
        match subject {
            Subject::Draw { key, .. } => self
                .incidents
                .get(key)
                .map(|i| {
                    i.proposals
                        .iter()
                        .filter(|(_, (_, d))| d == digest)
                        .map(|(attempt, _)| GuardKey::Draw {
                            key: *key,
                            attempt: *attempt,
                        })
                        .collect()
                })
                .unwrap_or_default(),
            Subject::Leg { vault, release } => vec![GuardKey::Leg {
                draw_hash: release.drawHash,
                vault: *vault,
            }],
            Subject::Action { vault, action } => vec![GuardKey::Action {
                vault: *vault,
                id: action.id(),
            }],
        }
    }

    /// Restores the member records, the recently covered incidents a deep reorg may reopen
    /// (among the newest [`MAX_RECENT_COVERED`] closed), and the open incidents with their
    /// proposals. Nothing older is read: start-up does not grow with the closed history.
    fn restore_incidents(&mut self) -> Result<(), MachineError> {
        let now = self.now;
        for (member, rec) in self.store.members()? {
            if let Some(last) = &rec.last_covered {
                self.view.covered(last, now);
            }
            self.members.insert(member, rec);
        }
        for rec in self
            .store
            .newest_closed(MAX_RECENT_COVERED)?
            .into_iter()
            .rev()
        {
            if rec.closed == Some(CloseReason::Covered) {
                self.remember_covered(rec);
            }
        }
        let t = self.cfg.consortium.t();
        for rec in self.store.open_incidents()? {
            let key = rec.key;
            self.open_by_member.insert(key.member, key.seq);
            if let Some(r) = &rec.registration {
                self.by_draw_hash.insert(r.draw_hash, key);
            }
            let mut proposals = BTreeMap::new();
            for p in self.store.proposals_of(&key)? {
                let digest = p.draw.digest(&rec.home);
                self.collectors.entry(digest).or_insert_with(|| Collector {
                    subject: Subject::Draw {
                        key,
                        attempt: p.attempt,
                        vault: rec.home,
                        draw: p.draw.clone(),
                    },
                    quorum: t,
                    sigs: BTreeMap::new(),
                    certified: false,
                });
                proposals.insert(p.attempt, (p, digest));
            }
            self.incidents.insert(
                key,
                Incident {
                    rec,
                    proposals,
                    legs: BTreeMap::new(),
                    next_rebroadcast: now,
                    last_far_jump: None,
                    gap_block: 0,
                },
            );
        }
        Ok(())
    }

    /// Restores the threshold actions: executed ones as spent ids, the others with their
    /// collectors.
    fn restore_actions(&mut self) -> Result<(), MachineError> {
        for a in self.store.actions()? {
            if a.executed {
                self.remember_executed(a.vault, a.action.id());
                continue;
            }
            let digest = a.action.digest(&a.vault);
            self.collectors.insert(
                digest,
                Collector {
                    subject: Subject::Action {
                        vault: a.vault,
                        action: a.action.clone(),
                    },
                    quorum: a.action.quorum(&self.cfg.consortium),
                    sigs: BTreeMap::new(),
                    certified: false,
                },
            );
            self.actions.insert(
                (a.vault, a.action.id()),
                ActionState {
                    rec: a,
                    digest,
                    next_rebroadcast: self.now,
                },
            );
        }
        Ok(())
    }

    /// Restores, for every collector, the attestations, the certificate and the last
    /// submission stored under its digest. Certificates of closed subjects are not read.
    fn restore_signatures(&mut self) -> Result<(), MachineError> {
        let now = self.now;
        let digests: Vec<B256> = self.collectors.keys().copied().collect();
        for digest in digests {
            let sigs = self.store.attestations_of(&digest)?;
            let cert = self.store.get_certificate(&digest)?;
            if let Some(c) = self.collectors.get_mut(&digest) {
                for sig in sigs {
                    c.sigs.insert(sig.signer, sig);
                }
                c.certified |= cert.is_some();
            }
            let Some(cert) = cert else {
                continue;
            };
            let done = self.subject_done(&cert.digest, &cert.subject);
            let submission = self.store.get_submission(&digest)?;
            let due = match submission {
                Some(s) => s.last_at.saturating_add(self.cfg.resubmit_ms).max(now),
                None => now + self.submit_delay_for(&cert.digest),
            };
            self.certs.insert(
                digest,
                CertState {
                    cert,
                    due,
                    submission,
                    done,
                },
            );
        }
        Ok(())
    }

    /// Whether this node's signer holds its guardian key of the current set (a node whose
    /// key the vaults rotated out signs nothing until [`Machine::replace_signer`]).
    pub fn signing(&self) -> bool {
        self.signer.address() == self.me_guardian
    }

    /// Follows a guardian rotation the vaults executed: `consortium` is the same nodes, in
    /// the same order, with the guardians the vaults now hold
    /// ([`Consortium::rebind`](crate::types::Consortium::rebind)). Signatures of guardians
    /// rotated out are dropped from every collector and buffer, and a certificate not yet
    /// done that carries one is dropped and formed again from the signatures left and
    /// those the new set gives (peers rebroadcast theirs; this node signs what its guard
    /// recorded again once its signer holds its new key): the vaults refuse the old one.
    /// The vaults pay a draw, a leg or an action once, whatever set signed it.
    pub fn follow_guardians(&mut self, consortium: Consortium) -> Result<(), MachineError> {
        let same_nodes = consortium.n() == self.cfg.consortium.n()
            && consortium
                .nodes()
                .iter()
                .zip(self.cfg.consortium.nodes())
                .all(|(a, b)| a.identity == b.identity);
        if !same_nodes {
            return Err(MachineError::Config(
                "a guardian rotation must keep the consortium's nodes".into(),
            ));
        }
        let me_guardian = consortium
            .node(self.cfg.me)
            .map(|n| n.guardian)
            .ok_or_else(|| MachineError::Config("this node left the consortium".into()))?;
        if me_guardian != self.me_guardian {
            warn!(old = %self.me_guardian, new = %me_guardian, "this node's guardian was rotated");
        }
        self.cfg.consortium = consortium;
        self.me_guardian = me_guardian;
        self.drop_rotated_out();
        self.resign_lost()?;
        self.certify_all()
    }

    /// Replaces the guardian signer by one holding this node's guardian key of the current
    /// set; signs again with it what the guard recorded, and signs what this node skipped
    /// while it held no key of the set: the held proposal of each open incident's current
    /// attempt (only if its view still recomputes the same draw) and the legs of final
    /// registrations. Returns the attestations to gossip.
    pub fn replace_signer(&mut self, signer: S) -> Result<Vec<Output>, MachineError> {
        if signer.address() != self.me_guardian {
            return Err(MachineError::Config(format!(
                "the new signer holds {}, but this node's guardian is {}",
                signer.address(),
                self.me_guardian
            )));
        }
        self.signer = signer;
        self.resign_lost()?;
        let open: Vec<(IncidentKey, bool)> = self
            .incidents
            .values()
            .filter(|i| i.rec.closed.is_none())
            .map(|i| {
                (
                    i.rec.key,
                    i.rec.registration.as_ref().is_some_and(|r| r.finalized),
                )
            })
            .collect();
        let mut out = Vec::new();
        for (key, final_registration) in open {
            if final_registration {
                self.setup_legs(key, &mut out)?;
            } else {
                self.sign_held_proposal(key, &mut out)?;
            }
        }
        self.certify_all()?;
        Ok(out)
    }

    /// Signs the proposal this node holds for `key`'s current attempt, if it has not signed
    /// it, its deadline has not passed and its view recomputes the same draw (the other
    /// checks of [`Machine::on_proposal`] passed when it was taken in, and an open incident
    /// is its member's only open one).
    fn sign_held_proposal(
        &mut self,
        key: IncidentKey,
        out: &mut Vec<Output>,
    ) -> Result<(), MachineError> {
        let Some(inc) = self.incidents.get(&key) else {
            return Ok(());
        };
        let attempt = inc.rec.attempt;
        let Some((p, digest)) = inc.proposals.get(&attempt).cloned() else {
            return Ok(());
        };
        let signed = self
            .collectors
            .get(&digest)
            .is_some_and(|c| c.sigs.contains_key(&self.me_guardian));
        let expired = self.now_s() > p.draw.deadline;
        if inc.rec.registration.is_some() || signed || expired || !self.validate(&p) {
            return Ok(());
        }
        self.attest_draw(key, attempt, digest, out)?;
        self.try_certify(digest)
    }

    /// Drops what guardians outside the current set signed (see
    /// [`Machine::follow_guardians`]).
    fn drop_rotated_out(&mut self) {
        let c = &self.cfg.consortium;
        let member = |g: &Address| c.index_of_guardian(g).is_some();
        let stale: Vec<B256> = self
            .certs
            .iter()
            .filter(|(_, cs)| !cs.done && !cs.cert.signatures.iter().all(|s| member(&s.signer)))
            .map(|(d, _)| *d)
            .collect();
        for d in &stale {
            self.certs.remove(d);
            info!(digest = %d, "certificate with a rotated-out guardian dropped, to be signed again");
        }
        for (d, col) in self.collectors.iter_mut() {
            col.sigs.retain(|g, _| member(g));
            if stale.contains(d) || col.sigs.len() < col.quorum {
                col.certified = false;
            }
        }
        for buffered in self.pending.values_mut() {
            buffered.retain(|g, _| member(g));
        }
        self.pending.retain(|_, b| !b.is_empty());
        self.pending_count.retain(|g, _| member(g));
    }

    fn certify_all(&mut self) -> Result<(), MachineError> {
        let digests: Vec<B256> = self.collectors.keys().copied().collect();
        for d in digests {
            self.try_certify(d)?;
        }
        Ok(())
    }

    /// Replaces the signature check (the simulation shares a memo of verified signatures
    /// between its nodes; verification stays secp256k1 recovery).
    pub fn with_signature_check(mut self, checker: Arc<dyn SignatureCheck + Send + Sync>) -> Self {
        self.checker = checker;
        self
    }

    fn verify(&self, sig: &GuardianSignature, digest: B256) -> bool {
        self.checker.check(sig, digest)
    }

    /// Counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The store.
    pub fn store(&self) -> &NodeStore<K> {
        &self.store
    }

    /// The view.
    pub fn view(&self) -> &V {
        &self.view
    }

    /// The injected view, for its owner to update between events (new chain state).
    pub fn view_mut(&mut self) -> &mut V {
        &mut self.view
    }

    /// Open incidents and their current attempt.
    pub fn open_incidents(&self) -> Vec<(IncidentKey, Attempt)> {
        self.incidents
            .values()
            .map(|i| (i.rec.key, i.rec.attempt))
            .collect()
    }

    /// The durable record of the open incident `key`.
    pub fn incident(&self, key: &IncidentKey) -> Option<&IncidentRecord> {
        self.incidents.get(key).map(|i| &i.rec)
    }

    /// Whether the incident `key` is open here.
    pub fn is_open(&self, key: &IncidentKey) -> bool {
        self.incidents.contains_key(key)
    }

    /// Newest seq of each member that closed resolved (no draw) and was not reopened.
    pub fn resolved_seq(&self, member: &B256) -> Option<u64> {
        self.members.get(member)?.resolved.map(|r| r.seq)
    }

    /// Highest seq of `member` closed with a registered draw.
    pub fn closed_through(&self, member: &B256) -> Option<u64> {
        self.members.get(member)?.closed_through
    }

    /// Whether `key`'s seq is at or below its member's highest seq closed covered.
    fn closed_covered(&self, key: &IncidentKey) -> bool {
        self.closed_through(&key.member)
            .is_some_and(|c| c >= key.seq)
    }

    /// Threshold actions tracked and not yet executed.
    pub fn open_actions(&self) -> usize {
        self.actions.len()
    }

    /// The vaults and ids of the threshold actions tracked and not yet executed.
    pub fn open_action_ids(&self) -> impl Iterator<Item = (VaultId, B256)> + '_ {
        self.actions.keys().copied()
    }

    /// Handles one event at time `now` (ms).
    pub fn handle(&mut self, now: u64, event: Event) -> Result<Vec<Output>, MachineError> {
        self.now = self.now.max(now);
        let mut out = Vec::new();
        match event {
            Event::Observed(obs) => self.on_observed(obs, &mut out)?,
            Event::Received { from, message } => self.on_message(from, message, &mut out)?,
            Event::DrawRegistered {
                key,
                draw_hash,
                draw,
                finalized,
                block,
            } => {
                let seen = Seen {
                    draw_hash,
                    draw,
                    finalized,
                    block,
                };
                self.on_registered(key, seen, &mut out)?
            }
            Event::LegExecuted {
                draw_hash,
                vault,
                block,
            } => self.on_leg_executed(draw_hash, vault, block)?,
            Event::Rewound { chain_id, after } => self.on_rewound(chain_id, after, &mut out)?,
            Event::ActionExecuted { vault, id } => self.on_action_executed(vault, id)?,
            Event::RequestAction { vault, action } => {
                self.consider_action(vault, action, true, &mut out)?
            }
            Event::Tick => self.on_tick(&mut out)?,
        }
        self.check_invariants();
        if let Some(at) = self.next_wake() {
            out.push(Output::WakeAt(at));
        }
        Ok(out)
    }

    fn now_s(&self) -> u64 {
        self.now / 1000
    }

    /// What must hold after every event (checked in debug builds: every test and the
    /// simulation run them).
    fn check_invariants(&self) {
        // The open-incident index names exactly the open incidents, one per member.
        debug_assert!(
            self.open_by_member.iter().all(|(member, seq)| {
                let key = IncidentKey {
                    member: *member,
                    seq: *seq,
                };
                self.incidents
                    .get(&key)
                    .is_some_and(|i| i.rec.closed.is_none())
            }),
            "open_by_member names an incident that is not open"
        );
        debug_assert_eq!(
            self.open_by_member.len(),
            self.incidents
                .values()
                .filter(|i| i.rec.closed.is_none())
                .count(),
            "an open incident is missing from open_by_member"
        );
        debug_assert!(self.executed_actions.len() <= MAX_EXECUTED_ACTIONS);
        debug_assert!(
            self.recent.len() <= MAX_RECENT_COVERED
                && self.recent.keys().all(|k| !self.incidents.contains_key(k)),
            "recently covered incidents are bounded and closed"
        );
        debug_assert!(self.actions.len() <= self.cfg.max_actions);
        // Nothing goes to a vault signed by a guardian the vaults rotated out.
        debug_assert!(
            self.certs.values().all(|cs| cs.done
                || cs
                    .cert
                    .signatures
                    .iter()
                    .all(|s| { self.cfg.consortium.index_of_guardian(&s.signer).is_some() })),
            "a certificate to submit carries a rotated-out guardian"
        );
    }

    // ------------------------------------------------------------------ incidents

    fn open_incident(&mut self, key: IncidentKey, attempt: Attempt) -> Result<bool, MachineError> {
        if self.incidents.contains_key(&key) {
            return Ok(true);
        }
        if self.closed_covered(&key) || self.open_by_member.contains_key(&key.member) {
            return Ok(false);
        }
        let Some(home) = self.view.home_vault(&key.member) else {
            debug!(member = %key.member, "unknown member");
            return Ok(false);
        };
        // A reopened incident starts past every attempt it had: guardians refuse to sign a
        // second digest for an attempt they signed, so reusing one would stall it.
        let reopened = self
            .members
            .get(&key.member)
            .and_then(|m| m.resolved)
            .filter(|r| r.seq == key.seq);
        let attempt = reopened.map_or(attempt, |r| attempt.max(r.next_attempt));
        let rec = IncidentRecord {
            key,
            home,
            opened_at: self.now,
            attempt,
            attempt_started: self.now,
            registration: None,
            legs_done: BTreeMap::new(),
            closed: None,
        };
        if let Some(resolved) = reopened {
            let member = self.members.entry(key.member).or_default();
            member.resolved = None;
            self.store
                .reopen_incident(&rec, resolved.opened_at, member)?;
            info!(member = %key.member, seq = key.seq, attempt, "incident reopened");
        } else {
            self.store.put_incident(&rec)?;
            info!(member = %key.member, seq = key.seq, attempt, "incident opened");
        }
        self.open_by_member.insert(key.member, key.seq);
        self.incidents.insert(
            key,
            Incident {
                rec,
                proposals: BTreeMap::new(),
                legs: BTreeMap::new(),
                next_rebroadcast: self.now,
                last_far_jump: None,
                gap_block: 0,
            },
        );
        Ok(true)
    }

    fn on_observed(
        &mut self,
        obs: GapObservation,
        out: &mut Vec<Output>,
    ) -> Result<(), MachineError> {
        let key = obs.key;
        if obs.gap() <= self.cfg.dust {
            // The gap is gone: an incident with no registered draw resolves, unless this
            // block is not past one where the gap is known to stand.
            if let Some(inc) = self.incidents.get(&key)
                && inc.rec.registration.is_none()
                && obs.block_number > inc.gap_block
            {
                self.close(key, CloseReason::Resolved)?;
            }
            return Ok(());
        }
        if let Some(inc) = self.incidents.get_mut(&key) {
            inc.gap_block = inc.gap_block.max(obs.block_number);
        }
        if let Some(inc) = self.incidents.get(&key) {
            // The proposer of the current attempt that could not propose yet (its view
            // refused the pinned state) tries again on each fresh observation.
            let attempt = inc.rec.attempt;
            if inc.rec.closed.is_none()
                && inc.rec.registration.is_none()
                && !inc.proposals.contains_key(&attempt)
                && self.cfg.consortium.proposer(&key, attempt) == self.cfg.me
            {
                self.propose(key, attempt, out)?;
            }
            return Ok(());
        }
        if self.settling(&key.member) {
            return Ok(());
        }
        if self.view.home_vault(&key.member).map(|v| v.chain_id) != Some(obs.home_chain_id) {
            return Ok(());
        }
        if !self.open_incident(key, 0)? {
            return Ok(());
        }
        if let Some(inc) = self.incidents.get_mut(&key) {
            inc.gap_block = obs.block_number;
        }
        let attempt = self.incidents.get(&key).map_or(0, |i| i.rec.attempt);
        if self.cfg.consortium.proposer(&key, attempt) == self.cfg.me {
            self.propose(key, attempt, out)?;
        }
        Ok(())
    }

    /// Whether `member`'s last covered incident closed less than `settle_ms` ago.
    fn settling(&self, member: &B256) -> bool {
        self.settling
            .get(member)
            .is_some_and(|&until| self.now < until)
    }

    fn propose(
        &mut self,
        key: IncidentKey,
        attempt: Attempt,
        out: &mut Vec<Output>,
    ) -> Result<(), MachineError> {
        let (pinned, draw) = match self.view.propose(&key, self.now) {
            Ok(x) => x,
            Err(e) => {
                debug!(member = %key.member, seq = key.seq, attempt, error = %e, "cannot propose");
                return Ok(());
            }
        };
        let proposal = DrawProposal {
            key,
            attempt,
            proposer: self.cfg.me,
            pinned,
            draw,
        };
        // Recorded (by `on_proposal`, with this node's attestation) before it leaves, and
        // only if recorded: one proposal per attempt, across restarts (callers propose only
        // for an attempt with no recorded proposal).
        let mut own = Vec::new();
        self.on_proposal(self.cfg.me, proposal.clone(), &mut own)?;
        let recorded = self
            .incidents
            .get(&key)
            .and_then(|i| i.proposals.get(&attempt))
            .is_some_and(|(p, _)| *p == proposal);
        if recorded {
            out.push(Output::Broadcast(Message::DrawProposal(proposal)));
        }
        out.extend(own);
        Ok(())
    }

    fn on_proposal(
        &mut self,
        from: NodeIndex,
        p: DrawProposal,
        out: &mut Vec<Output>,
    ) -> Result<(), MachineError> {
        let key = p.key;
        if from != p.proposer || self.cfg.consortium.proposer(&key, p.attempt) != from {
            self.stats.dropped_not_authorized += 1;
            return Ok(());
        }
        if p.pinned.len() > MAX_PINNED
            || p.draw.legs.len() > MAX_LEGS
            || p.draw.member != key.member
            || p.draw.seq != key.seq
        {
            self.stats.rejected_by_view += 1;
            return Ok(());
        }
        if self.closed_covered(&key)
            || self
                .open_by_member
                .get(&key.member)
                .is_some_and(|&s| s > key.seq)
            || self.now_s() > p.draw.deadline
        {
            self.stats.dropped_stale += 1;
            return Ok(());
        }
        if self
            .open_by_member
            .get(&key.member)
            .is_some_and(|&s| s < key.seq)
        {
            // An earlier incident of this member is still open here: paying the next one
            // now could cover the same loss twice.
            self.stats.rejected_by_view += 1;
            return Ok(());
        }
        let mut validated = false;
        if !self.incidents.contains_key(&key) {
            if self.settling(&key.member) {
                // The member may not have booked its last payout yet (see `settle_ms`).
                self.stats.rejected_by_view += 1;
                return Ok(());
            }
            // Validate before opening, so garbage does not open incidents.
            if !self.validate(&p) {
                return Ok(());
            }
            validated = true;
            if !self.open_incident(key, p.attempt)? {
                self.stats.dropped_stale += 1;
                return Ok(());
            }
        }
        let lead = self.cfg.attempt_lead;
        let window = self.cfg.attempt_window;
        let now = self.now;
        let Some(inc) = self.incidents.get(&key) else {
            return Ok(());
        };
        let far = p.attempt > inc.rec.attempt.saturating_add(lead);
        let far_allowed = inc
            .last_far_jump
            .is_none_or(|t| now >= t + self.cfg.attempt_timeout_ms);
        if inc.rec.registration.is_some()
            || p.attempt.saturating_add(window) < inc.rec.attempt
            || (far && !far_allowed)
        {
            self.stats.dropped_stale += 1;
            return Ok(());
        }
        if let Some((known, _)) = inc.proposals.get(&p.attempt) {
            if *known == p {
                self.stats.dropped_duplicate += 1;
            } else {
                self.stats.equivocations += 1;
                warn!(member = %key.member, seq = key.seq, attempt = p.attempt, proposer = from, "equivocating proposer");
            }
            return Ok(());
        }
        let home = inc.rec.home;
        if !validated && !self.validate(&p) {
            return Ok(());
        }
        let digest = p.draw.digest(&home);
        self.store.put_proposal(&p)?;
        let attempt = p.attempt;
        self.collectors.entry(digest).or_insert_with(|| Collector {
            subject: Subject::Draw {
                key,
                attempt,
                vault: home,
                draw: p.draw.clone(),
            },
            quorum: self.cfg.consortium.t(),
            sigs: BTreeMap::new(),
            certified: false,
        });
        let now = self.now;
        if let Some(inc) = self.incidents.get_mut(&key) {
            // Validated: the view read the gap at the pinned home block.
            if let Some(b) = p.pinned.iter().find(|b| b.chain_id == home.chain_id) {
                inc.gap_block = inc.gap_block.max(b.number);
            }
            inc.proposals.insert(attempt, (p, digest));
            let floor = inc.rec.attempt.saturating_sub(window);
            inc.proposals.retain(|a, _| *a >= floor);
            if far {
                inc.last_far_jump = Some(now);
            }
            if attempt > inc.rec.attempt {
                inc.rec.attempt = attempt;
                inc.rec.attempt_started = now;
                let rec = inc.rec.clone();
                self.store.put_incident(&rec)?;
            }
        }
        self.attest_draw(key, attempt, digest, out)?;
        self.drain_pending(digest)?;
        self.try_certify(digest)
    }

    /// Signs `digest` as `key`'s draw of `attempt` (through the sign-guard) and gossips the
    /// attestation; nothing when the guard refuses or this node holds no key of the set.
    fn attest_draw(
        &mut self,
        key: IncidentKey,
        attempt: Attempt,
        digest: B256,
        out: &mut Vec<Output>,
    ) -> Result<(), MachineError> {
        if let Some(signature) = self.guarded_sign(GuardKey::Draw { key, attempt }, digest)? {
            out.push(Output::Broadcast(Message::DrawAttestation(
                DrawAttestation {
                    key,
                    attempt,
                    digest,
                    signature,
                },
            )));
        }
        Ok(())
    }

    /// Whether the view recomputes the proposed draw at its pinned blocks.
    fn validate(&mut self, p: &DrawProposal) -> bool {
        match self.view.recompute(&p.key, &p.pinned, self.now) {
            Ok(d) if d == p.draw => true,
            Ok(_) => {
                self.stats.rejected_by_view += 1;
                debug!(member = %p.key.member, seq = p.key.seq, attempt = p.attempt, "proposal differs from own view");
                false
            }
            Err(e) => {
                self.stats.rejected_by_view += 1;
                self.count_refusal(&e);
                // Proposals are few (one per attempt): an operator sees why this node did not sign.
                info!(member = %p.key.member, seq = p.key.seq, attempt = p.attempt, error = %e, "proposal refused; not attesting");
                false
            }
        }
    }

    fn count_refusal(&mut self, e: &ViewError) {
        if let ViewError::Refused(r) = e {
            *self.stats.refusals.entry(r.kind()).or_default() += 1;
        }
    }

    /// Signs, as their proposer, the digest of a governance proposal of `action` on
    /// `targets` ([`proposal_digest`]). No sign-guard: the digest is tagged so that it is
    /// never one a vault verifies, and the signature only names the proposal's author.
    pub fn sign_proposal(
        &self,
        targets: &[VaultId],
        action: &ThresholdAction,
    ) -> Result<GuardianSignature, MachineError> {
        Ok(self.signer.sign(proposal_digest(targets, action))?)
    }

    /// Records `digest` in the sign-guard, then signs it and adds the signature to its
    /// collector. `None` when the guard refuses.
    fn guarded_sign(
        &mut self,
        key: GuardKey,
        digest: B256,
    ) -> Result<Option<GuardianSignature>, MachineError> {
        if !self.signing() {
            debug!(%digest, "not signing: this node's guardian key was rotated out");
            return Ok(None);
        }
        let verdict = self.store.guard(key, digest)?;
        if !verdict.may_sign() {
            self.stats.guard_conflicts += 1;
            warn!(?key, %digest, "sign-guard refused a second digest");
            return Ok(None);
        }
        let sig = self.signer.sign(digest)?;
        self.stats.signed += 1;
        self.store.put_attestation(digest, &sig)?;
        if let Some(c) = self.collectors.get_mut(&digest) {
            c.sigs.insert(sig.signer, sig);
        }
        Ok(Some(sig))
    }

    fn on_message(
        &mut self,
        from: NodeIndex,
        message: Message,
        out: &mut Vec<Output>,
    ) -> Result<(), MachineError> {
        if self.cfg.consortium.node(from).is_none() {
            self.stats.dropped_not_authorized += 1;
            return Ok(());
        }
        match message {
            Message::DrawProposal(p) => self.on_proposal(from, p, out),
            Message::DrawAttestation(a) => self.on_draw_attestation(a),
            Message::LegAttestation(a) => self.on_leg_attestation(a),
            Message::ActionProposal(ActionProposal { vault, action }) => {
                self.consider_action(vault, action, false, out)
            }
            Message::ActionAttestation(a) => self.on_action_attestation(a, out),
            // Signals are the policy layer's, governance proposals the governance table's;
            // gap observations come from this node's own chain reads (`Event::Observed`),
            // never from peers.
            Message::Signal(_) | Message::GapObservation(_) | Message::GovernanceProposal(_) => {
                Ok(())
            }
        }
    }

    /// Adds a signature to a known collector; counts why it is dropped otherwise.
    fn collect(&mut self, digest: B256, sig: GuardianSignature) -> Result<bool, MachineError> {
        let Some(c) = self.collectors.get(&digest) else {
            return Ok(false);
        };
        if c.sigs.contains_key(&sig.signer) {
            self.stats.dropped_duplicate += 1;
            return Ok(true);
        }
        if c.certified {
            // Late but harmless; no need to verify.
            return Ok(true);
        }
        if !self.verify(&sig, digest) {
            self.stats.dropped_bad_signature += 1;
            return Ok(true);
        }
        self.store.put_attestation(digest, &sig)?;
        if let Some(c) = self.collectors.get_mut(&digest) {
            c.sigs.insert(sig.signer, sig);
        }
        self.try_certify(digest)?;
        Ok(true)
    }

    fn buffer(&mut self, digest: B256, sig: GuardianSignature, message: Message) {
        if !self.verify(&sig, digest) {
            self.stats.dropped_bad_signature += 1;
            return;
        }
        let count = self.pending_count.entry(sig.signer).or_insert(0);
        let slot = self.pending.entry(digest).or_default();
        if slot.contains_key(&sig.signer) {
            self.stats.dropped_duplicate += 1;
            return;
        }
        if *count >= self.cfg.pending_per_signer {
            self.stats.dropped_pending += 1;
            return;
        }
        *count += 1;
        slot.insert(
            sig.signer,
            Pending {
                message,
                at: self.now,
            },
        );
    }

    fn drain_pending(&mut self, digest: B256) -> Result<(), MachineError> {
        let Some(slot) = self.pending.remove(&digest) else {
            return Ok(());
        };
        for (signer, p) in slot {
            if let Some(c) = self.pending_count.get_mut(&signer) {
                *c = c.saturating_sub(1);
            }
            let sig = match &p.message {
                Message::DrawAttestation(a) => a.signature,
                Message::LegAttestation(a) => a.signature,
                _ => continue,
            };
            let Some(c) = self.collectors.get(&digest) else {
                continue;
            };
            // Verified when buffered; the digest now matches a known subject.
            if c.sigs.contains_key(&signer) || c.certified {
                continue;
            }
            let same_subject = match (&p.message, &c.subject) {
                (Message::DrawAttestation(a), Subject::Draw { key, .. }) => a.key == *key,
                (Message::LegAttestation(a), Subject::Leg { vault, .. }) => a.vault == *vault,
                _ => false,
            };
            if !same_subject {
                self.stats.dropped_unknown_digest += 1;
                continue;
            }
            self.store.put_attestation(digest, &sig)?;
            if let Some(c) = self.collectors.get_mut(&digest) {
                c.sigs.insert(signer, sig);
            }
        }
        self.try_certify(digest)
    }

    fn on_draw_attestation(&mut self, a: DrawAttestation) -> Result<(), MachineError> {
        if self
            .cfg
            .consortium
            .index_of_guardian(&a.signature.signer)
            .is_none()
        {
            self.stats.dropped_not_authorized += 1;
            return Ok(());
        }
        if let Some(c) = self.collectors.get(&a.digest) {
            match &c.subject {
                // The same digest can be proposed in several attempts (same pinned state).
                Subject::Draw { key, .. } if *key == a.key => {}
                _ => {
                    self.stats.dropped_unknown_digest += 1;
                    return Ok(());
                }
            }
            self.collect(a.digest, a.signature)?;
            return Ok(());
        }
        // Unknown digest: stale, garbage, or ahead of its proposal.
        if self.closed_covered(&a.key) {
            self.stats.dropped_stale += 1;
            return Ok(());
        }
        if let Some(inc) = self.incidents.get(&a.key) {
            if inc.rec.registration.is_some()
                || a.attempt.saturating_add(self.cfg.attempt_window) < inc.rec.attempt
            {
                self.stats.dropped_stale += 1;
                return Ok(());
            }
            if inc.proposals.contains_key(&a.attempt) {
                // We hold this attempt's proposal and its digest differs.
                self.stats.dropped_unknown_digest += 1;
                return Ok(());
            }
        }
        self.buffer(a.digest, a.signature, Message::DrawAttestation(a));
        Ok(())
    }

    fn try_certify(&mut self, digest: B256) -> Result<(), MachineError> {
        let Some(c) = self.collectors.get_mut(&digest) else {
            return Ok(());
        };
        if c.certified || c.sigs.len() < c.quorum {
            return Ok(());
        }
        c.certified = true;
        let cert = Certificate {
            subject: c.subject.clone(),
            digest,
            signatures: c.sigs.values().take(c.quorum).copied().collect(),
        };
        // A certificate carries exactly a quorum of distinct guardians, ascending.
        assert!(
            cert.signatures.len() == c.quorum
                && cert
                    .signatures
                    .windows(2)
                    .all(|w| w[0].signer < w[1].signer),
            "certificate over {digest} is not a sorted quorum"
        );
        self.store.put_certificate(&cert)?;
        self.stats.certificates += 1;
        debug!(%digest, "certificate formed");
        // A certificate for the current attempt restarts its timer at the first fallback
        // submitter's turn: the designated submitter (at once) and that fallback both get a
        // whole attempt timeout to land the registration before this node moves on to the
        // next proposer (whose draw could only race this one for the same seq).
        let restart = self.now.saturating_add(self.cfg.submit_delay(1));
        if let Subject::Draw { key, attempt, .. } = &cert.subject
            && let Some(inc) = self.incidents.get_mut(key)
            && inc.rec.registration.is_none()
            && inc.rec.attempt == *attempt
            && inc.rec.attempt_started < restart
        {
            inc.rec.attempt_started = restart;
            let rec = inc.rec.clone();
            self.store.put_incident(&rec)?;
        }
        let done = self.subject_done(&digest, &cert.subject);
        let due = self.now + self.submit_delay_for(&digest);
        self.certs.insert(
            digest,
            CertState {
                cert,
                due,
                submission: None,
                done,
            },
        );
        Ok(())
    }

    fn submit_delay_for(&self, digest: &B256) -> u64 {
        let c = &self.cfg.consortium;
        self.cfg
            .submit_delay(c.submitter_rank(c.designated_submitter(digest), self.cfg.me))
    }

    /// Whether the chain already did what `subject` (certified as `digest`) asks, or it
    /// can no longer be done. A draw is done once a draw of its incident is registered,
    /// unless a deep reorg took back that very draw (then it is registered again).
    fn subject_done(&self, digest: &B256, subject: &Subject) -> bool {
        match subject {
            Subject::Draw { key, draw, .. } => {
                self.closed_covered(key)
                    || self.incidents.get(key).is_none_or(|i| {
                        i.rec
                            .registration
                            .as_ref()
                            .is_some_and(|r| !(r.rewound && r.draw_hash == *digest))
                    })
                    || self.now_s() > draw.deadline
            }
            Subject::Leg { vault, release } => {
                self.now_s() > release.deadline
                    || self
                        .by_draw_hash
                        .get(&release.drawHash)
                        .and_then(|k| self.incidents.get(k))
                        .is_none_or(|i| i.rec.legs_done.contains_key(vault))
            }
            Subject::Action { vault, action } => {
                self.now_s() > action.deadline()
                    || self
                        .actions
                        .get(&(*vault, action.id()))
                        .is_none_or(|a| a.rec.executed)
            }
        }
    }

    fn on_registered(
        &mut self,
        key: IncidentKey,
        seen: Seen,
        out: &mut Vec<Output>,
    ) -> Result<(), MachineError> {
        let draw = &seen.draw;
        if draw.member != key.member || draw.seq != key.seq || draw.legs.len() > MAX_LEGS {
            warn!(member = %key.member, seq = key.seq, "chain layer reported an inconsistent registration");
            return Ok(());
        }
        if self.closed_covered(&key) {
            return Ok(());
        }
        if !self.incidents.contains_key(&key) {
            // Registered while this node had an older incident open, or never saw it.
            if let Some(&open) = self.open_by_member.get(&key.member)
                && open < key.seq
            {
                // The older incident closes first (its legs are executed or expire); keep
                // the latest such registration per member and replay it then.
                debug!(member = %key.member, seq = key.seq, open, "registration of a later seq deferred");
                let newer = self
                    .deferred
                    .get(&key.member)
                    .is_none_or(|(k, s)| k.seq < key.seq || (k.seq == key.seq && !s.finalized));
                if newer {
                    self.deferred.insert(key.member, (key, seen));
                }
                return Ok(());
            }
            if !self.open_incident(key, 0)? {
                return Ok(());
            }
        }
        let Some(inc) = self.incidents.get_mut(&key) else {
            return Ok(());
        };
        let finalized = seen.finalized;
        match &mut inc.rec.registration {
            Some(r) if r.draw_hash == seen.draw_hash => {
                if r.finalized || !finalized {
                    return Ok(());
                }
                r.finalized = true;
                r.block = seen.block;
                if r.rewound {
                    r.rewound = false;
                    info!(member = %key.member, seq = key.seq, "draw registered again after a deep reorg");
                }
            }
            Some(r) if r.finalized => {
                warn!(member = %key.member, seq = key.seq, "a second registration reported for a final one; ignored");
                return Ok(());
            }
            _ => {
                inc.rec.registration = Some(Registration {
                    draw_hash: seen.draw_hash,
                    draw: seen.draw,
                    finalized,
                    block: seen.block,
                    rewound: false,
                });
            }
        }
        let rec = inc.rec.clone();
        self.by_draw_hash.insert(seen.draw_hash, key);
        self.store.put_incident(&rec)?;
        info!(member = %key.member, seq = key.seq, draw_hash = %seen.draw_hash, finalized, "draw registered");
        if finalized {
            self.setup_legs(key, out)?;
            self.maybe_close(key)?;
        }
        Ok(())
    }

    /// For a final registration: a collector per remote leg, and this node's signature
    /// over each release (idempotent).
    fn setup_legs(&mut self, key: IncidentKey, out: &mut Vec<Output>) -> Result<(), MachineError> {
        let Some(inc) = self.incidents.get(&key) else {
            return Ok(());
        };
        let releases = inc.rec.leg_releases();
        let t = self.cfg.consortium.t();
        let now_s = self.now_s();
        for (vault, release) in releases {
            let digest = release.digest(&vault);
            if let Some(inc) = self.incidents.get_mut(&key) {
                inc.legs.insert(vault, digest);
            }
            self.collectors.entry(digest).or_insert_with(|| Collector {
                subject: Subject::Leg {
                    vault,
                    release: release.clone(),
                },
                quorum: t,
                sigs: BTreeMap::new(),
                certified: false,
            });
            let signed = self
                .collectors
                .get(&digest)
                .is_some_and(|c| c.sigs.contains_key(&self.me_guardian));
            let done = self
                .incidents
                .get(&key)
                .is_some_and(|i| i.rec.legs_done.contains_key(&vault));
            if !signed && !done && now_s <= release.deadline {
                let guard = GuardKey::Leg {
                    draw_hash: release.drawHash,
                    vault,
                };
                if let Some(sig) = self.guarded_sign(guard, digest)? {
                    out.push(Output::Broadcast(Message::LegAttestation(LegAttestation {
                        vault,
                        release,
                        signature: sig,
                    })));
                }
            }
            self.drain_pending(digest)?;
        }
        Ok(())
    }

    fn on_leg_attestation(&mut self, a: LegAttestation) -> Result<(), MachineError> {
        if self
            .cfg
            .consortium
            .index_of_guardian(&a.signature.signer)
            .is_none()
        {
            self.stats.dropped_not_authorized += 1;
            return Ok(());
        }
        let digest = a.release.digest(&a.vault);
        if self.collectors.contains_key(&digest) {
            self.collect(digest, a.signature)?;
            return Ok(());
        }
        if self.now_s() > a.release.deadline {
            self.stats.dropped_stale += 1;
            return Ok(());
        }
        if let Some(key) = self.by_draw_hash.get(&a.draw_hash())
            && let Some(inc) = self.incidents.get(key)
            && inc.rec.registration.as_ref().is_some_and(|r| r.finalized)
        {
            // We know this registration and its legs: the digest is not one of them.
            self.stats.dropped_unknown_digest += 1;
            return Ok(());
        }
        self.buffer(digest, a.signature, Message::LegAttestation(a));
        Ok(())
    }

    fn on_leg_executed(
        &mut self,
        draw_hash: B256,
        vault: VaultId,
        block: u64,
    ) -> Result<(), MachineError> {
        let Some(&key) = self.by_draw_hash.get(&draw_hash) else {
            return Ok(());
        };
        let Some(inc) = self.incidents.get_mut(&key) else {
            return Ok(());
        };
        if inc.rec.legs_done.contains_key(&vault) {
            return Ok(());
        }
        inc.rec.legs_done.insert(vault, block);
        let rec = inc.rec.clone();
        if let Some(d) = inc.legs.get(&vault)
            && let Some(c) = self.certs.get_mut(d)
        {
            c.done = true;
        }
        self.store.put_incident(&rec)?;
        self.maybe_close(key)
    }

    fn maybe_close(&mut self, key: IncidentKey) -> Result<(), MachineError> {
        let Some(inc) = self.incidents.get(&key) else {
            return Ok(());
        };
        let Some(reg) = &inc.rec.registration else {
            return Ok(());
        };
        if !reg.finalized {
            return Ok(());
        }
        let expired = self.now_s() > reg.draw.legDeadline;
        let all = reg.draw.legs.iter().all(|leg| {
            leg.chainId == inc.rec.home.chain_id
                || leg.amount.is_zero()
                || inc.rec.legs_done.contains_key(&VaultId {
                    chain_id: leg.chainId,
                    address: leg.vault,
                })
        });
        if all || expired {
            self.close(key, CloseReason::Covered)?;
        }
        Ok(())
    }

    fn close(&mut self, key: IncidentKey, reason: CloseReason) -> Result<(), MachineError> {
        let Some(mut inc) = self.incidents.remove(&key) else {
            return Ok(());
        };
        inc.rec.closed = Some(reason);
        // Covered: no draw of this seq or below is signed again. Resolved: no draw was
        // registered, the seq is unused on chain, and a later gap reopens it.
        let member = self.members.entry(key.member).or_default();
        member.closed(&inc.rec);
        self.store.close_incident(&inc.rec, member)?;
        if reason == CloseReason::Covered {
            self.view.covered(&inc.rec, self.now);
            self.settling
                .insert(key.member, self.now.saturating_add(self.cfg.settle_ms));
        }
        self.open_by_member.remove(&key.member);
        for (_, digest) in inc.proposals.values() {
            self.collectors.remove(digest);
            if let Some(c) = self.certs.get_mut(digest) {
                c.done = true;
            }
        }
        for digest in inc.legs.values() {
            self.collectors.remove(digest);
            if let Some(c) = self.certs.get_mut(digest) {
                c.done = true;
            }
        }
        if let Some(r) = &inc.rec.registration {
            self.by_draw_hash.remove(&r.draw_hash);
        }
        info!(member = %key.member, seq = key.seq, ?reason, "incident closed");
        if reason == CloseReason::Covered {
            self.remember_covered(inc.rec);
        }
        Ok(())
    }

    // ------------------------------------------------------------------ deep reorgs

    /// Keeps a covered incident until its leg deadline, for a deep reorg to reopen; beyond
    /// [`MAX_RECENT_COVERED`], the expired go first, then the lowest keys.
    fn remember_covered(&mut self, rec: IncidentRecord) {
        let now_s = self.now_s();
        let live = |r: &IncidentRecord| {
            r.registration
                .as_ref()
                .is_some_and(|g| now_s <= g.draw.legDeadline)
        };
        if !live(&rec) {
            return;
        }
        self.recent.insert(rec.key, rec);
        if self.recent.len() > MAX_RECENT_COVERED {
            self.recent.retain(|_, r| live(r));
            while self.recent.len() > MAX_RECENT_COVERED {
                self.recent.pop_first();
            }
        }
    }

    /// What the blocks of `chain_id` above `after` showed of `rec`: its registration, and
    /// which remote legs.
    fn taken_back(rec: &IncidentRecord, chain_id: u64, after: u64) -> (bool, Vec<VaultId>) {
        let registration = rec.home.chain_id == chain_id
            && rec
                .registration
                .as_ref()
                .is_some_and(|r| r.finalized && r.block > after);
        let legs = rec
            .legs_done
            .iter()
            .filter(|(v, block)| v.chain_id == chain_id && **block > after)
            .map(|(v, _)| *v)
            .collect();
        (registration, legs)
    }

    /// A deep reorg on `chain_id`: every open or recently covered incident whose
    /// registration or legs it took back is open again, with the same draw registered
    /// again (its certificate submitted again) and the same releases signed again. The
    /// vaults pay each leg once per `(member, seq)`, so nothing is paid twice.
    fn on_rewound(
        &mut self,
        chain_id: u64,
        after: u64,
        out: &mut Vec<Output>,
    ) -> Result<(), MachineError> {
        let mut hit: Vec<(IncidentKey, bool, Vec<VaultId>)> = self
            .incidents
            .values()
            .map(|i| &i.rec)
            .chain(self.recent.values())
            .map(|rec| (rec.key, Self::taken_back(rec, chain_id, after)))
            .filter(|(_, (reg, legs))| *reg || !legs.is_empty())
            .map(|(key, (reg, legs))| (key, reg, legs))
            .collect();
        hit.sort_by_key(|(key, _, _)| key.seq);
        for (key, registration, legs) in hit {
            let reopened =
                self.incidents.contains_key(&key) || self.reopen_covered(key, registration)?;
            if reopened {
                self.put_back(key, registration, &legs, out)?;
            }
            warn!(member = %key.member, seq = key.seq, chain_id, registration, legs = legs.len(), reopened, "a deep reorg took back what the chain showed of an incident");
            out.push(Output::Rewound {
                key,
                chain_id,
                registration,
                legs,
                reopened,
            });
        }
        Ok(())
    }

    /// Opens a covered incident again. Refused when another incident of the member is open
    /// or a later one closed since (the vault's seq order makes that one wait for this
    /// one), or when the deadline of what must be done again has passed.
    fn reopen_covered(
        &mut self,
        key: IncidentKey,
        registration: bool,
    ) -> Result<bool, MachineError> {
        let now_s = self.now_s();
        let doable = self
            .recent
            .get(&key)
            .and_then(|r| r.registration.as_ref())
            .is_some_and(|r| {
                let deadline = if registration {
                    r.draw.deadline
                } else {
                    r.draw.legDeadline
                };
                now_s <= deadline
            });
        if !doable
            || self.open_by_member.contains_key(&key.member)
            || self.closed_through(&key.member) != Some(key.seq)
        {
            return Ok(false);
        }
        let Some(mut rec) = self.recent.remove(&key) else {
            return Ok(false);
        };
        rec.closed = None;
        let member = self.members.entry(key.member).or_default();
        member.closed_through = key.seq.checked_sub(1);
        self.store.reopen_incident(&rec, rec.opened_at, member)?;
        if let Some(r) = &rec.registration {
            self.by_draw_hash.insert(r.draw_hash, key);
        }
        self.open_by_member.insert(key.member, key.seq);
        self.incidents.insert(
            key,
            Incident {
                rec,
                proposals: BTreeMap::new(),
                legs: BTreeMap::new(),
                next_rebroadcast: self.now,
                last_far_jump: None,
                gap_block: 0,
            },
        );
        info!(member = %key.member, seq = key.seq, "covered incident reopened by a deep reorg");
        Ok(true)
    }

    /// Undoes what the reorg took back of an open incident and starts putting it back.
    fn put_back(
        &mut self,
        key: IncidentKey,
        registration: bool,
        legs: &[VaultId],
        out: &mut Vec<Output>,
    ) -> Result<(), MachineError> {
        let Some(inc) = self.incidents.get_mut(&key) else {
            return Ok(());
        };
        for v in legs {
            inc.rec.legs_done.remove(v);
        }
        let mut resubmit = None;
        if registration && let Some(r) = inc.rec.registration.as_mut() {
            r.finalized = false;
            r.rewound = true;
            resubmit = Some(r.draw_hash);
        }
        let rec = inc.rec.clone();
        self.store.put_incident(&rec)?;
        if let Some(digest) = resubmit {
            // The legs follow once the same draw is final again.
            return self.resubmit_certificate(digest);
        }
        self.setup_legs(key, out)?;
        let digests: Vec<B256> = self
            .incidents
            .get(&key)
            .map(|i| legs.iter().filter_map(|v| i.legs.get(v).copied()).collect())
            .unwrap_or_default();
        for digest in digests {
            self.resubmit_certificate(digest)?;
        }
        Ok(())
    }

    /// Puts the stored certificate over `digest` back on the submitter schedule (a node
    /// that never formed it leaves the submission to those that did).
    fn resubmit_certificate(&mut self, digest: B256) -> Result<(), MachineError> {
        if self.certs.get(&digest).is_some_and(|c| !c.done) {
            return Ok(());
        }
        let Some(cert) = self.store.get_certificate(&digest)? else {
            warn!(%digest, "no certificate of the taken-back draw here; peers submit theirs");
            return Ok(());
        };
        let due = self.now + self.submit_delay_for(&digest);
        self.certs.insert(
            digest,
            CertState {
                cert,
                due,
                submission: None,
                done: false,
            },
        );
        Ok(())
    }

    // ------------------------------------------------------------------ actions

    fn consider_action(
        &mut self,
        vault: VaultId,
        action: ThresholdAction,
        local: bool,
        out: &mut Vec<Output>,
    ) -> Result<(), MachineError> {
        let id = (vault, action.id());
        if self.now_s() > action.deadline() || self.executed_actions.contains(&id) {
            self.stats.dropped_stale += 1;
            return Ok(());
        }
        if let Some(a) = self.actions.get(&id) {
            if a.rec.action != action {
                self.stats.dropped_unknown_digest += 1;
            }
            // Already approved or executed; a refused one is not kept, so it is new here.
            return Ok(());
        }
        if self.actions.len() >= self.cfg.max_actions {
            self.stats.dropped_pending += 1;
            return Ok(());
        }
        if let Err(e) = self.view.approve_action(&vault, &action, self.now) {
            self.stats.rejected_by_view += 1;
            self.count_refusal(&e);
            debug!(?action, error = %e, "threshold action refused");
            return Ok(());
        }
        let digest = action.digest(&vault);
        let rec = ActionRecord {
            vault,
            action: action.clone(),
            first_seen: self.now,
            approved: true,
            executed: false,
        };
        self.store.put_action(&rec)?;
        self.collectors.entry(digest).or_insert_with(|| Collector {
            subject: Subject::Action {
                vault,
                action: action.clone(),
            },
            quorum: action.quorum(&self.cfg.consortium),
            sigs: BTreeMap::new(),
            certified: false,
        });
        self.actions.insert(
            id,
            ActionState {
                rec,
                digest,
                next_rebroadcast: self.now + self.cfg.rebroadcast_ms,
            },
        );
        if local {
            out.push(Output::Broadcast(Message::ActionProposal(ActionProposal {
                vault,
                action: action.clone(),
            })));
        }
        let guard = GuardKey::Action { vault, id: id.1 };
        if let Some(sig) = self.guarded_sign(guard, digest)? {
            out.push(Output::Broadcast(Message::ActionAttestation(
                ActionAttestation {
                    vault,
                    action,
                    signature: sig,
                },
            )));
        }
        self.try_certify(digest)
    }

    fn on_action_attestation(
        &mut self,
        a: ActionAttestation,
        out: &mut Vec<Output>,
    ) -> Result<(), MachineError> {
        if self
            .cfg
            .consortium
            .index_of_guardian(&a.signature.signer)
            .is_none()
        {
            self.stats.dropped_not_authorized += 1;
            return Ok(());
        }
        let digest = a.action.digest(&a.vault);
        if !self.collectors.contains_key(&digest) {
            if !self.verify(&a.signature, digest) {
                self.stats.dropped_bad_signature += 1;
                return Ok(());
            }
            self.consider_action(a.vault, a.action.clone(), false, out)?;
            if !self.collectors.contains_key(&digest) {
                // Not approved here (or conflicting id): nothing to collect for.
                return Ok(());
            }
        }
        self.collect(digest, a.signature)?;
        Ok(())
    }

    fn remember_executed(&mut self, vault: VaultId, id: B256) {
        if !self.executed_actions.insert((vault, id)) {
            return;
        }
        self.executed_order.push_back((vault, id));
        if self.executed_order.len() > MAX_EXECUTED_ACTIONS
            && let Some(old) = self.executed_order.pop_front()
        {
            self.executed_actions.remove(&old);
        }
        debug_assert_eq!(self.executed_actions.len(), self.executed_order.len());
    }

    fn on_action_executed(&mut self, vault: VaultId, id: B256) -> Result<(), MachineError> {
        self.remember_executed(vault, id);
        let Some(mut a) = self.actions.remove(&(vault, id)) else {
            return Ok(());
        };
        a.rec.executed = true;
        self.store.put_action(&a.rec)?;
        self.collectors.remove(&a.digest);
        if let Some(c) = self.certs.get_mut(&a.digest) {
            c.done = true;
        }
        Ok(())
    }

    // ------------------------------------------------------------------ time

    fn on_tick(&mut self, out: &mut Vec<Output>) -> Result<(), MachineError> {
        self.time_out_attempts(out)?;
        self.register_deferred(out)?;
        self.close_and_rebroadcast_legs(out)?;
        self.expire_and_rebroadcast_actions(out);
        self.schedule_submissions(out)?;
        self.expire_pending();
        self.prune_closed()?;
        Ok(())
    }

    /// Deletes, once a minute, up to [`PRUNE_BATCH`] closed incidents older than
    /// `retain_closed_ms` from the store, with what was kept for them.
    fn prune_closed(&mut self) -> Result<(), MachineError> {
        if self.now < self.next_prune {
            return Ok(());
        }
        self.next_prune = self.now.saturating_add(PRUNE_INTERVAL_MS);
        let before = self.now.saturating_sub(self.cfg.retain_closed_ms);
        let pruned = self.store.prune_closed(before, self.now_s(), PRUNE_BATCH)?;
        if pruned > 0 {
            debug!(pruned, "closed incidents pruned from the store");
        }
        Ok(())
    }

    /// Moves incidents whose attempt timed out to the next attempt, proposing when it is
    /// this node's turn.
    fn time_out_attempts(&mut self, out: &mut Vec<Output>) -> Result<(), MachineError> {
        let now = self.now;
        let mut next_attempts = Vec::new();
        for inc in self.incidents.values() {
            if inc.rec.registration.is_none()
                && now >= inc.rec.attempt_started + self.cfg.attempt_timeout(inc.rec.attempt)
            {
                next_attempts.push(inc.rec.key);
            }
        }
        for key in next_attempts {
            let window = self.cfg.attempt_window;
            let Some(inc) = self.incidents.get_mut(&key) else {
                continue;
            };
            inc.rec.attempt = inc.rec.attempt.saturating_add(1);
            inc.rec.attempt_started = now;
            let attempt = inc.rec.attempt;
            let floor = attempt.saturating_sub(window);
            let dropped: Vec<B256> = inc.proposals.range(..floor).map(|(_, (_, d))| *d).collect();
            inc.proposals.retain(|a, _| *a >= floor);
            let rec = inc.rec.clone();
            for d in dropped {
                self.collectors.remove(&d);
            }
            self.store.put_incident(&rec)?;
            debug!(member = %key.member, seq = key.seq, attempt, "attempt timed out");
            if self.cfg.consortium.proposer(&key, attempt) == self.cfg.me {
                self.propose(key, attempt, out)?;
            }
        }
        Ok(())
    }

    /// Handles registrations deferred behind an incident that has closed since.
    fn register_deferred(&mut self, out: &mut Vec<Output>) -> Result<(), MachineError> {
        let ready: Vec<B256> = self
            .deferred
            .keys()
            .filter(|m| !self.open_by_member.contains_key(*m))
            .copied()
            .collect();
        for m in ready {
            if let Some((key, seen)) = self.deferred.remove(&m) {
                self.on_registered(key, seen, out)?;
            }
        }
        Ok(())
    }

    /// Closes incidents whose legs expired; rebroadcasts this node's own leg attestations.
    fn close_and_rebroadcast_legs(&mut self, out: &mut Vec<Output>) -> Result<(), MachineError> {
        let now = self.now;
        let keys: Vec<IncidentKey> = self.incidents.keys().copied().collect();
        for key in keys {
            self.maybe_close(key)?;
            let Some(inc) = self.incidents.get_mut(&key) else {
                continue;
            };
            if inc.legs.is_empty() || now < inc.next_rebroadcast {
                continue;
            }
            inc.next_rebroadcast = now + self.cfg.rebroadcast_ms;
            if inc.rec.registration.is_none() {
                continue;
            }
            for (vault, digest) in &inc.legs {
                if inc.rec.legs_done.contains_key(vault) {
                    continue;
                }
                let Some(c) = self.collectors.get(digest) else {
                    continue;
                };
                if let (Some(sig), Subject::Leg { release, .. }) =
                    (c.sigs.get(&self.me_guardian), &c.subject)
                {
                    out.push(Output::Broadcast(Message::LegAttestation(LegAttestation {
                        vault: *vault,
                        release: release.clone(),
                        signature: *sig,
                    })));
                }
            }
        }
        Ok(())
    }

    /// Forgets expired actions; rebroadcasts this node's own action attestations.
    fn expire_and_rebroadcast_actions(&mut self, out: &mut Vec<Output>) {
        let now = self.now;
        let now_s = self.now_s();
        let expired: Vec<(VaultId, B256)> = self
            .actions
            .iter()
            .filter(|(_, a)| now_s > a.rec.action.deadline())
            .map(|(k, _)| *k)
            .collect();
        for k in expired {
            if let Some(a) = self.actions.remove(&k) {
                self.collectors.remove(&a.digest);
            }
        }
        for a in self.actions.values_mut() {
            if now < a.next_rebroadcast {
                continue;
            }
            a.next_rebroadcast = now + self.cfg.rebroadcast_ms;
            if let Some(sig) = self
                .collectors
                .get(&a.digest)
                .and_then(|c| c.sigs.get(&self.me_guardian))
            {
                out.push(Output::Broadcast(Message::ActionAttestation(
                    ActionAttestation {
                        vault: a.rec.vault,
                        action: a.rec.action.clone(),
                        signature: *sig,
                    },
                )));
            }
        }
    }

    /// The submitter schedule: submits certificates that are due and not done yet.
    fn schedule_submissions(&mut self, out: &mut Vec<Output>) -> Result<(), MachineError> {
        let now = self.now;
        let digests: Vec<B256> = self
            .certs
            .iter()
            .filter(|(_, c)| !c.done && now >= c.due)
            .map(|(d, _)| *d)
            .collect();
        for d in digests {
            let done = self
                .certs
                .get(&d)
                .is_none_or(|c| self.subject_done(&d, &c.cert.subject));
            let resubmit = self.cfg.resubmit_ms;
            let Some(c) = self.certs.get_mut(&d) else {
                continue;
            };
            if done {
                c.done = true;
                continue;
            }
            let rec = SubmissionRecord {
                last_at: now,
                count: c.submission.map_or(0, |s| s.count).saturating_add(1),
            };
            c.submission = Some(rec);
            c.due = now + resubmit;
            out.push(Output::Submit(c.cert.clone()));
            self.stats.submissions += 1;
            self.store.put_submission(d, &rec)?;
        }
        self.certs.retain(|_, c| !c.done);
        Ok(())
    }

    /// Buffered attestations expire.
    fn expire_pending(&mut self) {
        let now = self.now;
        let ttl = self.cfg.pending_ttl_ms;
        let mut freed: Vec<Address> = Vec::new();
        self.pending.retain(|_, slot| {
            slot.retain(|signer, p| {
                let keep = now.saturating_sub(p.at) <= ttl;
                if !keep {
                    freed.push(*signer);
                }
                keep
            });
            !slot.is_empty()
        });
        for s in freed {
            self.stats.dropped_pending += 1;
            if let Some(c) = self.pending_count.get_mut(&s) {
                *c = c.saturating_sub(1);
            }
        }
    }

    /// The earliest time at which a tick has something to do.
    pub fn next_wake(&self) -> Option<u64> {
        let mut at: Option<u64> = None;
        let mut take = |t: u64| at = Some(at.map_or(t, |a| a.min(t)));
        for inc in self.incidents.values() {
            match &inc.rec.registration {
                None => take(inc.rec.attempt_started + self.cfg.attempt_timeout(inc.rec.attempt)),
                Some(r) if r.finalized => {
                    take(inc.next_rebroadcast);
                    take((r.draw.legDeadline + 1) * 1000);
                }
                Some(_) => {}
            }
        }
        for c in self.certs.values() {
            if !c.done {
                take(c.due);
            }
        }
        for a in self.actions.values() {
            take(a.next_rebroadcast);
        }
        at
    }
}
