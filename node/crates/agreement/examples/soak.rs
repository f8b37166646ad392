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
    // Batches of 1000 seeds, so progress shows on long soaks.
    let mut at = first;
    while at < first + count {
        let batch = (first + count - at).min(1000);
        let (reports, failures) = sim::run_many(at, batch, threads);
        events += reports.iter().map(|r| r.events).sum::<u64>();
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
    if failed == 0 {
        println!("{count} seeds ok");
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
