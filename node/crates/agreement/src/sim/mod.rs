//! Deterministic simulation of a consortium: real state machines, real secp256k1 signing
//! and verification, real node stores (any [`Disk`]: in memory by default, RocksDB in
//! `backstop-store`'s tests), on a simulated network and simulated chains, all driven by one
//! seeded generator and a virtual clock.
//!
//! One seed fixes everything: 4 to 10 nodes, up to f byzantine ones (equivocating proposer,
//! garbage attestations, withheld messages, replays of old messages), crashes and restarts
//! of honest nodes from their stores, message delay, loss, duplication, reordering and
//! partitions until a heal time, 2 or 3 chains, 1 or 2 members with losses, threshold
//! actions (approved ones requested at one honest node; unapproved ones pushed by byzantine
//! nodes), and a script of operator steps at the heal for the kinds of node that define one
//! ([`node::SimInput::Operator`]). Each member books its payouts at once, late, partly, never, or lies
//! ([`chain::Booking`]): with its gap it declares the draws its books include (`bookedDraws()`,
//! [`chain::World::booked_draws`]); an honest member declares a draw once each of its legs is
//! paid and shown in full or expired unpaid, a liar every draw as soon as it is registered;
//! about 1 member in 16 has no such view. Each vault bounds what it pays a member within a
//! coverage window (a limit below the per-incident cap, the cap, or 0). The nodes' views
//! price a draw `seq > 0` only if the declaration at its pinned home block passes
//! [`crate::booking::check`], from the gap reported there; they keep nothing node-local.
//!
//! Checked on every run ([`run`] returns a [`SimFailure`] otherwise):
//! - no honest node emits two signatures over different digests for one sign-guard key
//!   (draw `(member, seq, attempt)`, leg `(draw hash, vault)`, action `(vault, id)`);
//! - at most one registered draw per `(member, seq)`; every paid remote leg is a leg of a
//!   registered draw with that amount; paid per draw ≤ its amount ≤ its gap and the cap;
//! - (a) no vault counts (so pays) any member, liars included, more than its coverage limit
//!   within any closed interval of its coverage window's length;
//! - (b) no draw `seq > 0` is registered unless the member's declaration at the draw's
//!   pinned home block was at least `seq`;
//! - (c) no over-coverage of an honest member: at every time, what the vaults paid it is at
//!   most its losses so far; every draw of an honest member is priced net of earlier
//!   payouts (its amount ≤ the losses at its pinned home block − everything its earlier
//!   draws paid, ever); a member whose books never show a payout in full (partial, never)
//!   or without the view is paid by one draw at most, its last; a liar may be paid beyond
//!   its losses, but only within (a);
//! - no unapproved threshold action is executed;
//! - after the heal time (network whole, crashed nodes restarted, t honest nodes connected),
//!   within [`LIVENESS_BOUND_MS`]: every approved action is executed; no honest member can
//!   be paid more by the booking rule (with a nonzero coverage limit); an honest member
//!   with the view whose books show every payout (at once or late) has booked them all and
//!   has no loss left unpaid; a partial, never or view-less member left with a gap has its
//!   next draw refused as not booked by some view; every honest node has closed every
//!   incident, except one with no draw for an honest member the booking rule or a zero
//!   coverage limit leaves unpaid (its gap stays, so the incident stays open), and any
//!   incident of a liar (it may be paid again as long as its windows allow).
//!
//! The trace hash is the keccak of the ordered log of processed events; the same seed gives
//! the same hash.

pub mod chain;
pub mod node;
pub mod rng;

use crate::codec::Writer;
use crate::kv::{Kv, KvError, MemoryKv};
use crate::machine::{Config, Output, SignatureCheck};
use crate::state::{GuardKey, NodeStore};
use crate::types::{
    ActionAttestation, Certificate, Consortium, DrawAttestation, DrawProposal, IncidentKey,
    LegAttestation, Message, NodeIndex, NodeInfo, PinnedBlock, ThresholdAction,
};
use alloy::primitives::{Address, B256, Keccak256, U256, keccak256};
use alloy::signers::local::PrivateKeySigner;
use backstop_contracts::eip712::{
    ClearAlert, FreezeMember, LegRelease, RaiseAlert, Signable, UnfreezeMember, VaultId,
    sign_digest,
};
use chain::{Booking, DUST, Fact, SimChain, SimMember, World, WorldRef};
use node::{Ctx, MachineNode, SetupArgs, SimInput, SimNode};
use rng::Rng;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::sync::{Arc, Mutex};

/// Virtual time allowed after the heal for everything to settle.
pub const LIVENESS_BOUND_MS: u64 = 600_000;
/// Tick period of every node.
pub const TICK_MS: u64 = 500;

/// Where simulated nodes keep their stores; reopened after a crash.
pub trait Disk {
    /// The store backend.
    type Kv: Kv;
    /// Opens node `node`'s store (the previous handle has been dropped).
    fn open(&mut self, node: usize) -> Result<Self::Kv, KvError>;
    /// Writes crashes lost so far (none where a crash keeps every write).
    fn lost_writes(&self) -> u64 {
        0
    }
}

/// Stores in memory; a crash keeps them (they model the disk).
#[derive(Default, Debug)]
pub struct MemoryDisk {
    kvs: BTreeMap<usize, MemoryKv>,
}

impl Disk for MemoryDisk {
    type Kv = MemoryKv;
    fn open(&mut self, node: usize) -> Result<MemoryKv, KvError> {
        Ok(self.kvs.entry(node).or_default().clone())
    }
}

/// Stores in memory that lose, at a crash, every write not made durable: an unsynced write
/// reaches "the disk" only with the next synced one (a power cut, not a process exit). What
/// the sign-guard records before a signature leaves is synced, so no crash may let a node
/// sign a second digest for one key.
#[derive(Default, Debug)]
pub struct LossyDisk {
    disks: BTreeMap<usize, Arc<Mutex<LossyInner>>>,
}

#[derive(Default, Debug)]
struct LossyInner {
    durable: MemoryKv,
    pending: Vec<crate::kv::WriteBatch>,
    lost: u64,
}

/// A node's handle on a [`LossyDisk`]: reads see every write, the disk keeps the synced
/// ones and those before them.
#[derive(Debug)]
pub struct LossyKv {
    live: MemoryKv,
    disk: Arc<Mutex<LossyInner>>,
}

impl Kv for LossyKv {
    fn get(&self, cf: crate::kv::Cf, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        self.live.get(cf, key)
    }

    fn write(&mut self, batch: crate::kv::WriteBatch, sync: bool) -> Result<(), KvError> {
        self.live.write(batch.clone(), sync)?;
        let mut disk = self
            .disk
            .lock()
            .map_err(|_| KvError("lossy disk lock poisoned".into()))?;
        disk.pending.push(batch);
        if sync {
            let pending = std::mem::take(&mut disk.pending);
            for b in pending {
                disk.durable.write(b, true)?;
            }
        }
        Ok(())
    }

    fn scan_prefix(
        &self,
        cf: crate::kv::Cf,
        prefix: &[u8],
        order: crate::kv::Order,
        limit: usize,
    ) -> Result<crate::kv::Entries, KvError> {
        self.live.scan_prefix(cf, prefix, order, limit)
    }
}

impl Disk for LossyDisk {
    type Kv = LossyKv;

    fn lost_writes(&self) -> u64 {
        self.disks
            .values()
            .filter_map(|d| d.lock().ok().map(|d| d.lost))
            .sum()
    }

