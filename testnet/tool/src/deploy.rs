//! `up` and `down`: three anvil chains with a vault, a pool token, an oracle and mock
//! members each, a real Aave v3 market with its member adapter on the third chain, and `n`
//! `backstop` node processes configured for them.
//!
//! Invariants:
//! - `up` refuses to run over a testnet with a live process, and stops everything it
//!   started if it fails half-way; every process it starts is listed in `procs.json` the
//!   moment it is started, and the whole testnet in `state.json` once it is ready;
//! - processes run in their own process group (a Ctrl-C in the terminal that ran `up` does
//!   not reach them), with their output in log files under the state directory;
//! - `down` signals exactly the recorded pids (checked against their command lines) and is
//!   idempotent.

use std::fmt::Write as _;
use std::fs::OpenOptions;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use alloy::primitives::{Address, B256, U256, keccak256};
use alloy::providers::ext::AnvilApi;
use alloy::providers::{Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;
use anyhow::{Context, Result, anyhow, bail};
use backstop_contracts::bindings::MockMember;
use backstop_contracts::eip712::VaultId;
use backstop_contracts::testing::{
    ChainParams, Contracts, GUARDIAN_BALANCE_WEI, MemberSpec, deploy_contracts, free_port,
    guardian_keys, member_id_of, set_member_on, thresholds,
};
use ed25519_dalek::SigningKey;

use crate::aave::{self, AAVE_HOME, AAVE_MEMBER, AAVE_NAME};
use crate::net::{self, Net, dev_provider, wait_until};
use crate::state::{
    ChainState, MemberState, NodeState, PROCS_FILE, Proc, State, load_procs, save_procs, stop,
};

/// The chains of the testnet.
pub const CHAINS: [u64; 3] = [31337, 31338, 31339];

/// Home chain of each member: members 0 and 1 on the first chain, member 2 on the second.
pub const MEMBER_HOMES: [u64; 3] = [CHAINS[0], CHAINS[0], CHAINS[1]];
/// The member the nodes are configured for but no vault holds until the onboard-member
/// drill has the consortium add it (its index among the members).
pub const ONBOARD_MEMBER: usize = 4;
/// Its home chain.
pub const ONBOARD_HOME: u64 = CHAINS[1];

/// `chains[].halt_after_secs` of every node.
pub const HALT_AFTER_SECS: u64 = 5;

/// `detectors.signal_window_secs` of every node.
pub const SIGNAL_WINDOW_SECS: u64 = 20;

/// How long `up` waits for the nodes to be ready and connected.
const READY_TIMEOUT: Duration = Duration::from_secs(90);

/// Settings of every node beyond the chains, members and consortium.
const TUNING: &str = "\
[detectors]
signal_window_secs = 20
signal_interval_secs = 2
outflow_window_blocks = 10
# The mock oracles are updated only when a drill moves them: without this, every oracle
# would count as stale an hour after `up` (the default bound is 3600 s).
oracle_max_staleness_secs = 604800

[agreement]
attempt_timeout_ms = 3000
submit_delay_ms = 1500
# Drills book a payout as soon as it is registered; member-never-books waits for this.
booking_timeout_ms = 15000

[stress]
# One-second blocks: a margin trend is fitted over 5 blocks and warned of 30 blocks ahead.
margin_window_blocks = 5
margin_horizon_blocks = 30
history_blocks = 60

[[stress.scenarios]]
name = \"usd-crash-30\"
moves = { USD = -3000 }

[[stress.scenarios]]
# A crash in which the pool token also loses 70 % of its value: what the pool can pay
# shrinks with it (the stress-shortfall drill uses it).
name = \"usd-crash-depeg\"
moves = { USD = -5000 }
depeg_bps = 7000
";

/// Fewest and most nodes of a testnet: the drills stop nodes, so f = ⌊(n − 1) / 3⌋ must be
/// at least 1; 19 is Wormhole's guardian count, the largest consortium the benchmarks run.
pub const NODES: std::ops::RangeInclusive<usize> = 4..=19;

/// Starts a testnet of `n` nodes (within [`NODES`]) running `backstop` in `dir`.
pub async fn up(dir: &Path, n: usize, backstop: &Path) -> Result<()> {
    if !NODES.contains(&n) {
        bail!(
            "--nodes must be {} to {}, not {n}",
            NODES.start(),
            NODES.end()
        );
    }
    if !backstop.is_file() {
        bail!(
            "the backstop binary {} does not exist (build it: cargo build -p backstop-node)",
            backstop.display()
        );
    }
    if let Some(state) = State::load(dir)? {
        if state.any_alive() {
            bail!(
                "already up ({} has live processes); run testnet/down",
                dir.display()
            );
        }
        println!(
            "A testnet recorded in {} is no longer running: starting afresh.",
            dir.display()
        );
    }
    let leftovers: Vec<Proc> = load_procs(dir)?.into_iter().filter(Proc::alive).collect();
    if !leftovers.is_empty() {
        bail!("processes of an unfinished `up` are still running; run testnet/down");
    }
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let dir = dir
        .canonicalize()
        .with_context(|| format!("resolving {}", dir.display()))?;
    let backstop = backstop
        .canonicalize()
        .with_context(|| format!("resolving {}", backstop.display()))?;

    let started = Instant::now();
    let mut procs = Vec::new();
    match start(&dir, n, &backstop, &mut procs).await {
        Ok(state) => {
            state.save(&dir)?;
            print_summary(&state, started.elapsed());
            Ok(())
        }
        Err(e) => {
            eprintln!("up failed: {e:#}");
            eprintln!("stopping what it started; logs stay in {}", dir.display());
            stop(&procs, Duration::from_secs(10))?;
            let _ = std::fs::remove_file(dir.join(PROCS_FILE));
            Err(anyhow!("up failed"))
        }
    }
}

/// Starts the chains, deploys, configures and starts the nodes; every process started is
/// pushed on `procs` (and written to `procs.json`) at once.
async fn start(dir: &Path, n: usize, backstop: &Path, procs: &mut Vec<Proc>) -> Result<State> {
    let anvil = backstop_contracts::tools::tool("anvil")?;
    println!(
        "Starting {} anvil chains (a block a second)...",
        CHAINS.len()
    );
    let mut chains = Vec::new();
    for chain_id in CHAINS {
        let port = free_port();
        let log = dir.join(format!("anvil-{chain_id}.log"));
        let out = OpenOptions::new().create(true).append(true).open(&log)?;
        let child = Command::new(&anvil)
            .args(["--chain-id", &chain_id.to_string()])
            .args(["--port", &port.to_string()])
            .args(["--host", "127.0.0.1", "--block-time", "1", "--quiet"])
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting {}", anvil.display()))?;
        let c = ChainState {
            chain_id,
            rpc: format!("http://127.0.0.1:{port}"),
            port,
            pid: child.id(),
            log,
            token: Address::ZERO,
            vault: Address::ZERO,
            oracle: Address::ZERO,
        };
        procs.push(Proc::anvil(&c));
        save_procs(dir, procs)?;
        chains.push(c);
    }
    for c in &chains {
        let provider = ProviderBuilder::new().connect_http(c.rpc.parse()?);
        let answered = wait_until(Duration::from_secs(30), async || {
            Ok(provider.get_chain_id().await? == c.chain_id)
        })
        .await;
        if !answered {
            bail!(
                "anvil for chain {} does not answer eth_chainId on {} (log: {})",
                c.chain_id,
                c.rpc,
                c.log.display()
            );
        }
    }

    println!(
        "Deploying pool token, vault, oracle and mock member on every chain, and an Aave v3 \
         market (npm @aave/core-v3 bytecode) with its member adapter on chain {AAVE_HOME}..."
    );
    let keys = guardian_keys(n);
    // The Aave home chain mines instantly while the market's 30 transactions go in (one
    // block each), then a block a second again like the others.
    let aave_home = chains
        .iter()
        .find(|c| c.chain_id == AAVE_HOME)
        .context("the Aave home chain")?;
    let aave_provider = dev_provider(&aave_home.rpc)?;
    aave_provider.anvil_set_auto_mine(true).await?;
    let aave_member_id = member_id_of(AAVE_MEMBER);
    let deployed = futures::future::join_all(chains.iter().map(|c| {
        let (rpc, keys, chain_id) = (c.rpc.clone(), keys.clone(), c.chain_id);
        caught(
            format!("deploying on chain {}", c.chain_id),
            tokio::spawn(async move {
                let provider = dev_provider(&rpc)?;
                let depositor = net::dev_address()?;
                let started = Instant::now();
                let d =
                    deploy_contracts(&provider, depositor, &keys, &ChainParams::default()).await;
                let vault_set = started.elapsed();
                let market = if chain_id == AAVE_HOME {
                    let started = Instant::now();
                    let state = aave::deploy(&rpc, d.token, d.vault, aave_member_id)
                        .await
                        .context("deploying the Aave market and its adapter")?;
                    Some((state, started.elapsed()))
                } else {
                    None
                };
                Ok((d, vault_set, market))
            }),
        )
    }))
    .await;
    aave_provider.anvil_set_interval_mining(1).await?;
    let mut contracts: Vec<Contracts> = Vec::new();
    let mut market = None;
    let (mut home_total, mut others_total) = (Duration::ZERO, Duration::ZERO);
    for (c, d) in chains.iter_mut().zip(deployed) {
        let (d, vault_set, m) = d?;
        c.token = d.token;
        c.vault = d.vault;
        c.oracle = d.oracle;
        contracts.push(d);
        match m {
            Some((state, took)) => {
                home_total = vault_set + took;
                market = Some((state, took));
            }
            None => others_total = others_total.max(vault_set),
        }
    }
    let (market, market_took) = market.context("no Aave market deployed")?;
    println!(
        "  Aave market and adapter: {} transactions, {:.1} M gas, {:.1} s on chain {AAVE_HOME} \
         (mining instantly meanwhile); this step took {:.1} s there, {:.1} s on the slowest \
         other chain: the market adds {:.1} s to up (and a fourth member registration, about \
         1 s); adapter {}",
        market.deploy_transactions,
        market.deploy_gas as f64 / 1e6,
        market_took.as_secs_f64(),
        home_total.as_secs_f64(),
        others_total.as_secs_f64(),
        home_total.saturating_sub(others_total).as_secs_f64(),
        market.adapter
    );

    // Member 0's mock is the one deployed with the first chain's vault, member 2's the
    // second chain's; member 1 gets its own on the first chain. Each reads its home oracle.
    // Member 3 is the Aave market, read through its adapter.
    let params = ChainParams::default();
    let first = dev_provider(&chains[0].rpc)?;
    let member1 = *MockMember::deploy(
        first,
        params.member_assets,
        params.member_liabilities,
        chains[0].oracle,
    )
    .await
    .context("deploying member 1's mock")?
    .address();
    // Member 4 (the onboard-member drill's) is in every node's configuration with its
    // own mock on the second chain, but on no vault until the consortium adds it.
    let member4 = *MockMember::deploy(
        dev_provider(&chains[1].rpc)?,
        params.member_assets,
        params.member_liabilities,
        chains[1].oracle,
    )
    .await
    .context("deploying member 4's mock")?
    .address();
    let mut specs: Vec<MemberSpec> = MEMBER_HOMES
        .iter()
        .enumerate()
        .map(|(i, &home)| MemberSpec::new(i, home))
        .collect();
    let mut aave_spec = MemberSpec::new(AAVE_MEMBER, AAVE_HOME);
    aave_spec.recipient = market.bridge;
    aave_spec.recipients = aave::recipients(&market);
    specs.push(aave_spec);
    specs.push(MemberSpec::new(ONBOARD_MEMBER, ONBOARD_HOME));
    let mock_of = [
        contracts[0].member_contract,
        member1,
        contracts[1].member_contract,
        market.adapter,
        member4,
    ];
    let members: Vec<MemberState> = specs
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let home = chains.iter().find(|c| c.chain_id == s.home_chain_id);
            let is_aave = i == AAVE_MEMBER;
            MemberState {
                name: if is_aave {
                    AAVE_NAME.to_owned()
                } else {
                    format!("member-{i}")
                },
                id: s.id,
                home_chain_id: s.home_chain_id,
                contract: mock_of[i],
                recipient: s.recipient,
                oracle: home.map_or(Address::ZERO, |c| c.oracle),
                recipients: s.recipients.clone(),
                aave: is_aave.then(|| market.clone()),
            }
        })
        .collect();

    println!(
        "Registering {} members on every vault (member-{ONBOARD_MEMBER} waits for the \
         consortium) and funding the guardians...",
        specs.len() - 1
    );
    let registered = futures::future::join_all(chains.iter().map(|c| {
        let (rpc, keys, specs) = (c.rpc.clone(), keys.clone(), specs.clone());
        let vault = VaultId {
            chain_id: c.chain_id,
            address: c.vault,
        };
        caught(
            format!("registering members on chain {}", c.chain_id),
            tokio::spawn(async move {
                let provider = dev_provider(&rpc)?;
                for k in &keys {
                    provider
                        .anvil_set_balance(k.address(), U256::from(GUARDIAN_BALANCE_WEI))
                        .await?;
                }
                for m in specs
                    .iter()
                    .filter(|m| m.id != member_id_of(ONBOARD_MEMBER))
                {
                    set_member_on(&provider, vault, &keys, m).await;
                }
                Ok(())
            }),
        )
    }))
    .await;
    for r in registered {
        r?;
    }

    println!("Configuring and starting {n} nodes...");
    let token = admin_token()?;
    let mut nodes = configure(dir, &keys, &chains, &members, &token)?;
    for node in &mut nodes {
        node.pid = spawn_node(backstop, node)?;
        procs.push(Proc::node(node));
        save_procs(dir, procs)?;
    }
    let state = State {
        chains,
        members,
        nodes,
        admin_token: token,
        guardians: n,
        backstop: backstop.to_owned(),
        troubles: Default::default(),
    };
    wait_ready(
        &state,
        &state.nodes.iter().collect::<Vec<_>>(),
        READY_TIMEOUT,
    )
    .await?;
    Ok(state)
}

