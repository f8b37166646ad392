//! `demo`: brings the testnet up if needed, runs the margin-exhaustion drill and tells the
//! story of its incident from a node's timeline, one explained step per entry.

use std::path::Path;

use alloy::primitives::U256;
use anyhow::{Context, Result};
use backstop_api::proto::Incident;

use crate::deploy;
use crate::drills;
use crate::net::{self, Net, amount, pusd};

/// What a timeline entry means, by the start of its text (see the node's journal).
fn explain(what: &str) -> &'static str {
    if what.starts_with("gap of") {
        "Observe: every node reads the member's solvency() at each confirmed head of its home \
         chain; liabilities above assets open the incident (member, seq), seq being the home \
         vault's nextSeq."
    } else if what.starts_with("attempt") {
        "Propose: the attempt's proposer (fixed by a hash of the incident and the attempt) \
         pinned one block per chain and computed the draw: the home vault first, the rest \
         pro rata over the other vaults. Each node re-read the pinned blocks, recomputed the \
         draw, checked its breakers, recorded the digest in its sign-guard and signed it."
    } else if what.starts_with("certificate") {
        "Certify: t signatures of distinct guardians over one EIP-712 Draw digest."
    } else if what.starts_with("registration sent") {
        "Submit: this node, holding the certificate, is the attempt's designated submitter (the \
         others follow after growing delays only if it stalls) and sent registerDraw."
    } else if what.starts_with("registered") {
        "Register: the designated submitter called registerDraw on the home vault, which takes \
         exactly one draw per (member, seq) and paid the home leg in the same transaction."
    } else if what.starts_with("leg of") {
        "Release: once the registration was final, the nodes signed this leg's LegRelease and a \
         submitter called releaseLeg on that chain's vault: the bridging transaction."
    } else if what.starts_with("closed") {
        "Close: every leg executed (the member has booked the payout, its gap is gone)."
    } else if what.starts_with("restored") {
        "Restart: the node reloaded the incident from its store."
    } else if what.starts_with("reopened") {
        "Reopen: the gap came back after the incident had resolved without a draw."
    } else {
        ""
    }
}

/// `HH:MM:SS.mmm` (UTC) of a time in ms since the epoch.
fn clock(ms: u64) -> String {
    let s = ms / 1000 % 86_400;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        s / 3600,
        s / 60 % 60,
        s % 60,
        ms % 1000
    )
}

/// `what` with its raw amounts (long integers) shown in pool-token units.
fn readable(what: &str) -> String {
    what.split(' ')
        .map(|w| match w.parse::<U256>() {
            Ok(raw) if w.len() >= 7 && w.bytes().all(|b| b.is_ascii_digit()) => pusd(raw),
            _ => w.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The node names in the agreement core's order (by ed25519 public key): the log says
/// "node K" for the K-th of them.
fn core_order(net: &Net) -> Vec<String> {
    let mut keyed: Vec<([u8; 32], String)> = net
        .state
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            (
                deploy::identity(i).verifying_key().to_bytes(),
                n.name.clone(),
            )
        })
        .collect();
    keyed.sort();
    keyed.into_iter().map(|(_, name)| name).collect()
}

/// `text` with "node K" followed by the node's name.
fn name_nodes(text: &str, order: &[String]) -> String {
    let mut words: Vec<String> = text.split(' ').map(str::to_owned).collect();
    for i in 1..words.len() {
        if words[i - 1] == "node"
            && let Ok(k) = words[i].parse::<usize>()
            && let Some(name) = order.get(k)
        {
            words[i] = format!("{k} ({name})");
        }
    }
    words.join(" ")
}

/// Prints the incident's timeline, merged from every node's record (each step at the
/// first node that recorded it), with an explanation of each step.
pub fn print_timeline(net: &Net, records: &[(String, Incident)], member: &str) -> Result<()> {
    let Some((_, inc)) = records.first() else {
        return Ok(());
    };
    let order = core_order(net);
    println!();
    println!("Incident {} of {member}:", inc.id);
    println!(
        "  gap {}, drawn {}, uncovered {}, phase {}",
        pusd(amount(&inc.gap)?),
        pusd(amount(&inc.draw_amount)?),
        pusd(amount(&inc.uncovered_amount)?),
        net::phase_name(inc)
    );
    println!(
        "  Its timeline, merged from the {} nodes' records (GetIncident); each step is shown at the first node that recorded it:",
        records.len()
    );
    let mut steps: Vec<(u64, Option<u64>, String, String)> = Vec::new();
    for (node, inc) in records {
        for e in &inc.timeline {
            match steps.iter_mut().find(|s| s.3 == e.what) {
                Some(s) if s.0 <= e.timestamp_ms => {}
                Some(s) => *s = (e.timestamp_ms, e.block_number, node.clone(), e.what.clone()),
                None => steps.push((e.timestamp_ms, e.block_number, node.clone(), e.what.clone())),
            }
        }
    }
    // By time; a close recorded in the same millisecond as a leg comes after it.
    steps.sort_by_key(|s| (s.0, s.3.starts_with("closed"), s.1));
    let start = steps.first().map_or(0, |s| s.0);
    for (at, block, node, what) in &steps {
        let block = block.map_or(String::new(), |b| format!("block {b}"));
        println!(
            "  {} (+{:>6.3} s) {node:<7} {block:<10} {}",
            clock(*at),
            at.saturating_sub(start) as f64 / 1000.0,
            name_nodes(&readable(what), &order)
        );
        let why = explain(what);
        if !why.is_empty() {
            println!("      -> {why}");
        }
    }
    if !steps.iter().any(|s| s.3.starts_with("gap of")) {
        println!(
            "  (No node's record has the \"gap of ... seen\" step: a node journals it only when its \
             own observation of the gap comes before the draw proposal, and here the proposal \
             came first on every node. The gap was there: the drill opened it just before.)"
        );
    }
    println!("  Legs:");
    for l in &inc.legs {
        println!(
            "    chain {} vault {}: {} in {}",
            l.chain_id,
            l.vault,
            pusd(amount(&l.amount)?),
            l.tx_hash
        );
    }
    Ok(())
}

/// Runs the demo; returns whether the drill passed.
pub async fn demo(dir: &Path, backstop: &Path, down_after: bool) -> Result<bool> {
    if !deploy::is_up(dir)? {
        deploy::up(dir, 4, backstop).await?;
    } else {
        println!("The testnet is already up (testnet/status shows it).");
    }
    let mut net = Net::open(dir)?;
    let outcome = drills::run(&mut net, "margin-exhaustion").await?;
    if let Some((m, seq)) = outcome.incident {
        let member = net.member(m)?.clone();
        let node = net.node(0)?.clone();
        let mut records = Vec::new();
        for n in &net.state.nodes {
            if let Some(inc) = net::incident(&n.api, member.id, seq).await? {
                records.push((n.name.clone(), inc));
            }
        }
        let inc = records
            .first()
            .map(|(_, i)| i.clone())
            .context("no node knows the demo's incident")?;
        print_timeline(&net, &records, &member.name)?;
        println!();
        println!("Explore:");
        let bin = net.state.backstop.display();
        println!("  {bin} incident {} --api {}", inc.id, node.api);
        println!("  {bin} incidents --api {}", node.api);
        println!("  testnet/status");
        println!("  testnet/drill all          every crisis drill, one after another");
    }
    if down_after {
        deploy::down(dir)?;
    } else {
        println!("  testnet/down               stop the testnet");
    }
    Ok(outcome.passed)
}
