//! The whole node under deterministic simulation: n copies of [`NodeCore`] (its real view,
//! allocation, detectors, breaker policy, journal and agreement machine, with real keys and
//! real stores) on the agreement crate's simulated network and chains
//! ([`backstop_agreement::sim`]), driven by one seed on virtual time.
//!
//! Each node reads its chains the way the chain adapters do ([`crate::chains`]): on every
//! step, the newest confirmed block of each chain as a [`ChainSnapshot`] (vault state, every
//! member's record and coverage window left, the home members' solvency and `bookedDraws()`),
//! then the vault facts of the blocks confirmed since (registrations, paid legs, executed
//! actions), then its home members' gaps. A node restarted after a crash reads from the
//! current head on, as a restarted watcher does: what it missed comes back only through the
//! core's reconciliations of its open incidents. The pinned blocks of a peer's proposal and
//! the reconciliations are answered from the simulated chains at once.
//!
//! Faults on top of the agreement simulation's (byzantine nodes, crashes, loss, delay,
//! duplication, partitions): each node's reads of a chain fail in outages (whole stretches
//! before the heal, so the node declares the chain halted and quarantines it, then sees it
//! resume) and at random (single reads and pinned-block fetches); a price feed deviates or
//! goes stale for a while ([`oracles`]); stores lose their unsynced writes at a crash.
//!
//! Checked on every run: everything the agreement simulation checks (no double signature,
//! one draw per `(member, seq)`, each leg paid once, no over-coverage, coverage windows,
//! declarations, no threshold action executed that no honest node or operator asked for,
//! liveness after the heal), over the decisions of the real node; and the recovery table:
//! no node attests a draw of a member whose feed its own newest snapshot shows faulty, no
//! member alert executes without a fault of the member's feed, no freeze of a member whose
//! books show every payout; and governance: the operators' script at the heal
//! ([`WholeNode::operator`]) has new limits approved by every honest operator, which must
//! execute on every vault, and a member change nobody approved, which no node may ask for
//! or sign and no vault execute; and a rotation of one honest node's guardian key, approved
//! by every honest operator, which must execute on every vault while incidents are in
//! flight (the node loads its new key a while after it is rotated out; the vaults refuse
//! the old one), after which every incident must still complete.

pub mod oracles;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use alloy::primitives::{Address, B256, U256, keccak256};
use alloy::signers::local::PrivateKeySigner;
use backstop_agreement::booking::Payout;
use backstop_agreement::kv::Kv;
use backstop_agreement::machine::{Output, Stats, ViewError};
use backstop_agreement::sim::LossyDisk;
use backstop_agreement::sim::chain::{DRAW_TTL_S, DUST, Fact, LEG_TTL_S, World, pinned_ms};
use backstop_agreement::sim::node::{Ctx, SetupArgs, SimInput, SimNode};
pub use backstop_agreement::sim::{SimFailure, SimReport as Report};
use backstop_agreement::state::IncidentRecord;
use backstop_agreement::{
    Attempt, Certificate, IncidentKey, Machine, Message, PinnedBlock, Refusal, Subject,
    ThresholdAction,
};
use backstop_chain::reads::{MemberRecord, Solvency, VaultState};
use backstop_chain::submit::{AlreadyDone, SubmitOutcome};
use backstop_contracts::bindings::IBackstopVault::Limits;
use backstop_contracts::eip712::{RotateGuardians, SetLimits, SetMember};
use backstop_types::{ActionAttestation, ActionProposal};
use backstop_types::{BreakerKind, SignalKind, oracle_subject};

use self::oracles::Fault;

use crate::chains::ChainInput;
use crate::core::{Action, AdminCommand, Input, NodeCore};
use crate::detect::{DetectorConfig, Detectors};
use crate::governance::GovernanceChange;
use crate::policy::{ALERT_CONTAGION, Policy, PolicyConfig, VaultFact};
use crate::view::{ChainSnapshot, MemberAt, MemberPolicy, NodeView, ViewConfig};

/// A node's reads of a chain failing this long (ms) make it declare the chain halted.
const HALT_AFTER_MS: u64 = 3_000;
/// Chance (per mille) that one read of a chain, or one pinned-block fetch, fails.
const READ_FAILURE_PERMILLE: u64 = 50;
/// The breakers' signal window and expiry (ms), and the detectors' re-assertion period.
/// The expiry is shorter than an operator's default (1 h) so that a breaker whose trigger
/// stopped holding lapses within the liveness bound.
const SIGNAL_WINDOW_MS: u64 = 300_000;
const SIGNAL_EXPIRY_MS: u64 = 60_000;
const SIGNAL_INTERVAL_MS: u64 = 10_000;
/// How long a threshold action this node asks for stays valid (s): the least an operator
/// may configure, so that a breaker's request the others no longer co-sign (their breakers
/// lapsed first) expires within the liveness bound.
const ACTION_TTL_S: u64 = 120;
/// Time a covered member's books get to declare the payout booked (ms).
const BOOKING_TIMEOUT_MS: u64 = 60_000;
/// How long a rotated-out node's operator takes to load the new key (ms).
const RELOAD_MS: u64 = 3_000;

