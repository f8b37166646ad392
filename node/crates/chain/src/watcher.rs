//! One watcher per chain: new heads, the confirmed head, confirmed vault events and pinned
//! reads of the members whose home is this chain.
//!
//! The watcher is a thin async adapter around [`ConfirmationTracker`] and [`HaltDetector`].
//! Each tick it learns the chain's head (woken by a `newHeads` subscription when one of the
//! endpoints is a websocket, by a timer otherwise; requests themselves follow the pool's
//! failover order, so list an HTTP URL first, see [`RpcPool::ws_provider`]), fetches the head block by number, and feeds the
//! tracker, fetching the blocks it asks for (gaps, reorg walk-back). Every block fetched is
//! validated ([`RpcPool::block_ref`]).
//!
//! Delivery ([`ChainEvent::Confirmed`]): blocks are delivered in order, each exactly once per
//! canonical view, only once confirmed (`head - confirmations`). A delivered block carries the
//! vault's events of that block (fetched by number, each log checked to belong to the
//! delivered block hash and decoded; a log that does not is an error and nothing is
//! delivered), and the members' solvency, their next seq and the oracle answers read pinned
//! to that block's hash.
//!
//! Invariants:
//! - an event is delivered only from a confirmed block; a reorg of unconfirmed blocks is
//!   reported ([`ChainEvent::Reorg`]) and delivers nothing;
//! - a reorg of delivered blocks is reported `deep` and the replacing blocks are delivered
//!   once confirmed (the consumer rolls back what it derived from the dropped blocks);
//! - a chain that produces no new head for `halt_after` is reported halted once, and resumed
//!   once at its next head.

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy::primitives::{Address, B256, U256};
use alloy::providers::Provider;
use alloy::rpc::types::Filter;
use alloy::sol_types::SolEventInterface;
use backstop_contracts::bindings::BackstopVault::BackstopVaultEvents;
use futures::{Stream, StreamExt};
use tokio::sync::mpsc;

use crate::halt::{HaltDetector, Liveness};
use crate::reads::{OracleAnswer, PinnedBlock, ReadError, Reader, Solvency};
use crate::rpc::{RpcConfig, RpcError, RpcPool};
use crate::tracker::{BlockRef, ConfirmationTracker, Step, TrackerError, TrackerEvent};

/// A member whose home vault is on the watched chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WatchedMember {
    /// Member id (as registered in the vaults).
    pub member: B256,
    /// The member protocol's contract exposing `solvency()`.
    pub contract: Address,
}

/// Configuration of one chain's watcher.
#[derive(Clone, Debug)]
pub struct WatcherConfig {
    /// Endpoints.
    pub rpc: RpcConfig,
    /// The consortium's vault on this chain.
    pub vault: Address,
    /// Confirmation depth.
    pub confirmations: u64,
    /// Head polling period (also the fallback timer with a subscription).
    pub poll_interval: Duration,
    /// A chain without a new head for this long is halted.
    pub halt_after: Duration,
    /// Members whose home is this chain.
    pub members: Vec<WatchedMember>,
    /// Oracles read at every delivered block.
    pub oracles: Vec<Address>,
    /// Last block delivered before a restart; delivery resumes after it.
    pub checkpoint: Option<BlockRef>,
    /// Most blocks fetched per tick.
    pub max_blocks_per_tick: u64,
    /// When more blocks confirm at once, members and oracles are read only at the newest.
    pub max_reads_catchup: u64,
}

impl WatcherConfig {
    /// A config with defaults: 2 confirmations, 500 ms polling, halted after 30 s.
    pub fn new(rpc: RpcConfig, vault: Address) -> Self {
        Self {
            rpc,
            vault,
            confirmations: 2,
            poll_interval: Duration::from_millis(500),
            halt_after: Duration::from_secs(30),
            members: Vec::new(),
            oracles: Vec::new(),
            checkpoint: None,
            max_blocks_per_tick: 256,
            max_reads_catchup: 16,
        }
    }
}

/// A vault event from a confirmed block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VaultEvent {
    /// Block number.
    pub block_number: u64,
    /// Transaction.
    pub tx_hash: B256,
    /// Position in the block.
    pub log_index: u64,
    /// The decoded event.
    pub event: BackstopVaultEvents,
}

/// A member's state at a confirmed block of its home chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemberSolvency {
    /// Member id.
    pub member: B256,
    /// `nextSeq(member)` on the home vault: the seq of an incident opened at this block.
    pub next_seq: u64,
    /// Whether payouts are frozen at this block.
    pub frozen: bool,
    /// `solvency()` of the member contract.
    pub solvency: Solvency,
}

