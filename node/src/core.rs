//! The node's decisions, sans IO: one state machine that owns the agreement [`Machine`]
//! (over the node's [`NodeView`]), the detectors, the breaker policy, the clock check and
//! the operators' journal. It is fed [`Input`]s with an injected `now` (unix ms) and returns
//! [`Action`]s; the tokio task in [`crate::service`] carries inputs in and actions out, and
//! the whole-node simulation ([`crate::sim`]) drives n copies of it on virtual time.
//!
//! Invariants:
//! - every decision is made here, in input order, from the inputs and `now` alone: the same
//!   inputs give the same actions (the simulation replays a seed bit for bit);
//! - a [`MachineError`] (store or signer failure) is returned and stops the node rather than
//!   letting it go on without its sign-guard;
//! - a proposal whose pinned blocks this node has not read is held until they are read
//!   (only for the attempt's legitimate proposer, at most [`MAX_FETCHES`] blocks at a time,
//!   and at most [`MAX_PARKED`] proposals waiting for a block another one is fetching) and
//!   dropped if they cannot be read as confirmed canonical blocks;
//! - a peer's gap observation is never evidence: this node reads the chains itself;
//! - everything operators see ([`Snapshot`], [`Notice`]) is derived from the state, never
//!   fed back into decisions.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use alloy::primitives::{Address, B256, U256, keccak256};
use backstop_agreement::kv::Kv;
use backstop_agreement::machine::{GuardianSigner, MachineError, StateView};
use backstop_agreement::{
    Certificate, Event, IncidentKey, Machine, Message, NodeIndex, Output, PinnedBlock, Stats,
    Subject, ThresholdAction,
};
use backstop_chain::submit::SubmitOutcome;
use backstop_contracts::eip712::{
    ClearAlert, Draw, FreezeMember, RaiseAlert, UnfreezeMember, Unpause, VaultId,
};
use backstop_types::{
    BreakerKind, Consortium, Effect, GovernanceProposal, IncidentPhase, MAX_EVIDENCE_LEN, Signal,
    SignalKind,
};
use tracing::{debug, error, info, warn};

use crate::chains::{ChainInput, FetchSet};
use crate::clock::{ClockCheck, ClockReport, Skew};
use crate::detect::{Assertion, Detectors};
use crate::governance::{
    self, Governance, GovernanceChange, Proposal, ProposalError, Registration,
};
use crate::journal::{Change, Journal};
use crate::policy::{
    Breaker, BreakerId, EARLY_WARNING_ACTION_TTL_S, Output as PolicyOutput, Policy, SignalEntry,
    VaultFact,
};
use crate::rotation::{Follow, GuardianFollower};
use crate::stress::{self, StressTest};
use crate::view::{ChainSnapshot, NodeView};
use crate::warning::{WarningConfig, Warnings};
use backstop_stress::{BPS, StressReport};

/// Most pinned blocks being fetched at once for proposals.
pub const MAX_FETCHES: usize = 32;
/// Most proposals waiting for a pinned block another proposal is already fetching (many
/// concurrent incidents pin the same blocks).
pub const MAX_PARKED: usize = 1024;
/// An open incident is checked against the chains this often (ms), in case this node
/// missed its registration or a leg (it was down, or a block could not be read).
pub const RECONCILE_EVERY_MS: u64 = 10_000;

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
    /// Propose a governance change to the consortium (not signed until approved).
    Propose {
        /// One chain's vault, or every vault.
        chain_id: Option<u64>,
        /// The change.
        change: GovernanceChange,
    },
    /// Approve a governance proposal by its digest: this node signs it on every target.
    Approve {
        /// Proposal id.
        id: B256,
        /// The digest the operator approves.
        digest: B256,
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
    /// The request is invalid or conflicts with the node's state.
    #[error("rejected: {0}")]
    Rejected(String),
    /// The node cannot act on it now.
    #[error("unavailable: {0}")]
    Unavailable(String),
}

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
    /// Reorgs deeper than the confirmation depth seen since start.
    pub deep_reorgs: u64,
}

/// What the core publishes for the API and metrics.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Chains by id.
    pub chains: BTreeMap<u64, ChainStatus>,
    /// Incidents.
    pub incidents: Vec<Arc<crate::journal::IncidentEntry>>,
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
    /// The latest evaluation of the stress scenarios (`None` before the first, or without
    /// scenarios).
    pub stress: Option<Arc<StressReport>>,
    /// Governance proposals, and the signatures each action needs (t).
    pub proposals: Vec<Proposal>,
    /// Signatures a governance action needs on a vault (t).
    pub governance_quorum: usize,
    /// The guardian this node signs as (`None` while the vaults rotated its key out and it
    /// does not hold the new one).
    pub guardian: Option<Address>,
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
    /// A stress scenario's coverage crossed 1.0.
    Stress {
        /// The scenario.
        scenario: String,
        /// What happened, for operators.
        text: String,
    },
    /// Anything else worth a line.
    Text(String),
}

/// What the core is fed.
#[derive(Debug)]
pub enum Input {
    /// A fact read from a chain.
    Chain(ChainInput),
    /// A validated message from the consortium member at `signer`.
    Gossip {
        /// Consortium index of the (authenticated) signer.
        signer: usize,
        /// The message.
        message: Message,
    },
    /// The pinned blocks of a held proposal, read (or not).
    Fetched {
        /// Proposer.
        from: NodeIndex,
        /// The held proposal.
        message: Message,
        /// Each block's snapshot, or why it could not be read.
        results: Vec<(PinnedBlock, Result<ChainSnapshot, String>)>,
    },
    /// A submission's outcome.
    Submitted {
        /// What the certificate was for.
        subject: Subject,
        /// Outcome.
        result: Result<SubmitOutcome, String>,
    },
    /// A reconciliation's findings (registration and legs on the chains).
    Reconciled {
        /// Incident.
        key: IncidentKey,
        /// Facts found, or why the chains could not be read.
        result: Result<Vec<ChainInput>, String>,
    },
    /// Whether an open threshold action is executed on its vault.
    ActionChecked {
        /// Vault.
        vault: VaultId,
        /// Action id.
        id: B256,
        /// Whether its id is used, or why the vault could not be read.
        result: Result<bool, String>,
    },
    /// The machine's wake-up (attempt timeouts, submitter schedule).
    Tick,
    /// Detectors re-assert, breakers are re-evaluated, reconciliations start.
    PolicyTick,
}

