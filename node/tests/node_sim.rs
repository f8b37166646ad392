//! The whole node under deterministic simulation (see `backstop_node::sim`): many seeds,
//! each checking the safety invariants and liveness after the heal over the real node core.
//!
//! `BACKSTOP_NODE_SIM_SEED=<n>` replays one seed alone; `BACKSTOP_NODE_SIM_SEEDS=<count>`
//! and `BACKSTOP_NODE_SIM_FIRST=<n>` change the range run by `node_simulation_holds_the_invariants`
//! (`testnet/test` runs it apart, with its output). A soak:
//! `BACKSTOP_NODE_SIM_SEEDS=100000 cargo test --release -p backstop-node --test node_sim -- --nocapture`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use backstop_node::sim;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

#[test]
fn node_simulation_holds_the_invariants() {
    if let Some(seed) = env_u64("BACKSTOP_NODE_SIM_SEED") {
        match sim::run(seed) {
            Ok(r) => {
                println!("{r:#?}");
                println!("node simulation: 1 seeds");
                return;
            }
            Err(e) => panic!("{e}"),
        }
    }
    let first = env_u64("BACKSTOP_NODE_SIM_FIRST").unwrap_or(0);
    let count = env_u64("BACKSTOP_NODE_SIM_SEEDS").unwrap_or(1000);
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(4);
    let started = std::time::Instant::now();
    let (reports, failures) = sim::run_many(first, count, threads);
    for e in &failures {
        eprintln!(
            "FAILED {e}\n  replay alone: BACKSTOP_NODE_SIM_SEED={} cargo test -p backstop-node --test node_sim -- --nocapture",
            e.seed
        );
    }
    let sum = |f: &dyn Fn(&sim::Report) -> usize| reports.iter().map(f).sum::<usize>();
    println!(
        "{} seeds ran in {:.1} s: {} with byzantine nodes, {} with crashes ({} lost unsynced \
         writes); {} draws registered, {} legs paid, {} threshold actions executed, {} \
         transactions reverted",
        reports.len() + failures.len(),
        started.elapsed().as_secs_f64(),
        reports.iter().filter(|r| r.byzantine > 0).count(),
        reports.iter().filter(|r| r.crashes > 0).count(),
        reports.iter().filter(|r| r.lost_writes > 0).count(),
        sum(&|r| r.registered),
        sum(&|r| r.legs_paid),
        sum(&|r| r.actions_executed),
        sum(&|r| r.txs_reverted),
    );
    // Runs in which each breaker effect (and lift) executed, and each fault occurred.
    let mut tally: std::collections::BTreeMap<&str, (usize, u64)> = Default::default();
    for r in &reports {
        for (name, n) in &r.tally {
            let e = tally.entry(name).or_default();
            e.0 += usize::from(*n > 0);
            e.1 += n;
        }
    }
    println!("runs (total) with: {tally:?}");
    assert!(
        failures.is_empty(),
        "{} of {count} seeds failed; first: {}",
        failures.len(),
        failures[0]
    );
    assert!(
        sum(&|r| r.registered) > 0,
        "no draw was registered in {count} seeds"
    );
    if count >= 200 {
        assert!(
            reports.iter().any(|r| r.lost_writes > 0),
            "no crash lost an unsynced write"
        );
        // Every row of the recovery table the simulation can reach acts somewhere.
        for name in [
            "feed faults",
            "member alerts",
            "freezes",
            "chain alerts",
            "contagion alerts",
            "alerts cleared",
            "unfreezes",
        ] {
            assert!(
                tally.get(name).is_some_and(|t| t.0 > 0),
                "no run with {name}: {tally:?}"
            );
        }
    }
    println!("node simulation: {count} seeds");
}

#[test]
fn a_seed_replays_bit_for_bit() {
    let a = sim::run(7).expect("seed 7");
    let b = sim::run(7).expect("seed 7 again");
    assert_eq!(a.trace_hash, b.trace_hash);
    assert_eq!(a.events, b.events);
}

/// Replays `BACKSTOP_NODE_SIM_SEED` with the nodes' logs (`RUST_LOG` filters them).
#[test]
#[ignore = "a debugging aid: run with --ignored and BACKSTOP_NODE_SIM_SEED"]
fn replay_with_logs() {
    let Some(seed) = env_u64("BACKSTOP_NODE_SIM_SEED") else {
        return;
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .without_time()
        .with_test_writer()
        .try_init();
    println!("{:#?}", sim::run(seed));
}
