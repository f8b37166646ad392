//! Throughput of the agreement core, in process.
//!
//! 1. Certificates per second for n = 4, 7, 10 and 19 (Wormhole's guardian count, t = 13):
//!    every incident goes observation → proposal → n attestations → a certificate at every
//!    node. Every message crosses an envelope that
//!    the sender signs with ed25519 and every receiver verifies (ed25519-dalek 3); the
//!    machines sign with secp256k1 and verify every attestation they count. Stores are
//!    in memory (the RocksDB sign-guard's synced write is measured in `backstop-store`).
//! 2. Simulated seeds per second (the deterministic simulation, in-memory stores).
//!
//! `cargo bench -p backstop-agreement --bench certificates` (release profile; prints the
//! machine's load average before and after, since the rates depend on it)
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use alloy::primitives::{Address, B256, U256, keccak256};
use alloy::signers::local::PrivateKeySigner;
use backstop_agreement::codec::{decode_message, encode_message};
use backstop_agreement::kv::MemoryKv;
use backstop_agreement::machine::{StateView, ViewError};
use backstop_agreement::state::NodeStore;
use backstop_agreement::{
    Config, Consortium, Event, GapObservation, IncidentKey, Machine, NodeIndex, NodeInfo, Output,
    PinnedBlock, ThresholdAction, sim,
};
use backstop_contracts::eip712::{Draw, Leg, VaultId};
use ed25519_dalek::{Signer, SigningKey, Verifier};
use std::time::Instant;

const HOME: VaultId = VaultId {
    chain_id: 1,
    address: Address::repeat_byte(1),
};
const NOW: u64 = 1_700_000_000_000;

#[derive(Clone)]
struct View;

impl StateView for View {
    fn home_vault(&self, _: &B256) -> Option<VaultId> {
        Some(HOME)
    }
    fn propose(
        &mut self,
        key: &IncidentKey,
        _: u64,
    ) -> Result<(Vec<PinnedBlock>, Draw), ViewError> {
        let pinned = vec![PinnedBlock {
            chain_id: 1,
            number: 10,
            hash: B256::repeat_byte(10),
        }];
        let d = self.recompute(key, &pinned, 0)?;
        Ok((pinned, d))
    }
    fn recompute(
        &mut self,
        key: &IncidentKey,
        _: &[PinnedBlock],
        _: u64,
    ) -> Result<Draw, ViewError> {
        Ok(Draw {
            member: key.member,
            seq: key.seq,
            gap: U256::from(1000),
            amount: U256::from(1000),
            legs: vec![Leg {
                chainId: 1,
                vault: HOME.address,
                amount: U256::from(1000),
            }],
            deadline: NOW / 1000 + 600,
            legDeadline: NOW / 1000 + 1200,
        })
    }
    fn covered(&mut self, _rec: &backstop_agreement::state::IncidentRecord, _closed_ms: u64) {}

    fn approve_action(
        &mut self,
        _: &VaultId,
        _: &ThresholdAction,
        _: u64,
    ) -> Result<(), ViewError> {
        Ok(())
    }
}

struct Envelope {
    from: usize,
    bytes: Vec<u8>,
    sig: ed25519_dalek::Signature,
}

fn certificates(n: usize, incidents: usize) -> (f64, u64) {
    let keys: Vec<PrivateKeySigner> = (0..n)
        .map(|i| PrivateKeySigner::from_bytes(&keccak256([i as u8, 1])).unwrap())
        .collect();
    let ed: Vec<SigningKey> = (0..n)
        .map(|i| SigningKey::from_bytes(&keccak256([i as u8, 2]).0))
        .collect();
    let consortium = Consortium::new(
        (0..n)
            .map(|i| NodeInfo {
                identity: ed[i].verifying_key().to_bytes(),
                guardian: keys[i].address(),
            })
            .collect(),
    )
    .unwrap();
    // Sim node i ↔ consortium index.
    let idx: Vec<usize> = keys
        .iter()
        .map(|k| usize::from(consortium.index_of_guardian(&k.address()).unwrap()))
        .collect();
    let mut nodes: Vec<_> = (0..n)
        .map(|i| {
            Machine::restore(
                Config::new(consortium.clone(), idx[i] as NodeIndex),
                View,
                keys[i].clone(),
                NodeStore::open(MemoryKv::new()).unwrap(),
                NOW,
            )
            .unwrap()
        })
        .collect();
    let started = Instant::now();
    for inc in 0..incidents {
        let key = IncidentKey {
            member: keccak256((inc as u64).to_le_bytes()),
            seq: 0,
        };
        let mut queue: Vec<Envelope> = Vec::new();
        for i in 0..n {
            let outs = nodes[i]
                .handle(
                    NOW,
                    Event::Observed(GapObservation {
                        key,
                        home_chain_id: 1,
                        block_number: 10,
                        block_hash: B256::ZERO,
                        assets: U256::ZERO,
                        liabilities: U256::from(1000),
                    }),
                )
                .unwrap();
            for o in outs {
                if let Output::Broadcast(m) = o {
                    let bytes = encode_message(&m);
                    let sig = ed[i].sign(&bytes);
                    queue.push(Envelope {
                        from: i,
                        bytes,
                        sig,
                    });
                }
            }
        }
        while let Some(env) = queue.pop() {
            for to in 0..n {
                if to == env.from {
                    continue;
                }
                ed[env.from]
                    .verifying_key()
                    .verify(&env.bytes, &env.sig)
                    .unwrap();
                let msg = decode_message(&env.bytes).unwrap();
                let outs = nodes[to]
                    .handle(
                        NOW,
                        Event::Received {
                            from: idx[env.from] as NodeIndex,
                            message: msg,
                        },
                    )
                    .unwrap();
                for o in outs {
                    if let Output::Broadcast(m) = o {
                        let bytes = encode_message(&m);
                        let sig = ed[to].sign(&bytes);
                        queue.push(Envelope {
                            from: to,
                            bytes,
                            sig,
                        });
                    }
                }
            }
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let formed: u64 = nodes.iter().map(|m| m.stats().certificates).sum();
    assert_eq!(
        formed,
        (n * incidents) as u64,
        "every node certifies every incident"
    );
    (incidents as f64 / secs, formed)
}

/// The 1-minute load average (Linux), for the report.
fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "unknown".into())
}

fn main() {
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "{profile} build, {cpus} CPUs, 1-minute load average {} before",
        load()
    );
    let quick = std::env::args().any(|a| a == "--quick");
    let incidents = if quick { 20 } else { 200 };
    for n in [4, 7, 10, 19] {
        let (rate, formed) = certificates(n, incidents);
        println!(
            "certificates n={n}: {rate:.1} incidents certified/s ({formed} certificates at {n} nodes, {:.1} node-certificates/s)",
            rate * n as f64
        );
    }
    let seeds = if quick { 20 } else { 200 };
    let started = Instant::now();
    for seed in 0..seeds {
        sim::run(seed).unwrap();
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "simulation: {seeds} seeds in {secs:.2} s, {:.1} seeds/s",
        seeds as f64 / secs
    );
    println!("1-minute load average {} after", load());
}
