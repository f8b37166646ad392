//! The deterministic simulation: many seeds, each checking the safety invariants and
//! liveness after the heal (see `backstop_agreement::sim`), and the determinism of the trace.
//!
//! `BACKSTOP_SIM_SEED=<n>` replays one seed alone; `BACKSTOP_SIM_SEEDS=<count>` and
//! `BACKSTOP_SIM_FIRST=<n>` change the range run by `many_seeds_hold_the_invariants`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use backstop_agreement::sim;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

#[test]
fn many_seeds_hold_the_invariants() {
    if let Some(seed) = env_u64("BACKSTOP_SIM_SEED") {
        match sim::run(seed) {
            Ok(r) => {
                println!("{r:#?}");
                println!("1 seeds ok");
                return;
            }
            Err(e) => panic!("{e}"),
        }
    }
    let first = env_u64("BACKSTOP_SIM_FIRST").unwrap_or(0);
    let count = env_u64("BACKSTOP_SIM_SEEDS").unwrap_or(1000);
    let threads = env_u64("BACKSTOP_SIM_THREADS").map_or_else(
        || {
            std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .min(4)
        },
        |t| t as usize,
    );
    let started = std::time::Instant::now();
    let (reports, failures) = sim::run_many(first, count, threads);
    let (mut byz, mut crashes, mut registered, mut legs, mut actions) = (0, 0, 0, 0, 0);
    let (mut applied, mut reverted, mut sizes) = (0, 0, [0usize; 11]);
    for r in &reports {
        byz += usize::from(r.byzantine > 0);
        crashes += usize::from(r.crashes > 0);
        registered += r.registered;
        legs += r.legs_paid;
        actions += r.actions_executed;
        applied += r.txs_applied;
        reverted += r.txs_reverted;
        sizes[r.n] += 1;
    }
    for e in &failures {
        eprintln!(
            "FAILED {e}\n  replay alone: BACKSTOP_SIM_SEED={} cargo test -p backstop-agreement --test sim -- --nocapture",
            e.seed
        );
    }
    println!(
        "{count} seeds in {:.1} s on {threads} threads: {} failed; runs with byzantine nodes {byz}, with crashes {crashes}; \
         draws registered {registered}, legs paid {legs}, actions executed {actions}; \
         txs applied {applied}, reverted {reverted}; nodes 4..=10: {:?}",
        started.elapsed().as_secs_f64(),
        failures.len(),
        &sizes[4..]
    );
    assert!(
        failures.is_empty(),
        "{} seeds failed, first: {}",
        failures.len(),
        failures[0]
    );
    println!("{count} seeds ok");
    if count >= 200 {
        // The scenarios really exercise what they claim to.
        assert!(byz > count as usize / 10, "byzantine runs: {byz}");
        assert!(crashes > count as usize / 10, "crash runs: {crashes}");
        assert!(registered as u64 >= count, "draws: {registered}");
        assert!(legs > 0 && actions > 0);
        assert!(
            sizes[4..].iter().all(|&s| s > 0),
            "every n from 4 to 10: {sizes:?}"
        );
    }
}

#[test]
fn same_seed_same_trace_hash() {
    for seed in [3, 17, 12345] {
        let a = sim::run(seed).unwrap();
        let b = sim::run(seed).unwrap();
        assert_eq!(a.trace_hash, b.trace_hash, "seed {seed}");
        assert_eq!(a, b);
    }
    assert_ne!(
        sim::run(3).unwrap().trace_hash,
        sim::run(4).unwrap().trace_hash
    );
}