/// What the core asks its shell to do.
#[derive(Debug)]
pub enum Action {
    /// Gossip a message (already recorded where the machine records).
    Publish(Message),
    /// Carry a certificate to its vault.
    Submit(Certificate),
    /// Read these pinned blocks, then feed [`Input::Fetched`] with the held proposal.
    Fetch {
        /// Proposer.
        from: NodeIndex,
        /// The held proposal.
        message: Message,
        /// Blocks to read.
        blocks: Vec<PinnedBlock>,
    },
    /// Look for an open incident's registration and legs on the chains, then feed
    /// [`Input::Reconciled`].
    Reconcile {
        /// Incident.
        key: IncidentKey,
        /// Its home chain.
        home_chain_id: u64,
        /// Its registration as this node knows it.
        registered: Option<(B256, Draw)>,
    },
    /// Ask the vault whether an open threshold action is executed, then feed
    /// [`Input::ActionChecked`] (a node that was down when it executed, and holds no
    /// certificate to submit, hears of it only so).
    CheckAction {
        /// Vault.
        vault: VaultId,
        /// Action id.
        id: B256,
    },
    /// Validate gossip against this consortium from now on (every vault rotated a key).
    FollowGuardians(Arc<Consortium>),
    /// Tell operators.
    Notice(Notice),
    /// An incident closed (`open == false`) or reopened: peers' catch-up follows.
    CatchUp {
        /// Incident.
        key: IncidentKey,
        /// Reopened rather than closed.
        open: bool,
    },
}

/// The node's decisions over one agreement machine.
pub struct NodeCore<S, K> {
    machine: Machine<NodeView, S, K>,
    journal: Journal,
    policy: Policy,
    detectors: Detectors,
    /// Early warnings: precursors of a member's failure.
    warnings: Warnings,
    /// The stress scenarios, and their latest evaluation.
    stress: StressTest,
    stress_report: Option<Arc<StressReport>>,
    /// This node's clock against the chains' block timestamps.
    clock: ClockCheck,
    /// Governance proposals.
    governance: Governance,
    /// The vaults' guardian sets, to follow a rotation.
    guardians: GuardianFollower,
    /// When this node next gossips its open proposals again (ms).
    next_proposal_rebroadcast: u64,
    /// How each configured member last stood on its home vault (one entry per configured
    /// member).
    registry: BTreeMap<B256, Registration>,
    status: BTreeMap<u64, ChainStatus>,
    submissions: BTreeMap<(u64, &'static str), (u64, u64)>,
    action_ttl_s: u64,
    wake: Option<u64>,
    fetches: FetchSet,
    /// Proposals waiting for a block being fetched, by that block.
    parked: BTreeMap<PinnedBlock, Vec<(NodeIndex, Message)>>,
    parked_count: usize,
    /// Next reconciliation (ms) of each open incident; `None` while one runs.
    reconcile_at: BTreeMap<IncidentKey, Option<u64>>,
    /// Next check (ms) of each open threshold action on its vault; `None` while one runs.
    check_action_at: BTreeMap<(VaultId, B256), Option<u64>>,
    /// Next look-up (ms) of each draw the home vault registered and this node missed (see
    /// [`NodeCore::missed`]); `None` while one runs.
    missed_at: BTreeMap<IncidentKey, Option<u64>>,
    now: u64,
    out: Vec<Action>,
}

impl<S: GuardianSigner, K: Kv> NodeCore<S, K> {
    /// A core over a restored machine.
    pub fn new(
        machine: Machine<NodeView, S, K>,
        policy: Policy,
        detectors: Detectors,
        action_ttl_s: u64,
    ) -> Self {
        let max_pin_age_s = machine.view().config().max_pin_age_s;
        let governance = Governance::new(
            machine.view().config().vaults.clone(),
            machine.config().consortium.clone(),
            governance::PROPOSAL_TTL_S,
        );
        let guardians = GuardianFollower::new(machine.view().config().vaults.iter().map(
            |(chain_id, address)| VaultId {
                chain_id: *chain_id,
                address: *address,
            },
        ));
        let status = machine
            .view()
            .config()
            .vaults
            .keys()
            .map(|c| (*c, ChainStatus::default()))
            .collect();
        Self {
            machine,
            journal: Journal::default(),
            policy,
            detectors,
            warnings: Warnings::new(WarningConfig::default()),
            stress: StressTest::new(Vec::new(), &[]),
            stress_report: None,
            clock: ClockCheck::new(max_pin_age_s),
            governance,
            guardians,
            next_proposal_rebroadcast: 0,
            registry: BTreeMap::new(),
            status,
            submissions: BTreeMap::new(),
            action_ttl_s,
            wake: None,
            fetches: FetchSet::default(),
            parked: BTreeMap::new(),
            parked_count: 0,
            reconcile_at: BTreeMap::new(),
            check_action_at: BTreeMap::new(),
            missed_at: BTreeMap::new(),
            now: 0,
            out: Vec::new(),
        }
    }

    /// The core knowing the guardian set each vault held at start-up (the machine was
    /// built with the consortium they map to).
    pub fn with_vault_guardians(mut self, sets: Vec<(VaultId, Vec<Address>)>) -> Self {
        for (vault, guardians) in sets {
            let current = &self.machine.config().consortium;
            if let Follow::Refused(e) = self.guardians.observe(vault, guardians, current) {
                warn!(error = %e, "guardian sets at start-up");
            }
        }
        self
    }

    /// The core with early warnings and the stress scenarios (none without this).
    pub fn with_stress(mut self, warnings: Warnings, stress: StressTest) -> Self {
        self.warnings = warnings;
        self.stress = stress;
        self
    }

    /// Starts the core: incidents restored from the store are reconciled at once (their
    /// registration or legs may have happened while this node was down), operators see what
    /// the store kept, and the machine takes its first tick.
    pub fn start(&mut self, now: u64) -> Result<Vec<Action>, CoreError> {
        self.now = now;
        for (key, _) in self.machine.open_incidents() {
            self.reconcile_at.insert(key, Some(0));
        }
        for action in self.machine.open_action_ids() {
            self.check_action_at.insert(action, Some(0));
        }
        let store = self.machine.store();
        let stored = store.open_incidents().and_then(|mut open| {
            open.extend(store.newest_closed(crate::journal::MAX_CLOSED)?);
            Ok(open)
        });
        match stored {
            Ok(stored) => {
                for rec in crate::journal::to_restore(stored) {
                    self.journal.restored(&rec, now);
                }
            }
            Err(e) => warn!(error = %e, "stored incidents not shown"),
        }
        self.feed(Event::Tick)?;
        Ok(std::mem::take(&mut self.out))
    }

