//! `backstop-bench`: benchmarks of a local Backstop consortium (anvil chains, vault
//! contracts, real `backstop` node processes on loopback), written as a report.
//!
//! Measures recovery latency (gap → last leg paid) with 1-second blocks and with instant
//! mining for 4, 7 and 19 nodes, the node's own share of it, proposal → certificate, certificates
//! per second under many concurrent incidents, the nodes' memory, restart time with 100,000
//! stored records, and the gas of `registerDraw` and `releaseLeg` by signature count. Writes
//! `benchmarks.md` and `benchmarks-latency.svg` (by default into `docs/`). Run it through
//! `testnet/bench`, which builds the node and puts the pinned anvil on `PATH`.

mod cluster;
mod concurrent;
mod gas;
mod latency;
mod machine;
mod profile;
mod report;
mod restart;
mod soak;
mod stats;
mod svg;
mod timeline;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Parser;

use crate::latency::Mining;

/// The chains of every consortium the benchmark deploys.
pub const CHAINS: [u64; 3] = [31337, 31338, 31339];

/// Command line.
#[derive(Debug, Parser)]
#[command(
    name = "backstop-bench",
    about = "Benchmarks of a local Backstop consortium"
)]
struct Args {
    /// The `backstop` node binary.
    #[arg(long)]
    node_bin: PathBuf,
    /// Smoke test: 4 incidents per series, one run each, 20 concurrent members, 10,000
    /// stored records.
    #[arg(long)]
    quick: bool,
    /// Incidents per latency series (default 20; 4 with --quick).
    #[arg(long)]
    incidents: Option<usize>,
    /// Runs of each 4-node latency configuration (default 3; 1 with --quick).
    #[arg(long)]
    runs: Option<usize>,
    /// Runs of each 7-node latency configuration (default 2; 1 with --quick).
    #[arg(long)]
    runs_7: Option<usize>,
    /// Runs of each 19-node latency configuration, Wormhole's guardian count with t = 13
    /// (default 1; 0 with --quick).
    #[arg(long)]
    runs_19: Option<usize>,
    /// Members (concurrent incidents) of the throughput test (default 100; 20 with --quick).
    #[arg(long)]
    members: Option<usize>,
    /// Records written before the restart measurement (default 100000; 10000 with --quick).
    #[arg(long)]
    records: Option<usize>,
    /// Where to write benchmarks.md and benchmarks-latency.svg (default: <repo>/docs).
    #[arg(long)]
    out_dir: Option<PathBuf>,
    /// Cargo profile the node binary was built with, for the report.
    #[arg(long, default_value = "debug")]
    build_profile: String,
    /// Skip the gas section.
    #[arg(long)]
    skip_gas: bool,
    /// Skip the latency series.
    #[arg(long)]
    skip_latency: bool,
    /// Skip the concurrent-incidents and memory section.
    #[arg(long)]
    skip_concurrent: bool,
    /// In the concurrent-incidents section, mine every transaction at once in a block of its
    /// own (and a block every second) instead of 1-s blocks only.
    #[arg(long)]
    concurrent_per_transaction: bool,
    /// Skip the restart section.
    #[arg(long)]
    skip_restart: bool,
    /// Members of the memory soak, each with one incident per round (default 25; 10 with
    /// --quick).
    #[arg(long)]
    soak_members: Option<usize>,
    /// Rounds of the memory soak (default 40, 1,000 incidents with the default members; 3
    /// with --quick; 0 skips it).
    #[arg(long)]
    soak_rounds: Option<usize>,
    /// Output of the stress-evaluation benchmark (`cargo bench -p backstop-stress --bench
    /// evaluate`, release), which `testnet/bench` runs first, for its section of the report.
    #[arg(long)]
    stress_bench: Option<PathBuf>,
    /// Output of the in-process agreement benchmark (`cargo bench -p backstop-agreement
    /// --bench certificates`, release), which `testnet/bench` runs first.
    #[arg(long)]
    certificates_bench: Option<PathBuf>,
    /// Keep each series' directory (node configs, logs, stores, incidents-node-<i>.txt with
    /// every incident as the node reported it) and print where it is, also when the series
    /// fails.
    #[arg(long)]
    keep_dirs: bool,
}

/// What every phase needs.
#[derive(Debug)]
pub struct Ctx {
    /// The `backstop` binary.
    pub node_bin: PathBuf,
    /// Repository root.
    pub repo: PathBuf,
    /// Start of the whole benchmark.
    pub started: Instant,
    /// Keep the work directories.
    pub keep_dirs: bool,
}

