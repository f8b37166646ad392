//! Shared harness of the node's process-level tests: writes the keys and configuration of
//! `N` nodes for a deployed [`Consortium`], runs each as a real `backstop` process, and
//! reads them through the gRPC API.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use alloy::primitives::U256;
use backstop_api::proto::{
    Breaker, GetStatusRequest, Incident, ListBreakersRequest, ListChainsRequest,
    ListIncidentsRequest,
};
use backstop_contracts::bindings::MockMember;
use backstop_contracts::testing::{
    ChainParams, Consortium, ConsortiumParams, default_limits, deploy_consortium, free_port,
};
use ed25519_dalek::SigningKey;

pub const N: usize = 4;
/// The chains of the end-to-end tests.
pub const CHAINS: [u64; 3] = [31337, 31338, 31339];
pub const TOKEN: &str = "e2e-admin-token-0123456789";

/// One node process.
pub struct Node {
    pub name: String,
    pub dir: PathBuf,
    pub api: String,
    pub child: Option<Child>,
    /// Extra environment of the process (e.g. a faked clock).
    pub env: Vec<(String, String)>,
}

impl Node {
    pub fn start(&mut self) {
        let log = std::fs::File::create(self.dir.join("node.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_backstop"))
            .args(["node", "--config"])
            .arg(self.dir.join("node.toml"))
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start a node");
        self.child = Some(child);
    }

    /// SIGTERM: the node flushes its store and exits. Returns its exit status, `None` if it
    /// was not running or had to be killed after 10 s.
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        let mut c = self.child.take()?;
        let _ = Command::new("kill").arg(c.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = c.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = c.kill();
        let _ = c.wait();
        None
    }