    fn open(&mut self, node: usize) -> Result<LossyKv, KvError> {
        let disk = self.disks.entry(node).or_default().clone();
        let mut inner = disk
            .lock()
            .map_err(|_| KvError("lossy disk lock poisoned".into()))?;
        // The crash lost what was not synced; the process starts from what the disk kept.
        inner.lost += inner.pending.len() as u64;
        inner.pending.clear();
        let mut copy = crate::kv::WriteBatch::default();
        for cf in crate::kv::Cf::ALL {
            for (k, v) in inner.durable.scan(cf)? {
                copy.put(cf, k, v);
            }
        }
        let mut live = MemoryKv::new();
        live.write(copy, true)?;
        drop(inner);
        Ok(LossyKv { live, disk })
    }
}

/// secp256k1 verification memoized for one run: every node of the simulation verifies the
/// same signatures; each distinct (digest, signer, signature) is recovered once.
#[derive(Default)]
pub struct MemoCheck {
    seen: std::sync::Mutex<std::collections::HashMap<MemoKey, bool>>,
}

type MemoKey = (B256, Address, [u8; 65]);

impl SignatureCheck for MemoCheck {
    fn check(&self, sig: &backstop_contracts::eip712::GuardianSignature, digest: B256) -> bool {
        let key = (digest, sig.signer, sig.signature.as_bytes());
        let Ok(mut seen) = self.seen.lock() else {
            return sig.verify(digest).is_ok();
        };
        *seen
            .entry(key)
            .or_insert_with(|| sig.verify(digest).is_ok())
    }
}

/// Why a run failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("seed={seed}: {reason}")]
pub struct SimFailure {
    /// The seed.
    pub seed: u64,
    /// What was violated.
    pub reason: String,
}

/// Summary of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimReport {
    /// The seed.
    pub seed: u64,
    /// Nodes.
    pub n: usize,
    /// Byzantine nodes.
    pub byzantine: usize,
    /// Crashes of honest nodes.
    pub crashes: usize,
    /// Store writes the crashes lost (not synced yet).
    pub lost_writes: u64,
    /// What the kind of node counts of its run ([`node::SimNode::tally`]).
    pub tally: Vec<(&'static str, u64)>,
    /// Keccak of the ordered event log.
    pub trace_hash: B256,
    /// Events processed.
    pub events: u64,
    /// Draws registered.
    pub registered: usize,
    /// Remote legs paid.
    pub legs_paid: usize,
    /// Threshold actions executed.
    pub actions_executed: usize,
    /// Transactions applied.
    pub txs_applied: usize,
    /// Transactions reverted (duplicates of an applied one, mostly).
    pub txs_reverted: usize,
    /// Virtual time when the run settled (ms).
    pub settled_at: u64,
    /// Heal time (ms).
    pub heal_at: u64,
    /// Members by booking behaviour: instant, late, partial, never, false (liars).
    pub bookings: [usize; 5],
    /// Members without the `bookedDraws()` view (covered once).
    pub no_view_members: usize,
    /// Members with a zero coverage limit (nothing coverable).
    pub zero_window_members: usize,
    /// `(member, seq)` some view refused because the books at the pinned home block did not
    /// declare the previous draw booked.
    pub refused_not_booked: usize,
    /// `(member, seq)` some view refused because the coverage window left was zero.
    pub refused_window: usize,
    /// `(member, seq)` refused as not booked, then registered (the books caught up).
    pub refused_then_registered: usize,
    /// Members that cannot declare what they were paid (partial, never, no view), were paid
    /// by a draw, and then had their next draw refused as not booked.
    pub stopped_then_refused: usize,
    /// Registered draws `seq > 0` of honest members after a loss that arrived since the
    /// previous draw's pinned block (the case the gap alone cannot tell from a partial
    /// booking).
    pub new_loss_draws: usize,
    /// Registered draws whose amount or a leg a coverage window bounded.
    pub window_limited: usize,
    /// Transactions a coverage window reverted (`CoverageExceeded`).
    pub window_reverts: usize,
    /// Draws registered for liars.
    pub liar_draws: usize,
    /// What the vaults paid liars, in all.
    pub liar_paid: u64,
    /// The liars' losses, in all.
    pub liar_losses: u64,
    /// Liars paid beyond their losses.
    pub liars_over_losses: usize,
    /// The most any vault counted for a liar within one window interval, basis points of its
    /// coverage limit (at most 10,000 by invariant (a)).
    pub liar_peak_window_bps: u64,
    /// Liars (with a nonzero limit) that some vault counted their whole limit within one
    /// window interval: the window, not the rule, stopped them.
    pub liars_at_limit: usize,
}

#[derive(Debug)]
enum Ev {
    Deliver {
        to: usize,
        from: usize,
        msg: Message,
    },
    Tick {
        node: usize,
    },
    Crash {
        node: usize,
    },
    Restart {
        node: usize,
    },
    Include {
        cert: Certificate,
    },
    Request {
        node: usize,
        vault: VaultId,
        action: ThresholdAction,
    },
    Operator {
        node: usize,
        step: u8,
    },
    Noise {
        node: usize,
    },
    Check,
}

struct Byz {
    withhold_permille: u64,
    equivocate: bool,
    garbage: bool,
    replay: bool,
    recorded: Vec<Message>,
}

struct Node<N> {
    key: PrivateKeySigner,
    /// `None` while crashed.
    machine: Option<N>,
    byz: Option<Byz>,
}

struct Net {
    loss: u64,
    dup: u64,
    delay_max: u64,
    /// (from, until, group of each node).
    partitions: Vec<(u64, u64, Vec<bool>)>,
}

struct Sim<D: Disk, N> {
    seed: u64,
    rng: Rng,
    now: u64,
    heal_at: u64,
    queue: BTreeMap<(u64, u64), Ev>,
    next_seq: u64,
    world: WorldRef,
    consortium: Consortium,
    order: Vec<usize>,
    nodes: Vec<Node<N>>,
    disk: D,
    net: Net,
    trace: Keccak256,
    events: u64,
    signed: BTreeMap<(Address, GuardKey), B256>,
    crashes: usize,
    checker: std::sync::Arc<MemoCheck>,
}

fn fail(seed: u64, reason: impl Into<String>) -> SimFailure {
    SimFailure {
        seed,
        reason: reason.into(),
    }
}

/// Runs seeds `first..first + count` on `threads` threads (each seed is independent and
/// deterministic); returns the reports and the failures, each ordered by seed.
pub fn run_many(first: u64, count: u64, threads: usize) -> (Vec<SimReport>, Vec<SimFailure>) {
    run_many_with(first, count, threads, run)
}

/// [`run_many`] with any runner of one seed (the node crate's whole-node simulation uses
/// it).
pub fn run_many_with(
    first: u64,
    count: u64,
    threads: usize,
    run: impl Fn(u64) -> Result<SimReport, SimFailure> + Sync,
) -> (Vec<SimReport>, Vec<SimFailure>) {
    let next = std::sync::atomic::AtomicU64::new(first);
    let results = std::sync::Mutex::new((Vec::new(), Vec::new()));
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| {
                loop {
                    let seed = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if seed >= first + count {
                        break;
                    }
                    let r = run(seed);
                    if let Ok(mut all) = results.lock() {
                        match r {
                            Ok(rep) => all.0.push(rep),
                            Err(e) => all.1.push(e),
                        }
                    }
                }
            });
        }
    });
    let (mut ok, mut failed) = results.into_inner().unwrap_or_default();
    ok.sort_by_key(|r: &SimReport| r.seed);
    failed.sort_by_key(|f: &SimFailure| f.seed);
    (ok, failed)
}

/// Runs `seed` with in-memory stores.
pub fn run(seed: u64) -> Result<SimReport, SimFailure> {
    run_on(seed, MemoryDisk::default())
}

