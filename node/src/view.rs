//! The node's own view of chain state, as the agreement core sees it ([`StateView`]).
//!
//! The chain adapters read one [`ChainSnapshot`] per confirmed block (vault state, member
//! records, member solvency, block timestamp) and hand it to [`NodeView::insert`]; a
//! proposer pins the latest snapshot of every usable chain, and an attester recomputes the
//! draw from the snapshots of exactly the blocks a proposal pinned. Everything here is
//! synchronous and pure over the snapshots, so the same inputs give the same draw bytes on
//! every node.
//!
//! Invariants:
//! - a draw is computed only from snapshots of confirmed blocks this node read itself
//!   (keyed by chain, number and hash; a snapshot of a block that a reorg dropped is removed);
//! - the member's home chain must be pinned, its record there must be the member's, with
//!   `nextSeq == seq`, not frozen, on an unpaused vault, with a gap above the dust bound;
//! - pinned blocks older than `max_pin_age_s` (by block timestamp against the node's clock)
//!   are refused, so a proposer cannot price a draw from a stale gap;
//! - a draw for `seq > 0` is computed only from a home block at least `settle_s` (by block
//!   timestamp) after the first canonical block in which this node saw `nextSeq == seq`,
//!   that is after draw `seq - 1` was registered: the member's `solvency()` books a payout
//!   some time after the vault made it, and a gap read in between would pay the same loss
//!   twice. That first sighting is never earlier than the registration (a reorg on the
//!   chain resets it), so the rule is safe whatever the node's lag;
//! - a draw for `seq > 0` is priced only when the member's books at the pinned home block
//!   declare draw `seq - 1` booked (`bookedDraws()`, the booking rule of
//!   [`backstop_agreement::booking`]), and then from the gap they show; a node that has not
//!   closed draw `seq - 1` (a leg may still be paid) refuses;
//! - no draw exceeds the member's coverage window left on its home vault, and no leg what
//!   is left of it on the paying vault (`coverageAvailable` at the pinned blocks);
//! - a remote vault that is quarantined, paused, halted, or where the member is unknown or
//!   frozen gets no leg;
//! - memory is bounded: at most `keep` snapshots per chain.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use alloy::primitives::{Address, B256, I256, U256};
use backstop_agreement::Refusal;
use backstop_agreement::booking::{self, Payout};
use backstop_agreement::machine::{StateView, ViewError};
use backstop_agreement::state::IncidentRecord;
use backstop_agreement::{IncidentKey, PinnedBlock, ThresholdAction};
use backstop_chain::allocation::{Allocation, AllocationInput, VaultCapacity, allocate};
use backstop_chain::reads::{MemberRecord, RiskView, Solvency, VaultState};
use backstop_contracts::eip712::{Draw, VaultId};

use backstop_types::Effect;

/// Clock skew allowed between nodes on a threshold action's deadline (s).
pub const ACTION_CLOCK_SLACK_S: u64 = 300;

/// A member as one vault knows it at one block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberAt {
    /// The vault's record of the member.
    pub record: MemberRecord,
    /// `solvency()` at the block (members homed on this chain only).
    pub solvency: Option<Solvency>,
    /// `riskExposures()` at the block (members homed on this chain only; `None` when not
    /// read, or its read failed: the stress test then projects from history).
    pub risk: Option<RiskView>,
}

/// Everything the node decides on about one chain, read at one confirmed block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainSnapshot {
    /// The block.
    pub block: PinnedBlock,
    /// Its timestamp (seconds).
    pub timestamp: u64,
    /// The vault at the block.
    pub vault: VaultState,
    /// Configured members the vault knows at the block. The map, and each member's entry,
    /// are shared between consecutive snapshots of a chain while they do not change (see
    /// [`NodeView::insert`]).
    pub members: Arc<BTreeMap<B256, Arc<MemberAt>>>,
    /// The chain's configured oracles at the block; `None` where the read failed.
    pub oracles: BTreeMap<Address, Option<OracleRead>>,
}

/// Prices are compared at 18 decimals.
pub const SCALE_DECIMALS: u8 = 18;

/// An oracle's answer at a block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OracleRead {
    /// Answer, in the feed's decimals.
    pub answer: I256,
    /// Last update (unix seconds).
    pub updated_at: u64,
    /// The feed's decimals.
    pub decimals: u8,
}

impl OracleRead {
    /// The answer at 18 decimals; `None` when zero, negative or absurd.
    pub fn price(&self) -> Option<U256> {
        if self.answer <= I256::ZERO || self.decimals > 36 {
            return None;
        }
        let a = self.answer.into_raw();
        if self.decimals <= SCALE_DECIMALS {
            a.checked_mul(U256::from(10).pow(U256::from(SCALE_DECIMALS - self.decimals)))
        } else {
            Some(a / U256::from(10).pow(U256::from(self.decimals - SCALE_DECIMALS)))
        }
    }
}

/// What the breakers decide, as the view applies it (set by the core after each change).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BreakerState {
    /// Members whose draws this node refuses to attest, and why.
    pub blocked: BTreeMap<B256, String>,
    /// Chains allocations skip by policy.
    pub quarantined: BTreeSet<u64>,
    /// Emergency effects this node signs on request, by chain (those of its tripped
    /// breakers not executed yet).
    pub wanted: BTreeSet<(u64, Effect)>,
    /// Subjects (members, alert subjects) whose lift this node refuses, and why.
    pub held: BTreeMap<B256, String>,
}

