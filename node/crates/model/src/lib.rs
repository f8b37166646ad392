//! An exhaustive model of Backstop's draw and recovery protocol, checked with
//! [stateright](https://docs.rs/stateright) (breadth-first search over every interleaving).
//!
//! # What it models
//!
//! The draw protocol of `docs/design.md` as `backstop-agreement`'s `Machine` and the vault
//! contract implement it, in small configurations: n = 4 nodes of which at most f = 1 is
//! byzantine (t and p from [`Thresholds::of`]), 2 chains with one vault each, 2 members
//! (member 0 at home on chain 0, member 1 on chain 1), up to 2 losses.
//!
//! - **Chains** are lists of transactions (losses, bookings, freezes, lifts, registrations,
//!   remote legs) with a final prefix (the confirmation depth). A shallow reorg takes back
//!   protocol transactions above the final prefix; a deep reorg takes back final ones and
//!   changes the chain's generation, so blocks pinned before it no longer verify. Every vault
//!   fact is a fold of a prefix ([`VaultView`]), so a pinned block is a prefix length.
//! - **Incidents** are keyed `(member, seq)`, `seq` the home vault's `nextSeq` at the confirmed
//!   head; attempts rotate the proposer by the real keccak rotation
//!   ([`Consortium::proposer`]).
//! - **Proposals** pin one final prefix per chain and an epoch; the draw is priced there
//!   ([`BackstopModel::price`]): seq check, freeze, the booking rule ([`booking::check`]),
//!   the node-local "previous draw closed here" rule, gap, cap, the home coverage window
//!   left ([`CoverageUse`], the contract's two-epoch arithmetic), the home leg first and the
//!   rest on the remote vault within its window and balance.
//! - **Attestations**: an honest node signs a proposal only when it recomputes the same draw
//!   at the pinned prefixes in its own view, and only through the sign-guard (one digest per
//!   `(member, seq, attempt)`, recorded before signing, kept across crashes).
//! - **Certificates** form from t distinct current guardians' signatures over one digest;
//!   anyone (the byzantine node too) may submit any certificate at any time, and the vault
//!   decides: `registerDraw` (seq = `nextSeq`, not frozen, amount within gap and cap,
//!   coverage window, deadline, balance, t distinct guardians) pays the home leg;
//!   `releaseLeg` pays one leg per `(member, seq)` on a remote vault.
//! - **Legs** are signed only once the registration is final on the home chain; an incident
//!   closes covered when its remote leg is paid (for that draw) or past its deadline.
//! - **Deep reorgs**: a node whose open or recently covered incident's registration or leg is
//!   gone from the final chain reopens it, marks the registration rewound and starts no new
//!   attempt; the stored certificate is submitted again (the same draw).
//! - **Faults**: crashes (a restarted node keeps only its sign-guard, relearns the rest from
//!   the chains as reconciliation does, and misses the gossip sent while it was down), a
//!   byzantine node that signs every draw and leg it sees, proposes (and equivocates) at its
//!   turns and submits anything certified, bounded message loss (a proposal not delivered to
//!   a node, or a node's attestation lost), duplication (a proposal delivered again),
//!   freezes and lifts, the member's booking (declared once the draw is settled).
//!
//! # Invariants checked ([`BackstopModel::properties`])
//!
//! Safety (`always`): no over-coverage per incident (every leg paid for `(member, seq)`
//! belongs to one draw and they sum to at most its amount, at most its gap) and per member
//! (all payouts at most all losses); each vault pays a member at most its coverage limit
//! within any two consecutive epochs; at most one draw per `(member, seq)` ever registered,
//! across reorgs; each remote leg paid at most once per `(member, seq)` and only for a draw
//! whose registration was final on the home chain; no payout without t distinct current
//! guardians; no honest node signs two digests for one sign-guard key, across crashes; a
//! frozen member is paid nothing.
//!
//! Liveness: in the configurations marked `liveness` (no message loss, timeouts only when an
//! attempt has no usable proposal: the fairness of "t honest nodes connected"), every state
//! with no successor (every budgeted fault spent or declined, every message delivered, every
//! chain confirmed, every certificate submitted) leaves no coverable gap. This is an `always`
//! property over terminal states, so it is sound for them (no false negatives from DAG joins,
//! unlike stateright's `eventually`); the model is acyclic by construction (chains and the
//! message pool only grow except under budgeted reorgs, attempts only rise, and node steps
//! are idempotent when nothing changed), so every behaviour ends in such a state. The
//! `eventually` form is checked as well.
//!
//! Reachability (`sometimes`), so a vacuous model fails: a remote leg paid, a second draw of
//! a member registered, a deep reorg, a draw put back after one, a crash, a freeze.
//!
//! Each safety property has a deliberately broken variant ([`Bug`]) whose counterexample the
//! tests require the checker to find.

use std::collections::{BTreeMap, BTreeSet};

use alloy::primitives::{B256, U256};
use backstop_agreement::booking;
use backstop_agreement::sim::chain::CoverageUse;
use backstop_types::{Consortium, IncidentKey, NodeInfo, Thresholds};
use stateright::{Model, Property};

/// Nodes.
pub const N: usize = 4;
/// Members.
pub const MEMBERS: usize = 2;
/// Chains (one vault each).
pub const CHAINS: usize = 2;
/// Highest seq tabulated.
pub const MAX_SEQ: usize = 3;
/// Highest attempt tabulated.
pub const MAX_ATTEMPT: usize = 4;
/// Epochs a draw may wait for its registration after its pinned epoch.
pub const DEADLINE_EPOCHS: u8 = 2;
/// Further epochs a remote leg may wait after the draw's deadline.
pub const LEG_GRACE_EPOCHS: u8 = 1;

/// A deliberately broken variant of the protocol, for proving the checker catches each
/// property's violation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Bug {
    /// The protocol as implemented.
    None,
    /// The sign-guard is kept in memory only: a crash forgets what was signed.
    GuardVolatile,
    /// Leg releases are signed when the registration is seen at the head, before it is final.
    ReleaseBeforeFinal,
    /// The home vault does not enforce one draw per `(member, seq)` (a later draw of a
    /// registered seq overwrites it).
    NoOneDrawPerSeq,
    /// Vaults and pricing ignore the coverage window.
    WindowIgnored,
    /// Vaults do not check the member's freeze.
    FrozenNotChecked,
    /// Vaults count signatures, not distinct signers.
    CountsDuplicateSigners,
    /// Nodes price draw `seq > 0` without the booking rule.
    BookingIgnored,
    /// A remote vault pays one leg per draw digest instead of one per `(member, seq)`, and
    /// nodes start a new attempt after a deep reorg instead of putting the same draw back.
    NewDrawAfterDeepReorg,
}

