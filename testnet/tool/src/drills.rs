//! Crisis drills on a running testnet: each plays one row of the recovery table against the
//! live nodes and checks the outcome on chain, printing the evidence (balances before and
//! after, transaction hashes from the nodes' API, frozen flags, alert levels) and a verdict.
//!
//! Invariants:
//! - every wait is bounded ([`PATIENCE`] unless said otherwise): a drill that does not get
//!   its outcome fails, it never hangs;
//! - a drill starts from a quiet testnet (no incident open anywhere) and restores what it
//!   changed (gaps booked, oracles and mining back to normal, freezes and alerts lifted by
//!   operator requests signed by t nodes, crashed nodes restarted), so drills can run one
//!   after another on the same testnet;
//! - gaps open by raising liabilities, never by lowering assets (a fall in assets is what
//!   the exploit detector looks for), except in the exploit drill itself;
//! - before a drill puts a member in trouble, it waits until no other member of the same
//!   home chain was in trouble within the nodes' contagion window, so that only the
//!   contagion drill trips contagion;
//! - a check compares with what the nodes or the chains report; the drills never adjust
//!   an expectation to a node's misbehaviour.

use std::fmt::Display;
use std::time::{Duration, Instant};

use alloy::primitives::{B256, I256, U256};
use anyhow::{Context, Result, bail};
use backstop_api::AdminRequest;
use backstop_api::proto::{EffectStatus, Incident, IncidentPhase, LegStatus};
use backstop_contracts::testing::{
    BUCKET_CAPACITY, MEMBER_DEDUCTIBLE, ORACLE_ANSWER, REFILL_PER_SECOND,
};

mod foresight;
mod governance;
mod rotation;

use crate::aave::{self, AAVE_MEMBER};
use crate::deploy::{self, HALT_AFTER_SECS, SIGNAL_WINDOW_SECS};
use crate::net::{self, Net, amount, chain_subject, now_ms, pusd, units, wait_until};
use crate::state::{Proc, alive};
use alloy::providers::ext::AnvilApi;
use backstop_contracts::aave::{IAaveOracle, IAavePool, IMintableErc20, USER_GAS};
use backstop_types::pool_subject;

/// The drills, in the order `drill all` runs them.
pub const NAMES: [&str; 15] = [
    "margin-exhaustion",
    "stress-shortfall",
    "early-warning",
    "oracle-malfunction",
    "exploit",
    "chain-halt",
    "contagion",
    "node-crash",
    "rpc-outage",
    "pool-exhausted",
    "member-never-books",
    "aave-bad-debt",
    "change-limits",
    "onboard-member",
    "rotate-guardian",
];

/// Bound of every wait for the consortium to act.
const PATIENCE: Duration = Duration::from_secs(120);

/// How long a drill watches that nothing is paid.
const QUIET: Duration = Duration::from_secs(10);

/// How often an unanswered operator request is repeated.
const REQUEST_AGAIN: Duration = Duration::from_secs(20);

/// The first, second and third chain.
const A: u64 = deploy::CHAINS[0];
const B: u64 = deploy::CHAINS[1];
const C: u64 = deploy::CHAINS[2];

/// What a drill found, printed as it goes.
pub struct Report {
    /// Drill name.
    name: String,
    /// Every check so far: (passed, what).
    checks: Vec<(bool, String)>,
    /// When the drill started.
    started: Instant,
}

impl Report {
    /// Starts the report of drill `name`.
    fn new(name: &str) -> Report {
        println!();
        println!("=== drill {name} ===");
        Report {
            name: name.to_owned(),
            checks: Vec::new(),
            started: Instant::now(),
        }
    }

    /// A step the drill takes.
    fn step(&self, text: impl Display) {
        println!("  [{:>5.1} s] {text}", self.started.elapsed().as_secs_f64());
    }

    /// Evidence.
    fn note(&self, text: impl Display) {
        println!("              {text}");
    }

    /// A verified expectation; returns `ok`.
    fn check(&mut self, ok: bool, what: impl Display) -> bool {
        println!("  {} {what}", if ok { "[ok]  " } else { "[FAIL]" });
        self.checks.push((ok, what.to_string()));
        ok
    }

    /// Every check passed (and there was at least one).
    fn passed(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(|(ok, _)| *ok)
    }
}

/// How a drill ended.
pub struct Outcome {
    /// Drill name.
    pub name: String,
    /// Every check passed.
    pub passed: bool,
    /// Wall time.
    pub took: Duration,
    /// Its main incident: (member index, seq), if it got that far.
    pub incident: Option<(usize, u64)>,
    /// The failed checks.
    pub failures: Vec<String>,
}

/// Runs drill `name` on `net`: prepare (quiet testnet), the drill, restore; prints the
/// verdict.
pub async fn run(net: &mut Net, name: &str) -> Result<Outcome> {
    if !NAMES.contains(&name) {
        bail!("no drill {name:?}; drills: {}, all", NAMES.join(", "));
    }
    let mut r = Report::new(name);
    let mut incident = None;
    match prepare(net, &mut r).await {
        Err(e) => {
            r.check(false, format!("preparing the drill: {e:#}"));
        }
        Ok(false) => {}
        Ok(true) => {
            let result = match name {
                "margin-exhaustion" => margin_exhaustion(net, &mut r).await,
                "oracle-malfunction" => oracle_malfunction(net, &mut r).await,
                "exploit" => exploit(net, &mut r).await,
                "chain-halt" => chain_halt(net, &mut r).await,
                "contagion" => contagion(net, &mut r).await,
                "node-crash" => node_crash(net, &mut r).await,
                "rpc-outage" => rpc_outage(net, &mut r).await,
                "member-never-books" => member_never_books(net, &mut r).await,
                "aave-bad-debt" => aave_bad_debt(net, &mut r).await,
                "early-warning" => foresight::early_warning(net, &mut r).await,
                "stress-shortfall" => foresight::stress_shortfall(net, &mut r).await,
                "change-limits" => governance::change_limits(net, &mut r).await,
                "onboard-member" => governance::onboard_member(net, &mut r).await,
                "rotate-guardian" => rotation::rotate_guardian(net, &mut r).await,
                _ => pool_exhausted(net, &mut r).await,
            };
            match result {
                Ok(i) => incident = i,
                Err(e) => {
                    r.check(false, format!("the drill stopped: {e:#}"));
                }
            }
        }
    }
    r.step("restoring the testnet for the next drill");
    match restore(net, &r).await {
        Ok(clean) => {
            r.check(
                clean,
                "testnet restored: nodes up, chains mining, oracles at 1.00, no gap, no incident open, no freeze, no alert",
            );
        }
        Err(e) => {
            r.check(false, format!("restoring the testnet: {e:#}"));
        }
    }
    net.save()?;
    let outcome = Outcome {
        name: name.to_owned(),
        passed: r.passed(),
        took: r.started.elapsed(),
        incident,
        failures: r
            .checks
            .iter()
            .filter(|(ok, _)| !ok)
            .map(|(_, w)| w.clone())
            .collect(),
    };
    println!(
        "VERDICT {}: {} ({} checks, {:.0} s)",
        r.name,
        if outcome.passed { "PASS" } else { "FAIL" },
        r.checks.len(),
        outcome.took.as_secs_f64()
    );
    Ok(outcome)
}

// ------------------------------------------------------------------ shared steps

