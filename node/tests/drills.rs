//! Crisis drills: the recovery table carried out by four real `backstop` processes on three
//! anvil chains, each drill checking the outcome on chain.
//!
//! - exploit: a member's assets collapse → `freezeMember` on every vault, nothing paid;
//!   an operator's unfreeze (t signatures) lifts it and the gap is then covered;
//! - oracle malfunction: the member's oracle deviates → its alert raised on every vault,
//!   its draw not attested;
//! - chain halt: a chain stops → its alert raised on the others, payouts from healthy
//!   chains only;
//! - contagion: two members of one chain in trouble → the chain's alert at level 3 on
//!   every vault, payouts of others skip it;
//! - margin exhaustion with one node raising false signals: nothing trips, the draw pays
//!   what the pool can and reports the rest as uncovered;
//! - node crash: a node killed with SIGKILL in the middle of an incident restarts, learns
//!   from the chains what happened while it was down and closes the incident; every leg
//!   is paid once.
//!
//! Drills run one at a time (each starts four nodes and three chains).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use alloy::primitives::{B256, I256, U256};
use alloy::providers::ext::AnvilApi;
use backstop_api::AdminRequest;
use backstop_api::model::SignalKind;
use backstop_api::proto::{Incident, IncidentPhase, ListSignalsRequest};
use backstop_contracts::testing::{
    ChainParams, Consortium, ConsortiumParams, MemberSpec, ORACLE_ANSWER, UNIT, default_limits,
    deploy_consortium,
};
use backstop_types::chain_subject;
use common::{
    Node, Options, TOKEN, balances, breakers, configure, incidents, solvency, start_all, wait_for,
};

const CHAINS: [u64; 3] = [31337, 31338, 31339];
const DETECTORS: &str = "[detectors]\nsignal_window_secs = 30\nsignal_expiry_secs = 600\nsignal_interval_secs = 1\noutflow_window_blocks = 6\n";
const PATIENCE: Duration = Duration::from_secs(90);

/// Held by the drill running (each test has its own runtime; this lock is runtime-agnostic).
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct Drill {
    net: Consortium,
    nodes: Vec<Node>,
    _root: tempfile::TempDir,
}

/// Three chains mining every 500 ms with buckets that refill at once, `members`, four nodes.
async fn up(members: Vec<MemberSpec>, opts: Options) -> Drill {
    let mut limits = default_limits();
    limits.refillPerSecond = limits.bucketCapacity;
    let params = ConsortiumParams {
        mine_every: Some(Duration::from_millis(500)),
        chain: ChainParams {
            limits,
            ..ChainParams::default()
        },
        members,
        ..Default::default()
    };
    let net = deploy_consortium(&CHAINS, common::N, &params).await;
    let root = tempfile::tempdir().unwrap();
    let opts = Options {
        extra: format!("{DETECTORS}{}", opts.extra),
        ..opts
    };
    let mut nodes = configure(root.path(), &net, &opts);
    start_all(&mut nodes, &net).await;
    Drill {
        net,
        nodes,
        _root: root,
    }
}

impl Drill {
    async fn alert_levels(&self, subject: B256) -> Vec<u8> {
        let mut out = Vec::new();
        for c in &self.net.chains {
            out.push(c.vault().alertLevel(subject).call().await.unwrap());
        }
        out
    }

    async fn frozen(&self, member: B256) -> Vec<bool> {
        let mut out = Vec::new();
        for c in &self.net.chains {
            out.push(c.vault().isFrozen(member).call().await.unwrap());
        }
        out
    }

    async fn draw_of(&self, i: usize, seq: u64) -> B256 {
        let m = self.net.member(i);
        self.net
            .home(i)
            .vault()
            .drawOf(m.spec.id, seq)
            .call()
            .await
            .unwrap()
    }

    /// Member `i` books the draw of `seq` once registered (as its insurance fund would):
    /// its assets rise to its liabilities, so no gap is left to open the next incident, and
    /// it declares the draw booked.
    async fn book(&self, i: usize, seq: u64) {
        self.wait("the draw registered", async || {
            self.draw_of(i, seq).await != B256::ZERO
        })
        .await;
        let (_, liabilities) = solvency(&self.net, i).await;
        self.net
            .set_books(i, (liabilities, liabilities), seq + 1)
            .await;
    }