/// A bounded configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// Name printed by the tests.
    pub name: &'static str,
    /// Members in play (1 or 2).
    pub members: u8,
    /// Losses in the order they happen: `(member, amount)`.
    pub losses: Vec<(u8, u8)>,
    /// What each vault holds for payouts.
    pub balance: [u8; CHAINS],
    /// Per-incident cap of each member.
    pub cap: u8,
    /// Coverage limit of each member on each vault per window.
    pub coverage_limit: u8,
    /// The byzantine node, if any.
    pub byzantine: Option<u8>,
    /// Highest attempt a node moves to.
    pub max_attempt: u8,
    /// Epoch ticks (time passing).
    pub ticks: u8,
    /// Crashes.
    pub crashes: u8,
    /// Messages lost.
    pub message_loss: u8,
    /// Shallow reorgs (within the confirmation depth).
    pub shallow_reorgs: u8,
    /// Deep reorgs (beyond the confirmation depth).
    pub deep_reorgs: u8,
    /// Freezes (each may be lifted).
    pub freezes: u8,
    /// Proposals the byzantine node makes at its turns.
    pub byzantine_proposals: u8,
    /// Timeouts fire at any time (asynchrony); otherwise only when the attempt has no
    /// usable proposal at the node (the fairness of the liveness check).
    pub eager_timeouts: bool,
    /// Check liveness (terminal states leave no coverable gap).
    pub liveness: bool,
    /// The broken variant, if any.
    pub bug: Bug,
}

impl Config {
    /// A base for one member with one loss of 3: node 3 byzantine (it signs everything and
    /// submits anything certified, but proposes nothing), no other fault.
    pub fn base(name: &'static str) -> Self {
        Self {
            name,
            members: 1,
            losses: vec![(0, 3)],
            balance: [2, 4],
            cap: 8,
            coverage_limit: 8,
            byzantine: Some(3),
            max_attempt: 2,
            ticks: 0,
            crashes: 0,
            message_loss: 0,
            shallow_reorgs: 0,
            deep_reorgs: 0,
            freezes: 0,
            byzantine_proposals: 0,
            eager_timeouts: false,
            liveness: true,
            bug: Bug::None,
        }
    }
}

/// A draw, as its digest binds it (the pinned epoch gives its deadlines).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Draw {
    /// Member.
    pub m: u8,
    /// Seq.
    pub seq: u8,
    /// Gap at the pinned home block.
    pub gap: u8,
    /// Home leg.
    pub home: u8,
    /// Remote leg.
    pub remote: u8,
    /// Registration deadline (epoch).
    pub deadline: u8,
}

impl Draw {
    /// Home leg plus remote leg.
    pub fn amount(&self) -> u8 {
        self.home.saturating_add(self.remote)
    }

    /// The remote leg's deadline.
    pub fn leg_deadline(&self) -> u8 {
        self.deadline.saturating_add(LEG_GRACE_EPOCHS)
    }
}

/// What a certificate certifies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Subject {
    /// A draw to register on its home vault.
    Draw(Draw),
    /// The remote leg of a registered draw.
    Leg(Draw),
}

/// A transaction on a chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Tx {
    /// The member lost `amount` (its `solvency()` gap grows).
    Loss {
        /// Member.
        m: u8,
        /// Amount.
        amount: u8,
    },
    /// The member declares one more draw booked; its books show `amount` more.
    Book {
        /// Member.
        m: u8,
        /// What the booked draw paid.
        amount: u8,
    },
    /// The member is frozen on this vault.
    Freeze {
        /// Member.
        m: u8,
    },
    /// The freeze is lifted.
    Lift {
        /// Member.
        m: u8,
    },
    /// `registerDraw`: the draw registered and its home leg paid.
    Register {
        /// The draw.
        d: Draw,
        /// Distinct signers (bit i: node i).
        signers: u8,
        /// Epoch of inclusion.
        epoch: u8,
    },
    /// `releaseLeg`: the remote leg paid.
    Leg {
        /// The draw.
        d: Draw,
        /// Distinct signers.
        signers: u8,
        /// Epoch of inclusion.
        epoch: u8,
    },
}

impl Tx {
    fn is_protocol(&self) -> bool {
        matches!(self, Tx::Register { .. } | Tx::Leg { .. })
    }
}

/// One chain: its transactions, its final prefix and its reorg generation.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ChainState {
    /// Transactions in order.
    pub txs: Vec<Tx>,
    /// Length of the final prefix.
    pub fin: u8,
    /// Deep reorgs so far.
    pub generation: u8,
    /// Shortest prefix a deep reorg kept: older pins beyond it no longer verify.
    pub floor: u8,
}

/// A pinned block per chain (prefix length and generation) and the pinned epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pin {
    /// Prefix lengths.
    pub len: [u8; CHAINS],
    /// Generations.
    pub generation: [u8; CHAINS],
    /// Epoch.
    pub epoch: u8,
}

/// A published proposal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Proposal {
    /// Attempt.
    pub attempt: u8,
    /// Proposer.
    pub proposer: u8,
    /// Pinned blocks.
    pub pin: Pin,
    /// The draw.
    pub d: Draw,
}

/// A registration as a node knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Reg {
    /// The registered draw.
    pub d: Draw,
    /// Final on the home chain.
    pub fin: bool,
    /// A deep reorg took it back; the same draw is being put back.
    pub rewound: bool,
}

/// An open incident at a node.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Incident {
    /// Seq.
    pub seq: u8,
    /// Current attempt.
    pub attempt: u8,
    /// Accepted proposal per attempt.
    pub proposals: BTreeMap<u8, Draw>,
    /// The registration, once seen.
    pub reg: Option<Reg>,
}

/// One honest node.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NodeState {
    /// Running.
    pub up: bool,
    /// The sign-guard: digest signed per `(member, seq, attempt)` (durable).
    pub guard: BTreeMap<(u8, u8, u8), Draw>,
    /// Open incident per member.
    pub incidents: [Option<Incident>; MEMBERS],
    /// Highest seq closed per member.
    pub closed: [Option<u8>; MEMBERS],
    /// The newest covered draw per member, kept for a deep reorg to reopen.
    pub recent: [Option<Draw>; MEMBERS],
    /// Proposals delivered (or lost, or missed while down), by index.
    pub heard: u32,
}

impl NodeState {
    fn new() -> Self {
        Self {
            up: true,
            guard: BTreeMap::new(),
            incidents: [None, None],
            closed: [None, None],
            recent: [None, None],
            heard: 0,
        }
    }
}

/// Budgets of the environment and the adversary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Budgets {
    /// Ticks left.
    pub ticks: u8,
    /// Crashes left.
    pub crashes: u8,
    /// Messages that may still be lost.
    pub message_loss: u8,
    /// Shallow reorgs left.
    pub shallow: u8,
    /// Deep reorgs left.
    pub deep: u8,
    /// Freezes left.
    pub freezes: u8,
    /// Byzantine proposals left.
    pub byzantine: u8,
}

/// History variables (what happened), for the properties.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Ghost {
    /// Per honest `(node, member, seq, attempt)`, the digest it signed.
    pub signed: BTreeMap<(u8, u8, u8, u8), Draw>,
    /// An honest node signed two digests for one sign-guard key.
    pub double_signed: bool,
    /// Every draw ever registered.
    pub registered: BTreeSet<Draw>,
    /// Every draw whose registration was final at some point.
    pub finalized: BTreeSet<Draw>,
    /// A deep reorg happened.
    pub deep_reorg: bool,
    /// A draw was registered again after a deep reorg took it back.
    pub put_back: bool,
    /// A crash happened.
    pub crashed: bool,
    /// A freeze happened.
    pub frozen: bool,
}

