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
//! over-coverage invariant tests the nodes' logic and not the vault's. It does keep the
//! vault's coverage window: each vault bounds what it pays one member within any window of
//! `W` seconds to `L` (two-epoch scheme, see [`CoverageUse`]); the home vault counts the
//! whole registered draw amount, a remote vault the legs it pays.
//!
//! Members book what they are paid by a [`Booking`] behaviour (at once, late, partly, never,
//! or falsely); the gap they report at a block (their `solvency()`) is their losses less the
//! payouts their books show, not less what the vaults paid. With it a member declares what
//! its books include ([`World::booked_draws`], the `bookedDraws()` view, read at the same
//! block): an honest member the leading draws whose every leg is settled (paid and shown in
//! full, or unpaid past its deadline), a liar ([`Booking::False`]) every draw as soon as it is
//! registered; a few members have no view at all. [`SimView`] prices a draw `seq > 0` only if
//! the declaration at the pinned home block passes [`crate::booking::check`], and then from
//! the gap reported there.
//!
//! State changes take effect at the next block boundary; "state at block b" is every change
//! at or before b's time. Facts (registrations, paid legs, executed actions) are logged in
//! time order for the nodes' simulated chain layers.

use crate::booking::{self, Payout};
use crate::machine::{StateView, ViewError};
use crate::refusal::Refusal;
use crate::state::IncidentRecord;
use crate::types::{Certificate, IncidentKey, PinnedBlock, Subject, ThresholdAction};
use alloy::primitives::{Address, B256, U256, keccak256};
use backstop_contracts::eip712::{Draw, GuardianSignature, Leg, Signable, VaultId};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

/// Unix time of block 0.
pub const GENESIS_S: u64 = 1_700_000_000;
/// Seconds a draw may wait for registration after its pinned home block.
pub const DRAW_TTL_S: u64 = 30;
/// Seconds remote legs may wait for release after the pinned home block.
pub const LEG_TTL_S: u64 = 120;
/// Gaps at or below this are nothing to cover (the nodes' `Config::dust`).
pub const DUST: U256 = U256::ZERO;
/// Basis points in one.
const BPS: u64 = 10_000;

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
        /// The action.
        action: ThresholdAction,
    },
}

/// How a member books what the vaults pay it: its reported gap is its losses less the
/// payouts its books show, and (with a `bookedDraws()` view) it declares the draws whose
/// payouts they include ([`World::booked_draws`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Booking {
    /// Every payout shows in the books from the block that paid it.
    Instant,
    /// Every payout shows `delay_ms` after the block that paid it.
    Late {
        /// Delay (ms), longer than the machine's settle time.
        delay_ms: u64,
    },
    /// Only `bps` of every payout ever shows (rounded down), from the block that paid it: an
    /// honest member never declares a draw that paid it something.
    Partial {
        /// Share booked, basis points (below 10,000).
        bps: u64,
    },
    /// No payout ever shows; an honest member never declares a draw that paid it something.
    Never,
    /// A liar: no payout ever shows, yet it declares every draw booked as soon as it is
    /// registered. Only the coverage windows bound what it takes.
    False,
}

impl Booking {
    /// What the books show at `ms` of a payout of `amount` made at `at`.
    pub fn shown(&self, at: u64, amount: U256, ms: u64) -> U256 {
        match *self {
            Self::Instant if at <= ms => amount,
            Self::Late { delay_ms } if at.saturating_add(delay_ms) <= ms => amount,
            Self::Partial { bps } if at <= ms => {
                amount * U256::from(bps.min(BPS)) / U256::from(BPS)
            }
            _ => U256::ZERO,
        }
    }

    /// Whether the books end up showing every payout in full.
    pub fn books_all(&self) -> bool {
        matches!(self, Self::Instant | Self::Late { .. })
    }

    /// Whether the member declares truthfully (every behaviour but [`Booking::False`]).
    pub fn honest(&self) -> bool {
        !matches!(self, Self::False)
    }

    /// Index in the run's counters: instant, late, partial, never, false.
    pub fn index(&self) -> usize {
        match self {
            Self::Instant => 0,
            Self::Late { .. } => 1,
            Self::Partial { .. } => 2,
            Self::Never => 3,
            Self::False => 4,
        }
    }
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
    /// How its books show what it is paid.
    pub booking: Booking,
    /// Whether it implements the `bookedDraws()` view (without it: covered once).
    pub declares: bool,
    /// Coverage limit `L`: what one vault may pay it within any `coverage_window_s` (the
    /// same on every vault; 0: nothing is coverable).
    pub coverage_limit: U256,
    /// Coverage window `W` (s, at least 1).
    pub coverage_window_s: u64,
}

