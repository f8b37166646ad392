//! Signals and circuit breakers: the recovery table as a plain state machine.
//!
//! Fed with signal assertions (this node's detectors, operators, and other nodes' signed
//! gossip), member troubles (incidents opened), chain halts, executed vault events and
//! time, it keeps the signal table and the breakers, and returns what the node must ask the
//! consortium for on chain ([`Output::Request`]) and what to tell operators.
//!
//! | breaker | trips on | here | on chain (p signatures) |
//! | --- | --- | --- | --- |
//! | oracle | confirmed oracle deviation or staleness | no draw of a member priced by the oracle is attested | alert level 2 for each such member, every vault |
//! | exploit | confirmed abnormal outflow of a member | no draw of the member is attested | `freezeMember`, every vault |
//! | chain halt | confirmed chain halt | allocations skip the chain | alert level 2 for the chain, every other vault |
//! | contagion | `contagion_members` members of one chain in trouble within the window | allocations skip the chain | alert level 3 for the chain, every vault |
//! | depeg | confirmed pool-token depeg on a chain | allocations skip the chain | alert level 2 for the chain, every vault |
//! | operator | confirmed operator signal | a member subject is blocked, a chain subject quarantined | alert level 2 for the subject, every vault |
//! | early warning | confirmed margin trend of a member; confirmed low stress coverage or volatility spike (the pool) | nothing | alert level 1 for the member or the pool, every vault |
//!
//! Invariants:
//! - a signal is confirmed only by `p` distinct nodes asserting the same `(kind, subject)`
//!   within the window, so `f` nodes raising false signals trip nothing; a node's own
//!   fresh assertion only makes it refuse to attest (refusing is always safe);
//! - a breaker latches: it ends only when the consortium lifts one of its on-chain effects
//!   (t signatures, asked for by an operator), or when its trigger has not held for the
//!   expiry; assertions older than a lift never trip it again. Early warnings are the
//!   exception: one ends as soon as its trigger no longer holds, and the nodes ask the
//!   consortium to clear its level-1 alerts (t signatures, which a node whose own detectors
//!   still see the condition refuses), unless another breaker still wants an alert for the
//!   subject. An early warning never blocks, freezes or quarantines;
//! - one node originates each on-chain effect first (a rotation keyed by the breaker), the
//!   others follow after growing delays only if the effect is still not executed, and a
//!   node that sees another's request for an effect it has pending (or asked for it
//!   itself) waits three rotations before asking (one transaction per effect, not one per
//!   impatient node);
//! - every table is bounded, and a node asserting subjects nobody else asserts can only
//!   evict its own such signals ([`MAX_SOLO_SIGNALS`]).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use alloy::primitives::{B256, U256, keccak256};
use backstop_types::{BreakerKind, Effect, SignalKind, chain_subject, pool_subject};

use crate::view::BreakerState;

/// Most `(kind, subject)` signals tracked.
pub const MAX_SIGNALS: usize = 1024;
/// Rotations of originators a requested effect may stay pending before it is asked again.
const PATIENCE_ROTATIONS: u64 = 3;
/// Most signals asserted by one node alone: a node flooding subjects only evicts its own.
pub const MAX_SOLO_SIGNALS: usize = 64;
/// Most ended breakers kept for operators.
pub const MAX_HISTORY: usize = 64;
/// Alert level of an oracle, halt, depeg or operator breaker.
pub const ALERT: u8 = 2;
/// Alert level of a contagion breaker.
pub const ALERT_CONTAGION: u8 = 3;
/// Alert level of an early warning.
pub const ALERT_EARLY_WARNING: u8 = 1;
/// How long an early warning's alert or clear is signed for (s): an early warning comes and
/// goes with its condition, so a request the other nodes no longer want expires within
/// minutes instead of staying open for the consortium's whole action lifetime (the policy
/// asks again, under a new id, while it still wants the effect).
pub const EARLY_WARNING_ACTION_TTL_S: u64 = 300;

/// A breaker: its kind and subject (oracle, member or chain subject).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BreakerId {
    /// Kind.
    pub kind: BreakerKind,
    /// Subject.
    pub subject: B256,
}

impl fmt::Display for BreakerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind.as_str(), self.subject)
    }
}

/// What a vault did, as read from its events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VaultFact {
    /// A member frozen.
    Frozen(B256),
    /// A member freeze lifted (t signatures).
    Unfrozen(B256),
    /// An alert raised.
    AlertRaised {
        /// Subject.
        subject: B256,
        /// Level now in force.
        level: u8,
    },
    /// An alert cleared (t signatures).
    AlertCleared(B256),
}

/// Where an effect stands on one vault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EffectStatus {
    /// Not seen executed yet.
    Pending,
    /// Executed (transaction hash).
    Executed(B256),
    /// Lifted on chain.
    Lifted,
}

/// One effect of a breaker on one vault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EffectState {
    /// Status.
    pub status: EffectStatus,
    /// When this node asks for it (ms), if it still has to.
    pub request_at: Option<u64>,
}

/// A tripped breaker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Breaker {
    /// Identity.
    pub id: BreakerId,
    /// Why it tripped.
    pub cause: String,
    /// When it tripped (ms).
    pub tripped_ms: u64,
    /// Last time its trigger held (ms).
    pub renewed_ms: u64,
    /// Members whose draws this node refuses to attest.
    pub blocked_members: BTreeSet<B256>,
    /// Chains allocations skip.
    pub quarantined: BTreeSet<u64>,
    /// On-chain effects by (chain id, effect).
    pub effects: BTreeMap<(u64, Effect), EffectState>,
    /// `None` while active; how it ended otherwise.
    pub ended: Option<String>,
}

impl Breaker {
    /// When it lapses unless its trigger holds again (ms).
    pub fn expires_ms(&self, expiry_ms: u64) -> u64 {
        self.renewed_ms.saturating_add(expiry_ms)
    }
}

/// One `(kind, subject)` signal as this node knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignalEntry {
    /// Kind.
    pub kind: SignalKind,
    /// Subject.
    pub subject: B256,
    /// Latest assertion time (ms) by consortium node index.
    pub raisers: BTreeMap<usize, u64>,
    /// First assertion (ms).
    pub first_ms: u64,
    /// Latest assertion (ms).
    pub last_ms: u64,
    /// Assertions before this (ms) were lifted and do not count.
    pub lifted_ms: u64,
    /// Latest evidence of this node's own assertion.
    pub evidence: Option<String>,
}

impl SignalEntry {
    /// Nodes whose assertion counts at `now`.
    pub fn live(&self, now: u64, window_ms: u64) -> impl Iterator<Item = usize> + '_ {
        self.raisers
            .iter()
            .filter(move |&(_, &at)| at >= self.lifted_ms && at.saturating_add(window_ms) >= now)
            .map(|(&i, _)| i)
    }
}

