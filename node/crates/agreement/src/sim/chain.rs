//! Simulated chains: blocks on a fixed period, one vault per chain with the rules the
//! protocol relies on, members whose losses arrive as shocks, and the view a simulated node
//! reads them through.
//!
//! The vault model keeps exactly the on-chain rules the nodes rely on: `registerDraw` only
//! on the member's home chain, one per `(member, seq)` with `seq == nextSeq`, before its
//! deadline, with t verified guardian signatures, legs summing to the amount, paying the
//! home leg; `releaseLeg` once per draw hash, before its deadline, with t signatures; a
//! threshold action once per id with p or t signatures. It deliberately does NOT check the
//! draw against the member's current solvency (the real vault does), so that the
//! over-coverage invariant tests the nodes' logic and not the vault's.
//!
//! State changes take effect at the next block boundary; "state at block b" is every change
//! at or before b's time. Facts (registrations, paid legs, executed actions) are logged in
//! time order for the nodes' simulated chain layers.

use crate::booking::Payout;
use crate::machine::{StateView, ViewError};
use crate::state::IncidentRecord;
use crate::types::{Certificate, IncidentKey, PinnedBlock, Subject, ThresholdAction};
use alloy::primitives::{Address, B256, U256, keccak256};
use backstop_contracts::eip712::{Draw, GuardianSignature, Leg, VaultId};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

/// Unix time of block 0.
pub const GENESIS_S: u64 = 1_700_000_000;
/// Seconds a draw may wait for registration after its pinned home block.
pub const DRAW_TTL_S: u64 = 30;
/// Seconds remote legs may wait for release after the pinned home block.
pub const LEG_TTL_S: u64 = 120;

/// A chain fact, as the nodes' chain layers read it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fact {
    /// A draw registered on its home vault.
    Registered {
        /// Incident.
        key: IncidentKey,
        /// Draw digest.
        draw_hash: B256,
        /// The draw.
        draw: Draw,
    },
    /// A remote leg paid.
    LegPaid {
        /// Draw digest.
        draw_hash: B256,
        /// Paying vault.
        vault: VaultId,
    },
    /// A threshold action executed.
    ActionExecuted {
        /// Vault.
        vault: VaultId,
        /// Action id.
        id: B256,
    },
}

/// A simulated member protocol.
#[derive(Clone, Debug)]
pub struct SimMember {
    /// Identifier.
    pub id: B256,
    /// Index of its home chain.
    pub home: usize,
    /// Per-incident cap.
    pub cap: U256,
    /// Losses: (time ms, amount).
    pub shocks: Vec<(u64, U256)>,
}

/// One chain and its vault.
#[derive(Clone, Debug)]
pub struct SimChain {
    /// Vault id (chain id and address).
    pub vault: VaultId,
    /// Balance changes: (time ms, signed delta as (is_credit, amount)).
    pub balance0: U256,
    /// Payouts made: (time ms, member, amount).
    pub payouts: Vec<(u64, B256, U256)>,
    /// Registered draws: key → (time, draw hash, draw).
    pub registered: BTreeMap<IncidentKey, (u64, B256, Draw)>,
    /// Paid legs: draw hash → time.
    pub leg_paid: BTreeMap<B256, u64>,
    /// Executed actions: id → time.
    pub actions: BTreeMap<B256, u64>,
}

/// Outcome of a submission.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxOutcome {
    /// Applied.
    Applied,
    /// Reverted, with the reason.
    Reverted(&'static str),
}

/// Every chain, member and fact of a run.
#[derive(Debug)]
pub struct World {
    /// Block period (ms).
    pub block_ms: u64,
    /// Confirmation depth (blocks).
    pub depth: u64,
    /// Seed (salts block hashes).
    pub seed: u64,
    /// Chains, ascending chain id.
    pub chains: Vec<SimChain>,
    /// Members.
    pub members: Vec<SimMember>,
    /// Guardian set of every vault.
    pub guardians: BTreeSet<Address>,
    /// t.
    pub threshold: usize,
    /// p.
    pub pause_threshold: usize,
    /// Actions the nodes' policy approves.
    pub approved: BTreeMap<(VaultId, B256), ThresholdAction>,
    /// Facts, in time order.
    pub facts: Vec<(u64, Fact)>,
    /// Transactions submitted, applied or reverted.
    pub txs: Vec<(u64, B256, TxOutcome)>,
}

