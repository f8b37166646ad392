//! Recovery latency: a series of incidents of one member, one at a time, each needing legs
//! on all three chains; per incident, from the gap transaction to the last leg seen paid,
//! and the node's own share (gap seen → registration sent) and the agreement round
//! (proposal → certificate) from the timelines.

use std::time::{Duration, Instant};

use alloy::consensus::Transaction as _;
use alloy::primitives::{B256, U256};
use alloy::providers::Provider;
use alloy::sol_types::SolCall;
use anyhow::{Context, Result, bail};
use backstop_api::proto::{Incident, IncidentPhase};
use backstop_contracts::bindings::{BackstopVault, MockMember};
use backstop_contracts::testing::{
    ChainParams, Consortium, ConsortiumParams, UNIT, default_limits, deploy_consortium,
};

use crate::cluster::{
    Node, NodeSettings, configure, draw_of, now_ms, solvency, start_all, wait_full_buckets,
    wait_until,
};
use crate::machine;
use crate::timeline::{Step, first_ms, last_leg};
use crate::{CHAINS, Ctx};

/// How the chains make blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mining {
    /// A block per transaction at once, plus an empty block every second (the fixtures'
    /// `mine_every = Some(1 s)`); nodes use `confirmations = 1`.
    OneSecond,
    /// A block per transaction and no other (`mine_every = None`); nodes use
    /// `confirmations = 0`.
    Instant,
}

impl Mining {
    /// Label used in the report.
    pub fn label(self) -> &'static str {
        match self {
            Mining::OneSecond => "1-s blocks",
            Mining::Instant => "instant mining",
        }
    }

    /// Node `confirmations`.
    pub fn confirmations(self) -> u64 {
        match self {
            Mining::OneSecond => 1,
            Mining::Instant => 0,
        }
    }
}

/// The gap of every incident: 16,100 units, so that 16,000 above the deductible of 100 needs
/// the home vault's full bucket (10,000) and 3,000 from each other vault.
pub const GAP_UNITS: u64 = 16_100;
/// Seconds between the nodes being ready and the first incident (10 when the series also
/// measures idle memory).
pub const WARM_UP_S: u64 = 3;
/// Deposit of every vault: enough for every incident of a series (the home vault pays
/// 10,000 units per incident).
pub const DEPOSIT_UNITS: u64 = 2_000_000;

/// One incident of a series.
#[derive(Clone, Debug, Default)]
pub struct Sample {
    /// Draw sequence.
    pub seq: u64,
    /// Gap transaction answered (anvil mines before answering) → last leg seen paid on
    /// node-0 (ms).
    pub recovery_ms: f64,
    /// Block of the last leg minus the head of its chain when the gap transaction was
    /// mined.
    pub recovery_blocks: Option<u64>,
    /// Chain of the last leg.
    pub last_leg_chain: u64,
    /// Legs of the registered draw (node-0).
    pub legs: usize,
    /// Gap transaction → node-0's "gap seen" (ms).
    pub seen_ms: Option<f64>,
    /// The submitter: "gap seen" → "registration sent" on its own timeline (ms); `None`
    /// when the submitter learned of the incident from a peer's proposal before its own
    /// detection (its journal then logs no "gap seen").
    pub node_share_ms: Option<f64>,
    /// The earliest "gap seen" on any node → the submitter's "registration sent" (ms).
    pub share_any_ms: Option<f64>,
    /// The submitter: first "proposed" → "certificate over" (ms).
    pub proposal_to_cert_ms: Option<f64>,
    /// The submitter: "gap seen" → first "proposed" (ms).
    pub seen_to_proposed_ms: Option<f64>,
    /// The submitter: "certificate over" → "registration sent" (ms).
    pub cert_to_sent_ms: Option<f64>,
    /// The submitter: "registration sent" → "registered on chain" (ms).
    pub sent_to_registered_ms: Option<f64>,
    /// node-0: "registered on chain" → last leg seen paid (ms).
    pub registered_to_last_ms: Option<f64>,
    /// Index of the node that sent the registration.
    pub submitter: Option<usize>,
    /// Highest attempt on node-0.
    pub attempt: u32,
    /// Whether a node's timeline shows the incident closed and reopened ("reopened: …"),
    /// which restarts that node's timeline.
    pub reopened: bool,
    /// Gas of the registration transaction (receipt).
    pub register_gas: Option<u64>,
    /// Signatures in the registration's blob.
    pub register_sigs: Option<usize>,
    /// Gas of each release transaction (receipt).
    pub release_gas: Vec<u64>,
}

/// A long series samples the nodes' memory after every this many incidents.
pub const RSS_EVERY: usize = 25;

