//! `deploy_consortium` sets up a three-chain consortium in one call: every vault has the same
//! guardian set and thresholds, every member is registered on every vault with its home
//! chain and its recipient there, and every vault holds its deposit.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::{Duration, Instant};

use alloy::primitives::{Address, U256};
use alloy::providers::Provider;
use backstop_contracts::testing::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_chain_consortium_has_one_guardian_set_and_every_member_everywhere() {
    let chain_ids = [31337, 31338, 31339];
    let mut params = ConsortiumParams::default();
    params
        .per_chain
        .insert(31338, ChainParams::with_deposit(5_000 * UNIT));
    let mut second = MemberSpec::new(1, 31339);
    second.recipients.insert(31337, Address::repeat_byte(0xCD));
    params.members = vec![MemberSpec::new(0, 31337), second, MemberSpec::new(2, 31337)];
    params.mine_every = Some(Duration::from_millis(200));

    let started = Instant::now();
    let c = deploy_consortium(&chain_ids, 4, &params).await;
    println!(
        "deploy_consortium, 3 chains, 3 members: {:?}",
        started.elapsed()
    );

    assert_eq!(c.chains.len(), 3);
    assert_eq!(c.keys.len(), 4);
    let guardians = c.guardians();
    assert!(guardians.windows(2).all(|w| w[0] < w[1]), "ascending");
    assert_eq!(
        guardians,
        guardian_keys(4)
            .iter()
            .map(|k| k.address())
            .collect::<Vec<_>>()
    );
    assert_eq!(thresholds(4), (3, 2));

    for (chain, id) in c.chains.iter().zip(chain_ids) {
        assert_eq!(chain.chain_id, id);
        assert_eq!(chain.provider.get_chain_id().await.unwrap(), id);
        let vault = chain.vault();
        assert_eq!(vault.guardians().call().await.unwrap(), guardians);
        assert_eq!(vault.threshold().call().await.unwrap(), 3);
        assert_eq!(vault.pauseThreshold().call().await.unwrap(), 2);
        let limits = vault.limits().call().await.unwrap();
        assert_eq!(limits, default_limits());

        let deposit = params.for_chain(id).deposit;
        assert_eq!(chain.balance_of(chain.vault).await, deposit);
        assert_eq!(vault.totalAssets().call().await.unwrap(), deposit);

        for m in &c.members {
            let record = vault.member(m.spec.id).call().await.unwrap();
            assert_eq!(record.homeChainId, m.spec.home_chain_id, "home on {id}");
            assert_eq!(record.recipient, m.spec.recipient_on(id));
            assert_eq!(record.cap, u128::from(MEMBER_CAP));
            assert_eq!(record.deductible, u128::from(MEMBER_DEDUCTIBLE));
            assert_eq!(record.coverageLimit, u128::from(MEMBER_COVERAGE_LIMIT));
            assert_eq!(u64::from(record.coverageWindow), MEMBER_COVERAGE_WINDOW);
            assert_eq!(
                vault.coverageAvailable(m.spec.id).call().await.unwrap(),
                U256::from(MEMBER_COVERAGE_LIMIT)
            );
            assert_eq!(record.nextSeq, 0);
            assert_eq!(record.frozenUntil, 0);
        }
        // Guardians can pay for their own transactions.
        for g in &guardians {
            assert_eq!(
                chain.provider.get_balance(*g).await.unwrap(),
                U256::from(GUARDIAN_BALANCE_WEI)
            );
        }
    }
    assert_eq!(
        c.chain(31337)
            .vault()
            .member(member_id_of(1))
            .call()
            .await
            .unwrap()
            .recipient,
        Address::repeat_byte(0xCD)
    );

    // Each member has its own mock protocol on its home chain; moving one moves only it.
    assert_eq!(c.members[0].contract, c.chain(31337).member_contract);
    assert_eq!(c.members[1].contract, c.chain(31339).member_contract);
    assert_ne!(c.members[2].contract, c.members[0].contract);
    c.set_solvency(2, U256::from(400 * UNIT), U256::from(900 * UNIT))
        .await;
    let home = c.home(2);
    let moved = home.member().solvency().call().await.unwrap();
    assert_eq!(moved.assets, U256::from(MEMBER_SOLVENCY));
    let member2 =
        backstop_contracts::bindings::MockMember::new(c.members[2].contract, home.provider.clone());
    let s = member2.solvency().call().await.unwrap();
    assert_eq!(
        (s.assets, s.liabilities),
        (U256::from(400 * UNIT), U256::from(900 * UNIT))
    );
    assert_eq!(member2.oracle().call().await.unwrap(), home.oracle);

    // The chains are mined on a timer.
    let mut heads = Vec::new();
    for chain in &c.chains {
        heads.push(chain.head().await);
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    for (chain, before) in c.chains.iter().zip(heads) {
        assert!(
            chain.head().await > before,
            "chain {} mined",
            chain.chain_id
        );
    }
}