    /// Member `i`'s incident `seq` as `node` reports it once closed there.
    async fn closed_incident(&self, node: usize, i: usize, seq: u64) -> Incident {
        let id = self.net.member(i).spec.id.to_string();
        let find = async || {
            incidents(&self.nodes[node])
                .await
                .into_iter()
                .find(|x| x.seq == seq && x.member.eq_ignore_ascii_case(&id))
        };
        self.wait("the incident closed", async || {
            find()
                .await
                .is_some_and(|x| x.phase == IncidentPhase::Closed as i32)
        })
        .await;
        find().await.expect("the incident is listed")
    }

    /// Opens a gap of `gap` for member `i` (liabilities rise; assets never fall here).
    async fn gap(&self, i: usize, gap: u64) {
        let (assets, _) = solvency(&self.net, i).await;
        self.net
            .set_solvency(i, assets, assets + U256::from(gap * UNIT))
            .await;
    }

    async fn admin(&self, node: usize, request: AdminRequest) -> String {
        backstop_api::client::admin(&self.nodes[node].api, TOKEN, &request)
            .await
            .unwrap()
    }

    async fn wait(&self, what: &str, f: impl AsyncFn() -> bool) {
        wait_for(what, &self.nodes, PATIENCE, || f()).await;
    }

    /// Every node reports no active breaker.
    async fn no_breaker_anywhere(&self) -> bool {
        for n in &self.nodes {
            if breakers(n).await.iter().any(|b| b.active) {
                return false;
            }
        }
        true
    }

