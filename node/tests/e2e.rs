//! End to end: three anvil chains with a vault each, four `backstop` node processes on
//! loopback. A member's gap on its home chain is covered from the vaults of all three
//! chains; every balance afterwards matches the allocation exactly, and the API reports the
//! incident closed with its transactions. Then, with one node stopped, a second gap is
//! covered the same way (t = 3 of 4).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use alloy::primitives::{Address, U256};
use backstop_api::proto::{GetStatusRequest, Incident, IncidentPhase, ListIncidentsRequest};
use backstop_chain::allocation::{AllocationInput, VaultCapacity, allocate};
use backstop_contracts::testing::{
    BUCKET_CAPACITY, ChainParams, Consortium, ConsortiumParams, MEMBER_CAP, MEMBER_DEDUCTIBLE,
    RESERVE_FLOOR, UNIT, default_limits, deploy_consortium, free_port,
};
use ed25519_dalek::SigningKey;

const CHAINS: [u64; 3] = [31337, 31338, 31339];
const N: usize = 4;
const TOKEN: &str = "e2e-admin-token-0123456789";

struct Node {
    name: String,
    dir: PathBuf,
    api: String,
    child: Option<Child>,
}

impl Node {
    fn start(&mut self) {
        let log = std::fs::File::create(self.dir.join("node.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_backstop"))
            .args(["node", "--config"])
            .arg(self.dir.join("node.toml"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start a node");
        self.child = Some(child);
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SIGTERM: the node flushes its store and exits.
            let _ = Command::new("kill").arg(c.id().to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("node.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop();
    }
}

fn write_secret(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .unwrap();
    writeln!(f, "{text}").unwrap();
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes keys and configs of the four nodes under `root`.
fn configure(root: &Path, net: &Consortium) -> Vec<Node> {
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
            "[[chains]]\nchain_id = {}\nname = \"chain-{}\"\nrpc_urls = [\"{}\"]\nvault = \"{}\"\nconfirmations = 1\npoll_interval_ms = 100\nhalt_after_secs = 60\n\n",
            c.chain_id,
            c.chain_id,
            c.http(),
            c.vault
        ));
    }
    let m = net.member(0);
    let members = format!(
        "[[members]]\nname = \"perp\"\nid = \"{}\"\nhome_chain_id = {}\nsolvency_contract = \"{}\"\n",
        m.spec.id, m.spec.home_chain_id, m.contract
    );
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
                 [agreement]\nattempt_timeout_ms = 3000\nsubmit_delay_ms = 1500\n",
                p2p_ports[i],
                free_port()
            );
            std::fs::write(dir.join("node.toml"), config).unwrap();
            Node {
                name: format!("node-{i}"),
                dir,
                api: format!("http://127.0.0.1:{api_port}"),
                child: None,
            }
        })
        .collect()
}

async fn ready(node: &Node) -> bool {
    let Ok(mut c) = backstop_api::client::client(&node.api).await else {
        return false;
    };
    c.get_status(GetStatusRequest {})
        .await
        .ok()
        .and_then(|r| r.into_inner().status)
        .is_some_and(|s| s.ready && s.peers_connected as usize >= N - 2)
}

async fn incidents(node: &Node) -> Vec<Incident> {
    let Ok(mut c) = backstop_api::client::client(&node.api).await else {
        return vec![];
    };
    c.list_incidents(ListIncidentsRequest { open_only: false })
        .await
        .map(|r| r.into_inner().incidents)
        .unwrap_or_default()
}

async fn wait_for<F, Fut>(what: &str, nodes: &[Node], timeout: Duration, mut f: F)
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

