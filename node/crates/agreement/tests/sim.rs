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
    // Booking behaviours and coverage windows: members by behaviour, and per counter the
    // number of runs where it is nonzero (and its total).
    let mut bookings = [0usize; 5];
    let count_runs = |f: &dyn Fn(&sim::SimReport) -> usize| {
        let runs = reports.iter().filter(|r| f(r) > 0).count();
        let total: usize = reports.iter().map(f).sum();
        (runs, total)
    };
    let no_view = count_runs(&|r| r.no_view_members);
    let zero_window = count_runs(&|r| r.zero_window_members);
    let not_booked = count_runs(&|r| r.refused_not_booked);
    let window_refused = count_runs(&|r| r.refused_window);
    let caught_up = count_runs(&|r| r.refused_then_registered);
    let stopped = count_runs(&|r| r.stopped_then_refused);
    let new_loss = count_runs(&|r| r.new_loss_draws);
    let window_limited = count_runs(&|r| r.window_limited);
    let window_reverts = count_runs(&|r| r.window_reverts);
    let liar_draws = count_runs(&|r| r.liar_draws);
    let liars_over = count_runs(&|r| r.liars_over_losses);
    let liars_at_limit = count_runs(&|r| r.liars_at_limit);
    let liar_paid: u64 = reports.iter().map(|r| r.liar_paid).sum();
    let liar_losses: u64 = reports.iter().map(|r| r.liar_losses).sum();
    let liar_peak = reports
        .iter()
        .map(|r| r.liar_peak_window_bps)
        .max()
        .unwrap_or(0);
    for r in &reports {
        for (b, n) in bookings.iter_mut().zip(r.bookings) {
            *b += n;
        }
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
    println!(
        "members instant/late/partial/never/false {bookings:?}; runs (total) with: members \
         without the view {no_view:?}, zero window {zero_window:?}, draw refused as not booked \
         {not_booked:?}, for the window {window_refused:?}; refused then registered \
         {caught_up:?}; member paid then refused for what it cannot declare {stopped:?}; \
         draws after a new loss {new_loss:?}; window-limited draws {window_limited:?}; window \
         reverts {window_reverts:?}; liars' draws {liar_draws:?}, liars paid beyond their \
         losses {liars_over:?}, liars stopped at their whole limit within one window \
         {liars_at_limit:?}; liars paid {liar_paid} for losses {liar_losses}, at most \
         {liar_peak} bps of a limit within one window"
    );
    if count >= 200 {
        // The booking behaviours and windows really occur and do what they claim.
        assert!(
            bookings.iter().all(|&b| b > 0),
            "booking behaviours: {bookings:?}"
        );
        assert!(no_view.0 > 0, "members without the view");
        assert!(zero_window.0 > 0, "members with a zero window");
        assert!(not_booked.0 > 0, "draws refused as not booked");
        assert!(
            caught_up.0 > 0,
            "draws refused, then registered once declared"
        );
        assert!(
            stopped.0 > 0,
            "members that cannot declare a payout paid once, then refused"
        );
        assert!(new_loss.0 > 0, "draws after a new loss");
        assert!(window_limited.0 > 0, "draws a coverage window limited");
        assert!(
            window_refused.0 > 0,
            "draws refused for an exhausted window"
        );
        // A liar is paid again and again: beyond its losses, yet within its windows.
        assert!(liars_over.0 > 0, "liars paid beyond their losses");
        assert!(liars_at_limit.0 > 0, "liars stopped by their windows");
        assert!(
            liar_peak <= 10_000,
            "liar above its window: {liar_peak} bps"
        );
        // Honest nodes never propose beyond the windows left, so no vault reverts for it.
        assert_eq!(window_reverts.1, 0, "window reverts");
    }
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
