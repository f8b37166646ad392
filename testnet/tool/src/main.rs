//! `backstop-testnet`: a local Backstop consortium for newcomers and drills.
//!
//! Three anvil chains (31337, 31338, 31339), each with a pool token, a `BackstopVault`, a
//! mock oracle and mock member protocols; three mock members (two homed on 31337, one on
//! 31338) and a real Aave v3 market's adapter (homed on 31339) registered on every vault;
//! four (up to nineteen) `backstop` node processes guarding them. The state lives in
//! `.testnet/` at the repository root.
//!
//! - `up [--nodes 4..19]`: start and deploy everything, wait until the nodes are connected;
//! - `down`: stop exactly the recorded processes and remove `.testnet/`;
//! - `status`: nodes, chains, vaults, members, alerts;
//! - `drill NAME|all`: crisis drills with on-chain evidence and a verdict (non-zero exit
//!   status when one fails);
//! - `demo [--down]`: `up` if needed, the margin-exhaustion drill, and its incident's
//!   timeline explained.
//!
//! The `testnet/{up,down,status,drill,demo}` scripts build and run it.

mod aave;
mod demo;
mod deploy;
mod drills;
mod net;
mod state;
mod status;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

/// A local multi-chain Backstop testnet and its crisis drills.
#[derive(Parser, Debug)]
#[command(name = "backstop-testnet", about)]
struct Cli {
    /// State directory (default: `.testnet/` at the repository root).
    #[arg(long, env = "BACKSTOP_TESTNET_DIR", global = true)]
    dir: Option<PathBuf>,
    /// The `backstop` node binary (default: `backstop` next to this program).
    #[arg(long, env = "BACKSTOP_BIN", global = true)]
    backstop: Option<PathBuf>,
    #[command(subcommand)]
    command: Cmd,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
enum Cmd {
    /// Start three anvil chains, deploy the vaults and members, start the nodes.
    Up {
        /// Number of nodes, 4 to 19: t = n − f, p = f + 1 with f = ⌊(n − 1) / 3⌋ (4: t = 3,
        /// p = 2; 7: t = 5, p = 3; 19: t = 13, p = 7).
        #[arg(long, default_value_t = 4)]
        nodes: usize,
    },
    /// Stop every recorded process and remove the state directory.
    Down,
    /// Nodes, chains, vaults, members and alerts.
    Status,
    /// Run a crisis drill, or `all` of them in order.
    Drill {
        /// margin-exhaustion, oracle-malfunction, exploit, chain-halt, contagion,
        /// node-crash, rpc-outage, pool-exhausted, member-never-books, aave-bad-debt, or all.
        name: String,
    },
    /// `up` if needed, the margin-exhaustion drill, and its incident's timeline explained.
    Demo {
        /// Stop the testnet afterwards.
        #[arg(long)]
        down: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("backstop-testnet: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("backstop-testnet: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the command; `Ok(false)` when a drill failed.
async fn run(cli: Cli) -> Result<bool> {
    // The repository root is two levels above this crate.
    let dir = cli.dir.unwrap_or_else(|| {
        let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let root = manifest.ancestors().nth(2).map(PathBuf::from);
        root.unwrap_or(manifest).join(".testnet")
    });
    let backstop = match cli.backstop {
        Some(b) => b,
        None => std::env::current_exe()
            .context("locating this program")?
            .with_file_name("backstop"),
    };
    match cli.command {
        Cmd::Up { nodes } => deploy::up(&dir, nodes, &backstop).await.map(|()| true),
        Cmd::Down => deploy::down(&dir).map(|()| true),
        Cmd::Status => {
            let net = net::Net::open(&dir)?;
            status::status(&net).await.map(|()| true)
        }
        Cmd::Drill { name } => {
            let mut net = net::Net::open(&dir)?;
            let names: Vec<&str> = if name == "all" {
                drills::NAMES.to_vec()
            } else {
                vec![name.as_str()]
            };
            let mut outcomes = Vec::new();
            for n in names {
                outcomes.push(drills::run(&mut net, n).await?);
            }
            if outcomes.len() > 1 {
                println!();
                println!("Summary");
                for o in &outcomes {
                    println!(
                        "  {:<20} {:<5} {:>5.0} s",
                        o.name,
                        if o.passed { "PASS" } else { "FAIL" },
                        o.took.as_secs_f64()
                    );
                    for f in &o.failures {
                        println!("      failed: {f}");
                    }
                }
            }
            Ok(outcomes.iter().all(|o| o.passed))
        }
        Cmd::Demo { down } => demo::demo(&dir, &backstop, down).await,
    }
}
