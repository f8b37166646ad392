//! End to end: three anvil chains with a vault each, four `backstop` node processes on
//! loopback. A member's gap on its home chain is covered from the vaults of all three
//! chains; every balance afterwards matches the allocation exactly, and the API reports the
//! incident closed with its transactions. Then, with one node stopped, a second gap is
//! covered the same way (t = 3 of 4). A reorg deeper than the confirmation depth that takes
//! back a registration after the remote legs were paid is put back: the same draw registered
//! again, the home leg paid once. And a node whose clock disagrees with the chains says so
//! in its status and its log.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use alloy::primitives::{Address, U256};
use backstop_api::proto::IncidentPhase;
use backstop_chain::allocation::{AllocationInput, VaultCapacity, allocate};
use backstop_contracts::testing::{
    BUCKET_CAPACITY, Consortium, ConsortiumParams, MEMBER_CAP, MEMBER_DEDUCTIBLE, RESERVE_FLOOR,
    UNIT, deploy_consortium,
};
use backstop_signer::testing::{SOFTHSM_MODULE, SOFTHSM_TOKEN, softhsm_token};
use common::{
    CHAINS, N, Node, Options, balances, configure, deploy_fast_refill, incidents, solvency,
    start_all, wait_for,
};

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

    // Assets never fall (a fall would look like an exploit): the loss shows as liabilities.
    let (assets, _) = solvency(net, 0).await;
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
    net.set_books(0, (assets + gap, assets + gap), seq + 1)
        .await;

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
    let net = deploy_fast_refill().await;
    let root = tempfile::tempdir().unwrap();
    let mut nodes = configure(root.path(), &net, &Options::default());
    start_all(&mut nodes, &net).await;

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

    // SIGTERM while the node is busy: a clean exit that flushes the store, no error path.
    let status = nodes[3].stop();
    let log = nodes[3].log();
    assert!(
        status.is_some_and(|s| s.success()),
        "exit {status:?}\n{log}"
    );
    let stopping = log
        .split_once("signal received; shutting down")
        .map(|(_, after)| after)
        .unwrap_or_else(|| panic!("the node saw no signal:\n{log}"));
    assert!(stopping.contains("store flushed; node stopped"), "{log}");
    assert!(
        !stopping.contains("ERROR"),
        "a graceful stop logs no error:\n{log}"
    );
    cover(&net, &nodes, &[0, 1, 2], 1, U256::from(12_100 * UNIT)).await;

    // Restarted, the node that was down learns from the chains what it missed: its history
    // agrees with its peers' (the draw, its legs and their transactions).
    nodes[3].start();
    let peer = incidents(&nodes[0])
        .await
        .into_iter()
        .find(|x| x.seq == 1)
        .unwrap();
    wait_for(
        "the restarted node to learn the draw it missed",
        &nodes,
        Duration::from_secs(60),
        || async {
            incidents(&nodes[3]).await.into_iter().any(|x| {
                x.seq == 1
                    && x.phase == IncidentPhase::Closed as i32
                    && x.draw_amount == peer.draw_amount
                    && x.legs.len() == peer.legs.len()
                    && x.legs.iter().all(|l| !l.tx_hash.is_empty())
            })
        },
    )
    .await;
}

/// node-3's RPC to member-0's home chain answers garbage while seq 0 is paid by the three
/// others; restarted with a working RPC, node-3's history of the incident agrees with its
/// peers' and the chain's (before, it knew nothing of the draw it had seen only through
/// peers' attestations).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_restarted_after_an_rpc_fault_agrees_with_its_peers_and_the_chain() {
    let net = deploy_fast_refill().await;
    let root = tempfile::tempdir().unwrap();
    let mut nodes = configure(root.path(), &net, &Options::default());
    let home = net.chain(net.member(0).spec.home_chain_id);
    let proxy = common::FaultyRpc::start(&home.http()).await;
    let path = nodes[3].dir.join("node.toml");
    let config = std::fs::read_to_string(&path).unwrap();
    let url = format!("rpc_urls = [\"{}\"]", home.http());
    assert_eq!(config.matches(&url).count(), 1, "{url}");
    std::fs::write(
        &path,
        config.replace(&url, &format!("rpc_urls = [\"{}\"]", proxy.url)),
    )
    .unwrap();
    start_all(&mut nodes, &net).await;

    proxy.set_faulty(true);
    cover(&net, &nodes, &[0, 1, 2], 0, U256::from(16_100 * UNIT)).await;
    nodes[3].stop();
    proxy.set_faulty(false);
    nodes[3].start();

    let peer = incidents(&nodes[0])
        .await
        .into_iter()
        .find(|x| x.seq == 0)
        .unwrap();
    let peer_txs: std::collections::BTreeSet<String> =
        peer.legs.iter().map(|l| l.tx_hash.clone()).collect();
    wait_for(
        "node-3, restarted with a working RPC, to agree on the draw",
        &nodes,
        Duration::from_secs(60),
        || async {
            incidents(&nodes[3]).await.into_iter().any(|x| {
                let txs: std::collections::BTreeSet<String> =
                    x.legs.iter().map(|l| l.tx_hash.clone()).collect();
                x.seq == 0
                    && x.phase == IncidentPhase::Closed as i32
                    && x.draw_amount == peer.draw_amount
                    && txs == peer_txs
            })
        },
    )
    .await;
}