/// A gap observation (the shared vocabulary's shape).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GapObservation {
    /// Member id.
    pub member: B256,
    /// Incident seq.
    pub seq: u64,
    /// Home chain.
    pub chain_id: u64,
    /// Confirmed block number.
    pub block_number: u64,
    /// Its hash.
    pub block_hash: B256,
    /// Assets.
    pub assets: U256,
    /// Liabilities.
    pub liabilities: U256,
}

/// A delivered (confirmed) block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfirmedBlock {
    /// The block.
    pub block: PinnedBlock,
    /// Its parent.
    pub parent_hash: B256,
    /// Vault events of the block, in log order.
    pub events: Vec<VaultEvent>,
    /// Members read at the block (empty when skipped during a catch-up; a member its vault
    /// does not know at this block is left out).
    pub members: Vec<MemberSolvency>,
    /// Oracles read at the block (empty when skipped during a catch-up; an oracle that
    /// cannot be read at this block is left out).
    pub oracles: Vec<(Address, OracleAnswer)>,
}

impl ConfirmedBlock {
    /// The block as a tracker reference (persist it as the watcher's next checkpoint).
    pub fn block_ref(&self) -> BlockRef {
        BlockRef {
            number: self.block.number,
            hash: self.block.hash,
            parent_hash: self.parent_hash,
        }
    }

    /// The members with liabilities above assets at this block.
    pub fn gaps(&self) -> impl Iterator<Item = GapObservation> + '_ {
        self.members
            .iter()
            .filter(|m| m.solvency.gap().is_some())
            .map(|m| GapObservation {
                member: m.member,
                seq: m.next_seq,
                chain_id: self.block.chain_id,
                block_number: self.block.number,
                block_hash: self.block.hash,
                assets: m.solvency.assets,
                liabilities: m.solvency.liabilities,
            })
    }
}

/// What a watcher reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChainEvent {
    /// A new canonical tip (unconfirmed).
    NewHead {
        /// Chain.
        chain_id: u64,
        /// The block.
        block: BlockRef,
    },
    /// A confirmed block, delivered once.
    Confirmed(Box<ConfirmedBlock>),
    /// Blocks above `ancestor` were replaced.
    Reorg {
        /// Chain.
        chain_id: u64,
        /// Highest block kept.
        ancestor: u64,
        /// Blocks dropped.
        dropped: Vec<BlockRef>,
        /// Whether delivered blocks were dropped.
        deep: bool,
    },
    /// No new head for longer than the bound.
    Halted {
        /// Chain.
        chain_id: u64,
        /// Silence so far.
        silent_for: Duration,
    },
    /// Heads again after a halt.
    Resumed {
        /// Chain.
        chain_id: u64,
    },
}

/// Why a tick failed (the watcher logs it and retries at the next tick).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WatchError {
    /// RPC failure.
    #[error(transparent)]
    Rpc(#[from] RpcError),
    /// A pinned read failed.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// The chain forked below what the tracker holds.
    #[error(transparent)]
    Tracker(#[from] TrackerError),
    /// A log that is not what the node asked for.
    #[error("invalid log: {0}")]
    InvalidLog(String),
    /// Too many blocks needed to resolve one head.
    #[error("resolving block {0} needed too many fetches")]
    TooManyFetches(u64),
    /// The consumer is gone.
    #[error("event receiver closed")]
    Closed,
}

/// Pause between failed attempts to subscribe to new heads (polling continues meanwhile).
const RESUBSCRIBE_AFTER: Duration = Duration::from_secs(5);

type HeadStream = Pin<Box<dyn Stream<Item = alloy::rpc::types::Header> + Send>>;

/// The watcher of one chain.
pub struct Watcher {
    cfg: WatcherConfig,
    pool: Arc<RpcPool>,
    tracker: Option<ConfirmationTracker>,
    delivered: Option<BlockRef>,
    halt: HaltDetector,
    highest: u64,
    // Behind a mutex only to make the watcher `Sync`; always accessed through `get_mut`.
    heads: std::sync::Mutex<Option<HeadStream>>,
    next_subscribe: Instant,
    token: Option<Address>,
    out: mpsc::Sender<ChainEvent>,
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher")
            .field("chain_id", &self.cfg.rpc.chain_id)
            .field("delivered", &self.delivered)
            .finish()
    }
}

