//! The Markdown report (`docs/benchmarks.md`) and the one-paragraph headline printed at the
//! end of a run.

use std::fmt::Write as _;

use crate::Results;
use crate::latency::{GAP_UNITS, Mining, Sample, Series};
use crate::restart::{RUN_BEFORE_STOP, Start};
use crate::stats::{counts, median, percentile, range, summary};

/// Configurations in report order.
const CONFIGS: [(usize, Mining); 6] = [
    (4, Mining::OneSecond),
    (7, Mining::OneSecond),
    (19, Mining::OneSecond),
    (4, Mining::Instant),
    (7, Mining::Instant),
    (19, Mining::Instant),
];

/// The node's-share target: p50 in ms for 4 nodes.
const SHARE_TARGET_MS: f64 = 50.0;
/// Most memory an idle node with the concurrent test's members may hold (MiB).
const IDLE_TARGET_MIB: f64 = 40.0;
/// Most memory a node may peak at during the concurrent incidents (MiB).
const PEAK_TARGET_MIB: f64 = 64.0;
/// Process start → ready with the extra stored records (ms).
const RESTART_TARGET_MS: f64 = 500.0;
/// Certificates per second under the concurrent incidents.
const CERTS_TARGET_PER_S: f64 = 50.0;
/// In-process target at n = 19, Wormhole's consensus benchmark: 19 guardians × 1,000
/// messages in about 7.5 s, as one guardian processes them (each message with 19
/// signatures).
const WORMHOLE_PER_S: f64 = 133.0;

/// `1234.5` → `"1,235"`.
pub fn thousands(v: f64) -> String {
    if !v.is_finite() {
        return "n/a".to_owned();
    }
    let neg = v < 0.0;
    let digits = format!("{:.0}", v.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if neg { format!("-{out}") } else { out }
}

/// `ms` formatted as whole milliseconds.
fn ms(v: f64) -> String {
    format!("{} ms", thousands(v))
}

/// An optional value, or "n/a".
fn opt(v: Option<f64>, f: impl Fn(f64) -> String) -> String {
    v.map_or_else(|| "n/a".to_owned(), f)
}

/// KiB → MiB with one decimal.
fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

/// The series of one configuration.
fn series_of(res: &Results, n: usize, mining: Mining) -> Vec<&Series> {
    res.series
        .iter()
        .filter(|s| s.nodes == n && s.mining == mining)
        .collect()
}

/// Every valid sample ([`Sample::valid`]) of several series.
fn pooled<'a>(series: &[&'a Series]) -> Vec<&'a Sample> {
    series
        .iter()
        .flat_map(|s| s.samples.iter())
        .filter(|s| s.valid())
        .collect()
}

/// Every sample of several series, valid or not.
fn pooled_all<'a>(series: &[&'a Series]) -> Vec<&'a Sample> {
    series.iter().flat_map(|s| s.samples.iter()).collect()
}

/// Values of `f` over samples.
fn vals(samples: &[&Sample], f: impl Fn(&Sample) -> Option<f64>) -> Vec<f64> {
    samples.iter().filter_map(|s| f(s)).collect()
}

/// Recovery (ms).
fn rec_ms(s: &Sample) -> Option<f64> {
    Some(s.recovery_ms)
}

/// Recovery (blocks).
fn rec_blocks(s: &Sample) -> Option<f64> {
    s.recovery_blocks.map(|b| b as f64)
}

/// Per-run p50 and p99 of `f`, then the median of each across runs and their spread.
fn per_run(series: &[&Series], f: fn(&Sample) -> Option<f64>) -> Vec<(f64, f64)> {
    series
        .iter()
        .filter_map(|s| {
            let v = s.values(f);
            Some((percentile(&v, 50.0)?, percentile(&v, 99.0)?))
        })
        .collect()
}

/// "a (b–c)": the median of per-run values with their range when there are several runs.
fn across(values: &[f64], f: impl Fn(f64) -> String) -> String {
    match (median(values), range(values)) {
        (Some(m), Some((lo, hi))) if values.len() > 1 => {
            format!("{} (runs: {}–{})", f(m), f(lo), f(hi))
        }
        (Some(m), _) => f(m),
        _ => "n/a".to_owned(),
    }
}

/// Yes/no for a target.
fn met(ok: bool) -> &'static str {
    if ok { "**met**" } else { "**not met**" }
}

/// Yes/no for a target, inside bold text.
fn plain(ok: bool) -> &'static str {
    if ok { "met" } else { "not met" }
}

/// The one-paragraph summary printed at the end.
pub fn headline(res: &Results) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "total run time {:.1} min", res.total_s / 60.0);
    for (n, mining) in CONFIGS {
        let series = series_of(res, n, mining);
        if series.is_empty() {
            continue;
        }
        let samples = pooled(&series);
        let _ = writeln!(
            out,
            "recovery, {n} nodes, {}: p50/p99 {} ; blocks {} ; node share own {}, from first sight {}",
            mining.label(),
            summary(&vals(&samples, rec_ms), ms),
            summary(&vals(&samples, rec_blocks), |v| format!("{v:.0}")),
            summary(&vals(&samples, |s| s.node_share_ms), ms),
            summary(&vals(&samples, |s| s.share_any_ms), ms),
        );
    }
    if let Some(c) = &res.concurrent {
        if let (Some(last), Some(rate)) = (c.cert_ms.last(), c.certs_per_s()) {
            let _ = writeln!(
                out,
                "{} concurrent incidents: {rate:.1} certificates/s ({} certificates in {}; {} from the first gap seen), all closed after {}",
                c.members,
                c.cert_ms.len(),
                ms(*last),
                opt(c.certs_per_s_from_seen(), |v| format!("{v:.1}/s")),
                opt(c.closed_ms.last().copied(), ms),
            );
        }
        let _ = writeln!(
            out,
            "{}: gap → registration {} blocks; confirmed head behind {} blocks",
            c.blocks.describe(),
            summary(&counts(&c.gap_to_registration_blocks), |v| format!(
                "{v:.0}"
            )),
            summary(&counts(&c.head_lag_blocks), |v| format!("{v:.0}")),
        );
        let idle = c.idle_rss_kib.iter().max().copied().unwrap_or(0);
        let peak = c.peak_rss_kib.iter().max().copied().unwrap_or(0);
        let _ = writeln!(
            out,
            "memory: idle max {} MiB, peak max {} MiB",
            mib(idle),
            mib(peak)
        );
        let _ = writeln!(
            out,
            "second draws for booked gaps: {} of {} members",
            c.second_draws, c.members
        );
        if !c.resent.is_empty() {
            let _ = writeln!(
                out,
                "gap/booking transactions resent (not mined within 10 s): {}",
                c.resent.len()
            );
        }
    }
    if let Some(r) = &res.restart {
        let _ = writeln!(
            out,
            "restart to ready: {} as is, {} with {} records",
            opt(median(&ready(&r.baseline)), ms),
            opt(median(&ready(&r.loaded)), ms),
            r.records
        );
    }
    for (phase, e) in &res.failures {
        let first = e.lines().next().unwrap_or_default();
        let _ = writeln!(out, "FAILED {phase}: {first}");
    }
    out
}

/// The whole report.
pub fn markdown(res: &Results) -> String {
    let mut o = String::new();
    let m = res.machine.clone();
    let _ = writeln!(o, "# Benchmarks\n");
    let _ = writeln!(
        o,
        "Written by `testnet/bench` (the `backstop-bench` crate in `testnet/bench-tool/`){}. Every number \
         below was measured by that command on the machine described under [Machine](#machine); \
         run it again to reproduce (`testnet/bench --quick` is a shorter smoke test). Total run \
         time: **{:.1} min**.\n",
        m.as_ref()
            .map_or(String::new(), |m| format!(" on {}", m.date)),
        res.total_s / 60.0
    );
    if res.quick {
        let _ = writeln!(
            o,
            "> **Quick run** (`--quick`): few incidents per series; percentiles are indicative only.\n"
        );
    }

    headline_table(&mut o, res);
    findings_section(&mut o, res);
    machine_section(&mut o, res);
    method_section(&mut o, res);
    latency_section(&mut o, res);
    share_section(&mut o, res);
    agreement_section(&mut o, res);
    profile_section(&mut o, res);
    memory_section(&mut o, res);
    restart_section(&mut o, res);
    certificates_section(&mut o, res);
    stress_section(&mut o, res);
    gas_section(&mut o, res);
    limits_section(&mut o, res);
    raw_section(&mut o, res);
    o
}

