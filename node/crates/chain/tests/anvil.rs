//! Chain access against real anvil chains: watchers, pinned reads, allocation, submission,
//! restarts, reorgs and RPC faults.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use alloy::primitives::{Address, B256, U256, keccak256};
use alloy::providers::Provider;
use alloy::providers::ext::AnvilApi;
use alloy::rpc::types::anvil::ReorgOptions;
use backstop_chain::allocation::{AllocationInput, VaultCapacity, allocate};
use backstop_chain::reads::{PinnedBlock, Reader};
use backstop_chain::rpc::{CallError, RpcError};
use backstop_chain::submit::{AlreadyDone, ChainAction, SubmitOutcome, Submitter, SubmitterConfig};
use backstop_chain::watcher::{ChainEvent, ConfirmedBlock, WatchedMember, Watcher, WatcherConfig};
use backstop_contracts::bindings::BackstopVault::BackstopVaultEvents;
use backstop_contracts::bindings::IBackstopVault;
use backstop_contracts::eip712::Signable;
use common::*;
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(20);

fn watcher_cfg(chain: &Chain, urls: Vec<String>, confirmations: u64) -> WatcherConfig {
    let mut cfg = WatcherConfig::new(
        backstop_chain::rpc::RpcConfig::new(chain.chain_id, urls.clone()),
        chain.vault,
    );
    cfg.confirmations = confirmations;
    cfg.poll_interval = Duration::from_millis(50);
    cfg.members = vec![WatchedMember {
        member: member_id(),
        contract: chain.member_contract,
    }];
    cfg.oracles = vec![chain.oracle];
    cfg
}

fn spawn_watcher(chain: &Chain, cfg: WatcherConfig) -> mpsc::Receiver<ChainEvent> {
    let _ = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_test_writer()
        .try_init();
    let (tx, rx) = mpsc::channel(1024);
    let pool = chain.pool(cfg.rpc.urls.clone());
    tokio::spawn(Watcher::with_pool(cfg, pool, tx).run());
    rx
}

async fn next_event(rx: &mut mpsc::Receiver<ChainEvent>) -> ChainEvent {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("event in time")
        .expect("watcher alive")
}

/// Receives events until `pred` holds; returns everything received, the match last.
async fn until(
    rx: &mut mpsc::Receiver<ChainEvent>,
    pred: impl Fn(&ChainEvent) -> bool,
) -> Vec<ChainEvent> {
    let mut seen = Vec::new();
    loop {
        let e = next_event(rx).await;
        let done = pred(&e);
        seen.push(e);
        if done {
            return seen;
        }
    }
}

/// Waits for the watcher's first confirmed delivery: its start anchor is then fixed, so every
/// block mined afterwards is delivered. Without this, a watcher whose start is delayed could
/// anchor above a block the test expects to see.
async fn started(rx: &mut mpsc::Receiver<ChainEvent>) {
    until(rx, |e| confirmed(e).is_some()).await;
}

fn confirmed(e: &ChainEvent) -> Option<&ConfirmedBlock> {
    match e {
        ChainEvent::Confirmed(c) => Some(c),
        _ => None,
    }
}

fn is_confirmed_at(e: &ChainEvent, n: u64) -> bool {
    confirmed(e).is_some_and(|c| c.block.number == n)
}

fn is_head_at(e: &ChainEvent, n: u64) -> bool {
    matches!(e, ChainEvent::NewHead { block, .. } if block.number == n)
}

fn submitter(chain: &Chain, key: usize, confirmations: u64) -> Submitter {
    let mut cfg = SubmitterConfig::new(chain.vault);
    cfg.confirmations = confirmations;
    cfg.poll_interval = Duration::from_millis(50);
    cfg.stuck_after = Duration::from_secs(5);
    cfg.max_wait = Duration::from_secs(30);
    Submitter::new(chain.pool(vec![chain.http()]), chain.sender(key), cfg)
}

