//! Runs any number of simulation seeds and prints failures and throughput.
//!
//! `cargo run -p backstop-agreement --release --example soak -- --seeds 100000 [--first N] [--threads T]`
//! Exits non-zero if any seed fails; each failure prints the command that replays it alone.
use backstop_agreement::sim;
use std::process::ExitCode;

fn arg(args: &[String], name: &str) -> Option<u64> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let count = arg(&args, "--seeds").unwrap_or(10_000);
    let first = arg(&args, "--first").unwrap_or(0);
    let threads = arg(&args, "--threads").map_or_else(
        || std::thread::available_parallelism().map_or(1, |n| n.get()),
        |t| t as usize,
    );
    let started = std::time::Instant::now();
    let mut failed = 0u64;
    let mut events = 0u64;
    // Runs where the booking rule and the coverage windows acted (see `sim::SimReport`).
    let (mut stopped, mut caught_up, mut new_loss, mut limited, mut reverts) =
        (0u64, 0u64, 0u64, 0u64, 0usize);
    let (mut liars_over, mut liars_at_limit) = (0u64, 0u64);
    let (mut liar_paid, mut liar_losses, mut liar_peak) = (0u64, 0u64, 0u64);
    // Batches of 1000 seeds, so progress shows on long soaks.
    let mut at = first;
    while at < first + count {
        let batch = (first + count - at).min(1000);
        let (reports, failures) = sim::run_many(at, batch, threads);
        events += reports.iter().map(|r| r.events).sum::<u64>();
        for r in &reports {
            stopped += u64::from(r.stopped_then_refused > 0);
            caught_up += u64::from(r.refused_then_registered > 0);
            new_loss += u64::from(r.new_loss_draws > 0);
            limited += u64::from(r.window_limited > 0);
            reverts += r.window_reverts;
            liars_over += u64::from(r.liars_over_losses > 0);
            liars_at_limit += u64::from(r.liars_at_limit > 0);
            liar_paid += r.liar_paid;
            liar_losses += r.liar_losses;
            liar_peak = liar_peak.max(r.liar_peak_window_bps);
        }
        for e in &failures {
            eprintln!(
                "FAILED {e}\n  replay alone: BACKSTOP_SIM_SEED={} cargo test -p backstop-agreement --test sim -- --nocapture",
                e.seed
            );
        }
        failed += failures.len() as u64;
        at += batch;
        let s = started.elapsed().as_secs_f64();
        println!(
            "{} seeds, {failed} failed, {:.1} seeds/s",
            at - first,
            (at - first) as f64 / s
        );
    }
    let s = started.elapsed().as_secs_f64();
    println!(
        "{count} seeds on {threads} threads, {failed} failed, {s:.1} s, {:.1} seeds/s, {:.0} events/s",
        count as f64 / s,
        events as f64 / s
    );
    println!(
        "runs with: a member paid once then refused for what it cannot declare {stopped}, a \
         draw refused as not booked then registered {caught_up}, a draw after a new loss \
         {new_loss}, a window-limited draw {limited}, a liar paid beyond its losses \
         {liars_over}, a liar stopped at its whole limit within one window {liars_at_limit}; \
         window reverts {reverts}; liars paid {liar_paid} for losses \
         {liar_losses}, at most {liar_peak} bps of a limit within one window"
    );
    if failed == 0 {
        println!("{count} seeds ok");
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