/// One series: a fresh consortium, `incidents` incidents.
#[derive(Clone, Debug)]
pub struct Series {
    /// Nodes.
    pub nodes: usize,
    /// Block production.
    pub mining: Mining,
    /// Run number (1-based) among series of the same configuration.
    pub run: usize,
    /// Seconds to deploy the chains, vaults and the one member.
    pub deploy_s: f64,
    /// Seconds from the first node's start to every node ready and connected.
    pub start_s: f64,
    /// Wall time of the whole series (s).
    pub wall_s: f64,
    /// The incidents.
    pub samples: Vec<Sample>,
    /// Per node, `backstop_proposal_to_certificate_seconds` (sum s, count) at the end.
    pub metric_p2c: Vec<(f64, f64)>,
    /// Per node, VmRSS (KiB) about 10 s after every node was ready, if measured.
    pub idle_rss_kib: Vec<u64>,
    /// Per node, VmHWM (KiB) at the end of the series.
    pub hwm_kib: Vec<u64>,
    /// Largest VmRSS (KiB) over the nodes after every [`RSS_EVERY`] incidents: (incidents
    /// done, KiB). Long series show whether memory grows with the incidents.
    pub rss_by_incidents: Vec<(usize, u64)>,
    /// Load averages before and after.
    pub load: ([f64; 3], [f64; 3]),
    /// Lines of the nodes' logs closing an incident as resolved ("reason=Resolved").
    pub log_resolved: usize,
    /// Lines of the nodes' logs reopening an incident ("incident reopened").
    pub log_reopened: usize,
}

impl Sample {
    /// Whether the incident measured what it should: a draw with legs on all three chains.
    /// Incidents with fewer legs stay in the raw data and the counts, not in the statistics.
    pub fn valid(&self) -> bool {
        self.legs == crate::CHAINS.len()
    }
}

impl Series {
    /// Label such as "4 nodes, 1-s blocks".
    pub fn label(&self) -> String {
        format!("{} nodes, {}", self.nodes, self.mining.label())
    }

    /// One value per valid sample ([`Sample::valid`]).
    pub fn values(&self, f: impl Fn(&Sample) -> Option<f64>) -> Vec<f64> {
        self.samples
            .iter()
            .filter(|s| s.valid())
            .filter_map(f)
            .collect()
    }
}

/// Deploys a consortium of `n` nodes for a latency series.
pub async fn deploy(n: usize, mining: Mining) -> Consortium {
    let mut limits = default_limits();
    // A bucket that refills at once: what a vault can pay is its balance above the
    // reserve, capped by the bucket, one block-second after its last payout.
    limits.refillPerSecond = limits.bucketCapacity;
    let params = ConsortiumParams {
        mine_every: match mining {
            Mining::OneSecond => Some(Duration::from_secs(1)),
            Mining::Instant => None,
        },
        chain: ChainParams {
            limits,
            deposit: U256::from(DEPOSIT_UNITS * UNIT),
            ..ChainParams::default()
        },
        ..Default::default()
    };
    deploy_consortium(&CHAINS, n, &params).await
}