impl Ctx {
    /// Prints a progress line with the elapsed time.
    pub fn progress(&self, msg: &str) {
        let s = self.started.elapsed().as_secs();
        eprintln!("[{:02}:{:02}] {msg}", s / 60, s % 60);
    }

    /// A fresh work directory for one consortium's nodes.
    pub fn workdir(&self) -> Result<tempfile::TempDir> {
        Ok(tempfile::Builder::new()
            .prefix("backstop-bench-")
            .tempdir()?)
    }

    /// Dumps every node's incidents into `root` and, with `--keep-dirs`, keeps `root`.
    pub async fn finish_workdir(&self, root: tempfile::TempDir, nodes: &[cluster::Node]) {
        if !self.keep_dirs {
            return;
        }
        for node in nodes {
            if let Ok(list) = node.incidents().await {
                let _ = std::fs::write(
                    root.path().join(format!("incidents-{}.txt", node.name)),
                    format!("{list:#?}"),
                );
            }
        }
        let path = root.keep();
        self.progress(&format!("kept {}", path.display()));
    }

    /// A series failed: `e` with the tails of the nodes' logs; with `--keep-dirs` the work
    /// directory is kept as after a success, so whole logs and stores can be read.
    pub async fn fail_workdir(
        &self,
        root: tempfile::TempDir,
        nodes: &[cluster::Node],
        e: anyhow::Error,
    ) -> anyhow::Error {
        let e = cluster::with_logs(nodes, e);
        self.finish_workdir(root, nodes).await;
        e
    }
}

/// Everything measured, for the report.
#[derive(Debug, Default)]
pub struct Results {
    /// Machine.
    pub machine: Option<machine::MachineInfo>,
    /// Build profile of the node binary.
    pub build_profile: String,
    /// Whether `--quick` was given.
    pub quick: bool,
    /// Incidents per series.
    pub incidents: usize,
    /// Latency series.
    pub series: Vec<latency::Series>,
    /// Concurrent incidents and memory.
    pub concurrent: Option<concurrent::Concurrent>,
    /// Memory over many incidents.
    pub soak: Option<soak::Soak>,
    /// Restart.
    pub restart: Option<restart::Restart>,
    /// Gas.
    pub gas: Option<gas::Gas>,
    /// The stress-evaluation benchmark's output, as it printed it.
    pub stress_bench: Option<String>,
    /// The in-process agreement benchmark's output, as it printed it.
    pub certificates_bench: Option<String>,
    /// What failed: (phase, error).
    pub failures: Vec<(String, String)>,
    /// Load averages at the start and at the end.
    pub load: ([f64; 3], [f64; 3]),
    /// Total run time (s).
    pub total_s: f64,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let args = Args::parse();
    let repo = backstop_contracts::tools::repo_root();
    let node_bin = std::fs::canonicalize(&args.node_bin)
        .with_context(|| format!("node binary {}", args.node_bin.display()))?;
    let ctx = Ctx {
        node_bin,
        repo: repo.clone(),
        started: Instant::now(),
        keep_dirs: args.keep_dirs,
    };
    let incidents = args.incidents.unwrap_or(if args.quick { 4 } else { 20 });
    let runs = args.runs.unwrap_or(if args.quick { 1 } else { 3 });
    let runs_7 = args.runs_7.unwrap_or(if args.quick { 1 } else { 2 });
    let runs_19 = args.runs_19.unwrap_or(if args.quick { 0 } else { 1 });
    let members = args.members.unwrap_or(if args.quick { 20 } else { 100 });
    let soak_members = args
        .soak_members
        .unwrap_or(if args.quick { 10 } else { 25 });
    let soak_rounds = args.soak_rounds.unwrap_or(if args.quick { 3 } else { 40 });
    let records = args
        .records
        .unwrap_or(if args.quick { 10_000 } else { 100_000 });
    let out_dir = args.out_dir.clone().unwrap_or_else(|| repo.join("docs"));