/// Runs `seed` with the stores of `disk`.
pub fn run_on<D: Disk>(seed: u64, disk: D) -> Result<SimReport, SimFailure> {
    run_nodes::<D, MachineNode<D::Kv>>(seed, disk)
}

/// Runs `seed` with nodes of kind `N` over the stores of `disk`.
pub fn run_nodes<D: Disk, N: SimNode<Kv = D::Kv>>(
    seed: u64,
    disk: D,
) -> Result<SimReport, SimFailure> {
    let mut sim = Sim::<D, N>::new(seed, disk)?;
    sim.run()
}

impl<D: Disk, N: SimNode<Kv = D::Kv>> Sim<D, N> {
    fn new(seed: u64, disk: D) -> Result<Self, SimFailure> {
        let mut rng = Rng::new(seed);
        let n = rng.range(4, 10) as usize;
        let keys: Vec<PrivateKeySigner> = (0..n)
            .map(|i| {
                let mut buf = [0u8; 16];
                buf[..8].copy_from_slice(&seed.to_le_bytes());
                buf[8..].copy_from_slice(&(i as u64).to_le_bytes());
                PrivateKeySigner::from_bytes(&keccak256(buf))
                    .map_err(|e| fail(seed, format!("key: {e}")))
            })
            .collect::<Result<_, _>>()?;
        let infos: Vec<NodeInfo> = keys
            .iter()
            .map(|k| NodeInfo {
                identity: ed25519_dalek::SigningKey::from_bytes(&keccak256(k.address()).0)
                    .verifying_key()
                    .to_bytes(),
                guardian: k.address(),
            })
            .collect();
        let consortium =
            Consortium::new(infos.clone()).map_err(|e| fail(seed, format!("consortium: {e}")))?;
        // Node i of the simulation is at index order[i] of the sorted consortium.
        let order: Vec<usize> = infos
            .iter()
            .map(|i| usize::from(consortium.index_of_guardian(&i.guardian).unwrap_or(0)))
            .collect();
        let f = consortium.f();
        let byz_count = rng.range(0, f as u64) as usize;
        let mut byz_nodes = BTreeSet::new();
        while byz_nodes.len() < byz_count {
            byz_nodes.insert(rng.range(0, n as u64 - 1) as usize);
        }

        let chain_count = rng.range(2, 3) as usize;
        let mut chains = Vec::new();
        for c in 0..chain_count {
            chains.push(SimChain {
                vault: VaultId {
                    chain_id: 100 + c as u64,
                    address: Address::from_word(keccak256([c as u8, 0xaa])),
                },
                // Often too small for a draw alone, so remote legs are exercised.
                balance0: U256::from(rng.range(5_000, 150_000)),
                payouts: Vec::new(),
                coverage: BTreeMap::new(),
                registered: BTreeMap::new(),
                leg_paid: BTreeMap::new(),
                actions: BTreeMap::new(),
                rotations: Vec::new(),
            });
        }
        let heal_at = rng.range(10_000, 40_000);
        let member_count = rng.range(1, 2) as usize;
        let mut members = Vec::new();
        let cap = 1_000_000u64;
        for i in 0..member_count {
            let shocks: Vec<(u64, U256)> = (0..rng.range(1, 3))
                .map(|_| {
                    (
                        rng.range(3_000, heal_at.saturating_sub(2_000)),
                        U256::from(rng.range(1_000, 100_000)),
                    )
                })
                .collect();
            let home = rng.range(0, chain_count as u64 - 1) as usize;
            let booking = match rng.range(0, 19) {
                0..=7 => Booking::Instant,
                // Longer than the machine's settle time (3 s).
                8..=11 => Booking::Late {
                    delay_ms: rng.range(3_500, 25_000),
                },
                12..=14 => Booking::Partial {
                    bps: rng.range(1_000, 9_000),
                },
                15..=16 => Booking::Never,
                _ => Booking::False,
            };
            // A liar declares; about 1 honest member in 16 has no `bookedDraws()` view.
            let declares = !booking.honest() || rng.range(0, 15) != 0;
            let lost: u64 = shocks.iter().map(|(_, a)| a.to::<u64>()).sum();
            let coverage_limit = match rng.range(0, 9) {
                0 => 0,
                // Below the cap and often below one loss: several draws, or one limited draw.
                1..=4 => rng.range(lost / 5 + 1, lost),
                _ => cap,
            };
            members.push(SimMember {
                id: keccak256([i as u8, 0xbb]),
                home,
                cap: U256::from(cap),
                shocks,
                booking,
                declares,
                coverage_limit: U256::from(coverage_limit),
                coverage_window_s: rng.range(4, 20),
            });
        }
        // Enough in the pool overall to cover every honest member's losses twice, and on top
        // of it what the liars' windows let them take until the run's last possible payment
        // (each window interval at most the limit, on each vault).
        let horizon_s = (heal_at + LIVENESS_BOUND_MS) / 1000 + 120;
        let losses: u64 = members
            .iter()
            .filter(|m| m.booking.honest())
            .flat_map(|m| m.shocks.iter())
            .map(|(_, a)| a.to::<u64>())
            .sum();
        let liars: u64 = members
            .iter()
            .filter(|m| !m.booking.honest())
            .map(|m| {
                let per_vault =
                    m.coverage_limit.to::<u64>() * (horizon_s / m.coverage_window_s.max(1) + 2);
                per_vault * chain_count as u64
            })
            .sum();
        let pool: u64 = chains.iter().map(|c| c.balance0.to::<u64>()).sum();
        if pool < 2 * losses + liars {
            let c = rng.range(0, chain_count as u64 - 1) as usize;
            chains[c].balance0 += U256::from(2 * losses + liars - pool);
        }
        let world = World {
            block_ms: 1_000,
            depth: 2,
            seed,
            chains,
            members,
            guardians: keys.iter().map(|k| k.address()).collect(),
            threshold: consortium.t(),
            pause_threshold: consortium.p(),
            approved: BTreeMap::new(),
            requested: BTreeSet::new(),
            facts: Vec::new(),
            txs: Vec::new(),
            notes: chain::ViewNotes::default(),
        };
        let world = Rc::new(RefCell::new(world));

        let mut partitions = Vec::new();
        for _ in 0..rng.range(0, 2) {
            let from = rng.range(0, heal_at.saturating_sub(3_000));
            let until = (from + rng.range(2_000, 15_000)).min(heal_at);
            let groups = (0..n).map(|_| rng.chance(500)).collect();
            partitions.push((from, until, groups));
        }
        let net = Net {
            loss: rng.range(0, 200),
            dup: rng.range(0, 100),
            delay_max: rng.range(20, 400),
            partitions,
        };

        let mut nodes = Vec::new();
        for (i, key) in keys.into_iter().enumerate() {
            let byz = byz_nodes.contains(&i).then(|| Byz {
                withhold_permille: if rng.chance(500) {
                    1000
                } else {
                    rng.range(0, 700)
                },
                equivocate: rng.chance(700),
                garbage: rng.chance(700),
                replay: rng.chance(700),
                recorded: Vec::new(),
            });
            nodes.push(Node {
                key,
                machine: None,
                byz,
            });
        }
        let mut sim = Self {
            seed,
            rng,
            now: 0,
            heal_at,
            queue: BTreeMap::new(),
            next_seq: 0,
            world,
            consortium,
            order,
            nodes,
            disk,
            net,
            trace: Keccak256::new(),
            events: 0,
            signed: BTreeMap::new(),
            crashes: 0,
            checker: std::sync::Arc::new(MemoCheck::default()),
        };
        for i in 0..n {
            sim.start(i)?;
            let offset = sim.rng.range(0, TICK_MS - 1);
            sim.schedule(offset, Ev::Tick { node: i });
            if sim.nodes[i].byz.is_some() {
                let at = sim.rng.range(1_000, 3_000);
                sim.schedule(at, Ev::Noise { node: i });
            }
        }
        // Crashes of honest nodes, all restarted by the heal.
        let honest: Vec<usize> = (0..n).filter(|i| !byz_nodes.contains(i)).collect();
        for _ in 0..sim.rng.range(0, 2) {
            let node = honest[sim.rng.range(0, honest.len() as u64 - 1) as usize];
            let at = sim.rng.range(1_000, heal_at.saturating_sub(1_000));
            let back = (at + sim.rng.range(500, 15_000)).min(heal_at);
            sim.schedule(at, Ev::Crash { node });
            sim.schedule(back, Ev::Restart { node });
        }
        // Threshold actions: approved ones requested at one honest node, at random times.
        for _ in 0..sim.rng.range(0, 2) {
            let c = sim.rng.range(0, chain_count as u64 - 1) as usize;
            let vault = sim.world.borrow().chains[c].vault;
            let id = B256::from(sim.rng.bytes32());
            let action = match sim.rng.range(0, 2) {
                0 => ThresholdAction::RaiseAlert(RaiseAlert {
                    subject: B256::from(sim.rng.bytes32()),
                    level: sim.rng.range(1, 3) as u8,
                    id,
                    deadline: chain::GENESIS_S + 10_000,
                }),
                1 => ThresholdAction::ClearAlert(ClearAlert {
                    subject: B256::from(sim.rng.bytes32()),
                    id,
                    deadline: chain::GENESIS_S + 10_000,
                }),
                _ => ThresholdAction::Freeze(FreezeMember {
                    // A member that draws nothing in this run.
                    member: keccak256([0xee, c as u8]),
                    id,
                    deadline: chain::GENESIS_S + 10_000,
                }),
            };
            // A node whose view approves only its own breakers' emergency effects is asked
            // for a lift instead (its peers approve lifts nothing holds, with a deadline no
            // further than a node would set).
            let action = if N::requestable(&action) {
                action
            } else {
                ThresholdAction::Unfreeze(UnfreezeMember {
                    member: keccak256([0xee, c as u8]),
                    id,
                    deadline: chain::GENESIS_S + heal_at / 1000 + 300,
                })
            };
            sim.world
                .borrow_mut()
                .approved
                .insert((vault, id), action.clone());
            let node = honest[sim.rng.range(0, honest.len() as u64 - 1) as usize];
            let at = sim.rng.range(1_000, heal_at);
            sim.schedule(
                at,
                Ev::Request {
                    node,
                    vault,
                    action,
                },
            );
        }
        // The operators' script at the heal, before its check (see `SimInput::Operator`):
        // the first honest node's operator takes step 0, the second's step 1, the last's
        // step 3 (it rotates its own guardian key), then every honest operator steps 2 and 4
        // (approving the limits and the rotation).
        let second = honest.get(1).copied().unwrap_or(honest[0]);
        let last = honest.last().copied().unwrap_or(honest[0]);
        for (node, step) in [(honest[0], 0), (second, 1), (last, 3)] {
            sim.schedule(heal_at, Ev::Operator { node, step });
        }
        for (k, &node) in honest.iter().enumerate() {
            let at = heal_at + 2_000 + 500 * k as u64;
            sim.schedule(at, Ev::Operator { node, step: 2 });
            sim.schedule(at + 250, Ev::Operator { node, step: 4 });
        }
        sim.schedule(heal_at, Ev::Check);
        Ok(sim)
    }

