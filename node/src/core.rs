//! The node's core task: the one owner of the agreement [`Machine`], fed with chain facts,
//! gossip, operator requests and time, dispatching what the machine returns (gossip,
//! vault transactions, wake-ups).
//!
//! Invariants:
//! - the machine is driven from this task only, so its events are totally ordered; a
//!   [`MachineError`] (store or signer failure) stops the node rather than letting it go on
//!   without its sign-guard;
//! - a proposal whose pinned blocks this node has not read is held until they are read
//!   (only for the attempt's legitimate proposer, at most [`MAX_FETCHES`] blocks at a time,
//!   and at most [`MAX_PARKED`] proposals waiting for a block another one is fetching) and
//!   dropped if they cannot be read as confirmed canonical blocks;
//! - submissions run in their own tasks (a transaction awaiting confirmations never blocks
//!   the machine); the submitter refuses concurrent sends of one action;
//! - everything operators see (the [`Snapshot`] published on a watch channel) is derived
//!   from the machine and the chains, never fed back into decisions.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use alloy::primitives::{Address, B256, U256};
use alloy::signers::local::PrivateKeySigner;
use backstop_agreement::machine::{MachineError, StateView};
use backstop_agreement::{
    Certificate, Event, IncidentKey, Machine, Message, NodeIndex, Output, PinnedBlock, Stats,
    Subject, ThresholdAction,
};
use backstop_chain::rpc::RpcPool;
use backstop_chain::submit::{ChainAction, SubmitOutcome, Submitter};
use backstop_contracts::eip712::{
    ClearAlert, FreezeMember, RaiseAlert, SignatureError, UnfreezeMember, Unpause, VaultId,
    pack_signatures,
};
use backstop_p2p::catchup::MemoryCatchUpStore;
use backstop_p2p::network::NetworkHandle;
use backstop_p2p::validation::Validated;
use backstop_store::RocksKv;
use backstop_types::time::now_ms;
use backstop_types::{MAX_EVIDENCE_LEN, Signal, SignalKind};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tracing::{debug, error, info, warn};

use crate::chains::{ChainAccess, ChainInput, ChainSpec, FetchSet, fetch_pinned, reconcile};
use crate::clock::{ClockCheck, ClockReport, Skew};
use crate::detect::{Assertion, Detectors};
use crate::journal::{Change, Journal};
use crate::policy::{Breaker, Output as PolicyOutput, Policy, SignalEntry};
use crate::view::{ChainSnapshot, NodeView};
use backstop_types::Effect;
use backstop_types::IncidentPhase;

/// Most pinned blocks being fetched at once for proposals.
pub const MAX_FETCHES: usize = 32;
/// Most proposals waiting for a pinned block another proposal is already fetching (many
/// concurrent incidents pin the same blocks).
pub const MAX_PARKED: usize = 1024;
/// How long a pinned block may take to become confirmed on this node's endpoints.
const FETCH_PATIENCE: Duration = Duration::from_secs(5);
/// Longest sleep of the loop without a machine wake-up.
const IDLE_TICK: Duration = Duration::from_secs(1);
/// How often the operator snapshot is republished.
const PUBLISH_EVERY: Duration = Duration::from_millis(250);
/// How often detectors re-assert and breakers are re-evaluated.
const POLICY_TICK: Duration = Duration::from_millis(500);
/// An open incident is checked against the chains this often (ms), in case this node
/// missed its registration or a leg (it was down, or a block could not be read).
const RECONCILE_EVERY_MS: u64 = 10_000;

/// The machine as the node runs it.
pub type NodeMachine = Machine<NodeView, PrivateKeySigner, RocksKv>;

/// An operator's request, answered with a line saying what was started.
#[derive(Debug)]
pub enum AdminCommand {
    /// Lift a member freeze on one vault or all.
    Unfreeze {
        /// Chain, or every chain.
        chain_id: Option<u64>,
        /// Member.
        member: B256,
    },
    /// Lift a vault pause.
    Unpause {
        /// Chain.
        chain_id: u64,
    },
    /// Clear an alert on one vault.
    ClearAlert {
        /// Chain.
        chain_id: u64,
        /// Subject.
        subject: B256,
    },
    /// Assert a signal as this node (gossiped to the others).
    RaiseSignal {
        /// Kind.
        kind: SignalKind,
        /// Subject.
        subject: B256,
        /// Why.
        reason: String,
    },
}

/// Why an operator request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdminError {
    /// The request names something this node does not know.
    #[error("not found: {0}")]
    NotFound(String),
    /// The node cannot act on it now.
    #[error("unavailable: {0}")]
    Unavailable(String),
}

/// A request with its reply channel.
pub type AdminRequest = (AdminCommand, oneshot::Sender<Result<String, AdminError>>);

