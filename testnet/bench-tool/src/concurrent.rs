//! Agreement under load and memory: a consortium with many members, a small gap raised for
//! every one at once; certificates per second, time until all are closed, the nodes'
//! resident memory idle and at peak, and what else the nodes did meanwhile (further draws
//! for members that had booked theirs).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use alloy::primitives::{B256, U256};
use alloy::providers::Provider;
use anyhow::{Context, Result, bail};
use backstop_api::proto::IncidentPhase;
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
    /// Load averages before and after.
    pub load: ([f64; 3], [f64; 3]),
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

/// Runs the concurrent incidents with `members` members and 4 nodes.
pub async fn run(ctx: &Ctx, members: usize) -> Result<Concurrent> {
    let load_before = machine::load_average();
    let n = 4;
    let label = format!("{members} concurrent incidents");
    ctx.progress(&format!(
        "{label}: deploying 3 chains and registering {members} members on every vault"
    ));
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
    let t = Instant::now();
    let net = deploy_consortium(&CHAINS, n, &params).await;
    let deploy_s = t.elapsed().as_secs_f64();
    ctx.progress(&format!("{label}: deployed in {deploy_s:.1} s"));

    let root = ctx.workdir()?;
    let mut settings = NodeSettings::bench(1);
    // A long settle time: a gap still standing after a paid draw may open the next incident
    // only after this, and the benchmark books 100 draws as they come.
    settings.settle_ms = 20_000;
    // Many members of one chain in trouble at once is exactly what contagion detects; the
    // benchmark measures agreement, not the breaker.
    settings.extra = "[detectors]\ncontagion_members = 1024\n".to_owned();
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
    ctx.progress(&format!(
        "{label}: idle RSS (MiB) {:?}",
        idle_rss_kib.iter().map(|k| k / 1024).collect::<Vec<_>>()
    ));

    let stop = Arc::new(AtomicBool::new(false));
    let sampler = spawn_sampler(pids.clone(), stop.clone());
    let result = incidents(ctx, &net, &nodes, members).await;
    stop.store(true, Ordering::Relaxed);
    let peak_rss_kib = sampler.await.unwrap_or_default();
    let mut out = match result {
        Ok(out) => out,
        Err(e) => return Err(ctx.fail_workdir(root, &nodes, e).await),
    };
    out.members = members;
    out.nodes = n;
    out.deploy_s = deploy_s;
    out.start_s = start_s;
    out.idle_rss_kib = idle_rss_kib;
    out.peak_rss_kib = peak_rss_kib;
    out.hwm_kib = pids.iter().filter_map(|p| machine::hwm_kib(*p)).collect();
    ctx.finish_workdir(root, &nodes).await;
    for node in &mut nodes {
        node.stop();
    }
    out.load = (load_before, machine::load_average());
    Ok(out)
}

/// Gas limit and fees set explicitly, so that sending is one `eth_sendRawTransaction`
/// (no estimate, no fee query) and many can go out at once.
fn fixed_fees<D: alloy::contract::CallDecoder>(
    call: alloy::contract::CallBuilder<&alloy::providers::DynProvider, D>,
) -> alloy::contract::CallBuilder<&alloy::providers::DynProvider, D> {
    call.gas(200_000)
        .max_fee_per_gas(100_000_000_000)
        .max_priority_fee_per_gas(1_000_000_000)
}

/// The deployer's next nonce on chain `chain` (anvil key 0 sends every fixture transaction).
async fn next_nonce(net: &Consortium, chain: usize) -> Result<u64> {
    let c = &net.chains[chain];
    let deployer = *c.anvil.addresses().first().context("anvil key 0")?;
    Ok(c.provider.get_transaction_count(deployer).await?)
}

/// Raises the gap of every member homed on `chain` at once: the deployer's transactions
/// with consecutive nonces from `nonce`, sent concurrently. Returns (member, time answered).
async fn raise_gaps(
    net: &Consortium,
    chain: usize,
    nonce: u64,
    assets: U256,
    liabilities: U256,
) -> Result<Vec<(usize, f64)>> {
    let c = &net.chains[chain];
    let mine: Vec<(usize, u64)> = net
        .members
        .iter()
        .enumerate()
        .filter(|(_, m)| m.spec.home_chain_id == c.chain_id)
        .zip(nonce..)
        .map(|((i, _), nonce)| (i, nonce))
        .collect();
    let sent = futures::future::join_all(mine.into_iter().map(|(i, nonce)| async move {
        let _pending = fixed_fees(
            MockMember::new(net.member(i).contract, c.provider.clone())
                .setSolvency(assets, liabilities)
                .nonce(nonce),
        )
        .send()
        .await
        .with_context(|| format!("send the gap of member {i}"))?;
        anyhow::Ok((i, now_ms()))
    }))
    .await;
    sent.into_iter().collect()
}