/// Runs one series.
pub async fn run_series(
    ctx: &Ctx,
    n: usize,
    mining: Mining,
    run: usize,
    incidents: usize,
    measure_idle: bool,
) -> Result<Series> {
    let load_before = machine::load_average();
    let wall = Instant::now();
    let label = format!("{n} nodes, {}, run {run}", mining.label());
    ctx.progress(&format!("{label}: deploying 3 chains"));
    let t = Instant::now();
    let net = deploy(n, mining).await;
    let deploy_s = t.elapsed().as_secs_f64();
    let root = ctx.workdir()?;
    let settings = NodeSettings::bench(mining.confirmations());
    let mut nodes = configure(&ctx.node_bin, root.path(), &net, &settings)?;
    let t = Instant::now();
    start_all(&mut nodes).await?;
    let start_s = t.elapsed().as_secs_f64();
    ctx.progress(&format!(
        "{label}: deployed in {deploy_s:.1} s, nodes ready in {start_s:.1} s"
    ));
    let mut idle_rss_kib = Vec::new();
    if !measure_idle {
        // Nodes that have just become ready may not have read every vault yet; the first
        // incident of a series should not find them mid-start.
        tokio::time::sleep(Duration::from_secs(WARM_UP_S)).await;
    }
    if measure_idle {
        tokio::time::sleep(Duration::from_secs(10)).await;
        idle_rss_kib = nodes
            .iter()
            .filter_map(|x| x.pid().and_then(machine::rss_kib))
            .collect();
        ctx.progress(&format!(
            "{label}: idle RSS (MiB) {:?}",
            idle_rss_kib.iter().map(|k| k / 1024).collect::<Vec<_>>()
        ));
    }

    let mut samples = Vec::with_capacity(incidents);
    let mut rss_by_incidents = Vec::new();
    for seq in 0..incidents as u64 {
        let sample = match incident(&net, &nodes, mining, seq).await {
            Ok(sample) => sample,
            Err(e) => {
                let e = ctx.fail_workdir(root, &nodes, e).await;
                return Err(e.context(format!("{label}: incident {seq}")));
            }
        };
        ctx.progress(&format!(
            "{label}: incident {}/{incidents}: {:.0} ms, {} blocks, node share {} ms (from first gap seen anywhere {} ms), {} legs",
            seq + 1,
            sample.recovery_ms,
            sample
                .recovery_blocks
                .map_or("?".to_owned(), |b| b.to_string()),
            sample
                .node_share_ms
                .map_or("?".to_owned(), |v| format!("{v:.0}")),
            sample
                .share_any_ms
                .map_or("?".to_owned(), |v| format!("{v:.0}")),
            sample.legs,
        ));
        samples.push(sample);
        if samples.len() % RSS_EVERY == 0 {
            let rss = nodes
                .iter()
                .filter_map(|x| x.pid().and_then(machine::rss_kib))
                .max()
                .unwrap_or(0);
            ctx.progress(&format!(
                "{label}: after {} incidents the largest node RSS is {} KiB",
                samples.len(),
                rss
            ));
            rss_by_incidents.push((samples.len(), rss));
        }
        // The member has `settle_ms` to book a paid draw, and the nodes price its next gap
        // only from a block that many whole seconds (block time) after the registration;
        // wait a little more than that before the next gap.
        let settle = settings.settle_ms.div_ceil(1000) * 1000;
        tokio::time::sleep(Duration::from_millis(settle + 300)).await;
    }
    let mut metric_p2c = Vec::new();
    for node in &nodes {
        let text = node.metrics_text().await.unwrap_or_default();
        metric_p2c.push((
            metric_value(&text, "backstop_proposal_to_certificate_seconds_sum").unwrap_or(0.0),
            metric_value(&text, "backstop_proposal_to_certificate_seconds_count").unwrap_or(0.0),
        ));
    }
    let hwm_kib = nodes
        .iter()
        .filter_map(|x| x.pid().and_then(machine::hwm_kib))
        .collect();
    let (mut log_resolved, mut log_reopened) = (0, 0);
    for node in &nodes {
        let log = node.log_plain();
        log_resolved += log.matches("reason=Resolved").count();
        log_reopened += log.matches("incident reopened").count();
    }
    ctx.finish_workdir(root, &nodes).await;
    for node in &mut nodes {
        node.stop();
    }
    Ok(Series {
        log_resolved,
        log_reopened,
        nodes: n,
        mining,
        run,
        deploy_s,
        start_s,
        wall_s: wall.elapsed().as_secs_f64(),
        samples,
        metric_p2c,
        idle_rss_kib,
        hwm_kib,
        rss_by_incidents,
        load: (load_before, machine::load_average()),
    })
}

