//! `backstop_contracts::aave` on a real anvil chain: the Aave v3.0 market deploys from the
//! npm artifacts with its libraries linked by hand, a crash plus a liquidation leaves bad
//! debt on Aave's books, and the adapter reports exactly it as its gap; linking refuses
//! artifacts it cannot link completely.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;

use alloy::primitives::{Address, I256, U256};
use alloy::providers::Provider;
use backstop_contracts::aave::{self, AaveV3Member, Artifact, IAaveOracle, IAavePool};
use backstop_contracts::testing::*;

#[test]
fn link_fills_every_reference_and_refuses_a_missing_library() {
    let pool = Artifact::read("protocol/pool/Pool.sol/Pool.json").unwrap();
    assert!(
        pool.bytecode.contains("__$"),
        "the artifact has placeholders"
    );
    let mut libs: BTreeMap<String, Address> = aave::LIBRARIES
        .iter()
        .enumerate()
        .map(|(i, n)| ((*n).to_owned(), Address::repeat_byte(i as u8 + 1)))
        .collect();
    let code = pool.link(&libs).unwrap();
    assert!(!code.is_empty());
    libs.remove("BorrowLogic");
    let err = pool.link(&libs).unwrap_err().to_string();
    assert!(err.contains("BorrowLogic"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn market_from_npm_artifacts_bad_debt_is_the_adapters_gap() {
    let keys = guardian_keys(4);
    let chain = deploy_chain(31339, &keys, &ChainParams::default()).await;
    let p = chain.provider.clone();
    let admin = chain.anvil.addresses()[0];
    let (market, cost) = aave::deploy_market(&p, admin, chain.token).await.unwrap();
    println!(
        "market: {} transactions, {} gas",
        cost.transactions, cost.gas
    );
    assert!(
        cost.gas > 30_000_000,
        "the real bytecode ({} gas)",
        cost.gas
    );
    let member = member_id_of(3);
    let adapter = aave::deploy_adapter(&p, &market, chain.vault, member, admin, 4)
        .await
        .unwrap();

    // Liquidity from one key, a position from another: 10 WETH at 2,000, 15,000 borrowed.
    let supplier = chain.provider_for(chain.sender(1));
    aave::supply(
        &supplier,
        &market,
        chain.anvil.addresses()[1],
        chain.token,
        U256::from(100_000 * UNIT),
    )
    .await
    .unwrap();
    let who = chain.anvil.addresses()[2];
    let borrower = chain.provider_for(chain.sender(2));
    let weth = U256::from(10) * U256::from(10).pow(U256::from(18));
    aave::supply(&borrower, &market, who, market.weth, weth)
        .await
        .unwrap();
    aave::borrow(&borrower, &market, who, U256::from(15_000 * UNIT))
        .await
        .unwrap();
    let a = AaveV3Member::new(adapter, p.clone());
    aave::call("track", a.track(who)).await.unwrap();
    let s = a.solvency().call().await.unwrap();
    assert_eq!((s.assets, s.liabilities), (U256::ZERO, U256::ZERO));

    // WETH to 1,000: 5,476.190477 before the liquidation (the bonus counted), and the
    // realised 5,476.190476 after it, which Aave keeps as the borrower's debt.
    let feed = aave::new_feed(&p, I256::try_from(1_000i64 * 100_000_000).unwrap())
        .await
        .unwrap();
    aave::call(
        "crash",
        IAaveOracle::new(market.oracle, p.clone()).setAssetSources(vec![market.weth], vec![feed]),
    )
    .await
    .unwrap();
    let s = a.solvency().call().await.unwrap();
    assert_eq!(s.liabilities - s.assets, U256::from(5_476_190_477u64));
    let liquidator = chain.provider_for(chain.sender(3));
    let token = aave::IMintableErc20::new(chain.token, liquidator.clone());
    aave::call(
        "mint",
        token.mint(chain.anvil.addresses()[3], U256::from(15_000 * UNIT)),
    )
    .await
    .unwrap();
    aave::call("approve", token.approve(market.pool, U256::MAX))
        .await
        .unwrap();
    aave::call(
        "liquidate",
        IAavePool::new(market.pool, liquidator).liquidationCall(
            market.weth,
            chain.token,
            who,
            U256::MAX,
            false,
        ),
    )
    .await
    .unwrap();
    let debt = aave::variable_debt(&p, &market, who).await.unwrap();
    assert_eq!(debt, U256::from(5_476_190_476u64));
    let s = a.solvency().call().await.unwrap();
    assert_eq!((s.assets, s.liabilities), (U256::ZERO, debt));
    assert!(p.get_block_number().await.unwrap() > 40);
}