/// Shared handle to the world (the simulation is single-threaded).
pub type WorldRef = Rc<RefCell<World>>;

impl World {
    /// Block number at time `ms`.
    pub fn block_at(&self, ms: u64) -> u64 {
        ms / self.block_ms
    }

    /// Time (ms) of block `b`.
    pub fn block_time_ms(&self, b: u64) -> u64 {
        b * self.block_ms
    }

    /// Unix timestamp of block `b`.
    pub fn block_timestamp(&self, b: u64) -> u64 {
        GENESIS_S + self.block_time_ms(b) / 1000
    }

    /// Hash of block `b` of chain `c`.
    pub fn block_hash(&self, c: usize, b: u64) -> B256 {
        let mut buf = [0u8; 24];
        buf[..8].copy_from_slice(&self.seed.to_le_bytes());
        buf[8..16].copy_from_slice(&self.chains[c].vault.chain_id.to_le_bytes());
        buf[16..].copy_from_slice(&b.to_le_bytes());
        keccak256(buf)
    }

    /// Confirmed head at `now`.
    pub fn confirmed_head(&self, now: u64) -> u64 {
        self.block_at(now).saturating_sub(self.depth)
    }

    /// Index of the chain with `chain_id`.
    pub fn chain_index(&self, chain_id: u64) -> Option<usize> {
        self.chains
            .iter()
            .position(|c| c.vault.chain_id == chain_id)
    }

    /// Index of member `id`.
    pub fn member_index(&self, id: &B256) -> Option<usize> {
        self.members.iter().position(|m| m.id == *id)
    }

    /// Vault balance of chain `c` at time `ms`.
    pub fn balance(&self, c: usize, ms: u64) -> U256 {
        let chain = &self.chains[c];
        let paid: U256 = chain
            .payouts
            .iter()
            .filter(|(t, _, _)| *t <= ms)
            .map(|(_, _, a)| *a)
            .sum();
        chain.balance0.saturating_sub(paid)
    }

    /// Losses of member `m` up to `ms`.
    pub fn losses(&self, m: usize, ms: u64) -> U256 {
        self.members[m]
            .shocks
            .iter()
            .filter(|(t, _)| *t <= ms)
            .map(|(_, a)| *a)
            .sum()
    }

    /// Payouts to member `m` up to `ms`, every chain.
    pub fn paid_to(&self, m: usize, ms: u64) -> U256 {
        let id = self.members[m].id;
        self.chains
            .iter()
            .flat_map(|c| c.payouts.iter())
            .filter(|(t, who, _)| *t <= ms && *who == id)
            .map(|(_, _, a)| *a)
            .sum()
    }

    /// liabilities - assets of member `m` at `ms`, every chain read at `ms`.
    pub fn gap(&self, m: usize, ms: u64) -> U256 {
        self.losses(m, ms).saturating_sub(self.paid_to(m, ms))
    }

    /// The gap as read at pinned blocks: losses at the home block, payouts of each chain up
    /// to that chain's pinned block.
    pub fn gap_pinned(&self, m: usize, pinned: &[PinnedBlock]) -> U256 {
        let member = &self.members[m];
        let home_ms = self.block_time_ms(pinned[member.home].number);
        let paid: U256 = self
            .chains
            .iter()
            .zip(pinned)
            .flat_map(|(c, p)| {
                let at = self.block_time_ms(p.number);
                c.payouts
                    .iter()
                    .filter(move |(t, who, _)| *t <= at && *who == member.id)
            })
            .map(|(_, _, a)| *a)
            .sum();
        self.losses(m, home_ms).saturating_sub(paid)
    }

    /// `nextSeq(member)` on its home vault at `ms`.
    pub fn next_seq(&self, m: usize, ms: u64) -> u64 {
        let member = &self.members[m];
        self.chains[member.home]
            .registered
            .iter()
            .filter(|(k, (t, _, _))| k.member == member.id && *t <= ms)
            .count() as u64
    }

