//! Chain adapters of the node: per chain, the watcher's confirmed blocks become snapshots
//! for the view, gap observations and vault facts for the agreement core; certificates
//! become vault transactions through the chain's submitter.
//!
//! Invariants:
//! - confirmed blocks that wait together (a burst, a catch-up) are read at the newest only:
//!   its snapshot is sent to the core before the vault events of every one of them, in
//!   order, and before its observations, so a proposer always has the state of the block it
//!   observed and the view holds a block at least as new as any vault event it hears of;
//! - a snapshot is read entirely at one block (pinned by number and checked by hash);
//! - a registration's draw is taken from the registering transaction's calldata only when
//!   its EIP-712 digest equals the draw hash the vault emitted;
//! - reads for a proposal's pinned block happen only once that block is canonical and
//!   confirmed on this node's own RPC endpoints.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use alloy::primitives::{Address, B256, U256};
use alloy::providers::Provider;
use alloy::rpc::types::{Filter, Log};
use alloy::sol_types::SolCall;
use alloy::sol_types::SolEvent;
use backstop_agreement as ag;
use backstop_chain::reads::{ReadError, Reader};
use backstop_chain::rpc::{CallError, RpcError, RpcPool};
use backstop_chain::watcher::{ChainEvent, ConfirmedBlock};
use backstop_contracts::bindings::BackstopVault;
use backstop_contracts::bindings::BackstopVault::BackstopVaultEvents as Ev;
use backstop_contracts::eip712::{Draw, Signable, VaultId};
use backstop_types::Consortium;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::policy::VaultFact;
use crate::view::OracleRead;
use crate::view::{ChainSnapshot, MemberAt};

/// Errors of the chain adapters.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// An RPC call failed.
    #[error(transparent)]
    Rpc(#[from] RpcError),
    /// A pinned read failed.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// The chain's answer is inconsistent with what the node expects.
    #[error("chain {chain_id}: {reason}")]
    Inconsistent {
        /// Chain.
        chain_id: u64,
        /// What is wrong.
        reason: String,
    },
}

/// A member as one chain adapter reads it.
#[derive(Clone, Copy, Debug)]
pub struct ChainMember {
    /// Member id.
    pub id: B256,
    /// Its `solvency()` contract when the member is homed on this chain.
    pub solvency: Option<Address>,
}

/// What one chain adapter reads.
#[derive(Clone, Debug)]
pub struct ChainSpec {
    /// Chain id.
    pub chain_id: u64,
    /// The vault.
    pub vault: Address,
    /// Its pool token.
    pub token: Address,
    /// Confirmation depth.
    pub confirmations: u64,
    /// Configured members.
    pub members: Vec<ChainMember>,
    /// Oracles read with every snapshot (the detectors' feeds on this chain).
    pub oracles: Vec<Address>,
}

impl ChainSpec {
    /// The vault's id.
    pub fn vault_id(&self) -> VaultId {
        VaultId {
            chain_id: self.chain_id,
            address: self.vault,
        }
    }
}

/// A chain fact for the core.
#[derive(Clone, Debug)]
pub enum ChainInput {
    /// The newest confirmed block's snapshot.
    Snapshot(Box<ChainSnapshot>),
    /// A member's solvency at a confirmed head of its home chain.
    Observed(ag::GapObservation),
    /// A draw registered on its home vault (confirmed).
    Registered {
        /// Incident.
        key: ag::IncidentKey,
        /// Draw hash.
        draw_hash: B256,
        /// The draw.
        draw: Draw,
        /// Registering transaction.
        tx_hash: B256,
        /// Its block.
        block: u64,
    },
    /// A leg paid (on the home vault at registration, or released on a remote one).
    LegPaid {
        /// Draw hash.
        draw_hash: B256,
        /// Paying vault.
        vault: VaultId,
        /// Transaction.
        tx_hash: B256,
        /// Its block.
        block: u64,
    },
    /// A threshold action executed.
    ActionExecuted {
        /// Vault.
        vault: VaultId,
        /// Action id.
        id: B256,
        /// What it was.
        what: &'static str,
        /// What it did, for the breakers (freezes and alerts).
        fact: Option<VaultFact>,
        /// Transaction.
        tx_hash: B256,
    },
    /// A vault's guardian set: read at start, then each rotation it executed (confirmed).
    GuardianSet {
        /// Vault.
        vault: VaultId,
        /// Its guardians, in the vault's order.
        guardians: Vec<Address>,
    },
    /// A new unconfirmed head.
    Head {
        /// Chain.
        chain_id: u64,
        /// Number.
        number: u64,
    },
    /// Blocks dropped by a reorg.
    Reorg {
        /// Chain.
        chain_id: u64,
        /// Dropped blocks (number, hash).
        dropped: Vec<(u64, B256)>,
        /// Some were confirmed (the reorg is deeper than the confirmation depth).
        deep: bool,
    },
    /// The chain halted (`true`) or resumed.
    Halted {
        /// Chain.
        chain_id: u64,
        /// Halted or resumed.
        halted: bool,
    },
}