    fn schedule(&mut self, at: u64, ev: Ev) {
        self.queue.insert((at, self.next_seq), ev);
        self.next_seq += 1;
    }

    fn start(&mut self, i: usize) -> Result<(), SimFailure> {
        let seed = self.seed;
        let kv = self
            .disk
            .open(i)
            .map_err(|e| fail(seed, format!("open store of node {i}: {e}")))?;
        let store = NodeStore::open(kv).map_err(|e| fail(seed, format!("node {i}: {e}")))?;
        let me = self.order[i] as NodeIndex;
        let mut config = Config::new(self.consortium.clone(), me);
        config.attempt_timeout_ms = 4_000;
        config.submit_delay_ms = 3_000;
        let setup = SetupArgs {
            config,
            key: self.nodes[i].key.clone(),
            store,
            checker: self.checker.clone(),
        };
        let _span = tracing::info_span!("sim", node = i, t = self.now).entered();
        let ctx = Ctx {
            world: &self.world,
            sim_ms: self.now,
            heal_ms: self.heal_at,
            now_ms: self.unix_ms(),
            rng: &mut self.rng,
        };
        let (node, outputs) =
            N::start(setup, ctx).map_err(|e| fail(seed, format!("start node {i}: {e}")))?;
        self.nodes[i].machine = Some(node);
        self.dispatch(i, outputs)
    }

    /// The nodes' clock: unix milliseconds (the chains' timestamps start at GENESIS_S).
    fn unix_ms(&self) -> u64 {
        chain::GENESIS_S * 1000 + self.now
    }

    fn log(&mut self, tag: u8, node: usize, payload: &[u8]) {
        let mut w = Writer::new();
        w.u64(self.now).u8(tag).u32(node as u32).bytes(payload);
        self.trace.update(w.into_bytes());
        self.events += 1;
    }

    fn partitioned(&self, a: usize, b: usize) -> bool {
        self.net
            .partitions
            .iter()
            .any(|(from, until, g)| self.now >= *from && self.now < *until && g[a] != g[b])
    }

    fn send(&mut self, from: usize, to: usize, msg: Message) {
        if self.now < self.heal_at {
            if self.partitioned(from, to) || self.rng.chance(self.net.loss) {
                return;
            }
            if self.rng.chance(self.net.dup) {
                let d = self.rng.range(1, self.net.delay_max);
                self.schedule(
                    self.now + d,
                    Ev::Deliver {
                        to,
                        from,
                        msg: msg.clone(),
                    },
                );
            }
        }
        let d = self.rng.range(1, self.net.delay_max);
        self.schedule(self.now + d, Ev::Deliver { to, from, msg });
    }

    fn broadcast(&mut self, from: usize, msg: Message) {
        for to in 0..self.nodes.len() {
            if to != from {
                self.send(from, to, msg.clone());
            }
        }
    }

    /// Audits what an honest node signed: one digest per guard key, ever.
    fn audit(&mut self, node: usize, msg: &Message) -> Result<(), SimFailure> {
        let (signer, key, digest) = match msg {
            Message::DrawAttestation(a) => (
                a.signature.signer,
                GuardKey::Draw {
                    key: a.key,
                    attempt: a.attempt,
                },
                a.digest,
            ),
            Message::LegAttestation(a) => (
                a.signature.signer,
                GuardKey::Leg {
                    draw_hash: a.draw_hash(),
                    vault: a.vault,
                },
                a.release.digest(&a.vault),
            ),
            Message::ActionAttestation(a) => (
                a.signature.signer,
                GuardKey::Action {
                    vault: a.vault,
                    id: a.action.id(),
                },
                a.action.digest(&a.vault),
            ),
            _ => return Ok(()),
        };
        if let Some(prev) = self.signed.insert((signer, key), digest)
            && prev != digest
        {
            return Err(fail(
                self.seed,
                format!("honest node {node} signed two digests for {key:?}: {prev} then {digest}"),
            ));
        }
        Ok(())
    }

