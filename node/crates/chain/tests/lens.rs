//! Reading many members in one call (`Reader::members`, through `SnapshotLens` and a state
//! override) against a real anvil chain: it reads exactly what the member-by-member reads
//! do, in the order asked, across more members than one lens call takes; members the
//! vault does not know read as such; a member protocol that answers more than the lens
//! keeps, garbage, a revert or nothing is read as the direct calls read it (the same value,
//! or the same failure); risk views come with the books, judged as `Reader::risk` judges
//! them. A vault's state and a chain's oracles, read through the lens in one request each,
//! are what the calls one by one read, and fail where they fail.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use alloy::primitives::{Address, B256, Bytes, I256, U256};
use alloy::sol_types::SolCall;
use backstop_chain::reads::{
    LENS_MEMBERS, MemberRead, PinnedBlock, Reader, RiskView, VaultState, block_id,
};
use backstop_contracts::bindings::{IBackstopMember, MockOracle};
use common::*;

/// What the member-by-member reads give for `(id, books)` at `at`.
async fn one_by_one(
    reader: &Reader<'_>,
    at: &PinnedBlock,
    vault: Address,
    (id, books): (B256, Option<Address>),
) -> MemberRead {
    let record = reader.member(at, vault, id).await.unwrap();
    let (solvency, risk) = match (record, books) {
        (Some(_), Some(c)) => (
            Some(reader.solvency(at, c).await.unwrap()),
            Some(reader.risk(at, c).await.unwrap()),
        ),
        _ => (None, None),
    };
    MemberRead {
        record,
        solvency,
        risk,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lens_reads_what_the_member_by_member_reads_do() {
    let keys = guardian_keys(4);
    let chain = start_chain(31337, &keys, 50_000 * UNIT).await;
    let pool = chain.pool(vec![chain.http()]);
    let reader = Reader::new(&pool);

    // Members 1..=5 registered. Member 1's views are the mock's; member 2's protocol
    // answers more bytes than the lens keeps of the books (and 40 exposures); member 3's
    // answers the books with a trailing word (valid for the direct call's decoder); member
    // 4 has no protocol configured; member 5's answers more than any risk view may.
    for i in 1..=5 {
        assert!(
            chain
                .set_member(&keys, &MemberSpec::new(i, chain.chain_id))
                .await
                .status()
        );
    }
    let books = chain.member();
    let before = pinned_latest(&chain).await;
    assert!(
        mined(books.setBooks(U256::from(7 * UNIT), U256::from(9 * UNIT), 2))
            .await
            .status()
    );
    assert!(
        mined(books.setExposure(chain.oracle, I256::try_from(3).unwrap(), I256::ZERO))
            .await
            .status()
    );
    let huge = deploy_hostile(&chain).await;
    assert!(mined(huge.setHuge(U256::from(40))).await.status());
    let huger = deploy_hostile(&chain).await;
    assert!(mined(huger.setHuge(U256::from(50))).await.status());
    let trailing = deploy_hostile(&chain).await;
    let mut answer =
        IBackstopMember::solvencyCall::abi_encode_returns(&IBackstopMember::solvencyReturn {
            assets: U256::from(5),
            liabilities: U256::from(8),
        });
    answer.extend_from_slice(&[0u8; 32]);
    assert!(
        mined(trailing.setAnswer(Bytes::from(answer)))
            .await
            .status()
    );

    // More ids than one lens call takes, the known ones on both sides of the cut; the rest
    // unknown to the vault (one of them with a protocol, which is then not read).
    let mut asked: Vec<(B256, Option<Address>)> = (0..LENS_MEMBERS + 6)
        .map(|i| (B256::with_last_byte(i as u8 + 1), None))
        .collect();
    asked[0] = (member_id_of(1), Some(chain.member_contract));
    asked[LENS_MEMBERS - 1] = (member_id_of(2), Some(*huge.address()));
    asked[LENS_MEMBERS] = (member_id_of(3), Some(*trailing.address()));
    asked[LENS_MEMBERS + 2] = (member_id_of(4), None);
    asked[LENS_MEMBERS + 4].1 = Some(chain.member_contract);
    asked[LENS_MEMBERS + 5] = (member_id_of(5), Some(*huger.address()));

    let at = pinned_latest(&chain).await;
    let read = reader.members(&at, chain.vault, &asked).await.unwrap();
    assert_eq!(read.len(), asked.len());
    // Two lens calls; no record read alone; only the two protocols whose answers the lens
    // could not take whole are called directly.
    let sent = pool.requests();
    assert_eq!(sent.get("lens"), Some(&2), "{sent:?}");
    assert_eq!(sent.get("member"), None, "{sent:?}");
    assert!(sent.get("solvency").is_some_and(|&n| n <= 3), "{sent:?}");
    assert_eq!(sent.get("riskExposures"), None, "{sent:?}");
    for (i, (r, &a)) in read.iter().zip(&asked).enumerate() {
        assert_eq!(
            *r,
            one_by_one(&reader, &at, chain.vault, a).await,
            "member {i}"
        );
    }
    let known: Vec<usize> = (0..read.len())
        .filter(|&i| read[i].record.is_some())
        .collect();
    assert_eq!(
        known,
        [
            0,
            LENS_MEMBERS - 1,
            LENS_MEMBERS,
            LENS_MEMBERS + 2,
            LENS_MEMBERS + 5
        ]
    );
    assert!(matches!(&read[0].risk, Some(RiskView::Exposures(e)) if e.len() == 1));
    for i in [LENS_MEMBERS - 1, LENS_MEMBERS + 5] {
        assert!(
            matches!(read[i].risk, Some(RiskView::Invalid(_))),
            "{:?}",
            read[i].risk
        );
    }
    let mock = read[0].solvency.unwrap();
    assert_eq!(
        (mock.assets, mock.liabilities, mock.booked_draws),
        (U256::from(7 * UNIT), U256::from(9 * UNIT), Some(2))
    );
    assert_eq!(read[0].record.unwrap().recipient, recipient_of(1));
    assert!(read[LENS_MEMBERS + 2].solvency.is_none());
    assert!(read[LENS_MEMBERS + 4].solvency.is_none());

    // At an older block, the state of that block: the books before they were set.
    let old = reader
        .members(&before, chain.vault, &asked[..1])
        .await
        .unwrap();
    assert_eq!(
        old[0],
        one_by_one(&reader, &before, chain.vault, asked[0]).await
    );
    assert_ne!(old[0].solvency, read[0].solvency);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_protocol_that_reverts_or_answers_nothing_fails_the_read_as_the_direct_call_does() {
    let keys = guardian_keys(4);
    let chain = start_chain(31337, &keys, 50_000 * UNIT).await;
    let pool = chain.pool(vec![chain.http()]);
    let reader = Reader::new(&pool);
    assert!(
        chain
            .set_member(&keys, &MemberSpec::new(1, chain.chain_id))
            .await
            .status()
    );
    let reverting = deploy_hostile(&chain).await;
    assert!(mined(reverting.setReverts()).await.status());
    let no_code = Address::repeat_byte(0x55);

    for protocol in [*reverting.address(), no_code] {
        let at = pinned_latest(&chain).await;
        let asked = [(member_id_of(1), Some(protocol))];
        let lens = reader.members(&at, chain.vault, &asked).await;
        let direct = reader.solvency(&at, protocol).await;
        assert!(lens.is_err(), "{protocol}: {lens:?}");
        assert!(direct.is_err(), "{protocol}: {direct:?}");
    }

    // A vault address that is no vault fails the whole read, not a member of it.
    let at = pinned_latest(&chain).await;
    let asked = [(member_id_of(1), None)];
    assert!(reader.members(&at, no_code, &asked).await.is_err());
}

/// A vault's state read with one plain call per view, at `at`.
async fn vault_by_call(chain: &Chain, at: &PinnedBlock) -> VaultState {
    let (v, id) = (chain.vault(), block_id(at));
    VaultState {
        block: *at,
        vault: chain.vault,
        token: chain.token,
        balance: chain
            .token()
            .balanceOf(chain.vault)
            .block(id)
            .call()
            .await
            .unwrap(),
        limits: v.limits().block(id).call().await.unwrap(),
        bucket_available: v.bucketAvailable().block(id).call().await.unwrap(),
        available_for_payout: v.availableForPayout().block(id).call().await.unwrap(),
        paused: v.paused().block(id).call().await.unwrap(),
        paused_until: v.pausedUntil().block(id).call().await.unwrap(),
        guardians: v.guardians().block(id).call().await.unwrap(),
        threshold: v.threshold().block(id).call().await.unwrap(),
        pause_threshold: v.pauseThreshold().block(id).call().await.unwrap(),
        guardian_set_index: v.guardianSetIndex().block(id).call().await.unwrap(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lens_reads_a_vault_and_its_oracles_as_the_calls_one_by_one_do() {
    let keys = guardian_keys(4);
    let chain = start_chain(31337, &keys, 50_000 * UNIT).await;
    let pool = chain.pool(vec![chain.http()]);
    let reader = Reader::new(&pool);

    // The vault's state in one request, at the block asked: a mint after `before` shows
    // only in the newer read.
    let before = pinned_latest(&chain).await;
    assert!(
        mined(chain.token().mint(chain.vault, U256::from(7 * UNIT)))
            .await
            .status()
    );
    let at = pinned_latest(&chain).await;
    let now = reader
        .vault_state(&at, chain.vault, chain.token)
        .await
        .unwrap();
    assert_eq!(pool.requests().get("lens calls"), Some(&1));
    assert_eq!(pool.requests().get("vault state"), None);
    assert_eq!(now, vault_by_call(&chain, &at).await);
    assert_eq!(now.guardians.len(), 4);
    let then = reader
        .vault_state(&before, chain.vault, chain.token)
        .await
        .unwrap();
    assert_eq!(then, vault_by_call(&chain, &before).await);
    assert_eq!(now.balance - then.balance, U256::from(7 * UNIT));

    // An address that is no vault fails the read, as the calls one by one fail.
    let no_code = Address::repeat_byte(0x55);
    assert!(reader.vault_state(&at, no_code, chain.token).await.is_err());
    assert!(
        reader
            .vault_state(&at, chain.member_contract, chain.token)
            .await
            .is_err()
    );

    // Oracles: the mock; one answering with a trailing word (refused by the lens's strict
    // decoding, read by the direct call); one that reverts; one without code; the vault
    // (no such view).
    assert!(
        mined(chain.oracle().setAnswer(I256::try_from(123).unwrap()))
            .await
            .status()
    );
    let trailing = deploy_hostile(&chain).await;
    let mut answer =
        MockOracle::latestRoundDataCall::abi_encode_returns(&MockOracle::latestRoundDataReturn {
            roundId: alloy::primitives::Uint::from(9),
            answer: I256::try_from(77).unwrap(),
            startedAt: U256::from(5),
            updatedAt: U256::from(6),
            answeredInRound: alloy::primitives::Uint::from(9),
        });
    answer.extend_from_slice(&[0u8; 32]);
    assert!(
        mined(trailing.setAnswer(Bytes::from(answer)))
            .await
            .status()
    );
    let reverting = deploy_hostile(&chain).await;
    assert!(mined(reverting.setReverts()).await.status());
    let oracles = [
        chain.oracle,
        *trailing.address(),
        *reverting.address(),
        no_code,
        chain.vault,
    ];
    let at = pinned_latest(&chain).await;
    // An oracle the lens answers whole is not called directly.
    let before = pool.requests();
    reader.oracles(&at, &oracles[..1]).await[0]
        .as_ref()
        .unwrap();
    let sent = pool.requests();
    let delta = |m: &str| sent.get(m).copied().unwrap_or(0) - before.get(m).copied().unwrap_or(0);
    assert_eq!(delta("lens calls"), 1, "{sent:?}");
    assert_eq!(delta("latestRoundData"), 0, "{sent:?}");
    assert_eq!(delta("decimals"), 0, "{sent:?}");
    let read = reader.oracles(&at, &oracles).await;
    assert_eq!(read.len(), oracles.len());
    for (o, r) in oracles.iter().zip(&read) {
        let direct = tokio::try_join!(reader.oracle(&at, *o), reader.oracle_decimals(&at, *o));
        match (r, direct) {
            (Ok(lens), Ok(direct)) => assert_eq!(*lens, direct, "{o}"),
            (Err(_), Err(_)) => {}
            (lens, direct) => panic!("{o}: lens {lens:?}, direct {direct:?}"),
        }
    }
    let mock = read[0].as_ref().unwrap();
    assert_eq!(mock.0.answer, I256::try_from(123).unwrap());
    assert_eq!(
        read[1].as_ref().unwrap().0.answer,
        I256::try_from(77).unwrap()
    );
    assert!(read[2].is_err() && read[3].is_err() && read[4].is_err());
}