/// The whole system.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct State {
    /// Chains.
    pub chains: [ChainState; CHAINS],
    /// Current epoch.
    pub epoch: u8,
    /// Losses that happened.
    pub losses_done: u8,
    /// Nodes (the byzantine node's entry is unused).
    pub nodes: [NodeState; N],
    /// Published proposals.
    pub proposals: Vec<Proposal>,
    /// Published signatures: subject, signer, copy (a byzantine duplicate has copy 1).
    pub sigs: BTreeSet<(Subject, u8, u8)>,
    /// Budgets.
    pub budgets: Budgets,
    /// History.
    pub ghost: Ghost,
}

/// A step of the system.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// The next loss happens.
    Loss,
    /// A chain's head becomes final.
    Confirm(u8),
    /// A reorg within the confirmation depth.
    ShallowReorg(u8),
    /// A reorg beyond the confirmation depth.
    DeepReorg(u8),
    /// Time passes.
    Tick,
    /// A member is frozen on every vault.
    Freeze(u8),
    /// The freeze is lifted on every vault.
    Lift(u8),
    /// The member declares its next settled draw booked.
    Book(u8),
    /// A node crashes.
    Crash(u8),
    /// A node restarts.
    Restart(u8),
    /// A node reads its member's state at the confirmed heads (observation, registrations,
    /// legs, deep reorgs, reconciliation).
    Step(u8, u8),
    /// A proposal is delivered to a node (again: duplication).
    Deliver(u8, u8),
    /// A proposal is lost on its way to a node.
    Drop(u8, u8),
    /// A proposal is delivered and the node's attestation is lost.
    DeliverMuted(u8, u8),
    /// A node's attempt times out.
    Timeout(u8, u8),
    /// A certificate is submitted to its vault.
    Submit(Subject),
    /// The byzantine node proposes at its turn for the member: variant 0 pins the heads,
    /// variant 1 pins an older epoch (a second digest for the same attempt).
    ByzantinePropose(u8, u8),
}

/// A vault's state at a prefix of its chain.
#[derive(Clone, Debug, Default)]
pub struct VaultView {
    /// `nextSeq` per member (home vault).
    pub next_seq: [u8; MEMBERS],
    /// Frozen per member.
    pub frozen: [bool; MEMBERS],
    /// Draws declared booked per member.
    pub booked: [u8; MEMBERS],
    /// What the booked draws paid, per member.
    pub booked_amount: [u8; MEMBERS],
    /// Losses per member.
    pub losses: [u8; MEMBERS],
    /// `drawOf[member][seq]`: the registered draw (home) or the draw whose leg was paid
    /// (remote).
    pub drawn: [[Option<Draw>; MAX_SEQ + 1]; MEMBERS],
    /// Paid by this vault in all.
    pub paid: u8,
    /// Coverage record per member.
    pub coverage: [CoverageUse; MEMBERS],
}

impl VaultView {
    /// The member's `solvency()` gap.
    pub fn gap(&self, m: usize) -> u8 {
        self.losses[m].saturating_sub(self.booked_amount[m])
    }
}

fn usage_after(rec: &CoverageUse, epoch: u8, amount: u8) -> CoverageUse {
    let (previous, current) = rec.usage(u64::from(epoch));
    CoverageUse {
        epoch: u64::from(epoch),
        previous,
        current: current + U256::from(amount),
    }
}

fn available(rec: &CoverageUse, epoch: u8, limit: u8) -> u8 {
    let left = rec.available(u64::from(epoch), U256::from(limit));
    u8::try_from(left).unwrap_or(u8::MAX)
}

fn home_of(m: u8) -> usize {
    usize::from(m) % CHAINS
}

fn remote_of(m: u8) -> usize {
    (usize::from(m) + 1) % CHAINS
}

fn bits(mask: u8) -> usize {
    mask.count_ones() as usize
}

/// The model: a configuration, its thresholds and the proposer table.
#[derive(Clone, Debug)]
pub struct BackstopModel {
    /// The configuration.
    pub cfg: Config,
    /// Thresholds of n = 4.
    pub thresholds: Thresholds,
    /// `proposer[member][seq][attempt]`, from [`Consortium::proposer`].
    pub proposer: [[[u8; MAX_ATTEMPT + 1]; MAX_SEQ + 1]; MEMBERS],
}

/// The consortium of four nodes the model uses (ed25519 keys from fixed seeds).
pub fn consortium() -> Result<Consortium, backstop_types::ConsortiumError> {
    let nodes = (0..N as u8)
        .map(|i| NodeInfo {
            identity: ed25519_dalek::SigningKey::from_bytes(&[i + 1; 32])
                .verifying_key()
                .to_bytes(),
            guardian: alloy::primitives::Address::with_last_byte(i + 1),
        })
        .collect();
    Consortium::new(nodes)
}

/// Member `m`'s id on chain.
pub fn member_id(m: u8) -> B256 {
    B256::repeat_byte(m + 1)
}

impl BackstopModel {
    /// The model of `cfg`.
    pub fn new(cfg: Config) -> Result<Self, backstop_types::ConsortiumError> {
        let c = consortium()?;
        let mut proposer = [[[0u8; MAX_ATTEMPT + 1]; MAX_SEQ + 1]; MEMBERS];
        for (m, per_seq) in proposer.iter_mut().enumerate() {
            for (seq, per_attempt) in per_seq.iter_mut().enumerate() {
                for (a, p) in per_attempt.iter_mut().enumerate() {
                    let key = IncidentKey {
                        member: member_id(m as u8),
                        seq: seq as u64,
                    };
                    *p = c.proposer(&key, a as u32) as u8;
                }
            }
        }
        Ok(Self {
            cfg,
            thresholds: Thresholds::of(N),
            proposer,
        })
    }

    /// The proposer of `(m, seq, attempt)`.
    pub fn proposer_of(&self, m: u8, seq: u8, attempt: u8) -> u8 {
        self.proposer
            .get(usize::from(m))
            .and_then(|s| s.get(usize::from(seq)))
            .and_then(|a| a.get(usize::from(attempt)))
            .copied()
            .unwrap_or(u8::MAX)
    }

    fn honest(&self, i: u8) -> bool {
        self.cfg.byzantine != Some(i)
    }

    fn guardians_mask(&self) -> u8 {
        (1u8 << N) - 1
    }

    /// The vault of chain `c` at the prefix of length `len`.
    pub fn vault(&self, chain: &ChainState, len: u8) -> VaultView {
        let mut v = VaultView::default();
        for tx in chain.txs.iter().take(usize::from(len)) {
            match *tx {
                Tx::Loss { m, amount } => v.losses[usize::from(m)] += amount,
                Tx::Book { m, amount } => {
                    v.booked[usize::from(m)] += 1;
                    v.booked_amount[usize::from(m)] += amount;
                }
                Tx::Freeze { m } => v.frozen[usize::from(m)] = true,
                Tx::Lift { m } => v.frozen[usize::from(m)] = false,
                Tx::Register { d, epoch, .. } => {
                    let m = usize::from(d.m);
                    v.next_seq[m] = v.next_seq[m].max(d.seq + 1);
                    v.drawn[m][usize::from(d.seq)] = Some(d);
                    v.paid += d.home;
                    v.coverage[m] = usage_after(&v.coverage[m], epoch, d.amount());
                }
                Tx::Leg { d, epoch, .. } => {
                    let m = usize::from(d.m);
                    v.drawn[m][usize::from(d.seq)] = Some(d);
                    v.paid += d.remote;
                    v.coverage[m] = usage_after(&v.coverage[m], epoch, d.remote);
                }
            }
        }
        v
    }

