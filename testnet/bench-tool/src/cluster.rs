//! A consortium under test: anvil chains with vaults (deployed by
//! `backstop_contracts::testing`), the keys and `node.toml` of `n` nodes, the node
//! processes, and reads through their gRPC API and metrics endpoint.
//!
//! The configuration follows `node/tests/common/mod.rs` (the process-level tests' harness),
//! with the knobs a benchmark needs: confirmations, halt bound, `[agreement]` timings and
//! extra tables.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use alloy::primitives::{B256, U256};
use anyhow::{Context, Result, bail};
use backstop_api::proto::{GetStatusRequest, Incident, ListIncidentsRequest, NodeStatus};
use backstop_contracts::bindings::MockMember;
use backstop_contracts::testing::{BUCKET_CAPACITY, Consortium, RESERVE_FLOOR, thresholds};
use ed25519_dalek::SigningKey;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Admin token written for every node (the benchmark makes no admin call).
const TOKEN: &str = "bench-admin-token-0123456789";

/// Milliseconds since the Unix epoch (the clock the nodes' timelines use).
pub fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// How every node of a cluster is configured beyond the common defaults.
#[derive(Clone, Debug)]
pub struct NodeSettings {
    /// `chains[].confirmations`.
    pub confirmations: u64,
    /// `chains[].poll_interval_ms`.
    pub poll_interval_ms: u64,
    /// `chains[].halt_after_secs`.
    pub halt_after_secs: u64,
    /// `[agreement]` `attempt_timeout_ms`.
    pub attempt_timeout_ms: u64,
    /// `[agreement]` `submit_delay_ms`.
    pub submit_delay_ms: u64,
    /// `[agreement]` `settle_ms`.
    pub settle_ms: u64,
    /// Appended verbatim (e.g. a `[detectors]` table).
    pub extra: String,
}

impl NodeSettings {
    /// The benchmark's settings with `confirmations`.
    pub fn bench(confirmations: u64) -> Self {
        Self {
            confirmations,
            poll_interval_ms: 100,
            halt_after_secs: 600,
            attempt_timeout_ms: 3000,
            submit_delay_ms: 1500,
            settle_ms: 500,
            extra: String::new(),
        }
    }
}

/// One node process.
pub struct Node {
    /// `node-<i>`.
    pub name: String,
    /// Its directory (keys, `node.toml`, `node.log`, `data/`).
    pub dir: PathBuf,
    /// gRPC API URL.
    pub api: String,
    /// Metrics endpoint, `host:port`.
    pub metrics: String,
    /// The `backstop` binary.
    bin: PathBuf,
    /// The running process.
    child: Option<Child>,
}

impl Node {
    /// Starts the process (output to `node.log`, appended); returns when it was spawned.
    pub fn start(&mut self) -> Result<Instant> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("node.log"))
            .with_context(|| format!("open the log of {}", self.name))?;
        let started = Instant::now();
        let child = Command::new(&self.bin)
            .args(["node", "--config"])
            .arg(self.dir.join("node.toml"))
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("start {} ({})", self.name, self.bin.display()))?;
        self.child = Some(child);
        Ok(started)
    }

    /// Process id while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGTERM (the node flushes its store and exits), SIGKILL after 15 s.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").arg(c.id().to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Whether the process is running (not exited, not a zombie), from `/proc`.
    pub fn alive(&self) -> bool {
        self.pid().is_some_and(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                stat.rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().next())
                    .is_some_and(|state| state != "Z")
            })
        })
    }

    /// Whether the process exited on its own (it should not).
    pub fn exited(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(Some(_))))
    }

    /// Last lines of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(self.dir.join("node.log")).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Its log without terminal colour codes.
    pub fn log_plain(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("node.log")).unwrap_or_default();
        let mut out = String::with_capacity(text.len());
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '\u{1b}' && chars.peek() == Some(&'[') {
                for d in chars.by_ref() {
                    if d.is_ascii_alphabetic() {
                        break;
                    }
                }
            } else {
                out.push(c);
            }
        }
        out
    }

    /// `GetStatus`, `None` while unreachable.
    pub async fn status(&self) -> Option<NodeStatus> {
        let mut c = backstop_api::client::client(&self.api).await.ok()?;
        c.get_status(GetStatusRequest {})
            .await
            .ok()
            .and_then(|r| r.into_inner().status)
    }

    /// Every incident the node knows (`ListIncidents`), timelines included.
    pub async fn incidents(&self) -> Result<Vec<Incident>> {
        let mut c = backstop_api::client::client(&self.api)
            .await
            .with_context(|| format!("connect to {}", self.name))?;
        Ok(c.list_incidents(ListIncidentsRequest { open_only: false })
            .await
            .with_context(|| format!("ListIncidents on {}", self.name))?
            .into_inner()
            .incidents)
    }

    /// The Prometheus text of its metrics endpoint.
    pub async fn metrics_text(&self) -> Result<String> {
        let mut s = tokio::net::TcpStream::connect(&self.metrics)
            .await
            .with_context(|| format!("connect to the metrics of {}", self.name))?;
        s.write_all(
            format!(
                "GET /metrics HTTP/1.0\r\nHost: {}\r\nConnection: close\r\n\r\n",
                self.metrics
            )
            .as_bytes(),
        )
        .await?;
        let mut out = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
            .await
            .context("metrics endpoint timed out")??;
        let text = String::from_utf8_lossy(&out).into_owned();
        Ok(text
            .split_once("\r\n\r\n")
            .map_or(text.clone(), |(_, body)| body.to_owned()))
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Writes a secret file with mode 0600.
fn write_secret(path: &Path, text: &str) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("create {}", path.display()))?;
    writeln!(f, "{text}")?;
    Ok(())
}