    /// Handles one input at `now` (unix ms).
    pub fn handle(&mut self, now: u64, input: Input) -> Result<Vec<Action>, CoreError> {
        self.now = now;
        match input {
            Input::Chain(c) => self.on_chain(c)?,
            Input::Gossip { signer, message } => self.on_gossip(signer, message)?,
            Input::Fetched {
                from,
                message,
                results,
            } => self.on_fetched(from, message, results)?,
            Input::Submitted { subject, result } => self.on_submitted(&subject, result)?,
            Input::Reconciled { key, result } => self.on_reconciled(key, result)?,
            Input::ActionChecked { vault, id, result } => {
                self.on_action_checked(vault, id, result)?
            }
            Input::Tick => self.feed(Event::Tick)?,
            Input::PolicyTick => self.policy_tick()?,
        }
        Ok(std::mem::take(&mut self.out))
    }

    /// Handles an operator's request at `now`: the answer and the actions it started.
    pub fn admin(
        &mut self,
        now: u64,
        cmd: AdminCommand,
    ) -> (Result<String, AdminError>, Vec<Action>) {
        self.now = now;
        let r = self.on_admin(cmd);
        (r, std::mem::take(&mut self.out))
    }

    /// Asks the consortium for a threshold action an operator decided on (approved here,
    /// proposed to the others, who approve it by their own rules).
    pub fn request(
        &mut self,
        now: u64,
        vault: VaultId,
        action: ThresholdAction,
    ) -> Result<Vec<Action>, CoreError> {
        self.now = now;
        self.request_action(vault, action)?;
        Ok(std::mem::take(&mut self.out))
    }

    /// When the machine next wants a [`Input::Tick`] (unix ms).
    pub fn wake(&self) -> Option<u64> {
        self.wake
    }

    /// The governance proposals.
    pub fn governance(&self) -> &Governance {
        &self.governance
    }

    /// The signals and breakers.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The machine.
    pub fn machine(&self) -> &Machine<NodeView, S, K> {
        &self.machine
    }

    /// The machine, for a final flush of its store.
    pub fn into_machine(self) -> Machine<NodeView, S, K> {
        self.machine
    }

    fn feed(&mut self, event: Event) -> Result<(), CoreError> {
        let outputs = self.machine.handle(self.now, event)?;
        self.carry_outputs(outputs);
        Ok(())
    }

    /// Carries out the machine's outputs.
    fn carry_outputs(&mut self, outputs: Vec<Output>) {
        self.wake = None;
        for o in outputs {
            match o {
                Output::WakeAt(at) => self.wake = Some(at),
                Output::Broadcast(m) => self.broadcast(m),
                Output::Submit(cert) => self.submit(cert),
                Output::Rewound {
                    key,
                    chain_id,
                    registration,
                    legs,
                    reopened,
                } => self.rewound(key, chain_id, registration, &legs, reopened),
            }
        }
        self.check_closed();
    }

    /// A deep reorg took back what the chain had shown of an incident: the journal follows
    /// the chain, and operators hear of it.
    fn rewound(
        &mut self,
        key: IncidentKey,
        chain_id: u64,
        registration: bool,
        legs: &[VaultId],
        reopened: bool,
    ) {
        error!(member = %key.member, seq = key.seq, chain_id, registration, legs = legs.len(), reopened, "a deep reorg took back an incident's registration or legs");
        if let Some(c) = self
            .journal
            .rewound(key, chain_id, registration, legs, reopened, self.now)
        {
            self.notice_incident(c);
        }
        if reopened {
            self.out.push(Action::CatchUp { key, open: true });
        }
    }

    fn broadcast(&mut self, m: Message) {
        self.observe_message(self.machine.config().me, &m);
        self.out.push(Action::Publish(m));
    }