/// A configured member, as the view needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemberPolicy {
    /// Home chain.
    pub home_chain_id: u64,
    /// Local per-incident cap, on top of the vault's.
    pub local_cap: Option<U256>,
}

/// Static parameters of the view.
#[derive(Clone, Debug)]
pub struct ViewConfig {
    /// Configured chains and their vaults.
    pub vaults: BTreeMap<u64, Address>,
    /// Configured members.
    pub members: BTreeMap<B256, MemberPolicy>,
    /// Gaps at or below this are no gap.
    pub dust: U256,
    /// Registration deadline after the home pinned block (s).
    pub draw_ttl_s: u64,
    /// Leg release deadline after the home pinned block (s).
    pub leg_ttl_s: u64,
    /// Oldest pinned block accepted, by age of its timestamp (s).
    pub max_pin_age_s: u64,
    /// A member's next draw prices a home block at least this long (s, block time) after
    /// its previous draw was registered.
    pub settle_s: u64,
    /// Snapshots kept per chain.
    pub keep: usize,
    /// Lifetime of the threshold actions nodes ask for (s): the furthest deadline this node
    /// signs is this from now, plus [`ACTION_CLOCK_SLACK_S`].
    pub action_ttl_s: u64,
}

/// The computed draw with what it leaves uncovered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Computed {
    /// The draw to sign.
    pub draw: Draw,
    /// The allocation behind it.
    pub allocation: Allocation,
}

/// Most threshold actions approved at once (they live until their deadline).
pub const MAX_APPROVALS: usize = 4096;

/// The node's view: snapshots, quarantines and approvals.
#[derive(Debug)]
pub struct NodeView {
    cfg: ViewConfig,
    snapshots: BTreeMap<u64, BTreeMap<(u64, B256), Arc<ChainSnapshot>>>,
    latest: BTreeMap<u64, PinnedBlock>,
    /// Per (home chain, member): its `nextSeq` in the newest canonical snapshot, and the
    /// timestamp of the first canonical snapshot that showed that value.
    seq_since: BTreeMap<(u64, B256), (u64, u64)>,
    /// Per configured member: what its newest covered incident paid (the booking rule).
    payouts: BTreeMap<B256, Payout>,
    quarantined: BTreeSet<u64>,
    breakers: BreakerState,
    approvals: BTreeMap<(VaultId, B256), ThresholdAction>,
}

impl NodeView {
    /// An empty view.
    pub fn new(cfg: ViewConfig) -> Self {
        Self {
            cfg,
            snapshots: BTreeMap::new(),
            latest: BTreeMap::new(),
            seq_since: BTreeMap::new(),
            payouts: BTreeMap::new(),
            quarantined: BTreeSet::new(),
            breakers: BreakerState::default(),
            approvals: BTreeMap::new(),
        }
    }

    /// The view's parameters.
    pub fn config(&self) -> &ViewConfig {
        &self.cfg
    }

    /// Adds the snapshot of a confirmed block. `canonical` marks the chain's newest
    /// confirmed block (what a proposer pins); snapshots fetched for a proposal are not.
    pub fn insert(&mut self, mut snap: ChainSnapshot, canonical: bool) {
        let chain = snap.block.chain_id;
        if !self.cfg.vaults.contains_key(&chain) {
            return;
        }
        // Members rarely change from one block to the next: keep one copy of the map while
        // none does, and one copy of each member's entry while it does not, so `keep`
        // snapshots of many members cost little more than one.
        if let Some(prev) = self.latest(chain) {
            if prev.members == snap.members {
                snap.members = Arc::clone(&prev.members);
            } else {
                let shared = snap
                    .members
                    .iter()
                    .map(|(id, m)| match prev.members.get(id) {
                        Some(p) if p == m => (*id, Arc::clone(p)),
                        _ => (*id, Arc::clone(m)),
                    })
                    .collect();
                snap.members = Arc::new(shared);
            }
        }
        let block = snap.block;
        if canonical
            && self
                .latest
                .get(&chain)
                .is_none_or(|l| l.number <= block.number)
        {
            self.latest.insert(chain, block);
            self.note_seqs(&snap);
        }
        let per_chain = self.snapshots.entry(chain).or_default();
        per_chain.insert((block.number, block.hash), Arc::new(snap));
        while per_chain.len() > self.cfg.keep.max(1) {
            per_chain.pop_first();
        }
    }

    /// Records when this node first saw each home member's current `nextSeq`.
    fn note_seqs(&mut self, snap: &ChainSnapshot) {
        let chain = snap.block.chain_id;
        for (id, m) in snap.members.iter() {
            if self
                .cfg
                .members
                .get(id)
                .is_none_or(|p| p.home_chain_id != chain)
            {
                continue;
            }
            let seen = self
                .seq_since
                .entry((chain, *id))
                .or_insert((m.record.next_seq, snap.timestamp));
            if seen.0 != m.record.next_seq {
                *seen = (m.record.next_seq, snap.timestamp);
            }
        }
    }

    /// What the member's newest covered incident paid, as the booking rule sees it.
    pub fn payout(&self, member: &B256) -> Option<&Payout> {
        self.payouts.get(member)
    }

    /// The member's newest covered payout and its books at its newest canonical home block:
    /// `None` without a payout, a home snapshot or a solvency read.
    pub fn booking(&self, member: &B256) -> Option<(Payout, Solvency)> {
        let payout = *self.payouts.get(member)?;
        let home = self.cfg.members.get(member)?.home_chain_id;
        let books = self.latest(home)?.members.get(member)?.solvency?;
        Some((payout, books))
    }