/// The value of an unlabelled metric line `name value`.
pub fn metric_value(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// The incident `seq` of member 0 on `node`.
async fn find(node: &Node, member: &str, seq: u64) -> Result<Option<Incident>> {
    Ok(node
        .incidents()
        .await?
        .into_iter()
        .find(|x| x.seq == seq && x.member.eq_ignore_ascii_case(member)))
}

/// One incident: gap, booking, closure on every node, and its measurements.
async fn incident(net: &Consortium, nodes: &[Node], mining: Mining, seq: u64) -> Result<Sample> {
    wait_full_buckets(net, mining.confirmations(), mining == Mining::Instant).await?;
    if mining == Mining::OneSecond {
        // The loop above polls in step with the block timer; without this, every gap of a
        // series would fall at about the same phase of the 1-s block and the series would
        // measure that phase. Offsets k·φ mod 1 s spread the gaps evenly over the second.
        let phase = (seq as f64 * 0.618_033_988_75).fract();
        tokio::time::sleep(Duration::from_secs_f64(phase)).await;
    }
    let m = net.member(0);
    let home = net.home(0);
    let member = m.spec.id.to_string();
    let (assets, _) = solvency(net, 0).await?;
    let gap = U256::from(GAP_UNITS * UNIT);

    // The gap: liabilities rise (assets never fall: that would look like an exploit).
    let pending = MockMember::new(m.contract, home.provider.clone())
        .setSolvency(assets, assets + gap)
        .send()
        .await
        .context("send setSolvency")?;
    let t_gap = now_ms();
    let mut heads = Vec::new();
    for c in &net.chains {
        heads.push((c.chain_id, c.head().await));
    }
    let receipt = pending.get_receipt().await.context("gap receipt")?;
    if !receipt.status() {
        bail!("setSolvency reverted");
    }
    if let (Some(b), Some(h)) = (
        receipt.block_number,
        heads.iter_mut().find(|(c, _)| *c == home.chain_id),
    ) {
        h.1 = b;
    }

    // The member books the draw once registered, as its insurance fund would.
    wait_until(
        "the draw registered on the home vault",
        Duration::from_secs(120),
        Duration::from_millis(50),
        || async { Ok(draw_of(net, 0, seq).await? != B256::ZERO) },
    )
    .await?;
    net.set_books(0, (assets + gap, assets + gap), seq + 1)
        .await;

    wait_until(
        "the incident closed on every node",
        Duration::from_secs(120),
        Duration::from_millis(100),
        || async {
            for node in nodes {
                let closed = find(node, &member, seq)
                    .await?
                    .is_some_and(|x| x.phase == IncidentPhase::Closed as i32);
                if !closed {
                    return Ok(false);
                }
            }
            Ok(true)
        },
    )
    .await?;

    let mut seen = Vec::new();
    for node in nodes {
        seen.push(find(node, &member, seq).await?);
    }
    let inc0 = seen
        .first()
        .and_then(Option::as_ref)
        .context("node-0 lists the incident")?;
    let last = last_leg(inc0).context("node-0's timeline shows no leg paid")?;
    let head_then = heads
        .iter()
        .find(|(c, _)| *c == last.chain_id)
        .map(|(_, h)| *h);
    let mut s = Sample {
        seq,
        recovery_ms: last.at_ms - t_gap,
        recovery_blocks: last.block.zip(head_then).map(|(b, h)| b.saturating_sub(h)),
        last_leg_chain: last.chain_id,
        legs: inc0.legs.len(),
        seen_ms: first_ms(inc0, Step::GapSeen).map(|t| t - t_gap),
        registered_to_last_ms: first_ms(inc0, Step::Registered).map(|t| last.at_ms - t),
        attempt: inc0.attempt,
        ..Sample::default()
    };

    s.reopened = seen
        .iter()
        .flatten()
        .any(|x| x.timeline.iter().any(|e| e.what.starts_with("reopened")));
    let first_seen_any = seen
        .iter()
        .flatten()
        .filter_map(|x| first_ms(x, Step::GapSeen))
        .reduce(f64::min);
    // The submitter: the node whose timeline says it sent the registration first.
    let submitter = seen
        .iter()
        .enumerate()
        .filter_map(|(i, x)| Some((i, x.as_ref()?)))
        .filter_map(|(i, x)| Some((i, x, first_ms(x, Step::RegistrationSent)?)))
        .min_by(|a, b| a.2.total_cmp(&b.2));
    if let Some((i, inc, sent)) = submitter {
        let seen_at = first_ms(inc, Step::GapSeen);
        let proposed = first_ms(inc, Step::Proposed);
        let cert = first_ms(inc, Step::Certificate);
        let registered = first_ms(inc, Step::Registered);
        s.submitter = Some(i);
        s.node_share_ms = seen_at.map(|t| sent - t);
        s.share_any_ms = first_seen_any.map(|t| sent - t);
        s.seen_to_proposed_ms = seen_at.zip(proposed).map(|(a, b)| b - a);
        s.proposal_to_cert_ms = proposed.zip(cert).map(|(a, b)| b - a);
        s.cert_to_sent_ms = cert.map(|c| sent - c);
        s.sent_to_registered_ms = registered.map(|r| r - sent);
    }

    // Gas of what the nodes sent.
    for leg in &inc0.legs {
        let Ok(hash) = leg.tx_hash.parse::<B256>() else {
            continue;
        };
        let chain = net.chain(leg.chain_id);
        let Some(r) = chain.provider.get_transaction_receipt(hash).await? else {
            continue;
        };
        if leg.chain_id == home.chain_id {
            s.register_gas = Some(r.gas_used);
            if let Some(tx) = chain.provider.get_transaction_by_hash(hash).await?
                && let Ok(call) = BackstopVault::registerDrawCall::abi_decode(tx.input())
            {
                s.register_sigs = Some(call.signatures.len() / 65);
            }
        } else {
            s.release_gas.push(r.gas_used);
        }
    }
    Ok(s)
}
