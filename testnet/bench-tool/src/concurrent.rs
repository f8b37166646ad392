//! Agreement under load and memory: a consortium with many members, a small gap raised for
//! every one at once; certificates per second, blocks from each gap to its draw's
//! registration, how far each node's confirmed head trails the chain's, time until all are
//! closed, the nodes' resident memory idle and at peak, and what else the nodes did
//! meanwhile (further draws for members that had booked theirs).
//!
//! The chains are deployed with instant mining; from the gaps on they mine only a block
//! every second ([`Blocks::Interval`], as a real chain would carry the gaps), unless the run
//! asks for [`Blocks::PerTransaction`] (every transaction at once in its own block, and a
//! block every second: the nodes then handle tens of blocks a second).
//!
//! Every member's gap and booking are sent by a key of its own (not the deployer's): a
//! transaction that anvil never mines can then hold up no other member's. Each gap and booking
//! is followed until mined ([`Tracker`]); one not mined within [`RESEND_AFTER`] is sent again
//! with doubled fees, and the run fails, naming it, if it is still not mined after
//! [`GIVE_UP_AFTER`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use alloy::network::EthereumWallet;
use alloy::primitives::{Address, B256, U256, keccak256};
use alloy::providers::ext::AnvilApi;
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;
use anyhow::{Context, Result, bail};
use backstop_api::proto::{IncidentPhase, ListChainsRequest};
use backstop_contracts::bindings::MockMember;
use backstop_contracts::testing::{
    ChainParams, Consortium, ConsortiumParams, MEMBER_SOLVENCY, MemberSpec, UNIT, default_limits,
    deploy_consortium,
};

use crate::cluster::{Node, NodeSettings, configure, now_ms, solvency, start_all};
use crate::machine;
use crate::timeline::{Step, first, first_ms};
use crate::{CHAINS, Ctx};

/// Gap of each member: 150 units; with the deductible of 100, each draw is 50 units, all
/// from the home vault.
pub const SMALL_GAP_UNITS: u64 = 150;

/// How the chains make blocks from the first gap on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Blocks {
    /// A block every second and no other: anvil's instant mining switched off.
    #[default]
    Interval,
    /// Every transaction at once in a block of its own, and a block every second.
    PerTransaction,
}

impl Blocks {
    /// For the report.
    pub fn describe(self) -> &'static str {
        match self {
            Blocks::Interval => "1-s blocks only",
            Blocks::PerTransaction => "a block per transaction and one every second",
        }
    }
}

/// Results of the concurrent incidents.
#[derive(Clone, Debug, Default)]
pub struct Concurrent {
    /// Members (= concurrent incidents).
    pub members: usize,
    /// Nodes.
    pub nodes: usize,
    /// Seconds to deploy the three chains and register every member on every vault.
    pub deploy_s: f64,
    /// Seconds from the first node's start to all ready and connected.
    pub start_s: f64,
    /// Per node, VmRSS (KiB) about 10 s after ready.
    pub idle_rss_kib: Vec<u64>,
    /// Per node, the same split into (anonymous, file-backed) KiB.
    pub idle_rss_split_kib: Vec<(u64, u64)>,
    /// Per node, largest VmRSS (KiB) sampled every 100 ms from the first gap until every
    /// incident was closed.
    pub peak_rss_kib: Vec<u64>,
    /// Per node, VmHWM (KiB) at the end.
    pub hwm_kib: Vec<u64>,
    /// First gap transaction answered → last gap transaction answered (ms).
    pub gaps_sent_ms: f64,
    /// Per incident, first gap transaction → earliest "certificate over" on any node (ms),
    /// sorted.
    pub cert_ms: Vec<f64>,
    /// First gap transaction → the earliest "gap seen" line of any node (ms): when the first
    /// gap stood in a confirmed block a node had read (the chain's share of `cert_ms`).
    pub first_gap_seen_ms: Option<f64>,
    /// Per incident, first gap transaction → closed on node-0 (ms), sorted.
    pub closed_ms: Vec<f64>,
    /// Per incident, its own gap transaction → closed on node-0 (ms).
    pub own_closed_ms: Vec<f64>,
    /// Incidents whose certificate time is their first registration's (no timeline kept a
    /// "certificate over" line).
    pub cert_from_registration: usize,
    /// Per incident, proposal → certificate on the node that certified first (ms).
    pub p2c_ms: Vec<f64>,
    /// Incidents (seq 0) with more than one attempt on node-0.
    pub retried: usize,
    /// Per member, its draw seen registered by the benchmark (`drawOf` polled every
    /// 200 ms) → booking transaction answered (ms).
    pub booking_delay_ms: Vec<f64>,
    /// Per member, the earliest "registered on chain" line of any node's timeline (the
    /// registration at confirmed depth) → booking transaction answered (ms); negative when
    /// the benchmark booked before any node logged the registration.
    pub booking_after_registered_ms: Vec<f64>,
    /// Incidents with seq ≥ 1 that node-0 listed when every seq-0 incident was closed.
    pub later_incidents: usize,
    /// Of those, how many opened on a gap seen at or before the block that registered the
    /// member's seq-0 draw (the gap the member had booked since).
    pub later_on_old_block: usize,
    /// For each later incident: the member's booking and node-0's timelines of its first
    /// and of the later incident (times relative to the first gap transaction).
    pub later_traces: Vec<Vec<String>>,
    /// Members with a second draw (`drawOf(member, 1)`) registered by then.
    pub second_draws: usize,
    /// Members whose solvency still showed a gap by then.
    pub gaps_left: usize,
    /// Gap and booking transactions not mined within [`RESEND_AFTER`] and sent again with
    /// doubled fees: one line each (what, sender, nonce, what the chain said).
    pub resent: Vec<String>,
    /// Load averages before and after.
    pub load: ([f64; 3], [f64; 3]),
    /// How the chains made blocks.
    pub blocks: Blocks,
    /// Per member, the block of its gap → the block of its draw's registration (the
    /// earliest any node's timeline names), sorted.
    pub gap_to_registration_blocks: Vec<u64>,
    /// Every 200 ms from the first gap until every incident was closed, per node and chain:
    /// blocks by which the node's confirmed head trailed the chain's (the chain's head less
    /// the confirmation depth), sorted.
    pub head_lag_blocks: Vec<u64>,
    /// A CPU profile of node-0 from the first gap; the error when it could not be taken.
    pub profile: Option<Result<crate::profile::Profile, String>>,
}