/// Static parameters.
#[derive(Clone, Debug)]
pub struct PolicyConfig {
    /// This node's consortium index.
    pub me: usize,
    /// Consortium size.
    pub n: usize,
    /// Distinct nodes that confirm a signal.
    pub p: usize,
    /// Assertions count for this long (ms).
    pub window_ms: u64,
    /// A breaker whose trigger has not held for this long ends (ms).
    pub expiry_ms: u64,
    /// Members of one chain in trouble within the window that trip contagion.
    pub contagion_members: usize,
    /// Origination rank `r` asks for an effect `r · origin_delay_ms` after the trip.
    pub origin_delay_ms: u64,
    /// Configured chains.
    pub chains: BTreeSet<u64>,
    /// Configured members: home chain and the oracle subject they are priced by.
    pub members: BTreeMap<B256, (u64, Option<B256>)>,
}

/// What the node must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Ask the consortium for `effect` on the vault of `chain_id` (p signatures).
    Request {
        /// Chain.
        chain_id: u64,
        /// Effect.
        effect: Effect,
        /// For which breaker.
        breaker: BreakerId,
    },
    /// Ask the consortium to clear the alert of `subject` on the vault of `chain_id` (t
    /// signatures): an early warning whose condition cleared.
    Clear {
        /// Chain.
        chain_id: u64,
        /// Alert subject.
        subject: B256,
        /// The early warning that raised it.
        breaker: BreakerId,
    },
    /// Something operators should see.
    Notice(String),
}

/// The signal table and the breakers.
#[derive(Debug)]
pub struct Policy {
    cfg: PolicyConfig,
    signals: BTreeMap<(SignalKind, B256), SignalEntry>,
    /// Latest trouble (ms) of each member.
    troubles: BTreeMap<B256, u64>,
    /// Per chain, the last operator lift of its contagion: troubles before it (ms) are
    /// spent, and the members then in trouble are excused while their trouble goes on (their
    /// gaps are what the lift lets the consortium cover; counting them again would re-trip
    /// the breaker at their next observation).
    contagion_lifted: BTreeMap<u64, (u64, BTreeSet<B256>)>,
    halted: BTreeSet<u64>,
    active: BTreeMap<BreakerId, Breaker>,
    history: Vec<Breaker>,
    /// Effects other nodes asked for recently, and when (ms): a breaker that trips here
    /// after such a request waits a patience from then. At most [`MAX_SIGNALS`], the
    /// oldest forgotten first; entries older than a patience are dropped.
    requested: BTreeMap<(u64, Effect), u64>,
    /// Alerts of ended early warnings still to clear, by (chain, subject): when this node
    /// asks (ms) and for which breaker. At most [`MAX_SIGNALS`].
    clearing: BTreeMap<(u64, B256), (u64, BreakerId)>,
    /// Alerts seen raised on each vault, with their transaction and when (ms), whatever
    /// breaker (if any) wanted them here: a breaker that trips after its alert was raised
    /// for the other nodes' breakers finds it executed, instead of asking for it again
    /// under an id the others refuse. Dropped when cleared on chain or after the expiry; at
    /// most [`MAX_SIGNALS`], the oldest forgotten first. (Freezes are not taken on trust: a
    /// freeze that lapsed on chain is asked for again.)
    in_force: BTreeMap<(u64, Effect), (B256, u64)>,
}

impl Policy {
    /// An empty policy.
    pub fn new(cfg: PolicyConfig) -> Self {
        Self {
            cfg,
            signals: BTreeMap::new(),
            troubles: BTreeMap::new(),
            contagion_lifted: BTreeMap::new(),
            halted: BTreeSet::new(),
            active: BTreeMap::new(),
            history: Vec::new(),
            requested: BTreeMap::new(),
            clearing: BTreeMap::new(),
            in_force: BTreeMap::new(),
        }
    }

    /// The parameters.
    pub fn config(&self) -> &PolicyConfig {
        &self.cfg
    }

    /// The signal table.
    pub fn signals(&self) -> impl Iterator<Item = &SignalEntry> {
        self.signals.values()
    }

    /// Whether `entry` is confirmed at `now`.
    pub fn confirmed(&self, entry: &SignalEntry, now: u64) -> bool {
        entry.live(now, self.cfg.window_ms).count() >= self.cfg.p
    }

    /// Active breakers.
    pub fn active(&self) -> impl Iterator<Item = &Breaker> {
        self.active.values()
    }

    /// Ended breakers, oldest first (bounded).
    pub fn history(&self) -> &[Breaker] {
        &self.history
    }

    /// Members this node refuses to attest draws for, with the reason: active breakers,
    /// and this node's own fresh suspicion (an unconfirmed signal it asserts itself).
    pub fn blocked_members(&self, now: u64) -> BTreeMap<B256, String> {
        let mut out = BTreeMap::new();
        for b in self.active.values() {
            for m in &b.blocked_members {
                out.entry(*m).or_insert_with(|| format!("breaker {}", b.id));
            }
        }
        for s in self.signals.values() {
            if !self.own_fresh(s, now) {
                continue;
            }
            for m in self.members_concerned(s.kind, s.subject) {
                out.entry(m)
                    .or_insert_with(|| format!("own {:?} signal", s.kind));
            }
        }
        out
    }

    /// Chains allocations skip by policy (a halted chain is skipped by the view anyway).
    pub fn quarantined(&self) -> BTreeSet<u64> {
        self.active
            .values()
            .flat_map(|b| b.quarantined.iter().copied())
            .collect()
    }

    /// Whether an active breaker wants `effect` (or a stronger alert) on `chain_id`: this
    /// node then signs another node's request for it.
    pub fn wants(&self, chain_id: u64, effect: &Effect) -> bool {
        self.active.values().any(|b| {
            b.effects
                .keys()
                .any(|(c, e)| *c == chain_id && e.covers(effect))
        })
    }

    /// Subjects (members, alert subjects) whose lift this node refuses to sign, and why: it
    /// does while its own detectors still see a condition (`holding`) behind them.
    pub fn held(&self, holding: &BTreeSet<(SignalKind, B256)>) -> BTreeMap<B256, String> {
        let mut out = BTreeMap::new();
        for b in self.active.values() {
            let seen = holding
                .iter()
                .any(|(kind, subject)| self.breaker_of(*kind, *subject) == Some(b.id));
            if seen {
                for (_, e) in b.effects.keys() {
                    out.entry(e.subject())
                        .or_insert_with(|| format!("this node still asserts breaker {}", b.id));
                }
            }
        }
        out
    }

