//! Benchmarks of the gossip layer, printing numbers (no timing assertions):
//!
//! 1. Envelopes validated per second on one core, one by one (strict ed25519) and in
//!    batches (ed25519 batch verification), against a 7-node consortium.
//! 2. Publish -> delivered at all other nodes of a 7-node mesh on 127.0.0.1 (TCP):
//!    p50, p99 and max over sequential publications from every node in turn.
//!
//! Run: `cargo bench -p backstop-p2p --bench gossip` (release) or add `--profile dev`.
//! `BENCH_ENVELOPES` and `BENCH_PUBLISHES` change the sample sizes.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy::primitives::{Address, B256};
use backstop_p2p::envelope;
use backstop_p2p::network::{self, NetworkHandle};
use backstop_p2p::validation::{Origin, ValidationConfig, Validator, Verdict};
use backstop_p2p::{MemoryCatchUpStore, NetworkConfig, PeerAddr};
use backstop_types::time::now_ms;
use backstop_types::{Consortium, Message, NodeInfo, Signal, SignalKind};
use ed25519_dalek::SigningKey;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn keys(n: u8) -> Vec<SigningKey> {
    (1..=n).map(|i| SigningKey::from_bytes(&[i; 32])).collect()
}

fn consortium(keys: &[SigningKey]) -> Arc<Consortium> {
    Arc::new(
        Consortium::new(
            keys.iter()
                .enumerate()
                .map(|(i, k)| NodeInfo {
                    identity: k.verifying_key().to_bytes(),
                    guardian: Address::repeat_byte(i as u8 + 1),
                })
                .collect(),
        )
        .unwrap(),
    )
}

fn signal(i: u64) -> Message {
    Message::Signal(Signal {
        kind: SignalKind::OracleDeviation,
        subject: B256::from(alloy::primitives::U256::from(i)),
        observed_at_ms: i,
        evidence: vec![7; 64].into(),
    })
}

/// CPU time this thread has used (utime + stime from /proc, 10 ms ticks): the machine
/// is shared, so wall time alone under-reports what one core does.
fn thread_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // Fields after the command name start at field 3; utime and stime are 14 and 15.
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|i| fields.get(*i).and_then(|f| f.parse::<u64>().ok()))
        .sum();
    static HZ: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let hz = *HZ.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse::<u64>().ok())
            .unwrap_or(100)
    });
    Duration::from_secs_f64(ticks as f64 / hz as f64)
}

fn report(label: &str, n: usize, avg_bytes: usize, wall: Duration, cpu: Duration) {
    println!(
        "{label:<20} {n} envelopes ({avg_bytes} B avg): {:>7.0}/s wall ({:.1} us each), {:>7.0}/s per CPU-second",
        n as f64 / wall.as_secs_f64(),
        wall.as_secs_f64() * 1e6 / n as f64,
        n as f64 / cpu.as_secs_f64().max(1e-9),
    );
}

fn validation_throughput() {
    thread_cpu();
    let n = env_usize("BENCH_ENVELOPES", 50_000);
    let keys = keys(7);
    let c = consortium(&keys);
    let now = now_ms();
    let envelopes: Vec<(Origin, Vec<u8>)> = (0..n)
        .map(|i| {
            let k = i % keys.len();
            let signer = c
                .index_of_identity(&keys[k].verifying_key().to_bytes())
                .map(usize::from);
            let forwarder = Some((signer.unwrap() + 1) % keys.len());
            (
                Origin::Gossip {
                    forwarder,
                    source: signer,
                },
                envelope::sign(&keys[k], now, &signal(i as u64)),
            )
        })
        .collect();
    let bytes: usize = envelopes.iter().map(|(_, b)| b.len()).sum();
    let config = ValidationConfig {
        seen_capacity: n,
        rate_burst: u32::MAX,
        ..Default::default()
    };

    let mut v = Validator::new(c.clone(), config.clone());
    let (t, cpu) = (Instant::now(), thread_cpu());
    let accepted = envelopes
        .iter()
        .filter(|(o, b)| matches!(v.validate(now, *o, b), Verdict::Accept(_)))
        .count();
    let (single, single_cpu) = (t.elapsed(), thread_cpu() - cpu);
    assert_eq!(accepted, n);

    for batch in [16usize, 64, 256] {
        let mut v = Validator::new(c.clone(), config.clone());
        let (t, cpu) = (Instant::now(), thread_cpu());
        let mut accepted = 0;
        for chunk in envelopes.chunks(batch) {
            let items: Vec<(Origin, &[u8])> =
                chunk.iter().map(|(o, b)| (*o, b.as_slice())).collect();
            accepted += v
                .validate_batch(now, &items)
                .iter()
                .filter(|x| matches!(x, Verdict::Accept(_)))
                .count();
        }
        let (elapsed, used) = (t.elapsed(), thread_cpu() - cpu);
        assert_eq!(accepted, n);
        report(
            &format!("validate batch={batch}"),
            n,
            bytes / n,
            elapsed,
            used,
        );
    }
    report("validate single", n, bytes / n, single, single_cpu);
}

async fn start(key: &SigningKey, c: Arc<Consortium>, peers: Vec<PeerAddr>) -> NetworkHandle {
    let mut config = NetworkConfig::new(
        key.clone(),
        c,
        vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()],
        peers,
        Arc::new(MemoryCatchUpStore::new(1)),
    );
    config.heartbeat = Duration::from_millis(200);
    config.redial_min = Duration::from_millis(100);
    let (h, _task) = network::spawn(config).await.unwrap();
    h
}

async fn delivery_latency() {
    let publishes = env_usize("BENCH_PUBLISHES", 700);
    let keys = keys(7);
    let c = consortium(&keys);
    let mut nodes: Vec<NetworkHandle> = Vec::new();
    for k in &keys {
        let peers = nodes
            .iter()
            .map(|h| PeerAddr {
                peer: h.local_peer_id(),
                addrs: h.listen_addrs().to_vec(),
            })
            .collect();
        nodes.push(start(k, c.clone(), peers).await);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut ready = true;
        for h in &nodes {
            ready &= h.gossip_peers().await.unwrap().len() == nodes.len() - 1;
        }
        if ready {
            break;
        }
        assert!(Instant::now() < deadline, "mesh did not form");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let mut subs: Vec<_> = nodes.iter().map(|h| h.subscribe()).collect();
    let mut samples = Vec::with_capacity(publishes);
    for i in 0..publishes {
        let from = i % nodes.len();
        let t = Instant::now();
        let id = nodes[from]
            .publish(signal(1_000_000 + i as u64))
            .await
            .unwrap();
        for (j, sub) in subs.iter_mut().enumerate() {
            if j == from {
                continue;
            }
            loop {
                let m = tokio::time::timeout(Duration::from_secs(10), sub.recv())
                    .await
                    .expect("delivery timed out")
                    .unwrap();
                if m.content_id == id {
                    break;
                }
            }
        }
        samples.push(t.elapsed());
    }
    samples.sort();
    let pct =
        |p: f64| samples[((samples.len() as f64 * p).ceil() as usize).clamp(1, samples.len()) - 1];
    println!(
        "publish -> delivered at all 6 other nodes (7-node TCP mesh, {publishes} publications): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        samples[samples.len() - 1].as_secs_f64() * 1e3,
    );
    for h in &nodes {
        h.shutdown().await;
    }
}

fn main() {
    validation_throughput();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(delivery_latency());
}