/// Every node reports no open incident.
async fn quiet(net: &Net) -> Result<bool> {
    for api in net.apis() {
        if !net::incidents(&api, true).await?.is_empty() {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Repairs what an interrupted earlier drill left behind, then waits for a quiet testnet.
/// Returns whether the drill can start.
async fn prepare(net: &mut Net, r: &mut Report) -> Result<bool> {
    let fixed = repair(net).await?;
    if !fixed.is_empty() {
        r.step("repairing what an earlier run left behind:");
        for f in &fixed {
            r.note(f);
        }
    }
    let ok = wait_until(PATIENCE, async || quiet(net).await).await;
    if !r.check(ok, "no incident open on any node before the drill") {
        for api in net.apis() {
            for i in net::incidents(&api, true).await.unwrap_or_default() {
                r.note(format!("{api}: {} is {}", i.id, net::phase_name(&i)));
            }
        }
        return Ok(false);
    }
    let leftovers = lift_all(net, r).await?;
    Ok(r.check(
        leftovers,
        "no member frozen and no alert raised on any vault",
    ))
}

/// Puts back what drills change, without waiting for the consortium: dead nodes
/// restarted, halted chains mining, oracles at 1.00, gaps booked. Returns what it did.
async fn repair(net: &mut Net) -> Result<Vec<String>> {
    let mut done = Vec::new();
    for i in 0..net.state.nodes.len() {
        let node = net.node(i)?.clone();
        if !Proc::node(&node).alive() {
            let pid = deploy::restart_node(net, i)?;
            done.push(format!(
                "{} was not running: restarted (pid {pid})",
                node.name
            ));
            let node = net.node(i)?.clone();
            deploy::wait_ready(&net.state, &[&node], Duration::from_secs(90)).await?;
        }
    }
    for c in net.chain_ids() {
        // A drill that failed while an RPC was frozen leaves it frozen: thaw (harmless
        // when it is not).
        net.thaw_rpc(c)?;
        if net.head_age_s(c).await? > 3 {
            net.resume(c).await?;
            done.push(format!("chain {c} was not mining: resumed"));
        }
        if net.oracle_answer(c).await? != Net::normal_answer() {
            net.set_oracle(c, Net::normal_answer()).await?;
            done.push(format!("the oracle of chain {c} was off: back to 1.00"));
        }
    }
    for i in 0..net.state.members.len() {
        if net.close_gap(i).await? {
            done.push(format!("{} had a gap: booked", net.member(i)?.name));
        }
        if net.clear_exposures(i).await? {
            done.push(format!(
                "{} reported exposures: cleared",
                net.member(i)?.name
            ));
        }
    }
    Ok(done)
}

/// Restores the testnet after a drill; returns whether it is clean.
async fn restore(net: &mut Net, r: &Report) -> Result<bool> {
    for f in repair(net).await? {
        r.note(f);
    }
    if !wait_until(PATIENCE, async || quiet(net).await).await {
        r.note("incidents are still open on some node");
        return Ok(false);
    }
    lift_all(net, r).await
}

/// Every (chain, subject) with a raised alert, for every member and chain subject.
async fn raised_alerts(net: &Net) -> Result<Vec<(u64, B256, String, u8)>> {
    let mut subjects: Vec<(B256, String)> = net
        .state
        .members
        .iter()
        .map(|m| (m.id, m.name.clone()))
        .collect();
    for c in net.chain_ids() {
        subjects.push((chain_subject(c), format!("chain {c}")));
    }
    subjects.push((pool_subject(), "the pool".to_owned()));
    let mut out = Vec::new();
    for (subject, what) in subjects {
        for (c, level) in net
            .chain_ids()
            .into_iter()
            .zip(net.alert_levels(subject).await?)
        {
            if level > 0 {
                out.push((c, subject, what.clone(), level));
            }
        }
    }
    Ok(out)
}

/// Members frozen on some vault: (member index, chains).
async fn frozen_members(net: &Net) -> Result<Vec<(usize, Vec<u64>)>> {
    let mut out = Vec::new();
    for i in 0..net.state.members.len() {
        let chains: Vec<u64> = net
            .chain_ids()
            .into_iter()
            .zip(net.frozen(i).await?)
            .filter(|(_, f)| *f)
            .map(|(c, _)| c)
            .collect();
        if !chains.is_empty() {
            out.push((i, chains));
        }
    }
    Ok(out)
}

/// Lifts every freeze and alert by operator requests (t nodes sign each lift), repeating
/// unanswered requests; returns whether none is left within [`PATIENCE`].
async fn lift_all(net: &Net, r: &Report) -> Result<bool> {
    let deadline = Instant::now() + PATIENCE;
    let mut last_request: Option<Instant> = None;
    let mut round = 0usize;
    loop {
        let frozen = frozen_members(net).await?;
        let alerts = raised_alerts(net).await?;
        if frozen.is_empty() && alerts.is_empty() {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            for (i, chains) in &frozen {
                r.note(format!(
                    "{} still frozen on {chains:?}",
                    net.member(*i)?.name
                ));
            }
            for (c, _, what, level) in &alerts {
                r.note(format!(
                    "alert {level} for {what} still raised on chain {c}"
                ));
            }
            return Ok(false);
        }
        if last_request.is_none_or(|t| t.elapsed() >= REQUEST_AGAIN) {
            // Ask a different node each round (any node's operator may ask).
            let node = round % net.state.nodes.len();
            round += 1;
            last_request = Some(Instant::now());
            for (i, _) in &frozen {
                let member = net.member(*i)?;
                let request = AdminRequest::Unfreeze {
                    chain_id: None,
                    member: member.id.0,
                };
                let answer = net.admin(node, &request).await;
                r.step(format!(
                    "operator of node-{node}: RequestUnfreeze({}) -> {}",
                    member.name,
                    answer.unwrap_or_else(|e| format!("{e:#}"))
                ));
            }
            for (c, subject, what, level) in &alerts {
                let request = AdminRequest::ClearAlert {
                    chain_id: *c,
                    subject: subject.0,
                };
                let answer = net.admin(node, &request).await;
                r.step(format!(
                    "operator of node-{node}: RequestAlertClear(chain {c}, {what}, level {level}) -> {}",
                    answer.unwrap_or_else(|e| format!("{e:#}"))
                ));
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Waits until no other member of member `i`'s home chain was in trouble (a gap standing)
/// within the nodes' contagion window, so that this drill trips no contagion.
async fn avoid_contagion(net: &Net, r: &Report, i: usize) -> Result<()> {
    let (home, me) = (net.member(i)?.home_chain_id, net.member(i)?.id);
    let last = net
        .state
        .members
        .iter()
        .filter(|m| m.home_chain_id == home && m.id != me)
        .filter_map(|m| net.state.troubles.get(&m.id).map(|&t| (t, m.name.clone())))
        .max();
    if let Some((at, other)) = last {
        let until = at + (SIGNAL_WINDOW_SECS + 5) * 1000;
        let now = now_ms();
        if now < until {
            r.step(format!(
                "waiting {} s: {other}'s gap on chain {home} ended {} s ago and the nodes count members of one chain in trouble within {SIGNAL_WINDOW_SECS} s (contagion)",
                (until - now).div_ceil(1000),
                (now - at) / 1000
            ));
            tokio::time::sleep(Duration::from_millis(until - now)).await;
        }
    }
    Ok(())
}

/// Every node reports member `i`'s incident `seq` closed (within `timeout`).
async fn closed_everywhere(net: &Net, i: usize, seq: u64, timeout: Duration) -> Result<bool> {
    let id = net.member(i)?.id;
    Ok(wait_until(timeout, async || {
        for api in net.apis() {
            match net::incident(&api, id, seq).await? {
                Some(inc) if net::is_closed(&inc) => {}
                _ => return Ok(false),
            }
        }
        Ok(true)
    })
    .await)
}

/// Notes how each node sees member `i`'s incident `seq`.
async fn note_phases(net: &Net, r: &Report, i: usize, seq: u64) {
    let Ok(m) = net.member(i) else { return };
    for n in &net.state.nodes {
        let seen = match net::incident(&n.api, m.id, seq).await {
            Ok(Some(inc)) => format!(
                "{} (attempt {}, {} tx)",
                net::phase_name(&inc),
                inc.attempt,
                inc.tx_hashes.len()
            ),
            Ok(None) => "unknown".into(),
            Err(e) => format!("unreachable: {e:#}"),
        };
        r.note(format!("{}: incident {seq} {seen}", n.name));
    }
}

/// Member `i`'s incident `seq` as node `node` reports it.
async fn api_incident(net: &Net, node: usize, i: usize, seq: u64) -> Result<Incident> {
    let id = net.member(i)?.id;
    net::incident(&net.node(node)?.api, id, seq)
        .await?
        .with_context(|| {
            format!(
                "node-{node} does not know incident {}",
                net::incident_id(id, seq)
            )
        })
}

/// The leg of `inc` on `chain_id` (zero if none).
fn leg_on(inc: &Incident, chain_id: u64) -> Result<U256> {
    inc.legs
        .iter()
        .find(|l| l.chain_id == chain_id)
        .map_or(Ok(U256::ZERO), |l| amount(&l.amount))
}

/// Chains with a non-zero leg in `inc`.
fn leg_chains(inc: &Incident) -> Result<Vec<u64>> {
    let mut out = Vec::new();
    for l in &inc.legs {
        if !amount(&l.amount)?.is_zero() {
            out.push(l.chain_id);
        }
    }
    Ok(out)
}

/// Checks that member `i`'s recipient received exactly each leg of `inc` on each chain
/// and, with `vaults_before`, that each vault paid exactly that; prints the evidence.
async fn check_payout(
    net: &Net,
    r: &mut Report,
    i: usize,
    inc: &Incident,
    recipients_before: &[U256],
    vaults_before: Option<&[U256]>,
) -> Result<()> {
    let recipients_after = net.recipients(i).await?;
    let vaults_after = net.vault_balances().await?;
    r.note(format!(
        "incident {} ({}): gap {}, draw {}, uncovered {}, draw hash {}",
        inc.id,
        net::phase_name(inc),
        pusd(amount(&inc.gap)?),
        pusd(amount(&inc.draw_amount)?),
        pusd(amount(&inc.uncovered_amount)?),
        inc.draw_hash
    ));
    r.note(format!(
        "{:<7} {:>16} {:<9} {:>36} {:>36}  transaction",
        "chain", "leg (API)", "status", "recipient before -> after", "vault before -> after"
    ));
    let (mut recipients_ok, mut vaults_ok) = (true, true);
    let mut sum = U256::ZERO;
    for (k, c) in net.chain_ids().into_iter().enumerate() {
        let leg = inc.legs.iter().find(|l| l.chain_id == c);
        let want = leg_on(inc, c)?;
        sum += want;
        let got = recipients_after[k].saturating_sub(recipients_before[k]);
        recipients_ok &= recipients_after[k] >= recipients_before[k] && got == want;
        let vault = match vaults_before {
            Some(before) => {
                vaults_ok &= before[k] >= vaults_after[k] && before[k] - vaults_after[k] == want;
                format!("{} -> {}", pusd(before[k]), pusd(vaults_after[k]))
            }
            None => format!("? -> {}", pusd(vaults_after[k])),
        };
        let status = leg.map_or("-".to_owned(), |l| {
            LegStatus::try_from(l.status).map_or(format!("{}", l.status), |s| {
                s.as_str_name()
                    .trim_start_matches("LEG_STATUS_")
                    .to_lowercase()
            })
        });
        r.note(format!(
            "{c:<7} {:>16} {status:<9} {:>36} {vault:>36}  {}",
            pusd(want),
            format!(
                "{} -> {}",
                pusd(recipients_before[k]),
                pusd(recipients_after[k])
            ),
            leg.map_or("", |l| l.tx_hash.as_str())
        ));
    }
    r.note(format!(
        "transactions of the incident: {}",
        inc.tx_hashes.join(", ")
    ));
    r.check(
        recipients_ok,
        format!(
            "{}'s recipient received exactly its leg on each chain",
            net.member(i)?.name
        ),
    );
    if vaults_before.is_some() {
        r.check(vaults_ok, "each vault paid exactly its leg");
    }
    r.check(
        sum == amount(&inc.draw_amount)?,
        format!("the legs add up to the draw ({})", pusd(sum)),
    );
    Ok(())
}

/// Notes what each vault can pay now.
async fn note_capacity(net: &Net, r: &Report) -> Result<Vec<U256>> {
    let available = net.available().await?;
    r.note(format!(
        "vaults can pay now (balance above reserve, capped by the outflow bucket): {}",
        net.chain_ids()
            .iter()
            .zip(&available)
            .map(|(c, a)| format!("{c}: {}", pusd(*a)))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    Ok(available)
}

/// Notes every raised alert.
async fn note_alerts(net: &Net, r: &Report) -> Result<()> {
    let alerts = raised_alerts(net).await?;
    if alerts.is_empty() {
        r.note("alerts raised: none");
    }
    for (c, _, what, level) in alerts {
        r.note(format!(
            "alert raised on the vault of chain {c}: {what} at level {level}"
        ));
    }
    Ok(())
}

/// Notes the active breakers node 0 reports, with their on-chain effects (waiting a few
/// seconds for node 0 to see the effects' transactions confirmed).
async fn note_breakers(net: &Net, r: &Report) -> Result<()> {
    let api = net.node(0)?.api.clone();
    wait_until(Duration::from_secs(15), async || {
        Ok(net::breakers(&api, true)
            .await?
            .iter()
            .flat_map(|b| &b.effects)
            .all(|e| e.status != EffectStatus::Pending as i32))
    })
    .await;
    for b in net::breakers(&api, true).await? {
        r.note(format!("node-0 breaker {}: {}", b.id, b.cause));
        for e in &b.effects {
            let status = EffectStatus::try_from(e.status).map_or(format!("{}", e.status), |s| {
                s.as_str_name()
                    .trim_start_matches("EFFECT_STATUS_")
                    .to_lowercase()
            });
            r.note(format!(
                "  {} {} on chain {} (level {}): {status}{}",
                e.action,
                subject_name(net, &e.subject),
                e.chain_id,
                e.level,
                if e.tx_hash.is_empty() {
                    String::new()
                } else {
                    format!(" in {}", e.tx_hash)
                }
            ));
        }
    }
    Ok(())
}

/// A member's name or `chain N` for a subject from the API (the hex itself otherwise).
fn subject_name(net: &Net, subject: &str) -> String {
    for m in &net.state.members {
        if subject.eq_ignore_ascii_case(&m.id.to_string()) {
            return m.name.clone();
        }
    }
    for c in net.chain_ids() {
        if subject.eq_ignore_ascii_case(&chain_subject(c).to_string()) {
            return format!("chain {c}");
        }
    }
    subject.to_owned()
}

/// Opens a gap for member `i`, lets it book the draw once registered, waits until every
/// node closed the incident. Returns the seq and whether it was registered and closed.
async fn cover(net: &mut Net, r: &mut Report, i: usize, gap: U256) -> Result<(u64, bool)> {
    let m = net.member(i)?.clone();
    r.step(format!(
        "{} (home chain {}) books a loss: liabilities rise by {} (a gap of {} beyond its {} deductible)",
        m.name,
        m.home_chain_id,
        pusd(gap),
        pusd(gap.saturating_sub(U256::from(MEMBER_DEDUCTIBLE))),
        pusd(U256::from(MEMBER_DEDUCTIBLE))
    ));
    let started = Instant::now();
    let seq = net.open_gap(i, gap).await?;
    let hash = net.book(i, seq, PATIENCE).await?;
    let registered = r.check(
        hash.is_some(),
        format!(
            "the home vault registered a draw for ({}, seq {seq}) (drawOf = {})",
            m.name,
            hash.unwrap_or_default()
        ),
    );
    if !registered {
        note_phases(net, r, i, seq).await;
        return Ok((seq, false));
    }
    r.step(format!(
        "registered after {:.1} s; {} books the payout (assets = liabilities)",
        started.elapsed().as_secs_f64(),
        m.name
    ));
    let closed = closed_everywhere(net, i, seq, PATIENCE).await?;
    r.check(
        closed,
        format!(
            "every node reports the incident closed ({:.1} s after the gap opened)",
            started.elapsed().as_secs_f64()
        ),
    );
    if !closed {
        note_phases(net, r, i, seq).await;
    }
    Ok((seq, closed))
}

/// Member `i` got nothing for `seq` during [`QUIET`]: no draw registered, no token.
async fn nothing_paid(net: &Net, r: &mut Report, i: usize, seq: u64) -> Result<()> {
    let name = net.member(i)?.name.clone();
    let before = net.recipients(i).await?;
    r.step(format!(
        "watching {} s that nothing is paid to {name}",
        QUIET.as_secs()
    ));
    tokio::time::sleep(QUIET).await;
    let draw = net.draw_of(i, seq).await?;
    let after = net.recipients(i).await?;
    r.check(
        draw.is_zero(),
        format!("no draw registered: drawOf({name}, {seq}) = {draw}"),
    );
    r.check(
        after == before,
        format!(
            "{name}'s recipient received nothing (balances {})",
            after
                .iter()
                .map(|b| pusd(*b))
                .collect::<Vec<_>>()
                .join(" / ")
        ),
    );
    Ok(())
}

/// Waits until every node reports chain `chain_id` halted (or live, `halted = false`).
async fn nodes_report_halted(net: &Net, chain_id: u64, halted: bool, timeout: Duration) -> bool {
    wait_until(timeout, async || {
        for api in net.apis() {
            let chains = net::chains(&api).await?;
            if !chains
                .iter()
                .any(|c| c.chain_id == chain_id && c.halted == halted)
            {
                return Ok(false);
            }
        }
        Ok(true)
    })
    .await
}

/// Notes node 0's view of chain `chain_id`.
async fn note_chain_view(net: &Net, r: &Report, chain_id: u64) -> Result<()> {
    for c in net::chains(&net.node(0)?.api).await? {
        if c.chain_id == chain_id {
            r.note(format!(
                "node-0 ListChains: chain {} head {} (confirmed {}), halted = {}, quarantined = {}",
                c.chain_id, c.head_number, c.confirmed_head, c.halted, c.quarantined
            ));
        }
    }
    Ok(())
}

// ------------------------------------------------------------------ the drills

/// Margin exhaustion: a gap beyond the home vault's capacity, covered by legs on all three
/// chains.
async fn margin_exhaustion(net: &mut Net, r: &mut Report) -> Result<Option<(usize, u64)>> {
    let m = 2;
    note_capacity(net, r).await?;
    let recipients = net.recipients(m).await?;
    let vaults = net.vault_balances().await?;
    let (seq, closed) = cover(net, r, m, units(16_100)).await?;
    if !closed {
        return Ok(Some((m, seq)));
    }
    let inc = api_incident(net, 0, m, seq).await?;
    check_payout(net, r, m, &inc, &recipients, Some(&vaults)).await?;
    let chains = leg_chains(&inc)?;
    r.check(
        chains.len() == 3,
        format!("legs on all three chains (legs on {chains:?})"),
    );
    Ok(Some((m, seq)))
}

/// Oracle malfunction: the oracle pricing member 0 deviates; its alert is raised on every
/// vault and its gap is not paid.
async fn oracle_malfunction(net: &mut Net, r: &mut Report) -> Result<Option<(usize, u64)>> {
    let m = 0;
    avoid_contagion(net, r, m).await?;
    let id = net.member(m)?.id;
    let broken = I256::from_raw(U256::from(ORACLE_ANSWER as u64 * 3 / 2));
    r.step(format!(
        "the USD oracle of chain {A} (read by member-0 and member-1) jumps to 1.50 while those of {B} and {C} stay at 1.00"
    ));
    let tx = net.set_oracle(A, broken).await?;
    r.note(format!("setAnswer transaction {tx}"));
    let raised = wait_until(PATIENCE, async || {
        Ok(net.alert_levels(id).await?.iter().all(|&l| l == 2))
    })
    .await;
    r.check(
        raised,
        format!(
            "alertLevel(member-0) = 2 on every vault (levels {:?})",
            net.alert_levels(id).await?
        ),
    );
    note_alerts(net, r).await?;
    note_breakers(net, r).await?;

    let seq = net.open_gap(m, units(2_100)).await?;
    r.step("member-0 books a loss of 2,100 pUSD, priced by the broken oracle");
    nothing_paid(net, r, m, seq).await?;
    if let Ok(inc) = api_incident(net, 0, m, seq).await {
        r.note(format!(
            "node-0 has incident {} {}",
            inc.id,
            net::phase_name(&inc)
        ));
    }

    r.step("member-0 books the loss itself (assets = liabilities); the oracle reads 1.00 again");
    net.close_gap(m).await?;
    let tx = net.set_oracle(A, Net::normal_answer()).await?;
    r.note(format!("setAnswer transaction {tx}"));
    let lifted = lift_all(net, r).await?;
    r.check(
        lifted,
        "every alert cleared on every vault by operator requests (t signatures)",
    );
    Ok(Some((m, seq)))
}

/// Exploit: member 1's assets fall 90 % in one transaction; it is frozen on every vault
/// until an operator's unfreeze, then its gap is covered.
async fn exploit(net: &mut Net, r: &mut Report) -> Result<Option<(usize, u64)>> {
    let m = 1;
    avoid_contagion(net, r, m).await?;
    let seq = net.next_seq(m).await?;
    let recipients = net.recipients(m).await?;
    let vaults = net.vault_balances().await?;
    let (assets, liabilities) = net.solvency(m).await?;
    r.step(format!(
        "member-1's assets fall from {} to {} in one transaction (liabilities stay {})",
        pusd(assets),
        pusd(assets / U256::from(10)),
        pusd(liabilities)
    ));
    net.state.troubles.insert(net.member(m)?.id, now_ms());
    let tx = net
        .set_solvency(m, assets / U256::from(10), liabilities)
        .await?;
    r.note(format!("setSolvency transaction {tx}"));
    let frozen = wait_until(PATIENCE, async || {
        Ok(net.frozen(m).await?.iter().all(|&f| f))
    })
    .await;
    r.check(
        frozen,
        format!(
            "isFrozen(member-1) on every vault ({:?})",
            net.frozen(m).await?
        ),
    );
    note_breakers(net, r).await?;
    nothing_paid(net, r, m, seq).await?;

    r.step("waiting 6 s more: the outflow leaves the detectors' window (10 blocks)");
    tokio::time::sleep(Duration::from_secs(6)).await;
    let lifted = lift_all(net, r).await?;
    r.check(
        lifted,
        format!(
            "member-1 unfrozen on every vault after the operator's request ({:?})",
            net.frozen(m).await?
        ),
    );
    if !lifted {
        return Ok(Some((m, seq)));
    }
    r.step("the gap still stands: the consortium covers it now");
    let started = Instant::now();
    let hash = net.book(m, seq, PATIENCE).await?;
    if !r.check(
        hash.is_some(),
        format!(
            "the home vault registered the draw (drawOf = {})",
            hash.unwrap_or_default()
        ),
    ) {
        note_phases(net, r, m, seq).await;
        return Ok(Some((m, seq)));
    }
    r.step(format!(
        "registered {:.1} s after the unfreeze; member-1 books it",
        started.elapsed().as_secs_f64()
    ));
    let closed = closed_everywhere(net, m, seq, PATIENCE).await?;
    r.check(closed, "every node reports the incident closed");
    let inc = api_incident(net, 0, m, seq).await?;
    check_payout(net, r, m, &inc, &recipients, Some(&vaults)).await?;
    Ok(Some((m, seq)))
}

/// Chain halt: the third chain stops; its alert is raised on the others and a draw needing
/// remote legs skips it.
async fn chain_halt(net: &mut Net, r: &mut Report) -> Result<Option<(usize, u64)>> {
    let m = 0;
    avoid_contagion(net, r, m).await?;
    r.step(format!(
        "chain {C} stops producing blocks (evm_setAutomine(false), evm_setIntervalMining(0))"
    ));
    net.halt(C).await?;
    let head = net.head(C).await?;
    let raised = wait_until(PATIENCE, async || {
        Ok(net.alert_levels(chain_subject(C)).await?[..2] == [2, 2])
    })
    .await;
    r.check(
        raised,
        format!(
            "alertLevel(chain {C}) = 2 on the vaults of {A} and {B} (levels {:?})",
            net.alert_levels(chain_subject(C)).await?
        ),
    );
    note_chain_view(net, r, C).await?;
    note_breakers(net, r).await?;

    note_capacity(net, r).await?;
    let recipients = net.recipients(m).await?;
    let vaults = net.vault_balances().await?;
    let (seq, closed) = cover(net, r, m, units(16_100)).await?;
    let still = net.head(C).await?;
    r.check(
        still == head,
        format!("chain {C} stayed halted meanwhile (head {head} -> {still})"),
    );
    if closed {
        let inc = api_incident(net, 0, m, seq).await?;
        check_payout(net, r, m, &inc, &recipients, Some(&vaults)).await?;
        let chains = leg_chains(&inc)?;
        r.check(
            !chains.contains(&C),
            format!("no leg on the halted chain {C} (legs on {chains:?})"),
        );
        r.check(
            chains.contains(&B),
            format!("the healthy remote chain {B} paid a leg"),
        );
    }

    r.step(format!("chain {C} mines again (evm_setIntervalMining(1))"));
    net.resume(C).await?;
    let live = nodes_report_halted(net, C, false, Duration::from_secs(60)).await;
    r.check(live, format!("every node reports chain {C} live again"));
    let lifted = lift_all(net, r).await?;
    r.check(
        lifted,
        "the halt alerts cleared by operator requests (t signatures)",
    );
    Ok(Some((m, seq)))
}

/// Contagion: two members of the first chain in trouble; the chain's alert at level 3 on
/// every vault, and a member of another chain is paid without it.
async fn contagion(net: &mut Net, r: &mut Report) -> Result<Option<(usize, u64)>> {
    r.step(format!(
        "member-0 and member-1 (both homed on chain {A}) book losses of 600 pUSD each"
    ));
    let s0 = net.open_gap(0, units(600)).await?;
    let s1 = net.open_gap(1, units(600)).await?;
    let raised = wait_until(PATIENCE, async || {
        Ok(net
            .alert_levels(chain_subject(A))
            .await?
            .iter()
            .all(|&l| l == 3))
    })
    .await;
    r.check(
        raised,
        format!(
            "alertLevel(chain {A}) = 3 on every vault (levels {:?})",
            net.alert_levels(chain_subject(A)).await?
        ),
    );
    note_breakers(net, r).await?;
    if !raised {
        return Ok(None);
    }

    let m = 2;
    note_capacity(net, r).await?;
    let recipients = net.recipients(m).await?;
    let (seq, closed) = cover(net, r, m, units(16_100)).await?;
    if closed {
        let inc = api_incident(net, 0, m, seq).await?;
        r.note("vault balances are not compared: member-0's and member-1's draws may be paid meanwhile");
        check_payout(net, r, m, &inc, &recipients, None).await?;
        let chains = leg_chains(&inc)?;
        r.check(
            !chains.contains(&A),
            format!("no leg from the quarantined chain {A} (legs on {chains:?})"),
        );
    }

    r.step("member-0 and member-1 book their losses (assets = liabilities)");
    for (i, s) in [(0, s0), (1, s1)] {
        let draw = net.draw_of(i, s).await?;
        r.note(format!(
            "member-{i}'s incident {s}: {}",
            if draw.is_zero() {
                "no draw registered".to_owned()
            } else {
                format!("draw {draw} registered")
            }
        ));
        net.close_gap(i).await?;
    }
    let lifted = lift_all(net, r).await?;
    r.check(
        lifted,
        "the contagion alerts cleared by operator requests (t signatures)",
    );
    Ok(Some((m, seq)))
}

/// Node crash: node-1 is killed (SIGKILL) mid-incident and restarted; the incident closes
/// everywhere and nothing is paid twice.
async fn node_crash(net: &mut Net, r: &mut Report) -> Result<Option<(usize, u64)>> {
    let (m, victim) = (2, 1);
    let id = net.member(m)?.id;
    let home = net.member(m)?.home_chain_id;
    note_capacity(net, r).await?;
    let recipients = net.recipients(m).await?;
    let vaults = net.vault_balances().await?;
    r.step("member-2 books a loss of 16,100 pUSD");
    let seq = net.open_gap(m, units(16_100)).await?;
    let node = net.node(victim)?.clone();
    let mut seen = String::new();
    // Polled often, to kill it as soon as possible after the certificate.
    let certified = net::wait_every(PATIENCE, Duration::from_millis(50), async || {
        let Some(inc) = net::incident(&node.api, id, seq).await? else {
            return Ok(false);
        };
        let far = inc.phase >= IncidentPhase::Certified as i32 || !inc.tx_hashes.is_empty();
        if far {
            seen = format!(
                "{} ({} transaction(s) known)",
                net::phase_name(&inc),
                inc.tx_hashes.len()
            );
        }
        Ok(far)
    })
    .await;
    if !r.check(
        certified,
        format!(
            "{} reached the certificate (its API shows the incident certified, registered or with a transaction)",
            node.name
        ),
    ) {
        note_phases(net, r, m, seq).await;
        return Ok(Some((m, seq)));
    }
    Proc::node(&node).signal("KILL")?;
    r.step(format!(
        "kill -9 {} (pid {}) while its incident is {seen}",
        node.name, node.pid
    ));
    let dead = wait_until(Duration::from_secs(5), async || Ok(!alive(node.pid))).await;
    r.check(dead, format!("{} is dead", node.name));

    let hash = net.book(m, seq, PATIENCE).await?;
    r.check(
        hash.is_some(),
        format!(
            "the home vault registered the draw (drawOf = {})",
            hash.unwrap_or_default()
        ),
    );
    let pid = deploy::restart_node(net, victim)?;
    r.step(format!(
        "{} restarted with the same configuration (pid {pid})",
        node.name
    ));
    let node = net.node(victim)?.clone();
    let ready = deploy::wait_ready(&net.state, &[&node], Duration::from_secs(90)).await;
    r.check(
        ready.is_ok(),
        format!(
            "{} ready and connected again{}",
            node.name,
            ready
                .as_ref()
                .err()
                .map_or(String::new(), |e| format!(": {e:#}"))
        ),
    );
    let closed = closed_everywhere(net, m, seq, PATIENCE).await?;
    r.check(
        closed,
        format!(
            "every node, {} included, reports the incident closed",
            node.name
        ),
    );
    if !closed {
        note_phases(net, r, m, seq).await;
        r.note(format!("last lines of {}:", node.log().display()));
        for line in deploy::tail(&node.log(), 25) {
            r.note(format!("  {line}"));
        }
    }

    let inc = api_incident(net, 0, m, seq).await?;
    check_payout(net, r, m, &inc, &recipients, Some(&vaults)).await?;

    // The vaults' own records: one registration, at most one payment per vault.
    let vault = net.vault(home)?;
    let registrations = net::bounded(
        "DrawRegistered logs",
        vault.DrawRegistered_filter().from_block(0).query(),
    )
    .await?
    .into_iter()
    .filter(|(e, _)| e.member == id && e.seq == seq)
    .map(|(_, log)| log.transaction_hash.unwrap_or_default())
    .collect::<Vec<_>>();
    r.check(
        registrations.len() == 1,
        format!("the home vault accepted exactly one registration ({registrations:?})"),
    );
    let mut once = true;
    for c in net.chain_ids() {
        let paid = net::bounded(
            "LegPaid logs",
            net.vault(c)?.LegPaid_filter().from_block(0).query(),
        )
        .await?
        .into_iter()
        .filter(|(e, _)| e.member == id && e.seq == seq)
        .map(|(e, log)| (e.amount, log.transaction_hash.unwrap_or_default()))
        .collect::<Vec<_>>();
        let want = usize::from(!leg_on(&inc, c)?.is_zero());
        once &= paid.len() == want;
        for (a, tx) in &paid {
            r.note(format!("LegPaid on chain {c}: {} in {tx}", pusd(*a)));
        }
    }
    r.check(
        once,
        "each vault paid its leg exactly once (LegPaid events)",
    );
    let log = std::fs::read_to_string(node.log()).unwrap_or_default();
    let refusals = log
        .lines()
        .filter(|l| l.contains("sign-guard refused a second digest"))
        .count();
    r.note(format!(
        "{}'s log: {refusals} line(s) \"sign-guard refused a second digest\"",
        node.name
    ));
    if let Ok(inc1) = api_incident(net, victim, m, seq).await {
        let mine: Vec<&str> = inc1
            .attestations
            .iter()
            .filter(|a| a.signer.eq_ignore_ascii_case(&node.guardian.to_string()))
            .map(|a| a.digest.as_str())
            .collect();
        r.note(format!(
            "{} after the restart: incident {}, its own attestations over {mine:?}",
            node.name,
            net::phase_name(&inc1)
        ));
    }
    Ok(Some((m, seq)))
}

/// RPC outage: the third chain gives no new head for longer than the halt bound; the
/// nodes report it halted, then live again, and it pays legs again.
async fn rpc_outage(net: &mut Net, r: &mut Report) -> Result<Option<(usize, u64)>> {
    let outage = Duration::from_secs(HALT_AFTER_SECS + 15);
    r.step(format!(
        "chain {C}'s RPC stops answering for {} s (its anvil is frozen with SIGSTOP, state kept)",
        outage.as_secs()
    ));
    let head = net.head(C).await?;
    let started = Instant::now();
    net.freeze_rpc(C)?;
    let halted = nodes_report_halted(net, C, true, Duration::from_secs(60)).await;
    r.check(
        halted,
        format!(
            "every node reports chain {C} halted in ListChains ({:.1} s after the last block)",
            started.elapsed().as_secs_f64()
        ),
    );
    note_chain_view(net, r, C).await?;
    if let Some(rest) = outage.checked_sub(started.elapsed()) {
        tokio::time::sleep(rest).await;
    }
    r.step(format!("chain {C}'s RPC answers again"));
    net.thaw_rpc(C)?;
    let mut now = net.head(C).await?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while now <= head && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        now = net.head(C).await?;
    }
    r.check(
        now > head,
        format!("chain {C} kept its state and moved on (head {head} -> {now})"),
    );
    let live = nodes_report_halted(net, C, false, Duration::from_secs(60)).await;
    r.check(
        live,
        format!("every node reports chain {C} live again in ListChains"),
    );
    note_chain_view(net, r, C).await?;
    note_alerts(net, r).await?;
    let lifted = lift_all(net, r).await?;
    r.check(
        lifted,
        "the halt breaker's alerts cleared by operator requests (t signatures)",
    );

    let m = 2;
    let available = note_capacity(net, r).await?;
    let recipients = net.recipients(m).await?;
    let vaults = net.vault_balances().await?;
    let (seq, closed) = cover(net, r, m, units(16_100)).await?;
    if closed {
        let inc = api_incident(net, 0, m, seq).await?;
        check_payout(net, r, m, &inc, &recipients, Some(&vaults)).await?;
        let chains = leg_chains(&inc)?;
        let able: Vec<u64> = net
            .chain_ids()
            .into_iter()
            .zip(&available)
            .filter(|(_, a)| **a >= units(1))
            .map(|(c, _)| c)
            .collect();
        r.check(
            able.iter().all(|c| chains.contains(c)) && chains.contains(&C),
            format!(
                "covered on all chains again: legs on {chains:?}, chain {C} included (chains able to pay: {able:?})"
            ),
        );
    }
    Ok(Some((m, seq)))
}

/// Pool exhausted: a gap larger than all buckets together; each vault pays at most its
/// bucket and the rest is reported uncovered (socialized loss).
async fn pool_exhausted(net: &mut Net, r: &mut Report) -> Result<Option<(usize, u64)>> {
    let m = 0;
    avoid_contagion(net, r, m).await?;
    let started = Instant::now();
    let available = note_capacity(net, r).await?;
    let recipients = net.recipients(m).await?;
    let vaults = net.vault_balances().await?;
    let gap = units(40_100);
    let (seq, closed) = cover(net, r, m, gap).await?;
    if !closed {
        return Ok(Some((m, seq)));
    }
    let inc = api_incident(net, 1, m, seq).await?;
    check_payout(net, r, m, &inc, &recipients, Some(&vaults)).await?;
    let after = net.vault_balances().await?;
    let paid: Vec<U256> = vaults
        .iter()
        .zip(&after)
        .map(|(b, a)| b.saturating_sub(*a))
        .collect();
    // A bucket refills by REFILL_PER_SECOND between the capacity read above and the block
    // the proposer pinned.
    let refill = U256::from(REFILL_PER_SECOND) * U256::from(started.elapsed().as_secs() + 2);
    let within = paid
        .iter()
        .zip(&available)
        .all(|(p, a)| *p <= U256::from(BUCKET_CAPACITY) && *p <= *a + refill);
    r.check(
        within,
        format!(
            "each vault paid at most its bucket (capacity {}, refilling {} a second): paid {}",
            pusd(U256::from(BUCKET_CAPACITY)),
            pusd(U256::from(REFILL_PER_SECOND)),
            paid.iter()
                .map(|p| pusd(*p))
                .collect::<Vec<_>>()
                .join(" / ")
        ),
    );
    let coverable = gap - U256::from(MEMBER_DEDUCTIBLE);
    let drawn = amount(&inc.draw_amount)?;
    let uncovered = amount(&inc.uncovered_amount)?;
    r.check(!uncovered.is_zero(), "the API reports an uncovered amount");
    r.check(
        uncovered == coverable.saturating_sub(drawn),
        format!(
            "uncovered = coverable - drawn: {} = {} - {}",
            pusd(uncovered),
            pusd(coverable),
            pusd(drawn)
        ),
    );
    r.note(format!(
        "socialized loss: {} reported uncovered (no vault could pay it); the {} paid lowers the vaults' share price",
        pusd(uncovered),
        pusd(drawn)
    ));
    Ok(Some((m, seq)))
}

/// A member that never books its payout: paid once, frozen on every vault once the booking
/// timeout passes, paid nothing more; after it books and an operator lifts the freeze, a
/// new loss is paid as usual.
async fn member_never_books(net: &mut Net, r: &mut Report) -> Result<Option<(usize, u64)>> {
    let m = 2;
    avoid_contagion(net, r, m).await?;
    note_capacity(net, r).await?;
    let name = net.member(m)?.name.clone();
    let before = net.recipients(m).await?;
    let gap = units(300);
    r.step(format!(
        "{name} books a loss: a gap of {} ({} beyond its {} deductible); it will not book the payout",
        pusd(gap),
        pusd(gap.saturating_sub(U256::from(MEMBER_DEDUCTIBLE))),
        pusd(U256::from(MEMBER_DEDUCTIBLE))
    ));
    let seq = net.open_gap(m, gap).await?;
    let registered = wait_until(PATIENCE, async || Ok(!net.draw_of(m, seq).await?.is_zero())).await;
    if !r.check(
        registered,
        format!("the home vault registered draw ({name}, seq {seq})"),
    ) {
        note_phases(net, r, m, seq).await;
        return Ok(Some((m, seq)));
    }
    let closed = closed_everywhere(net, m, seq, PATIENCE).await?;
    r.check(closed, "every node reports the incident closed (covered)");
    let closed_at = Instant::now();
    let inc = api_incident(net, 0, m, seq).await?;
    let drawn = amount(&inc.draw_amount)?;
    let coverable = gap.saturating_sub(U256::from(MEMBER_DEDUCTIBLE));
    let paid = total_paid(net, m, &before).await?;
    r.check(
        !drawn.is_zero() && drawn <= coverable && paid == drawn,
        format!(
            "exactly one payout: {name}'s recipients received {} in all, the draw's amount \
             (at most the {} coverable; the vaults' capacity may bound it)",
            pusd(paid),
            pusd(coverable)
        ),
    );

    let declared = net.booked_draws(m).await?;
    r.step(format!(
        "{name}'s books still show the gap and declare {declared} draw(s) booked (draw {seq} \
         not among them): waiting for the nodes' \"payout not booked\" signal"
    ));
    let frozen = wait_until(PATIENCE, async || {
        Ok(net.frozen(m).await?.iter().all(|&f| f))
    })
    .await;
    r.check(
        frozen,
        format!(
            "isFrozen({name}) on every vault {:.1} s after the incident closed ({:?})",
            closed_at.elapsed().as_secs_f64(),
            net.frozen(m).await?
        ),
    );
    note_breakers(net, r).await?;
    nothing_paid(net, r, m, seq + 1).await?;
    let paid = total_paid(net, m, &before).await?;
    r.check(
        paid == drawn,
        format!("nothing more paid: {} in all, for one loss", pusd(paid)),
    );

    r.step(format!(
        "{name} books the payout at last; an operator lifts the freeze"
    ));
    net.close_gap(m).await?;
    r.note(format!(
        "{name} declares {} draw(s) booked",
        net.booked_draws(m).await?
    ));
    let lifted = lift_all(net, r).await?;
    r.check(
        lifted,
        format!(
            "{name} unfrozen on every vault ({:?})",
            net.frozen(m).await?
        ),
    );
    if !lifted {
        return Ok(Some((m, seq)));
    }
    r.step(format!(
        "a new loss of {name}, booked as it is paid, is covered as usual"
    ));
    let recipients = net.recipients(m).await?;
    let vaults = net.vault_balances().await?;
    let (next, closed) = cover(net, r, m, gap).await?;
    r.check(
        next == seq + 1,
        format!("the new loss is draw seq {next} (seq {seq} + 1)"),
    );
    if closed {
        let inc = api_incident(net, 0, m, next).await?;
        check_payout(net, r, m, &inc, &recipients, Some(&vaults)).await?;
    }
    Ok(Some((m, next)))
}

/// What member `i`'s recipients received on every chain since `before`.
async fn total_paid(net: &Net, i: usize, before: &[U256]) -> Result<U256> {
    let now = net.recipients(i).await?;
    Ok(now
        .iter()
        .zip(before)
        .map(|(a, b)| a.saturating_sub(*b))
        .fold(U256::ZERO, |s, x| s + x))
}

/// Aave bad debt: a borrower of the testnet's real Aave v3 market is caught by a WETH crash
/// and liquidated in the same block, leaving bad debt on Aave's books; the consortium pays
/// exactly that bad debt less the deductible, from the vaults of several chains; the
/// member's bridge brings the remote legs home, the adapter repays the bad debt on Aave
/// (`settle()`) with them and the deductible the member pays itself, and books the draw
/// (`bookDraw`).
async fn aave_bad_debt(net: &mut Net, r: &mut Report) -> Result<Option<(usize, u64)>> {
    let m = AAVE_MEMBER;
    let member = net.member(m)?.clone();
    let Some(mut st) = member.aave.clone() else {
        bail!("this testnet has no Aave member (it predates it): testnet/down, then testnet/up");
    };
    avoid_contagion(net, r, m).await?;
    let (home, id, name) = (member.home_chain_id, member.id, member.name.clone());
    let market = st.market();
    let record = net::bounded("member()", net.vault(home)?.member(id).call()).await?;
    let deductible = U256::from(record.deductible);

    // Size the loss so that the home vault cannot cover it alone. Earlier drills may have
    // emptied the outflow buckets (they refill at 1 pUSD a second): wait, bounded, until the
    // other vaults can pay a leg worth showing.
    let remote_now = async || -> Result<U256> {
        let available = net.available().await?;
        Ok(net
            .chain_ids()
            .iter()
            .zip(&available)
            .filter(|(c, _)| **c != home)
            .fold(U256::ZERO, |s, (_, a)| s + *a))
    };
    let low = remote_now().await?;
    if low < units(100) {
        r.step(format!(
            "the other vaults can pay {} now (earlier drills emptied their outflow buckets): \
             waiting until they can pay 100 pUSD (buckets refill {} a second)",
            pusd(low),
            pusd(U256::from(REFILL_PER_SECOND))
        ));
        wait_until(Duration::from_secs(150), async || {
            Ok(remote_now().await? >= units(100))
        })
        .await;
    }
    let available = note_capacity(net, r).await?;
    let ids = net.chain_ids();
    let mut a_home = U256::ZERO;
    let mut remote = U256::ZERO;
    for (c, a) in ids.iter().zip(&available) {
        if *c == home {
            a_home = *a;
        } else {
            remote += *a;
        }
    }
    if !r.check(
        remote >= units(20),
        format!(
            "the vaults beyond chain {home} can pay something ({} in all)",
            pusd(remote)
        ),
    ) {
        return Ok(None);
    }
    // Beyond what home can pay: half of what the others can (at most 4,000), plus 60 s of
    // the home bucket's refill (the draw is planned some seconds after this read).
    let beyond = (remote / U256::from(2)).min(units(4_000)) + units(60);
    let coverable = a_home + beyond.min(remote);
    let target = coverable + deductible;
    let recovered = units(5_000);
    let borrowed = target + recovered;
    let weth_unit = U256::from(10).pow(U256::from(18));
    let weth = borrowed / units(1_500) + U256::from(1);
    // The crash price recovers `recovered` by liquidating all the collateral: a liquidator
    // repays collateral value / 1.05 (the 5% bonus). USD, 8 decimals.
    let crash_price = recovered * U256::from(105) / weth;
    r.step(format!(
        "sizing: chain {home}'s vault can pay {}, the others {} in all; {name} will lose about {} \
         ({} coverable + its {} deductible), beyond what chain {home} alone pays",
        pusd(a_home),
        pusd(remote),
        pusd(target),
        pusd(coverable),
        pusd(deductible)
    ));

    // The market: WETH at 2,000 again (an earlier run crashed it), liquidity, then a
    // borrower's position, tracked by the adapter.
    let home_rpc = net.chain(home)?.rpc.clone();
    let admin = aave::provider_as(&home_rpc, &aave::actor("admin"))?;
    let oracle = IAaveOracle::new(market.oracle, admin.clone());
    let price = net::bounded("getAssetPrice", oracle.getAssetPrice(market.weth).call()).await?;
    if price != U256::from(backstop_contracts::aave::WETH_PRICE) {
        let tx = net::mined(
            "WETH's source back to its 2,000 USD feed",
            oracle.setAssetSources(vec![market.weth], vec![st.weth_feed]),
        )
        .await?;
        r.step(format!(
            "WETH's price on Aave back to 2,000 USD (an earlier run left it at {} USD) ({tx})",
            usd(price)
        ));
    }
    let admin = aave::provider_as(&home_rpc, &aave::actor("admin"))?;
    let supplier = aave::actor("supplier");
    let ps = aave::provider_as(&home_rpc, &supplier)?;
    aave::fund(&ps, supplier.address()).await?;
    backstop_contracts::aave::supply(
        &ps,
        &market,
        supplier.address(),
        market.pool_token,
        borrowed + units(1_000),
    )
    .await?;
    let borrower = aave::actor(&format!("borrower {}", st.runs));
    st.runs += 1;
    net.state.members[m].aave = Some(st.clone());
    net.save()?;
    let pb = aave::provider_as(&home_rpc, &borrower)?;
    aave::fund(&pb, borrower.address()).await?;
    backstop_contracts::aave::supply(
        &pb,
        &market,
        borrower.address(),
        market.weth,
        weth * weth_unit,
    )
    .await?;
    backstop_contracts::aave::borrow(&pb, &market, borrower.address(), borrowed).await?;
    let adapter = aave::adapter(net, &st)?;
    net::mined(
        "track the borrower",
        adapter.track(borrower.address()).gas(USER_GAS),
    )
    .await?;
    let pool = IAavePool::new(market.pool, admin.clone());
    let data = net::bounded(
        "getUserAccountData",
        pool.getUserAccountData(borrower.address()).call(),
    )
    .await?;
    r.step(format!(
        "on Aave (chain {home}): borrower {} supplies {weth} WETH at 2,000 USD and borrows {} \
         (collateral {} USD, debt {} USD, health factor {}); the adapter tracks it",
        borrower.address(),
        pusd(borrowed),
        usd(data.totalCollateralBase),
        usd(data.totalDebtBase),
        ratio(data.healthFactor)
    ));
    let (assets, liabilities) = net.solvency(m).await?;
    r.check(
        liabilities <= assets,
        format!(
            "{name}'s solvency() shows no gap while the position is healthy ({} / {})",
            pusd(assets),
            pusd(liabilities)
        ),
    );

    // The crash and the liquidation, in one block.
    let seq = net.next_seq(m).await?;
    let recipients = net.recipients(m).await?;
    let vaults = net.vault_balances().await?;
    let feed = backstop_contracts::aave::new_feed(&admin, I256::from_raw(crash_price)).await?;
    let liquidator = aave::actor("liquidator");
    let pl = aave::provider_as(&home_rpc, &liquidator)?;
    aave::fund(&pl, liquidator.address()).await?;
    let token = IMintableErc20::new(market.pool_token, pl.clone());
    net::mined(
        "mint to the liquidator",
        token.mint(liquidator.address(), borrowed),
    )
    .await?;
    net::mined("approve the Pool", token.approve(market.pool, borrowed)).await?;
    r.step(format!(
        "WETH crashes to {} USD (the Aave oracle's WETH source is set to a feed answering it) and a \
         liquidator liquidates the borrower in the same block (mining paused for it)",
        usd(crash_price)
    ));
    net.halt(home).await?;
    let sent = async {
        let crash = IAaveOracle::new(market.oracle, admin.clone())
            .setAssetSources(vec![market.weth], vec![feed])
            .gas(300_000)
            .max_fee_per_gas(100_000_000_000)
            .max_priority_fee_per_gas(2_000_000_000)
            .send()
            .await
            .context("sending the crash")?;
        let liquidation = IAavePool::new(market.pool, pl.clone())
            .liquidationCall(
                market.weth,
                market.pool_token,
                borrower.address(),
                U256::MAX,
                false,
            )
            .gas(USER_GAS)
            .max_fee_per_gas(100_000_000_000)
            .max_priority_fee_per_gas(1_000_000_000)
            .send()
            .await
            .context("sending the liquidation")?;
        net::bounded("anvil_mine", net.provider(home)?.anvil_mine(Some(1), None)).await?;
        Ok::<_, anyhow::Error>((crash, liquidation))
    }
    .await;
    net.resume(home).await?;
    let (crash, liquidation) = sent?;
    let crash = net::bounded("crash receipt", crash.get_receipt()).await?;
    let liquidation = net::bounded("liquidation receipt", liquidation.get_receipt()).await?;
    r.note(format!(
        "setAssetSources {} (block {:?}), liquidationCall {} (block {:?}, {} gas)",
        crash.transaction_hash,
        crash.block_number,
        liquidation.transaction_hash,
        liquidation.block_number,
        liquidation.gas_used
    ));
    r.check(
        crash.status() && liquidation.status() && crash.block_number == liquidation.block_number,
        "the crash and the liquidation succeeded in the same block",
    );
    let bad_debt =
        backstop_contracts::aave::variable_debt(&admin, &market, borrower.address()).await?;
    let data = net::bounded(
        "getUserAccountData",
        pool.getUserAccountData(borrower.address()).call(),
    )
    .await?;
    r.check(
        data.totalCollateralBase.is_zero() && !bad_debt.is_zero(),
        format!(
            "the liquidation took all the collateral and Aave's books keep {} of the borrower's debt \
             (variable debt token balance; {} USD in getUserAccountData): bad debt",
            pusd(bad_debt),
            usd(data.totalDebtBase)
        ),
    );
    net.troubled(m)?;
    let (assets, liabilities) = net.solvency(m).await?;
    let measured = liabilities.saturating_sub(assets);
    r.check(
        measured == bad_debt,
        format!(
            "{name}'s solvency() reports exactly that deficit: liabilities {} - assets {} = {}",
            pusd(liabilities),
            pusd(assets),
            pusd(measured)
        ),
    );

    // The consortium covers it.
    let started = Instant::now();
    let registered = wait_until(PATIENCE, async || Ok(!net.draw_of(m, seq).await?.is_zero())).await;
    if !r.check(
        registered,
        format!(
            "the home vault (chain {home}) registered a draw for ({name}, seq {seq}) after {:.1} s",
            started.elapsed().as_secs_f64()
        ),
    ) {
        note_phases(net, r, m, seq).await;
        return Ok(Some((m, seq)));
    }
    let draw = aave::registered_draw(net, id, seq).await?;
    let paid = wait_until(PATIENCE, async || {
        let now = net.recipients(m).await?;
        Ok(net.chain_ids().iter().enumerate().all(|(k, c)| {
            let want = draw
                .legs
                .iter()
                .find(|l| l.chainId == *c)
                .map_or(U256::ZERO, |l| l.amount);
            now[k].saturating_sub(recipients[k]) >= want
        }))
    })
    .await;
    r.check(
        paid,
        format!(
            "every leg paid: the adapter received the home leg, the bridge each remote leg ({:.1} s)",
            started.elapsed().as_secs_f64()
        ),
    );
    let mut inc = api_incident(net, 0, m, seq).await?;
    wait_until(Duration::from_secs(30), async || {
        inc = api_incident(net, 0, m, seq).await?;
        Ok(!inc.legs.is_empty() && inc.legs.iter().all(|l| !l.tx_hash.is_empty()))
    })
    .await;
    check_payout(net, r, m, &inc, &recipients, Some(&vaults)).await?;
    let gap = amount(&inc.gap)?;
    let drawn = amount(&inc.draw_amount)?;
    r.check(
        gap == bad_debt && drawn == bad_debt - deductible && amount(&inc.uncovered_amount)?.is_zero(),
        format!(
            "the draw is exactly the deficit less the deductible: gap {} (the bad debt), draw {} = {} - {}, nothing uncovered",
            pusd(gap),
            pusd(drawn),
            pusd(bad_debt),
            pusd(deductible)
        ),
    );
    let chains = leg_chains(&inc)?;
    r.check(
        chains.len() >= 2 && chains.iter().any(|c| *c != home),
        format!("legs on several chains: {chains:?} (home {home})"),
    );

    // The member books it: deductible, bridge, repayment on Aave, booking.
    let covered_before = net::bounded("covered()", adapter.covered().call()).await?;
    let remote_legs: Vec<usize> = (0..draw.legs.len())
        .filter(|&k| draw.legs[k].chainId != home)
        .collect();
    let (deductible_tx, bridged) = futures::join!(
        aave::pay_in(net, &st, deductible),
        aave::bring_home(net, &st, &draw, &remote_legs)
    );
    r.step(format!(
        "{name}'s treasury pays its {} deductible into the adapter ({})",
        pusd(deductible),
        deductible_tx?
    ));
    r.step(format!(
        "the bridge brings the remote legs home ({}): locks them on their chains, releases \
         their sum on chain {home}, bringHome for each ({})",
        remote_legs
            .iter()
            .map(|&k| format!(
                "{} from chain {}",
                pusd(draw.legs[k].amount),
                draw.legs[k].chainId
            ))
            .collect::<Vec<_>>()
            .join(", "),
        bridged?
            .iter()
            .map(|t| t.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let draw_hash = net.draw_of(m, seq).await?;
    let mut home_ok = true;
    for leg in draw.legs.iter().filter(|l| l.chainId != home) {
        home_ok &=
            net::bounded("legState", adapter.legState(draw_hash, leg.chainId).call()).await? == 1;
    }
    r.check(
        home_ok,
        "the adapter shows every remote leg brought home (legState = BroughtHome)",
    );
    let held = net.balance(home, st.adapter).await?;
    // A fresh provider: the admin's nonce moved under the cached one (pay_in).
    let adapter = aave::adapter(net, &st)?;
    let tx = net::mined("settle", adapter.settle().gas(USER_GAS)).await?;
    let covered_after = net::bounded("covered()", adapter.covered().call()).await?;
    let repaid = covered_after - covered_before;
    r.step(format!(
        "settle(): the adapter repays the borrower's debt on Aave with the {} it holds \
         (Pool.repay onBehalfOf) ({tx})",
        pusd(held)
    ));
    let debt_after =
        backstop_contracts::aave::variable_debt(&admin, &market, borrower.address()).await?;
    let repaid_here = bad_debt.saturating_sub(debt_after);
    r.check(
        repaid_here == drawn + deductible && debt_after.is_zero(),
        format!(
            "repaid on Aave for this borrower: {} = the draw {} + the deductible {}; its variable \
             debt is now {} (settle() repaid {} in all{})",
            pusd(repaid_here),
            pusd(drawn),
            pusd(deductible),
            pusd(debt_after),
            pusd(repaid),
            if repaid > repaid_here {
                ", bad debt an earlier run left included"
            } else {
                ""
            }
        ),
    );
    let tx = net::mined("bookDraw", adapter.bookDraw(draw.clone()).gas(USER_GAS)).await?;
    let booked = net.booked_draws(m).await?;
    r.check(
        booked == seq + 1,
        format!(
            "bookDraw: the adapter declares {booked} draw(s) booked (draw {seq} included) ({tx})"
        ),
    );
    let (assets, liabilities) = net.solvency(m).await?;
    let measure = net::bounded("measure()", adapter.measure().call()).await?;
    r.check(
        assets >= liabilities && measure.debtBase.is_zero(),
        format!(
            "Aave's books show the loss covered: no underwater debt left (measure() debt {}), \
             solvency() {} / {} (the covered loss on both sides)",
            usd(measure.debtBase),
            pusd(assets),
            pusd(liabilities)
        ),
    );
    net.troubled(m)?;
    let closed = closed_everywhere(net, m, seq, PATIENCE).await?;
    r.check(closed, "every node reports the incident closed");
    if !closed {
        note_phases(net, r, m, seq).await;
    }
    let frozen = net.frozen(m).await?;
    let levels = net.alert_levels(id).await?;
    r.check(
        frozen.iter().all(|f| !f) && levels.iter().all(|l| *l == 0),
        format!(
            "{name} neither frozen nor alerted on any vault (frozen {frozen:?}, alert levels {levels:?}): \
             the liquidation and the repayment read as no exploit and no unbooked payout"
        ),
    );
    net::mined(
        "untrack the repaid borrower",
        adapter.untrack(borrower.address()).gas(USER_GAS),
    )
    .await?;
    Ok(Some((m, seq)))
}

/// A USD amount in Aave's base currency (8 decimals) as `12,345.67`.
fn usd(base: U256) -> String {
    // pusd() prints 6 decimals: drop the last two of the 8.
    pusd(base / U256::from(100))
        .trim_end_matches(" pUSD")
        .to_owned()
}

/// A health factor (18 decimals) as `1.1`.
fn ratio(wad: U256) -> String {
    if wad == U256::MAX {
        return "infinite".into();
    }
    pusd(wad / U256::from(10).pow(U256::from(12)))
        .trim_end_matches(" pUSD")
        .to_owned()
}