    /// SIGKILL: no flush, no goodbye.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("node.log")).unwrap_or_default()
    }

    pub fn log_tail(&self) -> String {
        let text = self.log();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Writes `text` and a newline to a new file of mode 0600.
pub fn write_secret(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .unwrap();
    writeln!(f, "{text}").unwrap();
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What the configuration of every node adds to the defaults.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Declare each chain's mock oracle (asset "USD") and the oracle of each member.
    pub oracles: bool,
    /// `chains[].halt_after_secs` (60 when `None`).
    pub halt_after_secs: Option<u64>,
    /// Appended verbatim (e.g. a `[detectors]` table).
    pub extra: String,
}

/// Writes keys and configs of the `N` nodes under `root`: every chain and every member of
/// `net`.
pub fn configure(root: &Path, net: &Consortium, opts: &Options) -> Vec<Node> {
    let identities: Vec<SigningKey> = (0..N)
        .map(|i| SigningKey::from_bytes(&[i as u8 + 1; 32]))
        .collect();
    let p2p_ports: Vec<u16> = (0..N).map(|_| free_port()).collect();
    let mut consortium = String::new();
    for i in 0..N {
        consortium.push_str(&format!(
            "[[consortium.nodes]]\nname = \"node-{i}\"\npublic_key = \"{}\"\nguardian = \"{}\"\naddresses = [\"/ip4/127.0.0.1/tcp/{}\"]\n\n",
            hex(identities[i].verifying_key().as_bytes()),
            net.keys[i].address(),
            p2p_ports[i]
        ));
    }
    let mut chains = String::new();
    for c in &net.chains {
        chains.push_str(&format!(
            "[[chains]]\nchain_id = {}\nname = \"chain-{}\"\nrpc_urls = [\"{}\"]\nvault = \"{}\"\nconfirmations = 1\npoll_interval_ms = 100\nhalt_after_secs = {}\n\n",
            c.chain_id,
            c.chain_id,
            c.http(),
            c.vault,
            opts.halt_after_secs.unwrap_or(60),
        ));
    }
    let mut members = String::new();
    for (i, m) in net.members.iter().enumerate() {
        members.push_str(&format!(
            "[[members]]\nname = \"member-{i}\"\nid = \"{}\"\nhome_chain_id = {}\nsolvency_contract = \"{}\"\n",
            m.spec.id, m.spec.home_chain_id, m.contract
        ));
        if opts.oracles {
            members.push_str(&format!("oracle = \"{}\"\n", m.oracle));
        }
        members.push('\n');
    }
    if opts.oracles {
        for c in &net.chains {
            members.push_str(&format!(
                "[[oracles]]\nname = \"usd-{}\"\nchain_id = {}\naddress = \"{}\"\nasset = \"USD\"\n\n",
                c.chain_id, c.chain_id, c.oracle
            ));
        }
    }
    (0..N)
        .map(|i| {
            let dir = root.join(format!("node-{i}"));
            std::fs::create_dir_all(&dir).unwrap();
            write_secret(&dir.join("identity.key"), &hex(&identities[i].to_bytes()));
            write_secret(
                &dir.join("signer.key"),
                &format!("0x{}", hex(&net.keys[i].to_bytes()[..])),
            );
            write_secret(&dir.join("admin.token"), TOKEN);
            let api_port = free_port();
            let config = format!(
                "[node]\nname = \"node-{i}\"\ndata_dir = \"data\"\nidentity_key_file = \"identity.key\"\nsigner_key_file = \"signer.key\"\nlog_filter = \"info\"\n\n\
                 [network]\nlisten = [\"/ip4/127.0.0.1/tcp/{}\"]\n\n\
                 [api]\nlisten = \"127.0.0.1:{api_port}\"\nadmin_token_file = \"admin.token\"\n\n\
                 [metrics]\nlisten = \"127.0.0.1:{}\"\n\n\
                 [consortium]\nthreshold = 3\npause_threshold = 2\n\n{consortium}{chains}{members}\n\
                 [agreement]\nattempt_timeout_ms = 3000\nsubmit_delay_ms = 1500\n\n{}\n",
                p2p_ports[i],
                free_port(),
                opts.extra,
            );
            std::fs::write(dir.join("node.toml"), config).unwrap();
            Node {
                name: format!("node-{i}"),
                dir,
                api: format!("http://127.0.0.1:{api_port}"),
                child: None,
                env: Vec::new(),
            }
        })
        .collect()
}

pub async fn ready(node: &Node) -> bool {
    let Ok(mut c) = backstop_api::client::client(&node.api).await else {
        return false;
    };
    c.get_status(GetStatusRequest {})
        .await
        .ok()
        .and_then(|r| r.into_inner().status)
        .is_some_and(|s| s.ready && s.peers_connected as usize >= N - 2)
}

pub async fn incidents(node: &Node) -> Vec<Incident> {
    let Ok(mut c) = backstop_api::client::client(&node.api).await else {
        return vec![];
    };
    c.list_incidents(ListIncidentsRequest { open_only: false })
        .await
        .map(|r| r.into_inner().incidents)
        .unwrap_or_default()
}

pub async fn breakers(node: &Node) -> Vec<Breaker> {
    let mut c = backstop_api::client::client(&node.api).await.unwrap();
    c.list_breakers(ListBreakersRequest { active_only: false })
        .await
        .unwrap()
        .into_inner()
        .breakers
}

/// Polls `f` every 200 ms until it holds; on timeout prints every node's log tail and
/// panics naming `what`.
pub async fn wait_for<F, Fut>(what: &str, nodes: &[Node], timeout: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for n in nodes {
        eprintln!("----- {} -----\n{}", n.name, n.log_tail());
    }
    panic!("timed out waiting for {what}");
}

/// Starts every node and waits until all are ready, connected, and have a confirmed snapshot
/// of each chain as `net` deployed it. A node started right after the deployment may first
/// confirm a block from before the members' registrations (confirmations = 1), and a
/// draw pinned to such a block has no leg on that vault. The chains must be mining.
pub async fn start_all(nodes: &mut [Node], net: &Consortium) {
    let mut deployed = Vec::with_capacity(net.chains.len());
    for c in &net.chains {
        deployed.push((c.chain_id, c.head().await));
    }
    for n in nodes.iter_mut() {
        n.start();
    }
    wait_for(
        "every node ready, connected, and past the deployment on every chain",
        nodes,
        Duration::from_secs(60),
        || async {
            for n in nodes.iter() {
                if !ready(n).await || !confirmed_past(n, &deployed).await {
                    return false;
                }
            }
            true
        },
    )
    .await;
}

/// Whether `node` has confirmed, on each `(chain_id, block)`, that block or a later one.
pub async fn confirmed_past(node: &Node, blocks: &[(u64, u64)]) -> bool {
    let Ok(mut c) = backstop_api::client::client(&node.api).await else {
        return false;
    };
    let Ok(chains) = c.list_chains(ListChainsRequest {}).await else {
        return false;
    };
    let chains = chains.into_inner().chains;
    blocks.iter().all(|(id, block)| {
        chains
            .iter()
            .any(|c| c.chain_id == *id && c.confirmed_head >= *block)
    })
}

/// What member `i`'s mock protocol reports: (assets, liabilities).
pub async fn solvency(net: &Consortium, i: usize) -> (U256, U256) {
    let home = net.home(i);
    let r = MockMember::new(net.member(i).contract, home.provider.clone())
        .solvency()
        .call()
        .await
        .unwrap();
    (r.assets, r.liabilities)
}

/// Pool-token balances of `who(chain_id)` on every chain, in chain order.
pub async fn balances(
    net: &Consortium,
    who: impl Fn(u64) -> alloy::primitives::Address,
) -> Vec<U256> {
    let mut out = Vec::new();
    for c in &net.chains {
        out.push(c.balance_of(who(c.chain_id)).await);
    }
    out
}

/// Deploys [`CHAINS`] for [`N`] nodes with a block every 500 ms and buckets that refill at
/// once: what a vault can pay is then its balance above the reserve, capped by the bucket,
/// whatever the time of the pinned block.
pub async fn deploy_fast_refill() -> Consortium {
    let mut limits = default_limits();
    limits.refillPerSecond = limits.bucketCapacity;
    let params = ConsortiumParams {
        mine_every: Some(Duration::from_millis(500)),
        chain: ChainParams {
            limits,
            ..ChainParams::default()
        },
        ..Default::default()
    };
    deploy_consortium(&CHAINS, N, &params).await
}

/// A TCP proxy in front of an RPC endpoint that a test turns faulty and back: while faulty,
/// every connection gets one HTTP answer that is not JSON-RPC and is closed, and the
/// connections it was forwarding are cut.
pub struct FaultyRpc {
    /// The proxy's URL, to configure in place of the endpoint's.
    pub url: String,
    faulty: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Bumped at every switch: forwarding connections of an older generation end.
    generation: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl FaultyRpc {
    /// Starts forwarding to `upstream` (an `http://host:port` URL).
    pub async fn start(upstream: &str) -> Self {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
        let upstream = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let faulty = Arc::new(AtomicBool::new(false));
        let generation = Arc::new(AtomicU64::new(0));
        let (f, g) = (faulty.clone(), generation.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let (f, g, upstream) = (f.clone(), g.clone(), upstream.clone());
                tokio::spawn(async move {
                    if f.load(SeqCst) {
                        answer_garbage(&mut client).await;
                        return;
                    }
                    let born = g.load(SeqCst);
                    let Ok(mut server) = tokio::net::TcpStream::connect(&upstream).await else {
                        return;
                    };
                    let switched = async {
                        while g.load(SeqCst) == born {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = switched => {}
                    }
                });
            }
        });
        Self {
            url,
            faulty,
            generation,
        }
    }

    /// Turns the fault on or off.
    pub fn set_faulty(&self, on: bool) {
        use std::sync::atomic::Ordering::SeqCst;
        self.faulty.store(on, SeqCst);
        self.generation.fetch_add(1, SeqCst);
    }
}

async fn answer_garbage(client: &mut tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = [0u8; 8192];
    let _ = tokio::time::timeout(Duration::from_secs(1), client.read(&mut buf)).await;
    let _ = client
        .write_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 9\r\nConnection: close\r\n\r\n{garbage}",
        )
        .await;
}