    /// Whether the snapshot of `block` is known.
    pub fn has(&self, block: &PinnedBlock) -> bool {
        self.get(block).is_some()
    }

    fn get(&self, block: &PinnedBlock) -> Option<&Arc<ChainSnapshot>> {
        self.snapshots
            .get(&block.chain_id)?
            .get(&(block.number, block.hash))
    }

    /// The newest canonical snapshot of a chain.
    pub fn latest(&self, chain_id: u64) -> Option<&Arc<ChainSnapshot>> {
        self.get(self.latest.get(&chain_id)?)
    }

    /// Forgets blocks a reorg dropped.
    pub fn drop_blocks(&mut self, chain_id: u64, dropped: &[(u64, B256)]) {
        if !dropped.is_empty() {
            // A registration may have moved to a later block: sight the seqs afresh.
            self.seq_since.retain(|(c, _), _| *c != chain_id);
        }
        if let Some(per_chain) = self.snapshots.get_mut(&chain_id) {
            for k in dropped {
                per_chain.remove(k);
            }
        }
        if let Some(l) = self.latest.get(&chain_id)
            && dropped.contains(&(l.number, l.hash))
        {
            self.latest.remove(&chain_id);
        }
    }

    /// Applies the breakers' decisions.
    pub fn set_breakers(&mut self, state: BreakerState) {
        self.breakers = state;
    }

    /// The breakers' decisions in force.
    pub fn breakers(&self) -> &BreakerState {
        &self.breakers
    }

    fn is_quarantined(&self, chain_id: &u64) -> bool {
        self.quarantined.contains(chain_id) || self.breakers.quarantined.contains(chain_id)
    }

    /// Marks a chain quarantined because it halted, or healthy again.
    pub fn set_quarantined(&mut self, chain_id: u64, quarantined: bool) {
        if quarantined {
            self.quarantined.insert(chain_id);
        } else {
            self.quarantined.remove(&chain_id);
        }
    }

    /// The quarantined chains: halted, or by policy.
    pub fn quarantined(&self) -> BTreeSet<u64> {
        self.quarantined
            .union(&self.breakers.quarantined)
            .copied()
            .collect()
    }

    /// Approves a threshold action this node was asked for (operator or policy) at
    /// `now_ms`; approvals past their deadline are dropped, and at most [`MAX_APPROVALS`]
    /// are kept (the nearest deadlines go first).
    pub fn approve(&mut self, vault: VaultId, action: ThresholdAction, now_ms: u64) {
        let now_s = now_ms / 1000;
        self.approvals.retain(|_, a| a.deadline() >= now_s);
        while self.approvals.len() >= MAX_APPROVALS {
            let nearest = self
                .approvals
                .iter()
                .min_by_key(|(_, a)| a.deadline())
                .map(|(k, _)| *k);
            match nearest {
                Some(k) => self.approvals.remove(&k),
                None => break,
            };
        }
        self.approvals.insert((vault, action.id()), action);
    }