    /// The decisions the view applies; `holding` are the conditions this node's detectors
    /// see now.
    pub fn view_state(&self, now: u64, holding: &BTreeSet<(SignalKind, B256)>) -> BreakerState {
        BreakerState {
            blocked: self.blocked_members(now),
            quarantined: self.quarantined(),
            // An effect executed already is not signed again: a byzantine node would
            // otherwise have any number of freezes (new ids) executed on the honest
            // submitters' gas while the breaker stands.
            wanted: self
                .active
                .values()
                .flat_map(|b| b.effects.iter())
                .filter(|(_, st)| st.status == EffectStatus::Pending)
                .map(|(k, _)| *k)
                .collect(),
            held: self.held(holding),
        }
    }

    /// A node (this one or another, authenticated by its gossip envelope) asserts
    /// `(kind, subject)` at `now`.
    pub fn assert(
        &mut self,
        node: usize,
        kind: SignalKind,
        subject: B256,
        evidence: Option<String>,
        now: u64,
    ) -> Vec<Output> {
        if node >= self.cfg.n {
            return Vec::new();
        }
        let key = (kind, subject);
        if !self.signals.contains_key(&key) {
            // Signals this node alone asserts: past the quota, its oldest one makes room.
            let solo: Vec<((SignalKind, B256), u64)> = self
                .signals
                .iter()
                .filter(|(_, s)| s.raisers.len() == 1 && s.raisers.contains_key(&node))
                .map(|(k, s)| (*k, s.last_ms))
                .collect();
            if solo.len() >= MAX_SOLO_SIGNALS
                && let Some((k, _)) = solo.iter().min_by_key(|(_, at)| *at)
            {
                self.signals.remove(k);
            }
        }
        if !self.signals.contains_key(&key) && self.signals.len() >= MAX_SIGNALS {
            // Evict the stalest signal that is not confirmed.
            let stalest = self
                .signals
                .iter()
                .filter(|(_, s)| !self.confirmed(s, now))
                .min_by_key(|(_, s)| s.last_ms)
                .map(|(k, _)| *k);
            match stalest {
                Some(k) => {
                    self.signals.remove(&k);
                }
                None => return Vec::new(),
            }
        }
        let entry = self.signals.entry(key).or_insert_with(|| SignalEntry {
            kind,
            subject,
            raisers: BTreeMap::new(),
            first_ms: now,
            last_ms: now,
            lifted_ms: 0,
            evidence: None,
        });
        entry.last_ms = now;
        entry.raisers.insert(node, now);
        if node == self.cfg.me && evidence.is_some() {
            entry.evidence = evidence;
        }
        self.evaluate(now)
    }

    /// A member is in trouble (a gap opened an incident) at `now`.
    pub fn trouble(&mut self, member: B256, now: u64) -> Vec<Output> {
        if !self.cfg.members.contains_key(&member) {
            return Vec::new();
        }
        // Trouble after a lapse is fresh: a contagion lift no longer excuses it.
        let window = self.cfg.window_ms;
        if self
            .troubles
            .get(&member)
            .is_none_or(|at| at.saturating_add(window) < now)
        {
            for (_, excused) in self.contagion_lifted.values_mut() {
                excused.remove(&member);
            }
        }
        self.troubles.insert(member, now);
        self.evaluate(now)
    }

    /// This node's view of whether a chain is halted.
    pub fn set_halted(&mut self, chain_id: u64, halted: bool) {
        if halted {
            self.halted.insert(chain_id);
        } else {
            self.halted.remove(&chain_id);
        }
    }

    /// A vault event.
    pub fn vault_fact(
        &mut self,
        chain_id: u64,
        fact: VaultFact,
        tx_hash: B256,
        now: u64,
    ) -> Vec<Output> {
        let mut out = Vec::new();
        match fact {
            VaultFact::Frozen(member) => {
                self.mark_executed(chain_id, |e| *e == Effect::Freeze(member), tx_hash)
            }
            VaultFact::AlertRaised { subject, level } => {
                self.seen_in_force(chain_id, Effect::Alert { subject, level }, tx_hash, now);
                self.mark_executed(
                    chain_id,
                    |e| matches!(e, Effect::Alert { subject: s, level: l } if *s == subject && *l <= level),
                    tx_hash,
                )
            }
            VaultFact::Unfrozen(member) => {
                self.lift(chain_id, |e| *e == Effect::Freeze(member), now, &mut out)
            }
            VaultFact::AlertCleared(subject) => {
                self.clearing.remove(&(chain_id, subject));
                self.in_force
                    .retain(|(c, e), _| *c != chain_id || e.subject() != subject);
                self.lift(
                    chain_id,
                    |e| matches!(e, Effect::Alert { subject: s, .. } if *s == subject),
                    now,
                    &mut out,
                )
            }
        }
        out
    }

    /// Time passes: breakers expire, effects come due.
    pub fn tick(&mut self, now: u64) -> Vec<Output> {
        self.evaluate(now)
    }

    fn own_fresh(&self, s: &SignalEntry, now: u64) -> bool {
        s.raisers
            .get(&self.cfg.me)
            .is_some_and(|&at| at >= s.lifted_ms && at.saturating_add(self.cfg.window_ms) >= now)
    }

    /// Members a signal is about: the member itself, or the members priced by an oracle.
    fn members_concerned(&self, kind: SignalKind, subject: B256) -> Vec<B256> {
        match kind {
            SignalKind::AbnormalOutflow
            | SignalKind::Operator
            | SignalKind::PayoutNotBooked
            | SignalKind::MarginTrend => {
                if self.cfg.members.contains_key(&subject) {
                    vec![subject]
                } else {
                    Vec::new()
                }
            }
            SignalKind::OracleDeviation | SignalKind::OracleStale => self
                .cfg
                .members
                .iter()
                .filter(|(_, (_, o))| *o == Some(subject))
                .map(|(m, _)| *m)
                .collect(),
            SignalKind::ChainHalt
            | SignalKind::Depeg
            | SignalKind::CoverageLow
            | SignalKind::VolatilitySpike => Vec::new(),
        }
    }

    fn chain_of(&self, subject: B256) -> Option<u64> {
        let id = u64::try_from(U256::from_be_bytes(subject.0)).ok()?;
        self.cfg.chains.contains(&id).then_some(id)
    }

