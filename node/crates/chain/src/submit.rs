//! The submitter of one chain: sends the node's certified actions to the vault with one
//! signer key.
//!
//! For each action it
//! 1. refuses a second concurrent submission of the same action (an in-flight set keyed by
//!    [`ActionKey`]: the incident `(member, seq)` for draws and legs, the action id);
//! 2. checks whether the action is already done on chain (`drawOf(member, seq) != 0` on the
//!    home vault or `nextSeq > seq` for a draw, `drawOf(member, seq) != 0` on a remote vault
//!    for a leg, since a vault pays at most one leg per incident, `actionUsed(id)`) and if
//!    so sends nothing;
//! 3. simulates the call; the vault's "already done" reverts (`DrawAlreadyRegistered`,
//!    `LegAlreadyPaid`, `ActionIdUsed`) count as success, any other revert is an error;
//! 4. signs an EIP-1559 transaction with the next local nonce ([`NonceTracker`]: read from the
//!    chain's pending nonce at start and after "nonce too low") and fees from [`FeePolicy`];
//! 5. waits for a receipt, replacing a stuck transaction (same nonce, bumped fees) after
//!    `stuck_after`; any of the sent versions may be the one mined; a transaction stuck
//!    above the chain's pending nonce (a deep reorg took back earlier ones) re-reads the
//!    nonce and starts again;
//! 6. waits until the receipt's block is `confirmations` deep and still canonical; a receipt
//!    reorged out sends the action again (from step 2).
//!
//! Invariants: nothing is sent for an action that is done on chain when checked; one action
//! has at most one nonce in flight at a time; a local nonce is used only once it was read
//! from the chain or advanced past an accepted transaction.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use alloy::eips::Encodable2718;
use alloy::network::{EthereumWallet, NetworkTransactionBuilder, TransactionBuilder};
use alloy::primitives::{Address, B256, Bytes};
use alloy::providers::Provider;
use alloy::rpc::types::TransactionRequest;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::{SolCall, SolInterface};
use backstop_contracts::bindings::BackstopVault::{self, BackstopVaultErrors};
use backstop_contracts::bindings::IBackstopVault::{
    ClearAlert, Draw, FreezeMember, LegRelease, Pause, RaiseAlert, RotateGuardians, SetLimits,
    SetMember, UnfreezeMember, Unpause,
};

use crate::reads::{PinnedBlock, ReadError, Reader};
use crate::rpc::{CallError, RpcError, RpcPool};
use crate::txpolicy::{FeePolicy, Fees, NonceTracker};

/// An action for one vault, with its guardian signatures (packed, ascending signers).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChainAction {
    /// `registerDraw` on the member's home vault.
    RegisterDraw {
        /// The draw.
        draw: Draw,
        /// t signatures over its digest.
        signatures: Bytes,
    },
    /// `releaseLeg` on a remote vault.
    ReleaseLeg {
        /// The release.
        release: LegRelease,
        /// t signatures.
        signatures: Bytes,
    },
    /// `freezeMember`.
    FreezeMember {
        /// The action.
        action: FreezeMember,
        /// p signatures.
        signatures: Bytes,
    },
    /// `unfreezeMember`.
    UnfreezeMember {
        /// The action.
        action: UnfreezeMember,
        /// t signatures.
        signatures: Bytes,
    },
    /// `pause`.
    Pause {
        /// The action.
        action: Pause,
        /// p signatures.
        signatures: Bytes,
    },
    /// `unpause`.
    Unpause {
        /// The action.
        action: Unpause,
        /// t signatures.
        signatures: Bytes,
    },
    /// `raiseAlert`.
    RaiseAlert {
        /// The action.
        action: RaiseAlert,
        /// p signatures.
        signatures: Bytes,
    },
    /// `clearAlert`.
    ClearAlert {
        /// The action.
        action: ClearAlert,
        /// t signatures.
        signatures: Bytes,
    },
    /// `setMember` (governance).
    SetMember {
        /// The action.
        action: SetMember,
        /// t signatures.
        signatures: Bytes,
    },
    /// `setLimits` (governance).
    SetLimits {
        /// The action.
        action: SetLimits,
        /// t signatures.
        signatures: Bytes,
    },
    /// `rotateGuardians` (governance).
    RotateGuardians {
        /// The action.
        action: RotateGuardians,
        /// t signatures of the current set.
        signatures: Bytes,
    },
}