/// Runs `seed` with the whole node core on every simulated node, on stores that lose their
/// unsynced writes at a crash.
pub fn run(seed: u64) -> Result<Report, SimFailure> {
    backstop_agreement::sim::run_nodes::<LossyDisk, WholeNode<_>>(seed, LossyDisk::default())
}

/// Runs seeds `first..first + count` on `threads` threads; reports and failures by seed.
pub fn run_many(first: u64, count: u64, threads: usize) -> (Vec<Report>, Vec<SimFailure>) {
    backstop_agreement::sim::run_many_with(first, count, threads, run)
}

/// One chain as a node reads it.
#[derive(Debug, Default)]
struct ChainRead {
    /// Newest block read.
    block: Option<u64>,
    /// When a read last succeeded (sim ms).
    ok_at: u64,
    /// Declared halted.
    halted: bool,
    /// When this node's reads fail wholesale (sim ms).
    outage: Option<(u64, u64)>,
}

/// What the simulation does with one of the core's actions.
enum Step {
    /// It leaves the node (gossip, a certificate).
    Out(Output),
    /// The chains answer it at once.
    Answer(Input),
    /// Nothing the simulation checks.
    Nothing,
}

/// The whole node core as a simulated node.
pub struct WholeNode<K> {
    core: NodeCore<PrivateKeySigner, K>,
    chains: Vec<ChainRead>,
    /// Facts of the world's log already read.
    cursor: usize,
    /// Contagion breakers this node's operator lifted (chain subject, trip time).
    lifted: BTreeSet<(B256, u64)>,
    /// The run's feed fault.
    fault: Option<Fault>,
    /// Whether the newest snapshot this node read of the fault's chain shows it.
    sees_fault: bool,
    /// Whether this node's operator waits to approve the limits proposal until its node
    /// lists it ([`WholeNode::operator`]).
    approving: bool,
    /// Whether it waits to approve the guardian rotation so.
    approving_rotation: bool,
    /// The key this node's operator rotates its guardian to, and when it first saw the
    /// node rotated out (it reloads [`RELOAD_MS`] later).
    next_key: Option<(PrivateKeySigner, Option<u64>)>,
}

impl<K: Kv> WholeNode<K> {
    /// The core's actions as the simulation carries them: gossip and certificates go out;
    /// block fetches, reconciliations and action checks are answered from the chains at
    /// once, and the answers fed back.
    fn carry(&mut self, ctx: &mut Ctx<'_>, actions: Vec<Action>) -> Result<Vec<Output>, String> {
        let mut out = Vec::new();
        let mut pending = std::collections::VecDeque::from(actions);
        while let Some(action) = pending.pop_front() {
            match self.step(ctx, action) {
                Step::Out(o) => {
                    self.check_attestation(ctx, &o)?;
                    out.push(o);
                }
                Step::Answer(input) => {
                    let more = self
                        .core
                        .handle(ctx.now_ms, input)
                        .map_err(|e| e.to_string())?;
                    pending.extend(more);
                }
                Step::Nothing => {}
            }
        }
        Ok(out)
    }

    /// The recovery table for a broken feed: a node that sees the fault itself refuses at
    /// once to attest the draws it prices.
    fn check_attestation(&self, ctx: &Ctx<'_>, o: &Output) -> Result<(), String> {
        if let Output::Broadcast(
            Message::ActionProposal(ActionProposal { action, .. })
            | Message::ActionAttestation(ActionAttestation { action, .. }),
        ) = o
            && matches!(action, ThresholdAction::SetMember(_))
        {
            return Err(format!(
                "asked for or signed a member change no operator approved ({})",
                action.id()
            ));
        }
        let (Output::Broadcast(Message::DrawAttestation(a)), Some(f)) = (o, self.fault) else {
            return Ok(());
        };
        let w = ctx.world.borrow();
        let priced = w
            .member_index(&a.key.member)
            .is_some_and(|m| w.members[m].home == f.chain);
        if priced && self.sees_fault {
            return Err(format!(
                "attested draw {:?} while its newest snapshot showed the member's feed faulty ({f:?})",
                a.key
            ));
        }
        Ok(())
    }

    /// What one of the core's actions comes to.
    fn step(&self, ctx: &mut Ctx<'_>, action: Action) -> Step {
        match action {
            Action::Publish(m) => Step::Out(Output::Broadcast(m)),
            // The submitter's check before sending: what is done on chain is not sent again.
            Action::Submit(cert) => match done_on_chain(&ctx.world.borrow(), ctx.sim_ms, &cert) {
                None => Step::Out(Output::Submit(cert)),
                Some(done) => Step::Answer(Input::Submitted {
                    subject: cert.subject,
                    result: Ok(SubmitOutcome::AlreadyDone(done)),
                }),
            },
            Action::Notice(_) | Action::CatchUp { .. } | Action::FollowGuardians(_) => {
                Step::Nothing
            }
            Action::Fetch {
                from,
                message,
                blocks,
            } => {
                let results = blocks
                    .into_iter()
                    .map(|b| (b, self.fetch(ctx, b)))
                    .collect();
                Step::Answer(Input::Fetched {
                    from,
                    message,
                    results,
                })
            }
            Action::CheckAction { vault, id } => {
                let w = ctx.world.borrow();
                let head_ms = w.block_time_ms(w.confirmed_head(ctx.sim_ms));
                let used = w
                    .chain_index(vault.chain_id)
                    .and_then(|c| w.chains[c].actions.get(&id))
                    .is_some_and(|at| *at <= head_ms);
                Step::Answer(Input::ActionChecked {
                    vault,
                    id,
                    result: Ok(used),
                })
            }
            Action::Reconcile {
                key, home_chain_id, ..
            } => Step::Answer(Input::Reconciled {
                key,
                result: Ok(reconcile(
                    &ctx.world.borrow(),
                    ctx.sim_ms,
                    key,
                    home_chain_id,
                )),
            }),
        }
    }

