//! Assembly of a running node: the store, the swarm, the chain watchers, adapters and
//! submitters, the core, the API and metrics servers; supervision and graceful shutdown.
//!
//! Invariants:
//! - the node refuses to start when a vault's guardian set or thresholds differ from the
//!   configured consortium, or when its own keys are not in it;
//! - every task is supervised: a task that ends or panics while the node runs stops the
//!   whole node with an error (its state is durable; the service manager restarts it);
//! - on SIGINT or SIGTERM the core stops between two events, and the store is flushed
//!   before the process exits.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use alloy::primitives::{Address, B256, U256};
use alloy::signers::local::PrivateKeySigner;
use backstop_agreement::{Config as MachineConfig, Consortium, Machine, NodeIndex, NodeInfo};
use backstop_chain::rpc::{RpcConfig, RpcPool};
use backstop_chain::submit::{Submitter, SubmitterConfig};
use backstop_chain::watcher::{Watcher, WatcherConfig};
use backstop_contracts::eip712::VaultId;
use backstop_p2p::catchup::MemoryCatchUpStore;
use backstop_p2p::network::{self, NetworkConfig, PeerAddr};
use backstop_signer::GuardianKey;
use ed25519_dalek::SigningKey;
use libp2p::Multiaddr;
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinSet;
use tracing::{error, info, warn};

use crate::chains::{self, ChainInput, ChainMember, ChainSpec};
use crate::core::{NodeCore, Notice, Snapshot};
use crate::detect::{DetectorConfig, Detectors};
use crate::policy::{Policy, PolicyConfig};
use crate::service::{AdminRequest, ChainHandle, Core, NodeMachine, Reload};
use crate::view::{MemberPolicy, NodeView, ViewConfig};
use backstop_types::oracle_subject;

/// One consortium node.
#[derive(Clone, Debug)]
pub struct PeerParams {
    /// Name.
    pub name: String,
    /// ed25519 public key.
    pub public_key: [u8; 32],
    /// Guardian address.
    pub guardian: Address,
    /// Where to dial it.
    pub addrs: Vec<Multiaddr>,
}

/// One chain.
#[derive(Clone, Debug)]
pub struct ChainParams {
    /// Chain id.
    pub chain_id: u64,
    /// Name.
    pub name: String,
    /// RPC URLs.
    pub rpc_urls: Vec<String>,
    /// Vault.
    pub vault: Address,
    /// Confirmation depth.
    pub confirmations: u64,
    /// Head polling interval.
    pub poll_interval: Duration,
    /// Silence after which the chain counts as halted.
    pub halt_after: Duration,
    /// Timeout of one RPC request.
    pub request_timeout: Duration,
    /// Sender of this chain's transactions (the guardian key when `None`).
    pub sender: Option<PrivateKeySigner>,
    /// Feed pricing the chain's pool token in its peg (the depeg detector's input).
    pub pool_token_oracle: Option<Address>,
}

/// One member.
#[derive(Clone, Debug)]
pub struct MemberParams {
    /// Name.
    pub name: String,
    /// Id.
    pub id: B256,
    /// Home chain.
    pub home_chain_id: u64,
    /// `solvency()` contract on the home chain.
    pub solvency: Address,
    /// Local per-incident cap.
    pub local_cap: Option<U256>,
    /// The oracle pricing it, on its home chain.
    pub oracle: Option<Address>,
}

/// Detectors and breakers.
#[derive(Clone, Debug)]
pub struct SignalParams {
    /// Detector thresholds (the chains' feeds and members are filled in by the runtime).
    pub detectors: DetectorConfig,
    /// p nodes asserting within this window confirm a signal.
    pub window: Duration,
    /// A breaker whose trigger stopped holding for this long ends.
    pub expiry: Duration,
    /// Members of one chain in trouble within the window that quarantine it.
    pub contagion_members: usize,
    /// Early-warning thresholds.
    pub warnings: crate::warning::WarningConfig,
    /// Stress scenarios evaluated at every confirmed head.
    pub scenarios: Vec<backstop_stress::Scenario>,
}

/// Timings of the agreement.
#[derive(Clone, Debug)]
pub struct AgreementParams {
    /// Gaps at or below are ignored.
    pub dust: U256,
    /// First attempt timeout.
    pub attempt_timeout: Duration,
    /// Fallback submitter delay unit.
    pub submit_delay: Duration,
    /// Time a member gets to book a payout.
    pub settle: Duration,
    /// Registration deadline after the pinned home block.
    pub draw_ttl_s: u64,
    /// Leg deadline after the pinned home block.
    pub leg_ttl_s: u64,
    /// Deadline of threshold actions after their request.
    pub action_ttl_s: u64,
    /// How long closed incidents stay in the store.
    pub retain_closed: Duration,
}

