//! Members' risk views (`IBackstopRisk.riskExposures()`) read against real anvil chains: the
//! mock member's exposures exactly, contracts without the view as missing, hostile answers
//! (too many entries, repeated or zero oracles, absurd values, a huge or lying array, a
//! revert) as invalid or missing, and failed requests as errors.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use alloy::primitives::{Address, B256, Bytes, I256, U256};
use alloy::sol_types::SolCall;
use backstop_chain::reads::{
    EXPOSURE_BOUND, Exposure, MAX_RISK_VIEW_BYTES, PinnedBlock, ReadError, Reader, RiskView,
};
use backstop_chain::rpc::RpcError;
use backstop_contracts::bindings::IBackstopRisk;
use common::*;

fn units(n: i64) -> I256 {
    I256::try_from(n).unwrap() * I256::try_from(UNIT).unwrap()
}

fn oracle(i: u8) -> Address {
    Address::with_last_byte(i)
}

fn entry(oracle: Address, delta: I256, gamma: I256) -> IBackstopRisk::Exposure {
    IBackstopRisk::Exposure {
        oracle,
        delta,
        gamma,
    }
}

fn encoded(entries: Vec<IBackstopRisk::Exposure>) -> Bytes {
    IBackstopRisk::riskExposuresCall::abi_encode_returns(&entries).into()
}

