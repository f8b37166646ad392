//! The node a simulation drives, as a trait: the bare agreement [`Machine`] over the
//! simulated [`SimView`] ([`MachineNode`], this crate's simulation), or the whole node core
//! over its real view (the node crate's simulation). Both read the same simulated
//! [`World`], sign with real keys, keep real stores, and answer the same queries for the
//! simulation's invariant and liveness checks.

use std::sync::Arc;

use alloy::primitives::B256;
use alloy::signers::local::PrivateKeySigner;
use backstop_contracts::eip712::VaultId;

use super::chain::{Fact, SimView, World, WorldRef};
use super::rng::Rng;
use crate::booking::Payout;
use crate::kv::Kv;
use crate::machine::{Config, Event, Machine, Output, SignatureCheck, Stats};
use crate::state::{IncidentRecord, NodeStore};
use crate::types::{Attempt, IncidentKey, Message, NodeIndex, ThresholdAction};

/// What a node is started (or restarted after a crash) with.
pub struct SetupArgs<K> {
    /// The machine's configuration (consortium, this node's index, timeouts).
    pub config: Config,
    /// The guardian key.
    pub key: PrivateKeySigner,
    /// The store, as the crash left it.
    pub store: NodeStore<K>,
    /// Memoized signature verification shared by the run's nodes.
    pub checker: Arc<dyn SignatureCheck + Send + Sync>,
}

/// The simulation's state a node reads at one step.
pub struct Ctx<'a> {
    /// The chains.
    pub world: &'a WorldRef,
    /// Virtual time since the run's start (ms); block 0 is at 0.
    pub sim_ms: u64,
    /// The nodes' clock (unix ms).
    pub now_ms: u64,
    /// Virtual time when faults end: the network heals and crashed nodes are back (ms).
    pub heal_ms: u64,
    /// The run's generator, for the faults a node's own reads meet.
    pub rng: &'a mut Rng,
}

/// One input of a simulated node.
#[derive(Debug)]
pub enum SimInput {
    /// A message from the node at consortium index `from`.
    Received {
        /// Sender.
        from: NodeIndex,
        /// The message.
        message: Message,
    },
    /// The node's periodic step: it reads its chains and acts on time.
    Tick,
    /// An operator asks for a threshold action.
    Request {
        /// Vault.
        vault: VaultId,
        /// The action.
        action: ThresholdAction,
    },
    /// The operator of an honest node takes step `step` of a script the kind of node
    /// defines (the whole node's governance script); nodes without one ignore it.
    Operator {
        /// The step.
        step: u8,
    },
}