impl Concurrent {
    /// Certificates per second from the first gap transaction: certificates formed over the
    /// time from that transaction to the last of them (`None` before any).
    pub fn certs_per_s(&self) -> Option<f64> {
        let last = self.cert_ms.last()?;
        Some(self.cert_ms.len() as f64 / (last / 1000.0))
    }

    /// Certificates per second once a node could act: certificates formed over the time from
    /// the first gap a node saw (in a confirmed block) to the last of them. The time before
    /// that is the chain's: the gaps' block, then its confirmation.
    pub fn certs_per_s_from_seen(&self) -> Option<f64> {
        let last = self.cert_ms.last()?;
        let span = last - self.first_gap_seen_ms?;
        (span > 0.0).then(|| self.cert_ms.len() as f64 / (span / 1000.0))
    }
}

/// `[detectors]` of the nodes: many members of one chain in trouble at once is exactly what
/// contagion detects; these benchmarks measure agreement and memory, not the breaker.
pub const NO_CONTAGION: &str = "[detectors]\ncontagion_members = 1024\n";

/// Deploys 3 chains with 1-s blocks and `members` members homed in turn on each chain,
/// registered on every vault, for `n` nodes; buckets refill at once.
pub async fn deploy(n: usize, members: usize) -> Consortium {
    let mut limits = default_limits();
    limits.refillPerSecond = limits.bucketCapacity;
    let params = ConsortiumParams {
        mine_every: Some(Duration::from_secs(1)),
        chain: ChainParams {
            limits,
            deposit: U256::from(crate::latency::DEPOSIT_UNITS * UNIT),
            ..ChainParams::default()
        },
        members: (0..members)
            .map(|i| MemberSpec::new(i, CHAINS[i % CHAINS.len()]))
            .collect(),
        ..Default::default()
    };
    deploy_consortium(&CHAINS, n, &params).await
}