impl Watcher {
    /// A watcher over `cfg` sending to `out`.
    pub fn new(cfg: WatcherConfig, out: mpsc::Sender<ChainEvent>) -> Self {
        let pool = Arc::new(RpcPool::new(cfg.rpc.clone()));
        Self::with_pool(cfg, pool, out)
    }

    /// A watcher using an existing pool (shared with a submitter, or with fixed jitter).
    pub fn with_pool(
        cfg: WatcherConfig,
        pool: Arc<RpcPool>,
        out: mpsc::Sender<ChainEvent>,
    ) -> Self {
        Self {
            halt: HaltDetector::new(cfg.halt_after, Instant::now()),
            delivered: cfg.checkpoint,
            cfg,
            pool,
            tracker: None,
            highest: 0,
            heads: std::sync::Mutex::new(None),
            next_subscribe: Instant::now(),
            token: None,
            out,
        }
    }

    /// The RPC pool.
    pub fn pool(&self) -> Arc<RpcPool> {
        self.pool.clone()
    }

    /// The last delivered block (persist it as the next start's checkpoint).
    pub fn delivered(&self) -> Option<BlockRef> {
        self.delivered
    }

    /// Runs until the receiver is dropped.
    pub async fn run(mut self) {
        let mut first = true;
        loop {
            if !std::mem::take(&mut first) {
                self.wait().await;
            }
            match self.tick().await {
                Ok(()) => {}
                Err(WatchError::Closed) => return,
                Err(e) => {
                    tracing::warn!(chain_id = self.pool.chain_id(), error = %e, "watcher tick failed");
                    if self.check_halt().await.is_err() {
                        return;
                    }
                }
            }
        }
    }

    async fn wait(&mut self) {
        let want = self.pool.has_ws() && Instant::now() >= self.next_subscribe;
        if want && self.heads_mut().is_none() {
            let s = self.subscribe().await;
            if s.is_none() {
                // Polling meanwhile; try the subscription again later.
                self.next_subscribe = Instant::now() + RESUBSCRIBE_AFTER;
            }
            *self.heads_mut() = s;
        }
        let chain_id = self.pool.chain_id();
        let sleep = tokio::time::sleep(self.cfg.poll_interval);
        let heads = self.heads_mut();
        match heads.as_mut() {
            Some(stream) => {
                tokio::select! {
                    item = stream.next() => {
                        if item.is_none() {
                            tracing::debug!(chain_id, "head subscription ended");
                            *heads = None;
                        }
                    }
                    _ = sleep => {}
                }
            }
            None => sleep.await,
        }
    }

    fn heads_mut(&mut self) -> &mut Option<HeadStream> {
        self.heads.get_mut().unwrap_or_else(|p| p.into_inner())
    }

    async fn subscribe(&self) -> Option<HeadStream> {
        let p = self.pool.ws_provider().await.ok()?;
        let sub = tokio::time::timeout(self.cfg.rpc.request_timeout, p.subscribe_blocks())
            .await
            .ok()?
            .ok()?;
        Some(Box::pin(sub.into_stream()))
    }

    async fn emit(&self, ev: ChainEvent) -> Result<(), WatchError> {
        self.out.send(ev).await.map_err(|_| WatchError::Closed)
    }

    async fn check_halt(&mut self) -> Result<(), WatchError> {
        if let Some(Liveness::Halted { silent_for }) = self.halt.poll(Instant::now()) {
            tracing::warn!(chain_id = self.pool.chain_id(), ?silent_for, "chain halted");
            self.emit(ChainEvent::Halted {
                chain_id: self.pool.chain_id(),
                silent_for,
            })
            .await?;
        }
        Ok(())
    }

    async fn init(&mut self) -> Result<(), WatchError> {
        let depth = self.cfg.confirmations;
        let keep = (depth as usize).saturating_add(64);
        let anchor = match self.delivered {
            Some(cp) => {
                let now = self.pool.block_ref(cp.number).await?;
                if now.hash == cp.hash {
                    cp
                } else {
                    // The checkpoint itself was replaced: report it and redeliver from its
                    // height on the new chain.
                    let parent = self.pool.block_ref(cp.number.saturating_sub(1)).await?;
                    self.emit(ChainEvent::Reorg {
                        chain_id: self.pool.chain_id(),
                        ancestor: parent.number,
                        dropped: vec![cp],
                        deep: true,
                    })
                    .await?;
                    parent
                }
            }
            None => {
                let head = self.pool.head_number().await?;
                self.pool.block_ref(head.saturating_sub(depth)).await?
            }
        };
        let pinned = anchor.pinned(self.pool.chain_id());
        self.token = Some(
            Reader::new(&self.pool)
                .vault_token(&pinned, self.cfg.vault)
                .await?,
        );
        self.tracker = Some(ConfirmationTracker::anchored(depth, keep, anchor));
        // With a checkpoint, delivery resumes after the anchor; without, it starts at the
        // anchor (the confirmed head at start).
        self.delivered = self.delivered.map(|_| anchor);
        self.highest = anchor.number;
        Ok(())
    }