/// A node of the simulation.
pub trait SimNode: Sized {
    /// Its store.
    type Kv: Kv;
    /// Starts the node from `setup` at `ctx`'s time.
    fn start(setup: SetupArgs<Self::Kv>, ctx: Ctx<'_>) -> Result<(Self, Vec<Output>), String>;
    /// Handles one input; what it gossips and what it submits.
    fn handle(&mut self, ctx: Ctx<'_>, input: SimInput) -> Result<Vec<Output>, String>;
    /// Invariants of this kind of node over the whole run, checked with the simulation's
    /// (`heal_ms`: when the faults end).
    fn check_world(_world: &World, _heal_ms: u64) -> Result<(), String> {
        Ok(())
    }
    /// Counts of what this kind of node did in a run, for the run's report (by name).
    fn tally(_world: &World, _heal_ms: u64) -> Vec<(&'static str, u64)> {
        Vec::new()
    }
    /// Whether an operator of this kind of node may ask for `action` (the others must
    /// approve it for it to execute).
    fn requestable(action: &ThresholdAction) -> bool;
    /// Threshold actions in progress.
    fn open_actions(&self) -> usize;
    /// Open incidents with their current attempts.
    fn open_incidents(&self) -> Vec<(IncidentKey, Attempt)>;
    /// An incident's record.
    fn incident(&self, key: &IncidentKey) -> Option<&IncidentRecord>;
    /// What the member's newest covered incident paid, as this node recorded it.
    fn payout(&self, member: &B256) -> Option<&Payout>;
    /// The machine's counters.
    fn stats(&self) -> &Stats;
    /// Whether this node refuses `key` now because the member's books do not show what it
    /// was paid (the booking rule, or a breaker acting on it), when it knows without the
    /// simulated world's notes.
    fn refuses_unbooked(&self, key: &IncidentKey, now_ms: u64) -> bool;
}

/// The bare agreement machine over [`SimView`]: chain facts arrive as machine events on each
/// tick (a registration as soon as it is included, finalized `depth` blocks later), and
/// every member's gap is observed at the confirmed head.
pub struct MachineNode<K> {
    machine: Machine<SimView, PrivateKeySigner, K>,
    seen_cursor: usize,
    final_cursor: usize,
}

impl<K: Kv> MachineNode<K> {
    fn feed(&mut self, now_ms: u64, event: Event) -> Result<Vec<Output>, String> {
        self.machine
            .handle(now_ms, event)
            .map_err(|e| format!("stopped: {e}"))
    }

    /// The chain facts and observations new to this node at `sim_ms`.
    fn chain_events(&mut self, world: &WorldRef, sim_ms: u64) -> Vec<Event> {
        let w = world.borrow();
        let mut out = Vec::new();
        while let Some((at, fact)) = w.facts.get(self.seen_cursor) {
            if *at > sim_ms {
                break;
            }
            if let Fact::Registered {
                key,
                draw_hash,
                draw,
            } = fact
            {
                out.push(Event::DrawRegistered {
                    key: *key,
                    draw_hash: *draw_hash,
                    draw: draw.clone(),
                    finalized: false,
                    block: w.block_at(*at),
                });
            }
            self.seen_cursor += 1;
        }
        let depth_ms = w.depth * w.block_ms;
        while let Some((at, fact)) = w.facts.get(self.final_cursor) {
            if at + depth_ms > sim_ms {
                break;
            }
            let block = w.block_at(*at);
            out.push(match fact {
                Fact::Registered {
                    key,
                    draw_hash,
                    draw,
                } => Event::DrawRegistered {
                    key: *key,
                    draw_hash: *draw_hash,
                    draw: draw.clone(),
                    finalized: true,
                    block,
                },
                Fact::LegPaid { draw_hash, vault } => Event::LegExecuted {
                    draw_hash: *draw_hash,
                    vault: *vault,
                    block,
                },
                Fact::ActionExecuted { vault, id, .. } => Event::ActionExecuted {
                    vault: *vault,
                    id: *id,
                },
            });
            self.final_cursor += 1;
        }
        out.extend(observations(&w, sim_ms));
        out
    }
}

/// Every member's gap at the confirmed head of its home chain.
fn observations(w: &World, sim_ms: u64) -> impl Iterator<Item = Event> + '_ {
    let head = w.confirmed_head(sim_ms);
    (0..w.members.len()).map(move |m| Event::Observed(w.observation(m, head)))
}

impl<K: Kv> SimNode for MachineNode<K> {
    type Kv = K;

    fn start(setup: SetupArgs<K>, ctx: Ctx<'_>) -> Result<(Self, Vec<Output>), String> {
        let machine = Machine::restore(
            setup.config,
            SimView::new(ctx.world.clone()),
            setup.key,
            setup.store,
            ctx.now_ms,
        )
        .map_err(|e| format!("restore: {e}"))?
        .with_signature_check(setup.checker);
        let node = Self {
            machine,
            seen_cursor: 0,
            final_cursor: 0,
        };
        Ok((node, Vec::new()))
    }

    fn handle(&mut self, ctx: Ctx<'_>, input: SimInput) -> Result<Vec<Output>, String> {
        match input {
            SimInput::Received { from, message } => {
                self.feed(ctx.now_ms, Event::Received { from, message })
            }
            SimInput::Tick => {
                let mut out = Vec::new();
                for e in self.chain_events(ctx.world, ctx.sim_ms) {
                    out.extend(self.feed(ctx.now_ms, e)?);
                }
                out.extend(self.feed(ctx.now_ms, Event::Tick)?);
                Ok(out)
            }
            SimInput::Request { vault, action } => {
                self.feed(ctx.now_ms, Event::RequestAction { vault, action })
            }
            SimInput::Operator { .. } => Ok(Vec::new()),
        }
    }

    fn requestable(_: &ThresholdAction) -> bool {
        // The simulated view approves exactly the world's approved actions.
        true
    }

    fn open_actions(&self) -> usize {
        self.machine.open_actions()
    }

    fn open_incidents(&self) -> Vec<(IncidentKey, Attempt)> {
        self.machine.open_incidents()
    }

    fn incident(&self, key: &IncidentKey) -> Option<&IncidentRecord> {
        self.machine.incident(key)
    }

    fn payout(&self, member: &B256) -> Option<&Payout> {
        self.machine.view().payout(member)
    }

    fn stats(&self) -> &Stats {
        self.machine.stats()
    }

    fn refuses_unbooked(&self, _: &IncidentKey, _: u64) -> bool {
        // The simulated view notes its refusals in the world.
        false
    }
}