    /// Computes the draw for `key` from the snapshots of `pinned` at time `now_ms`.
    pub fn compute(
        &self,
        key: &IncidentKey,
        pinned: &[PinnedBlock],
        now_ms: u64,
    ) -> Result<Computed, ViewError> {
        let policy = self
            .cfg
            .members
            .get(&key.member)
            .ok_or(ViewError::Refused(Refusal::UnknownMember(key.member)))?;
        if pinned.windows(2).any(|w| w[0].chain_id >= w[1].chain_id) {
            return Err(Refusal::PinnedOrder.into());
        }
        let mut snaps = Vec::with_capacity(pinned.len());
        for p in pinned {
            if !self.cfg.vaults.contains_key(&p.chain_id) {
                return Err(Refusal::ChainNotConfigured(p.chain_id).into());
            }
            let s = self.get(p).ok_or_else(|| {
                ViewError::UnknownBlock(format!(
                    "chain {} block {} {}",
                    p.chain_id, p.number, p.hash
                ))
            })?;
            if s.timestamp.saturating_add(self.cfg.max_pin_age_s) < now_ms / 1000 {
                return Err(Refusal::PinnedTooOld {
                    chain_id: p.chain_id,
                    number: p.number,
                    max_age_s: self.cfg.max_pin_age_s,
                }
                .into());
            }
            snaps.push(s);
        }
        let home = snaps
            .iter()
            .find(|s| s.block.chain_id == policy.home_chain_id)
            .ok_or(ViewError::Refused(Refusal::HomeNotPinned))?;
        if self.is_quarantined(&policy.home_chain_id) {
            return Err(Refusal::HomeQuarantined.into());
        }
        if let Some(why) = self.breakers.blocked.get(&key.member) {
            return Err(Refusal::MemberBlocked(why.clone()).into());
        }
        if home.vault.paused {
            return Err(Refusal::HomePaused.into());
        }
        let m = home
            .members
            .get(&key.member)
            .ok_or(ViewError::Refused(Refusal::UnknownToHomeVault))?;
        if m.record.home_chain_id != policy.home_chain_id {
            return Err(Refusal::UnknownToHomeVault.into());
        }
        if m.record.frozen {
            return Err(Refusal::MemberFrozen.into());
        }
        if m.record.next_seq != key.seq {
            return Err(Refusal::SeqMismatch {
                seq: key.seq,
                next_seq: m.record.next_seq,
            }
            .into());
        }
        if key.seq > 0 {
            let since = self
                .seq_since
                .get(&(policy.home_chain_id, key.member))
                .filter(|(seq, _)| *seq == key.seq)
                .map(|(_, t)| *t);
            if since.is_none_or(|t| t.saturating_add(self.cfg.settle_s) > home.timestamp) {
                return Err(Refusal::NotSettled {
                    previous: key.seq - 1,
                    settle_s: self.cfg.settle_s,
                }
                .into());
            }
        }
        let solvency = m
            .solvency
            .ok_or_else(|| ViewError::Unavailable("no solvency read at the pinned block".into()))?;
        let gap = solvency.liabilities.saturating_sub(solvency.assets);
        if gap <= self.cfg.dust {
            return Err(Refusal::NoGap.into());
        }
        if key.seq > 0
            && self
                .payouts
                .get(&key.member)
                .is_none_or(|p| p.seq + 1 != key.seq)
        {
            return Err(Refusal::PreviousOpen(key.seq - 1).into());
        }
        booking::check(key.seq, solvency.booked_draws).map_err(Refusal::from)?;
        if m.record.coverage_available.is_zero() {
            return Err(Refusal::WindowExhausted.into());
        }
        // The home vault counts the whole draw against the member's coverage window.
        let mut cap = U256::from(m.record.cap).min(m.record.coverage_available);
        if let Some(local) = policy.local_cap {
            cap = cap.min(local);
        }
        let vaults = snaps
            .iter()
            .map(|s| {
                let chain_id = s.block.chain_id;
                let remote_member = s.members.get(&key.member);
                let usable = !self.is_quarantined(&chain_id)
                    && (chain_id == policy.home_chain_id
                        || (!s.vault.paused && remote_member.is_some_and(|r| !r.record.frozen)));
                // A remote vault counts its leg against the member's window there.
                let window = remote_member.map_or(U256::ZERO, |r| r.record.coverage_available);
                VaultCapacity {
                    chain_id,
                    vault: s.vault.vault,
                    available: s.vault.available_for_payout.min(window),
                    quarantined: !usable,
                }
            })
            .collect();
        let input = AllocationInput {
            gap,
            deductible: m.record.deductible,
            cap: cap.min(U256::from(u128::MAX)).to::<u128>(),
            home_chain_id: policy.home_chain_id,
            vaults,
        };
        let allocation = allocate(&input).map_err(|e| Refusal::NothingCoverable(e.to_string()))?;
        if allocation.covered.is_zero() {
            return Err(Refusal::NothingCoverable("no capacity within the caps".into()).into());
        }
        let draw = allocation.to_draw(
            key.member,
            key.seq,
            gap,
            home.timestamp.saturating_add(self.cfg.draw_ttl_s),
            home.timestamp.saturating_add(self.cfg.leg_ttl_s),
        );
        Ok(Computed { draw, allocation })
    }

    /// The blocks a proposer pins now: the newest snapshot of every configured chain that
    /// is not quarantined, ascending chain id.
    pub fn pins(&self) -> Vec<PinnedBlock> {
        self.cfg
            .vaults
            .keys()
            .filter(|c| !self.is_quarantined(c))
            .filter_map(|c| self.latest.get(c).copied())
            .collect()
    }
}

impl StateView for NodeView {
    fn home_vault(&self, member: &B256) -> Option<VaultId> {
        let chain_id = self.cfg.members.get(member)?.home_chain_id;
        Some(VaultId {
            chain_id,
            address: *self.cfg.vaults.get(&chain_id)?,
        })
    }

    fn propose(
        &mut self,
        key: &IncidentKey,
        now_ms: u64,
    ) -> Result<(Vec<PinnedBlock>, Draw), ViewError> {
        let pinned = self.pins();
        let c = self.compute(key, &pinned, now_ms)?;
        Ok((pinned, c.draw))
    }

    fn recompute(
        &mut self,
        key: &IncidentKey,
        pinned: &[PinnedBlock],
        now_ms: u64,
    ) -> Result<Draw, ViewError> {
        Ok(self.compute(key, pinned, now_ms)?.draw)
    }

    fn covered(&mut self, rec: &IncidentRecord, closed_ms: u64) {
        let member = rec.key.member;
        if !self.cfg.members.contains_key(&member) {
            return;
        }
        let previous = self.payouts.get(&member);
        if previous.is_some_and(|p| p.seq >= rec.key.seq) {
            return;
        }
        let Some(p) = Payout::of_record(rec, closed_ms) else {
            return;
        };
        self.payouts.insert(member, p);
    }