    fn check_pinned(&self, pinned: &[PinnedBlock], now: u64) -> Result<(), ViewError> {
        if pinned.len() != self.chains.len() {
            return Err(ViewError::UnknownBlock(format!(
                "{} pinned blocks for {} chains",
                pinned.len(),
                self.chains.len()
            )));
        }
        let head = self.confirmed_head(now);
        for (c, p) in pinned.iter().enumerate() {
            if p.chain_id != self.chains[c].vault.chain_id
                || p.number > head
                || p.hash != self.block_hash(c, p.number)
            {
                return Err(ViewError::UnknownBlock(format!(
                    "chain {} block {}",
                    p.chain_id, p.number
                )));
            }
        }
        Ok(())
    }

    /// The allocation at pinned blocks: checks seq and the previous incident, then home
    /// first, the rest pro rata to the other vaults' balances, capped by the member's cap.
    pub fn compute_draw(
        &self,
        key: &IncidentKey,
        pinned: &[PinnedBlock],
    ) -> Result<Draw, ViewError> {
        let m = self
            .member_index(&key.member)
            .ok_or_else(|| ViewError::Policy("unknown member".into()))?;
        let member = &self.members[m];
        let home_ms = self.block_time_ms(pinned[member.home].number);
        let home_ts = self.block_timestamp(pinned[member.home].number);
        if self.next_seq(m, home_ms) != key.seq {
            return Err(ViewError::Policy(
                "seq is not nextSeq at the pinned block".into(),
            ));
        }
        // The previous draw's remote legs must be paid or expired at the pinned blocks.
        if key.seq > 0 {
            let prev = IncidentKey {
                member: key.member,
                seq: key.seq - 1,
            };
            if let Some((_, hash, draw)) = self.chains[member.home].registered.get(&prev) {
                for leg in &draw.legs {
                    let Some(c) = self.chain_index(leg.chainId) else {
                        continue;
                    };
                    if c == member.home {
                        continue;
                    }
                    let at = self.block_time_ms(pinned[c].number);
                    let paid = self.chains[c].leg_paid.get(hash).is_some_and(|t| *t <= at);
                    if !paid && home_ts <= draw.legDeadline {
                        return Err(ViewError::Policy("previous draw has legs pending".into()));
                    }
                }
            }
        }
        let gap = self.gap_pinned(m, pinned);
        if gap.is_zero() {
            return Err(ViewError::Policy("no gap".into()));
        }
        let balances: Vec<U256> = pinned
            .iter()
            .enumerate()
            .map(|(c, p)| self.balance(c, self.block_time_ms(p.number)))
            .collect();
        let total: U256 = balances.iter().copied().sum();
        let amount = gap.min(member.cap).min(total);
        let home_amount = amount.min(balances[member.home]);
        let rest = amount - home_amount;
        let others: U256 = balances
            .iter()
            .enumerate()
            .filter(|(c, _)| *c != member.home)
            .map(|(_, b)| *b)
            .sum();
        let mut legs = Vec::new();
        let mut assigned = U256::ZERO;
        let mut first_remote = None;
        for (c, b) in balances.iter().enumerate() {
            let a = if c == member.home {
                home_amount
            } else if others.is_zero() {
                U256::ZERO
            } else {
                let share = rest * *b / others;
                if first_remote.is_none() && !b.is_zero() {
                    first_remote = Some(legs.len());
                }
                share
            };
            assigned += a;
            legs.push(Leg {
                chainId: self.chains[c].vault.chain_id,
                vault: self.chains[c].vault.address,
                amount: a,
            });
        }
        // Rounding remainder goes to the first remote vault with a balance.
        if let Some(i) = first_remote {
            legs[i].amount += amount - assigned;
        }
        legs.retain(|l| !l.amount.is_zero());
        Ok(Draw {
            member: key.member,
            seq: key.seq,
            gap,
            amount,
            legs,
            deadline: home_ts + DRAW_TTL_S,
            legDeadline: home_ts + LEG_TTL_S,
        })
    }

