//! What a running testnet is made of (`.testnet/state.json`), and the processes it runs.
//!
//! Invariants:
//! - the state file is written whole (a temporary file renamed over it), so a reader never
//!   sees half of it;
//! - a process is signalled only if its pid is alive *and* its command line is the one the
//!   testnet started (anvil on its port, `backstop` on its config), so a recycled pid is
//!   never killed; zombies count as dead.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use alloy::primitives::{Address, B256};
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// Name of the state file inside the state directory.
pub const STATE_FILE: &str = "state.json";

/// Name of the file listing the processes `up` started, written as it starts them (so
/// that `down` can stop a testnet whose `up` did not finish).
pub const PROCS_FILE: &str = "procs.json";

/// The processes listed in `dir`'s [`PROCS_FILE`] (none if there is no such file).
pub fn load_procs(dir: &Path) -> Result<Vec<Proc>> {
    let path = dir.join(PROCS_FILE);
    match std::fs::read_to_string(&path) {
        Ok(t) => serde_json::from_str(&t).with_context(|| format!("parsing {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Writes `procs` as `dir`'s [`PROCS_FILE`].
pub fn save_procs(dir: &Path, procs: &[Proc]) -> Result<()> {
    let path = dir.join(PROCS_FILE);
    std::fs::write(&path, serde_json::to_string_pretty(procs)? + "\n")
        .with_context(|| format!("writing {}", path.display()))
}

/// One anvil chain with its contracts.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ChainState {
    /// EIP-155 chain id.
    pub chain_id: u64,
    /// HTTP RPC URL.
    pub rpc: String,
    /// Loopback port of the RPC.
    pub port: u16,
    /// Pid of the anvil process.
    pub pid: u32,
    /// Anvil's log file.
    pub log: PathBuf,
    /// Pool token.
    pub token: Address,
    /// The consortium's vault.
    pub vault: Address,
    /// The chain's mock oracle (asset "USD").
    pub oracle: Address,
}

/// One member protocol.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MemberState {
    /// Name in the nodes' configuration (`member-<index>` for the mocks, `aave-v3`).
    pub name: String,
    /// Member id, as registered on every vault.
    pub id: B256,
    /// Home chain: its vault registers the member's draws.
    pub home_chain_id: u64,
    /// Its `solvency()` contract on the home chain: a mock protocol, or the Aave adapter.
    pub contract: Address,
    /// Payout recipient on every chain not in `recipients`.
    pub recipient: Address,
    /// The oracle it is priced by (the home chain's USD oracle).
    pub oracle: Address,
    /// Payout recipients that differ from `recipient`, by chain id.
    #[serde(default)]
    pub recipients: BTreeMap<u64, Address>,
    /// The Aave market behind the member, if it is the Aave member (not a mock).
    #[serde(default)]
    pub aave: Option<crate::aave::AaveState>,
}

impl MemberState {
    /// The payout recipient on chain `chain_id`.
    pub fn recipient_on(&self, chain_id: u64) -> Address {
        self.recipients
            .get(&chain_id)
            .copied()
            .unwrap_or(self.recipient)
    }
}

/// One node process.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NodeState {
    /// Node name (`node-<index>`).
    pub name: String,
    /// Pid of the `backstop node` process.
    pub pid: u32,
    /// gRPC API URL.
    pub api: String,
    /// Prometheus metrics URL.
    pub metrics: String,
    /// Directory with its keys, configuration, database and log.
    pub dir: PathBuf,
    /// Its guardian (chain signer) address.
    pub guardian: Address,
}

impl NodeState {
    /// Its configuration file.
    pub fn config(&self) -> PathBuf {
        self.dir.join("node.toml")
    }

    /// Where a SoftHSM2 token of this node would be configured (the `rotate-guardian` drill
    /// makes one; the node's environment names it from start).
    pub fn softhsm_conf(&self) -> PathBuf {
        self.dir.join("softhsm").join("softhsm2.conf")
    }

    /// Its log file.
    pub fn log(&self) -> PathBuf {
        self.dir.join("node.log")
    }
}

/// A running testnet.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct State {
    /// The chains, in chain id order.
    pub chains: Vec<ChainState>,
    /// The members, by index.
    pub members: Vec<MemberState>,
    /// The nodes, by index.
    pub nodes: Vec<NodeState>,
    /// Admin bearer token of every node.
    pub admin_token: String,
    /// Number of guardians (= nodes) of every vault.
    pub guardians: usize,
    /// The `backstop` binary the nodes run.
    pub backstop: PathBuf,
    /// Per member id, the last time (ms since the epoch) a drill left it with a gap (the
    /// nodes count a member in trouble while its gap stands: contagion looks back this far).
    #[serde(default)]
    pub troubles: BTreeMap<B256, u64>,
}