/// The summary table at the top.
fn headline_table(o: &mut String, res: &Results) {
    let _ = writeln!(o, "## Summary\n");
    let _ = writeln!(o, "| measurement | result | target |\n| --- | --- | --- |");
    for (n, mining) in CONFIGS {
        let series = series_of(res, n, mining);
        if series.is_empty() {
            continue;
        }
        let samples = pooled(&series);
        let _ = writeln!(
            o,
            "| recovery latency, {n} nodes, {}: p50 / p99 | {} ; blocks {} | — |",
            mining.label(),
            summary(&vals(&samples, rec_ms), ms),
            summary(&vals(&samples, rec_blocks), |v| format!("{v:.0}")),
        );
    }
    for n in [4, 7, 19] {
        let series = series_of(res, n, Mining::Instant);
        if series.is_empty() {
            continue;
        }
        let pool = pooled(&series);
        let own = vals(&pool, |s| s.node_share_ms);
        let any = vals(&pool, |s| s.share_any_ms);
        let target = if n == 4 {
            match (median(&own), median(&any)) {
                (Some(a), Some(b)) => format!(
                    "p50 ≤ 50 ms: own {}, from first sight {}",
                    met(a <= SHARE_TARGET_MS),
                    met(b <= SHARE_TARGET_MS)
                ),
                _ => "p50 ≤ 50 ms: not measured".to_owned(),
            }
        } else {
            "—".to_owned()
        };
        let _ = writeln!(
            o,
            "| node's own share (gap seen → registration sent), {n} nodes, instant mining: p50 / p99 | own {}; from first sight on any node {} | {target} |",
            summary(&own, ms),
            summary(&any, ms)
        );
    }
    let p2c: Vec<f64> = vals(&pooled(&series_of(res, 4, Mining::Instant)), |s| {
        s.proposal_to_cert_ms
    });
    if !p2c.is_empty() {
        let _ = writeln!(
            o,
            "| proposal → certificate, 4 nodes, loopback: p50 / p99 | {} | — |",
            summary(&p2c, ms)
        );
    }
    if let Some(c) = &res.concurrent {
        if let (Some(last), Some(rate)) = (c.cert_ms.last(), c.certs_per_s()) {
            let seen = c.certs_per_s_from_seen();
            let _ = writeln!(
                o,
                "| certificates per second, {} concurrent incidents, 4 nodes | **{rate:.1}/s** from the first gap transaction ({} certificates {} after it); **{}** from the first gap a node saw ({} after the transaction: the chain's block and confirmation); all closed after {}; {} second attempts | ≥ 50/s from the first gap transaction: {}; from the first gap seen: {}; 0 second attempts: {} |",
                c.members,
                c.cert_ms.len(),
                ms(*last),
                opt(seen, |v| format!("{v:.1}/s")),
                opt(c.first_gap_seen_ms, ms),
                opt(c.closed_ms.last().copied(), ms),
                c.retried,
                met(rate >= CERTS_TARGET_PER_S),
                seen.map_or("not measured", |v| met(v >= CERTS_TARGET_PER_S)),
                met(c.retried == 0),
            );
        }
        let to_reg = counts(&c.gap_to_registration_blocks);
        let lag = counts(&c.head_lag_blocks);
        let _ = writeln!(
            o,
            "| gap → draw registered, in blocks, {} concurrent incidents ({}) | {} | p99 ≤ 5 blocks: {} |",
            c.members,
            c.blocks.describe(),
            summary(&to_reg, |v| format!("{v:.0}")),
            percentile(&to_reg, 99.0).map_or("not measured", |v| met(v <= 5.0)),
        );
        let _ = writeln!(
            o,
            "| node's confirmed head behind the chain's (less the confirmation depth), in blocks, sampled every 200 ms per node and chain during the {} incidents | {}; max {} | p99 ≤ 1 block: {} |",
            c.members,
            summary(&lag, |v| format!("{v:.0}")),
            opt(lag.last().copied(), |v| format!("{v:.0}")),
            percentile(&lag, 99.0).map_or("not measured", |v| met(v <= 1.0)),
        );
        let idle = c.idle_rss_kib.iter().copied().max().unwrap_or(0);
        let peak = c.peak_rss_kib.iter().copied().max().unwrap_or(0);
        let latency_idle = res
            .series
            .iter()
            .flat_map(|s| s.idle_rss_kib.iter().copied())
            .max()
            .unwrap_or(0);
        let (anon, file) = c
            .idle_rss_split_kib
            .iter()
            .copied()
            .max_by_key(|(a, f)| a + f)
            .unwrap_or_default();
        let _ = writeln!(
            o,
            "| node RSS: idle (1 member / {} members), peak during {} concurrent incidents | {} / {} MiB idle ({} MiB anonymous, {} MiB file-backed: the binary's code as mapped), {} MiB peak (largest node) | idle ≤ 40 MiB: {}; peak ≤ 64 MiB: {} |",
            c.members,
            c.members,
            mib(latency_idle),
            mib(idle),
            mib(anon),
            mib(file),
            mib(peak),
            met(idle as f64 / 1024.0 <= IDLE_TARGET_MIB),
            met(peak as f64 / 1024.0 <= PEAK_TARGET_MIB),
        );
        let _ = writeln!(
            o,
            "| second draws registered for gaps the member had already booked, {} concurrent incidents | {} of {} members | 0 (no over-coverage) |",
            c.members, c.second_draws, c.members
        );
    }
    if let Some(k) = &res.soak {
        let _ = writeln!(
            o,
            "| memory over {} incidents ({} members × {} rounds, 4 nodes): largest node RSS after the first round → after the last | {} → {} MiB; {} | flat (issue: ~100 KiB per incident) |",
            thousands(k.incidents() as f64),
            k.members,
            k.rss_by_incidents.len(),
            opt(k.largest().first().map(|x| x.1 as f64), |v| mib(v as u64)),
            opt(k.largest().last().map(|x| x.1 as f64), |v| mib(v as u64)),
            soak_growth(k)
        );
    }
    if let Some(r) = &res.restart {
        let _ = writeln!(
            o,
            "| restart: process start → `GetStatus` ready, as is / with {} more stored records (median of {}) | {} / {} | ≤ 500 ms with them: {} |",
            thousands(r.records as f64),
            r.loaded.len(),
            opt(median(&ready(&r.baseline)), ms),
            opt(median(&ready(&r.loaded)), ms),
            median(&ready(&r.loaded)).map_or("not measured", |v| met(v <= RESTART_TARGET_MS)),
        );
        let pairs = r.loaded_before_after_kib();
        let _ = writeln!(
            o,
            "| memory of that node with the records: before a restart (after {} s of running) → right after it, each restart | {} MiB | no higher after: {} |",
            RUN_BEFORE_STOP.as_secs(),
            before_after(&pairs),
            if pairs.is_empty() {
                "not measured"
            } else {
                met(pairs.iter().all(|(before, after)| after <= before))
            },
        );
    }
    if let Some((all, per_node)) = res
        .certificates_bench
        .as_deref()
        .and_then(|t| in_process_rates(t, 19))
    {
        let _ = writeln!(
            o,
            "| in process, n = 19 (t = 13), real signatures: one node's rate / the whole consortium on one CPU | **{per_node:.1}** / {all:.1} incidents certified/s | ≥ {WORMHOLE_PER_S:.0}/s (Wormhole, one guardian): {} |",
            met(per_node >= WORMHOLE_PER_S),
        );
    }
    if let Some(g) = &res.gas {
        let cell = |n: usize, f: fn(&crate::gas::OnChainGas) -> u64| {
            g.onchain
                .iter()
                .find(|x| x.n == n)
                .map_or("n/a".to_owned(), |x| thousands(f(x) as f64))
        };
        let _ = writeln!(
            o,
            "| gas per transaction, registerDraw (3 legs) / releaseLeg: 3-of-4, 5-of-7, 7-of-10 | {} / {}, {} / {}, {} / {} | — |",
            cell(4, |x| x.register),
            cell(4, |x| x.release),
            cell(7, |x| x.register),
            cell(7, |x| x.release),
            cell(10, |x| x.register),
            cell(10, |x| x.release),
        );
    }
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "![Recovery latency and node's share, cumulative distributions](benchmarks-latency.svg)\n"
    );
}