/// node-3's guardian key lives in a PKCS#11 token (SoftHSM2), imported from its key file,
/// which stays only as the chains' sender (gas). With node-0 stopped, a draw needs node-3's
/// token signatures (t = 3 of 4): the vaults must accept them, low `s` and recovery id
/// included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guardian_key_in_a_pkcs11_token_signs_draws_the_vaults_accept() {
    let net = deploy_fast_refill().await;
    let root = tempfile::tempdir().unwrap();
    let mut nodes = configure(root.path(), &net, &Options::default());
    let dir = nodes[3].dir.clone();
    let conf = softhsm_token(&dir, "271828");
    common::write_secret(&dir.join("pin"), "271828");
    let token_args = [
        "--module",
        SOFTHSM_MODULE,
        "--token",
        SOFTHSM_TOKEN,
        "--label",
        "guardian",
        "--pin-file",
    ];
    let import = Command::new(env!("CARGO_BIN_EXE_backstop"))
        .env("SOFTHSM2_CONF", &conf)
        .args(["keys", "pkcs11", "import", "--key"])
        .arg(dir.join("signer.key"))
        .args(token_args)
        .arg(dir.join("pin"))
        .output()
        .unwrap();
    assert!(
        import.status.success(),
        "{}",
        String::from_utf8_lossy(&import.stderr)
    );
    let path = dir.join("node.toml");
    let config = std::fs::read_to_string(&path)
        .unwrap()
        .replace("signer_key_file = \"signer.key\"\n", "")
        .replace(
            "confirmations = 1\n",
            "confirmations = 1\nsigner_key_file = \"signer.key\"\n",
        )
        .replace(
            "\n[network]",
            &format!(
                "\n[node.signer_pkcs11]\nmodule = \"{}\"\ntoken = \"{}\"\nkey = \"guardian\"\npin_file = \"pin\"\n\n[network]",
                SOFTHSM_MODULE,
                SOFTHSM_TOKEN
            ),
        );
    std::fs::write(&path, config).unwrap();
    nodes[3]
        .env
        .push(("SOFTHSM2_CONF".to_owned(), conf.display().to_string()));
    start_all(&mut nodes, &net).await;
    let log = nodes[3].log();
    assert!(
        log.contains("guardian key ready") && log.contains("PKCS#11 token"),
        "{log}"
    );

    nodes[0].stop();
    cover(&net, &nodes, &[1, 2, 3], 0, U256::from(16_100 * UNIT)).await;
}

