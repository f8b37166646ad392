//! The core's tokio task: a thin shell around [`NodeCore`] that carries inputs in (chain
//! facts, gossip, operator requests, timers, results of its own reads) and actions out
//! (gossip, vault transactions, block reads, reconciliations, operator notices).
//!
//! Invariants:
//! - the core is driven from this task only, so its inputs are totally ordered, and each
//!   gets the wall clock read once as its `now`;
//! - reads and submissions run in their own tasks (a transaction awaiting confirmations
//!   never blocks the core); their results come back as inputs; the submitter refuses
//!   concurrent sends of one action;
//! - what operators see is published from the core's [`Snapshot`] on a watch channel.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use alloy::primitives::B256;
use backstop_agreement::{Certificate, IncidentKey, Machine, Subject, ThresholdAction};
use backstop_chain::reads::Reader;
use backstop_chain::rpc::RpcPool;
use backstop_chain::submit::{ChainAction, Submitter};
use backstop_contracts::eip712::{Draw, SignatureError, VaultId, pack_signatures};
use backstop_p2p::catchup::MemoryCatchUpStore;
use backstop_p2p::network::{NetworkHandle, PeerAddr};
use backstop_signer::GuardianKey;
use backstop_store::RocksKv;
use backstop_types::time::now_ms;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tracing::{debug, error, info, warn};

use crate::chains::{ChainAccess, ChainInput, ChainSpec, fetch_pinned, reconcile};
use crate::core::{Action, AdminCommand, AdminError, CoreError, Input, NodeCore, Notice, Snapshot};
use crate::view::NodeView;

/// How long a pinned block may take to become confirmed on this node's endpoints.
const FETCH_PATIENCE: Duration = Duration::from_secs(5);
/// Longest sleep of the loop without a machine wake-up.
const IDLE_TICK: Duration = Duration::from_secs(1);
/// How often the operator snapshot is republished.
const PUBLISH_EVERY: Duration = Duration::from_millis(250);
/// How often detectors re-assert and breakers are re-evaluated.
const POLICY_TICK: Duration = Duration::from_millis(500);

/// The machine as the node runs it.
pub type NodeMachine = Machine<NodeView, GuardianKey, RocksKv>;

/// What an operator's configuration reload (SIGHUP) hands a running node.
#[derive(Debug)]
pub struct Reload {
    /// The guardian key as the file now names it.
    pub signer: GuardianKey,
    /// Each configured chain's RPC URLs as the file now lists them.
    pub rpc_urls: BTreeMap<u64, Vec<String>>,
    /// Where to dial the other nodes, as the file now lists them.
    pub peers: Vec<PeerAddr>,
}

/// A request with its reply channel.
pub type AdminRequest = (AdminCommand, oneshot::Sender<Result<String, AdminError>>);

/// Per-chain access the shell needs.
pub struct ChainHandle {
    /// What the adapter reads.
    pub spec: ChainSpec,
    /// RPC.
    pub pool: Arc<RpcPool>,
    /// The chain's submitter.
    pub submitter: Arc<Submitter>,
}

/// The core task's state.
pub struct Core {
    core: NodeCore<GuardianKey, RocksKv>,
    net: NetworkHandle,
    chains: BTreeMap<u64, ChainHandle>,
    internal_tx: mpsc::Sender<Input>,
    internal_rx: mpsc::Receiver<Input>,
    catchup: Arc<MemoryCatchUpStore>,
    snapshot: watch::Sender<Arc<Snapshot>>,
    notices: broadcast::Sender<Notice>,
}

impl Core {
    /// A shell around `core`.
    pub fn new(
        core: NodeCore<GuardianKey, RocksKv>,
        net: NetworkHandle,
        chains: BTreeMap<u64, ChainHandle>,
        catchup: Arc<MemoryCatchUpStore>,
        snapshot: watch::Sender<Arc<Snapshot>>,
        notices: broadcast::Sender<Notice>,
    ) -> Self {
        let (internal_tx, internal_rx) = mpsc::channel(256);
        Self {
            core,
            net,
            chains,
            internal_tx,
            internal_rx,
            catchup,
            snapshot,
            notices,
        }
    }