impl SimMember {
    /// Whether every draw that paid it is, in time, declared (an honest member with the view
    /// whose books end up showing every payout): the booking rule lets all its losses be
    /// covered.
    pub fn declares_all(&self) -> bool {
        self.declares && self.booking.books_all()
    }
}

/// A payment of a vault to a member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Payment {
    /// Time (ms, a block boundary).
    pub at: u64,
    /// Member paid.
    pub member: B256,
    /// Amount paid.
    pub amount: U256,
    /// The registered draw it pays (a home leg or a remote leg of it).
    pub draw_hash: B256,
}

/// A vault's coverage record of one member, as the contract stores it: what it counted in
/// epoch `epoch` (`current`) and in the epoch before (`previous`), epoch = timestamp / W.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CoverageUse {
    /// Epoch of the record.
    pub epoch: u64,
    /// Counted in `epoch - 1`.
    pub previous: U256,
    /// Counted in `epoch`.
    pub current: U256,
}

impl CoverageUse {
    /// Usage `(previous, current)` at `epoch` (the contract's `_usage`).
    pub fn usage(&self, epoch: u64) -> (U256, U256) {
        if self.epoch == epoch {
            (self.previous, self.current)
        } else if self.epoch + 1 == epoch {
            (self.current, U256::ZERO)
        } else {
            (U256::ZERO, U256::ZERO)
        }
    }

    /// What may still be counted at `epoch` under `limit`.
    pub fn available(&self, epoch: u64, limit: U256) -> U256 {
        let (previous, current) = self.usage(epoch);
        limit.saturating_sub(previous + current)
    }
}

/// One chain and its vault.
#[derive(Clone, Debug)]
pub struct SimChain {
    /// Vault id (chain id and address).
    pub vault: VaultId,
    /// Initial balance.
    pub balance0: U256,
    /// Payouts made, in time order.
    pub payouts: Vec<Payment>,
    /// Coverage records per member, each as stored after a payment: (time ms, record).
    pub coverage: BTreeMap<B256, Vec<(u64, CoverageUse)>>,
    /// Registered draws: key → (time, draw hash, draw).
    pub registered: BTreeMap<IncidentKey, (u64, B256, Draw)>,
    /// Paid legs: draw hash → time.
    pub leg_paid: BTreeMap<B256, u64>,
    /// Executed actions: id → time.
    pub actions: BTreeMap<B256, u64>,
    /// Guardian rotations the vault executed: (time, new set), in time order.
    pub rotations: Vec<(u64, BTreeSet<Address>)>,
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
    /// Actions an honest node asked for or attested (its own breakers wanted them): they
    /// may execute without being approved here, and need not.
    pub requested: BTreeSet<(VaultId, B256)>,
    /// Facts, in time order.
    pub facts: Vec<(u64, Fact)>,
    /// Transactions submitted, applied or reverted.
    pub txs: Vec<(u64, B256, TxOutcome)>,
    /// What the views priced and refused.
    pub notes: ViewNotes,
}

/// Shared handle to the world (the simulation is single-threaded).
pub type WorldRef = Rc<RefCell<World>>;

/// How a computed draw was priced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pricing {
    /// What the member's books declared at the pinned home block (`bookedDraws()`).
    pub declared: Option<u64>,
    /// A coverage window left lowered the amount or a leg below what it would be without.
    pub window_limited: bool,
}

/// What the simulated nodes' views priced and refused (diagnostics for the report).
#[derive(Clone, Debug, Default)]
pub struct ViewNotes {
    /// Refusals of `(member, seq)` by any view, by [`Refusal::kind`].
    pub refused: BTreeSet<(IncidentKey, &'static str)>,
    /// How each draw some view computed was priced, by its digest on the home vault.
    pub priced: BTreeMap<B256, Pricing>,
}

impl World {
    /// Member `m`'s gap as a reader of its home chain sees it at block `head`.
    pub fn observation(&self, m: usize, head: u64) -> crate::types::GapObservation {
        let member = &self.members[m];
        let ms = self.block_time_ms(head);
        crate::types::GapObservation {
            key: IncidentKey {
                member: member.id,
                seq: self.next_seq(m, ms),
            },
            home_chain_id: self.chains[member.home].vault.chain_id,
            block_number: head,
            block_hash: self.block_hash(member.home, head),
            assets: U256::ZERO,
            liabilities: self.gap(m, ms),
        }
    }

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
            .filter(|p| p.at <= ms)
            .map(|p| p.amount)
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

    /// Every payment to member `m`, every chain, any time.
    pub fn payments_to(&self, m: usize) -> impl Iterator<Item = &Payment> + '_ {
        let id = self.members[m].id;
        self.chains
            .iter()
            .flat_map(|c| c.payouts.iter())
            .filter(move |p| p.member == id)
    }