/// The consortium's answer to a reorg deeper than the confirmation depth (confirmations = 1
/// here) that takes back the home chain's registration and home leg after both remote legs
/// were paid: every node reopens the incident, the same draw (same hash, so the paid remote
/// legs stay valid and are not paid again) is registered again, the home leg is paid once on
/// the new chain, every node reports the deep reorg, and the incident closes again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reorg_deeper_than_the_confirmation_depth_registers_the_same_draw_again() {
    use alloy::providers::Provider;
    use alloy::providers::ext::AnvilApi;
    use alloy::rpc::types::Filter;
    use alloy::rpc::types::anvil::ReorgOptions;
    use alloy::sol_types::SolEvent;
    use backstop_contracts::bindings::BackstopVault::DrawRegistered;

    let net = deploy_fast_refill().await;
    let root = tempfile::tempdir().unwrap();
    let mut nodes = configure(root.path(), &net, &Options::default());
    start_all(&mut nodes, &net).await;
    cover(&net, &nodes, &[0, 1, 2, 3], 0, U256::from(16_100 * UNIT)).await;

    let m = net.member(0);
    let home = net.chain(m.spec.home_chain_id);
    let hash = home.vault().drawOf(m.spec.id, 0).call().await.unwrap();
    let logs = home
        .provider
        .get_logs(
            &Filter::new()
                .address(home.vault)
                .event_signature(DrawRegistered::SIGNATURE_HASH)
                .from_block(0u64),
        )
        .await
        .unwrap();
    let registered_at = logs[0].block_number.unwrap();
    let recipients = balances(&net, |c| m.spec.recipient_on(c)).await;
    let home_index = CHAINS.iter().position(|c| *c == home.chain_id).unwrap();
    let head = home.head().await;
    assert!(head > registered_at + 1, "the registration is confirmed");
    home.provider
        .anvil_reorg(ReorgOptions {
            depth: head - registered_at + 1,
            tx_block_pairs: vec![],
        })
        .await
        .unwrap();
    let reorged = Instant::now();
    assert!(
        home.vault()
            .drawOf(m.spec.id, 0)
            .call()
            .await
            .unwrap()
            .is_zero()
    );
    let taken = recipients[home_index] - home.balance_of(m.spec.recipient_on(home.chain_id)).await;
    assert!(!taken.is_zero(), "the reorg took back the home leg");

    wait_for(
        "the same draw registered again",
        &nodes,
        Duration::from_secs(90),
        || async { home.vault().drawOf(m.spec.id, 0).call().await.unwrap() == hash },
    )
    .await;
    wait_for(
        "every node to report the deep reorg and close the incident again",
        &nodes,
        Duration::from_secs(60),
        || async {
            for n in &nodes {
                let Some(inc) = incidents(n).await.into_iter().find(|x| x.seq == 0) else {
                    return false;
                };
                let reopened = inc
                    .timeline
                    .iter()
                    .any(|e| e.what.contains("deep reorg") && e.what.contains("reopened"));
                if !reopened || inc.phase != IncidentPhase::Closed as i32 {
                    return false;
                }
                let mut c = backstop_api::client::client(&n.api).await.unwrap();
                let chains = c
                    .list_chains(backstop_api::proto::ListChainsRequest {})
                    .await
                    .unwrap()
                    .into_inner()
                    .chains;
                if !chains
                    .iter()
                    .any(|ch| ch.chain_id == home.chain_id && ch.deep_reorgs >= 1)
                {
                    return false;
                }
            }
            true
        },
    )
    .await;
    let again = home
        .provider
        .get_logs(
            &Filter::new()
                .address(home.vault)
                .event_signature(DrawRegistered::SIGNATURE_HASH)
                .from_block(0u64),
        )
        .await
        .unwrap();
    assert_eq!(again.len(), 1, "one registration on the new chain");
    assert_ne!(
        again[0].transaction_hash, logs[0].transaction_hash,
        "registered again by a node, not replayed by the chain"
    );
    eprintln!(
        "deep reorg of {} blocks: the draw registered again in block {:?} after {:.2} s",
        head - registered_at + 1,
        again[0].block_number,
        reorged.elapsed().as_secs_f64()
    );
    // Paid once each: the home leg again on the new chain, the remote legs not again.
    let after = balances(&net, |c| m.spec.recipient_on(c)).await;
    assert_eq!(
        after, recipients,
        "every recipient holds exactly its leg, once"
    );
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
    let nodes = configure(root.path(), &net, &Options::default());
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
            // The consortium's thresholds are consistent, but the vault has other guardians
            // in place of node-2's and node-3's: not one key rotated, which a node follows.
            good.replace(
                &net.keys[3].address().to_string(),
                &Address::repeat_byte(0x42).to_string(),
            )
            .replace(
                &net.keys[2].address().to_string(),
                &Address::repeat_byte(0x43).to_string(),
            ),
            &["guardian set", "31337", "one key replaced"],
        ),
    ];
    // The guardian key in a keystore opened with the wrong password, and in a token that
    // is not there: the node refuses to start, naming the key.
    let keystore = nodes[0].dir.join("guardian.json");
    backstop_signer::keystore::create(&keystore, &net.keys[0], b"the right password").unwrap();
    common::write_secret(&nodes[0].dir.join("guardian.password"), "not the password");
    let plain = "signer_key_file = \"signer.key\"\n";
    let mut cases = cases;
    cases.push((
        good.replace(
            plain,
            "signer_keystore_file = \"guardian.json\"\nsigner_keystore_password_file = \"guardian.password\"\n",
        ),
        &["node.signer_keystore_file", "guardian.json", "wrong password"],
    ));
    cases.push((
        good.replace(plain, "").replace(
            "\n[network]",
            "\n[node.signer_pkcs11]\nmodule = \"/nonexistent/libpkcs11.so\"\ntoken = \"backstop\"\nkey = \"guardian\"\npin_file = \"guardian.password\"\n\n[network]",
        ),
        &["node.signer_pkcs11", "/nonexistent/libpkcs11.so"],
    ));
    for (text, expected) in cases {
        assert_ne!(text, good, "each case changes the config");
        std::fs::write(&path, text).unwrap();
        let (ok, out) = run_to_exit(&nodes[0]);
        assert!(!ok, "the node must refuse this config; it printed:\n{out}");
        for e in expected {
            assert!(out.contains(e), "{e:?} missing from:\n{out}");
        }
    }
}