/// What makes two submissions the same action on one vault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ActionKey {
    /// The one draw of `(member, seq)`.
    Draw {
        /// Member.
        member: B256,
        /// Seq.
        seq: u64,
    },
    /// The leg of incident `(member, seq)` on a remote vault (a vault pays at most one).
    Leg {
        /// Member.
        member: B256,
        /// Seq.
        seq: u64,
    },
    /// A threshold action, by its unique id.
    Action {
        /// Action id.
        id: B256,
    },
}

impl ChainAction {
    /// The action's key.
    pub fn key(&self) -> ActionKey {
        match self {
            ChainAction::RegisterDraw { draw, .. } => ActionKey::Draw {
                member: draw.member,
                seq: draw.seq,
            },
            ChainAction::ReleaseLeg { release, .. } => ActionKey::Leg {
                member: release.member,
                seq: release.seq,
            },
            ChainAction::FreezeMember { action, .. } => ActionKey::Action { id: action.id },
            ChainAction::UnfreezeMember { action, .. } => ActionKey::Action { id: action.id },
            ChainAction::Pause { action, .. } => ActionKey::Action { id: action.id },
            ChainAction::Unpause { action, .. } => ActionKey::Action { id: action.id },
            ChainAction::RaiseAlert { action, .. } => ActionKey::Action { id: action.id },
            ChainAction::ClearAlert { action, .. } => ActionKey::Action { id: action.id },
            ChainAction::SetMember { action, .. } => ActionKey::Action { id: action.id },
            ChainAction::SetLimits { action, .. } => ActionKey::Action { id: action.id },
            ChainAction::RotateGuardians { action, .. } => ActionKey::Action { id: action.id },
        }
    }

    /// The vault call.
    pub fn calldata(&self) -> Bytes {
        use BackstopVault as V;
        let v = match self.clone() {
            ChainAction::RegisterDraw { draw, signatures } => {
                V::registerDrawCall { draw, signatures }.abi_encode()
            }
            ChainAction::ReleaseLeg {
                release,
                signatures,
            } => V::releaseLegCall {
                leg: release,
                signatures,
            }
            .abi_encode(),
            ChainAction::FreezeMember { action, signatures } => {
                V::freezeMemberCall { action, signatures }.abi_encode()
            }
            ChainAction::UnfreezeMember { action, signatures } => {
                V::unfreezeMemberCall { action, signatures }.abi_encode()
            }
            ChainAction::Pause { action, signatures } => {
                V::pauseCall { action, signatures }.abi_encode()
            }
            ChainAction::Unpause { action, signatures } => {
                V::unpauseCall { action, signatures }.abi_encode()
            }
            ChainAction::RaiseAlert { action, signatures } => {
                V::raiseAlertCall { action, signatures }.abi_encode()
            }
            ChainAction::ClearAlert { action, signatures } => {
                V::clearAlertCall { action, signatures }.abi_encode()
            }
            ChainAction::SetMember { action, signatures } => {
                V::setMemberCall { action, signatures }.abi_encode()
            }
            ChainAction::SetLimits { action, signatures } => {
                V::setLimitsCall { action, signatures }.abi_encode()
            }
            ChainAction::RotateGuardians { action, signatures } => {
                V::rotateGuardiansCall { action, signatures }.abi_encode()
            }
        };
        v.into()
    }
}

/// How an action turned out to be done already.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AlreadyDone {
    /// The on-chain check before sending (for a draw or a leg: the draw the vault settled
    /// for the incident, which may belong to another attempt).
    OnChain {
        /// The settled draw hash (draws and legs).
        draw_hash: Option<B256>,
    },
    /// The vault reverted with its "already done" error (named).
    Reverted(String),
}

/// Outcome of a submission.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SubmitOutcome {
    /// Our transaction executed and is confirmed.
    Executed {
        /// Transaction hash.
        tx_hash: B256,
        /// Its (confirmed) block.
        block: PinnedBlock,
    },
    /// Nothing was needed: the action is done on chain.
    AlreadyDone(AlreadyDone),
    /// The same action is being submitted by another call; this one did nothing.
    InFlight,
}

/// Why a submission failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    /// RPC failure.
    #[error(transparent)]
    Rpc(#[from] RpcError),
    /// A read failed.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// The vault refuses the action (a revert other than "already done").
    #[error("vault reverts: {0}")]
    Reverted(String),
    /// The transaction stayed stuck up to the fee cap, or beyond the deadline.
    #[error("transaction not mined: {0}")]
    NotMined(String),
    /// Signing failed.
    #[error("signing: {0}")]
    Sign(String),
    /// An answer that cannot be right (a receipt of another transaction, ...).
    #[error("invalid answer: {0}")]
    Invalid(String),
}