    /// Runs until `shutdown` fires or an input fails. Returns the machine for a final flush
    /// of its store. On a [`Reload`] (the operator reloaded the configuration) the chains'
    /// RPC pools take the new URLs, the network the peers' addresses, and the guardian key
    /// replaces the signer if it holds this node's guardian.
    pub async fn run(
        mut self,
        mut chain_rx: mpsc::Receiver<ChainInput>,
        mut admin_rx: mpsc::Receiver<AdminRequest>,
        mut reloads: mpsc::Receiver<Reload>,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<NodeMachine, CoreError> {
        let mut gossip = self.net.subscribe();
        let mut publish = tokio::time::interval(PUBLISH_EVERY);
        let mut policy_tick = tokio::time::interval(POLICY_TICK);
        let actions = self.core.start(now_ms())?;
        self.carry(actions).await;
        loop {
            let sleep = match self.core.wake() {
                Some(at) => Duration::from_millis(at.saturating_sub(now_ms())).min(IDLE_TICK),
                None => IDLE_TICK,
            };
            let input = tokio::select! {
                _ = shutdown.changed() => break,
                input = chain_rx.recv() => {
                    Input::Chain(input.ok_or(CoreError::Closed("chain adapters"))?)
                }
                msg = gossip.recv() => match msg {
                    Ok(v) => Input::Gossip { signer: v.signer, message: v.message.clone() },
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        warn!(missed = n, "core lagged behind gossip; peers' rebroadcasts and catch-up fill the gap");
                        continue;
                    }
                    Err(broadcast::error::RecvError::Closed) => return Err(CoreError::Closed("gossip")),
                },
                Some(i) = self.internal_rx.recv() => i,
                Some(reload) = reloads.recv() => {
                    self.reload_urls(&reload.rpc_urls);
                    self.reload_peers(reload.peers).await;
                    let actions = self.core.replace_signer(reload.signer, now_ms())?;
                    self.carry(actions).await;
                    continue;
                }
                Some((cmd, reply)) = admin_rx.recv() => {
                    let (r, actions) = self.core.admin(now_ms(), cmd);
                    self.carry(actions).await;
                    let _ = reply.send(r);
                    continue;
                }
                _ = publish.tick() => {
                    self.snapshot.send_replace(Arc::new(self.core.snapshot(now_ms())));
                    continue;
                }
                _ = policy_tick.tick() => Input::PolicyTick,
                _ = tokio::time::sleep(sleep) => Input::Tick,
            };
            let actions = self.core.handle(now_ms(), input)?;
            self.carry(actions).await;
        }
        info!("core stopping");
        Ok(self.core.into_machine())
    }

    /// Points each chain's RPC pool (shared with its watcher and submitter) at the reloaded
    /// URLs; the next requests use them.
    fn reload_urls(&self, urls: &BTreeMap<u64, Vec<String>>) {
        for (chain_id, chain) in &self.chains {
            match urls.get(chain_id) {
                Some(u) if !u.is_empty() => {
                    if chain.pool.set_urls(u) {
                        info!(chain_id, urls = ?u, "RPC endpoints reloaded");
                    }
                }
                _ => warn!(
                    chain_id,
                    "the reloaded file lists no RPC URL for this chain; the current ones stay"
                ),
            }
        }
    }

    /// Hands the network the reloaded peers' addresses; a refused list changes nothing.
    async fn reload_peers(&self, peers: Vec<PeerAddr>) {
        match self.net.set_peers(peers).await {
            Ok(0) => {}
            Ok(changed) => info!(changed, "peers' addresses reloaded"),
            Err(e) => warn!(error = %e, "reloaded peers' addresses refused; the current ones stay"),
        }
    }