    /// Payouts to member `m` up to `ms`, every chain (what the vaults paid).
    pub fn paid_to(&self, m: usize, ms: u64) -> U256 {
        self.payments_to(m)
            .filter(|p| p.at <= ms)
            .map(|p| p.amount)
            .sum()
    }

    /// What member `m`'s books show at `ms` of what the vaults paid it.
    pub fn booked(&self, m: usize, ms: u64) -> U256 {
        let booking = self.members[m].booking;
        self.payments_to(m)
            .map(|p| booking.shown(p.at, p.amount, ms))
            .sum()
    }

    /// The gap member `m` reports at `ms` (liabilities - assets of its `solvency()`): its
    /// losses less the payouts its books show.
    pub fn gap(&self, m: usize, ms: u64) -> U256 {
        self.losses(m, ms).saturating_sub(self.booked(m, ms))
    }

    /// What member `m` has lost and no vault has paid, at `ms`.
    pub fn unpaid(&self, m: usize, ms: u64) -> U256 {
        self.losses(m, ms).saturating_sub(self.paid_to(m, ms))
    }

    /// Member `m`'s coverage window left on the vault of chain `c` at `ms` (the contract's
    /// `coverageAvailable` at the block of time `ms`).
    pub fn coverage_available(&self, c: usize, m: usize, ms: u64) -> U256 {
        let member = &self.members[m];
        let epoch = (GENESIS_S + ms / 1000) / member.coverage_window_s.max(1);
        self.chains[c]
            .coverage
            .get(&member.id)
            .and_then(|h| h.iter().rev().find(|(t, _)| *t <= ms))
            .map_or(member.coverage_limit, |(_, rec)| {
                rec.available(epoch, member.coverage_limit)
            })
    }