    /// The breaker a confirmed signal trips.
    fn breaker_of(&self, kind: SignalKind, subject: B256) -> Option<BreakerId> {
        let kind = match kind {
            SignalKind::OracleDeviation | SignalKind::OracleStale => BreakerKind::Oracle,
            SignalKind::AbnormalOutflow if self.cfg.members.contains_key(&subject) => {
                BreakerKind::Exploit
            }
            SignalKind::ChainHalt if self.chain_of(subject).is_some() => BreakerKind::ChainHalt,
            SignalKind::Depeg if self.chain_of(subject).is_some() => BreakerKind::Depeg,
            SignalKind::Operator => BreakerKind::Operator,
            SignalKind::PayoutNotBooked if self.cfg.members.contains_key(&subject) => {
                BreakerKind::PayoutNotBooked
            }
            SignalKind::MarginTrend if self.cfg.members.contains_key(&subject) => {
                BreakerKind::EarlyWarning
            }
            // Pool-wide precursors: one early warning for the pool.
            SignalKind::CoverageLow if subject == pool_subject() => {
                return Some(BreakerId {
                    kind: BreakerKind::EarlyWarning,
                    subject,
                });
            }
            SignalKind::VolatilitySpike => {
                return Some(BreakerId {
                    kind: BreakerKind::EarlyWarning,
                    subject: pool_subject(),
                });
            }
            _ => return None,
        };
        Some(BreakerId { kind, subject })
    }

    /// What a breaker blocks, quarantines and asks of the vaults.
    fn shape(&self, id: BreakerId) -> (BTreeSet<B256>, BTreeSet<u64>, Vec<(u64, Effect)>) {
        let live: Vec<u64> = self
            .cfg
            .chains
            .iter()
            .copied()
            .filter(|c| !self.halted.contains(c))
            .collect();
        let every = |effect: Effect| live.iter().map(move |c| (*c, effect)).collect::<Vec<_>>();
        let alert = |subject, level| Effect::Alert { subject, level };
        match id.kind {
            BreakerKind::Oracle => {
                let members = self.members_concerned(SignalKind::OracleDeviation, id.subject);
                let effects = members
                    .iter()
                    .flat_map(|m| every(alert(*m, ALERT)))
                    .collect();
                (members.into_iter().collect(), BTreeSet::new(), effects)
            }
            // Exploit and unbooked payouts: no more payouts to the member, anywhere.
            BreakerKind::Exploit | BreakerKind::PayoutNotBooked => (
                [id.subject].into(),
                BTreeSet::new(),
                every(Effect::Freeze(id.subject)),
            ),
            BreakerKind::ChainHalt | BreakerKind::Depeg | BreakerKind::Contagion => {
                let chain = self.chain_of(id.subject);
                let level = if id.kind == BreakerKind::Contagion {
                    ALERT_CONTAGION
                } else {
                    ALERT
                };
                let effects = every(alert(id.subject, level))
                    .into_iter()
                    .filter(|(c, _)| id.kind != BreakerKind::ChainHalt || Some(*c) != chain)
                    .collect();
                (BTreeSet::new(), chain.into_iter().collect(), effects)
            }
            BreakerKind::EarlyWarning => (
                BTreeSet::new(),
                BTreeSet::new(),
                every(alert(id.subject, ALERT_EARLY_WARNING)),
            ),
            BreakerKind::Operator => (
                self.members_concerned(SignalKind::Operator, id.subject)
                    .into_iter()
                    .collect(),
                self.chain_of(id.subject).into_iter().collect(),
                every(alert(id.subject, ALERT)),
            ),
        }
    }