/// Raises every member's gap at once, books each draw once registered, and waits until
/// every incident is closed on every node.
async fn incidents(
    ctx: &Ctx,
    net: &Consortium,
    nodes: &[Node],
    members: usize,
) -> Result<Concurrent> {
    let solvent = U256::from(MEMBER_SOLVENCY);
    let liabilities = solvent + U256::from(SMALL_GAP_UNITS * UNIT);
    // The benchmark numbers the deployer's transactions itself from here on: the gaps go
    // out concurrently, and a nonce read from the chain could miss one still in flight.
    let mut nonces = Vec::new();
    for c in 0..net.chains.len() {
        nonces.push(next_nonce(net, c).await?);
    }
    let per_chain = futures::future::join_all(
        nonces
            .iter()
            .enumerate()
            .map(|(c, n)| raise_gaps(net, c, *n, solvent, liabilities)),
    )
    .await;
    for (c, n) in nonces.iter_mut().enumerate() {
        let homed = net
            .members
            .iter()
            .filter(|m| m.spec.home_chain_id == net.chains[c].chain_id)
            .count();
        *n += homed as u64;
    }
    let mut sent_at = vec![0.0; members];
    for r in per_chain {
        for (i, at) in r? {
            sent_at[i] = at;
        }
    }
    let t_first = sent_at.iter().copied().fold(f64::INFINITY, f64::min);
    let t_last = sent_at.iter().copied().fold(0.0, f64::max);
    ctx.progress(&format!(
        "{members} gaps raised in {:.0} ms; booking draws as they register",
        t_last - t_first
    ));

    // Book each draw once registered (every member polled in parallel every 200 ms); wait
    // for every incident closed on every node.
    let mut booked: Vec<Option<f64>> = vec![None; members];
    let mut booking_delay_ms = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut last_report = Instant::now();
    loop {
        let pending: Vec<usize> = (0..members).filter(|i| booked[*i].is_none()).collect();
        let draws = futures::future::join_all(pending.iter().map(|&i| async move {
            let m = net.member(i);
            let d = net.home(i).vault().drawOf(m.spec.id, 0).call().await;
            (i, d, now_ms())
        }))
        .await;
        // Newly registered draws are booked at once, concurrently (numbered nonces).
        let mut to_book = Vec::new();
        for (i, d, seen) in draws {
            if d? == B256::ZERO {
                continue;
            }
            let m = net.member(i);
            let chain = net
                .chains
                .iter()
                .position(|c| c.chain_id == m.spec.home_chain_id)
                .context("home chain")?;
            to_book.push((i, seen, nonces[chain]));
            nonces[chain] += 1;
        }
        let sent =
            futures::future::join_all(to_book.into_iter().map(|(i, seen, nonce)| async move {
                let _pending = fixed_fees(
                    MockMember::new(net.member(i).contract, net.home(i).provider.clone())
                        .setSolvency(liabilities, liabilities)
                        .nonce(nonce),
                )
                .send()
                .await
                .with_context(|| format!("book the draw of member {i}"))?;
                anyhow::Ok((i, seen, now_ms()))
            }))
            .await;
        for r in sent {
            let (i, seen, at) = r?;
            booked[i] = Some(at);
            booking_delay_ms.push(at - seen);
        }
        let registered = booked.iter().filter(|b| b.is_some()).count();
        if registered == members {
            let mut closed_everywhere = true;
            for node in nodes {
                let closed = node
                    .incidents()
                    .await?
                    .iter()
                    .filter(|x| x.seq == 0 && x.phase == IncidentPhase::Closed as i32)
                    .count();
                if closed < members {
                    closed_everywhere = false;
                    break;
                }
            }
            if closed_everywhere {
                break;
            }
        }
        if last_report.elapsed() > Duration::from_secs(5) {
            ctx.progress(&format!(
                "{registered}/{members} draws registered after {:.1} s",
                (now_ms() - t_first) / 1000.0
            ));
            last_report = Instant::now();
        }
        if Instant::now() >= deadline {
            bail!("{registered}/{members} draws registered after 600 s");
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
    out.cert_ms.sort_by(f64::total_cmp);
    out.closed_ms.sort_by(f64::total_cmp);
    out.gaps_sent_ms = t_last - t_first;
    Ok(out)
}