    fn observe_message(&mut self, from: NodeIndex, m: &Message) {
        let now = self.now;
        match m {
            Message::DrawProposal(p) => {
                if let Some(c) = self
                    .journal
                    .proposed(p.key, p.attempt, &p.draw, &p.pinned, from, now)
                {
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
            Message::ActionAttestation(a) => {
                if a.action.is_governance() {
                    self.governance.attested(from, &a.vault, &a.action.id());
                }
            }
            Message::GovernanceProposal(p) => {
                if self.governance.received(p.clone(), now) {
                    let status = self.governance.get(&p.id()).map(|g| g.status.clone());
                    info!(id = %p.id(), from, kind = p.action.name(), ?status, "governance proposal received");
                    self.notice_text(format!(
                        "governance proposal {} ({}) from node {from}: {status:?}",
                        p.id(),
                        p.action.name()
                    ));
                }
            }
            Message::Signal(_) | Message::GapObservation(_) => {}
        }
    }

    fn notice_incident(&mut self, change: Change) {
        let now = self.now;
        let (since_open_s, since_proposal_s) = match self.journal.get(&change.key) {
            Some(e) => (
                now.saturating_sub(e.opened_ms) as f64 / 1000.0,
                e.proposed_ms.map(|p| now.saturating_sub(p) as f64 / 1000.0),
            ),
            None => (0.0, None),
        };
        info!(member = %change.key.member, seq = change.key.seq, phase = change.phase.name(), "{}", change.text);
        self.out.push(Action::Notice(Notice::Incident {
            change,
            since_open_s,
            since_proposal_s,
        }));
    }

    fn notice_text(&mut self, text: String) {
        self.out.push(Action::Notice(Notice::Text(text)));
    }

    /// Closes in the journal what the machine closed, and reopens what it reopened.
    fn check_closed(&mut self) {
        let machine = &self.machine;
        let closed_by_machine = |key: &IncidentKey| {
            machine
                .closed_through(&key.member)
                .is_some_and(|s| s >= key.seq)
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
        let now = self.now;
        for key in reopened {
            self.out.push(Action::CatchUp { key, open: true });
            if let Some(c) = self.journal.reopened(key, now) {
                self.notice_incident(c);
            }
        }
        for (key, registered) in closed {
            let reason = if registered { "covered" } else { "resolved" };
            self.out.push(Action::CatchUp { key, open: false });
            if let Some(c) = self.journal.closed(key, reason, now) {
                self.notice_incident(c);
            }
        }
    }

    fn submit(&mut self, cert: Certificate) {
        let chain_id = cert.subject.vault().chain_id;
        if let Subject::Draw { key, .. } = &cert.subject
            && let Some(c) = self.journal.certified(*key, cert.digest, self.now)
        {
            self.notice_incident(c);
        }
        if !self.status.contains_key(&chain_id) {
            warn!(chain_id, "certificate for an unconfigured chain");
            return;
        }
        if let Subject::Draw { key, .. } = &cert.subject {
            self.journal.registration_sent(*key, chain_id, self.now);
        }
        info!(chain_id, kind = kind_of(&cert.subject), digest = %cert.digest, "submitting");
        self.out.push(Action::Submit(cert));
    }

    fn on_reconciled(
        &mut self,
        key: IncidentKey,
        result: Result<Vec<ChainInput>, String>,
    ) -> Result<(), CoreError> {
        let next = Some(self.now.saturating_add(RECONCILE_EVERY_MS));
        for schedule in [&mut self.reconcile_at, &mut self.missed_at] {
            if let Some(at) = schedule.get_mut(&key) {
                *at = next;
            }
        }
        let missed = self.missed_at.contains_key(&key);
        match result {
            Ok(inputs) => {
                for input in inputs {
                    // A missed draw opens its incident here, which then takes its legs.
                    if self.machine.is_open(&key) || missed {
                        debug!(member = %key.member, seq = key.seq, missed, "reconciled from the chains");
                        self.on_chain(input)?;
                    }
                }
            }
            Err(e) => {
                debug!(member = %key.member, seq = key.seq, error = %e, "reconciliation failed; retried later")
            }
        }
        Ok(())
    }

    fn on_action_checked(
        &mut self,
        vault: VaultId,
        id: B256,
        result: Result<bool, String>,
    ) -> Result<(), CoreError> {
        if let Some(at) = self.check_action_at.get_mut(&(vault, id)) {
            *at = Some(self.now.saturating_add(RECONCILE_EVERY_MS));
        }
        match result {
            Ok(true) => {
                debug!(chain_id = vault.chain_id, %id, "action found executed on its vault");
                self.governance.executed(&vault, &id, None);
                self.feed(Event::ActionExecuted { vault, id })
            }
            Ok(false) => Ok(()),
            Err(e) => {
                debug!(chain_id = vault.chain_id, %id, error = %e, "action check failed; retried later");
                Ok(())
            }
        }
    }

    fn on_fetched(
        &mut self,
        from: NodeIndex,
        message: Message,
        results: Vec<(PinnedBlock, Result<ChainSnapshot, String>)>,
    ) -> Result<(), CoreError> {
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
                Ok(s) if s.block == b => self.machine.view_mut().insert(s, false),
                Ok(_) => {
                    complete = false;
                    failed.insert(b);
                    debug!(
                        chain_id = b.chain_id,
                        number = b.number,
                        "snapshot of another block; proposal dropped"
                    );
                }
                Err(e) => {
                    complete = false;
                    failed.insert(b);
                    debug!(chain_id = b.chain_id, number = b.number, error = %e, "pinned block unreadable; proposal dropped");
                }
            }
        }
        if complete {
            self.deliver(from, message)?;
        }
        // Proposals that waited for these blocks: delivered if nothing else is missing,
        // fetched (or parked) again otherwise.
        for (from, message) in waiting {
            let missing = self.missing_pins(&message);
            if missing.is_empty() {
                self.deliver(from, message)?;
            } else if !missing.iter().any(|b| failed.contains(b)) {
                self.fetch(from, message, missing);
            }
        }
        Ok(())
    }

    /// The blocks a proposal pins that this node has no snapshot of.
    fn missing_pins(&self, message: &Message) -> Vec<PinnedBlock> {
        match message {
            Message::DrawProposal(p) => p
                .pinned
                .iter()
                .filter(|b| !self.machine.view().has(b))
                .copied()
                .collect(),
            _ => Vec::new(),
        }
    }

    fn on_submitted(
        &mut self,
        subject: &Subject,
        result: Result<SubmitOutcome, String>,
    ) -> Result<(), CoreError> {
        let chain_id = subject.vault().chain_id;
        let kind = kind_of(subject);
        let entry = self.submissions.entry((chain_id, kind)).or_default();
        match result {
            Ok(SubmitOutcome::Executed { tx_hash, block }) => {
                entry.0 += 1;
                info!(chain_id, kind, %tx_hash, block = block.number, "transaction confirmed");
            }
            Ok(SubmitOutcome::AlreadyDone(d)) => {
                debug!(chain_id, kind, ?d, "already done on chain");
                // An action id is used once: whoever executed it, it is done. (A node that
                // was down when it executed hears of it only here; draws and legs come back
                // through reconciliation.)
                if let Subject::Action { vault, action } = subject {
                    let (vault, id) = (*vault, action.id());
                    self.governance.executed(&vault, &id, None);
                    self.feed(Event::ActionExecuted { vault, id })?;
                }
            }
            Ok(SubmitOutcome::InFlight) => {}
            Err(e) => {
                entry.1 += 1;
                warn!(chain_id, kind, error = %e, "submission failed; the machine resubmits");
            }
        }
        Ok(())
    }

    fn on_gossip(&mut self, signer: usize, message: Message) -> Result<(), CoreError> {
        if let Message::Signal(s) = &message {
            // The envelope authenticated the sender; its clock is not trusted, but an
            // assertion claiming a time outside the window is a replay or a broken clock.
            let window = self.policy.config().window_ms;
            if s.observed_at_ms.abs_diff(self.now) > window {
                debug!(signer, kind = ?s.kind, "signal outside the window dropped");
                return Ok(());
            }
            let out = self
                .policy
                .assert(signer, s.kind, s.subject, None, self.now);
            return self.apply_policy(out);
        }
        if let Message::GapObservation(_) = &message {
            // A peer's reading is not evidence: this node reads the chains itself.
            return Ok(());
        }
        // The validator checked that the signer is a member: its index fits.
        let Ok(from) = NodeIndex::try_from(signer) else {
            return Ok(());
        };
        if let Message::DrawProposal(p) = &message {
            // Only the attempt's proposer makes this node read chain state.
            if self.machine.config().consortium.proposer(&p.key, p.attempt) != from {
                return self.deliver(from, message);
            }
            let missing = self.missing_pins(&message);
            if !missing.is_empty() {
                self.fetch(from, message, missing);
                return Ok(());
            }
        }
        self.deliver(from, message)
    }

    fn fetch(&mut self, from: NodeIndex, message: Message, missing: Vec<PinnedBlock>) {
        if let Some(b) = missing
            .iter()
            .find(|b| !self.status.contains_key(&b.chain_id))
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
        for (i, b) in missing.iter().enumerate() {
            if !self.fetches.start(*b, MAX_FETCHES) {
                debug!("pinned block already being fetched, or too many fetches");
                for started in &missing[..i] {
                    self.fetches.done(started);
                }
                return;
            }
        }
        self.out.push(Action::Fetch {
            from,
            message,
            blocks: missing,
        });
    }

    fn deliver(&mut self, from: NodeIndex, message: Message) -> Result<(), CoreError> {
        self.observe_message(from, &message);
        self.feed(Event::Received { from, message })
    }

    fn on_chain(&mut self, input: ChainInput) -> Result<(), CoreError> {
        match input {
            ChainInput::Snapshot(s) => self.on_snapshot(*s)?,
            ChainInput::Observed(obs) => self.on_observed(obs)?,
            ChainInput::Registered {
                key,
                draw_hash,
                draw,
                tx_hash,
                block,
            } => self.on_registered(key, draw_hash, draw, tx_hash, block)?,
            ChainInput::LegPaid {
                draw_hash,
                vault,
                tx_hash,
                block,
            } => {
                let paid = self
                    .journal
                    .leg_paid(draw_hash, vault, tx_hash, block, self.now);
                if let Some(c) = paid {
                    self.notice_incident(c);
                }
                self.feed(Event::LegExecuted {
                    draw_hash,
                    vault,
                    block,
                })?;
            }
            ChainInput::ActionExecuted {
                vault,
                id,
                what,
                fact,
                tx_hash,
            } => self.on_action_executed(vault, id, what, fact, tx_hash)?,
            ChainInput::GuardianSet { vault, guardians } => {
                self.on_guardian_set(vault, guardians)?
            }
            ChainInput::Head { chain_id, number } => {
                let st = self.status.entry(chain_id).or_default();
                st.head = st.head.max(number);
            }
            ChainInput::Reorg {
                chain_id,
                dropped,
                deep,
            } => self.on_reorg(chain_id, &dropped, deep)?,
            ChainInput::Halted { chain_id, halted } => self.on_halted(chain_id, halted)?,
        }
        Ok(())
    }

    /// A vault's guardian set (a rotation it executed): once every vault holds one
    /// rotation of the consortium, the machine, the governance table and gossip validation
    /// follow it.
    fn on_guardian_set(
        &mut self,
        vault: VaultId,
        guardians: Vec<Address>,
    ) -> Result<(), CoreError> {
        let old = self.machine.config().consortium.clone();
        let rotated = match self.guardians.observe(vault, guardians, &old) {
            Follow::Nothing => return Ok(()),
            Follow::Refused(e) => {
                error!(error = %e, "guardian rotation not followed");
                self.notice_text(format!("guardian rotation not followed: {e}"));
                return Ok(());
            }
            Follow::Rotate(c) => c,
        };
        self.machine.follow_guardians(rotated.clone())?;
        self.governance.follow_guardians(rotated.clone());
        for (i, (was, now)) in old.nodes().iter().zip(rotated.nodes()).enumerate() {
            if was.guardian != now.guardian {
                info!(node = i, old = %was.guardian, new = %now.guardian, "guardian rotated on every vault");
                self.notice_text(format!(
                    "every vault rotated node {i}'s guardian {} to {}",
                    was.guardian, now.guardian
                ));
            }
        }
        if !self.machine.signing() {
            let me = self.machine.config().me;
            let new = rotated.node(me).map(|n| n.guardian).unwrap_or_default();
            warn!(%new, "this node's guardian key was rotated out; it signs nothing until it holds the new key");
            self.notice_text(format!(
                "this node's guardian key was rotated out: it signs nothing until its operator configures the key of {new} and reloads (SIGHUP)"
            ));
        }
        self.out.push(Action::FollowGuardians(Arc::new(rotated)));
        Ok(())
    }

    /// The operator reloaded the guardian key: the machine signs with it if it holds this
    /// node's guardian of the current set, and signs again with it what the guard recorded.
    /// Any other key is refused (with a notice) and the current signer kept.
    pub fn replace_signer(&mut self, signer: S, now: u64) -> Result<Vec<Action>, CoreError> {
        self.now = self.now.max(now);
        let me = self.machine.config().me;
        let want = self
            .machine
            .config()
            .consortium
            .node(me)
            .map(|n| n.guardian);
        let held = signer.address();
        if want != Some(held) {
            warn!(%held, want = ?want, "reloaded guardian key refused");
            self.notice_text(format!(
                "reloaded guardian key {held} refused: this node's guardian on the vaults is {}; the current signer stays",
                want.unwrap_or_default()
            ));
        } else {
            let outputs = self.machine.replace_signer(signer)?;
            self.carry_outputs(outputs);
            info!(guardian = %held, "guardian key reloaded");
            self.notice_text(format!(
                "guardian key {held} loaded: this node signs with it"
            ));
        }
        self.feed(Event::Tick)?;
        Ok(std::mem::take(&mut self.out))
    }

    fn on_registered(
        &mut self,
        key: IncidentKey,
        draw_hash: B256,
        draw: Draw,
        tx_hash: B256,
        block: u64,
    ) -> Result<(), CoreError> {
        let home = StateView::home_vault(self.machine.view(), &key.member);
        if let Some(home) = home
            && let Some(c) = self
                .journal
                .registered(key, draw_hash, &draw, home, tx_hash, block, self.now)
        {
            self.notice_incident(c);
        }
        self.feed(Event::DrawRegistered {
            key,
            draw_hash,
            draw,
            finalized: true,
            block,
        })
    }

    /// Blocks dropped by a reorg leave the view; a deep one (below the confirmation depth)
    /// also takes back what the machine saw in them, and operators hear of it.
    fn on_reorg(
        &mut self,
        chain_id: u64,
        dropped: &[(u64, B256)],
        deep: bool,
    ) -> Result<(), CoreError> {
        warn!(chain_id, dropped = dropped.len(), deep, "reorg");
        self.machine.view_mut().drop_blocks(chain_id, dropped);
        let Some(lowest) = dropped.iter().map(|(n, _)| *n).min() else {
            return Ok(());
        };
        self.detectors.on_reorg(chain_id, lowest);
        self.warnings.on_reorg(chain_id, lowest);
        let after = lowest.saturating_sub(1);
        let st = self.status.entry(chain_id).or_default();
        st.head = after;
        if deep {
            st.deep_reorgs = st.deep_reorgs.saturating_add(1);
            self.notice_text(format!(
                "deep reorg on chain {chain_id}: {} confirmed block(s) above {after} replaced",
                dropped.len()
            ));
            self.feed(Event::Rewound { chain_id, after })?;
        }
        Ok(())
    }

    fn on_action_executed(
        &mut self,
        vault: VaultId,
        id: B256,
        what: &'static str,
        fact: Option<VaultFact>,
        tx_hash: B256,
    ) -> Result<(), CoreError> {
        self.notice_text(format!(
            "{what} {id} executed on chain {} in {tx_hash}",
            vault.chain_id
        ));
        self.governance.executed(&vault, &id, Some(tx_hash));
        self.feed(Event::ActionExecuted { vault, id })?;
        if let Some(fact) = fact {
            let out = self
                .policy
                .vault_fact(vault.chain_id, fact, tx_hash, self.now);
            self.apply_policy(out)?;
        }
        Ok(())
    }

    fn on_snapshot(&mut self, s: ChainSnapshot) -> Result<(), CoreError> {
        let now = self.now;
        let chain_id = s.block.chain_id;
        let snap = Arc::new(s.clone());
        self.machine.view_mut().insert(s, true);
        let st = self.status.entry(chain_id).or_default();
        st.head = st.head.max(snap.block.number);
        st.confirmed = Some(snap.clone());
        if let Some(change) = self.clock.on_block(chain_id, snap.timestamp, now) {
            log_clock(&change);
        }
        // Detectors see the block before the observations it carries reach the machine, so
        // a suspicion blocks attesting from the same block on.
        let mut found = self.detectors.on_snapshot(&snap, now);
        found.extend(self.check_bookings(chain_id, snap.timestamp.saturating_mul(1000), now));
        let early = self.warnings.on_snapshot(&snap);
        found.extend(self.detectors.on_conditions(early, now));
        found.extend(self.stress_test(now));
        self.follow_registry(&snap);
        self.assert_own(found)
    }

    /// Tells operators when a configured member's standing on its home vault changes (not
    /// on it, disabled, homed elsewhere, registered): the chain holds the member's terms,
    /// and a difference with the configuration is named, not guessed at.
    fn follow_registry(&mut self, snap: &ChainSnapshot) {
        let changes: Vec<(B256, Registration)> =
            governance::registrations(snap, self.machine.view())
                .filter(|(id, reg)| self.registry.get(id) != Some(reg))
                .collect();
        for (id, reg) in changes {
            let first = self.registry.insert(id, reg).is_none();
            if first && reg == Registration::Registered {
                continue;
            }
            let text = reg.describe(&format!("{id}"), snap.block.chain_id);
            match reg {
                Registration::Registered => info!("{text}"),
                _ => warn!("{text}"),
            }
            self.notice_text(text);
        }
    }

    /// Evaluates the stress scenarios at the newest confirmed heads: the report operators
    /// see, a notice for each scenario whose coverage crossed 1.0, and the pool's coverage
    /// warning.
    fn stress_test(&mut self, now: u64) -> Vec<Assertion> {
        if self.stress.is_empty() {
            return Vec::new();
        }
        let report = self
            .stress
            .evaluate(self.machine.view(), &self.warnings, now);
        for (scenario, low, text) in stress::crossings(self.stress_report.as_deref(), &report, BPS)
        {
            if low {
                warn!("{text}");
            } else {
                info!("{text}");
            }
            self.out
                .push(Action::Notice(Notice::Stress { scenario, text }));
        }
        let coverage = self.warnings.on_stress(&report.scenarios);
        self.stress_report = Some(Arc::new(report));
        self.detectors.on_conditions(coverage, now)
    }

    fn on_observed(&mut self, obs: backstop_agreement::GapObservation) -> Result<(), CoreError> {
        let gap = obs.gap();
        let key = obs.key;
        if gap > self.machine.config().dust {
            let out = self.policy.trouble(key.member, self.now);
            self.apply_policy(out)?;
        }
        let block = obs.block_number;
        let deductible = self
            .machine
            .view()
            .latest(obs.home_chain_id)
            .and_then(|s| s.members.get(&key.member))
            .map_or(U256::ZERO, |m| U256::from(m.record.deductible));
        self.feed(Event::Observed(obs))?;
        if self.machine.is_open(&key)
            && gap > U256::ZERO
            && let Some(c) = self.journal.observed(key, gap, deductible, block, self.now)
        {
            self.notice_incident(c);
        }
        Ok(())
    }

    fn on_halted(&mut self, chain_id: u64, halted: bool) -> Result<(), CoreError> {
        let text = if halted {
            format!("chain {chain_id} halted: quarantined")
        } else {
            format!("chain {chain_id} resumed")
        };
        warn!("{text}");
        self.notice_text(text);
        self.machine.view_mut().set_quarantined(chain_id, halted);
        self.status.entry(chain_id).or_default().halted = halted;
        self.policy.set_halted(chain_id, halted);
        let found = self.detectors.on_halted(chain_id, halted, self.now);
        self.assert_own(found)
    }

    /// The booking detector over the members homed on `chain_id`, at its newest block (of
    /// time `block_ms`).
    fn check_bookings(&mut self, chain_id: u64, block_ms: u64, now: u64) -> Vec<Assertion> {
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
            .flat_map(|(m, b)| self.detectors.on_booking(m, b, block_ms, now))
            .collect()
    }

    fn on_admin(&mut self, cmd: AdminCommand) -> Result<String, AdminError> {
        let id = self.action_id(format!("{cmd:?}").as_bytes());
        let deadline = self.now / 1000 + self.action_ttl_s;
        let (chain_id, action) = match cmd {
            AdminCommand::Propose { chain_id, change } => return self.propose(chain_id, change),
            AdminCommand::Approve { id, digest } => return self.approve(id, digest),
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
            self.request_action(vault, action.clone())
                .map_err(|e| AdminError::Unavailable(e.to_string()))?;
        }
        Ok(format!("action {id} proposed on {n} vault(s)"))
    }

    /// A fresh threshold-action id: this guardian, `now` and what the action is for.
    fn action_id(&self, what: &[u8]) -> B256 {
        let cfg = self.machine.config();
        let guardian = cfg
            .consortium
            .node(cfg.me)
            .map_or(Address::ZERO, |n| n.guardian);
        keccak256([guardian.as_slice(), &self.now.to_be_bytes(), what].concat())
    }

    /// An operator's governance proposal: checked, kept and gossiped; nothing is signed
    /// until an operator approves it by its digest (this node's included).
    fn propose(
        &mut self,
        chain_id: Option<u64>,
        change: GovernanceChange,
    ) -> Result<String, AdminError> {
        let targets = self.vaults(chain_id)?;
        let id = self.action_id(format!("{chain_id:?} {change:?}").as_bytes());
        let deadline = self.now / 1000 + governance::PROPOSAL_TTL_S;
        let action = governance::action_of(change, id, deadline, self.machine.view())
            .map_err(admin_error)?;
        let signature = self
            .machine
            .sign_proposal(&targets, &action)
            .map_err(|e| AdminError::Unavailable(e.to_string()))?;
        let proposal = GovernanceProposal {
            proposer: self.machine.config().me,
            targets,
            action,
            signature,
        };
        let (digest, kind, n) = (
            proposal.digest(),
            proposal.action.name(),
            proposal.targets.len(),
        );
        self.governance
            .propose(proposal.clone(), self.now)
            .map_err(admin_error)?;
        info!(%id, %digest, kind, vaults = n, "governance proposal made");
        self.broadcast(Message::GovernanceProposal(proposal));
        Ok(format!(
            "proposal {id} ({kind}) on {n} vault(s), digest {digest}; each operator approves it with: backstop admin approve {id} {digest}"
        ))
    }

    /// An operator approves a proposal by its digest: this node signs it on every target
    /// vault it has not executed yet.
    fn approve(&mut self, id: B256, digest: B256) -> Result<String, AdminError> {
        let actions = self
            .governance
            .approve(id, digest, self.now)
            .map_err(admin_error)?;
        let n = actions.len();
        for (vault, action) in actions {
            self.request_action(vault, action)
                .map_err(|e| AdminError::Unavailable(e.to_string()))?;
        }
        info!(%id, %digest, vaults = n, "governance proposal approved");
        Ok(format!("proposal {id} approved: signed for {n} vault(s)"))
    }

    /// Expires proposals, and gossips this node's open ones again now and then.
    fn governance_tick(&mut self) {
        self.governance.expire(self.now);
        if self.now < self.next_proposal_rebroadcast {
            return;
        }
        self.next_proposal_rebroadcast = self.now + governance::REBROADCAST_MS;
        let me = self.machine.config().me;
        let mine: Vec<_> = self.governance.open_of(me).cloned().collect();
        for p in mine {
            self.out
                .push(Action::Publish(Message::GovernanceProposal(p)));
        }
    }

    /// Approves `action` in the view (so this node attests it) and proposes it.
    fn request_action(&mut self, vault: VaultId, action: ThresholdAction) -> Result<(), CoreError> {
        self.machine
            .view_mut()
            .approve(vault, action.clone(), self.now);
        self.feed(Event::RequestAction { vault, action })
    }

    /// This node's own assertions: gossiped, then counted.
    fn assert_own(&mut self, found: Vec<Assertion>) -> Result<(), CoreError> {
        let now = self.now;
        for a in found {
            info!(kind = ?a.kind, subject = %a.subject, evidence = %a.evidence, "signal asserted");
            let mut evidence = a.evidence.clone().into_bytes();
            evidence.truncate(MAX_EVIDENCE_LEN);
            // Re-asserted every interval while the condition holds, so a lost one is
            // repeated.
            self.out.push(Action::Publish(Message::Signal(Signal {
                kind: a.kind,
                subject: a.subject,
                observed_at_ms: now,
                evidence: evidence.into(),
            })));
            let me = self.policy.config().me;
            let out = self
                .policy
                .assert(me, a.kind, a.subject, Some(a.evidence), now);
            self.apply_policy(out)?;
        }
        Ok(())
    }

    /// Starts the due reconciliations of open incidents and checks of open actions (one at
    /// a time for each).
    fn reconcile_due(&mut self) {
        let now = self.now;
        let open: BTreeSet<IncidentKey> = self
            .machine
            .open_incidents()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        for key in due(&mut self.reconcile_at, open, now) {
            let Some(rec) = self.machine.incident(&key) else {
                continue;
            };
            self.out.push(Action::Reconcile {
                key,
                home_chain_id: rec.home.chain_id,
                registered: rec
                    .registration
                    .as_ref()
                    .map(|r| (r.draw_hash, r.draw.clone())),
            });
        }
        let open = self.machine.open_action_ids().collect();
        for (vault, id) in due(&mut self.check_action_at, open, now) {
            self.out.push(Action::CheckAction { vault, id });
        }
        let missed = self.missed();
        for key in due(&mut self.missed_at, missed, now) {
            let Some(home) = self.home_chain(&key.member) else {
                continue;
            };
            self.out.push(Action::Reconcile {
                key,
                home_chain_id: home,
                registered: None,
            });
        }
    }

    fn home_chain(&self, member: &B256) -> Option<u64> {
        let members = &self.machine.view().config().members;
        members.get(member).map(|m| m.home_chain_id)
    }

    /// The incidents whose draw the home vault registered (its `nextSeq` at the confirmed
    /// head is past them) and that this node has neither open nor closed covered: it was
    /// down or could not read the chain when they happened, or closed them resolved before
    /// it saw the registration. At most [`MAX_MISSED_PER_MEMBER`] per member, the newest.
    fn missed(&self) -> BTreeSet<IncidentKey> {
        let mut out = BTreeSet::new();
        for (member, policy) in &self.machine.view().config().members {
            let next_seq = self
                .status
                .get(&policy.home_chain_id)
                .and_then(|st| st.confirmed.as_ref())
                .and_then(|c| c.members.get(member))
                .map_or(0, |m| m.record.next_seq);
            let known = self.machine.closed_through(member).map_or(0, |c| c + 1);
            let from = known.max(next_seq.saturating_sub(MAX_MISSED_PER_MEMBER));
            for seq in from..next_seq {
                let key = IncidentKey {
                    member: *member,
                    seq,
                };
                if !self.machine.is_open(&key) {
                    out.insert(key);
                }
            }
        }
        out
    }

    fn policy_tick(&mut self) -> Result<(), CoreError> {
        self.reconcile_due();
        self.governance_tick();
        let found = self.detectors.tick(self.now);
        self.assert_own(found)?;
        let out = self.policy.tick(self.now);
        self.apply_policy(out)
    }

    /// Carries out what the policy returned, and hands its decisions to the view.
    fn apply_policy(&mut self, out: Vec<PolicyOutput>) -> Result<(), CoreError> {
        let now = self.now;
        let holding = self.detectors.holding().map(|(k, _)| *k).collect();
        let state = self.policy.view_state(now, &holding);
        if *self.machine.view().breakers() != state {
            self.machine.view_mut().set_breakers(state);
        }
        for o in out {
            match o {
                PolicyOutput::Notice(text) => {
                    warn!("{text}");
                    self.notice_text(text);
                }
                PolicyOutput::Request {
                    chain_id,
                    effect,
                    breaker,
                } => {
                    let what = format!("{breaker} {effect:?}");
                    self.breaker_action(chain_id, breaker, &what, |id, deadline| match effect {
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
                    })?;
                }
                PolicyOutput::Clear {
                    chain_id,
                    subject,
                    breaker,
                } => {
                    let what = format!("{breaker} clear {subject}");
                    self.breaker_action(chain_id, breaker, &what, |id, deadline| {
                        ThresholdAction::ClearAlert(ClearAlert {
                            subject,
                            id,
                            deadline,
                        })
                    })?;
                }
            }
        }
        Ok(())
    }

    /// Proposes a breaker's action on the vault of `chain_id`, with a fresh id for `what`
    /// (an early warning's for [`EARLY_WARNING_ACTION_TTL_S`] at most).
    fn breaker_action(
        &mut self,
        chain_id: u64,
        breaker: BreakerId,
        what: &str,
        action: impl FnOnce(B256, u64) -> ThresholdAction,
    ) -> Result<(), CoreError> {
        let Some(vault) = self
            .vaults(Some(chain_id))
            .ok()
            .and_then(|v| v.first().copied())
        else {
            return Ok(());
        };
        let id = self.action_id(
            [&chain_id.to_be_bytes()[..], what.as_bytes()]
                .concat()
                .as_slice(),
        );
        let ttl_s = if breaker.kind == BreakerKind::EarlyWarning {
            self.action_ttl_s.min(EARLY_WARNING_ACTION_TTL_S)
        } else {
            self.action_ttl_s
        };
        let action = action(id, self.now / 1000 + ttl_s);
        info!(chain_id, what, %id, "asking the consortium for a breaker's action");
        self.request_action(vault, action)
    }

    /// The vault on `chain_id`, or on every configured chain.
    fn vaults(&self, chain_id: Option<u64>) -> Result<Vec<VaultId>, AdminError> {
        let vaults = &self.machine.view().config().vaults;
        let id = |(chain_id, address): (&u64, &Address)| VaultId {
            chain_id: *chain_id,
            address: *address,
        };
        match chain_id {
            Some(c) => vaults
                .get_key_value(&c)
                .map(|v| vec![id(v)])
                .ok_or_else(|| AdminError::NotFound(format!("chain {c}"))),
            None => Ok(vaults.iter().map(id).collect()),
        }
    }

    /// What operators see at `now`.
    pub fn snapshot(&self, now: u64) -> Snapshot {
        Snapshot {
            chains: self.status.clone(),
            incidents: self.journal.shared().cloned().collect(),
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
            stress: self.stress_report.clone(),
            proposals: self.governance.proposals().cloned().collect(),
            governance_quorum: self.machine.config().consortium.t(),
            guardian: self
                .machine
                .signing()
                .then(|| {
                    let cfg = self.machine.config();
                    cfg.consortium.node(cfg.me).map(|n| n.guardian)
                })
                .flatten(),
        }
    }
}

/// The operator-facing error of a refused proposal or approval.
fn admin_error(e: ProposalError) -> AdminError {
    match e {
        ProposalError::NotFound(_)
        | ProposalError::UnknownChain(_)
        | ProposalError::UnknownMember(_) => AdminError::NotFound(e.to_string()),
        _ => AdminError::Rejected(e.to_string()),
    }
}

/// Most draws per member that [`NodeCore::missed`] looks up on the chains.
pub const MAX_MISSED_PER_MEMBER: u64 = 4;

/// The keys of `open` whose check is due at `now`, marked running (`None`); drops the
/// schedule of keys no longer open. A key new to the schedule is due a period from now
/// (restored ones are scheduled at 0 on start).
fn due<K: Ord + Copy>(
    schedule: &mut BTreeMap<K, Option<u64>>,
    open: BTreeSet<K>,
    now: u64,
) -> Vec<K> {
    schedule.retain(|k, _| open.contains(k));
    let mut due = Vec::new();
    for key in open {
        let at = schedule
            .entry(key)
            .or_insert(Some(now.saturating_add(RECONCILE_EVERY_MS)));
        if at.is_some_and(|t| t <= now) {
            *at = None;
            due.push(key);
        }
    }
    due
}

/// Logs a change of the clock verdict: a warning while skewed, a note when it is fine again.
fn log_clock(change: &ClockReport) {
    let offset_s = change.offset_ms as f64 / 1000.0;
    match change.skew {
        Skew::Fine => info!(offset_s, "clock agrees with the chains again"),
        Skew::Ahead | Skew::Behind => warn!(offset_s, "{}", change.warning),
    }
}

/// The vault call a certificate carries out, as submissions are counted.
pub fn kind_of(s: &Subject) -> &'static str {
    match s {
        Subject::Draw { .. } => "register_draw",
        Subject::Leg { .. } => "release_leg",
        Subject::Action { action, .. } => action.name(),
    }
}