    fn input(&mut self, ctx: &mut Ctx<'_>, input: Input) -> Result<Vec<Output>, String> {
        let actions = self
            .core
            .handle(ctx.now_ms, input)
            .map_err(|e| e.to_string())?;
        self.carry(ctx, actions)
    }

    /// The operator's answer to a contagion breaker once the faults are over: the members'
    /// troubles are understood, their chain is lifted (the alert cleared on its vault), so
    /// that their gaps can be covered. Without it a contagion holds their chain quarantined
    /// for as long as their gaps stay uncovered, that is for ever.
    fn lift_contagion(&mut self, ctx: &mut Ctx<'_>) -> Result<Vec<Output>, String> {
        let tripped: Vec<(B256, u64)> = self
            .core
            .policy()
            .active()
            .filter(|b| b.id.kind == BreakerKind::Contagion)
            .map(|b| (b.id.subject, b.tripped_ms))
            .filter(|b| !self.lifted.contains(b))
            .collect();
        let mut out = Vec::new();
        for (subject, tripped_ms) in tripped {
            self.lifted.insert((subject, tripped_ms));
            let chain_id =
                u64::try_from(U256::from_be_bytes(subject.0)).map_err(|e| e.to_string())?;
            let lift = AdminCommand::ClearAlert { chain_id, subject };
            let (answer, actions) = self.core.admin(ctx.now_ms, lift);
            answer.map_err(|e| format!("contagion lift refused: {e}"))?;
            out.extend(self.carry(ctx, actions)?);
        }
        Ok(out)
    }

    /// The operators' governance script, after the heal (the simulation tells honest
    /// nodes' operators when): step 0, propose new limits on every vault, which every
    /// honest operator approves (step 2) once its node lists them, so they must execute on
    /// every vault (the run's check of approved actions); step 1, propose a member change
    /// that no operator approves, so no node may sign it and no vault execute it
    /// ([`WholeNode::check_attestation`], [`check_governance`]); step 3, rotate this node's
    /// own guardian key to a new one, which every honest operator approves (step 4), and
    /// load the new key [`RELOAD_MS`] after the node says it was rotated out
    /// ([`WholeNode::reload`]): incidents in flight then wait for it, and must complete.
    fn operator(&mut self, ctx: &mut Ctx<'_>, step: u8) -> Result<Vec<Output>, String> {
        let change = match step {
            0 => sim_limits(),
            1 => sim_member(&ctx.world.borrow()),
            3 => self.rotation()?,
            4 => {
                self.approving_rotation = true;
                return self.approve(ctx, |a| matches!(a, ThresholdAction::RotateGuardians(_)));
            }
            _ => {
                self.approving = true;
                return self.approve(ctx, |a| matches!(a, ThresholdAction::SetLimits(_)));
            }
        };
        let cmd = AdminCommand::Propose {
            chain_id: None,
            change,
        };
        let (answer, actions) = self.core.admin(ctx.now_ms, cmd);
        answer.map_err(|e| format!("governance proposal refused: {e}"))?;
        if step != 1 {
            self.expect_executed(ctx);
        }
        self.carry(ctx, actions)
    }

    /// The consortium's guardian set with this node's key replaced by a new one (kept to
    /// load once the vaults rotated it).
    fn rotation(&mut self) -> Result<GovernanceChange, String> {
        let cfg = self.core.machine().config();
        let old = cfg
            .consortium
            .node(cfg.me)
            .map(|n| n.guardian)
            .unwrap_or_default();
        let key = PrivateKeySigner::from_bytes(&keccak256(
            [b"rotated ".as_slice(), old.as_slice()].concat(),
        ))
        .map_err(|e| e.to_string())?;
        let mut guardians: Vec<Address> = cfg
            .consortium
            .guardians()
            .into_iter()
            .map(|g| if g == old { key.address() } else { g })
            .collect();
        guardians.sort();
        let (t, p) = (cfg.consortium.t() as u8, cfg.consortium.p() as u8);
        self.next_key = Some((key, None));
        Ok(GovernanceChange::Action(ThresholdAction::RotateGuardians(
            RotateGuardians {
                guardians,
                threshold: t,
                pauseThreshold: p,
                id: B256::ZERO,
                deadline: 0,
            },
        )))
    }