    fn verify_quorum(
        &self,
        cert: &Certificate,
        quorum: usize,
        check: &impl Fn(&GuardianSignature, B256) -> bool,
    ) -> Result<(), &'static str> {
        let mut signers = BTreeSet::new();
        for s in &cert.signatures {
            if !self.guardians.contains(&s.signer) {
                return Err("SignerNotGuardian");
            }
            if !check(s, cert.digest) {
                return Err("InvalidSignature");
            }
            if !signers.insert(s.signer) {
                return Err("DuplicateSigner");
            }
        }
        if signers.len() < quorum {
            return Err("InsufficientSignatures");
        }
        Ok(())
    }

    /// Applies a submitted certificate at time `at` (a block boundary), as the vault would.
    /// `check` verifies one signature (secp256k1 recovery, possibly memoized).
    pub fn apply(
        &mut self,
        at: u64,
        cert: &Certificate,
        check: impl Fn(&GuardianSignature, B256) -> bool,
    ) -> TxOutcome {
        let outcome = match self.try_apply(at, cert, &check) {
            Ok(()) => TxOutcome::Applied,
            Err(e) => TxOutcome::Reverted(e),
        };
        self.txs.push((at, cert.digest, outcome.clone()));
        outcome
    }

    fn try_apply(
        &mut self,
        at: u64,
        cert: &Certificate,
        check: &impl Fn(&GuardianSignature, B256) -> bool,
    ) -> Result<(), &'static str> {
        // The digest is recomputed by the vault from what is submitted.
        if cert.subject.digest() != cert.digest {
            return Err("InvalidSignature");
        }
        let ts = GENESIS_S + at / 1000;
        match &cert.subject {
            Subject::Draw { vault, draw, .. } => {
                let c = self.chain_index(vault.chain_id).ok_or("no such chain")?;
                if self.chains[c].vault != *vault {
                    return Err("wrong vault");
                }
                let m = self.member_index(&draw.member).ok_or("UnknownMember")?;
                if self.members[m].home != c {
                    return Err("NotHomeChain");
                }
                let key = IncidentKey {
                    member: draw.member,
                    seq: draw.seq,
                };
                if self.chains[c].registered.contains_key(&key) {
                    return Err("DrawAlreadyRegistered");
                }
                if self.next_seq(m, at) != draw.seq {
                    return Err("SeqMismatch");
                }
                if ts > draw.deadline {
                    return Err("Expired");
                }
                self.verify_quorum(cert, self.threshold, check)?;
                let sum: U256 = draw.legs.iter().map(|l| l.amount).sum();
                if sum != draw.amount {
                    return Err("LegSumMismatch");
                }
                if draw.amount > draw.gap {
                    return Err("DrawExceedsGap");
                }
                if draw.amount > self.members[m].cap {
                    return Err("DrawExceedsCap");
                }
                if draw.legs.windows(2).any(|w| w[0].chainId >= w[1].chainId) {
                    return Err("InvalidLegs");
                }
                let home_amount: U256 = draw
                    .legs
                    .iter()
                    .filter(|l| l.chainId == vault.chain_id)
                    .map(|l| l.amount)
                    .sum();
                if home_amount > self.balance(c, at) {
                    return Err("ReserveHit");
                }
                self.chains[c]
                    .registered
                    .insert(key, (at, cert.digest, draw.clone()));
                if !home_amount.is_zero() {
                    self.chains[c].payouts.push((at, draw.member, home_amount));
                }
                self.facts.push((
                    at,
                    Fact::Registered {
                        key,
                        draw_hash: cert.digest,
                        draw: draw.clone(),
                    },
                ));
            }
            Subject::Leg { vault, release } => {
                let c = self.chain_index(vault.chain_id).ok_or("no such chain")?;
                if self.chains[c].vault != *vault {
                    return Err("wrong vault");
                }
                let m = self.member_index(&release.member).ok_or("UnknownMember")?;
                if self.members[m].home == c {
                    return Err("NotRemoteChain");
                }
                if self.chains[c].leg_paid.contains_key(&release.drawHash) {
                    return Err("LegAlreadyPaid");
                }
                if ts > release.deadline {
                    return Err("Expired");
                }
                self.verify_quorum(cert, self.threshold, check)?;
                if release.amount > self.balance(c, at) {
                    return Err("ReserveHit");
                }
                self.chains[c].leg_paid.insert(release.drawHash, at);
                self.chains[c]
                    .payouts
                    .push((at, release.member, release.amount));
                self.facts.push((
                    at,
                    Fact::LegPaid {
                        draw_hash: release.drawHash,
                        vault: *vault,
                    },
                ));
            }
            Subject::Action { vault, action } => {
                let c = self.chain_index(vault.chain_id).ok_or("no such chain")?;
                if self.chains[c].vault != *vault {
                    return Err("wrong vault");
                }
                if self.chains[c].actions.contains_key(&action.id()) {
                    return Err("ActionIdUsed");
                }
                if ts > action.deadline() {
                    return Err("Expired");
                }
                let quorum = if action.is_emergency() {
                    self.pause_threshold
                } else {
                    self.threshold
                };
                self.verify_quorum(cert, quorum, check)?;
                self.chains[c].actions.insert(action.id(), at);
                self.facts.push((
                    at,
                    Fact::ActionExecuted {
                        vault: *vault,
                        id: action.id(),
                    },
                ));
            }
        }
        Ok(())
    }
}

