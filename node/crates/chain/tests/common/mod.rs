//! Fixture of the chain tests, over [`backstop_contracts::testing`]: real anvil chains from
//! `.tools/`, each with a pool token, a vault guarded by four keys (t = 3, p = 2), a member
//! and an oracle. Adds what needs `backstop-chain` (RPC pools) and keeps the call shapes of
//! the tests and the bench.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use alloy::node_bindings::AnvilInstance;
use alloy::primitives::Address;
use alloy::providers::DynProvider;
use alloy::signers::local::PrivateKeySigner;
use backstop_chain::reads::PinnedBlock;
use backstop_chain::retry::{Backoff, SplitMix64};
use backstop_chain::rpc::{RpcConfig, RpcPool};
use backstop_contracts::bindings::HostileRisk;
use backstop_contracts::eip712::VaultId;
use backstop_contracts::testing;

pub use backstop_contracts::testing::*;

/// t of the fixture's four guardians.
pub const THRESHOLD: usize = 3;
/// p of the fixture's four guardians.
pub const PAUSE_THRESHOLD: usize = 2;

/// An instant-mining anvil for `chain_id` on `port` (any free port if `None`).
pub fn spawn_anvil(chain_id: u64, port: Option<u16>) -> AnvilInstance {
    testing::spawn_anvil(chain_id, port, None)
}

/// A pool over `urls` with fast retries and a fixed jitter seed.
pub fn fast_pool(chain_id: u64, urls: Vec<String>) -> RpcPool {
    let mut cfg = RpcConfig::new(chain_id, urls);
    cfg.request_timeout = Duration::from_millis(1_500);
    cfg.backoff = Backoff {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(200),
        max_attempts: 6,
    };
    RpcPool::with_jitter(cfg, Box::new(SplitMix64(7)))
}

/// RPC pools of a fixture chain.
pub trait ChainPool {
    /// A pool over `urls` with fast retries and a fixed jitter seed ([`fast_pool`]).
    fn pool(&self, urls: Vec<String>) -> Arc<RpcPool>;
}

impl ChainPool for Chain {
    fn pool(&self, urls: Vec<String>) -> Arc<RpcPool> {
        Arc::new(fast_pool(self.chain_id, urls))
    }
}

/// Deploys one vault set (defaults, deposit `deposit`) through `provider`, whose wallet is
/// `depositor`.
pub async fn deploy_contracts(
    provider: &DynProvider,
    depositor: Address,
    keys: &[PrivateKeySigner],
    deposit: u64,
) -> Contracts {
    testing::deploy_contracts(
        provider,
        depositor,
        keys,
        &ChainParams::with_deposit(deposit),
    )
    .await
}

/// Deploys one vault set on `anvil` (see [`deploy_contracts`]).
pub async fn deploy(
    anvil: AnvilInstance,
    chain_id: u64,
    keys: &[PrivateKeySigner],
    deposit: u64,
) -> Chain {
    let chain = deploy_on(anvil, keys, &ChainParams::with_deposit(deposit)).await;
    assert_eq!(chain.chain_id, chain_id, "anvil runs another chain");
    chain
}

/// A fresh anvil for `chain_id` with one vault set.
pub async fn start_chain(chain_id: u64, keys: &[PrivateKeySigner], deposit: u64) -> Chain {
    deploy_chain(chain_id, keys, &ChainParams::with_deposit(deposit)).await
}

/// Registers the default member on `chain` with home chain `home` (t signatures).
pub async fn set_member(chain: &Chain, keys: &[PrivateKeySigner], home: u64) {
    set_member_on(&chain.provider, chain.id(), keys, home).await;
}

/// Registers the default member on the vault `vault` through `provider` (t signatures).
pub async fn set_member_on(
    provider: &DynProvider,
    vault: VaultId,
    keys: &[PrivateKeySigner],
    home: u64,
) {
    testing::set_member_on(provider, vault, keys, &MemberSpec::new(0, home)).await;
}

/// `chain`'s newest block, as reads pin it.
pub async fn pinned_latest(chain: &Chain) -> PinnedBlock {
    let n = chain.head().await;
    PinnedBlock {
        chain_id: chain.chain_id,
        number: n,
        hash: chain.block_hash(n).await,
    }
}

/// A member protocol on `chain` that answers every view with whatever the test sets.
pub async fn deploy_hostile(chain: &Chain) -> HostileRisk::HostileRiskInstance<DynProvider> {
    HostileRisk::deploy(chain.provider.clone()).await.unwrap()
}