    /// Approves the open proposal whose action is `which` once this node lists it (steps 2
    /// and 4 of the script); clears the matching wait once approved.
    fn approve(
        &mut self,
        ctx: &mut Ctx<'_>,
        which: fn(&ThresholdAction) -> bool,
    ) -> Result<Vec<Output>, String> {
        let open = self
            .core
            .governance()
            .proposals()
            .find(|p| p.status.is_open() && which(&p.proposal.action));
        let Some((id, digest, action)) =
            open.map(|p| (p.proposal.id(), p.digest, p.proposal.action.clone()))
        else {
            return Ok(Vec::new());
        };
        if matches!(action, ThresholdAction::RotateGuardians(_)) {
            self.approving_rotation = false;
        } else {
            self.approving = false;
        }
        let (answer, actions) = self
            .core
            .admin(ctx.now_ms, AdminCommand::Approve { id, digest });
        answer.map_err(|e| format!("governance approval refused: {e}"))?;
        self.carry(ctx, actions)
    }

    /// The operator of a node whose key the vaults rotated out loads the new key, a while
    /// after the node said so.
    fn reload(&mut self, ctx: &mut Ctx<'_>) -> Result<Vec<Output>, String> {
        let cfg = self.core.machine().config();
        let mine = cfg.consortium.node(cfg.me).map(|n| n.guardian);
        let signing = self.core.machine().signing();
        let Some((key, since)) = &mut self.next_key else {
            return Ok(Vec::new());
        };
        if signing || mine != Some(key.address()) {
            return Ok(Vec::new());
        }
        let since = *since.get_or_insert(ctx.sim_ms);
        if ctx.sim_ms < since + RELOAD_MS {
            return Ok(Vec::new());
        }
        let key = key.clone();
        self.next_key = None;
        let actions = self
            .core
            .replace_signer(key, ctx.now_ms)
            .map_err(|e| e.to_string())?;
        if !self.core.machine().signing() {
            return Err("the rotated key was loaded but the node does not sign".into());
        }
        self.carry(ctx, actions)
    }

    /// Every honest operator approves the limits: they must execute on every target vault.
    fn expect_executed(&self, ctx: &Ctx<'_>) {
        let me = self.core.machine().config().me;
        let mut w = ctx.world.borrow_mut();
        for p in self.core.governance().open_of(me) {
            for vault in &p.targets {
                w.approved.insert((*vault, p.id()), p.action.clone());
            }
        }
    }

    /// Whether this node's read of chain `c` fails now.
    fn read_fails(&self, ctx: &mut Ctx<'_>, c: usize) -> bool {
        let down = self.chains[c]
            .outage
            .is_some_and(|(from, until)| ctx.sim_ms >= from && ctx.sim_ms < until);
        down || (ctx.sim_ms < ctx.heal_ms && ctx.rng.chance(READ_FAILURE_PERMILLE))
    }

    /// A pinned block of a peer's proposal: its snapshot if it is a confirmed canonical
    /// block this node can read now.
    fn fetch(&self, ctx: &mut Ctx<'_>, b: PinnedBlock) -> Result<ChainSnapshot, String> {
        let w = ctx.world.borrow();
        let c = w.chain_index(b.chain_id).ok_or("no such chain")?;
        if b.number > w.confirmed_head(ctx.sim_ms) || w.block_hash(c, b.number) != b.hash {
            return Err(format!(
                "block {} is not a confirmed canonical block",
                b.number
            ));
        }
        drop(w);
        if self.read_fails(ctx, c) {
            return Err("read failed".into());
        }
        Ok(snapshot(&ctx.world.borrow(), self.fault, c, b.number))
    }

    /// One step of the chain adapters: per chain, the halt verdict, the newest confirmed
    /// block, its facts and its members' gaps.
    fn read_chains(&mut self, ctx: &mut Ctx<'_>) -> Result<Vec<Output>, String> {
        let mut out = Vec::new();
        let chain_count = self.chains.len();
        for c in 0..chain_count {
            if self.read_fails(ctx, c) {
                let silent = ctx.sim_ms.saturating_sub(self.chains[c].ok_at);
                if !self.chains[c].halted && silent >= HALT_AFTER_MS {
                    self.chains[c].halted = true;
                    let chain_id = ctx.world.borrow().chains[c].vault.chain_id;
                    let halted = ChainInput::Halted {
                        chain_id,
                        halted: true,
                    };
                    out.extend(self.input(ctx, Input::Chain(halted))?);
                }
                continue;
            }
            self.chains[c].ok_at = ctx.sim_ms;
            for input in self.chain_inputs(ctx, c) {
                out.extend(self.input(ctx, Input::Chain(input))?);
            }
        }
        // Facts of every chain read, in the log's order, up to the first of a chain not read.
        for input in self.facts(ctx) {
            out.extend(self.input(ctx, Input::Chain(input))?);
        }
        for input in self.observations(ctx) {
            out.extend(self.input(ctx, Input::Chain(input))?);
        }
        Ok(out)
    }

    /// Chain `c`'s resumption and newest confirmed snapshot, when new.
    fn chain_inputs(&mut self, ctx: &Ctx<'_>, c: usize) -> Vec<ChainInput> {
        let w = ctx.world.borrow();
        let chain_id = w.chains[c].vault.chain_id;
        let mut inputs = Vec::new();
        let read = &mut self.chains[c];
        if read.halted {
            read.halted = false;
            inputs.push(ChainInput::Halted {
                chain_id,
                halted: false,
            });
        }
        let head = w.confirmed_head(ctx.sim_ms);
        if read.block.is_none_or(|b| b < head) {
            read.block = Some(head);
            if let Some(f) = self.fault.filter(|f| f.chain == c) {
                self.sees_fault = f.shows(c, w.block_time_ms(head), w.block_timestamp(head));
            }
            inputs.push(ChainInput::Snapshot(Box::new(snapshot(
                &w, self.fault, c, head,
            ))));
        }
        inputs
    }