/// Simulation time (ms since block 0) of a node's unix-ms clock.
fn sim_ms(now_ms: u64) -> u64 {
    now_ms.saturating_sub(GENESIS_S * 1000)
}

/// A simulated node's view of the world (its chain layer's reads).
#[derive(Clone, Debug)]
pub struct SimView {
    world: WorldRef,
    /// What each member's newest covered incident paid, as this node saw it close. The
    /// simulated members book every payout at once, so the booking rule is not applied here.
    payouts: BTreeMap<B256, Payout>,
}

impl SimView {
    /// A view of `world`.
    pub fn new(world: WorldRef) -> Self {
        Self {
            world,
            payouts: BTreeMap::new(),
        }
    }
}

impl StateView for SimView {
    fn home_vault(&self, member: &B256) -> Option<VaultId> {
        let w = self.world.borrow();
        let m = w.member_index(member)?;
        Some(w.chains[w.members[m].home].vault)
    }

    fn propose(
        &mut self,
        key: &IncidentKey,
        now_ms: u64,
    ) -> Result<(Vec<PinnedBlock>, Draw), ViewError> {
        let w = self.world.borrow();
        let head = w.confirmed_head(sim_ms(now_ms));
        let pinned: Vec<PinnedBlock> = (0..w.chains.len())
            .map(|c| PinnedBlock {
                chain_id: w.chains[c].vault.chain_id,
                number: head,
                hash: w.block_hash(c, head),
            })
            .collect();
        let draw = w.compute_draw(key, &pinned)?;
        Ok((pinned, draw))
    }

    fn recompute(
        &mut self,
        key: &IncidentKey,
        pinned: &[PinnedBlock],
        now_ms: u64,
    ) -> Result<Draw, ViewError> {
        let w = self.world.borrow();
        w.check_pinned(pinned, sim_ms(now_ms))?;
        w.compute_draw(key, pinned)
    }

    fn covered(&mut self, rec: &IncidentRecord, closed_ms: u64) {
        let previous = self.payouts.get(&rec.key.member);
        if previous.is_some_and(|p| p.seq >= rec.key.seq) {
            return;
        }
        if let Some(p) = Payout::of_record(rec, previous, closed_ms, U256::ZERO, 0) {
            self.payouts.insert(rec.key.member, p);
        }
    }

    fn approve_action(
        &mut self,
        vault: &VaultId,
        action: &ThresholdAction,
        _now_ms: u64,
    ) -> Result<(), ViewError> {
        let w = self.world.borrow();
        match w.approved.get(&(*vault, action.id())) {
            Some(a) if a == action => Ok(()),
            _ => Err(ViewError::Policy(
                "no confirmed signal for this action".into(),
            )),
        }
    }
}
