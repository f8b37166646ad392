//! Restart time of a node: process start → API up → `GetStatus` ready, as it is and with
//! 100,000 closed incident records written into its RocksDB store, on a quiet 4-node,
//! one-member consortium (1-s blocks). Each start also records the node's memory right
//! after ready and after it has run for [`RUN_BEFORE_STOP`], just before it is stopped:
//! memory after a restart is compared with that of the same node, same store, before it.

use std::path::Path;
use std::time::{Duration, Instant};

use alloy::primitives::{U256, keccak256};
use anyhow::{Context, Result, bail};
use backstop_agreement::IncidentKey;
use backstop_agreement::state::{CloseReason, IncidentRecord, MemberRecord, Registration};
use backstop_contracts::eip712::{Draw, Leg, VaultId};
use backstop_contracts::testing::{Consortium, UNIT};

use crate::cluster::{Node, NodeSettings, configure, now_ms, start_all};
use crate::latency::{Mining, deploy};
use crate::{Ctx, machine};

/// How long each start runs after ready before it is stopped.
pub const RUN_BEFORE_STOP: Duration = Duration::from_secs(10);

/// One start of the node.
#[derive(Clone, Copy, Debug, Default)]
pub struct Start {
    /// Process start → the API answers `GetStatus` (ms).
    pub api_ms: f64,
    /// Process start → `GetStatus.ready` (ms).
    pub ready_ms: f64,
    /// VmRSS (KiB) right after ready.
    pub ready_rss_kib: Option<u64>,
    /// VmRSS (KiB) after running [`RUN_BEFORE_STOP`], just before the stop.
    pub stop_rss_kib: Option<u64>,
    /// `GetStatus.incidents_total` at ready.
    pub incidents_total: u32,
}

/// The restart measurement.
#[derive(Clone, Debug, Default)]
pub struct Restart {
    /// Node restarted.
    pub node: String,
    /// Starts as it is.
    pub baseline: Vec<Start>,
    /// Starts with the extra records.
    pub loaded: Vec<Start>,
    /// Records written.
    pub records: usize,
    /// Seconds to write and flush them.
    pub write_s: f64,
    /// Size of the store directory before and after writing (MiB).
    pub store_mib: (f64, f64),
    /// Load averages before and after.
    pub load: ([f64; 3], [f64; 3]),
}