/// The reason of an invalid view, or a panic naming what was read instead.
fn invalid(view: RiskView) -> String {
    match view {
        RiskView::Invalid(reason) => reason,
        other => panic!("expected an invalid risk view, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mock_member_reports_its_exposures_exactly_at_the_pinned_block() {
    let keys = guardian_keys(4);
    let chain = start_chain(31337, &keys, 50_000 * UNIT).await;
    let pool = chain.pool(vec![chain.http()]);
    let reader = Reader::new(&pool);
    let x = pinned_latest(&chain).await;
    assert_eq!(
        reader.risk(&x, chain.member_contract).await.unwrap(),
        RiskView::Exposures(vec![])
    );

    let member = chain.member();
    let eth = (chain.oracle, units(500), units(-20));
    let btc = (oracle(0xB7), units(-300), I256::try_from(7).unwrap());
    for (o, d, g) in [eth, btc] {
        assert!(mined(member.setExposure(o, d, g)).await.status());
    }
    let y = pinned_latest(&chain).await;
    let expected = vec![
        Exposure {
            oracle: eth.0,
            delta: eth.1,
            gamma: eth.2,
        },
        Exposure {
            oracle: btc.0,
            delta: btc.1,
            gamma: btc.2,
        },
    ];
    assert_eq!(
        reader.risk(&y, chain.member_contract).await.unwrap(),
        RiskView::Exposures(expected)
    );
    // The older block still reads the older answer.
    assert_eq!(
        reader.risk(&x, chain.member_contract).await.unwrap(),
        RiskView::Exposures(vec![])
    );

    // A zero oracle reported by the mock is refused as a whole; a clear empties the view.
    assert!(
        mined(member.setExposure(Address::ZERO, units(1), units(0)))
            .await
            .status()
    );
    let z = pinned_latest(&chain).await;
    let reason = invalid(reader.risk(&z, chain.member_contract).await.unwrap());
    assert!(reason.contains("zero oracle"), "{reason}");
    assert!(mined(member.clearExposures()).await.status());
    let w = pinned_latest(&chain).await;
    assert_eq!(
        reader.risk(&w, chain.member_contract).await.unwrap(),
        RiskView::Exposures(vec![])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contracts_without_the_view_and_reverting_views_are_missing() {
    let keys = guardian_keys(4);
    let chain = start_chain(31337, &keys, 50_000 * UNIT).await;
    let hostile = deploy_hostile(&chain).await;
    assert!(mined(hostile.setReverts()).await.status());
    let at = pinned_latest(&chain).await;
    let pool = chain.pool(vec![chain.http()]);
    let reader = Reader::new(&pool);
    let eoa = Address::repeat_byte(0x77);
    for (what, who) in [
        ("vault", chain.vault),
        ("token", chain.token),
        ("oracle", chain.oracle),
        ("account without code", eoa),
        ("reverting view", *hostile.address()),
    ] {
        assert_eq!(
            reader.risk(&at, who).await.unwrap(),
            RiskView::Missing,
            "{what}"
        );
    }
    // A fallback that returns nothing is no view either.
    assert!(mined(hostile.setAnswer(Bytes::new())).await.status());
    let at = pinned_latest(&chain).await;
    assert_eq!(
        reader.risk(&at, *hostile.address()).await.unwrap(),
        RiskView::Missing
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_answers_are_invalid_and_named() {
    let keys = guardian_keys(4);
    let chain = start_chain(31337, &keys, 50_000 * UNIT).await;
    let hostile = deploy_hostile(&chain).await;
    let pool = chain.pool(vec![chain.http()]);
    let reader = Reader::new(&pool);
    let one = I256::ONE;
    let bound = I256::from_raw(EXPOSURE_BOUND);
    let below = bound - one;

    // A well-formed answer at the bounds is read as given.
    let edge = encoded(vec![entry(oracle(1), below, -below)]);
    assert!(mined(hostile.setAnswer(edge)).await.status());
    let at = pinned_latest(&chain).await;
    assert_eq!(
        reader.risk(&at, *hostile.address()).await.unwrap(),
        RiskView::Exposures(vec![Exposure {
            oracle: oracle(1),
            delta: below,
            gamma: -below,
        }])
    );

    let seventeen = (1..=17).map(|i| entry(oracle(i), one, one)).collect();
    let cases: Vec<(&str, Bytes, &str)> = vec![
        ("17 entries", encoded(seventeen), "17 exposures"),
        (
            "duplicate oracle",
            encoded(vec![entry(oracle(1), one, one), entry(oracle(1), one, one)]),
            "listed twice",
        ),
        (
            "zero oracle",
            encoded(vec![entry(Address::ZERO, one, one)]),
            "zero oracle",
        ),
        (
            "delta of 2^127",
            encoded(vec![entry(oracle(1), bound, one)]),
            "delta",
        ),
        (
            "gamma of -2^127",
            encoded(vec![entry(oracle(1), one, -bound)]),
            "gamma",
        ),
        (
            "delta of int256.min",
            encoded(vec![entry(oracle(1), I256::MIN, one)]),
            "delta",
        ),
        (
            "a header claiming 100,000 entries",
            [U256::from(0x20), U256::from(100_000)]
                .iter()
                .flat_map(|w| w.to_be_bytes::<32>())
                .collect(),
            "undecodable",
        ),
        ("31 bytes", Bytes::from(vec![0xAB; 31]), "undecodable"),
    ];
    for (what, answer, reason) in cases {
        assert!(mined(hostile.setAnswer(answer)).await.status(), "{what}");
        let at = pinned_latest(&chain).await;
        let got = invalid(reader.risk(&at, *hostile.address()).await.unwrap());
        assert!(got.contains(reason), "{what}: {got}");
    }

    // A real array of 30,000 entries (~2.9 MB, about as much as an eth_call's 30M gas can
    // return): refused by the byte bound, never decoded.
    assert!(mined(hostile.setHuge(U256::from(30_000))).await.status());
    let at = pinned_latest(&chain).await;
    let got = invalid(reader.risk(&at, *hostile.address()).await.unwrap());
    let size = 64 + 30_000 * 96;
    assert!(size > MAX_RISK_VIEW_BYTES);
    assert_eq!(
        got,
        format!("{size} bytes of return data, more than {MAX_RISK_VIEW_BYTES}")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_chain_unknown_block_and_dead_endpoint_are_errors() {
    let keys = guardian_keys(4);
    let chain = start_chain(31337, &keys, 50_000 * UNIT).await;
    let pool = chain.pool(vec![chain.http()]);
    let reader = Reader::new(&pool);
    let at = pinned_latest(&chain).await;

    let other_chain = PinnedBlock { chain_id: 1, ..at };
    match reader.risk(&other_chain, chain.member_contract).await {
        Err(ReadError::Inconsistent { reason, .. }) => {
            assert!(reason.contains("block of chain 1"), "{reason}")
        }
        other => panic!("expected a wrong-chain error, got {other:?}"),
    }

    // The node refuses a block it does not know: an error, not a missing view.
    let unknown = PinnedBlock {
        hash: B256::repeat_byte(0x42),
        ..at
    };
    match reader.risk(&unknown, chain.member_contract).await {
        Err(ReadError::Rpc(e)) => assert!(!e.is_revert(), "{e}"),
        other => panic!("expected an RPC error, got {other:?}"),
    }

    let dead = fast_pool(31337, vec![format!("http://127.0.0.1:{}", free_port())]);
    match Reader::new(&dead).risk(&at, chain.member_contract).await {
        Err(ReadError::Rpc(RpcError::Exhausted { .. })) => {}
        other => panic!("expected exhaustion, got {other:?}"),
    }
}