/// Awaits a spawned task, turning a panic (the test fixtures panic on failure) into an error.
async fn caught<T>(what: String, task: tokio::task::JoinHandle<Result<T>>) -> Result<T> {
    match task.await {
        Ok(r) => r.with_context(|| what.clone()),
        Err(e) => {
            let reason = match e.try_into_panic() {
                Ok(p) => p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_else(|| "panicked".into()),
                Err(e) => e.to_string(),
            };
            Err(anyhow!("{what}: {reason}"))
        }
    }
}

/// A fresh admin token (32 hex digits).
fn admin_token() -> Result<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| anyhow!("random admin token: {e}"))?;
    Ok(alloy::hex::encode(bytes))
}

/// Writes a secret file of mode 0600 (created with that mode).
pub fn write_secret(path: &Path, text: &str) -> Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    writeln!(f, "{text}").with_context(|| format!("writing {}", path.display()))
}

/// The ed25519 identity of node `i` (deterministic: a local testnet needs no secrecy).
pub fn identity(i: usize) -> SigningKey {
    SigningKey::from_bytes(&keccak256(format!("backstop testnet node {i}")).0)
}

/// Writes every node's keys, admin token and `node.toml` under `dir/node-<i>/`.
fn configure(
    dir: &Path,
    keys: &[PrivateKeySigner],
    chains: &[ChainState],
    members: &[MemberState],
    token: &str,
) -> Result<Vec<NodeState>> {
    let n = keys.len();
    let (t, p) = thresholds(n);
    let identities: Vec<SigningKey> = (0..n).map(identity).collect();
    let p2p: Vec<u16> = (0..n).map(|_| free_port()).collect();

    let mut shared = format!("[consortium]\nthreshold = {t}\npause_threshold = {p}\n\n");
    for i in 0..n {
        write!(
            shared,
            "[[consortium.nodes]]\nname = \"node-{i}\"\npublic_key = \"{}\"\nguardian = \"{}\"\naddresses = [\"/ip4/127.0.0.1/tcp/{}\"]\n\n",
            alloy::hex::encode(identities[i].verifying_key().as_bytes()),
            keys[i].address(),
            p2p[i]
        )?;
    }
    for c in chains {
        write!(
            shared,
            "[[chains]]\nchain_id = {id}\nname = \"chain-{id}\"\nrpc_urls = [\"{}\"]\nvault = \"{}\"\nconfirmations = 1\npoll_interval_ms = 200\nhalt_after_secs = {HALT_AFTER_SECS}\n\n",
            c.rpc,
            c.vault,
            id = c.chain_id,
        )?;
    }
    for m in members {
        write!(
            shared,
            "[[members]]\nname = \"{}\"\nid = \"{}\"\nhome_chain_id = {}\nsolvency_contract = \"{}\"\noracle = \"{}\"\n\n",
            m.name, m.id, m.home_chain_id, m.contract, m.oracle
        )?;
    }
    for c in chains {
        write!(
            shared,
            "[[oracles]]\nname = \"usd-{id}\"\nchain_id = {id}\naddress = \"{}\"\nasset = \"USD\"\n\n",
            c.oracle,
            id = c.chain_id
        )?;
    }
    shared.push_str(TUNING);

    let mut nodes = Vec::new();
    for i in 0..n {
        let node_dir = dir.join(format!("node-{i}"));
        std::fs::create_dir_all(&node_dir)?;
        write_secret(
            &node_dir.join("identity.key"),
            &alloy::hex::encode(identities[i].to_bytes()),
        )?;
        write_secret(
            &node_dir.join("signer.key"),
            &format!("0x{}", alloy::hex::encode(keys[i].to_bytes())),
        )?;
        write_secret(&node_dir.join("admin.token"), token)?;
        let (api, metrics) = (free_port(), free_port());
        let config = format!(
            "# Written by backstop-testnet up.\n\
             [node]\nname = \"node-{i}\"\ndata_dir = \"data\"\nidentity_key_file = \"identity.key\"\nsigner_key_file = \"signer.key\"\nlog_filter = \"info\"\n\n\
             [network]\nlisten = [\"/ip4/127.0.0.1/tcp/{}\"]\n\n\
             [api]\nlisten = \"127.0.0.1:{api}\"\nadmin_token_file = \"admin.token\"\n\n\
             [metrics]\nlisten = \"127.0.0.1:{metrics}\"\n\n{shared}",
            p2p[i],
        );
        std::fs::write(node_dir.join("node.toml"), config)?;
        nodes.push(NodeState {
            name: format!("node-{i}"),
            pid: 0,
            api: format!("http://127.0.0.1:{api}"),
            metrics: format!("http://127.0.0.1:{metrics}/metrics"),
            dir: node_dir,
            guardian: keys[i].address(),
        });
    }
    Ok(nodes)
}