/// Submitter configuration.
#[derive(Clone, Debug)]
pub struct SubmitterConfig {
    /// The vault on this chain.
    pub vault: Address,
    /// Confirmation depth awaited after inclusion.
    pub confirmations: u64,
    /// Fee policy.
    pub fees: FeePolicy,
    /// A transaction without receipt for this long is replaced with bumped fees.
    pub stuck_after: Duration,
    /// Receipt polling period.
    pub poll_interval: Duration,
    /// Give up waiting for one transaction after this long.
    pub max_wait: Duration,
    /// Resends after a receipt was reorged out or a nonce was taken.
    pub max_resends: u32,
    /// Gas limit = estimate · (100 + margin) / 100.
    pub gas_margin_percent: u64,
}

impl SubmitterConfig {
    /// Defaults for `vault`.
    pub fn new(vault: Address) -> Self {
        Self {
            vault,
            confirmations: 2,
            fees: FeePolicy::default(),
            stuck_after: Duration::from_secs(30),
            poll_interval: Duration::from_millis(200),
            max_wait: Duration::from_secs(600),
            max_resends: 5,
            gas_margin_percent: 25,
        }
    }
}

/// Counters of what a submitter did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SubmitStats {
    /// Transactions accepted by the node (replacements included).
    pub sent: u64,
    /// Replacements with bumped fees.
    pub bumps: u64,
    /// Nonce re-reads after "nonce too low".
    pub nonce_resyncs: u64,
    /// Submissions answered "already done" without sending.
    pub already_done: u64,
}

#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    bumps: AtomicU64,
    nonce_resyncs: AtomicU64,
    already_done: AtomicU64,
}

/// One chain's submitter.
pub struct Submitter {
    pool: Arc<RpcPool>,
    cfg: SubmitterConfig,
    address: Address,
    wallet: EthereumWallet,
    nonce: tokio::sync::Mutex<NonceTracker>,
    in_flight: Mutex<HashSet<ActionKey>>,
    counters: Counters,
}

impl std::fmt::Debug for Submitter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Submitter")
            .field("chain_id", &self.pool.chain_id())
            .field("address", &self.address)
            .finish()
    }
}

struct InFlightGuard<'a> {
    set: &'a Mutex<HashSet<ActionKey>>,
    key: ActionKey,
}

impl Drop for InFlightGuard<'_> {
    fn drop(&mut self) {
        self.set
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.key);
    }
}

enum SendResult {
    Sent,
    NonceTooLow,
    Underpriced,
}

fn is_nonce_too_low(msg: &str) -> bool {
    let m = msg.to_ascii_lowercase();
    m.contains("nonce too low") || m.contains("nonce is too low") || m.contains("old nonce")
}

fn is_already_known(msg: &str) -> bool {
    let m = msg.to_ascii_lowercase();
    m.contains("already known") || m.contains("already imported") || m.contains("known transaction")
}

fn is_underpriced(msg: &str) -> bool {
    let m = msg.to_ascii_lowercase();
    m.contains("underpriced") || m.contains("fee too low")
}

impl Submitter {
    /// A submitter signing with `signer` on `pool`'s chain. The nonce is read from the chain
    /// at the first send (so a restart resumes correctly).
    pub fn new(pool: Arc<RpcPool>, signer: PrivateKeySigner, cfg: SubmitterConfig) -> Self {
        let address = signer.address();
        Self {
            pool,
            cfg,
            address,
            wallet: EthereumWallet::from(signer),
            nonce: tokio::sync::Mutex::new(NonceTracker::default()),
            in_flight: Mutex::new(HashSet::new()),
            counters: Counters::default(),
        }
    }

    /// The sender address.
    pub fn address(&self) -> Address {
        self.address
    }

    /// What it did so far.
    pub fn stats(&self) -> SubmitStats {
        SubmitStats {
            sent: self.counters.sent.load(Ordering::Relaxed),
            bumps: self.counters.bumps.load(Ordering::Relaxed),
            nonce_resyncs: self.counters.nonce_resyncs.load(Ordering::Relaxed),
            already_done: self.counters.already_done.load(Ordering::Relaxed),
        }
    }