/// What the numbers say, in a few sentences.
fn findings_section(o: &mut String, res: &Results) {
    let _ = writeln!(o, "## Findings\n");
    let all: Vec<&Sample> = res.series.iter().flat_map(|s| s.samples.iter()).collect();
    let instant: Vec<&Sample> = res
        .series
        .iter()
        .filter(|s| s.mining == Mining::Instant)
        .flat_map(|s| s.samples.iter())
        .collect();
    if !all.is_empty() {
        let one_s = pooled(&series_of(res, 4, Mining::OneSecond));
        let inst = pooled(&series_of(res, 4, Mining::Instant));
        let _ = writeln!(
            o,
            "- **Recovery.** With 4 nodes the gap is covered on all three chains in {} (p50) \
             with 1-s blocks and {} with instant mining; the nodes' own work, from the first \
             node seeing the gap to the registration being sent, is {} (p50, instant mining). \
             The rest is reading and confirming blocks: the gap's, the registration's and the \
             releases' (see [where the time goes](#recovery-latency-gap--last-leg-paid)).",
            opt(median(&vals(&one_s, rec_ms)), ms),
            opt(median(&vals(&inst, rec_ms)), ms),
            opt(median(&vals(&inst, |s| s.share_any_ms)), ms),
        );
        // Slow incidents: a certificate more than 1 s after the proposal in the first attempt,
        // and incidents that needed another attempt.
        let slow: Vec<&&Sample> = all
            .iter()
            .filter(|s| s.attempt == 0 && s.proposal_to_cert_ms.is_some_and(|v| v > 1000.0))
            .collect();
        let slow_p2c: Vec<f64> = slow.iter().filter_map(|s| s.proposal_to_cert_ms).collect();
        let retried: Vec<&&Sample> = all.iter().filter(|s| s.attempt > 0).collect();
        if let Some((lo, hi)) = range(&slow_p2c) {
            let recovery: Vec<f64> = slow.iter().map(|s| s.recovery_ms).collect();
            let _ = writeln!(
                o,
                "- **Slow certificates.** In {} of the {} incidents of the latency series the \
                 submitter's certificate formed {}–{} after the proposal although the first \
                 attempt succeeded (recovery {} to {} in those incidents). The benchmark \
                 did not establish the cause; `submit_delay_ms` is 1.5 s in this configuration.",
                slow.len(),
                all.len(),
                ms(lo),
                ms(hi),
                opt(recovery.iter().copied().reduce(f64::min), ms),
                opt(recovery.iter().copied().reduce(f64::max), ms),
            );
        }
        if !retried.is_empty() {
            let _ = writeln!(
                o,
                "- **Second attempts.** {} of the {} incidents needed a second proposal attempt \
                 (`attempt_timeout_ms` = 3000); their recovery took {}.",
                retried.len(),
                all.len(),
                retried
                    .iter()
                    .map(|s| ms(s.recovery_ms))
                    .collect::<Vec<_>>()
                    .join(", "),
            );
        }
        let slow_legs: Vec<&&Sample> = all
            .iter()
            .filter(|s| s.attempt == 0 && s.registered_to_last_ms.is_some_and(|v| v > 2000.0))
            .collect();
        if !slow_legs.is_empty() {
            let _ = writeln!(
                o,
                "- **Slow releases.** In {} of the {} incidents a remote leg was paid more than \
                 2 s after the registration, in the first attempt: registration → last leg {} \
                 ({} of them reopened by some node).",
                slow_legs.len(),
                all.len(),
                slow_legs
                    .iter()
                    .filter_map(|s| s.registered_to_last_ms)
                    .map(ms)
                    .collect::<Vec<_>>()
                    .join(", "),
                slow_legs.iter().filter(|s| s.reopened).count(),
            );
        }
        let reopened = instant.iter().filter(|s| s.reopened).count();
        let logs = |mining: Mining| {
            res.series
                .iter()
                .filter(|s| s.mining == mining)
                .fold((0, 0), |(a, b), s| (a + s.log_resolved, b + s.log_reopened))
        };
        let (resolved_i, reopened_i) = logs(Mining::Instant);
        let (resolved_1, reopened_1) = logs(Mining::OneSecond);
        if reopened > 0 {
            let _ = writeln!(
                o,
                "- **Close-and-reopen with `confirmations = 0`.** In {} of the {} instant-mining \
                 incidents some node's timeline shows the incident reopened; the nodes' logs of \
                 those series hold {} \"incident closed … reason=Resolved\" and {} \"incident \
                 reopened\" lines (with 1-s blocks and `confirmations = 1`: {} and {} over {} \
                 incidents). In the logs we read, a node closes the incident as resolved (in \
                 its view the gap is gone and no draw is registered yet: the member booked \
                 right after the registration) and reopens it a few milliseconds later, before \
                 it takes in the registration. Every incident was still paid once. But the reopening node's journal \
                 starts the incident's timeline again, so its earlier lines (proposal, \
                 certificate, \"registration sent\") are no longer in the API: {} instant-mining \
                 incidents have no submitter timeline for that reason.",
                reopened,
                instant.len(),
                resolved_i,
                reopened_i,
                resolved_1,
                reopened_1,
                all.len() - instant.len(),
                instant.iter().filter(|s| s.submitter.is_none()).count(),
            );
        }
    }
    if let Some(c) = &res.concurrent
        && let (Some(last), Some(rate)) = (c.cert_ms.last(), c.certs_per_s())
    {
        let idle1 = res
            .series
            .iter()
            .flat_map(|s| s.idle_rss_kib.iter().copied())
            .max();
        let idle100 = c.idle_rss_kib.iter().copied().max();
        let peak = c.peak_rss_kib.iter().copied().max().unwrap_or(0);
        let _ = writeln!(
            o,
            "- **Agreement under load.** {} incidents raised at once reach their {}th \
             certificate after {} (**{:.1} certificates/s**) and are all closed after {}; \
             {} of them needed a second attempt, and proposal → certificate has a p99 of {}. \
             The 4 {}-build nodes, 3 anvils and the driver share the machine's CPUs (1-minute \
             load average {:.2} → {:.2} over the test), so this measures this setup, not the \
             protocol's own limit.",
            c.members,
            c.cert_ms.len(),
            ms(*last),
            rate,
            opt(c.closed_ms.last().copied(), ms),
            c.retried,
            opt(percentile(&c.p2c_ms, 99.0), ms),
            res.build_profile,
            c.load.0[0],
            c.load.1[0],
        );
        if let Some(lag) = median(&c.booking_after_registered_ms)
            && lag < 0.0
        {
            let _ = writeln!(
                o,
                "- **Nodes fall behind the chains under that load.** The benchmark saw each draw \
                 registered on chain (`drawOf`, polled every 200 ms) and booked it a median {} \
                 *before* the first node's timeline logged the registration: with {} incidents \
                 in flight the nodes took in the registrations that much later than the chain had them.",
                ms(-lag),
                c.members,
            );
        }
        if let Some(Ok(p)) = &c.profile {
            let _ = writeln!(
                o,
                "- **A node's CPU under that load.** {} used {} of a CPU in the {} s \
                 after the first gap; its samples by object: {} (see [the \
                 profile](#cpu-profile-of-a-node-under-the-concurrent-incidents)).",
                p.node,
                opt(p.cores, |c| format!("{c:.2}")),
                crate::profile::SECONDS,
                p.objects
                    .iter()
                    .take(4)
                    .map(|(pct, obj)| format!("`{obj}` {pct:.0} %"))
                    .collect::<Vec<_>>()
                    .join(", "),
            );
        }
        if let (Some(a), Some(b)) = (idle1, idle100) {
            let _ = writeln!(
                o,
                "- **Memory with {} members: the idle target ({IDLE_TARGET_MIB} MiB) is {}, the \
                 peak target ({PEAK_TARGET_MIB} MiB) is {}.** A node with one member idles at {} \
                 MiB; with {} members at {} MiB (about {} KiB more per configured member) and it \
                 peaks at {} MiB during the {} concurrent incidents.",
                c.members,
                plain(b as f64 / 1024.0 <= IDLE_TARGET_MIB),
                plain(peak as f64 / 1024.0 <= PEAK_TARGET_MIB),
                mib(a),
                c.members,
                mib(b),
                thousands((b.saturating_sub(a)) as f64 / (c.members.max(2) - 1) as f64),
                mib(peak),
                c.members,
            );
        }
    }
    if let Some(r) = &res.restart {
        let _ = writeln!(
            o,
            "- **Restart time does not grow with the store.** A node with an empty store is \
             ready {} after its process starts; with {} closed incidents in its store it takes \
             {} (its API answers after {}; it reads the open incidents, one record per member \
             and the newest 1,024 closed incidents, never the closed history) and holds {} MiB \
             right after ready; before each restart, after {} s of running on the same store, it \
             held {} MiB.",
            opt(median(&ready(&r.baseline)), ms),
            thousands(r.records as f64),
            opt(median(&ready(&r.loaded)), ms),
            opt(
                median(&r.loaded.iter().map(|s| s.api_ms).collect::<Vec<_>>()),
                ms
            ),
            most_kib(&r.loaded, |s| s.ready_rss_kib).map_or("n/a".to_owned(), mib),
            RUN_BEFORE_STOP.as_secs(),
            most_kib(&r.loaded, |s| s.stop_rss_kib).map_or("n/a".to_owned(), mib),
        );
    }
    if let Some(g) = &res.gas {
        let find = |n: usize| g.onchain.iter().find(|x| x.n == n);
        if let (Some(a), Some(b)) = (find(4), find(10)) {
            let per = |x: u64, y: u64| (y as f64 - x as f64) / (b.t as f64 - a.t as f64);
            let marginal: Vec<f64> = g.forge.marginal.iter().map(|(_, v)| *v as f64).collect();
            let _ = writeln!(
                o,
                "- **Gas grows linearly with the signatures.** From {}-of-4 to {}-of-10 a \
                 registration costs {} → {} gas and a release {} → {} (whole transactions), \
                 about {} and {} per signature; Foundry puts a signature's execution at {} gas, \
                 the rest is its 65 bytes of calldata.",
                a.t,
                b.t,
                thousands(a.register as f64),
                thousands(b.register as f64),
                thousands(a.release as f64),
                thousands(b.release as f64),
                thousands(per(a.register, b.register)),
                thousands(per(a.release, b.release)),
                opt(median(&marginal), thousands),
            );
        }
    }
    let _ = writeln!(o);
}