    fn balance_left(&self, c: usize, v: &VaultView) -> u8 {
        self.cfg.balance[c].saturating_sub(v.paid)
    }

    /// Prices draw `(m, seq)` at `pin` as every honest view does (the allocation and the
    /// policy rules); `Err` names the refusal.
    pub fn price(&self, st: &State, m: u8, seq: u8, pin: &Pin) -> Result<Draw, &'static str> {
        let h = home_of(m);
        let r = remote_of(m);
        let hv = self.vault(&st.chains[h], pin.len[h]);
        let rv = self.vault(&st.chains[r], pin.len[r]);
        let mi = usize::from(m);
        if hv.frozen[mi] {
            return Err("member_frozen");
        }
        if hv.next_seq[mi] != seq {
            return Err("seq_mismatch");
        }
        if self.cfg.bug != Bug::BookingIgnored
            && booking::check(u64::from(seq), Some(u64::from(hv.booked[mi]))).is_err()
        {
            return Err("not_booked");
        }
        let gap = hv.gap(mi);
        if gap == 0 {
            return Err("no_gap");
        }
        let ignore_window = self.cfg.bug == Bug::WindowIgnored;
        let home_window = if ignore_window {
            u8::MAX
        } else {
            available(&hv.coverage[mi], pin.epoch, self.cfg.coverage_limit)
        };
        if home_window == 0 {
            return Err("window_exhausted");
        }
        let target = gap.min(self.cfg.cap).min(home_window);
        let home = target.min(self.balance_left(h, &hv));
        let remote_window = if ignore_window {
            u8::MAX
        } else {
            available(&rv.coverage[mi], pin.epoch, self.cfg.coverage_limit)
        };
        let remote = (target - home)
            .min(self.balance_left(r, &rv))
            .min(remote_window);
        if home + remote == 0 {
            return Err("nothing_coverable");
        }
        Ok(Draw {
            m,
            seq,
            gap,
            home,
            remote,
            deadline: pin.epoch.saturating_add(DEADLINE_EPOCHS),
        })
    }

    /// The pins of the current final heads.
    fn pin_now(&self, st: &State) -> Pin {
        Pin {
            len: [st.chains[0].fin, st.chains[1].fin],
            generation: [st.chains[0].generation, st.chains[1].generation],
            epoch: st.epoch,
        }
    }

    /// Whether a node can read the pinned blocks (final, and not replaced by a deep reorg).
    fn pin_readable(&self, st: &State, pin: &Pin) -> bool {
        (0..CHAINS).all(|c| {
            let ch = &st.chains[c];
            pin.len[c] <= ch.fin && (pin.generation[c] == ch.generation || pin.len[c] <= ch.floor)
        }) && pin.epoch <= st.epoch
    }

    /// The node-local rule: draw `seq > 0` only once this node closed `seq - 1`.
    fn previous_closed(node: &NodeState, m: u8, seq: u8) -> bool {
        seq == 0 || node.closed[usize::from(m)].is_some_and(|c| c + 1 >= seq)
    }

    /// How many signatures over `s` count, by the vault's rule.
    fn signer_count(&self, st: &State, s: &Subject) -> (usize, u8) {
        let mut mask = 0u8;
        let mut entries = 0usize;
        for (subject, signer, _) in st.sigs.range((*s, 0, 0)..=(*s, u8::MAX, u8::MAX)) {
            debug_assert_eq!(subject, s);
            entries += 1;
            mask |= 1 << signer;
        }
        mask &= self.guardians_mask();
        let counted = if self.cfg.bug == Bug::CountsDuplicateSigners {
            entries
        } else {
            bits(mask)
        };
        (counted, mask)
    }

    fn certified(&self, st: &State, s: &Subject) -> Option<u8> {
        let (count, mask) = self.signer_count(st, s);
        (count >= self.thresholds.t).then_some(mask)
    }

    // ------------------------------------------------------------ honest node steps

    /// Signs `d` for `(m, seq, attempt)` through the sign-guard; publishes it unless muted.
    fn guarded_sign(&self, st: &mut State, i: u8, attempt: u8, d: Draw, muted: bool) {
        let key = (d.m, d.seq, attempt);
        let node = &mut st.nodes[usize::from(i)];
        match node.guard.get(&key) {
            Some(recorded) if *recorded != d => return,
            Some(_) => {}
            None => {
                node.guard.insert(key, d);
            }
        }
        let gkey = (i, d.m, d.seq, attempt);
        match st.ghost.signed.get(&gkey) {
            Some(prev) if *prev != d => st.ghost.double_signed = true,
            Some(_) => {}
            None => {
                st.ghost.signed.insert(gkey, d);
            }
        }
        if !muted {
            st.sigs.insert((Subject::Draw(d), i, 0));
        }
    }

    /// `propose`: price at the current final heads and publish, then handle it as received.
    fn propose(&self, st: &mut State, i: u8, m: u8, seq: u8, attempt: u8) {
        let node = &st.nodes[usize::from(i)];
        if !Self::previous_closed(node, m, seq) {
            return;
        }
        let pin = self.pin_now(st);
        let Ok(d) = self.price(st, m, seq, &pin) else {
            return;
        };
        let p = Proposal {
            attempt,
            proposer: i,
            pin,
            d,
        };
        let pid = self.publish(st, p);
        self.on_proposal(st, i, pid, false);
    }

    fn publish(&self, st: &mut State, p: Proposal) -> u8 {
        if let Some(pid) = st.proposals.iter().position(|q| *q == p) {
            return pid as u8;
        }
        st.proposals.push(p);
        if let Some(b) = self.cfg.byzantine {
            // The byzantine node signs whatever it sees, as soon as it sees it: signing early
            // only enables more (submission is a separate step).
            st.sigs.insert((Subject::Draw(p.d), b, 0));
            st.sigs.insert((Subject::Leg(p.d), b, 0));
            if self.cfg.bug == Bug::CountsDuplicateSigners {
                st.sigs.insert((Subject::Draw(p.d), b, 1));
                st.sigs.insert((Subject::Leg(p.d), b, 1));
            }
        }
        (st.proposals.len() - 1) as u8
    }

    /// Whether node `i` recomputes `p`'s draw at its pins.
    fn validate(&self, st: &State, i: u8, p: &Proposal) -> bool {
        self.pin_readable(st, &p.pin)
            && Self::previous_closed(&st.nodes[usize::from(i)], p.d.m, p.d.seq)
            && self.price(st, p.d.m, p.d.seq, &p.pin) == Ok(p.d)
    }

    /// `on_proposal` of node `i` for proposal `pid`.
    fn on_proposal(&self, st: &mut State, i: u8, pid: u8, muted: bool) {
        let Some(p) = st.proposals.get(usize::from(pid)).copied() else {
            return;
        };
        st.nodes[usize::from(i)].heard |= 1 << pid;
        let (m, seq) = (p.d.m, p.d.seq);
        let mi = usize::from(m);
        if self.proposer_of(m, seq, p.attempt) != p.proposer {
            return;
        }
        let node = &st.nodes[usize::from(i)];
        let open = node.incidents[mi].as_ref().map(|inc| inc.seq);
        if node.closed[mi].is_some_and(|c| c >= seq)
            || open.is_some_and(|s| s > seq)
            || st.epoch > p.d.deadline
            || open.is_some_and(|s| s < seq)
        {
            return;
        }
        let mut validated = false;
        if open.is_none() {
            if !self.validate(st, i, &p) {
                return;
            }
            validated = true;
            st.nodes[usize::from(i)].incidents[mi] = Some(Incident {
                seq,
                attempt: p.attempt,
                proposals: BTreeMap::new(),
                reg: None,
            });
        }
        let Some(inc) = st.nodes[usize::from(i)].incidents[mi].as_ref() else {
            return;
        };
        if inc.reg.is_some() || inc.proposals.contains_key(&p.attempt) {
            return;
        }
        if !validated && !self.validate(st, i, &p) {
            return;
        }
        if let Some(inc) = st.nodes[usize::from(i)].incidents[mi].as_mut() {
            inc.proposals.insert(p.attempt, p.d);
            inc.attempt = inc.attempt.max(p.attempt);
        }
        self.guarded_sign(st, i, p.attempt, p.d, muted);
    }

    /// A node reads member `m` at the final heads: deep reorgs, registrations, legs, close,
    /// reconciliation, observation; proposes when it is its turn.
    fn step(&self, st: &mut State, i: u8, m: u8) {
        let mi = usize::from(m);
        let (h, r) = (home_of(m), remote_of(m));
        let release_at_head = self.cfg.bug == Bug::ReleaseBeforeFinal;
        let hlen = if release_at_head {
            st.chains[h].txs.len() as u8
        } else {
            st.chains[h].fin
        };
        let hv = self.vault(&st.chains[h], hlen);
        let rv = self.vault(&st.chains[r], st.chains[r].fin);
        let epoch = st.epoch;
        let new_draw_after_reorg = self.cfg.bug == Bug::NewDrawAfterDeepReorg;
        let mut propose_at: Option<(u8, u8)> = None;
        let mut sign_leg: Option<Draw> = None;
        {
            let node = &mut st.nodes[usize::from(i)];
            // A deep reorg took back an open incident's registration.
            if let Some(inc) = node.incidents[mi].as_mut()
                && let Some(reg) = inc.reg.as_mut()
                && reg.fin
                && hv.drawn[mi][usize::from(inc.seq)] != Some(reg.d)
            {
                if new_draw_after_reorg {
                    inc.reg = None;
                } else {
                    reg.fin = false;
                    reg.rewound = true;
                }
            }
            // ...or a covered incident's registration or leg: reopen it.
            if node.incidents[mi].is_none()
                && let Some(d) = node.recent[mi]
                && node.closed[mi] == Some(d.seq)
            {
                let reg_gone = hv.drawn[mi][usize::from(d.seq)] != Some(d);
                let leg_gone = d.remote > 0
                    && rv.drawn[mi][usize::from(d.seq)].is_none()
                    && epoch <= d.leg_deadline();
                let doable = if reg_gone {
                    epoch <= d.deadline
                } else {
                    epoch <= d.leg_deadline()
                };
                if (reg_gone || leg_gone) && doable {
                    node.recent[mi] = None;
                    node.closed[mi] = d.seq.checked_sub(1);
                    node.incidents[mi] = Some(Incident {
                        seq: d.seq,
                        attempt: 0,
                        proposals: BTreeMap::new(),
                        reg: if reg_gone && new_draw_after_reorg {
                            None
                        } else {
                            Some(Reg {
                                d,
                                fin: !reg_gone,
                                rewound: reg_gone,
                            })
                        },
                    });
                }
            }
            // Reconciliation: a registration this node missed (down, or restarted).
            if node.incidents[mi].is_none() {
                let next = hv.next_seq[mi];
                if next > 0
                    && node.closed[mi].is_none_or(|c| c + 1 < next)
                    && let Some(d) = hv.drawn[mi][usize::from(next - 1)]
                {
                    node.incidents[mi] = Some(Incident {
                        seq: next - 1,
                        attempt: 0,
                        proposals: BTreeMap::new(),
                        reg: None,
                    });
                    let _ = d;
                }
            }
            // The registration of the open incident.
            if let Some(inc) = node.incidents[mi].as_mut()
                && let Some(rd) = hv.drawn[mi][usize::from(inc.seq)]
            {
                match inc.reg.as_mut() {
                    Some(reg) if reg.d == rd => {
                        reg.fin = true;
                        reg.rewound = false;
                    }
                    Some(reg) if reg.fin => {}
                    _ => {
                        inc.reg = Some(Reg {
                            d: rd,
                            fin: true,
                            rewound: false,
                        })
                    }
                }
            }
            // Legs, and closing.
            if let Some(inc) = node.incidents[mi].as_ref()
                && let Some(reg) = inc.reg
                && reg.fin
            {
                let d = reg.d;
                let leg_paid = rv.drawn[mi][usize::from(d.seq)] == Some(d);
                if d.remote > 0 && !leg_paid && epoch <= d.leg_deadline() {
                    sign_leg = Some(d);
                }
                if d.remote == 0 || leg_paid || epoch > d.leg_deadline() {
                    node.incidents[mi] = None;
                    node.closed[mi] = Some(node.closed[mi].map_or(d.seq, |c| c.max(d.seq)));
                    node.recent[mi] = (epoch <= d.leg_deadline()).then_some(d);
                    sign_leg = None;
                }
            }
            // Observation: a gap opens the incident of `nextSeq`.
            if node.incidents[mi].is_none() && hv.gap(mi) > 0 {
                let seq = hv.next_seq[mi];
                if node.closed[mi].is_none_or(|c| c < seq) && usize::from(seq) <= MAX_SEQ {
                    node.incidents[mi] = Some(Incident {
                        seq,
                        attempt: 0,
                        proposals: BTreeMap::new(),
                        reg: None,
                    });
                }
            }
            // The proposer of the current attempt that has not proposed yet tries again.
            if let Some(inc) = node.incidents[mi].as_ref()
                && inc.reg.is_none()
                && !inc.proposals.contains_key(&inc.attempt)
                && self.proposer_of(m, inc.seq, inc.attempt) == i
            {
                propose_at = Some((inc.seq, inc.attempt));
            }
        }
        if let Some(d) = sign_leg {
            st.sigs.insert((Subject::Leg(d), i, 0));
        }
        if let Some((seq, attempt)) = propose_at {
            self.propose(st, i, m, seq, attempt);
        }
    }

    /// `time_out_attempts` for node `i`, member `m`.
    fn timeout(&self, st: &mut State, i: u8, m: u8) -> bool {
        let mi = usize::from(m);
        let epoch = st.epoch;
        let Some(inc) = st.nodes[usize::from(i)].incidents[mi].as_ref() else {
            return false;
        };
        if inc.reg.is_some() || inc.attempt >= self.cfg.max_attempt {
            return false;
        }
        if !self.cfg.eager_timeouts && !self.timeout_is_fair(st, i, m, inc) {
            return false;
        }
        let (seq, attempt) = (inc.seq, inc.attempt + 1);
        if let Some(inc) = st.nodes[usize::from(i)].incidents[mi].as_mut() {
            inc.attempt = attempt;
        }
        let _ = epoch;
        if self.proposer_of(m, seq, attempt) == i {
            self.propose(st, i, m, seq, attempt);
        }
        true
    }

    /// Under the fairness of the liveness check, an attempt times out only when it cannot
    /// succeed: its proposal here expired, or the proposer is byzantine or down, or what it
    /// proposed can no longer be verified (a deep reorg replaced its pinned blocks).
    fn timeout_is_fair(&self, st: &State, i: u8, m: u8, inc: &Incident) -> bool {
        let _ = i;
        if let Some(d) = inc.proposals.get(&inc.attempt) {
            return st.epoch > d.deadline;
        }
        let proposer = self.proposer_of(m, inc.seq, inc.attempt);
        if !self.honest(proposer) || !st.nodes[usize::from(proposer)].up {
            return true;
        }
        st.proposals.iter().any(|p| {
            p.proposer == proposer
                && p.d.m == m
                && p.d.seq == inc.seq
                && p.attempt == inc.attempt
                && (st.epoch > p.d.deadline || !self.pin_readable(st, &p.pin))
        })
    }

    /// The vault's answer to a submitted certificate: the transaction it appends.
    fn submit(&self, st: &mut State, s: Subject) -> bool {
        let Some(signers) = self.certified(st, &s) else {
            return false;
        };
        let epoch = st.epoch;
        let frozen_checked = self.cfg.bug != Bug::FrozenNotChecked;
        let window_checked = self.cfg.bug != Bug::WindowIgnored;
        let limit = self.cfg.coverage_limit;
        match s {
            Subject::Draw(d) => {
                let c = home_of(d.m);
                let mi = usize::from(d.m);
                let v = self.vault(&st.chains[c], st.chains[c].txs.len() as u8);
                let next = v.next_seq[mi];
                let seq_ok = if self.cfg.bug == Bug::NoOneDrawPerSeq {
                    d.seq <= next && v.drawn[mi][usize::from(d.seq)] != Some(d)
                } else {
                    d.seq == next
                };
                if epoch > d.deadline
                    || !seq_ok
                    || (frozen_checked && v.frozen[mi])
                    || d.amount() > d.gap
                    || d.amount() > self.cfg.cap
                    || (window_checked && d.amount() > available(&v.coverage[mi], epoch, limit))
                    || d.home > self.balance_left(c, &v)
                {
                    return false;
                }
                st.chains[c].txs.push(Tx::Register { d, signers, epoch });
                if st
                    .ghost
                    .registered
                    .iter()
                    .any(|e| e.m == d.m && e.seq == d.seq && *e == d)
                    && st.ghost.deep_reorg
                {
                    st.ghost.put_back = true;
                }
                st.ghost.registered.insert(d);
                true
            }
            Subject::Leg(d) => {
                let c = remote_of(d.m);
                let mi = usize::from(d.m);
                let v = self.vault(&st.chains[c], st.chains[c].txs.len() as u8);
                let already = match v.drawn[mi][usize::from(d.seq)] {
                    Some(e) if self.cfg.bug == Bug::NewDrawAfterDeepReorg => e == d,
                    Some(_) => true,
                    None => false,
                };
                if epoch > d.leg_deadline()
                    || already
                    || (frozen_checked && v.frozen[mi])
                    || d.remote == 0
                    || d.remote > self.cfg.cap
                    || (window_checked && d.remote > available(&v.coverage[mi], epoch, limit))
                    || d.remote > self.balance_left(c, &v)
                {
                    return false;
                }
                st.chains[c].txs.push(Tx::Leg { d, signers, epoch });
                true
            }
        }
    }

    fn note_final(&self, st: &mut State, c: usize) {
        let fin = usize::from(st.chains[c].fin);
        let newly: Vec<Draw> = st.chains[c]
            .txs
            .iter()
            .take(fin)
            .filter_map(|tx| match tx {
                Tx::Register { d, .. } => Some(*d),
                _ => None,
            })
            .collect();
        st.ghost.finalized.extend(newly);
    }

    /// Removes the protocol transactions at positions `from..` of chain `c` (the replacing
    /// blocks carry the environment's transactions again).
    fn reorg(st: &mut State, c: usize, from: usize) -> usize {
        let ch = &mut st.chains[c];
        let before = ch.txs.len();
        let fin = usize::from(ch.fin);
        let mut kept = Vec::with_capacity(before);
        let mut removed_final = 0;
        for (pos, tx) in ch.txs.iter().enumerate() {
            if pos >= from && tx.is_protocol() {
                if pos < fin {
                    removed_final += 1;
                }
                continue;
            }
            kept.push(*tx);
        }
        ch.txs = kept;
        ch.fin = (fin - removed_final) as u8;
        before - ch.txs.len()
    }

    fn settled_draw(&self, st: &State, m: u8) -> Option<(u8, u8)> {
        let (h, r) = (home_of(m), remote_of(m));
        let mi = usize::from(m);
        let hv = self.vault(&st.chains[h], st.chains[h].txs.len() as u8);
        let rv = self.vault(&st.chains[r], st.chains[r].txs.len() as u8);
        let seq = hv.booked[mi];
        let d = (*hv.drawn[mi].get(usize::from(seq))?)?;
        let leg_paid = rv.drawn[mi][usize::from(seq)] == Some(d);
        if d.remote == 0 || leg_paid {
            Some((seq, d.home + if leg_paid { d.remote } else { 0 }))
        } else if st.epoch > d.leg_deadline() {
            Some((seq, d.home))
        } else {
            None
        }
    }

    /// Whether a state has no successor.
    pub fn is_terminal(&self, st: &State) -> bool {
        let mut actions = Vec::new();
        self.actions(st, &mut actions);
        actions
            .into_iter()
            .all(|a| self.next_state(st, a).is_none())
    }

    /// Members with a coverable gap at the confirmed heads (what an honest proposer would
    /// price now).
    pub fn coverable_gaps(&self, st: &State) -> Vec<u8> {
        let pin = self.pin_now(st);
        (0..self.cfg.members)
            .filter(|&m| {
                let h = home_of(m);
                let hv = self.vault(&st.chains[h], st.chains[h].fin);
                self.price(st, m, hv.next_seq[usize::from(m)], &pin).is_ok()
            })
            .collect()
    }
}