    /// Member `m`'s coverage record on chain `c` after counting `amount` at `at`, as the
    /// contract's `_coverageAfter`: `CoverageExceeded` beyond the window left.
    fn coverage_after(
        &self,
        c: usize,
        m: usize,
        at: u64,
        amount: U256,
    ) -> Result<CoverageUse, &'static str> {
        let member = &self.members[m];
        let epoch = (GENESIS_S + at / 1000) / member.coverage_window_s.max(1);
        let rec = self.chains[c]
            .coverage
            .get(&member.id)
            .and_then(|h| h.last())
            .map(|(_, r)| *r)
            .unwrap_or(CoverageUse {
                epoch,
                ..CoverageUse::default()
            });
        let (previous, current) = rec.usage(epoch);
        if amount > member.coverage_limit.saturating_sub(previous + current) {
            return Err("CoverageExceeded");
        }
        Ok(CoverageUse {
            epoch,
            previous,
            current: current + amount,
        })
    }

    /// Member `m`'s draws registered on its home vault by `ms`, in seq order: (key,
    /// registration time, draw hash, draw).
    pub fn draws_of(
        &self,
        m: usize,
        ms: u64,
    ) -> impl Iterator<Item = (IncidentKey, u64, B256, &Draw)> + '_ {
        let member = &self.members[m];
        self.chains[member.home]
            .registered
            .range(
                IncidentKey {
                    member: member.id,
                    seq: 0,
                }..=IncidentKey {
                    member: member.id,
                    seq: u64::MAX,
                },
            )
            .filter(move |(_, (at, _, _))| *at <= ms)
            .map(|(k, (at, hash, d))| (*k, *at, *hash, d))
    }

    /// When chain `c` paid the leg of draw `hash` to member `m`, if it did: the home vault
    /// pays its leg when it registers the draw (at `registered_at`).
    fn leg_paid_at(&self, m: usize, c: usize, hash: &B256, registered_at: u64) -> Option<u64> {
        if c == self.members[m].home {
            Some(registered_at)
        } else {
            self.chains[c].leg_paid.get(hash).copied()
        }
    }

    /// Whether every leg of member `m`'s draw (registered at `registered_at`) is settled at
    /// `ms` as its books see it: paid and shown in full, or unpaid and past the draw's
    /// `legDeadline` (it can no longer be paid).
    pub fn draw_settled(
        &self,
        m: usize,
        registered_at: u64,
        hash: &B256,
        draw: &Draw,
        ms: u64,
    ) -> bool {
        let booking = self.members[m].booking;
        let ts = GENESIS_S + ms / 1000;
        draw.legs.iter().all(|leg| {
            let Some(c) = self.chain_index(leg.chainId) else {
                return true;
            };
            match self
                .leg_paid_at(m, c, hash, registered_at)
                .filter(|t| *t <= ms)
            {
                Some(at) => booking.shown(at, leg.amount, ms) == leg.amount,
                None => ts > draw.legDeadline,
            }
        })
    }

    /// What member `m` declares at `ms` (its `bookedDraws()` at the block of time `ms`):
    /// `None` without the view; for an honest member the number of its leading draws (seq
    /// order, registered by `ms`) whose legs are all settled ([`Self::draw_settled`]); for a
    /// liar every draw registered by `ms`.
    pub fn booked_draws(&self, m: usize, ms: u64) -> Option<u64> {
        let member = &self.members[m];
        if !member.declares {
            return None;
        }
        let draws = self.draws_of(m, ms);
        let n = if member.booking.honest() {
            draws
                .take_while(|(_, at, hash, draw)| self.draw_settled(m, *at, hash, draw, ms))
                .count()
        } else {
            draws.count()
        };
        Some(n as u64)
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

    /// The draw at pinned blocks ([`Self::price`] without the pricing details).
    pub fn compute_draw(
        &self,
        key: &IncidentKey,
        pinned: &[PinnedBlock],
    ) -> Result<Draw, ViewError> {
        self.price(key, pinned)
            .map(|(draw, _)| draw)
            .map_err(ViewError::from)
    }

    /// The allocation at pinned blocks: checks seq and the previous incident (its remote legs
    /// paid or expired at the pinned blocks); prices draw `seq > 0` only if the member's books
    /// at the pinned home block declare draw `seq - 1` booked ([`booking::check`] of
    /// [`Self::booked_draws`]), and then from the gap they report there; caps the amount by
    /// the member's cap and by its coverage window left on the home vault (which counts the
    /// whole draw); pays home first, the rest pro rata to the other vaults' capacities
    /// (balance, capped by the member's window left there). The draw's signed `gap` is the
    /// reported gap.
    pub fn price(
        &self,
        key: &IncidentKey,
        pinned: &[PinnedBlock],
    ) -> Result<(Draw, Pricing), Refusal> {
        let m = self
            .member_index(&key.member)
            .ok_or(Refusal::UnknownMember(key.member))?;
        let member = &self.members[m];
        if pinned.len() != self.chains.len() {
            return Err(Refusal::PinnedOrder);
        }
        let home_ms = self.block_time_ms(pinned[member.home].number);
        let home_ts = self.block_timestamp(pinned[member.home].number);
        let next_seq = self.next_seq(m, home_ms);
        if next_seq != key.seq {
            return Err(Refusal::SeqMismatch {
                seq: key.seq,
                next_seq,
            });
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
                        return Err(Refusal::PreviousOpen(prev.seq));
                    }
                }
            }
        }
        let gap = self.gap(m, home_ms);
        if gap <= DUST {
            return Err(Refusal::NoGap);
        }
        // The booking rule: the books at the pinned home block declare draw seq - 1 booked.
        let declared = self.booked_draws(m, home_ms);
        booking::check(key.seq, declared)?;
        let balances: Vec<U256> = pinned
            .iter()
            .enumerate()
            .map(|(c, p)| self.balance(c, self.block_time_ms(p.number)))
            .collect();
        // What each vault may pay: the home vault its balance (its window bounds the whole
        // draw), a remote vault its balance capped by the member's window left there.
        let capacity: Vec<U256> = pinned
            .iter()
            .enumerate()
            .map(|(c, p)| {
                if c == member.home {
                    balances[c]
                } else {
                    balances[c].min(self.coverage_available(c, m, self.block_time_ms(p.number)))
                }
            })
            .collect();
        let home_window = self.coverage_available(member.home, m, home_ms);
        let unbounded = gap.min(member.cap).min(balances.iter().copied().sum());
        let amount = gap
            .min(member.cap)
            .min(home_window)
            .min(capacity.iter().copied().sum());
        if amount.is_zero() {
            return Err(if home_window.is_zero() || amount < unbounded {
                Refusal::WindowExhausted
            } else {
                Refusal::NothingCoverable("no capacity".into())
            });
        }
        let home_amount = amount.min(capacity[member.home]);
        let rest = amount - home_amount;
        let others: U256 = capacity
            .iter()
            .enumerate()
            .filter(|(c, _)| *c != member.home)
            .map(|(_, b)| *b)
            .sum();
        let mut amounts: Vec<U256> = capacity
            .iter()
            .enumerate()
            .map(|(c, cap)| {
                if c == member.home {
                    home_amount
                } else if others.is_zero() {
                    U256::ZERO
                } else {
                    rest * *cap / others
                }
            })
            .collect();
        // Rounding remainder goes to the first remote vault with room for it.
        let assigned: U256 = amounts.iter().copied().sum();
        let mut remainder = amount - assigned;
        for c in 0..amounts.len() {
            if c == member.home || remainder.is_zero() {
                continue;
            }
            let add = remainder.min(capacity[c] - amounts[c]);
            amounts[c] += add;
            remainder -= add;
        }
        // Without the windows, the same draw would have paid more (or the same legs differ).
        let window_limited = amount < unbounded
            || (0..amounts.len()).any(|c| {
                c != member.home && capacity[c] < balances[c] && amounts[c] == capacity[c]
            });
        let legs: Vec<Leg> = amounts
            .iter()
            .enumerate()
            .filter(|(_, a)| !a.is_zero())
            .map(|(c, a)| Leg {
                chainId: self.chains[c].vault.chain_id,
                vault: self.chains[c].vault.address,
                amount: *a,
            })
            .collect();
        let draw = Draw {
            member: key.member,
            seq: key.seq,
            gap,
            amount,
            legs,
            deadline: home_ts + DRAW_TTL_S,
            legDeadline: home_ts + LEG_TTL_S,
        };
        Ok((
            draw,
            Pricing {
                declared,
                window_limited,
            },
        ))
    }

    /// Chain `c`'s vault's guardian set at time `at` (ms): the set of its latest rotation
    /// by then, or the initial one.
    pub fn guardians_at(&self, c: usize, at: u64) -> &BTreeSet<Address> {
        self.chains[c]
            .rotations
            .iter()
            .rev()
            .find(|(t, _)| *t <= at)
            .map_or(&self.guardians, |(_, set)| set)
    }

    fn verify_quorum(
        &self,
        (c, at): (usize, u64),
        cert: &Certificate,
        quorum: usize,
        check: &impl Fn(&GuardianSignature, B256) -> bool,
    ) -> Result<(), &'static str> {
        let guardians = self.guardians_at(c, at);
        let mut signers = BTreeSet::new();
        for s in &cert.signatures {
            if !guardians.contains(&s.signer) {
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
                self.verify_quorum((c, at), cert, self.threshold, check)?;
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
                // The whole draw counts against the member's window on its home vault.
                let coverage = self.coverage_after(c, m, at, draw.amount)?;
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
                self.chains[c]
                    .coverage
                    .entry(draw.member)
                    .or_default()
                    .push((at, coverage));
                if !home_amount.is_zero() {
                    self.chains[c].payouts.push(Payment {
                        at,
                        member: draw.member,
                        amount: home_amount,
                        draw_hash: cert.digest,
                    });
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
                // The leg counts against the member's window on the paying vault.
                let coverage = self.coverage_after(c, m, at, release.amount)?;
                self.verify_quorum((c, at), cert, self.threshold, check)?;
                if release.amount > self.balance(c, at) {
                    return Err("ReserveHit");
                }
                self.chains[c].leg_paid.insert(release.drawHash, at);
                self.chains[c]
                    .coverage
                    .entry(release.member)
                    .or_default()
                    .push((at, coverage));
                self.chains[c].payouts.push(Payment {
                    at,
                    member: release.member,
                    amount: release.amount,
                    draw_hash: release.drawHash,
                });
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
                self.verify_quorum((c, at), cert, quorum, check)?;
                self.chains[c].actions.insert(action.id(), at);
                if let ThresholdAction::RotateGuardians(r) = action {
                    let set = r.guardians.iter().copied().collect();
                    self.chains[c].rotations.push((at, set));
                }
                self.facts.push((
                    at,
                    Fact::ActionExecuted {
                        vault: *vault,
                        id: action.id(),
                        action: action.clone(),
                    },
                ));
            }
        }
        Ok(())
    }
}