    fn feed(&mut self, i: usize, input: SimInput) -> Result<(), SimFailure> {
        let seed = self.seed;
        let now_ms = self.unix_ms();
        let Some(node) = self.nodes[i].machine.as_mut() else {
            return Ok(());
        };
        // Logs of a replayed seed say which node acted, and when.
        let _span = tracing::info_span!("sim", node = i, t = self.now).entered();
        let ctx = Ctx {
            world: &self.world,
            sim_ms: self.now,
            heal_ms: self.heal_at,
            now_ms,
            rng: &mut self.rng,
        };
        let outputs = node
            .handle(ctx, input)
            .map_err(|e| fail(seed, format!("node {i}: {e}")))?;
        self.dispatch(i, outputs)
    }

    /// Gossips what node `i` broadcast and schedules what it submitted for the next block.
    fn dispatch(&mut self, i: usize, outputs: Vec<Output>) -> Result<(), SimFailure> {
        for o in outputs {
            match o {
                Output::Broadcast(msg) => self.emit(i, msg)?,
                Output::Submit(cert) => {
                    if self.nodes[i]
                        .byz
                        .as_ref()
                        .is_some_and(|b| b.withhold_permille > 0)
                    {
                        continue;
                    }
                    let w = self.world.borrow();
                    let at = w.block_time_ms(w.block_at(self.now) + 1);
                    drop(w);
                    self.schedule(at, Ev::Include { cert });
                }
                Output::WakeAt(_) | Output::Rewound { .. } => {}
            }
        }
        Ok(())
    }

    fn emit(&mut self, i: usize, msg: Message) -> Result<(), SimFailure> {
        let Some(byz) = self.nodes[i].byz.as_ref() else {
            self.audit(i, &msg)?;
            // An honest node asked for an action (its operator, or its own breakers), or
            // approved it.
            let approved = match &msg {
                Message::ActionProposal(p) => Some((p.vault, p.action.id())),
                Message::ActionAttestation(a) => Some((a.vault, a.action.id())),
                _ => None,
            };
            if let Some(action) = approved {
                self.world.borrow_mut().requested.insert(action);
            }
            self.broadcast(i, msg);
            return Ok(());
        };
        let withhold = byz.withhold_permille;
        let equivocate = byz.equivocate;
        if let (true, Message::DrawProposal(p)) = (equivocate, &msg) {
            return self.equivocate(i, p.clone());
        }
        for to in 0..self.nodes.len() {
            if to != i && !self.rng.chance(withhold) {
                self.send(i, to, msg.clone());
            }
        }
        Ok(())
    }

    /// A byzantine proposer sends its proposal to half the nodes and, to the other half, a
    /// proposal pinned one block earlier (a different, possibly valid draw), signing both.
    fn equivocate(&mut self, i: usize, p: DrawProposal) -> Result<(), SimFailure> {
        let alt_pinned: Vec<PinnedBlock> = {
            let w = self.world.borrow();
            p.pinned
                .iter()
                .enumerate()
                .map(|(c, b)| {
                    let number = b.number.saturating_sub(1);
                    PinnedBlock {
                        chain_id: b.chain_id,
                        number,
                        hash: w.block_hash(c, number),
                    }
                })
                .collect()
        };
        let alt_draw = self.world.borrow().compute_draw(&p.key, &alt_pinned).ok();
        let mut alt = p.clone();
        alt.pinned = alt_pinned;
        alt.draw = match alt_draw {
            Some(d) => d,
            None => {
                // Fall back to an inflated amount (honest nodes must refuse it).
                let mut d = p.draw.clone();
                d.amount += U256::from(1u64);
                d
            }
        };
        let home = self
            .world
            .borrow()
            .chains
            .iter()
            .find(|c| p.draw.legs.iter().any(|l| l.chainId == c.vault.chain_id))
            .map(|c| c.vault);
        for to in 0..self.nodes.len() {
            if to == i {
                continue;
            }
            let which = if self.rng.chance(500) { &p } else { &alt };
            self.send(i, to, Message::DrawProposal(which.clone()));
            if let Some(vault) = home {
                let home_vault = {
                    let w = self.world.borrow();
                    w.member_index(&p.key.member)
                        .map(|m| w.chains[w.members[m].home].vault)
                        .unwrap_or(vault)
                };
                let digest = which.draw.digest(&home_vault);
                if let Ok(sig) = sign_digest(&self.nodes[i].key, digest) {
                    self.send(
                        i,
                        to,
                        Message::DrawAttestation(DrawAttestation {
                            key: p.key,
                            attempt: p.attempt,
                            digest,
                            signature: sig,
                        }),
                    );
                }
            }
        }
        Ok(())
    }

    fn noise(&mut self, i: usize) {
        let Some(byz) = self.nodes[i].byz.as_ref() else {
            return;
        };
        let (garbage, replay) = (byz.garbage, byz.replay);
        let n = self.nodes.len();
        if garbage {
            let key = self.nodes[i].key.clone();
            let (member, seq, vault) = {
                let w = self.world.borrow();
                let m = self.rng.range(0, w.members.len() as u64 - 1) as usize;
                let c = self.rng.range(0, w.chains.len() as u64 - 1) as usize;
                (w.members[m].id, w.next_seq(m, self.now), w.chains[c].vault)
            };
            let digest = B256::from(self.rng.bytes32());
            let attempt = self.rng.range(0, 6) as u32;
            let mut msgs = Vec::new();
            if let Ok(sig) = sign_digest(&key, digest) {
                msgs.push(Message::DrawAttestation(DrawAttestation {
                    key: IncidentKey { member, seq },
                    attempt,
                    digest,
                    signature: sig,
                }));
                // A signature claimed by an honest guardian (does not recover to it).
                let victim = self.nodes[(i + 1) % n].key.address();
                msgs.push(Message::DrawAttestation(DrawAttestation {
                    key: IncidentKey { member, seq },
                    attempt,
                    digest,
                    signature: backstop_contracts::eip712::GuardianSignature {
                        signer: victim,
                        signature: sig.signature,
                    },
                }));
            }
            let release = LegRelease {
                drawHash: B256::from(self.rng.bytes32()),
                member,
                seq,
                amount: U256::from(self.rng.range(1, 1_000_000)),
                deadline: chain::GENESIS_S + 10_000,
            };
            if let Ok(sig) = sign_digest(&key, release.digest(&vault)) {
                msgs.push(Message::LegAttestation(LegAttestation {
                    vault,
                    release,
                    signature: sig,
                }));
            }
            // An unapproved emergency action: p = f + 1 needs one honest signer, so it must
            // never execute.
            let action = ThresholdAction::Freeze(FreezeMember {
                member,
                id: B256::from(self.rng.bytes32()),
                deadline: chain::GENESIS_S + 10_000,
            });
            if let Ok(sig) = sign_digest(&key, action.digest(&vault)) {
                msgs.push(Message::ActionAttestation(ActionAttestation {
                    vault,
                    action,
                    signature: sig,
                }));
            }
            for m in msgs {
                let to = self.rng.range(0, n as u64 - 1) as usize;
                if to != i {
                    self.send(i, to, m);
                }
            }
        }
        if replay {
            let count = self.nodes[i].byz.as_ref().map_or(0, |b| b.recorded.len());
            for _ in 0..3 {
                if count == 0 {
                    break;
                }
                let k = self.rng.range(0, count as u64 - 1) as usize;
                let msg = self.nodes[i].byz.as_ref().map(|b| b.recorded[k].clone());
                let to = self.rng.range(0, n as u64 - 1) as usize;
                if let Some(msg) = msg
                    && to != i
                {
                    self.send(i, to, msg);
                }
            }
        }
    }