impl Model for BackstopModel {
    type State = State;
    type Action = Action;

    fn init_states(&self) -> Vec<State> {
        let chain = ChainState {
            txs: Vec::new(),
            fin: 0,
            generation: 0,
            floor: u8::MAX,
        };
        vec![State {
            chains: [chain.clone(), chain],
            epoch: 0,
            losses_done: 0,
            nodes: [
                NodeState::new(),
                NodeState::new(),
                NodeState::new(),
                NodeState::new(),
            ],
            proposals: Vec::new(),
            sigs: BTreeSet::new(),
            budgets: Budgets {
                ticks: self.cfg.ticks,
                crashes: self.cfg.crashes,
                message_loss: self.cfg.message_loss,
                shallow: self.cfg.shallow_reorgs,
                deep: self.cfg.deep_reorgs,
                freezes: self.cfg.freezes,
                byzantine: self.cfg.byzantine_proposals,
            },
            ghost: Ghost::default(),
        }]
    }

    fn actions(&self, st: &State, actions: &mut Vec<Action>) {
        if usize::from(st.losses_done) < self.cfg.losses.len() {
            actions.push(Action::Loss);
        }
        for c in 0..CHAINS as u8 {
            let ch = &st.chains[usize::from(c)];
            if usize::from(ch.fin) < ch.txs.len() {
                actions.push(Action::Confirm(c));
                if st.budgets.shallow > 0 {
                    actions.push(Action::ShallowReorg(c));
                }
            }
            if st.budgets.deep > 0 {
                actions.push(Action::DeepReorg(c));
            }
        }
        if st.budgets.ticks > 0 {
            actions.push(Action::Tick);
        }
        for m in 0..self.cfg.members {
            if st.budgets.freezes > 0 {
                actions.push(Action::Freeze(m));
            }
            actions.push(Action::Lift(m));
            actions.push(Action::Book(m));
        }
        for i in 0..N as u8 {
            if !self.honest(i) {
                continue;
            }
            let node = &st.nodes[usize::from(i)];
            if !node.up {
                actions.push(Action::Restart(i));
                continue;
            }
            if st.budgets.crashes > 0 {
                actions.push(Action::Crash(i));
            }
            for m in 0..self.cfg.members {
                actions.push(Action::Step(i, m));
                actions.push(Action::Timeout(i, m));
            }
            for pid in 0..st.proposals.len() as u8 {
                actions.push(Action::Deliver(i, pid));
                if node.heard & (1 << pid) == 0 && st.budgets.message_loss > 0 {
                    actions.push(Action::Drop(i, pid));
                    actions.push(Action::DeliverMuted(i, pid));
                }
            }
        }
        let mut subjects: Vec<Subject> = st.sigs.iter().map(|(s, _, _)| *s).collect();
        subjects.dedup();
        for s in subjects {
            actions.push(Action::Submit(s));
        }
        if self.cfg.byzantine.is_some() && st.budgets.byzantine > 0 {
            for m in 0..self.cfg.members {
                actions.push(Action::ByzantinePropose(m, 0));
                actions.push(Action::ByzantinePropose(m, 1));
            }
        }
    }