    /// Waits `for_s` seconds (the consortium has the time to act) and checks that member
    /// `i` got no draw registered and no token on any chain.
    async fn nothing_paid(&self, i: usize, for_s: u64) {
        let m = self.net.member(i).spec.clone();
        let before = balances(&self.net, |c| m.recipient_on(c)).await;
        tokio::time::sleep(Duration::from_secs(for_s)).await;
        assert_eq!(self.draw_of(i, 0).await, B256::ZERO, "no draw registered");
        assert_eq!(
            balances(&self.net, |c| m.recipient_on(c)).await,
            before,
            "no payout"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exploit_freezes_the_member_on_every_vault_until_an_operator_lifts_it() {
    let _serial = SERIAL.lock().await;
    let d = up(vec![MemberSpec::new(0, CHAINS[0])], Options::default()).await;
    let m = d.net.member(0).spec.clone();
    let recipients = balances(&d.net, |c| m.recipient_on(c)).await;

    // The member's assets collapse: 90 % gone in one block, leaving a gap of 900.
    let (assets, liabilities) = solvency(&d.net, 0).await;
    let t = Instant::now();
    d.net
        .set_solvency(0, assets / U256::from(10), liabilities)
        .await;
    d.wait("the member frozen on every vault", async || {
        d.frozen(m.id).await == [true; 3]
    })
    .await;
    eprintln!(
        "exploit: frozen on 3 vaults {:.2} s after the outflow",
        t.elapsed().as_secs_f64()
    );
    d.nothing_paid(0, 6).await;
    let b = breakers(&d.nodes[1]).await;
    let exploit = b
        .iter()
        .find(|b| b.active && b.id.starts_with("exploit:"))
        .expect("an active exploit breaker");
    assert_eq!(exploit.members_blocked, [m.id.to_string()]);
    assert_eq!(exploit.effects.len(), 3, "{exploit:?}");

    // The outflow left the detectors' window; an operator asks to lift the freeze with the
    // CLI, the others sign (t = 3), the breaker ends everywhere and the gap is covered.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_backstop"))
        .args([
            "admin",
            "unfreeze",
            &m.id.to_string(),
            "--api",
            &d.nodes[0].api,
        ])
        .arg("--token-file")
        .arg(d.nodes[0].dir.join("admin.token"))
        .output()
        .unwrap();
    let started = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{started}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(started.contains("3 vault"), "{started}");
    let t = Instant::now();
    d.wait("the member unfrozen on every vault", async || {
        d.frozen(m.id).await == [false; 3]
    })
    .await;
    eprintln!(
        "exploit: unfrozen on 3 vaults {:.2} s after the operator's request",
        t.elapsed().as_secs_f64()
    );
    d.wait("no active breaker on any node", async || {
        d.no_breaker_anywhere().await
    })
    .await;
    d.book(0, 0).await;
    // Gap 900, deductible 100: the home vault pays 800.
    d.wait("the home leg paid", async || {
        balances(&d.net, |c| m.recipient_on(c)).await[0] == recipients[0] + U256::from(800 * UNIT)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oracle_malfunction_raises_the_members_alert_and_blocks_its_draws() {
    let _serial = SERIAL.lock().await;
    let d = up(
        vec![MemberSpec::new(0, CHAINS[0])],
        Options {
            oracles: true,
            ..Options::default()
        },
    )
    .await;
    let m = d.net.member(0).spec.clone();

    // The member's oracle reads 1.5 while the same asset reads 1.0 on the other chains.
    let t = Instant::now();
    d.net
        .set_oracle_answer(CHAINS[0], I256::try_from(ORACLE_ANSWER * 3 / 2).unwrap())
        .await;
    d.wait("the member's alert raised on every vault", async || {
        d.alert_levels(m.id).await == [2; 3]
    })
    .await;
    eprintln!(
        "oracle: alert on 3 vaults {:.2} s after the bad answer",
        t.elapsed().as_secs_f64()
    );
    d.wait(
        "every node shows the oracle breaker blocking the member",
        async || {
            for n in &d.nodes {
                let b = breakers(n).await;
                if !b.iter().any(|b| {
                    b.active
                        && b.id.starts_with("oracle:")
                        && b.members_blocked == [m.id.to_string()]
                }) {
                    return false;
                }
            }
            true
        },
    )
    .await;

    // A gap of the member priced by the broken oracle is not paid.
    d.gap(0, 2_100).await;
    d.nothing_paid(0, 8).await;
    let inc = incidents(&d.nodes[0]).await;
    assert!(
        inc.iter()
            .all(|i| i.phase != IncidentPhase::Registered as i32),
        "{inc:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chain_halt_quarantines_the_chain_and_payouts_come_from_healthy_chains() {
    let _serial = SERIAL.lock().await;
    let mut d = up(
        vec![MemberSpec::new(0, CHAINS[0])],
        Options {
            halt_after_secs: Some(3),
            ..Options::default()
        },
    )
    .await;
    let m = d.net.member(0).spec.clone();

    // The third chain stops producing blocks.
    let halted = &d.net.chains[2];
    halted.provider.anvil_set_auto_mine(false).await.unwrap();
    drop(d.net.miners.remove(2));
    let head = d.net.chains[2].head().await;
    let t = Instant::now();
    d.wait(
        "the halted chain's alert raised on the other vaults",
        async || d.alert_levels(chain_subject(CHAINS[2])).await[..2] == [2, 2],
    )
    .await;
    eprintln!(
        "chain halt: alert on 2 vaults {:.2} s after the last block (halt bound 3 s)",
        t.elapsed().as_secs_f64()
    );
    assert_eq!(
        d.net.chains[2].head().await,
        head,
        "the chain really halted"
    );

    // A gap needing more than the home vault: the rest comes from the one healthy remote
    // vault alone (10,000 + 6,000 of the coverable 16,000).
    let before = balances(&d.net, |c| m.recipient_on(c)).await;
    d.gap(0, 16_100).await;
    d.book(0, 0).await;
    d.wait("both legs paid", async || {
        let now = balances(&d.net, |c| m.recipient_on(c)).await;
        now[0] == before[0] + U256::from(10_000 * UNIT)
            && now[1] == before[1] + U256::from(6_000 * UNIT)
    })
    .await;
    let inc = d.closed_incident(0, 0, 0).await;
    let legs: Vec<u64> = inc.legs.iter().map(|l| l.chain_id).collect();
    assert_eq!(legs, CHAINS[..2], "no leg on the halted chain");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contagion_quarantines_a_chain_whose_members_fail_together() {
    let _serial = SERIAL.lock().await;
    let d = up(
        vec![
            MemberSpec::new(0, CHAINS[0]),
            MemberSpec::new(1, CHAINS[0]),
            MemberSpec::new(2, CHAINS[1]),
        ],
        Options::default(),
    )
    .await;

    // Two members of the first chain in trouble within the window.
    let t = Instant::now();
    d.gap(0, 600).await;
    d.gap(1, 600).await;
    d.wait("the chain's alert at level 3 on every vault", async || {
        d.alert_levels(chain_subject(CHAINS[0])).await == [3; 3]
    })
    .await;
    eprintln!(
        "contagion: level-3 alert on 3 vaults {:.2} s after the gaps",
        t.elapsed().as_secs_f64()
    );

    // A member of another chain is paid from its home and the third chain only.
    let m2 = d.net.member(2).spec.clone();
    let before = balances(&d.net, |c| m2.recipient_on(c)).await;
    d.gap(2, 16_100).await;
    d.book(2, 0).await;
    d.wait("member 2's legs paid", async || {
        let now = balances(&d.net, |c| m2.recipient_on(c)).await;
        now[1] == before[1] + U256::from(10_000 * UNIT)
            && now[2] == before[2] + U256::from(6_000 * UNIT)
    })
    .await;
    assert_eq!(
        balances(&d.net, |c| m2.recipient_on(c)).await[0],
        before[0],
        "nothing from the quarantined chain"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn false_signals_of_one_node_change_nothing_and_the_uncovered_rest_is_reported() {
    let _serial = SERIAL.lock().await;
    let d = up(vec![MemberSpec::new(0, CHAINS[0])], Options::default()).await;
    let m = d.net.member(0).spec.clone();

    // node-3 cries wolf about everything, several times.
    for _ in 0..3 {
        for (kind, subject) in [
            (SignalKind::AbnormalOutflow, m.id),
            (SignalKind::ChainHalt, chain_subject(CHAINS[1])),
            (SignalKind::Operator, chain_subject(CHAINS[2])),
        ] {
            d.admin(
                3,
                AdminRequest::RaiseSignal {
                    kind,
                    subject: subject.0,
                    reason: "drill".into(),
                },
            )
            .await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    d.wait("node-0 lists node-3's signals", async || {
        let Ok(mut c) = backstop_api::client::client(&d.nodes[0].api).await else {
            return false;
        };
        let s = c
            .list_signals(ListSignalsRequest {})
            .await
            .map(|r| r.into_inner().signals)
            .unwrap_or_default();
        s.len() == 3 && s.iter().all(|s| !s.confirmed && s.raised_by == ["node-3"])
    })
    .await;
    assert!(d.no_breaker_anywhere().await, "one node trips nothing");

    // Margin exhaustion beyond what the pool can pay at once: each vault pays its full
    // bucket (10,000), the other 10,000 of the coverable 40,000 is reported uncovered.
    let started = Instant::now();
    let before = balances(&d.net, |c| m.recipient_on(c)).await;
    d.gap(0, 40_100).await;
    d.book(0, 0).await;
    d.wait("every vault paid its bucket", async || {
        let now = balances(&d.net, |c| m.recipient_on(c)).await;
        (0..3).all(|i| now[i] == before[i] + U256::from(10_000 * UNIT))
    })
    .await;
    let inc = d.closed_incident(1, 0, 0).await;
    assert_eq!(inc.draw_amount, (30_000 * UNIT).to_string());
    assert_eq!(inc.uncovered_amount, (10_000 * UNIT).to_string(), "{inc:?}");
    assert_eq!(d.frozen(m.id).await, [false; 3]);
    for c in CHAINS {
        assert_eq!(d.alert_levels(chain_subject(c)).await, [0; 3]);
    }
    eprintln!(
        "covered 30,000 of a 40,100 gap despite false signals in {:.2} s",
        started.elapsed().as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_mid_incident_restarts_and_closes_it_without_paying_twice() {
    let _serial = SERIAL.lock().await;
    let mut d = up(vec![MemberSpec::new(0, CHAINS[0])], Options::default()).await;
    let m = d.net.member(0).spec.clone();
    let before = balances(&d.net, |c| m.recipient_on(c)).await;

    d.gap(0, 16_100).await;
    // As soon as node-1 has signed (the draw is certified), it dies without a flush.
    d.wait("node-1 sees the draw certified", async || {
        incidents(&d.nodes[1])
            .await
            .iter()
            .any(|i| i.seq == 0 && i.phase >= IncidentPhase::Certified as i32)
    })
    .await;
    d.nodes[1].kill9();
    d.book(0, 0).await;
    let paid = |now: &[U256]| {
        now[0] == before[0] + U256::from(10_000 * UNIT)
            && now[1] == before[1] + U256::from(3_000 * UNIT)
            && now[2] == before[2] + U256::from(3_000 * UNIT)
    };
    d.wait("every leg paid by the three others", async || {
        paid(&balances(&d.net, |c| m.recipient_on(c)).await)
    })
    .await;

    // Back up: it learns the registration and the legs it missed and closes the incident.
    d.nodes[1].start();
    d.wait("node-1 closes the incident after its restart", async || {
        incidents(&d.nodes[1])
            .await
            .iter()
            .any(|i| i.seq == 0 && i.phase == IncidentPhase::Closed as i32)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        paid(&balances(&d.net, |c| m.recipient_on(c)).await),
        "each leg paid exactly once"
    );
    assert!(
        d.nodes[1].log().contains("agreement state restored"),
        "node-1 restarted from its store"
    );
}