/// What each vault can pay, once its bucket is full again at the newest confirmed block
/// (block timestamps move in whole seconds, so a bucket drained by the previous incident
/// refills only at the next second): from then on, until a payout, every block a proposer
/// pins gives the same capacities.
async fn capacities(net: &Consortium) -> Vec<VaultCapacity> {
    let deadline = Instant::now() + Duration::from_secs(30);
    'retry: loop {
        assert!(Instant::now() < deadline, "vault buckets did not refill");
        let mut out = Vec::new();
        for c in &net.chains {
            // At the newest confirmed block (what a proposer pins on a chain where nothing
            // else happens; confirmations = 1), not at "latest", which may see the next
            // block's timestamp.
            let at = alloy::eips::BlockId::number(c.head().await.saturating_sub(1));
            let available = c
                .vault()
                .availableForPayout()
                .block(at)
                .call()
                .await
                .unwrap();
            let balance = c.token().balanceOf(c.vault).block(at).call().await.unwrap();
            let full = (balance - U256::from(RESERVE_FLOOR)).min(U256::from(BUCKET_CAPACITY));
            if available != full {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue 'retry;
            }
            out.push(VaultCapacity {
                chain_id: c.chain_id,
                vault: c.vault,
                available,
                quarantined: false,
            });
        }
        return out;
    }
}

async fn balances(net: &Consortium, who: impl Fn(u64) -> Address) -> Vec<U256> {
    let mut out = Vec::new();
    for c in &net.chains {
        out.push(c.balance_of(who(c.chain_id)).await);
    }
    out
}