    /// Whether honest member `m` could be paid more at `ms`: a nonzero coverage limit, a
    /// reported gap above dust, and the booking rule passes its declaration for its next seq.
    /// Neither the window left (with a nonzero limit it frees within two windows) nor the
    /// previous draw's pending legs (they are paid or expire) are consulted.
    fn coverable(w: &World, m: usize, ms: u64) -> bool {
        let member = &w.members[m];
        member.booking.honest()
            && !member.coverage_limit.is_zero()
            && w.gap(m, ms) > DUST
            && crate::booking::check(w.next_seq(m, ms), w.booked_draws(m, ms)).is_ok()
    }

    /// Why the run has not settled yet (`None` once it has): see the module's liveness.
    fn unsettled(&self) -> Option<String> {
        let w = self.world.borrow();
        let now = self.now;
        for (m, member) in w.members.iter().enumerate() {
            // A liar may be paid again as long as its windows allow: only they bound it.
            if !member.booking.honest() {
                continue;
            }
            let seq = w.next_seq(m, now);
            let declared = w.booked_draws(m, now);
            let gap = w.gap(m, now);
            if Self::coverable(&w, m, now) {
                return Some(format!(
                    "member {m} ({:?}, view {}) can still be paid: seq {seq}, declares \
                     {declared:?}, gap {gap}",
                    member.booking, member.declares
                ));
            }
            if member.coverage_limit.is_zero() {
                continue;
            }
            if member.declares_all() {
                let (paid, booked) = (w.paid_to(m, now), w.booked(m, now));
                if booked != paid {
                    return Some(format!(
                        "member {m} ({:?}) has booked {booked} of the {paid} paid",
                        member.booking
                    ));
                }
                let unpaid = w.unpaid(m, now);
                if unpaid > DUST {
                    return Some(format!(
                        "member {m} ({:?}) booked every payout, yet {unpaid} of its losses is \
                         unpaid: seq {seq}, declares {declared:?}, gap {gap}",
                        member.booking
                    ));
                }
            } else if gap > DUST && seq > 0 {
                let key = IncidentKey {
                    member: member.id,
                    seq,
                };
                let refused_here = self.nodes.iter().any(|n| {
                    n.byz.is_none()
                        && n.machine
                            .as_ref()
                            .is_some_and(|m| m.refuses_unbooked(&key, self.unix_ms()))
                });
                if !w.notes.refused.contains(&(key, "not_booked")) && !refused_here {
                    return Some(format!(
                        "member {m} ({:?}, view {}) has a gap {gap} and declares {declared:?}, \
                         yet no view has refused its draw {seq} as not booked",
                        member.booking, member.declares
                    ));
                }
            }
        }
        if let Some((v, id)) = w.approved.keys().find(|(v, id)| {
            !w.chains
                .iter()
                .any(|c| c.vault == *v && c.actions.contains_key(id))
        }) {
            return Some(format!(
                "approved action {id} on chain {} not executed",
                v.chain_id
            ));
        }
        for (i, n) in self.nodes.iter().enumerate() {
            if n.byz.is_some() {
                continue;
            }
            let Some(machine) = n.machine.as_ref() else {
                return Some(format!("node {i} is down"));
            };
            if machine.open_actions() > 0 {
                return Some(format!("node {i} has open actions"));
            }
            for (key, _) in machine.open_incidents() {
                // Open without a draw for an honest member nothing more can be paid, whose gap
                // stays: the machine has nothing to do, nor may it close the incident.
                // A liar's incidents are not waited for.
                let waiting = w.member_index(&key.member).is_some_and(|m| {
                    !w.members[m].booking.honest()
                        || (w.next_seq(m, now) == key.seq
                            && w.gap(m, now) > DUST
                            && !Self::coverable(&w, m, now)
                            && machine
                                .incident(&key)
                                .is_some_and(|r| r.registration.is_none()))
                });
                if !waiting {
                    return Some(format!("node {i} has incident {key:?} open"));
                }
            }
        }
        None
    }