/// Starts `backstop node` for `node` in its own process group, appending to its log.
/// Returns its pid.
pub fn spawn_node(backstop: &Path, node: &NodeState) -> Result<u32> {
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(node.log())
        .with_context(|| format!("opening {}", node.log().display()))?;
    let child = Command::new(backstop)
        .arg("node")
        .arg("--config")
        .arg(node.config())
        .env("SOFTHSM2_CONF", node.softhsm_conf())
        .current_dir(&node.dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting {} ({})", node.name, backstop.display()))?;
    Ok(child.id())
}

/// The node answers `GetStatus` ready with every other node connected.
pub async fn node_ready(state: &State, node: &NodeState) -> Result<bool> {
    let s = net::status(&node.api).await?;
    Ok(s.ready && s.peers_connected as usize + 1 >= state.nodes.len())
}

/// Waits until every node of `which` is ready and connected to all others.
pub async fn wait_ready(state: &State, which: &[&NodeState], timeout: Duration) -> Result<()> {
    let mut died = false;
    let ok = wait_until(timeout, async || {
        // A node that exited will not become ready: stop waiting at once. Only the pid is
        // checked: right after the spawn its command line may still be the parent's (the
        // exec has not happened yet), which `Proc::alive` would read as "not ours".
        died = which.iter().any(|n| !crate::state::alive(n.pid));
        if died {
            return Ok(true);
        }
        for node in which {
            if !node_ready(state, node).await? {
                return Ok(false);
            }
        }
        Ok(true)
    })
    .await;
    if ok && !died {
        return Ok(());
    }
    let mut report = String::new();
    for node in which {
        let why = match net::status(&node.api).await {
            Ok(s) => format!(
                "ready = {}, peers connected {}/{}",
                s.ready,
                s.peers_connected,
                state.nodes.len() - 1
            ),
            Err(e) => format!("{e:#}"),
        };
        let alive = Proc::node(node).alive();
        writeln!(
            report,
            "{} (pid {}, alive: {alive}): {why}",
            node.name, node.pid
        )?;
        writeln!(report, "  last lines of {}:", node.log().display())?;
        for line in tail(&node.log(), 15) {
            writeln!(report, "    {line}")?;
        }
    }
    if died {
        bail!("a node exited while starting:\n{report}");
    }
    bail!(
        "nodes not ready and connected within {} s:\n{report}",
        timeout.as_secs()
    )
}

/// The last `n` lines of a file.
pub fn tail(path: &Path, n: usize) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
}