/// Opens a gap, waits until every running node reports the incident closed, and checks the
/// balances against the allocation.
async fn cover(net: &Consortium, nodes: &[Node], running: &[usize], seq: u64, gap: U256) {
    let m = net.member(0);
    let home = net.chain(m.spec.home_chain_id);
    let expected = allocate(&AllocationInput {
        gap,
        deductible: u128::from(MEMBER_DEDUCTIBLE),
        cap: u128::from(MEMBER_CAP),
        home_chain_id: home.chain_id,
        vaults: capacities(net).await,
    })
    .unwrap();
    assert!(
        expected.legs.len() == 3,
        "the gap must need all three vaults"
    );
    let recipients_before = balances(net, |c| m.spec.recipient_on(c)).await;
    let vault_of = |chain_id| net.chain(chain_id).vault;
    let vaults_before = balances(net, vault_of).await;

    let assets = U256::from(1_000 * UNIT);
    net.set_solvency(0, assets, assets + gap).await;

    // The member books the draw once the home vault registered it (as its insurance fund
    // would); a gap left standing would open the next incident.
    let started = Instant::now();
    loop {
        let settled = home.vault().drawOf(m.spec.id, seq).call().await.unwrap();
        if !settled.is_zero() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "no draw registered for seq {seq}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    net.set_solvency(0, assets + gap, assets + gap).await;

    wait_for(
        "the incident to close on every node",
        nodes,
        Duration::from_secs(90),
        || async {
            for &i in running {
                let closed = incidents(&nodes[i])
                    .await
                    .iter()
                    .any(|x| x.seq == seq && x.phase == IncidentPhase::Closed as i32);
                if !closed {
                    return false;
                }
            }
            true
        },
    )
    .await;
    let elapsed = started.elapsed();

    let recipients_after = balances(net, |c| m.spec.recipient_on(c)).await;
    let vaults_after = balances(net, vault_of).await;
    for (i, c) in net.chains.iter().enumerate() {
        let leg = expected
            .legs
            .iter()
            .find(|l| l.chainId == c.chain_id)
            .map_or(U256::ZERO, |l| l.amount);
        assert_eq!(
            recipients_after[i] - recipients_before[i],
            leg,
            "recipient on chain {} got exactly its leg",
            c.chain_id
        );
        assert_eq!(
            vaults_before[i] - vaults_after[i],
            leg,
            "vault on chain {} paid exactly its leg",
            c.chain_id
        );
    }
    let inc = incidents(&nodes[running[0]])
        .await
        .into_iter()
        .find(|x| x.seq == seq)
        .unwrap();
    assert_eq!(inc.draw_amount, expected.covered.to_string());
    assert_eq!(inc.legs.len(), 3);
    assert_eq!(
        inc.tx_hashes.len(),
        3,
        "one registration and two releases: {inc:?}"
    );
    assert!(inc.legs.iter().all(|l| !l.tx_hash.is_empty()));
    eprintln!(
        "seq {seq}: gap {gap} covered {} in {:.2} s (legs {:?})",
        expected.covered,
        elapsed.as_secs_f64(),
        expected
            .legs
            .iter()
            .map(|l| l.amount.to_string())
            .collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gap_is_covered_across_three_chains_by_four_nodes_then_by_three() {
    let mut params = ConsortiumParams {
        mine_every: Some(Duration::from_millis(500)),
        ..Default::default()
    };
    // A bucket that refills at once: what a vault can pay is then its balance above the
    // reserve, capped by the bucket, whatever the time of the pinned block.
    let mut limits = default_limits();
    limits.refillPerSecond = limits.bucketCapacity;
    params.chain = ChainParams {
        limits,
        ..ChainParams::default()
    };
    let net = deploy_consortium(&CHAINS, N, &params).await;
    let root = tempfile::tempdir().unwrap();
    let mut nodes = configure(root.path(), &net);
    for n in nodes.iter_mut() {
        n.start();
    }
    wait_for(
        "every node ready and connected",
        &nodes,
        Duration::from_secs(60),
        || async {
            for n in &nodes {
                if !ready(n).await {
                    return false;
                }
            }
            true
        },
    )
    .await;

    // A client that knows nothing but server reflection reads a running node's status.
    let root_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let py = Command::new(root_dir.join("testnet/install-python-deps"))
        .output()
        .expect("run install-python-deps");
    assert!(
        py.status.success(),
        "{}",
        String::from_utf8_lossy(&py.stderr)
    );
    let python = String::from_utf8_lossy(&py.stdout).trim().to_string();
    let out = Command::new(python)
        .arg(root_dir.join("testnet/reflect.py"))
        .arg(nodes[0].api.trim_start_matches("http://"))
        .output()
        .expect("run reflect.py");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("backstop.v1.Backstop") && text.contains("grpc.health.v1.Health"));
    assert!(text.contains("\"node-0\""), "{text}");

    // Home pays its 10,000 first; the other 6,000 of the coverable 16,000 comes from the
    // two other vaults, pro rata.
    cover(&net, &nodes, &[0, 1, 2, 3], 0, U256::from(16_100 * UNIT)).await;

    nodes[3].stop();
    cover(&net, &nodes, &[0, 1, 2], 1, U256::from(12_100 * UNIT)).await;
}

/// Runs `backstop node` on a config and returns its exit status and output.
fn run_to_exit(node: &Node) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_backstop"))
        .args(["node", "--config"])
        .arg(node.dir.join("node.toml"))
        .output()
        .expect("run the node");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_configs_are_refused_with_file_key_and_reason() {
    let net = deploy_consortium(&CHAINS[..1], N, &ConsortiumParams::default()).await;
    let root = tempfile::tempdir().unwrap();
    let nodes = configure(root.path(), &net);
    let path = nodes[0].dir.join("node.toml");
    let good = std::fs::read_to_string(&path).unwrap();
    let vault = net.chains[0].vault.to_string();

    let cases: Vec<(String, &[&str])> = vec![
        (
            good.replace("[node]\n", "[node]\ncolour = \"blue\"\n"),
            &["node.toml", "colour"],
        ),
        (
            good.replace(&vault, "0x12"),
            &["node.toml", "chains[0].vault", "0x12"],
        ),
        (
            // The consortium's thresholds are consistent, but the vault has another
            // guardian in place of node-3's.
            good.replace(
                &net.keys[3].address().to_string(),
                &Address::repeat_byte(0x42).to_string(),
            ),
            &["guardian set", "31337"],
        ),
    ];
    for (text, expected) in cases {
        std::fs::write(&path, text).unwrap();
        let (ok, out) = run_to_exit(&nodes[0]);
        assert!(!ok, "the node must refuse this config; it printed:\n{out}");
        for e in expected {
            assert!(out.contains(e), "{e:?} missing from:\n{out}");
        }
    }
}