    /// This node's place in the rotation of originators of `id`'s effects.
    fn rank(&self, id: BreakerId) -> usize {
        let n = self.cfg.n.max(1);
        let h = keccak256([&[id.kind as u8][..], id.subject.as_slice()].concat());
        let start = (u64::from_be_bytes([h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]])
            % n as u64) as usize;
        (self.cfg.me + n - start) % n
    }

    /// Triggers holding now, with their causes.
    fn triggers(&self, now: u64) -> BTreeMap<BreakerId, String> {
        let mut out = BTreeMap::new();
        for s in self.signals.values() {
            let live: Vec<usize> = s.live(now, self.cfg.window_ms).collect();
            if live.len() < self.cfg.p {
                continue;
            }
            if let Some(id) = self.breaker_of(s.kind, s.subject) {
                out.entry(id)
                    .or_insert_with(|| format!("{:?} confirmed by nodes {live:?}", s.kind));
            }
        }
        // Contagion: members of one chain in trouble within the window, counting gaps and
        // members under an exploit breaker (a broken oracle is not the members' trouble:
        // two members priced by one feed would otherwise quarantine their chain).
        let mut by_chain: BTreeMap<u64, BTreeSet<B256>> = BTreeMap::new();
        for (m, &at) in &self.troubles {
            let Some(&(home, _)) = self.cfg.members.get(m) else {
                continue;
            };
            let (lifted, excused) = self.lifted(home);
            if at >= lifted && !excused.contains(m) && at.saturating_add(self.cfg.window_ms) >= now
            {
                by_chain.entry(home).or_default().insert(*m);
            }
        }
        for b in self.active.values() {
            if b.id.kind == BreakerKind::Exploit {
                for m in &b.blocked_members {
                    if let Some(&(home, _)) = self.cfg.members.get(m)
                        && b.tripped_ms >= self.lifted(home).0
                    {
                        by_chain.entry(home).or_default().insert(*m);
                    }
                }
            }
        }
        for (chain, members) in by_chain {
            if members.len() >= self.cfg.contagion_members.max(2) {
                out.insert(
                    BreakerId {
                        kind: BreakerKind::Contagion,
                        subject: chain_subject(chain),
                    },
                    format!("{} members of chain {chain} in trouble", members.len()),
                );
            }
        }
        out
    }

    /// The last contagion lift on `chain`: when, and the members it excused.
    fn lifted(&self, chain: u64) -> (u64, &BTreeSet<B256>) {
        static NONE: BTreeSet<B256> = BTreeSet::new();
        self.contagion_lifted
            .get(&chain)
            .map_or((0, &NONE), |(at, excused)| (*at, excused))
    }

    fn evaluate(&mut self, now: u64) -> Vec<Output> {
        let mut out = Vec::new();
        // A member excused by a contagion lift counts again once its trouble lapsed.
        let (troubles, window) = (&self.troubles, self.cfg.window_ms);
        for (_, excused) in self.contagion_lifted.values_mut() {
            excused.retain(|m| {
                troubles
                    .get(m)
                    .is_some_and(|at| at.saturating_add(window) >= now)
            });
        }
        // Contagion counts members of breakers tripped in this pass: two rounds suffice.
        let mut held = BTreeSet::new();
        for _ in 0..2 {
            for (id, cause) in self.triggers(now) {
                held.insert(id);
                if let Some(b) = self.active.get_mut(&id) {
                    b.renewed_ms = now;
                    continue;
                }
                let (blocked_members, quarantined, effects) = self.shape(id);
                let start = now.saturating_add(self.cfg.origin_delay_ms * self.rank(id) as u64);
                let patience = self.patience_ms();
                let b = Breaker {
                    id,
                    cause: cause.clone(),
                    tripped_ms: now,
                    renewed_ms: now,
                    blocked_members,
                    quarantined,
                    effects: effects
                        .into_iter()
                        .map(|k| {
                            // Asked for by another node already: wait a rotation from then.
                            let seen = self
                                .requested
                                .iter()
                                .filter(|((c, e), _)| *c == k.0 && e.covers(&k.1))
                                .map(|(_, at)| at.saturating_add(patience))
                                .max();
                            let at = seen.map_or(start, |s| s.max(start));
                            let state = match self.found_in_force(k.0, &k.1) {
                                Some(tx) => EffectState {
                                    status: EffectStatus::Executed(tx),
                                    request_at: None,
                                },
                                None => EffectState {
                                    status: EffectStatus::Pending,
                                    request_at: Some(at),
                                },
                            };
                            (k, state)
                        })
                        .collect(),
                    ended: None,
                };
                out.push(Output::Notice(format!("breaker {id} tripped: {cause}")));
                self.active.insert(id, b);
            }
        }
        self.end_early_warnings(&held, now, &mut out);
        // Expiry.
        let expired: Vec<BreakerId> = self
            .active
            .values()
            .filter(|b| now > b.expires_ms(self.cfg.expiry_ms))
            .map(|b| b.id)
            .collect();
        for id in expired {
            self.end(id, "expired: its trigger no longer held".into(), &mut out);
        }
        self.clears_due(now, &mut out);
        // Effects due: this node's turn came and the effect is still not executed.
        let patience = self.patience_ms();
        for b in self.active.values_mut() {
            for ((chain_id, effect), st) in b.effects.iter_mut() {
                if st.status == EffectStatus::Pending
                    && let Some(at) = st.request_at
                    && at <= now
                {
                    // Asked again only if it stays pending a whole patience.
                    st.request_at = Some(now.saturating_add(patience));
                    out.push(Output::Request {
                        chain_id: *chain_id,
                        effect: *effect,
                        breaker: b.id,
                    });
                }
            }
        }
        out
    }

    /// Ends the early warnings whose trigger no longer holds, and schedules the clearing of
    /// their executed alerts (this node in its rotation place).
    fn end_early_warnings(&mut self, held: &BTreeSet<BreakerId>, now: u64, out: &mut Vec<Output>) {
        let cleared: Vec<BreakerId> = self
            .active
            .keys()
            .filter(|id| id.kind == BreakerKind::EarlyWarning && !held.contains(id))
            .copied()
            .collect();
        for id in cleared {
            let at = now.saturating_add(self.cfg.origin_delay_ms * self.rank(id) as u64);
            if let Some(b) = self.active.get(&id) {
                for (chain_id, e) in b.effects.keys() {
                    if matches!(
                        b.effects[&(*chain_id, *e)].status,
                        EffectStatus::Executed(_)
                    ) && self.clearing.len() < MAX_SIGNALS
                    {
                        self.clearing.insert((*chain_id, e.subject()), (at, id));
                    }
                }
            }
            self.end(id, "cleared: its condition no longer holds".into(), out);
        }
    }

    /// Clears due: an ended early warning's alert that no active breaker wants, asked for
    /// again after a patience until the vault shows it cleared.
    fn clears_due(&mut self, now: u64, out: &mut Vec<Output>) {
        let patience = self.patience_ms();
        let active = &self.active;
        self.clearing.retain(|(chain_id, subject), _| {
            !active.values().any(|b| {
                b.effects.keys().any(|(c, e)| {
                    c == chain_id && matches!(e, Effect::Alert { subject: s, .. } if s == subject)
                })
            })
        });
        for ((chain_id, subject), (at, breaker)) in self.clearing.iter_mut() {
            if *at <= now {
                *at = now.saturating_add(patience);
                out.push(Output::Clear {
                    chain_id: *chain_id,
                    subject: *subject,
                    breaker: *breaker,
                });
            }
        }
    }

    /// Another node asked for `effect` on `chain_id`: this node's own request of it waits
    /// a patience ([`Self::patience_ms`]) from now, while that one is carried out.
    pub fn requested_elsewhere(&mut self, chain_id: u64, effect: Effect, now: u64) {
        let patience = self.patience_ms();
        let later = now.saturating_add(patience);
        self.requested
            .retain(|_, at| at.saturating_add(patience) > now);
        if self.requested.len() >= MAX_SIGNALS
            && let Some(oldest) = self
                .requested
                .iter()
                .min_by_key(|(_, at)| **at)
                .map(|(k, _)| *k)
        {
            self.requested.remove(&oldest);
        }
        self.requested.insert((chain_id, effect), now);
        for b in self.active.values_mut() {
            for ((c, e), st) in b.effects.iter_mut() {
                if *c == chain_id
                    && effect.covers(e)
                    && st.status == EffectStatus::Pending
                    && let Some(at) = st.request_at.as_mut()
                {
                    *at = (*at).max(later);
                }
            }
        }
    }

    /// How long a requested effect may stay pending before it is asked for again: three
    /// rotations of originators (an action needs gossip, p attestations, a submitter, a block
    /// and its confirmations: ~8 s on the testnet, longer than one rotation of 4 × 1.5 s).
    /// A request is never suppressed for good: a stalled one is asked again after this.
    fn patience_ms(&self) -> u64 {
        self.cfg.origin_delay_ms * self.cfg.n.max(1) as u64 * PATIENCE_ROTATIONS
    }

    /// Records the alert `effect` raised on `chain_id` (see `in_force`).
    fn seen_in_force(&mut self, chain_id: u64, effect: Effect, tx: B256, now: u64) {
        let expiry = self.cfg.expiry_ms;
        self.in_force
            .retain(|_, (_, at)| at.saturating_add(expiry) >= now);
        if self.in_force.len() >= MAX_SIGNALS
            && let Some(oldest) = self
                .in_force
                .iter()
                .min_by_key(|(_, (_, at))| *at)
                .map(|(k, _)| *k)
        {
            self.in_force.remove(&oldest);
        }
        self.in_force.insert((chain_id, effect), (tx, now));
    }

    /// The transaction of an effect in force on `chain_id` that covers `effect`.
    fn found_in_force(&self, chain_id: u64, effect: &Effect) -> Option<B256> {
        self.in_force
            .iter()
            .find(|((c, e), _)| *c == chain_id && e.covers(effect))
            .map(|(_, (tx, _))| *tx)
    }

    fn mark_executed(&mut self, chain_id: u64, matches: impl Fn(&Effect) -> bool, tx: B256) {
        for b in self.active.values_mut() {
            for ((c, e), st) in b.effects.iter_mut() {
                if *c == chain_id && matches(e) && st.status == EffectStatus::Pending {
                    st.status = EffectStatus::Executed(tx);
                    st.request_at = None;
                }
            }
        }
    }

    fn lift(
        &mut self,
        chain_id: u64,
        matches: impl Fn(&Effect) -> bool,
        now: u64,
        out: &mut Vec<Output>,
    ) {
        let lifted: Vec<BreakerId> = self
            .active
            .values()
            .filter(|b| b.effects.keys().any(|(_, e)| matches(e)))
            .map(|b| b.id)
            .collect();
        for id in lifted {
            // The assertions behind it are spent: tripping again takes fresh ones.
            let kinds: Vec<(SignalKind, B256)> = self
                .signals
                .keys()
                .filter(|(k, s)| self.breaker_of(*k, *s) == Some(id))
                .copied()
                .collect();
            for k in kinds {
                if let Some(s) = self.signals.get_mut(&k) {
                    s.lifted_ms = now;
                }
            }
            if id.kind == BreakerKind::Contagion
                && let Some(c) = self.chain_of(id.subject)
            {
                let window = self.cfg.window_ms;
                let excused = self
                    .troubles
                    .iter()
                    .filter(|(m, at)| {
                        at.saturating_add(window) >= now
                            && self.cfg.members.get(*m).is_some_and(|(home, _)| *home == c)
                    })
                    .map(|(m, _)| *m)
                    .collect();
                self.contagion_lifted.insert(c, (now, excused));
            }
            if let Some(b) = self.active.get_mut(&id) {
                for ((c, e), st) in b.effects.iter_mut() {
                    if *c == chain_id && matches(e) {
                        st.status = EffectStatus::Lifted;
                        st.request_at = None;
                    }
                }
            }
            self.end(id, format!("lifted on chain {chain_id}"), out);
        }
    }

    fn end(&mut self, id: BreakerId, how: String, out: &mut Vec<Output>) {
        let Some(mut b) = self.active.remove(&id) else {
            return;
        };
        for st in b.effects.values_mut() {
            st.request_at = None;
        }
        out.push(Output::Notice(format!("breaker {id} ended: {how}")));
        b.ended = Some(how);
        if self.history.len() >= MAX_HISTORY {
            self.history.remove(0);
        }
        self.history.push(b);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use alloy::primitives::Address;
    use backstop_types::oracle_subject;

    const T0: u64 = 1_000_000;
    const WINDOW: u64 = 60_000;

    fn m(i: u8) -> B256 {
        B256::repeat_byte(i)
    }

    fn oracle() -> B256 {
        oracle_subject(1, Address::repeat_byte(9))
    }

    /// Four nodes (p = 2), chains 1-3; members 1 and 2 homed on chain 1 (member 1 priced by
    /// the oracle), member 3 on chain 2.
    fn policy(me: usize) -> Policy {
        Policy::new(PolicyConfig {
            me,
            n: 4,
            p: 2,
            window_ms: WINDOW,
            expiry_ms: 10 * WINDOW,
            contagion_members: 2,
            origin_delay_ms: 1_000,
            chains: [1, 2, 3].into(),
            members: [
                (m(1), (1, Some(oracle()))),
                (m(2), (1, None)),
                (m(3), (2, None)),
            ]
            .into(),
        })
    }

    fn requests(out: &[Output]) -> Vec<(u64, Effect)> {
        out.iter()
            .filter_map(|o| match o {
                Output::Request {
                    chain_id, effect, ..
                } => Some((*chain_id, *effect)),
                Output::Notice(_) | Output::Clear { .. } => None,
            })
            .collect()
    }

    fn clears(out: &[Output]) -> Vec<(u64, B256)> {
        out.iter()
            .filter_map(|o| match o {
                Output::Clear {
                    chain_id, subject, ..
                } => Some((*chain_id, *subject)),
                _ => None,
            })
            .collect()
    }

    /// An alert raised for the other nodes' breaker before this node's tripped is found in
    /// force: this node does not ask for it again (the others, their effect executed,
    /// would refuse a new id for good).
    #[test]
    fn an_alert_already_raised_is_not_asked_for_again() {
        let mut p = policy(0);
        let member = m(2);
        p.vault_fact(
            1,
            VaultFact::AlertRaised {
                subject: member,
                level: 1,
            },
            B256::repeat_byte(7),
            T0,
        );
        p.assert(1, SignalKind::MarginTrend, member, None, T0 + 1);
        p.assert(2, SignalKind::MarginTrend, member, None, T0 + 1);
        let asked: Vec<(u64, Effect)> = (0..20)
            .flat_map(|k| requests(&p.tick(T0 + 2 + k * 1_000)))
            .collect();
        assert!(!asked.iter().any(|(c, _)| *c == 1), "{asked:?}");
        assert!(
            asked.iter().any(|(c, _)| *c == 2),
            "the other vaults still: {asked:?}"
        );
        // Once cleared on chain, a later alert is asked for again.
        p.vault_fact(1, VaultFact::AlertCleared(member), B256::ZERO, T0 + 30_000);
        assert!(
            p.found_in_force(
                1,
                &Effect::Alert {
                    subject: member,
                    level: 1
                }
            )
            .is_none()
        );
    }

    /// An early warning raises a level-1 alert, blocks and quarantines nothing, ends once
    /// its trigger no longer holds, and asks for its executed alerts to be cleared (not the
    /// ones another breaker still wants), until the vault shows them cleared.
    #[test]
    fn an_early_warning_alerts_only_and_clears_itself() {
        let mut p = policy(0);
        let member = m(2);
        p.assert(1, SignalKind::MarginTrend, member, None, T0);
        let out = p.assert(2, SignalKind::MarginTrend, member, None, T0);
        assert!(
            out.iter()
                .any(|o| matches!(o, Output::Notice(t) if t.contains("early_warning")))
        );
        assert!(p.blocked_members(T0).is_empty(), "never blocks");
        assert!(p.quarantined().is_empty(), "never quarantines");
        let alert = Effect::Alert {
            subject: member,
            level: ALERT_EARLY_WARNING,
        };
        let asked = requests(&p.tick(T0 + 10 * 1_000));
        assert!(
            asked.contains(&(1, alert)) && asked.contains(&(3, alert)),
            "{asked:?}"
        );
        assert!(!asked.iter().any(|(_, e)| matches!(e, Effect::Freeze(_))));
        // The alert lands on chains 1 and 2 only; then the assertions age out.
        for chain in [1, 2] {
            p.vault_fact(
                chain,
                VaultFact::AlertRaised {
                    subject: member,
                    level: 1,
                },
                B256::repeat_byte(chain as u8),
                T0 + 11_000,
            );
        }
        let later = T0 + WINDOW + 1;
        let out = p.tick(later);
        assert_eq!(p.active().count(), 0, "ended with its condition");
        let mut asked = Vec::new();
        for k in 0..8 {
            asked.extend(clears(&p.tick(later + k * 1_000)));
        }
        assert_eq!(asked, vec![(1, member), (2, member)], "{out:?}");
        // Chain 1 shows it cleared: only chain 2 is asked again, after a patience.
        p.vault_fact(
            1,
            VaultFact::AlertCleared(member),
            B256::ZERO,
            later + 9_000,
        );
        let again: Vec<_> = (0..20)
            .flat_map(|k| clears(&p.tick(later + 10_000 + k * 1_000)))
            .collect();
        assert!(
            !again.is_empty() && again.iter().all(|c| *c == (2, member)),
            "{again:?}"
        );

        // A pool warning whose subject another breaker alerts for is not cleared.
        let mut p = policy(0);
        let pool = pool_subject();
        for node in [1, 2] {
            p.assert(node, SignalKind::CoverageLow, pool, None, T0);
            p.assert(node, SignalKind::Operator, pool, None, T0);
        }
        p.tick(T0 + 10_000);
        p.vault_fact(
            1,
            VaultFact::AlertRaised {
                subject: pool,
                level: 2,
            },
            B256::ZERO,
            T0 + 11_000,
        );
        for node in [1, 2] {
            p.assert(node, SignalKind::Operator, pool, None, T0 + WINDOW);
        }
        let asked: Vec<_> = (0..20)
            .flat_map(|k| clears(&p.tick(T0 + WINDOW + 1 + k * 1_000)))
            .collect();
        assert!(
            asked.is_empty(),
            "the operator breaker still wants it: {asked:?}"
        );
    }

    fn exploit(member: B256) -> BreakerId {
        BreakerId {
            kind: BreakerKind::Exploit,
            subject: member,
        }
    }

    #[test]
    fn one_node_never_confirms_p_distinct_nodes_do() {
        let mut p = policy(0);
        for k in 0..5 {
            p.assert(3, SignalKind::AbnormalOutflow, m(3), None, T0 + k * 1000);
        }
        assert_eq!(
            p.active().count(),
            0,
            "one node, however often, trips nothing"
        );
        assert!(p.blocked_members(T0 + 5000).is_empty());
        assert!(
            !p.wants(1, &Effect::Freeze(m(3))),
            "nor gets anything signed"
        );

        p.assert(1, SignalKind::AbnormalOutflow, m(3), None, T0 + 6000);
        let b: Vec<&Breaker> = p.active().collect();
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].id, exploit(m(3)));
        assert_eq!(
            p.blocked_members(T0 + 6000).keys().collect::<Vec<_>>(),
            [&m(3)]
        );
        for c in 1..=3 {
            assert!(
                p.wants(c, &Effect::Freeze(m(3))),
                "freeze wanted on chain {c}"
            );
        }
        assert!(!p.wants(1, &Effect::Freeze(m(2))));
    }

    #[test]
    fn assertions_outside_the_window_do_not_add_up() {
        let mut p = policy(0);
        p.assert(1, SignalKind::AbnormalOutflow, m(3), None, T0);
        p.assert(2, SignalKind::AbnormalOutflow, m(3), None, T0 + WINDOW + 1);
        assert_eq!(p.active().count(), 0);
    }

    #[test]
    fn own_suspicion_blocks_attesting_without_any_breaker() {
        let mut p = policy(0);
        p.assert(
            0,
            SignalKind::OracleDeviation,
            oracle(),
            Some("5%".into()),
            T0,
        );
        assert_eq!(p.active().count(), 0);
        let blocked = p.blocked_members(T0 + 1);
        assert_eq!(
            blocked.keys().collect::<Vec<_>>(),
            [&m(1)],
            "the member priced by it"
        );
        assert!(
            p.blocked_members(T0 + WINDOW + 1).is_empty(),
            "until it goes stale"
        );
    }

    #[test]
    fn originators_take_turns_and_an_executed_effect_is_not_asked_again() {
        let mut ps: Vec<Policy> = (0..4).map(policy).collect();
        let mut first_asks = Vec::new();
        for (i, p) in ps.iter_mut().enumerate() {
            p.assert(1, SignalKind::AbnormalOutflow, m(3), None, T0);
            let out = p.assert(2, SignalKind::AbnormalOutflow, m(3), None, T0);
            if !requests(&out).is_empty() {
                first_asks.push(i);
            }
        }
        assert_eq!(first_asks.len(), 1, "exactly one node asks at once");
        let second = (0..4)
            .find(|&i| requests(&ps[i].tick(T0 + 1000)).len() == 3)
            .expect("rank 1 asks after one delay");
        assert_ne!(second, first_asks[0]);

        // Executed on chain 1: the remaining nodes only ask for chains 2 and 3.
        let third = (0..4)
            .find(|&i| i != first_asks[0] && i != second)
            .expect("another node");
        ps[third].vault_fact(
            1,
            VaultFact::Frozen(m(3)),
            B256::repeat_byte(0xee),
            T0 + 1500,
        );
        let later: Vec<(u64, Effect)> = (1..4)
            .flat_map(|k| requests(&ps[third].tick(T0 + k * 1000)))
            .collect();
        assert!(!later.is_empty());
        assert!(later.iter().all(|(c, _)| *c != 1), "{later:?}");
    }

    #[test]
    fn a_request_seen_from_another_node_defers_this_nodes_turn() {
        let mut ps: Vec<Policy> = (0..4).map(policy).collect();
        let mut first = None;
        for (i, p) in ps.iter_mut().enumerate() {
            p.assert(1, SignalKind::AbnormalOutflow, m(3), None, T0);
            let out = p.assert(2, SignalKind::AbnormalOutflow, m(3), None, T0);
            if !requests(&out).is_empty() {
                first = Some(i);
            }
        }
        let first = first.expect("one node asks at once");
        // Every other node saw the first node's request on every chain, at T0 + 100.
        for (i, p) in ps.iter_mut().enumerate() {
            if i != first {
                for chain in 1..=3 {
                    p.requested_elsewhere(chain, Effect::Freeze(m(3)), T0 + 100);
                }
            }
        }
        // Without it, rank 1 would ask at T0 + 1000 (one delay); now nobody asks again
        // before a patience (3 rotations of 4 delays) has passed with the effect still
        // pending: the first node at T0 + 12000, the others not before T0 + 12100.
        for k in 1..=12 {
            let asked: Vec<usize> = (0..4)
                .filter(|&i| !requests(&ps[i].tick(T0 + k * 1000)).is_empty())
                .collect();
            let expected = if k == 12 { vec![first] } else { vec![] };
            assert_eq!(asked, expected, "asked at T0 + {k} s");
        }
        let asked = (0..4)
            .filter(|&i| !requests(&ps[i].tick(T0 + 12_100)).is_empty())
            .count();
        assert!(asked >= 1, "still pending after a patience: asked again");
        // A node whose breaker trips after it saw the request waits a rotation from then.
        let mut late = policy(first);
        late.requested_elsewhere(1, Effect::Freeze(m(3)), T0);
        late.assert(1, SignalKind::AbnormalOutflow, m(3), None, T0 + 500);
        let out = late.assert(2, SignalKind::AbnormalOutflow, m(3), None, T0 + 500);
        let chains: Vec<u64> = requests(&out).iter().map(|(c, _)| *c).collect();
        assert_eq!(chains, vec![2, 3], "chain 1 was asked for elsewhere");
        // An alert request of a lower level does not defer a higher one.
        let mut p = policy(0);
        p.requested_elsewhere(
            1,
            Effect::Alert {
                subject: m(3),
                level: 1,
            },
            T0,
        );
        assert!(
            !Effect::Alert {
                subject: m(3),
                level: 1
            }
            .covers(&Effect::Alert {
                subject: m(3),
                level: 3
            })
        );
    }

    #[test]
    fn a_lift_ends_the_breaker_and_spends_the_assertions_behind_it() {
        let mut p = policy(0);
        p.assert(0, SignalKind::AbnormalOutflow, m(3), None, T0);
        p.assert(1, SignalKind::AbnormalOutflow, m(3), None, T0);
        let seen = [(SignalKind::AbnormalOutflow, m(3))].into();
        assert!(
            p.held(&seen).contains_key(&m(3)),
            "own detector still sees it"
        );
        assert!(
            p.held(&BTreeSet::new()).is_empty(),
            "no longer seen: lift signed"
        );
        let out = p.vault_fact(2, VaultFact::Unfrozen(m(3)), B256::ZERO, T0 + 10);
        assert!(
            out.iter()
                .any(|o| matches!(o, Output::Notice(t) if t.contains("lifted")))
        );
        assert_eq!(p.active().count(), 0);
        assert_eq!(p.history().len(), 1);
        assert!(
            p.blocked_members(T0 + 20).is_empty(),
            "own assertion spent too"
        );

        p.tick(T0 + 20);
        assert_eq!(p.active().count(), 0, "old assertions do not trip it again");
        p.assert(1, SignalKind::AbnormalOutflow, m(3), None, T0 + 30);
        assert_eq!(p.active().count(), 0);
        p.assert(2, SignalKind::AbnormalOutflow, m(3), None, T0 + 40);
        assert_eq!(p.active().count(), 1, "fresh assertions do");
    }

    #[test]
    fn breakers_expire_when_their_trigger_stops_holding() {
        let mut p = policy(0);
        p.assert(1, SignalKind::Depeg, chain_subject(2), None, T0);
        p.assert(2, SignalKind::Depeg, chain_subject(2), None, T0);
        assert_eq!(p.quarantined(), [2].into());
        p.tick(T0 + WINDOW + 1);
        assert_eq!(p.active().count(), 1, "latched after its signal lapsed");
        p.tick(T0 + 10 * WINDOW + 1);
        assert_eq!(p.active().count(), 0);
        assert!(p.quarantined().is_empty());
    }

    #[test]
    fn contagion_needs_two_members_of_one_chain_within_the_window() {
        let mut p = policy(0);
        p.trouble(m(1), T0);
        p.trouble(m(3), T0 + 1000);
        assert_eq!(p.active().count(), 0, "members of different chains");
        p.trouble(m(2), T0 + WINDOW + 1);
        assert_eq!(p.active().count(), 0, "member 1's trouble left the window");
        p.trouble(m(1), T0 + WINDOW + 2);
        let b: Vec<&Breaker> = p.active().collect();
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].id.kind, BreakerKind::Contagion);
        assert_eq!(p.quarantined(), [1].into());
        let level3 = Effect::Alert {
            subject: chain_subject(1),
            level: ALERT_CONTAGION,
        };
        assert_eq!(b[0].effects.len(), 3, "alert on every vault");
        assert!(p.wants(2, &level3));
        assert!(p.wants(
            2,
            &Effect::Alert {
                subject: chain_subject(1),
                level: 1
            }
        ));

        p.vault_fact(
            3,
            VaultFact::AlertCleared(chain_subject(1)),
            B256::ZERO,
            T0 + WINDOW + 3,
        );
        assert_eq!(p.active().count(), 0);
        p.tick(T0 + WINDOW + 4);
        assert_eq!(p.active().count(), 0, "troubles before the lift are spent");
        // The members whose gaps the lift lets the consortium cover stay in trouble until
        // covered: they do not trip it again.
        p.trouble(m(1), T0 + WINDOW + 5);
        p.trouble(m(2), T0 + WINDOW + 6);
        assert_eq!(
            p.active().count(),
            0,
            "members in trouble at the lift are excused"
        );
        // Once their trouble lapsed, fresh trouble counts again.
        let later = T0 + 3 * WINDOW;
        p.trouble(m(1), later);
        p.trouble(m(2), later + 1);
        assert_eq!(
            p.active().count(),
            1,
            "fresh trouble after the lapse trips it"
        );
    }

    #[test]
    fn a_halted_chain_is_quarantined_and_alerted_on_the_others_only() {
        let mut p = policy(0);
        p.set_halted(3, true);
        p.assert(1, SignalKind::ChainHalt, chain_subject(3), None, T0);
        p.assert(2, SignalKind::ChainHalt, chain_subject(3), None, T0);
        let b: Vec<&Breaker> = p.active().collect();
        assert_eq!(b.len(), 1);
        assert_eq!(p.quarantined(), [3].into());
        let chains: Vec<u64> = b[0].effects.keys().map(|(c, _)| *c).collect();
        assert_eq!(chains, [1, 2]);
    }

    #[test]
    fn unknown_subjects_and_nodes_trip_nothing() {
        let mut p = policy(0);
        for node in [1, 2] {
            p.assert(node, SignalKind::AbnormalOutflow, m(7), None, T0);
            p.assert(node, SignalKind::ChainHalt, chain_subject(99), None, T0);
        }
        p.assert(9, SignalKind::Operator, m(1), None, T0);
        p.assert(1, SignalKind::Operator, m(1), None, T0);
        assert_eq!(p.active().count(), 0);
    }

    #[test]
    fn a_flooding_node_only_evicts_its_own_signals() {
        let mut p = policy(0);
        // An honest node's first assertion, waiting for a second one.
        p.assert(2, SignalKind::AbnormalOutflow, m(3), None, T0);
        for i in 0..(MAX_SIGNALS as u64 + 10) {
            let subject = B256::from(U256::from(i + 1000));
            p.assert(1, SignalKind::Operator, subject, None, T0 + i);
        }
        assert_eq!(p.signals().count(), MAX_SOLO_SIGNALS + 1);
        p.assert(3, SignalKind::AbnormalOutflow, m(3), None, T0 + 2000);
        assert_eq!(
            p.active().count(),
            1,
            "the honest signal survived and confirmed"
        );
    }
}