    fn next_state(&self, last: &State, action: Action) -> Option<State> {
        let mut st = last.clone();
        match action {
            Action::Loss => {
                let (m, amount) = *self.cfg.losses.get(usize::from(st.losses_done))?;
                st.chains[home_of(m)].txs.push(Tx::Loss { m, amount });
                st.losses_done += 1;
            }
            Action::Confirm(c) => {
                let ch = &mut st.chains[usize::from(c)];
                ch.fin = ch.txs.len() as u8;
                self.note_final(&mut st, usize::from(c));
            }
            Action::ShallowReorg(c) => {
                let from = usize::from(st.chains[usize::from(c)].fin);
                if Self::reorg(&mut st, usize::from(c), from) == 0 {
                    return None;
                }
                st.budgets.shallow -= 1;
            }
            Action::DeepReorg(c) => {
                let ci = usize::from(c);
                let fin = usize::from(st.chains[ci].fin);
                let from = st.chains[ci]
                    .txs
                    .iter()
                    .take(fin)
                    .rposition(Tx::is_protocol)?;
                Self::reorg(&mut st, ci, from);
                let ch = &mut st.chains[ci];
                ch.generation += 1;
                ch.floor = ch.floor.min(from as u8);
                st.budgets.deep -= 1;
                st.ghost.deep_reorg = true;
            }
            Action::Tick => {
                st.epoch += 1;
                st.budgets.ticks -= 1;
            }
            Action::Freeze(m) => {
                let v = self.vault(
                    &st.chains[home_of(m)],
                    st.chains[home_of(m)].txs.len() as u8,
                );
                if v.frozen[usize::from(m)] {
                    return None;
                }
                for ch in st.chains.iter_mut() {
                    ch.txs.push(Tx::Freeze { m });
                }
                st.budgets.freezes -= 1;
                st.ghost.frozen = true;
            }
            Action::Lift(m) => {
                let v = self.vault(
                    &st.chains[home_of(m)],
                    st.chains[home_of(m)].txs.len() as u8,
                );
                if !v.frozen[usize::from(m)] {
                    return None;
                }
                for ch in st.chains.iter_mut() {
                    ch.txs.push(Tx::Lift { m });
                }
            }
            Action::Book(m) => {
                let (_, amount) = self.settled_draw(&st, m)?;
                st.chains[home_of(m)].txs.push(Tx::Book { m, amount });
            }
            Action::Crash(i) => {
                let node = &mut st.nodes[usize::from(i)];
                node.up = false;
                st.budgets.crashes -= 1;
                st.ghost.crashed = true;
            }
            Action::Restart(i) => {
                let heard_all = (1u32 << st.proposals.len()) - 1;
                let node = &mut st.nodes[usize::from(i)];
                let guard = if self.cfg.bug == Bug::GuardVolatile {
                    BTreeMap::new()
                } else {
                    std::mem::take(&mut node.guard)
                };
                *node = NodeState::new();
                node.guard = guard;
                // Gossip sent while it was down is gone.
                node.heard = heard_all;
            }
            Action::Step(i, m) => self.step(&mut st, i, m),
            Action::Deliver(i, pid) => self.on_proposal(&mut st, i, pid, false),
            Action::Drop(i, pid) => {
                st.nodes[usize::from(i)].heard |= 1 << pid;
                st.budgets.message_loss -= 1;
            }
            Action::DeliverMuted(i, pid) => {
                self.on_proposal(&mut st, i, pid, true);
                st.budgets.message_loss -= 1;
            }
            Action::Timeout(i, m) => {
                if !self.timeout(&mut st, i, m) {
                    return None;
                }
            }
            Action::Submit(s) => {
                if !self.submit(&mut st, s) {
                    return None;
                }
            }
            Action::ByzantinePropose(m, variant) => {
                let b = self.cfg.byzantine?;
                let h = home_of(m);
                let hv = self.vault(&st.chains[h], st.chains[h].fin);
                let seq = hv.next_seq[usize::from(m)];
                // Its turn: the first attempt it proposes for with fewer than two proposals.
                let attempt = (0..=self.cfg.max_attempt).find(|&a| {
                    self.proposer_of(m, seq, a) == b
                        && st
                            .proposals
                            .iter()
                            .filter(|p| {
                                p.proposer == b && p.d.m == m && p.d.seq == seq && p.attempt == a
                            })
                            .count()
                            < 2
                })?;
                let mut pin = self.pin_now(&st);
                if variant == 1 {
                    pin.epoch = pin.epoch.checked_sub(1)?;
                }
                let d = self.price(&st, m, seq, &pin).ok()?;
                let p = Proposal {
                    attempt,
                    proposer: b,
                    pin,
                    d,
                };
                if st.proposals.contains(&p) || st.proposals.len() >= 31 {
                    return None;
                }
                self.publish(&mut st, p);
                st.budgets.byzantine -= 1;
            }
        }
        (st != *last).then_some(st)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::always("no over-coverage per incident", |_: &Self, st: &State| {
                over_coverage_per_incident(st).is_none()
            }),
            Property::always(
                "no over-coverage of a member's losses",
                |m: &Self, st: &State| {
                    (0..MEMBERS as u8).all(|mm| paid_to(st, mm) <= m.total_losses(st, mm))
                },
            ),
            Property::always("coverage window per vault", |m: &Self, st: &State| {
                window_violation(m, st).is_none()
            }),
            Property::always(
                "at most one draw per (member, seq)",
                |_: &Self, st: &State| one_draw_per_seq(st),
            ),
            Property::always(
                "each leg paid once, for a registered draw",
                |_: &Self, st: &State| legs_once_and_registered(st),
            ),
            Property::always(
                "no payout without t distinct current guardians",
                |m: &Self, st: &State| {
                    st.chains
                        .iter()
                        .flat_map(|c| c.txs.iter())
                        .all(|tx| match tx {
                            Tx::Register { signers, .. } | Tx::Leg { signers, .. } => {
                                bits(*signers & m.guardians_mask()) >= m.thresholds.t
                            }
                            _ => true,
                        })
                },
            ),
            Property::always(
                "no double signature by an honest node",
                |_: &Self, st: &State| !st.ghost.double_signed,
            ),
            Property::always("a frozen member is paid nothing", |_: &Self, st: &State| {
                frozen_paid(st).is_none()
            }),
            Property::always(
                "terminal states leave no coverable gap",
                |m: &Self, st: &State| {
                    !m.cfg.liveness
                        || usize::from(st.losses_done) < m.cfg.losses.len()
                        || st.chains.iter().any(|c| usize::from(c.fin) < c.txs.len())
                        || m.coverable_gaps(st).is_empty()
                        || !m.is_terminal(st)
                },
            ),
            Property::eventually(
                "every coverable gap is eventually covered",
                |m: &Self, st: &State| {
                    !m.cfg.liveness
                        || (usize::from(st.losses_done) == m.cfg.losses.len()
                            && m.coverable_gaps(st).is_empty()
                            && st.chains.iter().all(|c| usize::from(c.fin) == c.txs.len()))
                },
            ),
            Property::sometimes("a remote leg is paid", |_: &Self, st: &State| {
                st.chains
                    .iter()
                    .any(|c| c.txs.iter().any(|tx| matches!(tx, Tx::Leg { .. })))
            }),
            Property::sometimes(
                "a second draw of a member is registered",
                |_: &Self, st: &State| st.ghost.registered.iter().any(|d| d.seq > 0),
            ),
            Property::sometimes("a deep reorg happens", |_: &Self, st: &State| {
                st.ghost.deep_reorg
            }),
            Property::sometimes(
                "a draw is put back after a deep reorg",
                |_: &Self, st: &State| st.ghost.put_back,
            ),
            Property::sometimes("a node crashes", |_: &Self, st: &State| st.ghost.crashed),
            Property::sometimes("a member is frozen", |_: &Self, st: &State| st.ghost.frozen),
        ]
    }
}