/// Everything a node runs with (validated configuration, keys loaded).
#[derive(Clone, Debug)]
pub struct Params {
    /// Node name.
    pub name: String,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Gossip identity.
    pub identity: SigningKey,
    /// Guardian key (also the transaction signer where it is in memory and a chain has no
    /// sender of its own).
    pub signer: GuardianKey,
    /// Gossip listen addresses.
    pub listen: Vec<Multiaddr>,
    /// The consortium.
    pub peers: Vec<PeerParams>,
    /// Chains.
    pub chains: Vec<ChainParams>,
    /// Members.
    pub members: Vec<MemberParams>,
    /// Agreement timings.
    pub agreement: AgreementParams,
    /// Detectors and breakers.
    pub signals: SignalParams,
    /// gRPC API address (no API without).
    pub api_listen: Option<SocketAddr>,
    /// Admin bearer token (admin calls disabled without).
    pub admin_token: Option<String>,
    /// Prometheus endpoint address.
    pub metrics_listen: Option<SocketAddr>,
}

/// Why the node cannot start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The configuration contradicts itself or the chains.
    #[error("configuration: {0}")]
    Config(String),
    /// The store could not be opened or flushed.
    #[error("store: {0}")]
    Store(#[from] backstop_store::StoreError),
    /// The network could not start.
    #[error("network: {0}")]
    Network(#[from] backstop_p2p::network::NetworkError),
    /// A chain could not be reached or read at start.
    #[error(transparent)]
    Chain(#[from] chains::ChainError),
    /// The core failed.
    #[error(transparent)]
    Core(#[from] crate::core::CoreError),
    /// The agreement machine could not be restored.
    #[error(transparent)]
    Machine(#[from] backstop_agreement::MachineError),
    /// A listener could not be bound.
    #[error("bind {addr}: {error}")]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// Why.
        error: String,
    },
    /// A supervised task ended while the node ran.
    #[error("task {0} stopped unexpectedly")]
    TaskStopped(String),
}

/// Handles a started node offers to the API layer.
#[derive(Clone)]
pub struct Observers {
    /// The latest operator snapshot.
    pub snapshot: watch::Receiver<Arc<Snapshot>>,
    /// Notable events.
    pub notices: broadcast::Sender<Notice>,
    /// Operator requests to the core.
    pub admin: mpsc::Sender<AdminRequest>,
    /// The network, for peer lists and counters.
    pub net: network::NetworkHandle,
}

/// What a chain's watcher needs: its configuration, pool and spec.
type WatcherSetup = (WatcherConfig, Arc<RpcPool>, ChainSpec);

/// A vault's guardian set at start-up, and the consortium it maps to.
type VaultGuardians = (VaultId, Vec<Address>, Consortium);

/// Builds and runs the node until `shutdown` fires or a task fails. `serve` is called
/// once everything is up, with the observers, and returns the API tasks to supervise.
/// `reloads` carries the operator's configuration reloads to the core task.
pub async fn run<F>(
    params: Params,
    reloads: mpsc::Receiver<Reload>,
    mut shutdown: watch::Receiver<bool>,
    serve: F,
) -> Result<(), RuntimeError>
where
    F: FnOnce(Observers, &mut JoinSet<(String, Result<(), String>)>),
{
    let (configured, me) = consortium_of(&params)?;
    let (handles, watchers, sets) = connect_chains(&params, &configured).await?;
    let consortium = following(&configured, &sets);
    check_signer(&params, &configured, &consortium, me)?;
    let policy = policy_of(&params, &consortium, me);
    let detectors = Detectors::new(params.signals.detectors.clone());
    let machine = restore_machine(&params, &consortium, me)?;
    let catchup = Arc::new(MemoryCatchUpStore::new(16_384));
    let (net, net_task) = start_network(&params, &consortium, catchup.clone()).await?;

    let mut tasks: JoinSet<(String, Result<(), String>)> = JoinSet::new();
    tasks.spawn(async move {
        let r = net_task.await.map_err(|e| e.to_string());
        ("network".to_string(), r)
    });
    let chain_rx = spawn_watchers(watchers, &mut tasks);

    // Core.
    let (snap_tx, snap_rx) = watch::channel(Arc::new(Snapshot::default()));
    let (notices, _) = broadcast::channel(1024);
    let (admin_tx, admin_rx) = mpsc::channel(16);
    let stress = crate::stress::StressTest::new(
        params.signals.scenarios.clone(),
        &params.signals.detectors.oracles,
    );
    let warnings = crate::warning::Warnings::new(params.signals.warnings.clone());
    let sets = sets
        .into_iter()
        .map(|(vault, set, _)| (vault, set))
        .collect();
    let core = NodeCore::new(machine, policy, detectors, params.agreement.action_ttl_s)
        .with_stress(warnings, stress)
        .with_vault_guardians(sets);
    let core = Core::new(
        core,
        net.clone(),
        handles,
        catchup,
        snap_tx,
        notices.clone(),
    );
    let core_task = tokio::spawn(core.run(chain_rx, admin_rx, reloads, shutdown.clone()));

    serve(
        Observers {
            snapshot: snap_rx,
            notices,
            admin: admin_tx,
            net: net.clone(),
        },
        &mut tasks,
    );
    info!(name = %params.name, "node running");

    let outcome = supervise(&mut shutdown, core_task, &mut tasks).await;
    net.shutdown().await;
    tasks.abort_all();
    match outcome {
        Ok(Some(machine)) => {
            machine.store().kv().flush()?;
            info!("store flushed; node stopped");
            Ok(())
        }
        Ok(None) => Ok(()),
        Err(e) => {
            warn!(error = %e, "node stopping on error");
            Err(e)
        }
    }
}

/// The consortium and this node's place in it (its identity and signer must match one
/// node's).
fn consortium_of(params: &Params) -> Result<(Consortium, NodeIndex), RuntimeError> {
    let infos: Vec<NodeInfo> = params
        .peers
        .iter()
        .map(|p| NodeInfo {
            identity: p.public_key,
            guardian: p.guardian,
        })
        .collect();
    let consortium =
        Consortium::new(infos).map_err(|e| RuntimeError::Config(format!("consortium: {e}")))?;
    let me = consortium
        .index_of_identity(&params.identity.verifying_key().to_bytes())
        .ok_or_else(|| {
            RuntimeError::Config("this node's identity key is not in the consortium".into())
        })?;
    Ok((consortium, me))
}

/// The consortium the vaults hold: the configured one, or it with the key the vaults
/// rotated since ([`chains::check_setup`]) once every vault holds that rotation. While a
/// rotation is under way (the vaults differ) the configured one, which the core's follower
/// leaves as soon as every vault holds the rotation.
fn following(configured: &Consortium, sets: &[(VaultId, Vec<Address>, Consortium)]) -> Consortium {
    let mut followed = sets.iter().map(|(_, _, c)| c);
    match followed.next() {
        Some(first) if followed.all(|c| c == first) => {
            if first != configured {
                info!(guardians = ?first.guardians(), "following the vaults' guardian set, rotated since the configuration");
            }
            first.clone()
        }
        Some(_) => {
            warn!(
                "the vaults hold different guardian sets (a rotation under way): the configured set until every vault holds the rotation"
            );
            configured.clone()
        }
        None => configured.clone(),
    }
}

/// This node's signer must hold its guardian key of `consortium` (the vaults' set).
fn check_signer(
    params: &Params,
    configured: &Consortium,
    consortium: &Consortium,
    me: NodeIndex,
) -> Result<(), RuntimeError> {
    let held = params.signer.address();
    let guardian = |c: &Consortium| c.node(me).map(|n| n.guardian).unwrap_or_default();
    let want = guardian(consortium);
    if held == want {
        info!(guardian = %held, held = %params.signer.location(), "guardian key ready");
        return Ok(());
    }
    Err(RuntimeError::Config(if held == guardian(configured) {
        format!(
            "this node's guardian key {held} was rotated out of the vaults' guardian set; its guardian is now {want}: configure the key of {want}"
        )
    } else {
        format!("this node's signer {held} is not its guardian {want}")
    }))
}

/// The policy layer for this node in `consortium`.
fn policy_of(params: &Params, consortium: &Consortium, me: NodeIndex) -> Policy {
    Policy::new(PolicyConfig {
        me: usize::from(me),
        n: consortium.n(),
        p: consortium.p(),
        window_ms: params.signals.window.as_millis() as u64,
        expiry_ms: params.signals.expiry.as_millis() as u64,
        contagion_members: params.signals.contagion_members,
        origin_delay_ms: params.agreement.submit_delay.as_millis() as u64,
        chains: params.chains.iter().map(|c| c.chain_id).collect(),
        members: params
            .members
            .iter()
            .map(|m| {
                let oracle = m.oracle.map(|o| oracle_subject(m.home_chain_id, o));
                (m.id, (m.home_chain_id, oracle))
            })
            .collect(),
    })
}

/// Each chain's RPC pool, checked against its vault at start-up, with its spec, submitter
/// and watcher configuration.
async fn connect_chains(
    params: &Params,
    consortium: &Consortium,
) -> Result<
    (
        BTreeMap<u64, ChainHandle>,
        Vec<WatcherSetup>,
        Vec<VaultGuardians>,
    ),
    RuntimeError,
> {
    let mut handles = BTreeMap::new();
    let mut watchers = Vec::new();
    let mut sets = Vec::new();
    for c in &params.chains {
        let mut rpc = RpcConfig::new(c.chain_id, c.rpc_urls.clone());
        rpc.request_timeout = c.request_timeout;
        let pool = Arc::new(RpcPool::new(rpc.clone()));
        let setup = chains::read_setup(&pool, c.vault).await?;
        let followed =
            chains::check_setup(c.chain_id, &setup, consortium).map_err(RuntimeError::Config)?;
        info!(chain_id = c.chain_id, vault = %c.vault, token = %setup.token, "vault matches the consortium");
        let vault = VaultId {
            chain_id: c.chain_id,
            address: c.vault,
        };
        sets.push((vault, setup.guardians.clone(), followed));
        let spec = ChainSpec {
            chain_id: c.chain_id,
            vault: c.vault,
            token: setup.token,
            confirmations: c.confirmations,
            members: params
                .members
                .iter()
                .map(|m| ChainMember {
                    id: m.id,
                    solvency: (m.home_chain_id == c.chain_id).then_some(m.solvency),
                })
                .collect(),
            oracles: params
                .signals
                .detectors
                .oracles
                .iter()
                .filter(|o| o.chain_id == c.chain_id)
                .map(|o| o.address)
                .chain(c.pool_token_oracle)
                .collect::<BTreeSet<Address>>()
                .into_iter()
                .collect(),
        };
        let mut scfg = SubmitterConfig::new(c.vault);
        scfg.confirmations = c.confirmations;
        let sender = c
            .sender
            .clone()
            .or_else(|| params.signer.local().cloned())
            .ok_or_else(|| {
                RuntimeError::Config(format!(
                    "chain {}: no key sends its transactions (the guardian key is in a token)",
                    c.chain_id
                ))
            })?;
        let submitter = Arc::new(Submitter::new(pool.clone(), sender, scfg));
        let mut wcfg = WatcherConfig::new(rpc, c.vault);
        wcfg.confirmations = c.confirmations;
        wcfg.poll_interval = c.poll_interval;
        wcfg.halt_after = c.halt_after;
        watchers.push((wcfg, pool.clone(), spec.clone()));
        handles.insert(
            c.chain_id,
            ChainHandle {
                spec,
                pool,
                submitter,
            },
        );
    }
    Ok((handles, watchers, sets))
}

/// Opens the store and restores the agreement machine from it.
fn restore_machine(
    params: &Params,
    consortium: &Consortium,
    me: NodeIndex,
) -> Result<NodeMachine, RuntimeError> {
    std::fs::create_dir_all(&params.data_dir).map_err(|e| {
        RuntimeError::Config(format!("data_dir {}: {e}", params.data_dir.display()))
    })?;
    let store = backstop_store::open_node_store(params.data_dir.join("state"))?;
    let mut mcfg = MachineConfig::new(consortium.clone(), me);
    mcfg.dust = params.agreement.dust;
    mcfg.attempt_timeout_ms = params.agreement.attempt_timeout.as_millis() as u64;
    mcfg.submit_delay_ms = params.agreement.submit_delay.as_millis() as u64;
    mcfg.settle_ms = params.agreement.settle.as_millis() as u64;
    mcfg.retain_closed_ms = params.agreement.retain_closed.as_millis() as u64;
    let view = NodeView::new(ViewConfig {
        vaults: params
            .chains
            .iter()
            .map(|c| (c.chain_id, c.vault))
            .collect(),
        members: params
            .members
            .iter()
            .map(|m| {
                (
                    m.id,
                    MemberPolicy {
                        home_chain_id: m.home_chain_id,
                        local_cap: m.local_cap,
                    },
                )
            })
            .collect(),
        dust: params.agreement.dust,
        draw_ttl_s: params.agreement.draw_ttl_s,
        leg_ttl_s: params.agreement.leg_ttl_s,
        max_pin_age_s: params.agreement.draw_ttl_s.min(300),
        settle_s: (params.agreement.settle.as_millis() as u64).div_ceil(1000),
        keep: 256,
        action_ttl_s: params.agreement.action_ttl_s,
    });
    let machine = Machine::restore(
        mcfg,
        view,
        params.signer.clone(),
        store,
        backstop_types::time::now_ms(),
    )?;
    info!(
        open = machine.open_incidents().len(),
        "agreement state restored"
    );
    Ok(machine)
}

/// Where to dial the other nodes (every configured node but this one).
pub fn peer_addrs(params: &Params) -> Result<Vec<PeerAddr>, backstop_p2p::network::NetworkError> {
    params
        .peers
        .iter()
        .filter(|p| p.public_key != params.identity.verifying_key().to_bytes())
        .map(|p| {
            Ok(PeerAddr {
                peer: network::peer_id_of(&p.public_key)?,
                addrs: p.addrs.clone(),
            })
        })
        .collect()
}

/// Starts the gossip network towards the other nodes.
async fn start_network(
    params: &Params,
    consortium: &Consortium,
    catchup: Arc<MemoryCatchUpStore>,
) -> Result<(network::NetworkHandle, tokio::task::JoinHandle<()>), RuntimeError> {
    let peers = peer_addrs(params)?;
    let ncfg = NetworkConfig::new(
        params.identity.clone(),
        Arc::new(consortium.clone()),
        params.listen.clone(),
        peers,
        catchup,
    );
    let (net, net_task) = network::spawn(ncfg).await?;
    info!(peer_id = %net.local_peer_id(), listen = ?net.listen_addrs(), "gossip up");
    Ok((net, net_task))
}

/// Spawns each chain's watcher and adapter; returns what the adapters send the core.
fn spawn_watchers(
    watchers: Vec<WatcherSetup>,
    tasks: &mut JoinSet<(String, Result<(), String>)>,
) -> mpsc::Receiver<ChainInput> {
    let (chain_tx, chain_rx) = mpsc::channel(1024);
    for (wcfg, pool, spec) in watchers {
        let chain_id = spec.chain_id;
        let (tx, rx) = mpsc::channel(256);
        let watcher = Watcher::with_pool(wcfg, pool.clone(), tx);
        tasks.spawn(async move {
            watcher.run().await;
            (format!("watcher of chain {chain_id}"), Ok(()))
        });
        let core_tx = chain_tx.clone();
        tasks.spawn(async move {
            chains::run_adapter(pool, spec, rx, core_tx).await;
            (format!("adapter of chain {chain_id}"), Ok(()))
        });
    }
    drop(chain_tx);
    chain_rx
}

/// Waits for the first of shutdown, a supervised task ending, or the core ending; returns
/// the core's machine when it stopped cleanly.
async fn supervise(
    shutdown: &mut watch::Receiver<bool>,
    mut core_task: tokio::task::JoinHandle<Result<NodeMachine, crate::core::CoreError>>,
    tasks: &mut JoinSet<(String, Result<(), String>)>,
) -> Result<Option<NodeMachine>, RuntimeError> {
    let core_result = |r: Result<Result<NodeMachine, _>, tokio::task::JoinError>| match r {
        Ok(Ok(m)) => Ok(Some(m)),
        Ok(Err(e)) => Err(RuntimeError::from(e)),
        Err(e) => Err(RuntimeError::TaskStopped(format!("core: {e}"))),
    };
    tokio::select! {
        biased;
        _ = shutdown.changed() => {
            info!("shutdown requested");
            core_result((&mut core_task).await)
        }
        // The core only returns by itself on shutdown.
        r = &mut core_task => core_result(r),
        Some(done) = tasks.join_next() => {
            let (name, why) = match done {
                Ok((name, Ok(()))) => (name, "ended".to_string()),
                Ok((name, Err(e))) => (name, e),
                Err(e) => ("a task".to_string(), e.to_string()),
            };
            if *shutdown.borrow() {
                // A task that ends once shutdown was requested (the API server drains at
                // once) is the graceful path, not a failure: the store is still flushed.
                info!(task = %name, "task stopped for shutdown");
                core_result((&mut core_task).await)
            } else {
                error!(task = %name, reason = %why, "supervised task stopped; stopping the node");
                Err(RuntimeError::TaskStopped(format!("{name}: {why}")))
            }
        }
    }
}