    let mut res = Results {
        machine: Some(machine::MachineInfo::read(&repo)),
        build_profile: args.build_profile.clone(),
        quick: args.quick,
        incidents,
        ..Results::default()
    };
    for (path, slot, what) in [
        (
            &args.stress_bench,
            &mut res.stress_bench,
            "stress evaluation",
        ),
        (
            &args.certificates_bench,
            &mut res.certificates_bench,
            "in-process certificates",
        ),
    ] {
        let Some(path) = path else { continue };
        match read_bounded(path) {
            Ok(text) => *slot = Some(text),
            Err(e) => res.failures.push((what.to_owned(), format!("{e:#}"))),
        }
    }
    let load_start = machine::load_average();
    ctx.progress(&format!(
        "backstop-bench: {incidents} incidents per series, {runs} runs per 4-node, {runs_7} per 7-node and {runs_19} per 19-node configuration, {members} concurrent members, {records} records; load average {:.2} {:.2} {:.2}",
        load_start[0], load_start[1], load_start[2]
    ));

    if !args.skip_gas {
        match gas::run(&ctx).await {
            Ok(g) => res.gas = Some(g),
            Err(e) => res.failures.push(("gas".to_owned(), format!("{e:#}"))),
        }
    }

    // Runs of the configurations interleave, so that a noisy minute hits every
    // configuration rather than one.
    let mut plan: Vec<(usize, Mining, usize)> = Vec::new();
    for run in (1..=runs.max(runs_7).max(runs_19)).filter(|_| !args.skip_latency) {
        if run <= runs {
            plan.push((4, Mining::OneSecond, run));
            plan.push((4, Mining::Instant, run));
        }
        if run <= runs_7 {
            plan.push((7, Mining::OneSecond, run));
            plan.push((7, Mining::Instant, run));
        }
        if run <= runs_19 {
            plan.push((19, Mining::OneSecond, run));
            plan.push((19, Mining::Instant, run));
        }
    }
    for (i, (n, mining, run)) in plan.into_iter().enumerate() {
        // A series that fails (a node that does not start, a port taken meanwhile) is run
        // once more on a fresh consortium; the report lists the failure either way.
        for attempt in 1..=2 {
            match latency::run_series(&ctx, n, mining, run, incidents, i == 0).await {
                Ok(s) => {
                    res.series.push(s);
                    break;
                }
                Err(e) => {
                    ctx.progress(&format!("FAILED (attempt {attempt} of 2): {e:#}"));
                    res.failures.push((
                        format!(
                            "latency, {n} nodes, {}, run {run}, attempt {attempt} of 2",
                            mining.label()
                        ),
                        format!("{e:#}"),
                    ));
                }
            }
        }
    }

    if !args.skip_concurrent {
        let blocks = if args.concurrent_per_transaction {
            concurrent::Blocks::PerTransaction
        } else {
            concurrent::Blocks::Interval
        };
        match concurrent::run(&ctx, members, blocks).await {
            Ok(c) => res.concurrent = Some(c),
            Err(e) => {
                ctx.progress(&format!("FAILED: {e:#}"));
                res.failures
                    .push(("concurrent incidents".to_owned(), format!("{e:#}")));
            }
        }
    }
    if soak_rounds > 0 && soak_members > 0 {
        match soak::run(&ctx, soak_members, soak_rounds).await {
            Ok(s) => res.soak = Some(s),
            Err(e) => {
                ctx.progress(&format!("FAILED: {e:#}"));
                res.failures
                    .push(("memory soak".to_owned(), format!("{e:#}")));
            }
        }
    }
    if !args.skip_restart {
        match restart::run(&ctx, records).await {
            Ok(r) => res.restart = Some(r),
            Err(e) => {
                ctx.progress(&format!("FAILED: {e:#}"));
                res.failures.push(("restart".to_owned(), format!("{e:#}")));
            }
        }
    }

    res.load = (load_start, machine::load_average());
    res.total_s = ctx.started.elapsed().as_secs_f64();
    std::fs::create_dir_all(&out_dir)?;
    let md = out_dir.join("benchmarks.md");
    let svg_path = out_dir.join("benchmarks-latency.svg");
    std::fs::write(&md, report::markdown(&res))
        .with_context(|| format!("write {}", md.display()))?;
    std::fs::write(&svg_path, svg::latency_svg(&res))
        .with_context(|| format!("write {}", svg_path.display()))?;
    ctx.progress(&format!(
        "wrote {} and {} ({} failures)",
        md.display(),
        svg_path.display(),
        res.failures.len()
    ));
    println!("{}", report::headline(&res));
    Ok(())
}

/// The text of `path`, at most 64 KiB of it.
fn read_bounded(path: &std::path::Path) -> Result<String> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)
        .with_context(|| format!("opening {}", path.display()))?
        .take(64 * 1024)
        .read_to_string(&mut text)
        .with_context(|| format!("reading {}", path.display()))?;
    Ok(text)
}