impl BackstopModel {
    /// Losses of member `m` so far.
    pub fn total_losses(&self, st: &State, m: u8) -> u8 {
        self.cfg
            .losses
            .iter()
            .take(usize::from(st.losses_done))
            .filter(|(mm, _)| *mm == m)
            .map(|(_, a)| *a)
            .sum()
    }
}

/// Everything the vaults paid member `m` (home legs and remote legs on every chain).
pub fn paid_to(st: &State, m: u8) -> u8 {
    st.chains
        .iter()
        .flat_map(|c| c.txs.iter())
        .map(|tx| match tx {
            Tx::Register { d, .. } if d.m == m => d.home,
            Tx::Leg { d, .. } if d.m == m => d.remote,
            _ => 0,
        })
        .sum()
}

/// An incident `(member, seq)` whose paid legs belong to different draws or exceed the draw.
pub fn over_coverage_per_incident(st: &State) -> Option<(u8, u8)> {
    let mut legs: BTreeMap<(u8, u8), Vec<(Draw, u8)>> = BTreeMap::new();
    for tx in st.chains.iter().flat_map(|c| c.txs.iter()) {
        match tx {
            Tx::Register { d, .. } => legs.entry((d.m, d.seq)).or_default().push((*d, d.home)),
            Tx::Leg { d, .. } => legs.entry((d.m, d.seq)).or_default().push((*d, d.remote)),
            _ => {}
        }
    }
    legs.into_iter()
        .find(|(_, paid)| {
            let total: u8 = paid.iter().map(|(_, a)| *a).sum();
            let first = paid[0].0;
            paid.iter().any(|(d, _)| *d != first) || total > first.amount() || total > first.gap
        })
        .map(|(k, _)| k)
}