/// Errors that stop the core.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// The machine failed (store or signer).
    #[error(transparent)]
    Machine(#[from] MachineError),
    /// An input channel closed while the node runs.
    #[error("input closed: {0}")]
    Closed(&'static str),
}

/// One chain as operators see it.
#[derive(Clone, Debug, Default)]
pub struct ChainStatus {
    /// Newest head seen.
    pub head: u64,
    /// Newest confirmed snapshot.
    pub confirmed: Option<Arc<ChainSnapshot>>,
    /// Halted (no head within the bound).
    pub halted: bool,
}

/// What the core publishes for the API and metrics.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Chains by id.
    pub chains: BTreeMap<u64, ChainStatus>,
    /// Incidents.
    pub incidents: Vec<crate::journal::IncidentEntry>,
    /// Counts by phase.
    pub by_phase: BTreeMap<IncidentPhase, usize>,
    /// Machine counters.
    pub stats: Stats,
    /// Submissions sent and failed, by (chain, kind).
    pub submissions: BTreeMap<(u64, &'static str), (u64, u64)>,
    /// Open threshold actions.
    pub open_actions: usize,
    /// Signals, each with whether it is confirmed now.
    pub signals: Vec<(SignalEntry, bool)>,
    /// Active breakers, then ended ones.
    pub breakers: Vec<Breaker>,
    /// An active breaker lapses this long (ms) after its trigger last held.
    pub expiry_ms: u64,
    /// Chains quarantined (halted or by policy).
    pub quarantined: BTreeSet<u64>,
    /// This node's clock against the chains (`None` before the first confirmed block).
    pub clock: Option<ClockReport>,
}

/// Notable events for the API stream and metrics.
#[derive(Clone, Debug)]
pub enum Notice {
    /// An incident changed phase.
    Incident {
        /// The change.
        change: Change,
        /// Seconds since its gap was seen (for the closing latency).
        since_open_s: f64,
        /// Seconds since its first proposal (for the certificate latency).
        since_proposal_s: Option<f64>,
    },
    /// Anything else worth a line.
    Text(String),
}

enum Internal {
    Fetched {
        from: NodeIndex,
        message: Message,
        results: Vec<(PinnedBlock, Result<ChainSnapshot, String>)>,
    },
    Submitted {
        chain_id: u64,
        kind: &'static str,
        result: Result<SubmitOutcome, String>,
    },
    Reconciled {
        key: IncidentKey,
        result: Result<Vec<ChainInput>, String>,
    },
}

/// Per-chain access the core needs.
pub struct ChainHandle {
    /// What the adapter reads.
    pub spec: ChainSpec,
    /// RPC.
    pub pool: Arc<RpcPool>,
    /// The chain's submitter.
    pub submitter: Arc<Submitter>,
}

/// The core task's state.
pub struct Core {
    machine: NodeMachine,
    net: NetworkHandle,
    chains: BTreeMap<u64, ChainHandle>,
    journal: Journal,
    fetches: FetchSet,
    internal_tx: mpsc::Sender<Internal>,
    internal_rx: mpsc::Receiver<Internal>,
    status: BTreeMap<u64, ChainStatus>,
    submissions: BTreeMap<(u64, &'static str), (u64, u64)>,
    catchup: Arc<MemoryCatchUpStore>,
    snapshot: watch::Sender<Arc<Snapshot>>,
    notices: broadcast::Sender<Notice>,
    action_ttl_s: u64,
    wake: Option<u64>,
    policy: Policy,
    detectors: Detectors,
    /// This node's clock against the chains' block timestamps.
    clock: ClockCheck,
    /// Next reconciliation (ms) of each open incident; `None` while one runs.
    reconcile_at: BTreeMap<IncidentKey, Option<u64>>,
    /// Proposals waiting for a block being fetched, by that block.
    parked: BTreeMap<PinnedBlock, Vec<(NodeIndex, Message)>>,
    parked_count: usize,
}

impl Core {
    /// A core over a restored machine.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        machine: NodeMachine,
        net: NetworkHandle,
        chains: BTreeMap<u64, ChainHandle>,
        catchup: Arc<MemoryCatchUpStore>,
        snapshot: watch::Sender<Arc<Snapshot>>,
        notices: broadcast::Sender<Notice>,
        action_ttl_s: u64,
        policy: Policy,
        detectors: Detectors,
    ) -> Self {
        let (internal_tx, internal_rx) = mpsc::channel(256);
        let max_pin_age_s = machine.view().config().max_pin_age_s;
        let status = chains
            .keys()
            .map(|c| (*c, ChainStatus::default()))
            .collect();
        Self {
            machine,
            net,
            chains,
            journal: Journal::default(),
            fetches: FetchSet::default(),
            internal_tx,
            internal_rx,
            status,
            submissions: BTreeMap::new(),
            catchup,
            snapshot,
            notices,
            action_ttl_s,
            wake: None,
            clock: ClockCheck::new(max_pin_age_s),
            policy,
            detectors,
            reconcile_at: BTreeMap::new(),
            parked: BTreeMap::new(),
            parked_count: 0,
        }
    }

    /// Runs until `shutdown` fires or an input fails. Returns the machine's store for a
    /// final flush.
    pub async fn run(
        mut self,
        mut chain_rx: mpsc::Receiver<ChainInput>,
        mut admin_rx: mpsc::Receiver<AdminRequest>,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<NodeMachine, CoreError> {
        let mut gossip = self.net.subscribe();
        let mut publish = tokio::time::interval(PUBLISH_EVERY);
        let mut policy_tick = tokio::time::interval(POLICY_TICK);
        // Incidents restored from the store are checked against the chains at once: their
        // registration or legs may have happened while this node was down.
        for (key, _) in self.machine.open_incidents() {
            self.reconcile_at.insert(key, Some(0));
        }
        // Operators see what the store kept, closed incidents included.
        match self.machine.store().load() {
            Ok(stored) => {
                let now = now_ms();
                for rec in crate::journal::to_restore(stored.incidents) {
                    self.journal.restored(&rec, now);
                }
            }
            Err(e) => warn!(error = %e, "stored incidents not shown"),
        }
        self.feed(Event::Tick).await?;
        loop {
            let sleep = match self.wake {
                Some(at) => Duration::from_millis(at.saturating_sub(now_ms())).min(IDLE_TICK),
                None => IDLE_TICK,
            };
            tokio::select! {
                _ = shutdown.changed() => break,
                input = chain_rx.recv() => {
                    let input = input.ok_or(CoreError::Closed("chain adapters"))?;
                    self.on_chain(input).await?;
                }
                msg = gossip.recv() => match msg {
                    Ok(v) => self.on_gossip(&v).await?,
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        warn!(missed = n, "core lagged behind gossip; peers' rebroadcasts and catch-up fill the gap");
                    }
                    Err(broadcast::error::RecvError::Closed) => return Err(CoreError::Closed("gossip")),
                },
                Some(i) = self.internal_rx.recv() => self.on_internal(i).await?,
                Some((cmd, reply)) = admin_rx.recv() => {
                    let r = self.on_admin(cmd).await;
                    let _ = reply.send(r);
                }
                _ = publish.tick() => self.publish(),
                _ = policy_tick.tick() => self.policy_tick().await?,
                _ = tokio::time::sleep(sleep) => self.feed(Event::Tick).await?,
            }
        }
        info!("core stopping");
        Ok(self.machine)
    }

    async fn feed(&mut self, event: Event) -> Result<(), CoreError> {
        let outputs = self.machine.handle(now_ms(), event)?;
        self.wake = None;
        for o in outputs {
            match o {
                Output::WakeAt(at) => self.wake = Some(at),
                Output::Broadcast(m) => self.broadcast(m).await,
                Output::Submit(cert) => self.submit(cert),
            }
        }
        self.check_closed();
        Ok(())
    }

    async fn broadcast(&mut self, m: Message) {
        self.observe_message(self.machine.config().me, &m);
        if let Err(e) = self.net.publish(m).await {
            // Recorded in the catch-up store before sending: peers get it when they connect.
            debug!(error = %e, "publish failed");
        }
    }

    fn observe_message(&mut self, from: NodeIndex, m: &Message) {
        let now = now_ms();
        match m {
            Message::DrawProposal(p) => {
                if let Some(c) = self.journal.proposed(p.key, p.attempt, &p.draw, from, now) {
                    self.notice_incident(c);
                }
            }
            Message::DrawAttestation(a) => {
                self.journal
                    .attested(a.key, a.signature.signer, a.digest, now)
            }
            Message::LegAttestation(a) => {
                if let Some(key) = m.incident() {
                    self.journal
                        .attested(key, a.signature.signer, a.draw_hash(), now)
                }
            }
            Message::ActionProposal(p) => {
                // Another node asked for an emergency effect: ours waits while it is carried.
                let effect = match &p.action {
                    ThresholdAction::Freeze(a) => Some(Effect::Freeze(a.member)),
                    ThresholdAction::RaiseAlert(a) => Some(Effect::Alert {
                        subject: a.subject,
                        level: a.level,
                    }),
                    _ => None,
                };
                if let Some(effect) = effect
                    && from != self.machine.config().me
                {
                    self.policy
                        .requested_elsewhere(p.vault.chain_id, effect, now);
                }
            }
            Message::ActionAttestation(_) | Message::Signal(_) | Message::GapObservation(_) => {}
        }
    }

    fn notice_incident(&mut self, change: Change) {
        let now = now_ms();
        let (since_open_s, since_proposal_s) = match self.journal.get(&change.key) {
            Some(e) => (
                now.saturating_sub(e.opened_ms) as f64 / 1000.0,
                e.proposed_ms.map(|p| now.saturating_sub(p) as f64 / 1000.0),
            ),
            None => (0.0, None),
        };
        info!(member = %change.key.member, seq = change.key.seq, phase = change.phase.name(), "{}", change.text);
        let _ = self.notices.send(Notice::Incident {
            change,
            since_open_s,
            since_proposal_s,
        });
    }

    /// Closes in the journal what the machine closed, and reopens what it reopened.
    fn check_closed(&mut self) {
        let machine = &self.machine;
        let closed_by_machine = |key: &IncidentKey| {
            machine
                .closed_through()
                .get(&key.member)
                .is_some_and(|&s| s >= key.seq)
                || machine.resolved_seq(&key.member) == Some(key.seq)
        };
        let mut closed = Vec::new();
        let mut reopened = Vec::new();
        for e in self.journal.incidents() {
            let done = closed_by_machine(&e.key);
            if e.phase != IncidentPhase::Closed && done {
                closed.push((e.key, e.draw_hash.is_some()));
            } else if e.phase == IncidentPhase::Closed
                && e.draw_hash.is_none()
                && machine.is_open(&e.key)
            {
                reopened.push(e.key);
            }
        }
        let now = now_ms();
        for key in reopened {
            self.catchup.reopen(key);
            if let Some(c) = self.journal.reopened(key, now) {
                self.notice_incident(c);
            }
        }
        for (key, registered) in closed {
            let reason = if registered { "covered" } else { "resolved" };
            self.catchup.close(key);
            if let Some(c) = self.journal.closed(key, reason, now) {
                self.notice_incident(c);
            }
        }
    }

    fn submit(&mut self, cert: Certificate) {
        let chain_id = cert.subject.vault().chain_id;
        let kind = kind_of(&cert.subject);
        if let Subject::Draw { key, .. } = &cert.subject
            && let Some(c) = self.journal.certified(*key, cert.digest, now_ms())
        {
            self.notice_incident(c);
        }
        let Some(chain) = self.chains.get(&chain_id) else {
            warn!(chain_id, "certificate for an unconfigured chain");
            return;
        };
        let action = match chain_action(&cert) {
            Ok(a) => a,
            Err(e) => {
                error!(error = %e, digest = %cert.digest, "certificate cannot be packed");
                return;
            }
        };
        let submitter = chain.submitter.clone();
        let tx = self.internal_tx.clone();
        info!(chain_id, kind, digest = %cert.digest, "submitting");
        if let Subject::Draw { key, .. } = &cert.subject {
            self.journal.registration_sent(*key, chain_id, now_ms());
        }
        tokio::spawn(async move {
            let result = submitter.submit(&action).await.map_err(|e| e.to_string());
            let _ = tx
                .send(Internal::Submitted {
                    chain_id,
                    kind,
                    result,
                })
                .await;
        });
    }

    async fn on_internal(&mut self, i: Internal) -> Result<(), CoreError> {
        match i {
            Internal::Reconciled { key, result } => {
                if let Some(at) = self.reconcile_at.get_mut(&key) {
                    *at = Some(now_ms().saturating_add(RECONCILE_EVERY_MS));
                }
                match result {
                    Ok(inputs) => {
                        for input in inputs {
                            if self.machine.is_open(&key) {
                                debug!(member = %key.member, seq = key.seq, "reconciled from the chains");
                                self.on_chain(input).await?;
                            }
                        }
                    }
                    Err(e) => {
                        debug!(member = %key.member, seq = key.seq, error = %e, "reconciliation failed; retried later")
                    }
                }
            }
            Internal::Fetched {
                from,
                message,
                results,
            } => {
                let mut complete = true;
                let mut waiting = Vec::new();
                let mut failed = BTreeSet::new();
                for (b, r) in results {
                    self.fetches.done(&b);
                    if let Some(w) = self.parked.remove(&b) {
                        self.parked_count = self.parked_count.saturating_sub(w.len());
                        waiting.extend(w);
                    }
                    match r {
                        Ok(s) => self.machine.view_mut().insert(s, false),
                        Err(e) => {
                            complete = false;
                            failed.insert(b);
                            debug!(chain_id = b.chain_id, number = b.number, error = %e, "pinned block unreadable; proposal dropped");
                        }
                    }
                }
                if complete {
                    self.deliver(from, message).await?;
                }
                // Proposals that waited for these blocks: delivered if nothing else is
                // missing, fetched (or parked) again otherwise.
                for (from, message) in waiting {
                    let missing: Vec<PinnedBlock> = match &message {
                        Message::DrawProposal(p) => p
                            .pinned
                            .iter()
                            .filter(|b| !self.machine.view().has(b))
                            .copied()
                            .collect(),
                        _ => Vec::new(),
                    };
                    if missing.is_empty() {
                        self.deliver(from, message).await?;
                    } else if !missing.iter().any(|b| failed.contains(b)) {
                        self.fetch(from, message, missing);
                    }
                }
            }
            Internal::Submitted {
                chain_id,
                kind,
                result,
            } => {
                let entry = self.submissions.entry((chain_id, kind)).or_default();
                match result {
                    Ok(SubmitOutcome::Executed { tx_hash, block }) => {
                        entry.0 += 1;
                        info!(chain_id, kind, %tx_hash, block = block.number, "transaction confirmed");
                    }
                    Ok(SubmitOutcome::AlreadyDone(d)) => {
                        debug!(chain_id, kind, ?d, "already done on chain")
                    }
                    Ok(SubmitOutcome::InFlight) => {}
                    Err(e) => {
                        entry.1 += 1;
                        warn!(chain_id, kind, error = %e, "submission failed; the machine resubmits");
                    }
                }
            }
        }
        Ok(())
    }

    async fn on_gossip(&mut self, v: &Validated) -> Result<(), CoreError> {
        if let Message::Signal(s) = &v.message {
            // The envelope authenticated the sender; its clock is not trusted, but an
            // assertion claiming a time outside the window is a replay or a broken clock.
            let now = now_ms();
            let window = self.policy.config().window_ms;
            if s.observed_at_ms.abs_diff(now) > window {
                debug!(signer = v.signer, kind = ?s.kind, "signal outside the window dropped");
                return Ok(());
            }
            let out = self.policy.assert(v.signer, s.kind, s.subject, None, now);
            return self.apply_policy(out).await;
        }
        if let Message::GapObservation(_) = &v.message {
            // A peer's reading is not evidence: this node reads the chains itself.
            return Ok(());
        }
        // The validator checked that the signer is a member: its index fits.
        let Ok(from) = NodeIndex::try_from(v.signer) else {
            return Ok(());
        };
        let message = v.message.clone();
        if let Message::DrawProposal(p) = &message {
            // Only the attempt's proposer makes this node read chain state.
            if self.machine.config().consortium.proposer(&p.key, p.attempt) != from {
                return self.deliver(from, message).await;
            }
            let missing: Vec<PinnedBlock> = p
                .pinned
                .iter()
                .filter(|b| !self.machine.view().has(b))
                .copied()
                .collect();
            if !missing.is_empty() {
                self.fetch(from, message, missing);
                return Ok(());
            }
        }
        self.deliver(from, message).await
    }

    fn fetch(&mut self, from: NodeIndex, message: Message, missing: Vec<PinnedBlock>) {
        if let Some(b) = missing
            .iter()
            .find(|b| !self.chains.contains_key(&b.chain_id))
        {
            debug!(chain_id = b.chain_id, "proposal pins an unconfigured chain");
            return;
        }
        if let Some(b) = missing.iter().find(|b| self.fetches.contains(b)) {
            // Another proposal is fetching it: wait for that read instead of dropping this
            // one (which would cost its incident an attempt timeout).
            if self.parked_count < MAX_PARKED {
                self.parked.entry(*b).or_default().push((from, message));
                self.parked_count += 1;
            } else {
                debug!("too many proposals waiting for pinned blocks; proposal dropped");
            }
            return;
        }
        let mut jobs: Vec<(PinnedBlock, Arc<RpcPool>, ChainSpec)> = Vec::new();
        for b in &missing {
            let started = self
                .chains
                .get(&b.chain_id)
                .filter(|_| self.fetches.start(*b, MAX_FETCHES));
            let Some(chain) = started else {
                debug!("pinned block already being fetched, or too many fetches");
                for (blk, _, _) in &jobs {
                    self.fetches.done(blk);
                }
                return;
            };
            jobs.push((*b, chain.pool.clone(), chain.spec.clone()));
        }
        let tx = self.internal_tx.clone();
        tokio::spawn(async move {
            let reads = jobs.into_iter().map(|(b, pool, spec)| async move {
                let r = fetch_pinned(&pool, &spec, b, FETCH_PATIENCE)
                    .await
                    .map_err(|e| e.to_string());
                (b, r)
            });
            let results = futures::future::join_all(reads).await;
            let _ = tx
                .send(Internal::Fetched {
                    from,
                    message,
                    results,
                })
                .await;
        });
    }

    async fn deliver(&mut self, from: NodeIndex, message: Message) -> Result<(), CoreError> {
        self.observe_message(from, &message);
        self.feed(Event::Received { from, message }).await
    }

    async fn on_chain(&mut self, input: ChainInput) -> Result<(), CoreError> {
        let now = now_ms();
        match input {
            ChainInput::Snapshot(s) => {
                let chain_id = s.block.chain_id;
                let snap = Arc::new((*s).clone());
                self.machine.view_mut().insert(*s, true);
                let st = self.status.entry(chain_id).or_default();
                st.head = st.head.max(snap.block.number);
                st.confirmed = Some(snap.clone());
                if let Some(change) = self.clock.on_block(chain_id, snap.timestamp, now) {
                    log_clock(&change);
                }
                // Detectors see the block before the observations it carries reach the
                // machine, so a suspicion blocks attesting from the same block on.
                let mut found = self.detectors.on_snapshot(&snap, now);
                found.extend(self.check_bookings(chain_id, now));
                self.assert_own(found).await?;
            }
            ChainInput::Observed(obs) => {
                let gap = obs.gap();
                let key = obs.key;
                if gap > self.machine.config().dust {
                    let out = self.policy.trouble(key.member, now);
                    self.apply_policy(out).await?;
                }
                let block = obs.block_number;
                let deductible = self
                    .machine
                    .view()
                    .latest(obs.home_chain_id)
                    .and_then(|s| s.members.get(&key.member))
                    .map_or(U256::ZERO, |m| U256::from(m.record.deductible));
                self.feed(Event::Observed(obs)).await?;
                let open = self.machine.is_open(&key);
                if open
                    && gap > U256::ZERO
                    && let Some(c) = self.journal.observed(key, gap, deductible, block, now)
                {
                    self.notice_incident(c);
                }
            }
            ChainInput::Registered {
                key,
                draw_hash,
                draw,
                tx_hash,
                block,
            } => {
                let home = StateView::home_vault(self.machine.view(), &key.member);
                if let Some(home) = home
                    && let Some(c) = self
                        .journal
                        .registered(key, draw_hash, &draw, home, tx_hash, block, now)
                {
                    self.notice_incident(c);
                }
                self.feed(Event::DrawRegistered {
                    key,
                    draw_hash,
                    draw,
                    finalized: true,
                })
                .await?;
            }
            ChainInput::LegPaid {
                draw_hash,
                vault,
                tx_hash,
                block,
            } => {
                if let Some(c) = self.journal.leg_paid(draw_hash, vault, tx_hash, block, now) {
                    self.notice_incident(c);
                }
                self.feed(Event::LegExecuted { draw_hash, vault }).await?;
            }
            ChainInput::ActionExecuted {
                vault,
                id,
                what,
                fact,
                tx_hash,
            } => {
                let _ = self.notices.send(Notice::Text(format!(
                    "{what} {id} executed on chain {} in {tx_hash}",
                    vault.chain_id
                )));
                self.feed(Event::ActionExecuted { vault, id }).await?;
                if let Some(fact) = fact {
                    let out = self.policy.vault_fact(vault.chain_id, fact, tx_hash, now);
                    self.apply_policy(out).await?;
                }
            }
            ChainInput::Head { chain_id, number } => {
                let st = self.status.entry(chain_id).or_default();
                st.head = st.head.max(number);
            }
            ChainInput::Reorg { chain_id, dropped } => {
                warn!(chain_id, dropped = dropped.len(), "reorg");
                self.machine.view_mut().drop_blocks(chain_id, &dropped);
                let st = self.status.entry(chain_id).or_default();
                if let Some(top) = dropped.iter().map(|(n, _)| *n).min() {
                    st.head = top.saturating_sub(1);
                }
            }
            ChainInput::Halted { chain_id, halted } => {
                let text = if halted {
                    format!("chain {chain_id} halted: quarantined")
                } else {
                    format!("chain {chain_id} resumed")
                };
                warn!("{text}");
                let _ = self.notices.send(Notice::Text(text));
                self.machine.view_mut().set_quarantined(chain_id, halted);
                self.status.entry(chain_id).or_default().halted = halted;
                self.policy.set_halted(chain_id, halted);
                let found = self.detectors.on_halted(chain_id, halted, now);
                self.assert_own(found).await?;
            }
        }
        Ok(())
    }

    /// The booking detector over the members homed on `chain_id`, at its newest block.
    fn check_bookings(&mut self, chain_id: u64, now: u64) -> Vec<Assertion> {
        let view = self.machine.view();
        let homed: Vec<(B256, _)> = view
            .config()
            .members
            .iter()
            .filter(|(_, p)| p.home_chain_id == chain_id)
            .map(|(m, _)| (*m, view.booking(m)))
            .collect();
        homed
            .into_iter()
            .flat_map(|(m, b)| self.detectors.on_booking(m, b, now))
            .collect()
    }

    async fn on_admin(&mut self, cmd: AdminCommand) -> Result<String, AdminError> {
        let deadline = now_ms() / 1000 + self.action_ttl_s;
        let id = B256::from(alloy::primitives::keccak256(
            [
                self.me_guardian().as_slice(),
                &now_ms().to_be_bytes(),
                format!("{cmd:?}").as_bytes(),
            ]
            .concat(),
        ));
        let (chain_id, action) = match cmd {
            AdminCommand::RaiseSignal {
                kind,
                subject,
                reason,
            } => {
                let a = Assertion {
                    kind,
                    subject,
                    evidence: format!("operator: {reason}"),
                };
                self.assert_own(vec![a])
                    .await
                    .map_err(|e| AdminError::Unavailable(e.to_string()))?;
                return Ok(format!("signal {kind:?} for {subject} raised"));
            }
            AdminCommand::Unfreeze { chain_id, member } => {
                if !self.machine.view().config().members.contains_key(&member) {
                    return Err(AdminError::NotFound(format!("member {member}")));
                }
                let action = UnfreezeMember {
                    member,
                    id,
                    deadline,
                };
                (chain_id, ThresholdAction::Unfreeze(action))
            }
            AdminCommand::Unpause { chain_id } => (
                Some(chain_id),
                ThresholdAction::Unpause(Unpause { id, deadline }),
            ),
            AdminCommand::ClearAlert { chain_id, subject } => (
                Some(chain_id),
                ThresholdAction::ClearAlert(ClearAlert {
                    subject,
                    id,
                    deadline,
                }),
            ),
        };
        let targets = self.vaults(chain_id)?;
        let n = targets.len();
        for vault in targets {
            self.machine.view_mut().approve(vault, action.clone());
            let action = action.clone();
            self.feed(Event::RequestAction { vault, action })
                .await
                .map_err(|e| AdminError::Unavailable(e.to_string()))?;
        }
        Ok(format!("action {id} proposed on {n} vault(s)"))
    }

    /// This node's own assertions: gossiped, then counted.
    async fn assert_own(&mut self, found: Vec<Assertion>) -> Result<(), CoreError> {
        let now = now_ms();
        for a in found {
            info!(kind = ?a.kind, subject = %a.subject, evidence = %a.evidence, "signal asserted");
            let mut evidence = a.evidence.clone().into_bytes();
            evidence.truncate(MAX_EVIDENCE_LEN);
            let signal = Signal {
                kind: a.kind,
                subject: a.subject,
                observed_at_ms: now,
                evidence: evidence.into(),
            };
            if let Err(e) = self.net.publish(Message::Signal(signal)).await {
                // Re-asserted every interval while the condition holds.
                debug!(error = %e, "signal not published");
            }
            let me = self.policy.config().me;
            let out = self
                .policy
                .assert(me, a.kind, a.subject, Some(a.evidence), now);
            self.apply_policy(out).await?;
        }
        Ok(())
    }

    /// Starts the due reconciliations of open incidents (one at a time per incident).
    fn reconcile_due(&mut self, now: u64) {
        let open: BTreeSet<IncidentKey> = self
            .machine
            .open_incidents()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        self.reconcile_at.retain(|k, _| open.contains(k));
        for key in open {
            // Restored incidents are checked at once; new ones after a period.
            let at = self
                .reconcile_at
                .entry(key)
                .or_insert(Some(now.saturating_add(RECONCILE_EVERY_MS)));
            if at.is_none_or(|t| t > now) {
                continue;
            }
            let Some(rec) = self.machine.incident(&key) else {
                continue;
            };
            let registered = rec
                .registration
                .as_ref()
                .map(|r| (r.draw_hash, r.draw.clone()));
            let Some(home) = self.chains.get(&rec.home.chain_id) else {
                continue;
            };
            *at = None;
            let home = (home.pool.clone(), home.spec.clone());
            let remotes: Vec<(Arc<RpcPool>, ChainSpec)> = self
                .chains
                .values()
                .filter(|c| c.spec.chain_id != home.1.chain_id)
                .map(|c| (c.pool.clone(), c.spec.clone()))
                .collect();
            let tx = self.internal_tx.clone();
            tokio::spawn(async move {
                let access: Vec<ChainAccess<'_>> = remotes
                    .iter()
                    .map(|(pool, spec)| ChainAccess { pool, spec })
                    .collect();
                let result = reconcile(
                    ChainAccess {
                        pool: &home.0,
                        spec: &home.1,
                    },
                    &access,
                    key,
                    registered,
                )
                .await
                .map_err(|e| e.to_string());
                let _ = tx.send(Internal::Reconciled { key, result }).await;
            });
        }
    }

    async fn policy_tick(&mut self) -> Result<(), CoreError> {
        let now = now_ms();
        self.reconcile_due(now);
        let found = self.detectors.tick(now);
        self.assert_own(found).await?;
        let out = self.policy.tick(now);
        self.apply_policy(out).await
    }

    /// Carries out what the policy returned, and hands its decisions to the view.
    async fn apply_policy(&mut self, out: Vec<PolicyOutput>) -> Result<(), CoreError> {
        let now = now_ms();
        let holding = self.detectors.holding().map(|(k, _)| *k).collect();
        let state = self.policy.view_state(now, &holding);
        if *self.machine.view().breakers() != state {
            self.machine.view_mut().set_breakers(state);
        }
        for o in out {
            match o {
                PolicyOutput::Notice(text) => {
                    warn!("{text}");
                    let _ = self.notices.send(Notice::Text(text));
                }
                PolicyOutput::Request {
                    chain_id,
                    effect,
                    breaker,
                } => {
                    let Some(vault) = self.chains.get(&chain_id).map(|h| h.spec.vault_id()) else {
                        continue;
                    };
                    let deadline = now / 1000 + self.action_ttl_s;
                    let id = B256::from(alloy::primitives::keccak256(
                        [
                            self.me_guardian().as_slice(),
                            &now.to_be_bytes(),
                            &chain_id.to_be_bytes(),
                            format!("{breaker} {effect:?}").as_bytes(),
                        ]
                        .concat(),
                    ));
                    let action = match effect {
                        Effect::Freeze(member) => ThresholdAction::Freeze(FreezeMember {
                            member,
                            id,
                            deadline,
                        }),
                        Effect::Alert { subject, level } => {
                            ThresholdAction::RaiseAlert(RaiseAlert {
                                subject,
                                level,
                                id,
                                deadline,
                            })
                        }
                    };
                    info!(chain_id, %breaker, ?effect, %id, "asking the consortium for a breaker's effect");
                    self.machine.view_mut().approve(vault, action.clone());
                    self.feed(Event::RequestAction { vault, action }).await?;
                }
            }
        }
        Ok(())
    }

    fn me_guardian(&self) -> Address {
        let cfg = self.machine.config();
        cfg.consortium
            .node(cfg.me)
            .map_or(Address::ZERO, |n| n.guardian)
    }

    fn vaults(&self, chain_id: Option<u64>) -> Result<Vec<VaultId>, AdminError> {
        match chain_id {
            Some(c) => self
                .chains
                .get(&c)
                .map(|h| vec![h.spec.vault_id()])
                .ok_or_else(|| AdminError::NotFound(format!("chain {c}"))),
            None => Ok(self.chains.values().map(|h| h.spec.vault_id()).collect()),
        }
    }

    fn publish(&mut self) {
        let now = now_ms();
        let snap = Snapshot {
            chains: self.status.clone(),
            incidents: self.journal.incidents().cloned().collect(),
            by_phase: self.journal.by_phase(),
            stats: self.machine.stats().clone(),
            submissions: self.submissions.clone(),
            open_actions: self.machine.open_actions(),
            signals: self
                .policy
                .signals()
                .map(|s| (s.clone(), self.policy.confirmed(s, now)))
                .collect(),
            breakers: self
                .policy
                .active()
                .chain(self.policy.history().iter().rev())
                .cloned()
                .collect(),
            expiry_ms: self.policy.config().expiry_ms,
            quarantined: self.machine.view().quarantined(),
            clock: self.clock.report(),
        };
        self.snapshot.send_replace(Arc::new(snap));
    }
}

/// Logs a change of the clock verdict: a warning while skewed, a note when it is fine again.
fn log_clock(change: &ClockReport) {
    let offset_s = change.offset_ms as f64 / 1000.0;
    match change.skew {
        Skew::Fine => info!(offset_s, "clock agrees with the chains again"),
        Skew::Ahead | Skew::Behind => warn!(offset_s, "{}", change.warning),
    }
}

fn kind_of(s: &Subject) -> &'static str {
    match s {
        Subject::Draw { .. } => "register_draw",
        Subject::Leg { .. } => "release_leg",
        Subject::Action { action, .. } => match action {
            ThresholdAction::Freeze(_) => "freeze",
            ThresholdAction::Unfreeze(_) => "unfreeze",
            ThresholdAction::Pause(_) => "pause",
            ThresholdAction::Unpause(_) => "unpause",
            ThresholdAction::RaiseAlert(_) => "raise_alert",
            ThresholdAction::ClearAlert(_) => "clear_alert",
        },
    }
}