    /// Submits `action` and waits until it is confirmed or known done. See the module docs.
    pub async fn submit(&self, action: &ChainAction) -> Result<SubmitOutcome, SubmitError> {
        let key = action.key();
        if !self
            .in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key)
        {
            return Ok(SubmitOutcome::InFlight);
        }
        let _guard = InFlightGuard {
            set: &self.in_flight,
            key,
        };
        let mut last = String::new();
        for _ in 0..=self.cfg.max_resends {
            if let Some(done) = self.done_on_chain(action).await? {
                self.counters.already_done.fetch_add(1, Ordering::Relaxed);
                return Ok(SubmitOutcome::AlreadyDone(done));
            }
            match self.send_and_confirm(action).await? {
                Attempt::Done(outcome) => return Ok(outcome),
                Attempt::Again(why) => {
                    tracing::info!(chain_id = self.pool.chain_id(), ?key, %why, "resubmitting");
                    last = why;
                }
            }
        }
        Err(SubmitError::NotMined(format!(
            "gave up after {} resends: {last}",
            self.cfg.max_resends
        )))
    }

    async fn latest(&self) -> Result<PinnedBlock, SubmitError> {
        let head = self.pool.head_number().await?;
        let b = self.pool.block_ref(head).await?;
        Ok(b.pinned(self.pool.chain_id()))
    }

    /// Whether the action is done on chain at the latest block.
    pub async fn done_on_chain(
        &self,
        action: &ChainAction,
    ) -> Result<Option<AlreadyDone>, SubmitError> {
        let block = self.latest().await?;
        let reader = Reader::new(&self.pool);
        let vault = self.cfg.vault;
        let done = match action.key() {
            ActionKey::Draw { member, seq } => {
                let hash = reader.draw_of(&block, vault, member, seq).await?;
                if !hash.is_zero() {
                    Some(AlreadyDone::OnChain {
                        draw_hash: Some(hash),
                    })
                } else {
                    let next = reader
                        .member(&block, vault, member)
                        .await?
                        .map_or(0, |m| m.next_seq);
                    (next > seq).then_some(AlreadyDone::OnChain { draw_hash: None })
                }
            }
            ActionKey::Leg { member, seq } => {
                let settled = reader.draw_of(&block, vault, member, seq).await?;
                (!settled.is_zero()).then_some(AlreadyDone::OnChain {
                    draw_hash: Some(settled),
                })
            }
            ActionKey::Action { id } => reader
                .action_used(&block, vault, id)
                .await?
                .then_some(AlreadyDone::OnChain { draw_hash: None }),
        };
        Ok(done)
    }

    fn request(&self, action: &ChainAction) -> TransactionRequest {
        TransactionRequest::default()
            .with_from(self.address)
            .with_to(self.cfg.vault)
            .with_input(action.calldata())
    }

    /// Simulates the call: `Ok(Ok(gas))` when it would succeed (with the gas estimate),
    /// `Ok(Err(done))` for the vault's "already done" reverts, an error for any other revert.
    pub async fn preflight(
        &self,
        action: &ChainAction,
    ) -> Result<Result<u64, AlreadyDone>, SubmitError> {
        let tx = self.request(action);
        let r = self
            .pool
            .call("eth_estimateGas", |p| {
                let tx = tx.clone();
                async move { Ok(p.estimate_gas(tx).await?) }
            })
            .await;
        match r {
            Ok(gas) => Ok(Ok(gas)),
            Err(e) => match e.rejection() {
                Some((_, message, data)) => {
                    let decoded = data.and_then(|d| BackstopVaultErrors::abi_decode(d).ok());
                    match decoded {
                        Some(
                            err @ (BackstopVaultErrors::DrawAlreadyRegistered(_)
                            | BackstopVaultErrors::LegAlreadyPaid(_)
                            | BackstopVaultErrors::ActionIdUsed(_)),
                        ) => Ok(Err(AlreadyDone::Reverted(format!("{err:?}")))),
                        Some(err) => Err(SubmitError::Reverted(format!("{err:?}"))),
                        None => Err(SubmitError::Reverted(message.to_owned())),
                    }
                }
                None => Err(e.into()),
            },
        }
    }

    async fn fees_now(&self) -> Result<(u128, u128), SubmitError> {
        let (base, hint) =
            self.pool
                .call("fees", |p| async move {
                    let block = p
                        .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
                        .await?
                        .ok_or_else(|| CallError::Invalid("no latest block".into()))?;
                    let base = block.header.base_fee_per_gas.ok_or_else(|| {
                        CallError::Invalid("no base fee (pre-London chain)".into())
                    })?;
                    let hint = p.get_max_priority_fee_per_gas().await?;
                    Ok((u128::from(base), hint))
                })
                .await?;
        Ok((base, hint))
    }

    async fn sign(
        &self,
        action: &ChainAction,
        nonce: u64,
        gas: u64,
        fees: Fees,
    ) -> Result<(B256, Bytes), SubmitError> {
        let tx = self
            .request(action)
            .with_nonce(nonce)
            .with_chain_id(self.pool.chain_id())
            .with_gas_limit(gas)
            .with_max_fee_per_gas(fees.max_fee_per_gas)
            .with_max_priority_fee_per_gas(fees.max_priority_fee_per_gas);
        let envelope = tx
            .build(&self.wallet)
            .await
            .map_err(|e| SubmitError::Sign(e.to_string()))?;
        Ok((*envelope.tx_hash(), envelope.encoded_2718().into()))
    }

    async fn send_raw(&self, hash: B256, raw: &Bytes) -> Result<SendResult, SubmitError> {
        let r = self
            .pool
            .call("eth_sendRawTransaction", |p| {
                let raw = raw.clone();
                async move {
                    let pending = p.send_raw_transaction(&raw).await?;
                    if *pending.tx_hash() != hash {
                        return Err(CallError::Invalid(format!(
                            "node reports hash {} for transaction {hash}",
                            pending.tx_hash()
                        )));
                    }
                    Ok(())
                }
            })
            .await;
        match r {
            Ok(()) => Ok(SendResult::Sent),
            Err(e) => match e.rejection() {
                Some((_, m, _)) if is_already_known(m) => Ok(SendResult::Sent),
                Some((_, m, _)) if is_nonce_too_low(m) => Ok(SendResult::NonceTooLow),
                Some((_, m, _)) if is_underpriced(m) => Ok(SendResult::Underpriced),
                _ => Err(e.into()),
            },
        }
    }

    async fn send_and_confirm(&self, action: &ChainAction) -> Result<Attempt, SubmitError> {
        let gas = match self.preflight(action).await? {
            Ok(gas) => gas,
            Err(done) => {
                self.counters.already_done.fetch_add(1, Ordering::Relaxed);
                return Ok(Attempt::Done(SubmitOutcome::AlreadyDone(done)));
            }
        };
        let gas = gas.saturating_mul(100 + self.cfg.gas_margin_percent) / 100;
        let (base, hint) = self.fees_now().await?;
        let mut fees = self.cfg.fees.initial(base, hint);

        // Take a nonce and send, under the nonce lock.
        let (nonce, first_hash) = {
            let mut tracker = self.nonce.lock().await;
            let nonce = match tracker.next() {
                Some(n) => n,
                None => {
                    let n = self.pending_nonce().await?;
                    tracker.sync(n);
                    n
                }
            };
            let (hash, raw) = self.sign(action, nonce, gas, fees).await?;
            match self.send_raw(hash, &raw).await? {
                SendResult::Sent => {
                    tracker.sent(nonce);
                    self.counters.sent.fetch_add(1, Ordering::Relaxed);
                }
                SendResult::NonceTooLow | SendResult::Underpriced => {
                    // Our view of the nonce is stale (a restart, another sender of this key):
                    // re-read it, and re-check the action before sending again.
                    tracker.invalidate();
                    self.counters.nonce_resyncs.fetch_add(1, Ordering::Relaxed);
                    return Ok(Attempt::Again(format!("nonce {nonce} taken")));
                }
            }
            (nonce, hash)
        };
        tracing::debug!(chain_id = self.pool.chain_id(), nonce, tx = %first_hash, "sent");

        // Wait for a receipt of any version; bump while stuck.
        let mut hashes = vec![first_hash];
        let started = Instant::now();
        let mut last_send = Instant::now();
        let receipt = loop {
            if let Some(r) = self.any_receipt(&hashes).await? {
                break r;
            }
            if started.elapsed() > self.cfg.max_wait {
                return Err(SubmitError::NotMined(format!(
                    "nonce {nonce}: no receipt after {:?}",
                    self.cfg.max_wait
                )));
            }
            if last_send.elapsed() >= self.cfg.stuck_after {
                if self.pending_nonce().await? < nonce {
                    // Below ours the chain lacks transactions we saw mined: a reorg took
                    // them back, and ours waits on a gap that fees cannot close.
                    self.nonce.lock().await.invalidate();
                    self.counters.nonce_resyncs.fetch_add(1, Ordering::Relaxed);
                    return Ok(Attempt::Again(format!(
                        "nonce {nonce} is above the chain's: earlier transactions reorged out"
                    )));
                }
                let (base, hint) = self.fees_now().await?;
                let Some(bumped) = self.cfg.fees.bump(fees, base, hint) else {
                    return Err(SubmitError::NotMined(format!(
                        "nonce {nonce}: fee cap reached"
                    )));
                };
                let (hash, raw) = self.sign(action, nonce, gas, bumped).await?;
                match self.send_raw(hash, &raw).await? {
                    SendResult::Sent => {
                        tracing::info!(chain_id = self.pool.chain_id(), nonce, tx = %hash, ?bumped, "replaced stuck transaction");
                        self.counters.sent.fetch_add(1, Ordering::Relaxed);
                        self.counters.bumps.fetch_add(1, Ordering::Relaxed);
                        fees = bumped;
                        hashes.push(hash);
                    }
                    SendResult::Underpriced => {
                        // Keep the higher fees for the next bump.
                        fees = bumped;
                    }
                    SendResult::NonceTooLow => {
                        // A version was mined (or another sender used the nonce): the
                        // receipt check above finds ours on the next round, if it is ours.
                        if let Some(r) = self.any_receipt(&hashes).await? {
                            break r;
                        }
                        self.nonce.lock().await.invalidate();
                        self.counters.nonce_resyncs.fetch_add(1, Ordering::Relaxed);
                        return Ok(Attempt::Again(format!(
                            "nonce {nonce} used by another transaction"
                        )));
                    }
                }
                last_send = Instant::now();
            }
            tokio::time::sleep(self.cfg.poll_interval).await;
        };
        let (tx_hash, number, block_hash, status) = receipt;

        // Wait for depth, then check the receipt is still in the canonical block.
        loop {
            let head = self.pool.head_number().await?;
            if head >= number.saturating_add(self.cfg.confirmations) {
                break;
            }
            if started.elapsed() > self.cfg.max_wait {
                return Err(SubmitError::NotMined(format!(
                    "{tx_hash}: not confirmed after {:?}",
                    self.cfg.max_wait
                )));
            }
            tokio::time::sleep(self.cfg.poll_interval).await;
        }
        let canonical = self.pool.block_ref(number).await?;
        let again = self.any_receipt(&[tx_hash]).await?;
        if canonical.hash != block_hash || again.is_none_or(|r| r.2 != canonical.hash) {
            self.nonce.lock().await.invalidate();
            return Ok(Attempt::Again(format!(
                "{tx_hash} reorged out of block {number}"
            )));
        }
        let block = canonical.pinned(self.pool.chain_id());
        if status {
            return Ok(Attempt::Done(SubmitOutcome::Executed { tx_hash, block }));
        }
        // Reverted on chain: someone else was first, or the action is refused.
        match self.done_on_chain(action).await? {
            Some(done) => {
                self.counters.already_done.fetch_add(1, Ordering::Relaxed);
                Ok(Attempt::Done(SubmitOutcome::AlreadyDone(done)))
            }
            None => Err(SubmitError::Reverted(format!(
                "{tx_hash} reverted in block {number}"
            ))),
        }
    }

    async fn pending_nonce(&self) -> Result<u64, SubmitError> {
        let address = self.address;
        Ok(self
            .pool
            .call("eth_getTransactionCount", |p| async move {
                Ok(p.get_transaction_count(address).pending().await?)
            })
            .await?)
    }

    /// The first mined receipt among `hashes`: (hash, block number, block hash, success).
    async fn any_receipt(
        &self,
        hashes: &[B256],
    ) -> Result<Option<(B256, u64, B256, bool)>, SubmitError> {
        for h in hashes {
            let hash = *h;
            let r = self
                .pool
                .call("eth_getTransactionReceipt", |p| async move {
                    Ok(p.get_transaction_receipt(hash).await?)
                })
                .await?;
            if let Some(r) = r {
                if r.transaction_hash != hash {
                    return Err(SubmitError::Invalid(format!(
                        "asked receipt of {hash}, got {}",
                        r.transaction_hash
                    )));
                }
                if let (Some(n), Some(bh)) = (r.block_number, r.block_hash) {
                    return Ok(Some((hash, n, bh, r.status())));
                }
            }
        }
        Ok(None)
    }
}

enum Attempt {
    Done(SubmitOutcome),
    Again(String),
}
