//! Incident reports end to end: three anvil chains, four `backstop` node processes. A gap
//! is covered across the three vaults; `backstop report` builds the incident's report from
//! two nodes, `backstop verify-report` re-derives it from the chains and accepts it, and
//! refuses a report with one amount, one signer or one transaction hash changed (naming
//! it), a file that is not a report, and an RPC that is down (named as such).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use alloy::primitives::{Address, B256, U256};
use backstop_api::proto::{Incident, IncidentPhase};
use backstop_contracts::testing::UNIT;
use backstop_node::report::{self, Report};
use common::{Node, Options, configure, deploy_fast_refill, incidents, solvency, start_all};

fn backstop(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_backstop"))
        .args(args)
        .output()
        .expect("run backstop")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A failure explained in plain lines (its `Debug` is the text itself, so the test's
/// output ends with it).
struct Diagnosis(String);

impl std::fmt::Debug for Diagnosis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a draw may have stayed on its home vault: the incident's timeline (each proposal
/// with the blocks it pinned) and the lines of every node's log about chains or proposals.
fn home_only(x: &Incident, nodes: &[Node]) -> String {
    let mut out = format!("a draw with {} leg(s): {:?}\n", x.legs.len(), x.legs);
    for t in &x.timeline {
        out.push_str(&format!("  {}\n", t.what));
    }
    let keys = [
        "halt",
        "quarantin",
        "reorg",
        "propos",
        "refus",
        "snapshot",
        "WARN",
    ];
    for n in nodes {
        for line in n
            .log()
            .lines()
            .filter(|l| keys.iter().any(|k| l.contains(k)))
            .take(20)
        {
            out.push_str(&format!("  {}: {line}\n", n.name));
        }
    }
    out
}

/// Verifies `r` in-process; the fields of its mismatches.
async fn mismatched_fields(r: &Report, rpcs: &BTreeMap<u64, String>) -> Vec<String> {
    let v = report::verify(r, rpcs).await.unwrap();
    v.mismatches.into_iter().map(|m| m.field).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paid_incident_report_verifies_and_a_tampered_one_does_not() -> Result<(), Diagnosis> {
    let net = deploy_fast_refill().await;
    let root = tempfile::tempdir().unwrap();
    let mut nodes = configure(root.path(), &net, &Options::default());
    start_all(&mut nodes, &net).await;

    // A gap the three vaults cover together; the member books the draw once registered.
    let m = net.member(0);
    let home = net.chain(m.spec.home_chain_id);
    let gap = U256::from(16_100 * UNIT);
    let (assets, _) = solvency(&net, 0).await;
    net.set_solvency(0, assets, assets + gap).await;
    let started = Instant::now();
    while home
        .vault()
        .drawOf(m.spec.id, 0)
        .call()
        .await
        .unwrap()
        .is_zero()
    {
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "no draw registered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    net.set_books(0, (assets + gap, assets + gap), 1).await;
    // Every leg paid on nodes 0 and 1; a draw that closed on its home vault alone never
    // becomes cross-chain, and the test says why at once.
    let started = Instant::now();
    loop {
        let mut paid = true;
        for n in &nodes[..2] {
            let Some(x) = incidents(n).await.into_iter().find(|x| x.seq == 0) else {
                paid = false;
                continue;
            };
            if x.phase == IncidentPhase::Closed as i32 && x.legs.len() < 2 {
                return Err(Diagnosis(home_only(&x, &nodes)));
            }
            paid &= x.phase == IncidentPhase::Closed as i32
                && x.legs.iter().all(|l| !l.tx_hash.is_empty());
        }
        if paid {
            break;
        }
        if started.elapsed() > Duration::from_secs(90) {
            let tails: Vec<String> = nodes
                .iter()
                .map(|n| format!("----- {} -----\n{}", n.name, n.log_tail()))
                .collect();
            return Err(Diagnosis(format!(
                "incident not closed with every leg paid on nodes 0 and 1 after 90 s\n{}",
                tails.join("\n")
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The report, from two nodes, as JSON, Markdown and HTML.
    let id = format!("{}:0", m.spec.id);
    let api0 = nodes[0].api.as_str();
    let api1 = nodes[1].api.as_str();
    let json = backstop(&[
        "report", &id, "--api", api0, "--api", api1, "--format", "json",
    ]);
    assert!(json.status.success(), "{}", text(&json));
    let good = report::parse(&json.stdout).unwrap();
    let draw = good.draw.clone().expect("a registered draw");
    // Cross-chain: the home vault's full bucket and at least one remote leg (the proposer
    // pins what it has read; a node only just started may not have a third chain's block).
    assert!(draw.legs.len() >= 2, "{:?}", draw.legs);
    assert_eq!(draw.gap, gap);
    assert_eq!(good.nodes.len(), 2);
    assert!(good.timeline.iter().any(|s| s.node.starts_with("node-0")));
    assert!(good.timeline.iter().any(|s| s.node.starts_with("node-1")));
    assert!(!good.pinned.is_empty(), "the pinned blocks of the draw");
    assert!(good.signers.len() >= 3, "{:?}", good.signers);
    let md = backstop(&["report", &id, "--api", api0, "--format", "md"]);
    assert!(text(&md).contains("## Timeline"), "{}", text(&md));
    let html = backstop(&["report", "--since", "1h", "--api", api0, "--format", "html"]);
    assert!(text(&html).contains(&id), "--since lists the incident");

    let dir = root.path();
    let write = |name: &str, r: &Report| {
        let p = dir.join(name);
        std::fs::write(&p, serde_json::to_string_pretty(r).unwrap()).unwrap();
        p.to_string_lossy().into_owned()
    };
    let rpcs: BTreeMap<u64, String> = net.chains.iter().map(|c| (c.chain_id, c.http())).collect();
    let rpc_args: Vec<String> = rpcs
        .iter()
        .flat_map(|(c, u)| ["--rpc".to_string(), format!("{c}={u}")])
        .collect();
    let verify = |file: &str, rpc_args: &[String]| {
        let mut args = vec!["verify-report", file];
        args.extend(rpc_args.iter().map(String::as_str));
        backstop(&args)
    };

    // The untouched report verifies.
    let out = verify(&write("good.json", &good), &rpc_args);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("verified"), "{}", text(&out));
    eprintln!("{}", text(&out).trim());

    // One amount changed: exit 1, naming it.
    let mut r = good.clone();
    r.draw.as_mut().unwrap().amount += U256::from(1);
    let out = verify(&write("amount.json", &r), &rpc_args);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("mismatch: draw.amount"),
        "{}",
        text(&out)
    );
    eprintln!("{}", text(&out).trim());

    // One signer changed.
    let mut r = good.clone();
    r.signers[0] = Address::repeat_byte(0x11);
    let fields = mismatched_fields(&r, &rpcs).await;
    assert!(fields.iter().any(|f| f == "signers"), "{fields:?}");

    // One transaction hash changed (a remote leg's).
    let mut r = good.clone();
    let remote = r
        .draw
        .as_mut()
        .unwrap()
        .legs
        .iter_mut()
        .find(|l| l.chain_id != draw.registration.chain_id)
        .unwrap();
    remote.tx_hash = Some(B256::repeat_byte(0x22));
    let chain = remote.chain_id;
    let fields = mismatched_fields(&r, &rpcs).await;
    assert!(
        fields.contains(&format!("draw.legs[chain {chain}].tx_hash")),
        "{fields:?}"
    );

    // The draw hash and the trigger gap changed.
    let mut r = good.clone();
    r.draw.as_mut().unwrap().hash = B256::repeat_byte(0x33);
    assert!(
        mismatched_fields(&r, &rpcs)
            .await
            .contains(&"draw.hash".to_string())
    );
    let mut r = good.clone();
    r.draw.as_mut().unwrap().gap -= U256::from(1);
    let fields = mismatched_fields(&r, &rpcs).await;
    assert!(
        fields.iter().any(|f| f.starts_with("draw.gap (solvency()")),
        "{fields:?}"
    );

    // Not a report: exit 2 with a clear error.
    let good_text = std::fs::read_to_string(dir.join("good.json")).unwrap();
    for (name, body, says) in [
        ("wrong.json", "{\"hello\": 1}".to_string(), "not a report"),
        (
            "cut.json",
            good_text[..good_text.len() / 2].to_string(),
            "not a report",
        ),
        (
            "v2.json",
            good_text.replacen("\"version\": 1", "\"version\": 2", 1),
            "unknown report version 2",
        ),
    ] {
        let p = dir.join(name);
        std::fs::write(&p, body).unwrap();
        let out = verify(p.to_str().unwrap(), &rpc_args);
        assert_eq!(out.status.code(), Some(2), "{name}: {}", text(&out));
        assert!(text(&out).contains(says), "{name}: {}", text(&out));
    }

    // An RPC that is down is named, not mistaken for a mismatch.
    let down = format!(
        "http://127.0.0.1:{}",
        backstop_contracts::testing::free_port()
    );
    let mut args = rpc_args.clone();
    let home_arg = format!(
        "{}={}",
        draw.registration.chain_id, rpcs[&draw.registration.chain_id]
    );
    let i = args.iter().position(|a| *a == home_arg).unwrap();
    args[i] = format!("{}={down}", draw.registration.chain_id);
    let out = verify(&dir.join("good.json").to_string_lossy(), &args);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("rpc failed: chain {}", draw.registration.chain_id))
            && text(&out).contains(&down),
        "{}",
        text(&out)
    );
    Ok(())
}