    /// One step: learn the head, feed the tracker, deliver what is confirmed.
    pub async fn tick(&mut self) -> Result<(), WatchError> {
        if self.tracker.is_none() {
            self.init().await?;
        }
        let head = self.pool.head_number().await?;
        let tip = self
            .tracker
            .as_ref()
            .and_then(|t| t.tip())
            .map_or(0, |t| t.number);
        let target = head.min(tip.saturating_add(self.cfg.max_blocks_per_tick));
        let block = self.pool.block_ref(target).await?;
        self.feed(block).await?;
        self.deliver().await?;
        self.check_halt().await
    }

    async fn feed(&mut self, block: BlockRef) -> Result<(), WatchError> {
        let limit = self.cfg.max_blocks_per_tick + self.cfg.confirmations + 128;
        let mut stack = vec![block];
        let mut fetched = 0u64;
        while let Some(top) = stack.last().copied() {
            let step = self
                .tracker
                .as_mut()
                .map(|t| t.on_block(top))
                .transpose()?
                .unwrap_or(Step::Applied(Vec::new()));
            match step {
                Step::Applied(events) => {
                    stack.pop();
                    for e in events {
                        self.on_tracker_event(e).await?;
                    }
                }
                Step::NeedBlock(n) => {
                    fetched += 1;
                    if fetched > limit {
                        return Err(WatchError::TooManyFetches(block.number));
                    }
                    stack.push(self.pool.block_ref(n).await?);
                }
            }
        }
        Ok(())
    }

    async fn on_tracker_event(&mut self, e: TrackerEvent) -> Result<(), WatchError> {
        let chain_id = self.pool.chain_id();
        match e {
            TrackerEvent::NewTip(b) => {
                if b.number > self.highest {
                    self.highest = b.number;
                    if let Some(Liveness::Resumed) = self.halt.on_head(Instant::now()) {
                        tracing::info!(chain_id, "chain resumed");
                        self.emit(ChainEvent::Resumed { chain_id }).await?;
                    }
                }
                self.emit(ChainEvent::NewHead { chain_id, block: b }).await
            }
            TrackerEvent::Reorged {
                ancestor,
                dropped,
                deep,
            } => {
                tracing::warn!(chain_id, ancestor, dropped = dropped.len(), deep, "reorg");
                if self.delivered.is_some_and(|d| d.number > ancestor) {
                    self.delivered = self.tracker.as_ref().and_then(|t| t.canonical(ancestor));
                }
                self.emit(ChainEvent::Reorg {
                    chain_id,
                    ancestor,
                    dropped,
                    deep,
                })
                .await
            }
        }
    }

    async fn deliver(&mut self) -> Result<(), WatchError> {
        let chain_id = self.pool.chain_id();
        let Some(tracker) = self.tracker.as_ref() else {
            return Ok(());
        };
        let Some(confirmed) = tracker.confirmed_head() else {
            return Ok(());
        };
        let from = self.delivered.map_or(confirmed.number, |d| d.number + 1);
        if from > confirmed.number {
            return Ok(());
        }
        let to = confirmed
            .number
            .min(from.saturating_add(self.cfg.max_blocks_per_tick - 1));
        let blocks: Vec<BlockRef> = (from..=to)
            .map(|n| tracker.canonical(n))
            .collect::<Option<_>>()
            .ok_or(WatchError::InvalidLog(format!(
                "blocks {from}..={to} not tracked"
            )))?;
        let mut events = self.logs(&blocks).await?;
        let read_all = to - from < self.cfg.max_reads_catchup;
        for b in blocks {
            let pinned = b.pinned(chain_id);
            let (members, oracles) = if read_all || b.number == to {
                self.read_at(&pinned).await?
            } else {
                (Vec::new(), Vec::new())
            };
            let split = events.partition_point(|e| e.block_number <= b.number);
            let rest = events.split_off(split);
            let block_events = std::mem::replace(&mut events, rest);
            self.emit(ChainEvent::Confirmed(Box::new(ConfirmedBlock {
                block: pinned,
                parent_hash: b.parent_hash,
                events: block_events,
                members,
                oracles,
            })))
            .await?;
            self.delivered = Some(b);
            if let Some(t) = self.tracker.as_mut() {
                t.mark_confirmed(b.number);
                t.set_floor(b.number);
            }
        }
        Ok(())
    }

