//! Head seen → pinned state read of 3 members and 3 vaults, on a loopback anvil.
//!
//! One anvil chain carries three vault sets (token, vault guarded by four keys, member,
//! oracle). For each of `ITERATIONS` blocks the bench mines a block over HTTP, waits for its
//! header on a websocket `newHeads` subscription, and measures from the moment the header
//! is seen to the moment every pinned read is done: for each vault its full
//! [`VaultState`](backstop_chain::reads::VaultState) (10 calls, cross-checked) and for each
//! member its `solvency()` and its vault record (3 calls), all pinned to the head's hash.
//! Prints p50, p90, p99 and max. Reads go over HTTP; `TRANSPORT=ws` sends them over the
//! websocket instead (much slower: alloy's websocket transport leaves Nagle's algorithm on).
//! `ITERATIONS=n` changes the sample count (default 300).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use alloy::providers::Provider;
use alloy::providers::ext::AnvilApi;
use backstop_chain::reads::Reader;
use backstop_chain::rpc::validate_header;
use common::*;
use futures::StreamExt;

const ITERATIONS: usize = 300;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let iterations = std::env::var("ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(ITERATIONS);
    let keys = guardian_keys(4);
    let anvil = spawn_anvil(31337, None);
    let provider = deployer_provider(&anvil);
    let depositor = anvil.addresses()[0];
    let mut sets = Vec::new();
    for i in 0..3u64 {
        sets.push(deploy_contracts(&provider, depositor, &keys, (10_000 + i) * UNIT).await);
    }
    let chain = Chain {
        token: sets[0].token,
        vault: sets[0].vault,
        member_contract: sets[0].member_contract,
        oracle: sets[0].oracle,
        chain_id: 31337,
        provider: provider.clone(),
        anvil,
    };
    for s in &sets {
        let id = backstop_contracts::eip712::VaultId {
            chain_id: 31337,
            address: s.vault,
        };
        set_member_on(&provider, id, &keys, 31337).await;
    }
    // Heads always arrive on the websocket subscription; reads go over HTTP (default, the
    // recommended configuration) or over the websocket (TRANSPORT=ws).
    let url = match std::env::var("TRANSPORT").as_deref() {
        Ok("ws") => chain.ws(),
        _ => chain.http(),
    };
    let pool = fast_pool(31337, vec![url.clone()]);
    let reader = Reader::new(&pool);
    let ws = alloy::providers::ProviderBuilder::new()
        .connect(&chain.ws())
        .await
        .unwrap();
    let mut heads = ws.subscribe_blocks().await.unwrap().into_stream();

    let mut samples = Vec::with_capacity(iterations);
    for i in 0..iterations + 10 {
        provider.anvil_mine(Some(1), None).await.unwrap();
        let header = heads.next().await.unwrap();
        let seen = Instant::now();
        let b = validate_header(header.inner.number, &header).unwrap();
        let at = b.pinned(31337);
        let vaults = futures::future::try_join_all(
            sets.iter()
                .map(|s| reader.vault_state(&at, s.vault, s.token)),
        );
        let members = futures::future::try_join_all(sets.iter().map(|s| {
            let reader = &reader;
            let at = &at;
            async move {
                futures::try_join!(
                    reader.solvency(at, s.member_contract),
                    reader.member(at, s.vault, member_id())
                )
            }
        }));
        let (v, m) = futures::try_join!(vaults, members).unwrap();
        let elapsed = seen.elapsed();
        assert_eq!(v.len(), 3);
        assert_eq!(m.len(), 3);
        assert!(m.iter().all(|(_, r)| r.is_some()));
        if i >= 10 {
            samples.push(elapsed); // the first 10 warm up connections
        }
    }
    samples.sort();
    let q = |p: f64| samples[((samples.len() as f64 * p) as usize).min(samples.len() - 1)];
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "head seen -> pinned read of 3 vaults + 3 members ({} samples, 39 eth_calls each, heads on websocket, reads on {url}): p50 {:.0} us, p90 {:.0} us, p99 {:.0} us, max {:.0} us",
        samples.len(),
        us(q(0.50)),
        us(q(0.90)),
        us(q(0.99)),
        us(*samples.last().unwrap()),
    );
}
