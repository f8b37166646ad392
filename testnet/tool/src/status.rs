//! `status`: the nodes (process, readiness, peers, incidents, signals, breakers), the chains
//! (heads, vaults) and the members (solvency, freezes, alert levels) in readable tables.
//! Every column is read live; what cannot be read is shown as such, never guessed.

use std::fmt::Display;

use anyhow::Result;

use crate::net::{self, Net, chain_subject, pusd};
use crate::state::{Proc, alive};

/// `a/b/c` of the values, one per chain.
fn per_chain<T: Display>(values: &[T]) -> String {
    values
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("/")
}

/// Prints the status of the testnet.
pub async fn status(net: &Net) -> Result<()> {
    let chains = net.chain_ids();
    let order = per_chain(&chains);

    println!("Nodes");
    println!(
        "  {:<8} {:<8} {:<6} {:<6} {:<6} {:<10} {:<8} {:<9} {:<7} API",
        "name", "pid", "alive", "ready", "peers", "incidents", "signals", "breakers", "halted",
    );
    for n in &net.state.nodes {
        let running = Proc::node(n).alive();
        let cols = match net::status(&n.api).await {
            Ok(s) => format!(
                "{:<6} {:<6} {:<10} {:<8} {:<9} {:<7}",
                s.ready,
                format!("{}/{}", s.peers_connected, s.peers_total),
                format!("{} open", s.incidents_open),
                s.signals_active,
                s.breakers_active,
                s.chains_halted
            ),
            Err(_) => format!(
                "{:<6} {:<6} {:<10} {:<8} {:<9} {:<7}",
                "-", "-", "-", "-", "-", "-"
            ),
        };
        println!(
            "  {:<8} {:<8} {:<6} {cols} {}",
            n.name,
            n.pid,
            if running { "yes" } else { "NO" },
            n.api
        );
    }

    println!();
    println!("Chains");
    println!(
        "  {:<7} {:<6} {:<7} {:<8} {:<20} {:<20} {:<7} RPC",
        "chain", "anvil", "head", "age", "vault balance", "can pay now", "paused"
    );
    for c in &net.state.chains {
        let anvil = if alive(c.pid) { "up" } else { "DOWN" };
        let head = net
            .head(c.chain_id)
            .await
            .map_or("-".into(), |h| h.to_string());
        let age = net
            .head_age_s(c.chain_id)
            .await
            .map_or("-".into(), |a| format!("{a} s"));
        let balance = net
            .balance(c.chain_id, c.vault)
            .await
            .map_or("-".into(), pusd);
        let vault = net.vault(c.chain_id)?;
        let available = net::bounded("availableForPayout", vault.availableForPayout().call())
            .await
            .map_or("-".into(), pusd);
        let paused = net::bounded("paused", vault.paused().call())
            .await
            .map_or("-".into(), |p| p.to_string());
        println!(
            "  {:<7} {anvil:<6} {head:<7} {age:<8} {balance:<20} {available:<20} {paused:<7} {}",
            c.chain_id, c.rpc
        );
    }

    println!();
    println!("Members (frozen and alert level on the vaults of chains {order})");
    println!(
        "  {:<9} {:<6} {:<18} {:<18} {:<16} {:<9} {:<10} alert",
        "member", "home", "assets", "liabilities", "gap", "next seq", "frozen"
    );
    for (i, m) in net.state.members.iter().enumerate() {
        let (assets, liabilities, gap) = match net.solvency(i).await {
            Ok((a, l)) => (pusd(a), pusd(l), pusd(l.saturating_sub(a))),
            Err(_) => ("-".into(), "-".into(), "-".into()),
        };
        let seq = net.next_seq(i).await.map_or("-".into(), |s| s.to_string());
        let frozen = net.frozen(i).await.map_or("-".into(), |f| {
            per_chain(
                &f.iter()
                    .map(|&x| if x { "yes" } else { "no" })
                    .collect::<Vec<_>>(),
            )
        });
        let alert = net
            .alert_levels(m.id)
            .await
            .map_or("-".into(), |l| per_chain(&l));
        println!(
            "  {:<9} {:<6} {assets:<18} {liabilities:<18} {gap:<16} {seq:<9} {frozen:<10} {alert}",
            m.name, m.home_chain_id
        );
    }

    println!();
    println!("Chain alerts (alert level of each chain's subject on the vaults of chains {order})");
    for &c in &chains {
        let levels = net
            .alert_levels(chain_subject(c))
            .await
            .map_or("-".into(), |l| per_chain(&l));
        println!("  chain {c}: {levels}");
    }
    Ok(())
}