/// libfaketime's preload library (Debian's path).
const FAKETIME_LIB: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

/// The status `GetStatus` answers for `node` (`None` while it does not answer).
async fn status(node: &Node) -> Option<backstop_api::proto::NodeStatus> {
    let mut c = backstop_api::client::client(&node.api).await.ok()?;
    c.get_status(backstop_api::proto::GetStatusRequest {})
        .await
        .ok()?
        .into_inner()
        .status
}

/// Waits (up to 30 s) until node `i`'s status satisfies `pred`, and returns that status.
async fn status_when(
    nodes: &[Node],
    i: usize,
    what: &str,
    pred: impl Fn(&backstop_api::proto::NodeStatus) -> bool,
) -> backstop_api::proto::NodeStatus {
    wait_for(what, nodes, Duration::from_secs(30), || async {
        status(&nodes[i]).await.is_some_and(|s| pred(&s))
    })
    .await;
    status(&nodes[i]).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clock_that_disagrees_with_the_chains_is_reported() {
    use alloy::providers::ext::AnvilApi;

    let params = ConsortiumParams {
        mine_every: Some(Duration::from_millis(500)),
        ..Default::default()
    };
    let net = deploy_consortium(&CHAINS, N, &params).await;
    let root = tempfile::tempdir().unwrap();
    let mut nodes = configure(root.path(), &net, &Options::default());
    // node-3's clock runs 10 minutes ahead (libfaketime, installed by
    // testnet/install-system-deps; timers keep the real monotonic clock).
    assert!(
        Path::new(FAKETIME_LIB).exists(),
        "{FAKETIME_LIB} is missing: run testnet/install-system-deps (apt-get install libfaketime)"
    );
    nodes[3].env = vec![
        ("LD_PRELOAD".into(), FAKETIME_LIB.into()),
        ("FAKETIME".into(), "+600s".into()),
        ("FAKETIME_DONT_FAKE_MONOTONIC".into(), "1".into()),
        ("FAKETIME_DONT_RESET".into(), "1".into()),
    ];
    start_all(&mut nodes, &net).await;

    // Ahead by more than a pinned block's maximum age: every block looks stale to it, it
    // attests nothing, and it says so.
    let s = status_when(&nodes, 3, "node-3's clock warning", |s| {
        s.clock_warning.contains("ahead of every chain")
    })
    .await;
    let offset = s.clock_offset_ms.unwrap();
    assert!((590_000..615_000).contains(&offset), "offset {offset} ms");
    assert!(
        s.clock_warning.contains("attests nothing"),
        "{}",
        s.clock_warning
    );
    assert!(
        nodes[3].log().contains("ahead of every chain"),
        "{}",
        nodes[3].log_tail()
    );
    // A gap: the others pay it while node-3 refuses every pinned block as stale.
    let (assets, _) = solvency(&net, 0).await;
    net.set_solvency(0, assets, assets + U256::from(1_000 * UNIT))
        .await;
    let m = net.member(0);
    let home = net.chain(m.spec.home_chain_id);
    wait_for(
        "a draw paid without node-3",
        &nodes,
        Duration::from_secs(60),
        || async {
            !home
                .vault()
                .drawOf(m.spec.id, 0)
                .call()
                .await
                .unwrap()
                .is_zero()
        },
    )
    .await;

    // In agreement: an offset of a block or two, no warning.
    let s = status_when(&nodes, 0, "a clock offset", |s| s.clock_offset_ms.is_some()).await;
    let offset = s.clock_offset_ms.unwrap();
    assert!((-15_000..15_000).contains(&offset), "offset {offset} ms");
    assert!(s.clock_warning.is_empty(), "{}", s.clock_warning);

    // Every chain's time jumps 10 minutes ahead: to the nodes, their clocks are behind.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    for chain in &net.chains {
        chain.provider.anvil_set_time(now + 600).await.unwrap();
    }
    let s = status_when(&nodes, 0, "a clock warning", |s| {
        s.clock_warning.contains("behind the chains")
    })
    .await;
    assert!(s.clock_offset_ms.unwrap() <= -590_000, "{s:?}");
    assert!(
        s.ready,
        "a skewed node is still up; the warning says what is wrong"
    );
    let log = nodes[0].log();
    assert!(
        log.contains("behind the chains"),
        "the node logs the warning:\n{log}"
    );
}