/// Samples the VmRSS of `pids` every 100 ms until `stop`; returns the largest per pid.
fn spawn_sampler(pids: Vec<u32>, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<Vec<u64>> {
    tokio::spawn(async move {
        let mut peak = vec![0u64; pids.len()];
        while !stop.load(Ordering::Relaxed) {
            for (p, pid) in peak.iter_mut().zip(&pids) {
                if let Some(kib) = machine::rss_kib(*pid) {
                    *p = (*p).max(kib);
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        peak
    })
}

/// Every 200 ms until `stop`: per node and chain, by how many blocks the node's confirmed
/// head trails the chain's head less `confirmations` (a sample is skipped where a node or a
/// chain does not answer).
fn spawn_lag_sampler(
    net: &Consortium,
    nodes: &[Node],
    confirmations: u64,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Vec<u64>> {
    let chains: Vec<(u64, DynProvider)> = net
        .chains
        .iter()
        .map(|c| (c.chain_id, c.provider.clone()))
        .collect();
    let apis: Vec<String> = nodes.iter().map(|n| n.api.clone()).collect();
    tokio::spawn(async move {
        let mut lags = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let heads =
                futures::future::join_all(chains.iter().map(|(id, p)| async move {
                    p.get_block_number().await.ok().map(|h| (*id, h))
                }))
                .await;
            let seen = futures::future::join_all(apis.iter().map(|a| confirmed_heads(a))).await;
            for node in seen.iter().flatten() {
                for &(id, head) in heads.iter().flatten() {
                    if let Some(&(_, confirmed)) = node.iter().find(|(c, _)| *c == id) {
                        lags.push(head.saturating_sub(confirmations).saturating_sub(confirmed));
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        lags
    })
}

/// A node's confirmed head per chain (`ListChains`), `None` while it does not answer.
async fn confirmed_heads(api: &str) -> Option<Vec<(u64, u64)>> {
    let mut c = backstop_api::client::client(api).await.ok()?;
    let chains = c.list_chains(ListChainsRequest {}).await.ok()?.into_inner();
    Some(
        chains
            .chains
            .iter()
            .map(|c| (c.chain_id, c.confirmed_head))
            .collect(),
    )
}

/// Runs the concurrent incidents with `members` members and 4 nodes.
pub async fn run(ctx: &Ctx, members: usize, blocks: Blocks) -> Result<Concurrent> {
    let load_before = machine::load_average();
    let n = 4;
    let label = format!("{members} concurrent incidents");
    ctx.progress(&format!(
        "{label}: deploying 3 chains and registering {members} members on every vault"
    ));
    let t = Instant::now();
    let net = deploy(n, members).await;
    let deploy_s = t.elapsed().as_secs_f64();
    ctx.progress(&format!("{label}: deployed in {deploy_s:.1} s"));

    let root = ctx.workdir()?;
    let mut settings = NodeSettings::bench(1);
    // A long settle time: a gap still standing after a paid draw may open the next incident
    // only after this, and the benchmark books 100 draws as they come.
    settings.settle_ms = 20_000;
    settings.extra = NO_CONTAGION.to_owned();
    let mut nodes = configure(&ctx.node_bin, root.path(), &net, &settings)?;
    let t = Instant::now();
    start_all(&mut nodes).await?;
    let start_s = t.elapsed().as_secs_f64();
    ctx.progress(&format!(
        "{label}: nodes ready in {start_s:.1} s; measuring idle memory for 10 s"
    ));
    tokio::time::sleep(Duration::from_secs(10)).await;
    let pids: Vec<u32> = nodes.iter().filter_map(Node::pid).collect();
    let idle_rss_kib: Vec<u64> = pids.iter().filter_map(|p| machine::rss_kib(*p)).collect();
    let idle_rss_split_kib = pids
        .iter()
        .filter_map(|p| machine::rss_split_kib(*p))
        .collect();
    ctx.progress(&format!(
        "{label}: idle RSS (MiB) {:?}",
        idle_rss_kib.iter().map(|k| k / 1024).collect::<Vec<_>>()
    ));

    let stop = Arc::new(AtomicBool::new(false));
    let sampler = spawn_sampler(pids.clone(), stop.clone());
    let lags = spawn_lag_sampler(&net, &nodes, settings.confirmations, stop.clone());
    let recording = match (nodes.first(), pids.first()) {
        (Some(node), Some(pid)) => crate::profile::start(&node.name, *pid, root.path()),
        _ => Err("no node-0 process".to_owned()),
    };
    let result = incidents(ctx, &net, &nodes, members, blocks).await;
    stop.store(true, Ordering::Relaxed);
    let profile = match recording {
        Ok(r) => r.finish().await,
        Err(e) => Err(e),
    };
    if let Err(e) = &profile {
        ctx.progress(&format!("{label}: no CPU profile: {e}"));
    }
    let peak_rss_kib = sampler.await.unwrap_or_default();
    let mut head_lag_blocks = lags.await.unwrap_or_default();
    head_lag_blocks.sort_unstable();
    let mut out = match result {
        Ok(out) => out,
        Err(e) => return Err(ctx.fail_workdir(root, &nodes, e).await),
    };
    out.members = members;
    out.nodes = n;
    out.deploy_s = deploy_s;
    out.start_s = start_s;
    out.idle_rss_kib = idle_rss_kib;
    out.idle_rss_split_kib = idle_rss_split_kib;
    out.peak_rss_kib = peak_rss_kib;
    out.hwm_kib = pids.iter().filter_map(|p| machine::hwm_kib(*p)).collect();
    out.blocks = blocks;
    out.head_lag_blocks = head_lag_blocks;
    out.profile = Some(profile);
    ctx.finish_workdir(root, &nodes).await;
    for node in &mut nodes {
        node.stop();
    }
    out.load = (load_before, machine::load_average());
    Ok(out)
}

/// Ether (wei) given to each member's sender key: a few transactions at 0.02 ETH of fees at most.
const SENDER_BALANCE_WEI: u128 = 10_000_000_000_000_000_000;
/// A gap or booking not mined this long after it was sent is sent again with doubled fees
/// (anvil mines each within a second: instant mining, and a block every second).
const RESEND_AFTER: Duration = Duration::from_secs(10);
/// A gap or booking still not mined this long after it was first sent fails the run.
const GIVE_UP_AFTER: Duration = Duration::from_secs(30);

/// Gas limit and fees set explicitly, so that sending is one `eth_sendRawTransaction`
/// (no estimate, no fee query) and many can go out at once; `factor` multiplies the fees (a
/// replacement must pay more than the transaction it replaces).
fn fixed_fees<D: alloy::contract::CallDecoder>(
    call: alloy::contract::CallBuilder<&DynProvider, D>,
    factor: u128,
) -> alloy::contract::CallBuilder<&DynProvider, D> {
    call.gas(200_000)
        .max_fee_per_gas(100_000_000_000 * factor)
        .max_priority_fee_per_gas(1_000_000_000 * factor)
}

/// The keys that send the benchmark's transactions: one per member, so that members' gaps and
/// bookings share no nonce sequence. With one sender for all (as before), a single transaction
/// that anvil never mines holds every later one of that sender in anvil's pool for good: anvil
/// computes what a transaction waits for from the sender's nonce read before it locks its
/// pool, so a transaction arriving while its predecessor is being mined can wait forever for
/// that (already mined) predecessor; the gaps behind it never rise and the bookings behind it
/// never land, and the nodes pay the unbooked members again every `settle_ms`.
pub(crate) struct Senders {
    /// Per chain, a provider whose wallet holds the keys of the members homed there.
    providers: Vec<DynProvider>,
    /// Per member, the index of its home chain.
    home: Vec<usize>,
    /// Per member, its sender's address.
    from: Vec<Address>,
    /// Per member, its sender's next nonce.
    next_nonce: Vec<u64>,
}

impl Senders {
    /// Derives a key per member, funds it on the member's home chain (`anvil_setBalance`, no
    /// transaction) and reads its nonce (pending tag).
    pub(crate) async fn new(net: &Consortium) -> Result<Self> {
        let mut home = Vec::with_capacity(net.members.len());
        let mut keys = Vec::with_capacity(net.members.len());
        for (i, m) in net.members.iter().enumerate() {
            home.push(
                net.chains
                    .iter()
                    .position(|c| c.chain_id == m.spec.home_chain_id)
                    .context("home chain")?,
            );
            keys.push(
                PrivateKeySigner::from_bytes(&keccak256(format!("backstop bench sender {i}")))
                    .context("sender key")?,
            );
        }
        let from: Vec<Address> = keys.iter().map(PrivateKeySigner::address).collect();
        let mut providers = Vec::with_capacity(net.chains.len());
        for (c, chain) in net.chains.iter().enumerate() {
            let mine: Vec<&PrivateKeySigner> = keys
                .iter()
                .zip(&home)
                .filter(|(_, h)| **h == c)
                .map(|(k, _)| k)
                .collect();
            providers.push(match mine.split_first() {
                Some((first, rest)) => {
                    let mut wallet = EthereumWallet::new((*first).clone());
                    for k in rest {
                        wallet.register_signer((*k).clone());
                    }
                    ProviderBuilder::new()
                        .wallet(wallet)
                        .connect_http(chain.anvil.endpoint_url())
                        .erased()
                }
                // No member homed here: never used.
                None => chain.provider.clone(),
            });
        }
        let funded = futures::future::join_all(from.iter().zip(&home).map(|(a, &c)| async move {
            let p = &net.chains[c].provider;
            p.anvil_set_balance(*a, U256::from(SENDER_BALANCE_WEI))
                .await
                .with_context(|| format!("fund sender {a} on chain {}", net.chains[c].chain_id))?;
            p.get_transaction_count(*a)
                .pending()
                .await
                .with_context(|| format!("nonce of sender {a}"))
        }))
        .await;
        let next_nonce = funded.into_iter().collect::<Result<Vec<u64>>>()?;
        Ok(Self {
            providers,
            home,
            from,
            next_nonce,
        })
    }

    /// Sends `setBooks(assets, liabilities, booked_draws)` to member `i`'s mock from its
    /// sender with `nonce` and the fixed fees times `factor`; returns the hash once anvil
    /// answered.
    async fn send(
        &self,
        net: &Consortium,
        i: usize,
        nonce: u64,
        (assets, liabilities, booked_draws): Books,
        factor: u128,
    ) -> Result<B256> {
        let provider = &self.providers[self.home[i]];
        let pending = fixed_fees(
            MockMember::new(net.member(i).contract, provider.clone())
                .setBooks(assets, liabilities, booked_draws)
                .from(self.from[i])
                .nonce(nonce),
            factor,
        )
        .send()
        .await?;
        Ok(*pending.tx_hash())
    }
}

/// A member's books: assets, liabilities and the draws they include (`setBooks`).
pub(crate) type Books = (U256, U256, u64);

/// What a followed transaction does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Raises the member's gap.
    Gap,
    /// Books the member's draw (closes the gap).
    Booking,
}

/// A gap or booking transaction, followed until mined.
struct Tracked {
    kind: Kind,
    member: usize,
    nonce: u64,
    /// The `setBooks` arguments.
    args: Books,
    /// Hashes of every version sent (the first, then one resent with doubled fees).
    hashes: Vec<B256>,
    /// When first sent.
    sent: Instant,
    /// Fee factor of the last version sent (1, then 2).
    factor: u128,
    mined: bool,
    /// The block that mined it.
    block: Option<u64>,
}

/// Follows the benchmark's transactions until mined: resends those not mined after
/// [`RESEND_AFTER`], fails naming those not mined after [`GIVE_UP_AFTER`].
#[derive(Default)]
pub(crate) struct Tracker {
    txs: Vec<Tracked>,
    /// One line per resent transaction.
    resent: Vec<String>,
}

impl Tracker {
    /// Follows a transaction just sent (answered by anvil with `hash`).
    fn sent(&mut self, kind: Kind, member: usize, nonce: u64, args: Books, hash: B256) {
        self.txs.push(Tracked {
            kind,
            member,
            nonce,
            args,
            hashes: vec![hash],
            sent: Instant::now(),
            factor: 1,
            mined: false,
            block: None,
        });
    }

    /// (mined, sent) transactions of `kind`.
    pub(crate) fn count(&self, kind: Kind) -> (usize, usize) {
        let of = self.txs.iter().filter(|t| t.kind == kind);
        (of.clone().filter(|t| t.mined).count(), of.count())
    }

    /// The block that mined member `member`'s gap, once seen.
    pub(crate) fn gap_block(&self, member: usize) -> Option<u64> {
        self.txs
            .iter()
            .find(|t| t.kind == Kind::Gap && t.member == member)
            .and_then(|t| t.block)
    }

    /// Transactions not yet seen mined.
    pub(crate) fn unmined(&self) -> usize {
        self.txs.iter().filter(|t| !t.mined).count()
    }

    /// Looks up the receipts of every transaction not yet seen mined; resends with doubled
    /// fees each one older than [`RESEND_AFTER`]; fails if one reverted or one is older than
    /// [`GIVE_UP_AFTER`], naming them.
    pub(crate) async fn check(
        &mut self,
        ctx: &Ctx,
        net: &Consortium,
        senders: &Senders,
    ) -> Result<()> {
        let open: Vec<usize> = (0..self.txs.len())
            .filter(|k| !self.txs[*k].mined)
            .collect();
        let txs = &self.txs;
        let status = futures::future::join_all(open.iter().map(|&k| async move {
            let t = &txs[k];
            let provider = &senders.providers[senders.home[t.member]];
            for h in &t.hashes {
                if let Some(r) = provider.get_transaction_receipt(*h).await? {
                    return anyhow::Ok(Some((r.status(), r.block_number)));
                }
            }
            anyhow::Ok(None)
        }))
        .await;
        let mut late = Vec::new();
        for (&k, st) in open.iter().zip(status) {
            match st? {
                Some((true, block)) => {
                    self.txs[k].mined = true;
                    self.txs[k].block = block;
                }
                Some((false, _)) => bail!("{} reverted", self.describe(net, senders, k)),
                None => late.push(k),
            }
        }
        let mut stuck = Vec::new();
        for k in late {
            let age = self.txs[k].sent.elapsed();
            if age >= GIVE_UP_AFTER {
                let why = diagnose(senders, &self.txs[k]).await;
                stuck.push(format!(
                    "{} not mined {:.0} s after sending ({why})",
                    self.describe(net, senders, k),
                    age.as_secs_f64(),
                ));
            } else if age >= RESEND_AFTER && self.txs[k].factor == 1 {
                let why = diagnose(senders, &self.txs[k]).await;
                let t = &self.txs[k];
                let outcome = match senders.send(net, t.member, t.nonce, t.args, 2).await {
                    Ok(h) => {
                        self.txs[k].hashes.push(h);
                        "resent with doubled fees".to_owned()
                    }
                    Err(e) => format!("resending with doubled fees failed: {e:#}"),
                };
                self.txs[k].factor = 2;
                let line = format!(
                    "{} not mined {:.0} s after sending ({why}); {outcome}",
                    self.describe(net, senders, k),
                    age.as_secs_f64()
                );
                ctx.progress(&line);
                self.resent.push(line);
            }
        }
        if !stuck.is_empty() {
            let (bm, bs) = self.count(Kind::Booking);
            let (gm, gs) = self.count(Kind::Gap);
            bail!(
                "{} transaction(s) never mined ({gm}/{gs} gaps and {bm}/{bs} bookings mined): {}",
                stuck.len(),
                stuck.join("; ")
            );
        }
        Ok(())
    }

    /// "booking of member 7 (chain 31338, sender 0x…, nonce 1)".
    fn describe(&self, net: &Consortium, senders: &Senders, k: usize) -> String {
        let t = &self.txs[k];
        format!(
            "{} of member {} (chain {}, sender {}, nonce {})",
            match t.kind {
                Kind::Gap => "gap",
                Kind::Booking => "booking",
            },
            t.member,
            net.chains[senders.home[t.member]].chain_id,
            senders.from[t.member],
            t.nonce
        )
    }
}

/// What the chain says of a transaction not mined: the sender's nonce and whether anvil still
/// holds the transaction.
async fn diagnose(senders: &Senders, t: &Tracked) -> String {
    let p = &senders.providers[senders.home[t.member]];
    let from = senders.from[t.member];
    let (latest, pending, held) = futures::join!(
        async { p.get_transaction_count(from).latest().await },
        async { p.get_transaction_count(from).pending().await },
        async { p.get_transaction_by_hash(t.hashes[0]).await },
    );
    let (Ok(latest), Ok(pending), Ok(held)) = (latest, pending, held) else {
        return "the chain did not answer".to_owned();
    };
    let state = if latest > t.nonce {
        "the nonce was used meanwhile"
    } else if latest < t.nonce {
        "an earlier nonce of the sender was never mined"
    } else if held.is_some() {
        "anvil holds it but does not mine it although its nonce is the next"
    } else {
        "anvil no longer holds it"
    };
    format!("sender nonce {latest}, pending {pending}: {state}")
}

/// Raises every member's gap at once: one transaction per member from its own sender, all
/// sent concurrently. Returns (member, time answered).
pub(crate) async fn raise_gaps(
    net: &Consortium,
    senders: &mut Senders,
    tracker: &mut Tracker,
    books: Books,
) -> Result<Vec<(usize, f64)>> {
    let s = &*senders;
    let sent = futures::future::join_all((0..net.members.len()).map(|i| async move {
        let nonce = s.next_nonce[i];
        let hash = s
            .send(net, i, nonce, books, 1)
            .await
            .with_context(|| format!("send the gap of member {i}"))?;
        anyhow::Ok((i, nonce, hash, now_ms()))
    }))
    .await;
    let mut out = Vec::with_capacity(sent.len());
    for r in sent {
        let (i, nonce, hash, at) = r?;
        senders.next_nonce[i] = nonce + 1;
        tracker.sent(Kind::Gap, i, nonce, books, hash);
        out.push((i, at));
    }
    Ok(out)
}

/// Books every draw `seq` registered since the last call: reads `drawOf(member, seq)` of each
/// member not yet booked (all in parallel) and sends `books` at once from the sender of each
/// member whose draw is there. Marks them in `booked` (when the booking was answered) and
/// returns, per member booked now, draw seen → booking answered (ms).
pub(crate) async fn book_registered(
    net: &Consortium,
    senders: &mut Senders,
    tracker: &mut Tracker,
    seq: u64,
    books: Books,
    booked: &mut [Option<f64>],
) -> Result<Vec<f64>> {
    let pending: Vec<usize> = (0..booked.len()).filter(|i| booked[*i].is_none()).collect();
    let draws = futures::future::join_all(pending.iter().map(|&i| async move {
        let m = net.member(i);
        let d = net.home(i).vault().drawOf(m.spec.id, seq).call().await;
        (i, d, now_ms())
    }))
    .await;
    let mut to_book = Vec::new();
    for (i, d, seen) in draws {
        if d? == B256::ZERO {
            continue;
        }
        to_book.push((i, seen, senders.next_nonce[i]));
        senders.next_nonce[i] += 1;
    }
    let s = &*senders;
    let sent = futures::future::join_all(to_book.into_iter().map(|(i, seen, nonce)| async move {
        let hash = s
            .send(net, i, nonce, books, 1)
            .await
            .with_context(|| format!("book the draw of member {i}"))?;
        anyhow::Ok((i, seen, nonce, hash, now_ms()))
    }))
    .await;
    let mut delays = Vec::new();
    for r in sent {
        let (i, seen, nonce, hash, at) = r?;
        tracker.sent(Kind::Booking, i, nonce, books, hash);
        booked[i] = Some(at);
        delays.push(at - seen);
    }
    Ok(delays)
}

/// Whether every node lists at least `members` closed incidents of draw `seq`.
pub(crate) async fn closed_on_every_node(nodes: &[Node], seq: u64, members: usize) -> Result<bool> {
    for node in nodes {
        let closed = node
            .incidents()
            .await?
            .iter()
            .filter(|x| x.seq == seq && x.phase == IncidentPhase::Closed as i32)
            .count();
        if closed < members {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Raises every member's gap at once, books each draw once registered, and waits until
/// every incident is closed on every node.
async fn incidents(
    ctx: &Ctx,
    net: &Consortium,
    nodes: &[Node],
    members: usize,
    blocks: Blocks,
) -> Result<Concurrent> {
    let solvent = U256::from(MEMBER_SOLVENCY);
    let liabilities = solvent + U256::from(SMALL_GAP_UNITS * UNIT);
    // One sender key per member (funded before the clock starts): the gaps go out
    // concurrently, and no member's transaction waits behind another's nonce.
    let mut senders = Senders::new(net).await?;
    if blocks == Blocks::Interval {
        for c in &net.chains {
            c.provider
                .anvil_set_auto_mine(false)
                .await
                .with_context(|| format!("switch off instant mining on chain {}", c.chain_id))?;
        }
    }
    let mut tracker = Tracker::default();
    let mut sent_at = vec![0.0; members];
    for (i, at) in raise_gaps(net, &mut senders, &mut tracker, (solvent, liabilities, 0)).await? {
        sent_at[i] = at;
    }
    let t_first = sent_at.iter().copied().fold(f64::INFINITY, f64::min);
    let t_last = sent_at.iter().copied().fold(0.0, f64::max);
    ctx.progress(&format!(
        "{members} gaps raised in {:.0} ms; booking draws as they register",
        t_last - t_first
    ));

    // Book each draw once registered (every member polled in parallel every 200 ms); follow
    // every gap and booking until mined; wait for every incident closed on every node.
    let mut booked: Vec<Option<f64>> = vec![None; members];
    let mut booking_delay_ms = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut last_report = Instant::now();
    loop {
        booking_delay_ms.extend(
            book_registered(
                net,
                &mut senders,
                &mut tracker,
                0,
                (liabilities, liabilities, 1),
                &mut booked,
            )
            .await?,
        );
        // Fails fast (naming the transaction) rather than waiting for the deadline while the
        // nodes pay members whose booking never lands.
        tracker.check(ctx, net, &senders).await?;
        let registered = booked.iter().filter(|b| b.is_some()).count();
        if registered == members
            && tracker.unmined() == 0
            && closed_on_every_node(nodes, 0, members).await?
        {
            break;
        }
        let (gaps_mined, _) = tracker.count(Kind::Gap);
        let (bookings_mined, bookings_sent) = tracker.count(Kind::Booking);
        if last_report.elapsed() > Duration::from_secs(5) {
            ctx.progress(&format!(
                "{registered}/{members} draws registered after {:.1} s ({gaps_mined}/{members} gaps and {bookings_mined}/{bookings_sent} bookings mined)",
                (now_ms() - t_first) / 1000.0
            ));
            last_report = Instant::now();
        }
        if Instant::now() >= deadline {
            bail!(
                "{registered}/{members} draws registered after 600 s ({gaps_mined}/{members} gaps and {bookings_mined}/{bookings_sent} bookings mined)"
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    ctx.progress(&format!(
        "every incident closed on every node {:.1} s after the first gap",
        (now_ms() - t_first) / 1000.0
    ));

    // What the chains say now.
    let mut second_draws = 0;
    let mut gaps_left = 0;
    for i in 0..members {
        if crate::cluster::draw_of(net, i, 1).await? != B256::ZERO {
            second_draws += 1;
        }
        let (a, l) = solvency(net, i).await?;
        if l > a {
            gaps_left += 1;
        }
    }

    // Timelines of every node.
    let ids: Vec<String> = net.members.iter().map(|m| m.spec.id.to_string()).collect();
    let mut per_node = Vec::new();
    for node in nodes {
        per_node.push(node.incidents().await?);
    }
    let mut out = Concurrent {
        booking_delay_ms,
        second_draws,
        gaps_left,
        resent: std::mem::take(&mut tracker.resent),
        ..Concurrent::default()
    };
    let node0 = per_node.first().cloned().unwrap_or_default();
    for (i, id) in ids.iter().enumerate() {
        let mine: Vec<_> = per_node
            .iter()
            .filter_map(|list| {
                list.iter()
                    .find(|x| x.seq == 0 && x.member.eq_ignore_ascii_case(id))
            })
            .collect();
        let first_cert = mine
            .iter()
            .filter_map(|x| Some((first_ms(x, Step::Certificate)?, *x)))
            .min_by(|a, b| a.0.total_cmp(&b.0));
        if let Some((at, inc)) = first_cert {
            out.cert_ms.push(at - t_first);
            if let Some(p) = first_ms(inc, Step::Proposed) {
                out.p2c_ms.push(at - p);
            }
        } else if let Some(at) = mine
            .iter()
            .filter_map(|x| first_ms(x, Step::Registered))
            .reduce(f64::min)
        {
            // No timeline kept the certificate line (a node that closes and reopens an
            // incident starts its timeline again): the registration is a later bound.
            out.cert_ms.push(at - t_first);
            out.cert_from_registration += 1;
        }
        if let (Some(reg), Some(b)) = (
            mine.iter()
                .filter_map(|x| first_ms(x, Step::Registered))
                .reduce(f64::min),
            booked[i],
        ) {
            out.booking_after_registered_ms.push(b - reg);
        }
        if let Some(inc0) = node0
            .iter()
            .find(|x| x.seq == 0 && x.member.eq_ignore_ascii_case(id))
        {
            if let Some(c) = first_ms(inc0, Step::Closed) {
                out.closed_ms.push(c - t_first);
                out.own_closed_ms.push(c - sent_at[i]);
            }
            if inc0.attempt > 0 {
                out.retried += 1;
            }
            let registered_block = first(inc0, Step::Registered).and_then(|e| e.block_number);
            for later in node0
                .iter()
                .filter(|x| x.seq >= 1 && x.member.eq_ignore_ascii_case(id))
            {
                out.later_incidents += 1;
                // What node-0 saw of the member's incidents, for whoever looks into it.
                let lines = |inc: &backstop_api::proto::Incident| {
                    inc.timeline
                        .iter()
                        .map(|e| {
                            format!(
                                "seq {}, {:+.0} ms{}: {}",
                                inc.seq,
                                e.timestamp_ms as f64 - t_first,
                                e.block_number
                                    .map_or(String::new(), |b| format!(", block {b}")),
                                e.what
                            )
                        })
                        .collect::<Vec<_>>()
                };
                let mut trace = vec![format!(
                    "member {i} ({id}): gap sent {:+.0} ms, booked {}",
                    sent_at[i] - t_first,
                    booked[i].map_or("never".to_owned(), |b| format!("{:+.0} ms", b - t_first))
                )];
                trace.extend(lines(inc0));
                trace.extend(lines(later));
                out.later_traces.push(trace);
                let seen_block = first(later, Step::GapSeen).and_then(|e| e.block_number);
                if let (Some(s), Some(r)) = (seen_block, registered_block)
                    && s <= r
                {
                    out.later_on_old_block += 1;
                }
            }
        }
    }
    for (i, id) in ids.iter().enumerate() {
        let registered = per_node
            .iter()
            .filter_map(|list| {
                list.iter()
                    .find(|x| x.seq == 0 && x.member.eq_ignore_ascii_case(id))
            })
            .filter_map(|x| first(x, Step::Registered).and_then(|e| e.block_number))
            .min();
        if let (Some(r), Some(g)) = (registered, tracker.gap_block(i)) {
            out.gap_to_registration_blocks.push(r.saturating_sub(g));
        }
    }
    out.first_gap_seen_ms = per_node
        .iter()
        .flatten()
        .filter(|x| x.seq == 0)
        .filter_map(|x| first_ms(x, Step::GapSeen))
        .reduce(f64::min)
        .map(|at| at - t_first);
    out.gap_to_registration_blocks.sort_unstable();
    out.cert_ms.sort_by(f64::total_cmp);
    out.closed_ms.sort_by(f64::total_cmp);
    out.gaps_sent_ms = t_last - t_first;
    Ok(out)
}