/// The vault call that carries out a certificate.
pub fn chain_action(cert: &Certificate) -> Result<ChainAction, SignatureError> {
    let signatures = pack_signatures(&cert.signatures)?;
    Ok(match cert.subject.clone() {
        Subject::Draw { draw, .. } => ChainAction::RegisterDraw { draw, signatures },
        Subject::Leg { release, .. } => ChainAction::ReleaseLeg {
            release,
            signatures,
        },
        Subject::Action { action, .. } => match action {
            ThresholdAction::Freeze(action) => ChainAction::FreezeMember { action, signatures },
            ThresholdAction::Unfreeze(action) => ChainAction::UnfreezeMember { action, signatures },
            ThresholdAction::Pause(action) => ChainAction::Pause { action, signatures },
            ThresholdAction::Unpause(action) => ChainAction::Unpause { action, signatures },
            ThresholdAction::RaiseAlert(action) => ChainAction::RaiseAlert { action, signatures },
            ThresholdAction::ClearAlert(action) => ChainAction::ClearAlert { action, signatures },
        },
    })
}

/// Guardian addresses of the consortium, for start-up checks.
pub fn guardians_of(consortium: &backstop_agreement::Consortium) -> BTreeSet<Address> {
    consortium.nodes().iter().map(|n| n.guardian).collect()
}