/// What `profile` means for the numbers.
fn profile_note(profile: &str) -> &'static str {
    match profile {
        "release" => {
            "`cargo build --release`: optimised (opt-level 3, fat LTO, one codegen unit), as \
             operators run the node"
        }
        "debug" => {
            "`cargo build`: the workspace's dev profile, dependencies at opt-level 1, workspace \
             crates at opt-level 0; a release build is faster"
        }
        _ => "as named",
    }
}

/// Machine and noise.
fn machine_section(o: &mut String, res: &Results) {
    let _ = writeln!(o, "## Machine\n");
    if let Some(m) = &res.machine {
        let _ = writeln!(
            o,
            "| | |\n| --- | --- |\n| CPU | {} × {} logical CPUs (`/proc/cpuinfo`) |\n| RAM | {} MiB total, {} MiB available at the start (`/proc/meminfo`) |\n| kernel | {} |\n| rustc | {} |\n| build profile | `{}` ({}) |\n| source | commit `{}`{} |\n| date | {} |\n| load average (1/5/15 min) | start {}; end {} |",
            m.cpu_model,
            m.cpus,
            thousands(m.mem_total_mib as f64),
            thousands(m.mem_available_mib as f64),
            m.kernel,
            m.rustc,
            res.build_profile,
            profile_note(&res.build_profile),
            m.commit,
            if m.dirty.is_empty() {
                ", no local changes to the node, contracts or protos".to_owned()
            } else {
                format!(
                    " plus uncommitted changes the benchmark built and measured: {}",
                    m.dirty
                        .iter()
                        .map(|d| format!("`{d}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            },
            m.date,
            load(res.load.0),
            load(res.load.1),
        );
    }
    let _ = writeln!(
        o,
        "\nEverything runs on this one machine: 3 anvil processes, the benchmark driver and 4, 7 or \
         19 {}-build node processes share its CPUs, so the numbers include CPU contention between \
         them, and between them and anything else running (a load average above the CPU count \
         means processes were waiting for a CPU).\n",
        res.build_profile
    );
    let _ = writeln!(
        o,
        "How noisy it was, series by series (load average over 1 minute before → after, and the series' own p50):\n"
    );
    let _ = writeln!(
        o,
        "| series | load before → after | wall time | recovery p50 | recovery p99 |\n| --- | --- | --- | --- | --- |"
    );
    for s in &res.series {
        let v = s.values(rec_ms);
        let _ = writeln!(
            o,
            "| {}, run {} | {:.2} → {:.2} | {:.0} s | {} | {} |",
            s.label(),
            s.run,
            s.load.0[0],
            s.load.1[0],
            s.wall_s,
            opt(percentile(&v, 50.0), ms),
            opt(percentile(&v, 99.0), ms),
        );
    }
    if let Some(c) = &res.concurrent {
        let _ = writeln!(
            o,
            "| {} concurrent incidents | {:.2} → {:.2} | | | |",
            c.members, c.load.0[0], c.load.1[0]
        );
    }
    if let Some(r) = &res.restart {
        let _ = writeln!(
            o,
            "| restart | {:.2} → {:.2} | | | |",
            r.load.0[0], r.load.1[0]
        );
    }
    for (n, mining) in CONFIGS {
        let series = series_of(res, n, mining);
        if series.len() < 2 {
            continue;
        }
        let runs = per_run(&series, rec_ms);
        let p50s: Vec<f64> = runs.iter().map(|r| r.0).collect();
        let p99s: Vec<f64> = runs.iter().map(|r| r.1).collect();
        if let (Some((a, b)), Some((c, d)), Some(med)) = (range(&p50s), range(&p99s), median(&p50s))
        {
            let _ = writeln!(
                o,
                "\nSpread between the {} runs of {n} nodes, {}: p50 {}–{} ({:.0} % of the median p50), p99 {}–{}.",
                series.len(),
                mining.label(),
                ms(a),
                ms(b),
                (b - a) / med * 100.0,
                ms(c),
                ms(d)
            );
        }
    }
    let _ = writeln!(o);
}

/// Load averages as text.
fn load(l: [f64; 3]) -> String {
    format!("{:.2} / {:.2} / {:.2}", l[0], l[1], l[2])
}

/// How it was measured.
fn method_section(o: &mut String, res: &Results) {
    let _ = writeln!(o, "## Method\n");
    let _ = writeln!(
        o,
        "**Setup.** `backstop_contracts::testing::deploy_consortium` starts three anvil chains \
         (31337, 31338, 31339) with one `BackstopVault` each (deposit 2,000,000 units, reserve \
         floor 1,000, outflow bucket 10,000 units refilled in one second: \
         `limits.refillPerSecond = limits.bucketCapacity`), guarded by the nodes' keys with \
         t = n − f, p = f + 1. Member 0 is homed on 31337 (cap 50,000, deductible 100). Each node \
         is a real `backstop` process on loopback with `poll_interval_ms = 100`, \
         `attempt_timeout_ms = 3000`, `submit_delay_ms = 1500`, `settle_ms = 500`, log level \
         info; a fresh consortium and fresh nodes are deployed for every series.\n"
    );
    let _ = writeln!(
        o,
        "**Block production.** *1-s blocks*: the fixtures' `mine_every = Some(1 s)`, i.e. anvil \
         mines every transaction at once *and* an empty block every second; nodes use \
         `confirmations = 1`, so a transaction's block counts once the next block exists: the \
         next timer block (at most one second later) or any transaction's block, e.g. the \
         member's booking right after the registration, which is why a few incidents finish in \
         well under a second. *Instant mining*: `mine_every = None`, anvil mines a block \
         per transaction and nothing else; nodes use `confirmations = 0` (the config accepts it \
         with a warning).\n"
    );
    let _ = writeln!(
        o,
        "**An incident.** The benchmark waits until, at the block a node would pin, every \
         vault's bucket is full again (with instant mining it first mines an empty block on \
         each chain, since buckets refill with block time and nothing else makes blocks); with \
         1-s blocks it then waits a further (k · 0.618 mod 1) s before incident k, so that the \
         gaps fall at evenly spread phases of the block timer rather than at whatever phase the \
         polling loop locks onto. Then it raises member 0's liabilities by {GAP_UNITS} units (assets never fall: that would look \
         like an exploit). 16,000 coverable units need the home vault's 10,000 and 3,000 from \
         each other vault, so every draw has legs on all three chains. When the home vault's \
         `drawOf(member, seq)` becomes non-zero the member books the payout (assets = \
         liabilities); the benchmark waits until every node lists the incident closed, reads \
         the timelines (`ListIncidents`), waits `settle_ms` rounded up to whole seconds, plus 300 ms, and starts the next one.\n"
    );
    let _ = writeln!(
        o,
        "**Recovery latency, ms**: from the moment anvil answered the gap's `setSolvency` \
         transaction (anvil mines a transaction before answering `eth_sendTransaction`) to the \
         timeline time at which node-0 saw the last leg paid (the latest of \"registered on \
         chain C …\", which pays the home leg, and \"leg of … paid on chain C …\"; node-0 logs \
         them when it reads the events at its confirmed depth). Node and benchmark read the same \
         wall clock. **Recovery latency, blocks**: the block of that last leg's transaction \
         minus the head of the same chain when the gap transaction was mined (read right after \
         it; for the home chain, the gap transaction's own block). With 1-s blocks these blocks \
         include both the timer's empty blocks and the blocks of every transaction (gap, booking, \
         registration, releases); with instant mining only transactions and the benchmark's \
         empty refill blocks make blocks, so block counts there mostly count transactions.\n"
    );
    let _ = writeln!(
        o,
        "**Node's own share**: on the node whose timeline has \"registration sent to chain …\" \
         (the first one if several), that time minus its own \"gap of … seen\". It covers \
         detection at the confirmed block, the proposal, the attestations over gossip, the \
         certificate and handing the registration to the submitter, but not the chain.\n"
    );
    let _ = writeln!(
        o,
        "**Percentiles** are nearest-rank over the incidents of a configuration (all runs \
         pooled): with 20 incidents the p99 is the slowest incident. Incidents whose draw did \
         not get legs on all three chains are left out of every statistic; the tables count \
         them and the raw data lists them. \"Runs: a–b\" is the range \
         of the per-run values. {} incidents per series.\n",
        res.incidents
    );
}

/// The recovery latency tables.
fn latency_section(o: &mut String, res: &Results) {
    let _ = writeln!(o, "## Recovery latency (gap → last leg paid)\n");
    let _ = writeln!(
        o,
        "| configuration | incidents | p50 ms | p99 ms | p50 blocks | p99 blocks | median of per-run p50 | median of per-run p99 |\n| --- | --- | --- | --- | --- | --- | --- | --- |"
    );
    for (n, mining) in CONFIGS {
        let series = series_of(res, n, mining);
        if series.is_empty() {
            continue;
        }
        let samples = pooled(&series);
        let v = vals(&samples, rec_ms);
        let b = vals(&samples, rec_blocks);
        let runs = per_run(&series, rec_ms);
        let p50s: Vec<f64> = runs.iter().map(|r| r.0).collect();
        let p99s: Vec<f64> = runs.iter().map(|r| r.1).collect();
        let _ = writeln!(
            o,
            "| {n} nodes, {} ({} run{}) | {} | {} | {} | {} | {} | {} | {} |",
            mining.label(),
            series.len(),
            if series.len() == 1 { "" } else { "s" },
            v.len(),
            opt(percentile(&v, 50.0), thousands),
            opt(percentile(&v, 99.0), thousands),
            opt(percentile(&b, 50.0), |x| format!("{x:.0}")),
            opt(percentile(&b, 99.0), |x| format!("{x:.0}")),
            across(&p50s, ms),
            across(&p99s, ms),
        );
    }
    let _ = writeln!(
        o,
        "\nWhere the time goes (medians over the incidents; \"submitter\" = the node that sent the registration, timestamps from its own timeline; \"registered → last leg\" from node-0's). The counts on the right: incidents that needed a second attempt, whose draw did not have three legs, that some node closed and reopened (its journal then starts the incident's timeline again), and for which no node's timeline kept a \"registration sent\" line (so no submitter columns):\n"
    );
    let _ = writeln!(
        o,
        "| configuration | gap tx → node-0 sees gap | seen → proposed | proposed → certificate | certificate → registration sent | sent → registered (confirmed) | registered → last leg | attempts > 0 | legs ≠ 3 | reopened | no submitter timeline |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    );
    for (n, mining) in CONFIGS {
        let series = series_of(res, n, mining);
        if series.is_empty() {
            continue;
        }
        let s = pooled(&series);
        let med = |f: fn(&Sample) -> Option<f64>| opt(median(&vals(&s, f)), ms);
        let s = pooled_all(&series);
        let _ = writeln!(
            o,
            "| {n} nodes, {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            mining.label(),
            med(|x| x.seen_ms),
            med(|x| x.seen_to_proposed_ms),
            med(|x| x.proposal_to_cert_ms),
            med(|x| x.cert_to_sent_ms),
            med(|x| x.sent_to_registered_ms),
            med(|x| x.registered_to_last_ms),
            s.iter().filter(|x| x.attempt > 0).count(),
            s.iter().filter(|x| x.legs != 3).count(),
            s.iter().filter(|x| x.reopened).count(),
            s.iter().filter(|x| x.submitter.is_none()).count(),
        );
    }
    let _ = writeln!(o);
}

/// The node's own share.
fn share_section(o: &mut String, res: &Results) {
    let _ = writeln!(o, "## Node's own share (gap seen → registration sent)\n");
    let _ = writeln!(
        o,
        "*Own*: on the submitter (the node whose timeline has \"registration sent to chain …\"), \
         that entry minus its own \"gap of … seen\". A node that receives a peer's proposal \
         before its own watcher reaches the gap's block logs no \"gap seen\" line (its journal \
         opens the incident on the proposal), so *own* exists only for the incidents whose \
         submitter saw the gap itself (n below). *From first sight*: the earliest \"gap of … \
         seen\" on any node to the submitter's \"registration sent\": defined for every \
         incident, and never shorter.\n"
    );
    let _ = writeln!(
        o,
        "| configuration | own: p50 / p99 | own: per-run p50 | from first sight: p50 / p99 | from first sight: per-run p50 |\n| --- | --- | --- | --- | --- |"
    );
    for (n, mining) in CONFIGS {
        let series = series_of(res, n, mining);
        if series.is_empty() {
            continue;
        }
        let pool = pooled(&series);
        let own = vals(&pool, |s| s.node_share_ms);
        let any = vals(&pool, |s| s.share_any_ms);
        let runs = |f: fn(&Sample) -> Option<f64>| {
            series
                .iter()
                .filter_map(|s| median(&s.values(f)))
                .map(ms)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(
            o,
            "| {n} nodes, {} | {} | {} | {} | {} |",
            mining.label(),
            summary(&own, ms),
            runs(|x| x.node_share_ms),
            summary(&any, ms),
            runs(|x| x.share_any_ms),
        );
    }
    let pool = pooled(&series_of(res, 4, Mining::Instant));
    let own = median(&vals(&pool, |s| s.node_share_ms));
    let any = median(&vals(&pool, |s| s.share_any_ms));
    let verdict = |v: Option<f64>| {
        v.map_or_else(
            || "not measured".to_owned(),
            |p50| format!("{} (p50 {})", met(p50 <= SHARE_TARGET_MS), ms(p50)),
        )
    };
    let _ = writeln!(
        o,
        "\nTarget: p50 ≤ 50 ms for 4 nodes on loopback (instant mining): own {}; from first sight {}.\n",
        verdict(own),
        verdict(any)
    );
}

/// Agreement latency and throughput.
fn agreement_section(o: &mut String, res: &Results) {
    let _ = writeln!(o, "## Agreement\n");
    let _ = writeln!(
        o,
        "Proposal → certificate on loopback, from the submitter's timeline (first \"proposed\" to \"certificate over\"), and the mean of the nodes' `backstop_proposal_to_certificate_seconds` histogram (sum / count over all nodes of the series):\n"
    );
    let _ = writeln!(
        o,
        "| configuration | p50 | p99 | histogram mean |\n| --- | --- | --- | --- |"
    );
    for (n, mining) in CONFIGS {
        let series = series_of(res, n, mining);
        if series.is_empty() {
            continue;
        }
        let v = vals(&pooled(&series), |s| s.proposal_to_cert_ms);
        let (sum, count) = series
            .iter()
            .flat_map(|s| s.metric_p2c.iter())
            .fold((0.0, 0.0), |(a, b), (s, c)| (a + s, b + c));
        let _ = writeln!(
            o,
            "| {n} nodes, {} | {} | {} | {} |",
            mining.label(),
            opt(percentile(&v, 50.0), ms),
            opt(percentile(&v, 99.0), ms),
            if count > 0.0 {
                format!("{} (n = {count:.0})", ms(sum / count * 1000.0))
            } else {
                "n/a".to_owned()
            }
        );
    }
    let _ = writeln!(o);
    let Some(c) = &res.concurrent else {
        let _ = writeln!(o, "Concurrent incidents: not measured (see below).\n");
        return;
    };
    let one_member_deploy = median(
        &res.series
            .iter()
            .filter(|s| s.nodes == 4)
            .map(|s| s.deploy_s)
            .collect::<Vec<_>>(),
    );
    let _ = writeln!(
        o,
        "**{} concurrent incidents.** A consortium of 4 nodes and {} members (member i homed on chain \
         31337 + i mod 3), `confirmations = 1`; from the gaps on, the chains make {}. Deploying it took **{:.1} s** (three \
         chains in parallel, one mock member contract per member on its home chain, and every \
         member registered on every vault with a t-signed `setMember`, one transaction after \
         another per chain), against {} for the same consortium with one member. The nodes run \
         with `settle_ms = 20000` (a gap still standing 20 s after a paid draw may open the \
         member's next incident; the benchmark books each draw as soon as it sees it registered) \
         and `[detectors] contagion_members = 1024` (many members of one chain in trouble at once \
         is exactly what the contagion breaker reacts to; this measures agreement, not the \
         breaker). Every member's gap rises by {} units at once (each draw is 50 units, home leg \
         only): each member's gap and booking are sent by a key of its own (funded with \
         `anvil_setBalance`), so that no transaction waits behind another member's nonce, all \
         gaps concurrently, chains in parallel; the {} gap transactions were all answered within \
         {}. The benchmark polls every member's `drawOf(member, 0)` every 200 ms, books a draw \
         (assets = liabilities) as soon as it is registered, and follows every gap and booking \
         until mined (one not mined within 10 s is resent with doubled fees; the run fails if it \
         is still not mined after 30 s).\n",
        c.members,
        c.members,
        c.blocks.describe(),
        c.deploy_s,
        opt(one_member_deploy, |v| format!("{v:.1} s")),
        crate::concurrent::SMALL_GAP_UNITS,
        c.members,
        ms(c.gaps_sent_ms),
    );
    if let Some(last) = c.cert_ms.last() {
        let first = c.cert_ms.first().copied().unwrap_or(0.0);
        let _ = writeln!(
            o,
            "| measure | value |\n| --- | --- |\n| certificates formed | {} of {} ({} timed by their registration: no node's timeline kept the certificate line) |\n| first gap tx → first gap seen by a node (the chain's 1-s block and its confirmation) | {} |\n| first gap tx → first certificate | {} |\n| first gap tx → {}th certificate | {} |\n| **certificates per second** (certificates / time to the last) | **{}** |\n| certificates per second from the first gap seen (certificates / time from it to the last) | {} |\n| certificates per second between the first and the last certificate | {} |\n| proposal → certificate under this load: p50 / p99 | {} |\n| first gap tx → all closed on node-0 | {} |\n| own gap tx → closed on node-0, p50 / p99 | {} |\n| incidents that needed a second attempt (node-0) | {} |\n| draw seen registered by the benchmark → booked, p50 / p99 | {} |\n| first \"registered on chain\" line of any node → booked, p50 / p99 (n), max | {}, {} |\n",
            c.cert_ms.len(),
            c.members,
            c.cert_from_registration,
            opt(c.first_gap_seen_ms, ms),
            ms(first),
            c.cert_ms.len(),
            ms(*last),
            opt(c.certs_per_s(), |v| format!("{v:.1}/s")),
            opt(c.certs_per_s_from_seen(), |v| format!("{v:.1}/s")),
            if last > &first && c.cert_ms.len() > 1 {
                format!(
                    "{:.1}/s",
                    (c.cert_ms.len() - 1) as f64 / ((last - first) / 1000.0)
                )
            } else {
                "n/a".to_owned()
            },
            summary(&c.p2c_ms, ms),
            opt(c.closed_ms.last().copied(), ms),
            summary(&c.own_closed_ms, ms),
            c.retried,
            summary(&c.booking_delay_ms, ms),
            summary(&c.booking_after_registered_ms, ms),
            opt(
                c.booking_after_registered_ms
                    .iter()
                    .copied()
                    .reduce(f64::max),
                ms
            ),
        );
    }
    let _ = writeln!(
        o,
        "**Further draws.** When every first incident was closed, node-0 listed **{}** more \
         incidents of these members (seq ≥ 1), {} of them opened on a gap seen at or before the \
         block that registered the member's first draw. On chain, **{} of {}** members had a \
         second draw (`drawOf(member, 1)`) registered by then, and {} still showed a gap. {}\n",
        c.later_incidents,
        c.later_on_old_block,
        c.second_draws,
        c.members,
        c.gaps_left,
        if c.second_draws == 0 {
            "No member was paid twice in this run.".to_owned()
        } else {
            format!(
                "Each of those members was paid twice for one loss (over-coverage): every \
                 member booked its first draw within {} of the benchmark seeing it registered \
                 on chain (polled every 200 ms), far inside `settle_ms` = 20 s, and {} before \
                 the first node's timeline logged that registration. Node-0's timelines of \
                 these members are under [Raw data](#raw-data).",
                opt(c.booking_delay_ms.iter().copied().reduce(f64::max), ms),
                match c
                    .booking_after_registered_ms
                    .iter()
                    .copied()
                    .reduce(f64::max)
                {
                    Some(v) if v < 0.0 => format!("at least {}", ms(-v)),
                    Some(v) => format!("at most {} after (not before)", ms(v)),
                    None => "n/a".to_owned(),
                }
            )
        }
    );
    let _ = writeln!(
        o,
        "Every gap and booking transaction was mined; {} of them had to be resent (not mined \
         within 10 s).{}\n",
        c.resent.len(),
        c.resent
            .iter()
            .map(|l| format!("\n- {l}"))
            .collect::<String>()
    );
}

/// Memory growth per incident between the first and the last sample of a long series,
/// from the first sample on (start-up allocations are behind it).
fn rss_growth(samples: &[(usize, u64)]) -> String {
    match (samples.first(), samples.last()) {
        (Some(&(n0, k0)), Some(&(n1, k1))) if n1 > n0 => {
            let per = (k1 as f64 - k0 as f64) / (n1 - n0) as f64;
            format!("{per:+.1} KiB per incident over incidents {n0}–{n1}")
        }
        _ => "–".to_owned(),
    }
}

/// Growth per incident of the largest node's RSS over the soak, after its first round
/// (start-up and first-use allocations are behind it), and over its second half.
fn soak_growth(k: &crate::soak::Soak) -> String {
    let largest = k.largest();
    let half = &largest[largest.len() / 2..];
    format!(
        "{}; second half: {}",
        rss_growth(&largest),
        rss_growth(if half.len() >= 2 { half } else { &[] })
    )
}

/// Memory.
fn memory_section(o: &mut String, res: &Results) {
    let _ = writeln!(o, "## Memory (VmRSS of each node process)\n");
    let _ = writeln!(
        o,
        "| when | node-0 … node-(n−1), MiB | largest |\n| --- | --- | --- |"
    );
    for s in res.series.iter().filter(|s| !s.idle_rss_kib.is_empty()) {
        let _ = writeln!(
            o,
            "| idle, ~10 s after ready: {} (1 member) | {} | {} |",
            s.label(),
            s.idle_rss_kib
                .iter()
                .map(|k| mib(*k))
                .collect::<Vec<_>>()
                .join(", "),
            mib(s.idle_rss_kib.iter().copied().max().unwrap_or(0))
        );
    }
    for s in &res.series {
        let _ = writeln!(
            o,
            "| peak over the process's life (VmHWM): {}, run {} ({} incidents) | {} | {} |",
            s.label(),
            s.run,
            s.samples.len(),
            s.hwm_kib
                .iter()
                .map(|k| mib(*k))
                .collect::<Vec<_>>()
                .join(", "),
            mib(s.hwm_kib.iter().copied().max().unwrap_or(0))
        );
    }
    for s in res.series.iter().filter(|s| s.rss_by_incidents.len() >= 2) {
        let _ = writeln!(
            o,
            "| largest RSS after each {} incidents: {}, run {} | {} | growth {} |",
            crate::latency::RSS_EVERY,
            s.label(),
            s.run,
            s.rss_by_incidents
                .iter()
                .map(|(_, k)| mib(*k))
                .collect::<Vec<_>>()
                .join(", "),
            rss_growth(&s.rss_by_incidents)
        );
    }
    let mut worst = res
        .series
        .iter()
        .flat_map(|s| s.idle_rss_kib.iter().chain(s.hwm_kib.iter()).copied())
        .max()
        .unwrap_or(0);
    if let Some(c) = &res.concurrent {
        let rows = [
            (
                format!("idle, ~10 s after ready, {} members configured", c.members),
                &c.idle_rss_kib,
            ),
            (
                format!(
                    "peak during {} concurrent incidents (sampled every 100 ms)",
                    c.members
                ),
                &c.peak_rss_kib,
            ),
            (
                "peak over the process's life (VmHWM), same nodes".to_owned(),
                &c.hwm_kib,
            ),
        ];
        for (what, v) in rows {
            let _ = writeln!(
                o,
                "| {what} | {} | {} |",
                v.iter().map(|k| mib(*k)).collect::<Vec<_>>().join(", "),
                mib(v.iter().copied().max().unwrap_or(0))
            );
            worst = worst.max(v.iter().copied().max().unwrap_or(0));
        }
    }
    if let Some(k) = &res.soak {
        let _ = writeln!(
            o,
            "| soak: idle, ~10 s after ready, {} members configured | {} | {} |",
            k.members,
            k.idle_rss_kib
                .iter()
                .map(|x| mib(*x))
                .collect::<Vec<_>>()
                .join(", "),
            mib(k.idle_rss_kib.iter().copied().max().unwrap_or(0))
        );
        let _ = writeln!(
            o,
            "| soak: largest node RSS after each round of {} incidents ({} incidents in all, rounds of {:.0}–{:.0} s) | {} | growth {} |",
            k.members,
            thousands(k.incidents() as f64),
            k.round_s.iter().copied().fold(f64::INFINITY, f64::min),
            k.round_s.iter().copied().fold(0.0, f64::max),
            k.largest()
                .iter()
                .map(|(_, x)| mib(*x))
                .collect::<Vec<_>>()
                .join(", "),
            soak_growth(k)
        );
    }
    if let Some(r) = &res.restart {
        let records = format!("with {} more stored records", thousands(r.records as f64));
        let after = format!("after {} s of running", RUN_BEFORE_STOP.as_secs());
        let ready_rss: fn(&Start) -> Option<u64> = |s| s.ready_rss_kib;
        let stop_rss: fn(&Start) -> Option<u64> = |s| s.stop_rss_kib;
        for (when, rss, what, starts) in [
            ("right after ready", ready_rss, "as it is", &r.baseline),
            (after.as_str(), stop_rss, "as it is", &r.baseline),
            ("right after ready", ready_rss, records.as_str(), &r.loaded),
            (after.as_str(), stop_rss, records.as_str(), &r.loaded),
        ] {
            let each: Vec<u64> = starts.iter().filter_map(rss).collect();
            if let Some(k) = each.iter().max() {
                let _ = writeln!(
                    o,
                    "| restart test: {} {when}, {what} (each start) | {} | {} |",
                    r.node,
                    each.iter().map(|k| mib(*k)).collect::<Vec<_>>().join(", "),
                    mib(*k)
                );
            }
        }
    }
    let _ = writeln!(
        o,
        "\nTargets: ≤ 40 MiB idle with the concurrent test's members and ≤ 64 MiB at peak \
         during its incidents (largest of every row: {} MiB; {} build).",
        mib(worst),
        res.build_profile
    );
    if let Some(k) = res
        .restart
        .as_ref()
        .and_then(|r| most_kib(&r.loaded, |s| s.ready_rss_kib))
    {
        let _ = writeln!(
            o,
            " Right after a restart with the extra stored records the node holds {} MiB: it \
             reads none of the closed history but the newest 1,024 closed incidents, and \
             RocksDB's block cache (at most 8 MiB) holds what it read.",
            mib(k),
        );
    }
    let _ = writeln!(o);
}

/// Ready times of starts.
fn ready(starts: &[Start]) -> Vec<f64> {
    starts.iter().map(|s| s.ready_ms).collect()
}

/// The largest of one memory figure over starts, KiB.
fn most_kib(starts: &[Start], f: fn(&Start) -> Option<u64>) -> Option<u64> {
    starts.iter().filter_map(f).max()
}

/// Memory before → after each restart, in MiB.
fn before_after(pairs: &[(u64, u64)]) -> String {
    if pairs.is_empty() {
        return "n/a".to_owned();
    }
    pairs
        .iter()
        .map(|(before, after)| format!("{} → {}", mib(*before), mib(*after)))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The CPU profile of a node under the concurrent incidents.
fn profile_section(o: &mut String, res: &Results) {
    let Some(profile) = res.concurrent.as_ref().and_then(|c| c.profile.as_ref()) else {
        return;
    };
    let _ = writeln!(
        o,
        "## CPU profile of a node under the concurrent incidents\n\n`perf record -F {} -p <pid>` \
         of one node for {} s from the first gap of the concurrent test ({} build), \
         summarised with `perf report --no-children --sort dso[,sym]`.\n",
        crate::profile::HZ,
        crate::profile::SECONDS,
        res.build_profile,
    );
    let p = match profile {
        Ok(p) => p,
        Err(e) => {
            let _ = writeln!(o, "Not profiled: {e}.\n");
            return;
        }
    };
    let _ = writeln!(
        o,
        "{}: {} samples; the process used {} of a CPU over the window (user + system time, \
         `/proc/<pid>/stat`).\n\n| object | share of samples |\n| --- | --- |",
        p.node,
        thousands(p.samples as f64),
        opt(p.cores, |c| format!("{c:.2}")),
    );
    for (percent, object) in &p.objects {
        let _ = writeln!(o, "| `{object}` | {percent:.1} % |");
    }
    let _ = writeln!(
        o,
        "\nThe hottest symbols:\n\n| share | object | symbol |\n| --- | --- | --- |"
    );
    for (percent, object, symbol) in &p.symbols {
        let symbol: String = symbol.chars().take(120).collect();
        let _ = writeln!(
            o,
            "| {percent:.1} % | `{object}` | `{}` |",
            symbol.replace('|', "\\|")
        );
    }
    let _ = writeln!(o);
}

/// Restart.
fn restart_section(o: &mut String, res: &Results) {
    let _ = writeln!(o, "## Restart (process start → `GetStatus` ready)\n");
    let Some(r) = &res.restart else {
        let _ = writeln!(o, "Not measured (see below).\n");
        return;
    };
    let _ = writeln!(
        o,
        "A fresh 4-node consortium with one member (1-s blocks, `confirmations = 1`). {} is \
         stopped (SIGTERM: it flushes its store) and started three times as it is (a store with \
         no incident), then {} closed `IncidentRecord`s (100 made-up members × {} sequence \
         numbers, each with a registered three-leg draw and both remote legs done) are written \
         into its RocksDB store with `backstop_store::open_node_store(<data_dir>/state)` and \
         `close_incident` and flushed ({:.1} s; the store directory grew from {:.1} to {:.1} \
         MiB), and it is started three times more. Times are from spawning the process to the \
         first answer of `GetStatus` (API up) and to `GetStatus.ready = true` (the node has \
         loaded its state and every chain has a confirmed head in its snapshot), polled every \
         20 ms. Each start runs {} s after ready before it is stopped; its VmRSS is read right \
         after ready and just before the stop (the memory table above). The other three nodes \
         keep running.\n",
        r.node,
        thousands(r.records as f64),
        r.records / 100,
        r.write_s,
        r.store_mib.0,
        r.store_mib.1,
        RUN_BEFORE_STOP.as_secs(),
    );
    let row = |starts: &[Start]| {
        let list = |f: fn(&Start) -> f64| {
            starts
                .iter()
                .map(|s| thousands(f(s)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let api: Vec<f64> = starts.iter().map(|s| s.api_ms).collect();
        format!(
            "{} | {} | {} | {}",
            list(|s| s.api_ms),
            opt(median(&api), ms),
            list(|s| s.ready_ms),
            opt(median(&ready(starts)), ms)
        )
    };
    let _ = writeln!(
        o,
        "| store | API up (ms) | median | ready (ms) | median |\n| --- | --- | --- | --- | --- |\n| as is | {} |\n| + {} records | {} |\n",
        row(&r.baseline),
        thousands(r.records as f64),
        row(&r.loaded),
    );
    if let Some(t) = r.loaded.first().map(|s| s.incidents_total) {
        let _ = writeln!(
            o,
            "Once ready with the records, its `GetStatus.incidents_total` was {} (the operator journal keeps at most 4,096 incidents).\n",
            thousands(f64::from(t))
        );
    }
}

/// Gas.
fn gas_section(o: &mut String, res: &Results) {
    let _ = writeln!(o, "## Gas\n");
    let Some(g) = &res.gas else {
        let _ = writeln!(o, "Not measured (see below).\n");
        return;
    };
    let _ = writeln!(
        o,
        "**Foundry** (`contracts-bindings/forge.sh test --match-path test/BackstopVault.gas.t.sol -vv`): \
         execution gas measured with `gasleft()` around the call (no 21,000 base, no calldata), \
         each call on its own fresh vault paying a recipient with no token balance yet (the \
         expensive case):\n"
    );
    if let Some(e) = &g.forge_error {
        let _ = writeln!(o, "Failed: `{}`\n", e.lines().next().unwrap_or_default());
    } else {
        let _ = writeln!(
            o,
            "| function | signatures | execution gas | test |\n| --- | --- | --- | --- |"
        );
        let mut rows = g.forge.rows.clone();
        rows.sort_by_key(|x| (x.function.clone(), x.n, x.k));
        for x in rows {
            let _ = writeln!(
                o,
                "| `{}`{} | {}-of-{} | {} | `{}` |",
                x.function,
                x.legs.map_or(String::new(), |l| format!(" ({l} legs)")),
                x.k,
                x.n,
                thousands(x.gas as f64),
                x.test
            );
        }
        let marginal: Vec<f64> = g.forge.marginal.iter().map(|(_, v)| *v as f64).collect();
        if let Some((lo, hi)) = range(&marginal) {
            let _ = writeln!(
                o,
                "\nEach signature beyond t adds {}–{} gas to `releaseLeg` (`test_gas_releaseLeg_marginalCostPerSignature`, {} measurements).",
                thousands(lo),
                thousands(hi),
                marginal.len()
            );
        }
        let _ = writeln!(
            o,
            "\nThe Foundry test measures `registerDraw` for 3-of-4 (2 legs) only; 5-of-7 and 7-of-10 come from the transactions below.\n"
        );
    }
    let _ = writeln!(
        o,
        "**Transactions on anvil** (receipt `gasUsed`: 21,000 base + calldata + execution, what \
         a submitter pays for): a consortium of 3 chains guarded by n keys; `registerDraw` of a \
         draw with legs on all three chains (home leg paid in the same call) and `releaseLeg` of \
         one remote leg, each with exactly t signatures, recipients with no prior balance:\n"
    );
    let _ = writeln!(
        o,
        "| guardians | signatures | `registerDraw` (3 legs) | `releaseLeg` |\n| --- | --- | --- | --- |"
    );
    for x in &g.onchain {
        let _ = writeln!(
            o,
            "| {} | {}-of-{} | {} | {} |",
            x.n,
            x.t,
            x.n,
            thousands(x.register as f64),
            thousands(x.release as f64)
        );
    }
    let _ = writeln!(
        o,
        "\n**Sent by the nodes** during the latency series (receipts of the incidents' transactions; the recipient already holds tokens after the first incident, so these are the warm case):\n"
    );
    let _ = writeln!(
        o,
        "| configuration | signatures in the registration | `registerDraw` median | `releaseLeg` median |\n| --- | --- | --- | --- |"
    );
    for (n, mining) in CONFIGS {
        let series = series_of(res, n, mining);
        if series.is_empty() {
            continue;
        }
        let s = pooled(&series);
        let reg = vals(&s, |x| x.register_gas.map(|g| g as f64));
        let rel: Vec<f64> = s
            .iter()
            .flat_map(|x| x.release_gas.iter().map(|g| *g as f64))
            .collect();
        let mut sigs: Vec<usize> = s.iter().filter_map(|x| x.register_sigs).collect();
        sigs.sort_unstable();
        sigs.dedup();
        let _ = writeln!(
            o,
            "| {n} nodes, {} | {} | {} | {} |",
            mining.label(),
            sigs.iter()
                .map(|k| format!("{k}-of-{n}"))
                .collect::<Vec<_>>()
                .join(", "),
            opt(median(&reg), thousands),
            opt(median(&rel), thousands),
        );
    }
    let _ = writeln!(o);
}

/// From the in-process benchmark's line for `n` nodes ("certificates n=19: 17.1 incidents
/// certified/s (… , 324.9 node-certificates/s)"): (incidents certified at every node per
/// second, node-certificates per second).
fn in_process_rates(text: &str, n: usize) -> Option<(f64, f64)> {
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix(&format!("certificates n={n}: ")))?;
    let incidents = line.split_whitespace().next()?.parse().ok()?;
    let per_node = line
        .rsplit_once(", ")?
        .1
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some((incidents, per_node))
}

/// The agreement core's certificates per second in process, from the release benchmark.
fn certificates_section(o: &mut String, res: &Results) {
    let Some(text) = &res.certificates_bench else {
        return;
    };
    let _ = writeln!(o, "## Agreement in process (certificates per second)\n");
    let _ = writeln!(
        o,
        "`cargo bench -p backstop-agreement --bench certificates`, release, which \
         `testnet/bench` runs before the rest: n agreement machines in one thread (so on one \
         CPU), 200 incidents each going observation → proposal → n attestations → a \
         certificate at every node; every message is signed with ed25519 by its sender and \
         verified by every receiver, every attestation is a secp256k1 signature its receivers \
         verify; stores in memory. *Incidents certified/s* is the whole consortium's rate \
         (every node certifies every incident, all on one CPU); *node-certificates/s* is n \
         times that: the rate at which one node, with a CPU to itself, would take in \
         incidents of n signatures each.\n"
    );
    let _ = writeln!(o, "```\n{}\n```\n", text.trim());
    if let Some((all, per_node)) = in_process_rates(text, 19) {
        let _ = writeln!(
            o,
            "Against Wormhole's consensus benchmark (19 guardians × 1,000 messages in about \
             7.5 s: {WORMHOLE_PER_S:.0} messages/s, as one guardian processes them, each with \
             19 signatures): one node takes in {per_node:.1} incidents/s of 19 signatures; the \
             whole 19-node consortium on one CPU certifies {all:.1}/s.\n"
        );
    }
}

/// The stress scenarios' cost per confirmed head, from the release benchmark.
fn stress_section(o: &mut String, res: &Results) {
    let Some(text) = &res.stress_bench else {
        return;
    };
    let _ = writeln!(
        o,
        "## Stress evaluation per confirmed head
"
    );
    let _ = writeln!(
        o,
        "What a node spends at every confirmed head on the stress scenarios \
         (`backstop_stress::evaluate`), measured by `cargo bench -p backstop-stress --bench \
         evaluate` in a release build, which `testnet/bench` runs before the rest:\n"
    );
    let _ = writeln!(o, "```\n{}\n```\n", text.trim());
    let _ = writeln!(
        o,
        "The early warning's lead over the gap it announces is measured by \
         `testnet/drill early-warning` (it prints the home-chain blocks between the level-1 \
         alert on every vault and the gap; CI runs it).\n"
    );
}

/// What could not be measured, and caveats.
fn limits_section(o: &mut String, res: &Results) {
    let _ = writeln!(o, "## Limits of these numbers\n");
    let _ = writeln!(
        o,
        "- One machine ({} build of the node): nodes, chains and the driver compete for the \
         same CPUs; separate machines would be faster, network latency aside.\n\
         - Loopback only: no network latency or loss between nodes or to the RPC endpoints.\n\
         - anvil is not a real chain: no mempool delay, no reorgs, instant receipts. With \
         1-s blocks transactions are still mined at once (the timer only adds empty blocks), so \
         what the 1-s setting adds is the wait for one confirmation.\n\
         - p99 over 20–60 incidents is the slowest one or close to it, not a stable tail estimate.",
        res.build_profile
    );
    for (phase, e) in &res.failures {
        // The error, then what a node printed when it gave up ("backstop: …").
        let mut lines: Vec<&str> = e.lines().take(1).collect();
        lines.extend(e.lines().filter(|l| l.starts_with("backstop: ")).take(3));
        let _ = writeln!(
            o,
            "- **Failed: {phase}** — `{}`{}",
            lines.join(" / ").replace('`', "'"),
            if phase.contains("attempt 1 of 2")
                && !res
                    .failures
                    .iter()
                    .any(|(p, _)| { p == &phase.replace("attempt 1 of 2", "attempt 2 of 2") })
            {
                " (run again on a fresh consortium: the numbers above are from that second attempt)"
            } else {
                ""
            }
        );
    }
    let _ = writeln!(o);
}

/// Per-incident data.
fn raw_section(o: &mut String, res: &Results) {
    let _ = writeln!(o, "## Raw data\n");
    for s in &res.series {
        let _ = writeln!(
            o,
            "<details><summary>{}, run {}: deploy {:.1} s, nodes ready {:.1} s, {} incidents</summary>\n",
            s.label(),
            s.run,
            s.deploy_s,
            s.start_s,
            s.samples.len()
        );
        let _ = writeln!(
            o,
            "| seq | recovery ms | blocks | last leg chain | legs | gap tx → node-0 seen ms | node share own ms | from first sight ms | proposal→cert ms | submitter | attempt | reopened |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
        );
        for x in &s.samples {
            let f = |v: Option<f64>| v.map_or("n/a".to_owned(), |v| format!("{v:.0}"));
            let _ = writeln!(
                o,
                "| {} | {:.0} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                x.seq,
                x.recovery_ms,
                x.recovery_blocks
                    .map_or("n/a".to_owned(), |b| b.to_string()),
                x.last_leg_chain,
                x.legs,
                f(x.seen_ms),
                f(x.node_share_ms),
                f(x.share_any_ms),
                f(x.proposal_to_cert_ms),
                x.submitter
                    .map_or("n/a".to_owned(), |i| format!("node-{i}")),
                x.attempt,
                if x.reopened { "yes" } else { "" }
            );
        }
        let _ = writeln!(o, "\n</details>\n");
    }
    if let Some(c) = res
        .concurrent
        .as_ref()
        .filter(|c| !c.later_traces.is_empty())
    {
        let _ = writeln!(
            o,
            "<details><summary>{} concurrent incidents: node-0's timelines of the {} members with a later incident</summary>\n\n```",
            c.members,
            c.later_traces.len()
        );
        for trace in &c.later_traces {
            for line in trace {
                let _ = writeln!(o, "{line}");
            }
            let _ = writeln!(o);
        }
        let _ = writeln!(o, "```\n\n</details>\n");
    }
    if let Some(c) = &res.concurrent {
        let _ = writeln!(
            o,
            "<details><summary>{} concurrent incidents: first gap tx → certificate, per incident (ms, sorted)</summary>\n\n{}\n\n</details>\n",
            c.members,
            c.cert_ms
                .iter()
                .map(|v| format!("{v:.0}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
}

#[cfg(test)]
mod tests {
    use super::in_process_rates;

    #[test]
    fn the_in_process_rates_are_read_from_the_benchmarks_lines() {
        let text = "release build, 2 CPUs, 1-minute load average 1.06 before\n\
            certificates n=4: 398.9 incidents certified/s (800 certificates at 4 nodes, 1595.5 node-certificates/s)\n\
            certificates n=19: 17.1 incidents certified/s (3800 certificates at 19 nodes, 324.9 node-certificates/s)\n";
        assert_eq!(in_process_rates(text, 19), Some((17.1, 324.9)));
        assert_eq!(in_process_rates(text, 4), Some((398.9, 1595.5)));
        assert_eq!(in_process_rates(text, 7), None);
        assert_eq!(in_process_rates("certificates n=19: fast", 19), None);
    }
}