    fn approve_action(
        &mut self,
        vault: &VaultId,
        action: &ThresholdAction,
        now_ms: u64,
    ) -> Result<(), ViewError> {
        if self.approvals.get(&(*vault, action.id())) == Some(action) {
            return Ok(());
        }
        // No node sets a deadline further than the consortium's action lifetime (plus the
        // clock skew between nodes): a further one is a peer's attempt to keep this node
        // tracking (and rebroadcasting) an action for longer.
        let bound = self.cfg.action_ttl_s.saturating_add(ACTION_CLOCK_SLACK_S);
        if action.deadline() > (now_ms / 1000).saturating_add(bound) {
            return Err(Refusal::DeadlineTooFar.into());
        }
        let wanted = |effect: Effect| {
            self.breakers
                .wanted
                .iter()
                .any(|(c, e)| *c == vault.chain_id && e.covers(&effect))
        };
        let lift_of = |subject: &B256| match self.breakers.held.get(subject) {
            Some(why) => Err(Refusal::LiftRefused(why.clone()).into()),
            None => Ok(()),
        };
        match action {
            // Freezes and alerts need this node's own tripped breaker; pauses, its
            // operator's own request (approved above).
            ThresholdAction::Freeze(a) if wanted(Effect::Freeze(a.member)) => Ok(()),
            ThresholdAction::RaiseAlert(a)
                if wanted(Effect::Alert {
                    subject: a.subject,
                    level: a.level,
                }) =>
            {
                Ok(())
            }
            ThresholdAction::Freeze(_)
            | ThresholdAction::RaiseAlert(_)
            | ThresholdAction::Pause(_) => Err(Refusal::NotWanted.into()),
            // A lift requested by another node's operator: approved unless this node's own
            // detectors still assert the condition behind it.
            ThresholdAction::Unfreeze(a) => lift_of(&a.member),
            ThresholdAction::ClearAlert(a) => lift_of(&a.subject),
            ThresholdAction::Unpause(_) => Ok(()),
            // Governance changes: only this node's operator's approval (checked above).
            ThresholdAction::SetMember(_)
            | ThresholdAction::SetLimits(_)
            | ThresholdAction::RotateGuardians(_) => Err(Refusal::NotApproved.into()),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
pub(crate) mod tests {
    use super::*;
    use backstop_contracts::bindings::IBackstopVault::Limits;

    pub(crate) const HOME: u64 = 1;
    const NOW_S: u64 = 1_000_000;

    pub(crate) fn member() -> B256 {
        B256::repeat_byte(7)
    }

    fn vault_addr(chain: u64) -> Address {
        Address::with_last_byte(chain as u8 + 0x10)
    }

    fn cfg() -> ViewConfig {
        ViewConfig {
            vaults: (1..=3).map(|c| (c, vault_addr(c))).collect(),
            members: [(
                member(),
                MemberPolicy {
                    home_chain_id: HOME,
                    local_cap: None,
                },
            )]
            .into(),
            dust: U256::from(10),
            draw_ttl_s: 600,
            leg_ttl_s: 3600,
            max_pin_age_s: 120,
            settle_s: 0,
            keep: 4,
            action_ttl_s: 3_600,
        }
    }

    /// The test member's entry in `s`, unshared first if other snapshots hold the map.
    pub(crate) fn member_mut(s: &mut ChainSnapshot) -> &mut MemberAt {
        Arc::make_mut(Arc::make_mut(&mut s.members).get_mut(&member()).unwrap())
    }

    pub(crate) fn snap(chain: u64, number: u64, available: u64, gap: u64) -> ChainSnapshot {
        let block = PinnedBlock {
            chain_id: chain,
            number,
            hash: B256::with_last_byte(number as u8 ^ (chain as u8) << 4),
        };
        let record = MemberRecord {
            recipient: Address::with_last_byte(0x99),
            home_chain_id: HOME,
            frozen_until: 0,
            frozen: false,
            next_seq: 5,
            cap: 1_000_000,
            deductible: 100,
            coverage_limit: 10_000_000,
            coverage_window: 86_400,
            coverage_available: U256::from(10_000_000),
        };
        // The member declares every draw before `next_seq` booked.
        let solvency = (chain == HOME).then(|| Solvency {
            assets: U256::from(1_000),
            liabilities: U256::from(1_000 + gap),
            booked_draws: Some(5),
        });
        ChainSnapshot {
            block,
            timestamp: NOW_S - 10,
            oracles: BTreeMap::new(),
            vault: VaultState {
                block,
                vault: vault_addr(chain),
                token: Address::with_last_byte(0x55),
                balance: U256::from(available),
                limits: Limits::default(),
                bucket_available: U256::from(available),
                available_for_payout: U256::from(available),
                paused: false,
                paused_until: 0,
                guardians: vec![],
                threshold: 3,
                pause_threshold: 2,
                guardian_set_index: 0,
            },
            members: Arc::new(
                [(
                    member(),
                    Arc::new(MemberAt {
                        record,
                        solvency,
                        risk: None,
                    }),
                )]
                .into(),
            ),
        }
    }

    fn key() -> IncidentKey {
        key_of(5)
    }

    fn key_of(seq: u64) -> IncidentKey {
        IncidentKey {
            member: member(),
            seq,
        }
    }

    /// Records that the member's draw `seq` (priced from `gap`) closed covered with `paid`
    /// paid at its home vault.
    pub(crate) fn covered(v: &mut NodeView, seq: u64, gap: u64, paid: u64) {
        use backstop_agreement::state::{CloseReason, Registration};
        use backstop_contracts::bindings::IBackstopVault::Leg;
        let home = VaultId {
            chain_id: HOME,
            address: vault_addr(HOME),
        };
        let legs = vec![Leg {
            chainId: HOME,
            vault: home.address,
            amount: U256::from(paid),
        }];
        let rec = IncidentRecord {
            key: IncidentKey {
                member: member(),
                seq,
            },
            home,
            opened_at: 0,
            attempt: 0,
            attempt_started: 0,
            registration: Some(Registration {
                draw_hash: B256::with_last_byte(seq as u8),
                draw: Draw {
                    member: member(),
                    seq,
                    gap: U256::from(gap),
                    amount: U256::from(paid),
                    legs,
                    deadline: 0,
                    legDeadline: 0,
                },
                finalized: true,
                block: 1,
                rewound: false,
            }),
            legs_done: BTreeMap::new(),
            closed: Some(CloseReason::Covered),
        };
        v.covered(&rec, 0);
    }

    pub(crate) fn view_with(snaps: Vec<ChainSnapshot>) -> NodeView {
        let mut v = NodeView::new(cfg());
        // Draw 4 paid nothing: the books need not show anything for draw 5.
        covered(&mut v, 4, 1_000_000, 0);
        for s in snaps {
            v.insert(s, true);
        }
        v
    }

    #[test]
    fn the_next_draw_needs_the_books_to_declare_the_payout() {
        let mut v = NodeView::new(cfg());
        // Draw 4 was priced from a gap of 1,100 and paid 800.
        covered(&mut v, 4, 1_100, 800);
        let now = NOW_S * 1000;
        let draw_at = |v: &mut NodeView, number: u64, gap: u64, declared: Option<u64>| {
            let mut s = snap(HOME, number, 10_000, gap);
            member_mut(&mut s).solvency.as_mut().unwrap().booked_draws = declared;
            v.insert(s, true);
            v.propose(&key(), now)
        };
        let refused = |r: Result<(Vec<PinnedBlock>, Draw), ViewError>, want: &str| match r {
            Err(ViewError::Refused(why)) => assert!(why.to_string().contains(want), "{why}"),
            other => panic!("{other:?}"),
        };
        // Draw 4 not declared: refused whatever the gap (unchanged, partly or fully booked).
        for (number, gap) in [(11, 1_100), (12, 300), (13, 1_500)] {
            refused(draw_at(&mut v, number, gap, Some(4)), "not booked");
        }
        refused(draw_at(&mut v, 14, 1_100, None), "no bookedDraws() view");
        // Declared: priced from what the books show, in full (1,100 - 100 deductible), also
        // when the gap is as large as the one draw 4 covered: the declaration says it is new.
        let (_, d) = draw_at(&mut v, 15, 1_100, Some(5)).unwrap();
        assert_eq!((d.gap, d.amount), (U256::from(1_100), U256::from(1_000)));
        // Nothing is remembered: books at a newer block that no longer declare it refuse.
        refused(draw_at(&mut v, 16, 1_100, Some(4)), "not booked");
        // Without the record of draw 4 (not closed here: a leg may still be paid), refused.
        let mut fresh = NodeView::new(cfg());
        refused(draw_at(&mut fresh, 17, 310, Some(5)), "not closed here");
    }

    #[test]
    fn draws_and_legs_stay_within_the_coverage_windows_left() {
        let mut home = snap(HOME, 10, 400, 1_100);
        member_mut(&mut home).record.coverage_available = U256::from(250);
        let mut remote = snap(2, 20, 300, 0);
        member_mut(&mut remote).record.coverage_available = U256::from(50);
        let mut v = view_with(vec![home.clone(), remote.clone()]);
        // Home window 250 bounds the whole draw; it pays 250 itself.
        let (_, d) = v.propose(&key(), NOW_S * 1000).unwrap();
        assert_eq!(d.amount, U256::from(250));
        // Home window 600, home capacity 400: the remote leg is bounded by its window 50.
        member_mut(&mut home).record.coverage_available = U256::from(600);
        let mut v = view_with(vec![home.clone(), remote]);
        let (_, d) = v.propose(&key(), NOW_S * 1000).unwrap();
        let legs: Vec<u64> = d.legs.iter().map(|l| l.amount.to::<u64>()).collect();
        assert_eq!(legs, vec![400, 50]);
        // A window of zero: refused, and said so.
        member_mut(&mut home).record.coverage_available = U256::ZERO;
        let mut v = view_with(vec![home]);
        assert!(matches!(
            v.propose(&key(), NOW_S * 1000),
            Err(ViewError::Refused(Refusal::WindowExhausted))
        ));
    }

    #[test]
    fn proposer_and_attester_agree_on_the_same_bytes() {
        let snaps = vec![
            snap(1, 10, 400, 1_100),
            snap(2, 20, 100, 0),
            snap(3, 30, 300, 0),
        ];
        let mut a = view_with(snaps.clone());
        let mut b = view_with(snaps.into_iter().rev().collect());
        let (pinned, draw) = a.propose(&key(), NOW_S * 1000).unwrap();
        assert_eq!(pinned.len(), 3);
        assert_eq!(b.recompute(&key(), &pinned, NOW_S * 1000).unwrap(), draw);
        // coverable 1000: home 400, then 600 over 100 and 300 capped by capacity.
        assert_eq!(draw.amount, U256::from(800));
        let legs: Vec<u64> = draw.legs.iter().map(|l| l.amount.to::<u64>()).collect();
        assert_eq!(legs, vec![400, 100, 300]);
        assert_eq!(draw.deadline, NOW_S - 10 + 600);
        assert_eq!(draw.legDeadline, NOW_S - 10 + 3600);
    }

    #[test]
    fn next_draw_waits_settle_s_after_the_seq_was_first_seen() {
        let at = |number: u64, ts: u64, next_seq: u64| {
            let mut s = snap(HOME, number, 400, 1_100);
            s.timestamp = ts;
            member_mut(&mut s).record.next_seq = next_seq;
            s
        };
        let t0 = NOW_S - 60;
        let mut v = NodeView::new(ViewConfig {
            settle_s: 3,
            ..cfg()
        });
        covered(&mut v, 4, 1_000_000, 0);
        // Draw 4 registered between blocks 10 and 11: nextSeq 5 is first seen at t0 + 1.
        v.insert(at(10, t0, 4), true);
        v.insert(at(11, t0 + 1, 5), true);
        v.insert(at(12, t0 + 3, 5), true);
        let key = key();
        let early = v.pins();
        assert!(
            matches!(
                v.propose(&key, NOW_S * 1000),
                Err(ViewError::Refused(Refusal::NotSettled { previous: 4, .. }))
            ),
            "a gap read 2 s after the registration is not priced"
        );
        // A snapshot fetched for a proposal (not canonical) moves nothing.
        v.insert(at(9, t0 - 30, 5), false);
        assert!(v.recompute(&key, &early, NOW_S * 1000).is_err());
        v.insert(at(13, t0 + 4, 5), true);
        let (_, draw) = v.propose(&key, NOW_S * 1000).unwrap();
        assert_eq!(draw.seq, 5);
        // The earlier pin stays refused, also for an attester.
        assert!(v.recompute(&key, &early, NOW_S * 1000).is_err());

        // A reorg forgets the sighting: the next canonical block starts the wait again.
        v.drop_blocks(HOME, &[(13, at(13, 0, 5).block.hash)]);
        v.insert(at(14, t0 + 5, 5), true);
        assert!(v.propose(&key, NOW_S * 1000).is_err());
        v.insert(at(15, t0 + 8, 5), true);
        assert!(v.propose(&key, NOW_S * 1000).is_ok());

        // Seq 0 has no earlier draw to wait for.
        let mut fresh = NodeView::new(ViewConfig {
            settle_s: 3,
            ..cfg()
        });
        fresh.insert(at(10, t0, 0), true);
        let first = IncidentKey {
            member: member(),
            seq: 0,
        };
        assert!(fresh.propose(&first, NOW_S * 1000).is_ok());
    }

    #[test]
    fn unknown_stale_or_unordered_pins_are_refused() {
        let snaps = vec![snap(1, 10, 400, 1_100), snap(2, 20, 100, 0)];
        let mut v = view_with(snaps);
        let mut pinned = v.pins();
        let mut other = pinned.clone();
        other[1].hash = B256::repeat_byte(0xee);
        assert!(matches!(
            v.recompute(&key(), &other, NOW_S * 1000),
            Err(ViewError::UnknownBlock(_))
        ));
        assert!(matches!(
            v.recompute(&key(), &pinned, (NOW_S + 500) * 1000),
            Err(ViewError::Refused(Refusal::PinnedTooOld { .. }))
        ));
        pinned.reverse();
        assert!(v.recompute(&key(), &pinned, NOW_S * 1000).is_err());
        // Without the home chain pinned.
        let remote_only = vec![v.pins()[1]];
        assert!(v.recompute(&key(), &remote_only, NOW_S * 1000).is_err());
    }

    #[test]
    fn quarantined_paused_or_frozen_remote_vaults_get_nothing() {
        let mut paused = snap(2, 20, 500, 0);
        paused.vault.paused = true;
        let mut frozen = snap(3, 30, 500, 0);
        member_mut(&mut frozen).record.frozen = true;
        let mut v = view_with(vec![snap(1, 10, 100, 1_100), paused, frozen]);
        let (_, draw) = v.propose(&key(), NOW_S * 1000).unwrap();
        assert_eq!(draw.legs.len(), 1);
        assert_eq!(draw.amount, U256::from(100));

        let mut v = view_with(vec![snap(1, 10, 100, 1_100), snap(2, 20, 500, 0)]);
        v.set_quarantined(2, true);
        assert_eq!(v.pins().len(), 1);
        let all = vec![v.latest(1).unwrap().block, v.latest(2).unwrap().block];
        // A proposer that pinned the quarantined chain gets a different draw from us.
        let ours = v.recompute(&key(), &all, NOW_S * 1000).unwrap();
        assert_eq!(ours.amount, U256::from(100));
    }

    #[test]
    fn home_policy_refuses_frozen_paused_wrong_seq_and_dust() {
        let mut s = snap(1, 10, 400, 1_100);
        member_mut(&mut s).record.frozen = true;
        assert!(view_with(vec![s]).propose(&key(), NOW_S * 1000).is_err());
        let mut s = snap(1, 10, 400, 1_100);
        s.vault.paused = true;
        assert!(view_with(vec![s]).propose(&key(), NOW_S * 1000).is_err());
        let s = snap(1, 10, 400, 1_100);
        let mut v = view_with(vec![s]);
        let wrong = IncidentKey {
            member: member(),
            seq: 6,
        };
        assert!(v.propose(&wrong, NOW_S * 1000).is_err());
        assert!(
            view_with(vec![snap(1, 10, 400, 10)])
                .propose(&key(), NOW_S * 1000)
                .is_err()
        );
    }

    #[test]
    fn reorged_blocks_are_forgotten_and_memory_is_bounded() {
        let mut v = view_with((0..10).map(|n| snap(1, n, 400, 1_100)).collect());
        assert_eq!(v.snapshots[&1].len(), 4);
        // Unchanged members are held once; a change gets its own copy.
        let kept: Vec<_> = v.snapshots[&1]
            .values()
            .map(|s| Arc::clone(&s.members))
            .collect();
        assert!(kept.windows(2).all(|w| Arc::ptr_eq(&w[0], &w[1])));
        // A second member that does not change keeps its entry when the first one changes.
        let other = B256::repeat_byte(0x77);
        let fixed = snap(1, 0, 400, 1_100).members[&member()].clone();
        let with_other = |number, gap| {
            let mut s = snap(1, number, 400, gap);
            // A fresh copy, as every read makes one.
            let entry = Arc::new(MemberAt::clone(&fixed));
            Arc::make_mut(&mut s.members).insert(other, entry);
            s
        };
        v.insert(with_other(10, 1_100), true);
        let before = Arc::clone(&v.latest(1).unwrap().members[&other]);
        v.insert(with_other(11, 2_000), true);
        let newest = v.latest(1).unwrap();
        assert_eq!(
            newest.members[&member()].solvency.unwrap().liabilities,
            U256::from(3_000)
        );
        assert!(!Arc::ptr_eq(&newest.members, &kept[0]));
        assert!(Arc::ptr_eq(&newest.members[&other], &before));
        assert!(!Arc::ptr_eq(
            &newest.members[&member()],
            &kept[0][&member()]
        ));
        let latest = v.latest(1).unwrap().block;
        assert_eq!(latest.number, 11);
        v.drop_blocks(1, &[(latest.number, latest.hash)]);
        assert!(!v.has(&latest));
        assert!(v.latest(1).is_none());
    }

    #[test]
    fn emergencies_need_approval_lifts_need_sane_deadlines() {
        use backstop_contracts::eip712::{FreezeMember, UnfreezeMember};
        let mut v = view_with(vec![]);
        let vault = VaultId {
            chain_id: 1,
            address: vault_addr(1),
        };
        let freeze = ThresholdAction::Freeze(FreezeMember {
            member: member(),
            id: B256::repeat_byte(1),
            deadline: NOW_S + 60,
        });
        assert!(v.approve_action(&vault, &freeze, NOW_S * 1000).is_err());
        v.approve(vault, freeze.clone(), 0);
        assert!(v.approve_action(&vault, &freeze, NOW_S * 1000).is_ok());
        let lift = ThresholdAction::Unfreeze(UnfreezeMember {
            member: member(),
            id: B256::repeat_byte(2),
            deadline: NOW_S + 60,
        });
        assert!(v.approve_action(&vault, &lift, NOW_S * 1000).is_ok());
        let far = ThresholdAction::Unfreeze(UnfreezeMember {
            member: member(),
            id: B256::repeat_byte(3),
            deadline: NOW_S + 10 * 24 * 3600,
        });
        assert!(v.approve_action(&vault, &far, NOW_S * 1000).is_err());
    }

    #[test]
    fn breakers_block_members_quarantine_chains_and_gate_emergencies_and_lifts() {
        use backstop_contracts::eip712::{ClearAlert, FreezeMember, RaiseAlert, UnfreezeMember};
        let snaps = vec![
            snap(1, 10, 5_000, 3_000),
            snap(2, 10, 5_000, 0),
            snap(3, 10, 5_000, 0),
        ];
        let mut v = view_with(snaps);
        let pins = v.pins();
        let now = NOW_S * 1000;
        let full = v.compute(&key(), &pins, now).unwrap();
        assert_eq!(
            full.draw.legs.len(),
            1,
            "home covers it: {:?}",
            full.draw.legs
        );

        let mut state = BreakerState::default();
        state.blocked.insert(member(), "breaker exploit".into());
        v.set_breakers(state.clone());
        let err = v.compute(&key(), &pins, now).unwrap_err().to_string();
        assert!(err.contains("member blocked"), "{err}");

        state.blocked.clear();
        state.quarantined.insert(HOME);
        v.set_breakers(state.clone());
        assert!(
            v.compute(&key(), &pins, now).is_err(),
            "home chain quarantined"
        );
        assert!(!v.pins().iter().any(|p| p.chain_id == HOME));
        assert_eq!(v.quarantined(), [HOME].into());

        // Emergencies: signed only when a tripped breaker wants them (an alert up to the
        // wanted level); lifts unless this node still asserts the condition.
        let vault = VaultId {
            chain_id: 2,
            address: vault_addr(2),
        };
        let deadline = NOW_S + 600;
        let id = B256::repeat_byte(1);
        let freeze = ThresholdAction::Freeze(FreezeMember {
            member: member(),
            id,
            deadline,
        });
        let alert = |level| {
            ThresholdAction::RaiseAlert(RaiseAlert {
                subject: member(),
                level,
                id,
                deadline,
            })
        };
        assert!(v.approve_action(&vault, &freeze, now).is_err());
        state.wanted.insert((2, Effect::Freeze(member())));
        state.wanted.insert((
            2,
            Effect::Alert {
                subject: member(),
                level: 2,
            },
        ));
        v.set_breakers(state.clone());
        assert!(v.approve_action(&vault, &freeze, now).is_ok());
        assert!(v.approve_action(&vault, &alert(2), now).is_ok());
        assert!(v.approve_action(&vault, &alert(1), now).is_ok());
        assert!(
            v.approve_action(&vault, &alert(3), now).is_err(),
            "not above the wanted level"
        );
        let other = VaultId {
            chain_id: 3,
            address: vault_addr(3),
        };
        assert!(
            v.approve_action(&other, &freeze, now).is_err(),
            "not on another vault"
        );

        let unfreeze = ThresholdAction::Unfreeze(UnfreezeMember {
            member: member(),
            id,
            deadline,
        });
        let clear = ThresholdAction::ClearAlert(ClearAlert {
            subject: member(),
            id,
            deadline,
        });
        assert!(v.approve_action(&vault, &unfreeze, now).is_ok());
        state.held.insert(member(), "still asserted".into());
        v.set_breakers(state);
        assert!(v.approve_action(&vault, &unfreeze, now).is_err());
        assert!(v.approve_action(&vault, &clear, now).is_err());
    }
}