/// Reads the snapshot of `block`: vault state, member records and home members' solvency,
/// and the block's timestamp, all at that block.
pub async fn read_snapshot(
    pool: &RpcPool,
    spec: &ChainSpec,
    block: ag::PinnedBlock,
) -> Result<ChainSnapshot, ChainError> {
    let pinned = block;
    let reader = Reader::new(pool);
    let asked: Vec<(B256, Option<Address>)> =
        spec.members.iter().map(|m| (m.id, m.solvency)).collect();
    let (header, vault, members, oracles) = tokio::try_join!(
        async {
            pool.block_with_time(block.number)
                .await
                .map_err(ChainError::from)
        },
        async {
            reader
                .vault_state(&pinned, spec.vault, spec.token)
                .await
                .map_err(ChainError::from)
        },
        async {
            reader
                .members(&pinned, spec.vault, &asked)
                .await
                .map_err(ChainError::from)
        },
        async { Ok(reader.oracles(&pinned, &spec.oracles).await) },
    )?;
    // A feed that cannot be read is a fact for the detectors, not a failed block.
    let oracles = spec
        .oracles
        .iter()
        .zip(oracles)
        .map(|(&o, read)| match read {
            Ok((answer, decimals)) => (
                o,
                Some(OracleRead {
                    answer: answer.answer,
                    updated_at: answer.updated_at,
                    decimals,
                }),
            ),
            Err(e) => {
                debug!(chain_id = pinned.chain_id, oracle = %o, error = %e, "oracle unreadable");
                (o, None)
            }
        })
        .collect();
    let (at, timestamp) = header;
    if at.hash != block.hash {
        return Err(ChainError::Inconsistent {
            chain_id: block.chain_id,
            reason: format!(
                "block {} is {} on this node's endpoint, not {}",
                block.number, at.hash, block.hash
            ),
        });
    }
    // The members the vault knows.
    let members = spec
        .members
        .iter()
        .zip(members)
        .filter_map(|(m, read)| {
            let at = MemberAt {
                record: read.record?,
                solvency: read.solvency,
                risk: read.risk,
            };
            Some((m.id, Arc::new(at)))
        })
        .collect();
    Ok(ChainSnapshot {
        block,
        timestamp,
        vault,
        members: Arc::new(members),
        oracles,
    })
}