/// Simulation time (ms) of a draw's pinned home block: its deadline is that block's
/// timestamp + [`DRAW_TTL_S`].
pub fn pinned_ms(draw: &Draw) -> u64 {
    draw.deadline
        .saturating_sub(DRAW_TTL_S + GENESIS_S)
        .saturating_mul(1000)
}

/// Simulation time (ms since block 0) of a node's unix-ms clock.
fn sim_ms(now_ms: u64) -> u64 {
    now_ms.saturating_sub(GENESIS_S * 1000)
}

/// A simulated node's view of the world (its chain layer's reads). Everything it decides
/// is read from the world at the pinned blocks: it keeps nothing the booking rule uses.
#[derive(Clone, Debug)]
pub struct SimView {
    world: WorldRef,
    /// What each member's newest covered incident paid, as this node saw it close (for the
    /// failure reports; the booking rule does not use it).
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

    /// What `member`'s newest covered incident paid, as this node recorded it.
    pub fn payout(&self, member: &B256) -> Option<&Payout> {
        self.payouts.get(member)
    }

    /// Prices `key` at `pinned` and notes how (or why not) in the world's diagnostics.
    fn price(&self, key: &IncidentKey, pinned: &[PinnedBlock]) -> Result<Draw, ViewError> {
        let priced = self.world.borrow().price(key, pinned);
        let mut w = self.world.borrow_mut();
        match priced {
            Ok((draw, pricing)) => {
                let home = w
                    .member_index(&key.member)
                    .map(|m| w.chains[w.members[m].home].vault);
                if let Some(home) = home {
                    w.notes.priced.insert(draw.digest(&home), pricing);
                }
                Ok(draw)
            }
            Err(refusal) => {
                w.notes.refused.insert((*key, refusal.kind()));
                Err(refusal.into())
            }
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
        let pinned: Vec<PinnedBlock> = {
            let w = self.world.borrow();
            let head = w.confirmed_head(sim_ms(now_ms));
            (0..w.chains.len())
                .map(|c| PinnedBlock {
                    chain_id: w.chains[c].vault.chain_id,
                    number: head,
                    hash: w.block_hash(c, head),
                })
                .collect()
        };
        let draw = self.price(key, &pinned)?;
        Ok((pinned, draw))
    }

    fn recompute(
        &mut self,
        key: &IncidentKey,
        pinned: &[PinnedBlock],
        now_ms: u64,
    ) -> Result<Draw, ViewError> {
        self.world.borrow().check_pinned(pinned, sim_ms(now_ms))?;
        self.price(key, pinned)
    }

    fn covered(&mut self, rec: &IncidentRecord, closed_ms: u64) {
        let previous = self.payouts.get(&rec.key.member);
        if previous.is_some_and(|p| p.seq >= rec.key.seq) {
            return;
        }
        if let Some(p) = Payout::of_record(rec, closed_ms) {
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
            _ => Err(Refusal::NotWanted.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn u(v: u64) -> U256 {
        U256::from(v)
    }

    #[test]
    fn the_two_epoch_record_forgets_after_two_epochs() {
        let rec = CoverageUse {
            epoch: 10,
            previous: u(30),
            current: u(50),
        };
        assert_eq!(rec.usage(10), (u(30), u(50)));
        assert_eq!(rec.usage(11), (u(50), U256::ZERO));
        assert_eq!(rec.usage(12), (U256::ZERO, U256::ZERO));
        assert_eq!(rec.available(10, u(100)), u(20));
        assert_eq!(rec.available(11, u(100)), u(50));
        assert_eq!(rec.available(10, u(60)), U256::ZERO);
    }

    #[test]
    fn bookings_show_payouts_as_they_say() {
        let paid = u(1_000);
        assert_eq!(Booking::Instant.shown(5_000, paid, 4_999), U256::ZERO);
        assert_eq!(Booking::Instant.shown(5_000, paid, 5_000), paid);
        let late = Booking::Late { delay_ms: 4_000 };
        assert_eq!(late.shown(5_000, paid, 8_999), U256::ZERO);
        assert_eq!(late.shown(5_000, paid, 9_000), paid);
        let partial = Booking::Partial { bps: 2_501 };
        assert_eq!(partial.shown(5_000, paid, 9_000), u(250));
        assert_eq!(Booking::Never.shown(5_000, paid, u64::MAX), U256::ZERO);
        assert_eq!(Booking::False.shown(5_000, paid, u64::MAX), U256::ZERO);
        assert!(Booking::Instant.books_all() && late.books_all());
        assert!(!partial.books_all() && !Booking::Never.books_all());
        assert!(!Booking::False.books_all() && !Booking::False.honest());
        assert!(Booking::Never.honest() && partial.honest());
    }

    fn world(limit: u64, window_s: u64) -> World {
        let vault = |c: u64| VaultId {
            chain_id: 100 + c,
            address: Address::repeat_byte(c as u8 + 1),
        };
        let chain = |c: u64| SimChain {
            vault: vault(c),
            balance0: u(1_000_000),
            payouts: Vec::new(),
            coverage: BTreeMap::new(),
            registered: BTreeMap::new(),
            leg_paid: BTreeMap::new(),
            actions: BTreeMap::new(),
            rotations: Vec::new(),
        };
        World {
            block_ms: 1_000,
            depth: 2,
            seed: 0,
            chains: vec![chain(0), chain(1)],
            members: vec![SimMember {
                id: B256::repeat_byte(7),
                home: 0,
                cap: u(1_000_000),
                shocks: vec![(1_000, u(500_000))],
                booking: Booking::Instant,
                declares: true,
                coverage_limit: u(limit),
                coverage_window_s: window_s,
            }],
            guardians: BTreeSet::new(),
            threshold: 1,
            pause_threshold: 1,
            approved: BTreeMap::new(),
            requested: BTreeSet::new(),
            facts: Vec::new(),
            txs: Vec::new(),
            notes: ViewNotes::default(),
        }
    }

    /// Counts `amount` on chain `c` at `ms` as the vault would, or returns the revert.
    fn count(w: &mut World, c: usize, ms: u64, amount: u64) -> Result<(), &'static str> {
        let rec = w.coverage_after(c, 0, ms, u(amount))?;
        let id = w.members[0].id;
        w.chains[c].coverage.entry(id).or_default().push((ms, rec));
        Ok(())
    }

    #[test]
    fn the_vault_window_counts_per_vault_and_frees_between_one_and_two_windows() {
        // W = 10 s; GENESIS_S is a multiple of 10, so epoch boundaries fall on sim time
        // multiples of 10 s.
        let mut w = world(100, 10);
        count(&mut w, 0, 1_000, 60).unwrap();
        assert_eq!(w.coverage_available(0, 0, 1_000), u(40));
        assert_eq!(
            w.coverage_available(0, 0, 500),
            u(100),
            "before the payment"
        );
        assert_eq!(count(&mut w, 0, 2_000, 41), Err("CoverageExceeded"));
        count(&mut w, 0, 2_000, 40).unwrap();
        // Another vault counts on its own.
        count(&mut w, 1, 2_000, 100).unwrap();
        // Next epoch: the previous one still counts in full.
        assert_eq!(w.coverage_available(0, 0, 10_000), U256::ZERO);
        assert_eq!(count(&mut w, 0, 19_000, 1), Err("CoverageExceeded"));
        // Two epochs on: free again.
        assert_eq!(w.coverage_available(0, 0, 20_000), u(100));
        count(&mut w, 0, 20_000, 100).unwrap();
        // A zero limit covers nothing.
        let mut zero = world(0, 10);
        assert_eq!(count(&mut zero, 0, 1_000, 1), Err("CoverageExceeded"));
        assert_eq!(zero.coverage_available(0, 0, 1_000), U256::ZERO);
    }

    fn pinned(w: &World, number: u64) -> Vec<PinnedBlock> {
        (0..w.chains.len())
            .map(|c| PinnedBlock {
                chain_id: w.chains[c].vault.chain_id,
                number,
                hash: w.block_hash(c, number),
            })
            .collect()
    }

    #[test]
    fn draws_stay_within_the_windows_left() {
        let key = IncidentKey {
            member: B256::repeat_byte(7),
            seq: 0,
        };
        // Home window 300 bounds the whole draw of the 500,000 gap.
        let mut w = world(300, 10);
        w.chains[0].balance0 = u(200);
        let (draw, pricing) = w.price(&key, &pinned(&w, 5)).unwrap();
        assert_eq!((draw.gap, draw.amount), (u(500_000), u(300)));
        assert_eq!(
            draw.legs.iter().map(|l| l.amount).collect::<Vec<_>>(),
            vec![u(200), u(100)]
        );
        assert!(pricing.window_limited && pricing.declared == Some(0));
        // The remote vault's window left (40 after a leg of 260) bounds its leg.
        count(&mut w, 1, 3_000, 260).unwrap();
        let (draw, _) = w.price(&key, &pinned(&w, 5)).unwrap();
        assert_eq!(draw.amount, u(240));
        // Nothing left on the home vault: refused for the window.
        count(&mut w, 0, 3_000, 300).unwrap();
        let refused = w.price(&key, &pinned(&w, 5)).unwrap_err();
        assert_eq!(refused, Refusal::WindowExhausted);
    }

    /// Registers draw 0 of member 0 at 3 s, pinned at block 2: 200 paid at home at once,
    /// a remote leg of 100 on chain 101 (paid at `remote_paid`, if any).
    fn draw_zero(w: &mut World, remote_paid: Option<u64>) -> Draw {
        let member = w.members[0].id;
        let key = IncidentKey { member, seq: 0 };
        let (mut draw, _) = w.price(&key, &pinned(w, 2)).unwrap();
        draw.amount = u(300);
        draw.legs = vec![
            Leg {
                chainId: 100,
                vault: w.chains[0].vault.address,
                amount: u(200),
            },
            Leg {
                chainId: 101,
                vault: w.chains[1].vault.address,
                amount: u(100),
            },
        ];
        let hash = B256::repeat_byte(9);
        w.chains[0]
            .registered
            .insert(key, (3_000, hash, draw.clone()));
        let pay = |amount: u64, at: u64| Payment {
            at,
            member,
            amount: u(amount),
            draw_hash: hash,
        };
        w.chains[0].payouts.push(pay(200, 3_000));
        if let Some(at) = remote_paid {
            w.chains[1].leg_paid.insert(hash, at);
            w.chains[1].payouts.push(pay(100, at));
        }
        draw
    }

    #[test]
    fn members_declare_the_draws_their_books_settle() {
        // Instant: declared once every leg is paid (the remote one at 4 s).
        let mut w = world(1_000_000, 10);
        assert_eq!(w.booked_draws(0, 1_000), Some(0));
        let draw = draw_zero(&mut w, Some(4_000));
        assert_eq!(w.booked_draws(0, 3_000), Some(0), "remote leg not paid yet");
        assert_eq!(w.booked_draws(0, 4_000), Some(1));
        // Late: once the last payment shows.
        w.members[0].booking = Booking::Late { delay_ms: 5_000 };
        assert_eq!(w.booked_draws(0, 8_999), Some(0));
        assert_eq!(w.booked_draws(0, 9_000), Some(1));
        // Partial, Never: never the draw that paid them; no view: nothing.
        for booking in [Booking::Partial { bps: 9_000 }, Booking::Never] {
            w.members[0].booking = booking;
            assert_eq!(w.booked_draws(0, u64::MAX / 2), Some(0), "{booking:?}");
        }
        w.members[0].booking = Booking::Instant;
        w.members[0].declares = false;
        assert_eq!(w.booked_draws(0, 9_000), None);
        // A liar: every registered draw, paid or not, shown or not.
        w.members[0].declares = true;
        w.members[0].booking = Booking::False;
        assert_eq!(w.booked_draws(0, 2_999), Some(0));
        assert_eq!(w.booked_draws(0, 3_000), Some(1));
        // A leg never paid settles once past the draw's legDeadline (pinned 2 s + 120 s).
        let mut w = world(1_000_000, 10);
        draw_zero(&mut w, None);
        assert_eq!(draw.legDeadline, GENESIS_S + 2 + LEG_TTL_S);
        assert_eq!(w.booked_draws(0, 122_000), Some(0));
        assert_eq!(w.booked_draws(0, 123_000), Some(1));
        // Never: a draw whose every leg expired unpaid paid nothing, so it is declared.
        w.members[0].booking = Booking::Never;
        w.chains[0].payouts.clear();
        let key = IncidentKey {
            member: w.members[0].id,
            seq: 0,
        };
        if let Some((_, _, d)) = w.chains[0].registered.get_mut(&key) {
            d.legs.retain(|l| l.chainId == 101);
        }
        assert_eq!(w.booked_draws(0, 122_000), Some(0));
        assert_eq!(w.booked_draws(0, 123_000), Some(1));
    }

    #[test]
    fn the_next_draw_is_priced_by_the_booking_rule() {
        let member = B256::repeat_byte(7);
        let key = |seq| IncidentKey { member, seq };
        let refusal = |w: &World, number: u64| {
            let r = w.price(&key(1), &pinned(w, number)).unwrap_err();
            (r.kind(), r.to_string())
        };
        let mut w = world(1_000_000, 10);
        draw_zero(&mut w, Some(4_000));
        // The remote leg is pending at block 3: no draw, whatever the books say.
        let (r, why) = refusal(&w, 3);
        assert_eq!(r, "previous_open", "{why}");
        // Declared (Instant): priced from the books, 500,000 - 300.
        let (draw, pricing) = w.price(&key(1), &pinned(&w, 5)).unwrap();
        assert_eq!((draw.gap, draw.amount), (u(499_700), u(499_700)));
        assert_eq!(pricing.declared, Some(1));
        // Late, not yet declared at block 5: refused; declared at block 9.
        w.members[0].booking = Booking::Late { delay_ms: 5_000 };
        let (r, why) = refusal(&w, 5);
        assert_eq!(r, "not_booked");
        assert!(why.contains("declare 0 draw(s) booked"), "{why}");
        let (draw, _) = w.price(&key(1), &pinned(&w, 9)).unwrap();
        assert_eq!(draw.amount, u(499_700));
        // Never: refused, also after a new loss (the declaration, not the gap, decides).
        w.members[0].booking = Booking::Never;
        w.members[0].shocks.push((4_000, u(1_000)));
        assert_eq!(refusal(&w, 9).0, "not_booked");
        // No view: covered once.
        w.members[0].booking = Booking::Instant;
        w.members[0].declares = false;
        let (r, why) = refusal(&w, 9);
        assert_eq!(r, "not_booked");
        assert!(why.contains("no bookedDraws() view"), "{why}");
        // A liar is priced again from its whole reported gap: only the windows bound it.
        w.members[0].declares = true;
        w.members[0].booking = Booking::False;
        let (draw, pricing) = w.price(&key(1), &pinned(&w, 5)).unwrap();
        assert_eq!((draw.gap, draw.amount), (u(501_000), u(501_000)));
        assert_eq!(pricing.declared, Some(1));
    }
}