    /// Carries out the core's actions, in order.
    async fn carry(&mut self, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Publish(m) => {
                    if let Err(e) = self.net.publish(m).await {
                        // Recorded in the catch-up store before sending (signals are
                        // re-asserted): peers get it when they connect.
                        debug!(error = %e, "publish failed");
                    }
                }
                Action::Submit(cert) => self.submit(cert),
                Action::Fetch {
                    from,
                    message,
                    blocks,
                } => self.fetch(from, message, blocks),
                Action::Reconcile {
                    key,
                    home_chain_id,
                    registered,
                } => self.reconcile(key, home_chain_id, registered),
                Action::CheckAction { vault, id } => self.check_action(vault, id),
                Action::FollowGuardians(consortium) => {
                    if let Err(e) = self.net.follow_guardians(consortium).await {
                        error!(error = %e, "gossip validation did not follow the guardian rotation");
                    }
                }
                Action::Notice(n) => {
                    let _ = self.notices.send(n);
                }
                Action::CatchUp { key, open: true } => self.catchup.reopen(key),
                Action::CatchUp { key, open: false } => self.catchup.close(key),
            }
        }
    }

    fn submit(&self, cert: Certificate) {
        let chain_id = cert.subject.vault().chain_id;
        let Some(chain) = self.chains.get(&chain_id) else {
            warn!(chain_id, "certificate for an unconfigured chain");
            return;
        };
        let action = match chain_action(&cert) {
            Ok(a) => a,
            Err(e) => {
                error!(error = %e, digest = %cert.digest, "certificate cannot be packed");
                return;
            }
        };
        let subject = cert.subject;
        let submitter = chain.submitter.clone();
        let tx = self.internal_tx.clone();
        tokio::spawn(async move {
            let result = submitter.submit(&action).await.map_err(|e| e.to_string());
            let _ = tx.send(Input::Submitted { subject, result }).await;
        });
    }

    fn fetch(
        &self,
        from: backstop_agreement::NodeIndex,
        message: backstop_agreement::Message,
        blocks: Vec<backstop_agreement::PinnedBlock>,
    ) {
        let mut jobs = Vec::new();
        for b in blocks {
            let Some(chain) = self.chains.get(&b.chain_id) else {
                // The core only fetches configured chains; answer so it releases the block.
                jobs.push((b, None));
                continue;
            };
            jobs.push((b, Some((chain.pool.clone(), chain.spec.clone()))));
        }
        let tx = self.internal_tx.clone();
        tokio::spawn(async move {
            let reads = jobs.into_iter().map(|(b, access)| async move {
                let r = match access {
                    Some((pool, spec)) => fetch_pinned(&pool, &spec, b, FETCH_PATIENCE)
                        .await
                        .map_err(|e| e.to_string()),
                    None => Err(format!("chain {} not configured", b.chain_id)),
                };
                (b, r)
            });
            let results = futures::future::join_all(reads).await;
            let _ = tx
                .send(Input::Fetched {
                    from,
                    message,
                    results,
                })
                .await;
        });
    }

    fn reconcile(&self, key: IncidentKey, home_chain_id: u64, registered: Option<(B256, Draw)>) {
        let access = |c: &ChainHandle| (c.pool.clone(), c.spec.clone());
        let Some(home) = self.chains.get(&home_chain_id).map(access) else {
            return;
        };
        let remotes: Vec<(Arc<RpcPool>, ChainSpec)> = self
            .chains
            .values()
            .filter(|c| c.spec.chain_id != home_chain_id)
            .map(access)
            .collect();
        let tx = self.internal_tx.clone();
        tokio::spawn(async move {
            let remote: Vec<ChainAccess<'_>> = remotes
                .iter()
                .map(|(pool, spec)| ChainAccess { pool, spec })
                .collect();
            let home = ChainAccess {
                pool: &home.0,
                spec: &home.1,
            };
            let result = reconcile(home, &remote, key, registered)
                .await
                .map_err(|e| e.to_string());
            let _ = tx.send(Input::Reconciled { key, result }).await;
        });
    }
}

impl Core {
    fn check_action(&self, vault: VaultId, id: B256) {
        let Some(pool) = self.chains.get(&vault.chain_id).map(|c| c.pool.clone()) else {
            return;
        };
        let tx = self.internal_tx.clone();
        tokio::spawn(async move {
            let result = action_used(&pool, vault, id).await;
            let _ = tx.send(Input::ActionChecked { vault, id, result }).await;
        });
    }
}

/// Whether `id` is used on `vault` at the chain's newest block.
async fn action_used(pool: &RpcPool, vault: VaultId, id: B256) -> Result<bool, String> {
    let head = pool.head_number().await.map_err(|e| e.to_string())?;
    let block = pool.block_ref(head).await.map_err(|e| e.to_string())?;
    Reader::new(pool)
        .action_used(&block.pinned(vault.chain_id), vault.address, id)
        .await
        .map_err(|e| e.to_string())
}

/// The vault call that carries out a certificate.
pub fn chain_action(cert: &Certificate) -> Result<ChainAction, SignatureError> {
    let signatures = pack_signatures(&cert.signatures)?;
    Ok(match cert.subject.clone() {
        Subject::Draw { draw, .. } => ChainAction::RegisterDraw { draw, signatures },
        Subject::Leg { release, .. } => ChainAction::ReleaseLeg {
            release,
            signatures,
        },
        Subject::Action { action, .. } => match action {
            ThresholdAction::Freeze(action) => ChainAction::FreezeMember { action, signatures },
            ThresholdAction::Unfreeze(action) => ChainAction::UnfreezeMember { action, signatures },
            ThresholdAction::Pause(action) => ChainAction::Pause { action, signatures },
            ThresholdAction::Unpause(action) => ChainAction::Unpause { action, signatures },
            ThresholdAction::RaiseAlert(action) => ChainAction::RaiseAlert { action, signatures },
            ThresholdAction::ClearAlert(action) => ChainAction::ClearAlert { action, signatures },
            ThresholdAction::SetMember(action) => ChainAction::SetMember { action, signatures },
            ThresholdAction::SetLimits(action) => ChainAction::SetLimits { action, signatures },
            ThresholdAction::RotateGuardians(action) => {
                ChainAction::RotateGuardians { action, signatures }
            }
        },
    })
}