    /// State summary for failure messages.
    fn describe(&self) -> String {
        let w = self.world.borrow();
        let gaps: Vec<String> = (0..w.members.len())
            .map(|m| {
                let member = &w.members[m];
                let mut shocks = member.shocks.clone();
                shocks.sort();
                let shocks: Vec<String> = shocks.iter().map(|(t, a)| format!("{a}@{t}")).collect();
                let draws: Vec<String> = w.chains[member.home]
                    .registered
                    .iter()
                    .filter(|(k, _)| k.member == member.id)
                    .map(|(k, (at, hash, d))| {
                        let pinned = chain::pinned_ms(d);
                        let paid: Vec<String> = w
                            .payments_to(m)
                            .filter(|p| p.draw_hash == *hash)
                            .map(|p| format!("{}@{}", p.amount, p.at))
                            .collect();
                        format!(
                            "seq {} pinned@{pinned} (declared {:?}) registered@{at} gap {} \
                             amount {} paid [{}]",
                            k.seq,
                            w.booked_draws(m, pinned),
                            d.gap,
                            d.amount,
                            paid.join(" ")
                        )
                    })
                    .collect();
                format!(
                    "member {m} ({:?}, view {}, window {} per {} s) losses {} paid {} booked {} \
                     gap {} next_seq {} declares {:?}; shocks [{}]; draws [{}]",
                    member.booking,
                    member.declares,
                    member.coverage_limit,
                    member.coverage_window_s,
                    w.losses(m, self.now),
                    w.paid_to(m, self.now),
                    w.booked(m, self.now),
                    w.gap(m, self.now),
                    w.next_seq(m, self.now),
                    w.booked_draws(m, self.now),
                    shocks.join(" "),
                    draws.join("; ")
                )
            })
            .collect();
        let nodes: Vec<String> = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| match (&n.byz, &n.machine) {
                (Some(_), _) => format!("{i}:byzantine"),
                (None, None) => format!("{i}:down"),
                (None, Some(m)) => format!(
                    "{i}:open {:?} actions {} payouts {:?} {:?}",
                    m.open_incidents()
                        .iter()
                        .map(|(k, a)| (k.seq, *a))
                        .collect::<Vec<_>>(),
                    m.open_actions(),
                    w.members
                        .iter()
                        .filter_map(|member| m.payout(&member.id))
                        .map(|p| (p.seq, p.paid))
                        .collect::<Vec<_>>(),
                    m.stats()
                ),
            })
            .collect();
        let pending_actions = w
            .approved
            .keys()
            .filter(|(v, id)| {
                !w.chains
                    .iter()
                    .any(|c| c.vault == *v && c.actions.contains_key(id))
            })
            .count();
        let mut reverted: BTreeMap<&str, usize> = BTreeMap::new();
        for (_, _, o) in &w.txs {
            if let chain::TxOutcome::Reverted(r) = o {
                *reverted.entry(r).or_default() += 1;
            }
        }
        format!(
            "{}; approved actions not executed {pending_actions}; reverted {reverted:?}; nodes [{}]",
            gaps.join(", "),
            nodes.join(" | ")
        )
    }

    fn check_safety(&self) -> Result<(), SimFailure> {
        let w = self.world.borrow();
        let seed = self.seed;
        N::check_world(&w, self.heal_at).map_err(|e| fail(seed, e))?;
        let mut registered: BTreeMap<B256, (IncidentKey, backstop_contracts::eip712::Draw)> =
            BTreeMap::new();
        let mut keys = BTreeSet::new();
        for (_, fact) in &w.facts {
            if let Fact::Registered {
                key,
                draw_hash,
                draw,
            } = fact
            {
                if !keys.insert(*key) {
                    return Err(fail(seed, format!("two draws registered for {key:?}")));
                }
                registered.insert(*draw_hash, (*key, draw.clone()));
            }
        }
        for (hash, (key, draw)) in &registered {
            let m = w
                .member_index(&key.member)
                .ok_or_else(|| fail(seed, "draw for an unknown member"))?;
            if draw.amount > draw.gap || draw.amount > w.members[m].cap {
                return Err(fail(seed, format!("draw {hash} above its gap or cap")));
            }
            let mut paid = U256::ZERO;
            for c in &w.chains {
                let home = c.vault.chain_id == w.chains[w.members[m].home].vault.chain_id;
                if let Some(leg) = draw.legs.iter().find(|l| l.chainId == c.vault.chain_id)
                    && (home || c.leg_paid.contains_key(hash))
                {
                    paid += leg.amount;
                }
            }
            if paid > draw.amount {
                return Err(fail(
                    seed,
                    format!("draw {hash} paid {paid} > {}", draw.amount),
                ));
            }
        }
        for c in &w.chains {
            for hash in c.leg_paid.keys() {
                let ok = registered
                    .get(hash)
                    .is_some_and(|(_, d)| d.legs.iter().any(|l| l.chainId == c.vault.chain_id));
                if !ok {
                    return Err(fail(
                        seed,
                        format!(
                            "chain {} paid a leg of unregistered draw {hash}",
                            c.vault.chain_id
                        ),
                    ));
                }
            }
            for id in c.actions.keys() {
                if !w.approved.contains_key(&(c.vault, *id))
                    && !w.requested.contains(&(c.vault, *id))
                {
                    return Err(fail(seed, format!("unapproved action {id} executed")));
                }
            }
        }
        for m in 0..w.members.len() {
            let honest = w.members[m].booking.honest();
            Self::check_windows(&w, m)
                .and_then(|()| Self::check_declared(&w, m))
                .and_then(|()| {
                    if honest {
                        Self::check_covered(&w, m)?;
                        Self::check_pricing(&w, m)?;
                    }
                    Ok(())
                })
                .map_err(|r| fail(seed, format!("{r}; {}", self.describe())))?;
        }
        Ok(())
    }

    /// (b) No draw `seq > 0` of member `m` is registered unless the member's declaration at
    /// the draw's pinned home block was at least `seq`.
    fn check_declared(w: &World, m: usize) -> Result<(), String> {
        let member = &w.members[m];
        for (key, _, _, draw) in w.draws_of(m, u64::MAX) {
            let pinned = chain::pinned_ms(draw);
            let declared = w.booked_draws(m, pinned);
            if key.seq > 0 && declared.is_none_or(|n| n < key.seq) {
                return Err(format!(
                    "draw {} of member {m} ({:?}, view {}) registered although its books at \
                     the pinned home block ({pinned} ms) declared {declared:?}",
                    key.seq, member.booking, member.declares
                ));
            }
        }
        Ok(())
    }

    /// (c) No over-coverage of honest member `m`: at every payment, what the vaults paid it
    /// so far is at most its losses so far.
    fn check_covered(w: &World, m: usize) -> Result<(), String> {
        let times: BTreeSet<u64> = w.payments_to(m).map(|p| p.at).collect();
        for t in times {
            let (paid, lost) = (w.paid_to(m, t), w.losses(m, t));
            if paid > lost {
                return Err(format!(
                    "over-coverage: member {m} ({:?}) paid {paid} by {t} ms for losses {lost}",
                    w.members[m].booking
                ));
            }
        }
        Ok(())
    }

    /// (c) Every draw of honest member `m` is priced net of earlier payouts: its amount ≤
    /// the losses at its pinned home block − everything the member's earlier draws paid
    /// (ever). A member that cannot declare a payout (its books never show one in full, or
    /// it has no view) is paid by one draw at most, its last.
    fn check_pricing(w: &World, m: usize) -> Result<(), String> {
        let member = &w.members[m];
        let mut paid_before = U256::ZERO;
        for (key, _, hash, draw) in w.draws_of(m, u64::MAX) {
            let pinned_ms = chain::pinned_ms(draw);
            let lost = w.losses(m, pinned_ms);
            if draw.amount > lost.saturating_sub(paid_before) {
                return Err(format!(
                    "draw {} of member {m} ({:?}) pays {} but at its pinned block the member \
                     had lost {lost} and been paid {paid_before} by its earlier draws",
                    key.seq, member.booking, draw.amount
                ));
            }
            if !member.declares_all() && !paid_before.is_zero() {
                return Err(format!(
                    "draw {} of member {m} ({:?}, view {}) registered after an earlier draw \
                     paid it {paid_before}, which its books cannot declare",
                    key.seq, member.booking, member.declares
                ));
            }
            paid_before += w
                .payments_to(m)
                .filter(|p| p.draw_hash == hash)
                .map(|p| p.amount)
                .sum::<U256>();
        }
        Ok(())
    }

    /// What each vault counted for member `m`, as (chain, timestamp s, amount): the home
    /// vault whole draws when it registers them, a remote vault the legs it pays.
    fn counted(w: &World, m: usize) -> Vec<(usize, u64, U256)> {
        let member = &w.members[m];
        let ts = |at: u64| chain::GENESIS_S + at / 1000;
        let mut out = Vec::new();
        for (_, at, hash, draw) in w.draws_of(m, u64::MAX) {
            out.push((member.home, ts(at), draw.amount));
            for (c, chain) in w.chains.iter().enumerate() {
                if c == member.home {
                    continue;
                }
                if let (Some(paid_at), Some(leg)) = (
                    chain.leg_paid.get(&hash),
                    draw.legs.iter().find(|l| l.chainId == chain.vault.chain_id),
                ) {
                    out.push((c, ts(*paid_at), leg.amount));
                }
            }
        }
        out
    }

    /// The most any vault counted for member `m` within one closed interval of
    /// `coverage_window_s` seconds, as (amount, chain, start s); checked on every interval
    /// starting at a counted payment (the heaviest interval starts at one).
    fn peak_window(w: &World, m: usize) -> Option<(U256, usize, u64)> {
        let window = w.members[m].coverage_window_s;
        let counted = Self::counted(w, m);
        counted
            .iter()
            .map(|&(c, start, _)| {
                let sum: U256 = counted
                    .iter()
                    .filter(|(cc, t, _)| *cc == c && *t >= start && *t <= start + window)
                    .map(|(_, _, a)| *a)
                    .sum();
                (sum, c, start)
            })
            .max()
    }

    /// (a) No vault counts (so pays) member `m`, liar or not, more than its coverage limit
    /// within any closed interval of `coverage_window_s` seconds.
    fn check_windows(w: &World, m: usize) -> Result<(), String> {
        let member = &w.members[m];
        match Self::peak_window(w, m) {
            Some((sum, c, start)) if sum > member.coverage_limit => Err(format!(
                "chain {} counted {sum} for member {m} ({:?}) within [{start}, {}] s, above \
                 its coverage limit {} per {} s",
                w.chains[c].vault.chain_id,
                member.booking,
                start + member.coverage_window_s,
                member.coverage_limit,
                member.coverage_window_s
            )),
            _ => Ok(()),
        }
    }

    fn run(&mut self) -> Result<SimReport, SimFailure> {
        let seed = self.seed;
        let deadline = self.heal_at + LIVENESS_BOUND_MS;
        let mut settled_at = None;
        while let Some(((at, _), ev)) = self.queue.pop_first() {
            self.now = at;
            match ev {
                Ev::Deliver { to, from, msg } => {
                    if self.nodes[to].machine.is_none() {
                        continue;
                    }
                    self.log(1, to, &crate::codec::encode_message(&msg));
                    if let Some(b) = self.nodes[to].byz.as_mut()
                        && b.recorded.len() < 256
                    {
                        b.recorded.push(msg.clone());
                    }
                    let from_idx = self.order[from] as NodeIndex;
                    self.feed(
                        to,
                        SimInput::Received {
                            from: from_idx,
                            message: msg,
                        },
                    )?;
                }
                Ev::Tick { node } => {
                    if self.nodes[node].machine.is_some() {
                        self.log(2, node, &[]);
                        self.feed(node, SimInput::Tick)?;
                    }
                    if settled_at.is_none() {
                        self.schedule(self.now + TICK_MS, Ev::Tick { node });
                    }
                }
                Ev::Crash { node } => {
                    if self.nodes[node].machine.take().is_some() {
                        self.log(3, node, &[]);
                        self.crashes += 1;
                    }
                }
                Ev::Restart { node } => {
                    if self.nodes[node].machine.is_none() {
                        self.log(4, node, &[]);
                        self.start(node)?;
                    }
                }
                Ev::Include { cert } => {
                    self.log(5, 0, cert.digest.as_slice());
                    let checker = self.checker.clone();
                    self.world
                        .borrow_mut()
                        .apply(self.now, &cert, |s, d| checker.check(s, d));
                }
                Ev::Request {
                    node,
                    vault,
                    action,
                } => {
                    self.log(6, node, action.id().as_slice());
                    // A request to a crashed node is lost; the policy would ask again.
                    if self.nodes[node].machine.is_some() {
                        self.feed(node, SimInput::Request { vault, action })?;
                    } else {
                        self.schedule(
                            self.now + 2_000,
                            Ev::Request {
                                node,
                                vault,
                                action,
                            },
                        );
                    }
                }
                Ev::Operator { node, step } => {
                    self.log(8, node, &[step]);
                    if self.nodes[node].machine.is_some() {
                        self.feed(node, SimInput::Operator { step })?;
                    } else {
                        self.schedule(self.now + 2_000, Ev::Operator { node, step });
                    }
                }
                Ev::Noise { node } => {
                    self.log(7, node, &[]);
                    self.noise(node);
                    if settled_at.is_none() {
                        let d = self.rng.range(500, 3_000);
                        self.schedule(self.now + d, Ev::Noise { node });
                    }
                }
                Ev::Check => {
                    self.check_safety()?;
                    let unsettled = self.unsettled();
                    if unsettled.is_none() {
                        settled_at = Some(self.now);
                        // Let queued deliveries drain; no new ticks or noise.
                    } else if self.now >= deadline {
                        return Err(fail(
                            seed,
                            format!(
                                "liveness: not settled {} ms after the heal at {} ms: {}; {}",
                                LIVENESS_BOUND_MS,
                                self.heal_at,
                                unsettled.unwrap_or_default(),
                                self.describe()
                            ),
                        ));
                    } else {
                        self.schedule(self.now + 5_000, Ev::Check);
                    }
                }
            }
        }
        self.check_safety()?;
        let w = self.world.borrow();
        let applied = w
            .txs
            .iter()
            .filter(|(_, _, o)| *o == chain::TxOutcome::Applied)
            .count();
        let trace_hash = std::mem::replace(&mut self.trace, Keccak256::new()).finalize();
        let notes = &w.notes;
        let refused = |r: &str| notes.refused.iter().filter(|(_, x)| *x == r).count();
        let mut bookings = [0usize; 5];
        for member in &w.members {
            bookings[member.booking.index()] += 1;
        }
        // Registered draws: (key, how some view priced it).
        let registered: Vec<(IncidentKey, Option<chain::Pricing>)> = w
            .facts
            .iter()
            .filter_map(|(_, f)| match f {
                Fact::Registered { key, draw_hash, .. } => {
                    Some((*key, notes.priced.get(draw_hash).copied()))
                }
                _ => None,
            })
            .collect();
        let stopped_then_refused = w
            .members
            .iter()
            .filter(|member| {
                member.booking.honest()
                    && !member.declares_all()
                    && notes.refused.iter().any(|(k, r)| {
                        *r == "not_booked"
                            && k.member == member.id
                            && registered
                                .iter()
                                .any(|(rk, _)| rk.member == k.member && rk.seq + 1 == k.seq)
                    })
            })
            .count();
        let refused_then_registered = notes
            .refused
            .iter()
            .filter(|(k, r)| *r == "not_booked" && registered.iter().any(|(rk, _)| rk == k))
            .count();
        let window_reverts = w
            .txs
            .iter()
            .filter(|(_, _, o)| *o == chain::TxOutcome::Reverted("CoverageExceeded"))
            .count();
        let mut new_loss_draws = 0;
        let (mut liar_draws, mut liar_paid, mut liar_losses) = (0, 0u64, 0u64);
        let (mut liars_over_losses, mut liar_peak_window_bps, mut liars_at_limit) = (0, 0u64, 0);
        for (m, member) in w.members.iter().enumerate() {
            let draws: Vec<u64> = w
                .draws_of(m, u64::MAX)
                .map(|(_, _, _, d)| chain::pinned_ms(d))
                .collect();
            if member.booking.honest() {
                new_loss_draws += draws
                    .windows(2)
                    .filter(|p| member.shocks.iter().any(|(t, _)| *t > p[0] && *t <= p[1]))
                    .count();
                continue;
            }
            let (paid, lost) = (w.paid_to(m, u64::MAX), w.losses(m, u64::MAX));
            liar_draws += draws.len();
            liar_paid += paid.to::<u64>();
            liar_losses += lost.to::<u64>();
            liars_over_losses += usize::from(paid > lost);
            if let Some((peak, _, _)) = Self::peak_window(&w, m)
                && !member.coverage_limit.is_zero()
            {
                let bps = peak * U256::from(10_000u64) / member.coverage_limit;
                liar_peak_window_bps = liar_peak_window_bps.max(bps.to::<u64>());
                liars_at_limit += usize::from(peak == member.coverage_limit);
            }
        }
        Ok(SimReport {
            seed,
            n: self.nodes.len(),
            byzantine: self.nodes.iter().filter(|n| n.byz.is_some()).count(),
            crashes: self.crashes,
            lost_writes: self.disk.lost_writes(),
            tally: N::tally(&w, self.heal_at),
            trace_hash,
            events: self.events,
            registered: w.chains.iter().map(|c| c.registered.len()).sum(),
            legs_paid: w.chains.iter().map(|c| c.leg_paid.len()).sum(),
            actions_executed: w.chains.iter().map(|c| c.actions.len()).sum(),
            txs_applied: applied,
            txs_reverted: w.txs.len() - applied,
            settled_at: settled_at.unwrap_or(self.now),
            heal_at: self.heal_at,
            bookings,
            no_view_members: w.members.iter().filter(|m| !m.declares).count(),
            zero_window_members: w
                .members
                .iter()
                .filter(|m| m.coverage_limit.is_zero())
                .count(),
            refused_not_booked: refused("not_booked"),
            refused_window: refused("window_exhausted"),
            refused_then_registered,
            stopped_then_refused,
            new_loss_draws,
            window_limited: registered
                .iter()
                .filter(|(_, p)| p.is_some_and(|p| p.window_limited))
                .count(),
            window_reverts,
            liar_draws,
            liar_paid,
            liar_losses,
            liars_over_losses,
            liar_peak_window_bps,
            liars_at_limit,
        })
    }
}