    /// The vault's logs of `blocks` (contiguous, ascending), checked against their hashes.
    async fn logs(&self, blocks: &[BlockRef]) -> Result<Vec<VaultEvent>, WatchError> {
        let (Some(first), Some(last)) = (blocks.first(), blocks.last()) else {
            return Ok(Vec::new());
        };
        let vault = self.cfg.vault;
        let filter = Filter::new()
            .address(vault)
            .from_block(first.number)
            .to_block(last.number);
        let logs = self
            .pool
            .call("eth_getLogs", |p| {
                let filter = filter.clone();
                async move { Ok(p.get_logs(&filter).await?) }
            })
            .await?;
        let mut out = Vec::with_capacity(logs.len());
        for log in logs {
            let (Some(number), Some(hash), Some(tx_hash), Some(log_index)) = (
                log.block_number,
                log.block_hash,
                log.transaction_hash,
                log.log_index,
            ) else {
                return Err(WatchError::InvalidLog("log without position".into()));
            };
            if log.removed || log.address() != vault {
                return Err(WatchError::InvalidLog(format!(
                    "log of {} (removed: {}) in answer for {vault}",
                    log.address(),
                    log.removed
                )));
            }
            let expected = number
                .checked_sub(first.number)
                .and_then(|i| blocks.get(i as usize))
                .ok_or_else(|| {
                    WatchError::InvalidLog(format!("log of block {number} outside range"))
                })?;
            if expected.hash != hash {
                return Err(WatchError::InvalidLog(format!(
                    "log of block {number} has hash {hash}, canonical is {}",
                    expected.hash
                )));
            }
            let event = BackstopVaultEvents::decode_raw_log(log.topics(), &log.data().data)
                .map_err(|e| WatchError::InvalidLog(format!("undecodable vault log: {e}")))?;
            out.push(VaultEvent {
                block_number: number,
                tx_hash,
                log_index,
                event,
            });
        }
        out.sort_by_key(|e| (e.block_number, e.log_index));
        Ok(out)
    }

    async fn read_at(
        &self,
        block: &PinnedBlock,
    ) -> Result<(Vec<MemberSolvency>, Vec<(Address, OracleAnswer)>), WatchError> {
        let reader = Reader::new(&self.pool);
        let vault = self.cfg.vault;
        let members = futures::future::try_join_all(self.cfg.members.iter().map(|m| {
            let reader = &reader;
            async move {
                // A member not (yet) registered on its home vault has no incident to open;
                // its contract may not even exist at this block.
                let Some(record) = reader.member(block, vault, m.member).await? else {
                    return Ok::<_, ReadError>(None);
                };
                Ok(Some(MemberSolvency {
                    member: m.member,
                    next_seq: record.next_seq,
                    frozen: record.frozen,
                    solvency: reader.solvency(block, m.contract).await?,
                }))
            }
        }));
        // An oracle that cannot be read at this block is left out of it (and logged): the
        // consumer's staleness check sees no fresh answer; vault events are still delivered.
        let oracles = futures::future::join_all(self.cfg.oracles.iter().map(|o| {
            let reader = &reader;
            async move {
                match reader.oracle(block, *o).await {
                    Ok(a) => Some((*o, a)),
                    Err(e) => {
                        tracing::warn!(oracle = %o, block = block.number, error = %e, "oracle unreadable");
                        None
                    }
                }
            }
        }));
        let (members, oracles) = futures::join!(members, oracles);
        let oracles = oracles.into_iter().flatten().collect();
        Ok((members?.into_iter().flatten().collect(), oracles))
    }

    /// The pool token of the vault (known after the first tick).
    pub fn token(&self) -> Option<Address> {
        self.token
    }
}

/// The states of several `(vault, pool token)` pairs of one chain, read concurrently at one
/// pinned block (for callers that pin blocks themselves, such as a draw proposer).
pub async fn read_vaults(
    pool: &RpcPool,
    block: &PinnedBlock,
    vaults: &[(Address, Address)],
) -> Result<Vec<crate::reads::VaultState>, ReadError> {
    let reader = Reader::new(pool);
    futures::future::try_join_all(
        vaults
            .iter()
            .map(|(v, t)| reader.vault_state(block, *v, *t)),
    )
    .await
}