/// A vault, member and epoch where the payments of two consecutive epochs exceed the limit.
pub fn window_violation(model: &BackstopModel, st: &State) -> Option<(usize, u8, u8)> {
    for (c, ch) in st.chains.iter().enumerate() {
        for m in 0..MEMBERS as u8 {
            let mut per_epoch: BTreeMap<u8, u16> = BTreeMap::new();
            for tx in &ch.txs {
                match tx {
                    Tx::Register { d, epoch, .. } if d.m == m => {
                        *per_epoch.entry(*epoch).or_default() += u16::from(d.amount())
                    }
                    Tx::Leg { d, epoch, .. } if d.m == m => {
                        *per_epoch.entry(*epoch).or_default() += u16::from(d.remote)
                    }
                    _ => {}
                }
            }
            for (&e, &amount) in &per_epoch {
                let previous = e
                    .checked_sub(1)
                    .and_then(|p| per_epoch.get(&p))
                    .copied()
                    .unwrap_or(0);
                if amount + previous > u16::from(model.cfg.coverage_limit) {
                    return Some((c, m, e));
                }
            }
        }
    }
    None
}

/// At most one draw per `(member, seq)` registered, ever (across reorgs) and on each chain.
pub fn one_draw_per_seq(st: &State) -> bool {
    let mut seen: BTreeMap<(u8, u8), Draw> = BTreeMap::new();
    st.ghost
        .registered
        .iter()
        .all(|d| *seen.entry((d.m, d.seq)).or_insert(*d) == *d)
}

/// Each remote vault pays at most one leg per `(member, seq)`, only for a draw whose
/// registration was final.
pub fn legs_once_and_registered(st: &State) -> bool {
    st.chains.iter().all(|ch| {
        let mut seen = BTreeSet::new();
        ch.txs.iter().all(|tx| match tx {
            Tx::Leg { d, .. } => st.ghost.finalized.contains(d) && seen.insert((d.m, d.seq)),
            _ => true,
        })
    })
}

/// A payment to a member frozen on the paying vault at that point: `(chain, position)`.
pub fn frozen_paid(st: &State) -> Option<(usize, usize)> {
    for (c, ch) in st.chains.iter().enumerate() {
        let mut frozen = [false; MEMBERS];
        for (pos, tx) in ch.txs.iter().enumerate() {
            match tx {
                Tx::Freeze { m } => frozen[usize::from(*m)] = true,
                Tx::Lift { m } => frozen[usize::from(*m)] = false,
                Tx::Register { d, .. } | Tx::Leg { d, .. } if frozen[usize::from(d.m)] => {
                    return Some((c, pos));
                }
                _ => {}
            }
        }
    }
    None
}