/// Lower-case hex without prefix.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `k` distinct free loopback ports: all bound at once, then released (binding them one
/// after another can return the same port twice).
fn distinct_ports(k: usize) -> Result<Vec<u16>> {
    let listeners: Vec<std::net::TcpListener> = (0..k)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<_>>()
        .context("bind loopback ports")?;
    listeners
        .iter()
        .map(|l| Ok(l.local_addr()?.port()))
        .collect()
}

/// Writes keys and `node.toml` of the `net.keys.len()` nodes under `root`: every chain and
/// every member of `net`.
pub fn configure(
    bin: &Path,
    root: &Path,
    net: &Consortium,
    settings: &NodeSettings,
) -> Result<Vec<Node>> {
    let n = net.keys.len();
    let (t, p) = thresholds(n);
    let identities: Vec<SigningKey> = (0..n)
        .map(|i| SigningKey::from_bytes(&[i as u8 + 1; 32]))
        .collect();
    let ports = distinct_ports(3 * n)?;
    let p2p_ports = &ports[..n];
    let mut consortium = String::new();
    for i in 0..n {
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
            "[[chains]]\nchain_id = {}\nname = \"chain-{}\"\nrpc_urls = [\"{}\"]\nvault = \"{}\"\nconfirmations = {}\npoll_interval_ms = {}\nhalt_after_secs = {}\n\n",
            c.chain_id,
            c.chain_id,
            c.http(),
            c.vault,
            settings.confirmations,
            settings.poll_interval_ms,
            settings.halt_after_secs,
        ));
    }
    let mut members = String::new();
    for (i, m) in net.members.iter().enumerate() {
        members.push_str(&format!(
            "[[members]]\nname = \"member-{i}\"\nid = \"{}\"\nhome_chain_id = {}\nsolvency_contract = \"{}\"\n\n",
            m.spec.id, m.spec.home_chain_id, m.contract
        ));
    }
    let mut nodes = Vec::with_capacity(n);
    for (i, identity) in identities.iter().enumerate() {
        let dir = root.join(format!("node-{i}"));
        std::fs::create_dir_all(&dir)?;
        write_secret(&dir.join("identity.key"), &hex(&identity.to_bytes()))?;
        write_secret(
            &dir.join("signer.key"),
            &format!("0x{}", hex(&net.keys[i].to_bytes()[..])),
        )?;
        write_secret(&dir.join("admin.token"), TOKEN)?;
        let api_port = ports[n + i];
        let metrics_port = ports[2 * n + i];
        let config = format!(
            "[node]\nname = \"node-{i}\"\ndata_dir = \"data\"\nidentity_key_file = \"identity.key\"\nsigner_key_file = \"signer.key\"\nlog_filter = \"info\"\n\n\
             [network]\nlisten = [\"/ip4/127.0.0.1/tcp/{}\"]\n\n\
             [api]\nlisten = \"127.0.0.1:{api_port}\"\nadmin_token_file = \"admin.token\"\n\n\
             [metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n\n\
             [consortium]\nthreshold = {t}\npause_threshold = {p}\n\n{consortium}{chains}{members}\n\
             [agreement]\nattempt_timeout_ms = {}\nsubmit_delay_ms = {}\nsettle_ms = {}\n\n{}\n",
            p2p_ports[i],
            settings.attempt_timeout_ms,
            settings.submit_delay_ms,
            settings.settle_ms,
            settings.extra,
        );
        std::fs::write(dir.join("node.toml"), config)?;
        nodes.push(Node {
            name: format!("node-{i}"),
            dir,
            api: format!("http://127.0.0.1:{api_port}"),
            metrics: format!("127.0.0.1:{metrics_port}"),
            bin: bin.to_path_buf(),
            child: None,
        });
    }
    Ok(nodes)
}

