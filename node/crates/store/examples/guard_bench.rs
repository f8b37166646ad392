//! Synced sign-guard writes per second on RocksDB (the cost every signature pays).
//!
//! `cargo run -p backstop-store --release --example guard_bench -- [count] [dir]`
//! (dir defaults to a fresh directory under the system temp dir).
use alloy::primitives::{B256, keccak256};
use backstop_agreement::IncidentKey;
use backstop_agreement::state::GuardKey;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let count: u64 = args.get(1).and_then(|c| c.parse().ok()).unwrap_or(2000);
    let dir = match args.get(2) {
        Some(d) => std::path::PathBuf::from(d),
        None => std::env::temp_dir().join(format!("backstop-guard-bench-{}", std::process::id())),
    };
    let mut store = backstop_store::open_node_store(&dir)?;
    let started = Instant::now();
    for i in 0..count {
        let key = GuardKey::Draw {
            key: IncidentKey {
                member: B256::repeat_byte(1),
                seq: i,
            },
            attempt: 0,
        };
        store.guard(key, keccak256(i.to_le_bytes()))?;
    }
    let s = started.elapsed().as_secs_f64();
    println!(
        "{count} synced guard writes in {s:.2} s: {:.0} writes/s, {:.3} ms each ({})",
        count as f64 / s,
        s * 1000.0 / count as f64,
        dir.display()
    );
    drop(store);
    if args.get(2).is_none() {
        std::fs::remove_dir_all(&dir)?;
    }
    Ok(())
}