    /// The facts confirmed since the last read, as the vault's events.
    fn facts(&mut self, ctx: &Ctx<'_>) -> Vec<ChainInput> {
        let w = ctx.world.borrow();
        let mut inputs = Vec::new();
        while let Some((at, fact)) = w.facts.get(self.cursor) {
            let vault = match fact {
                Fact::Registered { draw, .. } => w
                    .member_index(&draw.member)
                    .map(|m| w.chains[w.members[m].home].vault),
                Fact::LegPaid { vault, .. } | Fact::ActionExecuted { vault, .. } => Some(*vault),
            };
            let read = vault
                .and_then(|v| w.chain_index(v.chain_id))
                .and_then(|c| self.chains[c].block);
            let block = w.block_at(*at);
            if read.is_none_or(|r| r < block) {
                break;
            }
            inputs.push(fact_input(fact, block));
            if let Fact::ActionExecuted {
                vault,
                action: ThresholdAction::RotateGuardians(r),
                ..
            } = fact
            {
                inputs.push(ChainInput::GuardianSet {
                    vault: *vault,
                    guardians: r.guardians.clone(),
                });
            }
            self.cursor += 1;
        }
        inputs
    }

    /// Every member's gap at the newest block read of its home chain.
    fn observations(&self, ctx: &Ctx<'_>) -> Vec<ChainInput> {
        let w = ctx.world.borrow();
        w.members
            .iter()
            .enumerate()
            .filter_map(|(m, member)| {
                let head = self.chains[member.home].block?;
                Some(ChainInput::Observed(w.observation(m, head)))
            })
            .collect()
    }
}