/// Reads a block a proposal pinned, once it is canonical and confirmed here. Retries for up
/// to `patience` while this node's endpoints are behind.
pub async fn fetch_pinned(
    pool: &RpcPool,
    spec: &ChainSpec,
    block: ag::PinnedBlock,
    patience: Duration,
) -> Result<ChainSnapshot, ChainError> {
    let give_up = tokio::time::Instant::now() + patience;
    loop {
        let head = pool.head_number().await?;
        if head >= block.number.saturating_add(spec.confirmations) {
            let canonical = pool.block_ref(block.number).await?;
            if canonical.hash != block.hash {
                return Err(ChainError::Inconsistent {
                    chain_id: block.chain_id,
                    reason: format!("pinned block {} is not canonical", block.number),
                });
            }
            return read_snapshot(pool, spec, block).await;
        }
        if tokio::time::Instant::now() >= give_up {
            return Err(ChainError::Inconsistent {
                chain_id: block.chain_id,
                reason: format!("pinned block {} is not confirmed here", block.number),
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The draw a registering transaction carried, checked against the emitted draw hash.
async fn registered_draw(
    pool: &RpcPool,
    vault: VaultId,
    tx_hash: B256,
    draw_hash: B256,
) -> Result<Draw, ChainError> {
    Ok(registration_call(pool, vault, tx_hash, draw_hash)
        .await?
        .draw)
}

/// The `registerDraw` call (draw and guardian signatures) of a registering transaction,
/// checked against the emitted draw hash.
pub async fn registration_call(
    pool: &RpcPool,
    vault: VaultId,
    tx_hash: B256,
    draw_hash: B256,
) -> Result<BackstopVault::registerDrawCall, ChainError> {
    let input = pool
        .call("eth_getTransactionByHash", |p| async move {
            let tx = p
                .get_transaction_by_hash(tx_hash)
                .await?
                .ok_or_else(|| CallError::Invalid(format!("transaction {tx_hash} not found")))?;
            Ok(alloy::consensus::Transaction::input(&tx).clone())
        })
        .await?;
    let call = BackstopVault::registerDrawCall::abi_decode(&input).map_err(|e| {
        ChainError::Inconsistent {
            chain_id: vault.chain_id,
            reason: format!("registration {tx_hash} is not a direct registerDraw call: {e}"),
        }
    })?;
    if call.draw.digest(&vault) != draw_hash {
        return Err(ChainError::Inconsistent {
            chain_id: vault.chain_id,
            reason: format!("registration {tx_hash}: calldata does not hash to {draw_hash}"),
        });
    }
    Ok(call)
}

/// Most watcher events the adapter takes in at once.
const MAX_BATCH: usize = 256;

/// What the adapter handles in one step: consecutive confirmed blocks together, any other
/// watcher event alone.
#[derive(Debug)]
enum Step {
    /// Confirmed blocks that waited together, oldest first.
    Confirmed(Vec<ConfirmedBlock>),
    /// Any other event.
    Other(ChainEvent),
}

/// Splits a batch of watcher events into steps, keeping their order.
fn steps(batch: Vec<ChainEvent>) -> Vec<Step> {
    let mut out: Vec<Step> = Vec::new();
    for event in batch {
        match (event, out.last_mut()) {
            (ChainEvent::Confirmed(cb), Some(Step::Confirmed(run))) => run.push(*cb),
            (ChainEvent::Confirmed(cb), _) => out.push(Step::Confirmed(vec![*cb])),
            (other, _) => out.push(Step::Other(other)),
        }
    }
    out
}

/// Turns a watcher's events into core inputs: one task per chain. Confirmed blocks that
/// wait together (a burst of blocks, a node catching up) are read at the newest only.
pub async fn run_adapter(
    pool: Arc<RpcPool>,
    spec: ChainSpec,
    mut events: mpsc::Receiver<ChainEvent>,
    core: mpsc::Sender<ChainInput>,
) {
    let vault = spec.vault_id();
    while let Some(first) = events.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH
            && let Ok(e) = events.try_recv()
        {
            batch.push(e);
        }
        for step in steps(batch) {
            let inputs = match step {
                Step::Confirmed(run) => confirmed_run(&pool, &spec, vault, &run).await,
                Step::Other(event) => other_inputs(event),
            };
            for i in inputs {
                if core.send(i).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// The inputs of a watcher event other than a confirmed block.
fn other_inputs(event: ChainEvent) -> Vec<ChainInput> {
    match event {
        ChainEvent::Confirmed(_) => Vec::new(),
        ChainEvent::NewHead { chain_id, block } => vec![ChainInput::Head {
            chain_id,
            number: block.number,
        }],
        ChainEvent::Reorg {
            chain_id,
            dropped,
            deep,
            ..
        } => vec![ChainInput::Reorg {
            chain_id,
            dropped: dropped.iter().map(|b| (b.number, b.hash)).collect(),
            deep,
        }],
        ChainEvent::Halted { chain_id, .. } => vec![ChainInput::Halted {
            chain_id,
            halted: true,
        }],
        ChainEvent::Resumed { chain_id } => vec![ChainInput::Halted {
            chain_id,
            halted: false,
        }],
    }
}

/// The inputs of confirmed blocks that waited together: read at the newest; if that fails,
/// block by block. A block that cannot be read is lost to this node only until a later
/// block is read (observations repeat every block; vault events are idempotent for peers,
/// who submit what this node misses).
async fn confirmed_run(
    pool: &RpcPool,
    spec: &ChainSpec,
    vault: VaultId,
    run: &[ConfirmedBlock],
) -> Vec<ChainInput> {
    let (Some(first), Some(last)) = (run.first(), run.last()) else {
        return Vec::new();
    };
    let (from, to) = (first.block.number, last.block.number);
    match confirmed(pool, spec, vault, run).await {
        Ok(inputs) => {
            if run.len() > 1 {
                debug!(
                    chain_id = spec.chain_id,
                    from, to, "confirmed blocks read at the newest"
                );
            }
            return inputs;
        }
        Err(e) if run.len() == 1 => {
            warn!(chain_id = spec.chain_id, block = to, error = %e, "confirmed block unread");
            return Vec::new();
        }
        Err(e) => {
            warn!(chain_id = spec.chain_id, from, to, error = %e, "confirmed blocks unread at the newest; reading each");
        }
    }
    let mut all = Vec::new();
    for cb in run {
        match confirmed(pool, spec, vault, std::slice::from_ref(cb)).await {
            Ok(inputs) => all.extend(inputs),
            Err(e) => {
                warn!(chain_id = spec.chain_id, block = cb.block.number, error = %e, "confirmed block unread")
            }
        }
    }
    all
}

/// The inputs of confirmed blocks `run`, oldest first: the newest block's snapshot, every
/// block's vault facts in order, then the newest block's observations. (The view must hold
/// a block before the core hears of it; a registration is known before the observation of
/// the same block, whose seq already moved on.)
async fn confirmed(
    pool: &RpcPool,
    spec: &ChainSpec,
    vault: VaultId,
    run: &[ConfirmedBlock],
) -> Result<Vec<ChainInput>, ChainError> {
    let Some(newest) = run.last() else {
        return Ok(Vec::new());
    };
    let block = ag::PinnedBlock {
        chain_id: newest.block.chain_id,
        number: newest.block.number,
        hash: newest.block.hash,
    };
    let (snap, facts) = tokio::try_join!(
        read_snapshot(pool, spec, block),
        futures::future::try_join_all(run.iter().map(|cb| block_facts(pool, spec, vault, cb)))
    )?;
    let observed = observations(spec, &snap);
    let mut all = Vec::with_capacity(1 + facts.len() + observed.len());
    all.push(ChainInput::Snapshot(Box::new(snap)));
    all.extend(facts.into_iter().flatten());
    all.extend(observed);
    Ok(all)
}

/// Every home member's solvency in `snap`.
fn observations(spec: &ChainSpec, snap: &ChainSnapshot) -> Vec<ChainInput> {
    let block = snap.block;
    let mut out = Vec::new();
    for m in spec.members.iter().filter(|m| m.solvency.is_some()) {
        if let Some(at) = snap.members.get(&m.id)
            && let Some(s) = at.solvency
        {
            out.push(ChainInput::Observed(ag::GapObservation {
                key: ag::IncidentKey {
                    member: m.id,
                    seq: at.record.next_seq,
                },
                home_chain_id: spec.chain_id,
                block_number: block.number,
                block_hash: block.hash,
                assets: s.assets,
                liabilities: s.liabilities,
            }));
        }
    }
    out
}

/// The vault facts of one confirmed block, in log order.
async fn block_facts(
    pool: &RpcPool,
    spec: &ChainSpec,
    vault: VaultId,
    cb: &ConfirmedBlock,
) -> Result<Vec<ChainInput>, ChainError> {
    let mut facts = Vec::new();
    for e in &cb.events {
        let tx_hash = e.tx_hash;
        match &e.event {
            Ev::DrawRegistered(r) => {
                let draw = registered_draw(pool, vault, tx_hash, r.drawHash).await?;
                facts.push(ChainInput::Registered {
                    key: ag::IncidentKey {
                        member: r.member,
                        seq: r.seq,
                    },
                    draw_hash: r.drawHash,
                    draw,
                    tx_hash,
                    block: e.block_number,
                });
            }
            Ev::LegPaid(p) => facts.push(ChainInput::LegPaid {
                draw_hash: p.drawHash,
                vault,
                tx_hash,
                block: e.block_number,
            }),
            Ev::MemberFrozen(a) => facts.push(action(
                vault,
                a.id,
                "freeze",
                Some(VaultFact::Frozen(a.member)),
                tx_hash,
            )),
            Ev::MemberUnfrozen(a) => facts.push(action(
                vault,
                a.id,
                "unfreeze",
                Some(VaultFact::Unfrozen(a.member)),
                tx_hash,
            )),
            Ev::VaultPausedUntil(a) => facts.push(action(vault, a.id, "pause", None, tx_hash)),
            Ev::VaultUnpaused(a) => facts.push(action(vault, a.id, "unpause", None, tx_hash)),
            Ev::AlertRaised(a) => facts.push(action(
                vault,
                a.id,
                "raise alert",
                Some(VaultFact::AlertRaised {
                    subject: a.subject,
                    level: a.level,
                }),
                tx_hash,
            )),
            Ev::AlertCleared(a) => facts.push(action(
                vault,
                a.id,
                "clear alert",
                Some(VaultFact::AlertCleared(a.subject)),
                tx_hash,
            )),
            Ev::MemberSet(a) => facts.push(action(vault, a.id, "set member", None, tx_hash)),
            Ev::LimitsSet(a) => facts.push(action(vault, a.id, "set limits", None, tx_hash)),
            Ev::GuardiansSet(a) => {
                facts.push(action(vault, a.id, "rotate guardians", None, tx_hash));
                facts.push(ChainInput::GuardianSet {
                    vault: VaultId {
                        chain_id: spec.chain_id,
                        address: spec.vault,
                    },
                    guardians: a.guardians.clone(),
                });
            }
            other => {
                debug!(chain_id = spec.chain_id, event = ?std::mem::discriminant(other), "vault event not acted on")
            }
        }
    }
    Ok(facts)
}

fn action(
    vault: VaultId,
    id: B256,
    what: &'static str,
    fact: Option<VaultFact>,
    tx_hash: B256,
) -> ChainInput {
    ChainInput::ActionExecuted {
        vault,
        id,
        what,
        fact,
        tx_hash,
    }
}

/// The vault's configuration read at the chain's head, for the start-up check.
#[derive(Clone, Debug)]
pub struct VaultSetup {
    /// Pool token.
    pub token: Address,
    /// Guardians.
    pub guardians: Vec<Address>,
    /// Threshold t.
    pub threshold: u8,
    /// Pause threshold p.
    pub pause_threshold: u8,
}

/// Reads a vault's token, guardian set and thresholds at the latest block.
pub async fn read_setup(pool: &RpcPool, vault: Address) -> Result<VaultSetup, ChainError> {
    let head = pool.head_number().await?;
    let b = pool.block_ref(head).await?;
    let pinned = b.pinned(pool.chain_id());
    let reader = Reader::new(pool);
    let token = reader.vault_token(&pinned, vault).await?;
    let state = reader.vault_state(&pinned, vault, token).await?;
    Ok(VaultSetup {
        token,
        guardians: state.guardians,
        threshold: state.threshold,
        pause_threshold: state.pause_threshold,
    })
}

/// Checks a vault's thresholds against the consortium's and maps its guardian set onto the
/// consortium's nodes ([`Consortium::rebind`]): the configured set, or it with one node's
/// key rotated by governance since the configuration was written. Anything else is refused,
/// naming what differs.
pub fn check_setup(
    chain_id: u64,
    setup: &VaultSetup,
    consortium: &Consortium,
) -> Result<Consortium, String> {
    let (t, p) = (consortium.t(), consortium.p());
    if usize::from(setup.threshold) != t || usize::from(setup.pause_threshold) != p {
        return Err(format!(
            "chain {chain_id}: the vault's thresholds t={} p={} differ from the consortium's t={t} p={p}",
            setup.threshold, setup.pause_threshold
        ));
    }
    consortium
        .rebind(&setup.guardians)
        .map_err(|e| format!("chain {chain_id}: the vault's guardian set differs from the configured consortium's: {e}"))
}

/// Keeps at most one outstanding fetch per pinned block.
#[derive(Debug, Default)]
pub struct FetchSet {
    outstanding: BTreeSet<ag::PinnedBlock>,
}

impl FetchSet {
    /// Marks `b` as being fetched; false when it already is or too many are.
    pub fn start(&mut self, b: ag::PinnedBlock, max: usize) -> bool {
        if self.outstanding.contains(&b) || self.outstanding.len() >= max {
            return false;
        }
        self.outstanding.insert(b)
    }

    /// Marks `b` done.
    pub fn done(&mut self, b: &ag::PinnedBlock) {
        self.outstanding.remove(b);
    }

    /// Whether `b` is being fetched.
    pub fn contains(&self, b: &ag::PinnedBlock) -> bool {
        self.outstanding.contains(b)
    }
}

/// How far back (blocks) a reconciliation looks for a registration or a leg it missed.
pub const RECONCILE_LOOKBACK: u64 = 50_000;

/// One chain's access for [`reconcile`].
pub struct ChainAccess<'a> {
    /// RPC.
    pub pool: &'a RpcPool,
    /// The adapter's spec (vault, confirmation depth).
    pub spec: &'a ChainSpec,
}

/// Reads from the chains what this node may have missed about an open incident (it was
/// down, or a confirmed block could not be read): the registration on the home vault and
/// the legs paid on the others, as the inputs the watcher would have delivered. Only
/// confirmed blocks are searched, at most [`RECONCILE_LOOKBACK`] blocks back.
pub async fn reconcile(
    home: ChainAccess<'_>,
    remotes: &[ChainAccess<'_>],
    key: ag::IncidentKey,
    registered: Option<(B256, Draw)>,
) -> Result<Vec<ChainInput>, ChainError> {
    let mut out = Vec::new();
    let (draw_hash, draw) = match registered {
        Some(r) => r,
        None => {
            let filter = BackstopVault::DrawRegistered::SIGNATURE_HASH;
            let logs = confirmed_logs(
                &home,
                Filter::new()
                    .address(home.spec.vault)
                    .event_signature(filter)
                    .topic1(key.member)
                    .topic2(B256::from(U256::from(key.seq))),
            )
            .await?;
            let Some(log) = logs.last() else {
                return Ok(out);
            };
            let (Some(tx_hash), Some(block)) = (log.transaction_hash, log.block_number) else {
                return Ok(out);
            };
            let r = log
                .log_decode::<BackstopVault::DrawRegistered>()
                .map_err(|e| ChainError::Inconsistent {
                    chain_id: home.spec.chain_id,
                    reason: format!("DrawRegistered log in {tx_hash}: {e}"),
                })?;
            let draw_hash = r.inner.data.drawHash;
            let draw = registered_draw(home.pool, home.spec.vault_id(), tx_hash, draw_hash).await?;
            out.push(ChainInput::Registered {
                key,
                draw_hash,
                draw: draw.clone(),
                tx_hash,
                block,
            });
            (draw_hash, draw)
        }
    };
    for leg in draw.legs.iter().filter(|l| l.chainId != home.spec.chain_id) {
        let Some(remote) = remotes.iter().find(|r| r.spec.chain_id == leg.chainId) else {
            continue;
        };
        let logs = confirmed_logs(
            remote,
            Filter::new()
                .address(remote.spec.vault)
                .event_signature(BackstopVault::LegPaid::SIGNATURE_HASH)
                .topic1(draw_hash),
        )
        .await?;
        if let Some(log) = logs.last()
            && let (Some(tx_hash), Some(block)) = (log.transaction_hash, log.block_number)
        {
            out.push(ChainInput::LegPaid {
                draw_hash,
                vault: remote.spec.vault_id(),
                tx_hash,
                block,
            });
        }
    }
    Ok(out)
}

/// Logs matching `filter` in the confirmed blocks of the last [`RECONCILE_LOOKBACK`].
async fn confirmed_logs(chain: &ChainAccess<'_>, filter: Filter) -> Result<Vec<Log>, ChainError> {
    let head = chain.pool.head_number().await?;
    let to = head.saturating_sub(chain.spec.confirmations);
    let from = to.saturating_sub(RECONCILE_LOOKBACK);
    let filter = filter.from_block(from).to_block(to);
    Ok(chain
        .pool
        .call("eth_getLogs", |p| {
            let filter = filter.clone();
            async move { Ok(p.get_logs(&filter).await?) }
        })
        .await?)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::rotation::testing::consortium;

    fn confirmed_at(number: u64) -> ChainEvent {
        ChainEvent::Confirmed(Box::new(ConfirmedBlock {
            block: ag::PinnedBlock {
                chain_id: 1,
                number,
                hash: B256::with_last_byte(number as u8),
            },
            parent_hash: B256::ZERO,
            events: Vec::new(),
            members: Vec::new(),
            oracles: Vec::new(),
        }))
    }

    fn head_at(number: u64) -> ChainEvent {
        ChainEvent::NewHead {
            chain_id: 1,
            block: backstop_chain::tracker::BlockRef {
                number,
                hash: B256::with_last_byte(number as u8),
                parent_hash: B256::ZERO,
            },
        }
    }

    /// What `steps` made of a batch: a confirmed run as its block numbers, any other event
    /// as `None`.
    fn shape(steps: &[Step]) -> Vec<Option<Vec<u64>>> {
        steps
            .iter()
            .map(|s| match s {
                Step::Confirmed(run) => Some(run.iter().map(|cb| cb.block.number).collect()),
                Step::Other(_) => None,
            })
            .collect()
    }

    #[test]
    fn confirmed_blocks_that_wait_together_are_one_step_and_other_events_keep_their_place() {
        let batch = vec![
            head_at(9),
            confirmed_at(5),
            confirmed_at(6),
            confirmed_at(7),
            ChainEvent::Resumed { chain_id: 1 },
            confirmed_at(8),
            head_at(10),
        ];
        assert_eq!(
            shape(&steps(batch)),
            [None, Some(vec![5, 6, 7]), None, Some(vec![8]), None]
        );
        assert!(steps(Vec::new()).is_empty());
    }

    fn setup(guardians: &[u8], t: u8, p: u8) -> VaultSetup {
        VaultSetup {
            token: Address::repeat_byte(0xee),
            guardians: addrs(guardians),
            threshold: t,
            pause_threshold: p,
        }
    }

    fn addrs(bytes: &[u8]) -> Vec<Address> {
        bytes.iter().map(|b| Address::repeat_byte(*b)).collect()
    }

    #[test]
    fn a_vault_matching_the_consortium_in_any_order_is_accepted() {
        let vault = setup(&[3, 1, 4, 2], 3, 2);
        assert_eq!(check_setup(7, &vault, &consortium()), Ok(consortium()));
    }

    #[test]
    fn a_vault_with_one_key_rotated_is_followed_and_other_sets_are_refused() {
        let c = consortium();
        let rotated = check_setup(7, &setup(&[1, 2, 3, 5], 3, 2), &c).unwrap();
        let four = c.index_of_guardian(&Address::repeat_byte(4));
        assert_eq!(rotated.index_of_guardian(&Address::repeat_byte(5)), four);
        assert_eq!(rotated.index_of_guardian(&Address::repeat_byte(4)), None);

        let err = check_setup(7, &setup(&[1, 2, 6, 5], 3, 2), &c).unwrap_err();
        assert!(
            err.starts_with("chain 7: the vault's guardian set"),
            "{err}"
        );
        // The error names exactly what differs.
        let named = |b: &[u8]| format!("{:?}", addrs(b));
        assert!(
            err.contains(&format!("guardians rotated out {}", named(&[3, 4]))),
            "{err}"
        );
        assert!(
            err.contains(&format!("new guardians {}", named(&[5, 6]))),
            "{err}"
        );
        let err = check_setup(7, &setup(&[1, 2, 3], 3, 2), &c).unwrap_err();
        assert!(
            err.contains(&format!("guardians rotated out {}", named(&[4]))),
            "{err}"
        );
    }

    #[test]
    fn a_vault_whose_thresholds_differ_is_refused() {
        for (t, p) in [(2, 2), (4, 2), (3, 1), (3, 3)] {
            let vault = setup(&[1, 2, 3, 4], t, p);
            let err = check_setup(9, &vault, &consortium()).unwrap_err();
            assert_eq!(
                err,
                format!(
                    "chain 9: the vault's thresholds t={t} p={p} differ from the consortium's t=3 p=2"
                )
            );
        }
    }
}