impl State {
    /// The state in `dir`, if there is one.
    pub fn load(dir: &Path) -> Result<Option<State>> {
        let path = dir.join(STATE_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let state =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        Ok(Some(state))
    }

    /// Writes the state into `dir` (atomically).
    pub fn save(&self, dir: &Path) -> Result<()> {
        let path = dir.join(STATE_FILE);
        let tmp = dir.join(format!("{STATE_FILE}.tmp"));
        std::fs::write(&tmp, serde_json::to_string_pretty(self)? + "\n")
            .with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
        Ok(())
    }

    /// Every recorded process: the nodes, then the anvils.
    pub fn processes(&self) -> Vec<Proc> {
        let nodes = self.nodes.iter().map(Proc::node);
        let chains = self.chains.iter().map(Proc::anvil);
        nodes.chain(chains).collect()
    }

    /// Some recorded process is still running.
    pub fn any_alive(&self) -> bool {
        self.processes().iter().any(Proc::alive)
    }

    /// The chain with id `chain_id`.
    pub fn chain(&self, chain_id: u64) -> Result<&ChainState> {
        self.chains
            .iter()
            .find(|c| c.chain_id == chain_id)
            .with_context(|| format!("the testnet has no chain {chain_id}"))
    }
}

/// A process of the testnet.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Proc {
    /// What it is, for messages (`node-1`, `anvil 31337`).
    pub what: String,
    /// Its pid.
    pub pid: u32,
    /// A fragment its command line must contain to be ours.
    pub marker: String,
}

impl Proc {
    /// A node's process.
    pub fn node(n: &NodeState) -> Proc {
        Proc {
            what: n.name.clone(),
            pid: n.pid,
            marker: n.config().display().to_string(),
        }
    }

    /// A chain's anvil.
    pub fn anvil(c: &ChainState) -> Proc {
        Proc {
            what: format!("anvil {}", c.chain_id),
            pid: c.pid,
            marker: format!("--port\0{}", c.port),
        }
    }

    /// Running (not a zombie) and still the process the testnet started.
    pub fn alive(&self) -> bool {
        alive(self.pid)
            && std::fs::read(format!("/proc/{}/cmdline", self.pid))
                .map(|c| String::from_utf8_lossy(&c).contains(&self.marker))
                .unwrap_or(false)
    }

    /// Sends `signal` (`TERM`, `KILL`) if the process is alive and ours.
    pub fn signal(&self, signal: &str) -> Result<()> {
        if !self.alive() {
            return Ok(());
        }
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .context("running kill")?;
        if !status.success() && self.alive() {
            anyhow::bail!("kill -{signal} {} ({}) failed", self.pid, self.what);
        }
        Ok(())
    }
}

/// `pid` exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // `pid (comm) S ...`: the state follows the last ')'.
    let state = stat
        .rfind(')')
        .and_then(|i| stat[i + 1..].split_whitespace().next())
        .unwrap_or("X");
    !matches!(state, "Z" | "X" | "x")
}

/// Stops `procs`: SIGTERM, then SIGKILL for those still alive after `grace`. Returns the
/// ones that needed SIGKILL.
pub fn stop(procs: &[Proc], grace: Duration) -> Result<Vec<String>> {
    for p in procs {
        p.signal("TERM")?;
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline && procs.iter().any(Proc::alive) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut killed = Vec::new();
    for p in procs.iter().filter(|p| p.alive()) {
        p.signal("KILL")?;
        killed.push(p.what.clone());
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && procs.iter().any(Proc::alive) {
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(killed)
}