async fn freeze_action(
    chain: &Chain,
    keys: &[alloy::signers::local::PrivateKeySigner],
    tag: &str,
) -> ChainAction {
    let action = IBackstopVault::FreezeMember {
        member: member_id(),
        id: keccak256(tag),
        deadline: chain.deadline().await,
    };
    let signatures = sign_all(&action, &chain.id(), &keys[..PAUSE_THRESHOLD]);
    ChainAction::FreezeMember { action, signatures }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gap_set_at_block_is_seen_at_that_block_once_confirmed() {
    let keys = guardian_keys(4);
    let chain = start_chain(31337, &keys, 50_000 * UNIT).await;
    set_member(&chain, &keys, chain.chain_id).await;
    // Heads by websocket subscription, requests over HTTP. The polling timer is longer than
    // the test's patience: the watcher progresses only on subscription wake-ups.
    let mut cfg = watcher_cfg(&chain, vec![chain.http(), chain.ws()], 2);
    cfg.poll_interval = Duration::from_secs(60);
    let mut rx = spawn_watcher(&chain, cfg);
    // The first tick runs at once; from then on only a subscription wakes the watcher. Mine
    // until a block mined after the first tick is seen (the subscription is live).
    next_event(&mut rx).await;
    'live: loop {
        chain.mine(1).await;
        let mined = chain.head().await;
        while let Ok(Some(e)) = tokio::time::timeout(Duration::from_millis(300), rx.recv()).await {
            if is_head_at(&e, mined) {
                break 'live;
            }
        }
    }
    chain.mine(3).await;
    let head = chain.head().await;
    until(&mut rx, |e| is_confirmed_at(e, head - 2)).await;

    let r = mined(
        chain
            .member()
            .setSolvency(U256::from(400 * UNIT), U256::from(900 * UNIT)),
    )
    .await;
    let b = r.block_number.unwrap();
    chain.mine(1).await;
    // Up to head b+1, block b is not confirmed: nothing about it is delivered.
    let seen = until(&mut rx, |e| is_head_at(e, b + 1)).await;
    assert!(
        seen.iter()
            .filter_map(confirmed)
            .all(|c| c.block.number < b)
    );
    for c in seen.iter().filter_map(confirmed) {
        assert_eq!(c.gaps().count(), 0, "no gap before block {b}");
    }

    chain.mine(1).await;
    let seen = until(&mut rx, |e| is_confirmed_at(e, b)).await;
    let head_pos = seen
        .iter()
        .position(|e| is_head_at(e, b + 2))
        .expect("head b+2 first");
    assert_eq!(
        head_pos,
        seen.len() - 2,
        "block b confirmed right after head b+2"
    );
    let c = confirmed(seen.last().unwrap()).unwrap();
    assert_eq!(c.block.hash, chain.block_hash(b).await);
    let gaps: Vec<_> = c.gaps().collect();
    assert_eq!(gaps.len(), 1);
    let g = gaps[0];
    assert_eq!(g.member, member_id());
    assert_eq!(g.seq, 0);
    assert_eq!(g.chain_id, 31337);
    assert_eq!(g.block_number, b);
    assert_eq!(g.block_hash, chain.block_hash(b).await);
    assert_eq!(g.assets, U256::from(400 * UNIT));
    assert_eq!(g.liabilities, U256::from(900 * UNIT));
    // The block before b had no gap.
    assert_eq!(c.oracles.len(), 1);
    assert_eq!(
        c.oracles[0].1.answer,
        alloy::primitives::I256::try_from(100_000_000i64).unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pinned_reads_at_an_older_block_return_that_blocks_state() {
    let keys = guardian_keys(4);
    let chain = start_chain(31337, &keys, 50_000 * UNIT).await;
    set_member(&chain, &keys, chain.chain_id).await;
    let pool = chain.pool(vec![chain.http()]);
    let reader = Reader::new(&pool);
    let x = pinned_latest(&chain).await;

    let vault_x = reader
        .vault_state(&x, chain.vault, chain.token)
        .await
        .unwrap();
    let solvency_x = reader.solvency(&x, chain.member_contract).await.unwrap();
    let oracle_x = reader.oracle(&x, chain.oracle).await.unwrap();
    let member_x = reader
        .member(&x, chain.vault, member_id())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(vault_x.balance, U256::from(50_000 * UNIT));
    assert_eq!(vault_x.bucket_available, U256::from(BUCKET_CAPACITY));
    assert_eq!(vault_x.available_for_payout, U256::from(BUCKET_CAPACITY));
    assert_eq!(
        vault_x.guardians,
        keys.iter().map(|k| k.address()).collect::<Vec<_>>()
    );
    assert_eq!((vault_x.threshold, vault_x.pause_threshold), (3, 2));
    assert!(!vault_x.paused);
    assert_eq!(solvency_x.assets, U256::from(1_000 * UNIT));
    assert_eq!(solvency_x.booked_draws, Some(0));
    assert_eq!(member_x.next_seq, 0);
    assert!(!member_x.frozen);

    // Change everything: a draw paying 2,000 units, new solvency, new oracle answer, a freeze.
    let deadline = chain.deadline().await;
    let draw = IBackstopVault::Draw {
        member: member_id(),
        seq: 0,
        gap: U256::from(5_000 * UNIT),
        amount: U256::from(2_000 * UNIT),
        legs: vec![IBackstopVault::Leg {
            chainId: chain.chain_id,
            vault: chain.vault,
            amount: U256::from(2_000 * UNIT),
        }],
        deadline,
        legDeadline: deadline,
    };
    let sigs = sign_all(&draw, &chain.id(), &keys[..THRESHOLD]);
    let r = mined(chain.vault().registerDraw(draw.clone(), sigs)).await;
    assert!(r.status());
    mined(chain.member().setBooks(U256::from(7), U256::from(9), 1)).await;
    mined(
        chain
            .oracle()
            .setAnswer(alloy::primitives::I256::try_from(97_000_000i64).unwrap()),
    )
    .await;
    let ChainAction::FreezeMember { action, signatures } =
        freeze_action(&chain, &keys, "freeze-1").await
    else {
        unreachable!()
    };
    mined(chain.vault().freezeMember(action, signatures)).await;
    let y = pinned_latest(&chain).await;
    assert!(y.number >= x.number + 4);

    // At x: exactly the old state.
    assert_eq!(
        reader
            .vault_state(&x, chain.vault, chain.token)
            .await
            .unwrap(),
        vault_x
    );
    assert_eq!(
        reader.solvency(&x, chain.member_contract).await.unwrap(),
        solvency_x
    );
    assert_eq!(reader.oracle(&x, chain.oracle).await.unwrap(), oracle_x);
    assert_eq!(
        reader
            .member(&x, chain.vault, member_id())
            .await
            .unwrap()
            .unwrap(),
        member_x
    );
    assert_eq!(
        reader
            .draw_of(&x, chain.vault, member_id(), 0)
            .await
            .unwrap(),
        B256::ZERO
    );

    // At y: the new state, exactly.
    let vault_y = reader
        .vault_state(&y, chain.vault, chain.token)
        .await
        .unwrap();
    assert_eq!(vault_y.balance, U256::from(48_000 * UNIT));
    assert!(vault_y.bucket_available >= U256::from(8_000 * UNIT));
    assert!(vault_y.bucket_available < U256::from(BUCKET_CAPACITY));
    let s = reader.solvency(&y, chain.member_contract).await.unwrap();
    assert_eq!((s.assets, s.liabilities), (U256::from(7), U256::from(9)));
    assert_eq!(s.booked_draws, Some(1));
    // A member contract without `bookedDraws()` (the token reverts on it; an account with
    // no code returns nothing) declares nothing: a value of the block, not an error.
    let token = reader.solvency(&y, chain.token).await;
    assert!(token.is_err(), "the token has no solvency(): {token:?}");
    let no_view = reader
        .booked_draws(backstop_chain::reads::block_id(&y), chain.token)
        .await
        .unwrap();
    assert_eq!(no_view, None);
    let eoa = reader
        .booked_draws(
            backstop_chain::reads::block_id(&y),
            Address::repeat_byte(0x77),
        )
        .await
        .unwrap();
    assert_eq!(eoa, None);
    let o = reader.oracle(&y, chain.oracle).await.unwrap();
    assert_eq!(
        o.answer,
        alloy::primitives::I256::try_from(97_000_000i64).unwrap()
    );
    assert_eq!(o.round_id, oracle_x.round_id + 1);
    let m = reader
        .member(&y, chain.vault, member_id())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m.next_seq, 1);
    assert!(m.frozen);
    assert_eq!(
        reader
            .draw_of(&y, chain.vault, member_id(), 0)
            .await
            .unwrap(),
        draw.digest(&chain.id())
    );
    // A block of another chain is refused.
    let other = PinnedBlock { chain_id: 1, ..y };
    assert!(
        reader
            .solvency(&other, chain.member_contract)
            .await
            .is_err()
    );
    // An unknown block hash is an error, not a value.
    let unknown = PinnedBlock {
        hash: B256::repeat_byte(0x42),
        ..y
    };
    assert!(
        reader
            .solvency(&unknown, chain.member_contract)
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_guardians_register_at_home_release_on_two_chains_and_resubmission_is_a_no_op() {
    let keys = guardian_keys(4);
    let (a, b, c) = tokio::join!(
        start_chain(31337, &keys, 50_000 * UNIT),
        start_chain(31338, &keys, 5_000 * UNIT),
        start_chain(31339, &keys, 20_000 * UNIT),
    );
    for ch in [&a, &b, &c] {
        set_member(ch, &keys, a.chain_id).await;
    }
    let _miners: Vec<Miner> = [&a, &b, &c]
        .iter()
        .map(|ch| spawn_miner(ch.http(), Duration::from_millis(100)))
        .collect();

    // Allocation from pinned reads of the three vaults.
    let gap = U256::from(15_000 * UNIT + MEMBER_DEDUCTIBLE);
    let mut vaults = Vec::new();
    for ch in [&a, &b, &c] {
        let pool = ch.pool(vec![ch.http()]);
        let at = pinned_latest(ch).await;
        let s = Reader::new(&pool)
            .vault_state(&at, ch.vault, ch.token)
            .await
            .unwrap();
        vaults.push(VaultCapacity {
            chain_id: ch.chain_id,
            vault: ch.vault,
            available: s.available_for_payout,
            quarantined: false,
        });
    }
    let alloc = allocate(&AllocationInput {
        gap,
        deductible: MEMBER_DEDUCTIBLE.into(),
        cap: MEMBER_CAP.into(),
        home_chain_id: a.chain_id,
        vaults,
    })
    .unwrap();
    // Home pays its bucket (10,000); 5,000 pro rata over 4,000 (B) and 10,000 (C):
    // 1,428.571428.. and 3,571.428571..; the unit lost to rounding goes to B (larger remainder).
    let amounts: Vec<(u64, U256)> = alloc.legs.iter().map(|l| (l.chainId, l.amount)).collect();
    assert_eq!(
        amounts,
        vec![
            (31337, U256::from(10_000 * UNIT)),
            (31338, U256::from(1_428_571_429u64)),
            (31339, U256::from(3_571_428_571u64)),
        ]
    );
    assert_eq!(alloc.covered, U256::from(15_000 * UNIT));
    assert_eq!(alloc.uncovered, U256::ZERO);

    let deadline = a.deadline().await;
    let draw = alloc.to_draw(member_id(), 0, gap, deadline, deadline + 86_400);
    let draw_sigs = sign_all(&draw, &a.id(), &keys[..THRESHOLD]);
    let register = ChainAction::RegisterDraw {
        draw: draw.clone(),
        signatures: draw_sigs,
    };
    let sub_a = submitter(&a, 1, 2);
    let out = sub_a.submit(&register).await.unwrap();
    assert!(matches!(out, SubmitOutcome::Executed { .. }), "{out:?}");
    assert_eq!(a.balance_of(recipient()).await, U256::from(10_000 * UNIT));
    let draw_hash = draw.digest(&a.id());

    let mut subs = Vec::new();
    for (ch, amount) in [(&b, 1_428_571_429u64), (&c, 3_571_428_571u64)] {
        let release = IBackstopVault::LegRelease {
            drawHash: draw_hash,
            member: member_id(),
            seq: 0,
            amount: U256::from(amount),
            deadline: ch.deadline().await,
        };
        let signatures = sign_all(&release, &ch.id(), &keys[1..]);
        let action = ChainAction::ReleaseLeg {
            release,
            signatures,
        };
        let sub = submitter(ch, 1, 2);
        // Two concurrent submissions of one action: one sends, the other does nothing.
        let (x, y) = tokio::join!(sub.submit(&action), sub.submit(&action));
        let outs = [x.unwrap(), y.unwrap()];
        assert_eq!(
            outs.iter()
                .filter(|o| matches!(o, SubmitOutcome::Executed { .. }))
                .count(),
            1,
            "{outs:?}"
        );
        assert_eq!(
            outs.iter()
                .filter(|o| matches!(o, SubmitOutcome::InFlight))
                .count(),
            1,
            "{outs:?}"
        );
        assert_eq!(ch.balance_of(recipient()).await, U256::from(amount));
        subs.push((ch, sub, action, amount));
    }

    // Second submissions: no transaction, nothing paid.
    let nonce_a = a.nonce_of(sub_a.address()).await;
    let out = sub_a.submit(&register).await.unwrap();
    assert_eq!(
        out,
        SubmitOutcome::AlreadyDone(AlreadyDone::OnChain {
            draw_hash: Some(draw_hash)
        })
    );
    // Another attempt's draw for the same (member, seq) is done too.
    let mut other = draw.clone();
    other.deadline += 1;
    let other_sigs = sign_all(&other, &a.id(), &keys[..THRESHOLD]);
    let other_action = ChainAction::RegisterDraw {
        draw: other,
        signatures: other_sigs,
    };
    assert!(matches!(
        sub_a.submit(&other_action).await.unwrap(),
        SubmitOutcome::AlreadyDone(_)
    ));
    // And the vault's own "already registered" revert counts as done.
    assert!(matches!(
        sub_a.preflight(&other_action).await.unwrap(),
        Err(AlreadyDone::Reverted(ref e)) if e.contains("DrawAlreadyRegistered")
    ));
    assert_eq!(a.nonce_of(sub_a.address()).await, nonce_a);
    assert_eq!(sub_a.stats().sent, 1);
    assert_eq!(a.balance_of(recipient()).await, U256::from(10_000 * UNIT));
    for (ch, sub, action, amount) in subs {
        let nonce = ch.nonce_of(sub.address()).await;
        assert!(matches!(
            sub.submit(&action).await.unwrap(),
            SubmitOutcome::AlreadyDone(_)
        ));
        assert!(matches!(
            sub.preflight(&action).await.unwrap(),
            Err(AlreadyDone::Reverted(ref e)) if e.contains("LegAlreadyPaid")
        ));
        assert_eq!(ch.nonce_of(sub.address()).await, nonce);
        assert_eq!(sub.stats().sent, 1);
        assert_eq!(ch.balance_of(recipient()).await, U256::from(amount));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anvil_killed_and_restarted_watcher_resumes_and_nothing_is_submitted_twice() {
    let keys = guardian_keys(4);
    let port = free_port();
    let chain = deploy(spawn_anvil(31337, Some(port)), 31337, &keys, 50_000 * UNIT).await;
    set_member(&chain, &keys, chain.chain_id).await;
    let url = chain.http();

    let mut cfg = watcher_cfg(&chain, vec![url.clone()], 2);
    cfg.halt_after = Duration::from_millis(1_500);
    let mut rx = spawn_watcher(&chain, cfg);
    let miner = spawn_miner(url.clone(), Duration::from_millis(100));

    let freeze = freeze_action(&chain, &keys, "freeze-before-restart").await;
    let sub = submitter(&chain, 1, 2);
    assert!(matches!(
        sub.submit(&freeze).await.unwrap(),
        SubmitOutcome::Executed { .. }
    ));
    let mut events = until(&mut rx, |e| {
        confirmed(e).is_some_and(|c| {
            c.events
                .iter()
                .any(|v| matches!(v.event, BackstopVaultEvents::MemberFrozen(_)))
        })
    })
    .await;

    // Dump the state, kill anvil.
    let state = chain.provider.anvil_dump_state().await.unwrap();
    let nonce_before = chain.nonce_of(sub.address()).await;
    let head_before = chain.head().await;
    drop(miner);
    let Chain {
        anvil,
        provider,
        vault,
        token,
        member_contract,
        oracle,
        chain_id,
    } = chain;
    drop(anvil);
    events.extend(until(&mut rx, |e| matches!(e, ChainEvent::Halted { .. })).await);

    // Restart on the same port with the state reloaded.
    let anvil = spawn_anvil(31337, Some(port));
    assert!(provider.anvil_load_state(state).await.unwrap());
    let chain = Chain {
        anvil,
        provider,
        vault,
        token,
        member_contract,
        oracle,
        chain_id,
    };
    assert!(chain.head().await >= head_before);
    let _miner = spawn_miner(url.clone(), Duration::from_millis(100));
    events.extend(until(&mut rx, |e| matches!(e, ChainEvent::Resumed { .. })).await);
    let resumed_at = chain.head().await;
    events.extend(
        until(&mut rx, |e| {
            confirmed(e).is_some_and(|c| c.block.number >= resumed_at)
        })
        .await,
    );

    // A fresh submitter (the node restarted too): the same action is done, nothing is sent;
    // a new action uses the nonce read back from the reloaded chain.
    let sub = submitter(&chain, 1, 2);
    assert!(matches!(
        sub.submit(&freeze).await.unwrap(),
        SubmitOutcome::AlreadyDone(_)
    ));
    assert_eq!(sub.stats().sent, 0);
    assert_eq!(chain.nonce_of(sub.address()).await, nonce_before);
    let second = freeze_action(&chain, &keys, "freeze-after-restart").await;
    assert!(matches!(
        sub.submit(&second).await.unwrap(),
        SubmitOutcome::Executed { .. }
    ));
    assert_eq!(chain.nonce_of(sub.address()).await, nonce_before + 1);
    let head = chain.head().await;
    events.extend(until(&mut rx, |e| is_confirmed_at(e, head)).await);

    // Delivered blocks strictly ascend (no block delivered twice) and each freeze once.
    let numbers: Vec<u64> = events
        .iter()
        .filter_map(confirmed)
        .map(|c| c.block.number)
        .collect();
    assert!(numbers.windows(2).all(|w| w[1] == w[0] + 1), "{numbers:?}");
    let frozen: Vec<B256> = events
        .iter()
        .filter_map(confirmed)
        .flat_map(|c| c.events.iter())
        .filter_map(|v| match &v.event {
            BackstopVaultEvents::MemberFrozen(f) => Some(f.id),
            _ => None,
        })
        .collect();
    assert_eq!(
        frozen,
        vec![
            keccak256("freeze-before-restart"),
            keccak256("freeze-after-restart")
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reorg_of_an_unconfirmed_event_triggers_nothing_and_a_confirmed_one_triggers_once() {
    let keys = guardian_keys(4);
    let chain = start_chain(31337, &keys, 50_000 * UNIT).await;
    set_member(&chain, &keys, chain.chain_id).await;
    let mut rx = spawn_watcher(&chain, watcher_cfg(&chain, vec![chain.http()], 3));
    chain.mine(4).await;
    let head = chain.head().await;
    let mut events = until(&mut rx, |e| is_confirmed_at(e, head - 3)).await;

    // The freeze lands in block b, then b and b+1 are replaced by empty blocks.
    let ChainAction::FreezeMember { action, signatures } =
        freeze_action(&chain, &keys, "freeze-reorged").await
    else {
        unreachable!()
    };
    let r = mined(
        chain
            .vault()
            .freezeMember(action.clone(), signatures.clone()),
    )
    .await;
    let b = r.block_number.unwrap();
    chain.mine(1).await;
    events.extend(until(&mut rx, |e| is_head_at(e, b + 1)).await);
    chain
        .provider
        .anvil_reorg(ReorgOptions {
            depth: 2,
            tx_block_pairs: vec![],
        })
        .await
        .unwrap();
    chain.mine(1).await;
    events.extend(until(&mut rx, |e| matches!(e, ChainEvent::Reorg { .. })).await);
    let Some(ChainEvent::Reorg { ancestor, deep, .. }) = events.last().cloned() else {
        unreachable!()
    };
    assert_eq!(ancestor, b - 1);
    assert!(!deep);
    chain.mine(4).await;
    let head = chain.head().await;
    events.extend(until(&mut rx, |e| is_confirmed_at(e, head - 3)).await);
    let pool = chain.pool(vec![chain.http()]);
    let latest = pinned_latest(&chain).await;
    assert!(
        !Reader::new(&pool)
            .action_used(&latest, chain.vault, action.id)
            .await
            .unwrap()
    );

    // The same action sent again now lands for good: delivered once, after confirmation.
    // (Sent by another account: with anvil 1.7.1 the deployer's resend after `anvil_reorg`
    // was never mined, an anvil quirk unrelated to the watcher.)
    let other = alloy::providers::ProviderBuilder::new()
        .wallet(chain.sender(2))
        .connect_http(chain.anvil.endpoint_url())
        .erased();
    let pending = backstop_contracts::bindings::BackstopVault::new(chain.vault, other)
        .freezeMember(action.clone(), signatures)
        .send()
        .await
        .unwrap();
    let tx_hash = *pending.tx_hash();
    chain.mine(1).await;
    let r = chain
        .provider
        .get_transaction_receipt(tx_hash)
        .await
        .unwrap()
        .expect("mined");
    assert!(r.status());
    let b2 = r.block_number.unwrap();
    chain.mine(1).await;
    events.extend(until(&mut rx, |e| is_head_at(e, b2 + 1)).await);
    // A shallow reorg above it does not touch it.
    chain
        .provider
        .anvil_reorg(ReorgOptions {
            depth: 1,
            tx_block_pairs: vec![],
        })
        .await
        .unwrap();
    chain.mine(5).await;
    let head = chain.head().await;
    events.extend(until(&mut rx, |e| is_confirmed_at(e, head - 3)).await);

    let frozen: Vec<u64> = events
        .iter()
        .filter_map(confirmed)
        .flat_map(|c| c.events.iter())
        .filter(|v| matches!(v.event, BackstopVaultEvents::MemberFrozen(_)))
        .map(|v| v.block_number)
        .collect();
    assert_eq!(frozen, vec![b2], "only the surviving freeze, once");
    let reorgs = events
        .iter()
        .filter(|e| matches!(e, ChainEvent::Reorg { deep: false, .. }))
        .count();
    assert_eq!(reorgs, 2);
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, ChainEvent::Reorg { deep: true, .. }))
    );
    // Each confirmed block delivered once, in order.
    let numbers: Vec<u64> = events
        .iter()
        .filter_map(confirmed)
        .map(|c| c.block.number)
        .collect();
    assert!(numbers.windows(2).all(|w| w[1] == w[0] + 1), "{numbers:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaced_urls_serve_the_next_requests() {
    let keys = guardian_keys(4);
    let chain = start_chain(31337, &keys, 50_000 * UNIT).await;
    let dead = format!("http://127.0.0.1:{}", free_port());
    let pool = fast_pool(31337, vec![dead.clone()]);
    assert!(pool.head_number().await.is_err(), "only a dead URL");
    assert!(
        !pool.set_urls(std::slice::from_ref(&dead)),
        "the same list changes nothing"
    );
    assert!(pool.set_urls(&[chain.http(), dead.clone()]));
    assert_eq!(pool.urls(), vec![chain.http(), dead]);
    assert_eq!(pool.head_number().await.unwrap(), chain.head().await);
    assert_eq!(pool.current_url(), Some(chain.http()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_from_a_dead_url_and_a_wrong_chain_to_a_live_one() {
    let keys = guardian_keys(4);
    let chain = start_chain(31337, &keys, 50_000 * UNIT).await;
    set_member(&chain, &keys, chain.chain_id).await;
    let other = spawn_anvil(4242, None);
    let dead = format!("http://127.0.0.1:{}", free_port());
    let pool = Arc::new(fast_pool(
        31337,
        vec![dead.clone(), other.endpoint(), chain.http()],
    ));
    assert_eq!(pool.head_number().await.unwrap(), chain.head().await);
    assert_eq!(pool.current_url(), Some(chain.http()));
    let at = pinned_latest(&chain).await;
    let s = Reader::new(&pool)
        .solvency(&at, chain.member_contract)
        .await
        .unwrap();
    assert_eq!(s.assets, U256::from(1_000 * UNIT));

    // A watcher whose first URL is dead still delivers.
    let mut rx = spawn_watcher(
        &chain,
        watcher_cfg(&chain, vec![dead.clone(), chain.ws()], 1),
    );
    chain.mine(2).await;
    let head = chain.head().await;
    until(&mut rx, |e| is_confirmed_at(e, head - 1)).await;

    // Only dead or wrong endpoints: an error, never a value.
    let pool = fast_pool(31337, vec![dead, other.endpoint()]);
    match pool.head_number().await {
        Err(RpcError::Exhausted { attempts, .. }) => assert_eq!(attempts, 6),
        other => panic!("expected exhaustion, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_rpc_answers_are_errors_never_values() {
    let keys = guardian_keys(4);
    let chain = start_chain(31337, &keys, 50_000 * UNIT).await;
    // A real block from anvil, then served with a forged hash by a lying endpoint.
    let n = chain.head().await;
    let block: serde_json::Value = chain
        .provider
        .raw_request("eth_getBlockByNumber".into(), (format!("{n:#x}"), false))
        .await
        .unwrap();
    let liar = lying_endpoint(block, n).await;
    let pool = fast_pool(31337, vec![liar]);
    match pool.block_ref(n).await {
        Err(RpcError::Exhausted {
            last: CallError::Invalid(m),
            ..
        }) => assert!(m.contains("hash"), "{m}"),
        other => panic!("forged block accepted: {other:?}"),
    }
    // A block of another height is refused.
    match pool.block_ref(n + 1).await {
        Err(RpcError::Exhausted {
            last: CallError::Invalid(_),
            ..
        }) => {}
        other => panic!("wrong block accepted: {other:?}"),
    }
    // An eth_call answer that does not decode.
    let at = PinnedBlock {
        chain_id: 31337,
        number: n,
        hash: chain.block_hash(n).await,
    };
    match Reader::new(&pool)
        .solvency(&at, chain.member_contract)
        .await
    {
        Err(backstop_chain::reads::ReadError::Rpc(RpcError::Exhausted {
            last: CallError::Invalid(_),
            ..
        })) => {}
        other => panic!("undecodable call accepted: {other:?}"),
    }
    // A number that is not hex.
    match pool.head_number().await {
        Err(RpcError::Exhausted {
            last: CallError::Invalid(_),
            ..
        }) => {}
        other => panic!("garbage number accepted: {other:?}"),
    }
}

/// A loopback JSON-RPC endpoint that lies: right chain id, a block with a forged hash, an
/// undecodable `eth_call` result, a non-hex block number.
async fn lying_endpoint(mut block: serde_json::Value, number: u64) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    block["hash"] = serde_json::json!(format!("{:#x}", B256::repeat_byte(0x66)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let block = block.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    let mut chunk = [0u8; 4096];
                    let Ok(k) = sock.read(&mut chunk).await else {
                        return;
                    };
                    if k == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..k]);
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                    let len: usize = head
                        .lines()
                        .find_map(|l| {
                            l.strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap())
                        })
                        .unwrap_or(0);
                    if buf.len() < end + 4 + len {
                        continue;
                    }
                    let body: serde_json::Value =
                        serde_json::from_slice(&buf[end + 4..end + 4 + len]).unwrap();
                    buf.drain(..end + 4 + len);
                    let result = match body["method"].as_str().unwrap() {
                        "eth_chainId" => serde_json::json!("0x7a69"),
                        "eth_getBlockByNumber" => {
                            let asked = u64::from_str_radix(
                                body["params"][0].as_str().unwrap().trim_start_matches("0x"),
                                16,
                            )
                            .unwrap();
                            let mut b = block.clone();
                            if asked != number {
                                // The real block, served for another height.
                                b["hash"] =
                                    serde_json::json!(format!("{:#x}", B256::repeat_byte(0x67)));
                            }
                            b
                        }
                        "eth_call" => serde_json::json!("0x1234"),
                        _ => serde_json::json!("0xzz"),
                    };
                    let resp =
                        serde_json::json!({"jsonrpc": "2.0", "id": body["id"], "result": result})
                            .to_string();
                    let msg = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{resp}",
                        resp.len()
                    );
                    if sock.write_all(msg.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stuck_transaction_is_replaced_with_higher_fees_at_the_same_nonce() {
    let keys = guardian_keys(4);
    let chain = start_chain(31337, &keys, 50_000 * UNIT).await;
    set_member(&chain, &keys, chain.chain_id).await;
    chain.provider.anvil_set_auto_mine(false).await.unwrap();
    let action = freeze_action(&chain, &keys, "freeze-stuck").await;
    let mut cfg = SubmitterConfig::new(chain.vault);
    cfg.confirmations = 2;
    cfg.poll_interval = Duration::from_millis(50);
    cfg.stuck_after = Duration::from_millis(300);
    cfg.max_wait = Duration::from_secs(30);
    let sub = Arc::new(Submitter::new(
        chain.pool(vec![chain.http()]),
        chain.sender(1),
        cfg,
    ));
    let nonce = chain.nonce_of(sub.address()).await;
    let task = {
        let sub = sub.clone();
        let action = action.clone();
        tokio::spawn(async move { sub.submit(&action).await })
    };
    // Nothing is mined: the submitter bumps the stuck transaction.
    tokio::time::timeout(WAIT, async {
        while sub.stats().bumps < 2 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap();
    chain.mine(4).await;
    let out = task.await.unwrap().unwrap();
    let SubmitOutcome::Executed { tx_hash, .. } = out else {
        panic!("{out:?}")
    };
    let tx = chain
        .provider
        .get_transaction_by_hash(tx_hash)
        .await
        .unwrap()
        .unwrap();
    use alloy::consensus::Transaction as _;
    assert_eq!(tx.inner.nonce(), nonce);
    assert!(
        tx.inner.max_priority_fee_per_gas().unwrap() > 1_000_000_000,
        "bumped priority fee"
    );
    assert_eq!(
        chain.nonce_of(sub.address()).await,
        nonce + 1,
        "one transaction for the nonce"
    );
    let stats = sub.stats();
    assert!(
        stats.bumps >= 2 && stats.sent == stats.bumps + 1,
        "{stats:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nonce_too_low_after_another_sender_used_the_key_is_recovered() {
    let keys = guardian_keys(4);
    let chain = start_chain(31337, &keys, 50_000 * UNIT).await;
    set_member(&chain, &keys, chain.chain_id).await;
    let _miner = spawn_miner(chain.http(), Duration::from_millis(100));
    let sub = submitter(&chain, 1, 1);
    let first = freeze_action(&chain, &keys, "freeze-a").await;
    assert!(matches!(
        sub.submit(&first).await.unwrap(),
        SubmitOutcome::Executed { .. }
    ));

    // The same key sends two transactions behind the submitter's back.
    let other = alloy::providers::ProviderBuilder::new()
        .wallet(chain.sender(1))
        .connect_http(chain.anvil.endpoint_url());
    for _ in 0..2 {
        let tx = alloy::rpc::types::TransactionRequest::default()
            .to(Address::repeat_byte(1))
            .value(U256::from(1));
        other
            .send_transaction(tx)
            .await
            .unwrap()
            .get_receipt()
            .await
            .unwrap();
    }
    let second = freeze_action(&chain, &keys, "freeze-b").await;
    assert!(matches!(
        sub.submit(&second).await.unwrap(),
        SubmitOutcome::Executed { .. }
    ));
    let stats = sub.stats();
    assert_eq!(stats.nonce_resyncs, 1, "{stats:?}");
    assert_eq!(stats.sent, 2, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chain_without_heads_is_reported_halted_then_resumed() {
    let keys = guardian_keys(4);
    let chain = start_chain(31337, &keys, 50_000 * UNIT).await;
    let mut cfg = watcher_cfg(&chain, vec![chain.http()], 1);
    cfg.members.clear();
    cfg.halt_after = Duration::from_millis(600);
    let mut rx = spawn_watcher(&chain, cfg);
    let seen = until(&mut rx, |e| matches!(e, ChainEvent::Halted { .. })).await;
    let Some(ChainEvent::Halted {
        silent_for,
        chain_id,
    }) = seen.last().cloned()
    else {
        unreachable!()
    };
    assert_eq!(chain_id, 31337);
    assert!(silent_for > Duration::from_millis(600));
    chain.mine(1).await;
    until(&mut rx, |e| matches!(e, ChainEvent::Resumed { .. })).await;
    let halted_again = seen
        .iter()
        .filter(|e| matches!(e, ChainEvent::Halted { .. }))
        .count();
    assert_eq!(halted_again, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_watcher_resumes_after_its_checkpoint_without_redelivery() {
    let keys = guardian_keys(4);
    let chain = start_chain(31337, &keys, 50_000 * UNIT).await;
    set_member(&chain, &keys, chain.chain_id).await;
    let mut rx = spawn_watcher(&chain, watcher_cfg(&chain, vec![chain.http()], 2));
    started(&mut rx).await;
    let ChainAction::FreezeMember { action, signatures } =
        freeze_action(&chain, &keys, "freeze-checkpoint").await
    else {
        unreachable!()
    };
    let r = mined(chain.vault().freezeMember(action, signatures)).await;
    let b = r.block_number.unwrap();
    chain.mine(3).await;
    let seen = until(&mut rx, |e| is_confirmed_at(e, b + 1)).await;
    let checkpoint = confirmed(seen.last().unwrap()).unwrap().block_ref();
    let frozen_before = seen
        .iter()
        .filter_map(confirmed)
        .flat_map(|c| c.events.iter())
        .filter(|v| matches!(v.event, BackstopVaultEvents::MemberFrozen(_)))
        .count();
    assert_eq!(frozen_before, 1);
    drop(rx); // the first watcher stops at its next send

    chain.mine(4).await;
    let mut cfg = watcher_cfg(&chain, vec![chain.http()], 2);
    cfg.checkpoint = Some(checkpoint);
    let mut rx = spawn_watcher(&chain, cfg);
    let head = chain.head().await;
    let seen = until(&mut rx, |e| is_confirmed_at(e, head - 2)).await;
    let numbers: Vec<u64> = seen
        .iter()
        .filter_map(confirmed)
        .map(|c| c.block.number)
        .collect();
    assert_eq!(numbers, ((b + 2)..=(head - 2)).collect::<Vec<_>>());
    assert!(
        !seen
            .iter()
            .filter_map(confirmed)
            .flat_map(|c| c.events.iter())
            .any(|v| matches!(v.event, BackstopVaultEvents::MemberFrozen(_)))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reorg_of_delivered_blocks_is_reported_deep_and_the_new_blocks_are_delivered() {
    let keys = guardian_keys(4);
    let chain = start_chain(31337, &keys, 50_000 * UNIT).await;
    set_member(&chain, &keys, chain.chain_id).await;
    let mut rx = spawn_watcher(&chain, watcher_cfg(&chain, vec![chain.http()], 1));
    started(&mut rx).await;
    let ChainAction::FreezeMember { action, signatures } =
        freeze_action(&chain, &keys, "freeze-deep").await
    else {
        unreachable!()
    };
    let r = mined(chain.vault().freezeMember(action, signatures)).await;
    let b = r.block_number.unwrap();
    chain.mine(2).await;
    let mut events = until(&mut rx, |e| is_confirmed_at(e, b + 1)).await;
    let old_hash = chain.block_hash(b).await;

    // Replace b, b+1, b+2 (b and b+1 already delivered) with empty blocks.
    chain
        .provider
        .anvil_reorg(ReorgOptions {
            depth: 3,
            tx_block_pairs: vec![],
        })
        .await
        .unwrap();
    assert_ne!(chain.block_hash(b).await, old_hash);
    chain.mine(2).await;
    let head = chain.head().await;
    events.extend(until(&mut rx, |e| is_confirmed_at(e, head - 1)).await);

    let reorg = events
        .iter()
        .find_map(|e| match e {
            ChainEvent::Reorg { ancestor, deep, .. } => Some((*ancestor, *deep)),
            _ => None,
        })
        .expect("reorg reported");
    assert_eq!(reorg, (b - 1, true));
    // After the report, delivery restarts at b with the new blocks; the freeze is gone.
    let pos = events
        .iter()
        .position(|e| matches!(e, ChainEvent::Reorg { .. }))
        .unwrap();
    let after: Vec<&ConfirmedBlock> = events[pos..].iter().filter_map(confirmed).collect();
    assert_eq!(after.first().unwrap().block.number, b);
    assert_eq!(after.first().unwrap().block.hash, chain.block_hash(b).await);
    assert!(after.iter().all(|c| c.events.is_empty()));
    let numbers: Vec<u64> = after.iter().map(|c| c.block.number).collect();
    assert_eq!(numbers, (b..=head - 1).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shared_leg_bound_is_the_vaults() {
    let keys = guardian_keys(4);
    let chain = start_chain(31337, &keys, 1_000 * UNIT).await;
    let on_chain = chain.vault().MAX_LEGS().call().await.unwrap();
    assert_eq!(
        on_chain,
        U256::from(backstop_chain::allocation::MAX_LEGS),
        "backstop_types::MAX_LEGS must be the vault's"
    );
}