/// Polls `f` every `every` until it holds; fails after `timeout` naming `what`.
pub async fn wait_until<F, Fut>(
    what: &str,
    timeout: Duration,
    every: Duration,
    mut f: F,
) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if f().await? {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("timed out after {} s waiting for {what}", timeout.as_secs());
        }
        tokio::time::sleep(every).await;
    }
}

/// Fails with the tail of every node's log: for errors that a node probably caused.
pub fn with_logs(nodes: &[Node], e: anyhow::Error) -> anyhow::Error {
    let mut text = String::new();
    for n in nodes {
        text.push_str(&format!("----- {} -----\n{}\n", n.name, n.log_tail(30)));
    }
    anyhow::anyhow!("{e:#}\n\nnode logs:\n{text}")
}

/// Starts every node and waits until each is ready and connected to all others.
pub async fn start_all(nodes: &mut [Node]) -> Result<()> {
    for n in nodes.iter_mut() {
        n.start()?;
    }
    let want = nodes.len() as u32 - 1;
    let r = wait_until(
        "every node ready and connected to every other",
        Duration::from_secs(120),
        Duration::from_millis(200),
        || async {
            for n in nodes.iter() {
                if !n.alive() {
                    bail!("{} exited during start", n.name);
                }
            }
            for n in nodes.iter() {
                match n.status().await {
                    Some(s) if s.ready && s.peers_connected >= want => {}
                    _ => return Ok(false),
                }
            }
            Ok(true)
        },
    )
    .await;
    r.map_err(|e| with_logs(nodes, e))
}

/// What member `i`'s mock protocol reports: (assets, liabilities).
pub async fn solvency(net: &Consortium, i: usize) -> Result<(U256, U256)> {
    let home = net.home(i);
    let r = MockMember::new(net.member(i).contract, home.provider.clone())
        .solvency()
        .call()
        .await
        .context("read solvency()")?;
    Ok((r.assets, r.liabilities))
}

/// The home vault's `drawOf(member i, seq)`.
pub async fn draw_of(net: &Consortium, i: usize, seq: u64) -> Result<B256> {
    let m = net.member(i);
    net.home(i)
        .vault()
        .drawOf(m.spec.id, seq)
        .call()
        .await
        .context("read drawOf")
}

/// Waits until, at the block a node with `confirmations` pins (head − confirmations), every
/// vault can pay its full bucket again (balance above the reserve, capped by the bucket):
/// the state in which every incident of a series starts. With `mine`, an empty block is
/// mined on each chain first and again on every retry (instant mining makes no block by
/// itself, and the bucket refills with block time).
pub async fn wait_full_buckets(net: &Consortium, confirmations: u64, mine: bool) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut all = true;
        for c in &net.chains {
            if mine {
                c.mine(1).await;
            }
            let at = alloy::eips::BlockId::number(c.head().await.saturating_sub(confirmations));
            let available = c.vault().availableForPayout().block(at).call().await?;
            let balance = c.token().balanceOf(c.vault).block(at).call().await?;
            let full = balance
                .saturating_sub(U256::from(RESERVE_FLOOR))
                .min(U256::from(BUCKET_CAPACITY));
            if available != full {
                all = false;
            }
        }
        if all {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("vault buckets did not refill within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
