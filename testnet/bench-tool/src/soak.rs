//! Memory over many incidents: a consortium of `members` members goes through `rounds`
//! rounds; in each, every member's gap opens at once (draw `seq` = the round), each draw is
//! booked as soon as it is registered, and the round ends when every node lists every
//! incident of the round closed. The nodes' VmRSS is read after every round, so the report
//! shows whether memory grows with the incidents a node has handled, and by how much per
//! incident once the bounded maps are full.

use std::time::{Duration, Instant};

use alloy::primitives::U256;
use anyhow::{Result, bail};
use backstop_contracts::testing::{Consortium, MEMBER_SOLVENCY, UNIT};

use crate::Ctx;
use crate::cluster::{Node, NodeSettings, configure, start_all};
use crate::concurrent::{
    self, SMALL_GAP_UNITS, Senders, Tracker, book_registered, closed_on_every_node, raise_gaps,
};
use crate::machine;

/// The nodes' `settle_ms`: the benchmark books each draw within a second or two of its
/// registration, and the booking rule keeps a later gap unpriced until it is booked.
const SETTLE_MS: u64 = 2_000;
/// A round not over after this long fails the run.
const ROUND_TIMEOUT: Duration = Duration::from_secs(300);

/// Results of a soak.
#[derive(Clone, Debug, Default)]
pub struct Soak {
    /// Members (incidents per round).
    pub members: usize,
    /// Rounds run.
    pub rounds: usize,
    /// Nodes.
    pub nodes: usize,
    /// Per node, VmRSS (KiB) about 10 s after ready.
    pub idle_rss_kib: Vec<u64>,
    /// After each round: (incidents done, per node VmRSS in KiB).
    pub rss_by_incidents: Vec<(usize, Vec<u64>)>,
    /// Seconds each round took, gaps sent → every incident closed on every node.
    pub round_s: Vec<f64>,
    /// Per node, VmHWM (KiB) at the end.
    pub hwm_kib: Vec<u64>,
    /// Wall time of the soak (s).
    pub wall_s: f64,
    /// Load averages before and after.
    pub load: ([f64; 3], [f64; 3]),
}

impl Soak {
    /// Incidents handled.
    pub fn incidents(&self) -> usize {
        self.members * self.rss_by_incidents.len()
    }

    /// The largest node's RSS after each round: (incidents done, KiB).
    pub fn largest(&self) -> Vec<(usize, u64)> {
        self.rss_by_incidents
            .iter()
            .map(|(n, v)| (*n, v.iter().copied().max().unwrap_or(0)))
            .collect()
    }
}

/// Runs a soak of `rounds` rounds of `members` concurrent incidents on 4 nodes.
pub async fn run(ctx: &Ctx, members: usize, rounds: usize) -> Result<Soak> {
    let load_before = machine::load_average();
    let wall = Instant::now();
    let n = 4;
    ctx.progress(&format!(
        "soak: deploying 3 chains and {members} members for {rounds} rounds"
    ));
    let net = concurrent::deploy(n, members).await;
    let root = ctx.workdir()?;
    let mut settings = NodeSettings::bench(1);
    settings.settle_ms = SETTLE_MS;
    settings.extra = concurrent::NO_CONTAGION.to_owned();
    let mut nodes = configure(&ctx.node_bin, root.path(), &net, &settings)?;
    start_all(&mut nodes).await?;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let pids: Vec<u32> = nodes.iter().filter_map(Node::pid).collect();
    let idle_rss_kib: Vec<u64> = pids.iter().filter_map(|p| machine::rss_kib(*p)).collect();
    ctx.progress(&format!(
        "soak: idle RSS (MiB) {:?}",
        idle_rss_kib.iter().map(|k| k / 1024).collect::<Vec<_>>()
    ));

    let mut out = Soak {
        members,
        nodes: n,
        idle_rss_kib,
        ..Soak::default()
    };
    if let Err(e) = run_rounds(ctx, &net, &nodes, &pids, rounds, &mut out).await {
        return Err(ctx.fail_workdir(root, &nodes, e).await);
    }
    out.rounds = rounds;
    out.hwm_kib = pids.iter().filter_map(|p| machine::hwm_kib(*p)).collect();
    ctx.finish_workdir(root, &nodes).await;
    for node in &mut nodes {
        node.stop();
    }
    out.wall_s = wall.elapsed().as_secs_f64();
    out.load = (load_before, machine::load_average());
    Ok(out)
}

/// The rounds: gaps, bookings, closure everywhere, then the nodes' memory.
async fn run_rounds(
    ctx: &Ctx,
    net: &Consortium,
    nodes: &[Node],
    pids: &[u32],
    rounds: usize,
    out: &mut Soak,
) -> Result<()> {
    let members = net.members.len();
    let mut senders = Senders::new(net).await?;
    let mut tracker = Tracker::default();
    let gap = U256::from(SMALL_GAP_UNITS * UNIT);
    // Assets only ever rise (a fall would look like an exploit): each round's gap raises the
    // liabilities, its booking raises the assets to match.
    let mut assets = U256::from(MEMBER_SOLVENCY);
    for round in 0..rounds {
        let seq = round as u64;
        let t = Instant::now();
        raise_gaps(net, &mut senders, &mut tracker, (assets, assets + gap, seq)).await?;
        let settled = assets + gap;
        let mut booked = vec![None; members];
        loop {
            let books = (settled, settled, seq + 1);
            book_registered(net, &mut senders, &mut tracker, seq, books, &mut booked).await?;
            tracker.check(ctx, net, &senders).await?;
            if booked.iter().all(Option::is_some)
                && tracker.unmined() == 0
                && closed_on_every_node(nodes, seq, members).await?
            {
                break;
            }
            if t.elapsed() >= ROUND_TIMEOUT {
                let registered = booked.iter().filter(|b| b.is_some()).count();
                bail!(
                    "round {round}: {registered}/{members} draws registered after {} s",
                    ROUND_TIMEOUT.as_secs()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assets = settled;
        out.round_s.push(t.elapsed().as_secs_f64());
        let rss: Vec<u64> = pids.iter().filter_map(|p| machine::rss_kib(*p)).collect();
        ctx.progress(&format!(
            "soak: round {}/{rounds} over in {:.1} s; RSS (MiB) {:?}",
            round + 1,
            t.elapsed().as_secs_f64(),
            rss.iter().map(|k| k / 1024).collect::<Vec<_>>()
        ));
        out.rss_by_incidents.push(((round + 1) * members, rss));
        tokio::time::sleep(Duration::from_millis(SETTLE_MS + 300)).await;
    }
    Ok(())
}