/// Total size of the files under `dir` (MiB).
fn dir_mib(dir: &Path) -> f64 {
    let mut total = 0u64;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => stack.push(e.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total as f64 / (1024.0 * 1024.0)
}

impl Restart {
    /// Each restart with the records: (VmRSS before it, after the previous start had run
    /// for [`RUN_BEFORE_STOP`]; VmRSS right after ready), KiB.
    pub fn loaded_before_after_kib(&self) -> Vec<(u64, u64)> {
        self.loaded
            .windows(2)
            .filter_map(|w| Some((w[0].stop_rss_kib?, w[1].ready_rss_kib?)))
            .collect()
    }
}

/// Starts `node`, times it until `GetStatus` answers and until it says ready, lets it run
/// for [`RUN_BEFORE_STOP`] and stops it.
async fn start_run_stop(node: &mut Node) -> Result<Start> {
    let mut out = start(node).await?;
    out.ready_rss_kib = node.pid().and_then(machine::rss_kib);
    tokio::time::sleep(RUN_BEFORE_STOP).await;
    if node.exited() {
        bail!("{} exited after ready:\n{}", node.name, node.log_tail(30));
    }
    out.stop_rss_kib = node.pid().and_then(machine::rss_kib);
    node.stop();
    Ok(out)
}

/// Starts `node` and times it until `GetStatus` answers and until it says ready.
async fn start(node: &mut Node) -> Result<Start> {
    let started = node.start()?;
    let deadline = started + Duration::from_secs(600);
    let mut out = Start::default();
    loop {
        if let Some(s) = node.status().await {
            let ms = started.elapsed().as_secs_f64() * 1000.0;
            if out.api_ms == 0.0 {
                out.api_ms = ms;
            }
            if s.ready {
                out.ready_ms = ms;
                out.incidents_total = s.incidents_total;
                return Ok(out);
            }
        }
        if node.exited() {
            bail!("{} exited during start:\n{}", node.name, node.log_tail(30));
        }
        if Instant::now() >= deadline {
            bail!("{} not ready after 600 s", node.name);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Writes `records` closed incidents (100 made-up members × `records / 100` sequence
/// numbers, each with a registered three-leg draw and both remote legs done) into the store
/// at `path`; returns the seconds taken.
fn write_records(path: &Path, net: &Consortium, records: usize) -> Result<f64> {
    let t = Instant::now();
    let mut store = backstop_store::open_node_store(path)
        .with_context(|| format!("open the store at {}", path.display()))?;
    let vaults: Vec<VaultId> = net.vaults();
    let home = *vaults.first().context("a vault")?;
    let now = now_ms() as u64;
    for i in 0..records {
        let member = keccak256(format!("backstop bench record member {}", i % 100));
        let seq = (i / 100) as u64;
        let draw = Draw {
            member,
            seq,
            gap: U256::from(16_100 * UNIT),
            amount: U256::from(16_000 * UNIT),
            legs: vaults
                .iter()
                .zip([10_000u64, 3_000, 3_000])
                .map(|(v, amount)| Leg {
                    chainId: v.chain_id,
                    vault: v.address,
                    amount: U256::from(amount * UNIT),
                })
                .collect(),
            deadline: now / 1000 + 3600,
            legDeadline: now / 1000 + 86_400,
        };
        let rec = IncidentRecord {
            key: IncidentKey { member, seq },
            home,
            opened_at: now,
            attempt: 0,
            attempt_started: now,
            registration: Some(Registration {
                draw_hash: keccak256(format!("backstop bench record draw {i}")),
                draw,
                finalized: true,
                block: 1,
                rewound: false,
            }),
            legs_done: vaults.iter().skip(1).map(|v| (*v, 1)).collect(),
            closed: Some(CloseReason::Covered),
        };
        let mut member_rec = MemberRecord::default();
        member_rec.closed(&rec);
        store
            .close_incident(&rec, &member_rec)
            .with_context(|| format!("write record {i}"))?;
    }
    store.kv().flush().context("flush the store")?;
    drop(store);
    Ok(t.elapsed().as_secs_f64())
}

/// Three starts of the last node as it is, then three with `records` more records.
pub async fn run(ctx: &Ctx, records: usize) -> Result<Restart> {
    let load_before = machine::load_average();
    ctx.progress("restart: deploying 3 chains and 4 nodes");
    let net = deploy(4, Mining::OneSecond).await;
    let root = ctx.workdir()?;
    let mut nodes = configure(
        &ctx.node_bin,
        root.path(),
        &net,
        &NodeSettings::bench(Mining::OneSecond.confirmations()),
    )?;
    start_all(&mut nodes).await?;
    let r = measure(ctx, &net, &mut nodes, records).await;
    let mut out = match r {
        Ok(out) => out,
        Err(e) => return Err(ctx.fail_workdir(root, &nodes, e).await),
    };
    ctx.finish_workdir(root, &nodes).await;
    for node in &mut nodes {
        node.stop();
    }
    out.load = (load_before, machine::load_average());
    Ok(out)
}

/// The starts.
async fn measure(
    ctx: &Ctx,
    net: &Consortium,
    nodes: &mut [Node],
    records: usize,
) -> Result<Restart> {
    let node = nodes.last_mut().context("a node")?;
    let state = node.dir.join("data").join("state");
    let mut out = Restart {
        node: node.name.clone(),
        records,
        ..Restart::default()
    };
    node.stop();
    for _ in 0..3 {
        let s = start_run_stop(node).await?;
        ctx.progress(&format!(
            "restart of {}: API up in {:.0} ms, ready in {:.0} ms",
            node.name, s.api_ms, s.ready_ms
        ));
        out.baseline.push(s);
    }
    let before = dir_mib(&state);
    ctx.progress(&format!(
        "restart: writing {records} closed incident records into {}",
        state.display()
    ));
    out.write_s = write_records(&state, net, records)?;
    out.store_mib = (before, dir_mib(&state));
    ctx.progress(&format!(
        "restart: wrote them in {:.1} s; the store grew from {:.1} to {:.1} MiB",
        out.write_s, out.store_mib.0, out.store_mib.1
    ));
    for _ in 0..3 {
        let s = start_run_stop(node).await?;
        ctx.progress(&format!(
            "restart of {} with {records} records: API up in {:.0} ms, ready in {:.0} ms",
            node.name, s.api_ms, s.ready_ms
        ));
        out.loaded.push(s);
    }
    Ok(out)
}