/// What `up` prints once the testnet runs.
fn print_summary(state: &State, took: Duration) {
    println!();
    println!(
        "Testnet up in {:.0} s: {} chains, {} nodes (t = {}, p = {}), {} members.",
        took.as_secs_f64(),
        state.chains.len(),
        state.nodes.len(),
        thresholds(state.nodes.len()).0,
        thresholds(state.nodes.len()).1,
        state.members.len()
    );
    println!();
    println!(
        "{:<8} {:<24} {:<44} {:<44} oracle (USD)",
        "chain", "RPC", "vault", "pool token"
    );
    for c in &state.chains {
        println!(
            "{:<8} {:<24} {:<44} {:<44} {}",
            c.chain_id,
            c.rpc,
            c.vault.to_string(),
            c.token.to_string(),
            c.oracle
        );
    }
    println!();
    println!(
        "{:<10} {:<6} {:<44} recipient",
        "member", "home", "solvency() contract"
    );
    for m in &state.members {
        let recipient = if m.recipients.is_empty() {
            m.recipient.to_string()
        } else {
            format!(
                "{} at home, {} elsewhere (its bridge)",
                m.recipient_on(m.home_chain_id),
                m.recipient
            )
        };
        println!(
            "{:<10} {:<6} {:<44} {recipient}",
            m.name,
            m.home_chain_id,
            m.contract.to_string(),
        );
        if let Some(a) = &m.aave {
            println!(
                "{:<10} Aave v3.0 market: Pool {}, oracle {}, WETH {}, borrowable reserve = the pool token",
                "", a.pool, a.oracle, a.weth
            );
        }
    }
    println!();
    println!(
        "{:<8} {:<8} {:<24} {:<38} dir",
        "node", "pid", "API", "metrics"
    );
    for n in &state.nodes {
        println!(
            "{:<8} {:<8} {:<24} {:<38} {}",
            n.name,
            n.pid,
            n.api,
            n.metrics,
            n.dir.display()
        );
    }
    let api = state.nodes.first().map_or("", |n| n.api.as_str());
    let rpc = state.chains.first().map_or("", |c| c.rpc.as_str());
    let vault = state.chains.first().map_or(Address::ZERO, |c| c.vault);
    let member = state.members.first().map_or(B256::ZERO, |m| m.id);
    let bin = state.backstop.display();
    println!();
    println!("Try:");
    println!("  testnet/status                      the whole testnet at a glance");
    println!(
        "  testnet/drill margin-exhaustion     one crisis drill (testnet/drill all: every drill)"
    );
    println!("  {bin} status --api {api}");
    println!("  {bin} chains --api {api}");
    println!("  {bin} incidents --api {api}");
    println!("  {bin} breakers --api {api}");
    println!(
        "  curl -s {}",
        state.nodes.first().map_or("", |n| n.metrics.as_str())
    );
    println!("  .tools/bin/cast call {vault} 'isFrozen(bytes32)(bool)' {member} --rpc-url {rpc}");
    println!("  testnet/down                        stop everything");
}