/// No breaker effect executes without its cause: a member's alert only after a fault of the
/// feed that prices it, a member's freeze only for a member whose books do not show every
/// payout.
/// Incidents in flight while the vaults rotated a guardian key: a draw pinned before the
/// first vault rotated and registered after it (signed across the rotation), and a draw
/// registered before it with a leg paid after the last vault rotated (its legs released
/// across it).
fn across_rotation(w: &World) -> [(&'static str, u64); 2] {
    let rotated: Vec<u64> = w
        .chains
        .iter()
        .filter_map(|c| c.rotations.first().map(|(at, _)| *at))
        .collect();
    let (Some(&first), Some(&last)) = (rotated.iter().min(), rotated.iter().max()) else {
        return [
            ("draws registered across a rotation", 0),
            ("legs paid across a rotation", 0),
        ];
    };
    let (mut draws, mut legs) = (0, 0);
    for (at, hash, draw) in w.chains.iter().flat_map(|c| c.registered.values()) {
        if pinned_ms(draw) < first && *at >= first {
            draws += 1;
        }
        let paid_after = w
            .chains
            .iter()
            .any(|c| c.leg_paid.get(hash).is_some_and(|p| *p >= last));
        if *at < first && paid_after {
            legs += 1;
        }
    }
    [
        ("draws registered across a rotation", draws),
        ("legs paid across a rotation", legs),
    ]
}

/// The limits node 0's operator proposes in the governance script.
fn sim_limits() -> GovernanceChange {
    GovernanceChange::Action(ThresholdAction::SetLimits(SetLimits {
        bucketCapacity: 1_000_000,
        refillPerSecond: 10,
        reserveFloor: U256::from(1),
        withdrawCooldown: 60,
        emergencyDuration: 600,
        id: B256::ZERO,
        deadline: 0,
    }))
}

/// The member change the script proposes and no operator approves (cap 0: a node that
/// just restarted knows no pool yet, and refuses a cap above it).
fn sim_member(w: &World) -> GovernanceChange {
    GovernanceChange::Action(ThresholdAction::SetMember(SetMember {
        member: B256::repeat_byte(0x6d),
        recipient: Address::repeat_byte(0x6e),
        homeChainId: w.chains.first().map_or(0, |c| c.vault.chain_id),
        cap: 0,
        deductible: 0,
        coverageLimit: 1,
        coverageWindow: 3_600,
        id: B256::ZERO,
        deadline: 0,
    }))
}

/// No vault executed a member change: the governance script's only one was approved by no
/// operator.
fn check_governance(w: &World) -> Result<(), String> {
    for (_, fact) in &w.facts {
        if let Fact::ActionExecuted {
            vault,
            action: ThresholdAction::SetMember(m),
            ..
        } = fact
        {
            return Err(format!(
                "member change {} executed on chain {} without any operator's approval",
                m.id, vault.chain_id
            ));
        }
    }
    Ok(())
}

fn check_recovery_table(w: &World, fault: Option<Fault>) -> Result<(), String> {
    for (at, fact) in &w.facts {
        let Fact::ActionExecuted { action, .. } = fact else {
            continue;
        };
        match action {
            ThresholdAction::RaiseAlert(a) => {
                let Some(m) = w.member_index(&a.subject) else {
                    continue;
                };
                if fault.is_none_or(|f| f.chain != w.members[m].home || *at < f.from_ms) {
                    return Err(format!(
                        "alert on member {m} executed at {at} ms without a fault of its feed ({fault:?})"
                    ));
                }
            }
            ThresholdAction::Freeze(a) => {
                if let Some(m) = w.member_index(&a.member)
                    && w.members[m].declares_all()
                {
                    return Err(format!(
                        "member {m} ({:?}) frozen at {at} ms, yet its books show every payout",
                        w.members[m].booking
                    ));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// A vault fact as the chain adapter reports it.
fn fact_input(fact: &Fact, block: u64) -> ChainInput {
    let tx_hash = B256::from(U256::from(block));
    match fact {
        Fact::Registered {
            key,
            draw_hash,
            draw,
        } => ChainInput::Registered {
            key: *key,
            draw_hash: *draw_hash,
            draw: draw.clone(),
            tx_hash,
            block,
        },
        Fact::LegPaid { draw_hash, vault } => ChainInput::LegPaid {
            draw_hash: *draw_hash,
            vault: *vault,
            tx_hash,
            block,
        },
        Fact::ActionExecuted { vault, id, action } => {
            let (what, fact) = match action {
                ThresholdAction::Freeze(a) => ("freeze", Some(VaultFact::Frozen(a.member))),
                ThresholdAction::Unfreeze(a) => ("unfreeze", Some(VaultFact::Unfrozen(a.member))),
                ThresholdAction::Pause(_) => ("pause", None),
                ThresholdAction::Unpause(_) => ("unpause", None),
                ThresholdAction::RaiseAlert(a) => (
                    "raise alert",
                    Some(VaultFact::AlertRaised {
                        subject: a.subject,
                        level: a.level,
                    }),
                ),
                ThresholdAction::ClearAlert(a) => {
                    ("clear alert", Some(VaultFact::AlertCleared(a.subject)))
                }
                ThresholdAction::SetMember(_) => ("set member", None),
                ThresholdAction::SetLimits(_) => ("set limits", None),
                ThresholdAction::RotateGuardians(_) => ("rotate guardians", None),
            };
            ChainInput::ActionExecuted {
                vault: *vault,
                id: *id,
                what,
                fact,
                tx_hash,
            }
        }
    }
}

/// What the submitter's check before sending finds of a certificate at the confirmed head.
fn done_on_chain(w: &World, sim_ms: u64, cert: &Certificate) -> Option<AlreadyDone> {
    let head_ms = w.block_time_ms(w.confirmed_head(sim_ms));
    let c = w.chain_index(cert.subject.vault().chain_id)?;
    let chain = &w.chains[c];
    match &cert.subject {
        Subject::Draw { key, .. } => chain
            .registered
            .get(key)
            .filter(|(at, _, _)| *at <= head_ms)
            .map(|(_, hash, _)| AlreadyDone::OnChain {
                draw_hash: Some(*hash),
            }),
        Subject::Leg { release, .. } => chain
            .leg_paid
            .get(&release.drawHash)
            .filter(|at| **at <= head_ms)
            .map(|_| AlreadyDone::OnChain {
                draw_hash: Some(release.drawHash),
            }),
        Subject::Action { action, .. } => chain
            .actions
            .get(&action.id())
            .filter(|at| **at <= head_ms)
            .map(|_| AlreadyDone::OnChain { draw_hash: None }),
    }
}

/// What a reconciliation finds of `key` on the chains at `sim_ms`: its registration on the
/// home vault and the legs paid, once confirmed.
fn reconcile(w: &World, sim_ms: u64, key: IncidentKey, home_chain_id: u64) -> Vec<ChainInput> {
    let head_ms = w.block_time_ms(w.confirmed_head(sim_ms));
    let Some(home) = w.chain_index(home_chain_id) else {
        return Vec::new();
    };
    let Some((at, draw_hash, draw)) = w.chains[home].registered.get(&key) else {
        return Vec::new();
    };
    if *at > head_ms {
        return Vec::new();
    }
    let mut found = vec![fact_input(
        &Fact::Registered {
            key,
            draw_hash: *draw_hash,
            draw: draw.clone(),
        },
        w.block_at(*at),
    )];
    for c in &w.chains {
        if let Some(paid) = c.leg_paid.get(draw_hash).filter(|t| **t <= head_ms) {
            let leg = Fact::LegPaid {
                draw_hash: *draw_hash,
                vault: c.vault,
            };
            found.push(fact_input(&leg, w.block_at(*paid)));
        }
    }
    found
}

/// Chain `c` at block `b` as the chain adapter reads it (with the run's feed fault).
fn snapshot(w: &World, fault: Option<Fault>, c: usize, b: u64) -> ChainSnapshot {
    let ms = w.block_time_ms(b);
    let chain = &w.chains[c];
    let block = PinnedBlock {
        chain_id: chain.vault.chain_id,
        number: b,
        hash: w.block_hash(c, b),
    };
    let members = w
        .members
        .iter()
        .enumerate()
        .map(|(m, member)| {
            let record = MemberRecord {
                recipient: Address::from_word(member.id),
                home_chain_id: w.chains[member.home].vault.chain_id,
                frozen_until: 0,
                frozen: false,
                next_seq: w.next_seq(m, ms),
                cap: member.cap.saturating_to(),
                deductible: 0,
                coverage_limit: member.coverage_limit.saturating_to(),
                coverage_window: member.coverage_window_s,
                coverage_available: w.coverage_available(c, m, ms),
            };
            let solvency = (member.home == c).then(|| Solvency {
                assets: U256::ZERO,
                liabilities: w.gap(m, ms),
                booked_draws: w.booked_draws(m, ms),
            });
            let at = MemberAt {
                record,
                solvency,
                risk: None,
            };
            (member.id, Arc::new(at))
        })
        .collect();
    let balance = w.balance(c, ms);
    ChainSnapshot {
        block,
        timestamp: w.block_timestamp(b),
        vault: VaultState {
            block,
            vault: chain.vault.address,
            token: Address::ZERO,
            balance,
            limits: Limits::default(),
            bucket_available: balance,
            available_for_payout: balance,
            paused: false,
            paused_until: 0,
            guardians: w.guardians_at(c, ms).iter().copied().collect(),
            threshold: w.threshold as u8,
            pause_threshold: w.pause_threshold as u8,
            guardian_set_index: 0,
        },
        members: Arc::new(members),
        oracles: oracles::reads(fault, c, ms, w.block_timestamp(b)),
    }
}

/// The node's view, detectors and policy over the simulated world, with the defaults an
/// operator's configuration gets (the chains' draw and leg deadlines are the world's).
fn parts(w: &World, me: usize, settle_ms: u64) -> (NodeView, Detectors, Policy) {
    let members: BTreeMap<B256, u64> = w
        .members
        .iter()
        .map(|m| (m.id, w.chains[m.home].vault.chain_id))
        .collect();
    // Each member is priced by its home chain's member feed.
    let priced: BTreeMap<B256, (u64, Option<B256>)> = w
        .members
        .iter()
        .map(|m| {
            let chain_id = w.chains[m.home].vault.chain_id;
            let feed = oracle_subject(chain_id, oracles::feed(m.home, false));
            (m.id, (chain_id, Some(feed)))
        })
        .collect();
    let view = NodeView::new(view_config(w, &members, settle_ms));
    let detectors = Detectors::new(DetectorConfig {
        max_deviation_bps: 500,
        max_staleness_s: oracles::MAX_STALENESS_S,
        outflow_drop_bps: 2_000,
        outflow_window_blocks: 50,
        depeg_bps: 200,
        interval_ms: SIGNAL_INTERVAL_MS,
        booking_timeout_ms: BOOKING_TIMEOUT_MS,
        dust: DUST,
        oracles: oracles::specs(w),
        pool_oracles: BTreeMap::new(),
        members: members.clone(),
    });
    let policy = Policy::new(PolicyConfig {
        me,
        n: w.guardians.len(),
        p: w.pause_threshold,
        window_ms: SIGNAL_WINDOW_MS,
        expiry_ms: SIGNAL_EXPIRY_MS,
        contagion_members: 2,
        origin_delay_ms: 3_000,
        chains: w.chains.iter().map(|c| c.vault.chain_id).collect(),
        members: priced,
    });
    (view, detectors, policy)
}

/// The view's configuration: the world's vaults and members (by home chain).
fn view_config(w: &World, members: &BTreeMap<B256, u64>, settle_ms: u64) -> ViewConfig {
    ViewConfig {
        vaults: w
            .chains
            .iter()
            .map(|c| (c.vault.chain_id, c.vault.address))
            .collect(),
        members: members
            .iter()
            .map(|(id, home)| {
                let policy = MemberPolicy {
                    home_chain_id: *home,
                    local_cap: None,
                };
                (*id, policy)
            })
            .collect(),
        dust: DUST,
        draw_ttl_s: DRAW_TTL_S,
        leg_ttl_s: LEG_TTL_S,
        max_pin_age_s: DRAW_TTL_S,
        settle_s: settle_ms.div_ceil(1000),
        keep: 256,
        action_ttl_s: ACTION_TTL_S,
    }
}

impl<K: Kv> SimNode for WholeNode<K> {
    type Kv = K;

    fn start(setup: SetupArgs<K>, mut ctx: Ctx<'_>) -> Result<(Self, Vec<Output>), String> {
        let me = usize::from(setup.config.me);
        let settle_ms = setup.config.settle_ms;
        let (view, detectors, policy) = parts(&ctx.world.borrow(), me, settle_ms);
        let machine = Machine::restore(setup.config, view, setup.key, setup.store, ctx.now_ms)
            .map_err(|e| format!("restore: {e}"))?
            .with_signature_check(setup.checker);
        let chain_count = ctx.world.borrow().chains.len();
        let fault = Fault::of(&ctx.world.borrow(), ctx.heal_ms);
        let chains = (0..chain_count)
            .map(|_| {
                // About one chain in four goes dark for this node for a while before the heal.
                let outage = ctx.rng.chance(250).then(|| {
                    let from = ctx.rng.range(0, ctx.heal_ms.saturating_sub(1_000));
                    (from, (from + ctx.rng.range(1_000, 12_000)).min(ctx.heal_ms))
                });
                ChainRead {
                    ok_at: ctx.sim_ms,
                    outage,
                    ..ChainRead::default()
                }
            })
            .collect();
        // A restarted watcher starts at the current head: facts it missed come back through
        // reconciliation.
        let cursor = {
            let w = ctx.world.borrow();
            let head_ms = w.block_time_ms(w.confirmed_head(ctx.sim_ms));
            w.facts.iter().take_while(|(at, _)| *at <= head_ms).count()
        };
        let mut node = Self {
            core: NodeCore::new(machine, policy, detectors, ACTION_TTL_S),
            chains,
            cursor,
            lifted: BTreeSet::new(),
            fault,
            sees_fault: false,
            approving: false,
            approving_rotation: false,
            next_key: None,
        };
        let actions = node.core.start(ctx.now_ms).map_err(|e| e.to_string())?;
        let out = node.carry(&mut ctx, actions)?;
        Ok((node, out))
    }

    fn handle(&mut self, mut ctx: Ctx<'_>, input: SimInput) -> Result<Vec<Output>, String> {
        match input {
            SimInput::Received { from, message } => {
                let gossip = Input::Gossip {
                    signer: usize::from(from),
                    message,
                };
                self.input(&mut ctx, gossip)
            }
            SimInput::Tick => {
                let mut out = self.read_chains(&mut ctx)?;
                out.extend(self.input(&mut ctx, Input::PolicyTick)?);
                out.extend(self.input(&mut ctx, Input::Tick)?);
                if ctx.sim_ms >= ctx.heal_ms {
                    out.extend(self.lift_contagion(&mut ctx)?);
                }
                if self.approving {
                    out.extend(
                        self.approve(&mut ctx, |a| matches!(a, ThresholdAction::SetLimits(_)))?,
                    );
                }
                if self.approving_rotation {
                    out.extend(self.approve(&mut ctx, |a| {
                        matches!(a, ThresholdAction::RotateGuardians(_))
                    })?);
                }
                out.extend(self.reload(&mut ctx)?);
                Ok(out)
            }
            SimInput::Request { vault, action } => {
                let actions = self
                    .core
                    .request(ctx.now_ms, vault, action)
                    .map_err(|e| e.to_string())?;
                self.carry(&mut ctx, actions)
            }
            SimInput::Operator { step } => self.operator(&mut ctx, step),
        }
    }

    fn check_world(w: &World, heal_ms: u64) -> Result<(), String> {
        check_recovery_table(w, Fault::of(w, heal_ms))?;
        check_governance(w)
    }

    fn tally(w: &World, heal_ms: u64) -> Vec<(&'static str, u64)> {
        let mut tally: BTreeMap<&'static str, u64> = BTreeMap::new();
        if Fault::of(w, heal_ms).is_some() {
            *tally.entry("feed faults").or_default() += 1;
        }
        for (_, fact) in &w.facts {
            let Fact::ActionExecuted { action, .. } = fact else {
                continue;
            };
            let name = match action {
                ThresholdAction::RaiseAlert(a) if w.member_index(&a.subject).is_some() => {
                    "member alerts"
                }
                ThresholdAction::RaiseAlert(a) if a.level >= ALERT_CONTAGION => "contagion alerts",
                ThresholdAction::RaiseAlert(_) => "chain alerts",
                ThresholdAction::Freeze(_) => "freezes",
                ThresholdAction::ClearAlert(_) => "alerts cleared",
                ThresholdAction::Unfreeze(_) => "unfreezes",
                ThresholdAction::Pause(_) | ThresholdAction::Unpause(_) => "pauses",
                ThresholdAction::SetMember(_)
                | ThresholdAction::SetLimits(_)
                | ThresholdAction::RotateGuardians(_) => "governance changes",
            };
            *tally.entry(name).or_default() += 1;
        }
        for (phase, count) in across_rotation(w) {
            *tally.entry(phase).or_default() += count;
        }
        tally.into_iter().collect()
    }

    fn requestable(_: &ThresholdAction) -> bool {
        // Peers approve an operator's lift (not freezes and alerts: only their own breakers
        // want those), with a deadline no further than a node sets: the simulation's lift is
        // made so (the operators' alert clearings are the contagion lifts).
        false
    }

    fn open_actions(&self) -> usize {
        self.core.machine().open_actions()
    }

    fn open_incidents(&self) -> Vec<(IncidentKey, Attempt)> {
        self.core.machine().open_incidents()
    }

    fn incident(&self, key: &IncidentKey) -> Option<&IncidentRecord> {
        self.core.machine().incident(key)
    }

    fn payout(&self, member: &B256) -> Option<&Payout> {
        self.core.machine().view().payout(member)
    }

    fn stats(&self) -> &Stats {
        self.core.machine().stats()
    }

    fn refuses_unbooked(&self, key: &IncidentKey, now_ms: u64) -> bool {
        let view = self.core.machine().view();
        match view.compute(key, &view.pins(), now_ms) {
            Err(ViewError::Refused(Refusal::NotBooked(_))) => true,
            // The payout-not-booked breaker blocks the member (by a breaker of that kind, or
            // this node's own signal of that kind).
            Err(ViewError::Refused(Refusal::MemberBlocked(why))) => {
                why.contains(BreakerKind::PayoutNotBooked.as_str())
                    || why.contains(&format!("{:?}", SignalKind::PayoutNotBooked))
            }
            _ => false,
        }
    }
}