/// Stops the testnet in `dir` and removes the directory.
pub fn down(dir: &Path) -> Result<()> {
    let state = State::load(dir)?;
    let mut procs = match &state {
        Some(s) => s.processes(),
        None => load_procs(dir)?,
    };
    // `procs.json` may list processes `state.json` no longer does (e.g. after a restart).
    for p in load_procs(dir)? {
        if !procs.iter().any(|q| q.pid == p.pid) {
            procs.push(p);
        }
    }
    let alive: Vec<Proc> = procs.into_iter().filter(Proc::alive).collect();
    if alive.is_empty() {
        if dir.exists() {
            std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
            println!("Nothing was running; removed {}.", dir.display());
        } else {
            println!("Nothing is up.");
        }
        return Ok(());
    }
    let (nodes, anvils): (Vec<Proc>, Vec<Proc>) = alive
        .into_iter()
        .partition(|p| !p.what.starts_with("anvil"));
    let killed_nodes = stop(&nodes, Duration::from_secs(10))?;
    let killed_anvils = stop(&anvils, Duration::from_secs(5))?;
    for p in nodes.iter().chain(&anvils) {
        let how = if killed_nodes.contains(&p.what) || killed_anvils.contains(&p.what) {
            "SIGKILL after SIGTERM timed out"
        } else {
            "SIGTERM"
        };
        println!("stopped {:<12} pid {:<8} ({how})", p.what, p.pid);
    }
    let survivors: Vec<&Proc> = nodes.iter().chain(&anvils).filter(|p| p.alive()).collect();
    if !survivors.is_empty() {
        bail!("still running: {survivors:?}");
    }
    std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    println!("Removed {}.", dir.display());
    Ok(())
}

/// The testnet in `dir` is up (recorded with a live process).
pub fn is_up(dir: &Path) -> Result<bool> {
    Ok(State::load(dir)?.is_some_and(|s| s.any_alive()))
}

/// Restarts node `i` with the same configuration (after it died); records the new pid.
pub fn restart_node(net: &mut Net, i: usize) -> Result<u32> {
    let node = net.node(i)?.clone();
    let mut log = OpenOptions::new().append(true).open(node.log())?;
    writeln!(log, "----- restarted by backstop-testnet -----")?;
    let pid = spawn_node(&net.state.backstop.clone(), &node)?;
    net.state.nodes[i].pid = pid;
    net.save()?;
    let mut procs = load_procs(&net.dir)?;
    procs.push(Proc::node(&net.state.nodes[i]));
    save_procs(&net.dir, &procs)?;
    Ok(pid)
}
